"""change events: the ordered log and its per-workspace counters

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Issue 10: every committed change to a lead or client appends one row to ``events`` in the same
transaction. ``seq`` orders a workspace's events by commit: a write takes its seqs from
``event_counters`` (an upsert that adds to ``last_seq``) just before it commits, and the
counter's row lock makes the workspace's next writer wait for that commit. ``changes`` (JSON)
is where an event keeps field values, so that they can be found and blanked later.
``(workspace_id, record_type, record_id, seq)`` serves a record's history.

Records written before this migration have no events: the log starts here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import db.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("record_type", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("actor_api_key_id", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column(
            "changes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.ForeignKeyConstraint(["actor_user_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["actor_api_key_id"], ["api_keys.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("uq_events_ws_seq", ["workspace_id", "seq"], unique=True)
        batch_op.create_index(
            "ix_events_ws_record",
            ["workspace_id", "record_type", "record_id", "seq"],
            unique=False,
        )
    op.create_table(
        "event_counters",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint("workspace_id"),
    )


def downgrade() -> None:
    op.drop_table("event_counters")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_ws_record")
        batch_op.drop_index("uq_events_ws_seq")
    op.drop_table("events")
