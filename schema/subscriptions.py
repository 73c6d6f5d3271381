"""Subscriptions: ``events(after, filter)``, the change-event log live, over graphql-transport-ws.

The events come from the process's feed (resolvers/subscriptions.py); each is sent as an
``EventEdge`` whose cursor resumes the subscription (or the ``events`` query) after it. When the
server ends a subscription (its client too slow, its credential revoked) the connection is
closed with a code and a reason that say so; the client resumes with its last cursor.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import strawberry
from starlette.websockets import WebSocket, WebSocketState

from resolvers import subscriptions as live
from schema.context import Context, Info
from schema.events import Event, EventFilter
from schema.execution import live_operation
from schema.relay import Edge

# The edges of the latest rows the feed handed out, by the row (the feed hands the same row to
# every subscriber of the process): built once, not once per subscriber. The row is kept with
# its edge, so that its id is not reused while the entry lives.
_recent: OrderedDict[int, tuple[Any, Edge[Event]]] = OrderedDict()
RECENT = 512


def _edge(row: Any) -> Edge[Event]:
    found = _recent.get(id(row))
    if found is not None and found[0] is row:
        return found[1]
    edge = Edge(cursor=live.cursor_of(row), node=Event.from_row(row))
    _recent[id(row)] = (row, edge)
    if len(_recent) > RECENT:
        _recent.popitem(last=False)
    return edge


async def _edges(
    ctx: Context, rows: AsyncGenerator[Any, None]
) -> AsyncGenerator[Edge[Event], None]:
    operation = live_operation.get()
    try:
        # Closed here: the sends below may be where a cancellation lands, outside the rows'
        # generator, which must still let go of its place in the feed at once.
        async with aclosing(rows):
            async for row in rows:
                edge = _edge(row)
                # Shared with the other subscribers of the same selection, it is sent from
                # here; otherwise graphql-core executes it, and Strawberry sends it.
                if operation is not None:
                    shared = operation.ready(edge)
                    if shared is not None:
                        await operation.send(shared)
                        continue
                # Each event's selection reads `record` and `actor` as they are now.
                ctx.clear_loaders()
                if operation is None or not await operation.sent(edge):
                    yield edge
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
