"""Owners and tags (issue 12): a workspace's tags (unique by name, case aside; an optional
"#rrggbb" color), the owner (a member) and tags of leads and clients, set through their inputs
and found by the ownerId / unassigned / tags filters, unassigned when the member leaves; every
change in the event log. All through the API over HTTP, on the suite's engine."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from db.models import DEFAULT_WORKSPACE_ID, Role
from db.repositories.auth import MembershipRepository, UserRepository
from db.repositories.tags import TagRepository
from db.types import utcnow
from resolvers.auth import create_key_for_workspace
from resolvers.ids import to_global_id
from tests.conftest import GraphQLClient, LiveServer
from tests.factories import create_leads, lead_values

USER_ERRORS = "userErrors { field code message }"
TAG = "id name color"
CREATE_TAG = f"""
mutation ($input: CreateTagInput!) {{
  createTag(input: $input) {{ tag {{ {TAG} }} {USER_ERRORS} }}
}}
"""
UPDATE_TAG = f"""
mutation ($id: ID!, $input: UpdateTagInput!) {{
  updateTag(id: $id, input: $input) {{ tag {{ {TAG} }} {USER_ERRORS} }}
}}
"""
DELETE_TAG = f"mutation ($id: ID!) {{ deleteTag(id: $id) {{ deletedTagId {USER_ERRORS} }} }}"
TAGS = f"{{ tags {{ {TAG} }} }}"
NODE = f"query ($id: ID!) {{ node(id: $id) {{ __typename ... on Tag {{ {TAG} }} }} }}"
RECORD = "id owner { id email } tags { id name }"
CREATE_LEAD = f"""
mutation ($input: CreateLeadInput!) {{
  createLead(input: $input) {{ lead {{ {RECORD} }} {USER_ERRORS} }}
}}
"""
UPDATE_LEAD = f"""
mutation ($id: ID!, $input: UpdateLeadInput!) {{
  updateLead(id: $id, input: $input) {{ lead {{ {RECORD} updatedAt }} {USER_ERRORS} }}
}}
"""
UPSERT_LEAD = f"""
mutation ($input: CreateLeadInput!) {{
  upsertLead(input: $input) {{ lead {{ {RECORD} }} created {USER_ERRORS} }}
}}
"""
LEAD = f"query ($id: ID!) {{ lead(id: $id) {{ {RECORD} }} }}"
CREATE_CLIENT = f"""
mutation ($input: CreateClientInput!) {{
  createClient(input: $input) {{ client {{ {RECORD} }} {USER_ERRORS} }}
}}
"""
UPDATE_CLIENT = f"""
mutation ($id: ID!, $input: UpdateClientInput!) {{
  updateClient(id: $id, input: $input) {{ client {{ {RECORD} }} {USER_ERRORS} }}
}}
"""
CLIENT = f"query ($id: ID!) {{ client(id: $id) {{ {RECORD} }} }}"
CONVERT_LEAD = f"""
mutation ($id: ID!, $input: ConvertLeadInput) {{
  convertLead(id: $id, input: $input) {{ client {{ {RECORD} }} {USER_ERRORS} }}
}}
"""
LEADS = """
query ($filter: LeadFilter, $first: Int, $after: String) {
  leads(filter: $filter, first: $first, after: $after, orderBy: {field: EMAIL}) {
    totalCount nodes { email } pageInfo { hasNextPage endCursor }
  }
}
"""
CLIENTS = """
query ($filter: ClientFilter) {
  clients(filter: $filter, orderBy: {field: EMAIL}) { totalCount nodes { email } }
}
"""
HISTORY = """
query ($id: ID!) {
  events(filter: {recordId: $id}) { nodes { type changes { field from to } } }
}
"""
REMOVE_MEMBER = f"""
mutation ($userId: ID!) {{ removeMember(userId: $userId) {{ removedUserId {USER_ERRORS} }} }}
"""
TAKEN = "A tag with this name already exists."
CREATE_API_KEY = """
mutation ($role: Role!) { createApiKey(input: {name: "k", role: $role}) { secret } }
"""


# ------------------------------------------------------------------ helpers


def tag(gql: GraphQLClient, name: str, color: str | None = None) -> dict[str, Any]:
    payload = gql.data(CREATE_TAG, {"input": {"name": name, "color": color}})["createTag"]
    assert payload["userErrors"] == [], payload
    result: dict[str, Any] = payload["tag"]
    return result


def member(server: LiveServer, email: str, workspace_id: int = DEFAULT_WORKSPACE_ID) -> str:
    """A user who is a MEMBER of the workspace (straight to the database): their user ID."""

    async def insert() -> int:
        now = utcnow()
        async with server.db.write() as conn:
            user = await UserRepository(conn).insert(
                email=email, name=email.split("@")[0], created_at=now, email_verified_at=now
            )
            await MembershipRepository(conn, workspace_id).insert(user.id, "MEMBER", now)
        return int(user.id)

    return to_global_id("User", server.run(insert()))


def key(gql: GraphQLClient, role: str) -> GraphQLClient:
    secret: str = gql.data(CREATE_API_KEY, {"role": role})["createApiKey"]["secret"]
    return gql.as_(secret)


def lead(gql: GraphQLClient, email: str, **values: Any) -> dict[str, Any]:
    payload = gql.data(CREATE_LEAD, {"input": {"email": email, **values}})["createLead"]
    assert payload["userErrors"] == [], payload
    result: dict[str, Any] = payload["lead"]
    return result


def client(gql: GraphQLClient, email: str, **values: Any) -> dict[str, Any]:
    given = {"email": email, "firstName": "C", "lastName": "L", **values}
    payload = gql.data(CREATE_CLIENT, {"input": given})["createClient"]
    assert payload["userErrors"] == [], payload
    result: dict[str, Any] = payload["client"]
    return result


def emails(gql: GraphQLClient, flt: dict[str, Any], query: str = LEADS) -> list[str]:
    field = "leads" if query is LEADS else "clients"
    found = gql.data(query, {"filter": flt})[field]
    assert found["totalCount"] == len(found["nodes"])
    return [n["email"] for n in found["nodes"]]


def history(gql: GraphQLClient, record_id: str) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = gql.data(HISTORY, {"id": record_id})["events"]["nodes"]
    return nodes


def ref(tag_: dict[str, Any]) -> dict[str, Any]:
    return {"id": tag_["id"], "name": tag_["name"]}


# ------------------------------------------------------------------ tags


def test_a_tag_is_created_trimmed_with_its_color_in_lowercase(gql: GraphQLClient) -> None:
    created = tag(gql, "  Hot lead ", "#A0b1C2")

    assert created == {"id": created["id"], "name": "Hot lead", "color": "#a0b1c2"}
    assert tag(gql, "Cold")["color"] is None
    assert gql.data(NODE, {"id": created["id"]})["node"] == {"__typename": "Tag", **created}


def test_tags_are_listed_by_name_case_aside(gql: GraphQLClient) -> None:
    for name in ("beta", "Alpha", "gamma"):
        tag(gql, name)

    assert [t["name"] for t in gql.data(TAGS)["tags"]] == ["Alpha", "beta", "gamma"]


def test_a_tag_name_is_unique_in_the_workspace_case_aside(gql: GraphQLClient) -> None:
    vip = tag(gql, "VIP")
    other = tag(gql, "Partner")
    taken = [
        {
            "field": ["input", "name"],
            "code": "TAKEN",
            "message": "A tag with this name already exists.",
        }
    ]

    created = gql.data(CREATE_TAG, {"input": {"name": " vip "}})["createTag"]
    renamed = gql.data(UPDATE_TAG, {"id": other["id"], "input": {"name": "Vip"}})["updateTag"]

    assert created == {"tag": None, "userErrors": taken}
    assert renamed == {"tag": None, "userErrors": taken}
    # Its own name in another case is no conflict.
    recased = gql.data(UPDATE_TAG, {"id": vip["id"], "input": {"name": "vip"}})["updateTag"]
    assert recased == {"tag": {**vip, "name": "vip"}, "userErrors": []}
    assert [t["name"] for t in gql.data(TAGS)["tags"]] == ["Partner", "vip"]


def test_concurrent_creates_of_one_name_make_one_tag_and_answer_taken(
    gql: GraphQLClient,
) -> None:
    def create(n: int) -> dict[str, Any]:
        name = "Rush" if n % 2 else "RUSH"
        payload: dict[str, Any] = gql.data(CREATE_TAG, {"input": {"name": name}})["createTag"]
        return payload

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(create, range(16)))

    made = [a for a in answers if a["tag"] is not None]
    refused = [a for a in answers if a["tag"] is None]
    assert len(made) == 1
    assert {e["code"] for a in refused for e in a["userErrors"]} == {"TAKEN"}
    assert len(gql.data(TAGS)["tags"]) == 1


def test_a_write_past_the_name_check_is_refused_by_the_unique_index_as_taken(
    gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a concurrent create meets when both pass the check before either commits: the
    check is made to miss here, so that the unique index answers."""
    tag(gql, "Dup")
    other = tag(gql, "Other")

    async def missed(*args: Any, **kwargs: Any) -> bool:
        return False

    monkeypatch.setattr(TagRepository, "name_taken", missed)
    created = gql.data(CREATE_TAG, {"input": {"name": "DUP"}})["createTag"]
    renamed = gql.data(UPDATE_TAG, {"id": other["id"], "input": {"name": "dup"}})["updateTag"]

    taken = [{"field": ["input", "name"], "code": "TAKEN", "message": TAKEN}]
    assert created == {"tag": None, "userErrors": taken}
    assert renamed == {"tag": None, "userErrors": taken}
    assert [t["name"] for t in gql.data(TAGS)["tags"]] == ["Dup", "Other"]


def test_bad_tag_input_is_reported_field_by_field_and_nothing_is_written(
    gql: GraphQLClient,
) -> None:
    payload = gql.data(CREATE_TAG, {"input": {"name": "   ", "color": "red"}})["createTag"]
    too_long = gql.data(CREATE_TAG, {"input": {"name": "x" * 51}})["createTag"]
    short_color = gql.data(CREATE_TAG, {"input": {"name": "x", "color": "#abc"}})["createTag"]

    assert payload["tag"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
        (["input", "name"], "REQUIRED"),
        (["input", "color"], "INVALID"),
    ]
    assert [(e["field"], e["code"]) for e in too_long["userErrors"]] == [
        (["input", "name"], "INVALID")
    ]
    assert [(e["field"], e["code"]) for e in short_color["userErrors"]] == [
        (["input", "color"], "INVALID")
    ]
    assert gql.data(TAGS) == {"tags": []}


def test_update_tag_renames_recolors_and_clears_the_color(gql: GraphQLClient) -> None:
    made = tag(gql, "Old", "#000000")

    renamed = gql.data(UPDATE_TAG, {"id": made["id"], "input": {"name": "New"}})["updateTag"]
    cleared = gql.data(UPDATE_TAG, {"id": made["id"], "input": {"color": None}})["updateTag"]
    blank = gql.data(UPDATE_TAG, {"id": made["id"], "input": {"name": None}})["updateTag"]
    missing = gql.data(UPDATE_TAG, {"id": to_global_id("Tag", 999), "input": {}})["updateTag"]

    assert renamed["tag"] == {"id": made["id"], "name": "New", "color": "#000000"}
    assert cleared["tag"] == {"id": made["id"], "name": "New", "color": None}
    assert [(e["field"], e["code"]) for e in blank["userErrors"]] == [
        (["input", "name"], "REQUIRED")
    ]
    assert missing == {
        "tag": None,
        "userErrors": [{"field": ["id"], "code": "NOT_FOUND", "message": "No tag with this ID."}],
    }


# ------------------------------------------------------------------ owners and tags of records


def test_a_lead_gets_an_owner_and_tags_and_an_update_replaces_the_set(
    server: LiveServer, gql: GraphQLClient
) -> None:
    ann = member(server, "ann@example.com")
    a, b, c = tag(gql, "a"), tag(gql, "b"), tag(gql, "c")

    made = lead(gql, "x@example.com", ownerId=ann, tagIds=[b["id"], a["id"], b["id"]])
    retagged = gql.data(UPDATE_LEAD, {"id": made["id"], "input": {"tagIds": [c["id"], a["id"]]}})
    untouched = gql.data(UPDATE_LEAD, {"id": made["id"], "input": {"score": 5}})
    unassigned = gql.data(UPDATE_LEAD, {"id": made["id"], "input": {"ownerId": None, "tagIds": []}})

    assert made["owner"] == {"id": ann, "email": "ann@example.com"}
    assert made["tags"] == [ref(a), ref(b)]
    assert retagged["updateLead"]["lead"]["tags"] == [ref(a), ref(c)]
    assert retagged["updateLead"]["lead"]["owner"]["id"] == ann
    assert untouched["updateLead"]["lead"]["tags"] == [ref(a), ref(c)]
    assert unassigned["updateLead"]["lead"]["owner"] is None
    assert unassigned["updateLead"]["lead"]["tags"] == []
    assert gql.data(LEAD, {"id": made["id"]})["lead"] == {
        "id": made["id"],
        "owner": None,
        "tags": [],
    }


def test_upsert_sets_owner_and_tags_on_a_new_lead_and_on_the_one_it_finds(
    server: LiveServer, gql: GraphQLClient
) -> None:
    ann, bob = member(server, "ann@example.com"), member(server, "bob@example.com")
    a, b = tag(gql, "a"), tag(gql, "b")

    first = gql.data(
        UPSERT_LEAD, {"input": {"email": "u@example.com", "ownerId": ann, "tagIds": [a["id"]]}}
    )
    again = gql.data(
        UPSERT_LEAD, {"input": {"email": "U@example.com", "ownerId": bob, "tagIds": [b["id"]]}}
    )

    assert first["upsertLead"]["created"] is True
    assert first["upsertLead"]["lead"]["owner"]["id"] == ann
    assert again["upsertLead"]["created"] is False
    assert again["upsertLead"]["lead"]["owner"]["id"] == bob
    assert again["upsertLead"]["lead"]["tags"] == [ref(b)]


def test_a_client_gets_an_owner_and_tags(server: LiveServer, gql: GraphQLClient) -> None:
    ann = member(server, "ann@example.com")
    a, b = tag(gql, "a"), tag(gql, "b")

    made = client(gql, "c@example.com", ownerId=ann, tagIds=[a["id"]])
    changed = gql.data(
        UPDATE_CLIENT, {"id": made["id"], "input": {"tagIds": [b["id"]], "ownerId": None}}
    )

    assert made["owner"]["id"] == ann
    assert made["tags"] == [ref(a)]
    assert changed["updateClient"] == {
        "client": {"id": made["id"], "owner": None, "tags": [ref(b)]},
        "userErrors": [],
    }


def test_the_owner_must_be_a_member_and_the_tags_the_workspaces(
    server: LiveServer, gql: GraphQLClient
) -> None:
    secret, other, _ = server.run(create_key_for_workspace(server.db, "Other", Role.OWNER, "t"))
    theirs = gql.as_(secret)
    their_member = member(server, "them@example.com", other.id)
    their_tag = tag(theirs, "theirs")
    mine = tag(gql, "mine")
    made = lead(gql, "x@example.com", tagIds=[mine["id"]])

    outsider = gql.data(
        UPDATE_LEAD,
        {
            "id": made["id"],
            "input": {"ownerId": their_member, "tagIds": [mine["id"], their_tag["id"]]},
        },
    )["updateLead"]
    malformed = gql.data(
        CREATE_LEAD,
        {"input": {"email": "y@example.com", "ownerId": "nope", "tagIds": [made["id"]]}},
    )["createLead"]
    client_outsider = gql.data(
        CREATE_CLIENT,
        {
            "input": {
                "email": "c@example.com",
                "firstName": "C",
                "lastName": "L",
                "ownerId": their_member,
            }
        },
    )["createClient"]

    assert outsider["lead"] is None
    assert [(e["field"], e["code"]) for e in outsider["userErrors"]] == [
        (["input", "ownerId"], "NOT_FOUND"),
        (["input", "tagIds", "1"], "NOT_FOUND"),
    ]
    assert malformed["lead"] is None
    assert [(e["field"], e["code"]) for e in malformed["userErrors"]] == [
        (["input", "ownerId"], "INVALID"),
        (["input", "tagIds", "0"], "NOT_FOUND"),
    ]
    assert [(e["field"], e["code"]) for e in client_outsider["userErrors"]] == [
        (["input", "ownerId"], "NOT_FOUND")
    ]
    # A missing lead and a bad owner: both reported.
    missing = gql.data(
        UPDATE_LEAD, {"id": to_global_id("Lead", 999), "input": {"ownerId": their_member}}
    )["updateLead"]
    assert [(e["field"], e["code"]) for e in missing["userErrors"]] == [
        (["id"], "NOT_FOUND"),
        (["input", "ownerId"], "NOT_FOUND"),
    ]
    # Nothing written.
    assert gql.data(LEAD, {"id": made["id"]})["lead"]["tags"] == [ref(mine)]
    assert emails(gql, {}) == ["x@example.com"]
    assert emails(gql, {}, CLIENTS) == []


def test_tags_and_owners_are_sealed_per_workspace(server: LiveServer, gql: GraphQLClient) -> None:
    secret, _, _ = server.run(create_key_for_workspace(server.db, "Other", Role.OWNER, "t"))
    theirs = gql.as_(secret)
    their_tag = tag(theirs, "shared")
    mine = tag(gql, "Shared")  # the same name: another workspace's is no conflict
    lead(theirs, "t@example.com", tagIds=[their_tag["id"]])
    lead(gql, "m@example.com", tagIds=[mine["id"]])
    not_found = [{"field": ["id"], "code": "NOT_FOUND", "message": "No tag with this ID."}]

    assert gql.data(TAGS)["tags"] == [mine]
    assert gql.data(NODE, {"id": their_tag["id"]})["node"] is None
    assert emails(gql, {"tags": {"any": [their_tag["id"]]}}) == []
    assert gql.data(DELETE_TAG, {"id": their_tag["id"]})["deleteTag"]["userErrors"] == not_found
    renamed = gql.data(UPDATE_TAG, {"id": their_tag["id"], "input": {"name": "x"}})
    assert renamed["updateTag"]["userErrors"] == not_found
    assert theirs.data(TAGS)["tags"] == [their_tag]


# ------------------------------------------------------------------ roles


def test_members_set_owners_and_tags_viewers_read_and_only_admins_delete_tags(
    server: LiveServer, gql: GraphQLClient
) -> None:
    ann = member(server, "ann@example.com")
    as_member, as_viewer, as_admin = key(gql, "MEMBER"), key(gql, "VIEWER"), key(gql, "ADMIN")

    made = tag(as_member, "m")
    renamed = as_member.data(UPDATE_TAG, {"id": made["id"], "input": {"name": "mm"}})
    record = lead(as_member, "x@example.com", ownerId=ann, tagIds=[made["id"]])
    refused = as_member(DELETE_TAG, {"id": made["id"]})
    viewer_create = as_viewer(CREATE_TAG, {"input": {"name": "v"}})
    viewer_update = as_viewer(UPDATE_LEAD, {"id": record["id"], "input": {"ownerId": None}})

    assert renamed["updateTag"]["tag"]["name"] == "mm"
    assert record["owner"]["id"] == ann
    for answer in (refused, viewer_create, viewer_update):
        assert answer["data"] is None
        assert answer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert as_viewer.data(TAGS)["tags"] == [{**made, "name": "mm"}]
    assert as_viewer.data(LEAD, {"id": record["id"]})["lead"]["tags"] == [
        {"id": made["id"], "name": "mm"}
    ]
    deleted = as_admin.data(DELETE_TAG, {"id": made["id"]})
    assert deleted == {"deleteTag": {"deletedTagId": made["id"], "userErrors": []}}


# ------------------------------------------------------------------ deleting a tag


def test_deleting_a_tag_untags_every_lead_and_client_with_their_events(
    gql: GraphQLClient,
) -> None:
    a, b = tag(gql, "a"), tag(gql, "b")
    tagged = lead(gql, "x@example.com", tagIds=[a["id"], b["id"]])
    other = lead(gql, "y@example.com", tagIds=[b["id"]])
    customer = client(gql, "c@example.com", tagIds=[a["id"]])

    deleted = gql.data(DELETE_TAG, {"id": a["id"]})["deleteTag"]
    again = gql.data(DELETE_TAG, {"id": a["id"]})["deleteTag"]

    assert deleted == {"deletedTagId": a["id"], "userErrors": []}
    assert again["userErrors"][0]["code"] == "NOT_FOUND"
    assert gql.data(LEAD, {"id": tagged["id"]})["lead"]["tags"] == [ref(b)]
    assert gql.data(LEAD, {"id": other["id"]})["lead"]["tags"] == [ref(b)]
    assert gql.data(CLIENT, {"id": customer["id"]})["client"]["tags"] == []
    assert history(gql, tagged["id"])[-1] == {
        "type": "LEAD_UPDATED",
        "changes": [{"field": "tagIds", "from": [a["id"], b["id"]], "to": [b["id"]]}],
    }
    assert history(gql, customer["id"])[-1] == {
        "type": "CLIENT_UPDATED",
        "changes": [{"field": "tagIds", "from": [a["id"]], "to": None}],
    }
    assert len(history(gql, other["id"])) == 1  # created only


# ------------------------------------------------------------------ filters


@pytest.fixture
def tagged(server: LiveServer, gql: GraphQLClient) -> dict[str, Any]:
    """Leads l0..l5 and clients c0..c2 with owners and tags:

    l0 ann [a]     l1 ann [a b]    l2 bob [b]    l3 - [a b c]    l4 - []    l5 bob [c]
    c0 ann [a]     c1 bob [a b]    c2 - []
    """
    ann, bob = member(server, "ann@example.com"), member(server, "bob@example.com")
    a, b, c = (tag(gql, n)["id"] for n in "abc")
    for n, (owner, tags) in enumerate(
        [(ann, [a]), (ann, [a, b]), (bob, [b]), (None, [a, b, c]), (None, []), (bob, [c])]
    ):
        lead(gql, f"l{n}@example.com", ownerId=owner, tagIds=tags)
    for n, (owner, tags) in enumerate([(ann, [a]), (bob, [a, b]), (None, [])]):
        client(gql, f"c{n}@example.com", ownerId=owner, tagIds=tags)
    return {"ann": ann, "bob": bob, "a": a, "b": b, "c": c}


def leads_(*ns: int) -> list[str]:
    return [f"l{n}@example.com" for n in ns]


def test_leads_filter_by_owner_and_unassigned(gql: GraphQLClient, tagged: dict[str, Any]) -> None:
    assert emails(gql, {"ownerId": tagged["ann"]}) == leads_(0, 1)
    assert emails(gql, {"ownerId": tagged["bob"]}) == leads_(2, 5)
    assert emails(gql, {"unassigned": True}) == leads_(3, 4)
    assert emails(gql, {"unassigned": False}) == leads_(0, 1, 2, 5)
    assert emails(gql, {"ownerId": to_global_id("User", 999)}) == []


def test_leads_filter_by_tags_any_all_none(gql: GraphQLClient, tagged: dict[str, Any]) -> None:
    a, b, c = tagged["a"], tagged["b"], tagged["c"]

    assert emails(gql, {"tags": {"any": [a]}}) == leads_(0, 1, 3)
    assert emails(gql, {"tags": {"any": [b, c]}}) == leads_(1, 2, 3, 5)
    assert emails(gql, {"tags": {"all": [a, b]}}) == leads_(1, 3)
    assert emails(gql, {"tags": {"all": [a, b, c, a]}}) == leads_(3)
    assert emails(gql, {"tags": {"none": [a]}}) == leads_(2, 4, 5)
    assert emails(gql, {"tags": {"none": [a, b, c]}}) == leads_(4)
    assert emails(gql, {"tags": {"any": [b], "none": [c]}}) == leads_(1, 2)
    assert emails(gql, {"tags": {"any": [a], "all": [b], "none": [c]}}) == leads_(1)
    # Empty lists: any of none matches nothing; all of none and none of none ask for nothing.
    assert emails(gql, {"tags": {"any": []}}) == []
    assert emails(gql, {"tags": {"all": [], "none": []}}) == leads_(0, 1, 2, 3, 4, 5)
    # With the owner filters: every condition holds.
    assert emails(gql, {"ownerId": tagged["ann"], "tags": {"all": [b]}}) == leads_(1)
    assert emails(gql, {"unassigned": True, "tags": {"any": [c]}}) == leads_(3)


def test_a_malformed_tag_id_in_a_filter_is_bad_input(
    gql: GraphQLClient, tagged: dict[str, Any]
) -> None:
    body = gql(LEADS, {"filter": {"tags": {"all": [tagged["a"], "nope"]}}})

    assert body["data"] is None
    assert body["errors"][0]["message"] == "Argument 'filter.tags.all[1]' is not a valid ID."
    owner = gql(LEADS, {"filter": {"ownerId": "nope"}})
    assert owner["errors"][0]["message"] == "Argument 'filter.ownerId' is not a valid ID."
    # Well-formed IDs of another type match nothing.
    assert emails(gql, {"ownerId": tagged["a"]}) == []
    assert emails(gql, {"tags": {"any": [tagged["ann"]]}}) == []
    assert emails(gql, {"tags": {"none": [tagged["ann"]]}}) == leads_(0, 1, 2, 3, 4, 5)


def test_filtered_leads_page_with_keyset_cursors(
    gql: GraphQLClient, tagged: dict[str, Any]
) -> None:
    flt = {"tags": {"any": [tagged["b"], tagged["c"]]}}
    seen: list[str] = []
    after = None
    while True:
        page = gql.data(LEADS, {"filter": flt, "first": 1, "after": after})["leads"]
        assert page["totalCount"] == 4
        seen += [n["email"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    assert seen == leads_(1, 2, 3, 5)


def test_clients_filter_by_owner_and_tags(gql: GraphQLClient, tagged: dict[str, Any]) -> None:
    def found(flt: dict[str, Any]) -> list[str]:
        return [e.split("@")[0] for e in emails(gql, flt, CLIENTS)]

    assert found({"ownerId": tagged["ann"]}) == ["c0"]
    assert found({"tags": {"any": [tagged["a"]]}}) == ["c0", "c1"]
    assert found({"tags": {"all": [tagged["a"], tagged["b"]]}}) == ["c1"]
    assert found({"tags": {"none": [tagged["a"]]}}) == ["c2"]
    assert found({"ownerId": tagged["bob"], "tags": {"none": [tagged["b"]]}}) == []


# ------------------------------------------------------------------ member removal


def test_removing_a_member_unassigns_their_leads_and_clients_with_events(
    server: LiveServer, gql: GraphQLClient
) -> None:
    ann, bob = member(server, "ann@example.com"), member(server, "bob@example.com")
    hers = lead(gql, "hers@example.com", ownerId=ann)
    his = lead(gql, "his@example.com", ownerId=bob)
    her_client = client(gql, "c@example.com", ownerId=ann)

    removed = gql.data(REMOVE_MEMBER, {"userId": ann})["removeMember"]

    assert removed == {"removedUserId": ann, "userErrors": []}
    assert gql.data(LEAD, {"id": hers["id"]})["lead"]["owner"] is None
    assert gql.data(CLIENT, {"id": her_client["id"]})["client"]["owner"] is None
    assert gql.data(LEAD, {"id": his["id"]})["lead"]["owner"]["id"] == bob
    unassigned = {"field": "ownerId", "from": ann, "to": None}
    assert history(gql, hers["id"])[-1] == {"type": "LEAD_UPDATED", "changes": [unassigned]}
    assert history(gql, her_client["id"])[-1] == {"type": "CLIENT_UPDATED", "changes": [unassigned]}
    assert len(history(gql, his["id"])) == 1
    # No longer a member: not an owner either.
    refused = gql.data(UPDATE_LEAD, {"id": his["id"], "input": {"ownerId": ann}})["updateLead"]
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [
        (["input", "ownerId"], "NOT_FOUND")
    ]


# ------------------------------------------------------------------ events


def test_owner_and_tag_changes_are_field_changes_of_the_records_events(
    server: LiveServer, gql: GraphQLClient
) -> None:
    ann, bob = member(server, "ann@example.com"), member(server, "bob@example.com")
    a, b = tag(gql, "a")["id"], tag(gql, "b")["id"]
    made = lead(gql, "x@example.com", ownerId=ann, tagIds=[a])
    gql.data(UPDATE_LEAD, {"id": made["id"], "input": {"ownerId": bob, "tagIds": [b, a]}})
    gql.data(
        UPDATE_LEAD, {"id": made["id"], "input": {"ownerId": bob, "tagIds": [a, b]}}
    )  # no change
    gql.data(UPDATE_LEAD, {"id": made["id"], "input": {"tagIds": []}})
    customer = client(gql, "c@example.com", tagIds=[b])
    gql.data(UPDATE_CLIENT, {"id": customer["id"], "input": {"ownerId": ann}})

    events = history(gql, made["id"])
    assert [e["type"] for e in events] == ["LEAD_CREATED", "LEAD_UPDATED", "LEAD_UPDATED"]
    assert {"field": "ownerId", "from": None, "to": ann} in events[0]["changes"]
    assert events[0]["changes"][-1] == {"field": "tagIds", "from": None, "to": [a]}
    assert events[1]["changes"] == [
        {"field": "ownerId", "from": ann, "to": bob},
        {"field": "tagIds", "from": [a], "to": [a, b]},
    ]
    assert events[2]["changes"] == [{"field": "tagIds", "from": [a, b], "to": None}]
    client_events = history(gql, customer["id"])
    assert client_events[0]["changes"][-1] == {"field": "tagIds", "from": None, "to": [b]}
    assert client_events[1] == {
        "type": "CLIENT_UPDATED",
        "changes": [{"field": "ownerId", "from": None, "to": ann}],
    }


# ------------------------------------------------------------------ conversion


def test_a_new_client_takes_the_converted_leads_owner_and_tags(
    server: LiveServer, gql: GraphQLClient
) -> None:
    ann = member(server, "ann@example.com")
    a = tag(gql, "a")
    made = lead(gql, "x@example.com", firstName="X", lastName="Y", ownerId=ann, tagIds=[a["id"]])

    converted = gql.data(CONVERT_LEAD, {"id": made["id"]})["convertLead"]

    assert converted["userErrors"] == []
    assert converted["client"]["owner"]["id"] == ann
    assert converted["client"]["tags"] == [ref(a)]
    created = history(gql, converted["client"]["id"])[0]
    assert {"field": "tagIds", "from": None, "to": [a["id"]]} in created["changes"]


def test_an_existing_client_keeps_its_owner_and_gains_the_leads_tags(
    server: LiveServer, gql: GraphQLClient
) -> None:
    ann, bob = member(server, "ann@example.com"), member(server, "bob@example.com")
    a, b = tag(gql, "a"), tag(gql, "b")
    owned = client(gql, "owned@example.com", ownerId=bob, tagIds=[b["id"]])
    ownerless = client(gql, "free@example.com")
    first = lead(gql, "x@example.com", ownerId=ann, tagIds=[a["id"]])
    second = lead(gql, "y@example.com", ownerId=ann, tagIds=[a["id"]])

    into_owned = gql.data(CONVERT_LEAD, {"id": first["id"], "input": {"clientId": owned["id"]}})
    into_free = gql.data(CONVERT_LEAD, {"id": second["id"], "input": {"clientId": ownerless["id"]}})

    assert into_owned["convertLead"]["client"]["owner"]["id"] == bob
    assert into_owned["convertLead"]["client"]["tags"] == [ref(a), ref(b)]
    assert into_free["convertLead"]["client"]["owner"]["id"] == ann
    assert into_free["convertLead"]["client"]["tags"] == [ref(a)]
    assert {"field": "tagIds", "from": [b["id"]], "to": [a["id"], b["id"]]} in history(
        gql, owned["id"]
    )[-1]["changes"]


# ------------------------------------------------------------------ no N+1

PAGE_WITH_OWNERS_AND_TAGS = """
query ($first: Int!) {
  leads(first: $first) { nodes { id owner { email } tags { name color } } }
}
"""
CLIENT_PAGE = """
query { clients(first: 100) { nodes { email owner { email } tags { name } } } }
"""


def test_a_100_lead_page_with_owners_and_tags_runs_a_fixed_number_of_statements(
    server: LiveServer, gql: GraphQLClient, count_queries: Any
) -> None:
    owners = [member(server, f"m{n}@example.com") for n in range(3)]
    tags = [tag(gql, f"t{n}")["id"] for n in range(3)]
    ids = create_leads(server, *(lead_values() for _ in range(100)))
    for n, lead_id in enumerate(ids):
        gql.data(
            UPDATE_LEAD,
            {"id": lead_id, "input": {"ownerId": owners[n % 3], "tagIds": tags[: n % 4]}},
        )

    with count_queries() as small:
        page10 = gql.data(PAGE_WITH_OWNERS_AND_TAGS, {"first": 10})
    with count_queries() as large:
        page100 = gql.data(PAGE_WITH_OWNERS_AND_TAGS, {"first": 100})

    assert len(page10["leads"]["nodes"]) == 10
    nodes = page100["leads"]["nodes"]
    assert len(nodes) == 100
    assert all(n["owner"] for n in nodes)
    assert sum(len(n["tags"]) for n in nodes) == sum(n % 4 for n in range(100))
    # The credential lookup, the page, one batch of users, one batch of tags.
    assert (small.count, large.count) == (4, 4)

    for n in range(20):
        client(gql, f"c{n}@example.com", ownerId=owners[n % 3], tagIds=tags[: n % 4])
    with count_queries() as clients:
        found = gql.data(CLIENT_PAGE)["clients"]["nodes"]
    assert len(found) == 20
    assert all(n["owner"] for n in found)
    assert clients.count == 4
