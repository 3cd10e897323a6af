"""Issue 19: a verdict on each run's segmentation (strong | moderate | weak) stored on the chosen row of
segments.model_runs, said by `persona run` and at the top of both report pages; and no published segment below
model.min_segment_share, even when no k meets the constraints."""

from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import duckdb
import numpy as np
import polars as pl

from assets.model.clusters import model_tables
from assets.model.selection import (
    MODERATE,
    STRONG,
    WEAK,
    CandidateScore,
    choose_k,
    score_candidates,
    segmentation_strength,
)
from pipelines.core.resources import SourceResource, WarehouseResource, work_file_for
from pipelines.core.settings import ModelSettings
from pipelines.runner import segmentation_strength as published_strength
from pipelines.runner import strength_line
from tests.conftest import query, write_file


def _score(silhouette: float, stability: float, meets: bool = True, k: int = 4) -> CandidateScore:
    return CandidateScore(k, silhouette, 1.5, stability, 0.1, meets)


def test_verdict_thresholds_on_hand_made_scores():
    assert segmentation_strength(_score(0.25, 0.85), 0.75).level == STRONG
    assert segmentation_strength(_score(0.40, 0.84), 0.75).level == MODERATE  # stability short of strong
    assert segmentation_strength(_score(0.24, 0.99), 0.75).level == MODERATE  # silhouette short of strong
    assert segmentation_strength(_score(0.10, 0.80), 0.75).level == MODERATE
    weak = segmentation_strength(_score(0.09, 0.99), 0.75)
    assert weak.level == WEAK and "distinct groups" in weak.reason and "product categories" in weak.reason
    # A fallback k is weak however well it separates; low stability asks for more customers.
    fallback = segmentation_strength(_score(0.40, 0.50, meets=False), 0.75)
    assert fallback.level == WEAK and "more customers" in fallback.reason and "0.50" in fallback.reason
    merged = segmentation_strength(_score(0.40, 0.95), 0.75, merged=1)
    assert merged.level == WEAK and "merged" in merged.reason


def test_fallback_prefers_the_largest_k_whose_segments_are_all_big_enough():
    scores = [CandidateScore(3, 0.30, 1.0, 0.5, 0.20, False), CandidateScore(4, 0.35, 1.0, 0.5, 0.08, False),
              CandidateScore(5, 0.40, 1.0, 0.5, 0.01, False)]
    k, reason = choose_k(scores, 0.05)
    assert k == 4 and "largest k" in reason
    # None big enough: best silhouette, merged after the fit (said in the reason).
    k, reason = choose_k(scores, 0.25)
    assert k == 5 and "merged" in reason


def test_uniform_noise_customers_are_weak():
    noise = np.random.default_rng(0).uniform(size=(400, 8))
    noise = (noise - noise.mean(axis=0)) / noise.std(axis=0)
    settings = ModelSettings(k_range=(3, 6), bootstrap_rounds=2)
    scores = score_candidates(noise, settings, "kmeans")
    k, _ = choose_k(scores, settings.min_segment_share)
    chosen = next(s for s in scores if s.k == k)
    assert segmentation_strength(chosen, settings.min_stability).level == WEAK


def _model_step_alone(root: Path, features: pl.DataFrame, model: str) -> Path:
    """The model step alone on a working database holding only `features` (no outliers, no orders)."""
    warehouse = root / "warehouse.duckdb"
    work = work_file_for(warehouse.resolve())
    work.parent.mkdir(parents=True, exist_ok=True)
    frame = features.to_arrow()  # noqa: F841 - read by DuckDB's scan
    with duckdb.connect(str(work)) as con:
        con.execute("CREATE SCHEMA features; CREATE SCHEMA quality; CREATE SCHEMA segments; CREATE SCHEMA model")
        con.execute("CREATE TABLE features.customer_features AS SELECT * FROM frame")
        con.execute("CREATE TABLE quality.outliers (customer_id VARCHAR, is_outlier BOOLEAN)")
    dummy = write_file(root / "orders.csv", "customer_id,amount\n")
    config = write_file(root / "shop.yaml", f"name: strength\nshape: long\norders:\n  path: {dummy}\n"
                                            f"model:\n{model}")
    result = dg.materialize([model_tables], resources={
        "warehouse": WarehouseResource(path=str(warehouse)), "source": SourceResource(config_path=str(config))})
    assert result.success
    return work


def test_no_published_segment_below_the_minimum_share(tmp_path):
    # A dominant group (70%), a second one (27%) and three tiny far groups (1% each): every candidate k gives the
    # tiny groups segments of their own (smallest share 1%), so no k meets share 5%. The tiny ones are merged.
    # (With the dominant group alone, the same run merges down to one segment: honest, and weak.)
    rng = np.random.default_rng(7)
    blob = np.vstack([rng.normal(0, 1, size=(700, 2)), rng.normal([4, -4], 1, size=(270, 2))])
    tiny = np.vstack([rng.normal(centre, 0.2, size=(10, 2)) for centre in ([8, 8], [-8, 8], [8, -8])])
    points = np.vstack([blob, tiny])
    features = pl.DataFrame({"customer_id": [f"C{i:04d}" for i in range(len(points))],
                             "age": points[:, 0], "income": points[:, 1]})
    work = _model_step_alone(tmp_path, features, "  features: [demographics]\n  k_range: [3, 6]\n"
                                                 "  bootstrap_rounds: 2\n  min_stability: 0.95\n")
    assert query(work, "SELECT bool_or(meets_constraints) FROM segments.model_runs") == [(False,)]
    shares = query(work, "SELECT count(*) / sum(count(*)) OVER () FROM model.customer_clusters GROUP BY segment_id")
    assert len(shares) == 2 and min(share for (share,) in shares) >= 0.05
    (strength, reason, decision), = query(work, "SELECT strength, strength_reason, k_decision_reason "
                                                "FROM segments.model_runs WHERE chosen")
    assert strength == WEAK and "no candidate met the constraints" in decision and "k 4 -> 2" in decision
    # The chosen row is the candidate's (k 4); it also says how many segments were published.
    assert query(work, "SELECT k, segments_published FROM segments.model_runs WHERE chosen") == [(4, 2)]
    assert "merged into their nearest neighbour" in reason
    assert query(work, "SELECT count(*) FROM segments.model_runs WHERE NOT chosen AND strength IS NOT NULL") \
        == [(0,)]


def test_seed_table_verdict_on_the_chosen_row_the_cli_and_the_report(seed_warehouse):
    rows = query(seed_warehouse, "SELECT chosen, strength, strength_reason FROM segments.model_runs")
    chosen = [(strength, reason) for is_chosen, strength, reason in rows if is_chosen]
    # Measured: silhouette 0.111, stability 0.78 at k = 8, every segment with a trait; so moderate.
    assert len(chosen) == 1 and chosen[0][0] == MODERATE and "silhouette 0.11" in chosen[0][1]
    assert all(strength is None for is_chosen, strength, _ in rows if not is_chosen)
    assert published_strength(seed_warehouse) == chosen[0]
    assert strength_line("weak", "no k met\nthe constraints") == "segmentation: weak (no k met the constraints)"
    reports = seed_warehouse.parent / "reports"
    zh, en = ((reports / f"report_{language}.html").read_text(encoding="utf-8") for language in ("zh", "en"))
    assert 'id="segmentation-strength"' in zh and "分群结果：中等" in zh and "Segmentation" not in zh
    assert 'id="segmentation-strength"' in en and "Segmentation: moderate" in en and "分群结果" not in en
    # The line comes under the title, before the summary.
    assert en.index('id="segmentation-strength"') < en.index('id="summary"')


def test_a_weak_verdict_goes_into_the_weak_results_box():
    from assets.report.facts import FactBook, compose
    from assets.report.html import Verdict, render_page
    from assets.report.narrative import Narrative

    book = FactBook()
    verdict = Verdict(WEAK, {"zh": compose("分群结果：弱。"), "en": compose("Segmentation: weak.")})
    narrative = Narrative(intro={"zh": [], "en": []}, cards=[], other=None, sections=[], notes={"zh": [], "en": []})
    page = render_page(narrative, book, {}, "en", "", [], verdict)
    box = page[page.index('id="weak-results"'):page.index("</aside>")]
    assert "Segmentation: weak." in box and 'id="segmentation-strength"' not in page


def test_a_weak_verdict_says_each_problem_the_model_step_found():
    from assets.report.facts import FactBook
    from assets.report.html import segmentation_verdict

    # A trial's run: weak only because one segment of 53% of the customers had no distinctive trait. The page said
    # "Segmentation: weak (...): ." with nothing between the colon and the stop.
    run = {"run_id": ["r1"], "k": [4], "chosen": [True], "strength": [WEAK], "silhouette": [0.138],
           "stability": [0.811], "meets_constraints": [True], "largest_traitless_share": [0.53],
           "strength_reason": ["a segment of 53% of customers has no distinctive trait: silhouette 0.14, stability "
                               "0.81; would help: customer attributes that tell customers apart"]}
    book = FactBook()
    verdict = segmentation_verdict(SimpleNamespace(model_runs=pl.DataFrame(run)), book)
    en, zh = verdict.text["en"].text(book), verdict.text["zh"].text(book)
    assert en.startswith("Segmentation: weak (silhouette 0.138, stability 0.811): a segment of 53.0% of the "
                         "customers has no distinctive trait. ")
    assert zh.startswith("分群结果：弱（轮廓系数 0.138，稳定性 0.811）：占客户 53.0% 的一个客群没有可区分的特点。")
    # A reason the page has no words for still says where to look, never an empty reason.
    unknown = {**run, "strength_reason": ["something new"], "largest_traitless_share": [None]}
    en = segmentation_verdict(SimpleNamespace(model_runs=pl.DataFrame(unknown)), book).text["en"].text(book)
    assert ": ." not in en and "see the section on choosing the number of segments" in en
