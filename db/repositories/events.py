"""The change-event log: appending a write's events, and reading the log in order."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Row,
    Select,
    String,
    bindparam,
    func,
    select,
    text,
    union_all,
)

from db import reads
from db.models import Event, EventCounter, EventType
from db.repositories.base import FilterSpec, Keyset, Repository
from db.types import UTCDateTime, utcnow

_counters: Any = EventCounter.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, kw_only=True)
class EventFilterSpec(FilterSpec):
    """A validated EventFilter; every condition given must hold. ``record``: (type, pk). The
    shared fields (search, createdAt) are not used: events have occurredAt."""

    types: Sequence[EventType] | None = None
    record: tuple[str, int] | None = None
    occurred_gte: datetime | None = None
    occurred_lt: datetime | None = None


# What each event of ``append`` carries (the rest: its workspace, seq and time). On PostgreSQL
# the events go as one JSON array, taken apart at commit by the trigger of migration 0007
# (which names these fields too), so that one statement of one shape carries any number.
EVENT_FIELDS = (
    "type",
    "record_type",
    "record_id",
    "actor_user_id",
    "actor_api_key_id",
    "request_id",
    "changes",
)
_COLUMNS = "workspace_id, seq, occurred_at, " + ", ".join(EVENT_FIELDS)
# SQLite's counter: add :n to the workspace's row (a first event creates it), RETURNING the
# last seq taken. (PostgreSQL's is the same upsert, in the trigger of migration 0007.)
_TAKE = (
    "INSERT INTO event_counters (workspace_id, last_seq) VALUES (:ws, :n) "
    "ON CONFLICT (workspace_id) "
    "DO UPDATE SET last_seq = event_counters.last_seq + excluded.last_seq "
    "RETURNING "
)


_TYPES: dict[str, Any] = {
    "ws": Integer(),
    "n": BigInteger(),
    "events": String(),  # PostgreSQL: the events as a JSON array
    "first": BigInteger(),
    "at": UTCDateTime(),
}


def _binds(*names: str) -> list[Any]:
    return [bindparam(name, type_=_TYPES[name]) for name in names]


@cache
def _append_postgresql() -> reads.Reusable:
    """The events, as one JSON array, into ``event_appends``: a trigger takes them from there
    when the transaction commits (migration 0007) and appends them to the log, with their seqs,
    the database's clock and the NOTIFY the log's listeners wait for (db/changes.py). Until
    then nothing is locked: the counter's row is locked only while the commit runs, inside
    the database."""
    sql = (
        "INSERT INTO event_appends (workspace_id, events) "
        "VALUES (:ws, CAST(:events AS jsonb)) RETURNING id"
    )
    return reads.Reusable(text(sql).bindparams(*_binds("ws", "events")))


@cache
def _take_sqlite() -> reads.Reusable:
    """The counter's upsert alone: SQLite has no INSERT inside a WITH."""
    take = text(_TAKE + "last_seq").bindparams(*_binds("ws", "n")).columns(last_seq=BigInteger)
    return reads.Reusable(take)


@cache
def _insert_sqlite(n: int) -> reads.Reusable:
    """The INSERT of ``n`` events, their seqs from ``:first`` on, their values as parameters
    (``:type_0``...). Plain VALUES: SQLite takes a JSON array apart (``json_each``) at three
    times the cost of the INSERT itself (~100 µs against ~35)."""
    rows = ", ".join(
        f"(:ws, :first + {k}, :at, " + ", ".join(f":{f}_{k}" for f in EVENT_FIELDS) + ")"
        for k in range(n)
    )
    stmt = (
        text(f"INSERT INTO events ({_COLUMNS}) VALUES {rows} RETURNING seq")
        .bindparams(
            *_binds("ws", "first", "at"),
            *(bindparam(f"{f}_{k}") for f in EVENT_FIELDS for k in range(n)),
        )
        .columns(seq=BigInteger)
    )
    return reads.Reusable(stmt)


class EventRepository(Repository):
    table = Event.__table__  # type: ignore[attr-defined]

    async def append(self, events: Sequence[dict[str, Any]]) -> int | None:
        """Appends ``events`` (in order) to the workspace's log: each gets the next seq and the
        time it is written, so that seq order is commit order. SQLite: numbered here (meant to
        run last in its transaction: until it commits, no other write can start anyway), the
        last seq returned. PostgreSQL: numbered when the transaction commits, by the database
        (migration 0007); None, as for no events."""
        if not events:
            return None
        # The driver runs these statements itself (db/reads.py): SQLAlchemy's execution of a
        # statement costs more CPU than the database takes to run it (bench/README.md, "The
        # log's write cost").
        if self.conn.dialect.name == "postgresql":
            batch = json.dumps([{f: e[f] for f in EVENT_FIELDS} for e in events])
            await reads.in_transaction(
                self.conn, _append_postgresql(), {"ws": self.workspace_id, "events": batch}
            )
            return None
        n = len(events)
        params: dict[str, Any] = {"ws": self.workspace_id, "n": n}
        last = int((await reads.in_transaction(self.conn, _take_sqlite(), params))[0][0])
        # After the counter: a later seq never gets an earlier time (on one clock).
        params |= {"first": last - n + 1, "at": utcnow()}
        for k, event in enumerate(events):
            for f in EVENT_FIELDS:
                value = event[f]
                params[f"{f}_{k}"] = json.dumps(value) if f == "changes" else value
        await reads.in_transaction(self.conn, _insert_sqlite(n), params)
        return last

    async def last_seq(self) -> int:
        """The seq of the workspace's latest committed event (0 before the first)."""
        stmt = select(_counters.c.last_seq).where(_counters.c.workspace_id == self.workspace_id)
        return int((await self.conn.execute(stmt)).scalar() or 0)

    def event_conditions(self, spec: EventFilterSpec) -> list[ColumnElement[bool]]:
        """The filter's conditions (built per call: an event filter is short)."""
        c = self.c
        out: list[ColumnElement[bool]] = []
        if spec.types is not None:
            out.append(c.type.in_([t.value for t in spec.types]))
        if spec.record is not None:
            out += [c.record_type == spec.record[0], c.record_id == spec.record[1]]
        if spec.occurred_gte is not None:
            out.append(c.occurred_at >= spec.occurred_gte)
        if spec.occurred_lt is not None:
            out.append(c.occurred_at < spec.occurred_lt)
        return out

    async def page(
        self,
        spec: FilterSpec | None,
        sort_column: str,
        descending: bool,
        start: Keyset | None,
        limit: int,
        columns: Sequence[str] | None = None,
    ) -> list[Row[Any]]:
        """Up to ``limit`` events ``spec`` selects in seq order (unique in the workspace: no
        tie-breaker), strictly past ``start.value``, a seq."""
        stmt = self.page_statement(self._where(spec), descending, start, limit)
        return await reads.all_rows(self.conn, stmt)

    async def count(self, spec: FilterSpec | None) -> int:
        stmt = select(func.count()).select_from(self.table).where(self.scope, *self._where(spec))
        return int(await reads.scalar(self.conn, stmt))

    def _where(self, spec: FilterSpec | None) -> list[ColumnElement[bool]]:
        assert spec is None or isinstance(spec, EventFilterSpec)
        return self.event_conditions(spec) if spec is not None else []

    async def histories(
        self,
        record_type: str,
        record_ids: Sequence[int],
        descending: bool,
        past: int | None,
        limit: int,
    ) -> list[Row[Any]]:
        """Up to ``limit`` events of each record (``record_type``, in ``record_ids``) in seq
        order, strictly past the seq ``past``: one statement for a page of records, each branch
        a walk of the record's index that stops at ``limit``."""
        branches = [
            select(
                self.page_statement(
                    [self.c.record_type == record_type, self.c.record_id == record_id],
                    descending,
                    Keyset(past, 0) if past is not None else None,
                    limit,
                ).subquery()
            )
            for record_id in record_ids
        ]
        stmt = branches[0] if len(branches) == 1 else union_all(*branches)
        return await reads.all_rows(self.conn, stmt)

    def page_statement(
        self,
        conditions: Sequence[ColumnElement[bool]],
        descending: bool,
        start: Keyset | None,
        limit: int,
    ) -> Select[Any]:
        """The SELECT of ``page``: by (workspace_id, seq), or by (workspace_id, record_type,
        record_id, seq) for one record's events."""
        seq = self.c.seq
        where = [self.scope, *conditions]
        if start is not None:
            where.append(seq < start.value if descending else seq > start.value)
        return (
            select(self.table)
            .where(*where)
            .order_by(seq.desc() if descending else seq.asc())
            .limit(limit)
        )
