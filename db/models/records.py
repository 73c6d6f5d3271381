"""What every record table (leads, clients, ...) has: its id and workspace, when it was created
and last changed and by whom, its metadata; and the column shapes the tables share. A table
declares the rest: its own columns, derived keys, constraints and indexes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, String, Text
from sqlmodel import Field, SQLModel

from db.types import JSONType, UTCDateTime


def text(length: int, *, nullable: bool = True) -> Any:
    """A VARCHAR(length) column; null unless ``nullable`` is False."""
    return Field(default=None, sa_column=Column(String(length), nullable=nullable))


def long_text() -> Any:
    """A nullable TEXT column (notes)."""
    return Field(default=None, sa_column=Column(Text, nullable=True))


def search_text() -> Any:
    """The text ``search`` matches (derived, see fields.search_key)."""
    return Field(sa_column=Column(Text, nullable=False))


def metadata() -> Any:
    """The ``metadata`` JSON object, as the attribute ``meta``: SQLModel reserves the name."""
    return Field(
        default_factory=dict, sa_column=Column("metadata", JSONType, key="meta", nullable=False)
    )


def timestamp(*, nullable: bool = False) -> Any:
    """An aware UTC datetime column."""
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


class RecordTable(SQLModel):
    """The columns every record table starts with. Declared without ``sa_column`` (a Column
    belongs to one table), so each table gets its own."""

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspaces.id")
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    # Who: a member (user) or an API key; null for rows written before accounts existed.
    created_by_user_id: int | None = Field(default=None, foreign_key="users.id")
    created_by_api_key_id: int | None = Field(default=None, foreign_key="api_keys.id")
    updated_by_user_id: int | None = Field(default=None, foreign_key="users.id")
    updated_by_api_key_id: int | None = Field(default=None, foreign_key="api_keys.id")
