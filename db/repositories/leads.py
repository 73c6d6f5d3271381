"""Queries on leads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Row, Table, Update, select, text, update

from db import reads
from db.models import Lead, LeadExternalId, LeadStatus
from db.models.fields import fold, person_keys
from db.models.keys import company_key, phone_key, region_key
from db.repositories.base import (
    Bound,
    FilterSpec,
    Repository,
    external_id_bound,
    folded_all,
    scoped_by_id,
    values_of,
)
from db.repositories.follow_ups import follow_up_due_bound
from db.repositories.hints import Selective
from db.repositories.tags import LEAD_TAGS, owner_bounds


@dataclass(frozen=True, kw_only=True)
class LeadFilterSpec(FilterSpec):
    """A validated LeadFilter; every condition given must hold."""

    statuses: Sequence[LeadStatus] | None = None
    sources: Sequence[str] | None = None
    city: str | None = None
    state: str | None = None
    email: str | None = None
    score_gte: int | None = None
    score_lte: int | None = None
    converted: bool | None = None
    external_id: tuple[str, str] | None = None  # (system, id)
    owner_id: int | None = None
    unassigned: bool | None = None
    tags_any: Sequence[int] | None = None
    tags_all: Sequence[int] | None = None
    tags_none: Sequence[int] | None = None
    follow_up_due: tuple[datetime, datetime] | None = None  # an OPEN follow-up due in [gte, lt)


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


@cache
def _mark_converted(table: Table) -> Update:
    """UPDATE of a lead in the workspace that is not converted yet, RETURNING it."""
    where = [*scoped_by_id(table), table.c.converted_at.is_(None)]
    return update(table).where(*where).returning(table)


_EXTERNAL = LeadExternalId.__table__  # type: ignore[attr-defined]


class LeadRepository(Repository):
    table = Lead.__table__  # type: ignore[attr-defined]
    external = (_EXTERNAL, "lead_id")

    def derived(self, values: dict[str, Any]) -> dict[str, Any]:
        return person_keys(values) | {
            "source_key": fold(values.get("source")),
            "phone_key": phone_key(values.get("phone")),
            "company_key": company_key(values.get("company")),
        }

    bound = (
        *Repository.bound,
        Bound("city", lambda c, v: c.city_key == v, fold),
        Bound("state", lambda c, v: c.state_key == v, region_key),
        Bound("statuses", lambda c, v: c.status.in_(v), values_of, expanding=True),
        Bound("sources", lambda c, v: c.source_key.in_(v), folded_all, expanding=True),
        Bound("email", lambda c, v: Selective(c.email_key == v), fold),
        Bound("score_gte", lambda c, v: c.score >= v),
        Bound("score_lte", lambda c, v: c.score <= v),
        Bound(
            "converted",
            lambda c, yes: c.converted_at.is_not(None) if yes else c.converted_at.is_(None),
            constant=True,
        ),
        external_id_bound(_EXTERNAL, "lead_id"),
        *owner_bounds(LEAD_TAGS),
        follow_up_due_bound("lead_id"),
    )

    async def lock_keys(self, keys: Sequence[str]) -> None:
        """Holds these matching keys of the workspace until the transaction ends, so that
        writers matching on the same key (upserts) take turns. PostgreSQL: transaction-level
        advisory locks, in a fixed order (no deadlock); SQLite's writes take turns already."""
        if self.conn.dialect.name != "postgresql":
            return
        for key in sorted(set(keys)):
            await self.conn.execute(_ADVISORY_LOCK, {"key": f"leads:{self.workspace_id}:{key}"})

    async def oldest_by_email(self, email: str) -> Row[Any] | None:
        """The workspace's first lead with this email (case aside), locked for update."""
        stmt = (
            select(self.table)
            .where(*self.scoped(self.c.email_key == fold(email)))
            .order_by(self.c.id)
            .limit(1)
            .with_for_update()
        )
        return (await self.conn.execute(stmt)).first()

    async def mark_converted(
        self, lead: Row[Any], client_id: int, at: datetime, actor: dict[str, int | None]
    ) -> Row[Any] | None:
        """Sets WON/convertedAt/convertedClient unless the lead was converted meanwhile."""
        values = {
            "status": LeadStatus.WON.value,
            "converted_at": at,
            "converted_client_id": client_id,
            "updated_at": at,
            **actor,
        }
        # SET takes the columns of ``values``; the statement is built once (see base.py).
        stmt = _mark_converted(self.table)
        return (await self.conn.execute(stmt, self.by_id(lead.id) | values)).first()

    async def converted_into(self, client_ids: Sequence[int]) -> list[Row[Any]]:
        """Leads converted into these clients, earliest conversion first."""
        stmt = (
            select(self.table)
            .where(*self.scoped(self.c.converted_client_id.in_(list(client_ids))))
            .order_by(self.c.converted_at, self.c.id)
        )
        # An index lookup per client (ix_leads_ws_converted; a DataLoader's batch, at most a
        # page's worth): short whatever the ids, so SQLite runs it on the event loop's thread.
        return await reads.all_rows(self.conn, stmt, inline=True)
