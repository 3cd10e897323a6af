"""Recovery of a published warehouse file that cannot be opened (truncated, a zeroed header, a torn tail).

Readers only ever open the published file, and the pipeline never writes to it after its switch, so damage comes
from outside (a disk fault, a copy cut short, a hand edit). It is found by opening the file read-only and reading
its meta.publication, and by comparing its size with the size it was published with. It is rebuilt from the
working database, which the publish copied it from, but only when that database still holds exactly what was
published: each publish records, beside the working database (work/<name>.published.json), the run it published,
the version folder and the size and modification time of the working database, the raw layer and their
write-ahead logs right after the publish. A later run that changed either database and did not publish (a failed
blocking check, a kill) changes those signatures, and then the working database holds tables that no check passed:
it is never republished; `persona run` reloads every landing day instead and publishes anew.

The rebuilt version gets a new version folder (<run id>.2), the report of the damaged version (its files are
intact: only the warehouse file is checked) and meta.publication naming the run the content came from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb

from assets.publish.marker import marker_file, read_marker, record_publication, working_signatures
from assets.publish.swap import publish
from pipelines.core.resources import (
    CURRENT_LINK,
    REPORTS_DIR,
    WarehouseResource,
    public_file,
    work_file_for,
)


class RepairRefused(Exception):
    """The published file cannot be rebuilt from the working database; the message says why, in one line."""


@dataclass(frozen=True)
class Repair:
    problem: str  # what was wrong with the published file, one line
    run_id: str  # the run whose tables the rebuilt file holds
    version: Path  # the new version folder


def current_version(published: Path) -> Path | None:
    """The version folder .current points at (None before the first publish)."""
    link = public_file(published).parent / CURRENT_LINK
    if not link.is_symlink():
        return None
    return Path(os.path.normpath(link.parent / os.readlink(link)))


def published_problem(published: Path) -> str | None:
    """What is wrong with the published warehouse file, in one line; None when it opens (or nothing is
    published yet)."""
    published = public_file(published)
    if not published.is_symlink() and not published.exists():
        return None
    if not published.exists():
        return f"it points at {os.path.realpath(published)}, which does not exist"
    marker = read_marker(work_file_for(published))
    version = current_version(published)
    if marker and version is not None and marker.get("version") == version.name:
        size = published.stat().st_size
        if size != marker.get("published_size"):
            return f"it is {size:,} bytes but was published with {marker['published_size']:,} (cut short or torn)"
    try:
        with duckdb.connect(str(published), read_only=True) as con:
            con.execute("SELECT run_id FROM meta.publication").fetchall()
    except duckdb.Error as exc:
        return " ".join(str(exc).split())
    return None


def repair_published(warehouse: WarehouseResource, problem: str) -> Repair:
    """Rebuild the published file from the working database, or raise RepairRefused saying why it cannot be.
    The caller holds the run lock (pipelines.runner.run_lock), so no run writes either database meanwhile."""
    published, working = warehouse.published_file, warehouse.file
    if not working.is_file():
        raise RepairRefused(f"there is no working database at {working}")
    marker = read_marker(working)
    if marker is None:
        raise RepairRefused(f"{marker_file(working).name} is missing or unreadable beside the working database, so "
                            f"nothing says it still holds what was published")
    version = current_version(published)
    if version is None or marker.get("version") != version.name:
        raise RepairRefused(f"the working database was last published as version {marker.get('version')}, but "
                            f"{CURRENT_LINK} points at {version.name if version else 'nothing'}")
    if marker.get("working") != working_signatures(working):
        raise RepairRefused(f"the working database has changed since run {marker['run_id']} published it (a later "
                            f"run did not publish)")
    reports = version / REPORTS_DIR
    try:
        with warehouse.connect() as con:
            done = publish(con, working, published, marker["run_id"],
                           reports if reports.is_dir() else warehouse.work_reports_dir)
    except dg.RetryRequested:
        raise RepairRefused(f"another process has the working database {working} open") from None
    except (duckdb.Error, OSError) as exc:
        raise RepairRefused(f"copying the working database failed: {' '.join(str(exc).split())}") from None
    record_publication(warehouse, marker["run_id"], done.version)
    return Repair(problem, marker["run_id"], done.version)
