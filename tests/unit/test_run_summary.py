"""What `persona run` prints after publishing: the counts of the published warehouse, or one line saying they
could not be read (never nothing)."""

import duckdb

from pipelines.progress import summary_lines


def test_summary_counts_the_published_warehouse(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA segments; CREATE SCHEMA quality")
        con.execute("CREATE TABLE segments.customer_segments AS SELECT range AS customer_id FROM range(1200)")
        con.execute("CREATE TABLE segments.segment_profiles AS SELECT range AS segment_id FROM range(4)")
        con.execute("CREATE TABLE quality.load_audit (run_id VARCHAR, input VARCHAR, rows_read BIGINT, "
                    "rows_loaded BIGINT, rows_quarantined BIGINT, duplicates_removed BIGINT)")
        # Two order files and a member file: the rows read are split by input, orders first.
        con.execute("INSERT INTO quality.load_audit VALUES ('r1', 'customers', 1210, 1200, 10, 0), "
                    "('r1', 'orders', 1500, 1480, 15, 5), ('r1', 'orders', 10, 10, 0, 0), "
                    "('r0', 'orders', 99, 99, 0, 0)")
    assert summary_lines(warehouse, "r1", 2) == [
        "Customers: 1,200 in 4 segments",
        "Rows:      2,720 read this run (orders 1,510, customers 1,210), 2,690 loaded, 25 quarantined, 5 duplicates "
        "removed",
        "Warnings:  2 (listed above)",
    ]
    # Orders alone: nothing to split.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("DELETE FROM quality.load_audit WHERE input = 'customers'")
    assert summary_lines(warehouse, "r1", 0)[1] == (
        "Rows:      1,510 read this run, 1,490 loaded, 15 quarantined, 5 duplicates removed")


def test_an_unreadable_warehouse_is_said_not_skipped(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    warehouse.write_bytes(b"not a database" * 512)
    assert summary_lines(warehouse, "r1", 0, "persona sql --warehouse shop.duckdb") == [
        f"Summary:   not available: {warehouse} could not be read for the counts (the run itself published; "
        "try persona sql --warehouse shop.duckdb against it)",
        "Warnings:  0",
    ]


def test_summary_says_how_many_quarantined_rows_are_cancelled_orders_or_returns(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA quality")
        con.execute("CREATE TABLE quality.load_audit (run_id VARCHAR, input VARCHAR, rows_read BIGINT, "
                    "rows_loaded BIGINT, rows_quarantined BIGINT, duplicates_removed BIGINT, rows_set_aside BIGINT)")
        con.execute("INSERT INTO quality.load_audit VALUES ('r1', 'orders', 1000, 880, 120, 0, 106), "
                    "('r2', 'orders', 50, 45, 5, 0, 5), ('r3', 'orders', 50, 50, 0, 0, NULL)")
    assert summary_lines(warehouse, "r1", 0)[0] == (
        "Rows:      1,000 read this run, 880 loaded, 120 quarantined (106 of them set aside: cancelled, returned, free or "
        "without a customer id), 0 duplicates removed")
    assert summary_lines(warehouse, "r2", 0)[0] == (
        "Rows:      50 read this run, 45 loaded, 5 quarantined (all set aside: cancelled, returned, free or without a "
        "customer id), 0 duplicates removed")
    assert summary_lines(warehouse, "r3", 0)[0] == (
        "Rows:      50 read this run, 50 loaded, 0 quarantined, 0 duplicates removed")


def test_summary_says_how_many_lines_of_earlier_runs_this_run_took_back(tmp_path):
    """A night whose rolling export cancels or refunds orders an earlier night loaded takes their lines back
    (assets/staging/takebacks.py): they are none of this run's rows, so the summary says so on a line of its own."""
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA quality")
        con.execute("CREATE TABLE quality.load_audit (run_id VARCHAR, input VARCHAR, rows_read BIGINT, "
                    "rows_loaded BIGINT, rows_quarantined BIGINT, duplicates_removed BIGINT, rows_set_aside BIGINT)")
        con.execute("INSERT INTO quality.load_audit VALUES ('r2', 'orders', 40, 30, 4, 6, 4)")
        con.execute("CREATE TABLE quality.retracted_lines (run_id VARCHAR, source_row BIGINT)")
        con.execute("INSERT INTO quality.retracted_lines VALUES ('r2', 1), ('r2', 3), ('r1', 9)")
    assert summary_lines(warehouse, "r2", 0) == [
        "Rows:      40 read this run, 30 loaded, 4 quarantined (all set aside: cancelled, returned, free or without a "
        "customer id), 6 duplicates removed",
        "Retracted: 2 order lines loaded by earlier runs, taken back by later cancellations or refunds "
        "(quality.retracted_lines)",
        "Warnings:  0"]
