"""activities: notes, calls, emails and meetings on leads and clients

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

Issue 12. An activity belongs to a lead (``lead_id``), a client (``client_id``), or both: a
lead's activities get its client's id when it is converted, so that a client's timeline (its
own and its converted leads') is one scan of ``ix_activities_client``, newest first. Deleting
the lead or client deletes its activities (ON DELETE CASCADE). New table and indexes only:
``leads`` and ``clients`` are not altered (no batch rebuild of their full-text triggers).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "activities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=True),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("occurred_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("author_user_id", sa.Integer(), nullable=True),
        sa.Column("author_api_key_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["author_user_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["author_api_key_id"], ["api_keys.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_activities_lead", "activities", ["workspace_id", "lead_id", "occurred_at", "id"]
    )
    op.create_index(
        "ix_activities_client", "activities", ["workspace_id", "client_id", "occurred_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_activities_client", table_name="activities")
    op.drop_index("ix_activities_lead", table_name="activities")
    op.drop_table("activities")
