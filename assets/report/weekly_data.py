"""What the weekly KPI trends read (assets/report/weekly.py says and draws them): the KPIs of every described
segment per complete week, from staging.orders, segments.customer_segments and each customer's first order
(features.customer_order_stats), and the two weeks compared. Apart
from weekly.py so that data.py can load them without importing the report's words."""

from __future__ import annotations

import duckdb
import polars as pl

LATEST_WEEK_SQL = "SELECT date_trunc('week', max(order_ts)::DATE + 1)::DATE - 7 FROM staging.orders"
PREVIOUS_WEEK_SQL = "SELECT date_trunc('week', max(order_ts)::DATE + 1)::DATE - 14 FROM staging.orders"
KPI_SQL = """
WITH first_orders AS (
    SELECT customer_id, date_trunc('week', first_order)::DATE AS first_week FROM features.customer_order_stats),
customer_weeks AS (
    SELECT s.segment_id, o.customer_id, date_trunc('week', o.order_ts)::DATE AS week, count(*) AS orders,
           sum(round(o.order_amount, 2)::DECIMAL(18, 2)) AS cents
    FROM staging.orders o JOIN segments.customer_segments s USING (customer_id)
    WHERE o.order_ts IS NOT NULL
    GROUP BY ALL)
SELECT segment_id, week,
       count(*) AS active,
       sum(orders)::BIGINT AS orders,
       sum(cents)::DOUBLE AS gmv,
       round(sum(cents)::DOUBLE / sum(orders), 4) AS aov,
       count(*) FILTER (WHERE first_week < week) / count(*) AS repeat_rate
FROM customer_weeks JOIN first_orders USING (customer_id)
WHERE week >= (SELECT date_trunc('week', min(order_ts)::DATE - 1)::DATE + 7 FROM staging.orders)
  AND week <= (SELECT date_trunc('week', max(order_ts)::DATE + 1)::DATE - 7 FROM staging.orders)
GROUP BY segment_id, week"""
# One row per segment, week and customer first, then per segment and week: each customer is counted once without
# count(DISTINCT), and a customer's first week comes from the first order the features step keeps per customer
# (min(order_ts) of staging.orders, assets/features/customer_features.py) rather than a window over every order
# (the window and the distinct counts took 45 s of the report's 70 s at 10M customers) or grouping the orders again
# (0.3-1 s of the query's 1.9-4.0 s at 1M customers, the same rows).
# Amounts are summed as decimals of cents: a sum of doubles depends on the order DuckDB's threads add them in, and
# the page must not change between two runs on the same tables.
# metric -> (kind, zh, en, filled with 0 when the segment has no order that week)
METRICS = {
    "active": ("count", "活跃客户", "Active customers", True),
    "orders": ("count", "订单数", "Orders", True),
    "gmv": ("money", "GMV", "GMV", True),
    "aov": ("money", "客单价", "Average order value", False),
    "repeat_rate": ("pct", "复购率", "Repeat rate", False),
}


def load_weekly(con: duckdb.DuckDBPyConnection, detailed_ids: list[int]) -> dict:
    """The weekly KPIs of the described segments (segment_id, week, METRICS...) and the two weeks compared."""
    empty = {"kpi": pl.DataFrame(), "kpi_latest": None, "kpi_previous": None}
    if con.execute("SELECT count(order_ts) FROM staging.orders").fetchone()[0] == 0:
        return empty
    latest = con.execute(LATEST_WEEK_SQL).fetchone()[0]
    previous = con.execute(PREVIOUS_WEEK_SQL).fetchone()[0]
    ids = ",".join(str(int(i)) for i in detailed_ids) or "NULL"
    frame = con.execute(f"SELECT * FROM ({KPI_SQL}) WHERE segment_id IN ({ids}) ORDER BY week, segment_id").pl()
    return {"kpi": frame, "kpi_latest": latest, "kpi_previous": previous}
