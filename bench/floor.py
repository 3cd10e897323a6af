"""The floor: DuckDB alone reads the input CSVs and computes the per-customer aggregates.

This is the lower bound for "ingest plus features": no validation, no quarantine, no audit, no warehouse file,
no Dagster; just one SQL query over the raw files (orders, spend, recency and category order shares per customer).
Run by bench/run.py in its own subprocess; writes its timings as JSON to --out.

    python bench/floor.py --data DIR --out result.json
"""

import argparse
import json
import time
from pathlib import Path

import duckdb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with order_lines.csv and customers.csv")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    orders = str((args.data / "order_lines.csv").resolve())
    customers = str((args.data / "customers.csv").resolve())

    started = time.perf_counter()
    con = duckdb.connect()  # in memory, DuckDB's defaults (all cores)
    con.execute(f"""
        CREATE TABLE customer_aggregates AS
        WITH lines AS (SELECT * FROM read_csv('{orders}', header = true)),
        orders AS (
            SELECT customer_id, order_id, min(order_ts) AS order_ts, sum(amount) AS order_amount
            FROM lines GROUP BY ALL),
        reference AS (SELECT max(order_ts) AS as_of FROM orders),
        rfm AS (
            SELECT customer_id, count(*) AS n_orders, sum(order_amount) AS total_spend,
                   avg(order_amount) AS avg_basket_value,
                   date_diff('day', max(order_ts), (SELECT as_of FROM reference)) AS recency_days
            FROM orders GROUP BY customer_id),
        category_orders AS (
            SELECT customer_id, category, count(DISTINCT order_id) AS n FROM lines GROUP BY ALL),
        shares AS (
            PIVOT (SELECT c.customer_id, c.category, c.n / r.n_orders AS share
                   FROM category_orders c JOIN rfm r USING (customer_id))
            ON category USING first(share) GROUP BY customer_id)
        SELECT c.customer_id, c.age, c.income, c.gender, c.home_owner, r.* EXCLUDE (customer_id),
               s.* EXCLUDE (customer_id)
        FROM read_csv('{customers}', header = true) c
        LEFT JOIN rfm r USING (customer_id) LEFT JOIN shares s USING (customer_id)""")
    customers_out, columns = con.execute(
        "SELECT count(*), (SELECT count(*) FROM duckdb_columns() WHERE table_name = 'customer_aggregates') "
        "FROM customer_aggregates").fetchone()
    seconds = time.perf_counter() - started
    con.close()
    args.out.write_text(json.dumps({"seconds": seconds, "customers": customers_out, "columns": columns}),
                        encoding="utf-8")


if __name__ == "__main__":
    main()
