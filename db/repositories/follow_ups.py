"""Follow-ups: a workspace's list (by due time or creation, keyset-paged), the follow-ups of
a page of leads or clients in one statement, the leads filter on a due window, and the
statements of unassigning a member and of claiming due reminders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Row,
    bindparam,
    exists,
    func,
    literal,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from db import reads
from db.models import FollowUp, FollowUpStatus, User
from db.repositories.base import FILTER_PARAM, Bound, FilterSpec, Keyset, Repository, values_of
from db.types import utcnow

follow_ups: Any = FollowUp.__table__  # type: ignore[attr-defined]
users: Any = User.__table__  # type: ignore[attr-defined]

# Whose follow-ups: a lead's (``lead_id``) or a client's (``client_id``).
Subject = Literal["lead_id", "client_id"]
# Subjects per statement: SQLite allows at most 500 SELECTs in one compound statement.
_BRANCHES = 200
_OPEN = FollowUpStatus.OPEN.value


@dataclass(frozen=True, kw_only=True)
class FollowUpFilterSpec(FilterSpec):
    """A validated FollowUpFilter; every condition given must hold."""

    statuses: tuple[FollowUpStatus, ...] | None = None
    assignee_id: int | None = None
    mine_id: int | None = None  # the caller's user id (0 for an API key: none)
    due_gte: datetime | None = None
    due_lt: datetime | None = None
    open_only: bool | None = None  # OVERDUE: OPEN whatever the status filter says
    lead_id: int | None = None
    client_id: int | None = None


class FollowUpRepository(Repository):
    table = follow_ups

    bound = (
        *Repository.bound,
        Bound("statuses", lambda c, v: c.status.in_(v), values_of, expanding=True),
        Bound(
            "open_only",
            lambda c, yes: c.status == _OPEN if yes else c.id.is_not(None),
            constant=True,
        ),
        Bound("assignee_id", lambda c, v: c.assignee_user_id == v),
        Bound("mine_id", lambda c, v: c.assignee_user_id == v),
        Bound("lead_id", lambda c, v: c.lead_id == v),
        Bound("client_id", lambda c, v: c.client_id == v),
        Bound("due_gte", lambda c, v: c.due_at >= v),
        Bound("due_lt", lambda c, v: c.due_at < v),
    )

    async def subject_pages(
        self,
        subject: Subject,
        subject_ids: Sequence[int],
        spec: FollowUpFilterSpec,
        start: Keyset | None,
        limit: int,
    ) -> list[Row[Any]]:
        """Up to ``limit`` follow-ups of each subject matching ``spec``, due first, strictly
        past ``start`` (due_at, id): one statement per 200 subjects, each branch a walk of the
        subject's index that stops at ``limit``."""
        conditions, params = self.conditions(spec)
        out: list[Row[Any]] = []
        for at in range(0, len(subject_ids), _BRANCHES):
            branches = [
                select(self._page_of(subject, pk, conditions, start, limit).subquery())
                for pk in subject_ids[at : at + _BRANCHES]
            ]
            stmt = branches[0] if len(branches) == 1 else union_all(*branches)
            out += await reads.all_rows(self.conn, stmt, params)
        return out

    def _page_of(
        self,
        subject: Subject,
        subject_id: int,
        conditions: list[ColumnElement[bool]],
        start: Keyset | None,
        limit: int,
    ) -> Any:
        c = self.c
        where = [self.scope, c[subject] == subject_id, *conditions]
        if start is not None:
            past = tuple_(literal(start.value, c.due_at.type), literal(start.id, c.id.type))
            where.append(tuple_(c.due_at, c.id) > past)
        return select(follow_ups).where(*where).order_by(c.due_at, c.id).limit(limit)

    async def subject_counts(
        self, subject: Subject, subject_ids: Sequence[int], spec: FollowUpFilterSpec
    ) -> dict[int, int]:
        """How many follow-ups matching ``spec`` each subject has (absent: none)."""
        conditions, params = self.conditions(spec)
        column = self.c[subject]
        stmt = (
            select(column, func.count())
            .where(self.scope, column.in_(list(subject_ids)), *conditions)
            .group_by(column)
        )
        rows = await reads.all_rows(self.conn, stmt, params)
        return {row[0]: int(row[1]) for row in rows}

    async def unassign(self, user_id: int) -> list[Row[Any]]:
        """The member's OPEN follow-ups lose their assignee: those rows, as they are now."""
        stmt = (
            update(follow_ups)
            .where(
                self.scope,
                follow_ups.c.assignee_user_id == user_id,
                follow_ups.c.status == _OPEN,
            )
            .values(assignee_user_id=None, updated_at=utcnow())
            .returning(follow_ups)
        )
        return list((await self.conn.execute(stmt)).all())

    async def move_to_lead(self, lead_ids: Sequence[int], survivor_id: int) -> list[Row[Any]]:
        """The follow-ups of leads merged into the survivor become its own, before those
        leads are deleted: (id, the lead it was on) of each one moved."""
        c = self.c
        moved = list(
            (
                await self.conn.execute(
                    select(c.id, c.lead_id)
                    .where(self.scope, c.lead_id.in_(list(lead_ids)))
                    .order_by(c.id)
                )
            ).all()
        )
        if moved:
            await self.conn.execute(
                update(follow_ups)
                .where(self.scope, c.lead_id.in_(list(lead_ids)))
                .values(lead_id=survivor_id, updated_at=utcnow())
            )
        return moved


def follow_up_due_bound(record_column: Subject) -> Bound:
    """The ``followUpDue: DueWindow`` filter of leads (or clients): the record has an OPEN
    follow-up due in [gte, lt); an EXISTS per record, served by ``ix_follow_ups_lead``."""

    def condition(c: Any, _: Any) -> ColumnElement[bool]:
        return exists().where(
            follow_ups.c.workspace_id == c.workspace_id,
            follow_ups.c[record_column] == c.id,
            follow_ups.c.status == _OPEN,
            follow_ups.c.due_at >= bindparam(FILTER_PARAM + "follow_up_due_gte"),
            follow_ups.c.due_at < bindparam(FILTER_PARAM + "follow_up_due_lt"),
        )

    return Bound(
        "follow_up_due",
        condition,
        params=lambda window: {"follow_up_due_gte": window[0], "follow_up_due_lt": window[1]},
    )


class ReminderQueue:
    """The reminder scheduler's statements, across every workspace: OPEN follow-ups due by
    now whose assignee has not been reminded yet."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def claim(self, now: datetime, limit: int) -> list[tuple[Row[Any], str | None]]:
        """Marks up to ``limit`` due reminders as sent (``reminded_at = now``) and returns
        them with their assignee's email. One conditional UPDATE: a follow-up already claimed
        (``reminded_at`` set) is not claimed again, so once committed no other process (nor
        a restart) sends it; PostgreSQL's SKIP LOCKED lets concurrent claimers pass over each
        other's rows instead of waiting for them (SQLite's writer serialises the claims)."""
        c = follow_ups.c
        due = (
            select(c.id)
            .where(
                c.status == _OPEN,
                c.reminded_at.is_(None),
                c.due_at <= now,
                c.assignee_user_id.is_not(None),
            )
            .order_by(c.due_at, c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            update(follow_ups)
            .where(c.id.in_(due.scalar_subquery()), c.reminded_at.is_(None), c.status == _OPEN)
            .values(reminded_at=now)
            .returning(
                *(c.id, c.workspace_id, c.title, c.notes, c.due_at, c.assignee_user_id),
                *(c.lead_id, c.client_id),
            )
        )
        claimed = list((await self.conn.execute(stmt)).all())
        if not claimed:
            return []
        ids = {row.assignee_user_id for row in claimed}
        found = await self.conn.execute(
            select(users.c.id, users.c.email).where(users.c.id.in_(ids))
        )
        emails = {row.id: row.email for row in found}
        return [(row, emails.get(row.assignee_user_id)) for row in claimed]

    async def release(self, follow_up_id: int, claimed_at: datetime) -> None:
        """A reminder that could not be sent is due again (unless changed meanwhile)."""
        c = follow_ups.c
        await self.conn.execute(
            update(follow_ups)
            .where(c.id == follow_up_id, c.reminded_at == claimed_at)
            .values(reminded_at=None)
        )
