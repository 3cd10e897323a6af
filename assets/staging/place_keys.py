"""Customer ids that are not one person each: a column that names a place (a postal code, a city, an address), and
ids masked by the export (用户****, 138****1234).

An export without a buyer id tempts a user to map whatever column tells buyers apart (Amazon's All Orders Report has
none; its `ship-postal-code` comes closest). Everyone who shares the place then becomes one customer, and segments,
churn risk and customer value describe places rather than people, with no error anywhere: the ids are well-formed.
Only the column's name gives it away, so that is what is judged, by `customer_id_names_a_person`
(quality/checks/staging.py) on every run, by `persona check`, and at the top of the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipelines.core.config import SourceConfig

# Words of a column name (split at separators, case changes and digits) that name a place.
PLACE_WORDS = frozenset({"postal", "postcode", "zip", "zipcode", "pincode", "city", "province", "state", "country",
                         "region", "county", "district", "suburb", "town", "address"})
# Place words that English names write as one word with another (PostCode, ZIPCODE).
PLACE_JOINED = re.compile(r"postcode|postalcode|zipcode|pincode")
PLACE_CHINESE = re.compile(r"邮编|邮政编码|城市|省份|地址|国家|地区|区县|街道")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# An address that is no place: an e-mail's, an IP's, a wallet's (Email Address, 邮箱地址: a person's id, which init
# maps as the customer id when nothing else names the buyer).
NOT_A_PLACE = re.compile(r"e-?mail|(?<![a-z])ip(?![a-z])|(?<![a-z])mac[ _-]?add|wallet|邮箱|邮件|电邮", re.IGNORECASE)


def names_a_place(column: str) -> bool:
    """Whether a column name reads as a place: `ship-postal-code`, `ShipZip`, `POSTCODE`, `收货城市`, `邮编`."""
    if NOT_A_PLACE.search(column):
        return False
    words = [word.lower() for word in _WORD.findall(column)]
    return (any(word in PLACE_WORDS for word in words) or PLACE_JOINED.search("".join(words)) is not None
            or PLACE_CHINESE.search(column) is not None)


def place_named_customer_ids(config: SourceConfig) -> list[tuple[str, str]]:
    """(where the config maps it, source column) for each customer id mapped from a column named like a place."""
    sections = [("orders", config.orders)] + ([("customers", config.customers)] if config.customers else [])
    found = []
    for name, section in sections:
        column = section.columns.get("customer_id")
        if isinstance(column, str) and names_a_place(column):
            found.append((f"{name}.columns.customer_id", column))
    return found


def place_key_warning(config: SourceConfig) -> str | None:
    """The warning for a customer id mapped from a place's column, or None."""
    found = place_named_customer_ids(config)
    if not found:
        return None
    mapped = ", ".join(f"{where} ({column!r})" for where, column in found)
    return (f"{mapped} names a place, not a person: everyone who shares it becomes one customer, so segments, churn "
            "risk and customer value describe places rather than buyers; map a buyer id, or a phone or e-mail hashed "
            "with privacy.pii_columns, if the export can include one")


# Orders whose customer id is masked (the id rule reads a full-width ＊ as *), from this share of the orders and this
# many up: below, a few masked ids are one export's oddity.
MASKED_ID_MIN_SHARE = 0.01
MASKED_ID_MIN_ORDERS = 20
MASKED = "contains(customer_id, '**')"


@dataclass(frozen=True)
class MaskedIds:
    """How many orders have a masked customer id, and which masked id holds the most (from MASKED_ID_MIN_ORDERS and
    MASKED_ID_MIN_SHARE up; below, `largest` is None)."""

    orders: int
    masked: int
    largest: str | None = None
    largest_orders: int = 0

    @property
    def said(self) -> bool:
        return self.largest is not None

    def warning(self, sampled: bool = False) -> str | None:
        """The warning for them, or None. `sampled`: the orders are `persona check`'s sample."""
        if not self.said:
            return None
        return (f"{self.masked:,} of the {self.orders:,}{' sampled' if sampled else ''} orders "
                f"({self.masked / self.orders:.1%}) have a masked customer id (the largest, {self.largest!r}, holds "
                f"{self.largest_orders:,} orders): buyers who share the visible part of an id are one customer; map "
                "an unmasked buyer id if the export can include one")


def masked_ids(con) -> MaskedIds:
    """Orders whose customer id is masked (快手小店's 用户****, a phone's 138****1234). A trial's export without its
    buyer id merged 619 orders of different buyers into 用户****, 12.9% of the revenue and a "High value" customer;
    only init had said the ids were masked."""
    # A count first (0.08 s over the 4.4M orders of a million customers): most shops have no masked id, and need not
    # group every order by customer (0.25 s more) to find the largest.
    orders, masked = con.execute(f"SELECT count(*), count(*) FILTER (WHERE {MASKED}) FROM staging.orders").fetchone()
    if not orders or masked < MASKED_ID_MIN_ORDERS or masked < MASKED_ID_MIN_SHARE * orders:
        return MaskedIds(orders, masked or 0)
    largest, largest_orders = con.execute(f"SELECT customer_id, count(*) AS n FROM staging.orders WHERE {MASKED} "
                                          "GROUP BY 1 ORDER BY n DESC, 1 LIMIT 1").fetchone()
    return MaskedIds(orders, masked, largest, largest_orders)
