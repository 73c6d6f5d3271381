"""A subscriber to ``subscription { events }`` over graphql-transport-ws, on a raw WebSocket
(the ``websockets`` library), for tests that look at what goes over the wire: each edge, the
close code and reason. tests/ws_client and tests/apollo_client drive the npm clients."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

SUBSCRIBE = """
subscription ($after: String, $filter: EventFilter) {
  events(after: $after, filter: $filter) {
    cursor
    node { id type recordId changes { field from to } }
  }
}
"""


def seq(cursor: str) -> int:
    """The seq an event cursor holds (cursors are opaque to clients; tests may look)."""
    kind, value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert kind == "SEQ"
    return int(value)


def cursor_at(seq_: int) -> str:
    """The cursor of seq ``seq_`` (0: before the first event)."""
    return base64.urlsafe_b64encode(f'["SEQ",{seq_}]'.encode()).decode().rstrip("=")


class Closed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass
class Subscription:
    """One connection with one subscription (id "1") on it."""

    ws: Any
    received: list[dict[str, Any]] = field(default_factory=list)

    async def message(self, timeout: float) -> dict[str, Any]:
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except websockets.ConnectionClosed:
            raise Closed(self.ws.close_code, self.ws.close_reason or "") from None
        message: dict[str, Any] = json.loads(raw)
        return message

    async def next(self, timeout: float = 10) -> dict[str, Any]:
        """The next edge; AssertionError on anything else (errors, complete)."""
        message = await self.message(timeout)
        assert message["type"] == "next", message
        assert message["id"] == "1"
        payload = message["payload"]
        assert "errors" not in payload, payload["errors"]
        edge: dict[str, Any] = payload["data"]["events"]
        self.received.append(edge)
        return edge

    async def take(self, n: int, timeout: float = 20) -> list[dict[str, Any]]:
        """The next ``n`` edges, all within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        return [await self.next(max(0.01, deadline - loop.time())) for _ in range(n)]

    async def until_closed(self, timeout: float = 20) -> Closed:
        """Every edge still to come, then how the server closed the connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                await self.next(max(0.01, deadline - loop.time()))
            except Closed as closed:
                return closed

    async def first_message(self, timeout: float = 10) -> dict[str, Any]:
        return await self.message(timeout)


class StalledSubscription:
    """A subscriber that takes nothing from its socket until ``until_closed``: websockets'
    sans-I/O protocol over a plain socket with a small receive buffer, so that no library reads
    on its behalf meanwhile (the asyncio client does, into memory), and the server's sends wait
    on TCP as they would for a client that stopped reading."""

    def __init__(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        self.sock = sock
        self.protocol = protocol
        self.received: list[dict[str, Any]] = []

    @classmethod
    async def open(
        cls, http_url: str, token: str, after: str | None, receive_buffer: int = 4096
    ) -> StalledSubscription:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        host, port = http_url.removeprefix("http://").split(":")
        await loop.sock_connect(sock, (host, int(port)))
        protocol = ClientProtocol(
            parse_uri(ws_url(http_url)),
            subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
            max_size=None,
        )
        protocol.send_request(protocol.connect())
        self = cls(sock, protocol)
        await self._flush()
        while not any(isinstance(e, Response) for e in protocol.events_received()):
            protocol.receive_data(await asyncio.wait_for(loop.sock_recv(sock, 65536), 10))
        assert protocol.handshake_exc is None, protocol.handshake_exc
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await self._send(init)
        assert await self._message(10) == {"type": "connection_ack"}
        variables = {"after": after, "filter": None}
        subscribe = {"query": SUBSCRIBE, "variables": variables}
        await self._send({"type": "subscribe", "id": "1", "payload": subscribe})
        return self

    async def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def _send(self, message: dict[str, Any]) -> None:
        self.protocol.send_text(json.dumps(message).encode())
        await self._flush()

    async def _message(self, timeout: float) -> dict[str, Any] | None:
        """The next text message; None once the server closed the connection."""
        loop = asyncio.get_running_loop()
        while True:
            for event in self.protocol.events_received():
                if isinstance(event, Frame) and event.opcode == Opcode.TEXT:
                    message: dict[str, Any] = json.loads(event.data)
                    return message
            if self.protocol.close_rcvd is not None:
                await self._flush()  # the closing handshake's answer
                return None
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), timeout)
            if not data:
                self.protocol.receive_eof()
                return None
            self.protocol.receive_data(data)
            await self._flush()  # pongs

    async def until_closed(self, timeout: float = 20) -> Closed:
        """Every edge that was waiting or still comes, then how the server closed."""
        try:
            while (message := await self._message(timeout)) is not None:
                assert message["type"] == "next", message
                self.received.append(message["payload"]["data"]["events"])
            close = self.protocol.close_rcvd
            return Closed(close.code if close else None, close.reason if close else "")
        finally:
            self.sock.close()


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://") + "/graphql"


@asynccontextmanager
async def subscribed(
    http_url: str,
    token: str | None,
    *,
    after: str | None = None,
    filter_: dict[str, Any] | None = None,
    query: str = SUBSCRIBE,
    variables: dict[str, Any] | None = None,
) -> AsyncIterator[Subscription]:
    """A connection authenticated with ``token`` in connection_init's payload, subscribed to
    ``events`` (``variables``: more of them, for ``query``)."""
    async with websockets.connect(
        ws_url(http_url),
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        max_size=None,
    ) as ws:
        init: dict[str, Any] = {"type": "connection_init"}
        if token is not None:
            init["payload"] = {"Authorization": f"Bearer {token}"}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        variables = {"after": after, "filter": filter_, **(variables or {})}
        await ws.send(
            json.dumps(
                {
                    "type": "subscribe",
                    "id": "1",
                    "payload": {"query": query, "variables": variables},
                }
            )
        )
        yield Subscription(ws)


@asynccontextmanager
async def all_subscribed(http_url: str, token: str, n: int) -> AsyncIterator[list[Subscription]]:
    """``n`` connections, each subscribed to every event from now on."""
    async with AsyncExitStack() as exits:
        yield [await exits.enter_async_context(subscribed(http_url, token)) for _ in range(n)]
