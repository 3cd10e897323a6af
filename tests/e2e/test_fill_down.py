"""orders.fill_down on an export shaped like Shopify's orders_export.csv: one row per line item, the order-level
fields (Email, Created at with its UTC offset, Financial Status) on an order's first line only. Filled down, every
line loads with its order's customer, time and status; without it, every later line was quarantined and the run
blocked."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli import main
from pipelines.core.config import ConfigError, load_source_config
from tests.conftest import materialize_graph, query, work_db, write_file

pytestmark = pytest.mark.slow  # runs the whole asset graph

HEADER = ["Name", "Email", "Financial Status", "Created at", "Lineitem quantity", "Lineitem name", "Lineitem price",
          "Vendor"]
VENDORS = ["Acme Tea", "Brew Co", "Cup House"]
MAPPING = """  date_formats: ["%Y-%m-%d %H:%M:%S %z"]
  timezone: Asia/Shanghai
  columns:
    order_id: Name
    customer_id: Email
    status: Financial Status
    order_ts: Created at
    quantity: Lineitem quantity
    unit_price: Lineitem price
    description: Lineitem name
    category: Vendor
values:
  cancelled_statuses: [refunded, voided]
model:
  k: 2
"""


def shopify_export(path: Path) -> tuple[Path, int]:
    """40 orders of 1 to 3 lines (a refunded one every tenth); returns the file and its line count."""
    rows = []
    for order in range(40):
        status = "refunded" if order % 10 == 9 else "paid"
        for line in range(1 + order % 3):
            first = line == 0
            rows.append([f"#{1001 + order}", f"c{order % 12}@example.com" if first else "", status if first else "",
                         f"2026-0{3 + order % 4}-{10 + order % 9} 14:22:10 +0800" if first else "", str(1 + line),
                         f"Item {line}", f"{9.5 + line:.2f}", VENDORS[(order + line) % 3]])
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([HEADER, *rows])
    return write_file(path, buffer.getvalue()), len(rows)


def config(tmp_path: Path, fill_down: str) -> Path:
    return write_file(tmp_path / "shop.yaml", f"name: shopify\nshape: long\norders:\n  path: orders_export.csv\n"
                                              f"{fill_down}{MAPPING}")


def test_order_fields_on_the_first_line_only_are_filled_down(tmp_path):
    export, lines = shopify_export(tmp_path / "orders_export.csv")
    result = materialize_graph(config(tmp_path, "  fill_down: [customer_id, order_ts, status]\n"), tmp_path / "w.duckdb")
    assert result.success
    warehouse = work_db(tmp_path / "w.duckdb")
    refunded_lines = sum(1 + order % 3 for order in range(40) if order % 10 == 9)
    assert query(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined, rows_set_aside FROM quality.load_audit") \
        == [(lines, lines - refunded_lines, refunded_lines, refunded_lines)]
    # Every line of a refunded order is quarantined as such, not only its first.
    assert query(warehouse, "SELECT DISTINCT reason FROM quality.quarantine") == [("cancelled order (status refunded)",)]
    # A later line takes its order's customer and time (converted from +08:00 to the shop's zone, the same here).
    assert query(warehouse, "SELECT customer_id, order_ts::VARCHAR, quantity FROM staging.order_lines "
                            "WHERE order_id = '#1003' ORDER BY _source_row") == [
        ("c2@example.com", "2026-05-12 14:22:10", 1.0), ("c2@example.com", "2026-05-12 14:22:10", 2.0),
        ("c2@example.com", "2026-05-12 14:22:10", 3.0)]
    # The raw rows keep what the export wrote.
    assert query(warehouse, "SELECT count(*) FILTER (WHERE customer_id IS NULL OR trim(customer_id) = '') "
                            "FROM raw.orders") == [(lines - 40,)]
    assert export.is_file()


def test_without_fill_down_the_later_lines_are_quarantined_and_the_key_share_blocks(tmp_path):
    _, lines = shopify_export(tmp_path / "orders_export.csv")
    result = materialize_graph(config(tmp_path, ""), tmp_path / "w.duckdb")
    assert not result.success
    warehouse = work_db(tmp_path / "w.duckdb")
    assert query(warehouse, "SELECT count(*) FROM quality.quarantine WHERE reason LIKE 'missing customer_id%'") == [
        (lines - 40,)]


def test_persona_check_reads_the_sample_filled_down(tmp_path):
    shopify_export(tmp_path / "orders_export.csv")
    done = CliRunner().invoke(main, ["check", "--config", str(config(tmp_path, "  fill_down: [customer_id, order_ts, "
                                                                                 "status]\n"))])
    assert done.exit_code == 0, done.stderr
    assert "customer_id 100.0%" in " ".join(done.stdout.split())


@pytest.mark.parametrize(("text", "message"), [
    ("name: x\nshape: wide\norders:\n  path: o.csv\n  category_columns: [a]\n  fill_down: [customer_id]\n",
     "orders.fill_down: a blank value is filled from the same order's earlier line, so it needs order lines with an "
     "order id"),
    ("name: x\nshape: long\norders:\n  path: o.csv\n  fill_down: [customer_id]\n  columns: {order_id: null}\n",
     "orders.fill_down: a blank value is filled from the same order's earlier line, so it needs order lines with an "
     "order id"),
    ("name: x\nshape: long\norders:\n  path: o.csv\n  fill_down: [amount]\n", "orders.fill_down.0"),
])
def test_fill_down_is_refused_where_it_cannot_apply(tmp_path, text, message):
    write_file(tmp_path / "o.csv", "x\n1\n")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_source_config(write_file(tmp_path / "shop.yaml", text))
