"""Tags (per workspace, unique by case-insensitive name) and which records carry them.

A record's tags live in one link table per kind (``lead_tags``, ``client_tags``): its primary
key (record, tag) answers "the tags of these records" and keeps a tag once per record; the
(tag, record) index answers "the records with this tag" (the ``tags`` filters)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic import Field as Size
from pydantic_core import PydanticCustomError
from sqlalchemy import Column, ForeignKey, Index, Integer, PrimaryKeyConstraint, String
from sqlmodel import Field, SQLModel

from db.models import fields as f
from db.types import UTCDateTime

TAG_NAME_MAX = 50
COLOR_MAX = 7
_COLOR = re.compile(r"#[0-9a-f]{6}")


class Tag(SQLModel, table=True):
    """A workspace's label. ``name_key``: the name case-folded, unique per workspace."""

    __tablename__ = "tags"
    __table_args__ = (Index("uq_tags_ws_name", "workspace_id", "name_key", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), nullable=False)
    )
    name: str = Field(sa_column=Column(String(TAG_NAME_MAX), nullable=False))
    name_key: str = Field(sa_column=Column(String(TAG_NAME_MAX), nullable=False))
    color: str | None = Field(default=None, sa_column=Column(String(COLOR_MAX), nullable=True))
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


def _link(table: str, record: str) -> Any:
    """The link table of one record kind and its tags."""
    return (
        PrimaryKeyConstraint(f"{record}_id", "tag_id", name=f"pk_{table}"),
        Index(f"ix_{table}_tag", "tag_id", f"{record}_id"),
    )


class LeadTag(SQLModel, table=True):
    __tablename__ = "lead_tags"
    __table_args__ = _link("lead_tags", "lead")

    lead_id: int = Field(
        sa_column=Column(Integer, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False)
    )
    tag_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tags.id", ondelete="CASCADE"), nullable=False)
    )
    workspace_id: int = Field(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), nullable=False)
    )


class ClientTag(SQLModel, table=True):
    __tablename__ = "client_tags"
    __table_args__ = _link("client_tags", "client")

    client_id: int = Field(
        sa_column=Column(Integer, ForeignKey("clients.id", ondelete="CASCADE"), nullable=False)
    )
    tag_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tags.id", ondelete="CASCADE"), nullable=False)
    )
    workspace_id: int = Field(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), nullable=False)
    )


def _color(value: str | None) -> str | None:
    if value is None:
        return None
    folded = value.strip().lower()
    if not _COLOR.fullmatch(folded):
        raise PydanticCustomError("color", 'A color is "#rrggbb" (hexadecimal), or null.')
    return folded


TagName = Annotated[str, BeforeValidator(f.required), Size(max_length=TAG_NAME_MAX)]
Color = Annotated[str | None, AfterValidator(_color)]


class TagCreate(BaseModel):
    """What createTag accepts: a name (trimmed, not blank) and an optional color."""

    model_config = ConfigDict(extra="forbid")

    name: TagName
    color: Color = None


class TagUpdate(BaseModel):
    """What updateTag accepts: only the fields set are written; the name cannot be cleared."""

    model_config = ConfigDict(extra="forbid")

    name: TagName | None = None
    color: Color = None

    _not_null = f.cannot_clear("name")
