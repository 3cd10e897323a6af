"""Staging layer: typed, normalised and deduplicated orders, order lines and customers.

Rules, applied in this order to every raw row (documented in README, "Data contract"):

1. A row that fails a rule (missing key, text where a number belongs, unknown code, bad flag) goes to
   `quality.quarantine` with its file, row, column, raw value and reason. The first failing rule is recorded.
2. Exact duplicates (every contract column equal) collapse onto the first row in file order; the others are
   counted as `duplicates_removed`.
3. Key duplicates with conflicting attributes:
   - order lines (key: order_id, category, sku): the first row is kept, later ones are quarantined;
   - customers (key: customer_id): the *last* row in file order wins, since later rows are newer profile
     data; superseded rows are counted as duplicates removed and logged in `quality.key_conflicts`.
   In the wide shape every basket row is a purchase, so a customer seen on two baskets with different profile
   attributes (the seed table's cardid 37917) keeps both baskets and the profile of the last one.

Every source row ends up in exactly one place, which `quality.load_audit` proves per file and run:
rows_read = rows_loaded + rows_quarantined + duplicates_removed.
"""


import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import dagster as dg
import duckdb

from assets.raw.ingest import PARTITION_DATE, replace_days, snapshot_load
from pipelines.core.config import SourceConfig
from pipelines.core.faults import crash_point
from pipelines.core.partitions import (
    DAILY_ORDERS,
    SINGLE_RUN_BACKFILL,
    DayWindow,
    run_window,
)
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.core.sql import (
    preview_markdown,
    quote_identifier,
    sql_literal,
    table_exists,
)


@dataclass(frozen=True)
class Rule:
    """A row-level rule: when `failing_when` holds, the row is quarantined for `column` with `reason`."""

    column: str
    failing_when: str  # SQL over the typed columns; static text, never built from data
    reason: str  # SQL expression yielding the reason text
    raw_value: str  # SQL expression yielding the offending raw text


def _rule_columns(rules: list[Rule]) -> str:
    """Three CASE expressions naming the first failing rule's column, reason and raw value."""
    if not rules:
        return "NULL::VARCHAR AS bad_column, NULL::VARCHAR AS reason, NULL::VARCHAR AS bad_value"
    column = " ".join(f"WHEN {r.failing_when} THEN {sql_literal(r.column)}" for r in rules)
    reason = " ".join(f"WHEN {r.failing_when} THEN {r.reason}" for r in rules)
    value = " ".join(f"WHEN {r.failing_when} THEN {r.raw_value}" for r in rules)
    return f"CASE {column} END AS bad_column, CASE {reason} END AS reason, CASE {value} END AS bad_value"


def _text(column: str) -> str:
    return f"NULLIF(trim({column}), '')"


def _numeric_rules(columns: list[str]) -> list[Rule]:
    return [
        Rule(c, f"{c}_text IS NOT NULL AND {c} IS NULL", sql_literal(f"{c} is not a number"), f"{c}_text")
        for c in columns
    ]


def _profile_select() -> str:
    """Typed profile columns shared by the customers file and the wide shape's basket rows."""
    return f"""
        {_text('age')} AS age_text, TRY_CAST({_text('age')} AS DOUBLE) AS age,
        {_text('birth_year')} AS birth_year_text, TRY_CAST({_text('birth_year')} AS INTEGER) AS birth_year,
        {_text('gender')} AS gender_text,
        ($gender_values)[list_position($gender_tokens, upper({_text('gender')}))] AS gender,
        {_text('income')} AS income_text, TRY_CAST({_text('income')} AS DOUBLE) AS income,
        {_text('home_owner')} AS home_owner_text,
        CASE WHEN list_contains($true_tokens, upper({_text('home_owner')})) THEN TRUE
             WHEN list_contains($false_tokens, upper({_text('home_owner')})) THEN FALSE END AS home_owner,
        {_text('city')} AS city"""


PROFILE_RULES = [
    *_numeric_rules(["age", "birth_year", "income"]),
    Rule("age", "age NOT BETWEEN $age_min AND $age_max",
         "'age ' || age_text || ' is outside quality.age_range ' || $age_range_text", "age_text"),
    Rule("income", "income NOT BETWEEN $income_min AND $income_max",
         "'income ' || income_text || ' is outside quality.income_range ' || $income_range_text", "income_text"),
    Rule("gender", "gender_text IS NOT NULL AND gender IS NULL",
         "'gender ' || gender_text || ' is not in values.gender'", "gender_text"),
    Rule("home_owner", "home_owner_text IS NOT NULL AND home_owner IS NULL",
         "'home_owner ' || home_owner_text || ' is not a yes/no token in values.home_owner'", "home_owner_text"),
]

# Rules shared by both shapes, evaluated after the shape's own parsing rules.
PAYMENT_RULE = Rule(
    "payment_method", "payment_method_text IS NOT NULL AND NOT list_contains($payment_methods, payment_method)",
    "'payment_method ' || payment_method_text || ' is not in values.payment_methods'", "payment_method_text")
FUTURE_RULE = Rule(
    "order_ts", "order_ts > $future_limit",
    "'order_ts ' || order_ts_text || ' is in the future (later than the run by more than "
    "quality.future_tolerance_hours)'", "order_ts_text")


def _payment_select() -> str:
    """Upper-cased payment code with the shop's aliases (支付宝 -> MOBILE) applied."""
    code = f"upper({_text('payment_method')})"
    return (f"{_text('payment_method')} AS payment_method_text, "
            f"COALESCE(($payment_targets)[list_position($payment_tokens, {code})], {code}) AS payment_method")


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
        "future_limit": run_started + timedelta(hours=quality.future_tolerance_hours),
        "age_min": quality.age_range[0], "age_max": quality.age_range[1],
        "age_range_text": _range_text(quality.age_range),
        "income_min": quality.income_range[0], "income_max": quality.income_range[1],
        "income_range_text": _range_text(quality.income_range),
        "max_quantity": quality.max_quantity, "max_line_amount": quality.max_line_amount,
        "gender_tokens": [token.upper() for token in gender],
        "gender_values": list(gender.values()),
        "true_tokens": [t.upper() for t in config.values.home_owner.true_tokens],
        "false_tokens": [t.upper() for t in config.values.home_owner.false_tokens],
        "flag_true": [t.upper() for t in config.orders.flag_tokens.true_tokens],
        "flag_false": [t.upper() for t in config.orders.flag_tokens.false_tokens],
        "date_formats": list(config.orders.date_formats),
    }


def _timestamp(column: str) -> str:
    # Configured formats first, then ISO 8601 (which DuckDB's cast understands).
    return f"COALESCE(try_strptime({_text(column)}, $date_formats), TRY_CAST({_text(column)} AS TIMESTAMP))"


def _run(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> None:
    """Execute with only the named parameters the statement uses (DuckDB rejects unused ones)."""
    con.execute(sql, {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)})


# The typed tables keep the typed values and the first failing rule, not the raw text beside them: the rules read
# the text in the same statement and no later step does. At 9M order lines the text copies cost gigabytes of memory
# (and spilling to disk) in every intermediate table.
LEAN_COLUMNS = "COLUMNS(c -> NOT ends_with(c, '_text'))"


def _raw_orders_of_window(window: DayWindow | None) -> str:
    """The raw order rows a run types: its days for a daily source, all rows for a snapshot source."""
    if window is None:
        return "raw.orders"
    return "(SELECT * FROM raw.orders WHERE _partition_date BETWEEN $window_first AND $window_last)"


def type_long_orders(con: duckdb.DuckDBPyConnection, params: dict, window: DayWindow | None = None) -> None:
    rules = [
        Rule("customer_id", "customer_id IS NULL", "'missing customer_id'", "NULL"),
        Rule("order_id", "order_id IS NULL", "'missing order_id'", "NULL"),
        Rule("category", "category IS NULL", "'missing category'", "NULL"),
        Rule("order_ts", "order_ts_text IS NULL", "'missing order_ts'", "NULL"),
        Rule("order_ts", "order_ts IS NULL", "'order_ts is not a date in orders.date_formats or ISO 8601'",
             "order_ts_text"),
        *_numeric_rules(["quantity", "amount", "unit_price"]),
        Rule("amount", "amount IS NULL AND unit_price IS NULL", "'missing amount and unit_price'", "NULL"),
        # Not errors, but not purchases either: kept out of the features and visible in quarantine.
        Rule("status", "list_contains($cancelled_statuses, upper(status_text))",
             "'cancelled order (status ' || status_text || ')'", "status_text"),
        *[Rule(column, f"{column} < 0",
               f"'return line (negative {column}); returns are kept out of purchase features'", f"{column}_text")
          for column in ("quantity", "amount", "unit_price")],
        Rule("quantity", "quantity = 0", "'quantity is 0'", "quantity_text"),
        Rule("quantity", "quantity > $max_quantity",
             "'quantity ' || quantity_text || ' is above quality.max_quantity'", "quantity_text"),
        Rule("amount", "COALESCE(amount, quantity * unit_price) > $max_line_amount",
             "'amount ' || coalesce(amount_text, unit_price_text) || ' is above quality.max_line_amount'",
             "coalesce(amount_text, unit_price_text)"),
        FUTURE_RULE,
        PAYMENT_RULE,
    ]
    _run(con, f"""
        CREATE OR REPLACE TEMP TABLE typed_orders AS
        WITH typed AS (
            SELECT _source_file, _source_row, _partition_date,
                {_text('order_id')} AS order_id,
                {_text('customer_id')} AS customer_id,
                {_text('order_ts')} AS order_ts_text, {_timestamp('order_ts')} AS order_ts,
                lower({_text('category')}) AS category,
                {_text('quantity')} AS quantity_text, TRY_CAST({_text('quantity')} AS DOUBLE) AS quantity,
                {_text('amount')} AS amount_text, TRY_CAST({_text('amount')} AS DOUBLE) AS amount,
                {_text('unit_price')} AS unit_price_text, TRY_CAST({_text('unit_price')} AS DOUBLE) AS unit_price,
                {_payment_select()},
                lower({_text('channel')}) AS channel,
                {_text('sku')} AS sku,
                {_text('status')} AS status_text
            FROM {_raw_orders_of_window(window)}
        )
        SELECT {LEAN_COLUMNS}, {_rule_columns(rules)} FROM typed
    """, params)


def type_wide_orders(
    con: duckdb.DuckDBPyConnection, config: SourceConfig, params: dict, window: DayWindow | None = None
) -> None:
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
    rules = [
        Rule("customer_id", "customer_id IS NULL", "'missing customer_id'", "NULL"),
        Rule("amount", "amount_text IS NULL", "'missing amount'", "NULL"),
        *_numeric_rules(["amount"]),
        Rule("amount", "amount < 0", "'negative basket value (a return); returns are kept out of purchase features'",
             "amount_text"),
        Rule("amount", "amount > $max_line_amount", "'amount ' || amount_text || ' is above quality.max_line_amount'",
             "amount_text"),
        Rule("order_ts", "order_ts_text IS NOT NULL AND order_ts IS NULL",
             "'order_ts is not a date in orders.date_formats or ISO 8601'", "order_ts_text"),
        FUTURE_RULE,
        PAYMENT_RULE,
        *PROFILE_RULES,
        *flag_rules,
    ]
    _run(con, f"""
        CREATE OR REPLACE TEMP TABLE typed_orders AS
        WITH typed AS (
            SELECT _source_file, _source_row, _partition_date,
                -- Baskets without an order id are identified by file and row: each row is one purchase.
                COALESCE({_text('order_id')},
                         parse_filename(_source_file, true) || ':' || _source_row::VARCHAR) AS order_id,
                {_text('customer_id')} AS customer_id,
                {_text('order_ts')} AS order_ts_text, {_timestamp('order_ts')} AS order_ts,
                {_text('amount')} AS amount_text, TRY_CAST({_text('amount')} AS DOUBLE) AS amount,
                {_payment_select()},
                lower({_text('channel')}) AS channel,
                {_profile_select()},
                {", ".join(flag_columns)}
            FROM {_raw_orders_of_window(window)}
        )
        SELECT {LEAN_COLUMNS}, {_rule_columns(rules)} FROM typed
    """, params)


def customer_typing_sql() -> str:
    rules = [Rule("customer_id", "customer_id IS NULL", "'missing customer_id'", "NULL"), *PROFILE_RULES]
    return f"""
        CREATE OR REPLACE TEMP TABLE typed_customers AS
        WITH typed AS (
            SELECT _source_file, _source_row, _partition_date, {_text('customer_id')} AS customer_id,
                   {_profile_select()}
            FROM raw.customers
        )
        SELECT *, {_rule_columns(rules)} FROM typed
    """


def type_customers(con: duckdb.DuckDBPyConnection, params: dict) -> None:
    _run(con, customer_typing_sql(), params)


CUSTOMERS_BUILT_FROM = "staging.customers_built_from"


def customer_inputs_fingerprint(con: duckdb.DuckDBPyConnection, params: dict) -> str | None:
    """What decides the profiles of staging.customers besides the order-only customers: the raw customer load
    (its fingerprint, see assets/ingest.py), the typing parameters its SQL uses, and the year that turns a birth
    year into an age. None when the raw load has no fingerprint (no customer file, or an older warehouse)."""
    raw_load = snapshot_load(con, "raw.customers")
    if raw_load is None:
        return None
    typing = customer_typing_sql()
    used = {k: v for k, v in params.items() if re.search(rf"\${k}\b", typing)}
    reference_year = con.execute(
        "SELECT year(COALESCE(max(order_ts), current_date)) FROM staging.orders").fetchone()[0]
    payload = json.dumps({"raw": raw_load[0], "typing": used, "year": reference_year}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def customers_built_from(con: duckdb.DuckDBPyConnection) -> str | None:
    if not table_exists(con, CUSTOMERS_BUILT_FROM) or not table_exists(con, "staging.customers"):
        return None
    row = con.execute(f"SELECT fingerprint FROM {CUSTOMERS_BUILT_FROM}").fetchone()
    return row[0] if row else None


def record_customers_built_from(con: duckdb.DuckDBPyConnection, fingerprint: str | None, run_id: str) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS {CUSTOMERS_BUILT_FROM} "
                "(fingerprint VARCHAR, run_id VARCHAR, built_at TIMESTAMP)")
    con.execute(f"DELETE FROM {CUSTOMERS_BUILT_FROM}")
    if fingerprint is not None:
        con.execute(f"INSERT INTO {CUSTOMERS_BUILT_FROM} VALUES (?, ?, current_timestamp)", [fingerprint, run_id])


def update_order_only_customers(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Profiles unchanged, orders of a few days replaced: only the customers known from orders alone can come or
    go. Those among this load's changed customers with no order left go; new ones come with an empty profile.
    The same rows as a rebuild, without typing and ranking every profile again."""
    con.execute(f"""
        DELETE FROM staging.customers
        WHERE _source_file IS NULL
          AND customer_id IN (SELECT customer_id FROM {CHANGED_CUSTOMERS} WHERE run_id = ?)
          AND customer_id NOT IN (SELECT customer_id FROM staging.orders WHERE customer_id IS NOT NULL)""",
        [run_id])
    con.execute("""
        INSERT INTO staging.customers BY NAME
        SELECT DISTINCT customer_id FROM new_orders
        WHERE customer_id IS NOT NULL AND customer_id NOT IN (SELECT customer_id FROM staging.customers)""")


def ensure_quality_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""CREATE TABLE IF NOT EXISTS quality.quarantine (
        run_id VARCHAR, input VARCHAR, source_file VARCHAR, source_row BIGINT, column_name VARCHAR,
        raw_value VARCHAR, reason VARCHAR, quarantined_at TIMESTAMP)""")
    con.execute("""CREATE TABLE IF NOT EXISTS quality.key_conflicts (
        run_id VARCHAR, input VARCHAR, key_column VARCHAR, key_value VARCHAR, kept_file VARCHAR, kept_row BIGINT,
        superseded_file VARCHAR, superseded_row BIGINT, differing_columns VARCHAR[], resolution VARCHAR)""")
    con.execute("""CREATE TABLE IF NOT EXISTS quality.load_audit (
        run_id VARCHAR, input VARCHAR, source_file VARCHAR, rows_read BIGINT, rows_loaded BIGINT,
        rows_quarantined BIGINT, duplicates_removed BIGINT, exact_duplicates BIGINT,
        conflicting_duplicates BIGINT, audited_at TIMESTAMP)""")
    con.execute("""CREATE TABLE IF NOT EXISTS quality.removed_duplicates (
        run_id VARCHAR, input VARCHAR, source_file VARCHAR, source_row BIGINT, duplicate_of_file VARCHAR,
        duplicate_of_row BIGINT, kind VARCHAR)""")


# A work queue: staging appends the customers whose orders a load changes, the features layer recomputes their
# order aggregates and empties it (assets/features.py). customer_id NULL stands for "every customer".
CHANGED_CUSTOMERS = "staging.changed_customers"


def ensure_change_queue(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS {CHANGED_CUSTOMERS} (customer_id VARCHAR, run_id VARCHAR)")


def record_changed_customers(con: duckdb.DuckDBPyConnection, run_id: str, window: DayWindow | None) -> None:
    """Queue the customers whose orders this load changes: those of the window's rows about to be replaced (and
    of former snapshot rows, which a daily load removes) and those of the new rows. Order lines count on their
    own, since a line's customer may differ from its order's in dirty data. A snapshot load changes everyone."""
    ensure_change_queue(con)
    if window is None or not table_exists(con, "staging.orders"):
        con.execute(f"INSERT INTO {CHANGED_CUSTOMERS} VALUES (NULL, ?)", [run_id])
        return
    replaced = f"WHERE {PARTITION_DATE} IS NULL OR {PARTITION_DATE} BETWEEN $first AND $last"
    con.execute(f"""
        INSERT INTO {CHANGED_CUSTOMERS}
        SELECT DISTINCT customer_id, $run_id FROM (
            SELECT customer_id FROM staging.orders {replaced}
            UNION ALL SELECT customer_id FROM staging.order_lines {replaced}
            UNION ALL SELECT customer_id FROM new_orders
            UNION ALL SELECT customer_id FROM new_order_lines)
        WHERE customer_id IS NOT NULL""", {"run_id": run_id, "first": window.first, "last": window.last})


def quarantine_failed_rows(con: duckdb.DuckDBPyConnection, run_id: str, input_name: str, typed_table: str) -> None:
    con.execute(f"""
        INSERT INTO quality.quarantine
        SELECT ?, ?, _source_file, _source_row, bad_column, bad_value, reason, current_timestamp
        FROM {typed_table} WHERE reason IS NOT NULL""", [run_id, input_name])


ORDER_ATTRIBUTES_LONG = ["customer_id", "order_ts", "quantity", "amount", "unit_price", "payment_method", "channel"]
ORDER_KEY_LONG = ["order_id", "category", "sku"]


def rank_order_duplicates(
    con: duckdb.DuckDBPyConnection, run_id: str, key: list[str], all_columns: list[str], what: str
) -> None:
    """Exact copies (every column equal) collapse onto the first in file order and are logged as removed; a later
    row with the same key but other values is quarantined as a conflicting duplicate of the first. Both are then
    deleted from typed_orders, which keeps the first copies."""
    every, keys = ", ".join(all_columns), ", ".join(key)
    # Any duplicate shares its key, so the window functions only need the rows whose key repeats: on real data a
    # small share. Only their ranks are stored, with the typed row's rowid; every other valid row is its own first
    # copy and stays where it is (a copy of 9M rows costs seconds and memory).
    # Repeats are found by a hash of the key: grouping one integer is faster than grouping the key's text, and
    # equal keys (NULLs included) hash alike. A collision only brings a row with a different key into `repeated`,
    # where the windows partition by the key itself, so it stays its own first copy. Each CTE reads typed_orders
    # directly: a CTE read twice is materialized, which copied all 9M valid rows (7 s at L).
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE repeated_ranks AS
        WITH repeated_keys AS (
            SELECT hash({keys}) AS key_hash FROM typed_orders WHERE reason IS NULL GROUP BY ALL HAVING count(*) > 1),
        repeated AS (
            SELECT rowid AS typed_rowid, * FROM typed_orders
            WHERE reason IS NULL AND hash({keys}) IN (SELECT key_hash FROM repeated_keys)),
        exact AS (
            SELECT *,
                row_number() OVER (PARTITION BY {every} ORDER BY _source_file, _source_row) AS exact_rank,
                first_value(_source_file) OVER (PARTITION BY {every} ORDER BY _source_file, _source_row)
                    AS exact_first_file,
                first_value(_source_row) OVER (PARTITION BY {every} ORDER BY _source_file, _source_row)
                    AS exact_first_row
            FROM repeated
        )
        SELECT typed_rowid, _source_file, _source_row, order_id, exact_rank, exact_first_file, exact_first_row,
            CASE WHEN exact_rank = 1 THEN
                row_number() OVER (PARTITION BY {keys}, exact_rank = 1 ORDER BY _source_file, _source_row) END
                AS key_rank,
            first_value(_source_row) OVER (PARTITION BY {keys}, exact_rank = 1 ORDER BY _source_file, _source_row)
                AS key_first_row
        FROM exact
    """)
    con.execute("""
        INSERT INTO quality.removed_duplicates
        SELECT ?, 'orders', _source_file, _source_row, exact_first_file, exact_first_row, 'exact'
        FROM repeated_ranks WHERE exact_rank > 1""", [run_id])
    con.execute("""
        INSERT INTO quality.quarantine
        SELECT ?, 'orders', _source_file, _source_row, 'order_id', order_id,
               'conflicting duplicate of the ' || ? || ' in row ' || key_first_row::VARCHAR || ' (same '
               || ? || ', different values)', current_timestamp
        FROM repeated_ranks WHERE key_rank > 1""", [run_id, what, _and_join(key)])
    con.execute("DELETE FROM typed_orders WHERE reason IS NOT NULL")  # quarantined already
    con.execute("DELETE FROM typed_orders WHERE rowid IN "
                "(SELECT typed_rowid FROM repeated_ranks WHERE key_rank IS DISTINCT FROM 1)")


def _and_join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def rank_long_orders(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    rank_order_duplicates(con, run_id, ORDER_KEY_LONG, ORDER_KEY_LONG + ORDER_ATTRIBUTES_LONG, "order line")


def drop_orders_loaded_on_other_days(con: duckdb.DuckDBPyConnection, run_id: str, window: DayWindow | None) -> None:
    """A daily load may repeat an order that an earlier day's file already delivered (overlapping exports).
    The day that delivered it first keeps it; the repeat is logged as a removed duplicate, never loaded twice.
    Leaves the view `kept_orders`: the typed rows to stage."""
    if window is not None and table_exists(con, "staging.orders"):
        con.execute("""
            CREATE OR REPLACE TEMP TABLE other_day_orders AS
            SELECT order_id, min(_source_file) AS source_file, min(_source_row) AS source_row
            FROM staging.order_lines
            WHERE _partition_date IS NOT NULL AND _partition_date NOT BETWEEN ? AND ?
              AND order_id IN (SELECT order_id FROM typed_orders)  -- group only the window's orders, not all days
            GROUP BY order_id""", [window.first, window.last])
        con.execute("""
            INSERT INTO quality.removed_duplicates
            SELECT ?, 'orders', t._source_file, t._source_row, o.source_file, o.source_row, 'loaded_on_other_day'
            FROM typed_orders t JOIN other_day_orders o USING (order_id)""", [run_id])
        con.execute("DELETE FROM typed_orders WHERE order_id IN (SELECT order_id FROM other_day_orders)")
    con.execute("CREATE OR REPLACE TEMP VIEW kept_orders AS "
                "SELECT * EXCLUDE (bad_column, reason, bad_value) FROM typed_orders")


FILE_NUMBER_STRIDE = 1 << 40  # more data rows than any file holds, so file number * stride + row orders by file


def build_long_orders(con: duckdb.DuckDBPyConnection, window: DayWindow | None) -> None:
    """new_order_lines and new_orders: the window's staged rows, before they replace the window's days.
    new_order_lines is a view over the typed rows: it is read once, by the copy into staging."""
    con.execute("""
        CREATE OR REPLACE TEMP VIEW new_order_lines AS
        SELECT order_id, customer_id, order_ts, category, sku,
               COALESCE(quantity, 1) AS quantity,
               COALESCE(unit_price, amount / NULLIF(COALESCE(quantity, 1), 0)) AS unit_price,
               COALESCE(amount, COALESCE(quantity, 1) * unit_price) AS amount,
               payment_method, channel, _source_file, _source_row, _partition_date
        FROM kept_orders""")
    # An order's customer, payment and channel come from its first line in file order: the smallest (file, row).
    # Files are numbered in name order so that the position is one integer, file number * 2^40 + row; taking the
    # three values at the smallest integer is half the work of comparing (file, row) structs three times (4 s at
    # 9M lines). No ORDER BY on the tables: readers sort what they need, and sorting millions of rows only to store
    # them in order cost seconds.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE source_file_numbers AS
        SELECT _source_file, row_number() OVER (ORDER BY _source_file) AS file_number
        FROM (SELECT DISTINCT _source_file FROM kept_orders)""")
    # new_orders is a view too when only the copy into staging.orders reads it (a snapshot load, or the first load
    # of a daily source): a table filled inside the transaction would be scanned at half speed by that copy (see
    # build_staging). A daily load into existing tables also reads it for the change queue and the order-only
    # customers, so it is aggregated once, into a table.
    read_once = window is None or not table_exists(con, "staging.orders")
    con.execute(f"""
        CREATE OR REPLACE TEMP {"VIEW" if read_once else "TABLE"} new_orders AS
        SELECT order_id, first_line.customer_id, order_ts, first_line.payment_method, first_line.channel,
               order_amount, n_lines, n_items, _partition_date
        FROM (
            SELECT order_id,
                   arg_min_null({{'customer_id': customer_id, 'payment_method': payment_method, 'channel': channel}},
                                f.file_number * {FILE_NUMBER_STRIDE} + l._source_row) AS first_line,
                   min(order_ts) AS order_ts,
                   sum(amount) AS order_amount,
                   count(*) AS n_lines,
                   sum(quantity) AS n_items,
                   min(_partition_date) AS _partition_date
            FROM new_order_lines l JOIN source_file_numbers f USING (_source_file)
            GROUP BY order_id)""")


def build_wide_orders(con: duckdb.DuckDBPyConnection, config: SourceConfig) -> None:
    """Baskets: new_orders, one per basket row, and new_order_lines, one per category flagged."""
    flags = [f"flag_{i}" for i in range(len(config.orders.category_columns))]
    con.execute("""
        CREATE OR REPLACE TEMP TABLE new_orders AS
        SELECT order_id, customer_id, order_ts, payment_method, channel, amount AS order_amount,
               NULL::BIGINT AS n_lines, NULL::DOUBLE AS n_items, _source_file, _source_row, _partition_date
        FROM kept_orders ORDER BY _source_file, _source_row""")
    unpivot = " UNION ALL ".join(
        f"SELECT order_id, customer_id, order_ts, {sql_literal(name.lower())} AS category, "
        f"payment_method, channel, _source_file, _source_row, _partition_date "
        f"FROM kept_orders WHERE {flag}"
        for name, flag in zip(config.orders.category_columns, flags)
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE new_order_lines AS
        SELECT order_id, customer_id, order_ts, category, NULL::VARCHAR AS sku, 1.0 AS quantity,
               NULL::DOUBLE AS unit_price, NULL::DOUBLE AS amount, payment_method, channel,
               _source_file, _source_row, _partition_date
        FROM ({unpivot}) ORDER BY _source_file, _source_row, category""")
    # A basket's line count is the number of categories flagged.
    con.execute("""
        UPDATE new_orders o SET n_lines = l.n, n_items = l.n
        FROM (SELECT order_id, count(*) AS n FROM new_order_lines GROUP BY order_id) l
        WHERE o.order_id = l.order_id""")
    con.execute("UPDATE new_orders SET n_lines = 0, n_items = 0 WHERE n_lines IS NULL")


def rank_wide_orders(con: duckdb.DuckDBPyConnection, config: SourceConfig, run_id: str) -> None:
    """Baskets: order_id is the key; exact copies (possible only with source order ids) collapse."""
    flags = [f"flag_{i}" for i in range(len(config.orders.category_columns))]
    rank_order_duplicates(con, run_id, ["order_id"],
                          ["order_id", "customer_id", "order_ts", "amount", "payment_method", "channel", *flags],
                          "basket")


PROFILE_COLUMNS = ["age", "birth_year", "gender", "income", "home_owner", "city"]


def _profile_differs(old: str, kept: str) -> str:
    return " OR ".join(f"{old}.{c} IS DISTINCT FROM {kept}.{c}" for c in PROFILE_COLUMNS)


def resolve_profiles(con: duckdb.DuckDBPyConnection, run_id: str, input_name: str, candidates_sql: str,
                     candidates_params: list | None = None) -> None:
    """One profile per customer: the last row in file order wins; superseded rows that differ are logged."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE ranked_profiles AS
        SELECT *,
            row_number() OVER (PARTITION BY customer_id ORDER BY _source_file DESC, _source_row DESC) AS recency_rank
        FROM ({candidates_sql})""", candidates_params or [])
    differing = ", ".join(
        f"CASE WHEN old.{c} IS DISTINCT FROM kept.{c} THEN {sql_literal(c)} END" for c in PROFILE_COLUMNS
    )
    con.execute(f"""
        INSERT INTO quality.key_conflicts
        SELECT ?, ?, 'customer_id', kept.customer_id, kept._source_file, kept._source_row,
               old._source_file, old._source_row, list_filter([{differing}], x -> x IS NOT NULL),
               'last row in file order wins'
        FROM ranked_profiles old
        JOIN ranked_profiles kept ON kept.customer_id = old.customer_id AND kept.recency_rank = 1
        WHERE old.recency_rank > 1 AND ({_profile_differs("old", "kept")})
        ORDER BY old._source_file, old._source_row""",
        [run_id, input_name])


def build_customers(con: duckdb.DuckDBPyConnection, config: SourceConfig, run_id: str,
                    window: DayWindow | None) -> None:
    """new_customers: one profile per customer, from the customer file (long) or the basket rows (wide)."""
    typed_profile = ("customer_id, _source_file, _source_row, age, birth_year, gender, income, home_owner, city, "
                     "_partition_date")
    if config.shape == "wide":
        candidates, params = f"SELECT {typed_profile} FROM kept_orders", []
        if window is not None and table_exists(con, "staging.customers"):
            # Profiles seen on other days compete with this window's rows; the last row in file order still wins.
            candidates += """
                UNION ALL
                SELECT customer_id, _source_file, _source_row, age, NULL, gender, income, home_owner, city,
                       _partition_date
                FROM staging.customers
                WHERE _partition_date IS NOT NULL
                  AND _partition_date NOT BETWEEN ? AND ?"""
            params = [window.first, window.last]
        resolve_profiles(con, run_id, "orders", candidates, params)
    else:
        resolve_profiles(con, run_id, "customers",
                         f"SELECT {typed_profile} FROM typed_customers WHERE reason IS NULL")
        # In a customer file a superseded row is a removed duplicate: exact copies and older conflicting rows.
        con.execute(f"""
            INSERT INTO quality.removed_duplicates
            SELECT ?, 'customers', p._source_file, p._source_row, k._source_file, k._source_row,
                   CASE WHEN {_profile_differs("p", "k")} THEN 'conflict_superseded' ELSE 'exact' END
            FROM ranked_profiles p JOIN ranked_profiles k ON k.customer_id = p.customer_id AND k.recency_rank = 1
            WHERE p.recency_rank > 1""", [run_id])
    # Age as of the latest order (or today when orders carry no dates) when only a birth year is known.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE new_customers AS
        WITH reference AS (
            SELECT year(COALESCE(max(order_ts), current_date)) AS ref_year FROM staging.orders
        ),
        profiles AS (
            SELECT customer_id, COALESCE(age, (SELECT ref_year FROM reference) - birth_year) AS age,
                   gender, income, home_owner, city, _source_file, _source_row, _partition_date
            FROM ranked_profiles WHERE recency_rank = 1
        ),
        order_only AS (
            SELECT DISTINCT customer_id FROM staging.orders
            WHERE customer_id NOT IN (SELECT customer_id FROM profiles)
        )
        SELECT * FROM profiles
        UNION ALL
        SELECT customer_id, NULL::DOUBLE, NULL::VARCHAR, NULL::DOUBLE, NULL::BOOLEAN, NULL::VARCHAR,
               NULL::VARCHAR, NULL::BIGINT, NULL::DATE
        FROM order_only
        ORDER BY customer_id""")


def write_load_audit(con: duckdb.DuckDBPyConnection, run_id: str, shape: str) -> None:
    """Count where every row read by this run went, per file, from the staging tables themselves."""
    loaded_orders = "staging.order_lines" if shape == "long" else "staging.orders"
    con.execute("DELETE FROM quality.load_audit WHERE run_id = ?", [run_id])
    con.execute(f"""
        INSERT INTO quality.load_audit
        WITH loaded AS (
            SELECT 'orders' AS input, _source_file, count(*) AS n FROM {loaded_orders} GROUP BY ALL
            UNION ALL
            SELECT 'customers', _source_file, count(*) FROM staging.customers
            WHERE _source_file IS NOT NULL AND ? = 'long' GROUP BY ALL
        ),
        quarantined AS (
            SELECT input, source_file, count(*) AS n FROM quality.quarantine WHERE run_id = ? GROUP BY ALL
        ),
        removed AS (
            SELECT input, source_file, count(*) AS n, count(*) FILTER (WHERE kind = 'exact') AS exact_n
            FROM quality.removed_duplicates WHERE run_id = ? GROUP BY ALL
        )
        SELECT ?, f.input, f.source_file, f.rows_read,
               COALESCE(l.n, 0), COALESCE(q.n, 0), COALESCE(r.n, 0), COALESCE(r.exact_n, 0),
               COALESCE(r.n, 0) - COALESCE(r.exact_n, 0)
                 + COALESCE((SELECT count(*) FROM quality.quarantine qq
                             WHERE qq.run_id = ? AND qq.input = f.input AND qq.source_file = f.source_file
                               AND qq.reason LIKE 'conflicting duplicate%'), 0),
               current_timestamp
        FROM raw.source_files f
        LEFT JOIN loaded l ON l.input = f.input AND l._source_file = f.source_file
        LEFT JOIN quarantined q ON q.input = f.input AND q.source_file = f.source_file
        LEFT JOIN removed r ON r.input = f.input AND r.source_file = f.source_file
        WHERE f.run_id = ?
        ORDER BY f.input DESC, f.source_file""", [shape, run_id, run_id, run_id, run_id, run_id])


def drop_order_intermediates(con: duckdb.DuckDBPyConnection) -> None:
    """Free the typed rows as soon as the staging tables hold them: the later steps of the transaction (audit,
    checks) need the memory at scale."""
    # Views first (they read the tables); new_order_lines is a view for the long shape, a table for the wide one.
    temporary = con.execute("SELECT table_name, table_type FROM information_schema.tables "
                            "WHERE table_catalog = 'temp' ORDER BY table_type DESC").fetchall()
    intermediates = {"new_order_lines", "kept_orders", "new_orders", "other_day_orders",
                     "repeated_ranks", "typed_orders", "source_file_numbers"}
    for name, kind in temporary:
        if name in intermediates:
            con.execute(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} {name}")


def build_staging(
    con: duckdb.DuckDBPyConnection, config: SourceConfig, run_id: str, run_started: datetime | None = None,
    window: DayWindow | None = None,
) -> None:
    """All of staging in one transaction: readers never see orders of one run beside customers of another.
    A daily load (window) replaces the window's days of orders and order lines and keeps the other days;
    a snapshot load (window None) replaces everything. Customers are rebuilt whole, unless a daily load finds the
    customer file and the typing unchanged since they were built: then only the order-only customers move."""
    params = token_parameters(config, run_started or datetime.now())
    if window is not None:
        params |= {"window_first": window.first, "window_last": window.last}
    ensure_quality_tables(con)
    # Typing only fills a temporary table, so it runs before the transaction: DuckDB scans a table created inside
    # an open transaction (its uncommitted local storage) at half the speed, and the copy into staging.order_lines
    # reads every typed row (11 s instead of 6 s at 9M lines).
    if config.shape == "long":
        type_long_orders(con, params, window)
    else:
        type_wide_orders(con, config, params, window)
    con.execute("BEGIN TRANSACTION")
    try:
        for table in ("quarantine", "key_conflicts", "removed_duplicates"):
            con.execute(f"DELETE FROM quality.{table} WHERE run_id = ?", [run_id])
        if config.shape == "long":
            quarantine_failed_rows(con, run_id, "orders", "typed_orders")
            rank_long_orders(con, run_id)
            drop_orders_loaded_on_other_days(con, run_id, window)
            build_long_orders(con, window)
        else:
            quarantine_failed_rows(con, run_id, "orders", "typed_orders")
            rank_wide_orders(con, config, run_id)
            drop_orders_loaded_on_other_days(con, run_id, window)
            build_wide_orders(con, config)
        record_changed_customers(con, run_id, window)
        replace_days(con, "staging.order_lines", "new_order_lines", window)
        replace_days(con, "staging.orders", "new_orders", window)
        customer_inputs = customer_inputs_fingerprint(con, params) if config.shape == "long" else None
        if window is not None and customer_inputs is not None and customers_built_from(con) == customer_inputs:
            update_order_only_customers(con, run_id)
        else:
            if config.shape == "long":
                type_customers(con, params)
                quarantine_failed_rows(con, run_id, "customers", "typed_customers")
            build_customers(con, config, run_id, window)
            replace_days(con, "staging.customers", "new_customers", None)
        record_customers_built_from(con, customer_inputs, run_id)
        drop_order_intermediates(con)
        write_load_audit(con, run_id, config.shape)
        crash_point("staging:before_commit")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        # typed_orders was made before the transaction, so the rollback keeps it (or brings it back if it was
        # dropped): free it, and whatever else is left, as a successful run does.
        drop_order_intermediates(con)
        raise


STAGING_SPECS = [
    dg.AssetSpec(["staging", "orders"], group_name="staging", kinds={"duckdb"},
                 deps=[["raw", "orders"], ["raw", "customers"]],
                 description="One row per order (basket): order_id, customer_id, order_ts, payment_method, "
                             "channel, order_amount, n_lines, n_items."),
    dg.AssetSpec(["staging", "order_lines"], group_name="staging", kinds={"duckdb"},
                 deps=[["raw", "orders"]],
                 description="One row per order line (order_id, category, sku); the wide shape yields one line "
                             "per category flagged T."),
    dg.AssetSpec(["staging", "customers"], group_name="staging", kinds={"duckdb"},
                 deps=[["raw", "customers"], ["raw", "orders"]],
                 description="One row per customer with a typed profile; customers seen only in orders have an "
                             "empty profile."),
    dg.AssetSpec(["quality", "quarantine"], group_name="quality", kinds={"duckdb"},
                 deps=[["raw", "orders"], ["raw", "customers"]],
                 description="One row per rejected source row: file, row, column, raw value, reason, run id."),
    dg.AssetSpec(["quality", "load_audit"], group_name="quality", kinds={"duckdb"},
                 deps=[["raw", "orders"], ["raw", "customers"]],
                 description="One row per source file and run: rows read, loaded, quarantined, duplicates removed."),
]


@dg.multi_asset(specs=STAGING_SPECS, pool="duckdb_writer", partitions_def=DAILY_ORDERS,
                backfill_policy=SINGLE_RUN_BACKFILL)
def staging_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """Types, normalises and deduplicates the raw rows of the run's days (all rows for a snapshot source);
    rejects go to quarantine, every row read is audited."""
    config = source.load()
    window = run_window(context) if config.daily else None
    with warehouse.connect() as con:
        build_staging(con, config, context.run_id, window=window)
        counts = {
            name: con.execute(f"SELECT count(*) FROM staging.{name}").fetchone()[0]
            for name in ("orders", "order_lines", "customers")
        }
        quarantined = con.execute(
            "SELECT count(*) FROM quality.quarantine WHERE run_id = ?", [context.run_id]).fetchone()[0]
        audit = con.execute(
            "SELECT * EXCLUDE (run_id, audited_at) FROM quality.load_audit WHERE run_id = ?", [context.run_id]
        ).pl()
        previews = {
            name: con.execute(
                f"SELECT COLUMNS(c -> NOT starts_with(c, '_source')) FROM staging.{name} LIMIT 5").pl()
            for name in counts
        }
    for name, count in counts.items():
        yield dg.MaterializeResult(
            asset_key=["staging", name],
            metadata={"dagster/row_count": count, "preview": dg.MetadataValue.md(preview_markdown(previews[name]))},
        )
    yield dg.MaterializeResult(asset_key=["quality", "quarantine"],
                               metadata={"dagster/row_count": quarantined, "run_id": context.run_id})
    yield dg.MaterializeResult(asset_key=["quality", "load_audit"],
                               metadata={"dagster/row_count": audit.height,
                                         "audit": dg.MetadataValue.md(preview_markdown(audit, rows=50))})
