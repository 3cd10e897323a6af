"""What the working database was when it was last published: work/<name>.published.json, written by every publish
once it switched, read by assets/publish/repair.py to decide whether a damaged published file may be rebuilt from
the working database (only if no run changed it since)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipelines.core.resources import WarehouseResource, raw_file_for

MARKER_SUFFIX = ".published.json"


def marker_file(working: Path) -> Path:
    """work/<name>.published.json: what the working database was when it was last published."""
    return working.with_name(working.name + MARKER_SUFFIX)


def _signature(path: Path) -> list[int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def working_signatures(working: Path) -> dict[str, list[int] | None]:
    """Size and mtime of the working database, the raw layer and their write-ahead logs: any committed change
    to either database changes one of them (a commit goes to the log, a checkpoint rewrites the file)."""
    raw = raw_file_for(working)
    return {str(path.name): _signature(path) for path in
            (working, working.with_name(working.name + ".wal"), raw, raw.with_name(raw.name + ".wal"))}


def record_publication(warehouse: WarehouseResource, run_id: str, version: Path) -> None:
    """Called once a publish switched to `version` and closed the working database."""
    published_copy = version / warehouse.published_file.name
    marker = marker_file(warehouse.file)
    temporary = marker.with_name(marker.name + ".tmp")
    temporary.write_text(json.dumps({
        "run_id": run_id, "version": version.name, "published_size": published_copy.stat().st_size,
        "working": working_signatures(warehouse.file)}, indent=1))
    os.replace(temporary, marker)


def read_marker(working: Path) -> dict | None:
    try:
        return json.loads(marker_file(working).read_text())
    except (OSError, ValueError):
        return None
