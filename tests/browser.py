"""A headless Chromium for the tests that look at HTML pages: open a page, run JavaScript in it,
take a screenshot.

It speaks the DevTools protocol over a pipe (``--remote-debugging-pipe``: JSON messages ending in
NUL, read from fd 3 and written to fd 4) rather than through Selenium or Playwright: neither is
among the project's dependencies, Playwright downloads a browser build of its own, and the pipe
needs only the standard library: no driver process, no port, nothing on the network. Debian's
``chromium`` package is the browser (``apt-get install chromium``); `find_chromium` says whether
it is there, so that the tests can skip with that reason.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "no Chromium: `apt-get install chromium` (Debian) to run the browser tests"


def find_chromium() -> str | None:
    """The browser to use: ``$CHROMIUM`` if set (None if that is not a program), else the first
    of `CANDIDATES` on the path."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless browser with one tab, ``width`` × ``height`` CSS pixels at scale 1."""

    def __init__(self, executable: str, width: int = 1280, height: int = 900, timeout: float = 30.0):
        self.width, self.height, self.timeout = width, height, timeout
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_pipes() -> None:
            # In the child, before exec: the protocol's fds 3 and 4. Both ends move above 4
            # first (closed at exec), so that neither is overwritten when the other lands;
            # dup2 makes 3 and 4 outlive the exec. Every other descriptor of ours is
            # non-inheritable (PEP 446), so close_fds=False passes nothing else.
            reader = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
            writer = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(reader, 3)
            os.dup2(writer, 4)

        args = [
            executable,
            "--headless",
            "--remote-debugging-pipe",
            # No sandbox: tests run as root in CI, where Chromium refuses its own sandbox.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--hide-scrollbars",
            f"--user-data-dir={self._profile.name}",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire_pipes,
            close_fds=False,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []
        try:
            target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"
            ]
            self.call("Page.enable")
            self.call("Runtime.enable")
            self.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- the protocol
    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise BrowserError("no answer from Chromium in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise BrowserError(f"Chromium closed the pipe (exit status {self._proc.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        request = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            request["sessionId"] = session
        os.write(self._to_browser, json.dumps(request).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self._events.append(message)

    def call(self, method: str, params: dict | None = None) -> dict:
        """A command to the tab."""
        return self._call(method, params, self._session)

    def _wait_for_event(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, event in enumerate(self._events):
                if event["method"] == method:
                    return self._events.pop(i)
            self._events.append(self._read_message(deadline))

    # ----------------------------------------------------------------- what tests use
    def open(self, url: str | Path) -> None:
        """Loads ``url`` (a path becomes a file:// URL) and waits for its load event."""
        if isinstance(url, Path):
            url = url.resolve().as_uri()
        self._events.clear()
        answer = self.call("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise BrowserError(f"cannot open {url}: {answer['errorText']}")
        self._wait_for_event("Page.loadEventFired")

    def wait_for_load(self) -> None:
        """Waits for the tab's next load event (after a click that follows a link)."""
        self._wait_for_event("Page.loadEventFired")

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-like values come back as is)."""
        answer = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression!r} raised: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) in the middle of the element ``selector``,
        scrolled into view first: what a person does, not a script calling ``.click()``."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        if box is None:
            raise BrowserError(f"nothing matches {selector!r}")
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
            )

    def type(self, selector: str, text: str) -> None:
        """Focuses ``selector`` and types ``text`` into it (input events, as from a keyboard)."""
        self.click(selector)
        self.call("Input.insertText", {"text": text})

    def screenshot(self, path: Path) -> Path:
        """The visible part of the page as a PNG file of ``width`` × ``height`` pixels."""
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
