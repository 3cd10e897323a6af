"""Campaigns with a known effect, planted into generated demo data (issue 21), so the campaign statistics
(assets/campaigns) can be checked against a right answer.

A planted campaign targets the customers of one persona (or every customer), splits them into treatment and
control at random (seeded; the generator stands below the pipeline's layers, so it does not borrow the hash of
`persona campaign create`: the split reaches the pipeline through `persona campaign import`), and raises the
treatment group's conversion over the campaign window by exactly `uplift` in expectation: with p0 the share of
the targeted customers who already buy in the window, each treatment customer who does not gets one extra order
in the window with probability uplift / (1 - p0), so the treatment's expected conversion is p0 + uplift while the
control keeps p0. An `uplift` of 0 plants a null campaign: the split is made, nothing changes. The extra order
repeats one of the customer's own order lines (category, price, payment, channel) at a seeded time in the window.

Written beside the generated files:
- `campaign_assignments.csv`: customer_id, campaign, group -- what `persona campaign import --file` reads;
- `campaigns_truth.csv`: per campaign its persona, holdout, window, planted uplift, p0 and group sizes.

The generator's other files are unchanged unless campaigns are planted (then order_lines.csv gains the extra
orders at its end), and the same arguments give byte-identical files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

TREATMENT, CONTROL = "treatment", "control"
ASSIGNMENTS_FILE = "campaign_assignments.csv"
TRUTH_FILE = "campaigns_truth.csv"
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class PlantedCampaign:
    """`start` is the first day of the window as days after the generator's start date; `days` its length."""

    name: str
    persona: str | None
    uplift: float
    start: int
    days: int
    holdout: float = 0.5

    def window(self, start_date: date) -> tuple[date, date]:
        first = start_date + timedelta(days=self.start)
        return first, first + timedelta(days=self.days - 1)


# `persona generate --campaigns`: a two-week coupon that raised the conversion of the family shoppers by 10 points,
# and a null campaign on every customer over the same weeks, ending a week before the data does (so a run judges
# them as finished). Split half and half, so the demo's 10-point effect is clearly detectable; real campaigns hold
# back 10-30% and need larger segments for the same power.
DEMO_UPLIFT = 0.10
DEMO_CAMPAIGN_DAYS = 14
DEMO_CAMPAIGN_GAP_DAYS = 7
DEMO_MIN_DAYS = 28


def demo_campaigns(days: int) -> list[PlantedCampaign]:
    """The campaigns `persona generate --campaigns` plants into `days` days of orders."""
    if days < DEMO_MIN_DAYS:
        raise ValueError(f"--campaigns needs at least {DEMO_MIN_DAYS} days of orders (got {days}): the campaigns run "
                         f"{DEMO_CAMPAIGN_DAYS} days, ending {DEMO_CAMPAIGN_GAP_DAYS} days before the data does")
    start = days - DEMO_CAMPAIGN_GAP_DAYS - DEMO_CAMPAIGN_DAYS
    return [PlantedCampaign("demo_coupon", "family_shoppers", DEMO_UPLIFT, start=start, days=DEMO_CAMPAIGN_DAYS),
            PlantedCampaign("demo_null", None, 0.0, start=start, days=DEMO_CAMPAIGN_DAYS)]


def plant_campaigns(out_dir: Path, campaigns: Sequence[PlantedCampaign], seed: int,
                    start_date: date = date(2026, 1, 1)) -> pl.DataFrame:
    """Plant `campaigns` into the long-shape files in `out_dir` (order_lines.csv, truth.csv) and write the
    assignment and truth files. Returns the truth frame."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng([seed, 21])
    lines = pl.read_csv(out_dir / "order_lines.csv", infer_schema=False)
    truth = pl.read_csv(out_dir / "truth.csv", infer_schema=False).select("customer_id", "persona")
    order_day = pl.col("order_ts").str.slice(0, 10)
    assignments, truths, extra = [], [], []
    for index, campaign in enumerate(campaigns):
        if not 0 <= campaign.uplift < 1:
            raise ValueError(f"campaign {campaign.name}: uplift {campaign.uplift} must lie in [0, 1)")
        members = truth if campaign.persona is None else truth.filter(pl.col("persona") == campaign.persona)
        if members.height == 0:
            raise ValueError(f"campaign {campaign.name}: no customer of persona {campaign.persona!r}")
        ids = members["customer_id"].to_list()
        groups = np.where(rng.random(len(ids)) < campaign.holdout, CONTROL, TREATMENT).tolist()
        split = pl.DataFrame({"customer_id": ids, "campaign": campaign.name, "group": groups})
        assignments.append(split)
        first, last = campaign.window(start_date)
        bought = set(lines.filter(order_day.is_between(pl.lit(first.isoformat()), pl.lit(last.isoformat())))
                     ["customer_id"].unique().to_list())
        buying = np.array([customer in bought for customer in ids])
        p0 = float(buying.mean())
        chance = min(campaign.uplift / (1 - p0), 1.0) if p0 < 1 else 0.0
        treated = np.array([group == TREATMENT for group in groups])
        draws = rng.random(len(ids))
        chosen = [customer for customer, pick in zip(ids, treated & ~buying & (draws < chance)) if pick]
        if chosen:
            extra.append(_extra_orders(lines, chosen, index, first, campaign.days, rng))
        truths.append({"campaign": campaign.name, "persona": campaign.persona, "holdout": campaign.holdout,
                       "start_day": first.isoformat(), "end_day": last.isoformat(), "planted_uplift": campaign.uplift,
                       "baseline_conversion": p0, "treatment": int(treated.sum()),
                       "control": int(sum(group == CONTROL for group in groups)), "extra_orders": len(chosen)})
    if extra:
        with (out_dir / "order_lines.csv").open("ab") as handle:
            pl.concat(extra).select(lines.columns).write_csv(handle, include_header=False)
    (pl.concat(assignments) if assignments else pl.DataFrame(
        schema={"customer_id": pl.String, "campaign": pl.String, "group": pl.String})
     ).write_csv(out_dir / ASSIGNMENTS_FILE)
    frame = pl.DataFrame(truths)
    frame.write_csv(out_dir / TRUTH_FILE)
    return frame


def _extra_orders(lines: pl.DataFrame, customers: list[str], index: int, first: date, days: int,
                  rng: np.random.Generator) -> pl.DataFrame:
    """One order line per customer: a copy of one of its own lines, with a new order id and a time in the window."""
    own = lines.filter(pl.col("customer_id").is_in(customers)).group_by("customer_id", maintain_order=True).first()
    own = own.sort("customer_id")
    seconds = rng.integers(0, days * 86400, own.height)
    start = datetime.combine(first, datetime.min.time())
    stamps = [(start + timedelta(seconds=int(s))).strftime(_TIME_FORMAT) for s in seconds]
    return own.with_columns(
        pl.Series("order_id", [f"K{index:02d}{n:07d}" for n in range(1, own.height + 1)]),
        pl.Series("order_ts", stamps))
