"""Segmentation across nightly refreshes of the same shop: identical assignments on the same data, stable ids on
one more day, name overrides kept, the catalogue, history and migration, and the k selection record."""

from pathlib import Path

import polars as pl
import pytest

from pipelines.demo.generate import generate_demo_data
from tests.conftest import materialize_graph, query, write_file


def _shop(root: Path, orders: Path, customers: Path, extra: str = "") -> Path:
    return write_file(root / "shop.yaml", f"name: stable\nshape: long\norders:\n  path: {orders}\n"
                                          f"customers:\n  path: {customers}\n{extra}")


def _assignments(warehouse: Path) -> dict[str, tuple]:
    return {row[0]: row[1:] for row in query(
        warehouse, "SELECT customer_id, segment_id, segment_name_zh, segment_name_en "
                   "FROM segments.customer_segments")}


@pytest.fixture(scope="module")
def refreshes(tmp_path_factory):
    """Night 1 sees 60 days of orders, night 2 the same data again, night 3 one more day."""
    root = tmp_path_factory.mktemp("refresh")
    data = generate_demo_data(root / "data", customers=3000, days=61, seed=21)
    lines = pl.read_csv(data.orders_path, infer_schema=False)
    last_day = lines.get_column("order_ts").str.slice(0, 10).max()
    earlier = root / "earlier.csv"
    lines.filter(pl.col("order_ts").str.slice(0, 10) < last_day).write_csv(earlier)
    overrides = "segments:\n  name_overrides:\n    2: {zh: 重点维护群, en: Key accounts}\n"
    warehouse = root / "warehouse.duckdb"
    nights = []
    for orders in (earlier, earlier, data.orders_path):
        result = materialize_graph(_shop(root, orders, data.customers_path, overrides), warehouse)
        assert result.success
        nights.append(_assignments(warehouse))
    return warehouse, nights


def test_same_data_twice_gives_identical_assignments(refreshes):
    _, (first, second, _) = refreshes
    assert first == second


def test_one_more_day_keeps_at_least_98_percent_of_ids(refreshes):
    _, (_, second, third) = refreshes
    common = set(second) & set(third)
    kept = sum(second[c][0] == third[c][0] for c in common)
    assert len(common) >= 2900
    assert kept / len(common) >= 0.98


def test_a_name_override_survives_refreshes(refreshes):
    warehouse, nights = refreshes
    for night in nights:
        assert {tuple(names) for segment, *names in night.values() if segment == 2} == {("重点维护群", "Key accounts")}
    assert query(warehouse, "SELECT name_source FROM segments.segment_catalog WHERE segment_id = 2") == [
        ("override",)]


def test_catalogue_history_and_migration(refreshes):
    warehouse, nights = refreshes
    catalog = query(warehouse, "SELECT segment_id, active, first_seen < last_seen FROM segments.segment_catalog "
                               "ORDER BY segment_id")
    assert [row[0] for row in catalog] == sorted(set(v[0] for v in nights[2].values()))
    assert all(active and older for _, active, older in catalog)
    # One open history row per current customer, matching the published segment.
    open_rows = query(warehouse, """SELECT count(*), count(*) FILTER (WHERE h.segment_id = c.segment_id)
                                    FROM segments.customer_segment_history h
                                    JOIN segments.customer_segments c USING (customer_id)
                                    WHERE h.valid_to IS NULL""")
    assert open_rows == [(len(nights[2]), len(nights[2]))]
    migrations = query(warehouse, """SELECT run_id, sum(customers), coalesce(sum(customers) FILTER (
                                                WHERE from_segment_id IS DISTINCT FROM to_segment_id), 0)
                                     FROM segments.segment_migration GROUP BY run_id ORDER BY min(run_date)""")
    assert len(migrations) == 3
    assert migrations[0][2] == len(nights[0])  # night 1: everyone arrives from nowhere
    assert migrations[1][2] == 0  # night 2: same data, nobody moves
    moved = sum(nights[1].get(c, (None,))[0] != nights[2][c][0] for c in nights[2])
    assert migrations[2][2] == moved
    closed = query(warehouse, "SELECT count(*) FROM segments.customer_segment_history WHERE valid_to IS NOT NULL")
    assert closed == [(sum(nights[1][c][0] != nights[2][c][0] for c in nights[2] if c in nights[1]),)]


def test_k_selection_scores_are_recorded_per_run(refreshes):
    warehouse, _ = refreshes
    runs = query(warehouse, """SELECT count(DISTINCT run_id), count(*) FILTER (WHERE chosen),
                                      min(k), max(k), bool_and(stability BETWEEN -1 AND 1)
                               FROM segments.model_runs""")
    assert runs == [(3, 3, 3, 8, True)]
    chosen = query(warehouse, "SELECT k, warm_started FROM segments.model_runs WHERE chosen ORDER BY fitted_at")
    assert chosen == [(4, False), (4, True), (4, True)]
    # Nights 2 and 3 fall inside model.reselect_k_every_days: they keep night 1's k and its scores.
    decisions = query(warehouse, """SELECT k_decision, k_selected_run_id = first_value(run_id) OVER (ORDER BY fitted_at),
                                           round(date_diff('second', k_selected_as_of, data_as_of) / 86400)
                                    FROM segments.model_runs WHERE chosen ORDER BY fitted_at""")
    assert decisions == [("chosen", True, 0), ("carried", True, 0), ("carried", True, 1)]
    scores = query(warehouse, """SELECT count(DISTINCT (k, silhouette, stability)) FROM segments.model_runs""")
    assert scores == [(6,)]


def test_explanations_are_filled(refreshes):
    warehouse, nights = refreshes
    k = len(set(v[0] for v in nights[2].values()))
    affinity = query(warehouse, """SELECT count(*), count(DISTINCT segment_id), count(DISTINCT category),
                                          bool_and(abs(lift - segment_rate / population_rate) < 1e-9)
                                   FROM segments.segment_category_affinity""")
    assert affinity == [(16 * k, k, 16, True)]
    importance = query(warehouse, """SELECT sum(separation_importance) FROM segments.segment_features
                                     WHERE segment_id = (SELECT min(segment_id) FROM segments.segment_features)""")
    assert importance[0][0] == pytest.approx(1.0, abs=1e-4)
