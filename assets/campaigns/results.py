"""The nightly asset `campaigns/results`: every campaign of the store measured over its window from
`staging.orders`, per segment and group, with the uplift of each metric, its 95% interval, p-value and verdict
(statistics in assets/campaigns/stats.py). Also copies the store's `campaigns` and `assignments` into the working
database, so the published warehouse carries them.

Metrics per campaign x segment x group, over the orders placed from `start_day` 00:00 to the end of `end_day`
(order time as staged): customers (assigned), buyers (at least one order), conversion rate (buyers / customers),
orders and revenue per customer (every assigned customer, buyers or not), average order value (revenue / orders)
and repeat-purchase rate (buyers with two or more orders / buyers). `segment_id` is the segment a customer was in
when assigned; a NULL segment_id row is the whole campaign. Conversion rate is the primary metric: the campaign's
significance and its next step (keep / iterate / stop / wait, stats.next_step) are read from it alone; the other
metrics are measured and shown beside it, but do not decide.
"""


from datetime import UTC, date, datetime

import dagster as dg
import duckdb
import numpy as np
import polars as pl

from assets.campaigns.assignment import CONTROL, TREATMENT
from assets.campaigns.stats import ALPHA, POWER, Comparison, compare_means, compare_proportions, next_step, verdict
from assets.campaigns.store import ASSIGNMENTS_DDL, CAMPAIGNS_DDL, store_file_for
from pipelines.core.resources import LOCK_RETRIES, LOCK_RETRY_SECONDS, WarehouseResource
from pipelines.core.sql import sql_literal

SCHEMA = "campaigns"
PRIMARY_METRIC = "conversion_rate"
# In the order the report shows them.
METRICS = ("conversion_rate", "revenue_per_customer", "orders_per_customer", "avg_order_value", "repeat_rate")

RESULTS_COLUMNS = {
    "campaign": pl.String, "segment_id": pl.Int32, "group_name": pl.String, "customers": pl.Int64,
    "buyers": pl.Int64, "conversion_rate": pl.Float64, "orders": pl.Int64, "revenue": pl.Float64,
    "orders_per_customer": pl.Float64, "revenue_per_customer": pl.Float64, "avg_order_value": pl.Float64,
    "repeat_buyers": pl.Int64, "repeat_rate": pl.Float64, "start_day": pl.Date, "end_day": pl.Date,
    "data_through": pl.Date,
}
UPLIFT_COLUMNS = {
    "campaign": pl.String, "segment_id": pl.Int32, "strategy_key": pl.String, "metric": pl.String,
    "is_primary": pl.Boolean, "treatment_customers": pl.Int64, "control_customers": pl.Int64,
    "treatment_value": pl.Float64, "control_value": pl.Float64, "uplift": pl.Float64, "ci_low": pl.Float64,
    "ci_high": pl.Float64, "p_value": pl.Float64, "method": pl.String, "mde_now": pl.Float64, "verdict": pl.String,
    "next_step": pl.String, "start_day": pl.Date, "end_day": pl.Date, "data_through": pl.Date,
    "window_over": pl.Boolean, "confidence": pl.Float64, "power": pl.Float64,
}


def _group_row(customers: pl.DataFrame) -> dict:
    n = customers.height
    buyers = int((customers["orders"] > 0).sum())
    orders = int(customers["orders"].sum()) if n else 0
    revenue = float(customers["revenue"].sum()) if n else 0.0
    repeat = int((customers["orders"] >= 2).sum())
    return {
        "customers": n, "buyers": buyers, "conversion_rate": buyers / n if n else None, "orders": orders,
        "revenue": revenue, "orders_per_customer": orders / n if n else None,
        "revenue_per_customer": revenue / n if n else None,
        "avg_order_value": revenue / orders if orders else None,
        "repeat_buyers": repeat, "repeat_rate": repeat / buyers if buyers else None,
    }


def compare(customers: pl.DataFrame, order_amounts: pl.DataFrame) -> dict[str, Comparison]:
    """Every metric's comparison for one campaign (or one of its segments): `customers` holds group_name, orders,
    revenue per assigned customer; `order_amounts` group_name, order_amount per order in the window."""
    t = customers.filter(pl.col("group_name") == TREATMENT)
    c = customers.filter(pl.col("group_name") == CONTROL)
    buyers_t, buyers_c = t.filter(pl.col("orders") > 0), c.filter(pl.col("orders") > 0)
    amounts_t = order_amounts.filter(pl.col("group_name") == TREATMENT)["order_amount"].to_numpy()
    amounts_c = order_amounts.filter(pl.col("group_name") == CONTROL)["order_amount"].to_numpy()
    return {
        "conversion_rate": compare_proportions(buyers_t.height, t.height, buyers_c.height, c.height),
        "revenue_per_customer": compare_means(t["revenue"].to_numpy(), c["revenue"].to_numpy()),
        "orders_per_customer": compare_means(t["orders"].to_numpy(), c["orders"].to_numpy()),
        "avg_order_value": compare_means(np.asarray(amounts_t, dtype=float), np.asarray(amounts_c, dtype=float)),
        "repeat_rate": compare_proportions(int((buyers_t["orders"] >= 2).sum()), buyers_t.height,
                                           int((buyers_c["orders"] >= 2).sum()), buyers_c.height),
    }


def measure(campaigns: pl.DataFrame, customers: pl.DataFrame, order_amounts: pl.DataFrame,
            data_through: date | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The results and uplift tables from the campaigns (campaign, strategy_key, start_day, end_day), the
    per-customer window totals (campaign, segment_id, group_name, customer_id, orders, revenue) and the orders in
    the window (campaign, segment_id, group_name, order_amount). Independent of any database, so the statistics
    can be tested on generated orders without the pipeline."""
    results, uplift = [], []
    for campaign in campaigns.sort("campaign").iter_rows(named=True):
        name = campaign["campaign"]
        mine = customers.filter(pl.col("campaign") == name)
        amounts = order_amounts.filter(pl.col("campaign") == name)
        window_over = data_through is not None and data_through >= campaign["end_day"]
        segments = sorted(mine["segment_id"].drop_nulls().unique().to_list())
        for segment_id in [None, *segments]:
            part, part_amounts = mine, amounts
            if segment_id is not None:
                part = mine.filter(pl.col("segment_id") == segment_id)
                part_amounts = amounts.filter(pl.col("segment_id") == segment_id)
            window = {"start_day": campaign["start_day"], "end_day": campaign["end_day"], "data_through": data_through}
            for group in (TREATMENT, CONTROL):
                rows = part.filter(pl.col("group_name") == group)
                results.append({"campaign": name, "segment_id": segment_id, "group_name": group,
                                **_group_row(rows), **window})
            n_t = int((part["group_name"] == TREATMENT).sum())
            n_c = int((part["group_name"] == CONTROL).sum())
            comparisons = compare(part, part_amounts)
            verdicts = {metric: verdict(comparisons[metric], n_t, n_c, window_over) for metric in METRICS}
            step = next_step(verdicts[PRIMARY_METRIC])
            for metric in METRICS:
                comparison = comparisons[metric]
                uplift.append({
                    "campaign": name, "segment_id": segment_id, "strategy_key": campaign["strategy_key"],
                    "metric": metric, "is_primary": metric == PRIMARY_METRIC, "treatment_customers": n_t,
                    "control_customers": n_c, "treatment_value": comparison.treatment,
                    "control_value": comparison.control, "uplift": comparison.uplift, "ci_low": comparison.ci_low,
                    "ci_high": comparison.ci_high, "p_value": comparison.p_value, "method": comparison.method,
                    "mde_now": comparison.mde, "verdict": verdicts[metric], "next_step": step, **window,
                    "window_over": window_over, "confidence": 1 - ALPHA, "power": POWER})
    return (pl.DataFrame(results, schema=RESULTS_COLUMNS, orient="row"),
            pl.DataFrame(uplift, schema=UPLIFT_COLUMNS, orient="row"))


def window_frames(con: duckdb.DuckDBPyConnection, prefix: str = f"{SCHEMA}.",
                  orders: str = "staging.orders") -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, date | None]:
    """campaigns, per-customer window totals, orders in the window and the last order day, read through `con`."""
    campaigns = con.execute(f"SELECT campaign, strategy_key, start_day, end_day FROM {prefix}campaigns").pl()
    window = f"""FROM {prefix}assignments a JOIN {prefix}campaigns c USING (campaign)
                 LEFT JOIN {orders} o ON o.customer_id = a.customer_id AND o.order_ts >= c.start_day
                  AND o.order_ts < CAST(c.end_day + INTERVAL 1 DAY AS TIMESTAMP)"""
    customers = con.execute(f"""SELECT a.campaign, a.segment_id, a.group_name, a.customer_id,
                                       count(o.order_id) AS orders, coalesce(sum(o.order_amount), 0.0) AS revenue
                                {window} GROUP BY ALL""").pl()
    amounts = con.execute(f"""SELECT a.campaign, a.segment_id, a.group_name, o.order_amount
                              {window} WHERE o.order_id IS NOT NULL""").pl()
    last = con.execute(f"SELECT max(order_ts) FROM {orders}").fetchone()[0]
    return campaigns, customers, amounts, last.date() if last is not None else None


def copy_store(con: duckdb.DuckDBPyConnection, store) -> None:
    """campaigns.campaigns and campaigns.assignments in the working database, replaced by the store's (empty
    tables when there is no store yet)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    con.execute(f"DROP TABLE IF EXISTS {SCHEMA}.campaigns")
    con.execute(f"DROP TABLE IF EXISTS {SCHEMA}.assignments")
    con.execute(CAMPAIGNS_DDL.format(prefix=f"{SCHEMA}."))
    con.execute(ASSIGNMENTS_DDL.format(prefix=f"{SCHEMA}."))
    if not store.is_file():
        return
    try:
        con.execute(f"ATTACH {sql_literal(str(store))} AS campaign_store (READ_ONLY)")
    except duckdb.IOException as exc:
        # `persona campaign` is writing it (it holds the run lock, so only a run not started by `persona run`
        # gets here): try again shortly rather than measure without the campaigns.
        if "lock" in str(exc).lower():
            raise dg.RetryRequested(max_retries=LOCK_RETRIES, seconds_to_wait=LOCK_RETRY_SECONDS) from exc
        raise
    try:
        if con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'campaign_store' "
                "AND table_name = 'campaigns'").fetchone()[0]:
            con.execute(f"INSERT INTO {SCHEMA}.campaigns SELECT * FROM campaign_store.campaigns")
            con.execute(f"INSERT INTO {SCHEMA}.assignments SELECT * FROM campaign_store.assignments")
    finally:
        con.execute("DETACH campaign_store")


SPECS = [
    dg.AssetSpec(["campaigns", "campaigns"], group_name="campaigns", kinds={"duckdb"},
                 description="campaigns.campaigns: one row per campaign (segments, strategy, holdout, window, group "
                             "sizes, the effects detectable at creation), copied from the campaign store."),
    dg.AssetSpec(["campaigns", "assignments"], group_name="campaigns", kinds={"duckdb"},
                 description="campaigns.assignments: treatment or control per campaign and customer, with the "
                             "segment at assignment, copied from the campaign store."),
    dg.AssetSpec(["campaigns", "results"], group_name="campaigns", kinds={"duckdb"},
                 deps=[["staging", "orders"], ["campaigns", "campaigns"], ["campaigns", "assignments"]],
                 description="campaigns.results: per campaign x segment x group over the campaign's window: "
                             "customers, buyers, conversion, orders and revenue per customer, average order value, "
                             "repeat-purchase rate."),
    dg.AssetSpec(["campaigns", "uplift"], group_name="campaigns", kinds={"duckdb"},
                 deps=[["campaigns", "results"]],
                 description="campaigns.uplift: per campaign x segment x metric: treatment - control with its 95% "
                             "interval (Newcombe for rates, Welch for means), p-value, the effect detectable now, "
                             "verdict and next step."),
]


@dg.multi_asset(specs=SPECS, pool="duckdb_writer")
def campaign_results(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Copies the campaign store into the working database and measures every campaign over its window."""
    store = store_file_for(warehouse.published_file)
    with warehouse.connect() as con:
        copy_store(con, store)
        campaigns, customers, amounts, data_through = window_frames(con)
        results, uplift = measure(campaigns, customers, amounts, data_through)
        measured_at = datetime.now(UTC).replace(tzinfo=None)
        for table, frame in (("results", results), ("uplift", uplift)):
            con.register("frame", frame.with_columns(pl.lit(measured_at).alias("measured_at")).to_arrow())
            con.execute(f"CREATE OR REPLACE TABLE {SCHEMA}.{table} AS SELECT * FROM frame")
            con.unregister("frame")
        counts = {table: con.execute(f"SELECT count(*) FROM {SCHEMA}.{table}").fetchone()[0]
                  for table in ("campaigns", "assignments", "results", "uplift")}
    for table, rows in counts.items():
        yield dg.MaterializeResult(asset_key=["campaigns", table], metadata={"dagster/row_count": rows})
    context.log.info(f"measured {counts['campaigns']} campaign(s) from {store}")
