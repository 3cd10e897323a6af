"""`persona init` on small files shaped like two exports of a new-user trial: a Chinese supermarket POS's sales
detail workbook (销售明细: a title row, a 统计日期 row and a blank row above the header, bills numbered per store and
per day) and Square's "Item Sales" CSV (Qty and Count, Gross and Net Sales, a Token per line). Each test asserts
what init writes and prints, and for the workbook that `persona check` passes on what init wrote."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import xlsxwriter
import yaml
from click.testing import CliRunner

from pipelines.cli import main
from pipelines.config_sniff import csv_text
from tests.unit.test_config_init import init_ok

# ------------------------------------------------------------------------------------ a POS's sales workbook

SALES_HEADER = ["单据号", "销售时间", "会员卡号", "会员姓名", "商品编码", "商品名称", "类别名称", "数量", "售价", "金额",
                "优惠金额", "实收金额", "付款方式", "收银员", "门店"]
SALES_GOODS = [("6928584486348", "香蕉", "蔬菜水果", 6.5), ("6983072051326", "西红柿", "蔬菜水果", 5.8),
               ("6979703974980", "鸡蛋30枚", "肉禽蛋", 22.5), ("6912727969698", "青岛啤酒", "酒水饮料", 4.5),
               ("6901234567892", "婴儿湿巾", "母婴用品", 19.9)]
SALES_STORES = ["01 中山路店", "02 滨江店"]
SALES_MEMBERS = [("13270441360", "王洋娜"), ("18433133743", "徐明英"), ("19581534850", "徐强伟"),
                 ("15648652660", "李娟"), ("13924952122", "赵磊")]


def sales_workbook(path: Path, bills: int = 12, stores: int = 1, blank_row: bool = True) -> Path:
    """The workbook as the POS writes it: 销售明细报表, then 统计日期 / 门店 / 制表人 on one row, then (blank_row) an
    empty row, then the header. One to three lines per bill; each store numbers its bills per day from 0001, so
    with two stores the same 单据号 is two bills. Times are Excel datetimes, as the POS writes them."""
    with xlsxwriter.Workbook(path) as workbook:
        sheet = workbook.add_worksheet("销售明细")
        when_format = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        sheet.write_row(0, 0, ["销售明细报表"])
        sheet.write(1, 0, "统计日期：2026-06-01 至 2026-11-30")
        sheet.write(1, 3, "门店：全部门店")
        sheet.write(1, 6, "制表人：admin")
        row = 3 if blank_row else 2
        sheet.write_row(row, 0, SALES_HEADER)
        for store in range(stores):
            for i in range(bills):
                when = dt.datetime(2026, 6, 1 + i // 4, 7 + i % 12, (7 * i + 13 * store) % 60, 50)
                bill = f"{when:%Y%m%d}{i % 4 + 1:04d}"
                card, name = SALES_MEMBERS[(i + store) % len(SALES_MEMBERS)]
                for j in range(1 + i % 3):
                    code, goods, category, price = SALES_GOODS[(i + j) % len(SALES_GOODS)]
                    quantity = j + 1
                    amount = round(price * quantity, 2)
                    row += 1
                    sheet.write_row(row, 0, [bill])
                    sheet.write_datetime(row, 1, when, when_format)
                    sheet.write_row(row, 2, [card, name, code, goods, category, quantity, price, amount, 0, amount,
                                             ("微信", "支付宝", "现金")[i % 3], "001 张敏", SALES_STORES[store]])
    return path


def check(config: Path):
    return CliRunner().invoke(main, ["check", "--config", str(config)])


def test_a_sales_workbook_with_a_blank_row_above_the_header(tmp_path):
    # The header is on sheet row 4, below a title row, a 统计日期 row and a blank row: init wrote skip_rows 2 (it
    # counted the rows that hold something) and the reader, which counts the blank row, took the 统计日期 row for
    # the header: every column was __UNNAMED__ and nothing was mapped.
    book = sales_workbook(tmp_path / "销售明细_202606-202611.xlsx")
    config, printed = init_ok(tmp_path, book)
    orders = config["orders"]
    assert orders["skip_rows"] == 3
    assert orders["columns"] == {
        "order_id": "单据号", "customer_id": "会员卡号", "order_ts": "销售时间", "category": "类别名称", "quantity": "数量",
        "amount": "实收金额", "unit_price": "售价", "payment_method": "付款方式", "sku": "商品编码",
        "description": "商品名称"}
    assert orders["date_formats"] == ["%Y-%m-%d %H:%M:%S"]
    assert config["privacy"] == {"pii_columns": {"会员姓名": "drop"}}
    text = (tmp_path / "shop.yaml").read_text(encoding="utf-8")
    assert ("2 title line(s) and 1 blank line(s) above the header ('销售明细报表'; '统计日期：2026-06-01 至 2026-11-30 "
            "门店：全部门店 制表人')") in text
    assert "  skip_rows: 3                               # title lines and blank lines above the header\n" in text
    assert not [line for line in printed if "__UNNAMED__" in line]
    # What init wrote is what the reader needs: a dry run reads the rows below the header and passes.
    done = check(tmp_path / "shop.yaml")
    assert done.exit_code == 0, done.output
    assert "Result: a run would pass on this sample" in done.stdout
    # The same workbook without the blank row: two rows above the header.
    config, _ = init_ok(tmp_path, sales_workbook(tmp_path / "noblank.xlsx", blank_row=False), "--force")
    assert config["orders"]["skip_rows"] == 2 and config["orders"]["columns"]["customer_id"] == "会员卡号"
    assert "title line(s) above the header" in (tmp_path / "shop.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load((tmp_path / "shop.yaml").read_text(encoding="utf-8"))["orders"]["path"] == "noblank.xlsx"


@pytest.mark.parametrize("bill", ["单据号", "单据编号", "小票号", "流水号"])
def test_a_pos_bill_number_is_the_order_id(tmp_path, bill):
    # 单据号 (the bill number of most Chinese POS systems) was "no contract field matches" and the order id was
    # declared absent (an order taken as one customer's lines at one timestamp): 单号 is no part of 单据号.
    orders = tmp_path / "销售明细.csv"
    orders.write_text(f"{bill},销售时间,会员卡号,商品名称,实收金额\n"
                      "202606010001,2026-06-01 07:05:50,13270441360,香蕉,10.27\n"
                      "202606010001,2026-06-01 07:05:50,13270441360,西红柿,8.20\n"
                      "202606010002,2026-06-01 07:24:41,18433133743,黄瓜,8.78\n", encoding="utf-8")
    config, printed = init_ok(tmp_path, orders)
    assert config["orders"]["columns"] == {"order_id": bill, "customer_id": "会员卡号", "order_ts": "销售时间",
                                           "category": None, "amount": "实收金额", "description": "商品名称"}
    assert f"    order_id: {bill}" in (tmp_path / "shop.yaml").read_text(encoding="utf-8")
    assert not [line for line in printed if "order_id" in line]


def test_bills_numbered_per_store_and_day_are_made_unique_within_the_store(tmp_path):
    # Two stores number their bills per day from 0001: the same 单据号 in both is two bills.
    book = sales_workbook(tmp_path / "销售明细_202606-202611.xlsx", stores=2)
    config, _ = init_ok(tmp_path, book)
    assert config["orders"]["columns"]["order_id"] == "单据号"
    assert config["orders"]["order_id_within"] == ["门店"]
    assert "  order_id_within: [门店]                    # 12 of the 12 sampled 单据号 values occur in more than one 门店: " \
           "tickets numbered per store, made unique as 门店/ticket\n" in (tmp_path / "shop.yaml").read_text(
               encoding="utf-8")
    done = check(tmp_path / "shop.yaml")
    assert done.exit_code == 0, done.output


# --------------------------------------------------------------------------------------- Square's Item Sales

SQUARE_HEADER = ["Date", "Time", "Time Zone", "Category", "Item", "Qty", "Price Point Name", "SKU",
                 "Modifiers Applied", "Gross Sales", "Discounts", "Net Sales", "Tax", "Transaction ID", "Payment ID",
                 "Device Name", "Notes", "Details", "Event Type", "Location", "Dining Option", "Customer ID",
                 "Customer Name", "Customer Reference ID", "Unit", "Count", "Itemization Type", "Commission",
                 "Employee", "Token", "Channel", "Card Brand"]
SQUARE_MENU = [("Coffee", "Latte", "C00-100", 5.25), ("Coffee", "Cappuccino", "C02-102", 4.95),
               ("Pastry", "Croissant", "P08-100", 3.95), ("Coffee Beans", "House Blend 12oz", "CB14-100", 16.00),
               ("Catering", "Sandwich Platter", "C24-102", 89.00)]
SQUARE_CUSTOMERS = [("AY192T4G5JU6DMHFXPVZTA0RHY", "Ethan Smith"), ("Z6WAD2T3HI35Q6QGWBU079LWBR", "Harper Patel"),
                    ("Q0M1PZ7K3J8X5VB2NC4T6R9W0S", "Mia Chen")]


def money(value: float) -> str:
    return f"{'-' if value < 0 else ''}${abs(value):,.2f}"


def square_export(path: Path, transactions: int = 12, twin_every: int = 0) -> Path:
    """Square's Item Sales CSV: one row per item line, Qty the quantity and Count 1 on every row (a line, not a
    quantity), Gross Sales before discounts and Net Sales after them (every fourth line a dollar off), and a Token
    of its own on every row. With twin_every, every twin_every-th transaction rings its first item twice: two rows
    alike in every column but Token."""
    rows = [SQUARE_HEADER]
    token = 0
    for k in range(transactions):
        day, transaction = f"2026-10-{28 - k // 4:02d}", f"{k:02d}HQbJyqZkSiT91EJ7Ny1E"
        customer, name = SQUARE_CUSTOMERS[k % len(SQUARE_CUSTOMERS)]
        lines = [SQUARE_MENU[(k + j) % len(SQUARE_MENU)] + (1 + (k + j) % 3, -1.0 if (k + j) % 4 == 3 else 0.0)
                 for j in range(1 + k % 3)]
        if twin_every and k % twin_every == 0:
            lines.insert(1, lines[0])
        for category, item, sku, price, quantity, discount in lines:
            gross = price * quantity
            token += 1
            rows.append([day, f"{17 - k % 8:02d}:{k % 60:02d}:10", "Pacific Time (US & Canada)", category, item,
                         str(quantity), "Regular" if category == "Coffee" else "", sku, "", money(gross),
                         money(discount), money(gross + discount), money((gross + discount) * 0.085), transaction,
                         f"{k:02d}GJIOeslBfhRAWj3LNrZ6I", "iPad Front", "",
                         f"https://squareup.com/dashboard/sales/transactions/{transaction}", "Payment", "Harbor St",
                         "To Go", customer, name, "", "", "1", "Physical Item", "$0.00", "Priya M",
                         f"pji6qSr71LJGoYkUy{token:05d}", "Point of Sale", ("Visa", "Mastercard")[k % 2]])
    path.write_text(csv_text(rows), encoding="utf-8")
    return path


def test_a_customer_name_is_personal_data(tmp_path):
    # Square's Customer Name was "no contract field matches" and loaded as it is.
    config, printed = init_ok(tmp_path, square_export(tmp_path / "items-2026-05-01-2026-10-31.csv"))
    assert config["privacy"] == {"pii_columns": {"Customer Name": "drop"}}
    assert "    Customer Name: drop                      # items-2026-05-01-2026-10-31.csv: looks like personal " \
           "data; dropped before loading\n" in (tmp_path / "shop.yaml").read_text(encoding="utf-8")
    assert not [line for line in printed if "Customer Name" in line]


def test_the_quantity_is_the_column_that_varies_and_the_amount_the_net_one(tmp_path):
    # Qty and Count are both usual names for a quantity: init took Count (1 on every line: a line count) by the
    # alphabet and said Qty matched no contract field; and Gross Sales (before discounts) over Net Sales.
    file = "items-2026-05-01-2026-10-31.csv"
    config, printed = init_ok(tmp_path, square_export(tmp_path / file))
    assert config["orders"]["columns"] == {
        "order_id": "Transaction ID", "customer_id": "Customer ID", "order_ts": ["Date", "Time"], "category": "Category",
        "quantity": "Qty", "amount": "Net Sales", "channel": "Channel", "sku": "SKU", "description": "Item"}
    text = (tmp_path / "shop.yaml").read_text(encoding="utf-8")
    assert "    quantity: Qty                            # 'Qty' is a usual name for a quantity; Count is 1 on every " \
           "sampled row; e.g. '1'\n" in text
    assert "    amount: Net Sales                        # 'Net Sales' reads like a line amount; Net Sales is the " \
           "amount after discounts, Gross Sales before them; e.g. '$5.25'\n" in text
    assert [line for line in printed if any(f"'{c}'" in line for c in ("Qty", "Count", "Gross Sales",
                                                                       "Price Point Name"))] == [
        f"not mapped: orders: {file} column 'Price Point Name' not mapped (named like a unit price, but its values "
        "('Regular') do not fit)",
        f"not mapped: orders: {file} column 'Gross Sales' not mapped (named like a line amount too; amount takes Net "
        "Sales; Net Sales is the amount after discounts, Gross Sales before them)",
        f"not mapped: orders: {file} column 'Count' not mapped (named like a quantity too; quantity takes Qty; Count "
        "is 1 on every sampled row)"]
    assert "  # not mapped: Count (named like a quantity too; quantity takes Qty; Count is 1 on every sampled " \
           "row)\n" in text


def test_a_date_column_and_a_time_column_are_read_as_one_order_time(tmp_path):
    # Square gives the date and the time of day in two columns: init mapped Date alone, every order at midnight, and
    # called Time "another time of the order".
    file = "items-2026-05-01-2026-10-31.csv"
    config, printed = init_ok(tmp_path, square_export(tmp_path / file))
    assert config["orders"]["columns"]["order_ts"] == ["Date", "Time"]
    assert config["orders"]["date_formats"] == ["%Y-%m-%d %H:%M:%S"]
    text = (tmp_path / "shop.yaml").read_text(encoding="utf-8")
    assert "    order_ts: [Date, Time]                   # 'Date' is a usual name for the order time; Time holds its " \
           "time of day (e.g. '17:00:10'): the two are read as one\n" in text
    assert not [line for line in printed if "'Time'" in line]
    done = check(tmp_path / "shop.yaml")
    assert done.exit_code == 0, done.output
    assert re.search(r"^ +order_ts +Date \+ Time ", done.stdout, re.M), done.stdout
    # 销售日期 and 销售时间 alike; a date column with its time already has no partner.
    (tmp_path / "cn").mkdir()
    orders = tmp_path / "cn" / "销售流水.csv"
    orders.write_text("单据号,销售日期,销售时间,会员卡号,实收金额\n"
                      "A1,2026/06/01,07:05:50,13270441360,12.35\nA2,2026/06/01,19:24:41,18433133743,22.50\n",
                      encoding="utf-8")
    config, _ = init_ok(tmp_path / "cn", orders)
    assert config["orders"]["columns"]["order_ts"] == ["销售日期", "销售时间"]
    assert config["orders"]["date_formats"] == ["%Y/%m/%d %H:%M:%S"]


def test_native_excel_date_and_time_cells_are_read_as_one_order_time(tmp_path):
    # A workbook's date cells read as their midnight (2026-06-01 00:00:00) and its time cells on 1899-12-31: init
    # must see a date column and a time-of-day column there too, and the formats must read them as the raw layer
    # joins them. Then `persona check` stages every line at its time of day.
    orders = tmp_path / "销售流水.xlsx"
    with xlsxwriter.Workbook(orders) as workbook:
        sheet = workbook.add_worksheet()
        day, clock = workbook.add_format({"num_format": "yyyy-mm-dd"}), workbook.add_format({"num_format": "hh:mm:ss"})
        sheet.write_row(0, 0, ["单据号", "销售日期", "销售时间", "会员卡号", "实收金额"])
        for i in range(12):
            sheet.write(1 + i, 0, f"A{i}")
            sheet.write_datetime(1 + i, 1, dt.datetime(2026, 6, 1 + i % 5), day)
            sheet.write_datetime(1 + i, 2, dt.time(8 + i, 5 * i % 60, 30), clock)
            sheet.write_row(1 + i, 3, [SALES_MEMBERS[i % len(SALES_MEMBERS)][0], 10.5 + i])
    config, _ = init_ok(tmp_path, orders)
    assert config["orders"]["columns"]["order_ts"] == ["销售日期", "销售时间"]
    assert config["orders"]["date_formats"] == ["%Y-%m-%d %H:%M:%S"]
    done = check(tmp_path / "shop.yaml")
    assert done.exit_code == 0, done.output
    assert "Order dates: 2026-06-01 08:00:30 to 2026-06-05 17:45:30 (12 orders staged from the sample)" \
        in done.stdout, done.stdout


def test_between_amounts_named_alike_the_one_after_discounts(tmp_path):
    # 金额 (price × quantity) and 实收金额 (what was received, after 优惠金额) are both usual names for an amount: the
    # one left out was said to match no contract field, and so was the discount, which is no line amount.
    orders = tmp_path / "销售明细.csv"
    orders.write_text("单据号,销售时间,会员卡号,商品编码,数量,售价,实收金额,优惠金额,金额\n"
                      "202606010001,2026-06-01 07:05:50,13270441360,6928584486348,2,6.50,12.35,0.65,13.00\n"
                      "202606010001,2026-06-01 07:05:50,13270441360,6983072051326,1,5.80,5.80,0,5.80\n"
                      "202606010002,2026-06-01 07:24:41,18433133743,6979703974980,1,22.50,22.50,0,22.50\n",
                      encoding="utf-8")
    config, printed = init_ok(tmp_path, orders)
    assert config["orders"]["columns"]["amount"] == "实收金额"
    assert printed[:2] == [
        "not mapped: orders: 销售明细.csv column '优惠金额' not mapped (a discount, not a line amount; amount takes 实收金额)",
        "not mapped: orders: 销售明细.csv column '金额' not mapped (named like a line amount too; amount takes 实收金额; "
        "实收金额 is the amount after discounts)"]


def staged_lines(output: str) -> int:
    """The order lines `persona check` staged from the sample: the sum of its per-category line counts."""
    return sum(int(n) for n in re.findall(r"^  \S.*?\s(\d+) lines$", output, flags=re.MULTILINE))


def test_lines_alike_in_every_mapped_field_keep_their_token_as_the_line_id(tmp_path):
    # Square rings an item twice in one transaction as two rows alike in every mapped field, each with a Token of
    # its own. Init compared every column, found no duplicate and said nothing; staging compares the mapped fields
    # and dropped them as exact duplicates (a trial: 330 lines, $17,621, 2.1% of the revenue).
    file = "items-2026-05-01-2026-10-31.csv"
    config, printed = init_ok(tmp_path, square_export(tmp_path / file, twin_every=3))
    assert config["orders"]["columns"] == {
        "order_id": "Transaction ID", "customer_id": "Customer ID", "order_ts": ["Date", "Time"], "category": "Category",
        "quantity": "Qty", "amount": "Net Sales", "channel": "Channel", "sku": "SKU", "line_id": "Token",
        "description": "Item"}
    assert "exact_duplicates" not in config["orders"]
    assert [line for line in printed if line.startswith("to decide")] == [
        f"to decide: orders.columns.line_id: 4 row(s) of {file} repeat an earlier row in every mapped field (114.20 "
        "of Net Sales, 12.0% of the sampled rows' 952.90) and differ in Token: mapped as the line id, so that each "
        "is a line of its own (unmapped, staging would drop them as exact duplicates); remove it if they are copies "
        "of one line"]
    text = (tmp_path / "shop.yaml").read_text(encoding="utf-8")
    assert "    line_id: Token                           # 'Token' tells apart the lines of an order; CHECK: 4 sampled " \
           "row(s) repeat an earlier row in every other mapped field (114.20 of Net Sales, 12.0% of the sampled " \
           "rows' 952.90): without a line id they would be dropped as exact duplicates; e.g. " \
           "'pji6qSr71LJGoYkUy00001'\n" in text
    # Staging agrees: with the line id every row is a line; without it, the 4 rows init counted are dropped.
    done = check(tmp_path / "shop.yaml")
    assert done.exit_code == 0, done.output
    assert staged_lines(done.stdout) == 28
    without = tmp_path / "without.yaml"
    without.write_text(text.replace("    line_id: Token", "    # line_id: Token"), encoding="utf-8")
    done = check(without)
    assert done.exit_code == 0, done.output
    assert staged_lines(done.stdout) == 24


def test_rows_alike_in_every_column_are_to_decide_with_what_dropping_costs(tmp_path):
    # A till's bill with the same item twice and nothing else to tell the rows apart: real repeated scans, or
    # copies? Init asks, and now says what dropping them leaves out of the amounts.
    orders = tmp_path / "销售明细.csv"
    orders.write_text("单据号,销售时间,会员卡号,商品编码,类别名称,数量,实收金额,付款方式\n"
                      "202606010001,2026-06-01 07:05:50,13270441360,6928584486348,蔬菜水果,1,6.50,微信\n"
                      "202606010001,2026-06-01 07:05:50,13270441360,6928584486348,蔬菜水果,1,6.50,微信\n"
                      "202606010001,2026-06-01 07:05:50,13270441360,6983072051326,蔬菜水果,2,11.60,微信\n"
                      "202606010002,2026-06-01 07:24:41,18433133743,6979703974980,肉禽蛋,1,22.50,现金\n",
                      encoding="utf-8")
    config, printed = init_ok(tmp_path, orders)
    assert "line_id" not in config["orders"]["columns"]
    assert printed == [
        "to decide: orders.exact_duplicates: 1 row(s) of 销售明细.csv repeat an earlier row in every column; dropping "
        "them (drop, the default) leaves out 1 line(s) (6.50 of 实收金额, 13.8% of the sampled rows' 47.10); set keep "
        "if they are real repeated scans (an item rung up twice)"]
    assert "  # exact_duplicates: 1 sampled row(s) repeat an earlier row in every column (6.50 of 实收金额, 13.8% of " \
           "the sampled rows' 47.10): drop (default) or keep (real repeated scans)? CHECK\n" in (
               tmp_path / "shop.yaml").read_text(encoding="utf-8")
    # Alike in the mapped fields only, the other column (收银员) being no line id: the same question, said so.
    orders.write_text(orders.read_text(encoding="utf-8").replace("付款方式\n", "付款方式,收银员\n").replace(
        "微信\n", "微信,001 张敏\n", 1).replace("微信\n", "微信,002 李娟\n").replace("现金\n", "现金,002 李娟\n"),
        encoding="utf-8")
    _, printed = init_ok(tmp_path, orders, "--force")
    assert [line for line in printed if line.startswith("to decide")] == [
        "to decide: orders.exact_duplicates: 1 row(s) of 销售明细.csv repeat an earlier row in every mapped field "
        "(not in every column, but no unmapped column tells each line of an order apart); dropping them (drop, the "
        "default) leaves out 1 line(s) (6.50 of 实收金额, 13.8% of the sampled rows' 47.10); set keep if they are "
        "real repeated scans (an item rung up twice)"]
