"""`persona campaign` end to end on a generated shop with planted campaigns (issue 21): two nightly runs of the
whole graph around the campaign commands, which prove that campaigns survive publishing, that the planted effect is
recovered, and that the report's "效果评估 / Campaign results" section shows only checked numbers.

The commands are invoked through the click group itself (pipelines/campaign_cli.py), as `persona campaign` runs
them once registered in pipelines/cli.py."""


import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from assets.campaigns.store import store_file_for
from pipelines.campaign_cli import campaign
from pipelines.cli import main
from pipelines.demo.campaigns import PlantedCampaign
from pipelines.demo.generate import generate_demo_data
from pipelines.runner import run_lock
from pipelines.serving import pseudonymise
from tests.conftest import materialize_graph, query, work_db, write_file
from tests.e2e.test_report_browser import Chromium, inspect_report
from tests.graph.test_report import check_every_number, read_page

SALT = "test-salt"
PLANTED = 0.15
WINDOW = ("--start", "2026-02-10", "--end", "2026-02-23")


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(campaign, list(args), env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("campaigns")
    data = generate_demo_data(root / "data", customers=1500, days=60, seed=3, campaigns=[
        PlantedCampaign("spring", "family_shoppers", PLANTED, start=40, days=14),
        PlantedCampaign("null", None, 0.0, start=40, days=14)])
    config = write_file(root / "shop.yaml", f"name: campaigns\nshape: long\norders:\n  path: {data.orders_path}\n"
                                            f"customers:\n  path: {data.customers_path}\n"
                                            "model:\n  k_range: [3, 6]\n  bootstrap_rounds: 2\n"
                                            "predict:\n  horizon_days: 14\n")
    warehouse = root / "wh" / "warehouse.duckdb"
    assert materialize_graph(config, warehouse).success
    wh = ("--warehouse", str(warehouse))
    [(segment,)] = query(warehouse, "SELECT segment_id FROM segments.segment_profiles ORDER BY customers DESC, "
                                    "segment_id LIMIT 1")
    out = {
        "import": invoke("import", "--file", str(root / "data" / "campaign_assignments.csv"), *WINDOW,
                         "--strategy", "family_packs", *wh),
        "create": invoke("create", "--name", "fam", "--segment", str(segment), "--holdout", "0.2", "--start",
                         "2026-02-10", "--end", "2026-03-15", "--out", str(root / "audiences"), "--format",
                         "parquet", "--pseudonymise", *wh, env={"PERSONA_ID_SALT": SALT}),
        "tiny": invoke("create", "--name", "tiny", "--segment", str(segment), "--holdout", "0.01", "--start",
                       "2026-03-02", "--end", "2026-03-15", "--out", str(root / "audiences"), *wh),
        "over": invoke("create", "--name", "over", "--segment", str(segment), "--holdout", "0.2", *WINDOW,
                       "--out", str(root / "audiences"), *wh),
        "close": invoke("close", "tiny", *wh),
    }
    with duckdb.connect(str(store_file_for(warehouse)), read_only=True) as con:
        before = con.execute("SELECT campaign, customer_id, group_name FROM assignments ORDER BY 1, 2").fetchall()
    # The next night: a whole run, which replaces the published file.
    assert materialize_graph(config, warehouse).success
    return {"root": root, "warehouse": warehouse, "segment": segment, "out": out, "before": before, "wh": wh}


def test_create_prints_the_detectable_effects_and_writes_the_pseudonymised_audience(shop):
    done = shop["out"]["create"]
    assert done.exit_code == 0, done.output
    assert "Campaign fam:" in done.output and "holdout 20%" in done.output
    assert "Minimum detectable effect (80% power, 5% significance, two-sided)" in done.output
    assert "conversion:           +" in done.output and "percentage points (baseline" in done.output
    assert "revenue per customer: +" in done.output
    treatment = [customer for name, customer, group in shop["before"] if name == "fam" and group == "treatment"]
    audience = pl.read_parquet(shop["root"] / "audiences" / "campaign_fam_treatment.parquet")
    assert f"Treatment audience: {shop['root'] / 'audiences' / 'campaign_fam_treatment.parquet'} " \
           f"({len(treatment):,} customers)" in done.output
    assert sorted(audience["customer_id"]) == sorted(pseudonymise(c, SALT) for c in treatment)
    assert set(audience["campaign"]) == {"fam"} and set(audience["segment_id"]) == {shop["segment"]}


def test_a_window_the_orders_already_cover_is_said_at_creation(shop):
    # The demo's orders reach 2026-03-01: a split made now reached nobody on the days before.
    [(through,)] = query(shop["warehouse"], "SELECT max(order_ts)::DATE FROM staging.orders")
    assert str(through) == "2026-03-01"
    # A window the orders have passed is refused, and nothing is recorded under its name.
    over = shop["out"]["over"]
    assert over.exit_code == 1 and (f"the window 2026-02-10..2026-02-23 is over: the orders already reach {through}, "
                                    "and a split made now reached nobody then") in over.output
    assert "over" not in {name for name, _, _ in shop["before"]}
    assert (f"warning: the window starts on 2026-02-10, but the orders already reach {through}: the split made now "
            f"reached nobody in 2026-02-10..{through}, yet those days' orders count as the campaign's; start the "
            f"window after {through}") in shop["out"]["create"].output


def test_a_campaign_sharing_customers_with_a_running_one_in_an_overlapping_window_is_said(shop):
    # tiny (2026-03-02..15) takes the same segment as fam (2026-02-10..03-15), created before it and running.
    fam = {customer for name, customer, _ in shop["before"] if name == "fam"}
    tiny = {customer for name, customer, _ in shop["before"] if name == "tiny"}
    assert (f"warning: {len(fam & tiny):,} of its customers are in running campaign fam too, whose window "
            "2026-02-10..2026-03-15 overlaps: one campaign's control group may get the other's offer, so neither "
            "measures its own alone") in shop["out"]["tiny"].output


def test_a_control_group_too_small_is_named_at_creation_and_close_marks_it(shop):
    assert "WARNING: control group too small for any verdict" in shop["out"]["tiny"].output
    assert shop["out"]["close"].output.strip() == "Campaign tiny closed."
    assert invoke("close", "tiny", *shop["wh"]).output.strip() == "Campaign tiny was already closed."
    assert shop["out"]["import"].exit_code == 0
    assert "Imported campaign spring:" in shop["out"]["import"].output



def test_an_export_leaves_out_the_control_group_of_a_running_campaign(shop, tmp_path):
    # fam runs to 2026-03-15 and the orders reach 2026-03-01: its control group must get nothing yet (a trial's
    # segment exports held 569 of a running campaign's 581 controls). spring and null ended on 2026-02-23, tiny is
    # closed: theirs are exported.
    controls = {customer for name, customer, group in shop["before"] if name == "fam" and group == "control"}
    members = {row[0] for row in query(shop["warehouse"], "SELECT customer_id FROM segments.customer_segments "
                                                          "WHERE segment_id = ?", [shop["segment"]])}
    assert controls and controls <= members
    done = CliRunner().invoke(main, ["export", "--out", str(tmp_path / "out"), "--segment", str(shop["segment"]),
                                     "--warehouse", str(shop["warehouse"])], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    [path] = list((tmp_path / "out").iterdir())
    exported = set(pl.read_csv(path, schema_overrides={"customer_id": pl.String})["customer_id"])
    assert exported == members - controls
    assert (f"{path}: {len(members - controls):,} customers ({len(controls):,} left out: in the control group of a "
            "running campaign; --include-controls keeps them)") in done.output
    kept = CliRunner().invoke(main, ["export", "--out", str(tmp_path / "all"), "--segment", str(shop["segment"]),
                                     "--warehouse", str(shop["warehouse"]), "--include-controls"])
    assert kept.exit_code == 0 and f"{len(members):,} customers\n" in kept.output

def test_campaigns_survive_the_nightly_run_and_are_published(shop):
    warehouse = shop["warehouse"]
    assert query(warehouse, "SELECT campaign, status, source FROM campaigns.campaigns ORDER BY 1") == [
        ("fam", "running", "create"), ("null", "running", "import"), ("spring", "running", "import"),
        ("tiny", "closed", "create")]
    published = query(warehouse, "SELECT campaign, customer_id, group_name FROM campaigns.assignments ORDER BY 1, 2")
    assert published == shop["before"]
    # Measured per campaign x segment x group, and every uplift row has its verdict.
    assert query(warehouse, "SELECT count(*) FROM campaigns.results WHERE segment_id IS NULL") == [(8,)]
    assert query(warehouse, "SELECT count(*) FROM campaigns.uplift WHERE verdict IS NULL") == [(0,)]
    listed = invoke("list", *shop["wh"]).output
    assert "spring  [running, import]" in listed and "tiny  [closed, create]" in listed


def test_rerunning_create_keeps_the_assignment(shop):
    again = invoke("create", "--name", "fam", "--segment", str(shop["segment"]), "--holdout", "0.2", "--start",
                   "2026-02-10", "--end", "2026-03-15", "--out", str(shop["root"] / "again"), *shop["wh"])
    assert again.exit_code == 0, again.output
    assert "already recorded with this definition: its assignment is unchanged" in again.output
    # The design it prints is the one recorded at creation, not one recomputed over later orders (which, once they
    # reach the window, would take the campaign's own conversion for its baseline).
    design = [line for line in shop["out"]["create"].output.splitlines() if line.startswith("  ")]
    assert len(design) == 2 and design == [line for line in again.output.splitlines() if line.startswith("  ")]
    assert "Its design as recorded at creation:" in again.output
    with duckdb.connect(str(store_file_for(shop["warehouse"])), read_only=True) as con:
        after = con.execute("SELECT campaign, customer_id, group_name FROM assignments ORDER BY 1, 2").fetchall()
    assert after == shop["before"]
    other = invoke("create", "--name", "fam", "--segment", str(shop["segment"]), "--holdout", "0.3", *WINDOW,
                   *shop["wh"])
    assert other.exit_code == 1 and "already recorded with another definition" in other.output


def test_the_planted_effect_is_recovered_and_the_null_campaign_is_not_significant(shop):
    rows = {campaign: (uplift, low, high, verdict, step) for campaign, uplift, low, high, verdict, step in query(
        shop["warehouse"], "SELECT campaign, uplift, ci_low, ci_high, verdict, next_step FROM campaigns.uplift "
                           "WHERE segment_id IS NULL AND metric = 'conversion_rate'")}
    uplift, low, high, verdict, step = rows["spring"]
    assert low <= PLANTED <= high and verdict == "significant_gain" and step == "keep"
    assert rows["null"][3] == "no_detectable_effect" and rows["null"][1] < 0 < rows["null"][2]
    # fam's window runs past the last order day; tiny's control group is three customers or so.
    assert rows["fam"][3] == "too_early" and rows["fam"][4] == "wait"
    assert rows["tiny"][3] == "too_small"


def test_the_report_section_shows_checked_numbers_in_both_languages(shop, tmp_path):
    warehouse = shop["warehouse"]
    book = check_every_number(warehouse, warehouse.parent / "reports", tmp_path)
    for key in ("campaigns.count", "campaign.spring.conversion_rate.uplift", "campaign.spring.conversion_rate.ci_low",
                "campaign.spring.revenue_per_customer.ci_high", "campaign.fam.conversion_rate.data_through",
                "campaign.null.repeat_rate.p_value"):
        assert key in book.facts, key
    for language, title, verdict, step in (("zh", "效果评估", "显著提升", "保留"),
                                           ("en", "Campaign results", "a significant gain", "keep")):
        page = (warehouse.parent / "reports" / f"report_{language}.html").read_text(encoding="utf-8")
        section = page[page.index('<section id="campaigns">'):]
        section = section[:section.index("</section>")]
        assert f"<h2>{title}</h2>" in section and verdict in section and step in section
        shown = dict(read_page(warehouse.parent / "reports" / f"report_{language}.html").facts)
        assert shown["campaign.spring.conversion_rate.uplift"].startswith("+")
        # Per segment: a table row per campaign x segment (the segment at assignment), its numbers checked facts.
        assert '<table class="kpi" id="table-campaigns">' in section
        for segment_id, in query(warehouse, "SELECT DISTINCT segment_id FROM campaigns.uplift "
                                            "WHERE campaign = 'null' AND segment_id IS NOT NULL"):
            assert f'<tr data-segment="{segment_id}">' in section
            for column in ("treatment_customers", "control_customers", "uplift", "ci_low", "ci_high"):
                assert f"campaign.null.seg{segment_id}.conversion_rate.{column}" in shown, (segment_id, column)
            assert f"campaign.null.seg{segment_id}.revenue_per_customer.uplift" in shown
    assert (warehouse.parent / "reports" / "charts" / "campaigns_zh.png").is_file()
    # The playbook's family_packs strategy, which the imported campaigns ran, carries its last measured uplift.
    for language, words in (("zh", "最近一次评估：活动"), ("en", "last measured: campaign")):
        page = (warehouse.parent / "reports" / f"report_{language}.html").read_text(encoding="utf-8")
        strategies = page[page.index('<section id="strategies"'):]
        assert words in strategies, language


def test_commands_refuse_while_a_run_holds_the_warehouse_and_without_a_salt(shop):
    work = work_db(shop["warehouse"]).parent
    with run_lock(work, "some-run"):
        held = invoke("close", "fam", *shop["wh"])
    assert held.exit_code == 1 and "another run is in progress (run id some-run" in held.output
    unsalted = invoke("create", "--name", "nosalt", "--segment", str(shop["segment"]), *WINDOW, "--pseudonymise",
                      *shop["wh"], env={"PERSONA_ID_SALT": ""})
    assert unsalted.exit_code == 1 and "set PERSONA_ID_SALT" in unsalted.output
    assert "nosalt" not in invoke("list", *shop["wh"]).output
    unknown = invoke("create", "--name", "ghost", "--segment", "99", *WINDOW, *shop["wh"])
    assert unknown.exit_code == 1 and "no segment with id [99]" in unknown.output


def test_the_campaign_section_renders_in_chromium_in_both_languages(shop, tmp_path):
    chromium = Chromium(tmp_path / "profile")
    try:
        for language in ("zh", "en"):
            found = inspect_report(chromium, shop["warehouse"].parent / "reports" / f"report_{language}.html")
            assert found["status"]["failed"] == [] and found["status"]["rendered"] == found["status"]["charts"]
            assert [c for c in found["console"] if c[0] in ("error", "warning", "assert")] == []
            assert found["exceptions"] == [] and found["requests"] == [found["url"]]
            charts = {chart["id"]: chart for chart in found["charts"]}
            campaign_chart = next(chart for key, chart in charts.items() if "campaigns" in key)
            # Five panels of interval bars and points: a tall chart with many marks.
            assert campaign_chart["width"] > 300 and campaign_chart["height"] > 400, campaign_chart
            assert campaign_chart["marks"] >= 5 * 4, campaign_chart
            heading = chromium.evaluate("document.querySelector('#campaigns h2').textContent")
            assert heading == ("效果评估" if language == "zh" else "Campaign results")
    finally:
        chromium.close()
