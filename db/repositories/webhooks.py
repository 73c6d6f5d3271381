"""Webhooks: a workspace's endpoints and deliveries (scoped, for the API), and the delivery
queue the sender works (``DeliveryQueue``: global, as one sender serves every workspace).

Pending deliveries are found through partial indexes on ``status = 'PENDING'``, which a
query can use only if it spells the same constant (``PENDING``), not a bind parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    Row,
    and_,
    bindparam,
    case,
    delete,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from db import reads
from db.models import (
    DeliveryStatus,
    EndpointStatus,
    Event,
    EventCounter,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from db.repositories.base import Bound, FilterSpec, Repository, values_of
from db.types import UTCDateTime

endpoints: Any = WebhookEndpoint.__table__  # type: ignore[attr-defined]
deliveries: Any = WebhookDelivery.__table__  # type: ignore[attr-defined]
attempts: Any = WebhookAttempt.__table__  # type: ignore[attr-defined]
events: Any = Event.__table__  # type: ignore[attr-defined]
counters: Any = EventCounter.__table__  # type: ignore[attr-defined]

PENDING: Any = literal_column("'PENDING'")
_DISABLED = EndpointStatus.DISABLED.value
_ACTIVE = EndpointStatus.ACTIVE.value


def _delivery_values(
    workspace_id: int, endpoint_id: int, event: Any, now: datetime
) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "endpoint_id": endpoint_id,
        "event_id": event.id,
        "seq": event.seq,
        "record_type": event.record_type,
        "record_id": event.record_id,
        "status": DeliveryStatus.PENDING.value,
        "created_at": now,
        "next_attempt_at": now,
        "attempt_count": 0,
    }


class EndpointRepository(Repository):
    """A workspace's webhook endpoints."""

    table = endpoints

    async def all(self) -> list[Any]:
        """Every endpoint, oldest first."""
        stmt = select(self.table).where(self.scope).order_by(self.c.id)
        return await reads.all_rows(self.conn, stmt)

    async def remove(self, id_: int) -> bool:
        """Deletes the endpoint, its deliveries and their attempts; False when there is none."""
        stmt = delete(self.table).where(*self.scoped(self.c.id == id_)).returning(self.c.id)
        return (await self.conn.execute(stmt)).first() is not None


@dataclass(frozen=True, kw_only=True)
class DeliveryFilterSpec(FilterSpec):
    """One endpoint's deliveries, of any of ``statuses`` when given."""

    endpoint_id: int
    statuses: Sequence[DeliveryStatus] | None = None


class DeliveryRepository(Repository):
    """A workspace's deliveries (listed per endpoint, newest first) and their attempts."""

    table = deliveries
    bound = (
        Bound("endpoint_id", lambda c, v: c.endpoint_id == v),
        Bound("statuses", lambda c, v: c.status.in_(v), value=values_of, expanding=True),
    )

    async def attempts_of(self, ids: Sequence[int]) -> list[Any]:
        """The attempts of these deliveries (of the workspace), oldest first."""
        stmt = (
            select(attempts)
            .join(deliveries, deliveries.c.id == attempts.c.delivery_id)
            .where(self.scope, attempts.c.delivery_id.in_(list(ids)))
            .order_by(attempts.c.delivery_id, attempts.c.id)
        )
        return await reads.all_rows(self.conn, stmt)

    async def retry_now(self, id_: int, now: datetime) -> Row[Any] | None:
        """Makes the delivery due now. One that was done gets one more attempt (its window
        ends now: if it fails, it is FAILED again); a pending one keeps its retries."""
        when = literal(now, UTCDateTime())
        stmt = (
            update(self.table)
            .where(*self.scoped(self.c.id == id_))
            .values(
                status=DeliveryStatus.PENDING.value,
                next_attempt_at=when,
                retry_until=case((self.c.status == PENDING, self.c.retry_until), else_=when),
            )
            .returning(self.table)
        )
        return (await self.conn.execute(stmt)).first()

    async def replay(
        self, endpoint_id: int, after: int, upto: int, types: Sequence[str], now: datetime
    ) -> int:
        """A new delivery to the endpoint for each event with ``after < seq <= upto`` of one
        of ``types`` (every type when empty); how many."""
        e = events
        conditions = [e.c.workspace_id == self.workspace_id, e.c.seq > after, e.c.seq <= upto]
        if types:
            conditions.append(e.c.type.in_(list(types)))
        when = literal(now, UTCDateTime())
        rows = (
            select(
                literal(self.workspace_id, Integer()),
                literal(endpoint_id, Integer()),
                e.c.id,
                e.c.seq,
                e.c.record_type,
                e.c.record_id,
                PENDING,
                when,
                when,
                literal(0, Integer()),
            )
            .where(*conditions)
            .order_by(e.c.seq)
        )
        columns = [
            "workspace_id",
            "endpoint_id",
            "event_id",
            "seq",
            "record_type",
            "record_id",
            "status",
            "created_at",
            "next_attempt_at",
            "attempt_count",
        ]
        result = await self.conn.execute(insert(self.table).from_select(columns, rows))
        return int(result.rowcount)


# ------------------------------------------------------------------ the sender's queue

_earlier = deliveries.alias("earlier")
# Due deliveries to active endpoints, unclaimed or with their lease run out.
_DUE = (
    deliveries.c.status == PENDING,
    deliveries.c.next_attempt_at <= bindparam("now", type_=UTCDateTime()),
    or_(
        deliveries.c.claimed_until.is_(None),
        deliveries.c.claimed_until <= bindparam("now", type_=UTCDateTime()),
    ),
    endpoints.c.status == _ACTIVE,
)
_ANY_DUE = reads.Reusable(
    select(deliveries.c.id)
    .join(endpoints, endpoints.c.id == deliveries.c.endpoint_id)
    .where(*_DUE)
    .limit(1)
)
# Those of them that no earlier pending delivery of the same record to the same endpoint waits
# before. Locked rows are another process's claim in the making: skipped (PostgreSQL; SQLite's
# one writer serialises).
_CLAIM = (
    select(deliveries.c.id)
    .join(endpoints, endpoints.c.id == deliveries.c.endpoint_id)
    .where(
        *_DUE,
        ~select(literal(1))
        .where(
            _earlier.c.endpoint_id == deliveries.c.endpoint_id,
            _earlier.c.record_type == deliveries.c.record_type,
            _earlier.c.record_id == deliveries.c.record_id,
            _earlier.c.status == PENDING,
            or_(
                _earlier.c.seq < deliveries.c.seq,
                and_(_earlier.c.seq == deliveries.c.seq, _earlier.c.id < deliveries.c.id),
            ),
        )
        .exists(),
    )
    .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
    .limit(bindparam("limit", type_=Integer()))
    .with_for_update(of=deliveries, skip_locked=True)
)

# What sending a delivery needs: its endpoint's URL and secrets, and its event.
_TO_SEND = (
    select(
        deliveries.c.id,
        deliveries.c.workspace_id,
        deliveries.c.endpoint_id,
        deliveries.c.attempt_count,
        deliveries.c.first_attempt_at,
        deliveries.c.retry_until,
        endpoints.c.url,
        endpoints.c.secret,
        endpoints.c.previous_secret,
        endpoints.c.previous_secret_expires_at,
        events.c.id.label("event_id"),
        events.c.type,
        events.c.record_type,
        events.c.record_id,
        events.c.occurred_at,
        events.c.request_id,
        events.c.changes,
    )
    .join(endpoints, endpoints.c.id == deliveries.c.endpoint_id)
    .join(events, events.c.id == deliveries.c.event_id)
)

_FINISH = (
    update(deliveries)
    .where(
        deliveries.c.id == bindparam("d_id"),
        deliveries.c.claim_token == bindparam("d_token"),
    )
    .values(
        status=bindparam("d_status"),
        next_attempt_at=bindparam("d_next", type_=UTCDateTime()),
        first_attempt_at=bindparam("d_first", type_=UTCDateTime()),
        retry_until=bindparam("d_until", type_=UTCDateTime()),
        attempt_count=deliveries.c.attempt_count + 1,
        claimed_until=None,
        claim_token=None,
    )
)


@dataclass(frozen=True)
class AttemptResult:
    """One attempt at a delivery, and the delivery's state after it."""

    delivery_id: int
    endpoint_id: int
    claim_token: str
    at: datetime
    duration_ms: int
    response_status: int | None
    error: str | None
    status: DeliveryStatus
    next_attempt_at: datetime | None
    first_attempt_at: datetime
    retry_until: datetime
    # Disable the endpoint: "gone" (410) at once; "failing" when it has not succeeded since
    # this delivery's first attempt.
    disable: str | None = None


class DeliveryQueue:
    """The sender's statements, over every workspace. ``conn``: a read connection for
    ``behind`` and ``to_send``, a write() unit for the others."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def behind(self) -> list[int]:
        """The endpoints (not disabled) whose workspace's log has events past their cursor."""
        stmt = (
            select(endpoints.c.id)
            .join(counters, counters.c.workspace_id == endpoints.c.workspace_id)
            .where(
                endpoints.c.status != _DISABLED,
                counters.c.last_seq > endpoints.c.fanned_out_seq,
            )
            .order_by(endpoints.c.id)
        )
        return [row.id for row in await reads.all_rows(self.conn, stmt)]

    async def fan_out(self, endpoint_id: int, limit: int, now: datetime) -> int:
        """Makes the deliveries of up to ``limit`` events past the endpoint's cursor (those
        of its types) and moves the cursor past them, in this transaction; the number of
        events read. An endpoint another process is fanning out is skipped."""
        stmt = (
            select(endpoints.c.workspace_id, endpoints.c.event_types, endpoints.c.fanned_out_seq)
            .where(endpoints.c.id == endpoint_id, endpoints.c.status != _DISABLED)
            .with_for_update(skip_locked=True)
        )
        endpoint = (await self.conn.execute(stmt)).first()
        if endpoint is None:
            return 0
        log = (
            select(
                events.c.id, events.c.seq, events.c.type, events.c.record_type, events.c.record_id
            )
            .where(
                events.c.workspace_id == endpoint.workspace_id,
                events.c.seq > endpoint.fanned_out_seq,
            )
            .order_by(events.c.seq)
            .limit(limit)
        )
        found = (await self.conn.execute(log)).all()
        if not found:
            return 0
        types = set(endpoint.event_types)
        rows = [
            _delivery_values(endpoint.workspace_id, endpoint_id, event, now)
            for event in found
            if not types or event.type in types
        ]
        if rows:
            await self.conn.execute(insert(deliveries), rows)
        await self.conn.execute(
            update(endpoints)
            .where(endpoints.c.id == endpoint_id)
            .values(fanned_out_seq=found[-1].seq)
        )
        return len(found)

    async def any_due(self, now: datetime) -> bool:
        """Whether a delivery is due (a read: an idle sender takes no write lock)."""
        return bool(await reads.all_rows(self.conn, _ANY_DUE, {"now": now}))

    async def claim(self, now: datetime, until: datetime, token: str, limit: int) -> list[int]:
        """Claims up to ``limit`` due deliveries until ``until`` under ``token``; their ids."""
        found = await self.conn.execute(_CLAIM, {"now": now, "limit": limit})
        ids = [row.id for row in found]
        if ids:
            await self.conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(ids))
                .values(claimed_until=until, claim_token=token)
            )
        return ids

    async def to_send(self, ids: Sequence[int]) -> list[Any]:
        """The claimed deliveries with their endpoint's URL and secrets and their event."""
        stmt = _TO_SEND.where(deliveries.c.id.in_(list(ids))).order_by(deliveries.c.id)
        return await reads.all_rows(self.conn, stmt)

    async def record(self, results: Sequence[AttemptResult]) -> None:
        """Logs the attempts (of the deliveries that still exist: an endpoint may have been
        deleted meanwhile) and moves each delivery on, if the claim is still ours."""
        ids = [r.delivery_id for r in results]
        lock = select(deliveries.c.id).where(deliveries.c.id.in_(ids)).with_for_update()
        existing = {row.id for row in await self.conn.execute(lock)}
        results = [r for r in results if r.delivery_id in existing]
        if not results:
            return
        await self.conn.execute(
            insert(attempts),
            [
                {
                    "delivery_id": r.delivery_id,
                    "at": r.at,
                    "response_status": r.response_status,
                    "duration_ms": r.duration_ms,
                    "error": r.error,
                }
                for r in results
            ],
        )
        await self.conn.execute(
            _FINISH,
            [
                {
                    "d_id": r.delivery_id,
                    "d_token": r.claim_token,
                    "d_status": r.status.value,
                    "d_next": r.next_attempt_at,
                    "d_first": r.first_attempt_at,
                    "d_until": r.retry_until,
                }
                for r in results
            ],
        )
        succeeded: dict[int, datetime] = {}
        for r in results:
            if r.status is DeliveryStatus.SUCCEEDED:
                succeeded[r.endpoint_id] = max(r.at, succeeded.get(r.endpoint_id, r.at))
        if succeeded:
            await self.conn.execute(
                update(endpoints)
                .where(endpoints.c.id == bindparam("e_id"))
                .values(last_success_at=bindparam("e_at", type_=UTCDateTime())),
                [{"e_id": e, "e_at": at} for e, at in succeeded.items()],
            )
        for r in results:
            if r.disable is None:
                continue
            stmt = update(endpoints).where(
                endpoints.c.id == r.endpoint_id, endpoints.c.status != _DISABLED
            )
            if r.disable == "failing":
                stmt = stmt.where(
                    or_(
                        endpoints.c.last_success_at.is_(None),
                        endpoints.c.last_success_at < r.first_attempt_at,
                    )
                )
            await self.conn.execute(stmt.values(status=_DISABLED, updated_at=r.at))
