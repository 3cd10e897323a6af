"""Read-only SQL over the warehouse, as `persona sql` serves it.

Two independent guards: only query statements are accepted, and the connection itself is read-only with file
system access disabled, so `COPY`, `ATTACH` or `read_csv('/etc/passwd')` fail even if a statement slipped past
the first guard.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import polars as pl

from pipelines.core.resources import attach_raw

ALLOWED_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


class QueryRefused(ValueError):
    """The query is not allowed or cannot run; the message says why in one line."""


def open_read_only(warehouse: Path, raw_file: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection without file access. `raw_file`: the raw layer's database, attached read-only as
    catalog `raw` before file access is switched off (the working database's raw.* tables)."""
    if not warehouse.is_file():
        raise QueryRefused(f"{warehouse}: no warehouse file here; run `persona run` first or pass --warehouse")
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            if raw_file is not None:
                attach_raw(con, raw_file, read_only=True)
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        except duckdb.Error:
            con.close()
            raise
        return con
    except duckdb.Error as exc:
        raise QueryRefused(f"{warehouse}: cannot open read-only: {exc}") from exc


def run_read_only_query(warehouse: Path, query: str, raw_file: Path | None = None) -> pl.DataFrame:
    con = open_read_only(warehouse, raw_file)
    try:
        try:
            statements = con.extract_statements(query)
        except duckdb.Error as exc:
            raise QueryRefused(f"cannot parse the query: {exc}") from exc
        if len(statements) != 1:
            raise QueryRefused(f"one statement per call, got {len(statements)}")
        kind = statements[0].type
        if kind not in ALLOWED_STATEMENTS:
            raise QueryRefused(
                f"refused: {kind.name} statements are not allowed; persona sql is read-only (SELECT, EXPLAIN)"
            )
        try:
            return con.execute(query).pl()
        except duckdb.PermissionException as exc:
            raise QueryRefused(f"refused: reading or writing files is not allowed here ({exc})") from exc
        except duckdb.Error as exc:
            raise QueryRefused(f"query failed: {exc}") from exc
    finally:
        con.close()


SALT_VARIABLE = "PERSONA_ID_SALT"
EXPORT_FORMATS = ("csv", "parquet")


def pseudonymise(customer_id: str, salt: str) -> str:
    """A stable stand-in for a customer id: the same id and salt always give the same token, and without the
    salt the id cannot be recovered by hashing candidate ids."""
    return hashlib.sha256(f"{salt}:{customer_id}".encode()).hexdigest()[:20]


def export_audiences(
    warehouse: Path, out_dir: Path, output_format: str, segment_ids: list[int] | None = None,
    pseudonymised: bool = False, salt: str | None = None,
) -> list[tuple[Path, int]]:
    """One audience file per segment for activation tools: customer_id (or a salted token), segment id and
    names. Returns the files with their row counts."""
    if output_format not in EXPORT_FORMATS:
        raise QueryRefused(f"unknown export format {output_format!r}; use one of {list(EXPORT_FORMATS)}")
    if pseudonymised and not salt:
        raise QueryRefused(f"pseudonymised ids need a secret salt: set {SALT_VARIABLE}")
    con = open_read_only(warehouse)
    try:
        members = con.execute(
            "SELECT customer_id, segment_id, segment_name_zh, segment_name_en FROM segments.customer_segments "
            "ORDER BY segment_id, customer_id").pl()
    finally:
        con.close()
    known = sorted(set(members.get_column("segment_id").to_list()))
    wanted = segment_ids or known
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise QueryRefused(f"no segment with id {unknown}; segments are {known}")
    if pseudonymised:
        members = members.with_columns(
            pl.col("customer_id").map_elements(lambda value: pseudonymise(value, salt), return_dtype=pl.String)
            .alias("customer_id"))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for segment_id in wanted:
        audience = members.filter(pl.col("segment_id") == segment_id)
        target = out_dir / f"segment_{segment_id}.{output_format}"
        if output_format == "csv":
            audience.write_csv(target)
        else:
            audience.write_parquet(target)
        written.append((target, audience.height))
    return written
