"""RFM scores, the eight classic RFM tiers and k-means value tiers (segments.customer_value_tiers)."""

import csv
import re

import dagster as dg
import numpy as np
import polars as pl
import pytest

from assets.segments.value_tiers import (
    HIGH_SCORE,
    OUTPUT_COLUMNS,
    RFM_TIERS,
    build_value_tiers,
    customer_value_tiers,
    has_distinct_points,
    rfm_scores,
    rfm_tier,
    rfm_tiers,
    tier_counts,
    value_tiers,
)
from pipelines.core.partitions import snapshot_partition_key
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.demo.generate import generate_demo_data
from pipelines.jobs import ALL_ASSETS, ALL_CHECKS
from tests.conftest import query, work_db, write_file


def features_frame(n_orders, total_spend, recency_days, ids=None) -> pl.DataFrame:
    ids = ids or [f"c{i:02d}" for i in range(len(n_orders))]
    return pl.DataFrame(
        {"customer_id": ids, "n_orders": n_orders, "total_spend": total_spend, "recency_days": recency_days},
        schema={"customer_id": pl.String, "n_orders": pl.Float64, "total_spend": pl.Float64,
                "recency_days": pl.Float64},
    )


# --- RFM scores -------------------------------------------------------------------------------------------------

def test_scores_are_exact_quintiles_of_ten_customers():
    # Ten buyers, values shuffled so that the score cannot come from the row order.
    frame = features_frame(
        n_orders=[3, 10, 1, 7, 5, 2, 9, 4, 8, 6],
        total_spend=[50, 900, 20, 300, 10, 700, 80, 400, 60, 100],
        recency_days=[45, 2, 90, 10, 30, 60, 5, 40, 20, 15],
    )
    scores = rfm_scores(frame)
    assert scores.columns == ["customer_id", "r_score", "f_score", "m_score"]
    assert scores.schema["r_score"] == pl.Int32
    # rank 1..10 -> 1,1,2,2,3,3,4,4,5,5; R ranks fewest days highest.
    assert scores.get_column("f_score").to_list() == [2, 5, 1, 4, 3, 1, 5, 2, 4, 3]
    assert scores.get_column("m_score").to_list() == [2, 5, 1, 4, 1, 5, 3, 4, 2, 3]
    assert scores.get_column("r_score").to_list() == [2, 5, 1, 4, 3, 1, 5, 2, 3, 4]
    assert scores.get_column("customer_id").to_list() == frame.get_column("customer_id").to_list()


def test_heavy_ties_share_the_score_of_their_blocks_start():
    # Six of ten buyers with one order: min rank 1 -> floor(5 * 0.5 / 10) + 1 = 1 for all six (buying once is
    # never "frequent"); ranks 7..10 give 4, 4, 5, 5.
    frame = features_frame(
        n_orders=[1, 1, 1, 1, 1, 1, 2, 3, 4, 5],
        total_spend=[10.0] * 10,  # everyone tied: min rank 1 -> 1
        recency_days=[0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    )
    scores = rfm_scores(frame)
    assert scores.get_column("f_score").to_list() == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]
    assert scores.get_column("m_score").to_list() == [1] * 10
    assert scores.get_column("r_score").to_list() == [1] * 10


def test_customers_without_orders_score_one_and_are_left_out_of_the_ranking():
    buyers = features_frame(n_orders=[1, 2, 3, 4, 5], total_spend=[10, 20, 30, 40, 50],
                            recency_days=[50, 40, 30, 20, 10])
    never = features_frame(n_orders=[0, 0, 0], total_spend=[0, 0, 0], recency_days=[91, 91, 91],
                           ids=["n1", "n2", "n3"])
    scores = rfm_scores(pl.concat([never, buyers]))
    assert scores.filter(pl.col("customer_id").str.starts_with("n")).select("r_score", "f_score", "m_score").rows() \
        == [(1, 1, 1)] * 3
    # The five buyers still spread over 1..5, as if the non-buyers were not there.
    buyer_scores = scores.filter(pl.col("customer_id").str.starts_with("c"))
    for column in ("r_score", "f_score", "m_score"):
        assert buyer_scores.get_column(column).to_list() == [1, 2, 3, 4, 5]


def test_unknown_recency_gives_null_r_and_null_tier():
    frame = features_frame(n_orders=[1, 2, 3, 0], total_spend=[10, 20, 30, 0], recency_days=[None] * 4)
    table = build_value_tiers(frame)
    assert table.get_column("r_score").null_count() == 4
    assert table.get_column("f_score").to_list() == [1, 3, 5, 1]  # three buyers: floor(5*(rank-0.5)/3)+1
    assert table.select("rfm_tier_key", "rfm_tier_zh", "rfm_tier_en").null_count().row(0) == (4, 4, 4)
    assert table.get_column("value_tier_key").null_count() == 0
    assert rfm_tier(None, 5, 5) is None


# --- RFM tiers --------------------------------------------------------------------------------------------------

EIGHT_TIERS = [
    # (R high, F high, M high), zh, en, key
    ((True, True, True), "重要价值客户", "Important value", "important_value"),
    ((True, False, True), "重要发展客户", "Important development", "important_development"),
    ((False, True, True), "重要保持客户", "Important retention", "important_retention"),
    ((False, False, True), "重要挽留客户", "Important win-back", "important_win_back"),
    ((True, True, False), "一般价值客户", "General value", "general_value"),
    ((True, False, False), "一般发展客户", "General development", "general_development"),
    ((False, True, False), "一般保持客户", "General retention", "general_retention"),
    ((False, False, False), "一般挽留客户", "General win-back", "general_win_back"),
]


@pytest.mark.parametrize("levels, zh, en, key", EIGHT_TIERS)
@pytest.mark.parametrize("high, low", [(HIGH_SCORE, HIGH_SCORE - 1), (5, 1), (4, 2)])
def test_each_high_low_combination_maps_to_its_tier(levels, zh, en, key, high, low):
    tier = rfm_tier(*(high if is_high else low for is_high in levels))
    assert (tier.zh, tier.en, tier.key) == (zh, en, key)


def test_rfm_tiers_constant_is_the_documented_table():
    assert [((t.r_high, t.f_high, t.m_high), t.zh, t.en, t.key) for t in RFM_TIERS] == EIGHT_TIERS
    assert HIGH_SCORE == 3


def test_tier_columns_follow_the_scores():
    scores = pl.DataFrame({"customer_id": ["a", "b", "c", "d"], "r_score": [5, 2, None, 3],
                           "f_score": [3, 1, 5, 2], "m_score": [4, 5, 5, 1]},
                          schema_overrides={c: pl.Int32 for c in ("r_score", "f_score", "m_score")})
    tiers = rfm_tiers(scores)
    assert tiers.get_column("customer_id").to_list() == ["a", "b", "c", "d"]
    assert tiers.get_column("rfm_tier_zh").to_list() == ["重要价值客户", "重要挽留客户", None, "一般发展客户"]
    assert tiers.get_column("rfm_tier_en").to_list() == ["Important value", "Important win-back", None,
                                                         "General development"]


# --- value tiers ------------------------------------------------------------------------------------------------

def three_groups() -> pl.DataFrame:
    low = [(1, 10 + i, f"low{i}") for i in range(6)]
    mid = [(6, 600 + 10 * i, f"mid{i}") for i in range(6)]
    high = [(40, 20000 + 100 * i, f"high{i}") for i in range(6)]
    rows = [r for triple in zip(mid, high, low) for r in triple]  # interleaved
    return features_frame(n_orders=[r[0] for r in rows], total_spend=[r[1] for r in rows],
                          recency_days=[5.0] * len(rows), ids=[r[2] for r in rows])


def test_three_separated_groups_get_their_value_tier():
    frame = three_groups()
    tiers = value_tiers(frame, seed=7)
    assert tiers.get_column("customer_id").to_list() == frame.get_column("customer_id").to_list()
    expected = {"high": ("high_value", "高价值客户", "High value"),
                "mid": ("potential", "潜力客户", "Potential"),
                "low": ("at_risk", "流失风险客户", "At risk")}
    for customer_id, key, zh, en in tiers.iter_rows():
        assert (key, zh, en) == expected[re.sub(r"\d+$", "", customer_id)]


def test_the_biggest_spenders_are_high_value_however_seldom_they_order():
    # Seen on a Square export: a catering group of few, large orders ($8,275 a customer) was 0% high value and a
    # daily-coffee group of many small ones ($310) 99%, when the tiers were ranked by frequency plus spend.
    catering = [(3 + i % 2, 8000 + 50 * i, f"catering{i}") for i in range(8)]
    coffee = [(100 + i, 300 + 5 * i, f"coffee{i}") for i in range(8)]
    occasional = [(1, 15 + i, f"occasional{i}") for i in range(8)]
    rows = [r for triple in zip(coffee, catering, occasional) for r in triple]
    frame = features_frame(n_orders=[r[0] for r in rows], total_spend=[r[1] for r in rows],
                           recency_days=[5.0] * len(rows), ids=[r[2] for r in rows])
    tiers = dict(value_tiers(frame, seed=7).select("customer_id", "value_tier_key").iter_rows())
    expected = {"catering": "high_value", "coffee": "potential", "occasional": "at_risk"}
    assert {customer: expected[re.sub(r"\d+$", "", customer)] for customer in tiers} == tiers


def test_without_order_dates_the_lowest_tier_is_low_value_not_at_risk():
    # The same customers without a recency (orders without dates): the same clusters, but the lowest tier claims
    # no churn, which nobody can measure without dates.
    frame = three_groups().with_columns(recency_days=pl.lit(None, dtype=pl.Float64))
    tiers = value_tiers(frame, seed=7)
    expected = {"high": ("high_value", "高价值客户", "High value"),
                "mid": ("potential", "潜力客户", "Potential"),
                "low": ("low_value", "低价值客户", "Low value")}
    for customer_id, key, zh, en in tiers.iter_rows():
        assert (key, zh, en) == expected[re.sub(r"\d+$", "", customer_id)]
    assert value_tiers(three_groups(), seed=7, has_order_dates=False).equals(tiers)
    # Customers without orders take the lowest tier by rule: low value too.
    no_orders = features_frame(n_orders=[2, 0], total_spend=[40, 0], recency_days=[None, None])
    assert value_tiers(no_orders).get_column("value_tier_key").to_list() == ["potential", "low_value"]
    counts = tier_counts(build_value_tiers(frame)).filter(pl.col("kind") == "value")
    assert counts.get_column("tier_key").to_list() == ["high_value", "potential", "low_value"]
    assert counts.get_column("customers").sum() == frame.height


def test_value_tiers_are_deterministic():
    frame = three_groups()
    assert value_tiers(frame, seed=11).equals(value_tiers(frame, seed=11))
    assert build_value_tiers(frame).equals(build_value_tiers(frame))


def test_fewer_than_three_distinct_points_make_everyone_potential():
    frame = features_frame(n_orders=[2, 2, 5, 5, 0], total_spend=[40, 40, 90, 90, 0], recency_days=[1] * 5)
    assert value_tiers(frame).get_column("value_tier_key").to_list() == ["potential"] * 4 + ["at_risk"]
    single = features_frame(n_orders=[1], total_spend=[10], recency_days=[0])
    assert value_tiers(single).get_column("value_tier_key").to_list() == ["potential"]
    empty = features_frame(n_orders=[], total_spend=[], recency_days=[])
    assert build_value_tiers(empty).columns == OUTPUT_COLUMNS


def test_distinct_points_are_counted_up_to_what_is_needed():
    points = np.array([[1.0, 2.0]] * 5 + [[1.0, 3.0]] * 3 + [[1.0, 2.0]] * 2)
    assert has_distinct_points(points, 2) and not has_distinct_points(points, 3)
    assert has_distinct_points(np.vstack([points, [[0.0, 2.0]]]), 3)
    assert has_distinct_points(points[:1], 1) and not has_distinct_points(points[:1], 2)
    assert not has_distinct_points(points[:0], 1)


# --- the asset end to end ---------------------------------------------------------------------------------------

def plant_champion(generated) -> str:
    """Add a customer with the most orders, the largest spend and an order at the last timestamp of the data."""
    with generated.orders_path.open(newline="") as handle:
        lines = list(csv.DictReader(handle))
    spend, orders = {}, {}
    for line in lines:
        spend[line["customer_id"]] = spend.get(line["customer_id"], 0.0) + float(line["amount"])
        orders.setdefault(line["customer_id"], set()).add(line["order_id"])
    latest = max(line["order_ts"] for line in lines)
    n_orders = max(len(ids) for ids in orders.values()) + 5
    amount = round(max(spend.values()) / n_orders + 100, 2)
    with generated.orders_path.open("a", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        for i in range(n_orders):
            writer.writerow([f"P{i:08d}", "CHAMPION", latest, "wine", 1, amount, amount, "CARD", "app", "wine-001"])
    with generated.customers_path.open("a", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerow(["CHAMPION", 40, "F", 150000, "YES", "Shanghai"])
    return "CHAMPION"


def test_asset_end_to_end_on_generated_data(tmp_path):
    generated = generate_demo_data(tmp_path / "data", customers=300, seed=3)
    champion = plant_champion(generated)
    config = write_file(tmp_path / "demo.yaml", f"""
name: value-tiers-test
shape: long
orders:
  path: {generated.orders_path}
customers:
  path: {generated.customers_path}
""")
    warehouse = tmp_path / "warehouse.duckdb"
    assets = list(ALL_ASSETS)
    if not any(customer_value_tiers.key in getattr(a, "keys", ()) for a in assets):  # not wired in yet
        assets.append(customer_value_tiers)
    result = dg.materialize(
        [*assets, *ALL_CHECKS],
        # Only what the asset needs (raw -> staging -> features with their checks), which keeps the test fast.
        selection=dg.AssetSelection.assets(customer_value_tiers).upstream().required_multi_asset_neighbors(),
        resources={"warehouse": WarehouseResource(path=str(warehouse)),
                   "source": SourceResource(config_path=str(config))},
        partition_key=snapshot_partition_key(),
        raise_on_error=False,
    )
    assert result.success
    checked = {e.check_name for e in result.get_asset_check_evaluations()}
    assert "load_audit_identity" in checked  # the gate ran before the features
    warehouse = work_db(warehouse)  # only the upstream assets ran, publishing not among them

    customers = 300 + 1
    columns = [row[0] for row in query(warehouse, "SELECT column_name FROM information_schema.columns "
                                                  "WHERE table_schema = 'segments' AND table_name = "
                                                  "'customer_value_tiers' ORDER BY ordinal_position")]
    assert columns == OUTPUT_COLUMNS
    assert query(warehouse, "SELECT count(*), count(DISTINCT customer_id) FROM segments.customer_value_tiers") \
        == [(customers, customers)]
    assert query(warehouse, "SELECT count(*) FROM segments.customer_value_tiers t "
                            "JOIN features.customer_features f USING (customer_id)") == [(customers,)]
    for column in ("r_score", "f_score", "m_score"):
        assert query(warehouse, f"SELECT DISTINCT {column} FROM segments.customer_value_tiers ORDER BY 1") \
            == [(1,), (2,), (3,), (4,), (5,)]

    rfm_counts = query(warehouse, "SELECT rfm_tier_key, count(*) FROM segments.customer_value_tiers GROUP BY 1")
    value_counts = dict(query(warehouse, "SELECT value_tier_key, count(*) FROM segments.customer_value_tiers "
                                         "GROUP BY 1"))
    assert None not in dict(rfm_counts)  # the long shape has dates: every customer has a tier
    assert {key for key, _ in rfm_counts} <= {t.key for t in RFM_TIERS}
    assert sum(n for _, n in rfm_counts) == customers
    assert set(value_counts) == {"high_value", "potential", "at_risk"}
    assert sum(value_counts.values()) == customers

    # Every stored tier agrees with its stored scores.
    for r, f, m, key, zh, en in query(warehouse, "SELECT r_score, f_score, m_score, rfm_tier_key, rfm_tier_zh, "
                                                 "rfm_tier_en FROM segments.customer_value_tiers"):
        tier = rfm_tier(r, f, m)
        assert (key, zh, en) == (tier.key, tier.zh, tier.en)

    row = query(warehouse, "SELECT r_score, f_score, m_score, rfm_tier_zh, rfm_tier_en, value_tier_key, "
                           "value_tier_zh, recency_days FROM segments.customer_value_tiers WHERE customer_id = ?",
                [champion])
    assert row == [(5, 5, 5, "重要价值客户", "Important value", "high_value", "高价值客户", 0.0)]

    materialization = next(e for e in result.get_asset_materialization_events()
                           if e.asset_key == customer_value_tiers.key).materialization
    assert materialization.metadata["dagster/row_count"].value == customers
    counts_md = materialization.metadata["tier_counts"].value
    md_counts = [int(line.rsplit("|", 2)[1]) for line in counts_md.splitlines()[2:]]
    assert sum(md_counts) == 2 * customers  # the RFM tiers and the value tiers each cover every customer
    assert "| rfm | important_value | 重要价值客户 | Important value |" in counts_md
