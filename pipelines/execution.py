"""Run the refresh job through Dagster against the persistent instance (DAGSTER_HOME), and decide which days a
run loads: the same plan serves the CLI, the nightly schedule and the landing-folder sensor."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

from pipelines.config import SourceConfig
from pipelines.partitions import DayWindow, check_days_in_range, pending_days, snapshot_partition_key

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@dataclass(frozen=True)
class RunPlan:
    """What one refresh loads. window None: a snapshot source, reloaded whole. Features, model, segments and
    report always refresh from all loaded days."""

    window: DayWindow | None
    files: tuple[str, ...]  # the order files this plan reads, with their signatures (for the sensor's run key)

    @property
    def partition_key(self) -> str | None:
        if self.window is None:
            return snapshot_partition_key()
        return str(self.window.first) if self.window.first == self.window.last else None

    @property
    def tags(self) -> dict[str, str]:
        if self.window is None or self.window.first == self.window.last:
            return {}
        return {RANGE_START_TAG: str(self.window.first), RANGE_END_TAG: str(self.window.last)}

    @property
    def run_key(self) -> str:
        return hashlib.sha256("\n".join(self.files).encode()).hexdigest()[:32]

    def describe(self) -> str:
        return "every order file (snapshot source)" if self.window is None else f"landing days {self.window}"


def published_signatures(published: Path) -> dict[str, tuple[int, int]]:
    """The order files behind the published version, with the size and mtime they had when read. Read from the
    published file, which no run ever locks; a day loaded by a run that failed or was killed is not there."""
    if not published.is_file():
        return {}
    with duckdb.connect(str(published), read_only=True) as con:
        present = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'meta' "
                              "AND table_name = 'source_files'").fetchone()[0]
        if not present:
            return {}
        rows = con.execute("SELECT source_file, file_size, file_mtime_ns FROM meta.source_files "
                           "WHERE input = 'orders'").fetchall()
    return {path: (size, mtime) for path, size, mtime in rows}


def plan_run(config: SourceConfig, published: Path, first: date | None = None, last: date | None = None,
             all_days: bool = False) -> RunPlan | None:
    """The days to load. Explicit days (first/last) or every landing day (all_days) when asked; otherwise the
    landing days with a file that is new or changed since the published version read it (None when there is
    none). Snapshot sources: every file, always."""
    if not config.daily:
        files = config.order_files()
        return RunPlan(None, tuple(_signed(path) for path in files))
    by_day = config.order_files_by_day()
    if first is not None:
        days = [first, last or first]
    elif all_days:
        days = list(by_day)
    else:
        days = pending_days(config, published_signatures(published))
        if not days:
            return None
    check_days_in_range(days)
    window = DayWindow(min(days), max(days))
    files = [path for day, paths in by_day.items() if day in window for path in paths]
    return RunPlan(window, tuple(_signed(path) for path in files))


def _signed(path: Path) -> str:
    stat = path.stat()
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


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


PID_TAG = "persona/pid"
HOST_TAG = "persona/host"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_abandoned_runs(instance: dg.DagsterInstance, job_name: str) -> list[str]:
    """CLI runs whose process died without a word (kill -9, power loss) stay 'started' in the instance and keep
    their writer-pool slot. Before a new run, mark those of this host failed and free their slots."""
    abandoned = []
    runs = instance.get_runs(filters=dg.RunsFilter(
        job_name=job_name, statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]))
    for run in runs:
        pid, host = run.tags.get(PID_TAG), run.tags.get(HOST_TAG)
        if pid is None or host != socket.gethostname() or _process_alive(int(pid)):
            continue
        instance.report_run_failed(run, f"the process running it (pid {pid}) ended without finishing the run")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        abandoned.append(run.run_id)
    return abandoned


def run_refresh(plan: RunPlan, job_name: str = "refresh", verbose: bool = False) -> RunOutcome:
    """Execute the job for the plan's days in this process; the event log goes to the instance (and the UI)."""
    from pipelines.definitions import defs

    # Dagster prints every event at DEBUG; the CLI prints the outcome instead unless asked for the log.
    log_level = "INFO" if verbose else "CRITICAL"
    logging.getLogger("dagster").setLevel(log_level)
    job = defs.resolve_job_def(job_name)
    with dg.DagsterInstance.get() as instance:
        for run_id in fail_abandoned_runs(instance, job_name):
            logging.getLogger("persona").warning("marked abandoned run %s as failed", run_id)
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            partition_key=plan.partition_key,
            tags={**plan.tags, PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()},
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        )
    return RunOutcome(
        run_id=result.run_id,
        success=result.success,
        reason="" if result.success else _failure_reason(result),
    )
