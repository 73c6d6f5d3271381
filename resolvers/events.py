"""The change-event log: what a write appends, and the lists that read it.

A mutation's step records each change it makes (``Unit.record``: the record type, what kind of
write, the row before and after); ``written()`` appends them all just before it commits, so a
refused or rolled-back write appends nothing. ``EVENT_TYPES`` is the one place that says which
event a write of a record makes.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import EventType, Role
from db.repositories import EventFilterSpec, EventRepository
from resolvers.errors import camel
from resolvers.ids import node_key, to_global_id
from resolvers.pagination import (
    Page,
    SortKey,
    decode_seq_cursor,
    encode_seq_cursor,
    fetch_page,
    page_args,
    page_of,
)

if TYPE_CHECKING:
    from resolvers.context import Context
    from resolvers.records import RecordType


class Write(enum.Enum):
    """What a mutation did to a record."""

    CREATED = "CREATED"
    UPDATED = "UPDATED"  # no event when no field changed
    DELETED = "DELETED"
    CONVERTED = "CONVERTED"
    MERGED = "MERGED"  # other records folded into this one (mergeLeads)
    ARCHIVED = "ARCHIVED"
    RESTORED = "RESTORED"
    COMMENTED = "COMMENTED"  # a comment added to a ticket


# The event each write of each record type appends: (RecordType.name, write) → type. A new
# event is a member of db.models.EventType and a line here (and the mutation's unit.record).
EVENT_TYPES: Mapping[tuple[str, Write], EventType] = {
    ("Lead", Write.CREATED): EventType.LEAD_CREATED,
    ("Lead", Write.UPDATED): EventType.LEAD_UPDATED,
    ("Lead", Write.DELETED): EventType.LEAD_DELETED,
    ("Lead", Write.CONVERTED): EventType.LEAD_CONVERTED,
    ("Lead", Write.MERGED): EventType.LEAD_MERGED,
    ("Client", Write.CREATED): EventType.CLIENT_CREATED,
    ("Client", Write.UPDATED): EventType.CLIENT_UPDATED,
    ("Client", Write.ARCHIVED): EventType.CLIENT_ARCHIVED,
    ("Client", Write.RESTORED): EventType.CLIENT_RESTORED,
    ("Ticket", Write.CREATED): EventType.TICKET_CREATED,
    ("Ticket", Write.UPDATED): EventType.TICKET_UPDATED,
    ("Ticket", Write.COMMENTED): EventType.TICKET_COMMENTED,
}


@dataclass(frozen=True)
class Tracked:
    """A column whose changes events report: its GraphQL field name (``address.city`` for a
    part of an object), and for a foreign key the type its value is a global ID of."""

    field: str
    refers_to: str | None = None


def tracked(*columns: str, **named: str | Tracked) -> dict[str, Tracked]:
    """Columns by key: those named by their GraphQL camelCase name, then the others."""
    out = {column: Tracked(camel(column)) for column in columns}
    for column, field in named.items():
        out[column] = field if isinstance(field, Tracked) else Tracked(field)
    return out


def json_value(value: Any, column: Tracked) -> Any:
    """A column's value as its GraphQL field serializes it: DateTime as ISO 8601 in UTC,
    an enum as its name (stored that way already), a reference as a global ID."""
    if value is None:
        return None
    if column.refers_to is not None:
        return to_global_id(column.refers_to, value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, enum.Enum):
        return value.name
    return value


def same(a: Any, b: Any) -> bool:
    """Equal as JSON: ``1`` and ``true`` differ (Python's == says they are equal)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict | list):
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    return bool(a == b)


def field_changes(
    fields: Mapping[str, Tracked], before: Row[Any] | None, after: Row[Any] | None
) -> list[dict[str, Any]]:
    """``{field, from, to}`` for each tracked field whose value differs. With no ``before``
    (created) every field set, from null; with no ``after`` (deleted) every field that held a
    value, to null."""
    changes = []
    for column, field in fields.items():
        old = json_value(getattr(before, column), field) if before is not None else None
        new = json_value(getattr(after, column), field) if after is not None else None
        # An empty list (no external IDs) is as good as none: it is not reported as set.
        old, new = (None if old == [] else old), (None if new == [] else new)
        if not same(old, new):
            changes.append({"field": field.field, "from": old, "to": new})
    return changes


class Unit:
    """A write's unit of work as a mutation's step sees it: the transaction, and the events
    that its changes make, appended by ``written()`` just before it commits."""

    def __init__(self, ctx: Context, conn: AsyncConnection) -> None:
        self.conn = conn
        self.db = ctx.db
        self.workspace_id = ctx.workspace_id
        self.last_seq: int | None = None  # once appended, where the write numbers its events
        # EVENT_LOG=false (a measurement knob): nothing recorded, nothing appended.
        self.logging = ctx.settings.event_log
        principal = ctx.principal
        self._about = {
            "actor_user_id": principal.user_id if principal else None,
            "actor_api_key_id": principal.api_key_id if principal else None,
            "request_id": ctx.request_id,
        }
        self.events: list[dict[str, Any]] = []

    def record(
        self,
        record: RecordType,
        write: Write,
        before: Row[Any] | None,
        after: Row[Any] | None,
        also: Sequence[dict[str, Any]] = (),
    ) -> None:
        """One change to a record of type ``record``; an update that changed no field makes
        no event. ``also``: changes that are not a column's (the leads a merge folded in)."""
        if not self.logging:
            return
        changes = [*field_changes(record.fields, before, after), *also]
        if write is Write.UPDATED and not changes:
            return
        row = after if after is not None else before
        assert row is not None
        self.events.append(
            {
                "type": EVENT_TYPES[(record.name, write)].value,
                "record_type": record.name,
                "record_id": row.id,
                "changes": changes,
                **self._about,
            }
        )

    def event(
        self, type_: EventType, record_type: str, record_id: int, changes: list[dict[str, Any]]
    ) -> None:
        """An event of a record that is not a write of its own columns (an activity logged on a
        lead: the lead's event)."""
        if not self.logging:
            return
        self.events.append(
            {
                "type": type_.value,
                "record_type": record_type,
                "record_id": record_id,
                "changes": changes,
                **self._about,
            }
        )

    async def append(self) -> None:
        """The events recorded, into the log: the last statements before the commit."""
        self.last_seq = await EventRepository(self.conn, self.workspace_id).append(self.events)

    def committed(self) -> None:
        """After the commit: this process's live readers of the log may read on at once
        (other processes hear of it through db/changes.py)."""
        if self.events:
            self.db.commits.appended(self.workspace_id, self.last_seq)


# The log is read in seq order; cursors are seqs (resolvers/pagination.py).
_SEQ = SortKey("seq", "int")


def event_filter(flt: Any) -> EventFilterSpec:
    """An EventFilter input as the repository's spec (None: every event)."""
    if flt is None:
        return EventFilterSpec()
    record: tuple[str, int] | None = None
    if flt.record_id is not None:
        # A malformed ID is the caller's mistake (BAD_USER_INPUT); one that no record can have
        # (past any id, or of a type without events) matches nothing.
        record = node_key(flt.record_id, "filter.recordId") or ("", 0)
    range_ = flt.occurred_at
    return EventFilterSpec(
        types=flt.types,
        record=record,
        occurred_gte=range_.gte if range_ is not None else None,
        occurred_lt=range_.lt if range_ is not None else None,
    )


async def events(
    ctx: Context,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    filter_: Any,
) -> Page:
    """One page of the workspace's log, oldest first; ``after`` resumes exactly."""
    ctx.require(Role.VIEWER)
    return await page(ctx, first, after, last, before, event_filter(filter_))


async def page(
    ctx: Context,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    spec: EventFilterSpec,
) -> Page:
    """One page of the events ``spec`` selects, oldest first."""
    ctx.require(Role.VIEWER)
    args = page_args(first, after, last, before, "SEQ", _SEQ, decode_seq_cursor)
    workspace_id = ctx.workspace_id

    def repository(conn: Any) -> EventRepository:
        return EventRepository(conn, workspace_id)

    return await fetch_page(
        ctx.db,
        repository,
        spec,
        _SEQ,
        False,
        "SEQ",
        args,
        cursor=lambda row: encode_seq_cursor(row.seq),
    )


async def history(
    ctx: Context,
    record: RecordType,
    global_id: str,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Page:
    """A record's events, oldest first. The records of a list ask together: one statement
    for a page of records' histories (``Loaders.history``)."""
    ctx.require(Role.VIEWER)
    args = page_args(first, after, last, before, "SEQ", _SEQ, decode_seq_cursor)
    key = node_key(global_id)
    assert key is not None and key[0] == record.name  # the record's own ID
    rows: list[Any] = []
    if args.limit:
        past = args.start.value if args.start is not None else None
        rows = await ctx.loaders.history.load((key[0], key[1], args.backward, past, args.limit + 1))
    workspace_id = ctx.workspace_id

    async def count() -> int:
        async with ctx.db.read() as conn:
            return await EventRepository(conn, workspace_id).count(EventFilterSpec(record=key))

    return page_of(rows, args, lambda row: encode_seq_cursor(row.seq), count)
