"""leads: an index on converted_client_id alone, for the foreign key's check

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05

Deleting a client (retention of archived clients, the API's deletes) makes the database look
for leads still pointing at it (``leads.converted_client_id``'s foreign key). Every index of
``leads`` starts with the workspace, so that look-up read the whole table: 35.7 ms per client
deleted at 1,000,000 leads on SQLite (a retention transaction of 100 clients held the writer
for 3.6 s); with this index, 0.05 ms. Partial (only converted leads have the column set): small,
and only a condition on the column implies it, so no other query takes it for its order.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHERE = sa.text("converted_client_id IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_leads_converted_client",
        "leads",
        ["converted_client_id"],
        sqlite_where=_WHERE,
        postgresql_where=_WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_leads_converted_client", table_name="leads")
