"""Activities: notes, calls, emails and meetings logged on a lead or a client.

One timeline: an activity logged on a lead has ``lead_id``; when the lead is converted,
convertLead sets ``client_id`` on the lead's activities in its own transaction (and one logged
on a converted lead gets both), so a client's timeline is one indexed scan of ``client_id``:
its own activities and those of every lead converted into it. The subject an activity was
logged on is its lead when it has one, else its client.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic import Field as Size
from pydantic_core import PydanticCustomError
from sqlalchemy import Column, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from db.models import fields as f
from db.types import UTCDateTime, utcnow

BODY_MAX = 10_000
KIND_MAX = 16
# How far ahead occurredAt may be: a meeting logged with tomorrow's time zone slip is fine,
# next month is a typo (or a follow-up, which is not an activity).
FUTURE_MAX = timedelta(days=1)
# How long after logging it the author may still edit an activity.
EDIT_WINDOW = timedelta(minutes=15)


class ActivityKind(enum.Enum):
    NOTE = "NOTE"
    CALL = "CALL"
    EMAIL = "EMAIL"
    MEETING = "MEETING"


class Activity(SQLModel, table=True):
    __tablename__ = "activities"
    __table_args__ = (
        # A lead's timeline and a client's (its own and its converted leads'), newest first.
        Index("ix_activities_lead", "workspace_id", "lead_id", "occurred_at", "id"),
        Index("ix_activities_client", "workspace_id", "client_id", "occurred_at", "id"),
        # A foreign key's own index (migration 0016): deleting the parent row looks its
        # children up by this column alone (no workspace), once per row deleted.
        Index("ix_activities_lead_fk", "lead_id"),
        Index("ix_activities_client_fk", "client_id"),
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
    kind: str = Field(sa_column=Column(String(KIND_MAX), nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    author_user_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("users.id"), nullable=True)
    )
    author_api_key_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("api_keys.id"), nullable=True)
    )


# ------------------------------------------------------------------ what the API accepts


def _aware(value: datetime) -> datetime:
    # The DateTime scalar gives aware datetimes; a naive one would compare with nothing.
    if value.tzinfo is None:
        raise PydanticCustomError("naive", "The time needs a UTC offset.")
    if value - utcnow() > FUTURE_MAX:
        raise PydanticCustomError(
            "future", "occurredAt may be at most a day in the future (a follow-up is for later)."
        )
    return value


Body = Annotated[str, BeforeValidator(f.required), Size(max_length=BODY_MAX)]
OccurredAt = Annotated[datetime, AfterValidator(_aware)]


class ActivityCreate(BaseModel):
    """What addActivity accepts besides its subject."""

    model_config = ConfigDict(extra="forbid")

    kind: ActivityKind
    body: Body
    occurred_at: OccurredAt | None = None


class ActivityUpdate(BaseModel):
    """What updateActivity accepts: every field optional, none can be cleared."""

    model_config = ConfigDict(extra="forbid")

    kind: ActivityKind | None = None
    body: Body | None = None
    occurred_at: OccurredAt | None = None


def editable(created_at: datetime, now: datetime, *, author: bool, admin: bool) -> bool:
    """Whether a caller may edit an activity: its author within EDIT_WINDOW of logging it;
    an ADMIN or OWNER at any time (to correct or redact what a member logged)."""
    return admin or (author and now - created_at <= EDIT_WINDOW)


def values_of(data: BaseModel, *, only_set: bool) -> dict[str, Any]:
    """A validated model's values as the table's columns (the kind by its name)."""
    values = data.model_dump(exclude_unset=only_set)
    if isinstance(values.get("kind"), ActivityKind):
        values["kind"] = values["kind"].value
    return values
