"""The leads table and the models that validate what is written to it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from db.models import fields as f
from db.models.search import search_index
from db.types import JSONType, UTCDateTime


class LeadStatus(enum.Enum):
    NEW = "NEW"
    CONTACTED = "CONTACTED"
    QUALIFIED = "QUALIFIED"
    WON = "WON"
    LOST = "LOST"


def _str(n: int, nullable: bool = True, **kw: Any) -> Any:
    return Field(default=None, sa_column=Column(String(n), nullable=nullable, **kw))


class Lead(SQLModel, table=True):
    """A prospect. The *_key columns are case-folded copies that filters and sorts use."""

    __tablename__ = "leads"
    __table_args__ = (
        CheckConstraint("score BETWEEN 0 AND 100", name="ck_leads_score"),
        CheckConstraint(
            "status IN ('NEW','CONTACTED','QUALIFIED','WON','LOST')", name="ck_leads_status"
        ),
        # Every sort key, each ending with the id tie-breaker.
        Index("ix_leads_ws_created", "workspace_id", "created_at", "id"),
        Index("ix_leads_ws_updated", "workspace_id", "updated_at", "id"),
        Index("ix_leads_ws_score", "workspace_id", "score", "id"),
        Index("ix_leads_ws_name", "workspace_id", "name_key", "id"),
        Index("ix_leads_ws_email", "workspace_id", "email_key", "id"),
        # Filters. (state, status) counts are answered by the index alone.
        Index("ix_leads_ws_status", "workspace_id", "status", "created_at", "id"),
        Index("ix_leads_ws_city", "workspace_id", "city_key"),
        Index("ix_leads_ws_state", "workspace_id", "state_key", "status"),
        Index("ix_leads_ws_source", "workspace_id", "source_key"),
        # convertedFrom: the leads converted into a page of clients.
        Index("ix_leads_ws_converted", "workspace_id", "converted_client_id"),
        # search on PostgreSQL; SQLite has the FTS5 table leads_fts (migration 0004).
        search_index("leads"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    workspace_id: int = Field(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), nullable=False)
    )
    email: str = Field(sa_column=Column(String(f.EMAIL_MAX), nullable=False))
    first_name: str | None = _str(f.NAME_MAX)
    last_name: str | None = _str(f.NAME_MAX)
    phone: str | None = _str(f.PHONE_MAX)
    company: str | None = _str(f.COMPANY_MAX)
    city: str | None = _str(f.PLACE_MAX)
    state: str | None = _str(f.PLACE_MAX)
    postal_code: str | None = _str(f.POSTAL_CODE_MAX)
    source: str | None = _str(f.SOURCE_MAX)
    notes: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    score: int = Field(sa_column=Column(Integer, nullable=False))
    meta: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSONType, key="meta", nullable=False)
    )
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    converted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    converted_client_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("clients.id"), nullable=True)
    )
    # Who: a member (user) or an API key; null for rows written before accounts existed.
    created_by_user_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("users.id", name="fk_leads_created_by_user"), nullable=True
        ),
    )
    created_by_api_key_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("api_keys.id", name="fk_leads_created_by_api_key"), nullable=True
        ),
    )
    updated_by_user_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("users.id", name="fk_leads_updated_by_user"), nullable=True
        ),
    )
    updated_by_api_key_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("api_keys.id", name="fk_leads_updated_by_api_key"), nullable=True
        ),
    )
    # Derived, maintained by the repository on every write.
    email_key: str = Field(sa_column=Column(String(f.EMAIL_MAX), nullable=False))
    name_key: str = Field(sa_column=Column(String(2 * f.NAME_MAX + 1), nullable=False))
    city_key: str = Field(sa_column=Column(String(f.PLACE_MAX), nullable=False))
    state_key: str = Field(sa_column=Column(String(f.PLACE_MAX), nullable=False))
    source_key: str = Field(sa_column=Column(String(f.SOURCE_MAX), nullable=False))
    search_key: str = Field(sa_column=Column(Text, nullable=False))


class _LeadFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_name: f.text(f.NAME_MAX) = None  # type: ignore[valid-type]
    last_name: f.text(f.NAME_MAX) = None  # type: ignore[valid-type]
    phone: f.text(f.PHONE_MAX) = None  # type: ignore[valid-type]
    company: f.text(f.COMPANY_MAX) = None  # type: ignore[valid-type]
    city: f.text(f.PLACE_MAX) = None  # type: ignore[valid-type]
    state: f.text(f.PLACE_MAX) = None  # type: ignore[valid-type]
    postal_code: f.text(f.POSTAL_CODE_MAX) = None  # type: ignore[valid-type]
    source: f.text(f.SOURCE_MAX) = None  # type: ignore[valid-type]
    notes: f.text(f.NOTES_MAX) = None  # type: ignore[valid-type]


class LeadCreate(_LeadFields):
    """What createLead accepts; only the email is required."""

    email: f.Email
    status: LeadStatus = LeadStatus.NEW
    score: f.Score = 0
    meta: f.Metadata = None


class LeadUpdate(_LeadFields):
    """What updateLead accepts: only the fields set are written (``model_fields_set``)."""

    email: f.Email | None = None
    status: LeadStatus | None = None
    score: f.Score | None = None
    meta: f.Metadata = None

    @field_validator("email", "status", "score", "meta", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("blank", "This field cannot be cleared.")
        return value
