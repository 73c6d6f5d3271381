"""leads: keyset pagination in both directions over ties, page-size rules, cursors, totalCount,
sorting and every filter."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import GraphQLClient, LiveServer
from tests.factories import BASE_TIME, create_leads, lead_values

LEADS = """
query ($first: Int, $after: String, $last: Int, $before: String,
       $filter: LeadFilter, $orderBy: LeadOrder) {
  leads(first: $first, after: $after, last: $last, before: $before,
        filter: $filter, orderBy: $orderBy) {
    edges { cursor node { id email } }
    nodes { email }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""
COUNT = "query ($filter: LeadFilter) { leads(filter: $filter) { totalCount } }"
EMAILS = "query ($filter: LeadFilter) { leads(filter: $filter, first: 100) { nodes { email } } }"


def page(gql: GraphQLClient, **variables: Any) -> dict[str, Any]:
    result: dict[str, Any] = gql.data(LEADS, variables)["leads"]
    return result


def emails(result: dict[str, Any]) -> list[str]:
    return [edge["node"]["email"] for edge in result["edges"]]


def error(body: dict[str, Any]) -> dict[str, Any]:
    assert body["data"] is None
    [err] = body["errors"]
    return {"message": err["message"], **err["extensions"]}


@pytest.fixture
def tied(server: LiveServer) -> list[str]:
    """Seven leads whose created_at ties in groups (t0 x3, t1 x2, t2 x2): the id breaks ties.

    Returns emails in the default order, CREATED_AT DESC then id DESC.
    """
    times = [0, 0, 0, 1, 1, 2, 2]
    rows = [
        lead_values(email=f"t{n}@example.com", created_at=BASE_TIME + timedelta(hours=t))
        for n, t in enumerate(times)
    ]
    create_leads(server, *rows)
    return [
        "t6@example.com",
        "t5@example.com",
        "t4@example.com",
        "t3@example.com",
        "t2@example.com",
        "t1@example.com",
        "t0@example.com",
    ]


def test_forward_paging_over_ties_neither_repeats_nor_skips(
    gql: GraphQLClient, tied: list[str]
) -> None:
    first = page(gql, first=3)
    second = page(gql, first=3, after=first["pageInfo"]["endCursor"])
    third = page(gql, first=3, after=second["pageInfo"]["endCursor"])

    assert emails(first) == tied[0:3]
    assert emails(second) == tied[3:6]
    assert emails(third) == tied[6:7]
    assert first["pageInfo"] | {"startCursor": None, "endCursor": None} == {
        "hasNextPage": True,
        "hasPreviousPage": False,
        "startCursor": None,
        "endCursor": None,
    }
    assert second["pageInfo"]["hasNextPage"] is True
    assert second["pageInfo"]["hasPreviousPage"] is True
    assert third["pageInfo"]["hasNextPage"] is False
    assert third["pageInfo"]["hasPreviousPage"] is True


def test_backward_paging_over_ties_neither_repeats_nor_skips(
    gql: GraphQLClient, tied: list[str]
) -> None:
    last = page(gql, last=3)
    middle = page(gql, last=3, before=last["pageInfo"]["startCursor"])
    head = page(gql, last=3, before=middle["pageInfo"]["startCursor"])

    assert emails(last) == tied[4:7]
    assert emails(middle) == tied[1:4]
    assert emails(head) == tied[0:1]
    assert (last["pageInfo"]["hasPreviousPage"], last["pageInfo"]["hasNextPage"]) == (True, False)
    assert (middle["pageInfo"]["hasPreviousPage"], middle["pageInfo"]["hasNextPage"]) == (
        True,
        True,
    )
    assert (head["pageInfo"]["hasPreviousPage"], head["pageInfo"]["hasNextPage"]) == (False, True)


def test_page_info_cursors_are_the_first_and_last_edge_cursors(
    gql: GraphQLClient, tied: list[str]
) -> None:
    result = page(gql, first=2)
    assert result["pageInfo"]["startCursor"] == result["edges"][0]["cursor"]
    assert result["pageInfo"]["endCursor"] == result["edges"][1]["cursor"]
    assert [n["email"] for n in result["nodes"]] == emails(result)


def test_an_edge_cursor_resumes_right_after_that_edge(gql: GraphQLClient, tied: list[str]) -> None:
    result = page(gql, first=7)
    cursor_of_third = result["edges"][2]["cursor"]
    assert emails(page(gql, first=2, after=cursor_of_third)) == tied[3:5]
    assert emails(page(gql, last=2, before=cursor_of_third)) == tied[0:2]


def test_an_empty_list_has_no_cursors(gql: GraphQLClient) -> None:
    assert page(gql) == {
        "edges": [],
        "nodes": [],
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
    }


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ({"field": "SCORE", "direction": "DESC"}, ["b", "c", "a", "d"]),
        ({"field": "SCORE", "direction": "ASC"}, ["d", "a", "c", "b"]),
        ({"field": "NAME", "direction": "ASC"}, ["d", "a", "c", "b"]),
        ({"field": "NAME", "direction": "DESC"}, ["b", "c", "a", "d"]),
        ({"field": "EMAIL", "direction": "ASC"}, ["a", "b", "c", "d"]),
        ({"field": "EMAIL", "direction": "DESC"}, ["d", "c", "b", "a"]),
        ({"field": "UPDATED_AT", "direction": "ASC"}, ["c", "b", "d", "a"]),
        ({"field": "CREATED_AT", "direction": "ASC"}, ["a", "b", "c", "d"]),
    ],
)
def test_every_sort_order_pages_two_at_a_time(
    server: LiveServer, gql: GraphQLClient, order: dict[str, str], expected: list[str]
) -> None:
    t = BASE_TIME
    create_leads(
        server,
        # score ties (a, c) and name ties (a: "ann lee" vs "Ann Lee") are broken by id.
        lead_values(
            email="a@x.com",
            score=50,
            first_name="Ann",
            last_name="Lee",
            created_at=t,
            updated_at=t + timedelta(days=9),
        ),
        lead_values(
            email="B@x.com",
            score=90,
            first_name="zoe",
            created_at=t + timedelta(days=1),
            updated_at=t + timedelta(days=2),
        ),
        lead_values(
            email="c@x.com",
            score=50,
            first_name="ann",
            last_name="lee",
            created_at=t + timedelta(days=2),
            updated_at=t + timedelta(days=1),
        ),
        lead_values(
            email="d@x.com",
            score=0,
            created_at=t + timedelta(days=3),
            updated_at=t + timedelta(days=3),
        ),
    )
    first = page(gql, first=2, orderBy=order)
    second = page(gql, first=2, orderBy=order, after=first["pageInfo"]["endCursor"])
    got = [e.split("@")[0].lower() for e in emails(first) + emails(second)]
    assert got == expected
    back = page(gql, last=2, orderBy=order)
    assert [e.split("@")[0].lower() for e in emails(back)] == expected[2:]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ({"field": "NAME"}, ["ann", "bob", "cid"]),
        ({"field": "NAME", "direction": None}, ["ann", "bob", "cid"]),
        ({"field": "EMAIL"}, ["ann", "bob", "cid"]),
        ({"field": "SCORE"}, ["bob", "cid", "ann"]),
        ({"field": "CREATED_AT"}, ["cid", "bob", "ann"]),
        ({"field": "UPDATED_AT", "direction": None}, ["cid", "bob", "ann"]),
    ],
)
def test_a_left_out_direction_sorts_names_and_emails_up_and_the_rest_down(
    server: LiveServer, gql: GraphQLClient, order: dict[str, Any], expected: list[str]
) -> None:
    create_leads(
        server,
        lead_values(email="ann@x.com", first_name="Ann", score=10),
        lead_values(email="bob@x.com", first_name="Bob", score=90),
        lead_values(email="cid@x.com", first_name="Cid", score=50),
    )
    first = page(gql, first=2, orderBy=order)
    rest = page(gql, first=2, orderBy=order, after=first["pageInfo"]["endCursor"])
    assert [e.split("@")[0] for e in emails(first) + emails(rest)] == expected


def test_a_cursor_made_with_the_direction_left_out_is_one_of_that_direction(
    server: LiveServer, gql: GraphQLClient
) -> None:
    create_leads(
        server,
        lead_values(email="ann@x.com", first_name="Ann"),
        lead_values(email="bob@x.com", first_name="Bob"),
    )
    cursor = page(gql, first=1, orderBy={"field": "NAME"})["pageInfo"]["endCursor"]

    explicit = page(gql, first=1, after=cursor, orderBy={"field": "NAME", "direction": "ASC"})
    assert emails(explicit) == ["bob@x.com"]
    other_direction = error(
        gql(LEADS, {"first": 1, "after": cursor, "orderBy": {"field": "NAME", "direction": "DESC"}})
    )
    assert other_direction["message"].startswith(
        "Argument 'after' is a cursor made under a different orderBy (NAME:ASC)"
    )


def test_default_page_size_is_20(server: LiveServer, gql: GraphQLClient) -> None:
    create_leads(server, *(lead_values() for _ in range(25)))
    result = page(gql)
    assert len(result["edges"]) == 20
    assert result["pageInfo"]["hasNextPage"] is True
    assert len(page(gql, last=None, before=result["pageInfo"]["endCursor"])["edges"]) == 19


def test_first_zero_returns_no_edges(server: LiveServer, gql: GraphQLClient) -> None:
    create_leads(server, lead_values())
    assert page(gql, first=0)["edges"] == []


@pytest.mark.parametrize(
    ("variables", "message", "argument"),
    [
        ({"first": 101}, "Argument 'first' must be at most 100 (got 101).", "first"),
        ({"last": 500}, "Argument 'last' must be at most 100 (got 500).", "last"),
        ({"first": -1}, "Argument 'first' must not be negative.", "first"),
        ({"last": -5}, "Argument 'last' must not be negative.", "last"),
        ({"first": 1, "last": 1}, "Pass either 'first' or 'last', not both.", "last"),
        ({"after": "x", "before": "y"}, "Pass either 'after' or 'before', not both.", "before"),
        (
            {"first": 1, "before": "x"},
            "'before' pages backwards: use it with 'last', not 'first'.",
            "before",
        ),
        (
            {"last": 1, "after": "x"},
            "'after' pages forwards: use it with 'first', not 'last'.",
            "after",
        ),
        ({"after": "not a cursor"}, "Argument 'after' is not a valid cursor.", "after"),
        ({"before": "bm9wZQ"}, "Argument 'before' is not a valid cursor.", "before"),
        ({"after": ""}, "Argument 'after' is not a valid cursor.", "after"),
    ],
)
def test_bad_paging_arguments_are_clean_errors(
    gql: GraphQLClient, variables: dict[str, Any], message: str, argument: str
) -> None:
    assert error(gql(LEADS, variables)) == {
        "message": message,
        "code": "BAD_USER_INPUT",
        "argument": argument,
    }


def test_a_cursor_made_under_another_order_is_refused(
    server: LiveServer, gql: GraphQLClient
) -> None:
    create_leads(server, lead_values(), lead_values())
    cursor = page(gql, first=1, orderBy={"field": "SCORE"})["pageInfo"]["endCursor"]

    by_date = error(gql(LEADS, {"first": 1, "after": cursor}))
    other_direction = error(
        gql(LEADS, {"first": 1, "after": cursor, "orderBy": {"field": "SCORE", "direction": "ASC"}})
    )

    assert by_date["argument"] == "after"
    assert by_date["message"].startswith(
        "Argument 'after' is a cursor made under a different orderBy (SCORE:DESC)"
    )
    assert other_direction["argument"] == "after"


def test_a_tampered_cursor_is_refused(server: LiveServer, gql: GraphQLClient) -> None:
    import base64
    import json

    forged = base64.urlsafe_b64encode(
        json.dumps(["CREATED_AT:DESC", "yesterday", 1]).encode()
    ).decode()
    wrong_id = base64.urlsafe_b64encode(
        json.dumps(["CREATED_AT:DESC", BASE_TIME.isoformat(), "1"]).encode()
    ).decode()
    for cursor in (forged, wrong_id):
        assert error(gql(LEADS, {"after": cursor}))["message"] == (
            "Argument 'after' is not a valid cursor."
        )


def _cursor(*parts: Any) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("order", "cursor"),
    [
        ({"field": "CREATED_AT"}, _cursor("CREATED_AT:DESC", BASE_TIME.isoformat(), 2**31)),
        ({"field": "SCORE"}, _cursor("SCORE:DESC", 2**31, 1)),
        ({"field": "SCORE"}, _cursor("SCORE:DESC", -(2**31) - 1, 1)),
        ({"field": "NAME"}, _cursor("NAME:ASC", "a\u0000b", 1)),
    ],
    ids=["id-past-any-row", "value-past-int", "value-below-int", "nul-in-text"],
)
def test_a_cursor_with_values_no_row_can_hold_is_refused(
    gql: GraphQLClient, order: dict[str, str], cursor: str
) -> None:
    # Forged: no page hands these out, and the database could not compare them (an integer
    # column holds 32 bits on PostgreSQL, and its text no NUL).
    assert error(gql(LEADS, {"after": cursor, "orderBy": order})) == {
        "message": "Argument 'after' is not a valid cursor.",
        "code": "BAD_USER_INPUT",
        "argument": "after",
    }


def test_total_count_counts_the_filtered_set_not_the_page(
    server: LiveServer, gql: GraphQLClient
) -> None:
    create_leads(
        server,
        *(lead_values(status="QUALIFIED") for _ in range(30)),
        *(lead_values(status="NEW") for _ in range(5)),
    )
    query = """query { all: leads(first: 2) { totalCount }
                     q: leads(first: 2, filter: {status: [QUALIFIED]}) { totalCount } }"""
    assert gql.data(query) == {"all": {"totalCount": 35}, "q": {"totalCount": 30}}


def test_total_count_is_only_computed_when_asked(
    server: LiveServer, gql: GraphQLClient, count_queries
) -> None:
    create_leads(server, lead_values())
    with count_queries() as without:
        gql.data("{ leads { edges { node { id } } } }")
    with count_queries() as with_count:
        gql.data("{ leads { totalCount edges { node { id } } } }")
    with count_queries() as only_count:
        gql.data("{ leads { totalCount } }")
    # Each request also looks up its credential: one statement.
    assert not any("count(" in s.lower() for s in without.statements)
    assert without.count == 2
    assert with_count.count == 3
    assert only_count.count == 3


# ---------------------------------------------------------------- filters


@pytest.fixture
def crowd(server: LiveServer) -> None:
    t = BASE_TIME
    create_leads(
        server,
        lead_values(
            email="ann@acme.com",
            first_name="Ann",
            last_name="Lee",
            company="Acme Inc",
            city="Austin",
            state="TX",
            source="Website",
            status="NEW",
            score=10,
            created_at=t,
        ),
        lead_values(
            email="bob@globex.com",
            first_name="Bob",
            last_name="Stone",
            company="Globex 100% Co",
            city="austin",
            state="tx",
            source="referral",
            status="CONTACTED",
            score=55,
            created_at=t + timedelta(days=1),
        ),
        lead_values(
            email="cy@initech.io",
            first_name="Cy",
            company="Initech_Labs",
            city="Dallas",
            state="TX",
            source="social",
            status="QUALIFIED",
            score=90,
            created_at=t + timedelta(days=2),
        ),
        lead_values(
            email="dee@umbrella.org",
            last_name="O'Brien",
            company="Umbrella",
            city="Boston",
            state="MA",
            source="WEBSITE",
            status="LOST",
            score=100,
            created_at=t + timedelta(days=3),
            converted_at=t + timedelta(days=4),
        ),
    )


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"search": "ACME"}, ["ann"]),  # company, case-insensitive
        ({"search": "ann lee"}, ["ann"]),  # the full name
        ({"search": "stone"}, ["bob"]),  # last name
        ({"search": "initech.io"}, ["cy"]),  # email
        ({"search": "o'brien"}, ["dee"]),  # quotes are literal
        ({"search": "100%"}, ["bob"]),  # % is literal
        ({"search": "%"}, ["bob"]),
        ({"search": "acme_inc"}, []),  # _ is literal, not a wildcard
        ({"search": "h_La"}, ["cy"]),
        ({"search": "   "}, ["ann", "bob", "cy", "dee"]),  # blank search is no condition
        ({"status": ["NEW", "LOST"]}, ["ann", "dee"]),
        ({"status": []}, []),
        ({"source": ["website"]}, ["ann", "dee"]),  # exact, case-insensitive
        ({"source": ["Referral", "SOCIAL"]}, ["bob", "cy"]),
        ({"source": ["web"]}, []),  # exact, not substring
        ({"city": "AUSTIN"}, ["ann", "bob"]),
        ({"state": "tx"}, ["ann", "bob", "cy"]),
        ({"email": "BOB@GLOBEX.COM"}, ["bob"]),
        ({"email": "bob@globex"}, []),
        ({"score": {"gte": 55}}, ["bob", "cy", "dee"]),
        ({"score": {"lte": 55}}, ["ann", "bob"]),
        ({"score": {"gte": 50, "lte": 90}}, ["bob", "cy"]),
        ({"createdAt": {"gte": "2026-01-02T00:00:00+00:00"}}, ["bob", "cy", "dee"]),
        ({"createdAt": {"lt": "2026-01-02T00:00:00Z"}}, ["ann"]),
        ({"createdAt": {"gte": "2026-01-02T01:00:00+01:00", "lt": "2026-01-03"}}, ["bob"]),
        ({"converted": True}, ["dee"]),
        ({"converted": False}, ["ann", "bob", "cy"]),
        ({"state": "TX", "score": {"gte": 50}, "search": "co"}, ["bob"]),  # all must hold
    ],
)
def test_lead_filters(
    gql: GraphQLClient, crowd: None, flt: dict[str, Any], expected: list[str]
) -> None:
    got = [n["email"].split("@")[0] for n in gql.data(EMAILS, {"filter": flt})["leads"]["nodes"]]
    assert sorted(got) == expected
    assert gql.data(COUNT, {"filter": flt})["leads"]["totalCount"] == len(expected)


def test_search_longer_than_200_characters_is_refused(gql: GraphQLClient) -> None:
    assert error(gql(COUNT, {"filter": {"search": "x" * 201}})) == {
        "message": "Argument 'filter.search' must be at most 200 characters.",
        "code": "BAD_USER_INPUT",
        "argument": "filter.search",
    }


def test_a_bad_datetime_in_a_filter_is_a_request_error(gql: GraphQLClient) -> None:
    body = gql(COUNT, {"filter": {"createdAt": {"gte": "last tuesday"}}})
    assert "data" not in body
    assert "is not an ISO 8601 date-time" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
