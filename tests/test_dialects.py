"""One code path for both engines: what differs between SQLite and PostgreSQL lives in db/, so
nothing above it may ask which engine it runs on."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from db import migrate
from db.engine import Database
from db.repositories import LeadRepository
from db.settings import Settings
from tests.databases import scratch_database

ROOT = Path(__file__).resolve().parent.parent
ENGINE_WORDS = re.compile(r"dialect|is_sqlite|sqlite|postgres|asyncpg|aiosqlite", re.IGNORECASE)


def test_resolvers_schema_and_server_never_branch_on_the_engine() -> None:
    sources = [*ROOT.glob("resolvers/*.py"), *ROOT.glob("schema/*.py"), ROOT / "server.py"]
    mentions = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if ENGINE_WORDS.search(line)
    ]
    assert len(sources) > 10
    assert mentions == []


@pytest.mark.postgresql
def test_one_process_reading_both_engines_reads_each_as_itself(tmp_path: Path) -> None:
    """db/reads.py keeps each statement shape compiled; SQLAlchemy's cache key does not name
    the dialect, so a shape compiled for PostgreSQL must not serve SQLite (whose datetimes are
    text that only SQLite's processors turn back into datetimes), nor the other way round."""

    async def read_both(pg_url: str, sqlite_url: str) -> list[tuple[str, Any]]:
        seen = []
        for n, url in enumerate((pg_url, sqlite_url, pg_url)):
            db = Database(url, Settings(_env_file=None))  # type: ignore[call-arg]
            try:
                await migrate.upgrade(db)
                lead = {"email": f"a{n}@example.com", "meta": {}, "status": "NEW", "score": 0}
                async with db.write() as conn:
                    await LeadRepository(conn, 1).insert(lead)
                async with db.read() as conn:
                    rows = await LeadRepository(conn, 1).page(None, "created_at", True, None, 5)
                seen += [(db.dialect, row.created_at) for row in rows]
            finally:
                await db.dispose()
        return seen

    with scratch_database(tmp_path) as pg_url:
        sqlite_url = f"sqlite+aiosqlite:///{tmp_path / 'both.db'}"
        seen = asyncio.run(read_both(pg_url, sqlite_url))
    assert [dialect for dialect, _ in seen] == ["postgresql", "sqlite", "postgresql", "postgresql"]
    assert all(isinstance(at, datetime) and at.tzinfo is UTC for _, at in seen), seen
