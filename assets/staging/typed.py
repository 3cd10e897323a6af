"""Staging typing: raw text rows typed into the tables TYPED_LINES (long shape), typed_orders (wide shape) and
typed_customers, each row carrying the rules it fails (each failing column with its first failing rule)."""

import re

import duckdb

from assets.staging.bands import read_band
from assets.staging.fill_down import filled_rows
from assets.staging.keys import id_text, id_variant
from assets.staging.rules import (
    CANCELLED_AT_REASON,
    CANCELLED_REASON_OPENING,
    FREE_LINE_REASON,
    FUTURE_RULE,
    PAYMENT_RULE,
    PROFILE_RULES,
    REFUNDED_LINE_OPENING,
    RETURNS_KEPT_OUT,
    Rule,
    customer_id_rule,
    excel_serial,
    numeric_rules,
    order_ts_gap,
    order_ts_rules,
    rounded_id_rule,
    rule_columns,
)
from pipelines.core.config import SourceConfig
from pipelines.core.partitions import DayWindow
from pipelines.core.resources import TYPED_ORDER_LINES
from pipelines.core.sql import quote_identifier, sql_literal, table_exists


def _text(column: str) -> str:
    return f"NULLIF(trim({column}), '')"


# An income written with a currency sign, thousands separators or 元 ("¥35,000", "$1,234.50", "35000元") is read
# in SQL: such texts can be as many as the customers, and a bound list is searched row by row. bands.py reads them
# the same way.
DECORATED_INCOME = r"[¥￥$£€]?\s*(\d{1,3}(,\d{3})+|\d+)(\.\d+)?\s*元?"


# A money value written as shop consoles export it, with a currency sign, thousands separators or 元 ("¥1,234.50",
# "411.75元", "-¥12.50"), reads as its number, the minus kept (a negative amount is a return line). A comma only
# separates thousands after a first group of one to three digits not starting with 0: "0,125" and "12,5" (decimal
# commas) are not read.
# Currencies written before the number with a decimal point (a Shopee Malaysia export's RM19.90, S$, HK$, NT$, ₱, ฿,
# ₩, ₹); not Rp or R$, whose exports write 15.000 for fifteen thousand and 15,90 for fifteen.
CURRENCY_SIGNS = r"(RM|S\$|HK\$|NT\$|US\$|A\$|C\$|[¥￥$£€₱฿₩₹])"
DECORATED_MONEY = rf"(-\s*{CURRENCY_SIGNS}?|{CURRENCY_SIGNS}?\s*-?)\s*([1-9]\d{{0,2}}(,\d{{3}})+|\d+)(\.\d+)?\s*元?"


# The same with a decimal comma (values.decimal_comma): dots or spaces between thousands, a comma before the decimals
# ("R$ 1.234,56", "$ 12.990" for twelve thousand, "1.234,56 €", "Rp 15.000"). A point is never a decimal point here.
COMMA_CURRENCY_SIGNS = r"(R\$|Rp|US\$|[¥￥$£€])"
# Thousands may be separated by a point, a space, or a no-break or thin space (French exports: 1\u202f234,56).
DECORATED_MONEY_COMMA = (rf"(-\s*{COMMA_CURRENCY_SIGNS}?|{COMMA_CURRENCY_SIGNS}?\s*-?)\s*"
                         "([1-9]\\d{0,2}([. \u00a0\u202f\u2009]\\d{3})+|\\d+)(,\\d+)?\\s*(元|€)?")


# Full-width digits and signs (a Chinese input method types １２ and ￥８８．５０) read as ASCII ones, as ids do.
FULL_WIDTH_NUMBER = ("０１２３４５６７８９．，－＋", "0123456789.,-+")


def _ascii_digits(text: str) -> str:
    return f"translate({text}, '{FULL_WIDTH_NUMBER[0]}', '{FULL_WIDTH_NUMBER[1]}')"


def plain_number(text: str) -> str:
    """SQL: a quantity text (trimmed, NULL when empty) as a number, full-width digits too; only a text the cast
    cannot read is translated (COALESCE stops at the first non-NULL argument)."""
    return f"COALESCE(TRY_CAST({text} AS DOUBLE), TRY_CAST({_ascii_digits(text)} AS DOUBLE))"


def money_number(text: str, decimal_comma: bool = False) -> str:
    """SQL: an amount or price text (trimmed, NULL when empty) as a number; a plain number is cast, and only a text
    the cast cannot read is matched against DECORATED_MONEY, in ASCII digits. With `decimal_comma`
    (values.decimal_comma) every text is matched against DECORATED_MONEY_COMMA instead, never cast as it is: the
    cast would read 12.990 (twelve thousand) as 12.99."""
    ascii_text = _ascii_digits(text)
    if decimal_comma:
        comma_read = f"TRY_CAST(replace(regexp_replace({ascii_text}, '[^0-9,-]', '', 'g'), ',', '.') AS DOUBLE)"
        return f"CASE WHEN regexp_full_match({ascii_text}, '{DECORATED_MONEY_COMMA}') THEN {comma_read} END"
    stripped = f"TRY_CAST(regexp_replace({ascii_text}, '[^0-9.-]', '', 'g') AS DOUBLE)"
    return (f"COALESCE(TRY_CAST({text} AS DOUBLE), "
            f"CASE WHEN regexp_full_match({ascii_text}, '{DECORATED_MONEY}') THEN {stripped} END)")


def _number_in_sql(field: str) -> str:
    """The age or income text as SQL reads it by itself: cast to DOUBLE, or (income) stripped of its decoration."""
    cast = f"TRY_CAST({_text(field)} AS DOUBLE)"
    if field != "income":
        return cast
    stripped = f"TRY_CAST(regexp_replace({_text(field)}, '[^0-9.]', '', 'g') AS DOUBLE)"
    return f"COALESCE({cast}, CASE WHEN regexp_full_match({_text(field)}, '{DECORATED_INCOME}') THEN {stripped} END)"


def _profile_number(field: str) -> str:
    """The age or income number: as SQL reads it, else the number bands.py read for that text (the bound list pair
    of band_parameters). COALESCE looks a text up only when SQL could not read it: most rows never search the list."""
    return (f"COALESCE({_number_in_sql(field)}, "
            f"(${field}_band_numbers)[list_position(${field}_band_texts, {_text(field)})])")


def band_parameters(con: duckdb.DuckDBPyConnection, config: SourceConfig, window: DayWindow | None = None) -> dict:
    """The bound lists _profile_select looks bands up in: per field, the distinct texts of the profile rows this load
    types (the customer file, or the window's basket rows) that SQL does not read as numbers, and the number
    bands.read_band reads from each, the shop's values.bands first. Texts that read as nothing are left out: their
    rows are quarantined. Sorted, so the same rows give the same lists (the customer fingerprint hashes them)."""
    if config.shape == "long":
        table, rows, rows_params = "raw.customers", "raw.customers", {}
    else:
        table, rows = "raw.orders", _raw_orders_of_window(window)
        rows_params = {} if window is None else {"window_first": window.first, "window_last": window.last}
    params = {}
    for field in ("age", "income"):
        texts = []
        if table_exists(con, table):
            # The raw text cast first (the cast ignores surrounding blanks): a row that casts needs nothing more.
            # A CASE keeps that order; DuckDB reorders AND conditions and put the trim first (0.9 s -> 0.05 s per
            # million plain numbers).
            texts = [row[0] for row in con.execute(
                f"SELECT DISTINCT {_text(field)} FROM {rows} "
                f"WHERE CASE WHEN TRY_CAST({field} AS DOUBLE) IS NOT NULL THEN FALSE "
                f"ELSE {_text(field)} IS NOT NULL AND {_number_in_sql(field)} IS NULL END ORDER BY 1",
                rows_params).fetchall()]
        numbers = {text: read_band(text, field, config.values.bands.get(field)) for text in texts}
        read = {text: number for text, number in numbers.items() if number is not None}
        params[f"{field}_band_texts"] = list(read)
        params[f"{field}_band_numbers"] = list(read.values())
    return params


def _profile_select() -> str:
    """Typed profile columns shared by the customers file and the wide shape's basket rows. Age and income may be
    bands or carry units (bands.py); income is yearly, scaled by $income_per_year when the export is monthly."""
    return f"""
        {_text('age')} AS age_text, {_profile_number('age')} AS age,
        {_text('birth_year')} AS birth_year_text, TRY_CAST({_text('birth_year')} AS INTEGER) AS birth_year,
        {_text('gender')} AS gender_text,
        ($gender_values)[list_position($gender_tokens, upper({_text('gender')}))] AS gender,
        {_text('income')} AS income_text, {_profile_number('income')} * $income_per_year AS income,
        {_text('home_owner')} AS home_owner_text,
        CASE WHEN list_contains($true_tokens, upper({_text('home_owner')})) THEN TRUE
             WHEN list_contains($false_tokens, upper({_text('home_owner')})) THEN FALSE END AS home_owner,
        {_text('city')} AS city"""


def _payment_select() -> str:
    """Upper-cased payment code with the shop's aliases (支付宝 -> MOBILE) applied."""
    code = f"upper({_text('payment_method')})"
    return (f"{_text('payment_method')} AS payment_method_text, "
            f"COALESCE(($payment_targets)[list_position($payment_tokens, {code})], {code}) AS payment_method")


# An order time that ends in an offset or a zone: `+08:00`, `-0500`, `Z`, ` UTC`, ` America/New_York` after the
# time of day. Only texts no configured format read are tested (COALESCE evaluates its later arguments only for
# the rows still NULL), so a shop whose times match orders.date_formats pays nothing for it.
ZONED_TIME = r":[0-9]{2}(\.[0-9]+)?\s*(Z|[+-][0-9]{2}(:?[0-9]{2})?|[A-Za-z][A-Za-z_]*(/[A-Za-z0-9_+-]+)*)$"


# Month names in Spanish and Portuguese, read as English ones where a format with %B or %b reads them (Mercado Libre's
# "15 de marzo de 2024 10:32 hs."): DuckDB's strptime knows English names only. Whole words, full names first.
FOREIGN_MONTHS = (
    ("enero", "january"), ("febrero", "february"), ("marzo", "march"), ("abril", "april"), ("mayo", "may"),
    ("junio", "june"), ("julio", "july"), ("agosto", "august"), ("septiembre", "september"),
    ("setiembre", "september"), ("octubre", "october"), ("noviembre", "november"), ("diciembre", "december"),
    ("janeiro", "january"), ("fevereiro", "february"), ("março", "march"), ("maio", "may"), ("junho", "june"),
    ("julho", "july"), ("setembro", "september"), ("outubro", "october"), ("novembro", "november"),
    ("dezembro", "december"),
    ("ene", "jan"), ("abr", "apr"), ("ago", "aug"), ("dic", "dec"), ("fev", "feb"), ("mai", "may"), ("set", "sep"),
    ("out", "oct"), ("dez", "dec"),
)


# Any of them, as a whole word: a row whose text holds none is read as it is.
FOREIGN_MONTH_WORD = r"\b(" + "|".join(word for word, _ in FOREIGN_MONTHS) + r")\b"


def english_month_names(text: str) -> str:
    """SQL: `text` lower-cased, its Spanish and Portuguese month names (FOREIGN_MONTHS) as English ones."""
    sql = f"lower({text})"
    for word, english in FOREIGN_MONTHS:
        sql = f"regexp_replace({sql}, '\\b{word}\\b', '{english}', 'g')"
    return sql


def names_months(formats: list[str]) -> bool:
    """Whether a date format reads month names (%B, %b)."""
    return any("%B" in f or "%b" in f for f in formats)


def _timestamp(column: str, config: SourceConfig) -> str:
    """The order time as naive local time in orders.timezone: configured formats first (local times; a format
    with %z or %Z reads an offset, converted), then ISO 8601, whose offset or zone, when it has one, is converted
    to orders.timezone ($timezone), then (orders.excel_serial_dates) an Excel serial day number, to the second."""
    text = _text(column)
    formats = config.orders.date_formats

    def read(date_formats: str) -> str:
        # A format naming months reads other languages' names too, but only a row the formats do not read as it is
        # and whose text holds such a name pays for it (31 replacements): English rows cost nothing more, and the
        # lower-casing never reaches a format's upper-case literal (the T of %Y-%m-%dT%H:%M:%S).
        as_is = f"try_strptime({text}, {date_formats})"
        if not names_months(formats):
            return as_is
        return (f"COALESCE({as_is}, CASE WHEN regexp_matches(lower({text}), '{FOREIGN_MONTH_WORD}') "
                f"THEN try_strptime({english_month_names(text)}, {date_formats}) END)")

    parsers = []
    if any("%z" not in f and "%Z" not in f for f in formats):
        parsers.append(read("$date_formats"))
    if any("%z" in f or "%Z" in f for f in formats):
        parsers.append(f"timezone($timezone, {read('$zoned_date_formats')})")
    # A space before a numeric offset (10:00:00 +0800) is dropped: the TIMESTAMPTZ cast does not take it.
    zoned = f"TRY_CAST(regexp_replace({text}, '\\s+([+-][0-9])', '\\1') AS TIMESTAMPTZ)"
    parsers.append(f"CASE WHEN regexp_matches({text}, '{ZONED_TIME}') THEN timezone($timezone, {zoned}) "
                   f"ELSE TRY_CAST({text} AS TIMESTAMP) END")
    if config.orders.excel_serial_dates:
        parsers.append(f"CASE WHEN {excel_serial(text)} THEN TIMESTAMP '1899-12-30' + "
                       f"to_seconds(round(TRY_CAST({text} AS DOUBLE) * 86400)::BIGINT) END")
    return f"COALESCE({', '.join(parsers)})"


def _is_guest(normalised: str) -> str:
    """SQL: whether orders.guest_customer_ids ($guest_customer_ids) lists a normalised customer id. The listed ids
    are normalised as the data's are (id_text: width, invisible characters, 0.0 as 0) and compared without case."""
    guests = f"list_transform($guest_customer_ids, guest -> lower({id_text('guest', fold_case=False)}))"
    return f"list_contains({guests}, lower({normalised}))"


def _without_guests(normalised: str) -> str:
    """SQL: a normalised customer id, NULL where orders.guest_customer_ids lists it."""
    return f"CASE WHEN {_is_guest(normalised)} THEN NULL ELSE {normalised} END"


def _guest_id(normalised: str) -> str:
    """SQL: the normalised customer id where orders.guest_customer_ids lists it, else NULL (GUEST_ID)."""
    return f"CASE WHEN {_is_guest(normalised)} THEN {normalised} END"


# The column holding a row's guest id while it is typed (a _text column: the lean tables drop it).
GUEST_ID = "guest_id_text"


def guest_free(normalised: str, config: SourceConfig) -> str:
    """An order line's customer id without the guest ids: such a line fails "missing customer_id" and is set aside
    as a walk-in or guest sale. Without guest ids, the id itself (no work on every line)."""
    return _without_guests(normalised) if config.orders.guest_customer_ids else normalised


def _run(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> None:
    """Execute with only the named parameters the statement uses (DuckDB rejects unused ones)."""
    con.execute(sql, {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)})


# For the other staging modules that type raw text (assets/staging/products.py).
run_sql = _run
text_of = _text


# The typed tables keep the typed values and the failing rules, not the raw text beside them: the rules read
# the text in the same statement and no later step does. At 9M order lines the text copies cost gigabytes of memory
# (and spilling to disk) in every intermediate table.
LEAN_COLUMNS = "COLUMNS(c -> NOT ends_with(c, '_text'))"


def _raw_orders_of_window(window: DayWindow | None) -> str:
    """The raw order rows a run types: its days for a daily source, all rows for a snapshot source."""
    if window is None:
        return "raw.orders"
    return "(SELECT * FROM raw.orders WHERE _partition_date BETWEEN $window_first AND $window_last)"


def categorise_descriptions(con: duckdb.DuckDBPyConnection, config: SourceConfig, params: dict,
                            window: DayWindow | None) -> None:
    """description_categories: each distinct description of the rows to type with the category of the first
    orders.category_rules rule matching it (NULL when none does). Patterns travel as one bound parameter per rule:
    a constant pattern is compiled once, a pattern taken from a list for every row (167 s instead of 1.4 s for
    7 rules on 525k lines). Matching distinct descriptions instead of lines cuts the work a hundredfold on real
    exports (4,644 descriptions for 525,461 lines)."""
    rules = config.orders.category_rules
    whens = " ".join(f"WHEN regexp_matches(description, $category_pattern_{i}) THEN $category_name_{i}"
                     for i in range(len(rules)))
    patterns = {f"category_pattern_{i}": rule.pattern() for i, rule in enumerate(rules)}
    names = {f"category_name_{i}": rule.category.lower() for i, rule in enumerate(rules)}
    _run(con, f"""
        CREATE OR REPLACE TEMP TABLE description_categories AS
        SELECT description, CASE {whens} END AS rule_category
        FROM (SELECT DISTINCT {_text('description')} AS description FROM {_raw_orders_of_window(window)})
        WHERE description IS NOT NULL
    """, params | patterns | names)


# The long shape's typed rows go into a table of the warehouse, not a temp table: at 9M lines a temp table outgrows
# the memory limit and spills uncompressed (1.7 GB, 0.7 GB of it on disk), and every later read pays for it (the
# duplicate ranking took 2.6 s instead of 1.6 s). Its first columns are staging.order_lines' own, in their order, so
# a load that replaces every line turns this table into staging.order_lines by dropping the other columns and
# renaming it (assets/staging/orders.py, take_typed_lines) instead of copying 9M rows (7 s at L).
TYPED_LINES = TYPED_ORDER_LINES
# staging.order_lines' columns; quantity, unit_price and amount are stored as staged_* (a missing quantity is 1 in
# the table, NULL when typed).
ORDER_LINE_COLUMNS = ["order_id", "customer_id", "order_ts", "category", "sku", "quantity", "unit_price", "amount",
                      "payment_method", "channel", "_source_file", "_source_row", "_partition_date"]
STAGED_VALUES = {"quantity": "COALESCE(quantity, 1)",
                 "unit_price": "COALESCE(unit_price, amount / NULLIF(COALESCE(quantity, 1), 0))",
                 "amount": "COALESCE(amount, COALESCE(quantity, 1) * unit_price)"}
_STAGED_LINE = ", ".join(f"{STAGED_VALUES[c]} AS staged_{c}" if c in STAGED_VALUES else c for c in ORDER_LINE_COLUMNS)
# A typed value differs from its staged one only where it is missing (NULL typed, filled when staged), so the table
# keeps one bit per value saying which were missing (missing_values) instead of the typed values beside the staged
# ones: three DOUBLE columns cost 0.6 s to store at 1M customers, the mostly-zero byte 0.1 s. typed_value reads a
# typed value back for the duplicate ranking, whose exact copies must be equal in every typed field.
MISSING_BITS = {"quantity": 1, "unit_price": 2, "amount": 4}
_MISSING_VALUES = ("(" + " + ".join(f"{bit} * ({field} IS NULL)::UTINYINT" for field, bit in MISSING_BITS.items())
                   + ")::UTINYINT AS missing_values")
# The typed columns that are staging.order_lines' own as they are, and the typed values, as an SQL list: the other
# typed columns follow them.
_LINE_FIELDS = "[" + ", ".join(sql_literal(c) for c in ORDER_LINE_COLUMNS) + "]"


def typed_value(field: str) -> str:
    """SQL: a typed line's quantity, unit_price or amount as typed (NULL where the row had none), read from
    TYPED_LINES; any other field as it is."""
    if field not in MISSING_BITS:
        return field
    return f"CASE WHEN missing_values & {MISSING_BITS[field]} = 0 THEN staged_{field} END"


def type_long_orders(
    con: duckdb.DuckDBPyConnection, config: SourceConfig, params: dict, window: DayWindow | None = None
) -> None:
    """TYPED_LINES: one row per raw order row. The category is the line's own, else its product's (products:),
    else the first matching orders.category_rules rule on its description; an export declared without categories
    has none. Without an order id (orders.columns.order_id: null) an order is one customer's lines at one time."""
    products = config.products
    parts = config.orders.order_ts_parts()
    category_sources = ["lower(category_text)"]
    if products is not None:
        category_sources.append("product_category")
        if products.unknown_sku == "unknown":
            category_sources.append("CASE WHEN product_sku IS NULL THEN 'unknown' END")
    if config.orders.category_rules:
        categorise_descriptions(con, config, params, window)
        category_sources.append("COALESCE(rule_category, 'other')")
    category = f"COALESCE({', '.join(category_sources)})" if config.has_categories else "NULL::VARCHAR"
    if config.derives_order_id:
        order_id = ("CASE WHEN customer_id IS NOT NULL AND order_ts IS NOT NULL THEN "
                    "customer_id || '@' || strftime(order_ts, '%Y-%m-%d %H:%M:%S') END")
    else:
        order_id = "order_id_text"
    category_rules = []
    if products is not None and products.unknown_sku == "quarantine":
        category_rules.append(Rule(
            "sku", "category IS NULL AND product_sku IS NULL AND sku IS NOT NULL",
            "'sku ' || sku || ' is not in the product table (products.path)'", "sku"))
    if config.has_categories:
        # Not also "missing category" for a line the sku rule above already names.
        unknown_sku = " AND NOT (product_sku IS NULL AND sku IS NOT NULL)" \
            if products is not None and products.unknown_sku == "quarantine" else ""
        category_rules.append(Rule("category", f"category IS NULL{unknown_sku}", "'missing category'", "NULL"))
    guests = bool(config.orders.guest_customer_ids)
    rules = [
        customer_id_rule(GUEST_ID if guests else None),
        *([] if config.derives_order_id else [Rule("order_id", "order_id IS NULL", "'missing order_id'", "NULL")]),
        rounded_id_rule("customer_id"),
        *([] if config.derives_order_id else [rounded_id_rule("order_id")]),
        *category_rules,
        *order_ts_rules(required=True, parts=parts),
        *numeric_rules(["quantity", "amount", "unit_price"]),
        Rule("amount", "amount IS NULL AND unit_price IS NULL", "'missing amount and unit_price'", "NULL"),
        # Not errors, but not purchases either: kept out of the features and visible in quarantine.
        Rule("status", "list_contains($cancelled_statuses, upper(status_text))",
             f"{sql_literal(CANCELLED_REASON_OPENING)} || status_text || ')'", "status_text"),
        Rule("cancelled_at", "cancelled_at_text IS NOT NULL", sql_literal(CANCELLED_AT_REASON), "cancelled_at_text"),
        Rule("line_status", "list_contains($refunded_line_statuses, upper(line_status_text))",
             f"{sql_literal(REFUNDED_LINE_OPENING)} || line_status_text || '); {RETURNS_KEPT_OUT}'",
             "line_status_text"),
        # One return reason per line: the first negative column names it.
        *[Rule(column, f"{column} < 0" + "".join(f" AND NOT coalesce({earlier} < 0, false)" for earlier in before),
               sql_literal(f"return line (negative {column}); {RETURNS_KEPT_OUT}"), f"{column}_text")
          for column, before in (("quantity", ()), ("amount", ("quantity",)),
                                 ("unit_price", ("quantity", "amount")))],
        # A line of quantity 0 is "quantity is 0" (a fault), one below 0 a return: neither is a gift.
        *([Rule("amount", "COALESCE(amount, COALESCE(quantity, 1) * unit_price) = 0 AND COALESCE(quantity, 1) > 0",
                sql_literal(FREE_LINE_REASON), "coalesce(amount_text, unit_price_text)")]
          if config.orders.free_lines == "set_aside" else []),
        Rule("quantity", "quantity = 0", "'quantity is 0'", "quantity_text"),
        Rule("quantity", "quantity > $max_quantity",
             "'quantity ' || quantity_text || ' is above quality.max_quantity'", "quantity_text"),
        # isfinite: a NaN or inf quantity or unit price is their column's fault, not an amount above the maximum.
        Rule("amount", "COALESCE(amount, quantity * unit_price) > $max_line_amount "
             "AND isfinite(COALESCE(amount, quantity * unit_price))",
             "'amount ' || coalesce(amount_text, unit_price_text) || ' is above quality.max_line_amount'",
             "coalesce(amount_text, unit_price_text)"),
        FUTURE_RULE,
        PAYMENT_RULE,
    ]
    # A line without a price of its own takes its product's (products.columns.unit_price).
    unit_price = money_number("unit_price_text", config.values.decimal_comma)
    if products is not None:
        unit_price = f"COALESCE({unit_price}, CASE WHEN unit_price_text IS NULL THEN product_unit_price END)"
    product_join = "" if products is None else \
        f"LEFT JOIN (SELECT sku AS product_sku, category AS product_category, unit_price AS product_unit_price " \
        f"FROM product_lookup) p ON p.product_sku = {id_text('o.sku', fold_case=False)}"
    if config.orders.category_rules:
        product_join += f" LEFT JOIN description_categories d ON d.description = {_text('o.description')}"
    _run(con, f"""
        CREATE OR REPLACE TABLE {TYPED_LINES} AS
        SELECT {_STAGED_LINE}, COLUMNS(c -> NOT list_contains({_LINE_FIELDS}, c)), {_MISSING_VALUES}
        FROM (
        WITH texts AS (
            SELECT o.*, {id_text('o.order_id')} AS order_id_text, {id_text('o.customer_id')} AS customer_id_normal,
                   {_text('o.category')} AS category_text,
                   {_text('o.unit_price')} AS unit_price_text
                   {"" if products is None else ", p.*"}
                   {", d.rule_category" if config.orders.category_rules else ""}
            FROM {filled_rows(_raw_orders_of_window(window), config)} o {product_join}
        ),
        parsed AS (
            SELECT _source_file, _source_row, _partition_date, order_id_text, category_text,
                {"product_sku, product_category," if products is not None else ""}
                {"rule_category," if config.orders.category_rules else ""}
                {guest_free('customer_id_normal', config)} AS customer_id,
                {f"{_guest_id('customer_id_normal')} AS {GUEST_ID}," if guests else ""}
                -- The id as read where normalisation changed it (keys.py): NULL on nearly every row.
                {id_variant('customer_id', 'customer_id_normal')} AS customer_id_variant,
                {id_variant('order_id', 'order_id_text')} AS order_id_variant,
                {_text('order_ts')} AS order_ts_text, {_timestamp('order_ts', config)} AS order_ts,
                {order_ts_gap('order_ts', parts)} AS order_ts_gap_text,
                {_text('description')} AS description,
                {_text('quantity')} AS quantity_text, {plain_number(_text('quantity'))} AS quantity,
                {_text('amount')} AS amount_text,
                {money_number(_text('amount'), config.values.decimal_comma)} AS amount,
                unit_price_text, {unit_price} AS unit_price,
                {_payment_select()},
                lower({_text('channel')}) AS channel,
                {id_text('sku', fold_case=False)} AS sku,
                {_text('line_id')} AS line_id,
                -- Typed beside their _text copies (which the lean table drops): rows count as identical only if
                -- every field is equal, the order's and the line's status included.
                {_text('status')} AS status_text, {_text('status')} AS status,
                {_text('line_status')} AS line_status_text, {_text('line_status')} AS line_status,
                {_text('cancelled_at')} AS cancelled_at_text, {_text('cancelled_at')} AS cancelled_at
            FROM texts
        ),
        typed AS (
            SELECT * EXCLUDE (order_id_text, category_text, description
                              {", product_sku, product_category" if products is not None else ""}
                              {", rule_category" if config.orders.category_rules else ""}),
                {order_id} AS order_id, {category} AS category
                {", product_sku" if products is not None else ""}
            FROM parsed
        )
        -- product_sku only told the rules whether the sku was found.
        SELECT COLUMNS(c -> NOT ends_with(c, '_text') AND c != 'product_sku'), {rule_columns(rules)}
        FROM typed)
    """, params)


def type_wide_orders(
    con: duckdb.DuckDBPyConnection, config: SourceConfig, params: dict, window: DayWindow | None = None
) -> None:
    parts = config.orders.order_ts_parts()
    flag_columns = []
    flag_rules = []
    for index, name in enumerate(config.orders.category_columns):
        raw = _text(quote_identifier(name))
        alias = f"flag_{index}"
        flag_columns.append(
            f"{raw} AS {alias}_text, CASE WHEN list_contains($flag_true, upper({raw})) THEN TRUE "
            f"WHEN list_contains($flag_false, upper({raw})) THEN FALSE END AS {alias}"
        )
        flag_rules.append(Rule(
            name, f"{alias} IS NULL",
            f"'flag ' || coalesce({alias}_text, '(empty)') || ' is not in orders.flag_tokens'",
            f"{alias}_text",
        ))
    guests = bool(config.orders.guest_customer_ids)
    rules = [
        customer_id_rule(GUEST_ID if guests else None),
        rounded_id_rule("customer_id"),
        rounded_id_rule("order_id"),
        Rule("amount", "amount_text IS NULL", "'missing amount'", "NULL"),
        *numeric_rules(["amount"]),
        Rule("amount", "amount < 0", sql_literal(f"negative basket value (a return); {RETURNS_KEPT_OUT}"),
             "amount_text"),
        Rule("amount", "amount > $max_line_amount", "'amount ' || amount_text || ' is above quality.max_line_amount'",
             "amount_text"),
        *order_ts_rules(required=False, parts=parts),
        FUTURE_RULE,
        PAYMENT_RULE,
        *PROFILE_RULES,
        *flag_rules,
    ]
    _run(con, f"""
        CREATE OR REPLACE TEMP TABLE typed_orders AS
        WITH ids AS (
            SELECT *, {id_text('order_id')} AS order_id_normal, {id_text('customer_id')} AS customer_id_normal
            FROM {_raw_orders_of_window(window)}
        ),
        typed AS (
            SELECT _source_file, _source_row, _partition_date,
                -- Baskets without an order id are identified by file and row: each row is one purchase.
                COALESCE(order_id_normal,
                         parse_filename(_source_file, true) || ':' || _source_row::VARCHAR) AS order_id,
                {guest_free('customer_id_normal', config)} AS customer_id,
                {f"{_guest_id('customer_id_normal')} AS {GUEST_ID}," if guests else ""}
                -- The ids as read where normalisation changed them (keys.py): NULL on nearly every row.
                {id_variant('order_id', 'order_id_normal')} AS order_id_variant,
                {id_variant('customer_id', 'customer_id_normal')} AS customer_id_variant,
                {_text('order_ts')} AS order_ts_text, {_timestamp('order_ts', config)} AS order_ts,
                {order_ts_gap('order_ts', parts)} AS order_ts_gap_text,
                {_text('amount')} AS amount_text,
                {money_number(_text('amount'), config.values.decimal_comma)} AS amount,
                {_payment_select()},
                lower({_text('channel')}) AS channel,
                {_profile_select()},
                {", ".join(flag_columns)}
            FROM ids
        )
        SELECT {LEAN_COLUMNS}, {rule_columns(rules)} FROM typed
    """, params)


def customer_typing_sql() -> str:
    rules = [customer_id_rule(GUEST_ID), rounded_id_rule("customer_id"), *PROFILE_RULES]
    return f"""
        CREATE OR REPLACE TEMP TABLE typed_customers AS
        WITH ids AS (SELECT *, {id_text('customer_id')} AS customer_id_normal FROM raw.customers),
        typed AS (
            -- A member row of a guest or walk-in account (orders.guest_customer_ids) is no customer either.
            SELECT _source_file, _source_row, _partition_date, {_without_guests('customer_id_normal')} AS customer_id,
                   {_guest_id('customer_id_normal')} AS {GUEST_ID},
                   -- The id as read where normalisation changed it (keys.py): NULL on nearly every row.
                   {id_variant('customer_id', 'customer_id_normal')} AS customer_id_variant,
                   {_profile_select()}
            FROM ids
        )
        SELECT *, {rule_columns(rules)} FROM typed
    """


def type_customers(con: duckdb.DuckDBPyConnection, params: dict) -> None:
    _run(con, customer_typing_sql(), params)
