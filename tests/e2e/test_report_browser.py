"""The report in a real headless Chromium (Debian's `chromium`), driven over the DevTools protocol.

Chromium talks DevTools over `--remote-debugging-pipe` (file descriptors 3 and 4, NUL-separated JSON), so the
client below needs only the standard library. Host names resolve nowhere (`--host-resolver-rules`), so even a
regression that tried the network could not leave the machine; the test still sees every request it attempts.

Run as a script to take the README screenshots:
    .venv/bin/python -m tests.test_report_browser REPORTS_DIR OUT_DIR
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--remote-debugging-pipe"]


def chromium_path() -> str:
    path = shutil.which("chromium") or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if not path:
        pytest.fail("Debian's chromium is not installed: run `sudo scripts/install-system-deps.sh` "
                    "(make test runs it) to install chromium and fonts-noto-cjk")
    return path


class Chromium:
    """A headless Chromium with one page, driven over --remote-debugging-pipe."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 900):
        commands_read, commands_write = os.pipe()
        replies_read, replies_write = os.pipe()

        def wire_fds():  # in the child: the pipe ends become fds 3 (commands in) and 4 (replies out)
            a = fcntl.fcntl(commands_read, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(replies_write, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.process = subprocess.Popen(
            [chromium_path(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "about:blank"],
            preexec_fn=wire_fds, pass_fds=(3, 4), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(commands_read)
        os.close(replies_write)
        self._write, self._read = commands_write, replies_read
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=True)

    def _receive(self, until, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if until(message):
                    return message
                if "method" in message:
                    self.events.append(message)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self._read], [], [], left)
            if ready:
                chunk = os.read(self._read, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buffer += chunk

    def call(self, method: str, params: dict | None = None, session: bool = False, timeout: float = 30) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        reply = self._receive(lambda m: m.get("id") == message["id"], timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def open(self, url: str, timeout: float = 30) -> None:
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        self._receive(lambda m: m.get("method") == "Page.loadEventFired", timeout)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"{expression} stayed false for {timeout} s")

    def drain(self, seconds: float = 0.3) -> None:
        """Collect the events that arrive in the next moments (late console messages, requests)."""
        with contextlib.suppress(TimeoutError):
            self._receive(lambda m: False, seconds)

    def screenshot(self, path: Path, width: int = 1280) -> None:
        height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=True)
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close", timeout=10)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._write)
        os.close(self._read)


CHART_CHECK = """JSON.stringify(Array.from(document.querySelectorAll('.chart')).map(function (div) {
  var drawn = div.querySelector('svg.marks, canvas');
  var box = drawn ? drawn.getBoundingClientRect() : {width: 0, height: 0};
  return {id: div.id, width: box.width, height: box.height,
          marks: div.querySelectorAll('svg .mark-rect path, svg .mark-arc path, svg .mark-rule line, '
                                      + 'svg .mark-line path, svg .mark-symbol path, svg .mark-text text').length};
}))"""


def inspect_report(browser: Chromium, page: Path) -> dict:
    """Open a report file and report console errors, requests, and what every chart drew."""
    url = page.resolve().as_uri()
    browser.open(url)
    status = json.loads(browser.wait_for(
        "window.__report && window.__report.done && JSON.stringify(window.__report)"))
    browser.drain()
    console = [(e["params"]["type"], " ".join(str(a.get("value", a.get("description", ""))) for a in
                                             e["params"]["args"]))
               for e in browser.events if e["method"] == "Runtime.consoleAPICalled"]
    logs = [(e["params"]["entry"]["level"], e["params"]["entry"]["text"]) for e in browser.events
            if e["method"] == "Log.entryAdded"]
    exceptions = [e["params"]["exceptionDetails"] for e in browser.events if e["method"] == "Runtime.exceptionThrown"]
    requests = [e["params"]["request"]["url"] for e in browser.events if e["method"] == "Network.requestWillBeSent"]
    return {"url": url, "status": status, "console": console, "logs": logs, "exceptions": exceptions,
            "requests": requests, "charts": json.loads(browser.evaluate(CHART_CHECK))}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def demo_reports(tmp_path_factory) -> Path:
    from tests.graph.test_report import demo_warehouse

    return demo_warehouse(tmp_path_factory).parent / "reports"


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("dataset", ["demo", "seed"])
def test_report_renders_offline_in_chromium(browser, demo_reports, seed_warehouse, dataset, language):
    reports = demo_reports if dataset == "demo" else seed_warehouse.parent / "reports"
    page = reports / f"report_{language}.html"
    found = inspect_report(browser, page)
    assert found["status"]["failed"] == [] and found["status"]["rendered"] == found["status"]["charts"] > 0
    # No console errors or warnings (Vega logs its problems as warnings), no exceptions.
    assert [c for c in found["console"] if c[0] in ("error", "warning", "assert")] == []
    assert [entry for entry in found["logs"] if entry[0] in ("error", "warning")] == []
    assert found["exceptions"] == []
    # The only request is the file itself.
    assert found["requests"] == [found["url"]]
    # Every chart drew an SVG of non-zero size with marks in it.
    assert len(found["charts"]) == found["status"]["charts"]
    for chart in found["charts"]:
        assert chart["width"] > 100 and chart["height"] > 50 and chart["marks"] > 0, chart
    # Charts span the page (not half of it) and none runs off it: the 1,116 px column of the page.
    for chart in found["charts"]:
        assert 700 <= chart["width"] <= 1120, chart
    # The page itself is in the right language and has the summary first.
    assert browser.evaluate("document.documentElement.lang") == ("zh-CN" if language == "zh" else "en")
    assert browser.evaluate("document.querySelector('main > section').id") == "summary"


def test_chromium_missing_fails_with_instructions(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(pytest.fail.Exception, match="install-system-deps.sh"):
        chromium_path()


def main(argv: list[str]) -> None:
    reports, out = Path(argv[0]), Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        browser = Chromium(Path(profile), width=1280)
        try:
            for language in ("zh", "en"):
                found = inspect_report(browser, reports / f"report_{language}.html")
                print(language, found["status"], found["console"], found["requests"])
                browser.screenshot(out / f"report_{language}.png")
        finally:
            browser.close()


if __name__ == "__main__":
    main(sys.argv[1:])
