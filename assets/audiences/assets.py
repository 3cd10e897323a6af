"""The nightly asset `segments/audiences` (+ `segments/audience_history`): every audience of the source config
evaluated over the per-customer view in a sandbox, its members replaced and its size appended to the history."""

from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg
import duckdb
import polars as pl
import pyarrow as pa

from pipelines.core.audience_rules import (
    VIEW_NAME,
    Audience,
    RuleRefused,
    check_columns,
    parse_rule,
    rule_expression,
)
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.core.sql import preview_markdown, table_columns

SCHEMA = "segments"
GROUP = "audiences"
HISTORY_COLUMNS = ("run_id VARCHAR, computed_at TIMESTAMP, audience VARCHAR, customers BIGINT, share DOUBLE, "
                   "rule VARCHAR, description VARCHAR")

# The per-customer tables the view joins onto segments.customer_segments: (table, alias, {column: name in the view}
# or None for every column but customer_id, the joined relation). A table or column a warehouse lacks leaves its
# columns out of the view (and a rule reading one is refused by name).
_VIEW_JOINS = (
    ("segments.customer_value_tiers", "t",
     {"value_tier_key": "value_tier", "value_tier_zh": "value_tier_zh", "value_tier_en": "value_tier_en",
      "rfm_tier_key": "rfm_tier", "rfm_tier_zh": "rfm_tier_zh", "rfm_tier_en": "rfm_tier_en", "r_score": "r_score",
      "f_score": "f_score", "m_score": "m_score"}, "segments.customer_value_tiers"),
    ("predict.churn_risk", "r", {"churn_risk": "churn_risk", "at_risk": "at_risk"}, "predict.churn_risk"),
    ("predict.customer_value", "v",
     {"p_alive": "p_alive", "expected_purchases": "expected_purchases",
      "expected_order_value": "expected_order_value", "expected_spend": "expected_spend"}, "predict.customer_value"),
    ("predict.next_category", "n", {"next_categories": "next_categories"},
     "(SELECT customer_id, list(category ORDER BY rank) AS next_categories FROM predict.next_category "
     "GROUP BY customer_id)"),
    ("features.customer_features", "f", None, "features.customer_features"),
)
_SEGMENT_COLUMNS = ("customer_id", "segment_id", "segment_name_zh", "segment_name_en", "is_outlier")


def view_sql(con: duckdb.DuckDBPyConnection) -> str:
    """The per-customer view every rule reads: one row per customer of segments.customer_segments."""
    present = table_columns(con, "segments.customer_segments") or []
    columns = [f"s.{column}" for column in _SEGMENT_COLUMNS if column in present]
    taken = {column for column in _SEGMENT_COLUMNS if column in present}
    joins = []
    for table, alias, wanted, relation in _VIEW_JOINS:
        present = table_columns(con, table)
        if present is None:
            continue
        if table == "predict.next_category":
            present = ["next_categories"]
        names = wanted if wanted is not None else {c: c for c in present if c != "customer_id"}
        chosen = [(column, name) for column, name in names.items() if column in present and name not in taken]
        if not chosen:
            continue
        taken.update(name for _, name in chosen)
        columns.extend(f"{alias}.{_quoted(column)}" + (f" AS {_quoted(name)}" if name != column else "")
                       for column, name in chosen)
        joins.append(f"LEFT JOIN {relation} {alias} ON {alias}.customer_id = s.customer_id")
    return f"SELECT {', '.join(columns)} FROM segments.customer_segments s {' '.join(joins)}"


def view_columns(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE {sql}").fetchall()]


def _sandbox(memory_limit: str) -> duckdb.DuckDBPyConnection:
    """An in-memory connection that can reach no file, load no extension and change none of this."""
    return duckdb.connect(":memory:", config={
        "enable_external_access": False, "autoload_known_extensions": False, "autoinstall_known_extensions": False,
        "memory_limit": memory_limit, "temp_directory": "", "threads": 2, "lock_configuration": True})


def _first_line(exc: BaseException) -> str:
    return " ".join((str(exc).strip().splitlines() or [type(exc).__name__])[0].split())


def evaluate_audiences(con: duckdb.DuckDBPyConnection, audiences: Sequence[Audience],
                       memory_limit: str = "1GB") -> tuple[pa.Table, int]:
    """The members (audience, customer_id) of every audience and the number of customers in the view. Every rule is
    parsed and its columns checked against the view before anything is evaluated; a bad rule raises RuleRefused
    naming the audience."""
    sql = view_sql(con)
    available = view_columns(con, sql)
    used: list[str] = []
    for audience in audiences:
        parsed = parse_rule(audience.rule, audience.name)
        check_columns(parsed, audience.name, {column.lower() for column in available})
        used.extend(column for column in parsed.columns if column not in used)
    # Only the columns the rules read cross into the sandbox (names exactly as the view spells them).
    selected = ["customer_id", *(column for column in available if column.lower() in used and column != "customer_id")]
    base = con.execute(f"SELECT {', '.join(_quoted(c) for c in selected)} FROM ({sql})").arrow()
    if isinstance(base, pa.RecordBatchReader):
        base = base.read_all()
    empty = pa.table({"audience": pa.array([], pa.string()), "customer_id": pa.array([], pa.string())})
    parts = [empty]
    with _sandbox(memory_limit) as sandbox:
        sandbox.register(VIEW_NAME, base)
        for audience in audiences:
            expression = rule_expression(audience.rule)
            try:
                kind = sandbox.execute(f"DESCRIBE SELECT {expression} AS keep FROM {VIEW_NAME}").fetchall()[0][1]
            except duckdb.Error as exc:
                raise RuleRefused(f"audience {audience.name}: {_first_line(exc)}") from None
            if kind not in ("BOOLEAN", '"NULL"'):
                raise RuleRefused(f"audience {audience.name}: the rule gives {kind}, not true or false; compare it "
                                  "(for example churn_risk >= 0.5)")
            try:
                members = sandbox.execute(
                    f"SELECT $name::VARCHAR AS audience, customer_id::VARCHAR AS customer_id FROM {VIEW_NAME} "
                    f"WHERE {expression}", {"name": audience.name}).arrow()
            except duckdb.Error as exc:
                raise RuleRefused(f"audience {audience.name}: {_first_line(exc)}") from None
            parts.append(members.read_all() if isinstance(members, pa.RecordBatchReader) else members)
    return pa.concat_tables([part.cast(empty.schema) for part in parts]), base.num_rows


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.audience_history ({HISTORY_COLUMNS})")


def write_audiences(con: duckdb.DuckDBPyConnection, audiences: Sequence[Audience], members: pa.Table,
                    customers: int, run_id: str, computed_at: datetime) -> pl.DataFrame:
    """segments.audiences replaced by `members`; this run's rows of segments.audience_history (one per audience,
    sizes from `members`) replace any the run wrote before (a retried step). Returns the run's history rows."""
    counts = pl.from_arrow(members).group_by("audience").len() if members.num_rows else None
    sizes = dict(counts.iter_rows()) if counts is not None else {}
    history = pl.DataFrame(
        [{"run_id": run_id, "computed_at": computed_at, "audience": a.name, "customers": sizes.get(a.name, 0),
          "share": sizes.get(a.name, 0) / customers if customers else None, "rule": a.rule,
          "description": a.description} for a in audiences],
        schema={"run_id": pl.String, "computed_at": pl.Datetime("us"), "audience": pl.String,
                "customers": pl.Int64, "share": pl.Float64, "rule": pl.String, "description": pl.String},
        orient="row")
    ensure_tables(con)
    con.execute("BEGIN TRANSACTION")
    con.register("audience_members", members)
    con.execute(f"CREATE OR REPLACE TABLE {SCHEMA}.audiences AS SELECT audience, customer_id FROM audience_members "
                "ORDER BY audience, customer_id")
    con.unregister("audience_members")
    con.execute(f"DELETE FROM {SCHEMA}.audience_history WHERE run_id = ?", [run_id])
    con.register("history_rows", history.to_arrow())
    con.execute(f"INSERT INTO {SCHEMA}.audience_history BY NAME SELECT * FROM history_rows")
    con.unregister("history_rows")
    con.execute("COMMIT")
    return history


SPECS = [
    dg.AssetSpec([SCHEMA, "audiences"], group_name=GROUP, kinds={"duckdb"},
                 deps=[["segments", "customer_segments"], ["segments", "customer_value_tiers"],
                       ["predict", "churn_risk"], ["predict", "customer_value"], ["predict", "next_category"],
                       ["features", "customer_features"]],
                 description="segments.audiences: one row per audience of the source config (`audiences:`) and "
                             "member customer, from its rule over the per-customer view; replaced every run (empty "
                             "without audiences)."),
    dg.AssetSpec([SCHEMA, "audience_history"], group_name=GROUP, kinds={"duckdb"},
                 deps=[[SCHEMA, "audiences"]],
                 description="segments.audience_history: one row per audience per run (run_id, computed_at, "
                             "audience, customers, share, rule, description), kept across runs."),
]


@dg.multi_asset(specs=SPECS, pool="duckdb_writer")
def audience_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """Evaluates every audience rule of the source config over the per-customer view, in a sandbox without file
    access, and publishes the members and each audience's size for this run."""
    audiences = source.load().audiences
    run_id = context.run.run_id
    with warehouse.connect() as con:
        members, customers = evaluate_audiences(con, audiences, warehouse.memory_limit)
        history = write_audiences(con, audiences, members, customers, run_id,
                                  datetime.now(UTC).replace(tzinfo=None))
        history_rows = con.execute(f"SELECT count(*) FROM {SCHEMA}.audience_history").fetchone()[0]
    yield dg.MaterializeResult(asset_key=[SCHEMA, "audiences"], metadata={
        "dagster/row_count": members.num_rows, "audiences": len(audiences),
        "sizes": dg.MetadataValue.md(preview_markdown(history.select("audience", "customers", "share"),
                                                      rows=max(len(audiences), 1)))})
    yield dg.MaterializeResult(asset_key=[SCHEMA, "audience_history"], metadata={
        "dagster/row_count": history_rows, "this_run": history.height})
    context.log.info(f"{len(audiences)} audience(s) over {customers:,} customers: "
                     + ", ".join(f"{row['audience']} {row['customers']:,}" for row in history.iter_rows(named=True)))
