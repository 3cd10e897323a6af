"""What starts runs unattended, and who hears about a failure.

- `nightly_refresh`: a schedule (02:00 Asia/Shanghai unless PERSONA_SCHEDULE_CRON / PERSONA_SCHEDULE_TIMEZONE
  say otherwise) that loads every new or changed landing day, or reloads a snapshot source.
- `landing_files`: a sensor that starts the same run as soon as a new or changed file lands; its run key is the
  set of files with their sizes and modification times, so one landing triggers one run.
- `notify_failure`: a run-failure sensor posting a JSON message to PERSONA_ALERT_WEBHOOK when it is set. The
  failed run is in the UI's run list either way.
Both the schedule and the sensor use the CLI's plan (pipelines.planning.plan_run), so all three agree on which
days a run loads.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request

import dagster as dg

from pipelines.core.config import ConfigError, SourceConfig
from pipelines.core.partitions import SCHEDULE_TIMEZONE
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.planning import PublishedFileDamaged, RunPlan, plan_refresh

WEBHOOK_VARIABLE = "PERSONA_ALERT_WEBHOOK"
WEBHOOK_TIMEOUT_SECONDS = 10


def _plan_from_resources(source: SourceResource, warehouse: WarehouseResource) -> RunPlan | str:
    """The run to start now, or the reason there is none."""
    try:
        config: SourceConfig = source.load()
        outcome = plan_refresh(config, warehouse.published_file)
    except ConfigError as exc:
        return f"source config problem: {exc}"
    except PublishedFileDamaged as exc:
        # `persona run` or `persona publish --repair` rebuilds it; a tick only says why it starts nothing.
        return str(exc)
    if outcome.plan is not None:
        return outcome.plan
    # A landing day still being written is pending, not absent: say so (the next tick loads it once settled).
    return "; ".join(outcome.notes) if outcome.notes else "no new or changed landing file"


# The same tags `persona run` puts on its runs (pipelines/runner.py), so the UI's run list tells shops apart.
SOURCE_TAG, CONFIG_TAG, WAREHOUSE_TAG = "persona/source", "persona/config", "persona/warehouse"


def _run_request(plan: RunPlan, run_key: str | None, source: SourceResource,
                 warehouse: WarehouseResource) -> dg.RunRequest:
    tags = {**plan.tags, CONFIG_TAG: source.config_path, WAREHOUSE_TAG: warehouse.path}
    # The plan read the config a moment ago; one edited since fails the run itself, with its reason.
    with contextlib.suppress(ConfigError):
        tags[SOURCE_TAG] = source.load().name
    return dg.RunRequest(run_key=run_key, partition_key=plan.partition_key, tags=tags)


def build_automation(job: dg.UnresolvedAssetJobDefinition):
    @dg.schedule(
        name="nightly_refresh",
        job=job,
        cron_schedule=os.environ.get("PERSONA_SCHEDULE_CRON", "0 2 * * *"),
        execution_timezone=SCHEDULE_TIMEZONE,
        description="The nightly refresh: at 02:00 in the shop's time zone (PERSONA_SCHEDULE_CRON, "
                    "PERSONA_SCHEDULE_TIMEZONE), load new or changed landing days, rebuild features, segments, "
                    "predictions and the report, and publish. Skips, with the reason, when nothing changed or the "
                    "source config has a problem.",
    )
    def nightly_refresh(context: dg.ScheduleEvaluationContext, source: SourceResource,
                        warehouse: WarehouseResource):
        plan = _plan_from_resources(source, warehouse)
        if isinstance(plan, str):
            return dg.SkipReason(plan)
        return _run_request(plan, None, source, warehouse)

    @dg.sensor(name="landing_files", job=job, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Every minute: starts the refresh when a landing file is new or changed since the last "
                           "publish (a late day, a corrected file), one run per change; runs nothing otherwise.")
    def landing_files(context: dg.SensorEvaluationContext, source: SourceResource, warehouse: WarehouseResource):
        plan = _plan_from_resources(source, warehouse)
        if isinstance(plan, str):
            return dg.SkipReason(plan)
        return _run_request(plan, plan.run_key, source, warehouse)

    @dg.run_failure_sensor(name="notify_failure", monitored_jobs=[job],
                           default_status=dg.DefaultSensorStatus.RUNNING,
                           description=f"When a refresh fails, posts the run id and the error to the webhook in "
                                       f"{WEBHOOK_VARIABLE} (Slack, Feishu and DingTalk read its `text`); does "
                                       "nothing without one.")
    def notify_failure(context: dg.RunFailureSensorContext):
        post_failure(context.dagster_run.run_id, context.dagster_run.job_name,
                     context.failure_event.message or "run failed")

    return nightly_refresh, landing_files, notify_failure


def post_failure(run_id: str, job_name: str, message: str, url: str | None = None) -> bool:
    """POST {"text", "run_id", "job", "message"} to the webhook (Slack-, Feishu- and DingTalk-style receivers
    read `text`). Returns False when no webhook is configured."""
    url = url or os.environ.get(WEBHOOK_VARIABLE)
    if not url:
        return False
    body = {
        "text": f"persona-pipeline: run {run_id} of {job_name} failed: {message}",
        "run_id": run_id,
        "job": job_name,
        "message": message,
    }
    request = urllib.request.Request(url, data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS):
        return True
