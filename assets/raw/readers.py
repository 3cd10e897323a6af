"""Raw layer, reading: tell a file's format, transcode legacy encodings (and UTF-16 / UTF-32 files, told by their
byte-order mark), read CSV (also whitespace-separated, or below title lines), JSON and Parquet as all-text frames
with 1-based row numbers; leave a CSV's malformed lines out (assets/raw/lines.py: also lines holding a NUL byte or
longer than MAX_LINE_BYTES) and turn a file that cannot be read into an error naming the file, line and column."""

import codecs
import csv
import io
import re
import shutil
from pathlib import Path
from typing import NamedTuple

import duckdb
import polars as pl

from assets.raw.errors import IngestError
from assets.raw.json_records import read_json_records
from assets.raw.lines import (
    LEGACY_ENCODINGS,
    MAX_LINE_BYTES,
    MAX_MALFORMED_LINES,
    TooManyMalformedLines,
    split_malformed_lines,
)
from pipelines.core.config import CustomersSource, FileSource, OrdersSource
from pipelines.core.sources import ENCODING_ALIASES, FORMAT_BY_SUFFIX

SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"  # 1-based data row: the header is row 0, the first record row 1
PARTITION_DATE = "_partition_date"  # the landing day of a daily source's file; NULL for snapshot sources
TRANSCODE_CHUNK_BYTES = 1 << 20
HEADER_PROBE_BYTES = 1 << 16  # a header line is read up to this length to tell its encoding
WHITESPACE = "whitespace"  # the `delimiter` value of files whose fields are separated by runs of spaces or tabs
WHITESPACE_RUN = re.compile(r"[ \t]+")
# Byte-order marks of the wide Unicode encodings, UTF-32 first (its little-endian mark starts like UTF-16's): the
# Python codec that reads the file (and drops the mark), and the name messages use.
WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32 LE"), (codecs.BOM_UTF32_BE, "utf-32", "UTF-32 BE"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16 LE"), (codecs.BOM_UTF16_BE, "utf-16", "UTF-16 BE"),
)


class MalformedRecord(IngestError):
    """One record that cannot be parsed: the file's other records may still load (assets/raw/lines.py)."""


class SourceScan(NamedTuple):
    """A lazy all-text scan of one file, and for CSV what checks it: the UTF-8 file it reads (for error reports),
    the strict parser's record count (the rows read must match it) and the malformed lines left out of it."""

    frame: pl.LazyFrame
    readable: Path | None = None
    records: int | None = None
    malformed: list[dict] = []
    skipped: int = 0  # title lines cut off above the header (skip_rows), for messages
    start: Path | None = None  # the copy without them


def detect_format(path: Path, declared: str | None) -> str:
    if declared:
        return declared
    fmt = FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise IngestError(f"{path}: cannot tell the format from the suffix {path.suffix!r}; set 'format' in the config")
    return fmt


def locate_undecodable_line(path: Path, encoding: str) -> str:
    """The first line that does not decode, with the offending bytes and their offset in the file.

    Lines are decoded one by one: in UTF-8 and GBK a newline byte never sits inside a multi-byte character, so a
    line is a safe unit, and the result does not depend on where a read chunk happened to end.
    """
    offset = 0
    with path.open("rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            try:
                raw_line.decode(encoding)
            except UnicodeDecodeError as exc:
                return (
                    f"line {number}: bytes {raw_line[exc.start:exc.end]!r} are not valid {encoding} "
                    f"(byte offset {offset + exc.start}); check 'encoding' in the config"
                )
            offset += len(raw_line)
    return f"not valid {encoding}; check 'encoding' in the config"


def _decodes(data: bytes, encoding: str) -> str | None:
    """The text of `data` in `encoding`, or None; a character cut off at the end of `data` is not an error."""
    try:
        return codecs.getincrementaldecoder(encoding)(errors="strict").decode(data, final=False)
    except UnicodeDecodeError:
        return None


def wide_unicode(path: Path) -> tuple[str, str] | None:
    """(codec, name) of a UTF-16 or UTF-32 file, told by its byte-order mark; None for any other file."""
    with path.open("rb") as handle:
        head = handle.read(4)
    return next(((codec, name) for bom, codec, name in WIDE_BOMS if head.startswith(bom)), None)


def transcode_wide(path: Path, codec: str, name: str, target_dir: Path) -> Path:
    """A UTF-8 copy of a UTF-16 / UTF-32 file (with its byte-order mark), in chunks; text that does not decode is
    an IngestError naming the line and column."""
    try:
        return _utf8_copy(path, codec, target_dir)
    except UnicodeDecodeError:
        line, column = _first_replacement(path, codec)
        raise IngestError(f"{path}: line {line}, column {column}: not valid {name} (the file starts with a {name} "
                          f"byte-order mark); a damaged or cut-off file? save it again as UTF-8") from None


def _first_replacement(path: Path, codec: str) -> tuple[int, int]:
    """Line and column of the first character of a wide-Unicode file that does not decode."""
    decoder = codecs.getincrementaldecoder(codec)(errors="replace")
    line, column = 1, 0
    with path.open("rb") as src:
        while True:
            chunk = src.read(TRANSCODE_CHUNK_BYTES)
            text = decoder.decode(chunk, final=not chunk)
            bad = text.find("\ufffd")
            part = text if bad < 0 else text[:bad]
            newlines = part.count("\n")
            line += newlines
            column = len(part) - part.rfind("\n") - 1 if newlines else column + len(part)
            if bad >= 0 or not chunk:
                return line, column + 1


def check_no_nul_header(path: Path, source: FileSource) -> None:
    """A NUL byte in the header line: not a text file in the declared encoding. Most often UTF-16 or UTF-32 saved
    without a byte-order mark (a UTF-16 'a' is 'a' and a NUL byte)."""
    with path.open("rb") as handle:
        header = handle.readline(HEADER_PROBE_BYTES)
    column = header.find(b"\x00")
    if column >= 0:
        raise IngestError(
            f"{path}: line 1, column {column + 1}: a NUL byte in the header; not a {source.encoding} text file "
            f"(UTF-16 or UTF-32 without a byte-order mark? save it as UTF-8, or as UTF-16 with its mark, which is "
            f"read as such; {_encoding_setting(source)} takes {', '.join(sorted(set(ENCODING_ALIASES.values())))})")


def check_header_length(readable: Path, path: Path) -> None:
    """A header longer than MAX_LINE_BYTES is no CSV header (a binary file, or no line breaks at all)."""
    with readable.open("rb") as handle:
        header = handle.readline(MAX_LINE_BYTES + 1)
    if len(header.rstrip(b"\r\n")) > MAX_LINE_BYTES:
        raise IngestError(f"{path}: line 1: the header line is longer than {MAX_LINE_BYTES:,} bytes (column "
                          f"{MAX_LINE_BYTES + 1:,} and on); not a CSV file, or its line breaks are missing")


def has_nul(path: Path) -> bool:
    """Whether the file holds a NUL byte anywhere (read in chunks at memchr speed): such lines are quarantined by
    the malformed-line pass, since the strict parser accepts them and later SQL does not."""
    with path.open("rb") as handle:
        while chunk := handle.read(TRANSCODE_CHUNK_BYTES * 4):
            if b"\x00" in chunk:
                return True
    return False


def check_header_encoding(path: Path, source: FileSource) -> None:
    """A header that is not UTF-8 but reads as GBK or GB18030 is a Chinese export read with the default encoding:
    say so and name the setting, instead of failing later on garbled column names (the CSV reader replaces bad
    bytes in a header rather than failing)."""
    with path.open("rb") as handle:
        header = handle.readline(HEADER_PROBE_BYTES).removeprefix(codecs.BOM_UTF8).rstrip(b"\r\n")
    if _decodes(header, "utf-8") is not None:
        return
    for encoding in LEGACY_ENCODINGS:
        text = _decodes(header, encoding)
        if text is not None:
            names = split_header(text, source)
            raise IngestError(
                f"{path}: line 1: the header is not valid UTF-8 but reads as {encoding.upper()} {names[:5]}; "
                f"set {_encoding_setting(source)}: {encoding} in the config")
    raise IngestError(f"{path}: {locate_undecodable_line(path, 'utf-8')}")


def split_header(text: str, source: FileSource) -> list[str]:
    """A header line's names, for messages."""
    if source.delimiter == WHITESPACE:
        return WHITESPACE_RUN.split(text.strip(" \t"))
    return next(csv.reader([text], delimiter=source.delimiter), [])


def read_delimiter(source: FileSource) -> str:
    """The delimiter of the file the readers parse: a whitespace-separated file is read as its tab-separated copy."""
    return "\t" if source.delimiter == WHITESPACE else source.delimiter


def whitespace_to_tabs(readable: Path, scratch: Path) -> Path:
    """A tab-separated copy of a file whose fields are separated by runs of spaces or tabs (`delimiter:
    whitespace`), line for line, so line and row numbers stay those of the file. A quoted value may hold spaces
    ("red wine") but not a line break. Bytes that are not UTF-8 are carried over as they are, for the malformed-line
    pass to report."""
    target = scratch / (readable.name + ".tabs")
    with readable.open(encoding="utf-8", errors="surrogateescape", newline="") as src, \
            target.open("w", encoding="utf-8", errors="surrogateescape", newline="") as dst:
        for line in src:
            body = line.rstrip("\r\n")
            ending = line[len(body):]
            body = body.strip(" \t")
            if '"' not in body:
                dst.write("\t".join(WHITESPACE_RUN.split(body)) + ending if body else ending)
                continue
            try:
                fields = next(csv.reader([body.replace("\t", " ")], delimiter=" ", skipinitialspace=True,
                                         strict=True))
            except csv.Error:
                dst.write(line)  # a broken quote: left as it is, the malformed-line pass reports the line
                continue
            out = io.StringIO()
            csv.writer(out, delimiter="\t", lineterminator="").writerow(fields)
            dst.write(out.getvalue() + ending)
    return target


def _encoding_setting(source: FileSource) -> str:
    """The config key of a source's encoding, for messages that name the setting."""
    section = {OrdersSource: "orders", CustomersSource: "customers"}.get(type(source))
    return f"{section}.encoding" if section else "encoding"


def _utf8_copy(path: Path, encoding: str, target_dir: Path) -> Path:
    """The file re-encoded to UTF-8 in chunks, so any file size fits in memory; UnicodeDecodeError on bad bytes."""
    target = target_dir / (path.name + ".utf8")
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    with path.open("rb") as src, target.open("w", encoding="utf-8", newline="") as dst:
        while chunk := src.read(TRANSCODE_CHUNK_BYTES):
            dst.write(decoder.decode(chunk))
        dst.write(decoder.decode(b"", final=True))
    return target


def transcode_to_utf8(path: Path, encoding: str, target_dir: Path) -> Path:
    """Re-encode a legacy-encoded file (GBK) to UTF-8."""
    try:
        return _utf8_copy(path, encoding, target_dir)
    except UnicodeDecodeError:
        raise IngestError(f"{path}: {locate_undecodable_line(path, encoding)}") from None


def check_csv_structure(path: Path, shown_as: Path, delimiter: str, columns: list[str]) -> int:
    """Parse the file strictly with DuckDB: every record must have as many fields as the header.

    Polars pads short records with empty values silently, so this pass is what turns a ragged row into an error
    naming its line. Returns the number of records with a value in any field, which must match what Polars read:
    Polars leaves out records whose fields are all empty and unquoted, and keeps a quoted empty field ("") as an
    empty text, as this count does (allow_quoted_nulls off).
    """
    options = {
        "header": True, "delim": delimiter, "quote": '"', "escape": '"', "strict_mode": True,
        "null_padding": False, "auto_detect": False, "columns": {f"c{i}": "VARCHAR" for i in range(len(columns))},
        "max_line_size": MAX_LINE_BYTES, "allow_quoted_nulls": False,
    }
    records = ("read_csv($path, header = $header, delim = $delim, quote = $quote, escape = $escape, "
               "strict_mode = $strict_mode, null_padding = $null_padding, auto_detect = $auto_detect, "
               "columns = $columns, max_line_size = $max_line_size, allow_quoted_nulls = $allow_quoted_nulls)")
    parameters = {"path": str(path), **options}
    con = duckdb.connect()
    try:
        if columns:
            # Reading one field is cheaper than reading them all (0.9 against 1.4 s for 8.85M records), and the
            # parser checks every record's field count and quoting either way; bytes that are not UTF-8 in a later
            # field are then found by Polars' read, which reads the file again without its malformed lines. When
            # every record has a first field, none is empty throughout; only a file with empty first fields is read
            # again to count its empty records.
            total, with_first = con.execute(f"SELECT count(*), count(c0) FROM {records}", parameters).fetchone()
            if total == with_first:
                return total
        not_empty = " OR ".join(f"c{i} IS NOT NULL" for i in range(len(columns))) or "TRUE"
        return con.execute(f"SELECT count(*) FILTER (WHERE {not_empty}) FROM {records}", parameters).fetchone()[0]
    except duckdb.Error as exc:
        message = str(exc)
        line = re.search(r"CSV Error on Line: (\d+)", message)
        found = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", message)
        if found:
            reason = f"expected {found.group(1)} fields, found {found.group(2)}"
        elif "Maximum line size" in message or "Parallel CSV Reader" in message:
            reason = f"a line longer than {MAX_LINE_BYTES:,} bytes"
        elif "unterminated quote" in message:
            reason = "a quoted value is never closed"
        else:
            reason = message.splitlines()[0].removeprefix("Invalid Input Error: ")
        where = f"line {physical_line(path, delimiter, int(line.group(1)))}" if line else "somewhere in the file"
        raise MalformedRecord(
            f"{shown_as}: {where}: malformed CSV record: {reason} (check quoting and the delimiter {delimiter!r})"
        ) from None
    finally:
        con.close()


def without_title_lines(path: Path, lines: int, scratch: Path) -> Path:
    """A copy of the file from its header on, for `skip_rows: N` (title lines above the header); streamed."""
    target = scratch / (path.name + ".from-header")
    with path.open("rb") as src, target.open("wb") as dst:
        for _ in range(lines):
            src.readline()
        shutil.copyfileobj(src, dst, TRANSCODE_CHUNK_BYTES)
    return target


def with_title_lines(error: IngestError, path: Path, copy: Path, lines: int) -> IngestError:
    """An error about the copy without title lines as the user's file has it: its path and its line numbers."""
    message = str(error).replace(str(copy), str(path))
    message = re.sub(r"\bline (\d+)\b", lambda m: f"line {int(m.group(1)) + lines}", message)
    return type(error)(message)


def scan_csv_as_text(path: Path, source: FileSource, scratch: Path, split: bool = False) -> SourceScan:
    """A lazy, all-text scan of one CSV with clean header names and 1-based row numbers; nothing is read yet, so
    a file of any size streams through. The strict parse runs first: a file it rejects (or any file, with `split`)
    is read without its malformed lines, which come back in the scan's `malformed`. With `skip_rows` the title
    lines are cut off first: row numbers count from the header, messages name the lines of the file. A UTF-16 or
    UTF-32 file (told by its byte-order mark, whatever `encoding` says) is read through a UTF-8 copy."""
    origin = path
    wide = wide_unicode(path)
    if wide is not None:
        origin = transcode_wide(path, *wide, scratch)
        source = source.model_copy(update={"encoding": "utf-8"})
    if not source.skip_rows:
        return _scan_csv(origin, path, source, scratch, split)
    start = without_title_lines(origin, source.skip_rows, scratch)
    try:
        scanned = _scan_csv(start, path, source, scratch, split)
    except IngestError as exc:
        raise with_title_lines(exc, path, start, source.skip_rows) from None
    malformed = [{**m, "line": m["line"] + source.skip_rows} for m in scanned.malformed]
    return scanned._replace(malformed=malformed, skipped=source.skip_rows, start=start)


def _scan_csv(start: Path, path: Path, source: FileSource, scratch: Path, split: bool) -> SourceScan:
    """scan_csv_as_text of `start` (the file, or its copy from the header on), naming `path` in messages."""
    check_no_nul_header(start, source)
    if source.encoding == "utf-8":
        check_header_encoding(start, source)
    readable = start if source.encoding == "utf-8" else transcode_to_utf8(start, source.encoding, scratch)
    check_header_length(readable, path)
    with readable.open("rb") as handle:
        head = handle.read(4096)
    if not head.strip(b"\xef\xbb\xbf \r\n\t"):
        raise IngestError(f"{path}: the file is empty (no header row)")
    if source.delimiter == WHITESPACE:
        readable = whitespace_to_tabs(readable, scratch)
    delimiter = read_delimiter(source)
    # Names as the header really spells them (Polars renames duplicates to x_duplicated_0), without a UTF-8
    # byte-order mark or surrounding blanks.
    names = [name.lstrip("\ufeff").strip() for name in _header_names(readable, delimiter)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        # Empty names between single-character delimiters: a file aligned with runs of spaces or tabs.
        hint = ("; fields separated by runs of spaces or tabs? set delimiter: whitespace"
                if "" in duplicates and delimiter in (" ", "\t") else "")
        raise IngestError(f"{path}: line 1: duplicate column name(s) {duplicates} in the header{hint}")
    malformed: list[dict] = []
    records = None
    split = split or has_nul(readable)  # the strict parser accepts NUL bytes: the malformed-line pass does not
    if not split:
        try:
            records = check_csv_structure(readable, path, delimiter, names)
        except MalformedRecord:
            split = True
    if split:
        readable, malformed = _without_malformed_lines(path, readable, source, scratch)
        records = check_csv_structure(readable, path, delimiter, names)
    scan = pl.scan_csv(readable, separator=delimiter, infer_schema=False, quote_char='"',
                       raise_if_empty=False, new_columns=names)
    try:
        scan.collect_schema()
    except pl.exceptions.PolarsError as exc:
        raise _csv_failure(exc, path, readable, source) from None
    # Blank lines carry no data: Polars reads them as all-empty records, DuckDB skips them. Row numbers keep
    # counting them, so a row number still points at the right line of a file without multi-line values.
    scan = scan.with_row_index(SOURCE_ROW, offset=1).filter(~pl.all_horizontal(pl.col(names).is_null()))
    return SourceScan(scan, readable, records, malformed)


def _without_malformed_lines(path: Path, readable: Path, source: FileSource, scratch: Path) -> tuple[Path, list]:
    """A copy of the file with its malformed lines emptied, and those lines. A file in which no record parses, or
    whose undecodable lines read as GBK (the file's encoding is wrong, not a line), is not a file with a few bad
    lines: it fails, naming its first bad line. So does one with more than MAX_MALFORMED_LINES of them."""
    target = scratch / (path.name + ".wellformed")
    try:
        good, malformed = split_malformed_lines(readable, target, read_delimiter(source))
    except TooManyMalformedLines as exc:
        good, malformed, many = 0, [exc.first], f"; more than {MAX_MALFORMED_LINES:,} lines are malformed"
    else:
        many = ""
    if any(m["reads_as"] for m in malformed):
        raise IngestError(f"{path}: {locate_undecodable_line(readable, 'utf-8')}")
    if malformed and not good:
        first = malformed[0]
        if first["reason"].startswith("bytes "):
            raise IngestError(f"{path}: {locate_undecodable_line(readable, 'utf-8')}")
        if first["reason"].startswith("expected 0 fields, found "):
            # A blank line where the header should be (eBay's Orders report starts with one).
            hint = (f"line {source.skip_rows + 1} is blank, where the header should be: set skip_rows in this "
                    "input's config to the number of lines above the header, blank ones included")
        elif first["reason"].startswith("expected 1 fields, found "):
            # A header of one field above records of many: a report title above the real header.
            hint = (f"the header (line {source.skip_rows + 1}) has one field: is it a title above the real header? "
                    "set skip_rows in this input's config to the number of lines above the header")
        else:
            hint = f"check quoting and the delimiter {read_delimiter(source)!r}"
        raise IngestError(f"{path}: line {first['line']}: malformed CSV record: {first['reason']} ({hint}){many}")
    return target, malformed


def csv_failure(exc: Exception, path: Path, scanned: SourceScan, source: FileSource) -> IngestError:
    """Turn a Polars parse failure into an error naming the file and, where it can be found, the line; a
    MalformedRecord when one line is to blame (the caller may then read the file without its malformed lines)."""
    try:
        failure = _csv_failure(exc, path, scanned.readable, source)
    except IngestError as error:
        failure = error
    if scanned.skipped:
        failure = with_title_lines(failure, path, scanned.start, scanned.skipped)
    return failure


def _csv_failure(exc: Exception, path: Path, readable: Path, source: FileSource) -> IngestError:
    if "invalid utf-8" in str(exc).lower():
        return MalformedRecord(f"{path}: {locate_undecodable_line(readable, 'utf-8')}")
    delimiter = read_delimiter(source)
    check_csv_structure(readable, path, delimiter, _header_names(readable, delimiter))
    stray = find_stray_quote(readable, delimiter)
    if stray is not None:
        return MalformedRecord(
            f"{path}: line {stray}: malformed CSV record: a quote inside an unquoted value "
            f"(quote the whole value and double inner quotes: \"C2\"\"x\")"
        )
    return IngestError(f"{path}: unreadable CSV ({str(exc).splitlines()[0]})")


def verify_record_count(path: Path, source: FileSource, records: int | None, rows: int) -> None:
    """Polars pads short records silently; the strict parser's count (taken before reading) must agree."""
    if records is not None and records != rows:
        raise IngestError(f"{path}: read {rows} records but the strict parser counts {records}; "
                          f"check quoting and the delimiter {source.delimiter!r}")


def read_csv_as_text(path: Path, source: FileSource, scratch: Path) -> tuple[pl.DataFrame, list[dict]]:
    """The records of a CSV that parse, and its malformed lines."""
    for split in (False, True):
        scanned = scan_csv_as_text(path, source, scratch, split)
        try:
            frame = scanned.frame.collect()
            break
        except pl.exceptions.PolarsError as exc:
            failure = csv_failure(exc, path, scanned, source)
            if split or not isinstance(failure, MalformedRecord):
                raise failure from None
    verify_record_count(path, source, scanned.records, frame.height)
    return frame, scanned.malformed


def physical_line(path: Path, delimiter: str, record_number: int) -> int:
    """The file line where a record starts; DuckDB numbers records (header = 1), which differs from lines once a
    quoted value spans several lines or blank lines are skipped."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        records, start_line = 0, 1
        try:
            for record in reader:
                if record:
                    records += 1
                    if records == record_number:
                        return start_line
                start_line = reader.line_num + 1
        except csv.Error:
            return start_line
    return record_number


def find_stray_quote(path: Path, delimiter: str) -> int | None:
    """The line of the first quote inside an unquoted value (`C2"x`), which Polars rejects and DuckDB accepts."""
    line, in_quotes, field_start, previous = 1, False, True, ""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        while chunk := handle.read(1 << 16):
            for char in chunk:
                if in_quotes:
                    if char == '"':
                        in_quotes = False
                    elif char == "\n":
                        line += 1
                    previous = char
                    continue
                if char == '"':
                    if field_start:
                        in_quotes = True
                    elif previous != '"':
                        return line
                field_start = char in (delimiter, "\n", "\r")
                if char == "\n":
                    line += 1
                previous = char
    return None


def _header_names(path: Path, delimiter: str) -> list[str]:
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        return next(csv.reader(handle, delimiter=delimiter), [])


def read_json_as_text(path: Path) -> pl.DataFrame:
    """A JSON file's good records as text (assets/raw/json_records.py), without their row numbers."""
    return read_json_with_rows(path)[0].drop(SOURCE_ROW)


def read_json_with_rows(path: Path) -> tuple[pl.DataFrame, list[dict]]:
    """A JSON file's records as text with their row numbers, and its malformed lines (JSON Lines only)."""
    wide = wide_unicode(path)
    if wide is not None:  # UTF-16 / UTF-32 (by its byte-order mark): read as UTF-8, in memory as JSON always is
        try:
            data = path.read_bytes().decode(wide[0]).encode("utf-8")
        except UnicodeDecodeError:
            line, column = _first_replacement(path, wide[0])
            raise IngestError(f"{path}: line {line}, column {column}: not valid {wide[1]} (the file starts with a "
                              f"{wide[1]} byte-order mark); save it again as UTF-8") from None
    else:
        data = path.read_bytes()
    # Polars rejects a byte-order mark in JSON; hand it the bytes after it.
    frame, rows, malformed = read_json_records(path, data.removeprefix(b"\xef\xbb\xbf"))
    if rows is None:
        return frame.with_row_index(SOURCE_ROW, offset=1), malformed
    return frame.select(pl.Series(SOURCE_ROW, rows, dtype=pl.Int64), pl.all()), malformed


def read_parquet_as_text(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path).select(pl.all().cast(pl.String))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise IngestError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from exc


def read_excel_as_text(path: Path, source: FileSource) -> pl.DataFrame:
    """The first sheet of an .xlsx workbook as text, through fastexcel (Rust calamine): numbers as their shortest
    text (`14194`, `10.5`), dates and times as ISO text (`2026-03-01 10:00:00`). `skip_rows` title rows sit above
    the header. Empty rows are kept until the row numbers are set, as for CSV, so a row number is the sheet's row
    below the header."""
    try:
        frame = pl.read_excel(path, engine="calamine", drop_empty_rows=False,
                              read_options={"header_row": source.skip_rows, "dtypes": "string"})
    except Exception as exc:  # noqa: BLE001 - fastexcel raises its own exception types for every kind of bad file
        raise IngestError(f"{path}: not a readable Excel workbook ({str(exc).splitlines()[0]})") from None
    return frame.select(pl.all().cast(pl.String))


def read_source_file(path: Path, source: FileSource, scratch: Path) -> pl.DataFrame:
    """One file as an all-text frame with its file path and 1-based data row number (read into memory: for
    inspection and tests; the assets stream files through `stage_files`). Malformed lines are left out."""
    return read_source_records(path, source, scratch)[0]


def read_source_records(path: Path, source: FileSource, scratch: Path) -> tuple[pl.DataFrame, list[dict]]:
    """As read_source_file, with the malformed lines left out (row, line, raw_text, reason)."""
    if detect_format(path, source.format) == "csv":
        frame, malformed = read_csv_as_text(path, source, scratch)
        return with_origin(frame.lazy(), path).collect(), malformed
    scanned = scan_source_file(path, source, scratch)
    return with_origin(scanned.frame, path).collect(), scanned.malformed


def scan_source_file(path: Path, source: FileSource, scratch: Path, split: bool = False) -> SourceScan:
    """A lazy scan of any supported file; for CSV with what checks it (SourceScan)."""
    fmt = detect_format(path, source.format)
    if fmt == "csv":
        return scan_csv_as_text(path, source, scratch, split)
    if fmt == "excel":
        frame = read_excel_as_text(path, source)
        names = frame.columns
        return SourceScan(frame.lazy().with_row_index(SOURCE_ROW, offset=1)
                          .filter(~pl.all_horizontal(pl.col(names).is_null())))
    if fmt == "json":
        frame, malformed = read_json_with_rows(path)
        return SourceScan(frame.lazy(), malformed=malformed)
    return SourceScan(read_parquet_as_text(path).lazy().with_row_index(SOURCE_ROW, offset=1))


def with_origin(scan: pl.LazyFrame, path: Path) -> pl.LazyFrame:
    return scan.with_columns(pl.col(SOURCE_ROW).cast(pl.Int64), pl.lit(str(path)).alias(SOURCE_FILE))
