"""The report's segment selector in a real headless Chromium, offline: choosing a segment focuses every segment
chart and the KPI table on it, and choosing "all segments" shows every segment again.

The page is the demo report the browser test uses (tests/e2e/test_report_browser.py); the selector is an ordinary
<select>, changed as a reader would (its value set, then a change event), and the test reads what the page then
shows: the visible table rows, the points each chart drew, and the rows of the chart views' filtered data.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_report_browser import Chromium, inspect_report
from tests.e2e.test_report_browser import demo_reports as demo_reports  # noqa: F401 - a fixture

LANGUAGES = ("zh", "en")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = Chromium(tmp_path_factory.mktemp("chromium-selector"))
    yield chromium
    chromium.close()


def choose(browser: Chromium, segment: str) -> None:
    browser.evaluate("(function () { var select = document.getElementById('segment-focus'); "
                     f"select.value = {json.dumps(segment)}; select.dispatchEvent(new Event('change')); "
                     "return true; })()")


def visible_rows(browser: Chromium, selector: str) -> list[str]:
    return json.loads(browser.evaluate(
        f"JSON.stringify(Array.from(document.querySelectorAll({json.dumps(selector)}))"
        ".filter(function (e) { return e.offsetParent !== null; })"
        ".map(function (e) { return e.getAttribute('data-segment'); }))"))


# The points of the weekly chart (not its legend), each described by Vega as "...; Segment: <name>; ...".
POINTS = "#chart-weekly svg g.role-mark path[aria-label]"


def point_labels(browser: Chromium) -> list[str]:
    return json.loads(browser.evaluate(
        f"JSON.stringify(Array.from(document.querySelectorAll({json.dumps(POINTS)}))"
        ".map(function (p) { return p.getAttribute('aria-label'); }))"))


def filtered_segments(browser: Chromium, key: str) -> dict[str, list[str]]:
    """The segments left in each data set the chart view derives from its rows (not the rows as embedded)."""
    return json.loads(browser.evaluate(f"""(function () {{
        var view = window.__reportViews[{json.dumps(key)}], out = {{}};
        Object.keys(view._runtime.data).forEach(function (name) {{
            if (/^source_/.test(name) || name === 'root') return;
            var rows = view.data(name).filter(function (r) {{ return r && 'sid' in r; }});
            if (rows.length) out[name] = Array.from(new Set(rows.map(function (r) {{ return r.sid; }}))).sort();
        }});
        return JSON.stringify(out);
    }})()"""))


def svg_text(browser: Chromium, key: str) -> str:
    return browser.evaluate(f"Array.from(document.querySelectorAll('#chart-{key} svg text'))"
                            ".map(function (t) { return t.textContent; }).join('|')")


@pytest.mark.parametrize("language", LANGUAGES)
def test_choosing_a_segment_focuses_every_segment_chart_and_the_kpi_table(browser, demo_reports, language):
    found = inspect_report(browser, demo_reports / f"report_{language}.html")
    assert found["status"]["failed"] == [] and found["status"]["rendered"] == found["status"]["charts"]
    options = json.loads(browser.evaluate(
        "JSON.stringify(Array.from(document.querySelectorAll('#segment-focus option'))"
        ".map(function (o) { return [o.value, o.textContent]; }))"))
    assert options[0][0] == "" and len(options) >= 3
    segments = {value: name for value, name in options[1:]}
    everyone = sorted(segments)
    assert visible_rows(browser, "#table-weekly tbody tr") == everyone
    all_points = point_labels(browser)
    assert {name for name in segments.values() if any(f": {name};" in p for p in all_points)} == \
        set(segments.values())

    chosen = everyone[1]
    name, others = segments[chosen], [n for v, n in segments.items() if v != chosen]
    choose(browser, chosen)
    browser.wait_for(f"window.__report.focus === {json.dumps(chosen)}")
    browser.wait_for(f"document.querySelectorAll({json.dumps(POINTS)}).length < {len(all_points)}")
    # The KPI table, the summary cards and the strategies show that segment only.
    assert visible_rows(browser, "#table-weekly tbody tr") == [chosen]
    assert visible_rows(browser, ".card[data-segment]") == [chosen]
    assert visible_rows(browser, "#strategies [data-segment]") == [chosen]
    # The weekly chart drew that segment's points only, and its view's filtered data holds that segment only.
    points = point_labels(browser)
    assert points and all(f": {name};" in p for p in points)
    assert len(points) * len(segments) == pytest.approx(len(all_points), rel=0.35)
    for key in ("weekly", "age", "income", "categories", "payments", "value_tiers", "rfm_tiers", "history"):
        filtered = filtered_segments(browser, key)
        assert filtered and all(values == [chosen] for values in filtered.values()), (key, filtered)
    # Charts with a segment axis name that segment only.
    for key in ("age", "categories", "payments", "value_tiers"):
        text = svg_text(browser, key)
        assert name in text and not any(other in text.split("|") for other in others), (key, text)

    choose(browser, "")
    browser.wait_for(f"document.querySelectorAll({json.dumps(POINTS)}).length === {len(all_points)}")
    assert visible_rows(browser, "#table-weekly tbody tr") == everyone
    assert filtered_segments(browser, "payments") != {}
    assert all(len(values) == len(segments) for values in filtered_segments(browser, "payments").values())
    # Still offline and quiet: the only request is the page, no error or warning was logged.
    browser.drain()
    requests = [e["params"]["request"]["url"] for e in browser.events if e["method"] == "Network.requestWillBeSent"]
    assert requests == [found["url"]]
    errors = [e for e in browser.events if e["method"] == "Runtime.exceptionThrown"
              or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "warning"))]
    assert errors == []
