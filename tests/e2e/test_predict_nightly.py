"""Churn models and recommendation rules across nights: reused while young enough, retrained when too old or when
the feature columns change, and only the latest model file kept."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from assets.predict.churn_store import choose_churn_model, models_folder
from assets.predict.runs import TimeSplit
from pipelines.core.config import PredictSettings
from pipelines.core.partitions import snapshot_partition_key
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.demo.generate import generate_demo_data
from pipelines.jobs import ALL_ASSETS, ALL_CHECKS
from tests.conftest import query, work_db, write_file

DAY = timedelta(days=1)


# --- retraining cadence: reuse the latest model and rules between retrainings -------------------------------------

NIGHTS = {"first": 100, "next_day": 101, "a_week_later": 107, "income_dropped": 108}  # days of orders loaded


def _nightly_run(root: Path, orders: Path, customers: Path) -> str:
    config = write_file(root / "shop.yaml", f"name: nightly\nshape: long\norders:\n  path: {orders}\n"
                                            f"customers:\n  path: {customers}\n")
    selection = dg.AssetSelection.groups("predict").upstream().required_multi_asset_neighbors()
    result = dg.materialize([*ALL_ASSETS, *ALL_CHECKS], selection=selection, raise_on_error=False,
                            partition_key=snapshot_partition_key(), resources={
        "warehouse": WarehouseResource(path=str(root / "warehouse.duckdb")),
        "source": SourceResource(config_path=str(config))})
    assert result.success
    return result.run_id


@pytest.fixture(scope="module")
def nightly(tmp_path_factory) -> tuple[Path, dict[str, str], dict[str, pl.DataFrame]]:
    """One shop, four nights on one warehouse: the orders of the first 100 days, then 101 (the next night), 107
    (seven days after the first training) and 108 with the income column gone from the customer file. Returns
    the working database, the run id per night and the churn_risk table as each night left it (with `bought`:
    whether the customer ordered on that night's last day)."""
    root = tmp_path_factory.mktemp("predict-nightly")
    data = generate_demo_data(root / "data", customers=1200, days=120, seed=11)
    lines = pl.read_csv(data.orders_path, infer_schema=False)
    customers = pl.read_csv(data.customers_path, infer_schema=False)
    runs, risk = {}, {}
    for night, days in NIGHTS.items():
        end = (datetime(2026, 1, 1) + days * DAY).strftime("%Y-%m-%d")
        orders = root / f"orders_{days}.csv"
        lines.filter(pl.col("order_ts") < end).write_csv(orders)
        profiles = root / f"customers_{night}.csv"
        (customers.drop("income") if night == "income_dropped" else customers).write_csv(profiles)
        runs[night] = _nightly_run(root, orders, profiles)
        last_day = (datetime(2026, 1, 1) + (days - 1) * DAY).strftime("%Y-%m-%d")
        buyers = lines.filter(pl.col("order_ts").str.starts_with(last_day))["customer_id"].unique().implode()
        risk[night] = pl.DataFrame(query(work_db(root / "warehouse.duckdb"),
                                         "SELECT customer_id, churn_risk, model_version FROM predict.churn_risk "
                                         "ORDER BY customer_id"), schema=["customer_id", "churn_risk",
                                                                          "model_version"], orient="row") \
            .with_columns(pl.col("customer_id").is_in(buyers).alias("bought"))
    return work_db(root / "warehouse.duckdb"), runs, risk


def _churn_run(warehouse: Path, run_id: str) -> dict:
    frame = pl.DataFrame(query(warehouse, "SELECT * FROM predict.churn_model_runs WHERE run_id = ?", [run_id]),
                         schema=[r[0] for r in query(warehouse, "SELECT column_name FROM information_schema.columns "
                                                                "WHERE table_name = 'churn_model_runs' "
                                                                "ORDER BY ordinal_position")], orient="row")
    return frame.row(0, named=True)


def test_the_next_night_reuses_the_model_and_the_rules_but_scores_the_new_data(nightly):
    warehouse, runs, risk = nightly
    first, next_day = _churn_run(warehouse, runs["first"]), _churn_run(warehouse, runs["next_day"])
    assert (first["status"], first["model_action"], first["model_version"]) == ("trained", "trained", runs["first"])
    assert first["model_decision"] == "no earlier run has a model"
    assert (next_day["status"], next_day["model_action"]) == ("trained", "reused")
    assert next_day["model_version"] == runs["first"] and next_day["data_end"] == first["data_end"] + DAY
    assert "1 day before this data" in next_day["model_decision"]
    # The held-out figures are the training run's; nothing was judged again.
    for column in ("auc", "brier", "calibration_error", "n_train", "n_eval", "train_cutoff", "eval_cutoff", "model"):
        assert next_day[column] == first[column], column
    assert query(warehouse, "SELECT count(*) FROM predict.churn_calibration WHERE run_id = ?",
                 [runs["next_day"]]) == [(0,)]
    # Scored by the stored model, on features as of the new data end: the scores follow the new day.
    assert set(risk["next_day"]["model_version"].drop_nulls()) == {runs["first"]}
    both = risk["first"].join(risk["next_day"], on="customer_id", suffix="_next").drop_nulls()
    assert both.height > 1000 and (both["churn_risk"] != both["churn_risk_next"]).sum() > both.height / 10
    # Those who ordered on the new day look less likely to churn than the night before.
    came_back = both.filter(pl.col("bought_next"))
    assert came_back.height > 10 and came_back["churn_risk_next"].mean() < came_back["churn_risk"].mean() - 0.05
    # Rules: kept with their evaluation; recommendations rebuilt from the current baskets.
    rules = {row[0]: row[1:] for row in query(
        warehouse, "SELECT run_id, rules_action, rules_version, hit_rate, customers_evaluated, eval_cutoff "
                   "FROM predict.recommendation_eval")}
    assert rules[runs["first"]][:2] == ("mined", runs["first"])
    assert rules[runs["next_day"]][:2] == ("reused", runs["first"])
    assert rules[runs["next_day"]][2:] == rules[runs["first"]][2:]


def test_a_model_as_old_as_retrain_every_days_is_retrained(nightly):
    warehouse, runs, risk = nightly
    week = _churn_run(warehouse, runs["a_week_later"])
    assert (week["model_action"], week["model_version"]) == ("trained", runs["a_week_later"])
    assert "7 days before this data (predict.retrain_every_days 7)" in week["model_decision"]
    assert week["eval_cutoff"] == _churn_run(warehouse, runs["first"])["eval_cutoff"] + 7 * DAY
    [(action, version)] = query(warehouse, "SELECT rules_action, rules_version FROM predict.recommendation_eval "
                                           "WHERE run_id = ?", [runs["a_week_later"]])
    assert (action, version) == ("mined", runs["a_week_later"])


def test_changed_feature_columns_retrain_and_only_the_latest_model_file_is_kept(nightly):
    warehouse, runs, risk = nightly
    dropped = _churn_run(warehouse, runs["income_dropped"])
    assert dropped["model_action"] == "trained" and "the feature columns changed" in dropped["model_decision"]
    assert "income" in _churn_run(warehouse, runs["a_week_later"])["features"]
    assert "income" not in dropped["features"] and "age" in dropped["features"]
    assert [p.name for p in models_folder(warehouse).iterdir()] == [f"churn-{runs['income_dropped']}.joblib"]
    assert set(risk["income_dropped"]["model_version"].drop_nulls()) == {runs["income_dropped"]}


def test_a_stored_model_is_reused_only_when_everything_matches(nightly, tmp_path):
    warehouse, runs, _ = nightly
    latest = _churn_run(warehouse, runs["income_dropped"])
    split = TimeSplit(latest["data_start"], latest["data_end"], latest["horizon_days"])
    columns = list(latest["features"])
    models = tmp_path / "models"
    shutil.copytree(models_folder(warehouse), models)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        def choose(settings=PredictSettings(), split=split, columns=columns):
            return choose_churn_model(con, models, "a-new-run", split, columns, settings)
        stored, reason = choose()
        assert stored.version == runs["income_dropped"] and reason.startswith("reused")
        assert stored.model.predict_proba(np.zeros((2, len(columns))))[:, 1].shape == (2,)
        for why, (settings, when, features) in {
            "every run trains": (PredictSettings(retrain_every_days=0), split, columns),
            "the history was reloaded": (PredictSettings(), TimeSplit(split.data_start, split.data_end - DAY, 30),
                                         columns),
            "the feature columns changed": (PredictSettings(), split, [*columns, "income"]),
            "the model settings changed": (PredictSettings(train_sample=500), split, columns),
        }.items():
            stored, reason = choose(settings, when, features)
            assert stored is None and why in reason, reason
        # A model file that is not the one the training run wrote is never loaded.
        (models / f"churn-{runs['income_dropped']}.joblib").write_bytes(b"not the model")
        stored, reason = choose()
        assert stored is None and "missing or is not the file that run wrote" in reason
