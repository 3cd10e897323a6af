"""The `persona` command: run the pipeline, query the warehouse, generate demo data.

`persona run` executes the same Dagster job as the nightly schedule, against the persistent instance in
DAGSTER_HOME (default `.dagster/`, holding a copy of the root `dagster.yaml`), so CLI runs show up in the UI.
"""

from __future__ import annotations

import gc
import json
import os
import shlex
import shutil
import sys
from datetime import date
from pathlib import Path

import click
import polars as pl

from pipelines.core.resources import (
    DEFAULT_CONFIG,
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_WAREHOUSE,
    REPO_ROOT,
    public_file,
)

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
            _fail(f"--input {input_path}: file not found")
        config = config.with_input(input_path)
    config.customer_files()
    config.product_files()
    return config


def _fail(message: str) -> None:
    click.echo(f"persona: {message}", err=True)
    sys.exit(1)


def _command_name() -> str:
    """The command as the user can type it: bare when the venv is active, by path otherwise."""
    if shutil.which("persona"):
        return "persona"
    return shlex.quote(os.path.relpath(Path(sys.argv[0]).resolve(), Path.cwd()))


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
        return (f"inspect this run with: {_command_name()} sql --unpublished{_warehouse_flag(warehouse_path)} "
                f"\"{query}\"")
    return (f"it wrote no load audit (it stopped before staging); its event log is in the Dagster UI (run "
            f"{run_id}), or run again with --verbose to print it")


@click.group()
def main() -> None:
    """persona-pipeline: nightly customer segmentation on DuckDB, orchestrated by Dagster."""


def _day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a day (YYYY-MM-DD)") from None


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
def run(config_path: str, input_path: str | None, warehouse_path: str, day: str | None, first: str | None,
        last: str | None, all_days: bool, memory_limit: str, verbose: bool) -> None:
    """Load new or changed landing days (or the days asked for), refresh features, model, segments and report,
    and publish (the same job the nightly schedule runs)."""
    from pipelines.core.config import ConfigError
    from pipelines.planning import plan_run

    if day and (first or last):
        _fail("use either --date or --from/--to")
    if bool(first) != bool(last):
        _fail("--from and --to go together")
    first_day, last_day = (_day(day), _day(day)) if day else (_day(first), _day(last))
    if first_day and last_day and first_day > last_day:
        _fail(f"--from {first_day} is after --to {last_day}")
    try:
        config = _load_config(config_path, input_path)
        if (first_day or all_days) and not config.daily:
            _fail(f"--date/--from/--all-days need a daily source ({{date}} in orders.path); "
                  f"{config_path} reads a snapshot, which every run reloads whole")
        plan = plan_run(config, public_file(Path(warehouse_path)), first_day, last_day, all_days)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
    if plan is None:
        click.echo("Nothing to load: the published warehouse already holds every landing file. Use --date, "
                   "--from/--to or --all-days to reload.")
        click.echo(f"Warehouse: {public_file(Path(warehouse_path))}")
        return
    from pipelines.core.resources import SourceResource, WarehouseResource
    from pipelines.runner import run_refresh, segmentation_strength, strength_line

    # Importing the graph leaves ~400k long-lived objects (Dagster, Great Expectations, pandas, scikit-learn).
    # Freezing them keeps every later full garbage collection from walking them again: the few during a run, and
    # the several Python makes while shutting down, which took 1.3-1.5 s at the end of every run.
    gc.freeze()
    # The same resources the code location builds from PERSONA_* variables, here from the flags.
    resources = {
        "warehouse": WarehouseResource(path=str(public_file(Path(warehouse_path))), memory_limit=memory_limit),
        "source": SourceResource(config_path=str(Path(config_path).resolve()),
                                 input_override=str(Path(input_path).resolve()) if input_path else ""),
    }
    dagster_home = prepare_dagster_home()
    click.echo(f"Loading {plan.describe()}.")
    outcome = run_refresh(plan, resources, dagster_home, verbose=verbose)
    if not outcome.success:
        _fail(f"run {outcome.run_id} failed: {outcome.reason}. The published warehouse is unchanged; "
              f"{_inspect_failed_run_hint(outcome.run_id, warehouse_path)}")
    warehouse = public_file(Path(warehouse_path))
    click.echo(f"Run {outcome.run_id} succeeded and published.")
    # Weak results that did not stop the run (warn-level checks), so they are not seen only in the event log.
    for line in outcome.warnings:
        click.echo(line)
    click.echo(f"Warehouse: {warehouse}")
    for report in sorted((warehouse.parent / "reports").glob("report_*.html")):
        click.echo(f"Report:    {report}")
    command, flag = _command_name(), _warehouse_flag(warehouse_path)
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
        _fail(str(exc))
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
def sql(query: str, warehouse_path: str, output_format: str, unpublished: bool) -> None:
    """Run a read-only SQL query against the published warehouse."""
    from pipelines.core.resources import raw_file_for, work_file_for
    from pipelines.serving import QueryRefused, run_read_only_query

    target = work_file_for(public_file(Path(warehouse_path))) if unpublished else Path(warehouse_path)
    try:
        frame = run_read_only_query(target, query, raw_file_for(target) if unpublished else None)
    except QueryRefused as exc:
        _fail(str(exc))
    if output_format == "csv":
        # CSV has no lists or structs: such columns are written as JSON text.
        nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
        flat = frame.with_columns(
            pl.col(name).map_elements(lambda value: json.dumps(value.to_list() if hasattr(value, "to_list")
                                                               else value, ensure_ascii=False, default=str),
                                      return_dtype=pl.String) for name in nested)
        click.echo(flat.write_csv(), nl=False)
    elif output_format == "json":
        click.echo(json.dumps(frame.to_dicts(), ensure_ascii=False, default=str, indent=2))
    else:
        with pl.Config(tbl_rows=200, tbl_cols=50, fmt_str_lengths=80, tbl_hide_dataframe_shape=True):
            click.echo(frame)


@main.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder to write into.")
@click.option("--warehouse", "warehouse_path", default=lambda: os.environ.get("PERSONA_WAREHOUSE", DEFAULT_WAREHOUSE),
              show_default=DEFAULT_WAREHOUSE, help="DuckDB warehouse file.")
@click.option("--segment", "segment_ids", type=int, multiple=True, help="Segment id to export (repeatable; "
              "default: every segment).")
@click.option("--format", "output_format", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@click.option("--pseudonymise", is_flag=True,
              help="Replace customer ids by salted SHA-256 tokens; the salt comes from PERSONA_ID_SALT.")
def export(out_dir: str, warehouse_path: str, segment_ids: tuple[int, ...], output_format: str,
           pseudonymise: bool) -> None:
    """Write one audience list per segment for activation tools."""
    from pipelines.serving import SALT_VARIABLE, QueryRefused, export_audiences

    try:
        written = export_audiences(Path(warehouse_path), Path(out_dir), output_format, list(segment_ids) or None,
                                   pseudonymise, os.environ.get(SALT_VARIABLE))
    except QueryRefused as exc:
        _fail(str(exc))
    for path, rows in written:
        click.echo(f"{path}: {rows:,} customers")


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
def generate(out_dir: str, customers: int, days: int, seed: int, shape: str, outlier_share: float,
             daily_files: bool) -> None:
    """Write realistic demo data with planted personas (and their truth) into OUT."""
    from pipelines.core.partitions import split_orders_by_day
    from pipelines.demo.generate import generate_demo_data

    if daily_files and shape != "long":
        _fail("--daily-files needs the long shape (baskets carry no order date)")
    try:
        written = generate_demo_data(Path(out_dir), customers=customers, days=days, seed=seed, shape=shape,
                                     outlier_share=outlier_share)
    except ValueError as exc:
        _fail(str(exc))
    click.echo(f"Wrote {written.customers:,} customers ({written.outliers:,} planted outliers) and "
               f"{written.order_lines:,} {'order lines' if shape == 'long' else 'baskets'} "
               f"to {Path(out_dir).resolve()}")
    if daily_files:
        landing = Path(out_dir) / "orders"
        days_written = split_orders_by_day(Path(out_dir) / "order_lines.csv", landing)
        click.echo(f"Laid out {days_written} daily landing folders under {landing.resolve()}")


if __name__ == "__main__":
    main()
