"""The code location as Dagster loads it: every asset, check, job, schedule and sensor, and resources that read
their settings from the environment when a run starts, not at import."""

import subprocess
import sys
from pathlib import Path

import dagster as dg

from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.definitions import defs
from tests.conftest import REPO_ROOT, child_env

EXPECTED_ASSETS = {
    "raw/orders", "raw/customers", "raw/products",
    "staging/orders", "staging/order_lines", "staging/customers", "staging/products", "staging/changed_customers",
    "staging/customers_built_from", "staging/order_takebacks",
    "quality/quarantine", "quality/retracted_lines", "quality/load_audit", "quality/key_conflicts", "quality/removed_duplicates", "quality/source_runs",
    "quality/validation_results", "quality/validated_inputs", "quality/validated_days", "quality/outliers", "quality/missing_values",
    "features/customer_features", "features/customer_order_stats",
    "model/customer_clusters", "model/segment_centers", "segments/model_runs",
    "segments/customer_segments", "segments/segment_profiles", "segments/segment_catalog",
    "segments/segment_category_affinity", "segments/segment_features", "segments/customer_segment_history",
    "segments/segment_migration", "segments/customer_value_tiers",
    "predict/churn_risk", "predict/churn_model_runs", "predict/churn_calibration", "predict/category_rules",
    "predict/next_category", "predict/recommendation_eval", "predict/customer_value", "predict/customer_value_eval",
    "predict/customer_value_deciles", "segments/audiences", "segments/audience_history",
    "campaigns/campaigns", "campaigns/assignments", "campaigns/results",
    "campaigns/uplift",
    "report/segment_report",
    "warehouse/published", "meta/publication", "meta/source_files", "meta/published_tables",
}

# check -> (the asset it hangs on, blocking)
EXPECTED_CHECKS = {
    "raw_orders_expectations": ("quality/validation_results", True),
    "raw_customers_expectations": ("quality/validation_results", True),
    "raw_products_expectations": ("quality/validation_results", True),
    "staging_products_expectations": ("quality/validation_results", True),
    "staging_orders_expectations": ("quality/validation_results", True),
    "staging_order_lines_expectations": ("quality/validation_results", True),
    "staging_customers_expectations": ("quality/validation_results", True),
    "load_audit_identity": ("quality/load_audit", True),
    "quarantine_share_within_limit": ("quality/load_audit", True),
    "category_count_within_limit": ("staging/order_lines", True),
    "amount_is_a_line_amount": ("staging/order_lines", False),
    "exact_copies_within_a_file": ("staging/order_lines", False),
    "free_lines_within_reason": ("staging/order_lines", False),
    "customer_id_names_a_person": ("staging/customers", False),
    "every_customer_segmented": ("segments/customer_segments", True),
    "churn_model_quality": ("predict/churn_model_runs", False),
    "recommendations_beat_popularity": ("predict/recommendation_eval", False),
    "customer_value_quality": ("predict/customer_value_eval", False),
}

LAYER_GROUPS = {"raw", "staging", "quality", "features", "model", "segments", "predict", "audiences", "campaigns",
                "report", "serving"}


def test_every_asset_is_in_the_graph_with_a_layer_group_and_a_description():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == EXPECTED_ASSETS
    nodes = [graph.get(dg.AssetKey.from_user_string(key)) for key in sorted(keys)]
    assert {node.group_name for node in nodes} == LAYER_GROUPS
    assert [node.key.to_user_string() for node in nodes if not node.description] == []


def test_every_check_hangs_on_its_asset_and_gates_as_intended():
    checks = {spec.name: (spec.asset_key.to_user_string(), spec.blocking)
              for checks_def in defs.asset_checks or [] for spec in checks_def.check_specs}
    for assets_def in defs.assets or []:
        for spec in getattr(assets_def, "check_specs", []):
            checks[spec.name] = (spec.asset_key.to_user_string(), spec.blocking)
    assert checks == EXPECTED_CHECKS


def test_publishing_depends_on_every_other_asset():
    graph = defs.resolve_asset_graph()
    published = graph.get(dg.AssetKey(["warehouse", "published"]))
    others = {key for key in graph.get_all_asset_keys()
              if key.path[0] not in ("warehouse", "meta")}
    assert others <= set(published.parent_keys)


def test_one_job_runs_everything_and_automation_starts_it():
    job = defs.resolve_job_def("refresh")
    graph = defs.resolve_asset_graph()
    assert set(job.asset_layer.selected_asset_keys) == set(graph.get_all_asset_keys())
    schedule = defs.resolve_schedule_def("nightly_refresh")
    assert (schedule.job_name, schedule.cron_schedule, schedule.execution_timezone) == (
        "refresh", "0 2 * * *", "Asia/Shanghai")
    assert defs.resolve_sensor_def("landing_files").job_name == "refresh"
    assert defs.resolve_sensor_def("notify_failure").name == "notify_failure"


def test_resources_read_the_environment_when_a_run_starts_not_at_import(monkeypatch, tmp_path):
    resources = defs.resources
    assert set(resources) == {"warehouse", "source"}
    assert isinstance(resources["warehouse"], WarehouseResource)
    assert isinstance(resources["source"], SourceResource)
    monkeypatch.setenv("PERSONA_WAREHOUSE", str(tmp_path / "w.duckdb"))
    monkeypatch.setenv("PERSONA_CONFIG", str(REPO_ROOT / "examples" / "demo.yaml"))
    with dg.build_resources({"warehouse": resources["warehouse"], "source": resources["source"]}) as built:
        assert built.warehouse.path == str(tmp_path / "w.duckdb")
        assert built.source.config_path == str(REPO_ROOT / "examples" / "demo.yaml")


def test_dagster_loads_the_code_location_named_in_pyproject(tmp_path):
    env = child_env()
    env["DAGSTER_HOME"] = str(tmp_path)
    (tmp_path / "dagster.yaml").write_bytes((REPO_ROOT / "dagster.yaml").read_bytes())
    done = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "persona_pipeline" in done.stdout + done.stderr
