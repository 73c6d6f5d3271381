"""Lead.duplicates and possibleDuplicateLeads: each reason, the scores' order, each pair once,
and a page's duplicates in a bounded number of statements."""

from __future__ import annotations

from typing import Any

from rapidfuzz import fuzz

from tests.conftest import GraphQLClient, LiveServer
from tests.factories import create_leads, lead_values

DUPLICATES = """
query ($id: ID!, $first: Int) {
  lead(id: $id) { duplicates(first: $first) { lead { id } duplicateOf { id } reasons score } }
}
"""
POSSIBLE = """
query ($first: Int) {
  possibleDuplicateLeads(first: $first) { lead { id } duplicateOf { id } reasons score }
}
"""
PAGE = """
query ($first: Int!) {
  leads(first: $first, orderBy: {field: EMAIL}) {
    nodes { email duplicates { lead { email } reasons score } }
  }
}
"""


def duplicates(gql: GraphQLClient, lead_id: str, first: int | None = None) -> list[Any]:
    found: list[Any] = gql.data(DUPLICATES, {"id": lead_id, "first": first})["lead"]["duplicates"]
    return found


def dup(lead_id: str, of: str, reasons: list[str], score: float) -> dict[str, Any]:
    return {"lead": {"id": lead_id}, "duplicateOf": {"id": of}, "reasons": reasons, "score": score}


def similarity(a: str, b: str) -> float:
    """The name-and-company score of leads whose companies have one key."""
    return round(0.6 * (fuzz.token_sort_ratio(a, b) + 100) / 200, 4)


def test_the_same_email_in_another_case_is_a_duplicate(
    server: LiveServer, gql: GraphQLClient
) -> None:
    a, b, _ = create_leads(
        server,
        lead_values(email="Ann@Example.com"),
        lead_values(email="ann@example.COM"),
        lead_values(email="someone@example.com"),
    )

    assert duplicates(gql, a) == [dup(b, a, ["SAME_EMAIL"], 0.95)]


def test_the_same_phone_written_two_ways_is_a_duplicate(
    server: LiveServer, gql: GraphQLClient
) -> None:
    a, b, _ = create_leads(
        server,
        lead_values(phone="(512) 555-0100"),
        lead_values(phone="+1 512-555-0100"),
        lead_values(phone="+1 512-555-0199"),
    )

    assert duplicates(gql, b) == [dup(a, b, ["SAME_PHONE"], 0.7)]


def test_a_similar_name_at_the_same_company_is_a_duplicate(
    server: LiveServer, gql: GraphQLClient
) -> None:
    a, b, _ = create_leads(
        server,
        lead_values(first_name="Jon", last_name="Smith", company="ACME, Inc."),
        lead_values(first_name="John", last_name="Smith", company="Acme"),
        lead_values(first_name="Mary", last_name="Jones", company="Acme"),
    )

    expected = similarity("jon smith", "john smith")
    assert duplicates(gql, a) == [dup(b, a, ["SIMILAR_NAME_AND_COMPANY"], expected)]


def test_the_same_name_at_a_similar_company_is_a_duplicate(
    server: LiveServer, gql: GraphQLClient
) -> None:
    a, b, _ = create_leads(
        server,
        lead_values(first_name="Jane", last_name="Doe", company="Initech Systems"),
        lead_values(first_name="jane", last_name="DOE", company="Initech System"),
        lead_values(first_name="Jane", last_name="Doe", company="Globex"),
    )

    expected = round(
        0.6 * (100 + fuzz.token_sort_ratio("initech systems", "initech system")) / 200, 4
    )
    assert duplicates(gql, a) == [dup(b, a, ["SIMILAR_NAME_AND_COMPANY"], expected)]


def test_a_lead_with_nothing_in_common_has_no_duplicates(
    server: LiveServer, gql: GraphQLClient
) -> None:
    a, _ = create_leads(
        server,
        lead_values(first_name="Ann", last_name="Lee", company="Acme", phone="5125550100"),
        lead_values(first_name="Bob", last_name="Stone", company="Acme", phone="5125550101"),
    )

    assert duplicates(gql, a) == []


def test_duplicates_come_best_first_and_first_cuts_them(
    server: LiveServer, gql: GraphQLClient
) -> None:
    person = {"first_name": "Ann", "last_name": "Lee", "company": "Acme"}
    a, name_only, phone_only, email_only, email_phone = create_leads(
        server,
        lead_values(email="ann@acme.com", phone="5125550100", **person),
        lead_values(email="a.lee@acme.com", **person),
        lead_values(email="other@acme.com", phone="512 555 0100"),
        lead_values(email="ANN@acme.com"),
        lead_values(email="ann@acme.com", phone="+15125550100"),
    )

    assert duplicates(gql, a) == [
        dup(email_phone, a, ["SAME_EMAIL", "SAME_PHONE"], 0.985),
        dup(email_only, a, ["SAME_EMAIL"], 0.95),
        dup(phone_only, a, ["SAME_PHONE"], 0.7),
        dup(name_only, a, ["SIMILAR_NAME_AND_COMPANY"], 0.6),
    ]
    assert [d["lead"]["id"] for d in duplicates(gql, a, 2)] == [email_phone, email_only]


def test_every_reason_at_once_scores_highest(server: LiveServer, gql: GraphQLClient) -> None:
    values = {"email": "ann@acme.com", "phone": "5125550100", "company": "Acme"}
    a, b = create_leads(
        server,
        lead_values(first_name="Ann", last_name="Lee", **values),
        lead_values(first_name="Ann", last_name="Lee", **values),
    )

    assert duplicates(gql, a) == [
        dup(b, a, ["SAME_EMAIL", "SAME_PHONE", "SIMILAR_NAME_AND_COMPANY"], 0.994)
    ]


def test_possible_duplicates_list_each_pair_once_best_first(
    server: LiveServer, gql: GraphQLClient
) -> None:
    a, b, c, d, e, f = create_leads(
        server,
        lead_values(email="x@example.com"),
        lead_values(email="X@example.com"),
        lead_values(email="x@example.com", phone="5125550100"),
        lead_values(phone="512-555-0100"),
        lead_values(first_name="Ann", last_name="Lee", company="Acme"),
        lead_values(first_name="Anne", last_name="Lee", company="ACME Inc"),
    )

    assert gql.data(POSSIBLE)["possibleDuplicateLeads"] == [
        dup(b, a, ["SAME_EMAIL"], 0.95),
        dup(c, a, ["SAME_EMAIL"], 0.95),
        dup(c, b, ["SAME_EMAIL"], 0.95),
        dup(d, c, ["SAME_PHONE"], 0.7),
        dup(f, e, ["SIMILAR_NAME_AND_COMPANY"], similarity("ann lee", "anne lee")),
    ]


def test_possible_duplicates_stop_at_first(server: LiveServer, gql: GraphQLClient) -> None:
    a, b, _, _ = create_leads(
        server,
        lead_values(email="x@example.com", phone="5125550100"),
        lead_values(email="x@example.com", phone="5125550100"),
        lead_values(email="y@example.com"),
        lead_values(email="y@example.com"),
    )

    found = gql.data(POSSIBLE, {"first": 1})["possibleDuplicateLeads"]

    assert found == [dup(b, a, ["SAME_EMAIL", "SAME_PHONE"], 0.985)]


def test_a_first_out_of_range_is_a_bad_argument(server: LiveServer, gql: GraphQLClient) -> None:
    body = gql(POSSIBLE, {"first": 101})

    assert body["errors"][0]["message"] == "Argument 'first' must be between 0 and 100."
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_a_page_of_leads_with_duplicates_costs_four_statements(
    server: LiveServer, gql: GraphQLClient, count_queries: Any
) -> None:
    rows = []
    for n in range(30):
        rows += [
            lead_values(email=f"p{n:02}@example.com", phone=f"51255501{n:02}"),
            lead_values(email=f"q{n:02}@example.com", phone=f"+1 512 555 01{n:02}"),
        ]
    create_leads(server, *rows)

    with count_queries() as small:
        gql.data(PAGE, {"first": 3})
    with count_queries() as large:
        page = gql.data(PAGE, {"first": 30})["leads"]["nodes"]

    assert page[0] == {
        "email": "p00@example.com",
        "duplicates": [
            {"lead": {"email": "q00@example.com"}, "reasons": ["SAME_PHONE"], "score": 0.7}
        ],
    }
    assert all(len(n["duplicates"]) == 1 for n in page)
    # The credential lookup, the page, one batch of candidates, one batch of their leads.
    assert (small.count, large.count) == (4, 4)
