"""node, nodes, lead, client and federation _entities resolve global IDs strictly by type."""

from __future__ import annotations

import base64

from tests.conftest import GraphQLClient, LiveServer
from tests.factories import client_values, create_clients, create_leads, lead_values

NODE = """
query ($id: ID!) {
  node(id: $id) { __typename id ... on Lead { email } ... on Client { email } }
}
"""
NODES = "query ($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"
LEAD = "query ($id: ID!) { lead(id: $id) { id email } }"
CLIENT = "query ($id: ID!) { client(id: $id) { id email } }"
ENTITIES = """
query ($reps: [_Any!]!) {
  _entities(representations: $reps) {
    __typename ... on Lead { id email } ... on Client { id email }
  }
}
"""


def test_node_resolves_leads_and_clients(server: LiveServer, gql: GraphQLClient) -> None:
    [lead_id] = create_leads(server, lead_values(email="lead@example.com"))
    [client_id] = create_clients(server, client_values(email="client@example.com"))

    lead = gql.data(NODE, {"id": lead_id})["node"]
    client = gql.data(NODE, {"id": client_id})["node"]

    assert lead == {"__typename": "Lead", "id": lead_id, "email": "lead@example.com"}
    assert client == {"__typename": "Client", "id": client_id, "email": "client@example.com"}


def test_an_id_of_one_type_never_resolves_as_the_other(
    server: LiveServer, gql: GraphQLClient
) -> None:
    [lead_id] = create_leads(server, lead_values())
    [client_id] = create_clients(server, client_values())

    assert gql.data(LEAD, {"id": client_id}) == {"lead": None}
    assert gql.data(CLIENT, {"id": lead_id}) == {"client": None}


def test_ids_are_opaque_base64(server: LiveServer) -> None:
    [lead_id] = create_leads(server, lead_values())
    assert base64.b64decode(lead_id).decode().startswith("Lead:")


def test_nodes_keeps_order_and_gives_null_for_missing(
    server: LiveServer, gql: GraphQLClient
) -> None:
    lead_ids = create_leads(server, lead_values(), lead_values())
    [client_id] = create_clients(server, client_values())
    missing = base64.b64encode(b"Lead:999999").decode()

    nodes = gql.data(NODES, {"ids": [lead_ids[1], missing, client_id, lead_ids[0]]})["nodes"]

    assert nodes == [
        {"__typename": "Lead", "id": lead_ids[1]},
        None,
        {"__typename": "Client", "id": client_id},
        {"__typename": "Lead", "id": lead_ids[0]},
    ]


def test_a_malformed_id_is_a_clean_error_naming_the_argument(gql: GraphQLClient) -> None:
    for bad in [
        "",
        "not-an-id",
        base64.b64encode(b"Order:1").decode(),
        base64.b64encode(b"Lead:abc").decode(),
        base64.b64encode(b"Lead:-1").decode(),
    ]:
        body = gql(NODE, {"id": bad})
        assert body["data"] == {"node": None}
        assert body["errors"] == [
            {
                "message": "Argument 'id' is not a valid ID.",
                "locations": [{"line": 3, "column": 3}],
                "path": ["node"],
                "extensions": {"code": "BAD_USER_INPUT", "argument": "id"},
            }
        ]


def test_nodes_refuses_more_than_100_ids(gql: GraphQLClient) -> None:
    ids = [base64.b64encode(f"Lead:{n}".encode()).decode() for n in range(1, 102)]
    body = gql(NODES, {"ids": ids})
    assert body["errors"][0]["message"] == "Argument 'ids' takes at most 100 IDs (got 101)."


def test_federation_entities_resolve_by_reference(server: LiveServer, gql: GraphQLClient) -> None:
    [lead_id] = create_leads(server, lead_values(email="fed-lead@example.com"))
    [client_id] = create_clients(server, client_values(email="fed-client@example.com"))
    missing = base64.b64encode(b"Client:424242").decode()

    entities = gql.data(
        ENTITIES,
        {
            "reps": [
                {"__typename": "Lead", "id": lead_id},
                {"__typename": "Client", "id": client_id},
                {"__typename": "Client", "id": missing},
                {"__typename": "Lead", "id": client_id},
            ]
        },
    )["_entities"]

    assert entities == [
        {"__typename": "Lead", "id": lead_id, "email": "fed-lead@example.com"},
        {"__typename": "Client", "id": client_id, "email": "fed-client@example.com"},
        None,
        None,
    ]


def test_federation_entities_are_batched(
    server: LiveServer, gql: GraphQLClient, count_queries
) -> None:
    ids = create_leads(server, *(lead_values() for _ in range(10)))
    with count_queries() as counter:
        gql.data(ENTITIES, {"reps": [{"__typename": "Lead", "id": i} for i in ids]})
    assert counter.count == 2  # the credential lookup, then one batch for all ten
