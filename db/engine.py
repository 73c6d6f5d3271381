"""Engines and units of work.

SQLite allows one writer at a time. A transaction that starts as a reader and later writes can
fail at once with "database is locked" (the busy timeout does not apply to that upgrade), so on
SQLite writes go through their own engine whose transactions start with BEGIN IMMEDIATE and wait
for the lock up front. Reads use a separate pool with ordinary deferred transactions; in WAL mode
they never block, nor are they blocked by, the writer. On PostgreSQL both are the same engine.

Statements past ``DB_STATEMENT_TIMEOUT_MS`` are cancelled by the server on PostgreSQL
(``statement_timeout``) and by a progress handler on SQLite; either way ``read()`` and
``write()`` raise ``StatementTimeout`` after the connection is back in its pool.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    create_async_engine,
)

from db import reads, sqlite_driver
from db.changes import Commits
from db.errors import StatementTimeout, is_statement_timeout, is_transient_conflict
from db.models import keys
from db.settings import Settings

# SQLite calls the progress handler every this many virtual machine instructions: often enough
# to stop a runaway statement within milliseconds, rarely enough to cost nothing measurable.
_PROGRESS_STEPS = 10_000
# How long a short read may run on the event loop's thread (SQLite) before it is stopped and
# run on the connection's thread instead (db/sqlite_driver.py, InlineReader).
INLINE_BUDGET_S = 0.002
# What the WAL file is cut back to when it starts over after a checkpoint, where a writer lets it
# grow (Database's ``checkpoint_pages``).
_WAL_SIZE_LIMIT = 64 * 1024 * 1024
# How often a unit of work runs when the database keeps aborting it for a deadlock.
TRANSACTION_ATTEMPTS = 5

T = TypeVar("T")
logger = logging.getLogger("leadgraph.db")


def _sqlite_pragmas(settings: Settings) -> list[str]:
    return [
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA foreign_keys=ON",
        f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}",
        f"PRAGMA cache_size=-{int(settings.sqlite_cache_size_kib)}",
        f"PRAGMA mmap_size={int(settings.sqlite_mmap_size)}",
        "PRAGMA temp_store=MEMORY",
    ]


class _Deadline:
    """When the statement running on one SQLite connection must stop (None: nothing running)."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at: float | None = None

    def passed(self) -> int:
        # Runs on aiosqlite's thread; a non-zero answer interrupts the statement.
        at = self.at
        return 1 if at is not None and time.monotonic() > at else 0


def _configure_sqlite(
    engine: AsyncEngine,
    settings: Settings,
    begin: str,
    inline: bool = True,
    checkpoint_pages: int | None = None,
) -> None:
    pragmas = _sqlite_pragmas(settings)
    writer = begin == "BEGIN IMMEDIATE"  # the one writer connection
    timeout_s = settings.db_statement_timeout_ms / 1000

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        # Take transaction control from the driver so that BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        if writer and inline:
            # Its COMMITs run on the event loop's thread (sqlite_driver.Connection.run_inline):
            # the checkpoints SQLite would run in them are queued on its thread instead. (A
            # writer that is not inline commits on its thread, checkpoints included.)
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        elif writer and checkpoint_pages is not None:
            # A WAL of this many pages before a COMMIT copies it into the database file: a
            # page that many transactions wrote is copied once (see Database).
            cursor.execute(f"PRAGMA wal_autocheckpoint={int(checkpoint_pages)}")
            cursor.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
        cursor.close()
        if writer and inline and isinstance(dbapi_connection, sqlite_driver.Connection):
            dbapi_connection.run_inline(int(settings.sqlite_busy_timeout_ms))
        if timeout_s:
            deadline = _Deadline()
            record.info["deadline"] = deadline
            dbapi_connection.run_async(
                lambda driver: driver.set_progress_handler(deadline.passed, _PROGRESS_STEPS)
            )

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Connection) -> None:
        dbapi_connection = conn.connection.dbapi_connection
        if isinstance(dbapi_connection, sqlite_driver.Connection):
            # Sent with the transaction's first statement, in the same hand-off to the thread.
            dbapi_connection.defer_begin(begin)
        else:
            conn.exec_driver_sql(begin)

    if timeout_s:

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def start_clock(conn: Connection, *_args: Any) -> None:
            deadline = conn.info.get("deadline")
            if deadline is not None:
                deadline.at = time.monotonic() + timeout_s

        @event.listens_for(engine.sync_engine, "after_cursor_execute")
        def stop_clock(conn: Connection, *_args: Any) -> None:
            deadline = conn.info.get("deadline")
            if deadline is not None:
                deadline.at = None

        @event.listens_for(engine.sync_engine, "handle_error")
        def stop_clock_on_error(context: Any) -> None:
            conn = context.connection
            deadline = conn.info.get("deadline") if conn is not None else None
            if deadline is not None:
                deadline.at = None


def _configure_postgresql(engine: AsyncEngine, settings: Settings) -> None:
    @event.listens_for(engine.sync_engine, "checkout")
    def replace_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        # Instead of pool_pre_ping's round trip (and its BEGIN/ROLLBACK) on every checkout: a
        # connection the server closed (a restart, a failover, pg_terminate_backend) is closed
        # on our side as soon as the event loop reads its end, so the pool can replace it
        # without asking the server. DisconnectionError makes the pool connect anew.
        if dbapi_connection._connection.is_closed():
            raise DisconnectionError("connection closed by the server")

    timeout_ms = int(settings.db_statement_timeout_ms)
    if not timeout_ms:
        return

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # A session-level SET on the driver, outside any transaction, once per connection. Not
        # a startup parameter: PgBouncer refuses connections that carry unknown ones.
        dbapi_connection.run_async(
            lambda driver: driver.execute(f"SET statement_timeout = {timeout_ms}")
        )


@contextmanager
def no_statement_timeout(conn: Connection) -> Iterator[None]:
    """Lifts ``DB_STATEMENT_TIMEOUT_MS`` for the statements run on ``conn`` inside the block:
    migrations may rebuild tables or indexes for minutes."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL statement_timeout = 0"))  # until the transaction ends
        yield
        return
    deadline = conn.info.pop("deadline", None)
    try:
        yield
    finally:
        if deadline is not None:
            conn.info["deadline"] = deadline


async def _despite_cancellation(work: Awaitable[None]) -> None:
    """Runs ``work`` to its end even if the caller is cancelled meanwhile; the cancellation is
    raised once it is over."""
    task = asyncio.ensure_future(work)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            if task.cancelled():
                raise
            cancelled = exc
    if cancelled is not None:
        raise cancelled
    task.result()


class Database:
    """The engines of one process (a reader and a writer on SQLite, one engine on PostgreSQL)."""

    def __init__(
        self,
        url: str,
        settings: Settings,
        *,
        inline_writes: bool = True,
        checkpoint_pages: int | None = None,
    ) -> None:
        """``inline_writes=False``: on SQLite the writer hands every statement to its thread,
        for background work whose statements are long (an import's INSERT of 1,000 leads)
        and would hold the event loop that answers requests. ``checkpoint_pages`` (with it):
        the WAL that writer lets grow before its COMMIT checkpoints, instead of SQLite's
        1,000 pages. Writes that touch pages all over big indexes (an import's batches: some
        3,500 pages each at a million leads) then copy a page once for many transactions:
        inserting a million leads went from 11,900 to 17,600 rows/s with 20,000 pages."""
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        keys.set_phone_region(settings.default_phone_region)
        self.inline: sqlite_driver.InlineReader | None = None
        # This process's commits that appended change events (db/changes.py).
        self.commits = Commits()
        pool = {"pool_size": settings.db_pool_size, "max_overflow": settings.db_max_overflow}
        if self.dialect == "sqlite":
            driver = sqlite_driver.dbapi()  # aiosqlite with fewer thread hand-offs
            # Its reads run through the driver directly (db/reads.py), the short ones on the
            # event loop's thread (sqlite_driver.InlineReader).
            self.inline = sqlite_driver.InlineReader.for_url(
                self.url, self.url.get_dialect()(), _sqlite_pragmas(settings), INLINE_BUDGET_S
            )
            options: dict[str, Any] = {reads.RAW_READS: True}
            if self.inline is not None:
                options[reads.INLINE_READS] = self.inline
            self.engine = create_async_engine(
                self.url, module=driver, execution_options=options, **pool
            )
            # One writer connection: SQLite serialises writers anyway; queueing them in the pool
            # is cheaper than having them spin on the file lock.
            self.writer = create_async_engine(self.url, module=driver, pool_size=1, max_overflow=0)
            _configure_sqlite(self.engine, settings, "BEGIN")
            _configure_sqlite(
                self.writer, settings, "BEGIN IMMEDIATE", inline_writes, checkpoint_pages
            )
        else:
            # One pool. Reads take its connections through an engine marked for db/reads.py,
            # which runs their statements on asyncpg directly: no BEGIN is sent for them (the
            # driver adapter opens a transaction only for statements SQLAlchemy executes), so
            # none needs a ROLLBACK either; under read committed every statement has its own
            # snapshot anyway. Writes use the same pool in transactions, as before.
            self.writer = create_async_engine(
                self.url,
                connect_args={"server_settings": {"application_name": "leadgraph"}},
                **pool,
            )
            _configure_postgresql(self.writer, settings)
            self.engine = self.writer.execution_options(**{reads.RAW_READS: True})

    @property
    def engines(self) -> list[AsyncEngine]:
        """The distinct engines behind ``read()`` and ``write()`` (each with its own pool), for
        event listeners: one on PostgreSQL, whose read engine is the writer with an option."""
        if self.engine.sync_engine.pool is self.writer.sync_engine.pool:
            return [self.writer]
        return [self.engine, self.writer]

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for read-only statements. It goes back to the pool (or is closed) before
        this ends, even when the reader is cancelled meanwhile: SQLAlchemy's own ``async with``
        leaves the close running, shielded, in a task of its own (resolvers/loaders.py,
        InFlight, waits for a cancelled batch to end, connection included)."""
        try:
            conn = await self.engine.connect().start()
            try:
                yield conn
            finally:
                await _despite_cancellation(conn.close())
        except DBAPIError as exc:
            if is_statement_timeout(exc):
                raise StatementTimeout from exc
            raise

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One unit of work: commits when the block ends normally, rolls back otherwise.

        A connection in a transaction, not an ``AsyncSession``: every statement is Core, so the
        session's identity map, state tracking and flush would be pure overhead on the write path.
        """
        commits: list[asyncio.Future[None]] = []
        try:
            async with self.writer.begin() as conn:
                dbapi_connection = conn.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
                if isinstance(dbapi_connection, sqlite_driver.Connection):
                    # SQLite's one writer connection goes back to its pool as soon as COMMIT is
                    # queued; the unit of work still ends only once it is done (below).
                    dbapi_connection.defer_commit(commits)
                yield conn
            for commit in commits:
                try:
                    await commit
                except sqlite3.Error as exc:
                    raise DBAPIError.instance("COMMIT", None, exc, sqlite3.Error) from exc
        except DBAPIError as exc:
            if is_statement_timeout(exc):
                raise StatementTimeout from exc
            raise

    @asynccontextmanager
    async def writer_turn(self) -> AsyncIterator[None]:
        """On SQLite, holds this Database's one writer connection without using it: a long
        write of another Database in this process (an import's batch) then takes its turn
        with this one's writes, in the pool's order, instead of starving them (SQLite's busy
        handler polls for the lock and a writer that commits and begins again at once keeps
        winning it). Nothing on PostgreSQL, whose writers lock rows, not the database."""
        if not self.is_sqlite:
            yield
            return
        async with self.writer.connect():
            yield

    async def transaction(
        self,
        work: Callable[[AsyncConnection], Awaitable[T]],
        *,
        attempts: int = TRANSACTION_ATTEMPTS,
    ) -> T:
        """``work(conn)`` as one unit of work (as in ``write()``), run again from the start
        when PostgreSQL aborts it to break a deadlock or a serialization conflict.

        ``work`` must keep its effects inside the transaction (or redo them idempotently): each
        attempt starts from a fresh transaction. Other exceptions end the unit of work at once.
        """
        for attempt in range(1, attempts + 1):
            try:
                async with self.write() as conn:
                    return await work(conn)
            except DBAPIError as exc:
                if attempt == attempts or not is_transient_conflict(exc):
                    raise
                logger.info("transaction aborted by the database (%s); retrying", exc.orig)
                # Jittered backoff, so that the two sides of a deadlock do not meet again.
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
        raise AssertionError("unreachable")

    async def dispose(self) -> None:
        for engine in self.engines:
            await engine.dispose()
        if self.inline is not None:
            self.inline.close()
