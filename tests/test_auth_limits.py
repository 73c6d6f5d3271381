"""Sign-in limits cannot be used to lock an account's owner out: wrong passwords are counted
per client address and per address and account, and the account-wide guard spares addresses
that did not fail on it. Clients here connect from other loopback addresses (127.0.0.x), which
the server sees as their client address."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import GraphQLClient, LiveServer, Mailbox
from tests.test_auth_flows import (
    PASSWORD,
    REQUEST_CODE,
    SIGN_IN,
    SIGN_IN_WITH_CODE,
    verified_session,
)

EMAIL = "ada@example.com"
WRONG = "not the password"
From = Callable[[str], GraphQLClient]


@pytest.fixture
def from_address(server: LiveServer) -> Iterator[From]:
    """Anonymous clients, each connecting from the loopback address it is given."""
    opened: list[httpx.Client] = []

    def client(address: str) -> GraphQLClient:
        transport = httpx.HTTPTransport(local_address=address)
        http = httpx.Client(base_url=server.url, transport=transport, timeout=30)
        opened.append(http)
        return GraphQLClient(http, None)

    yield client
    for http in opened:
        http.close()


def sign_in(client: GraphQLClient, password: str) -> dict[str, Any]:
    payload: dict[str, Any] = client.data(
        SIGN_IN, {"input": {"email": EMAIL, "password": password}}
    )["signIn"]
    return payload


def codes(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


def fail_ten_times(client: GraphQLClient) -> None:
    for _ in range(10):
        assert codes(sign_in(client, WRONG)) == ["INVALID_CREDENTIALS"]


def test_wrong_passwords_from_one_address_do_not_lock_the_owner_out_elsewhere(
    anon: GraphQLClient, mailbox: Mailbox, from_address: From
) -> None:
    # Given Ada's account, and ten wrong passwords for it from address A
    verified_session(anon, mailbox)
    attacker, owner = from_address("127.0.0.2"), from_address("127.0.0.3")
    fail_ten_times(attacker)
    # Then A is refused, even with the right password
    [limited] = sign_in(attacker, WRONG)["userErrors"]
    assert limited["code"] == "RATE_LIMITED"
    assert 1 <= limited["retryAfter"] <= 60
    assert codes(sign_in(attacker, PASSWORD)) == ["RATE_LIMITED"]
    # but Ada signs in from address B
    signed_in = sign_in(owner, PASSWORD)
    assert signed_in["userErrors"] == []
    assert anon.as_(signed_in["token"]).data("{ me { role } }") == {"me": {"role": "OWNER"}}
    # and A is still refused.
    assert codes(sign_in(attacker, PASSWORD)) == ["RATE_LIMITED"]


def test_the_emailed_code_sign_in_stays_open_after_wrong_passwords(
    anon: GraphQLClient, mailbox: Mailbox, from_address: From
) -> None:
    verified_session(anon, mailbox)
    mailbox.clear()
    here = from_address("127.0.0.2")
    fail_ten_times(here)
    assert codes(sign_in(here, PASSWORD)) == ["RATE_LIMITED"]
    # Even from the address whose passwords are refused, a code signs in.
    requested = here.data(REQUEST_CODE, {"input": {"email": EMAIL}})["requestSignInCode"]
    assert requested == {"sent": True, "userErrors": []}
    code = mailbox.code_for(EMAIL)
    signed_in = here.data(SIGN_IN_WITH_CODE, {"input": {"email": EMAIL, "code": code}})
    assert signed_in["signInWithCode"]["userErrors"] == []


def test_under_attack_an_address_that_failed_on_the_account_waits_and_a_clean_one_does_not(
    anon: GraphQLClient, mailbox: Mailbox, from_address: From
) -> None:
    # Given ten failures on Ada's account (the account-wide threshold)
    verified_session(anon, mailbox)
    fail_ten_times(from_address("127.0.0.2"))
    # When another address fails once, it is refused from then on
    second = from_address("127.0.0.3")
    assert codes(sign_in(second, WRONG)) == ["INVALID_CREDENTIALS"]
    assert codes(sign_in(second, PASSWORD)) == ["RATE_LIMITED"]
    # while an address that has not failed on the account signs in.
    assert sign_in(from_address("127.0.0.4"), PASSWORD)["userErrors"] == []


def test_right_passwords_are_not_counted_as_failures(
    anon: GraphQLClient, mailbox: Mailbox, from_address: From
) -> None:
    verified_session(anon, mailbox)
    client = from_address("127.0.0.2")
    for _ in range(11):
        assert sign_in(client, PASSWORD)["userErrors"] == []
    # The ten failures the address may have are all still there.
    fail_ten_times(client)
    assert codes(sign_in(client, WRONG)) == ["RATE_LIMITED"]
