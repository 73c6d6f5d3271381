"""The change-event log (issue 10, part 1): every committed change to a lead or client appends
exactly one Event in its own transaction; refused and rolled-back writes append none; the log
is read in commit order through ``events``, ``Lead.history`` and ``Client.history``, and a
consumer resuming with ``after`` sees every event once, in order, while writes go on."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from db.models import Role
from db.repositories import EventRepository
from resolvers.auth import create_key_for_workspace
from resolvers.ids import to_global_id
from tests.conftest import OWNER_KEY, GraphQLClient, LiveServer
from tests.tasks import CreatedTasks

EVENT = """
  id type occurredAt recordId requestId
  actor { __typename ... on ApiKey { name } ... on User { email } }
  record { __typename id }
  changes { field from to }
"""
EVENTS = f"""
query ($first: Int, $after: String, $last: Int, $before: String, $filter: EventFilter) {{
  events(first: $first, after: $after, last: $last, before: $before, filter: $filter) {{
    totalCount
    edges {{ cursor node {{ {EVENT} }} }}
    pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
  }}
}}
"""
LEAD_HISTORY = """
query ($id: ID!, $first: Int, $after: String) {
  lead(id: $id) {
    history(first: $first, after: $after) {
      totalCount edges { cursor node { type changes { field from to } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""
CLIENT_HISTORY = """
query ($id: ID!) {
  client(id: $id) { history { totalCount nodes { type recordId changes { field from to } } } }
}
"""
USER_ERRORS = "userErrors { field code }"
CREATE_LEAD = f"""
mutation ($input: CreateLeadInput!) {{
  createLead(input: $input) {{ lead {{ id createdAt updatedAt }} {USER_ERRORS} }}
}}
"""
UPDATE_LEAD = f"""
mutation ($id: ID!, $input: UpdateLeadInput!) {{
  updateLead(id: $id, input: $input) {{ lead {{ id updatedAt }} {USER_ERRORS} }}
}}
"""
DELETE_LEAD = f"mutation ($id: ID!) {{ deleteLead(id: $id) {{ deletedLeadId {USER_ERRORS} }} }}"
CONVERT_LEAD = f"""
mutation ($id: ID!, $input: ConvertLeadInput) {{
  convertLead(id: $id, input: $input) {{
    lead {{ id convertedAt }} client {{ id }} {USER_ERRORS}
  }}
}}
"""
CREATE_CLIENT = f"""
mutation ($input: CreateClientInput!) {{
  createClient(input: $input) {{ client {{ id }} {USER_ERRORS} }}
}}
"""
UPDATE_CLIENT = f"""
mutation ($id: ID!, $input: UpdateClientInput!) {{
  updateClient(id: $id, input: $input) {{ client {{ id }} {USER_ERRORS} }}
}}
"""
ARCHIVE_CLIENT = (
    f"mutation ($id: ID!) {{ archiveClient(id: $id) {{ client {{ archivedAt }} {USER_ERRORS} }} }}"
)
RESTORE_CLIENT = (
    f"mutation ($id: ID!) {{ restoreClient(id: $id) {{ client {{ id }} {USER_ERRORS} }} }}"
)
SUITE_KEY = {"__typename": "ApiKey", "name": "tests"}  # the suite's OWNER key (conftest)


def post(http: httpx.Client, query: str, variables: dict[str, Any], request_id: str) -> Any:
    """A request with its own X-Request-ID; the data of a response without errors."""
    response = http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {OWNER_KEY}", "X-Request-ID": request_id},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def mutate(gql: GraphQLClient, query: str, variables: dict[str, Any]) -> Any:
    """The payload of a mutation that must succeed without userErrors."""
    [payload] = gql.data(query, variables).values()
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload


def new_lead(gql: GraphQLClient, **values: Any) -> str:
    values.setdefault("email", f"lead{random.randrange(10**9)}@example.com")
    return str(mutate(gql, CREATE_LEAD, {"input": values})["lead"]["id"])


def new_client(gql: GraphQLClient, **values: Any) -> str:
    values = {"firstName": "Grace", "lastName": "Hopper", **values}
    values.setdefault("email", f"client{random.randrange(10**9)}@example.com")
    return str(mutate(gql, CREATE_CLIENT, {"input": values})["client"]["id"])


def page(gql: GraphQLClient, **variables: Any) -> dict[str, Any]:
    result: dict[str, Any] = gql.data(EVENTS, variables)["events"]
    return result


def log(gql: GraphQLClient, **filter_: Any) -> list[dict[str, Any]]:
    """Every event of the workspace (matching the filter), oldest first, paged with after."""
    found: list[dict[str, Any]] = []
    after = None
    while True:
        got = page(gql, first=100, after=after, filter=filter_ or None)
        found += [edge["node"] for edge in got["edges"]]
        if not got["pageInfo"]["hasNextPage"]:
            return found
        after = got["pageInfo"]["endCursor"]


def seq(cursor: str) -> int:
    """The seq an event cursor holds (opaque to clients; the tests know its shape)."""
    kind, value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert kind == "SEQ"
    return int(value)


def error(body: dict[str, Any]) -> dict[str, Any]:
    assert body["data"] is None
    [err] = body["errors"]
    return {"message": err["message"], **err["extensions"]}


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


# ---------------------------------------------------------------- what each write appends


def test_create_lead_appends_lead_created_with_every_field_set(
    http: httpx.Client, gql: GraphQLClient
) -> None:
    values = {
        "email": "ada@example.com",
        "firstName": "Ada",
        "city": "London",
        "score": 40,
        "metadata": {"tier": "gold"},
    }
    lead = post(http, CREATE_LEAD, {"input": values}, "create-ada")["createLead"]["lead"]

    [event] = log(gql)

    assert event == {
        "id": event["id"],
        "type": "LEAD_CREATED",
        "occurredAt": event["occurredAt"],
        "recordId": lead["id"],
        "requestId": "create-ada",
        "actor": SUITE_KEY,
        "record": {"__typename": "Lead", "id": lead["id"]},
        "changes": [
            {"field": "email", "from": None, "to": "ada@example.com"},
            {"field": "firstName", "from": None, "to": "Ada"},
            {"field": "city", "from": None, "to": "London"},
            {"field": "status", "from": None, "to": "NEW"},
            {"field": "score", "from": None, "to": 40},
            {"field": "metadata", "from": None, "to": {"tier": "gold"}},
        ],
    }
    occurred = datetime.fromisoformat(event["occurredAt"])
    assert occurred.utcoffset() is not None and occurred >= datetime.fromisoformat(
        lead["createdAt"]
    )


def test_update_lead_appends_the_fields_that_changed_and_a_no_op_appends_nothing(
    http: httpx.Client, gql: GraphQLClient
) -> None:
    lead_id = new_lead(gql, email="ada@example.com", firstName="Ada", notes="call")
    updated = {"firstName": "Augusta", "notes": None, "status": "CONTACTED", "score": 5}
    post(http, UPDATE_LEAD, {"id": lead_id, "input": updated}, "update-ada")
    before = gql.data("query ($id: ID!) { lead(id: $id) { updatedAt } }", {"id": lead_id})

    # The values it holds already: nothing changes, not even updatedAt, and no event.
    same = {"firstName": "Augusta", "email": "ada@example.com", "status": "CONTACTED"}
    again = mutate(gql, UPDATE_LEAD, {"id": lead_id, "input": same})
    mutate(gql, UPDATE_LEAD, {"id": lead_id, "input": {}})

    events = log(gql)
    assert kinds(events) == ["LEAD_CREATED", "LEAD_UPDATED"]
    assert events[1]["requestId"] == "update-ada"
    assert events[1]["changes"] == [
        {"field": "firstName", "from": "Ada", "to": "Augusta"},
        {"field": "notes", "from": "call", "to": None},
        {"field": "status", "from": "NEW", "to": "CONTACTED"},
        {"field": "score", "from": 0, "to": 5},
    ]
    assert again["lead"]["updatedAt"] == before["lead"]["updatedAt"]


def test_a_metadata_change_is_one_change_of_the_whole_object(gql: GraphQLClient) -> None:
    lead_id = new_lead(gql, metadata={"count": 1, "tags": ["a"]})
    # JSON's true is not 1, though Python's == says they are equal.
    mutate(gql, UPDATE_LEAD, {"id": lead_id, "input": {"metadata": {"count": True, "tags": ["a"]}}})
    mutate(gql, UPDATE_LEAD, {"id": lead_id, "input": {"metadata": {"tags": ["a"], "count": True}}})

    events = log(gql)

    assert kinds(events) == ["LEAD_CREATED", "LEAD_UPDATED"]
    assert events[1]["changes"] == [
        {
            "field": "metadata",
            "from": {"count": 1, "tags": ["a"]},
            "to": {"count": True, "tags": ["a"]},
        }
    ]


def test_delete_lead_appends_its_last_values_and_keeps_its_record_id(
    http: httpx.Client, gql: GraphQLClient
) -> None:
    lead_id = new_lead(gql, email="gone@example.com", company="Initech", score=7)
    post(http, DELETE_LEAD, {"id": lead_id}, "delete-it")

    events = log(gql, recordId=lead_id)

    assert kinds(events) == ["LEAD_CREATED", "LEAD_DELETED"]
    deleted = events[1]
    assert deleted["recordId"] == lead_id
    assert deleted["record"] is None  # as it is now: gone
    assert events[0]["record"] is None
    assert deleted["requestId"] == "delete-it"
    assert deleted["changes"] == [
        {"field": "email", "from": "gone@example.com", "to": None},
        {"field": "company", "from": "Initech", "to": None},
        {"field": "status", "from": "NEW", "to": None},
        {"field": "score", "from": 7, "to": None},
        {"field": "metadata", "from": {}, "to": None},
    ]


def test_convert_lead_appends_client_created_then_lead_converted(gql: GraphQLClient) -> None:
    lead_id = new_lead(gql, email="conv@example.com", firstName="Con", city="Austin")
    converted = mutate(gql, CONVERT_LEAD, {"id": lead_id, "input": {"lastName": "Vert"}})
    client_id = converted["client"]["id"]

    events = log(gql)

    assert kinds(events) == ["LEAD_CREATED", "CLIENT_CREATED", "LEAD_CONVERTED"]
    assert [e["recordId"] for e in events] == [lead_id, client_id, lead_id]
    assert events[1]["changes"] == [
        {"field": "email", "from": None, "to": "conv@example.com"},
        {"field": "firstName", "from": None, "to": "Con"},
        {"field": "lastName", "from": None, "to": "Vert"},
        {"field": "address.city", "from": None, "to": "Austin"},
        {"field": "status", "from": None, "to": "ACTIVE"},
        {"field": "metadata", "from": None, "to": {}},
    ]
    assert events[2]["changes"] == [
        {"field": "status", "from": "NEW", "to": "WON"},
        {"field": "convertedAt", "from": None, "to": converted["lead"]["convertedAt"]},
        {"field": "convertedClient", "from": None, "to": client_id},
    ]
    assert events[1]["requestId"] == events[2]["requestId"]
    assert events[2]["record"] == {"__typename": "Lead", "id": lead_id}
    assert events[1]["record"] == {"__typename": "Client", "id": client_id}


def test_convert_into_an_existing_client_appends_what_it_changed_there(gql: GraphQLClient) -> None:
    client_id = new_client(gql, email="known@example.com")
    lead_id = new_lead(gql, email="known@example.com", phone="555-0100")
    mutate(gql, CONVERT_LEAD, {"id": lead_id, "input": {"clientId": client_id}})

    events = log(gql)

    assert kinds(events) == ["CLIENT_CREATED", "LEAD_CREATED", "CLIENT_UPDATED", "LEAD_CONVERTED"]
    assert events[2]["recordId"] == client_id
    assert events[2]["changes"] == [{"field": "phone", "from": None, "to": "555-0100"}]


def test_client_writes_append_created_updated_archived_restored(gql: GraphQLClient) -> None:
    client_id = new_client(
        gql, email="c@example.com", address={"city": "Paris", "country": "FR"}, company="Acme"
    )
    mutate(
        gql,
        UPDATE_CLIENT,
        {"id": client_id, "input": {"address": {"city": "Lyon"}, "company": "Acme"}},
    )
    mutate(gql, UPDATE_CLIENT, {"id": client_id, "input": {"address": {"city": "Lyon"}}})
    archived = mutate(gql, ARCHIVE_CLIENT, {"id": client_id})["client"]["archivedAt"]
    mutate(gql, RESTORE_CLIENT, {"id": client_id})

    history = gql.data(CLIENT_HISTORY, {"id": client_id})["client"]["history"]

    assert history["totalCount"] == 4
    created, updated, archive, restore = history["nodes"]
    assert [created["type"], updated["type"], archive["type"], restore["type"]] == [
        "CLIENT_CREATED",
        "CLIENT_UPDATED",
        "CLIENT_ARCHIVED",
        "CLIENT_RESTORED",
    ]
    assert {c["field"] for c in created["changes"]} == {
        "email", "firstName", "lastName", "company", "address.city", "address.country",
        "status", "metadata",
    }  # fmt: skip
    assert updated["changes"] == [{"field": "address.city", "from": "Paris", "to": "Lyon"}]
    assert archive["changes"] == [
        {"field": "status", "from": "ACTIVE", "to": "ARCHIVED"},
        {"field": "archivedAt", "from": None, "to": archived},
    ]
    assert restore["changes"] == [
        {"field": "status", "from": "ARCHIVED", "to": "ACTIVE"},
        {"field": "archivedAt", "from": archived, "to": None},
    ]
    assert log(gql) == log(gql, recordId=client_id)


# ---------------------------------------------------------------- nothing for what did not commit


def test_refused_writes_append_nothing(gql: GraphQLClient) -> None:
    client_id = new_client(gql, email="taken@example.com")
    lead_id = new_lead(gql, email="taken@example.com")
    mutate(gql, ARCHIVE_CLIENT, {"id": client_id})
    converted_id = new_lead(gql, email="once@example.com", firstName="A", lastName="B")
    mutate(gql, CONVERT_LEAD, {"id": converted_id})
    before = log(gql)
    missing = to_global_id("Lead", 999999)

    refused = [
        (CREATE_LEAD, {"input": {"email": "not an email"}}),
        (
            CREATE_CLIENT,
            {"input": {"email": "Taken@Example.com", "firstName": "X", "lastName": "Y"}},
        ),
        (UPDATE_LEAD, {"id": missing, "input": {"score": 5}}),
        (UPDATE_LEAD, {"id": lead_id, "input": {"score": 101}}),
        (UPDATE_CLIENT, {"id": client_id, "input": {"firstName": None}}),
        (DELETE_LEAD, {"id": missing}),
        (CONVERT_LEAD, {"id": converted_id}),  # ALREADY_CONVERTED
        (CONVERT_LEAD, {"id": lead_id, "input": {"firstName": "T", "lastName": "K"}}),  # TAKEN
        (CONVERT_LEAD, {"id": lead_id, "input": {"clientId": client_id}}),  # archived
        (ARCHIVE_CLIENT, {"id": client_id}),  # ALREADY_ARCHIVED
        (RESTORE_CLIENT, {"id": to_global_id("Client", 999999)}),
    ]
    for query, variables in refused:
        [payload] = gql.data(query, variables).values()
        assert payload["userErrors"], (query, variables)

    assert log(gql) == before


@pytest.mark.parametrize("write", ["createLead", "convertLead", "archiveClient"])
def test_a_write_that_fails_after_its_events_are_written_appends_nothing(
    gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    lead_id = new_lead(gql, email="stays@example.com", firstName="S", lastName="T")
    client_id = new_client(gql, email="client@example.com")
    before = page(gql, first=100)
    calls: list[int] = []
    append = EventRepository.append

    async def append_then_fail(self: EventRepository, events: Any) -> None:
        await append(self, events)  # the counter taken, the rows inserted ...
        calls.append(len(events))
        raise RuntimeError("injected failure before the commit")  # ... and never committed

    monkeypatch.setattr(EventRepository, "append", append_then_fail)
    document, variables = {
        "createLead": (CREATE_LEAD, {"input": {"email": "lost@example.com"}}),
        "convertLead": (CONVERT_LEAD, {"id": lead_id}),
        "archiveClient": (ARCHIVE_CLIENT, {"id": client_id}),
    }[write]
    body = gql(document, variables)
    monkeypatch.undo()

    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert calls == [2 if write == "convertLead" else 1]
    assert page(gql, first=100) == before
    state = gql.data(
        "{ leads { totalCount nodes { status } } clients(filter: {status: [ACTIVE, ARCHIVED]})"
        " { totalCount nodes { status } } }"
    )
    assert state == {
        "leads": {"totalCount": 1, "nodes": [{"status": "NEW"}]},
        "clients": {"totalCount": 1, "nodes": [{"status": "ACTIVE"}]},
    }
    # The counter rolled back with the rest: the next event takes the seq that follows.
    new_lead(gql)
    cursors = [edge["cursor"] for edge in page(gql, first=100)["edges"]]
    assert [seq(c) for c in cursors] == [1, 2, 3]


# ---------------------------------------------------------------- reading the log


def test_events_page_forwards_and_backwards_oldest_first(gql: GraphQLClient) -> None:
    ids = [new_lead(gql, email=f"p{n}@example.com") for n in range(5)]

    first = page(gql, first=2)
    second = page(gql, first=2, after=first["pageInfo"]["endCursor"])
    third = page(gql, first=2, after=second["pageInfo"]["endCursor"])
    last = page(gql, last=2)
    before = page(gql, last=2, before=last["pageInfo"]["startCursor"])

    def records(got: dict[str, Any]) -> list[str]:
        return [edge["node"]["recordId"] for edge in got["edges"]]

    assert records(first) + records(second) + records(third) == ids
    assert (first["pageInfo"]["hasNextPage"], third["pageInfo"]["hasNextPage"]) == (True, False)
    assert second["pageInfo"]["hasPreviousPage"] is True
    assert records(last) == ids[3:] and last["pageInfo"]["hasPreviousPage"] is True
    assert records(before) == ids[1:3]
    assert first["totalCount"] == 5
    cursors = [e["cursor"] for got in (first, second, third) for e in got["edges"]]
    assert [seq(c) for c in cursors] == [1, 2, 3, 4, 5]


def test_a_records_history_is_its_events_with_the_same_cursors(gql: GraphQLClient) -> None:
    lead_id = new_lead(gql)
    new_lead(gql)
    for score in (1, 2, 3):
        mutate(gql, UPDATE_LEAD, {"id": lead_id, "input": {"score": score}})

    first = gql.data(LEAD_HISTORY, {"id": lead_id, "first": 2})["lead"]["history"]
    rest = gql.data(
        LEAD_HISTORY, {"id": lead_id, "first": 10, "after": first["pageInfo"]["endCursor"]}
    )["lead"]["history"]

    edges = first["edges"] + rest["edges"]
    assert first["totalCount"] == 4
    assert [e["node"]["type"] for e in edges] == ["LEAD_CREATED"] + ["LEAD_UPDATED"] * 3
    assert [e["node"]["changes"] for e in edges[1:]] == [
        [{"field": "score", "from": a, "to": b}] for a, b in ((0, 1), (1, 2), (2, 3))
    ]
    in_log = [e["cursor"] for e in page(gql, first=100, filter={"recordId": lead_id})["edges"]]
    assert [e["cursor"] for e in edges] == in_log
    assert [seq(c) for c in in_log] == [1, 3, 4, 5]


PAGE_OF_HISTORIES = """
query ($first: Int!, $last: Int!) {
  leads(first: 50, orderBy: {field: EMAIL}) {
    nodes {
      email
      oldest: history(first: $first) {
        nodes { type changes { field to } }
        pageInfo { hasNextPage hasPreviousPage }
      }
      newest: history(last: $last) { nodes { changes { field to } } pageInfo { hasPreviousPage } }
    }
  }
}
"""


def test_a_page_of_records_reads_their_histories_in_one_statement(
    gql: GraphQLClient, count_queries: Any
) -> None:
    """Each lead of a page gets its own history page (its events only, in order, paged by
    its own arguments), and the histories of the whole page cost one statement per distinct
    history page asked for, whatever the page size."""
    ids = [new_lead(gql, email=f"p{n:02d}@example.com") for n in range(12)]
    for n, lead_id in enumerate(ids):
        for score in range(1, n % 4 + 1):  # 0 to 3 updates each
            mutate(gql, UPDATE_LEAD, {"id": lead_id, "input": {"score": score * 10 + n}})

    with count_queries() as counted:
        nodes = gql.data(PAGE_OF_HISTORIES, {"first": 2, "last": 1})["leads"]["nodes"]

    assert [node["email"] for node in nodes] == [f"p{n:02d}@example.com" for n in range(12)]
    for n, node in enumerate(nodes):
        updates = n % 4
        oldest, newest = node["oldest"], node["newest"]
        scores = [c["to"] for e in oldest["nodes"][1:] for c in e["changes"]]
        assert [e["type"] for e in oldest["nodes"]] == ["LEAD_CREATED"] + ["LEAD_UPDATED"] * min(
            updates, 1
        )
        assert scores == [10 + n][: min(updates, 1)]
        assert oldest["pageInfo"] == {"hasNextPage": updates >= 2, "hasPreviousPage": False}
        last_change = newest["nodes"][0]["changes"]
        if updates:
            assert last_change == [{"field": "score", "to": updates * 10 + n}]
        else:
            assert {"field": "email", "to": f"p{n:02d}@example.com"} in last_change
        assert newest["pageInfo"] == {"hasPreviousPage": updates >= 1}
    # The credential, the page of leads, and one statement for each of the two history pages.
    assert counted.count == 4


def test_a_page_of_leads_with_their_history(gql: GraphQLClient) -> None:
    for n in range(3):
        new_lead(gql, email=f"h{n}@example.com")

    leads = gql.data(
        "{ leads(orderBy: {field: EMAIL}) { nodes { email history { nodes { type } } } } }"
    )

    assert leads["leads"]["nodes"] == [
        {"email": f"h{n}@example.com", "history": {"nodes": [{"type": "LEAD_CREATED"}]}}
        for n in range(3)
    ]


def test_events_filter_by_type_record_and_time(gql: GraphQLClient) -> None:
    lead_id = new_lead(gql)
    other_id = new_lead(gql)
    mutate(gql, UPDATE_LEAD, {"id": lead_id, "input": {"score": 9}})
    mutate(gql, UPDATE_LEAD, {"id": other_id, "input": {"score": 8}})
    everything = log(gql)
    third = datetime.fromisoformat(everything[2]["occurredAt"])

    updated = log(gql, types=["LEAD_UPDATED"])
    of_lead = log(gql, recordId=lead_id)
    both = log(gql, types=["LEAD_CREATED", "LEAD_UPDATED"], recordId=other_id)
    since = log(gql, occurredAt={"gte": third.isoformat()})
    until = log(gql, occurredAt={"lt": third.isoformat()})

    assert [e["recordId"] for e in updated] == [lead_id, other_id]
    assert kinds(of_lead) == ["LEAD_CREATED", "LEAD_UPDATED"]
    assert kinds(both) == ["LEAD_CREATED", "LEAD_UPDATED"] and both[0]["recordId"] == other_id
    assert since == everything[2:] and until == everything[:2]
    assert page(gql, filter={"types": ["CLIENT_CREATED"]})["totalCount"] == 0
    # Another type's ID, or one no record can have: well-formed, so no error, and no events.
    for record_id in (to_global_id("User", 1), to_global_id("Lead", 2**40)):
        assert page(gql, filter={"recordId": record_id})["edges"] == []


@pytest.mark.parametrize(
    ("variables", "message", "argument"),
    [
        ({"filter": {"recordId": "not-an-id"}}, "Argument 'filter.recordId' is not a valid ID.",
         "filter.recordId"),
        ({"after": "nope"}, "Argument 'after' is not a valid cursor.", "after"),
        # A cursor of another list (leads, CREATED_AT DESC) is not an event cursor.
        ({"after": "WyJDUkVBVEVEX0FUOkRFU0MiLCIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwxXQ"},
         "Argument 'after' is not a valid cursor.", "after"),
        ({"before": base64.urlsafe_b64encode(b'["SEQ",-1]').decode()},
         "Argument 'before' is not a valid cursor.", "before"),
        ({"first": 101}, "Argument 'first' must be at most 100 (got 101).", "first"),
    ],
)  # fmt: skip
def test_bad_event_arguments_are_clean_errors(
    gql: GraphQLClient, variables: dict[str, Any], message: str, argument: str
) -> None:
    assert error(gql(EVENTS, variables)) == {
        "message": message,
        "code": "BAD_USER_INPUT",
        "argument": argument,
    }


def test_an_event_is_a_node(gql: GraphQLClient) -> None:
    lead_id = new_lead(gql, email="node@example.com")
    [event] = log(gql)

    found = gql.data(
        "query ($id: ID!) { node(id: $id) { __typename id ... on Event { type recordId } } }",
        {"id": event["id"]},
    )

    assert found["node"] == {
        "__typename": "Event",
        "id": event["id"],
        "type": "LEAD_CREATED",
        "recordId": lead_id,
    }


def test_the_log_is_the_callers_workspace_and_each_workspace_counts_its_own(
    server: LiveServer, gql: GraphQLClient
) -> None:
    lead_id = new_lead(gql)
    [mine] = log(gql)
    secret, _, _ = server.run(
        create_key_for_workspace(server.db, "Other Co", Role.OWNER, "other owner")
    )
    other = gql.as_(secret)
    viewer_secret, _, _ = server.run(
        create_key_for_workspace(server.db, "Default", Role.VIEWER, "viewer")
    )

    assert page(other)["totalCount"] == 0
    assert page(other, filter={"recordId": lead_id})["edges"] == []
    assert other.data("query ($id: ID!) { node(id: $id) { id } }", {"id": mine["id"]}) == {
        "node": None
    }
    new_lead(other)
    [theirs] = other.data(EVENTS, {})["events"]["edges"]
    assert seq(theirs["cursor"]) == 1  # a workspace's own sequence
    assert theirs["node"]["actor"] == {"__typename": "ApiKey", "name": "other owner"}
    assert log(gql) == [mine]
    assert log(gql.as_(viewer_secret)) == [mine]  # VIEWER and up read the log


# ---------------------------------------------------------------- order under concurrent writes

WRITERS = 8


def slow_commits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each write waits a little between appending its events and committing: a writer that
    took a seq before an earlier one committed would then show up in the log ahead of it."""
    append = EventRepository.append

    async def append_then_wait(self: EventRepository, events: Any) -> int | None:
        last = await append(self, events)
        await asyncio.sleep(random.uniform(0, 0.01))
        return last

    monkeypatch.setattr(EventRepository, "append", append_then_wait)


def write_concurrently(
    server: LiveServer, writes_each: int
) -> tuple[list[tuple[float, float, str]], list[dict[str, Any]]]:
    """WRITERS threads create and update leads while a consumer pages the log with after.
    Returns each write's (sent, answered, lead id) and what the consumer saw, in order."""
    headers = {"Authorization": f"Bearer {OWNER_KEY}"}
    done = threading.Event()
    seen: list[dict[str, Any]] = []

    def writer(n: int) -> list[tuple[float, float, str]]:
        timings = []
        with httpx.Client(base_url=server.url, timeout=60, headers=headers) as client:
            for k in range(writes_each):
                sent = time.monotonic()
                body = client.post(
                    "/graphql",
                    json={
                        "query": CREATE_LEAD,
                        "variables": {"input": {"email": f"w{n}.{k}@x.io"}},
                    },
                ).json()
                answered = time.monotonic()
                timings.append((sent, answered, body["data"]["createLead"]["lead"]["id"]))
        return timings

    def consumer() -> None:
        after = None
        with httpx.Client(base_url=server.url, timeout=60, headers=headers) as client:
            while True:
                finished = done.is_set()  # read before the page: one more page after the end
                body = client.post(
                    "/graphql", json={"query": EVENTS, "variables": {"first": 7, "after": after}}
                ).json()
                edges = body["data"]["events"]["edges"]
                seen.extend(
                    {"cursor": e["cursor"], "recordId": e["node"]["recordId"]} for e in edges
                )
                after = edges[-1]["cursor"] if edges else after
                if finished and not edges:
                    return

    with ThreadPoolExecutor(max_workers=WRITERS + 1) as pool:
        reading = pool.submit(consumer)
        timings = [t for ts in pool.map(writer, range(WRITERS)) for t in ts]
        done.set()
        reading.result(timeout=120)
    return timings, seen


def assert_in_commit_order(
    gql: GraphQLClient, timings: list[tuple[float, float, str]], seen: list[dict[str, Any]]
) -> None:
    final = [
        {"cursor": e["cursor"], "recordId": e["node"]["recordId"]}
        for e in page(gql, first=100)["edges"]
    ]
    # The consumer saw every event once, in order, though it read while they were written.
    assert seen == final
    assert [seq(e["cursor"]) for e in final] == list(range(1, len(timings) + 1))
    # A write answered before another was sent committed first, so its seq is smaller.
    seq_of = {e["recordId"]: seq(e["cursor"]) for e in final}
    ordered = sorted(timings, key=lambda t: t[1])
    for sent, _, lead_id in timings:
        earlier = [seq_of[i] for _, answered, i in ordered if answered < sent]
        assert all(s < seq_of[lead_id] for s in earlier)


def test_a_consumer_paging_with_after_sees_every_event_once_while_writes_go_on(
    server: LiveServer, gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_commits(monkeypatch)
    timings, seen = write_concurrently(server, writes_each=4)
    monkeypatch.undo()

    assert_in_commit_order(gql, timings, seen)


@pytest.mark.postgresql
def test_seq_order_is_commit_order_with_many_concurrent_writers_on_postgresql(
    server: LiveServer, gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL writers run at once (SQLite has one writer): the counter's row lock must
    make each wait for the commit before it."""
    slow_commits(monkeypatch)
    timings, seen = write_concurrently(server, writes_each=12)
    monkeypatch.undo()

    assert len(timings) == WRITERS * 12 <= 100
    assert_in_commit_order(gql, timings, seen)


@pytest.mark.postgresql
def test_a_write_not_yet_committed_holds_back_no_other_writer_on_postgresql(
    server: LiveServer, gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a write's events are numbered when it commits (migration 0007): a write
    that has appended its events and not yet committed locks nothing another writer of the
    workspace needs, and the one that commits first gets the earlier seq."""
    append = EventRepository.append
    held, release = threading.Event(), threading.Event()

    async def append_then_hold(self: EventRepository, events: Any) -> int | None:
        last = await append(self, events)
        if not held.is_set():  # the first write only
            held.set()
            while not release.is_set():
                await asyncio.sleep(0.01)
        return last

    monkeypatch.setattr(EventRepository, "append", append_then_hold)
    headers = {"Authorization": f"Bearer {OWNER_KEY}"}

    def create(email: str) -> str:
        with httpx.Client(base_url=server.url, timeout=30, headers=headers) as client:
            body = client.post(
                "/graphql", json={"query": CREATE_LEAD, "variables": {"input": {"email": email}}}
            ).json()
        return str(body["data"]["createLead"]["lead"]["id"])

    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(create, "first@x.io")
        assert held.wait(30)
        try:
            # With the counter's row taken before the commit, this one waited for the first.
            second = create("second@x.io")
            assert not first.done()
        finally:
            release.set()
        first_id = first.result(timeout=30)
    monkeypatch.undo()

    edges = page(gql, first=10)["edges"]
    assert [(e["node"]["recordId"], seq(e["cursor"])) for e in edges] == [
        (second, 1),
        (first_id, 2),
    ]


# ---------------------------------------------------------------- no work past the response


async def _asgi_post(app: Any, document: str) -> tuple[dict[str, Any], list[str]]:
    """POSTs ``document`` to the app on the server's own loop; the body, and the tasks the
    request left running once its response was sent (its own: not the background work's)."""
    sent: list[Any] = []
    body = json.dumps({"query": document}).encode()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    headers = [
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {OWNER_KEY}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    with CreatedTasks().watching() as tasks:
        await app(scope, receive, send)
    response = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return json.loads(response), tasks.running()


def test_a_history_argument_error_leaves_no_load_of_its_siblings_running(
    server: LiveServer, gql: GraphQLClient
) -> None:
    """history is non-null: its error nulls the client and cancels its sibling fields, whose
    DataLoader batches (database reads) had started: those still end before the response goes
    out (resolvers/loaders.py, InFlight; schema/extensions.py, SettledLoads)."""
    client_id = new_client(gql)
    document = f"""{{ client(id: "{client_id}") {{
        convertedFrom {{ id }} createdBy {{ __typename }}
        history(first: 1, last: 1) {{ totalCount }}
    }} }}"""

    body, left = server.run(_asgi_post(server.app, document))

    assert body["data"] == {"client": None}
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert left == []


def _locks_of_others(server: LiveServer, tables: list[str]) -> list[dict[str, Any]]:
    """The connections to the suite's database (this check's own aside) holding a lock on one
    of ``tables``, from the server's view of them (pg_locks, pg_stat_activity)."""
    url = make_url(server.settings.database_url).set(drivername="postgresql")

    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(url.render_as_string(hide_password=False))
        try:
            rows = await conn.fetch(
                "SELECT DISTINCT l.relation::regclass::text AS table, a.state, a.wait_event,"
                " a.query FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.relation IN (SELECT unnest($1::text[])::regclass)"
                " AND a.pid <> pg_backend_pid()",
                tables,
            )
        finally:
            await conn.close()
        return [dict(row) for row in rows]

    return asyncio.run(run())


@pytest.mark.postgresql
def test_a_load_cancelled_mid_fetch_leaves_no_statement_open_on_the_server(
    server: LiveServer, gql: GraphQLClient
) -> None:
    """The sibling loads history's error cancels may be inside their statement on the server
    (prepared, not yet run): the read ends it before the response, so no connection is left
    holding the locks it took (db/reads.py). One had stayed so for minutes, and the TRUNCATE
    between tests waited on it. Several requests: where the cancellation lands varies."""
    client_id = new_client(gql)
    document = f"""{{ client(id: "{client_id}") {{
        convertedFrom {{ id }} createdBy {{ __typename }}
        history(first: 1, last: 1) {{ totalCount }}
    }} }}"""

    for _ in range(10):
        body = gql(document)

        assert body["data"] == {"client": None}
        assert _locks_of_others(server, ["leads", "clients", "users", "api_keys"]) == []
