"""Lines whose amount is 0: a JD export's free gifts (【赠品】, 0.00) were 11.5% of a trial's loaded lines, all in
the catch-all category, and became the report's top finding and a third of the first recommendations. They are set
aside like returns, with a reason; a shop whose bundles list their parts at 0 keeps them (orders.free_lines: keep)."""

from assets.staging.line_amounts import FreeLines, amount_source, free_lines
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


def discount_mapped_as_amount(lines: int) -> list[str]:
    """A discount column mapped as the amount (a trial's 抖店 优惠总金额, Etsy's Discount Amount): 0.00 on the lines
    without a discount, one in four here."""
    return [f"O{i},C{i % 40},2026-03-0{1 + i % 9} 10:00:00,tea,1,{'5.00' if i % 4 == 0 else '0.00'},CARD,t{i}"
            for i in range(lines)]


def test_more_free_lines_than_a_shop_gives_away_are_said_to_look_like_another_column():
    found = FreeLines(read=80, free=60)
    assert found.too_many
    assert found.warning("orders.columns.amount (优惠总金额)") == (
        "60 of the 80 order rows (75.0%) have amount 0 and were set aside as free lines, more than a shop gives away: "
        "check that orders.columns.amount (优惠总金额) is each line's amount, not a discount, fee or refund that is 0 on "
        "most lines (map the line's amount, or unit_price and quantity and leave amount out); bundle parts listed at "
        "0 can be kept with orders.free_lines: keep")


def test_the_free_lines_of_a_run_are_counted_from_its_quarantine(tmp_path):
    warehouse = stage(tmp_path, {"a.csv": discount_mapped_as_amount(80)})
    with warehouse.connect(read_only=True) as con:
        assert free_lines(con, "run-1") == FreeLines(read=80, free=60)
        assert free_lines(con, "another-run") == FreeLines(read=0, free=0)
    # A shop's gifts: 2 of 4 rows, too few rows to say anything; JD's 11.5% of many rows is below the share.
    assert not FreeLines(read=4, free=2).too_many
    assert not FreeLines(read=10_000, free=1_150).too_many
    assert amount_source({"amount": "优惠总金额"}) == "orders.columns.amount (优惠总金额)"
    assert amount_source({"unit_price": "商品单价"}) == ("the line's amount (orders.columns.amount, or unit_price times "
                                                       "quantity)")
