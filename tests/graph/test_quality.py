"""The quality gate's parts: batched Great Expectations validation, stored results, outliers, missing values."""

import gc
import shutil
import weakref
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from pipelines.core.config import load_source_config
from pipelines.demo.generate import generate_demo_data
from quality import outliers, suites
from quality.checks.expectations import suite_check_result
from quality.outliers import outlier_matrix, score_outliers
from quality.validation import (
    CRITICAL,
    WARNING,
    SuiteSpec,
    arrow_frame,
    expectation,
    query_frame,
    store_outcomes,
    validate_suite,
)
from tests.conftest import (
    EXAMPLES,
    materialize_graph,
    planted_outlier_inputs,
    query,
    write_file,
)

E = suites.E


@pytest.fixture
def orders_db(tmp_path) -> duckdb.DuckDBPyConnection:
    """A staging.orders table of 5,000 orders with exactly two duplicated ids and three NULL customer ids."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA staging; CREATE SCHEMA quality")
    con.execute("""
        CREATE TABLE staging.orders AS
        SELECT 'O' || lpad(i::VARCHAR, 6, '0') AS order_id,
               CASE WHEN i IN (10, 20, 30) THEN NULL ELSE 'C' || (i % 700)::VARCHAR END AS customer_id,
               TIMESTAMP '2026-01-01' + INTERVAL (i) MINUTE AS order_ts,
               CASE WHEN i % 3 = 0 THEN 'CARD' ELSE 'CASH' END AS payment_method,
               (i % 50)::DOUBLE AS order_amount, 1::BIGINT AS n_lines
        FROM range(5000) t(i)""")
    con.execute("INSERT INTO staging.orders SELECT * FROM staging.orders WHERE order_id IN ('O000100', 'O004000')")
    yield con
    con.close()


def _spec(mostly: float | None = None) -> SuiteSpec:
    not_null = {"mostly": mostly} if mostly is not None else {}
    return SuiteSpec(
        name="staging_orders", table="staging.orders",
        frame_sql="SELECT order_id, customer_id, payment_method, order_amount FROM staging.orders",
        partition_key=["order_id"],
        expectations=[
            expectation(E.ExpectTableRowCountToBeBetween, CRITICAL, min_value=1),
            expectation(E.ExpectColumnValuesToBeUnique, CRITICAL, column="order_id"),
            expectation(E.ExpectColumnValuesToNotBeNull, WARNING, column="customer_id", **not_null),
            expectation(E.ExpectColumnValuesToBeInSet, CRITICAL, column="payment_method", value_set=["CARD", "CASH"]),
        ],
    )


def test_batches_give_the_same_verdict_as_one_pass(orders_db):
    whole = validate_suite(orders_db, _spec(), batch_rows=1_000_000)
    batched = validate_suite(orders_db, _spec(), batch_rows=1000)
    assert [o.batches for o in whole] == [1] * 4
    assert {o.batches for o in batched} == {6}
    strip = [(o.expectation, o.column, o.success, o.element_count, o.unexpected_count, o.observed_value)
             for o in whole]
    assert strip == [(o.expectation, o.column, o.success, o.element_count, o.unexpected_count, o.observed_value)
                     for o in batched]
    # Both copies of each duplicated id are unexpected, wherever their batch boundaries fell.
    assert strip == [
        ("expect_table_row_count_to_be_between", None, True, 5002, None, "5002"),
        ("expect_column_values_to_be_unique", "order_id", False, 5002, 4, None),
        ("expect_column_values_to_not_be_null", "customer_id", False, 5002, 3, None),
        ("expect_column_values_to_be_in_set", "payment_method", True, 5002, 0, None),
    ]


def test_batches_are_read_in_one_sorted_pass_across_stream_chunks(orders_db, monkeypatch):
    """The batches come from one stream sorted by batch number: with 7-row chunks every batch spans many chunks and
    chunks hold the ends of batches, yet each row lands in exactly the batch its key hashes to, once."""
    from quality import validation

    monkeypatch.setattr(validation, "STREAM_ROWS", 7)
    spec = _spec()
    frames = [frame for _, frame in validation._batches(orders_db, spec, batch_rows=1000)]
    assert len(frames) == 6
    expected = orders_db.execute(
        "SELECT hash(order_id) % 6::UBIGINT AS batch, count(*), count(customer_id) FROM staging.orders GROUP BY 1 "
        "ORDER BY 1").fetchall()
    assert [(i, len(f), int(f["customer_id"].notna().sum())) for i, f in enumerate(frames)] == expected
    assert sorted(o for f in frames for o in f["order_id"]) == sorted(
        row[0] for row in orders_db.execute("SELECT order_id FROM staging.orders").fetchall())
    # More batches than distinct keys: the numbers no key hashes to are empty frames with the suite's columns.
    few = SuiteSpec(name="few", table="staging.orders", partition_key=["payment_method"],
                    frame_sql="SELECT order_id, payment_method FROM staging.orders",
                    expectations=[expectation(E.ExpectColumnValuesToBeInSet, CRITICAL, column="payment_method",
                                              value_set=["CARD", "CASH"]),
                                  expectation(E.ExpectCompoundColumnsToBeUnique, CRITICAL,
                                              column_list=["payment_method", "order_id"])])
    sizes = [len(frame) for _, frame in validation._batches(orders_db, few, batch_rows=1000)]
    assert len(sizes) == 6 and sum(sizes) == 5002 and sizes.count(0) >= 4
    assert [(o.success, o.element_count, o.unexpected_count, o.batches)
            for o in validate_suite(orders_db, few, batch_rows=1000)] == [(True, 5002, 0, 6), (False, 5002, 4, 6)]


def _retail_lines(tmp_path: Path, online_retail: Path) -> duckdb.DuckDBPyConnection:
    """A database whose staging.lines holds the online-retail export's invoice, customer, country and quantity."""
    con = duckdb.connect(str(tmp_path / "retail.duckdb"))
    con.execute("CREATE SCHEMA staging")
    con.execute("CREATE TABLE staging.lines AS SELECT Invoice AS invoice, \"Customer ID\"::VARCHAR AS customer_id, "
                "Country AS country, Quantity AS quantity FROM read_parquet($path)", {"path": str(online_retail)})
    return con


def test_streamed_batches_count_a_real_export_exactly(tmp_path, monkeypatch, online_retail):
    """The online-retail export (525,461 lines nobody here generated; an invoice spans many lines, a quarter of the
    lines have no customer): split into 11 batches read from one sorted stream in 4,096-row chunks, every
    expectation counts what SQL counts over the whole file, and what validating it whole counts."""
    from quality import validation

    monkeypatch.setattr(validation, "STREAM_ROWS", 4096)
    con = _retail_lines(tmp_path, online_retail)
    spec = SuiteSpec(
        name="retail_lines", table="staging.lines", partition_key=["invoice"],
        frame_sql="SELECT invoice, customer_id, country, quantity FROM staging.lines",
        expectations=[expectation(E.ExpectColumnValuesToBeUnique, CRITICAL, column="invoice"),
                      expectation(E.ExpectColumnValuesToNotBeNull, WARNING, column="customer_id"),
                      expectation(E.ExpectColumnValuesToBeInSet, WARNING, column="country",
                                  value_set=["United Kingdom"]),
                      # A number column too: frames with one go through DuckDB's own conversion.
                      expectation(E.ExpectColumnValuesToBeBetween, WARNING, column="quantity", min_value=1)])
    lines, repeated, no_customer, abroad, returns = con.execute("""
        SELECT count(*), count(*) FILTER (WHERE per_invoice > 1), count(*) - count(customer_id),
               count(*) FILTER (WHERE country <> 'United Kingdom'), count(*) FILTER (WHERE quantity < 1)
        FROM (SELECT *, count(*) OVER (PARTITION BY invoice) AS per_invoice FROM staging.lines)""").fetchone()
    assert lines == 525_461 and repeated > 400_000 and no_customer > 100_000 and abroad > 0 and returns > 0
    expected = [("expect_column_values_to_be_unique", lines, repeated),
                ("expect_column_values_to_not_be_null", lines, no_customer),
                ("expect_column_values_to_be_in_set", lines, abroad),
                ("expect_column_values_to_be_between", lines, returns)]
    batched = validate_suite(con, spec, batch_rows=50_000)
    whole = validate_suite(con, spec, batch_rows=1_000_000)
    assert {o.batches for o in batched} == {11} and {o.batches for o in whole} == {1}
    assert [(o.expectation, o.element_count, o.unexpected_count) for o in batched] == expected
    assert [(o.expectation, o.element_count, o.unexpected_count) for o in whole] == expected
    con.close()


def test_row_by_row_suites_split_the_real_export_in_table_order(tmp_path, monkeypatch, online_retail):
    """A suite whose expectations judge rows one by one (no uniqueness) is split into consecutive runs of rows read
    in the table's order, without sorting: on the online-retail export, 11 batches read in 4,096-row chunks hold
    every line once, in order, and count what SQL counts."""
    from quality import validation

    monkeypatch.setattr(validation, "STREAM_ROWS", 4096)
    con = duckdb.connect(str(tmp_path / "retail.duckdb"))
    con.execute("CREATE SCHEMA raw")
    con.execute("CREATE TABLE raw.lines AS SELECT row_number() OVER () AS line, Invoice AS invoice, "
                "\"Customer ID\"::VARCHAR AS customer_id, Quantity::VARCHAR AS quantity FROM read_parquet($path)",
                {"path": str(online_retail)})
    spec = SuiteSpec(
        name="retail_raw", table="raw.lines", partition_key=["line"],
        frame_sql="SELECT line, invoice, customer_id, quantity FROM raw.lines ORDER BY line",
        expectations=[expectation(E.ExpectTableRowCountToBeBetween, CRITICAL, min_value=1),
                      expectation(E.ExpectColumnValuesToNotBeNull, WARNING, column="customer_id"),
                      expectation(E.ExpectColumnValuesToMatchRegex, WARNING, column="quantity",
                                  regex=r"^[0-9]+$"),
                      expectation(E.ExpectColumnValuesToBeBetween, WARNING, column="line", min_value=1)])
    assert validation.splits_anywhere(spec)
    frames = [frame for _, frame in validation._batches(con, spec, batch_rows=50_000)]
    assert [len(f) for f in frames] == [47_770] * 10 + [525_461 - 10 * 47_770]
    assert np.array_equal(np.concatenate([f["line"].to_numpy() for f in frames]), np.arange(1, 525_462))
    lines, no_customer, not_plain = con.execute(
        "SELECT count(*), count(*) - count(customer_id), count(*) FILTER (WHERE NOT regexp_full_match(quantity, "
        "'[0-9]+')) FROM raw.lines").fetchone()
    assert no_customer > 100_000 and not_plain > 0  # returns are negative quantities
    outcomes = validate_suite(con, spec, batch_rows=50_000)
    assert [(o.expectation, o.element_count, o.unexpected_count, o.batches) for o in outcomes] == [
        ("expect_table_row_count_to_be_between", lines, None, 11),
        ("expect_column_values_to_not_be_null", lines, no_customer, 11),
        ("expect_column_values_to_match_regex", lines, not_plain, 11),
        ("expect_column_values_to_be_between", lines, 0, 11)]
    con.close()


def test_suites_validated_at_once_give_what_each_gives_alone(tmp_path, monkeypatch, online_retail):
    """Suites of the online-retail export validated two at a time (sorted and streamed batches, a failing and a
    passing suite, an empty one) come back in the order given, each outcome equal to validating that suite alone
    in batches of half the rows (the two threads share `batch_rows`; a suite alone gets them all). Python's warning
    filters are as they were, and a suite failing in its thread fails the call and stops the others."""
    import threading
    import warnings

    from quality import validation

    con = _retail_lines(tmp_path, online_retail)
    by_invoice = SuiteSpec(
        name="by_invoice", table="staging.lines", partition_key=["invoice"],
        frame_sql="SELECT invoice, customer_id, country FROM staging.lines",
        expectations=[expectation(E.ExpectColumnValuesToBeUnique, CRITICAL, column="invoice"),
                      expectation(E.ExpectColumnValuesToNotBeNull, WARNING, column="customer_id")])
    row_by_row = SuiteSpec(
        name="row_by_row", table="staging.lines", partition_key=["invoice"],
        frame_sql="SELECT invoice, quantity FROM staging.lines",
        expectations=[expectation(E.ExpectColumnValuesToBeBetween, WARNING, column="quantity", min_value=1),
                      expectation(E.ExpectColumnValuesToNotBeNull, CRITICAL, column="invoice")])
    abroad = replace(by_invoice, name="abroad", frame_sql="SELECT * FROM staging.lines WHERE country = 'France'",
                     expectations=[expectation(E.ExpectColumnValuesToBeInSet, CRITICAL, column="country",
                                               value_set=["France"])])
    nowhere = replace(abroad, name="nowhere", frame_sql="SELECT * FROM staging.lines WHERE country = 'Atlantis'")
    specs = [nowhere, by_invoice, abroad, row_by_row]
    threads_used = {}
    validate_in_thread = validation._validate_suite

    def recording(cursor, spec, *args):
        threads_used[spec.name] = threading.current_thread().name
        return validate_in_thread(cursor, spec, *args)

    monkeypatch.setattr(validation, "_validate_suite", recording)
    filters_before = list(warnings.filters)
    together = validation.validate_suites(con, specs, batch_rows=100_000, threads=2)
    assert warnings.filters == filters_before
    assert set(threads_used) == {"nowhere", "by_invoice", "abroad", "row_by_row"}
    assert len(set(threads_used.values())) == 2 and threading.current_thread().name not in threads_used.values()
    alone = [validate_suite(con, spec, batch_rows=50_000) for spec in specs]
    assert together == alone
    assert {o.batches for o in together[1]} == {11}  # 525,461 lines in batches of 50,000
    assert [[(o.suite, o.success, o.element_count) for o in outcomes] for outcomes in together] == [
        [("nowhere", True, 0)],
        [("by_invoice", False, 525_461), ("by_invoice", False, 525_461)],
        [("abroad", True, alone[2][0].element_count)],
        [("row_by_row", False, 525_461), ("row_by_row", True, 525_461)]]
    assert alone[2][0].element_count > 1000  # France has real lines in the export
    # One suite alone holds every row of batch_rows.
    assert validation.validate_suites(con, [by_invoice], batch_rows=100_000) == [
        validate_suite(con, by_invoice, batch_rows=100_000)]
    # The hash split reads a column the table does not have: the error comes from the suite's thread.
    threads_used.clear()
    broken = replace(by_invoice, name="broken", partition_key=["no_such_column"])
    with pytest.raises(duckdb.BinderException, match="no_such_column"):
        validation.validate_suites(con, [broken, row_by_row], batch_rows=100_000, threads=2)
    assert threads_used["broken"] != threading.current_thread().name
    assert warnings.filters == filters_before
    con.close()


def test_only_row_by_row_suites_skip_the_sort():
    """A uniqueness expectation, or a row condition (which may name any column), keeps the hash-partitioned sort."""
    from quality.validation import splits_anywhere

    assert not splits_anywhere(_spec())
    conditional = SuiteSpec(name="c", table="t", frame_sql="SELECT * FROM t", partition_key=["a"], expectations=[
        expectation(E.ExpectColumnValuesToNotBeNull, CRITICAL, column="a", row_condition='b=="x"',
                    condition_parser="pandas")])
    assert not splits_anywhere(conditional)
    assert splits_anywhere(replace(conditional, expectations=[
        expectation(E.ExpectColumnValuesToNotBeNull, CRITICAL, column="a")]))


def test_number_pattern_takes_ascii_digits_and_any_blank():
    """The raw suites' number pattern takes ASCII digits, as staging's cast does (a full-width digit is quarantined
    there), with blanks around them as `\\s` means them to Python (the no-break and ideographic spaces the cast
    takes among them; a few control characters it takes are not cast). Written without `\\d` and `\\s`, pandas
    matches it in Arrow rather than value by value in Python."""
    import warnings

    import pandas as pd

    numbers = [" 3 ", "-2.5e3", "\t4\n", ".5", "+7.", "3\u00a0", "\u30008"]
    others = ["５", "1,5", "", "e3", "NaN", "3 4", "\u200b3"]
    values = pd.Series(numbers + others, dtype="str")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas: the pattern has groups
        assert values.str.contains(suites.NUMBER_PATTERN).tolist() == [True] * 7 + [False] * 7
    con = duckdb.connect()
    read = [con.execute("SELECT isfinite(TRY_CAST(NULLIF(trim(?), '') AS DOUBLE))", [v]).fetchone()[0] is True
            for v in numbers + others]
    assert read == [True] * 7 + [False] * 7
    # (A value with a newline sends any pattern with `$` to Python, as `$` differs there; exports rarely hold one.)
    assert not values[~values.str.contains("\n", regex=False)].array._needs_python_regex(suites.NUMBER_PATTERN)


def test_each_validated_batch_is_freed_before_the_next_is_read(orders_db, monkeypatch):
    """GX's objects around a batch form reference cycles; with Python's automatic collector off, only the suite's
    own collection frees the frames (at 1M customers they held 0.4-0.6 GB between steps)."""
    from quality import validation

    alive_when_read = []
    batch_refs = []

    def tracked_frame(con, table):
        alive_when_read.append(sum(ref() is not None for ref in batch_refs))
        frame = arrow_frame(con, table)
        batch_refs.append(weakref.ref(frame))
        return frame

    monkeypatch.setattr(validation, "arrow_frame", tracked_frame)
    gc.collect()
    gc.disable()
    try:
        outcomes = validate_suite(orders_db, _spec(), batch_rows=1000)
    finally:
        gc.enable()
    assert {o.batches for o in outcomes} == {6}
    assert len(batch_refs) == 6
    assert alive_when_read == [0] * 6
    assert [ref() for ref in batch_refs] == [None] * 6


def test_gx_gets_only_the_columns_its_row_expectations_read(orders_db, monkeypatch, tmp_path):
    from quality import validation

    handed_over = []

    def spy(con, table):
        frame = arrow_frame(con, table)
        handed_over.append(list(frame.columns))
        return frame

    monkeypatch.setattr(validation, "arrow_frame", spy)
    spec = _spec()  # its frame also selects order_amount, which no expectation reads
    read = ["order_id", "customer_id", "payment_method"]
    assert validation.row_columns(spec) == read
    whole = validate_suite(orders_db, spec, batch_rows=1_000_000)
    batched = validate_suite(orders_db, spec, batch_rows=1000)
    assert handed_over == [read] * 7  # one whole-table frame, then six batches
    assert [(o.expectation, o.success, o.element_count, o.unexpected_count) for o in whole] == [
        ("expect_table_row_count_to_be_between", True, 5002, None),
        ("expect_column_values_to_be_unique", False, 5002, 4),
        ("expect_column_values_to_not_be_null", False, 5002, 3),
        ("expect_column_values_to_be_in_set", True, 5002, 0),
    ] == [(o.expectation, o.success, o.element_count, o.unexpected_count) for o in batched]
    # Raw tables are split into batches by file and row number, which no expectation reads.
    config = load_source_config(write_file(tmp_path / "shop.yaml", "name: t\nshape: long\norders: {path: o.csv}\n"))
    assert validation.row_columns(suites.raw_orders_suite(config)) == [
        "order_id", "customer_id", "order_ts", "category", "quantity"]
    # Where an expectation may read columns it does not name, every column of the frame is handed over.
    every_column = ["order_id", "customer_id", "payment_method", "order_amount"]
    row_count_only = replace(spec, expectations=spec.expectations[:1])
    column_set = replace(spec, expectations=[
        expectation(E.ExpectTableColumnsToMatchSet, CRITICAL, column_set=every_column, exact_match=True)])
    conditioned = replace(spec, expectations=[expectation(
        E.ExpectColumnValuesToBeBetween, CRITICAL, column="order_amount", min_value=1,
        row_condition='payment_method=="CARD"', condition_parser="pandas")])
    assert [validation.row_columns(s) for s in (row_count_only, column_set, conditioned)] == [[], [], []]
    handed_over.clear()
    outcomes = [validate_suite(orders_db, s, batch_rows=1_000_000)[0] for s in (row_count_only, column_set, conditioned)]
    assert handed_over == [every_column] * 3
    # The set holds every column; amount 0 exists among the CARD orders (i % 3 == 0 and i % 50 == 0).
    assert [(o.success, o.unexpected_count) for o in outcomes] == [(True, None), (True, None), (False, 34)]


def test_a_column_missing_from_the_frame_fails_its_expectation_not_the_suite(orders_db):
    spec = replace(_spec(), expectations=[
        expectation(E.ExpectColumnValuesToNotBeNull, CRITICAL, column="order_id"),
        expectation(E.ExpectColumnValuesToNotBeNull, CRITICAL, column="coupon_code"),
    ])
    outcomes = validate_suite(orders_db, spec, batch_rows=1000)
    assert [(o.column, o.success) for o in outcomes] == [("order_id", True), ("coupon_code", False)]
    assert (outcomes[1].element_count, outcomes[1].unexpected_count) == (None, None)  # GX could not evaluate it


def test_query_frame_is_what_duckdb_df_gives(tmp_path):
    """Text goes through Arrow, the rest through DuckDB: the frame GX validates is the one .df() would give."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("""CREATE TABLE t AS SELECT * FROM (VALUES
        ('a', 1, 1.5, TRUE, TIMESTAMP '2026-01-01 08:00', DATE '2026-01-01', 2::BIGINT, 'x', 0.5::DOUBLE),
        (NULL, NULL, NULL, NULL, NULL, NULL, 3::BIGINT, NULL, NULL),
        ('客群', 4, 2.25, FALSE, TIMESTAMP '2026-01-02 09:30', DATE '2026-01-02', 5::BIGINT, '', 1e300::DOUBLE))
        v(s, i, d, b, ts, dt, j, s2, f)""")
    for sql in ("SELECT * FROM t", "SELECT s, s2 FROM t", "SELECT i, b FROM t", "SELECT * FROM t LIMIT 0",
                "SELECT * FROM t WHERE j > $low"):
        params = {"low": 2} if "$low" in sql else None
        expected = con.execute(sql, params or {}).df()
        got = query_frame(con, sql, params)
        assert got.dtypes.to_dict() == expected.dtypes.to_dict(), sql
        assert got.equals(expected), sql
    assert query_frame(con, "SELECT * FROM t").loc[2, "s"] == "客群"
    con.close()


def test_gx_batch_fingerprinting_is_switched_off(monkeypatch):
    """validation.py relies on this GX knob to skip hashing every batch; a GX upgrade must not drop it silently."""
    import great_expectations.execution_engine.pandas_execution_engine as engine

    from quality.validation import great_expectations

    monkeypatch.setattr(engine, "HASH_THRESHOLD", 1_000_000)  # GX's own default
    great_expectations()  # what every suite and validation calls first sets the knob
    assert engine.HASH_THRESHOLD == 0
    assert "HASH_THRESHOLD" in engine.PandasExecutionEngine.get_batch_data_and_markers.__globals__


def test_mostly_is_judged_on_the_whole_table(orders_db):
    outcomes = validate_suite(orders_db, _spec(mostly=0.999), batch_rows=1000)
    not_null = next(o for o in outcomes if o.expectation == "expect_column_values_to_not_be_null")
    assert not_null.success and not_null.unexpected_percent == pytest.approx(300 / 5002)
    outcomes = validate_suite(orders_db, _spec(mostly=0.9995), batch_rows=1000)
    assert not next(o for o in outcomes if o.expectation == "expect_column_values_to_not_be_null").success


def test_critical_failure_blocks_and_warning_alone_does_not(orders_db):
    outcomes = validate_suite(orders_db, _spec(), batch_rows=1000)
    blocking = suite_check_result(outcomes)
    assert not blocking.passed and blocking.severity == dg.AssetCheckSeverity.ERROR
    assert "staging.orders: expect_column_values_to_be_unique(order_id) [critical]: 4 unexpected" in blocking.description
    orders_db.execute("DELETE FROM staging.orders WHERE rowid IN (SELECT max(rowid) FROM staging.orders "
                      "GROUP BY order_id HAVING count(*) > 1)")
    warning_only = suite_check_result(validate_suite(orders_db, _spec(), batch_rows=1000))
    assert not warning_only.passed and warning_only.severity == dg.AssetCheckSeverity.WARN


def test_outcomes_are_stored_per_run_and_replaced_on_retry(orders_db):
    outcomes = validate_suite(orders_db, _spec(), batch_rows=1000)
    store_outcomes(orders_db, "run-1", "staging_orders", outcomes)
    store_outcomes(orders_db, "run-1", "staging_orders", outcomes)
    store_outcomes(orders_db, "run-2", "staging_orders", outcomes[:1])
    rows = orders_db.execute("""SELECT run_id, count(*), count(*) FILTER (WHERE NOT success)
                                FROM quality.validation_results GROUP BY run_id ORDER BY run_id""").fetchall()
    assert rows == [("run-1", 4, 2), ("run-2", 1, 0)]
    stored = orders_db.execute("""SELECT expectation, column_name, severity, unexpected_count, unexpected_percent
                                  FROM quality.validation_results WHERE run_id = 'run-1' AND NOT success
                                  ORDER BY expectation""").fetchall()
    assert stored == [("expect_column_values_to_be_unique", "order_id", CRITICAL, 4, pytest.approx(400 / 5002)),
                      ("expect_column_values_to_not_be_null", "customer_id", WARNING, 3, pytest.approx(300 / 5002))]


def test_suites_are_built_from_config_thresholds(tmp_path):
    config = load_source_config(write_file(tmp_path / "shop.yaml", """
name: t
shape: long
orders: {path: o.csv}
customers: {path: c.csv}
quality: {min_key_share: 0.8, age_range: [16, 99], min_profile_coverage: 0.7}
"""))
    raw = suites.raw_orders_suite(config)
    mostly = {e.column: e.mostly for e in raw.expectations if e.expectation_type == "expect_column_values_to_not_be_null"}
    assert mostly == {"order_id": 0.8, "customer_id": 0.8, "order_ts": 0.8, "category": 0.8}
    customers = suites.staging_customers_suite(config)
    age = next(e for e in customers.expectations
               if e.expectation_type == "expect_column_values_to_be_between" and e.column == "age")
    assert (age.min_value, age.max_value) == (16, 99)
    integrity = next(e for e in customers.expectations if getattr(e, "column", None) == "in_customer_file")
    assert (integrity.mostly, integrity.meta["severity"]) == (0.7, WARNING)
    now = datetime(2026, 5, 1, 12)
    orders = suites.staging_orders_suite(config, now)
    future = next(e for e in orders.expectations if getattr(e, "column", None) == "order_ts_epoch")
    assert future.max_value == datetime(2026, 5, 2, 12, tzinfo=UTC).timestamp()


def test_profile_coverage_is_judged_only_for_the_fields_the_customer_file_has(tmp_path):
    """A trial's Etsy customer file had no age or income column: the run warned that 100% of its 1,900 customers
    had no age and no income, as if the file had lost them."""
    config = load_source_config(write_file(tmp_path / "shop.yaml", "name: t\nshape: long\norders: {path: o.csv}\n"
                                                                   "customers: {path: c.csv}\n"))
    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging")
    con.execute("CREATE TABLE staging.customers AS SELECT * FROM (VALUES ('C1', NULL::DOUBLE, 52000.0), "
                "('C2', NULL, NULL)) t(customer_id, age, income)")
    assert suites.profile_fields_provided(con, config) == ("income",)
    # A column mapped by name that comes out all blank is what the warning is for.
    mapped = load_source_config(write_file(tmp_path / "mapped.yaml", "name: t\nshape: long\norders: {path: o.csv}\n"
                                                                      "customers: {path: c.csv, columns: {age: 年龄}}\n"))
    assert suites.profile_fields_provided(con, mapped) == ("age", "income")

    def coverage(provided):
        return [e.column for e in suites.staging_customers_suite(config, provided).expectations
                if e.expectation_type == "expect_column_values_to_not_be_null" and e.meta["severity"] == WARNING]

    assert coverage(("income",)) == ["income"]
    assert coverage(()) == []
    assert coverage(("age", "income")) == ["age", "income"]


def test_outlier_scores_are_deterministic_and_find_the_extremes():
    inputs = planted_outlier_inputs(np.random.default_rng(0), normal=2000, extreme=10)
    first = score_outliers(inputs, contamination=0.005, seed=42)
    second = score_outliers(inputs, contamination=0.005, seed=42)
    assert first.equals(second)
    flagged = set(first.filter(pl.col("is_outlier")).get_column("customer_id"))
    # 0.5% of 2,010 customers is 10.05, so the forest flags 11: the 10 extremes and the next strangest.
    assert len(flagged) == 11 and {f"C{i}" for i in range(2000, 2010)} <= flagged
    top = first.filter(pl.col("customer_id") == "C2000").row(0, named=True)
    assert top["top_feature"] in {"total_spend", "n_orders", "income", "max_items_per_order", "avg_basket_value",
                                  "max_order_amount"}
    assert top["top_feature_value"] > top["population_median"]
    assert score_outliers(inputs, contamination=0.02, seed=42).get_column("is_outlier").sum() > 10


def test_outlier_flags_and_scores_are_scikit_learns_own():
    """One scoring pass gives what IsolationForest(contamination=...).predict and score_samples give."""
    from sklearn.ensemble import IsolationForest
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    from quality.outliers import MAX_SAMPLES, OUTLIER_FEATURES, TREES

    inputs = planted_outlier_inputs(np.random.default_rng(3), normal=3000, extreme=15)
    scored = score_outliers(inputs, contamination=0.01, seed=7)
    matrix = inputs.select([pl.col(c).cast(pl.Float64).clip(lower_bound=0).log1p()
                            .pipe(lambda x: pl.max_horizontal(x, x.median())).alias(c)
                            for c in OUTLIER_FEATURES]).to_numpy()
    reference = Pipeline([("impute", SimpleImputer(strategy="median")), ("forest", IsolationForest(
        n_estimators=TREES, max_samples=min(MAX_SAMPLES, inputs.height), contamination=0.01, random_state=7))]).fit(matrix)
    assert scored.get_column("is_outlier").to_list() == (reference.predict(matrix) == -1).tolist()
    assert scored.get_column("score").to_list() == np.round(-reference.score_samples(matrix), 6).tolist()
    # The 1st percentile of 3,015 scores lies between the 31st and the 32nd lowest: 31 customers are below it.
    assert scored.get_column("is_outlier").sum() == 31


def test_quiet_customers_are_not_outliers():
    """A single small order is unusual only at the low end, which does not count."""
    inputs = planted_outlier_inputs(np.random.default_rng(1), normal=3000, extreme=0)
    quiet = pl.DataFrame({"customer_id": ["Q"], "total_spend": [0.5], "n_orders": [1.0], "avg_basket_value": [0.5],
                          "max_order_amount": [0.5], "max_items_per_order": [1.0], "income": [1000.0]})
    scored = score_outliers(pl.concat([inputs, quiet]), contamination=0.005, seed=42)
    assert not scored.filter(pl.col("customer_id") == "Q").get_column("is_outlier")[0]


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    data = generate_demo_data(root / "data", customers=6000, seed=5, outlier_share=0.005)
    config = write_file(root / "shop.yaml", f"name: planted\nshape: long\norders:\n  path: {data.orders_path}\n"
                                            f"customers:\n  path: {data.customers_path}\n")
    warehouse = root / "warehouse.duckdb"
    result = materialize_graph(config, warehouse)
    assert result.success
    return data, warehouse, result


def test_outlier_inputs_from_the_kept_order_aggregates_equal_grouping_every_order(planted_run, tmp_path):
    _, warehouse, _ = planted_run
    copy = tmp_path / "copy.duckdb"
    shutil.copy(warehouse, copy)
    with duckdb.connect(str(copy)) as con:
        assert outliers.order_maxima_source(con) == "features.customer_order_stats"
        from_stats = outliers.outlier_inputs(con)
        # A warehouse whose aggregates predate the two columns groups the orders instead, with the same values.
        for column in outliers.ORDER_MAXIMA:
            con.execute(f"ALTER TABLE features.customer_order_stats DROP COLUMN {column}")
        assert outliers.order_maxima_source(con) == outliers.ORDER_MAXIMA_FROM_ORDERS
        from_orders = outliers.outlier_inputs(con)
    assert from_stats.height == 6000
    assert from_stats["max_order_amount"].gt(0).sum() > 5000
    assert from_stats.equals(from_orders)


def test_isolation_forest_recovers_planted_extremes(planted_run):
    data, warehouse, _ = planted_run
    truth = pl.read_csv(data.truth_path, schema_overrides={"customer_id": pl.String})
    planted = set(truth.filter(pl.col("planted_outlier") == 1).get_column("customer_id"))
    flagged = {row[0] for row in query(warehouse, "SELECT customer_id FROM quality.outliers WHERE is_outlier")}
    assert len(planted) == 30
    hits = len(planted & flagged)
    assert hits / len(planted) >= 0.9
    assert hits / len(flagged) >= 0.8


def test_outliers_keep_a_segment_but_do_not_shape_it(planted_run):
    _, warehouse, result = planted_run
    flagged = query(warehouse, "SELECT count(*) FROM quality.outliers WHERE is_outlier")[0][0]
    marked = query(warehouse, """SELECT count(*) FROM segments.customer_segments s
                                 JOIN quality.outliers o USING (customer_id)
                                 WHERE s.is_outlier AND o.is_outlier AND s.segment_id IS NOT NULL""")[0][0]
    assert marked == flagged > 0
    metadata = next(m for m in result.asset_materializations_for_node("model__customer_clusters")
                    if m.asset_key == dg.AssetKey(["model", "customer_clusters"])).metadata
    assert metadata["left_out_as_outliers"].value == flagged
    assert metadata["fitted_on"].value == 6000 - flagged
    assert query(warehouse, "SELECT sum(outliers) FROM segments.segment_profiles") == [(flagged,)]


def test_run_stores_gx_results_outliers_and_missing_values(planted_run):
    _, warehouse, _ = planted_run
    results = query(warehouse, """SELECT count(*), count(DISTINCT suite),
                                         count(*) FILTER (WHERE severity = 'critical' AND NOT success)
                                  FROM quality.validation_results""")
    assert results[0][0] >= 10 and results[0][1] == 7 and results[0][2] == 0
    assert query(warehouse, "SELECT count(*) FROM quality.outliers") == [(6000,)]
    missing = dict(query(warehouse, "SELECT column_name, imputed_share FROM quality.missing_values"))
    assert missing["age"] == 0.0 and missing["cat_wine"] == 0.0


def test_customers_without_a_profile_raise_a_warning_not_a_block(tmp_path):
    lines = ["order_id,customer_id,order_ts,category,quantity,amount,payment_method"]
    lines += [f"O{i},C{i % 40},2026-03-0{1 + i % 9} 10:00:00,{['wine', 'dairy', 'beer'][i % 3]},1,{5 + i % 17},CARD"
              for i in range(200)]
    write_file(tmp_path / "orders.csv", "\n".join(lines) + "\n")
    # Only 10 of the 40 ordering customers are in the customer file: 25% coverage, below the 90% default.
    write_file(tmp_path / "customers.csv", "customer_id,age,gender,income\n" + "\n".join(
        f"C{i},{20 + i},{'MF'[i % 2]},{30000 + 1000 * i}" for i in range(10)) + "\n")
    config = write_file(tmp_path / "shop.yaml",
                        "name: t\nshape: long\norders: {path: orders.csv}\ncustomers: {path: customers.csv}\n"
                        "model: {k: 3}\n")
    result = materialize_graph(config, tmp_path / "w.duckdb")
    assert result.success
    evaluation = next(e for e in result.get_asset_check_evaluations()
                      if e.check_name == "staging_customers_expectations")
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "expect_column_values_to_be_in_set(in_customer_file) [warning]: 30 unexpected (75.00%)" in (
        evaluation.description)
    assert query(tmp_path / "w.duckdb", "SELECT count(*) FROM segments.customer_segments") == [(40,)]
    imputed = dict(query(tmp_path / "w.duckdb", "SELECT column_name, imputed_share FROM quality.missing_values"))
    assert imputed["age"] == 0.75 and imputed["income"] == 0.75


def test_seed_table_passes_every_critical_expectation(seed_warehouse):
    failed = query(seed_warehouse, "SELECT suite, expectation FROM quality.validation_results WHERE NOT success")
    assert failed == []
    suites_run = {row[0] for row in query(seed_warehouse, "SELECT DISTINCT suite FROM quality.validation_results")}
    assert suites_run == {"raw_orders", "raw_customers", "staging_orders", "staging_order_lines", "staging_customers",
                          "raw_products", "staging_products"}
    assert Path(EXAMPLES / "baskets.yaml").is_file()


def test_outlier_matrix_of_one_column_can_be_filled_in_place():
    # polars returns a read-only view of a single float column; the forest fills the matrix's gaps in place.
    inputs = pl.DataFrame({"n_orders": [1.0, None, 3.0, 8.0]})
    matrix = outlier_matrix(inputs, ["n_orders"])
    assert matrix.flags.writeable
    matrix[np.isnan(matrix)] = 0.0
    assert np.isnan(matrix).sum() == 0 and matrix.shape == (4, 1)
