"""The report's chart files for slides (PNG and SVG), the pages' script bundle, and the CJK font check.

PNG and SVG files are rendered by vl-convert (no browser, no network). Chinese glyphs need a CJK font on the machine
(Debian: fonts-noto-cjk); without one, text would be drawn as empty boxes or not at all, so `check_cjk_font`
renders two different Chinese labels and fails with instructions when they come out identical.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import vl_convert

from assets.report import chart_render

FONT = chart_render.FONT
PNG_SCALE = chart_render.PNG_SCALE


class MissingCjkFontError(RuntimeError):
    pass


# --- files and fonts ----------------------------------------------------------------------------------------------

def javascript_bundle(cache_files: Path | Sequence[Path] = ()) -> str:
    """Vega, Vega-Lite and Vega-Embed as one script (shipped inside vl-convert; nothing is downloaded).

    vl-convert builds it in 1.6 s of CPU (it remembers it for the rest of the process), the same script for the
    same vl-convert and Vega-Lite versions. With `cache_files`, it is kept between runs, under a header naming
    those versions and the script's SHA-256: read from the first of them that holds it whole and from these
    versions, otherwise built and written to the first of them that can be written.
    """
    from altair.utils._importers import vl_version_for_vl_convert

    files = [cache_files] if isinstance(cache_files, Path) else list(cache_files)
    vl_version = vl_version_for_vl_convert()
    versions = f"vl-convert {vl_convert.__version__}, Vega-Lite {vl_version}"
    for cache_file in files:
        cached = _read_bundle_cache(cache_file, versions)
        if cached is not None:
            return cached
    bundle = vl_convert.javascript_bundle(vl_version=vl_version)
    for cache_file in files:
        if _write_bundle_cache(cache_file, versions, bundle):
            break
    return bundle


def _bundle_cache_header(versions: str, body: bytes) -> bytes:
    return f"// script bundle cache: {versions}; sha256 {hashlib.sha256(body).hexdigest()}\n".encode("ascii")


def _read_bundle_cache(path: Path, versions: str) -> str | None:
    """The cached bundle, or None when the file is missing, from other versions, or not what was written."""
    try:
        content = path.read_bytes()
    except OSError:
        return None
    header, newline, body = content.partition(b"\n")
    if not newline or header + newline != _bundle_cache_header(versions, body):
        return None
    return body.decode("utf-8")


def _write_bundle_cache(path: Path, versions: str, bundle: str) -> bool:
    """Written then renamed: a reader finds the old file, the new one or none, never part of one. The partial
    file is named after this process, so two reports writing at once do not mix their bytes. False when the
    folder cannot be written: the cache only saves time."""
    body = bundle.encode("utf-8")
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(_bundle_cache_header(versions, body) + body)
        partial.replace(path)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        return False


def render_png(spec: dict, scale: float = PNG_SCALE) -> bytes:
    return vl_convert.vegalite_to_png(spec, scale=scale)


def render_svg(spec: dict) -> str:
    return vl_convert.vegalite_to_svg(spec)


def text_png(text: str, font: str = FONT, size: int = 28) -> bytes:
    """A PNG of one line of text, as the charts draw it."""
    return chart_render.text_png(text, font, size)


def _fc_list_cjk() -> str:
    if not shutil.which("fc-list"):
        return "fc-list is not installed"
    try:
        found = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"fc-list failed ({exc})"
    families = sorted({line.split(",")[0].strip() for line in found.stdout.splitlines() if line.strip()})
    return "fc-list finds Chinese fonts: " + ", ".join(families[:5]) if families else \
        "fc-list finds no font with Chinese glyphs"


def _missing_cjk_font(font: str) -> MissingCjkFontError:
    return MissingCjkFontError(
        "Chinese glyphs cannot be drawn in the PNG charts: no CJK font is installed for vl-convert "
        f"(font stack: {font}; {_fc_list_cjk()}). Install one: run `sudo scripts/install-system-deps.sh` "
        "(it installs Debian's fonts-noto-cjk), or `apt-get install fonts-noto-cjk`, then run again.")


def check_cjk_font(font: str = FONT) -> None:
    """Fail unless Chinese text renders as real glyphs in the PNG charts.

    Two different Chinese labels must give two different images, and neither may look like text made of glyphs
    no font has (boxes or nothing). Cached per font stack: the answer does not change during a run.
    """
    if not _cjk_ok(font):
        raise _missing_cjk_font(font)


@functools.cache
def _cjk_ok(font: str) -> bool:
    return chart_render.cjk_glyphs_drawn(font)


def _estimated_cost(spec: dict) -> int:
    """Drawing time grows roughly with the spec's size: at L, categories (21-23 KB of JSON) 0.8-0.95 s of CPU,
    rfm_tiers (10-11 KB) 0.3-0.5 s, sizes (4 KB) 0.1-0.2 s. Only the order matters: the heavy charts first, so
    the last ones, drawn while the other process finishes, are short."""
    return len(json.dumps(spec, ensure_ascii=False))


class ChartFileWriter:
    """Writes `<key>_<language>.png` and `.svg` for every chart, sharing the drawing with a helper process.

    vl-convert holds the GIL for a whole conversion, so threads cannot share the drawing; with two or more cores
    a helper process (assets/report/chart_render.py) draws alongside this one. It is started when the writer is made,
    before the report reads the warehouse, so its start-up and the CJK font check (0.5 s of CPU) are done by the
    time the charts are ready. The charts are then shared one at a time, heaviest first (see _estimated_cost):
    each process claims the next chart when it is free, so both finish within about one small chart of each
    other, even when this process also builds the pages' script bundle (1.6 s when it is not cached). Splitting
    by language, as before, gave one process 0.7 s more to draw at L (English 3.4 s of CPU, Chinese 2.7 s).

        with ChartFileWriter() as writer:
            ...                                 # read the warehouse, build the specs
            writer.start(specs, charts_dir)     # the helper starts drawing
            ...                                 # other work
            files = writer.finish()             # this process draws what is left; waits for the helper
    """

    def __init__(self) -> None:
        self._helper = _start_helper() if (os.cpu_count() or 1) > 1 else None
        self._claims: tempfile.TemporaryDirectory | None = None
        self._jobs: list[dict] = []  # heaviest first
        self._files: list[Path] = []
        self._charts_dir: Path | None = None

    def __enter__(self) -> ChartFileWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        # After a failure: claim the charts left, so the helper stops after the one it is drawing, and wait for it
        # (no half-written file stays behind); its own error, if any, is not the one to report. After finish(),
        # there is nothing left to do.
        if self._claims is not None:
            for _ in chart_render.claimed(self._jobs, Path(self._claims.name)):
                pass
        self._stop_helper(report_failure=False)
        self._drop_claims()

    def start(self, specs: dict[str, dict[str, dict]], charts_dir: Path) -> None:
        """Checks the CJK font, then hands the charts (language -> key -> spec) to the helper."""
        self._check_fonts()
        charts_dir.mkdir(parents=True, exist_ok=True)
        self._charts_dir = charts_dir
        jobs = [{"spec": spec, "stem": str(charts_dir / f"{key}_{language}")}
                for language, charts in specs.items() for key, spec in charts.items()]
        self._files = [Path(job["stem"] + suffix) for job in jobs for suffix in chart_render.SUFFIXES]
        self._jobs = sorted(jobs, key=lambda job: -_estimated_cost(job["spec"]))  # stable: ties keep their order
        self._claims = tempfile.TemporaryDirectory(prefix="chart-claims-")
        if self._helper is not None:
            jobs_file = Path(self._claims.name) / "jobs.json"
            jobs_file.write_text(json.dumps(self._jobs, ensure_ascii=False), encoding="utf-8")
            try:
                self._helper.stdin.write(f"{jobs_file}\n".encode())
                self._helper.stdin.close()
            except BrokenPipeError:
                pass  # the helper died; finish() reports why

    def finish(self) -> list[Path]:
        """Draws the charts the helper has not claimed, waits for it, and removes stale files of charts no longer
        in the report. Returns every chart file, in the order of the specs."""
        for job in chart_render.claimed(self._jobs, Path(self._claims.name)):
            chart_render.write_chart(job["spec"], Path(job["stem"]))
        self._stop_helper(report_failure=True)
        self._drop_claims()
        for stale in set(self._charts_dir.glob("*_*.png")) | set(self._charts_dir.glob("*_*.svg")):
            if stale not in self._files:
                stale.unlink()
        return self._files

    def _check_fonts(self) -> None:
        if self._helper is None:
            check_cjk_font()
            return
        verdict = self._helper.stdout.readline().decode("utf-8", errors="replace").strip()
        if verdict == chart_render.FONTS_MISSING:
            raise _missing_cjk_font(FONT)
        if verdict != chart_render.FONTS_OK:
            self._stop_helper(report_failure=True)  # it died at start: raises with its error
            raise RuntimeError(f"the chart helper process said {verdict!r} instead of its font check")

    def _stop_helper(self, report_failure: bool) -> None:
        """Waits for the helper (an end of input without jobs makes it exit at once)."""
        helper, self._helper = self._helper, None
        if helper is None:
            return
        with contextlib.suppress(BrokenPipeError):
            helper.stdin.close()
        errors = helper.stderr.read()
        for stream in (helper.stdout, helper.stderr):
            stream.close()
        if helper.wait() != 0 and report_failure:
            tail = "\n".join(errors.decode("utf-8", errors="replace").splitlines()[-20:])
            raise RuntimeError(f"rendering chart files in a child process failed (exit {helper.returncode}):\n{tail}")

    def _drop_claims(self) -> None:
        if self._claims is not None:
            self._claims.cleanup()
            self._claims = None


def _start_helper() -> subprocess.Popen:
    """The helper process drawing chart files (assets/report/chart_render.py); see that module for what it says and
    reads."""
    return subprocess.Popen([sys.executable, str(Path(chart_render.__file__))], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def write_chart_files(specs: dict[str, dict[str, dict]], charts_dir: Path) -> list[Path]:
    """`<key>_<language>.png` and `.svg` for every chart (language -> key -> spec); written then renamed, so no
    reader sees half a file. Stale files of charts no longer in the report are removed."""
    with ChartFileWriter() as writer:
        writer.start(specs, charts_dir)
        return writer.finish()
