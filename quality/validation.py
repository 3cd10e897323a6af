"""Run a Great Expectations suite over a DuckDB table, in batches, and store the outcome.

Why batches: GX 1.x cannot validate DuckDB through its SQL datasource (an upstream IndexError in
`resolve_metric_bundle`), so tables are handed to GX's pandas engine. Handing over 10M rows at once would cost
gigabytes, so a table is split into batches. Two suites are validated at once (validate_suites), each in batches
of about half `quality.validation_batch_rows` rows. A suite whose expectations all judge rows one by one
(ROW_BY_ROW_EXPECTATIONS) is split into consecutive rows; any other (one comparing rows, as uniqueness does) by a
hash of its key: every copy of a key lands in the same batch, which keeps it exact. Either way the counts of the
batches add up to the counts of the whole table.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import threading
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.core.partitions import DayWindow
from pipelines.core.sql import quote_identifier, table_columns, table_exists

if TYPE_CHECKING:
    import great_expectations as gx

# Great Expectations takes about 2 s to import, most of a run's start-up. It is imported when a suite is first
# built or validated, not when the definitions load: a run imports it behind its raw and staging steps
# (pipelines/core/background_import.py), and `dagster dev` or the CLI load the graph without it.
GREAT_EXPECTATIONS_MODULES = ("great_expectations", "great_expectations.execution_engine.pandas_execution_engine")


def great_expectations():
    """The great_expectations package, imported (and set up) on first use; importing is idempotent and
    thread-safe, so two validation threads may both call this.

    GX fingerprints every in-memory batch smaller than HASH_THRESHOLD bytes by hashing all of its values, only to
    label the batch; it validates nothing. On a 2M-row batch that hashing took 0.8 s of a 1 s validation, so we set
    the threshold GX itself uses to skip it. Pinned GX version; tests/graph/test_quality.py notices if the knob
    moves."""
    package, engine = (importlib.import_module(name) for name in GREAT_EXPECTATIONS_MODULES)
    engine.HASH_THRESHOLD = 0
    return package

CRITICAL = "critical"
# The batch number each row of a split table carries while it is read (never a column of a suite's table).
BATCH_COLUMN = "_validation_batch"
STREAM_ROWS = 262_144  # rows per Arrow record batch read from the stream a suite's batches are cut from
# Suites validated at once (validate_suites), each in a thread with a DuckDB cursor of its own. GX spends much of a
# batch in pandas, numpy and Arrow code that lets go of the GIL, and DuckDB reads one suite's rows while GX checks
# another's: the seven suites of a 1M-customer warehouse took 6.0 s in two threads against 10.5 s one after the
# other, on 2 cores, at the same peak memory (each thread's batches hold half of quality.validation_batch_rows).
VALIDATION_THREADS = 2
# Suites are added to and removed from the shared GX context one thread at a time; GX does not say its stores
# may be changed from two threads at once.
_CONTEXT_LOCK = threading.Lock()
WARNING = "warning"


@dataclass(frozen=True)
class SuiteSpec:
    """An expectation suite bound to the SQL that produces the rows it validates."""

    name: str
    table: str
    # SELECT ... FROM <table>; static text, parameters go in `params`. It also selects the partition key; only
    # the columns the row expectations read go to GX (row_columns).
    frame_sql: str
    partition_key: list[str]
    expectations: list[gx.expectations.Expectation]
    params: dict = field(default_factory=dict)
    # Expectations about the table's columns, checked once on its schema (`SELECT * ... LIMIT 0`), so the row
    # batches need to carry only the columns the row expectations read.
    schema_expectations: list[gx.expectations.Expectation] = field(default_factory=list)
    # The landing days whose rows frame_sql selects (a daily source's orders); None: the whole table.
    days: DayWindow | None = None


@dataclass(frozen=True)
class ExpectationOutcome:
    suite: str
    table: str
    expectation: str
    column: str | None
    severity: str
    success: bool
    observed_value: str | None
    element_count: int | None
    unexpected_count: int | None
    unexpected_percent: float | None
    batches: int


def expectation(kind: type, severity: str, **kwargs) -> gx.expectations.Expectation:
    """An expectation tagged critical (blocks publishing) or warning (reported only)."""
    return kind(meta={"severity": severity}, **kwargs)


@lru_cache(maxsize=1)
def _context() -> gx.data_context.AbstractDataContext:
    gx = great_expectations()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = gx.data_context.types.base.ProgressBarsConfig(globally=False)
    return context


@contextmanager
def _registered(spec: SuiteSpec):
    """Register the suite with the in-memory GX context for one validation, and remove it afterwards."""
    context, gx = _context(), great_expectations()
    token = f"{spec.name}-{uuid.uuid4().hex}"
    with _CONTEXT_LOCK:
        asset = context.data_sources.add_pandas(f"ds-{token}").add_dataframe_asset(f"asset-{token}")
        definition = asset.add_batch_definition_whole_dataframe(f"batch-{token}")
        suite = context.suites.add(gx.ExpectationSuite(
            name=f"suite-{token}", expectations=[e.copy(deep=True) for e in spec.expectations]))
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"validation-{token}", data=definition, suite=suite))
    try:
        yield validation
    finally:
        with _CONTEXT_LOCK:
            context.validation_definitions.delete(validation.name)
            context.suites.delete(suite.name)
            context.data_sources.delete(f"ds-{token}")


def _validate_batch(validation: gx.ValidationDefinition, batch: pd.DataFrame) -> list:
    # BASIC carries every count _combine adds up; SUMMARY also tallies the unexpected values, which took as long as
    # the expectation itself (0.07 against 0.01 s per not-null column of 1.8M rows). GX's warnings are silenced by
    # the callers (validate_suite, validate_suites) once around all their threads: warnings.catch_warnings changes
    # process-wide state, so threads entering and leaving it in turn could leave warnings off for the whole run.
    result = validation.run(batch_parameters={"dataframe": batch}, result_format="BASIC")
    return list(result.results)


def _release_batch(validation: gx.ValidationDefinition) -> None:
    """Make GX let go of the batch it just validated, so that its frame is freed as soon as the caller drops it.

    GX's execution engine keeps the last batch (and its data) until the next one replaces it, so each frame lived
    on beside the next one being read. Once the suite is removed, the engine is held only by reference cycles,
    so the last frame lived on until Python's cyclic collector ran, which can be steps later. tests/test_quality.py
    notices if the pinned GX version keeps the batch elsewhere."""
    batches = validation.data.data_asset.datasource.get_execution_engine().batch_manager
    batches.reset_batch_cache()
    batches.batch_data_cache.clear()


COLUMN_ARGUMENTS = ("column", "column_A", "column_B", "column_list")
# The table expectations that read no column. Any other (a set, list or count of columns) reads them all.
ROW_COUNT_EXPECTATIONS = ("expect_table_row_count_to_be_between", "expect_table_row_count_to_equal")


def row_columns(spec: SuiteSpec) -> list[str]:
    """The columns of `spec.frame_sql` that its row expectations read, in first-use order. Empty, meaning every
    column, when an expectation may read columns it does not name: a table expectation other than the row count,
    one without a column argument, or one with a row_condition (which can name any column).

    Only these go to GX. A partition key no expectation reads (raw tables are split by file and row number) only
    splits the table into batches: at 1M customers, handing the raw orders' file names and row numbers to GX as
    well made the raw orders suite take 8.3-9.7 s instead of 6.7-7.0 s."""
    columns: list[str] = []
    for configured in spec.expectations:
        kind, kwargs = configured.expectation_type, configured.configuration.kwargs
        named = [kwargs[a] for a in COLUMN_ARGUMENTS if a in kwargs]
        reads_unnamed = kind.startswith("expect_table_") or not named
        if kwargs.get("row_condition") or (reads_unnamed and kind not in ROW_COUNT_EXPECTATIONS):
            return []
        for value in named:
            columns += [c for c in ([value] if isinstance(value, str) else value) if c not in columns]
    return columns


def _select_list(con: duckdb.DuckDBPyConnection, spec: SuiteSpec) -> str:
    """The batches' SELECT list: the row_columns the frame has, or every column. A column the frame lacks stays
    out, so that GX reports its expectation as failed, as it would on the whole frame."""
    wanted = row_columns(spec)
    if wanted:
        present = {d[0] for d in con.execute(f"SELECT * FROM ({spec.frame_sql}) LIMIT 0", spec.params).description}
        wanted = [c for c in wanted if c in present]
    return ", ".join(quote_identifier(c) for c in wanted) or "*"


# Expectations whose counts over a table are the sums of their counts over any split of its rows: a row is judged
# alone. Any other keeps the hash-partitioned split: uniqueness compares rows, so all copies of a key must share a
# batch, and the type expectations judge a batch's column type, which depends on the rows it holds (an integer
# column with a NULL comes out of DuckDB as Int32, without one as int32).
ROW_BY_ROW_EXPECTATIONS = frozenset({
    "expect_table_row_count_to_be_between", "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_null", "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex", "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set",
})


def splits_anywhere(spec: SuiteSpec) -> bool:
    """Whether every expectation of the suite judges rows one by one, so that its batches may be any split of the
    rows (read in the table's order) rather than hash partitions of the key (read sorted by batch)."""
    return all(e.expectation_type in ROW_BY_ROW_EXPECTATIONS and not e.configuration.kwargs.get("row_condition")
               for e in spec.expectations)


def suite_rows(con: duckdb.DuckDBPyConnection, spec: SuiteSpec) -> int:
    """The rows the suite validates (a daily run's days), not the whole table: counting the table split one
    night's 58k order lines at 1M customers into 5 batches, each a GX validation of its own with the scan repeated."""
    return con.execute(f"SELECT count(*) FROM ({spec.frame_sql})", spec.params).fetchone()[0]


def _batches(con: duckdb.DuckDBPyConnection, spec: SuiteSpec, batch_rows: int, rows: int | None = None):
    rows = suite_rows(con, spec) if rows is None else rows
    count = max(1, math.ceil(rows / batch_rows))
    selected = _select_list(con, spec)
    if count == 1:
        yield 1, query_frame(con, f"SELECT {selected} FROM ({spec.frame_sql})", spec.params)
        return
    if splits_anywhere(spec):
        yield from _batches_in_table_order(con, spec, selected, rows, count)
        return
    # One pass: the rows sorted by their batch number and read as a stream, each batch the run of rows that carry
    # its number. Selecting each batch with a WHERE of its own scanned every row once per batch, which grows with
    # the square of the rows (the suites took 6 min 46 s at 10M customers, 17 s at 1M). The cast matters: hash()
    # is UBIGINT, and an untyped parameter made DuckDB compare in another type, 6x slower on 10M rows.
    key = ", ".join(spec.partition_key)
    reader = con.execute(
        f"SELECT {selected}, hash({key}) % $batch_count::UBIGINT AS {BATCH_COLUMN} FROM ({spec.frame_sql}) "
        f"ORDER BY {BATCH_COLUMN}", spec.params | {"batch_count": count}).to_arrow_reader(STREAM_ROWS)
    # The frames are converted on a connection of their own: a query on `con` would end the open stream.
    with duckdb.connect() as converter:
        schema = reader.schema.remove(reader.schema.get_field_index(BATCH_COLUMN))
        pieces: dict[int, list[pa.RecordBatch]] = {}
        done = 0  # batches yielded so far; a batch is complete once a later number appears
        for chunk in reader:
            numbers = chunk.column(BATCH_COLUMN).to_numpy()
            rows_only = chunk.drop_columns([BATCH_COLUMN])
            starts = np.flatnonzero(np.r_[True, numbers[1:] != numbers[:-1]])
            for start, end in zip(starts, [*starts[1:], len(numbers)]):
                pieces.setdefault(int(numbers[start]), []).append(rows_only.slice(start, end - start))
            while done < int(numbers[-1]):
                yield count, arrow_frame(converter, pa.Table.from_batches(pieces.pop(done, []), schema))
                done += 1
        for index in range(done, count):  # the last batch, and any numbers no row hashed to (an empty frame each)
            yield count, arrow_frame(converter, pa.Table.from_batches(pieces.pop(index, []), schema))


def _batches_in_table_order(con: duckdb.DuckDBPyConnection, spec: SuiteSpec, selected: str, rows: int, count: int):
    """`count` batches of about rows / count consecutive rows each, read as one stream in the table's order: no
    sort (sorting raw.orders by batch number took 1-2 s of its suite's 7 s at 1M customers). The last batch takes
    whatever rows the stream still holds, and batches the stream no longer reaches are empty frames."""
    size = math.ceil(rows / count)
    reader = con.execute(f"SELECT {selected} FROM ({spec.frame_sql})", spec.params).to_arrow_reader(STREAM_ROWS)
    with duckdb.connect() as converter:
        pieces: list[pa.RecordBatch] = []
        held = yielded = 0
        for chunk in reader:
            while chunk.num_rows:
                if yielded == count - 1:  # the last batch takes the rest
                    pieces.append(chunk)
                    break
                take = min(size - held, chunk.num_rows)
                pieces.append(chunk.slice(0, take))
                held, chunk = held + take, chunk.slice(take)
                if held == size:
                    held, yielded = 0, yielded + 1
                    yield count, arrow_frame(converter, _taken(pieces, reader.schema))
        for _ in range(yielded, count):
            yield count, arrow_frame(converter, _taken(pieces, reader.schema))


def _taken(pieces: list[pa.RecordBatch], schema: pa.Schema) -> pa.Table:
    """The pieces as one table, and the list emptied: while GX validates the frame made from it, the generator
    holds no more than the stream chunk it is cutting (at most STREAM_ROWS rows)."""
    table = pa.Table.from_batches(pieces, schema)
    pieces.clear()
    return table


def query_frame(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> pd.DataFrame:
    """The same pandas frame as `con.execute(sql, params).df()`, faster when it holds text.

    DuckDB's .df() builds a Python object per text value before pandas turns them back into Arrow strings; text
    columns are handed over as Arrow instead (raw.orders at 1M rows: 1.9 s against 0.55 s). Every other column
    still goes through DuckDB's own conversion (nullable integers, booleans, dates keep their pandas dtypes), and
    an empty result is converted whole, where DuckDB gives text columns the object dtype.
    """
    return arrow_frame(con, con.execute(sql, params or {}).to_arrow_table())


def arrow_frame(con: duckdb.DuckDBPyConnection, table: pa.Table) -> pd.DataFrame:
    """query_frame of rows already fetched as Arrow."""
    text = [f.name for f in table.schema
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_string_view(f.type)]
    if not text or table.num_rows == 0:
        return con.from_arrow(table).df()
    others = table.drop_columns(text)
    frame = con.from_arrow(others).df() if others.num_columns else pd.DataFrame(index=pd.RangeIndex(table.num_rows))
    for name in text:
        frame[name] = table.column(name).to_pandas()
    return frame[table.column_names]


def _column(config) -> str | None:
    kwargs = config.kwargs
    if "column" in kwargs:
        return kwargs["column"]
    if "column_list" in kwargs:
        return ",".join(kwargs["column_list"])
    return None


def _combine(results: list, batches: int, suite: SuiteSpec) -> ExpectationOutcome:
    """Add up the batches of one expectation into the verdict for the whole table."""
    config = results[0].expectation_config
    severity = (config.meta or {}).get("severity", CRITICAL)
    first = results[0].result or {}
    errors = [r.exception_info.get("exception_message") for r in results
              if r.exception_info and r.exception_info.get("raised_exception")]
    if errors:
        return ExpectationOutcome(suite.name, suite.table, config.type, _column(config), severity, False,
                                  f"error: {errors[0]}", None, None, None, batches)
    if "unexpected_count" in first:
        elements = sum(r.result.get("element_count", 0) for r in results)
        unexpected = sum(r.result.get("unexpected_count", 0) for r in results)
        missing = sum(r.result.get("missing_count", 0) for r in results)
        # GX counts missing values as unexpected for not-null expectations and ignores them elsewhere.
        basis = elements - missing if "missing_count" in first else elements
        percent = 100.0 * unexpected / basis if basis else 0.0
        mostly = config.kwargs.get("mostly")
        success = (unexpected == 0) if mostly is None else (basis == 0 or (1 - percent / 100) >= mostly)
        return ExpectationOutcome(suite.name, suite.table, config.type, _column(config), severity, success,
                                  None, elements, unexpected, round(percent, 6), batches)
    if config.type == "expect_table_row_count_to_be_between":
        total = sum(int(r.result["observed_value"]) for r in results)
        low, high = config.kwargs.get("min_value"), config.kwargs.get("max_value")
        success = (low is None or total >= low) and (high is None or total <= high)
        return ExpectationOutcome(suite.name, suite.table, config.type, None, severity, success, str(total),
                                  total, None, None, batches)
    observed = first.get("observed_value")
    return ExpectationOutcome(
        suite.name, suite.table, config.type, _column(config), severity, all(r.success for r in results),
        None if observed is None else json.dumps(observed, default=str, ensure_ascii=False), None, None, None,
        batches,
    )


def validate_suite(con: duckdb.DuckDBPyConnection, spec: SuiteSpec, batch_rows: int) -> list[ExpectationOutcome]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _validate_suite(con, spec, batch_rows)


def validate_suites(con: duckdb.DuckDBPyConnection, specs: list[SuiteSpec], batch_rows: int,
                    threads: int = VALIDATION_THREADS) -> list[list[ExpectationOutcome]]:
    """The outcomes of each suite, in the order of `specs`. Up to `threads` suites are validated at once, the
    largest first (by the rows each validates), so that the last to finish is a small one. `batch_rows` is what
    they hold at once: each thread hands GX batches of batch_rows / threads rows, so each suite's outcomes are the
    ones validate_suite gives with that batch size. Each thread reads through a cursor of its own: one DuckDB
    connection must not run two queries at once. When a suite fails, or the run is interrupted, the suites not
    started are cancelled and the running ones stopped, and the error is raised."""
    threads = max(1, min(threads, len(specs)))
    rows_per_batch = max(1, batch_rows // threads)
    sizes = [suite_rows(con, spec) for spec in specs]
    largest_first = sorted(range(len(specs)), key=lambda i: -sizes[i])
    _context()  # built once here, not by two threads at once
    cursors = [con.cursor() for _ in specs]
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="validation")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            futures = {i: pool.submit(_validate_suite, cursors[i], specs[i], rows_per_batch, sizes[i])
                       for i in largest_first}
            try:
                return [futures[i].result() for i in range(len(specs))]
            except BaseException:
                # Stop the others rather than finish them (the suites take minutes at 10M customers): cancel what
                # has not started and interrupt the queries of what has, then wait for the threads to end.
                for future in futures.values():
                    future.cancel()
                for cursor in cursors:
                    cursor.interrupt()
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        # Only once no thread uses them.
        for cursor in cursors:
            cursor.close()


def _validate_suite(con: duckdb.DuckDBPyConnection, spec: SuiteSpec, batch_rows: int,
                    rows: int | None = None) -> list[ExpectationOutcome]:
    outcomes = []
    if spec.schema_expectations:
        schema_spec = replace(spec, expectations=spec.schema_expectations, schema_expectations=[])
        with _registered(schema_spec) as validation:
            results = _validate_batch(validation, con.execute(f"SELECT * FROM {spec.table} LIMIT 0").df())
        outcomes += [_combine([result], 1, spec) for result in results]
    # GX returns results grouped its own way; the expectation id ties a result to its expectation.
    per_expectation: dict[str, list] = {}
    batches = 0
    with _registered(spec) as validation:
        for batches, frame in _batches(con, spec, batch_rows, rows):  # noqa: B007 - the last index is the batch count
            for result in _validate_batch(validation, frame):
                per_expectation.setdefault(result.expectation_config.id, []).append(result)
            _release_batch(validation)
            del frame  # now its last reference: freed before the next batch is read
        order = [e.id for e in validation.suite.expectations]
    return outcomes + [_combine(per_expectation[key], batches, spec) for key in order]


RESULT_COLUMNS = ["run_id", "suite", "table_name", "expectation", "column_name", "severity", "success",
                  "observed_value", "element_count", "unexpected_count", "unexpected_percent", "batches",
                  "validated_at", "first_day", "last_day"]


def ensure_results_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""CREATE TABLE IF NOT EXISTS quality.validation_results (
        run_id VARCHAR, suite VARCHAR, table_name VARCHAR, expectation VARCHAR, column_name VARCHAR,
        severity VARCHAR, success BOOLEAN, observed_value VARCHAR, element_count BIGINT, unexpected_count BIGINT,
        unexpected_percent DOUBLE, batches INTEGER, validated_at TIMESTAMP, first_day DATE, last_day DATE)""")
    # Warehouses created before outcomes named their days get the columns (NULL in their older rows).
    present = table_columns(con, "quality.validation_results")
    for column in ("first_day", "last_day"):
        if column not in present:
            con.execute(f"ALTER TABLE quality.validation_results ADD COLUMN {column} DATE")


def store_outcomes(con: duckdb.DuckDBPyConnection, run_id: str, suite: str, outcomes: list[ExpectationOutcome],
                   days: DayWindow | None = None) -> None:
    """This run's outcomes of `suite`; `days`: the landing days whose rows it validated (None: the whole table)."""
    ensure_results_table(con)
    validated_at = datetime.now(UTC).replace(tzinfo=None)
    con.execute("DELETE FROM quality.validation_results WHERE run_id = ? AND suite = ?", [run_id, suite])
    first, last = (days.first, days.last) if days else (None, None)
    if outcomes:
        con.executemany(
            f"INSERT INTO quality.validation_results ({', '.join(RESULT_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in RESULT_COLUMNS)})",
            [[run_id, o.suite, o.table, o.expectation, o.column, o.severity, o.success, o.observed_value,
              o.element_count, o.unexpected_count, o.unexpected_percent, o.batches, validated_at, first, last]
             for o in outcomes],
        )


VALIDATED_DAYS = "quality.validated_days"


def ensure_validated_days_table(con: duckdb.DuckDBPyConnection, day_suites: list[str] | None = None) -> None:
    """Create quality.validated_days. In a warehouse that loaded days before the table existed, each loaded day
    (raw.source_files) is attributed to the run that read its files, which validated its rows with every
    `day_suites` suite: that run's outcomes, when it stored them."""
    exists = table_exists(con, VALIDATED_DAYS)
    con.execute(f"""CREATE TABLE IF NOT EXISTS {VALIDATED_DAYS} (
        suite VARCHAR, day DATE, run_id VARCHAR, validated_at TIMESTAMP, passed BOOLEAN,
        failed_expectations INTEGER, failed_critical INTEGER)""")
    if exists or not day_suites or not table_exists(con, "raw.source_files"):
        return
    ensure_results_table(con)
    con.execute(f"""
        INSERT INTO {VALIDATED_DAYS}
        WITH days AS (SELECT partition_date AS day, max(run_id) AS run_id FROM raw.source_files
                      WHERE input = 'orders' AND partition_date IS NOT NULL GROUP BY ALL)
        SELECT r.suite, d.day, d.run_id, min(r.validated_at), bool_and(r.success),
               count(*) FILTER (WHERE NOT r.success),
               count(*) FILTER (WHERE NOT r.success AND r.severity = '{CRITICAL}')
        FROM days d JOIN quality.validation_results r ON r.run_id = d.run_id
        WHERE r.suite IN (SELECT unnest(?::VARCHAR[]))
        GROUP BY ALL""", [day_suites])


def record_validated_days(con: duckdb.DuckDBPyConnection, run_id: str, suite: str, days: DayWindow,
                          outcomes: list[ExpectationOutcome], loaded: list) -> None:
    """This run validated the rows of `days` with `suite`: those of the `loaded` days (the landing days the table
    holds) now point at its outcomes; a day loaded again is validated again, and its earlier entry replaced."""
    ensure_validated_days_table(con)
    failed = sum(not o.success for o in outcomes)
    critical = sum(not o.success and o.severity == CRITICAL for o in outcomes)
    con.execute(f"DELETE FROM {VALIDATED_DAYS} WHERE suite = ? AND day BETWEEN ? AND ?",
                [suite, days.first, days.last])
    validated = [day for day in loaded if days.first <= day <= days.last]
    con.execute(f"""INSERT INTO {VALIDATED_DAYS}
                    SELECT ?, day, ?, current_timestamp, ?, ?, ? FROM (SELECT unnest(?::DATE[]) AS day)""",
                [suite, run_id, failed == 0, failed, critical, validated])


def kept_days(con: duckdb.DuckDBPyConnection, suite: str, days: DayWindow, loaded: list) -> dict:
    """What the gate keeps for the loaded days outside this run's `days`: how many, validated by which runs, and
    how many of them had a failed expectation (each day's outcomes are in quality.validation_results under the run
    that validated it). `loaded`: the landing days the table holds."""
    ensure_validated_days_table(con)
    others = [day for day in loaded if not days.first <= day <= days.last]
    rows = con.execute(f"""SELECT run_id, count(*), count(*) FILTER (WHERE NOT passed) FROM {VALIDATED_DAYS}
                           WHERE suite = ? AND day IN (SELECT unnest(?::DATE[])) GROUP BY run_id
                           ORDER BY min(day)""", [suite, others]).fetchall()
    kept = sum(n for _, n, _ in rows)
    return {"days_validated_by_this_run": f"{days.first}..{days.last}" if days.first != days.last else str(days.first),
            "days_kept_from_earlier_runs": kept,
            "kept_days_by_run": {run: n for run, n, _ in rows},
            "kept_days_with_failed_expectations": sum(f for _, _, f in rows),
            "loaded_days_without_outcomes": len(others) - kept}


def suite_digest(spec: SuiteSpec) -> str:
    """What the suite checks: its SQL, parameters, partition key and every expectation's configuration."""
    payload = {
        "frame_sql": spec.frame_sql, "params": spec.params, "partition_key": spec.partition_key,
        "expectations": [e.configuration.to_json_dict() for e in spec.expectations],
        "schema_expectations": [e.configuration.to_json_dict() for e in spec.schema_expectations],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def ensure_validated_inputs_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""CREATE TABLE IF NOT EXISTS quality.validated_inputs (
        run_id VARCHAR, suite VARCHAR, input_fingerprint VARCHAR, validated_at TIMESTAMP)""")


def record_validated_input(con: duckdb.DuckDBPyConnection, run_id: str, suite: str, fingerprint: str) -> None:
    ensure_validated_inputs_table(con)
    con.execute("DELETE FROM quality.validated_inputs WHERE run_id = ? AND suite = ?", [run_id, suite])
    con.execute("INSERT INTO quality.validated_inputs VALUES (?, ?, ?, current_timestamp)",
                [run_id, suite, fingerprint])


def reuse_outcomes(con: duckdb.DuckDBPyConnection, run_id: str, suite: str,
                   fingerprint: str) -> tuple[str, list[ExpectationOutcome]] | None:
    """The outcomes of the latest run that validated the same rows with the same suite (`fingerprint`), copied
    under `run_id` with their original validation time; None when there is none. Validating unchanged rows again
    gives the same outcomes: at 1M customers the unchanged customer snapshot took 1 s of every nightly run."""
    ensure_validated_inputs_table(con)
    ensure_results_table(con)
    earlier = con.execute(
        """SELECT run_id FROM quality.validated_inputs
           WHERE suite = ? AND input_fingerprint = ? AND run_id <> ?
             AND run_id IN (SELECT run_id FROM quality.validation_results WHERE suite = ?)
           ORDER BY validated_at DESC LIMIT 1""", [suite, fingerprint, run_id, suite]).fetchone()
    if earlier is None:
        return None
    con.execute("DELETE FROM quality.validation_results WHERE run_id = ? AND suite = ?", [run_id, suite])
    con.execute("""INSERT INTO quality.validation_results
                   SELECT ? AS run_id, * EXCLUDE (run_id) FROM quality.validation_results
                   WHERE run_id = ? AND suite = ? ORDER BY rowid""", [run_id, earlier[0], suite])
    rows = con.execute(
        """SELECT suite, table_name, expectation, column_name, severity, success, observed_value, element_count,
                  unexpected_count, unexpected_percent, batches
           FROM quality.validation_results WHERE run_id = ? AND suite = ? ORDER BY rowid""",
        [run_id, suite]).fetchall()
    record_validated_input(con, run_id, suite, fingerprint)
    return earlier[0], [ExpectationOutcome(*row) for row in rows]
