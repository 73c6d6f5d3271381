"""tickets: support tickets on clients, their comments, per-workspace ticket numbers

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

Issue 12. ``tickets`` hangs off ``clients``; ``ticket_counters`` hands out each workspace's
ticket numbers (a row per workspace, incremented in the creating transaction);
``ticket_comments`` is a ticket's thread, deleted with it. ``search`` on subject and
description works as the leads' and clients' does (migration 0004): a GIN trigram index on
``search_key`` on PostgreSQL, an FTS5 trigram table kept by triggers on SQLite.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = db.types.UTCDateTime(timezone=True)
_INDEXES = {
    "uq_tickets_ws_number": (["workspace_id", "number"], True),
    "ix_tickets_ws_created": (["workspace_id", "created_at", "id"], False),
    "ix_tickets_ws_updated": (["workspace_id", "updated_at", "id"], False),
    "ix_tickets_ws_priority": (["workspace_id", "priority_rank", "id"], False),
    "ix_tickets_ws_status": (["workspace_id", "status", "created_at", "id"], False),
    "ix_tickets_ws_client": (["workspace_id", "client_id", "created_at", "id"], False),
    "ix_tickets_ws_client_status": (["workspace_id", "client_id", "status"], False),
    "ix_tickets_ws_assignee": (["workspace_id", "assignee_user_id", "status"], False),
}
_FTS = "tickets_fts"


def _sqlite_search_up() -> None:
    """As migration 0004's, for tickets (an empty table: nothing to rebuild)."""
    op.execute(
        f"CREATE VIRTUAL TABLE {_FTS} USING fts5(search_key, content='tickets', "
        "content_rowid='id', tokenize='trigram case_sensitive 1', detail='none', columnsize=0)"
    )
    op.execute(
        f"CREATE TRIGGER {_FTS}_insert AFTER INSERT ON tickets BEGIN "
        f"INSERT INTO {_FTS}(rowid, search_key) VALUES (new.id, new.search_key); END"
    )
    op.execute(
        f"CREATE TRIGGER {_FTS}_delete AFTER DELETE ON tickets BEGIN "
        f"INSERT INTO {_FTS}({_FTS}, rowid, search_key) VALUES ('delete', old.id, old.search_key);"
        " END"
    )
    op.execute(
        f"CREATE TRIGGER {_FTS}_update AFTER UPDATE OF id, search_key ON tickets "
        "WHEN old.id IS NOT new.id OR old.search_key IS NOT new.search_key BEGIN "
        f"INSERT INTO {_FTS}({_FTS}, rowid, search_key) VALUES ('delete', old.id, old.search_key);"
        f" INSERT INTO {_FTS}(rowid, search_key) VALUES (new.id, new.search_key); END"
    )


def upgrade() -> None:
    op.create_table(
        "ticket_counters",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint("workspace_id"),
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_by_api_key_id", sa.Integer(), nullable=True),
        sa.Column("updated_by_user_id", sa.Integer(), nullable=True),
        sa.Column("updated_by_api_key_id", sa.Integer(), nullable=True),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("priority_rank", sa.Integer(), nullable=False),
        sa.Column("assignee_user_id", sa.Integer(), nullable=True),
        sa.Column("first_response_at", _TIME, nullable=True),
        sa.Column("resolved_at", _TIME, nullable=True),
        sa.Column("search_key", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "status IN ('OPEN','PENDING','RESOLVED','CLOSED')", name="ck_tickets_status"
        ),
        sa.CheckConstraint(
            "priority IN ('LOW','NORMAL','HIGH','URGENT')", name="ck_tickets_priority"
        ),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"]),
        sa.ForeignKeyConstraint(["assignee_user_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["created_by_user_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["created_by_api_key_id"], ["api_keys.id"]),
        sa.ForeignKeyConstraint(["updated_by_user_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["updated_by_api_key_id"], ["api_keys.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    for name, (columns, unique) in _INDEXES.items():
        op.create_index(name, "tickets", columns, unique=unique)
    if op.get_bind().dialect.name == "postgresql":
        # pg_trgm is there since migration 0004.
        op.create_index(
            "ix_tickets_search_trgm",
            "tickets",
            ["search_key"],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={"search_key": "gin_trgm_ops"},
        )
    else:
        _sqlite_search_up()

    op.create_table(
        "ticket_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("internal", sa.Boolean(), nullable=False),
        sa.Column("author_user_id", sa.Integer(), nullable=True),
        sa.Column("author_api_key_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["author_user_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["author_api_key_id"], ["api_keys.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_ticket_comments_ws_ticket",
        "ticket_comments",
        ["workspace_id", "ticket_id", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_table("ticket_comments")
    if op.get_bind().dialect.name == "sqlite":
        for event in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER {_FTS}_{event}")
        op.execute(f"DROP TABLE {_FTS}")
    op.drop_table("tickets")
    op.drop_table("ticket_counters")
