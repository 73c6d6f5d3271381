"""When the mail server is down or refuses a message, the mutations that email a code say so
(EMAIL_NOT_SENT with the request id, the cause in the server log), and asking again works at
once: a send that failed does not start the one-code-a-minute cooldown."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from resolvers.mail import SmtpMailer
from tests.conftest import GraphQLClient, LiveServer, Mailbox
from tests.processes import free_port
from tests.test_auth_flows import (
    PASSWORD,
    REQUEST_CODE,
    SIGN_IN_WITH_CODE,
    SIGN_UP,
    VERIFY,
    verified_session,
)
from tests.test_members import ACCEPT, INVITE

EMAIL = "ada@example.com"
NOT_SENT = "The email with the code could not be sent; try again in a few minutes."
SIGN_UP_INPUT = {
    "email": EMAIL,
    "password": PASSWORD,
    "name": "Ada Lovelace",
    "workspaceName": "Analytical Engines",
}


class Busy:
    """An SMTP server that takes the connection and then turns the message away."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "451 4.3.0 Mail server busy, try again later"


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    controller = Controller(Busy(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port
    controller.stop()


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A loopback port that is bound but not listening: a connection is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


class Mail:
    """Switches the live server's mail between the test mailbox and a failing server."""

    def __init__(self, server: LiveServer, port: int, cause: str) -> None:
        self.cause = cause  # what the server log must name
        self.state = server.app.state
        self.working = self.state.mailer
        self.failing = SmtpMailer(server.settings.model_copy(update={"smtp_port": port}))

    def fail(self) -> None:
        self.state.mailer = self.failing

    def work(self) -> None:
        self.state.mailer = self.working


@pytest.fixture(params=["down", "busy"])
def mail(request: pytest.FixtureRequest, server: LiveServer, mailbox: Mailbox) -> Iterator[Mail]:
    """Mail that fails once fail() is called: a server that is down, or one that refuses."""
    if request.param == "down":
        mail = Mail(server, request.getfixturevalue("closed_port"), "SMTPConnectError")
    else:
        mail = Mail(server, request.getfixturevalue("busy_port"), "451")
    try:
        yield mail
    finally:
        mail.work()


def post(
    http: httpx.Client, query: str, variables: dict[str, Any], token: str = ""
) -> httpx.Response:
    auth = f"Bearer {token}" if token else ""
    return http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": auth, "X-Request-ID": "mail-fails"},
    )


def assert_not_sent(response: httpx.Response, field: str) -> None:
    assert response.status_code == 200
    assert "Traceback" not in response.text
    assert response.json()["errors"] == [
        {
            "message": NOT_SENT,
            "locations": [{"line": 3, "column": 3}],
            "path": [field],
            "extensions": {"code": "EMAIL_NOT_SENT", "requestId": "mail-fails"},
        }
    ]


def test_sign_up_says_the_email_was_not_sent_and_logs_why(
    mail: Mail, http: httpx.Client, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    mail.fail()
    assert_not_sent(post(http, SIGN_UP, {"input": SIGN_UP_INPUT}), "signUp")
    assert mailbox.to(EMAIL) == []
    [record] = [r for r in caplog.records if r.name == "leadgraph.mail"]
    assert record.levelname == "ERROR"
    assert f"127.0.0.1:{mail.failing.settings.smtp_port}" in record.getMessage()
    assert mail.cause in record.getMessage()
    assert not [r for r in caplog.records if r.name == "leadgraph.errors"]  # not unexpected


def test_signing_up_again_right_after_a_failed_send_works(
    mail: Mail, http: httpx.Client, anon: GraphQLClient, mailbox: Mailbox
) -> None:
    mail.fail()
    assert_not_sent(post(http, SIGN_UP, {"input": SIGN_UP_INPUT}), "signUp")
    mail.work()

    again = anon.data(SIGN_UP, {"input": SIGN_UP_INPUT})["signUp"]
    assert again["userErrors"] == []
    code = mailbox.code_for(EMAIL)
    verified = anon.data(VERIFY, {"input": {"email": EMAIL, "code": code}})["verifyEmail"]
    assert verified["userErrors"] == []
    assert verified["token"].startswith("lgs_")


def test_a_sign_in_code_can_be_asked_for_again_right_after_a_failed_send(
    mail: Mail, http: httpx.Client, anon: GraphQLClient, mailbox: Mailbox
) -> None:
    verified_session(anon, mailbox, EMAIL)
    mailbox.clear()
    mail.fail()
    assert_not_sent(post(http, REQUEST_CODE, {"input": {"email": EMAIL}}), "requestSignInCode")
    mail.work()

    again = anon.data(REQUEST_CODE, {"input": {"email": EMAIL}})["requestSignInCode"]
    assert again == {"sent": True, "userErrors": []}
    code = mailbox.code_for(EMAIL)
    signed_in = anon.data(SIGN_IN_WITH_CODE, {"input": {"email": EMAIL, "code": code}})
    assert signed_in["signInWithCode"]["token"].startswith("lgs_")


def test_an_invitation_can_be_sent_again_right_after_a_failed_send(
    mail: Mail, http: httpx.Client, anon: GraphQLClient, mailbox: Mailbox
) -> None:
    owner = verified_session(anon, mailbox, EMAIL)
    invite = {"input": {"email": "new@example.com", "role": "MEMBER"}}
    mail.fail()
    assert_not_sent(post(http, INVITE, invite, owner), "inviteMember")
    mail.work()

    again = anon.as_(owner).data(INVITE, invite)["inviteMember"]
    assert again == {"email": "new@example.com", "role": "MEMBER", "userErrors": []}
    code = mailbox.code_for("new@example.com")
    accept = {"email": "new@example.com", "code": code, "name": "New", "password": PASSWORD}
    accepted = anon.data(ACCEPT, {"input": accept})["acceptInvitation"]
    assert accepted["viewer"]["role"] == "MEMBER"
