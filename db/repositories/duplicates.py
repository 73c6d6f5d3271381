"""Duplicate leads and merges: candidates found by the matching keys' indexes, never a scan of
the workspace's leads, and the statements of a merge (locks, lead_merges, external IDs)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Row,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    union_all,
    update,
)

from db import reads
from db.models import Lead
from db.models.intake import LeadExternalId, LeadMerge
from db.repositories.base import SCOPE_PARAM, Repository

# The keys a duplicate is matched by, in the order reasons are told.
MATCH_COLUMNS = ("email_key", "phone_key", "company_key", "name_key")
# SQLite refuses a compound SELECT of more than 500 parts (SQLITE_MAX_COMPOUND_SELECT).
_PARTS_PER_STATEMENT = 100


class DuplicateRepository(Repository):
    """Leads sharing a matching key with others, read as their keys only."""

    table = Lead.__table__  # type: ignore[attr-defined]

    def _keys(self) -> list[Any]:
        return [self.c.id, *(self.c[name] for name in MATCH_COLUMNS)]

    async def sharing(self, wanted: Iterable[tuple[str, str]], limit: int) -> list[Row[Any]]:
        """The keys of the leads holding each (column, key) of ``wanted``, at most ``limit``
        per key (lowest ids first): one index range per key, UNION ALL'd."""
        parts = []
        for column, key in wanted:
            part = (
                select(*self._keys())
                .where(*self.scoped(self.c[column] == key))
                .order_by(self.c.id)
                .limit(limit)
                .subquery()
            )
            parts.append(select(part))
        rows: list[Row[Any]] = []
        for start in range(0, len(parts), _PARTS_PER_STATEMENT):
            chunk = parts[start : start + _PARTS_PER_STATEMENT]
            stmt = chunk[0] if len(chunk) == 1 else union_all(*chunk)
            rows += await reads.all_rows(self.conn, stmt)
        return rows

    async def shared(self, column: str, limit: int) -> list[Row[Any]]:
        """The first ``limit`` non-empty values of ``column`` that more than one lead holds,
        in order, each with how many hold it (``key``, ``n``): the index read through once.
        (Their leads are read by ``holding`` or ``sharing``: PostgreSQL's planner merged a
        join of the two by walking every lead in the index's order, 4 s at 1M leads.)"""
        key = self.c[column]
        stmt = (
            select(key.label("key"), func.count().label("n"))
            .where(*self.scoped(key != ""))
            .group_by(key)
            .having(func.count() > 1)
            .order_by(key)
            .limit(limit)
        )
        return await reads.all_rows(self.conn, stmt)

    async def holding(self, column: str, keys: Sequence[str]) -> list[Row[Any]]:
        """The keys of every lead whose ``column`` is one of ``keys`` (a statement built once
        per column: the keys are one expanding parameter)."""
        params = {SCOPE_PARAM: self.workspace_id, "keys": list(keys)}
        return await reads.all_rows(self.conn, _holding(self.table, column), params)


@cache
def _holding(table: Table, column: str) -> reads.Reusable:
    key = table.c[column]
    stmt = select(table.c.id, *(table.c[name] for name in MATCH_COLUMNS)).where(
        table.c.workspace_id == bindparam(SCOPE_PARAM), key.in_(bindparam("keys", expanding=True))
    )
    return reads.Reusable(stmt)


class MergeRepository(Repository):
    """A merge's statements, inside its write: the leads locked, the merged ones' IDs pointed
    at the survivor, their external IDs moved, the merged leads deleted."""

    table = Lead.__table__  # type: ignore[attr-defined]
    merges = LeadMerge.__table__  # type: ignore[attr-defined]
    external = LeadExternalId.__table__  # type: ignore[attr-defined]

    async def lock(self, ids: Sequence[int]) -> list[Row[Any]]:
        """The leads with these ids in the workspace, locked in id order (two merges of the
        same leads take their locks in one order: no deadlock)."""
        stmt = (
            select(self.table)
            .where(*self.scoped(self.c.id.in_(list(ids))))
            .order_by(self.c.id)
            .with_for_update()
        )
        return list((await self.conn.execute(stmt)).all())

    async def drop_external_ids(self, merged_ids: Sequence[int]) -> None:
        """Deletes the merged leads' external-ID lookup rows (the survivor's update writes the
        united ones, Repository.update)."""
        e = self.external.c
        await self.conn.execute(
            delete(self.external).where(
                e.workspace_id == self.workspace_id, e.lead_id.in_(list(merged_ids))
            )
        )

    async def fold(self, survivor_id: int, merged_ids: Sequence[int], at: datetime) -> None:
        """Records the merged leads' ids as the survivor's (those merged into them before as
        well), then deletes the merged leads."""
        m = self.merges.c
        ids = list(merged_ids)
        # A mapping of one of these ids left from before is stale: SQLite hands a deleted
        # lead's id out again when it was the highest, and these leads hold those ids now.
        # By id alone: leads' ids are unique across workspaces, and the row is in the way.
        await self.conn.execute(delete(self.merges).where(m.merged_id.in_(ids)))
        await self.conn.execute(
            update(self.merges)
            .where(m.workspace_id == self.workspace_id, m.survivor_id.in_(ids))
            .values(survivor_id=survivor_id)
        )
        await self.conn.execute(
            insert(self.merges),
            [
                {
                    "merged_id": i,
                    "workspace_id": self.workspace_id,
                    "survivor_id": survivor_id,
                    "merged_at": at,
                }
                for i in ids
            ],
        )
        await self.conn.execute(delete(self.table).where(*self.scoped(self.c.id.in_(ids))))

    async def survivors(self, merged_ids: Sequence[int]) -> list[Row[Any]]:
        """The leads that these ids were merged into: each row holds the lead's columns and
        ``merged_id``, the id asked for."""
        m = self.merges.c
        stmt = (
            select(self.table, m.merged_id)
            .join(self.merges, m.survivor_id == self.c.id)
            .where(
                *self.scoped(m.workspace_id == self.workspace_id, m.merged_id.in_(list(merged_ids)))
            )
        )
        return await reads.all_rows(self.conn, stmt, inline=True)
