"""Writing the pipeline tallies (db/models/tallies.py) from the leads themselves: the grouped
tally of an import batch's new leads (SQLite, whose row triggers skip them meanwhile), and
``server.py recount``, which rebuilds every tally from the rows. Everything else keeps them
through the triggers of migration 0015."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, delete, func, literal_column, select, text
from sqlalchemy.dialects import postgresql, sqlite

from db.models import Lead, LeadDayTally, LeadTally, LeadTallyTotal
from db.models.tallies import CONVERTED, CREATED
from db.repositories.lead_counts import utc_day

leads: Any = Lead.__table__  # type: ignore[attr-defined]
tallies: Any = LeadTally.__table__  # type: ignore[attr-defined]
day_tallies: Any = LeadDayTally.__table__  # type: ignore[attr-defined]
totals: Any = LeadTallyTotal.__table__  # type: ignore[attr-defined]

_DIMS = ("status", "state_key", "source_key")
_PAUSE = text("INSERT INTO lead_tally_paused (id) VALUES (1)")
_RESUME = text("DELETE FROM lead_tally_paused")
# lead_tally_totals from the tallies (as migration 0015's backfill on PostgreSQL; SQLite's
# triggers on the tallies keep them as the tallies are written).
_TOTALS = text(
    "INSERT INTO lead_tally_totals (workspace_id, dim, key, n, score_sum) "
    + " UNION ALL ".join(
        [
            f"SELECT workspace_id, '{dim}', {column}, sum(n), sum(score_sum) FROM lead_tallies "
            f"GROUP BY workspace_id, {column}"
            for dim, column in (
                ("status", "status"),
                ("source", "source_key"),
                ("state", "state_key"),
                ("owner", "CAST(owner_key AS VARCHAR(100))"),
            )
        ]
        + ["SELECT workspace_id, kind, day, sum(n), 0 FROM lead_day_tallies GROUP BY 1, 2, 3"]
    )
)


def _dims() -> list[Any]:
    return [*(leads.c[k] for k in _DIMS), func.coalesce(leads.c.owner_id, 0)]


class TallyRepository:
    """The tallies of every workspace (``conn``: a write() unit)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def _insert(self, table: Any, *, add: bool) -> Any:
        """INSERT into a tally table; ``add``: adding to the cells that exist."""
        dialect = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(table)
        if not add:
            return stmt
        key = [c.name for c in table.primary_key.columns]
        sums = {
            c.name: table.c[c.name] + stmt.excluded[c.name]
            for c in table.columns
            if c.name not in key
        }
        return stmt.on_conflict_do_update(index_elements=key, set_=sums)

    async def _tally(self, where: list[ColumnElement[bool]], *, add: bool, converted: bool) -> None:
        """Tallies the leads ``where`` selects, added to the tallies (``add``) or into empty
        ones."""
        dims = _dims()
        names = ["workspace_id", *_DIMS, "owner_key"]
        cells = (
            select(leads.c.workspace_id, *dims, func.count(), func.sum(leads.c.score))
            .where(*where)
            .group_by(leads.c.workspace_id, *dims)
        )
        await self.conn.execute(
            self._insert(tallies, add=add).from_select([*names, "n", "score_sum"], cells)
        )
        kinds = [(CREATED, leads.c.created_at)]
        if converted:
            kinds.append((CONVERTED, leads.c.converted_at))
        for kind, column in kinds:
            day = utc_day(column)
            cells = (
                select(leads.c.workspace_id, literal_column(f"'{kind}'"), day, *dims, func.count())
                .where(*where, column.is_not(None))
                .group_by(leads.c.workspace_id, day, *dims)
            )
            stmt = self._insert(day_tallies, add=add)
            await self.conn.execute(
                stmt.from_select(["workspace_id", "kind", "day", *names[1:], "n"], cells)
            )

    async def pause_inserts(self) -> None:
        """SQLite: the INSERT trigger skips the leads inserted from now until
        ``tally_inserted`` in this transaction (one writer at a time: no one else inserts
        meanwhile, and no reader sees the pause)."""
        await self.conn.execute(_PAUSE)

    async def tally_inserted(self, first: int, last: int, converted: bool) -> None:
        """Tallies the leads of ids ``first``..``last`` (inserted while paused) in one
        statement per tally table, and ends the pause. ``converted``: whether any of them has
        a ``converted_at``."""
        # The id range alone, which holds only these leads: with the workspace's condition
        # too, SQLite's planner walked an index of the whole workspace (every batch read every
        # lead imported before it) instead of the range of rowids.
        await self._tally([leads.c.id.between(first, last)], add=True, converted=converted)
        await self.conn.execute(_RESUME)

    async def recount(self) -> int:
        """Rebuilds every tally from the leads (cells with no leads left go); the number of
        tally rows. PostgreSQL: the leads are locked against writes meanwhile (SHARE), so that
        no write commits between the count and the rebuild."""
        if self.conn.dialect.name == "postgresql":
            await self.conn.execute(text("LOCK TABLE leads IN SHARE MODE"))
        await self.conn.execute(delete(tallies))
        await self.conn.execute(delete(day_tallies))
        await self.conn.execute(delete(totals))
        await self._tally([], add=False, converted=True)
        if self.conn.dialect.name == "postgresql":
            await self.conn.execute(_TOTALS)
        found = 0
        for table in (tallies, day_tallies, totals):
            found += int(
                (await self.conn.execute(select(func.count()).select_from(table))).scalar_one()
            )
        return found
