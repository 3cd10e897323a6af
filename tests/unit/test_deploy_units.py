"""The production setup in deploy/ (issue 22, point 7): the systemd units parse, run the venv's dagster-daemon and
dagster-webserver against deploy/workspace.yaml with the environment of one EnvironmentFile, and that file's
example sets what the code location needs. tests/e2e/test_daemon_schedule.py starts the daemon as its unit does."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
UNITS = DEPLOY / "systemd"
DAEMON_UNIT = UNITS / "persona-dagster-daemon.service"
WEBSERVER_UNIT = UNITS / "persona-dagster-webserver.service"
ENV_EXAMPLE = DEPLOY / "persona.env.example"
WORKSPACE = DEPLOY / "workspace.yaml"
# Where the units expect the repository (with its .venv) and the environment file.
INSTALL_ROOT = "/opt/persona-pipeline"
ENVIRONMENT_FILE = "/etc/persona-pipeline/persona.env"


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> values, in order: systemd keys may repeat (ExecStartPre), so configparser cannot read them."""
    unit: dict[str, dict[str, list[str]]] = {}
    section = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert section is not None and sep and not line.endswith("\\"), f"{path}:{number}: {line!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def service_value(path: Path, key: str) -> str:
    (value,) = read_unit(path)["Service"][key]
    return value


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines as systemd's EnvironmentFile reads them (comments skipped, one pair of quotes removed)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and key.isidentifier(), f"{path}: not a KEY=value line: {line!r}"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def exec_start(path: Path) -> list[str]:
    return service_value(path, "ExecStart").split()


def exec_start_pre(path: Path) -> list[list[str]]:
    return [command.split() for command in read_unit(path)["Service"].get("ExecStartPre", [])]


@pytest.mark.parametrize(("unit_path", "program"), [(DAEMON_UNIT, "dagster-daemon"),
                                                   (WEBSERVER_UNIT, "dagster-webserver")])
def test_each_unit_runs_the_venvs_dagster_program_on_the_deploy_workspace_with_the_environment_file(unit_path,
                                                                                                  program):
    unit = read_unit(unit_path)
    assert set(unit) == {"Unit", "Service", "Install"}
    command = exec_start(unit_path)
    assert command[0] == f"{INSTALL_ROOT}/.venv/bin/{program}"
    assert (REPO_ROOT / ".venv" / "bin" / program).exists()  # installed with the project (pyproject.toml)
    assert command[command.index("-w") + 1] == f"{INSTALL_ROOT}/deploy/workspace.yaml"
    assert service_value(unit_path, "EnvironmentFile") == ENVIRONMENT_FILE
    assert service_value(unit_path, "WorkingDirectory") == INSTALL_ROOT
    assert [service_value(unit_path, key) for key in ("User", "Type", "Restart")] == ["persona", "simple",
                                                                                   "on-failure"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_daemon_unit_installs_the_projects_dagster_yaml_and_migrates_the_storage_before_it_starts():
    """Without the project's dagster.yaml, Dagster's defaults have no one-run-at-a-time queue."""
    assert exec_start_pre(DAEMON_UNIT) == [
        ["/usr/bin/install", "-D", "-m", "0644", f"{INSTALL_ROOT}/dagster.yaml", "${DAGSTER_HOME}/dagster.yaml"],
        [f"{INSTALL_ROOT}/.venv/bin/dagster", "instance", "migrate"],
    ]
    # The webserver waits for that (when both start) and refuses to start on an instance it has not prepared.
    assert "persona-dagster-daemon.service" in read_unit(WEBSERVER_UNIT)["Unit"]["After"][0].split()
    assert exec_start_pre(WEBSERVER_UNIT) == [["/usr/bin/test", "-f", "${DAGSTER_HOME}/dagster.yaml"]]


def test_the_daemon_runs_every_daemon_and_the_webserver_listens_on_localhost_only():
    assert exec_start(DAEMON_UNIT)[1:] == ["run", "-w", f"{INSTALL_ROOT}/deploy/workspace.yaml"]
    command = exec_start(WEBSERVER_UNIT)
    assert command[command.index("-h") + 1] == "127.0.0.1"  # no login: reach it through a tunnel or a proxy
    assert command[command.index("-p") + 1] == "3000"


def test_the_environment_example_sets_what_the_code_location_and_the_instance_need():
    values = read_env_file(ENV_EXAMPLE)
    assert set(values) == {"DAGSTER_HOME", "PERSONA_CONFIG", "PERSONA_WAREHOUSE"}
    assert all(Path(value).is_absolute() for value in values.values())
    # Every variable it mentions, commented out or not, is documented.
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    mentioned = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    assert mentioned >= {"PERSONA_SCHEDULE_CRON", "PERSONA_SCHEDULE_TIMEZONE", "PERSONA_ALERT_WEBHOOK"}
    documented = (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") + (
        REPO_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    assert [name for name in sorted(mentioned) if f"`{name}`" not in documented] == []


def test_the_workspace_loads_pipelines_definitions_relative_to_its_own_folder():
    (location,) = yaml.safe_load(WORKSPACE.read_text(encoding="utf-8"))["load_from"]
    python_file = location["python_file"]
    assert (WORKSPACE.parent / python_file["relative_path"]).resolve() == REPO_ROOT / "pipelines" / "definitions.py"
    assert (WORKSPACE.parent / python_file["working_directory"]).resolve() == REPO_ROOT
    assert python_file["location_name"] == "persona_pipeline"  # the name make ui shows ([tool.dagster])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_both_units(tmp_path):
    """systemd's own parser, on copies installed at this checkout (verify checks that ExecStart is executable):
    no unknown key, no bad value, no warning."""
    env_file = tmp_path / "persona.env"
    env_file.write_text(ENV_EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    for unit_path in (DAEMON_UNIT, WEBSERVER_UNIT):
        text = unit_path.read_text(encoding="utf-8").replace(ENVIRONMENT_FILE, str(env_file))
        (tmp_path / unit_path.name).write_text(text.replace(INSTALL_ROOT, str(REPO_ROOT)), encoding="utf-8")
    verify = subprocess.run(["systemd-analyze", "verify", DAEMON_UNIT.name, WEBSERVER_UNIT.name], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
