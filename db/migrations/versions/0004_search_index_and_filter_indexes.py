"""search index and filter indexes for a million leads

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Issue 5 (1,000,000 leads):

- ``search`` (a substring of ``search_key``) had no index. SQLite: an FTS5 table per searchable
  table (``leads_fts``, ``clients_fts``) with the trigram tokenizer, over ``search_key``
  (external content: the text stays in the table only), kept in step by triggers and filled
  here for the rows that exist. ``case_sensitive 1``: the text is case-folded already, so
  folding again would only cost. ``detail=none, columnsize=0``: the queries are ANDs of single
  trigrams (``db/repositories/search.py``), which need neither positions nor sizes; the index
  is a third of the size with them (65 MB instead of 185 MB at 1M leads). PostgreSQL:
  ``pg_trgm`` and a GIN trigram index, which serves ``LIKE '%term%'`` as it is.
- Counting leads by state and status read every lead of those statuses (0.5 s at 1M):
  ``ix_leads_ws_state`` gains ``status`` and answers such counts alone.
- Leads converted into a page of clients were found through an index of the whole workspace
  (0.3-0.9 s): ``ix_leads_converted_client`` becomes ``(workspace_id, converted_client_id)``,
  the loader's exact lookup. (Clients are never deleted, so the foreign key needs no index of
  its own column first.)

On SQLite, a batch migration that rebuilds ``leads`` or ``clients`` (a copy into a new table)
drops their triggers: recreate them after it, and rebuild the FTS5 table.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCHABLE = ("leads", "clients")


def _sqlite_search_up(table: str) -> None:
    fts = f"{table}_fts"
    op.execute(
        f"CREATE VIRTUAL TABLE {fts} USING fts5(search_key, content='{table}', "
        "content_rowid='id', tokenize='trigram case_sensitive 1', detail='none', columnsize=0)"
    )
    # External content: the index must be told the old text to remove it.
    op.execute(
        f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} BEGIN "
        f"INSERT INTO {fts}(rowid, search_key) VALUES (new.id, new.search_key); END"
    )
    op.execute(
        f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, search_key) VALUES ('delete', old.id, old.search_key);"
        " END"
    )
    op.execute(
        f"CREATE TRIGGER {fts}_update AFTER UPDATE OF id, search_key ON {table} "
        "WHEN old.id IS NOT new.id OR old.search_key IS NOT new.search_key BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, search_key) VALUES ('delete', old.id, old.search_key);"
        f" INSERT INTO {fts}(rowid, search_key) VALUES (new.id, new.search_key); END"
    )
    op.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")
    # One segment: the rebuild leaves a ladder of them, and the writes that follow would merge
    # into it bit by bit (at 1M leads, 1 write in 50-100 took 35-60 ms instead of 0.3).
    op.execute(f"INSERT INTO {fts}({fts}) VALUES ('optimize')")


def _sqlite_search_down(table: str) -> None:
    fts = f"{table}_fts"
    for event in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER {fts}_{event}")
    op.execute(f"DROP TABLE {fts}")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in SEARCHABLE:
            _sqlite_search_up(table)
    elif dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for table in SEARCHABLE:
            op.create_index(
                f"ix_{table}_search_trgm",
                table,
                ["search_key"],
                postgresql_using="gin",
                postgresql_ops={"search_key": "gin_trgm_ops"},
            )

    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index("ix_leads_ws_state")
        batch_op.create_index(
            "ix_leads_ws_state", ["workspace_id", "state_key", "status"], unique=False
        )
        batch_op.drop_index("ix_leads_converted_client")
        batch_op.create_index(
            "ix_leads_ws_converted", ["workspace_id", "converted_client_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index("ix_leads_ws_converted")
        batch_op.create_index("ix_leads_converted_client", ["converted_client_id"], unique=False)
        batch_op.drop_index("ix_leads_ws_state")
        batch_op.create_index("ix_leads_ws_state", ["workspace_id", "state_key"], unique=False)

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in SEARCHABLE:
            _sqlite_search_down(table)
    elif dialect == "postgresql":
        for table in SEARCHABLE:
            op.drop_index(f"ix_{table}_search_trgm", table_name=table)
        # pg_trgm stays: it may have been there before, and other schemas may use it.
