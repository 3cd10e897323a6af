"""orders.guest_customer_ids: the customer id a webshop writes for a guest checkout (WooCommerce: 0) or a till for a
walk-in account stands for no customer. A trial's WooCommerce export put 991 guest orders (30% of the money) under
one "customer 0", at the top of a high-value segment."""

from tests.unit.test_staging import rows, stage

LINES = [
    "O1,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1",
    "O2,0,2026-03-01 11:00:00,wine,2,20,CARD,w1",
    "O3,0,2026-03-02 12:00:00,beer,1,5,CASH,b1",
    "O4,Guest,2026-03-02 13:00:00,dairy,1,7,CASH,d1",
    "O5,C2,2026-03-03 09:00:00,dairy,3,21,MOBILE,d1",
]


def test_orders_of_a_guest_id_are_set_aside_as_sales_without_a_customer(tmp_path):
    warehouse = stage(tmp_path, {"a.csv": LINES}, orders_config="  guest_customer_ids: [0, guest]\n")

    assert rows(warehouse, "SELECT order_id, customer_id, order_amount FROM staging.orders ORDER BY order_id") == [
        ("O1", "C1", 10.0), ("O5", "C2", 21.0)]
    assert rows(warehouse, "SELECT source_row, raw_value, reason FROM quality.quarantine ORDER BY source_row") == [
        (2, None, "missing customer_id"), (3, None, "missing customer_id"), (4, None, "missing customer_id")]
    # Set aside like any walk-in sale, so they count neither as faults of the export nor as lost rows.
    assert rows(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined, rows_set_aside FROM quality.load_audit "
                           "WHERE input = 'orders'") == [(5, 2, 3, 3)]
    assert rows(warehouse, "SELECT customer_id FROM staging.customers ORDER BY customer_id") == [("C1",), ("C2",)]


def test_without_the_setting_an_id_of_0_is_a_customer_like_any_other(tmp_path):
    warehouse = stage(tmp_path, {"a.csv": LINES})

    assert rows(warehouse, "SELECT customer_id, count(*) FROM staging.orders GROUP BY ALL ORDER BY ALL") == [
        ("0", 2), ("C1", 1), ("C2", 1), ("Guest", 1)]
    assert rows(warehouse, "SELECT count(*) FROM quality.quarantine") == [(0,)]
