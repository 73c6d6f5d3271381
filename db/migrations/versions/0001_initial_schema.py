"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Workspaces, leads and clients, with an index for every sort key and filter, and the
default workspace that every request uses until accounts exist.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from db.types import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    workspaces = sa.table(
        "workspaces",
        sa.column("id", sa.Integer()),
        sa.column("name", sa.String()),
        sa.column("created_at", UTCDateTime()),
    )
    op.bulk_insert(
        workspaces,
        [{"id": 1, "name": "Default", "created_at": datetime.now(UTC)}],
    )
    op.create_table(
        "clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=50), nullable=True),
        sa.Column("company", sa.String(length=200), nullable=True),
        sa.Column("street", sa.String(length=200), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("state", sa.String(length=100), nullable=True),
        sa.Column("postal_code", sa.String(length=20), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("archived_at", UTCDateTime(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("email_key", sa.String(length=254), nullable=False),
        sa.Column("name_key", sa.String(length=201), nullable=False),
        sa.Column("city_key", sa.String(length=100), nullable=False),
        sa.Column("state_key", sa.String(length=100), nullable=False),
        sa.Column("search_key", sa.Text(), nullable=False),
        sa.CheckConstraint("status IN ('ACTIVE','ARCHIVED')", name="ck_clients_status"),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.create_index("ix_clients_ws_city", ["workspace_id", "city_key"], unique=False)
        batch_op.create_index(
            "ix_clients_ws_created", ["workspace_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_clients_ws_name", ["workspace_id", "name_key", "id"], unique=False
        )
        batch_op.create_index("ix_clients_ws_state", ["workspace_id", "state_key"], unique=False)
        batch_op.create_index(
            "ix_clients_ws_status", ["workspace_id", "status", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_clients_ws_updated", ["workspace_id", "updated_at", "id"], unique=False
        )
        batch_op.create_index("uq_clients_ws_email", ["workspace_id", "email_key"], unique=True)

    op.create_table(
        "leads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("phone", sa.String(length=50), nullable=True),
        sa.Column("company", sa.String(length=200), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("state", sa.String(length=100), nullable=True),
        sa.Column("postal_code", sa.String(length=20), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("converted_at", UTCDateTime(), nullable=True),
        sa.Column("converted_client_id", sa.Integer(), nullable=True),
        sa.Column("email_key", sa.String(length=254), nullable=False),
        sa.Column("name_key", sa.String(length=201), nullable=False),
        sa.Column("city_key", sa.String(length=100), nullable=False),
        sa.Column("state_key", sa.String(length=100), nullable=False),
        sa.Column("source_key", sa.String(length=100), nullable=False),
        sa.Column("search_key", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "status IN ('NEW','CONTACTED','QUALIFIED','WON','LOST')", name="ck_leads_status"
        ),
        sa.CheckConstraint("score BETWEEN 0 AND 100", name="ck_leads_score"),
        sa.ForeignKeyConstraint(
            ["converted_client_id"],
            ["clients.id"],
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index("ix_leads_converted_client", ["converted_client_id"], unique=False)
        batch_op.create_index("ix_leads_ws_city", ["workspace_id", "city_key"], unique=False)
        batch_op.create_index(
            "ix_leads_ws_created", ["workspace_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_leads_ws_email", ["workspace_id", "email_key", "id"], unique=False
        )
        batch_op.create_index("ix_leads_ws_name", ["workspace_id", "name_key", "id"], unique=False)
        batch_op.create_index("ix_leads_ws_score", ["workspace_id", "score", "id"], unique=False)
        batch_op.create_index("ix_leads_ws_source", ["workspace_id", "source_key"], unique=False)
        batch_op.create_index("ix_leads_ws_state", ["workspace_id", "state_key"], unique=False)
        batch_op.create_index(
            "ix_leads_ws_status", ["workspace_id", "status", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_leads_ws_updated", ["workspace_id", "updated_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index("ix_leads_ws_updated")
        batch_op.drop_index("ix_leads_ws_status")
        batch_op.drop_index("ix_leads_ws_state")
        batch_op.drop_index("ix_leads_ws_source")
        batch_op.drop_index("ix_leads_ws_score")
        batch_op.drop_index("ix_leads_ws_name")
        batch_op.drop_index("ix_leads_ws_email")
        batch_op.drop_index("ix_leads_ws_created")
        batch_op.drop_index("ix_leads_ws_city")
        batch_op.drop_index("ix_leads_converted_client")

    op.drop_table("leads")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_index("uq_clients_ws_email")
        batch_op.drop_index("ix_clients_ws_updated")
        batch_op.drop_index("ix_clients_ws_status")
        batch_op.drop_index("ix_clients_ws_state")
        batch_op.drop_index("ix_clients_ws_name")
        batch_op.drop_index("ix_clients_ws_created")
        batch_op.drop_index("ix_clients_ws_city")

    op.drop_table("clients")
    op.drop_table("workspaces")
