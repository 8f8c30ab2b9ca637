"""The report renders in a real browser: headless Debian `chromium`, driven over the DevTools protocol
with a tiny stdlib WebSocket client (no extra dependency).

Checks: no console errors or uncaught exceptions, every <img> decoded with naturalWidth > 100, the
headline present, the study name `<script>alert(1)</script>` shown as text (no dialog opened), the
trials table sorts on a click.

    SCALINGLAB_SCREENSHOT=/tmp/report.png pytest tests/test_report_browser.py   # also save a screenshot

Skipped when chromium is absent, except in CI (CI=true), where a missing browser is a failure.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from scalinglab.report import write_report

pytestmark = pytest.mark.browser

CHROMIUM = next(
    (
        p
        for p in (
            os.environ.get("CHROMIUM"),
            shutil.which("chromium"),
            shutil.which("chromium-browser"),
            shutil.which("google-chrome"),
        )
        if p
    ),
    None,
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,900",
]

if CHROMIUM is None:
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but no chromium on PATH: the browser test must run in CI", pytrace=False)
    pytest.skip("chromium not installed (apt-get install chromium)", allow_module_level=True)


class WebSocket:
    """Just enough RFC 6455 for the DevTools protocol: text frames, masked client frames, no extensions."""

    def __init__(self, url: str, timeout: float = 30):
        m = re.match(r"ws://([^/:]+):(\d+)(/.*)", url)
        host, port, path = m.group(1), int(m.group(2)), m.group(3)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"WebSocket handshake refused: {head[:200]!r}")
        self.buf = head.split(b"\r\n\r\n", 1)[1]

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, text: str):
        data = text.encode()
        n = len(data)
        head = bytes([0x81]) + (
            bytes([0x80 | n])
            if n < 126
            else bytes([0x80 | 126]) + struct.pack(">H", n)
            if n < 65536
            else bytes([0x80 | 127]) + struct.pack(">Q", n)
        )
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self) -> str:
        parts = []
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)  # server frames are never masked
            op = b0 & 0x0F
            if op == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            if op in (0x9, 0xA):  # ping / pong: not used by DevTools in practice
                continue
            parts.append(payload)
            if b0 & 0x80:
                return b"".join(parts).decode()

    def close(self):
        self.sock.close()


class Page:
    """One page of a headless chromium, with the events it reported."""

    def __init__(self, ws: WebSocket):
        self.ws, self.next_id, self.events = ws, 0, []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, event: str, timeout: float = 30):
        end = time.time() + timeout
        while time.time() < end:
            if any(e["method"] == event for e in self.events):
                return
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(f"no {event} within {timeout} s")

    def js(self, expr: str):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")


@pytest.fixture(scope="module")
def browser():
    """A headless chromium with remote debugging on a free port; yields its DevTools HTTP base URL."""
    profile = tempfile.mkdtemp(prefix="scalinglab-chromium-")
    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port_file = Path(profile) / "DevToolsActivePort"  # chromium writes the port it chose here
        end = time.time() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.time() > end:
                raise RuntimeError(f"chromium did not start: {proc.stderr.read()[-2000:]}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port_file.read_text().split()[0]}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def _open(base: str) -> Page:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # localhost, never a proxy
    end = time.time() + 30
    while True:
        targets = json.loads(opener.open(f"{base}/json/list", timeout=10).read())
        pages = [t for t in targets if t.get("type") == "page" and t.get("webSocketDebuggerUrl")]
        if pages or time.time() > end:
            break
        time.sleep(0.2)
    return Page(WebSocket(pages[0]["webSocketDebuggerUrl"]))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from test_report import make_study  # the synthetic study of tests/test_report.py

    folder = make_study(tmp_path_factory.mktemp("browser") / "study")
    return write_report(folder)


def test_report_renders_in_chromium(browser, report):
    page = _open(browser)
    try:
        for domain in ("Page", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        page.call("Page.navigate", url=report.resolve().as_uri())
        page.wait_for("Page.loadEventFired")
        # images decode asynchronously: wait for every one to settle
        page.js("Promise.all([...document.images].map(i => i.decode().catch(() => null)))")
        imgs = page.js("[...document.images].map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
        text = page.js("document.body.innerText")
        title = page.js("document.getElementById('study-name').textContent")
        # a click on the 'min dev error' header sorts the trials ascending
        col = page.js(
            "[...document.querySelectorAll('#trials-table th')].findIndex(t => t.textContent === 'min dev error')"
        )
        page.js(f"document.querySelectorAll('#trials-table th')[{col}].click()")
        vals = page.js(f"[...document.querySelectorAll('#trials-table tbody tr')].map(r => r.cells[{col}].dataset.v)")

        shot = os.environ.get("SCALINGLAB_SCREENSHOT")
        if shot:
            page.js("window.scrollTo(0, 0)")
            h = page.call("Page.getLayoutMetrics")["cssContentSize"]["height"]
            page.call(
                "Emulation.setDeviceMetricsOverride",
                width=1280,
                height=int(min(h, 16000)),
                deviceScaleFactor=1,
                mobile=False,
            )
            png = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
            Path(shot).write_bytes(base64.b64decode(png))

        # Collect anything reported after the checks too (exceptions from the click handler).
        page.js("1")
        errors = [
            e["params"]
            for e in page.events
            if (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
            or e["method"] == "Runtime.exceptionThrown"
            or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
        ]
        dialogs = [e for e in page.events if e["method"] == "Page.javascriptDialogOpening"]
    finally:
        page.ws.close()

    assert not errors, f"console errors: {errors}"
    assert not dialogs, "a script from the study name ran"
    assert len(imgs) == 4  # learning curve, per size, model size, forecasts checked
    for alt, complete, w, h in imgs:
        assert complete and w > 100 and h > 100, f"image {alt!r} did not decode ({w}x{h})"
    assert "Dev error falls as m^" in text and "Headline" in text
    assert title == "<script>alert(1)</script>"  # shown as text
    nums = [float(v) for v in vals if v != ""]
    assert nums == sorted(nums) and len(nums) >= 60
