"""One code path for both engines: what differs between SQLite and PostgreSQL lives in db/, so
nothing above it may ask which engine it runs on."""

from __future__ import annotations

import re
from pathlib import Path

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
