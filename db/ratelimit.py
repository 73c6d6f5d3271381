"""Fixed-window rate limits kept in the database, so every server process shares them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import RateLimit

_table: Any = RateLimit.__table__  # type: ignore[attr-defined]


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
