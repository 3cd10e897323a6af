"""One-time buyers on held-out time: where most of them are passers-by who never come back, the purchase model
overstates their values (BG/NBD, which kept them all alive, gave a trial's webshop export 8-11 times their past
spend; MBG/NBD still over-predicts a shop of passers-by). The held-out window measures it, and a miss beyond
clv.ONE_TIME_TOLERANCE is said in the check and the report."""

from datetime import datetime, timedelta
from types import SimpleNamespace

import duckdb
import numpy as np
import polars as pl
import pytest

from assets.predict.clv import (
    ONE_TIME_TOLERANCE,
    evaluate_customer_value,
    expected_purchases,
    one_time_miss,
    predictions_not_finite,
)
from assets.predict.runs import EVALUATED
from assets.report.facts import FactBook
from assets.report.sections_predict import weak_results
from quality.checks.predict import customer_value_problems

START = datetime(2025, 1, 1)


def drifting_shop(comeback: float, seed: int = 3) -> duckdb.DuckDBPyConnection:
    """300 days of a webshop: 200 loyal customers buying every 12 days or so, and 600 passers-by buying once of
    whom a share `comeback` buys once more. As staging.orders: customer_id, order_ts, order_amount."""
    rng = np.random.default_rng(seed)
    rows = []
    for customer in range(200):
        day = rng.uniform(0, 60)
        while day < 300:
            rows.append((f"L{customer}", START + timedelta(days=float(day)), float(rng.uniform(20, 80))))
            day += rng.exponential(12)
    for customer in range(600):
        day = rng.uniform(0, 300)
        rows.append((f"D{customer}", START + timedelta(days=float(day)), float(rng.uniform(20, 80))))
        later = day + rng.uniform(1, 300)
        if rng.random() < comeback and later < 300:
            rows.append((f"D{customer}", START + timedelta(days=float(later)), 30.0))
    orders = pl.DataFrame(rows, schema=["customer_id", "order_ts", "order_amount"], orient="row")  # noqa: F841
    con = duckdb.connect()
    con.execute("CREATE TABLE orders AS SELECT * FROM orders")
    return con


def by_hand(con: duckdb.DuckDBPyConnection, cutoff: datetime) -> tuple[int, int]:
    """(customers with exactly one purchase day before the cutoff, their purchase days from it on)."""
    return con.execute("""
        WITH days AS (SELECT DISTINCT customer_id, date_trunc('day', order_ts) AS day FROM orders),
        once AS (SELECT customer_id FROM days WHERE day < $cutoff GROUP BY customer_id HAVING count(*) = 1)
        SELECT (SELECT count(*) FROM once),
               (SELECT count(*) FROM days JOIN once USING (customer_id) WHERE day >= $cutoff)""",
                       {"cutoff": cutoff}).fetchone()


def test_one_time_buyers_who_rarely_come_back_are_found_overstated():
    con = drifting_shop(comeback=0.05)
    cutoff, end = START + timedelta(days=240), START + timedelta(days=300)
    figures, _ = evaluate_customer_value(con, cutoff, end, orders="orders")

    assert (figures["one_time_buyers"], figures["one_time_actual_purchases"]) == by_hand(con, cutoff)
    assert figures["one_time_buyers"] > 400 and figures["one_time_actual_purchases"] < 10
    miss = one_time_miss(figures)
    assert miss == pytest.approx(figures["one_time_predicted_purchases"] / figures["one_time_actual_purchases"])
    assert miss > 3 * ONE_TIME_TOLERANCE
    # The ranking is still better than the past purchase rate: only the one-time buyers' level is wrong.
    assert figures["spearman"] > figures["baseline_spearman"]


def test_the_miss_is_judged_only_beyond_the_tolerance_and_on_enough_buyers():
    run = {"one_time_buyers": 500, "one_time_predicted_purchases": 80.0, "one_time_actual_purchases": 41.0}
    assert one_time_miss(run) is None  # 1.95x: within a factor of two
    assert one_time_miss({**run, "one_time_actual_purchases": 39.0}) == pytest.approx(80 / 39)
    assert one_time_miss({**run, "one_time_predicted_purchases": 19.0}) == pytest.approx(19 / 41)  # understated
    assert one_time_miss({**run, "one_time_buyers": 20}) is None  # too few judged
    assert one_time_miss({**run, "one_time_actual_purchases": 0.0}) == float("inf")
    assert one_time_miss({**run, "one_time_actual_purchases": 0.0, "one_time_predicted_purchases": 3.0}) is None
    # Too few purchases either way to tell a factor of two from chance.
    assert one_time_miss({**run, "one_time_predicted_purchases": 2.5, "one_time_actual_purchases": 1.0}) is None
    assert one_time_miss({**run, "one_time_predicted_purchases": 31.0, "one_time_actual_purchases": 12.0}) == \
        pytest.approx(31 / 12)
    assert one_time_miss({"status": EVALUATED}) is None  # judged before the figures were recorded


def _run(**figures) -> dict:
    return {"run_id": "r1", "status": EVALUATED, "n_scored": 800, "spearman": 0.76, "baseline_spearman": 0.68,
            "one_time_buyers": 472, "one_time_predicted_purchases": 62.3, "one_time_actual_purchases": 4.0,
            **figures}


def test_the_report_says_overstated_values_and_a_ranking_no_better_than_the_past_rate():
    book = FactBook()
    banner = weak_results(SimpleNamespace(churn_run=None, recommendation_eval=None, value_run=_run()), book)
    assert [s.text(book) for s in banner["en"]] == [
        "One-time buyers' expected values are overstated: on the later period the model predicted 15.6× the "
        "purchases they made; read the expected spend of segments made mostly of one-time buyers with care."]
    assert [s.text(book, "zh") for s in banner["zh"]] == [
        "只购买过一次的客户预计价值被高估：在检验时间段，模型对他们的预测购买次数是实际的 15.6 倍；请谨慎看待主要由这类客户组成的客群的预计消费。"]
    assert book.facts["clv.one_time_ratio"].sql == (
        "SELECT one_time_predicted_purchases / one_time_actual_purchases FROM predict.customer_value_eval "
        "WHERE run_id = ?")

    book = FactBook()
    none_back = _run(spearman=0.41, baseline_spearman=0.52, one_time_actual_purchases=0.0)
    banner = weak_results(SimpleNamespace(churn_run=None, recommendation_eval=None, value_run=none_back), book)
    assert [s.text(book) for s in banner["en"]] == [
        "The customer lifetime value model ranks customers no better on the later period (Spearman 0.410) than "
        "their past purchase rate alone (0.520).",
        "One-time buyers' expected values are overstated: the model expected them to buy again, and none of them "
        "did in the later period; read the expected spend of segments made mostly of one-time buyers with care."]

    # Predictions that are not finite numbers (a fit the formulas could not evaluate) are said, and nothing else.
    book = FactBook()
    broken = _run(spearman=None, predicted_purchases=float("nan"), one_time_predicted_purchases=float("nan"))
    banner = weak_results(SimpleNamespace(churn_run=None, recommendation_eval=None, value_run=broken), book)
    assert [s.text(book) for s in banner["en"]] == [
        "The customer lifetime value model's predictions are not finite numbers: this run's expected purchases and "
        "spend cannot be used."]

    calibrated = _run(one_time_predicted_purchases=806.2, one_time_actual_purchases=985.0)  # the online-retail run
    assert weak_results(SimpleNamespace(churn_run=None, recommendation_eval=None, value_run=calibrated),
                        FactBook()) == {"zh": [], "en": []}


def test_the_check_says_by_how_much_one_time_buyers_were_missed():
    row = {"spearman": 0.671, "baseline_spearman": 0.599, "horizon_days": 90, "one_time_buyers": 866,
           "one_time_predicted_purchases": 142.3, "one_time_actual_purchases": 58.0}
    assert customer_value_problems(row) == [
        "the 866 one-time buyers were predicted 142.3 purchases over the last 90 days and made 58 (2.5x): their "
        "values are overstated"]
    assert customer_value_problems({**row, "spearman": 0.5, "one_time_predicted_purchases": 70.0}) == [
        "held-out Spearman 0.500 of predicted against actual purchases over the last 90 days is no better than "
        "ranking by past purchase rate (0.599)"]
    # A fit whose predictions are NaN (a trial's webshop, before expected_purchases' limit for one purchase rate).
    assert customer_value_problems({**row, "spearman": None, "predicted_purchases": float("nan"),
                                    "one_time_predicted_purchases": float("nan")}) == [
        "the model's held-out predictions are not finite numbers (nan): its values cannot be used"]
    assert customer_value_problems({**row, "one_time_predicted_purchases": 20.0}) == [
        "the 866 one-time buyers were predicted 20.0 purchases over the last 90 days and made 58 (0.3x): their "
        "values are understated"]



def _series_2f1(a: float, b: float, c: float, z: float, terms: int = 4000) -> float:
    """The hypergeometric series itself, for 0 <= z < 1: the reference the formula must agree with."""
    total = term = 1.0
    for k in range(terms):
        term *= (a + k) * (b + k) / ((c + k) * (k + 1)) * z
        total += term
    return total


def test_expected_purchases_stay_right_where_scipys_transformed_2f1_cancels():
    """A trial's takeaway shop: the fit put MBG/NBD's a near 0, and scipy's 2F1(r, a - 1; a + b; z) for z below -1
    came out -4.4 million, so its one-time buyers were predicted -22 billion purchases and the report printed them."""
    r, alpha, a, b = 0.8633408, 39.88985, 5.628565e-07, 142.4348
    horizon, x, t_x, t = 90.0, np.array([0.0, 0.0, 2.0]), np.array([0.0, 0.0, 40.0]), np.array([3.0, 150.0, 60.0])
    got = expected_purchases(np.array([r, alpha, a, b]), horizon, x, t_x, t)
    for i in range(3):
        share = (alpha + t[i]) / (alpha + t[i] + horizon)
        hyp = share ** (r + x[i]) * _series_2f1(r + x[i], b + x[i] + 1, a + b + x[i], 1 - share)
        expected = (a + b + x[i]) / (a - 1) * (1 - hyp) / (
            1 + a / (b + x[i]) * ((alpha + t[i]) / (alpha + t_x[i])) ** (r + x[i]))
        assert got[i] == pytest.approx(expected, rel=1e-9)
    assert (got > 0).all()
    # A judged run whose predictions went negative is said to be a fit the formulas could not evaluate.
    assert predictions_not_finite({"predicted_purchases": -22364726039.8}) and \
        not predictions_not_finite({"predicted_purchases": 3437.0})
