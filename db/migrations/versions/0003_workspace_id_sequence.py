"""workspace id sequence past the seeded workspace

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

0001 inserts the default workspace with an explicit id. SQLite hands out max(id) + 1 by itself,
but a PostgreSQL serial column draws from its sequence, which an explicit id does not advance:
the first workspace created afterwards got id 1 again and failed on the primary key. This moves
the sequence past the rows that exist. Nothing to do on SQLite, nor to undo on downgrade (a
sequence ahead of its table is harmless).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "SELECT setval(pg_get_serial_sequence('workspaces', 'id'), "
        "COALESCE((SELECT max(id) FROM workspaces), 0) + 1, false)"
    )


def downgrade() -> None:
    pass
