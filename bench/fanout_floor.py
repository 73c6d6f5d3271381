"""The fan-out floor: what uvicorn's WebSockets on this machine can deliver, with no GraphQL and
no database. A bare ASGI app that speaks as much graphql-transport-ws as bench/fanout/fanout.mjs
uses (connection_init, subscribe, ping) and, for every createLead POSTed to /graphql, sends one
pre-encoded ``next`` message (the shape the server sends for the bench's subscription, its
``occurredAt`` the time of the POST) to every subscriber, one after the other, from one task.
The server's fan-out can only be slower: it reads the log, executes the selection and sends
the same frames through the same uvicorn protocol.

    python -m bench.fanout_floor --port 8001
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import uvicorn

Scope = dict[str, Any]


class Floor:
    def __init__(self) -> None:
        self.subscribers: dict[int, tuple[Any, str]] = {}  # id(send) -> (send, prefix)
        self.seq = 0
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def fan_out(self) -> None:
        while True:
            payload = await self.queue.get()
            for send, prefix in list(self.subscribers.values()):
                with contextlib.suppress(Exception):  # a socket that went away
                    await send({"type": "websocket.send", "text": prefix + payload})

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self.fan_out())
        if scope["type"] == "websocket":
            await self.websocket(receive, send)
        elif scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})

    async def websocket(self, receive: Any, send: Any) -> None:
        key = id(send)
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.connect":
                    await send({"type": "websocket.accept", "subprotocol": "graphql-transport-ws"})
                elif message["type"] == "websocket.disconnect":
                    return
                else:
                    body = json.loads(message.get("text") or message.get("bytes"))
                    if body["type"] == "connection_init":
                        await send({"type": "websocket.send", "text": '{"type":"connection_ack"}'})
                    elif body["type"] == "subscribe":
                        prefix = '{"id":' + json.dumps(body["id"]) + ',"type":"next","payload":'
                        self.subscribers[key] = (send, prefix)
                    elif body["type"] == "ping":
                        await send({"type": "websocket.send", "text": '{"type":"pong"}'})
        finally:
            self.subscribers.pop(key, None)

    async def http(self, scope: Scope, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        if scope["path"] == "/healthz":
            body = b'{"status":"ok"}'
        else:
            self.seq += 1
            lead = f"TGVhZDo{self.seq}"
            node = {
                "id": f"RXZlbnQ6{self.seq}",
                "type": "LEAD_CREATED",
                "occurredAt": datetime.now(UTC).isoformat(),
                "recordId": lead,
                "changes": [
                    {"field": "email", "from": None, "to": f"fanout-{self.seq}@example.com"},
                    {"field": "firstName", "from": None, "to": "Fan"},
                    {"field": "lastName", "from": None, "to": f"Out {self.seq}"},
                    {"field": "status", "from": None, "to": "NEW"},
                ],
                "record": {
                    "id": lead,
                    "email": f"fanout-{self.seq}@example.com",
                    "status": "NEW",
                    "score": None,
                },
            }
            edge = {"cursor": f"c{self.seq}", "node": node}
            self.queue.put_nowait(json.dumps({"data": {"events": edge}}) + "}")
            body = json.dumps(
                {"data": {"createLead": {"lead": {"id": lead}, "userErrors": []}}}
            ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--ws", default="auto", help="uvicorn's WebSocket implementation")
    args = parser.parse_args()
    uvicorn.run(Floor(), host="127.0.0.1", port=args.port, log_level="warning", ws=args.ws)


if __name__ == "__main__":
    main()
