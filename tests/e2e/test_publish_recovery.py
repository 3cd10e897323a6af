"""Recovery (issue 20, point 6): a published warehouse file that cannot be opened is reported in one line and
rebuilt from the working database, by the next `persona run` or by `persona publish --repair`; what an interrupted
run left is removed by the next one; a second run on the same warehouse refuses at once (or waits with --wait)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from assets.publish.repair import published_problem
from assets.publish.swap import published_tables, published_version
from pipelines.runner import LOCK_FILE, run_lock
from tests.conftest import DAYS, REPO_ROOT, child_env, daily_shop, query, work_db

KB = 1024


def persona(root: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(_command(root, *args), cwd=root, env=_env(root), capture_output=True, text=True,
                          timeout=timeout)


def _command(root: Path, *args: str) -> list[str]:
    command = [sys.executable, "-m", "pipelines.cli", *args]
    if args[0] == "run":
        command += ["--config", str(root / "shop.yaml")]
    return [*command, "--warehouse", str(root / "wh" / "warehouse.duckdb")]


def _env(root: Path) -> dict[str, str]:
    env = child_env()
    env["DAGSTER_HOME"] = str(root / "home")
    return env


def _shop(root: Path) -> Path:
    daily_shop(root, customers=250, seed=21)
    (root / "home").mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", root / "home" / "dagster.yaml")
    return root / "wh" / "warehouse.duckdb"


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A daily shop run once through `persona run`."""
    root = tmp_path_factory.mktemp("recovery")
    warehouse = _shop(root)
    done = persona(root, "run")
    assert done.returncode == 0, done.stderr
    return warehouse


def segment_tables(database: Path) -> dict[str, list[tuple]]:
    """Every row of every segments.* table, sorted."""
    with duckdb.connect(str(database), read_only=True) as con:
        name = con.execute("SELECT current_database()").fetchone()[0]
        tables = [t for s, t in published_tables(con, name) if s == "segments"]
        return {t: con.execute(f'SELECT * FROM segments."{t}" ORDER BY ALL').fetchall() for t in tables}


def reads_whole(database: Path) -> bool:
    """Every row of every table reads."""
    try:
        with duckdb.connect(str(database), read_only=True) as con:
            for schema, table in con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall():
                con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
    except duckdb.Error:
        return False
    return True


def damage(path: Path, kind: str) -> None:
    """Damage the file a public path resolves to (the current version's warehouse)."""
    target = path.resolve()
    size = target.stat().st_size
    if kind == "truncated to half":
        os.truncate(target, size // 2)
    elif kind == "zeroed header":
        with open(target, "r+b") as handle:
            handle.write(bytes(4 * KB))
    elif kind == "torn tail":
        os.truncate(target, size - 12 * KB)


KINDS = ("truncated to half", "zeroed header", "torn tail")


@pytest.mark.parametrize("command", ["run", "publish"])
def test_a_damaged_published_file_is_reported_in_one_line_and_rebuilt(published, command):
    root = published.parent.parent
    expected = segment_tables(work_db(published))
    # Every segment table holds rows, but the audiences ones: this shop defines no audience.
    assert expected and all(rows for table, rows in expected.items() if not table.startswith("audience"))
    assert segment_tables(published) == expected
    run_id = published_version(published)
    for kind in KINDS:
        damage(published, kind)
        assert published_problem(published) is not None, kind
        assert not reads_whole(published), kind  # the damage is real: some table (or the file) does not read
        done = persona(root, *(["run"] if command == "run" else ["publish", "--repair"]))
        assert done.returncode == 0, (kind, done.stdout, done.stderr)
        assert "Traceback" not in done.stdout + done.stderr
        reports = [line for line in done.stdout.splitlines() if "cannot be opened" in line]
        assert len(reports) == 1, (kind, done.stdout)
        assert str(published) in reports[0] and "rebuilt from the working database" in reports[0], reports[0]
        if command == "run":  # nothing new landed: the rebuilt file says so
            assert "Nothing to load" in done.stdout
        # The rebuilt file opens, holds the same segment tables as the working database and names its run.
        assert published_problem(published) is None
        assert reads_whole(published)
        assert segment_tables(published) == expected, kind
        assert published_version(published) == run_id
        assert query(published, "SELECT count(*) FROM meta.source_files")[0][0] > 0
        assert (published.parent / "reports" / "report_en.html").is_file()
    # Only the current and the previous version are kept.
    assert len(list((published.parent / ".versions").iterdir())) == 2
    # The next run plans from the rebuilt file: nothing pending, and nothing else to report.
    again = persona(root, "run")
    assert again.returncode == 0 and "Nothing to load" in again.stdout and "cannot be opened" not in again.stdout


def test_publish_without_repair_only_reports(published):
    root = published.parent.parent
    healthy = persona(root, "publish")
    assert healthy.returncode == 0 and "nothing to repair" in healthy.stdout
    damage(published, "zeroed header")
    try:
        done = persona(root, "publish")
        assert done.returncode == 1
        assert len(done.stderr.strip().splitlines()) == 1 and "publish --repair" in done.stderr, done.stderr
        assert published_problem(published) is not None
    finally:
        assert persona(root, "publish", "--repair").returncode == 0


def test_a_working_database_changed_since_publishing_is_not_republished(tmp_path):
    """After a run that failed (here: a table written by hand), the working database holds what no check passed:
    --repair refuses in one line, and the next run reloads every day and publishes anew."""
    warehouse = _shop(tmp_path)
    assert persona(tmp_path, "run").returncode == 0
    old_version = published_version(warehouse)
    with duckdb.connect(str(work_db(warehouse))) as con:
        con.execute("CREATE TABLE staging.not_checked AS SELECT 1 AS x")
    damage(warehouse, "torn tail")
    refused = persona(tmp_path, "publish", "--repair")
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "has changed since run" in refused.stderr and "not rebuilt" in refused.stderr
    rerun = persona(tmp_path, "run")
    assert rerun.returncode == 0, rerun.stderr
    assert "loads every landing day" in rerun.stdout and f"landing days {DAYS[0]}..{DAYS[-1]}" in rerun.stdout
    assert published_problem(warehouse) is None
    assert published_version(warehouse) != old_version
    assert segment_tables(warehouse) == segment_tables(work_db(warehouse))


# --- leftovers ---------------------------------------------------------------------------------------------------

def test_leftovers_of_an_interrupted_run_are_removed_by_the_next_one(tmp_path):
    warehouse = _shop(tmp_path)
    held = tmp_path / "held"
    shutil.move(tmp_path / "landing" / f"order_day={DAYS[-1]}", held)
    assert persona(tmp_path, "run").returncode == 0
    shutil.move(held, tmp_path / "landing" / f"order_day={DAYS[-1]}")
    # Killed during ingest: the staged copy of the orders is under the warehouse's work folder, not in /tmp.
    env = {**_env(tmp_path), "PERSONA_CRASH_AT": "raw.orders:before_commit"}
    crashed = subprocess.run(_command(tmp_path, "run"), cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=600)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    scratch = work_db(warehouse).parent / "tmp"
    ingest = [path.name for path in scratch.glob("persona-ingest-*")]
    # The raw assets stage their copies in the warehouse's work folder (WarehouseResource.temp_dir).
    assert ingest, list(scratch.iterdir())
    # A publish that died (disk full) before its switch.
    planted = [warehouse.parent / ".warehouse.duckdb.0badc0de.publishing",
               warehouse.parent / ".versions" / "0badc0de-dead-run"]
    planted[0].write_bytes(b"\0" * 1000)
    planted[1].mkdir()
    (planted[1] / "warehouse.duckdb").write_bytes(b"\0" * 1000)
    (scratch / "persona-ingest-planted").mkdir()
    (scratch / "persona-ingest-planted" / "orders.csv").write_text("order_id\n1\n")

    done = persona(tmp_path, "run")
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.startswith("Removed what an interrupted run left")]
    for name in [*ingest, "persona-ingest-planted", planted[0].name, planted[1].name]:
        assert name in line, (name, line)
    assert not any(path.exists() for path in planted)
    assert list(scratch.iterdir()) == []
    assert f"landing days {DAYS[-1]}" in done.stdout


# --- one run at a time -------------------------------------------------------------------------------------------

def test_a_second_run_refuses_at_once_while_one_holds_the_warehouse(tmp_path):
    warehouse = _shop(tmp_path)
    work = work_db(warehouse).parent
    with run_lock(work, "11111111-2222-3333-4444-555555555555"):
        started = time.monotonic()
        done = persona(tmp_path, "run", timeout=120)
        assert time.monotonic() - started < 60
        assert done.returncode == 1
        assert done.stderr.strip().splitlines() == [done.stderr.strip()]
        assert "another run is in progress (run id 11111111-2222-3333-4444-555555555555, started " in done.stderr
        repair = persona(tmp_path, "publish", "--repair", timeout=120)
        assert repair.returncode == 1 and "another run is in progress" in repair.stderr
    assert not warehouse.exists()  # the refused run did nothing


def test_two_runs_at_once_the_second_refuses_and_waits_with_wait(tmp_path):
    warehouse = _shop(tmp_path)
    lock_file = work_db(warehouse).parent / LOCK_FILE
    first = subprocess.Popen(_command(tmp_path, "run"), cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (lock_file.is_file() and json.loads(lock_file.read_text() or "{}").get("pid") == first.pid):
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.1)
        holder = json.loads(lock_file.read_text())
        second = persona(tmp_path, "run", timeout=120)
        assert second.returncode == 1
        assert f"another run is in progress (run id {holder['run_id']}, started {holder['started']}" in second.stderr
        assert "load_audit_identity" not in second.stderr
        waiting = persona(tmp_path, "run", "--wait")
    finally:
        out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert f"Run {holder['run_id']} succeeded and published" in out
    # The waiting run started once the first was done, found everything published, and said what it waited for.
    assert waiting.returncode == 0, waiting.stderr
    assert "another run is in progress" in waiting.stdout and "waiting for it to finish" in waiting.stdout
    assert "Nothing to load" in waiting.stdout


def test_a_lock_left_by_a_killed_run_never_blocks(tmp_path):
    warehouse = _shop(tmp_path)
    work = work_db(warehouse).parent
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from pipelines.runner import run_lock\n"
                               "with run_lock(Path(sys.argv[1]), 'killed-run'):\n"
                               "    print('held', flush=True); time.sleep(120)", str(work)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert "killed-run" in (work / LOCK_FILE).read_text()  # the note stays; the lock went with the process
    with run_lock(work, "next-run"):
        assert "next-run" in (work / LOCK_FILE).read_text()
