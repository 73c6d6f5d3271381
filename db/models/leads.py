"""The leads table and the models that validate what is written to it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Integer, text
from sqlmodel import Field

from db.models import fields as f
from db.models import records as col
from db.models.intake import external_ids_column
from db.models.records import RecordTable
from db.models.search import search_index


class LeadStatus(enum.Enum):
    NEW = "NEW"
    CONTACTED = "CONTACTED"
    QUALIFIED = "QUALIFIED"
    WON = "WON"
    LOST = "LOST"


class Lead(RecordTable, table=True):
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
        # The foreign key's check when a client is deleted (migration 0020): by the column alone.
        Index(
            "ix_leads_converted_client",
            "converted_client_id",
            sqlite_where=text("converted_client_id IS NOT NULL"),
            postgresql_where=text("converted_client_id IS NOT NULL"),
        ),
        # convertedPerDay: the conversions of the last days (migration 0014). Partial: only a
        # window's range implies its condition, so no other query takes it for its order.
        Index(
            "ix_leads_ws_converted_at",
            "workspace_id",
            "converted_at",
            sqlite_where=text("converted_at IS NOT NULL"),
            postgresql_where=text("converted_at IS NOT NULL"),
        ),
        # ownerId / unassigned filters, in the default order (migration 0010).
        Index("ix_leads_ws_owner", "workspace_id", "owner_id", "created_at", "id"),
        # Matching and duplicates: the same phone (E.164), the same company.
        Index("ix_leads_ws_phone", "workspace_id", "phone_key"),
        Index("ix_leads_ws_company", "workspace_id", "company_key"),
        # search on PostgreSQL; SQLite has the FTS5 table leads_fts (migration 0004).
        search_index("leads"),
    )

    email: str = col.text(f.EMAIL_MAX, nullable=False)
    first_name: str | None = col.text(f.NAME_MAX)
    last_name: str | None = col.text(f.NAME_MAX)
    phone: str | None = col.text(f.PHONE_MAX)
    company: str | None = col.text(f.COMPANY_MAX)
    city: str | None = col.text(f.PLACE_MAX)
    state: str | None = col.text(f.PLACE_MAX)
    postal_code: str | None = col.text(f.POSTAL_CODE_MAX)
    source: str | None = col.text(f.SOURCE_MAX)
    notes: str | None = col.long_text()
    status: str = col.text(16, nullable=False)
    score: int = Field(sa_column=Column(Integer, nullable=False))
    meta: dict[str, Any] = col.metadata()
    external_ids: list[dict[str, str]] = external_ids_column()
    converted_at: datetime | None = col.timestamp(nullable=True)
    converted_client_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("clients.id"), nullable=True)
    )
    # The member responsible (null: unassigned); removing the member unassigns.
    owner_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("users.id"), nullable=True)
    )
    # Derived, maintained by the repository on every write.
    email_key: str = col.text(f.EMAIL_MAX, nullable=False)
    name_key: str = col.text(2 * f.NAME_MAX + 1, nullable=False)
    city_key: str = col.text(f.PLACE_MAX, nullable=False)
    state_key: str = col.text(f.PLACE_MAX, nullable=False)
    source_key: str = col.text(f.SOURCE_MAX, nullable=False)
    phone_key: str = col.text(f.PHONE_MAX, nullable=False)  # E.164, or ''
    company_key: str = col.text(f.COMPANY_MAX, nullable=False)  # keys.company_key
    search_key: str = col.search_text()


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
    external_ids: f.ExternalIds = None


class LeadUpdate(_LeadFields):
    """What updateLead accepts: only the fields set are written (``model_fields_set``)."""

    email: f.Email | None = None
    status: LeadStatus | None = None
    score: f.Score | None = None
    meta: f.Metadata = None
    external_ids: f.ExternalIds = None

    _not_null = f.cannot_clear("email", "status", "score", "meta", "external_ids")
