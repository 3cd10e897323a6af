"""Segments layer: the public tables ops teams query.

- `segments.customer_segments`: one row per customer with its stable segment id and bilingual name.
- `segments.segment_profiles`: one row per segment with size, share, medians, gender and home-ownership shares,
  profile coverage (members with each field) and the evidence behind its name.
- `segments.segment_catalog`: every segment id ever published, with first_seen / last_seen.
- `segments.segment_category_affinity` and `segments.segment_features`: what sets each segment apart.
- `segments.customer_segment_history` and `segments.segment_migration`: who moved between segments.
"""

from datetime import UTC, datetime

import dagster as dg
import duckdb
import numpy as np
import polars as pl
from sklearn.ensemble import RandomForestClassifier

from assets.features.customer_features import CATEGORY_PREFIX, feature_family
from assets.features.traits import NameSupport, build_profiles
from assets.segments.naming import SegmentName, load_archetypes, name_segments
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.core.sql import preview_markdown

IMPORTANCE_SAMPLE = 20_000
IMPORTANCE_THREADS = 2


def previous_names(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[str, list[str]]]:
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'segments' "
                         "AND table_name = 'segment_catalog'").fetchone()[0]
    if not exists:
        return {}
    return {sid: (source, list(basis or [])) for sid, source, basis in con.execute(
        "SELECT segment_id, name_source, name_basis FROM segments.segment_catalog").fetchall()}


def separation_importance(features: pl.DataFrame, segment_ids: np.ndarray, columns: list[str], seed: int) -> dict:
    """Which features tell the segments apart overall: random-forest importance on a sample."""
    if len(set(segment_ids.tolist())) < 2 or not columns:
        return {c: 0.0 for c in columns}
    rng = np.random.default_rng(seed)
    rows = np.arange(features.height)
    if features.height > IMPORTANCE_SAMPLE:
        rows = np.sort(rng.choice(features.height, IMPORTANCE_SAMPLE, replace=False))
    known = [c for c in columns if features.get_column(c).null_count() < features.height]
    if not known:
        return {c: 0.0 for c in columns}
    sample = features.select(known)[rows]
    # Missing values take the column median, as in the model; the forest only ranks features.
    matrix = sample.with_columns(pl.all().fill_null(pl.all().median())).to_numpy()
    # Two threads: tree building releases the GIL, and each tree's seed is drawn before the work is split, so the
    # importances are the same as on one thread (20k customers: 2.2 s on one thread).
    forest = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=seed, n_jobs=IMPORTANCE_THREADS)
    forest.fit(matrix, segment_ids[rows])
    importance = dict(zip(known, forest.feature_importances_.round(6).tolist()))
    return {c: importance.get(c, 0.0) for c in columns}


def explanation_tables(profiles, names: dict[int, SegmentName], importance: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    affinity, numeric = [], []
    for profile in profiles:
        for column, mean in profile.means.items():
            population = profile.population_means.get(column)
            if column.startswith(CATEGORY_PREFIX):
                affinity.append({"segment_id": profile.segment_id, "category": column.removeprefix(CATEGORY_PREFIX),
                                 "segment_rate": mean, "population_rate": population,
                                 "lift": profile.lifts.get(column)})
            if feature_family(column) is not None:
                numeric.append({"segment_id": profile.segment_id, "feature": column,
                                "family": feature_family(column), "segment_mean": mean,
                                "population_mean": population, "z_score": profile.z_scores.get(column),
                                "separation_importance": importance.get(column)})
    affinity_frame = pl.DataFrame(affinity, schema={
        "segment_id": pl.Int32, "category": pl.String, "segment_rate": pl.Float64, "population_rate": pl.Float64,
        "lift": pl.Float64})
    feature_frame = pl.DataFrame(numeric, schema={
        "segment_id": pl.Int32, "feature": pl.String, "family": pl.String, "segment_mean": pl.Float64,
        "population_mean": pl.Float64, "z_score": pl.Float64, "separation_importance": pl.Float64})
    return affinity_frame, feature_frame


def update_history(con: duckdb.DuckDBPyConnection, run_id: str, now: datetime) -> None:
    """Close the rows of customers whose segment changed (or who left), open rows for the new memberships, and
    count the moves of this run in segments.segment_migration.

    Every customer has at most one open row (valid_to NULL), which this function keeps so. One join of the published
    segments with the open rows gives each customer's move (from NULL: new; to NULL: gone; equal: stayed), and the
    few rows that move are then closed and opened by joining that small set: the anti-joins of every customer
    against every open row that did this before cost 0.9 s at 1M customers."""
    con.execute("""CREATE TABLE IF NOT EXISTS segments.customer_segment_history (
        customer_id VARCHAR, segment_id INTEGER, valid_from TIMESTAMP, valid_to TIMESTAMP, run_id VARCHAR)""")
    con.execute("""CREATE TABLE IF NOT EXISTS segments.segment_migration (
        run_id VARCHAR, run_date TIMESTAMP, from_segment_id INTEGER, to_segment_id INTEGER, customers BIGINT)""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE segment_moves AS
        SELECT customer_id, h.segment_id AS from_segment_id, c.segment_id AS to_segment_id
        FROM segments.customer_segments c
        FULL OUTER JOIN (SELECT customer_id, segment_id FROM segments.customer_segment_history
                         WHERE valid_to IS NULL) h USING (customer_id)""")
    con.execute("DELETE FROM segments.segment_migration WHERE run_id = ?", [run_id])
    con.execute("""
        INSERT INTO segments.segment_migration
        SELECT ?, ?, from_segment_id, to_segment_id, count(*) FROM segment_moves
        GROUP BY ALL ORDER BY 3 NULLS FIRST, 4 NULLS FIRST""", [run_id, now])
    con.execute("""
        CREATE OR REPLACE TEMP TABLE segment_changes AS
        SELECT * FROM segment_moves WHERE from_segment_id IS DISTINCT FROM to_segment_id""")
    con.execute("""
        UPDATE segments.customer_segment_history h SET valid_to = ?
        FROM segment_changes m
        WHERE h.valid_to IS NULL AND h.customer_id = m.customer_id AND h.segment_id = m.from_segment_id""", [now])
    con.execute("""
        INSERT INTO segments.customer_segment_history
        SELECT customer_id, to_segment_id, ?, NULL, ? FROM segment_changes
        WHERE to_segment_id IS NOT NULL""", [now, run_id])
    con.execute("DROP TABLE segment_moves")
    con.execute("DROP TABLE segment_changes")


def update_catalog(con: duckdb.DuckDBPyConnection, names: dict[int, SegmentName], archetype_keys: dict,
                   model_version: str, now: datetime) -> None:
    con.execute("""CREATE TABLE IF NOT EXISTS segments.segment_catalog (
        segment_id INTEGER, segment_name_zh VARCHAR, segment_name_en VARCHAR, name_source VARCHAR,
        name_basis VARCHAR[], archetype VARCHAR, first_seen TIMESTAMP, last_seen TIMESTAMP, active BOOLEAN,
        model_version VARCHAR)""")
    con.execute("UPDATE segments.segment_catalog SET active = FALSE")
    for segment_id, name in sorted(names.items()):
        known = con.execute("SELECT count(*) FROM segments.segment_catalog WHERE segment_id = ?",
                            [segment_id]).fetchone()[0]
        values = [name.zh, name.en, name.source, name.basis, archetype_keys.get(segment_id), now, model_version]
        if known:
            con.execute("""UPDATE segments.segment_catalog SET segment_name_zh = ?, segment_name_en = ?,
                           name_source = ?, name_basis = ?, archetype = ?, last_seen = ?, active = TRUE,
                           model_version = ? WHERE segment_id = ?""", [*values, segment_id])
        else:
            con.execute("INSERT INTO segments.segment_catalog VALUES (?, ?, ?, ?, ?, ?, ?, ?, TRUE, ?)",
                        [segment_id, name.zh, name.en, name.source, name.basis, archetype_keys.get(segment_id),
                         now, now, model_version])


SEGMENT_SPECS = [
    dg.AssetSpec(["segments", "customer_segments"], group_name="segments", kinds={"duckdb"},
                 deps=[["model", "customer_clusters"], ["features", "customer_features"], ["quality", "outliers"],
                       ["segments", "model_runs"]],
                 description="One row per customer: customer_id, segment_id, segment_name_zh, segment_name_en, "
                             "is_outlier, model_version, assigned_at."),
    dg.AssetSpec(["segments", "segment_profiles"], group_name="segments", kinds={"duckdb"},
                 deps=[["model", "customer_clusters"], ["features", "customer_features"], ["quality", "outliers"],
                       ["segments", "model_runs"]],
                 description="One row per segment: names, size, share, medians, female and home-owner shares, how "
                             "many members have each profile field, and the evidence behind the name."),
    dg.AssetSpec(["segments", "segment_catalog"], group_name="segments", kinds={"duckdb"},
                 deps=[["model", "customer_clusters"], ["features", "customer_features"], ["quality", "outliers"],
                       ["segments", "model_runs"]],
                 description="One row per segment id ever published: names, how they were derived, first_seen, "
                             "last_seen, active."),
    dg.AssetSpec(["segments", "segment_category_affinity"], group_name="segments", kinds={"duckdb"},
                 deps=[["model", "customer_clusters"], ["features", "customer_features"], ["quality", "outliers"]],
                 description="One row per segment and category: purchase rate, population rate, lift (empty for "
                             "an export declared without categories)."),
    dg.AssetSpec(["segments", "segment_features"], group_name="segments", kinds={"duckdb", "scikitlearn"},
                 deps=[["model", "customer_clusters"], ["features", "customer_features"], ["quality", "outliers"]],
                 description="One row per segment and feature: mean, population mean, z-score, and the feature's "
                             "random-forest importance for telling segments apart."),
    dg.AssetSpec(["segments", "customer_segment_history"], group_name="segments", kinds={"duckdb"},
                 deps=[["model", "customer_clusters"]],
                 description="One row per customer and membership spell: segment_id, valid_from, valid_to "
                             "(NULL while current)."),
    dg.AssetSpec(["segments", "segment_migration"], group_name="segments", kinds={"duckdb"},
                 deps=[["model", "customer_clusters"]],
                 description="One row per run and (from, to) segment pair: how many customers moved."),
]


@dg.multi_asset(specs=SEGMENT_SPECS, pool="duckdb_writer")
def segment_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """Publishes segment membership, names, profiles, explanations and history from model.customer_clusters and
    features.customer_features, in one transaction."""
    config = source.load()
    overrides = {sid: (o.zh, o.en) for sid, o in config.segments.name_overrides.items()}
    archetypes = load_archetypes(config.segments.archetypes_file and
                                 str(config.base_dir / config.segments.archetypes_file))
    now = datetime.now(UTC).replace(tzinfo=None)
    with warehouse.connect() as con:
        # Each customer's segment and outlier flag, joined once for the frame below and the tables written.
        con.execute("""
            CREATE OR REPLACE TEMP TABLE members AS
            SELECT c.customer_id, c.segment_id, COALESCE(o.is_outlier, FALSE) AS is_outlier
            FROM model.customer_clusters c LEFT JOIN quality.outliers o USING (customer_id)""")
        joined = con.execute("""
            SELECT f.*, m.segment_id AS _segment_id, m.is_outlier AS _is_outlier
            FROM features.customer_features f JOIN members m USING (customer_id)
            ORDER BY customer_id""").pl()
        model_version = con.execute(
            "SELECT model_version FROM segments.model_runs WHERE chosen ORDER BY fitted_at DESC LIMIT 1").fetchone()[0]
        segment_ids = joined.get_column("_segment_id").to_numpy()
        typical = ~joined.get_column("_is_outlier").to_numpy()
        features = joined.drop("_segment_id", "_is_outlier")
        # The profiles carry the support counts (members with each profile field, buyers of each category and
        # payment method in the segment and overall) that the names are checked against.
        profiles = build_profiles(features, segment_ids, typical)
        support = NameSupport(config.segments.min_category_buyers_share, config.segments.min_segment_buyers,
                              config.segments.min_profile_coverage_for_names, config.segments.min_trait_lift)
        names = name_segments(profiles, archetypes, dict(config.category_labels), overrides, previous_names(con),
                              config.has_categories, support)
        duplicates = {n.zh for n in names.values() if [m.zh for m in names.values()].count(n.zh) > 1}
        if duplicates:
            raise ValueError(f"segments.name_overrides: the name(s) {sorted(duplicates)} would name two segments")
        model_columns = [c for c in features.columns if feature_family(c) in config.model.features]
        importance = separation_importance(features, segment_ids, model_columns, config.model.seed)
        affinity, explained = explanation_tables(profiles, names, importance)
        name_table = pl.DataFrame({
            "segment_id": list(names),
            "segment_name_zh": [n.zh for n in names.values()],
            "segment_name_en": [n.en for n in names.values()],
            "name_source": [n.source for n in names.values()],
            "name_evidence": [n.evidence for n in names.values()],
        }, schema_overrides={"segment_id": pl.Int32})
        arrow_names = name_table.to_arrow()  # noqa: F841 - the arrow_* names are read by DuckDB's scans
        arrow_affinity = affinity.to_arrow()  # noqa: F841
        arrow_explained = explained.to_arrow()  # noqa: F841
        con.execute("BEGIN TRANSACTION")
        con.execute("""
            CREATE OR REPLACE TABLE segments.customer_segments AS
            SELECT m.customer_id, m.segment_id, n.segment_name_zh, n.segment_name_en, m.is_outlier,
                   ? AS model_version, ?::TIMESTAMP AS assigned_at
            FROM members m JOIN arrow_names n USING (segment_id)
            ORDER BY m.customer_id""", [model_version, now])
        con.execute("""
            CREATE OR REPLACE TABLE segments.segment_profiles AS
            SELECT n.segment_id, n.segment_name_zh, n.segment_name_en, n.name_source,
                   count(*) AS customers,
                   count(*) / sum(count(*)) OVER () AS share,
                   count(*) FILTER (WHERE m.is_outlier) AS outliers,
                   median(f.age) AS median_age,
                   median(f.income) AS median_income,
                   -- Profile coverage: members with each value. A median or share speaks only for these
                   -- members, so readers (and the report) must see how many that is; shares are NULL where
                   -- nobody has the value (avg over no rows).
                   count(f.age) AS age_known,
                   count(f.income) AS income_known,
                   avg(f.is_female) AS female_share,
                   count(f.is_female) AS gender_known,
                   avg(f.is_home_owner) AS home_owner_share,
                   count(f.is_home_owner) AS home_owner_known,
                   avg(f.n_orders) AS avg_orders,
                   avg(f.total_spend) AS avg_spend,
                   any_value(n.name_evidence) AS name_evidence,
                   ? AS model_version, ?::TIMESTAMP AS assigned_at
            FROM members m
            JOIN arrow_names n USING (segment_id)
            JOIN features.customer_features f USING (customer_id)
            GROUP BY ALL ORDER BY n.segment_id""", [model_version, now])
        con.execute("CREATE OR REPLACE TABLE segments.segment_category_affinity AS "
                    "SELECT * FROM arrow_affinity ORDER BY segment_id, lift DESC NULLS LAST")
        con.execute("CREATE OR REPLACE TABLE segments.segment_features AS "
                    "SELECT * FROM arrow_explained ORDER BY segment_id, abs(z_score) DESC NULLS LAST")
        update_catalog(con, names, {sid: n.basis[0] for sid, n in names.items() if n.source == "archetype"},
                       model_version, now)
        update_history(con, context.run.run_id, now)
        con.execute("COMMIT")
        con.execute("DROP TABLE members")
        profiles_preview = con.execute(
            "SELECT segment_id, segment_name_zh, segment_name_en, name_source, customers, round(share, 4) AS share "
            "FROM segments.segment_profiles ORDER BY segment_id").pl()
        counts = {table: con.execute(f"SELECT count(*) FROM segments.{table}").fetchone()[0] for table in (
            "customer_segments", "segment_catalog", "segment_category_affinity", "segment_features",
            "customer_segment_history")}
        moves = con.execute("SELECT count(*), coalesce(sum(customers), 0) FROM segments.segment_migration "
                            "WHERE run_id = ?", [context.run.run_id]).fetchone()
    yield dg.MaterializeResult(asset_key=["segments", "customer_segments"],
                               metadata={"dagster/row_count": counts["customer_segments"],
                                         "model_version": model_version})
    yield dg.MaterializeResult(asset_key=["segments", "segment_profiles"],
                               metadata={"dagster/row_count": profiles_preview.height,
                                         "preview": dg.MetadataValue.md(preview_markdown(profiles_preview, 20))})
    for table in ("segment_catalog", "segment_category_affinity", "segment_features", "customer_segment_history"):
        yield dg.MaterializeResult(asset_key=["segments", table], metadata={"dagster/row_count": counts[table]})
    yield dg.MaterializeResult(asset_key=["segments", "segment_migration"],
                               metadata={"dagster/row_count": moves[0], "customers_counted": int(moves[1])})
