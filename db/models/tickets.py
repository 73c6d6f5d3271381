"""Support tickets on clients, their comment threads, and the per-workspace ticket numbers.

A ticket's ``number`` (1, 2, 3 ... per workspace) comes from ``ticket_counters``: the writing
transaction increments its workspace's row (an upsert), which holds the row's lock until it
commits, so concurrent creators take turns and a rolled-back creation gives its number back.
``priority_rank`` stores the priority's place (LOW 0 < NORMAL 1 < HIGH 2 < URGENT 3) so that
the PRIORITY sort is an indexed keyset like any other.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    Text,
)
from sqlmodel import Field as Column_
from sqlmodel import SQLModel

from db.models import fields as f
from db.models import records as col
from db.models.records import RecordTable
from db.models.search import search_index
from db.types import UTCDateTime

SUBJECT_MAX = 200
DESCRIPTION_MAX = 10_000
COMMENT_MAX = 10_000


class TicketStatus(enum.Enum):
    OPEN = "OPEN"
    PENDING = "PENDING"
    RESOLVED = "RESOLVED"
    CLOSED = "CLOSED"


class TicketPriority(enum.Enum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"
    URGENT = "URGENT"


# A ticket is open (ClientFilter.hasOpenTicket; a removed member's tickets are unassigned)
# while it waits on someone.
OPEN_STATUSES = (TicketStatus.OPEN.value, TicketStatus.PENDING.value)
PRIORITY_RANK = {p.value: rank for rank, p in enumerate(TicketPriority)}


class Ticket(RecordTable, table=True):
    """A client's support request."""

    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(
            "status IN ('OPEN','PENDING','RESOLVED','CLOSED')", name="ck_tickets_status"
        ),
        CheckConstraint("priority IN ('LOW','NORMAL','HIGH','URGENT')", name="ck_tickets_priority"),
        # Every index starts with the workspace (the search's FTS5 plan relies on it).
        Index("uq_tickets_ws_number", "workspace_id", "number", unique=True),
        # A foreign key's own index (migration 0016): deleting the parent row looks its
        # children up by this column alone (no workspace), once per row deleted.
        Index("ix_tickets_client_fk", "client_id"),
        Index("ix_tickets_ws_created", "workspace_id", "created_at", "id"),
        Index("ix_tickets_ws_updated", "workspace_id", "updated_at", "id"),
        Index("ix_tickets_ws_priority", "workspace_id", "priority_rank", "id"),
        Index("ix_tickets_ws_status", "workspace_id", "status", "created_at", "id"),
        Index("ix_tickets_ws_client", "workspace_id", "client_id", "created_at", "id"),
        # hasOpenTicket's EXISTS: a client's tickets by status.
        Index("ix_tickets_ws_client_status", "workspace_id", "client_id", "status"),
        Index("ix_tickets_ws_assignee", "workspace_id", "assignee_user_id", "status"),
        search_index("tickets"),
    )

    number: int = Column_(sa_column=Column(Integer, nullable=False))
    client_id: int = Column_(sa_column=Column(Integer, ForeignKey("clients.id"), nullable=False))
    subject: str = col.text(SUBJECT_MAX, nullable=False)
    description: str | None = col.long_text()
    status: str = col.text(16, nullable=False)
    priority: str = col.text(16, nullable=False)
    priority_rank: int = Column_(sa_column=Column(Integer, nullable=False))
    assignee_user_id: int | None = Column_(
        default=None, sa_column=Column(Integer, ForeignKey("users.id"), nullable=True)
    )
    first_response_at: datetime | None = col.timestamp(nullable=True)
    resolved_at: datetime | None = col.timestamp(nullable=True)
    # Derived: subject and description folded (fields.search_key).
    search_key: str = col.search_text()


class TicketComment(SQLModel, table=True):
    """A reply on a ticket (``internal``: a note for the team). Oldest first by id."""

    __tablename__ = "ticket_comments"
    __table_args__ = (
        Index("ix_ticket_comments_ws_ticket", "workspace_id", "ticket_id", "id"),
        # The foreign key's own index (migration 0016): deleting a ticket finds its comments.
        Index("ix_ticket_comments_ticket_fk", "ticket_id"),
    )

    id: int | None = Column_(default=None, primary_key=True)
    workspace_id: int = Column_(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), nullable=False)
    )
    ticket_id: int = Column_(
        sa_column=Column(Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False)
    )
    body: str = Column_(sa_column=Column(Text, nullable=False))
    internal: bool = Column_(sa_column=Column(Boolean, nullable=False))
    author_user_id: int | None = Column_(
        default=None, sa_column=Column(Integer, ForeignKey("users.id"), nullable=True)
    )
    author_api_key_id: int | None = Column_(
        default=None, sa_column=Column(Integer, ForeignKey("api_keys.id"), nullable=True)
    )
    created_at: datetime = Column_(sa_column=Column(UTCDateTime(), nullable=False))


class TicketCounter(SQLModel, table=True):
    """The last ticket number handed out in a workspace."""

    __tablename__ = "ticket_counters"

    workspace_id: int = Column_(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), primary_key=True)
    )
    last_number: int = Column_(sa_column=Column(Integer, nullable=False))


Subject = Annotated[str, BeforeValidator(f.required), Field(max_length=SUBJECT_MAX)]
Body = Annotated[str, BeforeValidator(f.required), Field(max_length=COMMENT_MAX)]


class TicketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: Subject
    description: f.text(DESCRIPTION_MAX) = None  # type: ignore[valid-type]
    priority: TicketPriority = TicketPriority.NORMAL


class TicketUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: Subject | None = None
    description: f.text(DESCRIPTION_MAX) = None  # type: ignore[valid-type]
    priority: TicketPriority | None = None
    status: TicketStatus | None = None

    _not_null = f.cannot_clear("subject", "priority", "status")


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Body
    internal: bool = False


class CommentUpdate(BaseModel):
    """What updateTicketComment accepts: the body (whether it is internal stays as written:
    a note made public later would change when the ticket was first answered)."""

    model_config = ConfigDict(extra="forbid")

    body: Body
