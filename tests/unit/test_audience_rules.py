"""Audience rules (issue 22 point 5): DuckDB's parser decides what a rule is; anything that could run a statement,
read or write a file or read another table is refused with one line naming the audience, at config load; the
sandbox that evaluates the accepted ones sees only the per-customer view."""

from pathlib import Path

import duckdb
import pytest

from assets.audiences.assets import evaluate_audiences, view_sql, write_audiences
from pipelines.core.audience_rules import Audience, RuleRefused, check_columns, parse_rule
from pipelines.core.config import ConfigError, load_source_config
from tests.conftest import write_file

REFUSED = {
    "1=1; drop table x": "only one expression",
    "true; copy (select 1) to '/tmp/x.csv'": "only one expression",
    "read_csv('/etc/passwd') is not null": "function read_csv() is not allowed",
    "length(read_text('/etc/passwd')) > 0": "function read_text() is not allowed",
    "(select count(*) from quality.load_audit) > 0": "subqueries are not allowed",
    "exists (select 1 from read_parquet('/etc/x.parquet'))": "subqueries are not allowed",
    "customer_id in (select customer_id from staging.orders)": "subqueries are not allowed",
    "quality.load_audit.rows_read > 0": "names another table",
    "getenv('HOME') = ''": "function getenv() is not allowed",
    "current_setting('home_directory') = ''": "function current_setting() is not allowed",
    "len(glob('/*')) > 0": "function glob() is not allowed",
    "churn_risk > 0.5) union all (select 1 from staging.orders where true": "must be one boolean expression",
    "churn_risk > 0.5 order by 1": "not one SQL expression",
    "churn_risk > 0.5 limit 1": "not one SQL expression",
    "churn_risk > $1": "parameters",
    "columns('cat_.*') > 0": "* and COLUMNS",
    "sum(n_orders) > 10": "function sum() is not allowed",
    "list_filter(next_categories, x -> x = 'wine') = []": "not allowed",
    "copy": "unknown column 'copy'",
    "attach": "unknown column 'attach'",
    "favourite_colour = 'red'": "unknown column 'favourite_colour'",
    "churn_risk >=": "not one SQL expression",
}

ACCEPTED = {
    "value_tier = 'high_value' and churn_risk >= 0.5 and cat_wine > 0": ("value_tier", "churn_risk", "cat_wine"),
    "list_contains(next_categories, 'wine') and segment_id in (1, 2)": ("next_categories", "segment_id"),
    "Churn_Risk between 0.2 and 0.9 -- a comment": ("churn_risk",),
    "rfm_tier like 'important_%' or (recency_days > 60 and not coalesce(at_risk, false))":
        ("rfm_tier", "recency_days", "at_risk"),
    "case when n_orders >= 3 then expected_spend > 100 else false end": ("n_orders", "expected_spend"),
    "cast(age as integer) between 25 and 34 and pay_mobile > 0.5 and segment_name_en = 'a; b'":
        ("age", "pay_mobile", "segment_name_en"),
    "lower(segment_name_en) like '%wine%' and abs(income - 50000) < 10000": ("segment_name_en", "income"),
}


@pytest.mark.parametrize("rule", sorted(REFUSED))
def test_a_rule_that_could_run_a_statement_or_touch_a_file_is_refused_naming_the_audience(rule):
    with pytest.raises(RuleRefused) as caught:
        check_columns(parse_rule(rule, "risky"), "risky")
    message = str(caught.value)
    assert message.startswith("audience risky: ") and REFUSED[rule] in message
    assert "\n" not in message


@pytest.mark.parametrize("rule", sorted(ACCEPTED))
def test_read_only_expressions_over_the_view_are_accepted(rule):
    parsed = parse_rule(rule, "fine")
    check_columns(parsed, "fine")
    assert parsed.columns == ACCEPTED[rule]


def _config(tmp_path: Path, audiences: str) -> Path:
    return write_file(tmp_path / "shop.yaml", f"""
name: shop
shape: long
orders:
  path: orders.csv
{audiences}
""")


def test_the_config_loads_audiences_and_refuses_a_bad_rule_in_one_line_naming_file_audience_and_column(tmp_path):
    config = load_source_config(_config(tmp_path, """audiences:
  - name: high_value_at_risk
    description: High-value customers likely to churn
    rule: "value_tier = 'high_value' and churn_risk >= 0.5 and cat_wine > 0"
"""))
    assert [(a.name, a.description) for a in config.audiences] == [
        ("high_value_at_risk", "High-value customers likely to churn")]
    assert load_source_config(_config(tmp_path, "")).audiences == []

    with pytest.raises(ConfigError) as caught:
        load_source_config(_config(tmp_path, """audiences:
  - name: typo
    rule: "churn_rsk >= 0.5"
"""))
    message = str(caught.value)
    assert "\n" not in message
    assert "shop.yaml: audiences.0: audience typo: unknown column 'churn_rsk'" in message

    with pytest.raises(ConfigError, match="audience leak: function read_csv"):
        load_source_config(_config(tmp_path, """audiences:
  - {name: leak, rule: "read_csv('/etc/passwd') is not null"}
"""))
    with pytest.raises(ConfigError, match=r"audiences: audience name\(s\) \['twice'\] defined more than once"):
        load_source_config(_config(tmp_path, """audiences:
  - {name: twice, rule: "churn_risk > 0.5"}
  - {name: twice, rule: "churn_risk > 0.6"}
"""))
    with pytest.raises(ConfigError, match="audiences.0.rul: unknown key; did you mean 'rule'"):
        load_source_config(_config(tmp_path, """audiences:
  - {name: typo, rul: "churn_risk > 0.5"}
"""))
    with pytest.raises(ConfigError, match="audience name 'Bad Name'"):
        load_source_config(_config(tmp_path, """audiences:
  - {name: Bad Name, rule: "churn_risk > 0.5"}
"""))


# --- evaluation in the sandbox, on a small hand-built working database ----------------------------------------------

@pytest.fixture
def con(tmp_path):
    with duckdb.connect(str(tmp_path / "work.duckdb")) as connection:
        for schema in ("segments", "predict", "features", "quality"):
            connection.execute(f"CREATE SCHEMA {schema}")
        connection.execute("""CREATE TABLE segments.customer_segments AS SELECT * FROM (VALUES
            ('C1', 1, '甲', 'Wine lovers', false), ('C2', 1, '甲', 'Wine lovers', false),
            ('C3', 2, '乙', 'Bargain hunters', true)) v(customer_id, segment_id, segment_name_zh, segment_name_en,
            is_outlier)""")
        connection.execute("""CREATE TABLE segments.customer_value_tiers AS SELECT * FROM (VALUES
            ('C1', 'high_value', 'important_value'), ('C2', 'high_value', 'general_value'),
            ('C3', 'at_risk', 'general_win_back')) v(customer_id, value_tier_key, rfm_tier_key)""")
        connection.execute("""CREATE TABLE predict.churn_risk AS SELECT * FROM (VALUES
            ('C1', 0.8, true), ('C2', 0.1, false), ('C3', NULL, NULL)) v(customer_id, churn_risk, at_risk)""")
        connection.execute("""CREATE TABLE predict.next_category AS SELECT * FROM (VALUES
            ('C1', 2, 'wine'), ('C1', 1, 'cheese'), ('C3', 1, 'wine')) v(customer_id, rank, category)""")
        connection.execute("""CREATE TABLE features.customer_features AS SELECT * FROM (VALUES
            ('C1', 4.0, 0.5), ('C2', 1.0, 0.0), ('C3', 9.0, 0.25)) v(customer_id, n_orders, cat_wine)""")
        connection.execute("CREATE TABLE quality.load_audit (rows_read BIGINT)")
        yield connection


def _audiences(**rules: str) -> list[Audience]:
    return [Audience(name=name, rule=rule) for name, rule in rules.items()]


def test_members_are_the_rows_the_rule_holds_for_and_absent_tables_leave_their_columns_out(con):
    assert "predict.customer_value" not in view_sql(con)
    members, customers = evaluate_audiences(con, _audiences(
        high_value_at_risk="value_tier = 'high_value' and churn_risk >= 0.5 and cat_wine > 0",
        wine_next="list_contains(next_categories, 'wine')",
        nobody="n_orders > 100"))
    assert customers == 3
    assert sorted(zip(*members.to_pydict().values())) == [
        ("high_value_at_risk", "C1"), ("wine_next", "C1"), ("wine_next", "C3")]
    history = write_audiences(con, _audiences(nobody="n_orders > 100"), members.slice(0, 0), customers, "run-1",
                              __import__("datetime").datetime(2026, 1, 1))
    assert history.rows() == [("run-1", history["computed_at"][0], "nobody", 0, 0.0, "n_orders > 100", None)]
    assert con.execute("SELECT count(*) FROM segments.audiences").fetchone() == (0,)


def test_at_run_time_a_column_the_view_lacks_or_a_rule_that_is_not_true_or_false_fails_naming_the_audience(con):
    # cat_beer passes the config's check (a feature column) but this shop has no beer.
    with pytest.raises(RuleRefused, match="^audience beer: unknown column 'cat_beer'"):
        evaluate_audiences(con, _audiences(fine="churn_risk > 0.5", beer="cat_beer > 0"))
    # predict.customer_value is absent from this warehouse: its columns are unknown here.
    with pytest.raises(RuleRefused, match="^audience spenders: unknown column 'expected_spend'"):
        evaluate_audiences(con, _audiences(spenders="expected_spend > 10"))
    with pytest.raises(RuleRefused, match=r"^audience score: the rule gives DECIMAL\(2,1\), not true or false"):
        evaluate_audiences(con, _audiences(score="churn_risk"))
    with pytest.raises(RuleRefused, match="^audience typed: "):
        evaluate_audiences(con, _audiences(typed="segment_name_en > 3 and cast(segment_name_en as integer) > 1"))


def test_the_sandbox_cannot_reach_files_or_other_tables_even_past_the_parser(con, monkeypatch, tmp_path):
    """With the parser out of the way, the evaluation connection itself refuses files and holds no other table."""
    import assets.audiences.assets as module
    from pipelines.core.audience_rules import ParsedRule

    monkeypatch.setattr(module, "parse_rule", lambda rule, name: ParsedRule(("customer_id",)))
    target = tmp_path / "leak.csv"
    for rule, expected in (
            ("(SELECT count(*) FROM read_csv('/etc/passwd')) > 0", "disabled by configuration"),
            (f"customer_id IN (SELECT * FROM read_text('{target}'))", "disabled by configuration"),
            ("(SELECT count(*) FROM quality.load_audit) >= 0", "quality.load_audit\" does not exist"),
    ):
        with pytest.raises(RuleRefused, match=expected):
            evaluate_audiences(con, [Audience.model_construct(name="sneaky", rule=rule, description=None)])
    assert not target.exists()
