"""Issue 19, point 1: a candidate k is judged on actionability (does every segment have a distinctive,
well-supported trait?) and no segment of more than model.max_segment_share of customers without one is chosen
while a k without such a catch-all exists."""

import numpy as np
import polars as pl

from assets.features.traits import NameSupport, build_profiles, distinctive_traits, judge_actionability
from assets.model.selection import MODERATE, WEAK, CandidateScore, choose_k, segmentation_strength


def _shop(rng: np.random.Generator) -> tuple[pl.DataFrame, np.ndarray]:
    """Wine buyers (20%), beer buyers (20%) and a middle 60% who buy both about as often as everyone."""
    groups = np.repeat([0, 1, 2], [200, 200, 600])
    wine = np.where(groups == 0, 0.8, np.where(groups == 1, 0.05, 0.3)) + rng.normal(0, 0.05, len(groups))
    beer = np.where(groups == 1, 0.8, np.where(groups == 0, 0.05, 0.3)) + rng.normal(0, 0.05, len(groups))
    features = pl.DataFrame({"customer_id": [f"C{i}" for i in range(len(groups))],
                             "cat_wine": wine.clip(0, 1), "cat_beer": beer.clip(0, 1),
                             "cat_other": rng.uniform(0, 1, len(groups)) * (groups == 2),
                             "age": rng.normal(40, 10, len(groups))})
    return features, groups


def test_the_middle_of_the_shop_has_no_distinctive_trait():
    features, groups = _shop(np.random.default_rng(1))
    profiles = {p.segment_id: p for p in build_profiles(features, groups, np.ones(len(groups), dtype=bool))}
    assert distinctive_traits(profiles[0], NameSupport())[0] == "cat_wine:+"
    assert distinctive_traits(profiles[1], NameSupport())[0] == "cat_beer:+"
    # The middle buys more of the catch-all "other", which is nothing to act on, and nothing else stands out.
    assert distinctive_traits(profiles[2], NameSupport()) == []
    judged = judge_actionability(features, groups, NameSupport())
    assert judged.segments_without_trait == 1
    assert judged.largest_traitless_share == 0.6 and judged.actionable_share == 0.4


def test_a_trait_needs_support():
    features, groups = _shop(np.random.default_rng(2))
    # Ten wine buyers in a segment of 200 are not enough to call it "wine lovers" (a quarter of it is needed).
    few = features.with_columns(pl.when(pl.int_range(pl.len()) < 10).then(pl.lit(0.9)).otherwise(pl.lit(0.0))
                                .alias("cat_wine"))
    profiles = {p.segment_id: p for p in build_profiles(few, groups, np.ones(len(groups), dtype=bool))}
    assert "cat_wine:+" not in distinctive_traits(profiles[0], NameSupport())


def _candidate(k: int, silhouette: float, without: int, actionable: float, largest: float,
               meets: bool = True) -> CandidateScore:
    return CandidateScore(k, silhouette, 1.5, 0.9, 0.1, meets, without, actionable, largest)


def test_choose_k_prefers_every_segment_with_a_trait_then_no_catch_all():
    catch_all = _candidate(3, 0.30, 1, 0.43, 0.57)  # the best silhouette, but 57% "mainstream"
    partial = _candidate(4, 0.20, 1, 0.85, 0.15)
    complete = _candidate(5, 0.15, 0, 1.0, 0.0)
    unstable = _candidate(6, 0.40, 0, 1.0, 0.0, meets=False)
    k, reason = choose_k([catch_all, partial, complete, unstable], 0.05, 0.4)
    assert k == 5 and "every segment has a distinctive trait" in reason
    k, reason = choose_k([catch_all, partial, unstable], 0.05, 0.4)
    assert k == 4 and "most customers in segments that have one (85%)" in reason
    k, reason = choose_k([catch_all, unstable], 0.05, 0.4)
    assert k == 3 and "57% here" in reason
    # Unmeasured candidates (a run before actionability) are chosen as before: the best silhouette.
    assert choose_k([CandidateScore(3, 0.3, 1.0, 0.9, 0.2, True), CandidateScore(4, 0.2, 1.0, 0.9, 0.2, True)],
                    0.05, 0.4)[0] == 3


def test_a_catch_all_makes_the_verdict_weak_and_a_small_traitless_segment_moderate():
    weak = segmentation_strength(_candidate(3, 0.30, 1, 0.43, 0.57), 0.75, max_segment_share=0.4)
    assert weak.level == WEAK and "a segment of 57% of customers has no distinctive trait" in weak.reason
    moderate = segmentation_strength(_candidate(4, 0.30, 1, 0.85, 0.15), 0.75, max_segment_share=0.4)
    assert moderate.level == MODERATE and "1 segment(s) holding 15% of customers have no distinctive trait" in moderate.reason
