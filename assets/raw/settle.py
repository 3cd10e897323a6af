"""Raw layer, files in motion: a file modified less than `ingest.settle_seconds` ago may still be being written (an
export that appends, a copy in progress), so it is not read yet. A snapshot input waits until it has settled; the
plan leaves a daily source's landing day pending (pipelines/planning.py). A file that changes while it is being
read is read again once it has settled, so a half-written last line is never loaded.

PERSONA_SETTLE_SECONDS, when set, overrides `ingest.settle_seconds` of every config: `0` for files a finished
program wrote (the test suite sets it once in tests/conftest.py), or a longer wait for a slow uploader.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from assets.raw.readers import IngestError
from pipelines.core.config import ConfigError, SourceConfig
from pipelines.core.partitions import file_signature

SETTLE_VARIABLE = "PERSONA_SETTLE_SECONDS"
# A file still changing after this many settle periods of waiting is not settling: the run stops, naming it.
MAX_WAIT_PERIODS = 10
# A file that changed while being read is read again, at most this many times.
MAX_READS = 5


def settle_seconds(config: SourceConfig) -> float:
    """The settle time in force: PERSONA_SETTLE_SECONDS if set, else the config's `ingest.settle_seconds`."""
    value = os.environ.get(SETTLE_VARIABLE, "").strip()
    if not value:
        return config.ingest.settle_seconds
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{SETTLE_VARIABLE}={value!r}: give a number of seconds, 0 or more")
    return seconds


def settle_source(config: SourceConfig) -> str:
    """Where the settle time comes from, for messages."""
    if os.environ.get(SETTLE_VARIABLE, "").strip():
        return SETTLE_VARIABLE
    return "ingest.settle_seconds"


def modified_ago(path: Path, now: float | None = None) -> float:
    """Seconds since the file was last modified (0 for a modification time in the future)."""
    return max(0.0, (time.time() if now is None else now) - path.stat().st_mtime)


def unsettled(paths: list[Path], settle: float, now: float | None = None) -> list[tuple[Path, float]]:
    """The files modified less than `settle` seconds ago, with how long ago."""
    if settle <= 0:
        return []
    now = time.time() if now is None else now
    return [(path, age) for path in paths if (age := modified_ago(path, now)) < settle]


def seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


def wait_until_settled(path: Path, settle: float, setting: str, log: Callable[[str], None] | None = None,
                       sleep: Callable[[float], None] = time.sleep) -> float:
    """Block until `path` has not been modified for `settle` seconds; returns the seconds waited. Says so in one
    line when it waits. A file still changing after MAX_WAIT_PERIODS settle periods is an IngestError."""
    if settle <= 0:
        return 0.0
    started = time.monotonic()
    deadline = started + settle * MAX_WAIT_PERIODS
    age = modified_ago(path)
    if age >= settle:
        return 0.0
    if log is not None:
        log(f"{path} was modified {seconds(age)} ago: waiting {seconds(settle - age)} for it to settle "
            f"(not read until unchanged for {seconds(settle)}, {setting})")
    while (age := modified_ago(path)) < settle:
        if time.monotonic() + (settle - age) > deadline:
            raise IngestError(f"{path}: still being written (modified {seconds(age)} ago) after waiting "
                              f"{seconds(time.monotonic() - started)}; not read ({setting}: {settle:g})")
        sleep(settle - age)
    return time.monotonic() - started


def read_settled(path: Path, settle: float, setting: str, read: Callable[[], object],
                 log: Callable[[str], None] | None = None):
    """`read()` of a file that has settled and did not change while it was read (size and modification time the
    same before and after): a file that changed is waited for and read again, so a line being appended is never
    loaded half-written. Returns read()'s result and the file's signature as read."""
    for _ in range(MAX_READS):
        wait_until_settled(path, settle, setting, log)
        before = file_signature(path)
        result = read()
        if file_signature(path) == before:
            return result, before
        if log is not None:
            log(f"{path} changed while it was being read: reading it again once it has settled")
    raise IngestError(f"{path}: changed while being read, {MAX_READS} times; not read (is it still being written?)")
