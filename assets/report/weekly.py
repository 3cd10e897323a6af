"""Weekly KPI trends per segment, for the weekly meeting: active customers, orders, GMV, average order value and
repeat rate of every described segment, week by week, with the change of the latest complete week against the
one before. Read from staging.orders, each customer's current segment (segments.customer_segments) and first order
(features.customer_order_stats).

Weeks run Monday to Sunday (DuckDB `date_trunc('week')`). Only complete weeks count: the first week starts on the
first Monday on or after the first order's day, the latest complete week is the last one whose Sunday is on or
before the last order's day (a week still in progress would always look like a drop). Repeat rate: the share of
the week's active customers who had ordered before that week. Every number printed is a fact whose query reads the
same KPI_SQL (see facts.py); segments below MIN_DETAIL_SIZE are left out, as everywhere in the report.
"""

from __future__ import annotations

from datetime import date

import altair as alt
import polars as pl

from assets.report.chart_style import INK, PAGE_WIDTH, focus_test
from assets.report.data import ReportData, f_min_size
from assets.report.facts import FactBook, FactRef, Sentence, compose
from assets.report.narrative import Section, Table
from assets.report.weekly_data import KPI_SQL, LATEST_WEEK_SQL, METRICS, PREVIOUS_WEEK_SQL


def _value(data: ReportData, segment_id: int, metric: str, week: date) -> float | None:
    rows = data.kpi.filter((pl.col("segment_id") == segment_id) & (pl.col("week") == week))
    if rows.height:
        return rows[metric][0]
    return 0 if METRICS[metric][3] else None


def _sql_value(metric: str) -> str:
    value = f"max({metric})"
    return f"coalesce({value}, 0)" if METRICS[metric][3] else value


def f_kpi(book: FactBook, data: ReportData, segment_id: int, metric: str, which: str) -> FactRef:
    week = data.kpi_latest if which == "latest" else data.kpi_previous
    return book.add(f"kpi.seg{segment_id}.{metric}.{which}", METRICS[metric][0],
                    _value(data, segment_id, metric, week),
                    f"SELECT {_sql_value(metric)} FROM ({KPI_SQL}) WHERE segment_id = ? AND week = ?",
                    [segment_id, week])


def f_kpi_change(book: FactBook, data: ReportData, segment_id: int, metric: str) -> FactRef:
    """Week on week: the relative change of a count or amount, the difference in points of the repeat rate."""
    now = _value(data, segment_id, metric, data.kpi_latest)
    before = _value(data, segment_id, metric, data.kpi_previous)
    latest, previous = (f"{_sql_value(metric).replace(f'max({metric})', f'max({metric}) FILTER (WHERE week = ${n})')}"
                        for n in (2, 3))
    if metric == "repeat_rate":
        value = now - before if now is not None and before is not None else None
        return book.add(f"kpi.seg{segment_id}.{metric}.change", "pp", value,
                        f"SELECT {latest} - {previous} FROM ({KPI_SQL}) WHERE segment_id = $1",
                        [segment_id, data.kpi_latest, data.kpi_previous])
    value = now / before - 1 if now is not None and before else None
    return book.add(f"kpi.seg{segment_id}.{metric}.change", "change", value,
                    f"SELECT {latest} / nullif({previous}, 0) - 1 FROM ({KPI_SQL}) WHERE segment_id = $1",
                    [segment_id, data.kpi_latest, data.kpi_previous])


def _weeks(data: ReportData) -> int:
    return data.kpi.get_column("week").n_unique() if data.kpi.height else 0


def section_weekly(data: ReportData, book: FactBook) -> Section:
    section = Section("weekly", {"zh": "每周指标趋势", "en": "Weekly KPI trends"}, [])
    if not data.detailed:
        section.say(compose("没有客群达到 {m} 人，为保护隐私不展示每周指标。", m=f_min_size(book)),
                    compose("No segment has {m} customers or more, so no weekly KPIs are shown, for privacy.",
                            m=f_min_size(book)))
        return section
    if not data.rfm_known or data.kpi_latest is None:
        section.say(compose("订单没有日期，无法按周统计活跃客户、订单数、GMV、客单价和复购率，因此没有趋势图。"),
                    compose("The orders carry no dates, so weekly active customers, orders, GMV, average order "
                            "value and repeat rate cannot be counted; there is no trend chart."))
        return section
    if _weeks(data) == 0:
        section.say(compose("订单还不到一个完整的周（周一至周日），暂无每周指标。"),
                    compose("The orders do not yet cover one complete week (Monday to Sunday), so there are no "
                            "weekly KPIs yet."))
        return section
    section.charts.append("weekly")
    latest = book.add("kpi.latest_week", "date", data.kpi_latest, LATEST_WEEK_SQL)
    compared = data.kpi.filter(pl.col("week") == data.kpi_previous).height > 0
    if compared:
        previous = book.add("kpi.previous_week", "date", data.kpi_previous, PREVIOUS_WEEK_SQL)
        section.say(compose("最近一个完整周从 {a} 开始（周一至周日）；"
                            "表中括号内为与前一周（从 {b} 开始）相比的周环比。", a=latest, b=previous),
                    compose("The latest complete week starts on {a} (Monday to Sunday); in brackets, the change "
                            "from the week before (starting on {b}).", a=latest, b=previous))
    else:
        section.say(compose("最近一个完整周从 {a} 开始（周一至周日）；之前没有完整的周，暂无周环比。", a=latest),
                    compose("The latest complete week starts on {a} (Monday to Sunday); there is no complete week "
                            "before it yet, so no week-on-week change.", a=latest))
    rows = []
    for segment in data.detailed:
        sid = segment.segment_id
        cells: dict[str, list[Sentence]] = {"zh": [compose("{n}", n=segment.name_zh)],
                                             "en": [compose("{n}", n=segment.name_en)]}
        for metric in METRICS:
            value = f_kpi(book, data, sid, metric, "latest")
            if not compared:
                cells["zh"].append(compose("{v}", v=value))
                cells["en"].append(compose("{v}", v=value))
                continue
            change = f_kpi_change(book, data, sid, metric)
            points = metric == "repeat_rate"
            cells["zh"].append(compose("{v}（{c} 个百分点）" if points else "{v}（{c}）", v=value, c=change))
            cells["en"].append(compose("{v} ({c} pp)" if points else "{v} ({c})", v=value, c=change))
        rows.append((sid, cells))
    section.table = Table({"zh": ["客群", *(m[1] for m in METRICS.values())],
                           "en": ["Segment", *(m[2] for m in METRICS.values())]}, rows,
                          {"zh": "最近一个完整周（括号内为周环比）",
                           "en": "Latest complete week (week-on-week change)"})
    if compared:
        _movers(data, book, section)
    section.say(compose("活跃客户为当周至少下单一次的客户；GMV 为当周订单金额合计；客单价为 GMV 除以订单数；"
                        "复购率为当周活跃客户中此前已下过单的比例，其变化以百分点表示。"
                        "客群按客户当前所属的客群统计；未满一周的首尾两周不计入。"),
                compose("Active customers ordered at least once in the week; GMV is the week's order value; average "
                        "order value is GMV divided by orders; repeat rate is the share of the week's active "
                        "customers who had ordered before, and its change is in percentage points (pp). Customers "
                        "count in their current segment; a first or last week that is not complete is left out."))
    return section


# A segment's GMV change is named as the week's largest rise or fall only when the segment had at least this many
# orders in both weeks: a trial's report headlined "+1117.8%" on 4 orders and "-100.0%" on none.
MIN_MOVER_ORDERS = 30


def _movers(data: ReportData, book: FactBook, section: Section) -> None:
    """The segments whose GMV rose and fell most week on week, among those with MIN_MOVER_ORDERS orders in both
    weeks; when none has, the report says so rather than naming a change of a handful of orders."""
    changes = []
    for segment in data.detailed:
        sid = segment.segment_id
        if min(_value(data, sid, "orders", data.kpi_latest), _value(data, sid, "orders", data.kpi_previous)) \
                < MIN_MOVER_ORDERS:
            continue
        ref = f_kpi_change(book, data, sid, "gmv")
        if book.facts[ref.key].value is not None:
            changes.append((book.facts[ref.key].value, sid, ref))
    if not changes:
        least = book.add("kpi.min_mover_orders", "param", MIN_MOVER_ORDERS, None)
        section.say(compose("没有客群在这两周都有至少 {m} 单，周环比受少数订单左右，"
                            "因此不指出 GMV 增长或下降最多的客群。", m=least),
                    compose("No segment had at least {m} orders in both weeks, so week-on-week changes rest on a "
                            "handful of orders and no segment is named as the one whose GMV grew or fell most.",
                            m=least))
        return
    changes.sort(key=lambda c: (-c[0], c[1]))
    best, worst = changes[0], changes[-1]
    if best[0] > 0:
        s = data.segment(best[1])
        section.say(compose("GMV 周环比增长最多的是{n}（{c}）。", n=s.name_zh, c=best[2]),
                    compose("GMV grew most in {n} ({c} week on week).", n=s.name_en, c=best[2]))
    if worst[0] < 0:
        s = data.segment(worst[1])
        section.say(compose("GMV 周环比下降最多的是{n}（{c}）。", n=s.name_zh, c=worst[2]),
                    compose("GMV fell most in {n} ({c} week on week).", n=s.name_en, c=worst[2]))
    if len(changes) < len(data.detailed) and (best[0] > 0 or worst[0] < 0):
        least = book.add("kpi.min_mover_orders", "param", MIN_MOVER_ORDERS, None)
        section.say(compose("增长与下降最多的客群只在这两周都有至少 {m} 单的客群中选出。", m=least),
                    compose("The largest rise and fall are named among the segments with at least {m} orders in both "
                            "weeks only.", m=least))


def chart_weekly(data: ReportData, language: str) -> alt.TopLevelMixin:
    """One panel per KPI (its own scale), a line per segment over the complete weeks."""
    index = 1 if language == "zh" else 2
    names = {s.segment_id: s.name(language) for s in data.detailed}
    rows = []
    for r in data.kpi.iter_rows(named=True):
        for metric, words in METRICS.items():
            if r[metric] is not None:
                rows.append({"week": r["week"].isoformat(), "sid": str(r["segment_id"]),
                             "name": names[r["segment_id"]], "metric": words[index], "value": r[metric]})
    order = [words[index] for words in METRICS.values()]
    segment = "客群" if language == "zh" else "Segment"
    week = "周（周一开始）" if language == "zh" else "Week (starting Monday)"
    scale = alt.Scale(domain=[s.name(language) for s in data.detailed], range=[s.color for s in data.detailed])
    lines = alt.Chart().mark_line(strokeWidth=2.5, point=alt.OverlayMarkDef(size=40, filled=True)).encode(
        x=alt.X("week:T", title=week, axis=alt.Axis(format="%m-%d", labelFontSize=13, titleFontSize=13)),
        y=alt.Y("value:Q", title=None, axis=alt.Axis(format="~s", labelFontSize=13, tickCount=4)),
        color=alt.Color("name:N", title=segment, scale=scale, legend=alt.Legend(orient="top", labelFontSize=13)),
        tooltip=[alt.Tooltip("name:N", title=segment), alt.Tooltip("week:T", title=week, format="%Y-%m-%d"),
                 alt.Tooltip("metric:N", title="指标" if language == "zh" else "KPI"),
                 alt.Tooltip("value:Q", title="数值" if language == "zh" else "Value", format=",.3~f")],
    ).transform_filter(focus_test("sid")).properties(width=PAGE_WIDTH, height=120)
    title = ("每周指标趋势（按客群）", "Weekly KPI trends per segment")[index - 1]
    return alt.FacetChart(data=alt.Data(values=rows), spec=lines, facet=alt.Facet(
        "metric:N", sort=order, title=None,
        header=alt.Header(labelFontSize=14, labelFontWeight="bold", labelColor=INK, labelAngle=0,
                          labelAlign="left", labelAnchor="start", labelOrient="top")),
        columns=1, spacing=16).resolve_scale(y="independent").properties(
        title=alt.TitleParams(title, anchor="start", fontSize=16))
