"""Rate limits on the anonymous account flows (sign-up, sign-in, codes)."""

from __future__ import annotations

from datetime import timedelta

from db import ratelimit
from db.models import fields as f
from db.types import utcnow
from resolvers.auth.common import client_address
from resolvers.context import Context
from resolvers.errors import Problem, UserErrorCode

RATE_WINDOW = timedelta(minutes=1)


def rate_limited_problem(retry: int) -> Problem:
    return Problem(
        f"Too many attempts; try again in {retry} seconds.",
        UserErrorCode.RATE_LIMITED,
        None,
        retry_after=retry,
    )


async def rate_limited(ctx: Context, action: str, email: str | None) -> Problem | None:
    """Counts an attempt per email and per client address; RATE_LIMITED past the limit."""
    keys = [f"{action}:ip:{client_address(ctx)}"]
    if email:
        keys.append(f"{action}:email:{f.fold(email)}")
    limit = ctx.settings.auth_rate_limit_per_minute
    now = utcnow()
    retry = None
    async with ctx.db.write() as session:
        for key in keys:
            wait = await ratelimit.hit(session, key, limit, RATE_WINDOW, now)
            retry = max(retry or 0, wait) if wait else retry
    if retry is None:
        return None
    return rate_limited_problem(retry)
