"""The NUL character (U+0000) is Unicode, but PostgreSQL cannot store it in text or JSONB while
SQLite can: both engines refuse it the same way, wherever text enters a request (variables or
literals, every argument of every field), naming where it is, and nothing changes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import GraphQLClient, without_cost

COUNT = "{ leads { totalCount } clients { totalCount } }"
CREATE_LEAD = """
mutation ($input: CreateLeadInput!) {
  createLead(input: $input) { lead { email } userErrors { field code } }
}
"""
SEARCH = "query ($filter: LeadFilter) { leads(filter: $filter) { totalCount } }"
SIGN_UP = """
mutation ($input: SignUpInput!) { signUp(input: $input) { userErrors { field code } } }
"""


def nul_at(where: str, key: bool = False) -> str:
    return (
        f"Invalid text {'in the key' if key else 'at'} {where}: "
        '"\\u0000" (NUL) cannot be stored; leave it out.'
    )


def refused(message: str, **location: int) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "extensions": {"code": "BAD_USER_INPUT"}}
    if location:
        error = {"message": message, "locations": [location], **error}
    return {"errors": [error]}


def assert_nothing_written(gql: GraphQLClient) -> None:
    assert gql.data(COUNT) == {"leads": {"totalCount": 0}, "clients": {"totalCount": 0}}


@pytest.mark.parametrize(
    ("input_", "where", "key"),
    [
        ({"email": "ann@example.com", "firstName": "A\x00nn"}, "input.firstName", False),
        ({"email": "ann\x00@example.com"}, "input.email", False),
        ({"email": "ann@example.com", "notes": "\x00"}, "input.notes", False),
        (
            {"email": "ann@example.com", "metadata": {"tags": ["ok", "b\x00"]}},
            "input.metadata.tags[1]",
            False,
        ),
        (
            {"email": "ann@example.com", "metadata": {"k\x00": 1}},
            'input.metadata["k\\u0000"]',
            True,
        ),
    ],
    ids=["name", "email", "notes", "metadata-value", "metadata-key"],
)
def test_nul_in_mutation_variables_is_refused_and_writes_nothing(
    gql: GraphQLClient, input_: dict[str, Any], where: str, key: bool
) -> None:
    assert gql(CREATE_LEAD, {"input": input_}) == refused(nul_at(f"variables.{where}", key))
    assert_nothing_written(gql)


@pytest.mark.parametrize(
    ("filter_", "where"),
    [
        ({"search": "an\x00n"}, "variables.filter.search"),
        ({"source": ["web", "ads\x00"]}, "variables.filter.source[1]"),
        ({"city": "\x00"}, "variables.filter.city"),
    ],
)
def test_nul_in_a_filter_is_refused(
    gql: GraphQLClient, filter_: dict[str, Any], where: str
) -> None:
    assert gql(SEARCH, {"filter": filter_}) == refused(nul_at(where))


def test_nul_in_a_cursor_argument_is_refused(gql: GraphQLClient) -> None:
    body = gql("query ($a: String) { clients(after: $a) { totalCount } }", {"a": "x\x00"})
    assert body == refused(nul_at("variables.a"))


@pytest.mark.parametrize(
    ("document", "where", "column"),
    [
        (
            '{ leads(filter: {search: "a\\u0000"}) { totalCount } }',
            "leads(filter.search)",
            26,
        ),
        (
            '{ leads(filter: {source: ["web", "x\\u{0}"]}) { totalCount } }',
            "leads(filter.source[1])",
            34,
        ),
        (
            'mutation { createLead(input: {email: "a@b.co", metadata: {k: ["\\u0000"]}}) '
            "{ lead { id } } }",
            "createLead(input.metadata.k[0])",
            63,
        ),
        (
            'query ($s: String = "\\u0000") { leads(filter: {search: $s}) { totalCount } }',
            "$s (default value)",
            21,
        ),
        (
            '{ leads(filter: {city: """x\x00"""}) { totalCount } }',
            "leads(filter.city)",
            24,
        ),
    ],
    ids=["search", "list-item", "metadata", "variable-default", "the-character-itself"],
)
def test_nul_in_a_literal_is_refused_naming_the_argument(
    gql: GraphQLClient, document: str, where: str, column: int
) -> None:
    assert gql(document) == refused(nul_at(where), line=1, column=column)
    assert_nothing_written(gql)


def test_sign_up_with_nul_is_refused_without_credentials_and_creates_nothing(
    anon: GraphQLClient,
) -> None:
    signup = {
        "email": "ada@example.com",
        "password": "correct horse battery",
        "name": "Ada\x00",
        "workspaceName": "Engines",
    }
    assert anon(SIGN_UP, {"input": signup}) == refused(nul_at("variables.input.name"))
    # Nothing was kept (no account, no code cooldown): the corrected sign-up goes through.
    signup["name"] = "Ada"
    assert anon.data(SIGN_UP, {"input": signup}) == {"signUp": {"userErrors": []}}


def test_workspace_and_api_key_names_with_nul_are_refused(gql: GraphQLClient) -> None:
    rename = gql('mutation { updateWorkspace(input: {name: "W\\u0000"}) { workspace { name } } }')
    assert rename == refused(nul_at("updateWorkspace(input.name)"), line=1, column=42)
    key = gql(
        "mutation ($n: String!) { createApiKey(input: {name: $n, role: VIEWER}) { secret } }",
        {"n": "k\x00"},
    )
    assert key == refused(nul_at("variables.n"))
    assert gql.data("{ me { workspace { name } } apiKeys { name } }") == {
        "me": {"workspace": {"name": "Default"}},
        "apiKeys": [{"name": "tests"}],
    }


def test_graphql_response_json_clients_get_a_400(http: httpx.Client) -> None:
    response = http.post(
        "/graphql",
        content=json.dumps({"query": SEARCH, "variables": {"filter": {"search": "\x00"}}}),
        headers={
            "Content-Type": "application/json",
            "Accept": "application/graphql-response+json",
        },
    )
    assert response.status_code == 400
    assert without_cost(response.json()) == refused(nul_at("variables.filter.search"))


def test_text_without_nul_still_goes_through(gql: GraphQLClient) -> None:
    created = gql.data(CREATE_LEAD, {"input": {"email": "ann@example.com", "notes": "\\u0000"}})
    assert created == {"createLead": {"lead": {"email": "ann@example.com"}, "userErrors": []}}
