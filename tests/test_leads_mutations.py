"""createLead, updateLead, deleteLead: happy paths, every validation error at once, and no
partial writes."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.conftest import GraphQLClient, LiveServer
from tests.factories import client_values, create_clients, create_leads, lead_values

LEAD_FIELDS = """
  id email firstName lastName name phone company city state postalCode source notes
  status score metadata createdAt updatedAt convertedAt convertedClient { id }
"""
CREATE = f"""
mutation ($input: CreateLeadInput!) {{
  createLead(input: $input) {{ lead {{ {LEAD_FIELDS} }} userErrors {{ field message code }} }}
}}
"""
UPDATE = f"""
mutation ($id: ID!, $input: UpdateLeadInput!) {{
  updateLead(id: $id, input: $input) {{
    lead {{ {LEAD_FIELDS} }} userErrors {{ field message code }}
  }}
}}
"""
DELETE = """
mutation ($id: ID!) { deleteLead(id: $id) { deletedLeadId userErrors { field message code } } }
"""
COUNT = "{ leads { totalCount } }"


def create(gql: GraphQLClient, **values: Any) -> dict[str, Any]:
    payload: dict[str, Any] = gql.data(CREATE, {"input": values})["createLead"]
    return payload


def test_create_lead_with_only_an_email_gets_the_defaults(gql: GraphQLClient) -> None:
    payload = create(gql, email="  Jane@Example.COM ")

    lead = payload["lead"]
    assert payload["userErrors"] == []
    assert {k: v for k, v in lead.items() if k not in ("id", "createdAt", "updatedAt")} == {
        "email": "Jane@example.com",
        "firstName": None,
        "lastName": None,
        "name": None,
        "phone": None,
        "company": None,
        "city": None,
        "state": None,
        "postalCode": None,
        "source": None,
        "notes": None,
        "status": "NEW",
        "score": 0,
        "metadata": {},
        "convertedAt": None,
        "convertedClient": None,
    }
    assert lead["createdAt"].endswith("+00:00")
    assert lead["createdAt"] == lead["updatedAt"]
    assert gql.data("query ($id: ID!) { lead(id: $id) { email } }", {"id": lead["id"]}) == {
        "lead": {"email": "Jane@example.com"}
    }


def test_create_lead_with_every_field(gql: GraphQLClient) -> None:
    lead = create(
        gql,
        email="max@example.com",
        firstName=" Max ",
        lastName="Mustermann",
        phone="+1 555",
        company="Acme",
        city="Austin",
        state="TX",
        postalCode="73301",
        source="referral",
        notes="Met at a fair.\nFollow up.",
        status="QUALIFIED",
        score=75,
        metadata={"tags": ["vip"], "n": 1},
    )["lead"]
    assert lead["firstName"] == "Max"
    assert lead["name"] == "Max Mustermann"
    assert (lead["status"], lead["score"], lead["metadata"]) == (
        "QUALIFIED",
        75,
        {"tags": ["vip"], "n": 1},
    )
    assert lead["notes"] == "Met at a fair.\nFollow up."


def test_name_is_the_one_part_given(gql: GraphQLClient) -> None:
    assert create(gql, email="a@example.com", firstName="Solo")["lead"]["name"] == "Solo"
    assert create(gql, email="b@example.com", lastName="Last")["lead"]["name"] == "Last"


def test_create_lead_reports_every_bad_field_at_once_and_writes_nothing(
    gql: GraphQLClient,
) -> None:
    payload = create(
        gql,
        email="not-an-email",
        score=101,
        metadata=["not", "an", "object"],
        notes="x" * 10_001,
        firstName="y" * 101,
        postalCode="z" * 21,
    )
    assert payload == {
        "lead": None,
        "userErrors": [
            {
                "field": ["input", "firstName"],
                "code": "INVALID",
                "message": "String should have at most 100 characters",
            },
            {
                "field": ["input", "postalCode"],
                "code": "INVALID",
                "message": "String should have at most 20 characters",
            },
            {
                "field": ["input", "notes"],
                "code": "INVALID",
                "message": "String should have at most 10000 characters",
            },
            {
                "field": ["input", "email"],
                "code": "INVALID",
                "message": "An email address must have an @-sign.",
            },
            {
                "field": ["input", "score"],
                "code": "INVALID",
                "message": "Input should be less than or equal to 100",
            },
            {
                "field": ["input", "metadata"],
                "code": "INVALID",
                "message": "Metadata must be a JSON object.",
            },
        ],
    }
    assert gql.data(COUNT) == {"leads": {"totalCount": 0}}


@pytest.mark.parametrize(
    ("values", "error"),
    [
        (
            {"email": "   "},
            {
                "field": ["input", "email"],
                "code": "REQUIRED",
                "message": "This field is required and cannot be blank.",
            },
        ),
        (
            {"email": "a" * 250 + "@x.io"},
            {
                "field": ["input", "email"],
                "code": "INVALID",
                "message": "Email must be at most 254 characters.",
            },
        ),
        (
            {"email": "a@b@c"},
            {
                "field": ["input", "email"],
                "code": "INVALID",
                "message": "The part after the @-sign contains invalid characters: '@'.",
            },
        ),
        (
            {"email": "x@example.com", "score": -1},
            {
                "field": ["input", "score"],
                "code": "INVALID",
                "message": "Input should be greater than or equal to 0",
            },
        ),
        (
            {"email": "x@example.com", "metadata": {"blob": "x" * 16_400}},
            {
                "field": ["input", "metadata"],
                "code": "INVALID",
                "message": "Metadata must be at most 16384 bytes of JSON (got 16411).",
            },
        ),
        (
            {"email": "x@example.com", "metadata": "text"},
            {
                "field": ["input", "metadata"],
                "code": "INVALID",
                "message": "Metadata must be a JSON object.",
            },
        ),
    ],
)
def test_create_lead_validation(
    gql: GraphQLClient, values: dict[str, Any], error: dict[str, Any]
) -> None:
    assert create(gql, **values) == {"lead": None, "userErrors": [error]}


def test_blank_optional_text_is_stored_as_null(gql: GraphQLClient) -> None:
    lead = create(gql, email="a@example.com", company="   ", notes="")["lead"]
    assert (lead["company"], lead["notes"]) == (None, None)


def test_metadata_null_on_create_is_an_empty_object(gql: GraphQLClient) -> None:
    assert create(gql, email="a@example.com", metadata=None)["lead"]["metadata"] == {}


# ---------------------------------------------------------------- update


def test_update_distinguishes_left_out_from_null(server: LiveServer, gql: GraphQLClient) -> None:
    [lead_id] = create_leads(
        server, lead_values(first_name="Ann", last_name="Lee", city="Austin", company="Acme")
    )
    lead = gql.data(UPDATE, {"id": lead_id, "input": {"city": None, "company": "Initech"}})[
        "updateLead"
    ]["lead"]
    assert (lead["firstName"], lead["lastName"], lead["city"], lead["company"]) == (
        "Ann",
        "Lee",
        None,
        "Initech",
    )
    assert lead["updatedAt"] > lead["createdAt"]


def test_update_every_field(server: LiveServer, gql: GraphQLClient) -> None:
    [lead_id] = create_leads(server, lead_values())
    changes = {
        "email": "new@example.com",
        "firstName": "N",
        "lastName": "M",
        "phone": "1",
        "company": "C",
        "city": "Ci",
        "state": "St",
        "postalCode": "P",
        "source": "S",
        "notes": "No",
        "status": "LOST",
        "score": 3,
        "metadata": {"k": "v"},
    }
    lead = gql.data(UPDATE, {"id": lead_id, "input": changes})["updateLead"]["lead"]
    assert {k: lead[k] for k in changes} == changes


def test_update_with_an_empty_input_changes_nothing(server: LiveServer, gql: GraphQLClient) -> None:
    [lead_id] = create_leads(server, lead_values(first_name="Same"))
    payload = gql.data(UPDATE, {"id": lead_id, "input": {}})["updateLead"]
    assert payload["userErrors"] == []
    assert payload["lead"]["firstName"] == "Same"
    assert payload["lead"]["updatedAt"] == payload["lead"]["createdAt"]


def test_fields_that_cannot_be_cleared(server: LiveServer, gql: GraphQLClient) -> None:
    [lead_id] = create_leads(server, lead_values(email="keep@example.com", score=7))
    payload = gql.data(
        UPDATE,
        {
            "id": lead_id,
            "input": {"email": None, "status": None, "score": None, "metadata": None, "city": "X"},
        },
    )["updateLead"]
    cleared = {"code": "REQUIRED", "message": "This field cannot be cleared."}
    assert payload == {
        "lead": None,
        "userErrors": [
            {"field": ["input", "email"], **cleared},
            {"field": ["input", "status"], **cleared},
            {"field": ["input", "score"], **cleared},
            {"field": ["input", "metadata"], **cleared},
        ],
    }
    lead = gql.data("query ($id: ID!) { lead(id: $id) { email score city } }", {"id": lead_id})
    assert lead == {"lead": {"email": "keep@example.com", "score": 7, "city": None}}


def test_update_reports_the_id_and_the_input_together(gql: GraphQLClient) -> None:
    payload = gql.data(UPDATE, {"id": "garbage", "input": {"score": 1000}})["updateLead"]
    assert payload["userErrors"] == [
        {"field": ["id"], "code": "INVALID", "message": "This is not a valid ID."},
        {
            "field": ["input", "score"],
            "code": "INVALID",
            "message": "Input should be less than or equal to 100",
        },
    ]


def test_update_unknown_or_other_type_id_is_not_found(
    server: LiveServer, gql: GraphQLClient
) -> None:
    [client_id] = create_clients(server, client_values())
    missing = base64.b64encode(b"Lead:987654").decode()
    not_found = {"field": ["id"], "code": "NOT_FOUND", "message": "No lead with this ID."}
    for id_ in (missing, client_id):
        payload = gql.data(UPDATE, {"id": id_, "input": {"city": "X"}})["updateLead"]
        assert payload == {"lead": None, "userErrors": [not_found]}


# ---------------------------------------------------------------- delete


def test_delete_lead(server: LiveServer, gql: GraphQLClient) -> None:
    [lead_id, _other] = create_leads(server, lead_values(), lead_values())
    assert gql.data(DELETE, {"id": lead_id})["deleteLead"] == {
        "deletedLeadId": lead_id,
        "userErrors": [],
    }
    assert gql.data("query ($id: ID!) { lead(id: $id) { id } }", {"id": lead_id}) == {"lead": None}
    assert gql.data(COUNT) == {"leads": {"totalCount": 1}}
    again = gql.data(DELETE, {"id": lead_id})["deleteLead"]
    assert again == {
        "deletedLeadId": None,
        "userErrors": [{"field": ["id"], "code": "NOT_FOUND", "message": "No lead with this ID."}],
    }


def test_delete_with_a_malformed_id(gql: GraphQLClient) -> None:
    assert gql.data(DELETE, {"id": ""})["deleteLead"] == {
        "deletedLeadId": None,
        "userErrors": [{"field": ["id"], "code": "INVALID", "message": "This is not a valid ID."}],
    }


def test_a_mutation_error_is_never_a_top_level_error(gql: GraphQLClient) -> None:
    body = gql(CREATE, {"input": {"email": "nope"}})
    assert "errors" not in body
