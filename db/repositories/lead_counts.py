"""Pipeline counts: aggregates over every lead a LeadFilter matches (``LeadConnection.aggregate``).

Each count is one statement over the same conditions as the connection's ``totalCount``
(``Repository.conditions``), grouped on an indexed column where one exists, so that SQLite
answers it from the index alone: status (ix_leads_ws_status), source_key (ix_leads_ws_source),
state_key (ix_leads_ws_state), owner_id (ix_leads_ws_owner), created_at (ix_leads_ws_created).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, String, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from db import reads
from db.models import LeadStatus, User
from db.repositories.hints import Selective
from db.repositories.leads import LeadFilterSpec, LeadRepository

users: Any = User.__table__  # type: ignore[attr-defined]


class utc_day(FunctionElement[str]):
    """The UTC calendar day of a timestamp column, as 'YYYY-MM-DD' text."""

    type = String()
    inherit_cache = True
    name = "utc_day"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: Any, **kw: Any) -> str:
    # Stored as naive UTC text, 'YYYY-MM-DD HH:MM:SS...' (db/types.py): its first ten
    # characters are the day, and an index on the column still serves the range.
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 10)"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"to_char(({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


class Unindexed(ColumnElement[Any]):
    """A column that SQLite must not read in an index's order (``+column``): grouped under a
    filter, without statistics its planner walks the grouped column's index over the whole
    workspace (in group order, no sort) rather than the filter's index over the few rows it
    finds, 10-100 times slower. Elsewhere, the column itself."""

    __visit_name__ = "leadgraph_unindexed"
    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012  (SQLAlchemy reads it from the class)
        ("column", InternalTraversal.dp_clauseelement)
    ]

    def __init__(self, column: Any) -> None:
        self.column = column
        self.type = column.type


@compiles(Unindexed)
def _compile_unindexed(element: Unindexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column, **kw))


@compiles(Unindexed, "sqlite")
def _compile_unindexed_sqlite(element: Unindexed, compiler: Any, **kw: Any) -> str:
    return f"+{compiler.process(element.column, **kw)}"


@dataclass(frozen=True)
class ValueRow:
    """A group of a text column: its key ('' for not set), a spelling of it, its count."""

    key: str
    value: str | None
    count: int


class LeadCounts(LeadRepository):
    """Counts over the leads of the workspace that match a spec."""

    def _where(
        self, spec: LeadFilterSpec | None
    ) -> tuple[list[ColumnElement[bool]], dict[str, Any]]:
        conditions, params = self.conditions(spec or LeadFilterSpec())
        return [self.scope, *conditions], params

    async def average_score(self, spec: LeadFilterSpec | None) -> float | None:
        where, params = self._where(spec)
        stmt = select(func.avg(self.c.score)).where(*where)
        value = await reads.scalar(self.conn, stmt, params)
        return None if value is None else float(value)

    async def by_status(self, spec: LeadFilterSpec | None) -> dict[LeadStatus, int]:
        """Every status (enum order) and its count, zeros included."""
        where, params = self._where(spec)
        stmt = select(self.c.status, func.count()).where(*where).group_by(self.c.status)
        found = {status: int(n) for status, n in await reads.all_rows(self.conn, stmt, params)}
        return {s: found.get(s.value, 0) for s in LeadStatus}

    async def by_text(self, spec: LeadFilterSpec | None, key: str, first: int) -> list[ValueRow]:
        """The ``first`` largest groups of the case-folded ``key`` column (``source_key``,
        ``state_key``), ties by key, not set ('') last among its ties; each spelled as the
        oldest (lowest id) of its leads counted spells it."""
        where, params = self._where(spec)
        column = self.c[key]
        grouped = column if self._unfiltered(spec) else Unindexed(column)
        count = func.count().label("n")
        groups = (
            select(grouped.label("k"), count, func.min(self.c.id).label("oldest"))
            .where(*where)
            .group_by(grouped)
            .order_by(count.desc(), case((grouped == "", 1), else_=0), grouped)
            .limit(first)
            .subquery("groups")
        )
        # The id is in every index (SQLite's rowid): the groups come from the index alone,
        # and each group's spelling is one lookup by primary key.
        oldest = self.table.alias("oldest")
        stmt = (
            select(groups.c.k, groups.c.n, oldest.c[key.removesuffix("_key")])
            .select_from(groups.join(oldest, oldest.c.id == groups.c.oldest))
            .order_by(groups.c.n.desc(), case((groups.c.k == "", 1), else_=0), groups.c.k)
        )
        rows = await reads.all_rows(self.conn, stmt, params)
        return [
            ValueRow(key=k, value=(spelling if k != "" else None), count=int(n))
            for k, n, spelling in rows
        ]

    @staticmethod
    def _unfiltered(spec: LeadFilterSpec | None) -> bool:
        return spec is None or spec == LeadFilterSpec()

    async def by_owner(self, spec: LeadFilterSpec | None, first: int) -> list[tuple[Any, int]]:
        """The ``first`` largest groups by owner: (the owner's users row or None for
        unassigned, count), ties by owner id, unassigned last among its ties."""
        where, params = self._where(spec)
        owner = self.c.owner_id if self._unfiltered(spec) else Unindexed(self.c.owner_id)
        count = func.count().label("n")
        unassigned = case((owner.is_(None), 1), else_=0)
        groups = (
            select(owner.label("owner_id"), count)
            .where(*where)
            .group_by(owner)
            .order_by(count.desc(), unassigned, owner)
            .limit(first)
            .subquery("groups")
        )
        g_unassigned = case((groups.c.owner_id.is_(None), 1), else_=0)
        stmt = (
            select(groups.c.n, users)
            .select_from(groups.outerjoin(users, users.c.id == groups.c.owner_id))
            .order_by(groups.c.n.desc(), g_unassigned, groups.c.owner_id)
        )
        rows = await reads.all_rows(self.conn, stmt, params)
        return [(row if row.id is not None else None, int(row.n)) for row in rows]

    async def per_day(
        self, spec: LeadFilterSpec | None, column: str, start: datetime, end: datetime
    ) -> dict[date, int]:
        """Per UTC day of ``column`` (created_at, converted_at) in [start, end): the count of
        the days that have any."""
        where, params = self._where(spec)
        col = self.c[column]
        day = utc_day(col)
        stmt = (
            select(day.label("day"), func.count())
            # Selective: a window of days is a sliver of a workspace's leads, and its index
            # (ix_leads_ws_created, ix_leads_ws_converted_at) finds them, whatever the filter.
            .where(*where, Selective(col >= start), col < end)
            .group_by(day)
        )
        rows = await reads.all_rows(self.conn, stmt, params)
        return {date.fromisoformat(d): int(n) for d, n in rows}
