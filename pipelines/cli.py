"""The `persona` command: run the pipeline, query the warehouse, generate demo data.

`persona run` executes the same Dagster job as the nightly schedule, against the persistent instance in
DAGSTER_HOME (default `.dagster/`, holding a copy of the root `dagster.yaml`), so CLI runs show up in the UI.
"""

from __future__ import annotations

import gc
import os
import shlex
import shutil
import sys
from pathlib import Path

import click

from pipelines.campaign_cli import campaign
from pipelines.cli_common import command_name, fail, parse_day
from pipelines.core.resources import (
    DEFAULT_CONFIG,
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_WAREHOUSE,
    REPO_ROOT,
    public_file,
)
from pipelines.init_cli import init

EXAMPLE_QUERIES = [
    "select segment_id, segment_name_zh, segment_name_en, customers, round(share * 100, 1) as pct "
    "from segments.segment_profiles order by segment_id",
    "select customer_id, segment_name_en from segments.customer_segments where segment_id = 1 limit 10",
    "select * from quality.load_audit order by audited_at desc limit 5",
]


def prepare_dagster_home() -> Path:
    """Point DAGSTER_HOME at a real folder holding the project's dagster.yaml, so run history persists."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    for candidate in (Path.cwd() / "dagster.yaml", REPO_ROOT / "dagster.yaml"):
        if candidate.is_file() and candidate.resolve() != target:
            if not target.exists() or target.read_bytes() != candidate.read_bytes():
                shutil.copyfile(candidate, target)
            break
    return home


def _load_config(config_path: str, input_path: str | None):
    """The source config, reading its orders from --input when given; the customer and product paths are
    resolved now, so a missing file is a one-line error before any work starts."""
    from pipelines.core.config import load_source_config

    config = load_source_config(config_path)
    if input_path:
        if not Path(input_path).is_file():
            fail(f"--input {input_path}: file not found")
        config = config.with_input(input_path)
    config.customer_files()
    config.product_files()
    return config



def _warehouse_flag(warehouse_path: str) -> str:
    """` --warehouse PATH` for printed commands, so they query the warehouse the run used; empty for the default."""
    return "" if warehouse_path == DEFAULT_WAREHOUSE else f" --warehouse {shlex.quote(warehouse_path)}"


def _inspect_failed_run_hint(run_id: str, warehouse_path: str) -> str:
    """What to look at after a failed run. Its load audit when staging wrote one (a blocking check failed, for
    example); otherwise the run stopped before staging (a file that does not read) and the working database holds
    nothing of it, so the hint points at the event log instead."""
    from pipelines.core.resources import work_file_for
    from pipelines.core.sql import table_exists
    from pipelines.serving import QueryRefused, open_read_only

    audited = False
    try:
        con = open_read_only(work_file_for(public_file(Path(warehouse_path))))
        try:
            audited = table_exists(con, "quality.load_audit") and con.execute(
                "SELECT count(*) > 0 FROM quality.load_audit WHERE run_id = ?", [run_id]).fetchone()[0]
        finally:
            con.close()
    except QueryRefused:
        pass  # no working database yet (a first run that failed reading), or it cannot be opened now
    if audited:
        query = f"select * from quality.load_audit where run_id = '{run_id}'"
        return (f"inspect this run with: {command_name()} sql --unpublished{_warehouse_flag(warehouse_path)} "
                f"\"{query}\"")
    return (f"it wrote no load audit (it stopped before staging); its event log is in the Dagster UI (run "
            f"{run_id}), or run again with --verbose to print it")


@click.group()
def main() -> None:
    """persona-pipeline: nightly customer segmentation on DuckDB, orchestrated by Dagster."""



@main.command()
@click.option("--config", "config_path", default=lambda: os.environ.get("PERSONA_CONFIG", DEFAULT_CONFIG),
              show_default=DEFAULT_CONFIG, help="YAML source config of the shop.")
@click.option("--input", "input_path", default=None, help="Replace the orders path of the config with this file.")
@click.option("--warehouse", "warehouse_path", default=lambda: os.environ.get("PERSONA_WAREHOUSE", DEFAULT_WAREHOUSE),
              show_default=DEFAULT_WAREHOUSE, help="Published DuckDB warehouse file.")
@click.option("--date", "day", default=None, help="Daily sources: (re)load this landing day (YYYY-MM-DD).")
@click.option("--from", "first", default=None, help="Daily sources: backfill from this day (with --to).")
@click.option("--to", "last", default=None, help="Daily sources: backfill up to this day, included.")
@click.option("--all-days", is_flag=True, help="Daily sources: reload every landing day.")
@click.option("--memory-limit", default=DEFAULT_MEMORY_LIMIT, envvar="PERSONA_DUCKDB_MEMORY_LIMIT", show_default=True,
              help="DuckDB's memory cap for this run; beyond it DuckDB spills to disk.")
@click.option("--verbose", is_flag=True, help="Print Dagster's event log while running.")
@click.option("--wait", is_flag=True,
              help="When another run holds this warehouse, wait for it to finish instead of refusing at once.")
@click.option("--replace", is_flag=True,
              help="The warehouse holds another source (config name): set its working state aside under "
                   "work/replaced/ and start this warehouse's history again with this source.")
def run(config_path: str, input_path: str | None, warehouse_path: str, day: str | None, first: str | None,
        last: str | None, all_days: bool, memory_limit: str, verbose: bool, wait: bool, replace: bool) -> None:
    """Load new or changed landing days (or the days asked for), refresh features, model, segments and report,
    and publish (the same job the nightly schedule runs)."""
    import uuid

    from pipelines.core.resources import WarehouseResource
    from pipelines.runner import RunInProgress, run_lock

    # One run per warehouse: a second one refuses at once (or waits, --wait) instead of failing halfway.
    run_id = str(uuid.uuid4())
    work_folder = WarehouseResource(path=str(public_file(Path(warehouse_path)))).file.parent
    try:
        with run_lock(work_folder, run_id, wait=wait, on_wait=lambda message: click.echo(f"persona: {message}")):
            _run_locked(config_path, input_path, warehouse_path, day, first, last, all_days, memory_limit, verbose,
                        run_id, replace)
    except RunInProgress as exc:
        fail(str(exc))


def _recover(warehouse_path: str, memory_limit: str) -> bool:
    """Before planning, under the run lock: remove what an interrupted run left, and rebuild a published file that
    cannot be opened from the working database. False when it cannot be rebuilt (the working database changed
    since it was published): the run then loads every landing day and its publish replaces the file."""
    from assets.publish.repair import RepairRefused, published_problem, repair_published
    from pipelines.core.resources import WarehouseResource
    from pipelines.runner import remove_run_leftovers

    warehouse = WarehouseResource(path=str(public_file(Path(warehouse_path))), memory_limit=memory_limit)
    removed = remove_run_leftovers(warehouse)
    if removed:
        names = ", ".join(os.path.relpath(path, warehouse.published_file.parent) for path in removed)
        click.echo(f"Removed what an interrupted run left: {names}")
    problem = published_problem(warehouse.published_file)
    if problem is None:
        return True
    try:
        repaired = repair_published(warehouse, problem)
    except RepairRefused as exc:
        click.echo(f"persona: published warehouse {warehouse.published_file} cannot be opened ({problem}); not "
                   f"rebuilt from the working database ({exc}); this run loads every landing day and publishes anew")
        return False
    click.echo(f"persona: published warehouse {warehouse.published_file} cannot be opened ({problem}); rebuilt from "
               f"the working database (run {repaired.run_id}, version {repaired.version.name})")
    return True


def _check_source(config, config_path: str, input_path: str | None, warehouse_path: str, replace: bool) -> bool:
    """One warehouse per shop: refuse a run of another source (config name) into this warehouse, naming both,
    unless --replace; say when the same shop's config changed. True when --replace set an old source aside."""
    from pipelines.core.identity import source_identity
    from pipelines.core.resources import SourceResource, WarehouseResource
    from pipelines.runner import SourceConflict, check_source

    source = SourceResource(config_path=str(Path(config_path).resolve()),
                            input_override=str(Path(input_path).resolve()) if input_path else "")
    warehouse = WarehouseResource(path=str(public_file(Path(warehouse_path))))
    try:
        note, set_aside = check_source(warehouse, source_identity(source, config), replace)
    except SourceConflict as exc:
        fail(str(exc))
    if note:
        click.echo(f"persona: {note}")
    if set_aside:
        click.echo(f"persona: --replace: the previous source's working state is now in {set_aside}; this warehouse's "
                   f"history starts again with source '{config.name}' (the published file serves the old one until "
                   f"this run publishes)")
    return set_aside is not None


def _run_locked(config_path: str, input_path: str | None, warehouse_path: str, day: str | None, first: str | None,
                last: str | None, all_days: bool, memory_limit: str, verbose: bool, run_id: str,
                replace: bool = False) -> None:
    from pipelines.core.config import ConfigError
    from pipelines.planning import plan_refresh

    if day and (first or last):
        fail("use either --date or --from/--to")
    if bool(first) != bool(last):
        fail("--from and --to go together")
    first_day, last_day = (parse_day(day), parse_day(day)) if day else (parse_day(first), parse_day(last))
    if first_day and last_day and first_day > last_day:
        fail(f"--from {first_day} is after --to {last_day}")
    try:
        config = _load_config(config_path, input_path)
        if (first_day or all_days) and not config.daily:
            fail(f"--date/--from/--all-days need a daily source ({{date}} in orders.path); "
                  f"{config_path} reads a snapshot, which every run reloads whole")
        if not _recover(warehouse_path, memory_limit) and config.daily and not first_day:
            all_days = True  # the published file is unreadable and cannot be rebuilt: load everything
        if _check_source(config, config_path, input_path, warehouse_path, replace) and config.daily:
            all_days = True  # --replace set the old source aside: this source's history starts with every day
        plan, notes = plan_refresh(config, public_file(Path(warehouse_path)), first_day, last_day, all_days)
    except (ConfigError, ValueError) as exc:
        fail(str(exc))
    # Files still in motion (ingest.settle_seconds): the day left pending, or the file the run waits for.
    for note in notes:
        click.echo(f"persona: {note}")
    if plan is None:
        if notes:
            click.echo("Nothing else to load now.")
        else:
            click.echo("Nothing to load: the published warehouse already holds every landing file. Use --date, "
                       "--from/--to or --all-days to reload.")
        click.echo(f"Warehouse: {public_file(Path(warehouse_path))}")
        return
    from pipelines.core.resources import SourceResource, WarehouseResource
    from pipelines.progress import StepDisplay, summary_lines
    from pipelines.runner import run_refresh, segmentation_strength, strength_line

    # Importing the graph leaves ~400k long-lived objects (Dagster, pandas, scikit-learn). Freezing them keeps every
    # later full garbage collection from walking them again: the few during a run, and the several Python makes
    # while shutting down, which took 1.3-1.5 s at the end of every run. Great Expectations, imported beside the
    # run's first steps, is frozen once imported (pipelines/core/background_import.py).
    gc.freeze()
    # The same resources the code location builds from PERSONA_* variables, here from the flags.
    resources = {
        "warehouse": WarehouseResource(path=str(public_file(Path(warehouse_path))), memory_limit=memory_limit),
        "source": SourceResource(config_path=str(Path(config_path).resolve()),
                                 input_override=str(Path(input_path).resolve()) if input_path else ""),
    }
    dagster_home = prepare_dagster_home()
    click.echo(f"Loading {plan.describe()}.")
    # Each step as it starts and ends: live on a terminal, plain lines in logs (--verbose prints the event log).
    with StepDisplay() as display:
        outcome = run_refresh(plan, resources, dagster_home, verbose=verbose, run_id=run_id,
                              on_step=None if verbose else display)
    if not outcome.success:
        fail(f"run {outcome.run_id} failed: {outcome.reason}. The published warehouse is unchanged; "
              f"{_inspect_failed_run_hint(outcome.run_id, warehouse_path)}")
    warehouse = public_file(Path(warehouse_path))
    click.echo(f"Run {outcome.run_id} succeeded and published.")
    # Weak results that did not stop the run (warn-level checks), so they are not seen only in the event log.
    for line in outcome.warnings:
        click.echo(line)
    command, flag = command_name(), _warehouse_flag(warehouse_path)
    for line in summary_lines(warehouse, outcome.run_id, len(outcome.warnings), f"{command} sql{flag}"):
        click.echo(line)
    click.echo(f"Warehouse: {warehouse}")
    for report in sorted((warehouse.parent / "reports").glob("report_*.html")):
        click.echo(f"Report:    {report}")
    click.echo("Try:")
    for query in EXAMPLE_QUERIES:
        click.echo(f'  {command} sql{flag} "{query}"')
    # Last, so it is what the person who ran it sees: how far the segments can be trusted (issue 19).
    verdict = segmentation_strength(warehouse)
    if verdict:
        click.echo(strength_line(*verdict))


@main.command()
@click.option("--config", "config_path", default=lambda: os.environ.get("PERSONA_CONFIG", DEFAULT_CONFIG),
              show_default=DEFAULT_CONFIG, help="YAML source config of the shop.")
@click.option("--input", "input_path", default=None, help="Replace the orders path of the config with this file.")
def check(config_path: str, input_path: str | None) -> None:
    """Dry-run a source config in seconds: read a sample of every input file (10,000 rows spread over each; of a
    glob or landing folder, its first and last files) and stage it as a run would. Prints the mapping, the
    quarantine reasons, categories, dates, profile coverage and the model's feature families; exits 1 when a run
    would fail, naming why on stderr. Writes nothing."""
    from pipelines.check import CheckError, run_check
    from pipelines.check_report import render
    from pipelines.core.config import ConfigError

    try:
        config = _load_config(config_path, input_path)
        report = run_check(config)
    except (ConfigError, CheckError) as exc:
        fail(str(exc))
    click.echo(render(report, config_path))
    for failure in report.failures:
        click.echo(f"persona: {failure}", err=True)
    if report.failures:
        sys.exit(1)


@main.command()
@click.argument("query")
@click.option("--warehouse", "warehouse_path", default=lambda: os.environ.get("PERSONA_WAREHOUSE", DEFAULT_WAREHOUSE),
              show_default=DEFAULT_WAREHOUSE, help="DuckDB warehouse file.")
@click.option("--format", "output_format", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@click.option("--unpublished", is_flag=True,
              help="Query the working database instead: the latest run's tables (raw layer included), published "
                   "or not; for looking into a run that failed its checks. Fails while a run is writing.")
@click.option("--timeout", "timeout", type=click.FloatRange(min=0, min_open=True), default=60, show_default=True,
              help="Stop the query after this many seconds (wall-clock, printing included).")
@click.option("--memory-limit", "memory_limit", default="1GB", show_default=True,
              help="DuckDB memory cap for the query (nothing spills to disk, so this is a hard cap).")
@click.option("--threads", "threads", type=click.IntRange(min=1), default=2, show_default=True,
              help="DuckDB threads for the query; kept low so a query cannot starve the nightly run.")
@click.option("--max-rows", "max_rows", type=click.IntRange(min=0), default=None,
              help="Print at most this many rows and say how many more there are; 0: every row. "
                   "[default: 1000 for table, every row for csv and json]")
def sql(query: str, warehouse_path: str, output_format: str, unpublished: bool, timeout: float, memory_limit: str,
        threads: int, max_rows: int | None) -> None:
    """Run a read-only SQL query against the published warehouse."""
    from pipelines.core.resources import raw_file_for, work_file_for
    from pipelines.serving import QueryLimits, QueryRefused, default_max_rows, more_rows_note, print_query

    target = work_file_for(public_file(Path(warehouse_path))) if unpublished else Path(warehouse_path)
    rows = default_max_rows(output_format) if max_rows is None else max_rows
    # Click's stdout, re-wrapped as UTF-8 under an ASCII locale. click.get_text_stream gave the same stream but is
    # deprecated since Click 8.5 (a DeprecationWarning on stderr); open_file("-") is the public way to it.
    out = click.open_file("-", "w")
    try:
        printed = print_query(target, query, output_format, out, raw_file_for(target) if unpublished else None,
                              QueryLimits(timeout, memory_limit, threads), rows)
    except QueryRefused as exc:
        out.flush()
        fail(str(exc))
    note = more_rows_note(printed, rows)
    if note:
        # Under a table the note is part of what is read; after CSV or JSON it goes to stderr, keeping stdout data.
        click.echo(note, err=output_format != "table")


@main.command()
@click.option("--repair", is_flag=True, help="Rebuild the published warehouse file from the working database when it "
              "cannot be opened (truncated, zeroed header, torn tail).")
@click.option("--warehouse", "warehouse_path", default=lambda: os.environ.get("PERSONA_WAREHOUSE", DEFAULT_WAREHOUSE),
              show_default=DEFAULT_WAREHOUSE, help="Published DuckDB warehouse file.")
@click.option("--memory-limit", default=DEFAULT_MEMORY_LIMIT, envvar="PERSONA_DUCKDB_MEMORY_LIMIT", show_default=True,
              help="DuckDB's memory cap while copying.")
def publish(repair: bool, warehouse_path: str, memory_limit: str) -> None:
    """Check the published warehouse file and, with --repair, rebuild it from the working database if it cannot be
    opened. Refuses while a run holds the warehouse. Exit 1 when it is damaged and not rebuilt."""
    from assets.publish.repair import RepairRefused, published_problem, repair_published
    from pipelines.core.resources import WarehouseResource
    from pipelines.runner import RunInProgress, run_lock

    warehouse = WarehouseResource(path=str(public_file(Path(warehouse_path))), memory_limit=memory_limit)
    try:
        with run_lock(warehouse.file.parent, command="persona publish --repair"):
            problem = published_problem(warehouse.published_file)
            if problem is None:
                state = "is not published yet" if not warehouse.published_file.exists() else "opens"
                click.echo(f"Published warehouse {warehouse.published_file} {state}; nothing to repair.")
                return
            if not repair:
                fail(f"published warehouse {warehouse.published_file} cannot be opened ({problem}); "
                      f"rebuild it with: {command_name()} publish --repair{_warehouse_flag(warehouse_path)}")
            try:
                repaired = repair_published(warehouse, problem)
            except RepairRefused as exc:
                fail(f"published warehouse {warehouse.published_file} cannot be opened ({problem}); not rebuilt "
                      f"from the working database ({exc}); `{command_name()} run{_warehouse_flag(warehouse_path)}` "
                      f"reloads every landing day and publishes anew")
    except RunInProgress as exc:
        fail(str(exc))
    click.echo(f"persona: published warehouse {warehouse.published_file} cannot be opened ({problem}); rebuilt from "
               f"the working database (run {repaired.run_id}, version {repaired.version.name})")


@main.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder to write into.")
@click.option("--warehouse", "warehouse_path", default=lambda: os.environ.get("PERSONA_WAREHOUSE", DEFAULT_WAREHOUSE),
              show_default=DEFAULT_WAREHOUSE, help="DuckDB warehouse file.")
@click.option("--segment", "segment_ids", type=int, multiple=True, help="Segment id to export (repeatable; "
              "default: every segment, or none when --audience is given).")
@click.option("--audience", "audience_names", multiple=True, help="Audience of the source config to export, "
              "as audience_<name>.<format> (repeatable).")
@click.option("--format", "output_format", type=click.Choice(["csv", "xlsx", "parquet"]), default="csv",
              show_default=True, help="csv: UTF-8 with a byte-order mark (Excel reads the Chinese names); xlsx: an "
              "Excel workbook; parquet: for data tools.")
@click.option("--pseudonymise", is_flag=True,
              help="Replace customer ids by salted SHA-256 tokens; the salt comes from PERSONA_ID_SALT.")
@click.option("--include-controls", is_flag=True,
              help="Keep the control groups of running campaigns in the lists (left out by default: an activation "
                   "list is for sending, and a control group must get nothing while its campaign runs).")
def export(out_dir: str, warehouse_path: str, segment_ids: tuple[int, ...], audience_names: tuple[str, ...],
           output_format: str, pseudonymise: bool, include_controls: bool) -> None:
    """Write one audience list per segment for activation tools (segment_<id>_<name>.<format>), or per audience of
    the source config with --audience (audience_<name>.<format>): segment names, value and RFM tiers, churn risk,
    next categories and expected spend where the warehouse has them."""
    from pipelines.serving import SALT_VARIABLE, QueryRefused, export_audiences

    try:
        written = export_audiences(Path(warehouse_path), Path(out_dir), output_format, list(segment_ids) or None,
                                   pseudonymise, os.environ.get(SALT_VARIABLE), list(audience_names) or None,
                                   include_controls)
    except QueryRefused as exc:
        fail(str(exc))
    for path, rows, left_out in written:
        held_back = (f" ({left_out:,} left out: in the control group of a running campaign; --include-controls "
                     "keeps them)") if left_out else ""
        click.echo(f"{path}: {rows:,} customers{held_back}")


@main.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder to write into.")
@click.option("--customers", default=5000, show_default=True, type=int)
@click.option("--days", default=90, show_default=True, type=int)
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--shape", type=click.Choice(["long", "wide"]), default="long", show_default=True)
@click.option("--outlier-share", default=0.005, show_default=True, type=float,
              help="Share of customers planted with extreme behaviour (flagged in truth.csv).")
@click.option("--daily-files", is_flag=True,
              help="Long shape: also lay the order lines out as daily landing files, "
                   "OUT/orders/order_day=YYYY-MM-DD/data_0.csv (a daily source, as examples/demo.yaml reads).")
@click.option("--campaigns", "plant", is_flag=True,
              help="Long shape: also plant two finished campaigns with a known effect (docs/campaigns.md): "
                   "OUT/campaign_assignments.csv for `persona campaign import --file`, and the planted uplift in "
                   "OUT/campaigns_truth.csv.")
def generate(out_dir: str, customers: int, days: int, seed: int, shape: str, outlier_share: float,
             daily_files: bool, plant: bool) -> None:
    """Write realistic demo data with planted personas (and their truth) into OUT."""
    from pipelines.core.partitions import split_orders_by_day
    from pipelines.demo.campaigns import ASSIGNMENTS_FILE, TRUTH_FILE, demo_campaigns
    from pipelines.demo.generate import generate_demo_data

    if daily_files and shape != "long":
        fail("--daily-files needs the long shape (baskets carry no order date)")
    if plant and shape != "long":
        fail("--campaigns needs the long shape (baskets carry no order date)")
    try:
        written = generate_demo_data(Path(out_dir), customers=customers, days=days, seed=seed, shape=shape,
                                     outlier_share=outlier_share, campaigns=demo_campaigns(days) if plant else ())
    except ValueError as exc:
        fail(str(exc))
    click.echo(f"Wrote {written.customers:,} customers ({written.outliers:,} planted outliers) and "
               f"{written.order_lines:,} {'order lines' if shape == 'long' else 'baskets'} "
               f"to {Path(out_dir).resolve()}")
    if daily_files:
        landing = Path(out_dir) / "orders"
        days_written = split_orders_by_day(Path(out_dir) / "order_lines.csv", landing)
        click.echo(f"Laid out {days_written} daily landing folders under {landing.resolve()}")
    if plant:
        _say_planted_campaigns(Path(out_dir), ASSIGNMENTS_FILE, TRUTH_FILE)


def _say_planted_campaigns(out: Path, assignments_file: str, truth_file: str) -> None:
    """What `generate --campaigns` planted, and the command that imports it once a run has made segments."""
    import polars as pl

    truth = pl.read_csv(out / truth_file)
    for row in truth.iter_rows(named=True):
        effect = (f"+{row['planted_uplift'] * 100:.1f} percentage points of conversion"
                  if row["planted_uplift"] else "no effect (a null campaign)")
        click.echo(f"Planted campaign {row['campaign']} on {row['persona'] or 'every customer'}: {effect}, "
                   f"{row['start_day']}..{row['end_day']}, {row['treatment']:,} treatment and {row['control']:,} "
                   f"control customers")
    first, last = truth["start_day"].min(), truth["end_day"].max()
    click.echo(f"Assignments: {(out / assignments_file).resolve()}; planted truth: {(out / truth_file).resolve()}")
    click.echo(f"After `{command_name()} run`, import them with: {command_name()} campaign import --file "
               f"{shlex.quote(str(out / assignments_file))} --start {first} --end {last}")


# `persona campaign ...`: campaigns with holdout groups (pipelines/campaign_cli.py).
main.add_command(campaign)
main.add_command(init)

if __name__ == "__main__":
    main()
