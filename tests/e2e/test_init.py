"""`persona init` writes a config that runs (issue 22, point 1), for every layout of the export corpus and for the
seed table.

Each layout's data files (tests/fixtures/exports/<layout>/, never its shop.yaml) are copied under tmp_path and
`persona init` drafts a config from them alone. That config runs through the WHOLE asset graph and must publish;
its key mapping (order id, customer id, time, category, amount, ...: explicit or by a same-named column) must equal
the hand-written shop.yaml's; it quarantines what the hand-written config quarantines; and what init could not
know (category rules, a band nobody can read, a payment code it cannot guess) is printed as a line to decide.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from pipelines.cli import main
from pipelines.config_sniff import sniff_file
from pipelines.core.config import (
    CUSTOMER_FIELDS,
    LONG_ORDER_FIELDS,
    PRODUCT_FIELDS,
    WIDE_ORDER_FIELDS,
    load_source_config,
)
from tests.conftest import EXAMPLES, REPO_ROOT, SEED_BASKETS, materialize_graph, query
from tests.conftest import ONLINE_RETAIL as RETAIL
from tests.e2e.test_export_corpus import EXPECTED_QUARANTINE, failures

EXPORTS = REPO_ROOT / "tests" / "fixtures" / "exports"

# layout -> the files given to init: (orders, customers, products).
FILES = {
    "category_lines_with_repeats": ("orders.csv", "members.csv", None),
    "sku_lines_with_products": ("order_lines.csv", "members.csv", "products.csv"),
    "banded_demographics": ("orders.csv", "customers.csv", None),
    "monthly_income": ("orders.csv", "members.csv", None),
    "xlsx": ("orders.xlsx", "customers.xlsx", None),
    "title_row": ("sales_report.csv", "members.csv", None),
    "whitespace_separated": ("pos_report.txt", "members.tsv", None),
    "no_order_id": ("till_lines.csv", "members.csv", None),
    "no_category": ("orders.csv", "customers.csv", None),
    "float_ids": ("orders.csv", "customers.csv", None),
    "gbk_chinese": ("订单导出.csv", "会员.csv", None),
    "description_rules": ("invoices.csv", None, None),
}
# What init prints per layout besides the `wrote` and `next` lines: the start of each line, in order.
PRINTED = {
    "category_lines_with_repeats": [],
    "sku_lines_with_products": ["not mapped: products: products.csv column 'product_name' not mapped"],
    "banded_demographics": ["to decide: values.bands.age: customers.csv Age Group value 'Prefer not to say'"],
    "monthly_income": ["to decide: values.bands.income: members.csv 月收入 value '保密'"],
    "xlsx": [],
    "title_row": [],
    "whitespace_separated": ["to decide: values.payment_aliases: pos_report.txt PAY value 'GIFTCARD'"],
    "no_order_id": ["to decide: orders.columns.order_id: till_lines.csv has no order id column; declared absent"],
    "no_category": ["to decide: orders.columns.category: orders.csv has no category column; declared absent"],
    "float_ids": ["not mapped: orders: orders.csv column '(unnamed)' not mapped",
                  "not mapped: customers: customers.csv column '(unnamed)' not mapped"],
    "gbk_chinese": [],
    # The hand-written config's category rules and its `exact_duplicates: keep` are the shop's knowledge.
    "description_rules": [
        "not mapped: orders: invoices.csv column 'Country' not mapped",
        "to decide: orders.columns.category: invoices.csv has no category column; declared absent (null), segments "
        "use no categories; write orders.category_rules on Description",
        "to decide: orders.exact_duplicates: 1 row(s) of invoices.csv repeat an earlier row in every column"],
}
SECTION_FIELDS = {"orders": LONG_ORDER_FIELDS, "customers": CUSTOMER_FIELDS, "products": PRODUCT_FIELDS}

pytestmark = pytest.mark.slow  # every layout runs the whole asset graph


def run_init(folder: Path, orders: str, customers: str | None = None, products: str | None = None,
             out: str = "shop.yaml") -> list[str]:
    """`persona init` in the folder (in-process); its printed lines."""
    args = ["init", "--orders", str(folder / orders), "--out", str(folder / out)]
    if customers:
        args += ["--customers", str(folder / customers)]
    if products:
        args += ["--products", str(folder / products)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"wrote {folder / out}: shape ") and lines[-1].startswith("next: review")
    return lines[1:-1]


def effective_mapping(config: dict, folder: Path, shape: str = "long") -> dict[str, dict[str, str]]:
    """section -> contract field -> the source column it reads: mapped, or the same-named column the file has.
    Fields declared absent (null) or without a column are left out."""
    mapping = {}
    for key, fields in SECTION_FIELDS.items():
        section = config.get(key)
        if section is None:
            continue
        if key == "orders" and shape == "wide":
            fields = WIDE_ORDER_FIELDS
        header = sniff_file(folder / section["path"]).columns
        columns = section.get("columns", {})
        mapping[key] = {f: columns.get(f, f) for f in fields
                        if columns.get(f, f if f in header else None) is not None}
    return mapping


@pytest.fixture(scope="module")
def instance():
    with dg.DagsterInstance.ephemeral() as shared:
        yield shared


def publish(folder: Path, instance) -> dg.ExecuteInProcessResult:
    warehouse = folder / "warehouse" / "warehouse.duckdb"
    result = materialize_graph(folder / "shop.yaml", warehouse, instance=instance)
    assert result.success, failures(result)
    assert warehouse.is_symlink() and warehouse.exists()
    assert query(warehouse, "SELECT run_id FROM meta.publication") == [(result.run_id,)]
    [(staged, segmented)] = query(warehouse, "SELECT (SELECT count(*) FROM staging.customers), "
                                             "(SELECT count(*) FROM segments.customer_segments)")
    assert segmented == staged > 0
    return result


@pytest.mark.parametrize("layout", list(FILES))
def test_init_config_runs_like_the_hand_written_one(layout, tmp_path, instance):
    folder = tmp_path / layout
    shutil.copytree(EXPORTS / layout, folder, ignore=shutil.ignore_patterns("shop.yaml", "__pycache__"))
    printed = run_init(folder, *FILES[layout])
    assert len(printed) == len(PRINTED[layout]), printed
    for line, start in zip(printed, PRINTED[layout]):
        assert line.startswith(start), (line, start)

    load_source_config(folder / "shop.yaml")
    drafted = yaml.safe_load((folder / "shop.yaml").read_text(encoding="utf-8"))
    written = yaml.safe_load((EXPORTS / layout / "shop.yaml").read_text(encoding="utf-8"))
    assert drafted["shape"] == written["shape"] == "long"
    assert effective_mapping(drafted, folder) == effective_mapping(written, EXPORTS / layout)
    # How the files are written: as the hand-written config says.
    for key in ("orders", "customers", "products"):
        if key in written:
            for setting in ("encoding", "delimiter", "skip_rows", "date_formats"):
                expected = written[key].get(setting)
                if expected is not None and not (setting == "encoding" and expected == "utf-8"):
                    got = drafted[key].get(setting)
                    assert got == expected, (key, setting, got, expected)
    # The values init reads off the data, where the layout needs them.
    values = drafted.get("values", {})
    for key in ("income_period", "home_owner", "payment_aliases"):
        if key in written.get("values", {}):
            assert values[key] == written["values"][key], key
    assert drafted.get("privacy", {}) == written.get("privacy", {})

    started = time.perf_counter()
    result = publish(folder, instance)
    warehouse = folder / "warehouse" / "warehouse.duckdb"
    # The same rows quarantined, for the same reasons, as with the hand-written config.
    quarantine = query(warehouse, "SELECT input, reason, count(*) FROM quality.quarantine GROUP BY ALL")
    assert {(i, r): n for i, r, n in quarantine} == EXPECTED_QUARANTINE[layout]
    assert result.run_id and time.perf_counter() - started < 120


def test_init_on_the_seed_table_runs_wide(tmp_path, instance):
    folder = tmp_path / "seed"
    folder.mkdir()
    shutil.copyfile(SEED_BASKETS, folder / SEED_BASKETS.name)
    assert run_init(folder, SEED_BASKETS.name) == []
    drafted = yaml.safe_load((folder / "shop.yaml").read_text(encoding="utf-8"))
    example = yaml.safe_load((EXAMPLES / "baskets.yaml").read_text(encoding="utf-8"))
    assert drafted["shape"] == "wide"
    assert drafted["orders"]["columns"] == example["orders"]["columns"]
    assert drafted["orders"]["category_columns"] == example["orders"]["category_columns"]
    assert drafted["orders"]["flag_tokens"] == example["orders"]["flag_tokens"]
    publish(folder, instance)
    warehouse = folder / "warehouse" / "warehouse.duckdb"
    # 1,000 baskets of 999 customers (cardid 37917 twice), every category flag a category.
    assert query(warehouse, "SELECT count(*), count(DISTINCT customer_id) FROM staging.orders") == [(1000, 999)]
    assert query(warehouse, "SELECT count(DISTINCT category) FROM staging.order_lines") == [(11,)]


def test_init_maps_the_online_retail_export(tmp_path):
    """The real export: mapped as examples/online_retail.yaml maps it; what only the shop knows is printed (its
    category rules, identical rows as real scans, the share of rows without a customer id)."""
    if not RETAIL.is_file():
        pytest.skip(f"{RETAIL} is not there")
    printed = run_init(tmp_path, str(RETAIL.resolve()))
    drafted = yaml.safe_load((tmp_path / "shop.yaml").read_text(encoding="utf-8"))
    example = yaml.safe_load((EXAMPLES / "online_retail.yaml").read_text(encoding="utf-8"))
    assert {f: c for f, c in drafted["orders"]["columns"].items() if c is not None} == example["orders"]["columns"]
    assert drafted["orders"]["columns"]["category"] is None
    assert Path(drafted["orders"]["path"]) == RETAIL.resolve() or (tmp_path / drafted["orders"]["path"]).resolve(
    ) == RETAIL.resolve()
    assert printed[0] == "not mapped: orders: online_retail_II_2009_2010.parquet column 'Country' not mapped " \
                         "(no contract field matches)"
    assert any(line.startswith("to decide: orders.columns.category:") and "category_rules on Description" in line
               for line in printed)
    assert any(line.startswith("to decide: orders.exact_duplicates:") for line in printed)
    assert any(line.startswith("to decide: quality:") and "have no Customer ID" in line for line in printed)
    load_source_config(tmp_path / "shop.yaml")
