"""Checks on the segments layer: every customer segmented with unique names (`segments/customer_segments`)."""

import dagster as dg

from pipelines.core.faults import crash_point
from pipelines.core.resources import WarehouseResource


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
    crash_point("segments:checked")
    return dg.AssetCheckResult(
        passed=passed,
        metadata={"staged_customers": staged, "segment_rows": segmented, "distinct_customers": distinct_ids,
                  "segments": names[0], "distinct_names_zh": names[1], "distinct_names_en": names[2]},
    )


CHECKS = [every_customer_segmented]
