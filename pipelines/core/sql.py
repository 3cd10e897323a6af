"""SQL helpers every layer shares: quoting, table look-ups and the Markdown previews shown in the Dagster UI.

They live on the ground floor so that no layer imports another layer only for a utility.
"""

from __future__ import annotations

import duckdb
import polars as pl

from pipelines.core.resources import RAW_CATALOG


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str] | None:
    """The columns of `schema.table`, None when it does not exist. raw.* lives in the attached raw database."""
    schema, name = table.split(".")
    database = "current_database()" if schema != RAW_CATALOG else f"'{RAW_CATALOG}'"
    schema = schema if schema != RAW_CATALOG else "main"
    rows = con.execute(
        f"SELECT column_name FROM duckdb_columns() WHERE database_name = {database} AND schema_name = ? "
        "AND table_name = ? ORDER BY column_index", [schema, name]).fetchall()
    return [r[0] for r in rows] or None


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether `schema.table` exists (in the attached raw database for raw.*)."""
    return table_columns(con, table) is not None


def preview_markdown(frame: pl.DataFrame, rows: int = 5) -> str:
    head = frame.head(rows)
    if head.width == 0:
        return "_(no columns)_"
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * head.width]
    for record in head.iter_rows():
        lines.append("| " + " | ".join("" if v is None else str(v) for v in record) + " |")
    return "\n".join(lines)
