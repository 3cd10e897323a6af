"""Features layer: one row per customer, in `features.customer_features`.

Families (the model picks which to use, see `model.features` in the source config):
- demographics: age, income, is_female, is_home_owner (NULL where the shop gave no profile);
- categories: `cat_<category>` = share of the customer's orders that contain the category;
- rfm: n_orders, total_spend, avg_basket_value, recency_days, tenure_days (the last two need order dates);
- payment: `pay_<method>` = share of the customer's orders paid that way.
"""


import dagster as dg
import duckdb
import polars as pl

from assets.ingest import preview_markdown
from pipelines.resources import WarehouseResource

CATEGORY_PREFIX = "cat_"
PAYMENT_PREFIX = "pay_"
DEMOGRAPHIC_COLUMNS = ["age", "income", "is_female", "is_home_owner"]
RFM_COLUMNS = ["n_orders", "total_spend", "avg_basket_value", "recency_days", "tenure_days"]


def feature_family(column: str) -> str | None:
    if column in DEMOGRAPHIC_COLUMNS:
        return "demographics"
    if column in RFM_COLUMNS:
        return "rfm"
    if column.startswith(CATEGORY_PREFIX):
        return "categories"
    if column.startswith(PAYMENT_PREFIX):
        return "payment"
    return None


def _shares(con: duckdb.DuckDBPyConnection, sql: str, prefix: str) -> pl.DataFrame:
    """Pivot (customer_id, key, orders) into one `<prefix><key>` column per key holding the order share."""
    long = con.execute(sql).pl()
    if long.is_empty():
        return pl.DataFrame({"customer_id": []}, schema={"customer_id": pl.String})
    wide = long.with_columns((pl.lit(prefix) + pl.col("key")).alias("key")).pivot(
        on="key", index="customer_id", values="share", sort_columns=True
    )
    return wide.fill_null(0.0)


def build_customer_features(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    base = con.execute("""
        WITH reference AS (SELECT max(order_ts) AS as_of, min(order_ts) AS first_order FROM staging.orders),
        per_customer AS (
            SELECT c.customer_id, c.age, c.income,
                   CASE c.gender WHEN 'F' THEN 1.0 WHEN 'M' THEN 0.0 END AS is_female,
                   c.home_owner::DOUBLE AS is_home_owner,
                   count(o.order_id)::DOUBLE AS n_orders,
                   COALESCE(sum(o.order_amount), 0) AS total_spend,
                   -- Without orders there is nothing to average: 0 spent per order, not "unknown".
                   COALESCE(avg(o.order_amount), 0) AS avg_basket_value,
                   date_diff('day', max(o.order_ts), (SELECT as_of FROM reference))::DOUBLE AS recency_days,
                   date_diff('day', min(o.order_ts), (SELECT as_of FROM reference))::DOUBLE AS tenure_days
            FROM staging.customers c LEFT JOIN staging.orders o USING (customer_id)
            GROUP BY ALL
        )
        SELECT * REPLACE (
            -- Never bought counts as longer ago than anyone who did; known only when orders carry dates.
            CASE WHEN n_orders = 0 THEN date_diff('day', (SELECT first_order FROM reference),
                                                  (SELECT as_of FROM reference)) + 1
                 ELSE recency_days END::DOUBLE AS recency_days,
            CASE WHEN n_orders = 0 AND (SELECT as_of FROM reference) IS NOT NULL THEN 0
                 ELSE tenure_days END::DOUBLE AS tenure_days)
        FROM per_customer ORDER BY customer_id""").pl()
    categories = _shares(con, """
        WITH per_customer AS (SELECT customer_id, count(*) AS n FROM staging.orders GROUP BY ALL),
        hits AS (SELECT customer_id, category AS key, count(DISTINCT order_id) AS n
                 FROM staging.order_lines GROUP BY ALL)
        SELECT h.customer_id, h.key, h.n / p.n AS share FROM hits h JOIN per_customer p USING (customer_id)""",
        CATEGORY_PREFIX)
    payments = _shares(con, """
        WITH per_customer AS (SELECT customer_id, count(*) AS n FROM staging.orders GROUP BY ALL)
        SELECT o.customer_id, lower(o.payment_method) AS key, count(*) / any_value(p.n) AS share
        FROM staging.orders o JOIN per_customer p USING (customer_id)
        WHERE o.payment_method IS NOT NULL GROUP BY ALL""",
        PAYMENT_PREFIX)
    features = base.join(categories, on="customer_id", how="left").join(payments, on="customer_id", how="left")
    share_columns = [c for c in features.columns if c.startswith((CATEGORY_PREFIX, PAYMENT_PREFIX))]
    # A customer without an order in a category bought it in 0% of orders, not "unknown".
    return features.with_columns(pl.col(share_columns).fill_null(0.0))


@dg.asset(
    key=["features", "customer_features"],
    # quality/load_audit carries the gate's blocking checks: features (and all after) wait for them.
    deps=[["staging", "customers"], ["staging", "orders"], ["staging", "order_lines"], ["quality", "load_audit"]],
    group_name="features",
    kinds={"duckdb", "polars"},
    pool="duckdb_writer",
)
def customer_features(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per customer (grain: customer_id) from staging.customers, staging.orders and staging.order_lines:
    demographics, category order shares, RFM and payment mix."""
    with warehouse.connect() as con:
        features = build_customer_features(con)
        arrow_features = features.to_arrow()  # noqa: F841 - read by DuckDB's replacement scan
        con.execute("CREATE OR REPLACE TABLE features.customer_features AS SELECT * FROM arrow_features")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": features.height,
            "columns": dg.MetadataValue.json(features.columns),
            "preview": dg.MetadataValue.md(preview_markdown(features.select(features.columns[:10]))),
        }
    )
