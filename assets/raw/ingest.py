"""Raw layer: copy the shop's files into DuckDB as text, one row per source row, with file and row number.

Nothing is typed or judged here: staging does that. Raw keeps every row the file held, mapped onto the
contract's column names, so every later count can be traced back to a file and a row.
"""


import codecs
import csv
import hashlib
import hmac
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from pipelines.core.config import (
    CUSTOMER_FIELDS,
    CUSTOMER_REQUIRED,
    LONG_ORDER_FIELDS,
    LONG_ORDER_REQUIRED,
    WIDE_ORDER_FIELDS,
    WIDE_ORDER_REQUIRED,
    FileSource,
    OrdersSource,
    SourceConfig,
)
from pipelines.core.faults import crash_point
from pipelines.core.partitions import (
    DAILY_ORDERS,
    SINGLE_RUN_BACKFILL,
    DayWindow,
    file_signature,
    run_window,
)
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.core.sql import preview_markdown, table_columns, table_exists

SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"  # 1-based data row: the header is row 0, the first record row 1
PII_SALT_VARIABLE = "PERSONA_PII_SALT"
PARTITION_DATE = "_partition_date"  # the landing day of a daily source's file; NULL for snapshot sources
FORMAT_BY_SUFFIX = {
    ".csv": "csv", ".txt": "csv", ".tsv": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".json": "json", ".jsonl": "json", ".ndjson": "json",
}
TRANSCODE_CHUNK_BYTES = 1 << 20


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
            f"SELECT count(*) FILTER (WHERE {not_empty}) FROM read_csv($path, header = $header, delim = $delim, quote = $quote, escape = $escape, "
            "strict_mode = $strict_mode, null_padding = $null_padding, auto_detect = $auto_detect, "
            "columns = $columns)",
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
        return _with_origin(read_csv_as_text(path, source, scratch).lazy(), path).collect()
    return _with_origin(_scan_source_file(path, source, scratch)[0], path).collect()


def _scan_source_file(path: Path, source: FileSource, scratch: Path) -> tuple[pl.LazyFrame, Path | None]:
    """A lazy scan of any supported file, and for CSV the UTF-8 file behind it (for error reports)."""
    fmt = detect_format(path, source.format)
    if fmt == "csv":
        return scan_csv_as_text(path, source, scratch)
    frame = read_parquet_as_text(path) if fmt == "parquet" else read_json_as_text(path)
    return frame.lazy().with_row_index(SOURCE_ROW, offset=1), None


def _with_origin(scan: pl.LazyFrame, path: Path) -> pl.LazyFrame:
    return scan.with_columns(pl.col(SOURCE_ROW).cast(pl.Int64), pl.lit(str(path)).alias(SOURCE_FILE))


def pii_hasher(salt: str):
    """HMAC-SHA256 of each trimmed value under the salt, as hex; NULL stays NULL. One salt for every file and
    every night, so a hashed customer id joins across files and stays the same id across refreshes."""
    key = salt.encode("utf-8")

    def hash_values(values: pl.Series) -> pl.Series:
        return pl.Series(values.name, [
            None if v is None else hmac.new(key, v.strip().encode("utf-8"), hashlib.sha256).hexdigest()
            for v in values.to_list()], dtype=pl.String)

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
        if column in present:
            value = pl.col(column)
            if pii.get(column) == "hash":
                value = value.map_batches(pii_hasher(salt), return_dtype=pl.String)
            selected.append(value.alias(field))
            used.add(column)
        elif field in source.columns:
            raise IngestError(
                f"{path}: column {column!r} (mapped in {key}.columns.{field}) is not in the header; "
                f"the header has {_header_summary(frame)}"
            )
        elif field in required:
            raise IngestError(
                f"{path}: required column {field!r} is missing; map it under {key}.columns.{field}. "
                f"The header has {_header_summary(frame)}"
            )
        else:
            selected.append(pl.lit(None, dtype=pl.String).alias(field))
    for column in keep:
        if column not in present:
            raise IngestError(
                f"{path}: category column {column!r} (listed in {key}.category_columns) is not in the header; "
                f"the header has {_header_summary(frame)}"
            )
        selected.append(pl.col(column))
        used.add(column)
    ignored = [c for c in columns if c not in used]
    return frame.select(selected), ignored


def _header_summary(frame: pl.DataFrame | pl.LazyFrame) -> str:
    real = [c for c in frame.collect_schema().names() if c not in (SOURCE_FILE, SOURCE_ROW)]
    hint = " (one column only: is the delimiter right?)" if len(real) == 1 else ""
    return f"{real[:20]}{hint}"


def stage_orders(
    config: SourceConfig, scratch: Path, window: DayWindow | None = None
) -> tuple[list[Path], list[dict]]:
    """Daily sources stage the landing files of the window's days (each row tagged with its day); snapshot
    sources stage every file (day NULL)."""
    allowed = LONG_ORDER_FIELDS if config.shape == "long" else WIDE_ORDER_FIELDS
    required = LONG_ORDER_REQUIRED if config.shape == "long" else WIDE_ORDER_REQUIRED
    if config.daily and window is not None:
        files = [(path, day) for day, paths in config.order_files_by_day().items() if day in window
                 for path in paths]
    else:
        files = [(path, None) for path in config.order_files()]
    return stage_files(files, config.orders, allowed, required, "orders", scratch, config.privacy.pii_columns)


def stage_customers(config: SourceConfig, scratch: Path) -> tuple[list[Path], list[dict]]:
    if config.customers is None:
        return [], []
    return stage_files([(path, None) for path in config.customer_files()], config.customers, CUSTOMER_FIELDS,
                       CUSTOMER_REQUIRED, "customers", scratch, config.privacy.pii_columns)


def stage_files(
    files: list[tuple[Path, date | None]], source: FileSource, allowed, required, key: str, scratch: Path,
    pii: dict[str, str] | None = None,
) -> tuple[list[Path], list[dict]]:
    """Stream every file, mapped onto the contract, into a Parquet file in `scratch`: memory stays flat whatever
    the file size. Returns the Parquet files and one manifest entry per source file."""
    keep = source.category_columns if isinstance(source, OrdersSource) else []
    salt = pii_salt(pii)
    staged, manifest = [], []
    for index, (path, day) in enumerate(files):
        signature = file_signature(path)
        scan, readable = _scan_source_file(path, source, scratch)
        mapped, ignored = map_columns(_with_origin(scan, path), path, source, allowed, required, key, keep, pii,
                                      salt)
        mapped = mapped.with_columns(pl.lit(day, dtype=pl.Date).alias(PARTITION_DATE))
        target = scratch / f"{key}-{index}.parquet"
        try:
            mapped.sink_parquet(target)
        except pl.exceptions.PolarsError as exc:
            if readable is None:
                raise IngestError(f"{path}: unreadable ({str(exc).splitlines()[0]})") from None
            raise csv_failure(exc, path, readable, source) from None
        rows = pl.scan_parquet(target).select(pl.len()).collect().item()
        if readable is not None:
            source_names = [c for c in scan.collect_schema().names() if c != SOURCE_ROW]
            verify_record_count(path, readable, source, source_names, rows)
        staged.append(target)
        manifest.append({"source_file": str(path), "input": key, "rows_read": rows, "ignored_columns": ignored,
                         "partition_date": day, "file_size": signature[0], "file_mtime_ns": signature[1]})
    return staged, manifest


def _empty_raw(fields) -> pl.DataFrame:
    return pl.DataFrame(schema={SOURCE_FILE: pl.String, SOURCE_ROW: pl.Int64, **{f: pl.String for f in fields},
                                PARTITION_DATE: pl.Date})


def read_orders(config: SourceConfig, scratch: Path) -> tuple[pl.DataFrame, list[dict]]:
    """The staged order rows as one frame (for inspection and tests; the asset streams them instead)."""
    staged, manifest = stage_orders(config, scratch)
    return pl.concat([pl.read_parquet(p) for p in staged], how="vertical"), manifest


def read_customers(config: SourceConfig, scratch: Path) -> tuple[pl.DataFrame, list[dict]]:
    staged, manifest = stage_customers(config, scratch)
    if not staged:
        return _empty_raw(CUSTOMER_FIELDS), manifest
    return pl.concat([pl.read_parquet(p) for p in staged], how="vertical"), manifest


def _columns_of(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description]


def replace_days(con: duckdb.DuckDBPyConnection, table: str, incoming: str, window: DayWindow | None) -> None:
    """Put the rows of temp table or view `incoming` into `table`. A snapshot load (window None) replaces the
    table; a daily load deletes the window's days first, so reloading a day never doubles it. Rows of a former
    snapshot load (day NULL) go too. Runs inside the caller's transaction."""
    existing = table_columns(con, table)
    if window is not None and existing is not None and existing != _columns_of(con, incoming):
        kept = con.execute(
            f"SELECT min({PARTITION_DATE}), count(*) FROM {table} WHERE {PARTITION_DATE} NOT BETWEEN ? AND ?",
            [window.first, window.last]).fetchone()
        if kept[1]:
            raise IngestError(
                f"{table}: the columns loaded for {window} differ from those of the {kept[1]} rows already loaded "
                f"for other days (from {kept[0]}); reload every day at once: persona run --all-days")
        existing = None
    if window is None or existing is None:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {incoming}")
    else:
        con.execute(f"DELETE FROM {table} WHERE {PARTITION_DATE} IS NULL OR {PARTITION_DATE} BETWEEN ? AND ?",
                    [window.first, window.last])
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {incoming}")


def write_raw_table(
    con: duckdb.DuckDBPyConnection, table: str, staged: list[Path], fields, window: DayWindow | None = None
) -> None:
    if staged:
        # A view, so the rows go from the staged Parquet files straight into the table: a temporary copy first
        # cost 3 s at 9M rows. A view cannot take parameters; the paths are our own scratch files, quoted anyway.
        files = ", ".join("'" + str(path).replace("'", "''") + "'" for path in staged)
        con.execute(f"CREATE OR REPLACE TEMP VIEW incoming AS SELECT * FROM read_parquet([{files}])")
        kind = "VIEW"
    else:
        empty = _empty_raw(fields).to_arrow()  # noqa: F841 - read by DuckDB's replacement scan
        con.execute("CREATE OR REPLACE TEMP TABLE incoming AS SELECT * FROM empty")
        kind = "TABLE"
    replace_days(con, table, "incoming", window)
    con.execute(f"DROP {kind} incoming")


def write_manifest(
    con: duckdb.DuckDBPyConnection, run_id: str, input_name: str, manifest: list[dict], window: DayWindow | None
) -> None:
    """raw.source_files: one row per file held by the raw tables; the run that read it, and the file's size and
    modification time, which tell a changed landing file from the one loaded."""
    con.execute(
        """CREATE TABLE IF NOT EXISTS raw.source_files (
            run_id VARCHAR, input VARCHAR, source_file VARCHAR, rows_read BIGINT,
            ignored_columns VARCHAR[], read_at TIMESTAMP, partition_date DATE, file_size BIGINT,
            file_mtime_ns BIGINT)"""
    )
    # Raw tables hold the latest read of each file, so the manifest does too; history lives in quality.load_audit.
    if window is None:
        con.execute("DELETE FROM raw.source_files WHERE input = ?", [input_name])
    else:
        con.execute("DELETE FROM raw.source_files WHERE input = ? AND (partition_date IS NULL OR "
                    "partition_date BETWEEN ? AND ?)", [input_name, window.first, window.last])
    if not manifest:
        return
    con.executemany(
        "INSERT INTO raw.source_files VALUES (?, ?, ?, ?, ?, current_timestamp, ?, ?, ?)",
        [[run_id, e["input"], e["source_file"], e["rows_read"], e["ignored_columns"], e["partition_date"],
          e["file_size"], e["file_mtime_ns"]] for e in manifest],
    )


SNAPSHOT_LOADS = "raw.snapshot_loads"


def snapshot_fingerprint(files: list[Path], source: FileSource, pii: dict[str, str]) -> str:
    """What decides the raw rows of a snapshot input: each file's path, size and modification time (as for
    landing files, pipelines/partitions.py), the input's mapping, and the PII rules with a digest of the salt."""
    salt = pii_salt(pii)
    payload = {
        "files": [[str(path), *file_signature(path)] for path in files],
        "source": source.model_dump(mode="json"),
        "pii": pii,
        "salt": hashlib.sha256(salt.encode("utf-8")).hexdigest() if salt else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def record_snapshot_load(con: duckdb.DuckDBPyConnection, table: str, fingerprint: str, run_id: str) -> None:
    con.execute(f"""CREATE TABLE IF NOT EXISTS {SNAPSHOT_LOADS} (
        table_name VARCHAR, fingerprint VARCHAR, run_id VARCHAR, loaded_at TIMESTAMP)""")
    con.execute(f"DELETE FROM {SNAPSHOT_LOADS} WHERE table_name = ?", [table])
    con.execute(f"INSERT INTO {SNAPSHOT_LOADS} VALUES (?, ?, ?, current_timestamp)", [table, fingerprint, run_id])


def snapshot_load(con: duckdb.DuckDBPyConnection, table: str) -> tuple[str, str] | None:
    """(fingerprint, run id) of the last load of snapshot table `table`; None if never recorded or the table is
    gone."""
    if not table_exists(con, SNAPSHOT_LOADS) or not table_exists(con, table):
        return None
    return con.execute(f"SELECT fingerprint, run_id FROM {SNAPSHOT_LOADS} WHERE table_name = ?",
                       [table]).fetchone()


def _materialize_raw(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, table: str, staged: list[Path],
    manifest: list[dict], fields, window: DayWindow | None = None, fingerprint: str | None = None,
) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            write_raw_table(con, table, staged, fields, window)
            write_manifest(con, context.run_id, table.split(".")[1], manifest, window)
            if fingerprint is not None:
                record_snapshot_load(con, table, fingerprint, context.run_id)
            crash_point(f"{table}:before_commit")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        preview = con.execute(f"SELECT * EXCLUDE ({SOURCE_FILE}) FROM {table} LIMIT 5").pl()
    ignored = sorted({c for entry in manifest for c in entry["ignored_columns"]})
    if ignored:
        context.log.warning(f"{table}: ignored source columns not in the contract: {ignored}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "reloaded": True,
            "rows_loaded_this_run": sum(e["rows_read"] for e in manifest),
            "days": str(window) if window else "all (snapshot source)",
            "files": dg.MetadataValue.json([{k: e[k] for k in ("source_file", "rows_read")} for e in manifest]),
            "ignored_columns": ", ".join(ignored) or "none",
            "preview": dg.MetadataValue.md(preview_markdown(preview)),
        }
    )


@dg.asset(
    key=["raw", "orders"],
    group_name="raw",
    kinds={"duckdb", "polars"},
    pool="duckdb_writer",
    partitions_def=DAILY_ORDERS,
    backfill_policy=SINGLE_RUN_BACKFILL,
)
def raw_orders(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """Order rows exactly as the shop's files hold them, as text: one row per order line (long shape) or per
    basket with its category flags (wide shape), with `_source_file`, `_source_row` and `_partition_date` (the
    landing day of a daily source; NULL for a snapshot source, which every run replaces whole)."""
    config = source.load()
    window = run_window(context) if config.daily else None
    fields = LONG_ORDER_FIELDS if config.shape == "long" else [*WIDE_ORDER_FIELDS, *config.orders.category_columns]
    with tempfile.TemporaryDirectory(prefix="persona-ingest-") as scratch:
        staged, manifest = stage_orders(config, Path(scratch), window)
        return _materialize_raw(context, warehouse, "raw.orders", staged, manifest, fields, window)


@dg.asset(
    key=["raw", "customers"],
    group_name="raw",
    kinds={"duckdb", "polars"},
    pool="duckdb_writer",
)
def raw_customers(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """Customer profile rows as text, one row per source row; empty when the shop gives no customer file
    (profiles then come from the order rows, as in the wide shape). The customer file is a snapshot of every
    profile, so a run replaces it whole, unless the files and their mapping are those already loaded: a nightly
    run then keeps the loaded rows (at 1M customers a reload cost 1.7 s and staging's rebuild 2.7 s more)."""
    config = source.load()
    files = config.customer_files() if config.customers is not None else []
    fingerprint = snapshot_fingerprint(files, config.customers, config.privacy.pii_columns) \
        if config.customers is not None else None
    with warehouse.connect() as con:  # read-write: on a first run the working database does not exist yet
        loaded = snapshot_load(con, "raw.customers")
        rows = con.execute("SELECT count(*) FROM raw.customers").fetchone()[0] if loaded else 0
    if fingerprint is not None and loaded is not None and loaded[0] == fingerprint:
        context.log.info(f"raw.customers: the customer files are unchanged since run {loaded[1]}; not reloaded")
        return dg.MaterializeResult(metadata={
            "dagster/row_count": rows, "reloaded": False, "unchanged_since_run": loaded[1],
            "files": dg.MetadataValue.json([str(path) for path in files])})
    with tempfile.TemporaryDirectory(prefix="persona-ingest-") as scratch:
        staged, manifest = stage_customers(config, Path(scratch))
        return _materialize_raw(context, warehouse, "raw.customers", staged, manifest, CUSTOMER_FIELDS,
                                fingerprint=fingerprint)
