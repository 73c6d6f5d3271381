"""Follow-ups: a title, a due time and an assignee, on a lead or a client.

A follow-up belongs to a lead (``lead_id``) or a client (``client_id``), never both; deleting
its subject deletes it (ON DELETE CASCADE). ``completed_at`` is set when it becomes DONE and
cleared when it is reopened. ``reminded_at``: when its assignee's reminder was claimed (the
scheduler sends one email at ``due_at`` while it is OPEN; see resolvers/follow_ups.py).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic import Field as Size
from pydantic_core import PydanticCustomError
from sqlalchemy import Column, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from db.models import fields as f
from db.types import UTCDateTime

TITLE_MAX = 200
NOTES_MAX = 10_000
STATUS_MAX = 16


class FollowUpStatus(enum.Enum):
    OPEN = "OPEN"
    DONE = "DONE"
    CANCELLED = "CANCELLED"


class DueWindow(enum.Enum):
    OVERDUE = "OVERDUE"
    TODAY = "TODAY"
    NEXT_7_DAYS = "NEXT_7_DAYS"


# The earliest instant a window starts at (OVERDUE has no lower bound): a constant keeps the
# filter's statement one shape, whatever the window.
_EPOCH = datetime(1, 1, 2, tzinfo=UTC)


def due_range(window: DueWindow, now: datetime) -> tuple[datetime, datetime]:
    """[gte, lt) of a window, in UTC: OVERDUE before now; TODAY the UTC date of now, midnight
    to midnight; NEXT_7_DAYS from now to now + 7 days."""
    if window is DueWindow.OVERDUE:
        return _EPOCH, now
    if window is DueWindow.TODAY:
        midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight, midnight + timedelta(days=1)
    return now, now + timedelta(days=7)


class FollowUp(SQLModel, table=True):
    __tablename__ = "follow_ups"
    __table_args__ = (
        # Query.followUps: by status, due first (the default) or newest first.
        Index("ix_follow_ups_status_due", "workspace_id", "status", "due_at", "id"),
        # A foreign key's own index (migration 0016): deleting the parent row looks its
        # children up by this column alone (no workspace), once per row deleted.
        Index("ix_follow_ups_lead_fk", "lead_id"),
        Index("ix_follow_ups_client_fk", "client_id"),
        Index("ix_follow_ups_status_created", "workspace_id", "status", "created_at", "id"),
        # Someone's follow-ups (mine, assigneeId), and unassigning a removed member's.
        Index("ix_follow_ups_assignee", "workspace_id", "assignee_user_id", "status", "due_at"),
        # A lead's or client's follow-ups, due first; the leads filter's EXISTS per lead.
        Index("ix_follow_ups_lead", "workspace_id", "lead_id", "status", "due_at", "id"),
        Index("ix_follow_ups_client", "workspace_id", "client_id", "status", "due_at", "id"),
        # The reminder scheduler: OPEN ones not reminded yet, by due time, every workspace.
        Index("ix_follow_ups_reminder", "status", "reminded_at", "due_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    workspace_id: int = Field(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), nullable=False)
    )
    lead_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("leads.id", ondelete="CASCADE"), nullable=True),
    )
    client_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("clients.id", ondelete="CASCADE"), nullable=True),
    )
    title: str = Field(sa_column=Column(String(TITLE_MAX), nullable=False))
    notes: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: str = Field(sa_column=Column(String(STATUS_MAX), nullable=False))
    assignee_user_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("users.id"), nullable=True)
    )
    completed_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    reminded_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_by_user_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("users.id"), nullable=True)
    )
    created_by_api_key_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("api_keys.id"), nullable=True)
    )


# ------------------------------------------------------------------ what the API accepts


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise PydanticCustomError("naive", "The time needs a UTC offset.")
    return value.astimezone(UTC)


Title = Annotated[str, BeforeValidator(f.required), Size(max_length=TITLE_MAX)]
DueAt = Annotated[datetime, AfterValidator(_aware)]


class FollowUpCreate(BaseModel):
    """What createFollowUp accepts besides its subject and assignee."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    due_at: DueAt
    notes: f.text(NOTES_MAX) = None  # type: ignore[valid-type]


class FollowUpUpdate(BaseModel):
    """What updateFollowUp accepts besides the assignee: every field optional; only notes
    can be cleared."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    due_at: DueAt | None = None
    notes: f.text(NOTES_MAX) = None  # type: ignore[valid-type]
    status: FollowUpStatus | None = None


def values_of(data: BaseModel, *, only_set: bool) -> dict[str, Any]:
    """A validated model's values as the table's columns (the status by its name)."""
    values = data.model_dump(exclude_unset=only_set)
    if isinstance(values.get("status"), FollowUpStatus):
        values["status"] = values["status"].value
    return values
