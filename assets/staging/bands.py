"""Profile values written as text bands or with units, read as numbers: "25-34" -> 29.5, "Under 15K" -> 11250,
"1万-2万" -> 15000, "50岁以上" -> 55. Staging reads only the distinct texts that SQL does not cast to a number
(assets/staging/typed.py, band_parameters), so this runs on a handful of values per load, never once per row.

What `read_band(text, field)` reads, for field "age" or "income":

- A number. Age may carry 岁, 周岁, yrs or years ("45岁"). Income may carry a currency sign (¥ $ £ €) or 元,
  thousands separators ("$35,000", "35000元") and a unit: K = 1,000, M = 1,000,000, 千 = 1,000, 万 = 10,000
  ("35K", "1.5万", "3千"). Full-width characters read as their ASCII forms ("２５" is 25).
- A closed range "a-b" (also "a–b", "a—b", "a~b", "a至b", "a到b", "a to b"): its midpoint. A unit written on one
  side only belongs to both ("35-49K" is 35K-49K; "1万-2万" is 10,000-20,000), unless that would put the low end
  above the high end ("800-1K" is 800-1,000). A range whose low end is above its high end is not read.
- An open-ended band, upper-open ("X+", "X以上", "X及以上", "over X", "above X", "more than X", ">X", ">=X", "≥X",
  "X or more", "X and over") or lower-open ("under X", "below X", "less than X", "<X", "<=X", "≤X", "X以下",
  "X以内", "X及以下", "X or less", "X and under"), by ONE rule for every shop, so a band means the same everywhere:

      age:    upper-open X -> X + 5        lower-open X -> X - 5, not below 0
      income: upper-open X -> X * 1.25     lower-open X -> X * 0.75

  Age bands are usually ten years wide ("55-64", "65+"), so X + 5 is the middle of a band as wide as its
  neighbours; income bands widen as they rise ("100K-149K", "150K-249K", "250K+"), so the step is proportional.

A shop's own tokens (`values.bands.<field>` in the config, compared trimmed and upper-cased) are looked up first and
win over every rule above. They name bands, not codes: staging reads a plain number ("45", "¥52,300") in SQL and
never asks for it here, so a token cannot renumber one. Anything else ("abc", "25-", "--", a number too large for
a float) reads as None, and staging quarantines its row.
"""

import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Literal

ProfileField = Literal["age", "income"]

# Digits with comma thousands separators ("35,000") or without, and an optional fraction.
_NUMBER = r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
# Each amount pattern has two groups: the number and the unit (None when absent).
_AMOUNT = {
    "age": _NUMBER + r"\s*(周岁|岁|years?|yrs?)?",
    "income": r"(?:[¥$£€]\s*)?" + _NUMBER + r"\s*([km千万])?\s*元?",
}
# Units that scale a number; an age unit (岁, years) scales nothing.
_MULTIPLIERS = {"k": 1e3, "m": 1e6, "千": 1e3, "万": 1e4}

_RANGE_SEPARATOR = r"(?:-|–|—|~|至|到|to)"
_UPPER_OPEN_BEFORE = r"(?:over|above|more\s+than|greater\s+than|>=?|≥|超过|大于)"
_UPPER_OPEN_AFTER = r"(?:\+|及以上|以上|or\s+(?:more|above|over|older)|and\s+(?:above|over|older))"
_LOWER_OPEN_BEFORE = r"(?:under|below|less\s+than|<=?|≤|小于|低于|不到|不足)"
_LOWER_OPEN_AFTER = r"(?:及以下|以下|以内|or\s+(?:less|below|under|younger)|and\s+(?:below|under|younger))"

# The open-ended band rule (module docstring): the step from X for age, the fraction of X for income.
AGE_OPEN_STEP = 5.0
INCOME_OPEN_FRACTION = 0.25

_FLAGS = re.IGNORECASE | re.ASCII  # \d and \s mean ASCII only; full-width forms are folded first (NFKC)


def _patterns(amount: str) -> dict[str, list[re.Pattern]]:
    return {
        "plain": [re.compile(rf"([-+])?\s*{amount}", _FLAGS)],
        "range": [re.compile(rf"{amount}\s*{_RANGE_SEPARATOR}\s*{amount}", _FLAGS)],
        "upper_open": [re.compile(rf"{_UPPER_OPEN_BEFORE}\s*{amount}", _FLAGS),
                       re.compile(rf"{amount}\s*{_UPPER_OPEN_AFTER}", _FLAGS)],
        "lower_open": [re.compile(rf"{_LOWER_OPEN_BEFORE}\s*{amount}", _FLAGS),
                       re.compile(rf"{amount}\s*{_LOWER_OPEN_AFTER}", _FLAGS)],
    }


_PATTERNS = {field: _patterns(amount) for field, amount in _AMOUNT.items()}


def _scaled(number: str, unit: str | None) -> float:
    return float(number.replace(",", "")) * _MULTIPLIERS.get((unit or "").lower(), 1.0)


def _midpoint(low_number: str, low_unit: str | None, high_number: str, high_unit: str | None) -> float | None:
    low, high = _scaled(low_number, low_unit), _scaled(high_number, high_unit)
    # A unit on one side only belongs to both ends, unless borrowing it would reverse the range ("800-1K").
    if low_unit is None and high_unit is not None and _scaled(low_number, high_unit) <= high:
        low = _scaled(low_number, high_unit)
    if high_unit is None and low_unit is not None and _scaled(high_number, low_unit) >= low:
        high = _scaled(high_number, low_unit)
    if low > high:
        return None
    return (low + high) / 2


def _upper_open(field: ProfileField, bound: float) -> float:
    return bound + AGE_OPEN_STEP if field == "age" else bound * (1 + INCOME_OPEN_FRACTION)


def _lower_open(field: ProfileField, bound: float) -> float:
    return max(bound - AGE_OPEN_STEP, 0.0) if field == "age" else bound * (1 - INCOME_OPEN_FRACTION)


def _shop_number(text: str, shop_tokens: Mapping[str, float] | None) -> float | None:
    token = text.strip().upper()
    for shop_token, number in (shop_tokens or {}).items():
        if shop_token.strip().upper() == token:
            return float(number)
    return None


def _built_in_number(text: str, field: ProfileField) -> float | None:
    patterns = _PATTERNS[field]
    if match := next((m for p in patterns["plain"] if (m := p.fullmatch(text))), None):
        sign, number, unit = match.groups()
        return -_scaled(number, unit) if sign == "-" else _scaled(number, unit)
    if match := next((m for p in patterns["range"] if (m := p.fullmatch(text))), None):
        return _midpoint(*match.groups())
    for kind, open_rule in (("upper_open", _upper_open), ("lower_open", _lower_open)):
        if match := next((m for p in patterns[kind] if (m := p.fullmatch(text))), None):
            return open_rule(field, _scaled(*match.groups()))
    return None


def read_band(text: str | None, field: ProfileField, shop_tokens: Mapping[str, float] | None = None) -> float | None:
    """The number one age or income text stands for (see the module docstring), in the units the export uses (a
    monthly income stays monthly: staging scales it); None when the text reads as nothing."""
    if text is None or not text.strip():
        return None
    number = _shop_number(text, shop_tokens)
    if number is None:
        number = _built_in_number(unicodedata.normalize("NFKC", text).strip(), field)
    return number if number is not None and math.isfinite(number) else None
