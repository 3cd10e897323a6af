"""`persona init`, reading side: tell how an export is written (format, encoding, delimiter, title lines above
the header) and read a sample of its rows through the pipeline's own readers (assets/raw/readers.py), so that a
file init can sniff is a file a run can read.

- encoding: a UTF-16 / UTF-32 byte-order mark (the readers honour it whatever `encoding` says), a UTF-8 one, then
  the first of UTF-8, GBK and GB18030 that decodes the file (assets/raw/lines.py LEGACY_ENCODINGS);
- delimiter: the one of `,` `;` tab `|` that splits the lines into the most rows of one width; else runs of
  spaces and tabs (`whitespace`), as the readers split them;
- header: the first line as wide as the data below it whose names are all present, distinct and not numbers; the
  lines above it are title lines (`skip_rows`).

Its columns are then matched to the contract's fields by pipelines/config_match.py.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from assets.raw.lines import LEGACY_ENCODINGS
from assets.raw.readers import (
    SOURCE_FILE,
    SOURCE_ROW,
    WHITESPACE,
    WHITESPACE_RUN,
    IngestError,
    detect_format,
    read_excel_as_text,
    read_json_as_text,
    read_parquet_as_text,
    read_source_file,
    wide_unicode,
)
from pipelines.core.config import FileSource

HEAD_BYTES = 1 << 20  # the sample of a CSV: its first MiB, cut at a line end
ENCODING_PROBE_BYTES = 32 << 20  # the encoding is judged on up to this much of the file
SAMPLE_ROWS = 20_000  # rows of a Parquet, JSON or Excel file looked at
PROBE_LINES = 200  # lines (from the top) that tell the delimiter and the header
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", WHITESPACE: "runs of spaces and tabs"}
NUMBER = re.compile(r"^[+-]?[\d.,:/ -]+$")


class SniffError(ValueError):
    """A file init cannot read; the message names the file."""


@dataclass
class Sniffed:
    """How one file is written, and a sample of its rows as text (columns as the header names them)."""

    path: Path
    format: str
    encoding: str = "utf-8"  # the config value
    encoding_note: str = ""  # what was seen: "UTF-8 with a byte-order mark", "UTF-16 LE (byte-order mark)", ...
    delimiter: str = ","
    skip_rows: int = 0
    title_lines: list[str] = field(default_factory=list)
    sample: pl.DataFrame = field(default_factory=pl.DataFrame)
    whole: bool = True  # the sample is the whole file

    @property
    def columns(self) -> list[str]:
        return [c for c in self.sample.columns if c not in (SOURCE_FILE, SOURCE_ROW)]

    def values(self, column: str) -> list[str]:
        """The column's non-empty values in the sample, trimmed."""
        series = self.sample.get_column(column).drop_nulls().str.strip_chars()
        return [v for v in series.to_list() if v]

    def source(self) -> FileSource:
        return FileSource(path=str(self.path), format=self.format, encoding=self.encoding,
                          delimiter=self.delimiter, skip_rows=self.skip_rows)


def sniff_file(path: Path) -> Sniffed:
    """Sniff one file and read its sample; a file that cannot be read is a SniffError naming it."""
    if not path.is_file():
        raise SniffError(f"{path}: file not found")
    try:
        fmt = detect_format(path, None)
    except IngestError:
        # The reader's own advice (set 'format' in the config) is for a config; init has none yet.
        raise SniffError(f"{path}: cannot tell the format from the suffix {path.suffix!r}: init reads .csv, .txt, "
                         ".tsv, .xlsx, .parquet, .json and .jsonl; copy or rename the file to one of them (a text "
                         "export is usually .csv), or set format in that file's section of the config init writes "
                         "(orders.format: csv) if the name must stay") from None
    try:
        if fmt == "csv":
            return _sniff_csv(path)
        if fmt == "excel":
            return _sniff_excel(path)
        frame = read_parquet_as_text(path) if fmt == "parquet" else read_json_as_text(path)
    except IngestError as exc:
        raise SniffError(str(exc)) from None
    if frame.width == 0 or frame.height == 0:
        raise SniffError(f"{path}: no rows to look at")
    return Sniffed(path, fmt, sample=frame.head(SAMPLE_ROWS), whole=frame.height <= SAMPLE_ROWS)


# ------------------------------------------------------------------------------------------------- encoding


def sniff_encoding(path: Path) -> tuple[str, str, str]:
    """(config encoding, the codec that reads the file, what was seen)."""
    wide = wide_unicode(path)
    if wide is not None:
        return "utf-8", wide[0], f"{wide[1]} with a byte-order mark (read as such whatever encoding says)"
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", "utf-8-sig", "UTF-8 with a byte-order mark"
    if b"\x00" in head:
        raise SniffError(f"{path}: a NUL byte at the start: not a text file, or UTF-16 without a byte-order mark; "
                         "save it as UTF-8")
    for encoding in ("utf-8", *LEGACY_ENCODINGS):
        if _decodes_whole(path, encoding):
            seen = "UTF-8" if encoding == "utf-8" else f"{encoding.upper()} (a Chinese Windows export)"
            return encoding, encoding, seen
    raise SniffError(f"{path}: neither UTF-8, GBK nor GB18030; save it as UTF-8")


def _decodes_whole(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    read = 0
    try:
        with path.open("rb") as handle:
            while read < ENCODING_PROBE_BYTES and (chunk := handle.read(1 << 20)):
                decoder.decode(chunk)
                read += len(chunk)
            if read < ENCODING_PROBE_BYTES:
                decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------- CSV


def _head_text(path: Path, codec: str) -> tuple[str, bool]:
    """The file's first HEAD_BYTES as text, cut after its last complete line; and whether that is the whole."""
    with path.open("rb") as handle:
        data = handle.read(HEAD_BYTES + 1)
    whole = len(data) <= HEAD_BYTES
    text = codecs.getincrementaldecoder(codec)(errors="replace").decode(data[:HEAD_BYTES], final=whole)
    text = text.lstrip("\ufeff")
    if not whole:
        cut = max(text.rfind("\n"), 0)
        text = text[:cut + 1]
    return text, whole


def split_line(line: str, delimiter: str) -> list[str]:
    """One line's fields, as the readers split them (whitespace: runs of spaces and tabs, quotes kept whole)."""
    if delimiter == WHITESPACE:
        body = line.strip(" \t")
        if '"' not in body:
            return WHITESPACE_RUN.split(body) if body else []
        try:
            return next(csv.reader([body.replace("\t", " ")], delimiter=" ", skipinitialspace=True))
        except (csv.Error, StopIteration):
            return WHITESPACE_RUN.split(body)
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return line.split(delimiter)


def _probe_lines(text: str) -> list[str]:
    """The first PROBE_LINES non-blank lines; a line whose quote runs over a line break is joined with the next."""
    lines: list[str] = []
    pending = ""
    for line in text.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if pending.count('"') % 2:
            continue
        if pending.strip(" \t,;|"):
            lines.append(pending)
        pending = ""
        if len(lines) >= PROBE_LINES:
            break
    return lines


def _width_score(lines: list[str], delimiter: str) -> tuple[float, int]:
    """(share of the lines as wide as the most common width, that width); width 1 scores nothing."""
    widths = [len(split_line(line, delimiter)) for line in lines]
    if not widths:
        return 0.0, 0
    width, count = Counter(widths).most_common(1)[0]
    return (count / len(widths) if width > 1 else 0.0), width


def sniff_delimiter(lines: list[str]) -> str | None:
    """The delimiter that gives the most lines of one width (>1); ties go to the earlier of DELIMITERS, and runs of
    whitespace only win when they split clearly better than any one character."""
    scored = {d: _width_score(lines, d) for d in (*DELIMITERS, WHITESPACE)}
    best = max(DELIMITERS, key=lambda d: (round(scored[d][0], 2), scored[d][1]))
    if scored[WHITESPACE][0] > scored[best][0] + 0.05 or (scored[best][0] == 0 and scored[WHITESPACE][0] > 0):
        return WHITESPACE
    return best if scored[best][0] > 0 else None


def looks_like_header(fields: list[str], width: int, wider: bool = False) -> bool:
    """Whether a row reads as the names of `width` columns. `wider`: a sheet's header may name columns that every
    row below leaves empty (Mercado Libre's Ventas sheet ends in such columns)."""
    names = [f.strip() for f in fields]
    if len(names) != width and not (wider and len(names) > width):
        return False
    filled = [n for n in names if n]
    # An unnamed first column (a pandas index) is allowed; any other empty name is a title line's padding. A name
    # may repeat a little (Mercado Libre's sheet has an order's Estado and an address's Estado), not much.
    if len(filled) < len(names) - (1 if not names[0] else 0) or \
            len(filled) - len(set(filled)) > max(1, len(filled) // 10):
        return False
    return sum(1 for n in filled if NUMBER.match(n)) <= len(filled) // 4


def header_line(rows: list[list[str]], wider: bool = False) -> int:
    """Index of the header among the first rows: the first as wide as most rows below it (`wider`: or wider) that
    reads as names. 0 when none does (the first line is then taken as the header, as the readers take it)."""
    if not rows:
        return 0
    widths = Counter(len(r) for r in rows)
    width = widths.most_common(1)[0][0]
    for index, row in enumerate(rows[:20]):
        if looks_like_header(row, width, wider):
            return index
    return 0


def _sniff_csv(path: Path) -> Sniffed:
    encoding, codec, note = sniff_encoding(path)
    text, whole = _head_text(path, codec)
    lines = _probe_lines(text)
    if not lines:
        raise SniffError(f"{path}: the file is empty (no header row)")
    delimiter = sniff_delimiter(lines) or ","
    rows = [split_line(line, delimiter) for line in lines]
    header = header_line(rows)
    # skip_rows counts the file's lines above the header, blank ones included: a header below blank lines only
    # (eBay's Orders report starts with one) has some too.
    all_lines = text.splitlines()
    skip_rows = all_lines.index(lines[header]) if lines[header] in all_lines else header
    title_lines = [line.strip(" \t,;|") for line in all_lines[:skip_rows] if line.strip(" \t,;|")]
    sniffed = Sniffed(path, "csv", encoding, note, delimiter, skip_rows, title_lines, whole=whole)
    with tempfile.TemporaryDirectory(prefix="persona-init-") as scratch:
        # The sample: the head as UTF-8 (whatever the file's encoding), read by the pipeline's CSV reader.
        head = Path(scratch) / path.name
        head.write_text(text, encoding="utf-8", newline="")
        source = FileSource(path=str(head), format="csv", delimiter=delimiter, skip_rows=skip_rows)
        try:
            sniffed.sample = read_source_file(head, source, Path(scratch))
        except IngestError as exc:
            message = str(exc).replace(str(head), str(path))
            raise SniffError(f"{message} (read as {note}, delimiter {DELIMITER_NAMES[delimiter]}, "
                             f"{skip_rows} title line(s))") from None
    if sniffed.sample.height == 0:
        raise SniffError(f"{path}: a header but no data rows")
    return sniffed


# -------------------------------------------------------------------------------------------------- Excel


def _sniff_excel(path: Path) -> Sniffed:
    try:
        # The sheet's rows from its first, blank ones included (skip_rows 0 keeps the blank rows at the top): the
        # reader's skip_rows is fastexcel's header_row, the header's index among all the sheet's rows.
        top = pl.read_excel(path, engine="calamine", has_header=False, drop_empty_rows=False,
                            read_options={"n_rows": PROBE_LINES, "dtypes": "string", "skip_rows": 0})
    except Exception as exc:  # noqa: BLE001 - fastexcel raises its own exception types for every kind of bad file
        raise SniffError(f"{path}: not a readable Excel workbook ({str(exc).splitlines()[0]})") from None
    cells = [[("" if v is None else str(v)) for v in row] for row in top.rows()]
    # The header is told among the rows that hold something; trailing empty cells are no columns: a row's width is
    # that of its filled part.
    filled = [index for index, row in enumerate(cells) if any(v.strip() for v in row)]
    rows = [cells[i][:max(j for j, v in enumerate(cells[i]) if v.strip()) + 1] for i in filled]
    above = header_line(rows, wider=True)
    header = filled[above] if filled else 0
    frame = read_excel_as_text(path, FileSource(path=str(path), skip_rows=header))
    frame = frame.with_row_index(SOURCE_ROW, offset=1).filter(
        ~pl.all_horizontal(pl.exclude(SOURCE_ROW).is_null()))
    if frame.height == 0:
        raise SniffError(f"{path}: the first sheet holds no data rows")
    titles = [" ".join(v for v in r if v.strip()) for r in rows[:above]]
    return Sniffed(path, "excel", skip_rows=header, title_lines=titles, sample=frame.head(SAMPLE_ROWS),
                   whole=frame.height <= SAMPLE_ROWS)


def describe(sniffed: Sniffed) -> str:
    """How the file was read, for the YAML comment above its section."""
    parts = [sniffed.format.upper() if sniffed.format != "excel" else "Excel workbook (first sheet)"]
    if sniffed.format == "csv":
        parts.append(sniffed.encoding_note)
        parts.append(f"{DELIMITER_NAMES[sniffed.delimiter]}-separated")
    if sniffed.title_lines:
        shown = "; ".join(repr(t[:40]) for t in sniffed.title_lines[:3])
        blank = sniffed.skip_rows - len(sniffed.title_lines)
        parts.append(f"{len(sniffed.title_lines)} title line(s)" + (f" and {blank} blank line(s)" if blank > 0 else "")
                     + f" above the header ({shown})")
    rows = f"{sniffed.sample.height:,} rows" + ("" if sniffed.whole else " sampled from the top")
    parts.append(rows)
    return ", ".join(parts)


def csv_text(rows: list[list[str]], delimiter: str = ",") -> str:
    """Rows as CSV text (tests and examples)."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue()
