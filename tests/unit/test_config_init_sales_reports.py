"""`persona init` on small files shaped like two exports of a new-user trial: a Chinese supermarket POS's sales
detail workbook (销售明细: a title row, a 统计日期 row and a blank row above the header, bills numbered per store and
per day) and Square's "Item Sales" CSV (Qty and Count, Gross and Net Sales, a Token per line). Each test asserts
what init writes and prints, and for the workbook that `persona check` passes on what init wrote."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import xlsxwriter
import yaml
from click.testing import CliRunner

from pipelines.cli import main
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
        "order_id": None, "customer_id": "会员卡号", "order_ts": "销售时间", "category": "类别名称", "quantity": "数量",
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
