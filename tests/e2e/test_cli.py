"""The `persona` command as a user runs it: a real process, a real Dagster instance in DAGSTER_HOME."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tests.conftest import EXAMPLES, REPO_ROOT, child_env, write_file

PERSONA = str(Path(sys.executable).parent / "persona")


def persona(*args: str, cwd: Path, dagster_home: Path | None = None) -> subprocess.CompletedProcess:
    env = child_env()
    if dagster_home is not None:
        env["DAGSTER_HOME"] = str(dagster_home)
    return subprocess.run([PERSONA, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    """`persona run` on the seed table from its example config, as in the README."""
    work = tmp_path_factory.mktemp("cli")
    seed = REPO_ROOT.parent / "shared" / "data" / "BASKETS1n.csv"
    done = persona("run", "--config", str(EXAMPLES / "baskets.yaml"), "--input", str(seed),
                   "--warehouse", "wh/warehouse.duckdb", cwd=work, dagster_home=work / "home")
    return work, done


def test_run_prints_where_everything_is(seed_run):
    work, done = seed_run
    assert done.returncode == 0, done.stderr
    warehouse = work / "wh" / "warehouse.duckdb"
    assert f"Warehouse: {warehouse}" in done.stdout
    assert f"Report:    {warehouse.parent / 'reports' / 'report_zh.html'}" in done.stdout
    assert done.stdout.count("persona sql") == 3


def test_run_is_recorded_in_the_persistent_instance(seed_run):
    work, done = seed_run
    home = work / "home"
    assert (home / "dagster.yaml").read_bytes() == (REPO_ROOT / "dagster.yaml").read_bytes()
    run_id = re.search(r"^Run (\S+) succeeded", done.stdout, re.M).group(1)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.job_name == "refresh"
        assert run.status == dg.DagsterRunStatus.SUCCESS
        record = instance.get_latest_materialization_event(dg.AssetKey(["segments", "customer_segments"]))
        assert record.asset_materialization.metadata["dagster/row_count"].value == 999


def test_sql_answers_from_the_warehouse(seed_run):
    work, _ = seed_run
    done = persona("sql", "--warehouse", "wh/warehouse.duckdb", "--format", "json",
                   "select count(*) as n from segments.customer_segments", cwd=work)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"n": 999}]
    done = persona("sql", "--warehouse", "wh/warehouse.duckdb", "--format", "csv",
                   "select segment_id, customers from segments.segment_profiles order by segment_id", cwd=work)
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "segment_id,customers"
    assert sum(int(line.split(",")[1]) for line in lines[1:]) == 999


def test_sql_refuses_writes(seed_run):
    work, _ = seed_run
    done = persona("sql", "--warehouse", "wh/warehouse.duckdb", "drop table segments.customer_segments", cwd=work)
    assert done.returncode == 1
    assert "refused: DROP statements are not allowed" in done.stderr


def test_run_with_a_bad_config_names_file_and_key(tmp_path):
    config = write_file(tmp_path / "shop.yaml", "name: x\nshape: long\norders:\n  path: o.csv\n  encoding: latin-9\n")
    write_file(tmp_path / "o.csv", "order_id\n")
    done = persona("run", "--config", str(config), "--warehouse", "w.duckdb", cwd=tmp_path,
                   dagster_home=tmp_path / "home")
    assert done.returncode == 1
    assert done.stderr.startswith(f"persona: {config}: orders.encoding: unsupported encoding 'latin-9'")
    assert not (tmp_path / "w.duckdb").exists()


def test_run_with_a_broken_file_fails_with_one_line(tmp_path):
    orders = write_file(tmp_path / "orders.csv", "order_id,customer_id,category\nO1,C1,wine\n")
    config = write_file(tmp_path / "shop.yaml", "name: x\nshape: long\norders:\n  path: elsewhere.csv\n")
    done = persona("run", "--config", str(config), "--input", str(orders), "--warehouse", "w.duckdb",
                   cwd=tmp_path, dagster_home=tmp_path / "home")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    # The reader's message follows the step's name, with no Python class path between them.
    assert f"failed: step raw__orders: {orders}: required column 'order_ts' is missing" in lines[0]


def test_a_run_failing_its_gate_prints_a_hint_for_its_own_warehouse_that_runs(tmp_path):
    # Half of the lines have no number for an amount: staging quarantines them and writes its audit, then the gate
    # blocks the run.
    lines = [f"O{i},C{i % 4},2026-03-0{1 + i % 9} 10:00:00,wine,1,{'n/a' if i % 2 else '9.5'}" for i in range(20)]
    write_file(tmp_path / "orders.csv", "\n".join(["order_id,customer_id,order_ts,category,quantity,amount", *lines])
               + "\n")
    config = write_file(tmp_path / "shop.yaml", "name: x\nshape: long\norders:\n  path: orders.csv\n")
    done = persona("run", "--config", str(config), "--warehouse", "other/w.duckdb", cwd=tmp_path,
                   dagster_home=tmp_path / "home")
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    run_id = re.search(r"^persona: run (\S+) failed: blocking check quarantine_share_within_limit", line).group(1)
    command = line.split("inspect this run with: ", 1)[1]
    assert f"sql --unpublished --warehouse other/w.duckdb \"select * from quality.load_audit where run_id = " \
           f"'{run_id}'\"" in command
    # The command as printed runs (from where the run ran) and shows this run's audit.
    env = child_env()
    printed = subprocess.run(shlex.split(command), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert printed.returncode == 0, printed.stderr
    assert "run_id" in printed.stdout  # a table as wide as the terminal; its rows are checked in JSON below
    *arguments, query = shlex.split(command)
    as_json = subprocess.run([*arguments, "--format", "json", query], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
    assert [(row["rows_read"], row["rows_loaded"], row["rows_quarantined"])
            for row in json.loads(as_json.stdout)] == [(20, 10, 10)]


def test_a_run_failing_to_read_points_at_its_event_log(tmp_path):
    write_file(tmp_path / "orders.csv", "order_id,customer_id,category\nO1,C1,wine\n")
    config = write_file(tmp_path / "shop.yaml", "name: x\nshape: long\norders:\n  path: orders.csv\n")
    done = persona("run", "--config", str(config), "--warehouse", "other/w.duckdb", cwd=tmp_path,
                   dagster_home=tmp_path / "home")
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    run_id = re.search(r"^persona: run (\S+) failed: step raw__orders: ", line).group(1)
    # Nothing of this run reached the working database, so there is no audit to query.
    assert "persona sql" not in line and "quality.load_audit" not in line
    assert line.endswith(f"it wrote no load audit (it stopped before staging); its event log is in the Dagster UI "
                         f"(run {run_id}), or run again with --verbose to print it")


def test_missing_source_file_names_the_config_and_key(tmp_path):
    config = write_file(tmp_path / "shop.yaml", "name: x\nshape: long\norders:\n  path: data/*.csv\n")
    done = persona("run", "--config", str(config), cwd=tmp_path, dagster_home=tmp_path / "home")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"persona: {config}: orders.path: no file matches 'data/*.csv' (looked for {tmp_path}/data/*.csv)"
    )


@pytest.mark.parametrize("command", ["run", "check"])
def test_missing_product_table_is_one_line_before_any_work(tmp_path, command):
    write_file(tmp_path / "orders.csv", "order_id,customer_id,order_ts,sku\nO1,C1,2026-01-05 10:00:00,A1\n")
    config = write_file(tmp_path / "shop.yaml", "name: x\nshape: long\norders:\n  path: orders.csv\n"
                                                "products:\n  path: catalogue.csv\n")
    done = persona(command, "--config", str(config), cwd=tmp_path, dagster_home=tmp_path / "home")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"persona: {config}: products.path: no file matches 'catalogue.csv' (looked for {tmp_path}/catalogue.csv)"
    )
    assert not (tmp_path / "home" / "history").exists()  # no Dagster run was started


@pytest.mark.parametrize("command", ["run", "check"])
def test_a_category_rule_duckdb_cannot_apply_is_one_line_before_any_work(tmp_path, command):
    # Python's re takes a look-behind; DuckDB's RE2 does not, and staging used to fail on it naming no config key.
    write_file(tmp_path / "orders.csv", "order_id,customer_id,order_ts,description\nO1,C1,2026-01-05 10:00:00,x\n")
    config = write_file(tmp_path / "shop.yaml", "name: x\nshape: long\norders:\n  path: orders.csv\n"
                                                "  category_rules:\n    - {match: '(?<=x)y', category: a}\n")
    done = persona(command, "--config", str(config), cwd=tmp_path, dagster_home=tmp_path / "home")
    assert done.returncode == 1
    assert done.stderr.strip() == (f"persona: {config}: orders.category_rules.0.match: DuckDB cannot use this "
                                   "regular expression ('(?<=x)y'): invalid perl operator: (?<")
    assert not (tmp_path / "home" / "history").exists()  # no Dagster run was started


def test_a_yaml_syntax_error_is_one_line(tmp_path):
    config = write_file(tmp_path / "shop.yaml", "name: x\nshape: long\norders:\n  path: o.csv\n    format: csv\n")
    done = persona("check", "--config", str(config), cwd=tmp_path, dagster_home=tmp_path / "home")
    assert done.returncode == 1
    assert done.stderr == f"persona: {config}: not valid YAML: line 5, column 11: mapping values are not allowed here\n"


def test_input_must_exist(tmp_path):
    done = persona("run", "--config", str(EXAMPLES / "baskets.yaml"), "--input", "nope.csv", cwd=tmp_path,
                   dagster_home=tmp_path / "home")
    assert done.returncode == 1
    assert "--input nope.csv: file not found" in done.stderr


def test_generate_writes_demo_data(tmp_path):
    done = persona("generate", "--out", "demo", "--customers", "50", "--seed", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Wrote 50 customers" in done.stdout
    header = (tmp_path / "demo" / "order_lines.csv").read_text().splitlines()[0]
    assert header == "order_id,customer_id,order_ts,category,quantity,unit_price,amount,payment_method,channel,sku"
    done = persona("generate", "--out", "bad", "--customers", "0", cwd=tmp_path)
    assert done.returncode == 1 and "customers" in done.stderr


def test_export_writes_one_audience_per_segment(seed_run, tmp_path):
    work, _ = seed_run
    done = persona("export", "--warehouse", "wh/warehouse.duckdb", "--out", str(tmp_path / "audiences"), cwd=work)
    assert done.returncode == 0, done.stderr
    files = sorted((tmp_path / "audiences").glob("segment_*.csv"))
    import polars as pl

    names = json.loads(persona(
        "sql", "--warehouse", "wh/warehouse.duckdb", "--format", "json",
        "select distinct segment_id, segment_name_zh from segments.customer_segments order by 1", cwd=work).stdout)
    assert [f.name for f in files] == [f"segment_{row['segment_id']}_{row['segment_name_zh']}.csv" for row in names]
    assert all(f.read_bytes().startswith(b"\xef\xbb\xbf") for f in files)
    frames = [pl.read_csv(f, infer_schema=False) for f in files]
    assert frames[0].columns[:8] == ["customer_id", "segment_id", "segment_name_zh", "segment_name_en",
                                     "value_tier_zh", "value_tier_en", "rfm_tier_zh", "rfm_tier_en"]
    rows = pl.concat(frames)
    assert rows.height == 999 and rows.get_column("customer_id").n_unique() == 999
    assert "37917" in set(rows.get_column("customer_id"))
    assert {row["segment_name_zh"] for row in names} == set(rows.get_column("segment_name_zh"))
    assert all(f"{f}: " in done.stdout for f in files)
    xlsx = persona("export", "--warehouse", "wh/warehouse.duckdb", "--out", str(tmp_path / "x"), "--format", "xlsx",
                   cwd=work)
    assert xlsx.returncode == 0, xlsx.stderr
    books = sorted((tmp_path / "x").glob("segment_*.xlsx"))
    assert [f.stem for f in books] == [f.stem for f in files]
    for book, frame in zip(books, frames, strict=True):
        sheet = pl.read_excel(book)
        assert sheet.columns == frame.columns and sheet.height == frame.height
        assert sheet.get_column("customer_id").cast(pl.String).to_list() == frame.get_column("customer_id").to_list()
        assert sheet.get_column("segment_name_zh").to_list() == frame.get_column("segment_name_zh").to_list()


def test_export_pseudonymises_with_a_salt(seed_run, tmp_path):
    work, _ = seed_run
    refused = persona("export", "--warehouse", "wh/warehouse.duckdb", "--out", str(tmp_path / "a"),
                      "--pseudonymise", cwd=work)
    assert refused.returncode == 1 and "set PERSONA_ID_SALT" in refused.stderr
    env_done = subprocess.run(
        [PERSONA, "export", "--warehouse", "wh/warehouse.duckdb", "--out", str(tmp_path / "p"), "--segment", "1",
         "--format", "parquet", "--pseudonymise"],
        cwd=work, capture_output=True, text=True, timeout=120,
        env={**child_env(keep_dagster=True), "PERSONA_ID_SALT": "s3cret"})
    assert env_done.returncode == 0, env_done.stderr
    import polars as pl

    from pipelines.serving import pseudonymise

    [exported_file] = (tmp_path / "p").glob("segment_1_*.parquet")
    exported = pl.read_parquet(exported_file)
    clear = {row["customer_id"] for row in json.loads(persona(
        "sql", "--warehouse", "wh/warehouse.duckdb", "--format", "json",
        "select customer_id from segments.customer_segments where segment_id = 1", cwd=work).stdout)}
    tokens = set(exported.get_column("customer_id"))
    assert len(tokens) == len(clear) == exported.height > 0
    assert not tokens & clear
    assert tokens == {pseudonymise(customer, "s3cret") for customer in clear}
    assert pseudonymise("37917", "s3cret") != pseudonymise("37917", "other")


def test_export_rejects_an_unknown_segment(seed_run, tmp_path):
    work, _ = seed_run
    done = persona("export", "--warehouse", "wh/warehouse.duckdb", "--out", str(tmp_path), "--segment", "99",
                   cwd=work)
    assert done.returncode == 1 and "no segment with id [99]" in done.stderr


def test_the_duckdb_shell_opens_the_warehouse(seed_run):
    """Users query with the PyPI duckdb-cli (1.5.x); it must read the file our pinned duckdb writes."""
    work, _ = seed_run
    shell = Path(sys.executable).parent / "duckdb"
    done = subprocess.run([str(shell), "-readonly", "-csv", str(work / "wh" / "warehouse.duckdb"), "-c",
                           "select count(*) from segments.customer_segments"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "999"


def test_sql_prints_no_deprecation_warning(tmp_path):
    # Warnings shown as a developer's PYTHONWARNINGS=default shows them: Click 8.5 deprecated get_text_stream.
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("CREATE SCHEMA segments; CREATE TABLE segments.t AS SELECT * FROM (VALUES (1, 'a'), (2, '生鲜')) "
                    "AS v(n, label)")
    env = child_env() | {"PYTHONWARNINGS": "default"}
    done = subprocess.run([PERSONA, "sql", "--warehouse", "w.duckdb", "--format", "csv",
                           "select n, label from segments.t order by n"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "n,label\n1,a\n2,生鲜\n"
    assert done.stderr == ""


def test_sql_csv_writes_list_columns_as_json(seed_run):
    work, _ = seed_run
    done = persona("sql", "--warehouse", "wh/warehouse.duckdb", "--format", "csv",
                   "select segment_id, name_evidence from segments.segment_profiles order by segment_id", cwd=work)
    assert done.returncode == 0, done.stderr
    import csv as csv_module
    import io

    rows = list(csv_module.DictReader(io.StringIO(done.stdout)))
    assert rows and all(isinstance(json.loads(row["name_evidence"]), list) for row in rows)


def test_printed_commands_name_the_program_as_it_can_be_typed(tmp_path, monkeypatch):
    from pipelines import cli_common as cli

    program = tmp_path / "repo" / ".venv" / "bin" / "persona"
    monkeypatch.setattr(cli.shutil, "which", lambda name: None)
    monkeypatch.setattr(cli.sys, "argv", [str(program)])
    monkeypatch.chdir(write_file(tmp_path / "repo" / "x", "").parent)
    assert cli.command_name() == ".venv/bin/persona"
    # From a folder elsewhere, the absolute path, not ../../repo/.venv/bin/persona.
    monkeypatch.chdir(write_file(tmp_path / "shops" / "a" / "x", "").parent)
    assert cli.command_name() == str(program)
    # Started as `python -m pipelines.cli` (argv[0] is cli.py): the interpreter the user ran, with -m.
    python = tmp_path / "repo" / ".venv" / "bin" / "python"
    monkeypatch.setattr(cli.sys, "argv", [str(tmp_path / "repo" / "pipelines" / "cli.py")])
    monkeypatch.setattr(cli.sys, "executable", str(python))
    assert cli.command_name() == f"{python} -m pipelines.cli"
    monkeypatch.chdir(tmp_path / "repo")
    assert cli.command_name() == ".venv/bin/python -m pipelines.cli"
    monkeypatch.setattr(cli.shutil, "which", lambda name: "/usr/local/bin/persona")
    assert cli.command_name() == "persona"
