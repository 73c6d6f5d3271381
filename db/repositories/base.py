"""What every repository shares: scoped lookups, keyset pages and counts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
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


@lru_cache(maxsize=256)
def _insert_returning(table: Table, keys: tuple[str, ...]) -> reads.Reusable:
    """``INSERT INTO table (keys...) VALUES (:v_key...) RETURNING *``, built once per table and
    set of columns, run by the driver itself in the write's transaction (``reads.in_transaction``:
    SQLAlchemy's execution context, parameter processing and Row objects cost more than the
    INSERT; bench/README.md, "Where a request's CPU goes"). The values are bind parameters of
    the columns' types (``v_`` + the column: a bind parameter named as its column is reserved
    for SQLAlchemy's own VALUES)."""
    values = {key: bindparam(INSERT_PARAM + key, type_=table.c[key].type) for key in keys}
    return reads.Reusable(insert(table).values(values).returning(table))


INSERT_PARAM = "v_"


@lru_cache(maxsize=512)
def _update_returning(table: Table, keys: tuple[str, ...]) -> reads.Reusable:
    """``UPDATE table SET key = :v_key... WHERE workspace_id = :scope_workspace_id AND id =
    :row_id RETURNING *``, built once per table and set of columns and run as
    ``_insert_returning`` is."""
    values = {key: bindparam(INSERT_PARAM + key, type_=table.c[key].type) for key in keys}
    stmt = update(table).where(*scoped_by_id(table)).values(values).returning(table)
    return reads.Reusable(stmt)


@cache
def _select_by_id(table: Table, for_update: bool) -> Select[Any]:
    stmt = select(table).where(*scoped_by_id(table))
    return stmt.with_for_update() if for_update else stmt


@lru_cache(maxsize=512)
def _selected(table: Table, columns: tuple[str, ...]) -> list[Any]:
    """The table's columns of these keys (a ColumnCollection lookup is Python-level, and a page
    selects a dozen)."""
    return [table.c[key] for key in columns]


# The parameters of a page built once per shape (_page): its start (a keyset) and size.
KEYSET_VALUE, KEYSET_ID, PAGE_LIMIT = "keyset_value", "keyset_id", "page_limit"
# The prefix of a filter's parameters: ``filter_city``, ``filter_statuses``.
FILTER_PARAM = "filter_"


def _itself(value: Any) -> Any:
    return value


def values_of(members: Iterable[Any]) -> list[Any]:
    """Enum members -> their stored values (for IN)."""
    return [m.value for m in members]


def folded_all(texts: Iterable[str]) -> list[str]:
    """Texts -> their case-folded keys (for IN)."""
    return [fold(t) for t in texts]


@dataclass(frozen=True)
class Bound:
    """A filter condition on one field of a spec, given when the field is not None (or has a
    default). Its value is a bind parameter (``filter_<field>``), so that a filtered page is
    built and compiled once per filter shape, like an unfiltered one: building a Select per
    request cost about as much CPU as running it (bench/README.md)."""

    field: str
    # (the table's columns, the value's bind parameter) -> the condition; for a constant, the
    # value itself instead of a parameter.
    condition: Callable[[Any, Any], ColumnElement[bool]]
    value: Callable[[Any], Any] = _itself  # the field's value -> the parameter's
    expanding: bool = False  # a list, for IN
    default: Any = None  # the value when the field is None
    constant: bool = False  # a yes/no that changes the SQL: part of the shape, not a parameter
    # For a condition of several parameters: the value -> {suffix: parameter} (named
    # ``filter_<suffix>``), instead of one parameter ``filter_<field>``.
    params: Callable[[Any], dict[str, Any]] | None = None


# A filter's shape: per condition given, in declaration order, its field (a parameter) or
# (field, value) (a constant).
Shape = tuple[str | tuple[str, Any], ...]


@lru_cache(maxsize=256)
def _templates(table: Table, bound: tuple[Bound, ...], shape: Shape) -> list[ColumnElement[bool]]:
    """The conditions of one filter shape, values as bind parameters."""
    by_field = {b.field: b for b in bound}
    c = table.c
    out = []
    for item in shape:
        if isinstance(item, tuple):
            field, value = item
            out.append(by_field[field].condition(c, value))
        else:
            b = by_field[item]
            out.append(b.condition(c, bindparam(FILTER_PARAM + item, expanding=b.expanding)))
    return out


@lru_cache(maxsize=512)
def _page(
    table: Table,
    bound: tuple[Bound, ...],
    shape: Shape,
    columns: tuple[str, ...] | None,
    sort_column: str,
    descending: bool,
    keyset: bool,
) -> reads.Reusable:
    """A page of one filter shape (none: a list's first pages, and those after a cursor),
    built once with its values as parameters. The same SQL ``Repository.page`` builds for a
    search."""
    col, id_col = table.c[sort_column], table.c.id
    where = [table.c.workspace_id == bindparam(SCOPE_PARAM), *_templates(table, bound, shape)]
    if keyset:
        key = tuple_(col, id_col)
        past = tuple_(
            bindparam(KEYSET_VALUE, type_=col.type), bindparam(KEYSET_ID, type_=id_col.type)
        )
        where.append(key < past if descending else key > past)
    order = (col.desc(), id_col.desc()) if descending else (col.asc(), id_col.asc())
    selected = _selected(table, columns) if columns else [table]
    stmt = select(*selected).where(*where).order_by(*order)
    # Without a filter, short whatever the values: every sort has an index that starts with the
    # workspace (the indexes test checks it), so a page walks its first rows and stops. With
    # one, usually short (the filters the indexes serve), but its values decide: adaptive.
    limited = stmt.limit(bindparam(PAGE_LIMIT, type_=Integer))
    return reads.Reusable(limited, inline=not shape, adaptive=bool(shape))


@lru_cache(maxsize=256)
def _count(table: Table, bound: tuple[Bound, ...], shape: Shape) -> reads.Reusable:
    where = [table.c.workspace_id == bindparam(SCOPE_PARAM), *_templates(table, bound, shape)]
    return reads.Reusable(select(func.count()).select_from(table).where(*where))


def external_id_bound(external: Table, record_column: str) -> Bound:
    """The ``externalId: {system, id}`` filter: the record that the lookup table names (its
    unique index finds at most one)."""

    def condition(c: Any, _: Any) -> ColumnElement[bool]:
        owner = (
            select(external.c[record_column])
            .where(
                external.c.workspace_id == bindparam(SCOPE_PARAM),
                external.c.system_key == bindparam(FILTER_PARAM + "external_system"),
                external.c.external_id == bindparam(FILTER_PARAM + "external_value"),
            )
            .scalar_subquery()
        )
        return c.id == owner  # type: ignore[no-any-return]

    return Bound(
        "external_id",
        condition,
        params=lambda pair: {"external_system": pair[0].casefold(), "external_value": pair[1]},
    )


class Repository:
    """Base for a workspace-scoped table. ``conn``: a read connection or a write() unit."""

    table: ClassVar[Table]
    # The lookup table of the records' outside-system IDs (``external_ids``), and its column
    # naming the record; None for a table without them.
    external: ClassVar[tuple[Table, str] | None] = None
    # The filter conditions of the table's spec, in the order they are applied; a domain adds
    # its own to these shared ones. A search is not one: its statement depends on its term.
    bound: ClassVar[tuple[Bound, ...]] = (
        Bound("created_gte", lambda c, v: c.created_at >= v),
        Bound("created_lt", lambda c, v: c.created_at < v),
    )

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

    def filter_shape(self, spec: FilterSpec | None) -> tuple[Shape, dict[str, Any]]:
        """The spec's conditions (its search aside) as a shape, and their parameters."""
        shape: list[str | tuple[str, Any]] = []
        params: dict[str, Any] = {}
        for b in self.bound if spec is not None else ():
            value = getattr(spec, b.field)
            if value is None:
                value = b.default
            if value is None:
                continue
            if b.constant:
                shape.append((b.field, value))
            elif b.params is not None:
                shape.append(b.field)
                params.update({FILTER_PARAM + k: v for k, v in b.params(value).items()})
            else:
                shape.append(b.field)
                params[FILTER_PARAM + b.field] = b.value(value)
        return tuple(shape), params

    def conditions(self, spec: FilterSpec) -> tuple[list[ColumnElement[bool]], dict[str, Any]]:
        """The filter's conditions (its search first, if any), values as bind parameters, and
        those parameters."""
        shape, params = self.filter_shape(spec)
        params[SCOPE_PARAM] = self.workspace_id  # for conditions with a subquery (external IDs)
        out: list[ColumnElement[bool]] = []
        if spec.search:
            out.append(TextSearch(self.table, fold(spec.search)))
        return out + _templates(self.table, self.bound, shape), params

    async def page(
        self,
        spec: FilterSpec | None,
        sort_column: str,
        descending: bool,
        start: Keyset | None,
        limit: int,
        columns: Sequence[str] | None = None,
    ) -> list[Row[Any]]:
        """Up to ``limit`` rows matching ``spec`` in (sort_column, id) order, strictly past
        ``start``: only ``columns`` (keys of the table's columns) when given, every column
        otherwise."""
        if spec is None or not spec.search:
            shape, params = self.filter_shape(spec)
            selected = tuple(columns) if columns else None
            page = _page(
                self.table, self.bound, shape, selected, sort_column, descending, start is not None
            )
            params |= {SCOPE_PARAM: self.workspace_id, PAGE_LIMIT: limit}
            if start is not None:
                params |= {KEYSET_VALUE: start.value, KEYSET_ID: start.id}
            return await reads.all_rows(self.conn, page, params)
        col, id_col = self.c[sort_column], self.c.id
        conditions, params = self.conditions(spec)
        indexed, where = self._indexed_search(conditions)
        if start is not None:
            key = tuple_(col, id_col)
            bound = tuple_(literal(start.value, col.type), literal(start.id, id_col.type))
            where.append(key < bound if descending else key > bound)
        order = (col.desc(), id_col.desc()) if descending else (col.asc(), id_col.asc())
        if indexed is not None:
            stmt = search.page_statement(indexed, self.scope, where, order, limit, columns)
        else:
            selected_columns = _selected(self.table, tuple(columns)) if columns else [self.table]
            stmt = select(*selected_columns).where(self.scope, *where).order_by(*order).limit(limit)
        return await reads.all_rows(self.conn, stmt, params)

    async def count(self, spec: FilterSpec | None) -> int:
        """How many rows match ``spec``."""
        if spec is None or not spec.search:
            shape, params = self.filter_shape(spec)
            params[SCOPE_PARAM] = self.workspace_id
            return int(await reads.scalar(self.conn, _count(self.table, self.bound, shape), params))
        conditions, params = self.conditions(spec)
        indexed, where = self._indexed_search(conditions)
        if indexed is not None:
            stmt = search.count_statement(indexed, self.scope, where)
        else:
            stmt = select(func.count()).select_from(self.table).where(self.scope, *where)
        return int(await reads.scalar(self.conn, stmt, params))

    def derived(self, values: dict[str, Any]) -> dict[str, Any]:
        """The derived columns (case-folded keys) for a row with these values."""
        return {}

    async def insert(self, values: dict[str, Any]) -> Row[Any]:
        now = utcnow()
        row = {"created_at": now, "updated_at": now, **values}
        params = {**row, **self.derived(row), "workspace_id": self.workspace_id}
        # Built once per table and set of columns: values() would coerce every value into a
        # new bound parameter and hash the statement again on each call.
        stmt = _insert_returning(self.table, tuple(params))
        given = {INSERT_PARAM + key: value for key, value in params.items()}
        (inserted,) = await reads.in_transaction(self.conn, stmt, given)
        if values.get("external_ids"):
            await self._store_external_ids(inserted.id, values["external_ids"], replace=False)
        return inserted

    async def update(self, current: Row[Any], changes: dict[str, Any]) -> Row[Any]:
        """Writes ``changes`` over ``current`` (a row read in this transaction)."""
        merged = {**current._asdict(), **changes}
        values = {
            **changes,
            **self.derived(merged),
            "updated_at": changes.get("updated_at", utcnow()),
        }
        stmt = _update_returning(self.table, tuple(values))
        given = {INSERT_PARAM + key: value for key, value in values.items()}
        (updated,) = await reads.in_transaction(self.conn, stmt, given | self.by_id(current.id))
        if "external_ids" in changes:
            await self._store_external_ids(current.id, changes["external_ids"], replace=True)
        return updated

    async def _store_external_ids(
        self, record_id: int, pairs: list[dict[str, str]], *, replace: bool
    ) -> None:
        """The lookup rows of a record's external IDs, as its ``external_ids`` column holds
        them. A pair that names another record breaks a unique index: IntegrityError."""
        assert self.external is not None
        table, column = self.external
        if replace:
            await self.conn.execute(delete(table).where(table.c[column] == record_id))
        if pairs:
            rows = [
                {
                    column: record_id,
                    "workspace_id": self.workspace_id,
                    "system_key": pair["system"].casefold(),
                    "external_id": pair["id"],
                }
                for pair in pairs
            ]
            await self.conn.execute(insert(table), rows)

    async def external_owners(
        self, pairs: Sequence[dict[str, str]], *, except_id: int | None = None
    ) -> dict[int, int]:
        """For each pair (by position) that names a record other than ``except_id``: its id."""
        if self.external is None or not pairs:
            return {}
        table, column = self.external
        keys = [(pair["system"].casefold(), pair["id"]) for pair in pairs]
        stmt = select(table.c.system_key, table.c.external_id, table.c[column]).where(
            table.c.workspace_id == self.workspace_id,
            tuple_(table.c.system_key, table.c.external_id).in_(keys),
        )
        owners = {(r[0], r[1]): r[2] for r in (await self.conn.execute(stmt)).all()}
        found = {i: owners.get(key) for i, key in enumerate(keys)}
        return {i: owner for i, owner in found.items() if owner is not None and owner != except_id}

    async def delete(self, id_: int) -> Row[Any] | None:
        """Deletes the row and returns what it held; None when there is none with this id in
        the workspace."""
        stmt = delete(self.table).where(*self.scoped(self.c.id == id_)).returning(self.table)
        return (await self.conn.execute(stmt)).first()
