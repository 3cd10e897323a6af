"""An order total mapped as the line amount (JD's 应付金额 repeated on every line of an order) is said out loud: a
warning naming an order, while the run publishes. A real line amount says nothing."""

from __future__ import annotations

import html
import re

import pytest

from tests.conftest import materialize_graph, write_file

pytestmark = pytest.mark.slow  # runs the whole asset graph

HEADER = "订单号,会员号,下单时间,商品名称,品类,商品数量,京东价,应付金额"


def jd_export(tmp_path, amount_column: str) -> None:
    lines = []
    for order in range(60):
        items = [(f"商品{order % 7 + i}", ["生鲜", "日化", "酒水"][i % 3], 1 + i, 9.9 + 10 * i) for i in range(2 + order % 2)]
        total = sum(quantity * price for _, _, quantity, price in items)
        for name, category, quantity, price in items:
            lines.append(f"{280000010000 + order},U{order % 15},2026-0{3 + order % 4}-1{order % 9} 10:00:00,{name},"
                         f"{category},{quantity},{price:.2f},{total:.2f}")
    write_file(tmp_path / "orders.csv", "\n".join([HEADER, *lines]) + "\n")
    write_file(tmp_path / "shop.yaml", "name: jd\nshape: long\norders:\n  path: orders.csv\n  columns:\n"
                                       "    order_id: 订单号\n    customer_id: 会员号\n    order_ts: 下单时间\n"
                                       "    description: 商品名称\n    category: 品类\n    quantity: 商品数量\n"
                                       f"    {amount_column}\nmodel:\n  k: 2\n")


def amount_check(tmp_path):
    result = materialize_graph(tmp_path / "shop.yaml", tmp_path / "w.duckdb")
    assert result.success  # a warning, never a blocked night
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "amount_is_a_line_amount"]
    return check


def test_an_order_total_repeated_on_every_line_is_said_out_loud(tmp_path):
    jd_export(tmp_path, "amount: 应付金额")
    check = amount_check(tmp_path)
    assert not check.passed
    # The report says it at the top of both pages too: a reader of the report never sees the check.
    for language, said in (("en", "The amount is the same on every line of 100.0% of the 60 orders whose lines hold "
                                  "different items: it looks like each order's total repeated on its lines"),
                           ("zh", "在 60 个含不同商品的订单中，100.0% 的订单每一行金额都相同")):
        page = (tmp_path / "reports" / f"report_{language}.html").read_text(encoding="utf-8")
        banner = page[page.index('id="weak-results"'):]
        assert said in html.unescape(re.sub(r"<[^>]+>", "", banner[:banner.index("</aside>")]))
    assert check.description == (
        "amount is the same on every line of 100% of the 60 orders whose lines differ (order 280000010001: 139.4 on "
        "each of 3 lines): it looks like the order's total repeated on each line, which counts it once per line; map "
        "the line's own amount, or unit_price (and quantity) and leave amount out")


def test_the_unit_price_times_quantity_is_a_line_amount(tmp_path):
    jd_export(tmp_path, "unit_price: 京东价")
    check = amount_check(tmp_path)
    assert check.passed and check.metadata["same_amount_on_every_line"].value == 0
    page = (tmp_path / "reports" / "report_en.html").read_text(encoding="utf-8")
    assert "whose lines hold different items" not in page


def test_a_large_table_is_judged_on_whole_orders_chosen_by_their_id(monkeypatch):
    # Above ORDER_TOTAL_SAMPLE_LINES, the orders whose id hashes into a share of them: an order's lines stay together,
    # and the same orders are judged every time.
    import duckdb

    from assets.staging import line_amounts as checks

    monkeypatch.setattr(checks, "ORDER_TOTAL_SAMPLE_LINES", 20_000)
    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging")
    con.execute("CREATE TABLE staging.order_lines AS SELECT 'O' || (i // 3) AS order_id, 'sku' || (i % 3) AS sku, "
                "NULL::VARCHAR AS category, 1.0 AS unit_price, 1.0 AS quantity, 30.0 + i // 3 AS amount "
                "FROM range(300000) t(i)")
    evidence = checks.order_total_evidence(con)
    assert evidence.lines == 300_000 and 0 < evidence.orders < 100_000 and evidence.same == evidence.orders
    assert checks.order_total_evidence(con) == evidence
