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

Churn and co-purchase are planted too, so the predictive layer (the ``assets/predict`` package) can be measured:

* **Churn.** Every customer (but the planted outliers) has a latent churn day drawn from a constant hazard (a
  persona's monthly churn rate times a per-customer factor). Over the ``_CHURN_RAMP_DAYS`` before it the customer's
  order rate declines linearly (an observable early warning), and after it they never buy again. ``truth.csv`` holds
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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from pipelines.demo.campaigns import PlantedCampaign, plant_campaigns
from pipelines.demo.chunk_draws import _plant_churn_and_bundles
from pipelines.demo.global_draws import (
    _assign_personas,
    _draw_price_table,
    _plant_outliers,
    _validate_arguments,
)
from pipelines.demo.personas import PERSONA_KEYS
from pipelines.demo.vocabulary import (
    BUNDLE_KEYS,
    BUNDLES,
    CATEGORIES,
    CHANNELS,
    CITIES,
    LONG_CUSTOMER_COLUMNS,
    LONG_ORDER_COLUMNS,
    OUTLIER_KINDS,
    PAYMENT_METHODS,
    SHAPES,
    WIDE_CATEGORIES,
    WIDE_COLUMNS,
)
from pipelines.demo.writers import (
    _write_long,
    _write_wide,
)

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
    campaigns: Sequence[PlantedCampaign] = (),
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
            (``bulk_buyer``), income by 15-40 (at least three times the richest persona's ceiling) and unit
            prices by 20-40
            (``big_spender``) or the order rate by 12-25 (``hyper_frequent``).
            In the wide shape, ``bulk_buyer`` and ``big_spender`` basket
            values are multiplied by 20-40 beyond the usual 10-100 range.
        campaigns: Campaigns with a known uplift to plant (long shape only;
            see :mod:`pipelines.demo.campaigns`): extra orders appended to
            ``order_lines.csv``, ``campaign_assignments.csv`` and
            ``campaigns_truth.csv`` written. None by default, which leaves
            every file as without this argument.

    Returns:
        The written paths and counts; see :class:`GeneratedData`.

    Raises:
        ValueError: If ``customers`` or ``days`` is below 1 (or not an
            integer), ``seed`` is negative, ``shape`` is unknown,
            ``start_date`` is not a date or ``outlier_share`` is not a
            number in ``[0, 0.2]``.
    """
    _validate_arguments(customers, days, seed, shape, start_date, outlier_share)
    if campaigns and shape != "long":
        raise ValueError("campaigns can only be planted in the long shape (baskets carry no order date)")
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
        if campaigns:
            planted_truth = plant_campaigns(out_dir, campaigns, seed, start_date)
            lines_written += int(planted_truth["extra_orders"].sum())
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
