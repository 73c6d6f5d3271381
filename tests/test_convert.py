"""convertLead: one transaction that creates (or links) the client and marks the lead WON;
a lead converts at most once, and any failure leaves leads and clients untouched."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from db.repositories import LeadRepository
from tests.conftest import OWNER_KEY, GraphQLClient, LiveServer
from tests.factories import client_values, create_clients, create_leads, lead_values

AUTH = {"Authorization": f"Bearer {OWNER_KEY}"}

CONVERT = """
mutation ($id: ID!, $input: ConvertLeadInput) {
  convertLead(id: $id, input: $input) {
    lead { id status convertedAt updatedAt convertedClient { id email } }
    client {
      id email firstName lastName phone company notes metadata status
      address { street city state postalCode country }
      convertedFrom { id }
    }
    userErrors { field message code }
  }
}
"""
STATE = """
query ($id: ID!) {
  lead(id: $id) { status convertedAt convertedClient { id } }
  clients(filter: {status: [ACTIVE, ARCHIVED]}) { totalCount nodes { email } }
}
"""


def convert(gql: GraphQLClient, id_: str, input_: dict[str, Any] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = gql.data(CONVERT, {"id": id_, "input": input_})["convertLead"]
    return payload


@pytest.fixture
def lead_id(server: LiveServer) -> str:
    [id_] = create_leads(
        server,
        lead_values(
            email="ann@acme.com",
            first_name="Ann",
            last_name="Lee",
            phone="111",
            company="Acme",
            city="Austin",
            state="TX",
            postal_code="73301",
            notes="Hot lead",
            status="QUALIFIED",
            meta={"source_campaign": "fall", "keep": 1},
        ),
    )
    return id_


def test_convert_creates_the_client_from_the_lead(gql: GraphQLClient, lead_id: str) -> None:
    payload = convert(gql, lead_id)

    lead, client = payload["lead"], payload["client"]
    assert payload["userErrors"] == []
    assert lead["status"] == "WON"
    assert lead["convertedAt"].endswith("+00:00")
    assert lead["convertedClient"] == {"id": client["id"], "email": "ann@acme.com"}
    assert {k: v for k, v in client.items() if k != "id"} == {
        "email": "ann@acme.com",
        "firstName": "Ann",
        "lastName": "Lee",
        "phone": "111",
        "company": "Acme",
        "notes": "Hot lead",
        "metadata": {"source_campaign": "fall", "keep": 1},
        "status": "ACTIVE",
        "address": {
            "street": None,
            "city": "Austin",
            "state": "TX",
            "postalCode": "73301",
            "country": None,
        },
        "convertedFrom": {"id": lead_id},
    }
    assert gql.data(STATE, {"id": lead_id})["lead"] == {
        "status": "WON",
        "convertedAt": lead["convertedAt"],
        "convertedClient": {"id": client["id"]},
    }


def test_input_values_win_over_the_leads(gql: GraphQLClient, lead_id: str) -> None:
    client = convert(
        gql,
        lead_id,
        {
            "firstName": "Annie",
            "phone": None,
            "company": "Acme Corp",
            "notes": "Signed",
            "metadata": {"keep": 2, "plan": "pro"},
            "address": {"street": "5 Elm", "city": "Dallas", "country": "us"},
        },
    )["client"]
    assert (client["firstName"], client["lastName"], client["phone"], client["company"]) == (
        "Annie",
        "Lee",
        None,
        "Acme Corp",
    )
    assert client["notes"] == "Signed"
    assert client["metadata"] == {"source_campaign": "fall", "keep": 2, "plan": "pro"}
    assert client["address"] == {
        "street": "5 Elm",
        "city": "Dallas",
        "state": "TX",
        "postalCode": "73301",
        "country": "US",
    }


def test_a_lead_converts_at_most_once(gql: GraphQLClient, lead_id: str) -> None:
    first = convert(gql, lead_id)
    # A retry (say, after a lost response) learns where the lead went, and nothing is written:
    # the same lead, unchanged, and the client it was converted into.
    assert convert(gql, lead_id, {"company": "Other Inc", "notes": "retry"}) == {
        "lead": first["lead"],
        "client": first["client"],
        "userErrors": [
            {
                "field": ["id"],
                "code": "ALREADY_CONVERTED",
                "message": "This lead has already been converted.",
            }
        ],
    }
    assert gql.data(STATE, {"id": lead_id})["clients"]["totalCount"] == 1


def test_a_retry_into_another_client_still_names_the_first_one(
    server: LiveServer, gql: GraphQLClient, lead_id: str
) -> None:
    [other] = create_clients(server, client_values(first_name="Other"))
    first = convert(gql, lead_id)
    again = convert(gql, lead_id, {"clientId": other})
    assert again["userErrors"][0]["code"] == "ALREADY_CONVERTED"
    assert again["client"]["id"] == first["client"]["id"] != other
    assert again["lead"]["convertedClient"] == first["lead"]["convertedClient"]


def test_names_must_be_known_from_the_lead_or_the_input(
    server: LiveServer, gql: GraphQLClient
) -> None:
    [nameless] = create_leads(server, lead_values(email="anon@example.com"))
    blank = {"code": "REQUIRED", "message": "This field is required and cannot be blank."}

    assert convert(gql, nameless) == {
        "lead": None,
        "client": None,
        "userErrors": [
            {"field": ["input", "firstName"], **blank},
            {"field": ["input", "lastName"], **blank},
        ],
    }
    assert convert(gql, nameless, {"lastName": "Known"})["userErrors"] == [
        {"field": ["input", "firstName"], **blank}
    ]
    named = convert(gql, nameless, {"firstName": "A", "lastName": "B"})
    assert named["userErrors"] == []
    assert named["client"]["email"] == "anon@example.com"


def test_an_email_already_used_by_a_client_is_taken(
    server: LiveServer, gql: GraphQLClient, lead_id: str
) -> None:
    create_clients(server, client_values(email="ANN@acme.com"))
    payload = convert(gql, lead_id)
    assert payload["userErrors"] == [
        {
            "field": ["id"],
            "code": "TAKEN",
            "message": "A client with the email ann@acme.com already exists; pass input.clientId "
            "to convert the lead into that client.",
        }
    ]
    assert gql.data(STATE, {"id": lead_id})["lead"]["status"] == "QUALIFIED"


def test_convert_into_an_existing_client(
    server: LiveServer, gql: GraphQLClient, lead_id: str
) -> None:
    [client_id] = create_clients(
        server,
        client_values(
            email="owner@acme.com",
            first_name="Ann",
            last_name="Lee-Smith",
            company=None,
            city="Houston",
            meta={"tier": "gold"},
        ),
    )
    payload = convert(gql, lead_id, {"clientId": client_id, "notes": "Merged"})

    client = payload["client"]
    assert payload["userErrors"] == []
    assert payload["lead"]["convertedClient"]["id"] == client_id
    assert client["id"] == client_id
    # The client keeps what it had; the lead fills what it lacked; the input wins.
    assert (client["email"], client["lastName"], client["company"], client["phone"]) == (
        "owner@acme.com",
        "Lee-Smith",
        "Acme",
        "111",
    )
    assert client["notes"] == "Merged"
    assert client["address"]["city"] == "Houston"
    assert client["address"]["postalCode"] == "73301"
    assert client["metadata"] == {"source_campaign": "fall", "keep": 1, "tier": "gold"}
    assert client["convertedFrom"] == {"id": lead_id}
    assert gql.data(STATE, {"id": lead_id})["clients"]["totalCount"] == 1


def test_converted_from_is_the_earliest_lead_converted_into_the_client(
    server: LiveServer, gql: GraphQLClient, lead_id: str
) -> None:
    [other] = create_leads(server, lead_values(first_name="Dup", last_name="Lead"))
    client_id = convert(gql, lead_id)["client"]["id"]
    convert(gql, other, {"clientId": client_id})
    query = "query ($id: ID!) { client(id: $id) { convertedFrom { id } } }"
    assert gql.data(query, {"id": client_id}) == {"client": {"convertedFrom": {"id": lead_id}}}


@pytest.mark.parametrize(
    ("client_id", "error"),
    [
        (
            "???",
            {
                "field": ["input", "clientId"],
                "code": "INVALID",
                "message": "This is not a valid ID.",
            },
        ),
        (
            base64.b64encode(b"Client:4040").decode(),
            {
                "field": ["input", "clientId"],
                "code": "NOT_FOUND",
                "message": "No client with this ID.",
            },
        ),
    ],
)
def test_convert_into_a_bad_client_id(
    gql: GraphQLClient, lead_id: str, client_id: str, error: dict[str, Any]
) -> None:
    assert convert(gql, lead_id, {"clientId": client_id})["userErrors"] == [error]
    assert gql.data(STATE, {"id": lead_id})["lead"]["status"] == "QUALIFIED"


def test_convert_into_an_archived_client_is_refused(
    server: LiveServer, gql: GraphQLClient, lead_id: str
) -> None:
    [client_id] = create_clients(server, client_values(status="ARCHIVED"))
    assert convert(gql, lead_id, {"clientId": client_id})["userErrors"] == [
        {
            "field": ["input", "clientId"],
            "code": "ALREADY_ARCHIVED",
            "message": "This client is archived; restore it before converting into it.",
        }
    ]


def test_convert_reports_id_and_input_problems_together(gql: GraphQLClient) -> None:
    payload = convert(gql, "nope", {"clientId": "also nope", "address": {"country": "XX"}})
    assert payload["userErrors"] == [
        {"field": ["id"], "code": "INVALID", "message": "This is not a valid ID."},
        {"field": ["input", "clientId"], "code": "INVALID", "message": "This is not a valid ID."},
        {
            "field": ["input", "address", "country"],
            "code": "INVALID",
            "message": "Country must be an ISO 3166-1 alpha-2 code, such as US or DE.",
        },
    ]


def test_convert_an_unknown_lead(server: LiveServer, gql: GraphQLClient) -> None:
    [client_id] = create_clients(server, client_values())
    for id_ in (base64.b64encode(b"Lead:99999").decode(), client_id):
        assert convert(gql, id_)["userErrors"] == [
            {"field": ["id"], "code": "NOT_FOUND", "message": "No lead with this ID."}
        ]


def test_a_failure_after_the_client_insert_rolls_everything_back(
    server: LiveServer, gql: GraphQLClient, lead_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(LeadRepository, "mark_converted", explode)
    body = gql(CONVERT, {"id": lead_id})
    monkeypatch.undo()

    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "disk on fire" not in str(body)
    assert gql.data(STATE, {"id": lead_id}) == {
        "lead": {"status": "QUALIFIED", "convertedAt": None, "convertedClient": None},
        "clients": {"totalCount": 0, "nodes": []},
    }


def test_losing_a_race_rolls_back_the_new_client(
    server: LiveServer, gql: GraphQLClient, lead_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def someone_else_converted_it(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(LeadRepository, "mark_converted", someone_else_converted_it)
    payload = convert(gql, lead_id)
    monkeypatch.undo()

    assert payload["userErrors"] == [
        {
            "field": ["id"],
            "code": "ALREADY_CONVERTED",
            "message": "This lead has already been converted.",
        }
    ]
    assert gql.data(STATE, {"id": lead_id})["clients"]["totalCount"] == 0


def test_concurrent_converts_of_one_lead_convert_it_once(server: LiveServer, lead_id: str) -> None:
    def attempt(_: int) -> dict[str, Any]:
        with httpx.Client(base_url=server.url, timeout=30, headers=AUTH) as client:
            response = client.post(
                "/graphql", json={"query": CONVERT, "variables": {"id": lead_id}}
            )
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            assert "errors" not in body, body
            payload: dict[str, Any] = body["data"]["convertLead"]
            return payload

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(8)))

    succeeded = [r for r in results if not r["userErrors"]]
    refused = [r for r in results if r["userErrors"]]
    assert len(succeeded) == 1
    assert [r["userErrors"][0]["code"] for r in refused] == ["ALREADY_CONVERTED"] * 7
    # Each refused request names the conversion that won.
    won = {"lead": succeeded[0]["lead"]["id"], "client": succeeded[0]["client"]["id"]}
    assert [{"lead": r["lead"]["id"], "client": r["client"]["id"]} for r in refused] == [won] * 7
