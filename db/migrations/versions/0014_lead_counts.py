"""pipeline counts: ix_leads_ws_converted_at

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04

Issue 12. ``convertedPerDay`` counts the leads converted in the last days: without an index on
``converted_at`` it reads every lead of the workspace (1.1 s at 1M leads on SQLite); with
(workspace_id, converted_at), over converted leads only, it reads the window's index entries
alone, as ``createdPerDay`` does with ix_leads_ws_created.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Partial: a window's range (converted_at >= ...) implies the condition, the ordered
    # lookups of convertLead's convertedFrom (ORDER BY converted_at, id) do not, so they keep
    # their own index rather than walk this one.
    where = sa.text("converted_at IS NOT NULL")
    op.create_index(
        "ix_leads_ws_converted_at",
        "leads",
        ["workspace_id", "converted_at"],
        sqlite_where=where,
        postgresql_where=where,
    )


def downgrade() -> None:
    op.drop_index("ix_leads_ws_converted_at", table_name="leads")
