"""The clients table and the models that validate what is written to it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from db.models import fields as f
from db.models.leads import _str
from db.models.search import search_index
from db.types import JSONType, UTCDateTime


class ClientStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"


class Client(SQLModel, table=True):
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
        # search on PostgreSQL; SQLite has the FTS5 table clients_fts (migration 0004).
        search_index("clients"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    workspace_id: int = Field(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), nullable=False)
    )
    email: str = Field(sa_column=Column(String(f.EMAIL_MAX), nullable=False))
    first_name: str = Field(sa_column=Column(String(f.NAME_MAX), nullable=False))
    last_name: str = Field(sa_column=Column(String(f.NAME_MAX), nullable=False))
    phone: str | None = _str(f.PHONE_MAX)
    company: str | None = _str(f.COMPANY_MAX)
    street: str | None = _str(f.STREET_MAX)
    city: str | None = _str(f.PLACE_MAX)
    state: str | None = _str(f.PLACE_MAX)
    postal_code: str | None = _str(f.POSTAL_CODE_MAX)
    country: str | None = _str(2)
    status: str = Field(sa_column=Column(String(16), nullable=False))
    archived_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    notes: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    meta: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSONType, key="meta", nullable=False)
    )
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # Who: a member (user) or an API key; null for rows written before accounts existed.
    created_by_user_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("users.id", name="fk_clients_created_by_user"), nullable=True
        ),
    )
    created_by_api_key_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("api_keys.id", name="fk_clients_created_by_api_key"), nullable=True
        ),
    )
    updated_by_user_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("users.id", name="fk_clients_updated_by_user"), nullable=True
        ),
    )
    updated_by_api_key_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("api_keys.id", name="fk_clients_updated_by_api_key"), nullable=True
        ),
    )
    # Derived, maintained by the repository on every write.
    email_key: str = Field(sa_column=Column(String(f.EMAIL_MAX), nullable=False))
    name_key: str = Field(sa_column=Column(String(2 * f.NAME_MAX + 1), nullable=False))
    city_key: str = Field(sa_column=Column(String(f.PLACE_MAX), nullable=False))
    state_key: str = Field(sa_column=Column(String(f.PLACE_MAX), nullable=False))
    search_key: str = Field(sa_column=Column(Text, nullable=False))


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


class ClientUpdate(_ClientFields):
    email: f.Email | None = None
    first_name: f.RequiredName | None = None
    last_name: f.RequiredName | None = None
    meta: f.Metadata = None

    @field_validator("email", "first_name", "last_name", "meta", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("blank", "This field cannot be cleared.")
        return value
