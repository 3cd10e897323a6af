"""Staging customers: one profile per customer (the last row in file order wins, superseded rows logged),
and the fingerprint that lets a daily load keep the profiles and move only the order-only customers."""

import hashlib
import json
import re

import duckdb

from assets.raw.tables import snapshot_load
from assets.staging.audit import CHANGED_CUSTOMERS
from assets.staging.typed import customer_typing_sql
from pipelines.core.config import SourceConfig
from pipelines.core.partitions import DayWindow
from pipelines.core.sql import sql_literal, table_exists

CUSTOMERS_BUILT_FROM = "staging.customers_built_from"


def customer_inputs_fingerprint(con: duckdb.DuckDBPyConnection, params: dict) -> str | None:
    """What decides the profiles of staging.customers besides the order-only customers: the raw customer load
    (its fingerprint, see assets/raw/tables.py), the typing parameters its SQL uses, and the year that turns a
    birth year into an age. None when the raw load has no fingerprint (no customer file, or an older warehouse)."""
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
        -- The customers of the orders with no profile row: grouped first, then an anti join on the ranked rows,
        -- every one of which has a customer id (a row without one is quarantined). With NOT IN over the profiles
        -- (NULL semantics, not planned as an anti join) the statement took 20 s at 10M customers, 15.5 s this way.
        order_only AS (
            SELECT o.customer_id
            FROM (SELECT customer_id FROM staging.orders WHERE customer_id IS NOT NULL GROUP BY customer_id) o
            ANTI JOIN ranked_profiles p ON p.customer_id = o.customer_id
        )
        SELECT * FROM profiles
        UNION ALL
        SELECT customer_id, NULL::DOUBLE, NULL::VARCHAR, NULL::DOUBLE, NULL::BOOLEAN, NULL::VARCHAR,
               NULL::VARCHAR, NULL::BIGINT, NULL::DATE
        FROM order_only
        ORDER BY customer_id""")
