"""Applies the Alembic migrations on the server's own engine, from async code."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from db.engine import Database

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config(str(ALEMBIC_INI))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade(database: Database, revision: str = "head") -> None:
    """Brings the database to ``revision``; a no-op when it is there already."""
    async with database.writer.connect() as conn:
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))
        await conn.commit()


async def downgrade(database: Database, revision: str) -> None:
    async with database.writer.connect() as conn:
        await conn.run_sync(lambda sync: command.downgrade(alembic_config(sync), revision))
        await conn.commit()
