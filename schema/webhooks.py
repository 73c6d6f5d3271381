"""Webhooks (ADMIN): endpoints, their deliveries and attempts, and the mutations that manage
them. Deliveries follow Standard Webhooks; resolvers/webhooks/sending.py says how."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import Row

from db.models import DeliveryStatus, EndpointStatus
from db.models import EventType as _EventType
from resolvers.ids import to_global_id
from resolvers.webhooks import endpoints as resolve
from schema.context import Info
from schema.errors import UserError, user_errors
from schema.events import Event, EventType
from schema.relay import Connection, Node, input_values

WebhookEndpointStatus = strawberry.enum(
    EndpointStatus,
    name="WebhookEndpointStatus",
    description="ACTIVE: sending. PAUSED (by an admin): events are kept and sent on resume. "
    "DISABLED (by the server): the endpoint answered 410 Gone, or failed for a whole retry "
    "window; set it ACTIVE again to resume from the log's end.",
)
WebhookDeliveryStatus = strawberry.enum(
    DeliveryStatus,
    name="WebhookDeliveryStatus",
    description="FAILED: no retries left.",
)


@strawberry.type(description="One request of a delivery.")
class WebhookAttempt:
    at: datetime
    response_status: int | None = strawberry.field(description="Null when no HTTP answer came.")
    duration_ms: int
    error: str | None = strawberry.field(description="Timeout, refused, TLS, ...")

    @classmethod
    def from_row(cls, row: Row[Any]) -> WebhookAttempt:
        return cls(
            at=row.at,
            response_status=row.response_status,
            duration_ms=row.duration_ms,
            error=row.error,
        )


@strawberry.type(
    description="One event sent to one endpoint. Its ID is the webhook-id header, the same on "
    "every attempt: the receiver's idempotency key."
)
class WebhookDelivery(Node):
    id: strawberry.ID
    status: WebhookDeliveryStatus  # type: ignore[valid-type]
    next_attempt_at: datetime | None = strawberry.field(
        description="When the next attempt is due (PENDING only)."
    )
    pk: strawberry.Private[int]
    event_pk: strawberry.Private[int]

    @strawberry.field
    async def event(self, info: Info) -> Event:
        row = await info.context.loaders.event_by_id.load(self.event_pk)
        assert row is not None  # events are never deleted
        return Event.from_row(row)

    @strawberry.field(description="Every attempt, oldest first.")
    async def attempts(self, info: Info) -> list[WebhookAttempt]:
        rows = await info.context.loaders.webhook_attempts.load(self.pk)
        return [WebhookAttempt.from_row(r) for r in rows]

    @classmethod
    def from_row(cls, row: Row[Any]) -> WebhookDelivery:
        status = DeliveryStatus(row.status)
        return cls(
            id=strawberry.ID(to_global_id("WebhookDelivery", row.id)),
            status=status,
            next_attempt_at=row.next_attempt_at if status is DeliveryStatus.PENDING else None,
            pk=row.id,
            event_pk=row.event_id,
        )

    @classmethod
    def maybe(cls, row: Row[Any] | None) -> WebhookDelivery | None:
        return cls.from_row(row) if row is not None else None


WebhookDeliveryConnection = Connection[WebhookDelivery]


@strawberry.input
class WebhookDeliveryFilter:
    status: list[WebhookDeliveryStatus] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Any of these."
    )


@strawberry.type(description="Where a workspace's events are POSTed, signed with its secret.")
class WebhookEndpoint(Node):
    id: strawberry.ID
    url: str
    description: str | None
    event_types: list[EventType] = strawberry.field(  # type: ignore[valid-type]
        description="The event types sent; empty: every type."
    )
    status: WebhookEndpointStatus  # type: ignore[valid-type]
    created_at: datetime
    pk: strawberry.Private[int]

    @strawberry.field(description="Its deliveries, newest first.")
    async def deliveries(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: WebhookDeliveryFilter | None = None,
    ) -> WebhookDeliveryConnection:  # type: ignore[valid-type]
        statuses = filter.status if filter is not None else None
        page = await resolve.deliveries(info.context, self.pk, first, after, statuses)
        return WebhookDeliveryConnection.from_page(page, WebhookDelivery.from_row)  # type: ignore[no-any-return]

    @classmethod
    def from_row(cls, row: Row[Any]) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(to_global_id("WebhookEndpoint", row.id)),
            url=row.url,
            description=row.description,
            event_types=[_EventType(t) for t in row.event_types],
            status=EndpointStatus(row.status),
            created_at=row.created_at,
            pk=row.id,
        )

    @classmethod
    def maybe(cls, row: Row[Any] | None) -> WebhookEndpoint | None:
        return cls.from_row(row) if row is not None else None


# ---------------------------------------------------------------- inputs and payloads


@strawberry.input
class CreateWebhookEndpointInput:
    url: str = strawberry.field(
        description="https:// and a public address, unless WEBHOOK_ALLOW_PRIVATE_URLS is set."
    )
    description: str | None = strawberry.UNSET
    event_types: list[EventType] | None = strawberry.field(  # type: ignore[valid-type]
        default=strawberry.UNSET, description="Left out or empty: every type."
    )


@strawberry.input(description="Every field optional; a field left out is unchanged.")
class UpdateWebhookEndpointInput:
    url: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    event_types: list[EventType] | None = strawberry.field(  # type: ignore[valid-type]
        default=strawberry.UNSET, description="Null or empty: every type."
    )
    status: WebhookEndpointStatus | None = strawberry.field(  # type: ignore[valid-type]
        default=strawberry.UNSET, description="ACTIVE or PAUSED."
    )


@strawberry.type
class CreateWebhookEndpointPayload:
    endpoint: WebhookEndpoint | None
    secret: str | None = strawberry.field(description='"whsec_…", shown only here, once.')
    user_errors: list[UserError]


@strawberry.type
class UpdateWebhookEndpointPayload:
    endpoint: WebhookEndpoint | None
    user_errors: list[UserError]


@strawberry.type
class DeleteWebhookEndpointPayload:
    deleted_endpoint_id: strawberry.ID | None
    user_errors: list[UserError]


@strawberry.type
class RotateWebhookSecretPayload:
    endpoint: WebhookEndpoint | None
    secret: str | None = strawberry.field(description="The new secret, shown only here, once.")
    user_errors: list[UserError]


@strawberry.type
class RetryWebhookDeliveryPayload:
    delivery: WebhookDelivery | None
    user_errors: list[UserError]


@strawberry.type
class ReplayWebhookEventsPayload:
    queued: int | None = strawberry.field(description="How many deliveries were made.")
    user_errors: list[UserError]


# ---------------------------------------------------------------- fields


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="The workspace's webhook endpoints, oldest first (ADMIN).")
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        return [WebhookEndpoint.from_row(r) for r in await resolve.endpoints(info.context)]

    @strawberry.field(description="A webhook endpoint by ID, or null (ADMIN).")
    async def webhook_endpoint(self, info: Info, id: strawberry.ID) -> WebhookEndpoint | None:
        return WebhookEndpoint.maybe(await resolve.endpoint(info.context, id))


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(
        description="A new endpoint (ADMIN), sent every event from now on that it takes; its "
        "signing secret is in the payload, once."
    )
    async def create_webhook_endpoint(
        self, info: Info, input: CreateWebhookEndpointInput
    ) -> CreateWebhookEndpointPayload:
        out = await resolve.create(info.context, input_values(input))
        return CreateWebhookEndpointPayload(
            endpoint=WebhookEndpoint.maybe(out.endpoint),
            secret=out.secret,
            user_errors=user_errors(out.problems),
        )

    @strawberry.mutation(
        description="Changes an endpoint (ADMIN); status PAUSED holds its deliveries, ACTIVE "
        "sends them again."
    )
    async def update_webhook_endpoint(
        self, info: Info, id: strawberry.ID, input: UpdateWebhookEndpointInput
    ) -> UpdateWebhookEndpointPayload:
        out = await resolve.update(info.context, id, input_values(input))
        return UpdateWebhookEndpointPayload(
            endpoint=WebhookEndpoint.maybe(out.endpoint), user_errors=user_errors(out.problems)
        )

    @strawberry.mutation(description="Deletes an endpoint and its deliveries (ADMIN).")
    async def delete_webhook_endpoint(
        self, info: Info, id: strawberry.ID
    ) -> DeleteWebhookEndpointPayload:
        out = await resolve.delete(info.context, id)
        deleted = strawberry.ID(id) if out.deleted_id is not None else None
        return DeleteWebhookEndpointPayload(
            deleted_endpoint_id=deleted, user_errors=user_errors(out.problems)
        )

    @strawberry.mutation(
        description="A new signing secret (ADMIN), shown once; the old one also signs for 24 h."
    )
    async def rotate_webhook_secret(
        self, info: Info, id: strawberry.ID
    ) -> RotateWebhookSecretPayload:
        out = await resolve.rotate_secret(info.context, id)
        return RotateWebhookSecretPayload(
            endpoint=WebhookEndpoint.maybe(out.endpoint),
            secret=out.secret,
            user_errors=user_errors(out.problems),
        )

    @strawberry.mutation(
        description="One more attempt at a delivery, now (ADMIN); it is FAILED again if that "
        "attempt fails."
    )
    async def retry_webhook_delivery(
        self, info: Info, id: strawberry.ID
    ) -> RetryWebhookDeliveryPayload:
        out = await resolve.retry(info.context, id)
        return RetryWebhookDeliveryPayload(
            delivery=WebhookDelivery.maybe(out.delivery), user_errors=user_errors(out.problems)
        )

    @strawberry.mutation(
        description="Sends again every event after this event cursor that the endpoint takes, "
        "as new deliveries (ADMIN)."
    )
    async def replay_webhook_events(
        self, info: Info, endpoint_id: strawberry.ID, after: str
    ) -> ReplayWebhookEventsPayload:
        out = await resolve.replay(info.context, endpoint_id, after)
        return ReplayWebhookEventsPayload(queued=out.queued, user_errors=user_errors(out.problems))
