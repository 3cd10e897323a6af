"""Asset checks that gate publishing. Blocking checks stop every downstream asset when they fail."""


import dagster as dg

from assets.ingest import preview_markdown
from pipelines.resources import WarehouseResource


@dg.asset_check(asset=dg.AssetKey(["quality", "load_audit"]), blocking=True)
def load_audit_identity(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Nothing lost silently: for every file of this run, rows_read = rows_loaded + rows_quarantined +
    duplicates_removed."""
    with warehouse.connect(read_only=True) as con:
        audit = con.execute(
            """SELECT input, source_file, rows_read, rows_loaded, rows_quarantined, duplicates_removed
               FROM quality.load_audit WHERE run_id = ? ORDER BY input DESC, source_file""",
            [context.run.run_id],
        ).pl()
    broken = audit.filter(
        audit["rows_read"] != audit["rows_loaded"] + audit["rows_quarantined"] + audit["duplicates_removed"]
    )
    return dg.AssetCheckResult(
        passed=audit.height > 0 and broken.is_empty(),
        metadata={
            "files": audit.height,
            "rows_read": int(audit["rows_read"].sum()) if audit.height else 0,
            "broken_files": dg.MetadataValue.md(preview_markdown(broken, rows=20)) if broken.height else "none",
        },
    )


@dg.asset_check(asset=dg.AssetKey(["segments", "customer_segments"]), blocking=True)
def every_customer_segmented(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Each staged customer has exactly one segment row, and segment names are unique in both languages."""
    with warehouse.connect(read_only=True) as con:
        staged, segmented, distinct_ids = con.execute(
            """SELECT (SELECT count(*) FROM staging.customers),
                      (SELECT count(*) FROM segments.customer_segments),
                      (SELECT count(DISTINCT customer_id) FROM segments.customer_segments)"""
        ).fetchone()
        names = con.execute(
            """SELECT count(DISTINCT segment_id), count(DISTINCT segment_name_zh), count(DISTINCT segment_name_en)
               FROM segments.customer_segments"""
        ).fetchone()
    passed = staged == segmented == distinct_ids and len(set(names)) == 1
    return dg.AssetCheckResult(
        passed=passed,
        metadata={"staged_customers": staged, "segment_rows": segmented, "distinct_customers": distinct_ids,
                  "segments": names[0], "distinct_names_zh": names[1], "distinct_names_en": names[2]},
    )
