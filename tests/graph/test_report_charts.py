"""The report for the weekly meeting (issue 22 point 6), on the demo warehouse (two nights, dated orders) and the
seed table (one night, no order dates):

- weekly KPI trends per segment, chart and table, every number a fact; words instead of a chart without dates;
- every chart at the page's width, and every text label drawn in a chart readable (WCAG contrast >= 4.5:1);
- a heatmap of more than TOP_CATEGORIES categories folds the rest into "Other";
- a first run says in words that there is no history yet, with no migration or history chart;
- prose: "2.9 倍" in Chinese, grammar that holds for plural segment names, RFM and value tiers told apart.
The segment selector is tested in a real browser: tests/e2e/test_report_selector.py.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from assets.report.asset import Report, build_report
from assets.report.chart_style import FOCUS, PAGE_WIDTH, text_contrast_problems
from assets.report.charts import FOCUSABLE
from assets.report.charts_heatmaps import TOP_CATEGORIES
from assets.report.weekly import METRICS
from tests.conftest import query
from tests.graph.test_report import LANGUAGES, demo_warehouse, read_page

_BUILT: dict[Path, Report] = {}


def built(warehouse: Path, tmp_path_factory) -> Report:
    if warehouse not in _BUILT:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            _BUILT[warehouse] = build_report(con, tmp_path_factory.mktemp("report-charts"), chart_files=False)
    return _BUILT[warehouse]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return demo_warehouse(tmp_path_factory)


@pytest.fixture(scope="module")
def demo_report(demo, tmp_path_factory) -> Report:
    return built(demo, tmp_path_factory)


@pytest.fixture(scope="module")
def seed_report(seed_warehouse, tmp_path_factory) -> Report:
    return built(seed_warehouse, tmp_path_factory)


def visible(report: Report, language: str) -> str:
    page = read_page(report.pages[language])
    return " ".join(page.free + page.labels + [shown for _, shown in page.facts])


def section_text(report: Report, key: str, language: str) -> str:
    page = report.pages[language].read_text(encoding="utf-8")
    start = page.index(f'<section id="{key}"')
    return re.sub(r"<[^>]+>", "", page[start:page.index("</section>", start)])


# --- weekly KPIs ----------------------------------------------------------------------------------------------------

def test_weekly_kpis_per_segment_with_the_change_week_on_week(demo, demo_report):
    [(last_day,)] = query(demo, "SELECT max(order_ts)::DATE FROM staging.orders")
    latest = last_day - timedelta(days=last_day.weekday() + 1) - timedelta(days=6)  # the last Monday-Sunday
    if last_day.weekday() == 6:
        latest = last_day - timedelta(days=6)
    book, data = demo_report.book, demo_report.data
    assert book.facts["kpi.latest_week"].value == latest
    assert book.facts["kpi.previous_week"].value == latest - timedelta(days=7)
    # Recomputed here from the orders, independently of the report's SQL.
    orders = pl.from_records(query(demo, "SELECT s.segment_id, o.customer_id, o.order_ts, o.order_amount "
                                         "FROM staging.orders o JOIN segments.customer_segments s USING (customer_id)"),
                             schema=["segment_id", "customer_id", "order_ts", "amount"], orient="row")
    first = orders.group_by("customer_id").agg(pl.col("order_ts").min().alias("first_ts"))
    orders = orders.join(first, on="customer_id").with_columns(week=pl.col("order_ts").dt.truncate("1w").dt.date())
    for segment in data.detailed:
        sid = segment.segment_id
        expected = {}
        for week in (latest, latest - timedelta(days=7)):
            rows = orders.filter((pl.col("segment_id") == sid) & (pl.col("week") == week))
            repeat = rows.filter(pl.col("first_ts").dt.truncate("1w").dt.date() < week)
            expected[week] = {"active": rows["customer_id"].n_unique(), "orders": rows.height,
                              "gmv": rows["amount"].sum(), "aov": rows["amount"].sum() / rows.height,
                              "repeat_rate": repeat["customer_id"].n_unique() / rows["customer_id"].n_unique()}
        for metric in METRICS:
            now, before = expected[latest][metric], expected[latest - timedelta(days=7)][metric]
            assert book.facts[f"kpi.seg{sid}.{metric}.latest"].value == pytest.approx(now, abs=0.01), (sid, metric)
            change = book.facts[f"kpi.seg{sid}.{metric}.change"].value
            assert change == pytest.approx(now - before if metric == "repeat_rate" else now / before - 1,
                                           abs=1e-4), (sid, metric)
    for language in LANGUAGES:
        page = demo_report.pages[language].read_text(encoding="utf-8")
        start = page.index('<table class="kpi" id="table-weekly">')
        table = page[start:page.index("</table>", start)]
        assert re.findall(r'<tr data-segment="(\d+)">', table) == [str(s.segment_id) for s in data.detailed]
        assert table.count('class="fact"') == len(data.detailed) * len(METRICS) * 2  # value and change
        spec = demo_report.specs[language]["weekly"]
        values = spec["datasets"][spec["data"]["name"]] if "datasets" in spec else spec["data"]["values"]
        assert {r["sid"] for r in values} == {str(s.segment_id) for s in data.detailed}
        assert {r["week"] for r in values} >= {latest.isoformat(), (latest - timedelta(days=7)).isoformat()}
        assert max(r["week"] for r in values) == latest.isoformat()  # the week in progress is left out
    assert "Weekly KPI trends" in demo_report.pages["en"].read_text(encoding="utf-8")
    assert "每周指标趋势" in demo_report.pages["zh"].read_text(encoding="utf-8")


def test_without_order_dates_the_weekly_section_says_so(seed_report):
    assert "weekly" not in seed_report.specs["en"] and "weekly" not in seed_report.specs["zh"]
    assert "The orders carry no dates, so weekly active customers" in section_text(seed_report, "weekly", "en")
    assert "订单没有日期，无法按周统计" in section_text(seed_report, "weekly", "zh")


# --- legibility -----------------------------------------------------------------------------------------------------

def _widths(spec: dict) -> list[int]:
    found = [spec["width"]] if isinstance(spec.get("width"), int) else []
    for key in ("layer", "vconcat", "hconcat", "concat"):
        for child in spec.get(key, []):
            found += _widths(child)
    if "spec" in spec:
        found += _widths(spec["spec"])
    return found


@pytest.mark.parametrize("which", ["demo", "seed"])
def test_every_chart_is_page_wide_and_every_label_readable(which, demo_report, seed_report):
    report = demo_report if which == "demo" else seed_report
    for language in LANGUAGES:
        for key, spec in report.specs[language].items():
            assert text_contrast_problems(spec, f"{language}.{key}") == []
            widths = _widths(spec)
            assert widths and min(widths) >= PAGE_WIDTH - 200, (key, widths)
            # The segment charts answer to the page's segment selector.
            assert (FOCUS in [p["name"] for p in spec.get("params", [])]) == (key in FOCUSABLE), key


def test_the_old_heatmaps_would_have_failed_the_check():
    """Dark text on the darkest migration cells, as the report drew it before: the check catches it."""
    rows = [{"from": "a", "to": "a", "customers": 900, "stay": True},
            {"from": "a", "to": "b", "customers": 40, "stay": False}]
    old = {"data": {"values": rows}, "layer": [
        {"mark": {"type": "rect"}, "encoding": {"color": {"field": "customers", "type": "quantitative",
                                                          "scale": {"type": "symlog", "scheme": "blues"}}}},
        {"mark": {"type": "text", "fontSize": 12}, "encoding": {"text": {"field": "customers"},
                                                               "color": {"value": "#1f2933"}}}]}
    with pytest.raises(ValueError, match="cannot read"):
        text_contrast_problems(old)


# --- many categories ------------------------------------------------------------------------------------------------

def test_more_categories_than_fit_fold_into_other(demo, demo_report):
    [(categories,)] = query(demo, "SELECT count(DISTINCT category) FROM segments.segment_category_affinity")
    assert categories > TOP_CATEGORIES + 1  # the demo shop has more than fit
    for language, other in (("en", "Other"), ("zh", "其他")):
        spec = demo_report.specs[language]["categories"]
        values = spec["datasets"][spec["data"]["name"]] if "datasets" in spec else spec["data"]["values"]
        drawn = list(dict.fromkeys(r["category"] for r in values))
        assert len(drawn) == TOP_CATEGORIES + 1 and drawn[-1] == other
        assert len({r["sid"] for r in values if r["category"] == other}) == len(demo_report.data.detailed)
    folded = demo_report.book.facts["categories.folded"].value
    assert folded == categories - TOP_CATEGORIES
    assert f"the other {folded} are folded into “Other”" in section_text(demo_report, "categories", "en")
    assert f"其余 {folded} 个品类合并为“其他”" in section_text(demo_report, "categories", "zh")


# --- first runs -----------------------------------------------------------------------------------------------------

def test_a_first_run_says_there_is_no_history_yet(seed_report):
    for language in LANGUAGES:
        assert "migration" not in seed_report.specs[language] and "history" not in seed_report.specs[language]
    assert "This is the first run, so there is no history to compare with yet" in \
        section_text(seed_report, "migration", "en")
    assert "so there is no history yet" in section_text(seed_report, "history", "en")
    assert "这是第一次运行，还没有历史记录可以比较" in section_text(seed_report, "migration", "zh")
    assert "还没有历史记录" in section_text(seed_report, "history", "zh")


def test_a_second_run_draws_migration_and_history(demo_report):
    for language in LANGUAGES:
        assert {"migration", "history"} <= set(demo_report.specs[language])


# --- prose ----------------------------------------------------------------------------------------------------------

def test_prose_reads_right_in_both_languages(demo_report, seed_report):
    for report in (demo_report, seed_report):
        zh, en = visible(report, "zh"), visible(report, "en")
        assert "×" not in zh and re.search(r"\d\.\d+ 倍", zh)
        assert re.search(r"\d\.\d+×", en)
        names = [s.name_en for s in report.data.detailed]
        for name in names:  # no third-person verb straight after a (plural) segment name
            assert not re.search(re.escape(name) + r":? (uses|buys|pays|spends|prefers) ", en), name
    demo_en, demo_zh = section_text(demo_report, "tiers", "en"), section_text(demo_report, "tiers", "zh")
    assert "How the two differ: RFM tiers score recency, frequency and spend by quintile" in demo_en
    assert "value tiers ignore recency" in demo_en and "k-means" in demo_en
    assert "两种分层的区别" in demo_zh
    # Without dates there are no RFM tiers, so nothing to tell apart.
    assert "How the two differ" not in section_text(seed_report, "tiers", "en")
