"""The migration section says when the customer ids changed between runs rather than the customers: a trial turned
on hashing of its e-mail ids after a first run, and the report said only "0.0% stayed; 1,408 are new and 1,408
left"."""

from datetime import datetime
from types import SimpleNamespace

import duckdb
import polars as pl

from assets.report.facts import FactBook
from assets.report.sections_history import section_migration


def _migration(tmp_path, rows: list[tuple]) -> tuple[SimpleNamespace, duckdb.DuckDBPyConnection]:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA segments")
    con.execute("CREATE TABLE segments.segment_migration (run_id VARCHAR, run_date TIMESTAMP, "
                "from_segment_id INTEGER, to_segment_id INTEGER, customers BIGINT)")
    con.execute("INSERT INTO segments.segment_migration VALUES ('r1', '2026-03-01', NULL, 1, 1)")
    con.executemany("INSERT INTO segments.segment_migration VALUES ('r2', '2026-03-02', ?, ?, ?)", rows)
    moves = pl.DataFrame(rows, schema=["from_segment_id", "to_segment_id", "customers"], orient="row")
    data = SimpleNamespace(migration=moves, migration_run="r2", previous_run_date=datetime(2026, 3, 1),
                           small_ids=[], group_name=lambda segment, language: f"S{segment}")
    return data, con


def test_every_customer_gone_and_new_says_the_ids_changed(tmp_path):
    data, con = _migration(tmp_path, [(1, None, 700), (2, None, 708), (None, 1, 690), (None, 2, 718)])
    book = FactBook()
    section = section_migration(data, book)
    said = " ".join(s.text(book) for s in section.paragraphs["en"])
    assert ("100.0% of the previous run's customers are gone and nearly every customer is new: the customer ids most "
            "likely changed (another customer id column, or hashing turned on in privacy.pii_columns), so this "
            "history starts again rather than showing real moves.") in said
    for fact in book.facts.values():
        if fact.sql:
            assert con.execute(fact.sql, list(fact.params)).fetchone()[0] == fact.value, fact.key


def test_ordinary_churn_says_nothing_of_ids(tmp_path):
    data, con = _migration(tmp_path, [(1, 1, 600), (1, 2, 50), (2, None, 100), (None, 2, 120)])
    book = FactBook()
    section = section_migration(data, book)
    assert "customer ids" not in " ".join(s.text(book) for s in section.paragraphs["en"])
