"""retention policy: the workspace's policy and when its next scheduled run is due

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-04

Issue 13. A workspace's retention policy is four columns of its row (null days: keep), and
``retention_due_at`` says when the scheduler may next run it: a process claims a run by moving
it forward in one committed conditional UPDATE (so one process runs it, and a restart neither
skips nor repeats a run). The index lets the scheduler find the due workspaces without reading
every one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


FK_INDEXES = (
    ("activities", "ix_activities_lead_fk", "lead_id"),
    ("activities", "ix_activities_client_fk", "client_id"),
    ("follow_ups", "ix_follow_ups_lead_fk", "lead_id"),
    ("follow_ups", "ix_follow_ups_client_fk", "client_id"),
    ("tickets", "ix_tickets_client_fk", "client_id"),
    ("ticket_comments", "ix_ticket_comments_ticket_fk", "ticket_id"),
)


def upgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("retention_leads_days", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("retention_clients_days", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("retention_events_days", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column(
                "retention_action",
                sa.String(16),
                nullable=False,
                server_default="DELETE",
            )
        )
        batch.add_column(
            sa.Column("retention_due_at", db.types.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_index("ix_workspaces_retention_due", "workspaces", ["retention_due_at"])
    # Retention deletes old events with their deliveries, found by event (and PostgreSQL
    # checks the deliveries' foreign key for each event deleted: without it, a scan each).
    op.create_index("ix_webhook_deliveries_event", "webhook_deliveries", ["event_id"])
    # Deleting a lead, client or ticket makes both engines look up the rows that refer to it
    # by the foreign key's column alone; the indexes there start with workspace_id, so each
    # row deleted scanned the child table (SQLite: EXPLAIN QUERY PLAN "SCAN activities"),
    # which retention, deleting thousands, cannot afford. (Not on leads: every index of a
    # searchable table starts with workspace_id, db/repositories/search.py; deleting a client
    # still reads leads for its converted ones.)
    for table, name, column in FK_INDEXES:
        op.create_index(name, table, [column])


def downgrade() -> None:
    for table, name, _ in FK_INDEXES:
        op.drop_index(name, table_name=table)
    op.drop_index("ix_webhook_deliveries_event", table_name="webhook_deliveries")
    op.drop_index("ix_workspaces_retention_due", table_name="workspaces")
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("retention_due_at")
        batch.drop_column("retention_action")
        batch.drop_column("retention_events_days")
        batch.drop_column("retention_clients_days")
        batch.drop_column("retention_leads_days")
