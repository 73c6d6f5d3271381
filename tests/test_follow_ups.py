"""Follow-ups (issue 12): a title, a due time and an assignee on a lead or client; the
workspace's list (OPEN and due first by default) and each lead's and client's, filtered by
status, assignee, "mine", a due window (UTC) and subject; MEMBER writes, VIEWER reads; events;
removing a member unassigns their OPEN follow-ups. Through the API over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import sqlite

from db.models import DEFAULT_WORKSPACE_ID, FollowUpStatus, Lead, Role
from db.repositories.auth import MembershipRepository, UserRepository
from db.repositories.base import KEYSET_ID, KEYSET_VALUE, PAGE_LIMIT, SCOPE_PARAM, _page
from db.repositories.follow_ups import (
    FollowUpFilterSpec,
    FollowUpRepository,
    follow_up_due_bound,
)
from db.types import utcnow
from resolvers.auth import create_key_for_workspace
from resolvers.ids import to_global_id
from tests.conftest import GraphQLClient, LiveServer, Mailbox
from tests.factories import create_leads, lead_values
from tests.test_activities import signed_in_member

USER_ERRORS = "userErrors { field code message }"
FOLLOW_UP = """
  id title notes dueAt status completedAt createdAt
  assignee { id email }
  subject { __typename id }
"""
CREATE = f"""
mutation ($input: CreateFollowUpInput!) {{
  createFollowUp(input: $input) {{ followUp {{ {FOLLOW_UP} }} {USER_ERRORS} }}
}}
"""
UPDATE = f"""
mutation ($id: ID!, $input: UpdateFollowUpInput!) {{
  updateFollowUp(id: $id, input: $input) {{ followUp {{ {FOLLOW_UP} }} {USER_ERRORS} }}
}}
"""
LIST = """
query ($first: Int, $after: String, $last: Int, $before: String, $filter: FollowUpFilter,
       $orderBy: FollowUpOrder) {
  followUps(first: $first, after: $after, last: $last, before: $before, filter: $filter,
            orderBy: $orderBy) {
    totalCount
    edges { cursor node { title } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""
SUBJECT_LIST = """
query ($id: ID!, $first: Int, $after: String, $filter: FollowUpFilter) {
  node(id: $id) {
    ... on Lead { followUps(first: $first, after: $after, filter: $filter) { ...Page } }
    ... on Client { followUps(first: $first, after: $after, filter: $filter) { ...Page } }
  }
}
fragment Page on FollowUpConnection {
  totalCount nodes { title } pageInfo { hasNextPage endCursor }
}
"""
NODE = f"query ($id: ID!) {{ node(id: $id) {{ __typename ... on FollowUp {{ {FOLLOW_UP} }} }} }}"
EVENTS = """
{ events(filter: {types: [FOLLOW_UP_CREATED, FOLLOW_UP_UPDATED]}) {
    nodes { type recordId record { __typename id } changes { field from to } } } }
"""
LEADS_DUE = """
query ($due: DueWindow) {
  leads(filter: {followUpDue: $due}, orderBy: {field: EMAIL}) { totalCount nodes { email } }
}
"""
CREATE_LEAD = "mutation ($email: String!) { createLead(input: {email: $email}) { lead { id } } }"
CREATE_CLIENT = """
mutation ($email: String!) {
  createClient(input: {email: $email, firstName: "C", lastName: "L"}) { client { id } }
}
"""
CREATE_KEY = """
mutation ($role: Role!) { createApiKey(input: {name: "k", role: $role}) { secret } }
"""
REMOVE_MEMBER = f"""
mutation ($userId: ID!) {{ removeMember(userId: $userId) {{ removedUserId {USER_ERRORS} }} }}
"""


# ------------------------------------------------------------------ helpers


def key(gql: GraphQLClient, role: str) -> GraphQLClient:
    secret: str = gql.data(CREATE_KEY, {"role": role})["createApiKey"]["secret"]
    return gql.as_(secret)


def member(server: LiveServer, email: str, workspace_id: int = DEFAULT_WORKSPACE_ID) -> str:
    """A MEMBER of the workspace (straight to the database): their user ID."""

    async def insert() -> int:
        now = utcnow()
        async with server.db.write() as conn:
            user = await UserRepository(conn).insert(
                email=email, name=email.split("@")[0], created_at=now, email_verified_at=now
            )
            await MembershipRepository(conn, workspace_id).insert(user.id, "MEMBER", now)
        return int(user.id)

    return to_global_id("User", server.run(insert()))


def new_lead(gql: GraphQLClient, email: str = "lead@example.com") -> str:
    lead_id: str = gql.data(CREATE_LEAD, {"email": email})["createLead"]["lead"]["id"]
    return lead_id


def new_client(gql: GraphQLClient, email: str = "client@example.com") -> str:
    client_id: str = gql.data(CREATE_CLIENT, {"email": email})["createClient"]["client"]["id"]
    return client_id


def iso(moment: datetime) -> str:
    return moment.isoformat()


def in_(**delta: float) -> str:
    return iso(datetime.now(UTC) + timedelta(**delta))


def create(
    gql: GraphQLClient, subject_id: str, title: str, due: str, **extra: Any
) -> dict[str, Any]:
    variables = {"input": {"subjectId": subject_id, "title": title, "dueAt": due, **extra}}
    payload: dict[str, Any] = gql.data(CREATE, variables)["createFollowUp"]
    return payload


def created(gql: GraphQLClient, subject_id: str, title: str, due: str, **extra: Any) -> str:
    payload = create(gql, subject_id, title, due, **extra)
    assert payload["userErrors"] == [], payload
    follow_up_id: str = payload["followUp"]["id"]
    return follow_up_id


def update(gql: GraphQLClient, id_: str, **given: Any) -> dict[str, Any]:
    payload: dict[str, Any] = gql.data(UPDATE, {"id": id_, "input": given})["updateFollowUp"]
    return payload


def titles(gql: GraphQLClient, **variables: Any) -> list[str]:
    page = gql.data(LIST, variables)["followUps"]
    assert page["totalCount"] >= len(page["edges"])
    return [edge["node"]["title"] for edge in page["edges"]]


def subject_titles(gql: GraphQLClient, subject_id: str, **variables: Any) -> list[str]:
    page = gql.data(SUBJECT_LIST, {"id": subject_id, **variables})["node"]["followUps"]
    return [node["title"] for node in page["nodes"]]


# ------------------------------------------------------------------ creating


def test_a_member_creates_a_follow_up_on_a_lead_for_a_member(
    server: LiveServer, gql: GraphQLClient
) -> None:
    lead_id = new_lead(gql)
    ann = member(server, "ann@example.com")
    due = datetime(2030, 5, 1, 9, 30, tzinfo=UTC)
    before = datetime.now(UTC)

    payload = create(
        key(gql, "MEMBER"), lead_id, "  Call back \n", iso(due), assigneeId=ann, notes=" re: price "
    )

    assert payload["userErrors"] == []
    made = payload["followUp"]
    assert made["title"] == "Call back"
    assert made["notes"] == "re: price"
    assert datetime.fromisoformat(made["dueAt"]) == due
    assert (made["status"], made["completedAt"]) == ("OPEN", None)
    assert made["assignee"] == {"id": ann, "email": "ann@example.com"}
    assert made["subject"] == {"__typename": "Lead", "id": lead_id}
    assert datetime.fromisoformat(made["createdAt"]) >= before
    assert gql.data(NODE, {"id": made["id"]})["node"] == {"__typename": "FollowUp", **made}


def test_a_follow_up_on_a_client_without_an_assignee(gql: GraphQLClient) -> None:
    client_id = new_client(gql)

    made = create(gql, client_id, "Renewal", in_(days=3))["followUp"]

    assert made["subject"] == {"__typename": "Client", "id": client_id}
    assert made["assignee"] is None
    assert subject_titles(gql, client_id) == ["Renewal"]


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ({"title": "  "}, (["input", "title"], "REQUIRED")),
        ({"title": "x" * 201}, (["input", "title"], "INVALID")),
        ({"notes": "x" * 10_001}, (["input", "notes"], "INVALID")),
        ({"dueAt": "tomorrow"}, None),  # not a DateTime: the scalar refuses it
        ({"subjectId": "not an id"}, (["input", "subjectId"], "INVALID")),
        ({"subjectId": to_global_id("Lead", 999_999)}, (["input", "subjectId"], "NOT_FOUND")),
        ({"subjectId": to_global_id("Event", 1)}, (["input", "subjectId"], "NOT_FOUND")),
        ({"assigneeId": "nope"}, (["input", "assigneeId"], "INVALID")),
        ({"assigneeId": to_global_id("User", 999_999)}, (["input", "assigneeId"], "NOT_FOUND")),
        ({"assigneeId": to_global_id("Lead", 1)}, (["input", "assigneeId"], "NOT_FOUND")),
    ],
    ids=[
        "blank-title",
        "title-too-long",
        "notes-too-long",
        "bad-due",
        "bad-subject",
        "no-lead",
        "not-a-subject",
        "bad-assignee",
        "no-user",
        "not-a-user",
    ],
)
def test_bad_input_is_a_user_error_and_writes_nothing(
    gql: GraphQLClient, given: dict[str, Any], error: tuple[list[str], str] | None
) -> None:
    lead_id = new_lead(gql)
    variables = {"input": {"subjectId": lead_id, "title": "T", "dueAt": in_(days=1), **given}}

    body = gql(CREATE, variables)

    if error is None:
        assert body.get("data") is None and body["errors"]
    else:
        payload = body["data"]["createFollowUp"]
        assert payload["followUp"] is None
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [error]
    assert titles(gql, filter={"status": ["OPEN", "DONE", "CANCELLED"]}) == []
    assert gql.data(EVENTS)["events"]["nodes"] == []


def test_every_problem_of_the_input_is_reported_at_once(gql: GraphQLClient) -> None:
    payload = create(gql, "nope", " ", in_(days=1), assigneeId="nope", notes="x" * 10_001)

    assert payload["followUp"] is None
    assert sorted((e["field"], e["code"]) for e in payload["userErrors"]) == [
        (["input", "assigneeId"], "INVALID"),
        (["input", "notes"], "INVALID"),
        (["input", "subjectId"], "INVALID"),
        (["input", "title"], "REQUIRED"),
    ]


def test_a_missing_subject_and_a_non_member_are_reported_together(gql: GraphQLClient) -> None:
    payload = create(
        gql, to_global_id("Client", 999_999), "T", in_(days=1), assigneeId=to_global_id("User", 9)
    )

    assert sorted((e["field"], e["code"]) for e in payload["userErrors"]) == [
        (["input", "assigneeId"], "NOT_FOUND"),
        (["input", "subjectId"], "NOT_FOUND"),
    ]


def test_the_assignee_must_be_a_member_of_this_workspace(
    server: LiveServer, gql: GraphQLClient
) -> None:
    _, workspace, _ = server.run(create_key_for_workspace(server.db, "Other Co", Role.OWNER, "t"))
    outsider = member(server, "out@example.com", int(workspace.id))
    lead_id = new_lead(gql)

    payload = create(gql, lead_id, "T", in_(days=1), assigneeId=outsider)

    assert payload == {
        "followUp": None,
        "userErrors": [
            {
                "field": ["input", "assigneeId"],
                "code": "NOT_FOUND",
                "message": "No member of this workspace with this ID.",
            }
        ],
    }


# ------------------------------------------------------------------ updating


def test_done_sets_completed_at_and_reopening_clears_it(gql: GraphQLClient) -> None:
    follow_up = created(gql, new_lead(gql), "T", in_(days=1))
    before = datetime.now(UTC)

    done = update(gql, follow_up, status="DONE")["followUp"]
    again = update(gql, follow_up, status="DONE")["followUp"]
    reopened = update(gql, follow_up, status="OPEN")["followUp"]
    cancelled = update(gql, follow_up, status="CANCELLED")["followUp"]

    assert done["status"] == "DONE"
    assert datetime.fromisoformat(done["completedAt"]) >= before
    assert again["completedAt"] == done["completedAt"]  # nothing changed
    assert (reopened["status"], reopened["completedAt"]) == ("OPEN", None)
    assert (cancelled["status"], cancelled["completedAt"]) == ("CANCELLED", None)


def test_an_update_changes_given_fields_clears_notes_and_unassigns(
    server: LiveServer, gql: GraphQLClient
) -> None:
    ann, bob = member(server, "ann@example.com"), member(server, "bob@example.com")
    follow_up = created(gql, new_lead(gql), "T", in_(days=1), assigneeId=ann, notes="n")
    due = datetime(2031, 1, 2, 3, 4, tzinfo=UTC)

    changed = update(gql, follow_up, title="New", dueAt=iso(due), assigneeId=bob)["followUp"]
    cleared = update(gql, follow_up, notes=None, assigneeId=None)["followUp"]

    assert changed["title"] == "New"
    assert datetime.fromisoformat(changed["dueAt"]) == due
    assert changed["assignee"]["id"] == bob
    assert changed["notes"] == "n"
    assert (cleared["notes"], cleared["assignee"], cleared["title"]) == (None, None, "New")


def test_an_update_cannot_null_title_due_or_status_and_writes_nothing(
    server: LiveServer, gql: GraphQLClient
) -> None:
    follow_up = created(gql, new_lead(gql), "T", in_(days=1))

    payload = update(gql, follow_up, title=None, dueAt=None, status=None, assigneeId="nope")
    not_member = update(gql, follow_up, title="U", assigneeId=to_global_id("User", 999))

    assert payload["followUp"] is None
    assert [(e["field"], e["code"]) for e in not_member["userErrors"]] == [
        (["input", "assigneeId"], "NOT_FOUND")
    ]
    assert sorted((e["field"], e["code"]) for e in payload["userErrors"]) == [
        (["input", "assigneeId"], "INVALID"),
        (["input", "dueAt"], "INVALID"),
        (["input", "status"], "INVALID"),
        (["input", "title"], "INVALID"),
    ]
    assert gql.data(NODE, {"id": follow_up})["node"]["title"] == "T"


# ------------------------------------------------------------------ roles and workspaces


def test_a_viewer_reads_follow_ups_but_cannot_write_them(gql: GraphQLClient) -> None:
    lead_id = new_lead(gql)
    follow_up = created(key(gql, "MEMBER"), lead_id, "by a member", in_(days=1))
    viewer = key(gql, "VIEWER")

    refused = [
        viewer(CREATE, {"input": {"subjectId": lead_id, "title": "x", "dueAt": in_(days=1)}}),
        viewer(UPDATE, {"id": follow_up, "input": {"title": "x"}}),
    ]

    for body in refused:
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert titles(viewer) == ["by a member"]
    assert subject_titles(viewer, lead_id) == ["by a member"]


def test_another_workspaces_follow_ups_are_unseen_and_not_found(
    server: LiveServer, gql: GraphQLClient
) -> None:
    secret, _, _ = server.run(create_key_for_workspace(server.db, "Other Co", Role.OWNER, "t"))
    theirs = gql.as_(secret)
    their_lead = new_lead(theirs)
    their_follow_up = created(theirs, their_lead, "private", in_(days=1))

    payload = create(gql, their_lead, "sneaky", in_(days=1))
    edit = update(gql, their_follow_up, title="changed")

    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
        (["input", "subjectId"], "NOT_FOUND")
    ]
    assert edit == {
        "followUp": None,
        "userErrors": [
            {"field": ["id"], "code": "NOT_FOUND", "message": "No follow-up with this ID."}
        ],
    }
    assert gql.data(NODE, {"id": their_follow_up}) == {"node": None}
    assert titles(gql) == []
    assert titles(gql, filter={"subjectId": their_lead}) == []
    assert titles(theirs) == ["private"]


# ------------------------------------------------------------------ listing


def test_the_list_is_open_ones_due_first_by_default(gql: GraphQLClient) -> None:
    lead_id = new_lead(gql)
    for title, days in (("later", 5), ("soon", 1), ("past", -1), ("done", 0.5)):
        created(gql, lead_id, title, in_(days=days))
    done = titles(gql, filter={"status": ["OPEN", "DONE"]})
    update(gql, created(gql, lead_id, "closed", in_(days=2)), status="DONE")

    assert titles(gql) == ["past", "done", "soon", "later"]
    assert done == ["past", "done", "soon", "later"]
    assert titles(gql, filter={"status": ["DONE"]}) == ["closed"]
    assert titles(gql, filter={"status": ["OPEN", "DONE"]}) == [
        "past",
        "done",
        "soon",
        "closed",
        "later",
    ]
    assert titles(gql, orderBy={"field": "DUE_AT", "direction": "DESC"}) == [
        "later",
        "soon",
        "done",
        "past",
    ]
    assert titles(gql, orderBy={"field": "CREATED_AT"}) == ["done", "past", "soon", "later"]


def test_keyset_pages_forwards_and_backwards(gql: GraphQLClient) -> None:
    lead_id = new_lead(gql)
    due = in_(days=2)  # the same due time: the id breaks ties
    for n in range(5):
        created(gql, lead_id, f"f{n}", due)

    first = gql.data(LIST, {"first": 2})["followUps"]
    second = gql.data(LIST, {"first": 2, "after": first["pageInfo"]["endCursor"]})["followUps"]
    third = gql.data(LIST, {"first": 2, "after": second["pageInfo"]["endCursor"]})["followUps"]
    back = gql.data(LIST, {"last": 2, "before": third["pageInfo"]["startCursor"]})["followUps"]

    def names(page: dict[str, Any]) -> list[str]:
        return [e["node"]["title"] for e in page["edges"]]

    assert [names(first), names(second), names(third)] == [["f0", "f1"], ["f2", "f3"], ["f4"]]
    assert first["totalCount"] == 5
    assert (first["pageInfo"]["hasNextPage"], third["pageInfo"]["hasNextPage"]) == (True, False)
    assert names(back) == ["f2", "f3"]
    assert back["pageInfo"]["hasPreviousPage"] is True
    refused = gql(
        LIST,
        {"first": 2, "after": first["pageInfo"]["endCursor"], "orderBy": {"field": "CREATED_AT"}},
    )
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_due_windows_in_utc(gql: GraphQLClient) -> None:
    lead_id = new_lead(gql)
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    moments = {
        "yesterday": midnight - timedelta(hours=1),
        "an hour ago": now - timedelta(hours=1),
        "in a minute": now + timedelta(minutes=1),
        "tomorrow": midnight + timedelta(days=1, hours=1),
        "in 6 days": now + timedelta(days=6),
        "in 8 days": now + timedelta(days=8),
    }
    for title, moment in moments.items():
        created(gql, lead_id, title, iso(moment))
    update(gql, created(gql, lead_id, "done overdue", iso(now - timedelta(hours=2))), status="DONE")

    def window(due: str, **flt: Any) -> set[str]:
        return set(titles(gql, filter={"due": due, **flt}))

    assert window("OVERDUE") == {"yesterday", "an hour ago"}
    # OVERDUE is OPEN only, whatever the status filter asks.
    assert window("OVERDUE", status=["OPEN", "DONE"]) == {"yesterday", "an hour ago"}
    # Today's UTC date, midnight to midnight (near midnight, "an hour ago" or "in a minute"
    # may fall on another date: the dates decide).
    assert window("TODAY") == {t for t, m in moments.items() if m.date() == now.date()}
    assert window("NEXT_7_DAYS") == {"in a minute", "tomorrow", "in 6 days"}
    assert window("TODAY", status=["DONE"]) == (
        {"done overdue"} if (now - timedelta(hours=2)).date() == now.date() else set()
    )


def test_filters_by_assignee_mine_and_subject(server: LiveServer, gql: GraphQLClient) -> None:
    ann = member(server, "ann@example.com")
    lead_id, client_id = new_lead(gql), new_client(gql)
    created(gql, lead_id, "ann's", in_(days=1), assigneeId=ann)
    created(gql, lead_id, "nobody's", in_(days=2))
    created(gql, client_id, "client's", in_(days=3))

    assert titles(gql, filter={"assigneeId": ann}) == ["ann's"]
    assert titles(gql, filter={"assigneeId": to_global_id("Lead", 1)}) == []
    assert titles(gql, filter={"subjectId": lead_id}) == ["ann's", "nobody's"]
    assert titles(gql, filter={"subjectId": client_id}) == ["client's"]
    assert titles(gql, filter={"subjectId": client_id, "assigneeId": ann}) == []
    # An API key is assigned nothing: "mine" matches none of them.
    assert titles(gql, filter={"mine": True}) == []
    assert titles(gql, filter={"mine": False}) == ["ann's", "nobody's", "client's"]
    malformed = gql(LIST, {"filter": {"assigneeId": "nope"}})
    assert malformed["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_mine_is_the_signed_in_members(gql: GraphQLClient, mailbox: Mailbox) -> None:
    sam = signed_in_member(gql, mailbox, "sam@example.com")
    me = sam.data("{ me { user { id } } }")["me"]["user"]["id"]
    lead_id = new_lead(gql)
    created(gql, lead_id, "mine", in_(days=1), assigneeId=me)
    created(gql, lead_id, "not mine", in_(days=1))

    assert titles(sam, filter={"mine": True}) == ["mine"]
    assert created(sam, lead_id, "by sam", in_(days=2))  # a signed-in MEMBER writes


def test_a_leads_and_a_clients_follow_ups_page_with_filters(gql: GraphQLClient) -> None:
    lead_id, other = new_lead(gql, "a@example.com"), new_lead(gql, "b@example.com")
    for n in range(3):
        created(gql, lead_id, f"l{n}", in_(days=n + 1))
    created(gql, other, "other", in_(days=1))
    update(gql, created(gql, lead_id, "closed", in_(days=1)), status="DONE")

    page = gql.data(SUBJECT_LIST, {"id": lead_id, "first": 2})["node"]["followUps"]
    rest = gql.data(
        SUBJECT_LIST, {"id": lead_id, "first": 2, "after": page["pageInfo"]["endCursor"]}
    )

    assert [n["title"] for n in page["nodes"]] == ["l0", "l1"]
    assert page["totalCount"] == 3
    assert [n["title"] for n in rest["node"]["followUps"]["nodes"]] == ["l2"]
    assert subject_titles(gql, lead_id, filter={"status": ["DONE"]}) == ["closed"]
    assert subject_titles(gql, lead_id, filter={"due": "NEXT_7_DAYS", "subjectId": other}) == []


def test_leads_filter_by_a_follow_up_due_in_a_window(gql: GraphQLClient) -> None:
    overdue, soon, later, done = (new_lead(gql, f"{n}@example.com") for n in ("a", "b", "c", "d"))
    created(gql, overdue, "x", in_(days=-2))
    created(gql, soon, "x", in_(days=3))
    created(gql, later, "x", in_(days=30))
    update(gql, created(gql, done, "x", in_(days=-1)), status="DONE")
    new_lead(gql, "e@example.com")

    def emails(due: str) -> list[str]:
        found = gql.data(LEADS_DUE, {"due": due})["leads"]
        assert found["totalCount"] == len(found["nodes"])
        return [n["email"] for n in found["nodes"]]

    assert emails("OVERDUE") == ["a@example.com"]
    assert emails("NEXT_7_DAYS") == ["b@example.com"]
    assert len(gql.data(LEADS_DUE, {"due": None})["leads"]["nodes"]) == 5


# ------------------------------------------------------------------ events and members


def test_creating_and_updating_append_events(server: LiveServer, gql: GraphQLClient) -> None:
    ann = member(server, "ann@example.com")
    lead_id = new_lead(gql)
    due = datetime(2030, 1, 1, tzinfo=UTC)
    follow_up = created(gql, lead_id, "T", iso(due), assigneeId=ann)
    update(gql, follow_up, title="T")  # nothing changed: no event
    update(gql, follow_up, title="U", status="DONE")
    completed = gql.data(NODE, {"id": follow_up})["node"]["completedAt"]

    events = gql.data(EVENTS)["events"]["nodes"]

    record = {"__typename": "FollowUp", "id": follow_up}
    assert events == [
        {
            "type": "FOLLOW_UP_CREATED",
            "recordId": follow_up,
            "record": record,
            "changes": [
                {"field": "subjectId", "from": None, "to": lead_id},
                {"field": "title", "from": None, "to": "T"},
                {"field": "dueAt", "from": None, "to": "2030-01-01T00:00:00.000000+00:00"},
                {"field": "status", "from": None, "to": "OPEN"},
                {"field": "assigneeId", "from": None, "to": ann},
            ],
        },
        {
            "type": "FOLLOW_UP_UPDATED",
            "recordId": follow_up,
            "record": record,
            "changes": [
                {"field": "title", "from": "T", "to": "U"},
                {"field": "status", "from": "OPEN", "to": "DONE"},
                {
                    "field": "completedAt",
                    "from": None,
                    "to": datetime.fromisoformat(completed).isoformat(timespec="microseconds"),
                },
            ],
        },
    ]


def test_a_refused_write_appends_no_event(gql: GraphQLClient) -> None:
    follow_up = created(gql, new_lead(gql), "T", in_(days=1))

    update(gql, follow_up, title=" ")

    assert [e["type"] for e in gql.data(EVENTS)["events"]["nodes"]] == ["FOLLOW_UP_CREATED"]


def test_removing_a_member_unassigns_their_open_follow_ups_with_events(
    server: LiveServer, gql: GraphQLClient
) -> None:
    ann, bob = member(server, "ann@example.com"), member(server, "bob@example.com")
    lead_id = new_lead(gql)
    open_ = created(gql, lead_id, "open", in_(days=1), assigneeId=ann)
    done = created(gql, lead_id, "done", in_(days=1), assigneeId=ann)
    update(gql, done, status="DONE")
    his = created(gql, lead_id, "his", in_(days=1), assigneeId=bob)

    removed = gql.data(REMOVE_MEMBER, {"userId": ann})["removeMember"]

    assert removed == {"removedUserId": ann, "userErrors": []}
    assert gql.data(NODE, {"id": open_})["node"]["assignee"] is None
    assert gql.data(NODE, {"id": done})["node"]["assignee"]["id"] == ann  # history kept
    assert gql.data(NODE, {"id": his})["node"]["assignee"]["id"] == bob
    last = gql.data(EVENTS)["events"]["nodes"][-1]
    assert (last["type"], last["recordId"], last["changes"]) == (
        "FOLLOW_UP_UPDATED",
        open_,
        [{"field": "assigneeId", "from": ann, "to": None}],
    )
    refused = update(gql, his, assigneeId=ann)
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [
        (["input", "assigneeId"], "NOT_FOUND")
    ]


def test_deleting_a_lead_deletes_its_follow_ups(gql: GraphQLClient) -> None:
    lead_id = new_lead(gql)
    follow_up = created(gql, lead_id, "T", in_(days=1))

    deleted = gql.data(
        "mutation ($id: ID!) { deleteLead(id: $id) { deletedLeadId } }", {"id": lead_id}
    )

    assert deleted["deleteLead"]["deletedLeadId"] == lead_id
    assert gql.data(NODE, {"id": follow_up}) == {"node": None}
    assert titles(gql) == []


def test_merged_leads_follow_ups_move_to_the_survivor_with_events(gql: GraphQLClient) -> None:
    survivor, merged = new_lead(gql, "keep@example.com"), new_lead(gql, "dup@example.com")
    moved = created(gql, merged, "on the duplicate", in_(days=2))
    created(gql, survivor, "on the survivor", in_(days=1))

    payload = gql.data(
        "mutation ($s: ID!, $m: [ID!]!) { mergeLeads(input: {survivorId: $s, mergedIds: $m}) "
        "{ userErrors { code } } }",
        {"s": survivor, "m": [merged]},
    )["mergeLeads"]

    assert payload["userErrors"] == []
    assert subject_titles(gql, survivor) == ["on the survivor", "on the duplicate"]
    assert gql.data(NODE, {"id": moved})["node"]["subject"]["id"] == survivor
    last = gql.data(EVENTS)["events"]["nodes"][-1]
    assert (last["type"], last["recordId"], last["changes"]) == (
        "FOLLOW_UP_UPDATED",
        moved,
        [{"field": "subjectId", "from": merged, "to": survivor}],
    )


# ------------------------------------------------------------------ statements per request

LEADS_WITH_NEXT = """
query ($first: Int) {
  leads(first: $first) {
    nodes { id followUps(first: 1) { totalCount nodes { title assignee { email } } } }
  }
}
"""
FOLLOW_UPS_WITH_SUBJECTS = """
{ followUps(first: 100) { nodes { title assignee { email } subject { id } } } }
"""


def test_next_follow_ups_of_a_lead_page_and_a_follow_up_page_cost_fixed_statements(
    server: LiveServer, gql: GraphQLClient, count_queries: Any
) -> None:
    owners = [member(server, f"m{n}@example.com") for n in range(3)]
    lead_ids = create_leads(server, *(lead_values() for _ in range(100)))
    client_ids = [new_client(gql, f"c{n}@example.com") for n in range(3)]
    # The newest 40 leads (the first page's) have 0, 1 or 2 follow-ups each.
    for n, lead_id in enumerate(lead_ids[-40:]):
        for k in range(n % 3):
            created(gql, lead_id, f"{n}.{k}", in_(days=k + 1), assigneeId=owners[(n + k) % 3])
    for n, client_id in enumerate(client_ids):
        created(gql, client_id, f"c{n}", in_(days=1), assigneeId=owners[n])

    with count_queries() as small:
        page10 = gql.data(LEADS_WITH_NEXT, {"first": 10})
    with count_queries() as large:
        page100 = gql.data(LEADS_WITH_NEXT, {"first": 100})
    with count_queries() as listed:
        found = gql.data(FOLLOW_UPS_WITH_SUBJECTS)["followUps"]["nodes"]

    assert len(page10["leads"]["nodes"]) == 10
    nodes = page100["leads"]["nodes"]
    assert sum(n["followUps"]["totalCount"] for n in nodes) == sum(n % 3 for n in range(40))
    assert all(len(n["followUps"]["nodes"]) == min(1, n["followUps"]["totalCount"]) for n in nodes)
    assert len(found) == 3 + sum(n % 3 for n in range(40))
    assert all(f["assignee"] for f in found)
    # The credential lookup, the page of leads, one batch of follow-up pages, one of counts,
    # one of assignees (users).
    assert (small.count, large.count) == (5, 5)
    # The credential lookup, the page, one batch of users, one of leads, one of clients.
    assert listed.count == 5


# ------------------------------------------------------------------ index-backed

FOLLOW_UPS = FollowUpRepository(None, DEFAULT_WORKSPACE_ID)  # type: ignore[arg-type]
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def plan_of(server: LiveServer) -> Any:
    """SQLite's plan of a statement, its parameters given (as tests/test_query_plans.py
    reads them)."""

    def explain(stmt: Any, **params: Any) -> list[str]:
        bound = stmt.params(**params) if params else stmt
        sql = str(
            bound.compile(
                dialect=sqlite.dialect(),
                compile_kwargs={"literal_binds": True, "render_postcompile": True},
            )
        )

        async def run() -> list[str]:
            async with server.db.read() as conn:
                rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)
                return [r[3] for r in rows]

        return server.run(run())

    return explain


def _list_page(spec: FollowUpFilterSpec, column: str, descending: bool, keyset: bool) -> Any:
    shape, params = FOLLOW_UPS.filter_shape(spec)
    page = _page(FOLLOW_UPS.table, FOLLOW_UPS.bound, shape, None, column, descending, keyset)
    params |= {SCOPE_PARAM: DEFAULT_WORKSPACE_ID, PAGE_LIMIT: 21}
    if keyset:
        params |= {KEYSET_VALUE: WHEN, KEYSET_ID: 5}
    return page.stmt, params


@pytest.mark.sqlite  # PostgreSQL plans with its own statistics
def test_pages_and_the_due_filter_are_read_from_their_indexes(plan_of: Any) -> None:
    """Due first or newest first with no sort step; a lead's page and the leads filter's
    EXISTS walk the lead's index; the reminder claim its own."""
    open_ = FollowUpFilterSpec(statuses=(FollowUpStatus.OPEN,))
    stmt, params = _list_page(open_, "due_at", False, True)
    assert plan_of(stmt, **params) == [
        "SEARCH follow_ups USING INDEX ix_follow_ups_status_due "
        "(workspace_id=? AND status=? AND due_at>?)"
    ]
    stmt, params = _list_page(open_, "created_at", True, False)
    assert plan_of(stmt, **params) == [
        "SEARCH follow_ups USING INDEX ix_follow_ups_status_created (workspace_id=? AND status=?)"
    ]

    c = FOLLOW_UPS.c
    window = [c.status.in_(["OPEN"]), c.due_at >= WHEN, c.due_at < WHEN + timedelta(days=7)]
    assert plan_of(FOLLOW_UPS._page_of("lead_id", 3, window, None, 21)) == [
        "SEARCH follow_ups USING INDEX ix_follow_ups_lead "
        "(workspace_id=? AND lead_id=? AND status=? AND due_at>? AND due_at<?)"
    ]

    leads: Any = Lead.__table__  # type: ignore[attr-defined]
    due = follow_up_due_bound("lead_id").condition(leads.c, None)
    stmt = select(leads.c.id).where(leads.c.workspace_id == DEFAULT_WORKSPACE_ID, due)
    plan = plan_of(
        stmt,
        filter_follow_up_due_gte=WHEN,
        filter_follow_up_due_lt=WHEN + timedelta(days=1),
    )
    assert (
        "SEARCH follow_ups USING INDEX ix_follow_ups_lead "
        "(workspace_id=? AND lead_id=? AND status=? AND due_at>? AND due_at<?)"
    ) in plan
