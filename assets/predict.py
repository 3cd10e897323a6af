"""Predictive layer: churn risk and next-category recommendations per customer, judged on time they never saw.

Published in the `predict` schema (documented in warehouse/README.md), refreshed with every run:

Churn risk -- the probability that a customer makes no purchase in the next `predict.horizon_days` (H) days.
- Time split, no leakage. With `end` the midnight after the last order day, the *training cutoff* is end - 2H and the
  *evaluation cutoff* end - H. Features as of a cutoff come only from orders before it (`churn_features` filters
  first); labels come only from the H days after it. The model trained at the training cutoff (labels: the window
  up to the evaluation cutoff) is judged on the evaluation window [end - H, end), which it never saw: AUC, Brier
  score and calibration are recorded in `predict.churn_model_runs` and `predict.churn_calibration`.
- The published `predict.churn_risk` comes from the same recipe refitted one horizon later (features as of the
  evaluation cutoff, labels from the evaluation window) and applied to features as of `end`: the freshest
  behaviour, with the held-out figures as the honest estimate of how well the recipe ranks.
- Model: scikit-learn HistGradientBoostingClassifier, calibrated by CalibratedClassifierCV (isotonic, or sigmoid
  below ISOTONIC_FROM training rows). Features are behavioural (recency, recent and overall frequency, gaps
  between orders and whether they are widening, basket value) plus age and income from features.customer_features.

Next-category recommendations -- the `predict.top_n` categories each customer has not bought yet.
- Rules: "customers who bought A also bought B", mined over customers (support, confidence, lift) from
  staging.order_lines, kept above `predict.min_support` and `predict.min_confidence` (`predict.category_rules`).
- Score of an unbought category c for a customer: the sum of ln(lift(a -> c)) over the kept rules from the
  categories a the customer bought. Ties, and customers without rules, fall back on popularity (most customers).
- Judged on the same held-out window: rules and recommendations from the baskets before the evaluation cutoff;
  a hit when a customer's first purchase of a category in the window is one of the recommendations (hit-rate@N
  over the customers who bought some new category there), against recommending the most popular unbought
  categories (`predict.recommendation_eval`). The published recommendations use every basket.

Sources without order dates (the wide seed table): no past and future to split, so churn is not trained
(`churn_risk` stays NULL, the run row says why) and recommendations are built from every basket without an
evaluation (the evaluation row says why). Nothing fails.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import dagster as dg
import duckdb
import numpy as np
import polars as pl
from scipy import sparse
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import brier_score_loss, roc_auc_score

from assets.ingest import preview_markdown
from pipelines.config import PredictSettings
from pipelines.resources import SourceResource, WarehouseResource

SCHEMA = "predict"
DAY_SECONDS = 86_400.0
CALIBRATION_BINS = 10
ISOTONIC_FROM = 1_000  # isotonic calibration needs enough rows; below this, sigmoid (Platt) calibration
CALIBRATION_FOLDS = 3
SCORE_CHUNK_ROWS = 50_000  # customers scored per block: keeps (customers x categories) matrices small
MODEL_NAME = "HistGradientBoostingClassifier + CalibratedClassifierCV"
PROFILE_FEATURES = ["age", "income"]
BEHAVIOUR_FEATURES = [
    "recency_days", "orders_last_30d", "orders_last_14d", "orders_per_day", "mean_gap_days", "last_gap_days",
    "gap_trend", "overdue_ratio", "recency_over_max_gap", "avg_basket_value",
]
SOURCE_RULES, SOURCE_POPULARITY = "rules", "popularity"
# Run statuses (the report words each one in both languages).
TRAINED, EVALUATED = "trained", "evaluated"
NO_DATES, SHORT_HISTORY, ONE_CLASS, NO_NEW_PURCHASES = "no_dates", "short_history", "one_class", "no_new_purchases"


# --- the time split ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TimeSplit:
    """Cutoffs of one run. Orders before a cutoff are its past; the H days from it are its label window."""

    data_start: datetime  # midnight of the first order day
    data_end: datetime  # midnight after the last order day: scores are as of here
    horizon_days: int

    @property
    def horizon(self) -> timedelta:
        return timedelta(days=self.horizon_days)

    @property
    def eval_cutoff(self) -> datetime:
        return self.data_end - self.horizon

    @property
    def train_cutoff(self) -> datetime:
        return self.data_end - 2 * self.horizon

    @property
    def span_days(self) -> int:
        return (self.data_end - self.data_start).days


def plan_time_split(first_order: datetime | None, last_order: datetime | None, settings: PredictSettings) \
        -> tuple[TimeSplit | None, str | None, str | None]:
    """The split, and why churn (second) or the recommendation evaluation (third) cannot run; None when they can.

    Churn needs min_history_days before the training cutoff plus two horizons; the evaluation of recommendations
    needs min_history_days before the evaluation cutoff plus one horizon.
    """
    if first_order is None or last_order is None:
        reason = "the orders carry no dates, so there is no past to learn from and no later window to judge on"
        return None, reason, reason
    start = datetime.combine(first_order.date(), datetime.min.time())
    end = datetime.combine(last_order.date(), datetime.min.time()) + timedelta(days=1)
    split = TimeSplit(start, end, settings.horizon_days)
    history = settings.min_history_days
    churn_needs, eval_needs = history + 2 * settings.horizon_days, history + settings.horizon_days
    covered = f"the orders cover {split.span_days} days"
    churn_reason = None if split.span_days >= churn_needs else (
        f"{covered}; churn needs {churn_needs} (predict.min_history_days {history} + two horizons of "
        f"{settings.horizon_days})")
    eval_reason = None if split.span_days >= eval_needs else (
        f"{covered}; judging recommendations needs {eval_needs} (predict.min_history_days {history} + one horizon "
        f"of {settings.horizon_days})")
    return split, churn_reason, eval_reason


# --- churn: features, labels, model ----------------------------------------------------------------------------

def churn_features(orders: pl.DataFrame, profiles: pl.DataFrame, cutoff: datetime) -> pl.DataFrame:
    """Features as of `cutoff`, one row per customer with an order before it, sorted by customer_id.

    `orders` has customer_id, order_ts, order_amount; `profiles` has customer_id and PROFILE_FEATURES (static).
    The first step drops every order at or after the cutoff, so nothing that happens later can reach a feature.
    """
    past = orders.filter(pl.col("order_ts") < cutoff)

    def days_before_cutoff(column: pl.Expr) -> pl.Expr:
        return (pl.lit(cutoff) - column).dt.total_seconds() / DAY_SECONDS

    gaps = (past.select("customer_id", "order_ts").sort("customer_id", "order_ts")
            .with_columns((pl.col("order_ts").diff().over("customer_id").dt.total_seconds() / DAY_SECONDS)
                          .alias("gap"))
            .group_by("customer_id")
            .agg(pl.col("gap").drop_nulls().last().alias("last_gap_days"),
                 pl.col("gap").drop_nulls().max().alias("max_gap_days")))
    per_customer = past.group_by("customer_id").agg(
        days_before_cutoff(pl.col("order_ts").max()).alias("recency_days"),
        days_before_cutoff(pl.col("order_ts").min()).alias("tenure_days"),
        pl.len().alias("n_orders"),
        (pl.col("order_ts") >= cutoff - timedelta(days=30)).sum().alias("orders_last_30d"),
        (pl.col("order_ts") >= cutoff - timedelta(days=14)).sum().alias("orders_last_14d"),
        pl.col("order_amount").mean().alias("avg_basket_value"),
    )
    features = (
        per_customer.join(gaps, on="customer_id", how="left")
        # The mean gap between consecutive orders: first to last order, over the gaps between them.
        .with_columns(pl.when(pl.col("n_orders") > 1)
                      .then((pl.col("tenure_days") - pl.col("recency_days")) / (pl.col("n_orders") - 1))
                      .alias("mean_gap_days"))
        .with_columns(
            (pl.col("n_orders") / pl.col("tenure_days").clip(lower_bound=1.0)).alias("orders_per_day"),
            # Widening gaps are the early warning: the last gap against the customer's usual one.
            (pl.col("last_gap_days") / pl.col("mean_gap_days")).alias("gap_trend"),
            (pl.col("recency_days") / pl.col("mean_gap_days")).alias("overdue_ratio"),
            (pl.col("recency_days") / pl.col("max_gap_days")).alias("recency_over_max_gap"),
        )
        .join(profiles.select("customer_id", *PROFILE_FEATURES), on="customer_id", how="left")
    )
    # One order: no gap yet (NULL, which the gradient boosting handles). A zero gap (two orders in the same
    # second) divides by zero: treat it as unknown too.
    finite = [pl.when(pl.col(c).is_infinite() | pl.col(c).is_nan()).then(None).otherwise(pl.col(c)).alias(c)
              for c in ("gap_trend", "overdue_ratio", "recency_over_max_gap")]
    return features.with_columns(finite).select("customer_id", *BEHAVIOUR_FEATURES, *PROFILE_FEATURES) \
        .with_columns(pl.col(BEHAVIOUR_FEATURES + PROFILE_FEATURES).cast(pl.Float64)).sort("customer_id")


def churn_labels(orders: pl.DataFrame, customer_ids: pl.Series, start: datetime, horizon: timedelta) -> np.ndarray:
    """1 where the customer has no order in [start, start + horizon), else 0, aligned to `customer_ids`."""
    buyers = orders.filter((pl.col("order_ts") >= start) & (pl.col("order_ts") < start + horizon)) \
        .get_column("customer_id").unique()
    return (~customer_ids.is_in(buyers.implode())).cast(pl.Int8).to_numpy()


def build_churn_model(rows: int, seed: int) -> CalibratedClassifierCV:
    boosting = HistGradientBoostingClassifier(learning_rate=0.05, max_iter=200, max_leaf_nodes=15,
                                              l2_regularization=1.0, early_stopping=False, random_state=seed)
    return CalibratedClassifierCV(boosting, method="isotonic" if rows >= ISOTONIC_FROM else "sigmoid",
                                  cv=CALIBRATION_FOLDS)


def _matrix(features: pl.DataFrame) -> np.ndarray:
    return features.select(BEHAVIOUR_FEATURES + PROFILE_FEATURES).to_numpy().astype(np.float64)


def calibration_table(labels: np.ndarray, predicted: np.ndarray, bins: int = CALIBRATION_BINS) -> pl.DataFrame:
    """Equal-width bins of the predicted probability: customers, mean predicted, observed churn rate (empty bins
    are left out)."""
    index = np.minimum((predicted * bins).astype(np.int64), bins - 1)
    rows = []
    for b in range(bins):
        members = index == b
        if members.any():
            rows.append((b + 1, b / bins, (b + 1) / bins, int(members.sum()), float(predicted[members].mean()),
                         float(labels[members].mean())))
    return pl.DataFrame(rows, schema={"bin": pl.Int32, "lower": pl.Float64, "upper": pl.Float64,
                                      "customers": pl.Int64, "mean_predicted": pl.Float64,
                                      "observed_rate": pl.Float64}, orient="row")


def calibration_error(table: pl.DataFrame) -> float:
    """Expected calibration error: |mean predicted - observed| per bin, weighted by customers."""
    total = table.get_column("customers").sum()
    gap = (table.get_column("mean_predicted") - table.get_column("observed_rate")).abs()
    return float((gap * table.get_column("customers")).sum() / total)


@dataclass
class ChurnResult:
    run: dict  # one row of predict.churn_model_runs (without run_id and trained_at)
    calibration: pl.DataFrame  # rows of predict.churn_calibration (without run_id)
    scores: pl.DataFrame  # customer_id, churn_risk (customers with an order before the scoring time)


def _sample(rows: int, limit: int, seed: int) -> np.ndarray:
    """Row indices for training: all of them, or a seeded sample of `limit` (sorted, so order stays stable)."""
    if rows <= limit:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, size=limit, replace=False))


def train_churn(orders: pl.DataFrame, profiles: pl.DataFrame, split: TimeSplit, settings: PredictSettings) \
        -> ChurnResult | str:
    """Train at the training cutoff, judge on the evaluation window, refit one horizon later and score as of the
    end of the data. Returns the reason instead when a window has a single class (nothing to learn or judge)."""
    train = churn_features(orders, profiles, split.train_cutoff)
    train_y = churn_labels(orders, train["customer_id"], split.train_cutoff, split.horizon)
    held_out = churn_features(orders, profiles, split.eval_cutoff)
    held_out_y = churn_labels(orders, held_out["customer_id"], split.eval_cutoff, split.horizon)
    for name, labels in (("training", train_y), ("evaluation", held_out_y)):
        if len(labels) < 2 * CALIBRATION_FOLDS or np.bincount(labels, minlength=2).min() < CALIBRATION_FOLDS:
            return (f"the {name} window has {int(labels.sum())} churned and {int(len(labels) - labels.sum())} "
                    f"retained customers; both classes need at least {CALIBRATION_FOLDS}")
    rows = _sample(len(train_y), settings.train_sample, settings.seed)
    model = build_churn_model(len(rows), settings.seed).fit(_matrix(train)[rows], train_y[rows])
    predicted = model.predict_proba(_matrix(held_out))[:, 1]
    calibration = calibration_table(held_out_y, predicted)

    # The published scores: the same recipe on the most recent labelled window, applied as of the end.
    refit_rows = _sample(len(held_out_y), settings.train_sample, settings.seed)
    scorer = build_churn_model(len(refit_rows), settings.seed).fit(_matrix(held_out)[refit_rows],
                                                                   held_out_y[refit_rows])
    current = churn_features(orders, profiles, split.data_end)
    scores = current.select("customer_id").with_columns(
        pl.Series("churn_risk", scorer.predict_proba(_matrix(current))[:, 1], dtype=pl.Float64))
    run = {
        "status": TRAINED, "reason": None, "model": MODEL_NAME,
        "n_train": len(rows), "n_eval": len(held_out_y),
        "train_churn_rate": float(train_y.mean()), "eval_churn_rate": float(held_out_y.mean()),
        "auc": float(roc_auc_score(held_out_y, predicted)),
        "brier": float(brier_score_loss(held_out_y, predicted)),
        # The Brier score of always forecasting the training churn rate: the bar a useful model clears.
        "brier_baseline": float(brier_score_loss(held_out_y, np.full(len(held_out_y), train_y.mean()))),
        "calibration_error": calibration_error(calibration),
        "n_scored": scores.height,
    }
    return ChurnResult(run, calibration, scores)


# --- recommendations ---------------------------------------------------------------------------------------------

@dataclass
class Purchases:
    """Which customer bought which category (before some cutoff), as a sparse customers x categories matrix."""

    customer_ids: list[str]
    categories: list[str]
    matrix: sparse.csr_matrix  # 1 where bought

    @property
    def customers_with_purchases(self) -> int:
        return int((np.asarray(self.matrix.sum(axis=1)).ravel() > 0).sum())


def purchases(first_purchases: pl.DataFrame, customer_ids: list[str], categories: list[str],
              before: datetime | None = None) -> Purchases:
    """`first_purchases` has customer_id, category, first_ts (NULL without dates); rows of customers outside
    `customer_ids` or categories outside `categories` are ignored. `before`: only purchases before it."""
    rows = first_purchases if before is None else first_purchases.filter(pl.col("first_ts") < before)
    customer_index = pl.DataFrame({"customer_id": customer_ids, "row": np.arange(len(customer_ids))},
                                  schema={"customer_id": pl.String, "row": pl.Int64})
    category_index = pl.DataFrame({"category": categories, "column": np.arange(len(categories))},
                                  schema={"category": pl.String, "column": pl.Int64})
    cells = rows.join(customer_index, on="customer_id").join(category_index, on="category") \
        .unique(["row", "column"])
    matrix = sparse.csr_matrix((np.ones(cells.height), (cells["row"].to_numpy(), cells["column"].to_numpy())),
                               shape=(len(customer_ids), len(categories)))
    return Purchases(customer_ids, categories, matrix)


def mine_rules(bought: Purchases, settings: PredictSettings) -> pl.DataFrame:
    """Single-category rules antecedent -> consequent over customers who bought anything.

    support = share of those customers who bought both; confidence = share of the antecedent's buyers who also
    bought the consequent; lift = confidence / the consequent's share. Kept: support >= min_support and
    confidence >= min_confidence. Sorted by antecedent, then lift (highest first), then consequent.
    """
    buyers = bought.customers_with_purchases
    schema = {"antecedent": pl.String, "consequent": pl.String, "antecedent_customers": pl.Int64,
              "consequent_customers": pl.Int64, "both_customers": pl.Int64, "customers": pl.Int64,
              "support": pl.Float64, "confidence": pl.Float64, "lift": pl.Float64}
    if buyers == 0:
        return pl.DataFrame(schema=schema)
    both = (bought.matrix.T @ bought.matrix).toarray()
    counts = np.diag(both).copy()
    a, c = np.nonzero(both)
    keep = (a != c) & (counts[a] > 0)
    a, c = a[keep], c[keep]
    pair = both[a, c]
    confidence = pair / counts[a]
    rules = pl.DataFrame({
        "antecedent": [bought.categories[i] for i in a], "consequent": [bought.categories[i] for i in c],
        "antecedent_customers": counts[a].astype(np.int64), "consequent_customers": counts[c].astype(np.int64),
        "both_customers": pair.astype(np.int64), "customers": np.full(len(a), buyers, dtype=np.int64),
        "support": pair / buyers, "confidence": confidence, "lift": confidence / (counts[c] / buyers),
    }, schema=schema)
    return (rules.filter((pl.col("support") >= settings.min_support)
                         & (pl.col("confidence") >= settings.min_confidence))
            .sort(["antecedent", "lift", "consequent"], descending=[False, True, False]))


def popularity_order(bought: Purchases) -> np.ndarray:
    """Rank of each category by customers who bought it (0 = most popular; ties by name)."""
    customers = np.asarray(bought.matrix.sum(axis=0)).ravel()
    order = np.lexsort((np.array(bought.categories), -customers))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def _rule_weights(rules: pl.DataFrame, categories: list[str]) -> np.ndarray:
    """categories x categories matrix of ln(lift) for the kept rules (0 where there is no rule)."""
    position = {name: i for i, name in enumerate(categories)}
    weights = np.zeros((len(categories), len(categories)))
    for antecedent, consequent, lift in rules.select("antecedent", "consequent", "lift").iter_rows():
        if antecedent in position and consequent in position:
            weights[position[antecedent], position[consequent]] = np.log(lift)
    return weights


def recommend(bought: Purchases, rules: pl.DataFrame | None, top_n: int) -> pl.DataFrame:
    """Up to top_n unbought categories per customer: customer_id, rank (1 first), category, score, source.

    With `rules`, the score is the sum of ln(lift) of the rules from the customer's categories, highest first, ties
    by popularity; a positive score is a rule-based pick (source 'rules'), others are labelled popularity picks
    (source 'popularity', the score is then the category's share of customers). Without
    rules (the popularity baseline) every pick is by popularity and the score is the share of customers who
    bought the category.
    """
    n_categories = len(bought.categories)
    rank = popularity_order(bought)
    share = np.asarray(bought.matrix.sum(axis=0)).ravel() / max(bought.customers_with_purchases, 1)
    weights = _rule_weights(rules, bought.categories) if rules is not None else None
    frames = []
    for start in range(0, len(bought.customer_ids), SCORE_CHUNK_ROWS):
        block = bought.matrix[start:start + SCORE_CHUNK_ROWS]
        owned = block.toarray() > 0
        score = block @ weights if weights is not None else np.zeros(owned.shape)
        # A negative score (the customer's categories make this one less likely) ranks below no evidence at all.
        score = np.where(owned, -np.inf, score)
        # Highest score first, then the more popular category.
        order = np.lexsort((np.broadcast_to(rank, owned.shape), -score), axis=1)[:, :top_n]
        picked_score = np.take_along_axis(score, order, axis=1)
        rows, ranks = np.nonzero(np.isfinite(picked_score))  # fewer than top_n unbought categories: fewer rows
        categories = order[rows, ranks]
        by_rules = picked_score[rows, ranks] > 0
        frames.append(pl.DataFrame({
            "customer_id": [bought.customer_ids[start + r] for r in rows],
            "rank": (ranks + 1).astype(np.int32),
            "category": [bought.categories[c] for c in categories],
            "score": np.where(by_rules, picked_score[rows, ranks], share[categories]),
            "source": np.where(by_rules, SOURCE_RULES, SOURCE_POPULARITY),
        }, schema={"customer_id": pl.String, "rank": pl.Int32, "category": pl.String, "score": pl.Float64,
                   "source": pl.String}))
    if not frames or n_categories == 0:
        return pl.DataFrame(schema={"customer_id": pl.String, "rank": pl.Int32, "category": pl.String,
                                    "score": pl.Float64, "source": pl.String})
    return pl.concat(frames)


def hit_rate(recommendations: pl.DataFrame, new_purchases: pl.DataFrame) -> tuple[int, int]:
    """(hits, customers evaluated): customers with a new category in the window, and how many of them bought at
    least one recommended category there."""
    evaluated = new_purchases.select("customer_id").unique()
    hits = recommendations.join(new_purchases, on=["customer_id", "category"]).select("customer_id").unique()
    return hits.height, evaluated.height


def evaluate_recommendations(first_purchases: pl.DataFrame, customer_ids: list[str], split: TimeSplit,
                             settings: PredictSettings) -> dict:
    """Rules and recommendations from the purchases before the evaluation cutoff, judged on the categories
    customers bought for the first time in the evaluation window, against the popularity baseline."""
    categories = sorted(first_purchases.filter(pl.col("first_ts") < split.eval_cutoff)["category"].unique())
    past = purchases(first_purchases, customer_ids, categories, before=split.eval_cutoff)
    had_history = pl.Series("customer_id", [customer_ids[i] for i in
                                            np.flatnonzero(np.asarray(past.matrix.sum(axis=1)).ravel() > 0)])
    new = first_purchases.filter((pl.col("first_ts") >= split.eval_cutoff)
                                 & (pl.col("first_ts") < split.eval_cutoff + split.horizon)
                                 & pl.col("customer_id").is_in(had_history.implode())) \
        .select("customer_id", "category")
    rules = mine_rules(past, settings)
    hits, evaluated = hit_rate(recommend(past, rules, settings.top_n), new)
    baseline_hits, _ = hit_rate(recommend(past, None, settings.top_n), new)
    rate = hits / evaluated if evaluated else None
    baseline = baseline_hits / evaluated if evaluated else None
    return {
        "status": EVALUATED if evaluated else NO_NEW_PURCHASES,
        "reason": None if evaluated else "no customer bought a new category in the evaluation window",
        "customers_evaluated": evaluated, "hits": hits, "hit_rate": rate,
        "popularity_hits": baseline_hits, "popularity_hit_rate": baseline,
        "lift_over_popularity": rate / baseline if rate is not None and baseline else None,
        "rules_used": rules.height,
    }


# --- reading and writing the warehouse ------------------------------------------------------------------------------

RUN_TABLES = {
    "churn_model_runs": """
        run_id VARCHAR, trained_at TIMESTAMP, status VARCHAR, reason VARCHAR, model VARCHAR, horizon_days INTEGER,
        min_history_days INTEGER,
        data_start TIMESTAMP, data_end TIMESTAMP, train_cutoff TIMESTAMP, eval_cutoff TIMESTAMP,
        n_train BIGINT, n_eval BIGINT, train_churn_rate DOUBLE, eval_churn_rate DOUBLE, auc DOUBLE, brier DOUBLE,
        brier_baseline DOUBLE, calibration_error DOUBLE, min_auc DOUBLE, max_calibration_error DOUBLE,
        high_risk_threshold DOUBLE, n_scored BIGINT, features VARCHAR[]""",
    "churn_calibration": """
        run_id VARCHAR, bin INTEGER, lower DOUBLE, upper DOUBLE, customers BIGINT, mean_predicted DOUBLE,
        observed_rate DOUBLE""",
    "recommendation_eval": """
        run_id VARCHAR, evaluated_at TIMESTAMP, status VARCHAR, reason VARCHAR, top_n INTEGER, horizon_days INTEGER,
        min_history_days INTEGER, data_start TIMESTAMP, data_end TIMESTAMP,
        eval_cutoff TIMESTAMP, window_end TIMESTAMP, customers_evaluated BIGINT, hits BIGINT, hit_rate DOUBLE,
        popularity_hits BIGINT, popularity_hit_rate DOUBLE, lift_over_popularity DOUBLE,
        min_lift_over_popularity DOUBLE, rules_used BIGINT""",
}


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The schema and the run tables (history, appended to); the per-customer tables are replaced each run."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for table, columns in RUN_TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{table} ({columns})")


def _insert_row(con: duckdb.DuckDBPyConnection, table: str, row: dict) -> None:
    columns = ", ".join(row)
    con.execute(f"INSERT INTO {SCHEMA}.{table} ({columns}) VALUES ({', '.join('?' for _ in row)})", list(row.values()))


def _replace(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, order_by: str) -> None:
    arrow_frame = frame.to_arrow()  # noqa: F841 - read by DuckDB's replacement scan
    con.execute(f"CREATE OR REPLACE TABLE {SCHEMA}.{table} AS SELECT * FROM arrow_frame ORDER BY {order_by}")


def load_orders(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return con.execute("SELECT customer_id, order_ts, order_amount FROM staging.orders "
                       "WHERE order_ts IS NOT NULL").pl()


def load_profiles(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """customer_id and PROFILE_FEATURES from features.customer_features (NULL where the shop has no such field)."""
    columns = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'features' "
        "AND table_name = 'customer_features'").fetchall()}
    selected = ", ".join(f"{c}::DOUBLE AS {c}" if c in columns else f"NULL::DOUBLE AS {c}" for c in PROFILE_FEATURES)
    return con.execute(f"SELECT customer_id, {selected} FROM features.customer_features ORDER BY customer_id").pl()


def load_first_purchases(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """When each customer first bought each category (first_ts NULL when the orders carry no dates)."""
    return con.execute("SELECT customer_id, category, min(order_ts) AS first_ts FROM staging.order_lines "
                       "WHERE category IS NOT NULL GROUP BY ALL").pl()


def order_dates(con: duckdb.DuckDBPyConnection) -> tuple[datetime | None, datetime | None]:
    return con.execute("SELECT min(order_ts), max(order_ts) FROM staging.orders").fetchone()


CHURN_SPECS = [
    dg.AssetSpec([SCHEMA, "churn_risk"], group_name="predict", kinds={"duckdb", "scikitlearn"},
                 deps=[["staging", "orders"], ["features", "customer_features"]],
                 description="One row per customer: churn_risk, the calibrated probability of no purchase in the "
                             "next predict.horizon_days days (NULL without orders or without a model), at_risk."),
    dg.AssetSpec([SCHEMA, "churn_model_runs"], group_name="predict", kinds={"duckdb"},
                 deps=[["staging", "orders"], ["features", "customer_features"]],
                 description="One row per run: cutoffs, held-out AUC, Brier score and calibration error, or why "
                             "churn could not be trained."),
    dg.AssetSpec([SCHEMA, "churn_calibration"], group_name="predict", kinds={"duckdb"},
                 deps=[["staging", "orders"], ["features", "customer_features"]],
                 description="One row per run and probability bin on the held-out window: mean predicted churn "
                             "against the observed churn rate."),
]


@dg.multi_asset(specs=CHURN_SPECS, pool="duckdb_writer")
def churn_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """Churn risk per customer from a time-split, calibrated gradient-boosting model, with its held-out AUC and
    calibration recorded per run."""
    settings = source.load().predict
    with warehouse.connect() as con:
        ensure_tables(con)
        first, last = order_dates(con)
        split, reason, _ = plan_time_split(first, last, settings)
        profiles = load_profiles(con)
        result: ChurnResult | str = reason if reason else train_churn(load_orders(con), profiles, split, settings)
        if isinstance(result, str):
            status = NO_DATES if split is None else SHORT_HISTORY if reason else ONE_CLASS
            run = {"status": status, "reason": result, "model": None, "n_scored": 0}
            calibration = calibration_table(np.array([]), np.array([]))
            scores = pl.DataFrame(schema={"customer_id": pl.String, "churn_risk": pl.Float64})
        else:
            run, calibration, scores = result.run, result.calibration, result.scores
        risk = (profiles.select("customer_id").join(scores, on="customer_id", how="left")
                .with_columns((pl.col("churn_risk") >= settings.high_risk_threshold).alias("at_risk"),
                              pl.lit(settings.horizon_days, dtype=pl.Int32).alias("horizon_days"),
                              pl.lit(split.data_end if split else None, dtype=pl.Datetime("us")).alias("scored_as_of"),
                              pl.lit(context.run.run_id).alias("run_id")))
        _replace(con, "churn_risk", risk, "customer_id")
        row = {"run_id": context.run.run_id, "trained_at": datetime.now(), **run,
               "horizon_days": settings.horizon_days, "min_history_days": settings.min_history_days,
               "min_auc": settings.min_auc,
               "max_calibration_error": settings.max_calibration_error,
               "high_risk_threshold": settings.high_risk_threshold,
               "features": BEHAVIOUR_FEATURES + PROFILE_FEATURES}
        if split is not None:
            row.update(data_start=split.data_start, data_end=split.data_end, train_cutoff=split.train_cutoff,
                       eval_cutoff=split.eval_cutoff)
        con.execute("DELETE FROM predict.churn_model_runs WHERE run_id = ?", [context.run.run_id])
        con.execute("DELETE FROM predict.churn_calibration WHERE run_id = ?", [context.run.run_id])
        _insert_row(con, "churn_model_runs", row)
        calibrated = calibration.with_columns(pl.lit(context.run.run_id).alias("run_id"))  # noqa: F841
        con.execute("INSERT INTO predict.churn_calibration BY NAME SELECT * FROM calibrated")
    summary = {k: row.get(k) for k in ("status", "reason", "auc", "brier", "calibration_error", "n_train", "n_eval")}
    yield dg.MaterializeResult(asset_key=[SCHEMA, "churn_risk"], metadata={
        "dagster/row_count": risk.height, "scored": int(risk["churn_risk"].is_not_null().sum()),
        "at_risk": int(risk["at_risk"].fill_null(False).sum()), "status": run["status"],
        "reason": run.get("reason") or "", "preview": dg.MetadataValue.md(preview_markdown(risk))})
    yield dg.MaterializeResult(asset_key=[SCHEMA, "churn_model_runs"], metadata={
        **{k: v for k, v in summary.items() if v is not None}, "dagster/row_count": 1})
    yield dg.MaterializeResult(asset_key=[SCHEMA, "churn_calibration"], metadata={
        "dagster/row_count": calibration.height,
        "bins": dg.MetadataValue.md(preview_markdown(calibration, rows=CALIBRATION_BINS))})


RECOMMENDATION_SPECS = [
    dg.AssetSpec([SCHEMA, "category_rules"], group_name="predict", kinds={"duckdb"},
                 deps=[["staging", "order_lines"], ["features", "customer_features"]],
                 description="One row per rule antecedent -> consequent over customers: support, confidence, lift."),
    dg.AssetSpec([SCHEMA, "next_category"], group_name="predict", kinds={"duckdb"},
                 deps=[["staging", "order_lines"], ["features", "customer_features"]],
                 description="Up to predict.top_n rows per customer: the categories they have not bought yet, "
                             "ranked, with the score and whether rules or popularity picked them."),
    dg.AssetSpec([SCHEMA, "recommendation_eval"], group_name="predict", kinds={"duckdb"},
                 deps=[["staging", "order_lines"], ["staging", "orders"], ["features", "customer_features"]],
                 description="One row per run: hit-rate@N on the held-out window against the popularity baseline, "
                             "or why it could not be judged."),
]


@dg.multi_asset(specs=RECOMMENDATION_SPECS, pool="duckdb_writer")
def recommendation_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """Co-purchase rules, the top categories each customer has not bought yet, and their held-out hit-rate
    against recommending the most popular categories."""
    settings = source.load().predict
    with warehouse.connect() as con:
        ensure_tables(con)
        first, last = order_dates(con)
        split, _, eval_reason = plan_time_split(first, last, settings)
        customer_ids = con.execute("SELECT customer_id FROM features.customer_features ORDER BY customer_id") \
            .pl().get_column("customer_id").to_list()
        first_purchases = load_first_purchases(con)
        categories = sorted(first_purchases["category"].unique())
        everything = purchases(first_purchases, customer_ids, categories)
        rules = mine_rules(everything, settings)
        picks = recommend(everything, rules, settings.top_n)
        evaluation = ({"status": NO_DATES if split is None else SHORT_HISTORY, "reason": eval_reason} if eval_reason
                      else evaluate_recommendations(first_purchases, customer_ids, split, settings))
        _replace(con, "category_rules", rules.with_columns(pl.lit(context.run.run_id).alias("run_id")),
                 "antecedent, lift DESC, consequent")
        _replace(con, "next_category", picks.with_columns(pl.lit(context.run.run_id).alias("run_id")),
                 "customer_id, rank")
        row = {"run_id": context.run.run_id, "evaluated_at": datetime.now(), **evaluation, "top_n": settings.top_n,
               "horizon_days": settings.horizon_days, "min_history_days": settings.min_history_days,
               "min_lift_over_popularity": settings.min_lift_over_popularity}
        if split is not None:
            row.update(data_start=split.data_start, data_end=split.data_end)
        if split is not None and not eval_reason:
            row.update(eval_cutoff=split.eval_cutoff, window_end=split.data_end)
        con.execute("DELETE FROM predict.recommendation_eval WHERE run_id = ?", [context.run.run_id])
        _insert_row(con, "recommendation_eval", row)
    yield dg.MaterializeResult(asset_key=[SCHEMA, "category_rules"], metadata={
        "dagster/row_count": rules.height,
        "strongest": dg.MetadataValue.md(preview_markdown(rules.sort("lift", descending=True), rows=10))})
    yield dg.MaterializeResult(asset_key=[SCHEMA, "next_category"], metadata={
        "dagster/row_count": picks.height, "customers": picks["customer_id"].n_unique(),
        "from_rules": int((picks["source"] == SOURCE_RULES).sum()),
        "preview": dg.MetadataValue.md(preview_markdown(picks, rows=9))})
    yield dg.MaterializeResult(asset_key=[SCHEMA, "recommendation_eval"], metadata={
        "dagster/row_count": 1, "status": row["status"], "reason": row.get("reason") or "",
        **{k: row[k] for k in ("hit_rate", "popularity_hit_rate", "lift_over_popularity", "customers_evaluated")
           if row.get(k) is not None}})
