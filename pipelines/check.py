"""`persona check`: a dry run of a source config on a sample of its files, in seconds whatever their size.

The sample goes through the pipeline's own code, so a mistake fails or warns as it would in a run:
- the raw layer reads and maps it (assets/raw/mapping.py `stage_files`: the readers, the mapping, malformed
  lines, missing columns, PII) and writes the raw tables (assets/raw/tables.py), in an in-memory DuckDB;
- staging builds on it whole (assets/staging/build.py `build_staging`: the typing rules of typed.py with
  token_parameters, product tables, duplicates, quarantine and the load audit), so a rule staging gains is
  checked here without a change;
- the features layer computes the customer features from it (assets/features/customer_features.py).

The blocking checks of a run are then judged on the sample: quarantine share per file, key share of the raw
suites, distinct categories, rows left, feature columns left. A file of up to SAMPLE_ROWS rows is read whole; of
a larger one, SAMPLE_ROWS rows spread over it (`spread`: thin slices from its start to its end; a CSV's from
byte offsets, so it is never read whole); of a glob or landing folder, the first and last FILES_AT_EACH_END
files. A share measured on a sample fails only when its 95% Wilson interval lies beyond the limit
(pipelines/check_report.py `judge`).
Great Expectations and scikit-learn are never imported (3-4 s each); the report's data and text are
pipelines/check_report.py.
"""

from __future__ import annotations

import bisect
import collections
import csv
import functools
import io
import itertools
import math
import re
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl

from assets.features.customer_features import build_customer_features, feature_family
from assets.raw.files import write_raw_table
from assets.raw.lines import MAX_RECORD_LINES
from assets.raw.mapping import stage_files
from assets.raw.readers import SOURCE_FILE, SOURCE_ROW, WHITESPACE, IngestError, detect_format
from assets.raw.tables import write_malformed_lines, write_manifest
from assets.staging.build import build_staging
from assets.staging.rules import SET_ASIDE_ONLY
from pipelines.check_report import (
    FILES_AT_EACH_END,
    MAX_STEP,
    SAMPLE_ROWS,
    SLICES,
    VERDICTS,
    CheckReport,
    FileSample,
    InputReport,
    category_given_by,
    field_lines,
    judge,
    sampling_text,
    within,
)
from pipelines.core.config import (
    CUSTOMER_FIELDS,
    CUSTOMER_REQUIRED,
    LONG_ORDER_FIELDS,
    PRODUCT_FIELDS,
    PRODUCT_REQUIRED,
    WIDE_ORDER_FIELDS,
    ConfigError,
    FileSource,
    SourceConfig,
)
from pipelines.core.partitions import check_days_in_range
from pipelines.core.resources import RAW_CATALOG, WAREHOUSE_SCHEMAS

CHECK_RUN_ID = "persona-check"
# The key fields of the raw order suite (quality/suites.py raw_orders_suite): those the config requires must be
# carried by quality.min_key_share of the rows. Kept here as a copy: the suite module imports Great Expectations.
SUITE_KEYS = ("order_id", "customer_id", "order_ts", "category", "amount")
FAMILIES = ("demographics", "categories", "rfm", "payment")
PROFILE_FIELDS_SHOWN = ("age", "income", "gender", "home_owner")
BLANK_LINES = (b"\n", b"\r\n", b"\r", b"")


class CheckError(ValueError):
    """The check stops: a file that does not read, a mapping that fails, staging that fails on the sample."""


# --- sampling ---------------------------------------------------------------------------------------------------

@dataclass
class Sampled:
    """A file's sample: the copy holding it (or the file itself, thinned after reading), the file's row of each of
    its rows and line of each of its records (copy line, file line, exact) when not the copy's, how it was taken."""

    copy: Path
    total: int | None = None  # rows in the file: from the Parquet metadata, or estimated from the file size
    estimated: bool = False
    how: str = ""
    rows: list[int] | None = None
    lines: list[tuple[int, int, bool]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def file_line(self, line: int) -> tuple[int, bool]:
        at = bisect.bisect_right(self.lines, (line, math.inf)) - 1
        copy_line, file_line, exact = self.lines[at] if at >= 0 else (line, line, True)
        return file_line + line - copy_line, exact

    def shown_line(self, match: re.Match) -> str:
        line, exact = self.file_line(int(match.group(1)))
        return f"line {line}" if exact else f"line ~{line} (estimated from the byte offset of its slice)"


def pick_files(files: list) -> list:
    """All files of a small glob; the first and last FILES_AT_EACH_END of a larger one (or of landing days)."""
    if len(files) <= 2 * FILES_AT_EACH_END:
        return list(files)
    return [*files[:FILES_AT_EACH_END], *files[-FILES_AT_EACH_END:]]


def head_lines(path: Path, target: Path, lines: int, quoted: bool = True) -> tuple[bool, int, int]:
    """Copy the first `lines` lines of `path` byte for byte (a newline byte never sits inside a UTF-8 or GBK
    character), and more while a quoted value is still open at the cut (an odd number of quotes so far), up to
    MAX_RECORD_LINES more. Returns whether the file goes on after the copy, the bytes and the records copied."""
    quotes = copied = count = records = 0
    with path.open("rb") as src, target.open("wb") as dst:
        while line := src.readline():
            if count >= lines and (not quoted or quotes % 2 == 0 or count >= lines + MAX_RECORD_LINES):
                return bool(line.strip()) or bool(src.read(1 << 16).strip()), copied, records
            dst.write(line)
            copied += len(line)
            records += quotes % 2 == 0
            quotes += line.count(b'"') if quoted else 0
            count += 1
    return False, copied, records


def spread(rows: int, length: int | None = None, margin: float = 1.0) -> tuple[int, list[int]]:
    """The step and offsets of SLICES slices of a file of `rows` rows (`length` bytes, for slices at byte offsets),
    evenly spaced from its start to its end; each spans `step` (up to MAX_STEP) times SAMPLE_ROWS / SLICES rows and
    keeps one in `step`. Thin, as neighbouring rows are alike (the lines of one big order): on Online Retail II, 10
    slices of 1,000 neighbouring rows measure the quarantine share to ±6 points (one standard deviation over where
    they fall), 10 keeping one row in 50 to ±0.2. `margin` widens slices whose rows' length is estimated."""
    rows = max(rows, 1)
    length = rows if length is None else length
    step = max(1, min(MAX_STEP, int(rows / SAMPLE_ROWS / margin)))
    span = SAMPLE_ROWS // SLICES * step * margin * length / rows
    return step, [round(i * (length - span) / (SLICES - 1)) for i in range(SLICES)]


def _parquet_sample(path: Path, target: Path) -> Sampled:
    """The row count is in the file's metadata; each slice reads only the row groups it spans."""
    scan = pl.scan_parquet(path)
    total = scan.select(pl.len()).collect().item()
    if total <= SAMPLE_ROWS:
        scan.collect().write_parquet(target)
        return Sampled(target, total)
    step, offsets = spread(total)
    per = SAMPLE_ROWS // SLICES
    pl.concat([scan.slice(o, per * step).gather_every(step).collect() for o in offsets]).write_parquet(target)
    return Sampled(target, total, how=sampling_text(SLICES, step, "row", "spread over the file"),
                   rows=[o + 1 + i * step for o in offsets for i in range(per)])


def _whole_record(lines: list[bytes], encoding: str, delimiter: str, width: int) -> bool:
    """Whether the lines start with one whole CSV record of the header's width (not the rest of a quoted value)."""
    quotes = itertools.accumulate(line.count(b'"') for line in lines[:MAX_RECORD_LINES])
    end = next((i + 1 for i, count in enumerate(quotes) if count % 2 == 0), None)
    try:
        text = b"".join(lines[:end or 0]).decode(encoding, errors="replace")
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error:
        return False
    return len(records) == 1 and len(records[0]) == width


def _slice_records(handle, stop: int | None, count: int, step: int, blank_rows: bool, check=None, resync=False):
    """Every step-th record, up to `count`, from the handle's position (a line start) to the line holding byte
    `stop`. `check` (CSV) tells a whole record: a quoted value spanning lines is kept whole, a record that does not
    parse is its first line alone (malformed, as a run reads it). With `resync` (a slice from a byte offset), the
    slice starts after the first line closing a quote (or a malformed first line) when its lines do not start with
    a whole record, or is dropped (None). Returns the offset of its first record, the records kept as (row, line,
    bytes) counted from it (a blank line is a row of a CSV, not of NDJSON), and the rows, lines and bytes read."""
    start = position = handle.tell()

    def file_lines():  # whole lines, a megabyte at a time
        nonlocal position
        while (stop is None or position < stop) and (chunk := handle.readlines(min(1 << 20, (stop or math.inf)
                                                                                     - position))):
            position += sum(map(len, chunk))
            yield from chunk

    lines = file_lines()
    ahead, skip = list(itertools.islice(lines, MAX_RECORD_LINES + 1)) if resync else [], 0
    closing = next((i + 1 for i, line in enumerate(ahead) if line.count(b'"') % 2), None)
    if resync and ahead and closing and not check(ahead):  # without quotes, lines are malformed as they stand
        skip = next((i for i in (closing, 1) if check(ahead[i:])), None)
        if skip is None:
            return None
    queue = collections.deque(ahead[skip:])
    kept, rows, read, size, seen = [], 0, 0, 0, 0
    while (line := queue.popleft() if queue else next(lines, None)) is not None:
        spans = 1
        if check and line.count(b'"') % 2:  # a quoted value spanning lines: on to the line closing it
            record, quotes = [line], line.count(b'"')
            while quotes % 2 and len(record) < MAX_RECORD_LINES and \
                    (more := queue.popleft() if queue else next(lines, None)) is not None:
                record.append(more)
                quotes += more.count(b'"')
            if len(record) > 1 and not check(record):
                queue.extendleft(reversed(record[1:]))
                record = record[:1]
            line, spans = b"".join(record), len(record)
        blank = line in BLANK_LINES
        rows += blank_rows or not blank
        if not blank:
            if seen % step == 0:
                kept.append((rows, read, line))
            seen += 1
        read, size = read + spans, size + len(line)
        if seen % step == 0 and len(kept) >= count:
            break
    return start + sum(map(len, ahead[:skip])), kept, rows, read, size


def _text_sample(path: Path, source: FileSource, fmt: str, target: Path) -> Sampled:
    """A CSV or NDJSON file: whole when its head holds it; else SLICES slices from evenly spaced byte offsets
    after the header (and title lines), the first from the first data row. The rows and lines of the first slice
    are counted; those of the others estimated from their byte offset."""
    header = source.skip_rows + 1 if fmt == "csv" else 0
    more, copied, records = head_lines(path, target, header + SAMPLE_ROWS, quoted=fmt == "csv")
    if not more:
        return Sampled(target)
    size = path.stat().st_size
    picked, warnings, last_row, last_line = [], [], 0, header  # picked: (file row, file line, exact, record)
    before, bytes_per = None, (1.0, 1.0)
    with path.open("rb") as handle:
        head = b"".join(handle.readline() for _ in range(header))
        end = data = len(head)
        check = None
        if fmt == "csv" and source.delimiter != WHITESPACE:  # whitespace-separated: no line break in a value
            names = csv.reader([head.splitlines()[-1].decode(source.encoding, "replace")], delimiter=source.delimiter)
            check = functools.partial(_whole_record, encoding=source.encoding, delimiter=source.delimiter,
                                      width=len(next(names)))
        step, offsets = spread(round((size - data) * (records - header) / max(copied - data, 1)), size - data, 1.25)
        for index, offset in enumerate(offsets):
            handle.seek(data + offset)
            if index:
                handle.readline()  # on to the next line start
            # Each slice takes its share and what the slices before it lacked (one cut short by the next one).
            got = _slice_records(handle, data + offsets[index + 1] if index + 1 < len(offsets) else None,
                                 SAMPLE_ROWS // SLICES * (index + 1) - len(picked), step, fmt == "csv", check,
                                 resync=bool(index and check))
            if got is None:
                warnings.append(f"{path}: the slice at byte {data + offset:,} is left out of the sample: no whole "
                                f"record starts in the {MAX_RECORD_LINES:,} lines after it (a quoted value "
                                "spanning many lines?)")
                continue
            start, kept, rows, read, length = got
            # Rows and lines are counted in the first slice; before a later one, those of the gap since the last
            # are estimated from its bytes, at the mean bytes per row (and per line) of the slices around it.
            bytes_per = (length / max(rows, 1), length / max(read, 1)) if rows else bytes_per
            gap, mean = start - end, [(a + b) / 2 for a, b in zip(bytes_per, before or bytes_per)]
            row_at, line_at = last_row + round(gap / mean[0]), last_line + round(gap / mean[1])
            picked += [(row_at + row, line_at + line + 1, index == 0, text) for row, line, text in kept]
            last_row, last_line, end, before = row_at + rows, line_at + read, start + length, bytes_per
    body = [text if text.endswith(b"\n") else text + b"\n" for *_, text in picked]
    target.write_bytes(head + b"".join(body))
    at = itertools.accumulate((text.count(b"\n") for text in body), initial=header + 1)
    how = sampling_text(len(offsets) - len(warnings), step, "record" if fmt == "csv" else "line",
                        "from evenly spaced byte offsets")
    return Sampled(target, last_row + round((size - end) / bytes_per[0]), True, how, [row for row, *_ in picked],
                   [(copy_line, line, exact) for copy_line, (_, line, exact, _) in zip(at, picked)], warnings)


def _sample_copy(path: Path, source: FileSource, target: Path) -> Sampled:
    """The sample of one file: a copy (CSV, NDJSON, Parquet), or the file itself (an .xlsx sheet, a JSON array:
    thinned after reading, as is a Parquet file the sampler cannot read, for the reader to say why)."""
    fmt = detect_format(path, source.format)
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        with path.open("rb") as handle:
            fmt = "json" if handle.read(1024).lstrip(b"\xef\xbb\xbf \r\n\t").startswith(b"[") else "ndjson"
    if fmt in ("csv", "ndjson"):
        return _text_sample(path, source, fmt, target)
    if fmt == "parquet":
        try:
            return _parquet_sample(path, target)
        except (pl.exceptions.PolarsError, OSError):
            pass  # the reader reads the file itself and says what is wrong with it
    return Sampled(path)


def _shown(message: str, copies: dict[Path, tuple[Path, Sampled]]) -> str:
    """A message about a copy as about the shop's file: its path and line numbers, no byte offset (the copy's)."""
    for copy, (original, sampled) in copies.items():
        if str(copy) in message and sampled.lines:
            message = re.sub(r"\bline (\d+)\b", sampled.shown_line, re.sub(r" \(byte offset \d+\)", "", message))
        message = message.replace(str(copy), str(original))
    return message


def _as_file_rows(frame: pl.DataFrame, entry: dict, sampled: Sampled) -> pl.DataFrame:
    """The copy's rows (and malformed lines) numbered as in the file."""
    rows = pl.Series(sampled.rows, dtype=pl.Int64)
    entry["malformed"] = [{**m, "row": rows[min(m["row"], len(rows)) - 1], "line": sampled.file_line(m["line"])[0]}
                          for m in entry.get("malformed", [])]
    return frame.with_columns(rows.gather(frame[SOURCE_ROW].clip(1, len(rows)) - 1).alias(SOURCE_ROW))


def sample_input(key: str, source: FileSource, files: list[tuple[Path, date | None]], allowed, required,
                 pii: dict[str, str], scratch: Path) -> tuple[InputReport, list[Path], list[dict]]:
    """Read and map a sample of one input's files as a run would (stage_files); the staged Parquet files name
    the shop's files and their row numbers, as do errors."""
    chosen = pick_files(files)
    copies: dict[Path, tuple[Path, Sampled]] = {}
    readable: list[tuple[Path, date | None]] = []
    for index, (path, day) in enumerate(chosen):
        try:
            sampled = _sample_copy(path, source, scratch / key / str(index) / path.name)
        except IngestError as exc:
            raise CheckError(str(exc)) from None
        copies[sampled.copy] = (path, sampled)
        readable.append((sampled.copy, day))
    try:
        staged, manifest = stage_files(readable, source, allowed, required, key, scratch / key, pii)
    except (IngestError, ConfigError) as exc:
        raise CheckError(_shown(str(exc), copies)) from None
    samples, warnings = [], []
    for (copy, _), target, entry in zip(readable, staged, manifest, strict=True):
        path, sampled = copies[copy]
        frame = pl.read_parquet(target)
        total, how = sampled.total, sampled.how
        if copy == path:  # read whole: keep evenly spaced rows
            total = frame.height
            if total > SAMPLE_ROWS:
                frame = frame[[i * total // SAMPLE_ROWS for i in range(SAMPLE_ROWS)]]
                how = f"1 row in {total / SAMPLE_ROWS:.1f}, evenly spaced"
        elif sampled.rows is not None:
            frame = _as_file_rows(frame, entry, sampled)
        frame.with_columns(pl.lit(str(path)).alias(SOURCE_FILE)).write_parquet(target)
        malformed = len(entry.get("malformed", []))
        rows = frame.height + malformed
        entry.update(source_file=str(path), rows_read=rows)
        samples.append(FileSample(path, rows, rows if total is None else total, sampled.estimated, malformed, how))
        warnings += sampled.warnings
    report = InputReport(key, samples, len(files), rows=sum(s.rows for s in samples),
                         ignored=sorted({c for entry in manifest for c in entry["ignored_columns"]}),
                         warnings=warnings)
    return report, staged, manifest


def _inputs(config: SourceConfig) -> list[tuple]:
    """(key, source, files with their landing day, contract fields, required fields, raw table columns)."""
    if config.daily:
        order_files = [(path, day) for day, paths in config.order_files_by_day().items() for path in paths]
    else:
        order_files = [(path, None) for path in config.order_files()]
    order_fields = LONG_ORDER_FIELDS if config.shape == "long" else WIDE_ORDER_FIELDS
    return [
        ("orders", config.orders, order_files, order_fields, config.order_required(),
         [*order_fields, *config.orders.category_columns]),
        ("customers", config.customers, [(p, None) for p in config.customer_files()], CUSTOMER_FIELDS,
         CUSTOMER_REQUIRED, CUSTOMER_FIELDS),
        ("products", config.products, [(p, None) for p in config.product_files()], PRODUCT_FIELDS,
         PRODUCT_REQUIRED, PRODUCT_FIELDS),
    ]


# --- the check --------------------------------------------------------------------------------------------------

def run_check(config: SourceConfig, run_started: datetime | None = None) -> CheckReport:
    """Sample, stage and measure; raises CheckError when a run would stop before staging (or in it)."""
    if config.daily:
        # A run refuses landing days outside the Dagster partitions before it reads anything: so does the check.
        try:
            check_days_in_range(sorted(config.order_files_by_day()))
        except ValueError as exc:
            raise CheckError(f"{config.source_path}: orders.path: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="persona-check-") as scratch:
        con = duckdb.connect()
        try:
            con.execute(f"ATTACH ':memory:' AS {RAW_CATALOG}")
            for schema in WAREHOUSE_SCHEMAS:
                con.execute(f"CREATE SCHEMA {schema}")
            inputs = []
            for key, source, files, allowed, required, columns in _inputs(config):
                staged, manifest = [], []
                if source is not None:
                    report, staged, manifest = sample_input(key, source, files, allowed, required,
                                                            config.privacy.pii_columns, Path(scratch))
                    report.fields = field_lines(source, allowed, staged,
                                                config.orders.category_columns if key == "orders" else [],
                                                category_given_by(config) if key == "orders" else [])
                    inputs.append(report)
                write_raw_table(con, f"raw.{key}", staged, columns)
                write_malformed_lines(con, f"raw.{key}", manifest, None)
                write_manifest(con, CHECK_RUN_ID, key, manifest, None)
            try:
                build_staging(con, config, CHECK_RUN_ID, run_started=run_started)
            except (duckdb.Error, ValueError) as exc:
                raise CheckError(f"staging fails on the sample: {str(exc).splitlines()[0]}") from None
            return measure(con, config, inputs)
        finally:
            con.close()


def reason_kind(reason: str, value: str | None) -> str:
    """A quarantine reason without its variable part: the raw value, row, line and column numbers, and the customers
    and file a shared order id names. A row failing several rules has them all in one reason (joined by '; '): it is
    one kind, so a row counts once."""
    if value:
        reason = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", "<value>", reason)
    reason = re.sub(r"\b(row|line|column) \d+", r"\1 N", reason)
    reason = re.sub(r"\b(row N) of [^)]+\)", r"\1 of <file>)", reason)
    # A row failing several rules carries one raw value: the status of a cancelled order is variable too.
    reason = re.sub(r"\(status [^)]*\)", "(status <value>)", reason)
    return re.sub(r"\bcustomer [^\s),;]+", "customer <id>", reason)


def measure(con: duckdb.DuckDBPyConnection, config: SourceConfig, inputs: list[InputReport]) -> CheckReport:
    report = CheckReport(config, inputs)
    quality = config.quality
    quarantine = con.execute("SELECT input, source_file, column_name, raw_value, reason FROM quality.quarantine "
                             "WHERE run_id = ?", [CHECK_RUN_ID]).fetchall()
    audit = con.execute("SELECT input, source_file, rows_read, rows_quarantined, rows_set_aside "
                        "FROM quality.load_audit WHERE run_id = ?", [CHECK_RUN_ID]).fetchall()
    # A sampled product table lacks skus that the whole one has: lines quarantined for their sku say little.
    products = report.input("products")
    partial_products = products is not None and not products.whole
    for item in inputs:
        kinds: dict[str, int] = {}
        kinds_by_file: dict[str, dict[str, int]] = {}  # a failing file's message names its own reasons
        columns: dict[str, int] = {}
        for input_name, source_file, failed, value, reason in quarantine:
            if input_name == item.key:
                kind = reason_kind(reason, value)
                kinds[kind] = kinds.get(kind, 0) + 1
                if item.key != "orders" or not re.fullmatch(SET_ASIDE_ONLY, reason):  # the reasons that count
                    in_file = kinds_by_file.setdefault(source_file, {})
                    in_file[kind] = in_file.get(kind, 0) + 1
                # Staging names every column a row fails (joined by ', '); a malformed line has none.
                for column in (failed or "(whole line)").split(", "):
                    columns[column] = columns.get(column, 0) + 1
        item.reasons = sorted(kinds.items(), key=lambda pair: (-pair[1], pair[0]))
        item.columns = sorted(columns.items(), key=lambda pair: (-pair[1], pair[0]))
        excused = {f: 0 for f in (s.path for s in item.files)}
        if partial_products and item.key == "orders":
            # A line whose sku the sampled product rows lack, failing nothing else (its category is missing
            # because of it): the whole table may hold the sku.
            for input_name, source_file, columns, _, _ in quarantine:
                failed = set((columns or "").split(", "))
                if input_name == "orders" and "sku" in failed and failed <= {"sku", "category"} \
                        and Path(source_file) in excused:
                    excused[Path(source_file)] += 1
        whole = {s.path: s.whole for s in item.files}
        limit = quality.max_quarantine_share
        for input_name, source_file, rows_read, quarantined, set_aside in audit:
            if input_name != item.key or not rows_read:
                continue
            # Cancelled orders and returns are quarantined but do not count against the limit, as in a run.
            judged = quarantined - set_aside - excused.get(Path(source_file), 0)
            verdict, bounds = judge(judged, rows_read, limit, whole.get(Path(source_file), True), above=True)
            item.shares.append((Path(source_file), rows_read, quarantined, quarantined - judged,
                                VERDICTS[verdict] + within(bounds)))
            said = f"{source_file}: {judged / rows_read:.1%} of the {rows_read:,} sampled rows would be quarantined"
            if verdict == "fail":
                in_file = sorted(kinds_by_file.get(source_file, {}).items(), key=lambda pair: (-pair[1], pair[0]))
                top = ", ".join(f"{kind} {rows / rows_read:.1%}" for kind, rows in in_file[:2])
                report.failures.append(f"{said} ({top}), above quality.max_quarantine_share {limit:.1%}"
                                       + within(bounds, "; the whole file: ", ""))
            elif verdict == "near":
                report.warnings.append(f"{said}{within(bounds, ' (the whole file: ')}, near "
                                       f"quality.max_quarantine_share {limit:.1%}: a run may pass or fail")
        if partial_products and item.key == "orders" and any(excused.values()):
            report.warnings.append(
                f"orders: {sum(excused.values()):,} sampled lines have a sku outside the sampled product rows; "
                "the whole product table may hold them, so they are not counted against the limit here")
        report.warnings += item.warnings
        malformed = sum(s.malformed for s in item.files)
        if malformed:
            report.warnings.append(f"{item.key}: {malformed:,} malformed line(s) in the sample; a run quarantines "
                                   "them and loads the rest")
    _judge_rows_and_keys(con, report)
    _judge_categories(con, report)
    _coverage(con, report)
    _families(con, report)
    return report


def _judge_rows_and_keys(con: duckdb.DuckDBPyConnection, report: CheckReport) -> None:
    config, quality = report.config, report.config.quality
    keyed = [("orders", [k for k in SUITE_KEYS if k in config.order_required()])]
    if config.customers is not None:
        keyed.append(("customers", ["customer_id"]))
    for key, fields in keyed:
        item = report.input(key)
        counts = con.execute(f"SELECT count(*), {', '.join(f'count({f})' for f in fields)} FROM raw.{key}").fetchone()
        if counts[0] == 0:
            report.failures.append(f"{key}: no rows in the sampled file(s)")
            continue
        item.key_shares = [(name, count / counts[0]) for name, count in zip(fields, counts[1:], strict=True)]
        limit = quality.min_key_share
        for name, count in zip(fields, counts[1:], strict=True):
            verdict, bounds = judge(count, counts[0], limit, item.whole, above=False)
            said = f"{key}: {name} is carried by {count / counts[0]:.1%} of the sampled rows"
            if verdict == "fail":
                report.failures.append(f"{said}, below quality.min_key_share {limit:.1%} (the raw suite blocks the "
                                       f"run){within(bounds, '; every row of the file(s) sampled: ', '')}")
            elif verdict == "near":
                report.warnings.append(f"{said}{within(bounds, ' (every row of the file(s) sampled: ')}, near "
                                       f"quality.min_key_share {limit:.1%}: a run may pass or fail")
    dates = con.execute("SELECT min(order_ts), max(order_ts), count(*) FROM staging.orders").fetchone()
    report.orders_loaded = dates[2]
    report.dates = (dates[0], dates[1]) if dates[0] is not None else None
    if report.orders_loaded == 0 and report.input("orders").rows:
        report.failures.append("orders: no sampled row survives staging (every one is quarantined)")


def _judge_categories(con: duckdb.DuckDBPyConnection, report: CheckReport) -> None:
    """Distinct categories of the staged order lines, as the blocking check category_count_within_limit counts
    them (the sample's are a floor of the run's)."""
    if not report.config.has_categories:
        return
    report.categories = con.execute(
        "SELECT category, count(*) AS lines FROM staging.order_lines WHERE category IS NOT NULL "
        "GROUP BY category ORDER BY lines DESC, category").fetchall()
    limit = report.config.quality.max_categories
    if len(report.categories) > limit:
        top = ", ".join(f"{name} ({lines:,})" for name, lines in report.categories[:5])
        report.failures.append(
            f"orders: {len(report.categories):,} distinct categories in the sample, above quality.max_categories "
            f"{limit}; most frequent: {top}. A free-text column mapped as the category makes one feature per value: "
            "give a product table (products:) or orders.category_rules on the description")


def _coverage(con: duckdb.DuckDBPyConnection, report: CheckReport) -> None:
    """Order customers with a row in the customer file (the staging suite's in_customer_file, a warning)."""
    config = report.config
    if config.shape != "long" or config.customers is None:
        return
    report.coverage = con.execute("""
        SELECT count(*), count(*) FILTER (WHERE c._source_file IS NOT NULL)
        FROM (SELECT DISTINCT customer_id FROM staging.orders) o LEFT JOIN staging.customers c USING (customer_id)
    """).fetchone()
    customers, profiled = report.coverage
    limit = config.quality.min_profile_coverage
    if customers and profiled / customers < limit:
        partial = "" if report.input("customers").whole else \
            " (the customer file was sampled too: the run's share can only be higher)"
        report.warnings.append(f"customers: {profiled / customers:.1%} of the {customers:,} order customers in the "
                               f"sample have a profile row, below quality.min_profile_coverage {limit:.1%}{partial}")


def _not_fed(config: SourceConfig, family: str, columns: list[str], staged: int) -> str:
    """Why a family chosen in model.features feeds no column on the sample."""
    if not staged:
        return "no order of the sample is staged"
    if family == "categories" and not config.has_categories:
        return "the export declares no category (orders.columns.category: null)"
    if family == "demographics" and config.shape == "long" and config.customers is None:
        return "no customer file (customers:), so no profile"
    if family == "payment" and not columns:
        return "the orders carry no payment method"
    if not columns:
        return "no such column in the sample's features"
    if family == "demographics":
        return f"no profile values ({', '.join(PROFILE_FIELDS_SHOWN)}) vary in the sample"
    return "every column empty or constant in the sample"


def _families(con: duckdb.DuckDBPyConnection, report: CheckReport) -> None:
    """The feature families the model would cluster on: those of model.features with a column that carries
    information (two distinct known values, as assets/model/preparation.py selects them)."""
    config = report.config
    features = build_customer_features(con) if report.orders_loaded else pl.DataFrame()
    used_any = False
    for family in FAMILIES:
        columns = [c for c in features.columns if feature_family(c) == family]
        if family not in config.model.features:
            report.families.append((family, "not chosen", "not in model.features"))
            continue
        bounds = features.select([pl.col(c).min().alias(f"lo{i}") for i, c in enumerate(columns)]
                                 + [pl.col(c).max().alias(f"hi{i}") for i, c in enumerate(columns)])
        row = bounds.row(0) if columns else ()
        used = [c for i, c in enumerate(columns) if row[i] is not None and row[i] != row[len(columns) + i]]
        if used:
            used_any = True
            shown = ", ".join(used[:5]) + (f", … ({len(used)} columns)" if len(used) > 5 else "")
            report.families.append((family, "used", shown))
        else:
            report.families.append((family, "not fed", _not_fed(config, family, columns, report.orders_loaded)))
    if report.orders_loaded and not used_any:
        report.failures.append(f"no usable feature columns in model.features {list(config.model.features)} on the "
                               "sample: the model step would stop")
