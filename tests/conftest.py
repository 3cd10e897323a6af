"""Shared test helpers: every warehouse lives under tmp_path; the seed table is read from ../shared.

Tests live in three tiers, one folder each, and carry the folder's marker: `unit` (functions on small inputs),
`graph` (the asset graph, or part of it, materialized in process on small data), `e2e` (real processes: the CLI,
nightly runs and crash recovery, the report in headless Chromium, the corpus of real-shaped exports).
`make test-fast` runs the first two; `make test` runs all.
"""

import os
import signal
import subprocess
import time
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from assets.raw.settle import SETTLE_VARIABLE
from assets.report.asset import CACHE_DIR_VARIABLE
from pipelines.core.partitions import split_orders_by_day
from pipelines.core.resources import (
    SourceResource,
    WarehouseResource,
    attach_raw,
    raw_file_for,
    work_file_for,
)
from pipelines.demo.generate import generate_demo_data
from pipelines.jobs import ALL_ASSETS, ALL_CHECKS
from pipelines.planning import plan_run

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"
SEED_BASKETS = REPO_ROOT.parent / "shared" / "data" / "BASKETS1n.csv"
# A real online-retail export (UCI Online Retail II, 2009-2010: 525,461 order lines nobody here generated).
ONLINE_RETAIL = REPO_ROOT.parent / "shared" / "data" / "online_retail_II_2009_2010.parquet"


def child_env(keep_dagster: bool = False) -> dict[str, str]:
    """The environment for a `persona` subprocess that must not see this machine's PERSONA_* (and DAGSTER_*)
    settings, but keeps the tests' settle time (files_settle_at_once) and cache folder (cache_in_the_test_folder)."""
    dropped = ("PERSONA_",) if keep_dagster else ("PERSONA_", "DAGSTER_")
    kept = (SETTLE_VARIABLE, CACHE_DIR_VARIABLE)
    return {k: v for k, v in os.environ.items() if not k.startswith(dropped) or k in kept}


@pytest.fixture(scope="session", autouse=True)
def cache_in_the_test_folder(tmp_path_factory):
    """The report's script bundle is kept in the user's cache folder (assets/report/asset.py: bundle_cache_files):
    the tests keep theirs in the session's folder instead of writing to the home of the machine they run on."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_DIR_VARIABLE, str(tmp_path_factory.mktemp("persona-cache")))
        yield


@pytest.fixture(scope="session", autouse=True)
def files_settle_at_once():
    """Test files are written just before they are read, by a test that has finished writing them: read them at
    once instead of waiting `ingest.settle_seconds` (default 60). PERSONA_SETTLE_SECONDS overrides every config's
    setting (assets/raw/settle.py) and reaches the `persona` subprocesses that inherit the environment (a helper
    that strips PERSONA_* variables must pass this one on); tests of files in motion set it back with monkeypatch
    (tests/e2e/test_bad_files.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SETTLE_VARIABLE, "0")
        yield


def process_group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def assert_process_group_ends(group: int, timeout: float) -> None:
    """Every process of the group (a server and the children it started) exits within `timeout` seconds; the
    assertion lists the ones left."""
    deadline = time.monotonic() + timeout
    while process_group_alive(group) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not process_group_alive(group), subprocess.run(["ps", "-o", "pid,args", "-g", str(group)],
                                                          capture_output=True, text=True).stdout


def kill_process_group(group: int) -> None:
    """Cleanup after a test whatever it asserted: nothing of the group outlives it."""
    if process_group_alive(group):
        os.killpg(group, signal.SIGKILL)


def materialize_graph(
    config_path: Path, warehouse_path: Path, input_override: str = "", first: date | None = None,
    last: date | None = None, instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """The full asset graph with its checks, on an ephemeral Dagster instance unless one is given. Daily sources
    load the days first..last, every landing day by default; snapshot sources load everything."""
    source = SourceResource(config_path=str(config_path), input_override=input_override)
    warehouse = WarehouseResource(path=str(warehouse_path))
    plan = plan_run(source.load(), warehouse.published_file, first, last, all_days=first is None)
    return dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        resources={"warehouse": warehouse, "source": source},
        partition_key=plan.partition_key,
        tags=plan.tags,
        instance=instance,
        raise_on_error=False,
    )


TIERS = ("unit", "graph", "e2e")


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = next((part for part in Path(str(item.fspath)).relative_to(REPO_ROOT / "tests").parts
                     if part in TIERS), None)
        if tier is None:
            raise pytest.UsageError(f"{item.nodeid}: a test belongs in tests/unit, tests/graph or tests/e2e")
        item.add_marker(tier)


DAYS = [date(2026, 1, d) for d in range(1, 9)]  # the generator starts on 2026-01-01
LANDING_TEMPLATE = "landing/order_day={date}/*.csv"


def daily_shop(root: Path, customers: int = 400, seed: int = 5) -> Path:
    """Generated orders laid out as eight daily landing folders, and a daily source config reading them."""
    data = generate_demo_data(root / "data", customers=customers, days=len(DAYS), seed=seed)
    assert split_orders_by_day(data.orders_path, root / "landing") == len(DAYS)
    return write_file(root / "shop.yaml", f"""
name: daily
shape: long
orders:
  path: {LANDING_TEMPLATE}
  date_formats: ["%Y-%m-%d %H:%M:%S"]
customers:
  path: {data.customers_path}
model:
  k_range: [3, 5]
  bootstrap_rounds: 2
""")


def work_db(warehouse_path: Path) -> Path:
    """The working database behind a published warehouse path (raw layer, and the tables of failed runs)."""
    return work_file_for(Path(warehouse_path).resolve())


def query(warehouse_path: Path, sql: str, params: list | dict | None = None) -> list[tuple]:
    """Read-only query; on a working database its raw layer is attached as `raw`, as the pipeline sees it."""
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        attach_raw(con, raw_file_for(Path(warehouse_path)), read_only=True)
        return con.execute(sql, params or []).fetchall()


def write_file(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def seed_baskets() -> Path:
    if not SEED_BASKETS.is_file():
        pytest.fail(f"the seed table is expected at {SEED_BASKETS} (../shared/data beside the repository)")
    return SEED_BASKETS


@pytest.fixture
def online_retail() -> Path:
    if not ONLINE_RETAIL.is_file():
        pytest.fail(f"the online-retail export is expected at {ONLINE_RETAIL} (../shared/data beside the repository)")
    return ONLINE_RETAIL


@pytest.fixture(scope="session")
def seed_warehouse(tmp_path_factory) -> Path:
    """The seed table run once through the whole graph from its example config."""
    if not SEED_BASKETS.is_file():
        pytest.fail(f"the seed table is expected at {SEED_BASKETS} (../shared/data beside the repository)")
    warehouse = tmp_path_factory.mktemp("seed") / "warehouse.duckdb"
    result = materialize_graph(EXAMPLES / "baskets.yaml", warehouse, input_override=str(SEED_BASKETS))
    assert result.success
    return warehouse


def planted_outlier_inputs(rng: np.random.Generator, normal: int, extreme: int) -> pl.DataFrame:
    """Outlier-model inputs: `normal` ordinary customers, then `extreme` planted big spenders."""
    spend = np.concatenate([rng.lognormal(6, 0.5, normal), rng.lognormal(11, 0.3, extreme)])
    orders = np.concatenate([rng.integers(1, 12, normal), rng.integers(60, 90, extreme)]).astype(float)
    return pl.DataFrame({
        "customer_id": [f"C{i}" for i in range(normal + extreme)],
        "total_spend": spend, "n_orders": orders, "avg_basket_value": spend / orders,
        "max_order_amount": spend / orders * 2, "max_items_per_order": orders,
        "income": np.concatenate([rng.normal(1e5, 2e4, normal), rng.normal(3e6, 1e5, extreme)]),
    })
