"""One-time codes (expiry, reuse, the five-try limit, one a minute) and rate limits per client
address and per address and email (more in test_auth_limits.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from db.models import EmailCode
from db.types import utcnow
from tests.conftest import GraphQLClient, LiveServer, Mailbox
from tests.test_auth_flows import (
    PASSWORD,
    REQUEST_CODE,
    SIGN_IN,
    SIGN_IN_WITH_CODE,
    VERIFY,
    expire_cooldowns,
    sign_up,
    verified_session,
)

EMAIL = "ada@example.com"


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def errors_of(payload: dict) -> list[str]:  # type: ignore[type-arg]
    return [e["code"] for e in payload["userErrors"]]


def test_a_code_expires_after_ten_minutes(
    anon: GraphQLClient, mailbox: Mailbox, server: LiveServer
) -> None:
    sign_up(anon)
    code = mailbox.code_for(EMAIL)

    async def age() -> None:
        async with server.db.write() as session:
            await session.execute(
                update(EmailCode).values(
                    created_at=utcnow() - timedelta(minutes=10, seconds=1),
                    expires_at=utcnow() - timedelta(seconds=1),
                )
            )

    server.run(age())
    payload = anon.data(VERIFY, {"input": {"email": EMAIL, "code": code}})["verifyEmail"]
    assert errors_of(payload) == ["INVALID_CODE"]


def test_codes_are_stored_hashed(anon: GraphQLClient, mailbox: Mailbox, server: LiveServer) -> None:
    sign_up(anon)
    code = mailbox.code_for(EMAIL)

    async def stored() -> list[str]:
        from sqlalchemy import select

        async with server.db.read() as conn:
            rows = (await conn.execute(select(EmailCode.__table__))).all()  # type: ignore[attr-defined]
        return [f"{r.code_hash}{r.salt}" for r in rows]

    [row] = server.run(stored())
    assert code not in row


def test_the_fifth_wrong_try_kills_the_code(anon: GraphQLClient, mailbox: Mailbox) -> None:
    sign_up(anon)
    code = mailbox.code_for(EMAIL)
    for _ in range(5):
        bad = anon.data(VERIFY, {"input": {"email": EMAIL, "code": wrong(code)}})["verifyEmail"]
        assert errors_of(bad) == ["INVALID_CODE"]
    right_too_late = anon.data(VERIFY, {"input": {"email": EMAIL, "code": code}})["verifyEmail"]
    assert errors_of(right_too_late) == ["INVALID_CODE"]


def test_four_wrong_tries_leave_the_code_usable(anon: GraphQLClient, mailbox: Mailbox) -> None:
    sign_up(anon)
    code = mailbox.code_for(EMAIL)
    for _ in range(4):
        anon.data(VERIFY, {"input": {"email": EMAIL, "code": wrong(code)}})
    ok = anon.data(VERIFY, {"input": {"email": EMAIL, "code": code}})["verifyEmail"]
    assert ok["userErrors"] == []


def test_a_code_is_six_digits(anon: GraphQLClient, mailbox: Mailbox) -> None:
    sign_up(anon)
    payload = anon.data(VERIFY, {"input": {"email": EMAIL, "code": "12 34"}})["verifyEmail"]
    assert payload["userErrors"][0]["field"] == ["input", "code"]
    assert payload["userErrors"][0]["code"] == "INVALID"


def test_asking_for_another_code_within_a_minute_is_refused(
    anon: GraphQLClient, mailbox: Mailbox, server: LiveServer
) -> None:
    verified_session(anon, mailbox)
    mailbox.clear()
    first = anon.data(REQUEST_CODE, {"input": {"email": EMAIL}})["requestSignInCode"]
    second = anon.data(REQUEST_CODE, {"input": {"email": EMAIL}})["requestSignInCode"]
    # The same answer for an email without an account: nothing is revealed.
    ghost = [anon.data(REQUEST_CODE, {"input": {"email": "ghost@example.com"}}) for _ in range(2)]

    assert first == {"sent": True, "userErrors": []}
    [error] = second["userErrors"]
    assert second["sent"] is False
    assert error["code"] == "RATE_LIMITED"
    assert error["field"] == ["input", "email"]
    assert 1 <= error["retryAfter"] <= 60
    assert ghost[1]["requestSignInCode"]["userErrors"][0]["code"] == "RATE_LIMITED"
    assert len(mailbox.to(EMAIL)) == 1

    expire_cooldowns(server)
    third = anon.data(REQUEST_CODE, {"input": {"email": EMAIL}})["requestSignInCode"]
    assert third == {"sent": True, "userErrors": []}


def test_a_new_code_replaces_the_old_one(
    anon: GraphQLClient, mailbox: Mailbox, server: LiveServer
) -> None:
    verified_session(anon, mailbox)
    mailbox.clear()
    anon.data(REQUEST_CODE, {"input": {"email": EMAIL}})
    old = mailbox.code_for(EMAIL)
    expire_cooldowns(server)
    anon.data(REQUEST_CODE, {"input": {"email": EMAIL}})
    new = mailbox.code_for(EMAIL)
    if new == old:  # one chance in a million
        return
    stale = anon.data(SIGN_IN_WITH_CODE, {"input": {"email": EMAIL, "code": old}})
    fresh = anon.data(SIGN_IN_WITH_CODE, {"input": {"email": EMAIL, "code": new}})
    assert errors_of(stale["signInWithCode"]) == ["INVALID_CODE"]
    assert fresh["signInWithCode"]["userErrors"] == []


def test_sign_in_failures_are_limited_per_email_from_one_address(
    anon: GraphQLClient, mailbox: Mailbox
) -> None:
    verified_session(anon, mailbox)
    answers = [
        anon.data(SIGN_IN, {"input": {"email": EMAIL, "password": "wrong password!"}})["signIn"]
        for _ in range(11)
    ]
    assert [errors_of(a) for a in answers[:10]] == [["INVALID_CREDENTIALS"]] * 10
    [limited] = answers[10]["userErrors"]
    assert limited["code"] == "RATE_LIMITED"
    assert 1 <= limited["retryAfter"] <= 60
    assert limited["message"] == f"Too many attempts; try again in {limited['retryAfter']} seconds."
    # Even the right password waits out the window.
    right = anon.data(SIGN_IN, {"input": {"email": EMAIL, "password": PASSWORD}})["signIn"]
    assert errors_of(right) == ["RATE_LIMITED"]


def test_sign_in_attempts_are_limited_per_client_address(
    anon: GraphQLClient, mailbox: Mailbox, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server.settings, "auth_rate_limit_per_address_per_minute", 10)
    verified_session(anon, mailbox)
    expire_cooldowns(server)
    for n in range(10):
        payload = anon.data(
            SIGN_IN, {"input": {"email": f"user{n}@example.com", "password": "whatever!!"}}
        )["signIn"]
        assert errors_of(payload) == ["INVALID_CREDENTIALS"]
    # A different email, the same address: refused.
    blocked = anon.data(SIGN_IN, {"input": {"email": EMAIL, "password": PASSWORD}})["signIn"]
    assert errors_of(blocked) == ["RATE_LIMITED"]
    # After the window, it works again.
    expire_cooldowns(server)
    ok = anon.data(SIGN_IN, {"input": {"email": EMAIL, "password": PASSWORD}})["signIn"]
    assert ok["userErrors"] == []
