"""Queries on tickets, their comments and their numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, bindparam, exists, func, insert, select, text, tuple_, update

from db import reads
from db.models import Membership, Ticket, TicketComment, TicketPriority, TicketStatus
from db.models.fields import search_key
from db.models.tickets import OPEN_STATUSES, PRIORITY_RANK
from db.repositories.base import (
    KEYSET_ID,
    KEYSET_VALUE,
    Bound,
    FilterSpec,
    Keyset,
    Repository,
    values_of,
)
from db.types import utcnow

tickets: Any = Ticket.__table__  # type: ignore[attr-defined]
comments: Any = TicketComment.__table__  # type: ignore[attr-defined]
_memberships: Any = Membership.__table__  # type: ignore[attr-defined]

# The workspace's next number: its counter row, created by the first ticket. The upsert holds
# the row's lock until the transaction ends (PostgreSQL), so concurrent creators take turns
# and see each other's numbers; SQLite's writers take turns anyway. RETURNING: both engines.
_NEXT_NUMBER = text(
    "INSERT INTO ticket_counters (workspace_id, last_number) VALUES (:ws, 1) "
    "ON CONFLICT (workspace_id) DO UPDATE SET last_number = ticket_counters.last_number + 1 "
    "RETURNING last_number"
)


@dataclass(frozen=True, kw_only=True)
class TicketFilterSpec(FilterSpec):
    """A validated TicketFilter; every condition given must hold. Hashable (tuples), so a
    client's tickets can be a DataLoader key."""

    statuses: tuple[TicketStatus, ...] | None = None
    priorities: tuple[TicketPriority, ...] | None = None
    assignee_id: int | None = None
    client_id: int | None = None


def open_ticket_exists(client: Any) -> Any:
    """The client (``client``: its table's columns) has an OPEN or PENDING ticket; an index
    (ix_tickets_ws_client_status) answers it."""
    return exists().where(
        tickets.c.workspace_id == client.workspace_id,
        tickets.c.client_id == client.id,
        tickets.c.status.in_(OPEN_STATUSES),
    )


class TicketRepository(Repository):
    table = tickets

    bound = (
        *Repository.bound,
        Bound("statuses", lambda c, v: c.status.in_(v), values_of, expanding=True),
        Bound("priorities", lambda c, v: c.priority.in_(v), values_of, expanding=True),
        Bound("assignee_id", lambda c, v: c.assignee_user_id == v),
        Bound("client_id", lambda c, v: c.client_id == v),
    )

    def derived(self, values: dict[str, Any]) -> dict[str, Any]:
        return {
            "search_key": search_key(values.get("subject"), values.get("description")),
            "priority_rank": PRIORITY_RANK[values["priority"]],
        }

    async def next_number(self) -> int:
        """The next ticket number of the workspace, taken in this transaction (given back if
        it rolls back: no gaps)."""
        row = (await self.conn.execute(_NEXT_NUMBER, {"ws": self.workspace_id})).one()
        return int(row[0])

    async def is_member(self, user_id: int) -> bool:
        """Whether the user is a member of the workspace."""
        stmt = select(
            exists().where(
                _memberships.c.workspace_id == self.workspace_id,
                _memberships.c.user_id == user_id,
            )
        )
        return bool((await self.conn.execute(stmt)).scalar())

    async def unassign(self, user_id: int) -> list[tuple[Row[Any], Row[Any]]]:
        """Unassigns the user's open (OPEN, PENDING) tickets of the workspace, as when the
        member is removed: each ticket before and after."""
        before = (
            select(tickets)
            .where(
                *self.scoped(self.c.assignee_user_id == user_id, self.c.status.in_(OPEN_STATUSES))
            )
            .order_by(self.c.id)
            .with_for_update()
        )
        rows = {r.id: r for r in (await self.conn.execute(before)).all()}
        if not rows:
            return []
        stmt = (
            update(tickets)
            .where(*self.scoped(self.c.id.in_(list(rows))))
            .values(assignee_user_id=None, updated_at=utcnow())
            .returning(tickets)
        )
        after = {r.id: r for r in (await self.conn.execute(stmt)).all()}
        return [(rows[i], after[i]) for i in sorted(rows)]

    async def for_clients(
        self,
        client_ids: Sequence[int],
        spec: TicketFilterSpec,
        start: Keyset | None,
        limit: int,
    ) -> list[Row[Any]]:
        """Up to ``limit`` tickets of each client matching ``spec``, newest first, past
        ``start``: one statement for a page of clients (a window per client)."""
        conditions, params = self.conditions(spec)
        c = self.c
        where = [self.scope, c.client_id.in_(list(client_ids)), *conditions]
        if start is not None:
            past = tuple_(
                bindparam(KEYSET_VALUE, type_=c.created_at.type),
                bindparam(KEYSET_ID, type_=c.id.type),
            )
            where.append(tuple_(c.created_at, c.id) < past)
            params |= {KEYSET_VALUE: start.value, KEYSET_ID: start.id}
        rank = (
            func.row_number()
            .over(partition_by=c.client_id, order_by=(c.created_at.desc(), c.id.desc()))
            .label("rank_in_client")
        )
        ranked = select(tickets, rank).where(*where).subquery()
        stmt = (
            select(*[ranked.c[col.key] for col in tickets.c])
            .where(ranked.c.rank_in_client <= limit)
            .order_by(ranked.c.client_id, ranked.c.created_at.desc(), ranked.c.id.desc())
        )
        return await reads.all_rows(self.conn, stmt, params)

    async def counts_for_clients(
        self, client_ids: Sequence[int], spec: TicketFilterSpec
    ) -> dict[int, int]:
        """How many tickets matching ``spec`` each client has (ix_tickets_ws_client)."""
        conditions, params = self.conditions(spec)
        c = self.c
        stmt = (
            select(c.client_id, func.count())
            .where(self.scope, c.client_id.in_(list(client_ids)), *conditions)
            .group_by(c.client_id)
        )
        return {r[0]: int(r[1]) for r in await reads.all_rows(self.conn, stmt, params)}


class CommentRepository(Repository):
    """Comments of the workspace's tickets, oldest (lowest id) first."""

    table = comments

    async def insert(self, values: dict[str, Any]) -> Row[Any]:
        row = {"created_at": utcnow(), **values, "workspace_id": self.workspace_id}
        return (await self.conn.execute(insert(comments).values(row).returning(comments))).one()

    async def set_body(self, id_: int, body: str) -> Row[Any]:
        """The comment with its new body."""
        stmt = (
            update(comments)
            .where(*self.scoped(comments.c.id == id_))
            .values(body=body)
            .returning(comments)
        )
        return (await self.conn.execute(stmt)).one()

    async def of_tickets(
        self, ticket_ids: Sequence[int], after_id: int | None, limit: int
    ) -> list[Row[Any]]:
        """Up to ``limit`` comments of each ticket past ``after_id``, oldest first: one
        statement for a page of tickets."""
        c = self.c
        where = self.scoped(c.ticket_id.in_(list(ticket_ids)))
        if after_id is not None:
            where.append(c.id > after_id)
        rank = func.row_number().over(partition_by=c.ticket_id, order_by=c.id).label("rank_in")
        ranked = select(comments, rank).where(*where).subquery()
        stmt = (
            select(*[ranked.c[col.key] for col in comments.c])
            .where(ranked.c.rank_in <= limit)
            .order_by(ranked.c.ticket_id, ranked.c.id)
        )
        return await reads.all_rows(self.conn, stmt)

    async def counts(self, ticket_ids: Sequence[int]) -> dict[int, int]:
        """How many comments each ticket has."""
        c = self.c
        stmt = (
            select(c.ticket_id, func.count())
            .where(*self.scoped(c.ticket_id.in_(list(ticket_ids))))
            .group_by(c.ticket_id)
        )
        return {r[0]: int(r[1]) for r in await reads.all_rows(self.conn, stmt)}


__all__ = [
    "CommentRepository",
    "TicketFilterSpec",
    "TicketRepository",
    "open_ticket_exists",
]
