"""Staging rules on raw tables loaded from small files through the real raw path, without a Dagster run: which
line decides an order's attributes, and how repeated keys collapse or go to quarantine."""

from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from assets.raw.files import write_raw_table
from assets.raw.mapping import stage_customers, stage_orders, stage_products
from assets.raw.tables import write_malformed_lines, write_manifest
from assets.staging import build as staging
from assets.staging.audit import ensure_quality_tables, quarantine_malformed_lines
from assets.staging.keys import id_text
from pipelines.core.config import (
    CUSTOMER_FIELDS,
    LONG_ORDER_FIELDS,
    PRODUCT_FIELDS,
    WIDE_ORDER_FIELDS,
    SourceConfig,
    load_source_config,
)
from pipelines.core.ids import normalise_id
from pipelines.core.partitions import DayWindow
from pipelines.core.resources import WarehouseResource
from tests.conftest import write_file

HEADER = "order_id,customer_id,order_ts,category,quantity,amount,payment_method,sku"


def stage(tmp_path: Path, files: dict[str, list[str]], orders_config: str = "", header: str | None = HEADER,
          encoding: str = "utf-8", customers: str | None = None, customers_config: str = "",
          pattern: str = "*.csv", products: str | None = None) -> WarehouseResource:
    """Write the order files (and the customer and product files), load them into raw as a snapshot and build
    staging for run `run-1`. `orders_config`, `customers_config`: more keys of those config sections, indented by
    two spaces. Files without a header line (JSON Lines): header None and a `pattern` matching them."""
    for name, lines in files.items():
        write_file(tmp_path / "orders" / name, "\n".join([*([header] if header else []), *lines]) + "\n",
                   encoding=encoding)
    text = f"name: staging-test\nshape: long\norders:\n  path: orders/{pattern}\n" + orders_config
    if customers is not None:
        write_file(tmp_path / "customers.csv", customers, encoding=encoding)
        text += "customers:\n  path: customers.csv\n" + customers_config
    if products is not None:
        write_file(tmp_path / "products.csv", products, encoding=encoding)
        text += "products:\n  path: products.csv\n"
    return load_and_stage(tmp_path, load_source_config(write_file(tmp_path / "shop.yaml", text)))


def load_and_stage(tmp_path: Path, config: SourceConfig) -> WarehouseResource:
    """The config's files loaded into raw as a snapshot, and staging built for run `run-1`, as a run does, without
    Dagster."""
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    staged, manifest = stage_orders(config, scratch)
    staged_customers, customer_manifest = stage_customers(config, scratch)
    order_fields = LONG_ORDER_FIELDS if config.shape == "long" else [*WIDE_ORDER_FIELDS,
                                                                      *config.orders.category_columns]
    with warehouse.connect() as con:
        write_raw_table(con, "raw.orders", staged, order_fields)
        write_raw_table(con, "raw.customers", staged_customers, CUSTOMER_FIELDS)
        write_manifest(con, "run-1", "orders", manifest, None)
        write_manifest(con, "run-1", "customers", customer_manifest, None)
        write_malformed_lines(con, "raw.orders", manifest, None)
        write_malformed_lines(con, "raw.customers", customer_manifest, None)
        if config.products is not None:
            staged_products, product_manifest = stage_products(config, scratch)
            write_raw_table(con, "raw.products", staged_products, PRODUCT_FIELDS)
            write_manifest(con, "run-1", "products", product_manifest, None)
            write_malformed_lines(con, "raw.products", product_manifest, None)
        staging.build_staging(con, config, "run-1")
    return warehouse


def rows(warehouse: WarehouseResource, sql: str) -> list[tuple]:
    with warehouse.connect(read_only=True) as con:
        return con.execute(sql).fetchall()


def test_an_order_belongs_to_the_customer_of_its_first_line_in_file_order(tmp_path):
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
    # Each customer is credited with their own lines only: the lines naming another customer are quarantined.
    assert rows(warehouse, "SELECT order_id, customer_id, payment_method, order_ts::VARCHAR, order_amount, n_lines, "
                           "n_items FROM staging.orders ORDER BY order_id") == [
        ("O1", "C1", "CARD", "2026-03-01 10:00:00", 10.0, 1, 1.0),
        ("O2", "C2", "CASH", "2026-03-02 10:00:00", 20.0, 1, 1.0),
        ("O3", "C4", "MOBILE", "2026-03-03 11:00:00", 7.0, 1, 1.0),
    ]
    quarantined = rows(warehouse, "SELECT parse_filename(source_file), source_row, reason FROM quality.quarantine "
                                  "ORDER BY source_file, source_row")
    assert [(file, row) for file, row, _ in quarantined] == [("a.csv", 3), ("b.csv", 1)]
    assert quarantined[0][2].startswith("order_id used by another customer: order O2 belongs to customer C2 "
                                        "(its first line, row 2")
    assert "this line names customer C3" in quarantined[0][2]
    assert "order O3 belongs to customer C4 (its first line, row 4 of a.csv)" in quarantined[1][2]
    assert "this line names customer C5" in quarantined[1][2]


def test_an_orders_payment_comes_from_its_first_line_and_its_totals_from_every_line(tmp_path):
    warehouse = stage(tmp_path, {
        "a.csv": [
            "O2,C2,2026-03-02 12:00:00,beer,1,4,CASH,b1",
            "O1,C1,2026-03-01 10:30:00,wine,1,10,MOBILE,w1",
            "O1,C1,2026-03-01 10:00:00,beer,3,6,CASH,b1",  # earlier time, later line: the time is the earliest
        ],
        "b.csv": ["O2,C2,2026-03-02 09:00:00,dairy,2,8,CARD,d1"],  # row 1, but b.csv comes after a.csv
    })
    assert rows(warehouse, "SELECT order_id, customer_id, payment_method, order_ts::VARCHAR, order_amount, n_lines, "
                           "n_items FROM staging.orders ORDER BY order_id") == [
        ("O1", "C1", "MOBILE", "2026-03-01 10:00:00", 16.0, 2, 4.0),
        ("O2", "C2", "CASH", "2026-03-02 09:00:00", 12.0, 2, 3.0),
    ]


def test_an_orders_payment_and_channel_come_as_a_pair_from_its_first_line(tmp_path):
    """Payment method and channel are both the first line's, a missing one included: O1's first line has no
    payment method and its next line has one; O2's lines disagree on both; O3 names no channel. Without order ids
    (derived from customer and time) the first line decides the same way."""
    header = f"{HEADER},channel"
    lines = [
        "O1,C1,2026-03-01 10:00:00,wine,1,10,,w1,store",
        "O1,C1,2026-03-01 10:00:00,beer,1,5,CARD,b1,app",
        "O2,C2,2026-03-02 10:00:00,beer,1,5,CASH,b1,app",
        "O2,C2,2026-03-02 10:00:00,wine,1,5,CARD,w1,store",
        "O3,C3,2026-03-03 10:00:00,wine,1,5,CARD,w1,",
    ]
    warehouse = stage(tmp_path / "ids", {"a.csv": lines}, header=header)
    assert rows(warehouse, "SELECT order_id, payment_method, channel, n_lines FROM staging.orders "
                           "ORDER BY order_id") == [
        ("O1", None, "store", 2), ("O2", "CASH", "app", 2), ("O3", "CARD", None, 1)]
    derived = stage(tmp_path / "derived", {"a.csv": lines}, header=header,
                    orders_config="  columns:\n    order_id: null\n")
    assert rows(derived, "SELECT customer_id, payment_method, channel, n_lines FROM staging.orders "
                         "ORDER BY customer_id") == [
        ("C1", None, "store", 2), ("C2", "CASH", "app", 2), ("C3", "CARD", None, 1)]


def test_staging_a_million_orders_fits_a_small_duckdb_memory_limit(tmp_path):
    """Each order's first-line payment and channel come from the number of the pair (arg_min of two integers), not
    from an aggregate holding every order's text (arg_min of a struct), which DuckDB could not spill: at L (4.4M
    orders) staging failed there under a 300 MB limit. Two million lines of a million orders under 64 MB failed the
    same way."""
    orders = tmp_path / "orders"
    orders.mkdir()
    with duckdb.connect() as con:
        con.execute(f"""COPY (SELECT 'O' || (i // 2) AS order_id, 'C' || (i // 20) AS customer_id,
                                     TIMESTAMP '2026-03-01 10:00:00' + INTERVAL (i % 86400) SECOND AS order_ts,
                                     'cat' || (i % 7) AS category, 1 AS quantity, i % 50 AS amount,
                                     CASE WHEN i % 2 = 0 THEN 'CARD' ELSE 'CASH' END AS payment_method,
                                     's' || (i % 300) AS sku
                              FROM range(2000000) t(i))
                        TO '{orders / "a.csv"}' (HEADER)""")
    config = load_source_config(write_file(tmp_path / "shop.yaml",
                                           "name: tight\nshape: long\norders:\n  path: orders/*.csv\n"
                                           "  free_lines: keep\n"))  # amounts of 0 among them: every line counts
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"), memory_limit="64MB")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    staged, manifest = stage_orders(config, scratch)
    with warehouse.connect() as con:
        write_raw_table(con, "raw.orders", staged, LONG_ORDER_FIELDS)
        write_raw_table(con, "raw.customers", [], CUSTOMER_FIELDS)
        write_manifest(con, "run-1", "orders", manifest, None)
        write_malformed_lines(con, "raw.orders", manifest, None)
        write_malformed_lines(con, "raw.customers", [], None)
        staging.build_staging(con, config, "run-1")
        assert con.execute("SELECT count(*), count(DISTINCT customer_id), sum(order_amount)::BIGINT, sum(n_lines), "
                           "count(*) FILTER (WHERE payment_method = 'CARD') FROM staging.orders").fetchone() == (
            1_000_000, 100_000, sum(i % 50 for i in range(2_000_000)), 2_000_000, 1_000_000)


def test_under_a_declared_line_key_repeated_keys_with_an_empty_sku_collapse_or_go_to_quarantine(tmp_path):
    warehouse = stage(tmp_path, orders_config="  line_key: [order_id, category, sku]\n", files={"a.csv": [
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


AUDIT = ("SELECT rows_read, rows_loaded, rows_quarantined, duplicates_removed, exact_duplicates, "
         "conflicting_duplicates FROM quality.load_audit WHERE input = 'orders'")

# The shape of a real UK online retailer's export (Online Retail II): no category (the description stands in for
# one), and one invoice scanning stock code 22041 five times with quantities 2, 1, 2, 1, 2.
RETAIL_HEADER = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country"
RETAIL_COLUMNS = """  columns:
    order_id: Invoice
    sku: StockCode
    category: Description
    quantity: Quantity
    order_ts: InvoiceDate
    unit_price: Price
    customer_id: Customer ID
"""
RETAIL_SCANS = [f"489488,22041,WHITE HANGING HEART T-LIGHT HOLDER,{quantity},2009-12-01 10:22:00,2.55,17511,"
                "United Kingdom" for quantity in (2, 1, 2, 1, 2)]
RETAIL_OTHER = ["489489,21232,STRAWBERRY CERAMIC TRINKET BOX,12,2009-12-01 10:25:00,1.25,13085,United Kingdom"]


def test_repeated_scans_of_one_item_in_one_invoice_are_lines_of_their_own(tmp_path):
    warehouse = stage(tmp_path, {"retail.csv": RETAIL_SCANS + RETAIL_OTHER}, header=RETAIL_HEADER,
                      orders_config=RETAIL_COLUMNS + "  exact_duplicates: keep\n")
    assert rows(warehouse, "SELECT _source_row, sku, quantity, amount FROM staging.order_lines "
                           "WHERE order_id = '489488' ORDER BY _source_row") == [
        (1, "22041", 2.0, 5.1), (2, "22041", 1.0, 2.55), (3, "22041", 2.0, 5.1), (4, "22041", 1.0, 2.55),
        (5, "22041", 2.0, 5.1)]
    assert rows(warehouse, "SELECT order_id, n_lines, n_items, round(order_amount, 2) FROM staging.orders "
                           "ORDER BY order_id") == [("489488", 5, 8.0, 20.4), ("489489", 1, 12.0, 15.0)]
    assert rows(warehouse, "SELECT count(*) FROM quality.quarantine") == [(0,)]
    assert rows(warehouse, AUDIT) == [(6, 6, 0, 0, 0, 0)]


def test_by_default_identical_scans_are_exact_duplicates_and_the_others_stay_lines(tmp_path):
    warehouse = stage(tmp_path, {"retail.csv": RETAIL_SCANS + RETAIL_OTHER}, header=RETAIL_HEADER,
                      orders_config=RETAIL_COLUMNS)
    # Rows 3 and 5 repeat row 1 and row 4 repeats row 2 in every field; the quantities 2 and 1 are two lines.
    assert rows(warehouse, "SELECT _source_row, quantity FROM staging.order_lines WHERE order_id = '489488' "
                           "ORDER BY _source_row") == [(1, 2.0), (2, 1.0)]
    assert rows(warehouse, "SELECT source_row, duplicate_of_row, kind FROM quality.removed_duplicates "
                           "ORDER BY source_row") == [(3, 1, "exact"), (4, 2, "exact"), (5, 1, "exact")]
    assert rows(warehouse, "SELECT n_lines, n_items FROM staging.orders WHERE order_id = '489488'") == [(2, 3.0)]
    assert rows(warehouse, "SELECT count(*) FROM quality.quarantine") == [(0,)]
    assert rows(warehouse, AUDIT) == [(6, 3, 0, 3, 3, 0)]


def test_a_category_level_export_keeps_two_lines_of_one_category_in_one_order(tmp_path):
    warehouse = stage(tmp_path, {"导出.csv": [
        "DD20240301001,M001,2024-03-01 09:15:00,生鲜,12.5,微信支付",
        "DD20240301001,M001,2024-03-01 09:15:00,生鲜,30,微信支付",
        "DD20240301001,M001,2024-03-01 09:15:00,日化,8,微信支付",
    ]}, header="订单号,会员号,下单时间,品类,实付金额,支付方式", orders_config="""  columns:
    order_id: 订单号
    customer_id: 会员号
    order_ts: 下单时间
    category: 品类
    amount: 实付金额
    payment_method: 支付方式
""")
    assert rows(warehouse, "SELECT _source_row, category, amount FROM staging.order_lines ORDER BY _source_row") == [
        (1, "生鲜", 12.5), (2, "生鲜", 30.0), (3, "日化", 8.0)]
    assert rows(warehouse, "SELECT order_amount, n_lines, payment_method FROM staging.orders") == [(50.5, 3, "MOBILE")]
    assert rows(warehouse, AUDIT) == [(3, 3, 0, 0, 0, 0)]


IDENTICAL_ROWS = ["O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1", "O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1",
                  "O1,C1,2026-03-01 10:00:00,beer,1,4,CARD,b1"]


def test_identical_rows_are_one_line_and_the_copy_is_counted(tmp_path):
    warehouse = stage(tmp_path, {"a.csv": IDENTICAL_ROWS})
    assert rows(warehouse, "SELECT _source_row FROM staging.order_lines ORDER BY _source_row") == [(1,), (3,)]
    assert rows(warehouse, "SELECT source_row, duplicate_of_row, kind FROM quality.removed_duplicates") == [
        (2, 1, "exact")]
    assert rows(warehouse, AUDIT) == [(3, 2, 0, 1, 1, 0)]


def test_exact_duplicates_keep_loads_identical_rows_as_lines(tmp_path):
    warehouse = stage(tmp_path, {"a.csv": IDENTICAL_ROWS}, orders_config="  exact_duplicates: keep\n")
    assert rows(warehouse, "SELECT _source_row FROM staging.order_lines ORDER BY _source_row") == [(1,), (2,), (3,)]
    assert rows(warehouse, "SELECT n_lines, n_items, order_amount FROM staging.orders") == [(3, 3.0, 24.0)]
    assert rows(warehouse, "SELECT count(*) FROM quality.removed_duplicates") == [(0,)]
    assert rows(warehouse, AUDIT) == [(3, 3, 0, 0, 0, 0)]


def test_a_row_differing_only_in_status_is_not_an_exact_copy(tmp_path):
    warehouse = stage(tmp_path, {"a.csv": ["O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1,paid",
                                           "O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1,shipped"]},
                      header=HEADER + ",status")
    assert rows(warehouse, "SELECT _source_row FROM staging.order_lines ORDER BY _source_row") == [(1,), (2,)]
    assert rows(warehouse, AUDIT) == [(2, 2, 0, 0, 0, 0)]


def test_a_missing_value_is_not_the_value_staging_fills_in_for_it(tmp_path):
    # Staging fills a missing quantity with 1, a missing unit price or amount from the other two; an exact copy
    # must be equal as read, so rows differing only in a value given or left out are lines of their own.
    warehouse = stage(tmp_path, header=HEADER + ",unit_price", files={"a.csv": [
        "O1,C1,2026-03-01 10:00:00,wine,,10,CARD,w1,10",
        "O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1,10",  # quantity given as the 1 row 1 is filled with
        "O1,C1,2026-03-01 10:00:00,wine,,10,CARD,w1,10",  # an exact copy of row 1
        "O2,C1,2026-03-02 10:00:00,beer,2,8,CARD,b1,",  # unit price left out: 4 when staged
        "O2,C1,2026-03-02 10:00:00,beer,2,8,CARD,b1,4",
        "O3,C1,2026-03-03 10:00:00,soda,2,,CARD,s1,3",  # amount left out: 6 when staged
        "O3,C1,2026-03-03 10:00:00,soda,2,6,CARD,s1,3",
        "O4,C1,2026-03-04 10:00:00,soda,2,,CARD,s1,3",  # equal when staged to row 9, which left out the other value
        "O4,C1,2026-03-04 10:00:00,soda,2,6,CARD,s1,",
    ]})
    assert rows(warehouse, "SELECT _source_row, quantity, unit_price, amount FROM staging.order_lines "
                           "ORDER BY _source_row") == [
        (1, 1.0, 10.0, 10.0), (2, 1.0, 10.0, 10.0), (4, 2.0, 4.0, 8.0), (5, 2.0, 4.0, 8.0), (6, 2.0, 3.0, 6.0),
        (7, 2.0, 3.0, 6.0), (8, 2.0, 3.0, 6.0), (9, 2.0, 3.0, 6.0)]
    assert rows(warehouse, "SELECT source_row, duplicate_of_row, kind FROM quality.removed_duplicates") == [
        (3, 1, "exact")]
    assert rows(warehouse, AUDIT) == [(9, 8, 0, 1, 1, 0)]


def test_a_line_key_holding_a_value_compares_it_as_read(tmp_path):
    # Under the key (order_id, quantity) a missing quantity is no quantity, not the 1 staging fills in.
    warehouse = stage(tmp_path, orders_config="  line_key: [order_id, quantity]\n", files={"a.csv": [
        "O1,C1,2026-03-01 10:00:00,wine,,10,CARD,w1",
        "O1,C1,2026-03-01 10:00:00,wine,1,20,CARD,w2",
        "O1,C1,2026-03-01 10:00:00,wine,1,30,CARD,w3",  # the key of row 2 with other values
    ]})
    assert rows(warehouse, "SELECT _source_row FROM staging.order_lines ORDER BY _source_row") == [(1,), (2,)]
    assert rows(warehouse, "SELECT source_row, reason FROM quality.quarantine") == [
        (3, "conflicting duplicate of the order line in row 2 (same order_id and quantity, different values)")]


def test_under_a_line_key_the_same_key_with_another_quantity_is_a_conflicting_duplicate(tmp_path):
    warehouse = stage(tmp_path, orders_config="  line_key: [order_id, sku]\n", files={"a.csv": [
        "O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1",
        "O1,C1,2026-03-01 10:00:00,wine,3,30,CARD,w1",  # the key of row 1 with another quantity
        "O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1",  # an exact copy of row 1
        "O1,C1,2026-03-01 10:00:00,wine,2,20,CARD,w2",  # another sku of the same order and category
    ]})
    assert rows(warehouse, "SELECT _source_row, sku, quantity FROM staging.order_lines ORDER BY _source_row") == [
        (1, "w1", 1.0), (4, "w2", 2.0)]
    assert rows(warehouse, "SELECT source_row, column_name, raw_value, reason FROM quality.quarantine") == [
        (2, "order_id", "O1",
         "conflicting duplicate of the order line in row 1 (same order_id and sku, different values)")]
    assert rows(warehouse, "SELECT source_row, duplicate_of_row, kind FROM quality.removed_duplicates") == [
        (3, 1, "exact")]
    assert rows(warehouse, AUDIT) == [(4, 2, 1, 1, 1, 1)]


def test_a_mapped_line_id_is_the_line_key(tmp_path):
    warehouse = stage(tmp_path, header=HEADER + ",LineNo", orders_config="  columns: {line_id: LineNo}\n",
                      files={"a.csv": [
                          "O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1,1",
                          "O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1,2",  # equal but for its own line id
                          "O1,C1,2026-03-01 10:00:00,wine,2,20,CARD,w1,2",  # line 2 again, other values
                      ]})
    assert rows(warehouse, "SELECT _source_row FROM staging.order_lines ORDER BY _source_row") == [(1,), (2,)]
    assert rows(warehouse, "SELECT source_row, reason FROM quality.quarantine") == [
        (3, "conflicting duplicate of the order line in row 2 (same order_id and line_id, different values)")]
    assert rows(warehouse, AUDIT) == [(3, 2, 1, 0, 0, 1)]


def test_a_chinese_export_loads_with_the_built_in_values_alone(tmp_path):
    """GBK files with Chinese payment, status and gender names, and a config without `values:`."""
    warehouse = stage(tmp_path, encoding="gbk", header="订单号,会员号,下单时间,品类,实付金额,支付方式,订单状态",
                      files={"订单.csv": [
                          "D1,M1,2024-03-01 09:15:00,生鲜,12.5,微信支付,交易成功",
                          "D2,M2,2024-03-01 10:00:00,日化,30,支付宝,交易成功",
                          "D3,M1,2024-03-02 11:00:00,生鲜,8,货到付款,交易成功",
                          "D4,M2,2024-03-02 12:00:00,日化,9,微信支付,已取消",
                          "D5,M1,2024-03-03 12:00:00,日化,9,花呗,退款成功",
                      ]}, orders_config="""  encoding: gbk
  columns:
    order_id: 订单号
    customer_id: 会员号
    order_ts: 下单时间
    category: 品类
    amount: 实付金额
    payment_method: 支付方式
    status: 订单状态
""", customers="会员号,性别\nM1,男\nM2,女性\n", customers_config="  encoding: gbk\n  columns: {customer_id: 会员号, "
                                                                "gender: 性别}\n")
    assert rows(warehouse, "SELECT order_id, payment_method FROM staging.orders ORDER BY order_id") == [
        ("D1", "MOBILE"), ("D2", "MOBILE"), ("D3", "CASH")]
    assert rows(warehouse, "SELECT source_row, column_name, raw_value, reason FROM quality.quarantine "
                           "ORDER BY source_row") == [
        (4, "status", "已取消", "cancelled order (status 已取消)"),
        (5, "status", "退款成功", "cancelled order (status 退款成功)")]
    assert rows(warehouse, "SELECT customer_id, gender FROM staging.customers ORDER BY customer_id") == [
        ("M1", "M"), ("M2", "F")]


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
        changed = tmp_path / "changed.parquet"
        con.execute(f"COPY (SELECT * REPLACE ('O2' AS order_id) FROM raw.orders) TO '{changed}' (FORMAT parquet)")
        write_raw_table(con, "raw.orders", [changed], LONG_ORDER_FIELDS)
        con.execute("UPDATE raw.source_files SET run_id = 'run-2'")
        monkeypatch.setattr(staging, "crash_point", fail)
        with pytest.raises(RuntimeError, match="crash before commit"):
            staging.build_staging(con, config, "run-2")
        assert state(con) == before
        assert temporary_objects(con) == []  # the typed rows, made before the transaction, are freed too
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = '_typed_order_lines'"
                           ).fetchone() == (0,)
        # The same connection loads again once the cause is gone.
        monkeypatch.setattr(staging, "crash_point", lambda name: None)
        staging.build_staging(con, config, "run-2")
        assert con.execute("SELECT order_id FROM staging.orders").fetchall() == [("O2",)]
        assert con.execute("SELECT run_id, rows_read, rows_loaded, duplicates_removed FROM quality.load_audit "
                           "WHERE run_id = 'run-2'").fetchall() == [("run-2", 2, 1, 1)]
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = '_typed_order_lines'"
                           ).fetchone() == (0,)  # taken as staging.order_lines


# --- malformed lines (issue 18, point 2) and ids (point 6) ------------------------------------------------------


def test_malformed_lines_are_quarantined_with_line_text_and_reason_and_audited(tmp_path):
    warehouse = stage(tmp_path, {"a.csv": [
        "O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1",
        'O2,C2,"2026-03-01 10:00:00,wine,1,10,CARD,w1',  # line 3: a quote never closed
        "O3,C3,2026-03-02 10:00:00,beer,2,5,CASH,b1",
        "O4,C4,2026-03-02 10:00:00,beer,2,5,CASH,b1,extra",  # line 5: one field too many
        "O5,C5,2026-03-03 10:00:00,dairy,1,7",  # line 6: two fields short
        'O6,C6,2026-03-03 10:00:00,"dairy, fresh",1,7,MOBILE,d1',
    ]})
    assert rows(warehouse, "SELECT parse_filename(source_file), source_row, column_name, raw_value, reason "
                           "FROM quality.quarantine ORDER BY source_row") == [
        ("a.csv", 2, None, 'O2,C2,"2026-03-01 10:00:00,wine,1,10,CARD,w1',
         "malformed CSV record on line 3: a quoted value is never closed"),
        ("a.csv", 4, None, "O4,C4,2026-03-02 10:00:00,beer,2,5,CASH,b1,extra",
         "malformed CSV record on line 5: expected 8 fields, found 9"),
        ("a.csv", 5, None, "O5,C5,2026-03-03 10:00:00,dairy,1,7",
         "malformed CSV record on line 6: expected 8 fields, found 6"),
    ]
    assert rows(warehouse, "SELECT order_id, _source_row FROM staging.order_lines ORDER BY 1") == [
        ("O1", 1), ("O3", 3), ("O6", 6)]
    assert rows(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined, duplicates_removed "
                           "FROM quality.load_audit WHERE input = 'orders'") == [(6, 3, 3, 0)]


def test_malformed_json_lines_are_quarantined_with_their_line(tmp_path):
    record = '{{"order_id": "{}", "customer_id": "C1", "order_ts": "2026-03-01 10:00:00", "category": "wine", ' \
             '"quantity": {}, "unit_price": 10}}'
    warehouse = stage(tmp_path, {"a.jsonl": [
        record.format("O1", 1),
        '{"order_id": "O2", "customer_id": "C1", "order_ts": "2026-03-01 10',  # line 2: cut off
        record.format("O3", '"2"'),  # a quoted quantity among numbers
        '{"order_id": "O4" "customer_id": "C1"}',  # line 4: a comma missing
    ]}, header=None, pattern="*.jsonl")

    assert rows(warehouse, "SELECT parse_filename(source_file), source_row, column_name, raw_value, reason "
                           "FROM quality.quarantine ORDER BY source_row") == [
        ("a.jsonl", 2, None, '{"order_id": "O2", "customer_id": "C1", "order_ts": "2026-03-01 10',
         "malformed JSON record on line 2: Unterminated string starting at column 53"),
        ("a.jsonl", 4, None, '{"order_id": "O4" "customer_id": "C1"}',
         "malformed JSON record on line 4: Expecting ',' delimiter at column 19"),
    ]
    assert rows(warehouse, "SELECT order_id, _source_row, quantity FROM staging.order_lines ORDER BY 1") == [
        ("O1", 1, 1.0), ("O3", 3, 2.0)]
    assert rows(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined, duplicates_removed "
                           "FROM quality.load_audit WHERE input = 'orders'") == [(4, 2, 2, 0)]


def test_a_product_price_with_a_currency_sign_prices_the_lines_without_one(tmp_path):
    # Lines without an amount take their product's price, written as the product export writes it.
    warehouse = stage(tmp_path, {"a.csv": ["O1,C1,2026-03-01 10:00:00,,2,,CARD,w1",
                                           "O2,C2,2026-03-01 11:00:00,,1,,CARD,b1"]},
                      products='sku,category,unit_price\nw1,wine,"¥1,020.00"\nb1,beer,5.50元\n')

    assert rows(warehouse, "SELECT order_id, category, unit_price, amount FROM staging.order_lines ORDER BY 1") == [
        ("O1", "wine", 1020.0, 2040.0), ("O2", "beer", 5.5, 5.5)]


def test_malformed_lines_kept_before_their_format_was_recorded_read_as_csv(tmp_path):
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    with warehouse.connect() as con:
        con.execute("CREATE TABLE raw.orders_malformed AS SELECT 'a.csv' AS _source_file, 2::BIGINT AS _source_row, "
                    "3::BIGINT AS line, 'O2,C2' AS raw_text, 'expected 8 fields, found 2' AS reason, "
                    "NULL::DATE AS _partition_date")
        ensure_quality_tables(con)
        quarantine_malformed_lines(con, "run-1", "orders")
        assert con.execute("SELECT source_row, reason FROM quality.quarantine").fetchall() == [
            (2, "malformed CSV record on line 3: expected 8 fields, found 2")]


def test_malformed_customer_lines_are_quarantined_as_customers(tmp_path):
    warehouse = stage(tmp_path, {"a.csv": ["O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1"]},
                      customers="customer_id,age,city\nC1,30,X\nC2,40\n")
    assert rows(warehouse, "SELECT input, source_row, raw_value, reason FROM quality.quarantine") == [
        ("customers", 2, "C2,40", "malformed CSV record on line 3: expected 3 fields, found 2")]
    assert rows(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined FROM quality.load_audit "
                           "WHERE input = 'customers'") == [(2, 1, 1)]


def test_ids_are_trimmed_full_width_forms_made_ascii_and_float_integers_made_integers(tmp_path):
    warehouse = stage(tmp_path, {"a.csv": [
        "14194.0,00123.0,2026-03-01 10:00:00,wine,1,10,CARD,w1",  # a spreadsheet's float-typed ids
        "１４１９５,００１２３,2026-03-01 11:00:00,wine,1,10,CARD,w1",  # full-width digits
        " 14196 ,\u3000Ｃ－７\u3000,2026-03-01 12:00:00,wine,1,10,CARD,w1",  # blanks, full-width letters
        "14197.5,007,2026-03-01 13:00:00,wine,1,10,CARD,w1",  # a fraction is kept; so are leading zeros
    ]}, customers="customer_id,age\n００１２３,30\nC-7,40\n007.0,50\n")
    assert rows(warehouse, "SELECT order_id, customer_id FROM staging.orders ORDER BY 1") == [
        ("14194", "00123"), ("14195", "00123"), ("14196", "C-7"), ("14197.5", "007")]
    assert rows(warehouse, "SELECT customer_id, age FROM staging.customers ORDER BY 1") == [
        ("00123", 30), ("007", 50), ("C-7", 40)]


# --- the typed rows become staging.order_lines (issue 23) --------------------------------------------------------


def day_file(folder: Path, day: str, lines: list[str]) -> Path:
    """A file of one landing day as the raw readers stage it: every contract field as text (HEADER's fields from
    `lines`, the others empty), source file and row, and the day."""
    folder.mkdir(parents=True, exist_ok=True)
    fields = HEADER.split(",")
    values = [line.split(",") for line in lines]
    columns = {field: [row[fields.index(field)] if field in fields else None for row in values]
               for field in LONG_ORDER_FIELDS}
    path = folder / f"{day}.parquet"
    pl.DataFrame({"_source_file": [f"orders/{day}.csv"] * len(lines), "_source_row": list(range(1, len(lines) + 1)),
                  **columns, "_partition_date": [date.fromisoformat(day)] * len(lines)},
                 schema_overrides={field: pl.String for field in LONG_ORDER_FIELDS}).write_parquet(path)
    return path


def load_day(con, config, folder: Path, day: str, lines: list[str], run_id: str) -> None:
    window = DayWindow(date.fromisoformat(day), date.fromisoformat(day))
    write_raw_table(con, "raw.orders", [day_file(folder, day, lines)], LONG_ORDER_FIELDS, window)
    write_raw_table(con, "raw.customers", [], CUSTOMER_FIELDS)  # a source without a customer file
    con.execute(f"CREATE OR REPLACE TABLE raw.source_files AS SELECT '{run_id}' AS run_id, 'orders' AS input, "
                f"'orders/{day}.csv' AS source_file, {len(lines)}::BIGINT AS rows_read")
    staging.build_staging(con, config, run_id, window=window)


def a_day_of_every_dropped_row(prefix: str) -> list[str]:
    """A good line without a quantity, its exact copy, a line whose amount is not a number, and an order whose
    second line names another customer."""
    return [f"{prefix}1,C1,2026-03-01 10:00:00,wine,,10,CARD,w1", f"{prefix}1,C1,2026-03-01 10:00:00,wine,,10,CARD,w1",
            f"{prefix}2,C2,2026-03-01 11:00:00,beer,2,abc,CASH,b1", f"{prefix}3,C3,2026-03-01 12:00:00,dairy,2,8,CASH,d1",
            f"{prefix}3,C4,2026-03-01 12:00:00,dairy,1,4,CASH,d2"]


def test_the_first_load_takes_the_typed_rows_as_staging_order_lines_and_a_later_day_adds_to_them(tmp_path):
    config = load_source_config(write_file(tmp_path / "shop.yaml",
                                           "name: t\nshape: long\norders:\n  path: orders/*.csv\n"))
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    lines = ("SELECT _partition_date::VARCHAR, _source_row, order_id, customer_id, quantity, unit_price, amount "
             "FROM staging.order_lines ORDER BY ALL")
    with warehouse.connect() as con:
        # The first load of a daily source replaces every line: its typed table becomes staging.order_lines.
        load_day(con, config, tmp_path / "staged", "2026-03-01", a_day_of_every_dropped_row("O"), "run-1")
        first = [("2026-03-01", 1, "O1", "C1", 1.0, 10.0, 10.0), ("2026-03-01", 4, "O3", "C3", 2.0, 4.0, 8.0)]
        assert con.execute(lines).fetchall() == first
        assert [d[0] for d in con.execute("SELECT * FROM staging.order_lines LIMIT 0").description] == [
            "order_id", "customer_id", "order_ts", "category", "sku", "quantity", "unit_price", "amount",
            "payment_method", "channel", "_source_file", "_source_row", "_partition_date"]
        assert con.execute("SELECT order_id, customer_id, n_lines, order_amount FROM staging.orders ORDER BY 1"
                           ).fetchall() == [("O1", "C1", 1, 10.0), ("O3", "C3", 1, 8.0)]
        # A later day goes into the table through the same rules; a line of an order of the first day is a
        # duplicate loaded on another day.
        load_day(con, config, tmp_path / "staged", "2026-03-02",
                 [*a_day_of_every_dropped_row("P"), "O1,C1,2026-03-01 10:00:00,beer,1,3,CARD,b1"], "run-2")
        assert con.execute(lines).fetchall() == first + [
            ("2026-03-02", 1, "P1", "C1", 1.0, 10.0, 10.0), ("2026-03-02", 4, "P3", "C3", 2.0, 4.0, 8.0)]
        assert con.execute("SELECT run_id, source_row, kind FROM quality.removed_duplicates ORDER BY ALL").fetchall(
        ) == [("run-1", 2, "exact"), ("run-2", 2, "exact"), ("run-2", 6, "loaded_on_other_day")]
        assert con.execute("SELECT run_id, source_row, column_name FROM quality.quarantine ORDER BY ALL").fetchall(
        ) == [("run-1", 3, "amount"), ("run-1", 5, "order_id"), ("run-2", 3, "amount"), ("run-2", 5, "order_id")]
        assert con.execute("SELECT run_id, rows_read, rows_loaded, rows_quarantined, duplicates_removed "
                           "FROM quality.load_audit ORDER BY run_id").fetchall() == [
            ("run-1", 5, 2, 2, 1), ("run-2", 6, 2, 2, 2)]
        # Day 1 again goes through the copy into the table: the same rows, values and types as the first load's.
        every_column = "SELECT * FROM staging.order_lines WHERE _partition_date = '2026-03-01' ORDER BY ALL"
        taken = con.execute(every_column).fetchall()
        types = con.execute("SELECT column_name, column_type FROM (DESCRIBE staging.order_lines)").fetchall()
        load_day(con, config, tmp_path / "staged", "2026-03-01", a_day_of_every_dropped_row("O"), "run-3")
        assert con.execute(every_column).fetchall() == taken
        assert con.execute("SELECT column_name, column_type FROM (DESCRIBE staging.order_lines)").fetchall() == types
        # Neither load leaves its typed rows behind, in the warehouse or in the connection.
        typed_tables = "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '%typed_order%'"
        assert con.execute(typed_tables).fetchall() == []


@pytest.mark.parametrize("raw", ["C001", "C001\t", " C001 ", "\u200bC001", "Ｃ００１", '="4926887"', '  ="4926887" ', '=""',
                                 "", "   ", "\t", None, "14194.0", '="14194.0"', "ｱｲ", "a\u3000b", "007", '="a b"',
                                 '="x', 'x="1"', "\ufeff123"])
def test_the_id_rule_in_python_reads_as_the_one_in_sql(raw):
    """The raw layer normalises an id in Python before hashing it (pipelines/core/ids.py), staging in SQL
    (assets/staging/keys.py): both must read every form alike, or a hashed id would not be the one staging reads."""
    con = duckdb.connect()
    in_sql = con.execute(f"SELECT {id_text('t', fold_case=False)} FROM (SELECT ?::VARCHAR AS t)", [raw]).fetchone()[0]
    assert in_sql == normalise_id(raw)


def test_a_spreadsheet_text_formula_is_the_id_between_its_quotes():
    """抖店 and other consoles write long ids as ="4926..." so that Excel keeps them whole."""
    con = duckdb.connect()
    read = {raw: con.execute(f"SELECT {id_text('t', fold_case=False)} FROM (SELECT ?::VARCHAR AS t)", [raw]).fetchone()[0]
            for raw in ['="4926887789354596388"', ' ="C-01" ', '=""', '="14194.0"']}
    assert read == {'="4926887789354596388"': "4926887789354596388", ' ="C-01" ': "C-01", '=""': None,
                    '="14194.0"': "14194"}
