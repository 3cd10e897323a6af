"""A malformed line in a big file (issue 18, point 2): the line is quarantined, the million others load and the
run publishes, with the load-audit identity holding."""

import pytest

from tests.conftest import materialize_graph, query, work_db, write_file

pytestmark = pytest.mark.slow

LINES = 1_000_000
BAD_AT = 500_000  # data row of the malformed line (the header is row 0)


def test_one_malformed_line_in_a_million_is_quarantined_and_the_run_publishes(tmp_path):
    header = "order_id,customer_id,order_ts,category,quantity,amount,payment_method"
    categories, payments = ("wine", "dairy", "beer", "toys"), ("CARD", "CASH", "MOBILE")
    rows = [f"O{i},C{i % 20_000},2026-03-{1 + i % 28:02d} 10:00:00,{categories[i % 4]},{1 + i % 3},{5 + i % 50}.5,"
            f"{payments[i % 3]}" for i in range(1, LINES + 1)]
    bad = 'O0,C1,"2026-03-01 10:00:00,wine,1,5,CARD'  # a quote never closed
    rows[BAD_AT - 1] = bad
    write_file(tmp_path / "orders.csv", "\n".join([header, *rows]) + "\n")
    config = write_file(tmp_path / "shop.yaml", "name: big\nshape: long\norders:\n  path: orders.csv\n"
                                                "model:\n  k: 3\n")
    published = tmp_path / "w.duckdb"

    result = materialize_graph(config, published)

    assert result.success, [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    assert published.exists()
    warehouse = work_db(published)
    assert query(warehouse, "SELECT source_row, raw_value, reason FROM quality.quarantine") == [
        (BAD_AT, bad, f"malformed CSV record on line {BAD_AT + 1}: a quoted value is never closed")]
    assert query(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined, duplicates_removed "
                            "FROM quality.load_audit") == [(LINES, LINES - 1, 1, 0)]
