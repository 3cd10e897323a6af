"""Run the refresh job in this process against the persistent Dagster instance, with the resources the caller
built (the CLI from its flags), and say in one line why a failed run failed."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import dagster as dg

from pipelines.automation import CONFIG_TAG, SOURCE_TAG, WAREHOUSE_TAG
from pipelines.core.identity import (
    SourceIdentity,
    config_changed_note,
    recorded_source,
    source_conflict,
    source_identity,
)
from pipelines.core.resources import REPORTS_DIR, TEMP_DIR
from pipelines.jobs import build_definitions
from pipelines.planning import RunPlan
from pipelines.progress import StepEvent, StepWatcher


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    success: bool
    reason: str  # one line: the first failing step and its error, or the failed blocking check
    # One line per failed non-blocking (warn) check: the run still publishes, but a weak result (a churn model no
    # better than recency, recommendations below popularity, ...) must reach the person who ran it, not only the
    # Dagster event log.
    warnings: tuple[str, ...] = ()


def failed_warnings(evaluations: list[dg.AssetCheckEvaluation]) -> tuple[str, ...]:
    """`warning: <check> on <asset>: <description>` for every failed warn-severity check, in check order."""
    lines = []
    for evaluation in evaluations:
        if evaluation.passed or evaluation.severity != dg.AssetCheckSeverity.WARN:
            continue
        # One line each, whatever the check wrote: a description over several lines is joined.
        detail = f": {' '.join(evaluation.description.split())}" if evaluation.description else ""
        lines.append(f"warning: {evaluation.check_name} on {evaluation.asset_key.to_user_string()}{detail}")
    return tuple(lines)


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
        if error:  # Dagster's message starts with the class, as qualified as Python printed it
            message = re.sub(rf"^(?:[\w.]+\.)?{re.escape(error.cls_name)}: ", "", message)
        return f"step {event.step_key}: {message}"
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


def segmentation_strength(warehouse: Path) -> tuple[str, str] | None:
    """The latest model run's verdict (strength, reason), read from the published warehouse's chosen row of
    segments.model_runs; None when there is none (no run recorded it, a warehouse from before the verdict)."""
    import duckdb

    try:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            row = con.execute("""SELECT strength, strength_reason FROM segments.model_runs
                                 WHERE chosen ORDER BY fitted_at DESC LIMIT 1""").fetchone()
    except duckdb.Error:
        return None
    return (row[0], row[1]) if row and row[0] else None


def strength_line(strength: str, reason: str) -> str:
    """The last line `persona run` prints: how far the segments can be trusted, in one line."""
    return f"segmentation: {strength} ({' '.join(reason.split())})"


LOCK_FILE = "persona-run.lock"


class RunInProgress(Exception):
    """Another `persona run` (or `persona publish --repair`) holds the warehouse; the message is one line."""


def _holder(lock_file: Path) -> str:
    """Who holds the lock, as its holder recorded it: `run id ..., started ..., pid ...`."""
    try:
        holder = json.loads(lock_file.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    parts = [f"run id {holder['run_id']}" if holder.get("run_id") else holder.get("command", "run id not recorded yet")]
    parts += [f"started {holder['started']}"] if holder.get("started") else []
    parts += [f"pid {holder['pid']} on {holder.get('host', '?')}"] if holder.get("pid") else []
    return ", ".join(parts)


@contextmanager
def run_lock(work_folder: Path, run_id: str | None = None, command: str = "persona run", wait: bool = False,
             on_wait: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold the warehouse for one run: an exclusive flock on work/persona-run.lock. Another holder makes this raise
    RunInProgress at once, or, with `wait`, block until it is done (`on_wait` is told once what it waits for). The
    kernel drops the lock when the process ends however it ends (kill -9 included), so a lock file left behind
    never blocks anything: the file itself is only a note of who holds it, and is never removed."""
    work_folder.mkdir(parents=True, exist_ok=True)
    lock_file = work_folder / LOCK_FILE
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message = f"another run is in progress ({_holder(lock_file)})"
            if not wait:
                raise RunInProgress(message) from None
            if on_wait is not None:
                on_wait(f"{message}; waiting for it to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        note = {"run_id": run_id, "command": command, "pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.now().astimezone().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(note).encode(), 0)
        yield lock_file
    finally:
        os.close(fd)  # releases the lock


def remove_run_leftovers(warehouse) -> list[Path]:
    """What a killed, crashed or disk-full run left, removed before the next one (the caller holds run_lock):
    everything in the work folder's tmp/ (persona-ingest-* staging folders with a copy of the orders), and a
    publish's `.*.publishing*` files and version folders nothing points at (assets.publish.swap.remove_leftovers)."""
    from assets.publish.swap import remove_leftovers

    removed = []
    scratch = warehouse.file.parent / TEMP_DIR
    if scratch.is_dir():
        for path in sorted(scratch.iterdir()):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    if warehouse.published_file.parent.is_dir():
        removed += remove_leftovers(warehouse.published_file)
    return removed


def check_source(warehouse, incoming: SourceIdentity, replace: bool) -> tuple[str | None, Path | None]:
    """Before planning, under the run lock: (a note that the same shop's config changed, the folder the old
    source's working state was moved to by --replace). Raises SourceConflict when the warehouse holds another
    source and --replace was not given."""
    import duckdb

    recorded = None
    if warehouse.file.is_file():
        try:
            with warehouse.connect(read_only=True) as con:
                recorded = recorded_source(con)
        except duckdb.Error:
            recorded = None  # unreadable: the recovery step already said so; nothing to compare
    conflict = source_conflict(recorded, incoming, warehouse.published_file)
    if conflict is None:
        return config_changed_note(recorded, incoming), None
    if not replace:
        raise SourceConflict(conflict)
    return None, set_aside_working_state(warehouse, recorded.name)


class SourceConflict(Exception):
    """The warehouse holds another shop's data; the message (one line) names both sources."""


def set_aside_working_state(warehouse, old_source: str) -> Path:
    """--replace: move everything the old source's runs built (working and raw databases, model and outlier
    state, campaigns, the publish marker, the latest report) into work/replaced/<time>-<source>/, so the next run
    starts the history anew and nothing is deleted behind the user's back. The published warehouse keeps serving
    the old source until this run publishes."""
    work = warehouse.file.parent
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    target = work / "replaced" / f"{stamp}-{old_source}"
    target.mkdir(parents=True)
    stem = warehouse.file.name.removesuffix(warehouse.file.suffix)
    for path in sorted(work.iterdir()):
        if path.name.startswith(stem + ".") or path.name == REPORTS_DIR:
            shutil.move(str(path), target / path.name)
    return target


def run_refresh(plan: RunPlan, resources: dict[str, dg.ConfigurableResource], dagster_home: Path,
                job_name: str = "refresh", verbose: bool = False, run_id: str | None = None,
                on_step: Callable[[StepEvent], None] | None = None) -> RunOutcome:
    """Execute the job for the plan's days in this process with these resources; the event log goes to the
    instance in `dagster_home` (and so to the UI). The raw assets stage their copies under the warehouse's work
folder (WarehouseResource.temp_dir), whoever starts the run."""
    defs = build_definitions(resources)
    # Dagster prints every event at DEBUG; the CLI prints the outcome instead unless asked for the log.
    log_level = "INFO" if verbose else "CRITICAL"
    logging.getLogger("dagster").setLevel(log_level)
    job = defs.resolve_job_def(job_name)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for abandoned in fail_abandoned_runs(instance, job_name):
            logging.getLogger("persona").warning("marked abandoned run %s as failed", abandoned)
        run_id = run_id or str(uuid.uuid4())
        # Each step as it starts and ends (pipelines/progress.py), read from this run's event log.
        watcher = StepWatcher(instance, run_id, on_step) if on_step else None
        if watcher:
            watcher.start()
        try:
            result = job.execute_in_process(
                instance=instance,
                run_id=run_id,
                raise_on_error=False,
                partition_key=plan.partition_key,
                tags={**plan.tags, PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname(),
                      CONFIG_TAG: resources["source"].config_path, WAREHOUSE_TAG: resources["warehouse"].path,
                      SOURCE_TAG: source_identity(resources["source"]).name},
                run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            )
        finally:
            if watcher:
                watcher.stop()
    return RunOutcome(
        run_id=result.run_id,
        success=result.success,
        reason="" if result.success else _failure_reason(result),
        warnings=failed_warnings(result.get_asset_check_evaluations()),
    )
