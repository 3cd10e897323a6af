"""Asset checks that gate publishing. Blocking checks stop every downstream asset when they fail.

- One Great Expectations suite per raw and staging table (`<suite>_expectations`): a failed critical expectation
  blocks, a failed warning is reported with WARN severity and does not.
- The load audit identity and the quarantine share (`quality/load_audit`).
- Every customer segmented with unique names (`segments/customer_segments`).
"""

from collections.abc import Callable
from datetime import datetime

import dagster as dg
import polars as pl

from assets.raw.ingest import snapshot_load
from pipelines.core.config import SourceConfig
from pipelines.core.faults import crash_point
from pipelines.core.partitions import DayWindow, window_from_tags
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.core.sql import preview_markdown
from quality import suites
from quality.validation import (
    CRITICAL,
    ExpectationOutcome,
    SuiteSpec,
    record_validated_input,
    reuse_outcomes,
    store_outcomes,
    suite_digest,
    validate_suite,
)

# (config, check time, the run's days for a daily source) -> the suite bound to the rows it validates
SuiteBuilder = Callable[[SourceConfig, datetime, DayWindow | None], SuiteSpec]

# Suite -> (the asset its check hangs on, builder). The raw suites hang on quality/load_audit rather than on the
# raw tables: staging then still runs for a broken export and writes its quarantine and audit rows, which say
# what is wrong, while the failed check keeps everything after the audit from being published.
SUITES: dict[str, tuple[list[str], SuiteBuilder]] = {
    "raw_orders": (["quality", "load_audit"], lambda config, now, days: suites.raw_orders_suite(config, days)),
    "raw_customers": (["quality", "load_audit"], lambda config, now, days: suites.raw_customers_suite(config)),
    "staging_orders": (["staging", "orders"], suites.staging_orders_suite),
    "staging_order_lines": (["staging", "order_lines"],
                            lambda config, now, days: suites.staging_order_lines_suite(config, days)),
    "staging_customers": (["staging", "customers"],
                          lambda config, now, days: suites.staging_customers_suite(config)),
}


def describe_failures(outcomes: list[ExpectationOutcome]) -> str:
    failed = [o for o in outcomes if not o.success]
    parts = []
    for outcome in failed:
        detail = (f"{outcome.unexpected_count} unexpected ({outcome.unexpected_percent:.2f}%)"
                  if outcome.unexpected_count is not None else f"observed {outcome.observed_value}")
        column = f"({outcome.column})" if outcome.column else ""
        parts.append(f"{outcome.table}: {outcome.expectation}{column} [{outcome.severity}]: {detail}")
    return "; ".join(parts)


def suite_check_result(outcomes: list[ExpectationOutcome], reused_from: str | None = None) -> dg.AssetCheckResult:
    critical_failed = [o for o in outcomes if not o.success and o.severity == CRITICAL]
    rows = [{"expectation": o.expectation, "column": o.column, "severity": o.severity, "success": o.success,
             "unexpected": o.unexpected_count, "observed": o.observed_value} for o in outcomes]
    return dg.AssetCheckResult(
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
        },
    )


def build_table_name(suite_name: str) -> str:
    layer, _, table = suite_name.partition("_")
    return f"{layer}.{table}"


def build_suite_check(suite_name: str, asset_key: list[str], build: SuiteBuilder) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(asset_key),
        name=f"{suite_name}_expectations",
        blocking=True,
        pool="duckdb_writer",
        description=f"Great Expectations suite `{suite_name}` (table {build_table_name(suite_name)}); results "
                    "are stored in quality.validation_results.",
    )
    def suite_check(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, source: SourceResource
    ) -> dg.AssetCheckResult:
        config = source.load()
        spec = build(config, datetime.now(), window_from_tags(context.run.tags) if config.daily else None)
        run_id = context.run.run_id
        with warehouse.connect() as con:
            # A snapshot table a run did not reload (raw.customers with an unchanged customer file) holds the rows
            # an earlier run validated: with the same suite, that run's outcomes are this run's.
            loaded = snapshot_load(con, spec.table)
            fingerprint = f"{loaded[0]}:{suite_digest(spec)}" if loaded else None
            reused = reuse_outcomes(con, run_id, suite_name, fingerprint) if fingerprint else None
            if reused:
                context.log.info(f"{spec.table} is unchanged since run {reused[0]} validated it; outcomes reused")
                return suite_check_result(reused[1], reused_from=reused[0])
            outcomes = validate_suite(con, spec, config.quality.validation_batch_rows)
            store_outcomes(con, run_id, suite_name, outcomes)
            if fingerprint:
                record_validated_input(con, run_id, suite_name, fingerprint)
        return suite_check_result(outcomes)

    return suite_check


SUITE_CHECKS = [build_suite_check(name, key, build) for name, (key, build) in SUITES.items()]


@dg.asset_check(asset=dg.AssetKey(["quality", "load_audit"]), blocking=True)
def load_audit_identity(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Nothing lost silently: for every file of this run, rows_read = rows_loaded + rows_quarantined +
    duplicates_removed."""
    with warehouse.connect(read_only=True) as con:
        audit = con.execute(
            """SELECT input, source_file, rows_read, rows_loaded, rows_quarantined, duplicates_removed
               FROM quality.load_audit WHERE run_id = ? ORDER BY input DESC, source_file""",
            [context.run.run_id],
        ).pl()
    broken = audit.filter(
        audit["rows_read"] != audit["rows_loaded"] + audit["rows_quarantined"] + audit["duplicates_removed"]
    )
    return dg.AssetCheckResult(
        passed=audit.height > 0 and broken.is_empty(),
        metadata={
            "files": audit.height,
            "rows_read": int(audit["rows_read"].sum()) if audit.height else 0,
            "broken_files": dg.MetadataValue.md(preview_markdown(broken, rows=20)) if broken.height else "none",
        },
    )


@dg.asset_check(asset=dg.AssetKey(["quality", "load_audit"]), blocking=True)
def quarantine_share_within_limit(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, source: SourceResource
) -> dg.AssetCheckResult:
    """A file that loses more than `quality.max_quarantine_share` of its rows to quarantine is a broken export:
    segments are not published from it."""
    limit = source.load().quality.max_quarantine_share
    with warehouse.connect(read_only=True) as con:
        shares = con.execute(
            """SELECT source_file, rows_read, rows_quarantined,
                      CASE WHEN rows_read = 0 THEN 0 ELSE rows_quarantined / rows_read END AS share
               FROM quality.load_audit WHERE run_id = ? ORDER BY share DESC""",
            [context.run.run_id],
        ).pl()
    over = shares.filter(shares["share"] > limit)
    return dg.AssetCheckResult(
        passed=over.is_empty(),
        description=None if over.is_empty() else (
            f"{over['source_file'][0]}: {over['share'][0]:.1%} of rows quarantined, above "
            f"quality.max_quarantine_share {limit:.1%}"),
        metadata={"limit": limit, "worst_share": float(shares["share"].max() or 0) if shares.height else 0.0,
                  "files": dg.MetadataValue.md(preview_markdown(shares, rows=20))},
    )


@dg.asset_check(asset=dg.AssetKey(["segments", "customer_segments"]), blocking=True)
def every_customer_segmented(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Each staged customer has exactly one segment row, and segment names are unique in both languages."""
    with warehouse.connect(read_only=True) as con:
        staged, segmented, distinct_ids = con.execute(
            """SELECT (SELECT count(*) FROM staging.customers),
                      (SELECT count(*) FROM segments.customer_segments),
                      (SELECT count(DISTINCT customer_id) FROM segments.customer_segments)"""
        ).fetchone()
        names = con.execute(
            """SELECT count(DISTINCT segment_id), count(DISTINCT segment_name_zh), count(DISTINCT segment_name_en)
               FROM segments.customer_segments"""
        ).fetchone()
    passed = staged == segmented == distinct_ids and len(set(names)) == 1
    crash_point("segments:checked")
    return dg.AssetCheckResult(
        passed=passed,
        metadata={"staged_customers": staged, "segment_rows": segmented, "distinct_customers": distinct_ids,
                  "segments": names[0], "distinct_names_zh": names[1], "distinct_names_en": names[2]},
    )


ALL_CHECKS = [*SUITE_CHECKS, load_audit_identity, quarantine_share_within_limit, every_customer_segmented]


# --- predictive layer (assets/predict.py): warnings, never blocking ------------------------------------------------

from assets.predict.models import EVALUATED, TRAINED  # noqa: E402 - kept with the checks that use it (appended block)


def _latest_row(warehouse: WarehouseResource, table: str, run_id: str) -> dict | None:
    with warehouse.connect(read_only=True) as con:
        frame = con.execute(f"SELECT * FROM predict.{table} WHERE run_id = ?", [run_id]).pl()
    return frame.row(0, named=True) if frame.height else None


@dg.asset_check(asset=dg.AssetKey(["predict", "churn_model_runs"]), blocking=False)
def churn_model_quality(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """The churn model of this run ranks and calibrates well enough on the held-out window: AUC at least
    `predict.min_auc` and calibration error at most `predict.max_calibration_error`. A warning only: the scores
    are still published. A run that could not train (no order dates, too short a history) passes with its reason."""
    row = _latest_row(warehouse, "churn_model_runs", context.run.run_id)
    if row is None or row["status"] != TRAINED:
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   description=f"not trained: {row['reason'] if row else 'no run row'}",
                                   metadata={"status": row["status"] if row else "missing"})
    problems = []
    if row["auc"] < row["min_auc"]:
        problems.append(f"held-out AUC {row['auc']:.3f} is below predict.min_auc {row['min_auc']}")
    if row["calibration_error"] > row["max_calibration_error"]:
        problems.append(f"calibration error {row['calibration_error']:.3f} is above predict.max_calibration_error "
                        f"{row['max_calibration_error']}")
    return dg.AssetCheckResult(
        passed=not problems, severity=dg.AssetCheckSeverity.WARN, description="; ".join(problems) or None,
        metadata={"auc": row["auc"], "min_auc": row["min_auc"], "calibration_error": row["calibration_error"],
                  "max_calibration_error": row["max_calibration_error"], "brier": row["brier"],
                  "brier_baseline": row["brier_baseline"]})


@dg.asset_check(asset=dg.AssetKey(["predict", "recommendation_eval"]), blocking=False)
def recommendations_beat_popularity(context: dg.AssetCheckExecutionContext,
                                    warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """The recommendations of this run hit at least `predict.min_lift_over_popularity` times as often as
    recommending the most popular categories, on the held-out window. A warning only; a run that could not be
    judged (no order dates, too short a history) passes with its reason."""
    row = _latest_row(warehouse, "recommendation_eval", context.run.run_id)
    if row is None or row["status"] != EVALUATED:
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   description=f"not evaluated: {row['reason'] if row else 'no run row'}",
                                   metadata={"status": row["status"] if row else "missing"})
    lift, bar = row["lift_over_popularity"], row["min_lift_over_popularity"]
    passed = lift is not None and lift >= bar
    return dg.AssetCheckResult(
        passed=passed, severity=dg.AssetCheckSeverity.WARN,
        description=None if passed else (
            f"hit-rate@{row['top_n']} {row['hit_rate']:.3f} is {lift or 0:.2f}x the popularity baseline "
            f"{row['popularity_hit_rate']:.3f}, below predict.min_lift_over_popularity {bar}"),
        metadata={"hit_rate": row["hit_rate"], "popularity_hit_rate": row["popularity_hit_rate"],
                  "lift_over_popularity": lift, "min_lift_over_popularity": bar,
                  "customers_evaluated": row["customers_evaluated"]})


ALL_CHECKS += [churn_model_quality, recommendations_beat_popularity]
