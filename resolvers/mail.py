"""Outgoing email: SMTP through aiosmtplib when configured, the server log otherwise."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from db.settings import Settings

logger = logging.getLogger("leadgraph.mail")


class MailNotSent(Exception):
    """The mail server could not be reached or did not take the message (already logged)."""


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None:
        """Sends one message; MailNotSent when it could not."""


class LogMailer:
    """For a server without SMTP: the message (and so any code in it) goes to the log."""

    async def send(self, to: str, subject: str, body: str) -> None:
        logger.warning("Email to %s (SMTP_HOST is not set)\nSubject: %s\n\n%s", to, subject, body)


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self.settings.email_from
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        s = self.settings
        try:
            await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password,
                start_tls=s.smtp_starttls,
                timeout=15,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # The operator's half of the story (the caller only hears "try again later").
            logger.error(
                "email to %s not sent through %s:%s: %s: %s",
                to,
                s.smtp_host,
                s.smtp_port,
                type(exc).__name__,
                exc,
            )
            raise MailNotSent(str(exc)) from exc


def mailer_for(settings: Settings) -> Mailer:
    return SmtpMailer(settings) if settings.smtp_host else LogMailer()


def code_email(code: str, purpose: str, workspace: str | None = None) -> tuple[str, str]:
    """Subject and body for a one-time code."""
    what = {
        "VERIFY_EMAIL": "verify your email address",
        "SIGN_IN": "sign in",
        "INVITATION": f"join the workspace {workspace!r}",
    }[purpose]
    body = (
        f"Your Leadgraph code to {what} is:\n\n    {code}\n\n"
        "It expires in 10 minutes and works once. If you did not ask for it, ignore this email."
    )
    return f"Your Leadgraph code: {code}", body


def account_exists_email(code: str) -> tuple[str, str]:
    """Subject and body for a sign-up with an address that already has an account: the
    answer to the sign-up does not say so (it would tell anyone who has an account)."""
    body = (
        "Someone, perhaps you, tried to sign up for Leadgraph with this email address, which "
        "already has an account. Nothing was changed.\n\n"
        f"If it was you, this code signs you in where the sign-up asks for its code:\n\n"
        f"    {code}\n\n"
        "It expires in 10 minutes and works once. You can also sign in with your password or "
        "ask for a sign-in code. If it was not you, ignore this email."
    )
    return "Your Leadgraph account already exists", body
