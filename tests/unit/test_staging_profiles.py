"""Staging of profile values on small files through the real raw path (issue 18, point 5): banded and unit-bearing
ages and incomes, monthly incomes, the shop's band tokens, and one quarantine row naming every bad column."""

from datetime import date, datetime
from pathlib import Path

from assets.raw.files import write_raw_table
from assets.raw.mapping import stage_customers, stage_orders
from assets.raw.tables import record_snapshot_load, write_manifest
from assets.staging import build as staging
from assets.staging.customers import customer_inputs_fingerprint
from assets.staging.rules import token_parameters
from assets.staging.typed import band_parameters
from pipelines.core.config import (
    CUSTOMER_FIELDS,
    LONG_ORDER_FIELDS,
    WIDE_ORDER_FIELDS,
    SourceConfig,
    load_source_config,
)
from pipelines.core.partitions import DayWindow
from pipelines.core.resources import WarehouseResource
from tests.conftest import write_file

ORDERS = "order_id,customer_id,order_ts,category,quantity,amount,payment_method,sku\n" \
         "O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1\n"
LONG_CONFIG = "name: profiles\nshape: long\norders:\n  path: orders.csv\ncustomers:\n  path: customers.csv\n"


def stage(tmp_path: Path, customers: str, orders: str = ORDERS, config_text: str = LONG_CONFIG
          ) -> tuple[WarehouseResource, SourceConfig]:
    """Write the files and the config, load them into raw as a snapshot and build staging for run `run-1`."""
    write_file(tmp_path / "orders.csv", orders)
    if customers:
        write_file(tmp_path / "customers.csv", customers)
    config = load_source_config(write_file(tmp_path / "shop.yaml", config_text))
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    staged, manifest = stage_orders(config, scratch)
    order_fields = LONG_ORDER_FIELDS if config.shape == "long" else [*WIDE_ORDER_FIELDS,
                                                                      *config.orders.category_columns]
    with warehouse.connect() as con:
        write_raw_table(con, "raw.orders", staged, order_fields)
        write_manifest(con, "run-1", "orders", manifest, None)
        # The raw layer writes raw.customers (empty without a customer file), as the raw asset does.
        staged_customers, customer_manifest = stage_customers(config, scratch)
        write_raw_table(con, "raw.customers", staged_customers, CUSTOMER_FIELDS)
        write_manifest(con, "run-1", "customers", customer_manifest, None)
        staging.build_staging(con, config, "run-1")
    return warehouse, config


def rows(warehouse: WarehouseResource, sql: str) -> list[tuple]:
    with warehouse.connect(read_only=True) as con:
        return con.execute(sql).fetchall()


QUARANTINE = "SELECT input, source_row, column_name, raw_value, reason FROM quality.quarantine ORDER BY input, source_row"
CUSTOMER_AUDIT = ("SELECT rows_read, rows_loaded, rows_quarantined FROM quality.load_audit "
                  "WHERE input = 'customers'")

BANDED_CUSTOMERS = """customer_id,age,income
C1,25-34,35-49K
C2,65+,250K+
C3,Under 18,Under 15K
C4,18-24岁,1万-2万
C5,50岁以上,5000以下
C6,45,"$35,000 - $49,999"
C7,30周岁,3千-5千
C8,４０,"¥52,300"
C9,35 yrs,1.5万元
C10,55 and over,"52,300"
"""


def test_banded_english_and_chinese_ages_and_incomes_load_with_nothing_quarantined(tmp_path):
    warehouse, _ = stage(tmp_path, BANDED_CUSTOMERS)
    assert rows(warehouse, QUARANTINE) == []
    assert rows(warehouse, "SELECT customer_id, age, income FROM staging.customers "
                           "ORDER BY length(customer_id), customer_id") == [
        ("C1", 29.5, 42000.0),
        ("C2", 70.0, 312500.0),
        ("C3", 13.0, 11250.0),
        ("C4", 21.0, 15000.0),
        ("C5", 55.0, 3750.0),
        ("C6", 45.0, 42499.5),
        ("C7", 30.0, 4000.0),
        ("C8", 40.0, 52300.0),
        ("C9", 35.0, 15000.0),
        ("C10", 60.0, 52300.0),
    ]
    assert rows(warehouse, CUSTOMER_AUDIT) == [(10, 10, 0)]


def test_only_texts_sql_cannot_read_are_looked_up_as_bands(tmp_path):
    """Plain numbers and decorated incomes ("¥52,300", "52,300", one per customer in a real file) never reach the
    bound lists, which are searched row by row; the lists are sorted, so the same rows give the same lists."""
    warehouse, config = stage(tmp_path, BANDED_CUSTOMERS)
    with warehouse.connect(read_only=True) as con:
        params = band_parameters(con, config)
    assert params["age_band_texts"] == sorted(["25-34", "65+", "Under 18", "18-24岁", "50岁以上", "30周岁", "４０",
                                               "35 yrs", "55 and over"])
    assert params["age_band_numbers"] == [dict(zip(
        ["25-34", "65+", "Under 18", "18-24岁", "50岁以上", "30周岁", "４０", "35 yrs", "55 and over"],
        [29.5, 70.0, 13.0, 21.0, 55.0, 30.0, 40.0, 35.0, 60.0], strict=True))[text]
        for text in params["age_band_texts"]]
    assert "¥52,300" not in params["income_band_texts"] and "52,300" not in params["income_band_texts"]
    assert len(params["income_band_texts"]) == 8


def test_a_monthly_income_is_made_yearly_before_the_range_check(tmp_path):
    warehouse, _ = stage(tmp_path, "customer_id,income\nC1,8000\nC2,1万-2万\nC3,\"¥6,000\"\nC4,9000000\n",
                         config_text=LONG_CONFIG + "values:\n  income_period: month\n")
    assert rows(warehouse, "SELECT customer_id, income FROM staging.customers WHERE _source_file IS NOT NULL "
                           "ORDER BY customer_id") == [("C1", 96000.0), ("C2", 180000.0), ("C3", 72000.0)]
    # 9,000,000 a month is 108,000,000 a year: above the default income range, and the reason says so.
    assert rows(warehouse, QUARANTINE) == [
        ("customers", 4, "income", "9000000",
         "income 9000000 (read as 108000000 a year) is outside quality.income_range [0, 100000000]")]


def test_a_band_outside_the_range_names_the_number_it_was_read_as(tmp_path):
    warehouse, _ = stage(tmp_path, "customer_id,age\nC1,over 120\nC2,121\n")
    assert rows(warehouse, QUARANTINE) == [
        ("customers", 1, "age", "over 120", "age over 120 (read as 125) is outside quality.age_range [0, 120]"),
        ("customers", 2, "age", "121", "age 121 is outside quality.age_range [0, 120]")]


def test_the_shops_band_tokens_win_over_the_built_in_rules(tmp_path):
    # A token names a band, not a code: "40" stays the number 40.
    warehouse, _ = stage(tmp_path, "customer_id,age,income\nC1,65+,high\nC2,青年,25-34K\nC3,中年,low\nC4,40,\n",
                         config_text=LONG_CONFIG + """values:
  bands:
    age: {"65+": 72, "青年": 25, "40": 99}
    income: {HIGH: 200000}
""")
    assert rows(warehouse, "SELECT customer_id, age, income FROM staging.customers WHERE _source_file IS NOT NULL "
                           "ORDER BY customer_id") == [("C1", 72.0, 200000.0), ("C2", 25.0, 29500.0), ("C4", 40.0, None)]
    assert rows(warehouse, QUARANTINE) == [
        ("customers", 3, "age, income", "中年",
         "age '中年' is not a number or a band; income 'low' is not a number or a band")]


def test_a_gender_not_known_loads_the_member_with_no_gender(tmp_path):
    # A member export writes 未知 / 保密 / Unknown where a member gave no gender; the shop maps its own 其他 to null.
    warehouse, _ = stage(tmp_path, "customer_id,age,gender,city\n"
                                   "C1,30,未知,上海\nC2,41,保密,北京\nC3,25,unknown ,杭州\nC4,52,其他,深圳\n"
                                   "C5,33,X,广州\nC6,28,女,苏州\n",
                         config_text=LONG_CONFIG + "values:\n  gender: {其他: null}\n")

    assert rows(warehouse, "SELECT customer_id, age, gender, city FROM staging.customers "
                           "WHERE _source_file IS NOT NULL ORDER BY customer_id") == [
        ("C1", 30.0, None, "上海"), ("C2", 41.0, None, "北京"), ("C3", 25.0, None, "杭州"), ("C4", 52.0, None, "深圳"),
        ("C6", 28.0, "F", "苏州")]
    assert rows(warehouse, QUARANTINE) == [("customers", 5, "gender", "X", "gender X is not in values.gender")]
    assert rows(warehouse, CUSTOMER_AUDIT) == [(6, 5, 1)]


def test_a_customer_row_with_several_bad_columns_is_one_quarantine_row_naming_them_all(tmp_path):
    warehouse, _ = stage(tmp_path, "customer_id,age,gender,income,home_owner\n"
                                   "C1,abc,X,lots,maybe\n"
                                   "C2,30,F,25-,Y\n"
                                   "C3,25-34,F,35-49K,Y\n")
    assert rows(warehouse, QUARANTINE) == [
        ("customers", 1, "age, income, gender, home_owner", "abc",
         "age 'abc' is not a number or a band; income 'lots' is not a number or a band; gender X is not in "
         "values.gender; home_owner maybe is not a yes/no token in values.home_owner"),
        ("customers", 2, "income", "25-", "income '25-' is not a number or a band"),
    ]
    # The audit counts rows: three read, one loaded, two quarantined.
    assert rows(warehouse, CUSTOMER_AUDIT) == [(3, 1, 2)]
    assert rows(warehouse, "SELECT customer_id, age, income FROM staging.customers WHERE _source_file IS NOT NULL") \
        == [("C3", 29.5, 42000.0)]


def test_an_order_line_names_each_failing_column_once_with_its_first_reason(tmp_path):
    # Row 2 (no unit_price column): amount 'abc' also fails "missing amount and unit_price", a consequence of the
    # same fault, so amount gives its first reason only; the payment code is a fault of its own. Row 3: an empty
    # order_ts is "missing", not also "not a date"; its raw value is the quantity's -1, the first that is not empty.
    warehouse, _ = stage(tmp_path, "", orders=ORDERS + "O2,C2,2026-03-01 11:00:00,wine,1,abc,BITCOIN,w1\n"
                                                     "O3,C3,,wine,-1,5,CARD,w1\n",
                         config_text="name: profiles\nshape: long\norders:\n  path: orders.csv\n")
    assert rows(warehouse, QUARANTINE) == [
        ("orders", 2, "amount, payment_method", "abc",
         "amount is not a number; payment_method BITCOIN is not in values.payment_methods"),
        ("orders", 3, "order_ts, quantity", "-1",
         "missing order_ts; return line (negative quantity); returns are kept out of purchase features")]
    assert rows(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined FROM quality.load_audit "
                           "WHERE input = 'orders'") == [(3, 1, 2)]


# Amounts and prices as shop consoles export them: a currency sign, thousands separators, 元, a minus on a return.
def test_amounts_and_prices_with_currency_signs_separators_and_full_width_digits_read_as_numbers(tmp_path):
    orders = ("order_id,customer_id,order_ts,category,quantity,unit_price,amount,sku\n"
              'O1,C1,2026-03-01 10:00:00,wine,2,,"¥1,234.50",w1\n'
              "O2,C1,2026-03-02 10:00:00,wine,1,,411.75元,w2\n"
              "O3,C2,2026-03-02 10:00:00,beer,3,$3.50,,b1\n"
              "O4,C2,2026-03-03 10:00:00,beer,1,,￥ 88 元,b2\n"
              "O5,C2,2026-03-03 10:00:00,beer,1,,-¥12.50,b3\n"
              'O6,C3,2026-03-04 10:00:00,beer,1,,"12,5",b4\n'
              'O7,C3,2026-03-04 10:00:00,beer,1,,"0,125",b5\n'
              "O8,C2,2026-03-03 12:00:00,beer,１２,,￥８８．５０,b6\n"  # full-width, as a Chinese input method types
              "O9,C3,2026-03-05 10:00:00,beer,2,RM19.90,,b7\n")  # Shopee Malaysia's ringgit
    warehouse, _ = stage(tmp_path, "", orders=orders,
                         config_text="name: money\nshape: long\norders:\n  path: orders.csv\n")

    assert rows(warehouse, "SELECT order_id, quantity, unit_price, amount FROM staging.order_lines ORDER BY 1") == [
        ("O1", 2.0, 617.25, 1234.5), ("O2", 1.0, 411.75, 411.75), ("O3", 3.0, 3.5, 10.5), ("O4", 1.0, 88.0, 88.0),
        ("O8", 12.0, 88.5 / 12, 88.5), ("O9", 2.0, 19.9, 39.8)]
    # A minus before the sign is a return; a decimal comma is not read as a number (12,5 could be 125 or 12.5;
    # 0,125 is no thousands).
    assert rows(warehouse, QUARANTINE) == [
        ("orders", 5, "amount", "-¥12.50",
         "return line (negative amount); returns are kept out of purchase features"),
        ("orders", 6, "amount", "12,5", "amount is not a number"),
        ("orders", 7, "amount", "0,125", "amount is not a number")]


def test_with_values_decimal_comma_money_reads_a_comma_for_decimals_and_points_between_thousands(tmp_path):
    orders = ("order_id,customer_id,order_ts,category,quantity,unit_price,amount,sku\n"
              'O1,C1,2026-03-01 10:00:00,wine,2,,"R$ 1.234,56",w1\n'
              "O2,C1,2026-03-02 10:00:00,wine,1,,$ 12.990,w2\n"
              'O3,C2,2026-03-02 10:00:00,beer,3,"3,50",,b1\n'
              'O4,C2,2026-03-03 10:00:00,beer,1,,"-R$ 12,50",b2\n'
              'O5,C3,2026-03-04 10:00:00,beer,1,,"1.234,56 €",b3\n'
              "O6,C3,2026-03-04 10:00:00,beer,1,,12.50,b4\n"
              'O7,C3,2026-03-05 10:00:00,beer,1,,"1\u00a0234,56",b5\n')  # a no-break space between thousands
    warehouse, _ = stage(tmp_path, "", orders=orders, config_text="name: money\nshape: long\norders:\n  path: "
                                                                   "orders.csv\nvalues:\n  decimal_comma: true\n")
    assert rows(warehouse, "SELECT order_id, quantity, unit_price, amount FROM staging.order_lines ORDER BY 1") == [
        ("O1", 2.0, 617.28, 1234.56), ("O2", 1.0, 12990.0, 12990.0), ("O3", 3.0, 3.5, 10.5),
        ("O5", 1.0, 1234.56, 1234.56), ("O7", 1.0, 1234.56, 1234.56)]
    # A point is no decimal point under a decimal comma: 12.50 is said, never read as 1,250.
    assert rows(warehouse, QUARANTINE) == [
        ("orders", 4, "amount", "-R$ 12,50",
         "return line (negative amount); returns are kept out of purchase features"),
        ("orders", 6, "amount", "12.50", "amount is not a number")]


def test_month_names_in_spanish_and_portuguese_read_with_a_month_name_format(tmp_path):
    # Mercado Libre writes "15 de marzo de 2024 10:32 hs." (Brazil: março); DuckDB's strptime knows English names.
    orders = ("order_id,customer_id,order_ts,category,amount\n"
              "O1,C1,15 de marzo de 2024 10:32 hs.,wine,10\n"
              "O2,C1,2 de diciembre de 2023 09:05 hs.,wine,11\n"
              "O3,C2,1 de março de 2024 23:59 hs.,beer,12\n"
              "O4,C2,30 de setembro de 2023 00:00 hs.,beer,13\n"
              "O5,C3,15 de marzz de 2024 10:32 hs.,beer,14\n")
    warehouse, _ = stage(tmp_path, "", orders=orders, config_text=(
        "name: meses\nshape: long\norders:\n  path: orders.csv\n  date_formats: ['%d de %B de %Y %H:%M hs.']\n"))
    assert rows(warehouse, "SELECT order_id, order_ts FROM staging.orders ORDER BY 1") == [
        ("O1", datetime(2024, 3, 15, 10, 32)), ("O2", datetime(2023, 12, 2, 9, 5)),
        ("O3", datetime(2024, 3, 1, 23, 59)), ("O4", datetime(2023, 9, 30, 0, 0))]
    assert [row[:4] for row in rows(warehouse, QUARANTINE)] == [("orders", 5, "order_ts", "15 de marzz de 2024 10:32 hs.")]

def test_a_basket_value_with_a_currency_sign_reads_as_a_number(tmp_path):
    warehouse, _ = stage(tmp_path, "", config_text=WIDE_CONFIG, orders="""\
order_id,customer_id,amount,wine,beer
B1,C1,"¥1,020.00",T,F
B2,C2,35元,F,T
""")
    assert rows(warehouse, "SELECT order_id, order_amount FROM staging.orders ORDER BY 1") == [
        ("B1", 1020.0), ("B2", 35.0)]
    assert rows(warehouse, QUARANTINE) == []


WIDE_CONFIG = """name: baskets
shape: wide
orders:
  path: orders.csv
  category_columns: [wine, beer]
"""


def test_wide_basket_rows_carry_banded_profiles(tmp_path):
    warehouse, _ = stage(tmp_path, "", config_text=WIDE_CONFIG + "values:\n  income_period: month\n", orders="""\
customer_id,amount,age,income,wine,beer
C1,10,25-34,5千-1万,T,F
C2,20,65+,"¥8,000",F,T
C3,30,abc,1万以上,T,T
C4,40,35,1万以上,T,F
""")
    # The basket with an unreadable age is quarantined whole: C3 has neither an order nor a profile.
    assert rows(warehouse, "SELECT customer_id, age, income FROM staging.customers ORDER BY customer_id") == [
        ("C1", 29.5, 90000.0), ("C2", 70.0, 96000.0), ("C4", 35.0, 150000.0)]
    assert rows(warehouse, QUARANTINE) == [
        ("orders", 3, "age", "abc", "age 'abc' is not a number or a band")]


def test_wide_baskets_drop_exact_copies_conflicting_repeats_and_failing_rows(tmp_path):
    warehouse, _ = stage(tmp_path, "", config_text=WIDE_CONFIG, orders="""\
order_id,customer_id,amount,wine,beer
B1,C1,10,T,F
B1,C1,10,T,F
B1,C1,12,T,F
B2,C2,20,F,T
B3,C3,abc,T,T
""")
    # The copy of B1 is removed, the basket B1 with another amount and the unreadable amount are quarantined: the
    # baskets and their lines are B1's first row and B2.
    assert rows(warehouse, "SELECT order_id, customer_id, order_amount, n_lines FROM staging.orders ORDER BY 1") == [
        ("B1", "C1", 10.0, 1), ("B2", "C2", 20.0, 1)]
    assert rows(warehouse, "SELECT order_id, category, _source_row FROM staging.order_lines ORDER BY 1") == [
        ("B1", "wine", 1), ("B2", "beer", 4)]
    assert rows(warehouse, "SELECT source_row, duplicate_of_row, kind FROM quality.removed_duplicates") == [
        (2, 1, "exact")]
    assert [(row, column) for _, row, column, _, _ in rows(warehouse, QUARANTINE)] == [(3, "order_id"), (5, "amount")]


def test_a_daily_wide_load_looks_up_the_bands_of_its_own_days_only(tmp_path):
    warehouse, config = stage(tmp_path, "", config_text=WIDE_CONFIG, orders="""\
customer_id,amount,age,income,wine,beer
C1,10,25-34,35-49K,T,F
C2,20,65+,250K+,F,T
""")
    with warehouse.connect() as con:
        # Row 1 landed on March 1st, row 2 on March 2nd.
        days = tmp_path / "days.parquet"
        con.execute("COPY (SELECT * REPLACE (DATE '2026-03-01' + (_source_row - 1)::INTEGER AS _partition_date) "
                    f"FROM raw.orders) TO '{days}' (FORMAT parquet)")
        write_raw_table(con, "raw.orders", [days], [*WIDE_ORDER_FIELDS, *config.orders.category_columns])
        second_day = band_parameters(con, config, DayWindow(date(2026, 3, 2), date(2026, 3, 2)))
    assert second_day == {"age_band_texts": ["65+"], "age_band_numbers": [70.0],
                          "income_band_texts": ["250K+"], "income_band_numbers": [312500.0]}


def test_the_customer_fingerprint_changes_with_the_band_numbers(tmp_path):
    """A daily load keeps the profiles only when their typing is unchanged: a shop token that gives a band another
    number must rebuild them, and so must the same file read as monthly income."""
    warehouse, config = stage(tmp_path, BANDED_CUSTOMERS)
    run_started = datetime(2026, 3, 2)
    with_token = config.model_copy(update={"values": config.values.model_copy(update={"bands": {"age": {"65+": 72}}})})
    monthly = config.model_copy(update={"values": config.values.model_copy(update={"income_period": "month"})})
    with warehouse.connect() as con:
        record_snapshot_load(con, "raw.customers", "the raw customer file", "run-1")  # as the raw asset does

        def fingerprint(of: SourceConfig) -> str:
            return customer_inputs_fingerprint(con, token_parameters(of, run_started) | band_parameters(con, of))

        assert fingerprint(config) == fingerprint(config)
        assert fingerprint(with_token) != fingerprint(config)
        assert fingerprint(monthly) != fingerprint(config)
