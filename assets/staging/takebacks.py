"""Later cancellations and refunds of a daily source: an order that a later landing day's file exports again as
cancelled (orders.columns.status in values.cancelled_statuses), or with a line refunded (orders.columns.line_status
in values.refunded_line_statuses), takes back the sale an earlier day loaded.

Shops export a rolling window (the last 7 or 30 days, every night) precisely so that such changes reach their
reports; before this, the first day's copy of an order stood and a refund a week later was never applied. Rows of
one landing day never take back each other, and a snapshot source (no landing days) reloads every order with its
current status anyway.

- Every set-aside row of a loaded day that cancels an order or refunds a line is kept in `staging.order_takebacks`
  (replaced with its day, like the order lines), so a day loaded again later (a changed file, `--all-days`) is
  taken back again, whatever order the days arrive in.
- A cancellation takes back every line of its order loaded from an earlier day. A refunded line takes back the lines
  of its order loaded from an earlier day with the same sku, category, quantity and amount. Two such lines of one
  order (alike but for their payment or channel) are both taken back by a refund of either: the export does not say
  which one was refunded, and a count of them would not survive the nights that repeat the refund (each night's
  run sees only the lines still loaded).
- A taken-back line of this run's own days is set aside in `quality.quarantine` (`taken back on a later day
  (cancelled order (status 已取消), row 17 of orders/2026-03-05.csv)`), so the audit's identity holds for the file
  it came from. One loaded by an earlier run leaves `staging.order_lines` and is logged in `quality.retracted_lines`
  by the run that took it back: that run's audit is about its own files, and the earlier run's audit stays what it
  was when it ran. Either way its order's totals are recomputed (or the order goes, with its last line) and its
  customer is queued for the features.
"""

import duckdb

from assets.raw.readers import PARTITION_DATE
from assets.staging.audit import CHANGED_CUSTOMERS, ensure_change_queue
from assets.staging.rules import REFUNDED_LINE_OPENING, SET_ASIDE_ONLY, TAKEN_BACK_OPENING
from pipelines.core.partitions import DayWindow
from pipelines.core.sql import sql_literal, table_exists

TAKEBACKS = "staging.order_takebacks"
RETRACTED_LINES = "quality.retracted_lines"
# The part of a set-aside reason that says what the row takes back, as it stands in the reason.
_STATUS_PART = (r"(cancelled order \(status [^;]*\)|cancelled order \(cancelled_at set\)"
                r"|refunded line \(line_status [^;]*\))")
_CANCELS = "cancelled order ("  # a status or a cancellation time
# A file as its folder and name: a daily layout's files are often all data_0.csv, told apart by their day's folder
# (order_day=2026-03-05/data_0.csv).
_SHORT_FILE = "parse_filename(parse_dirpath(by_file)) || '/' || parse_filename(by_file)"
# The fields a refunded line and the line it takes back share (staged values: a missing quantity is 1 on both).
LINE_MATCH = ("sku", "category", "quantity", "amount")


def ensure_retracted_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"""CREATE TABLE IF NOT EXISTS {RETRACTED_LINES} (
        run_id VARCHAR, source_file VARCHAR, source_row BIGINT, partition_date DATE, order_id VARCHAR,
        customer_id VARCHAR, amount DOUBLE, taken_back_by_file VARCHAR, taken_back_by_row BIGINT,
        taken_back_on DATE, reason VARCHAR, retracted_at TIMESTAMP)""")


def collect_takebacks(con: duckdb.DuckDBPyConnection, typed: str | None) -> None:
    """new_takebacks: the typed rows of a landing day that were set aside only (rules.SET_ASIDE_ONLY) and cancel an
    order or refund a line. Read before the typed table loses its rule columns (take_typed_lines). `typed` None
    (the wide shape, whose baskets carry no status): none, in the table's columns."""
    if typed is None:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE new_takebacks AS
            SELECT NULL::VARCHAR AS order_id, NULL::VARCHAR AS takes_back, NULL::VARCHAR AS sku,
                   NULL::VARCHAR AS category, NULL::DOUBLE AS quantity, NULL::DOUBLE AS amount,
                   NULL::VARCHAR AS status_reason, NULL::VARCHAR AS _source_file, NULL::BIGINT AS _source_row,
                   NULL::DATE AS {PARTITION_DATE}
            WHERE FALSE""")
        return
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE new_takebacks AS
        SELECT order_id,
               CASE WHEN contains(reason, {sql_literal(_CANCELS)}) THEN 'order' ELSE 'line' END
                   AS takes_back,
               sku, category, staged_quantity AS quantity, staged_amount AS amount,
               regexp_extract(reason, {sql_literal(_STATUS_PART)}) AS status_reason,
               _source_file, _source_row, {PARTITION_DATE}
        FROM {typed}
        WHERE reason IS NOT NULL AND {PARTITION_DATE} IS NOT NULL AND order_id IS NOT NULL
          AND (contains(reason, {sql_literal(_CANCELS)})
               OR contains(reason, {sql_literal(REFUNDED_LINE_OPENING)}))
          AND regexp_full_match(reason, $set_aside)""", {"set_aside": SET_ASIDE_ONLY})


def retract_taken_back_lines(con: duckdb.DuckDBPyConnection, run_id: str, window: DayWindow | None) -> int:
    """Take back the loaded lines that a later day's row cancels or refunds (module docstring); inside the load's
    transaction, after the window's rows are in staging and before the audit counts them. Returns how many."""
    ensure_retracted_table(con)
    if not table_exists(con, TAKEBACKS) or not con.execute(f"SELECT count(*) FROM {TAKEBACKS}").fetchone()[0]:
        return 0
    same_line = " AND ".join(f"t.{f} IS NOT DISTINCT FROM l.{f}" for f in LINE_MATCH)
    own_days = "TRUE" if window is None else f"{PARTITION_DATE} BETWEEN $first AND $last"
    days = {} if window is None else {"first": window.first, "last": window.last}
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE taken_back AS
        -- Only new pairs can match: a line of this run's days (its order taken back on any later day), or a line
        -- of any day whose order a row of this run's days takes back. Lines already paired left on earlier runs.
        WITH lines AS (
            SELECT rowid AS line_rowid, order_id, customer_id, {", ".join(LINE_MATCH)}, _source_file, _source_row,
                   {PARTITION_DATE}
            FROM staging.order_lines
            WHERE {PARTITION_DATE} IS NOT NULL
              AND (order_id IN (SELECT order_id FROM new_takebacks)
                   OR ({own_days} AND order_id IN (SELECT order_id FROM {TAKEBACKS})))),
        matched AS (
            SELECT l.line_rowid, l.order_id, l.customer_id, l.amount, l._source_file, l._source_row,
                   l.{PARTITION_DATE}, t._source_file AS by_file, t._source_row AS by_row,
                   t.{PARTITION_DATE} AS by_day, t.status_reason,
                   -- The first row that takes the line back; a cancellation before a refund of the same day.
                   row_number() OVER (PARTITION BY l.line_rowid ORDER BY t.{PARTITION_DATE}, t.takes_back = 'line',
                                      t._source_file, t._source_row) AS pick
            FROM lines l JOIN {TAKEBACKS} t
              ON t.order_id = l.order_id AND t.{PARTITION_DATE} > l.{PARTITION_DATE}
             AND (t.takes_back = 'order' OR ({same_line})))
        SELECT * EXCLUDE (pick) FROM matched WHERE pick = 1""", days)
    count = con.execute("SELECT count(*) FROM taken_back").fetchone()[0]
    if not count:
        return 0
    own = own_days
    con.execute(f"""
        INSERT INTO quality.quarantine
        SELECT $run_id, 'orders', _source_file, _source_row, 'order_id', order_id,
               {sql_literal(TAKEN_BACK_OPENING)} || status_reason || ', row ' || by_row::VARCHAR || ' of '
                   || {_SHORT_FILE} || ')', current_timestamp
        FROM taken_back WHERE {own}""", {"run_id": run_id} | days)
    con.execute(f"""
        INSERT INTO {RETRACTED_LINES}
        SELECT $run_id, _source_file, _source_row, {PARTITION_DATE}, order_id, customer_id, amount, by_file, by_row,
               by_day, status_reason, current_timestamp
        FROM taken_back WHERE NOT ({own})""", {"run_id": run_id} | days)
    con.execute("DELETE FROM staging.order_lines WHERE rowid IN (SELECT line_rowid FROM taken_back)")
    _recount_orders(con)
    ensure_change_queue(con)
    con.execute(f"INSERT INTO {CHANGED_CUSTOMERS} SELECT DISTINCT customer_id, ? FROM taken_back "
                f"WHERE customer_id IS NOT NULL", [run_id])
    return count


def _recount_orders(con: duckdb.DuckDBPyConnection) -> None:
    """The orders that lost lines: their totals, time, payment and channel from the lines left (the first of them
    in file order, as staging takes them), or gone with their last line."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE taken_back_orders AS
        WITH left_lines AS (
            SELECT order_id, count(*) AS n_lines, sum(amount) AS order_amount, sum(quantity) AS n_items,
                   min(order_ts) AS order_ts,
                   arg_min(payment_method, (_source_file, _source_row)) AS payment_method,
                   arg_min(channel, (_source_file, _source_row)) AS channel
            FROM staging.order_lines WHERE order_id IN (SELECT order_id FROM taken_back) GROUP BY order_id)
        SELECT o.order_id, COALESCE(l.n_lines, 0) AS n_lines, l.order_amount, l.n_items, l.order_ts,
               l.payment_method, l.channel
        FROM (SELECT DISTINCT order_id FROM taken_back) o LEFT JOIN left_lines l USING (order_id)""")
    con.execute("DELETE FROM staging.orders WHERE order_id IN "
                "(SELECT order_id FROM taken_back_orders WHERE n_lines = 0)")
    con.execute("""
        UPDATE staging.orders o SET order_amount = t.order_amount, n_lines = t.n_lines, n_items = t.n_items,
                                    order_ts = t.order_ts, payment_method = t.payment_method, channel = t.channel
        FROM taken_back_orders t WHERE o.order_id = t.order_id AND t.n_lines > 0""")
