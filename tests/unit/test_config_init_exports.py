"""`persona init` on small files shaped like three real consoles' exports (a new-user trial's): a supermarket
till's sales lines (GBK, 部门 as the department, walk-in sales without a member card), a JD.com merchant order
export (one row per item, the order's amounts repeated on every item) and Shopify's orders_export.csv (the order's
fields on its first line only, `#1001` order names, offsets in the times). Each test asserts what init writes and
prints."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_config_init import init_ok

# ------------------------------------------------------------------------------------------ a till's export

POS_HEADER = ("门店编码,门店名称,小票号,收银机号,销售时间,收银员,会员卡号,商品条码,商品名称,部门,单位,销售数量,售价,销售金额,"
              "优惠金额,实收金额,支付方式")
POS_GOODS = [("6924743915763", "乐事 薯片 原味 70g", "休闲食品", "袋", 7.50),
             ("6902538004045", "青岛啤酒 500ml", "酒水饮料", "听", 5.50),
             ("2000101", "散装 红富士苹果", "生鲜", "kg", 12.80),
             ("6903148091449", "立白 洗衣液 2kg", "日化", "瓶", 29.90),
             ("6902083886417", "福临门 大米 5kg", "粮油", "袋", 39.90)]
POS_PAYMENTS = ("微信", "支付宝", "现金")
POS_UNMAPPED = ["门店编码", "门店名称", "收银机号", "收银员", "单位", "销售金额", "优惠金额"]


def pos_export(path: Path, tickets: int = 12, walk_in_every: int = 0) -> Path:
    """A till's sales lines in GBK: one to three lines per ticket (小票号); every walk_in_every-th ticket is a
    walk-in sale without a member card (会员卡号 empty on all its lines)."""
    rows = [POS_HEADER]
    for i in range(tickets):
        card = "" if walk_in_every and i % walk_in_every == 0 else f"880010{i % 5:04d}"
        for j in range(1 + i % 3):
            code, name, department, unit, price = POS_GOODS[(i + j) % len(POS_GOODS)]
            amount = f"{(j + 1) * price:.2f}"
            rows.append(f"S001,好邻居 中山路店,0120260601{i:04d},01,2026/6/{1 + i % 28} {8 + i % 12}:{i % 60:02d},李娜,"
                        f"{card},{code},{name},{department},{unit},{j + 1},{price:.2f},{amount},0.00,{amount},"
                        f"{POS_PAYMENTS[i % 3]}")
    path.write_bytes(("\n".join(rows) + "\n").encode("gbk"))
    return path


def not_mapped(file: str, columns: list[str]) -> list[str]:
    return [f"not mapped: orders: {file} column {column!r} not mapped (no contract field matches)"
            for column in columns]


def test_a_tills_department_is_the_category(tmp_path):
    # 部门 (生鲜, 日化, 粮油, ...) is the category of a supermarket till's lines; it was "no contract field matches"
    # and the export was declared to have no category.
    orders = pos_export(tmp_path / "销售流水_202606.csv")
    config, printed = init_ok(tmp_path, orders)
    assert config["orders"]["columns"] == {
        "order_id": "小票号", "customer_id": "会员卡号", "order_ts": "销售时间", "category": "部门", "quantity": "销售数量",
        "amount": "实收金额", "unit_price": "售价", "payment_method": "支付方式", "sku": "商品条码", "description": "商品名称"}
    assert printed == not_mapped("销售流水_202606.csv", POS_UNMAPPED)
    assert "    category: 部门                           # '部门' is a usual name for a category; e.g. '休闲食品'\n" in (
        tmp_path / "shop.yaml").read_text(encoding="utf-8")
