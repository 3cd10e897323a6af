"""README promises that can be checked mechanically."""

import re

from pipelines.serving import run_read_only_query
from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_starts_with_the_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [["make", "run"], ["make", "test"]]


def test_every_readme_sql_example_runs_on_the_seed_warehouse(seed_warehouse):
    blocks = re.findall(r"```sql\n(.*?)```", README, re.S)
    statements = [
        statement.strip()
        for block in blocks
        for statement in re.sub(r"--[^\n]*", "", block).split(";")
        if statement.strip()
    ]
    assert len(statements) >= 5
    for statement in statements:
        frame = run_read_only_query(seed_warehouse, statement)
        assert frame.height > 0 or "quarantine" in statement, statement


def test_readme_documents_every_public_table():
    """Every table the graph publishes (an asset key of two parts; raw is never published) has a row in
    warehouse/README.md."""
    from pipelines.jobs import ALL_ASSETS

    documented = (REPO_ROOT / "warehouse" / "README.md").read_text(encoding="utf-8")
    not_tables = {("report", "segment_report"), ("warehouse", "published")}
    tables = sorted({".".join(key.path) for assets in ALL_ASSETS for key in assets.keys
                     if len(key.path) == 2 and tuple(key.path) not in not_tables and key.path[0] != "raw"})
    assert len(tables) > 30
    assert [table for table in tables if f"`{table}`" not in documented] == []
