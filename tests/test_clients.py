"""Clients: create, update with part-by-part address merge, unique emails, archive/restore,
listing ACTIVE by default, and filters."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import GraphQLClient, LiveServer
from tests.factories import BASE_TIME, client_values, create_clients, create_leads, lead_values

CLIENT_FIELDS = """
  id email firstName lastName name phone company status archivedAt notes metadata
  createdAt updatedAt address { street city state postalCode country } convertedFrom { id }
"""
CREATE = f"""
mutation ($input: CreateClientInput!) {{
  createClient(input: $input) {{ client {{ {CLIENT_FIELDS} }} userErrors {{ field message code }} }}
}}
"""
UPDATE = f"""
mutation ($id: ID!, $input: UpdateClientInput!) {{
  updateClient(id: $id, input: $input) {{
    client {{ {CLIENT_FIELDS} }} userErrors {{ field message code }}
  }}
}}
"""
ARCHIVE = """
mutation ($id: ID!) {
  archiveClient(id: $id) { client { status archivedAt } userErrors { field message code } }
}
"""
RESTORE = """
mutation ($id: ID!) {
  restoreClient(id: $id) { client { status archivedAt } userErrors { field message code } }
}
"""
LIST = """
query ($filter: ClientFilter, $orderBy: ClientOrder, $first: Int, $after: String) {
  clients(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    totalCount nodes { email } pageInfo { hasNextPage endCursor }
  }
}
"""


def create(gql: GraphQLClient, **values: Any) -> dict[str, Any]:
    payload: dict[str, Any] = gql.data(CREATE, {"input": values})["createClient"]
    return payload


def test_create_client(gql: GraphQLClient) -> None:
    payload = create(
        gql,
        email="ceo@acme.com",
        firstName="Wile",
        lastName="Coyote",
        phone="555",
        company="Acme",
        notes="Big spender",
        metadata={"tier": "gold"},
        address={
            "street": "1 Road",
            "city": "Phoenix",
            "state": "AZ",
            "postalCode": "85001",
            "country": "us",
        },
    )
    client = payload["client"]
    assert payload["userErrors"] == []
    assert {k: v for k, v in client.items() if k not in ("id", "createdAt", "updatedAt")} == {
        "email": "ceo@acme.com",
        "firstName": "Wile",
        "lastName": "Coyote",
        "name": "Wile Coyote",
        "phone": "555",
        "company": "Acme",
        "status": "ACTIVE",
        "archivedAt": None,
        "notes": "Big spender",
        "metadata": {"tier": "gold"},
        "address": {
            "street": "1 Road",
            "city": "Phoenix",
            "state": "AZ",
            "postalCode": "85001",
            "country": "US",
        },
        "convertedFrom": None,
    }


def test_create_client_without_an_address_has_an_empty_one(gql: GraphQLClient) -> None:
    client = create(gql, email="a@b.com", firstName="A", lastName="B")["client"]
    assert client["address"] == {
        "street": None,
        "city": None,
        "state": None,
        "postalCode": None,
        "country": None,
    }
    assert client["metadata"] == {}


def test_create_client_reports_every_bad_field(gql: GraphQLClient) -> None:
    payload = create(
        gql,
        email="nope",
        firstName=" ",
        lastName="",
        address={"country": "Germany"},
        metadata=[1],
    )
    blank = {"code": "REQUIRED", "message": "This field is required and cannot be blank."}
    assert payload == {
        "client": None,
        "userErrors": [
            {
                "field": ["input", "address", "country"],
                "code": "INVALID",
                "message": "Country must be an ISO 3166-1 alpha-2 code, such as US or DE.",
            },
            {
                "field": ["input", "email"],
                "code": "INVALID",
                "message": "An email address must have an @-sign.",
            },
            {"field": ["input", "firstName"], **blank},
            {"field": ["input", "lastName"], **blank},
            {
                "field": ["input", "metadata"],
                "code": "INVALID",
                "message": "Metadata must be a JSON object.",
            },
        ],
    }
    assert gql.data(LIST)["clients"]["totalCount"] == 0


def test_client_emails_are_unique_case_insensitively(gql: GraphQLClient) -> None:
    create(gql, email="dup@example.com", firstName="A", lastName="B")
    payload = create(gql, email="DUP@Example.com", firstName="C", lastName="D")
    assert payload == {
        "client": None,
        "userErrors": [
            {
                "field": ["input", "email"],
                "code": "TAKEN",
                "message": "A client with this email already exists.",
            }
        ],
    }
    assert gql.data(LIST)["clients"]["totalCount"] == 1


def test_update_merges_the_address_part_by_part(server: LiveServer, gql: GraphQLClient) -> None:
    [client_id] = create_clients(
        server, client_values(street="1 Main", city="Austin", state="TX", postal_code="73301")
    )
    client = gql.data(
        UPDATE, {"id": client_id, "input": {"address": {"city": "Dallas", "postalCode": None}}}
    )["updateClient"]["client"]
    assert client["address"] == {
        "street": "1 Main",
        "city": "Dallas",
        "state": "TX",
        "postalCode": None,
        "country": None,
    }


def test_update_address_null_clears_it(server: LiveServer, gql: GraphQLClient) -> None:
    [client_id] = create_clients(server, client_values(street="1 Main", city="Austin"))
    client = gql.data(UPDATE, {"id": client_id, "input": {"address": None}})["updateClient"][
        "client"
    ]
    assert set(client["address"].values()) == {None}


def test_update_client_left_out_vs_null(server: LiveServer, gql: GraphQLClient) -> None:
    [client_id] = create_clients(server, client_values(phone="1", company="Acme", notes="n"))
    client = gql.data(UPDATE, {"id": client_id, "input": {"phone": None, "notes": "new"}})[
        "updateClient"
    ]["client"]
    assert (client["phone"], client["company"], client["notes"]) == (None, "Acme", "new")


def test_update_client_names_and_email_cannot_be_cleared(
    server: LiveServer, gql: GraphQLClient
) -> None:
    [client_id] = create_clients(server, client_values())
    payload = gql.data(
        UPDATE, {"id": client_id, "input": {"email": None, "firstName": None, "lastName": "  "}}
    )["updateClient"]
    assert payload == {
        "client": None,
        "userErrors": [
            {
                "field": ["input", "email"],
                "code": "REQUIRED",
                "message": "This field cannot be cleared.",
            },
            {
                "field": ["input", "firstName"],
                "code": "REQUIRED",
                "message": "This field cannot be cleared.",
            },
            {
                "field": ["input", "lastName"],
                "code": "REQUIRED",
                "message": "This field is required and cannot be blank.",
            },
        ],
    }


def test_update_client_email_to_a_taken_one(server: LiveServer, gql: GraphQLClient) -> None:
    [first, second] = create_clients(
        server, client_values(email="one@example.com"), client_values(email="two@example.com")
    )
    payload = gql.data(UPDATE, {"id": second, "input": {"email": "ONE@example.com"}})[
        "updateClient"
    ]
    assert payload["userErrors"] == [
        {
            "field": ["input", "email"],
            "code": "TAKEN",
            "message": "A client with this email already exists.",
        }
    ]
    # Changing the case of one's own email is not a clash.
    own = gql.data(UPDATE, {"id": first, "input": {"email": "One@example.com"}})["updateClient"]
    assert own["userErrors"] == []
    assert own["client"]["email"] == "One@example.com"


def test_update_client_not_found(server: LiveServer, gql: GraphQLClient) -> None:
    [lead_id] = create_leads(server, lead_values())
    for id_ in (lead_id, base64.b64encode(b"Client:777777").decode()):
        assert gql.data(UPDATE, {"id": id_, "input": {"phone": "1"}})["updateClient"] == {
            "client": None,
            "userErrors": [
                {"field": ["id"], "code": "NOT_FOUND", "message": "No client with this ID."}
            ],
        }


def test_archive_and_restore(server: LiveServer, gql: GraphQLClient) -> None:
    [client_id] = create_clients(server, client_values())

    archived = gql.data(ARCHIVE, {"id": client_id})["archiveClient"]
    again = gql.data(ARCHIVE, {"id": client_id})["archiveClient"]
    restored = gql.data(RESTORE, {"id": client_id})["restoreClient"]
    restored_again = gql.data(RESTORE, {"id": client_id})["restoreClient"]

    assert archived["client"]["status"] == "ARCHIVED"
    assert archived["client"]["archivedAt"].endswith("+00:00")
    assert archived["userErrors"] == []
    assert again == {
        "client": None,
        "userErrors": [
            {
                "field": ["id"],
                "code": "ALREADY_ARCHIVED",
                "message": "This client is already archived.",
            }
        ],
    }
    assert restored == {"client": {"status": "ACTIVE", "archivedAt": None}, "userErrors": []}
    assert restored_again == {
        "client": None,
        "userErrors": [
            {"field": ["id"], "code": "NOT_ARCHIVED", "message": "This client is not archived."}
        ],
    }


def test_archive_with_bad_ids(gql: GraphQLClient) -> None:
    assert gql.data(ARCHIVE, {"id": "%%%"})["archiveClient"]["userErrors"] == [
        {"field": ["id"], "code": "INVALID", "message": "This is not a valid ID."}
    ]
    missing = base64.b64encode(b"Client:31337").decode()
    assert gql.data(RESTORE, {"id": missing})["restoreClient"]["userErrors"] == [
        {"field": ["id"], "code": "NOT_FOUND", "message": "No client with this ID."}
    ]


def test_archived_clients_are_listed_only_when_the_filter_names_them(
    server: LiveServer, gql: GraphQLClient
) -> None:
    create_clients(
        server,
        client_values(email="active@x.com"),
        client_values(email="gone@x.com", status="ARCHIVED", archived_at=BASE_TIME),
    )

    def listed(flt: dict[str, Any] | None) -> list[str]:
        return sorted(n["email"] for n in gql.data(LIST, {"filter": flt})["clients"]["nodes"])

    assert listed(None) == ["active@x.com"]
    assert listed({}) == ["active@x.com"]
    assert listed({"search": "x.com"}) == ["active@x.com"]
    assert listed({"status": ["ARCHIVED"]}) == ["gone@x.com"]
    assert listed({"status": ["ACTIVE", "ARCHIVED"]}) == ["active@x.com", "gone@x.com"]
    # An archived client is still reachable by ID.
    assert gql.data(LIST, {"filter": {"status": ["ARCHIVED"]}})["clients"]["totalCount"] == 1


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"search": "ACME"}, ["a"]),
        ({"search": "jones"}, ["b"]),
        ({"search": "c@initech"}, ["c"]),
        ({"city": "austin"}, ["a", "b"]),
        ({"state": "TX"}, ["a", "b"]),
        ({"email": "B@GLOBEX.COM"}, ["b"]),
        ({"createdAt": {"gte": "2026-01-02T00:00:00Z"}}, ["b", "c"]),
        ({"createdAt": {"lt": "2026-01-02T00:00:00Z"}}, ["a"]),
        ({"city": "Austin", "search": "globex"}, ["b"]),
    ],
)
def test_client_filters(
    server: LiveServer, gql: GraphQLClient, flt: dict[str, Any], expected: list[str]
) -> None:
    create_clients(
        server,
        client_values(
            email="a@acme.com", company="Acme", city="Austin", state="tx", created_at=BASE_TIME
        ),
        client_values(
            email="b@globex.com",
            last_name="Jones",
            city="AUSTIN",
            state="TX",
            created_at=BASE_TIME + timedelta(days=1),
        ),
        client_values(
            email="c@initech.com",
            city="Boston",
            state="MA",
            created_at=BASE_TIME + timedelta(days=2),
        ),
    )
    got = [n["email"][0] for n in gql.data(LIST, {"filter": flt})["clients"]["nodes"]]
    assert sorted(got) == expected


def test_clients_page_by_name(server: LiveServer, gql: GraphQLClient) -> None:
    create_clients(
        server,
        client_values(email="1@x.com", first_name="Zed", last_name="A"),
        client_values(email="2@x.com", first_name="amy", last_name="B"),
        client_values(email="3@x.com", first_name="Bob", last_name="C"),
    )
    order = {"field": "NAME"}  # ascending when the direction is left out
    first = gql.data(LIST, {"orderBy": order, "first": 2})["clients"]
    rest = gql.data(LIST, {"orderBy": order, "first": 2, "after": first["pageInfo"]["endCursor"]})
    assert [n["email"] for n in first["nodes"] + rest["clients"]["nodes"]] == [
        "2@x.com",
        "3@x.com",
        "1@x.com",
    ]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ({"field": "EMAIL"}, ["1@x.com", "2@x.com", "3@x.com"]),
        ({"field": "NAME", "direction": None}, ["2@x.com", "3@x.com", "1@x.com"]),
        ({"field": "CREATED_AT"}, ["3@x.com", "2@x.com", "1@x.com"]),
        ({"field": "UPDATED_AT"}, ["3@x.com", "2@x.com", "1@x.com"]),
    ],
)
def test_clients_left_out_direction_sorts_names_and_emails_up_and_dates_down(
    server: LiveServer, gql: GraphQLClient, order: dict[str, Any], expected: list[str]
) -> None:
    create_clients(
        server,
        client_values(email="1@x.com", first_name="Zed", last_name="A"),
        client_values(email="2@x.com", first_name="amy", last_name="B"),
        client_values(email="3@x.com", first_name="Bob", last_name="C"),
    )
    assert [n["email"] for n in gql.data(LIST, {"orderBy": order})["clients"]["nodes"]] == expected
