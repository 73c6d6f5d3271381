"""``subscription { events(after, filter) }`` over graphql-transport-ws: each committed event as an
edge, replay from ``after`` then live with no gap and no repeat, the caller's workspace only,
filters, one read of the log for every subscriber of a process, a slow subscriber closed with
1013 and resuming from its cursor, a revoked credential closing its subscriptions within
seconds. Over raw WebSockets here; tests/test_subscription_clients.py uses the npm clients and
tests/test_subscription_processes.py several server processes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from db.models import Role
from resolvers.auth import create_key_for_workspace
from tests.conftest import (
    OWNER_KEY,
    GraphQLClient,
    LiveServer,
    Mailbox,
    StatementCounter,
    without_cost,
)
from tests.subscribers import (
    SUBSCRIBE,
    Closed,
    StalledSubscription,
    all_subscribed,
    cursor_at,
    seq,
    subscribed,
)
from tests.test_auth_flows import SIGN_OUT, verified_session

CREATE_LEAD = """
mutation ($input: CreateLeadInput!) {
  createLead(input: $input) { lead { id } userErrors { code } }
}
"""
UPDATE_LEAD = """
mutation ($id: ID!, $input: UpdateLeadInput!) {
  updateLead(id: $id, input: $input) { lead { id } userErrors { code } }
}
"""
EVENTS = """
query ($after: String) {
  events(first: 100, after: $after) {
    edges { cursor node { id type recordId changes { field from to } } }
    pageInfo { hasNextPage }
  }
}
"""
CREATE_KEY = """
mutation ($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id } } }
"""
REVOKE_KEY = "mutation ($id: ID!) { revokeApiKey(id: $id) { userErrors { field } } }"
REVOKED = (4403, "Forbidden: the credential was revoked or expired; sign in again")


def log(gql: GraphQLClient, after: str | None = None) -> list[dict[str, Any]]:
    """Every event of the caller's workspace past ``after``, from the events query."""
    edges: list[dict[str, Any]] = []
    while True:
        page = gql.data(EVENTS, {"after": after})["events"]
        edges += page["edges"]
        if not page["pageInfo"]["hasNextPage"]:
            return edges
        after = edges[-1]["cursor"]


def new_lead(gql: GraphQLClient, email: str, **values: Any) -> str:
    created = gql.data(CREATE_LEAD, {"input": {"email": email, **values}})["createLead"]
    assert created["userErrors"] == []
    lead_id: str = created["lead"]["id"]
    return lead_id


def following(server: LiveServer) -> int:
    async def count() -> int:
        return int(server.app.state.feed.following)

    return server.run(count())


def feed_counter(server: LiveServer, name: str) -> int:
    async def read() -> int:
        return int(getattr(server.app.state.feed, name))

    return server.run(read())


async def until(check: Callable[[], bool], timeout: float = 10) -> None:
    """Waits (off the event loop's thread, as the checks ask the server's) for ``check``."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def in_thread(fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
    return asyncio.to_thread(fn, *args)


@pytest.fixture(autouse=True)
def no_subscribers_left(server: LiveServer) -> None:
    """The server has let go of the subscriptions of earlier tests (it does once it sees their
    connections close), so that a test counts only its own."""
    asyncio.run(until(lambda: feed_counter(server, "subscribers") == 0))


# ------------------------------------------------------------------ delivery


def test_each_committed_event_arrives_as_an_edge_with_the_logs_cursor(
    server: LiveServer, gql: GraphQLClient
) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with subscribed(server.url, OWNER_KEY) as sub:
            await until(lambda: following(server) == 1)
            lead_id = await in_thread(new_lead, gql, "ann@example.com")
            await in_thread(gql.data, UPDATE_LEAD, {"id": lead_id, "input": {"score": 7}})
            return await sub.take(2)

    received = asyncio.run(scenario())
    assert received == log(gql)
    assert [e["node"]["type"] for e in received] == ["LEAD_CREATED", "LEAD_UPDATED"]
    assert received[1]["node"]["changes"] == [{"field": "score", "from": 0, "to": 7}]


def test_with_after_missed_events_are_replayed_then_live_ones_follow(
    server: LiveServer, gql: GraphQLClient
) -> None:
    for n in range(3):
        new_lead(gql, f"before{n}@example.com")
    first = log(gql)[0]

    async def scenario() -> list[dict[str, Any]]:
        async with subscribed(server.url, OWNER_KEY, after=first["cursor"]) as sub:
            replayed = await sub.take(2)
            await in_thread(new_lead, gql, "live@example.com")
            return replayed + await sub.take(1)

    assert asyncio.run(scenario()) == log(gql, after=first["cursor"])


def test_a_subscriber_resuming_while_writes_go_on_sees_every_event_once_in_order(
    server: LiveServer, gql: GraphQLClient
) -> None:
    """Four writers create leads without pause; the subscriber takes some events, hangs up,
    and resumes with its last cursor, again and again (once after a long absence, so that the
    replay spans pages). Together its connections got the whole log, each event once."""
    writes = 480
    headers = {"Authorization": f"Bearer {OWNER_KEY}"}

    async def writer(n: int, client: httpx.AsyncClient) -> None:
        for k in range(writes // 4):
            variables = {"input": {"email": f"w{n}.{k}@x.io"}}
            response = await client.post(
                "/graphql", json={"query": CREATE_LEAD, "variables": variables}
            )
            body = response.json()
            assert body["data"]["createLead"]["userErrors"] == []

    async def subscriber() -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = []
        after = cursor_at(0)
        for takes, pause in [(30, 0.0), (50, 2.0), (40, 0.05), (60, 0.0)]:
            async with subscribed(server.url, OWNER_KEY, after=after) as sub:
                received += await sub.take(takes)
            after = received[-1]["cursor"]
            await asyncio.sleep(pause)  # events go on being committed meanwhile
        async with subscribed(server.url, OWNER_KEY, after=after) as sub:
            received += await sub.take(writes - len(received), timeout=60)
        return received

    async def scenario() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as client:
            subscribing = asyncio.create_task(subscriber())
            await asyncio.gather(*(writer(n, client) for n in range(4)))
            return await subscribing

    received = asyncio.run(scenario())
    assert [seq(e["cursor"]) for e in received] == list(range(1, writes + 1))
    assert received == log(gql)


def test_each_event_reads_its_record_as_it_is_then(server: LiveServer, gql: GraphQLClient) -> None:
    """A subscription's events do not share DataLoader caches: `record` is read afresh."""
    query = SUBSCRIBE.replace("recordId", "recordId record { ... on Lead { email } }")

    async def scenario() -> list[dict[str, Any]]:
        async with subscribed(server.url, OWNER_KEY, after=cursor_at(0), query=query) as sub:
            lead_id = await in_thread(new_lead, gql, "old@example.com")
            [created] = await sub.take(1)
            update = {"id": lead_id, "input": {"email": "new@example.com"}}
            await in_thread(gql.data, UPDATE_LEAD, update)
            return [created, *await sub.take(1)]

    created, updated = asyncio.run(scenario())
    assert created["node"]["record"] == {"email": "old@example.com"}
    assert updated["node"]["record"] == {"email": "new@example.com"}


def test_a_filter_selects_events_in_the_replay_and_live(
    server: LiveServer, gql: GraphQLClient
) -> None:
    watched = new_lead(gql, "watched@example.com")
    other = new_lead(gql, "other@example.com")
    gql.data(UPDATE_LEAD, {"id": watched, "input": {"score": 1}})
    gql.data(UPDATE_LEAD, {"id": other, "input": {"score": 1}})
    filter_ = {"recordId": watched, "types": ["LEAD_UPDATED"]}

    async def scenario() -> list[dict[str, Any]]:
        async with subscribed(server.url, OWNER_KEY, after=cursor_at(0), filter_=filter_) as sub:
            [replayed] = await sub.take(1)
            await in_thread(gql.data, UPDATE_LEAD, {"id": other, "input": {"score": 2}})
            await in_thread(gql.data, UPDATE_LEAD, {"id": watched, "input": {"score": 2}})
            return [replayed, *await sub.take(1)]

    received = asyncio.run(scenario())
    assert [(e["node"]["recordId"], e["node"]["changes"][0]["to"]) for e in received] == [
        (watched, 1),
        (watched, 2),
    ]


def test_a_subscription_sees_only_the_callers_workspace(
    server: LiveServer, gql: GraphQLClient
) -> None:
    viewer, _, _ = server.run(create_key_for_workspace(server.db, "Other Co", Role.VIEWER, "v"))
    owner, _, _ = server.run(create_key_for_workspace(server.db, "Other Co", Role.OWNER, "o"))

    async def scenario() -> list[dict[str, Any]]:
        async with subscribed(server.url, viewer, after=cursor_at(0)) as sub:
            await in_thread(new_lead, gql, "default@example.com")
            await in_thread(new_lead, gql.as_(owner), "other@example.com")
            return await sub.take(1)

    [edge] = asyncio.run(scenario())
    assert seq(edge["cursor"]) == 1  # the other workspace's own log
    assert edge["node"]["changes"][0] == {"field": "email", "from": None, "to": "other@example.com"}


@pytest.mark.parametrize(
    ("token", "after", "expected"),
    [
        (None, None, {"code": "UNAUTHENTICATED"}),
        (OWNER_KEY, "not-a-cursor", {"code": "BAD_USER_INPUT", "argument": "after"}),
    ],
    ids=["no-credential", "bad-cursor"],
)
def test_a_subscription_refused_before_it_starts_gets_an_error_message(
    server: LiveServer, token: str | None, after: str | None, expected: dict[str, Any]
) -> None:
    async def scenario() -> dict[str, Any]:
        async with subscribed(server.url, token, after=after) as sub:
            return await sub.first_message()

    message = asyncio.run(scenario())
    assert message["type"] == "error"
    [error] = message["payload"]
    assert error["extensions"] == expected
    assert error["path"] == ["events"]


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_subscription_over_http_is_refused_with_where_to_subscribe(
    http: httpx.Client, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    document = "subscription { events { cursor } }"
    if method == "POST":
        response = http.post("/graphql", json={"query": document})
    else:
        response = http.get("/graphql", params={"query": document})

    assert response.status_code == 400
    assert without_cost(response.json()) == {
        "errors": [
            {
                "message": "Subscriptions are served over WebSocket: connect to /graphql with "
                "the graphql-transport-ws subprotocol (the graphql-ws library's).",
                "extensions": {"code": "BAD_REQUEST"},
            }
        ],
    }
    assert "ERROR" not in caplog.text


# ------------------------------------------------------------------ one reader for all


def test_one_read_of_the_log_serves_every_subscriber_of_the_process(
    server: LiveServer, gql: GraphQLClient, count_queries: Any
) -> None:
    subscribers, writes = 25, 6

    async def scenario() -> tuple[list[list[dict[str, Any]]], StatementCounter]:
        async with all_subscribed(server.url, OWNER_KEY, subscribers) as subs:
            await until(lambda: following(server) == subscribers)
            with count_queries() as counter:
                for n in range(writes):
                    await in_thread(new_lead, gql, f"fan{n}@example.com")
                    # Each write is read before the next: one read per write at the most.
                    await asyncio.gather(*(sub.take(1) for sub in subs))
            return [sub.received for sub in subs], counter

    received, counter = asyncio.run(scenario())
    assert all(r == log(gql) for r in received)
    reads = [s for s in counter.statements if "FROM events" in s]
    # Each read by the process's one reader; an extra one can follow a doubled wake-up
    # (this process's commit, then its NOTIFY on PostgreSQL), never one per subscriber.
    assert writes <= len(reads) <= 2 * writes, reads


def test_subscribers_of_one_selection_share_each_events_execution(
    server: LiveServer, gql: GraphQLClient, count_queries: Any
) -> None:
    """Each event's `record` is read once for every subscriber with the same selection (the
    same document, role and selection variables), whatever their `after`: not once each."""
    query = SUBSCRIBE.replace("recordId", "recordId record { ... on Lead { email } }")
    subscribers, writes = 12, 4
    with count_queries() as alone:  # what a write reads of leads by itself, nobody listening
        new_lead(gql, "x@example.com")
    own = sum("FROM leads" in s for s in alone.statements)
    start = log(gql)[-1]["cursor"]

    async def scenario() -> tuple[list[list[dict[str, Any]]], StatementCounter]:
        async with AsyncExitStack() as exits:
            subs = [
                await exits.enter_async_context(
                    subscribed(server.url, OWNER_KEY, after=start if n % 2 else None, query=query)
                )
                for n in range(subscribers)
            ]
            await until(lambda: following(server) == subscribers)
            with count_queries() as counter:
                for n in range(writes):
                    await in_thread(new_lead, gql, f"shared{n}@example.com")
                    await asyncio.gather(*(sub.take(1) for sub in subs))
            return [sub.received for sub in subs], counter

    received, counter = asyncio.run(scenario())
    emails = [e["node"]["record"]["email"] for e in received[0]]
    assert emails == [f"shared{n}@example.com" for n in range(writes)]
    assert all(r == received[0] for r in received)
    reads = [s for s in counter.statements if "FROM leads" in s]
    # The writes' own reads, and one read of the record per event for all twelve.
    assert len(reads) == writes * own + writes, reads


def test_a_variable_of_the_selection_keeps_subscribers_apart(
    server: LiveServer, gql: GraphQLClient
) -> None:
    query = """
    subscription ($after: String, $filter: EventFilter, $withRecord: Boolean!) {
      events(after: $after, filter: $filter) {
        node { type record @include(if: $withRecord) { ... on Lead { email } } }
      }
    }
    """

    async def scenario() -> list[list[dict[str, Any]]]:
        async with (
            subscribed(server.url, OWNER_KEY, query=query, variables={"withRecord": True}) as a,
            subscribed(server.url, OWNER_KEY, query=query, variables={"withRecord": False}) as b,
        ):
            await until(lambda: following(server) == 2)
            await in_thread(new_lead, gql, "apart@example.com")
            return [await a.take(1), await b.take(1)]

    with_record, without = asyncio.run(scenario())
    assert with_record == [
        {"node": {"type": "LEAD_CREATED", "record": {"email": "apart@example.com"}}}
    ]
    assert without == [{"node": {"type": "LEAD_CREATED"}}]


def test_one_connection_runs_at_most_its_share_of_subscriptions(
    server: LiveServer, gql: GraphQLClient
) -> None:
    """SUBSCRIPTIONS_PER_CONNECTION (100): one more on the same connection is refused with an
    `error` message; the others go on."""
    limit = server.settings.subscriptions_per_connection
    assert limit == 100

    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with subscribed(server.url, OWNER_KEY) as sub:
            for n in range(2, limit + 2):
                payload = {"query": SUBSCRIBE, "variables": {}}
                await sub.ws.send(
                    json.dumps({"type": "subscribe", "id": str(n), "payload": payload})
                )
            refused = await sub.message(10)
            await until(lambda: following(server) == limit)
            await in_thread(new_lead, gql, "limit@example.com")
            return refused, [await sub.message(10) for _ in range(limit)]

    refused, delivered = asyncio.run(scenario())
    assert refused == {
        "id": str(limit + 1),
        "type": "error",
        "payload": [{"message": "Subscription limit reached"}],
    }
    assert sorted(int(m["id"]) for m in delivered) == list(range(1, limit + 1))
    assert {m["type"] for m in delivered} == {"next"}


# ------------------------------------------------------------------ slow subscribers


def test_a_subscriber_too_slow_is_closed_with_1013_and_resumes_from_its_cursor(
    server: LiveServer, gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that stops reading: the server's sends wait on TCP, its queue fills up, and
    the connection is closed with 1013 and the cursor of the last event it sent. The client
    reads what had been sent, and resumes from that cursor: nothing missed, nothing twice."""
    monkeypatch.setattr(server.settings, "subscription_queue_size", 10)
    notes = "n" * 8000  # each event some 8 KB on the wire: TCP's buffers fill quickly
    too_slow_before = feed_counter(server, "too_slow")
    headers = {"Authorization": f"Bearer {OWNER_KEY}"}

    async def scenario() -> tuple[list[dict[str, Any]], Closed, list[dict[str, Any]]]:
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:

            async def write(n: int) -> None:
                variables = {"input": {"email": f"slow{n}@x.io", "notes": notes}}
                await client.post("/graphql", json={"query": CREATE_LEAD, "variables": variables})

            slow = await StalledSubscription.open(server.url, OWNER_KEY, after=cursor_at(0))
            await until(lambda: following(server) == 1)
            written = 0
            while feed_counter(server, "too_slow") == too_slow_before:
                assert written < 500, "the subscriber never fell behind"
                await write(written)
                written += 1
            for n in range(5):  # more, after it was dropped
                await write(written + n)
            closed = await slow.until_closed()
            async with subscribed(server.url, OWNER_KEY, after=slow.received[-1]["cursor"]) as sub:
                rest = await sub.take(written + 5 - len(slow.received))
            return slow.received, closed, rest

    before, closed, rest = asyncio.run(scenario())
    assert closed.code == 1013
    assert closed.reason == f"subscriber too slow: resume with after={before[-1]['cursor']}"
    assert before + rest == log(gql)


# ------------------------------------------------------------------ credentials


def test_revoking_a_key_closes_its_subscriptions_within_seconds(
    server: LiveServer, gql: GraphQLClient
) -> None:
    created = gql.data(CREATE_KEY, {"input": {"name": "live", "role": "VIEWER"}})["createApiKey"]

    async def scenario() -> tuple[Closed, float]:
        async with subscribed(server.url, created["secret"]) as sub:
            await until(lambda: following(server) == 1)
            await in_thread(new_lead, gql, "seen@example.com")
            await sub.take(1)
            revoked = await in_thread(gql.data, REVOKE_KEY, {"id": created["apiKey"]["id"]})
            assert revoked["revokeApiKey"]["userErrors"] == []
            started = time.monotonic()
            closed = await sub.until_closed(timeout=10)
            return closed, time.monotonic() - started

    closed, took = asyncio.run(scenario())
    assert (closed.code, closed.reason) == REVOKED
    assert took < server.settings.subscription_auth_check_seconds + 1.5


def test_signing_out_closes_the_sessions_subscriptions(
    server: LiveServer, anon: GraphQLClient, mailbox: Mailbox
) -> None:
    token = verified_session(anon, mailbox)
    session = anon.as_(token)

    async def scenario() -> Closed:
        async with subscribed(server.url, token) as sub:
            await until(lambda: following(server) == 1)
            await in_thread(new_lead, session, "mine@example.com")
            [edge] = await sub.take(1)
            assert edge["node"]["type"] == "LEAD_CREATED"
            await in_thread(session.data, SIGN_OUT)
            return await sub.until_closed(timeout=10)

    closed = asyncio.run(scenario())
    assert (closed.code, closed.reason) == REVOKED
