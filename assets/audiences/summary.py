"""What the report reads of the audience layer: every audience of the latest run in segments.audience_history, with
the same audience's row of the run before (NULL when it did not exist then). Empty when the tables are missing (a
warehouse from before the layer) or the latest run defined no audience."""

import duckdb
import polars as pl

from pipelines.core.sql import table_exists

SUMMARY_SQL = """
    WITH runs AS (SELECT run_id, max(computed_at) AS computed_at FROM segments.audience_history GROUP BY run_id),
    ranked AS (SELECT run_id, row_number() OVER (ORDER BY computed_at DESC, run_id DESC) AS n FROM runs)
    SELECT h.run_id, h.computed_at, h.audience, h.description, h.rule, h.customers, h.share,
           p.run_id AS previous_run_id, p.computed_at AS previous_computed_at, p.rule AS previous_rule,
           p.customers AS previous_customers
    FROM segments.audience_history h
    LEFT JOIN segments.audience_history p
      ON p.audience = h.audience AND p.run_id = (SELECT run_id FROM ranked WHERE n = 2)
    WHERE h.run_id = (SELECT run_id FROM ranked WHERE n = 1)
    ORDER BY h.audience"""

SUMMARY_SCHEMA = {
    "run_id": pl.String, "computed_at": pl.Datetime("us"), "audience": pl.String, "description": pl.String,
    "rule": pl.String, "customers": pl.Int64, "share": pl.Float64, "previous_run_id": pl.String,
    "previous_computed_at": pl.Datetime("us"), "previous_rule": pl.String, "previous_customers": pl.Int64,
}


def load_audience_summary(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    if not table_exists(con, "segments.audience_history"):
        return pl.DataFrame(schema=SUMMARY_SCHEMA)
    return con.execute(SUMMARY_SQL).pl().cast(SUMMARY_SCHEMA)
