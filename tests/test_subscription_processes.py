"""Subscriptions across real server processes on one database (the suite's engine): a write on
one process reaches a subscriber on another within a second (PostgreSQL: LISTEN/NOTIFY; SQLite:
each process polls PRAGMA data_version), subscribers on both see the one log while both write,
and on PostgreSQL a dropped LISTEN connection is replaced without losing an event."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from db.changes import LISTENER_APPLICATION_NAME
from tests.databases import query, scratch_database
from tests.processes import ServerProcess, create_owner_key
from tests.subscribers import Subscription, cursor_at, subscribed

CREATE_LEAD = """
mutation ($input: CreateLeadInput!) {
  createLead(input: $input) { lead { id } userErrors { code } }
}
"""
LAST_EVENT = "{ events(last: 1) { edges { cursor } } }"
EVENTS = """
query ($after: String) {
  events(first: 100, after: $after) {
    edges { cursor node { id type recordId changes { field from to } } }
    pageInfo { hasNextPage }
  }
}
"""


@dataclass
class Pair:
    database_url: str
    servers: list[ServerProcess]
    key: str

    def client(self, n: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.servers[n].url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30,
        )


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    directory = tmp_path_factory.mktemp("subscription_processes")
    with scratch_database(directory) as url:
        key = create_owner_key(url)  # migrates the database first
        servers = [ServerProcess(url, directory / f"process{n}.log") for n in (1, 2)]
        try:
            for server in servers:
                server.start()
            for server in servers:
                server.wait_for_readyz(200, timeout=60)
            yield Pair(url, servers, key)
        finally:
            for server in servers:
                server.stop()


@pytest.fixture(autouse=True)
def no_errors_logged(pair: Pair) -> Iterator[None]:
    before = [len(s.log()) for s in pair.servers]
    yield
    for server, start in zip(pair.servers, before, strict=True):
        added = server.log()[start:]
        assert "ERROR" not in added and "Traceback" not in added, added


async def post(client: httpx.AsyncClient, document: str, variables: dict[str, Any]) -> Any:
    body = (await client.post("/graphql", json={"query": document, "variables": variables})).json()
    assert "errors" not in body, body["errors"]
    return body["data"]


async def create_lead(client: httpx.AsyncClient, email: str) -> str:
    created = (await post(client, CREATE_LEAD, {"input": {"email": email}}))["createLead"]
    assert created["userErrors"] == []
    lead_id: str = created["lead"]["id"]
    return lead_id


async def head(client: httpx.AsyncClient) -> str:
    """The cursor of the log's last event (before the first one's, when there is none)."""
    edges = (await post(client, LAST_EVENT, {}))["events"]["edges"]
    return str(edges[0]["cursor"]) if edges else cursor_at(0)


async def log_after(client: httpx.AsyncClient, after: str) -> list[dict[str, Any]]:
    edges: list[dict[str, Any]] = []
    cursor: str | None = after
    while True:
        page = (await post(client, EVENTS, {"after": cursor}))["events"]
        edges += page["edges"]
        if not page["pageInfo"]["hasNextPage"]:
            return edges
        cursor = edges[-1]["cursor"]


def test_a_write_on_one_process_reaches_a_subscriber_on_another_within_a_second(
    pair: Pair,
) -> None:
    async def scenario() -> list[float]:
        latencies = []
        async with pair.client(0) as first, pair.client(1) as second:
            start = await head(first)
            async with subscribed(pair.servers[0].url, pair.key, after=start) as sub:
                for n in range(10):
                    # At random moments, so that some writes fall just after a poll (SQLite).
                    await asyncio.sleep(random.uniform(0, 0.3))
                    sent = time.monotonic()
                    lead_id = await create_lead(second, f"far{n}@example.com")
                    edge = await sub.next(timeout=5)
                    # From before the request: the commit happened within it.
                    latencies.append(time.monotonic() - sent)
                    assert edge["node"]["recordId"] == lead_id
        return latencies

    latencies = asyncio.run(scenario())
    assert max(latencies) < 1.0, latencies


def test_subscribers_on_both_processes_see_the_one_log_while_both_write(pair: Pair) -> None:
    writes = 60

    async def scenario() -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
        async with pair.client(0) as first, pair.client(1) as second:
            start = await head(first)

            async def writer(client: httpx.AsyncClient, label: str) -> None:
                for n in range(writes // 4):
                    await create_lead(client, f"{label}{n}@example.com")

            async def follow(sub: Subscription) -> list[dict[str, Any]]:
                return await sub.take(writes, timeout=60)

            async with (
                subscribed(pair.servers[0].url, pair.key, after=start) as on_first,
                subscribed(pair.servers[1].url, pair.key, after=start) as on_second,
            ):
                following = [asyncio.create_task(follow(s)) for s in (on_first, on_second)]
                await asyncio.gather(
                    *(writer(c, f"{c is first}{k}") for c in (first, second) for k in range(2))
                )
                received = [await task for task in following]
            return received, await log_after(second, start)

    received, log = asyncio.run(scenario())
    assert len(log) == writes
    assert received == [log, log]


@pytest.mark.postgresql
def test_a_dropped_listen_connection_is_replaced_and_nothing_is_missed(pair: Pair) -> None:
    terminate = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE application_name = '{LISTENER_APPLICATION_NAME}' "
        "AND datname = current_database()"
    )
    listeners = (
        "SELECT count(*) FROM pg_stat_activity "
        f"WHERE application_name = '{LISTENER_APPLICATION_NAME}' "
        "AND datname = current_database()"
    )

    async def scenario() -> tuple[list[str], list[str]]:
        async with pair.client(0) as first, pair.client(1) as second:
            start = await head(first)
            async with subscribed(pair.servers[0].url, pair.key, after=start) as sub:
                ids = [await create_lead(second, "before@example.com")]
                await sub.take(1)  # the first process listens
                [(killed,)] = await asyncio.to_thread(query, pair.database_url, terminate)
                assert killed >= 1
                # Written on the other process while the first has no LISTEN connection (or
                # not yet noticed it lost it): read from the log once it listens again.
                ids += [await create_lead(second, f"during{n}@example.com") for n in range(3)]
                received = await sub.take(3, timeout=10)
                ids.append(await create_lead(second, "after@example.com"))
                received += await sub.take(1, timeout=5)
                [(count,)] = await asyncio.to_thread(query, pair.database_url, listeners)
                assert count >= 1
                return ids[1:], [e["node"]["recordId"] for e in received]

    written, received = asyncio.run(scenario())
    assert received == written
