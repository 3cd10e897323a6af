"""`persona check`'s samples: which files, and which rows of a large file (thin slices spread from its start to its
end), copied so that the raw layer reads them as it reads the shop's files; and how a message about a copy names the
shop's file and line instead."""

from __future__ import annotations

import bisect
import collections
import csv
import functools
import io
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from assets.raw.lines import MAX_RECORD_LINES
from assets.raw.readers import WHITESPACE, detect_format
from pipelines.check_report import FILES_AT_EACH_END, MAX_STEP, SAMPLE_ROWS, SLICES, sampling_text
from pipelines.core.config import FileSource

BLANK_LINES = (b"\n", b"\r\n", b"\r", b"")


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


def spread(rows: int, length: int | None = None, margin: float = 1.0,
           contiguous: bool = False) -> tuple[int, list[int]]:
    """The step and offsets of SLICES slices of a file of `rows` rows (`length` bytes, for slices at byte offsets),
    evenly spaced from its start to its end; each spans `step` (up to MAX_STEP) times SAMPLE_ROWS / SLICES rows and
    keeps one in `step`. Thin, as neighbouring rows are alike (the lines of one big order): on Online Retail II, 10
    slices of 1,000 neighbouring rows measure the quarantine share to ±6 points (one standard deviation over where
    they fall), 10 keeping one row in 50 to ±0.2. `margin` widens slices whose rows' length is estimated.
    `contiguous`: keep every row of a slice (step 1), for an export whose later lines of an order take blank
    fields from its first line (orders.fill_down): thinned, most lines would lose their order's first line."""
    rows = max(rows, 1)
    length = rows if length is None else length
    step = 1 if contiguous else max(1, min(MAX_STEP, int(rows / SAMPLE_ROWS / margin)))
    span = SAMPLE_ROWS // SLICES * step * margin * length / rows
    return step, [round(i * (length - span) / (SLICES - 1)) for i in range(SLICES)]


def _parquet_sample(path: Path, target: Path, contiguous: bool = False) -> Sampled:
    """The row count is in the file's metadata; each slice reads only the row groups it spans."""
    scan = pl.scan_parquet(path)
    total = scan.select(pl.len()).collect().item()
    if total <= SAMPLE_ROWS:
        scan.collect().write_parquet(target)
        return Sampled(target, total)
    step, offsets = spread(total, contiguous=contiguous)
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
        step, offsets = spread(round((size - data) * (records - header) / max(copied - data, 1)), size - data, 1.25,
                               contiguous=bool(getattr(source, "fill_down", None)))
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
            return _parquet_sample(path, target, contiguous=bool(getattr(source, "fill_down", None)))
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
