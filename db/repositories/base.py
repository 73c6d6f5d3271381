"""What every repository shares: scoped lookups, keyset pages and counts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Any, ClassVar

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from db import reads
from db.models.fields import fold
from db.repositories import search
from db.repositories.search import TextSearch
from db.types import utcnow


@dataclass(frozen=True)
class Keyset:
    """Where a page starts: strictly past (value, id) in the scan direction."""

    value: Any
    id: int


@dataclass(frozen=True, kw_only=True)
class FilterSpec:
    """What every list filter can hold; a domain's spec adds its own conditions."""

    search: str | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None


# The hottest statements (a write's INSERT, its row read and locked, its guarded UPDATE) are built
# once per table with bound parameters, instead of once per call: building one coerces every value
# into a new bind parameter and hashes the statement again for the compiled cache, which cost more
# than running it. Their workspace scope is a parameter too, filled by ``Repository.by_id``.
SCOPE_PARAM, ID_PARAM = "scope_workspace_id", "row_id"


def scoped_by_id(table: Table) -> list[ColumnElement[bool]]:
    """``workspace_id = :scope_workspace_id AND id = :row_id``, for statements built once."""
    return [table.c.workspace_id == bindparam(SCOPE_PARAM), table.c.id == bindparam(ID_PARAM)]


@cache
def _insert_returning(table: Table) -> Insert:
    """``INSERT INTO table (...) VALUES (...) RETURNING *``; the columns are the parameters'."""
    return insert(table).returning(table)


@cache
def _select_by_id(table: Table, for_update: bool) -> Select[Any]:
    stmt = select(table).where(*scoped_by_id(table))
    return stmt.with_for_update() if for_update else stmt


@lru_cache(maxsize=512)
def _selected(table: Table, columns: tuple[str, ...]) -> list[Any]:
    """The table's columns of these keys (a ColumnCollection lookup is Python-level, and a page
    selects a dozen)."""
    return [table.c[key] for key in columns]


# The parameters of _unfiltered_page: the page's start (a keyset) and size.
KEYSET_VALUE, KEYSET_ID, PAGE_LIMIT = "keyset_value", "keyset_id", "page_limit"


@lru_cache(maxsize=512)
def _unfiltered_page(
    table: Table,
    columns: tuple[str, ...] | None,
    sort_column: str,
    descending: bool,
    keyset: bool,
) -> reads.Reusable:
    """A page without a filter (a list's first pages, and those after a cursor), built once
    per shape with its values as parameters: building a Select per request cost about as much
    as running it (bench/README.md). The same SQL ``Repository.page`` builds otherwise."""
    col, id_col = table.c[sort_column], table.c.id
    where = [table.c.workspace_id == bindparam(SCOPE_PARAM)]
    if keyset:
        key = tuple_(col, id_col)
        bound = tuple_(
            bindparam(KEYSET_VALUE, type_=col.type), bindparam(KEYSET_ID, type_=id_col.type)
        )
        where.append(key < bound if descending else key > bound)
    order = (col.desc(), id_col.desc()) if descending else (col.asc(), id_col.asc())
    selected = _selected(table, columns) if columns else [table]
    stmt = select(*selected).where(*where).order_by(*order)
    # Short whatever the values: every sort has an index that starts with the workspace (the
    # indexes test checks it), so a page walks its first rows and stops.
    return reads.Reusable(stmt.limit(bindparam(PAGE_LIMIT, type_=Integer)), inline=True)


class Repository:
    """Base for a workspace-scoped table. ``conn``: a read connection or a write() unit."""

    table: ClassVar[Table]

    def __init__(self, conn: AsyncConnection, workspace_id: int) -> None:
        self.conn = conn
        self.workspace_id = workspace_id

    @property
    def c(self) -> Any:
        return self.table.c

    def scoped(self, *conditions: ColumnElement[bool]) -> list[ColumnElement[bool]]:
        """The conditions, plus the one that keeps every query inside the workspace."""
        return [self.scope, *conditions]

    @property
    def scope(self) -> ColumnElement[bool]:
        """The condition that keeps every query inside the workspace."""
        return self.c.workspace_id == self.workspace_id  # type: ignore[no-any-return]

    def _indexed_search(
        self, conditions: Sequence[ColumnElement[bool]]
    ) -> tuple[search.TextSearch | None, list[ColumnElement[bool]]]:
        """The search among ``conditions`` when FTS5 can serve it (SQLite, a term of 3+
        characters), and the conditions with the search as its plain LIKE."""
        found, plain = search.split(conditions)
        usable = found is not None and found.fts_query is not None
        return (found if usable and self.conn.dialect.name == "sqlite" else None), plain

    def by_id(self, id_: int) -> dict[str, int]:
        """The parameters of ``scoped_by_id``: this workspace, that row."""
        return {SCOPE_PARAM: self.workspace_id, ID_PARAM: id_}

    async def get(self, id_: int, *, for_update: bool = False) -> Row[Any] | None:
        stmt = _select_by_id(self.table, for_update)
        return (await self.conn.execute(stmt, self.by_id(id_))).first()

    async def get_many(self, ids: Iterable[int]) -> list[Row[Any]]:
        stmt = select(self.table).where(*self.scoped(self.c.id.in_(list(ids))))
        # A primary key lookup per id (a DataLoader's batch: at most a page's worth): short.
        return await reads.all_rows(self.conn, stmt, inline=True)

    async def page(
        self,
        conditions: Sequence[ColumnElement[bool]],
        sort_column: str,
        descending: bool,
        start: Keyset | None,
        limit: int,
        columns: Sequence[str] | None = None,
    ) -> list[Row[Any]]:
        """Up to ``limit`` rows in (sort_column, id) order, strictly past ``start``: only
        ``columns`` (keys of the table's columns) when given, every column otherwise."""
        if not conditions:
            shape = tuple(columns) if columns else None
            page = _unfiltered_page(self.table, shape, sort_column, descending, start is not None)
            params: dict[str, Any] = {SCOPE_PARAM: self.workspace_id, PAGE_LIMIT: limit}
            if start is not None:
                params |= {KEYSET_VALUE: start.value, KEYSET_ID: start.id}
            return await reads.all_rows(self.conn, page, params)
        col, id_col = self.c[sort_column], self.c.id
        indexed, where = self._indexed_search(conditions)
        if start is not None:
            key = tuple_(col, id_col)
            bound = tuple_(literal(start.value, col.type), literal(start.id, id_col.type))
            where.append(key < bound if descending else key > bound)
        order = (col.desc(), id_col.desc()) if descending else (col.asc(), id_col.asc())
        if indexed is not None:
            stmt = search.page_statement(indexed, self.scope, where, order, limit, columns)
        else:
            selected = _selected(self.table, tuple(columns)) if columns else [self.table]
            stmt = select(*selected).where(self.scope, *where).order_by(*order).limit(limit)
        return await reads.all_rows(self.conn, stmt)

    async def count(self, conditions: Sequence[ColumnElement[bool]]) -> int:
        indexed, where = self._indexed_search(conditions)
        if indexed is not None:
            stmt = search.count_statement(indexed, self.scope, where)
        else:
            stmt = select(func.count()).select_from(self.table).where(self.scope, *where)
        return int(await reads.scalar(self.conn, stmt))

    def conditions(self, spec: FilterSpec) -> list[ColumnElement[bool]]:
        """The filter's conditions; a domain adds its own to these shared ones."""
        c = self.c
        out: list[ColumnElement[bool]] = []
        if spec.search:
            out.append(TextSearch(self.table, fold(spec.search)))
        if spec.created_gte is not None:
            out.append(c.created_at >= spec.created_gte)
        if spec.created_lt is not None:
            out.append(c.created_at < spec.created_lt)
        return out

    def folded(self, **values: str | None) -> list[ColumnElement[bool]]:
        """Case-insensitive exact matches, ``city="Austin"`` as ``city_key = 'austin'``, for
        the values given (not None)."""
        return [self.c[f"{name}_key"] == fold(v) for name, v in values.items() if v is not None]

    def derived(self, values: dict[str, Any]) -> dict[str, Any]:
        """The derived columns (case-folded keys) for a row with these values."""
        return {}

    async def insert(self, values: dict[str, Any]) -> Row[Any]:
        now = utcnow()
        row = {"created_at": now, "updated_at": now, **values}
        params = {**row, **self.derived(row), "workspace_id": self.workspace_id}
        # The same INSERT as .values(**params), built once per table: values() would coerce
        # every value into a new bound parameter and hash the statement again on each call.
        return (await self.conn.execute(_insert_returning(self.table), params)).one()

    async def update(self, current: Row[Any], changes: dict[str, Any]) -> Row[Any]:
        """Writes ``changes`` over ``current`` (a row read in this transaction)."""
        merged = {**current._asdict(), **changes}
        values = {
            **changes,
            **self.derived(merged),
            "updated_at": changes.get("updated_at", utcnow()),
        }
        stmt = (
            update(self.table)
            .where(*self.scoped(self.c.id == current.id))
            .values(**values)
            .returning(self.table)
        )
        return (await self.conn.execute(stmt)).one()

    async def delete(self, id_: int) -> bool:
        """Deletes the row; False when there is none with this id in the workspace."""
        stmt = delete(self.table).where(*self.scoped(self.c.id == id_))
        return (await self.conn.execute(stmt)).rowcount == 1  # type: ignore[attr-defined]
