"""The graph and the one job that runs it, assembled from the layer packages.

`build_definitions` takes the resources as an argument: the code location (pipelines/definitions.py) passes
resources read from the environment, `persona run` passes the ones its flags describe. Importing this module has
no side effects.
"""

from __future__ import annotations

import dagster as dg

import assets.audiences
import assets.campaigns
import assets.features
import assets.model
import assets.predict
import assets.raw
import assets.report
import assets.segments
import assets.staging
from assets.publish.swap import build_publish_asset
from pipelines.automation import build_automation
from quality import outliers
from quality.checks import ALL_CHECKS, expectations

__all__ = ["ALL_ASSETS", "ALL_CHECKS", "build_definitions", "refresh_job"]

# In the order data flows; quality's validation of the raw and staging tables (its Great Expectations suites, an
# asset with blocking checks) sits between staging and features, its outlier screen between features and model.
LAYERS = (assets.raw, assets.staging, expectations, assets.features, outliers, assets.model, assets.segments,
          assets.predict, assets.audiences, assets.campaigns, assets.report)


def _layer_assets() -> list[dg.AssetsDefinition]:
    found: list[dg.AssetsDefinition] = []
    for layer in LAYERS:
        if hasattr(layer, "__path__"):
            found.extend(dg.load_assets_from_package_module(layer))
        else:
            found.extend(dg.load_assets_from_modules([layer]))
    return found


LAYER_ASSETS = _layer_assets()
# Publishing comes last: it depends on every other asset, so a failed blocking check anywhere keeps it from running.
ALL_ASSETS = [*LAYER_ASSETS, build_publish_asset([key for a in LAYER_ASSETS for key in a.keys])]


# One job materializes the whole graph; the CLI, the schedule, the sensor and the UI all run this same job.
# Order ingest is daily-partitioned: a run names its days (a partition or a range); later layers use all days.
refresh_job = dg.define_asset_job(
    name="refresh",
    selection=dg.AssetSelection.all(),
    description="Load the run's landing days (raw, staging), refresh features, model, segments, report, publish.",
    executor_def=dg.in_process_executor,
)


def build_definitions(resources: dict[str, dg.ConfigurableResource]) -> dg.Definitions:
    nightly_refresh, landing_files, notify_failure = build_automation(refresh_job)
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=[refresh_job],
        schedules=[nightly_refresh],
        sensors=[landing_files, notify_failure],
        resources=resources,
    )
