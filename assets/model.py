"""Model layer: choose k, fit the segments, and keep segment ids stable across refreshes.

1. Candidate k over `model.k_range` are scored on a sample: silhouette, Davies-Bouldin, bootstrap stability
   (mean adjusted Rand index between fits on resamples) and the smallest segment's share. The k with the best
   silhouette among those meeting `model.min_segment_share` and `model.min_stability` wins; every score goes
   to `segments.model_runs`. The silhouette's pairwise distances are computed once per run and shared by every
   candidate (the same customers are scored for each k).
2. The final model is fitted on every customer not flagged as an outlier, with imputation and scaling in a
   scikit-learn Pipeline, then every customer is assigned.
3. Stable ids: the new centres are matched to the previous model's (Hungarian assignment on distances in the
   current scaled space). A matched cluster keeps its segment id; a new one gets the next free id. When the
   previous model had the same k and features, the fit starts from its centres, so one more day of data moves
   few customers.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone

import dagster as dg
import duckdb
import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.impute import SimpleImputer
from sklearn.metrics import adjusted_rand_score, davies_bouldin_score, pairwise_distances, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from assets.features import feature_family
from assets.ingest import preview_markdown
from pipelines.config import ModelSettings
from pipelines.resources import SourceResource, WarehouseResource

LOG_SCALED = ("n_orders", "total_spend", "avg_basket_value")
SILHOUETTE_SAMPLE = 5_000
BOOTSTRAP_FRACTION = 0.8
# k-means runs its OpenMP loops and BLAS calls on one thread. On a small machine the other core is usually busy
# (DuckDB, the rest of the host) and a second worker thread then spin-waits for it: on 2 cores under load, choosing
# k at 100k customers took 17.7 s with the default two threads and 8.2 s with one OpenMP thread; with BLAS (the
# k-means++ seeding) on one thread too, 10.2 s became 3.5 s. Scores are identical; on an idle machine two threads
# won by 10-20% on the final fit at most.
MODEL_THREADS = 1
MISSING_VALUE_POLICY = "median of the customers the model is fitted on (SimpleImputer inside the Pipeline)"


@dataclass(frozen=True)
class CandidateScore:
    k: int
    silhouette: float
    davies_bouldin: float
    stability: float
    min_share: float
    meets_constraints: bool


@dataclass(frozen=True)
class FittedModel:
    algorithm: str
    k: int
    labels: np.ndarray  # cluster index per customer (0..k-1, before id matching)
    distances: np.ndarray  # distance to the assigned centre in scaled space
    centers_scaled: np.ndarray  # k x features, in the current scaled space
    centers_unscaled: np.ndarray  # k x features, in feature units (after log1p where applied)
    inertia: float
    warm_started: bool


def select_feature_columns(features: pl.DataFrame, families: list[str]) -> list[str]:
    """Columns of the chosen families that carry information (not all-null, not constant)."""
    chosen = []
    for column in features.columns:
        if feature_family(column) not in families:
            continue
        values = features.get_column(column)
        if values.null_count() == len(values) or values.drop_nulls().n_unique() < 2:
            continue
        chosen.append(column)
    return chosen


def feature_matrix(features: pl.DataFrame, columns: list[str]) -> np.ndarray:
    # Counts and money are heavy-tailed: log1p keeps a few big spenders from owning a cluster.
    expressions = [
        pl.col(c).cast(pl.Float64).log1p().alias(c) if c in LOG_SCALED else pl.col(c).cast(pl.Float64)
        for c in columns
    ]
    return features.select(expressions).to_numpy()


def preprocessor() -> Pipeline:
    return Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])


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
    matrix: np.ndarray, fit_mask: np.ndarray, k: int, algorithm: str, seed: int,
    previous_centers_unscaled: np.ndarray | None, prep: Pipeline | None = None,
) -> tuple[FittedModel, Pipeline]:
    """The final model on the rows of `fit_mask`, every row assigned. `prep`: the preprocessor already fitted on
    those rows (fitted here when None)."""
    prep = prep if prep is not None else preprocessor().fit(matrix[fit_mask])
    scaled = prep.transform(matrix)
    init = prep.named_steps["scale"].transform(previous_centers_unscaled) \
        if previous_centers_unscaled is not None else None
    estimator = make_estimator(algorithm, k, seed, init=init).fit(scaled[fit_mask])
    labels = estimator.predict(scaled)
    centers = centers_of(estimator)
    distances = np.linalg.norm(scaled - centers[labels], axis=1)
    inertia = float(getattr(estimator, "inertia_", np.sum(distances[fit_mask] ** 2)))
    return FittedModel(
        algorithm=algorithm, k=k, labels=labels, distances=distances,
        centers_scaled=centers, centers_unscaled=prep.named_steps["scale"].inverse_transform(centers),
        inertia=inertia, warm_started=init is not None,
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
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'model' "
                         "AND table_name = 'segment_centers'").fetchone()[0]
    if not exists:
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
    con.execute("DELETE FROM segments.model_runs WHERE run_id = ?", [run_id])
    con.execute("INSERT INTO segments.model_runs SELECT * FROM arrow_candidates")
    con.execute("CREATE OR REPLACE TABLE quality.missing_values AS SELECT * FROM arrow_missing")
    con.execute("COMMIT")


@dg.asset(
    key=["model", "customer_clusters"],
    deps=[["features", "customer_features"], ["quality", "outliers"]],
    group_name="model",
    kinds={"scikitlearn", "duckdb"},
    pool="duckdb_writer",
)
def customer_clusters(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource
) -> dg.MaterializeResult:
    """One row per customer (grain: customer_id) with its stable segment id, from features.customer_features,
    fitted without the customers flagged in quality.outliers. Candidate k scores go to segments.model_runs,
    centres to model.segment_centers."""
    settings = source.load().model
    with warehouse.connect() as con:
        features = con.execute("""
            SELECT f.*, COALESCE(o.is_outlier, FALSE) AS _is_outlier
            FROM features.customer_features f LEFT JOIN quality.outliers o USING (customer_id)
            ORDER BY customer_id""").pl()
        fit_mask = ~features.get_column("_is_outlier").to_numpy()
        features = features.drop("_is_outlier")
        if int(fit_mask.sum()) < 3:
            fit_mask = np.ones(features.height, dtype=bool)
        columns = select_feature_columns(features.filter(pl.Series(fit_mask)), list(settings.features))
        if not columns:
            raise ValueError(f"no usable feature columns in families {settings.features}: all empty or constant")
        matrix = feature_matrix(features, columns)
        algorithm = resolve_algorithm(settings, int(fit_mask.sum()))
        prep = preprocessor().fit(matrix[fit_mask])  # one fit serves choosing k and the final model
        with threadpool_limits(limits=MODEL_THREADS):
            candidates = score_candidates(prep.transform(matrix[fit_mask]), settings, algorithm)
        if not candidates:
            raise ValueError(f"cannot form {settings.k or settings.k_range[0]} segments from {int(fit_mask.sum())} "
                             "customers")
        k, reason = choose_k(candidates)
        previous, next_id = load_previous_centers(con, columns)
        warm = np.vstack([previous[i] for i in sorted(previous)]) if len(previous) == k else None
        with threadpool_limits(limits=MODEL_THREADS):
            model, prep = fit_final(matrix, fit_mask, k, algorithm, settings.seed, warm, prep)
        sizes = np.bincount(model.labels, minlength=k)
        mapping = match_segment_ids(model.centers_scaled, sizes, previous, prep.named_steps["scale"].transform,
                                    settings.match_max_distance, next_id)
        segment_ids = np.array([mapping[c] for c in model.labels], dtype=np.int32)
        fitted_at = datetime.now(timezone.utc).replace(tzinfo=None)
        fingerprint = hashlib.sha256(json.dumps(
            {"k": k, "algorithm": algorithm, "seed": settings.seed, "columns": columns,
             "centers": {str(mapping[c]): np.round(model.centers_unscaled[c], 6).tolist() for c in range(k)}},
            sort_keys=True).encode()).hexdigest()[:10]
        model_version = f"{algorithm}-k{k}-{fingerprint}"
        assignments = pl.DataFrame({"customer_id": features.get_column("customer_id"), "segment_id": segment_ids,
                                    "distance": model.distances, "fitted_on": fit_mask})
        centers = pl.DataFrame({
            "model_version": model_version,
            "segment_id": [mapping[c] for c in range(k) for _ in columns],
            "feature": [column for _ in range(k) for column in columns],
            "center": model.centers_unscaled.reshape(-1),
            "fitted_at": fitted_at,
        }, schema_overrides={"segment_id": pl.Int32})
        candidate_rows = pl.DataFrame([{
            "run_id": context.run.run_id, "model_version": model_version, "algorithm": algorithm, "k": c.k,
            "chosen": c.k == k, "silhouette": c.silhouette, "davies_bouldin": c.davies_bouldin,
            "stability": c.stability, "min_share": c.min_share, "meets_constraints": c.meets_constraints,
            "reason": reason if c.k == k else None, "n_customers": features.height, "n_fitted": int(fit_mask.sum()),
            "feature_columns": columns, "inertia": model.inertia if c.k == k else None,
            "warm_started": model.warm_started if c.k == k else None, "fitted_at": fitted_at,
        } for c in candidates], schema_overrides={"k": pl.Int32, "reason": pl.String, "inertia": pl.Float64,
                                                  "warm_started": pl.Boolean})
        missing = missing_value_report(features, columns, context.run.run_id)
        write_model_tables(con, context.run.run_id, model_version, fitted_at, assignments, centers, candidate_rows,
                           missing)
    counts = assignments.group_by("segment_id").len().sort("segment_id")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": assignments.height,
            "model_version": model_version,
            "algorithm": algorithm,
            "k": k,
            "k_choice": reason,
            "warm_started": model.warm_started,
            "features": dg.MetadataValue.json(columns),
            "fitted_on": int(fit_mask.sum()),
            "left_out_as_outliers": int((~fit_mask).sum()),
            "candidates": dg.MetadataValue.md(preview_markdown(candidate_rows.select(
                "k", "chosen", "silhouette", "davies_bouldin", "stability", "min_share", "meets_constraints"), 20)),
            "segment_sizes": dg.MetadataValue.json(dict(zip(counts["segment_id"].to_list(), counts["len"].to_list()))),
        }
    )
