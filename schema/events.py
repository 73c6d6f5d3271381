"""Change events: the Event type, the workspace's log (``events``) and a record's ``history``.

Every committed change to a lead or client appended one Event in its own transaction
(resolvers/events.py); these fields only read the log, oldest first, paged by seq.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import Row

from db.models import EventType as _EventType
from resolvers import events as resolve
from resolvers.ids import to_global_id
from schema.auth import Actor, actor
from schema.context import Info
from schema.records import DateTimeRange
from schema.relay import Connection, Node
from schema.scalars import JSON

EventType = strawberry.enum(_EventType, name="EventType", description="What happened to a record.")


@strawberry.type(description="One field of a record that an event changed.")
class FieldChange:
    field: str = strawberry.field(
        description='The GraphQL field name; address parts as "address.city".'
    )
    from_: JSON | None = strawberry.field(name="from", description="Before (null on create).")
    to: JSON | None = strawberry.field(description="After (null on delete).")


@strawberry.type(
    description="One committed change to a lead or client. Within a workspace events are "
    "ordered by commit: a later event's cursor sorts after an earlier one's."
)
class Event(Node):
    id: strawberry.ID
    type: EventType  # type: ignore[valid-type]
    occurred_at: datetime
    record_id: strawberry.ID = strawberry.field(
        description="The global ID of the lead or client, kept after a delete."
    )
    request_id: str | None = strawberry.field(
        description="The X-Request-ID of the request that made the change."
    )
    changes: list[FieldChange] = strawberry.field(
        description="Every field that changed; on create every field set, on delete every "
        "field that held a value."
    )
    record_type: strawberry.Private[str]
    record_pk: strawberry.Private[int]
    actor_user_id: strawberry.Private[int | None]
    actor_api_key_id: strawberry.Private[int | None]

    @strawberry.field(
        description="That lead or client as it is now; null once deleted (a lead merged into "
        "another: that lead)."
    )
    async def record(self, info: Info) -> Node | None:
        from schema.nodes import load_node  # schema.nodes knows Event: imported when used

        return await load_node(info, self.record_type, self.record_pk)

    @strawberry.field(description="Who made the change; null for the server itself.")
    async def actor(self, info: Info) -> Actor | None:
        return await actor(info, self.actor_user_id, self.actor_api_key_id)  # type: ignore[no-any-return]

    @classmethod
    def from_row(cls, row: Row[Any]) -> Event:
        return cls(
            id=strawberry.ID(to_global_id("Event", row.id)),
            type=_EventType(row.type),
            occurred_at=row.occurred_at,
            record_id=strawberry.ID(to_global_id(row.record_type, row.record_id)),
            request_id=row.request_id,
            changes=[
                FieldChange(field=c["field"], from_=c["from"], to=c["to"]) for c in row.changes
            ],
            record_type=row.record_type,
            record_pk=row.record_id,
            actor_user_id=row.actor_user_id,
            actor_api_key_id=row.actor_api_key_id,
        )

    @classmethod
    def maybe(cls, row: Row[Any] | None) -> Event | None:
        return cls.from_row(row) if row is not None else None


EventConnection = Connection[Event]


@strawberry.input
class EventFilter:
    types: list[EventType] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Any of these types."
    )
    record_id: strawberry.ID | None = strawberry.field(
        default=None, description="The events of this lead or client."
    )
    occurred_at: DateTimeRange | None = None


def history_field() -> Any:
    """A record type's ``history(first, after, last, before): EventConnection!``."""

    async def resolve_history(
        self: Any,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> EventConnection:  # type: ignore[valid-type]
        page = await resolve.history(
            info.context, self.records, self.id, first, after, last, before
        )
        return EventConnection.from_page(page, Event.from_row)  # type: ignore[no-any-return]

    return strawberry.field(
        resolve_history,
        description="Its change events, oldest first. Resume with after: the last cursor seen.",
    )


@strawberry.type
class EventQuery:
    @strawberry.field(
        description="The workspace's change events, oldest first. Resume with after: the last "
        "cursor you processed; every later event comes once, in order."
    )
    async def events(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: EventFilter | None = None,
    ) -> EventConnection:  # type: ignore[valid-type]
        page = await resolve.events(info.context, first, after, last, before, filter)
        return EventConnection.from_page(page, Event.from_row)  # type: ignore[no-any-return]
