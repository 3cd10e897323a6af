"""orders.fill_down: order-level fields that an export writes on an order's first line only.

Shopify's orders_export, for one, writes Email, Created at and Financial Status on the first line of an order and
leaves them blank on its other lines. Typed as they are, those lines would be quarantined for a missing customer and
order time, and the order's status would be known for one line of several. With the fields listed in
orders.fill_down, a blank value takes the value of the same order's latest earlier line, in file order, within its
file. The raw rows keep what the export wrote; the raw suite and staging read them filled."""

from __future__ import annotations

from pipelines.core.config import SourceConfig


def filled_rows(rows: str, config: SourceConfig) -> str:
    """SQL: the raw order rows of `rows` (a table or a parenthesised query) with orders.fill_down applied, or `rows`
    itself when nothing is filled. A row without an order id takes nothing: it belongs to no order."""
    fields = config.orders.fill_down
    if not fields:
        return rows
    order = "NULLIF(trim(order_id), '')"
    window = (f"PARTITION BY _source_file, {order} ORDER BY _source_row "
              "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW")
    # A value is taken as written, not trimmed: an order time read from two columns marks a missing part with the
    # blank side of its space (assets/raw/mapping.py, joined_order_time), and staging trims the rest.
    filled = ", ".join(
        f"CASE WHEN {order} IS NULL OR NULLIF(trim({field}), '') IS NOT NULL THEN {field} "
        f"ELSE last_value(CASE WHEN NULLIF(trim({field}), '') IS NOT NULL THEN {field} END IGNORE NULLS) "
        f"OVER ({window}) END AS {field}"
        for field in fields)
    return f"(SELECT * REPLACE ({filled}) FROM {rows})"
