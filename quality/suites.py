"""Expectation suites as code: one per raw and staging table, built from the source config's thresholds.

Severity `critical` blocks publishing when the expectation fails; `warning` is reported and stored only.
Row rules in staging quarantine single bad rows; these suites judge whole tables (is the export healthy, do the
staged tables keep their contract), so a broken export stops the run instead of yielding half a segmentation.
"""

from datetime import UTC, datetime, timedelta

from assets.staging.fill_down import filled_rows
from pipelines.core.config import (
    CUSTOMER_FIELDS,
    LONG_ORDER_FIELDS,
    PRODUCT_FIELDS,
    WIDE_ORDER_FIELDS,
    SourceConfig,
)
from pipelines.core.partitions import DayWindow
from quality.validation import CRITICAL, WARNING, SuiteSpec, expectation, great_expectations


class _Expectations:
    """gx.expectations, looked up when a suite is built: `E.ExpectColumnValuesToNotBeNull` reads as GX's own name,
    without importing Great Expectations when the definitions load (quality/validation.py says why)."""

    def __getattr__(self, name: str):
        return getattr(great_expectations().expectations, name)


E = _Expectations()
# Python's blanks (str.isspace), spelled out as characters: `\s` means the same to Python, but sends pandas to match
# every value in Python rather than in Arrow (0.52 against 0.09 s per 1.8M values). None needs escaping in a class.
_BLANK = "[" + "".join(c for c in map(chr, range(0x3001)) if c.isspace()) + "]"
# A number: ASCII digits (not `\d`, which also takes a full-width ５ that staging's cast rejects and quarantines),
# blanks around it.
NUMBER_PATTERN = rf"^{_BLANK}*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?{_BLANK}*$"
RAW_META = ["_source_row", "_source_file", "_partition_date"]
ROW_KEY = ["_source_file", "_source_row"]


def rows_of(table: str, window: DayWindow | None) -> str:
    """The rows a suite validates: a daily run checks the days it loaded (the other days were checked when they
    were loaded, and loading them again would check them again); a snapshot run checks the whole table."""
    if window is None:
        return table
    return f"(SELECT * FROM {table} WHERE _partition_date BETWEEN $window_first AND $window_last)"


def window_params(window: DayWindow | None) -> dict:
    return {} if window is None else {"window_first": window.first, "window_last": window.last}


def raw_orders_suite(config: SourceConfig, window: DayWindow | None = None) -> SuiteSpec:
    fields = LONG_ORDER_FIELDS if config.shape == "long" else WIDE_ORDER_FIELDS
    # The keys every row must carry: the fields each file must hold (an export may declare order_id or category
    # absent, or take the category from a product table or rules; see SourceConfig.order_required).
    keys = [key for key in ("order_id", "customer_id", "order_ts", "category", "amount")
            if key in config.order_required()]
    share = config.quality.min_key_share
    checked = "quantity" if config.shape == "long" else "amount"
    return SuiteSpec(
        name="raw_orders",
        table="raw.orders",
        # An export writing order-level fields on an order's first line only (orders.fill_down) carries its keys
        # once they are filled, as staging reads them.
        frame_sql=f"SELECT {', '.join([*RAW_META, *dict.fromkeys([*keys, checked])])} "
                  f"FROM {filled_rows(rows_of('raw.orders', window), config)}",
        params=window_params(window),
        days=window,
        partition_key=ROW_KEY,
        schema_expectations=[
            expectation(E.ExpectTableColumnsToMatchSet, CRITICAL,
                        column_set=[*RAW_META, *fields, *config.orders.category_columns], exact_match=True),
        ],
        expectations=[
            expectation(E.ExpectTableRowCountToBeBetween, CRITICAL, min_value=1),
            *[expectation(E.ExpectColumnValuesToNotBeNull, CRITICAL, column=key, mostly=share) for key in keys],
            expectation(E.ExpectColumnValuesToMatchRegex, CRITICAL, column="amount", regex=NUMBER_PATTERN,
                        mostly=share)
            if config.shape == "wide" else
            expectation(E.ExpectColumnValuesToMatchRegex, WARNING, column="quantity", regex=NUMBER_PATTERN,
                        mostly=share),
        ],
    )


def raw_customers_suite(config: SourceConfig) -> SuiteSpec:
    share = config.quality.min_key_share
    given = config.customers is not None
    return SuiteSpec(
        name="raw_customers",
        table="raw.customers",
        frame_sql="SELECT _source_file, _source_row, customer_id, age, income FROM raw.customers",
        partition_key=ROW_KEY,
        schema_expectations=[
            expectation(E.ExpectTableColumnsToMatchSet, CRITICAL, column_set=[*RAW_META, *CUSTOMER_FIELDS],
                        exact_match=True),
        ],
        expectations=[
            # A configured customer file must not be empty; without one, the table is empty by design.
            expectation(E.ExpectTableRowCountToBeBetween, CRITICAL, min_value=1 if given else 0,
                        max_value=None if given else 0),
            expectation(E.ExpectColumnValuesToNotBeNull, CRITICAL, column="customer_id", mostly=share),
            # A number or a band ("25-34", "1万-2万", "65+"): staging reads both; text without a digit is
            # quarantined there, and a file mostly made of it is worth a warning here.
            expectation(E.ExpectColumnValuesToMatchRegex, WARNING, column="age", regex=r"\d", mostly=share),
            expectation(E.ExpectColumnValuesToMatchRegex, WARNING, column="income", regex=r"\d", mostly=share),
        ],
    )


def profile_fields_provided(con, config: SourceConfig) -> tuple[str, ...]:
    """The profile fields (age, income) the export provides: mapped to a column by name in the config (a mapped
    column that comes out all blank is what the coverage warning is for), or held by some staged customer (the
    export's own `age` column, read without a mapping). Any other is not in the export."""
    source = config.customers if config.shape == "long" else config.orders
    mapped = {field for field in ("age", "income") if source is not None and source.columns.get(field)}
    held = con.execute("SELECT count(age) > 0, count(income) > 0 FROM staging.customers").fetchone()
    return tuple(field for field, any_value in zip(("age", "income"), held, strict=True)
                 if any_value or field in mapped)


def raw_products_suite(config: SourceConfig) -> SuiteSpec:
    share = config.quality.min_key_share
    given = config.products is not None
    return SuiteSpec(
        name="raw_products",
        table="raw.products",
        frame_sql="SELECT _source_file, _source_row, sku, category, unit_price FROM raw.products",
        partition_key=ROW_KEY,
        schema_expectations=[
            expectation(E.ExpectTableColumnsToMatchSet, CRITICAL, column_set=[*RAW_META, *PRODUCT_FIELDS],
                        exact_match=True),
        ],
        expectations=[
            # A configured product table must not be empty; without one, the table is empty by design.
            expectation(E.ExpectTableRowCountToBeBetween, CRITICAL, min_value=1 if given else 0,
                        max_value=None if given else 0),
            expectation(E.ExpectColumnValuesToNotBeNull, CRITICAL, column="sku", mostly=share),
            expectation(E.ExpectColumnValuesToNotBeNull, CRITICAL, column="category", mostly=share),
            expectation(E.ExpectColumnValuesToMatchRegex, WARNING, column="unit_price", regex=NUMBER_PATTERN,
                        mostly=share),
        ],
    )


def staging_products_suite(config: SourceConfig) -> SuiteSpec:
    return SuiteSpec(
        name="staging_products",
        table="staging.products",
        frame_sql="SELECT sku, category, unit_price FROM staging.products",
        partition_key=["sku"],
        expectations=[
            expectation(E.ExpectTableRowCountToBeBetween, CRITICAL, min_value=1 if config.products else 0),
            expectation(E.ExpectColumnValuesToNotBeNull, CRITICAL, column="sku"),
            expectation(E.ExpectColumnValuesToBeUnique, CRITICAL, column="sku"),
            expectation(E.ExpectColumnValuesToNotBeNull, CRITICAL, column="category"),
            expectation(E.ExpectColumnValuesToBeBetween, CRITICAL, column="unit_price", min_value=0),
        ],
    )


def staging_orders_suite(config: SourceConfig, checked_at: datetime, window: DayWindow | None = None) -> SuiteSpec:
    future_limit = checked_at + timedelta(hours=config.quality.future_tolerance_hours)
    return SuiteSpec(
        name="staging_orders",
        table="staging.orders",
        # Timestamps travel as epoch seconds: GX compares datetime columns value by value in Python (about 3 s per
        # million rows here), numbers vectorised.
        frame_sql="SELECT order_id, customer_id, epoch(order_ts) AS order_ts_epoch, payment_method, order_amount, "
                  f"n_lines FROM {rows_of('staging.orders', window)}",
        params=window_params(window),
        days=window,
        partition_key=["order_id"],
        expectations=[
            expectation(E.ExpectTableRowCountToBeBetween, CRITICAL, min_value=1),
            expectation(E.ExpectColumnValuesToNotBeNull, CRITICAL, column="order_id"),
            expectation(E.ExpectColumnValuesToBeUnique, CRITICAL, column="order_id"),
            expectation(E.ExpectColumnValuesToNotBeNull, CRITICAL, column="customer_id"),
            expectation(E.ExpectColumnValuesToBeBetween, CRITICAL, column="order_ts_epoch",
                        max_value=future_limit.replace(tzinfo=UTC).timestamp()),
            expectation(E.ExpectColumnValuesToBeInSet, CRITICAL, column="payment_method",
                        value_set=[code.upper() for code in config.values.payment_methods]),
            expectation(E.ExpectColumnValuesToBeBetween, CRITICAL, column="order_amount", min_value=0),
            expectation(E.ExpectColumnValuesToBeInTypeList, CRITICAL, column="order_amount",
                        type_list=["float64", "Float64", "double"]),
        ],
    )


def staging_order_lines_suite(config: SourceConfig, window: DayWindow | None = None) -> SuiteSpec:
    quality = config.quality
    if config.shape == "long":
        # A long-shape line is one source row (a declared line key only decides which rows staging keeps). A 64-bit
        # hash of the path stands for the file: GX gets two integers per row instead of the path's text, and a
        # false alarm would need two paths with one hash and the same row number.
        identity = ["source_file_hash", "_source_row"]
        identity_sql = "hash(_source_file) AS source_file_hash, _source_row"
    else:
        # A basket yields one line per category it flags.
        identity = ["order_id", "category", "sku"]
        identity_sql = "COALESCE(sku, '') AS sku"
    return SuiteSpec(
        name="staging_order_lines",
        table="staging.order_lines",
        frame_sql=f"SELECT order_id, category, {identity_sql}, quantity, amount "
                  f"FROM {rows_of('staging.order_lines', window)}",
        params=window_params(window),
        days=window,
        partition_key=["order_id"],
        expectations=[
            expectation(E.ExpectCompoundColumnsToBeUnique, CRITICAL, column_list=identity),
            # An export declared without categories has none (orders.columns.category: null).
            *([expectation(E.ExpectColumnValuesToNotBeNull, CRITICAL, column="category")]
              if config.has_categories else []),
            expectation(E.ExpectColumnValuesToBeBetween, CRITICAL, column="quantity", min_value=0,
                        max_value=quality.max_quantity, strict_min=True),
            expectation(E.ExpectColumnValuesToBeBetween, CRITICAL, column="amount", min_value=0,
                        max_value=quality.max_line_amount),
        ],
    )


def staging_customers_suite(config: SourceConfig, provided: tuple[str, ...] = ("age", "income")) -> SuiteSpec:
    """`provided`: the profile fields the customer rows carry at all (profile_fields_provided). A customer file
    without an age or income column (an Etsy or Shopify export) is no file with too many missing values: a trial's
    run warned that 100% of its customers had no age and no income."""
    quality = config.quality
    has_profiles = config.customers is not None or config.shape == "wide"
    profile_expectations = [
        # Missing values are imputed for the model (see README, "Missing values"); too many is worth a warning.
        expectation(E.ExpectColumnValuesToNotBeNull, WARNING, column=field, mostly=quality.min_profile_coverage)
        for field in ("age", "income") if field in provided
    ]
    if config.customers is not None:
        # Referential integrity: customers who ordered should be in the customer file.
        profile_expectations.append(expectation(
            E.ExpectColumnValuesToBeInSet, WARNING, column="in_customer_file", value_set=[True],
            mostly=quality.min_profile_coverage))
    return SuiteSpec(
        name="staging_customers",
        table="staging.customers",
        frame_sql="SELECT customer_id, age, income, gender, home_owner, "
                  "_source_file IS NOT NULL AS in_customer_file FROM staging.customers",
        partition_key=["customer_id"],
        expectations=[
            expectation(E.ExpectTableRowCountToBeBetween, CRITICAL, min_value=1),
            expectation(E.ExpectColumnValuesToNotBeNull, CRITICAL, column="customer_id"),
            expectation(E.ExpectColumnValuesToBeUnique, CRITICAL, column="customer_id"),
            expectation(E.ExpectColumnValuesToBeBetween, CRITICAL, column="age",
                        min_value=quality.age_range[0], max_value=quality.age_range[1]),
            expectation(E.ExpectColumnValuesToBeBetween, CRITICAL, column="income",
                        min_value=quality.income_range[0], max_value=quality.income_range[1]),
            expectation(E.ExpectColumnValuesToBeInSet, CRITICAL, column="gender", value_set=["M", "F"]),
            *(profile_expectations if has_profiles else []),
        ],
    )
