"""The Dagster code location: assembles assets, checks, the refresh job, its schedule and sensors. Nothing else."""

import gc

import dagster as dg

from assets import features, ingest, model, predict, publish, report, segments, staging, value_tiers
from pipelines.automation import build_automation
from pipelines.resources import resources_from_environment
from quality import checks, outliers

layer_assets = dg.load_assets_from_modules(
    [ingest, staging, features, outliers, model, segments, value_tiers, predict, report])
# Publishing comes last: it depends on every other asset, so a failed blocking check anywhere keeps it from running.
all_assets = [*layer_assets, publish.build_publish_asset([key for a in layer_assets for key in a.keys])]
all_checks = checks.ALL_CHECKS

# One job materializes the whole graph; the CLI, the schedule, the sensor and the UI all run this same job.
# Order ingest is daily-partitioned: a run names its days (a partition or a range); later layers use all days.
refresh_job = dg.define_asset_job(
    name="refresh",
    selection=dg.AssetSelection.all(),
    description="Load the run's landing days (raw, staging), refresh features, model, segments, report, publish.",
    executor_def=dg.in_process_executor,
)

nightly_refresh, landing_files, notify_failure = build_automation(refresh_job)

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[refresh_job],
    schedules=[nightly_refresh],
    sensors=[landing_files, notify_failure],
    resources=resources_from_environment(),
)

# Importing the definitions leaves ~400k long-lived objects (Dagster, Great Expectations, pandas, scikit-learn).
# Freezing them keeps every later full garbage collection from walking them again: the few during a run, and the
# several Python makes while shutting down, which took 1.3-1.5 s at the end of every run, whatever its size.
gc.freeze()
