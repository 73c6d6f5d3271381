"""owners and tags: leads.owner_id, clients.owner_id, tags, lead_tags, client_tags

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

Issue 12. A lead or client has an owner (a member of its workspace, or null) and tags. Tags
are per workspace, unique by case-folded name (``uq_tags_ws_name``, which also answers a race
past the check). Membership is one link table per kind, keyed (record, tag), with a
(tag, record) index for the ``tags`` filters; ``ix_*_ws_owner`` serve the ``ownerId`` and
``unassigned`` filters in the default order.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _owner(table: str) -> None:
    # Plain ALTER TABLE ... ADD COLUMN on both engines: a batch operation would rebuild the
    # tables on SQLite and lose their full-text triggers (migration 0004). SQLite takes a
    # REFERENCES clause in ADD COLUMN (the default is null); PostgreSQL gets a named constraint.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"ALTER TABLE {table} ADD COLUMN owner_id INTEGER REFERENCES users (id)")
    else:
        op.add_column(table, sa.Column("owner_id", sa.Integer(), nullable=True))
        op.create_foreign_key(f"fk_{table}_owner_id_users", table, "users", ["owner_id"], ["id"])
    op.create_index(f"ix_{table}_ws_owner", table, ["workspace_id", "owner_id", "created_at", "id"])


def _links(table: str, record: str) -> None:
    op.create_table(
        table,
        sa.Column(f"{record}_id", sa.Integer(), nullable=False),
        sa.Column("tag_id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint([f"{record}_id"], [f"{record}s.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tag_id"], ["tags.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint(f"{record}_id", "tag_id", name=f"pk_{table}"),
    )
    op.create_index(f"ix_{table}_tag", table, ["tag_id", f"{record}_id"])


def upgrade() -> None:
    _owner("leads")
    _owner("clients")
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("name_key", sa.String(length=50), nullable=False),
        sa.Column("color", sa.String(length=7), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("uq_tags_ws_name", "tags", ["workspace_id", "name_key"], unique=True)
    _links("lead_tags", "lead")
    _links("client_tags", "client")


def downgrade() -> None:
    op.drop_table("client_tags")
    op.drop_table("lead_tags")
    op.drop_table("tags")
    for table in ("clients", "leads"):
        op.drop_index(f"ix_{table}_ws_owner", table_name=table)
        if op.get_bind().dialect.name != "sqlite":
            op.drop_constraint(f"fk_{table}_owner_id_users", table, type_="foreignkey")
        # ALTER TABLE ... DROP COLUMN on both engines (SQLite ≥ 3.35), as upgrade adds it.
        op.execute(f"ALTER TABLE {table} DROP COLUMN owner_id")
