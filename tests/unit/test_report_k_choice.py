"""The report's account of the choice of k says why a candidate with a better silhouette was not chosen, in figures
that agree with the words."""

from types import SimpleNamespace

import polars as pl

from assets.report.facts import FactBook
from assets.report.sections import section_k


def _runs(silhouettes: dict[int, float], traitless: dict[int, int], chosen: int) -> pl.DataFrame:
    ks = sorted(silhouettes)
    return pl.DataFrame({"run_id": ["r1"] * len(ks), "k": ks, "chosen": [k == chosen for k in ks],
                         "silhouette": [silhouettes[k] for k in ks], "stability": [0.9] * len(ks),
                         "min_share": [0.1] * len(ks), "meets_constraints": [True] * len(ks),
                         "segments_without_trait": [traitless[k] for k in ks]})


def _said(runs: pl.DataFrame) -> dict[str, list[str]]:
    book = FactBook()
    section = section_k(SimpleNamespace(model_runs=runs), book)
    return {language: [s.text(book, language) for s in sentences]
            for language, sentences in section.paragraphs.items()}


def test_a_better_silhouette_left_aside_for_segments_without_a_trait_says_so():
    # Seen on a trial: k = 7 at 0.3442 was "a higher silhouette (0.344)" beside the chosen k = 8 at 0.3438 (0.344),
    # and nothing said that k = 7 had segments nothing sets apart.
    said = _said(_runs({7: 0.3442, 8: 0.3438}, {7: 2, 8: 0}, chosen=8))
    assert said["en"][1] == ("k = 7 had a silhouette as high (0.344), but 2 of its segments had no distinctive "
                             "trait to name and act on, and every segment of k = 8 has one.")
    assert said["zh"][1] == "k = 7 的轮廓系数与之相当（0.344），但其中 2 个客群没有可命名、可运营的显著特征，而 k = 8 的每个客群都有。"
    said = _said(_runs({3: 0.41, 4: 0.35}, {3: 1, 4: 0}, chosen=4))
    assert said["en"][1].startswith("k = 3 had a higher silhouette (0.410), but 1 of its segments")


def test_a_better_silhouette_for_another_reason_is_only_stated():
    said = _said(_runs({3: 0.41, 4: 0.35}, {3: 0, 4: 0}, chosen=4))
    assert said["en"][1] == "k = 3 had a higher silhouette (0.410)."


def test_a_chosen_k_that_met_no_constraint_and_was_merged_says_how_many_segments_are_published():
    # A trial's 抖店 report: "chose k = 6" above a header of 5 segments, with k = 6 among the failed candidates.
    runs = _runs({k: 0.2 + k / 100 for k in range(3, 9)}, dict.fromkeys(range(3, 9), 0), chosen=8).with_columns(
        meets_constraints=pl.lit(False), segments_published=pl.when(pl.col("chosen")).then(7).otherwise(None))
    said = _said(runs)
    assert said["en"][:3] == [
        "The model scored k from 3 to 8 and chose k = 8: silhouette 0.280, stability 0.900.",
        "No k met every constraint (the smallest segment's share and the stability).",
        "1 segment of k = 8 fell below the minimum share (model.min_segment_share) and was merged into its nearest "
        "neighbour, so 7 segments are published."]
    assert said["zh"][2] == "k = 8 中有 1 个客群小于最小占比（model.min_segment_share），已并入最近的客群，最终发布 7 个客群。"


def test_a_chosen_k_published_whole_adds_nothing():
    runs = _runs({3: 0.41, 4: 0.35}, {3: 0, 4: 0}, chosen=3).with_columns(segments_published=pl.lit(3))
    assert len(_said(runs)["en"]) == 2
