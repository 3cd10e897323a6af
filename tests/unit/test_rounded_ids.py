"""Ids a spreadsheet rounded: a JD export re-saved in Excel had its 12-digit order ids written as 2.83E+11, every order
of a range merged into one, and the run published 2.5 times the real revenue. Such rows are quarantined with a
reason that says what happened; an id that merely contains an E is an id like any other."""

from tests.unit.test_staging import rows, stage

LINES = [
    "2.83E+11,C1,2026-03-01 10:00:00,wine,1,10,CARD,w1",
    "2.83E+11,C2,2026-03-01 11:00:00,beer,2,6,CASH,b1",
    "283011223344,C3,2026-03-01 12:00:00,dairy,1,5,CASH,d1",
    "E1+2,C4,2026-03-01 13:00:00,dairy,1,5,CASH,d1",  # an id with an E, not a rounded number
    "O5,1.3E+17,2026-03-01 14:00:00,wine,1,9,CARD,w1",  # a member number rounded the same way
]


def test_rows_whose_ids_a_spreadsheet_rounded_are_quarantined_with_the_reason(tmp_path):
    warehouse = stage(tmp_path, {"a.csv": LINES})
    assert rows(warehouse, "SELECT order_id, customer_id FROM staging.orders ORDER BY 1") == [
        ("283011223344", "C3"), ("E1+2", "C4")]
    said = " is a number a spreadsheet rounded (scientific notation), which merges ids: export the file again " \
           "without saving it in Excel, or import the column as text"
    assert rows(warehouse, "SELECT source_row, column_name, raw_value, reason FROM quality.quarantine "
                           "ORDER BY source_row") == [
        (1, "order_id", "2.83E+11", "order_id 2.83E+11" + said),
        (2, "order_id", "2.83E+11", "order_id 2.83E+11" + said),
        (5, "customer_id", "1.3E+17", "customer_id 1.3E+17" + said)]
    # A fault of the export, not a row set aside: the quarantine limit counts it.
    assert rows(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined, rows_set_aside FROM quality.load_audit "
                           "WHERE input = 'orders'") == [(5, 2, 3, 0)]
