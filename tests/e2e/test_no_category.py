"""A shop whose export has no category at all (issue 18, point 7): no category column, no product table, no
description to derive one from. The config declares it with `orders.columns.category: null`, and the pipeline
segments on RFM, payment and demographics and publishes; everything that needs categories is skipped and says why.

One long-shape export generated here (300 customers over 120 days, seeded), run once through the whole graph.
"""

from __future__ import annotations

import csv
import re
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from assets.features.traits import SegmentProfile
from assets.predict.runs import NO_CATEGORIES, NO_CATEGORIES_REASON, SKIPPED
from assets.raw.mapping import read_orders
from assets.raw.readers import IngestError
from assets.report.strategies import load_playbook
from assets.segments.naming import name_segments
from pipelines.core.config import load_source_config
from tests.conftest import materialize_graph, query, write_file

CUSTOMERS = 300
DAYS = 120
LAST_DAY = datetime(2026, 10, 31)
# The absence sentence of the report, in each language (assets/report/sections.py, section_without_categories).
ABSENCE = {
    "zh": "本次导出没有商品品类：orders.columns.category 为 null",
    "en": "this export has no product category: orders.columns.category is null",
}
CATEGORY_PARTS = {
    "zh": ("品类偏好热力图", "客群名称中的品类偏好", "下一品类推荐", "依赖品类的运营策略"),
    "en": ("category preference heatmap", "category lovers in segment names", "next-category recommendations",
           "category strategies"),
}

# Who buys how: (share of customers, age range, income range, payment method, orders range, basket range,
# the last day they may still buy on, counted back from LAST_DAY: lapsing customers stopped long ago).
PERSONAS = [
    (0.35, (20, 32), (20_000, 45_000), "MOBILE", (5, 10), (15, 60), 0),
    (0.25, (55, 75), (30_000, 60_000), "CASH", (2, 4), (150, 320), 0),
    (0.25, (35, 55), (90_000, 160_000), "CARD", (3, 7), (90, 220), 0),
    (0.15, (25, 60), (30_000, 80_000), "CARD", (1, 3), (40, 120), 60),
]


def write_export(folder: Path, seed: int = 18) -> tuple[Path, Path]:
    """orders.csv (order_id, customer_id, order_ts, quantity, amount, payment_method: no category anywhere) and
    customers.csv (customer_id, age, gender, income), drawn from PERSONAS with a seeded generator."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    first_day = LAST_DAY - timedelta(days=DAYS - 1)
    shares = np.array([p[0] for p in PERSONAS])
    personas = rng.choice(len(PERSONAS), size=CUSTOMERS, p=shares / shares.sum())
    order_rows, customer_rows = [], []
    order_number = 0
    for index, persona in enumerate(personas):
        _, ages, incomes, payment, orders, baskets, stopped = PERSONAS[persona]
        customer_id = f"C{index:04d}"
        customer_rows.append([customer_id, int(rng.integers(*ages)), "F" if rng.random() < 0.5 else "M",
                              int(rng.integers(*incomes) // 100 * 100)])
        last_possible = DAYS - stopped
        for day in np.sort(rng.choice(last_possible, size=int(rng.integers(orders[0], orders[1] + 1)))):
            order_number += 1
            when = first_day + timedelta(days=int(day), seconds=int(rng.integers(8 * 3600, 21 * 3600)))
            # One to three lines per order; the basket value is split across them, 1:2:3, so that no two lines of an
            # order are alike in every field (without a sku, two such lines would be dropped as exact copies).
            lines = int(rng.integers(1, 4))
            basket = rng.uniform(*baskets)
            for line in range(lines):
                order_rows.append([f"O{order_number:06d}", customer_id, when.strftime("%Y-%m-%d %H:%M:%S"),
                                   int(rng.integers(1, 4)), round(basket * (line + 1) / (lines * (lines + 1) / 2), 2),
                                   payment])
    orders_path, customers_path = folder / "orders.csv", folder / "customers.csv"
    with orders_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order_id", "customer_id", "order_ts", "quantity", "amount", "payment_method"])
        writer.writerows(order_rows)
    with customers_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "age", "gender", "income"])
        writer.writerows(customer_rows)
    return orders_path, customers_path


def shop_config(folder: Path, declared: bool) -> Path:
    """The shop's config; `declared`: with `orders.columns.category: null`."""
    columns = "  columns: {category: null}\n" if declared else ""
    return write_file(folder / ("declared.yaml" if declared else "undeclared.yaml"), f"""
name: no-category
shape: long
orders:
  path: orders.csv
{columns}customers:
  path: customers.csv
model:
  k_range: [3, 5]
  bootstrap_rounds: 2
""")


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("no-category")
    write_export(folder)
    return folder


@pytest.fixture(scope="module")
def run(shop) -> tuple[Path, dg.ExecuteInProcessResult]:
    """The declared config through the whole graph: the published warehouse and the run's result."""
    warehouse = shop / "warehouse" / "warehouse.duckdb"
    result = materialize_graph(shop_config(shop, declared=True), warehouse)
    failed = [event.step_key for event in result.all_events if event.is_step_failure]
    assert result.success, failed
    return warehouse, result


@pytest.fixture(scope="module")
def published(run) -> Path:
    return run[0]


def test_every_check_passes_and_the_recommendation_check_says_it_skipped(run):
    checks = {e.asset_check_key.name: e for e in run[1].get_asset_check_evaluations()}
    # The churn model's quality is a warning that depends on how predictable these 300 customers are, not on
    # categories: left out.
    failed = sorted(name for name, e in checks.items() if not e.passed and name != "churn_model_quality")
    assert not failed
    assert {"staging_order_lines_expectations", "raw_orders_expectations", "every_customer_segmented",
            "recommendations_beat_popularity"} <= set(checks)
    assert checks["recommendations_beat_popularity"].description == f"skipped: {NO_CATEGORIES_REASON}"


def test_without_the_declaration_the_read_fails_naming_the_way_out(shop, tmp_path):
    config = load_source_config(shop_config(shop, declared=False))
    with pytest.raises(IngestError) as raised:
        read_orders(config, tmp_path)
    message = str(raised.value)
    assert "required column 'category' is missing" in message
    assert "orders.columns.category: null" in message


def test_lines_load_with_category_null_and_none_is_quarantined_for_it(published):
    assert query(published, "SELECT count(*) FROM quality.quarantine WHERE reason = 'missing category'") == [(0,)]
    [(lines, with_category)] = query(published, "SELECT count(*), count(category) FROM staging.order_lines")
    assert lines > CUSTOMERS and with_category == 0


def test_the_features_have_no_category_column(published):
    columns = [name for (name,) in query(published, "SELECT column_name FROM information_schema.columns "
                                                    "WHERE table_schema = 'features' "
                                                    "AND table_name = 'customer_features'")]
    assert not [c for c in columns if c.startswith("cat_")]
    assert {"age", "income", "n_orders", "recency_days", "pay_mobile", "pay_cash", "pay_card"} <= set(columns)


def test_the_model_clusters_on_the_families_the_data_has(run):
    published, result = run
    [(families, columns)] = query(published, "SELECT feature_families, feature_columns FROM segments.model_runs "
                                             "WHERE chosen ORDER BY fitted_at DESC LIMIT 1")
    # model.features lists categories by default: skipped, with the reason in the asset's metadata.
    assert families == ["demographics", "rfm", "payment"]
    assert columns and not [c for c in columns if c.startswith("cat_")]
    [metadata] = [m.metadata for m in result.get_asset_materialization_events()
                  for m in [m.materialization] if m.asset_key == dg.AssetKey(["model", "customer_clusters"])]
    assert metadata["feature_families"].value == ["demographics", "rfm", "payment"]
    assert metadata["feature_families_skipped"].value == {
        "categories": "the export has no product category (orders.columns.category: null)"}


def test_segments_are_named_from_profile_traits(published):
    profiles = query(published, "SELECT segment_name_zh, segment_name_en, customers FROM segments.segment_profiles")
    assert len(profiles) >= 3 and sum(row[2] for row in profiles) == CUSTOMERS
    for zh, en, _ in profiles:
        assert zh and en and "lovers" not in en and "偏好" not in zh
    assert query(published, "SELECT count(*) FROM segments.segment_category_affinity") == [(0,)]
    assert query(published, "SELECT count(*) FROM segments.customer_segments") == [(CUSTOMERS,)]


def test_without_categories_a_descriptive_name_takes_two_traits_who_before_how_they_pay():
    # Paying cash sets the segment apart most, age next: the name puts who they are first.
    profile = SegmentProfile(1, {"pay_cash": 1.5, "age": 1.2, "income": 0.1}, {"pay_cash": 3.0}, {}, {})
    [name] = name_segments([profile], [], {}, {}, {}, has_categories=False).values()
    assert (name.zh, name.en, name.basis) == ("年长·现金支付", "Senior · cash payers", ["age:+", "pay_cash:+"])
    # A shop with categories keeps one trait (and a category, had the segment one that stands out).
    [name] = name_segments([profile], [], {}, {}, {}).values()
    assert name.en == "Cash payers"


def test_recommendations_are_skipped_and_churn_is_trained(published):
    [(status, reason, action)] = query(published, "SELECT status, reason, rules_action "
                                                  "FROM predict.recommendation_eval")
    assert (status, reason, action) == (NO_CATEGORIES, NO_CATEGORIES_REASON, SKIPPED)
    for table, columns in (("next_category", {"customer_id", "rank", "category", "score", "source"}),
                           ("category_rules", {"antecedent", "consequent", "support", "confidence", "lift"})):
        assert query(published, f"SELECT count(*) FROM predict.{table}") == [(0,)]
        present = {name for (name,) in query(published, "SELECT column_name FROM information_schema.columns "
                                                        f"WHERE table_schema = 'predict' AND table_name = '{table}'")}
        assert columns <= present, table
    [(churn_status, scored)] = query(published, "SELECT status, n_scored FROM predict.churn_model_runs")
    assert churn_status == "trained" and scored > 0


def _page(warehouse: Path, language: str) -> str:
    return (warehouse.parent / "reports" / f"report_{language}.html").read_text(encoding="utf-8")


def _visible(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def test_the_report_says_in_both_languages_why_category_sections_are_absent(published):
    for language in ("zh", "en"):
        page = _page(published, language)
        absence = re.search(r'<section id="no_categories">(.*?)</section>', page, re.S)
        assert absence, language
        said = _visible(absence.group(1))
        assert ABSENCE[language] in said, language
        for part in CATEGORY_PARTS[language]:
            assert part in said, (language, part)
        # No heatmap (no chart spec, no chart element), no recommendation section.
        assert 'id="chart-categories"' not in page and '"categories":' not in page
        assert 'id="next_category"' not in page
        # Nowhere else does the report speak of categories: not in names, strategies or the churn advice.
        body = page.split("<main>", 1)[1].split('<script type="application/json"')[0]
        rest = _visible(body.replace(absence.group(0), ""))
        assert ("品类" if language == "zh" else "categor") not in rest.lower(), language
    charts = {path.name for path in (published.parent / "reports" / "charts").iterdir()}
    assert "sizes_en.png" in charts and not [name for name in charts if name.startswith("categories")]


def test_only_strategies_that_need_no_category_are_offered_without_categories():
    playbook = load_playbook()
    offered = sorted(s.key for s in [*playbook.strategies, playbook.fallback] if not s.needs_categories())
    assert offered == ["cash_to_mobile", "frequency_builder", "keep_engaged", "points_flash_sales", "premium_picks",
                       "reactivation", "vip_care", "win_back"]
    fallback = playbook.fallback.action_without_categories
    assert fallback["en"] == ("Keep in touch with a member newsletter featuring bestsellers and seasonal products, "
                              "and watch how this segment develops.")
    assert "{category}" not in fallback["zh"]
