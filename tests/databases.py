"""Which engine the suite runs on, and throwaway databases of that engine.

The suite runs on SQLite unless ``TEST_DATABASE_URL`` names another database (``make
test-postgres`` points it at a fresh PostgreSQL database of its own). Tests that need a database
beyond the shared server's (migrations, several server processes) take a scratch one here: a
file on SQLite, a new database on the same PostgreSQL server, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
# Databases that exist on any PostgreSQL server, for CREATE/DROP DATABASE to run from.
_MAINTENANCE_DATABASES = ("postgres", "template1")


def suite_database_url() -> str | None:
    """The database the suite's server uses, when not a fresh SQLite file."""
    return os.environ.get("TEST_DATABASE_URL") or None


def suite_engine() -> str:
    """``sqlite`` or ``postgresql``: the engine this run of the suite is about."""
    url = suite_database_url()
    return make_url(url).get_backend_name() if url else "sqlite"


async def _admin_connection(url: URL, *, own: bool = True) -> asyncpg.Connection:
    """A connection to the server of ``url`` that can create and drop databases: to the
    database of ``url`` itself (unless not ``own``) or else to a maintenance database."""
    candidates = [url.database if own else None, *_MAINTENANCE_DATABASES]
    last: Exception | None = None
    for database in dict.fromkeys(d for d in candidates if d):
        try:
            return await asyncpg.connect(
                host=url.host or "127.0.0.1",
                port=url.port or 5432,
                user=url.username,
                password=url.password,
                database=database,
                timeout=10,
            )
        except asyncpg.InvalidCatalogNameError as exc:  # that database does not exist
            last = exc
    assert last is not None
    raise last


async def create_database(url: str, name: str) -> str:
    """Creates the empty database ``name`` on the server of ``url``; returns its URL."""
    parsed = make_url(url)
    conn = await _admin_connection(parsed)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return parsed.set(database=name).render_as_string(hide_password=False)


async def drop_database(url: str, *, with_scratch: bool = False) -> list[str]:
    """Drops the database of ``url`` (and, ``with_scratch``, the scratch databases named after
    it that a killed run may have left), closing whatever connections they still have."""
    parsed = make_url(url)
    name = parsed.database or ""
    conn = await _admin_connection(parsed, own=False)
    try:
        names = [name]
        if with_scratch:
            rows = await conn.fetch(
                "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", f"{name}_"
            )
            names += [row["datname"] for row in rows]
        for each in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{each}" WITH (FORCE)')
        return names
    finally:
        await conn.close()


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@contextmanager
def scratch_database(directory: Path) -> Iterator[str]:
    """A new, empty database of the suite's engine, dropped afterwards (SQLite: a file in
    ``directory``)."""
    base = suite_database_url()
    if suite_engine() != "postgresql" or base is None:
        yield f"sqlite+aiosqlite:///{directory / (unique_name('scratch') + '.db')}"
        return
    # Named after the suite's database, so that a leftover is easy to trace to its run.
    prefix = (make_url(base).database or "leadgraph")[:40]
    url = asyncio.run(create_database(base, unique_name(prefix)))
    try:
        yield url
    finally:
        asyncio.run(drop_database(url))


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    """The rows of one statement, run on its own connection (to look at a database that a
    server process or the command line wrote)."""

    async def run() -> list[tuple[object, ...]]:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                return [tuple(row) for row in await conn.execute(text(sql))]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def execute(url: str, sql: str) -> None:
    """Runs one statement and commits it, on its own connection."""

    async def run() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    asyncio.run(run())


def table_names(url: str) -> set[str]:
    """The tables the database of ``url`` holds."""

    async def run() -> set[str]:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(run())
