"""Trusted documents: global (not per workspace), looked up by hash or by a client's alias."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import TrustedDocument

documents: Any = TrustedDocument.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class NewDocument:
    hash: str
    body: str
    alias: str | None
    source: str
    trusted: bool


async def find(
    conn: AsyncConnection, *, hash: str | None = None, alias: str | None = None
) -> Row[Any] | None:
    """The document with this hex SHA-256, or with this alias."""
    condition = documents.c.hash == hash if hash is not None else documents.c.alias == alias
    return (await conn.execute(select(documents).where(condition))).first()


async def clashes(conn: AsyncConnection, new: Sequence[NewDocument]) -> list[Row[Any]]:
    """Stored documents holding one of ``new``'s aliases under another hash."""
    aliased = [(d.alias, d.hash) for d in new if d.alias is not None]
    if not aliased:
        return []
    rows = await conn.execute(
        select(documents).where(documents.c.alias.in_([alias for alias, _ in aliased]))
    )
    wanted = dict(aliased)
    return [row for row in rows if wanted.get(row.alias) != row.hash]


async def register(
    conn: AsyncConnection, new: Iterable[NewDocument], schema_key: str, now: datetime
) -> int:
    """Stores ``new``; a document already stored keeps its row, becomes trusted if a new
    registration is, gains the alias if it had none, and is marked valid under ``schema_key``.
    The number of documents that were not stored before."""
    new = list(new)
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stored = set(
        (
            await conn.execute(
                select(documents.c.hash).where(documents.c.hash.in_([d.hash for d in new]))
            )
        ).scalars()
    )
    for doc in new:
        values = {
            "hash": doc.hash,
            "alias": doc.alias,
            "body": doc.body,
            "source": doc.source,
            "trusted": doc.trusted,
            "schema_key": schema_key,
            "created_at": now,
        }
        stmt = insert(documents).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[documents.c.hash],
            set_={
                "trusted": or_(documents.c.trusted, stmt.excluded.trusted),
                "alias": func.coalesce(documents.c.alias, stmt.excluded.alias),
                "schema_key": stmt.excluded.schema_key,
            },
        )
        await conn.execute(stmt)
    return len({d.hash for d in new} - stored)


async def mark_valid(conn: AsyncConnection, hash: str, schema_key: str) -> None:
    await conn.execute(
        update(documents).where(documents.c.hash == hash).values(schema_key=schema_key)
    )


async def all_documents(conn: AsyncConnection) -> list[Row[Any]]:
    return list(
        await conn.execute(select(documents).order_by(documents.c.created_at, documents.c.hash))
    )


async def untrusted_count(conn: AsyncConnection) -> int:
    """How many documents are stored untrusted (APQ's, from callers below ADMIN)."""
    stmt = select(func.count()).select_from(documents).where(documents.c.trusted.is_(False))
    return int((await conn.execute(stmt)).scalar_one())
