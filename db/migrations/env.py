"""Alembic environment: runs on a connection handed over by db.migrate, or opens its own."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import db.models  # noqa: F401  (registers the tables)
from db.engine import Database, no_statement_timeout
from db.models.search import managed_elsewhere
from db.settings import get_settings

config = context.config
target_metadata = SQLModel.metadata

# Key of the PostgreSQL advisory lock that serialises migrations ("LGMIGR" in ASCII).
MIGRATION_LOCK_KEY = 0x4C474D494752


def serialise_migrations(connection: Connection) -> None:
    """Makes instances that start together migrate one at a time.

    On PostgreSQL the whole upgrade is one transaction: a transaction-level advisory lock taken
    first makes every other instance wait, then find the database at head and do nothing. On
    SQLite the writer's BEGIN IMMEDIATE already holds the database's one write lock.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def run_on(connection: Connection) -> None:
    # The FTS5 tables behind `search` on SQLite are the migrations' own (0004), not the models'.
    include_name, include_object = managed_elsewhere(connection.dialect.name)
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        # The whole upgrade in one transaction on SQLite too (its DDL is transactional: the
        # driver leaves transaction control to us). Alembic's default there commits after each
        # migration, which let a second instance take the write lock between two migrations
        # and apply the next one twice ("table ... already exists").
        transactional_ddl=True,
        compare_type=True,
        include_name=include_name,
        include_object=include_object,
    )
    with context.begin_transaction(), no_statement_timeout(connection):
        serialise_migrations(connection)
        context.run_migrations()


async def run_standalone() -> None:
    settings = get_settings()
    database = Database(settings.database_url, settings)
    try:
        async with database.writer.connect() as conn:
            await conn.run_sync(run_on)
            await conn.commit()
    finally:
        await database.dispose()


if context.is_offline_mode():
    raise SystemExit("Offline (SQL script) migrations are not supported.")

connection = config.attributes.get("connection")
if connection is not None:
    run_on(connection)
else:
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    asyncio.run(run_standalone())
