"""Ids a spreadsheet rounded: a JD export re-saved in Excel had its 12-digit order ids written as 2.83E+11, every order
of a range merged into one, and the run published 2.5 times the real revenue. Such rows are quarantined with a
reason that says what happened; an id that merely contains an E is an id like any other."""

from tests.unit.test_staging import rows, stage

LINES = [
    "2.83E+11,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1",
    "2.83E+11,C2,2026-03-01 11:00:00,beer,2,6,CASH,b1",
    "283011223344,C3,2026-03-01 12:00:00,dairy,1,5,CASH,d1",
    "E1+2,C4,2026-03-01 13:00:00,dairy,1,5,CASH,d1",  # an id with an E, not a rounded number
    "O5,1.3E+17,2026-03-01 14:00:00,wine,1,9,CARD,w1",  # a member number rounded the same way
]


def test_rows_whose_ids_a_spreadsheet_rounded_are_quarantined_with_the_reason(tmp_path):
    warehouse = stage(tmp_path, {"a.csv": LINES})
    assert rows(warehouse, "SELECT order_id, customer_id FROM staging.orders ORDER BY 1") == [
        ("283011223344", "C3"), ("E1+2", "C4")]
    said = " is a number a spreadsheet rounded (scientific notation), which merges ids: export the file again " \
           "without saving it in Excel, or import the column as text"
    assert rows(warehouse, "SELECT source_row, column_name, raw_value, reason FROM quality.quarantine "
                           "ORDER BY source_row") == [
        (1, "order_id", "2.83E+11", "order_id 2.83E+11" + said),
        (2, "order_id", "2.83E+11", "order_id 2.83E+11" + said),
        (5, "customer_id", "1.3E+17", "customer_id 1.3E+17" + said)]
    # A fault of the export, not a row set aside: the quarantine limit counts it.
    assert rows(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined, rows_set_aside FROM quality.load_audit "
                           "WHERE input = 'orders'") == [(5, 2, 3, 0)]


def test_init_says_when_a_spreadsheet_rounded_the_ids(tmp_path):
    """A JD-style export opened and saved in Excel: init maps 订单号 but says its ids are rounded numbers."""
    from tests.unit.test_config_init import init_ok

    lines = ["订单号,下单时间,商品名称,购买数量,京东价,下单帐号"]
    for i in range(40):
        order = "2.83E+11" if i < 30 else f"2830112233{i:02d}"
        lines.append(f"{order},2024-06-{1 + i % 28:02d} 10:00:00,商品{i % 5},1,{10 + i}.00,jd_{i % 9}")
    path = tmp_path / "京东订单导出.csv"
    path.write_text("\n".join(lines) + "\n", encoding="gbk")
    config, printed = init_ok(tmp_path, path)

    assert config["orders"]["columns"]["order_id"] == "订单号"
    assert config["orders"]["columns"]["customer_id"] == "下单帐号"  # JD's buyer account, 帐 or 账
    assert ("to decide: orders.columns.order_id: 30 of 40 sampled values of 订单号 in 京东订单导出.csv are numbers a "
            "spreadsheet rounded (e.g. 2.83E+11): their last digits are lost, so different ids became one; export the "
            "file again without opening and saving it in Excel (a run quarantines these rows rather than merge them)"
            ) in printed


def test_init_asks_about_an_order_status_it_cannot_tell_a_sale_from(tmp_path):
    """JD's 锁定 (an order held for review) reads neither as a sale nor as a cancellation: a trial's run counted 100
    such orders (2.7% of the revenue) as purchases unasked. init lists it to decide; the others it knows."""
    from tests.unit.test_config_init import init_ok

    statuses = ["已完成"] * 6 + ["已取消", "等待付款", "锁定", "已完成"]
    lines = ["订单号,下单时间,商品名称,购买数量,京东价,下单帐号,订单状态"]
    lines += [f"28301122{i:04d},2024-06-{1 + i % 28:02d} 10:00:00,商品{i % 5},1,{10 + i}.00,jd_{i % 9},"
              f"{statuses[i % len(statuses)]}" for i in range(40)]
    path = tmp_path / "jd.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config, printed = init_ok(tmp_path, path)

    assert config["values"]["cancelled_statuses"] == ["等待付款"]  # 已取消 is built in
    assert ("to decide: values.cancelled_statuses: jd.csv 订单状态 has statuses init cannot tell a sale from: 锁定 (4 "
            "row(s)); their orders count as purchases unless you list them in values.cancelled_statuses") in printed


def test_rounded_ids_are_caught_after_ids_are_lower_cased(tmp_path):
    """values.id_case: lower turns 2.83E+11 into 2.83e+11 before the rules: still a rounded number."""
    warehouse = stage(tmp_path, {"a.csv": LINES}, orders_config="", customers=None)
    lowered = stage(tmp_path / "lower", {"a.csv": LINES}, orders_config="values:\n  id_case: lower\n")
    for each in (warehouse, lowered):
        assert rows(each, "SELECT count(*) FROM quality.quarantine WHERE reason LIKE '%a spreadsheet rounded%'") == [
            (3,)]


def test_a_negated_sale_word_is_no_sale_to_init():
    from pipelines.config_values import NEGATED, PURCHASE_GUESS

    for unclear in ("未完成", "交易未成功", "INCOMPLETE", "PAYMENT UNSUCCESSFUL", "锁定"):
        assert NEGATED.search(unclear) or not PURCHASE_GUESS.search(unclear), unclear
    for sale in ("交易成功", "已完成", "COMPLETED", "PAID", "已发货"):
        assert PURCHASE_GUESS.search(sale) and not NEGATED.search(sale), sale
