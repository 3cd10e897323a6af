"""The report's opening says where this run's order rows went, walk-in sales without a customer id included, each
number a fact whose query gives it back."""

import duckdb

from assets.report.coverage import coverage_sentences, load_coverage, money_basis_sentences, rows_are_orders
from assets.report.facts import FactBook


def _warehouse(path, set_aside=True):
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA quality")
    con.execute("CREATE TABLE quality.load_audit (run_id VARCHAR, input VARCHAR, source_file VARCHAR, rows_read BIGINT, "
                "rows_loaded BIGINT, rows_quarantined BIGINT, duplicates_removed BIGINT"
                + (", rows_set_aside BIGINT)" if set_aside else ")"))
    con.execute("CREATE TABLE quality.quarantine (run_id VARCHAR, input VARCHAR, reason VARCHAR)")
    return con


def test_a_till_with_walk_in_sales_says_they_are_in_no_segment(tmp_path):
    con = _warehouse(tmp_path / "w.duckdb")
    # Two files of a POS export: 6 walk-in sales (one also a return), a cancelled order, a line whose amount is not
    # a number, and a walk-in line with a bad amount (a fault: it fails more than the missing customer).
    con.execute("INSERT INTO quality.load_audit VALUES ('r1', 'orders', 'a.csv', 12, 4, 8, 0, 7), "
                "('r1', 'orders', 'b.csv', 3, 1, 1, 1, 0), ('r1', 'customers', 'm.csv', 5, 4, 1, 0, 0), "
                "('r0', 'orders', 'a.csv', 99, 99, 0, 0, 0)")
    reasons = ["missing customer_id"] * 5 + [
        "missing customer_id; return line (negative amount); returns are kept out of purchase features",
        "cancelled order (status 已取消)", "amount is not a number", "missing customer_id; amount is not a number"]
    con.executemany("INSERT INTO quality.quarantine VALUES ('r1', 'orders', ?)", [[r] for r in reasons])
    con.execute("INSERT INTO quality.quarantine VALUES ('r1', 'customers', 'missing customer_id'), "
                "('r0', 'orders', 'missing customer_id')")
    book = FactBook()
    said = coverage_sentences(book, load_coverage(con, "r1"))
    assert [s.text(book) for s in said["en"]] == [
        "This run read 15 order rows and loaded 5; 7 were set aside (cancelled, returned, free or without a customer id), "
        "6 of them without a customer id (walk-in or guest sales), which are in no segment; 2 were quarantined as "
        "faults of the export; duplicates removed: 1. Details are in quality.load_audit and quality.quarantine."]
    assert [s.text(book, "zh") for s in said["zh"]] == [
        "本次运行读取订单行 15 行，载入 5 行；7 行另行搁置（已取消、退货、赠品或没有客户编号），其中 6 行没有客户编号（散客或游客订单），不计入任何客群；"
        "2 行因数据错误被隔离；删除重复行 1 行。明细见 quality.load_audit 与 quality.quarantine。"]
    # Every number is given back by its own query.
    for fact in book.facts.values():
        assert con.execute(fact.sql, list(fact.params)).fetchone()[0] == fact.value, fact.key


def test_a_clean_run_says_only_what_it_read_and_an_old_audit_says_nothing(tmp_path):
    con = _warehouse(tmp_path / "w.duckdb")
    con.execute("INSERT INTO quality.load_audit VALUES ('r1', 'orders', 'a.csv', 10, 10, 0, 0, 0)")
    book = FactBook()
    assert [s.text(book) for s in coverage_sentences(book, load_coverage(con, "r1"))["en"]] == [
        "This run read 10 order rows and loaded 10. Details are in quality.load_audit and quality.quarantine."]
    # One fault is one row: "1 was", not "1 were" (a till's 合计 total row).
    con.execute("INSERT INTO quality.load_audit VALUES ('r2', 'orders', 'a.csv', 10, 9, 1, 0, 0)")
    book = FactBook()
    assert [s.text(book) for s in coverage_sentences(book, load_coverage(con, "r2"))["en"]] == [
        "This run read 10 order rows and loaded 9; 1 was quarantined as a fault of the export. Details are in "
        "quality.load_audit and quality.quarantine."]
    assert coverage_sentences(FactBook(), load_coverage(con, None)) == {"zh": [], "en": []}
    old = _warehouse(tmp_path / "old.duckdb", set_aside=False)
    old.execute("INSERT INTO quality.load_audit VALUES ('r1', 'orders', 'a.csv', 10, 10, 0, 0)")
    assert load_coverage(old, "r1") is None


def test_an_export_of_one_row_per_order_says_its_money_is_the_orders_amounts(tmp_path):
    """A webshop's orders file (one row per order, its total with shipping) is not summed from order lines: the
    opening says the money is the orders' amounts and whatever the shop put in them."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA staging")
    assert not rows_are_orders(con)  # no orders yet: the lines' wording
    con.execute("CREATE TABLE staging.orders (order_id VARCHAR, n_lines BIGINT)")
    con.execute("INSERT INTO staging.orders VALUES ('A', 1), ('B', 1)")
    assert rows_are_orders(con)
    con.execute("INSERT INTO staging.orders VALUES ('C', 3)")
    assert not rows_are_orders(con)
    # The basket shape: a line per category flagged, none with an amount of its own.
    con.execute("CREATE TABLE staging.order_lines (order_id VARCHAR, amount DOUBLE)")
    con.execute("INSERT INTO staging.order_lines VALUES ('C', NULL), ('C', NULL), ('C', NULL)")
    assert rows_are_orders(con)
    con.execute("INSERT INTO staging.order_lines VALUES ('A', 4.0)")
    assert not rows_are_orders(con)

    book = FactBook()
    orders, lines = money_basis_sentences(order_rows=True), money_basis_sentences()
    assert orders["en"][0].text(book) == (
        "Money figures (GMV, spend, order values) add up the orders' amounts as the export states them, one row per "
        "order: whatever that amount holds (shipping, fees, discounts taken off) is in them, and refunds the export "
        "keeps elsewhere are not; cancelled orders are left out, and return lines are set aside rather than "
        "subtracted, so an order returned or refunded in part counts in full.")
    assert orders["zh"][0].text(book, "zh").startswith("金额类指标（GMV、消费额、订单金额）为导出文件各订单金额之和（每行一个订单）")
    assert "order lines' amounts" in lines["en"][0].text(book)
    refunded = money_basis_sentences(line_refunds=True, order_rows=True)["en"][0].text(book)
    assert "cancelled orders and orders marked refunded are left out, also when a later day's export marks them" in refunded


def test_a_night_that_took_back_earlier_lines_says_how_many(tmp_path):
    """Lines earlier nights loaded and this night's rolling export cancels or refunds are not among this run's rows:
    the opening counts them apart, from quality.retracted_lines."""
    con = _warehouse(tmp_path / "w.duckdb")
    con.execute("INSERT INTO quality.load_audit VALUES ('r2', 'orders', 'day2.csv', 4, 1, 2, 1, 2)")
    con.executemany("INSERT INTO quality.quarantine VALUES ('r2', 'orders', ?)",
                    [["refunded line (line_status 退款成功); returns are kept out of purchase features"],
                     ["cancelled order (status 已取消)"]])
    con.execute("CREATE TABLE quality.retracted_lines (run_id VARCHAR, source_row BIGINT)")
    con.execute("INSERT INTO quality.retracted_lines VALUES ('r2', 1), ('r2', 3), ('r1', 7)")
    book = FactBook()
    said = coverage_sentences(book, load_coverage(con, "r2"))
    assert said["en"][0].text(book) == (
        "This run read 4 order rows and loaded 1; 2 were set aside (cancelled, returned, free or without a customer id); "
        "1 was a line refunded to a customer while the rest of its order stands (its refund status); 2 order lines "
        "loaded by earlier runs were taken back by later cancellations or refunds; duplicates removed: 1. Details "
        "are in quality.load_audit, quality.quarantine and quality.retracted_lines.")
    assert "此前各次运行已载入的 2 行订单行因之后的取消或退款被撤回" in said["zh"][0].text(book, "zh")
    for fact in book.facts.values():
        assert con.execute(fact.sql, list(fact.params)).fetchone()[0] == fact.value, fact.key


def test_an_order_total_on_every_line_judged_on_a_sample_says_so(tmp_path, monkeypatch):
    """Above the sample size, the orders judged are about one in n, chosen by order id: the note says it is a
    sample, and its counts are facts whose queries (the same sample) give them back."""
    from assets.report.coverage import order_total_sentences
    from assets.staging import line_amounts

    monkeypatch.setattr(line_amounts, "ORDER_TOTAL_SAMPLE_LINES", 3_000)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA staging")
    con.execute("CREATE TABLE staging.order_lines AS SELECT 'O' || (i // 3) AS order_id, 's' || (i % 3) AS sku, "
                "NULL::VARCHAR AS category, 30.0 + i // 3 AS amount FROM range(30000) t(i)")
    book = FactBook()
    said = order_total_sentences(con, book)
    assert said["en"][0].text(book).startswith("The amount is the same on every line of 100.0% of the ")
    assert "orders whose lines hold different items (a sample: about one order in 10, chosen by order id)" in \
        said["en"][0].text(book)
    assert "（按订单号抽样，约每 10 个订单取一个）" in said["zh"][0].text(book, "zh")
    for fact in book.facts.values():
        if fact.sql:
            assert con.execute(fact.sql).fetchone()[0] == fact.value, fact.key
