"""Band and unit-bearing profile values read as numbers (issue 18, point 5): assets/staging/bands.py on every form
it documents, the open-ended rule, junk, and the shop's own tokens."""

import pytest

from assets.staging.bands import read_band


@pytest.mark.parametrize(("text", "field", "number"), [
    # Plain numbers, with the suffixes and decorations exports add.
    ("45", "age", 45.0),
    (" 45 ", "age", 45.0),
    ("45岁", "age", 45.0),
    ("45 周岁", "age", 45.0),
    ("45 yrs", "age", 45.0),
    ("45 years", "age", 45.0),
    ("４５", "age", 45.0),  # full-width digits (a Chinese input method)
    ("-5", "age", -5.0),  # read, so that quality.age_range names it
    ("52300", "income", 52300.0),
    ("52,300", "income", 52300.0),
    ("1,234,567.50", "income", 1234567.5),
    ("¥52,300", "income", 52300.0),
    ("￥52,300", "income", 52300.0),  # the full-width yen sign
    ("$ 52,300", "income", 52300.0),
    ("£40000", "income", 40000.0),
    ("€40000", "income", 40000.0),
    ("52300元", "income", 52300.0),
    ("35K", "income", 35000.0),
    ("35k", "income", 35000.0),
    ("$35K", "income", 35000.0),
    ("1.2M", "income", 1200000.0),
    ("3千", "income", 3000.0),
    ("1.5万", "income", 15000.0),
    ("1.5万元", "income", 15000.0),
    ("¥1.5万", "income", 15000.0),
])
def test_plain_numbers_with_units_suffixes_and_currency_signs(text, field, number):
    assert read_band(text, field) == number


@pytest.mark.parametrize(("text", "field", "number"), [
    ("25-34", "age", 29.5),
    ("25 - 34", "age", 29.5),
    ("25–34", "age", 29.5),  # en dash
    ("25—34", "age", 29.5),  # em dash
    ("25~34", "age", 29.5),
    ("25～34", "age", 29.5),  # full-width tilde
    ("25至34", "age", 29.5),
    ("25到34", "age", 29.5),
    ("25 to 34", "age", 29.5),
    ("25 TO 34", "age", 29.5),
    ("18-24岁", "age", 21.0),
    ("20至30周岁", "age", 25.0),
    ("30-30", "age", 30.0),
    # A unit on one side belongs to both ends ...
    ("35-49K", "income", 42000.0),
    ("35K-49", "income", 42000.0),
    ("35K-49K", "income", 42000.0),
    ("1万-2万", "income", 15000.0),
    ("1-2万", "income", 15000.0),
    ("3千-5千", "income", 4000.0),
    ("$35,000 - $49,999", "income", 42499.5),
    ("5000元-8000元", "income", 6500.0),
    # ... unless borrowing it would put the low end above the high end.
    ("800-1K", "income", 900.0),
    ("5000-1万", "income", 7500.0),
])
def test_closed_ranges_read_as_their_midpoint(text, field, number):
    assert read_band(text, field) == number


@pytest.mark.parametrize(("text", "field", "number"), [
    # Upper-open: age X + 5, income X * 1.25.
    ("65+", "age", 70.0),
    ("65 +", "age", 70.0),
    ("50岁以上", "age", 55.0),
    ("50及以上", "age", 55.0),
    ("over 65", "age", 70.0),
    ("Over 65", "age", 70.0),
    ("above 65", "age", 70.0),
    ("more than 65", "age", 70.0),
    (">65", "age", 70.0),
    (">= 65", "age", 70.0),
    ("≥65", "age", 70.0),
    ("＞65", "age", 70.0),  # full-width
    ("65 or more", "age", 70.0),
    ("65 and over", "age", 70.0),
    ("250K+", "income", 312500.0),
    ("10万以上", "income", 125000.0),
    ("10万及以上", "income", 125000.0),
    ("over $100,000", "income", 125000.0),
    ("100000 or more", "income", 125000.0),
    # Lower-open: age X - 5 (not below 0), income X * 0.75.
    ("under 18", "age", 13.0),
    ("Under 3", "age", 0.0),
    ("below 18", "age", 13.0),
    ("less than 18", "age", 13.0),
    ("<18", "age", 13.0),
    ("<=18", "age", 13.0),
    ("≤18", "age", 13.0),
    ("18岁以下", "age", 13.0),
    ("18以内", "age", 13.0),
    ("18及以下", "age", 13.0),
    ("18 or less", "age", 13.0),
    ("Under 15K", "income", 11250.0),
    ("5000以下", "income", 3750.0),
    ("5000元以下", "income", 3750.0),
    ("3000以内", "income", 2250.0),
    ("less than $20,000", "income", 15000.0),
])
def test_open_ended_bands_follow_the_one_documented_rule(text, field, number):
    assert read_band(text, field) == number


@pytest.mark.parametrize("text", [
    None, "", "   ", "abc", "25-", "--", "-", "+", "25--34", "25-34-44", "1e400", "1" * 400, "34-25",
    "under", "65++", "N/A", "1,5", "12,34", "1.2.3", "25 - 34 - ", "约30",
])
@pytest.mark.parametrize("field", ["age", "income"])
def test_junk_reads_as_nothing(text, field):
    assert read_band(text, field) is None


@pytest.mark.parametrize(("text", "field"), [
    ("35K", "age"),  # units and currency belong to income
    ("¥45", "age"),
    ("1万-2万", "age"),
    ("45岁", "income"),  # and age suffixes to age
])
def test_each_field_reads_only_its_own_units(text, field):
    assert read_band(text, field) is None


def test_the_shops_tokens_win_over_the_built_in_rules_and_compare_trimmed_and_upper_cased():
    tokens = {"65+": 72, " Senior ": 70, "青年": 25}
    assert read_band("65+", "age", tokens) == 72.0  # the built-in rule would say 70
    assert read_band("senior", "age", tokens) == 70.0
    assert read_band("  SENIOR", "age", tokens) == 70.0
    assert read_band("青年", "age", tokens) == 25.0
    assert read_band("25-34", "age", tokens) == 29.5  # other texts still follow the built-in rules
    assert read_band("中年", "age", tokens) is None
    assert read_band("HIGH", "income", {"high": 200000}) == 200000.0
