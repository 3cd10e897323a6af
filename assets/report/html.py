"""The report page: one self-contained HTML file per language.

Layout for non-technical readers: the summary first (each segment's name, share, one-line portrait and top
strategy), then every chart with its interpretation, the strategies with their evidence, and notes. The Vega,
Vega-Lite and Vega-Embed scripts are inlined (from vl-convert), the chart specs carry their data, and nothing refers
to another host: the file opens with no network. Numbers are `<span class="fact">` (see facts.py).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

import polars as pl

from assets.model.selection import WEAK, WEAK_SILHOUETTE
from assets.report.chart_style import FOCUS
from assets.report.data import OTHER_COLOR, ReportData, segment_color
from assets.report.facts import FactBook, Sentence, compose, join
from assets.report.narrative import Narrative, Section

TEXT = {
    "zh": {"title": "客户分群报告", "lang": "zh-CN", "summary": "摘要", "top": "首选策略", "evidence": "依据",
           "strategies": "各客群运营策略", "notes": "说明", "customers": "位客户", "other": "English version",
           "other_file": "report_en.html", "loading": "图表加载中…", "no_chart": "（无图）",
           "contents": "目录", "weak": "请注意：本次运行中较弱的结果", "focus": "聚焦客群",
           "all": "全部客群"},
    "en": {"title": "Customer segmentation report", "lang": "en", "summary": "Summary", "top": "Top strategy",
           "evidence": "Evidence", "strategies": "Strategies per segment", "notes": "Notes",
           "customers": "customers", "other": "中文版", "other_file": "report_zh.html",
           "loading": "Loading chart…", "no_chart": "(no chart)", "contents": "Contents",
           "weak": "Please note: weak results in this run", "focus": "Focus on segment", "all": "All segments"},
}

STYLE = """
:root { --ink: #1f2933; --muted: #52606d; --line: #d9e2ec; --soft: #f5f7fa; }
* { box-sizing: border-box; }
body { font-family: "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei",
       "Noto Sans", "Helvetica Neue", Arial, sans-serif; margin: 0; color: var(--ink); background: #fff;
       line-height: 1.6; }
main { max-width: 1180px; margin: 0 auto; padding: 1.5rem 2rem 3rem; }
header { border-bottom: 1px solid var(--line); margin-bottom: 1.5rem; padding-bottom: .8rem; }
header h1 { margin: 0 0 .3rem; font-size: 1.9rem; }
header .intro { color: var(--muted); margin: 0; }
header nav { float: right; margin-top: .6rem; }
header nav a { color: #2b6cb0; text-decoration: none; border: 1px solid var(--line); border-radius: 4px;
               padding: .2rem .6rem; }
h2 { font-size: 1.35rem; margin: 2.2rem 0 .8rem; padding-top: .4rem; border-top: 3px solid var(--soft); }
h3 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 1rem; }
.card { border: 1px solid var(--line); border-top: 6px solid var(--seg); border-radius: 6px; padding: .9rem 1rem;
        background: #fff; }
.card .name { font-weight: 700; font-size: 1.1rem; }
.card .size { font-size: 1.6rem; font-weight: 700; color: var(--seg); line-height: 1.2; }
.card .size small { font-size: .85rem; font-weight: 400; color: var(--muted); margin-left: .3rem; }
.card .portrait { color: var(--ink); margin: .5rem 0; font-size: .93rem; }
.card .top { background: var(--soft); border-radius: 4px; padding: .5rem .6rem; font-size: .9rem; }
.card .top b { display: block; }
.card.other { --seg: #9aa5b1; }
.chart { overflow-x: auto; margin: .4rem 0 .6rem; min-height: 60px; }
.text p { margin: .4rem 0; }
.text ul { margin: .3rem 0 .6rem 1.2rem; padding: 0; }
.evidence { color: var(--muted); font-size: .9rem; }
.strategies li { margin-bottom: .7rem; }
.swatch { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px; margin-right: .4rem;
          vertical-align: baseline; background: var(--seg); }
.fact { font-variant-numeric: tabular-nums; white-space: nowrap; }
.notes { color: var(--muted); font-size: .92rem; }
.snippet { background: var(--soft); border: 1px solid var(--line); border-radius: 4px; padding: .6rem .8rem;
           overflow-x: auto; font-size: .9rem; }
.weak { border: 1px solid #e8b339; border-left: 6px solid #e8b339; background: #fffaeb; border-radius: 4px;
        padding: .6rem 1rem; margin: 0 0 1.2rem; }
.weak ul { margin: .3rem 0 0 1.2rem; padding: 0; }
.strength { margin: 0 0 1.2rem; padding: .4rem 1rem; border-left: 6px solid #9aa5b1; background: var(--soft); }
.strength-strong { border-left-color: #38a169; }
.focus { position: sticky; top: 0; z-index: 5; background: #fff; border-bottom: 1px solid var(--line);
         padding: .5rem 0; margin: 0 0 1rem; }
.focus label { font-weight: 700; margin-right: .6rem; }
.focus select { font: inherit; font-size: 1rem; padding: .25rem .5rem; border: 1px solid var(--muted);
                border-radius: 4px; background: #fff; color: var(--ink); }
table.kpi { border-collapse: collapse; width: 100%; margin: .6rem 0 1rem; font-size: .95rem; }
table.kpi caption { text-align: left; color: var(--muted); padding-bottom: .3rem; }
table.kpi th, table.kpi td { border-bottom: 1px solid var(--line); padding: .4rem .6rem; text-align: right; }
table.kpi th:first-child, table.kpi td:first-child { text-align: left; }
table.kpi thead th { background: var(--soft); }
[hidden] { display: none !important; }
footer { color: var(--muted); font-size: .85rem; margin-top: 2rem; border-top: 1px solid var(--line);
         padding-top: .6rem; }
@media print { header nav { display: none; } .chart { break-inside: avoid; } }
"""

# Renders every chart, then records the outcome in window.__report for anyone checking the page (the tests).
EMBED = """
(function () {
  var status = window.__report = {charts: 0, rendered: 0, failed: [], done: false, focus: ''};
  var views = window.__reportViews = {};  // kept apart: a view does not serialise to JSON
  var specs = JSON.parse(document.getElementById('report-specs').textContent);
  var keys = Object.keys(specs);
  status.charts = keys.length;
  function focusable(key) {
    return (specs[key].params || []).some(function (p) { return p.name === 'FOCUS'; });
  }
  // The segment selector: every segment chart filters its rows (the FOCUS signal), every row of a segment table,
  // card and strategy list of another segment is hidden. '' shows every segment.
  function focus(segment) {
    status.focus = segment;
    document.querySelectorAll('[data-segment]').forEach(function (element) {
      element.hidden = segment !== '' && element.getAttribute('data-segment') !== segment;
    });
    return Promise.all(Object.keys(views).filter(focusable).map(function (key) {
      return views[key].signal('FOCUS', segment).runAsync();
    }));
  }
  status.setFocus = focus;
  var select = document.getElementById('segment-focus');
  if (select) select.addEventListener('change', function () { focus(select.value); });
  Promise.all(keys.map(function (key) {
    return vegaEmbed('#chart-' + key, specs[key], {renderer: 'svg', actions: false, mode: 'vega-lite'})
      .then(function (result) { views[key] = result.view; status.rendered += 1; })
      .catch(function (error) { status.failed.push(key); console.error('chart ' + key + ': ' + error); });
  })).then(function () {
    return select && select.value ? focus(select.value) : null;
  }).then(function () { status.done = true; });
})();
""".replace("FOCUS", FOCUS)


def _h(sentence: Sentence, book: FactBook, language: str = "en") -> str:
    return sentence.html(book, language)


def _label(text: str, role: str = "name") -> str:
    return f'<span class="{role}">{html.escape(text)}</span>'


def _script_json(value: object) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


@dataclass(frozen=True)
class Verdict:
    """The segmentation's strength (segments.model_runs, chosen row) said in each language."""

    level: str  # strong | moderate | weak
    text: dict[str, Sentence]


# What would help a weak segmentation: the same advice as assets/model/selection.py HELP_*, in each language.
WEAK_HELP = {
    "zh": "更多客户或每位客户更长的订单历史会让分群更稳定；"
          "能区分客户的属性（收入、年龄、家庭）或订单中的商品品类会让客群区分得更清楚。",
    "en": "What would help: more customers or a longer order history per customer (steadier segments); customer "
          "attributes such as income, age and household, or product categories in the orders (better separated "
          "segments).",
}


def segmentation_verdict(data: ReportData, book: FactBook) -> Verdict | None:
    """The latest model run's verdict on its segments, for the top of both pages; None for a warehouse from before
    the verdict was recorded."""
    runs = data.model_runs
    if runs.is_empty() or "strength" not in runs.columns:
        return None
    chosen = runs.filter(pl.col("chosen"))
    if chosen.is_empty() or chosen["strength"][0] is None:
        return None
    row = chosen.row(0, named=True)
    run_id, k, level = row["run_id"], row["k"], row["strength"]

    def fact(column: str):
        # The same facts as the k-selection section (sections.section_k), so both read one proved number.
        return book.add(f"model.k{k}.{column}", "score", row[column],
                        f"SELECT {column} FROM segments.model_runs WHERE run_id = ? AND k = ?", [run_id, k])

    s, t = fact("silhouette"), fact("stability")
    if level == "strong":
        return Verdict(level, {
            "zh": compose("分群结果：强。各客群区分清晰，换一批抽样客户也能得到同样的客群"
                          "（轮廓系数 {s}，稳定性 {t}）。", s=s, t=t),
            "en": compose("Segmentation: strong. The segments are well separated and come back the same on "
                          "resampled customers (silhouette {s}, stability {t}).", s=s, t=t)})
    if level != WEAK:
        return Verdict(level, {
            "zh": compose("分群结果：中等。客群可以使用，但彼此有一定重叠或随抽样略有变化（轮廓系数 {s}，稳定性 {t}）；"
                          "请把客群看作倾向，而非截然分开的群体。", s=s, t=t),
            "en": compose("Segmentation: moderate. The segments are usable but overlap or shift somewhat "
                          "(silhouette {s}, stability {t}); read them as tendencies rather than sharply separate "
                          "groups.", s=s, t=t)})
    zh, en = [], []
    # The model step words the reason (selection.segmentation_strength); each of its problems is said here.
    reason = row.get("strength_reason") or ""
    if "no distinctive trait" in reason and row.get("largest_traitless_share") is not None:
        share = book.add(f"model.k{k}.largest_traitless_share", "pct", row["largest_traitless_share"],
                         "SELECT largest_traitless_share FROM segments.model_runs WHERE run_id = ? AND k = ?",
                         [run_id, k])
        zh.append(compose("占客户 {v} 的一个客群没有可区分的特点", v=share))
        en.append(compose("a segment of {v} of the customers has no distinctive trait", v=share))
    if "merged" in reason:
        zh.append(compose("部分过小的客群已并入最接近的客群"))
        en.append(compose("segments too small to publish were merged into their nearest neighbour"))
    if not row["meets_constraints"]:
        zh.append(compose("没有任何分群数同时满足最小客群占比和稳定性要求"))
        en.append(compose("no number of segments met the minimum segment share and stability"))
    if "resampled" in reason:
        zh.append(compose("换一批抽样客户，客群会发生变化"))
        en.append(compose("the segments change when the customers are resampled"))
    if row["silhouette"] < WEAK_SILHOUETTE:
        zh.append(compose("客户并没有分成明显不同的群体"))
        en.append(compose("the customers do not fall into distinct groups"))
    if not zh:  # a reason this page does not know how to say: never an empty one
        zh.append(compose("原因见“客群数量的选择”一节"))
        en.append(compose("see the section on choosing the number of segments"))
    return Verdict(level, {
        "zh": compose("分群结果：弱（轮廓系数 {s}，稳定性 {t}）：", s=s, t=t) + join(zh, "；")
        + compose("。{h}", h=WEAK_HELP["zh"]),
        "en": compose("Segmentation: weak (silhouette {s}, stability {t}): ", s=s, t=t) + join(en, "; ")
        + compose(". {h}", h=WEAK_HELP["en"])})


def _focus_control(narrative: Narrative, language: str) -> str:
    """The segment selector: focuses every segment chart, table, card and strategy list on one segment (html.EMBED
    does it in the page); nothing when there is only one segment to show."""
    if len(narrative.cards) < 2:
        return ""
    t = TEXT[language]
    options = [f'<option value="">{t["all"]}</option>'] + [
        f'<option value="{card.segment_id}" class="name">{html.escape(card.name[language])}</option>'
        for card in sorted(narrative.cards, key=lambda c: c.segment_id)]
    return (f'<div class="focus"><label for="segment-focus">{t["focus"]}</label>'
            f'<select id="segment-focus">{"".join(options)}</select></div>')


def _table(section: Section, book: FactBook, language: str) -> str:
    table = section.table
    out = [f'<table class="kpi" id="table-{section.key}">']
    if table.caption.get(language):
        out.append(f"<caption>{html.escape(table.caption[language])}</caption>")
    out.append("<thead><tr>" + "".join(f'<th scope="col">{html.escape(h)}</th>' for h in table.headers[language])
               + "</tr></thead><tbody>")
    for segment_id, cells in table.rows:
        first, *rest = cells[language]
        out.append(f'<tr data-segment="{segment_id}"><th scope="row">{_h(first, book, language)}</th>'
                   + "".join(f"<td>{_h(cell, book, language)}</td>" for cell in rest) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render_page(narrative: Narrative, book: FactBook, specs: dict[str, dict], language: str, bundle: str,
                weak: list[Sentence] = (), verdict: Verdict | None = None) -> str:
    """`weak`: the run's weak results in this language (sections_predict.weak_results), shown under the title,
    before anything a reader might act on. `verdict`: the segmentation's strength, a line under the title, or
    first in the weak results when weak."""
    t = TEXT[language]
    if verdict is not None and verdict.level == WEAK:
        weak = [verdict.text[language], *weak]
    out = [f'<!DOCTYPE html>\n<html lang="{t["lang"]}"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{t['title']}</title><style>{STYLE}</style>",
           f"<script>\n{bundle}\n</script></head><body><main>",
           f'<header><nav><a href="{t["other_file"]}" hreflang="{"en" if language == "zh" else "zh"}">'
           f'{t["other"]}</a></nav><h1>{t["title"]}</h1>']
    out += [f'<p class="intro">{_h(s, book, language)}</p>' for s in narrative.intro[language]]
    out.append("</header>")
    if verdict is not None and verdict.level != WEAK:
        out.append(f'<p id="segmentation-strength" class="strength strength-{verdict.level}">'
                   f"{_h(verdict.text[language], book, language)}</p>")
    if weak:
        out.append(f'<aside id="weak-results" class="weak" role="note"><strong>{t["weak"]}</strong><ul>'
                   + "".join(f"<li>{_h(s, book, language)}</li>" for s in weak) + "</ul></aside>")

    out.append(_focus_control(narrative, language))
    out.append(f'<section id="summary"><h2>{t["summary"]}</h2><div class="cards">')
    for card in narrative.cards:
        top = card.strategies[0] if card.strategies else None
        out.append(f'<div class="card" data-segment="{card.segment_id}" '
                   f'style="--seg: {segment_color(card.segment_id)}">'
                   f'<div class="name">{_label(card.name[language])}</div>'
                   f'<div class="size">{_h(Sentence((card.share,)), book, language)}'
                   f'<small>{_h(Sentence((card.customers,)), book, language)} {t["customers"]}</small></div>'
                   f'<p class="portrait">{_h(card.portrait[language], book, language)}</p>')
        if top:
            evidence = "；".join(_h(e[language], book, language) for e in top.evidence[:2]) if language == "zh" else \
                "; ".join(_h(e[language], book, language) for e in top.evidence[:2])
            out.append(f'<div class="top"><b>{t["top"]}：{html.escape(top.title[language])}</b>'
                       if language == "zh" else
                       f'<div class="top"><b>{t["top"]}: {html.escape(top.title[language])}</b>')
            out.append(f'<span class="evidence">{t["evidence"]}{"：" if language == "zh" else ": "}{evidence}'
                       "</span></div>")
        out.append("</div>")
    if narrative.other:
        out.append(f'<div class="card other" style="--seg: {OTHER_COLOR}"><p class="portrait">'
                   f"{_h(narrative.other[language], book, language)}</p></div>")
    out.append("</div></section>")

    for section in narrative.sections:
        out.append(f'<section id="{section.key}"><h2>{html.escape(section.title[language])}</h2>')
        for key in section.charts:
            out.append(f'<div class="chart" id="chart-{key}" role="img" '
                       f'aria-label="{html.escape(section.title[language])}"></div>')
        if section.table is not None:
            out.append(_table(section, book, language))
        out.append('<div class="text">')
        out += [f"<p>{_h(p, book, language)}</p>" for p in section.paragraphs[language]]
        if section.bullets[language]:
            out.append("<ul>" + "".join(f"<li>{_h(b, book, language)}</li>" for b in section.bullets[language])
                       + "</ul>")
        if section.snippet[language]:
            out.append('<pre class="snippet"><code>'
                       + "\n".join(_h(line, book, language) for line in section.snippet[language])
                       + "</code></pre>")
        out.append("</div></section>")

    out.append(f'<section id="strategies" class="strategies"><h2>{t["strategies"]}</h2>')
    for card in narrative.cards:
        out.append(f'<div data-segment="{card.segment_id}">'
                   f'<h3 style="--seg: {segment_color(card.segment_id)}"><span class="swatch"></span>'
                   f"{_label(card.name[language])}</h3><ol>")
        for strategy in card.strategies:
            separator = "；" if language == "zh" else "; "
            evidence = separator.join(_h(e[language], book, language) for e in strategy.evidence)
            colon = "：" if language == "zh" else ": "
            out.append(f"<li><b>{html.escape(strategy.title[language])}</b>{colon}"
                       f"{_h(strategy.action[language], book, language)}"
                       f'<div class="evidence">{t["evidence"]}{colon}{evidence}</div></li>')
        out.append("</ol></div>")
    out.append("</section>")

    out.append(f'<section id="notes" class="notes"><h2>{t["notes"]}</h2>')
    out += [f"<p>{_h(n, book, language)}</p>" for n in narrative.notes[language]]
    out.append("</section></main>")
    out.append(f'<script type="application/json" id="report-specs">{_script_json(specs)}</script>')
    out.append(f"<script>{EMBED}</script></body></html>\n")
    return "".join(out)
