"""Model layer: choose k, fit the segments, and keep segment ids stable across refreshes.

1. Candidate k over `model.k_range` are scored on a sample: silhouette, Davies-Bouldin, bootstrap stability
   (mean adjusted Rand index between fits on resamples) and the smallest segment's share. The k with the best
   silhouette among those meeting `model.min_segment_share` and `model.min_stability` wins; every score goes
   to `segments.model_runs`. The silhouette's pairwise distances are computed once per run and shared by every
   candidate (the same customers are scored for each k).
2. The final model is fitted on every customer not flagged as an outlier, with imputation and scaling in a
   scikit-learn Pipeline, then every customer is assigned. It starts from the previous model's centres when k and
   the features are unchanged, else from the chosen candidate's centres (already fitted on the selection sample),
   so one run of the full data refines a solution instead of ten random restarts.
3. Stable ids: the new centres are matched to the previous model's (Hungarian assignment on distances in the
   current scaled space). A matched cluster keeps its segment id; a new one gets the next free id.
4. Carrying k: choosing k is the expensive, slow-moving decision. Within `model.reselect_k_every_days` days of
   data after k was last chosen, a run keeps the previous k, refits from the previous centres and skips the
   candidate scoring, unless drift is detected: more than `model.drift_max_moved_share` of the customers changed
   segment since the previous run, the mean distance of the fitted customers to their centre rose by more than
   `model.drift_max_distance_rise`, or a cluster no longer matches any previous segment. Then k is re-chosen. k is
   also re-chosen when the feature columns, the model settings or the algorithm changed, and on the first run.
   Each run's decision and its reason are recorded in `segments.model_runs` (`k_decision`, `k_decision_reason`).
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

import dagster as dg
import duckdb
import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import (
    adjusted_rand_score,
    davies_bouldin_score,
    pairwise_distances,
    silhouette_score,
)
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from assets.features.customer_features import feature_family
from pipelines.core.config import ModelSettings
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.core.sql import preview_markdown, table_exists

LOG_SCALED = ("n_orders", "total_spend", "avg_basket_value")
SILHOUETTE_SAMPLE = 5_000
BOOTSTRAP_FRACTION = 0.8
# k-means runs its OpenMP loops and BLAS calls on one thread. On a small machine the other core is usually busy
# (DuckDB, the rest of the host) and a second worker thread then spin-waits for it: on 2 cores under load, choosing
# k at 100k customers took 17.7 s with the default two threads and 8.2 s with one OpenMP thread; with BLAS (the
# k-means++ seeding) on one thread too, 10.2 s became 3.5 s. Scores are identical; on an idle machine two threads
# won by 10-20% on the final fit at most.
MODEL_THREADS = 1
DISTANCE_BLOCK_ROWS = 65_536
SCALER_BLOCK_ROWS = 65_536
MISSING_VALUE_POLICY = "median of the customers the model is fitted on (MedianImputer inside the Pipeline)"
CHOSEN, CARRIED = "chosen", "carried"


@dataclass(frozen=True)
class CandidateScore:
    k: int
    silhouette: float
    davies_bouldin: float
    stability: float
    min_share: float
    meets_constraints: bool
    # The candidate's centres on the selection sample (scaled space): where the final fit starts without a
    # previous model. Not part of equality: two candidates are the same score whatever their centres.
    centers: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class FittedModel:
    algorithm: str
    k: int
    labels: np.ndarray  # cluster index per customer (0..k-1, before id matching)
    distances: np.ndarray  # distance to the assigned centre in scaled space
    centers_scaled: np.ndarray  # k x features, in the current scaled space
    centers_unscaled: np.ndarray  # k x features, in feature units (after log1p where applied)
    inertia: float
    warm_started: bool  # started from the previous model's centres


@dataclass(frozen=True)
class PreviousRun:
    """The chosen row of the latest run in segments.model_runs: what a run may carry."""

    run_id: str
    k: int
    algorithm: str
    feature_columns: list[str]
    selection_key: str | None  # None: written before k could be carried
    k_selected_run_id: str | None
    k_selected_as_of: datetime | None
    mean_distance: float | None


@dataclass(frozen=True)
class Drift:
    """How far this run's model moved from the previous run's: measured on every run after the first."""

    moved_share: float | None  # customers in both runs whose segment id changed, over customers in both
    distance_change: float | None  # mean distance to centre (fitted customers), relative to the previous run
    unmatched: int  # clusters that matched no previous segment (they got a new id)

    def exceeded(self, settings: ModelSettings) -> str | None:
        """Why this counts as drift, or None."""
        reasons = []
        if self.moved_share is not None and self.moved_share > settings.drift_max_moved_share:
            reasons.append(f"{self.moved_share:.1%} of customers changed segment "
                           f"(model.drift_max_moved_share {settings.drift_max_moved_share:.1%})")
        if self.distance_change is not None and self.distance_change > settings.drift_max_distance_rise:
            reasons.append(f"mean distance to centre rose {self.distance_change:+.1%} "
                           f"(model.drift_max_distance_rise {settings.drift_max_distance_rise:.1%})")
        if self.unmatched:
            reasons.append(f"{self.unmatched} segment(s) matched no previous segment")
        return "; ".join(reasons) or None

    def describe(self) -> str:
        moved = "n/a" if self.moved_share is None else f"{self.moved_share:.1%}"
        change = "n/a" if self.distance_change is None else f"{self.distance_change:+.1%}"
        return f"moved {moved}, mean distance {change}"


class MedianImputer(TransformerMixin, BaseEstimator):
    """Missing values take the column median of the rows it was fitted on, as SimpleImputer(strategy="median").

    The same statistics, computed with a partition per column: SimpleImputer's masked-array median sorts every
    column, and at 1M customers it was the model step's largest cost (6.7 s of CPU against 0.4 s). A column
    without any value imputes 0 (SimpleImputer would drop it; the model never selects such a column).
    """

    def fit(self, X, y=None, rows: np.ndarray | None = None):
        """`rows`: a boolean mask of the rows to take the medians from (all when None), so that a caller holding
        the whole matrix does not have to copy the fitted rows out first. X may be a polars frame of float columns
        (nulls are gaps), whose columns are each contiguous: in a row-by-row matrix of 1M customers, gathering a
        column touches a cache line per value (0.5 s for 29 columns against 0.15 s)."""
        columns = [X.get_column(c).cast(pl.Float64).to_numpy() for c in X.columns] if isinstance(X, pl.DataFrame) \
            else np.asarray(X, dtype=np.float64).T
        statistics = np.zeros(len(columns))
        for j, column in enumerate(columns):
            fitted = column if rows is None else column[rows]
            known = fitted[~np.isnan(fitted)]
            if len(known):
                statistics[j] = np.median(known)
        self.statistics_ = statistics
        self.n_features_in_ = len(columns)
        return self

    def transform(self, X):
        return self.fill(np.array(X, dtype=np.float64))  # a copy: the caller's matrix keeps its gaps

    def fill(self, X: np.ndarray) -> np.ndarray:
        """transform() in place, on a float64 matrix the caller owns; returns it."""
        rows, cols = np.nonzero(np.isnan(X))
        X[rows, cols] = self.statistics_[cols]
        return X


def select_feature_columns(features: pl.DataFrame, families: list[str], rows: np.ndarray | None = None) -> list[str]:
    """Columns of the chosen families that carry information (not all-null, not constant) in the rows of the
    boolean mask `rows` (every row when None)."""
    candidates = [c for c in features.columns if feature_family(c) in families]
    if not candidates:
        return []
    # A column at a time, not a filtered copy of the whole frame (230 MB at 1M customers) to look at.
    values = {c: pl.col(c) if rows is None else pl.col(c).filter(pl.lit(pl.Series(rows))) for c in candidates}
    # min == max over the known values is "fewer than two distinct values", for all columns in one pass.
    bounds = features.select([values[c].min().alias(f"min{i}") for i, c in enumerate(candidates)]
                             + [values[c].max().alias(f"max{i}") for i, c in enumerate(candidates)]).row(0)
    low, high = bounds[:len(candidates)], bounds[len(candidates):]
    return [c for c, lo, hi in zip(candidates, low, high) if lo is not None and lo != hi]


def feature_frame(features: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """The model's view of each feature column, as floats."""
    # Counts and money are heavy-tailed: log1p keeps a few big spenders from owning a cluster.
    return features.select([
        pl.col(c).cast(pl.Float64).log1p().alias(c) if c in LOG_SCALED else pl.col(c).cast(pl.Float64)
        for c in columns
    ])


def preprocessor() -> Pipeline:
    return Pipeline([("impute", MedianImputer()), ("scale", StandardScaler())])


def fit_scaler(rows: np.ndarray) -> StandardScaler:
    """StandardScaler().fit(rows) for a C-ordered matrix without gaps (as prepare() gives): the same two-pass mean
    and variance from the same sums. scikit-learn first counts the missing values of every cell, in a float copy of
    the whole matrix, and then subtracts the mean in another: 2 x 230 MB at 1M customers. Memory never touched
    before is slow to hand out on this VM (about 2 ms per MB), so those copies were 0.5-1 s of the model step;
    here the deviations are taken a block of rows at a time. tests/test_model_carry.py pins every fitted
    attribute to scikit-learn's."""
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    samples = float(len(rows))
    count = np.full(rows.shape[1], samples)
    total = np.sum(rows, axis=0)
    centre = total / count
    correction = squares = None
    for start in range(0, len(rows), SCALER_BLOCK_ROWS):
        deviations = rows[start:start + SCALER_BLOCK_ROWS] - centre
        correction = _running_sum(correction, deviations)
        deviations **= 2
        squares = _running_sum(squares, deviations)
    variance = (squares - correction ** 2 / count) / count
    mean = (0.0 + total) / count  # scikit-learn adds its running sum (0): -0.0 becomes 0.0
    # Columns indistinguishable from a constant keep scale 1, by scikit-learn's bound (_is_constant_feature).
    eps = np.finfo(np.float64).eps
    constant = variance <= samples * eps * variance + (samples * mean * eps) ** 2
    scale = np.sqrt(variance)
    scale[constant] = 1.0
    scaler = StandardScaler()
    scaler.mean_, scaler.var_, scaler.scale_ = mean, variance, scale
    scaler.n_samples_seen_, scaler.n_features_in_ = count[0], rows.shape[1]
    return scaler


def _running_sum(running: np.ndarray | None, block: np.ndarray) -> np.ndarray:
    """np.sum(axis=0) over the rows summed so far and `block`, as over all of them at once: numpy adds the rows of
    a C-ordered matrix one after another, so the running sum enters as the block's first row."""
    return np.sum(block if running is None else np.vstack([running, block]), axis=0)


def prepare(features: np.ndarray | pl.DataFrame, fit_mask: np.ndarray) -> tuple[Pipeline, np.ndarray, np.ndarray]:
    """preprocessor() fitted on the rows of `fit_mask`, with its transform of every row and of the fitted rows.
    `features`: the feature matrix, or the frame of its columns (feature_frame), which is turned into the matrix
    here once the medians have been taken column by column.

    What `preprocessor().fit(matrix[fit_mask])` and two transforms give, with two matrices of every customer: the
    rows imputed and scaled in place, and the fitted rows (at 1M customers each is 230 MB, and allocating and
    filling them cost more than the arithmetic). The rows come back laid out row by row (C order), as k-means
    reads them: its predict() copies a column-ordered matrix first."""
    imputer = MedianImputer().fit(features, rows=fit_mask)
    if isinstance(features, pl.DataFrame):
        scaled = np.require(features.to_numpy(order="c"), np.float64, ["C_CONTIGUOUS", "WRITEABLE"])
    else:
        scaled = np.array(features, dtype=np.float64, order="C")  # a copy: the caller's matrix keeps its gaps
    imputer.fill(scaled)
    fit_rows = scaled[fit_mask]
    scaler = fit_scaler(fit_rows)
    scaler.transform(fit_rows, copy=False)
    scaler.transform(scaled, copy=False)
    return Pipeline([("impute", imputer), ("scale", scaler)]), scaled, fit_rows


def resolve_algorithm(settings: ModelSettings, customers: int) -> str:
    if settings.algorithm != "auto":
        return settings.algorithm
    return "minibatch" if customers >= settings.minibatch_from else "kmeans"


def make_estimator(algorithm: str, k: int, seed: int, init: np.ndarray | None = None, n_init: int = 10):
    if algorithm == "gmm":
        return GaussianMixture(n_components=k, random_state=seed, n_init=1 if init is not None else 3,
                               means_init=init)
    if algorithm == "minibatch":
        return MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=1 if init is not None else 3,
                               init=init if init is not None else "k-means++", batch_size=4096)
    return KMeans(n_clusters=k, random_state=seed, n_init=1 if init is not None else n_init,
                  init=init if init is not None else "k-means++")


def centers_of(estimator) -> np.ndarray:
    return estimator.means_ if isinstance(estimator, GaussianMixture) else estimator.cluster_centers_


def silhouette_sample_distances(sample: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `sample` the silhouette is computed on, and their pairwise distances.

    The same rows `silhouette_score(sample_size=SILHOUETTE_SAMPLE, random_state=seed)` would draw, so each k's
    score is unchanged; the distance matrix (the expensive part) is computed once instead of once per k.
    """
    size = min(SILHOUETTE_SAMPLE, len(sample))
    rows = check_random_state(seed).permutation(len(sample))[:size]
    return rows, pairwise_distances(sample[rows])


def score_candidates(scaled: np.ndarray, settings: ModelSettings, algorithm: str) -> list[CandidateScore]:
    """Score every candidate k on (a sample of) the scaled fit matrix."""
    rng = np.random.default_rng(settings.seed)
    sample = scaled if len(scaled) <= settings.selection_sample else scaled[
        np.sort(rng.choice(len(scaled), settings.selection_sample, replace=False))]
    low, high = (settings.k, settings.k) if settings.k else settings.k_range
    silhouette_rows, silhouette_distances = silhouette_sample_distances(sample, settings.seed)
    scores = []
    for k in range(low, min(high, len(sample) - 1) + 1):
        base = make_estimator(algorithm, k, settings.seed, n_init=4).fit(sample)
        labels = base.predict(sample)
        shares = np.bincount(labels, minlength=k) / len(labels)
        agreements = []
        for round_index in range(settings.bootstrap_rounds):
            picked = rng.choice(len(sample), int(len(sample) * BOOTSTRAP_FRACTION), replace=False)
            resampled = make_estimator(algorithm, k, settings.seed + 1 + round_index, n_init=2).fit(sample[picked])
            agreements.append(adjusted_rand_score(labels, resampled.predict(sample)))
        distinct = len(set(labels.tolist()))
        silhouette = float(silhouette_score(silhouette_distances, labels[silhouette_rows], metric="precomputed")) \
            if len(set(labels[silhouette_rows].tolist())) > 1 else -1.0
        davies_bouldin = float(davies_bouldin_score(sample, labels)) if distinct > 1 else float("inf")
        stability = float(np.mean(agreements))
        scores.append(CandidateScore(
            k=k, silhouette=round(silhouette, 6), davies_bouldin=round(davies_bouldin, 6),
            stability=round(stability, 6), min_share=round(float(shares.min()), 6),
            meets_constraints=bool(shares.min() >= settings.min_segment_share
                                   and stability >= settings.min_stability),
            centers=centers_of(base),
        ))
    return scores


def choose_k(scores: list[CandidateScore]) -> tuple[int, str]:
    """Best silhouette among the candidates that meet the constraints (Davies-Bouldin breaks ties)."""
    valid = [s for s in scores if s.meets_constraints]
    pool, reason = (valid, "best silhouette among candidates meeting share and stability constraints") if valid \
        else (scores, "no candidate met the constraints; best silhouette overall")
    best = max(pool, key=lambda s: (s.silhouette, -s.davies_bouldin, -s.k))
    return best.k, reason


def fit_final(
    prepared: tuple[Pipeline, np.ndarray, np.ndarray], fit_mask: np.ndarray, k: int, algorithm: str, seed: int,
    previous_centers_unscaled: np.ndarray | None, start_centers: np.ndarray | None = None,
) -> tuple[FittedModel, Pipeline]:
    """The final model on the rows of `fit_mask`, every row assigned. `prepared`: what prepare() gives for the
    feature matrix and these rows.

    The fit starts from the previous model's centres (feature units) when given, else from `start_centers` (the
    chosen candidate's, scaled space) with one run instead of several random restarts, else from k-means++."""
    prep, scaled, fit_rows = prepared
    scaler = prep.named_steps["scale"]
    init = scaler.transform(previous_centers_unscaled) if previous_centers_unscaled is not None else start_centers
    estimator = make_estimator(algorithm, k, seed, init=init).fit(fit_rows)
    labels = estimator.predict(scaled)
    centers = centers_of(estimator)
    distances = np.empty(len(scaled))
    # Block by block: the offsets of every customer at once were two more 230 MB matrices at 1M customers. Each
    # row's distance is the same sum whatever the block.
    for start in range(0, len(scaled), DISTANCE_BLOCK_ROWS):
        block = slice(start, start + DISTANCE_BLOCK_ROWS)
        offsets = scaled[block] - centers[labels[block]]
        distances[block] = np.sqrt(np.einsum("ij,ij->i", offsets, offsets))
    inertia = float(getattr(estimator, "inertia_", np.sum(distances[fit_mask] ** 2)))
    return FittedModel(
        algorithm=algorithm, k=k, labels=labels, distances=distances,
        centers_scaled=centers, centers_unscaled=scaler.inverse_transform(centers),
        inertia=inertia, warm_started=previous_centers_unscaled is not None,
    ), prep


def match_segment_ids(
    centers_scaled: np.ndarray, sizes: np.ndarray, previous: dict[int, np.ndarray], to_scaled, max_distance: float,
    next_id: int,
) -> dict[int, int]:
    """cluster index -> stable segment id. Without a previous model, ids follow size (1 = largest)."""
    k = len(centers_scaled)
    order = sorted(range(k), key=lambda c: (-sizes[c], tuple(np.round(centers_scaled[c], 9))))
    if not previous:
        return {cluster: rank + 1 for rank, cluster in enumerate(order)}
    previous_ids = sorted(previous)
    previous_scaled = to_scaled(np.vstack([previous[i] for i in previous_ids]))
    cost = np.linalg.norm(centers_scaled[:, None, :] - previous_scaled[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(cost)
    mapping = {r: previous_ids[c] for r, c in zip(rows, cols) if cost[r, c] <= max_distance}
    for cluster in order:
        if cluster not in mapping:
            mapping[cluster] = next_id
            next_id += 1
    return mapping


def load_previous_centers(con: duckdb.DuckDBPyConnection, columns: list[str]) -> tuple[dict[int, np.ndarray], int]:
    """The latest model's centres on the current feature columns, and the next unused segment id."""
    if not table_exists(con, "model.segment_centers"):
        return {}, 1
    rows = con.execute("""
        SELECT segment_id, feature, center FROM model.segment_centers
        WHERE model_version = (SELECT model_version FROM model.segment_centers ORDER BY fitted_at DESC LIMIT 1)
    """).fetchall()
    used = con.execute("SELECT max(segment_id) FROM model.segment_centers").fetchone()[0] or 0
    by_segment: dict[int, dict[str, float]] = {}
    for segment_id, feature, center in rows:
        by_segment.setdefault(segment_id, {})[feature] = center
    if not by_segment or any(set(columns) - set(values) for values in by_segment.values()):
        # A feature the previous model did not have (a new category) leaves nothing comparable: fresh ids.
        return {}, used + 1
    return {sid: np.array([values[c] for c in columns]) for sid, values in by_segment.items()}, used + 1


# Columns added to segments.model_runs for carrying k; a warehouse from before gets them (NULL in its old rows).
CARRY_COLUMNS = {
    "k_decision": "VARCHAR", "k_decision_reason": "VARCHAR", "k_selected_run_id": "VARCHAR",
    "k_selected_as_of": "TIMESTAMP", "data_as_of": "TIMESTAMP", "selection_key": "VARCHAR",
    "mean_distance": "DOUBLE", "moved_share": "DOUBLE", "distance_change": "DOUBLE",
}


def load_previous_run(con: duckdb.DuckDBPyConnection) -> PreviousRun | None:
    if not table_exists(con, "segments.model_runs"):
        return None
    present = {row[0] for row in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'segments' "
        "AND table_name = 'model_runs'").fetchall()}
    carry = [c if c in present else f"NULL AS {c}" for c in
             ("selection_key", "k_selected_run_id", "k_selected_as_of", "mean_distance")]
    row = con.execute(f"""
        SELECT run_id, k, algorithm, feature_columns, {', '.join(carry)} FROM segments.model_runs
        WHERE chosen ORDER BY fitted_at DESC LIMIT 1""").fetchone()
    if row is None:
        return None
    return PreviousRun(run_id=row[0], k=row[1], algorithm=row[2], feature_columns=list(row[3] or []),
                       selection_key=row[4], k_selected_run_id=row[5], k_selected_as_of=row[6], mean_distance=row[7])


def data_as_of(con: duckdb.DuckDBPyConnection, now: datetime) -> datetime:
    """The data's own date: the latest order time, or the run's time when orders carry no dates. The window of
    `model.reselect_k_every_days` is counted on it, so a backfill of many days in one night re-chooses k as
    often as the nights it stands for, and reloading the same data never does."""
    latest = con.execute("SELECT max(order_ts) FROM staging.orders").fetchone()[0] \
        if table_exists(con, "staging.orders") else None
    return latest if latest is not None else now


def selection_key(settings: ModelSettings, algorithm: str) -> str:
    """Fingerprint of everything that decides which k wins: a change re-chooses k at once."""
    decisive = {"k": settings.k, "k_range": list(settings.k_range), "min_segment_share": settings.min_segment_share,
                "min_stability": settings.min_stability, "bootstrap_rounds": settings.bootstrap_rounds,
                "selection_sample": settings.selection_sample, "seed": settings.seed, "algorithm": algorithm}
    return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:12]


def reselect_reason(previous: PreviousRun | None, columns: list[str], key: str, as_of: datetime,
                    previous_centers: dict[int, np.ndarray], settings: ModelSettings) -> str | None:
    """Why this run must re-choose k before any fit, or None when it may carry the previous run's k."""
    if previous is None:
        return "first run: no previous model"
    if settings.reselect_k_every_days == 0:
        return "model.reselect_k_every_days is 0: k is re-chosen on every run"
    if set(previous.feature_columns) != set(columns):
        added = sorted(set(columns) - set(previous.feature_columns))
        removed = sorted(set(previous.feature_columns) - set(columns))
        return f"feature columns changed since the previous run (added {added}, removed {removed})"
    if previous.selection_key is None or previous.k_selected_as_of is None:
        return "the previous run did not record how its k was chosen"
    if previous.selection_key != key:
        return "model settings or algorithm changed since k was chosen"
    if len(previous_centers) != previous.k:
        return "the previous model's centres are not available"
    age = (as_of - previous.k_selected_as_of).total_seconds() / 86_400
    if age < 0:
        return f"the data now ends {-age:.1f} days before the data k was chosen on (reloaded or restated)"
    if age >= settings.reselect_k_every_days:
        return (f"k was chosen {age:.1f} days of data ago "
                f"(model.reselect_k_every_days = {settings.reselect_k_every_days})")
    return None


def moved_share(con: duckdb.DuckDBPyConnection, customer_ids: pl.Series, segment_ids: np.ndarray) -> float | None:
    """Share of the customers in both this run and the previous one whose segment id changed."""
    if not table_exists(con, "model.customer_clusters"):
        return None
    # Read by DuckDB's replacement scan.
    current_assignments = pl.DataFrame(  # noqa: F841
        {"customer_id": customer_ids, "segment_id": segment_ids}).to_arrow()
    both, moved = con.execute("""
        SELECT count(*), count(*) FILTER (WHERE p.segment_id <> c.segment_id)
        FROM current_assignments c JOIN model.customer_clusters p USING (customer_id)""").fetchone()
    return moved / both if both else None


def measure_drift(con, customer_ids: pl.Series, segment_ids: np.ndarray, mean_distance: float,
                  previous: PreviousRun | None, unmatched: int) -> Drift:
    change = mean_distance / previous.mean_distance - 1 if previous is not None and previous.mean_distance else None
    return Drift(moved_share=moved_share(con, customer_ids, segment_ids) if previous is not None else None,
                 distance_change=change, unmatched=unmatched)


def missing_value_report(features: pl.DataFrame, columns: list[str], run_id: str) -> pl.DataFrame:
    """quality.missing_values: per model feature, how many customers had no value and were imputed."""
    rows = features.height
    return pl.DataFrame({
        "run_id": [run_id] * len(columns),
        "column_name": columns,
        "customers": [rows] * len(columns),
        "missing": [features.get_column(c).null_count() for c in columns],
        "policy": [MISSING_VALUE_POLICY] * len(columns),
    }, schema_overrides={"customers": pl.Int64, "missing": pl.Int64}).with_columns(
        (pl.col("missing") / pl.col("customers")).alias("imputed_share")
    )


def write_model_tables(con, run_id: str, model_version: str, fitted_at: datetime, assignments: pl.DataFrame,
                       centers: pl.DataFrame, candidates: pl.DataFrame, missing: pl.DataFrame) -> None:
    arrow_assignments = assignments.to_arrow()  # noqa: F841 - the arrow_* names are read by DuckDB's scans
    arrow_centers = centers.to_arrow()  # noqa: F841
    arrow_candidates = candidates.to_arrow()  # noqa: F841
    arrow_missing = missing.to_arrow()  # noqa: F841
    con.execute("BEGIN TRANSACTION")
    con.execute("CREATE OR REPLACE TABLE model.customer_clusters AS SELECT * FROM arrow_assignments")
    con.execute("""CREATE TABLE IF NOT EXISTS model.segment_centers (
        model_version VARCHAR, segment_id INTEGER, feature VARCHAR, center DOUBLE, fitted_at TIMESTAMP)""")
    con.execute("DELETE FROM model.segment_centers WHERE model_version = ?", [model_version])
    con.execute("INSERT INTO model.segment_centers SELECT * FROM arrow_centers")
    con.execute("""CREATE TABLE IF NOT EXISTS segments.model_runs (
        run_id VARCHAR, model_version VARCHAR, algorithm VARCHAR, k INTEGER, chosen BOOLEAN, silhouette DOUBLE,
        davies_bouldin DOUBLE, stability DOUBLE, min_share DOUBLE, meets_constraints BOOLEAN, reason VARCHAR,
        n_customers BIGINT, n_fitted BIGINT, feature_columns VARCHAR[], inertia DOUBLE, warm_started BOOLEAN,
        fitted_at TIMESTAMP)""")
    for column, kind in CARRY_COLUMNS.items():
        con.execute(f"ALTER TABLE segments.model_runs ADD COLUMN IF NOT EXISTS {column} {kind}")
    con.execute("DELETE FROM segments.model_runs WHERE run_id = ?", [run_id])
    con.execute("INSERT INTO segments.model_runs BY NAME SELECT * FROM arrow_candidates")
    con.execute("CREATE OR REPLACE TABLE quality.missing_values AS SELECT * FROM arrow_missing")
    con.execute("COMMIT")


def carried_candidates(con: duckdb.DuckDBPyConnection, previous: PreviousRun) -> list[CandidateScore]:
    """The candidate scores of the previous run (themselves those of the run that chose k): a run that carries k
    repeats them, so every run's rows in segments.model_runs show the scores behind its k."""
    rows = con.execute("""SELECT k, silhouette, davies_bouldin, stability, min_share, meets_constraints
                          FROM segments.model_runs WHERE run_id = ? ORDER BY k""", [previous.run_id]).fetchall()
    return [CandidateScore(*row) for row in rows]


@dataclass
class Decision:
    """How this run's k came about, for segments.model_runs."""

    decision: str  # chosen | carried
    reason: str
    selected_run_id: str
    selected_as_of: datetime


@dg.asset(
    key=["model", "customer_clusters"],
    deps=[["features", "customer_features"], ["quality", "outliers"], ["staging", "orders"]],
    group_name="model",
    kinds={"scikitlearn", "duckdb"},
    pool="duckdb_writer",
)
def customer_clusters(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource
) -> dg.MaterializeResult:
    """One row per customer (grain: customer_id) with its stable segment id, from features.customer_features,
    fitted without the customers flagged in quality.outliers. Candidate k scores and how k was decided (chosen
    or carried, and why) go to segments.model_runs, centres to model.segment_centers."""
    settings = source.load().model
    run_id = context.run.run_id
    fitted_at = datetime.now(timezone.utc).replace(tzinfo=None)
    with warehouse.connect() as con:
        features = con.execute("""
            SELECT f.*, COALESCE(o.is_outlier, FALSE) AS _is_outlier
            FROM features.customer_features f LEFT JOIN quality.outliers o USING (customer_id)
            ORDER BY customer_id""").pl()
        fit_mask = ~features.get_column("_is_outlier").to_numpy()
        features = features.drop("_is_outlier")
        if int(fit_mask.sum()) < 3:
            fit_mask = np.ones(features.height, dtype=bool)
        columns = select_feature_columns(features, list(settings.features), rows=fit_mask)
        if not columns:
            raise ValueError(f"no usable feature columns in families {settings.features}: all empty or constant")
        algorithm = resolve_algorithm(settings, int(fit_mask.sum()))
        prepared = prepare(feature_frame(features, columns), fit_mask)  # serves choosing k and the final model
        prep, _, fit_rows = prepared
        to_scaled = prep.named_steps["scale"].transform
        customer_ids = features.get_column("customer_id")
        previous_run = load_previous_run(con)
        previous, next_id = load_previous_centers(con, columns)
        as_of = data_as_of(con, fitted_at)
        key = selection_key(settings, algorithm)

        def assign(model: FittedModel) -> tuple[dict[int, int], np.ndarray, Drift]:
            sizes = np.bincount(model.labels, minlength=model.k)
            mapping = match_segment_ids(model.centers_scaled, sizes, previous, to_scaled,
                                        settings.match_max_distance, next_id)
            segment_ids = np.array([mapping[c] for c in range(model.k)], dtype=np.int32)[model.labels]
            unmatched = sum(1 for sid in mapping.values() if sid not in previous) if previous else 0
            drift = measure_drift(con, customer_ids, segment_ids, float(model.distances[fit_mask].mean()),
                                  previous_run, unmatched)
            return mapping, segment_ids, drift

        model = candidates = decision = None
        reason = reselect_reason(previous_run, columns, key, as_of, previous, settings)
        if reason is None:
            # Within the window: the previous k, refitted from the previous centres, no candidate scoring.
            warm = np.vstack([previous[i] for i in sorted(previous)])
            with threadpool_limits(limits=MODEL_THREADS):
                model, _ = fit_final(prepared, fit_mask, previous_run.k, algorithm, settings.seed, warm)
            mapping, segment_ids, drift = assign(model)
            drifted = drift.exceeded(settings)
            if drifted is None:
                candidates = carried_candidates(con, previous_run)
                decision = Decision(CARRIED, f"k carried from run {previous_run.k_selected_run_id}, chosen "
                                    f"{(as_of - previous_run.k_selected_as_of).total_seconds() / 86_400:.1f} "
                                    f"days of data ago; no drift ({drift.describe()})",
                                    previous_run.k_selected_run_id, previous_run.k_selected_as_of)
            else:
                reason = f"drift since the previous run: {drifted}"
        if decision is None:
            with threadpool_limits(limits=MODEL_THREADS):
                candidates = score_candidates(fit_rows, settings, algorithm)
            if not candidates:
                raise ValueError(f"cannot form {settings.k or settings.k_range[0]} segments from "
                                 f"{int(fit_mask.sum())} customers")
            k, choice = choose_k(candidates)
            decision = Decision(CHOSEN, f"{reason}; {choice}", run_id, as_of)
            # A drifted carry that re-chooses the same k already has this run's fit: the same start, the same data.
            if model is None or model.k != k:
                start = next(c.centers for c in candidates if c.k == k)
                # The previous model is a start only on the very same columns; ids are still matched on the
                # columns both share (load_previous_centers).
                same_columns = previous_run is not None and set(previous_run.feature_columns) == set(columns)
                warm = np.vstack([previous[i] for i in sorted(previous)]) \
                    if len(previous) == k and same_columns else None
                with threadpool_limits(limits=MODEL_THREADS):
                    model, _ = fit_final(prepared, fit_mask, k, algorithm, settings.seed, warm,
                                         start_centers=start)
                mapping, segment_ids, drift = assign(model)
        k = model.k
        fingerprint = hashlib.sha256(json.dumps(
            {"k": k, "algorithm": algorithm, "seed": settings.seed, "columns": columns,
             "centers": {str(mapping[c]): np.round(model.centers_unscaled[c], 6).tolist() for c in range(k)}},
            sort_keys=True).encode()).hexdigest()[:10]
        model_version = f"{algorithm}-k{k}-{fingerprint}"
        assignments = pl.DataFrame({"customer_id": customer_ids, "segment_id": segment_ids,
                                    "distance": model.distances, "fitted_on": fit_mask})
        centers = pl.DataFrame({
            "model_version": model_version,
            "segment_id": [mapping[c] for c in range(k) for _ in columns],
            "feature": [column for _ in range(k) for column in columns],
            "center": model.centers_unscaled.reshape(-1),
            "fitted_at": fitted_at,
        }, schema_overrides={"segment_id": pl.Int32})
        mean_distance = float(model.distances[fit_mask].mean())
        candidate_rows = pl.DataFrame([{
            "run_id": run_id, "model_version": model_version, "algorithm": algorithm, "k": c.k,
            "chosen": c.k == k, "silhouette": c.silhouette, "davies_bouldin": c.davies_bouldin,
            "stability": c.stability, "min_share": c.min_share, "meets_constraints": c.meets_constraints,
            "reason": decision.reason if c.k == k else None, "n_customers": features.height,
            "n_fitted": int(fit_mask.sum()), "feature_columns": columns,
            "inertia": model.inertia if c.k == k else None,
            "warm_started": model.warm_started if c.k == k else None, "fitted_at": fitted_at,
            "k_decision": decision.decision, "k_decision_reason": decision.reason,
            "k_selected_run_id": decision.selected_run_id, "k_selected_as_of": decision.selected_as_of,
            "data_as_of": as_of, "selection_key": key,
            "mean_distance": mean_distance if c.k == k else None,
            "moved_share": drift.moved_share, "distance_change": drift.distance_change,
        } for c in candidates], schema_overrides={
            "k": pl.Int32, "reason": pl.String, "inertia": pl.Float64, "warm_started": pl.Boolean,
            "k_selected_as_of": pl.Datetime("us"), "data_as_of": pl.Datetime("us"), "mean_distance": pl.Float64,
            "moved_share": pl.Float64, "distance_change": pl.Float64})
        missing = missing_value_report(features, columns, run_id)
        write_model_tables(con, run_id, model_version, fitted_at, assignments, centers, candidate_rows, missing)
    counts = assignments.group_by("segment_id").len().sort("segment_id")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": assignments.height,
            "model_version": model_version,
            "algorithm": algorithm,
            "k": k,
            "k_decision": decision.decision,
            "k_choice": decision.reason,
            "warm_started": model.warm_started,
            "moved_share": -1.0 if drift.moved_share is None else drift.moved_share,  # -1: no previous run
            "features": dg.MetadataValue.json(columns),
            "fitted_on": int(fit_mask.sum()),
            "left_out_as_outliers": int((~fit_mask).sum()),
            "candidates": dg.MetadataValue.md(preview_markdown(candidate_rows.select(
                "k", "chosen", "silhouette", "davies_bouldin", "stability", "min_share", "meets_constraints"), 20)),
            "segment_sizes": dg.MetadataValue.json(dict(zip(counts["segment_id"].to_list(), counts["len"].to_list()))),
        }
    )
