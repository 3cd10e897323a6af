"""Render Vega-Lite specs to PNG and SVG chart files with vl-convert.

Used in the report's own process, and run as a script by `report_charts.write_chart_files` to render part of the
charts in a second process: vl-convert holds the GIL for a whole conversion, so only a process can use the second
core. Imports nothing but vl-convert and the standard library, so that child starts in well under a second.

    python assets/chart_render.py < jobs.json    # [{"spec": {...}, "stem": "/path/charts/sizes_zh"}, ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import vl_convert

PNG_SCALE = 2
SUFFIXES = (".png", ".svg")


def render(spec: dict) -> tuple[bytes, bytes]:
    """PNG and SVG bytes of one spec."""
    svg = vl_convert.vegalite_to_svg(spec)
    # The PNG is rasterized from the SVG: the same drawing, without running Vega a second time.
    return vl_convert.svg_to_png(svg, scale=PNG_SCALE), svg.encode("utf-8")


def write_chart(spec: dict, stem: Path) -> list[Path]:
    """`<stem>.png` and `<stem>.svg`, each written then renamed so no reader sees half a file."""
    written = []
    for suffix, payload in zip(SUFFIXES, render(spec)):
        path = stem.with_name(stem.name + suffix)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(payload)
        partial.replace(path)
        written.append(path)
    return written


def main() -> None:
    for job in json.load(sys.stdin):
        stem = Path(job["stem"])
        try:
            write_chart(job["spec"], stem)
        except Exception as error:  # reported to the parent, which fails the run with it
            # vl-convert's message is followed by a JavaScript stack trace; the first lines say what went wrong.
            sys.exit(f"{stem.name}: " + " ".join(str(error).splitlines()[:2]))


if __name__ == "__main__":
    main()
