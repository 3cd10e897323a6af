"""`persona init` on small files (pipelines/config_init.py, config_sniff.py, config_match.py): encodings, delimiters,
title rows, Chinese and English names, date formats, the wide shape, Excel / Parquet / JSON, what it cannot map
and what the user must decide, and the refusal to overwrite. The whole-graph runs are tests/e2e/test_init.py."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest
import xlsxwriter
import yaml
from click.testing import CliRunner

from assets.raw.readers import IngestError, read_source_file
from assets.staging.typed import money_number
from pipelines.cli_common import command_name
from pipelines.config_match import date_coverage, name_score
from pipelines.config_money import decimal_comma_reading, mixed_currencies, reads_as_number, reads_with_a_point
from pipelines.config_sniff import sniff_file
from pipelines.core.config import load_source_config
from pipelines.init_cli import init

ORDERS_ZH = """订单号,用户ID,下单时间,品类,数量,单价,实付金额,支付方式,商品编码
D001,U01,2026-04-01 10:00:00,生鲜,2,5.50,11.00,微信支付,690001
D001,U01,2026-04-01 10:00:00,乳品,1,8.00,8.00,微信支付,690002
D002,U02,2026-04-02 18:30:00,零食,3,2.00,6.00,现金,690003
D003,U03,2026-04-03 09:15:00,生鲜,1,12.00,12.00,银联,690001
"""
MEMBERS_ZH = """用户ID,性别,年龄,月收入,城市,手机
U01,男,35,8000,上海,138****0001
U02,女,28,1万-2万,杭州,139****0002
U03,女,41,5000以下,深圳,137****0003
"""
ORDERS_EN = """Invoice,Customer ID,Order Date,Category,Qty,Amount,Payment
I1,C1,2026-04-01 10:00:00,fruit,1,3.50,CARD
I2,C2,2026-04-02 11:00:00,dairy,2,4.00,CASH
I3,C1,2026-04-03 12:00:00,fruit,1,3.50,MOBILE
"""


def invoke(*args: str):
    return CliRunner().invoke(init, list(args), catch_exceptions=False)


def init_ok(tmp_path: Path, orders: Path, *more: str) -> tuple[dict, list[str]]:
    """Run init, check it wrote a config that validates, return it (parsed) and the printed lines."""
    out = tmp_path / "shop.yaml"
    result = invoke("--orders", str(orders), "--out", str(out), *more)
    assert result.exit_code == 0, result.output
    config = load_source_config(out)
    assert config.orders.path
    lines = result.stdout.splitlines()
    # The next command as the user can type it (cli_common.command_name): `persona` only with the venv active.
    assert lines[0].startswith(f"wrote {out}: shape") and lines[-1] == f"next: review {out}, then {command_name()} " \
                                                                        f"check --config {out}"
    return yaml.safe_load(out.read_text(encoding="utf-8")), lines[1:-1]


def test_chinese_headers_in_gbk(tmp_path):
    orders = tmp_path / "订单.csv"
    orders.write_bytes(ORDERS_ZH.encode("gbk"))
    members = tmp_path / "会员.csv"
    members.write_bytes(MEMBERS_ZH.encode("gbk"))
    config, printed = init_ok(tmp_path, orders, "--customers", str(members))
    assert config["shape"] == "long"
    assert config["orders"]["path"] == "订单.csv" and config["orders"]["encoding"] == "gbk"
    assert config["orders"]["columns"] == {
        "order_id": "订单号", "customer_id": "用户ID", "order_ts": "下单时间", "category": "品类", "quantity": "数量",
        "amount": "实付金额", "unit_price": "单价", "payment_method": "支付方式", "sku": "商品编码"}
    assert config["orders"]["date_formats"] == ["%Y-%m-%d %H:%M:%S"]
    assert config["customers"]["encoding"] == "gbk"
    assert config["customers"]["columns"] == {"customer_id": "用户ID", "age": "年龄", "gender": "性别",
                                              "income": "月收入", "city": "城市"}
    # 月收入 is monthly; the phone column is personal data, dropped before loading.
    assert config["values"] == {"income_period": "month"}
    assert config["privacy"] == {"pii_columns": {"手机": "drop"}}
    assert printed == []
    text = (tmp_path / "shop.yaml").read_text(encoding="utf-8")
    assert "GBK (a Chinese Windows export)" in text and "'订单号' is a usual name for an order id" in text


def test_title_rows_above_the_header(tmp_path):
    report = tmp_path / "report.csv"
    report.write_text("Sales report - Store 7,,,,,,\nExported: 2026-05-01 08:00,,,,,,\n" + ORDERS_EN,
                      encoding="utf-8")
    members = tmp_path / "members.csv"
    members.write_text("Member list\nCustomer ID,age,gender\nC1,30,F\nC2,41,M\n", encoding="utf-8")
    config, printed = init_ok(tmp_path, report, "--customers", str(members))
    assert config["orders"]["skip_rows"] == 2 and config["customers"]["skip_rows"] == 1
    assert config["orders"]["columns"] == {"order_id": "Invoice", "customer_id": "Customer ID",
                                           "order_ts": "Order Date", "category": "Category", "quantity": "Qty",
                                           "amount": "Amount", "payment_method": "Payment"}
    assert config["customers"]["columns"] == {"customer_id": "Customer ID", "age": "age", "gender": "gender"}
    assert printed == []
    assert "2 title line(s) above the header ('Sales report - Store 7'" in (tmp_path / "shop.yaml").read_text(
        encoding="utf-8")
    # The project's reader, given what init wrote, reads the rows below the header.
    source = load_source_config(tmp_path / "shop.yaml").orders
    frame = read_source_file(report, source, tmp_path)
    assert frame.get_column("Invoice").to_list() == ["I1", "I2", "I3"]


@pytest.mark.parametrize(("delimiter", "written"), [(";", ";"), ("\t", "tab"), ("|", "|")])
def test_delimiters(tmp_path, delimiter, written):
    orders = tmp_path / "orders.txt"
    orders.write_text(ORDERS_EN.replace(",", delimiter), encoding="utf-8")
    config, _ = init_ok(tmp_path, orders)
    assert config["orders"]["delimiter"] == written
    assert config["orders"]["columns"]["amount"] == "Amount"
    frame = read_source_file(orders, load_source_config(tmp_path / "shop.yaml").orders, tmp_path)
    assert frame.height == 3 and frame.get_column("Customer ID").to_list() == ["C1", "C2", "C1"]


def test_runs_of_spaces(tmp_path):
    orders = tmp_path / "pos.txt"
    orders.write_text('ORDER_NO  CUST_NO  ORDER_TIME             CATEGORY  AMOUNT\n'
                      '1         9        "2026-04-07 18:14:48"  wine      37.50\n'
                      '2         7        "2026-04-08 10:00:00"  bakery    2.10\n', encoding="utf-8")
    config, _ = init_ok(tmp_path, orders)
    assert config["orders"]["delimiter"] == "whitespace"
    assert config["orders"]["columns"] == {"order_id": "ORDER_NO", "customer_id": "CUST_NO",
                                           "order_ts": "ORDER_TIME", "category": "CATEGORY", "amount": "AMOUNT"}


@pytest.mark.parametrize(("encoding", "note"), [("utf-8-sig", "UTF-8 with a byte-order mark"),
                                                ("utf-16", "UTF-16 LE with a byte-order mark")])
def test_byte_order_marks(tmp_path, encoding, note):
    orders = tmp_path / "orders.csv"
    orders.write_bytes(ORDERS_ZH.encode(encoding))
    config, _ = init_ok(tmp_path, orders)
    assert config["orders"]["encoding"] == "utf-8"  # the readers honour the mark whatever encoding says
    assert config["orders"]["columns"]["order_id"] == "订单号"
    assert note in (tmp_path / "shop.yaml").read_text(encoding="utf-8")
    frame = read_source_file(orders, load_source_config(tmp_path / "shop.yaml").orders, tmp_path)
    assert frame.get_column("用户ID").to_list() == ["U01", "U01", "U02", "U03"]


def test_unmappable_columns_are_listed(tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,customer_id,order_ts,category,amount,Store Manager,备注,age,email\n"
                      "O1,C1,2026-04-01,a,1.0,Ann,ok,30,a@b.c\nO2,C2,2026-04-02,b,2.0,Bob,,40,b@b.c\n",
                      encoding="utf-8")
    config, printed = init_ok(tmp_path, orders)
    assert printed == [
        "not mapped: orders: orders.csv column 'Store Manager' not mapped (no contract field matches)",
        "not mapped: orders: orders.csv column '备注' not mapped (no contract field matches)",
        "not mapped: orders: orders.csv column 'age' not mapped (a customer profile field: long-shape orders "
        "take profiles from a customer file (--customers))"]
    assert config["privacy"] == {"pii_columns": {"email": "drop"}}
    assert "# not mapped: Store Manager (no contract field matches)" in (tmp_path / "shop.yaml").read_text(
        encoding="utf-8")


def test_missing_required_fields_are_named(tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text("foo,bar,category\nx,1,a\ny,2,b\n", encoding="utf-8")
    _, printed = init_ok(tmp_path, orders)
    assert printed[:3] == [
        "not mapped: orders.columns.customer_id: no column of orders.csv looks like a customer id (columns: foo, bar, "
        "category); map it before running",
        "not mapped: orders.columns.order_ts: no column of orders.csv looks like the order time (columns: foo, bar, "
        "category); map it before running",
        "not mapped: orders.columns.amount: no column of orders.csv looks like a line amount or a unit price; map "
        "one of them before running"]


def test_out_exists_is_refused_without_force(tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text(ORDERS_EN, encoding="utf-8")
    out = tmp_path / "shop.yaml"
    out.write_text("name: mine\n", encoding="utf-8")
    result = invoke("--orders", str(orders), "--out", str(out))
    assert result.exit_code == 1
    assert result.stderr == f"persona: {out}: already exists; pass --force to overwrite it\n"
    assert out.read_text(encoding="utf-8") == "name: mine\n"
    result = invoke("--orders", str(orders), "--out", str(out), "--force")
    assert result.exit_code == 0 and load_source_config(out).orders.columns["order_id"] == "Invoice"


def test_errors_are_one_line_naming_the_file(tmp_path):
    missing = tmp_path / "nope.csv"
    result = invoke("--orders", str(missing), "--out", str(tmp_path / "shop.yaml"))
    assert result.exit_code == 1 and result.stderr == f"persona: {missing}: file not found\n"
    odd = tmp_path / "orders.dat"
    odd.write_text("a,b\n1,2\n", encoding="utf-8")
    result = invoke("--orders", str(odd), "--out", str(tmp_path / "shop.yaml"))
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and str(odd) in result.stderr
    assert not (tmp_path / "shop.yaml").exists()


def test_date_formats_day_first_and_ambiguous(tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text("order id,customer id,order date,category,amount\n"
                      "1,C1,25/04/2026 10:00,a,1\n2,C2,03/04/2026 11:30,b,2\n", encoding="utf-8")
    config, printed = init_ok(tmp_path, orders)
    assert config["orders"]["date_formats"] == ["%d/%m/%Y %H:%M"] and printed == []
    orders.write_text("order id,customer id,order date,category,amount\n"
                      "1,C1,04/05/2026,a,1\n2,C2,03/04/2026,b,2\n", encoding="utf-8")
    config, printed = init_ok(tmp_path, orders, "--force")
    assert config["orders"]["date_formats"] == ["%m/%d/%Y"]
    assert printed == ["to decide: orders.date_formats: order date ('04/05/2026') reads month first and day first "
                       "alike (no day above 12 in the sample); wrote %m/%d/%Y: check it"]
    # Mixed with ISO and Chinese dates (a console's export merged with a POS's): the ambiguous value is quoted.
    orders.write_text("order id,customer id,order date,category,amount\n1,C1,2024-03-01 08:09:00,a,1\n"
                      "2,C2,2024年03月02日 09:00,b,2\n3,C3,03/04/2024 10:00,a,3\n4,C4,2024-03-05 11:00:00,b,4\n",
                      encoding="utf-8")
    config, printed = init_ok(tmp_path, orders, "--force")
    assert [line for line in printed if "date_formats" in line] == [
        "to decide: orders.date_formats: order date ('03/04/2024 10:00') reads month first and day first alike (no "
        "day above 12 in the sample); wrote %m/%d/%Y %H:%M: check it"]


def test_a_format_read_by_one_stray_value_of_many_is_not_written():
    """A trial's Shopee export: one row of 337 wrote its date day first with slashes, and init added a month-first
    format for it (with a CHECK); a format must read two values once there are more than 50."""
    values = [f"2023-{m:02d}-{d:02d} 14:{d:02d}" for d in range(1, 29) for m in range(1, 13)] + ["07/12/2023 14:03"]
    coverage = date_coverage(values)
    assert (coverage.formats, coverage.unread) == (["%Y-%m-%d %H:%M"], "07/12/2023 14:03")
    assert date_coverage(values + ["08/12/2023 15:00"]).formats == ["%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M"]
    # Both year widths: %y first, since staging tries them in order and %Y reads 12/30/23 as the year 23.
    assert date_coverage(["12/01/2023", "11/01/23", "12/30/23", "12/31/2023"]).formats == ["%m/%d/%y", "%m/%d/%Y"]


def test_a_two_digit_year_is_written_as_percent_y(tmp_path):
    """Etsy writes its Sale Date as 12/30/23: init wrote %m/%d/%Y, which reads the year 23, and a run quarantined
    every row as before quality.min_order_date."""
    orders = tmp_path / "orders.csv"
    orders.write_text("order id,customer id,sale date,category,amount\n"
                      "1,C1,12/30/23,a,1\n2,C2,01/05/24,b,2\n3,C3,11/2/23,a,3\n", encoding="utf-8")
    config, printed = init_ok(tmp_path, orders)
    assert config["orders"]["date_formats"] == ["%m/%d/%y"] and printed == []
    orders.write_text("order id,customer id,sale date,category,amount\n"
                      "1,C1,01/05/24,a,1\n2,C2,03/04/24,b,2\n", encoding="utf-8")
    config, printed = init_ok(tmp_path, orders, "--force")
    assert config["orders"]["date_formats"] == ["%m/%d/%y"]
    assert printed == ["to decide: orders.date_formats: sale date ('01/05/24') reads month first and day first "
                       "alike (no day above 12 in the sample); wrote %m/%d/%y: check it"]


def test_wide_baskets_with_flags(tmp_path):
    baskets = tmp_path / "baskets.csv"
    baskets.write_text("cardid,value,pmethod,sex,age,beer,wine,fish\n"
                       "1,10.5,CARD,M,30,T,F,F\n2,20,CASH,F,41,F,T,T\n3,7.25,CHEQUE,F,52,F,F,T\n", encoding="utf-8")
    config, printed = init_ok(tmp_path, baskets)
    assert config["shape"] == "wide" and printed == []
    assert config["orders"]["columns"] == {"customer_id": "cardid", "amount": "value", "payment_method": "pmethod",
                                           "age": "age", "gender": "sex"}
    assert config["orders"]["category_columns"] == ["beer", "wine", "fish"]
    assert config["orders"]["flag_tokens"] == {"true_tokens": ["T"], "false_tokens": ["F"]}


def test_guessed_values_and_what_is_left_to_decide(tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text("Order ID,Customer ID,Order Date,Category,Sales,Payment Type,Status\n"
                      "1,C1,2026-04-01,a,1,Credit Card,Completed\n2,C2,2026-04-02,b,2,PayPal,Refunded\n"
                      "3,C3,2026-04-03,a,3,Store Credit Voucher,Completed\n", encoding="utf-8")
    customers = tmp_path / "customers.csv"
    customers.write_text("Customer ID,Gender,Home Owner\nC1,先生,Own\nC2,Female,Rent\nC3,Other,Own\nC4,Unknown,Own\n",
                         encoding="utf-8")
    config, printed = init_ok(tmp_path, orders, "--customers", str(customers))
    # Store credit is prepaid with the shop: STORED_VALUE, not a card (its word CREDIT).
    assert config["values"] == {"payment_aliases": {"Credit Card": "CARD", "PayPal": "MOBILE",
                                                    "Store Credit Voucher": "STORED_VALUE"},
                                "gender": {"先生": "M"}, "home_owner": {"true_tokens": ["Own"],
                                                                      "false_tokens": ["Rent"]},
                                "cancelled_statuses": ["Refunded"]}
    assert printed == [
        "to decide: values.gender: customers.csv Gender value 'Other' (1 row(s)) is neither M nor F; its rows are "
        "quarantined unless you map it in values.gender (to M, F, or null for not known: {Other: null})"]


def test_a_taobao_style_export_maps_its_buyer_amount_and_title(tmp_path):
    # A Taobao seller console's order report (GBK): buyer nickname as the customer, amounts paid with the full-width
    # ￥ (the yen sign of GB2312), the item title as the description.
    orders = tmp_path / "淘宝订单报表.csv"
    orders.write_bytes(("订单编号,买家会员名,订单创建时间,宝贝标题,宝贝种类,实付款,订单状态\n"
                        "1001,tb_alice,2024-03-01 10:00:00,夏季连衣裙,服装,￥355.01,交易成功\n"
                        "1002,tb_bob,2024-03-02 11:00:00,无线耳机,数码,￥1299.00,交易关闭\n"
                        "1003,tb_alice,2024-03-03 12:00:00,防晒霜,美妆,￥89.50,交易成功\n").encode("gbk"))
    config, _ = init_ok(tmp_path, orders)
    columns = config["orders"]["columns"]
    assert (columns["customer_id"], columns["amount"], columns["description"]) == ("买家会员名", "实付款", "宝贝标题")


# A Taobao seller console's order report ("导出订单报表"), a realistic subset of its columns.
TAOBAO_HEADER = ["订单编号", "买家会员名", "买家应付货款", "总金额", "买家实际支付金额", "订单状态", "收货人姓名",
                 "联系手机", "订单创建时间", "订单付款时间", "宝贝标题", "物流单号", "宝贝总数量", "订单关闭原因"]


def taobao_report(path: Path, rows: int = 40, header: list[str] = TAOBAO_HEADER, paid_when_closed: bool = False
                  ) -> Path:
    """A GBK order report in which one order in ten was closed unpaid (交易关闭): no payment time, no tracking
    number, nothing paid, unless paid_when_closed fills its payment time too."""
    lines = [",".join(header)]
    for i in range(rows):
        closed = i % 10 == 3
        created = f"2024-03-{i % 28 + 1:02d} 10:{i:02d}:00"
        paid = f"2024-03-{i % 28 + 1:02d} 10:{i:02d}:40" if paid_when_closed or not closed else ""
        by_name = {"订单编号": f"{3600000000000 + i}", "买家会员名": f"tb_{i % 7}", "买家应付货款": "88.00",
                   "总金额": "88.00", "买家实际支付金额": "0.00" if closed else "88.00",
                   "订单状态": "交易关闭" if closed else "交易成功", "收货人姓名": "张三", "联系手机": "138****0000",
                   "订单创建时间": created, "订单付款时间": paid, "宝贝标题": f"夏季连衣裙{i}",
                   "物流单号": "" if closed else f"YT{i:06d}", "宝贝总数量": "1",
                   "订单关闭原因": "买家不想买了" if closed else "订单未关闭"}
        by_name |= {"创建时间": created, "付款时间": paid, "Order Created": created, "Payment Date": paid}
        lines.append(",".join(by_name[name] for name in header))
    path.write_bytes(("\n".join(lines) + "\n").encode("gbk"))
    return path


def test_a_taobao_order_report_is_timed_by_its_creation_not_its_payment(tmp_path):
    # 订单付款时间 is empty on the closed orders: taken as the order time, their rows would be quarantined for want
    # of one and the key-coverage gate would block the run. 订单创建时间 is filled on every row.
    orders = taobao_report(tmp_path / "ExportOrderList.csv")
    config, printed = init_ok(tmp_path, orders)
    assert config["orders"]["encoding"] == "gbk"
    assert config["orders"]["columns"]["order_ts"] == "订单创建时间"
    assert config["orders"]["date_formats"] == ["%Y-%m-%d %H:%M:%S"]
    assert "# not mapped: 订单付款时间 (another time of the order; order_ts takes 订单创建时间)" in (
        tmp_path / "shop.yaml").read_text(encoding="utf-8")
    assert not [line for line in printed if line.startswith("to decide") and "order_ts" in line or "date_formats" in line]


@pytest.mark.parametrize(("created", "paid"), [("订单创建时间", "订单付款时间"), ("创建时间", "付款时间"),
                                               ("Order Created", "Payment Date")])
@pytest.mark.parametrize("payment_first", [False, True])
def test_the_creation_time_wins_when_the_payment_time_is_filled_too(tmp_path, created, paid, payment_first):
    # Every order paid: no column is better filled, the name decides, wherever the columns stand.
    times = [paid, created] if payment_first else [created, paid]
    header = ["订单编号", "买家会员名", *times, "买家实际支付金额", "宝贝标题"]
    orders = taobao_report(tmp_path / "orders.csv", header=header, paid_when_closed=True)
    config, printed = init_ok(tmp_path, orders)
    assert config["orders"]["columns"]["order_ts"] == created
    assert not [line for line in printed if "order_ts" in line and not line.startswith("not mapped")]
    # The time left out is named as such, not as a column no field matches.
    assert f"not mapped: orders: orders.csv column '{paid}' not mapped (another time of the order; order_ts takes " \
           f"{created})" in printed


def test_a_payment_time_is_the_order_time_when_nothing_else_is(tmp_path):
    orders = taobao_report(tmp_path / "orders.csv", header=["订单编号", "买家会员名", "订单付款时间", "买家实际支付金额"])
    config, _ = init_ok(tmp_path, orders)
    assert config["orders"]["columns"]["order_ts"] == "订单付款时间"
    assert "'订单付款时间' is a time after the order was placed" in (tmp_path / "shop.yaml").read_text(encoding="utf-8")


def test_an_order_time_worse_filled_than_another_date_column_is_to_check(tmp_path):
    # 下单时间 (a usual name for the order time) is taken over 导出时间 (the export's time, a name that only reads like
    # a time); but it is empty on a fifth of the rows, which would be quarantined: init says so.
    orders = tmp_path / "orders.csv"
    orders.write_text("订单号,会员号,下单时间,导出时间,品类,金额\n" + "".join(
        f"D{i},U{i},{'' if i % 5 == 0 else f'2024-03-0{i % 9 + 1} 10:00:00'},2024-04-01 08:00:00,生鲜,{i}.00\n"
        for i in range(10)), encoding="utf-8")
    config, printed = init_ok(tmp_path, orders)
    assert config["orders"]["columns"]["order_ts"] == "下单时间"
    assert printed == ["not mapped: orders: orders.csv column '导出时间' not mapped (another time of the order; "
                       "order_ts takes 下单时间)",
                       "to decide: orders.columns.order_ts: 下单时间 is filled on 80.0% of the sampled rows, 导出时间 "
                       "on 100.0%; rows without an order time are quarantined: if 导出时间 says when the order was "
                       "placed, map it instead"]
    assert "CHECK: 导出时间 is better filled (100.0% of the rows against 80.0%)" in (tmp_path / "shop.yaml").read_text(
        encoding="utf-8")
    # Between two usual names, the better-filled one is taken, with nothing to check.
    orders.write_text(orders.read_text(encoding="utf-8").replace("导出时间", "日期"), encoding="utf-8")
    config, printed = init_ok(tmp_path, orders, "--force")
    assert config["orders"]["columns"]["order_ts"] == "日期"
    assert not [line for line in printed if line.startswith("to decide") and "order_ts" in line]


def test_init_takes_a_column_for_an_amount_exactly_when_staging_reads_its_values():
    # One rule for both: what persona init counts as numeric is what staging's amount cast reads.
    values = ["12", "12.50", "-3", "1e3", "¥1,234.50", "￥355.01", "411.75元", "-¥12.50", "￥８８．５０", "１２",
              "RM19.90", "HK$1,200.50", "-RM12.50",  # Shopee Malaysia, Hong Kong
              "12,5", "0,125", "1,23", "--5", "元", "¥", "abc", "12 元 5", "Rp 15.000", "R$ 15,90"]
    with duckdb.connect() as con:
        staged = [con.execute(f"SELECT {money_number('v')} IS NOT NULL FROM (SELECT ? AS v)", [v]).fetchone()[0]
                  for v in values]
    assert [reads_with_a_point(v) for v in values] == staged
    assert staged == [True] * 13 + [False] * 10
    # With values.decimal_comma staging reads a decimal comma and points between thousands instead (12,5 is 12.5,
    # Rp 15.000 is fifteen thousand, 12.50 no number); init counts a column as numeric when either reading reads it.
    with duckdb.connect() as con:
        comma = [con.execute(f"SELECT {money_number('v', True)} FROM (SELECT ? AS v)", [v]).fetchone()[0]
                 for v in values]
    assert dict(zip(values, comma, strict=True)) == {
        "12": 12.0, "12.50": None, "-3": -3.0, "1e3": None, "¥1,234.50": None, "￥355.01": None, "411.75元": None,
        "-¥12.50": None, "￥８８．５０": None, "１２": 12.0, "RM19.90": None, "HK$1,200.50": None, "-RM12.50": None,
        "12,5": 12.5, "0,125": 0.125, "1,23": 1.23, "--5": None, "元": None, "¥": None, "abc": None, "12 元 5": None,
        "Rp 15.000": 15000.0, "R$ 15,90": 15.9}
    assert [reads_as_number(v) for v in values] == [a or b is not None for a, b in zip(staged, comma, strict=True)]



def test_month_names_in_spanish_and_portuguese_get_their_format():
    # Mercado Libre's Fecha de venta: "15 de marzo de 2024 10:32 hs." (Brazil: "1 de março de 2024 ..."). A trial's
    # config with this format was accepted, then every date failed.
    assert date_coverage(["15 de marzo de 2024 10:32 hs.", "2 de diciembre de 2023 09:05 hs.",
                          "1 de março de 2024 23:59 hs."]).formats == ["%d de %B de %Y %H:%M hs."]
    assert date_coverage(["Mar-23-24", "Apr-01-24"]).formats == ["%b-%d-%y"]  # eBay's Sale Date

@pytest.mark.parametrize(("values", "reading"), [
    (["R$ 1.234,56", "R$ 89,90", "R$ 12.000,00"], ("R$ 1.234,56", True)),  # Mercado Libre Brazil
    (["15,90", "7", "1.299,00"], ("15,90", True)),
    (["$ 12.990", "$ 45.900", "$ 1.299", "$ 8.000", "$ 120.500", "$ 990"], ("$ 12.990", False)),  # Chile, Colombia
    (["12.990", "45.900", "1.299", "8.000"], None),  # too few points to say
    (["12.50", "8.990", "1.299", "8.000", "3.500", "7.250"], None),  # 12.50 has a decimal point
    (["12.5", "9.99", "1,234.56"], None), (["12", "15"], None), (["abc", "1,5"], None),
    # One "N/A" in a hundred values says nothing either way.
    (["N/A"] + [f"R$ {i},90" for i in range(99)], ("R$ 0,90", True)),
])
def test_a_decimal_comma_is_read_off_the_values(values, reading):
    assert decimal_comma_reading(values) == reading



def test_a_blank_line_above_the_header_is_skipped_and_a_reader_without_skip_rows_says_so(tmp_path):
    # eBay's Orders report starts with a blank line (after its byte-order mark): init failed with "line 2: malformed
    # CSV record: expected 0 fields, found 64 (check quoting and the delimiter ',')" (trial 11).
    report = tmp_path / "eBay-OrdersReport.csv"
    report.write_bytes(b"\xef\xbb\xbf\r\n" + ORDERS_EN.replace("\n", "\r\n").encode("utf-8"))
    config, printed = init_ok(tmp_path, report)
    assert config["orders"]["skip_rows"] == 1 and config["orders"]["columns"]["order_id"] == "Invoice"
    assert printed == []
    source = load_source_config(tmp_path / "shop.yaml").orders
    assert read_source_file(report, source, tmp_path).height == ORDERS_EN.count("\n") - 1
    with pytest.raises(IngestError, match=r"line 1 is blank, where the header should be: set skip_rows in this "
                                          r"input's config to the number of lines above the header, blank ones "
                                          r"included"):
        read_source_file(report, source.model_copy(update={"skip_rows": 0}), tmp_path)

def test_excel_with_a_title_row(tmp_path):
    book = tmp_path / "订单明细.xlsx"
    with xlsxwriter.Workbook(book) as workbook:
        sheet = workbook.add_worksheet("订单")
        sheet.write_row(0, 0, ["订单明细报表"])
        sheet.write_row(1, 0, ["单号", "会员号", "支付时间", "类目", "金额"])
        sheet.write_row(2, 0, [20260001, 880001, "2026-04-01 10:00:00", "生鲜", 12.5])
        sheet.write_row(3, 0, [20260002, 880002, "2026-04-02 11:00:00", "乳品", 8])
    config, printed = init_ok(tmp_path, book)
    assert config["orders"]["skip_rows"] == 1 and "encoding" not in config["orders"]
    assert config["orders"]["columns"] == {"order_id": "单号", "customer_id": "会员号", "order_ts": "支付时间",
                                           "category": "类目", "amount": "金额"}
    assert printed == []



def test_an_excel_header_below_titles_with_a_repeated_name_and_columns_empty_below(tmp_path):
    # Mercado Libre's Ventas sheet: a title, a subtitle, blank rows, then a header naming Estado twice (the order's
    # and the address's) and ending in columns no row fills. init took the title for the header ("mapped orders 0 of
    # 49 columns") (trial 11).
    book = tmp_path / "Ventas_BR.xlsx"
    with xlsxwriter.Workbook(book) as workbook:
        sheet = workbook.add_worksheet("Ventas")
        sheet.write_row(0, 0, ["Ventas"])
        sheet.write_row(1, 0, ["Período: 01/03/2024 a 31/03/2024"])
        sheet.write_row(4, 0, ["Order ID", "Order Date", "Estado", "Customer ID", "Amount", "Estado", "Notes", "Extra"])
        for i in range(12):
            sheet.write_row(5 + i, 0, [f"20000{i}", f"2024-03-{1 + i:02d} 10:00:00", "Entregado", f"C{i % 4}",
                                       10.5 + i, "SP"])
    config, printed = init_ok(tmp_path, book)
    assert config["orders"]["skip_rows"] == 4
    assert {field: config["orders"]["columns"][field] for field in ("order_id", "order_ts", "customer_id", "amount")} \
        == {"order_id": "Order ID", "order_ts": "Order Date", "customer_id": "Customer ID", "amount": "Amount"}

@pytest.mark.parametrize("suffix", [".parquet", ".json", ".jsonl"])
def test_parquet_and_json(tmp_path, suffix):
    frame = pl.DataFrame({"invoice": ["I1", "I2"], "user_id": ["U1", "U2"], "created_at": ["2026-04-01 10:00:00",
                          "2026-04-02 10:00:00"], "dept": ["a", "b"], "total": [1.5, 2.0]})
    path = tmp_path / f"orders{suffix}"
    {".parquet": frame.write_parquet, ".json": frame.write_json, ".jsonl": frame.write_ndjson}[suffix](path)
    config, printed = init_ok(tmp_path, path)
    assert config["orders"]["columns"] == {"order_id": "invoice", "customer_id": "user_id",
                                           "order_ts": "created_at", "category": "dept", "amount": "total"}
    assert sniff_file(path).format == ("parquet" if suffix == ".parquet" else "json")
    assert printed == []


def test_customer_file_without_an_id_and_unread_dates(tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,customer_id,order_ts,category,amount\n"
                      "O1,C1,2026-04-01 10:00:00,a,1\nO2,C2,2026-04-02 10:00:00,b,2\nO3,C3,soon,a,3\n",
                      encoding="utf-8")
    customers = tmp_path / "people.csv"
    customers.write_text("who,年龄\nx,30\ny,40\n", encoding="utf-8")
    config, printed = init_ok(tmp_path, orders, "--customers", str(customers), "--name", "店铺一")
    assert config["name"] == "店铺一"
    assert config["customers"]["columns"] == {"age": "年龄"}
    assert printed == [
        "not mapped: customers.columns.customer_id: no column of people.csv looks like a customer id (columns: who, "
        "年龄); map it before running",
        "not mapped: customers: people.csv column 'who' not mapped (no contract field matches)",
        "to decide: orders.date_formats: 67% of the distinct values of order_ts read as dates; the others (for "
        "example 'soon') are quarantined unless you add their format"]


def test_a_file_of_an_unknown_suffix_says_what_init_reads_and_what_to_do(tmp_path):
    orders = tmp_path / "export.dat"
    orders.write_text("Order ID,Customer ID\n1,C1\n", encoding="utf-8")
    result = invoke("--orders", str(orders), "--out", str(tmp_path / "shop.yaml"))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"persona: {orders}: cannot tell the format from the suffix '.dat': init reads .csv, .txt, .tsv, .xlsx, "
        ".parquet, .json and .jsonl; copy or rename the file to one of them (a text export is usually .csv), or set "
        "format in that file's section of the config init writes (orders.format: csv) if the name must stay")


@pytest.mark.parametrize(("column", "amount"), [
    ("Sales Record Number", False), ("SalesRecordNumber", False), ("Item No.", False), ("record_no", False),
    ("ORDER ID", False), ("商品编号", False),
    # A name ending in the letters "id" is no identifier: PrestaShop's total_paid, Amount Paid.
    ("Amount Paid", True), ("Total Paid", True), ("total_paid", True), ("PAID", True), ("TotalPaid", True),
])
def test_a_column_named_like_an_identifier_is_never_an_amount(column, amount):
    assert (name_score("amount", column) is not None) == amount



def test_currencies_written_two_ways_are_one_and_a_basket_file_may_count_its_items(tmp_path):
    assert mixed_currencies(["¥12", "12元", "¥3"]) is None and mixed_currencies(["$1", "US$2"]) is None
    assert mixed_currencies(["$1", "£2", "$3"]) == "$ on 2, £ on 1 of the sampled values"
    # A basket file (one row per basket, T/F per category) with an item count is still a basket file.
    baskets = tmp_path / "baskets.csv"
    baskets.write_text("cardid,value,items,fruitveg,freshmeat,dairy\n" + "".join(
        f"{i},{10 + i}.5,{1 + i % 4},{'TF'[i % 2]},{'FT'[i % 2]},T\n" for i in range(20)), encoding="utf-8")
    config, _ = init_ok(tmp_path, baskets)
    assert config["shape"] == "wide" and config["orders"]["category_columns"] == ["fruitveg", "freshmeat", "dairy"]
