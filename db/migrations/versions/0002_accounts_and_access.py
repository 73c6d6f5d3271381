"""accounts and access

Users, workspace memberships with roles, sessions and API keys (hashes only), one-time email
codes, shared rate-limit counters, and who created/updated each lead and client.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:28:36.306979
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("window_start", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("email_key", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("email_verified_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index("uq_users_email", ["email_key"], unique=True)

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('OWNER','ADMIN','MEMBER','VIEWER')", name="ck_api_keys_role"),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index("ix_api_keys_ws", ["workspace_id", "created_at"], unique=False)
        batch_op.create_index("uq_api_keys_token", ["token_hash"], unique=True)

    op.create_table(
        "email_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email_key", sa.String(length=254), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("salt", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("workspace_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("invited_by_user_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["invited_by_user_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("email_codes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_email_codes_lookup", ["email_key", "purpose", "created_at"], unique=False
        )

    op.create_table(
        "memberships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('OWNER','ADMIN','MEMBER','VIEWER')", name="ck_memberships_role"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "user_id", name="uq_memberships_ws_user"),
    )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.create_index("ix_memberships_user", ["user_id"], unique=False)

    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("user_agent", sa.String(length=200), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index("ix_sessions_user", ["user_id", "created_at"], unique=False)
        batch_op.create_index("uq_sessions_token", ["token_hash"], unique=True)

    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by_user_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("created_by_api_key_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("updated_by_user_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("updated_by_api_key_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_clients_created_by_user", "users", ["created_by_user_id"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_clients_updated_by_user", "users", ["updated_by_user_id"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_clients_created_by_api_key", "api_keys", ["created_by_api_key_id"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_clients_updated_by_api_key", "api_keys", ["updated_by_api_key_id"], ["id"]
        )

    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by_user_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("created_by_api_key_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("updated_by_user_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("updated_by_api_key_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_leads_created_by_api_key", "api_keys", ["created_by_api_key_id"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_leads_updated_by_api_key", "api_keys", ["updated_by_api_key_id"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_leads_created_by_user", "users", ["created_by_user_id"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_leads_updated_by_user", "users", ["updated_by_user_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_constraint("fk_leads_updated_by_user", type_="foreignkey")
        batch_op.drop_constraint("fk_leads_created_by_user", type_="foreignkey")
        batch_op.drop_constraint("fk_leads_updated_by_api_key", type_="foreignkey")
        batch_op.drop_constraint("fk_leads_created_by_api_key", type_="foreignkey")
        batch_op.drop_column("updated_by_api_key_id")
        batch_op.drop_column("updated_by_user_id")
        batch_op.drop_column("created_by_api_key_id")
        batch_op.drop_column("created_by_user_id")

    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_constraint("fk_clients_updated_by_api_key", type_="foreignkey")
        batch_op.drop_constraint("fk_clients_created_by_api_key", type_="foreignkey")
        batch_op.drop_constraint("fk_clients_updated_by_user", type_="foreignkey")
        batch_op.drop_constraint("fk_clients_created_by_user", type_="foreignkey")
        batch_op.drop_column("updated_by_api_key_id")
        batch_op.drop_column("updated_by_user_id")
        batch_op.drop_column("created_by_api_key_id")
        batch_op.drop_column("created_by_user_id")

    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("uq_sessions_token")
        batch_op.drop_index("ix_sessions_user")

    op.drop_table("sessions")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_memberships_user")

    op.drop_table("memberships")
    with op.batch_alter_table("email_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_email_codes_lookup")

    op.drop_table("email_codes")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("uq_api_keys_token")
        batch_op.drop_index("ix_api_keys_ws")

    op.drop_table("api_keys")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("uq_users_email")

    op.drop_table("users")
    op.drop_table("rate_limits")
