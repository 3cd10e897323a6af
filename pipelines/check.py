"""`persona check`: a dry run of a source config on a sample of its files, in seconds whatever their size.

The sample goes through the pipeline's own code, so a mistake fails or warns as it would in a run:
- the raw layer reads and maps it (assets/raw/mapping.py `stage_files`: the readers, the mapping, malformed
  lines, missing columns, PII) and writes the raw tables (assets/raw/tables.py), in an in-memory DuckDB;
- staging builds on it whole (assets/staging/build.py `build_staging`: the typing rules of typed.py with
  token_parameters, product tables, duplicates, quarantine and the load audit), so a rule staging gains is
  checked here without a change;
- the features layer computes the customer features from it (assets/features/customer_features.py).

The blocking checks of a run are then judged on the sample: quarantine share per file, key share of the raw
suites, distinct categories, rows left, feature columns left. A file of up to SAMPLE_ROWS rows is read whole; of
a larger one, SAMPLE_ROWS rows spread over it (check_sample.py `spread`: thin slices from its start to its end; a
CSV's from byte offsets, so it is never read whole); of a glob or landing folder, the first and last
FILES_AT_EACH_END files. A share measured on a sample fails only when its 95% Wilson interval lies beyond the limit
(pipelines/check_report.py `judge`).
Great Expectations and scikit-learn are never imported (3-4 s each); the report's data and text are
pipelines/check_report.py.
"""

from __future__ import annotations

import re
import tempfile
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl

from assets.features.customer_features import build_customer_features, feature_family
from assets.raw.files import write_raw_table
from assets.raw.mapping import stage_files
from assets.raw.readers import SOURCE_FILE, SOURCE_ROW, IngestError
from assets.raw.tables import write_malformed_lines, write_manifest
from assets.staging.build import build_staging
from assets.staging.fill_down import filled_rows
from assets.staging.line_amounts import amount_source, free_lines
from assets.staging.place_keys import masked_ids, place_key_warning
from assets.staging.rules import GUEST_REASON_OPENING, SET_ASIDE_ONLY, STATUS_REASON_OPENINGS
from pipelines.check_report import (
    SAMPLE_ROWS,
    VERDICTS,
    CheckReport,
    FileSample,
    InputReport,
    category_given_by,
    field_lines,
    judge,
    within,
)
from pipelines.check_sample import Sampled, _sample_copy, _shown, pick_files
from pipelines.config_money import decimal_comma_reading, mixed_currencies
from pipelines.config_order_lines import STORE_NAME
from pipelines.config_values import no_purchase, refunded_line
from pipelines.core.config import (
    CUSTOMER_FIELDS,
    CUSTOMER_REQUIRED,
    LONG_ORDER_FIELDS,
    PRODUCT_FIELDS,
    PRODUCT_REQUIRED,
    WIDE_ORDER_FIELDS,
    ConfigError,
    FileSource,
    SourceConfig,
)
from pipelines.core.partitions import check_days_in_range
from pipelines.core.resources import RAW_CATALOG, WAREHOUSE_SCHEMAS
from pipelines.core.sql import table_columns

CHECK_RUN_ID = "persona-check"
# The key fields of the raw order suite (quality/suites.py raw_orders_suite): those the config requires must be
# carried by quality.min_key_share of the rows. A copy of the suite's list (made when importing the suite module
# imported Great Expectations, which it now does only when a suite is built).
SUITE_KEYS = ("order_id", "customer_id", "order_ts", "category", "amount")
FAMILIES = ("demographics", "categories", "rfm", "payment")
PROFILE_FIELDS_SHOWN = ("age", "income", "gender", "home_owner")
SHARED_ORDER_ID = "order_id used by another customer"  # the reason assets/staging/keys.py quarantines it with


class CheckError(ValueError):
    """The check stops: a file that does not read, a mapping that fails, staging that fails on the sample."""


def _as_file_rows(frame: pl.DataFrame, entry: dict, sampled: Sampled) -> pl.DataFrame:
    """The copy's rows (and malformed lines) numbered as in the file."""
    rows = pl.Series(sampled.rows, dtype=pl.Int64)
    entry["malformed"] = [{**m, "row": rows[min(m["row"], len(rows)) - 1], "line": sampled.file_line(m["line"])[0]}
                          for m in entry.get("malformed", [])]
    return frame.with_columns(rows.gather(frame[SOURCE_ROW].clip(1, len(rows)) - 1).alias(SOURCE_ROW))


def sample_input(key: str, source: FileSource, files: list[tuple[Path, date | None]], allowed, required,
                 pii: dict[str, str], scratch: Path) -> tuple[InputReport, list[Path], list[dict]]:
    """Read and map a sample of one input's files as a run would (stage_files); the staged Parquet files name
    the shop's files and their row numbers, as do errors."""
    chosen = pick_files(files)
    copies: dict[Path, tuple[Path, Sampled]] = {}
    readable: list[tuple[Path, date | None]] = []
    for index, (path, day) in enumerate(chosen):
        try:
            sampled = _sample_copy(path, source, scratch / key / str(index) / path.name)
        except IngestError as exc:
            raise CheckError(str(exc)) from None
        copies[sampled.copy] = (path, sampled)
        readable.append((sampled.copy, day))
    try:
        staged, manifest = stage_files(readable, source, allowed, required, key, scratch / key, pii)
    except (IngestError, ConfigError) as exc:
        raise CheckError(_shown(str(exc), copies)) from None
    samples, warnings = [], []
    for (copy, _), target, entry in zip(readable, staged, manifest, strict=True):
        path, sampled = copies[copy]
        frame = pl.read_parquet(target)
        total, how = sampled.total, sampled.how
        if copy == path:  # read whole: keep evenly spaced rows
            total = frame.height
            if total > SAMPLE_ROWS:
                frame = frame[[i * total // SAMPLE_ROWS for i in range(SAMPLE_ROWS)]]
                how = f"1 row in {total / SAMPLE_ROWS:.1f}, evenly spaced"
        elif sampled.rows is not None:
            frame = _as_file_rows(frame, entry, sampled)
        frame.with_columns(pl.lit(str(path)).alias(SOURCE_FILE)).write_parquet(target)
        malformed = len(entry.get("malformed", []))
        rows = frame.height + malformed
        entry.update(source_file=str(path), rows_read=rows)
        samples.append(FileSample(path, rows, rows if total is None else total, sampled.estimated, malformed, how))
        warnings += sampled.warnings
    report = InputReport(key, samples, len(files), rows=sum(s.rows for s in samples),
                         ignored=sorted({c for entry in manifest for c in entry["ignored_columns"]}),
                         warnings=warnings)
    return report, staged, manifest


def _inputs(config: SourceConfig) -> list[tuple]:
    """(key, source, files with their landing day, contract fields, required fields, raw table columns)."""
    if config.daily:
        order_files = [(path, day) for day, paths in config.order_files_by_day().items() for path in paths]
    else:
        order_files = [(path, None) for path in config.order_files()]
    order_fields = LONG_ORDER_FIELDS if config.shape == "long" else WIDE_ORDER_FIELDS
    return [
        ("orders", config.orders, order_files, order_fields, config.order_required(),
         [*order_fields, *config.orders.category_columns]),
        ("customers", config.customers, [(p, None) for p in config.customer_files()], CUSTOMER_FIELDS,
         CUSTOMER_REQUIRED, CUSTOMER_FIELDS),
        ("products", config.products, [(p, None) for p in config.product_files()], PRODUCT_FIELDS,
         PRODUCT_REQUIRED, PRODUCT_FIELDS),
    ]


# --- the check --------------------------------------------------------------------------------------------------

def run_check(config: SourceConfig, run_started: datetime | None = None) -> CheckReport:
    """Sample, stage and measure; raises CheckError when a run would stop before staging (or in it)."""
    if config.daily:
        # A run refuses landing days outside the Dagster partitions before it reads anything: so does the check.
        try:
            check_days_in_range(sorted(config.order_files_by_day()))
        except ValueError as exc:
            raise CheckError(f"{config.source_path}: orders.path: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="persona-check-") as scratch:
        con = duckdb.connect()
        try:
            con.execute(f"ATTACH ':memory:' AS {RAW_CATALOG}")
            for schema in WAREHOUSE_SCHEMAS:
                con.execute(f"CREATE SCHEMA {schema}")
            inputs = []
            for key, source, files, allowed, required, columns in _inputs(config):
                staged, manifest = [], []
                if source is not None:
                    report, staged, manifest = sample_input(key, source, files, allowed, required,
                                                            config.privacy.pii_columns, Path(scratch))
                    report.fields = field_lines(source, allowed, staged,
                                                config.orders.category_columns if key == "orders" else [],
                                                category_given_by(config) if key == "orders" else [])
                    inputs.append(report)
                write_raw_table(con, f"raw.{key}", staged, columns)
                write_malformed_lines(con, f"raw.{key}", manifest, None)
                write_manifest(con, CHECK_RUN_ID, key, manifest, None)
            try:
                build_staging(con, config, CHECK_RUN_ID, run_started=run_started)
            except (duckdb.Error, ValueError) as exc:
                raise CheckError(f"staging fails on the sample: {str(exc).splitlines()[0]}") from None
            return measure(con, config, inputs)
        finally:
            con.close()


def reason_kind(reason: str, value: str | None) -> str:
    """A quarantine reason without its variable part: the raw value, row, line and column numbers, and the customers
    and file a shared order id names. A row failing several rules has them all in one reason (joined by '; '): it is
    one kind, so a row counts once. A cancelled order's or refunded line's status stays, "cancelled order (status
    交易关闭)": it shows which of the export's statuses the config takes for cancellations, and there are only as
    many as it lists. The words before it stay too: a status `cancelled` made them "<value> order". So does a guest
    id (orders.guest_customer_ids), of which there are as few."""
    openings = (*STATUS_REASON_OPENINGS, GUEST_REASON_OPENING)
    kept = "|".join(rf"{re.escape(opening)}[^)]*\)" for opening in openings)
    return "".join(part if part.startswith(openings) else _without_variable_part(part, value)
                   for part in re.split(f"({kept})", reason))


def _without_variable_part(reason: str, value: str | None) -> str:
    if value:
        reason = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", "<value>", reason)
    reason = re.sub(r"\b(row|line|column) \d+", r"\1 N", reason)
    reason = re.sub(r"\b(row N) of [^)]+\)", r"\1 of <file>)", reason)
    return re.sub(r"\bcustomer [^\s),;]+", "customer <id>", reason)


def measure(con: duckdb.DuckDBPyConnection, config: SourceConfig, inputs: list[InputReport]) -> CheckReport:
    report = CheckReport(config, inputs)
    quality = config.quality
    quarantine = con.execute("SELECT input, source_file, column_name, raw_value, reason FROM quality.quarantine "
                             "WHERE run_id = ?", [CHECK_RUN_ID]).fetchall()
    audit = con.execute("SELECT input, source_file, rows_read, rows_quarantined, rows_set_aside "
                        "FROM quality.load_audit WHERE run_id = ?", [CHECK_RUN_ID]).fetchall()
    # A sampled product table lacks skus that the whole one has: lines quarantined for their sku say little.
    products = report.input("products")
    partial_products = products is not None and not products.whole
    for item in inputs:
        kinds: dict[str, int] = {}
        kinds_by_file: dict[str, dict[str, int]] = {}  # a failing file's message names its own reasons
        columns: dict[str, int] = {}
        for input_name, source_file, failed, value, reason in quarantine:
            if input_name == item.key:
                kind = reason_kind(reason, value)
                kinds[kind] = kinds.get(kind, 0) + 1
                if value is not None:
                    item.examples.setdefault(kind, value)
                if item.key != "orders" or not re.fullmatch(SET_ASIDE_ONLY, reason):  # the reasons that count
                    in_file = kinds_by_file.setdefault(source_file, {})
                    in_file[kind] = in_file.get(kind, 0) + 1
                # Staging names every column a row fails (joined by ', '); a malformed line has none.
                for column in (failed or "(whole line)").split(", "):
                    columns[column] = columns.get(column, 0) + 1
        item.reasons = sorted(kinds.items(), key=lambda pair: (-pair[1], pair[0]))
        item.columns = sorted(columns.items(), key=lambda pair: (-pair[1], pair[0]))
        excused = {f: 0 for f in (s.path for s in item.files)}
        if partial_products and item.key == "orders":
            # A line whose sku the sampled product rows lack, failing nothing else (its category is missing
            # because of it): the whole table may hold the sku.
            for input_name, source_file, columns, _, _ in quarantine:
                failed = set((columns or "").split(", "))
                if input_name == "orders" and "sku" in failed and failed <= {"sku", "category"} \
                        and Path(source_file) in excused:
                    excused[Path(source_file)] += 1
        whole = {s.path: s.whole for s in item.files}
        limit = quality.max_quarantine_share
        for input_name, source_file, rows_read, quarantined, set_aside in audit:
            if input_name != item.key or not rows_read:
                continue
            # Cancelled orders and returns are quarantined but do not count against the limit, as in a run.
            judged = quarantined - set_aside - excused.get(Path(source_file), 0)
            verdict, bounds = judge(judged, rows_read, limit, whole.get(Path(source_file), True), above=True)
            said = f"{source_file}: {judged / rows_read:.1%} of the {rows_read:,} sampled rows would be quarantined"
            item.shares.append((Path(source_file), rows_read, quarantined, quarantined - judged,
                                VERDICTS[verdict] + within(bounds)))
            if verdict == "fail":
                in_file = sorted(kinds_by_file.get(source_file, {}).items(), key=lambda pair: (-pair[1], pair[0]))
                top = ", ".join(f"{kind} {rows / rows_read:.1%}" for kind, rows in in_file[:2])
                report.failures.append(f"{said} ({top}), above quality.max_quarantine_share {limit:.1%}"
                                       + within(bounds, "; the whole file: ", "") + _store_hint(config, item, in_file))
            elif verdict == "near":
                report.warnings.append(f"{said}{within(bounds, ' (the whole file: ')}, near "
                                       f"quality.max_quarantine_share {limit:.1%}: a run may pass or fail")
            elif verdict == "by chance":  # as a run judges it: above the limit, too few rows to call the export broken
                report.warnings.append(f"{said}, above quality.max_quarantine_share {limit:.1%}, but too few rows to "
                                       f"call the export broken{within(bounds)}: a run loads it and warns")
        if partial_products and item.key == "orders" and any(excused.values()):
            report.warnings.append(
                f"orders: {sum(excused.values()):,} sampled lines have a sku outside the sampled product rows; "
                "the whole product table may hold them, so they are not counted against the limit here")
        report.warnings += item.warnings
        malformed = sum(s.malformed for s in item.files)
        if malformed:
            report.warnings.append(f"{item.key}: {malformed:,} malformed line(s) in the sample; a run quarantines "
                                   "them and loads the rest")
    # The run's customer_id_names_a_person warnings: a place's column, or masked ids.
    report.warnings += [w for w in (place_key_warning(config), masked_ids(con).warning(sampled=True)) if w]
    _judge_rows_and_keys(con, report)
    _judge_categories(con, report)
    _statuses(con, report)
    _money_texts(con, report)
    _free_lines(con, report)
    _coverage(con, report)
    _families(con, report)
    return report


def _statuses(con: duckdb.DuckDBPyConnection, report: CheckReport) -> None:
    """A warning for each sampled order or line status that reads as no purchase (init's guesses: cancelled,
    refunded, not paid yet; a line refunded) but is not listed, so a run counts its rows as sales. init reads the
    top of a file: an oldest-first export shows its unpaid orders (等待买家付款) only in its last days, which
    check's slices reach."""
    config = report.config
    if config.shape != "long":
        return
    present = set(table_columns(con, "raw.orders") or [])
    for field_name, key, reads_so, what in (
            ("status", "cancelled_statuses", no_purchase, "an order that is no purchase (cancelled, refunded in "
                                                          "full or not paid yet)"),
            ("line_status", "refunded_line_statuses", refunded_line, "a refunded line")):
        if field_name not in present:
            continue
        listed = {status.strip().upper() for status in getattr(config.values, key)}
        seen = con.execute(f"SELECT trim({field_name}) AS status, count(*) AS n FROM raw.orders "
                           f"WHERE nullif(trim({field_name}), '') IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
        for status, rows in seen:
            if status.upper() not in listed and reads_so(status.upper()):
                report.warnings.append(
                    f"orders: {field_name} {status!r} ({rows:,} sampled rows) reads like {what}, but it is not in "
                    f"values.{key}: a run counts its rows as sales; list it there if it is one")


def _money_texts(con: duckdb.DuckDBPyConnection, report: CheckReport) -> None:
    """Warnings on how the sampled amounts and prices are written: in more than one currency ($ and £, which a run
    adds up as one number), or with a decimal comma (init's reading, config_match.decimal_comma_reading) while
    values.decimal_comma is not set: 1.234,56 is then no number, and $ 12.990 (twelve thousand) reads as 12.99, a
    thousand times too small without a word."""
    present = set(table_columns(con, "raw.orders") or [])
    decimal_comma_said = report.config.values.decimal_comma
    for field_name in ("amount", "unit_price"):
        if field_name not in present:
            continue
        mixed = mixed_currencies([row[0] for row in con.execute(
            f"SELECT trim({field_name}) FROM raw.orders WHERE nullif(trim({field_name}), '') IS NOT NULL").fetchall()])
        if mixed:
            report.warnings.append(f"orders: {field_name} holds more than one currency ({mixed}): a run adds them up "
                                   "as one number")
        if decimal_comma_said:
            continue
        values = [row[0] for row in con.execute(
            f"SELECT DISTINCT trim({field_name}) AS v FROM raw.orders WHERE nullif(trim({field_name}), '') IS NOT NULL "
            "ORDER BY v LIMIT 2000").fetchall()]
        found = decimal_comma_reading(values)
        if found is not None:
            example, certain = found
            said = (f"is written with a decimal comma (e.g. {example!r}), which is no number unless" if certain else
                    f"has three digits after every point (e.g. {example!r}): if the points separate thousands, a run "
                    f"reads {example!r} as {float(re.sub(r'[^0-9.-]', '', example)):g}, a "
                    "thousand times too small, unless")
            report.warnings.append(f"orders: {field_name} {said} values.decimal_comma: true is set")
            decimal_comma_said = True


def _free_lines(con: duckdb.DuckDBPyConnection, report: CheckReport) -> None:
    """The run's warning on free lines (quality/checks/staging.py, free_lines_within_reason), on the sample: a
    discount column mapped as the amount makes most lines free, and a run passes with their discounts as revenue."""
    found = free_lines(con, CHECK_RUN_ID)
    if found.too_many:
        report.warnings.append(f"orders: {found.warning(amount_source(report.config.orders.columns))}")


def _store_hint(config: SourceConfig, item: InputReport, kinds: list[tuple[str, int]]) -> str:
    """When an order id shared by customers is a failing file's first reason and the orders carry a store column
    they do not map: tickets numbered per store (the same ticket number in two stores is two orders), which
    orders.order_id_within tells apart."""
    if item.key != "orders" or config.orders.order_id_within or not kinds or not kinds[0][0].startswith(
            SHARED_ORDER_ID):
        return ""
    store = next((c for c in item.ignored if STORE_NAME.search(c)), None)
    if store is None:
        return ""
    return (f"; tickets numbered per store? the same order id in two stores is two orders: set orders.order_id_within:"
            f" [{store}] to make it unique within its {store}")


def _judge_rows_and_keys(con: duckdb.DuckDBPyConnection, report: CheckReport) -> None:
    config, quality = report.config, report.config.quality
    keyed = [("orders", [k for k in SUITE_KEYS if k in config.order_required()])]
    if config.customers is not None:
        keyed.append(("customers", ["customer_id"]))
    for key, fields in keyed:
        item = report.input(key)
        rows = filled_rows(f"raw.{key}", config) if key == "orders" else f"raw.{key}"  # as the raw suite reads them
        counts = con.execute(f"SELECT count(*), {', '.join(f'count({f})' for f in fields)} FROM {rows}").fetchone()
        if counts[0] == 0:
            report.failures.append(f"{key}: no rows in the sampled file(s)")
            continue
        item.key_shares = [(name, count / counts[0]) for name, count in zip(fields, counts[1:], strict=True)]
        limit = quality.min_key_share
        for name, count in zip(fields, counts[1:], strict=True):
            verdict, bounds = judge(count, counts[0], limit, item.whole, above=False)
            said = f"{key}: {name} is carried by {count / counts[0]:.1%} of the sampled rows"
            if verdict == "fail":
                report.failures.append(f"{said}, below quality.min_key_share {limit:.1%} (the raw suite blocks the "
                                       f"run){within(bounds, '; every row of the file(s) sampled: ', '')}")
            elif verdict == "near":
                report.warnings.append(f"{said}{within(bounds, ' (every row of the file(s) sampled: ')}, near "
                                       f"quality.min_key_share {limit:.1%}: a run may pass or fail")
    dates = con.execute("SELECT min(order_ts), max(order_ts), count(*) FROM staging.orders").fetchone()
    report.orders_loaded = dates[2]
    report.dates = (dates[0], dates[1]) if dates[0] is not None else None
    if report.orders_loaded == 0 and report.input("orders").rows:
        report.failures.append("orders: no sampled row survives staging (every one is quarantined)")


def _judge_categories(con: duckdb.DuckDBPyConnection, report: CheckReport) -> None:
    """Distinct categories of the staged order lines, as the blocking check category_count_within_limit counts
    them (the sample's are a floor of the run's)."""
    if not report.config.has_categories:
        return
    report.categories = con.execute(
        "SELECT category, count(*) AS lines FROM staging.order_lines WHERE category IS NOT NULL "
        "GROUP BY category ORDER BY lines DESC, category").fetchall()
    limit = report.config.quality.max_categories
    if len(report.categories) > limit:
        top = ", ".join(f"{name} ({lines:,})" for name, lines in report.categories[:5])
        report.failures.append(
            f"orders: {len(report.categories):,} distinct categories in the sample, above quality.max_categories "
            f"{limit}; most frequent: {top}. A free-text column mapped as the category makes one feature per value: "
            "give a product table (products:) or orders.category_rules on the description")


def _coverage(con: duckdb.DuckDBPyConnection, report: CheckReport) -> None:
    """Order customers with a row in the customer file (the staging suite's in_customer_file, a warning)."""
    config = report.config
    if config.shape != "long" or config.customers is None:
        return
    report.coverage = con.execute("""
        SELECT count(*), count(*) FILTER (WHERE c._source_file IS NOT NULL)
        FROM (SELECT DISTINCT customer_id FROM staging.orders) o LEFT JOIN staging.customers c USING (customer_id)
    """).fetchone()
    customers, profiled = report.coverage
    limit = config.quality.min_profile_coverage
    if customers and profiled / customers < limit:
        partial = "" if report.input("customers").whole else \
            " (the customer file was sampled too: the run's share can only be higher)"
        report.warnings.append(f"customers: {profiled / customers:.1%} of the {customers:,} order customers in the "
                               f"sample have a profile row, below quality.min_profile_coverage {limit:.1%}{partial}")


def _not_fed(config: SourceConfig, family: str, columns: list[str], staged: int) -> str:
    """Why a family chosen in model.features feeds no column on the sample."""
    if not staged:
        return "no order of the sample is staged"
    if family == "categories" and not config.has_categories:
        return "the export declares no category (orders.columns.category: null)"
    if family == "demographics" and config.shape == "long" and config.customers is None:
        return "no customer file (customers:), so no profile"
    if family == "payment" and not columns:
        return "the orders carry no payment method"
    if not columns:
        return "no such column in the sample's features"
    if family == "demographics":
        return f"no profile values ({', '.join(PROFILE_FIELDS_SHOWN)}) vary in the sample"
    return "every column empty or constant in the sample"


def _families(con: duckdb.DuckDBPyConnection, report: CheckReport) -> None:
    """The feature families the model would cluster on: those of model.features with a column that carries
    information (two distinct known values, as assets/model/preparation.py selects them)."""
    config = report.config
    features = build_customer_features(con) if report.orders_loaded else pl.DataFrame()
    used_any = False
    for family in FAMILIES:
        columns = [c for c in features.columns if feature_family(c) == family]
        if family not in config.model.features:
            report.families.append((family, "not chosen", "not in model.features"))
            continue
        bounds = features.select([pl.col(c).min().alias(f"lo{i}") for i, c in enumerate(columns)]
                                 + [pl.col(c).max().alias(f"hi{i}") for i, c in enumerate(columns)])
        row = bounds.row(0) if columns else ()
        used = [c for i, c in enumerate(columns) if row[i] is not None and row[i] != row[len(columns) + i]]
        if used:
            used_any = True
            shown = ", ".join(used[:5]) + (f", … ({len(used)} columns)" if len(used) > 5 else "")
            report.families.append((family, "used", shown))
        else:
            report.families.append((family, "not fed", _not_fed(config, family, columns, report.orders_loaded)))
    if report.orders_loaded and not used_any:
        report.failures.append(f"no usable feature columns in model.features {list(config.model.features)} on the "
                               "sample: the model step would stop")
