"""Tests for the raw layer's readers (assets.raw: readers, mapping, tables), called directly without Dagster.

Why these tests: raw is where a shop's real files meet the pipeline. It must keep every row as text with its file
and 1-based row number (so every later count can be traced back), read the encodings and line endings shops
actually send (UTF-8 with BOM, CRLF, GBK), and when a file cannot be read, say which file, which row or line and
which config key to fix, instead of a traceback.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from assets.raw import lines, readers
from assets.raw.mapping import PII_SALT_VARIABLE, map_columns, read_customers, read_orders
from assets.raw.readers import (
    SOURCE_FILE,
    SOURCE_ROW,
    IngestError,
    check_csv_structure,
    locate_undecodable_line,
    read_source_file,
    read_source_records,
    transcode_to_utf8,
)
from assets.raw.tables import replace_days, snapshot_fingerprint
from pipelines.core.config import (
    CUSTOMER_FIELDS,
    LONG_ORDER_FIELDS,
    LONG_ORDER_REQUIRED,
    WIDE_ORDER_FIELDS,
    FileSource,
    OrdersSource,
    load_source_config,
)
from pipelines.core.partitions import DayWindow
from tests.conftest import EXAMPLES, write_file

BASKET_CATEGORIES = [
    "fruitveg", "freshmeat", "dairy", "cannedveg", "cannedmeat", "frozenmeal",
    "beer", "wine", "softdrink", "fish", "confectionery",
]
LONG_HEADER = "order_id,customer_id,order_ts,category"


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    folder = tmp_path / "scratch"
    folder.mkdir()
    return folder


def _write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _read(path: Path, scratch: Path, **source: object) -> pl.DataFrame:
    return read_source_file(path, FileSource(path=str(path), **source), scratch)


def _read_error(path: Path, scratch: Path, **source: object) -> str:
    with pytest.raises(IngestError) as info:
        _read(path, scratch, **source)
    return str(info.value)


def _config(tmp_path: Path, text: str):
    return load_source_config(write_file(tmp_path / "source.yaml", text))


def _long_config(tmp_path: Path, orders_path: str, extra: str = ""):
    return _config(tmp_path, f"name: shop\nshape: long\norders:\n  path: {orders_path}\n{extra}")


# --- CSV basics -------------------------------------------------------------------------------------------------


def test_csv_rows_are_numbered_from_one_and_carry_their_file(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "orders.csv", "id,qty,price\nA1,2,9.90\nA2,10,0.5\nA3,,007\n")

    frame = _read(path, scratch)

    assert frame.columns == [SOURCE_ROW, "id", "qty", "price", SOURCE_FILE]
    assert frame[SOURCE_ROW].to_list() == [1, 2, 3]
    assert frame.schema[SOURCE_ROW] == pl.Int64
    assert frame[SOURCE_FILE].to_list() == [str(path)] * 3
    # Nothing is typed: numbers keep their spelling (leading zeros, trailing zeros).
    assert {frame.schema[c] for c in ("id", "qty", "price")} == {pl.String}
    assert frame.select("id", "qty", "price").rows() == [("A1", "2", "9.90"), ("A2", "10", "0.5"), ("A3", None, "007")]


def test_utf8_bom_is_stripped_from_the_first_column_name(tmp_path: Path, scratch: Path) -> None:
    path = _write_bytes(tmp_path / "bom.csv", "\ufeffcustomer_id,city\nC1,上海\n".encode("utf-8"))

    frame = _read(path, scratch)

    assert frame.columns[1] == "customer_id"
    assert frame.select("customer_id", "city").rows() == [("C1", "上海")]


def test_utf8_bom_before_a_quoted_first_header_is_stripped(tmp_path: Path, scratch: Path) -> None:
    path = _write_bytes(tmp_path / "bom.csv", b'\xef\xbb\xbf"customer_id","city"\nC1,X\n')

    assert _read(path, scratch).columns[1:3] == ["customer_id", "city"]


def test_header_names_are_trimmed(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "sp.csv", " customer_id , city\nC1,X\n")

    assert _read(path, scratch).columns[1:3] == ["customer_id", "city"]


def test_crlf_file_reads_the_same_as_lf(tmp_path: Path, scratch: Path) -> None:
    text = "customer_id,category,amount\nC1,生鲜,1.5\nC2,\"a, b\",2\n"
    lf = _read(write_file(tmp_path / "lf.csv", text), scratch)
    crlf = _read(write_file(tmp_path / "crlf.csv", text.replace("\n", "\r\n")), scratch)

    assert crlf.drop(SOURCE_FILE).equals(lf.drop(SOURCE_FILE))
    assert crlf["amount"].to_list() == ["1.5", "2"]  # no trailing \r in the last column
    assert crlf["category"].to_list() == ["生鲜", "a, b"]


def test_last_line_without_newline_is_read(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "nonl.csv", "customer_id,amount\nC1,1\nC2,2")

    frame = _read(path, scratch)

    assert frame.select(SOURCE_ROW, "customer_id", "amount").rows() == [(1, "C1", "1"), (2, "C2", "2")]


def test_quoted_field_with_newline_is_one_row(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "ml.csv", 'customer_id,note\nC1,"two\nlines"\nC2,x\n')

    frame = _read(path, scratch)

    assert frame.select(SOURCE_ROW, "customer_id", "note").rows() == [(1, "C1", "two\nlines"), (2, "C2", "x")]


def test_semicolon_file_reads_with_a_semicolon_delimiter(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "semi.csv", "customer_id;amount\nC1;1,5\n")

    assert _read(path, scratch, delimiter=";").select("customer_id", "amount").rows() == [("C1", "1,5")]


def test_tab_delimited_file_reads_with_tab(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "orders.tsv", "customer_id\tamount\nC1\t1\n")

    assert _read(path, scratch, delimiter="tab").select("customer_id", "amount").rows() == [("C1", "1")]


def test_declared_format_overrides_an_unknown_suffix(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "export.dat", "customer_id\nC9\n")

    assert _read(path, scratch, format="csv")["customer_id"].to_list() == ["C9"]


def test_unknown_suffix_without_format_names_the_file(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "orders.xls", "customer_id\nC1\n")

    message = _read_error(path, scratch)

    assert message == f"{path}: cannot tell the format from the suffix '.xls'; set 'format' in the config"


# --- GBK and encoding errors --------------------------------------------------------------------------------------


def test_gbk_file_reads_chinese_correctly(tmp_path: Path, scratch: Path) -> None:
    text = "customer_id,category,city\nC1,生鲜,上海\nC2,母婴,北京\n"
    path = write_file(tmp_path / "gbk.csv", text, encoding="gbk")

    frame = _read(path, scratch, encoding="gbk")

    assert frame.select(SOURCE_ROW, "customer_id", "category", "city").rows() == [
        (1, "C1", "生鲜", "上海"), (2, "C2", "母婴", "北京"),
    ]
    # The row points at the original file, not the transcoded copy.
    assert frame[SOURCE_FILE].unique().to_list() == [str(path)]
    assert path.read_bytes() == text.encode("gbk")


def test_gbk_header_maps_onto_contract_fields(tmp_path: Path, scratch: Path) -> None:
    write_file(tmp_path / "orders.csv", "订单号,会员号,下单时间,品类\nO1,C1,2024-01-02,生鲜\n", encoding="gbk")
    config = _long_config(
        tmp_path, "orders.csv",
        "  encoding: GB2312\n  columns: {order_id: 订单号, customer_id: 会员号, order_ts: 下单时间, category: 品类}\n",
    )

    frame, manifest = read_orders(config, tmp_path)

    assert frame.select("order_id", "customer_id", "order_ts", "category").rows() == [("O1", "C1", "2024-01-02", "生鲜")]
    assert manifest[0]["ignored_columns"] == []


def test_transcode_to_utf8_writes_a_utf8_copy(tmp_path: Path, scratch: Path) -> None:
    text = "city\r\n上海\r\n"
    path = write_file(tmp_path / "gbk.csv", text, encoding="gbk")

    copy = transcode_to_utf8(path, "gbk", scratch)

    assert copy.parent == scratch
    assert copy.read_bytes() == text.encode("utf-8")


def test_invalid_gbk_bytes_name_the_file_the_line_the_byte_and_the_offset(tmp_path: Path, scratch: Path) -> None:
    # header 17 bytes + "C1,上海\n" 8 bytes in GBK + "C2," 3 bytes: the bad byte is at offset 28.
    path = _write_bytes(tmp_path / "bad.csv", "customer_id,city\nC1,上海\n".encode("gbk") + b"C2,\x81\x20x\n")

    message = _read_error(path, scratch, encoding="gbk")

    assert message == (
        f"{path}: line 3: bytes b'\\x81' are not valid gbk (byte offset 28); check 'encoding' in the config"
    )


def test_invalid_gbk_line_is_counted_across_chunks(
    tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "TRANSCODE_CHUNK_BYTES", 7)
    rows = "".join(f"C{i},上海\n" for i in range(10))  # 8 GBK bytes each
    path = _write_bytes(tmp_path / "bad.csv", ("customer_id,city\n" + rows).encode("gbk") + b"CX,\xff\xff\n")

    message = _read_error(path, scratch, encoding="gbk")

    assert message == (
        f"{path}: line 12: bytes b'\\xff' are not valid gbk (byte offset 100); check 'encoding' in the config"
    )


def test_gbk_file_read_as_utf8_names_the_file_and_the_line(tmp_path: Path, scratch: Path) -> None:
    # "上" is C9 CF in GBK; C9 opens a UTF-8 sequence that CF cannot continue. Offset: 17 + len("C1,") = 20.
    path = write_file(tmp_path / "gbk.csv", "customer_id,city\nC1,上海\n", encoding="gbk")

    message = _read_error(path, scratch)  # encoding defaults to utf-8

    assert message == (
        f"{path}: line 2: bytes b'\\xc9' are not valid utf-8 (byte offset 20); check 'encoding' in the config"
    )


@pytest.mark.parametrize(("section", "key"), [("orders", "orders"), ("customers", "customers")])
def test_a_gbk_header_read_as_utf8_names_the_encoding_setting(tmp_path: Path, section: str, key: str) -> None:
    write_file(tmp_path / "data.csv", "订单号,会员号,下单时间,品类,支付方式,备注\nD1,M1,2024-03-01,生鲜,微信支付,\n",
               encoding="gbk")
    path = (tmp_path / "data.csv").resolve()
    other = "customers" if section == "orders" else "orders"
    write_file(tmp_path / f"{other}.csv", "customer_id,order_id,order_ts,category\n")
    config = _config(tmp_path, f"name: shop\nshape: long\n{section}:\n  path: data.csv\n"
                               f"{other}:\n  path: {other}.csv\n")
    read = read_orders if section == "orders" else read_customers

    with pytest.raises(IngestError) as info:
        read(config, tmp_path)

    # One line: the file, what the header reads as, and the setting to change; the first five names only.
    assert str(info.value) == (
        f"{path}: line 1: the header is not valid UTF-8 but reads as GBK ['订单号', '会员号', '下单时间', '品类', "
        f"'支付方式']; set {key}.encoding: gbk in the config")


def test_a_gb18030_only_header_suggests_gb18030(tmp_path: Path, scratch: Path) -> None:
    # "ÿ" (U+00FF) is outside GBK; GB18030 writes it as four bytes, which only GB18030 reads back.
    header = "会员号,金额\u00ff"
    path = write_file(tmp_path / "x.csv", header + "\nC1,1\n", encoding="gb18030")
    assert header.encode("gb18030") != header.encode("utf-8")
    with pytest.raises(UnicodeEncodeError):
        header.encode("gbk")

    assert _read_error(path, scratch) == (
        f"{path}: line 1: the header is not valid UTF-8 but reads as GB18030 ['会员号', '金额\u00ff']; "
        "set encoding: gb18030 in the config")


def test_a_header_in_no_known_encoding_names_the_line(tmp_path: Path, scratch: Path) -> None:
    path = _write_bytes(tmp_path / "x.csv", b"id,\xff\xff\n1,2\n")

    assert _read_error(path, scratch) == (
        f"{path}: line 1: bytes b'\\xff' are not valid utf-8 (byte offset 3); check 'encoding' in the config")


def test_gbk_file_cut_mid_character_names_the_file_and_the_line(tmp_path: Path, scratch: Path) -> None:
    path = _write_bytes(tmp_path / "cut.csv", "customer_id,city\nC1,上海\nC2,".encode("gbk") + b"\xc9")

    message = _read_error(path, scratch, encoding="gbk")

    assert message == (
        f"{path}: line 3: bytes b'\\xc9' are not valid gbk (byte offset 28); check 'encoding' in the config"
    )


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 5, 1 << 20])
def test_invalid_gbk_byte_is_reported_exactly_whatever_the_chunk_size(
    tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int
) -> None:
    monkeypatch.setattr(readers, "TRANSCODE_CHUNK_BYTES", chunk_bytes)
    data = b"a,b\nx\xff,1\n"  # 0xff is byte 5: with 2-byte chunks, the last byte of the third chunk
    path = _write_bytes(tmp_path / "bad.csv", data)

    message = _read_error(path, scratch, encoding="gbk")

    assert message == (
        f"{path}: line 2: bytes b'\\xff' are not valid gbk (byte offset 5); check 'encoding' in the config"
    )


def test_locate_undecodable_line_reports_the_first_bad_line(tmp_path: Path) -> None:
    path = _write_bytes(tmp_path / "x.csv", b"a,b\nok,1\n\xe4\xb8,2\n\xff\n")

    assert locate_undecodable_line(path, "utf-8") == (
        "line 3: bytes b'\\xe4\\xb8' are not valid utf-8 (byte offset 9); check 'encoding' in the config"
    )


def test_locate_undecodable_line_on_a_clean_file_gives_no_line(tmp_path: Path) -> None:
    path = write_file(tmp_path / "ok.csv", "a,b\n上海,1\n")

    assert locate_undecodable_line(path, "utf-8") == "not valid utf-8; check 'encoding' in the config"


# --- empty and malformed CSV ----------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xef\xbb\xbf", b"  \r\n"], ids=["zero-bytes", "blank-lines", "bom-only", "whitespace"])
def test_empty_file_names_the_file(tmp_path: Path, scratch: Path, content: bytes) -> None:
    path = _write_bytes(tmp_path / "empty.csv", content)

    assert _read_error(path, scratch) == f"{path}: the file is empty (no header row)"


def test_empty_gbk_file_names_the_original_file(tmp_path: Path, scratch: Path) -> None:
    path = _write_bytes(tmp_path / "empty.csv", b"")

    assert _read_error(path, scratch, encoding="gbk") == f"{path}: the file is empty (no header row)"


def test_header_only_file_gives_zero_rows(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "header.csv", LONG_HEADER + "\n")

    frame = _read(path, scratch)

    assert frame.height == 0
    assert frame.columns == [SOURCE_ROW, "order_id", "customer_id", "order_ts", "category", SOURCE_FILE]


def test_header_only_file_maps_to_an_empty_orders_frame(tmp_path: Path) -> None:
    write_file(tmp_path / "orders.csv", LONG_HEADER)
    config = _long_config(tmp_path, "orders.csv")

    frame, manifest = read_orders(config, tmp_path)

    assert frame.height == 0
    assert frame.columns == [SOURCE_FILE, SOURCE_ROW, *LONG_ORDER_FIELDS, "_partition_date"]
    stat = (tmp_path / "orders.csv").stat()
    assert manifest == [{"source_file": str((tmp_path / "orders.csv").resolve()), "input": "orders",
                         "rows_read": 0, "ignored_columns": [], "partition_date": None,
                         "file_size": stat.st_size, "file_mtime_ns": stat.st_mtime_ns, "malformed": []}]


def _malformed(path: Path, line: int, reason: str, delimiter: str = ",") -> str:
    return f"{path}: line {line}: malformed CSV record: {reason} (check quoting and the delimiter {delimiter!r})"


def _read_with_malformed(path: Path, scratch: Path, **source: object) -> tuple[list[tuple], list[tuple]]:
    """The rows read (row number and values) and the malformed lines (row, line, raw text, reason)."""
    frame, malformed = read_source_records(path, FileSource(path=str(path), **source), scratch)
    rows = frame.drop(SOURCE_FILE).rows()
    return rows, [(m["row"], m["line"], m["raw_text"], m["reason"]) for m in malformed]


# One malformed line is left out and reported with its row, line, raw text and reason; the other records load.
def test_row_with_too_many_fields_is_left_out_with_its_line(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "ragged.csv", "customer_id,amount\nC1,1\nC2,2,extra\nC3,3\n")

    assert _read_with_malformed(path, scratch) == (
        [(1, "C1", "1"), (3, "C3", "3")], [(2, 3, "C2,2,extra", "expected 2 fields, found 3")])


@pytest.mark.parametrize(
    ("text", "good", "bad"),
    [
        pytest.param("customer_id,amount,city\nC1,1,X\nC2,2\nC3,3,Y\n", [(1, "C1", "1", "X"), (3, "C3", "3", "Y")],
                     (2, 3), id="middle-row"),
        pytest.param("customer_id,amount,city\nC2,2\nC3,3,Y\n", [(2, "C3", "3", "Y")], (1, 2), id="first-row"),
        pytest.param("customer_id,amount,city\nC1,1,X\nC2,2", [(1, "C1", "1", "X")], (2, 3),
                     id="last-row-without-newline"),
        pytest.param("customer_id,amount,city\r\nC1,1,X\r\nC2,2\r\nC3,3,Y\r\n", [(1, "C1", "1", "X"), (3, "C3", "3", "Y")],
                     (2, 3), id="crlf"),
    ],
)
def test_row_with_too_few_fields_is_left_out_with_its_line(
    tmp_path: Path, scratch: Path, text: str, good: list, bad: tuple
) -> None:
    path = write_file(tmp_path / "short.csv", text)

    assert _read_with_malformed(path, scratch) == (good, [(*bad, "C2,2", "expected 3 fields, found 2")])


def test_row_with_too_few_fields_in_a_gbk_file_is_left_out(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "short.csv", "会员号,品类,金额\nC1,生鲜,1\nC2,母婴\n", encoding="gbk")

    assert _read_with_malformed(path, scratch, encoding="gbk") == (
        [(1, "C1", "生鲜", "1")], [(2, 3, "C2,母婴", "expected 3 fields, found 2")])


def test_row_with_too_few_fields_uses_the_configured_delimiter(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "short.csv", "a;b;c\n1;2;3\n4;5;6\n7;8\n9\n")

    assert _read_with_malformed(path, scratch, delimiter=";") == (
        [(1, "1", "2", "3"), (2, "4", "5", "6")],
        [(3, 4, "7;8", "expected 3 fields, found 2"), (4, 5, "9", "expected 3 fields, found 1")])


def test_text_after_a_closing_quote_is_left_out(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "quote.csv", 'customer_id,amount\nC1,1\n"C2"x,2\nC3,3\n')

    assert _read_with_malformed(path, scratch) == (
        [(1, "C1", "1"), (3, "C3", "3")], [(2, 3, '"C2"x,2', "text after the closing quote of a value")])


def test_unterminated_quote_leaves_out_only_its_own_line(tmp_path: Path, scratch: Path) -> None:
    # The quote opened on line 3 is never closed: lines 4 and 5 are still read as records of their own, and the
    # quoted multi-line value after them is one record.
    path = write_file(tmp_path / "quote.csv", 'customer_id,amount\nC1,1\n"C2,2\nC3,3\nC4,"x\ny"\nC5,5\n')

    assert _read_with_malformed(path, scratch) == (
        [(1, "C1", "1"), (3, "C3", "3"), (4, "C4", "x\ny"), (5, "C5", "5")],
        [(2, 3, '"C2,2', "a quoted value is never closed")])


def test_a_bad_utf8_line_is_left_out(tmp_path: Path, scratch: Path) -> None:
    path = tmp_path / "bytes.csv"
    # 0xFF is no character's byte in UTF-8, GBK or GB18030: a damaged line, not a file in another encoding.
    path.write_bytes(b"customer_id,city\nC1,X\nC2,\xff\nC3,Y\n")

    assert _read_with_malformed(path, scratch) == (
        [(1, "C1", "X"), (3, "C3", "Y")],
        [(2, 3, "C2,\ufffd", "bytes b'\\xff' are not valid utf-8; check 'encoding' in the config")])


def test_lines_that_read_as_gbk_fail_the_file_naming_the_first(tmp_path: Path, scratch: Path) -> None:
    # 上海 in GBK (c9 cf ba a3) on one line of an ASCII-headed file: the file's encoding is wrong, not the line.
    path = tmp_path / "gbk.csv"
    path.write_bytes(b"customer_id,city\nC1,X\nC2," + "上海".encode("gbk") + b"\nC3,Y\n")

    assert _read_error(path, scratch) == (
        f"{path}: line 3: bytes b'\\xc9' are not valid utf-8 (byte offset 25); check 'encoding' in the config")


def test_a_file_in_which_no_record_parses_fails_naming_its_first_bad_line(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "ragged.csv", "a,b,c\n1,2\n3,4,5,6\n")

    assert _read_error(path, scratch) == _malformed(path, 2, "expected 3 fields, found 2")


def test_check_csv_structure_counts_records_not_lines(tmp_path: Path) -> None:
    path = write_file(tmp_path / "ml.csv", 'a,b\n1,"x\ny"\n2,3\n')

    assert check_csv_structure(path, path, ",", ["a", "b"]) == 2


def test_check_csv_structure_on_a_header_only_file_counts_zero(tmp_path: Path) -> None:
    path = write_file(tmp_path / "h.csv", "a,b\n")

    assert check_csv_structure(path, path, ",", ["a", "b"]) == 0


def test_check_csv_structure_reports_the_first_bad_line_under_the_shown_name(tmp_path: Path) -> None:
    path = write_file(tmp_path / "ragged.csv.utf8", "a;b;c\n1;2;3\n4;5;6\n7;8\n9\n")
    shown = tmp_path / "ragged.csv"

    with pytest.raises(IngestError) as info:
        check_csv_structure(path, shown, ";", ["a", "b", "c"])

    assert str(info.value) == _malformed(shown, 4, "expected 3 fields, found 2", ";")


def test_check_csv_structure_reports_an_unterminated_quote(tmp_path: Path) -> None:
    path = write_file(tmp_path / "u.csv", 'a,b\n1,2\n"3,4\n5,6\n')

    with pytest.raises(IngestError) as info:
        check_csv_structure(path, path, ",", ["a", "b"])

    assert str(info.value) == _malformed(path, 3, "a quoted value is never closed")


def test_ragged_row_after_a_multiline_field_is_left_out_with_its_physical_line(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "ml.csv", 'customer_id,note\nC1,"two\nlines"\nC2,x,extra\nC3,y\n')

    assert _read_with_malformed(path, scratch) == (
        [(1, "C1", "two\nlines"), (3, "C3", "y")], [(2, 4, "C2,x,extra", "expected 2 fields, found 3")])


def test_quote_inside_an_unquoted_field_is_left_out(tmp_path: Path, scratch: Path) -> None:
    # DuckDB's strict parse accepts C2"x and Polars rejects it: the second pass leaves the line out.
    path = write_file(tmp_path / "quote.csv", 'customer_id,amount\nC1,1\nC2"x,2\nC3,3\n')

    rows, malformed = _read_with_malformed(path, scratch)

    assert rows == [(1, "C1", "1"), (3, "C3", "3")]
    assert [m[:3] for m in malformed] == [(2, 3, 'C2"x,2')]
    assert malformed[0][3].startswith("a quote inside an unquoted value")


def test_trailing_blank_line_is_not_a_record(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "blank.csv", "customer_id,amount\nC1,1\n\n")

    assert _read(path, scratch).select(SOURCE_ROW, "customer_id", "amount").rows() == [(1, "C1", "1")]


# --- duplicate header names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "duplicates"),
    [
        pytest.param("customer_id,city,customer_id", ["customer_id"], id="exact"),
        pytest.param("customer_id, customer_id,city", ["customer_id"], id="after-trimming"),
        pytest.param("a,b,a,a", ["a"], id="three-times"),
        pytest.param("a, b,a ,b", ["a", "b"], id="two-names-sorted"),
        pytest.param("\ufeffcustomer_id,customer_id,city", ["customer_id"], id="after-bom"),
    ],
)
def test_duplicate_header_names_the_file_line_and_columns(
    tmp_path: Path, scratch: Path, header: str, duplicates: list[str]
) -> None:
    fields = header.count(",") + 1
    path = write_file(tmp_path / "dup.csv", header + "\n" + ",".join(["v"] * fields) + "\n")

    assert _read_error(path, scratch) == f"{path}: line 1: duplicate column name(s) {duplicates} in the header"


def test_duplicate_header_in_a_gbk_file_names_the_original_file(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "dup.csv", "会员号,会员号\nC1,C2\n", encoding="gbk")

    assert _read_error(path, scratch, encoding="gbk") == (
        f"{path}: line 1: duplicate column name(s) ['会员号'] in the header"
    )


def test_a_real_column_named_like_a_polars_rename_is_not_a_duplicate(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "x.csv", "x_duplicated_0,y\n1,2\n")

    assert _read(path, scratch).select("x_duplicated_0", "y").rows() == [("1", "2")]


# --- column mapping -------------------------------------------------------------------------------------------


def test_semicolon_file_read_with_comma_hints_at_the_delimiter(tmp_path: Path) -> None:
    path = write_file(tmp_path / "orders.csv", "order_id;customer_id;order_ts;category\nO1;C1;2024-01-01;生鲜\n")
    config = _long_config(tmp_path, "orders.csv")

    with pytest.raises(IngestError) as info:
        read_orders(config, tmp_path)

    message = str(info.value)
    assert message.startswith(f"{path.resolve()}: required column 'order_id' is missing; map it under orders.columns.order_id")
    assert "['order_id;customer_id;order_ts;category'] (one column only: is the delimiter right?)" in message


def test_missing_required_column_names_the_column_and_the_config_key(tmp_path: Path) -> None:
    path = write_file(tmp_path / "orders.csv", "order_id,customer_id,order_ts\nO1,C1,2024-01-01\n")
    config = _long_config(tmp_path, "orders.csv")

    with pytest.raises(IngestError) as info:
        read_orders(config, tmp_path)

    assert str(info.value) == (
        f"{path.resolve()}: required column 'category' is missing; map it under orders.columns.category, give a "
        "product table (products:) or orders.category_rules, or declare it absent (orders.columns.category: "
        "null): segments then use no categories. The header has ['order_id', 'customer_id', 'order_ts']"
    )


def test_missing_required_customer_column_names_customers_key(tmp_path: Path) -> None:
    write_file(tmp_path / "orders.csv", LONG_HEADER + "\n")
    people = write_file(tmp_path / "people.csv", "member,city\nC1,X\n")
    config = _long_config(tmp_path, "orders.csv", "customers:\n  path: people.csv\n")

    with pytest.raises(IngestError) as info:
        read_customers(config, tmp_path)

    assert str(info.value).startswith(
        f"{people.resolve()}: required column 'customer_id' is missing; map it under customers.columns.customer_id."
    )


def test_mapped_column_missing_from_the_header_names_column_and_key(tmp_path: Path) -> None:
    path = write_file(tmp_path / "orders.csv", "oid,customer_id,order_ts,category\nO1,C1,2024-01-01,生鲜\n")
    config = _long_config(tmp_path, "orders.csv", "  columns: {order_id: OrderID}\n")

    with pytest.raises(IngestError) as info:
        read_orders(config, tmp_path)

    assert str(info.value) == (
        f"{path.resolve()}: column 'OrderID' (mapped in orders.columns.order_id) is not in the header; "
        "the header has ['oid', 'customer_id', 'order_ts', 'category']"
    )


def test_mapped_optional_column_missing_is_an_error_too(tmp_path: Path) -> None:
    write_file(tmp_path / "orders.csv", LONG_HEADER + "\nO1,C1,2024-01-01,生鲜\n")
    config = _long_config(tmp_path, "orders.csv", "  columns: {sku: item_code}\n")

    with pytest.raises(IngestError, match=r"column 'item_code' \(mapped in orders\.columns\.sku\) is not in the header"):
        read_orders(config, tmp_path)


def test_mapping_renames_and_extra_columns_are_reported_as_ignored(tmp_path: Path) -> None:
    path = write_file(
        tmp_path / "orders.csv",
        "oid,member,order_ts,category,amount,store,remark\nO1,C1,2024-01-01,生鲜,12.5,S1,hi\nO2,C2,2024-01-02,母婴,3,S2,\n",
    )
    config = _long_config(tmp_path, "orders.csv", "  columns: {order_id: oid, customer_id: member}\n")

    frame, manifest = read_orders(config, tmp_path)

    assert frame.columns == [SOURCE_FILE, SOURCE_ROW, *LONG_ORDER_FIELDS, "_partition_date"]
    assert frame.select(SOURCE_ROW, "order_id", "customer_id", "category", "amount", "sku").rows() == [
        (1, "O1", "C1", "生鲜", "12.5", None), (2, "O2", "C2", "母婴", "3", None),
    ]
    assert frame[SOURCE_FILE].unique().to_list() == [str(path.resolve())]
    assert [{k: e[k] for k in ("source_file", "input", "rows_read", "ignored_columns", "partition_date")}
            for e in manifest] == [{"source_file": str(path.resolve()), "input": "orders", "rows_read": 2,
                                    "ignored_columns": ["store", "remark"], "partition_date": None}]


def test_map_columns_directly(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "o.csv", "cid,order_id,order_ts,category,colour\nC1,O1,t,c,red\n")
    source = FileSource(path=str(path), columns={"customer_id": "cid"})
    frame = read_source_file(path, source, scratch)

    mapped, ignored = map_columns(frame, path, source, LONG_ORDER_FIELDS, LONG_ORDER_REQUIRED, "orders")

    assert ignored == ["colour"]
    assert mapped.row(0, named=True) | {SOURCE_FILE: None} == {
        SOURCE_FILE: None, SOURCE_ROW: 1, "order_id": "O1", "customer_id": "C1", "order_ts": "t", "category": "c",
        "quantity": None, "amount": None, "unit_price": None, "payment_method": None, "channel": None, "sku": None,
        "line_id": None, "status": None, "line_status": None, "cancelled_at": None, "description": None,
    }


def test_glob_of_several_files_numbers_rows_per_file(tmp_path: Path) -> None:
    jan = write_file(tmp_path / "in" / "2024-01.csv", LONG_HEADER + "\nO1,C1,t,a\nO2,C1,t,b\n")
    feb = write_file(tmp_path / "in" / "2024-02.csv", LONG_HEADER + ",extra\nO3,C2,t,a,x\n")
    config = _long_config(tmp_path, "in/*.csv")

    frame, manifest = read_orders(config, tmp_path)

    assert frame.select(SOURCE_FILE, SOURCE_ROW, "order_id").rows() == [
        (str(jan.resolve()), 1, "O1"), (str(jan.resolve()), 2, "O2"), (str(feb.resolve()), 1, "O3"),
    ]
    assert [(m["source_file"], m["rows_read"], m["ignored_columns"]) for m in manifest] == [
        (str(jan.resolve()), 2, []), (str(feb.resolve()), 1, ["extra"]),
    ]


def test_no_customer_file_gives_an_empty_typed_frame(tmp_path: Path) -> None:
    write_file(tmp_path / "orders.csv", LONG_HEADER + "\n")
    config = _long_config(tmp_path, "orders.csv")

    frame, manifest = read_customers(config, tmp_path)

    assert manifest == []
    assert frame.height == 0
    assert frame.schema == pl.Schema({SOURCE_FILE: pl.String, SOURCE_ROW: pl.Int64,
                                      **{f: pl.String for f in CUSTOMER_FIELDS}, "_partition_date": pl.Date})


# --- wide shape -----------------------------------------------------------------------------------------------


WIDE_YAML = (
    "name: shop\nshape: wide\norders:\n  path: baskets.csv\n"
    "  columns: {customer_id: cardid, amount: value, gender: sex}\n"
    "  category_columns: [fruitveg, beer]\n"
)


def test_wide_shape_keeps_category_flag_columns(tmp_path: Path) -> None:
    write_file(tmp_path / "baskets.csv", "cardid,value,sex,fruitveg,beer,wine\n39808,42.7123,M,F,T,T\n")
    config = _config(tmp_path, WIDE_YAML)

    frame, manifest = read_orders(config, tmp_path)

    assert frame.columns == [SOURCE_FILE, SOURCE_ROW, *WIDE_ORDER_FIELDS, "fruitveg", "beer", "_partition_date"]
    row = frame.row(0, named=True)
    assert (row["customer_id"], row["amount"], row["gender"], row["fruitveg"], row["beer"]) == ("39808", "42.7123", "M", "F", "T")
    assert manifest[0]["ignored_columns"] == ["wine"]


def test_wide_shape_missing_category_column_names_it_and_the_key(tmp_path: Path) -> None:
    path = write_file(tmp_path / "baskets.csv", "cardid,value,sex,fruitveg\n39808,42.7,M,F\n")
    config = _config(tmp_path, WIDE_YAML)

    with pytest.raises(IngestError) as info:
        read_orders(config, tmp_path)

    assert str(info.value) == (
        f"{path.resolve()}: category column 'beer' (listed in orders.category_columns) is not in the header; "
        "the header has ['cardid', 'value', 'sex', 'fruitveg']"
    )


def test_seed_baskets_read_in_full(seed_baskets: Path, tmp_path: Path) -> None:
    config = load_source_config(EXAMPLES / "baskets.yaml").with_input(seed_baskets)

    frame, manifest = read_orders(config, tmp_path)

    assert frame.height == 1000
    assert frame[SOURCE_ROW].to_list() == list(range(1, 1001))
    assert frame.columns[-12:-1] == BASKET_CATEGORIES
    assert frame.select(SOURCE_ROW, "customer_id", "amount", "payment_method", "gender", "home_owner").row(0) == (
        1, "39808", "42.7123", "CHEQUE", "M", "NO",
    )
    # The documented duplicate id: rows 27 and 917.
    assert frame.filter(pl.col("customer_id") == "37917")[SOURCE_ROW].to_list() == [27, 917]
    # The last row has no trailing newline and is still read in full.
    assert frame.row(999, named=True)["confectionery"] in ("T", "F")
    assert [{k: e[k] for k in ("source_file", "input", "rows_read", "ignored_columns", "file_size")}
            for e in manifest] == [{"source_file": str(seed_baskets.resolve()), "input": "orders", "rows_read": 1000,
                                    "ignored_columns": [], "file_size": seed_baskets.stat().st_size}]


# --- Parquet and JSON -----------------------------------------------------------------------------------------


def test_parquet_values_become_strings_with_row_numbers(tmp_path: Path, scratch: Path) -> None:
    path = tmp_path / "orders.parquet"
    pl.DataFrame({"customer_id": [101, 102], "amount": [1.5, None], "member": [True, False]}).write_parquet(path)

    frame = _read(path, scratch)

    assert all(dtype == pl.String for name, dtype in frame.schema.items() if name != SOURCE_ROW)
    assert frame.select(SOURCE_ROW, "customer_id", "amount", "member").rows() == [
        (1, "101", "1.5", "true"), (2, "102", None, "false"),
    ]
    assert frame[SOURCE_FILE].to_list() == [str(path)] * 2


def test_corrupt_parquet_names_the_file(tmp_path: Path, scratch: Path) -> None:
    path = _write_bytes(tmp_path / "orders.parquet", b"customer_id\nC1\n")

    message = _read_error(path, scratch)

    assert message.startswith(f"{path}: not a readable Parquet file (")
    assert "PAR1" in message  # polars' reason: the footer magic is missing


def test_json_array_reads_as_strings_with_row_numbers(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "orders.json", '[{"customer_id": "C1", "qty": 2, "city": "上海"},\n'
                                                '{"customer_id": "C2", "qty": 3, "city": null}]')

    frame = _read(path, scratch)

    assert frame.select(SOURCE_ROW, "customer_id", "qty", "city").rows() == [(1, "C1", "2", "上海"), (2, "C2", "3", None)]
    assert frame.schema["qty"] == pl.String
    assert frame[SOURCE_FILE].to_list() == [str(path)] * 2


def test_ndjson_reads_as_strings_with_row_numbers(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "orders.jsonl", '{"customer_id": "C1", "amount": 1.25}\n{"customer_id": "C2", "amount": 7}\n')

    frame = _read(path, scratch)

    assert frame.select(SOURCE_ROW, "customer_id").rows() == [(1, "C1"), (2, "C2")]
    assert frame.schema["amount"] == pl.String
    assert frame["amount"][0] == "1.25"


def test_json_array_with_bom_reads(tmp_path: Path, scratch: Path) -> None:
    path = _write_bytes(tmp_path / "orders.json", b'\xef\xbb\xbf[{"customer_id": "C1"}]')

    assert _read(path, scratch)["customer_id"].to_list() == ["C1"]


def test_ndjson_with_bom_reads(tmp_path: Path, scratch: Path) -> None:
    path = _write_bytes(tmp_path / "orders.jsonl", b'\xef\xbb\xbf{"customer_id": "C1"}\n{"customer_id": "C2"}\n')

    frame = _read(path, scratch)

    assert frame.columns == [SOURCE_ROW, "customer_id", SOURCE_FILE]
    assert frame.select(SOURCE_ROW, "customer_id").rows() == [(1, "C1"), (2, "C2")]
    assert frame[SOURCE_FILE].to_list() == [str(path)] * 2


@pytest.mark.parametrize(
    ("name", "text", "column"),
    [
        ("nested.json", '[{"customer_id": "C1", "address": {"city": "上海"}}]', "address"),
        ("nested.jsonl", '{"customer_id": "C1", "tags": [1, 2]}\n', "tags"),
    ],
    ids=["object-in-array", "list-in-ndjson"],
)
def test_nested_json_names_the_file_and_column(tmp_path: Path, scratch: Path, name: str, text: str, column: str) -> None:
    path = write_file(tmp_path / name, text)

    message = _read_error(path, scratch)

    assert message == f"{path}: column(s) ['{column}'] hold nested values; the contract needs flat records"


def test_broken_json_array_names_the_line_and_column(tmp_path: Path, scratch: Path) -> None:
    # An array is one JSON value: a syntax error stops the file.
    path = write_file(tmp_path / "orders.json", '[{"customer_id": "C1", "qty": 1},\n {"customer_id": "C2",}]')

    assert _read_error(path, scratch) == (
        f"{path}: line 2, column 23: not valid JSON (Expecting property name enclosed in double quotes)")


# An export's JSON Lines file with a line cut off mid-record, a line that is not an object, a NaN (not JSON) and a
# blank line: the good records load with their row numbers, the bad lines are kept with line, text and reason.
def test_ndjson_lines_that_are_not_records_are_left_out_with_their_line(tmp_path: Path, scratch: Path) -> None:
    path = _write_bytes(tmp_path / "orders.jsonl", b'{"customer_id": "C1", "amount": 1.25}\n'
                                                   b'{"customer_id": "C2", "amount":\n'
                                                   b'\n'
                                                   b'["C3", 4]\n'
                                                   b'{"customer_id": "C4", "amount": NaN}\r\n'
                                                   b'{"customer_id": "C5", "amount": 7, "note": "\xe5\x8f\xa3"}\n')

    assert _read_with_malformed(path, scratch) == (
        [(1, "C1", "1.25", None), (5, "C5", "7", "口")],
        [(2, 2, '{"customer_id": "C2", "amount":', "Expecting value at column 32"),
         (3, 4, '["C3", 4]', "a JSON list, not an object"),
         (4, 5, '{"customer_id": "C4", "amount": NaN}', "NaN is not a JSON value")])


# Lines Python's parser would take but polars would not, and lines neither takes: each is one line's problem.
def test_ndjson_lines_polars_cannot_read_are_left_out_or_read_alone(tmp_path: Path, scratch: Path) -> None:
    path = _write_bytes(tmp_path / "orders.jsonl", b'{"customer_id": "C1"}\n'
                                                   b'\xef\xbb\xbf{"customer_id": "C2"}\n'  # a second export appended
                                                   b'{"customer_id": "C3", "amount": 1e400}\n'
                                                   b'{"customer_id": "C4", "city": "\xed\xa0\x80"}\n'  # a surrogate
                                                   b'   {"customer_id": "C5",, "amount": 2}\n'
                                                   + b'{"customer_id": "C6", "x": ' + b"[" * 3000 + b"]" * 3000
                                                   + b"}\n")

    assert _read_with_malformed(path, scratch) == (
        [(1, "C1"), (2, "C2")],
        [(3, 3, '{"customer_id": "C3", "amount": 1e400}', "1e400 is too large for a number"),
         (4, 4, '{"customer_id": "C4", "city": "\ufffd\ufffd\ufffd"}', "bytes that are not UTF-8 at column 32"),
         (5, 5, '   {"customer_id": "C5",, "amount": 2}', "Expecting property name enclosed in double quotes at "
                                                         "column 25"),
         (6, 6, '{"customer_id": "C6", "x": ' + "[" * 473, "values nested too deeply")])


def test_a_gbk_json_lines_file_stops_naming_the_encoding(tmp_path: Path, scratch: Path) -> None:
    # Not one damaged line: the file is GBK, which JSON cannot be. Loading its ASCII lines alone would drop every
    # row with Chinese text.
    path = _write_bytes(tmp_path / "orders.jsonl", b'{"customer_id": "C1", "city": "X"}\n'
                                                   + '{"customer_id": "C2", "city": "上海"}\n'.encode("gbk"))

    assert _read_error(path, scratch) == (
        f"{path}: line 2: bytes that are not UTF-8 but read as GBK; JSON files must be UTF-8: save the file as UTF-8")


def test_ndjson_without_a_good_line_names_the_first_bad_one(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "orders.jsonl", '\n{"customer_id": "C1" "amount": 1}\n{"customer_id": \n')

    assert _read_error(path, scratch) == (
        f"{path}: line 2: malformed JSON record: Expecting ',' delimiter at column 22")


@pytest.mark.parametrize(
    ("name", "text", "last"),
    [
        # Past polars' usual 100-row type inference, a quoted quantity among numbers, then a true.
        ("late.jsonl", "".join(f'{{"customer_id": "C{i}", "qty": {i}}}\n' for i in range(1, 151))
         + '{"customer_id": "C151", "qty": "12"}\n{"customer_id": "C152", "qty": true}\n', ["12", "true"]),
        # In an array of numbers, inferred types would read this true as 1.
        ("mixed.json", "[" + ", ".join(f'{{"customer_id": "C{i}", "qty": {i}}}' for i in range(1, 151))
         + ', {"customer_id": "C151", "qty": true}]', ["true"]),
    ],
    ids=["json-lines", "array"],
)
def test_json_values_typed_differently_across_records_read_as_written(
        tmp_path: Path, scratch: Path, name: str, text: str, last: list[str]) -> None:
    frame = _read(write_file(tmp_path / name, text), scratch)

    assert frame.schema["qty"] == pl.String
    assert frame.select(SOURCE_ROW, "customer_id", "qty").rows() == [
        *((i, f"C{i}", str(i)) for i in range(1, 151)), *((150 + n, f"C{150 + n}", v) for n, v in enumerate(last, 1))]


def test_empty_json_names_the_file(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "orders.json", "  \n")

    assert _read_error(path, scratch) == f"{path}: the file is empty"


def test_orders_source_from_json_maps_columns(tmp_path: Path) -> None:
    write_file(tmp_path / "orders.ndjson",
               '{"oid": "O1", "customer_id": "C1", "order_ts": "2024-01-01", "category": "生鲜", "x": 1}\n')
    config = _long_config(tmp_path, "orders.ndjson", "  columns: {order_id: oid}\n")

    frame, manifest = read_orders(config, tmp_path)

    assert frame.select(SOURCE_ROW, "order_id", "customer_id", "category").rows() == [(1, "O1", "C1", "生鲜")]
    assert manifest[0]["ignored_columns"] == ["x"]
    assert isinstance(config.orders, OrdersSource)


# --- snapshot inputs: reloaded only when they change -----------------------------------------------------------

def test_snapshot_fingerprint_changes_with_the_files_the_mapping_and_the_salt(tmp_path, monkeypatch):
    customers = write_file(tmp_path / "customers.csv", "customer_id,age\nC1,30\n")
    source = FileSource(path=str(customers))
    fingerprint = snapshot_fingerprint([customers], source, {})
    assert snapshot_fingerprint([customers], FileSource(path=str(customers)), {}) == fingerprint

    write_file(customers, "customer_id,age\nC1,31\n")  # same size, new modification time
    os.utime(customers, ns=(0, 1_000_000_000))
    changed_file = snapshot_fingerprint([customers], source, {})
    assert changed_file != fingerprint
    assert snapshot_fingerprint([customers], FileSource(path=str(customers), columns={"age": "years"}),
                                       {}) != changed_file

    monkeypatch.setenv(PII_SALT_VARIABLE, "first salt")
    salted = snapshot_fingerprint([customers], source, {"customer_id": "hash"})
    assert salted != changed_file
    monkeypatch.setenv(PII_SALT_VARIABLE, "second salt")
    assert snapshot_fingerprint([customers], source, {"customer_id": "hash"}) != salted


# --- raw tables across contract versions ----------------------------------------------------------------------------

def _raw_days(con, rows: list[tuple[str, str]], columns: list[str]) -> None:
    """A temp view `incoming` of (day, order_id[, line_id]) rows, as the raw layer stages them."""
    values = ", ".join("(" + ", ".join(f"'{v}'" for v in row) + ")" for row in rows)
    names = ", ".join(columns)
    con.execute(f"CREATE OR REPLACE TEMP VIEW incoming AS SELECT _partition_date::DATE AS _partition_date, "
                f"* EXCLUDE (_partition_date) FROM (VALUES {values}) v(_partition_date, {names})")


def test_a_field_added_by_a_newer_contract_extends_the_days_already_loaded():
    con = duckdb.connect()
    _raw_days(con, [("2026-01-01", "O1"), ("2026-01-02", "O2")], ["order_id"])
    replace_days(con, "main.orders", "incoming", DayWindow(date(2026, 1, 1), date(2026, 1, 2)))
    # The next night, with a contract that has one field more.
    _raw_days(con, [("2026-01-03", "O3", "L1")], ["order_id", "line_id"])
    replace_days(con, "main.orders", "incoming", DayWindow(date(2026, 1, 3), date(2026, 1, 3)))
    assert con.execute("SELECT order_id, line_id FROM orders ORDER BY order_id").fetchall() == [
        ("O1", None), ("O2", None), ("O3", "L1")]


def test_a_field_gone_from_the_contract_asks_for_a_full_reload():
    con = duckdb.connect()
    _raw_days(con, [("2026-01-01", "O1", "L1")], ["order_id", "line_id"])
    replace_days(con, "main.orders", "incoming", DayWindow(date(2026, 1, 1), date(2026, 1, 1)))
    _raw_days(con, [("2026-01-02", "O2")], ["order_id"])
    with pytest.raises(IngestError, match="reload every day at once: persona run --all-days"):
        replace_days(con, "main.orders", "incoming", DayWindow(date(2026, 1, 2), date(2026, 1, 2)))
    assert con.execute("SELECT count(*) FROM orders").fetchone() == (1,)


# --- formats (issue 18, point 6) -------------------------------------------------------------------------------


def test_whitespace_delimiter_splits_on_runs_of_spaces_and_tabs(tmp_path: Path, scratch: Path) -> None:
    # A single-space delimiter would read the empty names between the spaces as columns.
    path = write_file(tmp_path / "orders.txt",
                      "order_id   customer_id\tcategory  amount\n"
                      "O1  C1 wine\t10.5\n"
                      "  O2\t\tC2   \"red wine\"  7  \n"
                      "\n"
                      "O3 C3 beer 2\n")

    frame = _read(path, scratch, delimiter="whitespace")

    assert frame.drop(SOURCE_FILE).rows() == [
        (1, "O1", "C1", "wine", "10.5"), (2, "O2", "C2", "red wine", "7"), (4, "O3", "C3", "beer", "2")]
    assert frame.columns[1:5] == ["order_id", "customer_id", "category", "amount"]


def test_whitespace_delimited_line_with_a_missing_field_is_left_out(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "orders.txt", "order_id customer_id amount\nO1 C1 1\nO2 C2\nO3 C3 3\n")

    assert _read_with_malformed(path, scratch, delimiter="whitespace") == (
        [(1, "O1", "C1", "1"), (3, "O3", "C3", "3")], [(2, 3, "O2\tC2", "expected 3 fields, found 2")])


def test_a_title_line_read_as_the_header_points_at_skip_rows(tmp_path: Path, scratch: Path) -> None:
    # A console's report title above the real header, and a config without skip_rows.
    path = write_file(tmp_path / "orders.csv", "订单明细报表 2024-03\norder_id,customer_id,amount\nO1,C1,5\nO2,C2,7\n")

    assert _read_error(path, scratch) == (
        f"{path}: line 2: malformed CSV record: expected 1 fields, found 3 (the header (line 1) has one field: is it "
        "a title above the real header? set skip_rows in this input's config to the number of lines above the "
        "header)")


def test_skip_rows_cuts_title_lines_above_the_header(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "orders.csv", "订单报表 2026-03\n导出时间: 2026-04-01\norder_id,amount\nO1,1\nO2,2\n")

    frame = _read(path, scratch, skip_rows=2)

    assert frame.drop(SOURCE_FILE).rows() == [(1, "O1", "1"), (2, "O2", "2")]


def test_skip_rows_keeps_the_files_line_numbers_in_malformed_lines_and_errors(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "orders.csv", "Sales report\norder_id,amount\nO1,1\nO2,2,x\nO3,3\n")

    assert _read_with_malformed(path, scratch, skip_rows=1) == (
        [(1, "O1", "1"), (3, "O3", "3")], [(2, 4, "O2,2,x", "expected 2 fields, found 3")])
    broken = write_file(tmp_path / "broken.csv", "Sales report\norder_id,amount\nO1\n")
    assert _read_error(broken, scratch, skip_rows=1) == _malformed(broken, 3, "expected 2 fields, found 1")
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(b"title\norder_id,city\nO1," + "上海".encode("gbk") + b"\n")
    assert _read_error(gbk, scratch, skip_rows=1).startswith(f"{gbk}: line 3: bytes b'\\xc9' are not valid utf-8")


def test_a_single_space_delimiter_on_aligned_columns_suggests_whitespace(tmp_path: Path, scratch: Path) -> None:
    path = write_file(tmp_path / "orders.txt", "order_id  customer_id   amount\nO1  C1   1\n")

    assert _read_error(path, scratch, delimiter=" ") == (
        f"{path}: line 1: duplicate column name(s) [''] in the header; fields separated by runs of spaces or "
        "tabs? set delimiter: whitespace")


def test_past_the_malformed_line_limit_the_file_fails(tmp_path: Path, scratch: Path, monkeypatch) -> None:
    # Malformed lines are held in memory: a file with too many is broken as a whole, even with good lines too.
    monkeypatch.setattr(lines, "MAX_MALFORMED_LINES", 2)
    monkeypatch.setattr(readers, "MAX_MALFORMED_LINES", 2)
    path = write_file(tmp_path / "ragged.csv", "a,b\n1,2\n3\n4\n5\n6,7\n")

    assert _read_error(path, scratch) == (
        _malformed(path, 3, "expected 2 fields, found 1") + "; more than 2 lines are malformed")


def test_xlsx_first_sheet_reads_as_text_with_row_numbers(tmp_path: Path, scratch: Path) -> None:
    path = tmp_path / "orders.xlsx"
    pl.DataFrame({"order_id": [14194, None, 14195], "customer_id": ["C1", None, "００７"],
                  "order_ts": [datetime(2026, 3, 1, 10), None, datetime(2026, 3, 2, 11, 30)],
                  "amount": [10.5, None, 3.0]}).write_excel(path)

    frame = _read(path, scratch)

    # The empty sheet row 2 keeps its number; numbers and dates come as text.
    assert frame.drop(SOURCE_FILE).rows() == [
        (1, "14194", "C1", "2026-03-01 10:00:00", "10.5"), (3, "14195", "００７", "2026-03-02 11:30:00", "3")]


def test_xlsx_with_a_title_row_and_a_broken_workbook(tmp_path: Path, scratch: Path) -> None:
    path = tmp_path / "orders.xlsx"
    pl.DataFrame({"Orders export": ["order_id", "O1", "O2"], "": ["amount", "1", "2"]}).write_excel(path)
    assert _read(path, scratch, skip_rows=1).drop(SOURCE_FILE).rows() == [(1, "O1", "1"), (2, "O2", "2")]

    broken = _write_bytes(tmp_path / "broken.xlsx", b"not a zip")
    assert _read_error(broken, scratch).startswith(f"{broken}: not a readable Excel workbook (")


def test_check_csv_structure_leaves_out_records_empty_throughout_as_polars_does(tmp_path: Path) -> None:
    # Empty first fields make the check read every field: records empty in every field do not count, a record
    # with a later field does; a blank line is no record at all.
    path = write_file(tmp_path / "e.csv", "a,b,c\n1,2,3\n,,\n\n,5,\n6,7,8\n")

    assert check_csv_structure(path, path, ",", ["a", "b", "c"]) == 3


def test_check_csv_structure_counts_every_record_when_each_has_a_first_field(tmp_path: Path) -> None:
    path = write_file(tmp_path / "f.csv", "a,b,c\n1,,\n2,,3\n4,5,6\n")

    assert check_csv_structure(path, path, ",", ["a", "b", "c"]) == 3


def test_check_csv_structure_reports_a_ragged_record_after_records_with_first_fields(tmp_path: Path) -> None:
    path = write_file(tmp_path / "r.csv", "a,b,c\n1,2,3\n4,5,6,7\n")

    with pytest.raises(IngestError) as info:
        check_csv_structure(path, path, ",", ["a", "b", "c"])

    assert str(info.value) == _malformed(path, 3, "expected 3 fields, found 4")


def test_a_record_of_quoted_empty_fields_is_a_record_as_polars_reads_it(tmp_path: Path, scratch: Path) -> None:
    # "" is an empty text to Polars, which keeps the record: the strict count agrees, so the file loads (staging
    # then quarantines the row for its missing fields) instead of failing on the two parsers' counts.
    path = write_file(tmp_path / "q.csv", 'customer_id,amount\n"",""\nC2,2\n,\n')

    assert check_csv_structure(path, path, ",", ["customer_id", "amount"]) == 2
    assert _read(path, scratch).select(SOURCE_ROW, "customer_id", "amount").rows() == [(1, "", ""), (2, "C2", "2")]

