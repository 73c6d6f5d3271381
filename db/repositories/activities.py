"""Activities: a workspace's notes, calls, emails and meetings, and the timelines of leads and
clients (newest first: by occurred_at, then id) read a page of subjects at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import Row, func, literal, select, tuple_, union_all, update

from db import reads
from db.models import Activity
from db.repositories.base import Keyset, Repository
from db.types import utcnow

activities: Any = Activity.__table__  # type: ignore[attr-defined]

# Which timeline: a lead's (``lead_id``) or a client's (``client_id``: its own activities and
# its converted leads').
Timeline = Literal["lead_id", "client_id"]
# Subjects per statement: SQLite allows at most 500 SELECTs in one compound statement.
_BRANCHES = 200


class ActivityRepository(Repository):
    table = activities

    async def insert(self, values: dict[str, Any]) -> Row[Any]:
        now = utcnow()
        row = {"created_at": now, "updated_at": now, "occurred_at": now, **values}
        row["workspace_id"] = self.workspace_id
        stmt = activities.insert().values(row).returning(activities)
        return (await self.conn.execute(stmt)).one()

    async def timelines(
        self, timeline: Timeline, subject_ids: Sequence[int], start: Keyset | None, limit: int
    ) -> list[Row[Any]]:
        """Up to ``limit`` activities of each subject, newest first, strictly past ``start``
        (occurred_at, id): one statement per 200 subjects, each branch a walk of the subject's
        index that stops at ``limit``."""
        out: list[Row[Any]] = []
        for at in range(0, len(subject_ids), _BRANCHES):
            branches = [
                select(self._timeline(timeline, subject_id, start, limit).subquery())
                for subject_id in subject_ids[at : at + _BRANCHES]
            ]
            stmt = branches[0] if len(branches) == 1 else union_all(*branches)
            out += await reads.all_rows(self.conn, stmt)
        return out

    def _timeline(
        self, timeline: Timeline, subject_id: int, start: Keyset | None, limit: int
    ) -> Any:
        c = self.c
        where = [self.scope, c[timeline] == subject_id]
        if start is not None:
            past = tuple_(literal(start.value, c.occurred_at.type), literal(start.id, c.id.type))
            where.append(tuple_(c.occurred_at, c.id) < past)
        return (
            select(activities)
            .where(*where)
            .order_by(c.occurred_at.desc(), c.id.desc())
            .limit(limit)
        )

    async def counts(self, timeline: Timeline, subject_ids: Sequence[int]) -> dict[int, int]:
        """How many activities each subject's timeline holds (absent: none)."""
        column = self.c[timeline]
        stmt = (
            select(column, func.count())
            .where(self.scope, column.in_(list(subject_ids)))
            .group_by(column)
        )
        return {row[0]: int(row[1]) for row in await reads.all_rows(self.conn, stmt)}

    async def join_client(self, lead_id: int, client_id: int) -> None:
        """The lead's activities show on the client's timeline too (convertLead)."""
        await self.conn.execute(
            update(activities)
            .where(self.scope, activities.c.lead_id == lead_id)
            .values(client_id=client_id)
        )

    async def move_to_lead(self, lead_ids: Sequence[int], survivor: Row[Any]) -> None:
        """The activities of leads merged into ``survivor`` become its own (and its client's,
        when it was converted), before those leads are deleted."""
        await self.conn.execute(
            update(activities)
            .where(self.scope, activities.c.lead_id.in_(list(lead_ids)))
            .values(lead_id=survivor.id, client_id=survivor.converted_client_id)
        )
