"""aiosqlite for SQLAlchemy, with one thread hand-off per statement.

aiosqlite runs each call on the connection's own thread, and every call is a round trip from the
event loop to that thread and back (a queue, a thread wake-up, the GIL handed over twice, a
``call_soon_threadsafe``). SQLAlchemy's adapter makes four of them per statement (open a cursor,
execute, fetch, close) and one more to roll back every connection it returns to its pool, a
transaction open or not: 17 per ``createLead`` (a SELECT on a reader, an INSERT on the writer). On
a busy event loop these hand-offs, not SQLite, were the largest cost of a write.

This adapter runs a statement's whole life (cursor, BEGIN if one is pending, execute, fetchall,
close) in one hand-off, answers COMMIT and ROLLBACK without one when the connection has no
transaction open (SQLite would do nothing anyway), and queues a needed ROLLBACK without waiting
for it (the connection's next statement queues behind it). ``createLead``: 17 hand-offs -> 3.
``Database`` passes it as the engine's ``module``; SQLAlchemy's dialect, compilation and result
handling are unchanged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sqlite3
import threading
import time
from functools import partial
from typing import Any, cast

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

logger = logging.getLogger("leadgraph.db")

# How many inline COMMITs the writer makes between two WAL checkpoints, which run on its thread
# (SQLite's own, wal_autocheckpoint, would run in a COMMIT: on the event loop).
CHECKPOINT_EVERY = 100
# What one statement leaves behind: description, rows (None without a description), rowcount,
# lastrowid.
_Outcome = tuple[Any, list[Any] | None, int, int | None]


def _start(conn: sqlite3.Connection, begin: str | None) -> None:
    if begin is None:
        return
    if conn.in_transaction:
        # Left open by a ROLLBACK that failed on the thread (nobody waits for those, see
        # Connection.rollback): this is a new unit of work, so end the old one first.
        conn.rollback()
    conn.execute(begin)


def _run_begin(conn: sqlite3.Connection, begin: str | None, landed: list[bool]) -> None:
    """On aiosqlite's thread: the pending BEGIN alone."""
    try:
        _start(conn, begin)
    finally:
        landed[0] = True


def _run_commit(conn: sqlite3.Connection, landed: list[bool]) -> None:
    """On aiosqlite's thread: COMMIT; if it fails, ROLLBACK, so that no transaction outlives it
    (the connection may be back in its pool, and the next unit of work queued behind)."""
    try:
        conn.commit()
    except BaseException:
        try:
            conn.rollback()
        except sqlite3.Error:
            logger.warning("ROLLBACK after a failed COMMIT failed", exc_info=True)
        raise
    finally:
        landed[0] = True


def _run_rollback(conn: sqlite3.Connection, landed: list[bool]) -> None:
    """On aiosqlite's thread: ROLLBACK, for nobody to wait on."""
    try:
        conn.rollback()
    except sqlite3.Error:
        logger.warning("ROLLBACK failed; the next transaction will end it", exc_info=True)
    finally:
        landed[0] = True


def _run_checkpoint(conn: sqlite3.Connection, landed: list[bool]) -> None:
    """On aiosqlite's thread: copy the WAL into the database file as far as readers allow."""
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.Error:
        logger.warning("WAL checkpoint failed; the next one retries", exc_info=True)
    finally:
        landed[0] = True


def run_statement(
    conn: sqlite3.Connection,
    begin: str | None,
    operation: str,
    parameters: Any,
    many: bool,
    landed: list[bool],
) -> _Outcome:
    """On aiosqlite's thread: the pending BEGIN, then the statement, start to finish."""
    try:
        _start(conn, begin)
        cursor = conn.cursor()
        try:
            if many:
                cursor.executemany(operation, parameters)
            elif parameters is None:
                cursor.execute(operation)
            else:
                cursor.execute(operation, parameters)
            description = cursor.description
            rows = cursor.fetchall() if description else None
            return description, rows, cursor.rowcount, cursor.lastrowid
        finally:
            cursor.close()
    finally:
        landed[0] = True


class Cursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose execute is a single hand-off; nothing to open or close."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Connection) -> None:  # no hand-off to open a cursor
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return None  # the sqlite3 cursor was closed on the thread already

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._run(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._run(operation, seq_of_parameters, many=True)

    async def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        adapt = cast(Connection, self._adapt_connection)
        async with adapt._execute_mutex:
            outcome: _Outcome = await adapt._hand_off(run_statement, operation, parameters, many)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        if rows is not None:
            self._rows = collections.deque(rows)

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None

    def nextset(self) -> None:
        return None


class Connection(AsyncAdapt_aiosqlite_connection):
    """Hand-offs only when SQLite has work to do."""

    __slots__ = (
        "_begin",
        "_busy_ms",
        "_commit_sink",
        "_commits",
        "_committing",
        "_inline",
        "_landed",
    )

    _cursor_cls = Cursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        # A BEGIN to run just before the next statement, on the same hand-off.
        self._begin: str | None = None
        # Set by the thread when the last statement handed off has finished: until then, the
        # thread may still be using the connection (its request was cancelled, say).
        self._landed = [True]
        # Where commit() puts the future of a COMMIT it queued instead of waiting for it (see
        # defer_commit), and that COMMIT's landed flag while it is the last thing queued.
        self._commit_sink: list[asyncio.Future[None]] | None = None
        self._committing: list[bool] | None = None
        # Inline (see run_inline): statements, BEGIN and COMMIT run on the calling thread when
        # the connection's own thread has nothing left to do; SQLite's busy timeout (ms) for
        # the thread, and the commits since the last checkpoint.
        self._inline = False
        self._busy_ms = 0
        self._commits = 0

    def run_inline(self, busy_timeout_ms: int) -> None:
        """Run this connection's work on the event loop's thread instead of handing it off.

        For the one writer connection: a write's statements take SQLite tens of microseconds,
        a hand-off to the thread and back costs more CPU than that (a thread wake-up, the GIL
        passed back and forth against a busy event loop). Two things could block the loop, and
        do not: a BEGIN IMMEDIATE that meets another process's write lock is tried without
        waiting and, when busy, handed to the thread to wait there as before; and the WAL
        checkpoints a COMMIT would run (copying pages into the database file, an fsync) are
        queued on the thread every ``CHECKPOINT_EVERY`` commits instead of running in a COMMIT
        (``wal_autocheckpoint`` is off on this connection). Anything still queued on the
        thread (a ROLLBACK, a checkpoint) is waited for by handing off, so the connection is
        never used by both threads at once."""
        self._inline = True
        self._busy_ms = busy_timeout_ms

    def defer_commit(self, sink: list[asyncio.Future[None]]) -> None:
        """Let this transaction's COMMIT be queued on the thread rather than waited for: its
        future goes into ``sink``, for the caller to await once the connection is back in the
        pool. Whoever takes the connection next queues behind the COMMIT, so writes still
        apply one after the other; the connection is just not held while the event loop gets
        round to resuming the committing task (a millisecond or more under load, when one
        writer connection is what every write waits for)."""
        self._commit_sink = sink

    def defer_begin(self, sql: str) -> None:
        """Start a transaction with ``sql`` right before the next statement, in its hand-off.
        A transaction that runs no statement then costs no hand-off at all."""
        self._begin = sql

    def cursor(self, server_side: bool = False) -> Any:
        if server_side and self._begin is not None:
            # A streaming cursor talks to aiosqlite directly: open the transaction first.
            await_(self._hand_off(_run_begin))
        return super().cursor(server_side)

    async def _hand_off(self, fn: Any, *args: Any) -> Any:
        """``fn(sqlite3_connection, pending_begin, *args, landed)`` on aiosqlite's thread, as
        aiosqlite's own calls are queued (in order, one at a time)."""
        aio = self._connection
        if not aio._running or aio._connection is None:
            raise ValueError("Connection closed")  # as aiosqlite says it
        if self._inline and self._landed[0] and self._begun_inline(aio._conn):
            landed = [False]
            self._landed = landed
            self._committing = None
            return fn(aio._conn, None, *args, landed)
        landed = [False]
        begin, self._begin = self._begin, None
        self._landed = landed
        self._committing = None
        future = asyncio.get_running_loop().create_future()
        aio._tx.put_nowait((future, partial(fn, aio._conn, begin, *args, landed)))
        return await future

    def _begun_inline(self, conn: sqlite3.Connection) -> bool:
        """The pending BEGIN, if any, run here without waiting for a lock; False (the BEGIN
        still pending) when another connection holds the write lock."""
        begin = self._begin
        if begin is None:
            return True
        conn.execute("PRAGMA busy_timeout=0")
        try:
            _start(conn, begin)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            return False  # the thread waits for the lock, as long as the busy timeout says
        finally:
            conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        self._begin = None
        return True

    def _no_transaction(self) -> bool:
        """True when SQLite has no transaction open on this connection (and no statement
        still running on the thread that could open one)."""
        aio = self._connection
        if aio._connection is None:
            return False  # closed: let the base class decide
        return self._landed[0] and not aio._connection.in_transaction

    def rollback(self) -> None:
        """Queued on the thread and not waited for: the connection's next statement (whoever
        checks it out of the pool next) is queued behind it, so it runs in order all the same,
        and the event loop is spared a wake-up per read. A failed ROLLBACK is logged, and the
        next BEGIN ends that transaction first."""
        self._begin = None
        self._commit_sink = None
        if self._no_transaction() or self._committing is self._landed:
            # Nothing open, or the last thing queued is a COMMIT, after which nothing is.
            return
        aio = self._connection
        if not aio._running or aio._connection is None:
            super().rollback()  # closed: as SQLAlchemy's adapter does
            return
        landed = [False]
        self._landed = landed
        aio._tx.put_nowait((None, partial(_run_rollback, aio._conn, landed)))

    def commit(self) -> None:
        self._begin = None
        sink, self._commit_sink = self._commit_sink, None
        if self._no_transaction():
            return
        aio = self._connection
        if sink is None or not aio._running or aio._connection is None:
            super().commit()
            return
        landed = [False]
        future = asyncio.get_running_loop().create_future()
        if self._inline and self._landed[0]:
            self._landed = landed
            try:
                _run_commit(aio._conn, landed)
            except BaseException as exc:  # answered through the sink, as from the thread
                future.set_exception(exc)
            else:
                future.set_result(None)
            sink.append(future)
            self._commits += 1
            if self._commits >= CHECKPOINT_EVERY:
                self._commits = 0
                checkpointed = [False]
                # Like a queued COMMIT, the last thing queued leaves no transaction open.
                self._landed = self._committing = checkpointed
                aio._tx.put_nowait((None, partial(_run_checkpoint, aio._conn, checkpointed)))
            return
        self._landed = self._committing = landed
        aio._tx.put_nowait((future, partial(_run_commit, aio._conn, landed)))
        sink.append(future)


class DBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The module SQLAlchemy sees as the DBAPI; its connections are ``Connection``."""

    def connect(self, *arg: Any, **kw: Any) -> Connection:
        creator_fn = kw.pop("async_creator_fn", None)
        connection = creator_fn(*arg, **kw) if creator_fn else aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True  # as SQLAlchemy's adapter does
        return Connection(self, await_(connection))


def dbapi() -> DBAPI:
    """The DBAPI module to pass as ``create_async_engine(..., module=dbapi())``."""
    return DBAPI(aiosqlite, sqlite3)


# How many SQLite VM steps run between two looks at the clock of an inline read.
_INLINE_STEPS = 1000


class InlineReader:
    """Short reads run on the calling thread (the event loop's), without a hand-off.

    A hand-off to aiosqlite's thread costs more than the statements an ordinary request runs
    (an API key by its hash, an unfiltered page by its index: ~0.05 ms in SQLite): a queue, a
    thread wake-up and the GIL passed back and forth while the event loop is busy. ``run``
    executes a statement on a connection of this thread's own, opened like the pool's
    (same file, same pragmas) but read-only, in autocommit: each statement is one snapshot of
    the latest commit, as on the pool's connections. It gives up when the statement is still
    running after ``budget`` seconds (SQLite interrupts it, and nothing was changed: the
    connection is read-only) or when SQLite answers busy, and returns None: the caller runs
    the statement the ordinary way, on the thread, under the statement timeout. So a read
    that is usually short and turns out long (a cold page cache, a plan gone wrong) blocks the
    event loop for at most ``budget``.

    Only statements marked as short take this path (``db/reads.py``, ``Reusable(inline=True)``).
    """

    def __init__(self, filename: str, options: dict[str, Any], pragmas: list[str], budget: float):
        self.filename = filename
        self.options = options
        self.pragmas = pragmas
        self.budget = budget
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @classmethod
    def for_url(
        cls, url: Any, dialect: Any, pragmas: list[str], budget: float
    ) -> InlineReader | None:
        """One for the database file of ``url``; None for an in-memory database (another
        connection would see another database)."""
        args, options = dialect.create_connect_args(url)
        filename = args[0] if args else ""
        memory = filename in ("", ":memory:") or (options.get("uri") and "mode=memory" in filename)
        if memory:
            return None
        options = {k: v for k, v in options.items() if k in ("uri", "timeout", "detect_types")}
        return cls(filename, options, pragmas, budget)

    def _connection(self) -> tuple[sqlite3.Connection, list[float]]:
        found = getattr(self._local, "conn", None)
        if found is not None:
            return found  # type: ignore[no-any-return]
        conn = sqlite3.connect(self.filename, isolation_level=None, **self.options)
        for pragma in self.pragmas:
            conn.execute(pragma)
        conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA busy_timeout=0")  # busy: give up at once, the thread will wait
        deadline = [0.0]
        clock = time.monotonic
        conn.set_progress_handler(lambda: 1 if clock() > deadline[0] else 0, _INLINE_STEPS)
        self._local.conn = (conn, deadline)
        with self._lock:
            self._opened.append(conn)
        return conn, deadline

    def run(self, sql: str, arguments: tuple[Any, ...]) -> list[Any] | None:
        """The statement's rows, or None when it must run the ordinary way."""
        conn, deadline = self._connection()
        deadline[0] = time.monotonic() + self.budget
        try:
            return conn.execute(sql, arguments).fetchall()
        except sqlite3.Error:
            # Interrupted past the budget, or busy (a checkpoint, a WAL being recovered); any
            # other error happens again on the thread, and is reported from there as usual.
            return None

    def close(self) -> None:
        """Closes the connections this reader opened (on every thread that used it)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            # Another thread's connection refuses: it closes when that thread's reference goes.
            with contextlib.suppress(sqlite3.ProgrammingError):
                conn.close()
        self._local = threading.local()
