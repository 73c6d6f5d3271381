"""GraphQL over WebSocket (graphql-transport-ws): the same error policy as over HTTP (codes,
masking, requestId), credentials in connection_init's payload or on the upgrade, a Context per
operation, and the legacy graphql-ws subprotocol refused at the handshake. Checked over raw
sockets and with the graphql-ws npm client."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import websockets

import server as server_module
from tests.conftest import OWNER_KEY, ROOT, GraphQLClient, LiveServer, without_cost
from tests.factories import create_leads, lead_values

CLIENT_DIR = ROOT / "tests" / "ws_client"
INTERNAL_MESSAGE = "Internal server error. Quote the requestId when reporting it."
SUBPROTOCOL_REFUSED = (
    "This endpoint speaks the graphql-transport-ws WebSocket subprotocol (the graphql-ws "
    "library's): offer it in Sec-WebSocket-Protocol. The legacy graphql-ws subprotocol "
    "(subscriptions-transport-ws) is not supported."
)
COUNT = "{ leads { totalCount } }"
LEAD = "query ($id: ID!) { lead(id: $id) { email } }"
UPDATE = """
mutation ($id: ID!, $input: UpdateLeadInput!) {
  updateLead(id: $id, input: $input) { userErrors { field } }
}
"""
SERVICE = "{ _service { sdl } }"
CREATE_KEY = """
mutation ($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id } } }
"""
REVOKE_KEY = "mutation ($id: ID!) { revokeApiKey(id: $id) { userErrors { field } } }"
SIGN_IN_FIRST = "Sign in first: send 'Authorization: Bearer <session token or API key>'."


def ws_url(server: LiveServer) -> str:
    return server.url.replace("http://", "ws://") + "/graphql"


Outcome = list[dict[str, Any]] | tuple[int | None, str]


def talk(
    server: LiveServer,
    operations: list[dict[str, Any]],
    *,
    payload: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    between: Callable[[int], None] = lambda n: None,
) -> Outcome:
    """Opens a graphql-transport-ws connection, sends connection_init (with ``payload``), runs
    each operation in turn (calling ``between(n)`` after the n-th) and returns every message it got
    back (results without ``extensions.cost``: ``without_cost``); or, when the server closes the
    connection instead, its (code, reason)."""

    async def run() -> Outcome:
        async with websockets.connect(
            ws_url(server),
            subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
            additional_headers=headers or {},
        ) as ws:
            init: dict[str, Any] = {"type": "connection_init"}
            if payload is not None:
                init["payload"] = payload
            try:
                await ws.send(json.dumps(init))
                assert json.loads(await ws.recv()) == {"type": "connection_ack"}
                answers = []
                for n, operation in enumerate(operations):
                    await ws.send(
                        json.dumps({"type": "subscribe", "id": str(n), "payload": operation})
                    )
                    messages = []
                    while not messages or messages[-1]["type"] == "next":
                        message = json.loads(await ws.recv())
                        assert message["id"] == str(n)
                        if message["type"] == "next":  # each result's cost: checked, left out
                            message["payload"] = without_cost(message["payload"])
                        messages.append(message)
                    answers.append(messages)
                    await asyncio.to_thread(between, n)
            except websockets.ConnectionClosed:
                return ws.close_code, ws.close_reason or ""
            return [message for messages in answers for message in messages]

    return asyncio.run(run())


def results(outcome: Outcome) -> list[dict[str, Any]]:
    """The payload of each next or error message, in order."""
    assert isinstance(outcome, list), f"the server closed the connection: {outcome}"
    return [m["payload"] for m in outcome if m["type"] in ("next", "error")]


def node_client(server: LiveServer, spec: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "node is not on PATH: install Node.js (>= 18) to run the graphql-ws client"
    assert (CLIENT_DIR / "node_modules" / "graphql-ws").is_dir(), (
        f"graphql-ws is not installed: run `npm ci` in {CLIENT_DIR} (or `make test`)"
    )
    run = subprocess.run(
        [node, str(CLIENT_DIR / "client.mjs"), ws_url(server), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, f"client.mjs exited {run.returncode}:\n{run.stderr}"
    output: dict[str, Any] = json.loads(run.stdout)
    for result in output.get("results", []):  # each result's cost: checked, left out
        if isinstance(result, dict) and isinstance(result.get("next"), list):
            result["next"] = [without_cost(payload) for payload in result["next"]]
    return output


@pytest.fixture
def boom(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes the leads field raise an exception nobody expects."""

    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("db.repositories.leads.LeadRepository.page", fail)


BEARER = {"Authorization": f"Bearer {OWNER_KEY}"}


# ------------------------------------------------------------------ the error policy


def test_a_query_over_a_websocket_answers_as_over_http(server: LiveServer) -> None:
    create_leads(server, lead_values())
    outcome = talk(server, [{"query": COUNT}], headers=BEARER)
    assert outcome == [
        {"id": "0", "type": "next", "payload": {"data": {"leads": {"totalCount": 1}}}},
        {"id": "0", "type": "complete"},
    ]


def test_an_error_result_over_a_websocket_carries_its_code(server: LiveServer) -> None:
    [result] = results(talk(server, [{"query": COUNT}]))
    assert result == {
        "data": None,
        "errors": [
            {
                "message": SIGN_IN_FIRST,
                "locations": [{"line": 1, "column": 3}],
                "path": ["leads"],
                "extensions": {"code": "UNAUTHENTICATED"},
            }
        ],
    }


def test_a_validation_error_over_a_websocket_carries_its_code(server: LiveServer) -> None:
    [errors] = results(talk(server, [{"query": "{ leads { noSuchField } }"}], headers=BEARER))
    assert errors == [
        {
            "message": "Cannot query field 'noSuchField' on type 'LeadConnection'.",
            "locations": [{"line": 1, "column": 11}],
            "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
        }
    ]


def test_an_unexpected_exception_over_a_websocket_is_masked_and_logged_with_a_request_id(
    server: LiveServer, boom: None, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {**BEARER, "X-Request-ID": "ws-trace"}
    with caplog.at_level(logging.ERROR, logger="leadgraph.errors"):
        first, second = results(talk(server, [{"query": COUNT}] * 2, headers=headers))

    assert "secret internal detail" not in json.dumps([first, second])
    [error] = first["errors"]
    assert error["message"] == INTERNAL_MESSAGE
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    # The connection's id, then one of each operation's own.
    request_id = error["extensions"]["requestId"]
    assert request_id.startswith("ws-trace.")
    assert second["errors"][0]["extensions"]["requestId"] not in (request_id, "ws-trace")
    [record, _] = [r for r in caplog.records if r.name == "leadgraph.errors"]
    assert request_id in record.getMessage()
    assert "secret internal detail" in caplog.text  # logged for us, not sent to the client


def test_each_operation_of_a_connection_reads_afresh(
    server: LiveServer, gql: GraphQLClient
) -> None:
    """A connection's operations do not share DataLoader caches: each sees the latest rows."""
    [lead_id] = create_leads(server, lead_values(email="old@example.com"))

    def update(n: int) -> None:
        if n == 0:
            updated = gql(UPDATE, {"id": lead_id, "input": {"email": "new@example.com"}})
            assert updated == {"data": {"updateLead": {"userErrors": []}}}

    query = {"query": LEAD, "variables": {"id": lead_id}}
    outcome = talk(server, [query, query], headers=BEARER, between=update)
    assert results(outcome) == [
        {"data": {"lead": {"email": "old@example.com"}}},
        {"data": {"lead": {"email": "new@example.com"}}},
    ]


# ------------------------------------------------------------------ credentials


@pytest.mark.parametrize("key", ["Authorization", "authorization"])
def test_connection_init_payload_credentials_authenticate_the_operations(
    server: LiveServer, key: str
) -> None:
    create_leads(server, lead_values())
    outcome = talk(server, [{"query": COUNT}], payload={key: f"Bearer {OWNER_KEY}"})
    assert results(outcome) == [{"data": {"leads": {"totalCount": 1}}}]


@pytest.mark.parametrize(
    "payload",
    [
        {"Authorization": "Bearer lgk_not-a-key-of-ours"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": 42},
        {"Authorization": f"Bearer {OWNER_KEY}", "authorization": "Bearer lgk_other"},
    ],
    ids=["unknown-key", "not-bearer", "not-a-string", "two-credentials"],
)
def test_bad_connection_init_credentials_close_the_connection_as_forbidden(
    server: LiveServer, payload: dict[str, Any]
) -> None:
    assert talk(server, [{"query": COUNT}], payload=payload) == (4403, "Forbidden")


def test_a_bad_credential_on_the_upgrade_closes_the_connection_as_forbidden(
    server: LiveServer,
) -> None:
    headers = {"Authorization": "Bearer lgk_not-a-key-of-ours"}
    assert talk(server, [{"query": COUNT}], headers=headers) == (4403, "Forbidden")


def test_the_payload_credential_takes_the_place_of_the_upgrade_header(server: LiveServer) -> None:
    bad = {"Authorization": "Bearer lgk_not-a-key-of-ours"}
    outcome = talk(server, [{"query": COUNT}], headers=bad, payload=BEARER)
    assert results(outcome) == [{"data": {"leads": {"totalCount": 0}}}]


@pytest.mark.parametrize("where", ["payload", "upgrade"])
def test_a_failure_while_checking_credentials_closes_the_connection_with_a_request_id(
    server: LiveServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    where: str,
) -> None:
    authenticate = server_module.authenticate

    async def fail(db: Any, settings: Any, authorization: str | None) -> Any:
        if authorization:
            raise RuntimeError("secret internal detail")
        return await authenticate(db, settings, authorization)

    monkeypatch.setattr(server_module, "authenticate", fail)
    headers = {"X-Request-ID": "ws-500", **(BEARER if where == "upgrade" else {})}
    payload = BEARER if where == "payload" else None
    outcome = talk(server, [{"query": COUNT}], payload=payload, headers=headers)
    assert outcome == (
        4500,
        "Internal server error. Quote the requestId when reporting it: ws-500",
    )
    assert "secret internal detail" in caplog.text


def test_a_key_revoked_during_a_connection_stops_working_for_its_next_operation(
    server: LiveServer, gql: GraphQLClient
) -> None:
    created = gql.data(CREATE_KEY, {"input": {"name": "socket", "role": "VIEWER"}})["createApiKey"]

    def revoke(n: int) -> None:
        if n == 0:
            revoked = gql.data(REVOKE_KEY, {"id": created["apiKey"]["id"]})["revokeApiKey"]
            assert revoked["userErrors"] == []

    payload = {"Authorization": f"Bearer {created['secret']}"}
    first, second = results(talk(server, [{"query": COUNT}] * 2, payload=payload, between=revoke))
    assert first == {"data": {"leads": {"totalCount": 0}}}
    assert second["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}


def test_a_failure_while_checking_an_operations_credential_is_masked_with_a_request_id(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    # The connection's check passes (server.authenticate); the operation's fails.
    monkeypatch.setattr("schema.context.authenticate", fail)
    [result] = results(talk(server, [{"query": COUNT}], payload=BEARER))
    [error] = result["errors"]
    assert error["message"] == INTERNAL_MESSAGE
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["requestId"] in caplog.text
    assert "secret internal detail" in caplog.text
    assert "secret internal detail" not in json.dumps(result)


# ------------------------------------------------------------------ the legacy subprotocol


@pytest.mark.parametrize("offered", [["graphql-ws"], []], ids=["legacy-graphql-ws", "none"])
def test_a_handshake_without_graphql_transport_ws_is_refused_with_a_reason(
    server: LiveServer, offered: list[str]
) -> None:
    async def run() -> websockets.InvalidStatus:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(
                ws_url(server),
                # None: no Sec-WebSocket-Protocol header at all (an empty one is malformed).
                subprotocols=[websockets.Subprotocol(p) for p in offered] or None,
            )
        return refused.value

    response = asyncio.run(run()).response
    assert response.status_code == 400
    assert json.loads(response.body) == {
        "errors": [{"message": SUBPROTOCOL_REFUSED, "extensions": {"code": "BAD_REQUEST"}}]
    }


# ------------------------------------------------------------------ _service


def test_service_sdl_is_refused_to_anonymous_callers_when_introspection_is_off(
    server: LiveServer, anon: GraphQLClient, gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "type Query" in anon.data(SERVICE)["_service"]["sdl"]

    monkeypatch.setattr(server.settings, "anonymous_introspection", False)

    assert anon(SERVICE) == {
        "errors": [
            {
                "message": "GraphQL introspection has been disabled, but the requested query "
                "contained the field '_service'.",
                "locations": [{"line": 1, "column": 3}],
                "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
            }
        ]
    }
    [over_ws] = results(talk(server, [{"query": SERVICE}]))
    assert over_ws[0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "type Query" in gql.data(SERVICE)["_service"]["sdl"]
    assert (
        "type Query"
        in results(talk(server, [{"query": SERVICE}], payload=BEARER))[0]["data"]["_service"]["sdl"]
    )


# ------------------------------------------------------------------ the graphql-ws client


def test_the_graphql_ws_client_gets_data_codes_and_masked_errors(
    server: LiveServer, boom: None
) -> None:
    output = node_client(
        server,
        {
            "connectionParams": BEARER,
            "operations": [
                {"query": "{ __typename }"},
                {"query": "{ leads { noSuchField } }"},
                {"query": COUNT},
            ],
        },
    )
    typename, invalid, masked = output["results"]
    assert typename == {"next": [{"data": {"__typename": "Query"}}], "error": None}
    assert invalid["error"]["graphqlErrors"][0]["extensions"] == {
        "code": "GRAPHQL_VALIDATION_FAILED"
    }
    [error] = masked["next"][0]["errors"]
    assert error["message"] == INTERNAL_MESSAGE
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["requestId"]
    assert output["closed"]["code"] == 1000


def test_the_graphql_ws_client_authenticates_with_connection_params(server: LiveServer) -> None:
    create_leads(server, lead_values())
    output = node_client(
        server,
        {
            "connectionParams": {"authorization": f"Bearer {OWNER_KEY}"},
            "operations": [{"query": COUNT}],
        },
    )
    assert output["results"] == [{"next": [{"data": {"leads": {"totalCount": 1}}}], "error": None}]


def test_the_graphql_ws_client_is_refused_a_bad_token(server: LiveServer) -> None:
    output = node_client(
        server,
        {
            "connectionParams": {"Authorization": "Bearer lgk_not-a-key-of-ours"},
            "operations": [{"query": COUNT}],
        },
    )
    assert output["results"] == [
        {"next": [], "error": {"close": {"code": 4403, "reason": "Forbidden"}}}
    ]


def test_a_legacy_graphql_ws_handshake_from_node_is_refused_with_a_reason(
    server: LiveServer,
) -> None:
    output = node_client(server, {"handshake": "graphql-ws"})
    assert output["status"] == 400
    assert json.loads(output["body"])["errors"][0]["message"] == SUBPROTOCOL_REFUSED
    assert node_client(server, {"handshake": "graphql-transport-ws"}) == {
        "opened": "graphql-transport-ws"
    }
