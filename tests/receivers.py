"""A webhook receiver on 127.0.0.1 for the tests: a real HTTP server that records every
request and answers with the status its ``respond`` function picks (200 by default)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


@dataclass(frozen=True)
class Received:
    """One request as the receiver got it, and what it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()
    status: int  # what the receiver answered (0: it never answered)

    @property
    def payload(self) -> Any:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def event_type(self) -> str:
        return str(self.payload["type"])

    @property
    def record_id(self) -> str:
        return str(self.payload["data"]["recordId"])

    def verified(self, secret: str) -> Any:
        """The payload, once standardwebhooks (the receivers' library) verified the request's
        signature with ``secret``; raises WebhookVerificationError otherwise."""
        return Webhook(secret).verify(self.body, self.headers)


Respond = Callable[[Received], int]


class Receiver:
    """Answers POSTs on ``url``; ``respond(request) -> status`` decides each answer (it may
    block, to hold a request open). Requests are kept in arrival order."""

    def __init__(self, respond: Respond | None = None) -> None:
        self.respond: Respond = respond or (lambda _: 200)
        self._requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                seen = Received(self.path, headers, body, time.monotonic(), 0)
                status = receiver.respond(seen)
                with receiver._lock:
                    receiver._requests.append(Received(seen.path, headers, body, seen.at, status))
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender is gone (killed, or it gave up waiting)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    def wait_for(
        self,
        count: int,
        timeout: float = 15,
        where: Callable[[Received], bool] | None = None,
    ) -> list[Received]:
        """The requests (those ``where`` selects), once there are at least ``count``."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.requests if where is None or where(r)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} webhook requests in {timeout} s")
            time.sleep(0.02)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def wait_until(check: Callable[[], Any], timeout: float = 15, every: float = 0.05) -> Any:
    """``check()``'s first truthy answer; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: last answer {value!r}")
        time.sleep(every)
