"""Render Vega-Lite specs to PNG and SVG chart files with vl-convert, and check that Chinese glyphs can be drawn.

Used in the report's own process, and run as a script by `chart_files.ChartFileWriter` to draw part of the
charts in a second process: vl-convert holds the GIL for a whole conversion, so only a process can use the second
core. Imports nothing but vl-convert and the standard library, so that child starts in well under a second.

The child is started before the report reads the warehouse, so its start-up (Python, then vl-convert's first
conversion, ~0.4 s CPU: the JavaScript engine and the fonts) overlaps the reading. The protocol:

    python assets/report/chart_render.py
    -> prints "fonts ok" or "fonts missing" (the CJK check below, which also warms vl-convert up)
    <- reads one line: the path of a jobs file, [{"spec": {...}, "stem": "/path/charts/sizes_zh"}, ...]
       (an empty line or end of input: nothing to draw, exit)
    -> draws every job it can claim (see `claim`); the parent draws the others.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import vl_convert

PNG_SCALE = 2
SUFFIXES = (".png", ".svg")
FONT = "Noto Sans CJK SC, Noto Sans SC, Source Han Sans SC, PingFang SC, Microsoft YaHei, sans-serif"
# A chart without any CJK text puts a Latin font first: vl-convert measures and draws every piece of text with the
# first font of the stack, and a 20 MB CJK collection made that 5-7x slower (the 10 English charts took 3.0 s of
# CPU with FONT, 0.5 s with this). Liberation Sans ships inside vl-convert (it is its sans-serif), so it is there
# on every machine. Charts with Chinese text keep FONT: under a Latin-first stack vl-convert falls back to
# whichever CJK face it finds first for the whole label (a serif one here) and draws bold titles in regular weight.
LATIN_FIRST_FONT = "Liberation Sans, " + FONT
# Han, kana, hangul, CJK punctuation and full-width forms: text the Latin font cannot draw.
CJK_TEXT = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]")
FONTS_OK, FONTS_MISSING = "fonts ok", "fonts missing"
PROBES = ("客群画像", "运营策略")
MISSING_GLYPHS = "\ue000\ue001\ue002\ue003"  # private-use code points: no font draws them, so they render as a box


def font_for(spec: dict) -> str:
    """The font stack for a chart: LATIN_FIRST_FONT when none of its text is CJK, else FONT."""
    return FONT if CJK_TEXT.search(json.dumps(spec, ensure_ascii=False)) else LATIN_FIRST_FONT


# Ids that Vega numbers with counters living as long as the process (vega-scenegraph: gradients from 0, radial
# ones prefixed "p_", clip paths from 1), as the SVG writes them: `id="gradient_3"`, `fill="url(#gradient_3)"`.
ID_PATTERNS = {
    re.compile(r'(?P<lead>id="|url\(#)(?P<name>(?:p_)?gradient_)(?P<number>\d+)(?=[")])'): 0,
    re.compile(r'(?P<lead>id="|url\(#)(?P<name>clip)(?P<number>\d+)(?=[")])'): 1,
}


def renumber_ids(svg: str) -> str:
    """The SVG with the ids a fresh process gives it (its first gradient is gradient_0 whatever the process drew
    before), so a chart's file does not depend on which process drew it, nor after which charts."""
    for pattern, first in ID_PATTERNS.items():
        numbers = [int(match["number"]) for match in pattern.finditer(svg)]
        if numbers and min(numbers) != first:
            shift = min(numbers) - first
            svg = pattern.sub(lambda m: f"{m['lead']}{m['name']}{int(m['number']) - shift}", svg)  # noqa: B023 - applied at once
    return svg


def render(spec: dict) -> tuple[bytes, bytes]:
    """PNG and SVG bytes of one spec."""
    svg = renumber_ids(vl_convert.vegalite_to_svg(spec))
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


def text_spec(text: str, font: str = FONT, size: int = 28) -> dict:
    """One line of text drawn as the charts draw it (a Vega-Lite text mark)."""
    return {"config": {"view": {"continuousWidth": 300, "continuousHeight": 300}, "background": "white"},
            "data": {"values": [{"t": text}]}, "mark": {"type": "text", "font": font, "fontSize": size},
            "encoding": {"text": {"field": "t", "type": "nominal"}},
            "height": size * 2, "width": 8 + size * max(len(text), 1)}


def text_png(text: str, font: str = FONT, size: int = 28) -> bytes:
    """A PNG of one line of text, as the charts draw it."""
    return vl_convert.vegalite_to_png(text_spec(text, font, size), scale=1)


def cjk_glyphs_drawn(font: str = FONT) -> bool:
    """Two different Chinese labels give two different images, and neither looks like text made of glyphs no font
    has (boxes or nothing)."""
    first, second = (text_png(p, font) for p in PROBES)
    boxes = text_png(MISSING_GLYPHS, font)
    return first != second and boxes not in (first, second)


def claim(claims_dir: Path, index: int) -> bool:
    """True for the one process that claims job `index` first: creating a file is atomic, so the parent and the
    child share the jobs without talking to each other, and whichever is free takes the next chart."""
    try:
        os.close(os.open(claims_dir / f"{index}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def claimed(jobs: list[dict], claims_dir: Path) -> Iterator[dict]:
    """The jobs of `jobs` ([{"spec", "stem"}], heaviest first) that this process claims, as it gets to them."""
    return (job for index, job in enumerate(jobs) if claim(claims_dir, index))


def main() -> None:
    print(FONTS_OK if cjk_glyphs_drawn() else FONTS_MISSING, flush=True)
    line = sys.stdin.readline().strip()
    if not line:
        return  # nothing to draw: the parent failed before drawing, or found no CJK font
    jobs_file = Path(line)
    for job in claimed(json.loads(jobs_file.read_text(encoding="utf-8")), jobs_file.parent):
        stem = Path(job["stem"])
        try:
            write_chart(job["spec"], stem)
        except Exception as error:  # reported to the parent, which fails the run with it
            # vl-convert's message is followed by a JavaScript stack trace; the first lines say what went wrong.
            sys.exit(f"{stem.name}: " + " ".join(str(error).splitlines()[:2]))


if __name__ == "__main__":
    main()
