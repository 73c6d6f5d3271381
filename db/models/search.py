"""What `search` is indexed by, beside the tables' own columns (migration 0004).

PostgreSQL: a GIN trigram index on ``search_key``, part of the metadata (it exists only there).
SQLite: an FTS5 table ``<table>_fts`` with its shadow tables and triggers, which SQLAlchemy's
metadata cannot describe; ``managed_elsewhere`` keeps them out of schema comparisons, and
with them the PostgreSQL-only ``event_appends`` of the change-event log (migration 0007).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Index

# The searchable tables and their FTS5 tables on SQLite.
FTS_TABLES = {"leads": "leads_fts", "clients": "clients_fts", "tickets": "tickets_fts"}
# What FTS5 creates beside each table: https://sqlite.org/fts5.html#shadow_tables
_FTS5_SHADOWS = ("data", "idx", "docsize", "config", "content")
FTS_NAMES = frozenset(
    name
    for fts in FTS_TABLES.values()
    for name in (fts, *(f"{fts}_{shadow}" for shadow in _FTS5_SHADOWS))
)


# Where PostgreSQL writes put their events for the commit trigger to number (migration 0007):
# a table the application inserts into by name only, with no model.
EVENT_APPENDS = "event_appends"
# The tallies' trigger tables (migration 0015), no model either.
TALLY_MACHINERY = frozenset({"lead_tally_paused", "lead_tally_deltas", "lead_tally_pending"})


def search_index(table: str) -> Index:
    """``ix_<table>_search_trgm``: LIKE '%term%' on ``search_key`` through pg_trgm."""
    return Index(
        f"ix_{table}_search_trgm",
        "search_key",
        postgresql_using="gin",
        postgresql_ops={"search_key": "gin_trgm_ops"},
    ).ddl_if(dialect="postgresql")


def managed_elsewhere(dialect: str) -> tuple[Any, Any]:
    """Alembic's ``include_name`` and ``include_object`` hooks for ``dialect``: they leave out
    the FTS5 tables (reflected on SQLite, absent from the metadata) and the indexes the
    metadata declares for another engine only."""

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        return not (
            type_ == "table"
            and (name in FTS_NAMES or name == EVENT_APPENDS or name in TALLY_MACHINERY)
        )

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
        if type_ == "index" and not reflected:
            only = getattr(obj, "_ddl_if", None)
            if only is not None and only.dialect is not None and only.dialect != dialect:
                return False
        return True

    return include_name, include_object
