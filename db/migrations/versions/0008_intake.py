"""intake: external IDs, matching keys, web forms, merged leads

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

Issue 11. Leads get ``phone_key`` (the phone in E.164) and ``company_key`` (the company
without case, accents, punctuation or legal suffix), indexed per workspace for matching and
the duplicate finder; ``state_key`` of leads and clients becomes a US state's or Canadian
province's code when the text names one ("Texas" → "tx"), so filters find either spelling.
Existing rows get their keys here. External IDs live on the record (``external_ids``, JSON,
as typed) and in one lookup table per kind whose unique indexes hold the rules: one id per
system per record, one record per (system, id) in a workspace.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import db.types
from db.models.keys import company_key, phone_key, region_key

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_BATCH = 5000


def _external_ids(table: str, record: str) -> None:
    op.create_table(
        table,
        sa.Column(f"{record}_id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("system_key", sa.String(length=50), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint([f"{record}_id"], [f"{record}s.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint(f"{record}_id", "system_key", name=f"pk_{table}"),
    )
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.create_index(
            f"uq_{table}_ws", ["workspace_id", "system_key", "external_id"], unique=True
        )


def _rekey(table: str, columns: str, keys: object) -> None:
    """Computes derived keys of existing rows, in batches by id."""
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(
            sa.text(
                f"SELECT id, {columns} FROM {table} WHERE id > :last ORDER BY id LIMIT {_BATCH}"
            ),
            {"last": last},
        ).fetchall()
        if not rows:
            return
        updates = [keys(row) for row in rows]  # type: ignore[operator]
        changed = [u for u in updates if u is not None]
        if changed:
            sets = ", ".join(f"{k} = :{k}" for k in changed[0] if k != "id")
            conn.execute(sa.text(f"UPDATE {table} SET {sets} WHERE id = :id"), changed)
        last = rows[-1].id


def _lead_keys(row: sa.Row) -> dict[str, object] | None:  # type: ignore[type-arg]
    keys = {
        "phone_key": phone_key(row.phone),
        "company_key": company_key(row.company),
        "state_key": region_key(row.state),
    }
    if not any(keys.values()) and row.state_key == "":
        return None
    return {"id": row.id, **keys}


def _client_keys(row: sa.Row) -> dict[str, object] | None:  # type: ignore[type-arg]
    key = region_key(row.state)
    return None if key == row.state_key else {"id": row.id, "state_key": key}


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN and CREATE INDEX on both engines: a batch operation
    # would rebuild the tables on SQLite and lose their full-text triggers (migration 0004).
    op.add_column(
        "leads", sa.Column("external_ids", _JSON, nullable=False, server_default=sa.text("'[]'"))
    )
    op.add_column(
        "leads", sa.Column("phone_key", sa.String(length=50), nullable=False, server_default="")
    )
    op.add_column(
        "leads",
        sa.Column("company_key", sa.String(length=200), nullable=False, server_default=""),
    )
    op.add_column(
        "clients",
        sa.Column("external_ids", _JSON, nullable=False, server_default=sa.text("'[]'")),
    )
    _rekey("leads", "phone, company, state, state_key", _lead_keys)
    _rekey("clients", "state, state_key", _client_keys)
    op.create_index("ix_leads_ws_phone", "leads", ["workspace_id", "phone_key"], unique=False)
    op.create_index("ix_leads_ws_company", "leads", ["workspace_id", "company_key"], unique=False)

    _external_ids("lead_external_ids", "lead")
    _external_ids("client_external_ids", "client")

    op.create_table(
        "lead_merges",
        sa.Column("merged_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("survivor_id", sa.Integer(), nullable=False),
        sa.Column("merged_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["survivor_id"], ["leads.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint("merged_id"),
    )
    with op.batch_alter_table("lead_merges", schema=None) as batch_op:
        batch_op.create_index("ix_lead_merges_survivor", ["survivor_id"], unique=False)

    op.create_table(
        "lead_forms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("allowed_origins", _JSON, nullable=False),
        sa.Column("redirect_url", sa.String(length=2048), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_by_api_key_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.ForeignKeyConstraint(["created_by_user_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["created_by_api_key_id"], ["api_keys.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("lead_forms", schema=None) as batch_op:
        batch_op.create_index("uq_lead_forms_key", ["key"], unique=True)
        batch_op.create_index("ix_lead_forms_ws", ["workspace_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_table("lead_forms")
    op.drop_table("lead_merges")
    op.drop_table("client_external_ids")
    op.drop_table("lead_external_ids")
    op.drop_index("ix_leads_ws_company", table_name="leads")
    op.drop_index("ix_leads_ws_phone", table_name="leads")
    # ALTER TABLE ... DROP COLUMN on both engines (SQLite ≥ 3.35), as upgrade adds them.
    for table, column in (
        ("leads", "company_key"),
        ("leads", "phone_key"),
        ("leads", "external_ids"),
        ("clients", "external_ids"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    _rekey("leads", "state, state_key", _folded_state)
    _rekey("clients", "state, state_key", _folded_state)


def _folded_state(row: sa.Row) -> dict[str, object] | None:  # type: ignore[type-arg]
    key = row.state.casefold() if row.state else ""
    return None if key == row.state_key else {"id": row.id, "state_key": key}
