"""How a process learns that a workspace's change-event log grew, whichever process wrote it.

The log is the truth (``events``, in commit order per workspace); these only wake its readers
(resolvers/subscriptions.py), who then read the log past the last seq they have seen. A wake-up
that is lost, doubled or early costs at most a read: nothing is ever taken from a notification
but "look again".

- This process's own commits: ``Commits.appended`` right after the commit (resolvers/records.py,
  ``written()``), at once and on both engines.
- PostgreSQL: each append sends ``NOTIFY leadgraph_events, '<workspace>:<last seq>'`` in its
  own transaction (the trigger that numbers the events at commit, migration 0007, so no
  extra round trip), delivered at commit, in commit order, to every process that LISTENs.
  ``PgListener`` listens on a connection of its own (not the pool's), and after connecting,
  and again after any reconnection, wakes everything: what was committed meanwhile is read
  from the log.
- SQLite has no notifications: ``SqlitePoller`` asks a connection of its own for
  ``PRAGMA data_version`` (which changes when any other connection, of any process, commits)
  every ``SUBSCRIPTION_POLL_INTERVAL_MS``: microseconds on the event loop's thread, and nothing
  else unless something was committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db import reads
from db.models import EventCounter

if TYPE_CHECKING:
    from db.engine import Database

logger = logging.getLogger("leadgraph.changes")

# The NOTIFY channel of the change-event log; its payload is "<workspace id>:<last seq>".
CHANNEL = "leadgraph_events"
# How a listening connection shows in pg_stat_activity.
LISTENER_APPLICATION_NAME = "leadgraph-listen"
# A listening connection is asked for a round trip this often, so that one that died silently
# (no FIN from a vanished server) is noticed and replaced.
KEEPALIVE_S = 10.0
# Reconnection: the first retry after this, doubling up to the most.
RETRY_FIRST_S = 0.1
RETRY_MOST_S = 5.0

# (workspace id, last seq) when known; (None, None): anything may have changed.
Wake = Callable[[int | None, int | None], None]

_counters: Any = EventCounter.__table__  # type: ignore[attr-defined]
_LAST_SEQS = reads.Reusable(
    select(_counters.c.workspace_id, _counters.c.last_seq).where(
        _counters.c.workspace_id.in_(bindparam("ids", expanding=True))
    ),
    inline=True,  # by primary key
)


async def last_seqs(conn: AsyncConnection, workspace_ids: Sequence[int]) -> dict[int, int]:
    """The last seq of each workspace's log (0 for one without events yet), in one read."""
    rows = await reads.all_rows(conn, _LAST_SEQS, {"ids": list(workspace_ids)})
    found = {int(row.workspace_id): int(row.last_seq) for row in rows}
    return {ws: found.get(ws, 0) for ws in workspace_ids}


def notify_payload(workspace_id: int, last_seq: int) -> str:
    return f"{workspace_id}:{last_seq}"


def parse_payload(payload: str) -> tuple[int | None, int | None]:
    """A NOTIFY payload as (workspace, seq); (None, None) for one that is not ours."""
    workspace, _, seq = payload.partition(":")
    try:
        return int(workspace), int(seq)
    except ValueError:
        return None, None


class Commits:
    """This process's commits that appended events, told to whoever listens (the feed)."""

    def __init__(self) -> None:
        self._listeners: list[Wake] = []

    def listen(self, wake: Wake) -> None:
        self._listeners.append(wake)

    def unlisten(self, wake: Wake) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(wake)

    def appended(self, workspace_id: int, last_seq: int | None) -> None:
        """Events up to ``last_seq`` of the workspace were just committed (None: some events,
        their seqs given by the database at commit)."""
        for wake in self._listeners:
            wake(workspace_id, last_seq)


class PgListener:
    """LISTEN on a dedicated asyncpg connection; ``run`` keeps it connected until cancelled."""

    def __init__(self, connect_args: dict[str, Any], wake: Wake) -> None:
        self.connect_args = connect_args
        self.wake = wake
        # Set while a connection is listening (tests and logs use it).
        self.listening = asyncio.Event()

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        workspace, seq = parse_payload(payload)
        if workspace is not None:
            self.wake(workspace, seq)

    async def run(self) -> None:
        delay = RETRY_FIRST_S
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    **self.connect_args,
                    server_settings={"application_name": LISTENER_APPLICATION_NAME},
                )
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._notified)
                self.listening.set()
                delay = RETRY_FIRST_S
                # Whatever was committed before this connection listened is in the log.
                self.wake(None, None)
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), KEEPALIVE_S)
                    except TimeoutError:
                        await asyncio.wait_for(conn.execute("SELECT 1"), KEEPALIVE_S)
                logger.warning("the LISTEN connection was closed; connecting again")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "LISTEN %s failed (%s); connecting again in %.1f s", CHANNEL, exc, delay
                )
            finally:
                self.listening.clear()
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MOST_S)


class SqlitePoller:
    """Polls ``PRAGMA data_version`` on a read-only connection of its own, on the event loop's
    thread; wakes everything when another connection has committed since the last look."""

    def __init__(
        self, filename: str, options: dict[str, Any], interval_s: float, wake: Wake
    ) -> None:
        self.filename = filename
        self.options = options
        self.interval_s = interval_s
        self.wake = wake
        # Set while it polls.
        self.listening = asyncio.Event()

    async def run(self) -> None:
        conn: sqlite3.Connection | None = None
        version: int | None = None
        try:
            while True:
                try:
                    if conn is None:
                        conn = sqlite3.connect(self.filename, isolation_level=None, **self.options)
                        conn.execute("PRAGMA query_only=ON")
                        conn.execute("PRAGMA busy_timeout=0")
                    now = int(conn.execute("PRAGMA data_version").fetchone()[0])
                    self.listening.set()
                except sqlite3.Error as exc:
                    logger.warning("polling SQLite for commits failed: %s", exc)
                    self.listening.clear()
                    if conn is not None:
                        conn.close()
                    conn, now = None, None
                if now is not None and now != version:
                    # The first look wakes everything too: a reader may have started meanwhile.
                    version = now
                    self.wake(None, None)
                await asyncio.sleep(self.interval_s)
        finally:
            if conn is not None:
                conn.close()


Watcher = PgListener | SqlitePoller


def watcher(db: Database, wake: Wake, poll_interval_s: float) -> Watcher | None:
    """What tells this process about the commits of others; None for an in-memory SQLite
    database, which no other process (or connection) can see."""
    if not db.is_sqlite:
        return PgListener(pg_connect_args(db.writer.dialect, db.url), wake)
    if db.inline is None:
        return None
    return SqlitePoller(db.inline.filename, db.inline.options, poll_interval_s, wake)


def pg_connect_args(dialect: Any, url: Any) -> dict[str, Any]:
    """asyncpg.connect's arguments for the database of ``url``, as SQLAlchemy would pass them
    (host, port, user, password, database, SSL and the like from the URL's query)."""
    _, options = dialect.create_connect_args(url)
    # SQLAlchemy's own options, which its adapter takes out before calling asyncpg.
    for own in ("prepared_statement_cache_size", "prepared_statement_name_func"):
        options.pop(own, None)
    options.pop("async_creator_fn", None)
    return dict(options)
