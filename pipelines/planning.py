"""Which days a refresh loads: the same plan serves the CLI, the nightly schedule and the landing-folder sensor."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import NamedTuple

import duckdb

from assets.raw.settle import seconds, settle_seconds, settle_source, unsettled
from pipelines.core.config import SourceConfig
from pipelines.core.partitions import (
    DayWindow,
    check_days_in_range,
    pending_days,
    snapshot_partition_key,
)

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


class PublishedFileDamaged(ValueError):
    """The published warehouse file exists but cannot be read; the message is one line naming it."""


def published_signatures(published: Path) -> dict[str, tuple[int, int]]:
    """The order files behind the published version, with the size and mtime they had when read. Read from the
    published file, which no run ever locks; a day loaded by a run that failed or was killed is not there."""
    if not published.is_file():
        return {}
    try:
        with duckdb.connect(str(published), read_only=True) as con:
            present = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'meta' "
                                  "AND table_name = 'source_files'").fetchone()[0]
            if not present:
                return {}
            rows = con.execute("SELECT source_file, file_size, file_mtime_ns FROM meta.source_files "
                               "WHERE input = 'orders'").fetchall()
    except duckdb.Error as exc:
        # A damaged file (truncated, zeroed header, torn tail): `persona run` rebuilds it before planning
        # (assets/publish/repair.py); the schedule and the sensor say so in one line instead of a traceback.
        raise PublishedFileDamaged(f"the published warehouse {published} cannot be opened ({' '.join(str(exc).split())}"
                                   f"); `persona run` or `persona publish --repair` rebuilds it") from None
    return {path: (size, mtime) for path, size, mtime in rows}


class PlanOutcome(NamedTuple):
    """A plan (None: nothing to load now) and what it leaves for later or waits for, one line each."""

    plan: RunPlan | None
    notes: tuple[str, ...] = ()


def plan_run(config: SourceConfig, published: Path, first: date | None = None, last: date | None = None,
             all_days: bool = False) -> RunPlan | None:
    """The days to load. Explicit days (first/last) or every landing day (all_days) when asked; otherwise the
    landing days with a file that is new or changed since the published version read it (None when there is
    none). Snapshot sources: every file, always. A landing day with a file still in motion is left for a later
    run (plan_refresh says which and why)."""
    return plan_refresh(config, published, first, last, all_days).plan


def plan_refresh(config: SourceConfig, published: Path, first: date | None = None, last: date | None = None,
                 all_days: bool = False) -> PlanOutcome:
    """plan_run, with what it leaves pending: a landing day with a file modified less than the settle time ago
    (`ingest.settle_seconds`, assets/raw/settle.py) may still be being written, so the window ends before it
    (the days after it wait too: a load replaces its window's days whole) and the next run, or the sensor's next
    tick, loads it. The snapshot inputs a run reads (a snapshot order source, customers, products) are waited for
    by the run itself; the notes say so."""
    settle, setting = settle_seconds(config), settle_source(config)
    now = time.time()
    snapshots = [*([] if config.daily else config.order_files()), *config.customer_files(),
                 *config.product_files()]
    waits = [f"{path} was modified {seconds(age)} ago: the run waits until it has not changed for "
             f"{seconds(settle)} ({setting}), then reads it" for path, age in unsettled(snapshots, settle, now)]
    if not config.daily:
        return PlanOutcome(RunPlan(None, tuple(_signed(path) for path in config.order_files())), tuple(waits))
    by_day = config.order_files_by_day()
    if first is not None:
        days = [first, last or first]
    elif all_days:
        days = list(by_day)
    else:
        days = pending_days(config, published_signatures(published))
        if not days:
            return PlanOutcome(None)
    check_days_in_range(days)
    window = DayWindow(min(days), max(days))
    moving = {day: found for day, paths in by_day.items() if day in window
              if (found := unsettled(paths, settle, now))}
    pending: list[str] = []
    if moving:
        stop = min(moving)
        path, age = moving[stop][0]
        pending.append(f"landing day {stop} left pending: {path} was modified {seconds(age)} ago, less than "
                     f"{setting} ({seconds(settle)}), and may still be being written"
                     + (f"; the days after it, up to {window.last}, wait with it" if window.last > stop else "")
                     + "; the next run or the landing_files sensor loads it")
        if stop <= window.first:
            return PlanOutcome(None, tuple(pending))
        window = DayWindow(window.first, stop - timedelta(days=1))
    files = [path for day, paths in by_day.items() if day in window for path in paths]
    return PlanOutcome(RunPlan(window, tuple(_signed(path) for path in files)), (*pending, *waits))


def _signed(path: Path) -> str:
    stat = path.stat()
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
