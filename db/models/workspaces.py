"""Workspaces own leads and clients; every row is scoped to one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from db.types import UTCDateTime, utcnow

# Until accounts exist every request works in this workspace (created by the first migration).
DEFAULT_WORKSPACE_ID = 1


class Workspace(SQLModel, table=True):
    __tablename__ = "workspaces"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(100), nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
