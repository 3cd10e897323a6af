"""Staging rules: the row-level Rule (quarantine a row for a column, with a reason), the rules shared by both
shapes and by profiles, and the config values the staging SQL takes as bound parameters."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from pipelines.core.config import SourceConfig
from pipelines.core.sql import sql_literal


@dataclass(frozen=True)
class Rule:
    """A row-level rule: when `failing_when` holds, the row is quarantined for `column` with `reason`."""

    column: str
    failing_when: str  # SQL over the typed columns; static text, never built from data
    reason: str  # SQL expression yielding the reason text
    raw_value: str  # SQL expression yielding the offending raw text


def rule_columns(rules: list[Rule]) -> str:
    """What a row fails, in three columns that are NULL for a valid row: bad_column, every failing column (joined by
    ', '); reason, the reason of each failing column (joined by '; '); bad_value, the first failing rule's raw value
    that is not empty.
    Both lists follow the rules' order, so the row's first failing rule comes first; a quarantined row stays one row.

    A column gives the reason of its first failing rule only: the rules of one column are a first-match chain
    ("order_ts IS NULL" means "not a date" because "missing order_ts" comes before it), so later rules of a column
    that already failed would repeat the same fault in other words. The lists are built only for failing rows: a
    valid row costs what the first-failing-rule CASE cost."""
    if not rules:
        return "NULL::VARCHAR AS bad_column, NULL::VARCHAR AS reason, NULL::VARCHAR AS bad_value"
    failing = [f"({rule.failing_when})" for rule in rules]
    any_failing = " OR ".join(failing)
    first_of_column = [_first_failing_of_its_column(rules, failing, i) for i in range(len(rules))]
    columns = ", ".join(f"CASE WHEN {when} THEN {sql_literal(rule.column)} END"
                        for when, rule in zip(first_of_column, rules, strict=True))
    reasons = ", ".join(f"CASE WHEN {when} THEN {rule.reason} END"
                        for when, rule in zip(first_of_column, rules, strict=True))
    # The first failing rule's raw text that is not empty: a walk-in line (no customer id) whose amount is "N/A"
    # shows "N/A", not the customer id's empty text. A row whose failing fields are all empty shows that.
    shown = ", ".join(f"CASE WHEN {when} THEN nullif({rule.raw_value}, '') END"
                      for when, rule in zip(failing, rules, strict=True))
    value = " ".join(f"WHEN {when} THEN {rule.raw_value}" for when, rule in zip(failing, rules, strict=True))
    return (f"CASE WHEN {any_failing} THEN concat_ws(', ', {columns}) END AS bad_column, "
            f"CASE WHEN {any_failing} THEN concat_ws('; ', {reasons}) END AS reason, "
            f"CASE WHEN {any_failing} THEN coalesce({shown}, CASE {value} END) END AS bad_value")


def _first_failing_of_its_column(rules: list[Rule], failing: list[str], index: int) -> str:
    """SQL: rule `index` fails and no earlier rule of its column does. A NULL condition (amount < 0 on a NULL
    amount) counts as not failing, as in a CASE."""
    earlier = [failing[i] for i in range(index) if rules[i].column == rules[index].column]
    if not earlier:
        return failing[index]
    return f"{failing[index]} AND NOT COALESCE({' OR '.join(earlier)}, FALSE)"


# Typed as integers: their cast of NaN or inf fails, so the text is tested (only on rows whose cast failed).
INTEGER_COLUMNS = ("birth_year",)


def finite_rule(column: str) -> Rule:
    """NaN, inf, -inf, Infinity: DuckDB reads them as doubles, and NaN compares above every number, so without this
    rule a NaN was "above max" or slipped past every range rule and loaded."""
    if column in INTEGER_COLUMNS:
        failing = (f"CASE WHEN {column} IS NULL AND {column}_text IS NOT NULL "
                   f"THEN NOT isfinite(TRY_CAST({column}_text AS DOUBLE)) ELSE FALSE END")
    else:
        failing = f"NOT isfinite({column})"
    return Rule(column, failing, f"{sql_literal(column + ' ')} || {column}_text || ' is not a finite number'",
                f"{column}_text")


def numeric_rules(columns: list[str]) -> list[Rule]:
    """Per column: not a finite number (NaN, inf), then not a number; a column's later rules (ranges, returns)
    apply only when these pass."""
    return [rule for c in columns for rule in (
        finite_rule(c),
        Rule(c, f"{c}_text IS NOT NULL AND {c} IS NULL", sql_literal(f"{c} is not a number"), f"{c}_text"),
    )]


# A bare number that can be an Excel serial date (days since 1899-12-30; 2958465 is 9999-12-31).
EXCEL_SERIAL = r"[0-9]{1,7}(\.[0-9]+)?"
EXCEL_SERIAL_MAX = 2958466


def excel_serial(text: str) -> str:
    """SQL: TRUE when the text is a bare number in the range of Excel serial dates."""
    return f"(regexp_full_match({text}, '{EXCEL_SERIAL}') AND TRY_CAST({text} AS DOUBLE) < {EXCEL_SERIAL_MAX})"


def order_ts_rules(required: bool, parts: tuple[str, str] | None = None) -> list[Rule]:
    """The order time's rules, a first-match chain: missing (when required), one of its two columns empty (`parts`,
    orders.columns.order_ts: [date column, time column]; order_ts_gap_text), a bare number while
    orders.excel_serial_dates is off, not a date, before quality.min_order_date (FUTURE_RULE comes later)."""
    read_from = "order_ts" if parts is None else f"order_ts ({parts[0]} + {parts[1]})"
    return [
        *([Rule("order_ts", "order_ts_text IS NULL", "'missing order_ts'", "NULL")] if required else []),
        *([Rule("order_ts", "order_ts_gap_text IS NOT NULL", "'order_ts: ' || order_ts_gap_text", "order_ts_text")]
          if parts is not None else []),
        # A CASE, not AND: DuckDB may reorder AND's terms and run the regular expression on every row.
        Rule("order_ts", f"CASE WHEN order_ts IS NULL AND NOT $excel_serial_dates "
                         f"THEN {excel_serial('order_ts_text')} ELSE FALSE END",
             "'order_ts ' || order_ts_text || ' is a bare number (an Excel serial date?): set "
             "orders.excel_serial_dates: true to read it as days since 1899-12-30'", "order_ts_text"),
        Rule("order_ts", "order_ts_text IS NOT NULL AND order_ts IS NULL",
             sql_literal(f"{read_from} is not a date in orders.date_formats or ISO 8601"), "order_ts_text"),
        # A two-digit year read by %Y is the year 23 (12/30/23): the reason says how the text read and what reads it.
        # A system's "no date" (0001-01-01) writes its year in four digits.
        Rule("order_ts", "order_ts < $min_order_date",
             "'order_ts ' || order_ts_text || CASE WHEN year(order_ts) < 100 "
             "AND NOT regexp_matches(order_ts_text, '[0-9]{3}') THEN ' reads as ' || "
             "strftime(order_ts, '%Y-%m-%d') || ', before quality.min_order_date (' || $min_order_date::VARCHAR || "
             "'): a two-digit year needs %y in orders.date_formats, not %Y' ELSE ' is before quality.min_order_date (' "
             "|| $min_order_date::VARCHAR || ')' END", "order_ts_text"),
    ]


def order_ts_gap(raw: str, parts: tuple[str, str] | None) -> str:
    """SQL: for an order time read from two columns (`parts`), which of them is empty beside the other's value, from
    the raw text the raw layer joined (`2026-10-31 ` has no time, ` 14:05:09` no date: assets/raw/mapping.py,
    joined_order_time); NULL when both or neither are there. A date alone is not taken as midnight."""
    if parts is None:
        return "NULL::VARCHAR"
    date_column, time_column = parts
    no_date, no_time = sql_literal(f"{date_column} is empty ({time_column} "), \
        sql_literal(f"{time_column} is empty ({date_column} ")
    return (f"CASE WHEN starts_with({raw}, ' ') THEN {no_date} || trim({raw}) || ')' "
            f"WHEN ends_with({raw}, ' ') THEN {no_time} || trim({raw}) "
            "|| '); a date without its time of day is not read as midnight' END")


def _number_or_band_rule(field: str) -> Rule:
    """Age and income may be bands ("25-34", "1万-2万"; assets/staging/bands.py): a text that is neither fails."""
    opening, closing = sql_literal(f"{field} '"), sql_literal("' is not a number or a band")
    reason = f"{opening} || {field}_text || {closing}"
    return Rule(field, f"{field}_text IS NOT NULL AND {field} IS NULL", reason, f"{field}_text")


def _read_as(field: str, unit: str = "") -> str:
    """' (read as 29.5)' when the typed number is not the text's own (a band, a unit, a monthly income made
    yearly), so that a range reason shows the number compared with the range; '' otherwise."""
    whole = f"{field} = trunc({field}) AND abs({field}) < 1e15"
    shown = f"CASE WHEN {whole} THEN {field}::BIGINT::VARCHAR ELSE {field}::VARCHAR END"
    return (f"CASE WHEN TRY_CAST({field}_text AS DOUBLE) IS DISTINCT FROM {field} "
            f"THEN ' (read as ' || {shown} || {sql_literal(unit + ')')} ELSE '' END")


PROFILE_RULES = [
    finite_rule("age"),
    _number_or_band_rule("age"),
    *numeric_rules(["birth_year"]),
    finite_rule("income"),
    _number_or_band_rule("income"),
    Rule("age", "age NOT BETWEEN $age_min AND $age_max",
         f"'age ' || age_text || {_read_as('age')} || ' is outside quality.age_range ' || $age_range_text",
         "age_text"),
    Rule("income", "income NOT BETWEEN $income_min AND $income_max",
         f"'income ' || income_text || {_read_as('income', ' a year')} || ' is outside quality.income_range ' "
         "|| $income_range_text", "income_text"),
    # A token of values.gender mapped to null is a known way of saying "not known": not a bad value.
    Rule("gender", "gender_text IS NOT NULL AND list_position($gender_tokens, upper(gender_text)) IS NULL",
         "'gender ' || gender_text || ' is not in values.gender'", "gender_text"),
    Rule("home_owner", "home_owner_text IS NOT NULL AND home_owner IS NULL",
         "'home_owner ' || home_owner_text || ' is not a yes/no token in values.home_owner'", "home_owner_text"),
]

# Order rows that are not faults of the export: a cancelled order and a return are not purchases, and a sale without
# a customer id is a walk-in or guest sale that no customer's profile can hold. They are kept out of the features and
# visible in quarantine, but they say nothing about the export's health. The load audit counts them apart
# (rows_set_aside), and quality.max_quarantine_share judges only the rest: a shop where one order in ten is closed
# unpaid (交易关闭), or a till where most sales are to walk-in customers, is not a broken export. How many rows carry a
# customer id is quality.min_key_share's to judge (the raw suite). Their reasons are written from these texts.
RETURNS_KEPT_OUT = "returns are kept out of purchase features"
CANCELLED_REASON_OPENING = "cancelled order (status "
# A line refunded on its own (Youzan's 售后状态, Taobao's 退款状态: 退款成功) while the rest of its order stands.
REFUNDED_LINE_OPENING = "refunded line (line_status "
STATUS_REASON_OPENINGS = (CANCELLED_REASON_OPENING, REFUNDED_LINE_OPENING)
# A line an earlier landing day loaded and a later day's row cancels or refunds (assets/staging/takebacks.py):
# "taken back on a later day (cancelled order (status 已取消), row 17 of order_day=2026-03-05/data_0.csv)".
TAKEN_BACK_OPENING = "taken back on a later day ("
# An order with a cancellation time (orders.columns.cancelled_at: Shopify's Cancelled at), whatever its status says:
# Shopify keeps a cancelled order's payment status (paid) when it is cancelled without a refund.
CANCELLED_AT_REASON = "cancelled order (cancelled_at set)"
# A line whose amount is 0 (orders.free_lines: set_aside).
FREE_LINE_REASON = "free line (amount 0); gifts and samples are kept out of purchase features"
MISSING_CUSTOMER = "missing customer_id"
# A row whose id orders.guest_customer_ids lists (a guest checkout's 0, a till's walk-in account) has no customer
# either, and its reason names the id, so that a reader of the quarantine sees why a row with an id has none:
# "missing customer_id (guest id 0 in orders.guest_customer_ids)". A ';' in the id is written as ','.
GUEST_REASON_OPENING = f"{MISSING_CUSTOMER} (guest id "
GUEST_REASON_CLOSING = " in orders.guest_customer_ids)"


# An id a spreadsheet saved as a rounded number: Excel shows a number of 12 digits or more as 2.83E+11 and saves it
# so in a CSV. Its digits are gone, so orders (or customers) that differed in them merge into one: a trial's JD
# export re-saved in Excel merged every order into a few dozen, and its revenue came out 2.5 times too high.
SPREADSHEET_ROUNDED_ID = r"[0-9](\.[0-9]+)?[Ee]\+[0-9]{2}"  # e: values.id_case lower-cases ids before the rules


def rounded_id_rule(column: str) -> Rule:
    """A row whose id `column` a spreadsheet rounded (SPREADSHEET_ROUNDED_ID): quarantined, never merged. The cheap
    `contains` runs first (a CASE keeps the order) so that ordinary ids never meet the regular expression."""
    failing = (f"CASE WHEN contains({column}, 'E+') OR contains({column}, 'e+') THEN regexp_full_match({column}, "
               f"{sql_literal(SPREADSHEET_ROUNDED_ID)}) ELSE FALSE END")
    tail = (" is a number a spreadsheet rounded (scientific notation), which merges ids: export the file again "
            "without saving it in Excel, or import the column as text")
    reason = f"{sql_literal(column + ' ')} || {column} || {sql_literal(tail)}"
    return Rule(column, failing, reason, column)


def customer_id_rule(guest_id: str | None = None) -> Rule:
    """The rule of a row without a customer id. `guest_id`: SQL of the guest id the row had (NULL for a row
    without any id), when the source lists guest ids; its reason then names it, and its raw value is that id."""
    if guest_id is None:
        return Rule("customer_id", "customer_id IS NULL", sql_literal(MISSING_CUSTOMER), "NULL")
    reason = (f"CASE WHEN {guest_id} IS NULL THEN {sql_literal(MISSING_CUSTOMER)} "
              f"ELSE {sql_literal(GUEST_REASON_OPENING)} || replace({guest_id}, ';', ',') "
              f"|| {sql_literal(GUEST_REASON_CLOSING)} END")
    return Rule("customer_id", "customer_id IS NULL", reason, guest_id)


_SET_ASIDE_PART = (rf"{MISSING_CUSTOMER}(?: \(guest id [^;]*\))?|cancelled order \(status [^;]*\)"
                   rf"|cancelled order \(cancelled_at set\)"
                   rf"|(?:return line \(negative \w+\)|negative basket value \(a return\)"
                   rf"|refunded line \(line_status [^;]*\)); {RETURNS_KEPT_OUT}"
                   rf"|taken back on a later day \([^;]*\)"
                   rf"|free line \(amount 0\); gifts and samples are kept out of purchase features")
# A cancelled order's row or a refunded line is no purchase whatever else it fails: Amazon writes a cancelled item
# with an empty price and quantity 0, and a trial's run counted its 694 cancellations (10.2% of the rows) as faults of
# the export and was blocked.
_NO_PURCHASE_PART = (rf"cancelled order \(status [^;]*\)|cancelled order \(cancelled_at set\)"
                     rf"|refunded line \(line_status [^;]*\); {RETURNS_KEPT_OUT}")
# A quarantine reason made only of set-aside parts (a row failing several rules has their reasons joined by '; '), or
# holding a no-purchase part; the same pattern in DuckDB (regexp_full_match) and Python (re.fullmatch). A status
# holding ';' is not matched: such a row counts against the limit, which errs on the side of the gate. Order rows
# only: a member row without an id is a fault of the customer file.
SET_ASIDE_ONLY = (rf"(?:{_SET_ASIDE_PART})(?:; (?:{_SET_ASIDE_PART}))*"
                  rf"|(?:.*; )?(?:{_NO_PURCHASE_PART})(?:; .*)?")

# Rules shared by both shapes, evaluated after the shape's own parsing rules.
PAYMENT_RULE = Rule(
    "payment_method", "payment_method_text IS NOT NULL AND NOT list_contains($payment_methods, payment_method)",
    "'payment_method ' || payment_method_text || ' is not in values.payment_methods'", "payment_method_text")
FUTURE_RULE = Rule(
    "order_ts", "order_ts > $future_limit",
    "'order_ts ' || order_ts_text || ' is in the future (later than the run by more than "
    "quality.future_tolerance_hours)'", "order_ts_text")


def _range_text(bounds: tuple[float, float]) -> str:
    """[0, 120] whether the config said 0 or 0.0, so a reason reads the same wherever the range came from."""
    return "[" + ", ".join(str(int(b)) if float(b).is_integer() else str(b) for b in bounds) + "]"


def token_parameters(config: SourceConfig, run_started: datetime) -> dict:
    """Bound parameters of the staging SQL: every value from the config travels as a parameter, never as text."""
    gender = config.values.gender
    quality = config.quality
    aliases = config.values.payment_aliases
    return {
        "payment_tokens": [token.upper() for token in aliases],
        "payment_targets": [target.upper() for target in aliases.values()],
        "payment_methods": [code.upper() for code in config.values.payment_methods],
        "cancelled_statuses": [status.upper() for status in config.values.cancelled_statuses],
        "refunded_line_statuses": [status.upper() for status in config.values.refunded_line_statuses],
        "guest_customer_ids": list(config.orders.guest_customer_ids),
        "future_limit": run_started + timedelta(hours=quality.future_tolerance_hours),
        "age_min": quality.age_range[0], "age_max": quality.age_range[1],
        "age_range_text": _range_text(quality.age_range),
        "income_min": quality.income_range[0], "income_max": quality.income_range[1],
        "income_range_text": _range_text(quality.income_range),
        # Staging stores income yearly (values.income_period); quality.income_range applies to the yearly value.
        "income_per_year": 12.0 if config.values.income_period == "month" else 1.0,
        "max_quantity": quality.max_quantity, "max_line_amount": quality.max_line_amount,
        "gender_tokens": [token.upper() for token in gender],
        "gender_values": list(gender.values()),
        "true_tokens": [t.upper() for t in config.values.home_owner.true_tokens],
        "false_tokens": [t.upper() for t in config.values.home_owner.false_tokens],
        "flag_true": [t.upper() for t in config.orders.flag_tokens.true_tokens],
        "flag_false": [t.upper() for t in config.orders.flag_tokens.false_tokens],
        # Formats without an offset read local times; those with %z or %Z read an offset, converted.
        "date_formats": [f for f in config.orders.date_formats if "%z" not in f and "%Z" not in f],
        "zoned_date_formats": [f for f in config.orders.date_formats if "%z" in f or "%Z" in f],
        "timezone": config.orders.timezone,
        "excel_serial_dates": config.orders.excel_serial_dates,
        "min_order_date": quality.min_order_date,
        "id_case": config.values.id_case,
    }
