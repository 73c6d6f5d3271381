"""Live change events: what ``subscription { events(after, filter) }`` streams.

One ``EventFeed`` per process. For each workspace that has subscribers in the process, one
reader follows the log: woken (db/changes.py: this process's commits at once, other processes'
as the engine can tell), it reads the events past its position, once for every
subscriber, and hands each subscriber those its filter selects, into the subscriber's bounded
queue. The log is the truth: a wake-up only says "read past your position", so a lost or doubled
one costs a read, never an event.

A subscription with ``after`` first replays the log itself (its filter in SQL, a page at a time,
as fast as its client takes them, holding nothing else), then joins the reader and reads once
more up to the reader's position; from there the reader's hand-outs follow. Every event is
delivered once: by seq, a subscriber skips what it has already sent (``cursor``), and the
reader hands it every event past the position it had when the subscriber joined.

A subscriber whose queue is full is too slow: it leaves the reader at once (its queue freed) and
its connection is closed with 1013 and the cursor to resume from. One whose credential stops
working (revoked, expired, removed from the workspace) is closed with 4403 within
``SUBSCRIPTION_AUTH_CHECK_SECONDS``: the credentials of open subscriptions are looked up again
that often, once per distinct credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from db import changes
from db.engine import Database
from db.models import Role
from db.repositories import EventFilterSpec, EventRepository, Keyset
from db.settings import Settings
from resolvers.events import event_filter
from resolvers.pagination import decode_seq_cursor, encode_seq_cursor
from resolvers.principal import authenticate

if TYPE_CHECKING:
    from resolvers.context import Context

logger = logging.getLogger("leadgraph.subscriptions")

# Events read at once from the log, by the shared reader and by a subscriber's replay.
PAGE = 200
# A reader that failed to read (the database away) tries again after this, doubling to the most.
RETRY_FIRST_S = 0.2
RETRY_MOST_S = 5.0

# WebSocket close codes. 1013 is "Try Again Later" (graphql-ws clients retry it); 4403 is
# graphql-ws's Forbidden, as for a credential refused at connection_init.
CLOSE_TOO_SLOW = 1013
CLOSE_FORBIDDEN = 4403
REVOKED_REASON = "Forbidden: the credential was revoked or expired; sign in again"


class SubscriptionEnded(Exception):
    """The server ends the subscription: its connection is closed with ``code`` and
    ``reason`` (at most 123 bytes, as a WebSocket close frame allows)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def too_slow(cursor: int) -> SubscriptionEnded:
    return SubscriptionEnded(
        CLOSE_TOO_SLOW, f"subscriber too slow: resume with after={encode_seq_cursor(cursor)}"
    )


def predicate(spec: EventFilterSpec) -> Callable[[Any], bool] | None:
    """The filter as a test of one event row (None: every event), with the meaning of
    ``EventRepository.event_conditions`` in SQL, which replays use."""
    tests: list[Callable[[Any], bool]] = []
    if spec.types is not None:
        types = frozenset(t.value for t in spec.types)
        tests.append(lambda row: row.type in types)
    if spec.record is not None:
        record_type, record_id = spec.record
        tests.append(lambda row: row.record_type == record_type and row.record_id == record_id)
    if spec.occurred_gte is not None:
        gte = spec.occurred_gte
        tests.append(lambda row: row.occurred_at >= gte)
    if spec.occurred_lt is not None:
        lt = spec.occurred_lt
        tests.append(lambda row: row.occurred_at < lt)
    if not tests:
        return None
    return lambda row: all(test(row) for test in tests)


class Subscriber:
    """One subscription as the feed sees it: what it wants, and what waits to be sent."""

    __slots__ = ("credential", "ended", "limit", "match", "queue", "slow", "wakeup", "workspace_id")

    def __init__(
        self, workspace_id: int, spec: EventFilterSpec, credential: str | None, limit: int
    ) -> None:
        self.workspace_id = workspace_id
        self.credential = credential
        self.limit = limit
        self.match = predicate(spec)
        self.queue: deque[Any] = deque()
        self.wakeup = asyncio.Event()
        self.ended: SubscriptionEnded | None = None
        self.slow = False

    def offer(self, rows: Sequence[Any]) -> bool:
        """Queues the rows it wants; False when it is to leave the reader: it was ended, or
        the rows would pass its limit (it is too slow: the queue is dropped)."""
        if self.ended is not None:
            return False
        match = self.match
        for row in rows:
            if match is None or match(row):
                if len(self.queue) >= self.limit:
                    self.slow = True
                    self.queue.clear()
                    self.wakeup.set()
                    return False
                self.queue.append(row)
        self.wakeup.set()
        return True

    def end(self, ended: SubscriptionEnded) -> None:
        self.ended = ended
        self.queue.clear()
        self.wakeup.set()

    def check(self, cursor: int | None) -> None:
        """Raises SubscriptionEnded if the server ended it (``cursor``: the resume point)."""
        if self.ended is not None:
            raise self.ended
        if self.slow:
            assert cursor is not None
            raise too_slow(cursor)


class _Reader:
    """The one reader of a workspace's log in this process: everything up to ``position`` has
    been handed to the subscribers it had at the time."""

    def __init__(self, feed: EventFeed, workspace_id: int) -> None:
        self.feed = feed
        self.workspace_id = workspace_id
        self.position = 0
        self.ready = asyncio.Event()  # position known
        self.wakeup = asyncio.Event()
        self.subscribers: set[Subscriber] = set()
        self.task = asyncio.create_task(self._run(), name=f"events reader {workspace_id}")

    def wake(self, seq: int | None) -> None:
        if seq is None or not self.ready.is_set() or seq > self.position:
            self.wakeup.set()

    async def _run(self) -> None:
        delay = RETRY_FIRST_S
        while True:
            try:
                if not self.ready.is_set():
                    # The log's end: what subscribers joining now replay up to themselves.
                    async with self.feed.db.read() as conn:
                        found = await changes.last_seqs(conn, [self.workspace_id])
                    self.position = found[self.workspace_id]
                    self.ready.set()
                await self.wakeup.wait()
                self.wakeup.clear()
                await self._drain()
                delay = RETRY_FIRST_S
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning(
                    "reading the event log of workspace %d failed; again in %.1f s",
                    self.workspace_id,
                    delay,
                    exc_info=True,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MOST_S)
                self.wakeup.set()

    async def _drain(self) -> None:
        while True:
            rows = await self.feed.read(self.workspace_id, None, self.position)
            self.feed.reads += 1
            if rows:
                # Handing out and moving the position happen together (no await between), so
                # a subscriber joins either before a batch (and gets it) or after (and reads it
                # from the log up to the position).
                for subscriber in list(self.subscribers):
                    if not subscriber.offer(rows):
                        self.subscribers.discard(subscriber)
                        self.feed.too_slow += subscriber.slow
                self.position = rows[-1].seq
            if len(rows) < PAGE:
                return


class EventFeed:
    """The process's live readers of the change-event log (see the module's docstring)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._readers: dict[int, _Reader] = {}
        self._credentials: dict[str | None, set[Subscriber]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._check = asyncio.Event()
        self._watcher: changes.Watcher | None = None
        # Counters, for the log and the tests.
        self.reads = 0
        self.too_slow = 0
        self.revoked = 0
        db.commits.listen(self.wake)

    @property
    def subscribers(self) -> int:
        return sum(len(subs) for subs in self._credentials.values())

    @property
    def following(self) -> int:
        """Subscribers the readers hand events to: every event committed from now on reaches
        them."""
        return sum(len(r.subscribers) for r in self._readers.values() if r.ready.is_set())

    @property
    def listening(self) -> asyncio.Event | None:
        """Set while this process hears of other processes' commits (None before the first
        subscriber, or for a database no other process can see)."""
        return self._watcher.listening if self._watcher is not None else None

    def _start(self) -> None:
        """The background work, started by the first subscriber: the other processes' commits,
        the check of every reader's end after a wake-up of all, the credential checks."""
        if self._tasks:
            return
        interval = self.settings.subscription_poll_interval_ms / 1000
        self._watcher = changes.watcher(self.db, self.wake, interval)
        if self._watcher is not None:
            self._tasks.append(asyncio.create_task(self._watcher.run(), name="events watcher"))
        self._tasks.append(asyncio.create_task(self._check_all(), name="events check"))
        self._tasks.append(asyncio.create_task(self._recheck_credentials(), name="events auth"))

    async def close(self) -> None:
        self.db.commits.unlisten(self.wake)
        tasks = self._tasks + [reader.task for reader in self._readers.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks, self._readers = [], {}

    def wake(self, workspace_id: int | None, seq: int | None) -> None:
        """Events up to ``seq`` of the workspace may have been committed; (None, None):
        anything may have been, in any workspace."""
        if workspace_id is None:
            self._check.set()
            return
        reader = self._readers.get(workspace_id)
        if reader is not None:
            reader.wake(seq)

    async def _check_all(self) -> None:
        """After a wake-up of all: one read of every followed workspace's end, and a wake-up
        of the readers behind it."""
        while True:
            await self._check.wait()
            self._check.clear()
            ids = list(self._readers)
            if not ids:
                continue
            try:
                async with self.db.read() as conn:
                    ends = await changes.last_seqs(conn, ids)
            except Exception:
                logger.warning("reading the event logs' ends failed", exc_info=True)
                await asyncio.sleep(RETRY_FIRST_S)
                self._check.set()
                continue
            for workspace_id, seq in ends.items():
                self.wake(workspace_id, seq)

    async def _recheck_credentials(self) -> None:
        while True:
            await asyncio.sleep(self.settings.subscription_auth_check_seconds)
            for credential, subscribers in list(self._credentials.items()):
                if not subscribers:
                    continue
                try:
                    principal, _ = await authenticate(self.db, self.settings, credential)
                except Exception:
                    logger.warning("checking a subscription's credential failed", exc_info=True)
                    continue
                for subscriber in list(subscribers):
                    if (
                        principal is None
                        or principal.workspace_id != subscriber.workspace_id
                        or not principal.role.includes(Role.VIEWER)
                    ):
                        subscriber.end(SubscriptionEnded(CLOSE_FORBIDDEN, REVOKED_REASON))
                        self.revoked += 1

    async def read(self, workspace_id: int, spec: EventFilterSpec | None, after: int) -> list[Any]:
        """Up to a page of the workspace's events past seq ``after``, in seq order."""
        async with self.db.read() as conn:
            repository = EventRepository(conn, workspace_id)
            return await repository.page(spec, "seq", False, Keyset(after, 0), PAGE)

    def _join(self, subscriber: Subscriber) -> _Reader:
        reader = self._readers.get(subscriber.workspace_id)
        if reader is None:
            reader = self._readers[subscriber.workspace_id] = _Reader(self, subscriber.workspace_id)
        reader.subscribers.add(subscriber)
        return reader

    def _leave(self, subscriber: Subscriber, reader: _Reader | None) -> None:
        same = self._credentials.get(subscriber.credential)
        if same is not None:
            same.discard(subscriber)
            if not same:
                del self._credentials[subscriber.credential]
        if reader is None:
            return
        reader.subscribers.discard(subscriber)
        if not reader.subscribers and self._readers.get(reader.workspace_id) is reader:
            del self._readers[reader.workspace_id]
            reader.task.cancel()

    async def stream(
        self,
        workspace_id: int,
        credential: str | None,
        spec: EventFilterSpec,
        after: int | None,
        limit: int,
    ) -> AsyncGenerator[Any, None]:
        """The workspace's events that ``spec`` selects, past seq ``after`` (None: from now),
        in order, each once, until cancelled; raises SubscriptionEnded when the server ends it.
        Each row yielded has been sent once the caller asks for the next one."""
        subscriber = Subscriber(workspace_id, spec, credential, limit)
        self._start()
        self._credentials.setdefault(credential, set()).add(subscriber)
        reader: _Reader | None = None
        try:
            cursor = after
            if cursor is not None:
                # 1. The log from `after`, before joining: however long it is, only a page of
                # it is in memory, and nothing queues up meanwhile.
                while True:
                    rows = await self.read(workspace_id, spec, cursor)
                    for row in rows:
                        subscriber.check(cursor)
                        yield row
                        cursor = row.seq
                    if len(rows) < PAGE:
                        break
            reader = self._join(subscriber)
            await reader.ready.wait()
            head = reader.position
            if cursor is None:
                cursor = head
            # 2. What the reader handed out before this subscriber joined (the reader hands it
            # everything past `head`, and it skips what it has sent).
            while cursor < head:
                rows = await self.read(workspace_id, spec, cursor)
                for row in rows:
                    if row.seq > head:
                        break
                    subscriber.check(cursor)
                    yield row
                    cursor = row.seq
                if len(rows) < PAGE or rows[-1].seq >= head:
                    break
            cursor = max(cursor, head)
            # 3. Live: what the reader hands out.
            while True:
                subscriber.check(cursor)
                if not subscriber.queue:
                    subscriber.wakeup.clear()
                    await subscriber.wakeup.wait()
                    continue
                row = subscriber.queue.popleft()
                if row.seq > cursor:
                    yield row
                    cursor = row.seq
        finally:
            self._leave(subscriber, reader)


async def subscribe(ctx: Context, after: str | None, filter_: Any) -> AsyncGenerator[Any, None]:
    """The caller's workspace's events (rows of the log) that ``filter_`` selects, past the
    cursor ``after`` or from now, as they are committed. Arguments and the caller are checked
    here, before the stream starts."""
    principal = ctx.require(Role.VIEWER)
    seq = decode_seq_cursor(after, "after").value if after is not None else None
    spec = event_filter(filter_)
    if ctx.feed is None:
        raise RuntimeError("no event feed in this context")
    return ctx.feed.stream(
        principal.workspace_id, ctx.credential, spec, seq, ctx.settings.subscription_queue_size
    )


def cursor_of(row: Any) -> str:
    return encode_seq_cursor(row.seq)
