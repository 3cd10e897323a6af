"""`persona init` and `persona check`: how money is written in a file's texts, read as staging reads it
(assets/staging/typed.py, money_number): with a decimal point or, under values.decimal_comma, a decimal comma; in
one currency or several."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from assets.staging.typed import COMMA_CURRENCY_SIGNS, CURRENCY_SIGNS, DECORATED_MONEY, DECORATED_MONEY_COMMA

# A number written as money, by the pattern staging reads amounts with (assets/staging/typed.py, money_number).
MONEY = re.compile(DECORATED_MONEY)
MONEY_COMMA = re.compile(DECORATED_MONEY_COMMA)  # values.decimal_comma: 12,50, 1.234,56, R$ 12.990
# The digits of a number whose every point separates a group of three (12.990, 1.234.567): thousands, or a currency
# of three decimals.
THOUSANDS_POINTS = re.compile(r"\d{1,3}(\.\d{3})+")
DECIMAL_COMMA_MIN_POINTS = 5  # texts with a point that must all look like thousands before init says so
DECIMAL_COMMA_SHARE = 0.98  # of a column's money texts, that must read with a decimal comma
# A text with a decimal point before one or two digits (3.00, 12.5): money written with a point, whatever else.
POINT_DECIMALS = re.compile(r"\d\.\d{1,2}(?!\d)")
# The currency a money text names, before the number (the signs staging reads) or after it (NFKC has made ￥ ¥).
CURRENCY_SIGN = re.compile(rf"^-?\s*(?:{CURRENCY_SIGNS}|{COMMA_CURRENCY_SIGNS})|(元|€)$")


def reads_with_a_point(value: str) -> bool:
    """Whether staging reads the text as a number with its defaults: a plain number, or money (¥1,234.50, 411.75元,
    full-width ￥８８．５０ as its ASCII form)."""
    text = unicodedata.normalize("NFKC", value).strip()
    try:
        float(text)
        return True
    except ValueError:
        return MONEY.fullmatch(text) is not None


def reads_as_number(value: str) -> bool:
    """Whether staging would read the text as a quantity or an amount, with a decimal point or (values.decimal_comma)
    a decimal comma (R$ 1.234,56)."""
    return reads_with_a_point(value) or MONEY_COMMA.fullmatch(unicodedata.normalize("NFKC", value).strip()) is not None


# Signs of one currency written two ways (¥12 and 12元; $ and US$).
SAME_CURRENCY = {"元": "¥", "US$": "$"}


def currencies(values: list[str]) -> Counter:
    """How many of the money texts name each currency sign ($ 12.50, £8.50, 12元); a text without one counts none."""
    signs = (CURRENCY_SIGN.search(unicodedata.normalize("NFKC", v).strip()) for v in values if v)
    return Counter(SAME_CURRENCY.get(sign, sign) for sign in
                   (next(g for g in found.groups() if g) for found in signs if found))


def mixed_currencies(values: list[str]) -> str | None:
    """The currencies of a money column that names more than one ('$ on 1,700 of the sampled values, £ on 300'),
    or None: a run adds them up as one number (a trial's eBay report summed dollars and pounds into its revenue)."""
    counts = currencies(values)
    if len(counts) < 2:
        return None
    return ", ".join(f"{sign} on {n:,}" for sign, n in counts.most_common()) + " of the sampled values"


def decimal_comma_reading(values: list[str]) -> tuple[str, bool] | None:
    """How a money column's texts show a decimal comma: (an example, certain). Certain when a text reads only with one
    (12,50, 1.234,56, R$ 1.234,56); not certain when every text reads both ways and each of the (at least
    DECIMAL_COMMA_MIN_POINTS) texts with a point has groups of three digits after it (a Chilean export's $ 12.990:
    twelve thousand, or a currency of three decimals); None when the texts read with a decimal point, or not as
    money."""
    texts = [unicodedata.normalize("NFKC", v).strip() for v in values if v and v.strip()]
    # A few stray texts ("N/A", "-") among them say nothing either way.
    comma = [text for text in texts if MONEY_COMMA.fullmatch(text)]
    if not texts or len(comma) < DECIMAL_COMMA_SHARE * len(texts):
        return None
    texts = comma
    comma_only = [text for text in texts if not reads_with_a_point(text)]
    if comma_only:
        return comma_only[0], True
    pointed = [text for text in texts if "." in text]
    if len(pointed) >= DECIMAL_COMMA_MIN_POINTS and all(
            THOUSANDS_POINTS.fullmatch(re.sub(r"[^0-9.]", "", text)) for text in pointed):
        return pointed[0], False
    return None
