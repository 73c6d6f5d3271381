"""The clients table and the models that validate what is written to it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Integer
from sqlmodel import Field

from db.models import fields as f
from db.models import records as col
from db.models.intake import external_ids_column
from db.models.records import RecordTable
from db.models.search import search_index


class ClientStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"


class Client(RecordTable, table=True):
    """A customer. Never hard-deleted: archived and restored."""

    __tablename__ = "clients"
    __table_args__ = (
        CheckConstraint("status IN ('ACTIVE','ARCHIVED')", name="ck_clients_status"),
        # Emails are unique per workspace, case-insensitively.
        Index("uq_clients_ws_email", "workspace_id", "email_key", unique=True),
        Index("ix_clients_ws_created", "workspace_id", "created_at", "id"),
        Index("ix_clients_ws_updated", "workspace_id", "updated_at", "id"),
        Index("ix_clients_ws_name", "workspace_id", "name_key", "id"),
        Index("ix_clients_ws_status", "workspace_id", "status", "created_at", "id"),
        Index("ix_clients_ws_city", "workspace_id", "city_key"),
        Index("ix_clients_ws_state", "workspace_id", "state_key"),
        # ownerId filter, in the default order (migration 0010).
        Index("ix_clients_ws_owner", "workspace_id", "owner_id", "created_at", "id"),
        # search on PostgreSQL; SQLite has the FTS5 table clients_fts (migration 0004).
        search_index("clients"),
    )

    email: str = col.text(f.EMAIL_MAX, nullable=False)
    first_name: str = col.text(f.NAME_MAX, nullable=False)
    last_name: str = col.text(f.NAME_MAX, nullable=False)
    phone: str | None = col.text(f.PHONE_MAX)
    company: str | None = col.text(f.COMPANY_MAX)
    street: str | None = col.text(f.STREET_MAX)
    city: str | None = col.text(f.PLACE_MAX)
    state: str | None = col.text(f.PLACE_MAX)
    postal_code: str | None = col.text(f.POSTAL_CODE_MAX)
    country: str | None = col.text(2)
    status: str = col.text(16, nullable=False)
    archived_at: datetime | None = col.timestamp(nullable=True)
    notes: str | None = col.long_text()
    meta: dict[str, Any] = col.metadata()
    external_ids: list[dict[str, str]] = external_ids_column()
    # The member responsible (null: unassigned); removing the member unassigns.
    owner_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("users.id"), nullable=True)
    )
    # Derived, maintained by the repository on every write.
    email_key: str = col.text(f.EMAIL_MAX, nullable=False)
    name_key: str = col.text(2 * f.NAME_MAX + 1, nullable=False)
    city_key: str = col.text(f.PLACE_MAX, nullable=False)
    state_key: str = col.text(f.PLACE_MAX, nullable=False)
    search_key: str = col.search_text()


class AddressIn(BaseModel):
    """Address parts; on update only the parts set are written."""

    model_config = ConfigDict(extra="forbid")

    street: f.text(f.STREET_MAX) = None  # type: ignore[valid-type]
    city: f.text(f.PLACE_MAX) = None  # type: ignore[valid-type]
    state: f.text(f.PLACE_MAX) = None  # type: ignore[valid-type]
    postal_code: f.text(f.POSTAL_CODE_MAX) = None  # type: ignore[valid-type]
    country: f.Country = None


class _ClientFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: f.text(f.PHONE_MAX) = None  # type: ignore[valid-type]
    company: f.text(f.COMPANY_MAX) = None  # type: ignore[valid-type]
    notes: f.text(f.NOTES_MAX) = None  # type: ignore[valid-type]
    address: AddressIn | None = None


class ClientCreate(_ClientFields):
    email: f.Email
    first_name: f.RequiredName
    last_name: f.RequiredName
    meta: f.Metadata = None
    external_ids: f.ExternalIds = None


class ClientUpdate(_ClientFields):
    email: f.Email | None = None
    first_name: f.RequiredName | None = None
    last_name: f.RequiredName | None = None
    meta: f.Metadata = None
    external_ids: f.ExternalIds = None

    _not_null = f.cannot_clear("email", "first_name", "last_name", "meta", "external_ids")
