"""Raw layer, tables: the DuckDB tables beside the raw rows (which assets/raw/files.py keeps): the malformed lines
of each input, the manifest of files loaded (raw.source_files) and the fingerprints of snapshot loads
(raw.snapshot_loads); and replace_days, which replaces a table's rows whole or by day."""

import hashlib
import json
from pathlib import Path

import duckdb
import polars as pl

from assets.raw.mapping import pii_salt
from assets.raw.readers import PARTITION_DATE, SOURCE_FILE, SOURCE_ROW, IngestError
from pipelines.core.config import FileSource
from pipelines.core.partitions import DayWindow, file_signature
from pipelines.core.sql import quote_identifier, table_columns, table_exists


def _columns_of(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description]


def replace_days(con: duckdb.DuckDBPyConnection, table: str, incoming: str, window: DayWindow | None) -> None:
    """Put the rows of temp table or view `incoming` into `table`. A snapshot load (window None) replaces the
    table; a daily load deletes the window's days first, so reloading a day never doubles it. Rows of a former
    snapshot load (day NULL) go too. Runs inside the caller's transaction."""
    existing = table_columns(con, table)
    arriving = _columns_of(con, incoming)
    if window is not None and existing is not None and set(existing) < set(arriving):
        # Every contract field is a raw column whether mapped or not, so new columns only come with a newer
        # contract (an upgrade adding a field, such as line_id): the days loaded before simply lack them.
        for column in arriving:
            if column not in existing:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {quote_identifier(column)} VARCHAR")
        existing = table_columns(con, table)
    if window is not None and existing is not None and set(existing) != set(arriving):
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


def malformed_table(table: str) -> str:
    """The side table of a raw table's malformed lines: raw.orders -> raw.orders_malformed."""
    return f"{table}_malformed"


def write_malformed_lines(
    con: duckdb.DuckDBPyConnection, table: str, manifest: list[dict], window: DayWindow | None
) -> None:
    """The lines of the files read that could not be parsed (assets/raw/lines.py, assets/raw/json_records.py), one
    row each with the kind of record it failed to be (CSV, JSON), replaced as the raw table's rows are (whole, or by
    day), so staging quarantines them with the rows of the same load."""
    incoming = pl.DataFrame(  # noqa: F841 - read by DuckDB's replacement scan
        [(e["source_file"], m["row"], m["line"], m["raw_text"], m["reason"], e["partition_date"],
          m.get("format", "CSV")) for e in manifest for m in e.get("malformed", [])],
        schema={SOURCE_FILE: pl.String, SOURCE_ROW: pl.Int64, "line": pl.Int64, "raw_text": pl.String,
                "reason": pl.String, PARTITION_DATE: pl.Date, "record_format": pl.String}, orient="row").to_arrow()
    con.execute("CREATE OR REPLACE TEMP TABLE incoming_malformed AS SELECT * FROM incoming")
    replace_days(con, malformed_table(table), "incoming_malformed", window)
    con.execute("DROP TABLE incoming_malformed")


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
    landing files, pipelines/core/partitions.py), the input's mapping, and the PII rules with a digest of the salt."""
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
