"""Argument validation, the once-per-run draws (prices, personas, outliers) and the chunk streams."""

from __future__ import annotations

from datetime import date

import numpy as np

from pipelines.demo.personas import (
    _PERSONAS,
    _TABLES,
)
from pipelines.demo.vocabulary import (
    _BASE_UNIT_PRICE_CNY,
    _MAX_OUTLIER_SHARE,
    _MIN_CUSTOMERS_FOR_ONE_OUTLIER,
    _OUTLIER_STREAM_KEY,
    _SKUS_PER_CATEGORY,
    CATEGORIES,
    OUTLIER_KINDS,
    SHAPES,
)

# --------------------------------------------------------------------------
# Validation and global draws
# --------------------------------------------------------------------------

# Customers generated (and written) per chunk: large enough for numpy/polars
# to be efficient, small enough that ~550k order lines per chunk stay cheap.
# Each chunk has its own random stream, so this value is part of the output
# contract: changing it changes the generated files for a given seed.
_CHUNK_CUSTOMERS = 50_000


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
