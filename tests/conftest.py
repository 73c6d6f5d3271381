"""A real server on loopback against a real database, shared by the session; tables are emptied
before each test, so every test starts from a clean database built by the migrations."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from sqlalchemy import delete, event, text, update
from sqlmodel import SQLModel

from db.engine import Database
from db.models import DEFAULT_WORKSPACE_ID, Workspace
from db.repositories.auth import ApiKeyRepository
from db.settings import Settings
from db.types import utcnow
from resolvers.security import token_hash
from server import create_app
from tests.databases import suite_engine

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
OWNER_KEY = "lgk_test-suite-owner-key-of-the-default-workspace"
# The suite's server retries a failed webhook for this long (a day by default).
WEBHOOK_RETRY_WINDOW_SECONDS = 2.0
WEBHOOK_TIMEOUT_SECONDS = 3.0


@dataclass
class LiveServer:
    url: str
    app: Any
    loop: asyncio.AbstractEventLoop
    settings: Settings

    @property
    def db(self) -> Database:
        return self.app.state.db

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs a coroutine on the server's event loop (where its engines live)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mailbox:
    """A real SMTP server on loopback; the test server delivers its email here."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self.port = _free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=default_policy)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if m["To"] == address]

    def code_for(self, address: str, timeout: float = 10) -> str:
        """The code in the newest message to ``address`` (waits for it to arrive)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := self.to(address):
                body = found[-1].get_content()
                match = re.search(r"\b(\d{6})\b", body)
                assert match, body
                return match.group(1)
            time.sleep(0.02)
        raise AssertionError(f"no email to {address} within {timeout} s")


@pytest.fixture(scope="session")
def smtp() -> Iterator[Mailbox]:
    mailbox = Mailbox()
    mailbox.controller.start()
    yield mailbox
    mailbox.controller.stop()


@pytest.fixture
def mailbox(smtp: Mailbox) -> Mailbox:
    smtp.clear()
    return smtp


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, smtp: Mailbox) -> Iterator[LiveServer]:
    database_url = os.environ.get("TEST_DATABASE_URL") or (
        f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'leadgraph.db'}"
    )
    settings = Settings(
        database_url=database_url,
        graphiql_assets_dir=ROOT / ".venv" / "graphiql",
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_starttls=False,
        # Webhooks go to receivers on 127.0.0.1, and retry within seconds, not a day.
        webhook_allow_private_urls=True,
        webhook_poll_interval_seconds=0.05,
        webhook_retry_base_seconds=0.05,
        webhook_retry_max_delay_seconds=0.2,
        webhook_retry_window_seconds=WEBHOOK_RETRY_WINDOW_SECONDS,
        webhook_timeout_seconds=WEBHOOK_TIMEOUT_SECONDS,
        webhook_lease_seconds=WEBHOOK_TIMEOUT_SECONDS + 5,
        # Reminder emails are tested with server processes (tests/test_follow_up_reminders.py).
        follow_up_reminders=False,
        # The suite's key is not rate limited in practice; tests/test_rate_limits.py makes keys
        # with small buckets of their own.
        rate_limit_maximum=10_000_000,
        # The suite's documents predate cost limits; tests/test_rate_limits.py goes over this.
        max_query_cost=1_000_000,
        rate_limit_restore_rate=10_000_000,
        # Retention runs are asked for by the tests that need them (tests/test_retention.py).
        retention_schedule=False,
        _env_file=None,  # type: ignore[call-arg]
    )
    app = create_app(settings)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(uv.serve(),), daemon=True)
    thread.start()
    for _ in range(300):
        if uv.started:
            break
        if not thread.is_alive():
            loop.close()
            raise RuntimeError("the test server failed to start")
        threading.Event().wait(0.05)
    else:
        raise RuntimeError("the test server did not start in 15 s")
    yield LiveServer(url=f"http://127.0.0.1:{port}", app=app, loop=loop, settings=settings)
    uv.should_exit = True
    thread.join(timeout=10)
    loop.close()


@pytest.fixture(autouse=True)
def clean_db(request: pytest.FixtureRequest) -> None:
    if "server" not in request.fixturenames:
        return
    live: LiveServer = request.getfixturevalue("server")

    async def wipe() -> None:
        # Every table is emptied but the default workspace; ids restart at 1 as on a fresh
        # database (SQLite reuses max(rowid) + 1 by itself).
        async with live.db.write() as session:
            tables = [t for t in SQLModel.metadata.sorted_tables if t.name != "workspaces"]
            if live.db.is_sqlite:
                # The tallies last: deleting the leads takes them out of the tallies (their
                # triggers, migration 0015), which would otherwise be left below zero.
                tallies = {"lead_tallies", "lead_day_tallies"}
                ordered = [t for t in reversed(tables) if t.name not in tallies]
                for table in ordered + [t for t in tables if t.name in tallies]:
                    await session.execute(delete(table))
            else:
                names = ", ".join(t.name for t in tables)
                await session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            await session.execute(delete(Workspace).where(Workspace.id != DEFAULT_WORKSPACE_ID))
            await session.execute(
                update(Workspace)
                .where(Workspace.id == DEFAULT_WORKSPACE_ID)
                .values(
                    name="Default",
                    retention_leads_days=None,
                    retention_clients_days=None,
                    retention_events_days=None,
                    retention_action="DELETE",
                    retention_due_at=None,
                )
            )
            # The suite's own credential: an OWNER key of the default workspace, marked as just
            # used so that no request of a test spends a statement on recording its use.
            await ApiKeyRepository(session, DEFAULT_WORKSPACE_ID).insert(
                name="tests",
                prefix=OWNER_KEY[:12],
                token_hash=token_hash(OWNER_KEY),
                role="OWNER",
                created_at=utcnow(),
                last_used_at=utcnow(),
            )

    async def wipe_with_sender_paused() -> None:
        # The webhook sender works in the background: no round of it may meet the wipe (its
        # statements and PostgreSQL's TRUNCATE could lock the same tables in opposite orders).
        async with live.app.state.sender.paused(), live.app.state.importer.paused():
            await wipe()

    live.run(wipe_with_sender_paused())
    if live.app.state.limiter is not None:
        live.app.state.limiter.forget()  # the buckets' rows went with the wipe
    http: httpx.Client = request.getfixturevalue("http")
    http.headers["Authorization"] = f"Bearer {OWNER_KEY}"


@pytest.fixture(scope="session")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


COST_KEYS = {"requestedQueryCost", "actualQueryCost", "throttleStatus"}
THROTTLE_KEYS = {"maximumAvailable", "currentlyAvailable", "restoreRate"}


def check_cost(cost: Any) -> None:
    """``extensions.cost`` has the contract's shape (tests/contract/privacy.graphql, Shopify's):
    whole numbers, the actual cost null only when the operation did not run."""
    assert isinstance(cost, dict) and set(cost) <= COST_KEYS, cost
    assert {"requestedQueryCost", "actualQueryCost"} <= set(cost), cost
    assert isinstance(cost["requestedQueryCost"], int) and cost["requestedQueryCost"] >= 0, cost
    actual = cost["actualQueryCost"]
    assert actual is None or (isinstance(actual, int) and actual >= 0), cost
    if "throttleStatus" in cost:
        throttle = cost["throttleStatus"]
        assert set(throttle) == THROTTLE_KEYS, cost
        assert all(isinstance(v, int) and v >= 0 for v in throttle.values()), cost
        assert throttle["currentlyAvailable"] <= throttle["maximumAvailable"], cost


def without_cost(body: dict[str, Any]) -> dict[str, Any]:
    """The response body without its top-level ``extensions.cost`` (checked for the contract's
    shape first; tests/test_rate_limits.py tests its values), and without ``extensions`` if
    nothing else was in it: for tests that compare whole bodies."""
    extensions = body.get("extensions")
    if not isinstance(extensions, dict) or "cost" not in extensions:
        return body
    check_cost(extensions["cost"])
    rest = {k: v for k, v in extensions.items() if k != "cost"}
    out = {k: v for k, v in body.items() if k != "extensions"}
    return out | {"extensions": rest} if rest else out


class GraphQLClient:
    """Posts GraphQL documents over HTTP and returns the decoded body. ``token`` is sent as the
    bearer credential (the suite's OWNER key by default; None sends no credential). The body's
    ``extensions.cost`` is checked and left out (``without_cost``) unless ``cost=True``."""

    def __init__(self, http: httpx.Client, token: str | None = OWNER_KEY) -> None:
        self.http = http
        self.token = token

    def as_(self, token: str | None) -> GraphQLClient:
        """The same client with another credential."""
        return GraphQLClient(self.http, token)

    def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        status: int = 200,
        cost: bool = False,
    ) -> dict[str, Any]:
        # An empty header overrides the shared client's default credential.
        headers = {"Authorization": f"Bearer {self.token}" if self.token else ""}
        response = self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        return body if cost else without_cost(body)

    def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The data of a request that must succeed without errors."""
        body = self(query, variables)
        assert "errors" not in body, body["errors"]
        result: dict[str, Any] = body["data"]
        return result


@pytest.fixture
def gql(http: httpx.Client) -> GraphQLClient:
    return GraphQLClient(http)


@pytest.fixture
def anon(http: httpx.Client) -> GraphQLClient:
    """A client that sends no credentials."""
    return GraphQLClient(http, None)


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def count_queries(server: LiveServer) -> Callable[[], Any]:
    """Counts the SQL statements the server runs inside a ``with count_queries() as c:`` block."""
    from contextlib import contextmanager

    @contextmanager
    def counting() -> Iterator[StatementCounter]:
        counter = StatementCounter()

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA")):
                counter.statements.append(statement)

        engines = [e.sync_engine for e in server.db.engines]
        for engine in engines:
            event.listen(engine, "before_cursor_execute", record)
        try:
            yield counter
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", record)

    return counting


def pytest_report_header(config: pytest.Config) -> str:
    return f"database engine: {suite_engine()} (TEST_DATABASE_URL chooses; make test-postgres)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked with an engine run only in that engine's run of the suite and are deselected,
    visibly, in the other: ``postgresql`` ones need a database server (one the test can take
    away), ``sqlite`` ones are about SQLite itself (its query planner)."""
    other = "sqlite" if suite_engine() == "postgresql" else "postgresql"
    deselected = [item for item in items if item.get_closest_marker(other)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]
