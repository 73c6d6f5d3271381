"""One-time codes sent by email: issued (one a minute per address and purpose), sent, and
consumed (five wrong tries kill them)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import Row

from db import ratelimit
from db.models import CodePurpose
from db.repositories.auth import EmailCodeRepository
from db.types import utcnow
from resolvers.auth.common import KeepAndReport
from resolvers.context import Context
from resolvers.errors import Problem, Unavailable, UserErrorCode
from resolvers.mail import MailNotSent
from resolvers.outcome import Abort
from resolvers.security import (
    CODE_COOLDOWN_SECONDS,
    CODE_MAX_ATTEMPTS,
    CODE_TTL_MINUTES,
    code_hash,
    code_matches,
    new_code,
)

EMAIL_NOT_SENT = "The email with the code could not be sent; try again in a few minutes."


async def code_cooldown(session: Any, key: str) -> Problem | None:
    """At most one code a minute per email and purpose, whether or not the email is known."""
    wait = await ratelimit.hit(
        session, _cooldown_key(key), 1, timedelta(seconds=CODE_COOLDOWN_SECONDS), utcnow()
    )
    if wait is None:
        return None
    return Problem(
        f"A code was sent less than a minute ago; ask again in {wait} seconds.",
        UserErrorCode.RATE_LIMITED,
        ["input", "email"],
        retry_after=wait,
    )


def _cooldown_key(key: str) -> str:
    return f"code:{key}"


async def send_code(ctx: Context, to: str, email: tuple[str, str], cooldown: str) -> None:
    """Emails a code that was just issued. When the mail server fails (the mailer logs why),
    the cooldown the code started is taken back, so that asking again at once works, and the
    caller is told to try again: EMAIL_NOT_SENT. The code stays valid, in case it arrives."""
    try:
        await ctx.mailer.send(to, *email)
    except MailNotSent as exc:
        async with ctx.db.write() as session:
            await ratelimit.undo(session, _cooldown_key(cooldown))
        raise Unavailable(EMAIL_NOT_SENT, "EMAIL_NOT_SENT") from exc


async def issue_code(session: Any, email: str, purpose: CodePurpose, **extra: Any) -> str:
    now = utcnow()
    codes = EmailCodeRepository(session)
    await codes.invalidate(email, purpose.value, now, extra.get("workspace_id"))
    code, salt = new_code(), secrets.token_hex(16)
    await codes.insert(
        email,
        purpose=purpose.value,
        code_hash=code_hash(code, salt),
        salt=salt,
        attempts=0,
        created_at=now,
        expires_at=now + timedelta(minutes=CODE_TTL_MINUTES),
        **extra,
    )
    return code


def invalid_code() -> Problem:
    return Problem(
        "The code is wrong, used or expired; ask for a new one.",
        UserErrorCode.INVALID_CODE,
        ["input", "code"],
    )


async def consume_code(session: Any, email: str, purpose: CodePurpose, code: str) -> Row[Any]:
    """The live code that matches, now used; Abort(INVALID_CODE) otherwise. A wrong guess counts
    against every live code of the email; the fifth wrong guess kills a code."""
    now = utcnow()
    codes = EmailCodeRepository(session)
    live = [
        c for c in await codes.live(email, purpose.value, now) if c.attempts < CODE_MAX_ATTEMPTS
    ]
    match = next((c for c in live if code_matches(code, c.salt, c.code_hash)), None)
    if match is None:
        for c in live:
            if await codes.record_attempt(c.id) >= CODE_MAX_ATTEMPTS:
                await codes.use(c.id, now)
        # Reported, not aborted: the attempts must be committed.
        raise KeepAndReport([invalid_code()])
    if not await codes.use(match.id, now):
        raise Abort([invalid_code()])
    return match
