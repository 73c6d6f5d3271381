"""Rate limits on the anonymous account flows (sign-up, sign-in, codes).

Attempts are counted per client address and per client address and account, never per account
alone: attempts from one address must not lock the account's owner out at another. Passwords
also have an account-wide guard that spares clean addresses (``password_attempt``).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from db import ratelimit
from db.models import fields as f
from db.types import utcnow
from resolvers.auth.common import client_address
from resolvers.context import Context
from resolvers.errors import Problem, UserErrorCode

RATE_WINDOW = timedelta(minutes=1)


def _problem(retry: int) -> Problem:
    return Problem(
        f"Too many attempts; try again in {retry} seconds.",
        UserErrorCode.RATE_LIMITED,
        None,
        retry_after=retry,
    )


def _account(email: str) -> str:
    # Hashed: keys stay short (an address and an email can exceed the key column) and the
    # table holds no email addresses.
    return hashlib.sha256(f.fold(email).encode()).hexdigest()[:32]


def _keys(ctx: Context, action: str, email: str) -> tuple[str, str, str]:
    """(this address, this address for this account, this account)."""
    # Bounded like the session's ip column: a trusted proxy's X-Forwarded-For could be long.
    address, account = client_address(ctx)[:64], _account(email)
    return (
        f"{action}:ip:{address}",
        f"{action}:ip:{address}:account:{account}",
        f"{action}:account:{account}",
    )


async def rate_limited(ctx: Context, action: str, email: str) -> Problem | None:
    """Counts an attempt from the client's address and from it for ``email``; RATE_LIMITED past
    AUTH_RATE_LIMIT_PER_ADDRESS_PER_MINUTE or AUTH_RATE_LIMIT_PER_MINUTE."""
    address, here, _ = _keys(ctx, action, email)
    settings, now = ctx.settings, utcnow()
    limits = [
        (address, settings.auth_rate_limit_per_address_per_minute),
        (here, settings.auth_rate_limit_per_minute),
    ]
    retry = None
    async with ctx.db.write() as session:
        for key, limit in limits:
            wait = await ratelimit.hit(session, key, limit, RATE_WINDOW, now)
            retry = max(retry or 0, wait) if wait else retry
    return None if retry is None else _problem(retry)


async def password_attempt(ctx: Context, email: str) -> Problem | None:
    """Counts a password attempt before the password is checked, as a failure until
    ``password_succeeded`` takes it back (so parallel guesses count at once). RATE_LIMITED:

    - past AUTH_RATE_LIMIT_PER_ADDRESS_PER_MINUTE attempts from the client's address;
    - past AUTH_RATE_LIMIT_PER_MINUTE failures from it for this account;
    - once the account has had AUTH_RATE_LIMIT_PER_MINUTE failures from anywhere, for addresses
      that failed on it too. Addresses that did not (its owner's, most likely) may still try,
      so nobody is locked out from afar; and the emailed-code sign-in is always open."""
    address, here, anywhere = _keys(ctx, "sign-in", email)
    settings, now = ctx.settings, utcnow()
    limit = settings.auth_rate_limit_per_minute
    async with ctx.db.write() as session:
        per_address = settings.auth_rate_limit_per_address_per_minute
        if wait := await ratelimit.hit(session, address, per_address, RATE_WINDOW, now):
            return _problem(wait)
        failed_here, here_left = await ratelimit.count(session, here, RATE_WINDOW, now)
        if failed_here > limit:
            return _problem(here_left)
        failed_anywhere, anywhere_left = await ratelimit.count(session, anywhere, RATE_WINDOW, now)
        if failed_anywhere > limit and failed_here > 1:
            # Either window ending makes this address welcome again.
            return _problem(min(here_left, anywhere_left))
    return None


async def password_succeeded(ctx: Context, email: str) -> None:
    """Takes back the failure ``password_attempt`` counted: the password was right."""
    _, here, anywhere = _keys(ctx, "sign-in", email)
    async with ctx.db.write() as session:
        for key in (here, anywhere):
            await ratelimit.undo(session, key)
