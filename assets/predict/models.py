"""Predictive layer: churn risk and next-category recommendations per customer, judged on time they never saw.

Published in the `predict` schema (documented in warehouse/README.md), refreshed with every run:

Churn risk -- the probability that a customer makes no purchase in the next `predict.horizon_days` (H) days.
- Time split, no leakage. With `end` the midnight after the last order day, the *training cutoff* is end - 2H and the
  *evaluation cutoff* end - H. Features as of a cutoff come only from orders before it (`churn_features` joins each
  cutoff to the orders before it and aggregates nothing else); labels come only from the H days after it. The
  model trained at the training cutoff (labels: the window up to the evaluation cutoff) is judged on the evaluation
  window [end - H, end), which it never saw (every customer up to EVAL_SAMPLE, a seeded sample beyond): AUC,
  Brier score and calibration are recorded in `predict.churn_model_runs` and `predict.churn_calibration`.
- The published `predict.churn_risk` comes from the same recipe refitted one horizon later (features as of the
  evaluation cutoff, labels from the evaluation window) and applied to features as of `end`: the freshest
  behaviour, with the held-out figures as the honest estimate of how well the recipe ranks.
- Model: scikit-learn HistGradientBoostingClassifier with early stopping, calibrated by CalibratedClassifierCV
  (isotonic, or sigmoid below ISOTONIC_FROM training rows; fitted on a holdout of the training sample from
  HOLDOUT_CALIBRATION_FROM rows, on out-of-fold predictions below). Features are behavioural (recency, recent and
  overall frequency, gaps between orders and whether they are widening, basket value) plus the profile fields
  (age, income) the shop provides (`profile_features`).

Next-category recommendations -- the `predict.top_n` categories each customer has not bought yet.
- Rules: "customers who bought A also bought B", mined over customers (support, confidence, lift) from
  staging.order_lines, kept above `predict.min_support` and `predict.min_confidence` (`predict.category_rules`).
- Score of an unbought category c for a customer: the sum of ln(lift(a -> c)) over the kept rules from the
  categories a the customer bought. Ties, and customers without rules, fall back on popularity (most customers).
  A category nobody has bought is never recommended.
- Judged on the same held-out window: rules and recommendations from the baskets before the evaluation cutoff;
  a hit when a customer's first purchase of a category in the window is one of the recommendations (hit-rate@N
  over the customers who bought some new category there), against recommending the most popular unbought
  categories (`predict.recommendation_eval`). The published recommendations use every basket.

Retraining cadence (`predict.retrain_every_days`, default 7). Training and judging are the expensive part and
customer behaviour drifts over weeks, not nights, so a nightly run scores with the latest model instead of fitting
a new one while that model's training data ends fewer than `retrain_every_days` days before the current data end,
and retrains otherwise (also when there is no model yet, the feature columns or the model settings changed, the
data now ends earlier than the model's, or the stored model file is missing or altered; 0 trains every run).
A reused model still scores features as of the current data end, so the scores follow the new orders. The run
row records `model_action` (`trained` or `reused`), `model_version` (the run id that trained the model which
scored) and `model_decision` (why); the held-out figures of a reusing run are those of the run that trained.
Co-purchase rules follow the same cadence: a reusing run keeps `predict.category_rules` and its evaluation, and
recommends from the current baskets with them (a category new since the rules were mined is picked by
popularity until the next mining).

The model is kept as a joblib file beside the working database (warehouse/work/<name>.models/), not in a table:
publishing copies every table to the readers' warehouse, and a pickled estimator is neither data for them nor
something any reader should load; the working folder is the pipeline's private state. The run row records the
file's SHA-256, and a file that does not match is never loaded (the run retrains instead).

Sources without order dates (the wide seed table): no past and future to split, so churn is not trained
(`churn_risk` stays NULL, the run row says why) and recommendations are built from every basket without an
evaluation (the evaluation row says why). Nothing fails.
"""

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import joblib
import numpy as np
import polars as pl
import sklearn
from scipy import sparse
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import brier_score_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from pipelines.core.config import PredictSettings
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.core.sql import preview_markdown

SCHEMA = "predict"
CALIBRATION_BINS = 10
ISOTONIC_FROM = 1_000  # isotonic calibration needs enough rows; below this, sigmoid (Platt) calibration
CALIBRATION_FOLDS = 3  # below HOLDOUT_CALIBRATION_FROM rows: calibration on out-of-fold predictions
# From this many training rows, a holdout of HOLDOUT_SHARE stops the boosting and fits the calibration: one booster
# fit instead of CALIBRATION_FOLDS + 1. Below it, holding rows out costs more quality than the fits cost time: on
# 20,000 customers, out-of-fold calibration kept the calibration error at 0.020-0.037 where a holdout gave up to
# 0.046.
HOLDOUT_CALIBRATION_FROM = 50_000
HOLDOUT_SHARE = 0.2
# Early stopping holds out a tenth of the rows to decide when to stop; below this many rows that tenth is too small
# to judge on, and the booster runs a fixed, gentler schedule instead.
EARLY_STOPPING_FROM = 2_000
# The held-out figures judge at most this many customers of the evaluation window (a seeded sample beyond): the
# AUC's standard error is then about 0.001, and judging the rest would cost as much as scoring them all again.
EVAL_SAMPLE = 200_000
SCORE_CHUNK_ROWS = 50_000  # customers scored per block: keeps (customers x categories) matrices small
# scikit-learn's OpenMP loops on one thread. The other core of a small machine is usually busy (DuckDB, the rest of
# the host), and a second worker thread then spin-waits for it: on 2 cores under load, fitting the earlier recipe
# (3 calibration folds, 200 trees each) on 80k customers took 23 s with the default two threads and 2.8 s with one;
# scoring 80k customers 3.9 s and 1.5 s (see MODEL_THREADS in assets/model.py for the same effect on k-means).
CHURN_THREADS = 1
# Scoring, though, runs blocks of customers on SCORE_WORKERS Python threads, each block with one OpenMP thread: the
# trees' loops release the GIL, and a Python thread that finds its core busy waits for it by blocking, not spinning
# (as the outlier forest's threads, FOREST_THREADS in quality/outliers.py). Every customer is scored on its own, so
# the probabilities are identical. 1M customers: 2.2 s on one thread, 1.2 s on two when the other core is free
# (the same CPU seconds).
SCORE_WORKERS = 2
SCORE_BLOCK_ROWS = 65_536
MODEL_NAME = "HistGradientBoostingClassifier + CalibratedClassifierCV"
# Part of the recipe a stored model must match to be reused: bump it whenever the code changes how the churn model
# is built or what its columns mean, so that no model fitted by older code scores again.
CHURN_RECIPE_VERSION = 2
RULES_RECIPE_VERSION = 1
PROFILE_FEATURES = ["age", "income"]
BEHAVIOUR_FEATURES = [
    "recency_days", "orders_last_30d", "orders_last_14d", "orders_per_day", "mean_gap_days", "last_gap_days",
    "gap_trend", "overdue_ratio", "recency_over_max_gap", "avg_basket_value",
]
SOURCE_RULES, SOURCE_POPULARITY = "rules", "popularity"
# Run statuses (the report words each one in both languages). `trained`: a churn model scored this run, fitted now
# or reused (model_action says which).
TRAINED, EVALUATED = "trained", "evaluated"
NO_DATES, SHORT_HISTORY, ONE_CLASS, NO_NEW_PURCHASES = "no_dates", "short_history", "one_class", "no_new_purchases"
# What a run did about its model (churn) or its rules (recommendations).
FITTED, MINED, REUSED = "trained", "mined", "reused"


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

CHURN_FEATURES_SQL = """
WITH cutoffs AS (SELECT unnest($cutoffs::TIMESTAMP[]) AS cutoff),
ordered AS (
    -- Each order with the customer's previous one. It looks only backwards, so for the orders before a cutoff it
    -- is the same whatever happens after it.
    SELECT customer_id, order_ts, order_amount,
           lag(order_ts) OVER (PARTITION BY customer_id ORDER BY order_ts) AS previous_ts
    FROM {orders}
    WHERE order_ts < (SELECT max(cutoff) FROM cutoffs)
),
past AS (
    -- Each cutoff with the orders before it, and nothing else: every feature is an aggregate of these rows.
    SELECT c.cutoff, o.* FROM cutoffs c JOIN ordered o ON {before_cutoff}
),
per_customer AS (
    SELECT cutoff, customer_id,
           epoch(cutoff - max(order_ts)) / 86400 AS recency_days,
           epoch(cutoff - min(order_ts)) / 86400 AS tenure_days,
           count(*) AS n_orders,
           count(*) FILTER (WHERE order_ts >= cutoff - INTERVAL 30 DAY) AS orders_last_30d,
           count(*) FILTER (WHERE order_ts >= cutoff - INTERVAL 14 DAY) AS orders_last_14d,
           avg(order_amount) AS avg_basket_value,
           -- The latest order against the one before it: the latest "previous order" is the second latest
           -- order (0 for two orders in the same second, NULL for a single order).
           epoch(max(order_ts) - max(previous_ts)) / 86400 AS last_gap_days,
           max(epoch(order_ts - previous_ts)) / 86400 AS max_gap_days
    FROM past
    GROUP BY cutoff, customer_id
),
gaps AS (
    -- The mean gap between consecutive orders: first to last order, over the gaps between them.
    SELECT *, CASE WHEN n_orders > 1 THEN (tenure_days - recency_days) / (n_orders - 1) END AS mean_gap_days
    FROM per_customer
)
-- One order: no gap yet (NULL, which the gradient boosting handles). A zero gap (two orders in the same second)
-- would divide by zero: unknown too.
SELECT g.cutoff, g.customer_id,
       g.recency_days::DOUBLE AS recency_days,
       g.orders_last_30d::DOUBLE AS orders_last_30d,
       g.orders_last_14d::DOUBLE AS orders_last_14d,
       g.n_orders / greatest(g.tenure_days, 1.0) AS orders_per_day,
       g.mean_gap_days::DOUBLE AS mean_gap_days,
       g.last_gap_days::DOUBLE AS last_gap_days,
       -- Widening gaps are the early warning: the last gap against the customer's usual one.
       g.last_gap_days / nullif(g.mean_gap_days, 0) AS gap_trend,
       g.recency_days / nullif(g.mean_gap_days, 0) AS overdue_ratio,
       g.recency_days / nullif(g.max_gap_days, 0) AS recency_over_max_gap,
       g.avg_basket_value::DOUBLE AS avg_basket_value
       {profile_columns}
FROM gaps g {profile_join}
"""


def profile_features(con: duckdb.DuckDBPyConnection, profiles: str = "features.customer_features") -> list[str]:
    """The PROFILE_FEATURES the shop provides: columns of the profile table with a value for some customer (a
    shop without an income field has an income column of NULLs, which tells the model nothing)."""
    described = {row[0] for row in con.execute(f"DESCRIBE {profiles}").fetchall()}
    present = [column for column in PROFILE_FEATURES if column in described]
    if not present:
        return []
    counts = con.execute(f"SELECT {', '.join(f'count({c})' for c in present)} FROM {profiles}").fetchone()
    return [column for column, count in zip(present, counts) if count > 0]


def churn_features(con: duckdb.DuckDBPyConnection, cutoffs: list[datetime], profile_columns: list[str],
                   orders: str = "staging.orders", profiles: str = "features.customer_features") -> pl.DataFrame:
    """Features as of each cutoff, in one pass over the orders: one row per cutoff and customer with an order
    before it (cutoff, customer_id, BEHAVIOUR_FEATURES, then `profile_columns` from `profiles`), in no particular
    order. `orders` and `profiles` name tables or views with customer_id, order_ts, order_amount and
    customer_id plus the profile columns."""
    columns = "".join(f", p.{column}::DOUBLE AS {column}" for column in profile_columns)
    join = f"LEFT JOIN {profiles} p USING (customer_id)" if profile_columns else ""
    # With one cutoff (a night that scores with a stored model) `ordered` holds only the orders before it, so each
    # pairs with it: no inequality join to evaluate over every order (0.3 s of CPU at 4.4M orders).
    before_cutoff = "TRUE" if len(cutoffs) == 1 else "o.order_ts < c.cutoff"
    sql = CHURN_FEATURES_SQL.format(orders=orders, profile_columns=columns, profile_join=join,
                                    before_cutoff=before_cutoff)
    return con.execute(sql, {"cutoffs": cutoffs}).pl()


def features_at(features: pl.DataFrame, cutoff: datetime) -> pl.DataFrame:
    """The rows of one cutoff from churn_features."""
    return features.filter(pl.col("cutoff") == cutoff).drop("cutoff")


def churn_labels(con: duckdb.DuckDBPyConnection, customer_ids: pl.Series, start: datetime, horizon: timedelta,
                 orders: str = "staging.orders") -> np.ndarray:
    """1 where the customer has no order in [start, start + horizon), else 0, aligned to `customer_ids`."""
    buyers = con.execute(f"SELECT DISTINCT customer_id FROM {orders} WHERE order_ts >= $start AND order_ts < $end",
                         {"start": start, "end": start + horizon}).pl().get_column("customer_id")
    return (~customer_ids.is_in(buyers.implode())).cast(pl.Int8).to_numpy()


def _booster(seed: int, early_stopping: bool) -> HistGradientBoostingClassifier:
    if early_stopping:
        # Early stopping picks the number of trees (40 to 80 of the 200 allowed on the data we measured), which is
        # also what keeps scoring a million customers cheap.
        return HistGradientBoostingClassifier(learning_rate=0.1, max_iter=200, max_leaf_nodes=15,
                                              l2_regularization=1.0, early_stopping=True, validation_fraction=0.1,
                                              n_iter_no_change=10, random_state=seed)
    return HistGradientBoostingClassifier(learning_rate=0.05, max_iter=200, max_leaf_nodes=15, l2_regularization=1.0,
                                          early_stopping=False, random_state=seed)


def calibration_scheme(rows: int) -> str:
    """How a model fitted on `rows` rows is calibrated (recorded in the run row's `model`)."""
    method = "isotonic" if rows >= ISOTONIC_FROM else "sigmoid"
    if rows >= HOLDOUT_CALIBRATION_FROM:
        return f"{method}, on a {HOLDOUT_SHARE:.0%} holdout that also stops the boosting"
    return f"{method}, on out-of-fold predictions of {CALIBRATION_FOLDS} folds"


def fit_churn_model(features: np.ndarray, labels: np.ndarray, seed: int) -> CalibratedClassifierCV:
    """Gradient boosting, calibrated. From HOLDOUT_CALIBRATION_FROM rows, a seeded HOLDOUT_SHARE of them is held
    out: the booster fits on the rest, stops early on the holdout and the calibration is fitted on it (one fit;
    a fifth of 50,000 rows is plenty for a calibration curve). Below that, every row counts: out-of-fold
    predictions on CALIBRATION_FOLDS folds fit the calibration and one booster is refitted on every row
    (ensemble=False, so that scoring runs one booster, not one per fold)."""
    rows = len(labels)
    method = "isotonic" if rows >= ISOTONIC_FROM else "sigmoid"
    with threadpool_limits(limits=CHURN_THREADS):
        if rows < HOLDOUT_CALIBRATION_FROM:
            model = CalibratedClassifierCV(_booster(seed, early_stopping=rows >= EARLY_STOPPING_FROM), method=method,
                                           cv=CALIBRATION_FOLDS, ensemble=False)
            return model.fit(features, labels)
        held_out = np.zeros(rows, dtype=bool)
        held_out[np.random.default_rng(seed).choice(rows, size=int(rows * HOLDOUT_SHARE), replace=False)] = True
        booster = _booster(seed, early_stopping=True).fit(features[~held_out], labels[~held_out],
                                                          X_val=features[held_out], y_val=labels[held_out])
        return CalibratedClassifierCV(FrozenEstimator(booster), method=method).fit(features[held_out],
                                                                                   labels[held_out])


def churn_probability(model: CalibratedClassifierCV, features: np.ndarray) -> np.ndarray:
    """The calibrated churn probability of each row, scored in blocks on SCORE_WORKERS threads."""
    probabilities = np.empty(len(features))

    def score_block(start: int) -> None:
        # OpenMP's thread count is set per calling thread, so each worker limits its own.
        with threadpool_limits(limits=CHURN_THREADS, user_api="openmp"):
            block = slice(start, start + SCORE_BLOCK_ROWS)
            probabilities[block] = model.predict_proba(features[block])[:, 1]

    starts = range(0, len(features), SCORE_BLOCK_ROWS)
    if len(starts) <= 1:
        for start in starts:
            score_block(start)
        return probabilities
    with ThreadPoolExecutor(SCORE_WORKERS) as pool:
        list(pool.map(score_block, starts))
    return probabilities


def _matrix(features: pl.DataFrame, columns: list[str]) -> np.ndarray:
    return features.select(columns).to_numpy(order="c").astype(np.float64, copy=False)


def churn_recipe(settings: PredictSettings) -> str:
    """What a stored model must have been built with to be reused: the code's recipe, the scikit-learn version
    (a pickle is only safe to load with the version that wrote it) and the settings that shape the model."""
    return (f"churn-v{CHURN_RECIPE_VERSION} scikit-learn {sklearn.__version__} horizon_days={settings.horizon_days} "
            f"train_sample={settings.train_sample} seed={settings.seed}")


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
    run: dict  # one row of predict.churn_model_runs (without run_id, trained_at and the model_* columns)
    calibration: pl.DataFrame  # rows of predict.churn_calibration (without run_id); empty when reused
    scores: pl.DataFrame  # customer_id, churn_risk (customers with an order before the scoring time)
    model: CalibratedClassifierCV  # the model that scored


def _sample(rows: int, limit: int, seed: int) -> np.ndarray:
    """Row indices for training: all of them, or a seeded sample of `limit` (sorted, so order stays stable)."""
    if rows <= limit:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, size=limit, replace=False))


def seeded_rows(customer_ids: pl.Series, limit: int, seed: int) -> np.ndarray:
    """Row indices of at most `limit` customers (a seeded sample), in customer_id order: the same customers in the
    same order however the feature rows arrive (the features come unordered from DuckDB)."""
    in_id_order = customer_ids.arg_sort().to_numpy()
    return in_id_order[_sample(len(in_id_order), limit, seed)]


def _scores(model: CalibratedClassifierCV, current: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    return current.select("customer_id").with_columns(
        pl.Series("churn_risk", churn_probability(model, _matrix(current, columns)), dtype=pl.Float64))


def train_churn(con: duckdb.DuckDBPyConnection, split: TimeSplit, columns: list[str], settings: PredictSettings) \
        -> ChurnResult | str:
    """Train at the training cutoff, judge on the evaluation window, refit one horizon later and score as of the
    end of the data. Returns the reason instead when a window has a single class (nothing to learn or judge)."""
    profile_columns = [c for c in columns if c in PROFILE_FEATURES]
    features = churn_features(con, [split.train_cutoff, split.eval_cutoff, split.data_end], profile_columns)
    per_cutoff = features.partition_by("cutoff", as_dict=True, include_key=False)
    train, held_out, current = (per_cutoff.get((cutoff,), features.clear().drop("cutoff"))
                                for cutoff in (split.train_cutoff, split.eval_cutoff, split.data_end))
    train_y = churn_labels(con, train["customer_id"], split.train_cutoff, split.horizon)
    held_out_y = churn_labels(con, held_out["customer_id"], split.eval_cutoff, split.horizon)
    for name, labels in (("training", train_y), ("evaluation", held_out_y)):
        if len(labels) < 2 * CALIBRATION_FOLDS or np.bincount(labels, minlength=2).min() < CALIBRATION_FOLDS:
            return (f"the {name} window has {int(labels.sum())} churned and {int(len(labels) - labels.sum())} "
                    f"retained customers; both classes need at least {CALIBRATION_FOLDS}")
    rows = seeded_rows(train["customer_id"], settings.train_sample, settings.seed)
    model = fit_churn_model(_matrix(train[rows], columns), train_y[rows], settings.seed)
    judged = seeded_rows(held_out["customer_id"], EVAL_SAMPLE, settings.seed)
    judged_y = held_out_y[judged]
    predicted = churn_probability(model, _matrix(held_out[judged], columns))
    calibration = calibration_table(judged_y, predicted)

    # The published scores: the same recipe on the most recent labelled window, applied as of the end.
    refit_rows = seeded_rows(held_out["customer_id"], settings.train_sample, settings.seed)
    scorer = fit_churn_model(_matrix(held_out[refit_rows], columns), held_out_y[refit_rows], settings.seed)
    scores = _scores(scorer, current, columns)
    run = {
        "status": TRAINED, "reason": None, "model": f"{MODEL_NAME} ({calibration_scheme(len(rows))})",
        "train_cutoff": split.train_cutoff, "eval_cutoff": split.eval_cutoff,
        "n_train": len(rows), "n_eval": len(judged),
        "train_churn_rate": float(train_y.mean()), "eval_churn_rate": float(judged_y.mean()),
        "auc": float(roc_auc_score(judged_y, predicted)),
        "brier": float(brier_score_loss(judged_y, predicted)),
        # The Brier score of always forecasting the training churn rate: the bar a useful model clears.
        "brier_baseline": float(brier_score_loss(judged_y, np.full(len(judged_y), train_y.mean()))),
        "calibration_error": calibration_error(calibration),
        "n_scored": scores.height,
    }
    return ChurnResult(run, calibration, scores, scorer)


# --- churn: the stored model and when to reuse it -----------------------------------------------------------------

# The held-out figures a reusing run copies from the run that trained its model.
HELD_OUT_COLUMNS = ("model", "train_cutoff", "eval_cutoff", "n_train", "n_eval", "train_churn_rate",
                    "eval_churn_rate", "auc", "brier", "brier_baseline", "calibration_error")


def models_folder(working_database: Path) -> Path:
    """Where the models of a working database live: beside it and named after it (work/<name>.models/), since two
    published warehouses in one folder share the work/ folder."""
    return working_database.with_name(f"{working_database.stem}.models")


def model_file(models_dir: Path, version: str) -> Path:
    return models_dir / f"churn-{version}.joblib"


def save_model(models_dir: Path, version: str, model: CalibratedClassifierCV, columns: list[str],
               recipe: str) -> str:
    """Write the model as models_dir/churn-<version>.joblib (atomically: a temporary name, then a rename) and
    return the file's SHA-256."""
    models_dir.mkdir(parents=True, exist_ok=True)
    target = model_file(models_dir, version)
    pending = target.with_name(f".{target.name}.pending")
    joblib.dump({"version": version, "features": columns, "recipe": recipe, "model": model}, pending)
    digest = hashlib.sha256(pending.read_bytes()).hexdigest()
    os.replace(pending, target)
    return digest


def remove_other_models(models_dir: Path, keep: str) -> None:
    """Model files other than the one of version `keep` (older models and files of runs that never committed)."""
    for path in models_dir.glob("*churn-*.joblib*"):
        if path != model_file(models_dir, keep):
            path.unlink(missing_ok=True)


def load_model(models_dir: Path, version: str, sha256: str | None) -> CalibratedClassifierCV | None:
    """The stored model of `version`, or None when its file is missing or is not the file that run wrote."""
    path = model_file(models_dir, version)
    if sha256 is None or not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        return None
    return joblib.load(path)["model"]


def _row(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> dict | None:
    frame = con.execute(sql, params).pl()
    return frame.row(0, named=True) if frame.height else None


def _days(count: int) -> str:
    return f"{count} day" if abs(count) == 1 else f"{count} days"


def _age_reason(what: str, trained_end: datetime, split: TimeSplit,
                settings: PredictSettings) -> tuple[int, str | None]:
    """Days of data since `trained_end`, and why that is too old or wrong to reuse (None when it is fine)."""
    age = (split.data_end - trained_end).days
    if age < 0:
        return age, (f"the data now ends {_days(-age)} before the data the {what} came from "
                     f"({trained_end:%Y-%m-%d}): the history was reloaded")
    if age >= settings.retrain_every_days:
        return age, (f"the {what} came from data ending {trained_end:%Y-%m-%d}, {_days(age)} before this data "
                     f"(predict.retrain_every_days {settings.retrain_every_days})")
    return age, None


@dataclass
class StoredModel:
    version: str  # the run id that trained it
    model: CalibratedClassifierCV
    trained: dict  # that run's row of predict.churn_model_runs (its held-out figures)


def choose_churn_model(con: duckdb.DuckDBPyConnection, models_dir: Path, run_id: str, split: TimeSplit,
                       columns: list[str], settings: PredictSettings) -> tuple[StoredModel | None, str]:
    """The latest model when this run may reuse it (None: train), and why."""
    if settings.retrain_every_days == 0:
        return None, "predict.retrain_every_days is 0: every run trains"
    # The model that scored the latest earlier run (a retry of this run does not count as earlier).
    latest = _row(con, "SELECT model_version FROM predict.churn_model_runs WHERE run_id <> ? "
                       "ORDER BY trained_at DESC LIMIT 1", [run_id])
    if latest is None or latest["model_version"] is None:
        return None, "no earlier run has a model"
    trained = _row(con, f"SELECT * FROM predict.churn_model_runs WHERE run_id = ? AND model_action = '{FITTED}'",
                   [latest["model_version"]])
    if trained is None:
        return None, f"the run that trained model {latest['model_version']} is no longer recorded"
    age, too_old = _age_reason("model", trained["data_end"], split, settings)
    if too_old:
        return None, too_old
    if list(trained["features"]) != columns:
        return None, f"the feature columns changed: the model has {list(trained['features'])}, the data {columns}"
    if trained["model_recipe"] != churn_recipe(settings):
        return None, f"the model settings changed: the model has '{trained['model_recipe']}'"
    model = load_model(models_dir, trained["run_id"], trained["model_sha256"])
    if model is None:
        return None, f"the file of model {trained['run_id']} is missing or is not the file that run wrote"
    if model.n_features_in_ != len(columns):
        return None, f"the stored model expects {model.n_features_in_} columns, the data has {len(columns)}"
    return StoredModel(trained["run_id"], model, trained), (
        f"reused: trained on data ending {trained['data_end']:%Y-%m-%d}, {_days(age)} before this data "
        f"(retrained at predict.retrain_every_days {settings.retrain_every_days})")


def score_with_stored(con: duckdb.DuckDBPyConnection, stored: StoredModel, split: TimeSplit,
                      columns: list[str]) -> ChurnResult:
    """The stored model on features as of the current data end; the held-out figures of the run that trained."""
    profile_columns = [c for c in columns if c in PROFILE_FEATURES]
    current = churn_features(con, [split.data_end], profile_columns).drop("cutoff")  # one cutoff: nothing to filter
    scores = _scores(stored.model, current, columns)
    run = {"status": TRAINED, "reason": None, **{k: stored.trained[k] for k in HELD_OUT_COLUMNS},
           "n_scored": scores.height}
    return ChurnResult(run, calibration_table(np.array([]), np.array([])), scores, stored.model)


# --- recommendations ---------------------------------------------------------------------------------------------

@dataclass
class Purchases:
    """Which customer bought which category (before some cutoff), as a sparse customers x categories matrix."""

    customer_ids: pl.Series  # the matrix rows
    categories: list[str]  # the matrix columns
    matrix: sparse.csr_matrix  # 1 where bought

    @property
    def buyers_per_category(self) -> np.ndarray:
        return np.asarray(self.matrix.sum(axis=0)).ravel()

    @property
    def customers_with_purchases(self) -> int:
        return int(np.count_nonzero(self.matrix.getnnz(axis=1)))


@dataclass
class FirstPurchases:
    """When each customer first bought each category: one cell per (customer row, category column) bought."""

    customer_ids: pl.Series  # row -> customer_id, sorted
    categories: list[str]  # column -> category, sorted
    rows: np.ndarray  # the cells' customer rows
    columns: np.ndarray  # the cells' category columns
    first_ts: np.ndarray  # datetime64[us]; NaT when the orders carry no dates

    def before(self, cutoff: datetime | None = None) -> Purchases:
        """The purchases made before `cutoff` (every purchase when None)."""
        cells = slice(None) if cutoff is None else self.first_ts < np.datetime64(cutoff, "us")
        rows, columns = self.rows[cells], self.columns[cells]
        matrix = sparse.csr_matrix((np.ones(len(rows)), (rows, columns)),
                                   shape=(len(self.customer_ids), len(self.categories)))
        return Purchases(self.customer_ids, self.categories, matrix)

    @classmethod
    def from_frame(cls, cells: pl.DataFrame, customer_ids: pl.Series, categories: list[str]) -> "FirstPurchases":
        """From a frame of customer_row, category_column, first_ts."""
        return cls(customer_ids, categories, cells["customer_row"].to_numpy(), cells["category_column"].to_numpy(),
                   cells["first_ts"].cast(pl.Datetime("us")).to_numpy())

    @classmethod
    def from_rows(cls, rows: pl.DataFrame, customer_ids: list[str], categories: list[str]) -> "FirstPurchases":
        """From customer_id, category, first_ts rows; rows of customers or categories not listed are ignored."""
        customer_index = pl.DataFrame({"customer_id": customer_ids, "customer_row": np.arange(len(customer_ids))},
                                      schema={"customer_id": pl.String, "customer_row": pl.Int64})
        category_index = pl.DataFrame({"category": categories, "category_column": np.arange(len(categories))},
                                      schema={"category": pl.String, "category_column": pl.Int64})
        cells = rows.join(customer_index, on="customer_id").join(category_index, on="category") \
            .group_by("customer_row", "category_column").agg(pl.col("first_ts").min())
        return cls.from_frame(cells, pl.Series("customer_id", customer_ids, dtype=pl.String), categories)


FIRST_PURCHASES_SQL = """
WITH customers AS (
    SELECT customer_id, row_number() OVER (ORDER BY customer_id) - 1 AS customer_row
    FROM features.customer_features),
categories AS (
    SELECT category, row_number() OVER (ORDER BY category) - 1 AS category_column
    FROM (SELECT DISTINCT category FROM staging.order_lines WHERE category IS NOT NULL))
SELECT customer_row, category_column, min(order_ts) AS first_ts
FROM staging.order_lines JOIN customers USING (customer_id) JOIN categories USING (category)
GROUP BY customer_row, category_column
"""


# Which categories each customer bought, as one bit per category in 64-bit words (word w holds the categories
# numbered 64w to 64w + 63): grouping the 8.8M order lines by customer (1M groups) instead of by customer and
# category (4.7M groups) made loading the purchases of a run that reuses its rules 1.1 s of CPU instead of 2.7-3.3 s.
PURCHASE_WORDS_SQL = """
SELECT f.customer_id, {words}
FROM features.customer_features f
LEFT JOIN (
    SELECT customer_id, {word_aggregates}
    FROM staging.order_lines JOIN purchase_categories USING (category)
    GROUP BY customer_id) bought USING (customer_id)
ORDER BY f.customer_id
"""


def load_purchases(con: duckdb.DuckDBPyConnection) -> Purchases:
    """Every customer of features.customer_features (sorted) and every category of staging.order_lines (sorted),
    with whether the customer bought the category: what load_first_purchases(con).before(None) gives, without the
    dates, which only mining the rules needs."""
    categories = [row[0] for row in con.execute("SELECT DISTINCT category FROM staging.order_lines "
                                                "WHERE category IS NOT NULL ORDER BY category").fetchall()]
    n_words = max(1, -(-len(categories) // 64))
    # Each category's bit, in its word's column (0 in the others), so that the aggregate is a plain bit_or.
    bits = {f"word{w}": [1 << (c % 64) if c // 64 == w else 0 for c in range(len(categories))]
            for w in range(n_words)}
    purchase_categories = pl.DataFrame({"category": categories, **bits},  # noqa: F841 - read by DuckDB
                                       schema={"category": pl.String, **{word: pl.UInt64 for word in bits}})
    frame = con.execute(PURCHASE_WORDS_SQL.format(
        words=", ".join(f"coalesce(bought.{word}, 0::UBIGINT) AS {word}" for word in bits),
        word_aggregates=", ".join(f"bit_or({word}) AS {word}" for word in bits))).pl()
    words = [frame.get_column(word).to_numpy() for word in bits]
    bought = np.empty((frame.height, len(categories)), dtype=bool)
    for column in range(len(categories)):  # a category at a time: no (customers x categories) integer temporaries
        word, bit = divmod(column, 64)
        bought[:, column] = (words[word] >> np.uint64(bit)) & np.uint64(1)
    # Row by row with ascending columns: already the canonical CSR layout, built without sorting anything.
    indptr = np.concatenate([[0], np.cumsum(bought.sum(axis=1))]).astype(np.int32)
    indices = np.nonzero(bought)[1].astype(np.int32)
    matrix = sparse.csr_matrix((np.ones(len(indices)), indices, indptr), shape=bought.shape)
    return Purchases(frame.get_column("customer_id"), categories, matrix)


def load_first_purchases(con: duckdb.DuckDBPyConnection) -> FirstPurchases:
    """Every customer of features.customer_features and every category of staging.order_lines, with the first
    purchase of each category by each customer (numbered in DuckDB, so no customer_id string crosses into Python
    per order line)."""
    customer_ids = con.execute("SELECT customer_id FROM features.customer_features ORDER BY customer_id") \
        .pl().get_column("customer_id")
    categories = [row[0] for row in con.execute("SELECT DISTINCT category FROM staging.order_lines "
                                                "WHERE category IS NOT NULL ORDER BY category").fetchall()]
    return FirstPurchases.from_frame(con.execute(FIRST_PURCHASES_SQL).pl(), customer_ids, categories)


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
    order = np.lexsort((np.array(bought.categories), -bought.buyers_per_category))
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


RECOMMENDATION_SCHEMA = {"customer_id": pl.String, "rank": pl.Int32, "category": pl.String, "score": pl.Float64,
                         "source": pl.String}


@dataclass
class Picks:
    """Recommendations as matrix positions, in customer row order then rank."""

    rows: np.ndarray  # customer row
    ranks: np.ndarray  # 0 first
    columns: np.ndarray  # category column
    scores: np.ndarray  # sum of ln(lift) of the rules (0 without rules; -inf never happens: such cells are dropped)



def top_picks(bought: Purchases, rules: pl.DataFrame | None, top_n: int,
              customer_rows: np.ndarray | None = None) -> Picks:
    """The top_n unbought categories of each customer (of `customer_rows`, ascending; default every customer):
    highest rule score first, ties by popularity. Bought categories and categories nobody bought are never picked;
    a customer with fewer than top_n left gets fewer."""
    rows_wanted = np.arange(len(bought.customer_ids)) if customer_rows is None else customer_rows
    n_categories = len(bought.categories)
    if n_categories == 0 or len(rows_wanted) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Picks(empty, empty, empty, np.zeros(0))
    buyers = bought.buyers_per_category
    # Columns from the most popular: a stable sort on the score then breaks ties by popularity.
    by_popularity = np.argsort(popularity_order(bought))
    weights = _rule_weights(rules, bought.categories)[:, by_popularity] if rules is not None else None
    never_bought = (buyers == 0)[by_popularity]
    parts = []
    for start in range(0, len(rows_wanted), SCORE_CHUNK_ROWS):
        chunk = rows_wanted[start:start + SCORE_CHUNK_ROWS]
        block = bought.matrix[chunk]
        unavailable = (block.toarray()[:, by_popularity] > 0) | never_bought
        score = block @ weights if weights is not None else np.zeros(unavailable.shape)
        # A negative score (the customer's categories make this one less likely) ranks below no evidence at all.
        score = np.where(unavailable, -np.inf, score)
        order = np.argsort(-score, axis=1, kind="stable")[:, :top_n]
        picked_score = np.take_along_axis(score, order, axis=1)
        rows, ranks = np.nonzero(np.isfinite(picked_score))  # fewer than top_n unbought categories: fewer rows
        parts.append((chunk[rows], ranks, by_popularity[order[rows, ranks]], picked_score[rows, ranks]))
    return Picks(*(np.concatenate(arrays) for arrays in zip(*parts)))


def recommend(bought: Purchases, rules: pl.DataFrame | None, top_n: int,
              customer_rows: np.ndarray | None = None) -> pl.DataFrame:
    """Up to top_n unbought categories per customer: customer_id, rank (1 first), category, score, source.

    With `rules`, the score is the sum of ln(lift) of the rules from the customer's categories, highest first, ties
    by popularity; a positive score is a rule-based pick (source 'rules'), others are labelled popularity picks
    (source 'popularity', the score is then the category's share of customers). Without
    rules (the popularity baseline) every pick is by popularity and the score is the share of customers who
    bought the category. A category nobody bought is never picked (see top_picks).
    """
    picks = top_picks(bought, rules, top_n, customer_rows)
    share = bought.buyers_per_category / max(bought.customers_with_purchases, 1)
    by_rules = picks.scores > 0
    return pl.DataFrame({
        "customer_id": bought.customer_ids.gather(picks.rows),
        "rank": (picks.ranks + 1).astype(np.int32),
        "category": pl.Series(bought.categories, dtype=pl.String).gather(picks.columns),
        "score": np.where(by_rules, picks.scores, share[picks.columns]),
        "source": pl.Series([SOURCE_POPULARITY, SOURCE_RULES], dtype=pl.String).gather(by_rules.astype(np.int64)),
    }, schema=RECOMMENDATION_SCHEMA)


def _cell_keys(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    return (rows.astype(np.int64) << 32) | columns.astype(np.int64)


def hit_rate(recommended: Picks, new_rows: np.ndarray, new_columns: np.ndarray) -> tuple[int, int]:
    """(hits, customers evaluated): the customers with a new category in the window (cells new_rows x
    new_columns), and how many of them bought at least one recommended category there."""
    # Membership by binary search in the sorted new cells (numpy's isin hashes, several times slower here).
    new_keys = np.sort(_cell_keys(new_rows, new_columns))
    keys = _cell_keys(recommended.rows, recommended.columns)
    found = np.minimum(np.searchsorted(new_keys, keys), max(len(new_keys) - 1, 0))
    hit = new_keys[found] == keys if len(new_keys) else np.zeros(len(keys), dtype=bool)
    return _distinct(recommended.rows[hit]), _distinct(new_rows)


def _distinct(rows: np.ndarray) -> int:
    """How many different customer rows (a count per row number: cheaper than hashing for dense row numbers)."""
    return int(np.count_nonzero(np.bincount(rows))) if len(rows) else 0


def evaluate_recommendations(first: FirstPurchases, split: TimeSplit, settings: PredictSettings) -> dict:
    """Rules and recommendations from the purchases before the evaluation cutoff, judged on the categories
    customers bought for the first time in the evaluation window, against the popularity baseline."""
    past = first.before(split.eval_cutoff)
    had_history = past.matrix.getnnz(axis=1) > 0
    window_start, window_end = np.datetime64(split.eval_cutoff, "us"), np.datetime64(split.data_end, "us")
    new = (first.first_ts >= window_start) & (first.first_ts < window_end)
    new &= had_history[first.rows]
    new_rows, new_columns = first.rows[new], first.columns[new]
    # Only the customers who bought something new can hit or miss: recommend for them alone.
    evaluated_rows = np.flatnonzero(np.bincount(new_rows, minlength=len(first.customer_ids)))
    rules = mine_rules(past, settings)
    hits, evaluated = hit_rate(top_picks(past, rules, settings.top_n, evaluated_rows), new_rows, new_columns)
    baseline_hits, _ = hit_rate(top_picks(past, None, settings.top_n, evaluated_rows), new_rows, new_columns)
    rate = hits / evaluated if evaluated else None
    baseline = baseline_hits / evaluated if evaluated else None
    return {
        "status": EVALUATED if evaluated else NO_NEW_PURCHASES,
        "reason": None if evaluated else "no customer bought a new category in the evaluation window",
        "eval_cutoff": split.eval_cutoff, "window_end": split.data_end,
        "customers_evaluated": evaluated, "hits": hits, "hit_rate": rate,
        "popularity_hits": baseline_hits, "popularity_hit_rate": baseline,
        "lift_over_popularity": rate / baseline if rate is not None and baseline else None,
        "rules_used": rules.height,
    }


# --- recommendations: when to reuse the rules ---------------------------------------------------------------------

# The evaluation figures a reusing run copies from the run that mined its rules.
EVALUATION_COLUMNS = ("status", "reason", "eval_cutoff", "window_end", "customers_evaluated", "hits", "hit_rate",
                      "popularity_hits", "popularity_hit_rate", "lift_over_popularity", "rules_used")


def rules_recipe(settings: PredictSettings) -> str:
    """What stored rules and their evaluation must have been made with to be reused."""
    return (f"rules-v{RULES_RECIPE_VERSION} horizon_days={settings.horizon_days} top_n={settings.top_n} "
            f"min_support={settings.min_support} min_confidence={settings.min_confidence}")


@dataclass
class StoredRules:
    version: str  # the run id that mined them
    rules: pl.DataFrame  # predict.category_rules as that run wrote it
    mined: dict  # that run's row of predict.recommendation_eval (its held-out figures)


def choose_rules(con: duckdb.DuckDBPyConnection, run_id: str, split: TimeSplit | None, eval_reason: str | None,
                 settings: PredictSettings) -> tuple[StoredRules | None, str]:
    """The latest rules when this run may reuse them (None: mine), and why."""
    if settings.retrain_every_days == 0:
        return None, "predict.retrain_every_days is 0: every run mines"
    if split is None or eval_reason:
        return None, "no evaluation window: rules are mined every run"
    latest = _row(con, "SELECT rules_version FROM predict.recommendation_eval WHERE run_id <> ? "
                       "ORDER BY evaluated_at DESC LIMIT 1", [run_id])
    if latest is None or latest["rules_version"] is None:
        return None, "no earlier run has rules"
    mined = _row(con, f"SELECT * FROM predict.recommendation_eval WHERE run_id = ? AND rules_action = '{MINED}'",
                 [latest["rules_version"]])
    if mined is None or mined["status"] != EVALUATED:
        return None, f"the run that mined rules {latest['rules_version']} has no evaluation to keep"
    age, too_old = _age_reason("rules", mined["data_end"], split, settings)
    if too_old:
        return None, too_old
    if mined["rules_recipe"] != rules_recipe(settings):
        return None, f"the rule settings changed: the rules have '{mined['rules_recipe']}'"
    rules = con.execute("SELECT * FROM predict.category_rules").pl()
    if set(rules["run_id"].unique()) - {mined["run_id"]}:
        return None, "predict.category_rules no longer holds the rules of that run"
    return StoredRules(mined["run_id"], rules.drop("run_id"), mined), (
        f"reused: mined from data ending {mined['data_end']:%Y-%m-%d}, {_days(age)} before this data "
        f"(mined again at predict.retrain_every_days {settings.retrain_every_days})")


# --- reading and writing the warehouse ------------------------------------------------------------------------------

RUN_TABLES = {
    "churn_model_runs": """
        run_id VARCHAR, trained_at TIMESTAMP, status VARCHAR, reason VARCHAR, model VARCHAR, horizon_days INTEGER,
        min_history_days INTEGER,
        data_start TIMESTAMP, data_end TIMESTAMP, train_cutoff TIMESTAMP, eval_cutoff TIMESTAMP,
        n_train BIGINT, n_eval BIGINT, train_churn_rate DOUBLE, eval_churn_rate DOUBLE, auc DOUBLE, brier DOUBLE,
        brier_baseline DOUBLE, calibration_error DOUBLE, min_auc DOUBLE, max_calibration_error DOUBLE,
        high_risk_threshold DOUBLE, n_scored BIGINT, features VARCHAR[], model_action VARCHAR,
        model_version VARCHAR, model_data_end TIMESTAMP, model_decision VARCHAR, model_recipe VARCHAR,
        model_sha256 VARCHAR, retrain_every_days INTEGER""",
    "churn_calibration": """
        run_id VARCHAR, bin INTEGER, lower DOUBLE, upper DOUBLE, customers BIGINT, mean_predicted DOUBLE,
        observed_rate DOUBLE""",
    "recommendation_eval": """
        run_id VARCHAR, evaluated_at TIMESTAMP, status VARCHAR, reason VARCHAR, top_n INTEGER, horizon_days INTEGER,
        min_history_days INTEGER, data_start TIMESTAMP, data_end TIMESTAMP,
        eval_cutoff TIMESTAMP, window_end TIMESTAMP, customers_evaluated BIGINT, hits BIGINT, hit_rate DOUBLE,
        popularity_hits BIGINT, popularity_hit_rate DOUBLE, lift_over_popularity DOUBLE,
        min_lift_over_popularity DOUBLE, rules_used BIGINT, rules_action VARCHAR, rules_version VARCHAR,
        rules_data_end TIMESTAMP, rules_decision VARCHAR, rules_recipe VARCHAR, retrain_every_days INTEGER""",
}


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The schema and the run tables (history, appended to); the per-customer tables are replaced each run.
    Columns added since a warehouse was created are added to its tables (NULL in the older rows)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for table, columns in RUN_TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{table} ({columns})")
        present = {row[0] for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [SCHEMA, table]).fetchall()}
        for column in (c.strip() for c in columns.split(",")):
            if column.split()[0] not in present:
                con.execute(f"ALTER TABLE {SCHEMA}.{table} ADD COLUMN {column}")


def _insert_row(con: duckdb.DuckDBPyConnection, table: str, row: dict) -> None:
    columns = ", ".join(row)
    con.execute(f"INSERT INTO {SCHEMA}.{table} ({columns}) VALUES ({', '.join('?' for _ in row)})", list(row.values()))


def _replace(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, order_by: str,
             **constants: str) -> None:
    """Replace the table by `frame` plus a column per constant (added in DuckDB: not copied into every row of
    the frame first)."""
    arrow_frame = frame.to_arrow()  # noqa: F841 - read by DuckDB's replacement scan
    extra = "".join(f", ${name}::VARCHAR AS {name}" for name in constants)
    # Sorted again though the frames come in order: writing them in the order they come (preserve_insertion_order)
    # was measured slower in the pipeline (3M recommendations: 2.0 s against 1.6 s), as DuckDB then writes on fewer
    # threads.
    con.execute(f"CREATE OR REPLACE TABLE {SCHEMA}.{table} AS SELECT *{extra} FROM arrow_frame ORDER BY {order_by}",
                constants)


def order_dates(con: duckdb.DuckDBPyConnection) -> tuple[datetime | None, datetime | None]:
    return con.execute("SELECT min(order_ts), max(order_ts) FROM staging.orders").fetchone()


CHURN_SPECS = [
    dg.AssetSpec([SCHEMA, "churn_risk"], group_name="predict", kinds={"duckdb", "scikitlearn"},
                 deps=[["staging", "orders"], ["features", "customer_features"]],
                 description="One row per customer: churn_risk, the calibrated probability of no purchase in the "
                             "next predict.horizon_days days (NULL without orders or without a model), at_risk, "
                             "and the model_version that scored."),
    dg.AssetSpec([SCHEMA, "churn_model_runs"], group_name="predict", kinds={"duckdb"},
                 deps=[["staging", "orders"], ["features", "customer_features"]],
                 description="One row per run: cutoffs, held-out AUC, Brier score and calibration error, whether "
                             "the run trained its model or reused the latest one, or why churn could not be "
                             "trained."),
    dg.AssetSpec([SCHEMA, "churn_calibration"], group_name="predict", kinds={"duckdb"},
                 deps=[["staging", "orders"], ["features", "customer_features"]],
                 description="One row per training run and probability bin on the held-out window: mean predicted "
                             "churn against the observed churn rate."),
]


@dg.multi_asset(specs=CHURN_SPECS, pool="duckdb_writer")
def churn_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """Churn risk per customer from a time-split, calibrated gradient-boosting model, with its held-out AUC and
    calibration recorded per run; the model is retrained every predict.retrain_every_days days of data."""
    settings = source.load().predict
    run_id = context.run.run_id
    models_dir = models_folder(warehouse.file)
    with warehouse.connect() as con:
        ensure_tables(con)
        first, last = order_dates(con)
        split, reason, _ = plan_time_split(first, last, settings)
        columns = BEHAVIOUR_FEATURES + profile_features(con)
        stored, decision = (None, None) if reason else \
            choose_churn_model(con, models_dir, run_id, split, columns, settings)
        result: ChurnResult | str = reason if reason else (
            score_with_stored(con, stored, split, columns) if stored else train_churn(con, split, columns, settings))
        model = {}
        if isinstance(result, str):
            status = NO_DATES if split is None else SHORT_HISTORY if reason else ONE_CLASS
            run = {"status": status, "reason": result, "model": None, "n_scored": 0}
            calibration = calibration_table(np.array([]), np.array([]))
            scores = pl.DataFrame(schema={"customer_id": pl.String, "churn_risk": pl.Float64})
        else:
            run, calibration, scores = result.run, result.calibration, result.scores
            if stored:
                model = {"model_action": REUSED, "model_version": stored.version,
                         "model_data_end": stored.trained["data_end"], "model_recipe": stored.trained["model_recipe"],
                         "model_sha256": stored.trained["model_sha256"]}
            else:
                recipe = churn_recipe(settings)
                # Written before the run row that points at it: a run that dies in between leaves an unused file.
                sha256 = save_model(models_dir, run_id, result.model, columns, recipe)
                model = {"model_action": FITTED, "model_version": run_id, "model_data_end": split.data_end,
                         "model_recipe": recipe, "model_sha256": sha256}
            model["model_decision"] = decision
        row = {"run_id": run_id, "trained_at": datetime.now(), **run, **model,
               "horizon_days": settings.horizon_days, "min_history_days": settings.min_history_days,
               "min_auc": settings.min_auc,
               "max_calibration_error": settings.max_calibration_error,
               "high_risk_threshold": settings.high_risk_threshold,
               "retrain_every_days": settings.retrain_every_days, "features": columns}
        if split is not None:
            row.update(data_start=split.data_start, data_end=split.data_end)
            # A reusing run keeps the cutoffs its model was judged at; any other run records its own.
            row.setdefault("train_cutoff", split.train_cutoff)
            row.setdefault("eval_cutoff", split.eval_cutoff)
        # The scores, the run row and the calibration bins appear together or not at all.
        con.execute("BEGIN TRANSACTION")
        con.execute("""
            CREATE OR REPLACE TABLE predict.churn_risk AS
            SELECT f.customer_id, s.churn_risk, s.churn_risk >= $threshold AS at_risk,
                   $horizon::INTEGER AS horizon_days, $scored_as_of::TIMESTAMP AS scored_as_of,
                   CASE WHEN s.churn_risk IS NOT NULL THEN $model_version::VARCHAR END AS model_version,
                   $run_id AS run_id
            FROM features.customer_features f LEFT JOIN scores s USING (customer_id)
            ORDER BY f.customer_id""", {"threshold": settings.high_risk_threshold, "horizon": settings.horizon_days,
                                        "scored_as_of": split.data_end if split else None,
                                        "model_version": model.get("model_version"), "run_id": run_id})
        con.execute("DELETE FROM predict.churn_model_runs WHERE run_id = ?", [run_id])
        con.execute("DELETE FROM predict.churn_calibration WHERE run_id = ?", [run_id])
        _insert_row(con, "churn_model_runs", row)
        calibrated = calibration.with_columns(pl.lit(run_id).alias("run_id"))  # noqa: F841
        con.execute("INSERT INTO predict.churn_calibration BY NAME SELECT * FROM calibrated")
        con.execute("COMMIT")
        if model.get("model_action") == FITTED:
            remove_other_models(models_dir, keep=run_id)
        [(customers, scored_customers, at_risk)] = con.execute(
            "SELECT count(*), count(churn_risk), count(*) FILTER (WHERE at_risk) FROM predict.churn_risk").fetchall()
        preview = con.execute("SELECT * FROM predict.churn_risk ORDER BY customer_id LIMIT 5").pl()
    summary = {k: row.get(k) for k in ("status", "reason", "auc", "brier", "calibration_error", "n_train", "n_eval",
                                       "model_action", "model_version", "model_decision")}
    yield dg.MaterializeResult(asset_key=[SCHEMA, "churn_risk"], metadata={
        "dagster/row_count": customers, "scored": scored_customers, "at_risk": at_risk, "status": run["status"],
        "reason": run.get("reason") or "", "model_version": model.get("model_version") or "",
        "preview": dg.MetadataValue.md(preview_markdown(preview))})
    yield dg.MaterializeResult(asset_key=[SCHEMA, "churn_model_runs"], metadata={
        **{k: v for k, v in summary.items() if v is not None}, "dagster/row_count": 1})
    yield dg.MaterializeResult(asset_key=[SCHEMA, "churn_calibration"], metadata={
        "dagster/row_count": calibration.height,
        "bins": dg.MetadataValue.md(preview_markdown(calibration, rows=CALIBRATION_BINS))})


RECOMMENDATION_SPECS = [
    dg.AssetSpec([SCHEMA, "category_rules"], group_name="predict", kinds={"duckdb"},
                 deps=[["staging", "order_lines"], ["features", "customer_features"]],
                 description="One row per rule antecedent -> consequent over customers: support, confidence, lift "
                             "(mined again every predict.retrain_every_days days of data)."),
    dg.AssetSpec([SCHEMA, "next_category"], group_name="predict", kinds={"duckdb"},
                 deps=[["staging", "order_lines"], ["features", "customer_features"]],
                 description="Up to predict.top_n rows per customer: the categories they have not bought yet, "
                             "ranked, with the score and whether rules or popularity picked them."),
    dg.AssetSpec([SCHEMA, "recommendation_eval"], group_name="predict", kinds={"duckdb"},
                 deps=[["staging", "order_lines"], ["staging", "orders"], ["features", "customer_features"]],
                 description="One row per run: hit-rate@N on the held-out window against the popularity baseline, "
                             "or why it could not be judged; whether the run mined its rules or reused them."),
]


@dg.multi_asset(specs=RECOMMENDATION_SPECS, pool="duckdb_writer")
def recommendation_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """Co-purchase rules, the top categories each customer has not bought yet, and their held-out hit-rate
    against recommending the most popular categories."""
    settings = source.load().predict
    run_id = context.run.run_id
    with warehouse.connect() as con:
        ensure_tables(con)
        first, last = order_dates(con)
        split, _, eval_reason = plan_time_split(first, last, settings)
        stored, decision = choose_rules(con, run_id, split, eval_reason, settings)
        if stored:
            # Reused rules need no purchase dates: only which categories each customer bought.
            everything = load_purchases(con)
            rules = stored.rules
            evaluation = {k: stored.mined[k] for k in EVALUATION_COLUMNS}
            provenance = {"rules_action": REUSED, "rules_version": stored.version,
                          "rules_data_end": stored.mined["data_end"], "rules_recipe": stored.mined["rules_recipe"]}
        else:
            first_purchases = load_first_purchases(con)
            everything = first_purchases.before(None)
            rules = mine_rules(everything, settings)
            evaluation = ({"status": NO_DATES if split is None else SHORT_HISTORY, "reason": eval_reason}
                          if eval_reason else evaluate_recommendations(first_purchases, split, settings))
            provenance = {"rules_action": MINED, "rules_version": run_id,
                          "rules_data_end": split.data_end if split else None, "rules_recipe": rules_recipe(settings)}
        picks = recommend(everything, rules, settings.top_n)
        row = {"run_id": run_id, "evaluated_at": datetime.now(), **evaluation, **provenance,
               "rules_decision": decision, "top_n": settings.top_n, "horizon_days": settings.horizon_days,
               "min_history_days": settings.min_history_days,
               "min_lift_over_popularity": settings.min_lift_over_popularity,
               "retrain_every_days": settings.retrain_every_days}
        if split is not None:
            row.update(data_start=split.data_start, data_end=split.data_end)
        con.execute("BEGIN TRANSACTION")
        if not stored:
            _replace(con, "category_rules", rules, "antecedent, lift DESC, consequent", run_id=run_id)
        _replace(con, "next_category", picks, "customer_id, rank", run_id=run_id,
                 rules_version=row["rules_version"])
        con.execute("DELETE FROM predict.recommendation_eval WHERE run_id = ?", [run_id])
        _insert_row(con, "recommendation_eval", row)
        con.execute("COMMIT")
    yield dg.MaterializeResult(asset_key=[SCHEMA, "category_rules"], metadata={
        "dagster/row_count": rules.height, "rules_action": row["rules_action"], "rules_version": row["rules_version"],
        "strongest": dg.MetadataValue.md(preview_markdown(rules.sort("lift", descending=True), rows=10))})
    yield dg.MaterializeResult(asset_key=[SCHEMA, "next_category"], metadata={
        "dagster/row_count": picks.height, "customers": int(picks["rank"].eq(1).sum()),
        "from_rules": int((picks["source"] == SOURCE_RULES).sum()),
        "preview": dg.MetadataValue.md(preview_markdown(picks, rows=9))})
    yield dg.MaterializeResult(asset_key=[SCHEMA, "recommendation_eval"], metadata={
        "dagster/row_count": 1, "status": row["status"], "reason": row.get("reason") or "",
        "rules_action": row["rules_action"], "rules_decision": row["rules_decision"] or "",
        **{k: row[k] for k in ("hit_rate", "popularity_hit_rate", "lift_over_popularity", "customers_evaluated")
           if row.get(k) is not None}})
