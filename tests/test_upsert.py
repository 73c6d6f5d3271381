"""upsertLead, outside systems' IDs (externalIds) on leads and clients, and the keys that
match what people type differently: emails by case, states by code or name."""

from __future__ import annotations

from typing import Any

from tests.conftest import GraphQLClient, LiveServer
from tests.test_concurrency import post_all

ERRORS = "userErrors { field message code }"
LEAD = "id email firstName company score status externalIds { system id }"
UPSERT = f"""
mutation ($input: CreateLeadInput!, $matchOn: LeadMatch! = EMAIL) {{
  upsertLead(input: $input, matchOn: $matchOn) {{ lead {{ {LEAD} }} created {ERRORS} }}
}}
"""
CREATE = f"""
mutation ($input: CreateLeadInput!) {{ createLead(input: $input) {{ lead {{ {LEAD} }} {ERRORS} }} }}
"""
UPDATE = f"""
mutation ($id: ID!, $input: UpdateLeadInput!) {{
  updateLead(id: $id, input: $input) {{ lead {{ {LEAD} }} {ERRORS} }}
}}
"""
DELETE = "mutation ($id: ID!) { deleteLead(id: $id) { deletedLeadId } }"
LEADS = f"""
query ($filter: LeadFilter) {{ leads(filter: $filter) {{ totalCount nodes {{ {LEAD} }} }} }}
"""
CREATE_CLIENT = f"""
mutation ($input: CreateClientInput!) {{
  createClient(input: $input) {{ client {{ id email externalIds {{ system id }} }} {ERRORS} }}
}}
"""
UPDATE_CLIENT = f"""
mutation ($id: ID!, $input: UpdateClientInput!) {{
  updateClient(id: $id, input: $input) {{ client {{ id externalIds {{ system id }} }} {ERRORS} }}
}}
"""
CLIENTS = """
query ($filter: ClientFilter) {
  clients(filter: $filter) { nodes { email externalIds { system id } } }
}
"""
CONVERT = f"""
mutation ($id: ID!, $input: ConvertLeadInput) {{
  convertLead(id: $id, input: $input) {{
    client {{ id email externalIds {{ system id }} }} {ERRORS}
  }}
}}
"""
EVENTS = "{ events { nodes { type recordId changes { field from to } } } }"

SF = {"system": "salesforce", "id": "00Q5e000001AbCd"}
HS = {"system": "hubspot", "id": "901"}


def upsert(gql: GraphQLClient, match_on: str = "EMAIL", **values: Any) -> dict[str, Any]:
    variables = {"input": values, "matchOn": match_on}
    payload: dict[str, Any] = gql.data(UPSERT, variables)["upsertLead"]
    return payload


def leads(gql: GraphQLClient, **filter_: Any) -> dict[str, Any]:
    result: dict[str, Any] = gql.data(LEADS, {"filter": filter_})["leads"]
    return result


def new_lead(gql: GraphQLClient, **values: Any) -> dict[str, Any]:
    payload = gql.data(CREATE, {"input": values})["createLead"]
    assert payload["userErrors"] == []
    lead: dict[str, Any] = payload["lead"]
    return lead


# ---------------------------------------------------------------- upsert by email


def test_an_upsert_of_a_new_email_creates_the_lead(gql: GraphQLClient) -> None:
    payload = upsert(gql, email="ada@example.com", firstName="Ada", score=10)

    assert payload["created"] is True and payload["userErrors"] == []
    assert payload["lead"] | {"id": "x"} == {
        "id": "x",
        "email": "ada@example.com",
        "firstName": "Ada",
        "company": None,
        "score": 10,
        "status": "NEW",
        "externalIds": [],
    }
    assert leads(gql)["totalCount"] == 1


def test_an_upsert_finds_the_email_whatever_its_case_and_spaces_and_writes_only_what_is_given(
    gql: GraphQLClient,
) -> None:
    lead = new_lead(gql, email="ada@example.com", firstName="Ada", company="Acme", score=10)

    payload = upsert(gql, email="  ADA@Example.COM ", company="Acme Corp", status="CONTACTED")

    assert payload["created"] is False and payload["userErrors"] == []
    # The email as first typed stays (the match was by its key); fields left out stay.
    assert payload["lead"] == {**lead, "company": "Acme Corp", "status": "CONTACTED"}
    assert leads(gql)["totalCount"] == 1


def test_an_upsert_that_changes_nothing_writes_no_event(gql: GraphQLClient) -> None:
    upsert(gql, email="ada@example.com", firstName="Ada")

    payload = upsert(gql, email="ada@example.com", firstName="Ada")

    assert payload["created"] is False
    types = [e["type"] for e in gql.data(EVENTS)["events"]["nodes"]]
    assert types == ["LEAD_CREATED"]


def test_an_upsert_appends_lead_created_then_lead_updated(gql: GraphQLClient) -> None:
    created = upsert(gql, email="ada@example.com")["lead"]
    upsert(gql, email="ada@example.com", score=30)

    events = gql.data(EVENTS)["events"]["nodes"]
    assert [(e["type"], e["recordId"]) for e in events] == [
        ("LEAD_CREATED", created["id"]),
        ("LEAD_UPDATED", created["id"]),
    ]
    assert events[1]["changes"] == [{"field": "score", "from": 0, "to": 30}]


def test_an_upsert_with_an_invalid_email_changes_nothing(gql: GraphQLClient) -> None:
    payload = upsert(gql, email="not an email", score=101)

    assert payload["lead"] is None and payload["created"] is None
    assert sorted(e["field"][-1] for e in payload["userErrors"]) == ["email", "score"]
    assert leads(gql)["totalCount"] == 0


def test_concurrent_upserts_of_one_email_end_with_one_lead(
    server: LiveServer, gql: GraphQLClient
) -> None:
    variables = [
        {"input": {"email": f"{'SAME' if n % 2 else 'same'}@example.com", "score": n}}
        for n in range(16)
    ]

    results = post_all(server, UPSERT, variables)

    assert all(r["upsertLead"]["userErrors"] == [] for r in results)
    assert sorted(r["upsertLead"]["created"] for r in results) == [False] * 15 + [True]
    assert len({r["upsertLead"]["lead"]["id"] for r in results}) == 1
    assert leads(gql)["totalCount"] == 1


# ---------------------------------------------------------------- upsert by external ID


def test_an_upsert_by_external_id_finds_the_lead_whose_email_changed(gql: GraphQLClient) -> None:
    first = upsert(gql, "EXTERNAL_ID", email="old@example.com", externalIds=[SF])

    payload = upsert(
        gql,
        "EXTERNAL_ID",
        email="new@example.com",
        externalIds=[HS, {**SF, "system": "SalesForce"}],
    )

    assert first["created"] is True and payload["created"] is False
    assert payload["lead"]["id"] == first["lead"]["id"]
    assert payload["lead"]["email"] == "new@example.com"
    # The system's spelling given last is kept; hubspot's id joins.
    assert payload["lead"]["externalIds"] == [HS, {**SF, "system": "SalesForce"}]
    assert leads(gql)["totalCount"] == 1


def test_concurrent_upserts_of_one_external_id_end_with_one_lead(
    server: LiveServer, gql: GraphQLClient
) -> None:
    variables = [
        {"input": {"email": f"p{n}@example.com", "externalIds": [SF]}, "matchOn": "EXTERNAL_ID"}
        for n in range(12)
    ]

    results = post_all(server, UPSERT, variables)

    assert all(r["upsertLead"]["userErrors"] == [] for r in results)
    assert sorted(r["upsertLead"]["created"] for r in results) == [False] * 11 + [True]
    assert leads(gql)["totalCount"] == 1


def test_an_upsert_by_external_id_needs_external_ids(gql: GraphQLClient) -> None:
    payload = upsert(gql, "EXTERNAL_ID", email="ada@example.com")

    assert payload == {
        "lead": None,
        "created": None,
        "userErrors": [
            {
                "field": ["input", "externalIds"],
                "message": "matchOn EXTERNAL_ID needs input.externalIds.",
                "code": "REQUIRED",
            }
        ],
    }


def test_external_ids_of_two_different_leads_match_nothing(gql: GraphQLClient) -> None:
    new_lead(gql, email="a@example.com", externalIds=[SF])
    new_lead(gql, email="b@example.com", externalIds=[HS])

    payload = upsert(gql, "EXTERNAL_ID", email="c@example.com", externalIds=[SF, HS])

    assert payload["userErrors"] == [
        {
            "field": ["input", "externalIds"],
            "message": "These external IDs belong to different leads; give the ids of one.",
            "code": "INVALID",
        }
    ]
    assert leads(gql)["totalCount"] == 2


# ---------------------------------------------------------------- external IDs


def test_an_external_id_names_one_lead_per_workspace(gql: GraphQLClient) -> None:
    new_lead(gql, email="a@example.com", externalIds=[SF])

    payload = gql.data(CREATE, {"input": {"email": "b@example.com", "externalIds": [HS, SF]}})

    assert payload["createLead"] == {
        "lead": None,
        "userErrors": [
            {
                "field": ["input", "externalIds", "1", "id"],
                "message": "Another lead has the salesforce id 00Q5e000001AbCd.",
                "code": "TAKEN",
            }
        ],
    }
    assert leads(gql)["totalCount"] == 1


def test_a_lead_holds_at_most_one_id_per_system(gql: GraphQLClient) -> None:
    two = [SF, {"system": "Salesforce", "id": "other"}]

    payload = gql.data(CREATE, {"input": {"email": "a@example.com", "externalIds": two}})

    assert payload["createLead"]["userErrors"] == [
        {
            "field": ["input", "externalIds"],
            "message": "At most one id per system: Salesforce is given twice.",
            "code": "INVALID",
        }
    ]


def test_an_external_id_needs_a_system_and_an_id(gql: GraphQLClient) -> None:
    payload = gql.data(
        CREATE, {"input": {"email": "a@example.com", "externalIds": [{"system": " ", "id": "1"}]}}
    )

    assert payload["createLead"]["userErrors"] == [
        {
            "field": ["input", "externalIds", "0", "system"],
            "message": "This field is required and cannot be blank.",
            "code": "REQUIRED",
        }
    ]


def test_an_update_sets_the_given_systems_ids_and_keeps_the_others(gql: GraphQLClient) -> None:
    lead = new_lead(gql, email="a@example.com", externalIds=[SF, HS])

    new_sf = {"system": "salesforce", "id": "00Q-new"}
    payload = gql.data(UPDATE, {"id": lead["id"], "input": {"externalIds": [new_sf]}})

    assert payload["updateLead"]["lead"]["externalIds"] == [HS, new_sf]
    # The old id is free again, the new one is taken.
    assert leads(gql, externalId=SF)["totalCount"] == 0
    assert leads(gql, externalId=new_sf)["nodes"][0]["id"] == lead["id"]


def test_leads_filter_by_external_id_the_system_case_aside(gql: GraphQLClient) -> None:
    lead = new_lead(gql, email="a@example.com", externalIds=[SF])
    new_lead(gql, email="b@example.com", externalIds=[HS])

    found = leads(gql, externalId={"system": "SALESFORCE", "id": SF["id"]})

    assert [n["id"] for n in found["nodes"]] == [lead["id"]]
    assert leads(gql, externalId={"system": "salesforce", "id": "00q5e000001abcd"}) == {
        "totalCount": 0,
        "nodes": [],
    }
    # With a search beside it (the search's own statement).
    assert leads(gql, externalId=SF, search="a@exa")["totalCount"] == 1


def test_a_deleted_lead_frees_its_external_ids(gql: GraphQLClient) -> None:
    lead = new_lead(gql, email="a@example.com", externalIds=[SF])
    gql.data(DELETE, {"id": lead["id"]})

    again = new_lead(gql, email="b@example.com", externalIds=[SF])

    assert again["externalIds"] == [SF]


def test_clients_hold_and_filter_external_ids(gql: GraphQLClient) -> None:
    name = {"firstName": "A", "lastName": "B"}
    created = gql.data(
        CREATE_CLIENT, {"input": {"email": "a@example.com", **name, "externalIds": [SF]}}
    )["createClient"]
    taken = gql.data(
        CREATE_CLIENT, {"input": {"email": "b@example.com", **name, "externalIds": [SF]}}
    )["createClient"]
    client_id = created["client"]["id"]
    updated = gql.data(UPDATE_CLIENT, {"id": client_id, "input": {"externalIds": [HS]}})

    assert created["client"]["externalIds"] == [SF]
    assert [e["code"] for e in taken["userErrors"]] == ["TAKEN"]
    assert updated["updateClient"]["client"]["externalIds"] == [SF, HS]
    assert gql.data(CLIENTS, {"filter": {"externalId": HS}})["clients"]["nodes"] == [
        {"email": "a@example.com", "externalIds": [SF, HS]}
    ]


def test_convert_lead_carries_the_external_ids_to_a_new_client(gql: GraphQLClient) -> None:
    lead = new_lead(gql, email="a@example.com", firstName="A", externalIds=[SF])

    payload = gql.data(CONVERT, {"id": lead["id"], "input": {"lastName": "B"}})["convertLead"]

    assert payload["userErrors"] == []
    assert payload["client"]["externalIds"] == [SF]


def test_convert_into_a_client_keeps_its_ids_and_adds_the_leads_other_systems(
    gql: GraphQLClient,
) -> None:
    client = gql.data(
        CREATE_CLIENT,
        {
            "input": {
                "email": "c@example.com",
                "firstName": "C",
                "lastName": "D",
                "externalIds": [{"system": "salesforce", "id": "client-own"}],
            }
        },
    )["createClient"]["client"]
    lead = new_lead(gql, email="a@example.com", externalIds=[SF, HS])

    payload = gql.data(CONVERT, {"id": lead["id"], "input": {"clientId": client["id"]}})

    assert payload["convertLead"]["client"]["externalIds"] == [
        HS,
        {"system": "salesforce", "id": "client-own"},
    ]


# ---------------------------------------------------------------- matching keys


def test_a_state_filter_finds_the_state_by_code_or_name(gql: GraphQLClient) -> None:
    for n, state in enumerate(("Texas", "tx", "TX", " texas ", "Ontario", "Bavaria")):
        new_lead(gql, email=f"s{n}@example.com", state=state)

    by_code = leads(gql, state="TX")
    by_name = leads(gql, state="texas")

    assert by_code["totalCount"] == by_name["totalCount"] == 4
    assert leads(gql, state="ON")["totalCount"] == 1
    assert leads(gql, state="bavaria")["totalCount"] == 1
    # What was typed is what is shown.
    shown = gql.data('{ leads(filter: {state: "Tx"}) { nodes { state } } }')["leads"]["nodes"]
    assert sorted(n["state"] for n in shown) == ["TX", "Texas", "texas", "tx"]
