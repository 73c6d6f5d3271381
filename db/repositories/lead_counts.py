"""Pipeline counts: aggregates over every lead a LeadFilter matches (``LeadConnection.aggregate``).

Each count is one statement. Under no filter, or a filter of the tallies' dimensions only
(status, sources, state, ownerId, unassigned), it reads the tallies (db/models/tallies.py,
kept exact by the database on every write: migration 0015): a workspace's tally rows, not its
leads. Under any other filter, it runs over the same conditions as the connection's
``totalCount`` (``Repository.conditions``), grouped on an indexed column where one exists, so
that SQLite answers it from the index alone: status (ix_leads_ws_status), source_key
(ix_leads_ws_source), state_key (ix_leads_ws_state), owner_id (ix_leads_ws_owner), created_at
(ix_leads_ws_created).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import ColumnElement, Integer, String, case, cast, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from db import reads
from db.models import LeadDayTally, LeadStatus, LeadTally, LeadTallyTotal, User
from db.models.keys import region_key
from db.models.tallies import CONVERTED, CREATED
from db.repositories.base import folded_all, values_of
from db.repositories.hints import Selective
from db.repositories.leads import LeadFilterSpec, LeadRepository

users: Any = User.__table__  # type: ignore[attr-defined]
tallies: Any = LeadTally.__table__  # type: ignore[attr-defined]
day_tallies: Any = LeadDayTally.__table__  # type: ignore[attr-defined]
totals: Any = LeadTallyTotal.__table__  # type: ignore[attr-defined]

# The LeadFilter fields the tallies can answer: a filter of these alone (or none) is counted
# from them; any other condition (search, tags, score, dates, city, ...) from the leads.
TALLIED = frozenset({"statuses", "sources", "state", "owner_id", "unassigned"})
# Which day tally a per-day count of this column reads.
DAY_KINDS = {"created_at": CREATED, "converted_at": CONVERTED}


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


class least(FunctionElement[Any]):
    """The least of its arguments (none of them null): SQLite's min(a, b, ...),
    PostgreSQL's LEAST."""

    inherit_cache = True
    name = "least"


@compiles(least, "sqlite")
def _least_sqlite(element: least, compiler: Any, **kw: Any) -> str:
    return f"min({compiler.process(element.clauses, **kw)})"


@compiles(least)
def _least(element: least, compiler: Any, **kw: Any) -> str:
    return f"LEAST({compiler.process(element.clauses, **kw)})"


_NO_ID = 2**62  # past every id: a status without a lead of the group


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

    # ------------------------------------------------------------------ from the tallies

    def tallied(self, spec: LeadFilterSpec | None, table: Any) -> list[ColumnElement[bool]] | None:
        """The spec's conditions on a tally table (``tallies``, ``day_tallies``), or None when
        the spec has one the tallies cannot answer."""
        t = table.c
        where: list[ColumnElement[bool]] = [t.workspace_id == self.workspace_id]
        if spec is None:
            return where
        for field in fields(spec):
            value = getattr(spec, field.name)
            # An empty search is none (``Repository.conditions``).
            if field.name not in TALLIED and value is not None and value != "":
                return None
        if spec.statuses is not None:
            where.append(t.status.in_(values_of(spec.statuses)))
        if spec.sources is not None:
            where.append(t.source_key.in_(folded_all(spec.sources)))
        if spec.state is not None:
            where.append(t.state_key == region_key(spec.state))
        if spec.owner_id is not None:
            # owner_key 0 is unassigned, which no ownerId matches.
            where += [t.owner_key == spec.owner_id, t.owner_key != 0]
        if spec.unassigned is not None:
            where.append(t.owner_key == 0 if spec.unassigned else t.owner_key != 0)
        return where

    def cells(
        self, spec: LeadFilterSpec | None, dim: str
    ) -> tuple[Any, Any, Any, list[Any]] | None:
        """Where the tallies hold the counts by ``dim`` (status, source_key, state_key,
        owner_key) under ``spec``: (the group's column, its count, its score sum, the
        conditions), to be summed by group; None when the spec has a condition the tallies
        cannot answer. No filter: ``lead_tally_totals``, a row per group; a filter of the
        dimensions: ``lead_tallies``, a row per combination."""
        tallied = self.tallied(spec, tallies)
        if tallied is None:
            return None
        if len(tallied) > 1:
            return tallies.c[dim], tallies.c.n, tallies.c.score_sum, tallied
        t = totals.c
        name = {"status": "status", "source_key": "source", "state_key": "state"}.get(dim)
        key = t.key if name is not None else cast(t.key, Integer)
        where = [t.workspace_id == self.workspace_id, t.dim == (name or "owner")]
        return key, t.n, t.score_sum, where

    def _spelled(self, spec: LeadFilterSpec | None, key: str, group: Any) -> Any:
        """The spelling of a group (of ``key``, source_key or state_key) by the tallies: its
        oldest (lowest id) lead that the spec matches, found by walking an index whose
        entries for the group are in id order and stopping at the first lead that matches.
        source_key: ix_leads_ws_source (workspace, source_key, id). state_key:
        ix_leads_ws_state (workspace, state_key, status, id) once per status the spec allows
        (the lowest of those ids). The other conditions are ``Unindexed`` on SQLite, which
        would otherwise collect the filter's leads by their index and sort them."""
        c = self.c
        others: list[ColumnElement[bool]] = []
        statuses = [s.value for s in LeadStatus]
        if spec is not None:
            if spec.statuses is not None:
                statuses = values_of(spec.statuses)
                if key != "state_key":
                    others.append(Unindexed(c.status).in_(statuses))
            if spec.sources is not None:
                others.append(Unindexed(c.source_key).in_(folded_all(spec.sources)))
            if spec.state is not None:
                others.append(Unindexed(c.state_key) == region_key(spec.state))
            if spec.owner_id is not None:
                others.append(Unindexed(c.owner_id) == spec.owner_id)
            if spec.unassigned is not None:
                owner = Unindexed(c.owner_id)
                others.append(owner.is_(None) if spec.unassigned else owner.is_not(None))
        column = c[key.removesuffix("_key")]
        if key != "state_key":
            where = [self.scope, c[key] == group, *others]
            return select(column).where(*where).order_by(c.id).limit(1).scalar_subquery()
        firsts = [
            func.coalesce(
                select(c.id)
                .where(self.scope, c.state_key == group, c.status == status, *others)
                .order_by(c.id)
                .limit(1)
                # Nested twice: the group is the outermost statement's.
                .correlate_except(self.table)
                .scalar_subquery(),
                _NO_ID,
            )
            for status in statuses
        ]
        if not firsts:
            return literal(None)
        oldest = firsts[0] if len(firsts) == 1 else least(*firsts)
        return select(column).where(c.id == oldest).correlate_except(self.table).scalar_subquery()

    # ------------------------------------------------------------------ the counts

    async def count(self, spec: LeadFilterSpec | None) -> int:  # type: ignore[override]
        """How many leads match (the connection's totalCount)."""
        cells = self.cells(spec, "status")
        if cells is None:
            return await super().count(spec)
        _, n, _, where = cells
        stmt = select(func.coalesce(func.sum(n), 0)).where(*where)
        return int(await reads.scalar(self.conn, stmt))

    async def average_score(self, spec: LeadFilterSpec | None) -> float | None:
        cells = self.cells(spec, "status")
        if cells is not None:
            _, count, score_sum, where = cells
            stmt = select(func.sum(score_sum), func.sum(count)).where(*where)
            total, n = (await reads.all_rows(self.conn, stmt))[0]
            return None if not n else int(total) / int(n)
        where, params = self._where(spec)
        stmt = select(func.avg(self.c.score)).where(*where)
        value = await reads.scalar(self.conn, stmt, params)
        return None if value is None else float(value)

    async def by_status(self, spec: LeadFilterSpec | None) -> dict[LeadStatus, int]:
        """Every status (enum order) and its count, zeros included."""
        cells = self.cells(spec, "status")
        if cells is not None:
            status, n, _, where = cells
            stmt = select(status, func.sum(n)).where(*where).group_by(status)
            rows = await reads.all_rows(self.conn, stmt)
        else:
            where, params = self._where(spec)
            stmt = select(self.c.status, func.count()).where(*where).group_by(self.c.status)
            rows = await reads.all_rows(self.conn, stmt, params)
        found = {status: int(n) for status, n in rows}
        return {s: found.get(s.value, 0) for s in LeadStatus}

    async def by_text(self, spec: LeadFilterSpec | None, key: str, first: int) -> list[ValueRow]:
        """The ``first`` largest groups of the case-folded ``key`` column (``source_key``,
        ``state_key``), ties by key, not set ('') last among its ties; each spelled as the
        oldest (lowest id) of its leads counted spells it."""
        cells = self.cells(spec, key)
        if cells is not None:
            return await self._by_text_tallied(spec, cells, key, first)
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

    async def _by_text_tallied(
        self, spec: LeadFilterSpec | None, cells: tuple[Any, ...], key: str, first: int
    ) -> list[ValueRow]:
        column, n, _, where = cells
        count = func.sum(n).label("n")
        groups = (
            select(column.label("k"), count)
            .where(*where)
            .group_by(column)
            .having(count > 0)
            .order_by(count.desc(), case((column == "", 1), else_=0), column)
            .limit(first)
            .subquery("groups")
        )
        # Not set ('') has no spelling to look up.
        spelling = case(
            (groups.c.k == "", literal(None)), else_=self._spelled(spec, key, groups.c.k)
        )
        stmt = select(groups.c.k, groups.c.n, spelling).order_by(
            groups.c.n.desc(), case((groups.c.k == "", 1), else_=0), groups.c.k
        )
        rows = await reads.all_rows(self.conn, stmt)
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
        cells = self.cells(spec, "owner_key")
        params: dict[str, Any] | None = None
        if cells is not None:
            # Grouped on owner_key itself (0: unassigned, which no user has): grouping on an
            # expression that makes 0 null cost SQLite 4 times as much.
            owner: Any
            owner, n, _, where = cells
            count = func.sum(n).label("n")
            found = select(owner.label("owner_id"), count).where(*where).having(count > 0)
            unassigned = case((owner == 0, 1), else_=0)
        else:
            where, params = self._where(spec)
            owner = self.c.owner_id if self._unfiltered(spec) else Unindexed(self.c.owner_id)
            count = func.count().label("n")
            found = select(owner.label("owner_id"), count).where(*where)
            unassigned = case((owner.is_(None), 1), else_=0)
        groups = (
            found.group_by(owner)
            .order_by(count.desc(), unassigned, owner)
            .limit(first)
            .subquery("groups")
        )
        g = groups.c.owner_id
        g_unassigned = case((g.is_(None) | (g == 0), 1), else_=0)
        stmt = (
            select(groups.c.n, users)
            .select_from(groups.outerjoin(users, users.c.id == g))
            .order_by(groups.c.n.desc(), g_unassigned, g)
        )
        rows = await reads.all_rows(self.conn, stmt, params)
        return [(row if row.id is not None else None, int(row.n)) for row in rows]

    async def per_day(
        self, spec: LeadFilterSpec | None, column: str, start: datetime, end: datetime
    ) -> dict[date, int]:
        """Per UTC day of ``column`` (created_at, converted_at) in [start, end): the count of
        the days that have any."""
        tallied = self.tallied(spec, day_tallies)
        if tallied is not None and _midnight(start) and _midnight(end):
            if len(tallied) > 1:
                d = day_tallies.c
                # Grouped on +day on SQLite: grouped on day it read the window's every cell by
                # the primary key (workspace, kind, day, ...), which gives them in day order,
                # rather than seek a state's (and statuses') by ix_lead_day_tallies_state.
                day, n = Unindexed(d.day), func.sum(d.n)
                where = [*tallied, d.kind == DAY_KINDS[column]]
                when = d.day
            else:  # no filter: a row per day
                t = totals.c
                day, n = t.key, func.sum(t.n)
                where = [t.workspace_id == self.workspace_id, t.dim == DAY_KINDS[column]]
                when = t.key
            stmt = (
                select(day, n)
                .where(*where, when >= _day(start), when < _day(end))
                .group_by(day)
                .having(n > 0)
            )
            rows = await reads.all_rows(self.conn, stmt)
        else:
            where, params = self._where(spec)
            col = self.c[column]
            of_day = utc_day(col)
            stmt = (
                select(of_day.label("day"), func.count())
                # Selective: a window of days is a sliver of a workspace's leads, and its index
                # (ix_leads_ws_created, ix_leads_ws_converted_at) finds them, whatever the
                # filter.
                .where(*where, Selective(col >= start), col < end)
                .group_by(of_day)
            )
            rows = await reads.all_rows(self.conn, stmt, params)
        return {date.fromisoformat(d): int(n) for d, n in rows}


def _midnight(at: datetime) -> bool:
    return at.astimezone(UTC).time() == time()


def _day(at: datetime) -> str:
    """A UTC midnight as the day tallies spell its day."""
    return at.astimezone(UTC).date().isoformat()
