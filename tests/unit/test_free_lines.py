"""Lines whose amount is 0: a JD export's free gifts (【赠品】, 0.00) were 11.5% of a trial's loaded lines, all in
the catch-all category, and became the report's top finding and a third of the first recommendations. They are set
aside like returns, with a reason; a shop whose bundles list their parts at 0 keeps them (orders.free_lines: keep)."""

from tests.unit.test_staging import rows, stage

LINES = [
    "O1,C1,2026-03-01 10:00:00,appliances,1,899,CARD,a1",
    "O1,C1,2026-03-01 10:00:00,other,1,0.00,CARD,gift",  # 【赠品】
    "O2,C2,2026-03-01 11:00:00,other,2,0,CASH,gift",  # a gift-only order: no purchase at all
    "O3,C3,2026-03-01 12:00:00,wine,1,19.5,CASH,w1",
]
FREE = "free line (amount 0); gifts and samples are kept out of purchase features"


def test_free_lines_are_set_aside_and_their_orders_keep_their_priced_lines(tmp_path):
    warehouse = stage(tmp_path, {"a.csv": LINES})
    assert rows(warehouse, "SELECT order_id, order_amount, n_lines FROM staging.orders ORDER BY 1") == [
        ("O1", 899.0, 1), ("O3", 19.5, 1)]
    assert rows(warehouse, "SELECT source_row, column_name, raw_value, reason FROM quality.quarantine "
                           "ORDER BY source_row") == [(2, "amount", "0.00", FREE), (3, "amount", "0", FREE)]
    # Set aside, not faults: the quarantine limit leaves them out.
    assert rows(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined, rows_set_aside FROM quality.load_audit "
                           "WHERE input = 'orders'") == [(4, 2, 2, 2)]


def test_a_shop_whose_bundles_list_parts_at_0_keeps_them(tmp_path):
    warehouse = stage(tmp_path, {"a.csv": LINES}, orders_config="  free_lines: keep\n")
    assert rows(warehouse, "SELECT order_id, order_amount, n_lines FROM staging.orders ORDER BY 1") == [
        ("O1", 899.0, 2), ("O2", 0.0, 1), ("O3", 19.5, 1)]
    assert rows(warehouse, "SELECT count(*) FROM quality.quarantine") == [(0,)]
