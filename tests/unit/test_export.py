"""`persona export` audience files on a small published warehouse built by hand: the columns joined from the
per-customer tables (left out when a table is absent), a UTF-8 BOM on CSV, an Excel workbook, file names from the
segment's id and name, and pseudonymised ids."""

from pathlib import Path

import duckdb
import polars as pl
import pytest

from assets.campaigns.store import open_store, store_file_for
from pipelines.serving import QueryRefused, export_audiences, export_file_name, pseudonymise

BOM = b"\xef\xbb\xbf"
SEGMENT_COLUMNS = ["customer_id", "segment_id", "segment_name_zh", "segment_name_en"]
ALL_COLUMNS = [*SEGMENT_COLUMNS, "value_tier_zh", "value_tier_en", "rfm_tier_zh", "rfm_tier_en", "churn_risk",
               "next_categories", "expected_spend"]


def build_warehouse(path: Path, predictions: bool = True) -> Path:
    """Three customers in two segments (one name with characters a file name cannot hold). With `predictions`
    the tier, churn, next-category and customer-value tables, where C3 has no churn score and no picks."""
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA segments")
        con.execute("CREATE TABLE segments.customer_segments (customer_id VARCHAR, segment_id INTEGER, "
                    "segment_name_zh VARCHAR, segment_name_en VARCHAR, is_outlier BOOLEAN)")
        con.execute("INSERT INTO segments.customer_segments VALUES "
                    "('C1', 1, '年轻白领族', 'Young professionals', false), "
                    "('C2', 2, '家庭/主力: 族?', 'Family shoppers', false), "
                    "('C3', 2, '家庭/主力: 族?', 'Family shoppers', false)")
        if predictions:
            con.execute("CREATE SCHEMA predict")
            con.execute("CREATE TABLE segments.customer_value_tiers (customer_id VARCHAR, rfm_tier_key VARCHAR, "
                        "rfm_tier_zh VARCHAR, rfm_tier_en VARCHAR, value_tier_key VARCHAR, value_tier_zh VARCHAR, "
                        "value_tier_en VARCHAR)")
            con.execute("INSERT INTO segments.customer_value_tiers VALUES "
                        "('C1', 'important_value', '重要价值客户', 'Important value', 'high_value', '高价值客户', "
                        "'High value'), "
                        "('C2', 'general_value', '一般价值客户', 'General value', 'potential', '潜力客户', 'Potential'), "
                        "('C3', 'general_win_back', '一般挽留客户', 'General win-back', 'low_value', '低价值客户', "
                        "'Low value')")
            con.execute("CREATE TABLE predict.churn_risk (customer_id VARCHAR, churn_risk DOUBLE, at_risk BOOLEAN)")
            con.execute("INSERT INTO predict.churn_risk VALUES ('C1', 0.123456, false), ('C2', 0.75, true)")
            con.execute("CREATE TABLE predict.next_category (customer_id VARCHAR, rank INTEGER, category VARCHAR, "
                        "score DOUBLE)")
            con.execute("INSERT INTO predict.next_category VALUES ('C1', 2, 'wine', 0.2), ('C1', 1, '零食', 0.9), "
                        "('C1', 3, 'bakery', 0.1), ('C2', 1, 'dairy', 0.5)")
            con.execute("CREATE TABLE predict.customer_value (customer_id VARCHAR, expected_spend DOUBLE)")
            con.execute("INSERT INTO predict.customer_value VALUES ('C1', 321.456), ('C2', 12.0), ('C3', NULL)")
    return path


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return build_warehouse(tmp_path / "warehouse.duckdb")


EXPECTED_ROWS = [
    ("C1", 1, "年轻白领族", "Young professionals", "高价值客户", "High value", "重要价值客户", "Important value", 0.1235,
     "零食; wine; bakery", 321.46),
    ("C2", 2, "家庭/主力: 族?", "Family shoppers", "潜力客户", "Potential", "一般价值客户", "General value", 0.75, "dairy",
     12.0),
    ("C3", 2, "家庭/主力: 族?", "Family shoppers", "低价值客户", "Low value", "一般挽留客户", "General win-back", None,
     None, None),
]


def test_csv_starts_with_a_bom_and_holds_every_column_in_chinese(warehouse: Path, tmp_path: Path) -> None:
    written = export_audiences(warehouse, tmp_path / "out", "csv")

    assert [(path.name, rows) for path, rows, _ in written] == [
        ("segment_1_年轻白领族.csv", 1), ("segment_2_家庭_主力_族.csv", 2)]
    for path, _, _ in written:
        assert path.read_bytes().startswith(BOM)
        assert path.read_text(encoding="utf-8-sig").splitlines()[0] == ",".join(ALL_COLUMNS)
    frames = [pl.read_csv(path, encoding="utf8") for path, _, _ in written]
    assert all(frame.columns == ALL_COLUMNS for frame in frames)
    assert [row for frame in frames for row in frame.rows()] == EXPECTED_ROWS
    # Read as Excel on Windows would, the BOM tells it the text is UTF-8: the Chinese survives.
    assert "年轻白领族" in written[0][0].read_bytes().decode("utf-8-sig")


def test_xlsx_holds_the_same_rows(warehouse: Path, tmp_path: Path) -> None:
    written = export_audiences(warehouse, tmp_path / "out", "xlsx")

    assert [path.name for path, _, _ in written] == ["segment_1_年轻白领族.xlsx", "segment_2_家庭_主力_族.xlsx"]
    frames = [pl.read_excel(path) for path, _, _ in written]
    assert all(frame.columns == ALL_COLUMNS for frame in frames)
    assert [row for frame in frames for row in frame.rows()] == EXPECTED_ROWS


def test_columns_of_absent_tables_are_left_out(tmp_path: Path) -> None:
    bare = build_warehouse(tmp_path / "bare.duckdb", predictions=False)

    written = export_audiences(bare, tmp_path / "out", "csv", [2])

    assert [(path.name, rows) for path, rows, _ in written] == [("segment_2_家庭_主力_族.csv", 2)]
    frame = pl.read_csv(written[0][0])
    assert frame.columns == SEGMENT_COLUMNS
    assert frame.rows() == [("C2", 2, "家庭/主力: 族?", "Family shoppers"), ("C3", 2, "家庭/主力: 族?", "Family shoppers")]


@pytest.mark.parametrize(("name", "expected"), [
    ("年轻白领族", "segment_1_年轻白领族.csv"),
    ("Young professionals", "segment_1_Young_professionals.csv"),
    ('a/b\\c:d*e?f"g<h>i|j', "segment_1_a_b_c_d_e_f_g_h_i_j.csv"),
    ("../..", "segment_1.csv"),
    ("", "segment_1.csv"),
    (None, "segment_1.csv"),
])
def test_file_names_keep_the_segment_name_without_unsafe_characters(name: str | None, expected: str) -> None:
    assert export_file_name(1, name, "csv") == expected


def test_pseudonymised_ids_replace_the_customer_ids(warehouse: Path, tmp_path: Path) -> None:
    with pytest.raises(QueryRefused, match="set PERSONA_ID_SALT"):
        export_audiences(warehouse, tmp_path / "refused", "csv", None, True, None)

    written = export_audiences(warehouse, tmp_path / "out", "xlsx", None, True, "s3cret")

    ids = [customer for path, _, _ in written for customer in pl.read_excel(path).get_column("customer_id")]
    assert ids == [pseudonymise(customer, "s3cret") for customer in ("C1", "C2", "C3")]
    assert not {"C1", "C2", "C3"} & set(ids)


def test_an_unknown_format_or_segment_is_refused(warehouse: Path, tmp_path: Path) -> None:
    with pytest.raises(QueryRefused, match="unknown export format"):
        export_audiences(warehouse, tmp_path / "out", "xls")
    with pytest.raises(QueryRefused, match=r"no segment with id \[9\]"):
        export_audiences(warehouse, tmp_path / "out", "csv", [9])


def test_control_groups_of_running_campaigns_are_left_out_and_a_held_store_is_refused(warehouse: Path,
                                                                                     tmp_path: Path) -> None:
    store = store_file_for(warehouse)
    con = open_store(store)
    con.execute("INSERT INTO campaigns (campaign, status, start_day, end_day) VALUES "
                "('spring', 'running', DATE '2026-04-01', DATE '2026-04-14'), "
                "('old', 'closed', DATE '2026-04-01', DATE '2026-04-14')")
    con.execute("INSERT INTO assignments (campaign, customer_id, group_name) VALUES "
                "('spring', 'C2', 'control'), ('spring', 'C3', 'treatment'), ('old', 'C1', 'control')")
    # A campaign command holding the store: the export cannot tell who to leave out, and says so.
    with pytest.raises(QueryRefused, match=r"cannot read the campaign store to leave out control groups: .*; try "
                                           r"again, or pass --include-controls"):
        export_audiences(warehouse, tmp_path / "held", "csv")
    con.close()
    written = export_audiences(warehouse, tmp_path / "out", "csv")
    assert [(path.name, rows, left_out) for path, rows, left_out in written] == [
        ("segment_1_年轻白领族.csv", 1, 0), ("segment_2_家庭_主力_族.csv", 1, 1)]
    assert pl.read_csv(written[1][0])["customer_id"].to_list() == ["C3"]
    kept = export_audiences(warehouse, tmp_path / "all", "csv", include_controls=True)
    assert [(rows, left_out) for _, rows, left_out in kept] == [(1, 0), (2, 0)]
