"""How well the predictive layer does on generated data with planted churn and co-purchase, over several seeds.

    .venv/bin/python scripts/predict_quality.py                      # seeds 7 1 2, 20,000 customers, 120 days
    .venv/bin/python scripts/predict_quality.py --customers 5000 --seeds 7

Per seed: the churn model's AUC, Brier score (against always forecasting the training churn rate) and calibration
error on the held-out last horizon, and the recommendations' hit-rate@N on the same window against the popularity
baseline. The figures are the ones the pipeline records (predict.churn_model_runs, predict.recommendation_eval):
the script generates the data and runs staging, features and the predict assets through Dagster, nothing else.
The acceptance bar of the predictive layer: AUC >= 0.75 and hit-rate >= 1.3x popularity.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import dagster as dg
import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.core.partitions import snapshot_partition_key  # noqa: E402
from pipelines.core.resources import SourceResource, WarehouseResource, work_file_for  # noqa: E402
from pipelines.demo.generate import generate_demo_data  # noqa: E402
from pipelines.jobs import ALL_ASSETS, ALL_CHECKS  # noqa: E402

PREDICT_GROUP = "predict"


def evaluate(folder: Path, customers: int, days: int, seed: int) -> dict:
    data = generate_demo_data(folder / "data", customers=customers, days=days, seed=seed)
    config = folder / "shop.yaml"
    config.write_text(f"name: predict-quality\nshape: long\norders:\n  path: {data.orders_path}\n"
                      f"customers:\n  path: {data.customers_path}\n", encoding="utf-8")
    warehouse = folder / "warehouse.duckdb"
    # The predict assets and everything upstream of them (not the segmentation or the report).
    selection = dg.AssetSelection.groups(PREDICT_GROUP).upstream().required_multi_asset_neighbors()
    result = dg.materialize([*ALL_ASSETS, *ALL_CHECKS], selection=selection, raise_on_error=False,
                            partition_key=snapshot_partition_key(), resources={
        "warehouse": WarehouseResource(path=str(warehouse)), "source": SourceResource(config_path=str(config))})
    if not result.success:
        raise SystemExit(f"seed {seed}: the run failed")
    # Publishing is not selected: the tables are in the working database.
    with duckdb.connect(str(work_file_for(warehouse)), read_only=True) as con:
        churn = con.execute("SELECT status, reason, auc, brier, brier_baseline, calibration_error, n_train, n_eval, "
                            "eval_churn_rate FROM predict.churn_model_runs").pl().row(0, named=True)
        recs = con.execute("SELECT status, reason, top_n, customers_evaluated, hit_rate, popularity_hit_rate, "
                           "lift_over_popularity FROM predict.recommendation_eval").pl().row(0, named=True)
    return {"seed": seed, **{f"churn_{k}": v for k, v in churn.items()}, **{f"recs_{k}": v for k, v in recs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 1, 2])
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as folder:
            row = evaluate(Path(folder), args.customers, args.days, seed)
        rows.append(row)
        if row["churn_status"] != "trained" or row["recs_status"] != "evaluated":
            print(f"seed={seed} churn: {row['churn_status']} ({row['churn_reason']}); "
                  f"recommendations: {row['recs_status']} ({row['recs_reason']})", flush=True)
            continue
        print(f"seed={seed} churn: auc={row['churn_auc']:.3f} brier={row['churn_brier']:.3f} "
              f"(base-rate forecast {row['churn_brier_baseline']:.3f}) calibration_error="
              f"{row['churn_calibration_error']:.3f} train={row['churn_n_train']} eval={row['churn_n_eval']} "
              f"eval_churn_rate={row['churn_eval_churn_rate']:.3f} | recommendations: "
              f"hit_rate@{row['recs_top_n']}={row['recs_hit_rate']:.3f} "
              f"popularity={row['recs_popularity_hit_rate']:.3f}"
              f" lift={row['recs_lift_over_popularity']:.2f}x over {row['recs_customers_evaluated']} customers",
              flush=True)
    measured = [r for r in rows if r["churn_status"] == "trained" and r["recs_status"] == "evaluated"]
    if measured:
        print(f"min_auc={min(r['churn_auc'] for r in measured):.3f} "
              f"max_calibration_error={max(r['churn_calibration_error'] for r in measured):.3f} "
              f"min_lift_over_popularity={min(r['recs_lift_over_popularity'] for r in measured):.2f}x "
              f"({len(measured)}/{len(rows)} seeds measured)")


if __name__ == "__main__":
    main()
