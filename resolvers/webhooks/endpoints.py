"""Webhook endpoints and their deliveries, as the API manages them (ADMIN only): create
(the signing secret shown once), update, pause and resume, delete, rotate the secret, retry
one delivery, replay the log after a cursor. Nothing here sends: the sender
(resolvers/webhooks/sender.py) works the deliveries these leave in the database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row

from db.models import (
    DeliveryStatus,
    EndpointCreate,
    EndpointStatus,
    EndpointUpdate,
    Role,
)
from db.repositories import (
    DeliveryFilterSpec,
    DeliveryRepository,
    EndpointRepository,
    EventRepository,
)
from db.types import utcnow
from resolvers.errors import BadInput, Problem, UserErrorCode, not_found, validated
from resolvers.ids import pk_for_mutation, pk_for_query
from resolvers.outcome import Abort
from resolvers.pagination import (
    Page,
    SortKey,
    decode_seq_cursor,
    fetch_page,
    page_args,
)
from resolvers.webhooks.sending import new_secret
from resolvers.webhooks.urls import url_problem

if TYPE_CHECKING:
    from resolvers.context import Context

ENDPOINT, DELIVERY = "WebhookEndpoint", "WebhookDelivery"
# How long the secret before a rotation still signs, beside the new one.
ROTATION_OVERLAP = timedelta(hours=24)
# Deliveries are listed newest first, by id.
_DELIVERY_ORDER = "DELIVERIES"
_BY_ID = SortKey("id", "int")


@dataclass
class WebhookOutcome:
    problems: list[Problem] = field(default_factory=list)
    endpoint: Row[Any] | None = None
    secret: str | None = None
    delivery: Row[Any] | None = None
    deleted_id: int | None = None
    queued: int | None = None


Step = Callable[[Any], Awaitable[WebhookOutcome]]


async def _run(ctx: Context, step: Step) -> WebhookOutcome:
    """``step(conn)`` in one unit of work (again if PostgreSQL breaks a deadlock with the
    sender, which locks deliveries, then their endpoint); Abort rolls back and reports."""
    try:
        outcome = await ctx.db.transaction(step)
    except Abort as abort:
        return WebhookOutcome(problems=abort.problems)
    ctx.clear_loaders()
    return outcome


def _endpoint_not_found() -> Problem:
    return not_found("webhook endpoint")


async def _url_problems(ctx: Context, url: str, path: list[str]) -> list[Problem]:
    message = await url_problem(url, ctx.settings.webhook_allow_private_urls)
    return [Problem(message, UserErrorCode.INVALID, path)] if message else []


def _types(values: Any) -> list[str]:
    """EventTypes as stored: names, each once, in the order given."""
    return list(dict.fromkeys(t.value for t in values or ()))


# ------------------------------------------------------------------ reads


async def endpoints(ctx: Context) -> list[Any]:
    principal = ctx.require(Role.ADMIN)
    async with ctx.db.read() as conn:
        return await EndpointRepository(conn, principal.workspace_id).all()


async def endpoint(ctx: Context, id_: str) -> Row[Any] | None:
    ctx.require(Role.ADMIN)
    pk = pk_for_query(id_, ENDPOINT)
    return None if pk is None else await ctx.loaders.webhook_endpoint_by_id.load(pk)


async def deliveries(
    ctx: Context,
    endpoint_pk: int,
    first: int | None,
    after: str | None,
    statuses: list[DeliveryStatus] | None,
) -> Page:
    """One page of an endpoint's deliveries, newest first."""
    principal = ctx.require(Role.ADMIN)
    args = page_args(first, after, None, None, _DELIVERY_ORDER, _BY_ID)
    spec = DeliveryFilterSpec(endpoint_id=endpoint_pk, statuses=statuses)
    workspace_id = principal.workspace_id

    def repository(conn: Any) -> DeliveryRepository:
        return DeliveryRepository(conn, workspace_id)

    return await fetch_page(ctx.db, repository, spec, _BY_ID, True, _DELIVERY_ORDER, args)


# ------------------------------------------------------------------ writes


async def create(ctx: Context, values: dict[str, Any]) -> WebhookOutcome:
    principal = ctx.require(Role.ADMIN)
    data, problems = validated(EndpointCreate, values)
    if data is not None:
        problems += await _url_problems(ctx, data.url, ["input", "url"])
    if problems:
        return WebhookOutcome(problems=problems)
    secret = new_secret()
    workspace_id = principal.workspace_id

    async def step(conn: Any) -> WebhookOutcome:
        # Events from now on: the cursor starts at the log's end.
        last = await EventRepository(conn, workspace_id).last_seq()
        row = await EndpointRepository(conn, workspace_id).insert(
            {
                "url": data.url,
                "description": data.description,
                "event_types": _types(data.event_types),
                "status": EndpointStatus.ACTIVE.value,
                "secret": secret,
                "fanned_out_seq": last,
                "created_by_user_id": principal.user_id,
                "created_by_api_key_id": principal.api_key_id,
            }
        )
        return WebhookOutcome(endpoint=row, secret=secret)

    return await _run(ctx, step)


async def update(ctx: Context, id_: str, values: dict[str, Any]) -> WebhookOutcome:
    principal = ctx.require(Role.ADMIN)
    pk, problem = pk_for_mutation(id_, ENDPOINT, ["id"])
    problems = [problem] if problem else []
    data, invalid = validated(EndpointUpdate, values)
    problems += invalid
    changes = data.model_dump(exclude_unset=True) if data is not None else {}
    if changes.get("status") is EndpointStatus.DISABLED:
        problems.append(
            Problem(
                "Set ACTIVE or PAUSED: only the server disables an endpoint.",
                UserErrorCode.INVALID,
                ["input", "status"],
            )
        )
    if "url" in changes:
        problems += await _url_problems(ctx, changes["url"], ["input", "url"])
    if problems or pk is None:
        return WebhookOutcome(problems=problems)
    workspace_id = principal.workspace_id

    async def step(conn: Any) -> WebhookOutcome:
        repo = EndpointRepository(conn, workspace_id)
        current = await repo.get(pk, for_update=True)
        if current is None:
            raise Abort([_endpoint_not_found()])
        written = {k: v for k, v in changes.items() if k in ("url", "description")}
        if "event_types" in changes:
            written["event_types"] = _types(changes["event_types"])
        if "status" in changes:
            written["status"] = changes["status"].value
            if current.status == EndpointStatus.DISABLED.value:
                # Back from DISABLED: from the log's end on (replayWebhookEvents sends what
                # came meanwhile); deliveries made before it was disabled go out as they are.
                last = await EventRepository(conn, workspace_id).last_seq()
                written["fanned_out_seq"] = max(last, current.fanned_out_seq)
        row = await repo.update(current, written) if written else current
        return WebhookOutcome(endpoint=row)

    return await _run(ctx, step)


async def delete(ctx: Context, id_: str) -> WebhookOutcome:
    principal = ctx.require(Role.ADMIN)
    pk, problem = pk_for_mutation(id_, ENDPOINT, ["id"])
    if pk is None:
        return WebhookOutcome(problems=[problem] if problem else [])

    async def step(conn: Any) -> WebhookOutcome:
        if not await EndpointRepository(conn, principal.workspace_id).remove(pk):
            raise Abort([_endpoint_not_found()])
        return WebhookOutcome(deleted_id=pk)

    return await _run(ctx, step)


async def rotate_secret(ctx: Context, id_: str) -> WebhookOutcome:
    """A new secret; the one it replaces also signs for ROTATION_OVERLAP."""
    principal = ctx.require(Role.ADMIN)
    pk, problem = pk_for_mutation(id_, ENDPOINT, ["id"])
    if pk is None:
        return WebhookOutcome(problems=[problem] if problem else [])
    secret = new_secret()

    async def step(conn: Any) -> WebhookOutcome:
        repo = EndpointRepository(conn, principal.workspace_id)
        current = await repo.get(pk, for_update=True)
        if current is None:
            raise Abort([_endpoint_not_found()])
        row = await repo.update(
            current,
            {
                "secret": secret,
                "previous_secret": current.secret,
                "previous_secret_expires_at": utcnow() + ROTATION_OVERLAP,
            },
        )
        return WebhookOutcome(endpoint=row, secret=secret)

    return await _run(ctx, step)


async def retry(ctx: Context, id_: str) -> WebhookOutcome:
    """One more attempt at a delivery, due now (sent once its endpoint is ACTIVE); if it
    fails, the delivery is FAILED again."""
    principal = ctx.require(Role.ADMIN)
    pk, problem = pk_for_mutation(id_, DELIVERY, ["id"])
    if pk is None:
        return WebhookOutcome(problems=[problem] if problem else [])

    async def step(conn: Any) -> WebhookOutcome:
        row = await DeliveryRepository(conn, principal.workspace_id).retry_now(pk, utcnow())
        if row is None:
            raise Abort([not_found("webhook delivery")])
        return WebhookOutcome(delivery=row)

    return await _run(ctx, step)


async def replay(ctx: Context, endpoint_id: str, after: str) -> WebhookOutcome:
    """A new delivery of every event after the cursor ``after`` that the endpoint takes, up
    to the log's end (where its fan-out then goes on from, so that none comes twice)."""
    principal = ctx.require(Role.ADMIN)
    pk, problem = pk_for_mutation(endpoint_id, ENDPOINT, ["endpointId"])
    problems = [problem] if problem else []
    seq: int | None = None
    try:
        seq = int(decode_seq_cursor(after, "after").value)
    except BadInput:
        problems.append(
            Problem(
                "This is not an event cursor (take one from events or history).",
                UserErrorCode.INVALID,
                ["after"],
            )
        )
    if problems or pk is None or seq is None:
        return WebhookOutcome(problems=problems)
    workspace_id = principal.workspace_id

    async def step(conn: Any) -> WebhookOutcome:
        endpoints = EndpointRepository(conn, workspace_id)
        # Locked: the sender's fan-out of this endpoint waits (or skips it) meanwhile.
        current = await endpoints.get(pk, for_update=True)
        if current is None:
            raise Abort([not_found("webhook endpoint", ["endpointId"])])
        end = max(await EventRepository(conn, workspace_id).last_seq(), current.fanned_out_seq)
        queued = await DeliveryRepository(conn, workspace_id).replay(
            pk, seq, end, current.event_types, utcnow()
        )
        if end > current.fanned_out_seq:
            await endpoints.update(current, {"fanned_out_seq": end})
        return WebhookOutcome(endpoint=current, queued=queued)

    return await _run(ctx, step)
