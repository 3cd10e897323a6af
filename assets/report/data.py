"""What the report reads: the public segments tables (and two layer tables), loaded once per report.

Privacy: a segment with fewer than `MIN_DETAIL_SIZE` customers is never described on its own. It is counted in
the size charts as part of one pooled group, "other small segments", and left out of every profile chart, the
narrative and the strategies. The pooled group has no name, profile or strategy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import duckdb
import polars as pl

from assets.audiences.summary import load_audience_summary
from assets.report.campaign_data import load_campaigns
from assets.report.facts import FactBook, FactRef
from assets.report.predict_queries import AT_RISK_SQL, BUNDLE_SIZE, BUNDLE_SQL, SEGMENT_VALUE_SQL
from assets.report.weekly_data import load_weekly
from assets.segments.labels import category_label
from assets.segments.naming import unlabelled_from_evidence
from assets.segments.value_tiers import ValueTier, value_tier_scale
from pipelines.core.sql import table_exists

MIN_DETAIL_SIZE = 10  # segments below this many customers are pooled as "other small segments"
# A median or share of a profile field (age, income, gender, home ownership) is printed only when at least this many
# people have the value: the median age of the one profiled member of 412 describes that member, not the segment.
MIN_PROFILE_SUPPORT = 10
PROFILE_FIELDS = ("age", "income", "gender", "home_owner")
OTHER_ID = -1
OTHER_NAME = {"zh": "其他小客群", "en": "Other small segments"}
NEW_NAME = {"zh": "新客户", "en": "New customers"}
GONE_NAME = {"zh": "已离开", "en": "Left"}
# Tableau 10: one colour per segment id, so a segment keeps its colour across runs and charts.
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac"]
OTHER_COLOR = "#c7c7c7"


@dataclass(frozen=True)
class Segment:
    segment_id: int
    name_zh: str
    name_en: str
    name_source: str
    archetype: str | None
    customers: int
    share: float
    median_age: float | None
    median_income: float | None
    avg_orders: float | None
    avg_spend: float | None
    # Profile shares and coverage (members with each value of PROFILE_FIELDS); None on a warehouse whose
    # segment_profiles predates these columns, where the report then says nothing about coverage.
    female_share: float | None = None
    home_owner_share: float | None = None
    known: dict[str, int | None] = field(default_factory=dict)
    # Category codes that set the segment apart but were left out of its name for lack of a zh or en label
    # (from segment_profiles.name_evidence): the report asks for `category_labels` entries for them.
    unlabelled_categories: tuple[str, ...] = ()

    def name(self, language: str) -> str:
        return self.name_zh if language == "zh" else self.name_en

    def known_of(self, profile_field: str) -> int | None:
        return self.known.get(profile_field)

    def supported(self, profile_field: str) -> bool:
        """Enough members have the value to print a median or share of it (always, on an older warehouse)."""
        known = self.known_of(profile_field)
        return known is None or known >= MIN_PROFILE_SUPPORT

    def sparse(self, profile_field: str) -> bool:
        """Fewer than half of the members have the value: the report says so beside (or instead of) the number."""
        known = self.known_of(profile_field)
        return known is not None and 2 * known < self.customers

    @property
    def color(self) -> str:
        return segment_color(self.segment_id)


def segment_color(segment_id: int) -> str:
    return OTHER_COLOR if segment_id == OTHER_ID else PALETTE[(segment_id - 1) % len(PALETTE)]


@dataclass
class ReportData:
    segments: list[Segment]
    n_customers: int
    model_version: str | None
    assigned_at: datetime | None
    # age / income -> segment_id, n, q1, median, q3, lower, upper: detailed segments with MIN_PROFILE_SUPPORT values
    box: dict[str, pl.DataFrame]
    population_median: dict[str, float | None]  # None when fewer than MIN_PROFILE_SUPPORT customers have the value
    affinity: pl.DataFrame  # segment_id, category, segment_rate, population_rate, lift (detailed only)
    features: pl.DataFrame  # segments.segment_features (detailed only)
    payments: pl.DataFrame  # segment_id, method, orders, share (detailed only)
    payments_overall: pl.DataFrame  # method, orders, share (all customers)
    value_tiers: pl.DataFrame  # segment_id, tier_key, tier_zh, tier_en, customers, share (detailed only)
    rfm_tiers: pl.DataFrame  # the same for the classic RFM tiers; empty when no customer has one
    value_tier_overall: dict[str, float]  # value tier key -> share of all customers
    rfm_known: bool  # some customer has an RFM tier (the orders carry dates)
    model_runs: pl.DataFrame  # the latest run's candidates
    migration: pl.DataFrame  # the latest run's rows of segments.segment_migration
    migration_run: str | None
    previous_run_date: datetime | None
    latest_run_date: datetime | None
    sizes: pl.DataFrame  # run_id, run_date, segment_id (OTHER_ID pooled), customers
    names: dict[int, tuple[str, str]]  # every segment id ever published -> (zh, en), from the catalogue
    category_labels: dict[str, tuple[str, str]] = field(default_factory=dict)
    # False for an export declared without categories (orders.columns.category: null): the report then leaves out
    # everything built on categories and says why, once (sections.section_without_categories).
    has_categories: bool = True
    # Distinct categories of the order lines (CATEGORY_COUNT_SQL): with few of them, a top-n of the ones a customer
    # has not bought is nearly every one, and a hit rate says nothing.
    category_count: int = 0
    # The predictive layer (assets/predict.py); None / empty when its tables are missing.
    churn_run: dict | None = None  # the latest row of predict.churn_model_runs
    at_risk: pl.DataFrame = field(default_factory=pl.DataFrame)  # segment_id, high_value, high_value_at_risk, ...
    recommendation_eval: dict | None = None  # the latest row of predict.recommendation_eval
    bundles: pl.DataFrame = field(default_factory=pl.DataFrame)  # segment_id, category, customers, share, rank
    rules: pl.DataFrame = field(default_factory=pl.DataFrame)  # predict.category_rules with lift > 1
    value_run: dict | None = None  # the latest row of predict.customer_value_eval
    value_deciles: pl.DataFrame = field(default_factory=pl.DataFrame)  # its rows of predict.customer_value_deciles
    # segment_id, customers, expected_purchases, expected_spend (means over members with a value; detailed only)
    segment_value: pl.DataFrame = field(default_factory=pl.DataFrame)
    # The campaign layer (assets/campaigns): campaigns.uplift of every whole campaign; empty without campaigns.
    campaigns: pl.DataFrame = field(default_factory=pl.DataFrame)
    # The audience layer (assets/audiences): per audience of the latest run, its row of segments.audience_history
    # with the previous run's; empty without audiences.
    audiences: pl.DataFrame = field(default_factory=pl.DataFrame)
    # Weekly KPIs per described segment (assets/report/weekly.py) and the two complete weeks compared.
    kpi: pl.DataFrame = field(default_factory=pl.DataFrame)
    kpi_latest: date | None = None
    kpi_previous: date | None = None

    @property
    def detailed(self) -> list[Segment]:
        return [s for s in self.segments if s.customers >= MIN_DETAIL_SIZE]

    @property
    def small(self) -> list[Segment]:
        return [s for s in self.segments if s.customers < MIN_DETAIL_SIZE]

    @property
    def small_ids(self) -> list[int]:
        return [s.segment_id for s in self.small]

    @property
    def small_customers(self) -> int:
        return sum(s.customers for s in self.small)

    population_known: dict[str, int] = field(default_factory=dict)  # age / income -> customers with the value

    def segment(self, segment_id: int) -> Segment:
        return next(s for s in self.segments if s.segment_id == segment_id)

    @property
    def value_tier_scale(self) -> tuple[ValueTier, ...]:
        """The value tiers the table uses, highest first: the lowest is "at risk" only when the orders carry dates
        (rfm_known is the same test, assets/segments/value_tiers.orders_have_dates)."""
        return value_tier_scale(self.rfm_known)

    def shop_has(self, profile_field: str) -> bool:
        """Some customer has the value (per segment coverage is known): otherwise the export simply lacks the
        field, and saying "unknown" for every segment would be noise."""
        return any(s.known_of(profile_field) for s in self.segments)

    def category(self, code: str, language: str) -> str:
        zh, en = category_label(code, self.category_labels)
        return zh if language == "zh" else en

    def group_name(self, segment_id: int | None, language: str, missing: dict[str, str] | None = None) -> str:
        """Name of a segment id in the size, migration and history charts (pooled and vanished ids included)."""
        if segment_id is None:
            return (missing or NEW_NAME)[language]
        if segment_id == OTHER_ID:
            return OTHER_NAME[language]
        zh, en = self.names.get(segment_id, (f"#{segment_id}", f"#{segment_id}"))
        return zh if language == "zh" else en


def _has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return table_exists(con, f"{schema}.{table}")


def _ids(ids: list[int]) -> str:
    """A literal id list for SQL (ints only)."""
    return "(" + ",".join(str(int(i)) for i in ids) + ")" if ids else "(NULL)"


def pooled(column: str, small_ids: list[int]) -> str:
    """SQL mapping the ids of small segments onto OTHER_ID."""
    return f"CASE WHEN {column} IN {_ids(small_ids)} THEN {OTHER_ID} ELSE {column} END"


BOX_COLUMNS = ("age", "income")
BOX_STATS = ("n", "q1", "median", "q3", "lower", "upper")


def box_sql(columns: list[str], ids: str) -> str:
    """Box statistics per detailed segment of each column in `columns`, as `<column>_<stat>` for the stats of
    BOX_STATS; lower and upper are the whiskers (the furthest values within 1.5 IQR of the box). One join of
    the features with the segments for every column: 0.57 s of CPU at L instead of 0.73 s for one query per column.
    A segment with no value of a column has `<column>_n` = 0."""
    values = ", ".join(f"f.{c}::DOUBLE AS {c}" for c in columns)
    stats = ",\n       ".join(f"count({c}) AS {c}_n, quantile_cont({c}, 0.25) AS {c}_q1, median({c}) AS {c}_median, "
                              f"quantile_cont({c}, 0.75) AS {c}_q3" for c in columns)
    whiskers = ",\n       ".join(
        f"min(v.{c}) FILTER (WHERE v.{c} >= q.{c}_q1 - 1.5 * (q.{c}_q3 - q.{c}_q1)) AS {c}_lower, "
        f"max(v.{c}) FILTER (WHERE v.{c} <= q.{c}_q3 + 1.5 * (q.{c}_q3 - q.{c}_q1)) AS {c}_upper" for c in columns)
    return f"""
WITH v AS (
    SELECT s.segment_id, {values}
    FROM features.customer_features f JOIN segments.customer_segments s USING (customer_id)
    WHERE s.segment_id IN {ids}),
q AS (SELECT segment_id, {stats}
      FROM v GROUP BY segment_id)
SELECT q.*, {whiskers}
FROM q JOIN v USING (segment_id) GROUP BY ALL ORDER BY q.segment_id"""


def _box_of(stats: pl.DataFrame, column: str) -> pl.DataFrame:
    """segment_id, n, q1, median, q3, lower, upper of one column, for the segments where at least
    MIN_PROFILE_SUPPORT customers have a value of it: a box of one person's age is that person's age."""
    return (stats.select("segment_id", *[pl.col(f"{column}_{stat}").alias(stat) for stat in BOX_STATS])
            .filter(pl.col("n") >= MIN_PROFILE_SUPPORT))


def _segment(r: dict) -> Segment:
    """A segment_profiles row; medians from fewer than MIN_PROFILE_SUPPORT members are dropped here, so no part of
    the report (cards, sections, strategies) can cite them."""
    known = {f: r.get(f"{f}_known") for f in PROFILE_FIELDS}
    median = {c: r[f"median_{c}"] if known[c] is None or known[c] >= MIN_PROFILE_SUPPORT else None
              for c in ("age", "income")}
    return Segment(r["segment_id"], r["segment_name_zh"], r["segment_name_en"], r["name_source"], r["archetype"],
                   int(r["customers"]), float(r["share"]), median["age"], median["income"], r["avg_orders"],
                   r["avg_spend"], r.get("female_share"), r.get("home_owner_share"), known,
                   tuple(unlabelled_from_evidence(r.get("name_evidence"))))


# Orders per payment method for each segment and for all customers, from one join of the orders with the segments
# (GROUPING SETS): 0.54 s of CPU at L instead of 0.94 s for two queries. `share` is within the segment, or within
# all customers for the rows where `overall` is true (segment_id NULL).
PAYMENTS_SQL = """
SELECT s.segment_id, lower(o.payment_method) AS method, count(*) AS orders,
       count(*) / sum(count(*)) OVER (PARTITION BY grouping(s.segment_id), s.segment_id) AS share,
       grouping(s.segment_id) = 1 AS overall
FROM staging.orders o JOIN segments.customer_segments s USING (customer_id)
WHERE o.payment_method IS NOT NULL
GROUP BY GROUPING SETS ((s.segment_id, lower(o.payment_method)), (lower(o.payment_method)))"""

# Customers per value tier and per RFM tier of each detailed segment, from one join (GROUPING SETS): 0.20 s of CPU
# at L instead of 0.37 s for one query per kind. Customers without a tier of a kind are left out of its shares.
TIERS_SQL = """
SELECT s.segment_id, CASE WHEN grouping(t.value_tier_key) = 0 THEN 'value' ELSE 'rfm' END AS kind,
       coalesce(t.value_tier_key, t.rfm_tier_key) AS tier_key,
       CASE WHEN grouping(t.value_tier_key) = 0 THEN any_value(t.value_tier_zh) ELSE any_value(t.rfm_tier_zh) END
           AS tier_zh,
       CASE WHEN grouping(t.value_tier_key) = 0 THEN any_value(t.value_tier_en) ELSE any_value(t.rfm_tier_en) END
           AS tier_en,
       count(*) AS customers,
       count(*) / sum(count(*)) OVER (PARTITION BY grouping(t.value_tier_key), s.segment_id) AS share
FROM segments.customer_value_tiers t JOIN segments.customer_segments s USING (customer_id)
WHERE s.segment_id IN {ids}
GROUP BY GROUPING SETS ((s.segment_id, t.value_tier_key), (s.segment_id, t.rfm_tier_key))
HAVING coalesce(t.value_tier_key, t.rfm_tier_key) IS NOT NULL"""


CATEGORY_COUNT_SQL = "SELECT count(DISTINCT category) FROM staging.order_lines WHERE category IS NOT NULL"


def load_report_data(con: duckdb.DuckDBPyConnection, category_labels: dict | None = None,
                     has_categories: bool = True) -> ReportData:
    profiles = con.execute("""
        SELECT p.*, c.archetype FROM segments.segment_profiles p
        LEFT JOIN segments.segment_catalog c USING (segment_id) ORDER BY p.segment_id""").pl()
    segments = [_segment(r) for r in profiles.iter_rows(named=True)]
    detailed_ids = [s.segment_id for s in segments if s.customers >= MIN_DETAIL_SIZE]
    ids = _ids(detailed_ids)

    columns = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'features' "
        "AND table_name = 'customer_features'").fetchall()}
    present = [c for c in BOX_COLUMNS if c in columns]
    population_median = dict.fromkeys(BOX_COLUMNS)
    population_known = dict.fromkeys(BOX_COLUMNS, 0)
    box = {column: pl.DataFrame() for column in BOX_COLUMNS}
    if present:
        row = con.execute(f"SELECT {', '.join(f'median({c}), count({c})' for c in present)} "
                          "FROM features.customer_features").fetchone()
        for i, column in enumerate(present):
            median, known = row[2 * i], row[2 * i + 1]
            population_known[column] = known
            population_median[column] = median if known >= MIN_PROFILE_SUPPORT else None
        stats = con.execute(box_sql(present, ids)).pl()
        box.update({column: _box_of(stats, column) for column in present})

    affinity = con.execute(f"SELECT * FROM segments.segment_category_affinity WHERE segment_id IN {ids} "
                           "ORDER BY segment_id, category").pl()
    features = con.execute(f"SELECT * FROM segments.segment_features WHERE segment_id IN {ids}").pl()

    orders_by_method = con.execute(PAYMENTS_SQL).pl()
    payments = (orders_by_method.filter(~pl.col("overall") & pl.col("segment_id").is_in(detailed_ids))
                .drop("overall").sort("segment_id", "method"))
    payments_overall = (orders_by_method.filter(pl.col("overall")).select("method", "orders", "share")
                        .sort(["orders", "method"], descending=[True, False]))

    tier_rows = con.execute(TIERS_SQL.format(ids=ids)).pl()
    tiers = {kind: tier_rows.filter(pl.col("kind") == kind).drop("kind").sort("segment_id", "tier_key")
             for kind in ("value", "rfm")}

    value_tier_overall = dict(con.execute(
        "SELECT value_tier_key, count(*) / sum(count(*)) OVER () FROM segments.customer_value_tiers "
        "GROUP BY 1").fetchall())
    rfm_known = con.execute("SELECT count(rfm_tier_key) > 0 FROM segments.customer_value_tiers").fetchone()[0]

    latest = con.execute("SELECT run_id FROM segments.model_runs ORDER BY fitted_at DESC LIMIT 1").fetchone()
    model_runs = (con.execute("SELECT * FROM segments.model_runs WHERE run_id = ? ORDER BY k", [latest[0]]).pl()
                  if latest else pl.DataFrame())

    migration, migration_run, previous_date, latest_date = pl.DataFrame(), None, None, None
    sizes = pl.DataFrame(schema={"run_id": pl.String, "run_date": pl.Datetime, "segment_id": pl.Int32,
                                 "customers": pl.Int64})
    if _has_table(con, "segments", "segment_migration"):
        row = con.execute("SELECT run_id, run_date FROM segments.segment_migration "
                          "ORDER BY run_date DESC LIMIT 1").fetchone()
        if row:
            migration_run, latest_date = row
            migration = con.execute("SELECT * FROM segments.segment_migration WHERE run_id = ? "
                                    "ORDER BY from_segment_id NULLS FIRST, to_segment_id NULLS FIRST",
                                    [migration_run]).pl()
            previous_date = con.execute("SELECT max(run_date) FROM segments.segment_migration WHERE run_date < ?",
                                        [latest_date]).fetchone()[0]
            # Segment sizes per run; in every run, segments below the threshold are pooled.
            sizes = con.execute(f"""
                WITH per_run AS (
                    SELECT run_id, run_date, to_segment_id AS segment_id, sum(customers) AS customers
                    FROM segments.segment_migration WHERE to_segment_id IS NOT NULL GROUP BY ALL)
                SELECT run_id, run_date,
                       CASE WHEN customers < {MIN_DETAIL_SIZE} THEN {OTHER_ID} ELSE segment_id END AS segment_id,
                       sum(customers)::BIGINT AS customers
                FROM per_run GROUP BY ALL ORDER BY run_date, segment_id""").pl()
    names = {sid: (zh, en) for sid, zh, en in con.execute(
        "SELECT segment_id, segment_name_zh, segment_name_en FROM segments.segment_catalog").fetchall()}
    for s in segments:
        names[s.segment_id] = (s.name_zh, s.name_en)

    predictive = load_predictive(con, detailed_ids)
    return ReportData(
        **predictive, **load_weekly(con, detailed_ids),
        campaigns=load_campaigns(con),
        audiences=load_audience_summary(con),
        segments=segments,
        n_customers=sum(s.customers for s in segments),
        model_version=profiles.get_column("model_version")[0] if profiles.height else None,
        assigned_at=profiles.get_column("assigned_at")[0] if profiles.height else None,
        box=box, population_median=population_median, population_known=population_known, affinity=affinity,
        features=features,
        payments=payments, payments_overall=payments_overall,
        value_tiers=tiers["value"], rfm_tiers=tiers["rfm"], value_tier_overall=value_tier_overall,
        rfm_known=bool(rfm_known), model_runs=model_runs,
        migration=migration, migration_run=migration_run, previous_run_date=previous_date,
        latest_run_date=latest_date, sizes=sizes, names=names, category_labels=dict(category_labels or {}),
        has_categories=has_categories,
        category_count=con.execute(CATEGORY_COUNT_SQL).fetchone()[0] if has_categories else 0,
    )


def _latest(con: duckdb.DuckDBPyConnection, table: str, time_column: str) -> dict | None:
    if not _has_table(con, "predict", table):
        return None
    frame = con.execute(f"SELECT * FROM predict.{table} ORDER BY {time_column} DESC LIMIT 1").pl()
    return frame.row(0, named=True) if frame.height else None


def load_predictive(con: duckdb.DuckDBPyConnection, detailed_ids: list[int]) -> dict:
    """Churn risk, recommendations and customer value for the report: the latest runs and per-segment
    aggregates."""
    ids = _ids(detailed_ids)
    at_risk = (con.execute(AT_RISK_SQL.format(ids=ids)).pl()
               if _has_table(con, "predict", "churn_risk") else pl.DataFrame())
    has_picks = _has_table(con, "predict", "next_category")
    bundles = con.execute(BUNDLE_SQL.format(ids=ids, size=BUNDLE_SIZE)).pl() if has_picks else pl.DataFrame()
    rules = (con.execute("SELECT antecedent, consequent, lift FROM predict.category_rules WHERE lift > 1 "
                         "ORDER BY consequent, antecedent").pl()
             if _has_table(con, "predict", "category_rules") else pl.DataFrame())
    value_run = _latest(con, "customer_value_eval", "evaluated_at")
    value_deciles = (con.execute("SELECT * FROM predict.customer_value_deciles WHERE run_id = ? ORDER BY decile",
                                 [value_run["run_id"]]).pl()
                     if value_run and _has_table(con, "predict", "customer_value_deciles") else pl.DataFrame())
    segment_value = (con.execute(SEGMENT_VALUE_SQL.format(ids=ids)).pl()
                     if _has_table(con, "predict", "customer_value") else pl.DataFrame())
    return {"churn_run": _latest(con, "churn_model_runs", "trained_at"), "at_risk": at_risk,
            "recommendation_eval": _latest(con, "recommendation_eval", "evaluated_at"), "bundles": bundles,
            "rules": rules, "value_run": value_run, "value_deciles": value_deciles, "segment_value": segment_value}


# --- facts: each number with the scalar query that proves it (see assets/report/facts.py) -------------------------

FEATURE_KINDS = {"recency_days": "number", "tenure_days": "number", "n_orders": "decimal", "total_spend": "money",
                 "avg_basket_value": "money", "is_home_owner": "pct", "is_female": "pct", "age": "number",
                 "income": "money"}


def _one(frame: pl.DataFrame, column: str, **where) -> object:
    for key, value in where.items():
        frame = frame.filter(pl.col(key) == value)
    return frame.get_column(column)[0] if frame.height else None


def f_customers(book: FactBook, data: ReportData, segment_id: int) -> FactRef:
    return book.add(f"seg{segment_id}.customers", "count", data.segment(segment_id).customers,
                    "SELECT customers FROM segments.segment_profiles WHERE segment_id = ?", [segment_id])


def f_share(book: FactBook, data: ReportData, segment_id: int) -> FactRef:
    return book.add(f"seg{segment_id}.share", "pct", data.segment(segment_id).share,
                    "SELECT share FROM segments.segment_profiles WHERE segment_id = ?", [segment_id])


def f_total(book: FactBook, data: ReportData) -> FactRef:
    return book.add("all.customers", "count", data.n_customers, "SELECT sum(customers) FROM segments.segment_profiles")


def f_segments(book: FactBook, data: ReportData) -> FactRef:
    return book.add("all.segments", "count", len(data.segments), "SELECT count(*) FROM segments.segment_profiles")


def f_small_customers(book: FactBook, data: ReportData) -> FactRef:
    return book.add("small.customers", "count", data.small_customers,
                    f"SELECT coalesce(sum(customers), 0) FROM segments.segment_profiles "
                    f"WHERE customers < {MIN_DETAIL_SIZE}")


def f_small_share(book: FactBook, data: ReportData) -> FactRef:
    return book.add("small.share", "pct", sum(s.share for s in data.small),
                    "SELECT coalesce(sum(share), 0) FROM segments.segment_profiles "
                    f"WHERE customers < {MIN_DETAIL_SIZE}")


def f_min_size(book: FactBook) -> FactRef:
    return book.add("param.min_detail_size", "param", MIN_DETAIL_SIZE, None)


def f_avg(book: FactBook, data: ReportData, segment_id: int, column: str) -> FactRef:
    kind = "decimal" if column == "avg_orders" else "money"
    return book.add(f"seg{segment_id}.{column}", kind, getattr(data.segment(segment_id), column),
                    f"SELECT {column} FROM segments.segment_profiles WHERE segment_id = ?", [segment_id])


def f_median(book: FactBook, data: ReportData, segment_id: int, column: str) -> FactRef:
    return book.add(f"seg{segment_id}.median_{column}", FEATURE_KINDS[column],
                    getattr(data.segment(segment_id), f"median_{column}"),
                    f"SELECT median_{column} FROM segments.segment_profiles WHERE segment_id = ?", [segment_id])


# Profile shares: the segment_profiles column behind each share the report prints ("male" is one minus female).
SHARE_COLUMNS = {"female": ("female_share", "female_share"), "male": ("female_share", "1 - female_share"),
                 "home_owner": ("home_owner_share", "home_owner_share")}


def f_profile_share(book: FactBook, data: ReportData, segment_id: int, which: str) -> FactRef:
    attribute, expression = SHARE_COLUMNS[which]
    value = getattr(data.segment(segment_id), attribute)
    return book.add(f"seg{segment_id}.{which}_share", "pct", None if value is None else
                    (1 - value if which == "male" else value),
                    f"SELECT {expression} FROM segments.segment_profiles WHERE segment_id = ?", [segment_id])


def f_known(book: FactBook, data: ReportData, segment_id: int, profile_field: str) -> FactRef:
    return book.add(f"seg{segment_id}.{profile_field}_known", "count", data.segment(segment_id).known_of(profile_field),
                    f"SELECT {profile_field}_known FROM segments.segment_profiles WHERE segment_id = ?", [segment_id])


def f_population_known(book: FactBook, data: ReportData, column: str) -> FactRef:
    return book.add(f"all.{column}_known", "count", data.population_known.get(column),
                    f"SELECT count({column}) FROM features.customer_features")


def f_population_median(book: FactBook, data: ReportData, column: str) -> FactRef:
    return book.add(f"all.median_{column}", FEATURE_KINDS[column], data.population_median[column],
                    f"SELECT median({column}) FROM features.customer_features")


def f_quartile(book: FactBook, data: ReportData, segment_id: int, column: str, which: str) -> FactRef:
    q = {"q1": 0.25, "q3": 0.75}[which]
    return book.add(f"seg{segment_id}.{column}.{which}", FEATURE_KINDS[column],
                    _one(data.box[column], which, segment_id=segment_id),
                    f"SELECT quantile_cont(f.{column}::DOUBLE, {q}) FROM features.customer_features f "
                    "JOIN segments.customer_segments s USING (customer_id) WHERE s.segment_id = ?", [segment_id])


def f_lift(book: FactBook, data: ReportData, segment_id: int, category: str) -> FactRef:
    return book.add(f"seg{segment_id}.lift.{category}", "lift",
                    _one(data.affinity, "lift", segment_id=segment_id, category=category),
                    "SELECT lift FROM segments.segment_category_affinity WHERE segment_id = ? AND category = ?",
                    [segment_id, category])


def f_rate(book: FactBook, data: ReportData, segment_id: int, category: str) -> FactRef:
    return book.add(f"seg{segment_id}.rate.{category}", "pct",
                    _one(data.affinity, "segment_rate", segment_id=segment_id, category=category),
                    "SELECT segment_rate FROM segments.segment_category_affinity "
                    "WHERE segment_id = ? AND category = ?", [segment_id, category])


def f_population_rate(book: FactBook, data: ReportData, category: str) -> FactRef:
    return book.add(f"all.rate.{category}", "pct", _one(data.affinity, "population_rate", category=category),
                    "SELECT any_value(population_rate) FROM segments.segment_category_affinity WHERE category = ?",
                    [category])


def f_feature_mean(book: FactBook, data: ReportData, segment_id: int, feature: str) -> FactRef:
    return book.add(f"seg{segment_id}.mean.{feature}", FEATURE_KINDS.get(feature, "decimal"),
                    _one(data.features, "segment_mean", segment_id=segment_id, feature=feature),
                    "SELECT segment_mean FROM segments.segment_features WHERE segment_id = ? AND feature = ?",
                    [segment_id, feature])


def f_feature_population_mean(book: FactBook, data: ReportData, feature: str) -> FactRef:
    return book.add(f"all.mean.{feature}", FEATURE_KINDS.get(feature, "decimal"),
                    _one(data.features, "population_mean", feature=feature),
                    "SELECT any_value(population_mean) FROM segments.segment_features WHERE feature = ?", [feature])


def payment_share(data: ReportData, segment_id: int, method: str) -> float:
    value = _one(data.payments, "share", segment_id=segment_id, method=method)
    return 0.0 if value is None else float(value)


def f_payment_share(book: FactBook, data: ReportData, segment_id: int, method: str) -> FactRef:
    return book.add(f"seg{segment_id}.pay.{method}", "pct", payment_share(data, segment_id, method),
                    "SELECT count(*) FILTER (WHERE lower(o.payment_method) = ?) / count(*) "
                    "FROM staging.orders o JOIN segments.customer_segments s USING (customer_id) "
                    "WHERE o.payment_method IS NOT NULL AND s.segment_id = ?", [method, segment_id])


def f_payment_lift(book: FactBook, data: ReportData, segment_id: int, method: str) -> FactRef:
    """How over-represented a method is in the segment: its share of the segment's orders over its share of all."""
    overall = _one(data.payments_overall, "share", method=method)
    value = payment_share(data, segment_id, method) / overall if overall else None
    return book.add(f"seg{segment_id}.pay_lift.{method}", "lift", value,
                    "SELECT (count(*) FILTER (WHERE lower(o.payment_method) = $1 AND s.segment_id = $2) "
                    "/ count(*) FILTER (WHERE s.segment_id = $2)) "
                    "/ (count(*) FILTER (WHERE lower(o.payment_method) = $1) / count(*)) "
                    "FROM staging.orders o JOIN segments.customer_segments s USING (customer_id) "
                    "WHERE o.payment_method IS NOT NULL", [method, segment_id])


def f_payment_overall(book: FactBook, data: ReportData, method: str) -> FactRef:
    return book.add(f"all.pay.{method}", "pct", _one(data.payments_overall, "share", method=method),
                    "SELECT count(*) FILTER (WHERE lower(o.payment_method) = ?) / count(*) "
                    "FROM staging.orders o JOIN segments.customer_segments s USING (customer_id) "
                    "WHERE o.payment_method IS NOT NULL", [method])


def tier_share(data: ReportData, segment_id: int, kind: str, keys: list[str]) -> float | None:
    frame = (data.rfm_tiers if kind == "rfm" else data.value_tiers).filter(pl.col("segment_id") == segment_id)
    if frame.is_empty():
        return None
    return float(frame.filter(pl.col("tier_key").is_in(keys)).get_column("share").sum())


def f_tier_share(book: FactBook, data: ReportData, segment_id: int, kind: str, keys: list[str]) -> FactRef:
    return book.add(f"seg{segment_id}.{kind}_tiers.{'+'.join(keys)}", "pct", tier_share(data, segment_id, kind, keys),
                    f"SELECT count(*) FILTER (WHERE list_contains(?, t.{kind}_tier_key)) / count(t.{kind}_tier_key) "
                    "FROM segments.customer_value_tiers t JOIN segments.customer_segments s USING (customer_id) "
                    "WHERE s.segment_id = ?", [list(keys), segment_id])


FEATURE_LABELS = {
    "recency_days": ("距上次购买天数", "days since last order"),
    "tenure_days": ("首次购买至今天数", "days since first order"),
    "n_orders": ("人均订单数", "orders per customer"),
    "total_spend": ("人均消费额", "spend per customer"),
    "avg_basket_value": ("平均客单价", "average basket"),
    "is_home_owner": ("有房比例", "home owners"),
    "is_female": ("女性比例", "women"),
}
METHOD_LABELS = {"card": ("刷卡", "card"), "cash": ("现金", "cash"), "mobile": ("移动支付", "mobile"),
                 "cheque": ("支票", "cheque")}


def feature_label(feature: str, language: str) -> str:
    zh, en = FEATURE_LABELS.get(feature, (feature, feature))
    return zh if language == "zh" else en


def method_label(method: str, language: str) -> str:
    zh, en = METHOD_LABELS.get(method.lower(), (method.upper(), method.lower()))
    return zh if language == "zh" else en
