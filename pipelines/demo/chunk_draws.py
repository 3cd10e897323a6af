"""Vectorised per-chunk draws: profiles, churn and bundles, extremes, order counts, baskets and times."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import numpy as np

from pipelines.demo.personas import (
    _CADENCE_TOP_UP_SHARE,
    _CADENCE_WEEKDAY_CUMULATIVE,
    _TABLES,
)
from pipelines.demo.vocabulary import (
    _BIG_SPENDER,
    _BIG_SPENDER_INCOME_FACTOR,
    _BIG_SPENDER_PRICE_FACTOR,
    _BULK_BUYER,
    _BUNDLE_SHARE,
    _CHURN_RAMP_DAYS,
    _CHURN_RATE_SIGMA,
    _DAYS_PER_MONTH,
    _HYPER_FREQUENT,
    _HYPER_ORDER_FACTOR,
    _PLANTING_STREAM_KEY,
    _SECONDS_PER_DAY,
    BUNDLE_KEYS,
)

# --------------------------------------------------------------------------
# Vectorised per-chunk draws
# --------------------------------------------------------------------------


def _draw_categorical(
    rng: np.random.Generator, cumulative: np.ndarray, codes: np.ndarray
) -> np.ndarray:
    """One categorical draw per row, using the row's persona distribution.

    Inverse-CDF per persona via ``searchsorted``, so no (rows x outcomes)
    temporary is built; the uniform draw is one vectorised call per batch.
    """
    uniform = rng.random(codes.size)
    drawn = np.empty(codes.size, dtype=np.int64)
    for code in range(cumulative.shape[0]):
        rows = codes == code
        drawn[rows] = np.searchsorted(cumulative[code], uniform[rows], side="right")
    return drawn


def _draw_scaled_beta(
    rng: np.random.Generator, ranges: np.ndarray, shapes: np.ndarray, codes: np.ndarray
) -> np.ndarray:
    """Bounded, unimodal values in each row's persona range."""
    low, high = ranges[codes, 0], ranges[codes, 1]
    return low + (high - low) * rng.beta(shapes[codes, 0], shapes[codes, 1])


@dataclass(frozen=True)
class _Profiles:
    """Per-customer profile columns of one chunk."""

    age: np.ndarray
    female: np.ndarray
    income: np.ndarray
    home_owner: np.ndarray
    city: np.ndarray


def _draw_profiles(rng: np.random.Generator, codes: np.ndarray, wide: bool) -> _Profiles:
    """Age, gender, income (rounded to 100), home ownership and city."""
    age = np.rint(_draw_scaled_beta(rng, _TABLES.age_range, _TABLES.age_beta, codes))
    income_range = _TABLES.wide_income_range if wide else _TABLES.income_range
    income = _draw_scaled_beta(rng, income_range, _TABLES.income_beta, codes)
    return _Profiles(
        age=age.astype(np.int64),
        female=rng.random(codes.size) < _TABLES.female_share[codes],
        income=(np.rint(income / 100.0) * 100).astype(np.int64),
        home_owner=rng.random(codes.size) < _TABLES.home_owner_share[codes],
        city=_draw_categorical(rng, _TABLES.city_cumulative, codes),
    )


@dataclass(frozen=True)
class _Planted:
    """Per-customer churn day and bundle code, for all customers (sliced per chunk)."""

    churn_day: np.ndarray  # day since the window start (fractional) on which the customer stops for good
    bundle: np.ndarray  # 0 (none) or 1 + index into BUNDLE_KEYS


def _plant_churn_and_bundles(
    seed: int, persona_codes: np.ndarray, outlier_codes: np.ndarray
) -> _Planted:
    """Churn days and bundles from their own stream, like the outliers: independent of chunking.

    Churn is a constant hazard: exponential with the persona's monthly rate times a lognormal per-customer
    factor, so most days fall beyond the window (those customers are still buying at its end). Planted
    outliers never churn: an extreme customer who stopped early would no longer be extreme. A share
    _BUNDLE_SHARE of the customers get a bundle, chosen uniformly.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_PLANTING_STREAM_KEY,)))
    count = persona_codes.size
    monthly = _TABLES.churn_monthly_rate[persona_codes] * rng.lognormal(0.0, _CHURN_RATE_SIGMA, size=count)
    churn_day = np.where(outlier_codes > 0, np.inf, rng.exponential(_DAYS_PER_MONTH / monthly))
    has_bundle = rng.random(count) < _BUNDLE_SHARE
    bundle = np.where(has_bundle, rng.integers(0, len(BUNDLE_KEYS), size=count) + 1, 0)
    return _Planted(churn_day=churn_day, bundle=bundle)


def _survives_churn(
    rng: np.random.Generator,
    order_customer: np.ndarray,
    order_day: np.ndarray,
    churn_day: np.ndarray,
) -> np.ndarray:
    """Which candidate orders happen: thinning with the declining rate before each customer's churn day.

    An order on day ``t`` is kept with probability ``clip((churn_day - t) / _CHURN_RAMP_DAYS, 0, 1)``:
    full rate until the ramp starts, then linearly fewer orders, none after the churn day (thinning a
    Poisson process by a probability gives the Poisson process of the lower rate). Every customer keeps
    at least one order: where thinning left none, the customer's earliest candidate is kept.
    """
    keep_probability = np.clip(
        (churn_day[order_customer] - order_day) / _CHURN_RAMP_DAYS, 0.0, 1.0
    )
    keep = rng.random(order_day.size) < keep_probability
    if order_day.size == 0:
        return keep
    by_customer_then_day = np.lexsort((order_day, order_customer))
    sorted_customer = order_customer[by_customer_then_day]
    starts = np.flatnonzero(np.r_[True, sorted_customer[1:] != sorted_customer[:-1]])
    earliest = by_customer_then_day[starts]
    kept_counts = np.bincount(order_customer[keep], minlength=churn_day.size)
    orphans = earliest[kept_counts[order_customer[earliest]] == 0]
    keep[orphans] = True
    return keep


def _draw_order_counts(
    rng: np.random.Generator, codes: np.ndarray, days: int, rate_factor: np.ndarray
) -> np.ndarray:
    """Orders per customer: Poisson with the persona's rate, at least one.

    ``rate_factor`` scales the rate per customer (1 unless hyper-frequent).
    """
    return np.maximum(rng.poisson(_TABLES.orders_per_day[codes] * rate_factor * days), 1)


def _draw_factors(
    rng: np.random.Generator, mask: np.ndarray, bounds: tuple[float, float]
) -> np.ndarray:
    """1.0 per row, or a uniform draw from ``bounds`` where ``mask`` is set.

    Draws only for the masked rows, so the cost follows the outlier count.
    """
    factors = np.ones(mask.size)
    factors[mask] = rng.uniform(bounds[0], bounds[1], size=int(np.count_nonzero(mask)))
    return factors


@dataclass(frozen=True)
class _Extremes:
    """Per-customer outlier masks and factors of one chunk."""

    bulk_buyer: np.ndarray  # bool mask
    big_spender: np.ndarray  # bool mask
    price_factor: np.ndarray  # unit-price factor (1 unless big spender); long shape only
    order_rate_factor: np.ndarray  # order-rate factor (1 unless hyper-frequent)


def _draw_extremes(
    rng: np.random.Generator, outlier_codes: np.ndarray, profiles: _Profiles, wide: bool
) -> tuple[_Profiles, _Extremes]:
    """Apply the big spenders' income and draw the other per-customer factors.

    A big spender earns at least three times the richest persona's ceiling, so a budget-minded big spender is not
    mistaken for an ordinary refined-living customer. Income stays rounded to 100, like everyone else's.
    """
    big_spender = outlier_codes == _BIG_SPENDER
    income_factor = _draw_factors(rng, big_spender, _BIG_SPENDER_INCOME_FACTOR)
    richest = max(high for _, high in (_TABLES.wide_income_range if wide else _TABLES.income_range))
    boosted = np.where(big_spender, np.maximum(profiles.income * income_factor, 3 * richest), profiles.income)
    income = (np.rint(boosted / 100.0) * 100).astype(np.int64)
    extremes = _Extremes(
        bulk_buyer=outlier_codes == _BULK_BUYER,
        big_spender=big_spender,
        price_factor=_draw_factors(rng, big_spender, _BIG_SPENDER_PRICE_FACTOR),
        order_rate_factor=_draw_factors(
            rng, outlier_codes == _HYPER_FREQUENT, _HYPER_ORDER_FACTOR
        ),
    )
    return replace(profiles, income=income), extremes


@dataclass(frozen=True)
class _Baskets:
    """Category lines of a batch of orders, grouped by order in rank order."""

    lines_per_order: np.ndarray  # per order
    line_order: np.ndarray  # per line: index of its order
    line_category: np.ndarray  # per line: category code


def _draw_baskets(
    rng: np.random.Generator,
    order_codes: np.ndarray,
    order_bundles: np.ndarray,
    log_weights: np.ndarray,
    max_lines: np.ndarray,
) -> _Baskets:
    """Pick 1..N distinct categories per order, weighted by persona and the customer's bundle.

    Gumbel-top-k: adding Gumbel noise to log-weights and taking the k largest
    is weighted sampling without replacement, done for all orders at once.
    ``log_weights`` has shape (personas, 1 + bundles, categories).
    """
    extra = rng.poisson(_TABLES.extra_lines_mean[order_codes])
    lines = np.minimum(1 + extra, max_lines[order_codes])
    # Keys are built in place (negated, so an ascending sort ranks best first)
    # to avoid several (orders x categories) temporaries per chunk.
    categories = log_weights.shape[2]
    keys = rng.gumbel(size=(order_codes.size, categories))
    combined = order_codes * log_weights.shape[1] + order_bundles
    flat_weights = log_weights.reshape(-1, categories)
    for code in np.unique(combined):
        rows = combined == code
        keys[rows] += flat_weights[code]
    np.negative(keys, out=keys)
    ranked = np.argsort(keys, axis=1, kind="stable")
    del keys
    chosen = np.arange(categories)[None, :] < lines[:, None]
    return _Baskets(
        lines_per_order=lines,
        line_order=np.repeat(np.arange(order_codes.size), lines),
        line_category=ranked[chosen],
    )


def _draw_preferred_weekdays(rng: np.random.Generator, count: int) -> np.ndarray:
    """Each customer's usual shopping weekday (Monday=0); used by weekly shoppers."""
    return np.searchsorted(_CADENCE_WEEKDAY_CUMULATIVE, rng.random(count), side="right")


def _draw_order_seconds(
    rng: np.random.Generator,
    order_codes: np.ndarray,
    order_weekday: np.ndarray,
    days: int,
    start_date: date,
) -> np.ndarray:
    """Order time as seconds since the window start, shaped by persona habits.

    Weekly-cadence shoppers shop on their preferred weekday (``order_weekday``)
    in random weeks, plus a few top-up trips on any day; others shop on any
    day. The hour of day follows the persona's hourly profile.
    """
    count = order_codes.size
    day = rng.integers(0, days, size=count)

    first_day = (order_weekday - start_date.weekday()) % 7
    weeks_available = (days - first_day + 6) // 7
    week = np.floor(rng.random(count) * np.maximum(weeks_available, 1)).astype(np.int64)
    on_cadence = (
        _TABLES.weekly_cadence[order_codes]
        & (weeks_available > 0)
        & (rng.random(count) >= _CADENCE_TOP_UP_SHARE)
    )
    day = np.where(on_cadence, first_day + 7 * week, day)

    hour = _draw_categorical(rng, _TABLES.hour_cumulative, order_codes)
    second_of_hour = rng.integers(0, 3600, size=count)
    return day * _SECONDS_PER_DAY + hour * 3600 + second_of_hour
