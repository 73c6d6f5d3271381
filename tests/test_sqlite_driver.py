"""db/sqlite_driver.py: a statement is one hand-off to aiosqlite's thread (a short read none),
COMMIT and ROLLBACK are queued, and none of that changes what a unit of work means. SQLite only,
on a file of its own (whichever engine the suite runs on)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, literal_column, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from db import reads, sqlite_driver
from db.engine import Database
from db.settings import Settings

T = TypeVar("T")

SCHEMA = (
    "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
    # Checked at COMMIT: the way to make a COMMIT fail on purpose.
    "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER "
    "REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
    "INSERT INTO parent (id) VALUES (1)",
)


def on_file(tmp_path: Path, work: Callable[[Database], Awaitable[T]]) -> T:
    url = f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}"

    async def run() -> T:
        db = Database(url, Settings(database_url=url, _env_file=None))  # type: ignore[call-arg]
        try:
            async with db.write() as conn:
                for statement in SCHEMA:
                    await conn.execute(text(statement))
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


@asynccontextmanager
async def hand_offs(db: Database) -> AsyncIterator[list[str]]:
    """What the block queues on the writer's and the readers' threads, by function name."""
    seen: list[str] = []
    spied: list[tuple[Any, Any]] = []

    class Spy:
        def __init__(self, queue: Any) -> None:
            self.queue = queue

        def put_nowait(self, item: Any) -> None:
            seen.append(getattr(item[1], "func", item[1]).__name__)
            self.queue.put_nowait(item)

    for engine in (db.writer, db.engine):  # one connection each while nothing runs at once
        async with engine.connect() as conn:
            dbapi = (await conn.get_raw_connection()).dbapi_connection
            assert isinstance(dbapi, sqlite_driver.Connection)
            aio = dbapi._connection
            spied.append((aio, aio._tx))
            aio._tx = Spy(aio._tx)  # the thread keeps reading the queue itself
    try:
        yield seen
    finally:
        for aio, queue in spied:
            aio._tx = queue


def test_a_write_runs_on_the_event_loop_and_a_read_is_one_hand_off(tmp_path: Path) -> None:
    async def work(db: Database) -> tuple[list[str], list[str], int]:
        async with hand_offs(db) as writes, db.write() as conn:
            await conn.execute(text("INSERT INTO child (parent_id) VALUES (1)"))
        async with hand_offs(db) as reads, db.read() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM child"))).scalar_one()
        return writes, reads, count

    writes, reads, count = on_file(tmp_path, work)
    # The writer's BEGIN IMMEDIATE, INSERT and COMMIT: on the event loop's thread, no hand-off.
    assert writes == []
    assert count == 1
    # A read SQLAlchemy runs: one hand-off; its ROLLBACK is queued, nobody waits for it.
    assert reads == ["run_statement", "_run_rollback"]


def test_a_begin_that_meets_another_writer_waits_on_the_thread_not_the_event_loop(
    tmp_path: Path,
) -> None:
    """Another connection holds the write lock: the writer's BEGIN IMMEDIATE, tried on the
    event loop without waiting, is handed to its thread, which waits (busy timeout) while the
    event loop goes on; once the lock is free the write happens."""

    async def work(db: Database) -> tuple[list[str], int, int]:
        other = sqlite3.connect(tmp_path / "driver.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        loop = asyncio.get_running_loop()
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        release = loop.call_later(0.3, other.commit)
        try:
            async with hand_offs(db) as calls, db.write() as conn:
                await conn.execute(text("INSERT INTO child (parent_id) VALUES (1)"))
        finally:
            release.cancel()
            ticker.cancel()
            other.close()
        async with db.read() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM child"))).scalar_one()
        return calls, ticks, count

    calls, ticks, count = on_file(tmp_path, work)
    assert calls[0] == "run_statement"  # BEGIN and the INSERT, on the thread
    assert ticks >= 10  # the event loop ran while the thread waited for the lock
    assert count == 1


def test_the_writer_checkpoints_on_its_thread_every_so_many_commits(tmp_path: Path) -> None:
    """SQLite's automatic checkpoint (a COMMIT copying the WAL into the database file, with an
    fsync) is off on the writer, whose COMMITs run on the event loop: a checkpoint is queued on
    its thread every CHECKPOINT_EVERY commits instead, and the WAL stays bounded."""

    wal = tmp_path / "driver.db-wal"

    async def work(db: Database) -> tuple[list[str], int, int]:
        async with hand_offs(db) as calls:
            for _ in range(sqlite_driver.CHECKPOINT_EVERY * 3):
                async with db.write() as conn:
                    await conn.execute(text("INSERT INTO child (parent_id) VALUES (1)"))
        async with db.read() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM child"))).scalar_one()
        return calls, count, wal.stat().st_size

    calls, count, wal_bytes = on_file(tmp_path, work)
    assert count == sqlite_driver.CHECKPOINT_EVERY * 3
    assert calls.count("_run_checkpoint") == 3
    # Between checkpoints, the commits that found the thread busy with one were handed off.
    assert set(calls) <= {"_run_checkpoint", "run_statement", "_run_commit"}
    # A checkpoint lets the WAL be written from its start again: it holds about the commits
    # since the last one (a page or two each, here), not all of them.
    assert wal_bytes < sqlite_driver.CHECKPOINT_EVERY * 2 * 2 * 4096


def test_a_read_the_driver_runs_itself_is_one_hand_off_and_no_rollback(tmp_path: Path) -> None:
    """db/reads.py on SQLite: the statement alone, in one hand-off; no transaction was
    opened, so returning the connection to its pool costs none."""

    async def work(db: Database) -> tuple[list[str], list[Any]]:
        async with hand_offs(db) as calls, db.read() as conn:
            rows = await reads.all_rows(conn, select(func.count()).select_from(text("child")))
        return calls, [tuple(r) for r in rows]

    calls, rows = on_file(tmp_path, work)
    assert calls == ["run_statement"]
    assert rows == [(0,)]


def test_a_short_read_runs_on_the_event_loop_and_sees_the_latest_commit(tmp_path: Path) -> None:
    """A statement marked short (``Reusable(inline=True)``: the API key lookup, unfiltered
    pages) runs on a read-only connection of the event loop's thread: no hand-off at all, and
    it sees what the writer committed just before, as the pool's connections do."""
    count = reads.Reusable(select(func.count()).select_from(text("child")), inline=True)

    async def work(db: Database) -> tuple[list[str], list[int]]:
        seen = []
        async with hand_offs(db) as calls:
            for _ in range(3):
                async with db.write() as conn:
                    await conn.execute(text("INSERT INTO child (parent_id) VALUES (1)"))
                async with db.read() as conn:
                    seen.append((await reads.all_rows(conn, count))[0][0])
        return calls, seen

    calls, seen = on_file(tmp_path, work)
    assert seen == [1, 2, 3]
    assert calls == []  # neither the writes nor the reads made a hand-off


def test_a_short_read_that_runs_long_is_stopped_and_run_on_the_thread(tmp_path: Path) -> None:
    """Past its budget SQLite interrupts an inline statement (the connection is read-only:
    nothing to undo) and it runs again the ordinary way, answering the same."""
    long = reads.Reusable(
        select(
            literal_column(
                "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                "WHERE i < 300000) SELECT sum(i) FROM n)"
            ).label("total")
        ),
        inline=True,
    )

    async def work(db: Database) -> tuple[list[str], Any]:
        assert db.inline is not None
        db.inline.budget = 0.0001
        async with hand_offs(db) as calls, db.read() as conn:
            rows = await reads.all_rows(conn, long)
        return calls, rows[0][0]

    calls, total = on_file(tmp_path, work)
    assert total == 300000 * 300001 // 2
    assert calls == ["run_statement"]


def test_an_adaptive_read_that_ran_long_goes_the_ordinary_way_for_a_while(tmp_path: Path) -> None:
    """A filtered page (``Reusable(adaptive=True)``) tries the event loop's thread; once one
    run outlasts the budget, the next ``ADAPTIVE_BACKOFF`` runs go straight to the thread (no
    wasted budget on each), then it tries the loop's thread again."""
    total = (
        "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
        "WHERE i < 300000) SELECT sum(i) FROM n)"
    )
    long = reads.Reusable(select(literal_column(total).label("total")), adaptive=True)
    runs = reads.ADAPTIVE_BACKOFF + 1

    async def work(db: Database) -> tuple[list[str], list[str], list[str], set[Any]]:
        assert db.inline is not None
        db.inline.budget = 0.0001
        answers = set()
        async with hand_offs(db) as first, db.read() as conn:
            answers.add((await reads.all_rows(conn, long))[0][0])
        db.inline.budget = 10.0  # would now fit, but the statement does not try yet
        async with hand_offs(db) as backing_off, db.read() as conn:
            for _ in range(runs - 1):
                answers.add((await reads.all_rows(conn, long))[0][0])
        async with hand_offs(db) as again, db.read() as conn:
            answers.add((await reads.all_rows(conn, long))[0][0])
        return first, backing_off, again, answers

    first, backing_off, again, answers = on_file(tmp_path, work)
    assert answers == {300000 * 300001 // 2}
    assert first == ["run_statement"]  # tried inline, interrupted, run on the thread
    assert backing_off == ["run_statement"] * reads.ADAPTIVE_BACKOFF
    assert again == []  # tries the loop's thread again, and fits


@pytest.mark.parametrize(
    ("url", "inline"),
    [
        ("sqlite+aiosqlite://", False),
        ("sqlite+aiosqlite:///:memory:", False),
        ("sqlite+aiosqlite:///file:shared?mode=memory&cache=shared&uri=true", False),
        ("sqlite+aiosqlite:///leadgraph.db", True),
    ],
)
def test_only_a_database_file_has_an_inline_reader(url: str, inline: bool) -> None:
    """Another connection to an in-memory database would open another, empty, database."""
    made = make_url(url)
    reader = sqlite_driver.InlineReader.for_url(made, made.get_dialect()(), [], 0.002)
    assert (reader is not None) == inline


def test_a_write_is_committed_and_visible_when_the_block_returns(tmp_path: Path) -> None:
    async def work(db: Database) -> list[int]:
        counts = []
        for _ in range(3):
            async with db.write() as conn:
                await conn.execute(text("INSERT INTO child (parent_id) VALUES (1)"))
            async with db.read() as conn:
                counts.append((await conn.execute(text("SELECT count(*) FROM child"))).scalar())
        return counts

    assert on_file(tmp_path, work) == [1, 2, 3]


def test_a_failed_commit_is_raised_and_leaves_nothing_behind(tmp_path: Path) -> None:
    async def work(db: Database) -> tuple[int, bool]:
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):
            async with db.write() as conn:
                await conn.execute(text("INSERT INTO child (parent_id) VALUES (1)"))
                await conn.execute(text("INSERT INTO child (parent_id) VALUES (99)"))
        # The one writer connection is usable at once, with no transaction left open on it.
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO child (parent_id) VALUES (1)"))
            dbapi = (await conn.get_raw_connection()).dbapi_connection
        async with db.read() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM child"))).scalar_one()
        await asyncio.sleep(0.05)  # the queued COMMIT has landed by now
        return count, dbapi._connection._conn.in_transaction

    assert on_file(tmp_path, work) == (1, False)


def test_a_unit_of_work_that_fails_is_rolled_back_before_the_next_one(tmp_path: Path) -> None:
    async def work(db: Database) -> list[int]:
        with pytest.raises(RuntimeError):
            async with db.write() as conn:
                await conn.execute(text("INSERT INTO child (parent_id) VALUES (1)"))
                raise RuntimeError("changed my mind")
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO child (id, parent_id) VALUES (7, 1)"))
        async with db.read() as conn:
            return list((await conn.execute(text("SELECT id FROM child"))).scalars())

    assert on_file(tmp_path, work) == [7]


def test_concurrent_writes_apply_one_after_the_other(tmp_path: Path) -> None:
    async def work(db: Database) -> tuple[int, list[int]]:
        async def add(n: int) -> None:
            async with db.write() as conn:
                seen = (await conn.execute(text("SELECT count(*) FROM child"))).scalar_one()
                # Each unit of work sees every earlier one: the read and the insert are atomic.
                await conn.execute(
                    text("INSERT INTO child (id, parent_id) VALUES (:id, 1)"), {"id": seen + 1}
                )

        await asyncio.gather(*(add(n) for n in range(50)))
        async with db.read() as conn:
            ids = list((await conn.execute(text("SELECT id FROM child ORDER BY id"))).scalars())
        return len(ids), ids

    count, ids = on_file(tmp_path, work)
    assert (count, ids) == (50, list(range(1, 51)))
