"""Daily partitions of order ingest: which days a run loads, and which landing days are new or changed.

A daily source names its files by day (`orders.path: landing/orders/{date}.csv`); each day is one Dagster
partition of raw.orders and the staging tables, and loading a day replaces that day whole, so reloading never
doubles rows. A source without {date} is a snapshot: every run replaces all of it, whatever partition the run
names. Features, model, segments and report are unpartitioned: they refresh from all days after every load.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from pipelines.core.config import SourceConfig
from pipelines.core.sources import SCHEDULE_TIMEZONE  # re-exported for the schedule

# The first day a partition exists for; older landing days are refused with this variable's name.
PARTITIONS_START = os.environ.get("PERSONA_PARTITIONS_START", "2024-01-01")

# end_offset=1: today's partition exists, so a file landing today can be loaded today.
DAILY_ORDERS = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone=SCHEDULE_TIMEZONE, end_offset=1)
# One run loads a whole range (one scan, one transaction) instead of one run per day. Dagster marks the
# parameter beta; its behaviour is what we test, so the warning is only noise for CLI users.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)
SINGLE_RUN_BACKFILL = dg.BackfillPolicy.single_run()


@dataclass(frozen=True)
class DayWindow:
    """The days a run loads, both ends included."""

    first: date
    last: date

    def __contains__(self, day: date) -> bool:
        return self.first <= day <= self.last

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}..{self.last}"


def run_window(context: dg.AssetExecutionContext) -> DayWindow:
    keys = context.partition_key_range
    return DayWindow(date.fromisoformat(keys.start), date.fromisoformat(keys.end))


def window_from_tags(tags: dict[str, str]) -> DayWindow | None:
    """The days of a run from its Dagster tags (a partition key, or a single-run range); None if it has none.
    Asset checks read it here: they are not partitioned themselves."""
    first = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
    last = tags.get("dagster/asset_partition_range_end") or tags.get("dagster/partition")
    if not first or not last:
        return None
    return DayWindow(date.fromisoformat(first), date.fromisoformat(last))


def today() -> date:
    return datetime.now(ZoneInfo(SCHEDULE_TIMEZONE)).date()


def snapshot_partition_key() -> str:
    """The partition a snapshot source's run is recorded under: the day it ran."""
    return today().isoformat()


def file_signature(path: Path) -> tuple[int, int]:
    """What tells a changed landing file from the one loaded: size and modification time."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def pending_days(config: SourceConfig, loaded: dict[str, tuple[int, int]]) -> list[date]:
    """Landing days with a file that was never loaded or changed since (`loaded`: path -> signature)."""
    pending = []
    for day, paths in config.order_files_by_day().items():
        if any(loaded.get(str(path)) != file_signature(path) for path in paths):
            pending.append(day)
    return pending


def check_days_in_range(days: list[date]) -> None:
    start = date.fromisoformat(PARTITIONS_START)
    early = [d for d in days if d < start]
    if early:
        raise ValueError(f"landing day(s) {early[0]}{' and more' if len(early) > 1 else ''} are before the first "
                         f"partition {start}; set PERSONA_PARTITIONS_START to an earlier day")
    if days and max(days) > today():
        raise ValueError(f"landing day {max(days)} is in the future ({SCHEDULE_TIMEZONE} today is {today()})")


def split_orders_by_day(order_lines: Path, landing_dir: Path, timestamp_column: str = "order_ts") -> int:
    """Lay out one order-line CSV as daily landing files, `landing_dir/order_day=YYYY-MM-DD/data_0.csv` (the
    demo's daily source). Streams through DuckDB, so any size fits in memory. Returns the number of days."""
    import duckdb

    landing_dir.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.execute(
            f"""COPY (SELECT *, substr("{timestamp_column}", 1, 10) AS order_day
                      FROM read_csv($source, all_varchar = true, header = true))
                TO '{str(landing_dir).replace("'", "''")}' (FORMAT csv, HEADER, PARTITION_BY (order_day),
                                                           OVERWRITE_OR_IGNORE)""",
            {"source": str(order_lines)})
    return sum(1 for _ in landing_dir.glob("order_day=*"))
