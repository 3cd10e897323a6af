"""`persona init`: the drafted config (pipelines/config_init.py) written as YAML, with a comment on every line
saying why: what each column was matched for, what was left out, what the user has to decide."""

from __future__ import annotations

import glob
import os
import unicodedata
from pathlib import Path

import yaml

from pipelines.config_draft import Draft
from pipelines.config_match import example
from pipelines.config_sniff import describe


def scalar(value: object) -> str:
    """A YAML scalar that reads back as the value (plain when it can be, else double-quoted)."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    plain = text and "#" not in text and ": " not in text and text == text.strip()
    try:
        if plain and yaml.safe_load(f"k: {text}") == {"k": text}:
            return text
    except yaml.YAMLError:
        pass
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t").replace("\n", "\\n") + '"'


def flow(items: list) -> str:
    return "[" + ", ".join(scalar(item) for item in items) + "]"


def _width(text: str) -> int:
    """Columns the text takes in a terminal: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _line(indent: int, key: str, value: str, note: str = "") -> str:
    text = f"{' ' * indent}{key}: {value}" if value else f"{' ' * indent}{key}:"
    return f"{text}{' ' * max(1, 45 - _width(text))}# {note}" if note else text


def relative_path(path: Path, base: Path) -> str:
    """The path as the config writes it: relative to the config's folder when they share more than the root
    (configs resolve relative paths against their own folder), else absolute; glob characters escaped."""
    target, folder = path.resolve(), base.resolve()
    try:
        shared = os.path.commonpath([target, folder])
        shown = os.path.relpath(target, folder) if Path(shared) != Path(Path(shared).anchor) else str(target)
    except ValueError:
        shown = str(target)
    return glob.escape(shown)


def render_yaml(draft: Draft, out: Path, name: str) -> str:
    files = ", ".join(s.name for s in draft.sections)
    lines = [f"# Written by `persona init` from {files}.",
             "# Review it, above all the lines marked CHECK; each column's comment says why it was matched, and",
             "# docs/configuration.md explains every key. Then dry-run it and run it:",
             f"#   persona check --config {out.name}",
             f"#   persona run --config {out.name} --warehouse <folder>/warehouse.duckdb",
             _line(0, "name", scalar(name), "the shop: a warehouse holds one, runs of another name are refused"),
             _line(0, "shape", draft.shape, "one row per basket, one flag column per category" if draft.shape ==
                   "wide" else "one row per order line")]
    for section in draft.sections:
        sniffed = section.sniffed
        lines.append(f"{section.key}:")
        lines.append(f"  # {section.name}: {describe(sniffed)}")
        lines.append(_line(2, "path", scalar(relative_path(sniffed.path, out.parent))))
        if sniffed.format == "csv":
            lines.append(_line(2, "encoding", sniffed.encoding))
            if sniffed.delimiter != ",":
                shown = {"\t": "tab"}.get(sniffed.delimiter, sniffed.delimiter)
                lines.append(_line(2, "delimiter", scalar(shown)))
        if sniffed.skip_rows:
            blank = " and blank lines" if sniffed.skip_rows > len(sniffed.title_lines) else ""
            lines.append(_line(2, "skip_rows", str(sniffed.skip_rows), f"title lines{blank} above the header"))
        lines.append(_line(2, "columns", "", "contract field: source column"))
        for field_name, why in section.absent.items():
            lines.append(_line(4, field_name, "null", why))
        for field_name, match in section.matches.items():
            note = match.why + example(sniffed, match.column)
            if field_name == "order_ts" and section.time_column is not None:
                note = (f"{match.why}; {section.time_column} holds its time of day (e.g. "
                        f"{sniffed.values(section.time_column)[0]!r}): the two are read as one")
                lines.append(_line(4, field_name, f"[{scalar(match.column)}, {scalar(section.time_column)}]", note))
                continue
            if field_name in ("status", "line_status") and field_name in section.extra_notes:
                note += "; " + section.extra_notes[field_name]
            lines.append(_line(4, field_name, scalar(match.column), note))
        for key in ("date_formats", "timezone", "excel_serial_dates", "order_id_within", "guest_customer_ids",
                    "fill_down", "category_columns", "flag_tokens"):
            if key in section.extra:
                value = section.extra[key]
                if isinstance(value, dict):
                    lines.append(_line(2, key, "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"))
                else:
                    lines.append(_line(2, key, flow(value) if isinstance(value, list) else scalar(value),
                                       section.extra_notes.get(key, "")))
            elif key in section.extra_notes:
                lines.append(f"  # {key}: {section.extra_notes[key]}")
        if "exact_duplicates" in section.extra_notes:
            lines.append(f"  # exact_duplicates: {section.extra_notes['exact_duplicates']}")
        for column, why in section.unmapped.items():
            lines.append(f"  # not mapped: {column or '(unnamed)'!s} ({why})")
    if draft.values:
        lines.append("values:                                      # added to the built-in values")
        for key, value in draft.values.items():
            note = draft.value_notes.get(key, "")
            if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
                shown = "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
            elif isinstance(value, dict):
                shown = "{" + ", ".join(f"{scalar(k)}: {scalar(v)}" for k, v in value.items()) + "}"
            else:
                shown = flow(value) if isinstance(value, list) else scalar(value)
            lines.append(_line(2, key, shown, note))
    if draft.pii:
        lines.append("privacy:")
        lines.append("  pii_columns:")
        for column, why in draft.pii.items():
            lines.append(_line(4, scalar(column), "drop", why))
    if draft.quality_hints:
        lines.append("# quality:                                  # CHECK: many rows lack a customer id: anonymous "
                     "sales, left out of the segments (see above)")
        lines += [f"#   {hint}" for hint in draft.quality_hints]
    return "\n".join(lines) + "\n"
