"""Read-only SQL over the warehouse, as `persona sql` serves it.

Two independent guards: only query statements are accepted, and the connection itself is read-only with file
system access disabled, so `COPY`, `ATTACH` or `read_csv('/etc/passwd')` fail even if a statement slipped past
the first guard.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

ALLOWED_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


class QueryRefused(ValueError):
    """The query is not allowed or cannot run; the message says why in one line."""


def open_read_only(warehouse: Path) -> duckdb.DuckDBPyConnection:
    if not warehouse.is_file():
        raise QueryRefused(f"{warehouse}: no warehouse file here; run `persona run` first or pass --warehouse")
    try:
        return duckdb.connect(
            str(warehouse),
            read_only=True,
            config={"enable_external_access": False, "lock_configuration": True},
        )
    except duckdb.Error as exc:
        raise QueryRefused(f"{warehouse}: cannot open read-only: {exc}") from exc


def run_read_only_query(warehouse: Path, query: str) -> pl.DataFrame:
    con = open_read_only(warehouse)
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
