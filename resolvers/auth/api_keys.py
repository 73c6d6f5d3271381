"""API keys: created (the secret shown once), listed and revoked by ADMINs, or made from the
command line."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field
from sqlalchemy import Row

from db.engine import Database
from db.models import Role
from db.models import fields as f
from db.repositories.auth import ApiKeyRepository, WorkspaceRepository
from db.types import utcnow
from resolvers.auth.common import AuthOutcome, In, forbidden_role, may_manage, run
from resolvers.context import Context
from resolvers.errors import Problem, UserErrorCode, not_found, validated
from resolvers.ids import pk_for_mutation
from resolvers.outcome import Abort
from resolvers.security import API_KEY_PREFIX, new_token, token_hash


class RateLimitIn(In):
    maximum_available: int = Field(ge=1, le=1_000_000_000)
    restore_rate: int = Field(ge=1, le=1_000_000_000)


class ApiKeyIn(In):
    name: f.RequiredName
    role: Role
    expires_at: datetime | None = None
    rate_limit: RateLimitIn | None = None


async def create_api_key(ctx: Context, values: dict[str, Any]) -> AuthOutcome:
    principal = ctx.require(Role.ADMIN)
    data, problems = validated(ApiKeyIn, values)
    if data is not None and not may_manage(principal.role, None, data.role):
        # Keys follow the member rule: only an OWNER hands out ADMIN or OWNER rights.
        problems.append(forbidden_role(["input", "role"]))
    if data is not None and data.expires_at is not None and data.expires_at <= utcnow():
        problems.append(
            Problem(
                "expiresAt must be in the future.", UserErrorCode.INVALID, ["input", "expiresAt"]
            )
        )
    if problems:
        return AuthOutcome(problems=problems)
    secret = new_token(API_KEY_PREFIX)

    async def step(session: Any) -> AuthOutcome:
        row = await ApiKeyRepository(session, principal.workspace_id).insert(
            name=data.name,
            prefix=secret[:12],
            token_hash=token_hash(secret),
            role=data.role.value,
            created_by_user_id=principal.user_id,
            created_at=utcnow(),
            expires_at=data.expires_at,
            rate_maximum=data.rate_limit.maximum_available if data.rate_limit else None,
            rate_restore=data.rate_limit.restore_rate if data.rate_limit else None,
        )
        return AuthOutcome(api_key=row, token=secret)

    return await run(ctx, step)


async def revoke_api_key(ctx: Context, id_: str) -> AuthOutcome:
    principal = ctx.require(Role.ADMIN)
    pk, problem = pk_for_mutation(id_, "ApiKey", ["id"])
    if pk is None:
        return AuthOutcome(problems=[problem] if problem else [])

    async def step(session: Any) -> AuthOutcome:
        keys = ApiKeyRepository(session, principal.workspace_id)
        row = await keys.get(pk)
        if row is None:
            raise Abort([not_found("API key")])
        if not may_manage(principal.role, Role(row.role), None):
            raise Abort([forbidden_role(["id"])])
        if row.revoked_at is None:
            row = await keys.revoke(pk, utcnow())
        return AuthOutcome(api_key=row)

    return await run(ctx, step)


async def list_api_keys(ctx: Context) -> list[Row[Any]]:
    principal = ctx.require(Role.ADMIN)
    async with ctx.db.read() as conn:
        return await ApiKeyRepository(conn, principal.workspace_id).all()


async def create_key_for_workspace(
    db: Database, workspace_name: str, role: Role, name: str
) -> tuple[str, Row[Any], bool]:
    """For the command line: (secret, workspace, created) — the workspace is made if missing."""
    secret = new_token(API_KEY_PREFIX)
    now = utcnow()
    async with db.write() as session:
        workspaces = WorkspaceRepository(session)
        found = await workspaces.by_name(workspace_name)
        if len(found) > 1:
            raise ValueError(f"{len(found)} workspaces are named {workspace_name!r}.")
        workspace = found[0] if found else await workspaces.insert(workspace_name, now)
        await ApiKeyRepository(session, workspace.id).insert(
            name=name,
            prefix=secret[:12],
            token_hash=token_hash(secret),
            role=role.value,
            created_at=now,
        )
    return secret, workspace, not found
