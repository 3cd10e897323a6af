"""Nightly operations: daily partitions, idempotent reloads, incremental runs, atomic publishing of the warehouse and
its report, crash safety (kill -9 at several points), readers during a refresh, the landing sensor, the schedule and
the failure webhook."""

import hashlib
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.publish.swap import publish, published_version
from assets.report.facts import format_value
from assets.staging.typed import TYPED_LINES
from pipelines.automation import post_failure
from pipelines.core.config import ConfigError, files_by_day, load_source_config
from pipelines.core.faults import CRASH_POINTS
from pipelines.core.partitions import (
    DayWindow,
    snapshot_partition_key,
)
from pipelines.core.resources import (
    WORK_ONLY_TABLES,
    SourceResource,
    WarehouseResource,
    raw_file_for,
    raw_files_folder_for,
)
from pipelines.definitions import defs
from pipelines.planning import RANGE_END_TAG, RANGE_START_TAG, plan_run
from tests.conftest import DAYS, REPO_ROOT, daily_shop, materialize_graph, query, work_db, write_file


def day_folder(root: Path, day: date) -> Path:
    return root / "landing" / f"order_day={day}"


def hold_back(root: Path, day: date) -> Path:
    """Take a day's landing folder away (it 'arrives' later with `arrive`)."""
    held = root / "held" / day_folder(root, day).name
    held.parent.mkdir(exist_ok=True)
    shutil.move(day_folder(root, day), held)
    return held


def arrive(root: Path, held: Path) -> None:
    shutil.move(held, root / "landing" / held.name)


def layer_counts(database: Path) -> dict[str, object]:
    return {
        "raw.orders": query(database, "SELECT count(*) FROM raw.orders")[0][0],
        "staging.order_lines": query(database, "SELECT count(*) FROM staging.order_lines")[0][0],
        "staging.orders": query(database, "SELECT count(*) FROM staging.orders")[0][0],
        "staging.customers": query(database, "SELECT count(*) FROM staging.customers")[0][0],
        "lines_per_day": query(database, "SELECT _partition_date, count(*) FROM staging.order_lines "
                                         "GROUP BY ALL ORDER BY 1"),
        "segmented": query(database, "SELECT count(*) FROM segments.customer_segments")[0][0],
    }


def order_lines(database: Path) -> list[tuple]:
    return query(database, "SELECT order_id, category, sku, customer_id, order_ts, quantity, amount, payment_method "
                           "FROM staging.order_lines ORDER BY ALL")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def report_files(reports: Path) -> dict[str, str]:
    """Every file reachable through a reports folder (the published one is a symlink), with its SHA-256."""
    return {str(path.relative_to(reports)): sha256(path) for path in sorted(reports.rglob("*")) if path.is_file()}


# --- daily paths ------------------------------------------------------------------------------------------------

def test_daily_path_groups_landing_files_by_day(tmp_path):
    for name in ("2026-01-02/a.csv", "2026-01-02/b.csv", "2026-01-01/a.csv", "notes/a.csv"):
        write_file(tmp_path / "in" / name, "x\n")
    by_day = files_by_day("in/{date}/*.csv", tmp_path, "shop.yaml: orders.path")
    assert by_day == {
        date(2026, 1, 1): [(tmp_path / "in/2026-01-01/a.csv").resolve()],
        date(2026, 1, 2): [(tmp_path / "in/2026-01-02/a.csv").resolve(), (tmp_path / "in/2026-01-02/b.csv").resolve()],
    }


def test_daily_path_with_an_impossible_day_names_the_file(tmp_path):
    write_file(tmp_path / "in" / "2026-02-30.csv", "x\n")
    with pytest.raises(ConfigError) as info:
        files_by_day("in/{date}.csv", tmp_path, "shop.yaml: orders.path")
    assert str(info.value) == (f"shop.yaml: orders.path: {tmp_path / 'in' / '2026-02-30.csv'}: '2026-02-30' is not "
                               "a calendar day (YYYY-MM-DD)")


def test_daily_path_matching_nothing_says_where_it_looked(tmp_path):
    with pytest.raises(ConfigError, match=r"no file matches 'in/\{date\}\.csv' \(looked for .*/in/YYYY-MM-DD\.csv\)"):
        files_by_day("in/{date}.csv", tmp_path, "shop.yaml: orders.path")


# --- partitions: idempotent reloads and incremental runs ---------------------------------------------------------

@pytest.fixture(scope="module")
def daily_run(tmp_path_factory):
    """Days 1-7 loaded and published; day 8 held back."""
    root = tmp_path_factory.mktemp("daily")
    config = daily_shop(root)
    held = hold_back(root, DAYS[-1])
    warehouse = root / "wh" / "warehouse.duckdb"
    result = materialize_graph(config, warehouse)
    assert result.success
    return root, config, warehouse, held, result


def test_reloading_a_day_leaves_every_count_unchanged(daily_run):
    root, config, warehouse, _, first_result = daily_run
    before = layer_counts(work_db(warehouse))
    assert [day for day, _ in before["lines_per_day"]] == DAYS[:-1]

    for first, last in ((DAYS[2], DAYS[2]), (DAYS[0], DAYS[3])):
        result = materialize_graph(config, warehouse, first=first, last=last)
        assert result.success
        assert layer_counts(work_db(warehouse)) == before
        # The published copy is the same data.
        assert order_lines(warehouse) == order_lines(work_db(warehouse))
        # This run read only its days' files, and audited exactly those: the customer snapshot is unchanged since
        # the first run, so it was neither read nor audited again.
        audited = query(work_db(warehouse), "SELECT input, parse_dirpath(source_file) FROM quality.load_audit "
                                            "WHERE run_id = ? ORDER BY 1, 2", [result.run_id])
        expected_days = [d for d in DAYS if first <= d <= last]
        assert [Path(p).name for i, p in audited if i == "orders"] == [f"order_day={d}" for d in expected_days]
        assert [i for i, _ in audited].count("customers") == 0
        assert query(work_db(warehouse), "SELECT run_id FROM raw.snapshot_loads WHERE table_name = 'raw.customers'") \
            == [(first_result.run_id,)]
        # Its rows are those the first run validated: the gate shows that run's outcomes (and validation time),
        # while the reloaded day's rows were validated again.
        outcomes = "SELECT expectation, success, element_count, validated_at FROM quality.validation_results " \
                   "WHERE run_id = ? AND suite = ? ORDER BY rowid"
        assert query(work_db(warehouse), outcomes, [result.run_id, "raw_customers"]) == \
            query(work_db(warehouse), outcomes, [first_result.run_id, "raw_customers"]) != []
        reloaded_day, first_day = (query(work_db(warehouse), outcomes, [run, "raw_orders"])[0][3]
                                   for run in (result.run_id, first_result.run_id))
        assert reloaded_day > first_day


def test_a_changed_customer_file_is_reloaded_and_restaged(daily_run):
    root, config, warehouse, _, _ = daily_run
    customers = Path(load_source_config(config).customer_files()[0])
    original, stat = customers.read_bytes(), customers.stat()
    header, first_row, *rest = original.decode("utf-8").splitlines(keepends=True)
    columns = header.strip().split(",")
    values = first_row.strip().split(",")
    customer_id, old_city = values[columns.index("customer_id")], values[columns.index("city")]
    values[columns.index("city")] = "Changed City"
    try:
        customers.write_text(header + ",".join(values) + "\n" + "".join(rest), encoding="utf-8")
        result = materialize_graph(config, warehouse, first=DAYS[2], last=DAYS[2])
        assert result.success
        work = work_db(warehouse)
        audited = query(work, "SELECT input, rows_read FROM quality.load_audit WHERE run_id = ? AND input = "
                              "'customers'", [result.run_id])
        assert audited == [("customers", len(rest) + 1)]
        # New rows, so the gate validated them itself.
        assert query(work, "SELECT count(*) FROM quality.validated_inputs WHERE run_id = ? AND suite = ?",
                     [result.run_id, "raw_customers"]) == [(1,)]
        assert query(work, "SELECT DISTINCT validated_at > (SELECT min(loaded_at) FROM raw.snapshot_loads) FROM "
                           "quality.validation_results WHERE run_id = ? AND suite = ?",
                     [result.run_id, "raw_customers"]) == [(True,)]
        assert query(work, "SELECT city FROM staging.customers WHERE customer_id = ?", [customer_id]) == \
            [("Changed City",)]
    finally:
        customers.write_bytes(original)
        os.utime(customers, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # Back to the original file (same size and time): reloaded again, since it differs from the last load.
    result = materialize_graph(config, warehouse, first=DAYS[2], last=DAYS[2])
    assert result.success
    assert query(work_db(warehouse), "SELECT city FROM staging.customers WHERE customer_id = ?", [customer_id]) == \
        [(old_city,)]


def test_nothing_is_pending_once_published(daily_run):
    _, config, warehouse, _, _ = daily_run
    assert plan_run(load_source_config(config), warehouse) is None


def test_a_changed_landing_file_makes_its_day_pending_again(daily_run, tmp_path):
    root, config, warehouse, _, _ = daily_run
    target = next(day_folder(root, DAYS[1]).glob("*.csv"))
    original, stat = target.read_bytes(), target.stat()
    try:
        target.write_bytes(original + original.splitlines(keepends=True)[-1])
        plan = plan_run(load_source_config(config), warehouse)
        assert plan.window == DayWindow(DAYS[1], DAYS[1])
        assert plan.partition_key == str(DAYS[1]) and plan.tags == {}
    finally:
        target.write_bytes(original)
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert plan_run(load_source_config(config), warehouse) is None


def test_incremental_run_loads_only_the_new_day_and_matches_a_full_load(daily_run, tmp_path):
    root, config, warehouse, held, _ = daily_run
    arrive(root, held)
    plan = plan_run(load_source_config(config), warehouse)
    assert plan.window == DayWindow(DAYS[-1], DAYS[-1])

    result = materialize_graph(config, warehouse, first=plan.window.first, last=plan.window.last)
    assert result.success
    work = work_db(warehouse)
    # Earlier days were not read again: their files still carry the run that first loaded them.
    read_by = dict(query(work, "SELECT parse_dirpath(source_file), run_id FROM raw.source_files "
                               "WHERE input = 'orders'"))
    assert {run for path, run in read_by.items() if not path.endswith(str(DAYS[-1]))} != {result.run_id}
    assert read_by[str(day_folder(root, DAYS[-1]).resolve())] == result.run_id
    # The gate validated the new day's rows, not every day again.
    new_rows = query(work, "SELECT count(*) FROM raw.orders WHERE _partition_date = ?", [DAYS[-1]])[0][0]
    validated = query(work, "SELECT DISTINCT suite, element_count FROM quality.validation_results "
                            "WHERE run_id = ? AND suite IN ('raw_orders', 'staging_order_lines') "
                            "AND element_count IS NOT NULL ORDER BY 1", [result.run_id])
    new_lines = query(work, "SELECT count(*) FROM staging.order_lines WHERE _partition_date = ?", [DAYS[-1]])[0][0]
    assert validated == [("raw_orders", new_rows), ("staging_order_lines", new_lines)]
    # Its outcomes name the day they cover; the earlier days keep the outcomes of the runs that validated them,
    # and the gate's table and checks say which run validated which day.
    assert query(work, "SELECT DISTINCT suite, first_day, last_day FROM quality.validation_results WHERE run_id = ? "
                       "AND first_day IS NOT NULL ORDER BY 1", [result.run_id]) == \
        [(suite, DAYS[-1], DAYS[-1]) for suite in ("raw_orders", "staging_order_lines", "staging_orders")]
    by_day = query(work, "SELECT day, run_id, passed FROM quality.validated_days WHERE suite = 'raw_orders' "
                         "ORDER BY day")
    assert [day for day, _, _ in by_day] == DAYS and all(passed for _, _, passed in by_day)
    assert [day for day, run, _ in by_day if run == result.run_id] == [DAYS[-1]]
    for day, run, _ in by_day[:-1]:  # each earlier day: the run that loaded it last, whose outcomes name it
        assert query(work, "SELECT count(*) > 0 FROM quality.validation_results WHERE run_id = ? AND suite = "
                           "'raw_orders' AND (first_day IS NULL OR ? BETWEEN first_day AND last_day)",
                     [run, day]) == [(True,)]
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "raw_orders_expectations")
    metadata = {key: value.value for key, value in check.metadata.items()}
    assert metadata["days_validated_by_this_run"] == str(DAYS[-1])
    assert metadata["days_kept_from_earlier_runs"] == len(DAYS) - 1
    assert sum(metadata["kept_days_by_run"].values()) == len(DAYS) - 1
    assert metadata["loaded_days_without_outcomes"] == 0

    # A full load of all eight days in one run gives exactly the same staged rows and customers.
    full = tmp_path / "full" / "warehouse.duckdb"
    assert materialize_graph(config, full).success
    assert order_lines(warehouse) == order_lines(full)
    assert layer_counts(work) == layer_counts(work_db(full))
    # Profiles kept from the first run (only order-only customers moved) and the order aggregates recomputed for
    # the new day's customers alone equal a rebuild from every day.
    assert query(warehouse, "SELECT * FROM staging.customers ORDER BY customer_id") == \
        query(full, "SELECT * FROM staging.customers ORDER BY customer_id")
    assert query(work, "SELECT count(*) FROM raw.snapshot_loads WHERE run_id = ?", [result.run_id]) == [(0,)]
    for table in ("features.customer_order_stats", "features.customer_features"):
        incremental, rebuilt = (query(db, f"SELECT * FROM {table} ORDER BY customer_id") for db in (warehouse, full))
        # Sums of amounts may differ in the last bits: rows are added up in another order.
        assert incremental == [tuple(pytest.approx(v, rel=1e-12) if isinstance(v, float) else v for v in row)
                               for row in rebuilt]
    assert query(work, "SELECT count(*) FROM staging.changed_customers") == [(0,)]
    assert plan_run(load_source_config(config), warehouse) is None


def test_an_order_repeated_by_a_later_day_is_not_loaded_twice(tmp_path):
    config = daily_shop(tmp_path, customers=300, seed=8)
    first_file = next(day_folder(tmp_path, DAYS[0]).glob("*.csv"))
    repeated = first_file.read_text().splitlines()[1]
    second_file = next(day_folder(tmp_path, DAYS[1]).glob("*.csv"))
    with second_file.open("a") as handle:
        handle.write(repeated + "\n")
    warehouse = tmp_path / "warehouse.duckdb"
    assert materialize_graph(config, warehouse, first=DAYS[0], last=DAYS[0]).success
    result = materialize_graph(config, warehouse, first=DAYS[1], last=DAYS[7])
    assert result.success

    work = work_db(warehouse)
    rows = query(work, "SELECT parse_dirpath(source_file), parse_dirpath(duplicate_of_file), kind "
                       "FROM quality.removed_duplicates WHERE run_id = ?", [result.run_id])
    assert [(Path(a).name, Path(b).name, kind) for a, b, kind in rows] == [
        (f"order_day={DAYS[1]}", f"order_day={DAYS[0]}", "loaded_on_other_day")]
    assert query(work, "SELECT count(*) - count(DISTINCT (order_id, category, sku)) FROM staging.order_lines") == [(0,)]
    for read, loaded, quarantined, removed in query(
            work, "SELECT rows_read, rows_loaded, rows_quarantined, duplicates_removed FROM quality.load_audit "
                  "WHERE run_id = ?", [result.run_id]):
        assert read == loaded + quarantined + removed


def with_status_column(root: Path, cancelled_on: date) -> tuple[list[str], str]:
    """Give every landing file an order status column (交易成功), and make `cancelled_on`'s file repeat the first
    day's first order as cancelled (已取消), as a rolling export does; returns that order's lines and its id."""
    for day in DAYS:
        path = next(day_folder(root, day).glob("*.csv"))
        lines = path.read_text(encoding="utf-8").splitlines()
        path.write_text("\n".join([lines[0] + ",status", *(line + ",交易成功" for line in lines[1:])]) + "\n",
                        encoding="utf-8")
    first_day = next(day_folder(root, DAYS[0]).glob("*.csv")).read_text(encoding="utf-8").splitlines()[1:]
    order_id = first_day[0].split(",")[0]
    cancelled = [line.replace(",交易成功", ",已取消") for line in first_day if line.split(",")[0] == order_id]
    with next(day_folder(root, cancelled_on).glob("*.csv")).open("a", encoding="utf-8") as handle:
        handle.write("\n".join(cancelled) + "\n")
    return cancelled, order_id


def test_an_order_a_later_night_cancels_is_taken_back_as_a_full_reload_would(tmp_path):
    """A rolling export repeats an order of an earlier day as cancelled: the night takes its lines back (logged in
    quality.retracted_lines, said by the report), its customer's features follow, and loading every day at once
    gives the same order lines."""
    config = daily_shop(tmp_path, customers=300, seed=8)
    config.write_text(config.read_text(encoding="utf-8").replace(
        "  date_formats:", "  columns:\n    status: status\n  date_formats:"), encoding="utf-8")
    cancelled, order_id = with_status_column(tmp_path, DAYS[2])
    warehouse = tmp_path / "warehouse.duckdb"
    assert materialize_graph(config, warehouse, first=DAYS[0], last=DAYS[1]).success
    work = work_db(warehouse)
    customer = query(work, "SELECT customer_id FROM staging.orders WHERE order_id = ?", [order_id])[0][0]
    orders_before = query(work, "SELECT n_orders FROM features.customer_features WHERE customer_id = ?",
                          [customer])[0][0]
    night = materialize_graph(config, warehouse, first=DAYS[2], last=DAYS[2])
    assert night.success

    assert query(work, "SELECT count(*) FROM staging.order_lines WHERE order_id = ?", [order_id]) == [(0,)]
    assert query(work, "SELECT count(*) FROM staging.orders WHERE order_id = ?", [order_id]) == [(0,)]
    assert query(work, "SELECT count(*), min(reason), min(parse_filename(parse_dirpath(taken_back_by_file))) "
                       "FROM quality.retracted_lines WHERE run_id = ?", [night.run_id]) == [
        (len(cancelled), "cancelled order (status 已取消)", f"order_day={DAYS[2]}")]
    assert query(work, "SELECT n_orders FROM features.customer_features WHERE customer_id = ?",
                 [customer]) == [(orders_before - 1,)]
    for read, loaded, quarantined, removed in query(
            work, "SELECT rows_read, rows_loaded, rows_quarantined, duplicates_removed FROM quality.load_audit "
                  "WHERE run_id = ? AND input = 'orders'", [night.run_id]):
        assert read == loaded + quarantined + removed
    page = (warehouse.parent / "reports" / "report_en.html").read_text(encoding="utf-8")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page))
    assert (f"{len(cancelled)} order line{'s' if len(cancelled) > 1 else ''} loaded by "
            f"{'earlier runs were' if len(cancelled) > 1 else 'an earlier run was'} taken back") in text

    # The same days loaded at once, into a warehouse of their own: the same lines stand.
    once = tmp_path / "once" / "warehouse.duckdb"
    assert materialize_graph(config, once, first=DAYS[0], last=DAYS[2]).success
    lines = "SELECT order_id, customer_id, order_ts, category, sku, quantity, amount FROM staging.order_lines " \
            "ORDER BY ALL"
    assert query(work_db(once), lines) == query(work, lines)


def test_daily_baskets_keep_the_latest_profile_across_days(tmp_path):
    header = "cardid,value,pmethod,sex,homeown,income,age,fruitveg,wine\n"
    write_file(tmp_path / "in" / "2026-01-01.csv", header + "C1,10.5,CARD,M,YES,30000,30,T,F\nC2,8,CASH,F,NO,20000,41,F,T\n")
    write_file(tmp_path / "in" / "2026-01-02.csv", header + "C1,12,CARD,M,YES,45000,31,T,T\nC3,5,CASH,F,NO,15000,25,T,F\n")
    config = write_file(tmp_path / "baskets.yaml", """
name: daily-baskets
shape: wide
orders:
  path: in/{date}.csv
  columns: {customer_id: cardid, amount: value, payment_method: pmethod, gender: sex, home_owner: homeown}
  category_columns: [fruitveg, wine]
model:
  k: 2
""")
    warehouse = tmp_path / "warehouse.duckdb"
    work = work_db(warehouse)
    profiles = "SELECT customer_id, income, age, _partition_date FROM staging.customers ORDER BY 1"
    latest = [("C1", 45000.0, 31.0, date(2026, 1, 2)), ("C2", 20000.0, 41.0, date(2026, 1, 1)),
              ("C3", 15000.0, 25.0, date(2026, 1, 2))]
    # Day by day, and day 1 again: C1 keeps the profile of its last basket in file order (day 2).
    for first in (date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 1)):
        materialize_graph(config, warehouse, first=first, last=first)
    assert query(work, profiles) == latest
    assert query(work, "SELECT count(*) FROM staging.orders") == [(4,)]
    conflicts = query(work, "SELECT key_value, parse_filename(kept_file), parse_filename(superseded_file), "
                            "differing_columns FROM quality.key_conflicts ORDER BY run_id")
    assert ("C1", "2026-01-02.csv", "2026-01-01.csv", ["age", "income"]) in conflicts


# --- publishing --------------------------------------------------------------------------------------------------

def test_publishing_swaps_in_a_read_only_copy_without_the_raw_layer(daily_run):
    _, _, warehouse, _, _ = daily_run
    schemas = {row[0] for row in query(warehouse, "SELECT DISTINCT schema_name FROM duckdb_tables()")}
    assert {"staging", "quality", "features", "model", "segments", "meta"} <= schemas
    assert "raw" not in schemas
    [(run_id, _)] = query(warehouse, "SELECT run_id, published_at FROM meta.publication")
    assert run_id == published_version(warehouse)
    counts = dict(query(warehouse, "SELECT table_name, row_count FROM meta.published_tables"))
    assert counts["segments.customer_segments"] == query(warehouse, "SELECT count(*) FROM segments.customer_segments")[0][0]
    assert not list(warehouse.parent.glob(".*publishing*"))
    # The public paths lead through the one symlink a publish switches to the version folder of the run.
    folder = warehouse.parent
    assert os.readlink(warehouse) == ".current/warehouse.duckdb"
    assert os.readlink(folder / "reports") == ".current/reports"
    assert os.readlink(folder / ".current") == f".versions/{run_id}"
    assert report_files(folder / "reports") == report_files(work_db(warehouse).parent / "reports")
    assert "report_en.html" in report_files(folder / "reports")


def working_area(folder: Path, table_value: int, page: str) -> tuple[Path, Path]:
    """A working database with one table and a report folder beside it, as a run leaves them before publishing."""
    work = folder / "work"
    (work / "reports" / "charts").mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(work / "warehouse.duckdb")) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS segments")
        con.execute("CREATE OR REPLACE TABLE segments.t AS SELECT ? AS v", [table_value])
    (work / "reports" / "report_en.html").write_text(page)
    (work / "reports" / "charts" / "sizes_en.svg").write_text(f"<svg>{page}</svg>")
    return work / "warehouse.duckdb", work / "reports"


def publish_now(folder: Path, run_id: str, table_value: int, page: str) -> None:
    working, reports = working_area(folder, table_value, page)
    with duckdb.connect(str(working)) as con:
        publish(con, working, folder / "warehouse.duckdb", run_id, reports)


def test_a_warehouse_of_the_previous_layout_is_converted_on_the_next_publish(tmp_path):
    folder = tmp_path / "wh"
    folder.mkdir()
    with duckdb.connect(str(folder / "warehouse.duckdb")) as con:  # a regular file and a regular reports folder
        con.execute("CREATE SCHEMA meta; CREATE TABLE meta.publication AS SELECT 'old-run' AS run_id")
    (folder / "reports" / "charts").mkdir(parents=True)
    (folder / "reports" / "report_en.html").write_text("old report")
    (folder / ".warehouse.duckdb.deadbeef.publishing").write_text("a publish killed before its rename")

    publish_now(folder, "new-run", 7, "new report")

    assert published_version(folder / "warehouse.duckdb") == "new-run"
    assert query(folder / "warehouse.duckdb", "SELECT v FROM segments.t") == [(7,)]
    assert (folder / "warehouse.duckdb").is_symlink() and (folder / "reports").is_symlink()
    assert (folder / "reports" / "report_en.html").read_text() == "new report"
    assert sorted(p.name for p in folder.iterdir()) == [".current", ".versions", "reports", "warehouse.duckdb", "work"]


def test_typed_rows_a_killed_staging_step_left_are_not_published(tmp_path):
    folder = tmp_path / "wh"
    working, reports = working_area(folder, 1, "report")
    with duckdb.connect(str(working)) as con:
        con.execute("CREATE SCHEMA staging")
        assert TYPED_LINES in WORK_ONLY_TABLES
        for table in WORK_ONLY_TABLES:
            con.execute(f"CREATE TABLE {table} AS SELECT 'O1' AS order_id")
        publish(con, working, folder / "warehouse.duckdb", "run-1", reports)
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'staging'").fetchone() == (0,)
    assert query(folder / "warehouse.duckdb", "SELECT schema_name, table_name FROM duckdb_tables() "
                                              "WHERE schema_name <> 'meta'") == [("segments", "t")]


def test_publishing_keeps_the_previous_version_and_removes_what_a_killed_publish_left(tmp_path):
    folder = tmp_path / "wh"
    for i, run_id in enumerate(["run-1", "run-2", "run-3"]):
        publish_now(folder, run_id, i, f"report {i}")
    assert sorted(p.name for p in (folder / ".versions").iterdir()) == ["run-2", "run-3"]
    assert os.readlink(folder / ".previous") == ".versions/run-2"
    # What a publish killed before its switch leaves: a version folder nothing points at, temporary symlinks.
    (folder / ".versions" / "run-4" / "reports").mkdir(parents=True)
    os.symlink(".versions/run-4", folder / ".current.run-4.publishing")
    os.symlink(".current/reports", folder / ".reports.run-4.publishing")
    assert report_files(folder / "reports") == {"charts/sizes_en.svg": sha256(folder / "reports/charts/sizes_en.svg"),
                                                "report_en.html": sha256(folder / "reports/report_en.html")}

    publish_now(folder, "run-5", 5, "report 5")

    assert sorted(p.name for p in (folder / ".versions").iterdir()) == ["run-3", "run-5"]
    assert not list(folder.glob(".*publishing*"))
    assert (folder / "reports" / "report_en.html").read_text() == "report 5"
    assert query(folder / "warehouse.duckdb", "SELECT v FROM segments.t") == [(5,)]
    # Any path resolved through the public symlink names the same warehouse and working database.
    working = folder / "work" / "warehouse.duckdb"
    assert WarehouseResource(path=str((folder / "warehouse.duckdb").resolve())).file == working
    assert work_db(folder / "warehouse.duckdb") == working


def test_the_raw_layer_has_its_own_file_and_never_reaches_the_published_one(daily_run):
    _, _, warehouse, _, _ = daily_run
    raw_file = raw_file_for(work_db(warehouse))
    with duckdb.connect(str(raw_file), read_only=True) as con:
        raw_tables = {row[0] for row in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
        raw_rows = con.execute("SELECT count(*) FROM orders").fetchone()[0]
        stored = con.execute("SELECT DISTINCT regexp_extract(file, '^(.*)/[^/]+/[^/]+$', 1) FROM stored_files"
                             ).fetchall()
    assert {"orders", "customers", "source_files"} <= raw_tables
    # Its rows are Parquet files in a folder beside it (assets/raw/files.py), one per landing day's file here.
    assert stored == [(str(raw_files_folder_for(raw_file)),)]
    assert raw_rows == sum(pl.scan_parquet(path).select(pl.len()).collect().item()
                           for path in raw_files_folder_for(raw_file).glob("orders/*.parquet"))
    # The working database sees it as raw.*; the published file holds the working database's own tables plus
    # meta, and nothing of the raw layer under any name.
    assert query(work_db(warehouse), "SELECT count(*) FROM raw.orders") == [(raw_rows,)]
    listing = "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE database_name = current_database()"
    working = {row[0] for row in query(work_db(warehouse), listing)}
    published = {row[0] for row in query(warehouse, listing)}
    assert published - working == {"meta.publication", "meta.published_tables", "meta.source_files"}
    assert working <= published
    assert not any(name.startswith("raw.") for name in published | working)


def test_a_working_database_with_a_raw_schema_moves_it_into_the_raw_file(tmp_path):
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    warehouse.file.parent.mkdir(parents=True)
    with duckdb.connect(str(warehouse.file)) as con:  # as written before the raw layer had its own file
        con.execute("CREATE SCHEMA raw; CREATE SCHEMA staging")
        con.execute("CREATE TABLE raw.orders AS SELECT range AS _source_row, 'o' || range AS order_id FROM range(5)")
        con.execute("CREATE TABLE raw.source_files (source_file VARCHAR, rows_read BIGINT)")
        con.execute("INSERT INTO raw.source_files VALUES ('a.csv', 5)")
        con.execute("CREATE TABLE staging.orders AS SELECT 1 AS x")
    with warehouse.connect() as con:
        assert con.execute("SELECT order_id FROM raw.orders ORDER BY _source_row").fetchall() == [
            (f"o{i}",) for i in range(5)]
        assert con.execute("SELECT * FROM raw.source_files").fetchall() == [("a.csv", 5)]
        assert con.execute("SELECT count(*) FROM duckdb_schemas() WHERE database_name = current_database() "
                           "AND schema_name = 'raw'").fetchone()[0] == 0
        assert con.execute("SELECT x FROM staging.orders").fetchall() == [(1,)]
    with duckdb.connect(str(warehouse.raw_file), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM orders").fetchone()[0] == 5


def test_a_failed_gate_keeps_the_previous_version_published(tmp_path):
    config = daily_shop(tmp_path, customers=300, seed=9)
    held = hold_back(tmp_path, DAYS[-1])
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    good = materialize_graph(config, warehouse)
    assert good.success
    before = sha256(warehouse)

    # The last day arrives with every amount unreadable: far above quality.max_quarantine_share.
    arrive(tmp_path, held)
    for path in day_folder(tmp_path, DAYS[-1]).glob("*.csv"):
        header, *lines = path.read_text().splitlines()
        amount = header.split(",").index("amount")
        path.write_text("\n".join([header, *(",".join(
            "n/a" if i == amount else v for i, v in enumerate(line.split(","))) for line in lines)]) + "\n")
    bad = materialize_graph(config, warehouse, first=DAYS[-1], last=DAYS[-1])
    assert not bad.success
    assert "quarantine_share_within_limit" in {e.check_name for e in bad.get_asset_check_evaluations() if not e.passed}

    assert sha256(warehouse) == before
    assert published_version(warehouse) == good.run_id
    # The failed run's diagnostics are in the working database, and its day stays pending.
    assert query(work_db(warehouse), "SELECT count(*) > 0 FROM quality.quarantine WHERE run_id = ?",
                 [bad.run_id]) == [(True,)]
    assert plan_run(load_source_config(config), warehouse).window == DayWindow(DAYS[-1], DAYS[-1])


# --- crash safety: kill -9 at several points, then rerun ---------------------------------------------------------

def persona_run(root: Path, home: Path, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    env.pop("PERSONA_CRASH_AT", None)
    if crash_at:
        env["PERSONA_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--config", str(root / "shop.yaml"),
         "--warehouse", str(root / "wh" / "warehouse.duckdb")],
        cwd=root, env=env, capture_output=True, text=True, timeout=600)


def published_state(warehouse: Path) -> tuple:
    """The published warehouse and every file of the published report, byte for byte, and what they say."""
    return (sha256(warehouse), report_files(warehouse.parent / "reports"), published_version(warehouse),
            query(warehouse, "SELECT count(*), count(DISTINCT (order_id, category, sku)) FROM staging.order_lines"),
            query(warehouse, "SELECT segment_id, count(*) FROM segments.customer_segments GROUP BY ALL ORDER BY 1"))


def report_describes(warehouse: Path) -> bool:
    """The published report names the model version and the time of the published segments."""
    [(version, assigned_at)] = query(warehouse, "SELECT any_value(model_version), max(assigned_at) "
                                                "FROM segments.segment_profiles")
    page = (warehouse.parent / "reports" / "report_en.html").read_text(encoding="utf-8")
    return format_value("text", version) in page and format_value("datetime", assigned_at) in page


def test_kill_9_at_every_crash_point_keeps_the_published_version_and_the_rerun_succeeds(tmp_path):
    config = daily_shop(tmp_path, customers=300, seed=12)
    held = hold_back(tmp_path, DAYS[-1])
    home = tmp_path / "home"
    shutil.copy(REPO_ROOT / "dagster.yaml", home.mkdir() or home / "dagster.yaml")
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    done = persona_run(tmp_path, home)
    assert done.returncode == 0, done.stderr
    published = published_state(warehouse)
    assert "report_en.html" in published[1] and "charts/sizes_en.png" in published[1]
    # A first run has no history: its report says so in words and draws no history or migration chart.
    history_charts = {f"charts/{chart}_{language}.{kind}" for chart in ("history", "migration")
                      for language in ("en", "zh") for kind in ("png", "svg")}
    assert not history_charts & published[1].keys()
    assert report_describes(warehouse)

    arrive(tmp_path, held)
    for point in CRASH_POINTS:
        crashed = persona_run(tmp_path, home, crash_at=point)
        assert crashed.returncode == -9, (point, crashed.stdout, crashed.stderr)
        # The published warehouse and every file of its report are byte-for-byte the same.
        assert published_state(warehouse) == published, point
        # Nothing of the killed run is visible, and its day is still to be loaded.
        assert plan_run(load_source_config(config), warehouse).window == DayWindow(DAYS[-1], DAYS[-1]), point

    rerun = persona_run(tmp_path, home)
    assert rerun.returncode == 0, rerun.stderr
    assert "succeeded and published" in rerun.stdout
    assert not list(warehouse.parent.glob(".*publishing*"))
    # Both are published: the new warehouse, and a new report describing it, the run's report byte for byte.
    rerun_id = re.search(r"Run (\S+) succeeded and published", rerun.stdout)[1]
    assert published_version(warehouse) == rerun_id
    after = report_files(warehouse.parent / "reports")
    assert after.keys() == published[1].keys() | history_charts  # the second run has a history to draw
    assert after["report_en.html"] != published[1]["report_en.html"]
    assert after == report_files(work_db(warehouse).parent / "reports")
    assert report_describes(warehouse)
    # The versions kept: the new one and the one it replaced; the killed publish's folder is gone.
    assert sorted(p.name for p in (warehouse.parent / ".versions").iterdir()) == sorted([published[2], rerun_id])
    (lines, distinct), = query(warehouse, "SELECT count(*), count(DISTINCT (order_id, category, sku)) "
                                          "FROM staging.order_lines")
    assert lines == distinct  # no duplicate rows
    reference = tmp_path / "reference" / "warehouse.duckdb"
    assert materialize_graph(config, reference).success
    assert order_lines(warehouse) == order_lines(reference)
    assert query(warehouse, "SELECT count(*) FROM segments.customer_segments") == \
        query(reference, "SELECT count(*) FROM segments.customer_segments")
    # The killed runs are failed in the instance, not left 'started' holding the writer pool.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        statuses = [r.status for r in instance.get_runs()]
    assert dg.DagsterRunStatus.STARTED not in statuses
    assert statuses.count(dg.DagsterRunStatus.SUCCESS) == 2


# --- readers during a refresh ------------------------------------------------------------------------------------

READER_SQL = ("SELECT (SELECT run_id FROM meta.publication) AS version, "
              "(SELECT count(*) FROM staging.order_lines) AS lines, "
              "(SELECT max(_partition_date)::VARCHAR FROM staging.order_lines) AS last_day, "
              "(SELECT count(*) FROM segments.customer_segments) AS customers, "
              "(SELECT sum(customers)::BIGINT FROM segments.segment_profiles) AS profiled")


def read_in_a_loop(warehouse: str, stop_file: str, results: str) -> None:
    """One reader process: query the published warehouse until told to stop; record answers and errors."""
    from pipelines.serving import QueryRefused, run_read_only_query

    answers, errors = [], []
    while not os.path.exists(stop_file):
        try:
            answers.append(run_read_only_query(Path(warehouse), READER_SQL).rows()[0])
        except (QueryRefused, duckdb.Error) as exc:
            errors.append(str(exc))
        time.sleep(0.02)
    Path(results).write_text(json.dumps({"answers": answers, "errors": errors}))


def test_four_readers_during_a_refresh_get_no_error_and_only_published_versions(tmp_path):
    daily_shop(tmp_path, customers=600, seed=13)
    held = hold_back(tmp_path, DAYS[-1])
    home = tmp_path / "home"
    shutil.copy(REPO_ROOT / "dagster.yaml", home.mkdir() or home / "dagster.yaml")
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    assert persona_run(tmp_path, home).returncode == 0
    from pipelines.serving import run_read_only_query
    old = run_read_only_query(warehouse, READER_SQL).rows()[0]

    arrive(tmp_path, held)
    stop = tmp_path / "stop"
    spawn = multiprocessing.get_context("spawn")
    readers = [spawn.Process(target=read_in_a_loop, args=(str(warehouse), str(stop), str(tmp_path / f"r{i}.json")))
               for i in range(4)]
    for reader in readers:
        reader.start()
    refresh = persona_run(tmp_path, home)
    time.sleep(1.0)
    stop.touch()
    for reader in readers:
        reader.join(timeout=60)
    assert refresh.returncode == 0, refresh.stderr
    new = run_read_only_query(warehouse, READER_SQL).rows()[0]
    assert new[0] != old[0] and new[2] == str(DAYS[-1])

    seen = set()
    for i in range(4):
        outcome = json.loads((tmp_path / f"r{i}.json").read_text())
        assert outcome["errors"] == []
        assert len(outcome["answers"]) > 10
        for answer in outcome["answers"]:
            assert tuple(answer) in {tuple(old), tuple(new)}, answer
            seen.add(answer[0])
    assert seen == {old[0], new[0]}  # readers saw the swap, and nothing in between


def test_a_working_database_locked_by_another_process_is_retried_not_failed(tmp_path):
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    warehouse.file.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
                               "time.sleep(60)", str(warehouse.file)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(dg.RetryRequested) as info, warehouse.connect():
            pass
        assert info.value.max_retries == 3 and info.value.seconds_to_wait == 20
    finally:
        holder.kill()
        holder.wait()
    with warehouse.connect() as con:  # free again once the other process is gone
        assert con.execute("SELECT 1").fetchone() == (1,)


# --- schedule, sensor, webhook -----------------------------------------------------------------------------------

def _resources(config: Path, warehouse: Path) -> dict:
    return {"source": SourceResource(config_path=str(config)), "warehouse": WarehouseResource(path=str(warehouse))}


def test_landing_sensor_requests_the_new_days_once_then_skips(tmp_path):
    config = daily_shop(tmp_path, customers=200, seed=14)
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    sensor = defs.resolve_sensor_def("landing_files")
    with dg.build_sensor_context(resources=_resources(config, warehouse)) as context:
        [request] = sensor.evaluate_tick(context).run_requests
    assert request.tags[RANGE_START_TAG] == str(DAYS[0])
    assert request.tags[RANGE_END_TAG] == str(DAYS[-1])
    assert request.run_key
    # Which shop, config and warehouse, as on the CLI's runs (the UI's run list shows them).
    assert (request.tags["persona/source"], request.tags["persona/config"], request.tags["persona/warehouse"]) == (
        SourceResource(config_path=str(config)).load().name, str(config), str(warehouse))

    assert materialize_graph(config, warehouse).success
    with dg.build_sensor_context(resources=_resources(config, warehouse)) as context:
        result = sensor.evaluate_tick(context)
    assert not result.run_requests
    assert result.skip_message == "no new or changed landing file"


def test_schedule_runs_at_two_in_shanghai_and_reloads_a_snapshot_source(tmp_path, seed_baskets):
    schedule = defs.resolve_schedule_def("nightly_refresh")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "Asia/Shanghai")
    config = write_file(tmp_path / "b.yaml", (REPO_ROOT / "examples" / "baskets.yaml").read_text()
                        .replace("../../shared/data/BASKETS1n.csv", str(seed_baskets)))
    with dg.build_schedule_context(resources=_resources(config, tmp_path / "w.duckdb")) as context:
        request = schedule(context)
    assert isinstance(request, dg.RunRequest)
    # A snapshot source is reloaded whole every night, recorded under that night's partition.
    assert request.partition_key == snapshot_partition_key() and RANGE_START_TAG not in request.tags


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_failure_webhook_posts_the_run_and_reason():
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert post_failure("abc123", "refresh", "blocking check failed", url=f"http://127.0.0.1:{server.server_port}/hook")
    finally:
        server.shutdown()
    assert _Receiver.received == [{
        "text": "persona-pipeline: run abc123 of refresh failed: blocking check failed",
        "run_id": "abc123", "job": "refresh", "message": "blocking check failed"}]
    assert post_failure("abc123", "refresh", "x", url="") is False or os.environ.get("PERSONA_ALERT_WEBHOOK")
    assert defs.resolve_sensor_def("notify_failure").name == "notify_failure"
