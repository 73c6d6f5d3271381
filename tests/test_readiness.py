"""/readyz follows the database: a server whose PostgreSQL goes away reports 503 (and stays
alive), and reports ready again by itself once the database is back, without a restart.

The database "goes away" behind a TCP forwarder on loopback that the test stops and starts;
the machine's PostgreSQL itself keeps running."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import without_cost
from tests.databases import scratch_database
from tests.processes import ServerProcess, create_owner_key, free_port

pytestmark = pytest.mark.postgresql


class TcpProxy:
    """Forwards a loopback port to ``host:port`` while started; stopping it closes the port
    and cuts every connection, as a database crash or a network partition would."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)  # type: ignore[arg-type]

    def start(self) -> None:
        self._call(self._start())

    def stop(self) -> None:
        self._call(self._stop())

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        tasks, self.tasks = set(self.tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pipe(source, sink))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.transport.abort()
            self.writers.discard(sink)


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    with scratch_database(tmp_path) as url:
        yield url


@pytest.fixture
def proxy(database_url: str) -> Iterator[TcpProxy]:
    url = make_url(database_url)
    forwarder = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    forwarder.start()
    yield forwarder
    forwarder.close()


def test_readyz_fails_while_the_database_is_down_and_recovers_by_itself(
    database_url: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    key = create_owner_key(database_url)
    through_proxy = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    server = ServerProcess(
        through_proxy.render_as_string(hide_password=False),
        tmp_path / "server.log",
        DB_POOL_SIZE="2",
    ).start()
    auth = {"Authorization": f"Bearer {key}"}
    count = {"query": "{ leads { totalCount } }"}
    try:
        server.wait_for_readyz(200, timeout=60)
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert without_cost(http.post("/graphql", json=count, headers=auth).json()) == {
                "data": {"leads": {"totalCount": 0}}
            }

            proxy.stop()
            server.wait_for_readyz(503, timeout=15)
            assert http.get("/readyz").json() == {
                "status": "unavailable",
                "database": "unreachable",
            }
            assert http.get("/healthz").status_code == 200  # alive: no reason to restart it

            proxy.start()
            server.wait_for_readyz(200, timeout=15)
            assert http.get("/readyz").json() == {"status": "ok", "database": "ok"}
            assert without_cost(http.post("/graphql", json=count, headers=auth).json()) == {
                "data": {"leads": {"totalCount": 0}}
            }
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()


def test_connections_the_server_closed_are_replaced_without_failing_a_request(
    database_url: str, tmp_path: Path
) -> None:
    """PostgreSQL ends every connection of the server (a restart, a failover, an admin's
    pg_terminate_backend): the next requests are answered as usual. The pool does not ask the
    server on every checkout (no pre-ping round trip); it sees the connections closed on its
    side and opens new ones."""
    key = create_owner_key(database_url)
    server = ServerProcess(database_url, tmp_path / "server.log", DB_POOL_SIZE="3").start()
    auth = {"Authorization": f"Bearer {key}"}
    create = {
        "query": 'mutation { createLead(input: {email: "a@example.com"}) { lead { email } } }'
    }
    count = {"query": "{ leads { totalCount } }"}
    database = make_url(database_url).database

    def terminate() -> int:
        async def run() -> int:
            url = make_url(database_url).set(drivername="postgresql", database="postgres")
            conn = await asyncpg.connect(url.render_as_string(hide_password=False))
            try:
                rows = await conn.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'leadgraph' AND datname = $1",
                    database,
                )
            finally:
                await conn.close()
            return len(rows)

        return asyncio.run(run())

    try:
        server.wait_for_readyz(200, timeout=60)
        with httpx.Client(base_url=server.url, timeout=10) as http:
            # Several requests at once, so that the pools hold several connections.
            with ThreadPoolExecutor(6) as pool:
                answers = list(
                    pool.map(lambda _: http.post("/graphql", json=count, headers=auth), range(12))
                )
            assert all(
                without_cost(a.json()) == {"data": {"leads": {"totalCount": 0}}} for a in answers
            )
            assert http.post("/graphql", json=create, headers=auth).json()["data"] == {
                "createLead": {"lead": {"email": "a@example.com"}}
            }
            assert terminate() >= 2  # readers and the writer
            time.sleep(0.5)  # the server's event loop reads the connections' end
            for _ in range(5):
                assert without_cost(http.post("/graphql", json=count, headers=auth).json()) == {
                    "data": {"leads": {"totalCount": 1}}
                }
            again = {"query": create["query"].replace("a@", "b@")}
            assert http.post("/graphql", json=again, headers=auth).json()["data"] == {
                "createLead": {"lead": {"email": "b@example.com"}}
            }
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()
