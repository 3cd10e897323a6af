"""The raw layer's storage (assets/raw/files.py): raw tables are views over the Parquet files staged for them,
replaced whole or by day in the caller's transaction, with replaced and orphaned files removed after commit."""

from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from assets.raw.files import STORED_FILES, remove_unlisted_files, write_raw_table
from assets.raw.readers import IngestError
from pipelines.core.config import LONG_ORDER_FIELDS
from pipelines.core.partitions import DayWindow
from pipelines.core.resources import STORAGE_VERSION, WarehouseResource, raw_files_folder_for
from pipelines.serving import QueryRefused, run_read_only_query

FIELDS = ["order_id"]


def staged_file(folder: Path, name: str, day: str | None, order_ids: list[str], **more: list[str]) -> Path:
    """A file as the readers stage it: source file and row, the contract's fields as text, the landing day."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    pl.DataFrame({
        "_source_file": [f"{name}.csv"] * len(order_ids),
        "_source_row": list(range(1, len(order_ids) + 1)),
        "order_id": order_ids,
        **more,
        "_partition_date": [date.fromisoformat(day) if day else None] * len(order_ids),
    }, schema_overrides={"_partition_date": pl.Date}).write_parquet(path)
    return path


def day(text: str) -> DayWindow:
    return DayWindow(date.fromisoformat(text), date.fromisoformat(text))


@pytest.fixture
def warehouse(tmp_path: Path) -> WarehouseResource:
    return WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))


def order_ids(con) -> list[tuple]:
    return con.execute("SELECT _partition_date::VARCHAR, order_id FROM raw.orders ORDER BY ALL").fetchall()


def files_in(warehouse: WarehouseResource) -> list[str]:
    return sorted(path.name for path in raw_files_folder_for(warehouse.raw_file).glob("orders/*"))


def test_a_daily_load_replaces_its_days_files_and_the_replaced_files_go_after_commit(tmp_path, warehouse):
    scratch = tmp_path / "scratch"
    with warehouse.connect() as con:
        write_raw_table(con, "raw.orders", [staged_file(scratch, "a", "2026-01-01", ["O1", "O2"]),
                                            staged_file(scratch, "b", "2026-01-02", ["O3"])],
                        FIELDS, DayWindow(date(2026, 1, 1), date(2026, 1, 2)))
        first = files_in(warehouse)
        # Day 2 again, with other rows: day 1 is kept, day 2's rows are replaced, never doubled.
        write_raw_table(con, "raw.orders", [staged_file(scratch, "c", "2026-01-02", ["O4", "O5"])], FIELDS,
                        day("2026-01-02"))
        assert order_ids(con) == [("2026-01-01", "O1"), ("2026-01-01", "O2"), ("2026-01-02", "O4"),
                                  ("2026-01-02", "O5")]
        assert len(files_in(warehouse)) == 3  # the replaced file stays until the load is committed
        removed = remove_unlisted_files(con)
        assert [path.name for path in removed] == [name for name in first if name.startswith("2026-01-02")]
        assert files_in(warehouse) == sorted(
            [name for name in first if name.startswith("2026-01-01")]
            + [row[0].rsplit("/", 1)[1] for row in con.execute(
                f"SELECT file FROM {STORED_FILES} WHERE partition_date = '2026-01-02'").fetchall()])
        assert not list(scratch.iterdir())  # the staged files were moved in, not copied


def test_a_load_rolled_back_leaves_the_rows_as_they_were_and_its_files_are_removed(tmp_path, warehouse):
    scratch = tmp_path / "scratch"
    with warehouse.connect() as con:
        write_raw_table(con, "raw.orders", [staged_file(scratch, "a", None, ["O1"])], FIELDS)
        kept = files_in(warehouse)
        con.execute("BEGIN TRANSACTION")
        write_raw_table(con, "raw.orders", [staged_file(scratch, "b", None, ["O2", "O3"])], FIELDS)
        assert order_ids(con) == [(None, "O2"), (None, "O3")]
        con.execute("ROLLBACK")
        assert order_ids(con) == [(None, "O1")]
        moved_in = [name for name in files_in(warehouse) if name not in kept]
        assert len(moved_in) == 1  # the rolled-back load's file: nothing lists it
        assert [path.name for path in remove_unlisted_files(con)] == moved_in
        assert files_in(warehouse) == kept
        assert order_ids(con) == [(None, "O1")]


def test_a_field_added_by_a_newer_contract_reads_as_null_for_the_days_already_loaded(tmp_path, warehouse):
    scratch = tmp_path / "scratch"
    with warehouse.connect() as con:
        write_raw_table(con, "raw.orders", [staged_file(scratch, "a", "2026-01-01", ["O1"])], FIELDS,
                        day("2026-01-01"))
        write_raw_table(con, "raw.orders", [staged_file(scratch, "b", "2026-01-02", ["O2"], line_id=["L2"])],
                        [*FIELDS, "line_id"], day("2026-01-02"))
        assert con.execute("SELECT order_id, line_id FROM raw.orders ORDER BY order_id").fetchall() == [
            ("O1", None), ("O2", "L2")]


def test_a_field_gone_from_the_contract_asks_for_a_full_reload_and_keeps_the_rows(tmp_path, warehouse):
    scratch = tmp_path / "scratch"
    with warehouse.connect() as con:
        write_raw_table(con, "raw.orders", [staged_file(scratch, "a", "2026-01-01", ["O1"], line_id=["L1"])],
                        [*FIELDS, "line_id"], day("2026-01-01"))
        con.execute("BEGIN TRANSACTION")
        with pytest.raises(IngestError, match=r"raw.orders: the columns loaded for .* differ from those of the 1 "
                                              r"rows already loaded for other days \(from 2026-01-01\); reload "
                                              r"every day at once: persona run --all-days"):
            write_raw_table(con, "raw.orders", [staged_file(scratch, "b", "2026-01-02", ["O2"])], FIELDS,
                            day("2026-01-02"))
        con.execute("ROLLBACK")
        remove_unlisted_files(con)
        assert con.execute("SELECT order_id, line_id FROM raw.orders").fetchall() == [("O1", "L1")]
        assert len(files_in(warehouse)) == 1


def test_a_load_without_files_is_an_empty_table_with_the_contracts_columns(warehouse):
    with warehouse.connect() as con:
        write_raw_table(con, "raw.orders", [], LONG_ORDER_FIELDS)
        assert con.execute("SELECT count(*) FROM raw.orders").fetchone() == (0,)
        columns = [row[0] for row in con.execute("DESCRIBE raw.orders").fetchall()]
    assert columns == ["_source_file", "_source_row", *LONG_ORDER_FIELDS, "_partition_date"]


def test_a_raw_table_of_an_older_version_keeps_its_other_days_when_a_day_is_loaded(tmp_path, warehouse):
    with warehouse.connect() as con:
        # Before raw rows were kept in files, raw.orders was a DuckDB table.
        con.execute("""CREATE TABLE raw.orders AS SELECT * FROM (VALUES
            ('a.csv', 1, 'O1', DATE '2026-01-01'), ('a.csv', 2, 'O2', DATE '2026-01-01'),
            ('b.csv', 1, 'O3', DATE '2026-01-02')) t(_source_file, _source_row, order_id, _partition_date)""")
        write_raw_table(con, "raw.orders", [staged_file(tmp_path / "scratch", "c", "2026-01-02", ["O4"])],
                        FIELDS, day("2026-01-02"))
        assert con.execute("SELECT table_type FROM information_schema.tables WHERE table_catalog = 'raw' "
                           "AND table_name = 'orders'").fetchone() == ("VIEW",)
        assert con.execute("SELECT _source_file, _source_row, order_id, _partition_date::VARCHAR FROM raw.orders "
                           "ORDER BY ALL").fetchall() == [
            ("a.csv", 1, "O1", "2026-01-01"), ("a.csv", 2, "O2", "2026-01-01"), ("c.csv", 1, "O4", "2026-01-02")]


def test_sql_on_the_working_warehouse_reads_raw_rows_and_no_other_file(tmp_path, warehouse):
    with warehouse.connect() as con:
        write_raw_table(con, "raw.orders", [staged_file(tmp_path / "scratch", "a", None, ["O1", "O2"])], FIELDS)
    secret = tmp_path / "secret.csv"
    secret.write_text("x\n1\n")
    assert run_read_only_query(warehouse.file, "SELECT order_id FROM raw.orders ORDER BY 1",
                               warehouse.raw_file).rows() == [("O1",), ("O2",)]
    with pytest.raises(QueryRefused, match="reading or writing files is not allowed"):
        run_read_only_query(warehouse.file, f"SELECT * FROM read_csv('{secret}')", warehouse.raw_file)


def test_a_moved_warehouse_folder_reads_its_raw_rows_at_their_new_place(tmp_path):
    before = WarehouseResource(path=str(tmp_path / "old" / "warehouse.duckdb"))
    with before.connect() as con:
        write_raw_table(con, "raw.orders", [staged_file(tmp_path / "scratch", "a", "2026-01-01", ["O1"])], FIELDS,
                        day("2026-01-01"))
    (tmp_path / "old").rename(tmp_path / "new")
    after = WarehouseResource(path=str(tmp_path / "new" / "warehouse.duckdb"))
    with after.connect() as con:
        write_raw_table(con, "raw.orders", [staged_file(tmp_path / "scratch", "b", "2026-01-02", ["O2"])], FIELDS,
                        day("2026-01-02"))
        assert order_ids(con) == [("2026-01-01", "O1"), ("2026-01-02", "O2")]
        folders = {row[0] for row in con.execute(
            f"SELECT regexp_extract(file, '^(.*)/orders/[^/]+$', 1) FROM {STORED_FILES}").fetchall()}
    assert folders == {str(raw_files_folder_for(after.raw_file))}


def test_sql_on_a_moved_warehouse_says_the_next_run_repoints_the_raw_tables(tmp_path):
    before = WarehouseResource(path=str(tmp_path / "old" / "warehouse.duckdb"))
    with before.connect() as con:
        write_raw_table(con, "raw.orders", [staged_file(tmp_path / "scratch", "a", None, ["O1"])], FIELDS)
    (tmp_path / "old").rename(tmp_path / "new")
    after = WarehouseResource(path=str(tmp_path / "new" / "warehouse.duckdb"))
    with pytest.raises(QueryRefused, match=rf"files were written under {tmp_path / 'old'}.* the next `persona run` "
                                           rf"points the raw tables at {raw_files_folder_for(after.raw_file)}"):
        run_read_only_query(after.file, "SELECT order_id FROM raw.orders", after.raw_file)
    assert run_read_only_query(after.file, "SELECT 1 AS one", after.raw_file).rows() == [(1,)]
    with after.connect():
        pass  # any writable connection, as every run opens, points them at the new place
    assert run_read_only_query(after.file, "SELECT order_id FROM raw.orders", after.raw_file).rows() == [("O1",)]


def test_a_daily_load_whose_kept_days_lost_a_file_names_it_and_the_way_out(tmp_path, warehouse):
    scratch = tmp_path / "scratch"
    with warehouse.connect() as con:
        write_raw_table(con, "raw.orders", [staged_file(scratch, "a", "2026-01-01", ["O1"])], FIELDS,
                        day("2026-01-01"))
        lost = next(raw_files_folder_for(warehouse.raw_file).glob("orders/*.parquet"))
        lost.unlink()
        with pytest.raises(IngestError, match=rf"raw.orders: the raw rows of 2026-01-01 \(1 file\(s\) in all\) are "
                                              rf"missing from .*: {lost.name}; reload every day at once: "
                                              rf"persona run --all-days"):
            write_raw_table(con, "raw.orders", [staged_file(scratch, "b", "2026-01-02", ["O2"])], FIELDS,
                            day("2026-01-02"))
        # Reloading every day replaces the lost file.
        write_raw_table(con, "raw.orders", [staged_file(scratch, "c", "2026-01-01", ["O1"]),
                                            staged_file(scratch, "d", "2026-01-02", ["O2"])], FIELDS,
                        DayWindow(date(2026, 1, 1), date(2026, 1, 2)))
        assert order_ids(con) == [("2026-01-01", "O1"), ("2026-01-02", "O2")]


def test_a_day_without_files_still_brings_the_columns_a_newer_contract_adds(tmp_path, warehouse):
    with warehouse.connect() as con:
        write_raw_table(con, "raw.orders", [staged_file(tmp_path / "scratch", "a", "2026-01-01", ["O1"])], FIELDS,
                        day("2026-01-01"))
        write_raw_table(con, "raw.orders", [], [*FIELDS, "line_id"], day("2026-01-02"))
        assert con.execute("SELECT order_id, line_id, _partition_date::VARCHAR FROM raw.orders").fetchall() == [
            ("O1", None, "2026-01-01")]
        # The empty file stands for its day: a load of another day keeps it, a reload of that day replaces it.
        assert con.execute(f"SELECT partition_date::VARCHAR, rows FROM {STORED_FILES} ORDER BY 1").fetchall() == [
            ("2026-01-01", 1), ("2026-01-02", 0)]
        write_raw_table(con, "raw.orders", [staged_file(tmp_path / "scratch", "c", "2026-01-03", ["O3"],
                                                        line_id=["L3"])], [*FIELDS, "line_id"], day("2026-01-03"))
        write_raw_table(con, "raw.orders", [staged_file(tmp_path / "scratch", "b", "2026-01-02", ["O2"],
                                                        line_id=["L2"])], [*FIELDS, "line_id"], day("2026-01-02"))
        assert con.execute(f"SELECT partition_date::VARCHAR, rows FROM {STORED_FILES} ORDER BY 1").fetchall() == [
            ("2026-01-01", 1), ("2026-01-02", 1), ("2026-01-03", 1)]
        assert order_ids(con) == [("2026-01-01", "O1"), ("2026-01-02", "O2"), ("2026-01-03", "O3")]


def test_a_warehouse_folder_with_glob_characters_reads_only_its_own_files(tmp_path):
    shop = WarehouseResource(path=str(tmp_path / "shop[1]" / "warehouse.duckdb"))
    with shop.connect() as con:
        write_raw_table(con, "raw.orders", [staged_file(tmp_path / "scratch", "a", None, ["S1"])], FIELDS)
    # The same file name under "shop1", which the pattern "shop[1]" matches if the path is read as a glob.
    own = next(raw_files_folder_for(shop.raw_file).glob("orders/*.parquet"))
    decoy = tmp_path / "shop1" / own.relative_to(tmp_path / "shop[1]")
    staged_file(decoy.parent, decoy.name, None, ["D1", "D2"])
    with shop.connect() as con:
        assert order_ids(con) == [(None, "S1")]
    # persona sql --unpublished reads them too: the folder is allowed as the view names it.
    assert run_read_only_query(shop.file, "SELECT order_id FROM raw.orders", shop.raw_file).rows() == [("S1",)]


def test_a_warehouse_path_with_a_backslash_and_a_glob_character_is_refused(tmp_path):
    shop = WarehouseResource(path=str(tmp_path / "shop\\a[1]" / "warehouse.duckdb"))
    with shop.connect() as con, pytest.raises(IngestError, match=r"holds a backslash and one of \* \? \[.*--warehouse"):
        write_raw_table(con, "raw.orders", [staged_file(tmp_path / "scratch", "a", None, ["S1"])], FIELDS)


def test_a_failed_daily_load_without_files_leaves_no_file_behind(tmp_path, warehouse):
    with warehouse.connect() as con:
        write_raw_table(con, "raw.orders", [staged_file(tmp_path / "scratch", "a", "2026-01-01", ["O1"])], FIELDS,
                        day("2026-01-01"))
        next(raw_files_folder_for(warehouse.raw_file).glob("orders/*.parquet")).unlink()
        with pytest.raises(IngestError, match="are missing from"):
            write_raw_table(con, "raw.orders", [], FIELDS, day("2026-01-02"))
    assert files_in(warehouse) == []


def storage_versions(con) -> dict[str, str]:
    return dict(con.execute("SELECT database_name, tags['storage_version'] FROM duckdb_databases() "
                            "WHERE database_name IN ('raw', current_database())").fetchall())


def test_new_warehouse_files_take_the_pinned_storage_format_and_older_files_keep_theirs(tmp_path):
    # A working database created before the format was pinned (DuckDB's default, readable by v0.10.2) still opens
    # and takes writes; only files the pipeline creates are in the v1.4 format.
    older = WarehouseResource(path=str(tmp_path / "old" / "warehouse.duckdb"))
    older.file.parent.mkdir(parents=True)
    with duckdb.connect(str(older.file)) as con:
        con.execute("CREATE TABLE kept AS SELECT 1 AS n")
    with older.connect() as con:
        con.execute("CREATE TABLE staging.t AS SELECT 'C' || range AS customer_id FROM range(3)")
        assert storage_versions(con) == {"warehouse": "v1.0.0+", "raw": f"{STORAGE_VERSION}+"}
    new = WarehouseResource(path=str(tmp_path / "new" / "warehouse.duckdb"))
    with new.connect() as con:
        con.execute("CREATE TABLE staging.t AS SELECT 'C' || range AS customer_id FROM range(3)")
        assert storage_versions(con) == {"warehouse": f"{STORAGE_VERSION}+", "raw": f"{STORAGE_VERSION}+"}
    with duckdb.connect(str(older.file), read_only=True) as con:
        assert con.execute("SELECT list(customer_id ORDER BY customer_id) FROM staging.t").fetchone()[0] == \
            ["C0", "C1", "C2"]
