"""`persona init`: write a first source config from a shop's files (pipelines/config_init.py), for review.
Registered in pipelines/cli.py with `main.add_command(init)`."""

from __future__ import annotations

from pathlib import Path

import click

from pipelines.cli_common import command_name, fail


@click.command()
@click.option("--orders", "orders_path", required=True, help="The order export (CSV, TXT, TSV, XLSX, Parquet, JSON).")
@click.option("--customers", "customers_path", default=None, help="The customer / member file, if any.")
@click.option("--products", "products_path", default=None, help="A product table (sku -> category), if any.")
@click.option("--out", "out_path", default="shop.yaml", show_default=True, help="The config file to write.")
@click.option("--name", default=None, help="The shop's name in the config (default: the --out file's name).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def init(orders_path: str, customers_path: str | None, products_path: str | None, out_path: str,
         name: str | None, force: bool) -> None:
    """Sniff the files (encoding, delimiter, title lines, shape, date formats), map their columns onto the data
    contract by name (Chinese and English) and write a commented YAML config to review. Prints one line for each
    column it could not map and each thing you must still decide."""
    from pipelines.config_init import draft_config
    from pipelines.config_sniff import SniffError
    from pipelines.config_yaml import render_yaml
    from pipelines.core.config import ConfigError, load_source_config

    out = Path(out_path)
    if out.exists() and not force:
        fail(f"{out}: already exists; pass --force to overwrite it")
    if out.parent != Path("") and not out.parent.is_dir():
        fail(f"{out}: the folder {out.parent} does not exist")
    try:
        draft = draft_config(Path(orders_path), customers_path and Path(customers_path),
                             products_path and Path(products_path))
    except SniffError as exc:
        fail(str(exc))
    text = render_yaml(draft, out, name or out.stem)
    out.write_text(text, encoding="utf-8")
    try:
        load_source_config(out)
    except ConfigError as exc:  # a draft the config model refuses: say so, keep the file for editing
        fail(f"{out}: written, but it does not validate yet: {str(exc).splitlines()[0]}")
    mapped = ", ".join(f"{s.key} {len(s.matches)} of {len(s.sniffed.columns)} columns" for s in draft.sections)
    click.echo(f"wrote {out}: shape {draft.shape}; mapped {mapped}")
    for line in draft.unmapped:
        click.echo(f"not mapped: {line}")
    for section in draft.sections:  # a match init doubts (an order time worse filled than another date column)
        for match in section.matches.values():
            if match.doubt:
                click.echo(f"to decide: {section.key}.columns.{match.field}: {match.doubt}")
    for line in draft.undecided:
        click.echo(f"to decide: {line}")
    click.echo(f"next: review {out}, then {command_name()} check --config {out}")
