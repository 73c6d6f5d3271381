"""Sign-up, email verification, sign-in (password and passwordless), sessions and sign-out,
end to end through a real SMTP server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import GraphQLClient, LiveServer, Mailbox

SIGN_UP = """
mutation ($input: SignUpInput!) {
  signUp(input: $input) { sent user { id } userErrors { field message code retryAfter } }
}
"""
AUTH_FIELDS = """
  token
  session { id current expiresAt workspace { name } }
  viewer { role user { email emailVerified } workspace { id name } }
  userErrors { field message code retryAfter }
"""
VERIFY = (
    f"mutation ($input: VerifyEmailInput!) {{ verifyEmail(input: $input) {{ {AUTH_FIELDS} }} }}"
)
SIGN_IN = f"mutation ($input: SignInInput!) {{ signIn(input: $input) {{ {AUTH_FIELDS} }} }}"
REQUEST_CODE = """
mutation ($input: RequestSignInCodeInput!) {
  requestSignInCode(input: $input) { sent userErrors { field message code retryAfter } }
}
"""
SIGN_IN_WITH_CODE = (
    "mutation ($input: SignInWithCodeInput!) {"
    f" signInWithCode(input: $input) {{ {AUTH_FIELDS} }} }}"
)
SIGN_OUT = "mutation { signOut { session { id revokedAt } userErrors { code } } }"
ME = "{ me { role user { email name } apiKey { name } workspace { name } } }"
SESSIONS = "{ sessions { id current revokedAt userAgent workspace { name } } }"
REVOKE_SESSION = """
mutation ($id: ID!) {
  revokeSession(id: $id) { session { id revokedAt } userErrors { field message code } }
}
"""
PASSWORD = "correct horse battery"


def sign_up(anon: GraphQLClient, email: str = "ada@example.com", **extra: Any) -> dict[str, Any]:
    values = {
        "email": email,
        "password": PASSWORD,
        "name": "Ada Lovelace",
        "workspaceName": "Analytical Engines",
    } | extra
    payload: dict[str, Any] = anon.data(SIGN_UP, {"input": values})["signUp"]
    return payload


def verified_session(anon: GraphQLClient, mailbox: Mailbox, email: str = "ada@example.com") -> str:
    sign_up(anon, email)
    payload = anon.data(VERIFY, {"input": {"email": email, "code": mailbox.code_for(email)}})
    token: str = payload["verifyEmail"]["token"]
    return token


def test_the_whole_path_sign_up_verify_sign_in_sign_out(
    anon: GraphQLClient, mailbox: Mailbox, http: httpx.Client
) -> None:
    # Sign up: an unverified user and a workspace it owns; a code arrives by email.
    signed_up = sign_up(anon)
    assert signed_up == {"sent": True, "user": None, "userErrors": []}
    [message] = mailbox.to("ada@example.com")
    assert message["Subject"].startswith("Your Leadgraph code: ")

    # Verify: a session in the new workspace, as its OWNER.
    code = mailbox.code_for("ada@example.com")
    verified = anon.data(VERIFY, {"input": {"email": "ada@example.com", "code": code}})[
        "verifyEmail"
    ]
    assert verified["userErrors"] == []
    assert verified["token"].startswith("lgs_")
    assert verified["viewer"]["role"] == "OWNER"
    assert verified["viewer"]["user"] == {"email": "ada@example.com", "emailVerified": True}
    assert verified["session"]["current"] is True
    assert verified["session"]["workspace"] == {"name": "Analytical Engines"}

    # The session token works.
    session = anon.as_(verified["token"])
    assert session.data(ME)["me"] == {
        "role": "OWNER",
        "user": {"email": "ada@example.com", "name": "Ada Lovelace"},
        "apiKey": None,
        "workspace": {"name": "Analytical Engines"},
    }
    assert session.data("{ leads { totalCount } }") == {"leads": {"totalCount": 0}}

    # Sign in again with the password: a second session.
    signed_in = anon.data(SIGN_IN, {"input": {"email": "ADA@example.com", "password": PASSWORD}})
    second = anon.as_(signed_in["signIn"]["token"])
    assert signed_in["signIn"]["userErrors"] == []
    assert len(second.data(SESSIONS)["sessions"]) == 2

    # Sign out: the token stops working at once, with a 401.
    out = second.data(SIGN_OUT)["signOut"]
    assert out["userErrors"] == []
    assert out["session"]["revokedAt"] is not None
    response = http.post(
        "/graphql",
        json={"query": "{ leads { totalCount } }"},
        headers={"Authorization": f"Bearer {signed_in['signIn']['token']}"},
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="leadgraph"'
    assert response.json()["errors"][0] == {
        "message": "The access token is invalid, expired or revoked; sign in again.",
        "locations": [{"line": 1, "column": 3}],
        "path": ["leads"],
        "extensions": {"code": "UNAUTHENTICATED"},
    }
    # The first session is unaffected.
    assert session.data("{ me { role } }") == {"me": {"role": "OWNER"}}


def test_a_code_works_once(anon: GraphQLClient, mailbox: Mailbox) -> None:
    sign_up(anon)
    code = mailbox.code_for("ada@example.com")
    first = anon.data(VERIFY, {"input": {"email": "ada@example.com", "code": code}})
    again = anon.data(VERIFY, {"input": {"email": "ada@example.com", "code": code}})
    assert first["verifyEmail"]["userErrors"] == []
    assert again["verifyEmail"]["token"] is None
    assert again["verifyEmail"]["userErrors"] == [
        {
            "field": ["input", "code"],
            "code": "INVALID_CODE",
            "retryAfter": None,
            "message": "The code is wrong, used or expired; ask for a new one.",
        }
    ]


def test_sign_in_failures_do_not_reveal_whether_the_email_exists(
    anon: GraphQLClient, mailbox: Mailbox
) -> None:
    verified_session(anon, mailbox)
    wrong_password = anon.data(
        SIGN_IN, {"input": {"email": "ada@example.com", "password": "not the password"}}
    )["signIn"]
    unknown_email = anon.data(
        SIGN_IN, {"input": {"email": "nobody@example.com", "password": "not the password"}}
    )["signIn"]
    malformed = anon.data(SIGN_IN, {"input": {"email": "nobody", "password": "x"}})["signIn"]
    expected = {
        "token": None,
        "session": None,
        "viewer": None,
        "userErrors": [
            {
                "field": None,
                "code": "INVALID_CREDENTIALS",
                "retryAfter": None,
                "message": "The email or the password is wrong.",
            }
        ],
    }
    assert wrong_password == unknown_email == malformed == expected


def test_an_unverified_account_cannot_sign_in_with_its_password(
    anon: GraphQLClient, mailbox: Mailbox
) -> None:
    sign_up(anon)
    payload = anon.data(SIGN_IN, {"input": {"email": "ada@example.com", "password": PASSWORD}})
    assert [e["code"] for e in payload["signIn"]["userErrors"]] == ["EMAIL_NOT_VERIFIED"]


def test_sign_up_validation(anon: GraphQLClient, mailbox: Mailbox) -> None:
    payload = anon.data(
        SIGN_UP,
        {"input": {"email": "bad", "password": "short", "name": " ", "workspaceName": ""}},
    )["signUp"]
    assert payload["user"] is None
    assert payload["sent"] is False
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
        (["input", "email"], "INVALID"),
        (["input", "password"], "INVALID"),
        (["input", "name"], "REQUIRED"),
        (["input", "workspaceName"], "REQUIRED"),
    ]
    too_long = anon.data(
        SIGN_UP,
        {
            "input": {
                "email": "a@example.com",
                "password": "x" * 129,
                "name": "A",
                "workspaceName": "W",
            }
        },
    )["signUp"]["userErrors"]
    assert too_long == [
        {
            "field": ["input", "password"],
            "code": "INVALID",
            "message": "String should have at most 128 characters",
            "retryAfter": None,
        }
    ]
    assert mailbox.messages == []


def test_signing_up_with_a_taken_address_answers_as_for_a_new_one(
    anon: GraphQLClient, mailbox: Mailbox, server: LiveServer
) -> None:
    # Given Ada's verified account
    token = verified_session(anon, mailbox)
    expire_cooldowns(server)  # a minute later
    mailbox.clear()
    # When someone signs up with her address, and someone else with a new one
    taken = sign_up(anon, password="someone else's password", workspaceName="Hijack")
    new = sign_up(anon, "bob@example.com")
    # Then both answers are the same
    assert taken == new == {"sent": True, "user": None, "userErrors": []}
    # and Ada is emailed a notice instead of a verification code
    [notice] = mailbox.to("ada@example.com")
    assert notice["Subject"] == "Your Leadgraph account already exists"
    assert "already has an account. Nothing was changed." in notice.get_content()
    # whose code signs her in where the sign-up asks for its code, into her own workspace
    code = mailbox.code_for("ada@example.com")
    verified = anon.data(VERIFY, {"input": {"email": "ada@example.com", "code": code}})
    assert verified["verifyEmail"]["userErrors"] == []
    assert verified["verifyEmail"]["viewer"]["workspace"]["name"] == "Analytical Engines"
    # Nothing else changed: her password and her session still work, no workspace was made.
    ok = anon.data(SIGN_IN, {"input": {"email": "ada@example.com", "password": PASSWORD}})
    assert ok["signIn"]["userErrors"] == []
    assert anon.as_(token).data("{ me { role } }") == {"me": {"role": "OWNER"}}
    hijack = anon.data(
        SIGN_IN, {"input": {"email": "ada@example.com", "password": "someone else's password"}}
    )
    assert [e["code"] for e in hijack["signIn"]["userErrors"]] == ["INVALID_CREDENTIALS"]


def test_signing_up_again_within_a_minute_is_refused_alike_for_taken_and_new_addresses(
    anon: GraphQLClient, mailbox: Mailbox, server: LiveServer
) -> None:
    verified_session(anon, mailbox)
    expire_cooldowns(server)
    sign_up(anon)
    sign_up(anon, "bob@example.com")
    taken, new = sign_up(anon), sign_up(anon, "bob@example.com")
    for answer in (taken, new):
        assert answer["sent"] is False
        assert [(e["field"], e["code"]) for e in answer["userErrors"]] == [
            (["input", "email"], "RATE_LIMITED")
        ]


def signs_in_with(anon: GraphQLClient, password: str, email: str = "ada@example.com") -> bool:
    answer = anon.data(SIGN_IN, {"input": {"email": email, "password": password}})["signIn"]
    return answer["userErrors"] == []


def signs_in_by_code(anon: GraphQLClient, mailbox: Mailbox, email: str = "ada@example.com") -> str:
    mailbox.clear()
    anon.data(REQUEST_CODE, {"input": {"email": email}})
    code = mailbox.code_for(email)
    answer = anon.data(SIGN_IN_WITH_CODE, {"input": {"email": email, "code": code}})
    assert answer["signInWithCode"]["userErrors"] == []
    token: str = answer["signInWithCode"]["token"]
    return token


def test_an_unverified_sign_up_again_with_the_same_password_keeps_it(
    anon: GraphQLClient, mailbox: Mailbox, server: LiveServer
) -> None:
    sign_up(anon)
    expire_cooldowns(server)
    sign_up(anon, workspaceName="Hijack")
    code = mailbox.code_for("ada@example.com")
    verified = anon.data(VERIFY, {"input": {"email": "ada@example.com", "code": code}})
    assert verified["verifyEmail"]["viewer"]["workspace"]["name"] == "Analytical Engines"
    assert len(mailbox.to("ada@example.com")) == 2
    assert signs_in_with(anon, PASSWORD)


@pytest.mark.parametrize("first", ["owner", "someone else"])
def test_when_two_sign_ups_of_one_address_disagree_neither_password_is_kept(
    anon: GraphQLClient, mailbox: Mailbox, server: LiveServer, first: str
) -> None:
    # Whoever signs up first with an address it cannot read must not hold a password that
    # works once the owner verifies it, and must not be able to plant one after the owner.
    other = "someone else's password"
    sign_up(anon, password=PASSWORD if first == "owner" else other)
    expire_cooldowns(server)
    sign_up(anon, password=other if first == "owner" else PASSWORD)
    expire_cooldowns(server)
    sign_up(anon, password=other)  # agreeing with one of them again brings nothing back
    code = mailbox.code_for("ada@example.com")
    verified = anon.data(VERIFY, {"input": {"email": "ada@example.com", "code": code}})

    assert verified["verifyEmail"]["userErrors"] == []
    assert not signs_in_with(anon, other)
    assert not signs_in_with(anon, PASSWORD)
    assert anon.as_(signs_in_by_code(anon, mailbox)).data("{ me { role } }") == {
        "me": {"role": "OWNER"}
    }


def test_verifying_by_a_sign_in_code_drops_a_password_nobody_vouched_for(
    anon: GraphQLClient, mailbox: Mailbox
) -> None:
    # Someone signed up with the owner's address; the owner, who never did, signs in by code.
    sign_up(anon, password="someone else's password")
    token = signs_in_by_code(anon, mailbox)

    assert anon.as_(token).data("{ me { user { email } } }") == {
        "me": {"user": {"email": "ada@example.com"}}
    }
    assert not signs_in_with(anon, "someone else's password")


def test_passwordless_sign_in(anon: GraphQLClient, mailbox: Mailbox, server: LiveServer) -> None:
    verified_session(anon, mailbox)
    mailbox.clear()

    requested = anon.data(REQUEST_CODE, {"input": {"email": "ada@example.com"}})
    code = mailbox.code_for("ada@example.com")
    signed_in = anon.data(SIGN_IN_WITH_CODE, {"input": {"email": "ada@example.com", "code": code}})

    assert requested == {"requestSignInCode": {"sent": True, "userErrors": []}}
    assert signed_in["signInWithCode"]["userErrors"] == []
    assert anon.as_(signed_in["signInWithCode"]["token"]).data("{ me { role } }") == {
        "me": {"role": "OWNER"}
    }


def test_a_sign_in_code_for_an_unknown_email_is_not_sent_and_not_revealed(
    anon: GraphQLClient, mailbox: Mailbox
) -> None:
    answer = anon.data(REQUEST_CODE, {"input": {"email": "ghost@example.com"}})
    assert answer == {"requestSignInCode": {"sent": True, "userErrors": []}}
    assert mailbox.messages == []


def test_sessions_are_listed_and_revoked(anon: GraphQLClient, mailbox: Mailbox) -> None:
    first = anon.as_(verified_session(anon, mailbox))
    second_token = anon.data(
        SIGN_IN, {"input": {"email": "ada@example.com", "password": PASSWORD}}
    )["signIn"]["token"]

    sessions = first.data(SESSIONS)["sessions"]
    other = next(s for s in sessions if not s["current"])
    revoked = first.data(REVOKE_SESSION, {"id": other["id"]})["revokeSession"]

    assert [s["current"] for s in sessions] == [False, True]  # newest first
    assert revoked["userErrors"] == []
    assert revoked["session"]["revokedAt"] is not None
    assert anon.as_(second_token)("{ me { role } }", status=401)["errors"][0]["extensions"] == {
        "code": "UNAUTHENTICATED"
    }


def test_a_session_of_someone_else_cannot_be_revoked(anon: GraphQLClient, mailbox: Mailbox) -> None:
    ada = anon.as_(verified_session(anon, mailbox, "ada@example.com"))
    bob = anon.as_(verified_session(anon, mailbox, "bob@example.com"))
    bobs_session = bob.data(SESSIONS)["sessions"][0]["id"]
    assert ada.data(REVOKE_SESSION, {"id": bobs_session})["revokeSession"]["userErrors"] == [
        {"field": ["id"], "code": "NOT_FOUND", "message": "No session with this ID."}
    ]
    assert bob.data("{ me { role } }") == {"me": {"role": "OWNER"}}


def test_api_keys_have_no_sessions(gql: GraphQLClient) -> None:
    body = gql(SESSIONS)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    out = gql(SIGN_OUT)
    assert out["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def expire_cooldowns(server: LiveServer) -> None:
    """Moves every rate-limit window into the past, as if a minute had gone by."""
    from datetime import timedelta

    from sqlalchemy import update

    from db.models import RateLimit
    from db.types import utcnow

    async def expire() -> None:
        async with server.db.write() as session:
            await session.execute(
                update(RateLimit).values(window_start=utcnow() - timedelta(minutes=5))
            )

    server.run(expire())
