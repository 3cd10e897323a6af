"""How a campaign's metric reads in the report: a p-value below a thousandth is "p <0.001", not "p = <0.001", and a
control group too small shows no interval."""

from assets.report.campaign_data import VERDICT_TEXT
from assets.report.facts import FactBook
from assets.report.sections_campaigns import _metric, _segment_cells


def row(p_value: float) -> dict:
    return {"campaign": "c", "metric": "revenue_per_customer", "treatment_value": 58.7, "control_value": 33.8,
            "uplift": 24.9, "ci_low": 11.2, "ci_high": 38.6, "p_value": p_value, "mde_now": 12.0,
            "verdict": "significant_gain"}


def test_a_p_value_below_a_thousandth_reads_p_below_not_p_equals():
    book = FactBook()
    small = _metric(book, row(0.0004))
    assert "38.6, p <0.001)" in small["en"].text(book, "en") and "p =" not in small["en"].text(book, "en")
    assert "，p <0.001）" in small["zh"].text(book, "zh")
    book = FactBook()
    assert "38.6, p = 0.045)" in _metric(book, row(0.045))["en"].text(book, "en")



def test_a_control_group_too_small_shows_no_interval_or_p_value():
    book = FactBook()
    said = _metric(book, {**row(0.0004), "verdict": "too_small"})
    assert said["en"].text(book, "en") == ("revenue per customer: 58.7 treatment vs 33.8 control: a control group too "
                                           "small for any verdict")
    assert "p" not in said["zh"].text(book, "zh").split("：", 1)[1]


def test_a_segment_row_too_small_shows_no_interval():
    book = FactBook()
    cells = _segment_cells(book, "c", "conversion_rate", {**row(0.0006), "metric": "conversion_rate",
                                                          "verdict": "too_small", "segment_id": 1})
    assert [cell.text(book, "en") for cell in cells["en"]] == ["–", VERDICT_TEXT["too_small"][1]]
