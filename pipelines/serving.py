"""Read-only SQL over the warehouse, as `persona sql` serves it.

Two independent guards: only query statements are accepted, and the connection itself is read-only with file
system access disabled, so `COPY`, `ATTACH` or `read_csv('/etc/passwd')` fail even if a statement slipped past
the first guard.

Limits, so that an ad-hoc query cannot starve the nightly job on the same machine (`QueryLimits`): a wall-clock
timeout (a timer thread calls DuckDB's `interrupt()`), a memory cap and a thread cap set on the connection, and
no spilling to disk (`temp_directory` is empty, so the memory cap is a hard one, nothing is ever written, and the
default spill folder `<warehouse>.tmp/` -- which DuckDB would otherwise keep readable -- is not). Results stream
from DuckDB in Arrow batches; `print_query` writes them as a table, CSV or JSON.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TextIO

import duckdb
import polars as pl
import pyarrow as pa
from duckdb.sqltypes import DuckDBPyType

from pipelines.core.resources import attach_raw, glob_literal, raw_files_folder_for, raw_files_moved_from

ALLOWED_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}

DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_QUERY_MEMORY = "1GB"
# Two threads: the nightly `persona run` uses every core of the machine it shares with analysts' queries.
DEFAULT_QUERY_THREADS = 2
DEFAULT_TABLE_ROWS = 1000
OUTPUT_FORMATS = ("table", "csv", "json")
BATCH_ROWS = 2048

# Result types polars cannot hold (intervals, unions), holds wrongly (UHUGEINT above 2^127 comes back negative) or
# as bytes (BIT, BIGNUM): such columns, and nested columns holding them anywhere, come back as DuckDB's text.
_NOT_FOR_POLARS = {"interval", "union", "bit", "bignum", "varint", "hugeint", "uhugeint", "time with time zone"}
# For printing, only these stay typed (nested ones only when every member does); the rest -- dates and times
# (DuckDB's range, 'infinity' and BC dates included, exceeds Python's), blobs, ... -- print as DuckDB's text.
_PRINTED_AS_IS = {"boolean", "tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint", "uinteger",
                  "ubigint", "float", "double", "decimal", "varchar", "uuid", "json", "enum"}
_NESTED = {"list", "array", "struct", "map"}


class QueryRefused(ValueError):
    """The query is not allowed or cannot run; the message says why in one line."""


@dataclass(frozen=True)
class QueryLimits:
    """What one `persona sql` query may use: `timeout` seconds of wall-clock time (fetching included), DuckDB's
    `memory_limit` (a hard cap: nothing spills to disk) and `threads`."""

    timeout: float = DEFAULT_TIMEOUT_SECONDS
    memory_limit: str = DEFAULT_QUERY_MEMORY
    threads: int = DEFAULT_QUERY_THREADS


DEFAULT_LIMITS = QueryLimits()


def open_read_only(warehouse: Path, raw_file: Path | None = None,
                   limits: QueryLimits = DEFAULT_LIMITS) -> duckdb.DuckDBPyConnection:
    """A read-only connection without file access, capped by `limits` (memory, threads, no spilling) and with its
    configuration locked. `raw_file`: the raw layer's database, attached read-only as catalog `raw` before file
    access is switched off (the working database's raw.* tables)."""
    if not warehouse.is_file():
        raise QueryRefused(f"{warehouse}: no warehouse file here; run `persona run` first or pass --warehouse")
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error as exc:
        raise QueryRefused(f"{warehouse}: cannot open read-only: {exc}") from exc
    try:
        try:
            con.execute("SET memory_limit = ?", [limits.memory_limit])
        except duckdb.Error as exc:
            if "locked" in str(exc):  # another connection of this process holds the file, settings locked
                raise
            raise QueryRefused(f"--memory-limit {limits.memory_limit!r} is not a size DuckDB understands "
                               f"(e.g. 500MB, 2GB): {_first_line(exc)}") from exc
        if limits.threads < 1:
            raise QueryRefused(f"--threads must be 1 or more, got {limits.threads}")
        con.execute(f"SET threads = {int(limits.threads)}")
        # No spilling: the memory cap is hard, nothing is written, and no spill folder stays readable.
        con.execute("SET temp_directory = ''")
        con.execute("SET max_temp_directory_size = '0B'")
        if raw_file is not None:
            attach_raw(con, raw_file, read_only=True)
            # The raw tables are views over the raw layer's Parquet files (assets/raw/files.py): that folder, and
            # no other, stays readable.
            # DuckDB checks the path as the view names it, escaped for globbing (resources.glob_literal) when the
            # folder's name holds a glob character.
            folders = {str(raw_files_folder_for(raw_file)), glob_literal(str(raw_files_folder_for(raw_file)))}
            listed = ", ".join("'" + folder.replace("'", "''") + "/'" for folder in sorted(folders))
            con.execute(f"SET allowed_directories = [{listed}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except QueryRefused:
        con.close()
        raise
    except duckdb.Error as exc:
        con.close()
        raise QueryRefused(f"{warehouse}: cannot open read-only: {exc}") from exc
    return con


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _check_statement(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """One SELECT or EXPLAIN. A PIVOT whose columns come from the data (no IN list) parses into CREATE TYPE
    statements for DuckDB's enum of those columns, followed by the SELECT; DuckDB generates them, so they carry no
    query text of their own, unlike anything typed, and they count as part of the PIVOT."""
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise QueryRefused(f"cannot parse the query: {exc}") from exc
    typed = [s for s in statements if not (s.type == duckdb.StatementType.CREATE and not s.query.strip())]
    if len(typed) != 1:
        raise QueryRefused(f"one statement per call, got {len(typed)}")
    kind = typed[0].type
    if kind not in ALLOWED_STATEMENTS:
        raise QueryRefused(
            f"refused: {kind.name} statements are not allowed; persona sql is read-only (SELECT, EXPLAIN)"
        )


def _needs_text(dtype: DuckDBPyType, typed: set[str] | None, untyped: set[str]) -> bool:
    """Whether a column of this type should come back as text: its type (or a member type) is in `untyped`, or
    `typed` is given and it is not in it."""
    if dtype.id in _NESTED:
        # children: (name, type) pairs; an ARRAY's also holds ("size", n)
        return any(_needs_text(child, typed, untyped) for _, child in dtype.children
                   if isinstance(child, DuckDBPyType))
    if dtype.id in untyped:
        return True
    return typed is not None and dtype.id not in typed


def _relation(con: duckdb.DuckDBPyConnection, query: str, for_printing: bool) -> duckdb.DuckDBPyRelation:
    relation = con.sql(query)
    typed = _PRINTED_AS_IS if for_printing else None
    columns = []
    changed = False
    for name, dtype in zip(relation.columns, relation.types, strict=True):
        quoted = '"' + name.replace('"', '""') + '"'
        if _needs_text(dtype, typed, _NOT_FOR_POLARS):
            columns.append(f"CAST({quoted} AS VARCHAR) AS {quoted}")
            changed = True
        else:
            columns.append(quoted)
    return relation.project(", ".join(columns)) if changed else relation


class _Deadline:
    """Interrupts the connection's running query after `seconds`; `fired` tells an interrupt from other errors."""

    def __init__(self, con: duckdb.DuckDBPyConnection, seconds: float) -> None:
        self.fired = False
        self._con = con
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        self._con.interrupt()

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _failure(exc: BaseException, limits: QueryLimits, deadline: _Deadline) -> QueryRefused:
    """One line naming the limit that stopped the query, or DuckDB's reason."""
    text = str(exc)
    if deadline.fired:
        return QueryRefused(f"query stopped after {limits.timeout:g} s, its --timeout; narrow the query (WHERE, "
                            f"LIMIT) or pass a larger --timeout SECONDS")
    if isinstance(exc, duckdb.OutOfMemoryException) or text.startswith("Out of Memory Error"):
        return QueryRefused(f"query stopped: it needs more memory than its --memory-limit of {limits.memory_limit} "
                            f"({_first_line(exc)}); narrow the query or pass a larger --memory-limit")
    if isinstance(exc, duckdb.PermissionException) or text.startswith("Permission Error"):
        return QueryRefused(f"refused: reading or writing files is not allowed here ({exc})")
    return QueryRefused(f"query failed: {exc}")


_FETCH_ERRORS = (duckdb.Error, OSError, RuntimeError)


class QueryStream:
    """A running query: its column names and its result as polars frames of up to `BATCH_ROWS` rows, fetched as
    they are consumed; a failure while fetching (the timeout, the memory cap) is a one-line `QueryRefused`."""

    def __init__(self, reader: pa.RecordBatchReader, limits: QueryLimits, deadline: _Deadline) -> None:
        self._reader = reader
        self._limits = limits
        self._deadline = deadline
        self.columns = list(reader.schema.names)
        self.schema_frame = pl.from_arrow(reader.schema.empty_table())

    def frames(self) -> Iterator[pl.DataFrame]:
        try:
            for batch in self._reader:
                yield pl.from_arrow(batch)
        except _FETCH_ERRORS as exc:
            raise _failure(exc, self._limits, self._deadline) from exc

    def count_rest(self) -> tuple[int, bool]:
        """The rows not consumed yet, counted batch by batch without holding them, and whether the count is
        complete (False: the timeout stopped it, so it is a lower bound)."""
        counted = 0
        try:
            for batch in self._reader:
                counted += batch.num_rows
        except _FETCH_ERRORS as exc:
            if self._deadline.fired:
                return counted, False
            raise _failure(exc, self._limits, self._deadline) from exc
        return counted, True


def _moved_raw_files(con: duckdb.DuckDBPyConnection, raw_file: Path | None, exc: BaseException) -> QueryRefused | None:
    """The raw views name their Parquet files by absolute path; after the warehouse folder moved, only a writable
    connection (any run) points them at the new place. A query that failed on a file says so, rather than naming a
    file that is not there."""
    if raw_file is None or not isinstance(exc, duckdb.PermissionException | duckdb.IOException):
        return None
    old = raw_files_moved_from(con, raw_file)
    if old is None:
        return None
    return QueryRefused(f"refused: the raw layer's files were written under {old} and the warehouse folder has "
                        f"moved since; the next `persona run` points the raw tables at "
                        f"{raw_files_folder_for(raw_file)}")


@contextmanager
def stream_read_only_query(warehouse: Path, query: str, raw_file: Path | None = None,
                           limits: QueryLimits = DEFAULT_LIMITS, for_printing: bool = True) -> Iterator[QueryStream]:
    """Run one read-only query within `limits`; the result streams as the caller consumes it. Any failure, while
    running or while fetching, becomes a one-line `QueryRefused`. `for_printing`: every column other than plain
    numbers, strings and nestings of them comes back as DuckDB's text (otherwise only types polars cannot hold)."""
    con = open_read_only(warehouse, raw_file, limits)
    try:
        _check_statement(con, query)
        with _Deadline(con, limits.timeout) as deadline:
            try:
                reader = _relation(con, query, for_printing).to_arrow_reader(BATCH_ROWS)
            except _FETCH_ERRORS as exc:
                raise (_moved_raw_files(con, raw_file, exc) or _failure(exc, limits, deadline)) from exc
            yield QueryStream(reader, limits, deadline)
    finally:
        con.close()


def run_read_only_query(warehouse: Path, query: str, raw_file: Path | None = None,
                        limits: QueryLimits = DEFAULT_LIMITS) -> pl.DataFrame:
    """The whole result as one polars frame (dates and times stay typed; intervals, unions and the like come back
    as text)."""
    with stream_read_only_query(warehouse, query, raw_file, limits, for_printing=False) as stream:
        frames = list(stream.frames())
    return pl.concat(frames) if frames else stream.schema_frame


@dataclass(frozen=True)
class Printed:
    """What `print_query` wrote: rows shown, and rows left out by `max_rows` (None: none left out; `more_counted`
    False: counting them was stopped by the timeout, so `more` is a lower bound)."""

    rows: int
    more: int | None = None
    more_counted: bool = True


def default_max_rows(output_format: str) -> int | None:
    """1,000 rows for the table (a screen, not an export); every row for CSV and JSON."""
    return DEFAULT_TABLE_ROWS if output_format == "table" else None


def print_query(warehouse: Path, query: str, output_format: str, out: TextIO, raw_file: Path | None = None,
                limits: QueryLimits = DEFAULT_LIMITS, max_rows: int | None = None) -> Printed:
    """Run one read-only query and write its result to `out` as it streams: `table` (a polars table, the rows
    shown held in memory), `csv` (list, struct and map columns as JSON text) or `json` (an array of objects).
    `max_rows` (None or 0: no limit) stops the output there; the rows beyond are counted, batch by batch without
    being held, while the timeout allows."""
    if output_format not in OUTPUT_FORMATS:
        raise QueryRefused(f"unknown format {output_format!r}; use one of {list(OUTPUT_FORMATS)}")
    limit = max_rows or None
    shown = 0
    kept: list[pl.DataFrame] = []
    more: int | None = None
    counted = True
    with stream_read_only_query(warehouse, query, raw_file, limits) as stream:
        writer = _FORMATTERS[output_format](out)
        for frame in stream.frames():
            if limit is not None and shown + frame.height > limit:
                more = shown + frame.height - limit
                frame = frame.head(limit - shown)
            if output_format == "table":
                kept.append(frame)
            elif frame.height:
                writer.write(frame)
            shown += frame.height
            if more is not None:
                rest, counted = stream.count_rest()
                more += rest
                break
        if output_format == "table":
            _write_table(out, pl.concat(kept) if kept else stream.schema_frame)
        else:
            writer.finish(stream.schema_frame)
    return Printed(shown, more, counted)


def more_rows_note(printed: Printed, max_rows: int | None) -> str | None:
    """The one-line note under a cut result, or None when nothing was left out."""
    if printed.more is None:
        return None
    amount = f"{printed.more:,} more rows" if printed.more_counted else \
        f"at least {printed.more:,} more rows (counting stopped at the --timeout)"
    return f"{amount} not shown (--max-rows {max_rows:,}); pass a larger --max-rows, or 0 for every row"


def _write_table(out: TextIO, frame: pl.DataFrame) -> None:
    # Numbers in full (fmt_float="full"): polars' default shows revenue of 1,346,499.32 as 1.3465e6, which cannot be
    # checked against the shop's console.
    with pl.Config(tbl_rows=max(frame.height, 1), tbl_cols=50, fmt_str_lengths=80, tbl_hide_dataframe_shape=True,
                   fmt_float="full"):
        out.write(f"{frame}\n")


class _CsvWriter:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.header = True

    def write(self, frame: pl.DataFrame) -> None:
        # CSV has no lists or structs: such columns are written as JSON text.
        nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
        flat = frame.with_columns(
            pl.Series(name, [None if value is None else json.dumps(value, ensure_ascii=False, default=str)
                             for value in frame.get_column(name).to_list()], dtype=pl.String)
            for name in nested)
        buffer = io.StringIO()
        flat.write_csv(buffer, include_header=self.header)
        self.out.write(buffer.getvalue())
        self.header = False

    def finish(self, empty: pl.DataFrame) -> None:
        if self.header:
            self.out.write(empty.write_csv())


class _JsonWriter:
    """The same text as `json.dumps(rows, indent=2)`, written row by row."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.first = True

    def write(self, frame: pl.DataFrame) -> None:
        for row in frame.to_dicts():
            text = json.dumps(row, ensure_ascii=False, default=str, indent=2).replace("\n", "\n  ")
            self.out.write(("[\n  " if self.first else ",\n  ") + text)
            self.first = False

    def finish(self, empty: pl.DataFrame) -> None:
        self.out.write("[]\n" if self.first else "\n]\n")


_FORMATTERS = {"table": lambda out: None, "csv": _CsvWriter, "json": _JsonWriter}


SALT_VARIABLE = "PERSONA_ID_SALT"
EXPORT_FORMATS = ("csv", "xlsx", "parquet")
# Characters that Windows, macOS or Linux refuse (or that shells and zip tools trip on) in a file name.
_UNSAFE_IN_FILE_NAMES = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f\s]+')
# Per-customer columns an audience carries beside its segment, each from a published table that a warehouse may
# lack (one published before the table existed, as the demo warehouse without predict.customer_value). A table that
# is absent leaves its columns out; a customer the table does not score gets empty cells (LEFT JOIN).
_EXPORT_JOINS = (
    (("segments", "customer_value_tiers"),
     "t.value_tier_zh, t.value_tier_en, t.rfm_tier_zh, t.rfm_tier_en",
     "LEFT JOIN segments.customer_value_tiers t USING (customer_id)"),
    (("predict", "churn_risk"),
     "round(r.churn_risk, 4) AS churn_risk",
     "LEFT JOIN predict.churn_risk r USING (customer_id)"),
    (("predict", "next_category"),
     "n.next_categories",
     "LEFT JOIN (SELECT customer_id, string_agg(category, '; ' ORDER BY rank) AS next_categories "
     "FROM predict.next_category GROUP BY customer_id) n USING (customer_id)"),
    (("predict", "customer_value"),
     "round(v.expected_spend, 2) AS expected_spend",
     "LEFT JOIN predict.customer_value v USING (customer_id)"),
)


def pseudonymise(customer_id: str, salt: str) -> str:
    """A stable stand-in for a customer id: the same id and salt always give the same token, and without the
    salt the id cannot be recovered by hashing candidate ids."""
    return hashlib.sha256(f"{salt}:{customer_id}".encode()).hexdigest()[:20]


def export_file_name(segment_id: int, name: str | None, output_format: str) -> str:
    """`segment_<id>_<name>.<format>`, e.g. segment_1_年轻白领族.csv: the name kept as written (Chinese included),
    runs of characters a file system or shell would refuse (slashes, colons, quotes, spaces, ...) become one `_`."""
    safe = _UNSAFE_IN_FILE_NAMES.sub("_", name or "").strip("._")[:80]
    return f"segment_{segment_id}_{safe}.{output_format}" if safe else f"segment_{segment_id}.{output_format}"


def _export_members(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    present = {tuple(row) for row in con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables").fetchall()}
    columns = ["s.customer_id", "s.segment_id", "s.segment_name_zh", "s.segment_name_en"]
    joins = []
    for table, selected, join in _EXPORT_JOINS:
        if table in present:
            columns.append(selected)
            joins.append(join)
    return con.execute(f"SELECT {', '.join(columns)} FROM segments.customer_segments s {' '.join(joins)} "
                       "ORDER BY s.segment_id, s.customer_id").pl()


def audience_file_name(name: str, output_format: str) -> str:
    """`audience_<name>.<format>`: audience names are lower-case letters, digits and _ (the source config checks)."""
    safe = _UNSAFE_IN_FILE_NAMES.sub("_", name).strip("._")[:80] or "unnamed"
    return f"audience_{safe}.{output_format}"


def _audience_members(con: duckdb.DuckDBPyConnection, names: list[str]) -> dict[str, pl.Series]:
    """The customer ids of each named audience of the latest run (segments.audiences); QueryRefused naming the
    audiences there are when one is unknown."""
    present = {tuple(row) for row in con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables").fetchall()}
    if not {("segments", "audiences"), ("segments", "audience_history")} <= present:
        raise QueryRefused("this warehouse has no audiences (segments.audiences); define `audiences:` in the source "
                           "config and run the pipeline")
    known = [row[0] for row in con.execute(
        "SELECT audience FROM segments.audience_history WHERE run_id = (SELECT arg_max(run_id, computed_at) "
        "FROM segments.audience_history) ORDER BY audience").fetchall()]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise QueryRefused(f"no audience named {unknown}; audiences are {known}")
    frame = con.execute("SELECT audience, customer_id FROM segments.audiences WHERE list_contains(?, audience)",
                        [names]).pl()
    return {name: frame.filter(pl.col("audience") == name).get_column("customer_id") for name in names}


def _write_export(frame: pl.DataFrame, target: Path, output_format: str, sheet: str) -> None:
    if output_format == "csv":
        frame.write_csv(target, include_bom=True)
    elif output_format == "xlsx":
        frame.write_excel(target, worksheet=sheet, autofit=True)
    else:
        frame.write_parquet(target)


class Exported(NamedTuple):
    path: Path
    rows: int
    controls_left_out: int  # members of the control group of a running campaign, not written


def export_audiences(
    warehouse: Path, out_dir: Path, output_format: str, segment_ids: list[int] | None = None,
    pseudonymised: bool = False, salt: str | None = None, audience_names: list[str] | None = None,
    include_controls: bool = False,
) -> list[Exported]:
    """One audience file per segment for activation tools, named by segment id and name: customer_id (or a salted
    token), segment id and names, then value and RFM tiers, churn risk, next categories and expected spend where
    the warehouse has them. CSV carries a UTF-8 byte-order mark so Excel on Windows reads the Chinese as UTF-8.
    `audience_names`: also one file per named audience of the source config (segments.audiences),
    audience_<name>.<format>, with the same columns; given without `segment_ids`, only those audience files are
    written. The control groups of running campaigns are left out (counted per file), since an activation list is
    for sending, unless `include_controls`. Returns the files with their row counts."""
    if output_format not in EXPORT_FORMATS:
        raise QueryRefused(f"unknown export format {output_format!r}; use one of {list(EXPORT_FORMATS)}")
    if pseudonymised and not salt:
        raise QueryRefused(f"pseudonymised ids need a secret salt: set {SALT_VARIABLE}")
    audience_names = list(dict.fromkeys(audience_names or []))
    con = open_read_only(warehouse)
    try:
        members = _export_members(con)
        audiences = _audience_members(con, audience_names) if audience_names else {}
        has_orders = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'staging' "
                                 "AND table_name = 'orders'").fetchone()[0]
        data_through = con.execute("SELECT max(order_ts)::DATE FROM staging.orders").fetchone()[0] \
            if has_orders else None
    finally:
        con.close()
    controls = pl.Series("customer_id", [], dtype=pl.String)
    if not include_controls:
        # Imported here: the campaign store brings scipy and statsmodels, which `persona sql` never needs.
        from assets.campaigns.store import running_control_groups, store_file_for
        try:
            controls = running_control_groups(store_file_for(warehouse), data_through).get_column("customer_id")
        except duckdb.Error as exc:  # a campaign command holds the store this moment
            raise QueryRefused(f"cannot read the campaign store to leave out control groups: "
                               f"{str(exc).splitlines()[0]}; try again, or pass --include-controls") from exc
    known = sorted(set(members.get_column("segment_id").to_list()))
    wanted = segment_ids or ([] if audience_names else known)
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise QueryRefused(f"no segment with id {unknown}; segments are {known}")
    outputs = [(f"segment_{segment_id}", members.filter(pl.col("segment_id") == segment_id), segment_id)
               for segment_id in wanted]
    outputs += [(f"audience_{name}", members.filter(pl.col("customer_id").is_in(audiences[name].implode())), name)
                for name in audience_names]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for sheet, audience, key in outputs:
        if isinstance(key, int):
            names = audience.select("segment_name_zh", "segment_name_en").row(0)
            target = out_dir / export_file_name(key, names[0] or names[1], output_format)
        else:
            target = out_dir / audience_file_name(key, output_format)
        kept = audience.filter(~pl.col("customer_id").is_in(controls.implode()))
        left_out, audience = audience.height - kept.height, kept
        if pseudonymised:
            audience = audience.with_columns(
                pl.col("customer_id").map_elements(lambda value: pseudonymise(value, salt), return_dtype=pl.String)
                .alias("customer_id"))
        _write_export(audience, target, output_format, sheet[:31])
        written.append(Exported(target, audience.height, left_out))
    return written
