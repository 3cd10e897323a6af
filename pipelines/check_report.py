"""`persona check`: the report's data (pipelines/check.py measures it), the rule that judges a share measured on
a sample (`judge`), and the report's text, plain and aligned. Chinese column names and values count two columns
wide, so tables stay aligned in a terminal. Nothing here reads files or imports the layers."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from pipelines.core.config import FileSource, SourceConfig
from pipelines.core.shares import BEYOND, BY_CHANCE, CONFIDENCE, OK, above_limit, interval_text, wilson_interval

SAMPLE_ROWS = 10_000  # data rows sampled of each file; a file of up to this many is read whole
SLICES = 10  # a larger file: its sample is this many slices, evenly spaced from its start to its end
MAX_STEP = 50  # each slice keeps one row in up to this many of the rows it spans (pipelines/check.py spread)
FILES_AT_EACH_END = 2  # a glob or landing folder: its first and last files are sampled
TOP_REASONS = 8  # quarantine reasons shown per input
TOP_CATEGORIES = 10
NUMBER = re.compile(r"[\d,]+(\.\d+)?%?( lines)?")


@dataclass
class FileSample:
    path: Path
    rows: int  # data rows sampled, malformed lines included
    total: int | None  # rows in the file, when known (read to its end, Parquet metadata) or estimated
    estimated: bool = False  # total estimated from the file size
    malformed: int = 0
    how: str = ""  # how the rows were sampled ("10 slices spread over the file, 1 row in 50 of each")

    @property
    def whole(self) -> bool:
        """Every row of the file was read."""
        return self.total is not None and not self.estimated and self.rows >= self.total


@dataclass
class FieldLine:
    field: str
    source: str  # the source column, or "declared absent" / "absent"
    examples: list[str]
    note: str = ""


@dataclass
class InputReport:
    key: str  # orders | customers | products
    files: list[FileSample]
    of_files: int
    fields: list[FieldLine] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    rows: int = 0
    reasons: list[tuple[str, int]] = field(default_factory=list)  # (reason, rows), most frequent first
    # A reason's kind hides its values (<value>); the first row's raw value of each kind shows what it was.
    examples: dict[str, str] = field(default_factory=dict)
    columns: list[tuple[str, int]] = field(default_factory=list)  # (failing column, rows), most frequent first
    # per file: (path, rows read, quarantined, verdict: ok / near the limit / over the limit, with the interval)
    shares: list[tuple[Path, int, int, str]] = field(default_factory=list)
    key_shares: list[tuple[str, float]] = field(default_factory=list)  # (field, share of rows carrying it)
    warnings: list[str] = field(default_factory=list)  # about the sampling (a slice left out)

    @property
    def whole(self) -> bool:
        """Every row of every file of the input was read."""
        return self.of_files == len(self.files) and all(f.whole for f in self.files)


@dataclass
class CheckReport:
    config: SourceConfig
    inputs: list[InputReport]
    categories: list[tuple[str, int]] | None = None  # None: the export declares none
    dates: tuple[datetime, datetime] | None = None
    orders_loaded: int = 0
    coverage: tuple[int, int] | None = None  # (order customers, of them with a profile row)
    families: list[tuple[str, str, str]] = field(default_factory=list)  # (family, used | not fed | not chosen, detail)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def input(self, key: str) -> InputReport | None:
        return next((report for report in self.inputs if report.key == key), None)


# judge's verdicts, as the report says them
VERDICTS = {"fail": "over the limit", "near": "near the limit", "by chance": "over the limit by chance", "ok": "ok"}


def judge(count: int, rows: int, limit: float, whole: bool, above: bool) -> tuple[str, tuple[float, float] | None]:
    """Whether a share of `count` in `rows` rows breaks a limit it must not be above (`above`) or below: "fail",
    "near", "by chance" or "ok". Read whole, the share is the run's and is judged as a run judges it: a share above
    its limit fails only beyond chance (pipelines/core/shares.py above_limit, the quarantine gate's rule), else it
    is "by chance", with its interval; a share below its limit fails. Measured on a sample of a larger file, it fails
    only when its CONFIDENCE Wilson interval lies wholly beyond the limit, and is "near" when the interval holds the
    limit (the run's share may fall on either side). Returns the interval too (None when read whole, but for "by
    chance"). The interval takes the sampled rows as drawn independently, which the thin slices of
    pipelines/check.py `spread` come close to."""
    share = count / rows
    if whole and above:
        verdict, bounds = above_limit(count, rows, limit)
        return {OK: ("ok", None), BEYOND: ("fail", None), BY_CHANCE: ("by chance", bounds)}[verdict]
    if whole:
        return ("fail" if share < limit else "ok"), None
    low, high = wilson_interval(count, rows)
    if (low > limit) if above else (high < limit):
        return "fail", (low, high)
    return ("near" if low <= limit <= high else "ok"), (low, high)


def within(bounds: tuple[float, float] | None, prefix: str = " (", suffix: str = ")") -> str:
    """The confidence interval of a share measured on a sample, for a message; nothing for a file read whole."""
    return f"{prefix}{interval_text(bounds)}{suffix}" if bounds else ""


def _example(value: str | None) -> str:
    """A raw value as the reasons table shows it beside its kind: quoted, at most 30 characters."""
    if value is None:
        return ""
    return f"e.g. {value[:30]!r}" + ("…" if len(value) > 30 else "")


def sampling_text(slices: int, step: int, unit: str, where: str) -> str:
    """How a file was sampled: `10 slices spread over the file, 1 row in 50 of each`."""
    thinned = f"1 {unit} in {step} of each" if step > 1 else f"{SAMPLE_ROWS // SLICES:,} {unit}s each"
    return f"{slices} slices {where}, {thinned}"


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Rows of cells, two spaces apart, each column padded to its widest cell: counts and shares (every cell of
    the column is one, like `2,805`, `28.1%` or `868 lines`) on the right, text on the left (the last text column
    is not padded)."""
    if not rows:
        return []
    count = max(map(len, rows))
    widths = [max((display_width(row[i]) for row in rows if len(row) > i), default=0) for i in range(count)]
    numeric = [all(NUMBER.fullmatch(row[i]) for row in rows if len(row) > i and row[i]) for i in range(count)]
    lines = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            gap = " " * (widths[i] - display_width(cell))
            cells.append(gap + cell if numeric[i] else cell + gap if i < len(row) - 1 else cell)
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def shown(path: Path) -> str:
    """A path as the user can find it: relative to the current folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _rows(sample: FileSample) -> str:
    text = f"{sample.rows:,} rows"
    if sample.total is not None and not sample.whole:
        total = f"~{sample.total:,}" if sample.estimated else f"{sample.total:,}"
        how = "; ".join(part for part in ("estimated from the file size" if sample.estimated else "", sample.how)
                        if part)
        text = f"sampled {sample.rows:,} of {total} rows" + (f" ({how})" if how else "")
    elif sample.total is not None:
        text += " (the whole file)"
    if sample.malformed:
        text += f", {sample.malformed:,} malformed line(s)"
    return text


def _files(report: CheckReport) -> list[str]:
    lines = ["Files"]
    rows = []
    for key in ("orders", "customers", "products"):
        item = report.input(key)
        if item is None:
            rows.append([key, "(none)"])
            continue
        if item.of_files > len(item.files):
            rows.append([key, f"sampled {len(item.files)} of {item.of_files} files (the first and last "
                              f"{len(item.files) // 2})"])
            rows.extend(["", shown(s.path), _rows(s)] for s in item.files)
        else:
            rows.extend([key if i == 0 else "", shown(s.path), _rows(s)] for i, s in enumerate(item.files))
    return lines + table(rows)


def _mapping(item: InputReport) -> list[str]:
    lines = [f"{item.key.capitalize()}: contract field <- source column, example raw values"]
    lines += table([[f.field, f.source, " | ".join(f.examples) or (f"({f.note})" if f.note else "")]
                    for f in item.fields])
    if item.ignored:
        lines.append(f"  ignored source columns: {', '.join(item.ignored)}")
    return lines


def _quarantine(report: CheckReport) -> list[str]:
    limit = report.config.quality.max_quarantine_share
    lines = [f"Quarantine: share of the sampled rows per file, limit quality.max_quarantine_share {limit:.1%}"]
    rows = []
    for item in report.inputs:
        for path, read, quarantined, not_counted, verdict in item.shares:
            # Cancelled orders and returns (and lines whose sku only the unsampled product rows may hold) are
            # quarantined without counting against the limit: the share is of the rows that count.
            apart = f" ({not_counted:,} not counted)" if not_counted else ""
            rows.append([item.key, shown(path), f"{quarantined:,} of {read:,} rows{apart}",
                         f"{(quarantined - not_counted) / read:.1%}", verdict])
    lines += table(rows)
    if any(share[3] for item in report.inputs for share in item.shares):
        # Lines whose sku only the unsampled product rows may hold have a warning of their own.
        lines.append("  not counted against the limit: cancelled orders, returns, refunded lines, free lines and sales "
                     "without a customer id (the shop's business, not faults of the export; quality.min_key_share "
                     "judges the customer ids)")
    for item in report.inputs:
        if not item.reasons:
            continue
        lines.append(f"  {item.key}: rows by reason (of {item.rows:,} sampled; a row failing several rules has "
                     "them all in one reason)")
        reasons = [[kind, f"{rows:,}", f"{rows / item.rows:.1%}", _example(item.examples.get(kind))]
                   for kind, rows in item.reasons[:TOP_REASONS]]
        lines += table(reasons, indent="    ")
        if len(item.reasons) > TOP_REASONS:
            lines.append(f"    … {len(item.reasons) - TOP_REASONS} more reason(s)")
        lines.append(f"  {item.key}: rows by failing column: " + ", ".join(
            f"{column} {rows:,} ({rows / item.rows:.1%})" for column, rows in item.columns))
    return lines


def _keys(report: CheckReport) -> list[str]:
    limit = report.config.quality.min_key_share
    rows = [[item.key, "  ".join(f"{name} {share:.1%}" for name, share in item.key_shares)]
            for item in report.inputs if item.key_shares]
    if not rows:
        return []
    return [f"Keys: share of the sampled rows carrying each key, limit quality.min_key_share {limit:.1%}"] + table(rows)


def _categories(report: CheckReport) -> list[str]:
    config = report.config
    if report.categories is None:
        return ["Categories: none; the export declares none (orders.columns.category: null)"]
    where = "orders.category_columns" if config.shape == "wide" else (
        "the product table" if config.products is not None and "category" not in config.orders.columns else
        "orders.category_rules" if config.orders.category_rules and "category" not in config.orders.columns else
        "the orders' category column")
    lines = [f"Categories: {len(report.categories):,} distinct in the sample (from {where}), limit "
             f"quality.max_categories {config.quality.max_categories}"]
    lines += table([[name, f"{count:,} lines"] for name, count in report.categories[:TOP_CATEGORIES]])
    if len(report.categories) > TOP_CATEGORIES:
        lines.append(f"  … {len(report.categories) - TOP_CATEGORIES:,} more")
    return lines


def _dates_and_profiles(report: CheckReport) -> list[str]:
    config = report.config
    if report.dates:
        first, last = report.dates
        lines = [f"Order dates: {first:%Y-%m-%d %H:%M:%S} to {last:%Y-%m-%d %H:%M:%S} "
                 f"({report.orders_loaded:,} orders staged from the sample)"]
    else:
        lines = [f"Order dates: none ({report.orders_loaded:,} orders staged from the sample)"]
    if config.shape == "wide":
        lines.append("Profiles: from the basket rows (wide shape)")
    elif report.coverage is None:
        lines.append("Profiles: no customer file (customers:); order customers get an empty profile")
    else:
        customers, profiled = report.coverage
        share = profiled / customers if customers else 0.0
        lines.append(f"Profiles: {profiled:,} of the {customers:,} order customers in the sample ({share:.1%}) have "
                     f"a row in the customer file, limit quality.min_profile_coverage "
                     f"{config.quality.min_profile_coverage:.1%}")
    return lines


def _families(report: CheckReport) -> list[str]:
    chosen = ", ".join(report.config.model.features)
    return [f"Model features (model.features: {chosen})"] + table([list(row) for row in report.families])


def render(report: CheckReport, config_path: str) -> str:
    """The whole report; problems are listed last (the CLI also prints them on stderr)."""
    config = report.config
    blocks = [
        [f"persona check: {config_path}: config valid (shop {config.name}, {config.shape} shape)",
         f"Sample: a file of up to {SAMPLE_ROWS:,} data rows is read whole; of a larger one, {SAMPLE_ROWS:,} rows "
         f"in {SLICES} slices spread from its start to its end; of a glob or landing folder, its first "
         f"{FILES_AT_EACH_END} and last {FILES_AT_EACH_END} files. Shares below are of the sample; one measured on a "
         f"sample fails only when its {CONFIDENCE:.0%} confidence interval lies beyond the limit."],
        _files(report),
        *[_mapping(item) for item in report.inputs],
        _quarantine(report),
        _keys(report),
        _categories(report),
        _dates_and_profiles(report),
        _families(report),
    ]
    if report.warnings:
        blocks.append(["Warnings"] + [f"  - {warning}" for warning in report.warnings])
    if report.failures:
        blocks.append(["Problems"] + [f"  - {failure}" for failure in report.failures])
        verdict = f"Result: a run would fail ({len(report.failures)} problem(s), also on stderr)"
    else:
        warned = f", {len(report.warnings)} warning(s)" if report.warnings else ""
        verdict = f"Result: a run would pass on this sample{warned}"
    blocks.append([verdict])
    return "\n\n".join("\n".join(block) for block in blocks if block)


# ------------------------------------------------------------------------------- the field table


def example_text(value: str, width: int = 24) -> str:
    value = " ".join(value.split())
    return value if len(value) <= width else value[:width - 1] + "…"


def category_given_by(config: SourceConfig) -> list[str]:
    """Where an order line's category comes from when the line has none of its own."""
    return [key for key, present in (("products", config.products is not None),
                                     ("orders.category_rules", bool(config.orders.category_rules))) if present]


def field_lines(source: FileSource, allowed, staged: list[Path], flags: list[str],
                category_from: list[str]) -> list[FieldLine]:
    """Per contract field: its source column and three distinct raw values of the sample."""
    raw = pl.concat([pl.read_parquet(path) for path in staged], how="vertical") if staged else pl.DataFrame()
    lines = []
    for name in [*allowed, *flags]:
        values = raw.get_column(name).drop_nulls() if name in raw.columns else pl.Series([], dtype=pl.String)
        examples = [example_text(v) for v in values.str.strip_chars().filter(values.str.strip_chars() != "")
                    .unique(maintain_order=True).head(3).to_list()]
        column = source.columns.get(name, name)
        if isinstance(column, list):  # orders.columns.order_ts: [date column, time-of-day column]
            column = " + ".join(column)
        if name in flags:
            lines.append(FieldLine(f"[flag] {name}", name, examples))
        elif column is None:
            lines.append(FieldLine(name, "declared absent", []))
        elif not examples and name not in source.columns:
            # No such column, or nothing in it; an order line's category may come from elsewhere.
            given_by = category_from if name == "category" else []
            lines.append(FieldLine(name, f"absent; from {' and '.join(given_by)}" if given_by else "absent", []))
        else:
            lines.append(FieldLine(name, column, examples, "" if examples else "empty in the sample"))
    return lines
