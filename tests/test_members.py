"""Members: invitations by email code, role changes, removal, the last OWNER, and who
created or changed each record."""

from __future__ import annotations

from typing import Any

from tests.conftest import GraphQLClient, Mailbox
from tests.test_auth_flows import PASSWORD, SIGN_IN, sign_up, signs_in_with, verified_session

INVITE = """
mutation ($input: InviteMemberInput!) {
  inviteMember(input: $input) { email role userErrors { field message code } }
}
"""
ACCEPT = """
mutation ($input: AcceptInvitationInput!) {
  acceptInvitation(input: $input) {
    token viewer { role workspace { name } user { email name } }
    userErrors { field message code }
  }
}
"""
MEMBERS = "{ members { role user { id email } } }"
UPDATE_ROLE = """
mutation ($userId: ID!, $role: Role!) {
  updateMemberRole(userId: $userId, role: $role) {
    member { role user { email } } userErrors { field message code }
  }
}
"""
REMOVE = """
mutation ($userId: ID!) {
  removeMember(userId: $userId) { removedUserId userErrors { field message code } }
}
"""
RENAME = """
mutation ($name: String!) {
  updateWorkspace(input: {name: $name}) { workspace { name } userErrors { field message code } }
}
"""


def invite_and_accept(
    owner: GraphQLClient,
    anon: GraphQLClient,
    mailbox: Mailbox,
    email: str,
    role: str,
    **extra: Any,
) -> dict[str, Any]:
    invited = owner.data(INVITE, {"input": {"email": email, "role": role}})["inviteMember"]
    assert invited == {"email": email, "role": role, "userErrors": []}
    code = mailbox.code_for(email)
    values = {"email": email, "code": code, "name": "New Person", "password": PASSWORD} | extra
    accepted: dict[str, Any] = anon.data(ACCEPT, {"input": values})["acceptInvitation"]
    return accepted


def member_id(client: GraphQLClient, email: str) -> str:
    return next(
        m["user"]["id"] for m in client.data(MEMBERS)["members"] if m["user"]["email"] == email
    )


def test_a_new_person_accepts_an_invitation(anon: GraphQLClient, mailbox: Mailbox) -> None:
    owner = anon.as_(verified_session(anon, mailbox))

    accepted = invite_and_accept(owner, anon, mailbox, "new@example.com", "MEMBER")

    assert accepted["userErrors"] == []
    assert accepted["viewer"] == {
        "role": "MEMBER",
        "workspace": {"name": "Analytical Engines"},
        "user": {"email": "new@example.com", "name": "New Person"},
    }
    assert "Analytical Engines" in mailbox.to("new@example.com")[0].get_content()
    member = anon.as_(accepted["token"])
    assert member.data("{ me { role } }") == {"me": {"role": "MEMBER"}}
    # They can sign in with the password they chose.
    signed_in = anon.data(SIGN_IN, {"input": {"email": "new@example.com", "password": PASSWORD}})
    assert signed_in["signIn"]["userErrors"] == []
    assert sorted(m["role"] for m in owner.data(MEMBERS)["members"]) == ["MEMBER", "OWNER"]


def test_a_new_person_must_choose_a_name_and_password(
    anon: GraphQLClient, mailbox: Mailbox
) -> None:
    owner = anon.as_(verified_session(anon, mailbox))
    owner.data(INVITE, {"input": {"email": "new@example.com", "role": "VIEWER"}})
    code = mailbox.code_for("new@example.com")

    missing = anon.data(ACCEPT, {"input": {"email": "new@example.com", "code": code}})
    ok = anon.data(
        ACCEPT,
        {"input": {"email": "new@example.com", "code": code, "name": "Vi", "password": PASSWORD}},
    )

    assert missing["acceptInvitation"]["userErrors"] == [
        {"field": ["input", "name"], "code": "REQUIRED", "message": "A new member needs a name."},
        {
            "field": ["input", "password"],
            "code": "REQUIRED",
            "message": "A new member needs a password.",
        },
    ]
    assert ok["acceptInvitation"]["viewer"]["role"] == "VIEWER"  # the code was not used up


def test_an_existing_user_joins_a_second_workspace(anon: GraphQLClient, mailbox: Mailbox) -> None:
    owner = anon.as_(verified_session(anon, mailbox, "owner@example.com"))
    verified_session(anon, mailbox, "bob@example.com")  # Bob has his own workspace

    accepted = invite_and_accept(
        owner, anon, mailbox, "bob@example.com", "ADMIN", name=None, password=None
    )

    assert accepted["userErrors"] == []
    assert accepted["viewer"]["role"] == "ADMIN"
    assert accepted["viewer"]["user"]["name"] == "Ada Lovelace"  # his name is unchanged


def test_accepting_an_invitation_sets_the_password_of_an_unverified_account(
    anon: GraphQLClient, mailbox: Mailbox
) -> None:
    # Someone signed up with Bob's address (unverified); reading the invitation proves it is
    # Bob's, and the password he gives there is the one that works, not theirs.
    owner = anon.as_(verified_session(anon, mailbox, "owner@example.com"))
    sign_up(anon, "bob@example.com", password="someone else's password")

    accepted = invite_and_accept(owner, anon, mailbox, "bob@example.com", "MEMBER")

    assert accepted["userErrors"] == []
    assert signs_in_with(anon, PASSWORD, "bob@example.com")
    assert not signs_in_with(anon, "someone else's password", "bob@example.com")


def test_inviting_a_member_again_is_taken(anon: GraphQLClient, mailbox: Mailbox) -> None:
    owner = anon.as_(verified_session(anon, mailbox))
    invite_and_accept(owner, anon, mailbox, "new@example.com", "MEMBER")
    again = owner.data(INVITE, {"input": {"email": "new@example.com", "role": "ADMIN"}})
    assert again["inviteMember"]["userErrors"] == [
        {
            "field": ["input", "email"],
            "code": "TAKEN",
            "message": "This person is already a member.",
        }
    ]


def test_roles_change_and_members_are_removed(anon: GraphQLClient, mailbox: Mailbox) -> None:
    owner = anon.as_(verified_session(anon, mailbox))
    member = anon.as_(invite_and_accept(owner, anon, mailbox, "m@example.com", "MEMBER")["token"])
    m_id = member_id(owner, "m@example.com")

    promoted = owner.data(UPDATE_ROLE, {"userId": m_id, "role": "ADMIN"})["updateMemberRole"]
    assert promoted == {
        "member": {"role": "ADMIN", "user": {"email": "m@example.com"}},
        "userErrors": [],
    }
    # The member's existing session follows the new role at once.
    assert member.data("{ me { role } }") == {"me": {"role": "ADMIN"}}

    removed = owner.data(REMOVE, {"userId": m_id})["removeMember"]
    assert removed == {"removedUserId": m_id, "userErrors": []}
    # ...and stops working when they are removed.
    assert member("{ me { role } }", status=401)["errors"][0]["extensions"]["code"] == (
        "UNAUTHENTICATED"
    )
    assert [m["user"]["email"] for m in owner.data(MEMBERS)["members"]] == ["ada@example.com"]


def test_the_last_owner_cannot_be_removed_or_demoted(anon: GraphQLClient, mailbox: Mailbox) -> None:
    owner = anon.as_(verified_session(anon, mailbox))
    me = member_id(owner, "ada@example.com")
    last_owner = {
        "code": "LAST_OWNER",
        "message": "The workspace must keep at least one OWNER: make someone else an OWNER first.",
    }

    demoted = owner.data(UPDATE_ROLE, {"userId": me, "role": "ADMIN"})["updateMemberRole"]
    removed = owner.data(REMOVE, {"userId": me})["removeMember"]

    assert demoted == {"member": None, "userErrors": [{"field": ["role"], **last_owner}]}
    assert removed == {"removedUserId": None, "userErrors": [{"field": ["userId"], **last_owner}]}

    # With a second owner, the first may step down.
    invite_and_accept(owner, anon, mailbox, "co@example.com", "OWNER")
    stepped = owner.data(UPDATE_ROLE, {"userId": me, "role": "ADMIN"})["updateMemberRole"]
    assert stepped["userErrors"] == []


def test_unknown_members(anon: GraphQLClient, mailbox: Mailbox) -> None:
    owner = anon.as_(verified_session(anon, mailbox))
    import base64

    ghost = base64.b64encode(b"User:9999").decode()
    assert owner.data(REMOVE, {"userId": ghost})["removeMember"]["userErrors"] == [
        {"field": ["userId"], "code": "NOT_FOUND", "message": "No member with this ID."}
    ]
    assert owner.data(REMOVE, {"userId": "junk"})["removeMember"]["userErrors"] == [
        {"field": ["userId"], "code": "INVALID", "message": "This is not a valid ID."}
    ]


def test_the_owner_renames_the_workspace(anon: GraphQLClient, mailbox: Mailbox) -> None:
    owner = anon.as_(verified_session(anon, mailbox))
    assert owner.data(RENAME, {"name": "  Difference Engines "})["updateWorkspace"] == {
        "workspace": {"name": "Difference Engines"},
        "userErrors": [],
    }
    assert owner.data(RENAME, {"name": " "})["updateWorkspace"]["userErrors"] == [
        {
            "field": ["input", "name"],
            "code": "REQUIRED",
            "message": "This field is required and cannot be blank.",
        }
    ]


ACTORS = """
query ($id: ID!) {
  lead(id: $id) {
    createdBy { __typename ... on User { email } ... on ApiKey { name } }
    updatedBy { __typename ... on User { email } ... on ApiKey { name } }
  }
}
"""


def test_leads_record_who_created_and_changed_them(
    anon: GraphQLClient, gql: GraphQLClient, mailbox: Mailbox
) -> None:
    # Created with the suite's API key, in the default workspace...
    lead_id = gql.data('mutation { createLead(input: {email: "l@example.com"}) { lead { id } } }')[
        "createLead"
    ]["lead"]["id"]
    assert gql.data(ACTORS, {"id": lead_id})["lead"] == {
        "createdBy": {"__typename": "ApiKey", "name": "tests"},
        "updatedBy": {"__typename": "ApiKey", "name": "tests"},
    }
    # ...then changed by a member signed in with a session.
    member = anon.as_(invite_and_accept(gql, anon, mailbox, "m@example.com", "MEMBER")["token"])
    member.data(
        'mutation ($id: ID!) { updateLead(id: $id, input: {city: "Rome"}) { lead { id } } }',
        {"id": lead_id},
    )
    assert gql.data(ACTORS, {"id": lead_id})["lead"] == {
        "createdBy": {"__typename": "ApiKey", "name": "tests"},
        "updatedBy": {"__typename": "User", "email": "m@example.com"},
    }
