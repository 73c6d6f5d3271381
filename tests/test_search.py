"""search: a case-insensitive substring of a lead's or client's name, email or company, with
every character literal. On SQLite an FTS5 trigram index finds the candidates, by one of two
plans chosen per statement (few candidates: fetched by rowid; many: the sort index scanned);
every test runs under both, and no answer may differ from the plain substring match."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from db.models.fields import full_name, search_key
from db.repositories import search
from tests.conftest import GraphQLClient, LiveServer
from tests.factories import BASE_TIME, create_leads, lead_values

SEARCH = """
query ($q: String!, $first: Int, $after: String, $last: Int, $before: String, $state: String) {
  leads(filter: {search: $q, state: $state}, first: $first, after: $after, last: $last,
        before: $before) {
    totalCount
    nodes { email }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""
CLIENTS = """
query ($q: String!) {
  clients(filter: {search: $q, status: [ACTIVE, ARCHIVED]}, first: 100) {
    totalCount nodes { email }
  }
}
"""
CREATE = """
mutation ($input: CreateLeadInput!) {
  createLead(input: $input) { lead { id } userErrors { message } }
}
"""
UPDATE = """
mutation ($id: ID!, $input: UpdateLeadInput!) {
  updateLead(id: $id, input: $input) { lead { id } userErrors { message } }
}
"""
DELETE = "mutation ($id: ID!) { deleteLead(id: $id) { deletedLeadId userErrors { message } } }"
CONVERT = """
mutation ($id: ID!) {
  convertLead(id: $id) { lead { status } client { id } userErrors { message } }
}
"""
UPDATE_CLIENT = """
mutation ($id: ID!, $input: UpdateClientInput!) {
  updateClient(id: $id, input: $input) { client { id } userErrors { message } }
}
"""

PEOPLE = [
    {"email": "ann@acme.com", "firstName": "Ann", "lastName": "Lee", "company": "ACME Inc"},
    {
        "email": "bob@globex.com",
        "firstName": "Bob",
        "lastName": "Stone",
        "company": "100% Globex_Co",
    },
    {"email": "cy@initech.io", "firstName": "Cy", "company": "Initech\\Labs"},
    {"email": "dee@umbrella.org", "lastName": "O'Brien", "company": 'The "Umbrella" Corp'},
    {"email": "z@example.de", "firstName": "Zoë", "lastName": "Straße", "company": "Ünïcødé GmbH"},
    {"email": "eve@example.com"},
]


@pytest.fixture(params=["few candidates", "many candidates"])
def plan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which of the two SQLite plans serves terms of 3+ characters: with a threshold of one,
    any term with a candidate at all takes the sort-index plan. (PostgreSQL: no effect.)"""
    if request.param == "many candidates":
        monkeypatch.setattr(search, "CANDIDATES", 1)
    return str(request.param)


def create(gql: GraphQLClient, **values: Any) -> str:
    payload = gql.data(CREATE, {"input": values})["createLead"]
    assert payload["userErrors"] == []
    return str(payload["lead"]["id"])


def found(gql: GraphQLClient, q: str, **variables: Any) -> list[str]:
    """Emails of the leads matching ``q``, in the default order; checks totalCount agrees."""
    leads = gql.data(SEARCH, {"q": q, "first": 100, **variables})["leads"]
    emails = [n["email"] for n in leads["nodes"]]
    assert leads["totalCount"] == len(emails)
    return emails


@pytest.fixture
def people(gql: GraphQLClient) -> list[str]:
    return [create(gql, **p) for p in PEOPLE]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("acme", ["ann"]),  # company and email
        ("ACME INC", ["ann"]),  # case-insensitive
        ("ann lee", ["ann"]),  # the full name
        ("  Ann   Lee ", ["ann"]),  # whitespace runs are one space
        ("lee ann", []),  # values do not run into each other
        ("lee", ["ann"]),  # exactly one trigram
        ("stone", ["bob"]),
        ("initech.io", ["cy"]),  # email
        ("100%", ["bob"]),  # % is literal
        ("0% g", ["bob"]),
        ("b%b", []),  # ... not a wildcard (it would match "bob ... bob@")
        ("globex_co", ["bob"]),  # _ is literal
        ("b_b", []),  # ... not a wildcard (it would match "bob")
        ("o'brien", ["dee"]),  # quotes are literal
        ('"umbrella"', ["dee"]),
        ('the "u', ["dee"]),
        ('"', ["dee"]),
        ("h\\l", ["cy"]),  # so is a backslash
        ("\\", ["cy"]),
        ("ZOË", ["z"]),  # Unicode case folding
        ("zoë straße", ["z"]),
        ("STRASSE", ["z"]),  # ß folds to ss
        ("ünïcødé gmbh", ["z"]),
        ("zoe", []),  # accents count
        ("ë", ["z"]),  # one and two characters: no trigram, the same answers
        ("ee", ["dee", "ann"]),
        ("@", ["eve", "z", "dee", "cy", "bob", "ann"]),
        ("xq", []),
        ("example", ["eve", "z"]),
        ("nothing like it", []),
        ("x" * 200, []),
    ],
)
def test_search_is_a_literal_case_insensitive_substring_match(
    gql: GraphQLClient, people: list[str], plan: str, q: str, expected: list[str]
) -> None:
    assert [e.split("@")[0] for e in found(gql, q)] == expected


def test_search_answers_as_a_substring_match_for_every_piece_of_the_text(
    gql: GraphQLClient, people: list[str], plan: str
) -> None:
    texts = {
        p["email"]: search_key(
            full_name(p.get("firstName"), p.get("lastName")), p["email"], p.get("company")
        )
        for p in PEOPLE
    }
    order = [p["email"] for p in reversed(PEOPLE)]  # newest first
    terms = {
        text[start : start + size]
        for text in texts.values()
        for size in (1, 2, 3, 4, 5, 7, 11)
        for start in range(0, len(text), 5)
    }
    terms = {" ".join(t.split()) for t in terms} - {""}
    assert len(terms) > 100
    for term in sorted(terms):
        expected = [e for e in order if term.casefold() in texts[e]]
        assert found(gql, term) == expected, term


def test_a_search_pages_through_every_match_in_order(
    server: LiveServer, gql: GraphQLClient, plan: str
) -> None:
    rows = [
        lead_values(
            email=f"p{n}@example.com",
            company="Summit Analytics" if n % 3 else "Summit Logistics",
            created_at=BASE_TIME + timedelta(hours=n // 2),  # ties, broken by the id
        )
        for n in range(14)
    ]
    create_leads(server, *rows)
    expected = [f"p{n}@example.com" for n in reversed(range(14)) if n % 3]

    forward, after = [], None
    while True:
        leads = gql.data(SEARCH, {"q": "summit analytics", "first": 3, "after": after})["leads"]
        assert leads["totalCount"] == len(expected)
        forward += [n["email"] for n in leads["nodes"]]
        if not leads["pageInfo"]["hasNextPage"]:
            break
        after = leads["pageInfo"]["endCursor"]
    assert forward == expected

    backward: list[str] = []
    before = None
    while True:
        leads = gql.data(SEARCH, {"q": "summit analytics", "last": 3, "before": before})["leads"]
        backward = [n["email"] for n in leads["nodes"]] + backward
        if not leads["pageInfo"]["hasPreviousPage"]:
            break
        before = leads["pageInfo"]["startCursor"]
    assert backward == expected


def test_search_combines_with_the_other_filters(
    gql: GraphQLClient, people: list[str], plan: str
) -> None:
    create(gql, email="tx@acme.com", company="Acme Texas", state="TX")
    assert found(gql, "acme") == ["tx@acme.com", "ann@acme.com"]
    assert found(gql, "acme", state="tx") == ["tx@acme.com"]
    assert found(gql, "ann", state="tx") == []


def test_an_updated_lead_is_found_by_its_new_text_only(gql: GraphQLClient, plan: str) -> None:
    lead = create(gql, email="old@oldmail.com", firstName="Olga", company="Oldco")
    changed = gql.data(
        UPDATE,
        {"id": lead, "input": {"email": "new@newmail.com", "firstName": "Nina", "company": None}},
    )["updateLead"]
    assert changed["userErrors"] == []
    for old in ("oldmail", "olga", "oldco"):
        assert found(gql, old) == [], old
    assert found(gql, "newmail") == ["new@newmail.com"]
    assert found(gql, "nina") == ["new@newmail.com"]
    # A change to anything else keeps the text searchable.
    gql.data(UPDATE, {"id": lead, "input": {"score": 70, "city": "Austin"}})
    assert found(gql, "nina") == ["new@newmail.com"]


def test_a_deleted_lead_is_no_longer_found(gql: GraphQLClient, plan: str) -> None:
    gone = create(gql, email="gone@example.com", company="Vanishing Act")
    create(gql, email="stays@example.com", company="Vanishing Act")
    assert gql.data(DELETE, {"id": gone})["deleteLead"]["userErrors"] == []
    assert found(gql, "vanishing") == ["stays@example.com"]
    assert found(gql, "gone@") == []


def test_a_converted_lead_stays_searchable_and_its_client_is_found(
    gql: GraphQLClient, plan: str
) -> None:
    lead = create(
        gql, email="conv@example.com", firstName="Carla", lastName="Verde", company="Greenfield"
    )
    converted = gql.data(CONVERT, {"id": lead})["convertLead"]
    assert converted["userErrors"] == []
    assert converted["lead"]["status"] == "WON"
    assert found(gql, "carla verde") == ["conv@example.com"]
    clients = gql.data(CLIENTS, {"q": "greenfield"})["clients"]
    assert clients == {"totalCount": 1, "nodes": [{"email": "conv@example.com"}]}

    client = converted["client"]["id"]
    gql.data(UPDATE_CLIENT, {"id": client, "input": {"company": "Bluefield"}})
    assert gql.data(CLIENTS, {"q": "greenfield"})["clients"]["totalCount"] == 0
    assert gql.data(CLIENTS, {"q": "bluefield"})["clients"]["totalCount"] == 1
    assert found(gql, "greenfield") == ["conv@example.com"]  # the lead keeps its own text
