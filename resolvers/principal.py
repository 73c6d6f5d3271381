"""Who is calling: the bearer credential turned into a Principal, and the role checks on it.

Every resolver uses these, so they sit below the account flows (``resolvers/auth/``) and below
``resolvers/context.py``: nothing here knows about the request context.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from db.engine import Database
from db.models import Role
from db.repositories.auth import ApiKeyRepository, SessionRepository
from db.settings import Settings
from db.types import utcnow
from resolvers.errors import AuthError
from resolvers.security import API_KEY_PREFIX, SESSION_PREFIX, token_hash

# How stale last_used_at may get before a request writes it again: bounds the writes that
# reads cause, at the price of that precision in lastUsedAt (sessions: see session_idle).
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a member through a session, or an API key; always in one workspace."""

    workspace_id: int
    role: Role
    user_id: int | None = None
    api_key_id: int | None = None
    session_id: int | None = None
    # An API key's own rate limit, (maximum, restore rate per second); None: the server's.
    rate: tuple[int, int] | None = None

    def wrote(self, row: Any) -> bool:
        """Whether this caller is the author of ``row`` (its ``author_user_id`` and
        ``author_api_key_id``): an activity or a ticket comment."""
        mine = (self.user_id, self.api_key_id)
        return mine != (None, None) and (row.author_user_id, row.author_api_key_id) == mine


def session_touch_every(idle: timedelta) -> timedelta:
    """How stale a session's last_used_at may get: a minute, or a tenth of a shorter idle
    timeout, which stays precise that way (one write per 6 s of use at one minute)."""
    return min(TOUCH_EVERY, idle / 10)


def session_idle(last_used_at: datetime, now: datetime, idle: timedelta) -> bool:
    """Whether a session went unused for longer than ``idle``. The stored last_used_at lags
    the last use by up to the write granularity, so only a lag past idle + granularity proves
    idleness: a session used at least once per idle timeout never expires, and an unused one
    expires between ``idle`` and ``idle`` + granularity (at most 10 %) after its last use."""
    return now - last_used_at > idle + session_touch_every(idle)


async def authenticate(
    db: Database, settings: Settings, authorization: str | None
) -> tuple[Principal | None, bool]:
    """(principal, rejected): rejected is True when credentials were sent but are not valid."""
    if not authorization:
        return None, False
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None, True
    now = utcnow()
    digest = token_hash(token)
    touch: Any = None
    async with db.read() as conn:
        if token.startswith(SESSION_PREFIX):
            row = await SessionRepository(conn).with_role(digest)
            idle = timedelta(minutes=settings.session_idle_timeout_minutes)
            if (
                row is None
                or row.revoked_at is not None
                or row.expires_at <= now
                or session_idle(row.last_used_at, now, idle)
            ):
                return None, True
            principal = Principal(
                row.workspace_id, Role(row.role), user_id=row.user_id, session_id=row.id
            )
            if now - row.last_used_at > session_touch_every(idle):
                touch = (SessionRepository.touch, row.id)
        elif token.startswith(API_KEY_PREFIX):
            key = await ApiKeyRepository.by_token_hash(conn, digest)
            if (
                key is None
                or key.revoked_at is not None
                or (key.expires_at is not None and key.expires_at <= now)
            ):
                return None, True
            rate = (key.rate_maximum, key.rate_restore) if key.rate_restore is not None else None
            principal = Principal(key.workspace_id, Role(key.role), api_key_id=key.id, rate=rate)
            if key.last_used_at is None or now - key.last_used_at > TOUCH_EVERY:
                touch = (ApiKeyRepository.touch, key.id)
        else:
            return None, True
    if touch is not None:
        async with db.write() as session:
            if touch[0] is SessionRepository.touch:
                await SessionRepository(session).touch(touch[1], now)
            else:
                await ApiKeyRepository.touch(session, touch[1], now)
    return principal, False


def require(principal: Principal | None, role: Role, rejected: bool = False) -> Principal:
    """The principal, if it holds ``role``; AuthError otherwise."""
    if principal is None:
        message = (
            "The access token is invalid, expired or revoked; sign in again."
            if rejected
            else "Sign in first: send 'Authorization: Bearer <session token or API key>'."
        )
        raise AuthError(message, "UNAUTHENTICATED")
    if not principal.role.includes(role):
        raise AuthError(
            f"This needs the {role.value} role in this workspace (you have "
            f"{principal.role.value}).",
            "FORBIDDEN",
        )
    return principal


def actor_columns(principal: Principal, *, created: bool) -> dict[str, int | None]:
    """Who wrote a row: the updated_by columns, and the created_by ones for a new row."""
    columns = {
        "updated_by_user_id": principal.user_id,
        "updated_by_api_key_id": principal.api_key_id,
    }
    if created:
        columns |= {
            "created_by_user_id": principal.user_id,
            "created_by_api_key_id": principal.api_key_id,
        }
    return columns
