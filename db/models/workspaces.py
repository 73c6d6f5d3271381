"""Workspaces own leads and clients; every row is scoped to one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Integer, String
from sqlmodel import Field, SQLModel

from db.types import UTCDateTime, utcnow

# Until accounts exist every request works in this workspace (created by the first migration).
DEFAULT_WORKSPACE_ID = 1


class Workspace(SQLModel, table=True):
    __tablename__ = "workspaces"
    # The retention scheduler's due workspaces (migration 0016).
    __table_args__ = (Index("ix_workspaces_retention_due", "retention_due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(100), nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    # The retention policy (README, Retention and erasure): after how many days unconverted
    # leads untouched, clients archived, and events are removed; null keeps them. The action
    # (DELETE or ANONYMIZE) applies to leads and clients; events are always deleted.
    retention_leads_days: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    retention_clients_days: int | None = Field(
        default=None, sa_column=Column(Integer, nullable=True)
    )
    retention_events_days: int | None = Field(
        default=None, sa_column=Column(Integer, nullable=True)
    )
    retention_action: str = Field(
        default="DELETE",
        sa_column=Column(String(16), nullable=False, server_default="DELETE"),
    )
    # When the scheduler may next apply the policy (claimed by moving it forward); null: now.
    retention_due_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
