"""Model layer: k-means over the configured feature families, fitted on every refresh.

Scaling and imputation live inside the scikit-learn Pipeline so the fitted object is the whole recipe.
Cluster numbers are made deterministic by ordering clusters by size (largest first), so the same data always
yields the same `cluster` values.
"""


import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone

import dagster as dg
import numpy as np
import polars as pl
from sklearn.cluster import KMeans
from sklearn.impute import SimpleImputer
from sklearn.metrics import silhouette_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from assets.features import feature_family
from pipelines.resources import SourceResource, WarehouseResource

LOG_SCALED = ("n_orders", "total_spend", "avg_basket_value")
SILHOUETTE_SAMPLE = 10_000


@dataclass(frozen=True)
class ClusterResult:
    model_version: str
    k: int
    feature_columns: list[str]
    labels: np.ndarray  # 0-based cluster per customer, ordered by cluster size (0 = largest)
    distances: np.ndarray  # distance to the own centroid in scaled space
    inertia: float
    silhouette: float | None


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


def build_pipeline(k: int, seed: int) -> Pipeline:
    return Pipeline([
        ("impute", SimpleImputer(strategy="median")),
        ("scale", StandardScaler()),
        ("cluster", KMeans(n_clusters=k, n_init=10, random_state=seed)),
    ])


def fit_clusters(
    features: pl.DataFrame, families: list[str], k: int, seed: int, fit_mask: np.ndarray | None = None
) -> ClusterResult:
    """Fit on the customers in `fit_mask` (default: all), then assign every customer to its nearest centre."""
    fit_mask = np.ones(features.height, dtype=bool) if fit_mask is None else fit_mask
    columns = select_feature_columns(features.filter(pl.Series(fit_mask)), families)
    if not columns:
        raise ValueError(f"no usable feature columns in families {families}: every candidate is empty or constant")
    if int(fit_mask.sum()) < k:
        raise ValueError(f"cannot form {k} segments from {int(fit_mask.sum())} customers; lower model.k")
    matrix = feature_matrix(features, columns)
    pipeline = build_pipeline(k, seed).fit(matrix[fit_mask])
    raw_labels = pipeline.predict(matrix)
    scaled = pipeline[:-1].transform(matrix)
    distances = np.min(pipeline.named_steps["cluster"].transform(scaled), axis=1)
    # Largest cluster first; ties broken by the centroid itself so the order never depends on chance.
    centroids = pipeline.named_steps["cluster"].cluster_centers_
    sizes = np.bincount(raw_labels, minlength=k)
    order = sorted(range(k), key=lambda c: (-sizes[c], tuple(np.round(centroids[c], 9))))
    relabel = np.empty(k, dtype=int)
    relabel[order] = np.arange(k)
    labels = relabel[raw_labels]
    sample = min(SILHOUETTE_SAMPLE, len(labels))
    silhouette = (
        float(silhouette_score(scaled, labels, sample_size=sample, random_state=seed))
        if len(set(labels)) > 1 else None
    )
    fingerprint = hashlib.sha256(
        json.dumps({"k": k, "seed": seed, "columns": columns, "centroids": np.round(centroids[order], 6).tolist()})
        .encode()
    ).hexdigest()[:10]
    return ClusterResult(
        model_version=f"kmeans-k{k}-{fingerprint}",
        k=k,
        feature_columns=columns,
        labels=labels,
        distances=distances,
        inertia=float(pipeline.named_steps["cluster"].inertia_),
        silhouette=silhouette,
    )


MISSING_VALUE_POLICY = "median of the customers the model is fitted on (SimpleImputer inside the Pipeline)"


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
    """One row per customer (grain: customer_id) with its k-means cluster, from features.customer_features;
    each fit is recorded in model.model_runs."""
    settings = source.load().model
    with warehouse.connect() as con:
        features = con.execute("""
            SELECT f.*, COALESCE(o.is_outlier, FALSE) AS _is_outlier
            FROM features.customer_features f LEFT JOIN quality.outliers o USING (customer_id)
            ORDER BY customer_id""").pl()
        fit_mask = ~features.get_column("_is_outlier").to_numpy()
        features = features.drop("_is_outlier")
        result = fit_clusters(features, list(settings.features), settings.k, settings.seed, fit_mask)
        missing = missing_value_report(features, result.feature_columns, context.run.run_id)
        assignments = pl.DataFrame({
            "customer_id": features.get_column("customer_id"),
            "cluster": result.labels.astype(np.int32),
            "distance": result.distances,
        })
        arrow_assignments = assignments.to_arrow()  # noqa: F841 - read by DuckDB's replacement scan
        con.execute("BEGIN TRANSACTION")
        con.execute("CREATE OR REPLACE TABLE model.customer_clusters AS SELECT * FROM arrow_assignments")
        con.execute("""CREATE TABLE IF NOT EXISTS model.model_runs (
            run_id VARCHAR, model_version VARCHAR, algorithm VARCHAR, k INTEGER, seed INTEGER,
            n_customers BIGINT, feature_columns VARCHAR[], inertia DOUBLE, silhouette DOUBLE, fitted_at TIMESTAMP)""")
        con.execute("DELETE FROM model.model_runs WHERE run_id = ?", [context.run_id])
        con.execute(
            "INSERT INTO model.model_runs VALUES (?, ?, 'kmeans', ?, ?, ?, ?, ?, ?, ?)",
            [context.run_id, result.model_version, result.k, settings.seed, features.height,
             result.feature_columns, result.inertia, result.silhouette, datetime.now(timezone.utc).replace(tzinfo=None)],
        )
        arrow_missing = missing.to_arrow()  # noqa: F841 - read by DuckDB's replacement scan
        con.execute("CREATE OR REPLACE TABLE quality.missing_values AS SELECT * FROM arrow_missing")
        con.execute("COMMIT")
    sizes = assignments.group_by("cluster").len().sort("cluster")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": assignments.height,
            "model_version": result.model_version,
            "k": result.k,
            "silhouette": result.silhouette,
            "features": dg.MetadataValue.json(result.feature_columns),
            "fitted_on": int(fit_mask.sum()),
            "left_out_as_outliers": int((~fit_mask).sum()),
            "cluster_sizes": dg.MetadataValue.json(dict(zip(sizes["cluster"].to_list(), sizes["len"].to_list()))),
        }
    )
