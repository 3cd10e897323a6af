"""The tables the model step writes, in one transaction: model.customer_clusters, model.segment_centers,
segments.model_runs and quality.missing_values.
"""

from datetime import datetime

import polars as pl

MISSING_VALUE_POLICY = "median of the customers the model is fitted on (MedianImputer inside the Pipeline)"

# Columns added to segments.model_runs for carrying k; a warehouse from before gets them (NULL in its old rows).
CARRY_COLUMNS = {
    "k_decision": "VARCHAR", "k_decision_reason": "VARCHAR", "k_selected_run_id": "VARCHAR",
    "k_selected_as_of": "TIMESTAMP", "data_as_of": "TIMESTAMP", "selection_key": "VARCHAR",
    "mean_distance": "DOUBLE", "moved_share": "DOUBLE", "distance_change": "DOUBLE",
}
# The feature families the run clustered on (of model.features, those with usable columns); a warehouse from
# before gets the column too (NULL in its old rows).
FAMILY_COLUMNS = {"feature_families": "VARCHAR[]"}
# The verdict on the run's segmentation (strong | moderate | weak) and why, on the chosen row; NULL elsewhere and in a
# warehouse's rows from before.
STRENGTH_COLUMNS = {"strength": "VARCHAR", "strength_reason": "VARCHAR"}
# Actionability per candidate (assets/features/traits.py) and, on the chosen row, the segments published (k unless
# segments were merged to reach model.min_segment_share); NULL in a warehouse's rows from before.
ACTIONABILITY_COLUMNS = {"segments_without_trait": "INTEGER", "actionable_share": "DOUBLE",
                         "largest_traitless_share": "DOUBLE", "segments_published": "INTEGER"}


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
    for column, kind in {**CARRY_COLUMNS, **FAMILY_COLUMNS, **STRENGTH_COLUMNS, **ACTIONABILITY_COLUMNS}.items():
        con.execute(f"ALTER TABLE segments.model_runs ADD COLUMN IF NOT EXISTS {column} {kind}")
    con.execute("DELETE FROM segments.model_runs WHERE run_id = ?", [run_id])
    con.execute("INSERT INTO segments.model_runs BY NAME SELECT * FROM arrow_candidates")
    con.execute("CREATE OR REPLACE TABLE quality.missing_values AS SELECT * FROM arrow_missing")
    con.execute("COMMIT")


def model_table_rows(con) -> dict[str, int]:
    """Rows now in the two tables that keep every run's rows (the other two hold the latest run only)."""
    return {table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("model.segment_centers", "segments.model_runs")}
