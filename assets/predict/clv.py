"""Customer lifetime value: a buy-till-you-die model fitted on each customer's purchase summary.

Purchases: MBG/NBD, the modified BG/NBD (Batislam, Denizel and Filiztekin 2007, "Empirical validation and
comparison of models for customer base analysis"). While alive, a customer buys at a Poisson rate
lambda ~ Gamma(r, alpha); after every purchase, the first one included, they leave for good with probability
p ~ Beta(a, b). BG/NBD (Fader, Hardie and Lee 2005, "Counting your customers the easy way"), the model before it, lets
a customer leave only after a repeat purchase, so it keeps every one-time buyer alive however long ago they bought:
on the demo it predicted one-time buyers 808 purchases on held-out time where they made 58, MBG/NBD 142 (with the
same ranking of customers or a better one; docs/predictions.md). Spend: Gamma-Gamma (Fader, Hardie and Lee 2005,
"RFM and CLV"): the values of a customer's repeat purchases are Gamma(p, nu) around their own mean, with
nu ~ Gamma(q, gamma) across customers (here `v` = gamma).

Both likelihoods are written out below in vectorised numpy and maximised with scipy.optimize (L-BFGS-B on the
logarithms of the parameters), on the customers' summaries compressed to their distinct values: the same estimates
as PyMC-Marketing's ModifiedBetaGeoModel and GammaGammaModel fitted by MAP with flat priors (tests/graph/
test_customer_value.py compares them with that library's figures, printed by bench/clv_reference.py). Why not the
library itself: see docs/predictions.md (measured install size, import time and fit time at 100k and 1M customers).

The summary of a customer as of a cutoff, in days, from the orders before it (a purchase is a day with an order,
as in lifetimes and PyMC-Marketing's rfm_summary, so two baskets on one day count once):
- frequency x: purchase days after the first one (repeat purchases);
- recency t_x: days from the first to the last purchase day;
- T: days from the first purchase day to the cutoff;
- monetary m: mean spend of the repeat purchase days (NULL without repeats; the first purchase is left out, as the
  Gamma-Gamma model asks).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import numpy as np
import polars as pl
from scipy import optimize, special, stats

# Too few repeat buyers and the dropout and spend distributions cannot be told apart from noise.
MIN_REPEAT_BUYERS = 20
MIN_CUSTOMERS = 50
# One-time buyers are the customers the purchase model knows least about: BG/NBD kept them all alive (a trial's
# webshop export gave them 8-11 times their past spend), and MBG/NBD still over-predicts where most of them are
# passers-by who never come back. The held-out window shows it: one-time buyers' predicted purchases against what
# they bought. Beyond this factor either way the values are weak, and said so, when at least MIN_ONE_TIME_JUDGED of
# them were judged and the larger of the two counts is at least MIN_ONE_TIME_JUDGED purchases (below that, a factor
# of two is Poisson noise: 2.5 predicted and 1 made happens to a model that is right).
ONE_TIME_TOLERANCE = 2.0
MIN_ONE_TIME_JUDGED = 30
MODEL_NAME = "MBG/NBD (purchases) + Gamma-Gamma (spend), maximum likelihood (scipy L-BFGS-B)"

# Every customer's purchase-day summary as of the data end and as of the evaluation cutoff, and the held-out
# window's purchases, in one pass over the orders (a purchase is a day with orders; its spend the day's total).
SUMMARIES_SQL = """
WITH days AS (
    SELECT customer_id, date_trunc('day', order_ts) AS day, sum(order_amount) AS spend
    FROM {orders}
    WHERE order_ts < $data_end AND order_ts IS NOT NULL
    GROUP BY ALL
),
per_customer AS (
    SELECT customer_id, count(*) AS n_days, count(*) FILTER (WHERE day < $eval_cutoff) AS n_past,
           min(day) AS first_day, max(day) AS last_day, max(day) FILTER (WHERE day < $eval_cutoff) AS last_past,
           sum(spend) AS spend, sum(spend) FILTER (WHERE day < $eval_cutoff) AS past_spend,
           arg_min(spend, day) AS first_spend, sum(spend) FILTER (WHERE day >= $eval_cutoff) AS window_spend
    FROM days GROUP BY customer_id
)
SELECT customer_id, n_past, n_days - n_past AS window_days, window_spend::DOUBLE AS window_spend,
       (n_days - 1)::DOUBLE AS frequency, date_diff('day', first_day, last_day)::DOUBLE AS recency,
       date_diff('day', first_day, $data_end::TIMESTAMP)::DOUBLE AS t,
       ((spend - first_spend) / nullif(n_days - 1, 0))::DOUBLE AS monetary,
       (n_past - 1)::DOUBLE AS past_frequency, date_diff('day', first_day, last_past)::DOUBLE AS past_recency,
       date_diff('day', first_day, $eval_cutoff::TIMESTAMP)::DOUBLE AS past_t,
       ((past_spend - first_spend) / nullif(n_past - 1, 0))::DOUBLE AS past_monetary
FROM per_customer
"""


def rfm_summaries(con: duckdb.DuckDBPyConnection, eval_cutoff: datetime, data_end: datetime,
                  orders: str = "staging.orders") -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """What a run reads, from one pass over the orders: rfm_summary(data_end), rfm_summary(eval_cutoff) and
    window_purchases(eval_cutoff, data_end), the same rows. Three passes (each grouping every order by customer
    and day) took 2.4-3.6 s at 1M customers, this one 40% less."""
    every = con.execute(SUMMARIES_SQL.format(orders=orders),
                        {"eval_cutoff": eval_cutoff, "data_end": data_end}).pl().sort("customer_id")
    columns = ["frequency", "recency", "t", "monetary"]
    summary = every.select("customer_id", *columns)
    past = every.filter(pl.col("n_past") > 0).select(
        "customer_id", *(pl.col(f"past_{c}").alias(c) for c in columns))
    window = every.filter(pl.col("window_days") > 0).select(
        "customer_id", pl.col("window_days").cast(pl.Float64).alias("actual_purchases"),
        pl.col("window_spend").alias("actual_spend"))
    return summary, past, window


def rfm_summary(con: duckdb.DuckDBPyConnection, cutoff: datetime, orders: str = "staging.orders") -> pl.DataFrame:
    """customer_id, frequency, recency, t, monetary as of `cutoff` (midnight), for every customer with an order
    before it, sorted by customer_id."""
    return rfm_summaries(con, cutoff, cutoff, orders)[0]


def window_purchases(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                     orders: str = "staging.orders") -> pl.DataFrame:
    """customer_id, actual_purchases (days with an order) and actual_spend in [start, end), for the buyers."""
    return rfm_summaries(con, start, end, orders)[2]


# --- MBG/NBD ---------------------------------------------------------------------------------------------------------

def mbgnbd_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The log-likelihood of each customer's (x, t_x, T) under MBG/NBD parameters (r, alpha, a, b): still alive at T
    after x + 1 purchases (B(a, b + x + 1) / B(a, b) (alpha + T)^-(r + x)), or gone right after the last one, at t_x
    (B(a + 1, b + x) / B(a, b) (alpha + t_x)^-(r + x)), times the Gamma-Poisson term of x repeat purchases."""
    r, alpha, a, b = params
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.betaln(a, b + x + 1) - special.betaln(a, b)
    a3 = -(r + x) * np.log(alpha + t)
    # ln(a / (b + x)) - (r + x) ln(alpha + t_x): the customer left right after the last purchase (t_x = 0: the first).
    a4 = np.log(a) - np.log(b + x) - (r + x) * np.log(alpha + t_x)
    return a1 + a2 + np.logaddexp(a3, a4)


def gamma_gamma_log_likelihood(params: np.ndarray, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The log-likelihood of each repeat buyer's mean spend m over x repeat purchases under Gamma-Gamma parameters
    (p, q, v): the density of the mean of x Gamma(p, nu) values, nu ~ Gamma(q, v)."""
    p, q, v = params
    px = p * x
    return (special.gammaln(px + q) - special.gammaln(px) - special.gammaln(q) + q * np.log(v)
            + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(x * m + v))


def mbgnbd_gradient(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """d log-likelihood / d (r, alpha, a, b) per customer: a 4 x n array (the derivatives of the terms above)."""
    r, alpha, a, b = params
    a3 = -(r + x) * np.log(alpha + t)
    a4 = np.log(a) - np.log(b + x) - (r + x) * np.log(alpha + t_x)
    total = np.logaddexp(a3, a4)
    w3, w4 = np.exp(a3 - total), np.exp(a4 - total)  # the weights of the two terms of the likelihood
    log_t, log_tx = np.log(alpha + t), np.log(alpha + t_x)
    psi_ab, psi_abx = special.digamma(a + b), special.digamma(a + b + x + 1)
    return np.stack([
        special.digamma(r + x) - special.digamma(r) + np.log(alpha) - w3 * log_t - w4 * log_tx,
        r / alpha - (r + x) * (w3 / (alpha + t) + w4 / (alpha + t_x)),
        psi_ab - psi_abx + w4 / a,
        special.digamma(b + x + 1) - special.digamma(b) + psi_ab - psi_abx - w4 / (b + x),
    ])


def gamma_gamma_gradient(params: np.ndarray, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """d log-likelihood / d (p, q, v) per repeat buyer: a 3 x n array."""
    p, q, v = params
    px = p * x
    psi_pxq, log_xmv = special.digamma(px + q), np.log(x * m + v)
    return np.stack([
        x * (psi_pxq - special.digamma(px) + np.log(m) + np.log(x) - log_xmv),
        psi_pxq - special.digamma(q) + np.log(v) - log_xmv,
        q / v - (px + q) / (x * m + v),
    ])


def _compress(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct rows of the columns and how often each occurs: a million customers have far fewer distinct
    summaries (whole days), so each likelihood evaluation costs a fraction.

    The same rows, order and counts as np.unique(axis=0, return_counts=True), which compares rows as structured
    values one by one: a lexsort of the numeric columns and a comparison with the previous row instead took the
    four compressions of a night at 1M customers from 4.1 s to a fraction of a second."""
    if len(columns[0]) == 0:
        return [np.asarray(c, dtype=np.float64) for c in columns], np.zeros(0)
    order = np.lexsort(columns[::-1])  # lexsort's last key is the primary one
    ordered = [np.asarray(c)[order] for c in columns]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = np.logical_or.reduce([c[1:] != c[:-1] for c in ordered])
    first = np.flatnonzero(starts)
    counts = np.diff(np.append(first, len(order)))
    return [c[first] for c in ordered], counts.astype(np.float64)


def _maximise(totals: callable, weight: float, start: np.ndarray) -> np.ndarray:
    """Maximise the mean log-likelihood over positive parameters: L-BFGS-B on their logarithms, with the analytic
    gradient (d/d log theta = theta d/d theta). `totals(params)` gives the summed log-likelihood and its gradient,
    `weight` the number of customers they add up."""

    def negative(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        # A line search may try log-parameters beyond exp's range: that point is rejected below, not warned about.
        with np.errstate(all="ignore"):
            params = np.exp(log_params)
            value, grad = totals(params)
            value, grad = -value / weight, -np.asarray(grad) / weight * params
        if not (np.isfinite(value) and np.isfinite(grad).all()):
            return 1e300, np.zeros_like(log_params)
        return value, grad

    result = optimize.minimize(negative, np.log(start), jac=True, method="L-BFGS-B",
                               options={"maxiter": 5000, "ftol": 1e-13, "gtol": 1e-8})
    return np.exp(result.x)


def fit_mbgnbd(x: np.ndarray, t_x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Maximum-likelihood (r, alpha, a, b) of MBG/NBD. Time in days."""
    (cx, ctx, ct), weights = _compress(x, t_x, t)
    # alpha starts near the mean customer age over purchases per customer: the rate's scale in days.
    alpha0 = max(float(np.mean(t)) / max(float(np.mean(x)) + 1.0, 1.0), 1.0)
    return _maximise(lambda params: ((weights * mbgnbd_log_likelihood(params, cx, ctx, ct)).sum(),
                                     mbgnbd_gradient(params, cx, ctx, ct) @ weights),
                     weights.sum(), np.array([1.0, alpha0, 1.0, 1.0]))


def gamma_gamma_totals(x: np.ndarray, m: np.ndarray) -> callable:
    """(p, q, v) -> the Gamma-Gamma log-likelihood summed over the buyers and its gradient: the sums of
    gamma_gamma_log_likelihood and gamma_gamma_gradient, regrouped. Mean spends are nearly all distinct, so
    compressing rows saves nothing; but every term except ln(x m + v) depends on x alone, or on m only through a
    sum per x fixed before the fit, so one evaluation takes one logarithm and one division per buyer instead of
    three log-gamma, three digamma and five logarithms (1.3 s of the two fits of a night at 1M customers)."""
    ux, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    n = counts.astype(np.float64)
    log_m = np.log(m)
    sum_log_m = np.bincount(inverse, weights=log_m, minlength=len(ux))  # sum of ln m per x
    log_ux = np.log(ux)
    fixed_p = float((ux * sum_log_m).sum() + (n * ux * log_ux).sum())  # d/dp terms that need no parameter
    fixed = float(sum_log_m.sum())
    xm = x * m
    total = float(n.sum())

    def totals(params: np.ndarray) -> tuple[float, np.ndarray]:
        p, q, v = params
        px = p * ux
        log_xmv = np.log(xm + v)
        x_log_xmv, sum_log_xmv = float(x @ log_xmv), float(log_xmv.sum())
        value = ((n * (special.gammaln(px + q) - special.gammaln(px))).sum() + total * (q * np.log(v)
                 - special.gammaln(q)) + (px * sum_log_m).sum() - fixed + p * (n * ux * log_ux).sum()
                 - p * x_log_xmv - q * sum_log_xmv)
        psi_pxq = special.digamma(px + q)
        grad = np.array([
            (n * ux * (psi_pxq - special.digamma(px))).sum() + fixed_p - x_log_xmv,
            (n * psi_pxq).sum() - total * special.digamma(q) + total * np.log(v) - sum_log_xmv,
            total * q / v - float(((p * x + q) / (xm + v)).sum()),
        ])
        return value, grad

    return totals


def fit_gamma_gamma(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Maximum-likelihood (p, q, v) over repeat buyers (x > 0) with a positive mean spend m."""
    return _maximise(gamma_gamma_totals(x, m), float(len(x)), np.array([1.0, 2.0, max(float(np.mean(m)), 1e-6)]))


def expected_purchases(params: np.ndarray, horizon: float, x: np.ndarray, t_x: np.ndarray,
                       t: np.ndarray) -> np.ndarray:
    """E[purchases in the next `horizon` days | x, t_x, T] under MBG/NBD (Batislam et al. 2007; BG/NBD's eq. 10 of
    Fader, Hardie and Lee 2005 with b + x + 1 for b + x and a dropout possible after the first purchase)."""
    r, alpha, a, b = params
    # ((alpha + T) / (alpha + T + h))^(r + x) 2F1(r + x, b + x + 1; a + b + x; h / (alpha + T + h)) written as the one
    # hypergeometric function it equals (Pfaff's transformation), without the power that over- and underflows.
    hyp = special.hyp2f1(r + x, a - 1, a + b + x, -horizon / (alpha + t))
    # Beyond -1 (a horizon longer than alpha + T), scipy transforms the argument, and with a - 1 near -1 (a near 0,
    # where a trial's takeaway shop's fit went) that transformation cancels catastrophically: 2F1(0.86, -1 + 6e-7;
    # 142.4; -2.1) came out -4.4 million instead of 1.0127, and one-time buyers were predicted -22 billion purchases.
    # There the original form is evaluated instead, its argument in (1/2, 1) where the series converges. Where it is
    # not finite (its power underflows for a very large r, whose alpha is then large too, so this branch is rarely
    # taken), the transformed value stays.
    beyond = np.broadcast_to(horizon > alpha + t, hyp.shape)
    if beyond.any():
        shares = np.broadcast_to((alpha + t) / (alpha + t + horizon), hyp.shape)[beyond]
        shape = np.broadcast_to(r + x, hyp.shape)[beyond]
        original = shares ** shape * special.hyp2f1(
            shape, np.broadcast_to(b + x + 1, hyp.shape)[beyond], np.broadcast_to(a + b + x, hyp.shape)[beyond],
            1 - shares)
        hyp = np.array(hyp, dtype=float)
        hyp[beyond] = np.where(np.isfinite(original), original, hyp[beyond])
    # Customers who all buy at one rate: the fit drives r and alpha up together (a trial's webshop: r 260,000,
    # alpha 8.1 million, a rate r / alpha of 0.03 a day), where scipy's 2F1 gives NaN. Its limit as r grows with
    # r / alpha fixed is the confluent 1F1(a - 1; a + b + x; -(r + x) h / (alpha + T)), exact to O(1 / r).
    confluent = ~np.isfinite(hyp)
    if confluent.any():
        rate = np.broadcast_to((r + x) * horizon / (alpha + t), hyp.shape)[confluent]
        hyp[confluent] = special.hyp1f1(a - 1, np.broadcast_to(a + b + x, hyp.shape)[confluent], -rate)
    numerator = (a + b + x) / (a - 1) * (1 - hyp)
    return numerator / (1 + a / (b + x) * ((alpha + t) / (alpha + t_x)) ** (r + x))


def probability_alive(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """P(still a customer | x, t_x, T) under MBG/NBD: below 1 for one-time buyers too, falling the longer ago they
    bought."""
    r, alpha, a, b = params
    return 1 / (1 + a / (b + x) * ((alpha + t) / (alpha + t_x)) ** (r + x))


def expected_spend_per_purchase(params: np.ndarray, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """E[value of a purchase | x repeat purchases averaging m] under Gamma-Gamma; the population mean p v / (q - 1)
    for customers without a (positive) repeat mean."""
    p, q, v = params
    known = (x > 0) & np.isfinite(m) & (m > 0)
    # With q <= 1 the spend distribution has no finite mean: such customers get no value (NaN, NULL downstream).
    mean = p * v / (q - 1) if q > 1 else np.nan
    safe_m = np.where(known, m, 0.0)
    return np.where(known, p * (v + x * safe_m) / (p * x + q - 1), mean)


# --- fitting, scoring and judging -------------------------------------------------------------------------------

@dataclass
class CustomerValueModel:
    purchases: np.ndarray  # MBG/NBD's r, alpha, a, b (days); the run row's bgnbd_* columns
    gamma_gamma: np.ndarray  # p, q, v
    customers: int
    repeat_buyers: int

    def params(self) -> dict[str, float]:
        names = ("bgnbd_r", "bgnbd_alpha", "bgnbd_a", "bgnbd_b", "gg_p", "gg_q", "gg_v")
        return dict(zip(names, (float(v) for v in (*self.purchases, *self.gamma_gamma))))


def _arrays(summary: pl.DataFrame) -> tuple[np.ndarray, ...]:
    return tuple(summary.get_column(c).cast(pl.Float64).fill_null(np.nan).to_numpy()
                 for c in ("frequency", "recency", "t", "monetary"))


def unfit_reason(summary: pl.DataFrame) -> str | None:
    """Why the models cannot be fitted on this summary (None when they can)."""
    repeat = summary.filter((pl.col("frequency") > 0) & (pl.col("monetary") > 0)).height
    if summary.height < MIN_CUSTOMERS or repeat < MIN_REPEAT_BUYERS:
        return (f"{summary.height} customers, {repeat} of them with a repeat purchase of positive value; "
                f"the lifetime-value models need at least {MIN_CUSTOMERS} and {MIN_REPEAT_BUYERS}")
    return None


def fit_customer_value(summary: pl.DataFrame) -> CustomerValueModel:
    """MBG/NBD on every customer, Gamma-Gamma on the repeat buyers with a positive mean spend."""
    x, t_x, t, m = _arrays(summary)
    purchases = fit_mbgnbd(x, t_x, t)
    buyers = (x > 0) & np.isfinite(m) & (m > 0)
    gamma_gamma = fit_gamma_gamma(x[buyers], m[buyers])
    return CustomerValueModel(purchases, gamma_gamma, len(x), int(buyers.sum()))


def score_customer_value(model: CustomerValueModel, summary: pl.DataFrame, horizon_days: int) -> pl.DataFrame:
    """customer_id, frequency, recency_days, tenure_days, p_alive, expected_purchases, expected_order_value and
    expected_spend over the next `horizon_days` days."""
    x, t_x, t, m = _arrays(summary)
    purchases = expected_purchases(model.purchases, float(horizon_days), x, t_x, t)
    value = expected_spend_per_purchase(model.gamma_gamma, x, m)
    return summary.select("customer_id", pl.col("frequency").cast(pl.Int64),
                          pl.col("recency").alias("recency_days"), pl.col("t").alias("tenure_days")).with_columns(
        pl.Series("p_alive", probability_alive(model.purchases, x, t_x, t)),
        pl.Series("expected_purchases", purchases),
        pl.Series("expected_order_value", value),
        pl.Series("expected_spend", purchases * value)).with_columns(
        # A value the model cannot give (no finite mean spend) is unknown, not NaN: SQL averages skip NULLs.
        pl.col("expected_order_value", "expected_spend").fill_nan(None))


VALUE_COLUMNS = ["frequency", "recency_days", "tenure_days", "p_alive", "expected_purchases", "expected_order_value",
                 "expected_spend"]
DECILES = 10
DECILE_SCHEMA = {"decile": pl.Int32, "customers": pl.Int64, "min_predicted": pl.Float64,
                 "max_predicted": pl.Float64, "mean_predicted_purchases": pl.Float64,
                 "mean_actual_purchases": pl.Float64, "mean_predicted_spend": pl.Float64,
                 "mean_actual_spend": pl.Float64, "buyers_share": pl.Float64}


def decile_table(judged: pl.DataFrame) -> pl.DataFrame:
    """Ten groups of equal size by predicted purchases (decile 10: the highest predictions), each with the mean
    predicted and actual purchases and spend of the held-out window. `judged`: customer_id, expected_purchases,
    expected_spend, actual_purchases, actual_spend."""
    if judged.is_empty():
        return pl.DataFrame(schema=DECILE_SCHEMA)
    # Ties broken by customer_id, so the groups are the same whatever order the rows came in.
    ordered = judged.sort(["expected_purchases", "customer_id"])
    n = ordered.height
    decile = (np.arange(n) * DECILES // n + 1).astype(np.int32)
    return (ordered.with_columns(pl.Series("decile", decile))
            .group_by("decile").agg(
                pl.len().cast(pl.Int64).alias("customers"),
                pl.col("expected_purchases").min().alias("min_predicted"),
                pl.col("expected_purchases").max().alias("max_predicted"),
                pl.col("expected_purchases").mean().alias("mean_predicted_purchases"),
                pl.col("actual_purchases").mean().alias("mean_actual_purchases"),
                pl.col("expected_spend").mean().alias("mean_predicted_spend"),
                pl.col("actual_spend").mean().alias("mean_actual_spend"),
                (pl.col("actual_purchases") > 0).mean().alias("buyers_share"))
            .sort("decile").cast(DECILE_SCHEMA))


# --- one run: judged on the held-out window, then refitted on everything and published ------------------------------

def spearman(predicted: np.ndarray, actual: np.ndarray) -> float | None:
    """Spearman's rank correlation (ties get their mean rank); None when either side is constant."""
    if len(predicted) < 3 or not np.isfinite(predicted).all() or np.ptp(predicted) == 0 or np.ptp(actual) == 0:
        return None
    return float(stats.spearmanr(predicted, actual).statistic)


def clv_eval_window(data_start: datetime, data_end: datetime, eval_days: int,
                    min_history_days: int) -> tuple[datetime | None, str | None]:
    """The held-out window's cutoff, `data_end - eval_days` (predict.clv_eval_days), or why the history is too short
    for it: the evaluation needs min_history_days of orders before the cutoff. A short history is said, never judged
    on a shorter window instead (the figure would not be comparable from one run to the next)."""
    span = (data_end - data_start).days
    needs = min_history_days + eval_days
    if span < needs:
        return None, (f"the orders cover {span} days; judging customer value needs {needs} "
                      f"(predict.min_history_days {min_history_days} + predict.clv_eval_days {eval_days} held out)")
    return data_end - timedelta(days=eval_days), None


def evaluate_customer_value(con: duckdb.DuckDBPyConnection, eval_cutoff: datetime, data_end: datetime,
                            orders: str = "staging.orders",
                            read: tuple[pl.DataFrame, pl.DataFrame] | None = None) -> tuple[dict, pl.DataFrame] | str:
    """Fit on the orders before `eval_cutoff`, predict the purchases of [eval_cutoff, data_end) for every customer
    who bought before it, and compare with what they did: Spearman's correlation (also for the naive ranking by
    past purchase rate, (x + 1) / T), totals, and the decile table. The reason instead when the model cannot be
    fitted on the past. `read`: the past summary and the window's purchases, when rfm_summaries read them."""
    started = time.perf_counter()
    past = rfm_summary(con, eval_cutoff, orders) if read is None else read[0]
    reason = unfit_reason(past)
    if reason:
        return f"before the evaluation cutoff: {reason}"
    model = fit_customer_value(past)
    window = (data_end - eval_cutoff).days
    predicted = score_customer_value(model, past, window)
    actual = window_purchases(con, eval_cutoff, data_end, orders) if read is None else read[1]
    judged = (predicted.join(actual, on="customer_id", how="left")
              .with_columns(pl.col("actual_purchases", "actual_spend").fill_null(0.0)))
    deciles = decile_table(judged)
    observed = judged.get_column("actual_purchases").to_numpy()
    rate = (past.get_column("frequency") + 1) / past.get_column("t").clip(lower_bound=1.0)
    total_actual = float(observed.sum())
    top = deciles.filter(pl.col("decile") == DECILES)
    top_share = (float(top["mean_actual_purchases"][0] * top["customers"][0]) / total_actual
                 if total_actual > 0 and top.height else None)
    once = judged.filter(pl.col("frequency") == 0)
    return {"n_fit": model.customers, "n_eval": judged.height,
            "one_time_buyers": once.height,
            "one_time_predicted_purchases": float(once.get_column("expected_purchases").sum()),
            "one_time_actual_purchases": float(once.get_column("actual_purchases").sum()),
            "spearman": spearman(judged.get_column("expected_purchases").to_numpy(), observed),
            "baseline_spearman": spearman(rate.to_numpy(), observed),
            "predicted_purchases": float(judged.get_column("expected_purchases").sum()),
            "actual_purchases": total_actual, "top_decile_purchase_share": top_share,
            "eval_seconds": time.perf_counter() - started}, deciles


# The judgements of a judged run's row that customer_value_quality warns of and the report's weak results say: one
# definition each, read by both.

def predictions_not_finite(run: dict) -> bool:
    """The held-out predictions are NaN, infinite or negative: a fit the formulas could not evaluate."""
    predicted = run.get("predicted_purchases")
    return predicted is not None and (not math.isfinite(predicted) or predicted < 0)


def ranks_no_better(run: dict) -> bool:
    """The model ranks held-out purchases no better than the past purchase rate (False when either is unknown)."""
    rho, baseline = run.get("spearman"), run.get("baseline_spearman")
    return rho is not None and baseline is not None and rho <= baseline


def one_time_miss(run: dict) -> float | None:
    """How many times what one-time buyers bought on the held-out window the model predicted for them (inf when they
    bought nothing), when that is off by more than ONE_TIME_TOLERANCE either way on enough buyers and purchases;
    None when it is within, too few were judged, or the run was judged before the figures were recorded."""
    buyers, predicted, actual = (run.get(k) for k in ("one_time_buyers", "one_time_predicted_purchases",
                                                       "one_time_actual_purchases"))
    if buyers is None or predicted is None or actual is None or buyers < MIN_ONE_TIME_JUDGED:
        return None
    if max(predicted, actual) < MIN_ONE_TIME_JUDGED:
        return None
    if actual == 0:
        return float("inf")
    ratio = predicted / actual
    return ratio if ratio > ONE_TIME_TOLERANCE or ratio < 1 / ONE_TIME_TOLERANCE else None


def publish_customer_value(con: duckdb.DuckDBPyConnection, data_end: datetime, horizon_days: int,
                           orders: str = "staging.orders",
                           summary: pl.DataFrame | None = None) -> tuple[dict, pl.DataFrame] | str:
    """Fit on every order and predict the next `horizon_days` days as of `data_end`: the run's figures (fitted
    parameters, customers, seconds) and the per-customer scores, or the reason it cannot be fitted."""
    started = time.perf_counter()
    summary = rfm_summary(con, data_end, orders) if summary is None else summary
    reason = unfit_reason(summary)
    if reason:
        return reason
    model = fit_customer_value(summary)
    scores = score_customer_value(model, summary, horizon_days)
    return {"n_scored": scores.height, "repeat_buyers": model.repeat_buyers, **model.params(),
            "fit_seconds": time.perf_counter() - started}, scores
