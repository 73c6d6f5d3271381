"""Web forms: a workspace's forms (scoped, for the API), and the lookup of a form by its key
(global: a post to /forms/{key} names no workspace, the key does)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db import reads
from db.models.intake import LeadForm
from db.repositories.base import Repository
from db.types import utcnow

forms: Any = LeadForm.__table__  # type: ignore[attr-defined]

# Every post to a form runs it: built once, and short (a unique index).
_BY_KEY = reads.Reusable(select(forms).where(forms.c.key == bindparam("key")), inline=True)


class FormRepository(Repository):
    """A workspace's web forms."""

    table = forms

    async def all(self) -> list[Any]:
        """Every form, oldest first."""
        stmt = select(self.table).where(self.scope).order_by(self.c.id)
        return await reads.all_rows(self.conn, stmt)

    async def insert(self, values: dict[str, Any]) -> Row[Any]:
        # A form has no updated_at (nothing changes it): not the base class's insert.
        row = {"created_at": utcnow(), **values, "workspace_id": self.workspace_id}
        return (await self.conn.execute(insert(self.table).values(row).returning(self.table))).one()

    async def remove(self, id_: int) -> bool:
        """Deletes the form; False when there is none with this id in the workspace."""
        stmt = delete(self.table).where(*self.scoped(self.c.id == id_)).returning(self.c.id)
        return (await self.conn.execute(stmt)).first() is not None


async def form_by_key(conn: AsyncConnection, key: str) -> Row[Any] | None:
    """The form with this key, in whichever workspace, or None."""
    return await reads.first(conn, _BY_KEY, {"key": key})  # type: ignore[no-any-return]
