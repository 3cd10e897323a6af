"""The bad-input corpus (issue 20, point 8): every kind of bad or unusual input a shop export has shown us, each
through the real raw path and staging, each with its outcome asserted — loaded as it should be, quarantined with
its reason, or refused in one line naming the file (and the line and column where there is one) — and the load
audit identity (rows read = loaded + quarantined + duplicates removed) in every run that reads rows.

Cases are data, one per row of CASES: the order file's lines (or bytes), extra `orders:` config, and what must
happen. Focused tests of each rule live beside the code (tests/graph/test_bad_values.py, tests/e2e/
test_bad_files.py, tests/unit/test_ingest.py); this file is the inventory that nothing slipped through.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from assets.raw.readers import IngestError
from pipelines.core.config import ConfigError
from tests.unit.test_staging import rows, stage

HEADER = "order_id,customer_id,order_ts,category,quantity,amount,payment_method"


def line(order_id: str = "O1", customer_id: str = "C1", order_ts: str = "2026-01-05 10:00:00",
         category: str = "wine", quantity: str = "1", amount: str = "10", payment: str = "CARD") -> str:
    return ",".join([order_id, customer_id, order_ts, category, quantity, amount, payment])


GOOD = [line("O1", "C1"), line("O2", "C2", category="beer", amount="5")]


@dataclass(frozen=True)
class Case:
    """One input and its outcome. `lines` are joined under HEADER (or `raw` bytes are the whole file); exactly one
    of `loaded`, `quarantined`, `error` describes the outcome."""

    name: str
    lines: list[str] = field(default_factory=list)
    raw: bytes | None = None
    config: str = ""  # more keys of `orders:`
    sections: str = ""  # more top-level sections
    # loaded: (sql, rows) that must hold; quarantined: (source_row, reason fragment) per quarantined row.
    loaded: tuple[str, list[tuple]] | None = None
    quarantined: list[tuple[int, str]] | None = None
    duplicates: int = 0  # rows removed as exact duplicates
    key_conflicts: int = 0  # rows in quality.key_conflicts
    error: list[str] | None = None  # fragments of the one-line refusal


def orders_sql(columns: str = "order_id, customer_id") -> str:
    return f"SELECT {columns} FROM staging.orders ORDER BY order_id"


CASES = [
    # --- encodings and bytes -------------------------------------------------------------------------------------
    Case("utf-8", GOOD, loaded=(orders_sql(), [("O1", "C1"), ("O2", "C2")])),
    Case("utf-8 with a byte-order mark", raw=("\ufeff" + "\n".join([HEADER, *GOOD]) + "\n").encode("utf-8"),
         loaded=(orders_sql(), [("O1", "C1"), ("O2", "C2")])),
    Case("gbk declared", raw=("\n".join([HEADER, line(category="葡萄酒")]) + "\n").encode("gbk"),
         config="  encoding: gbk\n",
         loaded=("SELECT category FROM staging.order_lines", [("葡萄酒",)])),
    Case("gbk read as utf-8", raw=("\n".join([HEADER, line(category="葡萄酒")]) + "\n").encode("gbk"),
         error=["a.csv", "encoding"]),
    Case("utf-16 with a byte-order mark", raw=("\n".join([HEADER, *GOOD]) + "\n").encode("utf-16"),
         loaded=(orders_sql(), [("O1", "C1"), ("O2", "C2")])),
    Case("utf-16 without a byte-order mark", raw=("\n".join([HEADER, *GOOD]) + "\n").encode("utf-16-le"),
         error=["a.csv", "line 1", "column"]),
    Case("a NUL byte inside a value", [line("O1", "C1"), line("O2", "C\x002"), line("O3", "C3")],
         quarantined=[(2, "NUL byte")]),
    Case("CRLF line endings", raw=("\r\n".join([HEADER, *GOOD]) + "\r\n").encode(),
         loaded=(orders_sql(), [("O1", "C1"), ("O2", "C2")])),
    Case("mixed line endings", raw=(HEADER + "\r\n" + GOOD[0] + "\n" + GOOD[1] + "\r\n").encode(),
         loaded=(orders_sql(), [("O1", "C1"), ("O2", "C2")])),
    # --- ragged and quoted lines ---------------------------------------------------------------------------------
    Case("too few fields", [line("O1", "C1"), "O2,C2,2026-01-05 10:00:00,wine", line("O3", "C3")],
         quarantined=[(2, "malformed")]),
    Case("too many fields", [line("O1", "C1"), line("O2", "C2") + ",extra,more", line("O3", "C3")],
         quarantined=[(2, "malformed")]),
    Case("a quoted comma", [line("O1", "C1", category='"wine, red"')],
         loaded=("SELECT category FROM staging.order_lines", [("wine, red",)])),
    Case("a quoted line break", [line("O1", "C1", category='"wine\nred"'), line("O2", "C2")],
         loaded=(orders_sql(), [("O1", "C1"), ("O2", "C2")])),
    Case("an unterminated quote", [line("O1", "C1"), line("O2", "C2", category='"wine'), line("O3", "C3")],
         quarantined=[(2, "malformed")]),
    Case("spaces around values", [" O1 , C1 ,2026-01-05 10:00:00, wine ,1, 10 ,CARD"],
         loaded=(orders_sql("order_id, customer_id, order_amount"), [("O1", "C1", 10.0)])),
    # --- numbers -------------------------------------------------------------------------------------------------
    Case("a word as amount", [line("O1", "C1"), line("O2", "C2", amount="ten")],
         quarantined=[(2, "amount")]),
    Case("NaN as amount", [line("O1", "C1"), line("O2", "C2", amount="NaN")],
         quarantined=[(2, "not a finite number")]),
    Case("infinity as amount", [line("O1", "C1"), line("O2", "C2", amount="inf")],
         quarantined=[(2, "not a finite number")]),
    Case("minus infinity as quantity", [line("O1", "C1"), line("O2", "C2", quantity="-Infinity")],
         quarantined=[(2, "not a finite number")]),
    Case("an amount above quality.max_line_amount", [line("O1", "C1"), line("O2", "C2", amount="99999999999")],
         quarantined=[(2, "amount")]),
    Case("a decimal comma amount", [line("O1", "C1", amount='"12,50"')],
         quarantined=[(1, "amount")]),
    # --- dates ---------------------------------------------------------------------------------------------------
    Case("an offset", [line("O1", "C1", order_ts="2026-01-05T10:00:00-05:00")], config="  timezone: Asia/Shanghai\n",
         loaded=(orders_sql("order_id, order_ts::VARCHAR"), [("O1", "2026-01-05 23:00:00")])),
    Case("UTC written as Z", [line("O1", "C1", order_ts="2026-01-05T10:00:00Z")], config="  timezone: Asia/Shanghai\n",
         loaded=(orders_sql("order_id, order_ts::VARCHAR"), [("O1", "2026-01-05 18:00:00")])),
    Case("UTC written out", [line("O1", "C1", order_ts="2026-01-05 10:00:00 UTC")],
         config="  timezone: Asia/Shanghai\n",
         loaded=(orders_sql("order_id, order_ts::VARCHAR"), [("O1", "2026-01-05 18:00:00")])),
    Case("1900-01-01", [line("O1", "C1"), line("O2", "C2", order_ts="1900-01-01")],
         quarantined=[(2, "quality.min_order_date")]),
    Case("0001-01-01", [line("O1", "C1"), line("O2", "C2", order_ts="0001-01-01 00:00:00")],
         quarantined=[(2, "quality.min_order_date")]),
    Case("an Excel serial date", [line("O1", "C1"), line("O2", "C2", order_ts="45292.5")],
         quarantined=[(2, "orders.excel_serial_dates")]),
    Case("an Excel serial date, configured", [line("O1", "C1", order_ts="45292.5")],
         config="  excel_serial_dates: true\n",
         loaded=(orders_sql("order_id, order_ts::VARCHAR"), [("O1", "2024-01-01 12:00:00")])),
    Case("a date far in the future", [line("O1", "C1"), line("O2", "C2", order_ts="2099-01-01 10:00:00")],
         quarantined=[(2, "future")]),
    Case("a word as date", [line("O1", "C1"), line("O2", "C2", order_ts="yesterday")],
         quarantined=[(2, "order_ts")]),
    Case("a day-first date format", [line("O1", "C1", order_ts="05/01/2026 10:00")],
         config='  date_formats: ["%d/%m/%Y %H:%M"]\n',
         loaded=(orders_sql("order_id, order_ts::VARCHAR"), [("O1", "2026-01-05 10:00:00")])),
    # --- keys ----------------------------------------------------------------------------------------------------
    Case("no customer id", [line("O1", "C1"), line("O2", "")], quarantined=[(2, "customer_id")]),
    Case("a tab in an id", [line("O1", "C1"), line("O2", "C1\t")], key_conflicts=1,
         loaded=(orders_sql(), [("O1", "C1"), ("O2", "C1")])),
    Case("a zero-width space in an id", [line("O1", "C1"), line("O2", "C1\u200b")], key_conflicts=1,
         loaded=(orders_sql(), [("O1", "C1"), ("O2", "C1")])),
    Case("full-width digits in an id", [line("O1", "C1"), line("O2", "C\uff11")], key_conflicts=1,
         loaded=(orders_sql(), [("O1", "C1"), ("O2", "C1")])),
    Case("ids differing in case", [line("O1", "C1"), line("O2", "c1")],
         loaded=(orders_sql(), [("O1", "C1"), ("O2", "c1")])),
    Case("ids differing in case, folded", [line("O1", "C1"), line("O2", "c1")], key_conflicts=1,
         sections="values:\n  id_case: upper\n", loaded=(orders_sql(), [("O1", "C1"), ("O2", "C1")])),
    Case("an order id used by two customers", [line("O1", "C1"), line("O1", "C2", category="beer")],
         quarantined=[(2, "order_id used by another customer")]),
    Case("an exact duplicate row", [line("O1", "C1"), line("O1", "C1"), line("O2", "C2")], duplicates=1,
         loaded=(orders_sql("order_id, n_lines"), [("O1", 1), ("O2", 1)])),
    # --- sizes and files -----------------------------------------------------------------------------------------
    Case("an oversized line", [line("O1", "C1"), line("O2", "C2", category="x" * 3_000_000), line("O3", "C3")],
         quarantined=[(2, "bytes long")]),
    Case("a header only", [], loaded=(orders_sql(), [])),
    Case("a required column missing", raw=b"order_id,order_ts,amount\nO1,2026-01-05,10\n",
         error=["a.csv", "customer_id"]),
]


def _run(tmp_path: Path, case: Case):
    folder = tmp_path / "orders"
    folder.mkdir()
    body = case.raw if case.raw is not None else ("\n".join([HEADER, *case.lines]) + "\n").encode("utf-8")
    (folder / "a.csv").write_bytes(body)
    return stage(tmp_path, {}, orders_config=case.config + case.sections)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_kind_of_input_has_its_outcome(tmp_path, case):
    if case.error is not None:
        with pytest.raises((IngestError, ConfigError)) as raised:
            _run(tmp_path, case)
        message = str(raised.value)
        assert "\n" not in message.strip(), message
        assert all(fragment in message for fragment in case.error), message
        return
    warehouse = _run(tmp_path, case)
    audit = rows(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined, duplicates_removed "
                            "FROM quality.load_audit WHERE input = 'orders'")
    assert audit and all(read == loaded + quarantined + removed for read, loaded, quarantined, removed in audit)
    assert sum(removed for *_, removed in audit) == case.duplicates
    quarantined = rows(warehouse, "SELECT source_row, reason FROM quality.quarantine WHERE input = 'orders' "
                                  "ORDER BY source_row")
    expected = case.quarantined or []
    assert [row for row, _ in quarantined] == [row for row, _ in expected], quarantined
    for (_, reason), (_, fragment) in zip(quarantined, expected):
        assert fragment in reason, (reason, fragment)
    if case.loaded is not None:
        sql, expected_rows = case.loaded
        assert rows(warehouse, sql) == expected_rows
    conflicts = rows(warehouse, "SELECT count(*) FROM quality.key_conflicts")[0][0]
    assert conflicts == case.key_conflicts


def test_a_glob_through_a_symlink_loop_is_one_line(tmp_path):
    folder = tmp_path / "orders"
    folder.mkdir()
    (folder / "a.csv").write_text("\n".join([HEADER, *GOOD]) + "\n")
    os.symlink(folder / "loop.csv", folder / "loop.csv")
    with pytest.raises((IngestError, ConfigError)) as raised:
        stage(tmp_path, {})
    message = str(raised.value)
    assert "\n" not in message and "orders.path" in message and "loop" in message, message


def test_the_corpus_covers_every_kind_the_issue_lists():
    assert len(CASES) + 1 >= 41
