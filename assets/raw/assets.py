"""Raw layer, assets: raw/orders and raw/customers, which read the shop's files as text, one row per source row,
with file and row number, into Parquet files the raw tables are views over (assets/raw/files.py).

Nothing is typed or judged here: staging does that. Raw keeps every row the file held, mapped onto the
contract's column names, so every later count can be traced back to a file and a row.
"""

import tempfile
from pathlib import Path

import dagster as dg

from assets.raw.files import remove_unlisted_files, write_raw_table
from assets.raw.mapping import stage_customers, stage_orders, stage_products
from assets.raw.readers import SOURCE_FILE
from assets.raw.settle import settle_seconds, settle_source, wait_until_settled
from assets.raw.tables import (
    record_snapshot_load,
    snapshot_fingerprint,
    snapshot_load,
    write_malformed_lines,
    write_manifest,
)
from pipelines.core.config import (
    CUSTOMER_FIELDS,
    LONG_ORDER_FIELDS,
    PRODUCT_FIELDS,
    WIDE_ORDER_FIELDS,
    FileSource,
    SourceConfig,
)
from pipelines.core.faults import crash_point
from pipelines.core.identity import SourceIdentity, recorded_source, source_conflict, source_identity
from pipelines.core.partitions import DAILY_ORDERS, SINGLE_RUN_BACKFILL, DayWindow, run_window
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.core.sql import preview_markdown


def refuse_another_source(warehouse: WarehouseResource, incoming: SourceIdentity) -> None:
    """One warehouse per shop, for every run however started (the CLI checks the same before planning; a schedule
    or the UI pointed at another shop's config meets it here, before anything is loaded)."""
    if not warehouse.file.is_file():
        return
    with warehouse.connect(read_only=True) as con:
        conflict = source_conflict(recorded_source(con), incoming, warehouse.published_file)
    if conflict:
        raise dg.Failure(description=conflict)


def _materialize_raw(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, table: str, staged: list[Path],
    manifest: list[dict], fields, window: DayWindow | None = None, fingerprint: str | None = None,
) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            write_raw_table(con, table, staged, fields, window)
            write_malformed_lines(con, table, manifest, window)
            write_manifest(con, context.run_id, table.split(".")[1], manifest, window)
            if fingerprint is not None:
                record_snapshot_load(con, table, fingerprint, context.run_id)
            crash_point(f"{table}:before_commit")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        remove_unlisted_files(con)
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        preview = con.execute(f"SELECT * EXCLUDE ({SOURCE_FILE}) FROM {table} LIMIT 5").pl()
    ignored = sorted({c for entry in manifest for c in entry["ignored_columns"]})
    if ignored:
        context.log.warning(f"{table}: ignored source columns not in the contract: {ignored}")
    malformed = sum(len(e.get("malformed", [])) for e in manifest)
    if malformed:
        context.log.warning(f"{table}: {malformed} malformed line(s) left out; staging quarantines them")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "reloaded": True,
            "rows_loaded_this_run": sum(e["rows_read"] for e in manifest),
            "days": str(window) if window else "all (snapshot source)",
            "files": dg.MetadataValue.json([{k: e[k] for k in ("source_file", "rows_read")} for e in manifest]),
            "ignored_columns": ", ".join(ignored) or "none",
            "malformed_lines": malformed,
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
    landing day of a daily source; NULL for a snapshot source, which every run replaces whole). A file modified
    less than `ingest.settle_seconds` ago is waited for (a daily source's plan leaves such a day pending)."""
    config = source.load()
    refuse_another_source(warehouse, source_identity(source, config))
    window = run_window(context) if config.daily else None
    fields = LONG_ORDER_FIELDS if config.shape == "long" else [*WIDE_ORDER_FIELDS, *config.orders.category_columns]
    with tempfile.TemporaryDirectory(prefix="persona-ingest-", dir=warehouse.temp_dir) as scratch:
        staged, manifest = stage_orders(config, Path(scratch), window, log=context.log.info)
        return _materialize_raw(context, warehouse, "raw.orders", staged, manifest, fields, window)


def _materialize_snapshot(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, table: str, files: list[Path],
    source: FileSource | None, pii: dict[str, str], stage, fields, config: SourceConfig,
) -> dg.MaterializeResult:
    """A snapshot input (the customer file, the product table): replaced whole, unless its files and mapping are
    those already loaded; a nightly run then keeps the loaded rows (at 1M customers a reload cost 1.7 s and
    staging's rebuild 2.7 s more). A file still being written is waited for first, so the fingerprint is that
    of the file read."""
    settle, setting = settle_seconds(config), settle_source(config)
    for path in files:
        wait_until_settled(path, settle, setting, context.log.info)
    fingerprint = snapshot_fingerprint(files, source, pii) if source is not None else None
    with warehouse.connect() as con:  # read-write: on a first run the working database does not exist yet
        loaded = snapshot_load(con, table)
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] if loaded else 0
    if fingerprint is not None and loaded is not None and loaded[0] == fingerprint:
        context.log.info(f"{table}: the files are unchanged since run {loaded[1]}; not reloaded")
        return dg.MaterializeResult(metadata={
            "dagster/row_count": rows, "reloaded": False, "unchanged_since_run": loaded[1],
            "files": dg.MetadataValue.json([str(path) for path in files])})
    with tempfile.TemporaryDirectory(prefix="persona-ingest-", dir=warehouse.temp_dir) as scratch:
        staged, manifest = stage(Path(scratch))
        return _materialize_raw(context, warehouse, table, staged, manifest, fields, fingerprint=fingerprint)


@dg.asset(
    key=["raw", "customers"],
    group_name="raw",
    kinds={"duckdb", "polars"},
    pool="duckdb_writer",
)
def raw_customers(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """Customer profile rows as text, one row per source row; empty when the shop gives no customer file
    (profiles then come from the order rows, as in the wide shape). The customer file is a snapshot of every
    profile: a run replaces it whole unless it is unchanged."""
    config = source.load()
    return _materialize_snapshot(context, warehouse, "raw.customers", config.customer_files(), config.customers,
                                 config.privacy.pii_columns,
                                 lambda scratch: stage_customers(config, scratch, context.log.info),
                                 CUSTOMER_FIELDS, config)


@dg.asset(
    key=["raw", "products"],
    group_name="raw",
    kinds={"duckdb", "polars"},
    pool="duckdb_writer",
)
def raw_products(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """Product table rows as text (sku, category, subcategory, brand, unit_price), one row per source row; empty
    when the shop gives no product table (`products:`). A snapshot: replaced whole unless unchanged."""
    config = source.load()
    return _materialize_snapshot(context, warehouse, "raw.products", config.product_files(), config.products,
                                 config.privacy.pii_columns,
                                 lambda scratch: stage_products(config, scratch, context.log.info),
                                 PRODUCT_FIELDS, config)
