"""Pipeline tallies (issue 12, migration 0015): how many leads each combination of the
aggregate's dimensions holds, kept exact by the database on every write of ``leads``, so that
``leads { aggregate }`` under no filter, or a filter of these dimensions only, reads thousands of
tally rows instead of a million leads (db/repositories/lead_counts.py).

- ``lead_tallies``: per (workspace, status, state_key, source_key, owner_key) the leads (``n``)
  and the sum of their scores. ``owner_key`` is the owner's user id, 0 for unassigned (a key
  has no null).
- ``lead_day_tallies``: per (workspace, kind, day, the same dimensions) the leads created
  (kind CREATED) or converted (kind CONVERTED) on that UTC day ('YYYY-MM-DD').
- ``lead_tally_totals``: both summed per one dimension, for the aggregate without a filter.

A cell whose leads all left keeps its row with ``n`` 0 (readers skip it; ``server.py recount``
drops it). Kept by triggers (migration 0015): on SQLite a row trigger per write; on PostgreSQL a
statement trigger puts the statement's net change into ``lead_tally_deltas`` and one deferred
trigger folds the transaction's changes into the tallies at COMMIT, cells in key order.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String
from sqlmodel import Field, SQLModel

from db.models import fields as f

CREATED, CONVERTED = "CREATED", "CONVERTED"


def _key(length: int) -> str:
    return Field(sa_column=Column(String(length), primary_key=True, nullable=False))  # type: ignore[no-any-return]


class LeadTally(SQLModel, table=True):
    __tablename__ = "lead_tallies"
    __table_args__ = {"sqlite_with_rowid": False}

    workspace_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    status: str = _key(16)
    state_key: str = _key(f.PLACE_MAX)
    source_key: str = _key(f.SOURCE_MAX)
    owner_key: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    n: int = Field(sa_column=Column(BigInteger, nullable=False))
    score_sum: int = Field(sa_column=Column(BigInteger, nullable=False))


class LeadDayTally(SQLModel, table=True):
    __tablename__ = "lead_day_tallies"
    __table_args__ = (
        # A filter on state (and status) seeks its cells of the window's days (n: covering).
        Index(
            "ix_lead_day_tallies_state", "workspace_id", "kind", "state_key", "status", "day", "n"
        ),
        {"sqlite_with_rowid": False},
    )

    workspace_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    kind: str = _key(9)
    day: str = _key(10)
    status: str = _key(16)
    state_key: str = _key(f.PLACE_MAX)
    source_key: str = _key(f.SOURCE_MAX)
    owner_key: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    n: int = Field(sa_column=Column(BigInteger, nullable=False))


class LeadTallyTotal(SQLModel, table=True):
    """Per workspace and one dimension (``dim``: status, source, state, owner as its id in
    text, '0' unassigned; CREATED, CONVERTED by day), the tallies summed over the others: what
    an aggregate with no filter reads (a handful of rows a count instead of every cell). Kept
    from the tallies' own changes (triggers on them on SQLite, the COMMIT fold on PostgreSQL)."""

    __tablename__ = "lead_tally_totals"
    __table_args__ = {"sqlite_with_rowid": False}

    workspace_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    dim: str = _key(9)
    key: str = _key(f.PLACE_MAX)
    n: int = Field(sa_column=Column(BigInteger, nullable=False))
    score_sum: int = Field(sa_column=Column(BigInteger, nullable=False))
