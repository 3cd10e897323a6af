"""Report layer: a self-contained, offline HTML summary of the segments, in Chinese and in English.

Every number comes from `segments.segment_profiles`; the file has no scripts and no external links, so it
opens anywhere without a network.
"""


import html
from pathlib import Path

import dagster as dg
import polars as pl

from pipelines.resources import WarehouseResource

TEXT = {
    "zh": {
        "title": "客户分群报告", "lang": "zh-CN", "segment": "客群", "customers": "客户数", "share": "占比",
        "age": "年龄中位数", "income": "收入中位数", "orders": "平均订单数", "spend": "平均消费额",
        "evidence": "命名依据", "model": "模型版本", "generated": "生成时间",
        "summary": "共 {n} 位客户分为 {k} 个客群。",
    },
    "en": {
        "title": "Customer segmentation report", "lang": "en", "segment": "Segment", "customers": "Customers",
        "share": "Share", "age": "Median age", "income": "Median income", "orders": "Avg orders",
        "spend": "Avg spend", "evidence": "Named from", "model": "Model version", "generated": "Generated at",
        "summary": "{n} customers in {k} segments.",
    },
}

STYLE = """
body { font-family: "Noto Sans CJK SC", "Noto Sans", "PingFang SC", "Microsoft YaHei", sans-serif;
       margin: 2rem auto; max-width: 1100px; color: #1f2933; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #d9e2ec; padding: .45rem .6rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: #52606d; padding-bottom: .5rem; }
"""


def _number(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def render_report(profiles: pl.DataFrame, language: str) -> str:
    text = TEXT[language]
    name_column = "segment_name_zh" if language == "zh" else "segment_name_en"
    rows = []
    for row in profiles.iter_rows(named=True):
        rows.append(
            "<tr>"
            f"<td>{row['segment_id']}. {html.escape(row[name_column])}</td>"
            f"<td class='num'>{row['customers']:,}</td>"
            f"<td class='num'>{row['share'] * 100:.1f}%</td>"
            f"<td class='num'>{_number(row['median_age'])}</td>"
            f"<td class='num'>{_number(row['median_income'])}</td>"
            f"<td class='num'>{_number(row['avg_orders'], 1)}</td>"
            f"<td class='num'>{_number(row['avg_spend'], 2)}</td>"
            f"<td>{html.escape(', '.join(row['name_evidence'] or []))}</td>"
            "</tr>"
        )
    model_version = profiles.get_column("model_version")[0] if profiles.height else "–"
    generated = profiles.get_column("assigned_at")[0] if profiles.height else "–"
    summary = text["summary"].format(n=f"{int(profiles.get_column('customers').sum()):,}", k=profiles.height)
    headers = "".join(
        f"<th>{text[key]}</th>"
        for key in ("segment", "customers", "share", "age", "income", "orders", "spend", "evidence")
    )
    return f"""<!DOCTYPE html>
<html lang="{text['lang']}"><head><meta charset="utf-8"><title>{text['title']}</title>
<style>{STYLE}</style></head>
<body><h1>{text['title']}</h1>
<p>{summary}</p>
<table><caption>{text['model']}: {html.escape(str(model_version))} · {text['generated']}: {generated}</caption>
<thead><tr>{headers}</tr></thead><tbody>{''.join(rows)}</tbody></table>
</body></html>
"""


def write_reports(profiles: pl.DataFrame, reports_dir: Path) -> dict[str, Path]:
    reports_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for language in TEXT:
        path = reports_dir / f"report_{language}.html"
        # Write then rename, so a reader never opens a half-written report.
        partial = path.with_suffix(".html.partial")
        partial.write_text(render_report(profiles, language), encoding="utf-8")
        partial.replace(path)
        paths[language] = path
    return paths


@dg.asset(
    key=["report", "segment_report"],
    deps=[["segments", "segment_profiles"]],
    group_name="report",
    kinds={"html"},
)
def segment_report(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The bilingual HTML report (report_zh.html, report_en.html) under the warehouse's reports/ folder,
    built from segments.segment_profiles."""
    with warehouse.connect(read_only=True) as con:
        profiles = con.execute("SELECT * FROM segments.segment_profiles ORDER BY segment_id").pl()
    paths = write_reports(profiles, warehouse.reports_dir)
    return dg.MaterializeResult(
        metadata={
            "report_zh": dg.MetadataValue.path(str(paths["zh"])),
            "report_en": dg.MetadataValue.path(str(paths["en"])),
            "segments": profiles.height,
        }
    )
