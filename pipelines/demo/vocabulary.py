"""Vocabulary and tuning constants of the demo data: categories, columns, outlier and churn knobs."""

from __future__ import annotations

from datetime import date

import numpy as np

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
