"""Audiences (issue 22 point 5) through the whole graph: an audience defined in YAML appears in segments.audiences
with exactly the customers a direct SQL of its rule selects, its size is in segments.audience_history once per run
and kept across runs, its export works (CSV with a UTF-8 BOM, through `persona export --audience`), a config
without audiences gives empty tables, and a rule that tries to read a file is refused before anything runs."""

from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from assets.audiences.summary import load_audience_summary
from assets.report.facts import FactBook, format_value
from assets.report.sections_audiences import audiences_html
from pipelines.cli import main
from pipelines.core.config import ConfigError, load_source_config
from pipelines.demo.generate import generate_demo_data
from pipelines.runner import _failure_reason
from pipelines.serving import QueryRefused, export_audiences
from tests.conftest import daily_shop, materialize_graph, query, work_db, write_file

BOM = b"\xef\xbb\xbf"
AUDIENCES = """
audiences:
  - name: high_value_at_risk
    description: High-value customers likely to churn
    rule: "value_tier = 'high_value' and churn_risk >= 0.2"
  - name: loyal_big_spenders
    rule: |
      n_orders >= 3 -- repeat buyers
      and total_spend > 100 and not is_outlier
  - name: nobody
    rule: "n_orders < 0"
"""
EXTRA = """  - name: next_top_pick
    rule: "len(next_categories) > 0 and segment_id in (1, 2)"
"""
# The rules written out directly over the published tables, independently of the view the asset builds.
DIRECT_SQL = {
    "high_value_at_risk": """SELECT customer_id FROM segments.customer_value_tiers JOIN predict.churn_risk
                             USING (customer_id) WHERE value_tier_key = 'high_value' AND churn_risk >= 0.2""",
    "loyal_big_spenders": """SELECT customer_id FROM features.customer_features JOIN segments.customer_segments
                             USING (customer_id) WHERE n_orders >= 3 AND total_spend > 100 AND NOT is_outlier""",
    "nobody": "SELECT customer_id FROM features.customer_features WHERE n_orders < 0",
    "next_top_pick": """SELECT DISTINCT customer_id FROM predict.next_category JOIN segments.customer_segments
                        USING (customer_id) WHERE segment_id IN (1, 2)""",
}


def _members(warehouse: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for audience, customer_id in query(warehouse, "SELECT audience, customer_id FROM segments.audiences"):
        found.setdefault(audience, set()).add(customer_id)
    return found


def scored_shop(root: Path, customers: int = 300, seed: int = 11) -> Path:
    """Generated orders over 70 days with a 14-day churn horizon: long enough for churn risk to be scored."""
    data = generate_demo_data(root / "data", customers=customers, days=70, seed=seed)
    return write_file(root / "shop.yaml", f"""
name: audiences
shape: long
orders:
  path: {data.orders_path}
  date_formats: ["%Y-%m-%d %H:%M:%S"]
customers:
  path: {data.customers_path}
model:
  k_range: [3, 5]
  bootstrap_rounds: 2
predict:
  horizon_days: 14
""")


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> tuple[Path, Path, list]:
    """A small shop run twice: the second run with one more audience."""
    root = tmp_path_factory.mktemp("audiences")
    config = scored_shop(root)
    base = config.read_text(encoding="utf-8")
    config.write_text(base + AUDIENCES, encoding="utf-8")
    warehouse = root / "wh" / "warehouse.duckdb"
    first = materialize_graph(config, warehouse)
    assert first.success, _failure_reason(first)
    config.write_text(base + AUDIENCES + EXTRA, encoding="utf-8")
    second = materialize_graph(config, warehouse)
    assert second.success, _failure_reason(second)
    return config, warehouse, [first.run_id, second.run_id]


def test_members_are_exactly_what_a_direct_sql_of_each_rule_selects(shop):
    _, warehouse, _ = shop
    members = _members(warehouse)
    for name, sql in DIRECT_SQL.items():
        expected = {row[0] for row in query(warehouse, sql)}
        assert members.get(name, set()) == expected, name
    assert members["high_value_at_risk"] and members["loyal_big_spenders"] and members["next_top_pick"]
    assert "nobody" not in members
    # One row per audience and member.
    assert query(warehouse, "SELECT count(*) = count(DISTINCT (audience, customer_id)) FROM segments.audiences") \
        == [(True,)]


def test_history_holds_one_row_per_audience_per_run_kept_across_runs(shop):
    _, warehouse, run_ids = shop
    rows = query(warehouse, """SELECT run_id, audience, customers, share, rule, description
                               FROM segments.audience_history ORDER BY computed_at, audience""")
    assert [(run, audience) for run, audience, *_ in rows] == [
        (run_ids[0], "high_value_at_risk"), (run_ids[0], "loyal_big_spenders"), (run_ids[0], "nobody"),
        (run_ids[1], "high_value_at_risk"), (run_ids[1], "loyal_big_spenders"), (run_ids[1], "next_top_pick"),
        (run_ids[1], "nobody")]
    customers = query(warehouse, "SELECT count(*) FROM segments.customer_segments")[0][0]
    members = _members(warehouse)
    for _, audience, size, share, _, _ in rows[3:]:
        assert size == len(members.get(audience, set()))
        assert share == pytest.approx(size / customers)
    assert rows[0][4] == "value_tier = 'high_value' and churn_risk >= 0.2"
    assert rows[0][5] == "High-value customers likely to churn"
    # Kept in the working database between runs, as the published copy shows.
    assert len(query(work_db(warehouse), "SELECT * FROM segments.audience_history")) == 7


def test_an_audience_exports_like_a_segment_with_a_bom_and_its_rows(shop, tmp_path):
    _, warehouse, _ = shop
    members = _members(warehouse)
    written = export_audiences(warehouse, tmp_path / "out", "csv", audience_names=["high_value_at_risk", "nobody"])
    assert [(path.name, rows) for path, rows, _ in written] == [
        ("audience_high_value_at_risk.csv", len(members["high_value_at_risk"])), ("audience_nobody.csv", 0)]
    data = written[0][0].read_bytes()
    assert data.startswith(BOM)
    frame = pl.read_csv(written[0][0], encoding="utf8", schema_overrides={"customer_id": pl.String})
    assert set(frame["customer_id"]) == members["high_value_at_risk"]
    segment_file = export_audiences(warehouse, tmp_path / "seg", "csv", segment_ids=[1])[0][0]
    assert frame.columns == pl.read_csv(segment_file, encoding="utf8").columns
    assert written[1][0].read_bytes().startswith(BOM)

    parquet = export_audiences(warehouse, tmp_path / "pq", "parquet", pseudonymised=True, salt="s",
                               audience_names=["loyal_big_spenders"])
    tokens = pl.read_parquet(parquet[0][0])["customer_id"]
    assert tokens.len() == len(members["loyal_big_spenders"])
    assert not set(tokens) & members["loyal_big_spenders"]

    with pytest.raises(QueryRefused, match=r"no audience named \['missing'\]; audiences are \['high_value_at_risk'"):
        export_audiences(warehouse, tmp_path / "x", "csv", audience_names=["missing"])

    done = CliRunner().invoke(main, ["export", "--out", str(tmp_path / "cli"), "--warehouse", str(warehouse),
                                     "--audience", "loyal_big_spenders", "--audience", "next_top_pick"])
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == [
        "audience_loyal_big_spenders.csv", "audience_next_top_pick.csv"]
    assert (tmp_path / "cli" / "audience_next_top_pick.csv").read_bytes().startswith(BOM)


def test_a_config_without_audiences_gives_empty_tables_and_a_rule_reading_a_file_is_refused(tmp_path):
    config = daily_shop(tmp_path, customers=200, seed=3)
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    result = materialize_graph(config, warehouse)
    assert result.success, _failure_reason(result)
    assert query(warehouse, "SELECT count(*) FROM segments.audiences") == [(0,)]
    assert query(warehouse, "SELECT count(*) FROM segments.audience_history") == [(0,)]
    with pytest.raises(QueryRefused, match=r"no audience named \['any'\]; audiences are \[\]"):
        export_audiences(warehouse, tmp_path / "x", "csv", audience_names=["any"])

    # A rule that tries to read a file never reaches the warehouse: the config is refused when it loads.
    config.write_text(config.read_text(encoding="utf-8") + """
audiences:
  - name: leak
    rule: "customer_id in (select column0 from read_csv('/etc/passwd'))"
""", encoding="utf-8")
    with pytest.raises(ConfigError, match="audience leak: subqueries are not allowed"):
        load_source_config(config)


def test_a_rule_over_a_column_this_shop_lacks_fails_the_run_naming_the_audience(tmp_path):
    config = daily_shop(tmp_path, customers=200, seed=4)
    config.write_text(config.read_text(encoding="utf-8") + """
audiences:
  - name: beer_fans
    rule: "cat_no_such_category > 0.1"
""", encoding="utf-8")
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    result = materialize_graph(config, warehouse)
    assert not result.success
    reason = _failure_reason(result)
    assert "audience beer_fans: unknown column 'cat_no_such_category'" in reason and "\n" not in reason
    # Nothing was published.
    assert not warehouse.exists()


def test_the_report_section_lists_each_audience_with_rule_size_share_and_change_every_number_a_fact(shop):
    _, warehouse, run_ids = shop
    with duckdb.connect(str(warehouse), read_only=True) as con:
        summary = load_audience_summary(con)
        book = FactBook()
        pages = audiences_html(summary, book)
        # Every number is a fact whose query, run again on the warehouse, prints the same.
        for fact in book.facts.values():
            [(value,)] = con.execute(fact.sql, list(fact.params)).fetchall()
            assert format_value(fact.kind, value) == format_value(fact.kind, fact.value), fact.key
    assert summary["audience"].to_list() == ["high_value_at_risk", "loyal_big_spenders", "next_top_pick", "nobody"]
    assert set(summary["run_id"]) == {run_ids[1]} and set(summary["previous_run_id"].drop_nulls()) == {run_ids[0]}
    members = _members(warehouse)
    for language, words in (("zh", ("目标人群", "上次运行无此人群", "规则：")), ("en", ("Audiences", "new since", "Rule: "))):
        page = pages[language]
        assert all(word in page for word in words), language
        assert '<span class="label">value_tier = &#x27;high_value&#x27; and churn_risk &gt;= 0.2</span>' in page
        size = len(members["loyal_big_spenders"])
        assert f'data-fact="audience.loyal_big_spenders.customers">{size:,}</span>' in page
    assert "audience.loyal_big_spenders.change" in book.facts or \
        book.facts["audience.loyal_big_spenders.previous_customers"].value == 0
