"""Workspaces are sealed from each other: a record of another workspace is never listed, never
resolved by ID (lead, client, node, nodes, _entities give null), and every mutation answers
NOT_FOUND for it exactly as for an ID that does not exist, changing nothing on either side.

Two workspaces, each seeded through the API by its own OWNER key: A is the suite's default
workspace (company "Acme"), B is "Other Co" (company "Globex"). Every test runs in both
directions: "mine" is the caller's workspace, "theirs" the other one.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import update

from db.models import DEFAULT_WORKSPACE_ID, Role
from db.repositories import LeadRepository
from db.repositories.auth import MembershipRepository, UserRepository
from db.types import utcnow
from resolvers.auth import create_key_for_workspace
from resolvers.ids import parse_global_id, to_global_id
from tests.conftest import GraphQLClient, LiveServer, Mailbox

SHARED_EMAIL = "shared@example.com"  # a lead and a client with this email in both workspaces

WHO = "{ __typename ... on User { email } ... on ApiKey { id name } }"
USER_ERRORS = "userErrors { field code message }"

CREATE_LEAD = f"""
mutation ($input: CreateLeadInput!) {{
  createLead(input: $input) {{ lead {{ id createdBy {WHO} }} {USER_ERRORS} }}
}}
"""
CREATE_CLIENT = f"""
mutation ($input: CreateClientInput!) {{
  createClient(input: $input) {{ client {{ id createdBy {WHO} }} {USER_ERRORS} }}
}}
"""
UPDATE_LEAD = f"""
mutation ($id: ID!, $input: UpdateLeadInput!) {{
  updateLead(id: $id, input: $input) {{ lead {{ id }} {USER_ERRORS} }}
}}
"""
DELETE_LEAD = f"mutation ($id: ID!) {{ deleteLead(id: $id) {{ deletedLeadId {USER_ERRORS} }} }}"
CONVERT_LEAD = f"""
mutation ($id: ID!, $input: ConvertLeadInput) {{
  convertLead(id: $id, input: $input) {{
    lead {{ id }} client {{ id email createdBy {WHO} }} {USER_ERRORS}
  }}
}}
"""
UPDATE_CLIENT = f"""
mutation ($id: ID!, $input: UpdateClientInput!) {{
  updateClient(id: $id, input: $input) {{ client {{ id }} {USER_ERRORS} }}
}}
"""
ARCHIVE_CLIENT = (
    f"mutation ($id: ID!) {{ archiveClient(id: $id) {{ client {{ id }} {USER_ERRORS} }} }}"
)
RESTORE_CLIENT = (
    f"mutation ($id: ID!) {{ restoreClient(id: $id) {{ client {{ id }} {USER_ERRORS} }} }}"
)
REVOKE_API_KEY = (
    f"mutation ($id: ID!) {{ revokeApiKey(id: $id) {{ apiKey {{ id }} {USER_ERRORS} }} }}"
)
UPDATE_MEMBER_ROLE = f"""
mutation ($userId: ID!, $role: Role!) {{
  updateMemberRole(userId: $userId, role: $role) {{ member {{ role }} {USER_ERRORS} }}
}}
"""
REMOVE_MEMBER = f"""
mutation ($userId: ID!) {{ removeMember(userId: $userId) {{ removedUserId {USER_ERRORS} }} }}
"""
INVITE_MEMBER = f"""
mutation ($input: InviteMemberInput!) {{ inviteMember(input: $input) {{ {USER_ERRORS} }} }}
"""
ACCEPT_INVITATION = f"""
mutation ($input: AcceptInvitationInput!) {{
  acceptInvitation(input: $input) {{ token {USER_ERRORS} }}
}}
"""

SEED = f"""
mutation ($company: String!, $open: String!, $won: String!, $active: String!, $archived: String!) {{
  open: createLead(input: {{email: $open, firstName: "Olive", company: $company}}) {{
    lead {{ id createdBy {WHO} }} {USER_ERRORS}
  }}
  shared: createLead(input: {{email: "{SHARED_EMAIL}"}}) {{ lead {{ id }} {USER_ERRORS} }}
  won: createLead(input: {{email: $won, firstName: "Wyn", lastName: $company}}) {{
    lead {{ id }} {USER_ERRORS}
  }}
  active: createClient(
    input: {{email: $active, firstName: "Client", lastName: $company, company: $company}}
  ) {{ client {{ id }} {USER_ERRORS} }}
  sharedClient: createClient(
    input: {{email: "{SHARED_EMAIL}", firstName: "Client", lastName: $company}}
  ) {{ client {{ id }} {USER_ERRORS} }}
  archived: createClient(input: {{email: $archived, firstName: "Client", lastName: $company}}) {{
    client {{ id }} {USER_ERRORS}
  }}
}}
"""
SEED_CHANGES = f"""
mutation ($won: ID!, $archived: ID!) {{
  convertLead(id: $won) {{ client {{ id }} {USER_ERRORS} }}
  archiveClient(id: $archived) {{ client {{ id }} {USER_ERRORS} }}
}}
"""

# Everything a workspace's OWNER can see of it; lastUsedAt is left out (use is not a change).
STATE = """
{
  me { role workspace { id name } }
  leads(first: 100, orderBy: {field: EMAIL, direction: ASC}) {
    totalCount
    nodes {
      id email firstName company status notes convertedAt updatedAt convertedClient { id }
    }
  }
  clients(
    first: 100, filter: {status: [ACTIVE, ARCHIVED]}, orderBy: {field: EMAIL, direction: ASC}
  ) {
    totalCount nodes { id email company status archivedAt updatedAt convertedFrom { id } }
  }
  apiKeys { id name role revokedAt }
  members { role user { id email } }
}
"""
LOOKUP = """
query ($lead: ID!, $client: ID!, $reps: [_Any!]!) {
  lead(id: $lead) { id email }
  client(id: $client) { id email }
  leadNode: node(id: $lead) { id }
  clientNode: node(id: $client) { id }
  nodes(ids: [$lead, $client]) { id }
  _entities(representations: $reps) { ... on Lead { id } ... on Client { id } }
}
"""
ACTORS = f"""
{{
  leads(first: 100) {{ nodes {{ createdBy {WHO} updatedBy {WHO} }} }}
  clients(first: 100, filter: {{status: [ACTIVE, ARCHIVED]}}) {{ nodes {{ createdBy {WHO} }} }}
}}
"""
CREATED_BY = f"query ($id: ID!) {{ lead(id: $id) {{ createdBy {WHO} }} }}"
MEMBER_IDS = "{ members { role user { id } } }"
LINKS = """
query ($lead: ID!, $client: ID!) {
  lead(id: $lead) { convertedClient { id } }
  client(id: $client) { convertedFrom { id } }
}
"""


def missing_id(type_name: str) -> str:
    """A well-formed global ID of this type that names no record."""
    return base64.b64encode(f"{type_name}:999999".encode()).decode()


def pk(global_id: str) -> int:
    parsed = parse_global_id(global_id)
    assert parsed is not None
    return parsed[1]


@dataclass
class Side:
    """One workspace as its OWNER key sees it, with the records seeded in it."""

    label: str
    workspace_id: int
    company: str
    gql: GraphQLClient
    key: dict[str, str] = field(default_factory=dict)  # its OWNER key, as an Actor
    leads: dict[str, str] = field(default_factory=dict)
    clients: dict[str, str] = field(default_factory=dict)
    member: str = ""  # a MEMBER's user ID

    def data(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.gql.data(document, variables)

    def state(self) -> dict[str, Any]:
        return self.data(STATE)

    def create_lead(self, **values: Any) -> str:
        payload = self.data(CREATE_LEAD, {"input": values})["createLead"]
        assert payload["userErrors"] == []
        lead_id: str = payload["lead"]["id"]
        return lead_id

    def create_client(self, **values: Any) -> str:
        input_ = {"firstName": "Client", "lastName": self.company, **values}
        payload = self.data(CREATE_CLIENT, {"input": input_})["createClient"]
        assert payload["userErrors"] == []
        client_id: str = payload["client"]["id"]
        return client_id

    def seed(self, server: LiveServer) -> None:
        """Three leads and four clients, two requests: one lead converted, one client archived."""
        domain = f"{self.company.lower()}.com"
        created = self.data(
            SEED,
            {"company": self.company}
            | {k: f"{k}@{domain}" for k in ("open", "won", "active", "archived")},
        )
        assert all(payload["userErrors"] == [] for payload in created.values()), created
        self.key = created["open"]["lead"]["createdBy"]
        self.leads = {k: created[k]["lead"]["id"] for k in ("open", "shared", "won")}
        self.clients = {k: created[k]["client"]["id"] for k in ("active", "archived")}
        self.clients["shared"] = created["sharedClient"]["client"]["id"]
        changed = self.data(
            SEED_CHANGES, {"won": self.leads["won"], "archived": self.clients["archived"]}
        )
        assert all(payload["userErrors"] == [] for payload in changed.values()), changed
        self.clients["won"] = changed["convertLead"]["client"]["id"]
        self.member = add_member(server, self.workspace_id, f"member@{domain}", "MEMBER")


def add_member(server: LiveServer, workspace_id: int, email: str, role: str) -> str:
    """A person with an account and a membership, written straight to the database (an
    invitation's code and password hashing are the business of other tests): the user ID."""

    async def insert() -> int:
        now = utcnow()
        async with server.db.write() as session:
            users = UserRepository(session)
            user = await users.by_email(email) or await users.insert(
                email=email, name="Member", created_at=now, email_verified_at=now
            )
            await MembershipRepository(session, workspace_id).insert(user.id, role, now)
        return int(user.id)

    return to_global_id("User", server.run(insert()))


@pytest.fixture
def sides(server: LiveServer, gql: GraphQLClient) -> dict[str, Side]:
    secret, workspace, created = server.run(
        create_key_for_workspace(server.db, "Other Co", Role.OWNER, "tests")
    )
    assert created
    a = Side("A", DEFAULT_WORKSPACE_ID, "Acme", gql)
    b = Side("B", workspace.id, "Globex", gql.as_(secret))
    for side in (a, b):
        side.seed(server)
    return {"A": a, "B": b}


@pytest.fixture(params=["A", "B"], ids=["from-A", "from-B"])
def pair(request: pytest.FixtureRequest, sides: dict[str, Side]) -> tuple[Side, Side]:
    """(mine, theirs): the caller's workspace and the other one."""
    mine = sides[request.param]
    theirs = sides["B" if request.param == "A" else "A"]
    return mine, theirs


# ---------------------------------------------------------------- reading


def test_lists_and_counts_show_only_the_callers_records(pair: tuple[Side, Side]) -> None:
    mine, _ = pair

    state = mine.state()

    assert state["me"] == {
        "role": "OWNER",
        "workspace": {
            "id": to_global_id("Workspace", mine.workspace_id),
            "name": "Default" if mine.label == "A" else "Other Co",
        },
    }
    assert state["leads"]["totalCount"] == 3
    assert {n["id"] for n in state["leads"]["nodes"]} == set(mine.leads.values())
    assert state["clients"]["totalCount"] == 4
    assert {n["id"] for n in state["clients"]["nodes"]} == set(mine.clients.values())
    assert state["apiKeys"] == [
        {"id": mine.key["id"], "name": "tests", "role": "OWNER", "revokedAt": None}
    ]
    assert state["members"] == [
        {
            "role": "MEMBER",
            "user": {"id": mine.member, "email": f"member@{mine.company.lower()}.com"},
        }
    ]
    # The default client list (ACTIVE only) too.
    active = mine.data("{ clients { totalCount nodes { id } } }")["clients"]
    assert active == {
        "totalCount": 3,
        "nodes": [{"id": mine.clients[k]} for k in ("won", "shared", "active")],
    }


@pytest.mark.parametrize(
    ("lead", "client"), [("open", "active"), ("won", "won"), ("shared", "archived")]
)
def test_the_other_workspaces_ids_resolve_to_nothing(
    pair: tuple[Side, Side], lead: str, client: str
) -> None:
    mine, theirs = pair

    def lookup(side: Side, lead_id: str, client_id: str) -> dict[str, Any]:
        reps = [{"__typename": "Lead", "id": lead_id}, {"__typename": "Client", "id": client_id}]
        return side.gql(LOOKUP, {"lead": lead_id, "client": client_id, "reps": reps})

    theirs_ids = (theirs.leads[lead], theirs.clients[client])

    # Given IDs that resolve in their own workspace
    own = lookup(theirs, *theirs_ids)["data"]
    assert own["nodes"] == [{"id": theirs_ids[0]}, {"id": theirs_ids[1]}]

    # when another workspace asks for them, then it gets what it gets for IDs that do not exist.
    nothing = {
        "data": {
            "lead": None,
            "client": None,
            "leadNode": None,
            "clientNode": None,
            "nodes": [None, None],
            "_entities": [None, None],
        }
    }
    assert lookup(mine, *theirs_ids) == nothing
    assert lookup(mine, missing_id("Lead"), missing_id("Client")) == nothing


def test_nodes_mixes_own_records_with_null_for_the_others(pair: tuple[Side, Side]) -> None:
    mine, theirs = pair
    ids = [mine.leads["open"], theirs.leads["open"], mine.clients["won"], theirs.clients["won"]]

    nodes = mine.data("query ($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids})

    assert nodes == {"nodes": [{"id": ids[0]}, None, {"id": ids[2]}, None]}


FILTERS = {
    "leads-by-email": (
        "query ($v: String!) { leads(filter: {email: $v}) { totalCount nodes { id } } }",
        lambda side: SHARED_EMAIL,
        lambda side: [side.leads["shared"]],
    ),
    "clients-by-email": (
        "query ($v: String!) { clients(filter: {email: $v}) { totalCount nodes { id } } }",
        lambda side: SHARED_EMAIL,
        lambda side: [side.clients["shared"]],
    ),
    "leads-by-search": (
        "query ($v: String!) { leads(filter: {search: $v}) { totalCount nodes { id } } }",
        lambda side: side.company.lower(),
        lambda side: [side.leads["won"], side.leads["open"]],
    ),
    "clients-by-search": (
        "query ($v: String!) { clients(filter: {search: $v, status: [ACTIVE, ARCHIVED]}) "
        "{ totalCount nodes { id } } }",
        lambda side: side.company.lower(),
        lambda side: [side.clients[k] for k in ("won", "archived", "shared", "active")],
    ),
    "converted-leads": (
        "query ($v: Boolean!) { leads(filter: {converted: $v}) { totalCount nodes { id } } }",
        lambda side: True,
        lambda side: [side.leads["won"]],
    ),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_filters_never_reach_into_the_other_workspace(pair: tuple[Side, Side], name: str) -> None:
    mine, theirs = pair
    document, value, expected = FILTERS[name]

    # Filtering by my own value finds only my records, even where theirs match it too
    own = mine.data(document, {"v": value(mine)})
    [answer] = own.values()
    assert answer == {
        "totalCount": len(expected(mine)),
        "nodes": [{"id": i} for i in expected(mine)],
    }

    # and by a value only theirs have (their company) finds nothing at all.
    if value(theirs) != value(mine):
        [answer] = mine.data(document, {"v": value(theirs)}).values()
        assert answer == {"totalCount": 0, "nodes": []}


def test_conversion_links_stay_inside_the_workspace(pair: tuple[Side, Side]) -> None:
    mine, theirs = pair

    own = mine.data(LINKS, {"lead": mine.leads["won"], "client": mine.clients["won"]})
    across = mine.data(LINKS, {"lead": theirs.leads["won"], "client": theirs.clients["won"]})

    assert own == {
        "lead": {"convertedClient": {"id": mine.clients["won"]}},
        "client": {"convertedFrom": {"id": mine.leads["won"]}},
    }
    assert across == {"lead": None, "client": None}


def test_a_link_pointing_across_workspaces_still_resolves_to_nothing(
    server: LiveServer, pair: tuple[Side, Side]
) -> None:
    """The API never writes such a link; if a row held one anyway, neither end would show it."""
    mine, theirs = pair

    # Given their open lead marked as converted into my active client, behind the API's back
    async def link_across() -> None:
        async with server.db.write() as session:
            leads = LeadRepository(session, theirs.workspace_id)
            await session.execute(
                update(leads.table)
                .where(leads.table.c.id == pk(theirs.leads["open"]))
                .values(converted_client_id=pk(mine.clients["active"]), converted_at=utcnow())
            )

    server.run(link_across())

    # then their lead shows no converted client, and my client no lead it came from.
    assert theirs.data(LINKS, {"lead": theirs.leads["open"], "client": theirs.clients["won"]})[
        "lead"
    ] == {"convertedClient": None}
    assert mine.data(LINKS, {"lead": mine.leads["open"], "client": mine.clients["active"]})[
        "client"
    ] == {"convertedFrom": None}


# ---------------------------------------------------------------- writing


@dataclass(frozen=True)
class ById:
    """A mutation aimed at a record of the other workspace: its document, the target's type,
    the target, and the variables for a target ID."""

    document: str
    type_name: str
    target: Callable[[Side], str]
    variables: Callable[[Side, str], dict[str, Any]]
    field_path: list[str] = field(default_factory=lambda: ["id"])


MUTATIONS_BY_ID = {
    "updateLead": ById(
        UPDATE_LEAD,
        "Lead",
        lambda theirs: theirs.leads["open"],
        lambda mine, id_: {"id": id_, "input": {"status": "LOST", "notes": "mine now"}},
    ),
    "deleteLead": ById(
        DELETE_LEAD, "Lead", lambda theirs: theirs.leads["open"], lambda mine, id_: {"id": id_}
    ),
    "convertLead": ById(
        CONVERT_LEAD, "Lead", lambda theirs: theirs.leads["open"], lambda mine, id_: {"id": id_}
    ),
    "convertLead-into-their-client": ById(
        CONVERT_LEAD,
        "Client",
        lambda theirs: theirs.clients["active"],
        lambda mine, id_: {"id": mine.leads["open"], "input": {"clientId": id_}},
        ["input", "clientId"],
    ),
    "updateClient": ById(
        UPDATE_CLIENT,
        "Client",
        lambda theirs: theirs.clients["active"],
        lambda mine, id_: {"id": id_, "input": {"company": "Mine now"}},
    ),
    "archiveClient": ById(
        ARCHIVE_CLIENT,
        "Client",
        lambda theirs: theirs.clients["active"],
        lambda mine, id_: {"id": id_},
    ),
    "restoreClient": ById(
        RESTORE_CLIENT,
        "Client",
        lambda theirs: theirs.clients["archived"],
        lambda mine, id_: {"id": id_},
    ),
    "revokeApiKey": ById(
        REVOKE_API_KEY, "ApiKey", lambda theirs: theirs.key["id"], lambda mine, id_: {"id": id_}
    ),
    "updateMemberRole": ById(
        UPDATE_MEMBER_ROLE,
        "User",
        lambda theirs: theirs.member,
        lambda mine, id_: {"userId": id_, "role": "VIEWER"},
        ["userId"],
    ),
    "removeMember": ById(
        REMOVE_MEMBER,
        "User",
        lambda theirs: theirs.member,
        lambda mine, id_: {"userId": id_},
        ["userId"],
    ),
}


@pytest.mark.parametrize("name", list(MUTATIONS_BY_ID))
def test_mutations_answer_not_found_for_the_other_workspaces_records(
    pair: tuple[Side, Side], name: str
) -> None:
    mine, theirs = pair
    mutation = MUTATIONS_BY_ID[name]
    before = {"mine": mine.state(), "theirs": theirs.state()}

    across = mine.gql(mutation.document, mutation.variables(mine, mutation.target(theirs)))
    missing = mine.gql(mutation.document, mutation.variables(mine, missing_id(mutation.type_name)))

    # The answer is the one for an ID that does not exist, word for word
    assert across == missing
    [payload] = missing["data"].values()
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("NOT_FOUND", mutation.field_path)
    assert all(value is None for key, value in payload.items() if key != "userErrors")
    # and nothing changed, on either side.
    assert {"mine": mine.state(), "theirs": theirs.state()} == before


def test_a_person_in_both_workspaces_has_a_separate_membership_in_each(
    sides: dict[str, Side], mailbox: Mailbox
) -> None:
    a, b = sides["A"], sides["B"]
    person, email = a.member, "member@acme.com"

    # Given A's MEMBER, invited by B (membership of A does not make them "already a member")
    invited = b.data(INVITE_MEMBER, {"input": {"email": email, "role": "ADMIN"}})
    assert invited == {"inviteMember": {"userErrors": []}}
    code = mailbox.code_for(email)
    accepted = b.gql.as_(None).data(ACCEPT_INVITATION, {"input": {"email": email, "code": code}})
    assert accepted["acceptInvitation"]["userErrors"] == []

    # when A makes them a VIEWER and then removes them
    changed = a.data(UPDATE_MEMBER_ROLE, {"userId": person, "role": "VIEWER"})
    assert changed == {"updateMemberRole": {"member": {"role": "VIEWER"}, "userErrors": []}}
    removed = a.data(REMOVE_MEMBER, {"userId": person})
    assert removed == {"removeMember": {"removedUserId": person, "userErrors": []}}

    # then B still has them, as the ADMIN it made them, and A has no members left.
    assert {"role": "ADMIN", "user": {"id": person}} in b.data(MEMBER_IDS)["members"]
    assert a.data(MEMBER_IDS) == {"members": []}


def test_client_emails_are_unique_per_workspace(sides: dict[str, Side]) -> None:
    a, b = sides["A"], sides["B"]
    input_ = {"email": "Dup@Example.com", "firstName": "D", "lastName": "Up"}
    taken = [
        {
            "field": ["input", "email"],
            "code": "TAKEN",
            "message": "A client with this email already exists.",
        }
    ]

    # A client email used in A is free in B, once.
    assert a.data(CREATE_CLIENT, {"input": input_})["createClient"]["userErrors"] == []
    assert b.data(CREATE_CLIENT, {"input": input_})["createClient"]["userErrors"] == []
    assert b.data(CREATE_CLIENT, {"input": input_})["createClient"]["userErrors"] == taken
    assert a.data(CREATE_CLIENT, {"input": input_})["createClient"]["userErrors"] == taken

    # A lead converts into a new client when only the other workspace has one with its email
    lead = b.create_lead(email="converts@example.com", firstName="C", lastName="V")
    a.create_client(email="converts@example.com")
    converted = b.data(CONVERT_LEAD, {"id": lead})["convertLead"]
    assert converted["userErrors"] == []
    assert converted["client"]["email"] == "converts@example.com"
    # and updateClient may take an email that only the other workspace uses.
    updated = b.data(
        UPDATE_CLIENT, {"id": b.clients["active"], "input": {"email": "active@acme.com"}}
    )
    assert updated["updateClient"]["userErrors"] == []


def test_created_by_shows_the_actor_of_the_records_own_workspace(
    sides: dict[str, Side], mailbox: Mailbox
) -> None:
    a, b = sides["A"], sides["B"]

    # Everything seeded was made by each workspace's own OWNER key.
    for side in (a, b):
        data = side.data(ACTORS)
        actors = [n["createdBy"] for n in data["leads"]["nodes"] + data["clients"]["nodes"]]
        actors += [n["updatedBy"] for n in data["leads"]["nodes"]]
        assert actors == [side.key] * len(actors)
    assert a.key["id"] != b.key["id"]

    # A member of B, signed in, is the creator of what they create in B.
    email = "newcomer@globex.com"
    assert b.data(INVITE_MEMBER, {"input": {"email": email, "role": "MEMBER"}}) == {
        "inviteMember": {"userErrors": []}
    }
    accepted = b.gql.as_(None).data(
        ACCEPT_INVITATION,
        {
            "input": {
                "email": email,
                "code": mailbox.code_for(email),
                "name": "New Comer",
                "password": "a long enough password",
            }
        },
    )["acceptInvitation"]
    assert accepted["userErrors"] == []
    session = b.gql.as_(accepted["token"])
    created = session.data(CREATE_LEAD, {"input": {"email": "by-a-member@globex.com"}})

    lead = created["createLead"]["lead"]
    assert lead["createdBy"] == {"__typename": "User", "email": email}
    assert b.data(CREATED_BY, {"id": lead["id"]}) == {
        "lead": {"createdBy": {"__typename": "User", "email": email}}
    }
    assert a.data("query ($id: ID!) { lead(id: $id) { id } }", {"id": lead["id"]}) == {"lead": None}
