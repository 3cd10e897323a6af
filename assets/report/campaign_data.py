"""What the report reads of the campaign layer (assets/campaigns): the uplift of every campaign as a whole
(campaigns.uplift, segment_id NULL) with its definition (campaigns.campaigns), and, in the column `segment_rows`
of each such row, the same metric's rows per segment (segment at assignment). Empty when the tables are missing
(a warehouse from before the layer) or hold no campaign."""

from __future__ import annotations

import duckdb
import polars as pl

from assets.report.facts import FactBook, Sentence, compose
from pipelines.core.sql import table_exists

CAMPAIGN_UPLIFT_SQL = """
    SELECT u.*, c.status, c.source, c.holdout, c.segment_ids
    FROM campaigns.uplift u JOIN campaigns.campaigns c USING (campaign)
    WHERE u.segment_id IS NULL
    ORDER BY u.start_day DESC, u.campaign, u.metric"""


SEGMENT_UPLIFT_SQL = """
    SELECT campaign, metric, segment_id, treatment_customers, control_customers, treatment_value, control_value,
           uplift, ci_low, ci_high, p_value, mde_now, verdict, next_step
    FROM campaigns.uplift WHERE segment_id IS NOT NULL
    ORDER BY campaign, metric, segment_id"""
SEGMENT_FIELDS = ("segment_id", "treatment_customers", "control_customers", "treatment_value", "control_value",
                  "uplift", "ci_low", "ci_high", "p_value", "mde_now", "verdict", "next_step")


def load_campaigns(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    present = table_exists(con, "campaigns.uplift") and table_exists(con, "campaigns.campaigns")
    if not present:
        return pl.DataFrame()
    whole = con.execute(CAMPAIGN_UPLIFT_SQL).pl()
    if whole.height == 0:
        return whole
    # One list per whole-campaign row: its metric's rows per segment, in segment order (empty list for none).
    segments = (con.execute(SEGMENT_UPLIFT_SQL).pl()
                .group_by("campaign", "metric", maintain_order=True)
                .agg(pl.struct(*SEGMENT_FIELDS).alias("segment_rows")))
    joined = whole.join(segments, on=["campaign", "metric"], how="left", maintain_order="left")
    return joined.with_columns(pl.col("segment_rows").fill_null(pl.lit([], dtype=segments.schema["segment_rows"])))


UPLIFT_SQL = "SELECT {column} FROM campaigns.uplift WHERE campaign = ? AND segment_id IS NULL AND metric = ?"
SEGMENT_SQL = "SELECT {column} FROM campaigns.uplift WHERE campaign = ? AND segment_id = ? AND metric = ?"
VERDICT_TEXT = {
    "significant_gain": ("显著提升", "a significant gain"),
    "no_detectable_effect": ("未检测到效果", "no detectable effect"),
    "harm": ("有害", "harm"),
    "too_early": ("为时尚早", "too early"),
    "too_small": ("对照组过小", "control group too small"),
}


def uplift_fact(book: FactBook, row: dict, column: str, kind: str):
    """A number of one campaigns.uplift row of a whole campaign, proved by reading that row."""
    return book.add(f"campaign.{row['campaign']}.{row['metric']}.{column}", kind, row[column],
                    UPLIFT_SQL.format(column=column), [row["campaign"], row["metric"]])


def segment_fact(book: FactBook, campaign: str, metric: str, row: dict, column: str, kind: str):
    """A number of one campaigns.uplift row of a campaign's segment, proved by reading that row."""
    segment_id = row["segment_id"]
    return book.add(f"campaign.{campaign}.seg{segment_id}.{metric}.{column}", kind, row[column],
                    SEGMENT_SQL.format(column=column), [campaign, segment_id, metric])


def last_measured(campaigns: pl.DataFrame, book: FactBook, strategy_key: str) -> dict[str, Sentence] | None:
    """"Last measured: campaign X, conversion +12.4 percentage points (+3.1 to +21.3): a significant gain", for the
    most recent campaign (latest end day) that ran the strategy; None when none did."""
    if campaigns.height == 0:
        return None
    rows = campaigns.filter((pl.col("strategy_key") == strategy_key) & (pl.col("metric") == "conversion_rate"))
    if rows.height == 0:
        return None
    row = rows.sort(["end_day", "campaign"], descending=[True, False]).row(0, named=True)
    name = book.add(f"campaign.{row['campaign']}.name", "text", row["campaign"],
                    "SELECT campaign FROM campaigns.campaigns WHERE campaign = ?", [row["campaign"]])
    zh_verdict, en_verdict = VERDICT_TEXT[row["verdict"]]
    # No interval beside a control group too small to trust one (sections_campaigns._metric).
    if row["uplift"] is None or row["ci_low"] is None or row["verdict"] == "too_small":
        return {"zh": compose("最近一次评估：活动 {a}，{v}", a=name, v=zh_verdict),
                "en": compose("last measured: campaign {a}, {v}", a=name, v=en_verdict)}
    u, lo, hi = (uplift_fact(book, row, column, "pp") for column in ("uplift", "ci_low", "ci_high"))
    return {"zh": compose("最近一次评估：活动 {a}，转化率 {u} 个百分点（{lo} 至 {hi}），{v}", a=name, u=u, lo=lo, hi=hi,
                          v=zh_verdict),
            "en": compose("last measured: campaign {a}, conversion {u} percentage points ({lo} to {hi}), {v}",
                          a=name, u=u, lo=lo, hi=hi, v=en_verdict)}
