"""The insight report: every number true, strategies with evidence, offline pages, chart files with Chinese glyphs,
privacy for small segments, and the Dagster metadata.

Numbers: the report prints numbers only as facts (assets/report/facts.py). The tests re-run each fact's own query
against the warehouse, print the result the same way, and compare it with what the page shows; and they check
that no digit in the visible text of either page sits outside a fact or a name read from the tables.
"""

from __future__ import annotations

import base64
import functools
import html
import re
import shutil
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg
import duckdb
import jsonschema
import polars as pl
import pytest
from altair.vegalite.v6.schema.core import load_schema

from assets.report import chart_files, chart_render
from assets.report.asset import build_report, bundle_cache_files
from assets.report.charts_heatmaps import TOP_CATEGORIES
from assets.report.data import MIN_DETAIL_SIZE, OTHER_NAME, load_report_data
from assets.report.facts import FactBook, format_value
from assets.report.sections import section_box
from assets.report.strategies import PlaybookError, load_playbook, plan, strategies_for
from pipelines.core.partitions import snapshot_partition_key
from pipelines.core.resources import SourceResource, WarehouseResource, work_file_for
from pipelines.core.sql import table_exists
from pipelines.demo.generate import generate_demo_data
from pipelines.jobs import ALL_ASSETS, ALL_CHECKS
from tests.conftest import query, write_file

LANGUAGES = ("zh", "en")
_DEMO: dict[str, object] = {}


def _materialize(config: Path, warehouse: Path, report: bool = True) -> dg.ExecuteInProcessResult:
    selection = None if report else dg.AssetSelection.all() - dg.AssetSelection.keys(["report", "segment_report"])
    return dg.materialize([*ALL_ASSETS, *ALL_CHECKS], selection=selection, raise_on_error=False,
                          partition_key=snapshot_partition_key(), resources={
        "warehouse": WarehouseResource(path=str(warehouse)), "source": SourceResource(config_path=str(config))})


def demo_warehouse(tmp_path_factory) -> Path:
    """Demo data with 1,500 customers over two nights (the first without the last day), so the report has a
    previous run to compare with. Built once per session; the browser test shares it."""
    if "warehouse" not in _DEMO:
        root = tmp_path_factory.mktemp("report-demo")
        data = generate_demo_data(root / "data", customers=1500, days=61, seed=11)
        lines = pl.read_csv(data.orders_path, infer_schema=False)
        last_day = lines.get_column("order_ts").str.slice(0, 10).max()
        earlier = root / "earlier.csv"
        lines.filter(pl.col("order_ts").str.slice(0, 10) < last_day).write_csv(earlier)
        warehouse = root / "warehouse.duckdb"
        for night, orders in enumerate((earlier, data.orders_path)):
            config = write_file(root / "shop.yaml", f"name: report-demo\nshape: long\norders:\n  path: {orders}\n"
                                                    f"customers:\n  path: {data.customers_path}\n"
                                                    "model:\n  k_range: [3, 6]\n  bootstrap_rounds: 2\n"
                                                    # 61 days: a horizon of 14 leaves 33 days before the
                                                    # training cutoff, so churn is trained and judged.
                                                    "predict:\n  horizon_days: 14\n")
            result = _materialize(config, warehouse, report=night == 1)
            assert result.success
        _DEMO["warehouse"], _DEMO["result"] = warehouse, result
    return _DEMO["warehouse"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return demo_warehouse(tmp_path_factory)


# --- reading a page ---------------------------------------------------------------------------------------------

class VisibleText(HTMLParser):
    """Collects the visible text of a page: facts, labels (names from the tables) and everything else."""

    LABELS = ("label", "name")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str | None, str | None]] = []  # (tag, role, fact key)
        self.facts: list[tuple[str, str]] = []
        self.labels: list[str] = []
        self.free: list[str] = []
        self._fact_text: list[str] = []
        self._label_text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        role = "fact" if "fact" in classes else "label" if set(classes) & set(self.LABELS) else None
        if tag in ("meta", "br", "img", "input", "link"):
            return
        self.stack.append((tag, role, attrs.get("data-fact")))

    def handle_endtag(self, tag):
        while self.stack:
            open_tag, role, key = self.stack.pop()
            if role == "fact":
                self.facts.append((key, "".join(self._fact_text)))
                self._fact_text = []
            elif role == "label":
                self.labels.append("".join(self._label_text))
                self._label_text = []
            if open_tag == tag:
                break

    def handle_data(self, data):
        tags = [t for t, _, _ in self.stack]
        if "script" in tags or "style" in tags or "title" in tags:
            return
        roles = [r for _, r, _ in self.stack]
        if "fact" in roles:
            self._fact_text.append(data)
        elif "label" in roles:
            self._label_text.append(data)
        else:
            self.free.append(data)


def read_page(path: Path) -> VisibleText:
    parser = VisibleText()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def sql_value(con: duckdb.DuckDBPyConnection, fact) -> object:
    rows = con.execute(fact.sql, list(fact.params)).fetchall()
    assert len(rows) == 1 and len(rows[0]) == 1, f"{fact.key}: the query must return one value: {rows}"
    return rows[0][0]


NUMBER = re.compile(r"\d")
# The report's own settings printed as facts without a query.
PARAMS = {"param.min_detail_size": MIN_DETAIL_SIZE, "param.top_categories": TOP_CATEGORIES}


@functools.cache
def vega_lite_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(load_schema())


def assert_valid_vega_lite(specs: dict[str, dict[str, dict]]) -> None:
    """Every chart (language -> key -> spec) is valid Vega-Lite: the report builds them without Altair's
    validation, to save time, so this is where a chart Vega-Lite would reject is caught."""
    for language, charts in specs.items():
        assert charts, language
        for key, spec in charts.items():
            errors = [error.message for error in vega_lite_validator().iter_errors(spec)]
            assert errors == [], (language, key, errors[:3])


def check_every_number(warehouse: Path, reports: Path, tmp_path: Path, min_facts: int = 30,
                       built_by_the_run: bool = True) -> FactBook:
    """Every fact equals its own query's answer, every number on both pages is such a fact, and the pages the
    asset wrote are exactly what the report code produces from the tables now. `built_by_the_run`: the pages are
    the asset's, which say where the publishing run's order rows went (False for pages a test built itself)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        published_by = con.execute("SELECT run_id FROM meta.publication").fetchone()[0] if built_by_the_run and \
            table_exists(con, "meta.publication") else None
        rebuilt = build_report(con, tmp_path / "rebuilt", chart_files=False, run_id=published_by)
        assert_valid_vega_lite(rebuilt.specs)
        book = rebuilt.book
        names = {n for row in con.execute("SELECT segment_name_zh, segment_name_en FROM segments.segment_catalog")
                 .fetchall() for n in row}
        # fact key -> language -> the table's answer, printed as the report prints it in that language
        printed: dict[str, dict[str, str]] = {}
        for fact in book.facts.values():
            if fact.kind == "param":
                assert fact.key in PARAMS and fact.value == PARAMS[fact.key], fact
                answer = PARAMS[fact.key]
            else:
                answer = sql_value(con, fact)
            printed[fact.key] = {language: format_value(fact.kind, answer, language) for language in LANGUAGES}
            for language in LANGUAGES:
                assert printed[fact.key][language] == format_value(fact.kind, fact.value, language), fact
    for language in LANGUAGES:
        page = reports / f"report_{language}.html"
        assert page.read_text(encoding="utf-8") == rebuilt.pages[language].read_text(encoding="utf-8")
        text = read_page(page)
        assert len(text.facts) >= min_facts
        for key, shown in text.facts:
            assert shown == printed[key][language], (language, key, shown, printed[key][language])
        # Digits outside facts: only inside names that come from the tables.
        for label in text.labels:
            assert not NUMBER.search(label) or label in names, (language, label)
        stray = [chunk.strip() for chunk in text.free if NUMBER.search(chunk)]
        assert stray == [], (language, stray)
    return book


def test_every_number_in_the_demo_report_comes_from_the_tables(demo, tmp_path):
    book = check_every_number(demo, demo.parent / "reports", tmp_path)
    # The narrative covers every chart: sizes, medians and IQRs, lifts, payments, tiers, k, migration, history.
    keys = set(book.facts)
    for expected in ("all.customers", "seg1.share", "seg1.age.q1", "seg1.income.q3", "all.median_income",
                     "all.pay.cash", "all.value_tiers.high_value", "model.kmin", "migration.stayed_share",
                     "migration.previous_run", "history.runs"):
        assert expected in keys, expected
    assert any(k.startswith("seg") and ".lift." in k for k in keys)
    assert any(".rfm_tiers." in k for k in keys)
    # The predictive sections: held-out figures, at-risk high-value customers and bundles per segment.
    for expected in ("churn.auc", "churn.calibration_error", "churn.at_risk", "recs.hit_rate",
                     "recs.popularity_hit_rate", "recs.lift_over_popularity"):
        assert expected in keys, expected
    for segment_id, in query(demo, "SELECT segment_id FROM segments.segment_profiles WHERE customers >= 10"):
        [(high_value,)] = query(demo, "SELECT count(*) FROM segments.customer_segments s JOIN "
                                      "segments.customer_value_tiers t USING (customer_id) WHERE s.segment_id = ? "
                                      "AND t.value_tier_key = 'high_value'", [segment_id])
        assert (f"seg{segment_id}.churn.high_value" in keys) == (high_value > 0), segment_id
        assert any(k.startswith(f"seg{segment_id}.bundle.") for k in keys), segment_id


def test_predictive_sections_cite_the_held_out_figures(demo):
    # Two nights: the report cites the latest run of each.
    [(auc,)] = query(demo, "SELECT auc FROM predict.churn_model_runs ORDER BY trained_at DESC LIMIT 1")
    [(hit_rate, popular)] = query(demo, "SELECT hit_rate, popularity_hit_rate FROM predict.recommendation_eval "
                                        "ORDER BY evaluated_at DESC LIMIT 1")
    en = " ".join(read_page(demo.parent / "reports" / "report_en.html").free)
    page = (demo.parent / "reports" / "report_en.html").read_text(encoding="utf-8")
    churn = page[page.index('<section id="churn_risk"'):page.index('<section id="next_category"')]
    assert f">{auc:.3f}<" in churn and "which it never saw" in churn
    for name, in query(demo, "SELECT segment_name_en FROM segments.segment_profiles WHERE customers >= 10"):
        assert f'<span class="label">{name}</span>' in churn
    bundles = page[page.index('<section id="next_category"'):page.index('<section id="k_selection"')]
    assert f">{hit_rate * 100:.1f}%<" in bundles and f">{popular * 100:.1f}%<" in bundles
    assert bundles.count("<li>") == len(query(demo, "SELECT 1 FROM segments.segment_profiles WHERE customers >= 10"))
    zh = (demo.parent / "reports" / "report_zh.html").read_text(encoding="utf-8")
    assert "流失预警" in zh and "你可能还需要" in zh and "Churn means no purchase" in en


def test_every_number_in_the_seed_report_comes_from_the_tables(seed_warehouse, tmp_path):
    book = check_every_number(seed_warehouse, seed_warehouse.parent / "reports", tmp_path)
    en = read_page(seed_warehouse.parent / "reports" / "report_en.html")
    text = " ".join(en.free)
    # No order dates in the seed table: no RFM tiers, said in plain words; one run so far.
    assert "no dates" in text and not any(".rfm_tiers." in k for k in book.facts)
    # Without dates there is no churn model and no evaluation of the recommendations, said in both languages;
    # the bundles per segment are still shown.
    def visible(language: str) -> str:
        page = (seed_warehouse.parent / "reports" / f"report_{language}.html").read_text(encoding="utf-8")
        return re.sub(r"<[^>]+>", "", page[page.index('<section id="churn_risk"'):page.index('<section id="k_')])

    assert "The orders carry no dates, so there is no past and no later period: no churn model." in visible("en")
    assert "no evaluation on a later period" in visible("en") and any(".bundle." in k for k in book.facts)
    assert "订单没有日期，无法区分过去与之后的时间段，因此无法训练流失预测模型。" in visible("zh")
    assert "migration.new" in book.facts and "migration.stayed_share" not in book.facts


def test_summary_comes_first_with_name_share_portrait_and_top_strategy(demo):
    for language in LANGUAGES:
        page = (demo.parent / "reports" / f"report_{language}.html").read_text(encoding="utf-8")
        body = page[page.index("<main>"):]
        sections = re.findall(r'<section id="([a-z_]+)"', body)
        assert sections[0] == "summary"
        assert sections[1:] == ["sizes", "weekly", "age", "income", "categories", "payments", "tiers", "churn_risk",
                                "next_category", "k_selection", "migration", "history", "strategies", "notes"]
        summary = body[:body.index('<section id="sizes"')]
        for segment_id, name_zh, name_en in query(demo, "SELECT segment_id, segment_name_zh, segment_name_en "
                                                        "FROM segments.segment_profiles"):
            name = name_zh if language == "zh" else name_en
            assert f'<span class="name">{name}</span>' in summary
            assert f'data-fact="seg{segment_id}.share"' in summary
        assert summary.count('class="portrait"') == 4 and summary.count('class="top"') == 4


def test_the_opening_says_what_the_money_figures_add_up(demo):
    # A reader comparing GMV with the shop console's sales must learn that refunds are not subtracted.
    said = {"en": "Money figures (GMV, spend, order values) add up the order lines' amounts as the export states them.",
            "zh": "金额类指标（GMV、消费额、订单金额）为导出文件所列订单行金额之和"}
    for language, sentence in said.items():
        page = (demo.parent / "reports" / f"report_{language}.html").read_text(encoding="utf-8")
        opening = html.unescape(re.sub(r"<[^>]+>", "", page[page.index("<main>"):page.index('<section id="sizes"')]))
        assert sentence in opening


def test_pages_are_self_contained(demo):
    for language in LANGUAGES:
        page = (demo.parent / "reports" / f"report_{language}.html").read_text(encoding="utf-8")
        assert page.count("<script") == 3  # the inlined Vega bundle, the chart specs, the embedding call
        markup = re.sub(r"<script[^>]*>.*?</script>", "<script></script>", page, flags=re.S)
        assert not re.search(r"<script[^>]+src=", page)
        assert "<link" not in markup and "<img" not in markup and "<iframe" not in markup
        assert re.findall(r"""(?:href|src)=["']?([^"' >]+)""", markup) == [
            "report_en.html" if "lang=\"zh-CN\"" in markup else "report_zh.html"]
        assert "vegaEmbed" in page and "vega-lite" in page.lower()
        specs = page[page.index('id="report-specs">'):]
        assert "http" not in specs[:specs.index("</script>")]
    zh = (demo.parent / "reports" / "report_zh.html").read_text(encoding="utf-8")
    assert '<html lang="zh-CN">' in zh and 'href="report_en.html"' in zh and "客户分群报告" in zh


def test_chart_files_for_every_chart_in_both_languages(demo):
    charts = demo.parent / "reports" / "charts"
    expected = {"sizes", "weekly", "age", "income", "categories", "payments", "value_tiers", "rfm_tiers",
                "k_selection", "migration", "history"}
    found = {p.name for p in charts.iterdir()}
    assert found == {f"{key}_{lang}.{ext}" for key in expected for lang in LANGUAGES for ext in ("png", "svg")}
    for key in expected:
        zh, en = (charts / f"{key}_zh.png").read_bytes(), (charts / f"{key}_en.png").read_bytes()
        assert zh[:8] == b"\x89PNG\r\n\x1a\n" and zh != en
        assert "<svg" in (charts / f"{key}_zh.svg").read_text(encoding="utf-8")[:200]
    svg = (charts / "sizes_zh.svg").read_text(encoding="utf-8")
    name = query(demo, "SELECT segment_name_zh FROM segments.segment_profiles ORDER BY segment_id LIMIT 1")[0][0]
    assert name in svg and "Noto Sans CJK SC" in svg


# --- Chinese glyphs in PNG ----------------------------------------------------------------------------------------

def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and unfiltered rows of an 8-bit RGB/RGBA PNG (what vl-convert writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0
    channels = 4 if color == 6 else 3
    raw, stride, rows, previous = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, [bytes(r) for r in rows]


def ink(data: bytes) -> int:
    """Dark pixels: the strokes of the drawn text."""
    width, _, rows = decode_png(data)
    channels = len(rows[0]) // width
    return sum(1 for row in rows for x in range(width) if sum(row[x * channels:x * channels + 3]) < 384)


def test_chinese_labels_render_as_real_glyphs():
    chart_files.check_cjk_font()
    first, second = chart_files.text_png("年轻白领族"), chart_files.text_png("家庭主力族")
    boxes = chart_files.text_png("□□□□□")
    missing = chart_files.text_png("\ue000\ue001\ue002\ue003\ue004")
    assert first != second
    assert boxes not in (first, second) and missing not in (first, second)
    # Real strokes: a Chinese word has plenty of ink, and the two words do not have the same amount.
    assert ink(first) > 300 and ink(second) > 300 and ink(first) != ink(second)


def test_charts_without_chinese_text_put_a_latin_font_first(demo):
    charts = demo.parent / "reports" / "charts"
    en_svg, zh_svg = ((charts / f"sizes_{language}.svg").read_text(encoding="utf-8") for language in ("en", "zh"))
    assert 'font-family="Liberation Sans, Noto Sans CJK SC' in en_svg
    assert "Liberation Sans" not in zh_svg and "Noto Sans CJK SC" in zh_svg
    english = {"title": {"text": "Category preference: 0.42×"}, "data": {"values": [{"c": "fresh meat"}]}}
    assert chart_render.font_for(english) == chart_render.LATIN_FIRST_FONT
    # A Chinese category name (a shop without English labels) keeps the CJK stack in the English chart too.
    for chinese in ("鲜肉", "チーズ", "치즈", "：", "　"):
        mixed = {**english, "data": {"values": [{"c": "fresh meat"}, {"c": chinese}]}}
        assert chart_render.font_for(mixed) == chart_render.FONT, chinese


def test_a_missing_cjk_font_fails_with_instructions():
    with pytest.raises(chart_files.MissingCjkFontError) as failure:
        chart_files.check_cjk_font("No Such Font Family")
    message = str(failure.value)
    assert "scripts/install-system-deps.sh" in message and "fonts-noto-cjk" in message


# --- strategies ---------------------------------------------------------------------------------------------------

def _plans(warehouse: Path, playbook: Path | None = None):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        data = load_report_data(con)
    book = FactBook()
    return data, book, plan(data, book, load_playbook(playbook))


def _by_name(data, plans, language="en"):
    return {data.segment(sid).name(language): strategies for sid, strategies in plans.items()}


def test_archetypes_get_their_playbook_strategy_with_evidence(demo):
    data, book, plans = _plans(demo)
    by_name = _by_name(data, plans)
    expected = {"Young professionals": "convenience_bundles", "Family shoppers": "family_packs",
                "Refined living": "tastings", "Budget-minded": "points_flash_sales"}
    for name, key in expected.items():
        assert by_name[name][0].key == key, (name, [s.key for s in by_name[name]])
    refined = data.segment(next(s.segment_id for s in data.segments if s.name_en == "Refined living"))
    tastings = by_name["Refined living"][0]
    evidence = [e["en"].text(book) for e in tastings.evidence]
    [(wine_lift,)] = query(demo, "SELECT lift FROM segments.segment_category_affinity WHERE segment_id = ? "
                                 "AND category = 'wine'", [refined.segment_id])
    assert evidence[0].startswith(f"wine lift {wine_lift:.1f}×")
    assert f"median income {refined.median_income:,.0f}" in evidence[1]
    assert "matches the “Refined living” archetype rules" in evidence
    zh = [e["zh"].text(book, "zh") for e in tastings.evidence]
    assert zh[0].startswith(f"葡萄酒提升度 {wine_lift:.1f} 倍")  # "倍" in Chinese prose, "×" in English
    # Lapsing high-value customers: the win-back strategy, citing the tier share and the recency.
    win_back = [s for s in by_name["Refined living"] if s.key == "win_back"]
    assert win_back and "Important win-back" in win_back[0].evidence[0]["en"].text(book)
    # Cash payers: the strategy and its evidence from staging.orders.
    budget = next(s for s in by_name["Budget-minded"] if s.key == "cash_to_mobile")
    assert re.fullmatch(r"cash \d+\.\d% of orders \(all customers \d+\.\d%\)", budget.evidence[0]["en"].text(book))


def test_descriptive_segments_get_strategies_from_feature_triggers(seed_warehouse):
    data, book, plans = _plans(seed_warehouse)
    for segment in data.detailed:
        assert plans[segment.segment_id], segment.name_en
    # A segment named for a category gets a strategy that cites that category's lift, not an archetype.
    lovers = [s for s in data.segments if s.name_source == "descriptive" and " lovers" in s.name_en]
    assert lovers
    for segment in lovers:
        category = segment.name_en.split(" · ")[-1].removesuffix(" lovers").lower()
        evidence = [e["en"].text(book) for strategy in plans[segment.segment_id] for e in strategy.evidence]
        assert any(e.lower().startswith(f"{category} lift ") for e in evidence), (segment.name_en, evidence)
        assert not any("archetype" in e for e in evidence)
    # Every seed-table segment has a trait a strategy acts on: none is left with the filler "keep engaged".
    assert all(plans[s.segment_id][0].key != "keep_engaged" for s in data.detailed)


def test_a_segment_nothing_sets_apart_gets_the_fallback_with_evidence(seed_warehouse, tmp_path):
    # The seed table's traits removed: no strategy's condition holds, so the fallback, still with evidence.
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(seed_warehouse, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("UPDATE segments.segment_category_affinity SET lift = 1.0")
        con.execute("UPDATE segments.segment_features SET z_score = 0.0")
        con.execute("UPDATE segments.segment_profiles SET segment_name_en = 'Mainstream shoppers', "
                    "segment_name_zh = '大众客群', name_source = 'descriptive', median_income = "
                    "(SELECT median(income) FROM features.customer_features)")
    data, book, plans = _plans(copy)
    # Payment habits still tell some segments apart (cash payers); the others fall back, each with its evidence.
    fallen = [plans[s.segment_id] for s in data.detailed if plans[s.segment_id][0].key == "keep_engaged"]
    assert len(fallen) >= len(data.detailed) / 2
    assert all(len(strategies) == 1 and strategies[0].evidence for strategies in fallen)
    # Its evidence is the segment's share: a top category at lift 1.0 backs nothing and is not cited.
    assert all([e["en"].text(book).endswith(" of all customers") for e in strategies[0].evidence] == [True]
               for strategies in fallen)


def test_segments_with_one_median_age_are_said_to_share_it(demo):
    # A shop whose members' ages cluster (a real member file often has one common birth year): every segment's
    # median age the same. The report says so once instead of "ranges from 39.5 to 39.5".
    with duckdb.connect(str(demo), read_only=True) as con:
        data = load_report_data(con)
    data.box["age"] = data.box["age"].with_columns(pl.lit(39.5).alias("median"))
    book = FactBook()
    [en] = section_box(data, book, "age").paragraphs["en"][:1]
    assert en.text(book).startswith("Every segment shown has the same median age, ")
    assert "ranges from" not in en.text(book)


def test_fees_back_no_strategy_and_lapsing_segments_are_reactivated(demo, tmp_path):
    # A real export's postage lines ("POSTAGE") sit in one segment's orders far above the others; another segment
    # has not bought for long and spends little.
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(demo, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("UPDATE segments.segment_category_affinity SET lift = 1.0")
        first, second = [row[0] for row in con.execute(
            "SELECT segment_id FROM segments.segment_profiles ORDER BY customers DESC LIMIT 2").fetchall()]
        category = con.execute("SELECT min(category) FROM segments.segment_category_affinity").fetchone()[0]
        con.execute("UPDATE segments.segment_category_affinity SET category = 'postage', lift = 5.0 "
                    "WHERE segment_id = ? AND category = ?", [first, category])
        con.execute("UPDATE segments.segment_features SET z_score = CASE feature WHEN 'recency_days' THEN 0.8 "
                    "WHEN 'total_spend' THEN -0.5 ELSE z_score END WHERE segment_id = ?", [second])
    data, book, plans = _plans(copy)
    said = [e["en"].text(book) for strategy in plans[first] for e in strategy.evidence]
    assert "signature_category" not in [strategy.key for strategy in plans[first]]
    assert not [e for e in said if "postage" in e.lower()], said
    reactivation = [strategy for strategy in plans[second] if strategy.key == "reactivation"]
    assert reactivation and reactivation[0].title["en"] == "Reactivate lapsing customers"
    assert reactivation[0].evidence[0]["en"].text(book).startswith("days since last order ")
    assert "win_back" not in [strategy.key for strategy in plans[second]]


def test_a_custom_playbook_rule_fires_only_where_its_trigger_holds(demo, tmp_path):
    playbook = write_file(tmp_path / "playbook.yaml", """
strategies:
  - key: cash_club
    title: {zh: 现金会员日, en: Cash club}
    action: {zh: 现金客户专属日。, en: A day for cash payers.}
    when:
      - [{payment: cash, share_at_least: 0.5}]
    cite: [{median: age}]
""")
    data, book, plans = _plans(demo, playbook)
    hits = {data.segment(sid).name_en: strategies for sid, strategies in plans.items() if strategies}
    assert list(hits) == ["Budget-minded"]
    [strategy] = hits["Budget-minded"]
    sid = next(s.segment_id for s in data.segments if s.name_en == "Budget-minded")
    [(share,)] = query(demo, "SELECT count(*) FILTER (WHERE payment_method = 'CASH') / count(*) FROM staging.orders "
                             "JOIN segments.customer_segments USING (customer_id) WHERE segment_id = ?", [sid])
    assert share >= 0.5
    assert strategy.evidence[0]["en"].text(book).startswith(f"cash {share * 100:.1f}% of orders")
    assert strategy.evidence[1]["zh"].text(book).startswith("年龄中位数 ")


@pytest.mark.parametrize("text, message", [
    ("title: {zh: 满100减20, en: Spend 100 save 20}", "may not contain digits"),
    ("title: {zh: 甲, en: A}\n    when: [[{weather: sunny}]]", "exactly one metric"),
    ("title: {zh: 甲, en: A}\n    when: [[{rfm_tiers: [vip], share_at_least: 0.2}]]", "unknown tier"),
    ("title: {zh: 甲}", "needs zh and en"),
])
def test_playbook_mistakes_name_the_place(tmp_path, text, message):
    playbook = write_file(tmp_path / "playbook.yaml", "strategies:\n  - key: x\n    action: {zh: 甲, en: A}\n"
                                                      f"    {text}\n")
    if "when" not in text:
        playbook.write_text(playbook.read_text() + "    when: [[{category_lift: any, at_least: 2}]]\n")
    with pytest.raises(PlaybookError, match=message) as failure:
        load_playbook(playbook)
    assert str(playbook) in str(failure.value) and "strategies[0]" in str(failure.value)


def test_a_playbook_yaml_syntax_error_is_one_line_naming_line_and_column(tmp_path):
    playbook = write_file(tmp_path / "playbook.yaml", "strategies:\n  - key: x\n     title: {zh: 甲, en: A}\n")
    with pytest.raises(PlaybookError) as failure:
        load_playbook(playbook)
    assert str(failure.value) == (f"{playbook}: not valid YAML: line 3, column 11: mapping values are not allowed "
                                  "in this context")


def test_every_segment_strategy_is_limited_and_ordered(demo):
    data, book, plans = _plans(demo)
    playbook = load_playbook()
    for sid, strategies in plans.items():
        assert 1 <= len(strategies) <= playbook.max_per_segment
        assert [s.priority for s in strategies] == sorted(s.priority for s in strategies)
        assert [s.key for s in strategies] == [s.key for s in strategies_for(sid, data, FactBook(), playbook)]
        for strategy in strategies:
            assert strategy.evidence, strategy.key


# --- privacy ------------------------------------------------------------------------------------------------------

def test_segments_below_the_minimum_are_pooled_and_never_described(demo, tmp_path):
    """Move five customers of segment 1 into a new segment 9: it must only appear as 'other small segments'."""
    warehouse = tmp_path / "small.duckdb"
    shutil.copy(demo, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        run_id = con.execute("SELECT run_id FROM segments.segment_migration "
                             "ORDER BY run_date DESC LIMIT 1").fetchone()[0]
        moved = [r[0] for r in con.execute("SELECT customer_id FROM segments.customer_segments WHERE segment_id = 1 "
                                           "ORDER BY customer_id LIMIT 5").fetchall()]
        con.execute("UPDATE segments.customer_segments SET segment_id = 9, segment_name_zh = '秘密小群', "
                    "segment_name_en = 'Secret few' WHERE list_contains(?, customer_id)", [moved])
        # By name: segment_profiles gains columns (profile coverage), which stay NULL for this row.
        con.execute("""INSERT INTO segments.segment_profiles BY NAME
                       SELECT 9 AS segment_id, '秘密小群' AS segment_name_zh, 'Secret few' AS segment_name_en,
                              'descriptive' AS name_source, 5 AS customers, 0 AS share, 0 AS outliers,
                              33 AS median_age, 33333 AS median_income, 1 AS avg_orders, 1 AS avg_spend,
                              [] AS name_evidence, model_version, assigned_at
                       FROM segments.segment_profiles WHERE segment_id = 1""")
        con.execute("UPDATE segments.segment_profiles SET customers = customers - 5 WHERE segment_id = 1")
        con.execute("UPDATE segments.segment_profiles SET share = customers / (SELECT sum(customers) "
                    "FROM segments.segment_profiles)")
        con.execute("INSERT INTO segments.segment_catalog SELECT 9, '秘密小群', 'Secret few', 'descriptive', [], NULL, "
                    "first_seen, last_seen, TRUE, model_version FROM segments.segment_catalog WHERE segment_id = 1")
        con.execute("UPDATE segments.segment_migration SET customers = customers - 5 WHERE run_id = ? "
                    "AND from_segment_id = 1 AND to_segment_id = 1", [run_id])
        con.execute("INSERT INTO segments.segment_migration SELECT run_id, run_date, 1, 9, 5 FROM "
                    "segments.segment_migration WHERE run_id = ? LIMIT 1", [run_id])
    with duckdb.connect(str(warehouse), read_only=True) as con:
        report = build_report(con, tmp_path / "reports", chart_files=False)
    assert [s.segment_id for s in report.data.small] == [9]
    assert 9 not in {c.segment_id for c in report.narrative.cards}
    for language in LANGUAGES:
        page = report.pages[language].read_text(encoding="utf-8")
        assert "秘密小群" not in page and "Secret few" not in page and "33,333" not in page
        assert OTHER_NAME[language] in page
        specs = report.specs[language]
        donut = specs["sizes"]["layer"][0]["data"]["values"]
        assert {"name": OTHER_NAME[language], "customers": 5} == {k: donut[-1][k] for k in ("name", "customers")}
        for key in ("age", "income", "categories", "payments", "value_tiers", "rfm_tiers"):
            assert OTHER_NAME[language] not in str(specs[key]), key
    assert report.book.facts["small.customers"].value == 5
    check_every_number(warehouse, tmp_path / "reports", tmp_path / "again", built_by_the_run=False)


# --- Dagster ------------------------------------------------------------------------------------------------------

def test_the_asset_shows_the_report_in_dagster(demo, tmp_path):
    result = _DEMO["result"]
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key == dg.AssetKey(["report", "segment_report"])]
    metadata = event.materialization.metadata
    summary = metadata["summary"].value
    assert "![segment sizes](data:image/png;base64,iVBOR" in summary
    for name_zh, name_en in query(demo, "SELECT segment_name_zh, segment_name_en FROM segments.segment_profiles"):
        assert name_zh in summary and name_en in summary
    assert metadata["report_zh"].value.endswith("reports/report_zh.html")
    assert metadata["charts"].value == 11 and metadata["min_detail_size"].value == MIN_DETAIL_SIZE
    # The size chart in the summary, rasterized from its SVG file, is the chart drawn from its spec at scale 1.
    png = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", summary)[1])
    with duckdb.connect(str(demo), read_only=True) as con:
        specs = build_report(con, tmp_path, chart_files=False).specs
    assert png == chart_files.render_png(specs["zh"]["sizes"], scale=1)
    # The pages' script bundle is kept in the user's cache folder for the next run: the very script inlined in the
    # pages.
    header, bundle = bundle_cache_files(work_file_for(demo))[0].read_text(encoding="utf-8").split("\n", 1)
    assert header.startswith("// script bundle cache: vl-convert ")
    for language in LANGUAGES:
        page = (demo.parent / "reports" / f"report_{language}.html").read_text(encoding="utf-8")
        assert f"<script>\n{bundle}\n</script>" in page


def test_an_invalid_chart_spec_is_caught():
    with pytest.raises(AssertionError, match="no_such_mark"):
        assert_valid_vega_lite({"en": {"sizes": {"data": {"values": []}, "mark": "no_such_mark"}}})


def test_a_shop_whose_segments_are_all_small_gets_sizes_but_no_profiles(tmp_path):
    """Seven customers without profiles: every segment is below the minimum, so only sizes are shown."""
    write_file(tmp_path / "orders.csv", "\n".join([
        "order_id,customer_id,order_ts,category,quantity,amount,payment_method",
        *[f"O{i},C{i % 7},2026-03-0{1 + i % 9} 10:00:00,{['wine', 'dairy', 'beer'][i % 3]},1,{10 + i},CARD"
          for i in range(40)]]) + "\n")
    config = write_file(tmp_path / "shop.yaml", "name: tiny\nshape: long\norders:\n  path: orders.csv\n"
                                                "model:\n  k: 3\n")
    warehouse = tmp_path / "w.duckdb"
    assert _materialize(config, warehouse).success
    reports = tmp_path / "reports"
    book = check_every_number(warehouse, reports, tmp_path / "check", min_facts=10)
    assert book.facts["small.customers"].value == 7
    en = " ".join(read_page(reports / "report_en.html").free)
    # Age, income, categories, payments, tiers, churn risk and bundles.
    assert en.count("no profile is shown, for privacy") == 7
    assert "Other small segments" in " ".join(read_page(reports / "report_en.html").labels) or \
        "Other small segments" in en
    for name in (n for row in query(warehouse, "SELECT segment_name_en FROM segments.segment_profiles") for n in row):
        assert name not in (reports / "report_en.html").read_text(encoding="utf-8")
    # A first run: no migration or history chart (their sections say there is no history yet), and no weekly KPIs
    # of segments too small to describe.
    assert sorted(p.name for p in (reports / "charts").glob("*_en.png")) == ["k_selection_en.png", "sizes_en.png"]
    assert "no weekly KPIs are shown, for privacy" in en and en.count("there is no history") == 2
