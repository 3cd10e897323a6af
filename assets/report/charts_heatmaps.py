"""The report's two heatmaps: category preference (segments x categories) and migration (previous x current
segment). Each cell's fill is known to the spec row by row (a binned lift colour, a step of the blues scheme), so
each number drawn on a cell takes the ink that contrasts with it (chart_style.ink_on), and the contrast check can
read both. A shop with more than TOP_CATEGORIES categories shows the most bought ones and folds the rest into one
"Other" column, so the heatmap fits the page."""

from __future__ import annotations

import math

import altair as alt
import polars as pl

from assets.report.chart_style import PAGE_WIDTH, blues, focus_test, ink_on, symlog_share
from assets.report.data import GONE_NAME, NEW_NAME, OTHER_ID, OTHER_NAME, ReportData

TOP_CATEGORIES = 12
OTHER_CATEGORY = {"zh": "其他", "en": "Other"}
# ... unless a category drawn is itself called so: the folded ones are then "all other categories".
OTHER_CATEGORIES = {"zh": "其余品类", "en": "All other categories"}
# Lift bins, lowest first: (upper bound, colour); a diverging blue (below average) - red (above) scale.
LIFT_BINS = [(0.5, "#2166ac"), (0.8, "#92c5de"), (1 / 0.8, "#f7f7f7"), (2.0, "#f4a582"), (math.inf, "#b2182b")]
LIFT_BIN_LABELS = {"en": ["< 0.5×", "0.5–0.8×", "0.8–1.25×", "1.25–2×", "≥ 2×"],
                   "zh": ["< 0.5 倍", "0.5–0.8 倍", "0.8–1.25 倍", "1.25–2 倍", "≥ 2 倍"]}
NO_LIFT = ({"zh": "无数据", "en": "no data"}, "#d9d9d9")


def lift_text(lift: float | None, language: str) -> str:
    if lift is None:
        return "–"
    digits = f"{lift:.1f}" if lift >= 0.95 else f"{lift:.2f}"
    return f"{digits}倍" if language == "zh" else f"{digits}×"


def _lift_bin(lift: float | None, language: str) -> tuple[str, str]:
    if lift is None:
        return NO_LIFT[0][language], NO_LIFT[1]
    index = next(i for i, (upper, _) in enumerate(LIFT_BINS) if lift < upper)
    return LIFT_BIN_LABELS[language][index], LIFT_BINS[index][1]


def shown_categories(data: ReportData) -> tuple[list[str], list[str]]:
    """(the categories drawn, the categories folded into Other): the TOP_CATEGORIES most bought by all customers
    are drawn, the rest folded, unless folding would leave only one."""
    population = {}
    for category, rate in zip(data.affinity["category"].to_list(), data.affinity["population_rate"].to_list()):
        population[category] = rate or 0.0
    ranked = sorted(population, key=lambda c: (-population[c], c))
    if len(ranked) <= TOP_CATEGORIES + 1:
        return ranked, []
    return ranked[:TOP_CATEGORIES], ranked[TOP_CATEGORIES:]


def other_label(data: ReportData, shown: list[str], language: str) -> str:
    """The name of the folded column, never the name of a category drawn beside it."""
    names = {data.category(c, language).casefold() for c in shown}
    return OTHER_CATEGORY[language] if OTHER_CATEGORY[language].casefold() not in names else OTHER_CATEGORIES[language]


def chart_categories(data: ReportData, language: str, title: alt.TitleParams, words: dict) -> alt.TopLevelMixin:
    shown, folded = shown_categories(data)
    rows = []

    def add(segment_id: int, category: str, lift: float | None, rate: float | None) -> None:
        label, fill = _lift_bin(lift, language)
        rows.append({"sid": str(segment_id), "name": data.segment(segment_id).name(language), "category": category,
                     "lift": lift, "rate": rate, "bin": label, "fill": fill, "ink": ink_on(fill),
                     "lift_label": lift_text(lift, language),
                     "rate_label": "" if rate is None else f"{rate * 100:.0f}%"})

    for r in data.affinity.filter(pl.col("category").is_in(shown)).iter_rows(named=True):
        add(r["segment_id"], data.category(r["category"], language), r["lift"], r["segment_rate"])
    other = other_label(data, shown, language)
    if folded:
        # The folded categories together: their purchase rates summed, in the segment and among all customers.
        part = (data.affinity.filter(pl.col("category").is_in(folded)).group_by("segment_id")
                .agg(pl.col("segment_rate").sum(), pl.col("population_rate").sum()).sort("segment_id"))
        for r in part.iter_rows(named=True):
            lift = r["segment_rate"] / r["population_rate"] if r["population_rate"] else None
            add(r["segment_id"], other, lift, None)
    categories = [data.category(c, language) for c in shown] + ([other] if folded else [])
    names = [s.name(language) for s in data.detailed]
    bins = [label for label in LIFT_BIN_LABELS[language] if any(r["bin"] == label for r in rows)]
    colours = [LIFT_BINS[LIFT_BIN_LABELS[language].index(label)][1] for label in bins]
    if any(r["lift"] is None for r in rows):
        bins.append(NO_LIFT[0][language])
        colours.append(NO_LIFT[1])
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("category:N", sort=categories, title=None,
                axis=alt.Axis(orient="top", labelAngle=-30, labelFontSize=13, labelLimit=140)),
        y=alt.Y("name:N", sort=names, title=None, axis=alt.Axis(labelFontSize=13)),
        tooltip=[alt.Tooltip("name:N", title=words["segment"]), alt.Tooltip("category:N", title=words["category"]),
                 alt.Tooltip("lift:Q", title=words["lift"], format=".2f"),
                 alt.Tooltip("rate:Q", title=words["rate"], format=".1%")])
    cells = base.mark_rect(stroke="white", strokeWidth=1).encode(
        color=alt.Color("bin:N", title=words["lift"], scale=alt.Scale(domain=bins, range=colours),
                        legend=alt.Legend(orient="bottom", labelFontSize=13, titleFontSize=13)))
    ink = alt.Color("ink:N", scale=None)
    lifts = base.mark_text(fontSize=14, fontWeight="bold", dy=-8).encode(text=alt.Text("lift_label:N"), color=ink)
    rates = base.mark_text(fontSize=12, dy=10).encode(text=alt.Text("rate_label:N"), color=ink)
    return alt.layer(cells, lifts, rates).transform_filter(focus_test("sid")).properties(
        width=PAGE_WIDTH, height=max(56 * len(names), 120), title=title)


def chart_migration(data: ReportData, language: str, title: alt.TitleParams, words: dict) -> alt.TopLevelMixin:
    small = set(data.small_ids)
    cells: dict[tuple, int] = {}
    for r in data.migration.iter_rows(named=True):
        a, b = r["from_segment_id"], r["to_segment_id"]
        a = OTHER_ID if a in small else a
        b = OTHER_ID if b in small else b
        cells[(a, b)] = cells.get((a, b), 0) + int(r["customers"])
    top = max(cells.values(), default=0)
    rows = []
    for (a, b), n in cells.items():
        fill = blues(symlog_share(n, top))
        rows.append({"from": data.group_name(a, language, NEW_NAME), "to": data.group_name(b, language, GONE_NAME),
                     "from_sid": "" if a is None else str(a), "to_sid": "" if b is None else str(b),
                     "customers": n, "label": f"{n:,}", "fill": fill, "ink": ink_on(fill)})
    ids = sorted({k for pair in cells for k in pair if k is not None and k != OTHER_ID})
    order = [data.group_name(i, language) for i in ids] + ([OTHER_NAME[language]] if OTHER_ID in
                                                           {k for p in cells for k in p} else [])
    from_order = order + ([NEW_NAME[language]] if any(a is None for a, _ in cells) else [])
    to_order = order + ([GONE_NAME[language]] if any(b is None for _, b in cells) else [])
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("to:N", sort=to_order, title=words["to"],
                axis=alt.Axis(orient="top", labelAngle=-20, labelFontSize=13)),
        y=alt.Y("from:N", sort=from_order, title=words["from"], axis=alt.Axis(labelFontSize=13)),
        tooltip=[alt.Tooltip("from:N", title=words["from"]), alt.Tooltip("to:N", title=words["to"]),
                 alt.Tooltip("customers:Q", title=words["customers"], format=",")])
    rects = base.mark_rect(stroke="white", strokeWidth=1).encode(color=alt.Color("fill:N", scale=None))
    text = base.mark_text(fontSize=14).encode(text=alt.Text("label:N"), color=alt.Color("ink:N", scale=None))
    return alt.layer(rects, text).transform_filter(focus_test("from_sid", "to_sid")).properties(
        width=PAGE_WIDTH, height=max(52 * len(from_order), 100), title=title)
