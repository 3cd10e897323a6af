"""Shared by the bench scripts: generate demo data and run the whole asset graph on a temporary warehouse."""

import sys
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.definitions import all_assets, all_checks  # noqa: E402
from pipelines.generate import GeneratedData, generate_demo_data  # noqa: E402
from pipelines.resources import SourceResource, WarehouseResource  # noqa: E402


def run_generated(root: Path, customers: int, seed: int) -> tuple[GeneratedData, Path]:
    """Demo data for `seed` under `root`, run through every asset and check; returns the data and the warehouse."""
    data = generate_demo_data(root / "data", customers=customers, seed=seed)
    config = root / "shop.yaml"
    config.write_text(f"name: bench\nshape: long\norders:\n  path: {data.orders_path}\n"
                      f"customers:\n  path: {data.customers_path}\n", encoding="utf-8")
    warehouse = root / "warehouse.duckdb"
    result = dg.materialize([*all_assets, *all_checks], raise_on_error=False, resources={
        "warehouse": WarehouseResource(path=str(warehouse)), "source": SourceResource(config_path=str(config))})
    if not result.success:
        raise SystemExit(f"seed {seed}: the run failed")
    return data, warehouse
