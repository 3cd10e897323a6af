"""Source files of a shop: the contract's fields per input, and how one input (orders, customers, products) is
read: path or glob, format, encoding, delimiter and the mapping of source columns onto contract fields.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import threading
from datetime import date
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

# The nightly schedule's time zone, and the shop's unless orders.timezone says otherwise.
SCHEDULE_TIMEZONE = os.environ.get("PERSONA_SCHEDULE_TIMEZONE", "Asia/Shanghai")

# Contract fields per input. "Required" fields must be present in the source (mapped or same-named).
LONG_ORDER_FIELDS = (
    "order_id", "customer_id", "order_ts", "category", "quantity", "amount", "unit_price",
    "payment_method", "channel", "sku", "line_id", "status", "line_status", "cancelled_at", "description",
)
# order_id and category may be declared absent (`columns: {order_id: null}`); see SourceConfig.order_required.
LONG_ORDER_REQUIRED = ("order_id", "customer_id", "order_ts", "category")
LONG_ORDER_OPTIONAL_FIELDS = ("order_id", "category")
PROFILE_FIELDS = ("age", "birth_year", "gender", "income", "home_owner", "city")
WIDE_ORDER_FIELDS = ("order_id", "customer_id", "order_ts", "amount", "payment_method", "channel", *PROFILE_FIELDS)
WIDE_ORDER_REQUIRED = ("customer_id", "amount")
CUSTOMER_FIELDS = ("customer_id", *PROFILE_FIELDS)
CUSTOMER_REQUIRED = ("customer_id",)
PRODUCT_FIELDS = ("sku", "category", "subcategory", "brand", "unit_price")
# A file's format by its suffix, when the input does not declare `format`.
FORMAT_BY_SUFFIX = {
    ".csv": "csv", ".txt": "csv", ".tsv": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".json": "json", ".jsonl": "json", ".ndjson": "json",
    ".xlsx": "excel",
}
PRODUCT_REQUIRED = ("sku", "category")

ENCODING_ALIASES = {
    "utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8",
    "gbk": "gbk", "gb2312": "gbk", "cp936": "gbk", "gb18030": "gb18030",
}


class ConfigError(ValueError):
    """A source config that cannot be used; the message names the file and the key."""


class Strict(BaseModel):
    """A config section: unknown keys are errors, values are frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenMap(Strict):
    """Spellings a shop uses for yes/no style values; matched case-insensitively after trimming."""

    # Not named true/false: YAML 1.1 would read those keys as booleans.
    true_tokens: list[str] = Field(default_factory=lambda: ["T", "TRUE", "1", "Y", "YES", "是"])
    false_tokens: list[str] = Field(default_factory=lambda: ["F", "FALSE", "0", "N", "NO", "否"])

    @field_validator("true_tokens", "false_tokens", mode="before")
    @classmethod
    def _no_yaml_booleans(cls, value: object) -> object:
        if isinstance(value, list) and any(isinstance(item, bool) for item in value):
            raise ValueError("YAML reads unquoted yes/no/true/false/on/off as booleans; quote the tokens, "
                             "for example ['YES', 'NO']")
        return value

    @model_validator(mode="after")
    def _disjoint(self) -> TokenMap:
        overlap = {t.upper() for t in self.true_tokens} & {t.upper() for t in self.false_tokens}
        if overlap:
            raise ValueError(f"tokens listed as both true and false: {sorted(overlap)}")
        return self


# The placeholder for the day in a daily landing path, e.g. `landing/orders/{date}.csv` (YYYY-MM-DD).
DATE_PLACEHOLDER = "{date}"


class FileSource(Strict):
    """One input: a path or glob (relative paths resolve against the config file's folder)."""

    path: str | list[str]
    format: Literal["csv", "parquet", "json", "excel"] | None = None
    encoding: str = "utf-8"
    delimiter: str = ","
    # Title lines above the header (CSV, Excel): cut off before reading; row numbers count from the header.
    skip_rows: int = Field(default=0, ge=0)
    # contract field -> source column; unmapped contract fields fall back to a same-named source column. A field
    # mapped to null is declared absent from the export (orders: order_id, category; see SourceConfig).
    columns: dict[str, str | None] = Field(default_factory=dict)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        key = value.strip().lower()
        if key not in ENCODING_ALIASES:
            raise ValueError(f"unsupported encoding {value!r}; use one of {sorted(ENCODING_ALIASES)}")
        return ENCODING_ALIASES[key]

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str) -> str:
        value = "\t" if value in ("\\t", "tab") else value
        if value == "whitespace":  # runs of spaces and tabs (assets/raw/readers.py reads a tab-separated copy)
            return value
        if len(value) != 1:
            raise ValueError(f"delimiter must be a single character or 'whitespace', got {value!r}")
        return value


# One in-memory DuckDB connection compiles the patterns of orders.category_rules: a new connection per rule costs
# about 10 ms, a query on this one a fraction of that. The lock keeps one query at a time on it.
_RE2_LOCK = threading.Lock()
_re2_connection: duckdb.DuckDBPyConnection | None = None


def re2_problem(pattern: str) -> str | None:
    """Why DuckDB's regex engine (RE2) refuses `pattern`, None when it compiles. Python's `re` is no judge: it takes
    look-arounds and back-references, which RE2 refuses only once staging applies the rule."""
    global _re2_connection
    with _RE2_LOCK:
        if _re2_connection is None:
            _re2_connection = duckdb.connect()
        try:
            # Matching the empty string compiles the pattern and reads nothing else.
            _re2_connection.execute("SELECT regexp_matches('', ?)", [pattern]).fetchone()
        except duckdb.Error as exc:
            return str(exc).removeprefix("Invalid Input Error: ")
    return None


class CategoryRule(Strict):
    """One rule of `orders.category_rules`: lines whose description matches get the category."""

    # A regular expression (RE2, as DuckDB applies it) or a list of keywords (any of them, taken literally);
    # both match anywhere in the description, ignoring case.
    match: str | list[str]
    category: str = Field(min_length=1)

    @field_validator("match")
    @classmethod
    def _usable(cls, value: str | list[str]) -> str | list[str]:
        items = [value] if isinstance(value, str) else value
        if not items or any(not item.strip() for item in items):
            raise ValueError("give a regular expression or a non-empty list of non-empty keywords")
        if isinstance(value, str):
            # Checked as written, without the (?i) that pattern() adds, so the error quotes the user's text.
            problem = re2_problem(value)
            if problem is not None:
                raise ValueError(f"DuckDB cannot use this regular expression ({value!r}): {problem}")
        return value

    def pattern(self) -> str:
        """The RE2 pattern staging applies, case-insensitive."""
        body = self.match if isinstance(self.match, str) else "|".join(re.escape(k) for k in self.match)
        return f"(?i){body}"


def _one_or_two_columns(value: object) -> object:
    """An orders.columns value: one source column, null, or a list of two (a date column and a time-of-day column,
    orders.columns.order_ts only; SourceConfig checks which field holds it)."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise ValueError(f"give a source column's name (text; quote a name YAML reads otherwise), or for order_ts a "
                         f"list of two; got {value!r}")
    if len(value) != 2:
        raise ValueError(f"list two columns, a date column and a time-of-day column (for example [Date, Time]), or "
                         f"give one column; got {len(value)}: {value}")
    if not all(isinstance(item, str) and item.strip() for item in value):
        raise ValueError(f"the two columns must be column names (text), got {value}")
    if value[0] == value[1]:
        raise ValueError(f"the date and the time of day are two columns; got {value[0]!r} twice")
    return value


# A field's source column in orders.columns: one column, or null (declared absent), or (order_ts only) a list of
# two, [date column, time-of-day column], whose values are joined into one order time.
OrderColumn = Annotated[str | list[str] | None, BeforeValidator(_one_or_two_columns)]


class OrdersSource(FileSource):
    columns: dict[str, OrderColumn] = Field(default_factory=dict)
    # Wide shape only: the columns holding one purchase flag per category.
    category_columns: list[str] = Field(default_factory=list)
    flag_tokens: TokenMap = Field(default_factory=TokenMap)
    # strptime formats tried in order for order_ts; ISO 8601 is always tried last.
    date_formats: list[str] = Field(default_factory=lambda: ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d"])
    # The shop's time zone (an IANA name). An order time with an offset or a zone (2026-01-05T10:00:00+08:00,
    # ...Z, ... UTC) is converted to it; a time without one is taken as already in it. Default: the schedule's.
    timezone: str = Field(default_factory=lambda: SCHEDULE_TIMEZONE)
    # order_ts written as Excel serial day numbers (45292.5 = 2024-01-01 12:00, days since 1899-12-30): read as
    # such when true; when false such a number is quarantined with a reason naming this setting.
    excel_serial_dates: bool = False
    # Long shape: the contract fields that identify an order line. Without one every source row is a line of its
    # own: a till scanning one item twice, or a category-level export, repeats (order, category, sku) legitimately.
    line_key: list[str] | None = None
    # Rows equal in every field: `drop` keeps the first and counts the others as removed duplicates (an export
    # that repeats rows); `keep` loads each as a line (a shop whose identical rows are real repeated scans).
    exact_duplicates: Literal["drop", "keep"] = "drop"
    # Long shape: lines whose amount is 0 (a free gift, 赠品; a sample). `set_aside` keeps them out of the purchase
    # features like returns (a trial's JD export had 11.5% such lines, which took over its category findings and
    # recommendations); `keep` loads them (a shop whose bundles list their parts at 0 beside a priced parent line).
    free_lines: Literal["set_aside", "keep"] = "set_aside"
    # Long shape: categories from a free-text description (a mapped `description` field), first matching rule
    # wins, unmatched lines get `other`. Used for lines without a category of their own or from products.
    category_rules: list[CategoryRule] = Field(default_factory=list)
    # Source columns within whose values an order id is unique: a chain's tills number their tickets per store, so
    # ticket 0001 of store S1 and of store S2 are two orders. The order id becomes their values and the id joined by
    # '/' (S1/0001).
    order_id_within: list[str] = Field(default_factory=list)
    # Customer ids that stand for no customer: a webshop's guest checkout (WooCommerce writes 0), a till's walk-in
    # account. Their orders are set aside as walk-in or guest sales, like orders without a customer id, instead of
    # making one "customer" of every guest at the top of a high-value segment. Compared with the id as normalised.
    guest_customer_ids: list[str] = Field(default_factory=list)

    @field_validator("guest_customer_ids", mode="before")
    @classmethod
    def _ids_quoted(cls, value: object) -> object:
        # Not converted: YAML has already read 00000 as 0, 0123 as 83 and no as false, so the text is lost.
        if isinstance(value, list) and not all(isinstance(item, str) for item in value):
            raise ValueError(f"quote each id: YAML reads unquoted 0, 00000 or no as a number or a boolean; got "
                             f"{value!r}, for example [\"0\", \"guest\"]")
        return value
    # Long shape: order-level fields an export writes on an order's first line only (Shopify's orders_export leaves
    # Email, Created at and Financial Status blank on the other lines). A blank value of a listed field takes the
    # value of the same order's latest earlier line in its file that has one.
    fill_down: list[Literal["customer_id", "order_ts", "payment_method", "channel", "status", "cancelled_at"]] = Field(
        default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Asia/Shanghai or UTC") from exc
        return value

    def order_ts_parts(self) -> tuple[str, str] | None:
        """The date column and the time-of-day column when orders.columns.order_ts lists two; None otherwise."""
        mapped = self.columns.get("order_ts")
        return (mapped[0], mapped[1]) if isinstance(mapped, list) else None

    def declared_line_key(self) -> list[str] | None:
        """The line key the source declares: `line_key`, or (order_id, line_id) when a line-id column is mapped."""
        if self.line_key:
            return list(self.line_key)
        if "line_id" in self.columns:
            return ["order_id", "line_id"]
        return None


class CustomersSource(FileSource):
    pass


class ProductsSource(FileSource):
    """A product table (sku -> category, optional subcategory, brand, unit_price) joined onto order lines."""

    # An order line whose sku the table lacks (and that has no category of its own): quarantined, or kept with
    # the category `unknown`.
    unknown_sku: Literal["quarantine", "unknown"] = "quarantine"


def resolve_paths(pattern: str | list[str], base_dir: Path, key: str) -> list[Path]:
    """Expand paths and globs in a stable (sorted) order; a pattern matching nothing is an error."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    files: list[Path] = []
    for item in patterns:
        # Escape the folder so brackets or stars in its name are taken literally; only the pattern may glob.
        full = item if os.path.isabs(item) else os.path.join(glob.escape(str(base_dir)), item)
        if glob.has_magic(full):
            matches = _expand(full, item, key)
        else:  # a link loop "does not exist" to os.path.exists: say what it is instead
            matches = [full] if os.path.exists(full) or os.path.islink(full) else []
        if not matches:
            shown = item if os.path.isabs(item) else str(base_dir / item)
            raise ConfigError(f"{key}: no file matches {item!r} (looked for {shown})")
        files.extend(_resolved(match, item, key) for match in matches)
    return files


def _expand(pattern: str, shown: str, key: str) -> list[str]:
    """glob.glob of `pattern`, sorted; a failure (a link loop, an unreadable folder) is a ConfigError
    naming the pattern as the config spells it (`shown`), never a traceback."""
    try:
        return sorted(glob.glob(pattern))
    except (OSError, RuntimeError, RecursionError) as exc:
        raise ConfigError(f"{key}: cannot expand {shown!r}: {_path_problem(exc)}") from None


def _resolved(match: str, shown: str, key: str) -> Path:
    """The absolute path of one match of pattern `shown`; a symbolic link loop, a link to nothing or a path that
    cannot be read is a ConfigError naming the pattern and the path."""
    try:
        return Path(match).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"{key}: {shown!r} matches {match}, which cannot be read: {_path_problem(exc)}") from None


def _path_problem(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
        return "a symbolic link loop"
    if isinstance(exc, RecursionError):
        return "folders nested too deep (a symbolic link loop?)"
    if isinstance(exc, FileNotFoundError):
        return "a symbolic link to a file that does not exist"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def files_by_day(template: str, base_dir: Path, key: str) -> dict[date, list[Path]]:
    """Expand a path template holding {date} (it may also glob) into the files of each day, days in order.
    A path whose {date} part is not a real YYYY-MM-DD day is an error naming the file."""
    if template.count(DATE_PLACEHOLDER) != 1:
        raise ConfigError(f"{key}: use {DATE_PLACEHOLDER} exactly once in a daily path, got {template!r}")
    full = template if os.path.isabs(template) else os.path.join(str(base_dir), template)
    head, tail = full.split(DATE_PLACEHOLDER)
    pattern = glob.escape(head) + "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]" + tail
    day_at = re.compile(re.escape(head) + r"(\d{4}-\d{2}-\d{2})")
    by_day: dict[date, list[Path]] = {}
    for match in _expand(pattern, template, key):
        text = day_at.match(match).group(1)
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"{key}: {match}: {text!r} is not a calendar day (YYYY-MM-DD)") from None
        by_day.setdefault(day, []).append(_resolved(match, template, key))
    if not by_day:
        raise ConfigError(f"{key}: no file matches {template!r} (looked for {head}YYYY-MM-DD{tail})")
    return dict(sorted(by_day.items()))
