"""Segmentation users can trust: stable ids across refreshes, names from the data, overrides, explanations,
history and migration."""

from datetime import datetime

import duckdb
import numpy as np
import polars as pl
import pytest

from assets.model.carry import match_segment_ids
from assets.model.selection import CandidateScore, choose_k
from assets.segments.naming import (
    Archetype,
    SegmentProfile,
    build_profiles,
    load_archetypes,
    name_segments,
)
from assets.segments.tables import update_history
from tests.conftest import query


def test_seed_table_names_and_explanations(seed_warehouse):
    names = query(seed_warehouse, "SELECT segment_name_zh, segment_name_en FROM segments.segment_profiles")
    assert len({zh for zh, _ in names}) == len({en for _, en in names}) == len(names) >= 3
    assert all(zh and en and zh != en for zh, en in names)
    assert query(seed_warehouse, "SELECT count(DISTINCT category) FROM segments.segment_category_affinity") == [(11,)]
    assert query(seed_warehouse, "SELECT count(*) > 0, bool_and(z_score IS NOT NULL OR family = 'rfm') "
                                 "FROM segments.segment_features") == [(True, True)]
    assert query(seed_warehouse, "SELECT count(*) FROM segments.customer_value_tiers") == [(999,)]


def _profile(segment_id: int, z: dict, lifts: dict | None = None) -> SegmentProfile:
    return SegmentProfile(segment_id, z, lifts or {}, {}, {})


def test_archetypes_need_every_required_condition():
    rules = {a.key: a for a in load_archetypes()}
    assert set(rules) == {"young_professionals", "family_shoppers", "refined_living", "budget_minded"}
    rich_wine = _profile(1, {"income": 1.5, "age": 0.2}, {"cat_wine": 2.0})
    rich_no_wine = _profile(2, {"income": 1.5, "age": 0.2}, {"cat_wine": 1.0})
    names = name_segments([rich_wine, rich_no_wine], list(rules.values()), {}, {}, {})
    assert (names[1].en, names[1].source) == ("Refined living", "archetype")
    assert names[2].source == "descriptive" and names[2].en == "High income"


def test_each_archetype_names_one_segment_and_previous_names_hold_ties():
    rule = Archetype("budget", "经济实用族", "Budget-minded", [{"feature": "income", "z_at_most": -0.3}])
    a = _profile(1, {"income": -1.0, "age": 1.0})
    b = _profile(2, {"income": -1.1, "age": -1.0})
    names = name_segments([a, b], [rule], {}, {}, {})
    # Segment 2 fits better (income z -1.1); segment 1 is described by its strongest trait instead.
    assert names[2].en == "Budget-minded" and names[1].en == "Senior"
    # Last night segment 1 was the budget segment; a slightly weaker fit keeps the name.
    names = name_segments([a, b], [rule], {}, {}, {1: ("archetype", ["budget"])})
    assert names[1].en == "Budget-minded"


def test_catch_all_categories_never_name_a_segment():
    # `other` (lines no category rule matched) and `unknown` (skus missing from the product table) say nothing.
    heavy_other = _profile(1, {"cat_other": 2.5, "cat_unknown": 2.0, "cat_wine": 0.8, "income": 0.1})
    names = name_segments([heavy_other], [], {}, {}, {})
    assert (names[1].zh, names[1].en) == ("葡萄酒偏好", "Wine lovers")


def test_overrides_win_and_names_stay_unique():
    profiles = [_profile(1, {"income": 1.0}), _profile(2, {"income": 1.0})]
    names = name_segments(profiles, [], {}, {1: ("自定义", "Custom")}, {})
    assert (names[1].zh, names[1].source) == ("自定义", "override")
    same = name_segments(profiles, [], {}, {}, {})
    assert same[1].zh != same[2].zh


def test_choose_k_respects_constraints():
    scores = [CandidateScore(3, 0.30, 1.0, 0.90, 0.20, True), CandidateScore(4, 0.45, 0.8, 0.60, 0.20, False),
              CandidateScore(5, 0.35, 0.9, 0.95, 0.10, True)]
    assert choose_k(scores)[0] == 5
    assert choose_k([CandidateScore(3, 0.1, 2.0, 0.2, 0.01, False)])[0] == 3


def test_hungarian_matching_keeps_ids_and_gives_new_ones():
    previous = {7: np.array([0.0, 0.0]), 9: np.array([10.0, 10.0])}
    centers = np.array([[10.2, 9.9], [0.1, -0.1], [50.0, 50.0]])
    mapping = match_segment_ids(centers, np.array([5, 5, 5]), previous, lambda x: x, max_distance=2.0, next_id=10)
    assert mapping == {0: 9, 1: 7, 2: 10}
    fresh = match_segment_ids(centers, np.array([1, 9, 5]), {}, lambda x: x, max_distance=2.0, next_id=1)
    assert fresh == {1: 1, 2: 2, 0: 3}


def test_history_closes_moves_and_departures_and_opens_arrivals():
    night_1, night_2 = datetime(2026, 3, 1), datetime(2026, 3, 2)
    with duckdb.connect() as con:
        con.execute("CREATE SCHEMA segments")
        con.execute("CREATE TABLE segments.customer_segments (customer_id VARCHAR, segment_id INTEGER)")
        con.execute("INSERT INTO segments.customer_segments VALUES ('stay', 1), ('move', 1), ('gone', 2)")
        update_history(con, "run-1", night_1)
        con.execute("DELETE FROM segments.customer_segments")
        con.execute("INSERT INTO segments.customer_segments VALUES ('stay', 1), ('move', 2), ('new', 3)")
        update_history(con, "run-2", night_2)
        history = con.execute("SELECT customer_id, segment_id, valid_from, valid_to, run_id "
                              "FROM segments.customer_segment_history ORDER BY customer_id, valid_from").fetchall()
        migration = con.execute("SELECT run_id, from_segment_id, to_segment_id, customers "
                                "FROM segments.segment_migration ORDER BY run_id, from_segment_id NULLS FIRST, "
                                "to_segment_id NULLS FIRST").fetchall()
    assert history == [("gone", 2, night_1, night_2, "run-1"),
                       ("move", 1, night_1, night_2, "run-1"), ("move", 2, night_2, None, "run-2"),
                       ("new", 3, night_2, None, "run-2"),
                       ("stay", 1, night_1, None, "run-1")]
    assert migration == [("run-1", None, 1, 2), ("run-1", None, 2, 1),
                         ("run-2", None, 3, 1), ("run-2", 1, 1, 1), ("run-2", 1, 2, 1), ("run-2", 2, None, 1)]


def test_profiles_compare_typical_members_with_typical_customers():
    features = pl.DataFrame({"customer_id": ["a", "b", "c", "d", "e", "f"],
                             "income": [10.0, 20.0, 30.0, 40.0, None, 1000.0],
                             "cat_wine": [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]})
    segment_ids = np.array([1, 1, 2, 2, 2, 3])
    typical = np.array([True, True, True, True, True, False])  # f is an outlier, alone in segment 3
    profiles = {p.segment_id: p for p in build_profiles(features, segment_ids, typical)}
    population_income = pl.Series([10.0, 20.0, 30.0, 40.0])
    assert profiles[1].population_means == {"income": 25.0, "cat_wine": 0.6}
    assert profiles[1].means == {"income": 15.0, "cat_wine": 0.5}
    assert profiles[2].means == {"income": 35.0, "cat_wine": pytest.approx(2 / 3)}
    assert profiles[1].z_scores["income"] == pytest.approx((15.0 - 25.0) / population_income.std())
    assert profiles[2].lifts["cat_wine"] == pytest.approx((2 / 3) / 0.6)
    # A segment of outliers only is described by its own members.
    assert profiles[3].means == {"income": 1000.0, "cat_wine": 1.0}
