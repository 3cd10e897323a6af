"""Two things the report must say honestly, on the seed table (../shared/data/BASKETS1n.csv, no order dates):

- categories left out of a segment's name for lack of a label are listed per segment, with a `category_labels`
  snippet to paste into the source config, in the page's language; nothing is said when every category is labelled;
- without order dates no value tier is called "at risk" (流失风险客户): the lowest tier is "low value" (低价值客户)
  in segments.customer_value_tiers and on both pages; with dates it is still "at risk".
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import duckdb
import pydantic
import yaml

from assets.report.asset import build_report
from assets.segments.naming import UNLABELLED_NOTE
from assets.segments.value_tiers import LOW_VALUE, VALUE_TIERS
from tests.conftest import query
from tests.graph.test_report import LANGUAGES, check_every_number, demo_warehouse

AT_RISK = VALUE_TIERS[-1]
# Codes no vocabulary knows: 螺蛳粉 has only a Chinese label (itself), xg_01 only an English one (itself).
UNLABELLED = {"螺蛳粉": "en", "xg_01": "zh"}
SNIPPETS = {
    "zh": {"category_labels": {"螺蛳粉": ["螺蛳粉", "英文名称"], "xg_01": ["中文名称", "xg_01"]}},
    "en": {"category_labels": {"螺蛳粉": ["螺蛳粉", "English label"], "xg_01": ["Chinese label", "xg_01"]}},
}


def largest_segment(warehouse: Path) -> tuple[int, str, str]:
    return query(warehouse, "SELECT segment_id, segment_name_zh, segment_name_en FROM segments.segment_profiles "
                            "ORDER BY customers DESC, segment_id LIMIT 1")[0]


def with_evidence(seed_warehouse: Path, target: Path, notes: list[str] | None) -> Path:
    """A copy of the seed warehouse where the largest segment's name evidence notes `notes` as unlabelled, or
    where no segment notes any unlabelled category (notes None)."""
    shutil.copy(seed_warehouse, target)
    segment_id = largest_segment(seed_warehouse)[0]
    with duckdb.connect(str(target)) as con:
        con.execute("UPDATE segments.segment_profiles SET name_evidence = "
                    "list_filter(name_evidence, e -> NOT starts_with(e, ?))", [UNLABELLED_NOTE])
        if notes:
            con.execute("UPDATE segments.segment_profiles SET name_evidence = list_concat(name_evidence, ?) "
                        "WHERE segment_id = ?", [notes, segment_id])
    return target


def snippet_of(page: str) -> str | None:
    found = re.search(r'<pre class="snippet"><code>(.*?)</code></pre>', page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", found[1])) if found else None


def visible(path: Path) -> str:
    """The page's text as a reader sees it, in order (scripts and styles left out)."""
    page = re.sub(r"<(script|style)\b.*?</\1>", "", path.read_text(encoding="utf-8"), flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_the_report_asks_for_the_missing_category_labels(seed_warehouse, tmp_path):
    notes = [f"{UNLABELLED_NOTE}{code} ({language})" for code, language in UNLABELLED.items()]
    warehouse = with_evidence(seed_warehouse, tmp_path / "unlabelled.duckdb", notes)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        report = build_report(con, tmp_path / "reports", chart_files=False)
    _, name_zh, name_en = largest_segment(warehouse)
    zh, en = visible(report.pages["zh"]), visible(report.pages["en"])

    # Which categories were left out of which segment's name, and why, each page in its own language.
    assert "缺少品类标签" in zh and "Missing category labels" not in zh
    assert f"{name_zh}：螺蛳粉（缺英文标签）、xg_01（缺中文标签）。" in zh
    assert "因此没有用在客群名称中" in zh and "category_labels 下为每个品类添加标签，中文在前、英文在后" in zh
    assert "Missing category labels" in en and "缺少品类标签" not in en
    assert f"{name_en}: 螺蛳粉 (no English label), xg_01 (no Chinese label)." in en
    assert "so they were left out of the segment's name" in en
    assert "under category_labels in the source config, Chinese first, English second" in en

    # The snippet pastes into the source config as it is: valid YAML of the SourceConfig.category_labels form,
    # the known label filled in and a placeholder, in the page's language, for the missing one.
    for language in LANGUAGES:
        snippet = snippet_of(report.pages[language].read_text(encoding="utf-8"))
        assert snippet is not None, language
        assert yaml.safe_load(snippet) == SNIPPETS[language], (language, snippet)
        pydantic.TypeAdapter(dict[str, tuple[str, str]]).validate_python(yaml.safe_load(snippet)["category_labels"])
    assert snippet_of(report.pages["zh"].read_text(encoding="utf-8")).splitlines() == [
        "category_labels:", "  螺蛳粉: [螺蛳粉, 英文名称]", "  xg_01: [中文名称, xg_01]"]

    # The codes are facts proved by the name evidence (xg_01 holds digits): every number on both pages still is.
    assert report.book.facts[f"seg{largest_segment(warehouse)[0]}.unlabelled.xg_01"].value == "xg_01"
    check_every_number(warehouse, tmp_path / "reports", tmp_path / "again", built_by_the_run=False)


def test_nothing_is_asked_when_every_category_is_labelled(seed_warehouse, tmp_path):
    warehouse = with_evidence(seed_warehouse, tmp_path / "labelled.duckdb", None)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        report = build_report(con, tmp_path / "reports", chart_files=False)
    assert "missing_labels" not in [s.key for s in report.narrative.sections]
    for language in LANGUAGES:
        page = report.pages[language].read_text(encoding="utf-8")
        assert snippet_of(page) is None and "category_labels" not in page, language
        assert "缺少品类标签" not in page and "Missing category labels" not in page, language


def test_without_order_dates_no_value_tier_is_called_at_risk(seed_warehouse, tmp_path):
    assert query(seed_warehouse, "SELECT count(recency_days) FROM segments.customer_value_tiers") == [(0,)]
    tiers = query(seed_warehouse, "SELECT DISTINCT value_tier_key, value_tier_zh, value_tier_en "
                                  "FROM segments.customer_value_tiers")
    assert (LOW_VALUE.key, "低价值客户", "Low value") in tiers
    for row in tiers:
        assert AT_RISK.key not in row and "流失风险客户" not in row and "At risk" not in row, row

    # The published report of the seed run and one built now: no tier claims a churn risk, on either page or in
    # the charts' data, and the lowest tier is named low value.
    with duckdb.connect(str(seed_warehouse), read_only=True) as con:
        report = build_report(con, tmp_path / "reports", chart_files=False)
    for pages in (seed_warehouse.parent / "reports", tmp_path / "reports"):
        for language in LANGUAGES:
            page = (pages / f"report_{language}.html").read_text(encoding="utf-8")
            assert "流失风险" not in page and "at risk" not in page.lower(), (pages, language)
            assert (LOW_VALUE.zh if language == "zh" else LOW_VALUE.en) in page, (pages, language)
    value_chart = str(report.specs["en"]["value_tiers"]) + str(report.specs["zh"]["value_tiers"])
    assert "Low value" in value_chart and "低价值客户" in value_chart and "At risk" not in value_chart
    zh, en = visible(report.pages["zh"]), visible(report.pages["en"])
    assert "低价值" in zh and "最低一档称为“低价值客户”" in zh
    assert "low value." in en and "the lowest tier is called “Low value”" in en


def test_with_order_dates_the_lowest_value_tier_is_still_at_risk(tmp_path_factory, tmp_path):
    demo = demo_warehouse(tmp_path_factory)  # the report tests' generated shop, with order dates
    keys = {key for (key,) in query(demo, "SELECT DISTINCT value_tier_key FROM segments.customer_value_tiers")}
    assert AT_RISK.key in keys and LOW_VALUE.key not in keys
    with duckdb.connect(str(demo), read_only=True) as con:
        report = build_report(con, tmp_path / "reports", chart_files=False)
    assert "流失风险" in visible(report.pages["zh"]) and " at risk." in visible(report.pages["en"])
    value_chart = str(report.specs["en"]["value_tiers"])
    assert "At risk" in value_chart and "Low value" not in value_chart
