"""The contrast rules of the report's charts (assets/report/chart_style.py): the WCAG formula, the ink chosen for a
fill, and the check that walks a chart spec and finds every unreadable text label. The report's own charts are
walked in tests/graph/test_report_charts.py."""

from __future__ import annotations

import pytest

from assets.report.chart_style import (
    BLUES,
    CONTRAST_MIN,
    contrast,
    ink_on,
    luminance,
    text_contrast_problems,
)
from assets.report.charts import METHOD_COLORS, RFM_COLORS, TIER_COLORS
from assets.report.charts_heatmaps import LIFT_BINS, NO_LIFT
from assets.report.data import OTHER_COLOR, PALETTE


def test_the_wcag_formula():
    assert luminance("#ffffff") == pytest.approx(1.0) and luminance("#000") == pytest.approx(0.0)
    assert contrast("white", "black") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # the classic "just fails AA" grey
    assert contrast("#1f2933", "#ffffff") == contrast("#ffffff", "#1f2933") > 14


@pytest.mark.parametrize("fill", sorted({*BLUES, *PALETTE, OTHER_COLOR, *METHOD_COLORS, *RFM_COLORS.values(),
                                         *TIER_COLORS.values(), *(c for _, c in LIFT_BINS), NO_LIFT[1],
                                         "#4393c3", "#808080", "#e15759"}))
def test_the_ink_for_every_fill_the_charts_use_is_readable(fill):
    assert contrast(ink_on(fill), fill) >= CONTRAST_MIN


def _heatmap(text_colour: dict, fill: dict | None = None, size: int = 12) -> dict:
    rows = [{"x": "a", "y": "p", "v": 1, "fill": "#08306b", "ink": ink_on("#08306b")},
            {"x": "b", "y": "p", "v": 2, "fill": "#f7fbff", "ink": ink_on("#f7fbff")}]
    encoding = {"x": {"field": "x", "type": "nominal"}, "y": {"field": "y", "type": "nominal"}}
    return {"config": {"background": "white"}, "datasets": {"d": rows}, "data": {"name": "d"}, "layer": [
        {"mark": {"type": "rect"}, "encoding": {**encoding, "color": fill or {"field": "fill", "scale": None}}},
        {"mark": {"type": "text", "fontSize": size},
         "encoding": {**encoding, "text": {"field": "v", "type": "quantitative"}, "color": text_colour}}]}


def test_dark_text_on_a_dark_cell_is_found():
    # The old migration heatmap: dark ink on every cell, the darkest blue included.
    problems = text_contrast_problems(_heatmap({"value": "#1f2933"}), "migration")
    assert len(problems) == 1 and "#1f2933 on #08306b" in problems[0]
    # Ink chosen per cell by the fill's luminance: readable everywhere.
    assert text_contrast_problems(_heatmap({"field": "ink", "type": "nominal", "scale": None})) == []


def test_a_fill_from_an_explicit_scale_is_read():
    scale = {"field": "x", "type": "nominal", "scale": {"domain": ["a", "b"], "range": ["#b2182b", "#f7f7f7"]}}
    assert text_contrast_problems(_heatmap({"value": "white"}, scale)) == [
        "chart.layer[1]: white on #f7f7f7 has contrast 1.07 ({'x': 'b', 'y': 'p', 'v': 2, 'fill': '#f7fbff', "
        "'ink': '#1f2933'})"]


def test_colours_the_check_cannot_read_fail_loudly():
    condition = {"condition": {"test": "datum.v > 1", "value": "white"}, "value": "#1f2933"}
    with pytest.raises(ValueError, match="conditional colour"):
        text_contrast_problems(_heatmap(condition))
    continuous = {"field": "v", "type": "quantitative", "scale": {"scheme": "blues"}}
    with pytest.raises(ValueError, match="cannot read"):
        text_contrast_problems(_heatmap({"value": "white"}, continuous))


def test_small_or_uncoloured_labels_are_found():
    assert any("font size 9" in p for p in text_contrast_problems(_heatmap({"value": "#1f2933"}, size=9)))
    spec = {"data": {"values": [{"t": "x"}]}, "mark": {"type": "text", "fontSize": 14},
            "encoding": {"text": {"field": "t", "type": "nominal"}}}
    assert text_contrast_problems(spec) == ["chart: text without an explicit colour"]


def test_labels_outside_a_ring_are_read_against_the_background():
    rows = [{"name": "a", "n": 1, "label": "50%"}, {"name": "b", "n": 1, "label": "50%"}]
    colour = {"field": "name", "type": "nominal", "scale": {"domain": ["a", "b"], "range": ["#edc948", "#4e79a7"]}}
    ring = {"mark": {"type": "arc", "outerRadius": 140}, "encoding": {"theta": {"field": "n"}, "color": colour}}
    outside = {"mark": {"type": "text", "radius": 165, "fontSize": 13},
               "encoding": {"theta": {"field": "n"}, "text": {"field": "label"}, "color": colour}}
    problems = text_contrast_problems({"data": {"values": rows}, "layer": [ring, outside]})
    assert len(problems) == 1 and "#edc948 on #ffffff" in problems[0]  # the yellow label on white
    outside["encoding"]["color"] = {"value": "#1f2933"}
    assert text_contrast_problems({"data": {"values": rows}, "layer": [ring, outside]}) == []
