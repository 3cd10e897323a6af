"""Dagster resources: the DuckDB warehouse and the shop's source config.

They carry a run's settings into the assets. The entry points configure them: `persona run` from its flags
(pipelines/cli.py), the code location that the UI and the daemon load from PERSONA_* variables through
`dg.EnvVar` (pipelines/definitions.py). Nothing here reads the environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from pipelines.core.background_import import import_in_background
from pipelines.core.config import SourceConfig, load_source_config

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WAREHOUSE = "warehouse/warehouse.duckdb"
DEFAULT_CONFIG = "examples/demo.yaml"
# DuckDB's working memory before it spills to disk. Measured on 2026-12-05 (docs/performance.md): with 1 GB a full
# refresh of 1M customers peaks at 1.9 GB RSS (3.4 GB at 3 GB before this default), in about the same time (one
# pair of runs: 106 s against 107 s), and 10M customers complete (18 min, 8.5 GB, against 17 min at 3 GB). A shop
# with more memory to give can raise it.
DEFAULT_MEMORY_LIMIT = "1GB"
# The storage format of the working and raw databases the pipeline creates (the published warehouse is a copy of the
# working one; an existing file keeps the format it was created with, so a warehouse from before keeps writing in
# the older format until it is rebuilt). DuckDB writes files readable by v0.10.2 unless told otherwise, and that
# format stores text without the DICT_FSST compression of v1.3 on: storing staging.order_lines' seven text columns
# at 1M customers took 5.1-6.8 s, against 3.5-3.8 s in the v1.4 format (docs/performance.md). Reading the warehouse
# then takes DuckDB 1.4 or later.
STORAGE_VERSION = "v1.4.0"

# Schemas follow the layers; asset keys mirror them (raw/orders lives in raw.orders). The raw layer is a database
# file of its own, attached under the catalog name `raw`, so SQL still says raw.orders (see WarehouseResource).
WAREHOUSE_SCHEMAS = ("staging", "quality", "features", "model", "segments")
RAW_CATALOG = "raw"
# Tables a step keeps in the working database only while it runs: a step killed mid-way may leave them, and
# publishing drops them, so they are never published. Staging's typed order lines (assets/staging/typed.py).
TYPED_ORDER_LINES = "staging._typed_order_lines"
WORK_ONLY_TABLES = (TYPED_ORDER_LINES,)


LOCK_RETRIES = 3
LOCK_RETRY_SECONDS = 20

# The published layout in the warehouse folder (assets/publish/swap.py writes it): each publish builds a version
# folder .versions/<run id>/ holding <name> (the warehouse) and reports/, then switches the symlink .current to it.
# The public paths are symlinks through .current: <name> -> .current/<name>, reports -> .current/reports.
VERSIONS_DIR = ".versions"
CURRENT_LINK = ".current"
REPORTS_DIR = "reports"
# Scratch files of a run, in the work folder beside the working database (WarehouseResource.temp_dir).
TEMP_DIR = "tmp"


def public_file(path: Path) -> Path:
    """The public path of a warehouse, absolute, without following its own symlink (which points into the
    current version). A path resolved through that symlink (Path.resolve() gives <dir>/.versions/<id>/<name>, and
    so does <dir>/.current/<name>) names the same warehouse: <dir>/<name>."""
    path = Path(path)
    folder = path.parent.resolve()
    if folder.parent.name == VERSIONS_DIR:
        folder = folder.parent.parent
    return folder / path.name


def work_file_for(published: Path) -> Path:
    """The pipeline's private working database beside the published file: warehouse/work/<name>."""
    published = public_file(published)
    return published.parent / "work" / published.name


def raw_file_for(work_file: Path) -> Path:
    """The raw layer's database beside the working database: work/<stem>.raw.duckdb."""
    return work_file.with_name(f"{work_file.stem}.raw{work_file.suffix}")


def raw_files_folder_for(raw_file: Path) -> Path:
    """The folder of the raw tables' Parquet files beside the raw database: work/<stem>.raw.files
    (assets/raw/files.py)."""
    return raw_file.with_name(f"{raw_file.stem}.files")


def attach_raw(con: duckdb.DuckDBPyConnection, raw_file: Path, read_only: bool) -> None:
    """Attach the raw layer as catalog `raw`, so raw.orders names its table. Read-only connections skip a raw
    file that does not exist yet."""
    if read_only and not raw_file.is_file():
        return
    mode = " (READ_ONLY)" if read_only else ""
    con.execute(f"ATTACH '{str(raw_file).replace(chr(39), chr(39) * 2)}' AS {RAW_CATALOG}{mode}")


def move_legacy_raw_schema(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Working databases written before the raw layer had its own file hold it in a schema `raw`: move its tables
    into the attached raw file (one statement each, since a DuckDB transaction writes to one database), then
    drop the schema. Safe to repeat after an interruption. Returns the tables moved."""
    database = con.execute("SELECT current_database()").fetchone()[0]
    tables = [row[0] for row in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'raw' "
        "ORDER BY table_name", [database]).fetchall()]
    for table in tables:
        con.execute(f'CREATE OR REPLACE TABLE {RAW_CATALOG}.main."{table}" AS SELECT * FROM "{database}".raw."{table}"')
    if con.execute("SELECT count(*) FROM duckdb_schemas() WHERE database_name = ? AND schema_name = 'raw'",
                   [database]).fetchone()[0]:
        con.execute(f'DROP SCHEMA "{database}".raw CASCADE')
    return tables


def glob_literal(path: str) -> str:
    """`path` as a read_parquet pattern matching only itself: DuckDB expands *, ? and [...] in every path it is
    given, so a warehouse folder named "shop[1]" would otherwise read the files of "shop1"."""
    return "".join(f"[{char}]" if char in "*?[" else char for char in path)


def view_raw_files(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """(Re)create raw table `table` as the view over the Parquet files raw.stored_files lists for it, in load
    order (assets/raw/files.py). Returns the listed files that are missing, creating nothing if any is (or if
    none is listed)."""
    files = [row[0] for row in con.execute(
        f"SELECT file FROM {RAW_CATALOG}.stored_files WHERE table_name = ? "
        "ORDER BY partition_date NULLS FIRST, file_index", [table]).fetchall()]
    missing = [path for path in files if not Path(path).is_file()]
    if not files or missing:
        return missing
    listed = ", ".join("'" + glob_literal(path).replace("'", "''") + "'" for path in files)
    # Paths are the raw layer's own; no hive partitions are read from them, whatever the warehouse's path holds.
    con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet([{listed}], union_by_name = true, "
                "hive_partitioning = false)")
    return []


def raw_files_moved_from(con: duckdb.DuckDBPyConnection, raw_file: Path) -> str | None:
    """The folder the raw tables' files were listed under when the warehouse folder has since been moved or
    renamed (the views name them by absolute path); None when they are where raw_files_folder_for says."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = "
                       "'stored_files'", [RAW_CATALOG]).fetchone()[0]:
        return None
    some = con.execute(f"SELECT file FROM {RAW_CATALOG}.stored_files WHERE starts_with(file, '/') LIMIT 1"
                       ).fetchone()
    old = str(Path(some[0]).parent.parent) if some else None
    return old if old is not None and old != str(raw_files_folder_for(raw_file)) else None


def repoint_raw_files(con: duckdb.DuckDBPyConnection, raw_file: Path) -> bool:
    """When the warehouse folder was moved or renamed, point raw.stored_files and the raw views at the files' new
    place (a table with a listed file missing keeps its view; its next load names the file). Returns whether the
    files had moved."""
    old = raw_files_moved_from(con, raw_file)
    if old is None:
        return False
    new = str(raw_files_folder_for(raw_file))
    con.execute("BEGIN TRANSACTION")
    con.execute(f"UPDATE {RAW_CATALOG}.stored_files SET file = ? || substr(file, ?) WHERE starts_with(file, ?)",
                [new, len(old) + 1, old + "/"])
    for (table,) in con.execute(f"SELECT DISTINCT table_name FROM {RAW_CATALOG}.stored_files").fetchall():
        view_raw_files(con, table)
    con.execute("COMMIT")
    return True


class WarehouseResource(dg.ConfigurableResource):
    """Two DuckDB files. `path` is the *published* warehouse that SQL users and tools open read-only; it is only
    ever replaced whole, together with the published report, by the publish step, once the run's blocking checks
    passed. Every layer reads and writes the working database beside it (work/<name>), and the report is written
    beside that (work/reports/). DuckDB allows one writer, so writing assets share a pool."""

    path: str = DEFAULT_WAREHOUSE
    # DuckDB spills to disk beyond this instead of growing with the data (its own default is 80% of RAM).
    memory_limit: str = DEFAULT_MEMORY_LIMIT

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A run starts here, before its first step: the libraries only later steps use import beside the first ones.
        # Not for a schedule or sensor, which set the resource up outside any run in the long-lived daemon.
        if context.dagster_run is not None:
            import_in_background()

    @property
    def published_file(self) -> Path:
        """The public path readers open: a symlink to .current/<name> once published (see public_file)."""
        return public_file(Path(self.path))

    @property
    def file(self) -> Path:
        """The working database the assets read and write."""
        return work_file_for(self.published_file)

    @property
    def raw_file(self) -> Path:
        """The raw layer's database, attached to every connection as catalog `raw`. It never enters the published
        file, which is a copy of the working database (assets/publish/swap.py)."""
        return raw_file_for(self.file)

    @property
    def reports_dir(self) -> Path:
        """The published report as readers open it: a symlink to .current/reports once published."""
        return self.published_file.parent / REPORTS_DIR

    @property
    def work_reports_dir(self) -> Path:
        """The report of the latest run, beside the working database; publishing copies it into the new version."""
        return self.file.parent / REPORTS_DIR

    @property
    def temp_dir(self) -> Path:
        """Scratch files of a run (persona-ingest-* staging folders), beside the working database rather than in
        the system temp directory: on the warehouse's disk, and removed at the start of the next `persona run` when a
        killed run left them (pipelines.runner.remove_run_leftovers). Created on first use."""
        folder = self.file.parent / TEMP_DIR
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(self.file), read_only=read_only, config={
                "memory_limit": self.memory_limit,
                "storage_compatibility_version": STORAGE_VERSION,
                # Every table that needs an order says ORDER BY; not preserving it lets large writes stream.
                "preserve_insertion_order": False,
                "temp_directory": str(self.file.parent / ".duckdb_spill"),
            })
            try:
                attach_raw(con, self.raw_file, read_only)
            except duckdb.Error:
                con.close()
                raise
        except duckdb.IOException as exc:
            # Another process holds the working database (a second writer, a client opened it read-write):
            # transient, so the step is retried after a pause instead of failing the night's run.
            if "lock" in str(exc).lower():
                raise dg.RetryRequested(max_retries=LOCK_RETRIES, seconds_to_wait=LOCK_RETRY_SECONDS) from exc
            raise
        try:
            if not read_only:
                move_legacy_raw_schema(con)
                repoint_raw_files(con, self.raw_file)
                for schema in WAREHOUSE_SCHEMAS:
                    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            yield con
        finally:
            con.close()


class SourceResource(dg.ConfigurableResource):
    """The YAML source config of the shop, with an optional override of the orders path (CLI --input)."""

    config_path: str = DEFAULT_CONFIG
    input_override: str = ""

    def load(self) -> SourceConfig:
        config = load_source_config(self.config_path)
        return config.with_input(self.input_override) if self.input_override else config
