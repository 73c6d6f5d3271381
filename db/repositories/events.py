"""The change-event log: appending a write's events, and reading the log in order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Row,
    Select,
    String,
    Table,
    bindparam,
    cast,
    func,
    insert,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from db import changes, reads
from db.models import Event, EventCounter, EventType
from db.repositories.base import FilterSpec, Keyset, Repository
from db.types import utcnow

_counters: Any = EventCounter.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, kw_only=True)
class EventFilterSpec(FilterSpec):
    """A validated EventFilter; every condition given must hold. ``record``: (type, pk). The
    shared fields (search, createdAt) are not used: events have occurredAt."""

    types: Sequence[EventType] | None = None
    record: tuple[str, int] | None = None
    occurred_gte: datetime | None = None
    occurred_lt: datetime | None = None


@cache
def _take_seqs(dialect: str) -> Any:
    """Adds ``:n`` to the workspace's counter (a first event creates it), RETURNING the last
    seq taken. The row stays locked until the transaction ends. On PostgreSQL the same
    statement sends the log's NOTIFY (db/changes.py), which goes out when the write commits."""
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert_(_counters).values(
        workspace_id=bindparam("ws"), last_seq=bindparam("n", type_=BigInteger)
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[_counters.c.workspace_id],
        set_={"last_seq": _counters.c.last_seq + stmt.excluded.last_seq},
    )
    if dialect != "postgresql":
        return stmt.returning(_counters.c.last_seq)
    taken = stmt.returning(_counters.c.last_seq, _counters.c.workspace_id).cte("taken")
    payload = cast(taken.c.workspace_id, String) + ":" + cast(taken.c.last_seq, String)
    return select(taken.c.last_seq, func.pg_notify(changes.CHANNEL, payload))


@cache
def _insert(table: Table) -> Any:
    return insert(table)


class EventRepository(Repository):
    table = Event.__table__  # type: ignore[attr-defined]

    async def append(self, events: Sequence[dict[str, Any]]) -> int | None:
        """Appends ``events`` (in order) to the workspace's log: each gets the next seq and the
        time it is written; returns the last seq (None for no events). Meant to run last in
        its transaction: from here until it commits, every other write in the workspace waits
        for it (so seq order is commit order)."""
        if not events:
            return None
        taken = await self.conn.execute(
            _take_seqs(self.conn.dialect.name), {"ws": self.workspace_id, "n": len(events)}
        )
        last = int(taken.scalar_one())
        # After the counter: a later seq never gets an earlier time (on one clock).
        now = utcnow()
        first = last - len(events) + 1
        rows = [
            {**e, "workspace_id": self.workspace_id, "seq": first + n, "occurred_at": now}
            for n, e in enumerate(events)
        ]
        # One statement (an executemany for several), built once per table.
        await self.conn.execute(_insert(self.table), rows if len(rows) > 1 else rows[0])
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
