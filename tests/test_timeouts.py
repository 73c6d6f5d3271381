"""DB_STATEMENT_TIMEOUT_MS: a statement running past it is cancelled by the database (PostgreSQL)
or by the engine's progress handler (SQLite); the request gets a clean TIMEOUT error, nothing is
written, and the connection goes back to its pool in working order."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import column, text
from sqlalchemy.engine import Connection

from db import reads
from db.engine import Database, no_statement_timeout
from db.errors import StatementTimeout
from db.repositories import LeadRepository
from db.repositories.auth import ApiKeyRepository
from db.settings import Settings
from server import create_app
from tests.conftest import LiveServer, without_cost
from tests.databases import scratch_database, suite_database_url
from tests.processes import create_owner_key, free_port

TIMEOUT_MS = 200
# Statements that run for seconds unless cancelled.
SLOW = {
    "postgresql": "SELECT pg_sleep(10)",
    "sqlite": "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 30000000)"
    " SELECT count(*) FROM n",
}
# Statements that take about a second (five times the timeout).
SLOWISH = {
    "postgresql": "SELECT pg_sleep(1)",
    "sqlite": "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 2000000)"
    " SELECT count(*) FROM n",
}
MESSAGE = "The database took too long to answer; try a narrower query."


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    """An in-process server with a tiny statement timeout, on a database of its own; and an
    OWNER key for it."""
    with scratch_database(tmp_path_factory.mktemp("timeouts")) as url:
        key = create_owner_key(url)
        settings = Settings(
            database_url=url,
            db_statement_timeout_ms=TIMEOUT_MS,
            graphiql=False,
            _env_file=None,  # type: ignore[call-arg]
        )
        app = create_app(settings)
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        uv = uvicorn.Server(config)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(uv.serve(),), daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not uv.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        try:
            yield LiveServer(f"http://127.0.0.1:{port}", app, loop, settings), key
        finally:
            uv.should_exit = True
            thread.join(timeout=10)
            loop.close()


def post(live: LiveServer, key: str, query: str) -> tuple[dict[str, Any], str, float]:
    """The body (without ``extensions.cost``), the request id and the seconds it took."""
    started = time.monotonic()
    response = httpx.post(
        f"{live.url}/graphql",
        json={"query": query},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = without_cost(response.json())  # the cost is tests/test_rate_limits.py's
    return body, response.headers["x-request-id"], time.monotonic() - started


def checked_out(live: LiveServer) -> list[int]:
    """Connections currently taken from the reader and writer pools."""
    pools = [live.db.engine.pool, live.db.writer.pool]
    return [pool.checkedout() for pool in pools]  # type: ignore[attr-defined]


def slow_statement(live: LiveServer) -> str:
    return SLOW[live.db.dialect]


def test_the_engine_cancels_a_statement_past_the_timeout(
    impatient: tuple[LiveServer, str],
) -> None:
    live, _ = impatient
    slow = slow_statement(live)

    async def run_slow() -> float:
        started = time.monotonic()
        with pytest.raises(StatementTimeout):
            async with live.db.read() as conn:
                await conn.execute(text(slow))
        return time.monotonic() - started

    async def setting() -> object:
        async with live.db.read() as conn:
            return (await conn.execute(text("SHOW statement_timeout"))).scalar()

    assert TIMEOUT_MS / 1000 <= live.run(run_slow()) < 4
    if live.db.dialect == "postgresql":
        assert live.run(setting()) == f"{TIMEOUT_MS}ms"
    assert checked_out(live) == [0, 0]


def test_a_read_past_the_timeout_is_a_clean_timeout_error(
    impatient: tuple[LiveServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    live, key = impatient
    slow = slow_statement(live)

    async def slow_count(self: LeadRepository, conditions: Any) -> int:
        await self.conn.execute(text(slow))
        return 0

    monkeypatch.setattr(LeadRepository, "count", slow_count)
    body, request_id, seconds = post(live, key, "{ leads { totalCount } }")

    assert body == {
        "data": None,
        "errors": [
            {
                "message": MESSAGE,
                "locations": [{"line": 1, "column": 11}],
                "path": ["leads", "totalCount"],
                "extensions": {"code": "TIMEOUT", "requestId": request_id},
            }
        ],
    }
    assert seconds < 4  # cancelled, not waited out
    assert checked_out(live) == [0, 0]

    monkeypatch.undo()
    again, _, _ = post(live, key, "{ leads { totalCount } }")
    assert again == {"data": {"leads": {"totalCount": 0}}}
    assert checked_out(live) == [0, 0]


def test_a_read_the_driver_runs_itself_past_the_timeout_is_a_clean_timeout_error(
    impatient: tuple[LiveServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hot reads skip SQLAlchemy's execution on PostgreSQL (db/reads.py): a timeout there is
    the same TIMEOUT, and the connection is back in the pool, usable."""
    live, key = impatient
    slow = text(slow_statement(live)).columns(column("n"))

    async def slow_count(self: LeadRepository, conditions: Any) -> int:
        return int(await reads.scalar(self.conn, slow))

    monkeypatch.setattr(LeadRepository, "count", slow_count)
    body, request_id, seconds = post(live, key, "{ leads { totalCount } }")

    assert body["errors"] == [
        {
            "message": MESSAGE,
            "locations": [{"line": 1, "column": 11}],
            "path": ["leads", "totalCount"],
            "extensions": {"code": "TIMEOUT", "requestId": request_id},
        }
    ]
    assert seconds < 4
    assert checked_out(live) == [0, 0]
    monkeypatch.undo()
    for _ in range(3):  # on every connection of the pool
        again, _, _ = post(live, key, "{ leads(first: 1) { totalCount edges { cursor } } }")
        assert again == {"data": {"leads": {"totalCount": 0, "edges": []}}}
    assert checked_out(live) == [0, 0]


def test_a_write_past_the_timeout_is_rolled_back_and_frees_the_writer(
    impatient: tuple[LiveServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    live, key = impatient
    slow = slow_statement(live)
    insert = LeadRepository.insert

    async def slow_insert(self: LeadRepository, *args: Any, **kwargs: Any) -> Any:
        row = await insert(self, *args, **kwargs)
        await self.conn.execute(text(slow))
        return row

    monkeypatch.setattr(LeadRepository, "insert", slow_insert)
    create = 'mutation { createLead(input: {email: "%s"}) { lead { email } } }'
    body, request_id, seconds = post(live, key, create % "slow@example.com")

    assert body == {
        "data": None,
        "errors": [
            {
                "message": MESSAGE,
                "locations": [{"line": 1, "column": 12}],
                "path": ["createLead"],
                "extensions": {"code": "TIMEOUT", "requestId": request_id},
            }
        ],
    }
    assert seconds < 4
    assert checked_out(live) == [0, 0]

    # On SQLite the writer pool is one connection: had it leaked, this would wait forever.
    monkeypatch.undo()
    created, _, _ = post(live, key, create % "fast@example.com")
    assert created == {"data": {"createLead": {"lead": {"email": "fast@example.com"}}}}
    emails, _, _ = post(live, key, "{ leads { nodes { email } } }")
    assert emails == {"data": {"leads": {"nodes": [{"email": "fast@example.com"}]}}}
    assert checked_out(live) == [0, 0]


def test_a_timeout_before_execution_is_a_clean_503(
    impatient: tuple[LiveServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The credential is looked up before the document executes; a timeout there is answered
    like one during execution, with HTTP 503 (nothing ran)."""
    live, key = impatient
    slow = slow_statement(live)

    async def slow_lookup(conn: Any, token_hash: str) -> Any:
        await conn.execute(text(slow))

    monkeypatch.setattr(ApiKeyRepository, "by_token_hash", staticmethod(slow_lookup))
    response = httpx.post(
        f"{live.url}/graphql",
        json={"query": "{ leads { totalCount } }"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )

    assert response.status_code == 503
    assert response.json() == {
        "errors": [
            {
                "message": MESSAGE,
                "extensions": {"code": "TIMEOUT", "requestId": response.headers["x-request-id"]},
            }
        ]
    }
    assert checked_out(live) == [0, 0]


def test_migrations_run_without_the_timeout(impatient: tuple[LiveServer, str]) -> None:
    """Migrations lift the limit on their own connection (rebuilding a big table takes a while),
    and the connection has it again afterwards."""
    live, _ = impatient
    slowish = SLOWISH[live.db.dialect]

    def without_limit(conn: Connection) -> object:
        with no_statement_timeout(conn):
            return conn.execute(text(slowish)).scalar()

    async def run() -> None:
        async with live.db.writer.connect() as conn:
            await conn.run_sync(without_limit)
            await conn.commit()
        with pytest.raises(StatementTimeout):
            async with live.db.write() as session:
                await session.execute(text(slowish))

    live.run(run())
    assert checked_out(live) == [0, 0]


def test_pool_and_timeout_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "0")
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "1500")
    monkeypatch.setenv(
        "DATABASE_URL", suite_database_url() or f"sqlite+aiosqlite:///{tmp_path}/p.db"
    )
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    db = Database(settings.database_url, settings)  # engines connect lazily: nothing opens here

    assert (settings.db_pool_size, settings.db_max_overflow, settings.db_statement_timeout_ms) == (
        7,
        0,
        1500,
    )
    assert db.engine.pool.size() == 7  # type: ignore[attr-defined]
    asyncio.run(db.dispose())
