"""Tests for read-only SQL serving (pipelines.serving), as `persona sql` uses it.

Why these tests: analysts get SQL access to the warehouse that the nightly run writes. Only SELECT and EXPLAIN
may run; anything that writes, reads or writes other files, attaches databases or changes settings must be
refused with a one-line reason, and the warehouse file must be byte-for-byte unchanged afterwards.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.serving import QueryRefused, run_read_only_query
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
