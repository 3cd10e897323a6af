"""Run the refresh job through Dagster against the persistent instance (DAGSTER_HOME)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import dagster as dg


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    success: bool
    reason: str  # one line: the first failing step and its error, or the failed blocking check


def _failure_reason(result: dg.ExecuteInProcessResult) -> str:
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            detail = f": {evaluation.description}" if evaluation.description else ""
            return (f"blocking check {evaluation.check_name} on {evaluation.asset_key.to_user_string()} "
                    f"failed{detail}")
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        # Dagster wraps user errors; the cause carries the message meant for people.
        while error is not None and error.cause is not None and "DagsterExecutionStepExecutionError" in error.cls_name:
            error = error.cause
        message = (error.message if error else "unknown error").strip().splitlines()[0]
        return f"step {event.step_key}: {message.removeprefix(error.cls_name + ': ') if error else message}"
    return "the run did not complete (see the Dagster UI for the event log)"


def run_refresh(job_name: str = "refresh", verbose: bool = False) -> RunOutcome:
    """Execute the job in this process; the event log goes to the instance (and the UI) either way."""
    from pipelines.definitions import defs

    # Dagster prints every event at DEBUG; the CLI prints the outcome instead unless asked for the log.
    log_level = "INFO" if verbose else "CRITICAL"
    logging.getLogger("dagster").setLevel(log_level)
    job = defs.resolve_job_def(job_name)
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        )
    return RunOutcome(
        run_id=result.run_id,
        success=result.success,
        reason="" if result.success else _failure_reason(result),
    )
