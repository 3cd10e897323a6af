"""`persona init`: what the sample's orders of several lines tell about the columns matched by name
(pipelines/config_match.py).

An order total is not a line amount. A JD.com export repeats the order's 应付金额 (what the buyer owes) on every
line of the order; Shopify writes its Subtotal and Total on the order's first line only. Mapped as `amount`, such
a column counts the order once per line (a trial's revenue came out 75% too high). Among the sampled orders whose
lines differ (another sku, name or price), a column that holds the same value on every line, or a value on the
first line only, of nearly all of them is an order-level amount: it is refused as the amount and staging computes
amount = quantity × unit_price instead (docs/configuration.md, the contract's amount field).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from pipelines.config_match import Match, match_columns, normalise
from pipelines.config_sniff import Sniffed

# Orders with several differing lines needed before a column is judged order-level, and the share of them that
# must show it: "nearly all", as a line amount may repeat by chance (two items at one price).
MIN_ORDERS = 5
NEARLY_ALL = 0.9
# The fields that tell one line of an order from another.
LINE_FIELDS = ("sku", "description", "unit_price", "quantity", "category", "line_id")


@dataclass
class OrderLevel:
    """A column holding one value per order, not one per line."""

    column: str
    share: float  # of the sampled orders with several differing lines
    first_line_only: bool  # on the order's first line only (Shopify), else the same on every line (JD)

    def seen(self) -> str:
        """What the sample shows, for the printed line and the YAML comment."""
        where = "on the first line only" if self.first_line_only else "the same value on every line"
        verb = "is filled" if self.first_line_only else "holds"
        return f"{self.column} {verb} {where} of {self.share:.0%} of the sampled orders with several lines"


def multi_line_orders(sniffed: Sniffed, order_column: str, columns: list[str]) -> list[dict[str, list[str]]]:
    """The sample's orders of several lines, each as column -> its lines' values in file order ('' when empty)."""
    wanted = list(dict.fromkeys(c for c in columns if c != order_column))
    text = [pl.col(c).fill_null("").str.strip_chars() for c in [order_column, *wanted]]
    frame = sniffed.sample.select(text).filter(pl.col(order_column) != "")
    grouped = frame.group_by(order_column, maintain_order=True).agg(*[pl.col(c) for c in wanted],
                                                                    pl.len().alias("__lines"))
    return grouped.filter(pl.col("__lines") > 1).select(wanted).to_dicts()


def order_level(sniffed: Sniffed, order_column: str, column: str, line_columns: list[str]) -> OrderLevel | None:
    """The column as an order-level value, when the sampled orders whose lines differ in line_columns show it on
    nearly all of them; None when they do not, or when too few orders have several lines to tell."""
    if not line_columns:
        return None
    orders = [o for o in multi_line_orders(sniffed, order_column, [column, *line_columns])
              if any(len(set(o[c])) > 1 for c in line_columns if c != column)]
    if len(orders) < MIN_ORDERS:
        return None
    same = sum(1 for o in orders if o[column][0] and len(set(o[column])) == 1)
    first_only = sum(1 for o in orders if o[column][0] and not any(o[column][1:]))
    share = (same + first_only) / len(orders)
    return OrderLevel(column, share, first_only > same) if share >= NEARLY_ALL else None


def match_line_amount(sniffed: Sniffed, fields: tuple[str, ...]) -> tuple[dict[str, Match], list[OrderLevel]]:
    """match_columns, refusing as the amount every column that holds an order-level value; the refused ones in
    the order they were tried (the first is the one the names alone would have mapped)."""
    refused: list[OrderLevel] = []
    while True:
        matches = match_columns(sniffed, fields, refuse={"amount": {r.column for r in refused}})
        amount, order = matches.get("amount"), matches.get("order_id")
        if amount is None or order is None:
            return matches, refused
        line_columns = [matches[f].column for f in LINE_FIELDS if f in matches]
        found = order_level(sniffed, order.column, amount.column, line_columns)
        if found is None:
            return matches, refused
        refused.append(found)


# A "price" that is each line's total for its quantity (Amazon's item-price: 25.98 for two of a 12.99 item): mapped as
# the unit price, staging multiplies it by the quantity again, and a trial's revenue came out doubled. Judged on the
# skus sampled at quantity 1 and above: a line total grows with the quantity, a unit price does not.
LINE_TOTAL_SHARE = 0.8  # of the judged lines above quantity 1
MIN_PRICE_PAIRS = 5
PRICE_TOLERANCE = 0.01  # relative: prices rounded to the cent


def price_holds_line_totals(sniffed: Sniffed, matches: dict[str, Match]) -> str | None:
    """For a unit price mapped beside a quantity and a sku, with no amount: why the price column holds line totals
    (each line's price for its quantity), or None when it reads as a unit price or the sample cannot tell."""
    price, quantity, sku = (matches.get(f) for f in ("unit_price", "quantity", "sku"))
    if price is None or quantity is None or sku is None or "amount" in matches:
        return None
    lines = sniffed.sample.select(
        sku=pl.col(sku.column).cast(pl.String),
        quantity=pl.col(quantity.column).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False),
        price=pl.col(price.column).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False),
    ).drop_nulls().filter((pl.col("quantity") > 0) & (pl.col("price") > 0))
    single = lines.filter(pl.col("quantity") == 1).group_by("sku").agg(single=pl.col("price").median())
    several = lines.filter(pl.col("quantity") > 1).join(single, on="sku")
    grows = (pl.col("price") - pl.col("quantity") * pl.col("single")).abs() \
        <= PRICE_TOLERANCE * pl.col("quantity") * pl.col("single")
    totals = int(several.select(grows.sum()).item()) if several.height else 0
    if totals < MIN_PRICE_PAIRS or totals < LINE_TOTAL_SHARE * several.height:
        return None
    example = several.filter(grows).sort("sku").row(0, named=True)
    return (f"{price.column} holds each line's total for its quantity, not a unit price: {totals} of the "
            f"{several.height} sampled lines above quantity 1 cost their quantity times the same sku's price at 1 "
            f"(sku {example['sku']}: {example['single']:g} for 1, {example['price']:g} for {example['quantity']:g})")


# ------------------------------------------------------------------------------------------------ fill down

# Fields an order states once: who, when, how it was paid, where, its status. Shopify writes them on the order's
# first line only and leaves them blank on the others; orders.fill_down gives such a blank the value of the same
# order's earlier line (in file order), without which those lines would lack a customer and a time.
FILL_DOWN_FIELDS = ("customer_id", "order_ts", "payment_method", "channel", "status")


def fill_down_fields(sniffed: Sniffed, matches: dict[str, Match]) -> dict[str, float]:
    """Field -> the share of the sampled orders with several lines (and the field on their first line) that leave
    it blank on every later line, for the mapped FILL_DOWN_FIELDS where that is nearly all of them."""
    order = matches.get("order_id")
    fields = [f for f in FILL_DOWN_FIELDS if f in matches]
    if order is None or not fields:
        return {}
    orders = multi_line_orders(sniffed, order.column, [matches[f].column for f in fields])
    found = {}
    for field_name in fields:
        lines = [o[matches[field_name].column] for o in orders if o[matches[field_name].column][0]]
        blank_later = sum(1 for values in lines if not any(values[1:]))
        if len(lines) >= MIN_ORDERS and blank_later / len(lines) >= NEARLY_ALL:
            found[field_name] = blank_later / len(lines)
    return found


def filled_down(sample: pl.DataFrame, order_column: str, columns: list[str]) -> pl.DataFrame:
    """The sample as staging reads it with orders.fill_down: a blank cell of the columns takes the value of the same
    order's earlier line. Rows without an order id are left as they are (they belong to no order)."""
    has_order = pl.col(order_column).fill_null("").str.strip_chars() != ""
    blank_as_null = [pl.when(pl.col(c).fill_null("").str.strip_chars() == "").then(None).otherwise(pl.col(c)).alias(c)
                     for c in columns]
    return sample.with_columns(blank_as_null).with_columns(
        pl.when(has_order).then(pl.col(c).forward_fill().over(order_column)).otherwise(pl.col(c)).alias(c)
        for c in columns)


# ------------------------------------------------------------------------------------------------ order id scope

# Columns naming where a sale was rung up. A chain's tills number their tickets per store (and often per day), so the
# same ticket number in two stores is two orders: orders.order_id_within makes the id unique within the store.
STORE_NAME = re.compile(r"门店|店铺|店号|分店|网点|store|shop|branch|outlet", re.IGNORECASE)


def order_id_scope(sniffed: Sniffed, matches: dict[str, Match]) -> tuple[str, int, int] | None:
    """(store column, order ids seen in more than one store, order ids sampled) for an unmapped store-named column
    that the mapped order id repeats across, in at least MIN_ORDERS of the sampled ids; None otherwise."""
    order = matches.get("order_id")
    if order is None:
        return None
    taken = {m.column for m in matches.values()}
    for column in sniffed.columns:
        if column in taken or not STORE_NAME.search(column):
            continue
        ids = (sniffed.sample.select(pl.col(order.column).fill_null("").str.strip_chars().alias("id"),
                                     pl.col(column).fill_null("").str.strip_chars().alias("store"))
               .filter(pl.col("id") != "").group_by("id").agg(pl.col("store").n_unique().alias("stores")))
        repeated = ids.filter(pl.col("stores") > 1).height
        if repeated >= MIN_ORDERS:
            return column, repeated, ids.height
    return None


# A customer id that stands for a guest checkout or a walk-in account rather than a person: a zero (WooCommerce writes
# 0 for guests), -1, or a word shops use for it. Such an id collects every guest's orders, far more than any customer.
GUEST_ID = re.compile(r"^(?:-?0+|-1|guests?|anonymous|walk-?in|visitor|unknown|散客|游客|访客|匿名|非会员)$",
                      re.IGNORECASE)
GUEST_MIN_SHARE = 0.01  # of the sampled orders
GUEST_MIN_FOLD = 10  # times the orders of the median customer


@dataclass(frozen=True)
class GuestAccount:
    """A guest-like customer id holding far more of the sampled orders than any customer."""

    column: str
    id: str
    orders: int
    sampled: int
    fold: float  # times the median customer's orders

    @property
    def note(self) -> str:
        return (f"{self.column} {self.id!r} has {self.orders:,} of the {self.sampled:,} sampled orders, "
                f"{self.fold:,.0f}x the median customer's: a guest account")

    @property
    def decision(self) -> str:
        return (f"orders.guest_customer_ids: {self.column} {self.id!r} holds {self.orders:,} of the {self.sampled:,} "
                f"sampled orders ({self.orders / self.sampled:.0%}), {self.fold:,.0f}x the median customer's: taken "
                "as a guest or walk-in account, its orders set aside like sales without a customer id; remove the "
                f"line if {self.id!r} is one real customer")


def guest_account(sniffed: Sniffed, matches: dict[str, Match]) -> GuestAccount | None:
    """The mapped customer id's guest-like value (GUEST_ID) with most orders, when it holds at least GUEST_MIN_SHARE
    of the sampled orders and GUEST_MIN_FOLD times the median customer's; None otherwise. Orders are distinct order
    ids where one is mapped, else rows. Ids are compared as sampled (trimmed text): a spreadsheet's 0.0 is not
    proposed, though staging would read it as 0."""
    customer, order = matches.get("customer_id"), matches.get("order_id")
    if customer is None or sniffed.sample.height == 0:
        return None
    orders = pl.col(order.column) if order is not None else pl.int_range(pl.len())
    counts = (sniffed.sample.select(pl.col(customer.column).fill_null("").str.strip_chars().alias("customer"),
                                    orders.alias("order"))
              .filter(pl.col("customer") != "").group_by("customer").agg(pl.col("order").n_unique().alias("orders")))
    if counts.height < 2:
        return None
    sampled, median = int(counts.get_column("orders").sum()), float(counts.get_column("orders").median())
    # The guest-like id with most orders, even where a wholesale or staff account has more.
    guests = counts.filter(pl.col("customer").map_elements(lambda value: GUEST_ID.match(value) is not None,
                                                           return_dtype=pl.Boolean))
    if guests.height == 0:
        return None
    top = guests.sort(["orders", "customer"], descending=[True, False]).row(0, named=True)
    fold = top["orders"] / median
    if top["orders"] >= GUEST_MIN_SHARE * sampled and fold >= GUEST_MIN_FOLD:
        return GuestAccount(customer.column, top["customer"], top["orders"], sampled, fold)
    return None


# ------------------------------------------------------------------------------------------------ packed items

# One row per order with the order's items packed into one cell: WooCommerce's Analytics export ("Product(s)":
# "2× Hoodie, Beanie"), an order plugin's "Milk × 2, Bread × 1", Taobao's 订单报表 (宝贝标题: 商品A，商品B). Read as
# order lines, every order is one line of one "item", and the cell is no category. A trial's WooCommerce file came
# out with 4,503 items instead of 23,902 and no categories, with nothing said.
ITEM_SEPARATOR = re.compile(r"\s*(?:[,，;；|、\n])\s*")
# An item with its count: "Milk × 2", "Milk x2", "Milk*2", "2× Hoodie", "Hoodie (2)", "商品A（2）".
COUNTED_ITEM = re.compile(r"^(?:\d+\s*[×xX*]\s*\S.*|.*\S\s*[×xX*]\s*\d+|.*\S\s*[(（]\s*\d+\s*[)）])$")
PRODUCT_NAME = re.compile(r"product|item|goods|sku|title|商品|宝贝|货品|品名|明细")
PACKED_SHARE = 0.2  # of a column's sampled values: lists of several items
MIN_PACKED_ROWS = 10


@dataclass(frozen=True)
class PackedItems:
    """A column holding several items per cell in a file of one row per order."""

    column: str
    share: float  # of its sampled values listing several items
    example: str
    counted: bool  # the items carry their counts ("Milk × 2")

    @property
    def reason(self) -> str:
        return f"several items packed in one cell on {self.share:.0%} of the sampled rows, e.g. {self.example[:60]!r}"


def _items(value: str) -> list[str]:
    return [part for part in ITEM_SEPARATOR.split(value.strip()) if part]


def packed_items(sniffed: Sniffed, matches: dict[str, Match]) -> PackedItems | None:
    """The column packing an order's items into one cell, when the file holds one row per order: the mapped order
    id repeats on no sampled row but exact copies of a row (or none is mapped), and at least PACKED_SHARE of the
    column's sampled values list several items, each with its count ("Milk × 2, Bread × 1") or, in a column named
    like a product, without ("Hoodie, Beanie"). None otherwise: an export of order lines, or no such column."""
    order = matches.get("order_id")
    if order is not None:
        # A row exported twice repeats its id too: a trial's 美团外卖 file, one row per order with its dishes in one
        # cell, had one such copy, and its packed dishes went unseen. Two different rows of one order are lines.
        distinct = sniffed.sample.select(sniffed.columns).unique(maintain_order=True)
        ids = [v.strip() for v in distinct.get_column(order.column).drop_nulls().cast(pl.String).to_list() if v.strip()]
        if len(ids) < MIN_PACKED_ROWS or len(set(ids)) < len(ids):
            return None
    taken = {m.column for f, m in matches.items() if f not in ("description", "sku", "category", "quantity")}
    found = []
    for column in sniffed.columns:
        values = sniffed.values(column)
        if column in taken or len(values) < MIN_PACKED_ROWS:
            continue
        lists = [v for v in values if len(_items(v)) > 1]
        counted = [v for v in lists if all(COUNTED_ITEM.match(item) for item in _items(v))]
        named = PRODUCT_NAME.search(normalise(column)) is not None and order is not None
        share = len(counted if not named else lists) / len(values)
        if share >= PACKED_SHARE and (counted or named):
            example = (counted or lists)[0]
            found.append(PackedItems(column, share, example, len(counted) >= PACKED_SHARE * len(values)))
    return max(found, key=lambda packed: (packed.counted, packed.share), default=None)
