"""The layout's rules, checked on the source itself: imports flow one way through the layers, no import cycles
(imports inside functions included), no module over 600 lines.

Data and imports flow raw → staging → features → model → segments → predict → report → publish, on the ground
floor of pipelines/core. Quality modules read the layer they check and are never read by an asset. The top floor
(definitions, jobs, planning, runner, automation, CLI, serving) may import anything; nothing below imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("pipelines", "assets", "quality")
MAX_MODULE_LINES = 600

# The floors, lowest first. A module may import its own floor and the ones below it.
LAYERS = ("pipelines.core", "assets.raw", "assets.staging", "assets.features", "assets.model", "assets.segments",
          "assets.predict", "assets.audiences", "assets.campaigns", "assets.report", "assets.publish")
TOP = len(LAYERS)
# A quality module stands on the floor of the layer it checks; any other quality module on the ground floor.
QUALITY_READS = {
    "quality.outliers": "assets.features",
    "quality.suites": "assets.staging",  # the raw and staging suites (the raw one reads orders.fill_down's rows)
    "quality.checks.expectations": "assets.staging",
    "quality.checks.staging": "assets.staging",
    "quality.checks.segments": "assets.segments",
    "quality.checks.predict": "assets.predict",
    "quality.checks": "assets.predict",  # the package gathers every layer's checks
}
# Tools beside the pipeline: they stand on the ground floor and nothing in the pipeline imports them.
TOOLS = ("pipelines.demo",)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path) -> dict[str, Path]:
    return {module_name(path, root): path for package in PACKAGES if (root / package).is_dir()
            for path in sorted((root / package).rglob("*.py"))}


def imported_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules a file imports, wherever the import statement stands (inside functions too)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` imports the module; `from module import name` the module itself.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = project_modules(root)
    return {name: imported_modules(path, name, set(modules)) for name, path in modules.items()}


def floor(module: str) -> int | None:
    """The module's floor; None for package roots that only hold subpackages (`assets`, `quality.checks`)."""
    if module.startswith("quality"):
        read = next((layer for prefix, layer in QUALITY_READS.items()
                     if module == prefix or module.startswith(prefix + ".")), "pipelines.core")
        return LAYERS.index(read)
    if _tool(module):
        return 0
    for index, layer in enumerate(LAYERS):
        if module == layer or module.startswith(layer + "."):
            return index
    if module.startswith("pipelines."):
        return TOP
    return None


def _tool(module: str) -> str | None:
    return next((tool for tool in TOOLS if module == tool or module.startswith(tool + ".")), None)


def flow_violations(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, imports in sorted(graph.items()):
        for target in sorted(imports):
            here, there = floor(module), floor(target)
            if here is None or there is None:
                continue
            if module.startswith("assets") and target.startswith("quality"):
                problems.append(f"{module} imports {target}: assets never import quality")
            elif _tool(target) and _tool(target) != _tool(module) and here != TOP:
                problems.append(f"{module} imports {target}: only the top floor uses the tools")
            elif there > here:
                problems.append(f"{module} imports {target}: against the flow ({LAYERS[here] if here < TOP else 'top'}"
                                f" may not read {LAYERS[there] if there < TOP else 'the top floor'})")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def oversized_modules(root: Path) -> list[str]:
    return [f"{path.relative_to(root)}: {lines} lines" for path in project_modules(root).values()
            if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]


# --- the project itself -------------------------------------------------------------------------------------------

def test_imports_flow_one_way():
    assert flow_violations(import_graph(REPO_ROOT)) == []


def test_no_import_cycles():
    assert cycles(import_graph(REPO_ROOT)) == []


def test_no_module_over_600_lines():
    assert oversized_modules(REPO_ROOT) == []


def test_every_module_stands_on_a_floor():
    unplaced = [m for m in import_graph(REPO_ROOT) if floor(m) is None and m not in ("assets", "pipelines", "quality")
                and not (REPO_ROOT / m.replace(".", "/") / "__init__.py").is_file()]
    assert unplaced == []


# --- the checks catch what they are for ---------------------------------------------------------------------------

def _tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def small_tree(tmp_path) -> Path:
    return _tree(tmp_path, {
        "pipelines/__init__.py": "", "pipelines/core/__init__.py": "", "pipelines/core/sql.py": "X = 1\n",
        "pipelines/cli.py": "from assets.report.page import render\n",
        "assets/__init__.py": "", "assets/raw/__init__.py": "", "assets/staging/__init__.py": "",
        "assets/report/__init__.py": "",
        "assets/raw/read.py": "from pipelines.core.sql import X\n",
        "assets/staging/build.py": "from assets.raw import read\n",
        "assets/report/page.py": "from assets.staging.build import read\n\ndef render():\n    pass\n",
        "quality/__init__.py": "", "quality/outliers.py": "from assets.staging import build\n",
    })


def test_a_clean_tree_passes(small_tree):
    graph = import_graph(small_tree)
    assert graph["assets.staging.build"] == {"assets.raw.read"}
    assert graph["pipelines.cli"] == {"assets.report.page"}
    assert flow_violations(graph) == [] and cycles(graph) == []


def test_a_planted_backward_import_is_reported(small_tree):
    (small_tree / "assets/raw/read.py").write_text("from assets.staging.build import something\n")
    assert flow_violations(import_graph(small_tree)) == [
        "assets.raw.read imports assets.staging.build: against the flow (assets.raw may not read assets.staging)"]


def test_an_import_of_the_top_floor_from_below_is_reported(small_tree):
    (small_tree / "pipelines/core/sql.py").write_text("def f():\n    from pipelines import cli\n")
    assert flow_violations(import_graph(small_tree)) == [
        "pipelines.core.sql imports pipelines.cli: against the flow (pipelines.core may not read the top floor)"]


def test_an_asset_reading_quality_is_reported(small_tree):
    (small_tree / "assets/report/page.py").write_text("import quality.outliers\n")
    assert flow_violations(import_graph(small_tree)) == [
        "assets.report.page imports quality.outliers: assets never import quality"]


def test_a_planted_cycle_is_reported_even_through_an_import_inside_a_function(small_tree):
    _tree(small_tree, {
        "pipelines/automation.py": "from pipelines.runner import run\n",
        "pipelines/runner.py": "def run():\n    from pipelines.definitions import defs\n",
        "pipelines/definitions.py": "from pipelines import automation\n",
    })
    assert cycles(import_graph(small_tree)) == [["pipelines.automation", "pipelines.definitions", "pipelines.runner"]]


def test_relative_imports_are_resolved(small_tree):
    (small_tree / "assets/staging/build.py").write_text("from ..raw import read\nfrom . import other\n")
    (small_tree / "assets/staging/other.py").write_text("")
    assert import_graph(small_tree)["assets.staging.build"] == {"assets.raw.read", "assets.staging.other"}


def test_an_oversized_module_is_reported(small_tree):
    (small_tree / "assets/raw/read.py").write_text("x = 1\n" * 601)
    assert oversized_modules(small_tree) == [f"{Path('assets/raw/read.py')}: 601 lines"]
