"""`persona init`: a first source config from a shop's own files, for the user to review.

Each file is sniffed and sampled, and its columns are matched to the contract's fields by name, in Chinese and
English (pipelines/config_match.py: VOCABULARY, a column named as the field, a known name, then a name containing a
known word); a match is kept only when the values fit the field (dates parse, amounts are numbers). The shape
is wide when columns hold only flag tokens (T/F) and no category, product or unit price column exists.
The values init can read off the sample (date formats, payment spellings, home-owner tokens, monthly income) go
into the config; what
it cannot decide is written as a comment and returned as one line each (`Draft.undecided`), as are the columns it
left unmapped (`Draft.unmapped`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from assets.raw.mapping import joined_order_time
from assets.staging.rules import SPREADSHEET_ROUNDED_ID
from pipelines.config_draft import Draft, Section
from pipelines.config_duplicates import repeated_lines
from pipelines.config_match import (
    EXCEL_SERIAL,
    WHAT,
    Match,
    date_coverage,
    doubt_order_time,
    flag_columns,
    looks_like_order_numbers,
    match_columns,
    name_score,
    named_like,
    normalise,
    numeric_share,
    time_of_day_column,
)
from pipelines.config_order_lines import (
    fill_down_fields,
    filled_down,
    guest_account,
    match_line_amount,
    order_id_scope,
    packed_items,
    price_holds_line_totals,
)
from pipelines.config_sniff import sniff_file
from pipelines.config_values import read_values
from pipelines.core.config import (
    CUSTOMER_FIELDS,
    LONG_ORDER_FIELDS,
    PRODUCT_FIELDS,
    PROFILE_FIELDS,
    WIDE_ORDER_FIELDS,
)
from pipelines.core.sources import SCHEDULE_TIMEZONE

PII = re.compile(r"phone|mobile|^tel|手机|电话|email|邮箱|address|地址|street|姓名|^name$|(billing|shipping)name|"
                 r"(customer|member|client|buyer|recipient|contact)name|fullname|firstname|lastname|surname|收货人|联系人|"
                 r"身份证|idcard|wechatid|微信号|^qq")
MAX_CATEGORIES = 60
FIELD_ORDER = list(dict.fromkeys((*LONG_ORDER_FIELDS, *WIDE_ORDER_FIELDS, *CUSTOMER_FIELDS, *PRODUCT_FIELDS)))


# ------------------------------------------------------------------------------------------------- drafting


def draft_config(orders: Path, customers: Path | None = None, products: Path | None = None) -> Draft:
    """Sniff the files and draft the config (pipelines/config_sniff.SniffError names a file init cannot read)."""
    order_file = sniff_file(orders)
    long_matches, order_totals = match_line_amount(order_file, LONG_ORDER_FIELDS)
    wide_matches = match_columns(order_file, WIDE_ORDER_FIELDS)
    taken = {m.column for m in (*wide_matches.values(), *long_matches.values())}
    flags, true_seen, false_seen = flag_columns(order_file, taken)
    # A basket file (the seed table) has no item of its own: a product or a unit price makes the rows lines, and
    # Yes/No columns beside them attributes (eBay's Sold Via Promoted Listings), not categories. A quantity alone
    # does not: a basket file may count its items.
    has_lines = any(f in long_matches for f in ("category", "sku", "description", "unit_price")) \
        or products is not None
    shape = "wide" if len(flags) >= 2 and not has_lines else "long"
    section = Section("orders", order_file, wide_matches if shape == "wide" else long_matches)
    if shape == "long":
        section.order_level = order_totals
        _order_id_within(section)
        _fill_down(section)
    doubt_order_time(order_file, section.matches)
    draft = Draft(shape, [section])
    if shape == "long":
        _line_total_price(draft, section)
        _packed_items(draft, section)
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
        _statuses_beside(draft, section, draft.sections[-1])
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
    read_values(draft)
    _key_share(draft)
    _rounded_ids(draft)
    _masked_ids(draft)
    return draft


def _order_rules(draft: Draft, section: Section) -> None:
    matches, sniffed, name = section.matches, section.sniffed, section.name
    required = ("customer_id", "amount") if draft.shape == "wide" else ("customer_id", "order_ts")
    for field_name in required:
        if field_name not in matches:
            draft.unmapped.append(f"orders.columns.{field_name}: no column of {name} looks like {WHAT[field_name]} "
                                  f"(columns: {', '.join(sniffed.columns)}); map it before running"
                                  + (_buyer_key_hint(sniffed) if field_name == "customer_id" else ""))
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
    # A cancellation time is the order's, written where its other order fields are: too few orders are cancelled
    # for the sample to show it, so it is filled down with them.
    cancelled = "cancelled_at" in section.matches and "cancelled_at" not in found
    section.extra["fill_down"] = list(found) + (["cancelled_at"] if cancelled else [])
    section.extra_notes["fill_down"] = (
        f"{', '.join(columns)} blank on every line of an order but the first ({min(found.values()):.0%} of the "
        "sampled orders with several lines): a blank takes the value of the order's earlier line")
    order_column = section.matches["order_id"].column
    if cancelled:
        columns.append(section.matches["cancelled_at"].column)
        section.extra_notes["fill_down"] += f"; {columns[-1]} with them, the order's cancellation time"
    section.sniffed.sample = filled_down(section.sniffed.sample, order_column, columns)


# Columns of what an order's total includes besides its goods: shipping, delivery, fees (运费, 配送费).
# Named so (a fee, not coffee; a delivery fee, not a delivery date) and holding amounts (not a shipping address).
SHIPPING = re.compile(r"shipping|freight|postage|delivery ?(fee|charge|cost)|\bfees?\b|运费|邮费|配送费|快递费")


def _packed_items(draft: Draft, section: Section) -> None:
    """A file of one row per order packing its items into one cell ("Milk × 2, Bread × 1"): that column is no line
    field (unmapped, with why), and the line to decide says what such a file gives and what to export instead."""
    packed = packed_items(section.sniffed, section.matches)
    if packed is None:
        return
    section.packed = packed
    section.matches = {f: m for f, m in section.matches.items() if m.column != packed.column}
    quantity, category = section.matches.get("quantity"), section.matches.get("category")
    items = f"its items counted by {quantity.column}" if quantity else "each order counted as one item"
    categories = f"each order has one category ({category.column})" if category else "segments use no categories"
    draft.undecided.append(
        f"orders: {section.name} holds one row per order, its items packed in {packed.column} ({packed.reason}): "
        f"read as one line per order, customers, orders and money are right, but {categories} and {items}; for "
        "categories per item, export one row per order line (an order-items export, Taobao's 宝贝报表) and run "
        "persona init on it")
    amount = section.matches.get("amount")
    shipping = [c for c in section.sniffed.columns if SHIPPING.search(c.lower()) and amount is not None
                and c != amount.column and numeric_share(section.sniffed.values(c)) >= 0.8]
    if shipping:
        draft.undecided.append(
            f"orders.columns.amount: {amount.column} is each order's total: the shipping or fees it includes "
            f"({', '.join(shipping)} beside it) count as spend; map a total without them if the export has one")


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
    _timezone(draft, section, column, values)
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
        month_first = next(f for f in formats if f.startswith("%m/%d/"))
        example = next((v for v in values if re.match(r"\d{1,2}/\d{1,2}/\d{2}", v.strip())), values[0])
        section.extra_notes["date_formats"] += "; CHECK: month first or day first?"
        draft.undecided.append(f"orders.date_formats: {column} ('{example}') reads month first and day first "
                               f"alike (no day above 12 in the sample); wrote {month_first}: check it")
    if share < 0.99:
        draft.undecided.append(f"orders.date_formats: {share:.0%} of the distinct values of {column} read as dates; "
                               f"the others (for example {unread!r}) are quarantined unless you add their format")


# The offset at the end of an order time, after its time of day: +08:00, -0500, Z (UTC). Staging converts such times
# to orders.timezone, whose default is the schedule's zone (PERSONA_SCHEDULE_TIMEZONE, Asia/Shanghai): right for a
# shop in China, while a trial's US Shopify export (-0500) moved 54% of its orders to the next day.
OFFSET = re.compile(r"[0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?\s*(?:(Z|UTC)|([+-])([0-9]{2}):?([0-9]{2}))$")
# A zone for each pair of offsets an hour apart (winter, summer) that a sample shows: every zone with the same two
# offsets and the same change dates converts alike (New York and Toronto, Berlin and Paris).
DAYLIGHT_SAVING_ZONES = {(-300, -240): "America/New_York", (-360, -300): "America/Chicago",
                         (-420, -360): "America/Denver", (-480, -420): "America/Los_Angeles",
                         (-540, -480): "America/Anchorage", (-240, -180): "America/Halifax", (0, 60): "Europe/London",
                         (60, 120): "Europe/Berlin", (120, 180): "Europe/Helsinki", (600, 660): "Australia/Sydney",
                         (720, 780): "Pacific/Auckland"}


def _offset_minutes(value: str) -> int | None:
    found = OFFSET.search(value.strip())
    if found is None:
        return None
    if found.group(1):
        return 0
    hours, minutes = int(found.group(3)), int(found.group(4))
    if hours > 14 or minutes > 59:
        return None
    total = hours * 60 + minutes
    return -total if found.group(2) == "-" else total


def _zone_offsets(zone: str) -> set[int]:
    """The offsets a zone takes in a year (winter and summer), in minutes."""
    year = datetime.now(UTC).year
    return {int(datetime(year, month, 1, 12, tzinfo=ZoneInfo(zone)).utcoffset().total_seconds() // 60)
            for month in (1, 7)}


def _timezone(draft: Draft, section: Section, column: str, values: list[str]) -> None:
    """Order times written with an offset are converted to orders.timezone. When the sample's offsets are not the
    default zone's, init writes a zone that has them (America/New_York for -05:00 and -04:00, Etc/GMT+5 for -05:00
    alone) and a line to decide. UTC times (Z), offsets of part of an hour, or a default zone's offset among others
    say nothing sure of the shop's zone: only the line to decide."""
    offsets = [m for m in (_offset_minutes(v) for v in values) if m is not None]
    if not offsets:
        return
    default = SCHEDULE_TIMEZONE
    default_offsets = _zone_offsets(default)
    seen = sorted(set(offsets))
    if set(seen) <= default_offsets:
        return
    commonest = max(seen, key=offsets.count)
    written = ", ".join(_offset_text(m) for m in seen)
    pair = tuple(seen) if len(seen) == 2 and seen[1] - seen[0] == 60 else None
    if pair is None and (commonest == 0 or commonest % 60 or commonest in default_offsets):
        draft.undecided.append(
            f"orders.timezone: {column} carries the offsets {written}; its times are converted to orders.timezone, "
            f"by default {default}: set the shop's zone if it is another (an IANA name such as Europe/London)")
        return
    if pair is not None and pair in DAYLIGHT_SAVING_ZONES:
        zone = DAYLIGHT_SAVING_ZONES[pair]
        why = f"a zone whose winter and summer offsets are {written}, as the sample's"
    else:
        standard = seen[0] if pair is not None else commonest  # winter's, when an hour apart
        zone = f"Etc/GMT{'-' if standard > 0 else '+'}{abs(standard) // 60}"
        why = f"the offset {_offset_text(standard)} all year"
    section.extra["timezone"] = zone
    section.extra_notes["timezone"] = f"{why}; the times of {column} are converted to it (the default is {default})"
    draft.undecided.append(
        f"orders.timezone: {column} carries the offsets {written}, not {default}'s (the default): wrote {zone}, "
        f"{why}; name the shop's own zone if it is another")


def _offset_text(minutes: int) -> str:
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


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
        elif section.packed is not None and column == section.packed.column:
            why = section.packed.reason + ": one row per order"
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


# Columns a marketplace export names its buyer by when it has no member id (抖店, 拼多多: the receiver's phone or name).
# Phones first: a name is shared by more people. A buyer's message (买家留言) or an influencer's nickname (达人昵称) is
# no key.
BUYER_PHONE = re.compile(r"手机|电话|phone|mobile|^tel")
BUYER_NAME = re.compile(r"^(收件人|收货人|买家(昵称|姓名|名称|名)?|buyer(name)?|customername|recipient(name)?)$")
# A phone or name with its middle hidden (138****1234, 张**): buyers who share the visible part are one id.
MASKED = re.compile(r"\*{2,}")


def _buyer_key_hint(sniffed) -> str:
    """For orders without a customer id column: the columns that name the buyer (BUYER_PHONE, BUYER_NAME), to map and
    hash."""
    candidates = [c for pattern in (BUYER_PHONE, BUYER_NAME) for c in sniffed.columns
                  if pattern.search(normalise(c)) and sniffed.values(c)]
    if not candidates:
        return ""
    masked = [c for c in candidates if _masked_share(sniffed.values(c)) >= 0.5]
    first = candidates[0]
    return (f"; the buyer is named only by {', '.join(candidates)}: map one as orders.columns.customer_id and hash it "
            f"(privacy.pii_columns: {{{first}: hash}}, needs PERSONA_PII_SALT)"
            + (f"; {', '.join(masked)} masked (e.g. {_masked_example(sniffed.values(masked[0]))}): buyers who share "
               "the visible part become one customer" if masked else ""))


def _masked_example(values: list[str]) -> str:
    """A masked value to quote: never one of the unmasked ones, which are personal data in clear."""
    return next(v for v in values if MASKED.search(v))


def _masked_share(values: list[str]) -> float:
    return sum(1 for v in values if MASKED.search(v)) / len(values) if values else 0.0


def _masked_ids(draft: Draft) -> None:
    """A line to decide for a customer id column whose values are masked (138****1234): buyers who share the visible
    digits merge into one customer, with no way for a run to tell them apart."""
    for section in draft.sections:
        match = section.matches.get("customer_id")
        if match is None:
            continue
        values = section.sniffed.values(match.column)
        share = _masked_share(values)
        if share >= 0.05:
            example = _masked_example(values)
            draft.undecided.append(
                f"{section.key}.columns.customer_id: {share:.0%} of the sampled values of {match.column} in "
                f"{section.name} are masked (e.g. {example}): buyers who share the visible part become one customer; "
                "map an unmasked buyer id if the export can include one")


def _statuses_beside(draft: Draft, orders: Section, other: Section) -> None:
    """A line to decide when another file given to init holds each order's status and the orders file none: Etsy
    exports its items (EtsySoldOrderItems) apart from its orders (EtsySoldOrders, with Status), and a trial's run
    counted the cancelled and refunded orders as sales, 8.4% of the revenue."""
    if "status" in orders.matches or "order_id" not in orders.matches:
        return
    status = next((c for c in other.sniffed.columns if name_score("status", c) and other.sniffed.values(c)), None)
    order_id = orders.matches["order_id"].column
    if status is None or order_id not in other.sniffed.columns:
        return
    draft.undecided.append(
        f"orders: {other.name} holds each order's status ({status}, by {order_id}) and {orders.name} none; a run "
        f"reads statuses from the orders file only, so {orders.name}'s cancelled and refunded orders would count as "
        f"sales: export the lines with their order's status, or add {status} to {orders.name} by {order_id} before "
        "loading, and map it as orders.columns.status")


def _line_total_price(draft: Draft, section: Section) -> None:
    """A price column holding each line's total (price_holds_line_totals) is the amount, not the unit price."""
    why = price_holds_line_totals(section.sniffed, section.matches)
    if why is None:
        return
    column = section.matches.pop("unit_price").column
    section.matches["amount"] = Match("amount", column, why)
    draft.undecided.append(f"orders.columns.amount: {why}; mapped as the amount, which staging would otherwise have "
                           "multiplied by the quantity again")


def _rounded_ids(draft: Draft) -> None:
    """A line to decide for an id column a spreadsheet saved as rounded numbers (2.83E+11): the ids that differed in
    the lost digits are one id now, so a run would merge their orders or customers; it quarantines such rows."""
    for section in draft.sections:
        for field_name in ("order_id", "customer_id"):
            match = section.matches.get(field_name)
            if match is None:
                continue
            values = section.sniffed.values(match.column)
            rounded = [v for v in values if re.fullmatch(SPREADSHEET_ROUNDED_ID, v)]
            if rounded:
                draft.undecided.append(
                    f"{section.key}.columns.{field_name}: {len(rounded):,} of {len(values):,} sampled values of "
                    f"{match.column} in {section.name} are numbers a spreadsheet rounded (e.g. {rounded[0]}): their "
                    "last digits are lost, so different ids became one; export the file again without opening and "
                    "saving it in Excel (a run quarantines these rows rather than merge them)")
