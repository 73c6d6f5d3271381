"""Webhooks: a workspace's endpoints, the deliveries of its events to them, and every attempt.

A delivery is one event for one endpoint. The sender (resolvers/webhooks/sender.py) makes them
by reading the log after each endpoint's ``fanned_out_seq`` (durable: the cursor moves in the
transaction that inserts the deliveries), claims due ones under a lease (``claimed_until``,
``claim_token``), and records each attempt. ``seq``, ``record_type`` and ``record_id`` are the
event's, copied so that the claim can keep a record's deliveries in order without a join.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from db.models import fields as f
from db.models.events import NAME_MAX, EventType
from db.types import JSONType, UTCDateTime

URL_MAX = 2048
DESCRIPTION_MAX = 500
SECRET_MAX = 100
ERROR_MAX = 500


class EndpointStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"  # by an admin: deliveries wait, and go out on resume
    DISABLED = "DISABLED"  # by the sender: 410 Gone, or failing for a whole retry window


class DeliveryStatus(enum.Enum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # no retries left


_PENDING = text("status = 'PENDING'")


def _dt(nullable: bool = True) -> Any:
    return SQLField(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_ws", "workspace_id", "id"),)

    id: int | None = SQLField(default=None, sa_column=Column(Integer, primary_key=True))
    workspace_id: int = SQLField(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), nullable=False)
    )
    url: str = SQLField(sa_column=Column(String(URL_MAX), nullable=False))
    description: str | None = SQLField(default=None, sa_column=Column(String(DESCRIPTION_MAX)))
    # EventType names; empty: every type.
    event_types: list[str] = SQLField(
        default_factory=list, sa_column=Column(JSONType, nullable=False)
    )
    status: str = SQLField(sa_column=Column(String(16), nullable=False))
    # Kept as given: the sender signs with it (an API key, which is only compared, is hashed).
    secret: str = SQLField(sa_column=Column(String(SECRET_MAX), nullable=False))
    # The secret before the last rotation, which also signs until it expires.
    previous_secret: str | None = SQLField(default=None, sa_column=Column(String(SECRET_MAX)))
    previous_secret_expires_at: datetime | None = _dt()
    # The last seq of the workspace's log that has its deliveries (or did not match).
    fanned_out_seq: int = SQLField(sa_column=Column(BigInteger, nullable=False))
    last_success_at: datetime | None = _dt()
    created_at: datetime = _dt(nullable=False)
    updated_at: datetime = _dt(nullable=False)
    created_by_user_id: int | None = SQLField(
        default=None, sa_column=Column(Integer, ForeignKey("users.id"))
    )
    created_by_api_key_id: int | None = SQLField(
        default=None, sa_column=Column(Integer, ForeignKey("api_keys.id"))
    )


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # An endpoint's deliveries, newest first (with a status filter, the second).
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
        Index("ix_webhook_deliveries_endpoint_status", "endpoint_id", "status", "id"),
        # The deliveries of an event: retention deletes them with it (migration 0016), and
        # PostgreSQL checks the foreign key of each event deleted through it.
        Index("ix_webhook_deliveries_event", "event_id"),
        # What is due, and a record's earlier pending deliveries: pending rows only.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=_PENDING,
            sqlite_where=_PENDING,
        ),
        Index(
            "ix_webhook_deliveries_record",
            "endpoint_id",
            "record_type",
            "record_id",
            "seq",
            postgresql_where=_PENDING,
            sqlite_where=_PENDING,
        ),
    )

    id: int | None = SQLField(default=None, sa_column=Column(Integer, primary_key=True))
    workspace_id: int = SQLField(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), nullable=False)
    )
    endpoint_id: int = SQLField(
        sa_column=Column(
            Integer, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
        )
    )
    event_id: int = SQLField(sa_column=Column(Integer, ForeignKey("events.id"), nullable=False))
    seq: int = SQLField(sa_column=Column(BigInteger, nullable=False))
    record_type: str = SQLField(sa_column=Column(String(NAME_MAX), nullable=False))
    record_id: int = SQLField(sa_column=Column(Integer, nullable=False))
    status: str = SQLField(sa_column=Column(String(16), nullable=False))
    created_at: datetime = _dt(nullable=False)
    # When it is due (PENDING only).
    next_attempt_at: datetime | None = _dt()
    attempt_count: int = SQLField(default=0, sa_column=Column(Integer, nullable=False))
    first_attempt_at: datetime | None = _dt()
    # A failed attempt is retried only if the retry would come before this; set at the first
    # attempt (that attempt + the retry window), and to the moment of a manual retry, which is
    # one more attempt.
    retry_until: datetime | None = _dt()
    # The lease of the process sending it; the token tells its claim from a later one.
    claimed_until: datetime | None = _dt()
    claim_token: str | None = SQLField(default=None, sa_column=Column(String(32)))


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "id"),)

    id: int | None = SQLField(default=None, sa_column=Column(Integer, primary_key=True))
    delivery_id: int = SQLField(
        sa_column=Column(
            Integer, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False
        )
    )
    at: datetime = _dt(nullable=False)
    response_status: int | None = SQLField(default=None, sa_column=Column(Integer))
    duration_ms: int = SQLField(sa_column=Column(Integer, nullable=False))
    error: str | None = SQLField(default=None, sa_column=Column(String(ERROR_MAX)))


# ------------------------------------------------------------------ what the API accepts

Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=URL_MAX)]


class EndpointCreate(BaseModel):
    """What createWebhookEndpoint accepts (the URL's safety is the resolver's rule)."""

    model_config = ConfigDict(extra="forbid")

    url: Url
    description: f.text(DESCRIPTION_MAX) = None  # type: ignore[valid-type]
    event_types: list[EventType] | None = None  # none or empty: every type


class EndpointUpdate(BaseModel):
    """What updateWebhookEndpoint accepts: only the fields set are written."""

    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    description: f.text(DESCRIPTION_MAX) = None  # type: ignore[valid-type]
    event_types: list[EventType] | None = None
    status: EndpointStatus | None = None

    _not_null = f.cannot_clear("url", "status")
