"""Segments layer: the public tables ops teams query.

- `segments.customer_segments`: one row per customer with segment id and bilingual name.
- `segments.segment_profiles`: one row per segment with size, share and the evidence behind its name.

Names are derived from the data, never hard-coded: each segment is described by the profile feature that sets it
apart most (age, income, spend, ...) and its most over-represented category, for example
高收入·葡萄酒偏好 / High income · wine lovers. A descriptor is used only when the segment's mean differs from the
population's by at least NAME_THRESHOLD standard deviations, so a name never contradicts the data.
"""


from dataclasses import dataclass
from datetime import datetime, timezone

import dagster as dg
import numpy as np
import polars as pl

from assets.features import CATEGORY_PREFIX, PAYMENT_PREFIX
from assets.ingest import preview_markdown
from assets.labels import FALLBACK_NAME, PROFILE_DESCRIPTORS, category_label, payment_label
from pipelines.resources import SourceResource, WarehouseResource

NAME_THRESHOLD = 0.4  # in population standard deviations


@dataclass(frozen=True)
class Descriptor:
    feature: str
    z_score: float
    zh: str
    en: str
    kind: str  # "profile" (who they are) or "category" (what they buy)

    @property
    def evidence(self) -> str:
        return f"{self.feature} z={self.z_score:+.2f}"


def segment_descriptors(
    features: pl.DataFrame,
    labels: np.ndarray,
    category_overrides: dict[str, tuple[str, str]],
    typical: np.ndarray | None = None,
) -> dict[int, list[Descriptor]]:
    """Per segment, every descriptor that clears the threshold, strongest first.

    Statistics use the `typical` customers only (not flagged as outliers), so a few extreme buyers cannot
    make a segment look like big spenders.
    """
    typical = np.ones(len(labels), dtype=bool) if typical is None else typical
    descriptors: dict[int, list[Descriptor]] = {}
    numeric = [c for c, dtype in features.schema.items() if dtype.is_numeric()]
    population = features.select(numeric).filter(pl.Series(typical))
    means = {c: population.get_column(c).mean() for c in numeric}
    stds = {c: population.get_column(c).std() for c in numeric}
    for segment in sorted(set(labels.tolist())):
        in_segment = labels == segment
        # A segment made only of outliers is still described, from its own members.
        chosen = in_segment & typical if (in_segment & typical).any() else in_segment
        members = features.select(numeric).filter(pl.Series(chosen))
        found: list[Descriptor] = []
        for column in numeric:
            std, mean = stds[column], means[column]
            segment_mean = members.get_column(column).mean()
            if std is None or not std or mean is None or segment_mean is None:
                continue
            z = (segment_mean - mean) / std
            if abs(z) < NAME_THRESHOLD:
                continue
            if column in PROFILE_DESCRIPTORS:
                above, below = PROFILE_DESCRIPTORS[column]
                zh, en = above if z > 0 else below
                found.append(Descriptor(column, z, zh, en, "profile"))
            elif column.startswith(CATEGORY_PREFIX) and z > 0:
                zh, en = category_label(column.removeprefix(CATEGORY_PREFIX), category_overrides)
                found.append(Descriptor(column, z, f"{zh}偏好", f"{en} lovers", "category"))
            elif column.startswith(PAYMENT_PREFIX) and z > 0:
                zh, en = payment_label(column.removeprefix(PAYMENT_PREFIX))
                found.append(Descriptor(column, z, zh, en, "profile"))
        descriptors[segment] = sorted(found, key=lambda d: (-abs(d.z_score), d.feature))
    return descriptors


def name_segments(descriptors: dict[int, list[Descriptor]]) -> dict[int, tuple[str, str, list[Descriptor]]]:
    """Who they are + what they buy; more descriptors are added until every name is unique."""
    names: dict[int, tuple[str, str, list[Descriptor]]] = {}
    used: set[str] = set()
    for segment in sorted(descriptors):
        ranked = descriptors[segment]
        first_choice = [d for d in (
            next((d for d in ranked if d.kind == "profile"), None),
            next((d for d in ranked if d.kind == "category"), None),
        ) if d is not None]
        chosen = list(first_choice)
        extra = [d for d in ranked if d not in chosen]
        while True:
            zh = "·".join(d.zh for d in chosen) if chosen else FALLBACK_NAME[0]
            en = " · ".join(d.en for d in chosen) if chosen else FALLBACK_NAME[1]
            if zh not in used:
                break
            if extra:
                chosen.append(extra.pop(0))
                continue
            zh, en = f"{zh}{segment + 1}组", f"{en} (group {segment + 1})"
            break
        used.add(zh)
        names[segment] = (zh, en[:1].upper() + en[1:], chosen)
    return names


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["segments", "customer_segments"], group_name="segments", kinds={"duckdb"},
                     deps=[["model", "customer_clusters"], ["features", "customer_features"],
                           ["quality", "outliers"]],
                     description="One row per customer: customer_id, segment_id, segment_name_zh, segment_name_en, "
                                 "is_outlier, model_version, assigned_at."),
        dg.AssetSpec(["segments", "segment_profiles"], group_name="segments", kinds={"duckdb"},
                     deps=[["model", "customer_clusters"], ["features", "customer_features"]],
                     description="One row per segment: names, size, share, medians and the evidence behind "
                                 "the name."),
    ],
    pool="duckdb_writer",
)
def segment_tables(warehouse: WarehouseResource, source: SourceResource):
    """Publishes segment membership and profiles from model.customer_clusters and features.customer_features."""
    overrides = dict(source.load().category_labels)
    with warehouse.connect() as con:
        joined = con.execute("""
            SELECT f.*, c.cluster, COALESCE(o.is_outlier, FALSE) AS _is_outlier
            FROM features.customer_features f
            JOIN model.customer_clusters c USING (customer_id)
            LEFT JOIN quality.outliers o USING (customer_id)
            ORDER BY customer_id""").pl()
        model_version = con.execute(
            "SELECT model_version FROM model.model_runs ORDER BY fitted_at DESC LIMIT 1").fetchone()[0]
        labels = joined.get_column("cluster").to_numpy()
        typical = ~joined.get_column("_is_outlier").to_numpy()
        features = joined.drop("cluster", "_is_outlier")
        names = name_segments(segment_descriptors(features, labels, overrides, typical))
        assigned_at = datetime.now(timezone.utc).replace(tzinfo=None)
        name_table = pl.DataFrame({
            "cluster": list(names),
            "segment_id": [c + 1 for c in names],
            "segment_name_zh": [names[c][0] for c in names],
            "segment_name_en": [names[c][1] for c in names],
            "name_evidence": [[d.evidence for d in names[c][2]] for c in names],
        }, schema_overrides={"cluster": joined.schema["cluster"]})
        arrow_names = name_table.to_arrow()  # noqa: F841 - read by DuckDB's replacement scan
        con.execute("BEGIN TRANSACTION")
        con.execute("""
            CREATE OR REPLACE TABLE segments.customer_segments AS
            SELECT c.customer_id, n.segment_id, n.segment_name_zh, n.segment_name_en,
                   COALESCE(o.is_outlier, FALSE) AS is_outlier,
                   ? AS model_version, ?::TIMESTAMP AS assigned_at
            FROM model.customer_clusters c JOIN arrow_names n USING (cluster)
            LEFT JOIN quality.outliers o USING (customer_id)
            ORDER BY c.customer_id""", [model_version, assigned_at])
        con.execute("""
            CREATE OR REPLACE TABLE segments.segment_profiles AS
            SELECT n.segment_id, n.segment_name_zh, n.segment_name_en,
                   count(*) AS customers,
                   count(*) / sum(count(*)) OVER () AS share,
                   count(*) FILTER (WHERE o.is_outlier) AS outliers,
                   median(f.age) AS median_age,
                   median(f.income) AS median_income,
                   avg(f.n_orders) AS avg_orders,
                   avg(f.total_spend) AS avg_spend,
                   any_value(n.name_evidence) AS name_evidence,
                   ? AS model_version, ?::TIMESTAMP AS assigned_at
            FROM model.customer_clusters c
            JOIN arrow_names n USING (cluster)
            JOIN features.customer_features f USING (customer_id)
            LEFT JOIN quality.outliers o USING (customer_id)
            GROUP BY ALL ORDER BY n.segment_id""", [model_version, assigned_at])
        con.execute("COMMIT")
        profiles = con.execute(
            "SELECT segment_id, segment_name_zh, segment_name_en, customers, round(share, 4) AS share "
            "FROM segments.segment_profiles ORDER BY segment_id").pl()
        n_customers = con.execute("SELECT count(*) FROM segments.customer_segments").fetchone()[0]
    yield dg.MaterializeResult(
        asset_key=["segments", "customer_segments"],
        metadata={"dagster/row_count": n_customers, "model_version": model_version},
    )
    yield dg.MaterializeResult(
        asset_key=["segments", "segment_profiles"],
        metadata={"dagster/row_count": profiles.height, "preview": dg.MetadataValue.md(preview_markdown(profiles, 20))},
    )
