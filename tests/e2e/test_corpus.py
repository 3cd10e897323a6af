"""Bad-input corpus (issue 3): every kind of broken export ends in a clear error or in quarantine rows.

Each case runs the WHOLE asset graph through `materialize_graph` on a tmp_path warehouse, with its data files
and a small long-shape source config written inside the test. A case that fails while reading names the file
(and the line or the config key); a case that reaches staging ends in exact quarantine, duplicate or conflict
rows, and the load audit identity rows_read = rows_loaded + rows_quarantined + duplicates_removed holds for
every file of the run.
"""

import csv
import io
import re
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.raw.mapping import ABSENT_HINTS
from pipelines.demo.generate import generate_demo_data
from tests.conftest import materialize_graph, query, work_db, write_file

ORDER_HEADER = "order_id,customer_id,order_ts,category,quantity,amount,payment_method"
CUSTOMER_HEADER = "customer_id,age,gender,income,city"
CATEGORIES = ["wine", "dairy", "beer"]
N_CUSTOMERS = 6
N_GOOD = 30

pytestmark = pytest.mark.slow  # every case runs the whole asset graph


# --------------------------------------------------------------------------------------------------- helpers


def good_order_lines(n: int = N_GOOD, start: int = 1) -> list[str]:
    """n valid order lines: one line per order, customers C1..C6, dates in March 2026."""
    return [
        f"O{i},C{1 + i % N_CUSTOMERS},2026-03-0{1 + i % 9} 10:00:00,{CATEGORIES[i % 3]},"
        f"{1 + i % 3},{10 + i}.5,{['CARD', 'CASH', 'MOBILE'][i % 3]}"
        for i in range(start, start + n)
    ]


def good_customer_lines() -> list[str]:
    return [
        f"C{i},{25 + 7 * i},{'FM'[i % 2]},{30000 + 9000 * i},{['Shanghai', 'Beijing'][i % 2]}"
        for i in range(1, N_CUSTOMERS + 1)
    ]


def csv_text(header: str, lines: list[str], newline: str = "\n", final_newline: bool = True) -> str:
    return newline.join([header, *lines]) + (newline if final_newline else "")


def write_config(tmp_path: Path, *, orders: str = "orders.csv", customers: str | None = None,
                 orders_extra: str = "", customers_extra: str = "", extra: str = "") -> Path:
    text = f"name: corpus\nshape: long\norders:\n  path: {orders}\n{orders_extra}"
    if customers is not None:
        text += f"customers:\n  path: {customers}\n{customers_extra}"
    text += extra + "model:\n  k: 2\n"
    return write_file(tmp_path / "shop.yaml", text)


def run_graph(tmp_path: Path, config: Path) -> tuple[dg.ExecuteInProcessResult, Path]:
    """Runs the graph; returns the working database, where every run's diagnostics are (published or not)."""
    published = tmp_path / "w.duckdb"
    return materialize_graph(config, published), work_db(published)


def step_failure_message(result: dg.ExecuteInProcessResult, step_key: str) -> str:
    failures = {event.step_key: event for event in result.get_step_failure_events()}
    assert step_key in failures, f"no failure of step {step_key}; failed steps: {sorted(failures)}"
    cause = failures[step_key].step_failure_data.error.cause
    # A reading error is an IngestError of the raw layer: the user sees its message, not a traceback.
    assert cause is not None and cause.cls_name == "IngestError", cause
    return cause.message.strip().removeprefix("assets.raw.errors.IngestError: ")


def tables(warehouse: Path) -> set[str]:
    if not warehouse.exists():
        return set()
    rows = query(warehouse, "SELECT table_schema || '.' || table_name FROM information_schema.tables")
    return {row[0] for row in rows}


def assert_nothing_published(warehouse: Path) -> None:
    built = tables(warehouse)
    assert "segments.customer_segments" not in built
    assert "segments.segment_profiles" not in built
    # The working database sits in work/ beside the published file, which a failed run never creates.
    assert not (warehouse.parent.parent / warehouse.name).exists()


def audit_rows(warehouse: Path, result: dg.ExecuteInProcessResult) -> dict[str, tuple]:
    """input -> (file name, rows_read, rows_loaded, rows_quarantined, duplicates_removed, exact, conflicting);
    asserts the audit identity for every row of quality.load_audit."""
    rows = query(warehouse, """
        SELECT run_id, input, source_file, rows_read, rows_loaded, rows_quarantined, duplicates_removed,
               exact_duplicates, conflicting_duplicates
        FROM quality.load_audit ORDER BY input, source_file""")
    assert rows, "quality.load_audit is empty"
    for run_id, _, source_file, read, loaded, quarantined, removed, _, _ in rows:
        assert run_id == result.run_id
        assert read == loaded + quarantined + removed, f"audit identity broken for {source_file}"
    audit = {}
    for _, input_name, source_file, *counts in rows:
        assert input_name not in audit, "one file per input in this corpus"
        audit[input_name] = (Path(source_file).name, *counts)
    return audit


def quarantine_rows(warehouse: Path) -> list[tuple]:
    return query(warehouse, """
        SELECT input, parse_filename(source_file), source_row, column_name, raw_value, reason
        FROM quality.quarantine ORDER BY input, source_row""")


def assert_run_succeeded(result: dg.ExecuteInProcessResult, warehouse: Path) -> None:
    assert result.success, [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    outcomes = query(warehouse, "SELECT suite, expectation, column_name, severity, success "
                                "FROM quality.validation_results WHERE run_id = ?", [result.run_id])
    assert len(outcomes) >= 10
    failed_critical = [o for o in outcomes if o[3] == "critical" and not o[4]]
    assert failed_critical == []
    assert "segments.customer_segments" in tables(warehouse)


def check_evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


def report_texts(folder: Path) -> dict[str, str]:
    """The text of the published report's two pages (folder/reports), tags removed and blanks folded."""
    return {language: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", (folder / "reports" / f"report_{language}.html")
                                                 .read_text(encoding="utf-8"))) for language in ("en", "zh")}


# ---------------------------------------------------------------------------- 1-9, 19: files that do not read


@pytest.mark.parametrize(("which", "content"), [
    ("orders", b""),
    ("orders", b"\xef\xbb\xbf\r\n  \n"),
    ("customers", b""),
], ids=["orders-zero-bytes", "orders-bom-and-blank-lines", "customers-zero-bytes"])
def test_empty_file_fails_naming_the_file(tmp_path, which, content):
    write_file(tmp_path / "orders.csv", csv_text(ORDER_HEADER, good_order_lines()))
    write_file(tmp_path / "customers.csv", csv_text(CUSTOMER_HEADER, good_customer_lines()))
    empty = tmp_path / f"{which}.csv"
    empty.write_bytes(content)
    result, warehouse = run_graph(tmp_path, write_config(tmp_path, customers="customers.csv"))
    assert not result.success
    assert [event.step_key for event in result.get_step_failure_events()] == [f"raw__{which}"]
    assert step_failure_message(result, f"raw__{which}") == f"{empty.resolve()}: the file is empty (no header row)"
    assert_nothing_published(warehouse)


def test_header_only_file_is_blocked_by_the_row_count_expectations(tmp_path):
    orders = write_file(tmp_path / "orders.csv", ORDER_HEADER + "\n")
    result, warehouse = run_graph(tmp_path, write_config(tmp_path))
    assert not result.success
    evaluations = check_evaluations(result)
    failed = {name: evaluation.description for name, evaluation in evaluations.items() if not evaluation.passed}
    assert failed == {
        "raw_orders_expectations": "raw.orders: expect_table_row_count_to_be_between [critical]: observed 0",
        "staging_orders_expectations":
            "staging.orders: expect_table_row_count_to_be_between [critical]: observed 0",
        "staging_customers_expectations":
            "staging.customers: expect_table_row_count_to_be_between [critical]: observed 0",
    }
    assert evaluations["load_audit_identity"].passed
    assert query(warehouse, "SELECT suite, expectation, severity, observed_value FROM quality.validation_results "
                            "WHERE run_id = ? AND NOT success ORDER BY suite", [result.run_id]) == [
        ("raw_orders", "expect_table_row_count_to_be_between", "critical", "0"),
        ("staging_customers", "expect_table_row_count_to_be_between", "critical", "0"),
        ("staging_orders", "expect_table_row_count_to_be_between", "critical", "0"),
    ]
    assert audit_rows(warehouse, result) == {"orders": (orders.name, 0, 0, 0, 0, 0, 0)}
    assert query(warehouse, "SELECT count(*) FROM quality.quarantine") == [(0,)]
    assert_nothing_published(warehouse)


@pytest.mark.parametrize("field", ["order_id", "customer_id", "order_ts", "category"])
def test_missing_required_column_fails_naming_file_and_key(tmp_path, field):
    columns = ORDER_HEADER.split(",")
    keep = [i for i, name in enumerate(columns) if name != field]
    lines = [",".join(line.split(",")[i] for i in keep) for line in good_order_lines()]
    orders = write_file(tmp_path / "orders.csv", csv_text(",".join(columns[i] for i in keep), lines))
    result, warehouse = run_graph(tmp_path, write_config(tmp_path))
    assert not result.success
    message = step_failure_message(result, "raw__orders")
    # order_id and category may be declared absent: the message names that way out too.
    assert message.startswith(f"{orders.resolve()}: required column {field!r} is missing; "
                              f"map it under orders.columns.{field}{ABSENT_HINTS.get(('orders', field), '')}. "
                              "The header has [")
    assert_nothing_published(warehouse)


def test_extra_columns_are_ignored_and_listed(tmp_path):
    lines = [f"{line},note {i},{i * 3}" for i, line in enumerate(good_order_lines(), start=1)]
    orders = write_file(tmp_path / "orders.csv", csv_text(ORDER_HEADER + ",remark,store_no", lines))
    result, warehouse = run_graph(tmp_path, write_config(tmp_path))
    assert_run_succeeded(result, warehouse)
    assert query(warehouse, "SELECT input, rows_read, ignored_columns FROM raw.source_files "
                            "WHERE input = 'orders'") == [("orders", N_GOOD, ["remark", "store_no"])]
    raw = query(warehouse, "SELECT order_id, customer_id, order_ts, category, quantity, amount, payment_method "
                           "FROM raw.orders ORDER BY _source_row")
    assert [",".join(row) for row in raw] == good_order_lines()
    assert audit_rows(warehouse, result) == {"orders": (orders.name, N_GOOD, N_GOOD, 0, 0, 0, 0)}


def test_wrong_delimiter_fails_with_the_delimiter_hint(tmp_path):
    lines = [line.replace(",", ";") for line in good_order_lines()]
    orders = write_file(tmp_path / "orders.csv", csv_text(ORDER_HEADER.replace(",", ";"), lines))
    result, warehouse = run_graph(tmp_path, write_config(tmp_path))
    assert not result.success
    message = step_failure_message(result, "raw__orders")
    assert message == (
        f"{orders.resolve()}: required column 'order_id' is missing; map it under orders.columns.order_id"
        f"{ABSENT_HINTS['orders', 'order_id']}. "
        f"The header has [{ORDER_HEADER.replace(',', ';')!r}] (one column only: is the delimiter right?)")
    assert_nothing_published(warehouse)


def _gbk_files(tmp_path: Path) -> tuple[Path, Path]:
    lines = good_order_lines()
    lines[4] = lines[4].replace(",beer,", ",生鲜,")  # order O5, customer C6
    orders = write_file(tmp_path / "orders.csv", csv_text(ORDER_HEADER, lines), encoding="gbk")
    customers = good_customer_lines()
    customers[1] = "C2,39,F,48000,上海"
    customers = write_file(tmp_path / "customers.csv", csv_text(CUSTOMER_HEADER, customers), encoding="gbk")
    return orders, customers


def test_gbk_files_load_with_encoding_gbk(tmp_path):
    orders, customers = _gbk_files(tmp_path)
    config = write_config(tmp_path, customers="customers.csv", orders_extra="  encoding: gbk\n",
                          customers_extra="  encoding: gbk\n")
    result, warehouse = run_graph(tmp_path, config)
    assert_run_succeeded(result, warehouse)
    assert query(warehouse, "SELECT order_id, category FROM staging.order_lines WHERE order_id = 'O5'") == [
        ("O5", "生鲜")]
    assert query(warehouse, "SELECT customer_id, city FROM staging.customers WHERE city = '上海'") == [
        ("C2", "上海")]
    assert audit_rows(warehouse, result) == {
        "customers": (customers.name, N_CUSTOMERS, N_CUSTOMERS, 0, 0, 0, 0),
        "orders": (orders.name, N_GOOD, N_GOOD, 0, 0, 0, 0),
    }


def test_gbk_files_read_as_utf8_fail_naming_file_and_line(tmp_path):
    orders, customers = _gbk_files(tmp_path)
    result, warehouse = run_graph(tmp_path, write_config(tmp_path, customers="customers.csv"))
    assert not result.success
    # 生鲜 in GBK is c9 fa cf ca; order O5 is on line 6 (header is line 1).
    offset = len(csv_text(ORDER_HEADER, good_order_lines()[:4]).encode()) + len("O5,C6,2026-03-06 10:00:00,")
    assert step_failure_message(result, "raw__orders") == (
        f"{orders.resolve()}: line 6: bytes b'\\xc9' are not valid utf-8 (byte offset {offset}); "
        "check 'encoding' in the config")
    # 上海 in GBK is c9 cf ba a3; customer C2 is on line 3.
    offset = len(csv_text(CUSTOMER_HEADER, good_customer_lines()[:1]).encode()) + len("C2,39,F,48000,")
    assert step_failure_message(result, "raw__customers") == (
        f"{customers.resolve()}: line 3: bytes b'\\xc9' are not valid utf-8 (byte offset {offset}); "
        "check 'encoding' in the config")
    assert_nothing_published(warehouse)


def test_utf8_bom_first_column_is_recognised(tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_bytes(b"\xef\xbb\xbf" + csv_text(ORDER_HEADER, good_order_lines()).encode())
    result, warehouse = run_graph(tmp_path, write_config(tmp_path))
    assert_run_succeeded(result, warehouse)
    assert query(warehouse, "SELECT ignored_columns FROM raw.source_files WHERE input = 'orders'") == [([],)]
    assert query(warehouse, "SELECT min(order_id), count(DISTINCT order_id) FROM staging.order_lines") == [
        ("O1", N_GOOD)]
    assert audit_rows(warehouse, result) == {"orders": (orders.name, N_GOOD, N_GOOD, 0, 0, 0, 0)}


def test_crlf_line_endings_leave_no_carriage_returns(tmp_path):
    orders = write_file(tmp_path / "orders.csv", csv_text(ORDER_HEADER, good_order_lines(), newline="\r\n"))
    customers = write_file(tmp_path / "customers.csv",
                           csv_text(CUSTOMER_HEADER, good_customer_lines(), newline="\r\n"))
    result, warehouse = run_graph(tmp_path, write_config(tmp_path, customers="customers.csv"))
    assert_run_succeeded(result, warehouse)
    assert query(warehouse, "SELECT count(*) FROM raw.orders WHERE contains(payment_method, chr(13))") == [(0,)]
    assert query(warehouse, "SELECT count(*) FROM raw.customers WHERE contains(city, chr(13))") == [(0,)]
    assert query(warehouse, "SELECT payment_method, count(*) FROM staging.order_lines GROUP BY ALL ORDER BY 1") == [
        ("CARD", 10), ("CASH", 10), ("MOBILE", 10)]
    assert query(warehouse, "SELECT city, count(*) FROM staging.customers GROUP BY ALL ORDER BY 1") == [
        ("Beijing", 3), ("Shanghai", 3)]
    assert audit_rows(warehouse, result) == {
        "customers": (customers.name, N_CUSTOMERS, N_CUSTOMERS, 0, 0, 0, 0),
        "orders": (orders.name, N_GOOD, N_GOOD, 0, 0, 0, 0),
    }


# A valid record whose quoted category spans two lines: from here on record numbers and file lines differ.
MULTILINE_RECORD = 'O4,C5,2026-03-05 10:00:00,"wine\nred",2,14.5,MOBILE'


@pytest.mark.parametrize(("bad_line", "multiline_before", "line", "reason"), [
    ('O99,C1,"2026-03-01 10:00:00,wine,1,5,CARD', False, 12, "a quoted value is never closed"),
    ('O99,C1"x,2026-03-01 10:00:00,wine,1,5,CARD', False, 12,
     "a quote inside an unquoted value (quote the whole value and double inner quotes)"),
    ('O99,C1,"2026-03-01 10:00:00"x,wine,1,5,CARD', False, 12, "text after the closing quote of a value"),
    ('O99,C1,"2026-03-01 10:00:00",wine,1,5,CARD,"extra"', False, 12, "expected 7 fields, found 8"),
    ('O99,C1,"2026-03-01 10:00:00",wine,1,"5"', False, 12, "expected 7 fields, found 6"),
    ('O99,C1,"2026-03-01 10:00:00",wine,1,5,CARD,"extra"', True, 13, "expected 7 fields, found 8"),
], ids=["unclosed-quote", "stray-quote", "text-after-closing-quote", "extra-quoted-field", "missing-field",
        "extra-field-after-a-multiline-value"])
def test_malformed_line_is_quarantined_and_the_rest_loads(tmp_path, bad_line, multiline_before, line, reason):
    lines = good_order_lines()
    if multiline_before:
        lines[3] = MULTILINE_RECORD
    lines.insert(10, bad_line)  # data row 11 of the file (the header is row 0)
    orders = write_file(tmp_path / "orders.csv", csv_text(ORDER_HEADER, lines))
    result, warehouse = run_graph(tmp_path, write_config(tmp_path))
    assert_run_succeeded(result, warehouse)
    assert quarantine_rows(warehouse) == [
        ("orders", "orders.csv", 11, None, bad_line, f"malformed CSV record on line {line}: {reason}")]
    assert query(warehouse, "SELECT count(*) FROM staging.order_lines WHERE order_id = 'O99'") == [(0,)]
    assert audit_rows(warehouse, result) == {"orders": (orders.name, N_GOOD + 1, N_GOOD, 1, 0, 0, 0)}


def test_a_file_of_malformed_lines_fails_naming_its_first(tmp_path):
    orders = write_file(tmp_path / "orders.csv", csv_text(ORDER_HEADER, ["O1,C1", "O2,C2,x"]))
    result, warehouse = run_graph(tmp_path, write_config(tmp_path))
    assert not result.success
    assert step_failure_message(result, "raw__orders") == (
        f"{orders.resolve()}: line 2: malformed CSV record: expected 7 fields, found 2 "
        "(check quoting and the delimiter ',')")
    assert_nothing_published(warehouse)


def test_mostly_malformed_file_is_blocked_by_the_quarantine_share(tmp_path):
    # Loaded and quarantined line by line, but 10 bad lines of 40 is more than the 5% a file may lose.
    lines = good_order_lines() + [f"O{90 + i},C1,2026-03-01 10:00:00" for i in range(10)]
    write_file(tmp_path / "orders.csv", csv_text(ORDER_HEADER, lines))
    result, warehouse = run_graph(tmp_path, write_config(tmp_path))
    assert not result.success
    assert query(warehouse, "SELECT count(*) FROM quality.quarantine WHERE reason LIKE 'malformed CSV record%'") == [
        (10,)]
    assert_nothing_published(warehouse)


def test_last_line_without_newline_is_loaded(tmp_path):
    orders = write_file(tmp_path / "orders.csv", csv_text(ORDER_HEADER, good_order_lines(), final_newline=False))
    result, warehouse = run_graph(tmp_path, write_config(tmp_path))
    assert_run_succeeded(result, warehouse)
    last = good_order_lines()[-1].split(",")
    assert query(warehouse, "SELECT order_id, customer_id, amount, payment_method FROM staging.order_lines "
                            "WHERE _source_row = ?", [N_GOOD]) == [(last[0], last[1], float(last[5]), last[6])]
    assert audit_rows(warehouse, result) == {"orders": (orders.name, N_GOOD, N_GOOD, 0, 0, 0, 0)}


# ------------------------------------------------------------------ 10-18, 20: rows that reach quarantine


def run_with_bad_order_lines(tmp_path: Path, bad: list[str], customers: list[str] | None = None,
                             extra: str = "") -> tuple[dg.ExecuteInProcessResult, Path, Path]:
    """30 good order lines, then the bad ones (rows 31, 32, ...)."""
    orders = write_file(tmp_path / "orders.csv", csv_text(ORDER_HEADER, good_order_lines() + bad))
    if customers is not None:
        write_file(tmp_path / "customers.csv", csv_text(CUSTOMER_HEADER, customers))
    config = write_config(tmp_path, customers="customers.csv" if customers is not None else None,
                          extra=extra or "quality:\n  max_quarantine_share: 0.5\n")
    result, warehouse = run_graph(tmp_path, config)
    return result, warehouse, orders


def test_non_numeric_amount_is_quarantined(tmp_path):
    # 2.5元 reads as 2.5 (a currency unit); a decimal comma could be 25 or 2.5 and is not read.
    result, warehouse, orders = run_with_bad_order_lines(tmp_path, ['O99,C1,2026-03-01 10:00:00,wine,1,"2,5",CARD'])
    assert_run_succeeded(result, warehouse)
    assert quarantine_rows(warehouse) == [
        ("orders", "orders.csv", 31, "amount", "2,5", "amount is not a number")]
    assert audit_rows(warehouse, result) == {"orders": (orders.name, 31, 30, 1, 0, 0, 0)}


def test_returns_and_cancelled_orders_are_quarantined(tmp_path):
    header = ORDER_HEADER + ",status"
    lines = [f"{line},PAID" for line in good_order_lines()] + [
        "O97,C1,2026-03-01 10:00:00,wine,-1,-10.5,CARD,PAID",
        "O98,C2,2026-03-01 10:00:00,wine,1,10.5,CARD,CANCELLED",
        "O99,C3,2026-03-01 10:00:00,wine,1,10.5,CARD,已取消",
    ]
    orders = write_file(tmp_path / "orders.csv", csv_text(header, lines))
    config = write_config(tmp_path, extra="quality:\n  max_quarantine_share: 0.5\n")
    result, warehouse = run_graph(tmp_path, config)
    assert_run_succeeded(result, warehouse)
    assert quarantine_rows(warehouse) == [
        # Both the quantity and the amount are negative: one return, named by the first negative column.
        ("orders", "orders.csv", 31, "quantity", "-1",
         "return line (negative quantity); returns are kept out of purchase features"),
        ("orders", "orders.csv", 32, "status", "CANCELLED", "cancelled order (status CANCELLED)"),
        ("orders", "orders.csv", 33, "status", "已取消", "cancelled order (status 已取消)"),
    ]
    assert query(warehouse, "SELECT count(*) FROM staging.orders WHERE order_id IN ('O97', 'O98', 'O99')") == [(0,)]
    assert audit_rows(warehouse, result) == {"orders": (orders.name, 33, 30, 3, 0, 0, 0)}


def test_negative_amount_return_names_the_amount(tmp_path):
    result, warehouse, orders = run_with_bad_order_lines(tmp_path, ["O99,C1,2026-03-01 10:00:00,wine,1,-10.5,CARD"])
    assert_run_succeeded(result, warehouse)
    assert audit_rows(warehouse, result) == {"orders": (orders.name, 31, 30, 1, 0, 0, 0)}
    assert quarantine_rows(warehouse) == [
        ("orders", "orders.csv", 31, "amount", "-10.5",
         "return line (negative amount); returns are kept out of purchase features")]


def test_future_order_date_is_quarantined(tmp_path):
    result, warehouse, orders = run_with_bad_order_lines(tmp_path, ["O99,C1,2099-01-01,wine,1,12.5,CARD"])
    assert_run_succeeded(result, warehouse)
    assert quarantine_rows(warehouse) == [
        ("orders", "orders.csv", 31, "order_ts", "2099-01-01",
         "order_ts 2099-01-01 is in the future (later than the run by more than quality.future_tolerance_hours)")]
    assert audit_rows(warehouse, result) == {"orders": (orders.name, 31, 30, 1, 0, 0, 0)}


def test_unknown_payment_code_is_quarantined_and_alias_is_mapped(tmp_path):
    result, warehouse, orders = run_with_bad_order_lines(tmp_path, [
        "O98,C1,2026-03-01 10:00:00,wine,1,12.5,BITCOIN",
        "O99,C2,2026-03-01 10:00:00,wine,1,12.5,支付宝",
    ])
    assert_run_succeeded(result, warehouse)
    assert quarantine_rows(warehouse) == [
        ("orders", "orders.csv", 31, "payment_method", "BITCOIN",
         "payment_method BITCOIN is not in values.payment_methods")]
    assert query(warehouse, "SELECT payment_method FROM staging.orders WHERE order_id = 'O99'") == [("MOBILE",)]
    assert audit_rows(warehouse, result) == {"orders": (orders.name, 32, 31, 1, 0, 0, 0)}


def test_exact_duplicate_order_line_collapses(tmp_path):
    copy = good_order_lines()[6]  # row 7, order O7
    result, warehouse, orders = run_with_bad_order_lines(tmp_path, [copy])
    assert_run_succeeded(result, warehouse)
    assert query(warehouse, "SELECT input, parse_filename(source_file), source_row, "
                            "parse_filename(duplicate_of_file), duplicate_of_row, kind "
                            "FROM quality.removed_duplicates") == [
        ("orders", "orders.csv", 31, "orders.csv", 7, "exact")]
    assert query(warehouse, "SELECT count(*) FROM staging.order_lines WHERE order_id = 'O7'") == [(1,)]
    assert quarantine_rows(warehouse) == []
    assert audit_rows(warehouse, result) == {"orders": (orders.name, 31, 30, 0, 1, 1, 0)}
    # Said out loud, with the amount: a till's repeated scans of one item would be lost revenue.
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "exact_copies_within_a_file"]
    amount = query(warehouse, "SELECT amount FROM staging.order_lines WHERE order_id = 'O7'")[0][0]
    total = query(warehouse, "SELECT sum(amount) FROM staging.order_lines")[0][0]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description == (
        f"1 order line(s) of {orders.resolve()} were dropped as exact copies of an earlier line of the same file "
        f"({amount:,.2f} in amount, {amount / (amount + total):.1%} of the file's): if they are real repeated scans "
        "of one item, set orders.exact_duplicates: keep, or map a column that tells the lines apart as "
        "orders.columns.line_id")


def test_copies_across_files_are_dropped_without_the_within_a_file_warning(tmp_path):
    # Two overlapping exports: the second repeats three lines of the first. Dropping them is what the default is
    # for, so the warning about copies within one file stays quiet.
    lines = good_order_lines()
    write_file(tmp_path / "orders" / "a.csv", csv_text(ORDER_HEADER, lines[:20]))
    write_file(tmp_path / "orders" / "b.csv", csv_text(ORDER_HEADER, lines[17:]))
    result, warehouse = run_graph(tmp_path, write_config(tmp_path, orders="orders/*.csv"))
    assert_run_succeeded(result, warehouse)
    assert query(warehouse, "SELECT parse_filename(source_file), source_row, parse_filename(duplicate_of_file), "
                            "duplicate_of_row, kind FROM quality.removed_duplicates ORDER BY source_row") == [
        ("b.csv", 1, "a.csv", 18, "exact"), ("b.csv", 2, "a.csv", 19, "exact"), ("b.csv", 3, "a.csv", 20, "exact")]
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "exact_copies_within_a_file"]
    assert check.passed and check.description is None and check.metadata["lines_dropped"].value == 0
    place = check_evaluations(result)["customer_id_names_a_person"]
    assert place.passed and place.description is None


def test_a_postal_code_mapped_as_the_customer_id_is_said_and_the_run_still_publishes(tmp_path):
    # An export without a buyer id (Amazon's All Orders Report) whose postal code is mapped as the customer id: the
    # ids are well-formed, so only the column's name tells that each "customer" is everyone at one postal code.
    postal_codes = {f"C{i}": f"{10000 + 1111 * i}" for i in range(1, N_CUSTOMERS + 1)}
    lines = [",".join([fields[0], postal_codes[fields[1]], *fields[2:]])
             for fields in (line.split(",") for line in good_order_lines())]
    write_file(tmp_path / "orders.csv", csv_text(ORDER_HEADER.replace("customer_id", "ship-postal-code"), lines))
    config = write_config(tmp_path, orders_extra="  columns:\n    customer_id: ship-postal-code\n")
    result, warehouse = run_graph(tmp_path, config)
    assert_run_succeeded(result, warehouse)
    assert query(warehouse, "SELECT count(DISTINCT customer_id) FROM staging.customers") == [(N_CUSTOMERS,)]
    place = check_evaluations(result)["customer_id_names_a_person"]
    assert not place.passed and place.severity == dg.AssetCheckSeverity.WARN
    assert place.description.startswith(
        "orders.columns.customer_id ('ship-postal-code') names a place, not a person: everyone who shares it becomes "
        "one customer")
    assert place.metadata["place_columns"].value == "ship-postal-code"
    # Said in the report too, at the top of both pages.
    pages = report_texts(tmp_path)
    assert ("The customer id is the ship-postal-code column, which names a place (a postal code, a city or an "
            "address), not a person: everyone who shares it counts as one customer") in pages["en"]
    assert "客户编号取自 ship-postal-code 列，它表示地点（邮编、城市或地址）而不是个人" in pages["zh"]


def test_masked_customer_ids_are_said_in_the_run_and_the_report(tmp_path):
    # A 快手小店 export without its buyer id: nicknames masked as 用户**** merged 619 orders of different buyers
    # into one "High value" customer, and only init had said the ids were masked (trial 11).
    masked = {"C1": "用户****", "C2": "138****1234"}
    lines = [",".join([fields[0], masked.get(fields[1], fields[1]), *fields[2:]])
             for fields in (line.split(",") for line in good_order_lines(60))]
    write_file(tmp_path / "orders.csv", csv_text(ORDER_HEADER, lines))
    result, warehouse = run_graph(tmp_path, write_config(tmp_path))
    assert_run_succeeded(result, warehouse)
    in_masked = sum(1 for line in lines if "****" in line.split(",")[1])
    assert in_masked == 20 and query(warehouse, "SELECT customer_id, count(*) FROM staging.orders WHERE "
                                                "contains(customer_id, '*') GROUP BY 1 ORDER BY 1") == [
        ("138****1234", 10), ("用户****", 10)]
    check = check_evaluations(result)["customer_id_names_a_person"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description == (
        "20 of the 60 orders (33.3%) have a masked customer id (the largest, '138****1234', holds 10 orders): buyers "
        "who share the visible part of an id are one customer; map an unmasked buyer id if the export can include "
        "one")
    assert check.metadata["orders_with_masked_ids"].value == 20
    pages = report_texts(tmp_path)
    assert ("20 orders (33.3%) have a customer id the export masked (the one with the most orders: 138****1234): "
            "buyers who share the visible part count as one customer") in pages["en"]
    assert "有 20 个订单（占 33.3%）的客户编号被导出文件打了码" in pages["zh"]


def test_conflicting_duplicate_customer_last_row_wins(tmp_path):
    customers = good_customer_lines() + ["C3,46,M,99000,Beijing"]  # row 7 supersedes row 3 (income 57000)
    result, warehouse, orders = run_with_bad_order_lines(tmp_path, [], customers=customers)
    assert_run_succeeded(result, warehouse)
    assert query(warehouse, "SELECT age, gender, income, city, _source_row FROM staging.customers "
                            "WHERE customer_id = 'C3'") == [(46.0, "M", 99000.0, "Beijing", 7)]
    assert query(warehouse, "SELECT input, key_column, key_value, kept_row, superseded_row, differing_columns, "
                            "resolution FROM quality.key_conflicts") == [
        ("customers", "customer_id", "C3", 7, 3, ["income"], "last row in file order wins")]
    assert query(warehouse, "SELECT input, source_row, duplicate_of_row, kind FROM quality.removed_duplicates") == [
        ("customers", 3, 7, "conflict_superseded")]
    assert audit_rows(warehouse, result) == {
        "customers": ("customers.csv", 7, 6, 0, 1, 0, 1),
        "orders": (orders.name, 30, 30, 0, 0, 0, 0),
    }


def test_missing_customer_id_is_quarantined(tmp_path):
    customers = good_customer_lines() + [",40,M,50000,Beijing"]
    result, warehouse, orders = run_with_bad_order_lines(
        tmp_path, ["O99,,2026-03-01 10:00:00,wine,1,12.5,CARD", "O100,   ,2026-03-01 10:00:00,wine,1,12.5,CARD"],
        customers=customers,
        # 1 of 7 customer rows and 2 of 32 order lines lack the key: below the default min_key_share 0.95.
        extra="quality:\n  max_quarantine_share: 0.5\n  min_key_share: 0.8\n")
    assert_run_succeeded(result, warehouse)
    assert quarantine_rows(warehouse) == [
        ("customers", "customers.csv", 7, "customer_id", None, "missing customer_id"),
        ("orders", "orders.csv", 31, "customer_id", None, "missing customer_id"),
        ("orders", "orders.csv", 32, "customer_id", None, "missing customer_id"),
    ]
    assert audit_rows(warehouse, result) == {
        "customers": ("customers.csv", 7, 6, 1, 0, 0, 0),
        "orders": (orders.name, 32, 30, 2, 0, 0, 0),
    }


def test_age_out_of_range_is_quarantined(tmp_path):
    customers = good_customer_lines()
    customers[3] = "C4,999,F,66000,Beijing"
    result, warehouse, orders = run_with_bad_order_lines(tmp_path, [], customers=customers)
    assert_run_succeeded(result, warehouse)
    assert quarantine_rows(warehouse) == [
        ("customers", "customers.csv", 4, "age", "999", "age 999 is outside quality.age_range [0, 120]")]
    # The customer still ordered: staged with an empty profile.
    assert query(warehouse, "SELECT age, income, _source_file FROM staging.customers WHERE customer_id = 'C4'") == [
        (None, None, None)]
    assert audit_rows(warehouse, result) == {
        "customers": ("customers.csv", 6, 5, 1, 0, 0, 0),
        "orders": (orders.name, 30, 30, 0, 0, 0, 0),
    }


def test_age_range_reason_does_not_depend_on_where_the_range_came_from(tmp_path):
    customers = good_customer_lines()
    customers[3] = "C4,999,F,66000,Beijing"
    result, warehouse, orders = run_with_bad_order_lines(
        tmp_path, [], customers=customers, extra="quality:\n  max_quarantine_share: 0.5\n  age_range: [0, 120]\n")
    assert_run_succeeded(result, warehouse)
    assert audit_rows(warehouse, result)["customers"] == ("customers.csv", 6, 5, 1, 0, 0, 0)
    # The same text as with the default range (test_age_out_of_range_is_quarantined).
    assert quarantine_rows(warehouse) == [
        ("customers", "customers.csv", 4, "age", "999", "age 999 is outside quality.age_range [0, 120]")]


def test_impossible_incomes_are_quarantined(tmp_path):
    customers = good_customer_lines()
    customers[1] = "C2,39,F,-5,Beijing"
    customers[4] = "C5,60,M,2e9,Shanghai"
    result, warehouse, orders = run_with_bad_order_lines(tmp_path, [], customers=customers)
    assert_run_succeeded(result, warehouse)
    assert quarantine_rows(warehouse) == [
        ("customers", "customers.csv", 2, "income", "-5",
         "income -5 is outside quality.income_range [0, 100000000]"),
        ("customers", "customers.csv", 5, "income", "2e9",
         "income 2e9 is outside quality.income_range [0, 100000000]"),
    ]
    assert audit_rows(warehouse, result) == {
        "customers": ("customers.csv", 6, 4, 2, 0, 0, 0),
        "orders": (orders.name, 30, 30, 0, 0, 0, 0),
    }


def test_plausible_extreme_customer_is_flagged_and_left_out_of_fitting(tmp_path):
    generated = generate_demo_data(tmp_path / "data", customers=300, days=60, seed=5, outlier_share=0)
    extreme = "C0000042"
    with generated.orders_path.open(newline="") as handle:
        lines = list(csv.DictReader(handle))
    for line in lines:
        if line["customer_id"] == extreme:
            line["quantity"] = str(int(line["quantity"]) * 50)
            line["amount"] = f"{float(line['amount']) * 50:.2f}"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(lines[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(lines)
    write_file(generated.orders_path, buffer.getvalue())
    customers = generated.customers_path.read_text(encoding="utf-8").splitlines()
    customers = [
        ",".join([*row.split(",")[:3], "30000000", *row.split(",")[4:]]) if row.startswith(extreme + ",") else row
        for row in customers
    ]
    write_file(generated.customers_path, "\n".join(customers) + "\n")
    config = write_config(tmp_path, orders=str(generated.orders_path), customers=str(generated.customers_path))
    result, warehouse = run_graph(tmp_path, config)
    assert_run_succeeded(result, warehouse)
    assert quarantine_rows(warehouse) == []
    assert audit_rows(warehouse, result) == {
        "customers": ("customers.csv", 300, 300, 0, 0, 0, 0),
        "orders": ("order_lines.csv", len(lines), len(lines), 0, 0, 0, 0),
    }
    assert query(warehouse, "SELECT income FROM staging.customers WHERE customer_id = ?", [extreme]) == [
        (30_000_000.0,)]
    flagged = {row[0] for row in query(warehouse, "SELECT customer_id FROM quality.outliers WHERE is_outlier")}
    assert extreme in flagged
    assert query(warehouse, "SELECT is_outlier, segment_id IS NOT NULL FROM segments.customer_segments "
                            "WHERE customer_id = ?", [extreme]) == [(True, True)]
    assert {row[0] for row in query(warehouse, "SELECT customer_id FROM segments.customer_segments "
                                               "WHERE is_outlier")} == flagged
    assert query(warehouse, "SELECT n_customers, n_fitted FROM segments.model_runs WHERE chosen") == [
        (300, 300 - len(flagged))]
    [metadata] = [event.materialization.metadata for event in result.get_asset_materialization_events()
                  if event.asset_key == dg.AssetKey(["model", "customer_clusters"])]
    assert metadata["fitted_on"].value == 300 - len(flagged)
    assert metadata["left_out_as_outliers"].value == len(flagged)


def test_quarantine_share_above_the_limit_blocks_publishing(tmp_path):
    bad = [f"O{100 + i},C{1 + i % N_CUSTOMERS},2026-03-02 10:00:00,wine,1,n/a,CARD" for i in range(6)]
    bad_dates = [f"O{200 + i},C{1 + i % N_CUSTOMERS},15 de marzo de 2026,wine,1,9.5,CARD" for i in range(4)]
    orders = write_file(tmp_path / "orders.csv", csv_text(ORDER_HEADER, good_order_lines(20) + bad + bad_dates))
    result, warehouse = run_graph(tmp_path, write_config(tmp_path))
    assert not result.success
    evaluations = check_evaluations(result)
    assert [name for name, evaluation in evaluations.items() if not evaluation.passed] == [
        "quarantine_share_within_limit"]
    share_check = evaluations["quarantine_share_within_limit"]
    # Numbers in a reason are its values (shown as N), but the standard's name stays as it is written.
    assert share_check.description == (
        f"{orders.resolve()}: 33.3% of rows quarantined, above quality.max_quarantine_share 5.0%; most of them: "
        "amount is not a number 20.0%, order_ts is not a date in orders.date_formats or ISO 8601 13.3%")
    assert quarantine_rows(warehouse) == [
        ("orders", "orders.csv", 21 + i, "amount", "n/a", "amount is not a number") for i in range(6)] + [
        ("orders", "orders.csv", 27 + i, "order_ts", "15 de marzo de 2026",
         "order_ts is not a date in orders.date_formats or ISO 8601") for i in range(4)]
    assert audit_rows(warehouse, result) == {"orders": (orders.name, 30, 20, 10, 0, 0, 0)}
    assert_nothing_published(warehouse)


def test_a_small_file_above_the_limit_by_chance_is_loaded_with_a_warning(tmp_path):
    # A night's file of 20 lines with 2 bad amounts: 10% is above the 5% limit, but 20 rows cannot tell an export
    # that spoils one row in ten from one that spoils one in a hundred. The good rows are published; the run warns.
    bad = [f"O{100 + i},C{1 + i},2026-03-02 10:00:00,wine,1,n/a,CARD" for i in range(2)]
    orders = write_file(tmp_path / "orders.csv", csv_text(ORDER_HEADER, good_order_lines(18) + bad))
    result, warehouse = run_graph(tmp_path, write_config(tmp_path))
    assert_run_succeeded(result, warehouse)
    share_check = check_evaluations(result)["quarantine_share_within_limit"]
    assert not share_check.passed and share_check.severity == dg.AssetCheckSeverity.WARN
    assert share_check.description == (
        f"{orders.resolve()}: 2 of 20 rows quarantined (10.0%), above quality.max_quarantine_share 5.0%, but too "
        "few rows to call the export broken (2.8%–30.1% at 95% confidence): loaded; most of them: amount is not a "
        "number 10.0%")
    assert audit_rows(warehouse, result) == {"orders": (orders.name, 20, 18, 2, 0, 0, 0)}


def test_cancelled_orders_returns_and_walk_in_sales_do_not_count_against_the_quarantine_limit(tmp_path):
    # A Taobao-style report: one order in six closed unpaid (交易关闭), two returns, a walk-in sale without a
    # customer, and one line whose amount is not a number. Only that line is a fault of the export (1 of 40 rows,
    # under the 5% limit); how many rows carry a customer id is quality.min_key_share's to judge.
    header = ORDER_HEADER + ",status"
    good = [f"{line},交易成功" for line in good_order_lines(30)]
    closed = [f"O{200 + i},C{1 + i % N_CUSTOMERS},2026-03-04 10:00:00,wine,1,20.5,CARD,交易关闭" for i in range(6)]
    returns = [f"O{300 + i},C{1 + i},2026-03-05 10:00:00,beer,1,-9.5,CASH,交易成功" for i in range(2)]
    walk_in = ["O400,,2026-03-06 10:00:00,dairy,1,12.5,CARD,交易成功"]
    bad_amount = ["O401,C2,2026-03-06 11:00:00,dairy,1,n/a,CARD,交易成功"]
    orders = write_file(tmp_path / "orders.csv", csv_text(header, good + closed + returns + walk_in + bad_amount))
    result, warehouse = run_graph(tmp_path, write_config(tmp_path))
    assert_run_succeeded(result, warehouse)
    assert audit_rows(warehouse, result) == {"orders": (orders.name, 40, 30, 10, 0, 0, 0)}
    assert query(warehouse, "SELECT rows_set_aside FROM quality.load_audit") == [(9,)]
    share_check = check_evaluations(result)["quarantine_share_within_limit"]
    assert share_check.passed
    assert share_check.metadata["worst_share"].value == pytest.approx(1 / 40)


def test_a_broken_export_still_fails_the_limit_beside_cancelled_orders(tmp_path):
    header = ORDER_HEADER + ",status"
    good = [f"{line},PAID" for line in good_order_lines(30)]
    cancelled = [f"O{200 + i},C{1 + i % N_CUSTOMERS},2026-03-04 10:00:00,wine,1,20.5,CARD,CANCELLED" for i in range(5)]
    # Eight bad amounts, two of them on cancelled orders: a cancelled order's row is no purchase whatever else it
    # fails (Amazon writes a cancelled item without a price), so the six others count, still far above the limit.
    bad = [f"O{300 + i},C{1 + i},2026-03-05 10:00:00,beer,1,n/a,CASH,{status}"
           for i, status in enumerate(["PAID"] * 6 + ["CANCELLED"] * 2)]
    orders = write_file(tmp_path / "orders.csv", csv_text(header, good + cancelled + bad))
    result, warehouse = run_graph(tmp_path, write_config(tmp_path))
    assert not result.success
    share_check = check_evaluations(result)["quarantine_share_within_limit"]
    assert share_check.severity == dg.AssetCheckSeverity.ERROR
    assert share_check.description == (
        f"{orders.resolve()}: 14.0% of rows quarantined (besides 7 set aside: cancelled, returned, free or without a "
        "customer id), above quality.max_quarantine_share 5.0%; most of them: amount is not a number 14.0%")
    assert query(warehouse, "SELECT rows_read, rows_quarantined, rows_set_aside FROM quality.load_audit") == [
        (43, 13, 7)]
    assert_nothing_published(warehouse)


def test_malformed_customer_line_is_quarantined_as_a_customers_row(tmp_path):
    customers = good_customer_lines()
    customers.insert(2, "C9,41,F")  # line 4: two fields short
    write_file(tmp_path / "orders.csv", csv_text(ORDER_HEADER, good_order_lines()))
    customer_file = write_file(tmp_path / "customers.csv", csv_text(CUSTOMER_HEADER, customers))
    config = write_config(tmp_path, customers="customers.csv", extra="quality:\n  max_quarantine_share: 0.5\n")
    result, warehouse = run_graph(tmp_path, config)
    assert_run_succeeded(result, warehouse)
    assert quarantine_rows(warehouse) == [
        ("customers", "customers.csv", 3, None, "C9,41,F", "malformed CSV record on line 4: expected 5 fields, found 3")]
    assert audit_rows(warehouse, result)["customers"] == (customer_file.name, N_CUSTOMERS + 1, N_CUSTOMERS, 1, 0, 0, 0)


def test_whitespace_export_below_a_title_with_float_and_full_width_ids_publishes(tmp_path):
    # A console export: a title line, columns aligned with spaces, ids as a spreadsheet or a Chinese input method
    # wrote them (1.0, full-width １); the customer file has the same ids as plain integers.
    full_width = str.maketrans("0123456789", "０１２３４５６７８９")
    lines = []
    for i, line in enumerate(good_order_lines(), start=1):
        _, customer, ts, *rest = line.split(",")
        number = customer.removeprefix("C")
        customer_id = number.translate(full_width) if i % 2 else f"{number}.0"
        lines.append("   ".join([f"{1000 + i}.0", customer_id, ts.replace(" ", "T"), *rest]))
    orders = write_file(tmp_path / "orders.txt",
                        "Orders export 2026-03\n" + csv_text(ORDER_HEADER.replace(",", "  "), lines))
    write_file(tmp_path / "customers.csv",
               csv_text(CUSTOMER_HEADER, [line.removeprefix("C") for line in good_customer_lines()]))
    config = write_config(tmp_path, orders="orders.txt", customers="customers.csv",
                          orders_extra="  delimiter: whitespace\n  skip_rows: 1\n")
    result, warehouse = run_graph(tmp_path, config)
    assert_run_succeeded(result, warehouse)
    assert query(warehouse, "SELECT min(order_id), max(order_id) FROM staging.orders") == [("1001", "1030")]
    assert query(warehouse, "SELECT DISTINCT customer_id FROM staging.orders ORDER BY 1") == [
        (str(k),) for k in range(1, N_CUSTOMERS + 1)]
    # Every ordering customer found its profile: the ids of both files are one set.
    assert query(warehouse, "SELECT count(*) FROM staging.customers WHERE age IS NULL") == [(0,)]
    assert audit_rows(warehouse, result)["orders"] == (orders.name, N_GOOD, N_GOOD, 0, 0, 0, 0)


def test_xlsx_export_with_numeric_ids_publishes(tmp_path):
    # A console's workbook: order ids as numbers, timestamps as dates, amounts as numbers.
    rows = [line.split(",") for line in good_order_lines()]
    pl.DataFrame({
        "order_id": [1000.0 + i for i in range(len(rows))], "customer_id": [r[1] for r in rows],
        "order_ts": pl.Series([r[2] for r in rows]).str.to_datetime(), "category": [r[3] for r in rows],
        "quantity": [int(r[4]) for r in rows], "amount": [float(r[5]) for r in rows],
        "payment_method": [r[6] for r in rows],
    }).write_excel(tmp_path / "orders.xlsx")
    result, warehouse = run_graph(tmp_path, write_config(tmp_path, orders="orders.xlsx"))
    assert_run_succeeded(result, warehouse)
    assert query(warehouse, "SELECT min(order_id), max(order_id), count(*) FROM staging.orders") == [
        ("1000", "1029", N_GOOD)]
    assert audit_rows(warehouse, result)["orders"] == ("orders.xlsx", N_GOOD, N_GOOD, 0, 0, 0, 0)


def test_square_item_sales_with_date_and_time_columns_publishes(tmp_path):
    # Square's Item Sales export writes a sale's date and its time of day in two columns (and a zone name no
    # time zone database knows): orders.columns.order_ts lists both, and every order keeps its time of day.
    header = "Date,Time,Time Zone,Transaction ID,Customer ID,Item,Qty,Net Sales"
    lines = []
    for line in good_order_lines():
        order, customer, ts, category, quantity, amount, _ = line.split(",")
        day, clock = ts.split(" ")
        minute = int(order.removeprefix("O"))
        lines.append(f'{day},{clock.replace(":00:", f":{minute:02d}:")},Eastern Time (US & Canada),{order},'
                     f'{customer},{category},{quantity},"${float(amount) * 100:,.2f}"')
    lines.append('2026-03-09,24:30:00,Eastern Time (US & Canada),O99,C1,wine,1,"$1,234.50"')
    orders = write_file(tmp_path / "items.csv", csv_text(header, lines))
    config = write_config(tmp_path, orders="items.csv", orders_extra=(
        "  columns: {order_ts: [Date, Time], order_id: Transaction ID, customer_id: Customer ID, category: Item, "
        "quantity: Qty, amount: Net Sales}\n"))
    result, warehouse = run_graph(tmp_path, config)
    assert_run_succeeded(result, warehouse)
    assert query(warehouse, "SELECT order_id, order_ts::VARCHAR, order_amount FROM staging.orders "
                            "WHERE order_id IN ('O1', 'O12', 'O30') ORDER BY order_id") == [
        ("O1", "2026-03-02 10:01:00", 1150.0), ("O12", "2026-03-04 10:12:00", 2250.0),
        ("O30", "2026-03-04 10:30:00", 4050.0)]
    assert quarantine_rows(warehouse) == [
        ("orders", "items.csv", 31, "order_ts", "2026-03-09 24:30:00",
         "order_ts (Date + Time) is not a date in orders.date_formats or ISO 8601")]
    assert audit_rows(warehouse, result) == {"orders": (orders.name, 31, 30, 1, 0, 0, 0)}
