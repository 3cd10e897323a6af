"""The whole asset graph on tmp_path warehouses, for both shapes, asserting table contents."""

import csv
import re

import pytest

from pipelines.demo.generate import generate_demo_data
from tests.conftest import materialize_graph, query, work_db, write_file

SEED_CATEGORIES = [
    "fruitveg", "freshmeat", "dairy", "cannedveg", "cannedmeat", "frozenmeal",
    "beer", "wine", "softdrink", "fish", "confectionery",
]
def test_seed_table_yields_999_segmented_customers(seed_warehouse):
    assert query(seed_warehouse, "SELECT count(*), count(DISTINCT customer_id) FROM segments.customer_segments") == [
        (999, 999)
    ]
    assert query(seed_warehouse, "SELECT count(*) FROM staging.orders") == [(1000,)]
    profiles = query(seed_warehouse, """
        SELECT count(*), sum(customers), round(sum(share), 9),
               count(DISTINCT segment_name_zh), count(DISTINCT segment_name_en)
        FROM segments.segment_profiles""")
    [(k,)] = query(seed_warehouse, "SELECT k FROM segments.model_runs WHERE chosen")
    assert 3 <= k <= 8
    assert profiles == [(k, 999, 1.0, k, k)]
    # Every customer carries the name of its segment as published in the profiles.
    mismatched = query(seed_warehouse, """
        SELECT count(*) FROM segments.customer_segments s JOIN segments.segment_profiles p USING (segment_id)
        WHERE s.segment_name_zh <> p.segment_name_zh OR s.segment_name_en <> p.segment_name_en""")
    assert mismatched == [(0,)]


def test_seed_cardid_37917_keeps_both_baskets_and_the_last_profile(seed_warehouse, seed_baskets):
    orders = query(seed_warehouse,
                   "SELECT order_id, order_amount, payment_method FROM staging.orders "
                   "WHERE customer_id = '37917' ORDER BY order_id")
    assert orders == [("BASKETS1n:27", 32.2318, "CHEQUE"), ("BASKETS1n:917", 22.9288, "CASH")]
    # Last row in file order (row 917) wins: age 26, income 10500.
    assert query(seed_warehouse,
                 "SELECT age, income, gender, home_owner, _source_row FROM staging.customers "
                 "WHERE customer_id = '37917'") == [(26.0, 10500.0, "F", False, 917)]
    conflicts = query(seed_warehouse,
                      "SELECT key_value, kept_row, superseded_row, differing_columns FROM quality.key_conflicts")
    assert conflicts == [("37917", 917, 27, ["age", "income"])]
    features = query(seed_warehouse,
                     "SELECT n_orders, round(total_spend, 4), cat_fruitveg, cat_wine FROM features.customer_features "
                     "WHERE customer_id = '37917'")
    # fruitveg only in the second basket, wine in both.
    assert features == [(2.0, 55.1606, 0.5, 1.0)]


def test_seed_order_lines_match_the_flags_in_the_file(seed_warehouse, seed_baskets):
    with seed_baskets.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    flagged = {(f"BASKETS1n:{i}", c) for i, row in enumerate(rows, start=1) for c in SEED_CATEGORIES if row[c] == "T"}
    loaded = set(query(seed_warehouse, "SELECT order_id, category FROM staging.order_lines"))
    assert loaded == flagged
    total_value = round(sum(float(row["value"]) for row in rows), 4)
    assert query(seed_warehouse, "SELECT round(sum(order_amount), 4) FROM staging.orders") == [(total_value,)]


def test_seed_load_audit_accounts_for_every_row(seed_warehouse, seed_baskets):
    audit = query(seed_warehouse,
                  "SELECT input, source_file, rows_read, rows_loaded, rows_quarantined, duplicates_removed "
                  "FROM quality.load_audit")
    assert audit == [("orders", str(seed_baskets.resolve()), 1000, 1000, 0, 0)]
    assert query(seed_warehouse, "SELECT count(*) FROM quality.quarantine") == [(0,)]


def test_seed_segment_names_never_contradict_the_profiles(seed_warehouse):
    """A 'High income' segment has a median income above the population's, a 'Young' one a lower median age."""
    population_income, population_age = query(
        seed_warehouse, "SELECT median(income), median(age) FROM staging.customers")[0]
    for name, median_income, median_age in query(
        seed_warehouse, "SELECT segment_name_en, median_income, median_age FROM segments.segment_profiles"
    ):
        if "High income" in name:
            assert median_income > population_income
        if "Low income" in name:
            assert median_income < population_income
        if name.startswith("Young"):
            assert median_age < population_age
        if name.startswith("Senior"):
            assert median_age > population_age


def test_report_written_in_both_languages(seed_warehouse):
    reports = seed_warehouse.parent / "reports"
    names = query(seed_warehouse, "SELECT segment_name_zh, segment_name_en FROM segments.segment_profiles")
    zh = (reports / "report_zh.html").read_text(encoding="utf-8")
    en = (reports / "report_en.html").read_text(encoding="utf-8")
    assert "客户分群报告" in zh and "Customer segmentation report" in en
    for name_zh, name_en in names:
        assert name_zh in zh
        assert name_en.replace("&", "&amp;") in en
    # Self-contained: the Vega scripts are inlined, none is loaded from elsewhere.
    assert not re.search(r"<script[^>]+src=", zh) and not re.search(r"<script[^>]+src=", en)
    # The seed table has one row per basket: its money figures are the baskets' amounts, not order lines'.
    assert "add up the orders&#x27; amounts as the export states them, one row per order" in en \
        or "add up the orders' amounts as the export states them, one row per order" in en
    assert "order lines' amounts" not in en and "order lines&#x27; amounts" not in en
    assert "金额类指标（GMV、消费额、订单金额）为导出文件各订单金额之和（每行一个订单）" in zh


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    generated = generate_demo_data(root / "data", customers=400, days=60, seed=11)
    config = write_file(root / "demo.yaml", f"""
name: demo-test
shape: long
orders:
  path: {generated.orders_path}
customers:
  path: {generated.customers_path}
model:
  seed: 42
""")
    warehouse = root / "warehouse.duckdb"
    result = materialize_graph(config, warehouse)
    assert result.success
    return generated, warehouse


def test_demo_every_customer_in_a_segment(demo_run):
    generated, warehouse = demo_run
    with generated.orders_path.open(newline="") as handle:
        lines = list(csv.DictReader(handle))
    distinct_customers = {line["customer_id"] for line in lines}
    segmented = {row[0] for row in query(warehouse, "SELECT customer_id FROM segments.customer_segments")}
    assert segmented == distinct_customers
    assert query(warehouse, "SELECT count(*) FROM staging.order_lines") == [(len(lines),)]
    total = round(sum(float(line["amount"]) for line in lines), 2)
    assert query(warehouse, "SELECT round(sum(amount), 2) FROM staging.order_lines") == [(total,)]


def test_demo_features_match_a_hand_count(demo_run):
    generated, warehouse = demo_run
    with generated.orders_path.open(newline="") as handle:
        lines = [line for line in csv.DictReader(handle) if line["customer_id"] == "C0000001"]
    orders = {line["order_id"] for line in lines}
    with_dairy = {line["order_id"] for line in lines if line["category"] == "dairy"}
    spend = round(sum(float(line["amount"]) for line in lines), 2)
    row = query(warehouse, "SELECT n_orders, round(total_spend, 2), cat_dairy FROM features.customer_features "
                           "WHERE customer_id = 'C0000001'")
    assert row == [(float(len(orders)), spend, pytest.approx(len(with_dairy) / len(orders)))]


def test_demo_model_run_recorded(demo_run):
    _, warehouse = demo_run
    runs = query(warehouse, "SELECT algorithm, k, chosen, n_customers, len(feature_columns) > 10, silhouette > 0 "
                            "FROM segments.model_runs ORDER BY k")
    # Every candidate k from 3 to 8 is scored and kept; the planted four personas win.
    assert [row[1] for row in runs] == [3, 4, 5, 6, 7, 8]
    assert [row for row in runs if row[2]] == [("kmeans", 4, True, 400, True, True)]
    versions = query(warehouse, "SELECT DISTINCT model_version FROM segments.customer_segments")
    assert versions == query(warehouse, "SELECT model_version FROM segments.model_runs WHERE chosen")


def test_orders_without_a_customer_file(tmp_path):
    orders = write_file(tmp_path / "orders.csv", "\n".join([
        "order_id,customer_id,order_ts,category,quantity,amount,payment_method",
        *[f"O{i},C{i % 7},2026-03-0{1 + i % 9} 10:00:00,{['wine', 'dairy', 'beer'][i % 3]},1,{10 + i},CARD"
          for i in range(40)],
    ]) + "\n")
    config = write_file(tmp_path / "shop.yaml", f"""
name: orders-only
shape: long
orders:
  path: {orders.name}
model:
  k: 3
""")
    warehouse = tmp_path / "w.duckdb"
    assert materialize_graph(config, warehouse).success
    assert query(warehouse, "SELECT count(*), count(age), count(income) FROM staging.customers") == [(7, 0, 0)]
    assert query(warehouse, "SELECT count(DISTINCT customer_id) FROM segments.customer_segments") == [(7,)]


def test_repeated_lines_of_one_order_pass_the_gate_and_publish(tmp_path):
    """Repeated scans of one item in one invoice are lines of their own, and the staged-lines suite accepts them."""
    orders = write_file(tmp_path / "orders.csv", "\n".join([
        "order_id,customer_id,order_ts,category,sku,quantity,unit_price",
        *[f"I1,C1,2026-03-01 10:00:00,home,22041,{quantity},2.55" for quantity in (2, 1, 2, 1, 2)],
        *[f"I{i},C{i % 7},2026-03-0{1 + i % 9} 10:00:00,{['home', 'toys', 'gifts'][i % 3]},{i},1,{10 + i}"
          for i in range(2, 40)],
    ]) + "\n")
    config = write_file(tmp_path / "shop.yaml", f"""
name: repeated-scans
shape: long
orders:
  path: {orders.name}
  exact_duplicates: keep
model:
  k: 3
""")
    warehouse = tmp_path / "w.duckdb"
    result = materialize_graph(config, warehouse)
    assert result.success
    assert query(warehouse, "SELECT n_lines, n_items, round(order_amount, 2) FROM staging.orders "
                            "WHERE order_id = 'I1'") == [(5, 8.0, 20.4)]
    assert query(warehouse, "SELECT count(*) FROM staging.order_lines") == [(43,)]
    assert query(work_db(warehouse), "SELECT success FROM quality.validation_results WHERE run_id = ? AND "
                                     "suite = 'staging_order_lines' AND expectation LIKE '%compound_columns%'",
                 [result.run_id]) == [(True,)]
    assert query(work_db(warehouse), "SELECT rows_read, rows_loaded, rows_quarantined, duplicates_removed "
                                     "FROM quality.load_audit WHERE input = 'orders'") == [(43, 43, 0, 0)]


def test_bad_rows_are_quarantined_and_audited(tmp_path):
    write_file(tmp_path / "orders.csv", "\n".join([
        "order_id,customer_id,order_ts,category,quantity,amount,payment_method",
        "O1,C1,2026-03-01 10:00:00,wine,1,10.5,CARD",
        "O1,C1,2026-03-01 10:00:00,wine,1,10.5,CARD",        # row 2: exact copy of row 1
        "O1,C1,2026-03-01 10:00:00,wine,2,21.0,CARD",        # row 3: same key, other values
        "O2,,2026-03-02 10:00:00,dairy,1,3,CASH",            # row 4: no customer id
        "O3,C2,2026-03-02 10:00:00,dairy,1,abc,CASH",        # row 5: amount not a number
        "O4,C2,03/02/2026,beer,1,4,CASH",                    # row 6: unparseable date
        *[f"O{9 + i},C{3 + i % 4},2026-03-05 09:00:00,{['beer', 'dairy'][i % 2]},1,{5 + i},CARD" for i in range(12)],
    ]) + "\n")
    write_file(tmp_path / "customers.csv", "\n".join([
        "customer_id,age,gender,income",
        "C1,30,F,50000",
        "C1,31,F,52000",   # row 2: newer profile wins
        "C2,45,M,40000",
        "C2,45,M,40000",   # row 4: exact copy
        "C3,abc,M,1",      # row 5: age not a number
        "C4,40,X,1",       # row 6: unknown gender code
    ]) + "\n")
    config = write_file(tmp_path / "shop.yaml", """
name: dirty
shape: long
orders:
  path: orders.csv
  line_key: [order_id, category]   # a line per order and category: row 3 conflicts with row 1
customers:
  path: customers.csv
quality:
  max_quarantine_share: 0.5
  min_key_share: 0.9
model:
  k: 2
""")
    warehouse = tmp_path / "w.duckdb"
    assert materialize_graph(config, warehouse).success
    quarantine = query(warehouse, "SELECT input, source_row, column_name, raw_value, reason FROM quality.quarantine "
                                  "ORDER BY input, source_row")
    assert quarantine == [
        ("customers", 5, "age", "abc", "age 'abc' is not a number or a band"),
        ("customers", 6, "gender", "X", "gender X is not in values.gender"),
        ("orders", 3, "order_id", "O1", "conflicting duplicate of the order line in row 1 "
                                        "(same order_id and category, different values)"),
        ("orders", 4, "customer_id", None, "missing customer_id"),
        ("orders", 5, "amount", "abc", "amount is not a number"),
        ("orders", 6, "order_ts", "03/02/2026", "order_ts is not a date in orders.date_formats or ISO 8601"),
    ]
    audit = query(warehouse, "SELECT input, rows_read, rows_loaded, rows_quarantined, duplicates_removed, "
                             "exact_duplicates FROM quality.load_audit ORDER BY input")
    assert audit == [("customers", 6, 2, 2, 2, 1), ("orders", 18, 13, 4, 1, 1)]
    for _, read, loaded, quarantined, removed, _ in audit:
        assert read == loaded + quarantined + removed
    assert query(warehouse, "SELECT age, income FROM staging.customers WHERE customer_id = 'C1'") == [(31.0, 52000.0)]
    assert query(warehouse, "SELECT count(*) FROM staging.order_lines WHERE order_id = 'O1'") == [(1,)]


def test_unreadable_input_publishes_nothing(tmp_path):
    write_file(tmp_path / "orders.csv", "order_id;customer_id;order_ts;category\nO1;C1;2026-03-01;wine\n")
    config = write_file(tmp_path / "shop.yaml", "name: broken\nshape: long\norders:\n  path: orders.csv\n")
    warehouse = tmp_path / "w.duckdb"
    result = materialize_graph(config, warehouse)
    assert not result.success
    failure = result.get_step_failure_events()[0]
    assert failure.step_key == "raw__orders"
    message = failure.step_failure_data.error.cause.message
    assert "orders.csv" in message and "required column 'order_id' is missing" in message
    assert "delimiter" in message
    assert not warehouse.exists()  # nothing published
    tables = query(work_db(warehouse), "SELECT table_schema || '.' || table_name FROM information_schema.tables")
    assert ("segments.customer_segments",) not in tables


def test_schedule_time_comes_from_the_environment():
    import subprocess
    import sys

    code = ("from pipelines.definitions import defs; s = defs.resolve_schedule_def('nightly_refresh'); "
            "print(s.cron_schedule, s.execution_timezone)")
    env = {"PATH": "/usr/bin:/bin", "PERSONA_SCHEDULE_CRON": "30 3 * * 1-5", "PERSONA_SCHEDULE_TIMEZONE": "UTC"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.strip() == "30 3 * * 1-5 UTC", done.stderr
