"""The campaign store: `work/<name>.campaigns.duckdb`, beside the working database (see the package docstring for
why a file of its own). `persona campaign` (pipelines/campaign_cli.py) is its only writer and holds the run lock
while it writes; the nightly asset `campaigns/results` copies it into the working database, and so into the
published one.

Two tables, the same in the store and in the warehouse's `campaigns` schema:

- `campaigns`: one row per campaign: its segments, strategy, holdout, window, the salt of its split, the sizes of
  its groups and, for created campaigns, the minimum detectable effects printed at creation.
- `assignments`: one row per campaign and customer: `group_name` (treatment or control) and the segment the
  customer was in when assigned. Written once per campaign: a customer who joins the segment later is not added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import duckdb
import numpy as np
import polars as pl

from assets.campaigns.assignment import CONTROL, DEFAULT_SALT, GROUPS, TREATMENT, assign_groups
from assets.campaigns.stats import MIN_GROUP, mde_mean, mde_proportion
from pipelines.core.ids import normalise_id
from pipelines.core.resources import work_file_for

STORE_SUFFIX = ".campaigns"
RUNNING, CLOSED = "running", "closed"

CAMPAIGNS_DDL = """CREATE TABLE IF NOT EXISTS {prefix}campaigns (
    campaign VARCHAR PRIMARY KEY, strategy_key VARCHAR, segment_ids INTEGER[], holdout DOUBLE, start_day DATE,
    end_day DATE, salt VARCHAR, source VARCHAR, status VARCHAR, created_at TIMESTAMP, closed_at TIMESTAMP,
    treatment_customers BIGINT, control_customers BIGINT, baseline_conversion DOUBLE,
    baseline_revenue_per_customer DOUBLE, mde_conversion DOUBLE, mde_revenue_per_customer DOUBLE,
    design_note VARCHAR)"""
ASSIGNMENTS_DDL = """CREATE TABLE IF NOT EXISTS {prefix}assignments (
    campaign VARCHAR, customer_id VARCHAR, group_name VARCHAR, segment_id INTEGER, assigned_at TIMESTAMP,
    PRIMARY KEY (campaign, customer_id))"""


class CampaignError(ValueError):
    """A campaign command cannot do what was asked; the message says why in one line."""


def store_file_for(published: Path) -> Path:
    """work/<stem>.campaigns.duckdb beside the working database of the warehouse published at `published`."""
    work = work_file_for(published)
    return work.with_name(f"{work.stem}{STORE_SUFFIX}{work.suffix}")


def ensure_tables(con: duckdb.DuckDBPyConnection, prefix: str = "") -> None:
    con.execute(CAMPAIGNS_DDL.format(prefix=prefix))
    con.execute(ASSIGNMENTS_DDL.format(prefix=prefix))


def open_store(store: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    if read_only:
        if not store.is_file():
            con = duckdb.connect(":memory:")
        else:
            return duckdb.connect(str(store), read_only=True)
    else:
        store.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(store))
    ensure_tables(con)
    return con


@dataclass(frozen=True)
class Design:
    """What a campaign's group sizes can detect, from the members' orders over the last window as long as the
    campaign's, ending on the last order day of the published warehouse."""

    treatment: int
    control: int
    baseline_conversion: float | None
    baseline_revenue: float | None
    revenue_sd: float | None
    mde_conversion: float | None
    mde_revenue: float | None

    @property
    def too_small(self) -> bool:
        return min(self.treatment, self.control) < MIN_GROUP or self.mde_conversion is None

    def note(self) -> str | None:
        if min(self.treatment, self.control) < MIN_GROUP:
            return (f"control group too small for any verdict: {self.control} control and {self.treatment} treatment "
                    f"customers, at least {MIN_GROUP} in each are needed; raise --holdout or add segments")
        if self.mde_conversion is None:
            return ("control group too small for any verdict: not even a conversion rise to 100% would be "
                    "detected at 80% power; raise --holdout or add segments")
        return None


@dataclass(frozen=True)
class CreateOutcome:
    campaign: str
    assignments: pl.DataFrame  # customer_id, group_name, segment_id
    design: Design
    existed: bool  # the same campaign was already recorded: its assignment was kept as it was
    not_added: int  # current members of its segments who joined after it was created (not added)
    left: int = 0  # its customers no longer in its segments (they stay in it, in their group)
    window_note: str | None = None  # a new campaign's window starting on a day the orders already cover


def _published(published: Path) -> duckdb.DuckDBPyConnection:
    if not published.is_file():
        raise CampaignError(f"{published}: no published warehouse here; run `persona run` first or pass --warehouse")
    try:
        return duckdb.connect(str(published), read_only=True)
    except duckdb.Error as exc:
        raise CampaignError(f"{published}: cannot open read-only: {str(exc).splitlines()[0]}") from exc


def orders_through(published: Path) -> date | None:
    """The last day the published warehouse has orders for (None: no order yet)."""
    with _published(published) as con:
        last = con.execute("SELECT max(order_ts) FROM staging.orders").fetchone()[0]
    return last.date() if last is not None else None


def window_warning(start: date, end: date, through: date | None) -> str | None:
    """What is wrong with measuring a campaign made now over start..end, when the orders reach `through`: a split
    made now cannot have reached anyone on a day the orders already cover, yet those days' orders would count as the
    campaign's (a trial created a campaign whose window was over, and one starting two weeks back; both got
    verdicts)."""
    if through is None or start > through:
        return None
    if end <= through:
        return (f"the window {start}..{end} is over: the orders already reach {through}, and a split made now "
                "reached nobody then, so its verdict could only be 'no detectable effect' or chance; give a window "
                f"after {through}, or `persona campaign import` the groups a campaign that ran then really had")
    return (f"the window starts on {start}, but the orders already reach {through}: the split made now reached nobody "
            f"in {start}..{through}, yet those days' orders count as the campaign's; start the window after {through}")


def segment_members(published: Path, segment_ids: list[int]) -> pl.DataFrame:
    """customer_id, segment_id of the current members of the segments, from the published warehouse."""
    with _published(published) as con:
        known = [row[0] for row in con.execute(
            "SELECT DISTINCT segment_id FROM segments.customer_segments ORDER BY 1").fetchall()]
        unknown = sorted(set(segment_ids) - set(known))
        if unknown:
            raise CampaignError(f"no segment with id {unknown}; segments are {known}")
        return con.execute(
            "SELECT customer_id, segment_id FROM segments.customer_segments WHERE list_contains(?, segment_id) "
            "ORDER BY customer_id", [segment_ids]).pl()


def design_for(published: Path, assignments: pl.DataFrame, days: int) -> Design:
    """Baseline conversion and revenue per customer of these customers over the last `days` days of orders in the
    published warehouse, and the effects their groups can detect."""
    n_t = int((assignments["group_name"] == TREATMENT).sum())
    n_c = int((assignments["group_name"] == CONTROL).sum())
    with _published(published) as con:
        con.register("members", assignments.select("customer_id").to_arrow())
        last = con.execute("SELECT max(order_ts) FROM staging.orders").fetchone()[0]
        if last is None or assignments.height == 0:
            return Design(n_t, n_c, None, None, None, mde_proportion(None, n_t, n_c), None)
        end = datetime.combine(last.date() + timedelta(days=1), datetime.min.time())
        revenue = con.execute(
            """SELECT coalesce(sum(o.order_amount), 0) AS revenue, count(o.order_id) AS orders
               FROM members m LEFT JOIN staging.orders o
                 ON o.customer_id = m.customer_id AND o.order_ts >= ? AND o.order_ts < ?
               GROUP BY m.customer_id""", [end - timedelta(days=days), end]).pl()
    conversion = float((revenue["orders"] > 0).mean())
    values = revenue["revenue"].to_numpy().astype(float)
    sd = float(np.std(values, ddof=1)) if values.size > 1 else None
    return Design(n_t, n_c, conversion, float(values.mean()), sd, mde_proportion(conversion, n_t, n_c),
                  mde_mean(sd, n_t, n_c) if sd else None)


def _existing(con: duckdb.DuckDBPyConnection, name: str) -> dict | None:
    frame = con.execute("SELECT * FROM campaigns WHERE campaign = ?", [name]).pl()
    return frame.row(0, named=True) if frame.height else None


def _check_window(start: date, end: date) -> None:
    if end < start:
        raise CampaignError(f"--end {end} is before --start {start}")


def create_campaign(store: Path, published: Path, name: str, segment_ids: list[int], strategy: str | None,
                    holdout: float, start: date, end: date, salt: str = DEFAULT_SALT) -> CreateOutcome:
    """Record the campaign and split the current members of its segments into treatment and control. Run again
    with the same definition, it keeps the recorded assignment (the same split, which the hash reproduces anyway)
    and counts the members who joined since without adding them; a different definition under the same name is
    refused."""
    if not 0 < holdout < 1:
        raise CampaignError(f"--holdout {holdout} must lie between 0 and 1 (a share of the members held back)")
    if not segment_ids:
        raise CampaignError("name at least one --segment")
    _check_window(start, end)
    segment_ids = sorted(set(segment_ids))
    members = segment_members(published, segment_ids)
    days = (end - start).days + 1
    con = open_store(store)
    try:
        existing = _existing(con, name)
        if existing is not None:
            recorded = (sorted(existing["segment_ids"] or []), existing["holdout"], existing["start_day"],
                        existing["end_day"], existing["strategy_key"], existing["salt"])
            asked = (segment_ids, holdout, start, end, strategy, salt)
            if existing["source"] != "create" or recorded != asked:
                # Name what differs: a trial re-ran a create whose segment ids a re-clustering had since renumbered.
                fields = ("--segment", "--holdout", "--start", "--end", "--strategy", "--salt")
                differs = [f"{field} {theirs} (recorded {ours})" for field, ours, theirs in
                           zip(fields, recorded, asked, strict=True) if ours != theirs and field != "--salt"]
                differs += ["--salt differs"] if recorded[5] != salt else []
                if existing["source"] != "create":
                    differs.insert(0, f"it was recorded by `persona campaign {existing['source']}`")
                raise CampaignError(
                    f"campaign {name!r} is already recorded with another definition: {'; '.join(differs)}; re-run "
                    "`create` with the recorded definition to keep its split, or choose another name")
            assignments = con.execute(
                "SELECT customer_id, group_name, segment_id FROM assignments WHERE campaign = ? ORDER BY customer_id",
                [name]).pl()
            joined = members.join(assignments.select("customer_id"), on="customer_id", how="anti").height
            left = assignments.join(members.select("customer_id"), on="customer_id", how="anti").height
            # The design as recorded at creation: recomputed now, its baseline would be the campaign's own window
            # once the orders reach it (a trial's re-run printed the window's conversion as the baseline).
            recorded_design = Design(existing["treatment_customers"], existing["control_customers"],
                                     existing["baseline_conversion"], existing["baseline_revenue_per_customer"], None,
                                     existing["mde_conversion"], existing["mde_revenue_per_customer"])
            return CreateOutcome(name, assignments, recorded_design, True, joined, left)
        # A window the orders have passed is refused before anything is recorded (its name stays free); one they
        # have entered is said.
        through = orders_through(published)
        window_note = window_warning(start, end, through)
        if window_note and through is not None and end <= through:
            raise CampaignError(window_note)
        assignments = members.with_columns(
            pl.Series("group_name", assign_groups(name, members["customer_id"].to_list(), holdout, salt),
                      dtype=pl.String)).select("customer_id", "group_name", "segment_id")
        design = design_for(published, assignments, days)
        now = datetime.now(UTC).replace(tzinfo=None)
        con.execute("BEGIN")
        con.execute("INSERT INTO campaigns VALUES (?, ?, ?, ?, ?, ?, ?, 'create', ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?)", [
            name, strategy, segment_ids, holdout, start, end, salt, RUNNING, now, design.treatment, design.control,
            design.baseline_conversion, design.baseline_revenue, design.mde_conversion, design.mde_revenue,
            design.note()])
        con.register("new_assignments", assignments.to_arrow())
        con.execute("INSERT INTO assignments SELECT ?, customer_id, group_name, segment_id, ? FROM new_assignments",
                    [name, now])
        con.execute("COMMIT")
        return CreateOutcome(name, assignments, design, False, 0, window_note=window_note)
    finally:
        con.close()


def read_assignment_file(path: Path) -> pl.DataFrame:
    """customer_id, campaign, group (treatment/control) from a CSV or Parquet file made in another tool."""
    if not path.is_file():
        raise CampaignError(f"--file {path}: file not found")
    try:
        frame = (pl.read_parquet(path) if path.suffix.lower() == ".parquet"
                 else pl.read_csv(path, infer_schema=False))
    except Exception as exc:
        raise CampaignError(f"--file {path}: cannot read it: {str(exc).splitlines()[0]}") from exc
    columns = {column.strip().lower(): column for column in frame.columns}
    missing = [column for column in ("customer_id", "campaign", "group") if column not in columns]
    if missing:
        raise CampaignError(f"--file {path}: missing column(s) {missing}; expected customer_id, campaign, group")
    # Ids as staging reads them (pipelines/core/ids.py): a spreadsheet's 12399.0 or ="12399" is customer 12399.
    frame = frame.select(
        pl.col(columns["customer_id"]).cast(pl.String).map_elements(normalise_id, return_dtype=pl.String)
        .alias("customer_id"),
        pl.col(columns["campaign"]).cast(pl.String).str.strip_chars().alias("campaign"),
        pl.col(columns["group"]).cast(pl.String).str.strip_chars().str.to_lowercase().alias("group_name"))
    bad = frame.filter(~pl.col("group_name").is_in(GROUPS) | pl.col("customer_id").is_null()
                       | pl.col("campaign").is_null())
    if bad.height:
        raise CampaignError(f"--file {path}: {bad.height} row(s) without a customer, a campaign, or with a group other "
                            f"than treatment/control (first: {bad.row(0)})")
    duplicated = frame.filter(pl.struct("campaign", "customer_id").is_duplicated())
    if duplicated.height:
        raise CampaignError(f"--file {path}: customer {duplicated['customer_id'][0]} appears twice in campaign "
                            f"{duplicated['campaign'][0]!r}")
    return frame


class ImportedSizes(NamedTuple):
    treatment: int
    control: int
    unknown: int  # customers the published warehouse does not know (yet): measured as buying nothing until it does


def import_assignments(store: Path, published: Path, frame: pl.DataFrame, start: date | None, end: date | None,
                       strategy: str | None) -> dict[str, ImportedSizes]:
    """Record the campaigns of an assignment file (customer_id, campaign, group_name): each becomes a campaign of
    source `import` with the window --start..--end, its customers tagged with the segment they are in now (NULL for
    a customer the published warehouse does not know). A campaign already recorded is refused, and so is a file
    none of whose customers the warehouse knows: its ids are not the shop's (a trial's file of other ids was
    measured as "no detectable effect" night after night). Returns campaign -> sizes."""
    if start is None or end is None:
        raise CampaignError("--start and --end are needed: the window over which to measure the imported campaigns")
    _check_window(start, end)
    with _published(published) as pub:
        segments = pub.execute("SELECT customer_id, segment_id FROM segments.customer_segments").pl()
    frame = frame.join(segments, on="customer_id", how="left")
    if frame.height and frame["segment_id"].null_count() == frame.height:
        raise CampaignError(
            f"none of the {frame.height:,} customer ids of the file is a customer of the warehouse (e.g. "
            f"{frame['customer_id'][0]!r}, while the warehouse has ids like {_example_id(segments)}): import the ids "
            "the shop's exports use, as `persona export` writes them")
    names = sorted(frame["campaign"].unique().to_list())
    con = open_store(store)
    try:
        clash = [name for name in names if _existing(con, name) is not None]
        if clash:
            raise CampaignError(f"campaign(s) {clash} already recorded; an imported campaign needs a new name")
        now = datetime.now(UTC).replace(tzinfo=None)
        sizes = {}
        con.execute("BEGIN")
        for name in names:
            rows = frame.filter(pl.col("campaign") == name)
            n_t = int((rows["group_name"] == TREATMENT).sum())
            n_c = rows.height - n_t
            segment_ids = sorted(rows["segment_id"].drop_nulls().unique().to_list())
            holdout = n_c / rows.height
            design = design_for(published, rows, (end - start).days + 1)
            con.execute("INSERT INTO campaigns VALUES "
                        "(?, ?, ?, ?, ?, ?, NULL, 'import', ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?)", [
                            name, strategy, segment_ids, holdout, start, end, RUNNING, now, n_t, n_c,
                            design.baseline_conversion, design.baseline_revenue, design.mde_conversion,
                            design.mde_revenue, design.note()])
            sizes[name] = ImportedSizes(n_t, n_c, int(rows["segment_id"].null_count()))
        con.register("imported", frame.to_arrow())
        con.execute("INSERT INTO assignments SELECT campaign, customer_id, group_name, segment_id, ? FROM imported",
                    [now])
        con.execute("COMMIT")
        return sizes
    finally:
        con.close()


def _example_id(segments: pl.DataFrame) -> str:
    return repr(segments["customer_id"].min()) if segments.height else "none (no customer yet)"


def overlapping_campaigns(store: Path, name: str) -> list[tuple[str, date, date, int]]:
    """(campaign, start, end, shared customers) of the other running campaigns whose window overlaps `name`'s and
    that share customers with it: each one's control group may get the other's offer, so neither measures its own
    alone (a trial's two overlapping campaigns shared 1,319 customers with crossed groups)."""
    con = open_store(store, read_only=True)
    try:
        return con.execute(
            """SELECT o.campaign, o.start_day, o.end_day, count(*) AS shared
               FROM campaigns c JOIN assignments mine ON mine.campaign = c.campaign
               JOIN assignments theirs ON theirs.customer_id = mine.customer_id AND theirs.campaign <> c.campaign
               JOIN campaigns o ON o.campaign = theirs.campaign
               WHERE c.campaign = ? AND o.status = ? AND o.start_day <= c.end_day AND o.end_day >= c.start_day
               GROUP BY ALL ORDER BY shared DESC, o.campaign""", [name, RUNNING]).fetchall()
    finally:
        con.close()


def running_control_groups(store: Path, data_through: date | None) -> pl.DataFrame:
    """campaign, customer_id of the control groups of the campaigns still running: not closed, and whose window the
    orders (`data_through`, the last order day) have not yet passed. Sending them anything spoils the measurement
    (a trial's segment exports held 569 of a running campaign's 581 controls)."""
    con = open_store(store, read_only=True)
    try:
        return con.execute(
            """SELECT a.campaign, a.customer_id FROM assignments a JOIN campaigns c USING (campaign)
               WHERE a.group_name = ? AND c.status = ? AND (?::DATE IS NULL OR c.end_day > ?::DATE)
               ORDER BY a.campaign, a.customer_id""", [CONTROL, RUNNING, data_through, data_through]).pl()
    finally:
        con.close()


def list_campaigns(store: Path) -> pl.DataFrame:
    con = open_store(store, read_only=True)
    try:
        return con.execute(
            """SELECT campaign, status, source, strategy_key, segment_ids, holdout, start_day, end_day,
                      treatment_customers, control_customers, mde_conversion, mde_revenue_per_customer, design_note
               FROM campaigns ORDER BY start_day, campaign""").pl()
    finally:
        con.close()


def close_campaign(store: Path, name: str) -> bool:
    """Mark a campaign closed (it keeps being measured over its window). False when it already was."""
    con = open_store(store)
    try:
        existing = _existing(con, name)
        if existing is None:
            names = [row[0] for row in con.execute("SELECT campaign FROM campaigns ORDER BY 1").fetchall()]
            raise CampaignError(f"no campaign named {name!r}; campaigns are {names}")
        if existing["status"] == CLOSED:
            return False
        con.execute("UPDATE campaigns SET status = ?, closed_at = ? WHERE campaign = ?",
                    [CLOSED, datetime.now(UTC).replace(tzinfo=None), name])
        return True
    finally:
        con.close()


def format_effect(value: float | None, percent: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none detectable"
    return f"+{value * 100:.1f} percentage points" if percent else f"+{value:,.2f} per customer"
