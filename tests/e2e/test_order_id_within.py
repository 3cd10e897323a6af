"""orders.order_id_within on a chain's till export: ticket numbers restart in every store, so ticket 0001 of two
stores is two orders. Without the key, the second store's tickets were quarantined as "order_id used by another
customer" (a trial: 5,172 member lines)."""

from __future__ import annotations

import pytest

from pipelines.core.config import ConfigError, load_source_config
from tests.conftest import materialize_graph, query, work_db, write_file

pytestmark = pytest.mark.slow  # runs the whole asset graph

HEADER = "门店,小票号,会员卡号,销售时间,部门,数量,金额"


def till_export(tmp_path, within: str) -> None:
    lines = [f"S{store},{ticket:04d},M{(store * 31 + ticket) % 40:03d},2026/{3 + ticket % 4}/{1 + ticket % 27} 8:07,"
             f"{['生鲜', '日化', '粮油'][(store + ticket) % 3]},1,{5 + ticket % 9}.50"
             for store in (1, 2) for ticket in range(1, 61)]
    write_file(tmp_path / "pos.csv", "\n".join([HEADER, *lines]) + "\n")
    write_file(tmp_path / "shop.yaml", "name: chain\nshape: long\norders:\n  path: pos.csv\n"
                                       '  date_formats: ["%Y/%m/%d %H:%M"]\n' + within
                                       + "  columns:\n    order_id: 小票号\n    customer_id: 会员卡号\n"
                                       "    order_ts: 销售时间\n    category: 部门\n    quantity: 数量\n"
                                       "    amount: 金额\nmodel:\n  k: 2\n")


def test_tickets_numbered_per_store_are_orders_of_their_store(tmp_path):
    till_export(tmp_path, "  order_id_within: [门店]\n")
    result = materialize_graph(tmp_path / "shop.yaml", tmp_path / "w.duckdb")
    assert result.success
    warehouse = work_db(tmp_path / "w.duckdb")
    assert query(warehouse, "SELECT rows_read, rows_loaded, rows_quarantined FROM quality.load_audit") == [(120, 120, 0)]
    assert query(warehouse, "SELECT count(*), min(order_id), max(order_id) FROM staging.orders") == [
        (120, "S1/0001", "S2/0060")]


def test_without_it_the_second_store_s_tickets_are_another_customer_s_orders(tmp_path):
    till_export(tmp_path, "")
    result = materialize_graph(tmp_path / "shop.yaml", tmp_path / "w.duckdb")
    warehouse = work_db(tmp_path / "w.duckdb")
    shared = query(warehouse, "SELECT count(*) FROM quality.quarantine WHERE reason LIKE 'order_id used by another%'")
    assert shared[0][0] > 0 and result is not None


def test_a_column_not_in_the_header_is_named(tmp_path):
    till_export(tmp_path, "  order_id_within: [店号]\n")
    result = materialize_graph(tmp_path / "shop.yaml", tmp_path / "w.duckdb")
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert "column '店号' (listed in orders.order_id_within) is not in the header" in \
        failure.step_failure_data.error.cause.message


def test_it_needs_an_order_id(tmp_path):
    config = write_file(tmp_path / "shop.yaml", "name: x\nshape: long\norders:\n  path: o.csv\n"
                                                "  order_id_within: [门店]\n  columns: {order_id: null}\n")
    with pytest.raises(ConfigError, match=r"orders.order_id_within: the export has no order id"):
        load_source_config(config)
