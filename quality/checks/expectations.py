"""The Great Expectations gate as an asset: quality/validation_results, quality/validated_inputs and
quality/validated_days.

One suite per raw and staging table, validated after staging has run (staging still runs for a broken export and
writes its quarantine and audit rows, which say what is wrong). Each suite's outcome is one blocking asset check
(`<suite>_expectations`) on quality/validation_results: a failed critical expectation fails the step with ERROR
severity, which stops every asset downstream of the validation results (features/customer_features and all after
it, publishing included); a failed warning is reported with WARN severity and does not.

A daily source's order suites validate the rows of the run's days only; the other days keep the outcomes of the
runs that validated them: quality.validated_days names that run per suite and day, quality.validation_results
carries each outcome's first_day and last_day, and each check's metadata says which days this run validated and
how many it kept from which runs.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import dagster as dg
import duckdb
import polars as pl

from assets.raw.tables import snapshot_load
from pipelines.core.config import SourceConfig
from pipelines.core.partitions import DayWindow, window_from_tags
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.core.sql import preview_markdown
from quality import suites
from quality.validation import (
    CRITICAL,
    ExpectationOutcome,
    SuiteSpec,
    ensure_results_table,
    ensure_validated_days_table,
    ensure_validated_inputs_table,
    kept_days,
    record_validated_days,
    record_validated_input,
    reuse_outcomes,
    store_outcomes,
    suite_digest,
    validate_suites,
)

VALIDATION_RESULTS = dg.AssetKey(["quality", "validation_results"])
VALIDATED_INPUTS = dg.AssetKey(["quality", "validated_inputs"])
VALIDATED_DAYS = dg.AssetKey(["quality", "validated_days"])

# (config, check time, the run's days for a daily source, the warehouse) -> the suite bound to the rows it validates
SuiteBuilder = Callable[[SourceConfig, datetime, DayWindow | None, duckdb.DuckDBPyConnection], SuiteSpec]

# Suite -> builder, in the order the suites are validated.
SUITES: dict[str, SuiteBuilder] = {
    "raw_orders": lambda config, now, days, con: suites.raw_orders_suite(config, days),
    "raw_customers": lambda config, now, days, con: suites.raw_customers_suite(config),
    "raw_products": lambda config, now, days, con: suites.raw_products_suite(config),
    "staging_orders": lambda config, now, days, con: suites.staging_orders_suite(config, now, days),
    "staging_order_lines": lambda config, now, days, con: suites.staging_order_lines_suite(config, days),
    "staging_customers": lambda config, now, days, con: suites.staging_customers_suite(
        config, suites.profile_fields_provided(con, config)),
    "staging_products": lambda config, now, days, con: suites.staging_products_suite(config),
}

# The tables the suites read. Not quality/load_audit: its blocking checks would then skip validation, and a run
# whose quarantine share fails should still record what its expectations found.
VALIDATED = [["raw", "orders"], ["raw", "customers"], ["raw", "products"], ["staging", "orders"],
             ["staging", "order_lines"], ["staging", "customers"], ["staging", "products"]]


def check_name(suite_name: str) -> str:
    return f"{suite_name}_expectations"


def describe_failures(outcomes: list[ExpectationOutcome]) -> str:
    failed = [o for o in outcomes if not o.success]
    parts = []
    for outcome in failed:
        detail = (f"{outcome.unexpected_count} unexpected ({outcome.unexpected_percent:.2f}%)"
                  if outcome.unexpected_count is not None else f"observed {outcome.observed_value}")
        column = f"({outcome.column})" if outcome.column else ""
        parts.append(f"{outcome.table}: {outcome.expectation}{column} [{outcome.severity}]: {detail}")
    return "; ".join(parts)


def suite_check_result(outcomes: list[ExpectationOutcome], reused_from: str | None = None,
                       suite_name: str | None = None, days: dict | None = None) -> dg.AssetCheckResult:
    """The check result of one suite: a failed critical expectation is an ERROR (it blocks), a failed warning
    alone a WARN. `suite_name` names the check (`<suite>_expectations` on quality/validation_results); `days`, for
    a suite over a daily source's days, which days this run validated and which it keeps (kept_days)."""
    critical_failed = [o for o in outcomes if not o.success and o.severity == CRITICAL]
    rows = [{"expectation": o.expectation, "column": o.column, "severity": o.severity, "success": o.success,
             "unexpected": o.unexpected_count, "observed": o.observed_value} for o in outcomes]
    target = {"asset_key": VALIDATION_RESULTS, "check_name": check_name(suite_name)} if suite_name else {}
    return dg.AssetCheckResult(
        **target,
        passed=all(o.success for o in outcomes),
        severity=dg.AssetCheckSeverity.ERROR if critical_failed else dg.AssetCheckSeverity.WARN,
        description=describe_failures(outcomes) or None,
        metadata={
            "expectations": len(outcomes),
            "failed": sum(not o.success for o in outcomes),
            "failed_critical": len(critical_failed),
            "batches": outcomes[0].batches if outcomes else 0,
            "results": dg.MetadataValue.md(preview_markdown(pl.DataFrame(rows), rows=len(rows))),
            "reused_from_run": reused_from or "none (validated by this run)",
            **({} if days is None else {k: dg.MetadataValue.json(v) if isinstance(v, dict) else v
                                        for k, v in days.items()}),
        },
    )


def build_table_name(suite_name: str) -> str:
    layer, _, table = suite_name.partition("_")
    return f"{layer}.{table}"


@dataclass(frozen=True)
class SuitePlan:
    """One suite of this run: the rows it validates, and the outcomes of an earlier run when they are reused."""

    name: str
    spec: SuiteSpec
    # The snapshot load and suite digest of a snapshot table (None for a daily source's days).
    fingerprint: str | None
    reused: dg.AssetCheckResult | None


def plan_suite(context: dg.AssetExecutionContext, con: duckdb.DuckDBPyConnection, config: SourceConfig,
               suite_name: str, build: SuiteBuilder) -> SuitePlan:
    """The suite bound to this run's rows; its check result already when an earlier run validated the same rows."""
    spec = build(config, datetime.now(), window_from_tags(context.run.tags) if config.daily else None, con)
    # A snapshot table a run did not reload (raw.customers with an unchanged customer file) holds the rows
    # an earlier run validated: with the same suite, that run's outcomes are this run's.
    loaded = snapshot_load(con, spec.table)
    fingerprint = f"{loaded[0]}:{suite_digest(spec)}" if loaded else None
    reused = reuse_outcomes(con, context.run.run_id, suite_name, fingerprint) if fingerprint else None
    if not reused:
        return SuitePlan(suite_name, spec, fingerprint, None)
    context.log.info(f"{spec.table} is unchanged since run {reused[0]} validated it; outcomes reused")
    return SuitePlan(suite_name, spec, fingerprint,
                     suite_check_result(reused[1], reused_from=reused[0], suite_name=suite_name))


def record_suite(context: dg.AssetExecutionContext, con: duckdb.DuckDBPyConnection, plan: SuitePlan,
                 outcomes: list[ExpectationOutcome]) -> dg.AssetCheckResult:
    """Store the outcomes this run found for one suite, and its check result."""
    run_id = context.run.run_id
    spec = plan.spec
    store_outcomes(con, run_id, plan.name, outcomes, spec.days)
    if plan.fingerprint:
        record_validated_input(con, run_id, plan.name, plan.fingerprint)
    days = None
    if spec.days is not None:
        # A daily run validates the rows of its days; the other loaded days keep the outcomes of the runs that
        # validated them (quality.validated_days), which the check's metadata names.
        loaded = [row[0] for row in con.execute(
            f"SELECT DISTINCT _partition_date FROM {spec.table} WHERE _partition_date IS NOT NULL").fetchall()]
        record_validated_days(con, run_id, plan.name, spec.days, outcomes, loaded)
        days = kept_days(con, plan.name, spec.days, loaded)
    return suite_check_result(outcomes, suite_name=plan.name, days=days)


def validate(context: dg.AssetExecutionContext, con: duckdb.DuckDBPyConnection, config: SourceConfig,
             batch_rows: int) -> list[dg.AssetCheckResult]:
    """Every suite's check result, in SUITES' order: reused where an earlier run validated the same rows,
    otherwise validated now (several suites at once, validate_suites) and stored."""
    plans = [plan_suite(context, con, config, name, build) for name, build in SUITES.items()]
    pending = [plan for plan in plans if plan.reused is None]
    found = dict(zip([plan.name for plan in pending],
                     validate_suites(con, [plan.spec for plan in pending], batch_rows), strict=True))
    return [plan.reused or record_suite(context, con, plan, found[plan.name]) for plan in plans]


VALIDATION_SPECS = [
    dg.AssetSpec(VALIDATION_RESULTS, group_name="quality", kinds={"duckdb", "great_expectations"}, deps=VALIDATED,
                 description="One row per run, suite and expectation (grain: run_id, suite, expectation, "
                             "column_name): severity (critical blocks, warning reports), success, observed value, "
                             "unexpected count and share, batches, validated_at, and first_day..last_day: the "
                             "landing days whose rows were validated (NULL: the whole table). Outcomes reused from "
                             "an earlier "
                             "run (unchanged snapshot rows) are copied under this run's id with their original "
                             "validation time."),
    dg.AssetSpec(VALIDATED_INPUTS, group_name="quality", kinds={"duckdb"}, deps=VALIDATED,
                 description="One row per run and snapshot suite (grain: run_id, suite): the fingerprint of the "
                             "rows validated (snapshot load and suite digest), by which a later run reuses the "
                             "outcomes of unchanged rows."),
    dg.AssetSpec(VALIDATED_DAYS, group_name="quality", kinds={"duckdb"}, deps=VALIDATED,
                 description="One row per suite and landing day of a daily source (grain: suite, day): the run "
                             "whose outcomes in quality.validation_results cover the day's rows, when, whether "
                             "they passed, failed expectations (critical). A run validates the rows of its own "
                             "days and keeps the other days' outcomes; empty for a snapshot source."),
]

VALIDATION_CHECKS = [
    dg.AssetCheckSpec(check_name(name), asset=VALIDATION_RESULTS, blocking=True,
                      description=f"Great Expectations suite `{name}` (table {build_table_name(name)}); results "
                                  "are stored in quality.validation_results.")
    for name in SUITES
]


@dg.multi_asset(specs=VALIDATION_SPECS, check_specs=VALIDATION_CHECKS, pool="duckdb_writer")
def validation_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """Validates every suite over the rows of this run (a daily source's days, snapshot tables whole), stores the
    outcomes in quality.validation_results and the fingerprints of validated snapshots in quality.validated_inputs,
    and reports one blocking check per suite."""
    config = source.load()
    run_id = context.run.run_id
    window = window_from_tags(context.run.tags) if config.daily else None
    with warehouse.connect() as con:
        # The tables exist after every run, also when no suite validated a snapshot (nothing to reuse).
        ensure_results_table(con)
        ensure_validated_inputs_table(con)
        # The suites over a daily source's days (the others validate whole tables).
        ensure_validated_days_table(con, [name for name, build in SUITES.items()
                                          if config.daily and build(config, datetime.now(), window, con).days])
        results = validate(context, con, config, config.quality.validation_batch_rows)
        stored = {table: con.execute(f"SELECT count(*) FILTER (WHERE run_id = ?), count(*) FROM {table}",
                                     [run_id]).fetchone()
                  for table in ("quality.validation_results", "quality.validated_inputs", "quality.validated_days")}
    this_run, total = stored["quality.validation_results"]
    yield dg.MaterializeResult(asset_key=VALIDATION_RESULTS, metadata={
        "dagster/row_count": total, "rows_this_run": this_run,
        "failed_suites": dg.MetadataValue.json(sorted(r.check_name for r in results if not r.passed))})
    this_run, total = stored["quality.validated_inputs"]
    yield dg.MaterializeResult(asset_key=VALIDATED_INPUTS, metadata={
        "dagster/row_count": total, "rows_this_run": this_run})
    this_run, total = stored["quality.validated_days"]
    yield dg.MaterializeResult(asset_key=VALIDATED_DAYS, metadata={
        "dagster/row_count": total, "rows_this_run": this_run})
    yield from results
