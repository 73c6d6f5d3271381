"""Subscriptions: ``events(after, filter)``, the change-event log live, over graphql-transport-ws.

The events come from the process's feed (resolvers/subscriptions.py); each is sent as an
``EventEdge`` whose cursor resumes the subscription (or the ``events`` query) after it. When the
server ends a subscription (its client too slow, its credential revoked) the connection is
closed with a code and a reason that say so; the client resumes with its last cursor.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import strawberry
from starlette.websockets import WebSocket, WebSocketState

from resolvers import subscriptions as live
from schema.context import Context, Info
from schema.events import Event, EventFilter
from schema.relay import Edge


async def _edges(ctx: Context, rows: AsyncIterator[Any]) -> AsyncGenerator[Edge[Event], None]:
    try:
        async for row in rows:
            # Each event's selection reads `record` and `actor` as they are now.
            ctx.clear_loaders()
            yield Edge(cursor=live.cursor_of(row), node=Event.from_row(row))
    except live.SubscriptionEnded as ended:
        socket = ctx.request
        assert isinstance(socket, WebSocket)  # HTTP runs no subscription (schema.Schema)
        if socket.application_state == WebSocketState.CONNECTED:
            await socket.close(ended.code, ended.reason)
        # The connection's handler cancels its operations once the close is through: nothing
        # more goes out on this one (a `complete` would follow a close frame).
        await asyncio.get_running_loop().create_future()


@strawberry.type
class EventSubscription:
    @strawberry.subscription(
        description="The workspace's change events as they are committed, oldest first. With "
        "after (an event cursor), every later event is replayed from the log first, then new "
        "ones follow: in order, each once. Each edge's cursor is the resume point."
    )
    async def events(
        self,
        info: Info,
        after: str | None = None,
        filter: EventFilter | None = None,
    ) -> AsyncGenerator[Edge[Event], None]:
        rows = await live.subscribe(info.context, after, filter)
        return _edges(info.context, rows)
