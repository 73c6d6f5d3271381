"""Documents that are too deep or too wide are refused before they run."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from tests.conftest import GraphQLClient, LiveServer, without_cost
from tests.processes import ServerProcess


def nested(depth: int) -> str:
    """leads > edges > node, then convertedClient/convertedFrom hops up to ``depth`` levels."""
    hops = depth - 3
    inner = "id"
    for n in range(hops):
        inner = f"{'convertedClient' if n % 2 == 0 else 'convertedFrom'} {{ {inner} }}"
    return f"{{ leads {{ edges {{ node {{ {inner} }} }} }} }}"


def test_queries_up_to_the_depth_limit_run(gql: GraphQLClient) -> None:
    assert gql.data(nested(12)) == {"leads": {"edges": []}}


def test_queries_past_the_depth_limit_are_refused(gql: GraphQLClient) -> None:
    body = gql(nested(14))
    assert "data" not in body
    assert body["errors"][0]["message"] == "'anonymous' exceeds maximum operation depth of 12"
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_too_many_aliases_are_refused(gql: GraphQLClient) -> None:
    ok = "{ " + " ".join(f"a{i}: __typename" for i in range(30)) + " }"
    too_many = "{ " + " ".join(f"a{i}: __typename" for i in range(31)) + " }"
    assert len(gql.data(ok)) == 30
    body = gql(too_many)
    assert body["errors"][0]["message"] == "31 aliases found. Allowed: 30"
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


# ------------------------------------------------------------------ request bodies

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


def padded_body(size: int) -> str:
    """A JSON request for ``{ __typename }`` of exactly ``size`` bytes (an unused variable
    makes up the length)."""
    empty = json.dumps({"query": "{ __typename }", "variables": {"pad": ""}})
    return empty.replace('"pad": ""', '"pad": "' + "x" * (size - len(empty)) + '"')


def test_a_body_over_the_limit_is_refused_with_413_before_it_runs(
    server: LiveServer, http: httpx.Client
) -> None:
    limit = server.settings.max_body_bytes
    response = http.post(
        "/graphql",
        content=padded_body(limit + 1),
        headers={"Content-Type": "application/json", "Authorization": ""},
    )

    assert response.status_code == 413
    assert response.headers["x-request-id"]
    assert without_cost(response.json()) == {
        "errors": [
            {
                "message": f"The request body is larger than {limit} bytes, the most "
                "accepted here.",
                "extensions": {"code": "PAYLOAD_TOO_LARGE"},
            }
        ]
    }


def test_a_chunked_body_is_counted_as_it_arrives(server: LiveServer, http: httpx.Client) -> None:
    body = padded_body(server.settings.max_body_bytes + 1).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = http.post(
        "/graphql",
        content=chunks(),
        headers={"Content-Type": "application/json", "Accept": GRAPHQL_RESPONSE_JSON},
    )

    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE_JSON)
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


def test_a_body_at_the_limit_runs(server: LiveServer, http: httpx.Client) -> None:
    body = padded_body(server.settings.max_body_bytes)
    for content in (body.encode(), iter([body.encode()])):  # with a length, then chunked
        response = http.post(
            "/graphql", content=content, headers={"Content-Type": "application/json"}
        )
        assert without_cost(response.json()) == {"data": {"__typename": "Query"}}


# ------------------------------------------------------------------ documents


def padded_document(size: int, salt: str = "") -> str:
    """A valid query of exactly ``size`` bytes: a comment makes up the length."""
    head = f"{{ __typename }} # {salt}"
    return head + "x" * (size - len(head))


def test_a_document_over_the_size_limit_is_refused_before_parsing(
    server: LiveServer, http: httpx.Client
) -> None:
    limit = server.settings.max_document_bytes
    response = http.post(
        "/graphql",
        json={"query": padded_document(limit + 1)},
        headers={"Accept": GRAPHQL_RESPONSE_JSON},
    )
    assert response.status_code == 400
    assert without_cost(response.json()) == {
        "errors": [
            {
                "message": f"The document is {limit + 1} bytes; at most {limit} are accepted.",
                "extensions": {"code": "DOCUMENT_TOO_LARGE"},
            }
        ]
    }


def test_the_document_size_counts_bytes_not_characters(
    server: LiveServer, http: httpx.Client
) -> None:
    limit = server.settings.max_document_bytes
    head = "{ __typename } # "
    document = head + "é" * ((limit - len(head)) // 2 + 1)  # 2 bytes each in UTF-8
    response = http.post("/graphql", json={"query": document})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "DOCUMENT_TOO_LARGE"


def test_a_document_at_the_size_limit_runs(server: LiveServer, gql: GraphQLClient) -> None:
    document = padded_document(server.settings.max_document_bytes)
    assert gql.data(document) == {"__typename": "Query"}


# ------------------------------------------------------------------ list arguments

LEADS_BY_SOURCE = "query ($f: LeadFilter) { leads(filter: $f) { totalCount } }"
NODES = "query ($ids: [ID!]!) { nodes(ids: $ids) { id } }"
ENTITIES = "query ($reps: [_Any!]!) { _entities(representations: $reps) { __typename } }"


def literal_sources(count: int) -> str:
    values = ", ".join(f'"s{n}"' for n in range(count))
    return f"{{ leads(filter: {{source: [{values}]}}) {{ totalCount }} }}"


def test_a_list_literal_up_to_the_limit_runs(server: LiveServer, gql: GraphQLClient) -> None:
    document = literal_sources(server.settings.max_list_size)
    assert gql.data(document) == {"leads": {"totalCount": 0}}


def test_a_list_literal_over_the_limit_is_refused_naming_the_argument(
    server: LiveServer, gql: GraphQLClient
) -> None:
    limit = server.settings.max_list_size
    body = gql(literal_sources(limit + 1))
    assert "data" not in body
    [error] = body["errors"]
    assert error["message"] == (
        f"Argument 'filter.source' must hold at most {limit} items (it has {limit + 1})."
    )
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": "filter.source"}


def test_a_list_in_variables_over_the_limit_is_refused_before_it_runs(
    server: LiveServer, gql: GraphQLClient, count_queries: Any
) -> None:
    limit = server.settings.max_list_size
    sources = [f"s{n}" for n in range(limit + 1)]
    with count_queries() as counter:
        body = gql(LEADS_BY_SOURCE, {"f": {"source": sources}})
    assert counter.count == 1  # the credential lookup only
    assert body == {
        "errors": [
            {
                "message": f"Variable '$f' has invalid value at .source: the list must hold at "
                f"most {limit} items (it has {limit + 1}).",
                "locations": [{"line": 1, "column": 8}],
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ]
    }
    assert gql(LEADS_BY_SOURCE, {"f": {"source": sources[:limit]}}) == {
        "data": {"leads": {"totalCount": 0}}
    }


def test_every_list_argument_is_capped(server: LiveServer, gql: GraphQLClient) -> None:
    limit = server.settings.max_list_size
    ids = [base64.b64encode(f"Lead:{n}".encode()).decode() for n in range(1, limit + 2)]
    reps = [{"__typename": "Lead", "id": i} for i in ids]
    for document, variables, name in [
        (NODES, {"ids": ids}, "$ids"),
        (ENTITIES, {"reps": reps}, "$reps"),
        (
            "query ($s: [LeadStatus!]) { leads(filter: {status: $s}) { totalCount } }",
            {"s": ["NEW"] * (limit + 1)},
            "$s",
        ),
        (
            "query ($s: [ClientStatus!]) { clients(filter: {status: $s}) { totalCount } }",
            {"s": ["ACTIVE"] * (limit + 1)},
            "$s",
        ),
    ]:
        [error] = gql(document, variables)["errors"]
        assert error["message"].startswith(f"Variable '{name}' has invalid value: the list must")
        assert error["extensions"]["code"] == "BAD_USER_INPUT"


CREATE_LEAD = """
mutation ($input: CreateLeadInput!) {
  createLead(input: $input) { lead { metadata } userErrors { code } }
}
"""


def test_lists_inside_json_values_are_not_list_arguments(
    server: LiveServer, gql: GraphQLClient
) -> None:
    # Metadata is a JSON scalar with its own size limit; its lists are its own business.
    metadata = {"scores": [0] * (server.settings.max_list_size + 1)}
    payload = gql.data(CREATE_LEAD, {"input": {"email": "m@example.com", "metadata": metadata}})
    assert payload["createLead"] == {"lead": {"metadata": metadata}, "userErrors": []}


def test_entities_without_credentials_are_refused_before_any_representation_is_read(
    server: LiveServer, anon: GraphQLClient, count_queries: Any
) -> None:
    reps = [{"__typename": "Lead", "id": f"x{n}"} for n in range(server.settings.max_list_size)]
    with count_queries() as counter:
        body = anon(ENTITIES, {"reps": reps}, status=401)
    assert counter.count == 0
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert error["path"] == ["_entities"]


# ------------------------------------------------------------------ settings


def test_the_limits_follow_the_settings(tmp_path: Path) -> None:
    server = ServerProcess(
        f"sqlite+aiosqlite:///{tmp_path / 'settings.db'}",
        tmp_path / "log",
        MAX_BODY_BYTES="4096",
        MAX_DOCUMENT_BYTES="300",
        MAX_QUERY_TOKENS="40",
        MAX_LIST_SIZE="3",
        DOCUMENT_CACHE_BYTES="0",
    )
    server.start()
    try:
        server.wait_for_readyz(200)
        with httpx.Client(base_url=server.url, timeout=30) as http:

            def error(payload: Any = None, content: str | None = None) -> dict[str, Any]:
                response = http.post("/graphql", json=payload, content=content, headers=JSON_BODY)
                [first, *_] = response.json()["errors"]
                return {"status": response.status_code, **first["extensions"]}

            assert error(content=padded_body(4097)) == {
                "status": 413,
                "code": "PAYLOAD_TOO_LARGE",
            }
            assert error({"query": padded_document(301)}) == {
                "status": 400,
                "code": "DOCUMENT_TOO_LARGE",
            }
            assert error({"query": "{ " + "a " * 40 + "}"}) == {
                "status": 200,
                "code": "GRAPHQL_PARSE_FAILED",
            }
            assert error({"query": literal_sources(4)}) == {
                "status": 200,
                "code": "BAD_USER_INPUT",
                "argument": "filter.source",
            }
            for _ in range(2):  # no cache: every request parses and validates
                response = http.post("/graphql", json={"query": padded_document(300)})
                assert without_cost(response.json()) == {"data": {"__typename": "Query"}}

        # A WebSocket message is bounded by the same limit.
        ws_url = server.url.replace("http", "ws", 1) + "/graphql"
        with connect(ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
            ws.send(json.dumps({"type": "connection_init", "payload": {"pad": "x" * 4096}}))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == CloseCode.MESSAGE_TOO_BIG
    finally:
        server.stop()


def test_a_request_line_or_headers_over_the_limit_are_refused(tmp_path: Path) -> None:
    # uvicorn's httptools parser keeps a request's line and headers whole, however long: they
    # are held to the body's limit too.
    server = ServerProcess(
        f"sqlite+aiosqlite:///{tmp_path / 'head.db'}", tmp_path / "log", MAX_BODY_BYTES="4096"
    )
    server.start()
    try:
        server.wait_for_readyz(200)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            long_query = {"query": "{ __typename }" + " " * 4096}
            assert http.get("/graphql", params=long_query).status_code == 400
            assert http.get("/healthz", headers={"X-Pad": "x" * 4096}).status_code == 400
            # Below it, and on a kept-alive connection, requests run as ever.
            for _ in range(2):
                query = {"query": "{ __typename }" + " " * 3000}
                assert without_cost(http.get("/graphql", params=query).json()) == {
                    "data": {"__typename": "Query"}
                }
                assert http.get("/healthz", headers={"X-Pad": "x" * 3000}).status_code == 200
    finally:
        server.stop()


# ------------------------------------------------------------------ memory, in a real process


def rss_mib(pid: int) -> float:
    """The process's resident memory (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


class HealthProbe(threading.Thread):
    """Asks /healthz over and over until stopped, keeping every answer's status."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.statuses: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.done.wait(0.05):
                self.statuses.append(http.get("/healthz").status_code)


def hostile_round(http: httpx.Client, salt: str) -> None:
    """Every kind of request that used to grow the server, each a few times, no credentials."""
    big = b'{"query": "{ __typename }", "variables": {"pad": "' + b"x" * 8_000_000 + b'"}}'
    for _ in range(3):
        assert http.post("/graphql", content=big, headers=JSON_BODY).status_code == 413
    chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
    assert http.post("/graphql", content=chunks, headers=JSON_BODY).status_code == 413

    reps = [{"__typename": "Lead", "id": f"x{n}"} for n in range(25_000)]
    for _ in range(3):
        body = http.post("/graphql", json={"query": ENTITIES, "variables": {"reps": reps}})
        assert body.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"

    for n in range(8):
        # Distinct documents of ~5,000 tokens, ~3 MB each once parsed (refused by validation
        # for their long list, but parsed and cached first).
        document = literal_sources(4_900) + f" # {salt} {n}"
        assert http.post("/graphql", json={"query": document}).status_code == 200
    for n in range(16):
        document = padded_document(99_000, f"{salt} {n} ")
        assert http.post("/graphql", json={"query": document}).status_code == 200
    for n in range(5):
        document = padded_document(500_000, f"{salt} {n} ")
        assert http.post("/graphql", json={"query": document}).status_code == 400


JSON_BODY = {"Content-Type": "application/json"}


def test_memory_stays_bounded_under_hostile_requests(tmp_path: Path) -> None:
    server = ServerProcess(f"sqlite+aiosqlite:///{tmp_path / 'hostile.db'}", tmp_path / "log")
    server.start()
    try:
        server.wait_for_readyz(200)
        assert server.process is not None
        pid = server.process.pid
        with httpx.Client(base_url=server.url, timeout=60) as http:
            # Every code path has run once, and the document cache is full.
            hostile_round(http, "warm-up")
            before = rss_mib(pid)

            probe = HealthProbe(server.url)
            probe.start()
            for round_ in range(2):
                hostile_round(http, f"round {round_}")
            probe.done.set()
            probe.join()
            after = rss_mib(pid)
    finally:
        server.stop()

    # The document cache (32 MiB by default, estimated) may still be filling after the
    # warm-up; before the limits, each round grew the server by 50-90 MiB and took ~13 s.
    assert after - before < 40, f"RSS grew from {before:.0f} to {after:.0f} MiB"
    assert probe.statuses and set(probe.statuses) == {200}
