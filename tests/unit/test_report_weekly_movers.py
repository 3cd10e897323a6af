"""The weekly KPI section names the segment whose GMV grew or fell most only among segments with enough orders in
both weeks: a trial's report headlined "+1117.8%" on 4 orders and "-100.0%" on none."""

from datetime import date
from types import SimpleNamespace

import polars as pl

from assets.report.facts import FactBook
from assets.report.narrative import Section
from assets.report.weekly import MIN_MOVER_ORDERS, _movers

LATEST, PREVIOUS = date(2026, 3, 9), date(2026, 3, 2)


def weekly(orders_gmv: dict[int, tuple[tuple[int, float], tuple[int, float]]]) -> SimpleNamespace:
    """Report data with each segment's (orders, GMV) in the previous and the latest week."""
    rows = [{"segment_id": sid, "week": week, "orders": orders, "gmv": gmv}
            for sid, weeks in orders_gmv.items() for week, (orders, gmv) in zip((PREVIOUS, LATEST), weeks)]
    segments = {sid: SimpleNamespace(segment_id=sid, name_zh=f"客群{sid}", name_en=f"Segment {sid}")
                for sid in orders_gmv}
    return SimpleNamespace(kpi=pl.DataFrame(rows), kpi_latest=LATEST, kpi_previous=PREVIOUS,
                           detailed=list(segments.values()), segment=segments.__getitem__)


def said(data) -> list[str]:
    book, section = FactBook(), Section("weekly", {"zh": "", "en": ""}, [])
    _movers(data, book, section)
    return [sentence.text(book, "en") for sentence in section.paragraphs["en"]]


def test_a_change_of_a_handful_of_orders_is_not_named():
    data = weekly({1: ((2, 40.0), (4, 487.1)), 2: ((3, 90.0), (0, 0.0))})
    assert said(data) == [f"No segment had at least {MIN_MOVER_ORDERS} orders in both weeks, so week-on-week changes "
                          "rest on a handful of orders and no segment is named as the one whose GMV grew or fell most."]


def test_only_segments_with_enough_orders_in_both_weeks_are_compared():
    data = weekly({1: ((120, 1000.0), (150, 1250.0)), 2: ((100, 900.0), (90, 810.0)), 3: ((4, 20.0), (40, 900.0))})
    assert said(data) == ["GMV grew most in Segment 1 (+25.0% week on week).",
                          "GMV fell most in Segment 2 (-10.0% week on week).",
                          f"The largest rise and fall are named among the segments with at least "
                          f"{MIN_MOVER_ORDERS} orders in both weeks only."]
