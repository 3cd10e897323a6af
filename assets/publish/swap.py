"""Publishing: the last step of a run copies the working database into a new DuckDB file and swaps it into place.

Readers (persona sql, duckdb-cli, BI tools) only ever open the published file, read-only; the pipeline never
writes to it. A new version is written beside it under a temporary name, checkpointed and synced, then renamed
over the old one: a rename is atomic, so a reader opens either the old version or the new one, never a mix, and
a reader that already has the old file open keeps reading it undisturbed. No lock is ever shared with the
writer. The step depends on every other asset, so a failed blocking check (which stops everything downstream of
it) leaves the previous version published.

The new version is a byte copy of the checkpointed working database, which holds every public table and nothing
else: the raw layer lives in a database file of its own (pipelines.core.resources.raw_file_for). Copying the file
costs what the disk needs for it; copying table by table re-compressed every row (12 s of 225 s at 10M order
lines). The copy may carry free blocks the working database has not reused yet: they hold older versions of the
same public tables, never raw rows.
"""

import os
import shutil
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import duckdb

from pipelines.core.faults import crash_point
from pipelines.core.resources import WarehouseResource
from pipelines.core.sql import sql_literal, table_exists

PUBLISHING_SUFFIX = ".publishing"


def published_tables(con: duckdb.DuckDBPyConnection, database: str) -> list[tuple[str, str]]:
    return con.execute(
        """SELECT schema_name, table_name FROM duckdb_tables()
           WHERE database_name = ? AND NOT temporary ORDER BY schema_name, table_name""", [database]).fetchall()


def remove_leftovers(published: Path) -> list[Path]:
    """Temporary files of a publish that was killed before its rename; never visible to readers."""
    leftovers = sorted(published.parent.glob(f".{published.name}.*{PUBLISHING_SUFFIX}*"))
    for path in leftovers:
        path.unlink()
    return leftovers


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(con: duckdb.DuckDBPyConnection, working: Path, published: Path, run_id: str) -> dict[str, int]:
    """Copy the working database (`working`, open as `con`, nothing else writing to it) into a new file with the
    publication's meta tables and swap it in as `published`. Returns the row count per published table."""
    published.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(published)
    pending = published.parent / f".{published.name}.{run_id[:8]}{PUBLISHING_SUFFIX}"
    # Every committed table into the file itself (no write-ahead log left beside it), then a byte copy.
    con.execute("CHECKPOINT")
    shutil.copyfile(working, pending)
    counts: dict[str, int] = {}
    con.execute(f"ATTACH {sql_literal(str(pending))} AS publishing")
    try:
        for schema, table in published_tables(con, "publishing"):
            counts[f"{schema}.{table}"] = con.execute(
                f'SELECT count(*) FROM publishing."{schema}"."{table}"').fetchone()[0]
        con.execute("CREATE SCHEMA publishing.meta")
        con.execute("CREATE TABLE publishing.meta.publication (run_id VARCHAR, published_at TIMESTAMPTZ)")
        con.execute("INSERT INTO publishing.meta.publication VALUES (?, ?)", [run_id, datetime.now(timezone.utc)])
        # The files behind this version: a landing day counts as loaded once a run that read it is published,
        # so a day whose run failed or was killed stays pending (pipelines.core.partitions.pending_days).
        if table_exists(con, "raw.source_files"):
            con.execute("CREATE TABLE publishing.meta.source_files AS SELECT * FROM raw.source_files")
        con.execute("CREATE TABLE publishing.meta.published_tables (table_name VARCHAR, row_count BIGINT)")
        con.executemany("INSERT INTO publishing.meta.published_tables VALUES (?, ?)", list(counts.items()))
        con.execute("CHECKPOINT publishing")
    finally:
        con.execute("DETACH publishing")
    _fsync(pending)
    crash_point("publish:before_swap")
    os.replace(pending, published)
    _fsync(published.parent)
    return counts


def published_version(published: Path) -> str | None:
    """The run id of the version a reader would open now (None before the first publish)."""
    if not published.is_file():
        return None
    with duckdb.connect(str(published), read_only=True) as con:
        return con.execute("SELECT run_id FROM meta.publication").fetchone()[0]


def build_publish_asset(upstream: Sequence[dg.AssetKey]) -> dg.AssetsDefinition:
    """The publish step, downstream of every other asset of the graph."""

    @dg.asset(
        key=["warehouse", "published"],
        deps=list(upstream),
        group_name="serving",
        kinds={"duckdb"},
        pool="duckdb_writer",
    )
    def published_warehouse(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        """The published warehouse file that SQL users open read-only: every table except the raw layer, plus
        meta.publication (the run it came from). Swapped in atomically once the run's blocking checks passed."""
        # Read-write: the working database is checkpointed and attaches the new file to write its meta tables.
        with warehouse.connect() as con:
            counts = publish(con, warehouse.file, warehouse.published_file, context.run_id)
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(str(warehouse.published_file)),
            "tables": len(counts),
            "rows": dg.MetadataValue.json(counts),
        })

    return published_warehouse
