"""persona init on webshop exports: orders.guest_customer_ids when one guest-like customer id (WooCommerce writes 0
for a guest checkout) holds far more orders than any customer (a large real customer is left alone), and a line
amount beside an order total."""

from __future__ import annotations

from pathlib import Path

from pipelines.config_init import draft_config
from tests.unit.test_config_init import init_ok

HEADER = "Order ID,Date Created,Status,Customer ID,SKU,Category,Qty,Line Total"


STATUSES = ["completed"] * 7 + ["processing", "on-hold", "refunded", "cancelled"]


def webshop_export(path: Path, top_customer: str, top_every: int = 4, wholesale_every: int = 0) -> Path:
    """400 orders of 80 customers (5 each), and every `top_every`-th order instead under `top_customer` (and with
    `wholesale_every`, every such order under a wholesale account, before the top customer's)."""
    lines = [HEADER]
    for order in range(1, 401):
        customer = top_customer if order % top_every == 0 else f"{1000 + order % 80}"
        if wholesale_every and order % wholesale_every == 0:
            customer = "C-WHOLESALE"
        status = STATUSES[order % len(STATUSES)]
        lines.append(f"{order},2024-06-{1 + order % 28:02d} 10:{order % 60:02d},{status},{customer},"
                     f"SKU{order % 7},grocery,1,{10 + order % 9}.50")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_guest_id_holding_a_quarter_of_the_orders_is_proposed_as_one(tmp_path):
    config, printed = init_ok(tmp_path, webshop_export(tmp_path / "orders.csv", "0"))

    assert config["orders"]["guest_customer_ids"] == ["0"]
    # WooCommerce's on-hold awaits payment (a bank transfer): no purchase yet, as pending is (cancelled is built in).
    assert config["values"]["cancelled_statuses"] == ["on-hold", "refunded"]
    assert "to decide: orders.guest_customer_ids: Customer ID '0' holds 100 of the 400 sampled orders (25%), 20x " \
           "the median customer's: taken as a guest or walk-in account, its orders set aside like sales without a " \
           "customer id; remove the line if '0' is one real customer" in printed


def test_a_guest_id_behind_a_larger_wholesale_account_is_still_found(tmp_path):
    config, _ = init_ok(tmp_path, webshop_export(tmp_path / "orders.csv", "guest", top_every=5, wholesale_every=3))
    assert config["orders"]["guest_customer_ids"] == ["guest"]


def test_a_large_real_customer_or_a_small_zero_is_not_a_guest(tmp_path):
    (tmp_path / "big").mkdir()
    config, printed = init_ok(tmp_path / "big", webshop_export(tmp_path / "big" / "orders.csv", "C-WHOLESALE"))
    assert "guest_customer_ids" not in config["orders"]
    assert not any("guest" in line for line in printed)
    # Customer 0 with 5 orders, as many as the others: a real customer numbered from 0.
    (tmp_path / "zero").mkdir()
    config, _ = init_ok(tmp_path / "zero", webshop_export(tmp_path / "zero" / "orders.csv", "0", top_every=80))
    assert "guest_customer_ids" not in config["orders"]


def test_an_order_total_beside_a_line_amount_leaves_the_line_amount_mapped(tmp_path):
    """A Youzan export repeats the order's 订单实付金额 on every line beside each line's 商品实际成交金额: init maps
    the line amount, and its line to decide says so instead of claiming the amount is computed."""
    lines = ["订单号,会员卡号,订单创建时间,商品名称,商品数量,商品单价,商品实际成交金额,订单实付金额"]
    for order in range(1, 41):
        paid = [9.5 * (1 + order % 3), 12.0, 3.5 * (1 + order % 2)]
        lines += [f"E2024{order:06d},VIP{880000 + order % 12},2024-06-{1 + order % 28:02d} 10:00:00,商品{n},1,"
                  f"{paid[n]:.2f},{paid[n]:.2f},{sum(paid):.2f}" for n in range(3)]
    orders = tmp_path / "youzan.csv"
    orders.write_text("\n".join(lines) + "\n", encoding="utf-8")

    config, printed = init_ok(tmp_path, orders)

    assert config["orders"]["columns"]["amount"] == "商品实际成交金额"
    decided = [line for line in printed if line.startswith("to decide: orders.columns.amount: ")]
    assert len(decided) == 1 and decided[0].startswith("to decide: orders.columns.amount: 订单实付金额 ")
    assert decided[0].endswith("an order total, not a line amount; amount is 商品实际成交金额, which holds each "
                               "line's own amount")


def test_no_guest_id_is_proposed_for_the_real_exports(online_retail, seed_baskets):
    """Data nobody here generated: the online-retail export leaves a guest's Customer ID blank (no stand-in id),
    and the seed table's customers each buy a few baskets. Neither has an id that collects the guests' orders."""
    for export in (online_retail, seed_baskets):
        draft = draft_config(export)
        assert "guest_customer_ids" not in draft.sections[0].extra, export.name
        assert not [line for line in draft.undecided if "guest_customer_ids" in line], export.name


def woo_orders(path: Path, items_column: str, items, customer: str = "Customer ID") -> Path:
    """60 WooCommerce orders of 20 customers, one row per order, the items packed in `items_column`: items(n) is
    order n's cell. The gateway's id beside the payment method's title, as WooCommerce writes both."""
    gateways = [("stripe", "Credit Card (Stripe)"), ("cod", "Cash on delivery")]
    lines = [f"Order Number,Order Date,Order Status,{customer},Payment Method,Payment Method Title,{items_column},"
             "Order Shipping,Order Total"]
    lines += [f'{1000 + n},2024-05-{1 + n % 28:02d} 09:{n % 60:02d}:00,completed,{100 + n % 20},'
              f'{",".join(gateways[n % 2])},"{items(n)}",4.90,{12 + n % 9}.90' for n in range(60)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_items_packed_in_one_cell_of_a_row_per_order_are_no_line_field(tmp_path):
    """A trial's WooCommerce export packed each order's items in one cell ("Milk × 2, Bread × 1"): run as order
    lines, it gave 4,503 items instead of 23,902 and no categories, and init's only hint was that a column named like
    a quantity did not fit. Init now says what such a file gives and what to export instead."""
    goods = ["Milk", "Bread", "Eggs", "Coffee beans", "Apples"]
    orders = woo_orders(tmp_path / "orders.csv", "Items",
                        lambda n: ", ".join(f"{goods[(n + k) % 5]} × {1 + k}" for k in range(1 + n % 3)))

    config, printed = init_ok(tmp_path, orders)

    columns = config["orders"]["columns"]
    assert "Items" not in columns.values() and columns["category"] is None
    assert columns["order_id"] == "Order Number" and columns["amount"] == "Order Total"
    # What the buyer chose, not the gateway's id (bacs, cod), and its spellings guessed.
    assert columns["payment_method"] == "Payment Method Title"
    assert config["values"]["payment_aliases"] == {"Cash on delivery": "CASH", "Credit Card (Stripe)": "CARD"}
    [decided] = [line for line in printed if line.startswith("to decide: orders: orders.csv holds one row per order")]
    assert decided == (
        "to decide: orders: orders.csv holds one row per order, its items packed in Items (several items packed in "
        "one cell on 67% of the sampled rows, e.g. 'Bread × 1, Eggs × 2'): read as one line per order, customers, "
        "orders and money are right, but segments use no categories and each order counted as one item; for "
        "categories per item, export one row per order line (an order-items export, Taobao's 宝贝报表) and run "
        "persona init on it")
    text = (tmp_path / "shop.yaml").read_text(encoding="utf-8")
    assert "# not mapped: Items (several items packed in one cell on 67% of the sampled rows" in text
    # An order's total counts its shipping as spend: said, since the report's money figures add up this amount.
    assert ("to decide: orders.columns.amount: Order Total is each order's total: the shipping or fees it includes "
            "(Order Shipping beside it) count as spend; map a total without them if the export has one") in printed


def test_a_product_column_listing_names_without_counts_is_packed_too_but_not_in_order_lines(tmp_path):
    # WooCommerce's Analytics export: "Product(s)" lists names, "Items sold" counts them.
    (tmp_path / "woo").mkdir()
    goods = ["Hoodie", "Beanie", "Cap", "T-Shirt", "Belt"]
    orders = woo_orders(tmp_path / "woo" / "orders.csv", "Product(s)",
                        lambda n: ", ".join(goods[(n + k) % 5] for k in range(1 + n % 2)), customer="Customer User")
    config, printed = init_ok(tmp_path / "woo", orders)
    assert config["orders"]["columns"]["customer_id"] == "Customer User"  # an older WooCommerce export's name
    assert "Product(s)" not in config["orders"]["columns"].values()
    assert any(line.startswith("to decide: orders: orders.csv holds one row per order, its items packed in "
                               "Product(s) (several items packed in one cell on 50% of the sampled rows") for line in printed)
    # Order lines whose product names hold commas: an order id repeats, so no cell is a packed order.
    (tmp_path / "lines").mkdir()
    lines = ["Order Number,Order Date,Customer ID,Product,Qty,Line Total"]
    lines += [f'{1000 + n // 2},2024-05-{1 + n % 28:02d} 09:00:00,{100 + n % 20},"Hoodie, size {n % 3}",1,9.50'
              for n in range(60)]
    orders = tmp_path / "lines" / "orders.csv"
    orders.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config, printed = init_ok(tmp_path / "lines", orders)
    assert config["orders"]["columns"]["description"] == "Product"
    assert not any("packed" in line for line in printed)


def test_packed_items_are_seen_past_a_row_exported_twice(tmp_path):
    """A trial's 美团外卖 export, one row per order with its dishes in one cell (宫保鸡丁*1;米饭*2), repeated one row by
    mistake: the repeated order id made init take it for a file of order lines, and the dishes went unseen."""
    dishes = ["宫保鸡丁", "米饭", "可乐(大)", "担担面"]
    rows = ["订单编号,下单时间,订单状态,菜品,顾客实付,用户ID"] + [
        f"3301{n:014d},2024-03-{1 + n % 28:02d} 12:{n % 60:02d}:00,已完成,"
        f"{';'.join(f'{dishes[(n + k) % 4]}*{1 + k}' for k in range(1 + n % 3))},{20 + n % 9}.50,u{n % 13:04d}"
        for n in range(60)]
    rows.append(rows[5])
    orders = tmp_path / "美团外卖_订单明细.csv"
    orders.write_text("\n".join(rows) + "\n", encoding="utf-8")
    config, printed = init_ok(tmp_path, orders)
    assert "菜品" not in config["orders"]["columns"].values()
    assert any(line.startswith("to decide: orders: 美团外卖_订单明细.csv holds one row per order, its items packed in 菜品")
               for line in printed)
