"""Config errors an analyst meets while writing a config by hand (pipelines.core.config).

Why these tests: a mistake the config loader lets through fails later, inside a pipeline step, in words that name
neither the file nor the key. A category rule's regular expression is applied by DuckDB (RE2), which refuses
some syntax Python's `re` accepts, so the loader asks DuckDB itself. PyYAML's own syntax errors span several lines
and name the document "<unicode string>"; the loader says the file, line and column on one line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.core.config import ConfigError, load_source_config
from tests.conftest import write_file

RULES_BASE = ("name: shop\nshape: long\norders:\n  path: orders.csv\n  columns: {description: 商品名称}\n"
              "  category_rules:\n    - {match: [牛奶, 酸奶], category: dairy}\n")


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_source_config(path)
    return str(info.value)


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        pytest.param("(?<=红)葡萄酒", "invalid perl operator: (?<", id="look-behind"),
        pytest.param("(?=wine)", "invalid perl operator: (?=", id="look-ahead"),
        pytest.param(r"(红)\1", r"invalid escape sequence: \1", id="back-reference"),
        pytest.param("(红|白", "missing ): (红|白", id="unbalanced"),
    ],
)
def test_a_rule_duckdb_cannot_compile_is_refused_naming_the_key(tmp_path: Path, pattern: str, problem: str) -> None:
    path = write_file(tmp_path / "shop.yaml", RULES_BASE + f"    - {{match: '{pattern}', category: wine}}\n")

    assert _error(path) == (f"{path}: orders.category_rules.1.match: DuckDB cannot use this regular expression "
                            f"({pattern!r}): {problem}")


def test_a_rule_in_re2_syntax_python_would_refuse_loads(tmp_path: Path) -> None:
    # \pN (any number) is RE2 syntax that Python's re does not know; staging applies it, so the loader takes it.
    path = write_file(tmp_path / "shop.yaml", RULES_BASE + "    - {match: '套装\\pN+', category: sets}\n")

    rules = load_source_config(path).orders.category_rules

    assert [(rule.match, rule.category) for rule in rules] == [(["牛奶", "酸奶"], "dairy"), (r"套装\pN+", "sets")]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("name: shop\nshape: long\norders:\n  path: o.csv\n    format: csv\n",
                     "line 5, column 11: mapping values are not allowed here", id="indented-too-far"),
        pytest.param("name: shop\nshape: long\norders:\n  path: o.csv\n columns: {}\n",
                     "line 5, column 2: expected <block end>, but found '<block mapping start>' (while parsing a "
                     "block mapping at line 1, column 1)", id="indented-too-little"),
        pytest.param("name: shop\nshape: [long\norders:\n  path: o.csv\n",
                     "line 3, column 7: expected ',' or ']', but got ':' (while parsing a flow sequence at line 2, "
                     "column 8)", id="unclosed-bracket"),
        pytest.param("name: shop\nshape: long\x07\n",
                     "line 2, column 12: unacceptable character #x0007: special characters are not allowed",
                     id="control-character"),
    ],
)
def test_a_yaml_syntax_error_is_one_line_with_line_and_column(tmp_path: Path, text: str, problem: str) -> None:
    path = write_file(tmp_path / "shop.yaml", text)

    assert _error(path) == f"{path}: not valid YAML: {problem}"
