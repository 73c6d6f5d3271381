"""Access rules: every role against every protected query and mutation, for API keys and for
members signed in with a session; UNAUTHENTICATED without (valid) credentials; and the
role-escalation refusals that depend on the input.

Roles are ranked OWNER > ADMIN > MEMBER > VIEWER, each with the rights of those below. A field
needs a minimum role (the table ``OPERATIONS``): a caller who has it gets the field's effect, a
caller below it gets a top-level FORBIDDEN error, no data for the field, and no change at all.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from db.models import DEFAULT_WORKSPACE_ID, ImportJob
from db.repositories.auth import MembershipRepository, UserRepository, WorkspaceRepository
from db.types import utcnow
from resolvers.ids import to_global_id
from tests.conftest import OWNER_KEY, GraphQLClient, LiveServer, Mailbox, without_cost

ROLES = ["OWNER", "ADMIN", "MEMBER", "VIEWER"]  # highest first; each includes those below

# The rule under test: the least role each protected field needs.
MINIMUM_ROLE = {
    "leads": "VIEWER",
    "lead": "VIEWER",
    "clients": "VIEWER",
    "client": "VIEWER",
    "node": "VIEWER",
    "nodes": "VIEWER",
    "_entities": "VIEWER",
    "events": "VIEWER",
    "members": "VIEWER",
    "me": "VIEWER",
    "createLead": "MEMBER",
    "updateLead": "MEMBER",
    "upsertLead": "MEMBER",
    "convertLead": "MEMBER",
    "createClient": "MEMBER",
    "updateClient": "MEMBER",
    "deleteLead": "ADMIN",
    "archiveClient": "ADMIN",
    "restoreClient": "ADMIN",
    "createApiKey": "ADMIN",
    "revokeApiKey": "ADMIN",
    "apiKeys": "ADMIN",
    "inviteMember": "ADMIN",
    "updateMemberRole": "ADMIN",
    "removeMember": "ADMIN",
    "updateWorkspace": "OWNER",
    "retentionPreview": "ADMIN",
    "updateRetentionPolicy": "OWNER",
    "eraseContact": "OWNER",
    "webhookEndpoints": "ADMIN",
    "leadForms": "ADMIN",
    "createLeadForm": "ADMIN",
    "deleteLeadForm": "ADMIN",
    "webhookEndpoint": "ADMIN",
    "createWebhookEndpoint": "ADMIN",
    "updateWebhookEndpoint": "ADMIN",
    "deleteWebhookEndpoint": "ADMIN",
    "rotateWebhookSecret": "ADMIN",
    "retryWebhookDelivery": "ADMIN",
    "replayWebhookEvents": "ADMIN",
    "possibleDuplicateLeads": "VIEWER",
    "mergeLeads": "ADMIN",
    "importJob": "VIEWER",
    "importJobs": "VIEWER",
    "cancelImportJob": "MEMBER",
    "tags": "VIEWER",
    "createTag": "MEMBER",
    "updateTag": "MEMBER",
    "deleteTag": "ADMIN",
    "addActivity": "MEMBER",
    "updateActivity": "MEMBER",  # its author within 15 minutes, an ADMIN at any time
    "tickets": "VIEWER",
    "createTicket": "MEMBER",
    "updateTicket": "MEMBER",
    "addTicketComment": "MEMBER",
    "updateTicketComment": "MEMBER",  # its author within 15 minutes, an ADMIN at any time
    "followUps": "VIEWER",
    "createFollowUp": "MEMBER",
    "updateFollowUp": "MEMBER",
}
# Protected fields that may be null: a caller below their role gets null for them.
NULLABLE = {"webhookEndpoint", "importJob"}
# A webhook URL where nothing listens (the suite's server allows private URLs).
HOOK_URL = "http://127.0.0.1:9/hook"
DEFAULT_NAME = "Default"  # the default workspace's name, from the first migration
PASSWORD = "a long enough password"
SIGN_IN_FIRST = "Sign in first: send 'Authorization: Bearer <session token or API key>'."
INVALID_TOKEN = "The access token is invalid, expired or revoked; sign in again."
ONLY_OWNERS = "Only an OWNER can grant, change or remove the ADMIN and OWNER roles."
CHALLENGE = 'Bearer realm="leadgraph"'
DUE = "2030-01-01T09:00:00+00:00"  # a follow-up's due time


def allowed(role: str, minimum: str) -> bool:
    return ROLES.index(role) <= ROLES.index(minimum)


def missing_id(type_name: str) -> str:
    """A well-formed global ID that names no record."""
    return base64.b64encode(f"{type_name}:999999".encode()).decode()


# ---------------------------------------------------------------- documents

WHO = "{ __typename ... on User { email } ... on ApiKey { name } }"
USER_ERRORS = "userErrors { field code message }"

LEADS = "{ leads { totalCount nodes { id email } } }"
LEAD = "query ($id: ID!) { lead(id: $id) { id email status convertedClient { id } } }"
CLIENTS = "{ clients(filter: {status: [ACTIVE, ARCHIVED]}) { totalCount nodes { id email } } }"
CLIENT = "query ($id: ID!) { client(id: $id) { id email company status archivedAt } }"
NODE = "query ($id: ID!) { node(id: $id) { __typename id } }"
NODES = "query ($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"
ENTITIES = """
query ($reps: [_Any!]!) {
  _entities(representations: $reps) {
    __typename ... on Lead { id email } ... on Client { id email }
  }
}
"""
MEMBERS = "{ members { role user { id email } } }"
EVENTS = "{ events { totalCount nodes { id type recordId record { id } } } }"
ME = "{ me { role workspace { name } } }"
API_KEYS = "{ apiKeys { id name role revokedAt } }"
SESSIONS = "{ sessions { id } }"
ENDPOINT = "id url description eventTypes"
WEBHOOK_ENDPOINTS = f"{{ webhookEndpoints {{ {ENDPOINT} }} }}"
LEAD_FORMS = "{ leadForms { id name key source allowedOrigins redirectUrl } }"
CREATE_LEAD_FORM = f"""
mutation ($input: CreateLeadFormInput!) {{
  createLeadForm(input: $input) {{ form {{ id name source }} {USER_ERRORS} }}
}}
"""
DELETE_LEAD_FORM = f"""
mutation ($id: ID!) {{ deleteLeadForm(id: $id) {{ deletedFormId {USER_ERRORS} }} }}
"""
TAGS = "{ tags { id name color } }"
CREATE_TAG = f"""
mutation ($input: CreateTagInput!) {{
  createTag(input: $input) {{ tag {{ id name color }} {USER_ERRORS} }}
}}
"""
UPDATE_TAG = f"""
mutation ($id: ID!, $input: UpdateTagInput!) {{
  updateTag(id: $id, input: $input) {{ tag {{ id name }} {USER_ERRORS} }}
}}
"""
DELETE_TAG = f"mutation ($id: ID!) {{ deleteTag(id: $id) {{ deletedTagId {USER_ERRORS} }} }}"
WEBHOOK_ENDPOINT = f"query ($id: ID!) {{ webhookEndpoint(id: $id) {{ {ENDPOINT} }} }}"
DELIVERIES = """
query ($id: ID!) { webhookEndpoint(id: $id) { deliveries { nodes { id } } } }
"""
EVENT_CURSORS = "{ events { edges { cursor } } }"
POSSIBLE_DUPLICATES = "{ possibleDuplicateLeads { lead { id } duplicateOf { id } reasons score } }"
IMPORT_JOBS = "{ importJobs { id status } }"
IMPORT_JOB = "query ($id: ID!) { importJob(id: $id) { id status } }"
ADD_ACTIVITY = f"""
mutation ($input: AddActivityInput!) {{
  addActivity(input: $input) {{
    activity {{ id kind body author {WHO} subject {{ id }} }} {USER_ERRORS}
  }}
}}
"""
UPDATE_ACTIVITY = f"""
mutation ($id: ID!, $input: UpdateActivityInput!) {{
  updateActivity(id: $id, input: $input) {{ activity {{ id body }} {USER_ERRORS} }}
}}
"""
FOLLOW_UPS = "{ followUps(filter: {status: [OPEN, DONE, CANCELLED]}) { nodes { id title } } }"
CREATE_FOLLOW_UP = f"""
mutation ($input: CreateFollowUpInput!) {{
  createFollowUp(input: $input) {{ followUp {{ id title status subject {{ id }} }} {USER_ERRORS} }}
}}
"""
UPDATE_FOLLOW_UP = f"""
mutation ($id: ID!, $input: UpdateFollowUpInput!) {{
  updateFollowUp(id: $id, input: $input) {{ followUp {{ id status }} {USER_ERRORS} }}
}}
"""
LEAD_ACTIVITIES = "query ($id: ID!) { lead(id: $id) { activities { nodes { id body } } } }"
CANCEL_IMPORT_JOB = """
mutation ($id: ID!) { cancelImportJob(id: $id) { job { id status } userErrors { code } } }
"""

CREATE_LEAD = f"""
mutation ($input: CreateLeadInput!) {{
  createLead(input: $input) {{ lead {{ email createdBy {WHO} }} {USER_ERRORS} }}
}}
"""
UPSERT_LEAD = f"""
mutation ($input: CreateLeadInput!) {{
  upsertLead(input: $input) {{ lead {{ email createdBy {WHO} }} created {USER_ERRORS} }}
}}
"""
UPDATE_LEAD = f"""
mutation ($id: ID!, $input: UpdateLeadInput!) {{
  updateLead(id: $id, input: $input) {{ lead {{ id status updatedBy {WHO} }} {USER_ERRORS} }}
}}
"""
DELETE_LEAD = f"""
mutation ($id: ID!) {{ deleteLead(id: $id) {{ deletedLeadId {USER_ERRORS} }} }}
"""
CONVERT_LEAD = f"""
mutation ($id: ID!) {{
  convertLead(id: $id) {{ lead {{ id status }} client {{ email createdBy {WHO} }} {USER_ERRORS} }}
}}
"""
CREATE_CLIENT = f"""
mutation ($input: CreateClientInput!) {{
  createClient(input: $input) {{ client {{ email createdBy {WHO} }} {USER_ERRORS} }}
}}
"""
UPDATE_CLIENT = f"""
mutation ($id: ID!, $input: UpdateClientInput!) {{
  updateClient(id: $id, input: $input) {{ client {{ id company updatedBy {WHO} }} {USER_ERRORS} }}
}}
"""
ARCHIVE_CLIENT = f"""
mutation ($id: ID!) {{ archiveClient(id: $id) {{ client {{ id status }} {USER_ERRORS} }} }}
"""
RESTORE_CLIENT = f"""
mutation ($id: ID!) {{ restoreClient(id: $id) {{ client {{ id status }} {USER_ERRORS} }} }}
"""
CREATE_API_KEY = f"""
mutation ($input: CreateApiKeyInput!) {{
  createApiKey(input: $input) {{ secret apiKey {{ id name role }} {USER_ERRORS} }}
}}
"""
REVOKE_API_KEY = f"""
mutation ($id: ID!) {{
  revokeApiKey(id: $id) {{ apiKey {{ id name revokedAt }} {USER_ERRORS} }}
}}
"""
INVITE_MEMBER = f"""
mutation ($input: InviteMemberInput!) {{
  inviteMember(input: $input) {{ email role {USER_ERRORS} }}
}}
"""
UPDATE_MEMBER_ROLE = f"""
mutation ($userId: ID!, $role: Role!) {{
  updateMemberRole(userId: $userId, role: $role) {{ member {{ role user {{ id }} }} {USER_ERRORS} }}
}}
"""
REMOVE_MEMBER = f"""
mutation ($userId: ID!) {{ removeMember(userId: $userId) {{ removedUserId {USER_ERRORS} }} }}
"""
UPDATE_WORKSPACE = f"""
mutation ($input: UpdateWorkspaceInput!) {{
  updateWorkspace(input: $input) {{ workspace {{ name }} {USER_ERRORS} }}
}}
"""
RETENTION_PREVIEW = """
query ($policy: RetentionPolicyInput) {
  retentionPreview(policy: $policy) { leads clients events }
}
"""
UPDATE_RETENTION_POLICY = f"""
mutation ($input: RetentionPolicyInput!) {{
  updateRetentionPolicy(input: $input) {{
    policy {{ unconvertedLeadsAfterDays action }} {USER_ERRORS}
  }}
}}
"""
RETENTION_POLICY = "{ me { workspace { retentionPolicy { unconvertedLeadsAfterDays } } } }"
ERASE_CONTACT = f"""
mutation ($email: String!) {{
  eraseContact(email: $email) {{ erased {{ leads clients events other }} {USER_ERRORS} }}
}}
"""
CREATE_WEBHOOK_ENDPOINT = f"""
mutation ($input: CreateWebhookEndpointInput!) {{
  createWebhookEndpoint(input: $input) {{ endpoint {{ {ENDPOINT} }} secret {USER_ERRORS} }}
}}
"""
UPDATE_WEBHOOK_ENDPOINT = f"""
mutation ($id: ID!, $input: UpdateWebhookEndpointInput!) {{
  updateWebhookEndpoint(id: $id, input: $input) {{ endpoint {{ {ENDPOINT} }} {USER_ERRORS} }}
}}
"""
DELETE_WEBHOOK_ENDPOINT = f"""
mutation ($id: ID!) {{ deleteWebhookEndpoint(id: $id) {{ deletedEndpointId {USER_ERRORS} }} }}
"""
ROTATE_WEBHOOK_SECRET = f"""
mutation ($id: ID!) {{
  rotateWebhookSecret(id: $id) {{ endpoint {{ id }} secret {USER_ERRORS} }}
}}
"""
RETRY_WEBHOOK_DELIVERY = f"""
mutation ($id: ID!) {{
  retryWebhookDelivery(id: $id) {{ delivery {{ id status }} {USER_ERRORS} }}
}}
"""
REPLAY_WEBHOOK_EVENTS = f"""
mutation ($endpointId: ID!, $after: String!) {{
  replayWebhookEvents(endpointId: $endpointId, after: $after) {{ queued {USER_ERRORS} }}
}}
"""
MERGE_LEADS = f"""
mutation ($input: MergeLeadsInput!) {{
  mergeLeads(input: $input) {{ lead {{ id email }} mergedLeadIds {USER_ERRORS} }}
}}
"""
SIGN_OUT = "mutation { signOut { session { id } userErrors { code } } }"
REVOKE_SESSION = (
    "mutation ($id: ID!) { revokeSession(id: $id) { session { id } userErrors { code } } }"
)
ACCEPT_INVITATION = f"""
mutation ($input: AcceptInvitationInput!) {{
  acceptInvitation(input: $input) {{ token viewer {{ role user {{ id email }} }} {USER_ERRORS} }}
}}
"""

# Everything an OWNER can see of the workspace, for "nothing changed" (lastUsedAt is left out:
# using a credential is not a change).
STATE = """
{
  me { workspace { name } }
  leads(first: 100) {
    totalCount nodes { id email status score convertedAt updatedAt convertedClient { id } }
  }
  clients(first: 100, filter: {status: [ACTIVE, ARCHIVED]}) {
    totalCount nodes { id email company status archivedAt updatedAt }
  }
  apiKeys { id name role revokedAt }
  webhookEndpoints { id url description eventTypes }
  members { role user { id email } }
  tags { id name color }
  leadActivities: leads(first: 100) { nodes { activities { totalCount nodes { body kind } } } }
  tickets(first: 100) { totalCount nodes { id status updatedAt comments { totalCount } } }
  followUps(filter: {status: [OPEN, DONE, CANCELLED]}) { nodes { title status } }
}
"""


# ---------------------------------------------------------------- the world a test acts in


@dataclass
class Caller:
    """A credential with its role, and how it shows up as createdBy/updatedBy."""

    client: GraphQLClient
    role: str
    actor: dict[str, str]


@dataclass
class World:
    server: LiveServer
    owner: GraphQLClient
    mailbox: Mailbox
    anon: GraphQLClient = field(init=False)

    def __post_init__(self) -> None:
        self.anon = self.owner.as_(None)

    def lead(self, **values: Any) -> str:
        payload = self.owner.data(
            "mutation ($input: CreateLeadInput!) { createLead(input: $input) { lead { id } } }",
            {"input": {"email": "lead@example.com", **values}},
        )
        lead_id: str = payload["createLead"]["lead"]["id"]
        return lead_id

    def client(self, **values: Any) -> str:
        payload = self.owner.data(
            "mutation ($input: CreateClientInput!) { createClient(input: $input) "
            "{ client { id } } }",
            {"input": {"email": "client@example.com", "firstName": "C", "lastName": "L", **values}},
        )
        client_id: str = payload["createClient"]["client"]["id"]
        return client_id

    def tag(self) -> str:
        payload = self.owner.data(CREATE_TAG, {"input": {"name": "Hot", "color": "#FF0000"}})
        tag_id: str = payload["createTag"]["tag"]["id"]
        return tag_id

    def import_job(self) -> str:
        """A job another process is running (its lease far off): the runner leaves it alone."""

        async def insert_job() -> int:
            async with self.server.db.write() as conn:
                stmt = insert(ImportJob.__table__).returning(ImportJob.__table__.c.id)  # type: ignore[attr-defined]
                zero = dict.fromkeys(("bytes_total", "chunks", "rows_processed", "created"), 0)
                zero |= dict.fromkeys(("updated", "skipped", "failed"), 0)
                values = {
                    **zero,
                    "workspace_id": DEFAULT_WORKSPACE_ID,
                    "status": "RUNNING",
                    "format": "CSV",
                    "options": {"on_duplicate": "SKIP", "match_on": "EMAIL", "dry_run": False},
                    "created_at": utcnow(),
                    "claimed_until": utcnow() + timedelta(hours=1),
                    "claim_token": "elsewhere",
                }
                return int((await conn.execute(stmt, values)).scalar_one())

        return to_global_id("ImportJob", self.server.run(insert_job()))

    def activity(self) -> str:
        """A note on a lead, logged by the OWNER's key."""
        variables = {"input": {"subjectId": self.lead(), "kind": "NOTE", "body": "Logged"}}
        payload = self.owner.data(ADD_ACTIVITY, variables)["addActivity"]
        assert payload["userErrors"] == []
        activity_id: str = payload["activity"]["id"]
        return activity_id

    def follow_up(self) -> str:
        """An OPEN follow-up on a lead, created by the OWNER's key."""
        variables = {"input": {"subjectId": self.lead(), "title": "Call", "dueAt": DUE}}
        payload = self.owner.data(CREATE_FOLLOW_UP, variables)["createFollowUp"]
        assert payload["userErrors"] == []
        follow_up_id: str = payload["followUp"]["id"]
        return follow_up_id

    def archived_client(self) -> str:
        client_id = self.client(email="archived@example.com")
        assert (
            self.owner.data(ARCHIVE_CLIENT, {"id": client_id})["archiveClient"]["userErrors"] == []
        )
        return client_id

    def key(self, role: str, name: str) -> tuple[str, str]:
        """A new API key of the default workspace: (id, secret)."""
        payload = self.owner.data(CREATE_API_KEY, {"input": {"name": name, "role": role}})
        created = payload["createApiKey"]
        assert created["userErrors"] == []
        return created["apiKey"]["id"], created["secret"]

    def key_caller(self, role: str) -> Caller:
        _, secret = self.key(role, f"{role} key")
        return Caller(self.owner.as_(secret), role, {"__typename": "ApiKey", "name": f"{role} key"})

    def join(self, email: str, role: str) -> tuple[str, str]:
        """A new member, invited by the OWNER and joined with the emailed code: (user id,
        session token)."""
        invited = self.owner.data(INVITE_MEMBER, {"input": {"email": email, "role": role}})
        assert invited["inviteMember"]["userErrors"] == []
        values = {
            "email": email,
            "code": self.mailbox.code_for(email),
            "name": email.split("@")[0].title(),
            "password": PASSWORD,
        }
        accepted = self.anon.data(ACCEPT_INVITATION, {"input": values})["acceptInvitation"]
        assert accepted["userErrors"] == [], accepted
        assert accepted["viewer"]["role"] == role
        return accepted["viewer"]["user"]["id"], accepted["token"]

    def member(self, email: str, role: str) -> str:
        """A person with an account who is a member already (written straight to the
        database: quicker than an invitation, and no password to hash): their user ID."""

        async def insert() -> int:
            now = utcnow()
            async with self.server.db.write() as session:
                user = await UserRepository(session).insert(
                    email=email, name="Target", created_at=now, email_verified_at=now
                )
                await MembershipRepository(session, DEFAULT_WORKSPACE_ID).insert(user.id, role, now)
            return int(user.id)

        return to_global_id("User", self.server.run(insert()))

    def session_caller(self, role: str) -> Caller:
        email = f"{role.lower()}.member@example.com"
        _, token = self.join(email, role)
        return Caller(self.owner.as_(token), role, {"__typename": "User", "email": email})

    def form(self) -> str:
        payload = self.owner.data(CREATE_LEAD_FORM, {"input": {"name": "Contact"}})
        form_id: str = payload["createLeadForm"]["form"]["id"]
        return form_id

    def endpoint(self) -> str:
        payload = self.owner.data(CREATE_WEBHOOK_ENDPOINT, {"input": {"url": HOOK_URL}})
        endpoint_id: str = payload["createWebhookEndpoint"]["endpoint"]["id"]
        return endpoint_id

    def deliveries(self, endpoint_id: str, count: int) -> list[str]:
        """The endpoint's deliveries, newest first, once the sender has made ``count``."""
        deadline = time.monotonic() + 10
        while True:
            found = self.owner.data(DELIVERIES, {"id": endpoint_id})["webhookEndpoint"]
            ids = [n["id"] for n in found["deliveries"]["nodes"]]
            if len(ids) >= count:
                return ids
            assert time.monotonic() < deadline, ids
            time.sleep(0.05)

    def delivery(self) -> str:
        endpoint_id = self.endpoint()
        self.lead()
        return self.deliveries(endpoint_id, 1)[0]

    def replayable(self) -> dict[str, Any]:
        """An endpoint sent two events, and the cursor of the first."""
        endpoint_id = self.endpoint()
        self.lead(email="first@example.com")
        self.lead(email="second@example.com")
        self.deliveries(endpoint_id, 2)
        first = self.owner.data(EVENT_CURSORS)["events"]["edges"][0]["cursor"]
        return {"endpointId": endpoint_id, "after": first}

    def state(self) -> dict[str, Any]:
        """The workspace as its OWNER sees it, and how many emails have gone out."""
        return {"api": self.owner.data(STATE), "emails": len(self.mailbox.messages)}


@pytest.fixture
def world(server: LiveServer, gql: GraphQLClient, mailbox: Mailbox) -> Iterator[World]:
    yield World(server, gql, mailbox)

    # updateWorkspace renames the default workspace, which the per-test wipe keeps.
    async def restore_name() -> None:
        async with server.db.write() as session:
            await WorkspaceRepository(session).rename(DEFAULT_WORKSPACE_ID, DEFAULT_NAME)

    server.run(restore_name())


# ---------------------------------------------------------------- the table of operations

Given = Callable[[World], dict[str, Any]]
Then = Callable[[World, Caller, Any, dict[str, Any]], None]


@dataclass(frozen=True)
class Operation:
    field: str
    minimum: str
    document: str
    given: Given
    then: Then


OPERATIONS: dict[str, Operation] = {}


def operation(field: str, document: str, given: Given) -> Callable[[Then], Then]:
    """Registers how to set up, call and check a field; its role comes from MINIMUM_ROLE."""

    def register(then: Then) -> Then:
        OPERATIONS[field] = Operation(field, MINIMUM_ROLE[field], document, given, then)
        return then

    return register


def query(field: str, document: str, given: Given) -> None:
    """A query's effect is its answer: the same as the OWNER's, and not empty."""

    def then(world: World, caller: Caller, answer: Any, variables: dict[str, Any]) -> None:
        assert answer
        assert answer == world.owner.data(document, variables)[field]

    operation(field, document, given)(then)


def nothing(world: World) -> dict[str, Any]:
    return {}


def seeded(make: Callable[[World], object]) -> Given:
    """Records the field will find, and no variables."""

    def given(world: World) -> dict[str, Any]:
        make(world)
        return {}

    return given


query("leads", LEADS, seeded(World.lead))
query("lead", LEAD, lambda w: {"id": w.lead()})
query("clients", CLIENTS, seeded(World.client))
query("client", CLIENT, lambda w: {"id": w.client()})
query("node", NODE, lambda w: {"id": w.client()})
query("nodes", NODES, lambda w: {"ids": [w.lead(), w.client()]})
query(
    "_entities",
    ENTITIES,
    lambda w: {
        "reps": [
            {"__typename": "Lead", "id": w.lead()},
            {"__typename": "Client", "id": w.client()},
        ]
    },
)
query("events", EVENTS, seeded(World.lead))
query("members", MEMBERS, seeded(lambda w: w.member("listed@example.com", "MEMBER")))
query("apiKeys", API_KEYS, nothing)
query("webhookEndpoints", WEBHOOK_ENDPOINTS, seeded(World.endpoint))
query("webhookEndpoint", WEBHOOK_ENDPOINT, lambda w: {"id": w.endpoint()})
query("leadForms", LEAD_FORMS, seeded(World.form))


@operation(
    "createLeadForm", CREATE_LEAD_FORM, lambda w: {"input": {"name": "Demo", "source": "web"}}
)
def then_create_lead_form(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload["userErrors"] == []
    assert (payload["form"]["name"], payload["form"]["source"]) == ("Demo", "web")
    forms = world.owner.data(LEAD_FORMS)["leadForms"]
    assert [f["id"] for f in forms] == [payload["form"]["id"]]


@operation("deleteLeadForm", DELETE_LEAD_FORM, lambda w: {"id": w.form()})
def then_delete_lead_form(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {"deletedFormId": variables["id"], "userErrors": []}
    assert world.owner.data(LEAD_FORMS) == {"leadForms": []}


query("tags", TAGS, seeded(World.tag))


@operation("createTag", CREATE_TAG, lambda w: {"input": {"name": "Warm", "color": "#00ff00"}})
def then_create_tag(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload["userErrors"] == []
    assert (payload["tag"]["name"], payload["tag"]["color"]) == ("Warm", "#00ff00")
    assert [t["name"] for t in world.owner.data(TAGS)["tags"]] == ["Warm"]


@operation("updateTag", UPDATE_TAG, lambda w: {"id": w.tag(), "input": {"name": "Cold"}})
def then_update_tag(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {"tag": {"id": variables["id"], "name": "Cold"}, "userErrors": []}
    assert [t["name"] for t in world.owner.data(TAGS)["tags"]] == ["Cold"]


@operation("deleteTag", DELETE_TAG, lambda w: {"id": w.tag()})
def then_delete_tag(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {"deletedTagId": variables["id"], "userErrors": []}
    assert world.owner.data(TAGS) == {"tags": []}


query("followUps", FOLLOW_UPS, seeded(World.follow_up))


@operation(
    "createFollowUp",
    CREATE_FOLLOW_UP,
    lambda w: {"input": {"subjectId": w.lead(), "title": "Call back", "dueAt": DUE}},
)
def then_create_follow_up(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload["userErrors"] == []
    made = payload["followUp"]
    assert (made["title"], made["status"]) == ("Call back", "OPEN")
    assert made["subject"] == {"id": variables["input"]["subjectId"]}
    found = world.owner.data(FOLLOW_UPS)["followUps"]["nodes"]
    assert found == [{"id": made["id"], "title": "Call back"}]


@operation(
    "updateFollowUp", UPDATE_FOLLOW_UP, lambda w: {"id": w.follow_up(), "input": {"status": "DONE"}}
)
def then_update_follow_up(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {"followUp": {"id": variables["id"], "status": "DONE"}, "userErrors": []}


query("possibleDuplicateLeads", POSSIBLE_DUPLICATES, seeded(lambda w: (w.lead(), w.lead())))
query("importJobs", IMPORT_JOBS, seeded(World.import_job))
query("importJob", IMPORT_JOB, lambda w: {"id": w.import_job()})


@operation("me", ME, nothing)
def then_me(world: World, caller: Caller, me: Any, variables: dict[str, Any]) -> None:
    assert me == {"role": caller.role, "workspace": {"name": DEFAULT_NAME}}


@operation("createLead", CREATE_LEAD, lambda w: {"input": {"email": "new@example.com"}})
def then_create_lead(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {
        "lead": {"email": "new@example.com", "createdBy": caller.actor},
        "userErrors": [],
    }
    leads = world.owner.data(LEADS)["leads"]
    assert [n["email"] for n in leads["nodes"]] == ["new@example.com"]


@operation("upsertLead", UPSERT_LEAD, lambda w: {"input": {"email": "up@example.com"}})
def then_upsert_lead(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {
        "lead": {"email": "up@example.com", "createdBy": caller.actor},
        "created": True,
        "userErrors": [],
    }
    leads = world.owner.data(LEADS)["leads"]
    assert [n["email"] for n in leads["nodes"]] == ["up@example.com"]


@operation(
    "updateLead",
    UPDATE_LEAD,
    lambda w: {"id": w.lead(), "input": {"status": "CONTACTED"}},
)
def then_update_lead(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {
        "lead": {"id": variables["id"], "status": "CONTACTED", "updatedBy": caller.actor},
        "userErrors": [],
    }
    assert world.owner.data(LEAD, variables)["lead"]["status"] == "CONTACTED"


@operation(
    "convertLead",
    CONVERT_LEAD,
    lambda w: {"id": w.lead(email="won@example.com", firstName="Wyn", lastName="Oh")},
)
def then_convert_lead(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {
        "lead": {"id": variables["id"], "status": "WON"},
        "client": {"email": "won@example.com", "createdBy": caller.actor},
        "userErrors": [],
    }
    lead = world.owner.data(LEAD, variables)["lead"]
    assert lead["status"] == "WON"
    assert lead["convertedClient"] is not None


@operation(
    "createClient",
    CREATE_CLIENT,
    lambda w: {"input": {"email": "new@example.com", "firstName": "N", "lastName": "E"}},
)
def then_create_client(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {
        "client": {"email": "new@example.com", "createdBy": caller.actor},
        "userErrors": [],
    }
    clients = world.owner.data(CLIENTS)["clients"]
    assert [n["email"] for n in clients["nodes"]] == ["new@example.com"]


@operation(
    "updateClient",
    UPDATE_CLIENT,
    lambda w: {"id": w.client(), "input": {"company": "Changed Ltd"}},
)
def then_update_client(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {
        "client": {"id": variables["id"], "company": "Changed Ltd", "updatedBy": caller.actor},
        "userErrors": [],
    }
    assert world.owner.data(CLIENT, variables)["client"]["company"] == "Changed Ltd"


@operation("deleteLead", DELETE_LEAD, lambda w: {"id": w.lead()})
def then_delete_lead(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {"deletedLeadId": variables["id"], "userErrors": []}
    assert world.owner.data(LEAD, variables) == {"lead": None}


@operation("archiveClient", ARCHIVE_CLIENT, lambda w: {"id": w.client()})
def then_archive_client(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {"client": {"id": variables["id"], "status": "ARCHIVED"}, "userErrors": []}
    assert world.owner.data(CLIENT, variables)["client"]["status"] == "ARCHIVED"


@operation("restoreClient", RESTORE_CLIENT, lambda w: {"id": w.archived_client()})
def then_restore_client(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {"client": {"id": variables["id"], "status": "ACTIVE"}, "userErrors": []}
    client = world.owner.data(CLIENT, variables)["client"]
    assert (client["status"], client["archivedAt"]) == ("ACTIVE", None)


@operation(
    "createApiKey",
    CREATE_API_KEY,
    lambda w: {"input": {"name": "made by the caller", "role": "VIEWER"}},
)
def then_create_api_key(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload["userErrors"] == []
    key = {"id": payload["apiKey"]["id"], "name": "made by the caller", "role": "VIEWER"}
    assert payload["apiKey"] == key
    assert key | {"revokedAt": None} in world.owner.data(API_KEYS)["apiKeys"]
    # The secret works, with the role asked for.
    assert world.owner.as_(payload["secret"]).data(ME)["me"]["role"] == "VIEWER"


@operation("revokeApiKey", REVOKE_API_KEY, lambda w: {"id": w.key("VIEWER", "to revoke")[0]})
def then_revoke_api_key(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload["userErrors"] == []
    assert payload["apiKey"]["id"] == variables["id"]
    [revoked] = [k for k in world.owner.data(API_KEYS)["apiKeys"] if k["id"] == variables["id"]]
    assert revoked["revokedAt"] is not None


@operation(
    "inviteMember",
    INVITE_MEMBER,
    lambda w: {"input": {"email": "invitee@example.com", "role": "MEMBER"}},
)
def then_invite_member(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {"email": "invitee@example.com", "role": "MEMBER", "userErrors": []}
    assert world.mailbox.code_for("invitee@example.com")


@operation(
    "updateMemberRole",
    UPDATE_MEMBER_ROLE,
    lambda w: {"userId": w.member("target@example.com", "MEMBER"), "role": "VIEWER"},
)
def then_update_member_role(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {
        "member": {"role": "VIEWER", "user": {"id": variables["userId"]}},
        "userErrors": [],
    }
    target = {"role": "VIEWER", "user": {"id": variables["userId"], "email": "target@example.com"}}
    assert target in world.owner.data(MEMBERS)["members"]


@operation(
    "removeMember",
    REMOVE_MEMBER,
    lambda w: {"userId": w.member("target@example.com", "MEMBER")},
)
def then_remove_member(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {"removedUserId": variables["userId"], "userErrors": []}
    members = world.owner.data(MEMBERS)["members"]
    assert variables["userId"] not in [m["user"]["id"] for m in members]


@operation("updateWorkspace", UPDATE_WORKSPACE, lambda w: {"input": {"name": "Renamed Co"}})
def then_update_workspace(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {"workspace": {"name": "Renamed Co"}, "userErrors": []}
    assert world.owner.data(ME)["me"]["workspace"] == {"name": "Renamed Co"}


query(
    "retentionPreview",
    RETENTION_PREVIEW,
    lambda w: (w.lead(), {"policy": {"eventsAfterDays": 1, "action": "ANONYMIZE"}})[1],
)


@operation(
    "updateRetentionPolicy",
    UPDATE_RETENTION_POLICY,
    lambda w: {"input": {"unconvertedLeadsAfterDays": 90, "action": "ANONYMIZE"}},
)
def then_update_retention_policy(
    world: World, caller: Caller, payload: Any, variables: Any
) -> None:
    assert payload == {
        "policy": {"unconvertedLeadsAfterDays": 90, "action": "ANONYMIZE"},
        "userErrors": [],
    }
    policy = world.owner.data(RETENTION_POLICY)["me"]["workspace"]["retentionPolicy"]
    assert policy == {"unconvertedLeadsAfterDays": 90}


@operation("eraseContact", ERASE_CONTACT, lambda w: (w.lead(), {"email": "LEAD@example.com"})[1])
def then_erase_contact(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {
        "erased": {"leads": 1, "clients": 0, "events": 1, "other": 0},
        "userErrors": [],
    }
    assert world.owner.data(LEADS)["leads"]["nodes"] == []


@operation(
    "createWebhookEndpoint",
    CREATE_WEBHOOK_ENDPOINT,
    lambda w: {"input": {"url": HOOK_URL, "description": "made by the caller"}},
)
def then_create_endpoint(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload["userErrors"] == []
    assert payload["secret"].startswith("whsec_")
    endpoint = payload["endpoint"]
    assert (endpoint["url"], endpoint["description"]) == (HOOK_URL, "made by the caller")
    assert world.owner.data(WEBHOOK_ENDPOINTS)["webhookEndpoints"] == [endpoint]


@operation(
    "updateWebhookEndpoint",
    UPDATE_WEBHOOK_ENDPOINT,
    lambda w: {"id": w.endpoint(), "input": {"eventTypes": ["LEAD_CREATED"]}},
)
def then_update_endpoint(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    endpoint = {"id": variables["id"], "url": HOOK_URL, "description": None}
    assert payload == {"endpoint": endpoint | {"eventTypes": ["LEAD_CREATED"]}, "userErrors": []}
    assert world.owner.data(WEBHOOK_ENDPOINT, variables)["webhookEndpoint"] == payload["endpoint"]


@operation("deleteWebhookEndpoint", DELETE_WEBHOOK_ENDPOINT, lambda w: {"id": w.endpoint()})
def then_delete_endpoint(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {"deletedEndpointId": variables["id"], "userErrors": []}
    assert world.owner.data(WEBHOOK_ENDPOINTS) == {"webhookEndpoints": []}


@operation("rotateWebhookSecret", ROTATE_WEBHOOK_SECRET, lambda w: {"id": w.endpoint()})
def then_rotate_webhook_secret(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload["userErrors"] == []
    assert payload["endpoint"] == {"id": variables["id"]}
    assert payload["secret"].startswith("whsec_")


@operation("retryWebhookDelivery", RETRY_WEBHOOK_DELIVERY, lambda w: {"id": w.delivery()})
def then_retry_webhook_delivery(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {"delivery": {"id": variables["id"], "status": "PENDING"}, "userErrors": []}


@operation("replayWebhookEvents", REPLAY_WEBHOOK_EVENTS, World.replayable)
def then_replay_webhook_events(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {"queued": 1, "userErrors": []}
    assert len(world.deliveries(variables["endpointId"], 3)) == 3


@operation(
    "mergeLeads",
    MERGE_LEADS,
    lambda w: {"input": {"survivorId": w.lead(), "mergedIds": [w.lead(email="o@example.com")]}},
)
def then_merge_leads(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    survivor, merged = variables["input"]["survivorId"], variables["input"]["mergedIds"]
    assert payload == {
        "lead": {"id": survivor, "email": "lead@example.com"},
        "mergedLeadIds": merged,
        "userErrors": [],
    }
    assert world.owner.data(LEAD, {"id": merged[0]})["lead"]["id"] == survivor


@operation("cancelImportJob", CANCEL_IMPORT_JOB, lambda w: {"id": w.import_job()})
def then_cancel_import_job(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {"job": {"id": variables["id"], "status": "CANCELLED"}, "userErrors": []}
    assert world.owner.data(IMPORT_JOB, variables)["importJob"]["status"] == "CANCELLED"


@operation(
    "addActivity",
    ADD_ACTIVITY,
    lambda w: {"input": {"subjectId": w.lead(), "kind": "CALL", "body": "Called"}},
)
def then_add_activity(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    lead_id = variables["input"]["subjectId"]
    assert payload["userErrors"] == []
    activity = payload["activity"]
    assert (activity["kind"], activity["body"]) == ("CALL", "Called")
    assert (activity["author"], activity["subject"]) == (caller.actor, {"id": lead_id})
    found = world.owner.data(LEAD_ACTIVITIES, {"id": lead_id})["lead"]["activities"]["nodes"]
    assert found == [{"id": activity["id"], "body": "Called"}]


@operation(
    "updateActivity", UPDATE_ACTIVITY, lambda w: {"id": w.activity(), "input": {"body": "Edited"}}
)
def then_update_activity(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    if caller.role in ("OWNER", "ADMIN"):  # anyone's activity, at any time
        assert payload == {"activity": {"id": variables["id"], "body": "Edited"}, "userErrors": []}
    else:  # a MEMBER edits only their own (this one is the OWNER key's)
        assert payload["activity"] is None
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["id"], "FORBIDDEN")]


TICKETS = "{ tickets { totalCount nodes { id number subject } } }"
CREATE_TICKET = f"""
mutation ($input: CreateTicketInput!) {{
  createTicket(input: $input) {{ ticket {{ number createdBy {WHO} }} {USER_ERRORS} }}
}}
"""
UPDATE_TICKET = f"""
mutation ($id: ID!, $input: UpdateTicketInput!) {{
  updateTicket(id: $id, input: $input) {{ ticket {{ id status updatedBy {WHO} }} {USER_ERRORS} }}
}}
"""
ADD_TICKET_COMMENT = f"""
mutation ($input: AddTicketCommentInput!) {{
  addTicketComment(input: $input) {{ comment {{ body author {WHO} }} {USER_ERRORS} }}
}}
"""


def ticket_of(world: World) -> str:
    """A ticket on a new client, created by the OWNER."""
    payload = world.owner.data(
        CREATE_TICKET, {"input": {"clientId": world.client(), "subject": "Help"}}
    )
    assert payload["createTicket"]["userErrors"] == []
    ticket_id: str = world.owner.data(TICKETS)["tickets"]["nodes"][0]["id"]
    return ticket_id


query("tickets", TICKETS, seeded(ticket_of))


@operation(
    "createTicket", CREATE_TICKET, lambda w: {"input": {"clientId": w.client(), "subject": "Hi"}}
)
def then_create_ticket(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {"ticket": {"number": 1, "createdBy": caller.actor}, "userErrors": []}
    assert world.owner.data(TICKETS)["tickets"]["totalCount"] == 1


@operation(
    "updateTicket",
    UPDATE_TICKET,
    lambda w: {"id": ticket_of(w), "input": {"status": "PENDING"}},
)
def then_update_ticket(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {
        "ticket": {"id": variables["id"], "status": "PENDING", "updatedBy": caller.actor},
        "userErrors": [],
    }


@operation(
    "addTicketComment",
    ADD_TICKET_COMMENT,
    lambda w: {"input": {"ticketId": ticket_of(w), "body": "On it"}},
)
def then_add_ticket_comment(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    assert payload == {"comment": {"body": "On it", "author": caller.actor}, "userErrors": []}


UPDATE_TICKET_COMMENT = f"""
mutation ($id: ID!, $input: UpdateTicketCommentInput!) {{
  updateTicketComment(id: $id, input: $input) {{ comment {{ id body }} {USER_ERRORS} }}
}}
"""


ADD_TICKET_COMMENT_ID = f"""
mutation ($input: AddTicketCommentInput!) {{
  addTicketComment(input: $input) {{ comment {{ id }} {USER_ERRORS} }}
}}
"""


def ticket_comment_of(world: World) -> str:
    """A comment on a new ticket, written by the OWNER's key."""
    variables = {"input": {"ticketId": ticket_of(world), "body": "Written"}}
    payload = world.owner.data(ADD_TICKET_COMMENT_ID, variables)
    assert payload["addTicketComment"]["userErrors"] == []
    comment_id: str = payload["addTicketComment"]["comment"]["id"]
    return comment_id


@operation(
    "updateTicketComment",
    UPDATE_TICKET_COMMENT,
    lambda w: {"id": ticket_comment_of(w), "input": {"body": "Edited"}},
)
def then_update_ticket_comment(world: World, caller: Caller, payload: Any, variables: Any) -> None:
    if caller.role in ("OWNER", "ADMIN"):  # anyone's comment, at any time
        assert payload == {"comment": {"id": variables["id"], "body": "Edited"}, "userErrors": []}
    else:  # a MEMBER edits only their own (this one is the OWNER key's)
        assert payload["comment"] is None
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["id"], "FORBIDDEN")]


def forbidden(field: str, minimum: str, role: str) -> dict[str, Any]:
    """The whole answer to a caller below the field's role: the error nulls the whole data
    (every protected field is non-null), or the field alone (those in NULLABLE)."""
    return {
        "data": {field: None} if field in NULLABLE else None,
        "errors": [
            {
                "message": f"This needs the {minimum} role in this workspace (you have {role}).",
                "path": [field],
                "extensions": {"code": "FORBIDDEN"},
            }
        ],
    }


def without_locations(body: dict[str, Any]) -> dict[str, Any]:
    """The body without its errors' locations, nor its ``extensions.cost`` (``without_cost``)."""
    body = without_cost(body)
    errors = [{k: v for k, v in e.items() if k != "locations"} for e in body.get("errors", [])]
    return body | {"errors": errors}


def check_cell(world: World, caller: Caller, op: Operation) -> None:
    """Given the operation's records, when the caller runs it, then it has its effect if the
    caller's role is enough, and is FORBIDDEN with nothing changed otherwise."""
    variables = op.given(world)
    if allowed(caller.role, op.minimum):
        body = caller.client(op.document, variables)

        assert "errors" not in body, body["errors"]
        op.then(world, caller, body["data"][op.field], variables)
    else:
        before = world.state()

        body = caller.client(op.document, variables)

        assert without_locations(body) == forbidden(op.field, op.minimum, caller.role)
        assert world.state() == before


# ---------------------------------------------------------------- every role, every field

MATRIX = [pytest.param(role, name, id=f"{name}-{role}") for name in OPERATIONS for role in ROLES]


FIELDS = "{ __schema { queryType { fields { name } } mutationType { fields { name } } } }"


def test_the_table_covers_every_protected_field(gql: GraphQLClient) -> None:
    schema = gql.data(FIELDS)["__schema"]
    fields = {f["name"] for kind in ("queryType", "mutationType") for f in schema[kind]["fields"]}
    public_queries = {"_service"}
    public_mutations = {
        "signUp",
        "verifyEmail",
        "signIn",
        "requestSignInCode",
        "signInWithCode",
        "acceptInvitation",
    }
    user_only = {"sessions", "signOut", "revokeSession"}  # sessions, not roles
    assert set(MINIMUM_ROLE) == fields - public_queries - public_mutations - user_only
    assert set(OPERATIONS) == set(MINIMUM_ROLE)


@pytest.mark.parametrize(("role", "name"), MATRIX)
def test_role_matrix_with_api_keys(world: World, role: str, name: str) -> None:
    check_cell(world, world.key_caller(role), OPERATIONS[name])


SESSION_CELLS = [
    ("MEMBER", "createLead"),
    ("MEMBER", "updateClient"),
    ("MEMBER", "deleteLead"),
    ("MEMBER", "createFollowUp"),
    ("MEMBER", "apiKeys"),
    ("MEMBER", "addActivity"),
    ("VIEWER", "leads"),
    ("VIEWER", "me"),
    ("VIEWER", "convertLead"),
    ("VIEWER", "inviteMember"),
]


@pytest.mark.parametrize(
    ("role", "name"), [pytest.param(r, n, id=f"{n}-{r}") for r, n in SESSION_CELLS]
)
def test_the_same_rules_hold_for_a_signed_in_member(world: World, role: str, name: str) -> None:
    check_cell(world, world.session_caller(role), OPERATIONS[name])


def test_a_new_role_applies_to_a_session_at_once(world: World) -> None:
    # Given a VIEWER signed in, who may not create leads
    user_id, token = world.join("riser@example.com", "VIEWER")
    member = world.owner.as_(token)
    lead = {"input": {"email": "x@example.com"}}
    assert member(CREATE_LEAD, lead)["errors"][0]["extensions"] == {"code": "FORBIDDEN"}

    # When an OWNER makes them a MEMBER, then the same session may
    changed = world.owner.data(UPDATE_MEMBER_ROLE, {"userId": user_id, "role": "MEMBER"})
    assert changed["updateMemberRole"]["userErrors"] == []
    assert member.data(CREATE_LEAD, lead)["createLead"]["userErrors"] == []

    # and once removed from the workspace, the session no longer signs them in.
    removed = world.owner.data(REMOVE_MEMBER, {"userId": user_id})
    assert removed["removeMember"]["userErrors"] == []
    body = member(ME, status=401)
    assert body["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}


# ---------------------------------------------------------------- no credentials


USER_ONLY: dict[str, tuple[str, Given]] = {
    "sessions": (SESSIONS, nothing),
    "signOut": (SIGN_OUT, nothing),
    "revokeSession": (REVOKE_SESSION, lambda w: {"id": missing_id("Session")}),
}
PROTECTED = {name: (op.document, op.given) for name, op in OPERATIONS.items()} | USER_ONLY


def post(http: httpx.Client, authorization: str, document: str, variables: Any) -> httpx.Response:
    return http.post(
        "/graphql",
        json={"query": document, "variables": variables},
        headers={"Authorization": authorization},
    )


def assert_unauthenticated(
    response: httpx.Response, field: str, variables: dict[str, Any], message: str
) -> None:
    """401 with a Bearer challenge, an UNAUTHENTICATED error for the field, and no data."""
    error = {"message": message, "extensions": {"code": "UNAUTHENTICATED"}}
    expected = {
        # lead, client, node and webhookEndpoint are nullable: the data keeps them, as null;
        # any other protected field is non-null (_entities too: it checks credentials once,
        # before looking at any representation), so its error nulls the whole data.
        "data": {field: None} if field in ("lead", "client", "node", *NULLABLE) else None,
        "errors": [error | {"path": [field]}],
    }
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == CHALLENGE
    assert without_locations(response.json()) == expected


@pytest.mark.parametrize("name", list(PROTECTED))
def test_every_protected_field_needs_credentials(
    world: World, http: httpx.Client, name: str
) -> None:
    document, given = PROTECTED[name]
    variables = given(world)
    before = world.state()

    response = post(http, "", document, variables)

    assert_unauthenticated(response, name, variables, SIGN_IN_FIRST)
    assert world.state() == before


BAD_CREDENTIALS = {
    "garbage-bearer": "Bearer not-a-token",
    "unknown-api-key": "Bearer lgk_" + "x" * 43,
    "unknown-session": "Bearer lgs_" + "x" * 43,
    "basic-scheme": "Basic " + base64.b64encode(b"owner:password").decode(),
    "valid-key-other-scheme": f"Token {OWNER_KEY}",
    "valid-key-no-scheme": OWNER_KEY,
}


@pytest.mark.parametrize("name", ["leads", "createLead", "apiKeys", "updateWorkspace"])
@pytest.mark.parametrize("authorization", list(BAD_CREDENTIALS.values()), ids=list(BAD_CREDENTIALS))
def test_bad_credentials_are_unauthenticated(
    world: World, http: httpx.Client, authorization: str, name: str
) -> None:
    document, given = PROTECTED[name]
    variables = given(world)
    before = world.state()

    response = post(http, authorization, document, variables)

    assert_unauthenticated(response, name, variables, INVALID_TOKEN)
    assert world.state() == before


def test_a_public_field_beside_a_protected_one_is_still_answered(http: httpx.Client) -> None:
    response = post(
        http,
        "",
        "query ($id: ID!) { _service { sdl } lead(id: $id) { id } }",
        {"id": missing_id("Lead")},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["data"]["lead"] is None
    assert body["data"]["_service"]["sdl"].startswith("schema @link")
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]


PUBLIC_MUTATIONS = {
    "signUp": (
        "mutation ($input: SignUpInput!) { signUp(input: $input) { sent userErrors { code } } }",
        {"email": "new@example.com", "password": PASSWORD, "name": "N", "workspaceName": "W"},
        {"sent": True, "userErrors": []},
    ),
    "verifyEmail": (
        "mutation ($input: VerifyEmailInput!) { verifyEmail(input: $input) { token userErrors "
        "{ code } } }",
        {"email": "new@example.com", "code": "000000"},
        {"token": None, "userErrors": [{"code": "INVALID_CODE"}]},
    ),
    "signIn": (
        "mutation ($input: SignInInput!) { signIn(input: $input) { token userErrors { code } } }",
        {"email": "nobody@example.com", "password": PASSWORD},
        {"token": None, "userErrors": [{"code": "INVALID_CREDENTIALS"}]},
    ),
    "requestSignInCode": (
        "mutation ($input: RequestSignInCodeInput!) { requestSignInCode(input: $input) "
        "{ sent userErrors { code } } }",
        {"email": "nobody@example.com"},
        {"sent": True, "userErrors": []},
    ),
    "signInWithCode": (
        "mutation ($input: SignInWithCodeInput!) { signInWithCode(input: $input) { token "
        "userErrors { code } } }",
        {"email": "nobody@example.com", "code": "000000"},
        {"token": None, "userErrors": [{"code": "INVALID_CODE"}]},
    ),
    "acceptInvitation": (
        "mutation ($input: AcceptInvitationInput!) { acceptInvitation(input: $input) { token "
        "userErrors { code } } }",
        {"email": "nobody@example.com", "code": "000000", "name": "N", "password": PASSWORD},
        {"token": None, "userErrors": [{"code": "INVALID_CODE"}]},
    ),
}


@pytest.mark.parametrize("name", list(PUBLIC_MUTATIONS))
def test_public_mutations_need_no_credentials(anon: GraphQLClient, name: str) -> None:
    document, input_, payload = PUBLIC_MUTATIONS[name]
    assert anon(document, {"input": input_}) == {"data": {name: payload}}


# ---------------------------------------------------------------- role escalation


@dataclass(frozen=True)
class Escalation:
    """A call an ADMIN may make in general, but not with this input: only an OWNER may."""

    field: str
    document: str
    given: Given
    error: dict[str, Any]
    then: Callable[[World, Any, dict[str, Any]], None]


def invited(role: str) -> Callable[[World, Any, dict[str, Any]], None]:
    def then(world: World, payload: Any, variables: dict[str, Any]) -> None:
        assert payload == {"email": "boss@example.com", "role": role, "userErrors": []}
        assert world.mailbox.code_for("boss@example.com")

    return then


def member_now(role: str) -> Callable[[World, Any, dict[str, Any]], None]:
    def then(world: World, payload: Any, variables: dict[str, Any]) -> None:
        assert payload == {
            "member": {"role": role, "user": {"id": variables["userId"]}},
            "userErrors": [],
        }
        roles = {m["user"]["id"]: m["role"] for m in world.owner.data(MEMBERS)["members"]}
        assert roles[variables["userId"]] == role

    return then


def removed(world: World, payload: Any, variables: dict[str, Any]) -> None:
    assert payload == {"removedUserId": variables["userId"], "userErrors": []}
    ids = [m["user"]["id"] for m in world.owner.data(MEMBERS)["members"]]
    assert variables["userId"] not in ids


def key_made(role: str) -> Callable[[World, Any, dict[str, Any]], None]:
    def then(world: World, payload: Any, variables: dict[str, Any]) -> None:
        assert payload["userErrors"] == []
        assert payload["apiKey"] | {"id": None} == {"id": None, "name": "root", "role": role}
        assert world.owner.as_(payload["secret"]).data(ME)["me"]["role"] == role

    return then


def key_revoked(world: World, payload: Any, variables: dict[str, Any]) -> None:
    assert payload["userErrors"] == []
    assert payload["apiKey"]["id"] == variables["id"]
    assert payload["apiKey"]["revokedAt"] is not None


def role_error(*path: str) -> dict[str, Any]:
    return {"field": list(path), "code": "FORBIDDEN", "message": ONLY_OWNERS}


ESCALATIONS = {
    "invite-an-admin": Escalation(
        "inviteMember",
        INVITE_MEMBER,
        lambda w: {"input": {"email": "boss@example.com", "role": "ADMIN"}},
        {"email": None, "role": None, "userErrors": [role_error("input", "role")]},
        invited("ADMIN"),
    ),
    "invite-an-owner": Escalation(
        "inviteMember",
        INVITE_MEMBER,
        lambda w: {"input": {"email": "boss@example.com", "role": "OWNER"}},
        {"email": None, "role": None, "userErrors": [role_error("input", "role")]},
        invited("OWNER"),
    ),
    "demote-an-admin": Escalation(
        "updateMemberRole",
        UPDATE_MEMBER_ROLE,
        lambda w: {"userId": w.member("admin@example.com", "ADMIN"), "role": "MEMBER"},
        {"member": None, "userErrors": [role_error("role")]},
        member_now("MEMBER"),
    ),
    "promote-a-member-to-admin": Escalation(
        "updateMemberRole",
        UPDATE_MEMBER_ROLE,
        lambda w: {"userId": w.member("member@example.com", "MEMBER"), "role": "ADMIN"},
        {"member": None, "userErrors": [role_error("role")]},
        member_now("ADMIN"),
    ),
    "remove-an-admin": Escalation(
        "removeMember",
        REMOVE_MEMBER,
        lambda w: {"userId": w.member("admin@example.com", "ADMIN")},
        {"removedUserId": None, "userErrors": [role_error("userId")]},
        removed,
    ),
    "create-an-owner-api-key": Escalation(
        "createApiKey",
        CREATE_API_KEY,
        lambda w: {"input": {"name": "root", "role": "OWNER"}},
        {"secret": None, "apiKey": None, "userErrors": [role_error("input", "role")]},
        key_made("OWNER"),
    ),
    "create-an-admin-api-key": Escalation(
        "createApiKey",
        CREATE_API_KEY,
        lambda w: {"input": {"name": "root", "role": "ADMIN"}},
        {"secret": None, "apiKey": None, "userErrors": [role_error("input", "role")]},
        key_made("ADMIN"),
    ),
    "revoke-an-owner-api-key": Escalation(
        "revokeApiKey",
        REVOKE_API_KEY,
        lambda w: {
            "id": w.owner.data(CREATE_API_KEY, {"input": {"name": "root", "role": "OWNER"}})[
                "createApiKey"
            ]["apiKey"]["id"]
        },
        {"apiKey": None, "userErrors": [role_error("id")]},
        key_revoked,
    ),
}


@pytest.mark.parametrize("case", list(ESCALATIONS))
def test_an_admin_cannot_grant_or_touch_admin_and_owner_roles(world: World, case: str) -> None:
    escalation = ESCALATIONS[case]
    admin = world.key_caller("ADMIN")
    variables = escalation.given(world)
    before = world.state()

    body = admin.client(escalation.document, variables)

    assert body == {"data": {escalation.field: escalation.error}}
    assert world.state() == before


@pytest.mark.parametrize("case", list(ESCALATIONS))
def test_an_owner_can_grant_and_touch_admin_and_owner_roles(world: World, case: str) -> None:
    escalation = ESCALATIONS[case]
    owner = world.key_caller("OWNER")
    variables = escalation.given(world)

    payload = owner.client.data(escalation.document, variables)[escalation.field]

    escalation.then(world, payload, variables)
