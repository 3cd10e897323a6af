"""The Dagster code location: assembles assets, checks, the refresh job and its schedule. Nothing else."""

import os

import dagster as dg

from assets import features, ingest, model, predict, report, segments, staging, value_tiers
from pipelines.resources import resources_from_environment
from quality import checks, outliers

all_assets = dg.load_assets_from_modules([ingest, staging, features, outliers, model, segments, value_tiers, predict, report])
all_checks = checks.ALL_CHECKS

# One job materializes the whole graph; the CLI, the schedule and the UI all run this same job.
refresh_job = dg.define_asset_job(
    name="refresh",
    selection=dg.AssetSelection.all(),
    description="Full refresh: raw files to staging, features, model, segments and report.",
    executor_def=dg.in_process_executor,
)

# 02:00 in Shanghai unless the deployment says otherwise.
nightly_refresh = dg.ScheduleDefinition(
    name="nightly_refresh",
    job=refresh_job,
    cron_schedule=os.environ.get("PERSONA_SCHEDULE_CRON", "0 2 * * *"),
    execution_timezone=os.environ.get("PERSONA_SCHEDULE_TIMEZONE", "Asia/Shanghai"),
)

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[refresh_job],
    schedules=[nightly_refresh],
    resources=resources_from_environment(),
)
