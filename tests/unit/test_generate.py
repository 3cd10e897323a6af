"""Tests for the deterministic demo-data generator (pipelines.demo.generate).

Why these tests: demos, benchmarks and segmentation-quality checks rely on the
generator being byte-for-byte reproducible, writing exactly the documented
formats, planting personas that really differ, and planting a known set of
extreme customers (outliers) that really stand out. Sizes stay small so the
suite runs in a few seconds.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.demo import generate, global_draws
from pipelines.demo.generate import (
    CATEGORIES,
    OUTLIER_KINDS,
    PERSONA_KEYS,
    WIDE_CATEGORIES,
    GeneratedData,
    generate_demo_data,
)

LONG_CUSTOMER_HEADER = "customer_id,age,gender,income,home_owner,city"
LONG_ORDER_HEADER = (
    "order_id,customer_id,order_ts,category,quantity,unit_price,amount,payment_method,channel,sku"
)
WIDE_HEADER = (
    "cardid,value,pmethod,sex,homeown,income,age,fruitveg,freshmeat,dairy,cannedveg,"
    "cannedmeat,frozenmeal,beer,wine,softdrink,fish,confectionery"
)
TRUTH_HEADER = "customer_id,persona,planted_outlier,outlier_kind,churn_day,bundle"
PERSONA_CUSTOMERS = 2_000


def _read(path: Path) -> pl.DataFrame:
    """Read a generated CSV with every column as text, exactly as written."""
    return pl.read_csv(path, infer_schema=False)


def _header(path: Path) -> str:
    with path.open(encoding="utf-8", newline="") as file:
        return file.readline().rstrip("\n")


def _all_bytes(result: GeneratedData) -> dict[str, bytes]:
    paths = [result.customers_path, result.orders_path, result.truth_path]
    return {path.name: path.read_bytes() for path in paths if path is not None}


@pytest.fixture(scope="module")
def long_data(tmp_path_factory: pytest.TempPathFactory) -> GeneratedData:
    return generate_demo_data(tmp_path_factory.mktemp("long"), customers=PERSONA_CUSTOMERS)


@pytest.fixture(scope="module")
def long_frames(long_data: GeneratedData) -> dict[str, pl.DataFrame]:
    assert long_data.customers_path is not None
    truth = _read(long_data.truth_path)
    customers = _read(long_data.customers_path).with_columns(
        pl.col("age").cast(pl.Int64), pl.col("income").cast(pl.Int64)
    )
    lines = _read(long_data.orders_path).with_columns(
        pl.col("quantity").cast(pl.Int64),
        pl.col("unit_price").cast(pl.Float64),
        pl.col("amount").cast(pl.Float64),
    )
    return {
        "truth": truth,
        "customers": customers.join(truth, on="customer_id", how="left"),
        "lines": lines.join(truth, on="customer_id", how="left"),
    }


@pytest.fixture(scope="module")
def wide_data(tmp_path_factory: pytest.TempPathFactory) -> GeneratedData:
    return generate_demo_data(tmp_path_factory.mktemp("wide"), customers=800, shape="wide")


# --------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["long", "wide"])
@pytest.mark.parametrize("outlier_share", [0.0, 0.005, 0.05])
def test_same_seed_gives_identical_bytes(
    tmp_path: Path, shape: str, outlier_share: float
) -> None:
    kwargs = {"customers": 300, "seed": 11, "shape": shape, "outlier_share": outlier_share}
    first = generate_demo_data(tmp_path / "a", **kwargs)  # type: ignore[arg-type]
    second = generate_demo_data(tmp_path / "b", **kwargs)  # type: ignore[arg-type]
    assert _all_bytes(first) == _all_bytes(second)
    assert first.order_lines == second.order_lines
    assert first.outliers == second.outliers == round(outlier_share * 300)


@pytest.mark.parametrize("shape", ["long", "wide"])
def test_different_seed_gives_different_bytes(tmp_path: Path, shape: str) -> None:
    first = generate_demo_data(tmp_path / "a", customers=300, seed=11, shape=shape)
    second = generate_demo_data(tmp_path / "b", customers=300, seed=12, shape=shape)
    first_bytes, second_bytes = _all_bytes(first), _all_bytes(second)
    assert first_bytes.keys() == second_bytes.keys()
    assert first.orders_path.read_bytes() != second.orders_path.read_bytes()
    assert first.truth_path.read_bytes() != second.truth_path.read_bytes()


def test_rerun_into_same_directory_overwrites(tmp_path: Path) -> None:
    first = _all_bytes(generate_demo_data(tmp_path, customers=200, seed=3))
    generate_demo_data(tmp_path, customers=500, seed=4)
    again = _all_bytes(generate_demo_data(tmp_path, customers=200, seed=3))
    assert again == first


# --------------------------------------------------------------------------
# Long shape: formats and invariants
# --------------------------------------------------------------------------


def test_long_result_and_headers(long_data: GeneratedData, tmp_path: Path) -> None:
    assert long_data.customers_path is not None
    assert long_data.customers_path.name == "customers.csv"
    assert long_data.orders_path.name == "order_lines.csv"
    assert long_data.truth_path.name == "truth.csv"
    assert long_data.customers == PERSONA_CUSTOMERS
    assert long_data.personas == PERSONA_KEYS
    assert long_data.outliers == round(0.005 * PERSONA_CUSTOMERS)  # default share
    assert _header(long_data.customers_path) == LONG_CUSTOMER_HEADER
    assert _header(long_data.orders_path) == LONG_ORDER_HEADER
    assert _header(long_data.truth_path) == TRUTH_HEADER
    for path in (long_data.customers_path, long_data.orders_path, long_data.truth_path):
        raw = path.read_bytes()
        raw.decode("utf-8")
        assert b"\r" not in raw
        assert raw.endswith(b"\n")


def test_out_dir_is_created(tmp_path: Path) -> None:
    out_dir = tmp_path / "nested" / "demo"
    result = generate_demo_data(out_dir, customers=5)
    assert out_dir.is_dir()
    assert result.orders_path.parent == out_dir


def test_long_counts_and_ids(
    long_data: GeneratedData, long_frames: dict[str, pl.DataFrame]
) -> None:
    customers, lines = long_frames["customers"], long_frames["lines"]
    assert customers.height == PERSONA_CUSTOMERS
    assert lines.height == long_data.order_lines
    expected_ids = [f"C{i:07d}" for i in range(1, PERSONA_CUSTOMERS + 1)]
    assert customers["customer_id"].to_list() == expected_ids
    assert lines["customer_id"].n_unique() == PERSONA_CUSTOMERS
    assert set(lines["customer_id"]) == set(customers["customer_id"])
    assert lines["order_id"].str.contains(r"^O\d{8}$").all()
    # Order ids are sequential from O00000001 in file order.
    order_numbers = lines["order_id"].str.slice(1).cast(pl.Int64).unique(maintain_order=True)
    assert order_numbers.to_list() == list(range(1, order_numbers.len() + 1))
    # About ten order lines per customer over 90 days.
    assert 7 <= lines.height / PERSONA_CUSTOMERS <= 14


def test_long_customer_columns(long_frames: dict[str, pl.DataFrame]) -> None:
    customers = long_frames["customers"]
    assert customers["gender"].is_in(["M", "F"]).all()
    assert customers["home_owner"].is_in(["YES", "NO"]).all()
    assert (customers["income"] % 100 == 0).all()
    assert customers["age"].min() >= 18
    assert customers["age"].max() <= 90
    assert set(customers["city"]) <= set(generate.CITIES)
    assert customers["city"].n_unique() >= 5


def test_long_line_values(long_data: GeneratedData, long_frames: dict[str, pl.DataFrame]) -> None:
    lines = long_frames["lines"]
    assert lines["category"].is_in(list(CATEGORIES)).all()
    assert lines["payment_method"].is_in(["CARD", "CASH", "MOBILE", "CHEQUE"]).all()
    assert lines["channel"].is_in(["store", "app", "web"]).all()
    assert (lines["quantity"] >= 1).all()
    assert (lines["unit_price"] > 0).all()
    difference = (lines["amount"] - lines["quantity"] * lines["unit_price"]).abs()
    assert difference.max() <= 0.01
    sku_match = lines.select(
        (pl.col("sku").str.extract(r"^([a-z]+)-\d{3}$") == pl.col("category")).all()
    ).item()
    assert sku_match
    # Money columns are written with exactly two decimals.
    raw = _read(long_data.orders_path)
    assert raw["unit_price"].str.contains(r"^\d+\.\d{2}$").all()
    assert raw["amount"].str.contains(r"^\d+\.\d{2}$").all()


def test_long_timestamps_inside_window(tmp_path: Path) -> None:
    start, days = date(2026, 3, 3), 10
    result = generate_demo_data(tmp_path, customers=400, days=days, start_date=start)
    timestamps = _read(result.orders_path)["order_ts"]
    assert timestamps.str.contains(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$").all()
    parsed = timestamps.str.to_datetime("%Y-%m-%d %H:%M:%S")
    window_start = datetime(start.year, start.month, start.day)
    assert parsed.min() >= window_start
    assert parsed.max() < window_start + timedelta(days=days)


def test_default_window_is_90_days_from_2026(long_frames: dict[str, pl.DataFrame]) -> None:
    parsed = long_frames["lines"]["order_ts"].str.to_datetime("%Y-%m-%d %H:%M:%S")
    assert parsed.min() >= datetime(2026, 1, 1)
    assert parsed.max() < datetime(2026, 4, 1)


def test_lines_of_an_order_share_order_attributes(long_frames: dict[str, pl.DataFrame]) -> None:
    per_order = long_frames["lines"].group_by("order_id").agg(
        pl.col("customer_id").n_unique().alias("customers"),
        pl.col("order_ts").n_unique().alias("timestamps"),
        pl.col("payment_method").n_unique().alias("payments"),
        pl.col("channel").n_unique().alias("channels"),
        (pl.len() == pl.col("category").n_unique()).alias("distinct_categories"),
    )
    assert (per_order["customers"] == 1).all()
    assert (per_order["timestamps"] == 1).all()
    assert (per_order["payments"] == 1).all()
    assert (per_order["channels"] == 1).all()
    assert per_order["distinct_categories"].all()
    # Some orders hold several categories.
    assert long_frames["lines"].height > per_order.height


def test_multiple_chunks_append_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(global_draws, "_CHUNK_CUSTOMERS", 70)
    result = generate_demo_data(tmp_path, customers=250)
    assert result.customers_path is not None
    customers = _read(result.customers_path)
    lines = _read(result.orders_path)
    truth = _read(result.truth_path)
    # A header only once (a repeated header would show up as a data row).
    for frame in (customers, lines, truth):
        assert "customer_id" not in frame["customer_id"].to_list()
    assert customers["customer_id"].to_list() == [f"C{i:07d}" for i in range(1, 251)]
    assert truth["customer_id"].to_list() == customers["customer_id"].to_list()
    assert lines["customer_id"].n_unique() == 250
    order_numbers = lines["order_id"].str.slice(1).cast(pl.Int64).unique(maintain_order=True)
    assert order_numbers.to_list() == list(range(1, order_numbers.len() + 1))
    assert lines.height == result.order_lines


def test_single_customer(tmp_path: Path) -> None:
    result = generate_demo_data(tmp_path, customers=1, days=1)
    lines = _read(result.orders_path)
    assert result.customers == 1
    assert lines["customer_id"].unique().to_list() == ["C0000001"]
    assert result.order_lines == lines.height >= 1
    assert len(result.personas) == 1
    assert result.outliers == 0


# --------------------------------------------------------------------------
# Long shape: planted personas
# --------------------------------------------------------------------------


def test_persona_mix(long_frames: dict[str, pl.DataFrame]) -> None:
    truth = long_frames["truth"]
    assert truth.height == PERSONA_CUSTOMERS
    counts = dict(truth.group_by("persona").len().iter_rows())
    assert set(counts) == set(PERSONA_KEYS)
    expected = {
        "young_professionals": 0.30,
        "family_shoppers": 0.30,
        "refined_living": 0.15,
        "budget_minded": 0.25,
    }
    for key, share in expected.items():
        assert counts[key] == round(share * PERSONA_CUSTOMERS)


def test_persona_profiles_differ(long_frames: dict[str, pl.DataFrame]) -> None:
    stats = {
        row["persona"]: row
        for row in long_frames["customers"]
        .group_by("persona")
        .agg(
            pl.col("income").median().alias("income"),
            pl.col("age").median().alias("age"),
            (pl.col("home_owner") == "YES").mean().alias("home_owner"),
        )
        .iter_rows(named=True)
    }
    assert stats["refined_living"]["income"] > 2 * stats["budget_minded"]["income"]
    assert stats["refined_living"]["income"] > stats["family_shoppers"]["income"]
    assert stats["young_professionals"]["age"] < stats["budget_minded"]["age"]
    assert 22 <= stats["young_professionals"]["age"] <= 34
    assert 45 <= stats["budget_minded"]["age"] <= 75
    assert stats["family_shoppers"]["home_owner"] > stats["young_professionals"]["home_owner"]


def _top_per_persona(lines: pl.DataFrame, column: str) -> dict[str, str]:
    """Most frequent value of an order-level column for each persona."""
    orders = lines.unique("order_id")
    counts = (
        orders.group_by("persona", column)
        .len()
        .sort(["persona", "len", column], descending=[False, True, False])
    )
    top = counts.group_by("persona", maintain_order=True).first()
    return dict(top.select("persona", column).iter_rows())


def test_persona_payment_and_channel_habits(long_frames: dict[str, pl.DataFrame]) -> None:
    top_payment = _top_per_persona(long_frames["lines"], "payment_method")
    assert top_payment["young_professionals"] == "MOBILE"
    assert top_payment["budget_minded"] == "CASH"
    assert top_payment["family_shoppers"] == "CARD"
    assert top_payment["refined_living"] == "CARD"
    top_channel = _top_per_persona(long_frames["lines"], "channel")
    assert top_channel["young_professionals"] == "app"
    assert top_channel["budget_minded"] == "store"


def test_persona_category_mix(long_frames: dict[str, pl.DataFrame]) -> None:
    shares = (
        long_frames["lines"]
        .group_by("persona")
        .agg(
            *[
                (pl.col("category") == name).mean().alias(name)
                for name in ("wine", "cannedveg", "fruitveg", "frozenmeal")
            ]
        )
    )
    share = {row["persona"]: row for row in shares.iter_rows(named=True)}
    others = [key for key in PERSONA_KEYS if key != "refined_living"]
    assert all(share["refined_living"]["wine"] > 3 * share[key]["wine"] for key in others)
    assert share["budget_minded"]["cannedveg"] == max(row["cannedveg"] for row in share.values())
    assert share["family_shoppers"]["fruitveg"] == max(row["fruitveg"] for row in share.values())
    top_frozenmeal = max(row["frozenmeal"] for row in share.values())
    assert share["young_professionals"]["frozenmeal"] == top_frozenmeal
    # Noise: every persona buys outside its core now and then.
    assert share["budget_minded"]["wine"] > 0


def test_persona_basket_shapes(long_frames: dict[str, pl.DataFrame]) -> None:
    per_order = long_frames["lines"].group_by("persona", "order_id").agg(
        pl.len().alias("lines"),
        pl.col("quantity").sum().alias("units"),
        pl.col("amount").sum().alias("value"),
    )
    stats = {
        row["persona"]: row
        for row in per_order.group_by("persona")
        .agg(pl.col("lines").mean(), pl.col("units").mean(), pl.col("value").median())
        .iter_rows(named=True)
    }
    assert stats["family_shoppers"]["lines"] > stats["young_professionals"]["lines"]
    assert stats["family_shoppers"]["units"] > stats["budget_minded"]["units"]
    assert stats["refined_living"]["value"] > stats["budget_minded"]["value"] * 3
    unit_price = long_frames["lines"].group_by("persona").agg(pl.col("unit_price").median())
    price = dict(unit_price.iter_rows())
    assert price["refined_living"] > 2 * price["budget_minded"]


def test_family_shoppers_shop_on_weekends(long_frames: dict[str, pl.DataFrame]) -> None:
    orders = long_frames["lines"].unique("order_id").with_columns(
        pl.col("order_ts").str.to_datetime("%Y-%m-%d %H:%M:%S").dt.weekday().alias("weekday")
    )
    weekend_share = dict(
        orders.group_by("persona").agg((pl.col("weekday") >= 6).mean()).iter_rows()
    )
    assert weekend_share["family_shoppers"] > 0.6
    assert weekend_share["young_professionals"] < 0.4


# --------------------------------------------------------------------------
# Long shape: planted churn and co-purchase bundles
# --------------------------------------------------------------------------


def test_planted_churners_stop_buying_after_their_churn_day(
    long_frames: dict[str, pl.DataFrame],
) -> None:
    truth = long_frames["truth"].with_columns(pl.col("churn_day").cast(pl.Int64))
    churned = truth.filter(pl.col("churn_day").is_not_null())
    assert 0.1 < churned.height / truth.height < 0.4
    assert churned["churn_day"].min() >= 0 and churned["churn_day"].max() < 90
    orders = (
        long_frames["lines"].unique("order_id")
        .with_columns(
            (pl.col("order_ts").str.to_datetime("%Y-%m-%d %H:%M:%S") - datetime(2026, 1, 1))
            .dt.total_days().alias("day")
        )
        .group_by("customer_id")
        .agg(pl.len().alias("orders"), pl.col("day").max().alias("last_day"))
        .join(truth, on="customer_id")
    )
    late = orders.filter(pl.col("churn_day").is_not_null() & (pl.col("last_day") > pl.col("churn_day")))
    # Only the one order every customer is guaranteed may fall after the churn day.
    assert (late["orders"] == 1).all()
    # Churners buy less than customers still buying at the end.
    mean_orders = dict(
        orders.group_by(pl.col("churn_day").is_not_null().alias("churned"))
        .agg(pl.col("orders").mean()).iter_rows()
    )
    assert mean_orders[True] < 0.7 * mean_orders[False]


def test_bundle_customers_buy_the_categories_of_their_bundle(
    long_frames: dict[str, pl.DataFrame],
) -> None:
    truth = long_frames["truth"]
    assert set(truth["bundle"].drop_nulls()) == set(generate.BUNDLE_KEYS)
    assert 0.6 < truth["bundle"].is_not_null().mean() < 0.8
    bought = long_frames["lines"].select("customer_id", "category").unique()
    for bundle, category in (("party", "snacks"), ("baby", "babycare"), ("breakfast", "bakery")):
        buyers = set(bought.filter(pl.col("category") == category)["customer_id"])
        share = {
            has: truth.filter((pl.col("bundle") == bundle) == has)["customer_id"].is_in(buyers).mean()
            for has in (True, False)
        }
        assert share[True] > 1.5 * share[False], (bundle, share)


# --------------------------------------------------------------------------
# Wide shape
# --------------------------------------------------------------------------


def test_wide_result_and_header(wide_data: GeneratedData) -> None:
    assert wide_data.customers_path is None
    assert wide_data.orders_path.name == "baskets.csv"
    assert wide_data.truth_path.name == "truth.csv"
    assert wide_data.customers == 800
    assert wide_data.personas == PERSONA_KEYS
    assert wide_data.outliers == round(0.005 * 800)  # default share
    assert _header(wide_data.orders_path) == WIDE_HEADER
    assert _header(wide_data.truth_path) == TRUTH_HEADER
    assert b"\r" not in wide_data.orders_path.read_bytes()


def test_wide_values(wide_data: GeneratedData) -> None:
    baskets = _read(wide_data.orders_path)
    assert baskets.height == wide_data.order_lines
    for name in WIDE_CATEGORIES:
        assert baskets[name].is_in(["T", "F"]).all(), name
    flags = baskets.select(
        pl.sum_horizontal(*[(pl.col(name) == "T").cast(pl.Int32) for name in WIDE_CATEGORIES])
    ).to_series()
    assert (flags >= 1).all()
    assert baskets["pmethod"].is_in(["CARD", "CASH", "CHEQUE"]).all()
    assert baskets["sex"].is_in(["M", "F"]).all()
    assert baskets["homeown"].is_in(["YES", "NO"]).all()
    assert baskets["cardid"].str.contains(r"^\d+$").all()
    assert baskets["value"].str.contains(r"^\d+\.\d{4}$").all()
    # Ordinary customers stay in the seed table's ranges; the planted
    # outliers (default share) go beyond them only where their kind says so.
    kinds = _read(wide_data.truth_path).select(
        pl.col("customer_id").alias("cardid"), pl.col("outlier_kind").fill_null("")
    )
    joined = baskets.join(kinds, on="cardid").with_columns(
        pl.col("value").cast(pl.Float64), pl.col("income").cast(pl.Int64)
    )
    assert joined.height == baskets.height
    assert joined["value"].min() >= 10
    assert joined["income"].min() >= 10_000
    boosted_value = pl.col("outlier_kind").is_in(["bulk_buyer", "big_spender"])
    assert joined.filter(~boosted_value)["value"].max() <= 100
    assert joined.filter(boosted_value)["value"].min() >= 20 * 10
    big_spender = pl.col("outlier_kind") == "big_spender"
    assert joined.filter(~big_spender)["income"].max() <= 70_000
    assert joined.filter(big_spender)["income"].min() >= 15 * 10_000


def test_wide_profile_identical_across_baskets(wide_data: GeneratedData) -> None:
    baskets = _read(wide_data.orders_path)
    per_card = baskets.group_by("cardid").agg(
        *[pl.col(name).n_unique() for name in ("sex", "homeown", "income", "age")],
        pl.len().alias("baskets"),
    )
    for name in ("sex", "homeown", "income", "age"):
        assert (per_card[name] == 1).all(), name
    assert (per_card["baskets"] > 1).any()


def test_wide_truth_matches_cardids(wide_data: GeneratedData) -> None:
    baskets = _read(wide_data.orders_path)
    truth = _read(wide_data.truth_path)
    assert truth.height == 800
    assert truth["customer_id"].n_unique() == 800
    assert set(truth["customer_id"]) == set(baskets["cardid"])
    assert set(truth["persona"]) == set(PERSONA_KEYS)


def test_wide_personas_differ(wide_data: GeneratedData) -> None:
    baskets = _read(wide_data.orders_path).with_columns(
        pl.col("value").cast(pl.Float64),
        pl.col("income").cast(pl.Int64),
        pl.col("age").cast(pl.Int64),
    )
    truth = _read(wide_data.truth_path)
    joined = baskets.join(truth, left_on="cardid", right_on="customer_id")
    stats = {
        row["persona"]: row
        for row in joined.group_by("persona")
        .agg(
            pl.col("income").median(),
            pl.col("value").median(),
            (pl.col("wine") == "T").mean().alias("wine"),
            (pl.col("pmethod") == "CASH").mean().alias("cash"),
        )
        .iter_rows(named=True)
    }
    assert stats["refined_living"]["income"] > 2 * stats["budget_minded"]["income"]
    assert stats["refined_living"]["value"] > stats["budget_minded"]["value"]
    assert stats["refined_living"]["wine"] == max(row["wine"] for row in stats.values())
    assert stats["budget_minded"]["cash"] > 0.5


# --------------------------------------------------------------------------
# Invalid arguments
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"customers": 0}, "customers"),
        ({"customers": -5}, "customers"),
        ({"days": 0}, "days"),
        ({"shape": "tall"}, "shape"),
        ({"seed": -1}, "seed"),
        ({"customers": 2.5}, "customers"),
        ({"start_date": "2026-01-01"}, "start_date"),
        ({"outlier_share": -0.01}, "outlier_share"),
        ({"outlier_share": 0.21}, "outlier_share"),
        ({"outlier_share": float("nan")}, "outlier_share"),
        ({"outlier_share": "0.1"}, "outlier_share"),
        ({"outlier_share": True}, "outlier_share"),
    ],
)
def test_invalid_arguments_raise(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_demo_data(tmp_path / "out", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_outlier_share_is_keyword_only(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        generate_demo_data(  # type: ignore[misc]
            tmp_path, 100, 90, 7, "long", date(2026, 1, 1), 0.1
        )


def test_persona_keys_are_the_documented_ones() -> None:
    assert PERSONA_KEYS == (
        "young_professionals",
        "family_shoppers",
        "refined_living",
        "budget_minded",
    )


# --------------------------------------------------------------------------
# Planted outliers
# --------------------------------------------------------------------------

OUTLIER_CUSTOMERS = 600
# 5 % of 600 = 30 outliers, 10 of each kind: enough for stable medians.
OUTLIER_SHARE = 0.05


def _truth_flags(result: GeneratedData) -> pl.DataFrame:
    return _read(result.truth_path).with_columns(pl.col("planted_outlier").cast(pl.Int64))


@pytest.fixture(scope="module")
def outlier_data(tmp_path_factory: pytest.TempPathFactory) -> GeneratedData:
    return generate_demo_data(
        tmp_path_factory.mktemp("outliers"),
        customers=OUTLIER_CUSTOMERS,
        outlier_share=OUTLIER_SHARE,
    )


@pytest.fixture(scope="module")
def outlier_aggregates(outlier_data: GeneratedData) -> pl.DataFrame:
    """Per-customer aggregates from the written files, with the truth joined."""
    assert outlier_data.customers_path is not None
    lines = _read(outlier_data.orders_path).with_columns(
        pl.col("quantity").cast(pl.Int64), pl.col("amount").cast(pl.Float64)
    )
    per_order = lines.group_by("customer_id", "order_id").agg(
        pl.col("quantity").sum().alias("items"), pl.col("amount").sum().alias("amount")
    )
    per_customer = per_order.group_by("customer_id").agg(
        pl.len().alias("orders"),
        pl.col("items").median().alias("items_per_order"),
        pl.col("amount").median().alias("order_amount"),
    )
    unit_price = lines.group_by("customer_id").agg(
        pl.col("unit_price").cast(pl.Float64).median()
    )
    customers = _read(outlier_data.customers_path).select(
        "customer_id", pl.col("income").cast(pl.Int64)
    )
    return (
        _truth_flags(outlier_data)
        .join(customers, on="customer_id", how="left")
        .join(per_customer, on="customer_id", how="left")
        .join(unit_price, on="customer_id", how="left")
    )


@pytest.mark.parametrize(
    ("customers", "share", "expected"),
    [
        (600, 0.005, 3),
        (2_000, 0.005, 10),
        (600, 0.2, 120),
        (1_000, 0.0123, 12),
        (20, 0.005, 1),  # round() gives 0, but >= 20 customers plant at least one
        (19, 0.005, 0),  # below 20 customers plain rounding applies
        (19, 0.2, 4),
        (600, 0.0, 0),
    ],
)
def test_outlier_count_follows_share(
    tmp_path: Path, customers: int, share: float, expected: int
) -> None:
    result = generate_demo_data(tmp_path, customers=customers, outlier_share=share)
    truth = _truth_flags(result)
    assert truth.columns == TRUTH_HEADER.split(",")
    assert truth["planted_outlier"].is_in([0, 1]).all()
    assert truth["planted_outlier"].sum() == expected == result.outliers
    # outlier_kind is set exactly for planted customers (empty field otherwise).
    planted = truth.filter(pl.col("planted_outlier") == 1)
    assert planted["outlier_kind"].is_in(list(OUTLIER_KINDS)).all()
    assert truth.filter(pl.col("planted_outlier") == 0)["outlier_kind"].null_count() == (
        customers - expected
    )


def test_zero_share_plants_nothing(tmp_path: Path) -> None:
    result = generate_demo_data(tmp_path, customers=600, outlier_share=0.0)
    truth = _truth_flags(result)
    assert result.outliers == 0
    assert (truth["planted_outlier"] == 0).all()
    assert truth["outlier_kind"].null_count() == 600
    # The empty kind (and churn day, for a customer still buying) is an empty field, not quoted "".
    rows = result.truth_path.read_text(encoding="utf-8").splitlines()[1:]
    assert all(row.split(",")[2:4] == ["0", ""] for row in rows) and '"' not in "".join(rows)
    assert any(row.split(",")[4] == "" for row in rows)
    lines = _read(result.orders_path).with_columns(pl.col("quantity").cast(pl.Int64))
    assert lines["quantity"].max() < 20


def test_every_kind_planted_evenly(tmp_path: Path) -> None:
    result = generate_demo_data(tmp_path, customers=600)  # default share: 3 outliers
    kinds = _truth_flags(result)["outlier_kind"].drop_nulls()
    assert sorted(kinds) == sorted(OUTLIER_KINDS)
    more = generate_demo_data(tmp_path / "more", customers=2_000, outlier_share=0.05)
    planted = _truth_flags(more).filter(pl.col("planted_outlier") == 1)
    counts = dict(planted.group_by("outlier_kind").len().iter_rows())
    # 100 outliers dealt round-robin in OUTLIER_KINDS order.
    assert counts == {"bulk_buyer": 34, "big_spender": 33, "hyper_frequent": 33}


def test_outliers_keep_persona_mix(tmp_path: Path) -> None:
    plain = generate_demo_data(tmp_path / "plain", customers=2_000, outlier_share=0.0)
    planted = generate_demo_data(tmp_path / "planted", customers=2_000, outlier_share=0.2)
    plain_truth, planted_truth = _truth_flags(plain), _truth_flags(planted)
    # Planting does not move anyone's persona ...
    assert planted_truth["persona"].to_list() == plain_truth["persona"].to_list()
    # ... and outliers are drawn per persona, so the mix of the remaining
    # customers stays exactly 30/30/15/25 (1,600 non-outliers here).
    rest = planted_truth.filter(pl.col("planted_outlier") == 0)
    counts = dict(rest.group_by("persona").len().iter_rows())
    assert counts == {
        "young_professionals": 480,
        "family_shoppers": 480,
        "refined_living": 240,
        "budget_minded": 400,
    }


def test_outlier_choice_does_not_depend_on_chunking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = generate_demo_data(tmp_path / "whole", customers=250, outlier_share=0.1)
    monkeypatch.setattr(global_draws, "_CHUNK_CUSTOMERS", 70)
    chunked = generate_demo_data(tmp_path / "chunked", customers=250, outlier_share=0.1)
    assert chunked.truth_path.read_bytes() == whole.truth_path.read_bytes()
    assert chunked.outliers == whole.outliers == 25
    # Every planted customer still has orders after chunked generation.
    lines = _read(chunked.orders_path)
    planted = _truth_flags(chunked).filter(pl.col("planted_outlier") == 1)["customer_id"]
    assert set(planted) <= set(lines["customer_id"])


def test_outlier_lines_stay_plausible(outlier_data: GeneratedData) -> None:
    raw = _read(outlier_data.orders_path)
    assert raw["quantity"].str.contains(r"^[1-9]\d*$").all()
    assert raw["unit_price"].str.contains(r"^\d+\.\d{2}$").all()
    assert raw["amount"].str.contains(r"^\d+\.\d{2}$").all()
    lines = raw.with_columns(
        pl.col("quantity").cast(pl.Int64),
        pl.col("unit_price").cast(pl.Float64),
        pl.col("amount").cast(pl.Float64),
    )
    assert (lines["unit_price"] > 0).all()
    assert (lines["amount"] - lines["quantity"] * lines["unit_price"]).abs().max() <= 0.01
    assert outlier_data.customers_path is not None
    customers = _read(outlier_data.customers_path)
    assert customers["income"].str.contains(r"^[1-9]\d*00$").all()


def _median(aggregates: pl.DataFrame, column: str, kind: str | None) -> float:
    rows = aggregates.filter(
        pl.col("planted_outlier") == 0 if kind is None else pl.col("outlier_kind") == kind
    )
    assert rows.height == (570 if kind is None else 10)
    value = rows[column].median()
    assert isinstance(value, (int, float))
    return float(value)


def test_bulk_buyers_buy_in_bulk(outlier_aggregates: pl.DataFrame) -> None:
    for column in ("items_per_order", "order_amount"):
        normal = _median(outlier_aggregates, column, None)
        assert _median(outlier_aggregates, column, "bulk_buyer") > 10 * normal, column
    normal_orders = _median(outlier_aggregates, "orders", None)
    assert _median(outlier_aggregates, "orders", "bulk_buyer") < 2 * normal_orders


def test_big_spenders_earn_and_pay_far_more(outlier_aggregates: pl.DataFrame) -> None:
    normal_income = _median(outlier_aggregates, "income", None)
    assert _median(outlier_aggregates, "income", "big_spender") > 10 * normal_income
    normal_price = _median(outlier_aggregates, "unit_price", None)
    assert _median(outlier_aggregates, "unit_price", "big_spender") > 5 * normal_price
    normal_amount = _median(outlier_aggregates, "order_amount", None)
    assert _median(outlier_aggregates, "order_amount", "big_spender") > 5 * normal_amount
    # Premium prices, not bulk quantities.
    normal_items = _median(outlier_aggregates, "items_per_order", None)
    assert _median(outlier_aggregates, "items_per_order", "big_spender") < 2 * normal_items


def test_hyper_frequent_customers_order_far_more_often(
    outlier_aggregates: pl.DataFrame,
) -> None:
    normal_orders = _median(outlier_aggregates, "orders", None)
    assert _median(outlier_aggregates, "orders", "hyper_frequent") > 8 * normal_orders
    normal_income = _median(outlier_aggregates, "income", None)
    assert _median(outlier_aggregates, "income", "hyper_frequent") < 2 * normal_income
    normal_amount = _median(outlier_aggregates, "order_amount", None)
    assert _median(outlier_aggregates, "order_amount", "hyper_frequent") < 3 * normal_amount


def test_outliers_keep_their_persona_profile(outlier_aggregates: pl.DataFrame) -> None:
    # Only big spenders get an extreme income; the other outliers keep an
    # income inside the persona ranges (at most 500,000 CNY).
    other_outliers = outlier_aggregates.filter(
        pl.col("outlier_kind").is_in(["bulk_buyer", "hyper_frequent"])
    )
    assert other_outliers.height == 20
    assert other_outliers["income"].max() <= 500_000
    assert outlier_aggregates["orders"].min() >= 1


def test_wide_outliers_stand_out(tmp_path: Path) -> None:
    result = generate_demo_data(
        tmp_path, customers=OUTLIER_CUSTOMERS, shape="wide", outlier_share=OUTLIER_SHARE
    )
    assert result.outliers == 30
    truth = _truth_flags(result).rename({"customer_id": "cardid"})
    baskets = _read(result.orders_path)
    assert baskets["value"].str.contains(r"^\d+\.\d{4}$").all()
    per_card = (
        baskets.with_columns(pl.col("value").cast(pl.Float64), pl.col("income").cast(pl.Int64))
        .group_by("cardid")
        .agg(
            pl.len().alias("baskets"),
            pl.col("value").median(),
            pl.col("income").first(),
        )
        .join(truth, on="cardid")
    )
    assert per_card.height == OUTLIER_CUSTOMERS
    medians = {
        (row["outlier_kind"] or ""): row
        for row in per_card.group_by("outlier_kind")
        .agg(pl.col("baskets").median(), pl.col("value").median(), pl.col("income").median())
        .iter_rows(named=True)
    }
    normal = medians[""]
    assert medians["bulk_buyer"]["value"] > 15 * normal["value"]
    assert medians["big_spender"]["value"] > 15 * normal["value"]
    assert medians["big_spender"]["income"] > 10 * normal["income"]
    assert medians["hyper_frequent"]["baskets"] > 8 * normal["baskets"]
    assert medians["hyper_frequent"]["value"] < 2 * normal["value"]


# --------------------------------------------------------------------------
# `persona generate --campaigns`: planted campaigns a user can import
# --------------------------------------------------------------------------


def test_generate_campaigns_writes_importable_assignments_and_the_planted_truth(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from assets.campaigns.store import read_assignment_file
    from pipelines.cli import main

    out = tmp_path / "shop"
    done = CliRunner().invoke(main, ["generate", "--out", str(out), "--customers", "600", "--days", "60",
                                     "--seed", "3", "--daily-files", "--campaigns"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    truth = pl.read_csv(out / "campaigns_truth.csv")
    assert truth["campaign"].to_list() == ["demo_coupon", "demo_null"]
    assert truth["planted_uplift"].to_list() == [0.10, 0.0]
    # Two weeks ending a week before the data does (60 days from 2026-01-01: the last day is 2026-03-01).
    assert set(truth["start_day"]) == {"2026-02-09"} and set(truth["end_day"]) == {"2026-02-22"}
    assignments = read_assignment_file(out / "campaign_assignments.csv")
    assert set(assignments["campaign"]) == {"demo_coupon", "demo_null"}
    assert set(assignments["group_name"]) == {"treatment", "control"}
    coupon = truth.row(0, named=True)
    assert assignments.filter(pl.col("campaign") == "demo_coupon").height == coupon["treatment"] + coupon["control"]
    assert "Planted campaign demo_coupon on family_shoppers: +10.0 percentage points of conversion, " \
           "2026-02-09..2026-02-22" in done.output
    assert "campaign import --file" in done.output and "--start 2026-02-09 --end 2026-02-22" in done.output
    # The extra orders of the treatment reach the daily landing files too.
    landed = sum(pl.read_csv(f, infer_schema=False).height for f in (out / "orders").rglob("*.csv"))
    assert landed == pl.read_csv(out / "order_lines.csv", infer_schema=False).height


def test_generate_campaigns_needs_the_long_shape_and_four_weeks(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pipelines.cli import main

    wide = CliRunner().invoke(main, ["generate", "--out", str(tmp_path / "w"), "--shape", "wide", "--campaigns"])
    assert wide.exit_code == 1 and "--campaigns needs the long shape" in wide.output
    short = CliRunner().invoke(main, ["generate", "--out", str(tmp_path / "s"), "--days", "20", "--campaigns"])
    assert short.exit_code == 1 and "--campaigns needs at least 28 days of orders (got 20)" in short.output
