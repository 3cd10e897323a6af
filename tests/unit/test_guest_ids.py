"""orders.guest_customer_ids: the customer id a webshop writes for a guest checkout (WooCommerce: 0) or a till for a
walk-in account stands for no customer. A trial's WooCommerce export put 991 guest orders (30% of the money) under
one "customer 0", at the top of a high-value segment."""

import pytest

from pipelines.core.config import load_source_config
from tests.conftest import write_file
from tests.unit.test_staging import rows, stage

LINES = [
    "O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1",
    "O2,0,2026-03-01 11:00:00,wine,2,20,CARD,w1",
    "O3,0,2026-03-02 12:00:00,beer,1,5,CASH,b1",
    "O4,Guest,2026-03-02 13:00:00,dairy,1,7,CASH,d1",
    "O6,0.0,2026-03-03 10:00:00,wine,1,8,CASH,w1",  # a spreadsheet's 0: normalised to 0, as every id is
    "O5,C2,2026-03-03 09:00:00,dairy,3,21,MOBILE,d1",
]


def test_orders_of_a_guest_id_are_set_aside_as_sales_without_a_customer(tmp_path):
    # The config's ids are normalised as the data's: a full-width ０ and a guest with a zero-width space.
    warehouse = stage(tmp_path, {"a.csv": LINES}, orders_config='  guest_customer_ids: ["０", "guest\\u200b"]\n',
                      customers="customer_id,age\nC1,30\nC2,41\n0,\n", customers_config="")

    assert rows(warehouse, "SELECT order_id, customer_id, order_amount FROM staging.orders ORDER BY order_id") == [
        ("O1", "C1", 10.0), ("O5", "C2", 21.0)]
    # The reason and the raw value name the guest id (as normalised), so that a reader sees why a row with an id has
    # no customer.
    def guest(id_):
        return f"missing customer_id (guest id {id_} in orders.guest_customer_ids)"
    assert rows(warehouse, "SELECT input, source_row, raw_value, reason FROM quality.quarantine "
                           "ORDER BY input, source_row") == [
        ("customers", 3, "0", guest("0")),  # the member file's walk-in account is no member
        ("orders", 2, "0", guest("0")), ("orders", 3, "0", guest("0")),
        ("orders", 4, "Guest", guest("Guest")), ("orders", 5, "0", guest("0"))]
    # Set aside like any walk-in sale, so they count neither as faults of the export nor as lost rows.
    assert rows(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined, rows_set_aside FROM quality.load_audit "
                           "WHERE input = 'orders'") == [(6, 2, 4, 4)]
    assert rows(warehouse, "SELECT customer_id FROM staging.customers ORDER BY customer_id") == [("C1",), ("C2",)]


def test_without_the_setting_an_id_of_0_is_a_customer_like_any_other(tmp_path):
    warehouse = stage(tmp_path, {"a.csv": LINES})

    assert rows(warehouse, "SELECT customer_id, count(*) FROM staging.orders GROUP BY ALL ORDER BY ALL") == [
        ("0", 3), ("C1", 1), ("C2", 1), ("Guest", 1)]
    assert rows(warehouse, "SELECT count(*) FROM quality.quarantine") == [(0,)]


def test_unquoted_ids_are_refused_since_yaml_has_already_changed_them(tmp_path):
    config = write_file(tmp_path / "shop.yaml", "name: t\nshape: long\norders:\n  path: o.csv\n"
                                                "  guest_customer_ids: [00000]\n")
    with pytest.raises(Exception, match=r"orders.guest_customer_ids.*quote each id: YAML reads unquoted 0, 00000 "
                                         r"or no as a number or a boolean; got \[0\]"):
        load_source_config(config)


def test_a_guest_row_is_told_apart_from_a_row_without_any_id_and_both_are_set_aside(tmp_path):
    lines = [*LINES, "O7,,2026-03-03 11:00:00,beer,1,4,CASH,b1", "O8,0,2026-03-03 12:00:00,beer,-1,-4,CASH,b1"]
    warehouse = stage(tmp_path, {"a.csv": lines}, orders_config='  guest_customer_ids: ["0"]\n')

    assert rows(warehouse, "SELECT source_row, raw_value, reason FROM quality.quarantine WHERE source_row >= 6 "
                           "ORDER BY source_row") == [
        (7, None, "missing customer_id"),
        (8, "0", "missing customer_id (guest id 0 in orders.guest_customer_ids); return line (negative quantity); "
                 "returns are kept out of purchase features")]
    # Every one of them is set aside (a guest's sale, a return of one, a line without an id), none is a fault.
    assert rows(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined, rows_set_aside FROM quality.load_audit "
                           "WHERE input = 'orders'") == [(8, 3, 5, 5)]
