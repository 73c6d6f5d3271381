"""The right to erasure (issue 13): one address planted everywhere the API lets it live (leads
in two spellings, an update, a merge, a conversion, activities, a follow-up, a ticket and its
comment, webhook deliveries, an import with a bad row, a web form post, a sign-in code, an
invitation), then ``eraseContact``: a dry run counts and changes nothing; the erasure leaves
the address in no column of any table (the schema is introspected, so a new table is searched
too), keeps everyone else's data, and logs one CONTACT_ERASED event without the data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData, select

from tests.conftest import GraphQLClient, LiveServer
from tests.receivers import Receiver, wait_until

EMAIL = "Erin.Erased@Example.com"
NEEDLE = EMAIL.casefold()
ERASE = """
mutation ($email: String!, $dryRun: Boolean) {
  eraseContact(email: $email, dryRun: $dryRun) {
    erased { leads clients events other }
    userErrors { field message code }
  }
}
"""
LEADS = "{ leads(first: 100) { nodes { id email notes } aggregate { count } } }"
EVENTS = "{ events(last: 20) { nodes { type recordId changes { field from to } } } }"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def mutate(gql: GraphQLClient, document: str, variables: dict[str, Any]) -> Any:
    data = gql.data(document, variables)
    (payload,) = data.values()
    assert payload.get("userErrors", []) == [], payload
    return payload


def where_is(server: LiveServer, needle: str) -> list[str]:
    """Every table.column of the database whose value holds ``needle``, any case: every table
    the database has (reflected, not the models: FTS tables, new tables), every column, text,
    JSON or bytes."""

    async def scan() -> list[str]:
        found = []
        async with server.db.read() as conn:
            meta = MetaData()
            await conn.run_sync(lambda sync: meta.reflect(sync))
            for table in meta.sorted_tables:
                for row in (await conn.execute(select(table))).all():
                    for column, value in zip(table.columns, row, strict=True):
                        if isinstance(value, bytes | bytearray | memoryview):
                            text = bytes(value).decode("utf-8", "replace")
                        elif isinstance(value, dict | list):
                            text = json.dumps(value, ensure_ascii=False)
                        else:
                            text = str(value)
                        if needle in text.casefold():
                            found.append(f"{table.name}.{column.name}")
        return sorted(set(found))

    return server.run(scan())


def plant(gql: GraphQLClient, http: httpx.Client, receiver: Receiver) -> dict[str, str]:
    ids: dict[str, str] = {}
    endpoint = mutate(
        gql,
        "mutation ($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) "
        "{ endpoint { id } userErrors { code } } }",
        {"input": {"url": receiver.url}},
    )
    ids["endpoint"] = endpoint["endpoint"]["id"]
    create = (
        "mutation ($input: CreateLeadInput!) { createLead(input: $input) "
        "{ lead { id } userErrors { code } } }"
    )
    ids["lead"] = mutate(
        gql,
        create,
        {
            "input": {
                "email": EMAIL,
                "firstName": "Erin",
                "lastName": "Erased",
                "phone": "+1 415 555 0199",
                "notes": f"write to {EMAIL}",
                "metadata": {"contact": EMAIL},
                "externalIds": [{"system": "crm", "id": "erin-1"}],
            }
        },
    )["lead"]["id"]
    ids["twin"] = mutate(gql, create, {"input": {"email": EMAIL.upper(), "company": "Erin Co"}})[
        "lead"
    ]["id"]
    ids["dupe"] = mutate(gql, create, {"input": {"email": EMAIL.lower(), "notes": "dupe"}})["lead"][
        "id"
    ]
    ids["keep"] = mutate(
        gql, create, {"input": {"email": "keep@example.com", "notes": f"met {EMAIL} once"}}
    )["lead"]["id"]
    mutate(
        gql,
        'mutation ($id: ID!) { updateLead(id: $id, input: {city: "Erinville"}) '
        "{ userErrors { code } } }",
        {"id": ids["lead"]},
    )
    mutate(
        gql,
        "mutation ($input: MergeLeadsInput!) { mergeLeads(input: $input) { userErrors { code } } }",
        {"input": {"survivorId": ids["twin"], "mergedIds": [ids["dupe"]]}},
    )
    mutate(
        gql,
        "mutation ($input: AddActivityInput!) { addActivity(input: $input) "
        "{ userErrors { code } } }",
        {"input": {"subjectId": ids["lead"], "kind": "EMAIL", "body": f"mailed {EMAIL}"}},
    )
    due = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    mutate(
        gql,
        "mutation ($input: CreateFollowUpInput!) { createFollowUp(input: $input) "
        "{ userErrors { code } } }",
        {"input": {"subjectId": ids["lead"], "title": "Call Erin", "dueAt": due, "notes": EMAIL}},
    )
    # A form post: the lead is upserted by email.
    form = mutate(
        gql,
        'mutation { createLeadForm(input: {name: "Contact"}) '
        "{ form { key } userErrors { code } } }",
        {},
    )["form"]
    posted = http.post(
        f"/forms/{form['key']}",
        data={"email": EMAIL, "notes": "from the form"},
        headers={"Authorization": ""},
    )
    assert posted.status_code in (200, 201, 303), posted.text
    converted = mutate(
        gql,
        "mutation ($id: ID!) { convertLead(id: $id) { client { id } userErrors { code } } }",
        {"id": ids["lead"]},
    )
    ids["client"] = converted["client"]["id"]
    ticket = mutate(
        gql,
        "mutation ($input: CreateTicketInput!) { createTicket(input: $input) "
        "{ ticket { id } userErrors { code } } }",
        {"input": {"clientId": ids["client"], "subject": "Erin's order", "description": EMAIL}},
    )
    mutate(
        gql,
        "mutation ($input: AddTicketCommentInput!) { addTicketComment(input: $input) "
        "{ userErrors { code } } }",
        {"input": {"ticketId": ticket["ticket"]["id"], "body": f"replied to {EMAIL}"}},
    )
    # An import whose one bad row carries the address (its row error names the field, not the
    # value, and a finished import's upload is gone: the scan below checks both).
    body = f"email,score\n{EMAIL},not-a-number\nfine@example.com,5\n"
    response = http.post(
        "/imports/leads", content=body.encode(), headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 202, response.text
    job = response.json()["id"]
    wait_until(
        lambda: (
            gql.data("query ($id: ID!) { importJob(id: $id) { status } }", {"id": job})[
                "importJob"
            ]["status"]
            not in ("QUEUED", "RUNNING")
        )
    )
    # A sign-in code asked for the address (no account: only the rate-limit counters keep it),
    # and an invitation to the workspace (its code row keeps it).
    gql.data(
        "mutation ($e: String!) { requestSignInCode(input: {email: $e}) { sent } }", {"e": EMAIL}
    )
    mutate(
        gql,
        "mutation ($e: String!) { inviteMember(input: {email: $e, role: MEMBER}) "
        "{ userErrors { code } } }",
        {"e": EMAIL},
    )
    # Webhook deliveries of those events exist (their bodies are made from the events).
    wait_until(lambda: receiver.requests, timeout=20)
    return ids


def test_erasure_leaves_the_address_nowhere(
    gql: GraphQLClient, http: httpx.Client, server: LiveServer, receiver: Receiver
) -> None:
    ids = plant(gql, http, receiver)
    planted = where_is(server, NEEDLE)
    for place in (
        "leads.email",
        "clients.email",
        "events.changes",
        "activities.body",
        "follow_ups.notes",
        "tickets.description",
        "ticket_comments.body",
        "email_codes.email_key",
        "rate_limits.key",
    ):
        assert place in planted, planted
    leads_before = gql.data(LEADS)["leads"]["aggregate"]["count"]

    dry = gql.data(ERASE, {"email": EMAIL.lower(), "dryRun": True})["eraseContact"]
    assert dry["userErrors"] == []
    counts = dry["erased"]
    assert counts["leads"] == 2 and counts["clients"] == 1, counts
    assert counts["events"] > 5 and counts["other"] >= 6, counts
    assert where_is(server, NEEDLE) == planted  # nothing changed
    assert gql.data(LEADS)["leads"]["aggregate"]["count"] == leads_before

    done = gql.data(ERASE, {"email": EMAIL})["eraseContact"]
    assert done == {"erased": counts, "userErrors": []}
    assert where_is(server, NEEDLE) == []
    assert where_is(server, "erin co") == []  # the twin's company went with it
    assert where_is(server, "erinville") == []  # an old value in the lead's events

    # Everyone else stays; the mention of the address in another lead's notes is blanked.
    nodes = gql.data(LEADS)["leads"]["nodes"]
    assert {n["email"] for n in nodes} == {"keep@example.com", "fine@example.com"}
    keep = next(n for n in nodes if n["id"] == ids["keep"])
    assert keep["notes"] == "met [erased] once"
    found = gql.data(
        "query ($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        {"ids": [ids["lead"], ids["twin"], ids["client"]]},
    )
    assert found["nodes"] == [None, None, None]
    # One event says an erasure happened, with the counts only.
    events = gql.data(EVENTS)["events"]["nodes"]
    erased = [e for e in events if e["type"] == "CONTACT_ERASED"]
    assert erased == [
        {
            "type": "CONTACT_ERASED",
            "recordId": erased[0]["recordId"],
            "changes": [{"field": k, "from": None, "to": v} for k, v in counts.items()],
        }
    ]
    # Again: nothing left to erase.
    again = gql.data(ERASE, {"email": EMAIL, "dryRun": True})["eraseContact"]["erased"]
    assert again == {"leads": 0, "clients": 0, "events": 0, "other": 0}


def test_erasure_needs_a_valid_email_and_an_owner(gql: GraphQLClient) -> None:
    out = gql.data(ERASE, {"email": "not an email"})["eraseContact"]
    assert out["erased"] is None
    assert [(e["field"], e["code"]) for e in out["userErrors"]] == [(["email"], "INVALID")]
