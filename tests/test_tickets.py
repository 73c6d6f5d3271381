"""Tickets on clients (issue 12): numbers per workspace without gaps or repeats, assignees who
are members, status and response times, comment threads, search, sorts and filters, events,
roles and workspace isolation. Every call goes over HTTP to the suite's server."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import update as sql_update

from db.models import DEFAULT_WORKSPACE_ID, Role
from db.models import TicketComment as TicketCommentModel
from db.repositories.auth import MembershipRepository, SessionRepository, UserRepository
from db.types import utcnow
from resolvers.auth import create_key_for_workspace
from resolvers.ids import to_global_id
from resolvers.security import SESSION_PREFIX, new_token, token_hash
from tests.conftest import GraphQLClient, LiveServer

TicketCommentTable: Any = TicketCommentModel.__table__  # type: ignore[attr-defined]

USER_ERRORS = "userErrors { field code message }"
WHO = "{ __typename ... on User { email } ... on ApiKey { name } }"
TICKET = (
    "id number subject description status priority createdAt updatedAt firstResponseAt "
    "resolvedAt client { id email } assignee { id email }"
)
CREATE = f"""
mutation ($input: CreateTicketInput!) {{
  createTicket(input: $input) {{ ticket {{ {TICKET} createdBy {WHO} }} {USER_ERRORS} }}
}}
"""
UPDATE = f"""
mutation ($id: ID!, $input: UpdateTicketInput!) {{
  updateTicket(id: $id, input: $input) {{ ticket {{ {TICKET} }} {USER_ERRORS} }}
}}
"""
COMMENT = f"""
mutation ($input: AddTicketCommentInput!) {{
  addTicketComment(input: $input) {{
    comment {{ id body internal createdAt author {WHO} }}
    ticket {{ id updatedAt firstResponseAt }}
    {USER_ERRORS}
  }}
}}
"""
EDIT_COMMENT = f"""
mutation ($id: ID!, $input: UpdateTicketCommentInput!) {{
  updateTicketComment(id: $id, input: $input) {{
    comment {{ id body internal author {WHO} }}
    ticket {{ id updatedAt }}
    {USER_ERRORS}
  }}
}}
"""
TICKETS = """
query ($first: Int, $after: String, $last: Int, $before: String, $filter: TicketFilter,
       $orderBy: TicketOrder) {
  tickets(first: $first, after: $after, last: $last, before: $before, filter: $filter,
          orderBy: $orderBy) {
    totalCount
    nodes { number }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""
COMMENTS = """
query ($id: ID!, $first: Int, $after: String) {
  node(id: $id) { ... on Ticket {
    comments(first: $first, after: $after) {
      totalCount nodes { body internal } pageInfo { hasNextPage endCursor }
    }
  } }
}
"""
CLIENT_TICKETS = """
query ($id: ID!, $filter: TicketFilter, $first: Int, $after: String) {
  client(id: $id) {
    tickets(filter: $filter, first: $first, after: $after) {
      totalCount nodes { number } pageInfo { hasNextPage endCursor }
    }
  }
}
"""
CLIENTS = """
query ($filter: ClientFilter) { clients(filter: $filter) { nodes { email } } }
"""
EVENTS = """
query ($id: ID!) {
  events(filter: {recordId: $id}) { nodes { type recordId changes { field from to } } }
}
"""
CREATE_CLIENT = """
mutation ($input: CreateClientInput!) { createClient(input: $input) { client { id } } }
"""
ARCHIVE_CLIENT = "mutation ($id: ID!) { archiveClient(id: $id) { client { id } } }"
REMOVE_MEMBER = f"""
mutation ($userId: ID!) {{ removeMember(userId: $userId) {{ removedUserId {USER_ERRORS} }} }}
"""
CREATE_KEY = """
mutation ($role: Role!) { createApiKey(input: {name: "tickets", role: $role}) { secret } }
"""


# ------------------------------------------------------------------ helpers


def client(gql: GraphQLClient, email: str = "acme@example.com") -> str:
    values = {"email": email, "firstName": "Ada", "lastName": "Acme"}
    client_id: str = gql.data(CREATE_CLIENT, {"input": values})["createClient"]["client"]["id"]
    return client_id


def ticket(gql: GraphQLClient, client_id: str, **values: Any) -> dict[str, Any]:
    payload = gql.data(CREATE, {"input": {"clientId": client_id, "subject": "Help", **values}})
    assert payload["createTicket"]["userErrors"] == [], payload
    found: dict[str, Any] = payload["createTicket"]["ticket"]
    return found


def update(gql: GraphQLClient, ticket_id: str, **values: Any) -> dict[str, Any]:
    payload: dict[str, Any] = gql.data(UPDATE, {"id": ticket_id, "input": values})["updateTicket"]
    return payload


def comment(gql: GraphQLClient, ticket_id: str, body: str, **values: Any) -> dict[str, Any]:
    payload: dict[str, Any] = gql.data(
        COMMENT, {"input": {"ticketId": ticket_id, "body": body, **values}}
    )["addTicketComment"]
    return payload


def member(
    server: LiveServer, gql: GraphQLClient, email: str, role: str = "MEMBER"
) -> tuple[str, GraphQLClient]:
    """A member of the default workspace signed in with a session: (user ID, their client)."""
    token = new_token(SESSION_PREFIX)

    async def insert() -> int:
        now = utcnow()
        async with server.db.write() as conn:
            user = await UserRepository(conn).insert(
                email=email, name=email.split("@")[0], created_at=now, email_verified_at=now
            )
            await MembershipRepository(conn, DEFAULT_WORKSPACE_ID).insert(user.id, role, now)
            await SessionRepository(conn).insert(
                user_id=user.id,
                workspace_id=DEFAULT_WORKSPACE_ID,
                token_hash=token_hash(token),
                created_at=now,
                last_used_at=now,
                expires_at=now + timedelta(days=1),
            )
        return int(user.id)

    user_id = server.run(insert())
    return to_global_id("User", user_id), gql.as_(token)


def leave(server: LiveServer, user_id: str) -> None:
    """The member's membership deleted (their account stays)."""
    pk = int(base64.b64decode(user_id).decode().split(":")[1])

    async def delete() -> None:
        async with server.db.write() as conn:
            await MembershipRepository(conn, DEFAULT_WORKSPACE_ID).delete(pk)

    server.run(delete())


def numbers(gql: GraphQLClient, **variables: Any) -> list[int]:
    return [n["number"] for n in gql.data(TICKETS, variables)["tickets"]["nodes"]]


def error(field: list[str], code: str, message: str) -> dict[str, Any]:
    return {"field": field, "code": code, "message": message}


def missing(type_name: str) -> str:
    return base64.b64encode(f"{type_name}:999999".encode()).decode()


# ------------------------------------------------------------------ editing a comment


def bodies(gql: GraphQLClient, ticket_id: str) -> list[str]:
    nodes = gql.data(COMMENTS, {"id": ticket_id})["node"]["comments"]["nodes"]
    return [n["body"] for n in nodes]


def edit(gql: GraphQLClient, comment_id: str, body: str) -> dict[str, Any]:
    payload: dict[str, Any] = gql.data(EDIT_COMMENT, {"id": comment_id, "input": {"body": body}})
    return payload["updateTicketComment"]


def test_the_author_edits_their_comment_and_the_ticket_logs_it(gql: GraphQLClient) -> None:
    tid = ticket(gql, client(gql))["id"]
    written = comment(gql, tid, "Helo", internal=True)
    cid = written["comment"]["id"]

    payload = edit(gql, cid, "  Hello  ")

    assert payload["userErrors"] == []
    assert payload["comment"]["id"] == cid
    assert payload["comment"]["body"] == "Hello"
    assert payload["comment"]["internal"] is True  # as written
    assert payload["ticket"]["updatedAt"] > written["ticket"]["updatedAt"]
    assert bodies(gql, tid) == ["Hello"]
    changes = [
        (e["type"], c["field"], c["from"], c["to"])
        for e in gql.data(EVENTS, {"id": tid})["events"]["nodes"]
        for c in e["changes"]
        if c["field"] == "comment"
    ]
    assert ("TICKET_UPDATED", "comment", cid, cid) in changes


def test_another_member_cannot_edit_a_comment_and_an_admin_can(
    server: LiveServer, gql: GraphQLClient
) -> None:
    tid = ticket(gql, client(gql))["id"]
    _, author = member(server, gql, "author@example.com")
    _, other = member(server, gql, "other@example.com")
    _, admin = member(server, gql, "admin@example.com", "ADMIN")
    cid = comment(author, tid, "first")["comment"]["id"]

    refused = edit(other, cid, "not mine")
    assert refused["comment"] is None
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(["id"], "FORBIDDEN")]
    assert bodies(gql, tid) == ["first"]

    assert edit(admin, cid, "redacted")["userErrors"] == []
    assert bodies(gql, tid) == ["redacted"]


def test_the_author_cannot_edit_a_comment_after_15_minutes(
    server: LiveServer, gql: GraphQLClient
) -> None:
    tid = ticket(gql, client(gql))["id"]
    _, author = member(server, gql, "late@example.com")
    cid = comment(author, tid, "old")["comment"]["id"]
    pk = int(base64.b64decode(cid).decode().split(":")[1])

    async def age() -> None:  # written 16 minutes ago
        async with server.db.write() as conn:
            await conn.execute(
                sql_update(TicketCommentTable)
                .where(TicketCommentTable.c.id == pk)
                .values(created_at=utcnow() - timedelta(minutes=16))
            )

    server.run(age())
    payload = edit(author, cid, "new")

    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["id"], "FORBIDDEN")]
    assert bodies(gql, tid) == ["old"]


def test_a_comment_edit_needs_a_body_and_a_comment(gql: GraphQLClient) -> None:
    tid = ticket(gql, client(gql))["id"]
    cid = comment(gql, tid, "kept")["comment"]["id"]

    blank = edit(gql, cid, "   ")
    not_found = edit(gql, missing("TicketComment"), "x")
    wrong_type = edit(gql, tid, "x")
    invalid = edit(gql, "not-an-id", "x")

    assert [(e["field"], e["code"]) for e in blank["userErrors"]] == [
        (["input", "body"], "REQUIRED")
    ]
    assert [(e["field"], e["code"]) for e in not_found["userErrors"]] == [(["id"], "NOT_FOUND")]
    assert [(e["field"], e["code"]) for e in wrong_type["userErrors"]] == [(["id"], "NOT_FOUND")]
    assert [(e["field"], e["code"]) for e in invalid["userErrors"]] == [(["id"], "INVALID")]
    assert bodies(gql, tid) == ["kept"]


# ------------------------------------------------------------------ create


def test_a_ticket_is_created_open_with_the_next_number(gql: GraphQLClient) -> None:
    client_id = client(gql)

    first = ticket(gql, client_id, subject="  Printer on fire ", description=" Smoke. ")
    second = ticket(gql, client_id, priority="URGENT")

    assert first == {
        "id": first["id"],
        "number": 1,
        "subject": "Printer on fire",
        "description": "Smoke.",
        "status": "OPEN",
        "priority": "NORMAL",
        "createdAt": first["createdAt"],
        "updatedAt": first["createdAt"],
        "firstResponseAt": None,
        "resolvedAt": None,
        "client": {"id": client_id, "email": "acme@example.com"},
        "assignee": None,
        "createdBy": {"__typename": "ApiKey", "name": "tests"},
    }
    assert (second["number"], second["priority"]) == (2, "URGENT")


def test_create_reports_every_bad_field_and_writes_nothing(gql: GraphQLClient) -> None:
    client_id = client(gql)

    blank = gql.data(CREATE, {"input": {"clientId": client_id, "subject": "   "}})
    long = gql.data(
        CREATE,
        {
            "input": {
                "clientId": "not an id",
                "subject": "x" * 201,
                "description": "y" * 10_001,
                "assigneeId": missing("User"),
            }
        },
    )
    no_client = gql.data(CREATE, {"input": {"clientId": missing("Client"), "subject": "Hi"}})
    lead_id = gql.data('mutation { createLead(input: {email: "l@example.com"}) { lead { id } } }')
    not_a_client = gql.data(
        CREATE, {"input": {"clientId": lead_id["createLead"]["lead"]["id"], "subject": "Hi"}}
    )

    assert blank["createTicket"] == {
        "ticket": None,
        "userErrors": [
            error(["input", "subject"], "REQUIRED", "This field is required and cannot be blank.")
        ],
    }
    assert [(e["field"], e["code"]) for e in long["createTicket"]["userErrors"]] == [
        (["input", "clientId"], "INVALID"),
        (["input", "subject"], "INVALID"),
        (["input", "description"], "INVALID"),
    ]
    for payload in (no_client, not_a_client):
        assert payload["createTicket"]["userErrors"] == [
            error(["input", "clientId"], "NOT_FOUND", "No client with this ID.")
        ]
    assert gql.data(TICKETS)["tickets"]["totalCount"] == 0
    # Refused creations took no number.
    assert ticket(gql, client_id)["number"] == 1


def test_the_assignee_must_be_a_member(server: LiveServer, gql: GraphQLClient) -> None:
    client_id = client(gql)
    user_id, _ = member(server, gql, "mia@example.com")
    other, _ = member(server, gql, "olga@example.com")
    leave(server, other)

    assigned = ticket(gql, client_id, assigneeId=user_id)
    refused = gql.data(
        CREATE, {"input": {"clientId": client_id, "subject": "Hi", "assigneeId": other}}
    )
    unknown = update(gql, assigned["id"], assigneeId=missing("User"))
    unassigned = update(gql, assigned["id"], assigneeId=None)

    assert assigned["assignee"] == {"id": user_id, "email": "mia@example.com"}
    no_member = error(
        ["input", "assigneeId"], "NOT_FOUND", "No member of this workspace with this ID."
    )
    assert refused["createTicket"] == {"ticket": None, "userErrors": [no_member]}
    assert unknown["userErrors"] == [no_member]
    assert unknown["ticket"] is None
    assert unassigned["userErrors"] == []
    assert unassigned["ticket"]["assignee"] is None


def test_an_archived_client_takes_no_new_ticket(gql: GraphQLClient) -> None:
    client_id = client(gql)
    old = ticket(gql, client_id)
    gql.data(ARCHIVE_CLIENT, {"id": client_id})

    refused = gql.data(CREATE, {"input": {"clientId": client_id, "subject": "Again"}})
    changed = update(gql, old["id"], status="CLOSED")

    assert refused["createTicket"] == {
        "ticket": None,
        "userErrors": [
            error(
                ["input", "clientId"],
                "ALREADY_ARCHIVED",
                "This client is archived; restore it before opening a ticket.",
            )
        ],
    }
    # Its tickets stay and can still be worked on.
    assert changed["ticket"]["status"] == "CLOSED"


def _create_many(gql: GraphQLClient, client_id: str, n: int) -> list[dict[str, Any]]:
    def one(i: int) -> dict[str, Any]:
        body = gql(CREATE, {"input": {"clientId": client_id, "subject": f"Concurrent {i}"}})
        assert "errors" not in body, body
        payload: dict[str, Any] = body["data"]["createTicket"]
        return payload

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def test_concurrent_creations_take_numbers_1_to_n(gql: GraphQLClient) -> None:
    client_id = client(gql)

    payloads = _create_many(gql, client_id, 20)

    assert all(p["userErrors"] == [] for p in payloads)
    assert sorted(p["ticket"]["number"] for p in payloads) == list(range(1, 21))
    assert sorted(numbers(gql, first=100)) == list(range(1, 21))


def test_numbers_are_per_workspace(server: LiveServer, gql: GraphQLClient) -> None:
    secret, _, _ = server.run(create_key_for_workspace(server.db, "Other Co", Role.OWNER, "t"))
    theirs = gql.as_(secret)
    ticket(gql, client(gql))
    ticket(gql, client(gql, "second@example.com"))

    assert ticket(theirs, client(theirs))["number"] == 1


# ------------------------------------------------------------------ update


def test_resolved_at_follows_the_status(gql: GraphQLClient) -> None:
    created = ticket(gql, client(gql))
    tid = created["id"]

    pending = update(gql, tid, status="PENDING")["ticket"]
    resolved = update(gql, tid, status="RESOLVED")["ticket"]
    closed = update(gql, tid, status="CLOSED")["ticket"]
    reopened = update(gql, tid, status="OPEN")["ticket"]
    closed_unresolved = update(gql, tid, status="CLOSED")["ticket"]

    assert pending["resolvedAt"] is None
    assert resolved["resolvedAt"] is not None
    assert resolved["resolvedAt"] >= pending["updatedAt"]
    assert closed["resolvedAt"] == resolved["resolvedAt"]  # CLOSED keeps it
    assert reopened["resolvedAt"] is None
    assert closed_unresolved["resolvedAt"] is None
    assert created["updatedAt"] < pending["updatedAt"] < resolved["updatedAt"]


def test_update_writes_the_fields_given_and_rejects_bad_ones(gql: GraphQLClient) -> None:
    created = ticket(gql, client(gql), description="Old")

    changed = update(gql, created["id"], subject=" New ", description=None, priority="HIGH")
    same = update(gql, created["id"], subject="New")
    bad = update(gql, created["id"], subject=None, status=None, priority=None)
    blank = update(gql, created["id"], subject="  ")
    gone = update(gql, missing("Ticket"), subject="X")

    assert changed["userErrors"] == []
    t = changed["ticket"]
    assert (t["subject"], t["description"], t["priority"]) == ("New", None, "HIGH")
    assert same["ticket"]["updatedAt"] == t["updatedAt"]  # nothing changed
    assert [(e["field"], e["code"]) for e in bad["userErrors"]] == [
        (["input", "subject"], "REQUIRED"),
        (["input", "priority"], "REQUIRED"),
        (["input", "status"], "REQUIRED"),
    ]
    assert [(e["field"], e["code"]) for e in blank["userErrors"]] == [
        (["input", "subject"], "REQUIRED")
    ]
    assert gone == {
        "ticket": None,
        "userErrors": [error(["id"], "NOT_FOUND", "No ticket with this ID.")],
    }


# ------------------------------------------------------------------ comments


def test_comments_are_oldest_first_and_paged(gql: GraphQLClient) -> None:
    tid = ticket(gql, client(gql))["id"]
    for i in range(5):
        assert comment(gql, tid, f"c{i}", internal=i == 2)["userErrors"] == []

    first = gql.data(COMMENTS, {"id": tid, "first": 2})["node"]["comments"]
    rest = gql.data(COMMENTS, {"id": tid, "first": 10, "after": first["pageInfo"]["endCursor"]})

    assert first["totalCount"] == 5
    assert first["nodes"] == [
        {"body": "c0", "internal": False},
        {"body": "c1", "internal": False},
    ]
    assert first["pageInfo"]["hasNextPage"] is True
    following = rest["node"]["comments"]
    assert [n["body"] for n in following["nodes"]] == ["c2", "c3", "c4"]
    assert following["nodes"][0]["internal"] is True
    assert following["pageInfo"]["hasNextPage"] is False


def test_first_response_is_the_first_public_comment_of_a_member(
    server: LiveServer, gql: GraphQLClient
) -> None:
    _, mia = member(server, gql, "mia@example.com")
    created = ticket(gql, client(gql))
    tid = created["id"]

    by_key = comment(gql, tid, "Automated: we got your message")
    internal = comment(mia, tid, "Looks like the toner", internal=True)
    reply = comment(mia, tid, "We are on it")
    later = comment(mia, tid, "Fixed")

    assert by_key["comment"]["author"] == {"__typename": "ApiKey", "name": "tests"}
    assert by_key["ticket"]["firstResponseAt"] is None  # an API key is not a member
    assert internal["ticket"]["firstResponseAt"] is None
    assert internal["comment"]["internal"] is True
    assert reply["comment"]["author"] == {"__typename": "User", "email": "mia@example.com"}
    assert reply["ticket"]["firstResponseAt"] == reply["comment"]["createdAt"]
    assert later["ticket"]["firstResponseAt"] == reply["comment"]["createdAt"]
    # updatedAt moves on every comment.
    stamps = [created["updatedAt"]] + [
        p["ticket"]["updatedAt"] for p in (by_key, internal, reply, later)
    ]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5


def test_a_comment_needs_a_body_and_a_ticket(gql: GraphQLClient) -> None:
    tid = ticket(gql, client(gql))["id"]

    blank = comment(gql, tid, " \n ")
    gone = comment(gql, missing("Ticket"), "Hi")
    long = comment(gql, tid, "x" * 10_001)

    assert blank == {
        "comment": None,
        "ticket": None,
        "userErrors": [
            error(["input", "body"], "REQUIRED", "This field is required and cannot be blank.")
        ],
    }
    assert gone["userErrors"] == [
        error(["input", "ticketId"], "NOT_FOUND", "No ticket with this ID.")
    ]
    assert [e["code"] for e in long["userErrors"]] == ["INVALID"]
    assert gql.data(COMMENTS, {"id": tid})["node"]["comments"]["totalCount"] == 0


# ------------------------------------------------------------------ events


def test_every_change_appends_its_event(server: LiveServer, gql: GraphQLClient) -> None:
    user_id, _ = member(server, gql, "mia@example.com")
    client_id = client(gql)
    created = ticket(gql, client_id, subject="Help", priority="HIGH")
    tid = created["id"]
    update(gql, tid, status="RESOLVED", assigneeId=user_id)
    update(gql, tid, subject="Help")  # no change, no event
    commented = comment(gql, tid, "Done", internal=True)

    events = gql.data(EVENTS, {"id": tid})["events"]["nodes"]

    assert [e["type"] for e in events] == ["TICKET_CREATED", "TICKET_UPDATED", "TICKET_COMMENTED"]
    assert all(e["recordId"] == tid for e in events)
    assert events[0]["changes"] == [
        {"field": "number", "from": None, "to": 1},
        {"field": "subject", "from": None, "to": "Help"},
        {"field": "status", "from": None, "to": "OPEN"},
        {"field": "priority", "from": None, "to": "HIGH"},
        {"field": "client", "from": None, "to": client_id},
    ]
    resolved_at = events[1]["changes"][1]["to"]
    assert events[1]["changes"] == [
        {"field": "status", "from": "OPEN", "to": "RESOLVED"},
        {"field": "resolvedAt", "from": None, "to": resolved_at},
        {"field": "assignee", "from": None, "to": user_id},
    ]
    assert events[2]["changes"] == [
        {"field": "comment", "from": None, "to": commented["comment"]["id"]}
    ]


def test_removing_a_member_unassigns_their_open_tickets(
    server: LiveServer, gql: GraphQLClient
) -> None:
    user_id, _ = member(server, gql, "mia@example.com")
    client_id = client(gql)
    open_ = ticket(gql, client_id, assigneeId=user_id)
    pending = ticket(gql, client_id, assigneeId=user_id)
    update(gql, pending["id"], status="PENDING")
    resolved = ticket(gql, client_id, assigneeId=user_id)
    update(gql, resolved["id"], status="RESOLVED")

    removed = gql.data(REMOVE_MEMBER, {"userId": user_id})["removeMember"]

    assert removed == {"removedUserId": user_id, "userErrors": []}
    found = gql.data(
        "{ tickets(orderBy: {field: NUMBER, direction: ASC}) { nodes { assignee { id } } } }"
    )
    assert [n["assignee"] for n in found["tickets"]["nodes"]] == [None, None, {"id": user_id}]
    last = gql.data(EVENTS, {"id": open_["id"]})["events"]["nodes"][-1]
    assert last == {
        "type": "TICKET_UPDATED",
        "recordId": open_["id"],
        "changes": [{"field": "assignee", "from": user_id, "to": None}],
    }


# ------------------------------------------------------------------ lists


def test_search_matches_subject_and_description_without_case(gql: GraphQLClient) -> None:
    client_id = client(gql)
    ticket(gql, client_id, subject="Printer jammed")
    ticket(gql, client_id, subject="Login", description="The PRINTER page is blank")
    ticket(gql, client_id, subject="Invoice wrong")

    assert numbers(gql, filter={"search": "printer"}) == [2, 1]
    assert numbers(gql, filter={"search": "ER PA"}) == [2]
    assert numbers(gql, filter={"search": "in"}) == [3, 2, 1]  # under a trigram: LIKE alone
    assert gql.data(TICKETS, {"filter": {"search": "voice"}})["tickets"]["totalCount"] == 1


def test_filters_by_status_priority_assignee_and_client(
    server: LiveServer, gql: GraphQLClient
) -> None:
    user_id, _ = member(server, gql, "mia@example.com")
    a, b = client(gql), client(gql, "b@example.com")
    ticket(gql, a, priority="LOW")
    t2 = ticket(gql, a, priority="URGENT", assigneeId=user_id)
    ticket(gql, b, priority="URGENT")
    update(gql, t2["id"], status="PENDING")

    assert numbers(gql, filter={"status": ["PENDING"]}) == [2]
    # A list filter (IN) with a cursor: the page after it starts past it (db/reads.py).
    page = gql.data(TICKETS, {"filter": {"status": ["OPEN"]}, "first": 1})["tickets"]
    after = page["pageInfo"]["endCursor"]
    assert [n["number"] for n in page["nodes"]] == [3]
    assert numbers(gql, filter={"status": ["OPEN"]}, after=after) == [1]
    assert numbers(gql, filter={"status": ["OPEN"], "priority": ["URGENT"]}) == [3]
    assert numbers(gql, filter={"assigneeId": user_id}) == [2]
    assert numbers(gql, filter={"clientId": a}) == [2, 1]
    assert numbers(gql, filter={"clientId": missing("Client")}) == []
    assert numbers(gql, filter={"assigneeId": a}) == []  # not a user's ID: nothing
    bad = gql(TICKETS, {"filter": {"assigneeId": "nope"}})
    assert bad["errors"][0]["message"] == "Argument 'filter.assigneeId' is not a valid ID."


def test_sorts_page_both_ways(gql: GraphQLClient) -> None:
    client_id = client(gql)
    for priority in ("HIGH", "LOW", "URGENT", "NORMAL", "HIGH", "LOW"):
        ticket(gql, client_id, priority=priority)
    by_priority = {"field": "PRIORITY", "direction": "ASC"}

    assert numbers(gql) == [6, 5, 4, 3, 2, 1]  # CREATED_AT DESC by default
    assert numbers(gql, orderBy={"field": "NUMBER", "direction": "ASC"}) == [1, 2, 3, 4, 5, 6]
    assert numbers(gql, orderBy=by_priority, first=10) == [2, 6, 4, 1, 5, 3]
    assert numbers(gql, orderBy={"field": "PRIORITY"}) == [3, 5, 1, 4, 6, 2]

    page1 = gql.data(TICKETS, {"orderBy": by_priority, "first": 4})["tickets"]
    page2 = gql.data(
        TICKETS, {"orderBy": by_priority, "first": 4, "after": page1["pageInfo"]["endCursor"]}
    )["tickets"]
    back = gql.data(
        TICKETS, {"orderBy": by_priority, "last": 4, "before": page2["pageInfo"]["startCursor"]}
    )["tickets"]
    tail = gql.data(TICKETS, {"orderBy": by_priority, "last": 2})["tickets"]

    assert [n["number"] for n in page1["nodes"]] == [2, 6, 4, 1]
    assert [n["number"] for n in page2["nodes"]] == [5, 3]
    assert page2["pageInfo"]["hasNextPage"] is False
    assert [n["number"] for n in back["nodes"]] == [2, 6, 4, 1]
    assert [n["number"] for n in tail["nodes"]] == [5, 3]
    assert tail["pageInfo"]["hasPreviousPage"] is True
    stale = gql(TICKETS, {"first": 2, "after": page1["pageInfo"]["endCursor"]})
    assert "different orderBy" in stale["errors"][0]["message"]


def test_updated_at_sort_follows_changes(gql: GraphQLClient) -> None:
    client_id = client(gql)
    first = ticket(gql, client_id)
    ticket(gql, client_id)
    comment(gql, first["id"], "bump")

    assert numbers(gql, orderBy={"field": "UPDATED_AT"}) == [1, 2]


def test_a_client_lists_its_tickets_and_filters_by_open_ones(gql: GraphQLClient) -> None:
    a, b, c = client(gql), client(gql, "b@example.com"), client(gql, "c@example.com")
    for _ in range(3):
        ticket(gql, a)
    done = ticket(gql, b)
    update(gql, done["id"], status="RESOLVED")
    ticket(gql, a, priority="URGENT")

    page = gql.data(CLIENT_TICKETS, {"id": a, "first": 2})["client"]["tickets"]
    rest = gql.data(CLIENT_TICKETS, {"id": a, "after": page["pageInfo"]["endCursor"]})
    urgent = gql.data(CLIENT_TICKETS, {"id": a, "filter": {"priority": ["URGENT"]}})
    none = gql.data(CLIENT_TICKETS, {"id": c})

    assert page["totalCount"] == 4
    assert [n["number"] for n in page["nodes"]] == [5, 3]
    assert [n["number"] for n in rest["client"]["tickets"]["nodes"]] == [2, 1]
    assert urgent["client"]["tickets"] == {
        "totalCount": 1,
        "nodes": [{"number": 5}],
        "pageInfo": urgent["client"]["tickets"]["pageInfo"],
    }
    assert none["client"]["tickets"]["nodes"] == []

    def emails(has: bool) -> list[str]:
        found = gql.data(CLIENTS, {"filter": {"hasOpenTicket": has}})["clients"]["nodes"]
        return sorted(n["email"] for n in found)

    assert emails(True) == ["acme@example.com"]
    assert emails(False) == ["b@example.com", "c@example.com"]
    update(gql, done["id"], status="PENDING")
    assert emails(True) == ["acme@example.com", "b@example.com"]


def test_a_ticket_is_a_node(gql: GraphQLClient) -> None:
    created = ticket(gql, client(gql))
    commented = comment(gql, created["id"], "Hello")["comment"]["id"]

    found = gql.data(
        "query ($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }",
        {"ids": [created["id"], commented]},
    )

    assert found["nodes"] == [
        {"__typename": "Ticket", "id": created["id"]},
        {"__typename": "TicketComment", "id": commented},
    ]


# ------------------------------------------------------------------ no N+1

PAGE_WITH_RELATIONS = """
query ($first: Int!) {
  tickets(first: $first) {
    nodes {
      number client { email } assignee { email }
      comments(first: 2) { totalCount nodes { body author { __typename } } }
    }
  }
}
"""
CLIENTS_WITH_TICKETS = """
query ($first: Int!) {
  clients(first: $first) {
    nodes { email tickets(first: 2) { totalCount nodes { number } } }
  }
}
"""


def test_a_page_of_tickets_with_relations_costs_a_fixed_number_of_statements(
    server: LiveServer, gql: GraphQLClient, count_queries: Any
) -> None:
    user_id, mia = member(server, gql, "mia@example.com")
    clients = [client(gql, f"c{i}@example.com") for i in range(6)]
    for i in range(30):
        tid = ticket(gql, clients[i % 6], assigneeId=user_id if i % 2 else None)["id"]
        comment(mia, tid, f"reply {i}")

    with count_queries() as small:
        few = gql.data(PAGE_WITH_RELATIONS, {"first": 3})
    with count_queries() as large:
        many = gql.data(PAGE_WITH_RELATIONS, {"first": 30})
    with count_queries() as clients_small:
        gql.data(CLIENTS_WITH_TICKETS, {"first": 2})
    with count_queries() as clients_large:
        listed = gql.data(CLIENTS_WITH_TICKETS, {"first": 6})

    assert len(few["tickets"]["nodes"]) == 3
    assert all(n["client"]["email"] for n in many["tickets"]["nodes"])
    assert all(n["comments"]["totalCount"] == 1 for n in many["tickets"]["nodes"])
    # The credential, the page, clients, users (assignees and authors), comments, their counts.
    assert small.count == large.count == 6
    assert all(len(n["tickets"]["nodes"]) == 2 for n in listed["clients"]["nodes"])
    assert all(n["tickets"]["totalCount"] == 5 for n in listed["clients"]["nodes"])
    # The credential, the page of clients, one statement for every client's tickets, and one
    # for their counts.
    assert clients_small.count == clients_large.count == 4


# ------------------------------------------------------------------ roles and isolation


def test_a_viewer_reads_tickets_but_cannot_write(server: LiveServer, gql: GraphQLClient) -> None:
    client_id = client(gql)
    tid = ticket(gql, client_id)["id"]
    secret = gql.data(CREATE_KEY, {"role": "VIEWER"})["createApiKey"]["secret"]
    viewer = gql.as_(secret)

    assert viewer.data(TICKETS)["tickets"]["totalCount"] == 1
    assert viewer.data(COMMENTS, {"id": tid})["node"]["comments"]["totalCount"] == 0
    refused = [
        viewer(CREATE, {"input": {"clientId": client_id, "subject": "Hi"}}),
        viewer(UPDATE, {"id": tid, "input": {"status": "CLOSED"}}),
        viewer(COMMENT, {"input": {"ticketId": tid, "body": "Hi"}}),
    ]

    for body in refused:
        assert body["data"] is None
        assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    found = gql.data(COMMENTS, {"id": tid})["node"]
    assert found["comments"]["totalCount"] == 0
    assert numbers(gql) == [1]
    assert gql.data(TICKETS, {"filter": {"status": ["OPEN"]}})["tickets"]["totalCount"] == 1


def test_a_member_key_writes_tickets(gql: GraphQLClient) -> None:
    client_id = client(gql)
    secret = gql.data(CREATE_KEY, {"role": "MEMBER"})["createApiKey"]["secret"]
    writer = gql.as_(secret)

    created = ticket(writer, client_id)
    assert update(writer, created["id"], status="PENDING")["userErrors"] == []
    assert comment(writer, created["id"], "Hi")["userErrors"] == []


def test_another_workspaces_tickets_and_clients_are_not_found(
    server: LiveServer, gql: GraphQLClient
) -> None:
    secret, _, _ = server.run(create_key_for_workspace(server.db, "Other Co", Role.OWNER, "t"))
    theirs = gql.as_(secret)
    their_client = client(theirs, "globex@example.com")
    their_ticket = ticket(theirs, their_client)["id"]
    user_id, _ = member(server, gql, "mia@example.com")  # a member of the default workspace only
    ticket(gql, client(gql))

    assert numbers(theirs) == [1]
    assert numbers(gql) == [1]
    assert gql.data("query ($id: ID!) { node(id: $id) { id } }", {"id": their_ticket}) == {
        "node": None
    }
    by_client = gql.data(CREATE, {"input": {"clientId": their_client, "subject": "Hi"}})
    assert by_client["createTicket"]["userErrors"][0]["code"] == "NOT_FOUND"
    assert update(gql, their_ticket, status="CLOSED")["userErrors"][0]["code"] == "NOT_FOUND"
    assert comment(gql, their_ticket, "Hi")["userErrors"][0]["code"] == "NOT_FOUND"
    assigned = update(theirs, their_ticket, assigneeId=user_id)
    assert assigned["userErrors"][0] == error(
        ["input", "assigneeId"], "NOT_FOUND", "No member of this workspace with this ID."
    )
    assert numbers(gql, filter={"clientId": their_client}) == []
    assert theirs.data(TICKETS, {"filter": {"status": ["OPEN"]}})["tickets"]["totalCount"] == 1
