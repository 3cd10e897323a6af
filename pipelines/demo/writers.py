"""Chunk-by-chunk generation and CSV writing of the long and wide shapes and of ``truth.csv``."""

from __future__ import annotations

from datetime import date
from typing import BinaryIO

import numpy as np
import polars as pl

from pipelines.demo.chunk_draws import (
    _draw_baskets,
    _draw_categorical,
    _draw_extremes,
    _draw_factors,
    _draw_order_counts,
    _draw_order_seconds,
    _draw_preferred_weekdays,
    _draw_profiles,
    _Planted,
    _survives_churn,
)
from pipelines.demo.global_draws import (
    _chunk_rng,
    _chunks,
)
from pipelines.demo.personas import (
    _TABLES,
    PERSONA_KEYS,
)
from pipelines.demo.vocabulary import (
    _BULK_QUANTITY_FACTOR,
    _EPOCH_ORDINAL,
    _OUTLIER_LABELS,
    _PROMO_FACTOR,
    _PROMO_SHARE,
    _SECONDS_PER_DAY,
    _WIDE_EXTREME_VALUE_FACTOR,
    _WIDE_PAYMENT_CODE,
    _WIDE_VALUE_BASE,
    _WIDE_VALUE_MAX,
    _WIDE_VALUE_MIN,
    _WIDE_VALUE_PER_CATEGORY,
    BUNDLE_KEYS,
    CATEGORIES,
    CHANNELS,
    CITIES,
    PAYMENT_METHODS,
    WIDE_CATEGORIES,
)

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
