"""Exports: every record of a list (its filter and orderBy as the API's), a keyset page at
a time, each page on a read connection of its own, so that an export of a million rows holds
no connection, snapshot or more than a page of rows while the client downloads it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from db.models import Role
from db.repositories import FilterSpec, Keyset
from db.repositories.exports import bulk_page
from resolvers import inputs
from resolvers.principal import Principal
from resolvers.records import RecordType

if TYPE_CHECKING:
    from resolvers.context import Context

# Rows per page: large enough that a page's round trip is a small part of its cost, small
# enough that a page (and the chunk encoded from it) stays well under a few megabytes.
PAGE_SIZE = 2000


@dataclass(frozen=True)
class Export:
    """The rows of one export, checked and ready to read: ``pages()`` yields them."""

    ctx: Context
    records: RecordType
    workspace_id: int
    spec: FilterSpec | None
    sort_column: str
    descending: bool
    # The columns read: those asked for, then the sort column when it is not one of them.
    columns: tuple[str, ...]
    page_size: int

    async def pages(self) -> AsyncIterator[list[Any]]:
        """The rows, a page at a time, in order; each row a tuple of ``columns``. A row
        changed meanwhile so that it moves past the page being read is met again or not at
        all, as when paging the list field; rows that stay put are met exactly once."""
        at_id = self.columns.index("id")
        at_sort = self.columns.index(self.sort_column)
        start: Keyset | None = None
        while True:
            async with self.ctx.db.read() as conn:
                rows = await bulk_page(
                    self.records.repository(conn, self.workspace_id),
                    self.spec,
                    self.sort_column,
                    self.descending,
                    start,
                    self.page_size,
                    self.columns,
                )
            if rows:
                yield rows
            if len(rows) < self.page_size:
                return
            last = rows[-1]
            start = Keyset(value=last[at_sort], id=last[at_id])


def authorize(ctx: Context) -> Principal:
    """The caller, if they may export (VIEWER and up): an endpoint checks it before it reads
    its parameters, so that a caller without access learns nothing from them."""
    return ctx.require(Role.VIEWER)


def export(
    ctx: Context,
    records: RecordType,
    filter_: Any,
    order_by: Any,
    columns: Sequence[str],
    page_size: int | None = None,
) -> Export:
    """An export of ``records`` (VIEWER and up): its filter and orderBy inputs read as the
    list field reads them (BadInput for a bad one), before any row is read."""
    principal = authorize(ctx)
    field, given = inputs.order(order_by)
    sort = records.sorts[field]
    selected = tuple(columns) if sort.column in columns else (*columns, sort.column)
    return Export(
        ctx=ctx,
        records=records,
        workspace_id=principal.workspace_id,
        spec=records.spec(filter_),
        sort_column=sort.column,
        descending=sort.direction(given) == "DESC",
        columns=selected,
        page_size=page_size or PAGE_SIZE,
    )
