"""Intake and cleanup: outside systems' IDs of leads and clients, web forms, merged leads.

An external ID is ``{system, id}`` ("salesforce", "00Q5e000001AbCd"). A record holds at most
one per system, and an id of a system names one record of a kind per workspace: both are
unique indexes here. The record's own ``external_ids`` JSON column holds the same pairs as
typed, for reading without a join; the repository writes both in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Integer, PrimaryKeyConstraint, String
from sqlmodel import Field, SQLModel

from db.models import records as col
from db.models.fields import EXTERNAL_ID_MAX, SYSTEM_MAX
from db.types import JSONType, UTCDateTime

FORM_NAME_MAX = 100
FORM_KEY_MAX = 64
ORIGIN_MAX = 255
REDIRECT_URL_MAX = 2048


class LeadExternalId(SQLModel, table=True):
    """One lead's id in one outside system. ``system_key``: the system's name folded."""

    __tablename__ = "lead_external_ids"
    __table_args__ = (
        PrimaryKeyConstraint("lead_id", "system_key", name="pk_lead_external_ids"),
        Index("uq_lead_external_ids_ws", "workspace_id", "system_key", "external_id", unique=True),
    )

    lead_id: int = Field(
        sa_column=Column(Integer, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False)
    )
    workspace_id: int = Field(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), nullable=False)
    )
    system_key: str = Field(sa_column=Column(String(SYSTEM_MAX), nullable=False))
    external_id: str = Field(sa_column=Column(String(EXTERNAL_ID_MAX), nullable=False))


class ClientExternalId(SQLModel, table=True):
    """One client's id in one outside system."""

    __tablename__ = "client_external_ids"
    __table_args__ = (
        PrimaryKeyConstraint("client_id", "system_key", name="pk_client_external_ids"),
        Index(
            "uq_client_external_ids_ws", "workspace_id", "system_key", "external_id", unique=True
        ),
    )

    client_id: int = Field(
        sa_column=Column(Integer, ForeignKey("clients.id", ondelete="CASCADE"), nullable=False)
    )
    workspace_id: int = Field(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), nullable=False)
    )
    system_key: str = Field(sa_column=Column(String(SYSTEM_MAX), nullable=False))
    external_id: str = Field(sa_column=Column(String(EXTERNAL_ID_MAX), nullable=False))


class LeadMerge(SQLModel, table=True):
    """A lead folded into another by mergeLeads: its global ID resolves to the survivor."""

    __tablename__ = "lead_merges"
    __table_args__ = (Index("ix_lead_merges_survivor", "survivor_id"),)

    merged_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    workspace_id: int = Field(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), nullable=False)
    )
    survivor_id: int = Field(
        sa_column=Column(Integer, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False)
    )
    merged_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class LeadForm(SQLModel, table=True):
    """A web form: posts to /forms/{key} become leads of the form's workspace."""

    __tablename__ = "lead_forms"
    __table_args__ = (
        Index("uq_lead_forms_key", "key", unique=True),
        Index("ix_lead_forms_ws", "workspace_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspaces.id")
    name: str = col.text(FORM_NAME_MAX, nullable=False)
    key: str = col.text(FORM_KEY_MAX, nullable=False)
    source: str | None = col.text(100)
    allowed_origins: list[str] = Field(
        default_factory=list, sa_column=Column(JSONType, nullable=False)
    )
    redirect_url: str | None = col.text(REDIRECT_URL_MAX)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_user_id: int | None = Field(default=None, foreign_key="users.id")
    created_by_api_key_id: int | None = Field(default=None, foreign_key="api_keys.id")


def external_ids_column() -> Any:
    """A record's external IDs as typed: a JSON list of {"system", "id"}."""
    return Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
