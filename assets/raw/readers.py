"""Raw layer, reading: tell a file's format, transcode legacy encodings, read CSV, JSON and Parquet as all-text
frames with 1-based row numbers, and turn any unreadable record into an error naming the file and line."""

import codecs
import csv
import io
import re
from pathlib import Path

import duckdb
import polars as pl

from pipelines.core.config import CustomersSource, FileSource, OrdersSource

SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"  # 1-based data row: the header is row 0, the first record row 1
PARTITION_DATE = "_partition_date"  # the landing day of a daily source's file; NULL for snapshot sources
FORMAT_BY_SUFFIX = {
    ".csv": "csv", ".txt": "csv", ".tsv": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".json": "json", ".jsonl": "json", ".ndjson": "json",
}
TRANSCODE_CHUNK_BYTES = 1 << 20
HEADER_PROBE_BYTES = 1 << 16  # a header line is read up to this length to tell its encoding
# Legacy encodings a Chinese export is likely in, tried in order when a header is not UTF-8.
LEGACY_ENCODINGS = ("gbk", "gb18030")


class IngestError(ValueError):
    """A source file that cannot be read; the message names the file and, where known, the row and column."""


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
            names = next(csv.reader([text], delimiter=source.delimiter), [])
            raise IngestError(
                f"{path}: line 1: the header is not valid UTF-8 but reads as {encoding.upper()} {names[:5]}; "
                f"set {_encoding_setting(source)}: {encoding} in the config")
    raise IngestError(f"{path}: {locate_undecodable_line(path, 'utf-8')}")


def _encoding_setting(source: FileSource) -> str:
    """The config key of a source's encoding, for messages that name the setting."""
    section = {OrdersSource: "orders", CustomersSource: "customers"}.get(type(source))
    return f"{section}.encoding" if section else "encoding"


def transcode_to_utf8(path: Path, encoding: str, target_dir: Path) -> Path:
    """Re-encode a legacy-encoded file (GBK) to UTF-8 in chunks, so any file size fits in memory."""
    target = target_dir / (path.name + ".utf8")
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        with path.open("rb") as src, target.open("w", encoding="utf-8", newline="") as dst:
            while chunk := src.read(TRANSCODE_CHUNK_BYTES):
                dst.write(decoder.decode(chunk))
            dst.write(decoder.decode(b"", final=True))
    except UnicodeDecodeError:
        raise IngestError(f"{path}: {locate_undecodable_line(path, encoding)}") from None
    return target


def check_csv_structure(path: Path, shown_as: Path, delimiter: str, columns: list[str]) -> int:
    """Parse the file strictly with DuckDB: every record must have as many fields as the header.

    Polars pads short records with empty values silently, so this pass is what turns a ragged row into an error
    naming its line. Returns the number of records, which must match what Polars read.
    """
    options = {
        "header": True, "delim": delimiter, "quote": '"', "escape": '"', "strict_mode": True,
        "null_padding": False, "auto_detect": False, "columns": {f"c{i}": "VARCHAR" for i in range(len(columns))},
    }
    not_empty = " OR ".join(f"c{i} IS NOT NULL" for i in range(len(columns))) or "TRUE"
    con = duckdb.connect()
    try:
        return con.execute(
            f"SELECT count(*) FILTER (WHERE {not_empty}) FROM read_csv($path, header = $header, delim = $delim, "
            "quote = $quote, escape = $escape, strict_mode = $strict_mode, null_padding = $null_padding, "
            "auto_detect = $auto_detect, columns = $columns)",
            {"path": str(path), **options},
        ).fetchone()[0]
    except duckdb.Error as exc:
        message = str(exc)
        line = re.search(r"CSV Error on Line: (\d+)", message)
        found = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", message)
        if found:
            reason = f"expected {found.group(1)} fields, found {found.group(2)}"
        elif "unterminated quote" in message:
            reason = "a quoted value is never closed"
        else:
            reason = message.splitlines()[0].removeprefix("Invalid Input Error: ")
        where = f"line {physical_line(path, delimiter, int(line.group(1)))}" if line else "somewhere in the file"
        raise IngestError(
            f"{shown_as}: {where}: malformed CSV record: {reason} (check quoting and the delimiter {delimiter!r})"
        ) from None
    finally:
        con.close()


def scan_csv_as_text(path: Path, source: FileSource, scratch: Path) -> tuple[pl.LazyFrame, Path]:
    """A lazy, all-text scan of one CSV with clean header names and 1-based row numbers; nothing is read yet, so
    a file of any size streams through. Returns the scan and the UTF-8 file it reads (a transcoded copy for GBK)."""
    if source.encoding == "utf-8":
        check_header_encoding(path, source)
    readable = path if source.encoding == "utf-8" else transcode_to_utf8(path, source.encoding, scratch)
    with readable.open("rb") as handle:
        head = handle.read(4096)
    if not head.strip(b"\xef\xbb\xbf \r\n\t"):
        raise IngestError(f"{path}: the file is empty (no header row)")
    # Names as the header really spells them (Polars renames duplicates to x_duplicated_0), without a UTF-8
    # byte-order mark or surrounding blanks.
    names = [name.lstrip("\ufeff").strip() for name in _header_names(readable, source.delimiter)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise IngestError(f"{path}: line 1: duplicate column name(s) {duplicates} in the header")
    scan = pl.scan_csv(readable, separator=source.delimiter, infer_schema=False, quote_char='"',
                       raise_if_empty=False, new_columns=names)
    try:
        scan.collect_schema()
    except pl.exceptions.PolarsError as exc:
        raise csv_failure(exc, path, readable, source) from None
    # Blank lines carry no data: Polars reads them as all-empty records, DuckDB skips them. Row numbers keep
    # counting them, so a row number still points at the right line of a file without multi-line values.
    scan = scan.with_row_index(SOURCE_ROW, offset=1).filter(~pl.all_horizontal(pl.col(names).is_null()))
    return scan, readable


def csv_failure(exc: Exception, path: Path, readable: Path, source: FileSource) -> IngestError:
    """Turn a Polars parse failure into an error naming the file and, where it can be found, the line."""
    if "invalid utf-8" in str(exc).lower():
        return IngestError(f"{path}: {locate_undecodable_line(readable, 'utf-8')}")
    check_csv_structure(readable, path, source.delimiter, _header_names(readable, source.delimiter))
    stray = find_stray_quote(readable, source.delimiter)
    if stray is not None:
        return IngestError(
            f"{path}: line {stray}: malformed CSV record: a quote inside an unquoted value "
            f"(quote the whole value and double inner quotes: \"C2\"\"x\")"
        )
    return IngestError(f"{path}: unreadable CSV ({str(exc).splitlines()[0]})")


def verify_record_count(path: Path, readable: Path, source: FileSource, names: list[str], rows: int) -> None:
    """Polars pads short records silently; DuckDB's strict parse must agree on the count, or name the bad line."""
    records = check_csv_structure(readable, path, source.delimiter, names)
    if records != rows:
        raise IngestError(f"{path}: read {rows} records but the strict parser counts {records}; "
                          f"check quoting and the delimiter {source.delimiter!r}")


def read_csv_as_text(path: Path, source: FileSource, scratch: Path) -> pl.DataFrame:
    scan, readable = scan_csv_as_text(path, source, scratch)
    try:
        frame = scan.collect()
    except pl.exceptions.PolarsError as exc:
        raise csv_failure(exc, path, readable, source) from None
    verify_record_count(path, readable, source, [c for c in frame.columns if c != SOURCE_ROW], frame.height)
    return frame


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
    with path.open("rb") as handle:
        head = handle.read(1024)
    body = head.lstrip(b"\xef\xbb\xbf \r\n\t")
    if not body:
        raise IngestError(f"{path}: the file is empty")
    # Polars rejects a byte-order mark in JSON; hand it the bytes after it.
    source: Path | io.BytesIO = io.BytesIO(path.read_bytes()[3:]) if head.startswith(b"\xef\xbb\xbf") else path
    try:
        frame = pl.read_json(source) if body.startswith(b"[") else pl.read_ndjson(source)
    except pl.exceptions.PolarsError as exc:
        raise IngestError(f"{path}: not valid JSON records ({str(exc).splitlines()[0]})") from exc
    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    if nested:
        raise IngestError(f"{path}: column(s) {nested} hold nested values; the contract needs flat records")
    return frame.select(pl.all().cast(pl.String))


def read_parquet_as_text(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path).select(pl.all().cast(pl.String))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise IngestError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from exc


def read_source_file(path: Path, source: FileSource, scratch: Path) -> pl.DataFrame:
    """One file as an all-text frame with its file path and 1-based data row number (read into memory: for
    inspection and tests; the assets stream files through `stage_files`)."""
    if detect_format(path, source.format) == "csv":
        return with_origin(read_csv_as_text(path, source, scratch).lazy(), path).collect()
    return with_origin(scan_source_file(path, source, scratch)[0], path).collect()


def scan_source_file(path: Path, source: FileSource, scratch: Path) -> tuple[pl.LazyFrame, Path | None]:
    """A lazy scan of any supported file, and for CSV the UTF-8 file behind it (for error reports)."""
    fmt = detect_format(path, source.format)
    if fmt == "csv":
        return scan_csv_as_text(path, source, scratch)
    frame = read_parquet_as_text(path) if fmt == "parquet" else read_json_as_text(path)
    return frame.lazy().with_row_index(SOURCE_ROW, offset=1), None


def with_origin(scan: pl.LazyFrame, path: Path) -> pl.LazyFrame:
    return scan.with_columns(pl.col(SOURCE_ROW).cast(pl.Int64), pl.lit(str(path)).alias(SOURCE_FILE))
