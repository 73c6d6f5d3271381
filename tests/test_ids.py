"""Global IDs are accepted only in the exact encoding we hand out: base64 forgives extra padding
and stray bits in the last character, so other strings decode to the same "Type:pk"."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import GraphQLClient, LiveServer
from tests.factories import client_values, create_clients, create_leads, lead_values

NODE = "query ($id: ID!) { node(id: $id) { id } }"
LEAD = "query ($id: ID!) { lead(id: $id) { id } }"
CLIENT = "query ($id: ID!) { client(id: $id) { id } }"
NODES = "query ($ids: [ID!]!) { nodes(ids: $ids) { id } }"
DELETE_LEAD = """
mutation ($id: ID!) { deleteLead(id: $id) { deletedLeadId userErrors { field message code } } }
"""
UPDATE_CLIENT = """
mutation ($id: ID!) {
  updateClient(id: $id, input: {company: "Elsewhere"}) {
    client { id } userErrors { field message code }
  }
}
"""

LEAD_ID = "TGVhZDox"  # base64("Lead:1"): no padding
CLIENT_ID = "Q2xpZW50OjE="  # base64("Client:1"): one padding character
# The same bytes, written otherwise: extra padding, and the last character's unused bits set.
LEAD_ALIASES = ["TGVhZDox=", "TGVhZDox==", "TGVhZDox==="]
CLIENT_ALIASES = ["Q2xpZW50OjF=", "Q2xpZW50OjH="]
ALIASES = pytest.mark.parametrize(
    ("alias", "canonical"),
    [(a, LEAD_ID) for a in LEAD_ALIASES] + [(a, CLIENT_ID) for a in CLIENT_ALIASES],
)


@pytest.fixture
def records(server: LiveServer) -> None:
    """Lead 1 and client 1 of a fresh database, whose IDs are the ones above."""
    assert create_leads(server, lead_values()) == [LEAD_ID]
    assert create_clients(server, client_values()) == [CLIENT_ID]


def not_a_valid_id(argument: str, field: str, column: int = 20) -> dict[str, object]:
    return {
        "message": f"Argument '{argument}' is not a valid ID.",
        "locations": [{"line": 1, "column": column}],
        "path": [field],
        "extensions": {"code": "BAD_USER_INPUT", "argument": argument},
    }


@ALIASES
def test_an_alias_of_an_id_is_not_a_valid_id_in_queries(
    records: None, gql: GraphQLClient, alias: str, canonical: str
) -> None:
    # A true alias: even strict base64 decoding reads the same bytes.
    assert base64.b64decode(alias, validate=True) == base64.b64decode(canonical)
    query = LEAD if canonical == LEAD_ID else CLIENT
    field = "lead" if canonical == LEAD_ID else "client"

    assert gql(query, {"id": alias}) == {
        "data": {field: None},
        "errors": [not_a_valid_id("id", field)],
    }
    assert gql(NODE, {"id": alias}) == {
        "data": {"node": None},
        "errors": [not_a_valid_id("id", "node")],
    }
    assert gql(NODES, {"ids": [canonical, alias]}) == {
        "data": None,  # nodes is a non-null list
        "errors": [not_a_valid_id("ids[1]", "nodes", column=24)],
    }
    # The exact encoding still resolves.
    assert gql.data(NODE, {"id": canonical}) == {"node": {"id": canonical}}


def test_an_alias_of_an_id_is_not_a_valid_id_in_mutations_and_changes_nothing(
    records: None, gql: GraphQLClient
) -> None:
    invalid = [{"field": ["id"], "code": "INVALID", "message": "This is not a valid ID."}]
    for alias in LEAD_ALIASES:
        payload = gql.data(DELETE_LEAD, {"id": alias})["deleteLead"]
        assert payload == {"deletedLeadId": None, "userErrors": invalid}
    for alias in CLIENT_ALIASES:
        payload = gql.data(UPDATE_CLIENT, {"id": alias})["updateClient"]
        assert payload == {"client": None, "userErrors": invalid}

    assert gql.data(LEAD, {"id": LEAD_ID}) == {"lead": {"id": LEAD_ID}}
    client = gql.data("query ($id: ID!) { client(id: $id) { company } }", {"id": CLIENT_ID})
    assert client == {"client": {"company": None}}


def test_an_alias_never_finds_a_federation_entity(records: None, gql: GraphQLClient) -> None:
    entities = gql(
        "query ($reps: [_Any!]!) { _entities(representations: $reps) { ... on Lead { id } } }",
        {
            "reps": [
                {"__typename": "Lead", "id": LEAD_ALIASES[0]},
                {"__typename": "Lead", "id": LEAD_ID},
            ]
        },
    )
    assert entities["data"]["_entities"][0] is None
    assert entities["data"]["_entities"][1] == {"id": LEAD_ID}


# ------------------------------------------------------------------ IDs no row can have

# Well-formed IDs past what an integer id column holds (2^31 - 1 on PostgreSQL): no row has
# one, so each is simply not found, on every engine, wherever an ID is taken.
BEYOND = [2**31, 2**31 + 1, 2**40, 2**63 - 1]


def gid(type_name: str, pk: int) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


@pytest.mark.parametrize("pk", BEYOND)
def test_an_id_beyond_any_row_is_not_found_by_queries(
    records: None, gql: GraphQLClient, pk: int
) -> None:
    lead, client = gid("Lead", pk), gid("Client", pk)
    assert gql(LEAD, {"id": lead}) == {"data": {"lead": None}}
    assert gql(CLIENT, {"id": client}) == {"data": {"client": None}}
    assert gql(NODE, {"id": lead}) == {"data": {"node": None}}
    assert gql(NODES, {"ids": [client, LEAD_ID, gid("User", pk)]}) == {
        "data": {"nodes": [None, {"id": LEAD_ID}, None]}
    }
    entities = gql(
        "query ($reps: [_Any!]!) { _entities(representations: $reps) {"
        " ... on Lead { id } ... on Client { id } } }",
        {"reps": [{"__typename": "Lead", "id": lead}, {"__typename": "Client", "id": client}]},
    )
    assert entities == {"data": {"_entities": [None, None]}}


MUTATIONS = {
    "updateLead": (
        'mutation ($id: ID!) { updateLead(id: $id, input: {notes: "x"}) {'
        " lead { id } userErrors { field code } } }",
        "Lead",
    ),
    "deleteLead": (
        "mutation ($id: ID!) { deleteLead(id: $id) { deletedLeadId userErrors { field code } } }",
        "Lead",
    ),
    "convertLead": (
        "mutation ($id: ID!) { convertLead(id: $id) { lead { id } userErrors { field code } } }",
        "Lead",
    ),
    "updateClient": (
        'mutation ($id: ID!) { updateClient(id: $id, input: {notes: "x"}) {'
        " client { id } userErrors { field code } } }",
        "Client",
    ),
    "archiveClient": (
        "mutation ($id: ID!) { archiveClient(id: $id) {"
        " client { id } userErrors { field code } } }",
        "Client",
    ),
    "restoreClient": (
        "mutation ($id: ID!) { restoreClient(id: $id) {"
        " client { id } userErrors { field code } } }",
        "Client",
    ),
    "revokeApiKey": (
        "mutation ($id: ID!) { revokeApiKey(id: $id) { apiKey { id } userErrors { field code } } }",
        "ApiKey",
    ),
}


@pytest.mark.parametrize("name", MUTATIONS)
@pytest.mark.parametrize("pk", [2**31, 2**63 - 1])
def test_an_id_beyond_any_row_is_not_found_by_mutations(
    records: None, gql: GraphQLClient, name: str, pk: int
) -> None:
    document, type_name = MUTATIONS[name]
    payload = gql.data(document, {"id": gid(type_name, pk)})[name]
    assert payload.pop("userErrors") == [{"field": ["id"], "code": "NOT_FOUND"}]
    assert set(payload.values()) == {None}


def test_an_id_beyond_any_row_is_not_found_by_member_mutations(gql: GraphQLClient) -> None:
    user = gid("User", 2**31)
    errors = "userErrors { field code }"
    update = gql.data(
        f"mutation ($u: ID!) {{ updateMemberRole(userId: $u, role: VIEWER) {{ {errors} }} }}",
        {"u": user},
    )
    remove = gql.data(
        f"mutation ($u: ID!) {{ removeMember(userId: $u) {{ {errors} }} }}", {"u": user}
    )
    not_found = [{"field": ["userId"], "code": "NOT_FOUND"}]
    assert update == {"updateMemberRole": {"userErrors": not_found}}
    assert remove == {"removeMember": {"userErrors": not_found}}


def test_converting_into_a_client_id_beyond_any_row_is_not_found(
    records: None, gql: GraphQLClient
) -> None:
    payload = gql.data(
        "mutation ($id: ID!, $c: ID!) { convertLead(id: $id, input: {clientId: $c}) {"
        " lead { status } userErrors { field code } } }",
        {"id": LEAD_ID, "c": gid("Client", 2**31)},
    )["convertLead"]
    assert payload == {
        "lead": None,
        "userErrors": [{"field": ["input", "clientId"], "code": "NOT_FOUND"}],
    }
    assert gql.data("query ($id: ID!) { lead(id: $id) { status } }", {"id": LEAD_ID}) == {
        "lead": {"status": "NEW"}
    }
