"""Dagster resources: the DuckDB warehouse and the shop's source config.

Both read their location from environment variables so that the CLI, the schedule and the UI (`make ui`)
materialize the same graph against the same files without a second code path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from pipelines.config import SourceConfig, load_source_config

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WAREHOUSE = "warehouse/warehouse.duckdb"
DEFAULT_CONFIG = "examples/demo.yaml"

# Schemas follow the layers; asset keys mirror them (raw/orders lives in raw.orders).
WAREHOUSE_SCHEMAS = ("raw", "staging", "quality", "features", "model", "segments")


def default_warehouse_path() -> str:
    return os.environ.get("PERSONA_WAREHOUSE", DEFAULT_WAREHOUSE)


def default_config_path() -> str:
    return os.environ.get("PERSONA_CONFIG", DEFAULT_CONFIG)


LOCK_RETRIES = 3
LOCK_RETRY_SECONDS = 20


def work_file_for(published: Path) -> Path:
    """The pipeline's private working database beside the published file: warehouse/work/<name>."""
    return published.parent / "work" / published.name


class WarehouseResource(dg.ConfigurableResource):
    """Two DuckDB files. `path` is the *published* warehouse that SQL users and tools open read-only; it is only
    ever replaced whole, by the publish step, once the run's blocking checks passed. Every layer reads and
    writes the working database beside it (work/<name>). DuckDB allows one writer, so writing assets share a
    pool."""

    path: str = DEFAULT_WAREHOUSE
    # DuckDB spills to disk beyond this instead of growing with the data (its own default is 80% of RAM).
    memory_limit: str = "3GB"

    @property
    def published_file(self) -> Path:
        return Path(self.path).resolve()

    @property
    def file(self) -> Path:
        """The working database the assets read and write."""
        return work_file_for(self.published_file)

    @property
    def reports_dir(self) -> Path:
        return self.published_file.parent / "reports"

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(self.file), read_only=read_only, config={
                "memory_limit": self.memory_limit,
                # Every table that needs an order says ORDER BY; not preserving it lets large writes stream.
                "preserve_insertion_order": False,
                "temp_directory": str(self.file.parent / ".duckdb_spill"),
            })
        except duckdb.IOException as exc:
            # Another process holds the working database (a second writer, a client opened it read-write):
            # transient, so the step is retried after a pause instead of failing the night's run.
            if "lock" in str(exc).lower():
                raise dg.RetryRequested(max_retries=LOCK_RETRIES, seconds_to_wait=LOCK_RETRY_SECONDS) from exc
            raise
        try:
            if not read_only:
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


def resources_from_environment() -> dict[str, dg.ConfigurableResource]:
    """Resources as the CLI, the schedule and `dagster dev` see them: configured by PERSONA_* variables."""
    return {
        "warehouse": WarehouseResource(path=default_warehouse_path(),
                                       memory_limit=os.environ.get("PERSONA_DUCKDB_MEMORY_LIMIT", "3GB")),
        "source": SourceResource(
            config_path=default_config_path(),
            input_override=os.environ.get("PERSONA_INPUT", ""),
        ),
    }
