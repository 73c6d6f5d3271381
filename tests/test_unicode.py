"""Text that is not Unicode never reaches a resolver: JSON may escape half of a UTF-16
surrogate pair on its own ("\\ud800"), and bytes may not be UTF-8 at all. Either is refused
where the request is decoded, with a 400 that says where, and nothing changes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import OWNER_KEY, GraphQLClient, LiveServer

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
SEARCH = "query ($s: String) { leads(filter: {search: $s}) { totalCount } }"
CREATE_LEAD = """
mutation ($input: CreateLeadInput!) {
  createLead(input: $input) { lead { email notes company metadata } userErrors { field code } }
}
"""
SIGN_UP = """
mutation ($input: SignUpInput!) { signUp(input: $input) { userErrors { field code } } }
"""
COUNT = "{ leads { totalCount } }"


def unpaired(where: str, surrogate: str = "\\ud800", key: bool = False) -> str:
    return (
        f'Invalid text {"in the key" if key else "at"} {where}: "{surrogate}" is an unpaired '
        "UTF-16 surrogate, which is not Unicode; send the character itself or both halves of "
        "its surrogate pair."
    )


def post_raw(http: httpx.Client, body: bytes, accept: str = JSON) -> httpx.Response:
    return http.post("/graphql", content=body, headers={"Content-Type": JSON, "Accept": accept})


def assert_refused(response: httpx.Response, message: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json() == {
        "errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]
    }


def as_json(payload: dict[str, Any]) -> bytes:
    """The payload as JSON text; json.dumps escapes a lone surrogate as \\udXXX, as a browser's
    JSON.stringify does."""
    return json.dumps(payload).encode()


# ------------------------------------------------------------------ lone surrogates


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE_JSON, JSON])
def test_a_lone_surrogate_in_variables_is_a_400_naming_the_variable(
    http: httpx.Client, accept: str
) -> None:
    body = (
        b'{"query":"query($s:String){leads(filter:{search:$s}){totalCount}}",'
        b'"variables":{"s":"\\ud800"}}'
    )
    response = post_raw(http, body, accept)
    assert response.headers["content-type"].startswith(accept)
    assert_refused(response, unpaired("variables.s"))


@pytest.mark.parametrize(
    ("input_", "message"),
    [
        ({"email": "ann\udc00@example.com"}, unpaired("variables.input.email", "\\udc00")),
        ({"email": "ann@example.com", "notes": "a\ud800b"}, unpaired("variables.input.notes")),
        (
            {"email": "ann@example.com", "company": "\udbff"},
            unpaired("variables.input.company", "\\udbff"),
        ),
        (
            {"email": "ann@example.com", "metadata": {"tags": ["ok", "\ud800"]}},
            unpaired("variables.input.metadata.tags[1]"),
        ),
        (
            {"email": "ann@example.com", "metadata": {"k\ud800": 1}},
            unpaired('variables.input.metadata["k\\ud800"]', key=True),
        ),
    ],
    ids=["email", "notes", "company", "metadata-value", "metadata-key"],
)
def test_a_lone_surrogate_in_a_mutation_input_is_a_400_and_writes_nothing(
    http: httpx.Client, gql: GraphQLClient, input_: dict[str, Any], message: str
) -> None:
    response = post_raw(http, as_json({"query": CREATE_LEAD, "variables": {"input": input_}}))
    assert_refused(response, message)
    assert gql.data(COUNT) == {"leads": {"totalCount": 0}}


def test_a_lone_surrogate_in_sign_up_is_a_400_and_creates_no_account(
    http: httpx.Client, anon: GraphQLClient
) -> None:
    signup = {
        "email": "ada@example.com",
        "password": "correct horse \ud800",
        "name": "Ada",
        "workspaceName": "Engines",
    }
    response = http.post(
        "/graphql",
        content=as_json({"query": SIGN_UP, "variables": {"input": signup}}),
        headers={"Content-Type": JSON, "Authorization": ""},
    )
    assert_refused(response, unpaired("variables.input.password"))
    # Nothing was kept (no account, no code cooldown): the corrected sign-up goes through.
    signup["password"] = "correct horse battery"
    assert anon.data(SIGN_UP, {"input": signup}) == {"signUp": {"userErrors": []}}


def test_a_lone_surrogate_in_the_query_text_is_a_400(http: httpx.Client) -> None:
    response = post_raw(
        http, as_json({"query": '{ leads(filter: {search: "\ud800"}) { totalCount } }'})
    )
    assert_refused(response, unpaired("query"))


def test_a_lone_surrogate_in_extensions_or_the_operation_name_is_a_400(http: httpx.Client) -> None:
    response = post_raw(http, as_json({"query": COUNT, "extensions": {"trace": "\udfff"}}))
    assert_refused(response, unpaired("extensions.trace", "\\udfff"))
    response = post_raw(http, as_json({"query": COUNT, "operationName": "\ud800"}))
    assert_refused(response, unpaired("operationName"))


def test_a_lone_surrogate_in_get_variables_is_a_400_naming_the_parameter(
    http: httpx.Client,
) -> None:
    response = http.get("/graphql", params={"query": SEARCH, "variables": '{"s": "\\ud800"}'})
    assert_refused(response, unpaired("variables.s"))


def test_a_surrogate_pair_is_one_character_and_is_stored(
    gql: GraphQLClient, http: httpx.Client
) -> None:
    body = as_json(
        {
            "query": CREATE_LEAD,
            "variables": {"input": {"email": "ann@example.com", "company": "Smile \U0001f600"}},
        }
    )
    assert b"\\ud83d\\ude00" in body  # the pair, escaped
    response = post_raw(http, body)
    assert response.status_code == 200
    assert response.json()["data"]["createLead"]["lead"]["company"] == "Smile \U0001f600"
    assert gql.data(SEARCH, {"s": "\U0001f600"}) == {"leads": {"totalCount": 1}}


# ------------------------------------------------------------------ bytes that are not UTF-8


@pytest.mark.parametrize(
    "text",
    [b"\xff", b"\xed\xa0\x80", b"\xc3"],
    ids=["not-utf-8", "encoded-surrogate", "truncated-sequence"],
)
def test_a_body_that_is_not_utf8_is_a_400(
    http: httpx.Client, gql: GraphQLClient, text: bytes
) -> None:
    body = b'{"query":"' + CREATE_LEAD.replace("\n", " ").encode() + b'",'
    body += b'"variables":{"input":{"email":"ann@example.com","notes":"' + text + b'"}}}'
    response = post_raw(http, body)
    at = body.index(text)
    assert_refused(response, f"The request is not valid UTF-8 (at byte {at}); send JSON as UTF-8.")
    assert gql.data(COUNT) == {"leads": {"totalCount": 0}}


def test_json_nested_past_the_parser_depth_is_a_400(http: httpx.Client) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    response = post_raw(http, b'{"query":"{ __typename }","variables":{"a":' + deep + b"}}")
    assert_refused(response, "The JSON is nested too deeply.")


# ------------------------------------------------------------------ WebSocket


def test_a_lone_surrogate_over_a_websocket_closes_it_as_invalid_json(
    server: LiveServer, gql: GraphQLClient
) -> None:
    async def talk() -> tuple[int | None, str | None]:
        url = server.url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(
            url,
            subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
            additional_headers={"Authorization": f"Bearer {OWNER_KEY}"},
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await ws.recv()) == {"type": "connection_ack"}
            payload = {
                "query": CREATE_LEAD,
                "variables": {"input": {"email": "ann@example.com", "notes": "\ud800"}},
            }
            await ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": payload}))
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return ws.close_code, ws.close_reason

    code, reason = asyncio.run(talk())
    assert (code, reason) == (4400, "WebSocket message must be valid JSON")
    assert gql.data(COUNT) == {"leads": {"totalCount": 0}}
