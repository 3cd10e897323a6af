"""Staging layer: typed, normalised and deduplicated orders, order lines and customers.

Rules, applied in this order to every raw row (documented in docs/configuration.md, "Data contract"):

1. A row that fails a rule (missing key, text where a number belongs, unknown code, bad flag) goes to
   `quality.quarantine` with its file, row, column, raw value and reason; every failing column is recorded, the
   first failing rule first. A CSV line the raw layer could not parse (raw.<input>_malformed) is quarantined the
   same way, with the whole line as its raw value.
2. Exact duplicates (every contract column equal) collapse onto the first row in file order; the others are
   counted as `duplicates_removed`. Long-shape order lines keep them instead with `orders.exact_duplicates: keep`.
3. Key duplicates with conflicting attributes:
   - order lines: every source row is a line of its own unless the source declares a line key
     (`orders.line_key`, or a mapped `line_id`); under a declared key the first row is kept and later ones with
     other values are quarantined;
   - customers (key: customer_id): the *last* row in file order wins, since later rows are newer profile
     data; superseded rows are counted as duplicates removed and logged in `quality.key_conflicts`.
   In the wide shape every basket row is a purchase, so a customer seen on two baskets with different profile
   attributes (the seed table's cardid 37917) keeps both baskets and the profile of the last one.

4. Ids are normalised (NFKC, trimmed, invisible characters removed, case per `values.id_case`; keys.py); ids
   that collide only after it are logged in `quality.key_conflicts`. An order line whose order id belongs to
   another customer (the customer of the order's first line in file order) is quarantined.

Every source row ends up in exactly one place, which `quality.load_audit` proves per file and run:
rows_read = rows_loaded + rows_quarantined + duplicates_removed.
"""


import dagster as dg

from assets.staging.audit import CHANGED_CUSTOMERS
from assets.staging.build import build_staging
from assets.staging.customers import CUSTOMERS_BUILT_FROM
from assets.staging.takebacks import RETRACTED_LINES, TAKEBACKS
from pipelines.core.identity import SOURCE_RUNS, record_source_run, source_identity
from pipelines.core.partitions import DAILY_ORDERS, SINGLE_RUN_BACKFILL, run_window
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.core.sql import preview_markdown

STAGING_SPECS = [
    dg.AssetSpec(["staging", "orders"], group_name="staging", kinds={"duckdb"},
                 deps=[["raw", "orders"], ["raw", "customers"]],
                 description="One row per order (basket): order_id, customer_id, order_ts, payment_method, "
                             "channel, order_amount, n_lines, n_items."),
    dg.AssetSpec(["staging", "order_lines"], group_name="staging", kinds={"duckdb"},
                 deps=[["raw", "orders"], ["raw", "products"]],
                 description="One row per order line: a source row, or one per declared line key "
                             "(orders.line_key); the wide shape yields one line per category flagged T."),
    dg.AssetSpec(["staging", "customers"], group_name="staging", kinds={"duckdb"},
                 deps=[["raw", "customers"], ["raw", "orders"]],
                 description="One row per customer with a typed profile; customers seen only in orders have an "
                             "empty profile."),
    dg.AssetSpec(["staging", "products"], group_name="staging", kinds={"duckdb"},
                 deps=[["raw", "products"]],
                 description="One row per sku of the product table (products:): category, subcategory, brand, "
                             "unit_price; empty without one. Order lines take their category from it by sku."),
    dg.AssetSpec(["quality", "quarantine"], group_name="quality", kinds={"duckdb"},
                 deps=[["raw", "orders"], ["raw", "customers"], ["raw", "products"]],
                 description="One row per rejected source row: file, row, column, raw value, reason, run id."),
    dg.AssetSpec(["quality", "load_audit"], group_name="quality", kinds={"duckdb"},
                 deps=[["raw", "orders"], ["raw", "customers"], ["raw", "products"]],
                 description="One row per source file and run: rows read, loaded, quarantined, duplicates removed."),
    dg.AssetSpec(["quality", "key_conflicts"], group_name="quality", kinds={"duckdb"},
                 deps=[["raw", "orders"], ["raw", "customers"], ["raw", "products"]],
                 description="One row per superseded customer profile or product row that differs from the kept "
                             "one, and per other form of an id that collides only after normalisation (C001, "
                             "Ｃ００１), per run: key, kept and superseded file and row, differing columns, "
                             "resolution."),
    dg.AssetSpec(["quality", "removed_duplicates"], group_name="quality", kinds={"duckdb"},
                 deps=[["raw", "orders"], ["raw", "customers"], ["raw", "products"]],
                 description="One row per source row removed as a duplicate, per run: its file and row, the row it "
                             "duplicates, and the kind (exact, conflict_superseded, loaded_on_other_day)."),
    dg.AssetSpec(["quality", "source_runs"], group_name="quality", kinds={"duckdb"},
                 deps=[["raw", "orders"]],
                 description="One row per run: the source it loaded (config name, config file and its SHA-256, "
                             "orders location). A warehouse holds one source; a run of another is refused "
                             "(persona run --replace starts anew)."),
    dg.AssetSpec(["staging", "changed_customers"], group_name="staging", kinds={"duckdb"},
                 deps=[["raw", "orders"]],
                 description="Work queue, one row per customer and run whose orders a load changed (customer_id "
                             "NULL: every customer); the features step consumes and empties it."),
    dg.AssetSpec(["staging", "order_takebacks"], group_name="staging", kinds={"duckdb"},
                 deps=[["raw", "orders"]],
                 description="One row per set-aside order row of a landing day that cancels an order or refunds a "
                             "line (its status): what takes back the lines an earlier day loaded. Replaced with its "
                             "day, so a day loaded again is taken back again."),
    dg.AssetSpec(["quality", "retracted_lines"], group_name="quality", kinds={"duckdb"},
                 deps=[["raw", "orders"]],
                 description="One row per order line an earlier run loaded and a later day's file took back "
                             "(cancelled order or refunded line), per run that took it back: the line's file, row, "
                             "day, order, customer and amount, and the row that took it back."),
    dg.AssetSpec(["staging", "customers_built_from"], group_name="staging", kinds={"duckdb"},
                 deps=[["raw", "customers"], ["raw", "orders"]],
                 description="At most one row: the fingerprint of the inputs staging.customers was last built from "
                             "(raw customer load, typing parameters, reference year), with its run id."),
]


@dg.multi_asset(specs=STAGING_SPECS, pool="duckdb_writer", partitions_def=DAILY_ORDERS,
                backfill_policy=SINGLE_RUN_BACKFILL)
def staging_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """Types, normalises and deduplicates the raw rows of the run's days (all rows for a snapshot source);
    rejects go to quarantine, every row read is audited."""
    config = source.load()
    window = run_window(context) if config.daily else None
    with warehouse.connect() as con:
        build_staging(con, config, context.run_id, window=window)
        record_source_run(con, context.run_id, source_identity(source, config))
        counts = {
            name: con.execute(f"SELECT count(*) FROM staging.{name}").fetchone()[0]
            for name in ("orders", "order_lines", "customers", "products")
        }
        quarantined = con.execute(
            "SELECT count(*) FROM quality.quarantine WHERE run_id = ?", [context.run_id]).fetchone()[0]
        audit = con.execute(
            "SELECT * EXCLUDE (run_id, audited_at) FROM quality.load_audit WHERE run_id = ?", [context.run_id]
        ).pl()
        # Row counts of the whole tables; the run's own rows of the per-run logs as metadata beside them.
        logs = {
            table: con.execute(f"SELECT count(*), count(*) FILTER (WHERE run_id = ?) FROM {table}",
                               [context.run_id]).fetchone()
            for table in ("quality.key_conflicts", "quality.removed_duplicates", SOURCE_RUNS, CHANGED_CUSTOMERS,
                          CUSTOMERS_BUILT_FROM, RETRACTED_LINES)
        }
        takebacks = con.execute(f"SELECT count(*) FROM {TAKEBACKS}").fetchone()[0]
        previews = {
            name: con.execute(
                f"SELECT COLUMNS(c -> NOT starts_with(c, '_source')) FROM staging.{name} LIMIT 5").pl()
            for name in counts
        }
    for name, count in counts.items():
        yield dg.MaterializeResult(
            asset_key=["staging", name],
            metadata={"dagster/row_count": count, "preview": dg.MetadataValue.md(preview_markdown(previews[name]))},
        )
    yield dg.MaterializeResult(asset_key=TAKEBACKS.split("."), metadata={"dagster/row_count": takebacks})
    yield dg.MaterializeResult(asset_key=["quality", "quarantine"],
                               metadata={"dagster/row_count": quarantined, "run_id": context.run_id})
    yield dg.MaterializeResult(asset_key=["quality", "load_audit"],
                               metadata={"dagster/row_count": audit.height,
                                         "audit": dg.MetadataValue.md(preview_markdown(audit, rows=50))})
    for table, (rows, this_run) in logs.items():
        yield dg.MaterializeResult(asset_key=table.split("."),
                                   metadata={"dagster/row_count": rows, "rows_this_run": this_run,
                                             "run_id": context.run_id})
