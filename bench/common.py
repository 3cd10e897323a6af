"""Shared by the bench scripts: generate demo data and run the whole asset graph on a temporary warehouse."""

import os
import sys
from datetime import date
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.core.partitions import snapshot_partition_key  # noqa: E402
from pipelines.core.resources import DEFAULT_MEMORY_LIMIT, SourceResource, WarehouseResource  # noqa: E402
from pipelines.demo.generate import GeneratedData, generate_demo_data  # noqa: E402
from pipelines.jobs import ALL_ASSETS, ALL_CHECKS  # noqa: E402
from pipelines.planning import plan_run  # noqa: E402


def bench_warehouse(path: Path) -> WarehouseResource:
    """The warehouse at `path` with DuckDB's memory limit as a run would have it (PERSONA_DUCKDB_MEMORY_LIMIT)."""
    return WarehouseResource(path=str(path),
                             memory_limit=os.environ.get("PERSONA_DUCKDB_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT))


def materialize_shop(workdir: Path, orders: Path, customers: Path) -> tuple[dg.ExecuteInProcessResult, Path]:
    """Every asset and check on a fresh warehouse in `workdir`, for a long-shape shop; the result and warehouse."""
    config = workdir / "shop.yaml"
    config.write_text(f"name: bench\nshape: long\norders:\n  path: {orders}\n"
                      f"customers:\n  path: {customers}\n", encoding="utf-8")
    warehouse = workdir / "warehouse.duckdb"
    result = dg.materialize([*ALL_ASSETS, *ALL_CHECKS], raise_on_error=False,
                            partition_key=snapshot_partition_key(), resources={
        "warehouse": bench_warehouse(warehouse), "source": SourceResource(config_path=str(config))})
    return result, warehouse


def materialize_daily(workdir: Path, landing: Path, customers: Path, first: date | None = None,
                      last: date | None = None) -> dg.ExecuteInProcessResult:
    """Every asset and check on the warehouse in `workdir`, for a daily shop whose orders land in
    `landing/order_day=YYYY-MM-DD/`; loads first..last, or every landing day."""
    config = workdir / "daily.yaml"
    config.write_text(f"name: bench-daily\nshape: long\norders:\n  path: {landing}/order_day={{date}}/*.csv\n"
                      f"customers:\n  path: {customers}\n", encoding="utf-8")
    source = SourceResource(config_path=str(config))
    warehouse = bench_warehouse(workdir / "warehouse.duckdb")
    plan = plan_run(source.load(), warehouse.published_file, first, last, all_days=first is None)
    return dg.materialize([*ALL_ASSETS, *ALL_CHECKS], raise_on_error=False, partition_key=plan.partition_key,
                          tags=plan.tags, resources={"warehouse": warehouse, "source": source})


def run_generated(root: Path, customers: int, seed: int) -> tuple[GeneratedData, Path]:
    """Demo data for `seed` under `root`, run through every asset and check; returns the data and the warehouse."""
    data = generate_demo_data(root / "data", customers=customers, seed=seed)
    result, warehouse = materialize_shop(root, data.orders_path, data.customers_path)
    if not result.success:
        raise SystemExit(f"seed {seed}: the run failed")
    return data, warehouse
