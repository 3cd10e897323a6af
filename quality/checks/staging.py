"""Checks on the load (quality/load_audit, written by staging): nothing lost silently, and no broken export.

Both are blocking: features and everything after wait for them, and a failure keeps the run from being published.
A file above the quarantine limit by no more than chance (too few rows to tell) is a warning instead.
"""

import dagster as dg

from assets.staging.line_amounts import amount_source, free_lines, order_total_evidence
from assets.staging.place_keys import masked_ids, place_key_warning, place_named_customer_ids
from assets.staging.rules import SET_ASIDE_ONLY
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.core.shares import BEYOND, BY_CHANCE, above_limit, interval_text
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
    are the shop's business, not a fault of the export, so the share leaves them out.

    A file's share is judged beyond chance (pipelines/core/shares.py): a nightly file of 20 rows with 2 bad lines
    is above a 5% limit, but too few rows to call its export broken. Such a file is loaded, and the check fails
    with WARN severity, which the run prints as a warning; a file above the limit beyond chance blocks (ERROR)."""
    limit = source.load().quality.max_quarantine_share
    with warehouse.connect(read_only=True) as con:
        shares = con.execute(
            """SELECT source_file, rows_read, rows_quarantined, COALESCE(rows_set_aside, 0) AS rows_set_aside,
                      CASE WHEN rows_read = 0 THEN 0
                           ELSE (rows_quarantined - COALESCE(rows_set_aside, 0)) / rows_read END AS share
               FROM quality.load_audit WHERE run_id = ? ORDER BY share DESC, source_file""",
            [context.run.run_id],
        ).pl()
    judged = {BEYOND: [], BY_CHANCE: []}
    for row in shares.iter_rows(named=True):
        verdict, bounds = above_limit(row["rows_quarantined"] - row["rows_set_aside"], row["rows_read"], limit)
        if verdict in judged:
            judged[verdict].append(row | {"bounds": bounds})
    worst = (judged[BEYOND] or judged[BY_CHANCE] or [None])[0]
    description = None
    if worst is not None:
        reasons = _top_reasons(warehouse, context.run.run_id, worst)
        description = _over_the_limit(worst, limit, reasons) if judged[BEYOND] else \
            _over_the_limit_by_chance(worst, limit, reasons, len(judged[BY_CHANCE]))
    return dg.AssetCheckResult(
        passed=worst is None,
        severity=dg.AssetCheckSeverity.ERROR if judged[BEYOND] else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={"limit": limit, "worst_share": float(shares["share"].max() or 0) if shares.height else 0.0,
                  "files_beyond_the_limit": len(judged[BEYOND]),
                  "files_above_the_limit_by_chance": len(judged[BY_CHANCE]),
                  "files": dg.MetadataValue.md(preview_markdown(shares, rows=20))},
    )


def _top_reasons(warehouse: WarehouseResource, run_id: str, worst: dict) -> str:
    """The file's two most frequent reasons that count, with their shares of its rows: `order_id used by another
    customer 13.3%`. A reason's kind is its text before a colon, numbers as N (the rows and values it names vary),
    but for the name of a standard (ISO 8601), which is no value."""
    with warehouse.connect(read_only=True) as con:
        kinds = con.execute(
            r"""SELECT replace(regexp_replace(replace(split_part(reason, ':', 1), 'ISO 8601', '<iso-standard>'),
                                                 '\d+', 'N', 'g'), '<iso-standard>', 'ISO 8601') AS kind, count(*) AS n
                FROM quality.quarantine WHERE run_id = $run_id AND source_file = $file
                  AND NOT (input = 'orders' AND regexp_full_match(reason, $set_aside))
                GROUP BY kind ORDER BY n DESC, kind LIMIT 2""",
            {"run_id": run_id, "file": worst["source_file"], "set_aside": SET_ASIDE_ONLY}).fetchall()
    return ", ".join(f"{kind} {n / worst['rows_read']:.1%}" for kind, n in kinds)


def _besides(worst: dict) -> str:
    set_aside = worst["rows_set_aside"]
    if not set_aside:
        return ""
    return f" (besides {set_aside:,} set aside: cancelled, returned, free or without a customer id)"


def _over_the_limit(worst: dict, limit: float, reasons: str = "") -> str:
    why = f"; most of them: {reasons}" if reasons else ""
    return (f"{worst['source_file']}: {worst['share']:.1%} of rows quarantined{_besides(worst)}, above "
            f"quality.max_quarantine_share {limit:.1%}{why}")


def _over_the_limit_by_chance(worst: dict, limit: float, reasons: str, files: int) -> str:
    """`day.csv: 2 of 20 rows quarantined (10.0%), above quality.max_quarantine_share 5.0%, but too few rows to call
    the export broken (2.8%–30.1% at 95% confidence): loaded; ...`"""
    counted = worst["rows_quarantined"] - worst["rows_set_aside"]
    others = f"; {files - 1} more file(s) like it" if files > 1 else ""
    why = f"; most of them: {reasons}" if reasons else ""
    return (f"{worst['source_file']}: {counted:,} of {worst['rows_read']:,} rows quarantined ({worst['share']:.1%})"
            f"{_besides(worst)}, above quality.max_quarantine_share {limit:.1%}, but too few rows to call the export "
            f"broken ({interval_text(worst['bounds'])}): loaded{why}{others}")


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


@dg.asset_check(asset=dg.AssetKey(["staging", "order_lines"]), blocking=False)
def amount_is_a_line_amount(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                            source: SourceResource) -> dg.AssetCheckResult:
    """The mapped amount is each line's own, not the order's total repeated on every line: a warning when at least
    ORDER_TOTAL_SHARE of the (at least ORDER_TOTAL_MIN_ORDERS) orders whose lines differ have one amount on all of
    them. The long shape only; a wide export has one row per basket."""
    if source.load().shape != "long":
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN, description="wide shape")
    with warehouse.connect(read_only=True) as con:
        evidence = order_total_evidence(con)
    looks_like_totals = evidence.looks_like_totals
    return dg.AssetCheckResult(
        passed=not looks_like_totals, severity=dg.AssetCheckSeverity.WARN,
        description=None if not looks_like_totals else (
            f"amount is the same on every line of {evidence.same / evidence.orders:.0%} of the {evidence.orders:,} "
            f"orders whose lines differ{_sampled(evidence)} (order {evidence.example}: {evidence.example_amount:g} "
            f"on each of {evidence.example_lines} lines): it looks like the order's total repeated on each line, "
            "which counts it once per line; map the line's own amount, or unit_price (and quantity) and leave amount "
            "out"),
        metadata={"orders_with_differing_lines": evidence.orders, "same_amount_on_every_line": evidence.same,
                  "lines": evidence.lines, "orders_sampled_one_in": evidence.sample_every},
    )


def _sampled(evidence) -> str:
    return "" if evidence.sample_every == 1 else f" (judged on about 1 order in {evidence.sample_every}, by order id)"


# Exact copies of a line within one file: dropped by default (orders.exact_duplicates: drop), which is right for an
# export that repeats rows, and wrong for a till that writes each scan of the same item as a line of its own (a
# trial's POS lost 492 lines, 5.2% of its revenue, with only "492 duplicates removed" in the summary). Copies across
# files (overlapping exports) are what dropping is for, and are not judged.
COPIES_WITHIN_A_FILE_SQL = """
SELECT d.source_file, count(*) AS copies, sum(l.amount) AS amount,
       (SELECT sum(k.amount) FROM staging.order_lines k WHERE k._source_file = d.source_file) AS kept_amount
FROM quality.removed_duplicates d
JOIN staging.order_lines l ON l._source_file = d.duplicate_of_file AND l._source_row = d.duplicate_of_row
WHERE d.run_id = ? AND d.input = 'orders' AND d.kind = 'exact' AND d.source_file = d.duplicate_of_file
GROUP BY d.source_file ORDER BY copies DESC, d.source_file"""


@dg.asset_check(asset=dg.AssetKey(["staging", "order_lines"]), blocking=False)
def exact_copies_within_a_file(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                               source: SourceResource) -> dg.AssetCheckResult:
    """A warning when this run dropped order lines as exact copies of an earlier line of the same file, with the
    amount they carried: real repeated scans, if that is what they are, are lost revenue. The long shape only (a
    wide export's baskets cannot be kept twice)."""
    config = source.load()
    if config.shape != "long" or config.orders.exact_duplicates == "keep":
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   description="identical lines are kept" if config.shape == "long" else "wide shape")
    with warehouse.connect(read_only=True) as con:
        # Most runs drop no copy: the count spares them a join over every staged line (8.85M at L).
        copied = con.execute("SELECT count(*) FROM quality.removed_duplicates WHERE run_id = ? AND input = 'orders' "
                             "AND kind = 'exact' AND source_file = duplicate_of_file",
                             [context.run.run_id]).fetchone()[0]
        files = con.execute(COPIES_WITHIN_A_FILE_SQL, [context.run.run_id]).fetchall() if copied else []
    description = None
    if files:
        source_file, copies, amount, kept = files[0]
        amount, kept = amount or 0.0, kept or 0.0
        share = f", {amount / (amount + kept):.1%} of the file's" if amount + kept > 0 else ""
        more = f"; {len(files) - 1} more file(s) like it" if len(files) > 1 else ""
        description = (f"{copies:,} order line(s) of {source_file} were dropped as exact copies of an earlier line of "
                       f"the same file ({amount:,.2f} in amount{share}){more}: if they are real repeated scans of one "
                       "item, set orders.exact_duplicates: keep, or map a column that tells the lines apart as "
                       "orders.columns.line_id")
    return dg.AssetCheckResult(
        passed=not files, severity=dg.AssetCheckSeverity.WARN, description=description,
        metadata={"files": len(files), "lines_dropped": sum(f[1] for f in files),
                  "amount_dropped": float(sum(f[2] or 0.0 for f in files))},
    )


@dg.asset_check(asset=dg.AssetKey(["staging", "order_lines"]), blocking=False)
def free_lines_within_reason(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                             source: SourceResource) -> dg.AssetCheckResult:
    """A warning when more of this run's order rows were set aside as free lines (amount 0) than a shop gives away
    (line_amounts.FREE_LINES_WARN_SHARE): the mapped amount is most likely a discount or fee column, 0 on most lines,
    and the rest count the discount as their revenue. A run that keeps free lines (orders.free_lines: keep) sets
    none aside."""
    config = source.load()
    with warehouse.connect(read_only=True) as con:
        found = free_lines(con, context.run.run_id)
    return dg.AssetCheckResult(
        passed=not found.too_many, severity=dg.AssetCheckSeverity.WARN,
        description=found.warning(amount_source(config.orders.columns)) if found.too_many else None,
        metadata={"order_rows": found.read, "free_lines": found.free},
    )


@dg.asset_check(asset=dg.AssetKey(["staging", "customers"]), blocking=False)
def customer_id_names_a_person(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                               source: SourceResource) -> dg.AssetCheckResult:
    """A warning when the customer id is mapped from a column named like a place (a postal code, a city, an
    address), or when enough orders have a masked id (用户****): either way one "customer" is several buyers, and no
    id looks wrong (assets/staging/place_keys.py)."""
    config = source.load()
    with warehouse.connect(read_only=True) as con:
        masked = masked_ids(con)
    warnings = [w for w in (place_key_warning(config), masked.warning()) if w]
    return dg.AssetCheckResult(
        passed=not warnings, severity=dg.AssetCheckSeverity.WARN, description="; ".join(warnings) or None,
        metadata={"place_columns": ", ".join(column for _, column in place_named_customer_ids(config)),
                  "orders_with_masked_ids": masked.masked},
    )


CHECKS = [load_audit_identity, quarantine_share_within_limit, category_count_within_limit, amount_is_a_line_amount,
          exact_copies_within_a_file, free_lines_within_reason, customer_id_names_a_person]
