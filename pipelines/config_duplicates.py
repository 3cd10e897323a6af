"""`persona init`: which sampled rows staging would drop as exact duplicates, and what they carry.

Staging judges an exact duplicate on the contract fields of a line (assets/staging/orders.py,
ORDER_LINE_FIELDS_LONG), read from the mapped columns, not on the file's columns: two rows alike in every mapped field
are one line even when an unmapped column tells them apart. A Square "Item Sales" export rings the same item twice
in one transaction as two rows alike in every mapped field, each with a Token of its own; a trial's run dropped 330
such lines ($17,621, 2.1% of the revenue) and init said nothing, as it compared every column.

So init compares what staging compares (the store of orders.order_id_within counts as part of the order id). Rows
that repeat on it are real lines when an unmapped column tells every line of an order apart (a Token, a line or
item id): init maps that column as `orders.columns.line_id`, which makes each row a line of its own. Otherwise it
asks whether they are real repeated scans, and says what dropping them costs: the rows and the amount they carry,
read as staging reads amounts (assets/staging/typed.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb
import polars as pl

from assets.staging.orders import ORDER_LINE_FIELDS_LONG
from assets.staging.typed import money_number, plain_number
from pipelines.config_match import Match, normalise
from pipelines.config_sniff import Sniffed

# Names of a column that identifies a line (Square's Token, a line or item id, 明细号): preferred between
# columns that tell the repeated rows apart.
LINE_ID_NAME = re.compile(r"token|line|uuid|guid|rowid|itemid|entryid|id$|key$|号$|编号|编码|明细")


@dataclass
class Repeats:
    """Sampled rows that repeat an earlier row on what staging compares."""

    copies: int  # rows after the first of each repeated group: the ones staging drops
    every_column: bool  # the copies repeat their first row in every column of the file too
    line_id: str | None  # an unmapped column telling every line of an order apart, mapped as line_id
    carried: float | None  # the amount of the copies, as staging reads it (None: no amount to read)
    total: float | None  # the amount of all the sampled rows
    amount: str  # where the amount is read: the amount column, or quantity × unit_price

    def cost(self) -> str:
        """The copies' amount, for the lines saying what dropping them costs."""
        if self.carried is None or not self.total:
            return ""
        share = abs(self.carried / self.total)
        shown = f"{share:.1%}" if share >= 0.001 or not self.carried else "under 0.1%"
        return f" ({self.carried:,.2f} of {self.amount}, {shown} of the sampled rows' {self.total:,.2f})"


def repeated_lines(sniffed: Sniffed, matches: dict[str, Match], within: list[str],
                   skip: set[str]) -> Repeats | None:
    """The sample's rows repeating an earlier one on the mapped line fields (and the order_id_within columns);
    None when none does. `skip`: columns never to take as the line id (personal data, dropped before loading)."""
    compared = list(dict.fromkeys([matches[f].column for f in ORDER_LINE_FIELDS_LONG if f in matches] + within))
    if not compared:
        return None
    sample = sniffed.sample.select([pl.col(c).fill_null("").str.strip_chars() for c in sniffed.columns])
    first = sample.select(pl.struct(compared).is_first_distinct()).to_series()
    copies = sample.height - int(first.sum())
    if not copies:
        return None
    every_column = sample.height - sample.unique().height == copies
    carried, total, amount = _amounts(sample, matches, first)
    return Repeats(copies, every_column, _line_id(sample, matches, within, compared, skip), carried, total, amount)


def _line_id(sample: pl.DataFrame, matches: dict[str, Match], within: list[str], compared: list[str],
             skip: set[str]) -> str | None:
    """An unmapped column filled on every sampled row that, with the order, identifies each row: the line key it
    declares (order_id, line_id) then holds no two rows. Id-like names first (LINE_ID_NAME), then file order."""
    if "order_id" in matches:
        order = [matches["order_id"].column, *within]
    else:  # the order id staging derives: one customer's lines at one timestamp
        order = [matches[f].column for f in ("customer_id", "order_ts") if f in matches]
    found = [c for c in sample.columns if c.strip() and c not in compared and c not in skip
             and sample.get_column(c).str.len_chars().min() > 0
             and sample.select(pl.struct([*order, c]).is_unique().all()).item()]
    return min(found, key=lambda c: (not LINE_ID_NAME.search(normalise(c)), sample.columns.index(c)), default=None)


def _amounts(sample: pl.DataFrame, matches: dict[str, Match], first: pl.Series) -> tuple[float | None, float | None,
                                                                                         str]:
    """(the copies' amount, all the rows' amount, where it is read), as staging reads amounts: the amount column,
    else quantity × unit_price."""
    if "amount" in matches:
        source, expression = matches["amount"].column, money_number("a")
        frame = sample.select(pl.col(source).alias("a"))
    elif "quantity" in matches and "unit_price" in matches:
        source = f"{matches['quantity'].column} × {matches['unit_price'].column}"
        expression = f"{plain_number('q')} * {money_number('p')}"
        frame = sample.select(pl.col(matches["quantity"].column).alias("q"),
                              pl.col(matches["unit_price"].column).alias("p"))
    else:
        return None, None, ""
    with duckdb.connect() as con:
        def total(rows: pl.DataFrame) -> float:
            lists = {name: [v or None for v in rows.get_column(name).to_list()] for name in rows.columns}
            unnest = ", ".join(f"unnest(${name}) AS {name}" for name in lists)
            return con.execute(f"SELECT coalesce(sum({expression}), 0) FROM (SELECT {unnest})", lists).fetchone()[0]
        return total(frame.filter(~first)), total(frame), source
