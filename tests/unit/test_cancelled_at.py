"""orders.columns.cancelled_at: Shopify keeps a cancelled order's payment status (paid) when it is cancelled without
a refund, and writes the cancellation time in Cancelled at, on the order's first line only. A trial planted 40 such
orders (70 lines, 2,461.00): all counted as purchases. Now the order's every line is set aside."""

from tests.unit.test_staging import rows, stage

HEADER = "order_id,customer_id,order_ts,category,quantity,amount,payment_method,sku,status,cancelled_at"
LINES = [
    "#1001,a@x.com,2026-03-01 10:00:00,wine,1,10,CARD,w1,paid,",
    "#1002,b@x.com,2026-03-01 11:00:00,wine,1,20,CARD,w1,paid,2026-03-02 09:00:00",
    "#1002,,,beer,2,6,,b1,,",  # a later line of the cancelled order: its order fields on the first line only
    "#1003,c@x.com,2026-03-01 12:00:00,dairy,1,5,CASH,d1,paid,",
]
REASON = "cancelled order (cancelled_at set)"


def test_an_order_with_a_cancellation_time_is_set_aside_line_by_line(tmp_path):
    warehouse = stage(tmp_path, {"a.csv": LINES}, header=HEADER,
                      orders_config="  fill_down: [customer_id, order_ts, payment_method, status, cancelled_at]\n")
    assert rows(warehouse, "SELECT order_id FROM staging.orders ORDER BY 1") == [("#1001",), ("#1003",)]
    assert rows(warehouse, "SELECT source_row, column_name, raw_value, reason FROM quality.quarantine "
                           "ORDER BY source_row") == [
        (2, "cancelled_at", "2026-03-02 09:00:00", REASON), (3, "cancelled_at", "2026-03-02 09:00:00", REASON)]
    # Set aside, not a fault: the quarantine limit leaves them out.
    assert rows(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined, rows_set_aside FROM quality.load_audit "
                           "WHERE input = 'orders'") == [(4, 2, 2, 2)]
