"""`persona init`: a first source config from a shop's own files, for the user to review.

Each file is sniffed and sampled, and its columns are matched to the contract's fields by name, in Chinese and
English (pipelines/config_match.py: VOCABULARY, a column named as the field, a known name, then a name containing a
known word); a match is kept only when the values fit the field (dates parse, amounts are numbers). The shape
is wide when columns hold only flag tokens (T/F) and no category or product column exists. The values init can
read off the sample (date formats, payment spellings, home-owner tokens, monthly income) go into the config; what
it cannot decide is written as a comment and returned as one line each (`Draft.undecided`), as are the columns it
left unmapped (`Draft.unmapped`).
"""

from __future__ import annotations

import glob
import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import yaml

from assets.raw.mapping import joined_order_time
from assets.staging.bands import read_band
from pipelines.config_duplicates import repeated_lines
from pipelines.config_match import (
    EXCEL_SERIAL,
    FLAG_TOKENS,
    WHAT,
    Match,
    date_coverage,
    doubt_order_time,
    example,
    flag_columns,
    looks_like_order_numbers,
    match_columns,
    name_score,
    named_like,
    normalise,
    time_of_day_column,
)
from pipelines.config_order_lines import (
    OrderLevel,
    fill_down_fields,
    filled_down,
    guest_account,
    match_line_amount,
    order_id_scope,
)
from pipelines.config_sniff import Sniffed, describe, sniff_file
from pipelines.core.config import (
    CUSTOMER_FIELDS,
    DEFAULT_VALUE_MAPS,
    LONG_ORDER_FIELDS,
    PRODUCT_FIELDS,
    PROFILE_FIELDS,
    WIDE_ORDER_FIELDS,
)

PII = re.compile(r"phone|mobile|^tel|手机|电话|email|邮箱|address|地址|street|姓名|^name$|(billing|shipping)name|"
                 r"(customer|member|client|buyer|recipient|contact)name|fullname|firstname|lastname|surname|收货人|联系人|"
                 r"身份证|idcard|wechatid|微信号|^qq")
# Payment spellings guessed from their words. CHECK as a word only ("PayPal Express Checkout" is no cheque); PAY
# not in PAYMENT ("Shopify Payments" is no wallet: Shopify's card processing, as Stripe is).
PAYMENT_GUESSES = ((re.compile(r"GIFT|VOUCHER|COUPON|POINT|礼品|储值|积分|券"), None),
                   (re.compile(r"CASH|现金"), "CASH"), (re.compile(r"CHEQUE|\bCHECK\b|支票"), "CHEQUE"),
                   (re.compile(r"CREDIT|DEBIT|VISA|MASTER|AMEX|BANK|SHOPIFY PAYMENTS|STRIPE|刷卡|银行|银联|信用|借记"),
                    "CARD"),
                   (re.compile(r"PAY(?!MENT)|WALLET|MOBILE|QR|微信|支付宝|扫码|手机"), "MOBILE"))
GENDER_GUESSES = {"先生": "M", "男士": "M", "MAN": "M", "MR": "M", "BOY": "M", "女士": "F", "小姐": "F",
                  "WOMAN": "F", "MS": "F", "MRS": "F", "GIRL": "F"}
OWNER_TRUE = re.compile(r"OWN|有房|自有|有")
OWNER_FALSE = re.compile(r"RENT|NONE|无|租|没有")
# Statuses whose orders are no purchase, set aside as cancelled: cancelled, voided or refunded in full, and not paid
# yet (等待付款, pending, WooCommerce's on-hold: the customer may never pay). A partial refund (partially_refunded,
# 部分退款) is still a purchase.
CANCELLED_GUESS = re.compile(r"CANCEL|VOID|REFUND|取消|关闭|退款|作废")
PARTIAL = re.compile(r"PARTIAL|部分")
UNPAID_GUESS = re.compile(r"UNPAID|NOT[ _-]?PAID|PENDING|AWAITING[ _-]?PAYMENT|ON[ _-]?HOLD"
                          r"|待付款|未付款|待支付|未支付")
MAX_CATEGORIES = 60
FIELD_ORDER = list(dict.fromkeys((*LONG_ORDER_FIELDS, *WIDE_ORDER_FIELDS, *CUSTOMER_FIELDS, *PRODUCT_FIELDS)))


@dataclass
class Section:
    """One input of the config: its file, what its columns map to, and the notes on it."""

    key: str  # orders, customers, products
    sniffed: Sniffed
    matches: dict[str, Match] = field(default_factory=dict)  # contract field -> match
    absent: dict[str, str] = field(default_factory=dict)  # field declared absent (null) -> why
    extra: dict[str, object] = field(default_factory=dict)  # further keys of the section (date_formats, ...)
    extra_notes: dict[str, str] = field(default_factory=dict)  # key -> comment
    unmapped: dict[str, str] = field(default_factory=dict)  # column -> why it is left out
    order_level: list[OrderLevel] = field(default_factory=list)  # amounts refused as the line amount
    time_column: str | None = None  # the order time's time of day, when order_ts maps a date-only column

    @property
    def name(self) -> str:
        return self.sniffed.path.name


@dataclass
class Draft:
    """The config init writes, and what it could not map or decide (one printed line each)."""

    shape: str
    sections: list[Section]
    values: dict[str, object] = field(default_factory=dict)
    value_notes: dict[str, str] = field(default_factory=dict)
    pii: dict[str, str] = field(default_factory=dict)  # column -> why
    quality_hints: list[str] = field(default_factory=list)  # commented-out keys
    unmapped: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)

    def section(self, key: str) -> Section | None:
        return next((s for s in self.sections if s.key == key), None)


# ------------------------------------------------------------------------------------------------- drafting


def draft_config(orders: Path, customers: Path | None = None, products: Path | None = None) -> Draft:
    """Sniff the files and draft the config (pipelines/config_sniff.SniffError names a file init cannot read)."""
    order_file = sniff_file(orders)
    long_matches, order_totals = match_line_amount(order_file, LONG_ORDER_FIELDS)
    wide_matches = match_columns(order_file, WIDE_ORDER_FIELDS)
    taken = {m.column for m in (*wide_matches.values(), *long_matches.values())}
    flags, true_seen, false_seen = flag_columns(order_file, taken)
    has_lines = any(f in long_matches for f in ("category", "sku", "description")) or products is not None
    shape = "wide" if len(flags) >= 2 and not has_lines else "long"
    section = Section("orders", order_file, wide_matches if shape == "wide" else long_matches)
    if shape == "long":
        section.order_level = order_totals
        _order_id_within(section)
        _fill_down(section)
    doubt_order_time(order_file, section.matches)
    draft = Draft(shape, [section])
    guest = guest_account(order_file, section.matches)  # orders.guest_customer_ids
    if guest is not None:
        section.extra["guest_customer_ids"], section.extra_notes["guest_customer_ids"] = [guest.id], guest.note
        draft.undecided.append(guest.decision)
    if shape == "wide":
        section.extra["category_columns"] = flags
        section.extra_notes["category_columns"] = (f"{len(flags)} columns hold only flag tokens: one category each "
                                                   "(a basket bought it when the flag is true)")
        section.extra["flag_tokens"] = {"true_tokens": sorted(true_seen) or ["T"],
                                        "false_tokens": sorted(false_seen) or ["F"]}
    if products is not None:
        draft.sections.append(Section("products", sniff_file(products)))
        draft.sections[-1].matches = match_columns(draft.sections[-1].sniffed, PRODUCT_FIELDS)
    if customers is not None:
        prefer = {"customer_id": section.matches["customer_id"].column} if "customer_id" in section.matches else {}
        draft.sections.append(Section("customers", sniff_file(customers)))
        draft.sections[-1].matches = match_columns(draft.sections[-1].sniffed, CUSTOMER_FIELDS, prefer)
    _order_rules(draft, section)
    for item, required in ((draft.section("customers"), ("customer_id",)), (draft.section("products"),
                                                                             ("sku", "category"))):
        for field_name in required if item is not None else ():
            if field_name not in item.matches:
                draft.unmapped.append(
                    f"{item.key}.columns.{field_name}: no column of {item.name} looks like {WHAT[field_name]} "
                    f"(columns: {', '.join(item.sniffed.columns)}); map it before running")
    for item in draft.sections:
        item.matches = dict(sorted(item.matches.items(), key=lambda pair: FIELD_ORDER.index(pair[0])))
        _leftovers(draft, item)
    _values(draft)
    return draft


def _order_rules(draft: Draft, section: Section) -> None:
    matches, sniffed, name = section.matches, section.sniffed, section.name
    required = ("customer_id", "amount") if draft.shape == "wide" else ("customer_id", "order_ts")
    for field_name in required:
        if field_name not in matches:
            draft.unmapped.append(f"orders.columns.{field_name}: no column of {name} looks like {WHAT[field_name]} "
                                  f"(columns: {', '.join(sniffed.columns)}); map it before running")
    if draft.shape == "long":
        if "order_id" not in matches:
            section.absent["order_id"] = ("no order id column: an order is one customer's lines at one timestamp "
                                          "(CHECK: lines of one checkout must share their timestamp)")
            draft.undecided.append(f"orders.columns.order_id: {name} has no order id column; declared absent "
                                   "(null): an order is one customer's lines at one timestamp; map it if one exists")
        if section.order_level:
            _order_total(draft, section)
        if "amount" not in matches and "unit_price" not in matches:
            draft.unmapped.append(f"orders.columns.amount: no column of {name} looks like a line amount or a unit "
                                  "price; map one of them before running")
        products = draft.section("products")
        if "category" not in matches and products is None:
            described = matches.get("description")
            why = "no category column and no product table (--products)"
            if described is not None:
                why += f"; {described.column} holds product names: orders.category_rules can sort them"
            section.absent["category"] = why + "; segments then use no categories"
            draft.undecided.append(
                f"orders.columns.category: {name} has no category column; declared absent (null), segments use no "
                "categories; " + (f"write orders.category_rules on {described.column} (see "
                                  "examples/online_retail.yaml) or give --products" if described is not None
                                  else "give --products with a sku -> category table if there is one"))
        elif "category" in matches:
            distinct = len(set(sniffed.values(matches["category"].column)))
            if distinct > MAX_CATEGORIES:
                draft.undecided.append(
                    f"orders.columns.category: {matches['category'].column} has {distinct} distinct values in the "
                    f"sample, above quality.max_categories {MAX_CATEGORIES}: free text? use a product table or "
                    "orders.category_rules")
        if products is not None and "sku" not in matches:
            draft.unmapped.append(f"orders.columns.sku: no column of {name} looks like a product code, which the "
                                  "product table joins on; map it before running")
    if "order_ts" in matches:
        section.time_column = time_of_day_column(sniffed, matches)
        _date_formats(draft, section, matches["order_ts"].column)
    _duplicates(draft, section)


def _fill_down(section: Section) -> None:
    """orders.fill_down for the order's fields left blank on its later lines (Shopify), and the sample filled so,
    as staging will read it: what init then says of those columns (how well filled) is said of the filled ones."""
    found = fill_down_fields(section.sniffed, section.matches)
    if not found:
        return
    columns = [section.matches[f].column for f in found]
    section.extra["fill_down"] = list(found)
    section.extra_notes["fill_down"] = (
        f"{', '.join(columns)} blank on every line of an order but the first ({min(found.values()):.0%} of the "
        "sampled orders with several lines): a blank takes the value of the order's earlier line")
    order_column = section.matches["order_id"].column
    section.sniffed.sample = filled_down(section.sniffed.sample, order_column, columns)


def _order_id_within(section: Section) -> None:
    """orders.order_id_within when the order id repeats across the values of a store column (tickets numbered per
    store): without it, a ticket number of two stores is one order, and the second store's lines are quarantined."""
    found = order_id_scope(section.sniffed, section.matches)
    if found is None:
        return
    store, repeated, ids = found
    section.extra["order_id_within"] = [store]
    section.extra_notes["order_id_within"] = (
        f"{repeated:,} of the {ids:,} sampled {section.matches['order_id'].column} values occur in more than one "
        f"{store}: tickets numbered per store, made unique as {store}/ticket")


def _order_total(draft: Draft, section: Section) -> None:
    """The line to decide when the amount the names chose holds an order total: not mapped; the amount is another
    column (a Youzan export's 商品实际成交金额 beside the order's 订单实付金额) or computed."""
    total, amount = section.order_level[0], section.matches.get("amount")
    price = section.matches.get("unit_price")
    computed = (f"amount is {amount.column}, which holds each line's own amount" if amount is not None
                else f"amount is left to quantity × unit_price ({price.column})" if price is not None
                else "amount is left to quantity × unit_price, and no column looks like a unit price")
    draft.undecided.append(f"orders.columns.amount: {total.seen()}: an order total, not a line amount; {computed}")


def _date_formats(draft: Draft, section: Section, column: str) -> None:
    values = section.sniffed.values(column)
    if section.time_column is not None:  # the formats read the two columns joined, as the raw layer joins them
        parts = (pl.col(c).cast(pl.String).str.strip_chars() for c in (column, section.time_column))
        joined = joined_order_time(*parts)
        values = section.sniffed.sample.select(joined).to_series().drop_nulls().to_list()
        column = f"{column} + {section.time_column}"
    if values and sum(1 for v in values if EXCEL_SERIAL.match(v)) >= 0.8 * len(values):
        section.extra["excel_serial_dates"] = True
        section.extra_notes["excel_serial_dates"] = f"{column} holds Excel serial day numbers ({values[0]})"
        return
    formats, share, iso, ambiguous, unread = date_coverage(values)
    if not formats:
        section.extra_notes["date_formats"] = f"{column} reads as ISO 8601 (tried after date_formats)"
        return
    section.extra["date_formats"] = formats
    section.extra_notes["date_formats"] = f"read {share:.0%} of the distinct values of {column}" + (
        ", the rest as ISO 8601" if iso else "")
    if any("%z" in f for f in formats):
        section.extra_notes["date_formats"] += "; %z reads the offset: times are converted to orders.timezone"
    if ambiguous:
        # Quote a value of the month-first format, not the column's first value (which may be ISO or 2024年…).
        month_first = next(f for f in formats if f.startswith("%m/%d/%Y"))
        example = next((v for v in values if re.match(r"\d{1,2}/\d{1,2}/\d{4}", v.strip())), values[0])
        section.extra_notes["date_formats"] += "; CHECK: month first or day first?"
        draft.undecided.append(f"orders.date_formats: {column} ('{example}') reads month first and day first "
                               f"alike (no day above 12 in the sample); wrote {month_first}: check it")
    if share < 0.99:
        draft.undecided.append(f"orders.date_formats: {share:.0%} of the distinct values of {column} read as dates; "
                               f"the others (for example {unread!r}) are quarantined unless you add their format")


def _duplicates(draft: Draft, section: Section) -> None:
    """Rows staging would drop as exact duplicates (alike in every mapped line field): a column telling them apart
    is mapped as line_id; otherwise whether they are real repeated scans is to decide, with what dropping costs."""
    if draft.shape != "long" or "line_id" in section.matches:
        return
    skip = {c for c in section.sniffed.columns if PII.search(normalise(c))}
    repeats = repeated_lines(section.sniffed, section.matches, section.extra.get("order_id_within", []), skip)
    if repeats is None:
        return
    copies, name, cost = repeats.copies, section.name, repeats.cost()
    if repeats.line_id is not None:
        line_id = repeats.line_id
        section.matches["line_id"] = Match("line_id", line_id, (
            f"{line_id!r} tells apart the lines of an order; CHECK: {copies} sampled row(s) repeat an earlier row in "
            f"every other mapped field{cost}: without a line id they would be dropped as exact duplicates"))
        draft.undecided.append(
            f"orders.columns.line_id: {copies} row(s) of {name} repeat an earlier row in every mapped field{cost} "
            f"and differ in {line_id}: mapped as the line id, so that each is a line of its own (unmapped, staging "
            "would drop them as exact duplicates); remove it if they are copies of one line")
        return
    alike = "in every column" if repeats.every_column else (
        "in every mapped field (not in every column, but no unmapped column tells each line of an order apart)")
    draft.undecided.append(
        f"orders.exact_duplicates: {copies} row(s) of {name} repeat an earlier row {alike}; dropping them (drop, the "
        f"default) leaves out {copies} line(s){cost}; set keep if they are real repeated scans (an item rung up "
        "twice)")
    section.extra_notes["exact_duplicates"] = (
        f"{copies} sampled row(s) repeat an earlier row {alike}{cost}: drop (default) or keep (real repeated "
        "scans)? CHECK")


def _leftovers(draft: Draft, section: Section) -> None:
    """Columns no field takes: personal data to drop, profile columns in a long order file, the rest left out."""
    used = ({m.column for m in section.matches.values()} | set(section.extra.get("category_columns", []))
            | set(section.extra.get("order_id_within", [])) | ({section.time_column} - {None}))
    values = {column: section.sniffed.values(column) for column in section.sniffed.columns if column not in used}
    order_level = {level.column: level for level in section.order_level}
    for column in section.sniffed.columns:
        if column in used:
            continue
        name = normalise(column)
        label = column if column.strip() else "(unnamed)"
        if not column.strip():
            why = "an unnamed column (a spreadsheet's or pandas' row index?)"
        elif column in order_level:
            where = "on its first line only" if order_level[column].first_line_only else "the same on every line"
            why = f"one value per order, {where}: an order-level amount, not a line amount"
        elif looks_like_order_numbers(values[column]):  # Shopify's Name (#1001): named like a person's, it is not
            why = f"order numbers ({values[column][0]}), not personal data; order_id takes another column"
        elif section.key != "products" and PII.search(name):  # dropped even when empty: the sample is the head
            draft.pii[column] = f"{section.name}: looks like personal data; dropped before loading"
            continue
        elif not values[column]:
            why = "empty in the sample"
        elif section.key == "orders" and draft.shape == "long" and any(name_score(f, column) for f in PROFILE_FIELDS):
            why = "a customer profile field: long-shape orders take profiles from a customer file (--customers)"
        elif section.key == "orders" and "order_ts" in section.matches and name_score("order_ts", column):
            # A second time of the order (paid, shipped, ...): say which one order_ts took, not "no field matches".
            why = f"another time of the order; order_ts takes {section.matches['order_ts'].column}"
        else:  # a column named like a field another column holds is no column that matches nothing
            fields = {"customers": CUSTOMER_FIELDS, "products": PRODUCT_FIELDS}.get(
                section.key, WIDE_ORDER_FIELDS if draft.shape == "wide" else LONG_ORDER_FIELDS)
            why = named_like(section.sniffed, column, fields, section.matches) or "no contract field matches"
        section.unmapped[column] = why
        draft.unmapped.append(f"{section.key}: {section.name} column {label!r} not mapped ({why})")
    for column in [m.column for m in section.matches.values() if PII.search(normalise(m.column))
                   and not looks_like_order_numbers(section.sniffed.values(m.column))]:
        draft.undecided.append(f"privacy.pii_columns: {section.name} column {column!r} is personal data mapped to a "
                               "field; hash it (privacy.pii_columns: {" + column + ": hash}, needs PERSONA_PII_SALT)?")


def _field_values(draft: Draft, field_name: str) -> list[tuple[Section, str, list[str]]]:
    found = []
    for section in draft.sections:
        if field_name in section.matches:
            column = section.matches[field_name].column
            found.append((section, column, section.sniffed.values(column)))
    return found


def _values(draft: Draft) -> None:
    """values: what the sample shows of payment spellings, gender, home owner tokens, income period, bands."""
    builtin = {k.upper() for k in DEFAULT_VALUE_MAPS["payment_aliases"]} | set(DEFAULT_VALUE_MAPS["payment_methods"])
    aliases: dict[str, str] = {}
    for section, column, values in _field_values(draft, "payment_method"):
        counts = Counter(values)
        for value, n in counts.most_common():
            if value.upper() in builtin or value in aliases:
                continue
            guess = next((code for pattern, code in PAYMENT_GUESSES if pattern.search(value.upper())), None)
            if guess:
                aliases[value] = guess
            else:
                draft.undecided.append(
                    f"values.payment_aliases: {section.name} {column} value {value!r} ({n} row(s) in the sample) is "
                    "no built-in payment code; its rows are quarantined unless you map it (values.payment_aliases: "
                    "{" + value + ": CARD}) or list it in values.payment_methods")
    if aliases:
        draft.values["payment_aliases"] = aliases
        draft.value_notes["payment_aliases"] = "guessed from the names (CHECK): " + ", ".join(aliases)
    genders: dict[str, str] = {}
    for section, column, values in _field_values(draft, "gender"):
        known = {k.upper() for k in DEFAULT_VALUE_MAPS["gender"]}
        for value, n in Counter(values).most_common():
            if value.upper() in known or value in genders:
                continue
            if value.upper() in GENDER_GUESSES:
                genders[value] = GENDER_GUESSES[value.upper()]
            else:
                draft.undecided.append(f"values.gender: {section.name} {column} value {value!r} ({n} row(s)) is "
                                       "neither M nor F; its rows are quarantined unless you map it in values.gender "
                                       f"(to M, F, or null for not known: {{{scalar(value)}: null}})")
    if genders:
        draft.values["gender"] = genders
        draft.value_notes["gender"] = "guessed (CHECK)"
    _home_owner(draft)
    for _section, column, _found in _field_values(draft, "income"):
        if re.search(r"月|month", column.lower()):
            draft.values["income_period"] = "month"
            draft.value_notes["income_period"] = f"{column} is a monthly income: staging multiplies it by 12"
    for field_name in ("age", "income"):
        for section, column, values in _field_values(draft, field_name):
            unread = Counter(v for v in values if read_band(v, field_name) is None)
            for value, n in unread.most_common(3):
                draft.undecided.append(
                    f"values.bands.{field_name}: {section.name} {column} value {value!r} ({n} row(s)) reads as no "
                    f"number or band; its rows are quarantined unless values.bands.{field_name} names a number")
    cancelled = {s.upper() for s in DEFAULT_VALUE_MAPS["cancelled_statuses"]}
    for section, _column, values in _field_values(draft, "status"):
        seen = sorted(set(values))
        extra = [v for v in seen if v.upper() not in cancelled and _no_purchase(v.upper())]
        if extra:
            draft.values["cancelled_statuses"] = extra
            draft.value_notes["cancelled_statuses"] = "guessed from the names (CHECK)"
        section.extra_notes["status"] = "statuses seen: " + ", ".join(seen[:12]) + (
            "; cancelled: " + ", ".join(v for v in seen if v.upper() in cancelled | {e.upper() for e in extra})
            if any(v.upper() in cancelled for v in seen) or extra else "; none is a cancelled status")
    _key_share(draft)


def _no_purchase(status: str) -> bool:
    """Whether an (upper-cased) order status reads as an order that is no purchase: cancelled, refunded in full,
    not paid yet."""
    cancelled = CANCELLED_GUESS.search(status) is not None and PARTIAL.search(status) is None
    return cancelled or UNPAID_GUESS.search(status) is not None


def _home_owner(draft: Draft) -> None:
    true = {t.upper() for t in FLAG_TOKENS.true_tokens}
    false = {t.upper() for t in FLAG_TOKENS.false_tokens}
    for section, column, values in _field_values(draft, "home_owner"):
        seen = sorted(set(values))
        if all(v.upper() in true | false for v in seen):
            continue
        yes = [v for v in seen if v.upper() in true or (OWNER_TRUE.search(v.upper())
                                                         and not OWNER_FALSE.search(v.upper()))]
        no = [v for v in seen if v not in yes and (v.upper() in false or OWNER_FALSE.search(v.upper()))]
        rest = [v for v in seen if v not in yes and v not in no]
        if yes and no:
            draft.values["home_owner"] = {"true_tokens": yes, "false_tokens": no}
            draft.value_notes["home_owner"] = f"{column}: guessed from the names (CHECK)"
        if rest or not (yes and no):
            draft.undecided.append(f"values.home_owner: {section.name} {column} values {rest or seen} are not "
                                   "yes/no tokens init can read; list them in values.home_owner")


def _key_share(draft: Draft) -> None:
    """A line to decide when many sampled rows have no customer id: anonymous sales (walk-in customers at a till).
    Such rows do not count against quality.max_quarantine_share; quality.min_key_share alone judges how many rows
    carry their customer id, so it is the one threshold suggested."""
    section = draft.sections[0]
    match = section.matches.get("customer_id")
    if match is None:
        return
    sample = section.sniffed.sample
    missing = sample.height - len(section.sniffed.values(match.column))
    share = missing / sample.height if sample.height else 0
    if share > 0.04:
        draft.quality_hints.append(f"min_key_share: {max(0.0, 0.97 - share):.2f}")
        rows = "sampled rows" if section.sniffed.whole else f"first {sample.height:,} rows"
        draft.undecided.append(
            f"quality: {share:.1%} of the {rows} of {section.name} have no {match.column}: anonymous sales (walk-in "
            "customers?), left out of the segments; the run is blocked when fewer rows than quality.min_key_share "
            "(default 0.95) carry a customer id: if that many anonymous sales are expected, lower it (suggested in "
            "the config, commented out)")


# ---------------------------------------------------------------------------------------------------- YAML


def scalar(value: object) -> str:
    """A YAML scalar that reads back as the value (plain when it can be, else double-quoted)."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    plain = text and "#" not in text and ": " not in text and text == text.strip()
    try:
        if plain and yaml.safe_load(f"k: {text}") == {"k": text}:
            return text
    except yaml.YAMLError:
        pass
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t").replace("\n", "\\n") + '"'


def flow(items: list) -> str:
    return "[" + ", ".join(scalar(item) for item in items) + "]"


def _width(text: str) -> int:
    """Columns the text takes in a terminal: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _line(indent: int, key: str, value: str, note: str = "") -> str:
    text = f"{' ' * indent}{key}: {value}" if value else f"{' ' * indent}{key}:"
    return f"{text}{' ' * max(1, 45 - _width(text))}# {note}" if note else text


def relative_path(path: Path, base: Path) -> str:
    """The path as the config writes it: relative to the config's folder when they share more than the root
    (configs resolve relative paths against their own folder), else absolute; glob characters escaped."""
    target, folder = path.resolve(), base.resolve()
    try:
        shared = os.path.commonpath([target, folder])
        shown = os.path.relpath(target, folder) if Path(shared) != Path(Path(shared).anchor) else str(target)
    except ValueError:
        shown = str(target)
    return glob.escape(shown)


def render_yaml(draft: Draft, out: Path, name: str) -> str:
    files = ", ".join(s.name for s in draft.sections)
    lines = [f"# Written by `persona init` from {files}.",
             "# Review it, above all the lines marked CHECK; each column's comment says why it was matched, and",
             "# docs/configuration.md explains every key. Then dry-run it and run it:",
             f"#   persona check --config {out.name}",
             f"#   persona run --config {out.name} --warehouse <folder>/warehouse.duckdb",
             _line(0, "name", scalar(name), "the shop: a warehouse holds one, runs of another name are refused"),
             _line(0, "shape", draft.shape, "one row per basket, one flag column per category" if draft.shape ==
                   "wide" else "one row per order line")]
    for section in draft.sections:
        sniffed = section.sniffed
        lines.append(f"{section.key}:")
        lines.append(f"  # {section.name}: {describe(sniffed)}")
        lines.append(_line(2, "path", scalar(relative_path(sniffed.path, out.parent))))
        if sniffed.format == "csv":
            lines.append(_line(2, "encoding", sniffed.encoding))
            if sniffed.delimiter != ",":
                shown = {"\t": "tab"}.get(sniffed.delimiter, sniffed.delimiter)
                lines.append(_line(2, "delimiter", scalar(shown)))
        if sniffed.skip_rows:
            blank = " and blank lines" if sniffed.skip_rows > len(sniffed.title_lines) else ""
            lines.append(_line(2, "skip_rows", str(sniffed.skip_rows), f"title lines{blank} above the header"))
        lines.append(_line(2, "columns", "", "contract field: source column"))
        for field_name, why in section.absent.items():
            lines.append(_line(4, field_name, "null", why))
        for field_name, match in section.matches.items():
            note = match.why + example(sniffed, match.column)
            if field_name == "order_ts" and section.time_column is not None:
                note = (f"{match.why}; {section.time_column} holds its time of day (e.g. "
                        f"{sniffed.values(section.time_column)[0]!r}): the two are read as one")
                lines.append(_line(4, field_name, f"[{scalar(match.column)}, {scalar(section.time_column)}]", note))
                continue
            if field_name == "status" and "status" in section.extra_notes:
                note += "; " + section.extra_notes["status"]
            lines.append(_line(4, field_name, scalar(match.column), note))
        for key in ("date_formats", "excel_serial_dates", "order_id_within", "guest_customer_ids", "fill_down",
                    "category_columns", "flag_tokens"):
            if key in section.extra:
                value = section.extra[key]
                if isinstance(value, dict):
                    lines.append(_line(2, key, "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"))
                else:
                    lines.append(_line(2, key, flow(value) if isinstance(value, list) else scalar(value),
                                       section.extra_notes.get(key, "")))
            elif key in section.extra_notes:
                lines.append(f"  # {key}: {section.extra_notes[key]}")
        if "exact_duplicates" in section.extra_notes:
            lines.append(f"  # exact_duplicates: {section.extra_notes['exact_duplicates']}")
        for column, why in section.unmapped.items():
            lines.append(f"  # not mapped: {column or '(unnamed)'!s} ({why})")
    if draft.values:
        lines.append("values:                                      # added to the built-in values")
        for key, value in draft.values.items():
            note = draft.value_notes.get(key, "")
            if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
                shown = "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
            elif isinstance(value, dict):
                shown = "{" + ", ".join(f"{scalar(k)}: {scalar(v)}" for k, v in value.items()) + "}"
            else:
                shown = flow(value) if isinstance(value, list) else scalar(value)
            lines.append(_line(2, key, shown, note))
    if draft.pii:
        lines.append("privacy:")
        lines.append("  pii_columns:")
        for column, why in draft.pii.items():
            lines.append(_line(4, scalar(column), "drop", why))
    if draft.quality_hints:
        lines.append("# quality:                                  # CHECK: many rows lack a customer id: anonymous "
                     "sales, left out of the segments (see above)")
        lines += [f"#   {hint}" for hint in draft.quality_hints]
    return "\n".join(lines) + "\n"
