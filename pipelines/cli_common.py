"""What every `persona` command module shares: the one-line failure and the day option's parser."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from datetime import date
from pathlib import Path

import click


def fail(message: str) -> None:
    """Print `persona: <message>` on stderr and exit 1: every refusal is one line."""
    click.echo(f"persona: {message}", err=True)
    sys.exit(1)


def parse_day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a day (YYYY-MM-DD)") from None


def command_name() -> str:
    """The command as the user can type it: bare when the venv is active, by path otherwise (relative below the
    working folder, as `.venv/bin/persona` after `make run`; absolute elsewhere, not `../../../work/.venv/...`).
    Started as `python -m pipelines.cli`, argv[0] is this file, which is no command: the same interpreter with -m."""
    if shutil.which("persona"):
        return "persona"
    if Path(sys.argv[0]).suffix == ".py":
        # Not resolved: a venv's python is a link to the base interpreter, which lacks the venv's packages.
        return f"{_typed_path(Path(sys.executable).absolute())} -m pipelines.cli"
    return _typed_path(Path(sys.argv[0]).resolve())


def _typed_path(command: Path) -> str:
    relative = os.path.relpath(command, Path.cwd())
    return shlex.quote(str(command) if relative.startswith("..") else relative)
