"""Staging's quality tables: quarantine, key conflicts, removed duplicates and the per-file load audit; the
change queue of customers whose orders a load changed; and the cleanup of the transaction's temp tables."""

import duckdb

from assets.raw.readers import PARTITION_DATE
from assets.staging.rules import SET_ASIDE_ONLY
from assets.staging.typed import TYPED_LINES
from pipelines.core.partitions import DayWindow
from pipelines.core.sql import table_columns, table_exists


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
    # Of rows_quarantined, the order rows set aside only as cancelled orders, returns or sales without a customer
    # (rules.SET_ASIDE_ONLY); NULL in audits written before it was counted.
    con.execute("ALTER TABLE quality.load_audit ADD COLUMN IF NOT EXISTS rows_set_aside BIGINT")
    con.execute("""CREATE TABLE IF NOT EXISTS quality.removed_duplicates (
        run_id VARCHAR, input VARCHAR, source_file VARCHAR, source_row BIGINT, duplicate_of_file VARCHAR,
        duplicate_of_row BIGINT, kind VARCHAR)""")


# A work queue: staging appends the customers whose orders a load changes, the features layer recomputes their
# order aggregates and empties it (assets/features/customer_features.py). customer_id NULL stands for "every
# customer".
CHANGED_CUSTOMERS = "staging.changed_customers"


def ensure_change_queue(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS {CHANGED_CUSTOMERS} (customer_id VARCHAR, run_id VARCHAR)")


def record_changed_customers(con: duckdb.DuckDBPyConnection, run_id: str, window: DayWindow | None) -> None:
    """Queue the customers whose orders this load changes: those of the window's rows about to be replaced (and
    of former snapshot rows, which a daily load removes) and those of the new rows. Order lines are queued on
    their own too, which costs little and does not rely on each order having one customer (staging makes sure of
    that: derived order ids contain the customer, quarantine_shared_order_ids handles source ids). A snapshot load
    changes everyone."""
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


def quarantine_malformed_lines(
    con: duckdb.DuckDBPyConnection, run_id: str, input_name: str, window: DayWindow | None = None
) -> None:
    """The lines the raw layer could not parse (raw.<input>_malformed) are quarantined rows like any other: the
    whole line as raw_value, no column, the line number in the reason."""
    table = f"raw.{input_name}_malformed"
    columns = table_columns(con, table)
    if columns is None:  # raw tables loaded before malformed lines were kept
        return
    days = "" if window is None else f"WHERE {PARTITION_DATE} BETWEEN $first AND $last"
    # Lines kept before JSON Lines files had malformed lines of their own have no record_format: all are CSV lines.
    record_format = "COALESCE(record_format, 'CSV')" if "record_format" in columns else "'CSV'"
    con.execute(f"""
        INSERT INTO quality.quarantine
        SELECT $run_id, $input, _source_file, _source_row, NULL, raw_text,
               'malformed ' || {record_format} || ' record on line ' || line || ': ' || reason, current_timestamp
        FROM {table} {days}""",
                {"run_id": run_id, "input": input_name}
                | ({} if window is None else {"first": window.first, "last": window.last}))


def write_load_audit(con: duckdb.DuckDBPyConnection, run_id: str, shape: str) -> None:
    """Count where every row read by this run went, per file, from the staging tables themselves."""
    loaded_orders = "staging.order_lines" if shape == "long" else "staging.orders"
    con.execute("DELETE FROM quality.load_audit WHERE run_id = ?", [run_id])
    con.execute(f"""
        INSERT INTO quality.load_audit (run_id, input, source_file, rows_read, rows_loaded, rows_quarantined,
                                        duplicates_removed, exact_duplicates, conflicting_duplicates, audited_at,
                                        rows_set_aside)
        WITH loaded AS (
            SELECT 'orders' AS input, _source_file, count(*) AS n FROM {loaded_orders} GROUP BY ALL
            UNION ALL
            SELECT 'customers', _source_file, count(*) FROM staging.customers
            WHERE _source_file IS NOT NULL AND $shape = 'long' GROUP BY ALL
            UNION ALL
            SELECT 'products', _source_file, count(*) FROM staging.products GROUP BY ALL
        ),
        quarantined AS (
            SELECT input, source_file, count(*) AS n,
                   count(*) FILTER (WHERE input = 'orders' AND regexp_full_match(reason, $set_aside)) AS set_aside_n
            FROM quality.quarantine WHERE run_id = $run_id GROUP BY ALL
        ),
        removed AS (
            SELECT input, source_file, count(*) AS n, count(*) FILTER (WHERE kind = 'exact') AS exact_n
            FROM quality.removed_duplicates WHERE run_id = $run_id GROUP BY ALL
        )
        SELECT $run_id, f.input, f.source_file, f.rows_read,
               COALESCE(l.n, 0), COALESCE(q.n, 0), COALESCE(r.n, 0), COALESCE(r.exact_n, 0),
               COALESCE(r.n, 0) - COALESCE(r.exact_n, 0)
                 + COALESCE((SELECT count(*) FROM quality.quarantine qq
                             WHERE qq.run_id = $run_id AND qq.input = f.input AND qq.source_file = f.source_file
                               AND qq.reason LIKE 'conflicting duplicate%'), 0),
               current_timestamp, COALESCE(q.set_aside_n, 0)
        FROM raw.source_files f
        LEFT JOIN loaded l ON l.input = f.input AND l._source_file = f.source_file
        LEFT JOIN quarantined q ON q.input = f.input AND q.source_file = f.source_file
        LEFT JOIN removed r ON r.input = f.input AND r.source_file = f.source_file
        WHERE f.run_id = $run_id
        ORDER BY f.input DESC, f.source_file""", {"shape": shape, "run_id": run_id, "set_aside": SET_ASIDE_ONLY})


def drop_order_intermediates(con: duckdb.DuckDBPyConnection) -> None:
    """Free the typed rows as soon as the staging tables hold them: the later steps of the transaction (audit,
    checks) need the memory at scale."""
    # Views first (they read the tables); new_order_lines is a view for the long shape, a table for the wide one.
    temporary = con.execute("SELECT table_name, table_type FROM information_schema.tables "
                            "WHERE table_catalog = 'temp' ORDER BY table_type DESC").fetchall()
    intermediates = {"new_order_lines", "kept_orders", "new_orders", "other_day_orders", "other_day_rows",
                     "valid_typed_orders", "dropped_typed_rows", "shared_order_lines",
                     "repeated_ranks", "typed_orders", "source_file_numbers", "order_attribute_codes",
                     "typed_products", "ranked_products", "product_lookup", "description_categories",
                     "new_takebacks", "taken_back", "taken_back_orders", "window_repeats"}
    for name, kind in temporary:
        if name in intermediates:
            con.execute(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} {name}")
    con.execute(f"DROP TABLE IF EXISTS {TYPED_LINES}")  # left when a load failed before taking it
