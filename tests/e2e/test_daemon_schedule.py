"""The production setup keeps the schedule running (issue 22, point 7): the dagster-daemon of
deploy/systemd/persona-dagster-daemon.service, started as systemd starts it (the unit's ExecStartPre commands, which
install the project's dagster.yaml into DAGSTER_HOME and create the storage, then its ExecStart: the venv's
`dagster-daemon run` on deploy/workspace.yaml) with the environment of deploy/persona.env.example, evaluates the
`nightly_refresh` schedule once `dagster schedule start` turned it on (as docs/operations.md says), records the tick
in the instance, and stops with its code server on SIGTERM (what `systemctl stop` sends).

PERSONA_SCHEDULE_CRON makes the schedule tick every minute, so the first tick comes within a minute. PERSONA_CONFIG
names a config that does not exist: the tick is a skip that names it, which shows the schedule ran with the
environment file's settings, and no run is launched. Everything the daemon writes is under tmp_path."""

import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType, TickStatus

from tests.conftest import REPO_ROOT, assert_process_group_ends, child_env, kill_process_group
from tests.unit.test_deploy_units import (
    DAEMON_UNIT,
    ENV_EXAMPLE,
    INSTALL_ROOT,
    exec_start,
    exec_start_pre,
    read_env_file,
)

TICK_TIMEOUT_SECONDS = 150  # a minute to the next cron minute, plus loading the code location on a busy machine
STOP_TIMEOUT_SECONDS = 60


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def test_the_daemon_of_the_systemd_unit_records_a_nightly_refresh_tick_and_stops_on_sigterm(tmp_path):
    home = tmp_path / "dagster_home"  # created by the unit's ExecStartPre
    settings = read_env_file(ENV_EXAMPLE) | {
        "DAGSTER_HOME": str(home),
        "PERSONA_CONFIG": str(tmp_path / "shop.yaml"),  # absent: the tick skips, naming it
        "PERSONA_WAREHOUSE": str(tmp_path / "warehouse" / "warehouse.duckdb"),
        "PERSONA_SCHEDULE_CRON": "* * * * *",
    }
    env = child_env() | settings

    def as_installed(command: list[str]) -> list[str]:
        """A command of the unit, with the repository where the unit expects it and ${VAR} expanded as systemd
        does from the environment file."""
        return [part.replace(INSTALL_ROOT, str(REPO_ROOT)).replace("${DAGSTER_HOME}", settings["DAGSTER_HOME"])
                for part in command]

    # What systemd runs before the daemon: the project's dagster.yaml into DAGSTER_HOME, the storage created.
    for command in map(as_installed, exec_start_pre(DAEMON_UNIT)):
        prepared = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert prepared.returncode == 0, (command, prepared.stdout + prepared.stderr)
    assert (home / "dagster.yaml").read_bytes() == (REPO_ROOT / "dagster.yaml").read_bytes()
    daemon_command = as_installed(exec_start(DAEMON_UNIT))
    workspace = daemon_command[daemon_command.index("-w") + 1]
    dagster = str(REPO_ROOT / ".venv" / "bin" / "dagster")
    log = tmp_path / "daemon.log"

    started = time.time()
    with log.open("w", encoding="utf-8") as output:
        daemon = subprocess.Popen(daemon_command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    group = daemon.pid  # its own session: the daemon and the code server it starts
    try:
        turn_on = subprocess.run([dagster, "schedule", "start", "nightly_refresh", "-w", workspace], cwd=tmp_path,
                                 env=env, capture_output=True, text=True, timeout=120)
        assert turn_on.returncode == 0, turn_on.stdout + turn_on.stderr
        assert "Started schedule nightly_refresh" in turn_on.stdout

        with dg.DagsterInstance.from_config(str(home)) as instance:
            (state,) = instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
            assert (state.instigator_name, state.status) == ("nightly_refresh", InstigatorStatus.RUNNING)
            deadline, ticks = time.monotonic() + TICK_TIMEOUT_SECONDS, []
            while time.monotonic() < deadline and daemon.poll() is None:
                ticks = [tick for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id)
                         if tick.status != TickStatus.STARTED]
                if ticks:
                    break
                time.sleep(2)
        assert daemon.poll() is None, f"the daemon exited with {daemon.returncode}:\n{_tail(log)}"
        assert ticks, f"no tick within {TICK_TIMEOUT_SECONDS} s:\n{_tail(log)}"

        tick = ticks[-1]  # the first one
        assert tick.instigator_name == "nightly_refresh"
        assert tick.status == TickStatus.SKIPPED, (tick.status, tick.error)
        assert tick.skip_reason.startswith(f"source config problem: {settings['PERSONA_CONFIG']}"), tick.skip_reason
        assert tick.run_ids == []
        # The tick's timestamp is the cron minute it evaluated: after the start, on a whole minute.
        assert started < tick.timestamp <= time.time() and tick.timestamp % 60 == 0
        assert tick.end_timestamp is not None and tick.end_timestamp >= started

        os.killpg(group, signal.SIGTERM)  # systemctl stop: SIGTERM to every process of the unit
        assert daemon.wait(timeout=STOP_TIMEOUT_SECONDS) == 0, _tail(log)
        assert_process_group_ends(group, timeout=STOP_TIMEOUT_SECONDS)
    finally:
        kill_process_group(group)
        daemon.wait(timeout=STOP_TIMEOUT_SECONDS)
