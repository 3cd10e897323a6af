"""Export corpus (issue 18, point 11): a new shop's data needs one YAML file and no code.

Twelve exports shaped like real ones (tests/fixtures/exports/<layout>/: data files and shop.yaml, written by
make_exports.py there) each run through the WHOLE asset graph from a copy of their folder, from the config alone.
Every case must publish; the load audit identity rows_read = rows_loaded + rows_quarantined + duplicates_removed
holds for every file; the planted bad rows end in quarantine with exactly the expected reasons; and one fact
particular to the layout holds (the repeats stay lines, the product's category reaches the lines, bands read as
midpoints, ...).

The wall time of every run is printed at the end of the module (and kept as the test's `wall_seconds` property).
"""

from __future__ import annotations

import csv
import re
import shlex
import shutil
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from tests.conftest import REPO_ROOT, materialize_graph, query

EXPORTS = REPO_ROOT / "tests" / "fixtures" / "exports"
RETURN_QUANTITY = "return line (negative quantity); returns are kept out of purchase features"
RETURN_AMOUNT = "return line (negative amount); returns are kept out of purchase features"
RETURN_LINE = RETURN_QUANTITY  # quantity and amount both negative: the first negative column names the return

# (input, reason) -> rows quarantined, per layout: the bad rows make_exports.py plants.
EXPECTED_QUARANTINE: dict[str, dict[tuple[str, str], int]] = {
    "category_lines_with_repeats": {
        ("orders", "missing customer_id"): 1,
        ("orders", RETURN_LINE): 2,
        ("orders", "amount is not a number"): 1,
    },
    "sku_lines_with_products": {
        ("orders", "missing customer_id"): 1,
        # The line has no category of its own and its product gives none: the category is missing too.
        ("orders", "sku 6999000000017 is not in the product table (products.path)"): 1,
        ("orders", "sku 6999000000024 is not in the product table (products.path)"): 1,
    },
    "banded_demographics": {
        ("customers", "age 'Prefer not to say' is not a number or a band"): 1,
        ("orders", "cancelled order (status Cancelled)"): 1,
        ("orders", "missing customer_id"): 1,
    },
    "monthly_income": {
        ("customers", "income '保密' is not a number or a band"): 1,
        ("orders", "missing customer_id"): 1,
        ("orders", "missing order_ts"): 1,
    },
    "xlsx": {
        ("orders", "missing customer_id"): 1,
        ("orders", RETURN_AMOUNT): 1,
    },
    "title_row": {
        ("orders", "order_ts is not a date in orders.date_formats or ISO 8601"): 1,
        ("orders", "quantity is not a number"): 1,
    },
    "whitespace_separated": {
        ("orders", "quantity is 0"): 1,
        ("orders", "payment_method GIFTCARD is not in values.payment_methods"): 1,
    },
    "no_order_id": {
        ("orders", "missing customer_id"): 1,
        ("orders", RETURN_LINE): 1,
    },
    "no_category": {
        ("orders", "cancelled order (status VOID)"): 1,
        ("orders", "missing customer_id"): 1,
    },
    "float_ids": {
        ("orders", "missing customer_id"): 1,
        ("orders", RETURN_QUANTITY): 1,
    },
    "gbk_chinese": {
        ("orders", "cancelled order (status 已取消)"): 1,
        ("orders", "cancelled order (status 交易关闭)"): 1,
        ("orders", "cancelled order (status 已退款)"): 1,
        ("orders", "missing customer_id"): 1,
    },
    "description_rules": {
        ("orders", "missing customer_id"): 1,
        ("orders", RETURN_QUANTITY): 2,
    },
}
LAYOUTS = list(EXPECTED_QUARANTINE)

pytestmark = pytest.mark.slow  # every case runs the whole asset graph


# --------------------------------------------------------------------------------------------------- helpers


class Run:
    """One layout's run: its folder (a copy of the fixture), the published warehouse and the result."""

    def __init__(self, folder: Path, result: dg.ExecuteInProcessResult) -> None:
        self.folder = folder
        self.published = folder / "warehouse" / "warehouse.duckdb"
        self.result = result

    def sql(self, text: str, params: list | None = None) -> list[tuple]:
        return query(self.published, text, params)

    def quarantined(self, input_name: str = "orders") -> set[int]:
        return {row for (row,) in self.sql("SELECT source_row FROM quality.quarantine WHERE input = ?", [input_name])}

    def loaded(self, rows: list[dict], input_name: str = "orders") -> list[dict]:
        """The file's data rows (row 1 is the first below the header) that were not quarantined."""
        bad = self.quarantined(input_name)
        return [row for number, row in enumerate(rows, start=1) if number not in bad]


def csv_rows(path: Path, encoding: str = "utf-8", skip: int = 0, delimiter: str = ",") -> list[dict]:
    with path.open(encoding=encoding, newline="") as handle:
        for _ in range(skip):
            handle.readline()
        return list(csv.DictReader(handle, delimiter=delimiter))


def failures(result: dg.ExecuteInProcessResult) -> list[str]:
    steps = [f"{e.step_key}: {(e.step_failure_data.error.cause or e.step_failure_data.error).message.strip()}"
             for e in result.get_step_failure_events()]
    checks = [f"{e.check_name}: {e.description}" for e in result.get_asset_check_evaluations()
              if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    return steps + checks


@pytest.fixture(scope="module")
def instance():
    """One Dagster instance for every run of the module (an ephemeral one each would be rebuilt per run)."""
    with dg.DagsterInstance.ephemeral() as shared:
        yield shared


@pytest.fixture(scope="module")
def timings(request):
    """layout -> wall seconds of its run; printed when the module is done."""
    walls: dict[str, float] = {}
    started = time.perf_counter()
    yield walls
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not walls:
        return
    with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
        reporter.write_line("")
        reporter.write_line(f"export corpus: {len(walls)} runs, {sum(walls.values()):.1f} s of runs, "
                            f"{time.perf_counter() - started:.1f} s for the module")
        for layout, wall in walls.items():
            reporter.write_line(f"  {layout:30s} {wall:6.1f} s")


@pytest.fixture
def run(request, tmp_path, instance, timings, record_property) -> Run:
    """The layout's folder copied under tmp_path (never written in tests/fixtures) and run from its shop.yaml."""
    layout = request.param
    folder = tmp_path / layout
    shutil.copytree(EXPORTS / layout, folder, ignore=shutil.ignore_patterns("__pycache__"))
    started = time.perf_counter()
    result = materialize_graph(folder / "shop.yaml", folder / "warehouse" / "warehouse.duckdb", instance=instance)
    timings[layout] = time.perf_counter() - started
    record_property("wall_seconds", round(timings[layout], 1))
    return Run(folder, result)


# ------------------------------------------------------------------------------------------------ the test


@pytest.mark.parametrize("run", LAYOUTS, indirect=True)
def test_export_publishes_from_its_config(run):
    layout = run.folder.name
    assert run.result.success, failures(run.result)

    # Published: the public warehouse (a symlink into the current version) holds the segments, and the run that
    # published it is this one; the report was published with it.
    assert run.published.is_symlink() and run.published.exists()
    assert run.sql("SELECT run_id FROM meta.publication") == [(run.result.run_id,)]
    [(staged, segmented)] = run.sql("SELECT (SELECT count(*) FROM staging.customers), "
                                    "(SELECT count(*) FROM segments.customer_segments)")
    assert segmented == staged > 0
    for language in ("zh", "en"):
        assert (run.published.parent / "reports" / f"report_{language}.html").is_file()

    # The load audit covers every data file of the folder, and its identity holds for each.
    audit = run.sql("SELECT run_id, parse_filename(source_file), rows_read, rows_loaded, rows_quarantined, "
                    "duplicates_removed FROM quality.load_audit")
    data_files = {p.name for p in run.folder.iterdir() if p.is_file() and p.name != "shop.yaml"}
    assert {row[1] for row in audit} == data_files
    for run_id, name, read, loaded, quarantined, removed in audit:
        assert run_id == run.result.run_id
        assert read == loaded + quarantined + removed, f"audit identity broken for {name}"
        assert read > 0

    quarantine = run.sql("SELECT input, reason, count(*) FROM quality.quarantine GROUP BY ALL")
    assert {(input_name, reason): n for input_name, reason, n in quarantine} == EXPECTED_QUARANTINE[layout]
    [(quarantined,)] = run.sql("SELECT sum(rows_quarantined) FROM quality.load_audit")
    assert quarantined == sum(EXPECTED_QUARANTINE[layout].values())

    LAYOUT_FACTS[layout](run)


# ---------------------------------------------------------------------------------- one fact per layout


def category_lines_with_repeats(run: Run) -> None:
    """Every row is a line: the (order, category) repeats of the file are repeats in staging too."""
    rows = csv_rows(run.folder / "orders.csv", encoding="utf-8-sig")
    loaded = run.loaded(rows)
    assert run.sql("SELECT count(*), sum(quantity) FROM staging.order_lines") == [
        (len(rows) - 4, sum(float(r["购买数量"]) for r in loaded))]
    repeats = Counter((r["订单编号"], r["商品类目"]) for r in loaded)
    repeated = sum(1 for n in repeats.values() if n > 1)
    assert repeated > 50
    assert run.sql("SELECT count(*) FROM (SELECT order_id, category FROM staging.order_lines GROUP BY ALL "
                   "HAVING count(*) > 1)") == [(repeated,)]
    assert run.sql("SELECT count(*) FROM quality.removed_duplicates") == [(0,)]
    # An order's n_lines counts its repeated categories.
    assert run.sql("SELECT sum(n_lines) FROM staging.orders") == [(len(loaded),)]
    # The member list's four members who never ordered are staged with their profile (and segmented).
    assert run.sql("SELECT count(*), count(*) FILTER (WHERE customer_id NOT IN "
                   "(SELECT customer_id FROM staging.orders)) FROM staging.customers") == [(114, 4)]


def sku_lines_with_products(run: Run) -> None:
    """Lines take the category of their product; a line without an amount is priced from the product table."""
    products = {row["sku"]: row for row in csv_rows(run.folder / "products.csv")}  # the later row of a sku wins
    lines = run.sql("SELECT sku, category, quantity, amount, _source_row FROM staging.order_lines")
    assert len(lines) == 906
    assert all(category == products[sku]["category"] for sku, category, *_ in lines)
    rows = csv_rows(run.folder / "order_lines.csv")
    unpriced = [(sku, quantity, amount) for sku, _, quantity, amount, source_row in lines
                if rows[source_row - 1]["line_amount"] == ""]
    assert unpriced
    for sku, quantity, amount in unpriced:
        assert amount == pytest.approx(quantity * float(products[sku]["unit_price"]))
    # The product listed twice (a price change) is one product; the exported-twice line is one line.
    assert run.sql("SELECT count(*) FROM staging.products") == [(len(products),)]
    assert run.sql("SELECT input, kind, count(*) FROM quality.removed_duplicates GROUP BY ALL ORDER BY 1") == [
        ("orders", "exact", 1), ("products", "conflict_superseded", 1)]


BAND_AGES = {"18-24": 21, "25-34": 29.5, "35-44": 39.5, "45-54": 49.5, "55-64": 59.5, "65+": 70}
BAND_INCOMES = {"Under 15K": 11_250, "15-24K": 19_500, "25-34K": 29_500, "35-49K": 42_000, "50-74K": 62_000,
                "75-99K": 87_000, "100-149K": 124_500, "150-249K": 199_500, "250K+": 312_500}


def banded_demographics(run: Run) -> None:
    """Age and income bands read as midpoints; open bands by the one rule (65+ -> 70, 250K+ -> 312,500)."""
    staged = {cid: (age, income) for cid, age, income in run.sql("SELECT customer_id, age, income "
                                                                 "FROM staging.customers")}
    customers = run.loaded(csv_rows(run.folder / "customers.csv"), "customers")
    assert len(customers) == 119
    assert {r["Age Group"] for r in customers} == set(BAND_AGES)
    assert {"Under 15K", "35-49K", "250K+"} <= {r["Household Income"] for r in customers}
    for row in customers:
        assert staged[row["Customer ID"]] == (BAND_AGES[row["Age Group"]], BAND_INCOMES[row["Household Income"]])


MONTHLY_AGES = {"18-24岁": 21, "25-29岁": 27, "30-39岁": 34.5, "40-49岁": 44.5, "50岁以上": 55}
MONTHLY_INCOMES = {"5000以下": 3_750, "5000-1万": 7_500, "1万-2万": 15_000, "2万-5万": 35_000, "5万以上": 62_500}


def monthly_income(run: Run) -> None:
    """A monthly income band is read as its midpoint and made yearly (x 12)."""
    staged = {cid: (age, income) for cid, age, income in run.sql("SELECT customer_id, age, income "
                                                                 "FROM staging.customers")}
    members = run.loaded(csv_rows(run.folder / "members.csv"), "customers")
    assert {"5000以下", "1万-2万", "5万以上"} <= {r["月收入"] for r in members}
    for row in members:
        assert staged[row["会员ID"]] == (MONTHLY_AGES[row["年龄段"]], MONTHLY_INCOMES[row["月收入"]] * 12)
    assert staged["000003"][1] == 45_000  # "5000以下" a month


def xlsx(run: Run) -> None:
    """Numeric ids and Excel datetimes of the first sheet arrive as the file has them."""
    frame = pl.read_excel(run.folder / "orders.xlsx", engine="calamine")  # the first sheet
    rows = run.loaded(frame.to_dicts())
    assert len(rows) == frame.height - 2
    staged = run.sql("SELECT order_id, customer_id, order_ts, amount, _source_row FROM staging.order_lines "
                     "ORDER BY _source_row")
    assert [(o, c, ts, a) for o, c, ts, a, _ in staged] == [
        (str(r["订单号"]), str(r["客户编号"]), r["下单时间"], r["金额"]) for r in rows]
    # The customer workbook's numbers join the order workbook's: every ordering customer has a profile.
    assert run.sql("SELECT count(*) FROM staging.customers WHERE age IS NULL OR income IS NULL") == [(0,)]


def title_row(run: Run) -> None:
    """Title lines are cut off: the header is found, and row numbers count from it."""
    path = run.folder / "sales_report.csv"
    rows = csv_rows(path, skip=2)
    loaded = run.loaded(rows)
    assert run.sql("SELECT count(*), count(DISTINCT order_id), min(order_id), max(order_id) "
                   "FROM staging.order_lines") == [
        (len(rows) - 2, len({r["order_no"] for r in loaded}), min(r["order_no"] for r in loaded),
         max(r["order_no"] for r in loaded))]
    planted = sorted(n for n, r in enumerate(rows, start=1) if r["order_no"] in ("T9000001", "T9000002"))
    assert sorted(run.quarantined()) == planted
    assert run.sql("SELECT DISTINCT channel FROM staging.order_lines ORDER BY 1") == [
        ("mini program",), ("online",), ("store",)]
    assert run.sql("SELECT count(*) FROM staging.customers WHERE income IS NULL") == [(0,)]


def whitespace_separated(run: Run) -> None:
    """Runs of spaces and tabs separate the fields; a quoted timestamp keeps its space."""
    lines = (run.folder / "pos_report.txt").read_text(encoding="utf-8").splitlines()
    header = shlex.split(lines[0])
    rows = run.loaded([dict(zip(header, shlex.split(line))) for line in lines[1:]])
    [(count, total, first_ts)] = run.sql("SELECT count(*), sum(amount), arg_min(order_ts, _source_row) "
                                         "FROM staging.order_lines")
    assert count == len(rows) == len(lines) - 3
    assert total == pytest.approx(sum(float(r["AMOUNT"]) for r in rows))
    assert first_ts == datetime.fromisoformat(rows[0]["ORDER_TIME"])
    assert run.sql("SELECT count(*) FROM staging.customers WHERE city IS NULL") == [(0,)]


def no_order_id(run: Run) -> None:
    """An order is one member card's lines at one timestamp."""
    rows = run.loaded(csv_rows(run.folder / "till_lines.csv"))
    purchases = {(r["member_card"], r["txn_time"]) for r in rows}
    assert run.sql("SELECT count(*), sum(n_lines) FROM staging.orders") == [(len(purchases), len(rows))]
    assert run.sql("SELECT count(*) FROM staging.orders "
                   "WHERE order_id <> customer_id || '@' || strftime(order_ts, '%Y-%m-%d %H:%M:%S')") == [(0,)]


def no_category(run: Run) -> None:
    """No category anywhere, and the report says why its category sections are absent."""
    assert run.sql("SELECT count(*) > 0, count(category) FROM staging.order_lines") == [(True, 0)]
    for language in ("zh", "en"):
        page = (run.published.parent / "reports" / f"report_{language}.html").read_text(encoding="utf-8")
        absence = re.search(r'<section id="no_categories">(.*?)</section>', page, re.S)
        assert absence and "orders.columns.category" in absence.group(1), language


def float_ids(run: Run) -> None:
    """Float-typed ids (14194.0) are the integers' text in both files, so orders find their profiles."""
    rows = run.loaded(csv_rows(run.folder / "orders.csv"))
    as_int = {str(int(float(r["customer_id"]))) for r in rows}
    assert {c for (c,) in run.sql("SELECT DISTINCT customer_id FROM staging.orders")} == as_int
    assert {o for (o,) in run.sql("SELECT DISTINCT order_id FROM staging.orders")} == {
        str(int(float(r["order_id"]))) for r in rows}
    assert run.sql("SELECT count(*), count(age), count(income) FROM staging.customers") == [(120, 120, 120)]
    # The pandas index column is read and ignored.
    assert run.sql("SELECT count(*) FROM meta.source_files WHERE len(ignored_columns) = 1") == [(2,)]


GBK_PAYMENTS = {"微信支付": "MOBILE", "支付宝": "MOBILE", "银联": "CARD", "现金": "CASH", "货到付款": "CASH"}


def gbk_chinese(run: Run) -> None:
    """GBK read; Chinese payment names map onto the built-in codes line by line."""
    rows = csv_rows(run.folder / "订单导出.csv", encoding="gbk")
    assert {r["支付方式"] for r in rows} == set(GBK_PAYMENTS)
    staged = run.sql("SELECT _source_row, payment_method, category FROM staging.order_lines")
    assert len(staged) == len(rows) - 4
    for source_row, payment, category in staged:
        assert (payment, category) == (GBK_PAYMENTS[rows[source_row - 1]["支付方式"]], rows[source_row - 1]["品类"])


def description_rules(run: Run) -> None:
    """Categories come from the first matching rule, `other` when none matches; kept identical scans stay lines."""
    config = yaml.safe_load((run.folder / "shop.yaml").read_text(encoding="utf-8"))
    rules = [(re.compile(r["match"] if isinstance(r["match"], str) else "|".join(map(re.escape, r["match"])),
                         re.IGNORECASE), r["category"]) for r in config["orders"]["category_rules"]]
    rows = csv_rows(run.folder / "invoices.csv")
    staged = run.sql("SELECT _source_row, category, amount FROM staging.order_lines")
    assert len(staged) == len(rows) - 3
    for source_row, category, amount in staged:
        row = rows[source_row - 1]
        assert category == next((name for pattern, name in rules if pattern.search(row["Description"])), "other")
        assert amount == pytest.approx(float(row["Quantity"]) * float(row["UnitPrice"]))
    assert {c for (c,) in run.sql("SELECT DISTINCT category FROM staging.order_lines")} == {
        "fees", "candles", "bags", "kitchen", "tableware", "other"}
    assert run.sql("SELECT count(*) FROM quality.removed_duplicates") == [(0,)]


LAYOUT_FACTS = {
    "category_lines_with_repeats": category_lines_with_repeats,
    "sku_lines_with_products": sku_lines_with_products,
    "banded_demographics": banded_demographics,
    "monthly_income": monthly_income,
    "xlsx": xlsx,
    "title_row": title_row,
    "whitespace_separated": whitespace_separated,
    "no_order_id": no_order_id,
    "no_category": no_category,
    "float_ids": float_ids,
    "gbk_chinese": gbk_chinese,
    "description_rules": description_rules,
}
