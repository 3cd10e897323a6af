"""`make ui` stops cleanly (issue 22, point 7): started as a background job (SIGINT ignored, as a shell's `&` leaves
it), a SIGTERM to make stops dagster dev with its webserver, daemon and code server; none is left running."""

import os
import signal
import subprocess
import time

from tests.conftest import REPO_ROOT, assert_process_group_ends, child_env, kill_process_group


def test_a_sigterm_to_make_ui_stops_every_dagster_process():
    def like_a_background_job() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    ui = subprocess.Popen(["make", "--no-print-directory", "ui"], cwd=REPO_ROOT, env=child_env(),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True, preexec_fn=like_a_background_job)
    group = ui.pid  # its own session: make and everything it starts
    try:
        deadline, seen = time.monotonic() + 180, []
        while time.monotonic() < deadline:
            line = ui.stdout.readline()
            seen.append(line)
            if "Serving dagster-webserver" in line or not line:
                break
        assert any("Serving dagster-webserver" in line for line in seen), "".join(seen[-20:])
        os.kill(ui.pid, signal.SIGTERM)
        ui.wait(timeout=60)  # make itself, reaped so that it is not counted as a zombie member of the group
        assert_process_group_ends(group, timeout=60)
    finally:
        kill_process_group(group)
