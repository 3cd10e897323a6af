"""Staging orders: duplicate ranking (exact copies collapse, rows sharing a declared key with other values go to
quarantine, orders loaded on another day stay there), then the new orders and order lines of the long and wide
shapes."""

from collections.abc import Callable

import duckdb

from assets.staging.typed import ORDER_LINE_COLUMNS, STAGED_VALUES, TYPED_LINES, typed_value
from pipelines.core.config import SourceConfig
from pipelines.core.partitions import DayWindow
from pipelines.core.sql import quote_identifier, sql_literal, table_exists

# Every field of a typed order line: rows equal in all of them are exact duplicates.
ORDER_LINE_FIELDS_LONG = ["order_id", "customer_id", "order_ts", "category", "sku", "line_id", "quantity", "amount",
                          "unit_price", "payment_method", "channel", "status", "line_status", "cancelled_at"]


def start_row_selection(con: duckdb.DuckDBPyConnection, typed: str) -> None:
    """The typed rows to stage are those that pass every rule and that no later rule drops: `dropped_typed_rows`
    collects the rowids the duplicate rules drop, and the view `valid_typed_orders` (typed_rowid and the typed
    table's columns but the rules' verdicts) leaves them out. Rows are never deleted from the typed table while the
    load runs: a load that replaces every line drops the typing columns of that table to make it
    staging.order_lines, and DuckDB refuses to commit a dropped column after a delete from the same table in one
    transaction (take_typed_lines deletes last)."""
    # NOT NULL: one NULL in a NOT IN list would make the view empty.
    con.execute("CREATE OR REPLACE TEMP TABLE dropped_typed_rows (typed_rowid BIGINT NOT NULL)")
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW valid_typed_orders AS
        SELECT rowid AS typed_rowid, * EXCLUDE (bad_column, reason, bad_value) FROM {typed}
        WHERE reason IS NULL AND rowid NOT IN (SELECT typed_rowid FROM dropped_typed_rows)""")


def rank_order_duplicates(
    con: duckdb.DuckDBPyConnection, run_id: str, key: list[str], all_columns: list[str], what: str, typed: str,
    read_as: Callable[[str], str] = lambda field: field,
) -> None:
    """Exact copies (every column equal) collapse onto the first in file order and are logged as removed; a later
    row with the same key but other values is quarantined as a conflicting duplicate of the first. Both are then
    dropped (dropped_typed_rows), which keeps the first copies. `read_as` gives the SQL that reads a field from
    `typed` (TYPED_LINES keeps some typed values as their staged value and a missing bit)."""
    every, keys = ", ".join(map(read_as, all_columns)), ", ".join(map(read_as, key))
    # Any duplicate shares its key, so the window functions only need the rows whose key repeats: on real data a
    # small share. Only their ranks are stored, with the typed row's rowid; every other valid row is its own first
    # copy and stays where it is (a copy of 9M rows costs seconds and memory). Nothing has been dropped yet, so the
    # valid rows are the typed rows that pass the rules.
    # Repeats are found by a hash of the key: grouping one integer is faster than grouping the key's text, and
    # equal keys (NULLs included) hash alike. A collision only brings a row with a different key into `repeated`,
    # where the windows partition by the key itself, so it stays its own first copy. Each CTE reads the typed table
    # directly: a CTE read twice is materialized, which copied all 9M valid rows (7 s at L).
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE repeated_ranks AS
        WITH repeated_keys AS (
            SELECT hash({keys}) AS key_hash FROM {typed} WHERE reason IS NULL GROUP BY ALL HAVING count(*) > 1),
        repeated AS (
            SELECT rowid AS typed_rowid, * FROM {typed}
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
    con.execute("INSERT INTO dropped_typed_rows "
                "SELECT typed_rowid FROM repeated_ranks WHERE key_rank IS DISTINCT FROM 1")


def _and_join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def rank_long_orders(con: duckdb.DuckDBPyConnection, config: SourceConfig, run_id: str) -> None:
    """Line identity (docs/configuration.md, "Rules applied in staging"): every row is a line of its own unless
    the source declares a line key. Exact copies go unless orders.exact_duplicates is keep; only a declared key
    makes rows with other values conflicting duplicates."""
    line_key = config.orders.declared_line_key()
    if line_key is not None:
        rank_order_duplicates(con, run_id, line_key, ORDER_LINE_FIELDS_LONG, "order line", TYPED_LINES, typed_value)
    elif config.orders.exact_duplicates == "drop":
        # Keyed by every field, two rows share a key only when they are exact copies: nothing can conflict.
        rank_order_duplicates(con, run_id, ORDER_LINE_FIELDS_LONG, ORDER_LINE_FIELDS_LONG, "order line",
                              TYPED_LINES, typed_value)


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
              -- group only the window's orders, not all days
              AND order_id IN (SELECT order_id FROM valid_typed_orders)
            GROUP BY order_id""", [window.first, window.last])
        con.execute("""
            CREATE OR REPLACE TEMP TABLE other_day_rows AS
            SELECT t.typed_rowid, t._source_file, t._source_row, o.source_file, o.source_row
            FROM valid_typed_orders t JOIN other_day_orders o USING (order_id)""")
        con.execute("""
            INSERT INTO quality.removed_duplicates
            SELECT ?, 'orders', _source_file, _source_row, source_file, source_row, 'loaded_on_other_day'
            FROM other_day_rows""", [run_id])
        con.execute("INSERT INTO dropped_typed_rows SELECT typed_rowid FROM other_day_rows")
    if window is not None and window.first < window.last:
        _drop_orders_of_earlier_days_in_the_window(con, run_id)
    con.execute("CREATE OR REPLACE TEMP VIEW kept_orders AS SELECT * EXCLUDE (typed_rowid) FROM valid_typed_orders")


def _drop_orders_of_earlier_days_in_the_window(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Several landing days loaded at once (a backfill, --all-days) keep an order from its first day too: a later
    day's rows of it are repeats, as they would be if the days were loaded night by night, whatever their status
    (an order exported as shipped, then as completed, is one order, not two). Exact copies are already gone."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE window_repeats AS
        WITH first_days AS (
            SELECT order_id, min(_partition_date) AS first_day FROM valid_typed_orders
            WHERE _partition_date IS NOT NULL
            GROUP BY order_id HAVING min(_partition_date) < max(_partition_date)),
        first_rows AS (
            SELECT t.order_id, min(t._source_file) AS source_file,
                   arg_min(t._source_row, (t._source_file, t._source_row)) AS source_row
            FROM valid_typed_orders t JOIN first_days f
              ON f.order_id = t.order_id AND t._partition_date = f.first_day
            GROUP BY t.order_id)
        SELECT t.typed_rowid, t._source_file, t._source_row, r.source_file, r.source_row
        FROM valid_typed_orders t JOIN first_days f USING (order_id) JOIN first_rows r USING (order_id)
        WHERE t._partition_date > f.first_day""")
    con.execute("""
        INSERT INTO quality.removed_duplicates
        SELECT ?, 'orders', _source_file, _source_row, source_file, source_row, 'loaded_on_other_day'
        FROM window_repeats""", [run_id])
    con.execute("INSERT INTO dropped_typed_rows SELECT typed_rowid FROM window_repeats")


FILE_NUMBER_STRIDE = 1 << 40  # more data rows than any file holds, so file number * stride + row orders by file


def build_long_orders(con: duckdb.DuckDBPyConnection, window: DayWindow | None) -> None:
    """new_order_lines and new_orders: the window's staged rows, before they replace the window's days.
    new_order_lines is a view over the typed rows: it is read once, by the copy into staging (or not at all, when
    take_typed_lines renames the typed table into staging.order_lines)."""
    staged = ", ".join(f"staged_{c} AS {c}" if c in STAGED_VALUES else c for c in ORDER_LINE_COLUMNS)
    con.execute(f"CREATE OR REPLACE TEMP VIEW new_order_lines AS SELECT {staged} FROM kept_orders")
    # An order's payment method and channel come from its first line in file order: the smallest (file, row).
    # Files are numbered in name order so that the position is one integer, file number * 2^40 + row (rows are
    # numbered within a file, so a position is one line). Each distinct (payment method, channel) pair gets a number
    # (order_attribute_codes, one row per pair: few in practice), and the totals keep the number of the line at the
    # smallest position: arg_min of two integers, a state DuckDB can spill (arg_min of the texts, or of a struct,
    # held every order's text in states it cannot: L's staging failed there under a 300 MB limit, XL's under 1 GB;
    # arg_min of a text would also skip a first line whose value is missing). Joining
    # the first line back on its row id instead, where the join of 44M orders to 88.5M lines spilled, made writing
    # staging.orders take 73 s at 10M customers (43 s this way; the same rows). The customer is a grouping key: an
    # order has one customer by now (derived order ids contain it; quarantine_shared_order_ids leaves only the
    # first line's customer in a source order id). staging.orders' one row per order rests on that; the critical
    # uniqueness expectation on its order ids would fail the run otherwise.
    # No ORDER BY on the tables: readers sort what they need, and sorting millions of rows only to store them in
    # order cost seconds.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE source_file_numbers AS
        SELECT _source_file, row_number() OVER (ORDER BY _source_file) AS file_number
        FROM (SELECT DISTINCT _source_file FROM kept_orders)""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE order_attribute_codes AS
        SELECT payment_method, channel, row_number() OVER (ORDER BY payment_method, channel) AS attribute_code
        FROM (SELECT DISTINCT payment_method, channel FROM kept_orders)""")
    # new_orders is a view too when only the copy into staging.orders reads it (a snapshot load, or the first load
    # of a daily source): a table filled inside the transaction would be scanned at half speed by that copy (see
    # build_staging). A daily load into existing tables also reads it for the change queue and the order-only
    # customers, so it is aggregated once, into a table.
    read_once = window is None or not table_exists(con, "staging.orders")
    con.execute(f"""
        CREATE OR REPLACE TEMP {"VIEW" if read_once else "TABLE"} new_orders AS
        WITH totals AS (
            SELECT l.order_id, l.customer_id,
                   arg_min(c.attribute_code, f.file_number * {FILE_NUMBER_STRIDE} + l._source_row) AS first_code,
                   min(l.order_ts) AS order_ts,
                   sum(l.staged_amount) AS order_amount,
                   count(*) AS n_lines,
                   sum(l.staged_quantity) AS n_items,
                   min(l._partition_date) AS _partition_date
            FROM kept_orders l
            JOIN source_file_numbers f USING (_source_file)
            JOIN order_attribute_codes c ON c.payment_method IS NOT DISTINCT FROM l.payment_method
                                        AND c.channel IS NOT DISTINCT FROM l.channel
            GROUP BY l.order_id, l.customer_id)
        SELECT t.order_id, t.customer_id, t.order_ts, c.payment_method, c.channel,
               t.order_amount, t.n_lines, t.n_items, t._partition_date
        FROM totals t JOIN order_attribute_codes c ON c.attribute_code = t.first_code""")


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
        for name, flag in zip(config.orders.category_columns, flags, strict=True)
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
                          "basket", "typed_orders")


def replaces_every_line(con: duckdb.DuckDBPyConnection, config: SourceConfig, window: DayWindow | None) -> bool:
    """Whether this load replaces every order line with its typed rows (a long-shape snapshot load, or the first
    load of a daily source): then take_typed_lines makes the typed table staging.order_lines."""
    return config.shape == "long" and (window is None or not table_exists(con, "staging.order_lines"))


def take_typed_lines(con: duckdb.DuckDBPyConnection) -> None:
    """staging.order_lines from TYPED_LINES without copying it: the typing columns go, staged_quantity,
    staged_unit_price and staged_amount take their names, the rows that failed a rule or were dropped go, and the
    table takes staging.order_lines' name. Inside the load's transaction, after staging.orders was built from the
    kept rows (which read the columns dropped here). DuckDB refuses to commit a dropped column after a delete from
    the same table in one transaction, so the rows go last."""
    con.execute(f"INSERT INTO dropped_typed_rows SELECT rowid FROM {TYPED_LINES} WHERE reason IS NOT NULL")
    columns = [row[0] for row in con.execute(f"SELECT * FROM {TYPED_LINES} LIMIT 0").description]
    leading = [f"staged_{c}" if c in STAGED_VALUES else c for c in ORDER_LINE_COLUMNS]
    if columns[:len(leading)] != leading:  # the typing SQL puts them first; anything else would lose a column
        raise RuntimeError(f"{TYPED_LINES} starts with {columns[:len(leading)]}, not {leading}")
    for column in columns[len(leading):]:
        con.execute(f"ALTER TABLE {TYPED_LINES} DROP COLUMN {quote_identifier(column)}")
    for column in STAGED_VALUES:
        con.execute(f"ALTER TABLE {TYPED_LINES} RENAME COLUMN staged_{column} TO {column}")
    con.execute(f"DELETE FROM {TYPED_LINES} WHERE rowid IN (SELECT typed_rowid FROM dropped_typed_rows)")
    con.execute("DROP TABLE IF EXISTS staging.order_lines")
    con.execute(f"ALTER TABLE {TYPED_LINES} RENAME TO order_lines")
    # The load's rows are now the staging tables: the views that read the typed table read those instead.
    views = {row[0] for row in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'temp' AND table_type = 'VIEW'"
    ).fetchall()}
    for view, table in (("new_order_lines", "staging.order_lines"), ("new_orders", "staging.orders")):
        if view in views:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {table}")
