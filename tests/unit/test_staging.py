"""Staging rules on raw tables loaded from small files through the real raw path, without a Dagster run: which
line decides an order's attributes, and how repeated keys collapse or go to quarantine."""

from pathlib import Path

import pytest

from assets.raw.mapping import stage_orders
from assets.raw.tables import write_manifest, write_raw_table
from assets.staging import build as staging
from pipelines.core.config import CUSTOMER_FIELDS, LONG_ORDER_FIELDS, load_source_config
from pipelines.core.resources import WarehouseResource
from tests.conftest import write_file

HEADER = "order_id,customer_id,order_ts,category,quantity,amount,payment_method,sku"


def stage(tmp_path: Path, files: dict[str, list[str]]) -> WarehouseResource:
    """Write the order files, load them into raw as a snapshot and build staging for run `run-1`."""
    for name, lines in files.items():
        write_file(tmp_path / "orders" / name, "\n".join([HEADER, *lines]) + "\n")
    config = load_source_config(write_file(tmp_path / "shop.yaml",
                                           "name: staging-test\nshape: long\norders:\n  path: orders/*.csv\n"))
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    staged, manifest = stage_orders(config, scratch)
    with warehouse.connect() as con:
        write_raw_table(con, "raw.orders", staged, LONG_ORDER_FIELDS)
        write_raw_table(con, "raw.customers", [], CUSTOMER_FIELDS)
        write_manifest(con, "run-1", "orders", manifest, None)
        staging.build_staging(con, config, "run-1")
    return warehouse


def rows(warehouse: WarehouseResource, sql: str) -> list[tuple]:
    with warehouse.connect(read_only=True) as con:
        return con.execute(sql).fetchall()


def test_an_order_takes_customer_and_payment_from_its_first_line_in_file_order(tmp_path):
    warehouse = stage(tmp_path, {
        "a.csv": [
            "O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1",
            "O2,C2,2026-03-02 10:00:00,wine,1,20,CASH,w1",
            "O2,C3,2026-03-02 10:00:00,beer,2,5,MOBILE,b1",  # a later line of O2 names another customer
            "O3,C4,2026-03-03 11:00:00,dairy,1,7,MOBILE,d1",
        ],
        # Row 1 of b.csv has a smaller row number than O3's line in a.csv, but a.csv comes first by name.
        "b.csv": ["O3,C5,2026-03-03 09:00:00,wine,1,9,CASH,w2"],
    })
    assert rows(warehouse, "SELECT order_id, customer_id, payment_method, order_ts::VARCHAR, order_amount, n_lines, "
                           "n_items FROM staging.orders ORDER BY order_id") == [
        ("O1", "C1", "CARD", "2026-03-01 10:00:00", 10.0, 1, 1.0),
        ("O2", "C2", "CASH", "2026-03-02 10:00:00", 25.0, 2, 3.0),
        ("O3", "C4", "MOBILE", "2026-03-03 09:00:00", 16.0, 2, 2.0),
    ]
    # The lines keep their own customer; only the order takes the first line's.
    assert rows(warehouse, "SELECT parse_filename(_source_file), _source_row, order_id, customer_id "
                           "FROM staging.order_lines ORDER BY _source_file, _source_row") == [
        ("a.csv", 1, "O1", "C1"), ("a.csv", 2, "O2", "C2"), ("a.csv", 3, "O2", "C3"), ("a.csv", 4, "O3", "C4"),
        ("b.csv", 1, "O3", "C5")]


def test_repeated_keys_with_an_empty_sku_collapse_or_go_to_quarantine(tmp_path):
    warehouse = stage(tmp_path, {"a.csv": [
        "O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,",
        "O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,",  # an exact copy of row 1 (sku empty in both)
        "O1,C1,2026-03-01 10:00:00,wine,2,20,CARD,",  # the same key with other values
        "O1,C1,2026-03-01 10:00:00,beer,1,5,CARD,",  # another key of the same order
        "O2,C2,2026-03-02 10:00:00,wine,1,10,CARD,",
    ]})
    assert rows(warehouse, "SELECT _source_row, order_id, category, sku, quantity FROM staging.order_lines "
                           "ORDER BY _source_row") == [
        (1, "O1", "wine", None, 1.0), (4, "O1", "beer", None, 1.0), (5, "O2", "wine", None, 1.0)]
    assert rows(warehouse, "SELECT parse_filename(source_file), source_row, parse_filename(duplicate_of_file), "
                           "duplicate_of_row, kind FROM quality.removed_duplicates") == [
        ("a.csv", 2, "a.csv", 1, "exact")]
    assert rows(warehouse, "SELECT source_row, column_name, raw_value, reason FROM quality.quarantine") == [
        (3, "order_id", "O1",
         "conflicting duplicate of the order line in row 1 (same order_id, category and sku, different values)")]
    assert rows(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined, duplicates_removed, exact_duplicates, "
                           "conflicting_duplicates FROM quality.load_audit") == [(5, 3, 1, 1, 1, 1)]


STAGED_STATE = ["staging.orders", "staging.order_lines", "staging.customers", "quality.quarantine",
                "quality.removed_duplicates", "quality.key_conflicts", "quality.load_audit"]


def test_a_failure_before_commit_leaves_staging_as_it_was_and_frees_the_typed_rows(tmp_path, monkeypatch):
    warehouse = stage(tmp_path, {"a.csv": ["O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1",
                                           "O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1"]})  # one exact copy
    config = load_source_config(tmp_path / "shop.yaml")

    def state(con) -> dict[str, list[tuple]]:
        return {table: con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
                for table in STAGED_STATE}

    def temporary_objects(con) -> list[str]:
        return [row[0] for row in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'temp'").fetchall()]

    def fail(name: str) -> None:
        if name == "staging:before_commit":
            raise RuntimeError("crash before commit")

    with warehouse.connect() as con:
        before = state(con)
        assert before["quality.removed_duplicates"] and before["staging.orders"]
        # The next load has another order and a manifest of its own, so it would change every table if it committed.
        con.execute("UPDATE raw.orders SET order_id = 'O2'")
        con.execute("UPDATE raw.source_files SET run_id = 'run-2'")
        monkeypatch.setattr(staging, "crash_point", fail)
        with pytest.raises(RuntimeError, match="crash before commit"):
            staging.build_staging(con, config, "run-2")
        assert state(con) == before
        assert temporary_objects(con) == []  # the typed rows, made before the transaction, are freed too
        # The same connection loads again once the cause is gone.
        monkeypatch.setattr(staging, "crash_point", lambda name: None)
        staging.build_staging(con, config, "run-2")
        assert con.execute("SELECT order_id FROM staging.orders").fetchall() == [("O2",)]
        assert con.execute("SELECT run_id, rows_read, rows_loaded, duplicates_removed FROM quality.load_audit "
                           "WHERE run_id = 'run-2'").fetchall() == [("run-2", 2, 1, 1)]
        assert "typed_orders" not in temporary_objects(con)
