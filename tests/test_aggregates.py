"""Pipeline counts (issue 12): ``leads { aggregate { ... } }`` counts every lead the
connection's filter matches, not just the page: by status (every status, zeros included), by
source and state (case aside, largest first), by owner, per UTC day created and converted.
All through the API over HTTP, on the suite's engine."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from db.models import DEFAULT_WORKSPACE_ID, Role
from db.repositories.auth import MembershipRepository, UserRepository
from db.types import utcnow
from resolvers.auth import create_key_for_workspace
from resolvers.ids import to_global_id
from tests.conftest import GraphQLClient, LiveServer
from tests.factories import create_leads, lead_values

EVERYTHING = """
count averageScore
byStatus { status count }
bySource { value count }
byState { value count }
byOwner { owner { id email } count }
createdPerDay { day count }
convertedPerDay { day count }
"""
AGGREGATE = f"""
query ($filter: LeadFilter, $first: Int) {{
  leads(filter: $filter, first: $first) {{
    totalCount nodes {{ email }} aggregate {{ {EVERYTHING} }}
  }}
}}
"""
COUNTS = """
query ($filter: LeadFilter) {
  leads(filter: $filter, first: 0) {
    aggregate { count averageScore byStatus { status count } }
  }
}
"""
GROUPS = """
query ($first: Int, $filter: LeadFilter) {
  leads(first: 0, filter: $filter) {
    aggregate {
      bySource(first: $first) { value count }
      byState(first: $first) { value count }
      byOwner(first: $first) { owner { email } count }
    }
  }
}
"""
DAYS = """
query ($days: Int, $filter: LeadFilter) {
  leads(first: 0, filter: $filter) {
    aggregate {
      createdPerDay(days: $days) { day count }
      convertedPerDay(days: $days) { day count }
    }
  }
}
"""
CREATE_TAG = """
mutation ($name: String!) { createTag(input: {name: $name}) { tag { id } userErrors { code } } }
"""
CREATE_LEAD = """
mutation ($input: CreateLeadInput!) {
  createLead(input: $input) { lead { id } userErrors { code } }
}
"""
CREATE_KEY = """
mutation ($role: Role!) { createApiKey(input: {name: "counts", role: $role}) { secret } }
"""
STATUSES = ["NEW", "CONTACTED", "QUALIFIED", "WON", "LOST"]


def statuses(**counts: int) -> list[dict[str, Any]]:
    return [{"status": s, "count": counts.get(s, 0)} for s in STATUSES]


def member(server: LiveServer, email: str) -> int:
    """A MEMBER of the default workspace (straight to the database): their user pk."""

    async def insert() -> int:
        now = utcnow()
        async with server.db.write() as conn:
            user = await UserRepository(conn).insert(
                email=email, name=email.split("@")[0], created_at=now, email_verified_at=now
            )
            await MembershipRepository(conn, DEFAULT_WORKSPACE_ID).insert(user.id, "MEMBER", now)
        return int(user.id)

    return server.run(insert())


def aggregate(gql: GraphQLClient, query: str, **variables: Any) -> dict[str, Any]:
    result: dict[str, Any] = gql.data(query, variables)["leads"]["aggregate"]
    return result


def days_ago(n: int, hour: int = 12) -> datetime:
    today = datetime.now(UTC).date()
    return datetime.combine(today - timedelta(days=n), time(hour), UTC)


def day(n: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=n)).isoformat()


# ------------------------------------------------------------------ the counts


def test_an_empty_workspace_counts_zeros(server: LiveServer, gql: GraphQLClient) -> None:
    found = aggregate(gql, AGGREGATE)

    assert found["count"] == 0
    assert found["averageScore"] is None
    assert found["byStatus"] == statuses()
    assert (found["bySource"], found["byState"], found["byOwner"]) == ([], [], [])
    assert found["createdPerDay"] == [{"day": day(n), "count": 0} for n in range(29, -1, -1)]
    assert found["convertedPerDay"] == found["createdPerDay"]


def test_counts_cover_every_lead_not_just_the_page(server: LiveServer, gql: GraphQLClient) -> None:
    create_leads(
        server,
        *(lead_values(status="NEW", score=10) for _ in range(3)),
        lead_values(status="WON", score=40),
        lead_values(status="LOST", score=70),
    )

    body = gql.data(AGGREGATE, {"first": 1})["leads"]

    assert len(body["nodes"]) == 1
    assert body["totalCount"] == body["aggregate"]["count"] == 5
    assert body["aggregate"]["averageScore"] == pytest.approx(28.0)
    assert body["aggregate"]["byStatus"] == statuses(NEW=3, WON=1, LOST=1)


def test_sources_group_case_aside_largest_first_ties_by_value_unset_last(
    server: LiveServer, gql: GraphQLClient
) -> None:
    create_leads(
        server,
        lead_values(source="Webinar"),  # the oldest spelling of its group
        lead_values(source="WEBINAR"),
        lead_values(source="webinar"),
        lead_values(source="Referral"),
        lead_values(source="ads"),
        lead_values(source=None),
        lead_values(source="Ads"),
        lead_values(source=None),
    )

    found = aggregate(gql, GROUPS)["bySource"]

    assert found == [
        {"value": "Webinar", "count": 3},
        {"value": "ads", "count": 2},
        {"value": None, "count": 2},
        {"value": "Referral", "count": 1},
    ]


def test_states_group_names_and_codes(server: LiveServer, gql: GraphQLClient) -> None:
    create_leads(
        server,
        lead_values(state="TX"),
        lead_values(state="Texas"),
        lead_values(state="texas"),
        lead_values(state="California"),
        lead_values(state="CA"),
        lead_values(state="Oregon"),
    )

    found = aggregate(gql, GROUPS)["byState"]

    assert found == [
        {"value": "TX", "count": 3},
        {"value": "California", "count": 2},
        {"value": "Oregon", "count": 1},
    ]


def test_owners_largest_first_unassigned_as_null(server: LiveServer, gql: GraphQLClient) -> None:
    ann, bob = member(server, "ann@example.com"), member(server, "bob@example.com")
    create_leads(
        server,
        *(lead_values(owner_id=bob) for _ in range(3)),
        lead_values(owner_id=ann),
        lead_values(owner_id=None),
    )

    found = aggregate(gql, GROUPS)["byOwner"]

    assert found == [
        {"owner": {"email": "bob@example.com"}, "count": 3},
        {"owner": {"email": "ann@example.com"}, "count": 1},
        {"owner": None, "count": 1},
    ]


def test_first_keeps_the_largest_groups(server: LiveServer, gql: GraphQLClient) -> None:
    create_leads(
        server,
        *(lead_values(source=f"s{n}", state="Utah") for n in range(3)),
        lead_values(source="s1", state="Ohio"),
    )

    found = aggregate(gql, GROUPS, first=2)

    assert found["bySource"] == [{"value": "s1", "count": 2}, {"value": "s0", "count": 1}]
    assert found["byState"] == [{"value": "Utah", "count": 3}, {"value": "Ohio", "count": 1}]
    assert found["byOwner"] == [{"owner": None, "count": 4}]


def test_created_and_converted_per_utc_day_oldest_first(
    server: LiveServer, gql: GraphQLClient
) -> None:
    create_leads(
        server,
        lead_values(created_at=days_ago(0, hour=0)),  # today, its first second
        lead_values(created_at=days_ago(0)),
        lead_values(created_at=days_ago(2, hour=23)),
        lead_values(created_at=days_ago(3)),  # before a 3-day window
        lead_values(
            created_at=days_ago(40), converted_at=days_ago(1), status="WON"
        ),  # converted yesterday, created outside the window
        lead_values(created_at=days_ago(5), converted_at=days_ago(0), status="WON"),
    )

    found = aggregate(gql, DAYS, days=3)

    assert found["createdPerDay"] == [
        {"day": day(2), "count": 1},
        {"day": day(1), "count": 0},
        {"day": day(0), "count": 2},
    ]
    assert found["convertedPerDay"] == [
        {"day": day(2), "count": 0},
        {"day": day(1), "count": 1},
        {"day": day(0), "count": 1},
    ]


def test_per_day_defaults_to_30_days(server: LiveServer, gql: GraphQLClient) -> None:
    create_leads(server, lead_values(created_at=days_ago(29)), lead_values(created_at=days_ago(30)))

    found = aggregate(gql, DAYS)["createdPerDay"]

    assert len(found) == 30
    assert found[0] == {"day": day(29), "count": 1}
    assert sum(d["count"] for d in found) == 1


# ------------------------------------------------------------------ the filter


def test_every_count_follows_the_filter(server: LiveServer, gql: GraphQLClient) -> None:
    create_leads(
        server,
        lead_values(status="NEW", state="TX", source="Ads", score=20, created_at=days_ago(1)),
        lead_values(status="CONTACTED", state="Texas", source="ads", score=40),
        lead_values(status="QUALIFIED", state="TX", source="Ads", score=90),  # not the status
        lead_values(status="NEW", state="Ohio", source="Ads", score=90),  # not the state
    )
    given = {"status": ["NEW", "CONTACTED"], "state": "texas"}

    found = gql.data(AGGREGATE, {"filter": given, "first": 0})["leads"]

    counts = found["aggregate"]
    assert found["totalCount"] == counts["count"] == 2
    assert counts["averageScore"] == pytest.approx(30.0)
    assert counts["byStatus"] == statuses(NEW=1, CONTACTED=1)
    assert counts["bySource"] == [{"value": "Ads", "count": 2}]
    assert counts["byState"] == [{"value": "TX", "count": 2}]
    assert counts["byOwner"] == [{"owner": None, "count": 2}]
    assert counts["createdPerDay"][-2] == {"day": day(1), "count": 1}
    assert sum(d["count"] for d in counts["createdPerDay"]) == 1  # the other: 2026-01-01


def test_owner_and_tag_filters_apply(server: LiveServer, gql: GraphQLClient) -> None:
    ann = member(server, "ann@example.com")
    hot = gql.data(CREATE_TAG, {"name": "Hot"})["createTag"]["tag"]["id"]
    owner = to_global_id("User", ann)
    for n, (owned, tags) in enumerate([(True, [hot]), (True, []), (False, [hot]), (False, [])]):
        values = {"email": f"l{n}@example.com", "tagIds": tags, "score": 10 * n}
        if owned:
            values["ownerId"] = owner
        assert gql.data(CREATE_LEAD, {"input": values})["createLead"]["userErrors"] == []

    def count(filter_: dict[str, Any]) -> tuple[int, float | None]:
        found = aggregate(gql, COUNTS, filter=filter_)
        return found["count"], found["averageScore"]

    assert count({"ownerId": owner}) == (2, 5.0)
    assert count({"unassigned": True}) == (2, 25.0)
    assert count({"tags": {"any": [hot]}}) == (2, 10.0)
    assert count({"tags": {"none": [hot]}}) == (2, 20.0)
    assert count({"ownerId": owner, "tags": {"all": [hot]}}) == (1, 0.0)
    found = aggregate(gql, GROUPS, filter={"tags": {"any": [hot]}})
    assert found["byOwner"] == [
        {"owner": {"email": "ann@example.com"}, "count": 1},
        {"owner": None, "count": 1},
    ]


def test_a_search_filter_applies(server: LiveServer, gql: GraphQLClient) -> None:
    create_leads(
        server,
        lead_values(email="alice@acme.example", status="WON"),
        lead_values(email="bob@acme.example", status="LOST"),
        lead_values(email="carol@other.example"),
    )

    found = aggregate(gql, COUNTS, filter={"search": "acme"})

    assert found["count"] == 2
    assert found["byStatus"] == statuses(WON=1, LOST=1)


# ------------------------------------------------------------------ access and arguments


def test_another_workspaces_leads_are_not_counted(server: LiveServer, gql: GraphQLClient) -> None:
    create_leads(server, lead_values(source="Ads", state="TX", status="WON"))
    secret, _, _ = server.run(create_key_for_workspace(server.db, "Other Co", Role.OWNER, "tests"))
    other = gql.as_(secret)
    for n in range(2):
        values = {"email": f"o{n}@example.com", "source": "Ads", "state": "Texas"}
        assert other.data(CREATE_LEAD, {"input": values})["createLead"]["userErrors"] == []

    mine, theirs = aggregate(gql, AGGREGATE), aggregate(other, AGGREGATE)

    assert (mine["count"], theirs["count"]) == (1, 2)
    assert mine["bySource"] == [{"value": "Ads", "count": 1}]
    assert theirs["byState"] == [{"value": "Texas", "count": 2}]
    assert theirs["byStatus"] == statuses(NEW=2)
    assert sum(d["count"] for d in theirs["createdPerDay"]) == 2


def test_a_viewer_reads_the_counts(server: LiveServer, gql: GraphQLClient) -> None:
    create_leads(server, lead_values(status="QUALIFIED", score=50, source="Ads"))
    viewer = gql.as_(gql.data(CREATE_KEY, {"role": "VIEWER"})["createApiKey"]["secret"])

    found = aggregate(viewer, AGGREGATE)

    assert found == aggregate(gql, AGGREGATE)
    assert found["count"] == 1
    assert found["byStatus"] == statuses(QUALIFIED=1)


def test_counts_need_credentials(server: LiveServer, anon: GraphQLClient) -> None:
    body = anon(COUNTS, status=401)

    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("query", "variables", "argument", "message"),
    [
        (GROUPS, {"first": 0}, "first", "Argument 'first' must be between 1 and 100 (got 0)."),
        (GROUPS, {"first": 101}, "first", "Argument 'first' must be between 1 and 100 (got 101)."),
        (DAYS, {"days": 0}, "days", "Argument 'days' must be between 1 and 366 (got 0)."),
        (DAYS, {"days": 367}, "days", "Argument 'days' must be between 1 and 366 (got 367)."),
    ],
)
def test_arguments_out_of_bounds_are_bad_input(
    server: LiveServer,
    gql: GraphQLClient,
    query: str,
    variables: dict[str, Any],
    argument: str,
    message: str,
) -> None:
    body = gql(query, variables)

    assert body["errors"]
    for error in body["errors"]:
        assert error["message"] == message
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["extensions"]["argument"] == argument
    assert body["data"] is None


def test_the_bounds_themselves_are_accepted(server: LiveServer, gql: GraphQLClient) -> None:
    create_leads(server, lead_values(source="Ads"))

    groups = aggregate(gql, GROUPS, first=100)
    days = aggregate(gql, DAYS, days=366)
    one = aggregate(gql, DAYS, days=1)

    assert groups["bySource"] == [{"value": "Ads", "count": 1}]
    assert len(days["createdPerDay"]) == 366
    assert one["createdPerDay"] == [{"day": day(0), "count": 0}]


# ------------------------------------------------------------------ statements


def test_each_count_is_one_statement_and_only_when_selected(
    server: LiveServer, gql: GraphQLClient, count_queries: Any
) -> None:
    ann = member(server, "ann@example.com")
    create_leads(
        server,
        *(
            lead_values(owner_id=ann if n % 2 else None, source=f"s{n % 7}", state=f"st{n % 5}")
            for n in range(60)
        ),
    )
    everything = f"{{ leads(first: 0) {{ aggregate {{ {EVERYTHING} }} }} }}"

    with count_queries() as whole:
        found = gql.data(everything)["leads"]["aggregate"]
    with count_queries() as one:
        gql.data("{ leads(first: 0) { aggregate { byOwner { owner { email } count } } } }")
    with count_queries() as none:
        gql.data("{ leads(first: 0) { totalCount } }")

    assert found["count"] == 60
    assert len(found["byOwner"]) == 2
    # The credential lookup, then one statement per count selected: 8, 1 and none.
    assert (whole.count, one.count, none.count) == (1 + 8, 1 + 1, 1 + 1)
