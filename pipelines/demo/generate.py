"""Deterministic demo-data generator with planted customer personas.

Why this module exists: the pipeline needs realistic input that anyone can
recreate bit for bit (demos, tests, benchmarks) and whose "right answer" is
known. We therefore plant four shopper personas with clearly different ages,
incomes, category mixes, payment habits and shopping rhythms, write the raw
files the pipeline ingests, and write the planted persona of every customer to
``truth.csv`` so segmentation quality can be measured.

A small, seeded share of customers (``outlier_share``, default 0.5 %) is also
planted as *extreme*: each keeps its persona's categories and payment habits
but buys in bulk (``bulk_buyer``), earns and pays far more (``big_spender``)
or orders far more often (``hyper_frequent``). ``truth.csv`` flags them
(``planted_outlier``, ``outlier_kind``) so the quality gate's outlier
detector can be measured against a known answer.

Churn and co-purchase are planted too, so the predictive layer (``assets/predict.py``) can be measured:

* **Churn.** Every customer (but the planted outliers) has a latent churn day drawn from a constant hazard
  (a persona's monthly churn rate times a per-customer factor). Over the ``_CHURN_RAMP_DAYS`` before it the customer's order rate
  declines linearly (an observable early warning), and after it they never buy again. ``truth.csv`` holds
  the day (``churn_day``, days after the window start; empty when the customer is still buying at the end).
* **Co-purchase bundles.** Most customers have one need that cuts across personas (breakfast, party,
  baby, pantry, ...): the categories of that bundle are raised to ``_BUNDLE_WEIGHT`` in every basket the
  customer draws, so customers who buy one category of a bundle tend to buy the others sooner or later.
  ``truth.csv`` names the bundle (``bundle``; empty for customers without one).

Two output shapes are supported:

* ``"long"`` -- a normalised retail export: ``customers.csv`` (one row per
  customer) and ``order_lines.csv`` (one row per order line).
* ``"wide"`` -- mirrors the users' seed table: ``baskets.csv`` with one row per
  basket, the customer profile repeated on each basket and one ``T``/``F``
  flag per category.

Scale: customers are generated and appended to the CSV files in fixed-size
chunks with vectorised numpy code, so a million customers (about ten million
order lines) needs only a few hundred MB of memory regardless of the total.

Determinism: every random draw comes from ``numpy.random.default_rng`` seeded
from ``seed`` (one stream for global tables, one for choosing the outliers,
one independent child stream per chunk), no draw depends on dict order,
wall-clock time or thread scheduling, and polars writes rows in frame order.
The same arguments therefore produce byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl

__all__ = [
    "CATEGORIES",
    "CHANNELS",
    "BUNDLES",
    "BUNDLE_KEYS",
    "CITIES",
    "GeneratedData",
    "LONG_ORDER_COLUMNS",
    "LONG_CUSTOMER_COLUMNS",
    "OUTLIER_KINDS",
    "PAYMENT_METHODS",
    "PERSONA_KEYS",
    "SHAPES",
    "WIDE_CATEGORIES",
    "WIDE_COLUMNS",
    "generate_demo_data",
]

# --------------------------------------------------------------------------
# Vocabulary of the generated files
# --------------------------------------------------------------------------

#: Product categories of the long shape. The first eleven are the categories
#: of the users' seed table, which is why the wide shape uses exactly those.
CATEGORIES: tuple[str, ...] = (
    "fruitveg",
    "freshmeat",
    "dairy",
    "cannedveg",
    "cannedmeat",
    "frozenmeal",
    "beer",
    "wine",
    "softdrink",
    "fish",
    "confectionery",
    "bakery",
    "coffee",
    "snacks",
    "household",
    "babycare",
)
WIDE_CATEGORIES: tuple[str, ...] = CATEGORIES[:11]

#: Payment methods of the long shape. The seed table only knows the first,
#: second and fourth, so the wide shape records MOBILE payments as CARD.
PAYMENT_METHODS: tuple[str, ...] = ("CARD", "CASH", "MOBILE", "CHEQUE")
_WIDE_PAYMENT_CODE = np.array([0, 1, 0, 3])  # MOBILE (2) -> CARD (0)

CHANNELS: tuple[str, ...] = ("store", "app", "web")

CITIES: tuple[str, ...] = (
    "Shanghai",
    "Beijing",
    "Shenzhen",
    "Guangzhou",
    "Hangzhou",
    "Chengdu",
    "Wuhan",
    "Nanjing",
)

SHAPES: tuple[str, ...] = ("long", "wide")

LONG_CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "age",
    "gender",
    "income",
    "home_owner",
    "city",
)
LONG_ORDER_COLUMNS: tuple[str, ...] = (
    "order_id",
    "customer_id",
    "order_ts",
    "category",
    "quantity",
    "unit_price",
    "amount",
    "payment_method",
    "channel",
    "sku",
)
WIDE_COLUMNS: tuple[str, ...] = (
    "cardid",
    "value",
    "pmethod",
    "sex",
    "homeown",
    "income",
    "age",
    *WIDE_CATEGORIES,
)
TRUTH_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "persona",
    "planted_outlier",
    "outlier_kind",
    "churn_day",
    "bundle",
)

#: Extreme behaviours of planted outlier customers, in code order. Internally
#: a customer's outlier code is 0 (not planted) or 1 + index in this tuple.
OUTLIER_KINDS: tuple[str, ...] = ("bulk_buyer", "big_spender", "hyper_frequent")
_BULK_BUYER, _BIG_SPENDER, _HYPER_FREQUENT = 1, 2, 3
_OUTLIER_LABELS: tuple[str | None, ...] = (None, *OUTLIER_KINDS)  # None -> empty field

# Largest accepted outlier share, and the size from which a positive share
# always plants at least one outlier (below it, rounding may give none).
_MAX_OUTLIER_SHARE = 0.2
_MIN_CUSTOMERS_FOR_ONE_OUTLIER = 20
# Extreme factors, relative to what the customer's persona would do:
# bulk_buyer quantity per line (inclusive integers), big_spender income and
# unit prices, hyper_frequent order rate, and (wide shape) the basket value
# of bulk_buyer and big_spender baskets, applied on top of the usual range.
_BULK_QUANTITY_FACTOR = (20, 60)
_BIG_SPENDER_INCOME_FACTOR = (15.0, 40.0)
_BIG_SPENDER_PRICE_FACTOR = (20.0, 40.0)
_HYPER_ORDER_FACTOR = (12.0, 25.0)
_WIDE_EXTREME_VALUE_FACTOR = (20.0, 40.0)
# Spawn key of the random stream that picks the outliers. Chunk streams use
# their chunk index (far below this), so the streams never coincide and the
# choice of outliers does not disturb any other draw of the global stream.
_OUTLIER_STREAM_KEY = 2**32 - 1
# The same for the stream that plants churn days and bundles.
_PLANTING_STREAM_KEY = 2**32 - 2

# Customers generated (and written) per chunk: large enough for numpy/polars
# to be efficient, small enough that ~550k order lines per chunk stay cheap.
# Each chunk has its own random stream, so this value is part of the output
# contract: changing it changes the generated files for a given seed.
_CHUNK_CUSTOMERS = 50_000

# Every category offers SKUs 1.._SKUS_PER_CATEGORY; higher numbers are the
# premium end of the shelf (price factor grows with the SKU number).
_SKUS_PER_CATEGORY = 60

# Typical shelf price (CNY per unit) of a mid-range SKU in each category.
_BASE_UNIT_PRICE_CNY: dict[str, float] = {
    "fruitveg": 12.0,
    "freshmeat": 38.0,
    "dairy": 15.0,
    "cannedveg": 8.0,
    "cannedmeat": 14.0,
    "frozenmeal": 22.0,
    "beer": 9.0,
    "wine": 88.0,
    "softdrink": 5.0,
    "fish": 45.0,
    "confectionery": 10.0,
    "bakery": 12.0,
    "coffee": 28.0,
    "snacks": 9.0,
    "household": 25.0,
    "babycare": 65.0,
}

# Share of order lines sold on promotion, and the promotional price factor.
_PROMO_SHARE = 0.08
_PROMO_FACTOR = 0.85

# Wide shape: what one flagged category typically adds to a basket's value
# (seed-table scale), a fixed per-basket amount, and the value bounds.
_WIDE_VALUE_PER_CATEGORY = 10.0
_WIDE_VALUE_BASE = 6.0
_WIDE_VALUE_MIN = 10.0
_WIDE_VALUE_MAX = 100.0

# Every non-core category gets this relative weight, so each persona buys
# "other" categories now and then without blurring the persona.
_NOISE_WEIGHT = 0.025
# Categories at or above this weight count as a persona's core categories;
# baskets never have more lines than core categories + 1.
_CORE_WEIGHT = 0.1

# Planted co-purchase: needs that cut across personas. A customer with a bundle has the weight of each of
# its categories raised to _BUNDLE_WEIGHT (never lowered), in every basket. The wide shape keeps only the
# categories of the seed table. _BUNDLE_SHARE of the customers get one bundle, chosen uniformly.
BUNDLES: dict[str, tuple[str, ...]] = {
    "breakfast": ("dairy", "bakery", "coffee"),
    "party": ("beer", "snacks", "softdrink"),
    "baby": ("babycare", "dairy", "fruitveg"),
    "pantry": ("cannedveg", "cannedmeat", "household"),
    "seafood_dinner": ("fish", "wine", "fruitveg"),
    "sweet_treats": ("confectionery", "bakery", "softdrink"),
}
BUNDLE_KEYS: tuple[str, ...] = tuple(BUNDLES)
_BUNDLE_WEIGHT = 0.4
_BUNDLE_SHARE = 0.7

# Planted churn: the order rate declines linearly to zero over this many days before the churn day.
_CHURN_RAMP_DAYS = 42.0
# A per-customer factor on the persona's monthly churn rate: lognormal with this sigma (median 1).
_CHURN_RATE_SIGMA = 0.6
_DAYS_PER_MONTH = 30.0

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_SECONDS_PER_DAY = 86_400


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


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedData:
    """What :func:`generate_demo_data` wrote.

    ``customers_path`` is ``None`` for the wide shape, whose profile columns
    live on every basket row. ``order_lines`` counts order lines (long) or
    baskets (wide). ``personas`` lists the planted persona keys that occur in
    the data, in their fixed order. ``outliers`` counts the customers planted
    as extreme (flagged in ``truth.csv``).
    """

    customers_path: Path | None
    orders_path: Path
    truth_path: Path
    customers: int
    order_lines: int
    personas: tuple[str, ...]
    outliers: int


def generate_demo_data(
    out_dir: Path,
    customers: int = 5000,
    days: int = 90,
    seed: int = 7,
    shape: str = "long",
    start_date: date = date(2026, 1, 1),
    *,
    outlier_share: float = 0.005,
) -> GeneratedData:
    """Write deterministic demo data with planted personas into ``out_dir``.

    Args:
        out_dir: Directory for the CSV files; created if missing. Existing
            files of the same name are overwritten.
        customers: Number of customers (>= 1). Every customer gets at least
            one order (long) or basket (wide).
        days: Length of the order window ``[start_date, start_date + days)``
            (>= 1). The number of orders per customer scales with it (about
            ten order lines per customer over 90 days). For the wide shape,
            which has no timestamps, it only scales the basket counts.
        seed: Non-negative seed; the same arguments give byte-identical files.
        shape: ``"long"`` (customers.csv + order_lines.csv) or ``"wide"``
            (baskets.csv, one row per basket, like the seed table).
        start_date: First day of the order window (long shape only).
        outlier_share: Share of customers planted as extreme, in
            ``[0, 0.2]``. The count is ``round(outlier_share * customers)``
            (Python rounding, half to even), but at least one when the share
            is positive and there are >= 20 customers; 0 plants none. The
            outliers are a seeded sample drawn per persona in proportion to
            the persona sizes (so the persona mix of the remaining customers
            stays as planted), and the kinds ``bulk_buyer``, ``big_spender``
            and ``hyper_frequent`` are dealt out evenly (counts differ by at
            most one). Each keeps its persona's categories and payment
            habits; the kind multiplies quantities per line by 20-60
            (``bulk_buyer``), income by 15-40 (at least three times the richest persona's ceiling) and unit prices by 20-40
            (``big_spender``) or the order rate by 12-25 (``hyper_frequent``).
            In the wide shape, ``bulk_buyer`` and ``big_spender`` basket
            values are multiplied by 20-40 beyond the usual 10-100 range.

    Returns:
        The written paths and counts; see :class:`GeneratedData`.

    Raises:
        ValueError: If ``customers`` or ``days`` is below 1 (or not an
            integer), ``seed`` is negative, ``shape`` is unknown,
            ``start_date`` is not a date or ``outlier_share`` is not a
            number in ``[0, 0.2]``.
    """
    _validate_arguments(customers, days, seed, shape, start_date, outlier_share)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    global_rng = np.random.default_rng(seed)
    price_cents = _draw_price_table(global_rng)
    persona_codes = _assign_personas(global_rng, customers)
    personas_present = tuple(
        key for code, key in enumerate(PERSONA_KEYS) if np.any(persona_codes == code)
    )
    outlier_codes = _plant_outliers(seed, persona_codes, float(outlier_share))
    outliers = int(np.count_nonzero(outlier_codes))
    planted = _plant_churn_and_bundles(seed, persona_codes, outlier_codes)

    if shape == "long":
        customers_path = out_dir / "customers.csv"
        orders_path = out_dir / "order_lines.csv"
        truth_path = out_dir / "truth.csv"
        with (
            customers_path.open("wb") as customers_file,
            orders_path.open("wb") as orders_file,
            truth_path.open("wb") as truth_file,
        ):
            lines_written = _write_long(
                customers_file,
                orders_file,
                truth_file,
                persona_codes=persona_codes,
                outlier_codes=outlier_codes,
                planted=planted,
                days=days,
                seed=seed,
                start_date=start_date,
                price_cents=price_cents,
            )
        return GeneratedData(
            customers_path=customers_path,
            orders_path=orders_path,
            truth_path=truth_path,
            customers=customers,
            order_lines=lines_written,
            personas=personas_present,
            outliers=outliers,
        )

    baskets_path = out_dir / "baskets.csv"
    truth_path = out_dir / "truth.csv"
    with baskets_path.open("wb") as baskets_file, truth_path.open("wb") as truth_file:
        baskets_written = _write_wide(
            baskets_file,
            truth_file,
            persona_codes=persona_codes,
            outlier_codes=outlier_codes,
            planted=planted,
            days=days,
            seed=seed,
        )
    return GeneratedData(
        customers_path=None,
        orders_path=baskets_path,
        truth_path=truth_path,
        customers=customers,
        order_lines=baskets_written,
        personas=personas_present,
        outliers=outliers,
    )


# --------------------------------------------------------------------------
# Validation and global draws
# --------------------------------------------------------------------------


def _validate_arguments(
    customers: int, days: int, seed: int, shape: str, start_date: date, outlier_share: float
) -> None:
    """Fail early with a message naming the bad argument."""
    for name, value in (("customers", customers), ("days", days), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if customers < 1:
        raise ValueError(f"customers must be at least 1, got {customers}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")
    if not isinstance(start_date, date):
        raise ValueError(f"start_date must be a datetime.date, got {start_date!r}")
    if isinstance(outlier_share, bool) or not isinstance(
        outlier_share, (int, float, np.integer, np.floating)
    ):
        raise ValueError(f"outlier_share must be a number, got {outlier_share!r}")
    # Written so that NaN fails too.
    if not 0.0 <= outlier_share <= _MAX_OUTLIER_SHARE:
        raise ValueError(
            f"outlier_share must be between 0 and {_MAX_OUTLIER_SHARE}, got {outlier_share!r}"
        )


def _draw_price_table(rng: np.random.Generator) -> np.ndarray:
    """Regular shelf price in cents for every (category, SKU number).

    Why a table: a SKU should have one regular price everywhere; only
    promotions move it. Column ``s`` holds SKU number ``s`` (column 0 unused).
    """
    base = np.array([_BASE_UNIT_PRICE_CNY[name] for name in CATEGORIES])
    sku_numbers = np.arange(_SKUS_PER_CATEGORY + 1)
    tier_factor = 0.5 + sku_numbers / 30.0  # SKU 1 ~ 0.53x, SKU 60 = 2.5x
    jitter = rng.lognormal(mean=0.0, sigma=0.08, size=(len(CATEGORIES), sku_numbers.size))
    cents = np.rint(base[:, None] * tier_factor[None, :] * jitter * 100.0).astype(np.int64)
    return np.maximum(cents, 10)


def _assign_personas(rng: np.random.Generator, customers: int) -> np.ndarray:
    """Persona code per customer with exact largest-remainder shares, shuffled.

    Why not an independent draw per customer: exact counts keep the mix at
    30/30/15/25 for any size and put every persona in data of >= 4 customers.
    One byte per customer, so this stays cheap even for millions.
    """
    counts = _largest_remainder(_TABLES.shares / _TABLES.shares.sum() * customers, customers)
    codes = np.repeat(np.arange(len(_PERSONAS), dtype=np.int8), counts)
    return rng.permutation(codes)


def _largest_remainder(quotas: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to ``total``, as close to ``quotas`` as possible.

    Floors every quota, then gives the leftover units to the largest
    fractional remainders; a stable sort hands ties to the earliest entry.
    """
    counts = np.floor(quotas).astype(np.int64)
    remainder = total - int(counts.sum())
    by_remainder = np.argsort(-(quotas - counts), kind="stable")
    counts[by_remainder[:remainder]] += 1
    return counts


def _outlier_count(customers: int, share: float) -> int:
    """How many customers to plant as extreme (see ``generate_demo_data``)."""
    if share == 0.0:
        return 0
    count = round(share * customers)
    if customers >= _MIN_CUSTOMERS_FOR_ONE_OUTLIER:
        count = max(count, 1)
    return count


def _plant_outliers(seed: int, persona_codes: np.ndarray, share: float) -> np.ndarray:
    """Outlier code per customer: 0, or 1 + index into ``OUTLIER_KINDS``.

    Why per persona: drawing each persona's outliers in proportion to its size
    (largest remainder) keeps the persona mix of the *non*-outliers as close
    to the planted shares as the totals allow. Kinds are dealt round-robin
    and then shuffled, so their counts differ by at most one. The draws use
    their own stream, so planting does not change the price table or the
    persona assignment. One byte per customer, like the persona codes.
    """
    customers = persona_codes.size
    codes = np.zeros(customers, dtype=np.int8)
    count = _outlier_count(customers, share)
    if count == 0:
        return codes
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_OUTLIER_STREAM_KEY,)))
    persona_sizes = np.bincount(persona_codes, minlength=len(_PERSONAS))
    per_persona = _largest_remainder(persona_sizes / customers * count, count)
    chosen = np.sort(
        np.concatenate(
            [
                rng.choice(np.flatnonzero(persona_codes == code), size=int(k), replace=False)
                for code, k in enumerate(per_persona)
            ]
        )
    )
    kinds = np.arange(count) % len(OUTLIER_KINDS) + 1
    codes[chosen] = rng.permutation(kinds)
    return codes


def _chunk_rng(seed: int, chunk_index: int) -> np.random.Generator:
    """Independent stream per chunk (same as ``SeedSequence(seed).spawn``)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(chunk_index,)))


def _chunks(total: int) -> list[tuple[int, int]]:
    """``(start, stop)`` customer index ranges of the fixed-size chunks."""
    return [
        (start, min(start + _CHUNK_CUSTOMERS, total))
        for start in range(0, total, _CHUNK_CUSTOMERS)
    ]


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


def _truth_frame(
    ids: pl.Series | np.ndarray,
    codes: np.ndarray,
    outlier_codes: np.ndarray,
    churn_day: np.ndarray,
    bundle_codes: np.ndarray,
    days: int,
) -> pl.DataFrame:
    """Rows of ``truth.csv``; ``outlier_kind``, ``churn_day`` and ``bundle`` are written empty when not planted.

    ``churn_day`` is the whole day (since the window start) on which the customer stopped buying, empty when
    that day lies beyond the window.
    """
    churned = churn_day < days
    return pl.DataFrame(
        {
            "customer_id": ids,
            "persona": _labels(PERSONA_KEYS, codes),
            "planted_outlier": (outlier_codes > 0).astype(np.int64),
            "outlier_kind": pl.Series(_OUTLIER_LABELS, dtype=pl.String).gather(outlier_codes),
            "churn_day": pl.Series(
                np.floor(np.where(churned, churn_day, 0.0)).astype(np.int64)
            ).set(pl.Series(~churned), None),
            "bundle": pl.Series((None, *BUNDLE_KEYS), dtype=pl.String).gather(bundle_codes),
        }
    )


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


# --------------------------------------------------------------------------
# Long shape
# --------------------------------------------------------------------------


def _prefixed_ids(prefix: str, numbers: np.ndarray, width: int) -> pl.Series:
    """IDs like ``C0000001``: prefix plus zero-padded number."""
    return pl.select(
        pl.concat_str(
            pl.lit(prefix), pl.Series(numbers, dtype=pl.Int64).cast(pl.String).str.zfill(width)
        )
    ).to_series()


def _labels(vocabulary: tuple[str, ...], codes: np.ndarray) -> pl.Series:
    """Map integer codes to their string labels."""
    return pl.Series(vocabulary, dtype=pl.String).gather(codes)


def _write_csv(
    frame: pl.DataFrame, file: BinaryIO, header: bool, float_precision: int | None
) -> None:
    """Append one chunk: UTF-8, ``\\n`` line ends, header only for the first chunk."""
    frame.write_csv(
        file,
        include_header=header,
        line_terminator="\n",
        datetime_format="%Y-%m-%d %H:%M:%S",
        float_precision=float_precision,
    )


def _write_long(
    customers_file: BinaryIO,
    orders_file: BinaryIO,
    truth_file: BinaryIO,
    *,
    persona_codes: np.ndarray,
    outlier_codes: np.ndarray,
    planted: _Planted,
    days: int,
    seed: int,
    start_date: date,
    price_cents: np.ndarray,
) -> int:
    """Generate and append the long shape chunk by chunk; return lines written."""
    window_start = (start_date.toordinal() - _EPOCH_ORDINAL) * _SECONDS_PER_DAY
    orders_before = 0
    lines_written = 0
    for chunk_index, (start, stop) in enumerate(_chunks(persona_codes.size)):
        rng = _chunk_rng(seed, chunk_index)
        codes = persona_codes[start:stop].astype(np.int64)
        first = chunk_index == 0
        customer_ids = _prefixed_ids("C", np.arange(start + 1, stop + 1), 7)
        chunk_outliers = outlier_codes[start:stop]

        profiles, extremes = _draw_extremes(
            rng, chunk_outliers, _draw_profiles(rng, codes, wide=False), wide=False
        )
        _write_csv(
            pl.DataFrame(
                {
                    "customer_id": customer_ids,
                    "age": profiles.age,
                    "gender": np.where(profiles.female, "F", "M"),
                    "income": profiles.income,
                    "home_owner": np.where(profiles.home_owner, "YES", "NO"),
                    "city": _labels(CITIES, profiles.city),
                }
            ),
            customers_file,
            first,
            None,
        )
        churn_day = planted.churn_day[start:stop]
        bundle_codes = planted.bundle[start:stop]
        _write_csv(
            _truth_frame(customer_ids, codes, chunk_outliers, churn_day, bundle_codes, days),
            truth_file,
            first,
            None,
        )

        # Orders: candidate count per customer, time, thinning by churn, then
        # sort by (customer, time) so order ids run chronologically within
        # each customer.
        preferred_weekday = _draw_preferred_weekdays(rng, codes.size)
        order_counts = _draw_order_counts(rng, codes, days, extremes.order_rate_factor)
        order_customer = np.repeat(np.arange(codes.size), order_counts)
        order_codes = codes[order_customer]
        order_seconds = _draw_order_seconds(
            rng, order_codes, preferred_weekday[order_customer], days, start_date
        )
        happens = _survives_churn(
            rng, order_customer, order_seconds / _SECONDS_PER_DAY, churn_day
        )
        order_customer = order_customer[happens]
        order_codes = order_codes[happens]
        order_seconds = order_seconds[happens]
        by_customer_then_time = np.lexsort((order_seconds, order_customer))
        order_customer = order_customer[by_customer_then_time]
        order_codes = order_codes[by_customer_then_time]
        order_seconds = order_seconds[by_customer_then_time]
        order_payment = _draw_categorical(rng, _TABLES.payment_cumulative, order_codes)
        order_channel = _draw_categorical(rng, _TABLES.channel_cumulative, order_codes)
        order_numbers = orders_before + 1 + np.arange(order_codes.size)
        orders_before += order_codes.size

        baskets = _draw_baskets(
            rng,
            order_codes,
            bundle_codes[order_customer],
            _TABLES.long_log_weights,
            _TABLES.long_max_lines,
        )
        line_order = baskets.line_order
        line_codes = order_codes[line_order]
        category = baskets.line_category
        line_customer = order_customer[line_order]
        quantity = 1 + rng.poisson(_TABLES.extra_quantity_mean[line_codes])
        bulk_lines = extremes.bulk_buyer[line_customer]
        quantity[bulk_lines] *= rng.integers(
            _BULK_QUANTITY_FACTOR[0],
            _BULK_QUANTITY_FACTOR[1] + 1,
            size=int(np.count_nonzero(bulk_lines)),
        )
        sku_low = _TABLES.sku_range[line_codes, 0]
        sku_high = _TABLES.sku_range[line_codes, 1]
        sku = rng.integers(sku_low, sku_high + 1)
        unit_cents = price_cents[category, sku]
        # Big spenders pay a premium on everything.
        big_lines = extremes.big_spender[line_customer]
        unit_cents[big_lines] = np.rint(
            unit_cents[big_lines] * extremes.price_factor[line_customer[big_lines]]
        ).astype(np.int64)
        on_promo = rng.random(line_codes.size) < _PROMO_SHARE
        unit_cents = np.where(on_promo, np.rint(unit_cents * _PROMO_FACTOR), unit_cents)
        unit_cents = unit_cents.astype(np.int64)
        amount_cents = quantity * unit_cents  # exact in cents, so amount == q * price

        category_labels = _labels(CATEGORIES, category)
        lines = pl.DataFrame(
            {
                "order_id": _prefixed_ids("O", order_numbers[line_order], 8),
                "customer_id": customer_ids.gather(line_customer),
                "order_ts": pl.from_epoch(
                    pl.Series(window_start + order_seconds[line_order], dtype=pl.Int64),
                    time_unit="s",
                ),
                "category": category_labels,
                "quantity": quantity.astype(np.int64),
                "unit_price": unit_cents / 100.0,
                "amount": amount_cents / 100.0,
                "payment_method": _labels(PAYMENT_METHODS, order_payment[line_order]),
                "channel": _labels(CHANNELS, order_channel[line_order]),
                "sku": pl.select(
                    pl.concat_str(
                        category_labels,
                        pl.lit("-"),
                        pl.Series(sku, dtype=pl.Int64).cast(pl.String).str.zfill(3),
                    )
                ).to_series(),
            }
        )
        _write_csv(lines, orders_file, first, 2)
        lines_written += lines.height
    return lines_written


# --------------------------------------------------------------------------
# Wide shape
# --------------------------------------------------------------------------


def _write_wide(
    baskets_file: BinaryIO,
    truth_file: BinaryIO,
    *,
    persona_codes: np.ndarray,
    outlier_codes: np.ndarray,
    planted: _Planted,
    days: int,
    seed: int,
) -> int:
    """Generate and append the wide (seed-table) shape; return baskets written."""
    baskets_written = 0
    for chunk_index, (start, stop) in enumerate(_chunks(persona_codes.size)):
        rng = _chunk_rng(seed, chunk_index)
        codes = persona_codes[start:stop].astype(np.int64)
        first = chunk_index == 0
        card_ids = 10_000 + np.arange(start, stop, dtype=np.int64)
        chunk_outliers = outlier_codes[start:stop]

        profiles, extremes = _draw_extremes(
            rng, chunk_outliers, _draw_profiles(rng, codes, wide=True), wide=True
        )
        churn_day = planted.churn_day[start:stop]
        bundle_codes = planted.bundle[start:stop]
        _write_csv(
            _truth_frame(card_ids, codes, chunk_outliers, churn_day, bundle_codes, days),
            truth_file,
            first,
            None,
        )

        # No timestamps are written, but churners still buy fewer baskets: candidate
        # baskets get a day (mid-day) and are thinned like the long shape's orders.
        basket_counts = _draw_order_counts(rng, codes, days, extremes.order_rate_factor)
        basket_customer = np.repeat(np.arange(codes.size), basket_counts)
        basket_day = rng.integers(0, days, size=basket_customer.size) + 0.5
        basket_customer = basket_customer[
            _survives_churn(rng, basket_customer, basket_day, churn_day)
        ]
        basket_codes = codes[basket_customer]
        payment = _WIDE_PAYMENT_CODE[
            _draw_categorical(rng, _TABLES.payment_cumulative, basket_codes)
        ]
        baskets = _draw_baskets(
            rng,
            basket_codes,
            bundle_codes[basket_customer],
            _TABLES.wide_log_weights,
            _TABLES.wide_max_lines,
        )
        flags = np.zeros((basket_codes.size, len(WIDE_CATEGORIES)), dtype=bool)
        flags[baskets.line_order, baskets.line_category] = True

        # Each flagged category adds a persona-scaled, noisy amount.
        line_value = (
            _WIDE_VALUE_PER_CATEGORY
            * _TABLES.wide_value_factor[basket_codes[baskets.line_order]]
            * rng.lognormal(mean=0.0, sigma=0.3, size=baskets.line_order.size)
        )
        value = _WIDE_VALUE_BASE + np.bincount(
            baskets.line_order, weights=line_value, minlength=basket_codes.size
        )
        value = np.clip(value, _WIDE_VALUE_MIN, _WIDE_VALUE_MAX)
        # Bulk buyers and big spenders go far beyond the usual value range.
        extreme = (extremes.bulk_buyer | extremes.big_spender)[basket_customer]
        value *= _draw_factors(rng, extreme, _WIDE_EXTREME_VALUE_FACTOR)
        value = np.round(value, 4)

        columns: dict[str, pl.Series | np.ndarray] = {
            "cardid": card_ids[basket_customer],
            "value": value,
            "pmethod": _labels(PAYMENT_METHODS, payment),
            "sex": np.where(profiles.female[basket_customer], "F", "M"),
            "homeown": np.where(profiles.home_owner[basket_customer], "YES", "NO"),
            "income": profiles.income[basket_customer],
            "age": profiles.age[basket_customer],
        }
        for index, name in enumerate(WIDE_CATEGORIES):
            columns[name] = np.where(flags[:, index], "T", "F")
        frame = pl.DataFrame(columns)
        _write_csv(frame, baskets_file, first, 4)
        baskets_written += frame.height
    return baskets_written

