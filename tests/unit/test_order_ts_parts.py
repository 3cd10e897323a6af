"""orders.columns.order_ts: [date column, time-of-day column]: a POS export (Square's Item Sales, 销售日期 + 销售时间)
that writes a sale's date and its time of day in two columns. The raw layer joins them into one text, staging
reads it with orders.date_formats, and a row whose date or time is missing or unreadable is quarantined."""

from datetime import datetime, time
from pathlib import Path

import pytest
import xlsxwriter

from assets.raw.mapping import stage_orders
from assets.raw.readers import IngestError
from pipelines.core.config import ConfigError, load_source_config
from pipelines.core.resources import WarehouseResource
from tests.conftest import write_file
from tests.unit.test_check import check, squeeze
from tests.unit.test_staging import load_and_stage

SQUARE_HEADER = "Date,Time,Time Zone,Transaction ID,Customer ID,Item,Qty,Net Sales"
TZ = "Eastern Time (US & Canada)"
SQUARE_COLUMNS = ("{order_ts: [Date, Time], order_id: Transaction ID, customer_id: Customer ID, category: Item, "
                  "quantity: Qty, amount: Net Sales}")


def square_config(tmp_path: Path, orders_path: str = "items.csv", extra: str = "", top: str = "",
                  columns: str = SQUARE_COLUMNS) -> Path:
    return write_file(tmp_path / "shop.yaml", f"name: square\nshape: long\norders:\n  path: {orders_path}\n"
                                              f"  columns: {columns}\n{extra}{top}")


def build(tmp_path: Path, config_path: Path) -> WarehouseResource:
    """Raw orders and staging of the config, as a run loads them, without Dagster."""
    return load_and_stage(tmp_path, load_source_config(config_path))


def rows(warehouse: WarehouseResource, sql: str) -> list[tuple]:
    with warehouse.connect(read_only=True) as con:
        return con.execute(sql).fetchall()


def staged_times(warehouse: WarehouseResource) -> list[tuple]:
    return rows(warehouse, "SELECT order_id, order_ts::VARCHAR FROM staging.orders ORDER BY order_id")


def quarantined(warehouse: WarehouseResource) -> list[tuple]:
    return rows(warehouse, "SELECT source_row, column_name, raw_value, reason FROM quality.quarantine "
                           "ORDER BY source_row")


def test_a_square_export_stages_date_and_time_as_one_order_time(tmp_path):
    write_file(tmp_path / "items.csv", "\n".join([
        SQUARE_HEADER,
        f'2026-10-31,14:05:09,{TZ},T1,C1,Latte,1,"$1,234.50"',
        f"2026-10-31,14:05:09,{TZ},T1,C1,Muffin,2,$6.00",
        f"2026-10-31,25:61:00,{TZ},T2,C2,Latte,1,$4.50",      # not a time of day
        f"2026-11-01,,{TZ},T3,C3,Latte,1,$4.50",               # a date without its time
        f",09:15:00,{TZ},T4,C4,Latte,1,$4.50",                 # a time without its date
        f"2026-11-01, 9:30:00 ,{TZ},T5,C5,Tea,1,$3.00",        # blanks around a part, a one-digit hour
        f",,{TZ},T6,C6,Tea,1,$3.00",                           # neither: a missing order time
        f"2026-11-02,18:00:00,{TZ},T7,C1,Tea,1,$3.00",
        f"2026-11-02,18:00:00,{TZ},T7,C1,Tea,1,$3.00",         # an exact copy of the line above
    ]) + "\n")
    warehouse = build(tmp_path, square_config(tmp_path))

    assert rows(warehouse, "SELECT _source_row, order_ts FROM raw.orders ORDER BY 1") == [
        (1, "2026-10-31 14:05:09"), (2, "2026-10-31 14:05:09"), (3, "2026-10-31 25:61:00"), (4, "2026-11-01 "),
        (5, " 09:15:00"), (6, "2026-11-01 9:30:00"), (7, None), (8, "2026-11-02 18:00:00"),
        (9, "2026-11-02 18:00:00")]
    assert rows(warehouse, "SELECT ignored_columns FROM raw.source_files") == [(["Time Zone"],)]
    assert rows(warehouse, "SELECT order_id, order_ts::VARCHAR, order_amount FROM staging.orders "
                           "ORDER BY order_id") == [
        ("T1", "2026-10-31 14:05:09", 1240.5), ("T5", "2026-11-01 09:30:00", 3.0),
        ("T7", "2026-11-02 18:00:00", 3.0)]
    assert quarantined(warehouse) == [
        (3, "order_ts", "2026-10-31 25:61:00",
         "order_ts (Date + Time) is not a date in orders.date_formats or ISO 8601"),
        (4, "order_ts", "2026-11-01",
         "order_ts: Time is empty (Date 2026-11-01); a date without its time of day is not read as midnight"),
        (5, "order_ts", "09:15:00", "order_ts: Date is empty (Time 09:15:00)"),
        (7, "order_ts", None, "missing order_ts"),
    ]
    # Rows read = loaded + quarantined + duplicates removed.
    assert rows(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined, duplicates_removed "
                           "FROM quality.load_audit") == [(9, 4, 4, 1)]


def test_orders_date_formats_read_the_joined_text(tmp_path):
    # 销售日期 2026/10/31 and 销售时间 14:05: one format reads the two, joined by a space, as it would one column.
    write_file(tmp_path / "items.csv", "订单号,会员号,销售日期,销售时间,品类,金额\n"
                                       "S1,M1,2026/10/31,14:05,茶,8\nS2,M2,2026/11/01,9:07,茶,8\n"
                                       "S3,M3,2026-11-01,09:07,茶,8\nS4,M4,2026/11/01,下午2点,茶,8\n")
    config = square_config(tmp_path, columns="{order_ts: [销售日期, 销售时间], order_id: 订单号, customer_id: 会员号, "
                                             "category: 品类, amount: 金额}",
                           extra="  date_formats: ['%Y/%m/%d %H:%M']\n")
    warehouse = build(tmp_path, config)

    # ISO 8601 is tried after the formats, as for a one-column time (S3).
    assert staged_times(warehouse) == [
        ("S1", "2026-10-31 14:05:00"), ("S2", "2026-11-01 09:07:00"), ("S3", "2026-11-01 09:07:00")]
    assert quarantined(warehouse) == [
        (4, "order_ts", "2026/11/01 下午2点",
         "order_ts (销售日期 + 销售时间) is not a date in orders.date_formats or ISO 8601")]


def _write_xlsx(path: Path) -> Path:
    """Excel cells as a till's spreadsheet holds them: a date cell and a time cell, a time column holding a whole
    date and time, and both as text."""
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    day, clock = book.add_format({"num_format": "yyyy-mm-dd"}), book.add_format({"num_format": "hh:mm:ss"})
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    sheet.write_row(0, 0, ["Date", "Time", "Transaction ID", "Customer ID", "Item", "Net Sales"])
    sheet.write_datetime(1, 0, datetime(2026, 10, 31), day)
    sheet.write_datetime(1, 1, time(14, 5, 9), clock)
    sheet.write_datetime(2, 0, datetime(2026, 10, 31), day)
    sheet.write_datetime(2, 1, datetime(2026, 10, 31, 16, 30), stamp)
    sheet.write_string(3, 0, "2026-11-01")
    sheet.write_string(3, 1, "09:30:00")
    sheet.write_datetime(4, 0, datetime(2026, 11, 2), day)  # no time cell
    for row, (order, customer) in enumerate([("T1", "C1"), ("T2", "C2"), ("T3", "C3"), ("T4", "C4")], start=1):
        sheet.write_row(row, 2, [order, customer, "Latte", 4.5])
    book.close()
    return path


def test_excel_date_and_time_cells_native_or_text(tmp_path):
    _write_xlsx(tmp_path / "items.xlsx")
    config = square_config(tmp_path, "items.xlsx", columns="{order_ts: [Date, Time], order_id: Transaction ID, "
                                                           "customer_id: Customer ID, category: Item, "
                                                           "amount: Net Sales}")
    warehouse = build(tmp_path, config)

    # calamine reads a date cell as 2026-10-31 00:00:00 and a time cell as 1899-12-31 14:05:09: the parts are kept.
    assert rows(warehouse, "SELECT _source_row, order_ts FROM raw.orders ORDER BY 1") == [
        (1, "2026-10-31 14:05:09"), (2, "2026-10-31 16:30:00"), (3, "2026-11-01 09:30:00"), (4, "2026-11-02 ")]
    assert staged_times(warehouse) == [
        ("T1", "2026-10-31 14:05:09"), ("T2", "2026-10-31 16:30:00"), ("T3", "2026-11-01 09:30:00")]
    assert quarantined(warehouse) == [
        (4, "order_ts", "2026-11-02",
         "order_ts: Time is empty (Date 2026-11-02); a date without its time of day is not read as midnight")]


@pytest.mark.parametrize(("columns", "message"), [
    ("{order_ts: [Date, Time, Time Zone]}",
     "orders.columns.order_ts: list two columns, a date column and a time-of-day column (for example [Date, Time]), "
     "or give one column; got 3: ['Date', 'Time', 'Time Zone']"),
    ("{order_ts: [Date, Date]}", "orders.columns.order_ts: the date and the time of day are two columns; got 'Date' "
                                 "twice"),
    ("{order_ts: {date: Date}}", "orders.columns.order_ts: give a source column's name (text; quote a name YAML "
                                 "reads otherwise), or for order_ts a list of two; got {'date': 'Date'}"),
    ("{order_ts: [Date, Time], customer_id: [Customer ID, Email]}",
     "orders.columns.customer_id: only order_ts takes a list of two columns (a date and a time of day); map one "
     "column"),
], ids=["three-columns", "one-column-twice", "a-mapping", "another-field"])
def test_config_errors_are_one_line_naming_the_key(tmp_path, columns, message):
    config = square_config(tmp_path, columns=columns)
    with pytest.raises(ConfigError) as raised:
        load_source_config(config)
    assert str(raised.value) == f"{config}: {message}"


def test_a_dropped_time_column_is_a_config_error(tmp_path):
    config = square_config(tmp_path, top="privacy:\n  pii_columns: {Time: drop}\n")
    with pytest.raises(ConfigError) as raised:
        load_source_config(config)
    assert str(raised.value) == (f"{config}: privacy.pii_columns.Time: the contract reads this column "
                                 "(orders.columns.order_ts); use hash to keep it pseudonymised, or map another column")


def test_a_column_missing_from_the_header_is_named_with_its_key(tmp_path):
    orders = write_file(tmp_path / "items.csv", "Date,Transaction ID,Customer ID,Item,Qty,Net Sales\n"
                                                "2026-10-31,T1,C1,Latte,1,$4.50\n")
    config = load_source_config(square_config(tmp_path))
    with pytest.raises(IngestError) as raised:
        stage_orders(config, tmp_path)
    assert str(raised.value) == (
        f"{orders.resolve()}: column 'Time' (mapped in orders.columns.order_ts) is not in the header; the header has "
        "['Date', 'Transaction ID', 'Customer ID', 'Item', 'Qty', 'Net Sales']")


def test_fill_down_fills_a_blank_date_and_time_but_not_a_blank_time_alone(tmp_path):
    # Line 2 leaves both blank: it takes its order's first line's. Line 4 has a date but no time: filling only its
    # time would be a guess, so it is quarantined like any date without its time, and line 5, blank, takes line 4's
    # (the latest earlier line that has one) and is quarantined with it.
    write_file(tmp_path / "items.csv", "\n".join([
        SQUARE_HEADER,
        f"2026-10-31,14:05:09,{TZ},T1,C1,Latte,1,$4.50",
        f",,{TZ},T1,,Muffin,1,$3.00",
        f"2026-10-31,15:00:00,{TZ},T2,C2,Latte,1,$4.50",
        f"2026-10-31,,{TZ},T2,,Muffin,1,$3.00",
        f",,{TZ},T2,,Tea,1,$2.00",
    ]) + "\n")
    warehouse = build(tmp_path, square_config(tmp_path, extra="  fill_down: [customer_id, order_ts]\n"))

    assert rows(warehouse, "SELECT order_id, customer_id, order_ts::VARCHAR, order_amount, n_lines FROM "
                           "staging.orders ORDER BY order_id") == [
        ("T1", "C1", "2026-10-31 14:05:09", 7.5, 2), ("T2", "C2", "2026-10-31 15:00:00", 4.5, 1)]
    reason = "order_ts: Time is empty (Date 2026-10-31); a date without its time of day is not read as midnight"
    assert quarantined(warehouse) == [(4, "order_ts", "2026-10-31", reason), (5, "order_ts", "2026-10-31", reason)]
    # The raw rows keep what the export wrote.
    assert rows(warehouse, "SELECT _source_row, order_ts FROM raw.orders WHERE _source_row IN (2, 4) ORDER BY 1") \
        == [(2, None), (4, "2026-10-31 ")]


def test_privacy_settings_apply_beside_a_two_column_order_time(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_PII_SALT", "pepper")
    write_file(tmp_path / "items.csv", "Date,Time,Transaction ID,Customer ID,Customer Name,Item,Net Sales\n"
                                       "2026-10-31,14:05:09,T1,C1,Ann Lee,Latte,$4.50\n")
    config = square_config(tmp_path, columns="{order_ts: [Date, Time], order_id: Transaction ID, "
                                             "customer_id: Customer ID, category: Item, amount: Net Sales}",
                           top="privacy:\n  pii_columns: {Customer ID: hash, Customer Name: drop}\n")
    warehouse = build(tmp_path, config)

    (customer, when), = rows(warehouse, "SELECT customer_id, order_ts::VARCHAR FROM staging.orders")
    assert when == "2026-10-31 14:05:09"
    assert len(customer) == 64 and customer != "C1"
    assert rows(warehouse, "SELECT ignored_columns FROM raw.source_files") == [([],)]
    assert "Customer Name" not in rows(warehouse, "SELECT * FROM raw.orders")[0]


def test_the_wide_shape_reads_a_two_column_order_time_too(tmp_path):
    write_file(tmp_path / "baskets.csv", "Date,Time,Customer ID,Total,Wine\n2026-10-31,14:05:09,C1,12.5,T\n"
                                         "2026-10-31,,C2,8,F\n")
    config = write_file(tmp_path / "shop.yaml", "name: wide\nshape: wide\norders:\n  path: baskets.csv\n"
                        "  columns: {order_ts: [Date, Time], customer_id: Customer ID, amount: Total}\n"
                        "  category_columns: [Wine]\n")
    warehouse = build(tmp_path, config)

    assert rows(warehouse, "SELECT customer_id, order_ts::VARCHAR FROM staging.orders") == [
        ("C1", "2026-10-31 14:05:09")]
    assert quarantined(warehouse) == [
        (2, "order_ts", "2026-10-31",
         "order_ts: Time is empty (Date 2026-10-31); a date without its time of day is not read as midnight")]


def test_persona_check_shows_the_two_columns_and_the_reasons(tmp_path):
    write_file(tmp_path / "items.csv", "\n".join([
        SQUARE_HEADER, *[f"2026-10-{10 + i},14:0{i}:09,{TZ},T{i},C{i},Latte,1,$4.50" for i in range(8)],
        f"2026-10-31,,{TZ},T9,C9,Latte,1,$4.50"]) + "\n")
    done = check(square_config(tmp_path, top="quality:\n  max_quarantine_share: 0.2\n"))

    assert done.exit_code == 0, done.stdout + done.stderr
    out = squeeze(done.stdout)
    assert "order_ts Date + Time 2026-10-10 14:00:09 | 2026-10-11 14:01:09 | 2026-10-12 14:02:09" in out
    assert "order_ts: Time is empty (Date <value>); a date without its time of day is not read as midnight 1" in out


def test_a_wide_header_says_how_many_columns_it_left_out_and_the_closest_name(tmp_path):
    """A JD export has 26 columns: the message lists 20 and says how many more, and names the column closest to the
    one the config maps (京东价 for 京东价格), which a trial had to find by hand."""
    names = [f"列{i}" for i in range(23)] + ["订单号", "下单帐号", "京东价"]
    orders = write_file(tmp_path / "jd.csv", ",".join(names) + "\n" + ",".join("1" for _ in names) + "\n")
    config = load_source_config(write_file(tmp_path / "shop.yaml", (
        "name: jd\nshape: long\norders:\n  path: jd.csv\n  columns: {order_id: 订单号, customer_id: 下单帐号, "
        "order_ts: 列0, category: 列1, unit_price: 京东价格}\n")))
    with pytest.raises(IngestError) as raised:
        stage_orders(config, tmp_path)
    assert str(raised.value) == (
        f"{orders.resolve()}: column '京东价格' (mapped in orders.columns.unit_price) is not in the header; the header "
        f"has {names[:20]} and 6 more; closest: '京东价'")
