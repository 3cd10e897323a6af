"""Crash points for the crash-safety tests: `PERSONA_CRASH_AT=<point>` kills the process there with SIGKILL.

The tests prove that a refresh killed at any of these points leaves the published tables and the published report as
they were and that the next run publishes both. Outside those tests the variable is unset and a crash point costs
one dictionary lookup.
"""

import os
import signal

CRASH_POINTS = (
    "raw.orders:before_commit",  # raw rows written, transaction open
    "staging:before_commit",  # staging rebuilt, transaction open
    "segments:checked",  # model and segment tables committed in the working database, not yet published
    "report:written",  # the run's report in place beside the working database, not yet published
    "publish:before_swap",  # the new version folder (warehouse and report) complete and synced, not yet switched to
)


def crash_point(name: str) -> None:
    if os.environ.get("PERSONA_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
