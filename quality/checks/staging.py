"""Checks on the load (quality/load_audit, written by staging): nothing lost silently, and no broken export.

Both are blocking: features and everything after wait for them, and a failure keeps the run from being published.
"""

import dagster as dg

from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.core.sql import preview_markdown


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


@dg.asset_check(asset=dg.AssetKey(["quality", "load_audit"]), blocking=True)
def quarantine_share_within_limit(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, source: SourceResource
) -> dg.AssetCheckResult:
    """A file that loses more than `quality.max_quarantine_share` of its rows to quarantine is a broken export:
    segments are not published from it. Cancelled orders and returns (rows_set_aside) are quarantined too, but they
    are the shop's business, not a fault of the export, so the share leaves them out."""
    limit = source.load().quality.max_quarantine_share
    with warehouse.connect(read_only=True) as con:
        shares = con.execute(
            """SELECT source_file, rows_read, rows_quarantined, COALESCE(rows_set_aside, 0) AS rows_set_aside,
                      CASE WHEN rows_read = 0 THEN 0
                           ELSE (rows_quarantined - COALESCE(rows_set_aside, 0)) / rows_read END AS share
               FROM quality.load_audit WHERE run_id = ? ORDER BY share DESC, source_file""",
            [context.run.run_id],
        ).pl()
    over = shares.filter(shares["share"] > limit)
    return dg.AssetCheckResult(
        passed=over.is_empty(),
        description=None if over.is_empty() else _over_the_limit(over.row(0, named=True), limit),
        metadata={"limit": limit, "worst_share": float(shares["share"].max() or 0) if shares.height else 0.0,
                  "files": dg.MetadataValue.md(preview_markdown(shares, rows=20))},
    )


def _over_the_limit(worst: dict, limit: float) -> str:
    set_aside = worst["rows_set_aside"]
    besides = f" (besides {set_aside:,} set aside: cancelled, returned or without a customer id)" if set_aside else ""
    return (f"{worst['source_file']}: {worst['share']:.1%} of rows quarantined{besides}, above "
            f"quality.max_quarantine_share {limit:.1%}")


@dg.asset_check(asset=dg.AssetKey(["staging", "order_lines"]), blocking=True)
def category_count_within_limit(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, source: SourceResource
) -> dg.AssetCheckResult:
    """More distinct categories than `quality.max_categories` means a free-text column (a product description)
    was mapped as the category: the features step would make one column per value and grow with categories x
    customers. The run stops before features and says which values and the two ways out."""
    limit = source.load().quality.max_categories
    with warehouse.connect(read_only=True) as con:
        counts = con.execute("""SELECT category, count(*) AS lines FROM staging.order_lines
                                WHERE category IS NOT NULL GROUP BY category ORDER BY lines DESC, category""").pl()
    top = ", ".join(f"{row['category']} ({row['lines']:,})" for row in counts.head(5).iter_rows(named=True))
    over = counts.height > limit
    return dg.AssetCheckResult(
        passed=not over,
        description=None if not over else (
            f"{counts.height:,} distinct categories, above quality.max_categories {limit}; most frequent: {top}. "
            "A free-text column mapped as the category makes one feature per value: give a product table "
            "(products:, sku -> category) or orders.category_rules on the description"),
        metadata={"categories": counts.height, "limit": limit,
                  "most_frequent": dg.MetadataValue.md(preview_markdown(counts, rows=20))},
    )


CHECKS = [load_audit_identity, quarantine_share_within_limit, category_count_within_limit]
