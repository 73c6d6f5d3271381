"""The statements of retention and erasure: a workspace's policy and the scheduler's claim on
it, the records a run would remove (in batches), and what an erasure finds and blanks.

Everything here is scoped to one workspace but the scheduler's claim (``due``/``claim``), which
looks at every workspace. No statement names an engine: LIKE over ``lower(...)`` finds an ASCII
email's case variants on both (SQLite's lower() folds ASCII only; emails are ASCII in practice,
and the exact-key lookups, on case-folded ``email_key`` columns, fold everything).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import (
    Activity,
    Client,
    EmailCode,
    Event,
    FollowUp,
    ImportChunk,
    ImportJob,
    ImportRowError,
    Lead,
    LeadExternalId,
    RateLimit,
    Ticket,
    TicketComment,
    WebhookDelivery,
    Workspace,
)
from db.models.intake import ClientExternalId

workspaces: Any = Workspace.__table__  # type: ignore[attr-defined]
leads: Any = Lead.__table__  # type: ignore[attr-defined]
clients: Any = Client.__table__  # type: ignore[attr-defined]
events: Any = Event.__table__  # type: ignore[attr-defined]
deliveries: Any = WebhookDelivery.__table__  # type: ignore[attr-defined]
activities: Any = Activity.__table__  # type: ignore[attr-defined]
follow_ups: Any = FollowUp.__table__  # type: ignore[attr-defined]
tickets: Any = Ticket.__table__  # type: ignore[attr-defined]
comments: Any = TicketComment.__table__  # type: ignore[attr-defined]
lead_external: Any = LeadExternalId.__table__  # type: ignore[attr-defined]
client_external: Any = ClientExternalId.__table__  # type: ignore[attr-defined]
email_codes: Any = EmailCode.__table__  # type: ignore[attr-defined]
rate_limits: Any = RateLimit.__table__  # type: ignore[attr-defined]
import_jobs: Any = ImportJob.__table__  # type: ignore[attr-defined]
import_chunks: Any = ImportChunk.__table__  # type: ignore[attr-defined]
row_errors: Any = ImportRowError.__table__  # type: ignore[attr-defined]

# What an anonymised lead's or client's email becomes: unique per row (the id), never a
# person's (.invalid is reserved, RFC 2606: no mailbox can have it), and recognisable, so
# that a later run does not count or rewrite the record again.
ANONYMIZED_DOMAIN = "anonymized.invalid"
ANONYMIZED_TEXT = "(anonymized)"
ERASED_TEXT = "[erased]"

# Event change fields that say nothing about the person (kept when a record's events are
# redacted, so counts and histories of status, score, owner and dates stay right); every other
# field's from/to values are blanked.
KEPT_FIELDS = frozenset(
    {
        "status",
        "score",
        "source",
        "state",
        "address.state",
        "ownerId",
        "convertedAt",
        "convertedClient",
        "archivedAt",
        "number",
        "priority",
        "firstResponseAt",
        "resolvedAt",
        "client",
        "assignee",
        "dueAt",
        "completedAt",
    }
)

POLICY_COLUMNS = (
    "retention_leads_days",
    "retention_clients_days",
    "retention_events_days",
    "retention_action",
)


def anonymized_email(table: Any) -> Any:
    """The placeholder email as an SQL expression of the row's id."""
    return sa.literal("anonymized-") + sa.cast(table.c.id, sa.String) + f"@{ANONYMIZED_DOMAIN}"


def _not_anonymized(table: Any) -> Any:
    return table.c.email_key.not_like(f"%@{ANONYMIZED_DOMAIN}")


def like_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere (wildcards escaped with '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(column: Any, key: str) -> Any:
    return func.lower(sa.cast(column, sa.Text)).like(like_pattern(key), escape="\\")


def redact(changes: list[dict[str, Any]], everything: bool = False) -> list[dict[str, Any]]:
    """An event's changes with the values of personal fields (every field, if ``everything``)
    blanked; field names stay, so the history still says what changed."""
    out = []
    for change in changes:
        if everything or change.get("field") not in KEPT_FIELDS:
            change = {**change, "from": None, "to": None}
        out.append(change)
    return out


def scrub_value(value: Any, pattern: re.Pattern[str]) -> Any:
    """``value`` (text, or JSON) with every match of ``pattern`` replaced."""
    if isinstance(value, str):
        return pattern.sub(ERASED_TEXT, value)
    if isinstance(value, list):
        return [scrub_value(v, pattern) for v in value]
    if isinstance(value, dict):
        return {scrub_value(k, pattern): scrub_value(v, pattern) for k, v in value.items()}
    return value


class WorkspacePolicies:
    """The policy columns of workspaces, and the scheduler's claim on a run."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, workspace_id: int) -> Any:
        stmt = select(*(workspaces.c[c] for c in POLICY_COLUMNS)).where(
            workspaces.c.id == workspace_id
        )
        return (await self.conn.execute(stmt)).one()

    async def set(self, workspace_id: int, values: dict[str, Any]) -> Any:
        stmt = (
            update(workspaces)
            .where(workspaces.c.id == workspace_id)
            .values(**values, retention_due_at=None)
            .returning(*(workspaces.c[c] for c in POLICY_COLUMNS))
        )
        return (await self.conn.execute(stmt)).one()

    async def due(self, now: datetime, limit: int) -> list[int]:
        """Workspaces with a policy whose next run is due."""
        stmt = (
            select(workspaces.c.id)
            .where(
                or_(workspaces.c.retention_due_at.is_(None), workspaces.c.retention_due_at <= now),
                or_(
                    workspaces.c.retention_leads_days.is_not(None),
                    workspaces.c.retention_clients_days.is_not(None),
                    workspaces.c.retention_events_days.is_not(None),
                ),
            )
            .order_by(workspaces.c.id)
            .limit(limit)
        )
        return [r.id for r in (await self.conn.execute(stmt)).all()]

    async def claim(self, workspace_id: int, now: datetime, until: datetime) -> bool:
        """Moves the workspace's next run to ``until`` if it was due: True for the one process
        whose UPDATE did it (committed before the run starts)."""
        stmt = (
            update(workspaces)
            .where(
                workspaces.c.id == workspace_id,
                or_(workspaces.c.retention_due_at.is_(None), workspaces.c.retention_due_at <= now),
            )
            .values(retention_due_at=until)
        )
        return (await self.conn.execute(stmt)).rowcount == 1


class RetentionRepository:
    """One workspace's records that a policy would remove, and their removal, a batch at a
    time (each batch its caller's own short transaction)."""

    def __init__(self, conn: AsyncConnection, workspace_id: int) -> None:
        self.conn = conn
        self.ws = workspace_id

    # ------------------------------------------------------------------ candidates

    def _leads(self, cutoff: datetime, anonymize: bool) -> list[Any]:
        conditions = [
            leads.c.workspace_id == self.ws,
            leads.c.updated_at < cutoff,
            leads.c.converted_at.is_(None),
        ]
        if anonymize:
            conditions.append(_not_anonymized(leads))
        return conditions

    def _clients(self, cutoff: datetime, anonymize: bool) -> list[Any]:
        conditions = [
            clients.c.workspace_id == self.ws,
            clients.c.archived_at.is_not(None),
            clients.c.archived_at < cutoff,
        ]
        if anonymize:
            conditions.append(_not_anonymized(clients))
        return conditions

    def _events(self, cutoff: datetime) -> list[Any]:
        return [events.c.workspace_id == self.ws, events.c.occurred_at < cutoff]

    async def _count(self, table: Any, conditions: list[Any]) -> int:
        stmt = select(func.count()).select_from(table).where(*conditions)
        return int((await self.conn.execute(stmt)).scalar_one())

    async def count_leads(self, cutoff: datetime, anonymize: bool) -> int:
        return await self._count(leads, self._leads(cutoff, anonymize))

    async def count_clients(self, cutoff: datetime, anonymize: bool) -> int:
        return await self._count(clients, self._clients(cutoff, anonymize))

    async def count_events(self, cutoff: datetime) -> int:
        return await self._count(events, self._events(cutoff))

    async def count_deliveries(self, cutoff: datetime) -> int:
        """The webhook deliveries of those events (a delivery is never older than its event,
        so these are every delivery older than the cutoff)."""
        old = select(events.c.id).where(*self._events(cutoff))
        return await self._count(
            deliveries, [deliveries.c.workspace_id == self.ws, deliveries.c.event_id.in_(old)]
        )

    async def recheck_leads(
        self, ids: Sequence[int], cutoff: datetime, anonymize: bool
    ) -> list[int]:
        """Those of ``ids`` that still qualify (by primary key: the candidates were read
        outside the write's transaction, which a request may have changed since)."""
        return await self._recheck(leads, ids, self._leads(cutoff, anonymize))

    async def recheck_clients(
        self, ids: Sequence[int], cutoff: datetime, anonymize: bool
    ) -> list[int]:
        return await self._recheck(clients, ids, self._clients(cutoff, anonymize))

    async def recheck_events(self, ids: Sequence[int], cutoff: datetime) -> list[int]:
        return await self._recheck(events, ids, self._events(cutoff))

    async def _recheck(self, table: Any, ids: Sequence[int], conditions: list[Any]) -> list[int]:
        if not ids:
            return []
        stmt = select(table.c.id).where(table.c.id.in_(list(ids)), *conditions)
        return [r.id for r in (await self.conn.execute(stmt)).all()]

    async def lead_batch(self, cutoff: datetime, anonymize: bool, limit: int) -> list[int]:
        """The oldest-updated candidates first (ix_leads_ws_updated, in order)."""
        stmt = (
            select(leads.c.id)
            .where(*self._leads(cutoff, anonymize))
            .order_by(leads.c.updated_at, leads.c.id)
            .limit(limit)
        )
        return [r.id for r in (await self.conn.execute(stmt)).all()]

    async def client_batch(self, cutoff: datetime, anonymize: bool, limit: int) -> list[int]:
        stmt = (
            select(clients.c.id)
            .where(*self._clients(cutoff, anonymize))
            .order_by(clients.c.id)
            .limit(limit)
        )
        return [r.id for r in (await self.conn.execute(stmt)).all()]

    async def event_batch(self, cutoff: datetime, limit: int) -> list[int]:
        """The oldest events first (the log's seq order, uq_events_ws_seq)."""
        stmt = select(events.c.id).where(*self._events(cutoff)).order_by(events.c.seq).limit(limit)
        return [r.id for r in (await self.conn.execute(stmt)).all()]

    # ------------------------------------------------------------------ dependents

    async def _ids(self, table: Any, *conditions: Any) -> list[int]:
        stmt = select(table.c.id).where(table.c.workspace_id == self.ws, *conditions)
        return [r.id for r in (await self.conn.execute(stmt)).all()]

    async def follow_up_ids(self, lead_ids: Sequence[int], client_ids: Sequence[int]) -> list[int]:
        return await self._ids(
            follow_ups,
            or_(
                follow_ups.c.lead_id.in_(list(lead_ids)),
                follow_ups.c.client_id.in_(list(client_ids)),
            ),
        )

    async def activity_ids(self, lead_ids: Sequence[int], client_ids: Sequence[int]) -> list[int]:
        return await self._ids(
            activities,
            or_(
                activities.c.lead_id.in_(list(lead_ids)),
                activities.c.client_id.in_(list(client_ids)),
            ),
        )

    async def ticket_ids(self, client_ids: Sequence[int]) -> list[int]:
        return await self._ids(tickets, tickets.c.client_id.in_(list(client_ids)))

    # ------------------------------------------------------------------ events

    async def redact_events(
        self, record_type: str, ids: Sequence[int], everything: bool = False
    ) -> int:
        """Blanks the personal values of the events of these records; how many changed."""
        if not ids:
            return 0
        stmt = select(events.c.id, events.c.changes).where(
            events.c.workspace_id == self.ws,
            events.c.record_type == record_type,
            events.c.record_id.in_(list(ids)),
        )
        changed = []
        for row in (await self.conn.execute(stmt)).all():
            new = redact(row.changes or [], everything)
            if new != row.changes:
                changed.append({"eid": row.id, "changes": new})
        await self._set_changes(changed)
        return len(changed)

    async def _set_changes(self, changed: list[dict[str, Any]]) -> None:
        if changed:
            stmt = (
                update(events)
                .where(events.c.id == bindparam("eid"))
                .values(changes=bindparam("changes"))
            )
            await self.conn.execute(stmt, changed)

    async def scrub_events(self, key: str, pattern: re.Pattern[str], skip: set[int]) -> int:
        """Events (other than ``skip``) whose values mention ``key``: each such value blanked."""
        stmt = select(events.c.id, events.c.changes).where(
            events.c.workspace_id == self.ws, _contains(events.c.changes, key)
        )
        changed = []
        for row in (await self.conn.execute(stmt)).all():
            if row.id in skip:
                continue
            new = [
                {**c, "from": None, "to": None} if pattern.search(str(c)) else c
                for c in row.changes or []
            ]
            if new != row.changes:
                changed.append({"eid": row.id, "changes": new})
        await self._set_changes(changed)
        return len(changed)

    async def event_ids_of(self, record_type: str, ids: Sequence[int]) -> set[int]:
        if not ids:
            return set()
        stmt = select(events.c.id).where(
            events.c.workspace_id == self.ws,
            events.c.record_type == record_type,
            events.c.record_id.in_(list(ids)),
        )
        return {r.id for r in (await self.conn.execute(stmt)).all()}

    async def delete_events(self, ids: Sequence[int]) -> tuple[int, int]:
        """Deletes these events and the webhook deliveries made of them (their attempts go with
        them: ON DELETE CASCADE); (events, deliveries)."""
        if not ids:
            return 0, 0
        gone = await self.conn.execute(
            delete(deliveries).where(
                deliveries.c.workspace_id == self.ws, deliveries.c.event_id.in_(list(ids))
            )
        )
        result = await self.conn.execute(
            delete(events).where(events.c.workspace_id == self.ws, events.c.id.in_(list(ids)))
        )
        return int(result.rowcount), int(gone.rowcount)

    # ------------------------------------------------------------------ records

    async def delete_leads(self, ids: Sequence[int]) -> int:
        """Deletes leads; their activities, follow-ups, tags, external IDs and merge links go
        with them (ON DELETE CASCADE)."""
        if not ids:
            return 0
        result = await self.conn.execute(
            delete(leads).where(leads.c.workspace_id == self.ws, leads.c.id.in_(list(ids)))
        )
        return int(result.rowcount)

    async def delete_clients(self, ids: Sequence[int]) -> int:
        """Deletes clients and their tickets (comments, activities, follow-ups, tags, external
        IDs cascade); the leads converted into them keep their conversion date but no longer
        point at them."""
        if not ids:
            return 0
        await self.conn.execute(
            update(leads)
            .where(leads.c.workspace_id == self.ws, leads.c.converted_client_id.in_(list(ids)))
            .values(converted_client_id=None)
        )
        await self.conn.execute(
            delete(tickets).where(
                tickets.c.workspace_id == self.ws, tickets.c.client_id.in_(list(ids))
            )
        )
        result = await self.conn.execute(
            delete(clients).where(clients.c.workspace_id == self.ws, clients.c.id.in_(list(ids)))
        )
        return int(result.rowcount)

    async def anonymize_leads(self, ids: Sequence[int]) -> int:
        """Blanks every personal field of these leads; status, source, state, score, owner,
        tags and dates stay (updated_at too: anonymising is not a user's update)."""
        if not ids:
            return 0
        ids = list(ids)
        placeholder = anonymized_email(leads)
        result = await self.conn.execute(
            update(leads)
            .where(leads.c.workspace_id == self.ws, leads.c.id.in_(ids))
            .values(
                email=placeholder,
                email_key=placeholder,
                first_name=None,
                last_name=None,
                phone=None,
                company=None,
                city=None,
                postal_code=None,
                notes=None,
                meta={},
                external_ids=[],
                name_key="",
                city_key="",
                phone_key="",
                company_key="",
                search_key="",
            )
        )
        await self.conn.execute(delete(lead_external).where(lead_external.c.lead_id.in_(ids)))
        await self._anonymize_dependents(ids, [])
        return int(result.rowcount)

    async def anonymize_clients(self, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        ids = list(ids)
        placeholder = anonymized_email(clients)
        result = await self.conn.execute(
            update(clients)
            .where(clients.c.workspace_id == self.ws, clients.c.id.in_(ids))
            .values(
                email=placeholder,
                email_key=placeholder,
                first_name="",
                last_name="",
                phone=None,
                company=None,
                street=None,
                city=None,
                postal_code=None,
                notes=None,
                meta={},
                external_ids=[],
                name_key="",
                city_key="",
                search_key="",
            )
        )
        await self.conn.execute(delete(client_external).where(client_external.c.client_id.in_(ids)))
        await self._anonymize_dependents([], ids)
        return int(result.rowcount)

    async def _anonymize_dependents(self, lead_ids: list[int], client_ids: list[int]) -> None:
        """What was written about anonymised records: activity bodies, follow-up titles and
        notes, their tickets' text and comments."""
        subject = or_(activities.c.lead_id.in_(lead_ids), activities.c.client_id.in_(client_ids))
        await self.conn.execute(
            update(activities).where(activities.c.workspace_id == self.ws, subject).values(body="")
        )
        subject = or_(follow_ups.c.lead_id.in_(lead_ids), follow_ups.c.client_id.in_(client_ids))
        await self.conn.execute(
            update(follow_ups)
            .where(follow_ups.c.workspace_id == self.ws, subject)
            .values(title=ANONYMIZED_TEXT, notes=None)
        )
        if client_ids:
            owned = tickets.c.client_id.in_(client_ids)
            await self.conn.execute(
                update(tickets)
                .where(tickets.c.workspace_id == self.ws, owned)
                .values(subject=ANONYMIZED_TEXT, description=None, search_key="")
            )
            await self.conn.execute(
                update(comments)
                .where(
                    comments.c.workspace_id == self.ws,
                    comments.c.ticket_id.in_(select(tickets.c.id).where(owned)),
                )
                .values(body="")
            )

    # ------------------------------------------------------------------ erasure

    async def leads_with_email(self, key: str) -> list[int]:
        return await self._ids(leads, leads.c.email_key == key)

    async def clients_with_email(self, key: str) -> list[int]:
        return await self._ids(clients, clients.c.email_key == key)

    async def delete_rows(self, table: Any, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        result = await self.conn.execute(
            delete(table).where(table.c.workspace_id == self.ws, table.c.id.in_(list(ids)))
        )
        return int(result.rowcount)

    async def scrub_text(
        self, table: Any, columns: Iterable[str], key: str, pattern: re.Pattern[str], write: bool
    ) -> int:
        """Rows of the workspace whose text (or JSON) columns mention ``key``: each mention
        replaced. How many rows."""
        names = list(columns)
        scope = (
            table.c.workspace_id == self.ws
            if "workspace_id" in table.c
            else table.c.job_id.in_(
                select(import_jobs.c.id).where(import_jobs.c.workspace_id == self.ws)
            )
        )
        stmt = select(table.c.id, *(table.c[n] for n in names)).where(
            scope, or_(*(_contains(table.c[n], key) for n in names))
        )
        rows = (await self.conn.execute(stmt)).all()
        if write and rows:
            for row in rows:
                values = {n: scrub_value(getattr(row, n), pattern) for n in names}
                await self.conn.execute(update(table).where(table.c.id == row.id).values(**values))
        return len(rows)

    async def scrub_chunks(self, key: str, write: bool) -> int:
        """Uploads not yet imported (a finished job's chunks are gone) that hold the email:
        each occurrence removed, so that the row is refused (no email) instead of importing
        the person again."""
        needle = re.compile(re.escape(key.encode()), re.IGNORECASE)
        stmt = (
            select(import_chunks.c.job_id, import_chunks.c.seq, import_chunks.c.data)
            .join(import_jobs, import_jobs.c.id == import_chunks.c.job_id)
            .where(import_jobs.c.workspace_id == self.ws)
        )
        touched = 0
        for row in (await self.conn.execute(stmt)).all():
            if needle.search(bytes(row.data)):
                touched += 1
                if write:
                    await self.conn.execute(
                        update(import_chunks)
                        .where(import_chunks.c.job_id == row.job_id, import_chunks.c.seq == row.seq)
                        .values(data=needle.sub(b"", bytes(row.data)))
                    )
        return touched

    async def email_codes(self, key: str, write: bool) -> int:
        """One-time codes sent to the address (sign-in, invitations to this workspace)."""
        cond = and_(
            email_codes.c.email_key == key,
            or_(email_codes.c.workspace_id.is_(None), email_codes.c.workspace_id == self.ws),
        )
        n = await self._count_where(email_codes, cond)
        if write and n:
            await self.conn.execute(delete(email_codes).where(cond))
        return n

    async def rate_limits(self, key: str, write: bool) -> int:
        """Rate-limit counters keyed by the address (sign-in attempts)."""
        cond = func.lower(rate_limits.c.key).like(like_pattern(key), escape="\\")
        n = await self._count_where(rate_limits, cond)
        if write and n:
            await self.conn.execute(delete(rate_limits).where(cond))
        return n

    async def _count_where(self, table: Any, cond: Any) -> int:
        stmt = select(func.count()).select_from(table).where(cond)
        return int((await self.conn.execute(stmt)).scalar_one())
