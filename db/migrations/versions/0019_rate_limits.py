"""cost and rate limits: rate_buckets, api_keys.rate_restore / rate_maximum

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04

Issue 13. One leaky bucket of query cost per credential, shared by every process (processes
lease points from it: resolvers/ratelimit.py), and an API key's own rate (null: the server's).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("available", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("api_keys") as batch_op:
        batch_op.add_column(sa.Column("rate_restore", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rate_maximum", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch_op:
        batch_op.drop_column("rate_maximum")
        batch_op.drop_column("rate_restore")
    op.drop_table("rate_buckets")
