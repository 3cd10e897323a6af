"""Reusing the outlier forest between runs: the saved trees score exactly as scikit-learn's, only changed customers
are scored again, and the forest is refitted when its window passed, its features changed or its files were
altered."""

import json
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from sklearn.ensemble import IsolationForest

from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.demo.generate import generate_demo_data
from quality.outliers import (
    OUTLIER_FEATURES,
    SPLIT_SCORING_ROWS,
    Trees,
    forest_folder,
    outliers,
    score_outliers,
    score_with_state,
)
from tests.conftest import (
    materialize_graph,
    planted_outlier_inputs,
    query,
    work_db,
    write_file,
)


def test_saved_trees_score_exactly_as_scikit_learn():
    rng = np.random.default_rng(4)
    rows = rng.lognormal(size=(6000, 6))
    rows[:, 2] = np.round(rows[:, 2], 1)  # ties on a feature, as counts have
    forest = IsolationForest(n_estimators=50, max_samples=1024, random_state=9).fit(rows)
    assert np.array_equal(Trees.of(forest).score_samples(rows), forest.score_samples(rows))
    # Both paths: enough rows to be scored in blocks on threads, and a few rows scored on one thread.
    assert len(rows) >= SPLIT_SCORING_ROWS
    assert np.array_equal(Trees.of(forest).score_samples(rows[:50]), forest.score_samples(rows[:50]))


def test_a_reused_forest_rescores_only_changed_and_new_customers():
    inputs = planted_outlier_inputs(np.random.default_rng(5), normal=3000, extreme=15)
    first = score_with_state(inputs, contamination=0.005, seed=42, run_id="night-1")
    assert not first.reused and first.rescored == inputs.height
    assert first.table.equals(score_outliers(inputs, contamination=0.005, seed=42))

    # Night 2: the same customers again give the same table without scoring anyone.
    again = score_with_state(inputs, contamination=0.005, seed=42, saved=first.state)
    assert again.reused and again.rescored == 0 and again.table.equals(first.table)

    # Night 3: two customers ordered more, one is new; only those three are scored, by night 1's forest.
    changed = inputs.with_columns(
        pl.when(pl.col("customer_id").is_in(["C7", "C11"])).then(pl.col("n_orders") + 40)
        .otherwise(pl.col("n_orders")).alias("n_orders"))
    newcomer = inputs.filter(pl.col("customer_id") == "C3001").with_columns(pl.lit("NEW").alias("customer_id"))
    third = score_with_state(pl.concat([changed, newcomer]), contamination=0.005, seed=42, saved=first.state)
    assert third.reused and third.rescored == 3
    before = dict(zip(first.table["customer_id"], first.table["score"]))
    after = dict(zip(third.table["customer_id"], third.table["score"]))
    assert {c for c in before if after[c] != before[c]} == {"C7", "C11"}
    assert after["NEW"] == before["C3001"]  # the same row scores the same under the same forest
    assert after["C7"] > before["C7"]  # 40 more orders: stranger
    assert third.state.fitted_run_id == "night-1" and third.state.customers.height == inputs.height + 1


def test_too_many_changed_customers_refit_the_forest():
    inputs = planted_outlier_inputs(np.random.default_rng(6), normal=3000, extreme=15)
    first = score_with_state(inputs, contamination=0.005, seed=42, run_id="night-1")
    moved = inputs.with_columns(pl.col("total_spend") * 1.5)
    refit = score_with_state(moved, contamination=0.005, seed=42, saved=first.state, run_id="night-2")
    assert not refit.reused and refit.rescored == inputs.height and refit.state.fitted_run_id == "night-2"
    assert refit.table.equals(score_outliers(moved, contamination=0.005, seed=42))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One full refresh; its working database and saved forest are where every scenario starts."""
    root = tmp_path_factory.mktemp("forest")
    data = generate_demo_data(root / "data", customers=3000, days=60, seed=8)
    config = write_file(root / "shop.yaml", f"name: forest\nshape: long\norders:\n  path: {data.orders_path}\n"
                                            f"customers:\n  path: {data.customers_path}\n")
    warehouse = root / "warehouse.duckdb"
    result = materialize_graph(config, warehouse)
    assert result.success
    return config, work_db(warehouse), result.run_id


def _rerun(fitted, tmp_path: Path, sql: tuple[str, ...] = (), change_files=None, quality: str = "") -> dict:
    """The outliers step alone on a copy of the fitted working database and forest; its metadata and the table."""
    import duckdb

    config, work, _ = fitted
    copy = tmp_path / "work" / "warehouse.duckdb"
    copy.parent.mkdir(parents=True)
    shutil.copy(work, copy)
    shutil.copytree(forest_folder(work), forest_folder(copy))
    if change_files:
        change_files(forest_folder(copy))
    with duckdb.connect(str(copy)) as con:
        for statement in sql:
            con.execute(statement)
    if quality:
        config = write_file(tmp_path / "shop.yaml", config.read_text(encoding="utf-8") + f"quality:\n{quality}")
    result = dg.materialize([outliers], resources={
        "warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb")),
        "source": SourceResource(config_path=str(config))})
    assert result.success
    metadata = result.asset_materializations_for_node("quality__outliers")[0].metadata
    return {"forest": metadata["forest"].value, "rescored": metadata["rescored"].value, "db": copy}


def _scores(db: Path) -> dict:
    return dict(query(db, "SELECT customer_id, score FROM quality.outliers"))


def test_the_next_night_reuses_the_forest_and_scores_nobody_unchanged(fitted, tmp_path):
    _, work, first = fitted
    manifest = json.loads((forest_folder(work) / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["fitted_run_id"] == first and manifest["features"] == OUTLIER_FEATURES
    run = _rerun(fitted, tmp_path, sql=("UPDATE staging.orders SET order_ts = order_ts + INTERVAL 6 DAY",))
    assert run["forest"] == (f"reused: fitted 6.0 days of data ago in run {first}; rescored 0 of "
                             f"{len(_scores(work))} customers")
    assert _scores(run["db"]) == _scores(work)


def test_a_customer_whose_inputs_changed_is_scored_again(fitted, tmp_path):
    _, work, _ = fitted
    target = query(work, "SELECT customer_id FROM quality.outliers ORDER BY customer_id LIMIT 1")[0][0]
    run = _rerun(fitted, tmp_path, sql=(
        f"UPDATE features.customer_features SET n_orders = n_orders + 50 WHERE customer_id = '{target}'",))
    assert run["forest"].startswith("reused: ") and run["forest"].endswith(f"rescored 1 of {len(_scores(work))} "
                                                                           "customers")
    before, after = _scores(work), _scores(run["db"])
    assert {c for c in before if before[c] != after[c]} == {target} and after[target] > before[target]


def test_the_forest_is_refitted_once_its_window_has_passed(fitted, tmp_path):
    run = _rerun(fitted, tmp_path, sql=("UPDATE staging.orders SET order_ts = order_ts + INTERVAL 7 DAY",))
    assert run["forest"] == "refitted: fitted 7.0 days of data ago (quality.outlier_refit_every_days = 7)"
    run = _rerun(fitted, tmp_path / "zero", quality="  outlier_refit_every_days: 0\n")
    assert run["forest"] == "refitted: quality.outlier_refit_every_days is 0: refitted on every run"


def test_changed_outlier_features_reject_the_saved_forest(fitted, tmp_path):
    # No income any more: the forest saw six features, the data has five.
    run = _rerun(fitted, tmp_path, sql=("UPDATE features.customer_features SET income = NULL",))
    assert run["forest"].startswith("refitted: outlier features changed (saved ['total_spend', 'n_orders', "
                                    "'avg_basket_value', 'max_order_amount', 'max_items_per_order', 'income'], now")
    assert query(run["db"], "SELECT count(*) FILTER (WHERE top_feature = 'income') FROM quality.outliers") == [(0,)]


def test_altered_forest_files_are_refused(fitted, tmp_path):
    def tamper(folder: Path) -> None:
        data = bytearray((folder / "forest.npz").read_bytes())
        data[-100] ^= 0xFF
        (folder / "forest.npz").write_bytes(bytes(data))

    run = _rerun(fitted, tmp_path, change_files=tamper)
    assert run["forest"] == "refitted: the saved forest's files fail their checksum"
