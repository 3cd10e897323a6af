"""Import the slowest library of a run in a background thread while the run's first steps work.

Great Expectations takes about 2 s to import (3.2-3.4 s on a slow host), and only the validation step uses it. The
steps before it (raw, staging) spend most of their time inside DuckDB and polars, which let go of the GIL, so the
import runs beside them on the second core instead of before the run. At 1M customers this took 1.2-1.8 s off a
run (a DuckDB CSV read with the import beside it against the two one after the other).

Python's import lock makes a step that needs the module while the thread is still importing it wait for that
import to finish. It does not protect a package the run itself is using while the thread imports more of it: Great
Expectations imports sqlalchemy.orm, whose import registers an inspector with sqlalchemy that Dagster's event log
storage (sqlalchemy too) then called while sqlalchemy.orm.exc was still half initialized ("partially initialized
module 'sqlalchemy.orm.exc' has no attribute 'UnmappedClassError'": 2 of about 30 `persona run`s of the test suite
failed so). So the modules of packages the run also uses (SHARED_FIRST, 60 ms) are imported in the calling thread
before the thread starts; what the thread imports then is Great Expectations' own. The thread is not a daemon, so a
process never exits in the middle of an import.
"""

from __future__ import annotations

import gc
import importlib
import logging
import threading

# Libraries only: the modules of this project import them when they are used (quality/validation.py).
BACKGROUND_MODULES = ("great_expectations",)
# What importing Great Expectations adds to packages the run uses itself (Dagster's storage is sqlalchemy; tqdm),
# found by recording which thread imported each module (sys.addaudithook) during a run.
SHARED_FIRST = ("sqlalchemy.orm", "sqlalchemy.future", "tqdm.auto")

_lock = threading.Lock()
_thread: threading.Thread | None = None
log = logging.getLogger(__name__)


def _import_all(modules: tuple[str, ...]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the step that needs the module imports it again and fails there, loudly
            log.debug("background import of %s failed", name, exc_info=True)
    # `persona run` froze the objects its imports left (pipelines/cli.py), so that full collections skip them; the
    # modules imported here join them. What the run holds at this moment is frozen too: its garbage cycles are then
    # not collected, a few objects of the first steps against the long-lived modules of Great Expectations.
    if gc.get_freeze_count():
        gc.freeze()


def import_in_background(modules: tuple[str, ...] = BACKGROUND_MODULES) -> threading.Thread | None:
    """Start importing `modules` in a background thread, once per process; None when already started."""
    global _thread
    with _lock:
        if _thread is not None:
            return None
        for name in SHARED_FIRST:
            importlib.import_module(name)
        _thread = threading.Thread(target=_import_all, args=(modules,), name="background-import")
        _thread.start()
        return _thread
