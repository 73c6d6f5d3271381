"""A real browser for tests: Debian's Chromium, headless, driven over the Chrome DevTools
Protocol (a WebSocket; ``websockets`` comes with uvicorn[standard])."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def chromium() -> str | None:
    """The browser's executable, or None when none is installed."""
    return next((path for name in CHROMIUM if (path := shutil.which(name))), None)


class Page:
    """One tab: navigate, run JavaScript, type as a user would."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """A DevTools command's result (events that arrive meanwhile are dropped)."""
        id_ = next(self._ids)
        self.socket.send(json.dumps({"id": id_, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == id_:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        found = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in found:
            raise RuntimeError(f"{expression}: {found['exceptionDetails']}")
        return found["result"].get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    def type_into(self, selector: str, text: str) -> None:
        """Focuses the field and types ``text`` into it (as keyboard input, not a set value)."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", text=text)

    def wait_for(self, condition: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not self._true(condition):
            if time.monotonic() > deadline:
                state = self.evaluate("location.href + ' ' + document.readyState")
                raise AssertionError(f"not true after {timeout} s: {condition} (at {state})")
            time.sleep(0.05)

    def _true(self, condition: str) -> bool:
        try:
            return bool(self.evaluate(condition))
        except RuntimeError:  # the page was navigating away: its context is gone
            return False


@contextmanager
def browser_page(executable: str) -> Iterator[Page]:
    """A headless Chromium with one blank page, stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="leadgraph-chromium-") as profile:
        process = subprocess.Popen(
            [
                executable,
                "--headless=new",
                "--no-sandbox",  # as root in a container, the sandbox cannot start
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            endpoint = _devtools_url(process)
            port = endpoint.split(":")[2].split("/")[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                [page] = [t for t in json.load(r) if t["type"] == "page"]
            with connect(page["webSocketDebuggerUrl"], max_size=None) as socket:
                yield Page(socket)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            assert process.stderr is not None
            process.stderr.close()


def _devtools_url(process: subprocess.Popen[str]) -> str:
    """The browser's DevTools WebSocket URL, from the line it prints once it listens."""
    assert process.stderr is not None
    for line in process.stderr:
        if match := _LISTENING.search(line):
            # The rest of its log is read and dropped: a full pipe would stop the browser.
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return match.group(1)
    raise RuntimeError(f"Chromium exited ({process.wait()}) before it listened for DevTools")
