"""Raw layer, mapping: source columns onto the contract's fields (PII hashed or dropped on the way), streamed
per file into Parquet in a scratch folder, with one manifest entry per source file."""

import difflib
import hashlib
import hmac
import os
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import NamedTuple

import polars as pl

from assets.raw.readers import (
    PARTITION_DATE,
    SOURCE_FILE,
    SOURCE_ROW,
    IngestError,
    MalformedRecord,
    SourceScan,
    csv_failure,
    scan_source_file,
    verify_record_count,
    with_origin,
)
from assets.raw.settle import read_settled, settle_seconds, settle_source
from pipelines.core.config import (
    CUSTOMER_FIELDS,
    CUSTOMER_REQUIRED,
    LONG_ORDER_FIELDS,
    PRODUCT_FIELDS,
    PRODUCT_REQUIRED,
    WIDE_ORDER_FIELDS,
    FileSource,
    OrdersSource,
    SourceConfig,
)
from pipelines.core.ids import normalise_id
from pipelines.core.partitions import DayWindow

PII_SALT_VARIABLE = "PERSONA_PII_SALT"


def pii_hasher(salt: str):
    """HMAC-SHA256 of each value under the salt, as hex, after the id rule staging reads ids by (normalise_id:
    `\t4926`, `="4926"` and `4926` are one id); a value that is no id (NULL, empty, blank) stays NULL, so its row is
    missing a customer id rather than one of a crowd sharing the hash of ''. One salt for every file and every
    night, so a hashed customer id joins across files and stays the same id across refreshes."""
    key = salt.encode("utf-8")

    def hash_one(value: str | None) -> str | None:
        normalised = normalise_id(value)
        return None if normalised is None else hmac.new(key, normalised.encode("utf-8"), hashlib.sha256).hexdigest()

    def hash_values(values: pl.Series) -> pl.Series:
        return pl.Series(values.name, [hash_one(v) for v in values.to_list()], dtype=pl.String)

    return hash_values


def pii_salt(pii: dict[str, str]) -> str | None:
    """The salt for hashed PII columns; a config that hashes without a salt stops before reading anything."""
    hashed = sorted(column for column, action in pii.items() if action == "hash")
    if not hashed:
        return None
    salt = os.environ.get(PII_SALT_VARIABLE, "")
    if not salt:
        raise IngestError(f"privacy.pii_columns hashes {hashed}: set {PII_SALT_VARIABLE} to a secret salt (keep it "
                          "the same every night, or hashed ids change between refreshes)")
    return salt


# What a user whose export truly lacks a field can say instead (docs/configuration.md, "Optional fields").
ABSENT_HINTS = {
    ("orders", "order_id"): ", or declare it absent (orders.columns.order_id: null): an order is then the lines of "
                            "one customer at one timestamp",
    ("orders", "category"): ", give a product table (products:) or orders.category_rules, or declare it absent "
                            "(orders.columns.category: null): segments then use no categories",
}


def map_columns(
    frame: pl.DataFrame | pl.LazyFrame,
    path: Path,
    source: FileSource,
    allowed: Iterable[str],
    required: Iterable[str],
    key: str,
    keep: Iterable[str] = (),
    pii: dict[str, str] | None = None,
    salt: str | None = None,
) -> tuple[pl.DataFrame | pl.LazyFrame, list[str]]:
    """Rename source columns to contract fields; every contract field exists afterwards (NULL if absent).
    Declared PII columns (`pii`: source column -> drop | hash) are never selected in clear: a hashed column
    enters as its salted hash, a dropped one not at all.

    Returns the mapped frame (eager or lazy, as given) and the source columns that were ignored.
    """
    pii = pii or {}
    columns = frame.collect_schema().names()
    present = set(columns)
    selected: list[pl.Expr] = [pl.col(SOURCE_FILE), pl.col(SOURCE_ROW)]
    used: set[str] = {SOURCE_FILE, SOURCE_ROW} | {c for c, action in pii.items() if action == "drop"}
    for field in allowed:
        column = source.columns.get(field, field)
        if isinstance(column, list):  # orders.columns.order_ts: [date column, time-of-day column]
            for part in column:
                if part not in present:
                    raise IngestError(
                        f"{path}: column {part!r} (mapped in {key}.columns.{field}) is not in the header; "
                        f"the header has {_header_summary(frame, part)}"
                    )
            date_part, time_part = (_part_text(part, pii, salt) for part in column)
            selected.append(joined_order_time(date_part, time_part).alias(field))
            used.update(column)
        elif column is None:  # declared absent from the export (orders.columns.order_id: null)
            selected.append(pl.lit(None, dtype=pl.String).alias(field))
        elif column in present:
            value = pl.col(column)
            if pii.get(column) == "hash":
                value = value.map_batches(pii_hasher(salt), return_dtype=pl.String)
            if field == "order_id" and getattr(source, "order_id_within", None):
                value = _order_id_within(value, source.order_id_within, present, path, frame)
                used.update(source.order_id_within)
            selected.append(value.alias(field))
            used.add(column)
        elif field in source.columns:
            raise IngestError(
                f"{path}: column {column!r} (mapped in {key}.columns.{field}) is not in the header; "
                f"the header has {_header_summary(frame, column)}"
            )
        elif field in required:
            raise IngestError(
                f"{path}: required column {field!r} is missing; map it under {key}.columns.{field}"
                f"{ABSENT_HINTS.get((key, field), '')}. The header has {_header_summary(frame)}"
            )
        else:
            selected.append(pl.lit(None, dtype=pl.String).alias(field))
    for column in keep:
        if column not in present:
            raise IngestError(
                f"{path}: category column {column!r} (listed in {key}.category_columns) is not in the header; "
                f"the header has {_header_summary(frame, column)}"
            )
        selected.append(pl.col(column))
        used.add(column)
    ignored = [c for c in columns if c not in used]
    return frame.select(selected), ignored


# The text of a date or a time-of-day cell as the readers give it, reduced to its part: an Excel date cell reads as
# `2026-10-31 00:00:00`, an Excel time cell as `1899-12-31 14:05:09` (calamine's day for a bare time), and a time
# column may hold a whole date and time. The date column's midnight and the time column's day are dropped.
MIDNIGHT = r"^(\d{4}-\d{2}-\d{2})[ T]00:00(:00(\.0+)?)?$"
DAY_BEFORE_TIME = r"^\d{4}-\d{2}-\d{2}[ T](\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)$"


def _part_text(column: str, pii: dict[str, str], salt: str | None) -> pl.Expr:
    value = pl.col(column).cast(pl.String)
    if pii.get(column) == "hash":
        value = value.map_batches(pii_hasher(salt), return_dtype=pl.String)
    return value.str.strip_chars()


def joined_order_time(date_part: pl.Expr, time_part: pl.Expr) -> pl.Expr:
    """orders.columns.order_ts: [date column, time-of-day column] as one text, `<date> <time>`, which staging reads
    with orders.date_formats like a one-column order time. NULL when both are blank (a missing order time, which
    orders.fill_down may fill). A blank part leaves its side of the space empty (`2026-10-31 `, ` 14:05:09`): staging
    quarantines such a row rather than read a date alone as midnight."""
    date_part = date_part.str.replace(MIDNIGHT, "${1}")
    time_part = time_part.str.replace(DAY_BEFORE_TIME, "${1}")
    blank_date = date_part.is_null() | (date_part == "")
    blank_time = time_part.is_null() | (time_part == "")
    return (pl.when(blank_date & blank_time).then(pl.lit(None, dtype=pl.String))
            .otherwise(pl.concat_str([date_part.fill_null(""), time_part.fill_null("")], separator=" ")))


def _order_id_within(order_id: pl.Expr, within: list[str], present: set[str], path: Path,
                     frame: pl.DataFrame | pl.LazyFrame) -> pl.Expr:
    """orders.order_id_within: the order id prefixed by the values of the columns it is unique within (S1/0001).
    A blank id stays blank (staging quarantines it); a blank store is an empty part (/0001), as read."""
    missing = [column for column in within if column not in present]
    if missing:
        raise IngestError(f"{path}: column {missing[0]!r} (listed in orders.order_id_within) is not in the header; "
                          f"the header has {_header_summary(frame, missing[0])}")
    parts = [pl.col(column).cast(pl.String).str.strip_chars().fill_null("") for column in within]
    blank = order_id.cast(pl.String).str.strip_chars().fill_null("") == ""
    return pl.when(blank).then(order_id.cast(pl.String)).otherwise(
        pl.concat_str([*parts, order_id.cast(pl.String).str.strip_chars()], separator="/"))


def _header_summary(frame: pl.DataFrame | pl.LazyFrame, wanted: str | None = None) -> str:
    """The header's columns (the first 20, and how many more), and the one closest to `wanted`, the column a config
    names that the header lacks (京东价 for 京东价格)."""
    real = [c for c in frame.collect_schema().names() if c not in (SOURCE_FILE, SOURCE_ROW)]
    hint = " (one column only: is the delimiter right?)" if len(real) == 1 else ""
    more = f" and {len(real) - 20} more" if len(real) > 20 else ""
    close = difflib.get_close_matches(wanted, real, n=1, cutoff=0.6) if wanted else []
    closest = f"; closest: {close[0]!r}" if close else ""
    return f"{real[:20]}{more}{hint}{closest}"


def stage_orders(
    config: SourceConfig, scratch: Path, window: DayWindow | None = None, log: Callable[[str], None] | None = None,
) -> tuple[list[Path], list[dict]]:
    """Daily sources stage the landing files of the window's days (each row tagged with its day); snapshot
    sources stage every file (day NULL). A file in motion is waited for (assets/raw/settle.py); `log` hears of it."""
    allowed = LONG_ORDER_FIELDS if config.shape == "long" else WIDE_ORDER_FIELDS
    required = config.order_required()
    if config.daily and window is not None:
        files = [(path, day) for day, paths in config.order_files_by_day().items() if day in window
                 for path in paths]
    else:
        files = [(path, None) for path in config.order_files()]
    return stage_files(files, config.orders, allowed, required, "orders", scratch, config.privacy.pii_columns,
                       settling=Settling.of(config, log))


def stage_customers(config: SourceConfig, scratch: Path,
                    log: Callable[[str], None] | None = None) -> tuple[list[Path], list[dict]]:
    if config.customers is None:
        return [], []
    return stage_files([(path, None) for path in config.customer_files()], config.customers, CUSTOMER_FIELDS,
                       CUSTOMER_REQUIRED, "customers", scratch, config.privacy.pii_columns,
                       settling=Settling.of(config, log))


def stage_products(config: SourceConfig, scratch: Path,
                   log: Callable[[str], None] | None = None) -> tuple[list[Path], list[dict]]:
    if config.products is None:
        return [], []
    return stage_files([(path, None) for path in config.product_files()], config.products, PRODUCT_FIELDS,
                       PRODUCT_REQUIRED, "products", scratch, config.privacy.pii_columns,
                       settling=Settling.of(config, log))


class Settling(NamedTuple):
    """How long a file must have been left alone before it is read, where that comes from, and who hears of a
    wait (assets/raw/settle.py)."""

    seconds: float = 0.0
    setting: str = "ingest.settle_seconds"
    log: Callable[[str], None] | None = None

    @classmethod
    def of(cls, config: SourceConfig, log: Callable[[str], None] | None = None) -> "Settling":
        return cls(settle_seconds(config), settle_source(config), log)


def stage_files(
    files: list[tuple[Path, date | None]], source: FileSource, allowed, required, key: str, scratch: Path,
    pii: dict[str, str] | None = None, settling: Settling | None = None,
) -> tuple[list[Path], list[dict]]:
    """Stream every file, mapped onto the contract, into a Parquet file in `scratch`: memory stays flat whatever
    the file size. Returns the Parquet files and one manifest entry per source file. A file is read once it has
    settled, and again if it changed while being read (`settling`)."""
    keep = source.category_columns if isinstance(source, OrdersSource) else []
    salt = pii_salt(pii)
    settling = settling or Settling()
    staged, manifest = [], []
    for index, (path, day) in enumerate(files):
        target = scratch / f"{key}-{index}.parquet"

        def read(path=path, day=day, target=target):
            return _stage_file(path, day, target, source, allowed, required, key, scratch, keep, pii, salt)

        (scanned, ignored), signature = read_settled(path, settling.seconds, settling.setting, read, settling.log)
        rows = pl.scan_parquet(target).select(pl.len()).collect().item()
        verify_record_count(path, source, scanned.records, rows)
        staged.append(target)
        # rows_read counts the malformed lines too: staging quarantines them, so the load audit still adds up.
        manifest.append({"source_file": str(path), "input": key, "rows_read": rows + len(scanned.malformed),
                         "ignored_columns": ignored, "partition_date": day, "file_size": signature[0],
                         "file_mtime_ns": signature[1], "malformed": scanned.malformed})
    return staged, manifest


def _stage_file(path: Path, day: date | None, target: Path, source: FileSource, allowed, required, key: str,
                scratch: Path, keep, pii, salt) -> tuple[SourceScan, list[str]]:
    """One file mapped onto the contract into `target`. A CSV the strict parser accepts can still hold a line
    Polars rejects (a stray quote): the second pass reads it without its malformed lines."""
    for split in (False, True):
        scanned = scan_source_file(path, source, scratch, split)
        mapped, ignored = map_columns(with_origin(scanned.frame, path), path, source, allowed, required, key,
                                      keep, pii, salt)
        mapped = mapped.with_columns(pl.lit(day, dtype=pl.Date).alias(PARTITION_DATE))
        try:
            mapped.sink_parquet(target)
            return scanned, ignored
        except pl.exceptions.PolarsError as exc:
            if scanned.readable is None:
                raise IngestError(f"{path}: unreadable ({str(exc).splitlines()[0]})") from None
            failure = csv_failure(exc, path, scanned, source)
            if split or not isinstance(failure, MalformedRecord):
                raise failure from None
    raise AssertionError("unreachable")


def empty_raw(fields) -> pl.DataFrame:
    return pl.DataFrame(schema={SOURCE_FILE: pl.String, SOURCE_ROW: pl.Int64, **{f: pl.String for f in fields},
                                PARTITION_DATE: pl.Date})


def read_orders(config: SourceConfig, scratch: Path) -> tuple[pl.DataFrame, list[dict]]:
    """The staged order rows as one frame (for inspection and tests; the asset streams them instead)."""
    staged, manifest = stage_orders(config, scratch)
    return pl.concat([pl.read_parquet(p) for p in staged], how="vertical"), manifest


def read_customers(config: SourceConfig, scratch: Path) -> tuple[pl.DataFrame, list[dict]]:
    staged, manifest = stage_customers(config, scratch)
    if not staged:
        return empty_raw(CUSTOMER_FIELDS), manifest
    return pl.concat([pl.read_parquet(p) for p in staged], how="vertical"), manifest
