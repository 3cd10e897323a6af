"""Whether the staged amount is each line's own or the order's total repeated on every line (JD's 应付金额, Shopify's
Subtotal mapped as the line amount): staging then adds the total up once per line, and a trial's revenue came out
75% too high. The warning check on staging/order_lines (quality/checks/staging.py) and the report's note on weak
results (assets/report) judge the same evidence, so a reader of either learns it.

Judged on the orders whose lines hold other items (another sku or category): lines that differ only in quantity or
price are not judged, since a basket value split evenly over its lines is a line amount. Above ORDER_TOTAL_SAMPLE_LINES
lines, on the orders whose id hashes into a fixed share of them: every line of such an order is read, and the same
orders every time, so that the report's figures are facts its queries give back."""

from __future__ import annotations

import math
from dataclasses import dataclass

import duckdb

from assets.staging.rules import FREE_LINE_REASON

ORDER_TOTAL_SHARE = 0.9  # of the multi-line orders with differing lines
ORDER_TOTAL_MIN_ORDERS = 50
ORDER_TOTAL_SAMPLE_LINES = 500_000
_ORDERS_SQL = """
SELECT order_id, count(*) AS lines, min(amount) = max(amount) AS same_amount, any_value(amount) AS amount
FROM staging.order_lines {sample}
GROUP BY order_id
HAVING count(*) > 1 AND count(DISTINCT concat_ws('|', sku, category)) > 1"""
_EVIDENCE_SQL = """
SELECT count(*), count(*) FILTER (WHERE same_amount),
       -- The example: the order with the most lines, the first by id among equals (the same one every run).
       first(order_id ORDER BY lines DESC, order_id) FILTER (WHERE same_amount),
       max(lines) FILTER (WHERE same_amount),
       first(amount ORDER BY lines DESC, order_id) FILTER (WHERE same_amount)
FROM ({orders})"""


@dataclass(frozen=True)
class OrderTotalEvidence:
    lines: int  # staging.order_lines' lines
    orders: int  # judged: orders whose lines hold other items
    same: int  # of them, with one amount on every line
    example: str | None
    example_lines: int | None
    example_amount: float | None
    orders_sql: str  # the judged orders (order_id, lines, same_amount, amount): what the report's facts read
    sample_every: int = 1  # 1: every order judged; n: about one order in n, chosen by its id
    @property
    def looks_like_totals(self) -> bool:
        return self.orders >= ORDER_TOTAL_MIN_ORDERS and self.same / self.orders >= ORDER_TOTAL_SHARE


def order_total_evidence(con: duckdb.DuckDBPyConnection) -> OrderTotalEvidence:
    """The evidence on (the hash-chosen orders of) staging.order_lines."""
    lines = con.execute("SELECT count(*) FROM staging.order_lines").fetchone()[0]
    every = math.ceil(lines / ORDER_TOTAL_SAMPLE_LINES)
    sample = "" if every <= 1 else f"WHERE hash(order_id) % {every} = 0"
    orders_sql = _ORDERS_SQL.format(sample=sample)
    orders, same, example, example_lines, example_amount = con.execute(
        _EVIDENCE_SQL.format(orders=orders_sql)).fetchone()
    return OrderTotalEvidence(lines, orders, same, example, example_lines, example_amount, orders_sql, max(every, 1))


# Free lines (amount 0, set aside by orders.free_lines: set_aside) above this share of a run's order rows are more
# than a shop gives away: a trial's JD export had 11.5% gifts (【赠品】); a discount column mapped as the amount, 0 on
# the lines without a discount, set aside 21% of a 抖店 export's lines and 80% of an Etsy one's, and counted the
# discounts of the others as their revenue.
FREE_LINES_WARN_SHARE = 0.15
FREE_LINES_MIN_ROWS = 20  # fewer say nothing: a nightly file of ten rows with two gifts
_FREE_LINES_SQL = """
SELECT (SELECT COALESCE(sum(rows_read), 0) FROM quality.load_audit WHERE run_id = $run AND input = 'orders'),
       (SELECT count(*) FROM quality.quarantine
        WHERE run_id = $run AND input = 'orders' AND contains(reason, $reason))"""


@dataclass(frozen=True)
class FreeLines:
    read: int  # the run's order rows
    free: int  # of them, set aside as free lines

    @property
    def too_many(self) -> bool:
        return self.free >= FREE_LINES_MIN_ROWS and self.free > FREE_LINES_WARN_SHARE * self.read

    def warning(self, amount_from: str) -> str:
        """What the user reads; `amount_from`: the config key and column the amount comes from."""
        return (f"{self.free:,} of the {self.read:,} order rows ({self.free / self.read:.1%}) have amount 0 and were "
                f"set aside as free lines, more than a shop gives away: check that {amount_from} is each line's "
                "amount, not a discount, fee or refund that is 0 on most lines (map the line's amount, or unit_price "
                "and quantity and leave amount out); bundle parts listed at 0 can be kept with orders.free_lines: keep")


def free_lines(con: duckdb.DuckDBPyConnection, run_id: str) -> FreeLines:
    """The run's order rows and how many of them were set aside as free lines."""
    read, free = con.execute(_FREE_LINES_SQL, {"run": run_id, "reason": FREE_LINE_REASON}).fetchone()
    return FreeLines(int(read or 0), int(free or 0))


def amount_source(columns: dict) -> str:
    """Where a line's amount comes from, as the config says it (orders.columns)."""
    if columns.get("amount"):
        return f"orders.columns.amount ({columns['amount']})"
    return "the line's amount (orders.columns.amount, or unit_price times quantity)"
