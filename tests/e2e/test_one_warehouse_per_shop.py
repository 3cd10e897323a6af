"""One warehouse per shop (issue 22, point 2), and what `persona run` shows while it runs (point 3).

A real-shaped export (the corpus's category lines with repeats) is loaded into a warehouse with `persona run`; a run of
the seed table (another source) into the same warehouse is refused, naming both sources, and changes nothing; with
`--replace` it runs, the old source's working state is set aside under work/replaced/, and the history starts again
with the seed table only. A schedule or UI run meets the same refusal inside the graph (the raw orders step).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.conftest import EXAMPLES, REPO_ROOT, SEED_BASKETS, child_env, materialize_graph, query

PERSONA = str(Path(sys.executable).parent / "persona")
SHOP = REPO_ROOT / "tests" / "fixtures" / "exports" / "category_lines_with_repeats"


def persona(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = child_env()
    env["DAGSTER_HOME"] = str(cwd / "home")
    return subprocess.run([PERSONA, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def run_id_of(done: subprocess.CompletedProcess) -> str:
    return re.search(r"^Run (\S+) succeeded and published", done.stdout, re.M).group(1)


@pytest.fixture(scope="module")
def shop_then_seed(tmp_path_factory):
    work = tmp_path_factory.mktemp("one-warehouse")
    shop = shutil.copytree(SHOP, work / "shop")
    first = persona("run", "--config", str(shop / "shop.yaml"), "--warehouse", "wh/warehouse.duckdb", cwd=work)
    assert first.returncode == 0, first.stderr
    warehouse = work / "wh" / "warehouse.duckdb"
    # The figures the summary must show, read before the seed table replaces the shop.
    first_figures = query(warehouse, """
        SELECT (SELECT count(*) FROM segments.customer_segments), (SELECT count(*) FROM segments.segment_profiles),
               sum(rows_read), sum(rows_loaded), sum(rows_quarantined), sum(duplicates_removed),
               sum(rows_read) FILTER (WHERE input = 'orders'), sum(rows_read) FILTER (WHERE input = 'customers'),
               sum(rows_set_aside)
        FROM quality.load_audit""")[0]
    seed = ("run", "--config", str(EXAMPLES / "baskets.yaml"), "--input", str(SEED_BASKETS),
            "--warehouse", "wh/warehouse.duckdb")
    refused = persona(*seed, cwd=work)
    published_after_refusal = query(warehouse, "SELECT source_name FROM quality.source_runs")
    replaced = persona(*seed, "--replace", cwd=work)
    return work, first, refused, published_after_refusal, replaced, first_figures


def test_each_step_is_shown_as_it_starts_and_ends_then_a_summary(shop_then_seed):
    _, first, _, _, _, figures = shop_then_seed
    lines = first.stdout.splitlines()
    # Not a terminal: one plain line per start and per end, the end with its elapsed time.
    assert any(re.fullmatch(r"\d\d:\d\d:\d\d start staging_tables", line) for line in lines)
    assert any(re.fullmatch(r"\d\d:\d\d:\d\d done staging_tables \(\d+\.\d s\)", line) for line in lines)
    assert any(re.fullmatch(r"\d\d:\d\d:\d\d done warehouse__published \(\d+\.\d s\)", line) for line in lines)
    starts = [line.split(" start ")[1] for line in lines if " start " in line]
    ends = [re.sub(r" \(.*", "", line.split(" done ")[1]) for line in lines if " done " in line]
    assert sorted(starts) == sorted(ends) and len(starts) >= 15
    # The summary, with the figures of the published warehouse.
    customers, segments, read, loaded, quarantined, removed, orders_read, members_read, set_aside = figures
    assert f"Customers: {customers:,} in {segments} segments" in lines
    # The bad lines make_exports.py plants in this layout: a guest order, a return and a cancelled order are set
    # aside, not faults; the fourth is.
    assert (quarantined, set_aside) == (4, 3)
    assert orders_read + members_read == read
    assert (f"Rows:      {read:,} read this run (orders {orders_read:,}, customers {members_read:,}), {loaded:,} "
            f"loaded, {quarantined:,} quarantined (3 of them set aside: cancelled, returned, free or without a customer "
            f"id), {removed:,} duplicates removed") in lines
    assert lines[-1].startswith("segmentation: ")


def test_another_source_is_refused_naming_both(shop_then_seed):
    work, first, refused, published_after_refusal, _, _ = shop_then_seed
    assert refused.returncode != 0
    message = refused.stderr.strip()
    assert len(message.splitlines()) == 1, message
    shop_name = yaml.safe_load((SHOP / "shop.yaml").read_text(encoding="utf-8"))["name"]
    assert f"warehouse {work / 'wh' / 'warehouse.duckdb'} holds source '{shop_name}'" in message
    assert "this run is source 'baskets'" in message and "--replace" in message
    assert "Loading" not in refused.stdout  # refused before planning or loading anything
    assert published_after_refusal == [(shop_name,)]


def test_replace_sets_the_old_source_aside_and_restarts_history(shop_then_seed):
    work, first, _, _, replaced, _ = shop_then_seed
    assert replaced.returncode == 0, replaced.stderr
    aside = next((work / "wh" / "work" / "replaced").iterdir())
    assert f"the previous source's working state is now in {aside}" in replaced.stdout
    assert {"warehouse.duckdb", "warehouse.raw.duckdb"} <= {path.name for path in aside.iterdir()}
    warehouse = work / "wh" / "warehouse.duckdb"
    assert query(warehouse, "SELECT source_name, run_id FROM quality.source_runs") == [
        ("baskets", run_id_of(replaced))]
    # History and migration start again: nothing links the seed table's segments to the old shop's.
    assert query(warehouse, "SELECT DISTINCT run_id FROM segments.customer_segment_history") == [
        (run_id_of(replaced),)]
    assert query(warehouse, "SELECT count(*) FROM segments.segment_migration WHERE from_segment_id IS NOT NULL")[0][0] == 0
    assert query(warehouse, "SELECT count(*) FROM segments.customer_segments")[0][0] == 999
    # The old source's history is kept where it was set aside.
    assert query(aside / "warehouse.duckdb", "SELECT DISTINCT run_id FROM segments.customer_segment_history") == [
        (run_id_of(first),)]


def test_a_run_started_outside_the_cli_is_refused_in_the_graph(tmp_path):
    """The schedule or the UI pointed at another shop's config: the raw orders step refuses before loading."""
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    shop = shutil.copytree(SHOP, tmp_path / "shop")
    assert materialize_graph(shop / "shop.yaml", warehouse).success
    result = materialize_graph(EXAMPLES / "baskets.yaml", warehouse, input_override=str(SEED_BASKETS))
    assert not result.success
    failure = next(event for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert failure.step_key == "raw__orders"
    assert "this run is source 'baskets'" in failure.step_failure_data.error.message
