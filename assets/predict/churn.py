"""Churn risk: features and labels at a cutoff, the calibrated gradient-boosting model, scoring and the
held-out evaluation of one training run."""

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import numpy as np
import polars as pl
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from assets.predict.runs import TRAINED, TimeSplit
from pipelines.core.config import PredictSettings

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
# scikit-learn's OpenMP loops on one thread. The other core of a small machine is usually busy (DuckDB, the rest of
# the host), and a second worker thread then spin-waits for it: on 2 cores under load, fitting the earlier recipe
# (3 calibration folds, 200 trees each) on 80k customers took 23 s with the default two threads and 2.8 s with one;
# scoring 80k customers 3.9 s and 1.5 s (see MODEL_THREADS in assets/model/ for the same effect on k-means).
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
PROFILE_FEATURES = ["age", "income"]
# The model is judged against ranking customers by recency alone (longest since the last order = most at risk), on
# the same held-out customers: that ranking costs nothing and is what a shop does without a model. A held-out AUC
# less than this much above it means the model adds nothing worth its complexity (a CD store's export: model 0.842,
# recency alone 0.838); the check and the report then say so. 0.01 is about ten times the AUC's standard error on a
# full evaluation sample (EVAL_SAMPLE), so a gain below it is not a difference to rely on.
MIN_GAIN_OVER_RECENCY = 0.01
BEHAVIOUR_FEATURES = [
    "recency_days", "orders_last_30d", "orders_last_14d", "orders_per_day", "mean_gap_days", "last_gap_days",
    "gap_trend", "overdue_ratio", "recency_over_max_gap", "avg_basket_value",
]


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
    return con.execute(churn_features_sql(profile_columns, orders, profiles, len(cutoffs) == 1),
                       {"cutoffs": cutoffs}).pl()


def churn_features_sql(profile_columns: list[str], orders: str = "staging.orders",
                       profiles: str = "features.customer_features", one_cutoff: bool = False) -> str:
    """The SELECT behind churn_features, with the cutoffs as the parameter $cutoffs."""
    columns = "".join(f", p.{column}::DOUBLE AS {column}" for column in profile_columns)
    join = f"LEFT JOIN {profiles} p USING (customer_id)" if profile_columns else ""
    # With one cutoff (a night that scores with a stored model) `ordered` holds only the orders before it, so each
    # pairs with it: no inequality join to evaluate over every order (0.3 s of CPU at 4.4M orders).
    before_cutoff = "TRUE" if one_cutoff else "o.order_ts < c.cutoff"
    return CHURN_FEATURES_SQL.format(orders=orders, profile_columns=columns, profile_join=join,
                                     before_cutoff=before_cutoff)


@contextmanager
def churn_features_by_cutoff(con: duckdb.DuckDBPyConnection, cutoffs: list[datetime], profile_columns: list[str]):
    """churn_features of every cutoff in one pass over the orders, kept in a DuckDB temporary table (which spills
    to disk beyond DuckDB's memory limit); yields a function returning one cutoff's rows as a frame. Taken one
    cutoff at a time, a run holds one cutoff's frame instead of every cutoff's and their partitions: the churn
    step's peak at 1M customers fell from 1.7 to about 1 GB, and it grows with the customers."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE churn_features_by_cutoff AS "
                f"{churn_features_sql(profile_columns)}", {"cutoffs": cutoffs})
    try:
        yield lambda cutoff: con.execute(
            "SELECT * EXCLUDE (cutoff) FROM churn_features_by_cutoff WHERE cutoff = $cutoff", {"cutoff": cutoff}).pl()
    finally:
        con.execute("DROP TABLE IF EXISTS churn_features_by_cutoff")


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
            # The rows come in customer_id order (seeded_rows), and a shop's member numbers follow the order in which
            # its customers joined, so neighbouring rows buy alike. Unshuffled folds would each hold out a block of
            # similar customers that the other folds never saw: the out-of-fold predictions then say little, and the
            # isotonic calibration fitted on them flattens to one value for everyone (AUC 0.5, every customer at
            # risk, on a trial export whose card numbers ran group by group). Seeded, so a run is repeatable.
            folds = StratifiedKFold(n_splits=CALIBRATION_FOLDS, shuffle=True, random_state=seed)
            model = CalibratedClassifierCV(_booster(seed, early_stopping=rows >= EARLY_STOPPING_FROM), method=method,
                                           cv=folds, ensemble=False)
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


def recency_baseline(labels: np.ndarray, features: pl.DataFrame, auc: float) -> dict:
    """recency_auc, the held-out AUC of ranking by recency_days alone, and auc_gain_over_recency, the model's AUC
    minus it. A customer without a recency (never ordered before the cutoff) ranks as the most at risk."""
    recency = features.get_column("recency_days").cast(pl.Float64)
    recency = recency.fill_null(recency.max() + 1 if recency.drop_nulls().len() else 0.0).to_numpy()
    recency_auc = float(roc_auc_score(labels, recency))
    return {"recency_auc": recency_auc, "auc_gain_over_recency": auc - recency_auc}


def train_churn(con: duckdb.DuckDBPyConnection, split: TimeSplit, columns: list[str], settings: PredictSettings) \
        -> ChurnResult | str:
    """Train at the training cutoff, judge on the evaluation window, refit one horizon later and score as of the
    end of the data. Returns the reason instead when a window has a single class (nothing to learn or judge)."""
    profile_columns = [c for c in columns if c in PROFILE_FEATURES]
    cutoffs = [split.train_cutoff, split.eval_cutoff, split.data_end]
    with churn_features_by_cutoff(con, cutoffs, profile_columns) as features_at_cutoff:
        train = features_at_cutoff(split.train_cutoff)
        train_y = churn_labels(con, train["customer_id"], split.train_cutoff, split.horizon)
        held_out = features_at_cutoff(split.eval_cutoff)
        held_out_y = churn_labels(con, held_out["customer_id"], split.eval_cutoff, split.horizon)
        for name, labels in (("training", train_y), ("evaluation", held_out_y)):
            if len(labels) < 2 * CALIBRATION_FOLDS or np.bincount(labels, minlength=2).min() < CALIBRATION_FOLDS:
                return (f"the {name} window has {int(labels.sum())} churned and {int(len(labels) - labels.sum())} "
                        f"retained customers; both classes need at least {CALIBRATION_FOLDS}")
        rows = seeded_rows(train["customer_id"], settings.train_sample, settings.seed)
        model = fit_churn_model(_matrix(train[rows], columns), train_y[rows], settings.seed)
        del train  # only its sample was needed: one cutoff's frame is held at a time (gigabytes at 10M customers)
        judged = seeded_rows(held_out["customer_id"], EVAL_SAMPLE, settings.seed)
        judged_y, judged_features = held_out_y[judged], held_out[judged]
        predicted = churn_probability(model, _matrix(judged_features, columns))
        calibration = calibration_table(judged_y, predicted)
        auc = float(roc_auc_score(judged_y, predicted))

        # The published scores: the same recipe on the most recent labelled window, applied as of the end.
        refit_rows = seeded_rows(held_out["customer_id"], settings.train_sample, settings.seed)
        scorer = fit_churn_model(_matrix(held_out[refit_rows], columns), held_out_y[refit_rows], settings.seed)
        del held_out
        scores = _scores(scorer, features_at_cutoff(split.data_end), columns)
    run = {
        "status": TRAINED, "reason": None, "model": f"{MODEL_NAME} ({calibration_scheme(len(rows))})",
        "train_cutoff": split.train_cutoff, "eval_cutoff": split.eval_cutoff,
        "n_train": len(rows), "n_eval": len(judged),
        "train_churn_rate": float(train_y.mean()), "eval_churn_rate": float(judged_y.mean()),
        "auc": auc, **recency_baseline(judged_y, judged_features, auc),
        "brier": float(brier_score_loss(judged_y, predicted)),
        # The Brier score of always forecasting the training churn rate: the bar a useful model clears.
        "brier_baseline": float(brier_score_loss(judged_y, np.full(len(judged_y), train_y.mean()))),
        "calibration_error": calibration_error(calibration),
        "n_scored": scores.height,
    }
    return ChurnResult(run, calibration, scores, scorer)

