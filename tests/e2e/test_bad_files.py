"""Bad files (issue 20, points 3 and 5): a NUL byte in a value and an oversized line are quarantined with their
file, line and column; UTF-16 and UTF-32 files (told by their byte-order mark) load as UTF-8 would; a file that
cannot be read at all is one error line naming file, line and column; a glob through a symbolic link loop is one
line naming the pattern. Files in motion: a file modified less than the settle time ago is waited for (snapshot)
or its landing day is left pending (daily), and a last line still being written is never loaded half-written.

Small files go through the real raw path and staging (as tests/unit/test_staging.py), so every case that reads
rows checks the load-audit identity; the CLI cases run `persona` as a user does."""

import codecs
import os
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from assets.raw.assets import raw_orders
from assets.raw.files import write_raw_table
from assets.raw.mapping import stage_orders
from assets.raw.readers import SOURCE_FILE, SOURCE_ROW, IngestError, read_source_file
from assets.raw.settle import SETTLE_VARIABLE, read_settled
from assets.raw.tables import write_malformed_lines, write_manifest
from assets.staging import build as staging
from pipelines.core.config import CUSTOMER_FIELDS, LONG_ORDER_FIELDS, ConfigError, FileSource, load_source_config
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.planning import plan_refresh, plan_run
from tests.conftest import child_env, write_file

HEADER = "order_id,customer_id,order_ts,category,quantity,amount"
ROWS = [f"O{i},C{i},2026-01-0{i} 10:00:00,wine,1,{i}.5" for i in range(1, 6)]
PERSONA = str(Path(sys.executable).parent / "persona")


def shop(tmp_path: Path, files: dict[str, bytes], more: str = "") -> Path:
    """A snapshot shop reading orders/*.csv, with the files given as bytes."""
    for name, data in files.items():
        (tmp_path / "orders").mkdir(parents=True, exist_ok=True)
        (tmp_path / "orders" / name).write_bytes(data)
    return write_file(tmp_path / "shop.yaml", "name: bad-files\nshape: long\norders:\n  path: orders/*.csv\n" + more)


def csv_bytes(rows: list[str], encoding: str = "utf-8") -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode(encoding)


def load(tmp_path: Path, files: dict[str, bytes]) -> WarehouseResource:
    """Raw and staging of the shop's order files for run `run-1`, without a Dagster run; the audit identity holds."""
    config = load_source_config(shop(tmp_path, files))
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    staged, manifest = stage_orders(config, scratch)
    with warehouse.connect() as con:
        write_raw_table(con, "raw.orders", staged, LONG_ORDER_FIELDS)
        write_raw_table(con, "raw.customers", [], CUSTOMER_FIELDS)  # no customer file
        write_manifest(con, "run-1", "orders", manifest, None)
        write_malformed_lines(con, "raw.orders", manifest, None)
        staging.build_staging(con, config, "run-1")
    audit = rows(warehouse, "SELECT rows_read, rows_loaded + rows_quarantined + duplicates_removed "
                            "FROM quality.load_audit WHERE input = 'orders'")
    assert audit and all(read == accounted for read, accounted in audit), audit
    return warehouse


def rows(warehouse: WarehouseResource, sql: str) -> list[tuple]:
    with warehouse.connect(read_only=True) as con:
        return con.execute(sql).fetchall()


def quarantine(warehouse: WarehouseResource) -> list[tuple]:
    return rows(warehouse, "SELECT parse_filename(source_file), source_row, raw_value, reason FROM quality.quarantine "
                           "ORDER BY source_file, source_row")


def loaded(warehouse: WarehouseResource) -> list[tuple]:
    return rows(warehouse, "SELECT order_id, customer_id, category, amount FROM staging.order_lines "
                           "ORDER BY order_id")


def audit(warehouse: WarehouseResource) -> list[tuple]:
    return rows(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined, duplicates_removed "
                           "FROM quality.load_audit WHERE input = 'orders'")


def read_error(tmp_path: Path, files: dict[str, bytes]) -> str:
    config = load_source_config(shop(tmp_path, files))
    (tmp_path / "scratch").mkdir()
    with pytest.raises(IngestError) as info:
        stage_orders(config, tmp_path / "scratch")
    return str(info.value)


GOOD = [("O1", "C1", "wine", 1.5), ("O3", "C3", "wine", 3.5), ("O4", "C4", "wine", 4.5), ("O5", "C5", "wine", 5.5)]


# --- NUL bytes, oversized lines ---------------------------------------------------------------------------------


def test_a_nul_byte_in_a_value_is_quarantined_with_its_line_column_and_field(tmp_path):
    bad = "O2,C\x002,2026-01-02 10:00:00,wine,1,2.5"
    warehouse = load(tmp_path, {"a.csv": csv_bytes([ROWS[0], bad, *ROWS[2:]])})
    assert quarantine(warehouse) == [("a.csv", 2, "O2,C\\x002,2026-01-02 10:00:00,wine,1,2.5",
                                      "malformed CSV record on line 3: a NUL byte (0x00) in column 5 (field 2, "
                                      "'customer_id'); the export wrote a binary zero into a value")]
    assert loaded(warehouse) == GOOD
    assert audit(warehouse) == [(5, 4, 1, 0)]


def test_a_nul_byte_in_a_value_spanning_lines_quarantines_the_whole_record(tmp_path):
    bad = 'O2,C2,2026-01-02 10:00:00,"wi\nn\x00e",1,2.5'
    warehouse = load(tmp_path, {"a.csv": csv_bytes([ROWS[0], bad, *ROWS[2:]])})
    assert quarantine(warehouse) == [("a.csv", 2, 'O2,C2,2026-01-02 10:00:00,"wi\nn\\x00e",1,2.5',
                                      "malformed CSV record on line 3: a NUL byte (0x00) on line 4, column 2 (field "
                                      "4, 'category'); the export wrote a binary zero into a value")]
    # The rows after it keep their row numbers.
    assert rows(warehouse, "SELECT order_id, _source_row FROM staging.order_lines ORDER BY order_id") == [
        ("O1", 1), ("O3", 3), ("O4", 4), ("O5", 5)]
    assert audit(warehouse) == [(5, 4, 1, 0)]


@pytest.mark.parametrize("size", [3_000_000, 50_000_000])  # DuckDB's line limit; its "Parallel CSV Reader" error
def test_an_oversized_line_is_quarantined_with_its_line_and_length(tmp_path, size):
    start = "O2,C2,2026-01-02 10:00:00,wine,1,"
    bad = start + "9" * (size - len(start))
    warehouse = load(tmp_path, {"a.csv": csv_bytes([ROWS[0], bad, *ROWS[2:]])})
    assert quarantine(warehouse) == [("a.csv", 2, bad[:500],
                                      f"malformed CSV record on line 3: the line is {size:,} bytes long, over the "
                                      "limit of 2,000,000 (from column 2,000,001 on); is the delimiter or the quoting "
                                      "wrong?")]
    assert loaded(warehouse) == GOOD
    assert audit(warehouse) == [(5, 4, 1, 0)]


def test_a_header_longer_than_the_line_limit_is_one_error_line(tmp_path):
    path = tmp_path / "orders" / "a.csv"
    assert read_error(tmp_path, {"a.csv": b"order_id," * 300_000}) == (
        f"{path}: line 1: the header line is longer than 2,000,000 bytes (column 2,000,001 and on); not a CSV file, "
        "or its line breaks are missing")


def test_a_file_whose_every_record_holds_a_nul_byte_is_one_error_line(tmp_path):
    path = tmp_path / "orders" / "a.csv"
    assert read_error(tmp_path, {"a.csv": csv_bytes(["O1,C1,2026-01-01 10:00:00,wi\x00ne,1,1"])}) == (
        f"{path}: line 2: malformed CSV record: a NUL byte (0x00) in column 29 (field 4, 'category'); the export "
        "wrote a binary zero into a value (check quoting and the delimiter ',')")


# --- UTF-16 and UTF-32 --------------------------------------------------------------------------------------------


UTF8_ROWS = [*ROWS[:4], "O5,C5,2026-01-05 10:00:00,葡萄酒,1,5.5"]


@pytest.mark.parametrize("encoded", [
    csv_bytes(UTF8_ROWS, "utf-16"),  # with its byte-order mark, little-endian here
    codecs.BOM_UTF16_BE + csv_bytes(UTF8_ROWS, "utf-16-be"),
    csv_bytes(UTF8_ROWS, "utf-32"),
    codecs.BOM_UTF32_BE + csv_bytes(UTF8_ROWS, "utf-32-be"),
], ids=["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_a_utf16_or_utf32_file_with_a_byte_order_mark_loads_as_its_utf8_copy_would(tmp_path, encoded):
    warehouse = load(tmp_path / "wide", {"a.csv": encoded})
    reference = load(tmp_path / "utf8", {"a.csv": csv_bytes(UTF8_ROWS)})
    assert loaded(warehouse) == loaded(reference)
    assert loaded(warehouse)[-1] == ("O5", "C5", "葡萄酒", 5.5)
    assert quarantine(warehouse) == []
    assert audit(warehouse) == [(5, 5, 0, 0)]


def test_a_utf16_file_without_a_byte_order_mark_is_one_line_naming_the_encoding(tmp_path):
    path = tmp_path / "orders" / "a.csv"
    assert read_error(tmp_path, {"a.csv": csv_bytes(ROWS, "utf-16-le")}) == (
        f"{path}: line 1, column 2: a NUL byte in the header; not a utf-8 text file (UTF-16 or UTF-32 without a "
        "byte-order mark? save it as UTF-8, or as UTF-16 with its mark, which is read as such; orders.encoding takes "
        "gb18030, gbk, utf-8)")


def test_a_cut_off_utf16_file_names_the_line_and_column(tmp_path):
    path = tmp_path / "orders" / "a.csv"
    assert read_error(tmp_path, {"a.csv": csv_bytes(ROWS, "utf-16")[:-1]}) == (
        f"{path}: line 6, column 37: not valid UTF-16 LE (the file starts with a UTF-16 LE byte-order mark); a "
        "damaged or cut-off file? save it again as UTF-8")


# --- glob errors --------------------------------------------------------------------------------------------------


def persona(*args: str, cwd: Path, settle: str = "0") -> subprocess.CompletedProcess:
    env = child_env()
    env |= {"DAGSTER_HOME": str(cwd / "home"), SETTLE_VARIABLE: settle}
    return subprocess.run([PERSONA, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("path", ["orders/*.csv", "orders/{date}.csv"])
def test_a_symbolic_link_loop_under_a_glob_is_one_line_naming_the_pattern(tmp_path, path):
    (tmp_path / "orders").mkdir()
    os.symlink("2026-01-01.csv", tmp_path / "orders" / "2026-01-01.csv")  # a link to itself
    config = write_file(tmp_path / "shop.yaml", f"name: loop\nshape: long\norders:\n  path: {path}\n")
    done = persona("run", "--config", str(config), "--warehouse", "w.duckdb", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"persona: {config}: orders.path: {path!r} matches {tmp_path / 'orders' / '2026-01-01.csv'}, which cannot be "
        "read: a symbolic link loop"]
    assert "Traceback" not in done.stdout + done.stderr


# --- files in motion ----------------------------------------------------------------------------------------------


def backdate(path: Path, seconds: float = 3600) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_settle_variable_must_be_a_number_of_seconds(tmp_path, monkeypatch):
    config = load_source_config(shop(tmp_path, {"a.csv": csv_bytes(ROWS)}))
    monkeypatch.setenv(SETTLE_VARIABLE, "soon")
    with pytest.raises(ConfigError, match=f"^{SETTLE_VARIABLE}='soon': give a number of seconds, 0 or more$"):
        plan_run(config, tmp_path / "w.duckdb")


def materialize_raw_orders(config: Path, tmp_path: Path) -> tuple[dg.ExecuteInProcessResult, list[str]]:
    """raw/orders alone, on an ephemeral instance; the result and the messages the step logged."""
    source = SourceResource(config_path=str(config))
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    plan = plan_run(source.load(), warehouse.published_file)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([raw_orders], resources={"warehouse": warehouse, "source": source},
                                partition_key=plan.partition_key, instance=instance, raise_on_error=False)
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    return result, messages


def raw_amounts(tmp_path: Path) -> list[tuple]:
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    with warehouse.connect(read_only=True) as con:
        return con.execute("SELECT order_id, amount FROM raw.orders ORDER BY _source_row").fetchall()


def test_a_snapshot_file_modified_just_now_is_waited_for_and_then_read(tmp_path, monkeypatch):
    monkeypatch.delenv(SETTLE_VARIABLE)
    config = shop(tmp_path, {"a.csv": csv_bytes(ROWS)}, more="ingest:\n  settle_seconds: 2\n")
    path = tmp_path / "orders" / "a.csv"
    notes = plan_refresh(load_source_config(config), tmp_path / "w.duckdb").notes
    assert len(notes) == 1 and notes[0].startswith(f"{path} was modified ")
    assert notes[0].endswith(" ago: the run waits until it has not changed for 2.0 s (ingest.settle_seconds), "
                             "then reads it")
    started = time.monotonic()
    result, messages = materialize_raw_orders(config, tmp_path)
    assert result.success
    assert time.monotonic() - started >= 1.5  # the file was left alone for 2 s before it was read
    waits = [m for m in messages if m.startswith(f"{path} was modified ")]
    assert len(waits) == 1, messages
    assert waits[0].endswith("(not read until unchanged for 2.0 s, ingest.settle_seconds)")
    assert raw_amounts(tmp_path) == [(f"O{i}", f"{i}.5") for i in range(1, 6)]


def test_a_last_line_still_being_written_is_not_loaded_half_written(tmp_path, monkeypatch):
    """The issue's case: `...,123` without a newline, then `.45` a moment later; 123 must never be loaded."""
    monkeypatch.setenv(SETTLE_VARIABLE, "2")
    config = shop(tmp_path, {"a.csv": csv_bytes(ROWS[:4]) + b"O5,C5,2026-01-05 10:00:00,wine,1,123"})
    path = tmp_path / "orders" / "a.csv"

    def finish_the_line():
        time.sleep(1)
        with path.open("ab") as handle:
            handle.write(b".45\n")

    writer = threading.Thread(target=finish_the_line)
    writer.start()
    result, messages = materialize_raw_orders(config, tmp_path)
    writer.join()
    assert result.success
    assert any(m.startswith(f"{path} was modified ") and "(not read until unchanged for 2.0 s, "
               f"{SETTLE_VARIABLE})" in m for m in messages), messages
    assert raw_amounts(tmp_path)[-1] == ("O5", "123.45")


def test_a_file_that_changes_while_being_read_is_read_again(tmp_path):
    path = write_file(tmp_path / "a.csv", HEADER + "\nO1,C1,2026-01-01 10:00:00,wine,1,123")
    reads, heard = [], []

    def read():
        reads.append(path.read_text())
        if len(reads) == 1:  # the writer finishes the line while the first read is under way
            with path.open("a") as handle:
                handle.write(".45\n")
        return reads[-1]

    text, signature = read_settled(path, 0, "ingest.settle_seconds", read, heard.append)
    assert text.endswith(",123.45\n") and len(reads) == 2
    assert signature == (path.stat().st_size, path.stat().st_mtime_ns)
    assert heard == [f"{path} changed while it was being read: reading it again once it has settled"]


def daily(tmp_path: Path, days: list[date]) -> Path:
    for day in days:
        write_file(tmp_path / "landing" / f"{day}.csv", "\n".join([HEADER, f"O{day.day},C1,{day} 10:00:00,wine,1,"
                                                                           "1.5"]) + "\n")
    return write_file(tmp_path / "shop.yaml", "name: daily\nshape: long\norders:\n  path: landing/{date}.csv\n")


DAY1, DAY2, DAY3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)


def test_a_landing_day_modified_just_now_is_left_pending_and_loaded_once_settled(tmp_path, monkeypatch):
    monkeypatch.setenv(SETTLE_VARIABLE, "2")
    config = load_source_config(daily(tmp_path, [DAY1, DAY2, DAY3]))
    for day in (DAY1, DAY2):
        backdate(tmp_path / "landing" / f"{day}.csv")
    plan, notes = plan_refresh(config, tmp_path / "w.duckdb")
    assert (plan.window.first, plan.window.last) == (DAY1, DAY2)
    assert plan.files == tuple(f"{tmp_path / 'landing' / f'{day}.csv'}:"
                               f"{(tmp_path / 'landing' / f'{day}.csv').stat().st_size}:"
                               f"{(tmp_path / 'landing' / f'{day}.csv').stat().st_mtime_ns}" for day in (DAY1, DAY2))
    [note] = notes
    assert note.startswith(f"landing day {DAY3} left pending: {tmp_path / 'landing' / f'{DAY3}.csv'} was modified ")
    assert note.endswith(f" ago, less than {SETTLE_VARIABLE} (2.0 s), and may still be being written; the next run "
                         "or the landing_files sensor loads it")
    time.sleep(2)
    plan, notes = plan_refresh(config, tmp_path / "w.duckdb")
    assert (plan.window.first, plan.window.last, notes) == (DAY1, DAY3, ())


def test_days_after_a_day_in_motion_wait_with_it(tmp_path, monkeypatch):
    monkeypatch.setenv(SETTLE_VARIABLE, "60")
    config = load_source_config(daily(tmp_path, [DAY1, DAY2, DAY3]))
    for day in (DAY1, DAY3):
        backdate(tmp_path / "landing" / f"{day}.csv")
    plan, [note] = plan_refresh(config, tmp_path / "w.duckdb")
    assert (plan.window.first, plan.window.last) == (DAY1, DAY1)  # a load replaces its window's days whole
    assert note.startswith(f"landing day {DAY2} left pending: ")
    assert f"; the days after it, up to {DAY3}, wait with it; " in note


def test_persona_run_says_which_day_it_leaves_pending_and_why(tmp_path):
    config = daily(tmp_path, [DAY1])
    done = persona("run", "--config", str(config), "--warehouse", "w.duckdb", cwd=tmp_path, settle="60")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"persona: landing day {DAY1} left pending: {tmp_path / 'landing' / f'{DAY1}.csv'} "
                               "was modified ")
    assert lines[0].endswith(f" ago, less than {SETTLE_VARIABLE} (60 s), and may still be being written; the next "
                             "run or the landing_files sensor loads it")
    assert lines[1:] == ["Nothing else to load now.", f"Warehouse: {tmp_path / 'w.duckdb'}"]
    assert not (tmp_path / "w.duckdb").exists()


def test_a_utf16_json_file_reads_as_its_utf8_copy_would(tmp_path):
    records = '[{"order_id": "O1", "customer_id": "C1", "category": "葡萄酒", "amount": "1.5"}]'
    frames = []
    for name, data in (("wide.json", records.encode("utf-16")), ("utf8.json", records.encode("utf-8"))):
        path = tmp_path / name
        path.write_bytes(data)
        frames.append(read_source_file(path, FileSource(path=str(path)), tmp_path).drop(SOURCE_FILE))
    assert frames[0].to_dicts() == frames[1].to_dicts() == [
        {"order_id": "O1", "customer_id": "C1", "category": "葡萄酒", "amount": "1.5", SOURCE_ROW: 1}]
