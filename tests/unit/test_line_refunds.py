"""orders.columns.line_status: a line refunded on its own while the rest of its order stands. A trial's Youzan 有赞
export marked 833 lines 退款成功 in its 售后状态 column (90,806.78 of its money): the order status says nothing of
them, so they were counted as purchases. Such lines (values.refunded_line_statuses) are now set aside like return
lines, and init maps the column."""

from assets.report.coverage import coverage_sentences, load_coverage, money_basis_sentences
from assets.report.facts import FactBook
from pipelines.check import reason_kind
from tests.unit.test_config_init import init_ok
from tests.unit.test_report_coverage import _warehouse
from tests.unit.test_staging import rows, stage

HEADER = "order_id,customer_id,order_ts,category,quantity,amount,payment_method,sku,订单状态,售后状态"
LINES = [
    "E1,C1,2026-03-01 10:00:00,snacks,1,10,CARD,s1,交易成功,",
    "E1,C1,2026-03-01 10:00:00,baby,2,50,CARD,b1,交易成功,退款成功",  # refunded: the order keeps its snacks
    "E2,C2,2026-03-02 11:00:00,baby,1,30,CARD,b2,交易成功,退款关闭",  # refund turned down: bought
    "E3,C2,2026-03-03 12:00:00,fresh,1,8,CARD,f1,交易成功,退货完成",  # the shop's own word, listed in the config
    "E4,C3,2026-03-04 09:00:00,fresh,1,6,CASH,f2,交易关闭,退款成功",  # a cancelled order as well
]
REFUNDED = "refunded line (line_status {}); returns are kept out of purchase features"


def test_refunded_lines_are_set_aside_and_their_orders_keep_the_other_lines(tmp_path):
    warehouse = stage(tmp_path, {"a.csv": LINES}, header=HEADER,
                      orders_config="  columns: {status: 订单状态, line_status: 售后状态}\n")
    # values.refunded_line_statuses is not set: the built-in list holds 退款成功 but not 退货完成.
    assert rows(warehouse, "SELECT order_id, order_amount, n_lines FROM staging.orders ORDER BY order_id") == [
        ("E1", 10.0, 1), ("E2", 30.0, 1), ("E3", 8.0, 1)]
    assert rows(warehouse, "SELECT source_row, reason FROM quality.quarantine ORDER BY source_row") == [
        (2, REFUNDED.format("退款成功")),
        (5, "cancelled order (status 交易关闭); " + REFUNDED.format("退款成功"))]
    # Set aside, not faults: every row read is accounted for and none counts against the quarantine limit.
    assert rows(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined, rows_set_aside FROM quality.load_audit "
                           "WHERE input = 'orders'") == [(5, 3, 2, 2)]

    listed = stage(tmp_path / "listed", {"a.csv": LINES}, header=HEADER,
                   orders_config="  columns: {status: 订单状态, line_status: 售后状态}\n"
                                 "values:\n  refunded_line_statuses: [退货完成]\n")
    assert rows(listed, "SELECT order_id FROM staging.orders ORDER BY order_id") == [("E1",), ("E2",)]


def test_without_the_mapping_a_refund_column_is_only_read_when_named_line_status(tmp_path):
    # The same file without line_status mapped: 售后状态 is no field, and every line but the cancelled order's counts.
    warehouse = stage(tmp_path, {"a.csv": LINES}, header=HEADER, orders_config="  columns: {status: 订单状态}\n")
    assert rows(warehouse, "SELECT order_id, order_amount FROM staging.orders ORDER BY order_id") == [
        ("E1", 60.0), ("E2", 30.0), ("E3", 8.0)]


def test_init_maps_the_after_sales_status_and_guesses_only_completed_refunds(tmp_path):
    header = "订单号,会员卡号,订单创建时间,商品名称,商品类目,商品数量,商品实际成交金额,订单状态,售后状态"
    statuses = ["", "", "退款成功", "退款中", "退款关闭", "退款完成", ""]
    lines = [f"E{n:04d},VIP{n % 9},2026-03-{1 + n % 28:02d} 10:00:00,商品{n % 5},零食,1,{5 + n % 7}.00,交易成功,"
             f"{statuses[n % len(statuses)]}" for n in range(60)]
    orders = tmp_path / "youzan.csv"
    orders.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")

    config, printed = init_ok(tmp_path, orders)

    assert config["orders"]["columns"]["status"] == "订单状态"
    assert config["orders"]["columns"]["line_status"] == "售后状态"
    # 退款成功 is built in; 退款完成 is guessed; a refund asked for (退款中) or turned down (退款关闭) is still a sale.
    assert config["values"]["refunded_line_statuses"] == ["退款完成"]
    assert "cancelled_statuses" not in config["values"]
    text = (tmp_path / "shop.yaml").read_text(encoding="utf-8")
    assert "statuses seen: 退款中, 退款关闭, 退款完成, 退款成功; refunded: 退款完成, 退款成功" in text
    assert not any("售后状态" in line for line in printed)


def test_a_refunded_lines_reason_keeps_its_status_when_check_counts_reasons():
    reason = "missing customer_id; " + REFUNDED.format("退款成功")
    assert reason_kind(reason, None) == reason
    assert reason_kind("amount x1 is not a number; " + REFUNDED.format("x1"), "x1") == \
        "amount <value> is not a number; " + REFUNDED.format("x1")


def test_the_report_counts_refunded_lines_and_says_they_are_not_in_the_money(tmp_path):
    con = _warehouse(tmp_path / "w.duckdb")
    con.execute("INSERT INTO quality.load_audit VALUES ('r1', 'orders', 'a.csv', 7, 3, 4, 0, 4)")
    con.executemany("INSERT INTO quality.quarantine VALUES ('r1', 'orders', ?)",
                    [[REFUNDED.format("退款成功")], [REFUNDED.format("已退款")],
                     ["cancelled order (status 交易关闭); " + REFUNDED.format("退款成功")],
                     ["missing customer_id; " + REFUNDED.format("退款成功")]])
    book = FactBook()
    said = coverage_sentences(book, load_coverage(con, "r1"))
    # A cancelled order's refunded line counts as cancelled, a guest's as a sale without a customer id: no row is
    # counted twice, and two lines were refunded while their orders stood.
    assert [s.text(book) for s in said["en"]] == [
        "This run read 7 order rows and loaded 3; 4 were set aside (cancelled, returned, free or without a customer id), "
        "1 of them without a customer id (walk-in or guest sales), which are in no segment; 2 were lines refunded to "
        "a customer while the rest of their order stands (their refund status). Details are in quality.load_audit "
        "and quality.quarantine."]
    assert "；另有 2 行为顾客已退款的商品行（售后或退款状态），所在订单的其余商品照常计入" in said["zh"][0].text(book, "zh")
    for fact in book.facts.values():
        assert con.execute(fact.sql, list(fact.params)).fetchone()[0] == fact.value, fact.key

    book = FactBook()
    with_refunds, without = money_basis_sentences(line_refunds=True), money_basis_sentences()
    assert with_refunds["en"][0].text(book).endswith(
        "cancelled orders and lines marked refunded are left out, also when a later day's export marks them; "
        "separate return lines are "
        "set aside rather than subtracted, so an order returned in part only through such a line counts in full.")
    assert without["en"][0].text(book).endswith("so an order returned or refunded in part counts in full.")
    assert "已标为已退款的商品行不计入（包括之后的导出文件才标明的）" in with_refunds["zh"][0].text(book, "zh")


def test_order_statuses_of_a_refund_asked_for_or_turned_down_are_no_cancellation(tmp_path):
    """An order status of a refund in progress or declined (退款中, 退款关闭) is still a sale: init guesses neither
    as a cancelled order, and a line status is judged against its own list, never the order statuses'."""
    header = "订单号,会员卡号,订单创建时间,商品类目,商品数量,商品实际成交金额,订单状态,售后状态"
    orders_status = ["交易成功", "退款中", "退款关闭", "交易关闭", "等待买家付款"]
    lines = [f"E{n:04d},VIP{n % 9},2026-03-{1 + n % 28:02d} 10:00:00,零食,1,{5 + n % 7}.00,"
             f"{orders_status[n % 5]},{['', '退款中', '退款成功'][n % 3]}" for n in range(60)]
    orders = tmp_path / "youzan.csv"
    orders.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    config, _ = init_ok(tmp_path, orders)
    assert config["values"]["cancelled_statuses"] == ["等待买家付款"]
    assert "refunded_line_statuses" not in config["values"]


def test_lines_alike_but_for_their_line_status_are_two_lines(tmp_path):
    # Two scans of one item, one of them with a refund asked for: neither is a copy of the other.
    lines = ["E1,C1,2026-03-01 10:00:00,snacks,1,10,CARD,s1,交易成功,", "E1,C1,2026-03-01 10:00:00,snacks,1,10,CARD,s1,"
             "交易成功,退款中"]
    warehouse = stage(tmp_path, {"a.csv": lines}, header=HEADER,
                      orders_config="  columns: {status: 订单状态, line_status: 售后状态}\n")
    assert rows(warehouse, "SELECT order_id, n_lines, order_amount FROM staging.orders") == [("E1", 2, 20.0)]
    assert rows(warehouse, "SELECT duplicates_removed FROM quality.load_audit WHERE input = 'orders'") == [(0,)]


def test_only_a_status_column_is_taken_for_a_lines_refund_status():
    from pipelines.config_match import name_score

    for column in ("售后状态", "售后", "退款状态", "退货状态", "Refund Status", "Lineitem refund status"):
        assert name_score("line_status", column) is not None, column
    # An after-sales number, amount or reason, or a fulfilment status, says nothing of whether the line was refunded.
    for column in ("售后单号", "售后金额", "售后原因", "Lineitem fulfillment status", "退款金额"):
        assert name_score("line_status", column) is None, column


def test_a_cancelled_line_without_a_price_is_set_aside_not_a_fault(tmp_path):
    """Amazon's All Orders Report writes a cancelled item with quantity 0 and no price: a trial's run counted its 694
    cancellations (10.2% of the rows) as faults of the export ("missing amount and unit_price; ...") and was blocked
    by quality.max_quarantine_share. A row that is no purchase is set aside whatever else it fails."""
    lines = [*LINES[:3],
             "E5,C4,2026-03-05 10:00:00,fresh,0,,CARD,f3,Shipped,Cancelled",  # an item cancelled in a shipped order
             "E6,C5,2026-03-05 11:00:00,fresh,0,,CARD,f4,Cancelled,Cancelled",  # a cancelled order
             "E7,C5,2026-03-05 12:00:00,fresh,1,,CARD,f5,Shipped,"]  # a price missing on a sale: a fault
    warehouse = stage(tmp_path, {"a.csv": lines}, header=HEADER,
                      orders_config="  columns: {status: 订单状态, line_status: 售后状态}\n"
                                    "values:\n  cancelled_statuses: [Cancelled]\n  refunded_line_statuses: [Cancelled]\n")
    reasons = rows(warehouse, "SELECT source_row, reason FROM quality.quarantine ORDER BY source_row")
    assert [row for row, _ in reasons] == [2, 4, 5, 6]
    assert rows(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined, rows_set_aside FROM quality.load_audit "
                           "WHERE input = 'orders'") == [(6, 2, 4, 3)]
    assert reasons[3] == (6, "missing amount and unit_price")
