"""Tests for the deterministic demo-data generator (pipelines.generate).

Why these tests: demos, benchmarks and segmentation-quality checks rely on the
generator being byte-for-byte reproducible, writing exactly the documented
formats, and planting personas that really differ. Sizes stay small so the
suite runs in a few seconds.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines import generate
from pipelines.generate import (
    CATEGORIES,
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
def test_same_seed_gives_identical_bytes(tmp_path: Path, shape: str) -> None:
    first = generate_demo_data(tmp_path / "a", customers=300, seed=11, shape=shape)
    second = generate_demo_data(tmp_path / "b", customers=300, seed=11, shape=shape)
    assert _all_bytes(first) == _all_bytes(second)
    assert first.order_lines == second.order_lines


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
    assert _header(long_data.customers_path) == LONG_CUSTOMER_HEADER
    assert _header(long_data.orders_path) == LONG_ORDER_HEADER
    assert _header(long_data.truth_path) == "customer_id,persona"
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
    monkeypatch.setattr(generate, "_CHUNK_CUSTOMERS", 70)
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
# Wide shape
# --------------------------------------------------------------------------


def test_wide_result_and_header(wide_data: GeneratedData) -> None:
    assert wide_data.customers_path is None
    assert wide_data.orders_path.name == "baskets.csv"
    assert wide_data.truth_path.name == "truth.csv"
    assert wide_data.customers == 800
    assert wide_data.personas == PERSONA_KEYS
    assert _header(wide_data.orders_path) == WIDE_HEADER
    assert _header(wide_data.truth_path) == "customer_id,persona"
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
    value = baskets["value"].cast(pl.Float64)
    assert value.min() >= 10
    assert value.max() <= 100
    income = baskets["income"].cast(pl.Int64)
    assert income.min() >= 10_000
    assert income.max() <= 70_000


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
    ],
)
def test_invalid_arguments_raise(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_demo_data(tmp_path / "out", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_persona_keys_are_the_documented_ones() -> None:
    assert PERSONA_KEYS == (
        "young_professionals",
        "family_shoppers",
        "refined_living",
        "budget_minded",
    )
