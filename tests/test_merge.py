"""mergeLeads: field choices, metadata and external IDs united, dry runs, the converted-lead
rule, every validation error, roles, merged IDs that find the survivor, the LEAD_MERGED
event, and nothing half-done."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from db.models import Role
from db.models.intake import LeadExternalId, LeadMerge
from db.models.leads import Lead
from resolvers.auth import create_key_for_workspace
from resolvers.ids import to_global_id
from tests.conftest import GraphQLClient, LiveServer
from tests.factories import BASE_TIME, client_values, create_clients, create_leads, lead_values
from tests.test_owners_and_tags import member

LEAD_FIELDS = """
  id email firstName lastName phone company city state postalCode source notes status score
  metadata convertedAt
"""
MERGE = f"""
mutation ($input: MergeLeadsInput!) {{
  mergeLeads(input: $input) {{
    lead {{ {LEAD_FIELDS} }} mergedLeadIds userErrors {{ field message code }}
  }}
}}
"""
LEAD = f"query ($id: ID!) {{ lead(id: $id) {{ {LEAD_FIELDS} }} }}"
NODE = "query ($id: ID!) { node(id: $id) { __typename id } }"
STATE = """
{
  leads(first: 100, orderBy: {field: EMAIL}) {
    totalCount nodes { id email firstName phone metadata updatedAt }
  }
  events { totalCount }
}
"""
EVENTS = """
{ events { nodes { type recordId changes { field from to } } } }
"""
CREATE_API_KEY = """
mutation ($role: Role!) { createApiKey(input: {name: "k", role: $role}) { secret } }
"""


def merge(gql: GraphQLClient, **input_: Any) -> dict[str, Any]:
    payload: dict[str, Any] = gql.data(MERGE, {"input": input_})["mergeLeads"]
    return payload


def pk(global_id: str) -> int:
    return int(base64.b64decode(global_id).decode().split(":")[1])


def at(minutes: int) -> dict[str, Any]:
    """created_at/updated_at ``minutes`` after the factories' base time."""
    t = BASE_TIME + timedelta(days=1, minutes=minutes)
    return {"created_at": t, "updated_at": t}


@pytest.fixture
def three(server: LiveServer) -> list[str]:
    """A survivor and two leads to merge into it, the second updated last."""
    return create_leads(
        server,
        lead_values(
            email="ann@acme.com",
            phone="111",
            company="Acme",
            meta={"a": 1, "b": "survivor"},
            **at(0),
        ),
        lead_values(
            email="ann.lee@acme.com",
            first_name="Ann",
            phone="222",
            city="Austin",
            meta={"b": "first", "c": "first"},
            **at(1),
        ),
        lead_values(
            email="a.lee@acme.com",
            first_name="Anna",
            last_name="Lee",
            notes="met at the fair",
            meta={"c": "second", "d": "second"},
            **at(2),
        ),
    )


def test_a_merge_takes_chosen_fields_then_the_survivors_then_the_newest(
    gql: GraphQLClient, three: list[str]
) -> None:
    survivor, first, second = three

    payload = merge(
        gql,
        survivorId=survivor,
        mergedIds=[first, second],
        fieldSources=[{"field": "phone", "leadId": first}, {"field": "city", "leadId": survivor}],
    )

    assert payload == {
        "lead": {
            "id": survivor,
            "email": "ann@acme.com",
            "firstName": "Anna",  # the survivor has none: the newest merged lead's
            "lastName": "Lee",
            "phone": "222",  # chosen
            "company": "Acme",
            "city": None,  # chosen: the survivor's, empty
            "state": None,
            "postalCode": None,
            "source": None,
            "notes": "met at the fair",
            "status": "NEW",
            "score": 0,
            "metadata": {"a": 1, "b": "survivor", "c": "first", "d": "second"},
            "convertedAt": None,
        },
        "mergedLeadIds": [first, second],
        "userErrors": [],
    }
    assert gql.data(LEAD, {"id": survivor})["lead"] == payload["lead"]


def test_merged_ids_find_the_survivor(gql: GraphQLClient, three: list[str]) -> None:
    survivor, first, second = three

    merge(gql, survivorId=survivor, mergedIds=[first, second])

    assert gql.data(LEAD, {"id": first})["lead"]["id"] == survivor
    assert gql.data(NODE, {"id": second}) == {"node": {"__typename": "Lead", "id": survivor}}
    assert gql.data(STATE)["leads"]["totalCount"] == 1


def test_ids_merged_twice_find_the_last_survivor(gql: GraphQLClient, three: list[str]) -> None:
    survivor, first, second = three

    merge(gql, survivorId=first, mergedIds=[second])
    merge(gql, survivorId=survivor, mergedIds=[first])

    for old in (first, second):
        assert gql.data(NODE, {"id": old}) == {"node": {"__typename": "Lead", "id": survivor}}


def test_external_ids_are_united_the_survivors_first(
    server: LiveServer, gql: GraphQLClient
) -> None:
    ids = {
        "survivor": [{"system": "Salesforce", "id": "S1"}],
        "first": [{"system": "salesforce", "id": "F1"}, {"system": "hubspot", "id": "F2"}],
        "second": [{"system": "HubSpot", "id": "S2"}, {"system": "pipedrive", "id": "S3"}],
    }
    survivor, first, second = create_leads(
        server, *(lead_values(external_ids=v) for v in ids.values())
    )

    assert merge(gql, survivorId=survivor, mergedIds=[first, second])["userErrors"] == []

    column, rows = _external_ids(server)
    assert column == [
        {"system": "Salesforce", "id": "S1"},
        {"system": "hubspot", "id": "F2"},
        {"system": "pipedrive", "id": "S3"},
    ]
    assert rows == [
        (pk(survivor), "hubspot", "F2"),
        (pk(survivor), "pipedrive", "S3"),
        (pk(survivor), "salesforce", "S1"),
    ]


def test_a_dry_run_answers_the_merged_lead_and_writes_nothing(
    gql: GraphQLClient, three: list[str]
) -> None:
    survivor, first, second = three
    before = gql.data(STATE)

    payload = merge(gql, survivorId=survivor, mergedIds=[first, second], dryRun=True)

    assert payload["userErrors"] == []
    assert payload["mergedLeadIds"] == [first, second]
    assert (payload["lead"]["id"], payload["lead"]["firstName"]) == (survivor, "Anna")
    assert gql.data(STATE) == before
    assert gql.data(NODE, {"id": first}) == {"node": {"__typename": "Lead", "id": first}}


def test_a_converted_lead_can_survive(server: LiveServer, gql: GraphQLClient) -> None:
    survivor, other = _converted_and_not(server)

    payload = merge(gql, survivorId=survivor, mergedIds=[other])

    assert payload["userErrors"] == []
    assert payload["lead"]["convertedAt"] is not None


def test_a_converted_lead_cannot_be_merged_into_another(
    server: LiveServer, gql: GraphQLClient
) -> None:
    converted, survivor = _converted_and_not(server)
    before = gql.data(STATE)

    payload = merge(gql, survivorId=survivor, mergedIds=[converted])

    assert payload == {
        "lead": None,
        "mergedLeadIds": None,
        "userErrors": [
            {
                "field": ["input", "mergedIds", "0"],
                "message": "A converted lead cannot be merged into another lead; make it the "
                "survivor.",
                "code": "ALREADY_CONVERTED",
            }
        ],
    }
    assert gql.data(STATE) == before


def test_every_input_error_is_told_at_once(gql: GraphQLClient, three: list[str]) -> None:
    survivor, first, _ = three
    errors = merge(
        gql,
        survivorId=survivor,
        mergedIds=[first, survivor, first, "bad"],
        fieldSources=[
            {"field": "metadata", "leadId": survivor},
            {"field": "phone", "leadId": to_global_id("Lead", 999)},
            {"field": "phone", "leadId": first},
        ],
    )["userErrors"]

    assert errors == [
        {
            "field": ["input", "mergedIds", "1"],
            "message": "The survivor cannot be merged into itself.",
            "code": "INVALID",
        },
        {
            "field": ["input", "mergedIds", "2"],
            "message": "This lead is listed twice.",
            "code": "INVALID",
        },
        {
            "field": ["input", "mergedIds", "3"],
            "message": "This is not a valid ID.",
            "code": "INVALID",
        },
        {
            "field": ["input", "fieldSources", "0", "field"],
            "message": "A merge chooses one of: email, firstName, lastName, phone, company, city, "
            "state, postalCode, source, notes, status, score (metadata and externalIds are "
            "united).",
            "code": "INVALID",
        },
        {
            "field": ["input", "fieldSources", "1", "leadId"],
            "message": "This lead is neither the survivor nor one merged.",
            "code": "INVALID",
        },
        {
            "field": ["input", "fieldSources", "2", "field"],
            "message": "This field is chosen twice.",
            "code": "INVALID",
        },
    ]


@pytest.mark.parametrize("count", [0, 11])
def test_one_to_ten_leads_are_merged_at_a_time(gql: GraphQLClient, count: int) -> None:
    ids = [to_global_id("Lead", n) for n in range(2, 2 + count)]

    errors = merge(gql, survivorId=to_global_id("Lead", 1), mergedIds=ids)["userErrors"]

    assert errors == [
        {
            "field": ["input", "mergedIds"],
            "message": "Merge 1 to 10 leads at a time.",
            "code": "INVALID",
        }
    ]


def test_missing_leads_are_not_found_each_at_its_path(gql: GraphQLClient, three: list[str]) -> None:
    _, first, _ = three
    missing = to_global_id("Lead", 999)

    payload = merge(gql, survivorId=missing, mergedIds=[first, to_global_id("Lead", 998)])

    assert payload["userErrors"] == [
        {"field": ["input", "survivorId"], "message": "No lead with this ID.", "code": "NOT_FOUND"},
        {
            "field": ["input", "mergedIds", "1"],
            "message": "No lead with this ID.",
            "code": "NOT_FOUND",
        },
    ]
    assert gql.data(STATE)["leads"]["totalCount"] == 3


@pytest.mark.parametrize("role", ["VIEWER", "MEMBER"])
def test_merging_needs_the_admin_role(gql: GraphQLClient, three: list[str], role: str) -> None:
    survivor, first, _ = three
    secret = gql.data(CREATE_API_KEY, {"role": role})["createApiKey"]["secret"]
    before = gql.data(STATE)

    body = gql.as_(secret)(MERGE, {"input": {"survivorId": survivor, "mergedIds": [first]}})

    assert body["data"] is None
    assert [(e["message"], e["extensions"]) for e in body["errors"]] == [
        (f"This needs the ADMIN role in this workspace (you have {role}).", {"code": "FORBIDDEN"})
    ]
    assert gql.data(STATE) == before


def test_a_merge_logs_one_lead_merged_event(gql: GraphQLClient, three: list[str]) -> None:
    survivor, first, second = three

    merge(gql, survivorId=survivor, mergedIds=[first, second])

    assert gql.data(EVENTS)["events"]["nodes"] == [
        {
            "type": "LEAD_MERGED",
            "recordId": survivor,
            "changes": [
                {"field": "firstName", "from": None, "to": "Anna"},
                {"field": "lastName", "from": None, "to": "Lee"},
                {"field": "city", "from": None, "to": "Austin"},
                {"field": "notes", "from": None, "to": "met at the fair"},
                {
                    "field": "metadata",
                    "from": {"a": 1, "b": "survivor"},
                    "to": {"a": 1, "b": "survivor", "c": "first", "d": "second"},
                },
                {"field": "mergedLeadIds", "from": None, "to": [first, second]},
            ],
        }
    ]


@pytest.fixture
def failing_delete(server: LiveServer) -> Iterator[None]:
    """A trigger that fails the DELETE of the lead with the email boom@example.com: the
    merge's last statement."""
    if server.db.is_sqlite:
        create = [
            "CREATE TRIGGER boom BEFORE DELETE ON leads WHEN old.email = 'boom@example.com' "
            "BEGIN SELECT RAISE(ABORT, 'boom'); END"
        ]
        drop = ["DROP TRIGGER boom"]
    else:
        create = [
            "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
            "IF old.email = 'boom@example.com' THEN RAISE EXCEPTION 'boom'; END IF; "
            "RETURN old; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER boom BEFORE DELETE ON leads FOR EACH ROW EXECUTE FUNCTION boom()",
        ]
        drop = ["DROP TRIGGER boom ON leads", "DROP FUNCTION boom()"]

    async def run(statements: list[str]) -> None:
        async with server.db.write() as conn:
            for statement in statements:
                await conn.execute(text(statement))

    server.run(run(create))
    yield
    server.run(run(drop))


def test_a_merge_that_fails_midway_leaves_everything_as_it_was(
    server: LiveServer, gql: GraphQLClient, failing_delete: None
) -> None:
    survivor, first, second = create_leads(
        server,
        lead_values(email="s@example.com", external_ids=[{"system": "crm", "id": "1"}]),
        lead_values(email="m@example.com", first_name="Ann", meta={"k": 1}),
        lead_values(email="boom@example.com", external_ids=[{"system": "erp", "id": "2"}]),
    )
    before = (gql.data(STATE), _external_ids(server), _merges(server))

    body = gql(MERGE, {"input": {"survivorId": survivor, "mergedIds": [first, second]}})

    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert (gql.data(STATE), _external_ids(server), _merges(server)) == before


# ---------------------------------------------------------------- helpers


def _converted_and_not(server: LiveServer) -> list[str]:
    [client] = create_clients(server, client_values())
    return create_leads(
        server,
        lead_values(status="WON", converted_at=BASE_TIME, converted_client_id=pk(client), **at(0)),
        lead_values(**at(1)),
    )


def _external_ids(server: LiveServer) -> tuple[list[Any], list[tuple[int, str, str]]]:
    """The first lead's external_ids column, and every row of the lookup table."""

    async def read() -> tuple[list[Any], list[tuple[int, str, str]]]:
        async with server.db.read() as conn:
            leads = Lead.__table__  # type: ignore[attr-defined]
            e = LeadExternalId.__table__.c  # type: ignore[attr-defined]
            column = (
                await conn.execute(select(leads.c.external_ids).order_by(leads.c.id).limit(1))
            ).scalar_one()
            rows = await conn.execute(
                select(e.lead_id, e.system_key, e.external_id).order_by(e.lead_id, e.system_key)
            )
            return column, [tuple(r) for r in rows]

    return server.run(read())


def _merges(server: LiveServer) -> list[tuple[int, int]]:
    async def read() -> list[tuple[int, int]]:
        async with server.db.read() as conn:
            m = LeadMerge.__table__.c  # type: ignore[attr-defined]
            rows = await conn.execute(select(m.merged_id, m.survivor_id))
            return [tuple(r) for r in rows]

    return server.run(read())


CREATE_LEAD = """
mutation ($input: CreateLeadInput!) { createLead(input: $input) { lead { id } } }
"""
DUPLICATES = "query ($id: ID!) { lead(id: $id) { duplicates { lead { id } } } }"


def test_merged_ids_and_duplicates_stay_in_their_workspace(
    server: LiveServer, gql: GraphQLClient
) -> None:
    secret, _, _ = server.run(create_key_for_workspace(server.db, "Other Co", Role.OWNER, "other"))
    other = gql.as_(secret)
    theirs = [
        other.data(CREATE_LEAD, {"input": {"email": "same@example.com"}})["createLead"]["lead"][
            "id"
        ]
        for _ in range(2)
    ]
    [mine] = create_leads(server, lead_values(email="same@example.com"))

    assert merge(other, survivorId=theirs[0], mergedIds=[theirs[1]])["userErrors"] == []

    assert gql.data(NODE, {"id": theirs[1]}) == {"node": None}
    assert gql.data(DUPLICATES, {"id": mine}) == {"lead": {"duplicates": []}}
    assert merge(gql, survivorId=mine, mergedIds=[theirs[0]])["userErrors"] == [
        {
            "field": ["input", "mergedIds", "0"],
            "message": "No lead with this ID.",
            "code": "NOT_FOUND",
        }
    ]


def test_metadata_too_large_once_united_is_refused(server: LiveServer, gql: GraphQLClient) -> None:
    survivor, merged = create_leads(
        server, lead_values(meta={"a": "x" * 9000}), lead_values(meta={"b": "y" * 9000})
    )
    size = len(json.dumps({"b": "y" * 9000, "a": "x" * 9000}, separators=(",", ":")))

    payload = merge(gql, survivorId=survivor, mergedIds=[merged])

    assert payload["userErrors"] == [
        {
            "field": ["input", "mergedIds"],
            "message": "The united metadata: Metadata must be at most 16384 bytes of JSON "
            f"(got {size}).",
            "code": "INVALID",
        }
    ]
    assert gql.data(NODE, {"id": merged}) == {"node": {"__typename": "Lead", "id": merged}}


def test_more_than_twenty_external_ids_once_united_are_refused(
    server: LiveServer, gql: GraphQLClient
) -> None:
    survivor, merged = create_leads(
        server,
        *(
            lead_values(external_ids=[{"system": f"{side}{n}", "id": "1"} for n in range(12)])
            for side in ("s", "m")
        ),
    )

    payload = merge(gql, survivorId=survivor, mergedIds=[merged])

    assert payload["userErrors"] == [
        {
            "field": ["input", "mergedIds"],
            "message": "A lead holds at most 20 external IDs; these leads hold 24 together.",
            "code": "INVALID",
        }
    ]


def test_an_id_handed_out_again_can_be_merged_again(server: LiveServer, gql: GraphQLClient) -> None:
    survivor, newest = create_leads(server, lead_values(), lead_values())
    merge(gql, survivorId=survivor, mergedIds=[newest])
    # SQLite gives the next lead the highest id again (the merged one's); PostgreSQL a new one.
    again = gql.data(CREATE_LEAD, {"input": {"email": "again@example.com"}})["createLead"]["lead"]

    payload = merge(gql, survivorId=survivor, mergedIds=[again["id"]])

    assert (payload["mergedLeadIds"], payload["userErrors"]) == ([again["id"]], [])
    merged = {pk(newest), pk(again["id"])}  # one id on SQLite
    assert sorted(_merges(server)) == [(i, pk(survivor)) for i in sorted(merged)]


def test_crossing_merges_end_with_one_lead_and_no_error(
    server: LiveServer, gql: GraphQLClient
) -> None:
    pairs = [create_leads(server, lead_values(), lead_values()) for _ in range(8)]
    # Each pair merged both ways at once: one merge wins, the other finds a lead gone.
    calls = [(a, b) for a, b in pairs] + [(b, a) for a, b in pairs]

    def post(call: tuple[str, str]) -> Any:
        with httpx.Client(base_url=server.url, timeout=60, headers=gql.http.headers) as client:
            body = {
                "query": MERGE,
                "variables": {"input": {"survivorId": call[0], "mergedIds": [call[1]]}},
            }
            response = client.post("/graphql", json=body)
            assert response.status_code == 200, response.text
            return response.json()["data"]["mergeLeads"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(post, calls))

    codes = sorted((r["userErrors"] or [{"code": "OK"}])[0]["code"] for r in results)
    assert codes == ["NOT_FOUND"] * 8 + ["OK"] * 8
    assert gql.data(STATE)["leads"]["totalCount"] == 8


RECORD_EVENTS = """
query ($id: ID!) { events(filter: {recordId: $id}) { nodes { type recordId record { id } } } }
"""


def test_a_merged_leads_events_stay_and_name_the_survivor_as_their_record(
    server: LiveServer, gql: GraphQLClient
) -> None:
    [survivor] = create_leads(server, lead_values())
    merged = gql.data(CREATE_LEAD, {"input": {"email": "m@example.com"}})["createLead"]["lead"]

    merge(gql, survivorId=survivor, mergedIds=[merged["id"]])

    assert gql.data(RECORD_EVENTS, {"id": merged["id"]})["events"]["nodes"] == [
        {"type": "LEAD_CREATED", "recordId": merged["id"], "record": {"id": survivor}}
    ]


def test_the_survivor_gains_the_merged_leads_tags_and_an_owner_if_it_had_none(
    server: LiveServer, gql: GraphQLClient, three: list[str]
) -> None:
    survivor, first, second = three
    owner = member(server, "ann@example.com")
    tag = "mutation ($n: String!) { createTag(input: {name: $n}) { tag { id } } }"
    hot, cold, vip = (
        gql.data(tag, {"n": n})["createTag"]["tag"]["id"] for n in ["Hot", "Cold", "VIP"]
    )
    assign = """
    mutation ($id: ID!, $input: UpdateLeadInput!) {
      updateLead(id: $id, input: $input) { lead { id } }
    }
    """
    gql.data(assign, {"id": survivor, "input": {"tagIds": [hot]}})
    gql.data(assign, {"id": first, "input": {"tagIds": [hot, cold]}})
    gql.data(assign, {"id": second, "input": {"tagIds": [vip], "ownerId": owner}})

    merged = merge(gql, survivorId=survivor, mergedIds=[first, second])
    assert merged["userErrors"] == []

    lead = gql.data(
        "query ($id: ID!) { lead(id: $id) { owner { id } tags { id } } }", {"id": survivor}
    )["lead"]
    assert lead["owner"] == {"id": owner}
    assert sorted(t["id"] for t in lead["tags"]) == sorted([hot, cold, vip])
    event = gql.data(EVENTS)["events"]["nodes"][-1]
    assert event["type"] == "LEAD_MERGED"
    fields = {c["field"] for c in event["changes"]}
    assert {"ownerId", "tagIds", "mergedLeadIds"} <= fields
