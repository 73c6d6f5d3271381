"""Tags: a workspace's tags, the link tables that put them on leads and clients, and the
filter conditions on owners and tags that leads and clients share."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Table,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from db import reads
from db.models import ClientTag, LeadTag, Membership, Tag
from db.models.fields import fold
from db.repositories.base import FILTER_PARAM, Bound, Repository
from db.types import utcnow

tags: Any = Tag.__table__  # type: ignore[attr-defined]
memberships: Any = Membership.__table__  # type: ignore[attr-defined]


class TagRepository(Repository):
    """A workspace's tags."""

    table = tags

    def derived(self, values: dict[str, Any]) -> dict[str, Any]:
        return {"name_key": fold(values.get("name"))}

    async def all(self) -> list[Any]:
        """Every tag, by name (case aside), then id."""
        stmt = select(self.table).where(self.scope).order_by(self.c.name_key, self.c.id)
        return await reads.all_rows(self.conn, stmt)

    async def name_taken(self, name: str, *, except_id: int | None = None) -> bool:
        cond = [self.c.name_key == fold(name)]
        if except_id is not None:
            cond.append(self.c.id != except_id)
        stmt = select(exists().where(*self.scoped(*cond)))
        return bool((await self.conn.execute(stmt)).scalar())

    async def existing(self, ids: Iterable[int]) -> set[int]:
        """Those of ``ids`` that are tags of the workspace, locked in share mode until the
        transaction ends (PostgreSQL): a concurrent deleteTag waits for the record's write,
        then takes the tag off it too."""
        wanted = list(set(ids))
        if not wanted:
            return set()
        stmt = select(self.c.id).where(*self.scoped(self.c.id.in_(wanted)))
        rows = (await self.conn.execute(stmt.with_for_update(read=True))).all()
        return {row[0] for row in rows}


async def is_member(conn: AsyncConnection, workspace_id: int, user_id: int) -> bool:
    """Whether the user is a member of the workspace; the membership is locked in share mode
    until the transaction ends (PostgreSQL), so a concurrent removeMember waits for the write
    that makes them an owner and then unassigns that record too."""
    stmt = select(memberships.c.user_id).where(
        memberships.c.workspace_id == workspace_id, memberships.c.user_id == user_id
    )
    return (await conn.execute(stmt.with_for_update(read=True))).first() is not None


@dataclass(frozen=True)
class TagLinks:
    """The link table of one record kind: which of its records carry which tags."""

    table: Table
    record_column: str  # "lead_id"

    @property
    def record(self) -> Any:
        return self.table.c[self.record_column]

    async def tags_of(
        self, conn: AsyncConnection, workspace_id: int, record_ids: Sequence[int]
    ) -> list[Row[Any]]:
        """(record_id, the tag's columns...) for each tag of these records, by tag name."""
        stmt = (
            select(self.record.label("record_id"), tags)
            .join(tags, tags.c.id == self.table.c.tag_id)
            .where(
                self.table.c.workspace_id == workspace_id,
                self.record.in_(list(record_ids)),
            )
            .order_by(tags.c.name_key, tags.c.id)
        )
        return await reads.all_rows(conn, stmt)

    async def tag_ids(
        self, conn: AsyncConnection, workspace_id: int, record_ids: Sequence[int]
    ) -> dict[int, list[int]]:
        """Each record's tag ids, ascending (records without tags are left out)."""
        if not record_ids:
            return {}
        stmt = (
            select(self.record, self.table.c.tag_id)
            .where(self.table.c.workspace_id == workspace_id, self.record.in_(list(record_ids)))
            .order_by(self.record, self.table.c.tag_id)
        )
        out: dict[int, list[int]] = {}
        for record_id, tag_id in (await conn.execute(stmt)).all():
            out.setdefault(record_id, []).append(tag_id)
        return out

    async def replace(
        self, conn: AsyncConnection, workspace_id: int, record_id: int, tag_ids: Iterable[int]
    ) -> tuple[list[int], list[int]]:
        """Sets the record's tags to ``tag_ids``: (before, after), each ascending."""
        before = (await self.tag_ids(conn, workspace_id, [record_id])).get(record_id, [])
        after = sorted(set(tag_ids))
        gone = sorted(set(before) - set(after))
        new = sorted(set(after) - set(before))
        if gone:
            await conn.execute(
                delete(self.table).where(self.record == record_id, self.table.c.tag_id.in_(gone))
            )
        if new:
            rows = [
                {self.record_column: record_id, "tag_id": t, "workspace_id": workspace_id}
                for t in new
            ]
            await conn.execute(insert(self.table), rows)
        return before, after

    async def copy(
        self, conn: AsyncConnection, source: TagLinks, source_id: int, record_id: int
    ) -> list[int]:
        """Puts the tags of ``source``'s record on this kind's new record (one without tags
        yet), in one statement: their ids, ascending."""
        tagged = select(
            literal(record_id, Integer), source.table.c.tag_id, source.table.c.workspace_id
        ).where(source.record == source_id)
        stmt = (
            insert(self.table)
            .from_select([self.record_column, "tag_id", "workspace_id"], tagged)
            .returning(self.table.c.tag_id)
        )
        return sorted(row[0] for row in (await conn.execute(stmt)).all())

    async def untag(self, conn: AsyncConnection, tag_id: int) -> list[int]:
        """Takes the tag off every record: the records it was on."""
        stmt = delete(self.table).where(self.table.c.tag_id == tag_id).returning(self.record)
        return sorted(row[0] for row in (await conn.execute(stmt)).all())


LEAD_TAGS = TagLinks(LeadTag.__table__, "lead_id")  # type: ignore[attr-defined]
CLIENT_TAGS = TagLinks(ClientTag.__table__, "client_id")  # type: ignore[attr-defined]


async def unassign(
    conn: AsyncConnection, table: Table, workspace_id: int, user_id: int
) -> list[Row[Any]]:
    """Sets owner_id to null on the workspace's rows that ``user_id`` owns: those rows."""
    stmt = (
        update(table)
        .where(table.c.workspace_id == workspace_id, table.c.owner_id == user_id)
        .values(owner_id=None, updated_at=utcnow())
        .returning(table)
    )
    return list((await conn.execute(stmt)).all())


def owner_bounds(links: TagLinks) -> tuple[Bound, ...]:
    """The ``ownerId``, ``unassigned`` and ``tags: {any, all, none}`` conditions of a record
    filter whose tags are in ``links``. The ``ix_*_ws_owner`` index serves the first two; the
    link table's (tag, record) index the ``any`` and ``all`` subqueries, and its primary key
    (record, tag) the ``none`` one, per record."""
    link = links.table
    record = links.record

    def any_of(c: Any, v: Any) -> ColumnElement[bool]:
        return c.id.in_(select(record).where(link.c.tag_id.in_(v)))  # type: ignore[no-any-return]

    def all_of(c: Any, _: Any) -> ColumnElement[bool]:
        given: Any = bindparam(FILTER_PARAM + "tags_all", expanding=True)
        how_many: Any = bindparam(FILTER_PARAM + "tags_all_count")
        having = (
            select(record)
            .where(link.c.tag_id.in_(given))
            .group_by(record)
            .having(func.count() == how_many)
        )
        return c.id.in_(having)  # type: ignore[no-any-return]

    def none_of(c: Any, v: Any) -> ColumnElement[bool]:
        return ~exists().where(record == c.id, link.c.tag_id.in_(v))

    return (
        Bound("owner_id", lambda c, v: c.owner_id == v),
        Bound(
            "unassigned",
            lambda c, yes: c.owner_id.is_(None) if yes else c.owner_id.is_not(None),
            constant=True,
        ),
        Bound("tags_any", any_of, list, expanding=True),
        Bound(
            "tags_all",
            all_of,
            params=lambda ids: {"tags_all": list(ids), "tags_all_count": len(ids)},
        ),
        Bound("tags_none", none_of, list, expanding=True),
    )
