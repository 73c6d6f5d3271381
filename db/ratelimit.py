"""Rate limits kept in the database, so every server process shares them: fixed-window
counters (the account flows' attempts) and leaky buckets of query cost (``take``/``give_back``,
written once per lease a process takes, not once per request: resolvers/ratelimit.py)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import RateBucket, RateLimit

_table: Any = RateLimit.__table__  # type: ignore[attr-defined]
_buckets: Any = RateBucket.__table__  # type: ignore[attr-defined]


async def count(
    conn: AsyncConnection, key: str, window: timedelta, now: datetime
) -> tuple[int, int]:
    """Counts one attempt under ``key``: (attempts in the current window, this one included;
    whole seconds until the window resets). One upsert, atomic on both engines."""
    dialect = conn.dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    expired = _table.c.window_start <= now - window
    upsert = insert(_table).values(key=key, window_start=now, count=1)
    stmt = upsert.on_conflict_do_update(
        index_elements=[_table.c.key],
        set_={
            "count": case((expired, 1), else_=_table.c.count + 1),
            "window_start": case((expired, now), else_=_table.c.window_start),
        },
    ).returning(_table.c.count, _table.c.window_start)
    attempts, started = (await conn.execute(stmt)).one()
    return attempts, max(1, int((started + window - now).total_seconds() + 0.999))


async def hit(
    conn: AsyncConnection, key: str, limit: int, window: timedelta, now: datetime
) -> int | None:
    """Counts one attempt under ``key``: None while within ``limit`` per ``window``, else the
    seconds until the window resets."""
    attempts, left = await count(conn, key, window, now)
    return None if attempts <= limit else left


async def undo(conn: AsyncConnection, key: str) -> None:
    """Takes back one attempt counted under ``key``, for one that did not happen after all."""
    stmt = update(_table).where(_table.c.key == key, _table.c.count > 0)
    await conn.execute(stmt.values(count=_table.c.count - 1))


async def _bucket_level(
    conn: AsyncConnection, key: str, maximum: float, rate: float
) -> tuple[float, float]:
    """The bucket's level now (refilled since it was last written) and that now (seconds since
    the epoch), its row locked until the transaction ends (PostgreSQL; SQLite's one writer
    serialises anyway). A new bucket is full. The time is read once the row is locked: a
    process that waited for another's write must not see that write as being in its future
    (its refill would count from a later time than its own clock, and come out as nothing)."""
    dialect = conn.dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    for _ in range(2):
        await conn.execute(
            insert(_buckets)
            .values(key=key, available=maximum, updated_at=time.time())
            .on_conflict_do_nothing(index_elements=[_buckets.c.key])
        )
        row = (
            await conn.execute(
                select(_buckets.c.available, _buckets.c.updated_at)
                .where(_buckets.c.key == key)
                .with_for_update()
            )
        ).one_or_none()
        if row is not None:
            break
        # PostgreSQL: ``prune`` deleted the row (a full bucket) between the two statements;
        # the next INSERT sees that and makes it again. (SQLite's one writer runs them in turn.)
    else:
        raise RuntimeError(f"rate-limit bucket {key!r} vanished twice")
    now = time.time()
    level = min(maximum, row.available + rate * max(0.0, now - row.updated_at))
    return float(level), now


async def take(
    conn: AsyncConnection,
    key: str,
    *,
    ask: float,
    least: float,
    give: float,
    maximum: float,
    rate: float,
) -> tuple[float, float, float]:
    """Gives ``give`` points back to the bucket under ``key`` (a lease's unspent rest), then
    takes up to ``ask`` points from it, but only if it holds at least ``least``: (points taken,
    the level left, when: seconds since the epoch)."""
    level, now = await _bucket_level(conn, key, maximum, rate)
    level = min(maximum, level + give)
    taken = min(ask, level) if level >= least else 0.0
    await conn.execute(
        update(_buckets)
        .where(_buckets.c.key == key)
        .values(available=level - taken, updated_at=now)
    )
    return taken, level - taken, now


async def give_back(conn: AsyncConnection, returns: dict[str, tuple[float, float, float]]) -> None:
    """Gives each bucket its points back: ``returns[key] = (points, maximum, rate)``."""
    for key in sorted(returns):  # one order for every process: no deadlock between two
        points, maximum, rate = returns[key]
        level, now = await _bucket_level(conn, key, maximum, rate)
        await conn.execute(
            update(_buckets)
            .where(_buckets.c.key == key)
            .values(available=min(maximum, level + points), updated_at=now)
        )


async def prune(conn: AsyncConnection, *, full_after: float, keep_prefix: str) -> int:
    """Deletes the buckets not written for ``full_after`` seconds, which have refilled since (a
    bucket without a row is full), except those under ``keep_prefix`` (keys with rates of
    their own, which may refill slower): a row per client address or session ever seen would
    otherwise stay forever. The number deleted."""
    stmt = delete(_buckets).where(
        _buckets.c.updated_at < time.time() - full_after,
        ~_buckets.c.key.startswith(keep_prefix, autoescape=True),
    )
    result = await conn.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)
