"""Which shop a warehouse belongs to: one warehouse per source.

Every run records its source in `quality.source_runs` (the config's `name`, the config file, its SHA-256 and where
the orders come from). A run of another source into a warehouse that holds one is refused before it loads anything,
naming both: mixing two shops' orders would link segments of different shops in the history and migration tables
and show one shop's trend line falling into another's. `persona run --replace` sets the old source's working state
aside and starts the history again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipelines.core.config import SourceConfig
from pipelines.core.resources import SourceResource
from pipelines.core.sql import table_exists

SOURCE_RUNS = "quality.source_runs"


@dataclass(frozen=True)
class SourceIdentity:
    name: str  # the config's `name:`, what decides whether two runs are of one shop
    config_path: str
    config_sha256: str  # any edit of the config changes it; a changed config of the same shop is not refused
    orders_location: str  # orders.path as configured, or the --input file that replaced it

    def describe(self) -> str:
        return f"source '{self.name}' ({self.config_path}, orders {self.orders_location})"


def source_identity(source: SourceResource, config: SourceConfig | None = None) -> SourceIdentity:
    """Which shop a source is: its name, config file (and SHA-256) and orders (the --input file when given)."""
    config = config if config is not None else source.load()
    path = Path(source.config_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    orders = config.orders.path
    return SourceIdentity(name=config.name, config_path=str(path), config_sha256=digest,
                          orders_location=orders if isinstance(orders, str) else ", ".join(orders))


def ensure_source_runs(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"""CREATE TABLE IF NOT EXISTS {SOURCE_RUNS} (
        run_id VARCHAR, source_name VARCHAR, config_path VARCHAR, config_sha256 VARCHAR, orders_location VARCHAR,
        loaded_at TIMESTAMP)""")


def record_source_run(con: duckdb.DuckDBPyConnection, run_id: str, identity: SourceIdentity) -> None:
    ensure_source_runs(con)
    con.execute(f"DELETE FROM {SOURCE_RUNS} WHERE run_id = ?", [run_id])
    con.execute(f"INSERT INTO {SOURCE_RUNS} VALUES (?, ?, ?, ?, ?, current_timestamp)",
                [run_id, identity.name, identity.config_path, identity.config_sha256, identity.orders_location])


def recorded_source(con: duckdb.DuckDBPyConnection) -> SourceIdentity | None:
    """The source of the warehouse's latest recorded run; None for a new warehouse (or one from before sources
    were recorded, which the next run claims)."""
    if not table_exists(con, SOURCE_RUNS):
        return None
    row = con.execute(f"""SELECT source_name, config_path, config_sha256, orders_location FROM {SOURCE_RUNS}
                          ORDER BY loaded_at DESC LIMIT 1""").fetchone()
    return SourceIdentity(*row) if row else None


def source_conflict(recorded: SourceIdentity | None, incoming: SourceIdentity, warehouse: Path) -> str | None:
    """One line refusing the run when the warehouse holds another source; None when it is the same shop."""
    if recorded is None or recorded.name == incoming.name:
        return None
    return (f"warehouse {warehouse} holds {recorded.describe()}; this run is {incoming.describe()}. Give this shop "
            f"a warehouse of its own (--warehouse warehouse/{incoming.name}/warehouse.duckdb), or run with --replace "
            f"to set '{recorded.name}' aside and start this warehouse's history again with '{incoming.name}'")


def config_changed_note(recorded: SourceIdentity | None, incoming: SourceIdentity) -> str | None:
    """Same shop, edited config: said once, not refused (a model setting or a new mapping is a normal change)."""
    if recorded is None or recorded.name != incoming.name or not recorded.config_sha256:
        return None
    if recorded.config_sha256 == incoming.config_sha256:
        return None
    return (f"the config of source '{incoming.name}' changed since the last run (SHA-256 "
            f"{recorded.config_sha256[:12]} -> {incoming.config_sha256[:12]})")
