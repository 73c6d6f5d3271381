"""Cost and rate limits through HTTP: the static cost, refusal over MAX_QUERY_COST, the leaky
bucket per credential (429, Retry-After), extensions.cost and the RateLimit headers, per-key
rates from createApiKey, one bucket shared by two server processes, WebSocket operations."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from db import ratelimit
from resolvers.ratelimit import Decision, Limiter, Policy
from tests.conftest import GraphQLClient, LiveServer, check_cost
from tests.databases import scratch_database
from tests.factories import create_leads, lead_values
from tests.processes import ServerProcess, create_owner_key

SUBSCRIPTION = "subscription { events { node { id record { __typename } } } }"  # costs 3
CREATE_LEAD = """
mutation ($input: CreateLeadInput!) {
  createLead(input: $input) { lead { id } userErrors { code } }
}
"""
CREATE_KEY = """
mutation ($name: String!, $rate: RateLimitInput) {
  createApiKey(input: {name: $name, role: MEMBER, rateLimit: $rate}) {
    apiKey { rateLimit { maximumAvailable restoreRate } }
    secret
    userErrors { field code }
  }
}
"""


def post(http: httpx.Client, query: str, token: str, variables: Any = None) -> httpx.Response:
    return http.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}"},
    )


def make_key(gql: GraphQLClient, maximum: int, rate: int) -> str:
    out = gql.data(
        CREATE_KEY,
        {"name": "limited", "rate": {"maximumAvailable": maximum, "restoreRate": rate}},
    )["createApiKey"]
    assert out["userErrors"] == []
    assert out["apiKey"]["rateLimit"] == {"maximumAvailable": maximum, "restoreRate": rate}
    return str(out["secret"])


def cost(query: str, gql: GraphQLClient, variables: Any = None) -> dict[str, Any]:
    body = gql(query, variables, cost=True)
    assert "errors" not in body, body
    check_cost(body["extensions"]["cost"])
    return dict(body["extensions"]["cost"])


def test_static_cost_compounds_nested_connections_and_uses_the_default_page_size(
    gql: GraphQLClient,
) -> None:
    # leads (1) + first x (edge 1 + node 1) ; default page size 20 without first.
    assert cost("{ leads(first: 5) { edges { node { id } } } }", gql)["requestedQueryCost"] == 11
    assert cost("{ leads { nodes { id email } } }", gql)["requestedQueryCost"] == 21
    # Nested: 1 + 3 x (node 1 + history 1 + 4 x edge(1 + node 1)) = 1 + 3 x 10 = 31.
    nested = "{ leads(first: 3) { nodes { history(first: 4) { edges { node { id } } } } } }"
    assert cost(nested, gql)["requestedQueryCost"] == 31
    # A variable and a fragment count as their literal would.
    fragment = (
        "query ($n: Int) { leads(first: $n) { ...L } }"
        " fragment L on LeadConnection { nodes { id } pageInfo { hasNextPage } }"
    )
    assert cost(fragment, gql, {"n": 7})["requestedQueryCost"] == 1 + 7 + 1
    # A mutation's root field weighs 10.
    mutation = 'mutation { createTag(input: {name: "x"}) { tag { id } userErrors { code } } }'
    assert cost(mutation, gql)["requestedQueryCost"] == 10 + 1 + 20


def test_one_document_costs_what_its_variables_ask_each_time(gql: GraphQLClient) -> None:
    # The static cost is remembered per document and per value of the variables that size its
    # lists: the same text sent again with other sizes costs what they ask, every time.
    query = (
        "query ($n: Int = 3, $m: Int, $ids: [ID!]!) {"
        " leads(first: $n) { nodes { history(first: $m) { nodes { id } } } }"
        " nodes(ids: $ids) { id } }"
    )
    ids = ["TGVhZDox", "TGVhZDoy"]
    asked = [
        ({"n": 5, "m": 2, "ids": ids}, 1 + 5 * (1 + 1 + 2 * 1) + 2),
        ({"n": 50, "m": 2, "ids": ids}, 1 + 50 * (1 + 1 + 2 * 1) + 2),
        ({"m": 2, "ids": ids}, 1 + 3 * (1 + 1 + 2 * 1) + 2),  # $n's default
        ({"n": None, "m": 2, "ids": ids}, 1 + 20 * (1 + 1 + 2 * 1) + 2),  # the page size
        ({"n": 5, "m": 2, "ids": ids[:1]}, 1 + 5 * (1 + 1 + 2 * 1) + 1),
        ({"n": 5, "m": 2, "ids": ids}, 1 + 5 * (1 + 1 + 2 * 1) + 2),
    ]
    for variables, expected in asked:
        assert cost(query, gql, variables)["requestedQueryCost"] == expected, variables


def test_actual_cost_counts_the_rows_returned(server: LiveServer, gql: GraphQLClient) -> None:
    create_leads(server, lead_values(), lead_values())
    spent = cost("{ leads(first: 50) { edges { node { id } } } }", gql)
    assert spent["requestedQueryCost"] == 101
    assert spent["actualQueryCost"] == 1 + 2 * 2


def test_over_max_query_cost_is_refused_before_it_runs_with_the_cost(
    server: LiveServer, gql: GraphQLClient
) -> None:
    # Three nested lists of 100: each lead's events, each event's lead's events again.
    inner = "record { ... on Lead { history(first: 100) { nodes { id } } } }"
    query = "{ leads(first: 100) { nodes { history(first: 100) { nodes { id " + inner + " } } } } }"
    body = gql(query, cost=True)
    assert "data" not in body or body.get("data") is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
    # leads 1 + 100 x (lead 1 + history 1 + 100 x (event 1 + record 1 + history 1 + 100 x 1))
    assert error["extensions"]["cost"] == 1 + 100 * (1 + 1 + 100 * (1 + 1 + 1 + 100))
    assert error["extensions"]["cost"] > server.settings.max_query_cost
    # The response's cost says the same, and that nothing ran.
    spent = body["extensions"]["cost"]
    check_cost(spent)
    assert (spent["requestedQueryCost"], spent["actualQueryCost"]) == (
        error["extensions"]["cost"],
        None,
    )
    assert error["extensions"]["maximumCost"] == server.settings.max_query_cost


def test_every_response_carries_cost_and_ratelimit_headers(http: httpx.Client) -> None:
    response = http.post("/graphql", json={"query": "{ leads(first: 2) { nodes { id } } }"})
    assert response.status_code == 200
    throttle = response.json()["extensions"]["cost"]["throttleStatus"]
    assert throttle["maximumAvailable"] == 10_000_000
    assert throttle["restoreRate"] == 10_000_000
    assert re.fullmatch(r'"cost";q=10000000;w=1', response.headers["RateLimit-Policy"])
    assert re.fullmatch(r'"cost";r=\d+;t=\d+', response.headers["RateLimit"])
    # Without credentials too (the bucket of the client's address).
    anonymous = http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Authorization": ""}
    )
    assert "RateLimit" in anonymous.headers


def test_a_key_with_a_small_rate_is_throttled_with_429_and_retry_after(
    server: LiveServer, gql: GraphQLClient, http: httpx.Client
) -> None:
    create_leads(server, *(lead_values() for _ in range(9)))
    token = make_key(gql, maximum=60, rate=1)
    query = "{ leads(first: 9) { nodes { id } } }"  # requested 10, and 10 in the end
    statuses = []
    for _ in range(8):
        response = post(http, query, token)
        statuses.append(response.status_code)
        assert re.fullmatch(r'"cost";q=60;w=60', response.headers["RateLimit-Policy"])
        if response.status_code == 429:
            break
    assert statuses[:6] == [200] * 6, statuses
    assert statuses[-1] == 429
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert body["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == 60
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] < 10


def test_the_actual_cost_is_charged_not_the_requested_one(
    gql: GraphQLClient, http: httpx.Client
) -> None:
    token = make_key(gql, maximum=60, rate=1)
    query = "{ leads(first: 9) { nodes { id } } }"  # requested 10; no leads: 1 in the end
    for _ in range(20):
        response = post(http, query, token)
        assert response.status_code == 200, response.text
    spent = response.json()["extensions"]["cost"]
    assert (spent["requestedQueryCost"], spent["actualQueryCost"]) == (10, 1)
    assert 35 <= spent["throttleStatus"]["currentlyAvailable"] <= 60


def test_query_and_subscription_over_a_websocket_are_limited_per_operation(
    server: LiveServer, gql: GraphQLClient
) -> None:
    create_leads(server, *(lead_values() for _ in range(9)))
    token = make_key(gql, maximum=30, rate=1)
    ws_url = server.url.replace("http", "ws", 1) + "/graphql"
    query = "{ leads(first: 9) { nodes { id } } }"  # requested 10: the 4th is refused
    with connect(ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        answers = []
        for n in range(4):
            ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": {"query": query}}))
            message = json.loads(ws.recv(timeout=10))
            while message["type"] == "complete":
                message = json.loads(ws.recv(timeout=10))
            answers.append(message)
        assert [("errors" in m["payload"]) for m in answers] == [False] * 3 + [True], answers
        assert answers[0]["payload"]["extensions"]["cost"]["actualQueryCost"] == 10
        error = answers[3]["payload"]["errors"][0]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        # A subscription is an operation too: refused while the bucket is dry.
        ws.send(json.dumps({"id": "s", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}))
        message = json.loads(ws.recv(timeout=10))
        while message["type"] == "complete":
            message = json.loads(ws.recv(timeout=10))
        assert message["type"] in ("next", "error"), message
        errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
        assert errors[0]["extensions"]["code"] == "RATE_LIMITED", message


def test_two_processes_share_one_bucket(tmp_path_factory: pytest.TempPathFactory) -> None:
    directory = tmp_path_factory.mktemp("rate_processes")
    with scratch_database(directory) as url:
        owner = create_owner_key(url)
        servers = [
            ServerProcess(url, directory / f"p{n}.log", RATE_LIMIT_LEASE_SECONDS="0.2")
            for n in (1, 2)
        ]
        try:
            for process in servers:
                process.start()
            for process in servers:
                process.wait_for_readyz(200, timeout=60)
            with httpx.Client(base_url=servers[0].url, timeout=30) as first:
                out = post(
                    first,
                    CREATE_KEY,
                    owner,
                    {"name": "shared", "rate": {"maximumAvailable": 100, "restoreRate": 2}},
                ).json()["data"]["createApiKey"]
            token = out["secret"]
            with httpx.Client(base_url=servers[1].url, timeout=30) as second:
                for n in range(9):
                    lead = {"email": f"p{n}@example.com", "firstName": "P"}
                    post(second, CREATE_LEAD, owner, {"input": lead}).raise_for_status()
            query = "{ leads(first: 9) { nodes { id } } }"  # requested 10, and 10 in the end
            clients = [httpx.Client(base_url=s.url, timeout=30) for s in servers]
            started = time.monotonic()
            accepted = 0
            refused = 0
            for n in range(40):
                response = post(clients[n % 2], query, token)
                if response.status_code == 200:
                    accepted += 1
                else:
                    assert response.status_code == 429, response.text
                    assert int(response.headers["Retry-After"]) >= 1
                    refused += 1
            elapsed = time.monotonic() - started
            for client in clients:
                client.close()
            # The pair together spent no more than the bucket (100) plus what it regained
            # (2/s): each process alone would have accepted 10 of its 20.
            assert accepted * 10 <= 100 + 2 * elapsed, (accepted, elapsed)
            assert refused > 0
            # And not much less: at most each process's lease (10 + 2 x 0.2) lay unused.
            assert accepted * 10 >= 100 - 2 * 11, (accepted, elapsed)
        finally:
            for process in servers:
                process.stop()


@pytest.mark.parametrize(
    ("rate", "field"),
    [
        ({"maximumAvailable": 0, "restoreRate": 5}, "maximumAvailable"),
        ({"maximumAvailable": 100, "restoreRate": 0}, "restoreRate"),
        ({"maximumAvailable": 100, "restoreRate": -3}, "restoreRate"),
    ],
)
def test_a_key_with_a_bad_rate_is_refused_and_not_created(
    gql: GraphQLClient, rate: dict[str, int], field: str
) -> None:
    before = gql.data("{ apiKeys { id } }")["apiKeys"]
    out = gql.data(CREATE_KEY, {"name": "bad", "rate": rate})["createApiKey"]
    assert out["apiKey"] is None and out["secret"] is None
    assert out["userErrors"] == [{"field": ["input", "rateLimit", field], "code": "INVALID"}]
    assert gql.data("{ apiKeys { id } }")["apiKeys"] == before


def test_concurrent_takes_from_one_bucket_never_hand_out_more_than_it_holds(
    server: LiveServer,
) -> None:
    """Forty takes of 7 points at once, each in its own transaction, from a bucket of 100 that
    barely refills: exactly 14 get their points (PostgreSQL: the row is locked for each take;
    a lost update would hand out more)."""

    async def take_all() -> list[float]:
        async def take() -> float:
            async with server.db.write() as conn:
                taken, _, _ = await ratelimit.take(
                    conn,
                    "test:concurrent",
                    ask=7,
                    least=7,
                    give=0.0,
                    maximum=100,
                    rate=0.001,
                )
                return taken

        return list(await asyncio.gather(*(take() for _ in range(40))))

    taken = server.run(take_all())
    assert sorted(taken, reverse=True) == [7.0] * 14 + [0.0] * 26


def test_one_process_leases_a_share_of_a_fast_bucket_not_all_of_it(server: LiveServer) -> None:
    """A bucket that refills within a lease period (restore rate x lease >= maximum): one
    process's lease takes the request's cost and at most a tenth of the bucket more, so another
    process's request right after it is served (a lease of the whole bucket refused it)."""
    policy = Policy(maximum=1000, rate=1000)

    async def two_processes() -> tuple[Decision, Decision]:
        # Two limiters: two processes' leases of one bucket row.
        first, second = Limiter(server.settings, server.db), Limiter(server.settings, server.db)
        return (
            await first.reserve("test:share", policy, 35),
            await second.reserve("test:share", policy, 35),
        )

    first, second = server.run(two_processes())
    assert first.allowed and second.allowed, (first, second)
    assert second.status.available >= 1000 - 2 * (35 + 100)


def test_full_buckets_of_sessions_and_addresses_are_pruned_and_api_keys_kept(
    server: LiveServer, http: httpx.Client
) -> None:
    """A row per client address (or session) ever seen would stay forever: a process deletes
    the rows of the server's policy that are full again (no row is a full bucket), and keeps
    API keys' (a key may refill slower than the server's rate)."""
    # A request without credentials (the client address's bucket) and one with the key, each
    # with a cost (one of 0 takes nothing from a bucket).
    page = {"query": "{ leads(first: 1) { nodes { id } } }"}
    http.post("/graphql", json=page, headers={"Authorization": ""})
    http.post("/graphql", json=page)
    limiter = server.app.state.limiter
    policy = limiter.default_policy()
    full_after = policy.maximum / policy.rate + 1
    rows = "SELECT key FROM rate_buckets ORDER BY key"

    async def age_all_and_prune() -> tuple[list[str], int, list[str]]:
        await limiter.flush(everything=True)  # the leases go back to the rows first
        async with server.db.write() as conn:
            before = [r.key for r in await conn.execute(text(rows))]
            old = time.time() - full_after - 5
            await conn.execute(text("UPDATE rate_buckets SET updated_at = :t"), {"t": old})
        pruned = await limiter.prune()
        async with server.db.read() as conn:
            after = [r.key for r in await conn.execute(text(rows))]
        return before, pruned, after

    before, pruned, after = server.run(age_all_and_prune())
    assert {k.split(":")[0] for k in before} == {"ip", "key"}, before
    assert after == [k for k in before if k.startswith("key:")]
    assert pruned == len(before) - len(after)
    # A bucket without its row is full again, and the next request makes the row again.
    anonymous = http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Authorization": ""}
    )
    assert anonymous.status_code == 200
    throttle = anonymous.json()["extensions"]["cost"]["throttleStatus"]
    assert throttle["currentlyAvailable"] == throttle["maximumAvailable"]
