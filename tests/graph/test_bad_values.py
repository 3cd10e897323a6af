"""Bad values that used to load silently (issue 20): time-zone offsets, dates before quality.min_order_date, Excel
serial dates, id variants, an order id shared by two customers, NaN and infinities. Small files go through the
real raw path and staging (tests/unit/test_staging.py's `stage`), and every case checks the load audit identity."""

from pathlib import Path

from tests.unit.test_staging import rows, stage

HEADER = "order_id,customer_id,order_ts,category,quantity,amount,unit_price,payment_method"
SHANGHAI = "  timezone: Asia/Shanghai\n"


def load(tmp_path: Path, lines: list[str], config: str = SHANGHAI, sections: str = "", **kwargs):
    """Stage one order file; `config`: more keys of `orders:`, `sections`: more top-level sections."""
    warehouse = stage(tmp_path, {"a.csv": lines}, orders_config=config + sections, header=HEADER, **kwargs)
    assert_audit_identity(warehouse, len(lines))
    return warehouse


def assert_audit_identity(warehouse, orders_read: int) -> None:
    """Every row read is loaded, quarantined or removed as a duplicate, per file."""
    audit = rows(warehouse, "SELECT input, rows_read, rows_loaded + rows_quarantined + duplicates_removed "
                            "FROM quality.load_audit")
    assert all(read == accounted for _, read, accounted in audit), audit
    assert sum(read for name, read, _ in audit if name == "orders") == orders_read


def quarantine(warehouse, input_name: str = "orders") -> list[tuple]:
    return rows(warehouse, "SELECT source_row, column_name, raw_value, reason FROM quality.quarantine "
                           f"WHERE input = '{input_name}' ORDER BY source_row")


def order_times(warehouse) -> list[tuple]:
    return rows(warehouse, "SELECT order_id, order_ts::VARCHAR FROM staging.orders ORDER BY order_id")


def line(order_id: str, customer_id: str, order_ts: str = "2026-01-05 10:00:00", amount: str = "10",
         quantity: str = "1", unit_price: str = "") -> str:
    return f"{order_id},{customer_id},{order_ts},wine,{quantity},{amount},{unit_price},CARD"


ZONED = [
    line("O1", "C1", "2026-01-05T10:00:00+08:00"),
    line("O2", "C2", "2026-01-05T10:00:00-05:00"),
    line("O3", "C3", "2026-01-05T10:00:00Z"),
    line("O4", "C4", "2026-01-05 10:00:00 UTC"),
    line("O5", "C5", "2026-01-05 10:00:00 +0530"),
    line("O6", "C6", "2026-01-05 10:00:00 America/New_York"),
    line("O7", "C7", "2026-01-05T10:00:00"),  # ISO without an offset: already local
    line("O8", "C8", "2026-01-05 10:00:00"),  # orders.date_formats: already local
    line("O9", "C9", "2026-01-05"),
]


def test_offsets_and_zones_are_converted_to_the_shops_time_zone(tmp_path):
    warehouse = load(tmp_path, ZONED)
    assert order_times(warehouse) == [
        ("O1", "2026-01-05 10:00:00"), ("O2", "2026-01-05 23:00:00"), ("O3", "2026-01-05 18:00:00"),
        ("O4", "2026-01-05 18:00:00"), ("O5", "2026-01-05 12:30:00"), ("O6", "2026-01-05 23:00:00"),
        ("O7", "2026-01-05 10:00:00"), ("O8", "2026-01-05 10:00:00"), ("O9", "2026-01-05 00:00:00")]
    assert quarantine(warehouse) == []


def test_another_shop_time_zone_moves_only_the_times_with_an_offset(tmp_path):
    warehouse = load(tmp_path, ZONED, config="  timezone: UTC\n")
    assert order_times(warehouse) == [
        ("O1", "2026-01-05 02:00:00"), ("O2", "2026-01-05 15:00:00"), ("O3", "2026-01-05 10:00:00"),
        ("O4", "2026-01-05 10:00:00"), ("O5", "2026-01-05 04:30:00"), ("O6", "2026-01-05 15:00:00"),
        ("O7", "2026-01-05 10:00:00"), ("O8", "2026-01-05 10:00:00"), ("O9", "2026-01-05 00:00:00")]


def test_a_date_format_with_an_offset_is_converted_too(tmp_path):
    warehouse = load(tmp_path, [line("O1", "C1", "05/01/2026 10:00 +0100"), line("O2", "C2", "05/01/2026 10:00")],
                     config=SHANGHAI + '  date_formats: ["%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M %z"]\n')
    assert order_times(warehouse) == [("O1", "2026-01-05 17:00:00"), ("O2", "2026-01-05 10:00:00")]


PLACEHOLDER_DATES = [
    line("O1", "C1", "1900-01-01"),
    line("O2", "C2", "0001-01-01 00:00:00"),
    line("O3", "C3", "1999-12-31 23:59:59"),
    line("O4", "C4", "2000-01-01 00:00:00"),
]


def test_order_dates_before_the_minimum_are_quarantined_naming_the_setting(tmp_path):
    warehouse = load(tmp_path, PLACEHOLDER_DATES)
    assert quarantine(warehouse) == [
        (1, "order_ts", "1900-01-01", "order_ts 1900-01-01 is before quality.min_order_date (2000-01-01)"),
        (2, "order_ts", "0001-01-01 00:00:00",
         "order_ts 0001-01-01 00:00:00 is before quality.min_order_date (2000-01-01)"),
        (3, "order_ts", "1999-12-31 23:59:59",
         "order_ts 1999-12-31 23:59:59 is before quality.min_order_date (2000-01-01)")]
    assert order_times(warehouse) == [("O4", "2000-01-01 00:00:00")]


def test_a_two_digit_year_read_by_percent_capital_y_says_so(tmp_path):
    """A trial's Etsy export (12/30/23) with %m/%d/%Y: every row read as the year 23 and was quarantined as before
    quality.min_order_date, and the reason showed neither the date read nor the format that reads it."""
    warehouse = load(tmp_path, [line("O1", "C1", "12/30/23"), line("O2", "C2", "12/30/2023")],
                     config='  date_formats: ["%m/%d/%Y"]\n')
    assert quarantine(warehouse) == [
        (1, "order_ts", "12/30/23", "order_ts 12/30/23 reads as 0023-12-30, before quality.min_order_date "
                                    "(2000-01-01): a two-digit year needs %y in orders.date_formats, not %Y")]
    assert order_times(warehouse) == [("O2", "2023-12-30 00:00:00")]
    read = load(tmp_path / "y", [line("O1", "C1", "12/30/23")], config='  date_formats: ["%m/%d/%y"]\n')
    assert order_times(read) == [("O1", "2023-12-30 00:00:00")]


def test_the_minimum_order_date_is_configurable(tmp_path):
    warehouse = load(tmp_path, PLACEHOLDER_DATES, sections="quality:\n  min_order_date: 1900-01-01\n")
    assert [reason for *_, reason in quarantine(warehouse)] == [
        "order_ts 0001-01-01 00:00:00 is before quality.min_order_date (1900-01-01)"]
    assert [order_id for order_id, _ in order_times(warehouse)] == ["O1", "O3", "O4"]


EXCEL = [line("O1", "C1", "45292.5"), line("O2", "C2", "45293"), line("O3", "C3", "2026-01-05 10:00:00")]


def test_an_excel_serial_date_is_quarantined_naming_the_setting(tmp_path):
    warehouse = load(tmp_path, EXCEL)
    setting = "(an Excel serial date?): set orders.excel_serial_dates: true to read it as days since 1899-12-30"
    assert quarantine(warehouse) == [
        (1, "order_ts", "45292.5", f"order_ts 45292.5 is a bare number {setting}"),
        (2, "order_ts", "45293", f"order_ts 45293 is a bare number {setting}")]


def test_excel_serial_dates_load_when_configured(tmp_path):
    warehouse = load(tmp_path, [*EXCEL, line("O4", "C4", "12.5"), line("O5", "C5", "99999999")],
                     config=SHANGHAI + "  excel_serial_dates: true\n")
    assert order_times(warehouse) == [
        ("O1", "2024-01-01 12:00:00"), ("O2", "2024-01-02 00:00:00"), ("O3", "2026-01-05 10:00:00")]
    # Day 12 is in 1900: before quality.min_order_date. 99999999 is beyond Excel's last day: not a date.
    assert quarantine(warehouse) == [
        (4, "order_ts", "12.5", "order_ts 12.5 is before quality.min_order_date (2000-01-01)"),
        (5, "order_ts", "99999999", "order_ts is not a date in orders.date_formats or ISO 8601")]


# The same customer written five ways: plain, a trailing tab (quoted), a zero-width space, full-width, lower case.
ID_VARIANTS = [
    line("O1", "C001", amount="10"),
    line("O2", '"C001\t"', amount="20"),
    line("O3", "C001\u200b", amount="30"),
    line("O4", "\uff23\uff10\uff10\uff11", amount="40"),
    line("O5", "c001", amount="50"),
    line("O6", "\ufeffC002\u00a0", amount="60"),  # a byte-order mark and a no-break space: no other form of C002
]


def test_id_variants_are_one_customer_and_reported_as_key_conflicts(tmp_path):
    warehouse = load(tmp_path, ID_VARIANTS)
    assert rows(warehouse, "SELECT customer_id, count(*), sum(order_amount) FROM staging.orders "
                           "GROUP BY 1 ORDER BY 1") == [("C001", 4, 100.0), ("C002", 1, 60.0), ("c001", 1, 50.0)]
    assert rows(warehouse, "SELECT customer_id FROM staging.customers ORDER BY 1") == [("C001",), ("C002",), ("c001",)]
    normalised = "after normalisation (NFKC, trimmed, invisible characters removed, values.id_case); loaded as one id"
    assert rows(warehouse, "SELECT input, key_column, key_value, kept_row, superseded_row, differing_columns, "
                           "resolution FROM quality.key_conflicts ORDER BY superseded_row") == [
        ("orders", "customer_id", "C001", 1, 2, ["customer_id"],
         f"id variant: 'C001<U+0009>' and 'C001' are both 'C001' {normalised}"),
        ("orders", "customer_id", "C001", 1, 3, ["customer_id"],
         f"id variant: 'C001<U+200B>' and 'C001' are both 'C001' {normalised}"),
        ("orders", "customer_id", "C001", 1, 4, ["customer_id"],
         f"id variant: '\uff23\uff10\uff10\uff11' and 'C001' are both 'C001' {normalised}")]
    assert quarantine(warehouse) == []


def test_with_id_case_upper_lower_case_variants_merge_too(tmp_path):
    warehouse = load(tmp_path, ID_VARIANTS, sections="values:\n  id_case: upper\n")
    assert rows(warehouse, "SELECT customer_id, count(*), sum(order_amount) FROM staging.orders "
                           "GROUP BY 1 ORDER BY 1") == [("C001", 5, 150.0), ("C002", 1, 60.0)]
    assert rows(warehouse, "SELECT superseded_row FROM quality.key_conflicts WHERE key_value = 'C001' "
                           "ORDER BY 1") == [(2,), (3,), (4,), (5,)]


def test_with_id_case_lower_ids_are_lower_case(tmp_path):
    warehouse = load(tmp_path, ID_VARIANTS, sections="values:\n  id_case: lower\n")
    assert rows(warehouse, "SELECT DISTINCT customer_id FROM staging.orders ORDER BY 1") == [("c001",), ("c002",)]


def test_customer_file_ids_are_normalised_and_their_variants_reported(tmp_path):
    customers = "customer_id,age\nC001,30\n\uff23\uff10\uff10\uff11,31\nC002\u200d,40\n"
    warehouse = load(tmp_path, [line("O1", "C001"), line("O2", "C002")], customers=customers)
    assert rows(warehouse, "SELECT customer_id, age FROM staging.customers ORDER BY 1") == [
        ("C001", 31.0), ("C002", 40.0)]
    assert rows(warehouse, "SELECT input, key_value, kept_row, superseded_row, differing_columns FROM "
                           "quality.key_conflicts ORDER BY superseded_row, resolution") == [
        # The id variant, and (as before) the superseded profile of the same customer.
        ("customers", "C001", 2, 1, ["age"]),
        ("customers", "C001", 1, 2, ["customer_id"])]


def test_an_order_id_used_by_another_customer_is_quarantined_naming_both(tmp_path):
    warehouse = stage(tmp_path, {
        "a.csv": [line("O1", "C1", amount="10"), line("O1", "C2", amount="20"), line("O1", "C1", amount="5"),
                  line("O2", "C2", amount="7")],
        "b.csv": [line("O1", "C3", amount="30")],
    }, orders_config=SHANGHAI, header=HEADER)
    assert_audit_identity(warehouse, 5)
    assert rows(warehouse, "SELECT parse_filename(source_file), source_row, column_name, raw_value, reason "
                           "FROM quality.quarantine ORDER BY source_file, source_row") == [
        ("a.csv", 2, "order_id", "O1", "order_id used by another customer: order O1 belongs to customer C1 "
                                       "(its first line, row 1), this line names customer C2"),
        ("b.csv", 1, "order_id", "O1", "order_id used by another customer: order O1 belongs to customer C1 "
                                       "(its first line, row 1 of a.csv), this line names customer C3")]
    # Each customer is credited with their own lines only.
    assert rows(warehouse, "SELECT order_id, customer_id, order_amount, n_lines FROM staging.orders "
                           "ORDER BY order_id") == [("O1", "C1", 15.0, 2), ("O2", "C2", 7.0, 1)]
    assert rows(warehouse, "SELECT order_id, customer_id, amount FROM staging.order_lines "
                           "ORDER BY _source_file, _source_row") == [
        ("O1", "C1", 10.0), ("O1", "C1", 5.0), ("O2", "C2", 7.0)]


def test_an_order_id_variant_of_another_customers_order_is_caught_after_normalisation(tmp_path):
    warehouse = load(tmp_path, [line("O1", "C1"), line("\uff2f\uff11", "C2")])
    assert [reason for *_, reason in quarantine(warehouse)] == [
        "order_id used by another customer: order O1 belongs to customer C1 (its first line, row 1), "
        "this line names customer C2"]


def test_nan_and_infinities_are_not_finite_numbers_in_every_numeric_field(tmp_path):
    warehouse = load(tmp_path, [
        line("O1", "C1", amount="NaN"),
        line("O2", "C2", amount="", unit_price="nan"),
        line("O3", "C3", amount="10", unit_price="NaN"),
        line("O4", "C4", quantity="inf"),
        line("O5", "C5", amount="-inf"),
        line("O6", "C6", amount="Infinity"),
        line("O7", "C7", amount="12.5"),
    ], customers="customer_id,age,income,birth_year\nC1,NaN,inf,1980\nC2,30,-Infinity,1990\nC3,31,5000,nan\n"
                 "C7,40,6000,1985\n")
    assert quarantine(warehouse) == [
        (1, "amount", "NaN", "amount NaN is not a finite number"),
        (2, "unit_price", "nan", "unit_price nan is not a finite number"),
        (3, "unit_price", "NaN", "unit_price NaN is not a finite number"),
        (4, "quantity", "inf", "quantity inf is not a finite number"),
        (5, "amount", "-inf", "amount -inf is not a finite number"),
        (6, "amount", "Infinity", "amount Infinity is not a finite number")]
    assert quarantine(warehouse, "customers") == [
        (1, "age, income", "NaN", "age NaN is not a finite number; income inf is not a finite number"),
        (2, "income", "-Infinity", "income -Infinity is not a finite number"),
        (3, "birth_year", "nan", "birth_year nan is not a finite number")]
    assert rows(warehouse, "SELECT order_id, amount FROM staging.order_lines") == [("O7", 12.5)]
    assert rows(warehouse, "SELECT customer_id, age FROM staging.customers WHERE age IS NOT NULL") == [("C7", 40.0)]
