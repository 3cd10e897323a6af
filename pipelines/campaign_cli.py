"""`persona campaign`: campaigns with holdout groups (issue 21). Registered in pipelines/cli.py with
`main.add_command(campaign)`.

The commands read the published warehouse (segment members, orders for the baseline) and write only the campaign
store beside the working database (assets/campaigns/store.py), holding the run lock while they write, so they never
race a `persona run`. The next run copies the store into the warehouse and measures every campaign
(`campaigns.results`, `campaigns.uplift`).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipelines.cli_common import fail, parse_day
from pipelines.core.resources import DEFAULT_WAREHOUSE, public_file, work_file_for

if TYPE_CHECKING:
    import polars

NAME_PATTERN = re.compile(r"^[\w.-]{1,64}$")




def warehouse_option(function):
    return click.option(
        "--warehouse", "warehouse_path", default=lambda: os.environ.get("PERSONA_WAREHOUSE", DEFAULT_WAREHOUSE),
        show_default=DEFAULT_WAREHOUSE, help="Published DuckDB warehouse file.")(function)


def wait_option(function):
    return click.option("--wait", is_flag=True, help="Wait for a run that holds the warehouse instead of failing.")(
        function)


@contextmanager
def _locked(published: Path, command: str, wait: bool):
    """The run lock of the warehouse (pipelines.runner.run_lock) while the campaign store is written."""
    from pipelines.runner import RunInProgress, run_lock

    try:
        with run_lock(work_file_for(published).parent, command=command, wait=wait,
                      on_wait=lambda message: click.echo(f"persona: {message}", err=True)):
            yield
    except RunInProgress as exc:
        fail(f"{exc}; try again when it is done, or pass --wait")


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _design_lines(design, days: int) -> list[str]:
    from assets.campaigns.store import format_effect

    span = "day" if days == 1 else f"{days} days"
    lines = [f"Minimum detectable effect (80% power, 5% significance, two-sided), with the members' last {span} "
             f"of orders as the baseline:",
             f"  conversion:           {format_effect(design.mde_conversion, percent=True)} "
             f"(baseline {_percent(design.baseline_conversion)})",
             f"  revenue per customer: {format_effect(design.mde_revenue, percent=False)} "
             f"(baseline {'n/a' if design.baseline_revenue is None else f'{design.baseline_revenue:,.2f}'})"]
    if design.note():
        lines.append(f"WARNING: {design.note()}")
    return lines


def write_audience(assignments: polars.DataFrame, campaign: str, out_dir: Path, output_format: str,
                   pseudonymised: bool) -> tuple[Path, int]:
    """The treatment group as an audience file, customer ids pseudonymised as `persona export` does."""
    import polars as pl

    from pipelines.serving import SALT_VARIABLE, pseudonymise

    audience = (assignments.filter(pl.col("group_name") == "treatment")
                .select("customer_id", pl.lit(campaign).alias("campaign"), "segment_id").sort("customer_id"))
    if pseudonymised:
        salt = os.environ.get(SALT_VARIABLE)
        if not salt:
            fail(f"pseudonymised ids need a secret salt: set {SALT_VARIABLE}")
        audience = audience.with_columns(
            pl.col("customer_id").map_elements(lambda value: pseudonymise(value, salt), return_dtype=pl.String))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"campaign_{campaign}_treatment.{output_format}"
    if output_format == "csv":
        audience.write_csv(target)
    else:
        audience.write_parquet(target)
    return target, audience.height


@click.group()
def campaign() -> None:
    """Campaigns with holdout groups: create, import, list, close. Measured by every nightly run."""


@campaign.command()
@click.option("--name", required=True, help="Campaign name: letters, digits, _ . - (at most 64).")
@click.option("--segment", "segment_ids", type=int, multiple=True, required=True,
              help="Segment id whose current members take part (repeatable).")
@click.option("--strategy", default=None, help="Playbook strategy key the campaign runs (assets/report/playbook.yaml).")
@click.option("--holdout", type=float, default=0.1, show_default=True,
              help="Share of the members held back as control.")
@click.option("--start", "start", required=True, help="First day of the campaign (YYYY-MM-DD).")
@click.option("--end", "end", required=True, help="Last day of the campaign (YYYY-MM-DD), included.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Folder for the treatment audience file [default: audiences/ beside the warehouse].")
@click.option("--format", "output_format", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@click.option("--pseudonymise", is_flag=True,
              help="Replace customer ids in the audience file by salted SHA-256 tokens (salt from PERSONA_ID_SALT).")
@click.option("--salt", default=None, help="Salt of the treatment/control hash [default: persona-campaign-v1].")
@warehouse_option
@wait_option
def create(name: str, segment_ids: tuple[int, ...], strategy: str | None, holdout: float, start: str, end: str,
           out_dir: str | None, output_format: str, pseudonymise: bool, salt: str | None, warehouse_path: str,
           wait: bool) -> None:
    """Record a campaign and split the current members of its segments into treatment and control by a salted
    hash of (campaign, customer); write the treatment audience; print the effects it can detect."""
    from assets.campaigns.assignment import DEFAULT_SALT
    from assets.campaigns.store import CampaignError, create_campaign, overlapping_campaigns, store_file_for
    from pipelines.serving import SALT_VARIABLE

    if not NAME_PATTERN.match(name):
        fail(f"--name {name!r}: use letters, digits, _ . - (at most 64 characters)")
    if pseudonymise and not os.environ.get(SALT_VARIABLE):
        fail(f"pseudonymised ids need a secret salt: set {SALT_VARIABLE}")
    first, last = parse_day(start), parse_day(end)
    published = public_file(Path(warehouse_path))
    with _locked(published, f"persona campaign create {name}", wait):
        try:
            outcome = create_campaign(store_file_for(published), published, name, list(segment_ids), strategy,
                                      holdout, first, last, salt or DEFAULT_SALT)
        except CampaignError as exc:
            fail(str(exc))
    design = outcome.design
    if outcome.existed:
        click.echo(f"Campaign {name} is already recorded with this definition: its assignment is unchanged "
                   f"({design.treatment:,} treatment, {design.control:,} control).")
        if outcome.not_added:
            click.echo(f"{outcome.not_added:,} current member(s) of its segments joined after it was created and are "
                       "not added to it.")
        if outcome.left:
            click.echo(f"{outcome.left:,} of its customers have left its segments since; they stay in it, in their "
                       "groups.")
        click.echo("Its design as recorded at creation:")
    else:
        click.echo(f"Campaign {name}: {design.treatment:,} treatment and {design.control:,} control customers "
                   f"(segments {', '.join(map(str, sorted(set(segment_ids))))}, holdout {holdout:.0%}, "
                   f"{first}..{last}).")
        if outcome.window_note:
            click.echo(f"warning: {outcome.window_note}", err=True)
        for other, other_first, other_last, shared in overlapping_campaigns(store_file_for(published), name):
            click.echo(f"warning: {shared:,} of its customers are in running campaign {other} too, whose window "
                       f"{other_first}..{other_last} overlaps: one campaign's control group may get the other's offer, "
                       "so neither measures its own alone; give them windows apart, or other segments", err=True)
    for line in _design_lines(design, (last - first).days + 1):
        click.echo(line)
    folder = Path(out_dir) if out_dir else published.parent / "audiences"
    target, rows = write_audience(outcome.assignments, name, folder, output_format, pseudonymise)
    click.echo(f"Treatment audience: {target} ({rows:,} customers)")


@campaign.command(name="import")
@click.option("--file", "file_path", required=True, type=click.Path(dir_okay=False),
              help="CSV or Parquet with columns customer_id, campaign, group (treatment or control).")
@click.option("--start", "start", default=None, help="First day of the imported campaigns (YYYY-MM-DD).")
@click.option("--end", "end", default=None, help="Last day of the imported campaigns (YYYY-MM-DD), included.")
@click.option("--strategy", default=None, help="Playbook strategy key the campaigns ran.")
@warehouse_option
@wait_option
def import_(file_path: str, start: str | None, end: str | None, strategy: str | None, warehouse_path: str,
            wait: bool) -> None:
    """Record assignments made in another tool (customer_id, campaign, group) as campaigns to measure."""
    from assets.campaigns.store import CampaignError, import_assignments, read_assignment_file, store_file_for

    published = public_file(Path(warehouse_path))
    try:
        frame = read_assignment_file(Path(file_path))
        bad = [name for name in frame["campaign"].unique().to_list() if not NAME_PATTERN.match(name)]
        if bad:
            raise CampaignError(f"campaign name(s) {bad}: use letters, digits, _ . - (at most 64 characters)")
        with _locked(published, "persona campaign import", wait):
            sizes = import_assignments(store_file_for(published), published, frame, parse_day(start), parse_day(end),
                                       strategy)
    except CampaignError as exc:
        fail(str(exc))
    for name, (treatment, control, unknown) in sizes.items():
        click.echo(f"Imported campaign {name}: {treatment:,} treatment, {control:,} control customers.")
        if unknown:
            click.echo(f"warning: {unknown:,} of them are not customers of the warehouse; they count as customers who "
                       "bought nothing unless a later load brings their orders", err=True)


@campaign.command(name="list")
@warehouse_option
def list_(warehouse_path: str) -> None:
    """Every recorded campaign with its status, groups and the effects it can detect."""
    import duckdb

    from assets.campaigns.store import format_effect, list_campaigns, store_file_for

    published = public_file(Path(warehouse_path))
    try:
        campaigns = list_campaigns(store_file_for(published))
    except duckdb.Error as exc:
        fail(f"cannot read the campaigns now ({str(exc).splitlines()[0]}); try again in a moment")
    if campaigns.height == 0:
        click.echo("No campaigns yet; create one with `persona campaign create`.")
        return
    for row in campaigns.iter_rows(named=True):
        segments = ", ".join(map(str, row["segment_ids"] or [])) or "-"
        click.echo(f"{row['campaign']}  [{row['status']}, {row['source']}]  {row['start_day']}..{row['end_day']}  "
                   f"segments {segments}  strategy {row['strategy_key'] or '-'}  "
                   f"treatment {row['treatment_customers']:,} / control {row['control_customers']:,}  "
                   f"MDE conversion {format_effect(row['mde_conversion'], percent=True)}, revenue per customer "
                   f"{format_effect(row['mde_revenue_per_customer'], percent=False)}")
        if row["design_note"]:
            click.echo(f"  WARNING: {row['design_note']}")


@campaign.command()
@click.argument("name")
@warehouse_option
@wait_option
def close(name: str, warehouse_path: str, wait: bool) -> None:
    """Mark a campaign closed; it keeps being measured over its window."""
    from assets.campaigns.store import CampaignError, close_campaign, store_file_for

    published = public_file(Path(warehouse_path))
    with _locked(published, f"persona campaign close {name}", wait):
        try:
            changed = close_campaign(store_file_for(published), name)
        except CampaignError as exc:
            fail(str(exc))
    click.echo(f"Campaign {name} {'closed' if changed else 'was already closed'}.")
