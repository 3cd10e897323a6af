"""Report layer: the nightly insight report, in Chinese and English, from the segments tables.

Output in the working area beside the working database, `work/reports/`, replaced whole by each run; never in the
published `reports/`. The publish step copies it into the new published version, so readers get it as the
warehouse's `reports/` together with the warehouse it describes (assets/publish/swap.py):
- `report_zh.html`, `report_en.html`: self-contained pages (Vega scripts inlined, no external reference), opening
  with the summary per segment, then every chart with its interpretation, the strategies with their evidence;
- `charts/<chart>_<zh|en>.png` and `.svg`: every chart for slides (vl-convert; a missing CJK font fails the run
  with instructions instead of drawing empty boxes).
The pages' script bundle (1.6 s to build) is kept between runs in the user's cache folder, or where that cannot be
written in the warehouse's work/ folder (`vega_bundle.js`, never published; see bundle_cache_files).

The pieces: data (what is read, privacy threshold), facts (every number with its proving query), narrative, text,
sections and sections_predict (the words), strategies + playbook.yaml (strategies and their evidence), charts (the
chart specs), chart_files and chart_render (files, fonts), html (the page). The asset's metadata carries a Markdown
summary with the size chart inlined, so the Dagster UI shows the report.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import html
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import vl_convert

from assets.report.chart_files import ChartFileWriter, javascript_bundle, render_png
from assets.report.charts import build_charts
from assets.report.coverage import (
    coverage_sentences,
    load_coverage,
    masked_id_sentences,
    money_basis_sentences,
    order_total_sentences,
    place_key_sentences,
    rows_are_orders,
)
from assets.report.data import MIN_DETAIL_SIZE, ReportData, load_report_data
from assets.report.facts import FactBook
from assets.report.html import render_page, segmentation_verdict
from assets.report.narrative import LANGUAGES, Narrative
from assets.report.sections_predict import weak_results
from assets.report.strategies import load_playbook, plan
from assets.report.text import build_narrative
from assets.staging.place_keys import place_named_customer_ids
from pipelines.core.faults import crash_point
from pipelines.core.resources import SourceResource, WarehouseResource

REPORT_DEPS = [
    ["segments", "segment_profiles"], ["segments", "customer_segments"], ["segments", "segment_catalog"],
    ["segments", "segment_category_affinity"], ["segments", "segment_features"],
    ["segments", "customer_value_tiers"], ["segments", "segment_migration"], ["segments", "customer_segment_history"],
    ["model", "customer_clusters"], ["features", "customer_features"], ["features", "customer_order_stats"],
    ["staging", "orders"],
    ["predict", "churn_risk"], ["predict", "churn_model_runs"], ["predict", "next_category"],
    ["predict", "category_rules"], ["predict", "recommendation_eval"],
    ["predict", "customer_value"], ["predict", "customer_value_eval"], ["predict", "customer_value_deciles"],
    ["campaigns", "campaigns"], ["campaigns", "uplift"],
    ["segments", "audiences"], ["segments", "audience_history"],
]


@dataclass
class Report:
    data: ReportData
    book: FactBook
    narrative: Narrative
    specs: dict[str, dict[str, dict]]  # language -> chart key -> Vega-Lite spec
    pages: dict[str, Path]
    chart_files: list[Path]


def build_report(con: duckdb.DuckDBPyConnection, reports_dir: Path, category_labels: dict | None = None,
                 playbook_path: str | Path | None = None, chart_files: bool = True,
                 bundle_cache: Path | Sequence[Path] = (), has_categories: bool = True,
                 run_id: str | None = None, line_refunds: bool = False,
                 place_key_columns: Sequence[str] = ()) -> Report:
    """Reads the warehouse through `con` and writes the pages (and chart files) under `reports_dir`.
    `bundle_cache`: files keeping the pages' script bundle between runs (see chart_files.javascript_bundle).
    `has_categories`: False for an export declared without categories (SourceConfig.has_categories).
    `run_id`: the run building the report, whose order rows the opening says where they went (coverage.py).
    `line_refunds`: the export marks refunded lines (orders.columns.line_status), which are left out. Whether the
    export has one row per order is judged from the warehouse (coverage.rows_are_orders).
    `place_key_columns`: the source columns of a customer id named like a place (assets/staging/place_keys.py)."""
    # The chart writer starts its helper process first, so the helper is ready when the charts are.
    with ChartFileWriter() if chart_files else contextlib.nullcontext() as chart_writer:
        data = load_report_data(con, category_labels, has_categories)
        book = FactBook()
        plans = plan(data, book, load_playbook(playbook_path))
        narrative = build_narrative(data, book, plans)
        coverage = load_coverage(con, run_id)
        money_basis = money_basis_sentences(line_refunds or (coverage is not None and coverage.refunded_lines > 0),
                                            rows_are_orders(con))
        for language, sentences in coverage_sentences(book, coverage).items():
            narrative.intro[language].extend(sentences + money_basis[language])
        keys = [key for section in narrative.sections for key in section.charts]
        specs = {language: build_charts(data, language, keys) for language in LANGUAGES}
        reports_dir.mkdir(parents=True, exist_ok=True)
        if chart_writer is not None:
            chart_writer.start(specs, reports_dir / "charts")
        # The helper draws charts while this process builds the pages.
        bundle = javascript_bundle(bundle_cache)
        weak, verdict = weak_results(data, book), segmentation_verdict(data, book)
        # A load that looks wrong comes first: it distorts every figure the other notes are about.
        places = place_key_sentences(place_key_columns)
        masked = masked_id_sentences(con, book)
        weak = {language: places[language] + masked[language] + sentences + weak[language]
                for language, sentences in order_total_sentences(con, book).items()}
        texts = {language: render_page(narrative, book, specs[language], language, bundle, weak[language], verdict)
                 for language in LANGUAGES}
        files = chart_writer.finish() if chart_writer is not None else []
    pages = {}
    for language in LANGUAGES:
        path = reports_dir / f"report_{language}.html"
        # Write then rename, so a reader never opens a half-written report.
        partial = path.with_suffix(".html.partial")
        partial.write_text(texts[language], encoding="utf-8")
        partial.replace(path)
        pages[language] = path
    return Report(data, book, narrative, specs, pages, files)


PARTIAL_SUFFIX = ".partial"


def write_report_folder(con: duckdb.DuckDBPyConnection, reports_dir: Path, **options) -> Report:
    """build_report into a fresh folder beside `reports_dir`, then renamed into its place: the folder is replaced
    whole, so no page or chart of an earlier run survives in it, and a run killed while writing leaves the previous
    folder (and a hidden `.partial` folder, removed by the next run). Between the two renames there is no folder
    at all; only the publish step reads it, and only after this step succeeded."""
    parent = reports_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    for leftover in parent.glob(f".{reports_dir.name}.*{PARTIAL_SUFFIX}"):
        shutil.rmtree(leftover, ignore_errors=True)
    token = uuid.uuid4().hex[:8]
    fresh = parent / f".{reports_dir.name}.{token}.new{PARTIAL_SUFFIX}"
    report = build_report(con, fresh, **options)
    old = parent / f".{reports_dir.name}.{token}.old{PARTIAL_SUFFIX}"
    if reports_dir.exists() or reports_dir.is_symlink():
        reports_dir.rename(old)
    fresh.rename(reports_dir)
    shutil.rmtree(old, ignore_errors=True)

    def moved(path: Path) -> Path:
        return reports_dir / path.relative_to(fresh)

    return dataclasses.replace(report, pages={language: moved(path) for language, path in report.pages.items()},
                               chart_files=[moved(path) for path in report.chart_files])


CACHE_DIR_VARIABLE = "PERSONA_CACHE_DIR"
BUNDLE_FILE = "vega_bundle.js"


def user_cache_dir() -> Path | None:
    """The user's cache folder: PERSONA_CACHE_DIR, else $XDG_CACHE_HOME/persona-pipeline (an absolute one, as XDG
    says), else ~/.cache/persona-pipeline; None for a user without a home (no HOME and no passwd entry)."""
    if os.environ.get(CACHE_DIR_VARIABLE):
        return Path(os.environ[CACHE_DIR_VARIABLE])
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if Path(xdg).is_absolute():
        return Path(xdg) / "persona-pipeline"
    try:
        return Path.home() / ".cache" / "persona-pipeline"
    except RuntimeError:
        return None


def bundle_cache_files(working_database: Path) -> list[Path]:
    """Where the report keeps its script bundle between runs, in the order read and written: the user's cache
    folder, then work/ beside the working database (where a user without a writable home keeps it, and where
    earlier versions kept it). The bundle depends only on the vl-convert and Vega-Lite versions, which its header
    names, not on the warehouse: kept per user, a new warehouse's first run does not build it again (1.6-2.1 s at
    1M customers)."""
    user = user_cache_dir()
    return [*([user / BUNDLE_FILE] if user is not None else []), working_database.parent / BUNDLE_FILE]


def _sizes_png(report: Report) -> bytes:
    """The size chart as a PNG at scale 1. From its SVG file when the report wrote one: the same bytes as drawing
    the spec again (vl-convert rasterizes the SVG either way; tests/test_report.py checks it), in 0.04 s of CPU
    instead of 0.12 s."""
    svg = next((path for path in report.chart_files if path.name == "sizes_zh.svg"), None)
    if svg is None:
        return render_png(report.specs["zh"]["sizes"], scale=1)
    return vl_convert.svg_to_png(svg.read_text(encoding="utf-8"), scale=1)


def summary_markdown(report: Report) -> str:
    """The summary for the Dagster UI: the size chart (inlined PNG), then one row per segment."""
    book, narrative = report.book, report.narrative
    lines = [f"**{html.escape(narrative.intro['en'][0].text(book))}**", "",
             narrative.intro["zh"][0].text(book, "zh"), ""]
    if "sizes" in report.specs["zh"]:
        png = base64.b64encode(_sizes_png(report)).decode("ascii")
        lines += [f"![segment sizes](data:image/png;base64,{png})", ""]
    lines += ["| 客群 | segment | share | customers | 首选策略 / top strategy | evidence |",
              "|---|---|---|---|---|---|"]
    for card in narrative.cards:
        top = card.strategies[0] if card.strategies else None
        strategy = f"{top.title['zh']} / {top.title['en']}" if top else "–"
        evidence = "; ".join(e["en"].text(book) for e in top.evidence[:2]) if top else ""
        cells = [card.name["zh"], card.name["en"], book.text(card.share), book.text(card.customers), strategy,
                 evidence]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if narrative.other:
        lines += ["", narrative.other["en"].text(book)]
    lines += ["", f"Reports: `{report.pages['zh']}`, `{report.pages['en']}`"]
    return "\n".join(lines)


@dg.asset(
    key=["report", "segment_report"],
    deps=REPORT_DEPS,
    group_name="report",
    kinds={"html", "altair"},
)
# context is left unannotated: this module's annotations are strings (__future__), which Dagster refuses for it.
def segment_report(context, warehouse: WarehouseResource, source: SourceResource) -> dg.MaterializeResult:
    """The bilingual insight report, written beside the working database (work/reports/) and published with the
    warehouse as its reports/ folder: report_zh.html and report_en.html (offline, self-contained), and
    charts/*.png|svg for slides. Summary, charts with interpretations and strategies per segment, every number read
    from the segments tables. Segments below the privacy threshold are pooled as "other small segments"."""
    config = source.load()
    with warehouse.connect(read_only=True) as con:
        report = write_report_folder(con, warehouse.work_reports_dir, category_labels=dict(config.category_labels),
                                     bundle_cache=bundle_cache_files(warehouse.file),
                                     has_categories=config.has_categories, run_id=context.run_id,
                                     line_refunds=bool(config.orders.columns.get("line_status")),
                                     place_key_columns=[column for _, column in place_named_customer_ids(config)])
    crash_point("report:written")
    return dg.MaterializeResult(
        metadata={
            "summary": dg.MetadataValue.md(summary_markdown(report)),
            "report_zh": dg.MetadataValue.path(str(report.pages["zh"])),
            "report_en": dg.MetadataValue.path(str(report.pages["en"])),
            "charts_dir": dg.MetadataValue.path(str(warehouse.work_reports_dir / "charts")),
            "published_as": dg.MetadataValue.path(str(warehouse.reports_dir)),
            "segments": len(report.data.segments),
            "segments_detailed": len(report.data.detailed),
            "min_detail_size": MIN_DETAIL_SIZE,
            "charts": len(report.specs["en"]),
            "facts_cited": len(report.book.facts),
        }
    )

