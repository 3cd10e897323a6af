"""Features layer: one row per customer, in `features.customer_features`.

Families (the model picks which to use, see `model.features` in the source config):
- demographics: age, income, is_female, is_home_owner (NULL where the shop gave no profile);
- categories: `cat_<category>` = share of the customer's orders that contain the category; a long export declared
  without categories (`orders.columns.category: null`) has no category in staging, so no `cat_` column at all and
  the family is simply absent (the model skips it, see assets/model/preparation.py);
- rfm: n_orders, total_spend, avg_basket_value, recency_days, tenure_days (the last two need order dates);
- payment: `pay_<method>` = share of the customer's orders paid that way.

A nightly load changes the orders of a few customers, so the per-customer order aggregates are kept in
`features.customer_order_stats` and recomputed only for the customers staging queued in
`staging.changed_customers`; the features table is then projected from them (recency and tenure depend on the
shop's latest order, so they are always derived at this step). At 1M customers and one new day of orders
(31k changed customers) the features step went from 5.7 s to about 3 s.
"""


import math

import dagster as dg
import duckdb
import polars as pl

from assets.staging.audit import CHANGED_CUSTOMERS, ensure_change_queue
from pipelines.core.resources import WarehouseResource
from pipelines.core.sql import (
    preview_markdown,
    quote_identifier,
    sql_literal,
    table_columns,
)

CATEGORY_PREFIX = "cat_"
PAYMENT_PREFIX = "pay_"
DEMOGRAPHIC_COLUMNS = ["age", "income", "is_female", "is_home_owner"]
RFM_COLUMNS = ["n_orders", "total_spend", "avg_basket_value", "recency_days", "tenure_days"]
STATS_TABLE = "features.customer_order_stats"
MASK_BITS = 64  # categories per UBIGINT mask of an order's categories
# Above this share of customers changed, one pass over every order beats deleting and re-inserting by key.
MAX_INCREMENTAL_SHARE = 0.2
# Each customer's largest order and basket, kept with the order aggregates for the outlier screen
# (quality/outliers.py), which would otherwise group every order again.
ORDER_MAXIMA = {"max_order_amount": "max(order_amount)", "max_items_per_order": "max(n_items)"}
ORDER_MAXIMA_SQL = ", ".join(f"{aggregate} AS {name}" for name, aggregate in ORDER_MAXIMA.items())


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


def order_keys(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[str]]:
    """The categories and (lower-cased) payment methods in staging, each sorted by its feature column's name."""
    categories = [row[0] for row in con.execute(
        "SELECT DISTINCT category FROM staging.order_lines WHERE category IS NOT NULL").fetchall()]
    payments = [row[0] for row in con.execute(
        "SELECT DISTINCT lower(payment_method) FROM staging.orders WHERE payment_method IS NOT NULL").fetchall()]
    return sorted(categories, key=lambda k: CATEGORY_PREFIX + k), sorted(payments, key=lambda k: PAYMENT_PREFIX + k)


def stats_columns(categories: list[str], payments: list[str]) -> list[str]:
    """The columns of features.customer_order_stats, in order."""
    return ["customer_id", "n_orders", "n_rows", "total_spend", "avg_amount", "last_order", "first_order",
            *ORDER_MAXIMA, *(CATEGORY_PREFIX + k for k in categories), *(PAYMENT_PREFIX + k for k in payments)]


def _counts_by_key(keys: list[str], prefix: str) -> str:
    """SQL list counting, per key, the rows of a group whose `key` column holds it (NULL when none): one column per
    key, named prefix + key."""
    return ", ".join(f"NULLIF(count(*) FILTER (WHERE key = {sql_literal(k)}), 0) AS "
                     f"{quote_identifier(prefix + k)}" for k in keys)


def _category_orders_sql(categories: list[str], changed: str) -> str:
    """Per customer, the orders holding each category (NULL when none): an order counts once per category however
    many of its lines fall in it.

    Each order's categories are first folded into bit masks (64 categories to a mask), then each category's orders
    are counted by its bit. Counted over the distinct (customer, category, order) lines instead, these counts alone
    took 45.7 s at 10M customers (88M lines; nearly every line is distinct, so the distinct set is as large as the
    table and spilled under 1 GB) and the whole order stats 71.5 s; with the masks the order stats take 48-51 s
    there, and the counts 1.6 s against 2.6 s at 1M customers. The categories' bits come from a join rather than a
    CASE, whose cost grows with the number of categories (at 1M, 16 categories: CASE 1.5-1.9 s, join 1.6 s; 60:
    CASE 1.7-2.0 s, join 1.7 s)."""
    words = math.ceil(len(categories) / MASK_BITS)
    bits = ", ".join(f"({sql_literal(k)}, {i // MASK_BITS}, {1 << i % MASK_BITS}::UBIGINT)"
                     for i, k in enumerate(categories))
    # With one mask there is nothing to filter by word.
    masks = ", ".join(f"bit_or(bit){f' FILTER (WHERE word = {w})' if words > 1 else ''} AS mask_{w}"
                      for w in range(words))
    counts = ", ".join(
        f"NULLIF(count(order_id) FILTER (WHERE mask_{i // MASK_BITS} & {1 << i % MASK_BITS}::UBIGINT <> 0), 0) "
        f"AS {quote_identifier(CATEGORY_PREFIX + k)}" for i, k in enumerate(categories))
    return f"""
        SELECT customer_id, {counts}
        FROM (SELECT customer_id, order_id, {masks}
              FROM staging.order_lines LEFT JOIN (VALUES {bits}) AS category_bits(category, word, bit) USING (category)
              {changed}
              GROUP BY customer_id, order_id)
        GROUP BY customer_id"""


def order_stats_sql(categories: list[str], payments: list[str], only_changed: bool = False) -> str:
    """The SELECT behind features.customer_order_stats: one row per customer with orders, holding only what the
    customer's own rows decide (counts, sums, first and last order, largest order and basket), so a nightly load
    recomputes just the customers whose orders it changed. `only_changed` restricts it to the customers queued in
    CHANGED_CUSTOMERS.

    Counts per category and payment method are conditional aggregates in the customer's own group: the orders per
    payment method in the same pass as the totals, the orders per category from each order's category bits
    (_category_orders_sql). Counting into a long (customer, key, orders) table first and pivoting that took 40 s
    of 62 s at 10M customers (88M lines), and its count(DISTINCT) per group could not spill: it ran out of memory
    under 1 GB on its own."""
    changed = f"WHERE customer_id IN (SELECT customer_id FROM {CHANGED_CUSTOMERS})" if only_changed else ""
    payment_counts = f", {_counts_by_key(payments, PAYMENT_PREFIX)}" if payments else ""
    ctes = [f"""order_totals AS (
            SELECT customer_id, count(order_id) AS n_orders, count(*) AS n_rows, sum(order_amount) AS total_spend,
                   avg(order_amount) AS avg_amount, max(order_ts) AS last_order, min(order_ts) AS first_order,
                   {ORDER_MAXIMA_SQL} {payment_counts}
            FROM (SELECT *, lower(payment_method) AS key FROM staging.orders {changed}) GROUP BY customer_id)"""]
    columns = stats_columns(categories, payments)
    joins = []
    if categories:
        ctes.append(f"category_orders AS ({_category_orders_sql(categories, changed)})")
        joins.append("LEFT JOIN category_orders USING (customer_id)")
    return (f"WITH {', '.join(ctes)} SELECT {', '.join(quote_identifier(c) for c in columns)} "
            f"FROM order_totals {' '.join(joins)}")


def customer_features_sql(categories: list[str], payments: list[str], stats: str = STATS_TABLE) -> str:
    """The SELECT behind features.customer_features: one row per customer, ordered by customer_id, from
    staging.customers and the order stats (`stats`: a table or a parenthesised query).

    Recency and tenure are measured against the latest order of the whole shop, which moves every night; so they
    are derived here from each customer's first and last order, never stored in the stats."""
    shares = [f"COALESCE({quote_identifier(prefix + k)} / s.n_rows, 0.0)::DOUBLE AS {quote_identifier(prefix + k)}"
              # A customer without an order in a category bought it in 0% of orders, not "unknown".
              for prefix, keys in ((CATEGORY_PREFIX, categories), (PAYMENT_PREFIX, payments)) for k in keys]
    return f"""
        WITH reference AS (SELECT max(order_ts) AS as_of, min(order_ts) AS first_order FROM staging.orders),
        per_customer AS (
            SELECT c.customer_id, c.age, c.income,
                   CASE c.gender WHEN 'F' THEN 1.0 WHEN 'M' THEN 0.0 END AS is_female,
                   c.home_owner::DOUBLE AS is_home_owner,
                   COALESCE(s.n_orders, 0)::DOUBLE AS n_orders,
                   COALESCE(s.total_spend, 0) AS total_spend,
                   -- Without orders there is nothing to average: 0 spent per order, not "unknown".
                   COALESCE(s.avg_amount, 0) AS avg_basket_value,
                   date_diff('day', s.last_order, (SELECT as_of FROM reference))::DOUBLE AS recency_days,
                   date_diff('day', s.first_order, (SELECT as_of FROM reference))::DOUBLE AS tenure_days
                   {"".join(", " + share for share in shares)}
            FROM staging.customers c LEFT JOIN {stats} s USING (customer_id))
        SELECT * REPLACE (
            -- Never bought counts as longer ago than anyone who did; known only when orders carry dates.
            CASE WHEN n_orders = 0 THEN date_diff('day', (SELECT first_order FROM reference),
                                                  (SELECT as_of FROM reference)) + 1
                 ELSE recency_days END::DOUBLE AS recency_days,
            CASE WHEN n_orders = 0 AND (SELECT as_of FROM reference) IS NOT NULL THEN 0
                 ELSE tenure_days END::DOUBLE AS tenure_days)
        FROM per_customer ORDER BY customer_id"""


def build_customer_features(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """features.customer_features computed from scratch, as a polars frame: what the incremental tables must
    equal (the asset itself writes inside DuckDB)."""
    categories, payments = order_keys(con)
    return con.execute(customer_features_sql(categories, payments,
                                             f"({order_stats_sql(categories, payments)})")).pl()


def refresh_order_stats(con: duckdb.DuckDBPyConnection, categories: list[str], payments: list[str]) -> str:
    """Bring features.customer_order_stats up to date with staging; says how (all customers, or how many).

    Incremental when the stats exist with the same category and payment columns and staging queued a bounded
    set of changed customers: their rows are deleted and recomputed from all their orders. Everything is
    rebuilt after a snapshot load (queued as customer NULL), a new or vanished category or payment method, or
    when most customers changed (one pass over every order is then cheaper than a keyed one)."""
    ensure_change_queue(con)
    wanted = stats_columns(categories, payments)
    stored = table_columns(con, STATS_TABLE)
    queued, everyone = con.execute(
        f"SELECT count(DISTINCT customer_id), count(*) FILTER (WHERE customer_id IS NULL) FROM {CHANGED_CUSTOMERS}"
    ).fetchone()
    customers = con.execute("SELECT count(*) FROM staging.customers").fetchone()[0]
    if stored != wanted or everyone or queued > MAX_INCREMENTAL_SHARE * customers:
        con.execute(f"CREATE OR REPLACE TABLE {STATS_TABLE} AS {order_stats_sql(categories, payments)}")
        mode = "rebuilt for every customer"
    else:
        con.execute(f"DELETE FROM {STATS_TABLE} WHERE customer_id IN (SELECT customer_id FROM {CHANGED_CUSTOMERS})")
        con.execute(f"INSERT INTO {STATS_TABLE} BY NAME {order_stats_sql(categories, payments, only_changed=True)}")
        mode = f"recomputed for {queued} changed customers"
    # Consumed: the queue holds only changes the stats do not have yet.
    con.execute(f"DELETE FROM {CHANGED_CUSTOMERS}")
    return mode


# quality/load_audit carries the gate's blocking checks: features (and all after) wait for them.
# quality/load_audit and quality/validation_results carry the gate's blocking checks: features (and everything after
# it) wait for them, and nothing after a failed critical check runs.
GATED_STAGING = [["staging", "customers"], ["staging", "orders"], ["staging", "order_lines"], ["quality", "load_audit"],
                 ["quality", "validation_results"]]
FEATURE_SPECS = [
    dg.AssetSpec(["features", "customer_order_stats"], group_name="features", kinds={"duckdb"},
                 deps=[*GATED_STAGING, ["staging", "changed_customers"]],
                 description="One row per customer with orders (grain: customer_id): counts, sums, first and last "
                             "order, largest order and basket, orders per category and payment method; refreshed "
                             "only for the customers queued in staging.changed_customers."),
    dg.AssetSpec(["features", "customer_features"], group_name="features", kinds={"duckdb", "polars"},
                 deps=[*GATED_STAGING, ["features", "customer_order_stats"]],
                 description="One row per customer (grain: customer_id) from staging.customers, staging.orders and "
                             "staging.order_lines: demographics, category order shares, RFM and payment mix."),
]


# The op keeps the step key the single asset had (features__customer_features), which bench/run.py groups by.
@dg.multi_asset(specs=FEATURE_SPECS, name="features__customer_features", pool="duckdb_writer")
def customer_features(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """One row per customer (grain: customer_id) from staging.customers, staging.orders and staging.order_lines:
    demographics, category order shares, RFM and payment mix. Also keeps features.customer_order_stats (one row
    per customer with orders: counts, sums, first and last order, largest order and basket), refreshed only for
    the customers whose orders the last load changed."""
    with warehouse.connect() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            categories, payments = order_keys(con)
            stats_refresh = refresh_order_stats(con, categories, payments)
            con.execute(f"CREATE OR REPLACE TABLE features.customer_features AS "
                        f"{customer_features_sql(categories, payments)}")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        context.log.info(f"{STATS_TABLE}: {stats_refresh}")
        stats_rows = con.execute(f"SELECT count(*) FROM {STATS_TABLE}").fetchone()[0]
        rows = con.execute("SELECT count(*) FROM features.customer_features").fetchone()[0]
        columns = [row[0] for row in con.execute("DESCRIBE features.customer_features").fetchall()]
        preview = con.execute(f"SELECT {', '.join(quote_identifier(c) for c in columns[:10])} "
                              "FROM features.customer_features ORDER BY customer_id LIMIT 5").pl()
    yield dg.MaterializeResult(
        asset_key=["features", "customer_order_stats"],
        metadata={"dagster/row_count": stats_rows, "refresh": stats_refresh},
    )
    yield dg.MaterializeResult(
        asset_key=["features", "customer_features"],
        metadata={
            "dagster/row_count": rows,
            "columns": dg.MetadataValue.json(columns),
            "families": dg.MetadataValue.json(sorted({feature_family(c) for c in columns} - {None})),
            "order_stats_refresh": stats_refresh,
            "preview": dg.MetadataValue.md(preview_markdown(preview)),
        }
    )
