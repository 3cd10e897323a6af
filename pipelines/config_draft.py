"""`persona init`'s draft: the config it writes, one Section per input file, and the lines it prints (what it could
not map or decide). pipelines/config_init.py fills it, config_values.py adds the values, config_yaml.py writes it."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.config_match import Match
from pipelines.config_order_lines import OrderLevel, PackedItems
from pipelines.config_sniff import Sniffed


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
    packed: PackedItems | None = None  # a column packing an order's items into one cell (one row per order)

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
