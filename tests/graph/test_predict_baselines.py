"""Predictions against the obvious baselines: recommendations fall back on popularity where the co-purchase rules
do not beat it, the churn model is compared with ranking by recency alone, and weak results are said out loud (the
`persona run` output, the banner at the top of the report).

The data here is random, not the demo generator's personas (whose planted bundles the rules find): categories are
bought independently of each other, by popularity, so no co-purchase rule carries information, and customers stop
buying at random times, so how long since the last order is most of what can be known about churn."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from assets.predict.churn import MIN_GAIN_OVER_RECENCY, churn_features, churn_labels
from assets.predict.recommendations import SOURCE_POPULARITY, SOURCE_RULES, choose_source
from assets.predict.runs import EVALUATED, NO_DATES, TRAINED
from assets.report.facts import FactBook
from assets.report.html import render_page
from assets.report.narrative import Narrative, Section
from assets.report.sections_predict import (
    _say_against_recency,
    _say_if_most_are_at_risk,
    _say_what_to_do,
    weak_results,
)
from pipelines.runner import failed_warnings
from tests.conftest import materialize_graph, query, work_db, write_file

START = datetime(2026, 1, 1)
DAYS = 150
CATEGORIES = [f"cat{chr(ord('a') + i)}" for i in range(12)]


def random_shop(root: Path, customers: int = 1500, seed: int = 11) -> Path:
    """A long-shape export of random customers: orders at a personal rate until a random stop day (some never
    stop), each order 1-3 lines of categories drawn on their own by a skewed popularity."""
    rng = np.random.default_rng(seed)
    popularity = 1 / np.arange(1, len(CATEGORIES) + 1) ** 0.8
    popularity /= popularity.sum()
    lines, profiles = [], []
    for c in range(customers):
        customer = f"R{c:05d}"
        profiles.append((customer, int(rng.integers(18, 75)), str(rng.choice(["F", "M"])),
                         int(rng.integers(20, 300)) * 1000, "YES", "Hangzhou"))
        rate = rng.exponential(0.08) + 0.01  # orders per day
        first = rng.uniform(0, 40)
        stop = rng.uniform(first, DAYS * 1.6)  # beyond DAYS: still buying at the end
        day, order = first, 0
        while day < min(stop, DAYS):
            ts = START + timedelta(days=day)
            for category in rng.choice(CATEGORIES, size=int(rng.integers(1, 4)), p=popularity):
                price = round(float(rng.uniform(5, 60)), 2)
                lines.append((f"O{c:05d}-{order:03d}", customer, ts.strftime("%Y-%m-%d %H:%M:%S"), str(category),
                              1, price, price, "CASH", "store", f"{category}-001"))
            order += 1
            day += rng.exponential(1 / rate)
    columns = ["order_id", "customer_id", "order_ts", "category", "quantity", "unit_price", "amount",
               "payment_method", "channel", "sku"]
    pl.DataFrame(lines, schema=columns, orient="row").write_csv(root / "order_lines.csv")
    pl.DataFrame(profiles, schema=["customer_id", "age", "gender", "income", "home_owner", "city"],
                 orient="row").write_csv(root / "customers.csv")
    return write_file(root / "shop.yaml", f"name: random\nshape: long\norders:\n  path: {root / 'order_lines.csv'}\n"
                                          f"customers:\n  path: {root / 'customers.csv'}\n"
                                          "model:\n  k_range: [3, 4]\n  bootstrap_rounds: 2\n")


@pytest.fixture(scope="module")
def random_run(tmp_path_factory) -> tuple[dg.ExecuteInProcessResult, Path]:
    """The whole graph (report included) on the random shop, once."""
    root = tmp_path_factory.mktemp("baselines")
    warehouse = root / "warehouse.duckdb"
    result = materialize_graph(random_shop(root), warehouse)
    return result, warehouse


def _latest(warehouse: Path, table: str, time_column: str) -> dict:
    frame = pl.DataFrame(query(warehouse, f"SELECT * FROM predict.{table} ORDER BY {time_column} DESC LIMIT 1"),
                         schema=[row[0] for row in query(
                             warehouse, "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                        "'predict' AND table_name = ? ORDER BY ordinal_position", [table])],
                         orient="row")
    return frame.row(0, named=True)


# --- recommendations: popularity wherever the rules do not beat it --------------------------------------------------

def test_choose_source_publishes_rules_only_when_they_beat_popularity():
    judged = {"status": EVALUATED, "customers_evaluated": 200}
    assert choose_source({**judged, "hits": 61, "popularity_hits": 60})["published_source"] == SOURCE_RULES
    tie = choose_source({**judged, "hits": 60, "popularity_hits": 60})
    assert tie["published_source"] == SOURCE_POPULARITY and tie["published_hit_rate"] == 0.3
    worse = choose_source({**judged, "hits": 12, "popularity_hits": 60})
    assert worse == {"published_source": SOURCE_POPULARITY, "published_hits": 60, "published_hit_rate": 0.3,
                     "source_decision": worse["source_decision"]}
    assert "do not beat popularity" in worse["source_decision"]
    # Nothing to compare with: the rules, as before.
    unjudged = choose_source({"status": NO_DATES, "reason": "no dates"})
    assert unjudged["published_source"] == SOURCE_RULES and unjudged["published_hit_rate"] is None


def test_useless_rules_are_replaced_by_popularity(random_run):
    result, warehouse = random_run
    assert result.success
    work = work_db(warehouse)
    run = _latest(work, "recommendation_eval", "evaluated_at")
    assert run["status"] == EVALUATED and run["customers_evaluated"] > 100 and run["rules_used"] > 0
    # Random co-purchases: the rules do not beat popularity on the held-out window, so popularity is published,
    # for every customer, and the published hit-rate is popularity's.
    assert run["hits"] <= run["popularity_hits"]
    assert run["published_source"] == SOURCE_POPULARITY
    assert run["published_hit_rate"] >= run["popularity_hit_rate"]
    assert run["published_hit_rate"] == pytest.approx(run["popularity_hits"] / run["customers_evaluated"])
    assert "do not beat popularity" in run["source_decision"]
    [(sources, customers)] = query(work, "SELECT list(DISTINCT source), count(DISTINCT customer_id) "
                                         "FROM predict.next_category")
    assert sources == [SOURCE_POPULARITY] and customers > 1000
    # The ranking published is the popularity ranking: a customer's first pick is the most popular category they
    # have not bought.
    [(wrong,)] = query(work, """
        WITH popular AS (SELECT category, count(DISTINCT customer_id) AS buyers FROM staging.order_lines
                         GROUP BY category)
        SELECT count(*) FROM predict.next_category n
        JOIN popular p USING (category)
        WHERE n.rank = 1 AND EXISTS (
            SELECT 1 FROM popular q WHERE q.buyers > p.buyers AND NOT EXISTS (
                SELECT 1 FROM staging.order_lines l WHERE l.customer_id = n.customer_id AND l.category = q.category))
    """)
    assert wrong == 0
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    rec_check = checks["recommendations_beat_popularity"]
    assert not rec_check.passed and "most popular categories are published instead" in rec_check.description


# --- churn against ranking by recency alone ---------------------------------------------------------------------

def test_churn_run_records_the_recency_baseline(random_run):
    result, warehouse = random_run
    work = work_db(warehouse)
    run = _latest(work, "churn_model_runs", "trained_at")
    assert run["status"] == TRAINED
    assert run["min_gain_over_recency"] == MIN_GAIN_OVER_RECENCY
    assert 0.5 < run["recency_auc"] < 1
    assert run["auc_gain_over_recency"] == pytest.approx(run["auc"] - run["recency_auc"])
    # The same held-out customers and window as the model's AUC (every customer: far fewer than EVAL_SAMPLE).
    with duckdb.connect(str(work), read_only=True) as con:
        features = churn_features(con, [run["eval_cutoff"]], []).sort("customer_id")
        labels = churn_labels(con, features["customer_id"], run["eval_cutoff"],
                              timedelta(days=run["horizon_days"]))
    assert len(labels) == run["n_eval"]
    assert run["recency_auc"] == pytest.approx(roc_auc_score(labels, features["recency_days"].to_numpy()))


# --- weak results said out loud ------------------------------------------------------------------------------

def test_failed_warn_checks_are_listed_one_line_each(random_run):
    result, _ = random_run
    lines = failed_warnings(result.get_asset_check_evaluations())
    assert any(line.startswith("warning: recommendations_beat_popularity on predict/recommendation_eval: hit-rate@")
               for line in lines)
    # Made up evaluations: only failed warnings count, blocking failures are the run's reason instead.
    key = dg.AssetKey(["predict", "churn_model_runs"])
    evaluations = [
        dg.AssetCheckEvaluation(asset_key=key, check_name="churn_model_quality", passed=False,
                                severity=dg.AssetCheckSeverity.WARN, description="held-out AUC 0.610 is low\nreally"),
        dg.AssetCheckEvaluation(asset_key=key, check_name="fine", passed=True, severity=dg.AssetCheckSeverity.WARN),
        dg.AssetCheckEvaluation(asset_key=key, check_name="blocking", passed=False,
                                severity=dg.AssetCheckSeverity.ERROR, description="stop"),
    ]
    assert failed_warnings(evaluations) == (
        "warning: churn_model_quality on predict/churn_model_runs: held-out AUC 0.610 is low really",)


def _page(banner: dict, language: str, book: FactBook) -> str:
    empty = Narrative(intro={"zh": [], "en": []}, cards=[], other=None, sections=[], notes={"zh": [], "en": []})
    return render_page(empty, book, {}, language, "", banner[language])


CHURN_RUN = {"run_id": "r1", "status": TRAINED, "auc": 0.842, "min_auc": 0.6, "calibration_error": 0.02,
             "max_calibration_error": 0.05, "recency_auc": 0.838, "auc_gain_over_recency": 0.004,
             "min_gain_over_recency": MIN_GAIN_OVER_RECENCY}
RECS_RUN = {"run_id": "r1", "status": EVALUATED, "hit_rate": 0.05, "popularity_hit_rate": 0.26,
            "published_source": SOURCE_POPULARITY}


def test_banner_says_each_weak_result_in_both_languages():
    book = FactBook()
    banner = weak_results(SimpleNamespace(value_run=None, churn_run=CHURN_RUN, recommendation_eval=RECS_RUN), book)
    assert len(banner["zh"]) == len(banner["en"]) == 2
    en, zh = _page(banner, "en", book), _page(banner, "zh", book)
    assert en.index('id="weak-results"') < en.index('id="summary"')
    assert "it adds nothing over recency" in en and "most popular categories" in en
    assert "没有带来实质提升" in zh and "已改为热门品类" in zh
    assert 'data-fact="churn.recency_auc">0.838<' in en and 'data-fact="recs.popularity_hit_rate">26.0%<' in zh
    # Low AUC and calibration above the limit too; a strong model and rules that beat popularity say nothing.
    book = FactBook()
    weak = {**CHURN_RUN, "auc": 0.55, "calibration_error": 0.09}
    banner = weak_results(SimpleNamespace(value_run=None, churn_run=weak, recommendation_eval=None), book)
    text = " ".join(s.text(book) for s in banner["en"])
    assert "below the required 0.600" in text and "calibration error is 9.0%, above the limit of 5.0%" in text
    strong = {**CHURN_RUN, "auc": 0.9, "auc_gain_over_recency": 0.062}
    good = {**RECS_RUN, "hit_rate": 0.3, "published_source": SOURCE_RULES}
    banner = weak_results(SimpleNamespace(value_run=None, churn_run=strong, recommendation_eval=good), FactBook())
    assert banner == {"zh": [], "en": []} and 'id="weak-results"' not in _page(banner, "en", FactBook())
    # No order dates: no churn model, nothing weak to report about it (the churn section says why).
    unjudged = SimpleNamespace(value_run=None, churn_run={"run_id": "r1", "status": NO_DATES}, recommendation_eval=None)
    assert weak_results(unjudged, FactBook()) == {"zh": [], "en": []}


def test_rules_that_beat_popularity_by_less_than_the_bar_are_said_to_add_little():
    # A trial's Shopify export: the rules hit 1.06x as often as popularity, so they were published, and the check
    # warned (below 1.1); the report said "the rules do 1.1× as well" and nothing more.
    close = {"run_id": "r1", "status": EVALUATED, "hit_rate": 0.944, "popularity_hit_rate": 0.889,
             "lift_over_popularity": 0.944 / 0.889, "min_lift_over_popularity": 1.1, "published_source": SOURCE_RULES}
    book = FactBook()
    banner = weak_results(SimpleNamespace(value_run=None, churn_run=None, recommendation_eval=close), book)
    assert [s.text(book) for s in banner["en"]] == [
        "The co-purchase rules hit only 1.06× as often as recommending the most popular categories, below the "
        "required 1.10×: the recommendations add little over the best sellers."]
    assert [s.text(book, "zh") for s in banner["zh"]] == ["共同购买规则的命中率只有热门品类推荐的 1.06 倍，低于要求的 1.10 倍：推荐与热销品类相差不大。"]
    # At the bar or above, nothing is weak.
    at_bar = {**close, "lift_over_popularity": 1.1}
    assert weak_results(SimpleNamespace(value_run=None, churn_run=None, recommendation_eval=at_bar), FactBook()) == {"zh": [], "en": []}


@pytest.mark.parametrize(("gain", "en", "zh"), [
    (-0.027, "the model does worse (a difference of -0.027, where it should be at least 0.010 higher)",
     "模型的 AUC 反而低了（相差 -0.027，至少应高出 0.010）"),
    (0.004, "the model adds only 0.004 (less than 0.010), so it is no better than that simple rule",
     "模型只高出 0.004（不到 0.010）"),
    (0.062, "the model adds 0.062.", "模型高出 0.062。"),
])
def test_the_churn_section_says_how_the_model_compares_with_recency(gain, en, zh):
    # A model below the recency ranking is said to do worse, not to "add only" a negative number.
    book, section = FactBook(), Section("churn_risk", {"zh": "", "en": ""}, [])
    _say_against_recency(section, book, {**CHURN_RUN, "auc_gain_over_recency": gain})
    [said_en], [said_zh] = section.paragraphs["en"], section.paragraphs["zh"]
    assert en in said_en.text(book) and zh in said_zh.text(book)


@pytest.mark.parametrize(("run", "en", "zh"), [
    # No better than recency: choose by recency, and measure with a holdout.
    ({}, "but the model is no better than ranking by the last order (above), so choose whom to win back by days "
         "since their last order, and keep a holdout group", "挽回对象请按距上次购买的天数挑选"),
    # Better than recency, but below predict.min_auc (the trial's export: AUC 0.536).
    ({"auc": 0.536, "recency_auc": 0.5, "auc_gain_over_recency": 0.036},
     "but the model is weak (its AUC is below predict.min_auc, above), so take the list as a rough ranking",
     "名单只可作为粗略的排序"),
    ({"auc_gain_over_recency": 0.062}, "reach out before they stop buying, with personal perks on their usual "
                                       "categories.", "用专属权益和常购品类主动联系"),
])
def test_the_churn_section_advises_reaching_out_only_on_a_model_that_earns_it(run, en, zh):
    book, section = FactBook(), Section("churn_risk", {"zh": "", "en": ""}, [])
    _say_what_to_do(section, SimpleNamespace(has_categories=True), {**CHURN_RUN, **run})
    [said_en], [said_zh] = section.paragraphs["en"], section.paragraphs["zh"]
    assert en in said_en.text(book) and zh in said_zh.text(book)
    # Only a model that beats recency and min_auc is advice to act on as it stands.
    assert ("reach out" in said_en.text(book)) == (run == {"auc_gain_over_recency": 0.062})


def test_the_churn_section_says_when_the_threshold_marks_most_customers():
    # 790 of 800 at risk (a shop of one-time buyers): too many to contact as one list.
    at_risk = pl.DataFrame({"segment_id": [0, 1], "members": [500, 300], "at_risk": [495, 295]})
    data = SimpleNamespace(at_risk=at_risk, detailed=[SimpleNamespace(segment_id=0), SimpleNamespace(segment_id=1)])
    book, section = FactBook(), Section("churn_risk", {"zh": "", "en": ""}, [])
    _say_if_most_are_at_risk(section, book, data)
    [said_en], [said_zh] = section.paragraphs["en"], section.paragraphs["zh"]
    assert said_en.text(book) == ("That is 98.8% of the customers, too many to contact as one list: rank them by "
                                  "churn_risk and contact the top of the list first, as many as the budget allows.")
    assert "这占客户的 98.8%" in said_zh.text(book)
    # A third at risk: the list does single customers out, and nothing more is said.
    section = Section("churn_risk", {"zh": "", "en": ""}, [])
    _say_if_most_are_at_risk(section, FactBook(), SimpleNamespace(
        at_risk=at_risk.with_columns(pl.Series("at_risk", [150, 100])), detailed=data.detailed))
    assert section.paragraphs["en"] == []


def test_report_opens_with_the_banner(random_run):
    _, warehouse = random_run
    for language, said in (("en", "the published recommendations are therefore the most popular categories"),
                           ("zh", "因此本次发布的推荐已改为热门品类")):
        page = (warehouse.parent / "reports" / f"report_{language}.html").read_text(encoding="utf-8")
        assert page.index('id="weak-results"') < page.index('<section id="summary"')
        banner = page[page.index('id="weak-results"'):page.index("</aside>")]
        assert said in banner
    en = (warehouse.parent / "reports" / "report_en.html").read_text(encoding="utf-8")
    churn = en[en.index('<section id="churn_risk"'):en.index('<section id="next_category"')]
    assert "Ranking customers by days since their last order alone" in churn
