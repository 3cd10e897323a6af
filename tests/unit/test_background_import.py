"""Great Expectations is imported beside a run's first steps, not when the definitions load
(pipelines/core/background_import.py, quality/validation.py)."""

import subprocess
import sys
import threading

from pipelines.core import background_import
from tests.conftest import REPO_ROOT


def test_loading_the_definitions_leaves_great_expectations_for_the_run():
    code = ("import sys, pipelines.definitions; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'great_expectations', 'dagster'}))")
    shown = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "['dagster']"


def test_the_modules_are_imported_once_in_a_thread_of_their_own(tmp_path, monkeypatch):
    (tmp_path / "slow_library_for_test.py").write_text(
        "import threading\nIMPORTED_IN = threading.current_thread().name\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(background_import, "_thread", None)
    monkeypatch.delitem(sys.modules, "slow_library_for_test", raising=False)

    thread = background_import.import_in_background(("slow_library_for_test", "no_such_module_for_test"))
    assert isinstance(thread, threading.Thread) and not thread.daemon
    thread.join(timeout=30)

    # The missing module is left to the step that needs it, which fails there with Python's own error.
    assert sys.modules["slow_library_for_test"].IMPORTED_IN == "background-import"
    assert "no_such_module_for_test" not in sys.modules
    assert background_import.import_in_background(("slow_library_for_test",)) is None


def test_a_run_starts_the_import(tmp_path, monkeypatch):
    """The warehouse resource starts it when a run sets it up, before the first step."""
    import dagster as dg

    from pipelines.core.resources import WarehouseResource

    started = []
    monkeypatch.setattr("pipelines.core.resources.import_in_background", lambda: started.append(True))

    @dg.asset
    def nothing(warehouse: WarehouseResource) -> None:
        assert started == [True]

    result = dg.materialize([nothing], resources={"warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb"))})
    assert result.success and started == [True]


def test_a_schedule_or_sensor_setting_the_resource_up_outside_a_run_does_not(tmp_path, monkeypatch):
    import dagster as dg

    from pipelines.core.resources import WarehouseResource

    started = []
    monkeypatch.setattr("pipelines.core.resources.import_in_background", lambda: started.append(True))
    with dg.build_resources({"warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb"))}) as resources:
        assert resources.warehouse.path.endswith("w.duckdb")
    assert started == []
