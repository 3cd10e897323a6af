"""What `persona run` shows while it runs and when it ends.

Each step of the Dagster run (an asset, a group of assets, a check) is shown as it starts and as it ends, with its
elapsed time: a live display on a terminal (rich), one plain line per start and end otherwise (logs, cron mail,
CI). The steps come from the run's own event log in the Dagster instance, read by a thread beside the run, so what
is shown is what the UI shows. At the end, a summary read from the published warehouse.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

STEP_EVENTS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS,
               dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_SKIPPED}
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class StepEvent:
    kind: str  # "start", "success", "failure", "skipped"
    step: str  # the Dagster step key, as the UI names it
    at: float  # event time, seconds since the epoch


KINDS = {dg.DagsterEventType.STEP_START: "start", dg.DagsterEventType.STEP_SUCCESS: "success",
         dg.DagsterEventType.STEP_FAILURE: "failure", dg.DagsterEventType.STEP_SKIPPED: "skipped"}


class StepWatcher(threading.Thread):
    """Reads the run's step events from the instance's event log while the run executes in the main thread."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, on_step: Callable[[StepEvent], None]):
        super().__init__(name="persona-progress", daemon=True)
        self._instance, self._run_id, self._on_step = instance, run_id, on_step
        self._cursor: str | None = None
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(POLL_SECONDS):
            self._poll()
        self._poll()  # what the last interval wrote

    def stop(self) -> None:
        self._done.set()
        self.join()

    def _poll(self) -> None:
        try:
            records = self._instance.get_records_for_run(self._run_id, cursor=self._cursor, of_type=STEP_EVENTS)
        except Exception:  # noqa: BLE001 - progress must never break a run; the next poll tries again
            return
        for record in records.records:
            event = record.event_log_entry.dagster_event
            if event is not None and event.step_key:
                self._on_step(StepEvent(KINDS[event.event_type], event.step_key, record.event_log_entry.timestamp))
        self._cursor = records.cursor


MARKS = {"success": "done", "failure": "FAILED", "skipped": "skipped"}


class StepDisplay:
    """Shows step events: a live list of running and finished steps on a terminal, plain lines elsewhere."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(highlight=False, soft_wrap=True)
        self._started: dict[str, float] = {}
        self._tasks: dict[str, TaskID] = {}
        self._progress: Progress | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> StepDisplay:
        if self.console.is_terminal:
            self._progress = Progress(SpinnerColumn(finished_text="[green]✓[/]"), TextColumn("{task.description}"),
                                      TimeElapsedColumn(), console=self.console, transient=False)
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, event: StepEvent) -> None:
        with self._lock:
            if event.kind == "start":
                self._started[event.step] = event.at
            elapsed = event.at - self._started.get(event.step, event.at)
            if self._progress is None:
                self._plain(event, elapsed)
            else:
                self._live(event, elapsed)

    def _plain(self, event: StepEvent, elapsed: float) -> None:
        clock = time.strftime("%H:%M:%S", time.localtime(event.at))
        if event.kind == "start":
            self.console.print(f"{clock} start {event.step}", markup=False)
        else:
            self.console.print(f"{clock} {MARKS[event.kind]} {event.step} ({elapsed:.1f} s)", markup=False)

    def _live(self, event: StepEvent, elapsed: float) -> None:
        assert self._progress is not None
        if event.kind == "start":
            self._tasks[event.step] = self._progress.add_task(event.step, total=1)
            return
        task = self._tasks.get(event.step) or self._progress.add_task(event.step, total=1)
        label = event.step if event.kind == "success" else f"{event.step} [red]{MARKS[event.kind]}[/]"
        self._progress.update(task, completed=1, description=f"{label} ({elapsed:.1f} s)")


@dataclass(frozen=True)
class RunSummary:
    customers: int | None
    segments: int | None
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    duplicates_removed: int
    read_by_input: tuple[tuple[str, int], ...] = ()  # (orders, n), (customers, n), ... as read this run
    rows_set_aside: int = 0  # of rows_quarantined: cancelled, returned, free or no customer id
    # Lines earlier runs loaded that this run's later cancellations and refunds took back (quality.retracted_lines).
    lines_taken_back: int = 0

    def lines(self, warnings: int) -> list[str]:
        """The summary as plain lines (customers, segments, rows, warnings); the verdict and paths follow. With more
        than one input, the rows read are split by input: order lines and member rows are not the same thing."""
        lines = []
        if self.customers is not None and self.segments is not None:
            lines.append(f"Customers: {self.customers:,} in {self.segments} segments")
        split = ""
        if len(self.read_by_input) > 1:
            split = " (" + ", ".join(f"{name} {rows:,}" for name, rows in self.read_by_input) + ")"
        lines.append(f"Rows:      {self.rows_read:,} read this run{split}, {self.rows_loaded:,} loaded, "
                     f"{self.rows_quarantined:,} quarantined{self._set_aside()}, "
                     f"{self.duplicates_removed:,} duplicates removed")
        if self.lines_taken_back:
            lines.append(f"Retracted: {self.lines_taken_back:,} order lines loaded by earlier runs, taken back by "
                         f"later cancellations or refunds (quality.retracted_lines)")
        lines.append(warnings_line(warnings))
        return lines

    def _set_aside(self) -> str:
        if not self.rows_set_aside:
            return ""
        if self.rows_set_aside == self.rows_quarantined:
            return " (all set aside: cancelled, returned, free or without a customer id)"
        return f" ({self.rows_set_aside:,} of them set aside: cancelled, returned, free or without a customer id)"


def summary_lines(warehouse: Path, run_id: str, warnings: int, sql_command: str = "persona sql") -> list[str]:
    """What `persona run` prints after a published run: the counts of run_summary, or a line saying they could not
    be read (the run itself published), so that a missing summary is never silent; then the warnings line."""
    summary = run_summary(warehouse, run_id)
    if summary is None:
        return [f"Summary:   not available: {warehouse} could not be read for the counts (the run itself published; "
                f"try {sql_command} against it)", warnings_line(warnings)]
    return summary.lines(warnings)


def warnings_line(warnings: int) -> str:
    return f"Warnings:  {warnings}" + (" (listed above)" if warnings else "")


def run_summary(warehouse: Path, run_id: str) -> RunSummary | None:
    """Counts of the published warehouse after a run: its segmented customers and segments, and the rows this run
    read, loaded and quarantined (quality.load_audit). None when the warehouse cannot be read."""
    import duckdb

    from pipelines.core.sql import table_columns, table_exists

    try:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            customers = segments = None
            if table_exists(con, "segments.customer_segments") and table_exists(con, "segments.segment_profiles"):
                customers = con.execute("SELECT count(*) FROM segments.customer_segments").fetchone()[0]
                segments = con.execute("SELECT count(*) FROM segments.segment_profiles").fetchone()[0]
            rows, by_input, set_aside, taken_back = (0, 0, 0, 0), [], 0, 0
            if table_exists(con, "quality.load_audit"):
                rows = con.execute("""
                    SELECT coalesce(sum(rows_read), 0), coalesce(sum(rows_loaded), 0),
                           coalesce(sum(rows_quarantined), 0), coalesce(sum(duplicates_removed), 0)
                    FROM quality.load_audit WHERE run_id = ?""", [run_id]).fetchone()
                if "rows_set_aside" in (table_columns(con, "quality.load_audit") or []):
                    set_aside = con.execute("SELECT coalesce(sum(rows_set_aside), 0) FROM quality.load_audit "
                                            "WHERE run_id = ?", [run_id]).fetchone()[0]
                by_input = con.execute("""
                    SELECT input, sum(rows_read) FROM quality.load_audit WHERE run_id = ? GROUP BY input
                    ORDER BY CASE input WHEN 'orders' THEN 1 WHEN 'customers' THEN 2 ELSE 3 END, input""",
                                       [run_id]).fetchall()
            if table_exists(con, "quality.retracted_lines"):
                taken_back = con.execute("SELECT count(*) FROM quality.retracted_lines WHERE run_id = ?",
                                         [run_id]).fetchone()[0]
    except duckdb.Error:
        return None
    return RunSummary(customers, segments, *(int(value) for value in rows),
                      read_by_input=tuple((name, int(read)) for name, read in by_input), rows_set_aside=int(set_aside),
                      lines_taken_back=int(taken_back))
