"""The change-event log: one row per committed change to a record, ordered per workspace.

``seq`` is the event's place in its workspace's log, handed out by ``event_counters`` inside
the writing transaction, just before it commits (db/repositories/events.py): the counter's row
lock makes the next writer of the workspace wait for that commit, so seq order is commit order.
``changes`` holds the only copy of field values an event keeps (a JSON list of
``{"field", "from", "to"}``), so that erasing a person's data can find and blank it there.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String
from sqlmodel import Field, SQLModel

from db.types import JSONType, UTCDateTime


class EventType(enum.Enum):
    """What happened to a record. A new type is a member here (no constraint lists them) and a
    line in resolvers/events.py's ``EVENT_TYPES``."""

    LEAD_CREATED = "LEAD_CREATED"
    LEAD_UPDATED = "LEAD_UPDATED"
    LEAD_DELETED = "LEAD_DELETED"
    LEAD_CONVERTED = "LEAD_CONVERTED"
    LEAD_MERGED = "LEAD_MERGED"
    CLIENT_CREATED = "CLIENT_CREATED"
    CLIENT_UPDATED = "CLIENT_UPDATED"
    CLIENT_ARCHIVED = "CLIENT_ARCHIVED"
    CLIENT_RESTORED = "CLIENT_RESTORED"
    # One per bulk import that wrote leads, when it ends (its record: the ImportJob), instead
    # of one per lead: webhooks and subscriptions are not flooded by a million rows.
    LEADS_IMPORTED = "LEADS_IMPORTED"
    # An activity logged on (or edited) a lead or client: the event's record is that subject.
    ACTIVITY_ADDED = "ACTIVITY_ADDED"
    ACTIVITY_UPDATED = "ACTIVITY_UPDATED"
    TICKET_CREATED = "TICKET_CREATED"
    TICKET_UPDATED = "TICKET_UPDATED"
    TICKET_COMMENTED = "TICKET_COMMENTED"
    # A follow-up created or changed: the event's record is the follow-up.
    FOLLOW_UP_CREATED = "FOLLOW_UP_CREATED"
    FOLLOW_UP_UPDATED = "FOLLOW_UP_UPDATED"
    # eraseContact ran: its record is the workspace, its changes the counts (never the data).
    CONTACT_ERASED = "CONTACT_ERASED"


# Type names (as global IDs spell them) and event type names fit in this.
NAME_MAX = 40
REQUEST_ID_MAX = 64  # server.py accepts an X-Request-ID of at most 64 characters


class Event(SQLModel, table=True):
    __tablename__ = "events"
    __table_args__ = (
        # The log in order (events, and `after` cursors); one seq per workspace.
        Index("uq_events_ws_seq", "workspace_id", "seq", unique=True),
        # A record's history, and every event of a record (to erase what they hold).
        Index("ix_events_ws_record", "workspace_id", "record_type", "record_id", "seq"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    workspace_id: int = Field(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), nullable=False)
    )
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    type: str = Field(sa_column=Column(String(NAME_MAX), nullable=False))
    # The record (no foreign key: the event outlives a deleted lead).
    record_type: str = Field(sa_column=Column(String(NAME_MAX), nullable=False))
    record_id: int = Field(sa_column=Column(Integer, nullable=False))
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    actor_user_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("users.id"), nullable=True)
    )
    actor_api_key_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("api_keys.id"), nullable=True)
    )
    request_id: str | None = Field(
        default=None, sa_column=Column(String(REQUEST_ID_MAX), nullable=True)
    )
    changes: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONType, nullable=False)
    )


class EventCounter(SQLModel, table=True):
    """The last seq handed out in a workspace; its row is locked from the moment a write takes
    its seqs until that write commits."""

    __tablename__ = "event_counters"

    workspace_id: int = Field(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), primary_key=True)
    )
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
