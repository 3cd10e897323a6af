"""features.customer_order_stats (assets/features/customer_features.py): each customer's counts per category and
payment method, computed in the customer's own group."""

import duckdb

from assets.features.customer_features import order_keys, order_stats_sql, stats_columns


def staging_with(orders: list[tuple], lines: list[tuple]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging")
    con.execute("""CREATE TABLE staging.orders (order_id VARCHAR, customer_id VARCHAR, order_ts TIMESTAMP,
        payment_method VARCHAR, order_amount DOUBLE, n_items DOUBLE)""")
    con.execute("CREATE TABLE staging.order_lines (order_id VARCHAR, customer_id VARCHAR, category VARCHAR)")
    con.executemany("INSERT INTO staging.orders VALUES (?, ?, ?, ?, ?, ?)", orders)
    con.executemany("INSERT INTO staging.order_lines VALUES (?, ?, ?)", lines)
    return con


def test_an_order_counts_once_per_category_and_payment_methods_are_counted_case_folded():
    con = staging_with(
        orders=[("O1", "C1", "2026-03-01", "CARD", 30.0, 3.0), ("O2", "C1", "2026-03-05", "card", 10.0, 1.0),
                ("O3", "C1", "2026-03-06", "Cash", 5.0, 1.0), ("O4", "C2", "2026-03-02", None, 7.0, 2.0)],
        lines=[("O1", "C1", "wine"), ("O1", "C1", "wine"), ("O1", "C1", "beer"),  # two wine lines, one order
               ("O2", "C1", "wine"), ("O3", "C1", None), ("O4", "C2", "beer"), ("O4", "C2", "beer")])
    categories, payments = order_keys(con)
    assert (categories, payments) == (["beer", "wine"], ["card", "cash"])
    rows = con.execute(f"SELECT * FROM ({order_stats_sql(categories, payments)}) ORDER BY customer_id").fetchall()
    columns = [d[0] for d in con.description]
    assert columns == stats_columns(categories, payments) == [
        "customer_id", "n_orders", "n_rows", "total_spend", "avg_amount", "last_order", "first_order",
        "max_order_amount", "max_items_per_order", "cat_beer", "cat_wine", "pay_card", "pay_cash"]
    by_customer = {row[0]: dict(zip(columns, row, strict=True)) for row in rows}
    # C1: wine in O1 (two lines) and O2, beer in O1; paid by card twice (CARD, card) and cash once.
    assert {k: by_customer["C1"][k] for k in ("n_orders", "total_spend", "cat_beer", "cat_wine", "pay_card",
                                              "pay_cash")} == {
        "n_orders": 3, "total_spend": 45.0, "cat_beer": 1, "cat_wine": 2, "pay_card": 2, "pay_cash": 1}
    # C2: one beer order of two lines, no wine and no payment method: NULL, not 0.
    assert {k: by_customer["C2"][k] for k in ("n_orders", "cat_beer", "cat_wine", "pay_card", "pay_cash")} == {
        "n_orders": 1, "cat_beer": 1, "cat_wine": None, "pay_card": None, "pay_cash": None}


def test_category_counts_hold_past_one_mask_of_64_categories():
    """Each order's categories are folded into 64-bit masks: with 70 categories the counts of categories in the
    second mask (and at both ends of the first) must be those of the distinct (customer, category, order) lines."""
    categories = [f"k{i:02d}" for i in range(70)]
    # C1: k00 and k63 (both ends of the first mask) in O1, with k63 twice; k64 and k69 (second mask) in O1 and O2.
    # C2: only k69, in three orders, one of them also holding a line with no category.
    lines = [("O1", "C1", "k00"), ("O1", "C1", "k63"), ("O1", "C1", "k63"), ("O1", "C1", "k64"),
             ("O1", "C1", "k69"), ("O2", "C1", "k64"), ("O2", "C1", "k69"),
             ("O3", "C2", "k69"), ("O4", "C2", "k69"), ("O5", "C2", "k69"), ("O5", "C2", None)]
    # Every other category once, so that all 70 are present.
    lines += [(f"X{i}", "C3", k) for i, k in enumerate(categories) if k not in ("k00", "k63", "k64", "k69")]
    orders = sorted({(order, customer) for order, customer, _ in lines})
    con = staging_with(orders=[(o, c, "2026-03-01", "CARD", 1.0, 1.0) for o, c in orders], lines=lines)
    found, payments = order_keys(con)
    assert found == categories
    stats = con.execute(f"SELECT * FROM ({order_stats_sql(found, payments)}) ORDER BY customer_id").pl()
    expected = {}  # the distinct orders per (customer, category), counted in Python
    for order, customer, category in set(lines):
        if category is not None:
            expected.setdefault((customer, category), set()).add(order)
    for row in stats.iter_rows(named=True):
        counts = {k: row[f"cat_{k}"] for k in categories}
        assert counts == {k: len(expected[(row["customer_id"], k)]) if (row["customer_id"], k) in expected else None
                          for k in categories}
    c1, c2 = stats.row(0, named=True), stats.row(1, named=True)
    assert (c1["cat_k00"], c1["cat_k63"], c1["cat_k64"], c1["cat_k69"], c1["cat_k01"]) == (1, 1, 2, 2, None)
    assert (c2["cat_k69"], c2["n_orders"], c2["cat_k64"]) == (3, 3, None)
