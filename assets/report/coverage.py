"""What the report covers: the order rows this run read and where they went (quality.load_audit), so that a reader
sees, for example, that most of a till's sales were to walk-in customers without a member card and are in no
segment, and what its money figures add up. Every number is a fact proved by a query on the audit or the
quarantine of the run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from assets.report.facts import FactBook, Sentence, compose
from assets.staging.line_amounts import order_total_evidence
from assets.staging.place_keys import MASKED, masked_ids
from assets.staging.rules import (
    MISSING_CUSTOMER,
    REFUNDED_LINE_OPENING,
    SET_ASIDE_ONLY,
    TAKEN_BACK_OPENING,
)
from pipelines.core.sql import table_columns

_AUDIT = "FROM quality.load_audit WHERE run_id = ? AND input = 'orders'"
# The set-aside rows without a customer id (walk-in or guest sales, maybe also cancelled or returned): set aside by
# the audit's own rule (SET_ASIDE_ONLY, bound as the second parameter), missing customer_id their first reason.
_WITHOUT_CUSTOMER = (f"FROM quality.quarantine WHERE run_id = ? AND input = 'orders' "
                     f"AND regexp_full_match(reason, ?) AND starts_with(reason, '{MISSING_CUSTOMER}')")
# The set-aside rows refunded on their own line (orders.columns.line_status), their order standing and their customer
# known: a line of a cancelled order counts as cancelled, one without a customer id among those (said first).
_REFUNDED_LINES = (f"FROM quality.quarantine WHERE run_id = ? AND input = 'orders' "
                   f"AND regexp_full_match(reason, ?) AND contains(reason, '{REFUNDED_LINE_OPENING}') "
                   f"AND NOT contains(reason, 'cancelled order (') "
                   f"AND NOT starts_with(reason, '{MISSING_CUSTOMER}') "
                   # A line its own run loaded and a later day's refund took back: the refund row is counted already.
                   f"AND NOT starts_with(reason, '{TAKEN_BACK_OPENING}')")

_TAKEN_BACK = "FROM quality.retracted_lines WHERE run_id = ?"


@dataclass(frozen=True)
class Coverage:
    run_id: str
    read: int
    loaded: int
    set_aside: int
    without_customer: int
    faults: int  # quarantined and not set aside
    duplicates: int
    refunded_lines: int = 0  # set aside as refunded on their own line (line_status)
    taken_back: int = 0  # lines earlier runs loaded, taken back by this run's later cancellations and refunds


def load_coverage(con: duckdb.DuckDBPyConnection, run_id: str | None) -> Coverage | None:
    """This run's order rows by where they went; None without a run, or for an audit older than rows_set_aside."""
    if run_id is None or "rows_set_aside" not in (table_columns(con, "quality.load_audit") or []):
        return None
    read, loaded, quarantined, set_aside, duplicates = con.execute(
        "SELECT sum(rows_read), sum(rows_loaded), sum(rows_quarantined), sum(rows_set_aside), "
        f"sum(duplicates_removed) {_AUDIT}", [run_id]).fetchone()
    if not read:
        return None
    without_customer, refunded = (con.execute(f"SELECT count(*) {source}", [run_id, SET_ASIDE_ONLY]).fetchone()[0]
                                  for source in (_WITHOUT_CUSTOMER, _REFUNDED_LINES))
    taken_back = con.execute(f"SELECT count(*) {_TAKEN_BACK}", [run_id]).fetchone()[0] \
        if table_columns(con, "quality.retracted_lines") else 0
    return Coverage(run_id, int(read), int(loaded), int(set_aside or 0), int(without_customer),
                    int(quarantined) - int(set_aside or 0), int(duplicates), int(refunded), int(taken_back))


def coverage_sentences(book: FactBook, coverage: Coverage | None) -> dict[str, list[Sentence]]:
    """One sentence per language: the order rows this run read, loaded, set aside (and how many of them had no
    customer id), quarantined as faults and removed as duplicates. Empty without a coverage."""
    if coverage is None:
        return {"zh": [], "en": []}
    def fact(key: str, value: int, select: str, source: str = _AUDIT):
        params = [coverage.run_id] + ([SET_ASIDE_ONLY] if source not in (_AUDIT, _TAKEN_BACK) else [])
        return book.add(f"coverage.{key}", "count", value, f"SELECT {select} {source}", params)

    read, loaded = fact("read", coverage.read, "sum(rows_read)"), fact("loaded", coverage.loaded, "sum(rows_loaded)")
    zh = compose("本次运行读取订单行 {r} 行，载入 {l} 行", r=read, l=loaded)
    en = compose("This run read {r} order rows and loaded {l}", r=read, l=loaded)
    if coverage.set_aside:
        aside = fact("set_aside", coverage.set_aside, "sum(rows_set_aside)")
        zh += compose("；{a} 行另行搁置（已取消、退货、赠品或没有客户编号）", a=aside)
        en += compose("; {a} were set aside (cancelled, returned, free or without a customer id)", a=aside)
        if coverage.without_customer:
            anonymous = fact("without_customer", coverage.without_customer, "count(*)", _WITHOUT_CUSTOMER)
            zh += compose("，其中 {n} 行没有客户编号（散客或游客订单），不计入任何客群", n=anonymous)
            en += compose(", {n} of them without a customer id (walk-in or guest sales), which are in no segment",
                          n=anonymous)
        if coverage.refunded_lines:  # none of them among those without a customer id: no row is counted twice
            refunded = fact("refunded_lines", coverage.refunded_lines, "count(*)", _REFUNDED_LINES)
            zh += compose("；另有 {n} 行为顾客已退款的商品行（售后或退款状态），所在订单的其余商品照常计入", n=refunded)
            en += compose("; {n} was a line refunded to a customer while the rest of its order stands (its refund "
                          "status)" if coverage.refunded_lines == 1 else "; {n} were lines refunded to a customer "
                          "while the rest of their order stands (their refund status)", n=refunded)
    if coverage.faults:
        faults = fact("faults", coverage.faults, "sum(rows_quarantined) - sum(rows_set_aside)")
        zh += compose("；{q} 行因数据错误被隔离", q=faults)
        en += compose("; {q} was quarantined as a fault of the export" if coverage.faults == 1 else
                      "; {q} were quarantined as faults of the export", q=faults)
    if coverage.taken_back:  # earlier runs' lines: not among this run's rows above
        taken = fact("taken_back", coverage.taken_back, "count(*)", _TAKEN_BACK)
        zh += compose("；此前各次运行已载入的 {n} 行订单行因之后的取消或退款被撤回", n=taken)
        en += compose("; {n} order line loaded by an earlier run was taken back by a later cancellation or refund"
                      if coverage.taken_back == 1 else
                      "; {n} order lines loaded by earlier runs were taken back by later cancellations or refunds",
                      n=taken)
    if coverage.duplicates:
        duplicates = fact("duplicates", coverage.duplicates, "sum(duplicates_removed)")
        zh += compose("；删除重复行 {d} 行", d=duplicates)
        en += compose("; duplicates removed: {d}", d=duplicates)
    if coverage.taken_back:
        zh += compose("。明细见 quality.load_audit、quality.quarantine 与 quality.retracted_lines。")
        en += compose(". Details are in quality.load_audit, quality.quarantine and quality.retracted_lines.")
    else:
        zh += compose("。明细见 quality.load_audit 与 quality.quarantine。")
        en += compose(". Details are in quality.load_audit and quality.quarantine.")
    return {"zh": [zh], "en": [en]}


def rows_are_orders(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether every order of the warehouse came from one source row, whose amount is the order's rather than the
    sum of order lines' amounts: an export of one row per order (a webshop's orders file, a till's receipts, every
    order one row), or the basket shape (its lines, one per category flagged, carry no amount)."""
    if "n_lines" not in (table_columns(con, "staging.orders") or []):
        return False
    most = con.execute("SELECT max(n_lines) FROM staging.orders").fetchone()[0]
    if most is not None and most <= 1:
        return True
    if "amount" not in (table_columns(con, "staging.order_lines") or []):
        return False
    lines, priced = con.execute("SELECT count(*), count(amount) FROM staging.order_lines").fetchone()
    return lines > 0 and priced == 0


def money_basis_sentences(line_refunds: bool = False, order_rows: bool = False) -> dict[str, list[Sentence]]:
    """What the money figures add up, so a reader comparing them with the shop console's sales knows why they may
    differ: the amounts as exported, nothing taken off for refunds or discounts kept outside them.
    `line_refunds`: the export marks refunded lines (orders.columns.line_status), which are left out.
    `order_rows`: the export has one row per order (rows_are_orders), whose amount is the order's: what the shop
    put in it (shipping, fees) is in the figures, not only the goods."""
    rows_zh, rows_en = ("订单", "orders") if order_rows else ("商品行", "lines")
    if line_refunds:
        zh_returns = (f"已取消订单和已标为已退款的{rows_zh}不计入（包括之后的导出文件才标明的）；"
                      "另列的退货行搁置而不冲减，因此只以退货行记录的部分退货，其订单按全额计算。")
        en_returns = (f"cancelled orders and {rows_en} marked refunded are left out, also when a later day's export "
                      "marks them; separate return lines are set aside rather than subtracted, so an order returned "
                      "in part only through such a line counts in full.")
    else:
        zh_returns = "已取消订单不计入，退货行另行搁置而不冲减，因此部分退货或部分退款的订单按全额计算。"
        en_returns = ("cancelled orders are left out, and return lines are set aside rather than subtracted, so an "
                      "order returned or refunded in part counts in full.")
    if order_rows:
        return {"zh": [compose("金额类指标（GMV、消费额、订单金额）为导出文件各订单金额之和（每行一个订单）："
                               "该金额包含的运费、手续费及已扣减的优惠均按导出文件计入，导出文件另行记录的退款不计入；"
                               + zh_returns)],
                "en": [compose("Money figures (GMV, spend, order values) add up the orders' amounts as the export "
                               "states them, one row per order: whatever that amount holds (shipping, fees, discounts "
                               "taken off) is in them, and refunds the export keeps elsewhere are not; " + en_returns)]}
    return {"zh": [compose("金额类指标（GMV、消费额、订单金额）为导出文件所列订单行金额之和："
                           "导出文件记在订单行之外的优惠、运费和退款不计入；" + zh_returns)],
            "en": [compose("Money figures (GMV, spend, order values) add up the order lines' amounts as the "
                           "export states them. Discounts, fees and refunds the export keeps outside the lines are "
                           "not in them; " + en_returns)]}


def order_total_sentences(con: duckdb.DuckDBPyConnection, book: FactBook) -> dict[str, list[Sentence]]:
    """A note for the top of the page when the amount looks like each order's total repeated on its lines (the
    warning check amount_is_a_line_amount, assets/staging/line_amounts.py): every money figure of the report then
    counts an order's total once per line. Nothing for an export whose lines carry no amount (the basket shape)."""
    if "amount" not in (table_columns(con, "staging.order_lines") or []) or not con.execute(
            "SELECT count(amount) FROM staging.order_lines").fetchone()[0]:
        return {"zh": [], "en": []}
    evidence = order_total_evidence(con)
    if not evidence.looks_like_totals:
        return {"zh": [], "en": []}
    orders = book.add("order_totals.orders", "count", evidence.orders, f"SELECT count(*) FROM ({evidence.orders_sql})")
    share = book.add("order_totals.share", "pct", evidence.same / evidence.orders,
                     f"SELECT count(*) FILTER (WHERE same_amount) / count(*) FROM ({evidence.orders_sql})")
    sampled = evidence.sample_every > 1
    # The sample's size is the report's own setting (a fact without a query), like the privacy threshold.
    every = book.add("order_totals.sample_every", "param", evidence.sample_every, None)
    sample_zh = "（按订单号抽样，约每 {e} 个订单取一个）" if sampled else ""
    sample_en = " (a sample: about one order in {e}, chosen by order id)" if sampled else ""
    return {"zh": [compose("在 {n} 个含不同商品的订单中" + sample_zh + "，{p} 的订单每一行金额都相同："
                           "看起来是把订单总额重复写在了每一行，所有金额类指标因此按行数重复计算了订单总额。"
                           "请在配置中映射商品行自己的金额，或映射单价与数量。", n=orders, p=share, e=every)],
            "en": [compose("The amount is the same on every line of {p} of the {n} orders whose lines hold different "
                           "items" + sample_en + ": it looks like each order's total repeated on its lines, so every "
                           "money figure counts an order's total once per line. Map the line's own amount in the "
                           "config, or unit_price and quantity.", n=orders, p=share, e=every)]}


def place_key_sentences(columns: Sequence[str]) -> dict[str, list[Sentence]]:
    """A note for the top of the page when the customer id is mapped from a column named like a place (the warning
    check customer_id_names_a_person, assets/staging/place_keys.py): every "customer" is everyone at one place."""
    if not columns:
        return {"zh": [], "en": []}
    named = " / ".join(dict.fromkeys(columns))
    return {"zh": [compose("客户编号取自 {c} 列，它表示地点（邮编、城市或地址）而不是个人："
                           "同一地点的所有买家被算作同一位客户，因此客群、流失风险和客户价值描述的是地点而非买家。"
                           "如导出文件能带上买家编号（或手机号、邮箱，并用 privacy.pii_columns 散列），请改为映射它。",
                           c=named)],
            "en": [compose("The customer id is the {c} column, which names a place (a postal code, a city or an "
                           "address), not a person: everyone who shares it counts as one customer, so the segments, "
                           "churn risk and customer value describe places rather than buyers. Map a buyer id (or a "
                           "phone or e-mail, hashed with privacy.pii_columns) if the export can include one.",
                           c=named)]}


def masked_id_sentences(con: duckdb.DuckDBPyConnection, book: FactBook) -> dict[str, list[Sentence]]:
    """A note for the top of the page when enough orders have a masked customer id (the warning check
    customer_id_names_a_person, assets/staging/place_keys.py): buyers who share the visible part are one customer."""
    masked = masked_ids(con)
    if not masked.said:
        return {"zh": [], "en": []}
    masked_sql = f"SELECT count(*) FILTER (WHERE {MASKED}) FROM staging.orders"
    count = book.add("masked_ids.orders", "count", masked.masked, masked_sql)
    share = book.add("masked_ids.share", "pct", masked.masked / masked.orders,
                     f"SELECT count(*) FILTER (WHERE {MASKED}) / count(*) FROM staging.orders")
    examples = masked.largest  # the shop's own, the one holding most orders
    return {"zh": [compose("有 {n} 个订单（占 {p}）的客户编号被导出文件打了码（订单最多的是 {e}）："
                           "露出部分相同的买家被算作同一位客户，客群、流失风险和客户价值因此失真。"
                           "如导出文件能带上未打码的买家编号，请改为映射它。", n=count, p=share, e=examples)],
            "en": [compose("{n} orders ({p}) have a customer id the export masked (the one with the most orders: {e}): "
                           "buyers who share the visible part count as one customer, which distorts the segments, "
                           "churn risk and customer value. Map an unmasked buyer id if the export can include one.",
                           n=count, p=share, e=examples)]}
