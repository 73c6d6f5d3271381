"""follow-ups: a title, a due time and an assignee, on a lead or client

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04

Issue 12. A follow-up belongs to a lead (``lead_id``) or a client (``client_id``); deleting
its subject deletes it (ON DELETE CASCADE). Its indexes serve Query.followUps by status and
due time (or creation), a member's follow-ups, a lead's or client's (and the leads filter's
EXISTS on a due window), and the reminder scheduler's scan of OPEN ones not reminded yet.
New table and indexes only: ``leads`` and ``clients`` are not altered.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = {
    "ix_follow_ups_status_due": ["workspace_id", "status", "due_at", "id"],
    "ix_follow_ups_status_created": ["workspace_id", "status", "created_at", "id"],
    "ix_follow_ups_assignee": ["workspace_id", "assignee_user_id", "status", "due_at"],
    "ix_follow_ups_lead": ["workspace_id", "lead_id", "status", "due_at", "id"],
    "ix_follow_ups_client": ["workspace_id", "client_id", "status", "due_at", "id"],
    "ix_follow_ups_reminder": ["status", "reminded_at", "due_at"],
}


def upgrade() -> None:
    op.create_table(
        "follow_ups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=True),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("due_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("assignee_user_id", sa.Integer(), nullable=True),
        sa.Column("completed_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_by_api_key_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["assignee_user_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["created_by_user_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["created_by_api_key_id"], ["api_keys.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    for name, columns in _INDEXES.items():
        op.create_index(name, "follow_ups", columns)


def downgrade() -> None:
    for name in reversed(_INDEXES):
        op.drop_index(name, table_name="follow_ups")
    op.drop_table("follow_ups")
