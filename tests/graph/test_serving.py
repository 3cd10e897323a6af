"""Tests for read-only SQL serving (pipelines.serving), as `persona sql` uses it.

Why these tests: analysts get SQL access to the warehouse that the nightly run writes. Only SELECT and EXPLAIN
may run; anything that writes, reads or writes other files, attaches databases or changes settings must be
refused with a one-line reason, and the warehouse file must be byte-for-byte unchanged afterwards.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.serving import (
    Printed,
    QueryLimits,
    QueryRefused,
    default_max_rows,
    more_rows_note,
    print_query,
    run_read_only_query,
)
from tests.conftest import EXAMPLES, SEED_BASKETS, materialize_graph, query

READ_ONLY_HINT = "persona sql is read-only (SELECT, EXPLAIN)"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refusal(warehouse: Path, sql: str) -> str:
    with pytest.raises(QueryRefused) as info:
        run_read_only_query(warehouse, sql)
    return str(info.value)


@pytest.fixture
def small_warehouse(tmp_path: Path) -> Path:
    """A tiny warehouse with the segment table layout analysts query."""
    path = tmp_path / "small.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA segments")
        con.execute("CREATE TABLE segments.customer_segments (customer_id VARCHAR, segment INTEGER, label_zh VARCHAR, "
                    "income DOUBLE)")
        con.execute("INSERT INTO segments.customer_segments VALUES "
                    "('C1', 0, '家庭主力族', 27000), ('C2', 1, '精致生活族', 30000.5), ('C3', 1, '精致生活族', NULL)")
    return path


@pytest.fixture(scope="module")
def graph_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole graph run once on the seed baskets table (read from ../shared, never copied)."""
    if not SEED_BASKETS.is_file():
        pytest.fail(f"the seed table is expected at {SEED_BASKETS}")
    warehouse = tmp_path_factory.mktemp("graph") / "w.duckdb"
    result = materialize_graph(EXAMPLES / "baskets.yaml", warehouse, input_override=str(SEED_BASKETS))
    assert result.success, [e.message for e in result.all_events if e.is_step_failure]
    return warehouse


# --- allowed queries ------------------------------------------------------------------------------------------


def test_select_returns_a_polars_frame_with_the_values(small_warehouse: Path) -> None:
    frame = run_read_only_query(
        small_warehouse, "SELECT customer_id, segment, label_zh, income FROM segments.customer_segments ORDER BY 1"
    )

    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == ["customer_id", "segment", "label_zh", "income"]
    assert frame.rows() == [("C1", 0, "家庭主力族", 27000.0), ("C2", 1, "精致生活族", 30000.5), ("C3", 1, "精致生活族", None)]
    assert frame.schema["segment"] == pl.Int32


def test_aggregate_with_cte_and_trailing_semicolon(small_warehouse: Path) -> None:
    frame = run_read_only_query(small_warehouse, """
        WITH s AS (SELECT segment, count(*) AS n FROM segments.customer_segments GROUP BY segment)
        SELECT segment, n FROM s ORDER BY segment;  -- sizes per segment
    """)

    assert frame.rows() == [(0, 1), (1, 2)]


def test_explain_is_allowed(small_warehouse: Path) -> None:
    frame = run_read_only_query(small_warehouse, "EXPLAIN SELECT * FROM segments.customer_segments WHERE segment = 1")

    assert frame.columns == ["explain_key", "explain_value"]
    assert frame["explain_key"].to_list() == ["physical_plan"]
    assert "customer_segments" in frame["explain_value"][0]


def test_file_system_is_off_on_the_connection(small_warehouse: Path) -> None:
    frame = run_read_only_query(small_warehouse, "SELECT current_setting('enable_external_access') AS external")

    assert frame.rows() == [(False,)]


def test_select_over_the_seed_run_sees_every_basket_row(graph_warehouse: Path) -> None:
    frame = run_read_only_query(
        graph_warehouse,
        "SELECT _source_row, customer_id, order_amount FROM staging.orders WHERE customer_id = '37917' "
        "ORDER BY _source_row",
    )

    assert frame.columns == ["_source_row", "customer_id", "order_amount"]
    assert frame["_source_row"].to_list() == [27, 917]
    assert frame["customer_id"].to_list() == ["37917", "37917"]
    counts = run_read_only_query(graph_warehouse, "SELECT count(*) AS n FROM staging.orders")
    assert counts.rows() == [(1000,)]


# --- refused statements ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("CREATE TABLE segments.x AS SELECT 1 AS a", "CREATE"),
        ("CREATE TEMP TABLE t AS SELECT 1 AS a", "CREATE"),
        ("INSERT INTO segments.customer_segments VALUES ('C9', 2, 'x', 1)", "INSERT"),
        ("UPDATE segments.customer_segments SET segment = 9", "UPDATE"),
        ("DELETE FROM segments.customer_segments", "DELETE"),
        ("DROP TABLE segments.customer_segments", "DROP"),
        ("ALTER TABLE segments.customer_segments ADD COLUMN y INTEGER", "ALTER"),
        ("SET enable_external_access = true", "SET"),
        ("RESET enable_external_access", "SET"),
        ("LOAD httpfs", "LOAD"),
        ("CHECKPOINT", "CALL"),
        ("BEGIN TRANSACTION", "TRANSACTION"),
        ("DETACH small", "DETACH"),
    ],
)
def test_non_query_statements_are_refused(small_warehouse: Path, sql: str, kind: str) -> None:
    assert _refusal(small_warehouse, sql) == f"refused: {kind} statements are not allowed; {READ_ONLY_HINT}"


def test_copy_to_a_file_is_refused_and_writes_nothing(small_warehouse: Path, tmp_path: Path) -> None:
    target = tmp_path / "leak.csv"

    for sql in (f"COPY segments.customer_segments TO '{target}'", f"COPY (SELECT 1) TO '{target}' (FORMAT csv)"):
        assert _refusal(small_warehouse, sql) == f"refused: COPY statements are not allowed; {READ_ONLY_HINT}"
    assert not target.exists()


def test_export_database_is_refused(small_warehouse: Path, tmp_path: Path) -> None:
    target = tmp_path / "export"

    assert _refusal(small_warehouse, f"EXPORT DATABASE '{target}'").startswith("refused: EXPORT statements")
    assert not target.exists()


def test_attach_is_refused_and_creates_no_database(small_warehouse: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.duckdb"

    assert _refusal(small_warehouse, f"ATTACH '{other}' AS other") == (
        f"refused: ATTACH statements are not allowed; {READ_ONLY_HINT}"
    )
    assert not other.exists()


@pytest.mark.parametrize(
    ("sql", "path"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "/etc/passwd"),
        ("SELECT * FROM read_text('/etc/hostname')", "/etc/hostname"),
        ("SELECT * FROM glob('/etc/*')", "/etc/*"),
    ],
)
def test_reading_files_from_a_select_is_refused(small_warehouse: Path, sql: str, path: str) -> None:
    message = _refusal(small_warehouse, sql)

    assert message.startswith("refused: reading or writing files is not allowed here (")
    assert f'Cannot access file "{path}"' in message


def test_reading_a_file_written_by_the_test_is_refused(small_warehouse: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("token\nabc\n")

    message = _refusal(small_warehouse, f"SELECT * FROM read_csv('{secret}')")

    assert message.startswith("refused: reading or writing files is not allowed here")
    assert "abc" not in message


def test_two_statements_in_one_call_are_refused(small_warehouse: Path) -> None:
    message = _refusal(small_warehouse, "SELECT 1; DELETE FROM segments.customer_segments")

    assert message == "one statement per call, got 2"
    assert query(small_warehouse, "SELECT count(*) FROM segments.customer_segments") == [(3,)]


def test_two_selects_are_refused_too(small_warehouse: Path) -> None:
    assert _refusal(small_warehouse, "SELECT 1; SELECT 2") == "one statement per call, got 2"


@pytest.mark.parametrize("sql", ["", "   ", "-- just a comment"])
def test_no_statement_is_refused(small_warehouse: Path, sql: str) -> None:
    assert _refusal(small_warehouse, sql) == "one statement per call, got 0"


def test_syntax_error_says_it_cannot_parse(small_warehouse: Path) -> None:
    message = _refusal(small_warehouse, "SELEC customer_id FRM segments.customer_segments")

    assert message.startswith("cannot parse the query: Parser Error: syntax error at or near \"SELEC\"")


def test_unknown_table_says_the_query_failed(small_warehouse: Path) -> None:
    message = _refusal(small_warehouse, "SELECT * FROM segments.nope")

    assert message.startswith("query failed: Catalog Error: Table with name nope does not exist")


def test_missing_warehouse_says_run_persona_run_first(tmp_path: Path) -> None:
    missing = tmp_path / "never" / "warehouse.duckdb"

    message = _refusal(missing, "SELECT 1")

    assert message == f"{missing}: no warehouse file here; run `persona run` first or pass --warehouse"
    assert not missing.exists()  # no empty database is created as a side effect


def test_a_folder_is_not_a_warehouse(tmp_path: Path) -> None:
    assert "run `persona run` first" in _refusal(tmp_path, "SELECT 1")


def test_a_file_that_is_not_duckdb_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.duckdb"
    junk.write_text("not a database\n")

    message = _refusal(junk, "SELECT 1")

    assert message.startswith(f"{junk}: cannot open read-only: ")
    assert "not a valid DuckDB database file" in message
    assert junk.read_text() == "not a database\n"


# --- the warehouse is unchanged -------------------------------------------------------------------------------


WRITE_ATTEMPTS = [
    "INSERT INTO segments.customer_segments VALUES ('C9', 2, 'x', 1)",
    "UPDATE segments.customer_segments SET label_zh = 'hacked'",
    "DELETE FROM segments.customer_segments",
    "DROP TABLE segments.customer_segments",
    "CREATE TABLE segments.extra AS SELECT 1",
    "SELECT 1; DROP TABLE segments.customer_segments",
    "SET enable_external_access = true",
    "CHECKPOINT",
]


def test_small_warehouse_bytes_unchanged_after_refused_writes(small_warehouse: Path) -> None:
    before = _sha256(small_warehouse)

    refused = 0
    for sql in WRITE_ATTEMPTS:
        with pytest.raises(QueryRefused):
            run_read_only_query(small_warehouse, sql)
        refused += 1
    run_read_only_query(small_warehouse, "SELECT * FROM segments.customer_segments")

    assert refused == len(WRITE_ATTEMPTS)
    assert _sha256(small_warehouse) == before
    assert query(small_warehouse, "SELECT customer_id, label_zh FROM segments.customer_segments ORDER BY 1") == [
        ("C1", "家庭主力族"), ("C2", "精致生活族"), ("C3", "精致生活族"),
    ]
    assert query(small_warehouse, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'segments'") == [
        ("customer_segments",)
    ]


def test_seed_warehouse_unchanged_after_refused_writes(graph_warehouse: Path) -> None:
    counts_sql = ("SELECT (SELECT count(*) FROM staging.orders), (SELECT count(*) FROM segments.customer_segments), "
                  "(SELECT count(*) FROM staging.customers)")
    counts = query(graph_warehouse, counts_sql)
    tables = query(graph_warehouse, "SELECT table_schema, table_name FROM information_schema.tables ORDER BY 1, 2")
    before = _sha256(graph_warehouse)

    for sql in ("DELETE FROM staging.orders", "DROP TABLE segments.customer_segments",
                "UPDATE staging.customers SET customer_id = NULL", "CREATE TABLE staging.leak AS SELECT 1",
                "SELECT 1; DELETE FROM staging.orders"):
        with pytest.raises(QueryRefused):
            run_read_only_query(graph_warehouse, sql)

    assert counts[0][0] == 1000
    assert query(graph_warehouse, counts_sql) == counts
    assert query(graph_warehouse, "SELECT table_schema, table_name FROM information_schema.tables ORDER BY 1, 2") == tables
    assert _sha256(graph_warehouse) == before


# --- limits: time, memory, threads, rows (issue 20, point 7) -------------------------------------------------


def test_a_runaway_cross_join_is_stopped_at_the_timeout(small_warehouse: Path) -> None:
    started = time.monotonic()
    with pytest.raises(QueryRefused) as info:
        run_read_only_query(small_warehouse, "SELECT count(*) FROM range(1000000) a, range(1000000) b",
                            limits=QueryLimits(timeout=1))
    elapsed = time.monotonic() - started

    assert str(info.value) == ("query stopped after 1 s, its --timeout; narrow the query (WHERE, LIMIT) or pass a "
                               "larger --timeout SECONDS")
    assert elapsed < 1 + 5  # a guard against a query that keeps running, not a performance figure


def test_the_timeout_also_stops_a_query_while_its_rows_stream(small_warehouse: Path) -> None:
    out = io.StringIO()
    with pytest.raises(QueryRefused, match=r"^query stopped after 1\.5 s, its --timeout;"):
        print_query(small_warehouse, "SELECT a.range AS x, b.range AS y FROM range(1000000) a, range(1000000) b",
                    "csv", out, limits=QueryLimits(timeout=1.5))

    assert out.getvalue().startswith("x,y\n0,0\n")  # rows streamed out before the timeout


def test_a_memory_hungry_query_fails_at_the_memory_limit(small_warehouse: Path) -> None:
    started = time.monotonic()
    with pytest.raises(QueryRefused) as info:
        run_read_only_query(small_warehouse, "SELECT string_agg(repeat('x', 1000)) FROM range(10000000)",
                            limits=QueryLimits(memory_limit="100MB"))

    message = str(info.value)
    assert message.startswith("query stopped: it needs more memory than its --memory-limit of 100MB (Out of Memory "
                              "Error: ")
    assert message.endswith("; narrow the query or pass a larger --memory-limit")
    assert "\n" not in message
    assert time.monotonic() - started < 30


def test_limits_are_set_on_the_connection_and_locked(small_warehouse: Path) -> None:
    frame = run_read_only_query(small_warehouse, "SELECT current_setting('memory_limit') AS memory, "
                                "current_setting('threads') AS threads, current_setting('temp_directory') AS spill, "
                                "current_setting('lock_configuration') AS locked",
                                limits=QueryLimits(memory_limit="200MB", threads=1))

    memory, threads, spill, locked = frame.row(0)
    assert memory in ("190.7 MiB", "200.0 MB")  # DuckDB reports the limit in its own units
    assert (threads, spill, locked) == (1, "", True)
    assert _refusal(small_warehouse, "SET memory_limit = '10GB'").startswith("refused: SET statements")


def test_an_unreadable_memory_limit_is_named(small_warehouse: Path) -> None:
    with pytest.raises(QueryRefused) as info:
        run_read_only_query(small_warehouse, "SELECT 1", limits=QueryLimits(memory_limit="lots"))

    assert str(info.value).startswith("--memory-limit 'lots' is not a size DuckDB understands (e.g. 500MB, 2GB): ")


def test_files_in_the_warehouse_spill_folder_are_not_readable(small_warehouse: Path) -> None:
    spill = small_warehouse.with_name(small_warehouse.name + ".tmp")
    spill.mkdir()
    (spill / "left.txt").write_text("spilled secret\n")

    for sql in (f"SELECT * FROM read_text('{spill / 'left.txt'}')", f"SELECT * FROM read_csv('{spill / 'left.txt'}')",
                f"SELECT * FROM glob('{spill}/*')"):
        message = _refusal(small_warehouse, sql)
        assert message.startswith("refused: reading or writing files is not allowed here"), sql
        assert "spilled secret" not in message


PRINTED_TYPES = {
    "interval 1 day": ("1 day", "1 day"),
    "union_value(k := 1)": ("1", "1"),
    "map([1, 2], ['a', 'b'])": ({"1": "a", "2": "b"}, '{""1"": ""a"", ""2"": ""b""}'),
    "{'a': 1, 'b': [1, 2]}": ({"a": 1, "b": [1, 2]}, '{""a"": 1, ""b"": [1, 2]}'),
    "[1, 2]": ([1, 2], "[1, 2]"),
    "[1, 2]::INTEGER[2]": ([1, 2], "[1, 2]"),
    "[interval 2 hour]": ("['02:00:00']", "['02:00:00']"),
    "{'i': interval 3 day}": ("{'i': 3 days}", "{'i': 3 days}"),
    "'\\xAA\\x00'::BLOB": ("\\xAA\\x00", "\\xAA\\x00"),
    "12345678901234567890123456789.123456789::DECIMAL(38, 9)": ("12345678901234567890123456789.123456789",
                                                               "12345678901234567890123456789.123456789"),
    "340282366920938463463374607431768211455::UHUGEINT": ("340282366920938463463374607431768211455",
                                                         "340282366920938463463374607431768211455"),
    "timestamptz '2026-01-05 10:00:00+08'": ("2026-01-05 02:00:00+00", "2026-01-05 02:00:00+00"),
    "'infinity'::TIMESTAMP": ("infinity", "infinity"),
    "'0101'::BIT": ("0101", "0101"),
    "date '2026-01-05'": ("2026-01-05", "2026-01-05"),
}


@pytest.mark.parametrize("expression", list(PRINTED_TYPES))
def test_every_result_type_prints_in_every_format(small_warehouse: Path, expression: str) -> None:
    as_json, as_csv = PRINTED_TYPES[expression]
    sql = f"SELECT {expression} AS v"
    printed = {}
    for output_format in ("table", "csv", "json"):
        out = io.StringIO()
        print_query(small_warehouse, sql, output_format, out)
        printed[output_format] = out.getvalue()

    assert json.loads(printed["json"]) == [{"v": as_json}]
    csv_value = printed["csv"].splitlines()[1]
    assert csv_value in (as_csv, f'"{as_csv}"')
    assert "│ v " in printed["table"]
    assert len(printed["table"].splitlines()) >= 6  # header, type, separator, one value, borders


def test_a_struct_holding_an_interval_stays_readable_in_the_frame(small_warehouse: Path) -> None:
    frame = run_read_only_query(small_warehouse, "SELECT {'i': interval 1 day} AS s, interval 90 minute AS i, "
                                "union_value(n := 'x') AS u, date '2026-01-05' AS d")

    assert frame.row(0) == ("{'i': 1 day}", "01:30:00", "x", date(2026, 1, 5))


@pytest.mark.parametrize("sql", [
    "PIVOT segments.customer_segments ON segment USING count(*) GROUP BY label_zh ORDER BY label_zh",
    "SELECT * FROM (PIVOT segments.customer_segments ON segment USING count(*) GROUP BY label_zh) ORDER BY label_zh",
    "PIVOT segments.customer_segments ON segment IN (0, 1) USING count(*) GROUP BY label_zh ORDER BY label_zh",
])
def test_pivot_is_one_read_only_statement(small_warehouse: Path, sql: str) -> None:
    frame = run_read_only_query(small_warehouse, sql)

    assert frame.columns == ["label_zh", "0", "1"]
    assert frame.rows() == [("家庭主力族", 1, 0), ("精致生活族", 0, 2)]


def test_unpivot_is_one_read_only_statement(small_warehouse: Path) -> None:
    frame = run_read_only_query(small_warehouse, "UNPIVOT (SELECT customer_id, segment, income FROM "
                                "segments.customer_segments WHERE customer_id = 'C1') ON segment, income "
                                "INTO NAME field VALUE amount ORDER BY field")

    assert frame.rows() == [("C1", "income", 27000.0), ("C1", "segment", 0.0)]


def test_pivot_next_to_another_statement_is_still_two(small_warehouse: Path) -> None:
    pivot = "PIVOT segments.customer_segments ON segment USING count(*)"

    assert _refusal(small_warehouse, f"{pivot}; DELETE FROM segments.customer_segments") == \
        "one statement per call, got 2"
    assert _refusal(small_warehouse, f"{pivot}; {pivot}") == "one statement per call, got 2"
    assert _refusal(small_warehouse, f"CREATE TYPE e AS ENUM ('a'); {pivot}") == "one statement per call, got 2"
    assert query(small_warehouse, "SELECT count(*) FROM segments.customer_segments") == [(3,)]


def test_max_rows_cuts_the_output_and_counts_the_rest(small_warehouse: Path) -> None:
    out = io.StringIO()
    printed = print_query(small_warehouse, "SELECT range AS n FROM range(10000)", "csv", out, max_rows=3)

    assert out.getvalue() == "n\n0\n1\n2\n"
    assert printed == Printed(rows=3, more=9997, more_counted=True)
    assert more_rows_note(printed, 3) == ("9,997 more rows not shown (--max-rows 3); pass a larger --max-rows, "
                                          "or 0 for every row")


def test_the_table_shows_a_thousand_rows_by_default(small_warehouse: Path) -> None:
    out = io.StringIO()
    printed = print_query(small_warehouse, "SELECT range AS n FROM range(2500)", "table", out,
                          max_rows=default_max_rows("table"))

    lines = out.getvalue().splitlines()
    assert (printed.rows, printed.more) == (1000, 1500)
    assert "│ 0   │" in lines and "│ 999 │" in lines and "│ 1000 │" not in lines
    assert default_max_rows("csv") is None and default_max_rows("json") is None


def test_the_table_prints_money_in_full(small_warehouse: Path) -> None:
    # A trial read revenue of 1,346,499.32 as 1.3465e6 (polars' default): not a figure to check against a console.
    out = io.StringIO()
    print_query(small_warehouse, "SELECT 1346499.32::DOUBLE AS revenue, 0.125::DOUBLE AS share", "table", out)
    assert "│ 1346499.32 ┆ 0.125 │" in out.getvalue().splitlines(), out.getvalue()


def test_json_without_a_limit_streams_every_row(small_warehouse: Path) -> None:
    out = io.StringIO()
    printed = print_query(small_warehouse, "SELECT range AS n, 'x' || range AS s FROM range(5000)", "json", out)

    rows = json.loads(out.getvalue())
    assert printed == Printed(rows=5000)
    assert len(rows) == 5000 and rows[0] == {"n": 0, "s": "x0"} and rows[-1] == {"n": 4999, "s": "x4999"}
    assert more_rows_note(printed, None) is None


def test_counting_the_rest_stops_at_the_timeout_with_a_lower_bound(small_warehouse: Path) -> None:
    out = io.StringIO()
    printed = print_query(small_warehouse, "SELECT range AS n FROM range(1000000000000)", "csv", out,
                          limits=QueryLimits(timeout=1), max_rows=2)

    assert out.getvalue() == "n\n0\n1\n"
    assert printed.more_counted is False and printed.more > 0
    assert more_rows_note(printed, 2).startswith(f"at least {printed.more:,} more rows (counting stopped at the "
                                                  "--timeout) not shown")


def test_empty_results_keep_their_header(small_warehouse: Path) -> None:
    for output_format, expected in (("csv", "customer_id,segment\n"), ("json", "[]\n")):
        out = io.StringIO()
        print_query(small_warehouse, "SELECT customer_id, segment FROM segments.customer_segments WHERE false",
                    output_format, out)
        assert out.getvalue() == expected


# --- the command line ---------------------------------------------------------------------------------------


def test_cli_stops_a_runaway_query_with_one_line(small_warehouse: Path) -> None:
    from click.testing import CliRunner

    from pipelines.cli import main

    started = time.monotonic()
    result = CliRunner().invoke(main, ["sql", "--warehouse", str(small_warehouse), "--timeout", "1",
                                       "SELECT count(*) FROM range(1000000) a, range(1000000) b"])

    assert result.exit_code == 1
    assert result.stderr == ("persona: query stopped after 1 s, its --timeout; narrow the query (WHERE, LIMIT) or "
                             "pass a larger --timeout SECONDS\n")
    assert time.monotonic() - started < 1 + 5


def test_cli_table_notes_the_rows_left_out(small_warehouse: Path) -> None:
    from click.testing import CliRunner

    from pipelines.cli import main

    result = CliRunner().invoke(main, ["sql", "--warehouse", str(small_warehouse), "--max-rows", "2",
                                       "SELECT range AS n, interval (range) day AS i FROM range(5)"])

    assert result.exit_code == 0, result.output
    assert "│ 1   ┆ 1 day    │" in result.stdout and "│ 2 " not in result.stdout
    assert result.stdout.endswith("3 more rows not shown (--max-rows 2); pass a larger --max-rows, or 0 for every "
                                  "row\n")
