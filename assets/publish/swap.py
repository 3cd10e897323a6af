"""Publishing: the last step of a run puts a copy of the working database and the run's report into a new version
folder and switches the published pair to it with one symlink.

Readers (persona sql, duckdb-cli, BI tools, a browser on the report) only ever open the published paths, read-only;
the pipeline never writes to what they open. The warehouse folder holds (one warehouse per folder, as the shared
reports/ and work/ folders already assumed):

    .versions/<run id>/<name>      the published warehouse of that run, with its meta tables
    .versions/<run id>/reports/    the report of that run (pages and charts)
    .current  -> .versions/<run id>          the one symlink a publish switches
    .previous -> .versions/<older run id>    kept for readers that resolved .current just before the switch
    <name>    -> .current/<name>              the public paths, created once
    reports   -> .current/reports

A new version is written in full beside the published one (the warehouse checkpointed, copied and synced, the
report copied from the working area and synced), then `.current` is switched by renaming a new symlink over it: a
rename is atomic, so a reader opens either the old warehouse and report or the new ones, never one of each, and a
reader that already has the old file open keeps reading it undisturbed. No lock is ever shared with the writer. The
step depends on every other asset, so a failed blocking check (which stops everything downstream of it) leaves the
previous version published. Version folders other than the current and the previous one are removed after the
switch; what a killed publish left (a version folder nothing points at, temporary symlinks and files named
`.*.publishing*`) is removed by the next one, and by the next `persona run` before it plans. A published
file damaged later is rebuilt from the working database by assets/publish/repair.py.

The new warehouse is a byte copy of the checkpointed working database, which holds every public table and nothing
else: the raw layer lives in a database file of its own (pipelines.core.resources.raw_file_for). Copying the file
costs what the disk needs for it; copying table by table re-compressed every row (12 s of 225 s at 10M order
lines). The copy may carry free blocks the working database has not reused yet: they hold older versions of the
same public tables, never raw rows.
"""

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb

from assets.publish.marker import record_publication
from pipelines.core.faults import crash_point
from pipelines.core.resources import (
    CURRENT_LINK,
    REPORTS_DIR,
    VERSIONS_DIR,
    WORK_ONLY_TABLES,
    WarehouseResource,
    public_file,
)
from pipelines.core.sql import sql_literal, table_exists

PUBLISHING_SUFFIX = ".publishing"
PREVIOUS_LINK = ".previous"


@dataclass(frozen=True)
class Publication:
    version: Path  # the version folder now published
    counts: dict[str, int]  # row count per published table
    meta_rows: dict[str, int]  # row count per meta table written into the published file


def published_tables(con: duckdb.DuckDBPyConnection, database: str) -> list[tuple[str, str]]:
    return con.execute(
        """SELECT schema_name, table_name FROM duckdb_tables()
           WHERE database_name = ? AND NOT temporary ORDER BY schema_name, table_name""", [database]).fetchall()


def _link_target(link: Path) -> Path | None:
    """Where a symlink of the warehouse folder points (relative links, read against the folder); None if no link."""
    if not link.is_symlink():
        return None
    return Path(os.path.normpath(link.parent / os.readlink(link)))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _remove_unused_versions(folder: Path) -> list[Path]:
    """Version folders that neither .current nor .previous points at: older versions, or one a publish killed
    before its switch left behind. Never visible to readers that open the public paths."""
    versions = folder / VERSIONS_DIR
    if not versions.is_dir():
        return []
    kept = {_link_target(folder / CURRENT_LINK), _link_target(folder / PREVIOUS_LINK)}
    unused = sorted(path for path in versions.iterdir() if path not in kept)
    for path in unused:
        _remove(path)
    return unused


def remove_leftovers(published: Path) -> list[Path]:
    """What a publish killed before its switch left behind, never visible to readers: temporary files, symlinks
    and folders (`.*.publishing*`, including the previous layout's `.<name>.<run>.publishing` files) and version
    folders nothing points at."""
    published = public_file(published)
    folder = published.parent
    leftovers = sorted(path for name in (published.name, CURRENT_LINK.lstrip("."), PREVIOUS_LINK.lstrip("."),
                                         REPORTS_DIR)
                       for path in folder.glob(f".{name}.*{PUBLISHING_SUFFIX}*"))
    for path in leftovers:
        _remove(path)
    return leftovers + _remove_unused_versions(folder)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Every file and folder under `root`, deepest first, then `root` itself."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))


def _point(link: Path, target: str, token: str) -> None:
    """Make `link` a symlink to `target` in one rename: a new symlink under a temporary name replaces it."""
    temporary = link.with_name(f"{link.name}.{token}{PUBLISHING_SUFFIX}")
    if not link.name.startswith("."):
        temporary = link.with_name(f".{temporary.name}")
    temporary.unlink(missing_ok=True)
    os.symlink(target, temporary)
    os.replace(temporary, link)


def _new_version_folder(folder: Path, run_id: str) -> Path:
    """.versions/<run id>; a publish step retried within a run that already switched gets <run id>.<n>."""
    versions = folder / VERSIONS_DIR
    candidate, n = versions / run_id, 1
    while candidate.exists():
        n += 1
        candidate = versions / f"{run_id}.{n}"
    candidate.mkdir(parents=True)
    return candidate


def _link_public_paths(published: Path, token: str) -> None:
    """The public paths through .current, created by the first publish. A warehouse published by the previous
    layout (a regular file <name> and a regular folder reports/) is converted here, once."""
    folder = published.parent
    target = f"{CURRENT_LINK}/{published.name}"
    if not (published.is_symlink() and os.readlink(published) == target):
        # Over the previous layout's file, this is a rename too: a reader opens the old file or the new one.
        _point(published, target, token)
    reports, target = folder / REPORTS_DIR, f"{CURRENT_LINK}/{REPORTS_DIR}"
    if reports.is_symlink() and os.readlink(reports) == target:
        return
    aside = None
    if reports.is_dir() and not reports.is_symlink():
        # One-time conversion of the previous layout's reports folder, and NOT atomic for the report: a folder
        # cannot be renamed over, so it is moved away first, and until the symlink takes its place (a moment)
        # there is no reports/ at all; the warehouse above has already switched. Every later publish is atomic.
        aside = folder / f".{REPORTS_DIR}.{token}.old{PUBLISHING_SUFFIX}"
        reports.rename(aside)
    _point(reports, target, token)
    if aside is not None:
        shutil.rmtree(aside)


def publish(con: duckdb.DuckDBPyConnection, working: Path, published: Path, run_id: str,
            reports: Path | None = None) -> Publication:
    """Copy the working database (`working`, open as `con`, nothing else writing to it) with the publication's meta
    tables, and the report folder `reports` (the run's report beside the working database; an empty folder when
    there is none), into a new version folder and switch the public paths `published` and reports/ beside it to
    that version."""
    published = public_file(published)
    folder = published.parent
    folder.mkdir(parents=True, exist_ok=True)
    remove_leftovers(published)
    token = run_id[:8]
    version = _new_version_folder(folder, run_id)
    new_file = version / published.name
    for table in WORK_ONLY_TABLES:  # left only by a step that was killed: never public
        con.execute(f"DROP TABLE IF EXISTS {table}")
    # Every committed table into the file itself (no write-ahead log left beside it), then a byte copy.
    con.execute("CHECKPOINT")
    shutil.copyfile(working, new_file)
    counts: dict[str, int] = {}
    con.execute(f"ATTACH {sql_literal(str(new_file))} AS publishing")
    try:
        for schema, table in published_tables(con, "publishing"):
            counts[f"{schema}.{table}"] = con.execute(
                f'SELECT count(*) FROM publishing."{schema}"."{table}"').fetchone()[0]
        con.execute("CREATE SCHEMA publishing.meta")
        con.execute("CREATE TABLE publishing.meta.publication (run_id VARCHAR, published_at TIMESTAMPTZ)")
        con.execute("INSERT INTO publishing.meta.publication VALUES (?, ?)", [run_id, datetime.now(UTC)])
        # The files behind this version: a landing day counts as loaded once a run that read it is published,
        # so a day whose run failed or was killed stays pending (pipelines.core.partitions.pending_days).
        meta_rows = {"publication": 1}
        if table_exists(con, "raw.source_files"):
            con.execute("CREATE TABLE publishing.meta.source_files AS SELECT * FROM raw.source_files")
            meta_rows["source_files"] = con.execute("SELECT count(*) FROM publishing.meta.source_files").fetchone()[0]
        con.execute("CREATE TABLE publishing.meta.published_tables (table_name VARCHAR, row_count BIGINT)")
        con.executemany("INSERT INTO publishing.meta.published_tables VALUES (?, ?)", list(counts.items()))
        meta_rows["published_tables"] = len(counts)
        con.execute("CHECKPOINT publishing")
    finally:
        con.execute("DETACH publishing")
    if reports is not None and reports.is_dir():
        shutil.copytree(reports, version / REPORTS_DIR)
    else:
        (version / REPORTS_DIR).mkdir()
    _fsync_tree(version)
    _fsync(version.parent)
    crash_point("publish:before_swap")
    previous = _link_target(folder / CURRENT_LINK)
    # The switch: from here readers open the new warehouse and the new report.
    _point(folder / CURRENT_LINK, f"{VERSIONS_DIR}/{version.name}", token)
    _fsync(folder)
    _link_public_paths(published, token)
    if previous is not None and previous != version:
        _point(folder / PREVIOUS_LINK, f"{VERSIONS_DIR}/{previous.name}", token)
    _remove_unused_versions(folder)
    _fsync(folder)
    return Publication(version, counts, meta_rows)


def published_version(published: Path) -> str | None:
    """The run id of the version a reader would open now (None before the first publish)."""
    if not published.is_file():
        return None
    with duckdb.connect(str(published), read_only=True) as con:
        return con.execute("SELECT run_id FROM meta.publication").fetchone()[0]


def build_publish_asset(upstream: Sequence[dg.AssetKey]) -> dg.AssetsDefinition:
    """The publish step, downstream of every other asset of the graph, with the meta tables it writes into the
    published file as assets of their own."""
    published_key = dg.AssetKey(["warehouse", "published"])
    raw_keys = [key for key in upstream if key.path[0] == "raw"]
    specs = [
        dg.AssetSpec(
            published_key, deps=list(upstream), group_name="serving", kinds={"duckdb"},
            description="The published warehouse file that SQL users open read-only, and the published report "
                        "beside it: every table except the raw layer, plus the meta tables. Switched in atomically, "
                        "warehouse and report together, once the run's blocking checks passed."),
        dg.AssetSpec(
            ["meta", "publication"], deps=[published_key], group_name="serving", kinds={"duckdb"},
            description="meta.publication in the published file: the run it came from and when it was published."),
        dg.AssetSpec(
            ["meta", "source_files"], deps=[published_key, *raw_keys], group_name="serving", kinds={"duckdb"},
            skippable=True,
            description="meta.source_files in the published file: the landing files behind this version, with the "
                        "size and modification time they had when read (raw.source_files at publication)."),
        dg.AssetSpec(
            ["meta", "published_tables"], deps=[published_key], group_name="serving", kinds={"duckdb"},
            description="meta.published_tables in the published file: the row count of every published table."),
    ]

    # The step keeps the name it had as a single asset (bench/run.py times the steps by name).
    @dg.multi_asset(name="warehouse__published", specs=specs, pool="duckdb_writer")
    def published_warehouse(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        """Copies the working database and the run's report into a new version and switches the published pair."""
        # Read-write: the working database is checkpointed and attaches the new file to write its meta tables.
        # Holding it also keeps a second publish of the same warehouse out until this one is done.
        with warehouse.connect() as con:
            done = publish(con, warehouse.file, warehouse.published_file, context.run_id, warehouse.work_reports_dir)
        # Once the working database is closed: what it was when published, so a published file damaged later can
        # be rebuilt from it as long as no run changed it since (assets/publish/repair.py).
        record_publication(warehouse, context.run_id, done.version)
        yield dg.MaterializeResult(asset_key=published_key, metadata={
            "path": dg.MetadataValue.path(str(warehouse.published_file)),
            "reports": dg.MetadataValue.path(str(warehouse.reports_dir)),
            "version": dg.MetadataValue.path(str(done.version)),
            "tables": len(done.counts),
            "rows": dg.MetadataValue.json(done.counts),
        })
        # meta.source_files is only written when the raw layer has its manifest (skippable above).
        for table, rows in done.meta_rows.items():
            yield dg.MaterializeResult(asset_key=["meta", table], metadata={"dagster/row_count": rows})

    return published_warehouse
