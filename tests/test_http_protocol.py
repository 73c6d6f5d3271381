"""GraphQL over HTTP: graphql-http's server audit run against the live server, plus the
behaviours behind it that clients depend on most (status codes, media types, error bodies)."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import time
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, GraphQLClient, LiveServer, without_cost

AUDIT_DIR = ROOT / "tests" / "http_audit"
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
INTERNAL_MESSAGE = "Internal server error. Quote the requestId when reporting it."

SYNTAX_ERROR = {"query": "{ leads(first: 1) { totalCount }"}
VALIDATION_ERROR = {"query": "{ leads { noSuchField } }"}
COERCION_ERROR = {
    "query": "query ($n: Int) { leads(first: $n) { totalCount } }",
    "variables": {"n": "not a number"},
}
PRE_EXECUTION_ERRORS = pytest.mark.parametrize(
    "payload",
    [SYNTAX_ERROR, VALIDATION_ERROR, COERCION_ERROR],
    ids=["syntax", "validation", "variable-coercion"],
)


def media_type(response: httpx.Response) -> str:
    return response.headers["content-type"].split(";")[0].strip()


def post(
    http: httpx.Client, payload: Any, accept: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return http.post("/graphql", json=payload, headers={"Accept": accept, **(headers or {})})


# ------------------------------------------------------------------ the audit


def test_graphql_http_audit_passes_every_check(server: LiveServer) -> None:
    node = shutil.which("node")
    assert node, "node is not on PATH: install Node.js (>= 18) to run the graphql-http audit"
    assert (AUDIT_DIR / "node_modules" / "graphql-http").is_dir(), (
        f"graphql-http is not installed: run `npm ci` in {AUDIT_DIR} (or `make test`)"
    )
    run = subprocess.run(
        [node, str(AUDIT_DIR / "audit.mjs"), f"{server.url}/graphql"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, f"audit.mjs exited {run.returncode}:\n{run.stderr}"
    results = json.loads(run.stdout)
    assert len(results) > 50, f"expected the full audit, got {len(results)} results"
    failed = [r for r in results if r["status"] != "ok"]
    assert not failed, f"{len(failed)} of {len(results)} audits not ok:\n" + "\n".join(
        f"  {r['id']} [{r['status']}] {r['name']}: {r['reason']}" for r in failed
    )


# ------------------------------------------------------------------ methods


def test_a_mutation_over_get_is_refused_with_405_and_changes_nothing(
    http: httpx.Client, gql: GraphQLClient
) -> None:
    mutation = 'mutation { createLead(input: {email: "get@example.com"}) { __typename } }'
    response = http.get(
        "/graphql", params={"query": mutation}, headers={"Accept": GRAPHQL_RESPONSE_JSON}
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert media_type(response) == GRAPHQL_RESPONSE_JSON
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    assert gql.data("{ leads { totalCount } }")["leads"]["totalCount"] == 0


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE_JSON, JSON])
def test_other_methods_are_refused_with_405_in_json(
    http: httpx.Client, method: str, accept: str
) -> None:
    response = http.request(
        method, "/graphql", json={"query": "{ __typename }"}, headers={"Accept": accept}
    )
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    assert media_type(response) == accept
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "METHOD_NOT_ALLOWED"}
    assert error["message"].startswith(f"{method} is not supported on /graphql; use ")


def test_an_unknown_path_is_a_404_in_json(http: httpx.Client) -> None:
    response = http.get("/no-such-path")
    assert response.status_code == 404
    assert response.json() == {
        "errors": [{"message": "Not Found", "extensions": {"code": "NOT_FOUND"}}]
    }


def test_a_query_over_get_runs(http: httpx.Client) -> None:
    response = http.get("/graphql", params={"query": "{ leads { totalCount } }"})
    assert response.status_code == 200
    assert without_cost(response.json()) == {"data": {"leads": {"totalCount": 0}}}


# ------------------------------------------------------------------ errors before execution


@PRE_EXECUTION_ERRORS
def test_pre_execution_errors_are_4xx_without_data_for_graphql_response_json(
    http: httpx.Client, payload: dict[str, Any]
) -> None:
    response = post(http, payload, GRAPHQL_RESPONSE_JSON)
    assert 400 <= response.status_code < 500, response.text
    assert media_type(response) == GRAPHQL_RESPONSE_JSON
    body = response.json()
    assert body["errors"]
    assert "data" not in body


@PRE_EXECUTION_ERRORS
def test_pre_execution_errors_are_200_without_data_for_application_json(
    http: httpx.Client, payload: dict[str, Any]
) -> None:
    response = post(http, payload, JSON)
    assert response.status_code == 200, response.text
    assert media_type(response) == JSON
    body = response.json()
    assert body["errors"]
    assert "data" not in body


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE_JSON, JSON])
@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (
            SYNTAX_ERROR,
            {
                "message": "Syntax Error: Expected Name, found <EOF>.",
                "locations": [{"line": 1, "column": 33}],
                "extensions": {"code": "GRAPHQL_PARSE_FAILED"},
            },
        ),
        (
            {"query": "{ " + "__typename " * 5001 + "}"},
            {
                "message": "Syntax Error: Document contains more than 5000 tokens. "
                "Parsing aborted.",
                "locations": [{"line": 1, "column": 54992}],
                "extensions": {"code": "GRAPHQL_PARSE_FAILED"},
            },
        ),
        (
            {"query": '{ leads(filter: {search: "\\ud800"}) { totalCount } }'},
            {
                "message": "Syntax Error: Invalid Unicode escape sequence: '\\ud800'.",
                "locations": [{"line": 1, "column": 27}],
                "extensions": {"code": "GRAPHQL_PARSE_FAILED"},
            },
        ),
        (
            VALIDATION_ERROR,
            {
                "message": "Cannot query field 'noSuchField' on type 'LeadConnection'.",
                "locations": [{"line": 1, "column": 11}],
                "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
            },
        ),
        (
            COERCION_ERROR,
            {
                "message": "Variable '$n' has invalid value: "
                "Int cannot represent non-integer value: 'not a number'",
                "locations": [{"line": 1, "column": 8}],
                "extensions": {"code": "BAD_USER_INPUT"},
            },
        ),
    ],
    ids=["syntax", "too-many-tokens", "bad-escape", "validation", "variable-coercion"],
)
def test_pre_execution_errors_carry_apollo_error_codes(
    http: httpx.Client, accept: str, payload: dict[str, Any], error: dict[str, Any]
) -> None:
    response = post(http, payload, accept)
    # The status the GraphQL-over-HTTP spec asks for, whatever the code.
    assert response.status_code == (400 if accept == GRAPHQL_RESPONSE_JSON else 200)
    assert without_cost(response.json()) == {"errors": [error]}


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE_JSON, JSON])
def test_an_error_during_execution_is_200_with_data(http: httpx.Client, accept: str) -> None:
    response = post(http, {"query": "{ leads(first: 101) { totalCount } }"}, accept)
    assert response.status_code == 200, response.text
    assert media_type(response) == accept
    body = response.json()
    assert "data" in body
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("*/*", JSON),
        ("", JSON),
        ("text/html;q=0.9, */*;q=0.8", JSON),
        (f"{JSON}, {GRAPHQL_RESPONSE_JSON}", JSON),
        (f"{GRAPHQL_RESPONSE_JSON}, {JSON};q=0.9", GRAPHQL_RESPONSE_JSON),
        (f"{JSON};q=1, {GRAPHQL_RESPONSE_JSON};q=0.5", JSON),
        (f"{GRAPHQL_RESPONSE_JSON};q=0, {JSON}", JSON),
    ],
)
def test_the_accept_header_picks_the_preferred_media_type(
    http: httpx.Client, accept: str, expected: str
) -> None:
    response = post(http, VALIDATION_ERROR, accept)
    assert media_type(response) == expected
    assert response.status_code == (400 if expected == GRAPHQL_RESPONSE_JSON else 200)


# ------------------------------------------------------------------ malformed requests


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE_JSON, JSON])
@pytest.mark.parametrize(
    "content",
    [b'{"query": "{ leads { totalCount } }"', b"", b'"{ leads { totalCount } }"', b"null", b"42"],
    ids=["truncated", "empty", "string", "null", "number"],
)
def test_a_malformed_body_is_a_clean_400(http: httpx.Client, accept: str, content: bytes) -> None:
    response = http.post(
        "/graphql",
        content=content,
        headers={"Content-Type": "application/json", "Accept": accept},
    )
    assert response.status_code == 400, response.text
    assert media_type(response) == accept
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "Traceback" not in response.text


def test_a_post_without_a_query_is_a_400_graphql_error(http: httpx.Client) -> None:
    response = post(http, {"variables": {}}, JSON)
    assert response.status_code == 400
    assert without_cost(response.json()) == {
        "errors": [
            {
                "message": "No GraphQL query found in the request",
                "extensions": {"code": "BAD_REQUEST"},
            }
        ]
    }


# ------------------------------------------------------------------ operations

TWO_OPERATIONS = "query Count { leads { totalCount } } query Typename { __typename }"


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE_JSON, JSON])
def test_several_operations_without_an_operation_name_are_refused(
    http: httpx.Client, accept: str
) -> None:
    response = post(http, {"query": TWO_OPERATIONS}, accept)
    assert response.status_code == 400
    assert media_type(response) == accept
    assert without_cost(response.json()) == {
        "errors": [
            {
                "message": "Must provide operation name if query contains multiple operations.",
                "extensions": {"code": "BAD_REQUEST"},
            }
        ]
    }


def test_an_operation_name_picks_one_of_several_operations(http: httpx.Client) -> None:
    response = post(http, {"query": TWO_OPERATIONS, "operationName": "Typename"}, JSON)
    assert without_cost(response.json()) == {"data": {"__typename": "Query"}}
    response = http.get("/graphql", params={"query": TWO_OPERATIONS, "operationName": "Count"})
    assert without_cost(response.json()) == {"data": {"leads": {"totalCount": 0}}}


def test_one_operation_and_its_fragments_run_without_an_operation_name(
    http: httpx.Client,
) -> None:
    document = "query Named { ...F } fragment F on Query { __typename }"
    response = post(http, {"query": document}, JSON)
    assert without_cost(response.json()) == {"data": {"__typename": "Query"}}


# ------------------------------------------------------------------ unexpected exceptions


def assert_masked(response: httpx.Response) -> dict[str, Any]:
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    [error] = response.json()["errors"]
    assert error["message"] == INTERNAL_MESSAGE
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    return error


def test_an_exception_in_a_resolver_is_masked_and_tagged_with_the_request_id(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("db.repositories.leads.LeadRepository.page", boom)
    response = post(http, {"query": "{ leads { totalCount } }"}, GRAPHQL_RESPONSE_JSON)
    assert response.status_code == 200
    assert "data" in response.json()
    assert_masked(response)
    assert "secret internal detail" in caplog.text  # logged for us, not sent to the client


def test_an_exception_outside_graphql_is_a_masked_500_with_the_request_id(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("server.Context", boom)
    response = post(http, {"query": "{ __typename }"}, JSON, {"X-Request-ID": "trace-500"})
    assert response.status_code == 500
    assert assert_masked(response)["extensions"]["requestId"] == "trace-500"


def test_a_client_that_hangs_up_mid_body_is_no_error(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A request whose body never arrives in full (the client closed its connection): nothing
    to answer and nothing to report as an error, only a line at INFO."""
    caplog.set_level(logging.INFO, logger="leadgraph")
    url = httpx.URL(server.url)
    with socket.create_connection((url.host, url.port)) as conn:
        conn.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"query": "{ __'
        )
    deadline = time.monotonic() + 5
    while "client disconnected" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "client disconnected before its request was read" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
