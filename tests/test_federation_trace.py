"""Apollo federated tracing: a request with `apollo-federation-include-trace: ftv1` gets its
resolvers' timings and errors in `extensions.ftv1`, a base64 protobuf `Trace` (Apollo's
reports.proto), decoded here with the same descriptor; without the header nothing is recorded."""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from schema.extensions import INTERNAL_MESSAGE
from schema.tracing import FederatedTracing, Trace
from tests.conftest import OWNER_KEY, ROOT, LiveServer, without_cost
from tests.factories import create_leads, lead_values
from tests.processes import free_port

GATEWAY_DIR = ROOT / "tests" / "federation_gateway"

TRACE_HEADER = {"apollo-federation-include-trace": "ftv1"}
LEADS = """
{ leads(first: 2, orderBy: {field: EMAIL, direction: ASC}) { edges { node { id mail: email } } } }
"""
CREATED_BY = "{ leads(first: 1) { edges { node { email createdBy { __typename } } } } }"


def post(http: httpx.Client, query: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = http.post("/graphql", json={"query": query}, headers=headers or {})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def decode(body: dict[str, Any]) -> Any:
    return Trace.FromString(base64.b64decode(body["extensions"]["ftv1"], validate=True))


def child(node: Any, key: str | int) -> Any:
    """The one child of ``node`` for this response name or list index."""
    field = "index" if isinstance(key, int) else "response_name"
    [found] = [c for c in node.child if c.WhichOneof("id") == field and getattr(c, field) == key]
    return found


def at(trace: Any, *path: str | int) -> Any:
    node = trace.root
    for key in path:
        node = child(node, key)
    return node


def field_nodes(node: Any) -> list[Any]:
    """Every node below ``node`` that stands for a field (index nodes have no type)."""
    found = []
    for c in node.child:
        if c.type:
            found.append(c)
        found += field_nodes(c)
    return found


def test_without_the_header_the_response_has_no_trace(http: httpx.Client) -> None:
    body = post(http, LEADS)
    assert "extensions" not in without_cost(body)


def test_another_header_value_gets_no_trace(http: httpx.Client) -> None:
    body = post(http, LEADS, {"apollo-federation-include-trace": "ftv2"})
    assert "extensions" not in without_cost(body)


def test_without_the_header_no_resolver_is_wrapped(
    http: httpx.Client, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tracer wraps resolvers only for a request that asks for a trace, so that the others
    keep the direct reading of plain fields."""
    create_leads(server, lead_values(), lead_values())
    calls: list[str] = []
    original = FederatedTracing.resolve

    def counting(
        self: FederatedTracing, _next: Any, root: Any, info: Any, *a: Any, **k: Any
    ) -> Any:
        calls.append(info.field_name)
        return original(self, _next, root, info, *a, **k)

    monkeypatch.setattr(FederatedTracing, "resolve", counting)
    untraced = post(http, LEADS)
    assert calls == []
    traced = post(http, LEADS, TRACE_HEADER)
    assert traced["data"] == untraced["data"]
    assert sorted(set(calls)) == ["edges", "email", "id", "leads", "node"]


def test_the_trace_has_its_wall_clock_times_and_duration(http: httpx.Client) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    trace = decode(post(http, LEADS, TRACE_HEADER))
    after = datetime.now(UTC)

    start = trace.start_time.ToDatetime(tzinfo=UTC)
    end = trace.end_time.ToDatetime(tzinfo=UTC)
    assert before <= start <= end <= after
    assert trace.duration_ns > 0
    assert not trace.root.WhichOneof("id")  # the root stands for the operation, not a field


def test_every_field_has_a_node_with_its_name_types_and_times(
    http: httpx.Client, server: LiveServer
) -> None:
    create_leads(server, lead_values(email="a@example.com"), lead_values(email="b@example.com"))
    body = post(http, LEADS, TRACE_HEADER)
    trace = decode(body)

    leads = at(trace, "leads")
    assert (leads.type, leads.parent_type, leads.original_field_name) == (
        "LeadConnection!",
        "Query",
        "",
    )
    edges = child(leads, "edges")
    assert (edges.type, edges.parent_type) == ("[LeadEdge!]!", "LeadConnection")
    assert [c.index for c in edges.child] == [0, 1]  # one index node per item
    for index, edge in enumerate(body["data"]["leads"]["edges"]):
        item = child(edges, index)
        assert not item.type  # an index node carries no field
        node = child(item, "node")
        assert (node.type, node.parent_type) == ("Lead!", "LeadEdge")
        assert sorted(c.response_name for c in node.child) == ["id", "mail"]
        mail = child(node, "mail")
        assert (mail.original_field_name, mail.type, mail.parent_type) == (
            "email",
            "String!",
            "Lead",
        )
        assert edge["node"]["mail"] in ("a@example.com", "b@example.com")

    nodes = field_nodes(trace.root)
    assert len(nodes) == 1 + 1 + 2 * (1 + 2)  # leads, edges, and per item: node, id, mail
    for node in nodes:
        assert 0 < node.start_time <= node.end_time <= trace.duration_ns
        # A field resolves after the field it belongs to has resolved.
        assert all(below.start_time >= node.end_time for below in field_nodes(node))


def test_an_error_is_on_its_fields_node_as_in_the_response(http: httpx.Client) -> None:
    body = post(http, '{ me { role } missing: lead(id: "not-an-id") { id } }', TRACE_HEADER)
    trace = decode(body)
    [response_error] = body["errors"]

    node = at(trace, "missing")
    assert (node.original_field_name, node.type, node.parent_type) == ("lead", "Lead", "Query")
    [error] = node.error
    assert error.message == response_error["message"] == "Argument 'id' is not a valid ID."
    assert [(loc.line, loc.column) for loc in error.location] == [
        (loc["line"], loc["column"]) for loc in response_error["locations"]
    ]
    assert json.loads(error.json) == response_error
    assert response_error["extensions"]["code"] == "BAD_USER_INPUT"
    assert not at(trace, "me").error
    assert not trace.root.error


def test_an_unexpected_error_is_masked_in_the_trace_as_in_the_response(
    http: httpx.Client, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_leads(server, lead_values())

    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("schema.auth.actor", boom)
    response = http.post("/graphql", json={"query": CREATED_BY}, headers=TRACE_HEADER)
    body = response.json()
    trace = decode(body)

    [response_error] = body["errors"]
    assert response_error["path"] == ["leads", "edges", 0, "node", "createdBy"]
    node = at(trace, "leads", "edges", 0, "node", "createdBy")
    assert (node.type, node.parent_type) == ("Actor", "Lead")
    [error] = node.error
    assert error.message == INTERNAL_MESSAGE
    assert json.loads(error.json)["extensions"] == {
        "code": "INTERNAL_SERVER_ERROR",
        "requestId": response.headers["x-request-id"],
    }
    assert b"secret internal detail" not in base64.b64decode(body["extensions"]["ftv1"])


def test_an_error_before_execution_is_on_the_root_node(http: httpx.Client) -> None:
    body = post(http, "{ leads { nope } }", TRACE_HEADER)
    trace = decode(body)
    [response_error] = body["errors"]
    assert "data" not in body
    [error] = trace.root.error
    assert error.message == response_error["message"]
    assert "nope" in error.message
    assert list(trace.root.child) == []


# ------------------------------------------------------------------ through an Apollo Gateway


@pytest.fixture(scope="module")
def gateway(server: LiveServer) -> Iterator[str]:
    """An Apollo Gateway (tests/federation_gateway) composed from the live server, forwarding
    Authorization and asking for traces; the URL it serves."""
    node = shutil.which("node")
    assert node, "node is not on PATH: install Node.js (>= 20) to run the gateway test"
    assert (GATEWAY_DIR / "node_modules" / "@apollo" / "gateway").is_dir(), (
        f"{GATEWAY_DIR}/node_modules is missing: run `make test` (it runs npm ci there)"
    )
    env = {
        **os.environ,
        "SUBGRAPH_URL": f"{server.url}/graphql",
        "PORT": str(free_port()),
        "APOLLO_TELEMETRY_DISABLED": "1",  # the gateway would otherwise export metrics to Apollo
    }
    process = subprocess.Popen(
        [node, str(GATEWAY_DIR / "gateway.mjs")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        line = process.stdout.readline() if ready else ""
        assert line.startswith("ready "), (
            f"the gateway did not start: {line}{process.stdout.read()}"
        )
        yield line.split()[1]
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_a_gateway_decodes_the_trace_with_apollos_own_protobuf_code(
    gateway: str, http: httpx.Client, server: LiveServer
) -> None:
    """Given the gateway, when a client queries it with its credential, then the gateway
    forwards Authorization, asks for a trace, and reads every field's node and the error."""
    create_leads(server, lead_values(email="a@example.com"))
    response = httpx.post(
        gateway,
        json={"query": '{ leads(first: 1) { edges { node { email } } } x: lead(id: "no") { id } }'},
        headers={"Authorization": f"Bearer {OWNER_KEY}"},
        timeout=30,
    )
    body = response.json()
    assert body["data"] == {"leads": {"edges": [{"node": {"email": "a@example.com"}}]}, "x": None}
    subgraph = body["extensions"]["subgraphTrace"]
    assert (subgraph["serviceName"], subgraph["traceParsingFailed"]) == ("leadgraph", False)

    trace = subgraph["trace"]  # Apollo's decoding, with its names for the fields
    assert int(trace["durationNs"]) > 0
    assert trace["startTime"]["seconds"] <= trace["endTime"]["seconds"]
    leads, lead = trace["root"]["child"]
    assert (leads["responseName"], leads["type"], leads["parentType"]) == (
        "leads",
        "LeadConnection!",
        "Query",
    )
    [edges] = leads["child"]
    [item] = edges["child"]
    assert item["index"] == 0
    [node] = item["child"]
    [email] = node["child"]
    assert (email["responseName"], email["type"], email["parentType"]) == (
        "email",
        "String!",
        "Lead",
    )
    assert int(email["startTime"]) <= int(email["endTime"])
    assert (lead["responseName"], lead["originalFieldName"]) == ("x", "lead")
    [error] = lead["error"]
    assert error["message"] == "Argument 'id' is not a valid ID."
    assert json.loads(error["json"])["extensions"]["code"] == "BAD_USER_INPUT"


def test_a_gateway_without_the_clients_credential_gets_nothing(gateway: str) -> None:
    response = httpx.post(gateway, json={"query": "{ me { role } }"}, timeout=30)
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
