"""PII declared in the config never reaches the warehouse in clear: not in any table, any warehouse file, export
or report. Hashed ids are salted HMAC-SHA256 and stable across files and runs."""

import hashlib
import hmac
import re
from pathlib import Path

import duckdb
import polars as pl
import pytest

from assets.raw.mapping import pii_hasher
from pipelines.core.config import ConfigError, load_source_config
from pipelines.demo.generate import generate_demo_data
from pipelines.serving import export_audiences
from tests.conftest import materialize_graph, query, work_db, write_file

SALT = "test-salt-for-pii"
FIRST_NAMES = ["张伟", "王芳", "李娜", "刘洋", "陈静"]


def shop_with_pii(root: Path) -> tuple[Path, dict[str, list[str]]]:
    """Generated data whose member id is a phone number, with name, email and address columns beside it."""
    data = generate_demo_data(root / "data", customers=300, days=20, seed=21)
    customers = data.customers_path.read_text(encoding="utf-8").splitlines()
    header = customers[0].split(",")
    id_at = header.index("customer_id")
    phone_of, clear = {}, {"phone": [], "name": [], "email": [], "address": []}
    rows = []
    for i, line in enumerate(customers[1:]):
        cells = line.split(",")
        phone = f"139{i:08d}"
        phone_of[cells[id_at]] = phone
        name, email, address = FIRST_NAMES[i % 5] + str(i), f"member{i}@example.cn", f"上海市静安路{i}号"
        clear["phone"].append(phone)
        clear["name"].append(name)
        clear["email"].append(email)
        clear["address"].append(address)
        cells[id_at] = phone
        rows.append(",".join([*cells, name, email, address]))
    header_out = ",".join(["手机" if c == "customer_id" else c for c in header] + ["姓名", "email", "address"])
    write_file(root / "customers.csv", "\n".join([header_out, *rows]) + "\n")
    lines = data.orders_path.read_text(encoding="utf-8").splitlines()
    order_header = lines[0].split(",")
    customer_at = order_header.index("customer_id")
    order_rows = []
    for line in lines[1:]:
        cells = line.split(",")
        cells[customer_at] = phone_of[cells[customer_at]]
        order_rows.append(",".join(cells))
    write_file(root / "orders.csv", "\n".join([lines[0].replace("customer_id", "手机"), *order_rows]) + "\n")
    config = write_file(root / "shop.yaml", """
name: pii-shop
shape: long
orders:
  path: orders.csv
  columns: {customer_id: 手机}
customers:
  path: customers.csv
  columns: {customer_id: 手机}
privacy:
  pii_columns: {手机: hash, 姓名: drop, email: drop, address: drop}
model:
  k_range: [3, 5]
  bootstrap_rounds: 2
""")
    return config, clear


def string_values(database: Path) -> set[str]:
    """Every text value of every table of a DuckDB file."""
    values: set[str] = set()
    with duckdb.connect(str(database), read_only=True) as con:
        columns = con.execute("""SELECT schema_name, table_name, column_name FROM duckdb_columns()
                                 WHERE data_type = 'VARCHAR' AND NOT internal""").fetchall()
        for schema, table, column in columns:
            rows = con.execute(f'SELECT DISTINCT "{column}" FROM "{schema}"."{table}" WHERE "{column}" IS NOT NULL')
            values.update(row[0] for row in rows.fetchall())
    return values


def test_pii_never_appears_in_clear_in_tables_files_exports_or_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_PII_SALT", SALT)
    monkeypatch.setenv("PERSONA_ID_SALT", "export-salt")
    config, clear = shop_with_pii(tmp_path)
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    result = materialize_graph(config, warehouse)
    assert result.success

    exports = tmp_path / "exports"
    export_audiences(warehouse, exports, "csv", None, False, None)
    every_clear_value = [v for values in clear.values() for v in values]
    # 1. No table of the working or the published database holds a clear value.
    for database in (work_db(warehouse), warehouse):
        assert string_values(database).isdisjoint(every_clear_value)
    # 2. No byte sequence of a clear value in any file under the warehouse folder (databases, reports, charts)
    #    or in the exports.
    files = [p for p in [*warehouse.parent.rglob("*"), *exports.rglob("*")] if p.is_file()]
    assert any(p.suffix == ".html" for p in files) and any(p.suffix == ".csv" for p in files)
    for path in files:
        data = path.read_bytes()
        for value in every_clear_value:
            assert value.encode("utf-8") not in data, (path, value)
    # 3. Customers are still all there, under their salted hash, joined across the two files.
    expected = {hmac.new(SALT.encode(), p.encode(), hashlib.sha256).hexdigest() for p in clear["phone"]}
    ids = {row[0] for row in query(warehouse, "SELECT customer_id FROM segments.customer_segments")}
    assert ids == expected
    assert query(warehouse, "SELECT count(*) FROM staging.customers WHERE age IS NULL") == [(0,)]
    assert all(re.fullmatch(r"[0-9a-f]{64}", i) for i in ids)


def test_hashing_without_a_salt_stops_before_reading(tmp_path, monkeypatch):
    monkeypatch.delenv("PERSONA_PII_SALT", raising=False)
    config, _ = shop_with_pii(tmp_path)
    result = materialize_graph(config, tmp_path / "w.duckdb")
    assert not result.success
    messages = [e.step_failure_data.error.cause.message for e in result.get_step_failure_events()]
    assert any("privacy.pii_columns hashes ['手机']: set PERSONA_PII_SALT" in m for m in messages), messages
    assert not (tmp_path / "w.duckdb").exists()


def test_the_hash_is_salted_and_keeps_nulls():
    hashed = pii_hasher("a")(pl.Series("x", [" 13900000001", None])).to_list()
    assert hashed[0] == hmac.new(b"a", b"13900000001", hashlib.sha256).hexdigest()
    assert hashed[1] is None
    assert pii_hasher("b")(pl.Series("x", ["13900000001"])).to_list()[0] != hashed[0]


def test_the_hash_reads_an_id_as_staging_does_and_a_blank_is_no_id():
    """A trial's 拼多多 export had 200 rows with an empty phone: hashed as '', they made one customer of 175 orders.
    The forms staging reads as one id (a tab before it, Excel's text formula, full-width digits) hash alike."""
    hashed = pii_hasher("a")(pl.Series("x", ["13900000001", "\t13900000001", '="13900000001"', "１３９" + "０" * 7 + "１",
                                             "", "   ", '=""', "\u200b"])).to_list()
    expected = hmac.new(b"a", b"13900000001", hashlib.sha256).hexdigest()
    assert hashed[:4] == [expected] * 4
    assert hashed[4:] == [None] * 4


def test_blank_hashed_customer_ids_are_set_aside_as_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_PII_SALT", SALT)
    config, clear = shop_with_pii(tmp_path)
    orders = (tmp_path / "orders.csv").read_text(encoding="utf-8").splitlines()
    at = orders[0].split(",").index("手机")
    blanked = []
    for i in range(1, 41):  # 40 lines lose their phone: a quoted empty cell, as an export quoting every field writes
        cells = orders[i].split(",")
        cells[at] = '""'
        orders[i] = ",".join(cells)
        blanked.append(i)  # source_row counts data rows from 1
    write_file(tmp_path / "orders.csv", "\n".join(orders) + "\n")
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    assert materialize_graph(config, warehouse).success
    reasons = query(warehouse, "SELECT source_row, reason FROM quality.quarantine WHERE input = 'orders' "
                               "ORDER BY source_row")
    assert [row for row, _ in reasons] == blanked
    assert {reason for _, reason in reasons} == {"missing customer_id"}
    ids = {row[0] for row in query(warehouse, "SELECT customer_id FROM staging.order_lines")}
    assert ids <= {hmac.new(SALT.encode(), p.encode(), hashlib.sha256).hexdigest() for p in clear["phone"]}


@pytest.mark.parametrize("privacy, message", [
    ("{手机: drop}", "privacy.pii_columns.手机: the contract reads this column (orders.columns.customer_id); use hash"),
    ("{phone: hash}", "privacy.pii_columns.phone: hash keeps a pseudonymised value only for a column mapped to a "
                      "contract field"),
    ("{手机: encrypt}", "privacy.pii_columns.手机: Input should be 'drop' or 'hash'"),
])
def test_privacy_config_mistakes_name_the_key(tmp_path, privacy, message):
    path = write_file(tmp_path / "s.yaml", "name: s\nshape: long\norders:\n  path: o.csv\n  columns: {customer_id: 手机}\n"
                                           f"privacy:\n  pii_columns: {privacy}\n")
    with pytest.raises(ConfigError) as info:
        load_source_config(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)

