"""The predictive layer: churn risk without leakage, co-purchase rules and recommendations, their held-out
evaluation, the warn-level checks, and sources without order dates."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from assets.predict.assets import _replace, ensure_tables
from assets.predict.churn import (
    BEHAVIOUR_FEATURES,
    calibration_error,
    calibration_table,
    churn_features,
    churn_labels,
    churn_probability,
    fit_churn_model,
)
from assets.predict.recommendations import (
    FirstPurchases,
    Picks,
    hit_rate,
    load_first_purchases,
    load_purchases,
    mine_rules,
    recommend,
)
from assets.predict.runs import NO_DATES, SHORT_HISTORY, TimeSplit, plan_time_split
from pipelines.core.config import ConfigError, PredictSettings, load_source_config
from pipelines.core.partitions import snapshot_partition_key
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.demo.generate import generate_demo_data
from pipelines.jobs import ALL_ASSETS, ALL_CHECKS
from tests.conftest import query, work_db, write_file

DAY = timedelta(days=1)
CUTOFF = datetime(2026, 3, 1)


def features_at(features: pl.DataFrame, cutoff: datetime) -> pl.DataFrame:
    """The rows of one cutoff from churn_features."""
    return features.filter(pl.col("cutoff") == cutoff).drop("cutoff")


def _orders(rows: list[tuple[str, datetime, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"customer_id": pl.String, "order_ts": pl.Datetime("us"),
                                      "order_amount": pl.Float64}, orient="row")


def _profiles(ids: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"customer_id": ids, "age": [30.0 + i for i in range(len(ids))],
                         "income": [None] * len(ids)}, schema={"customer_id": pl.String, "age": pl.Float64,
                                                                "income": pl.Float64})


def _features(orders: pl.DataFrame, profiles: pl.DataFrame, cutoff: datetime) -> pl.DataFrame:
    """churn_features as of one cutoff over in-memory frames, sorted by customer."""
    with duckdb.connect() as con:
        con.register("test_orders", orders)
        con.register("test_profiles", profiles)
        features = churn_features(con, [cutoff], ["age", "income"], orders="test_orders", profiles="test_profiles")
    return features_at(features, cutoff).sort("customer_id")


def _labels(orders: pl.DataFrame, customer_ids: pl.Series, start: datetime, horizon: timedelta) -> np.ndarray:
    with duckdb.connect() as con:
        con.register("test_orders", orders)
        return churn_labels(con, customer_ids, start, horizon, orders="test_orders")


# --- time split ---------------------------------------------------------------------------------------------------

def test_cutoffs_are_whole_days_one_and_two_horizons_before_the_end():
    split, churn_reason, eval_reason = plan_time_split(datetime(2026, 1, 1, 9, 30), datetime(2026, 4, 30, 18, 0),
                                                       PredictSettings())
    assert churn_reason is None and eval_reason is None
    assert split.data_start == datetime(2026, 1, 1) and split.data_end == datetime(2026, 5, 1)
    assert split.eval_cutoff == datetime(2026, 4, 1) and split.train_cutoff == datetime(2026, 3, 2)
    assert split.span_days == 120


def test_short_history_and_missing_dates_give_reasons_not_errors():
    settings = PredictSettings(horizon_days=30, min_history_days=28)
    split, churn_reason, eval_reason = plan_time_split(datetime(2026, 1, 1), datetime(2026, 3, 1), settings)
    assert split.span_days == 60
    assert churn_reason == ("the orders cover 60 days; churn needs 88 (predict.min_history_days 28 + two horizons "
                            "of 30)")
    assert eval_reason is None  # 28 + 30 = 58 <= 60: recommendations can still be judged
    split, churn_reason, eval_reason = plan_time_split(None, None, settings)
    assert split is None and "no dates" in churn_reason and churn_reason == eval_reason


# --- churn features and labels: no leakage ------------------------------------------------------------------------

def test_features_are_computed_from_the_past_only_by_hand():
    orders = _orders([
        ("A", CUTOFF - 40 * DAY, 10.0), ("A", CUTOFF - 20 * DAY, 20.0), ("A", CUTOFF - 5 * DAY, 60.0),
        ("B", CUTOFF - 3 * DAY, 15.0),
        ("A", CUTOFF + 2 * DAY, 999.0),  # after the cutoff: must not count
        ("C", CUTOFF + 1 * DAY, 5.0),  # only after the cutoff: not in the snapshot
    ])
    features = _features(orders, _profiles(["A", "B", "C"]), CUTOFF)
    assert features["customer_id"].to_list() == ["A", "B"]
    a = features.row(0, named=True)
    assert a["recency_days"] == 5 and a["orders_last_30d"] == 2 and a["orders_last_14d"] == 1
    assert a["mean_gap_days"] == 17.5 and a["last_gap_days"] == 15 and a["gap_trend"] == 15 / 17.5
    assert a["overdue_ratio"] == 5 / 17.5 and a["recency_over_max_gap"] == 5 / 20
    assert a["orders_per_day"] == 3 / 40 and a["avg_basket_value"] == 30 and a["age"] == 30
    b = features.row(1, named=True)
    assert b["mean_gap_days"] is None and b["gap_trend"] is None and b["overdue_ratio"] is None
    assert b["recency_days"] == 3 and b["age"] == 31 and b["income"] is None


@pytest.fixture(scope="module")
def generated_orders(tmp_path_factory) -> pl.DataFrame:
    data = generate_demo_data(tmp_path_factory.mktemp("orders"), customers=600, days=120, seed=5)
    lines = pl.read_csv(data.orders_path, try_parse_dates=True)
    return lines.group_by("order_id").agg(pl.col("customer_id").first(), pl.col("order_ts").first(),
                                          pl.col("amount").sum().alias("order_amount")).drop("order_id")


def test_nothing_after_the_cutoff_changes_the_features(generated_orders):
    """Leakage: delete, alter or add orders after the cutoff, or move the label window: the features are equal."""
    cutoff = datetime(2026, 3, 2)
    profiles = _profiles(sorted(generated_orders["customer_id"].unique()))
    baseline = _features(generated_orders, profiles, cutoff)
    after = pl.col("order_ts") >= cutoff
    assert generated_orders.filter(after).height > 1000  # there is a future to leak
    variants = {
        "future deleted": generated_orders.filter(~after),
        "future altered": generated_orders.with_columns(
            pl.when(after).then(pl.col("order_amount") * 50).otherwise(pl.col("order_amount")).alias("order_amount"),
            pl.when(after).then(pl.col("order_ts") + 3 * DAY).otherwise(pl.col("order_ts")).alias("order_ts")),
        "future added": pl.concat([generated_orders, _orders(
            [(cid, cutoff + timedelta(hours=h), 123.0) for h, cid in enumerate(profiles["customer_id"][:200])])]),
    }
    for name, orders in variants.items():
        assert_frame_equal(_features(orders, profiles, cutoff), baseline), name
    # Shifting the label window changes the labels, never the features the model sees.
    ids = baseline["customer_id"]
    labels = {days: _labels(generated_orders, ids, cutoff, timedelta(days=days)) for days in (7, 14, 30)}
    assert labels[7].sum() > labels[14].sum() > labels[30].sum() > 0
    later = _labels(generated_orders, ids, cutoff + 30 * DAY, timedelta(days=30))
    assert not np.array_equal(later, labels[30])
    assert_frame_equal(_features(generated_orders, profiles, cutoff), baseline)
    assert set(BEHAVIOUR_FEATURES) <= set(baseline.columns)


def test_several_cutoffs_at_once_give_each_cutoffs_own_features(generated_orders):
    """Training computes three cutoffs in one pass (an inequality join), a night with a stored model one (every
    order before it pairs with it): the same rows either way."""
    profiles = _profiles(sorted(generated_orders["customer_id"].unique()))
    cutoffs = [datetime(2026, 2, 1), datetime(2026, 3, 2), datetime(2026, 4, 1)]
    with duckdb.connect() as con:
        con.register("test_orders", generated_orders)
        con.register("test_profiles", profiles)
        together = churn_features(con, cutoffs, ["age"], orders="test_orders", profiles="test_profiles")
    for cutoff in cutoffs:
        alone = _features(generated_orders, profiles, cutoff).drop("income")
        assert alone.height > 100
        # Not bit for bit: DuckDB's avg() of doubles adds in whatever order its threads meet the rows.
        assert_frame_equal(features_at(together, cutoff).sort("customer_id"), alone, check_exact=False, rtol=1e-12)


def test_labels_mark_customers_without_an_order_in_the_window():
    orders = _orders([("A", CUTOFF + 2 * DAY, 1.0), ("B", CUTOFF - DAY, 1.0), ("C", CUTOFF + 30 * DAY, 1.0)])
    labels = _labels(orders, pl.Series(["A", "B", "C"]), CUTOFF, timedelta(days=30))
    assert labels.tolist() == [0, 1, 1]  # C buys only on day 30: outside [cutoff, cutoff + 30 days)


def test_calibration_bins_and_error_by_hand():
    labels = np.array([0, 0, 1, 1, 1])
    predicted = np.array([0.05, 0.15, 0.15, 0.95, 1.0])
    table = calibration_table(labels, predicted)
    assert table.select("bin", "customers").rows() == [(1, 1), (2, 2), (10, 2)]
    assert table.filter(pl.col("bin") == 2)["observed_rate"][0] == 0.5
    expected = (1 * 0.05 + 2 * abs(0.15 - 0.5) + 2 * abs(0.975 - 1.0)) / 5
    assert calibration_error(table) == pytest.approx(expected)


# --- rules and recommendations ------------------------------------------------------------------------------------

def _bought(pairs: list[tuple[str, str]], customers: list[str], categories: list[str]):
    first = pl.DataFrame(pairs, schema={"customer_id": pl.String, "category": pl.String}, orient="row") \
        .with_columns(pl.lit(None, dtype=pl.Datetime("us")).alias("first_ts"))
    return FirstPurchases.from_rows(first, customers, categories).before()


CUSTOMERS = ["c1", "c2", "c3", "c4", "c5"]
CATEGORIES = ["beer", "bread", "milk", "snacks"]
PAIRS = [("c1", "beer"), ("c1", "snacks"), ("c2", "beer"), ("c2", "snacks"), ("c3", "beer"), ("c3", "milk"),
         ("c4", "milk"), ("c4", "bread"), ("c5", "milk")]


def test_rules_have_support_confidence_and_lift_by_hand():
    rules = mine_rules(_bought(PAIRS, CUSTOMERS, CATEGORIES), PredictSettings(min_support=0.2, min_confidence=0.0))
    beer_snacks = rules.filter((pl.col("antecedent") == "beer") & (pl.col("consequent") == "snacks")).row(0, named=True)
    # 5 buyers; beer 3, snacks 2, both 2.
    assert beer_snacks["support"] == pytest.approx(2 / 5)
    assert beer_snacks["confidence"] == pytest.approx(2 / 3)
    assert beer_snacks["lift"] == pytest.approx((2 / 3) / (2 / 5))
    assert (beer_snacks["antecedent_customers"], beer_snacks["both_customers"], beer_snacks["customers"]) == (3, 2, 5)
    # Pairs bought together by one customer only (support 0.2) stay; pairs never bought together are not rules.
    assert rules.filter((pl.col("antecedent") == "beer") & (pl.col("consequent") == "bread")).is_empty()
    assert rules.filter(pl.col("support") < 0.2).is_empty()
    stricter = mine_rules(_bought(PAIRS, CUSTOMERS, CATEGORIES), PredictSettings(min_support=0.3, min_confidence=0.9))
    assert stricter.select("antecedent", "consequent").rows() == [("snacks", "beer")]


def test_recommendations_skip_what_was_bought_and_follow_the_rules():
    bought = _bought(PAIRS + [("c6", "beer")], [*CUSTOMERS, "c6", "c7"], CATEGORIES)
    rules = mine_rules(bought, PredictSettings(min_support=0.1, min_confidence=0.0))
    picks = recommend(bought, rules, top_n=2)
    c6 = picks.filter(pl.col("customer_id") == "c6").sort("rank")
    # beer -> snacks has the highest lift from beer: the rules put snacks first, not the popular milk.
    assert c6["category"].to_list()[0] == "snacks" and c6["source"][0] == "rules"
    for customer, categories in picks.group_by("customer_id").agg("category").iter_rows():
        owned = {c for who, c in PAIRS + [("c6", "beer")] if who == customer}
        assert not owned & set(categories), customer
    # A customer who bought nothing gets the most popular categories (beer and milk: 4 buyers each, by name).
    c7 = picks.filter(pl.col("customer_id") == "c7").sort("rank")
    assert c7.select("category", "source").rows() == [("beer", "popularity"), ("milk", "popularity")]
    # Popularity baseline: never a rule.
    assert set(recommend(bought, None, 2)["source"]) == {"popularity"}


def test_a_customer_with_fewer_unbought_categories_gets_fewer_rows():
    bought = _bought([("x", "beer"), ("x", "bread"), ("x", "milk"), ("y", "snacks")], ["x", "y"], CATEGORIES)
    picks = recommend(bought, mine_rules(bought, PredictSettings()), top_n=3, customer_rows=np.array([0]))
    assert picks.select("customer_id", "rank", "category").rows() == [("x", 1, "snacks")]


def test_a_category_nobody_bought_is_never_recommended():
    # Before a cutoff, a category may have no buyer yet (it is new in the window): popularity must not pick it.
    bought = _bought([("x", "beer"), ("y", "beer"), ("y", "milk")], ["x", "y"], CATEGORIES)
    picks = recommend(bought, None, top_n=3)
    assert picks.select("customer_id", "category").rows() == [("x", "milk")]


def test_hit_rate_counts_customers_with_a_recommended_new_category():
    a, b, c, d = 0, 1, 2, 3  # customer rows
    milk, tea, beer, wine = 0, 1, 2, 3  # category columns
    picks = Picks(rows=np.array([a, a, b, c]), ranks=np.array([0, 1, 0, 0]), columns=np.array([milk, tea, milk, tea]),
                  scores=np.zeros(4))
    assert hit_rate(picks, np.array([a, b, b, d]), np.array([tea, beer, wine, tea])) == (1, 3)  # a hits; b and d miss
    assert hit_rate(picks, np.array([], dtype=np.int64), np.array([], dtype=np.int64)) == (0, 0)


def test_churn_scores_in_blocks_on_threads_equal_one_pass(monkeypatch):
    rng = np.random.default_rng(4)
    features = rng.normal(size=(600, 3))
    labels = (features[:, 0] + rng.normal(scale=0.5, size=600) > 0).astype(np.int8)
    model = fit_churn_model(features, labels, seed=1)
    monkeypatch.setattr("assets.predict.churn.SCORE_BLOCK_ROWS", 64)  # ten blocks, the last one short
    scores = churn_probability(model, features)
    assert np.array_equal(scores, model.predict_proba(features)[:, 1])
    assert len(churn_probability(model, features[:0])) == 0


def test_purchases_without_dates_are_the_first_purchases_matrix():
    """A run that reuses its rules reads only which categories each customer bought, packed as bits in 64-bit words:
    the same matrix as the first purchases give, also past 64 categories (a second word)."""
    categories = [f"cat{i:02d}" for i in range(70)]
    customers = [f"c{i:02d}" for i in range(12)]
    lines = [("c00", "cat00"), ("c00", "cat00"), ("c00", "cat63"), ("c00", "cat64"), ("c00", "cat69"),
             ("c03", "cat05"), ("c03", "cat66"), ("c07", "cat31"), ("c11", "cat69"),
             ("c05", None),  # no category: not a purchase of any
             ("stranger", "cat01")]  # not a customer of the features: not a row
    lines += [(customers[6 + i % 5], category) for i, category in enumerate(categories)]  # every category bought
    with duckdb.connect() as con:
        con.execute("CREATE SCHEMA features")
        con.execute("CREATE SCHEMA staging")
        con.execute("CREATE TABLE features.customer_features AS SELECT unnest(?::VARCHAR[]) AS customer_id",
                    [customers[::-1]])
        con.execute("CREATE TABLE staging.order_lines (customer_id VARCHAR, category VARCHAR, order_ts TIMESTAMP)")
        con.executemany("INSERT INTO staging.order_lines VALUES (?, ?, ?)",
                        [(who, what, CUTOFF + i * DAY) for i, (who, what) in enumerate(lines)])
        purchases = load_purchases(con)
        expected = load_first_purchases(con).before()
    assert purchases.customer_ids.to_list() == customers
    assert purchases.categories == categories == expected.categories
    assert purchases.matrix.shape == expected.matrix.shape == (12, 70)
    assert (purchases.matrix != expected.matrix).nnz == 0
    bought = {(customers[r], categories[c]) for r, c in zip(*purchases.matrix.nonzero())}
    assert bought == {(who, what) for who, what in lines if who in customers and what is not None}
    assert purchases.matrix[0].indices.tolist() == [0, 63, 64, 69]  # c00, across both words
    assert purchases.matrix[1].nnz == purchases.matrix[5].nnz == 0  # c01 bought nothing, c05 no category


# --- the assets on generated data ---------------------------------------------------------------------------------

def _run(tmp_path: Path, config_text: str) -> tuple[dg.ExecuteInProcessResult, Path]:
    config = write_file(tmp_path / "shop.yaml", config_text)
    warehouse = tmp_path / "warehouse.duckdb"
    selection = dg.AssetSelection.groups("predict").upstream().required_multi_asset_neighbors()
    result = dg.materialize([*ALL_ASSETS, *ALL_CHECKS], selection=selection, raise_on_error=False,
                            partition_key=snapshot_partition_key(), resources={
        "warehouse": WarehouseResource(path=str(warehouse)), "source": SourceResource(config_path=str(config))})
    return result, work_db(warehouse)  # publishing is not selected: read the working database


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def generated_run(tmp_path_factory) -> tuple[dg.ExecuteInProcessResult, Path]:
    """2,000 customers over 120 days, with thresholds set out of reach so both warnings fire."""
    root = tmp_path_factory.mktemp("predict-run")
    data = generate_demo_data(root / "data", customers=2000, days=120, seed=3)
    return _run(root, f"name: predict\nshape: long\norders:\n  path: {data.orders_path}\ncustomers:\n"
                      f"  path: {data.customers_path}\npredict:\n  min_auc: 0.99\n  min_lift_over_popularity: 5\n")


def test_churn_is_trained_on_the_past_and_judged_on_the_last_horizon(generated_run):
    result, warehouse = generated_run
    assert result.success
    [run] = query(warehouse, "SELECT status, train_cutoff, eval_cutoff, data_end, n_eval, auc, brier, brier_baseline, "
                             "calibration_error FROM predict.churn_model_runs")
    status, train_cutoff, eval_cutoff, data_end, n_eval, auc, brier, baseline, error = run
    assert status == "trained" and data_end == datetime(2026, 5, 1)
    assert (train_cutoff, eval_cutoff) == (data_end - 60 * DAY, data_end - 30 * DAY)
    assert auc > 0.7 and brier < baseline and 0 <= error < 0.1
    # Held-out calibration bins cover every evaluated customer.
    [(binned,)] = query(warehouse, "SELECT sum(customers) FROM predict.churn_calibration")
    assert binned == n_eval
    # One row per customer, probabilities, at_risk at the threshold.
    [(rows, customers, scored, low, high, wrong)] = query(warehouse, """
        SELECT count(*), (SELECT count(*) FROM features.customer_features), count(churn_risk), min(churn_risk),
               max(churn_risk), count(*) FILTER (WHERE at_risk <> (churn_risk >= 0.5))
        FROM predict.churn_risk""")
    assert rows == customers == scored == 2000 and 0 <= low < high <= 1 and wrong == 0


def test_planted_churners_get_higher_risk(generated_run):
    _, warehouse = generated_run
    truth = pl.read_csv(next(warehouse.parent.parent.glob("data/truth.csv")))  # warehouse: work/ in tmp_path
    risk = pl.DataFrame(query(warehouse, "SELECT customer_id, churn_risk FROM predict.churn_risk"),
                        schema=["customer_id", "churn_risk"], orient="row")
    joined = risk.join(truth, on="customer_id")
    stopped = joined.filter(pl.col("churn_day").is_not_null())["churn_risk"].mean()
    buying = joined.filter(pl.col("churn_day").is_null())["churn_risk"].mean()
    assert stopped > buying + 0.2


def test_recommendations_are_new_categories_and_beat_popularity(generated_run):
    _, warehouse = generated_run
    [(status, evaluated, rate, popular, lift, top_n)] = query(
        warehouse, "SELECT status, customers_evaluated, hit_rate, popularity_hit_rate, lift_over_popularity, top_n "
                   "FROM predict.recommendation_eval")
    assert status == "evaluated" and evaluated > 200 and top_n == 3
    assert rate > popular and lift == pytest.approx(rate / popular) and lift > 1.2
    [(over, bought_again, customers, with_room)] = query(warehouse, """
        SELECT (SELECT count(*) FROM (SELECT customer_id FROM predict.next_category GROUP BY 1 HAVING count(*) > 3)),
               (SELECT count(*) FROM predict.next_category n JOIN staging.order_lines l USING (customer_id, category)),
               (SELECT count(DISTINCT customer_id) FROM predict.next_category),
               -- customers who have not bought every category yet: each gets recommendations
               (SELECT count(*) FROM (SELECT customer_id FROM staging.order_lines GROUP BY 1
                                      HAVING count(DISTINCT category) <
                                             (SELECT count(DISTINCT category) FROM staging.order_lines)))""")
    assert over == 0 and bought_again == 0 and customers == with_room > 1900
    [(rules, bad)] = query(warehouse, "SELECT count(*), count(*) FILTER (WHERE support < 0.01 OR confidence < 0.05 "
                                      "OR abs(lift - confidence / (consequent_customers / customers)) > 1e-9) "
                                      "FROM predict.category_rules")
    assert rules > 50 and bad == 0


def test_weak_results_warn_but_publish(generated_run):
    result, warehouse = generated_run
    checks = _checks(result)
    for name, phrase in (("churn_model_quality", "below predict.min_auc 0.99"),
                         ("recommendations_beat_popularity", "below predict.min_lift_over_popularity 5")):
        check = checks[name]
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        assert phrase in check.description
    assert result.success and query(warehouse, "SELECT count(*) FROM predict.next_category")[0][0] > 0


def test_the_seed_table_without_dates_gets_recommendations_and_reasons(seed_warehouse):
    [(status, reason)] = query(seed_warehouse, "SELECT status, reason FROM predict.churn_model_runs")
    assert status == NO_DATES and "no dates" in reason
    [(rows, scored)] = query(seed_warehouse, "SELECT count(*), count(churn_risk) FROM predict.churn_risk")
    assert (rows, scored) == (999, 0)
    [(status, reason)] = query(seed_warehouse, "SELECT status, reason FROM predict.recommendation_eval")
    assert status == NO_DATES and "no later window" in reason
    [(customers, rows)] = query(seed_warehouse, "SELECT count(DISTINCT customer_id), count(*) "
                                                "FROM predict.next_category")
    assert customers == 999 and rows > 2000
    assert query(seed_warehouse, "SELECT count(*) FROM predict.category_rules")[0][0] > 0


def test_too_short_a_history_skips_churn_with_its_reason(tmp_path):
    data = generate_demo_data(tmp_path / "data", customers=300, days=61, seed=4)
    result, warehouse = _run(tmp_path, f"name: short\nshape: long\norders:\n  path: {data.orders_path}\n")
    assert result.success
    [(status, reason, auc)] = query(warehouse, "SELECT status, reason, auc FROM predict.churn_model_runs")
    assert status == SHORT_HISTORY and auc is None
    assert reason == "the orders cover 61 days; churn needs 88 (predict.min_history_days 28 + two horizons of 30)"
    assert query(warehouse, "SELECT count(churn_risk) FROM predict.churn_risk") == [(0,)]
    assert query(warehouse, "SELECT status FROM predict.recommendation_eval") == [("evaluated",)]
    assert _checks(result)["churn_model_quality"].passed


def test_predict_settings_are_validated(tmp_path):
    base = "name: x\nshape: long\norders:\n  path: orders.csv\n"
    write_file(tmp_path / "orders.csv", "order_id\n")
    config = load_source_config(write_file(tmp_path / "ok.yaml", base + "predict:\n  horizon_days: 14\n  top_n: 5\n"))
    assert (config.predict.horizon_days, config.predict.top_n, config.predict.min_auc) == (14, 5, 0.7)
    with pytest.raises(ConfigError, match=r"bad.yaml: predict.horizon_days: Input should be greater than or equal"):
        load_source_config(write_file(tmp_path / "bad.yaml", base + "predict:\n  horizon_days: 3\n"))
    with pytest.raises(ConfigError, match=r"extra.yaml: predict.window: unknown key; the keys here are horizon_days, "):
        load_source_config(write_file(tmp_path / "extra.yaml", base + "predict:\n  window: 3\n"))


def test_split_is_a_frozen_value():
    split = TimeSplit(datetime(2026, 1, 1), datetime(2026, 2, 1), 7)
    assert split.eval_cutoff == datetime(2026, 1, 25) and split.train_cutoff == datetime(2026, 1, 18)


class FailingWrites:
    """A connection whose CREATE TABLE fails while it executes, as running out of memory would: the error aborts
    the open transaction."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def execute(self, sql: str, *args):
        if sql.startswith("CREATE"):
            return self.con.execute("SELECT error('the write failed')")
        return self.con.execute(sql, *args)


def test_picks_are_written_in_their_own_order_and_the_connection_keeps_its_setting(tmp_path):
    """next_category is written in the order recommend() gives without sorting it again; the warehouse
    connection's preserve_insertion_order (false) is back afterwards. A write that fails inside the caller's
    transaction raises its own error, not the aborted transaction's refusal of the next statement."""
    # In several chunks, which DuckDB reads on several threads: without preserve_insertion_order they interleave.
    # Customers in descending order, so that a sort would change the order too.
    picks = pl.concat([pl.DataFrame({"customer_id": [f"C{9 - chunk:02d}{99_999 - i:06d}" for i in range(100_000)
                                                     for _ in range(3)],
                                     "rank": [1, 2, 3] * 100_000}, schema={"customer_id": pl.String, "rank": pl.Int32})
                       for chunk in range(8)], rechunk=False)
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    with warehouse.connect() as con:
        ensure_tables(con)
        _replace(con, "next_category", picks, None, run_id="run-1")
        assert con.execute("SELECT current_setting('preserve_insertion_order')").fetchone() == (False,)
        con.execute("BEGIN TRANSACTION")
        with pytest.raises(duckdb.InvalidInputException, match="the write failed"):
            _replace(FailingWrites(con), "next_category", picks, None, run_id="run-2")
        con.execute("ROLLBACK")
    with duckdb.connect(str(warehouse.file), read_only=True) as reader:  # DuckDB's default: rows in stored order
        stored = reader.execute("SELECT customer_id, rank, run_id FROM predict.next_category").pl()
    assert stored.equals(picks.with_columns(pl.lit("run-1").alias("run_id")))
