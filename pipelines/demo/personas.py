"""The four planted shopper personas and their parameters as per-persona numpy tables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.demo.vocabulary import (
    _BUNDLE_WEIGHT,
    _CORE_WEIGHT,
    _NOISE_WEIGHT,
    BUNDLE_KEYS,
    BUNDLES,
    CATEGORIES,
    WIDE_CATEGORIES,
)

# --------------------------------------------------------------------------
# Persona definitions
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Persona:
    """Parameters of one planted persona.

    Ranges are sampled with a scaled Beta distribution: bounded like the
    brief's ranges, unimodal, and without the spikes clipping would create.
    Weight tuples are relative and aligned to the matching vocabulary tuple.
    """

    key: str
    share: float
    age_range: tuple[int, int]
    age_beta: tuple[float, float]
    income_range: tuple[int, int]  # long shape, CNY per year
    wide_income_range: tuple[int, int]  # wide shape, seed-table scale
    income_beta: tuple[float, float]
    female_share: float
    home_owner_share: float
    city_weights: tuple[float, ...]  # aligned to CITIES
    category_weights: tuple[float, ...]  # aligned to CATEGORIES
    orders_per_day: float
    extra_lines_mean: float  # lines per order = 1 + Poisson(extra_lines_mean)
    extra_quantity_mean: float  # quantity = 1 + Poisson(extra_quantity_mean)
    sku_range: tuple[int, int]  # inclusive; higher SKU numbers are pricier
    wide_value_factor: float
    payment_weights: tuple[float, ...]  # aligned to PAYMENT_METHODS
    channel_weights: tuple[float, ...]  # aligned to CHANNELS
    hour_weights: tuple[float, ...]  # 24 entries, local hour of the order
    weekly_cadence: bool  # shops on a preferred weekday, week after week
    churn_monthly_rate: float  # hazard of stopping for good, per 30 days (median customer)


def _category_weights(core: dict[str, float]) -> tuple[float, ...]:
    """Align core-category weights to CATEGORIES; all others get noise weight."""
    unknown = set(core) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown categories in persona definition: {sorted(unknown)}")
    return tuple(core.get(name, _NOISE_WEIGHT) for name in CATEGORIES)


def _hour_weights(peaks: dict[tuple[int, int], float], base: float = 0.3) -> tuple[float, ...]:
    """Build 24 hourly weights: ``base`` at night, 1 by day, ``peaks`` on hour ranges.

    Keys of ``peaks`` are inclusive ``(first_hour, last_hour)`` ranges.
    """
    weights = [base if hour < 7 else 1.0 for hour in range(24)]
    for (first, last), weight in sorted(peaks.items()):
        for hour in range(first, last + 1):
            weights[hour] = weight
    return tuple(weights)


_PERSONAS: tuple[_Persona, ...] = (
    _Persona(
        key="young_professionals",
        share=0.30,
        age_range=(22, 34),
        age_beta=(2.5, 2.5),
        income_range=(90_000, 160_000),
        wide_income_range=(18_000, 30_000),
        income_beta=(3.0, 3.0),
        female_share=0.50,
        home_owner_share=0.20,
        city_weights=(0.20, 0.18, 0.20, 0.12, 0.12, 0.08, 0.05, 0.05),
        category_weights=_category_weights(
            {"frozenmeal": 1.0, "coffee": 1.0, "softdrink": 0.9, "snacks": 0.9, "beer": 0.7}
        ),
        orders_per_day=1 / 13,
        extra_lines_mean=0.4,
        extra_quantity_mean=0.2,
        sku_range=(10, 40),
        wide_value_factor=0.95,
        payment_weights=(0.17, 0.05, 0.77, 0.01),
        channel_weights=(0.12, 0.73, 0.15),
        hour_weights=_hour_weights({(0, 0): 0.8, (7, 8): 2.0, (12, 13): 3.0, (19, 23): 4.0}),
        weekly_cadence=False,
        churn_monthly_rate=0.10,
    ),
    _Persona(
        key="family_shoppers",
        share=0.30,
        age_range=(32, 50),
        age_beta=(3.0, 3.0),
        income_range=(85_000, 175_000),
        wide_income_range=(20_000, 32_000),
        income_beta=(3.0, 3.5),
        female_share=0.62,
        home_owner_share=0.85,
        city_weights=(0.12, 0.12, 0.10, 0.12, 0.12, 0.16, 0.14, 0.12),
        category_weights=_category_weights(
            {
                "fruitveg": 1.0,
                "freshmeat": 0.9,
                "dairy": 0.9,
                "bakery": 0.7,
                "household": 0.6,
                "babycare": 0.5,
                "softdrink": 0.1,
            }
        ),
        orders_per_day=1 / 18,
        extra_lines_mean=2.1,
        extra_quantity_mean=1.2,
        sku_range=(10, 40),
        wide_value_factor=1.1,
        payment_weights=(0.62, 0.13, 0.22, 0.03),
        channel_weights=(0.55, 0.25, 0.20),
        hour_weights=_hour_weights({(9, 12): 3.0, (14, 19): 3.0}, base=0.1),
        weekly_cadence=True,
        churn_monthly_rate=0.06,
    ),
    _Persona(
        key="refined_living",
        share=0.15,
        age_range=(35, 60),
        age_beta=(2.5, 3.0),
        income_range=(250_000, 500_000),
        wide_income_range=(40_000, 65_000),
        income_beta=(2.0, 3.5),
        female_share=0.50,
        home_owner_share=0.90,
        city_weights=(0.30, 0.28, 0.18, 0.08, 0.08, 0.03, 0.02, 0.03),
        category_weights=_category_weights(
            {"wine": 1.0, "fish": 0.9, "freshmeat": 0.7, "coffee": 0.6}
        ),
        orders_per_day=1 / 30,
        extra_lines_mean=1.5,
        extra_quantity_mean=0.3,
        sku_range=(35, 60),
        wide_value_factor=1.8,
        payment_weights=(0.68, 0.04, 0.20, 0.08),
        channel_weights=(0.45, 0.25, 0.30),
        hour_weights=_hour_weights({(10, 13): 2.0, (17, 21): 3.0}, base=0.1),
        weekly_cadence=False,
        churn_monthly_rate=0.07,
    ),
    _Persona(
        key="budget_minded",
        share=0.25,
        age_range=(45, 75),
        age_beta=(2.2, 2.8),
        income_range=(30_000, 60_000),
        wide_income_range=(10_000, 18_000),
        income_beta=(2.5, 2.5),
        female_share=0.55,
        home_owner_share=0.60,
        city_weights=(0.08, 0.08, 0.05, 0.10, 0.10, 0.20, 0.22, 0.17),
        category_weights=_category_weights(
            {"cannedveg": 1.0, "cannedmeat": 0.9, "confectionery": 0.7, "household": 0.6}
        ),
        orders_per_day=1 / 20,
        extra_lines_mean=0.3,
        extra_quantity_mean=0.4,
        sku_range=(1, 20),
        wide_value_factor=0.75,
        payment_weights=(0.14, 0.68, 0.06, 0.12),
        channel_weights=(0.88, 0.04, 0.08),
        hour_weights=_hour_weights({(7, 11): 4.0, (14, 16): 2.0}, base=0.05),
        weekly_cadence=False,
        churn_monthly_rate=0.12,
    ),
)

#: Persona keys in their fixed (code) order.
PERSONA_KEYS: tuple[str, ...] = tuple(persona.key for persona in _PERSONAS)

# Preferred weekday (Monday=0) of weekly-cadence shoppers: mostly weekends.
_CADENCE_WEEKDAY_WEIGHTS = (0.04, 0.04, 0.04, 0.04, 0.04, 0.44, 0.36)
_CADENCE_WEEKDAY_CUMULATIVE = np.cumsum(_CADENCE_WEEKDAY_WEIGHTS) / sum(_CADENCE_WEEKDAY_WEIGHTS)
_CADENCE_WEEKDAY_CUMULATIVE[-1] = 1.0
# Share of a weekly shopper's orders that are unplanned top-up trips.
_CADENCE_TOP_UP_SHARE = 0.10


def _cumulative(weights: np.ndarray) -> np.ndarray:
    """Row-normalised cumulative probabilities with the last column exactly 1."""
    weights = np.asarray(weights, dtype=np.float64)
    cumulative = np.cumsum(weights / weights.sum(axis=-1, keepdims=True), axis=-1)
    cumulative[..., -1] = 1.0
    return cumulative


class _PersonaTables:
    """Persona parameters as numpy arrays indexed by persona code.

    Why: a chunk mixes all personas; indexing these arrays with the per-row
    persona code lets every draw be one vectorised call for the whole chunk.
    """

    def __init__(self, personas: tuple[_Persona, ...]) -> None:
        def column(name: str) -> np.ndarray:
            return np.array([getattr(persona, name) for persona in personas], dtype=np.float64)

        self.shares = column("share")
        self.age_range = column("age_range")
        self.age_beta = column("age_beta")
        self.income_range = column("income_range")
        self.wide_income_range = column("wide_income_range")
        self.income_beta = column("income_beta")
        self.female_share = column("female_share")
        self.home_owner_share = column("home_owner_share")
        self.city_cumulative = _cumulative(column("city_weights"))
        self.orders_per_day = column("orders_per_day")
        self.extra_lines_mean = column("extra_lines_mean")
        self.extra_quantity_mean = column("extra_quantity_mean")
        self.sku_range = column("sku_range").astype(np.int64)
        self.wide_value_factor = column("wide_value_factor")
        self.payment_cumulative = _cumulative(column("payment_weights"))
        self.channel_cumulative = _cumulative(column("channel_weights"))
        self.hour_cumulative = _cumulative(column("hour_weights"))
        self.weekly_cadence = np.array([persona.weekly_cadence for persona in personas])
        self.churn_monthly_rate = column("churn_monthly_rate")

        weights = column("category_weights")
        # Log-weights per (persona, bundle code): code 0 is "no bundle", 1 + i is BUNDLE_KEYS[i].
        self.long_log_weights = np.log(_with_bundles(weights, CATEGORIES))
        self.long_max_lines = (weights >= _CORE_WEIGHT).sum(axis=1) + 1
        wide_weights = weights[:, : len(WIDE_CATEGORIES)]
        self.wide_log_weights = np.log(_with_bundles(wide_weights, WIDE_CATEGORIES))
        self.wide_max_lines = (wide_weights >= _CORE_WEIGHT).sum(axis=1) + 1


def _with_bundles(weights: np.ndarray, categories: tuple[str, ...]) -> np.ndarray:
    """Category weights per (persona, bundle code), shape (personas, 1 + bundles, categories).

    A bundle raises its categories to at least _BUNDLE_WEIGHT; categories outside ``categories`` (the wide
    shape's smaller vocabulary) are skipped.
    """
    table = np.repeat(weights[:, None, :], 1 + len(BUNDLE_KEYS), axis=1)
    for index, key in enumerate(BUNDLE_KEYS):
        columns = [categories.index(name) for name in BUNDLES[key] if name in categories]
        table[:, 1 + index, columns] = np.maximum(table[:, 1 + index, columns], _BUNDLE_WEIGHT)
    return table


_TABLES = _PersonaTables(_PERSONAS)
