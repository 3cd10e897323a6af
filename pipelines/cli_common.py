"""What every `persona` command module shares: the one-line failure and the day option's parser."""

from __future__ import annotations

import sys
from datetime import date

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
