"""Queries on accounts: users, workspaces, memberships, sessions, API keys and email codes.

Users, sessions and codes are global (a token is looked up before its workspace is known);
memberships and API keys are listed and changed within one workspace.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db import reads
from db.models import ApiKey, EmailCode, Membership, Session, User, Workspace
from db.models.fields import fold

Conn = AsyncConnection

users: Any = User.__table__  # type: ignore[attr-defined]
workspaces: Any = Workspace.__table__  # type: ignore[attr-defined]
memberships: Any = Membership.__table__  # type: ignore[attr-defined]
sessions: Any = Session.__table__  # type: ignore[attr-defined]
api_keys: Any = ApiKey.__table__  # type: ignore[attr-defined]
email_codes: Any = EmailCode.__table__  # type: ignore[attr-defined]


# Every request with an API key runs these; by a unique index, so short (inline on SQLite).
_API_KEY_BY_HASH = reads.Reusable(
    select(api_keys).where(api_keys.c.token_hash == bindparam("token_hash")), inline=True
)
_SESSION_WITH_ROLE = reads.Reusable(
    select(sessions, memberships.c.role)
    .join(
        memberships,
        (memberships.c.workspace_id == sessions.c.workspace_id)
        & (memberships.c.user_id == sessions.c.user_id),
    )
    .where(sessions.c.token_hash == bindparam("token_hash")),
    inline=True,
)


async def _one(conn: Conn, stmt: Any) -> Row[Any]:
    return (await conn.execute(stmt)).one()


async def _first(conn: Conn, stmt: Any) -> Row[Any] | None:
    return (await conn.execute(stmt)).first()


class UserRepository:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def get(self, id_: int) -> Row[Any] | None:
        return await _first(self.conn, select(users).where(users.c.id == id_))

    async def get_many(self, ids: Sequence[int]) -> list[Row[Any]]:
        return list((await self.conn.execute(select(users).where(users.c.id.in_(ids)))).all())

    async def by_email(self, email: str) -> Row[Any] | None:
        return await _first(self.conn, select(users).where(users.c.email_key == fold(email)))

    async def insert(self, **values: Any) -> Row[Any]:
        values["email_key"] = fold(values["email"])
        return await _one(self.conn, insert(users).values(**values).returning(users))

    async def update(self, id_: int, **values: Any) -> Row[Any]:
        stmt = update(users).where(users.c.id == id_).values(**values).returning(users)
        return await _one(self.conn, stmt)


class WorkspaceRepository:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def get(self, id_: int) -> Row[Any] | None:
        return await _first(self.conn, select(workspaces).where(workspaces.c.id == id_))

    async def get_many(self, ids: Sequence[int]) -> list[Row[Any]]:
        stmt = select(workspaces).where(workspaces.c.id.in_(ids))
        return list((await self.conn.execute(stmt)).all())

    async def by_name(self, name: str) -> list[Row[Any]]:
        stmt = select(workspaces).where(workspaces.c.name == name).order_by(workspaces.c.id)
        return list((await self.conn.execute(stmt)).all())

    async def insert(self, name: str, now: datetime) -> Row[Any]:
        stmt = insert(workspaces).values(name=name, created_at=now).returning(workspaces)
        return await _one(self.conn, stmt)

    async def rename(self, id_: int, name: str) -> Row[Any]:
        stmt = update(workspaces).where(workspaces.c.id == id_).values(name=name)
        return await _one(self.conn, stmt.returning(workspaces))


class MembershipRepository:
    """Memberships of one workspace."""

    def __init__(self, conn: Conn, workspace_id: int) -> None:
        self.conn = conn
        self.workspace_id = workspace_id

    def _scoped(self, *conditions: Any) -> Any:
        return select(memberships).where(
            memberships.c.workspace_id == self.workspace_id, *conditions
        )

    async def get(self, user_id: int, *, for_update: bool = False) -> Row[Any] | None:
        stmt = self._scoped(memberships.c.user_id == user_id)
        return await _first(self.conn, stmt.with_for_update() if for_update else stmt)

    async def get_many(self, user_ids: Sequence[int]) -> list[Row[Any]]:
        stmt = self._scoped(memberships.c.user_id.in_(user_ids))
        return list((await self.conn.execute(stmt)).all())

    async def all(self) -> list[Row[Any]]:
        stmt = self._scoped().order_by(memberships.c.created_at, memberships.c.id)
        return list((await self.conn.execute(stmt)).all())

    async def owners(self, *, for_update: bool = False) -> list[Row[Any]]:
        """The OWNER memberships, in id order (so concurrent lockers take them in one order)."""
        stmt = self._scoped(memberships.c.role == "OWNER").order_by(memberships.c.id)
        return list((await self.conn.execute(stmt.with_for_update() if for_update else stmt)).all())

    async def insert(self, user_id: int, role: str, now: datetime) -> Row[Any]:
        stmt = insert(memberships).values(
            workspace_id=self.workspace_id, user_id=user_id, role=role, created_at=now
        )
        return await _one(self.conn, stmt.returning(memberships))

    async def set_role(self, user_id: int, role: str) -> Row[Any]:
        stmt = (
            update(memberships)
            .where(memberships.c.workspace_id == self.workspace_id)
            .where(memberships.c.user_id == user_id)
            .values(role=role)
            .returning(memberships)
        )
        return await _one(self.conn, stmt)

    async def delete(self, user_id: int) -> None:
        await self.conn.execute(
            delete(memberships)
            .where(memberships.c.workspace_id == self.workspace_id)
            .where(memberships.c.user_id == user_id)
        )

    @staticmethod
    async def first_for_user(conn: Conn, user_id: int) -> Row[Any] | None:
        """The user's oldest membership: the workspace a sign-in lands in by default."""
        stmt = (
            select(memberships)
            .where(memberships.c.user_id == user_id)
            .order_by(memberships.c.created_at, memberships.c.id)
            .limit(1)
        )
        return await _first(conn, stmt)


class SessionRepository:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def insert(self, **values: Any) -> Row[Any]:
        return await _one(self.conn, insert(sessions).values(**values).returning(sessions))

    async def by_token_hash(self, token_hash: str) -> Row[Any] | None:
        return await _first(self.conn, select(sessions).where(sessions.c.token_hash == token_hash))

    async def with_role(self, token_hash: str) -> Row[Any] | None:
        """The session and its user's current role in the session's workspace, in one query;
        None when the secret is unknown or the user is no longer a member."""
        return await reads.first(self.conn, _SESSION_WITH_ROLE, {"token_hash": token_hash})

    async def get(self, id_: int) -> Row[Any] | None:
        return await _first(self.conn, select(sessions).where(sessions.c.id == id_))

    async def for_user(self, user_id: int) -> list[Row[Any]]:
        stmt = (
            select(sessions)
            .where(sessions.c.user_id == user_id)
            .order_by(sessions.c.created_at.desc(), sessions.c.id.desc())
        )
        return list((await self.conn.execute(stmt)).all())

    async def touch(self, id_: int, now: datetime) -> None:
        await self.conn.execute(
            update(sessions).where(sessions.c.id == id_).values(last_used_at=now)
        )

    async def revoke(self, id_: int, now: datetime) -> Row[Any]:
        stmt = update(sessions).where(sessions.c.id == id_).values(revoked_at=now)
        return await _one(self.conn, stmt.returning(sessions))


class ApiKeyRepository:
    """API keys of one workspace (and the global lookup by secret)."""

    def __init__(self, conn: Conn, workspace_id: int) -> None:
        self.conn = conn
        self.workspace_id = workspace_id

    def _scoped(self, *conditions: Any) -> Any:
        return select(api_keys).where(api_keys.c.workspace_id == self.workspace_id, *conditions)

    async def get(self, id_: int) -> Row[Any] | None:
        return await _first(self.conn, self._scoped(api_keys.c.id == id_))

    async def get_many(self, ids: Sequence[int]) -> list[Row[Any]]:
        return list((await self.conn.execute(self._scoped(api_keys.c.id.in_(ids)))).all())

    async def all(self) -> list[Row[Any]]:
        stmt = self._scoped().order_by(api_keys.c.created_at.desc(), api_keys.c.id.desc())
        return list((await self.conn.execute(stmt)).all())

    async def insert(self, **values: Any) -> Row[Any]:
        stmt = insert(api_keys).values(**values, workspace_id=self.workspace_id)
        return await _one(self.conn, stmt.returning(api_keys))

    async def revoke(self, id_: int, now: datetime) -> Row[Any]:
        stmt = (
            update(api_keys)
            .where(api_keys.c.workspace_id == self.workspace_id, api_keys.c.id == id_)
            .values(revoked_at=now)
            .returning(api_keys)
        )
        return await _one(self.conn, stmt)

    @staticmethod
    async def by_token_hash(conn: Conn, token_hash: str) -> Row[Any] | None:
        # Every request with an API key runs this: the statement is built once.
        return await reads.first(conn, _API_KEY_BY_HASH, {"token_hash": token_hash})

    @staticmethod
    async def touch(conn: Conn, id_: int, now: datetime) -> None:
        await conn.execute(update(api_keys).where(api_keys.c.id == id_).values(last_used_at=now))


class EmailCodeRepository:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def live(self, email: str, purpose: str, now: datetime) -> list[Row[Any]]:
        """Unused, unexpired codes for this email and purpose, newest first (locked)."""
        stmt = (
            select(email_codes)
            .where(email_codes.c.email_key == fold(email), email_codes.c.purpose == purpose)
            .where(email_codes.c.used_at.is_(None), email_codes.c.expires_at > now)
            .order_by(email_codes.c.created_at.desc(), email_codes.c.id.desc())
            .with_for_update()
        )
        return list((await self.conn.execute(stmt)).all())

    async def insert(self, email: str, **values: Any) -> Row[Any]:
        stmt = insert(email_codes).values(email_key=fold(email), **values)
        return await _one(self.conn, stmt.returning(email_codes))

    async def invalidate(
        self, email: str, purpose: str, now: datetime, workspace_id: int | None = None
    ) -> None:
        """Earlier unused codes stop working when a new one is sent (invitations: per workspace)."""
        stmt = (
            update(email_codes)
            .where(email_codes.c.email_key == fold(email), email_codes.c.purpose == purpose)
            .where(email_codes.c.used_at.is_(None))
        )
        if workspace_id is not None:
            stmt = stmt.where(email_codes.c.workspace_id == workspace_id)
        await self.conn.execute(stmt.values(used_at=now))

    async def record_attempt(self, id_: int) -> int:
        stmt = (
            update(email_codes)
            .where(email_codes.c.id == id_)
            .values(attempts=email_codes.c.attempts + 1)
            .returning(email_codes.c.attempts)
        )
        return int((await self.conn.execute(stmt)).scalar_one())

    async def use(self, id_: int, now: datetime) -> bool:
        """Marks the code used; False if a concurrent request used it first."""
        stmt = (
            update(email_codes)
            .where(email_codes.c.id == id_, email_codes.c.used_at.is_(None))
            .values(used_at=now)
        )
        return (await self.conn.execute(stmt)).rowcount == 1  # type: ignore[attr-defined]
