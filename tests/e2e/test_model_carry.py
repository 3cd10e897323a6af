"""Carrying k between runs: within `model.reselect_k_every_days` a run keeps the previous k and skips the candidate
scoring, unless drift or a change of features or settings makes it re-choose; segments.model_runs says which and
why."""

import re
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest
from sklearn.preprocessing import StandardScaler

from assets.model.clusters import model_tables
from assets.model.preparation import fit_scaler, prepare, preprocessor, select_feature_columns
from assets.model.selection import fit_final
from assets.model.tables import CARRY_COLUMNS
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.demo.generate import generate_demo_data
from tests.conftest import materialize_graph, query, work_db, write_file


def _config(root: Path, data, model: str = "") -> Path:
    return write_file(root / "shop.yaml", f"name: carry\nshape: long\norders:\n  path: {data.orders_path}\n"
                                          f"customers:\n  path: {data.customers_path}\n"
                                          + (f"model:\n{model}" if model else ""))


@pytest.fixture(scope="module")
def first_night(tmp_path_factory):
    """One full refresh: the working database every scenario starts from, and the run that chose k."""
    root = tmp_path_factory.mktemp("carry")
    data = generate_demo_data(root / "data", customers=3000, days=60, seed=21)
    warehouse = root / "warehouse.duckdb"
    result = materialize_graph(_config(root, data), warehouse)
    assert result.success
    return data, work_db(warehouse), result.run_id


def _next_run(first_night, tmp_path: Path, model: str = "", sql: tuple[str, ...] = ()):
    """A copy of the first night's working database, changed by `sql`, then the model step alone on it. Returns
    the run id and a connection-free query helper on the copy."""
    data, work, _ = first_night
    copy = tmp_path / "work" / "warehouse.duckdb"
    copy.parent.mkdir(parents=True)
    shutil.copy(work, copy)
    with duckdb.connect(str(copy)) as con:
        for statement in sql:
            con.execute(statement)
    result = dg.materialize([model_tables], resources={
        "warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb")),
        "source": SourceResource(config_path=str(_config(tmp_path, data, model)))})
    assert result.success
    return result.run_id, copy


def _decision(db: Path, run_id: str) -> dict:
    columns = ["k", "k_decision", "k_decision_reason", "reason", "k_selected_run_id", "warm_started",
               "moved_share", "distance_change", "data_as_of", "k_selected_as_of"]
    row = query(db, f"SELECT {', '.join(columns)} FROM segments.model_runs WHERE run_id = ? AND chosen", [run_id])
    assert len(row) == 1
    return dict(zip(columns, row[0]))


def _scores(db: Path, run_id: str) -> list[tuple]:
    return query(db, "SELECT k, silhouette, davies_bouldin, stability, min_share, meets_constraints "
                     "FROM segments.model_runs WHERE run_id = ? ORDER BY k", [run_id])


def test_the_first_run_chooses_k_and_records_why(first_night):
    _, work, first = first_night
    decision = _decision(work, first)
    assert decision["k"] == 4 and decision["k_decision"] == "chosen"
    assert decision["k_decision_reason"].startswith("first run: no previous model; best silhouette")
    assert decision["k_selected_run_id"] == first and decision["k_selected_as_of"] == decision["data_as_of"]
    assert decision["moved_share"] is None and not decision["warm_started"]
    assert [row[0] for row in _scores(work, first)] == [3, 4, 5, 6, 7, 8]


def test_within_the_window_k_is_carried_without_scoring(first_night, tmp_path):
    _, work, first = first_night
    # Six more days of data: still inside the default window of seven.
    run, db = _next_run(first_night, tmp_path,
                        sql=("UPDATE staging.orders SET order_ts = order_ts + INTERVAL 6 DAY",))
    decision = _decision(db, run)
    assert decision["k"] == 4 and decision["k_decision"] == "carried" and decision["warm_started"]
    assert decision["k_selected_run_id"] == first
    assert decision["k_decision_reason"].startswith(f"k carried from run {first}, chosen 6.0 days of data ago; "
                                                    "no drift (moved ")
    assert decision["moved_share"] < 0.001 and abs(decision["distance_change"]) < 0.001
    # The candidate scores shown are those that chose k, not new ones.
    assert _scores(db, run) == _scores(work, first)
    # Same features, same k, started from the same centres: nobody changes segment.
    before = dict(query(work, "SELECT customer_id, segment_id FROM model.customer_clusters"))
    after = dict(query(db, "SELECT customer_id, segment_id FROM model.customer_clusters"))
    assert sum(before[c] != after[c] for c in after) <= 3


def test_after_the_window_k_is_chosen_again(first_night, tmp_path):
    _, work, first = first_night
    run, db = _next_run(first_night, tmp_path,
                        sql=("UPDATE staging.orders SET order_ts = order_ts + INTERVAL 7 DAY",))
    decision = _decision(db, run)
    assert decision["k_decision"] == "chosen" and decision["k_selected_run_id"] == run
    assert decision["k_decision_reason"].startswith(
        "k was chosen 7.0 days of data ago (model.reselect_k_every_days = 7); best silhouette")
    assert decision["warm_started"]  # the same k again: the fit still starts from the previous centres
    assert [row[0] for row in _scores(db, run)] == [3, 4, 5, 6, 7, 8]


def test_a_window_of_zero_chooses_k_on_every_run(first_night, tmp_path):
    run, db = _next_run(first_night, tmp_path, model="  reselect_k_every_days: 0\n")
    decision = _decision(db, run)
    assert decision["k_decision"] == "chosen"
    assert decision["k_decision_reason"].startswith("model.reselect_k_every_days is 0")


def test_customers_changing_segment_is_drift(first_night, tmp_path):
    # The same population, but every customer's features handed to another customer: the centres stay where they
    # were and most customers change segment.
    run, db = _next_run(first_night, tmp_path, sql=("""
        CREATE OR REPLACE TABLE features.customer_features AS
        SELECT f.* REPLACE (s.customer_id AS customer_id)
        FROM (SELECT *, row_number() OVER (ORDER BY customer_id) AS i FROM features.customer_features) f
        JOIN (SELECT customer_id, row_number() OVER (ORDER BY hash(customer_id)) AS i
              FROM features.customer_features) s USING (i)""",))
    decision = _decision(db, run)
    assert decision["k_decision"] == "chosen" and decision["k_selected_run_id"] == run
    assert decision["moved_share"] > 0.5
    # The reason cites the drift that triggered the re-choice (the carried fit's); moved_share is measured on the
    # model published, which differs when the new k does.
    triggered = re.match(r"drift since the previous run: (\d+\.\d)% of customers changed segment "
                         r"\(model\.drift_max_moved_share 5\.0%\); best silhouette", decision["k_decision_reason"])
    assert triggered and float(triggered.group(1)) > 50


def test_customers_further_from_their_centres_is_drift(first_night, tmp_path):
    # Noise on every category and payment share spreads the segments out (two of the four feature families, which
    # weigh the same); moving customers is not counted here.
    _, work, _ = first_night
    shares = [row[0] for row in query(work, "SELECT column_name FROM information_schema.columns "
                                            "WHERE table_name = 'customer_features' "
                                            "AND (column_name LIKE 'cat_%' OR column_name LIKE 'pay_%')")]
    noise = ", ".join(f"{c} = {c} + 2 * (random() - 0.5)" for c in shares)
    run, db = _next_run(first_night, tmp_path, model="  drift_max_moved_share: 1.0\n",
                        sql=("SELECT setseed(0.5)", f"UPDATE features.customer_features SET {noise}"))
    decision = _decision(db, run)
    assert decision["k_decision"] == "chosen" and decision["k_selected_run_id"] == run
    # The reason quotes the rise measured on the refit with the carried k, which triggered the re-choice.
    rise = re.match(r"drift since the previous run: mean distance to centre rose \+(\d+\.\d)% "
                    r"\(model.drift_max_distance_rise 10.0%\); best silhouette", decision["k_decision_reason"])
    assert rise and float(rise.group(1)) > 10
    assert decision["distance_change"] > 0.10


def test_changed_feature_columns_reject_the_previous_model(first_night, tmp_path):
    run, db = _next_run(first_night, tmp_path, model="  features: [demographics, categories, rfm]\n")
    decision = _decision(db, run)
    assert decision["k_decision"] == "chosen"
    assert decision["k_decision_reason"].startswith(
        "feature columns changed since the previous run (added [], removed ['pay_")
    columns = query(db, "SELECT feature_columns FROM segments.model_runs WHERE run_id = ? AND chosen", [run])[0][0]
    assert columns and not any(c.startswith("pay_") for c in columns)
    # The previous model is not even a starting point on other columns.
    assert not decision["warm_started"]


def test_changed_selection_settings_choose_k_again(first_night, tmp_path):
    run, db = _next_run(first_night, tmp_path, model="  k_range: [3, 6]\n")
    decision = _decision(db, run)
    assert decision["k_decision"] == "chosen"
    assert decision["k_decision_reason"].startswith("model settings or algorithm changed since k was chosen")
    assert [row[0] for row in _scores(db, run)] == [3, 4, 5, 6]


def test_a_warehouse_from_before_carrying_gets_the_columns_and_chooses_k(first_night, tmp_path):
    drops = tuple(f"ALTER TABLE segments.model_runs DROP COLUMN {column}" for column in CARRY_COLUMNS)
    run, db = _next_run(first_night, tmp_path, sql=drops)
    decision = _decision(db, run)
    assert decision["k_decision"] == "chosen"
    assert decision["k_decision_reason"].startswith("the previous run did not record how its k was chosen")
    # Old rows keep NULL in the new columns.
    assert query(db, "SELECT count(*) FROM segments.model_runs WHERE run_id <> ? AND k_decision IS NULL",
                 [run]) == [(6,)]


# --- the arithmetic a carried run repeats on every customer ---------------------------------------------------

def _matrix_with_gaps(rows: int = 500, columns: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    matrix = np.asfortranarray(rng.normal(size=(rows, columns)) * [1.0, 5.0, 0.1, 2.0][:columns])  # as polars gives
    matrix[rng.random(size=matrix.shape) < 0.05] = np.nan
    fit_mask = rng.random(rows) > 0.1
    return matrix, fit_mask


def test_prepare_gives_what_the_pipeline_gives():
    matrix, fit_mask = _matrix_with_gaps()
    original = matrix.copy()
    pipeline, scaled, fit_rows = prepare(matrix, fit_mask)
    reference = preprocessor().fit(matrix[fit_mask])
    assert np.array_equal(scaled, reference.transform(matrix))
    assert np.array_equal(fit_rows, reference.transform(matrix[fit_mask]))
    assert np.array_equal(pipeline.named_steps["impute"].statistics_, reference.named_steps["impute"].statistics_)
    assert np.array_equal(pipeline.named_steps["scale"].scale_, reference.named_steps["scale"].scale_)
    assert scaled.flags["C_CONTIGUOUS"] and not np.isnan(scaled).any()
    assert np.array_equal(matrix, original, equal_nan=True)  # the caller's matrix keeps its gaps
    # From the frame of the columns (nulls are the gaps): the same medians, the same rows.
    frame = pl.DataFrame({f"f{j}": pl.Series(column).fill_nan(None) for j, column in enumerate(original.T)})
    from_frame, scaled_from_frame, fit_rows_from_frame = prepare(frame, fit_mask)
    assert np.array_equal(from_frame.named_steps["impute"].statistics_, reference.named_steps["impute"].statistics_)
    assert np.array_equal(scaled_from_frame, scaled) and np.array_equal(fit_rows_from_frame, fit_rows)


def test_the_scaler_is_fitted_as_scikit_learn_fits_it(monkeypatch):
    rng = np.random.default_rng(9)
    rows = np.column_stack([
        rng.normal(size=1000) * 1e3 + 5e4,  # a large offset: the two-pass correction matters
        rng.lognormal(size=1000),
        np.full(1000, 7.0),  # constant: scale 1
        np.where(rng.random(1000) < 0.5, 0.1, np.nextafter(0.1, 1.0)),  # constant but for the last bit: scale 1
        -np.abs(rng.normal(size=1000)) * 0.0,  # minus zeros: mean 0.0, not -0.0
    ])
    monkeypatch.setattr("assets.model.preparation.SCALER_BLOCK_ROWS", 96)  # eleven blocks, the last one short
    fitted, reference = fit_scaler(rows), StandardScaler().fit(rows)
    for attribute in ("mean_", "var_", "scale_", "n_samples_seen_", "n_features_in_"):
        assert np.array_equal(getattr(fitted, attribute), getattr(reference, attribute)), attribute
    assert list(fitted.scale_[2:]) == [1.0, 1.0, 1.0]
    assert np.array_equal(fitted.transform(rows), reference.transform(rows))


def test_distances_are_each_customers_distance_to_its_centre(monkeypatch):
    matrix, fit_mask = _matrix_with_gaps()
    monkeypatch.setattr("assets.model.selection.DISTANCE_BLOCK_ROWS", 64)  # eight blocks, the last one short
    prepared = prepare(matrix, fit_mask)
    model, _ = fit_final(prepared, fit_mask, k=3, algorithm="kmeans", seed=3, previous_centers_unscaled=None)
    offsets = prepared[1] - model.centers_scaled[model.labels]
    assert np.array_equal(model.distances, np.sqrt(np.einsum("ij,ij->i", offsets, offsets)))
    assert model.distances == pytest.approx(np.linalg.norm(offsets, axis=1))


def test_feature_columns_are_judged_on_the_fitted_rows_only():
    features = pl.DataFrame({"customer_id": ["a", "b", "c", "d"], "age": [30.0, 30.0, 30.0, 80.0],
                             "income": [1.0, 2.0, None, 9.0], "cat_wine": [None, 0.0, 0.0, 1.0],
                             "n_orders": [1.0, 2.0, 3.0, 4.0]})
    fitted = np.array([True, True, True, False])  # d is an outlier
    families = ["demographics", "categories", "rfm"]
    # Among a, b and c, age and cat_wine are constant: neither tells them apart.
    assert select_feature_columns(features, families, rows=fitted) == ["income", "n_orders"]
    assert select_feature_columns(features, families, rows=fitted) == select_feature_columns(
        features.filter(pl.Series(fitted)), families)
    assert select_feature_columns(features, families) == ["age", "income", "cat_wine", "n_orders"]


def test_a_carried_k_whose_segment_shrank_below_the_minimum_share_is_chosen_again(first_night, tmp_path):
    # Nine in ten members of the smallest segment leave: the carried k would publish a segment below 5%.
    _, work, first = first_night
    (smallest, members), = query(work, "SELECT segment_id, count(*) FROM model.customer_clusters GROUP BY ALL "
                                       "ORDER BY count(*), segment_id LIMIT 1")
    run, db = _next_run(first_night, tmp_path, sql=(f"""
        DELETE FROM features.customer_features WHERE customer_id IN (
            SELECT customer_id FROM model.customer_clusters WHERE segment_id = {smallest}
            ORDER BY customer_id LIMIT {members * 9 // 10})""",))
    decision = _decision(db, run)
    assert decision["k_decision"] == "chosen" and decision["k_selected_run_id"] == run
    assert re.match(r"drift since the previous run: a segment of the carried k holds \d+\.\d% of customers, below "
                    r"model\.min_segment_share 5\.0%", decision["k_decision_reason"])
    shares = query(db, "SELECT count(*) / sum(count(*)) OVER () FROM model.customer_clusters GROUP BY segment_id")
    assert min(share for (share,) in shares) >= 0.05


def test_family_weighting_gives_each_family_the_same_weight_and_flags_their_own_scale():
    rng = np.random.default_rng(3)
    rows = 2000
    frame = pl.DataFrame({
        "age": rng.normal(40, 12, rows),
        "is_female": (rng.random(rows) < 0.5).astype(float),
        "is_home_owner": (rng.random(rows) < 0.05).astype(float),  # a rare flag
        **{f"cat_{name}": rng.beta(1, 4, rows) for name in ("wine", "beer", "dairy", "fish", "fruit", "meat")},
        "n_orders": rng.poisson(5, rows).astype(float),
    })
    fit_mask = np.ones(rows, dtype=bool)
    pipeline, scaled, _ = prepare(frame, fit_mask, "families")
    variance = scaled.var(axis=0)
    families = {"demographics": [0, 1, 2], "categories": [3, 4, 5, 6, 7, 8], "rfm": [9]}
    totals = {family: variance[columns].sum() for family, columns in families.items()}
    # Each family holds the same variance however many columns it has; the whole space one unit per column.
    assert totals["demographics"] == pytest.approx(totals["categories"]) == pytest.approx(totals["rfm"])
    assert variance.sum() == pytest.approx(frame.width)
    # A flag's two values are equally far apart whether it is common or rare (standardised, the rare one would be
    # a jump of 4.6 standard deviations against 2).
    spread = [np.ptp(scaled[:, column]) for column in (1, 2)]
    assert spread[0] == pytest.approx(spread[1])
    # The weights live in the scaler: back to feature units exactly.
    assert np.allclose(pipeline.named_steps["scale"].inverse_transform(scaled), frame.to_numpy())
    # balanced: a family's variance grows with the square root of its columns; columns: with its columns.
    for weighting, power in (("balanced", 0.5), ("columns", 1.0)):
        _, weighted, _ = prepare(frame, fit_mask, weighting)
        totals = {family: weighted.var(axis=0)[columns].sum() / len(columns) ** power
                  for family, columns in families.items()}
        assert totals["demographics"] == pytest.approx(totals["categories"]) == pytest.approx(totals["rfm"])
    # "standardised" is plain standardisation.
    _, standardised, _ = prepare(frame, fit_mask, "standardised")
    assert np.allclose(standardised.var(axis=0), 1.0)
