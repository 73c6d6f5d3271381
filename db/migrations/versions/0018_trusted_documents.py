"""trusted documents: registered GraphQL documents by SHA-256

Revision ID: 0018
Revises: 0014
Create Date: 2026-12-05

Issue 13. ``trusted_documents`` holds the documents clients may send by ``documentId``
(``sha256:<hash>``) or Apollo's APQ hash: registered from a manifest (``server.py documents
add``) or by APQ. Global, not per workspace: a client application's documents are the same for
every workspace. A new table only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0018"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trusted_documents",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("alias", sa.String(length=200), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("trusted", sa.Boolean(), nullable=False),
        sa.Column("schema_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
        sa.UniqueConstraint("alias"),
    )


def downgrade() -> None:
    op.drop_table("trusted_documents")
