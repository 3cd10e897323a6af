"""Value tiers: RFM scores, the eight classic RFM tiers and k-means value tiers, one row per customer.

Published as `segments.customer_value_tiers` (grain: customer_id) from `features.customer_features`.

RFM scores (1..5, 5 is best), computed among the customers with at least one order:
- R from `recency_days` (fewer days since the last order = higher score), F from `n_orders`, M from `total_spend`.
- Quintile cut of the rank: with `rank` the 1-based ascending rank (ties share the lowest of their positions,
  rank method "min") among the n customers with a known value,
  `score = floor(5 * (rank - 0.5) / n) + 1`. Computed in integers (`2 * rank` is always whole), so a position
  exactly on a quintile boundary always goes to the higher score. Without ties, n = 10 gives 1,1,2,2,3,3,4,4,5,5.
- Ties never break the cut (there are no bin edges to collide): equal values always get the same score, the one
  of the start of their block. A value shared by many customers is judged by where its block starts, so when
  60% of buyers have n_orders = 1 they all get F = 1: buying once is never "frequent".
- Customers without orders get R = F = M = 1 (never bought is the lowest on every dimension).
- R is NULL wherever `recency_days` is NULL: orders without dates (the wide seed table) give no recency, and
  recency is never invented. F and M are always known.

RFM tiers: a dimension is "high" when its score is >= 3 (HIGH_SCORE), i.e. at or above the median quintile;
the 2 x 2 x 2 combinations are the eight classic tiers of RFM_TIERS. The tier is NULL when R is NULL.

Value tiers: k-means (k = 3, seeded, StandardScaler and KMeans in one scikit-learn Pipeline) on log1p(n_orders) x
log1p(total_spend), fitted on the customers with orders. Above VALUE_TIER_SAMPLE buyers the ten k-means++ restarts
run on a seeded sample of that size and one k-means run on every buyer finishes from the best of them (1M customers:
2.0 s of CPU became 0.4 s; the centres agree to 1e-3 standard deviations). Clusters are named by their centroid's
spend (M; F breaks a tie): highest `high_value`, middle `potential`, lowest `at_risk`. Value is what customers
spend: ranked by F + M, a Square shop's catering customers (few orders, $8,275 each) were 0% high value and its
daily-coffee customers ($310) 99%. Customers without orders are
`at_risk` by rule and left out of fitting. With fewer than 3 distinct (n_orders, total_spend) points among the buyers
there is nothing to separate: every buyer is `potential`.

Orders without dates: the lowest tier is `low_value` (低价值客户 / Low value) instead of `at_risk`. Calling it "at
risk" claims a churn risk, and without order dates there is no recency and no churn to measure: the tier only says
the customers buy least often and spend least. The orders carry dates when some customer has a `recency_days`
(orders_have_dates), the same test that decides whether the classic RFM tiers exist, so the two never disagree.
The whole table uses one scale (value_tier_scale): `at_risk` and `low_value` never appear together.
"""

from dataclasses import dataclass

import dagster as dg
import numpy as np
import polars as pl
from sklearn.cluster import KMeans
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from assets.model.clusters import MODEL_THREADS
from pipelines.core.resources import WarehouseResource
from pipelines.core.sql import preview_markdown

HIGH_SCORE = 3  # a score >= 3 is "high": at or above the median quintile
VALUE_TIER_K = 3
VALUE_TIER_SEED = 42
VALUE_TIER_SAMPLE = 100_000
SCORE_COLUMNS = ["r_score", "f_score", "m_score"]
OUTPUT_COLUMNS = [
    "customer_id", "r_score", "f_score", "m_score",
    "rfm_tier_key", "rfm_tier_zh", "rfm_tier_en",
    "value_tier_key", "value_tier_zh", "value_tier_en",
    "recency_days", "n_orders", "total_spend",
]


@dataclass(frozen=True)
class RfmTier:
    key: str
    zh: str
    en: str
    r_high: bool
    f_high: bool
    m_high: bool


# The eight classic tiers (R, F, M high/low), in the order ops teams list them.
RFM_TIERS: tuple[RfmTier, ...] = (
    RfmTier("important_value", "重要价值客户", "Important value", True, True, True),
    RfmTier("important_development", "重要发展客户", "Important development", True, False, True),
    RfmTier("important_retention", "重要保持客户", "Important retention", False, True, True),
    RfmTier("important_win_back", "重要挽留客户", "Important win-back", False, False, True),
    RfmTier("general_value", "一般价值客户", "General value", True, True, False),
    RfmTier("general_development", "一般发展客户", "General development", True, False, False),
    RfmTier("general_retention", "一般保持客户", "General retention", False, True, False),
    RfmTier("general_win_back", "一般挽留客户", "General win-back", False, False, False),
)
_TIER_BY_LEVELS = {(t.r_high, t.f_high, t.m_high): t for t in RFM_TIERS}


@dataclass(frozen=True)
class ValueTier:
    key: str
    zh: str
    en: str


# Highest centroid spend first.
VALUE_TIERS: tuple[ValueTier, ...] = (
    ValueTier("high_value", "高价值客户", "High value"),
    ValueTier("potential", "潜力客户", "Potential"),
    ValueTier("at_risk", "流失风险客户", "At risk"),
)
# The lowest tier when the orders carry no dates: it claims no churn, which cannot be measured without dates.
LOW_VALUE = ValueTier("low_value", "低价值客户", "Low value")
VALUE_TIERS_WITHOUT_DATES: tuple[ValueTier, ...] = (*VALUE_TIERS[:-1], LOW_VALUE)
# Every value tier key either scale may publish (what a playbook condition may name).
ALL_VALUE_TIERS: tuple[ValueTier, ...] = (*VALUE_TIERS, LOW_VALUE)


def value_tier_scale(has_order_dates: bool) -> tuple[ValueTier, ...]:
    """The value tiers from highest to lowest: ending in `at_risk` with order dates, `low_value` without."""
    return VALUE_TIERS if has_order_dates else VALUE_TIERS_WITHOUT_DATES


def orders_have_dates(features: pl.DataFrame) -> bool:
    """Whether the orders carry dates: some customer has a `recency_days` (features.customer_features leaves it
    NULL for everyone when staging.orders.order_ts is NULL, as in the wide seed table)."""
    return "recency_days" in features.columns and features.get_column("recency_days").null_count() < features.height


def _quintile(values: pl.Expr, descending: bool = False) -> pl.Expr:
    """floor(5 * (rank - 0.5) / n) + 1 over the non-null values, in integer arithmetic; NULL stays NULL."""
    twice_rank = (values.rank("min", descending=descending) * 2).round(0).cast(pl.Int64)
    n = values.count().cast(pl.Int64)
    return ((5 * (twice_rank - 1)) // (2 * n) + 1).cast(pl.Int32)


def rfm_scores(features: pl.DataFrame) -> pl.DataFrame:
    """customer_id, r_score, f_score, m_score (1..5, Int32) per row of `features`, in input order.

    Needs customer_id, n_orders, total_spend, recency_days. See the module docstring for the cut and the ties.
    """
    buyer = pl.col("n_orders").fill_null(0) > 0
    known_recency = pl.col("recency_days").is_not_null()
    return features.select(
        "customer_id",
        pl.when(~known_recency).then(None)
        .when(buyer).then(_quintile(pl.when(buyer).then(pl.col("recency_days")), descending=True))
        .otherwise(1).cast(pl.Int32).alias("r_score"),
        pl.when(buyer).then(_quintile(pl.when(buyer).then(pl.col("n_orders"))))
        .otherwise(1).cast(pl.Int32).alias("f_score"),
        pl.when(buyer).then(_quintile(pl.when(buyer).then(pl.col("total_spend").fill_null(0))))
        .otherwise(1).cast(pl.Int32).alias("m_score"),
    )


def rfm_tier(r: int | None, f: int | None, m: int | None) -> RfmTier | None:
    """The classic tier of one customer's scores; None when any score (in practice R) is unknown."""
    if r is None or f is None or m is None:
        return None
    return _TIER_BY_LEVELS[(r >= HIGH_SCORE, f >= HIGH_SCORE, m >= HIGH_SCORE)]


def rfm_tiers(scores: pl.DataFrame) -> pl.DataFrame:
    """`scores` with rfm_tier_key, rfm_tier_zh, rfm_tier_en added (via rfm_tier, NULL when R is NULL)."""
    combos = scores.select(SCORE_COLUMNS).unique()
    tiers = [rfm_tier(*row) for row in combos.iter_rows()]
    lookup = combos.with_columns(
        pl.Series("rfm_tier_key", [t.key if t else None for t in tiers], dtype=pl.String),
        pl.Series("rfm_tier_zh", [t.zh if t else None for t in tiers], dtype=pl.String),
        pl.Series("rfm_tier_en", [t.en if t else None for t in tiers], dtype=pl.String),
    )
    return scores.join(lookup, on=SCORE_COLUMNS, how="left", nulls_equal=True, maintain_order="left")


def build_value_tier_pipeline(seed: int = VALUE_TIER_SEED) -> Pipeline:
    return Pipeline([
        ("scale", StandardScaler()),
        ("cluster", KMeans(n_clusters=VALUE_TIER_K, n_init=10, random_state=seed)),
    ])


def fit_value_tier_pipeline(points: np.ndarray, seed: int = VALUE_TIER_SEED) -> Pipeline:
    """build_value_tier_pipeline fitted on `points`; restarts on a sample when there are many (module docstring)."""
    if len(points) <= VALUE_TIER_SAMPLE:
        return build_value_tier_pipeline(seed).fit(points)
    sample = points[np.sort(np.random.default_rng(seed).choice(len(points), VALUE_TIER_SAMPLE, replace=False))]
    start = build_value_tier_pipeline(seed).fit(sample)
    centres = start.named_steps["scale"].inverse_transform(start.named_steps["cluster"].cluster_centers_)
    # The pipeline Pipeline.fit would give, with the scaler of every buyer fitted once: it also places the start.
    scaler = StandardScaler().fit(points)
    init = scaler.transform(centres)
    cluster = KMeans(n_clusters=VALUE_TIER_K, n_init=1, init=init, random_state=seed).fit(scaler.transform(points))
    return Pipeline([("scale", scaler), ("cluster", cluster)])


def has_distinct_points(points: np.ndarray, needed: int) -> bool:
    """Whether `points` holds at least `needed` distinct rows, without sorting them all (np.unique) or copying
    them: one comparison of every row per distinct row found."""
    unlike_all_found = np.ones(len(points), dtype=bool)
    for _ in range(needed):
        if not unlike_all_found.any():
            return False
        first_unlike = int(np.argmax(unlike_all_found))
        unlike_all_found &= np.any(points != points[first_unlike], axis=1)
    return True


def value_tiers(features: pl.DataFrame, seed: int = VALUE_TIER_SEED,
                has_order_dates: bool | None = None) -> pl.DataFrame:
    """customer_id, value_tier_key, value_tier_zh, value_tier_en per row of `features`, in input order.

    Needs customer_id, n_orders, total_spend. Deterministic for the same rows and seed. `has_order_dates` picks the
    scale (value_tier_scale); by default it is read from `recency_days` (orders_have_dates).
    """
    if has_order_dates is None:
        has_order_dates = orders_have_dates(features)
    scale = value_tier_scale(has_order_dates)
    n_orders = features.get_column("n_orders").fill_null(0).cast(pl.Float64).to_numpy()
    spend = features.get_column("total_spend").fill_null(0).cast(pl.Float64).to_numpy()
    buyer = n_orders > 0
    # Index into the scale per customer (0 high value, 1 potential, 2 the lowest tier).
    ranks = np.full(features.height, 2, dtype=np.int64)
    points = np.column_stack([np.log1p(n_orders[buyer]), np.log1p(np.clip(spend[buyer], 0, None))])
    if not has_distinct_points(points, VALUE_TIER_K):
        ranks[buyer] = 1
    else:
        # One thread, as for the segment model (see MODEL_THREADS): 100k customers took 3.1 s on two, 0.5 s on one.
        with threadpool_limits(limits=MODEL_THREADS):
            pipeline = fit_value_tier_pipeline(points, seed)
            clusters = pipeline.predict(points)
        centres = pipeline.named_steps["cluster"].cluster_centers_  # already in standardized units
        order = np.lexsort((-centres[:, 0], -centres[:, 1]))  # highest spend (M) first, then frequency (F)
        rank_of = np.empty(VALUE_TIER_K, dtype=np.int64)
        rank_of[order] = np.arange(VALUE_TIER_K)
        ranks[buyer] = rank_of[clusters]
    tier_index = pl.Series(ranks)
    return pl.DataFrame({
        "customer_id": features.get_column("customer_id"),
        **{column: pl.Series(column, [getattr(t, attribute) for t in scale], dtype=pl.String).gather(tier_index)
           for column, attribute in (("value_tier_key", "key"), ("value_tier_zh", "zh"), ("value_tier_en", "en"))},
    })


def build_value_tiers(features: pl.DataFrame, seed: int = VALUE_TIER_SEED) -> pl.DataFrame:
    """The rows of `segments.customer_value_tiers` (OUTPUT_COLUMNS), ordered by customer_id."""
    scored = rfm_tiers(rfm_scores(features))
    tiers = value_tiers(features, seed)
    # All three frames are row for row in the order of `features` (rfm_tiers keeps it): side by side, no joins.
    return (
        pl.concat([scored, tiers.drop("customer_id"), features.select("recency_days", "n_orders", "total_spend")],
                  how="horizontal")
        .select(OUTPUT_COLUMNS)
        .sort("customer_id")
    )


def tier_counts(table: pl.DataFrame) -> pl.DataFrame:
    """Customers per RFM tier and per value tier, in the fixed tier order; unknown RFM tiers are counted too."""
    rows = []
    rfm = table.get_column("rfm_tier_key")
    for tier in RFM_TIERS:
        rows.append(("rfm", tier.key, tier.zh, tier.en, int((rfm == tier.key).sum())))
    unknown = rfm.null_count()
    if unknown:
        rows.append(("rfm", "(none)", "未知（无订单日期）", "Unknown (no order dates)", unknown))
    value = table.get_column("value_tier_key")
    for tier in value_tier_scale(orders_have_dates(table)):
        rows.append(("value", tier.key, tier.zh, tier.en, int((value == tier.key).sum())))
    return pl.DataFrame(rows, schema=["kind", "tier_key", "tier_zh", "tier_en", "customers"], orient="row")


@dg.asset(
    key=["segments", "customer_value_tiers"],
    deps=[["features", "customer_features"]],
    group_name="segments",
    kinds={"duckdb", "scikitlearn"},
    pool="duckdb_writer",
)
def customer_value_tiers(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per customer (grain: customer_id) from features.customer_features: R, F, M scores 1..5, the
    classic RFM tier (NULL without order dates) and the k-means value tier (high value / potential / at risk; the
    lowest is low value instead when the orders carry no dates), each with key, Chinese and English name."""
    with warehouse.connect() as con:
        features = con.execute(
            "SELECT customer_id, n_orders, total_spend, recency_days FROM features.customer_features "
            "ORDER BY customer_id").pl()
        table = build_value_tiers(features)
        arrow_table = table.to_arrow()  # noqa: F841 - read by DuckDB's replacement scan
        con.execute("CREATE OR REPLACE TABLE segments.customer_value_tiers AS "
                    "SELECT * FROM arrow_table ORDER BY customer_id")
    counts = tier_counts(table)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.height,
            "tier_counts": dg.MetadataValue.md(preview_markdown(counts, counts.height)),
            "high_score": HIGH_SCORE,
            "value_tier_seed": VALUE_TIER_SEED,
            "preview": dg.MetadataValue.md(preview_markdown(table)),
        }
    )
