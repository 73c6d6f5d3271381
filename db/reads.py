"""Reads run by the database driver itself.

SQLAlchemy builds and compiles each statement as everywhere else (same SQL, same parameters,
same type conversions); only the execution skips its per-statement machinery (execution
context, greenlet hand-offs, cursor adaptation, result metadata and Row objects), which cost
2-3 times what the driver takes to run a page (bench/README.md, "Where a request's CPU goes").
Each statement shape is compiled once (keyed by SQLAlchemy's own cache key) and then runs on
the pooled connection: as asyncpg's prepared statement on PostgreSQL, in one hand-off to the
connection's thread on SQLite (``db/sqlite_driver.py``). Rows are named tuples: attributes,
``_fields`` and ``_asdict()``, like SQLAlchemy's.

Only connections of ``Database.read()`` take this path (they carry ``RAW_READS``); a read runs
no BEGIN, so it needs no ROLLBACK: one statement is one snapshot, as under read committed.
Writes, in their transactions, keep SQLAlchemy's path (it holds the transaction), but for the
statements a caller runs through ``in_transaction``: a row's INSERT/UPDATE ... RETURNING
(``Repository.insert``/``update``) and the change-event log's append, which every write runs.
"""

from __future__ import annotations

import asyncio
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from cachetools import LRUCache
from sqlalchemy import Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler

from db import sqlite_driver

# The execution option that marks the connections ``Database.read()`` hands out (db/engine.py).
RAW_READS = "leadgraph_raw_reads"
# The execution option holding SQLite's InlineReader (db/sqlite_driver.py), for statements
# marked short (``Reusable(..., inline=True)``).
INLINE_READS = "leadgraph_inline_reads"
# Statement shapes kept compiled; a shape is a statement with its literal values taken out, so
# a handful per query of the API (filters, sorts, directions), a few hundred in all.
_plans: LRUCache[Any, _Plan | None] = LRUCache(maxsize=1000)
_NO_KEY: Any = object()


@dataclass(frozen=True)
class _Plan:
    compiled: SQLCompiler
    sql: str | None  # None: the statement has IN lists, rendered per call
    row: type
    results: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, result processor)


def _row_type(names: Sequence[str], aliases: dict[str, str]) -> type:
    """A named tuple with these fields, and attribute aliases (``meta`` for ``metadata``)."""
    base = namedtuple("Row", names)  # type: ignore[misc]
    extra = {alias: property(itemgetter(names.index(name))) for alias, name in aliases.items()}
    return type("Row", (base,), {"__slots__": (), **extra})


def _plan(stmt: Executable, dialect: Dialect, key: Any) -> _Plan | None:
    """How to run ``stmt``'s shape; None for what only SQLAlchemy's execution handles here
    (no result columns, a bind processor per tuple element)."""
    # With the cache key, as SQLAlchemy compiles for execution: later statements of the same
    # shape pass their own values through it (construct_params' extracted_parameters).
    compiled = stmt.compile(dialect=dialect, cache_key=key)  # type: ignore[attr-defined]
    assert isinstance(compiled, SQLCompiler)
    names, aliases, results = [], {}, []
    for position, column in enumerate(compiled._result_columns):
        names.append(column.keyname)
        for obj in column.objects:
            alias = getattr(obj, "key", None)
            if isinstance(alias, str) and alias != column.keyname and alias.isidentifier():
                aliases[alias] = column.keyname
        processor = column.type._cached_result_processor(dialect, None)
        if processor is not None:
            results.append((position, processor))
    if not names or any(not callable(p) for p in compiled._bind_processors.values()):
        return None
    expanding = bool(compiled.post_compile_params) or bool(compiled.literal_execute_params)
    return _Plan(
        compiled=compiled,
        sql=None if expanding else compiled.string,
        row=_row_type(names, aliases),
        results=tuple(results),
    )


def _arguments(
    plan: _Plan, extracted: Sequence[Any], given: dict[str, Any] | None
) -> tuple[str, list[Any]]:
    compiled = plan.compiled
    processors: Mapping[str, Any] = compiled._bind_processors
    names: Sequence[str] = compiled.positiontup or []
    sql = plan.sql
    if given is not None and sql is not None and all(name in given for name in names):
        # A statement built once with named parameters only (Reusable): every value is given,
        # so SQLAlchemy's construct_params (a walk of the statement's binds) has nothing to add.
        params: Mapping[str, Any] = given
    else:
        params = compiled.construct_params(given, extracted_parameters=extracted)
    if sql is None:  # IN lists: rendered for this call's values, as SQLAlchemy does
        expanded = compiled._process_parameters_for_postcompile(dict(params))
        names, sql = expanded.positiontup or [], expanded.statement
        # The expansion's processors are its IN lists' only: the other binds keep theirs (a
        # keyset's datetime beside a status IN list went to SQLite unconverted, as text that
        # compared past the row it came from).
        params, processors = expanded.parameters, {**processors, **expanded.processors}
    arguments = []
    for name in names:
        value = params[name]
        processor = processors.get(name)
        arguments.append(processor(value) if processor is not None and value is not None else value)
    return sql, arguments


class Reusable:
    """A statement built once (its varying values are bind parameters, given per call) and
    its cache key, computed once too. ``inline``: the statement is short whatever its values
    (a lookup by a unique key, a page that walks an index), so on SQLite it runs on the event
    loop's thread rather than through a hand-off (``sqlite_driver.InlineReader``).
    ``adaptive``: usually short (a filtered page: its values decide how far it walks), so it
    tries the loop's thread too, and after one run past the inline budget goes the ordinary
    way for the next ``ADAPTIVE_BACKOFF`` runs before it tries again."""

    __slots__ = ("adaptive", "inline", "key", "skip", "stmt")

    def __init__(self, stmt: Executable, *, inline: bool = False, adaptive: bool = False) -> None:
        self.stmt = stmt
        self.key = stmt._generate_cache_key()  # type: ignore[attr-defined]
        self.inline = inline or adaptive
        self.adaptive = adaptive
        self.skip = 0

    def try_inline(self) -> bool:
        """Whether this run should try the event loop's thread."""
        if self.skip:
            self.skip -= 1
            return False
        return self.inline

    def outlasted(self) -> None:
        """A run outlasted the inline budget: an adaptive statement stops trying for a while."""
        if self.adaptive:
            self.skip = ADAPTIVE_BACKOFF


# Runs of an adaptive statement that go the ordinary way after one outlasted the inline budget.
ADAPTIVE_BACKOFF = 64


async def in_transaction(
    conn: AsyncConnection, stmt: Reusable, params: dict[str, Any] | None = None
) -> list[Any]:
    """Every row a statement of a write's transaction returns (an INSERT ... RETURNING), run by
    the driver itself as reads are, in the transaction SQLAlchemy holds open: on SQLite the
    writer's own hand-off (on the event loop's thread when it runs inline), which starts a
    pending BEGIN first; on PostgreSQL asyncpg on the same connection, once SQLAlchemy has
    begun the transaction (before that, SQLAlchemy's own path, which begins it). Rows are named
    tuples."""
    sync: Any = conn.sync_connection
    fairy = sync._dbapi_connection
    if fairy is None or (
        conn.dialect.name != "sqlite" and fairy.dbapi_connection._transaction is None
    ):
        return list((await conn.execute(stmt.stmt, params)).all())
    return await all_rows(conn, stmt, params, raw=True)


async def all_rows(
    conn: AsyncConnection,
    stmt: Executable | Reusable,
    params: dict[str, Any] | None = None,
    *,
    inline: bool = False,
    raw: bool = False,
) -> list[Any]:
    """Every row ``stmt`` returns (with ``params`` for its named bind parameters), as named
    tuples on the read connections, as SQLAlchemy's Rows elsewhere. ``inline``: the statement
    is short whatever its values, as a ``Reusable(inline=True)`` is. ``raw``: the driver's
    path on any connection (``in_transaction``)."""
    reusable = None
    if isinstance(stmt, Reusable):
        reusable, key = stmt, stmt.key
        inline = inline or stmt.try_inline()
        stmt = stmt.stmt
    else:
        key = _NO_KEY
    if not raw and not conn.sync_connection._execution_options.get(RAW_READS):  # type: ignore[union-attr]
        return list((await conn.execute(stmt, params)).all())
    if key is _NO_KEY:
        key = stmt._generate_cache_key()  # type: ignore[attr-defined]
    dialect = conn.dialect
    # SQLAlchemy's cache key does not name the dialect: one process may talk to both engines.
    shape = (dialect.name, dialect.driver, key.key) if key is not None else None
    plan = _plans.get(shape, _NO_KEY) if shape is not None else None
    if plan is _NO_KEY:
        plan = _plans[shape] = _plan(stmt, dialect, key)
    if plan is None:  # a statement SQLAlchemy cannot cache, or one only it runs (see _plan)
        return list((await conn.execute(stmt, params)).all())
    sql, arguments = _arguments(plan, key.bindparams, params)
    sync: Any = conn.sync_connection
    listened = sync._has_events or sync.engine._has_events
    if listened:
        # As SQLAlchemy does for its own execution: listeners (statement counters, SQLite's
        # statement deadline in db/engine.py) see every statement, before and after.
        for listener in sync.dispatch.before_cursor_execute:
            listener(sync, None, sql, arguments, None, False)
    # The pooled connection: already checked out, so read in place (get_raw_connection() would
    # hand off to a greenlet to read the same attribute); only a connection invalidated since
    # needs SQLAlchemy to reconnect it.
    fairy = sync._dbapi_connection or await conn.get_raw_connection()
    try:
        # A short statement on SQLite: on this thread, unless it outlasts the inline budget.
        reader = sync._execution_options.get(INLINE_READS) if inline else None
        records = reader.run(sql, tuple(arguments)) if reader is not None else None
        if records is None and reader is not None and reusable is not None:
            reusable.outlasted()
        if records is None and dialect.name == "sqlite":
            # One hand-off to the connection's thread, as db/sqlite_driver.py runs statements.
            adapter: Any = fairy.dbapi_connection
            _, records, _, _ = await adapter._hand_off(
                sqlite_driver.run_statement, sql, tuple(arguments), False
            )
        elif records is None:
            records = await _fetch(conn, fairy.driver_connection, sql, arguments)
    except Exception as exc:
        raise await _translated(conn, fairy, exc, sql, arguments) from exc
    finally:
        if listened:
            for listener in sync.dispatch.after_cursor_execute:
                listener(sync, None, sql, arguments, None, False)
    make = plan.row._make  # type: ignore[attr-defined]
    if not plan.results:
        return [make(record) for record in records]
    rows = []
    for record in records:
        values = list(record)
        for position, processor in plan.results:
            if values[position] is not None:
                values[position] = processor(values[position])
        rows.append(make(values))
    return rows


async def _fetch(conn: AsyncConnection, driver: Any, sql: str, arguments: list[Any]) -> Any:
    """asyncpg's fetch; a connection whose fetch is cancelled is closed, never pooled again.

    Where the cancellation lands decides what the server is left doing. Inside the run, asyncpg
    sends a CancelRequest, in the background. Between the statement's prepare (Parse and
    Describe, which asyncpg ends with a Flush, not a Sync) and its run, asyncpg sends nothing
    more: the server waits for the rest of the exchange, "active" in pg_stat_activity and
    holding the locks the parse took, until the connection's next statement, minutes away on a
    quiet pool. SQLAlchemy knows of neither: its reset on return does nothing for a connection
    with no transaction (reads open none). So this does what SQLAlchemy's own execution does
    when a statement is interrupted: invalidate the connection. Its close is graceful (asyncpg
    waits for a CancelRequest to be answered, then sends Terminate, and the server ends the
    backend, releasing its locks, before the socket closes; one interrupted again is closed at
    once), so the statement is over when the read ends, and the pool connects anew."""
    try:
        return await driver.fetch(sql, *arguments)
    except asyncio.CancelledError as exc:
        await conn.invalidate(exc)
        raise


async def first(
    conn: AsyncConnection, stmt: Executable | Reusable, params: dict[str, Any] | None = None
) -> Any:
    """The first row, or None."""
    rows = await all_rows(conn, stmt, params)
    return rows[0] if rows else None


async def scalar(
    conn: AsyncConnection, stmt: Executable | Reusable, params: dict[str, Any] | None = None
) -> Any:
    """The first column of the first row (a count)."""
    rows = await all_rows(conn, stmt, params)
    return rows[0][0] if rows else None


async def _translated(
    conn: AsyncConnection, fairy: Any, exc: Exception, sql: str, arguments: list[Any]
) -> Exception:
    """The driver's exception as SQLAlchemy raises it (a DBAPIError whose ``orig`` is the
    adapted error), so that db/errors.py tells timeouts and conflicts apart as on every other
    path; a connection that broke is invalidated, so that the pool replaces it."""
    adapter = fairy.dbapi_connection
    try:
        adapter._handle_exception(exc)
    except Exception as adapted:  # the adapter raises its DBAPI error
        dbapi = conn.dialect.loaded_dbapi
        if not isinstance(adapted, dbapi.Error):
            return adapted
        disconnect = conn.dialect.is_disconnect(adapted, adapter, None)
        if disconnect:
            await conn.invalidate(adapted)
        return DBAPIError.instance(
            sql, arguments, adapted, dbapi.Error, connection_invalidated=disconnect
        )
    return exc
