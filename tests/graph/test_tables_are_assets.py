"""Every table in the published warehouse is an asset of the graph, or a declared output of one, and every table
asset is published: the lineage in the Dagster UI shows every public table.

Two runs: the seed table (a snapshot source, shared with the other tests of the session) and a small demo shop
read as a daily source from landing folders (its own tables: the days' files, the changed customers).
"""

from pathlib import Path

import duckdb
import pytest

from pipelines.jobs import ALL_ASSETS
from tests.conftest import daily_shop, materialize_graph, query, work_db

# Asset keys that name no table: the report's pages and charts, and the publish step itself.
NOT_TABLES = {("report", "segment_report"), ("warehouse", "published")}
# The raw layer is a database file of its own beside the working database, never published
# (pipelines.core.resources.raw_file_for): its assets are tables there.
UNPUBLISHED_SCHEMAS = {"raw"}


def table_assets() -> set[str]:
    keys = {tuple(key.path) for assets in ALL_ASSETS for key in assets.keys}
    return {".".join(path) for path in keys if len(path) == 2 and path not in NOT_TABLES}


def published_tables(warehouse: Path) -> set[str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("""SELECT schema_name, table_name FROM duckdb_tables()
                              WHERE database_name = current_database() AND NOT temporary""").fetchall()
    return {f"{schema}.{table}" for schema, table in rows}


def assert_tables_are_assets(warehouse: Path) -> None:
    assets = table_assets()
    published = published_tables(warehouse)
    expected = {name for name in assets if name.split(".")[0] not in UNPUBLISHED_SCHEMAS}
    missing, extra = sorted(expected - published), sorted(published - expected)
    assert not missing and not extra, (
        f"asset keys without a published table (missing): {missing}; "
        f"published tables that are no asset key (extra): {extra}")
    # The raw assets are tables too, in the raw layer's own database: views over the Parquet files it keeps.
    raw = {name for name in assets if name.split(".")[0] in UNPUBLISHED_SCHEMAS}
    in_raw_file = {f"raw.{name}" for (name,) in query(
        work_db(warehouse), "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'raw'")}
    assert raw <= in_raw_file, f"raw assets without a table in the raw database: {sorted(raw - in_raw_file)}"


@pytest.fixture(scope="module")
def daily_warehouse(tmp_path_factory) -> Path:
    """A small demo shop, its orders laid out as daily landing folders, loaded in one run."""
    root = tmp_path_factory.mktemp("tables-daily")
    config = daily_shop(root, customers=300, seed=5)
    warehouse = root / "wh" / "warehouse.duckdb"
    result = materialize_graph(config, warehouse)
    assert result.success
    return warehouse


def test_the_seed_runs_published_tables_are_the_table_assets(seed_warehouse):
    assert_tables_are_assets(seed_warehouse)


def test_a_daily_runs_published_tables_are_the_table_assets(daily_warehouse):
    assert_tables_are_assets(daily_warehouse)
