"""The report's charts (Altair / Vega-Lite), built as specs; their PNG and SVG files are drawn by chart_files.

Every chart is built from `ReportData` with pre-aggregated numbers only (box statistics, shares, counts): no
customer-level row is embedded in the report, and the numbers drawn are the ones the narrative cites. Segments
below MIN_DETAIL_SIZE customers appear only pooled as "other small segments" in the size charts.
"""

from __future__ import annotations

import altair as alt
from altair.utils import schemapi

from assets.report import chart_render, charts_heatmaps
from assets.report.chart_style import INK, PAGE_WIDTH, focus_param, focus_test, ink_on
from assets.report.data import (
    OTHER_COLOR,
    OTHER_ID,
    OTHER_NAME,
    ReportData,
    method_label,
    segment_color,
)
from assets.report.weekly import chart_weekly
from assets.segments.value_tiers import RFM_TIERS

# Low value (the lowest tier without order dates) in grey, not the warning red of "at risk": it claims no churn.
TIER_COLORS = {"high_value": "#59a14f", "potential": "#edc948", "at_risk": "#e15759", "low_value": "#bab0ac"}
RFM_COLORS = {"important_value": "#1b7837", "important_development": "#5aae61", "important_retention": "#a6dba0",
              "important_win_back": "#d6604d", "general_value": "#4393c3", "general_development": "#92c5de",
              "general_retention": "#d1e5f0", "general_win_back": "#b2182b"}
METHOD_COLORS = ["#4e79a7", "#59a14f", "#f28e2b", "#b07aa1", "#9c755f", "#76b7b2", "#edc948", "#ff9da7"]

TITLES = {
    "sizes": ("客群规模与占比", "Segment sizes and shares"),
    "age": ("各客群年龄分布", "Age by segment"),
    "income": ("各客群收入分布", "Income by segment"),
    "categories": ("品类偏好：提升度与订单占比", "Category preference: lift and share of orders"),
    "payments": ("各客群支付方式占比", "Payment methods per segment"),
    "value_tiers": ("各客群价值分层", "Value tiers per segment"),
    "rfm_tiers": ("各客群 RFM 分层", "RFM tiers per segment"),
    "k_selection": ("分群数 k 的选择", "Choosing k"),
    "migration": ("相比上次运行的客群迁移", "Migration since the last run"),
    "history": ("客群规模变化", "Segment sizes over time"),
    "weekly": ("每周指标趋势（按客群）", "Weekly KPI trends per segment"),
    "campaigns": ("活动效果：处理组 − 对照组（置信区间）",
                  "Campaign uplift: treatment − control (confidence interval)"),
}
WORDS = {
    "customers": ("客户数", "Customers"), "share": ("占比", "Share"), "segment": ("客群", "Segment"),
    "age": ("年龄", "Age"), "income": ("收入", "Income"), "category": ("品类", "Category"),
    "lift": ("提升度", "Lift"), "rate": ("订单占比", "Share of orders"), "method": ("支付方式", "Payment method"),
    "tier": ("分层", "Tier"), "metric": ("指标", "Metric"), "score": ("得分", "Score"),
    "silhouette": ("轮廓系数", "Silhouette"), "stability": ("稳定性", "Stability"), "chosen": ("选定", "chosen"),
    "meets": ("满足约束", "Meets constraints"), "from": ("上次所在客群", "From (previous run)"),
    "to": ("本次所在客群", "To (this run)"), "run": ("运行时间", "Run"), "median": ("中位数", "Median"),
    "q1": ("下四分位", "Q1"), "q3": ("上四分位", "Q3"), "total": ("位客户", "customers"),
    "campaign": ("活动", "Campaign"), "uplift": ("提升", "Uplift"), "low": ("区间下限", "Interval low"),
    "high": ("区间上限", "Interval high"), "verdict": ("结论", "Verdict"),
}
VERDICT_WORDS = {
    "significant_gain": ("显著提升", "significant gain"),
    "no_detectable_effect": ("未检测到效果", "no detectable effect"),
    "harm": ("有害", "harm"), "too_early": ("为时尚早", "too early"), "too_small": ("对照组过小", "too small"),
}
VERDICT_COLORS = {"significant_gain": "#59a14f", "no_detectable_effect": "#79706e", "harm": "#e15759",
                  "too_early": "#f28e2b", "too_small": "#bab0ac"}


def _w(key: str, language: str) -> str:
    zh, en = WORDS[key]
    return zh if language == "zh" else en


def _title(key: str, language: str) -> alt.TitleParams:
    zh, en = TITLES[key]
    return alt.TitleParams(zh if language == "zh" else en, anchor="start", fontSize=16)


def _configure(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """The chart, given the report's frame (its font is chosen from its text by build_charts). One Config set on
    the chart just built: the chained configure_* methods copied the whole chart once each (0.16 s of CPU for the
    20 charts at L)."""
    chart.config = alt.Config(background="white",
                              axis=alt.AxisConfig(labelFontSize=13, titleFontSize=13, labelLimit=260),
                              legend=alt.LegendConfig(labelFontSize=13, titleFontSize=13, labelLimit=260),
                              header=alt.HeaderConfig(labelFontSize=14, titleFontSize=14),
                              view=alt.ViewConfig(stroke=None))
    return chart


def _segment_scale(data: ReportData, language: str, include_other: bool = False) -> alt.Scale:
    segments = data.detailed
    domain = [s.name(language) for s in segments]
    colors = [s.color for s in segments]
    if include_other and data.small:
        domain.append(OTHER_NAME[language])
        colors.append(OTHER_COLOR)
    return alt.Scale(domain=domain, range=colors)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


# The charts name their channels as objects, alt.X("q1:Q"), rather than as a bare "q1:Q": Altair turns a bare string
# into its channel class by hashing every one of its ~570 schema classes, each time (0.1 s of CPU for the 20 charts
# at L).

def chart_sizes(data: ReportData, language: str) -> alt.TopLevelMixin:
    rows = [{"sid": str(s.segment_id), "name": s.name(language), "customers": s.customers, "share": s.share,
             "label": _pct(s.share), "order": i} for i, s in enumerate(data.detailed)]
    if data.small:
        share = sum(s.share for s in data.small)
        rows.append({"sid": str(OTHER_ID), "name": OTHER_NAME[language], "customers": data.small_customers,
                     "share": share, "label": _pct(share), "order": len(rows)})
    base = alt.Chart(alt.Data(values=rows)).encode(
        theta=alt.Theta("customers:Q", stack=True),
        color=alt.Color("name:N", scale=_segment_scale(data, language, True), sort=[r["name"] for r in rows],
                        legend=alt.Legend(title=None, orient="right")),
        order=alt.Order("order:Q"),
        # The page's segment selector dims the other segments (a filter would redraw one segment as a full ring).
        opacity=alt.condition(focus_test("sid"), alt.value(1.0), alt.value(0.2)),
        tooltip=[alt.Tooltip("name:N", title=_w("segment", language)),
                 alt.Tooltip("customers:Q", title=_w("customers", language), format=","),
                 alt.Tooltip("share:Q", title=_w("share", language), format=".1%")])
    arcs = base.mark_arc(innerRadius=95, outerRadius=165, stroke="white", strokeWidth=2)
    # Labels outside the ring, on the white background: ink, not the segment's colour (yellow on white is unreadable).
    labels = base.mark_text(radius=192, fontSize=14, fontWeight="bold").encode(text=alt.Text("label:N"),
                                                                                color=alt.value(INK))
    total = f"{data.n_customers:,}"
    centre = alt.Chart(alt.Data(values=[{"t": total, "u": _w("total", language)}]))
    middle = centre.mark_text(fontSize=26, fontWeight="bold", dy=-8, color=INK).encode(text=alt.Text("t:N")) + \
        centre.mark_text(fontSize=14, dy=18, color="#52606d").encode(text=alt.Text("u:N"))
    return alt.layer(arcs, labels, middle).properties(width=PAGE_WIDTH - 200, height=440,
                                                      title=_title("sizes", language))


def chart_box(data: ReportData, language: str, column: str) -> alt.TopLevelMixin:
    frame = data.box[column]
    rows = [{"sid": str(r["segment_id"]), "name": data.segment(r["segment_id"]).name(language), **{k: r[k] for k in (
        "n", "q1", "median", "q3", "lower", "upper")}} for r in frame.iter_rows(named=True)]
    names = [r["name"] for r in rows]
    number = ",.0f"
    tooltip = [alt.Tooltip("name:N", title=_w("segment", language)),
               alt.Tooltip("median:Q", title=_w("median", language), format=number),
               alt.Tooltip("q1:Q", title=_w("q1", language), format=number),
               alt.Tooltip("q3:Q", title=_w("q3", language), format=number),
               alt.Tooltip("n:Q", title=_w("customers", language), format=",")]
    base = alt.Chart(alt.Data(values=rows)).encode(
        y=alt.Y("name:N", sort=names, title=None), tooltip=tooltip)
    whiskers = base.mark_rule(color="#52606d").encode(
        x=alt.X("lower:Q", title=_w(column, language), axis=alt.Axis(format=number), scale=alt.Scale(zero=False)),
        x2=alt.X2("upper:Q"))
    boxes = base.mark_bar(size=26, stroke="#52606d", strokeWidth=0.5).encode(
        x=alt.X("q1:Q"), x2=alt.X2("q3:Q"),
        color=alt.Color("name:N", scale=_segment_scale(data, language), legend=None))
    medians = base.mark_tick(color="white", size=26, thickness=3).encode(x=alt.X("median:Q"))
    return alt.layer(whiskers, boxes, medians).transform_filter(focus_test("sid")).properties(
        width=PAGE_WIDTH, height=max(60 * len(rows), 120), title=_title(column, language))


def chart_categories(data: ReportData, language: str) -> alt.TopLevelMixin:
    return charts_heatmaps.chart_categories(data, language, _title("categories", language), _words(language))


def _words(language: str) -> dict[str, str]:
    return {key: _w(key, language) for key in WORDS}


def _stacked(rows: list[dict], value: str = "share") -> list[dict]:
    """Adds start / end / mid of each row within its segment (rows are already in stacking order)."""
    position: dict[str, float] = {}
    for row in rows:
        start = position.get(row["name"], 0.0)
        row["start"], row["end"] = start, start + row[value]
        row["mid"] = start + row[value] / 2
        row["label"] = f"{row[value] * 100:.0f}%" if row[value] >= 0.06 else ""
        position[row["name"]] = row["end"]
    return rows


def _stacked_chart(rows: list[dict], names: list[str], color: alt.Color, key: str, language: str,
                   legend_title: str) -> alt.TopLevelMixin:
    """Bars stacked per segment, each part labelled with its share in the ink that reads on the part's colour."""
    scale = color.to_dict(validate=False)["scale"]
    fills = dict(zip(scale["domain"], scale["range"]))
    for row in rows:
        row["ink"] = ink_on(fills[row["part"]])
    base = alt.Chart(alt.Data(values=rows)).encode(
        y=alt.Y("name:N", sort=names, title=None),
        tooltip=[alt.Tooltip("name:N", title=_w("segment", language)),
                 alt.Tooltip("part:N", title=legend_title),
                 alt.Tooltip("share:Q", title=_w("share", language), format=".1%")])
    bars = base.mark_bar(size=28, stroke="white", strokeWidth=1).encode(
        x=alt.X("start:Q", title=_w("share", language), scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%")),
        x2=alt.X2("end:Q"), color=color)
    labels = base.mark_text(fontSize=13).encode(x=alt.X("mid:Q"), text=alt.Text("label:N"),
                                                color=alt.Color("ink:N", scale=None))
    return alt.layer(bars, labels).transform_filter(focus_test("sid")).properties(
        width=PAGE_WIDTH, height=max(50 * len(names), 120), title=_title(key, language))


def chart_payments(data: ReportData, language: str) -> alt.TopLevelMixin:
    methods = data.payments_overall["method"].to_list()
    labels = [method_label(m, language) for m in methods]
    rows = []
    for segment in data.detailed:
        part = data.payments.filter(data.payments["segment_id"] == segment.segment_id)
        shares = dict(zip(part["method"].to_list(), part["share"].to_list()))
        rows += [{"sid": str(segment.segment_id), "name": segment.name(language), "part": method_label(m, language),
                  "share": shares.get(m, 0.0), "order": i} for i, m in enumerate(methods)]
    color = alt.Color("part:N", title=_w("method", language),
                      scale=alt.Scale(domain=labels, range=METHOD_COLORS[:len(labels)]),
                      legend=alt.Legend(orient="bottom"))
    return _stacked_chart(_stacked(rows), [s.name(language) for s in data.detailed], color, "payments", language,
                          _w("method", language))


def chart_tiers(data: ReportData, language: str, kind: str) -> alt.TopLevelMixin:
    tiers = data.value_tier_scale if kind == "value" else RFM_TIERS
    colors = TIER_COLORS if kind == "value" else RFM_COLORS
    frame = data.value_tiers if kind == "value" else data.rfm_tiers
    labels = [t.zh if language == "zh" else t.en for t in tiers]
    rows = []
    for segment in data.detailed:
        part = frame.filter(frame["segment_id"] == segment.segment_id)
        shares = dict(zip(part["tier_key"].to_list(), part["share"].to_list()))
        if not shares:
            continue
        rows += [{"sid": str(segment.segment_id), "name": segment.name(language), "part": label,
                  "share": shares.get(t.key, 0.0)} for t, label in zip(tiers, labels)]
    color = alt.Color("part:N", title=_w("tier", language),
                      scale=alt.Scale(domain=labels, range=[colors[t.key] for t in tiers]),
                      legend=alt.Legend(orient="bottom", columns=4))
    return _stacked_chart(_stacked(rows), [s.name(language) for s in data.detailed], color,
                          f"{kind}_tiers", language, _w("tier", language))


def chart_k(data: ReportData, language: str) -> alt.TopLevelMixin:
    runs = data.model_runs
    rows = []
    for r in runs.iter_rows(named=True):
        for metric in ("silhouette", "stability"):
            if r[metric] is not None:
                rows.append({"k": r["k"], "metric": _w(metric, language), "value": r[metric],
                             "meets": bool(r["meets_constraints"]), "chosen": bool(r["chosen"])})
    metrics = [_w("silhouette", language), _w("stability", language)]
    scale = alt.Scale(domain=metrics, range=["#4e79a7", "#f28e2b"])
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("k:O", title="k", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("value:Q", title=_w("score", language)),
        color=alt.Color("metric:N", scale=scale, title=_w("metric", language), legend=alt.Legend(orient="bottom")),
        tooltip=[alt.Tooltip("k:O"), alt.Tooltip("metric:N", title=_w("metric", language)),
                 alt.Tooltip("value:Q", title=_w("score", language), format=".3f"),
                 alt.Tooltip("meets:N", title=_w("meets", language))])
    lines = base.mark_line(strokeWidth=2)
    points = base.mark_point(size=90, strokeWidth=2, filled=False).encode(
        fill=alt.condition("datum.meets", alt.Color("metric:N", scale=scale), alt.value("white")))
    chosen = [r for r in runs.iter_rows(named=True) if r["chosen"]]
    layers = [lines, points]
    if chosen:
        marker = alt.Chart(alt.Data(values=[{"k": chosen[0]["k"], "label": f"{_w('chosen', language)} k"}]))
        layers.insert(0, marker.mark_rule(strokeDash=[5, 4], color="#52606d", strokeWidth=1.5).encode(x=alt.X("k:O")))
        layers.append(marker.mark_text(align="left", dx=6, dy=-6, color="#52606d", fontSize=13).encode(
            x=alt.X("k:O"), y=alt.value(0), text=alt.Text("label:N")))
    return alt.layer(*layers).properties(width=PAGE_WIDTH, height=300, title=_title("k_selection", language))


def chart_migration(data: ReportData, language: str) -> alt.TopLevelMixin:
    return charts_heatmaps.chart_migration(data, language, _title("migration", language), _words(language))


def chart_history(data: ReportData, language: str) -> alt.TopLevelMixin:
    rows = [{"run": r["run_date"].isoformat(), "sid": str(r["segment_id"]),
             "name": data.group_name(r["segment_id"], language),
             "customers": r["customers"], "color": segment_color(r["segment_id"])}
            for r in data.sizes.iter_rows(named=True)]
    seen: dict[str, str] = {}
    for r in rows:
        seen.setdefault(r["name"], r["color"])
    runs = sorted({r["run"] for r in rows})
    # A tick per run while there are few (several runs a day would repeat the same label otherwise).
    axis = alt.Axis(format="%m-%d %H:%M", labelAngle=-30, values=runs) if len(runs) <= 12 else \
        alt.Axis(format="%Y-%m-%d", labelAngle=-30)
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("run:T", title=_w("run", language), axis=axis),
        y=alt.Y("customers:Q", title=_w("customers", language)),
        color=alt.Color("name:N", title=None, scale=alt.Scale(domain=list(seen), range=list(seen.values())),
                        legend=alt.Legend(orient="top")),
        tooltip=[alt.Tooltip("name:N", title=_w("segment", language)),
                 alt.Tooltip("run:T", title=_w("run", language), format="%Y-%m-%d %H:%M"),
                 alt.Tooltip("customers:Q", title=_w("customers", language), format=",")])
    return alt.layer(base.mark_line(strokeWidth=2.5), base.mark_point(size=70, filled=True)).transform_filter(
        focus_test("sid")).properties(width=PAGE_WIDTH, height=300, title=_title("history", language))


def chart_campaigns(data: ReportData, language: str) -> alt.TopLevelMixin:
    """Per metric (one panel each, its own scale: rates in percentage points, amounts in money), the uplift of
    every campaign as a point with its confidence interval as a bar, against a line at zero."""
    from assets.report.sections_campaigns import METRIC_WORDS

    index = 0 if language == "zh" else 1
    rows = []
    for r in data.campaigns.iter_rows(named=True):
        if r["uplift"] is None:
            continue
        words = METRIC_WORDS[r["metric"]]
        scale = 100.0 if words[3] == "pp" else 1.0
        unit = (" (百分点)" if language == "zh" else " (pp)") if words[3] == "pp" else ""
        low = r["ci_low"] * scale if r["ci_low"] is not None else None
        high = r["ci_high"] * scale if r["ci_high"] is not None else None
        rows.append({"campaign": r["campaign"], "metric": words[index] + unit, "uplift": r["uplift"] * scale,
                     "low": low, "high": high, "verdict": VERDICT_WORDS[r["verdict"]][index],
                     "color": VERDICT_COLORS[r["verdict"]]})
    order = [METRIC_WORDS[m][index] for m in METRIC_WORDS]
    metrics = [m for name in order for m in dict.fromkeys(r["metric"] for r in rows) if m.startswith(name)]
    domain = [VERDICT_WORDS[v][index] for v in VERDICT_WORDS]
    colors = [VERDICT_COLORS[v] for v in VERDICT_WORDS]
    y = alt.Y("campaign:N", title=_w("campaign", language))
    tooltip = [alt.Tooltip("campaign:N", title=_w("campaign", language)),
               alt.Tooltip("uplift:Q", title=_w("uplift", language), format=",.2f"),
               alt.Tooltip("low:Q", title=_w("low", language), format=",.2f"),
               alt.Tooltip("high:Q", title=_w("high", language), format=",.2f"),
               alt.Tooltip("verdict:N", title=_w("verdict", language))]
    panels = []
    for metric in metrics:
        panel = [r for r in rows if r["metric"] == metric]
        base = alt.Chart(alt.Data(values=panel))
        bars = base.mark_rule(strokeWidth=3).encode(
            x=alt.X("low:Q", title=metric), x2=alt.X2("high:Q"), y=y,
            color=alt.Color("verdict:N", title=_w("verdict", language), scale=alt.Scale(domain=domain, range=colors)),
            tooltip=tooltip)
        points = base.mark_point(filled=True, size=80, color="#1f2933").encode(x=alt.X("uplift:Q"), y=y,
                                                                               tooltip=tooltip)
        zero = alt.Chart(alt.Data(values=[{"zero": 0}])).mark_rule(color="#1f2933", strokeDash=[4, 4]).encode(
            x=alt.X("zero:Q"))
        panels.append(alt.layer(zero, bars, points).properties(width=PAGE_WIDTH - 200,
                                                                height=max(30 * len(panel), 60)))
    return alt.vconcat(*panels, spacing=18).properties(title=_title("campaigns", language))


# The charts whose rows are segments: they declare the focus parameter their filters (or opacity) read.
FOCUSABLE = {"sizes", "age", "income", "categories", "payments", "value_tiers", "rfm_tiers", "migration", "history",
             "weekly"}


def build_charts(data: ReportData, language: str, keys: list[str]) -> dict[str, dict]:
    """Vega-Lite specs (dicts) for the given chart keys, in that order."""
    builders = {
        "sizes": lambda: chart_sizes(data, language),
        "age": lambda: chart_box(data, language, "age"),
        "income": lambda: chart_box(data, language, "income"),
        "categories": lambda: chart_categories(data, language),
        "payments": lambda: chart_payments(data, language),
        "value_tiers": lambda: chart_tiers(data, language, "value"),
        "rfm_tiers": lambda: chart_tiers(data, language, "rfm"),
        "k_selection": lambda: chart_k(data, language),
        "migration": lambda: chart_migration(data, language),
        "history": lambda: chart_history(data, language),
        "campaigns": lambda: chart_campaigns(data, language),
        "weekly": lambda: chart_weekly(data, language),
    }
    specs = {}
    # Not validated here: Altair checks every object it builds against the Vega-Lite JSON schema (debug mode),
    # and the whole spec again in to_dict: 0.3 s of CPU for the 20 charts at L. tests/test_report.py validates
    # every chart of the test reports instead. With this, one Config per chart (_configure) and channel objects,
    # the 20 charts at L take 0.31 s of CPU to build instead of 0.87 s.
    with schemapi.debug_mode(False):
        for key in keys:
            spec = _configure(builders[key]()).to_dict(validate=False)
            spec.pop("$schema", None)  # nothing in the report points anywhere
            spec["config"]["font"] = chart_render.font_for(spec)  # from the finished spec's text
            if key in FOCUSABLE:  # the page's segment selector sets it (html.EMBED); "" shows every segment
                spec["params"] = [*spec.get("params", []), focus_param()]
            specs[key] = spec
    return specs
