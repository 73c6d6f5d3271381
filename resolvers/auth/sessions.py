"""A signed-in user's sessions: listing them, signing out, revoking one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from db.models import Role
from db.repositories.auth import SessionRepository
from db.types import utcnow
from resolvers.auth.common import AuthOutcome, run
from resolvers.context import Context
from resolvers.errors import AuthError, not_found
from resolvers.ids import pk_for_mutation
from resolvers.outcome import Abort
from resolvers.principal import Principal


def _user_principal(ctx: Context) -> Principal:
    principal = ctx.require(Role.VIEWER)
    if principal.user_id is None:
        raise AuthError("Only a signed-in member has sessions; API keys do not.", "FORBIDDEN")
    return principal


async def sign_out(ctx: Context) -> AuthOutcome:
    principal = _user_principal(ctx)
    session_id = principal.session_id
    assert session_id is not None  # a user principal always comes from a session

    async def step(session: Any) -> AuthOutcome:
        row = await SessionRepository(session).revoke(session_id, utcnow())
        return AuthOutcome(session=row)

    return await run(ctx, step)


async def list_sessions(ctx: Context) -> list[Row[Any]]:
    principal = _user_principal(ctx)
    async with ctx.db.read() as conn:
        return await SessionRepository(conn).for_user(principal.user_id)  # type: ignore[arg-type]


async def revoke_session(ctx: Context, id_: str) -> AuthOutcome:
    principal = _user_principal(ctx)
    pk, problem = pk_for_mutation(id_, "Session", ["id"])
    if pk is None:
        return AuthOutcome(problems=[problem] if problem else [])

    async def step(session: Any) -> AuthOutcome:
        sessions = SessionRepository(session)
        row = await sessions.get(pk)
        if row is None or row.user_id != principal.user_id:
            raise Abort([not_found("session")])
        if row.revoked_at is None:
            row = await sessions.revoke(pk, utcnow())
        return AuthOutcome(session=row)

    return await run(ctx, step)
