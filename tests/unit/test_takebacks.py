"""A daily source's later cancellations and refunds take back what an earlier day loaded (assets/staging/takebacks.py).

Shops export a rolling window (the last 7 days, every night) so that an order cancelled or a line refunded after
the day it was bought reaches their figures; the first day's copy of such an order used to stand for good. The
days below are such an export: day 2 repeats day 1's orders with their new statuses (Youzan's order status and
售后状态), day 3 repeats them again."""

from datetime import date
from pathlib import Path

import polars as pl

from assets.raw.files import write_raw_table
from assets.staging import build as staging
from pipelines.core.config import CUSTOMER_FIELDS, LONG_ORDER_FIELDS, load_source_config
from pipelines.core.partitions import DayWindow
from pipelines.core.resources import WarehouseResource
from tests.conftest import write_file

HEADER = "order_id,customer_id,order_ts,category,quantity,amount,payment_method,sku,status,line_status"
DAY_1 = ["O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1,交易成功,",
         "O1,C1,2026-03-01 10:00:00,beer,2,6,CARD,b1,交易成功,",
         "O2,C2,2026-03-01 11:00:00,wine,1,20,CASH,w1,交易成功,",
         "O3,C3,2026-03-01 12:00:00,dairy,1,5,CASH,d1,交易成功,"]
# O1's wine line refunded, O2 cancelled, O1's beer line repeated as it was, and a new order.
DAY_2 = ["O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1,交易成功,退款成功",
         "O1,C1,2026-03-01 10:00:00,beer,2,6,CARD,b1,交易成功,",
         "O2,C2,2026-03-01 11:00:00,wine,1,20,CASH,w1,已取消,",
         "P1,C4,2026-03-02 09:00:00,wine,1,7,CARD,w1,交易成功,"]
# The same refund and cancellation repeated by the next night's export: nothing more to take back.
DAY_3 = ["O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1,交易成功,退款成功",
         "O2,C2,2026-03-01 11:00:00,wine,1,20,CASH,w1,已取消,"]
LINES = "SELECT _partition_date::VARCHAR, order_id, category, amount FROM staging.order_lines ORDER BY ALL"
ORDERS = "SELECT order_id, customer_id, order_amount, n_lines, n_items FROM staging.orders ORDER BY ALL"


def day_file(folder: Path, day: str, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fields = HEADER.split(",")
    values = [line.split(",") for line in lines]
    columns = {field: [(row[fields.index(field)] or None) if field in fields else None for row in values]
               for field in LONG_ORDER_FIELDS}
    path = folder / f"{day}-{len(list(folder.iterdir()))}.parquet"
    pl.DataFrame({"_source_file": [f"orders/{day}.csv"] * len(lines), "_source_row": list(range(1, len(lines) + 1)),
                  **columns, "_partition_date": [date.fromisoformat(day)] * len(lines)},
                 schema_overrides={field: pl.String for field in LONG_ORDER_FIELDS}).write_parquet(path)
    return path


def load_days(con, config, folder: Path, days: dict[str, list[str]], run_id: str) -> None:
    """Load the landing days `days` in one run, as `persona run --from ... --to ...` does."""
    window = DayWindow(date.fromisoformat(min(days)), date.fromisoformat(max(days)))
    write_raw_table(con, "raw.orders", [day_file(folder, day, lines) for day, lines in days.items()],
                    LONG_ORDER_FIELDS, window)
    write_raw_table(con, "raw.customers", [], CUSTOMER_FIELDS)  # a source without a customer file
    con.execute("CREATE OR REPLACE TABLE raw.source_files (run_id VARCHAR, input VARCHAR, source_file VARCHAR, "
                "rows_read BIGINT)")
    con.executemany("INSERT INTO raw.source_files VALUES (?, 'orders', ?, ?)",
                    [[run_id, f"orders/{day}.csv", len(lines)] for day, lines in days.items()])
    staging.build_staging(con, config, run_id, window=window)


def shop(tmp_path: Path):
    config = load_source_config(write_file(tmp_path / "shop.yaml", "name: t\nshape: long\norders:\n"
                                                                  "  path: orders/{date}.csv\n"))
    return config, WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))


def test_a_later_nights_refund_and_cancellation_take_back_what_an_earlier_night_loaded(tmp_path):
    config, warehouse = shop(tmp_path)
    staged = tmp_path / "staged"
    with warehouse.connect() as con:
        load_days(con, config, staged, {"2026-03-01": DAY_1}, "run-1")
        load_days(con, config, staged, {"2026-03-02": DAY_2}, "run-2")

        # O1 keeps its beer line, its total recounted; O2 is gone with its only line; day 2's new order stands.
        assert con.execute(LINES).fetchall() == [
            ("2026-03-01", "O1", "beer", 6.0), ("2026-03-01", "O3", "dairy", 5.0), ("2026-03-02", "P1", "wine", 7.0)]
        assert con.execute(ORDERS).fetchall() == [
            ("O1", "C1", 6.0, 1, 2.0), ("O3", "C3", 5.0, 1, 1.0), ("P1", "C4", 7.0, 1, 1.0)]
        # Run 1's lines are logged by the run that took them back, with the row that did it.
        assert con.execute(
            "SELECT run_id, source_file, source_row, partition_date::VARCHAR, order_id, customer_id, amount, "
            "taken_back_by_file, taken_back_by_row, taken_back_on::VARCHAR, reason "
            "FROM quality.retracted_lines ORDER BY source_row").fetchall() == [
            ("run-2", "orders/2026-03-01.csv", 1, "2026-03-01", "O1", "C1", 10.0, "orders/2026-03-02.csv", 1,
             "2026-03-02", "refunded line (line_status 退款成功)"),
            ("run-2", "orders/2026-03-01.csv", 3, "2026-03-01", "O2", "C2", 20.0, "orders/2026-03-02.csv", 3,
             "2026-03-02", "cancelled order (status 已取消)")]
        # Their customers' features are recomputed.
        assert {"C1", "C2"} <= {c for (c,) in con.execute(
            "SELECT customer_id FROM staging.changed_customers WHERE run_id = 'run-2'").fetchall()}
        # Run 2's own audit is about its own file: 4 read = 1 loaded + 2 set aside + 1 repeat of day 1.
        assert con.execute("SELECT run_id, rows_read, rows_loaded, rows_quarantined, rows_set_aside, "
                           "duplicates_removed FROM quality.load_audit ORDER BY run_id").fetchall() == [
            ("run-1", 4, 4, 0, 0, 0), ("run-2", 4, 1, 2, 2, 1)]

        # The next night repeats the refund and the cancellation: nothing more is taken back.
        load_days(con, config, staged, {"2026-03-03": DAY_3}, "run-3")
        assert con.execute(LINES).fetchall() == [
            ("2026-03-01", "O1", "beer", 6.0), ("2026-03-01", "O3", "dairy", 5.0), ("2026-03-02", "P1", "wine", 7.0)]
        assert con.execute("SELECT count(*) FROM quality.retracted_lines WHERE run_id = 'run-3'").fetchone() == (0,)

        # Day 1 loaded again (its file changed) is taken back again by the later days' rows kept in
        # staging.order_takebacks; this time the lines are this run's own, so they are set aside in its audit.
        load_days(con, config, staged, {"2026-03-01": DAY_1}, "run-4")
        assert con.execute(LINES).fetchall() == [
            ("2026-03-01", "O1", "beer", 6.0), ("2026-03-01", "O3", "dairy", 5.0), ("2026-03-02", "P1", "wine", 7.0)]
        assert con.execute(ORDERS).fetchall() == [
            ("O1", "C1", 6.0, 1, 2.0), ("O3", "C3", 5.0, 1, 1.0), ("P1", "C4", 7.0, 1, 1.0)]
        assert con.execute("SELECT source_row, raw_value, reason FROM quality.quarantine WHERE run_id = 'run-4' "
                           "ORDER BY source_row").fetchall() == [
            (1, "O1", "taken back on a later day (refunded line (line_status 退款成功), row 1 of orders/2026-03-02.csv)"),
            (3, "O2", "taken back on a later day (cancelled order (status 已取消), row 3 of orders/2026-03-02.csv)")]
        assert con.execute("SELECT rows_read, rows_loaded, rows_quarantined, rows_set_aside, duplicates_removed "
                           "FROM quality.load_audit WHERE run_id = 'run-4'").fetchall() == [(4, 2, 2, 2, 0)]


def test_every_day_loaded_at_once_gives_what_the_nights_gave(tmp_path):
    """persona run --all-days reads the same days in one run: the same lines and orders stand."""
    config, warehouse = shop(tmp_path)
    with warehouse.connect() as con:
        load_days(con, config, tmp_path / "staged", {"2026-03-01": DAY_1, "2026-03-02": DAY_2, "2026-03-03": DAY_3},
                  "run-1")
        assert con.execute(LINES).fetchall() == [
            ("2026-03-01", "O1", "beer", 6.0), ("2026-03-01", "O3", "dairy", 5.0), ("2026-03-02", "P1", "wine", 7.0)]
        assert con.execute(ORDERS).fetchall() == [
            ("O1", "C1", 6.0, 1, 2.0), ("O3", "C3", 5.0, 1, 1.0), ("P1", "C4", 7.0, 1, 1.0)]
        assert con.execute("SELECT count(*) FROM quality.retracted_lines").fetchone() == (0,)
        # Every row read is in one place: 10 read = 3 loaded + 6 set aside (4 statuses, 2 taken back) + 1 repeat.
        assert con.execute("SELECT sum(rows_read), sum(rows_loaded), sum(rows_quarantined), sum(rows_set_aside), "
                           "sum(duplicates_removed) FROM quality.load_audit").fetchone() == (10, 3, 6, 6, 1)


def test_lines_alike_in_what_a_refund_matches_are_taken_back_together(tmp_path):
    """Two lines of one order alike in sku, category, quantity and amount (one paid by card, one in cash), one
    refunded: the export does not say which, and both go, logged, on the first night; later nights change nothing."""
    config, warehouse = shop(tmp_path)
    line = "O9,C9,2026-03-01 10:00:00,wine,1,10,CARD,w1,交易成功,"
    other = "O9,C9,2026-03-01 10:00:00,beer,1,4,CARD,b1,交易成功,"
    refunded = line + "退款成功"
    with warehouse.connect() as con:
        load_days(con, config, tmp_path / "staged", {"2026-03-01": [line, line.replace("CARD", "CASH"), other]},
                  "run-1")
        load_days(con, config, tmp_path / "staged", {"2026-03-02": [refunded, other]}, "run-2")
        load_days(con, config, tmp_path / "staged", {"2026-03-03": [refunded, other]}, "run-3")
        assert con.execute(LINES).fetchall() == [("2026-03-01", "O9", "beer", 4.0)]
        assert con.execute("SELECT order_id, order_amount, n_lines FROM staging.orders").fetchall() == [
            ("O9", 4.0, 1)]
        assert con.execute("SELECT run_id, source_row FROM quality.retracted_lines ORDER BY ALL").fetchall() == [
            ("run-2", 1), ("run-2", 2)]


def test_a_snapshot_source_takes_nothing_back(tmp_path):
    """A snapshot has no later day: each of its rows stands with the status it carries, and nothing is kept to take
    back anything later (its next load replaces every row anyway)."""
    from tests.unit.test_staging import rows, stage

    warehouse = stage(tmp_path, {"a.csv": DAY_2}, header=HEADER)
    assert rows(warehouse, "SELECT order_id, category, amount FROM staging.order_lines ORDER BY ALL") == [
        ("O1", "beer", 6.0), ("P1", "wine", 7.0)]
    assert rows(warehouse, "SELECT source_row, reason FROM quality.quarantine ORDER BY source_row") == [
        (1, "refunded line (line_status 退款成功); returns are kept out of purchase features"),
        (3, "cancelled order (status 已取消)")]
    assert rows(warehouse, "SELECT count(*) FROM staging.order_takebacks") == [(0,)]
    assert rows(warehouse, "SELECT count(*) FROM quality.retracted_lines") == [(0,)]


def test_an_order_whose_status_moved_on_between_days_is_one_order_loaded_either_way(tmp_path):
    """Shipped on day 1, completed on day 2, a line refunded on day 3: night by night the first day keeps the order
    (later days' rows of it are repeats); loading the three days at once must give the same, not the order twice."""
    shipped = ["O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1,已发货,", "O1,C1,2026-03-01 10:00:00,beer,2,6,CARD,b1,已发货,"]
    completed = [line.replace("已发货", "交易成功") for line in shipped]
    refunded = [completed[0] + "退款成功"]
    days = {"2026-03-01": shipped, "2026-03-02": completed, "2026-03-03": refunded}
    expected_lines, expected_orders = [("2026-03-01", "O1", "beer", 6.0)], [("O1", "C1", 6.0, 1, 2.0)]

    config, warehouse = shop(tmp_path / "nights")
    with warehouse.connect() as con:
        for number, (day, lines) in enumerate(days.items(), start=1):
            load_days(con, config, tmp_path / "nights" / "staged", {day: lines}, f"run-{number}")
        assert con.execute(LINES).fetchall() == expected_lines
        assert con.execute(ORDERS).fetchall() == expected_orders

    config, warehouse = shop(tmp_path / "once")
    with warehouse.connect() as con:
        load_days(con, config, tmp_path / "once" / "staged", days, "run-1")
        assert con.execute(LINES).fetchall() == expected_lines
        assert con.execute(ORDERS).fetchall() == expected_orders
        # Day 2's rows are repeats of day 1's order, logged as such; day 3's row took the wine line back.
        assert con.execute("SELECT parse_filename(source_file), source_row, parse_filename(duplicate_of_file), "
                           "duplicate_of_row, kind FROM quality.removed_duplicates ORDER BY ALL").fetchall() == [
            ("2026-03-02.csv", 1, "2026-03-01.csv", 1, "loaded_on_other_day"),
            ("2026-03-02.csv", 2, "2026-03-01.csv", 1, "loaded_on_other_day")]
        assert con.execute("SELECT sum(rows_read), sum(rows_loaded), sum(rows_quarantined), sum(duplicates_removed) "
                           "FROM quality.load_audit").fetchone() == (5, 1, 2, 2)
