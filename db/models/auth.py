"""Accounts and access: users, memberships, sessions, API keys, one-time codes, rate limits."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from db.models import fields as f
from db.types import UTCDateTime


class Role(enum.Enum):
    """What a member (or an API key) may do in a workspace; each role includes the ones below."""

    OWNER = "OWNER"
    ADMIN = "ADMIN"
    MEMBER = "MEMBER"
    VIEWER = "VIEWER"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def includes(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}
ROLES_CHECK = "role IN ('OWNER','ADMIN','MEMBER','VIEWER')"


class CodePurpose(enum.Enum):
    VERIFY_EMAIL = "VERIFY_EMAIL"
    SIGN_IN = "SIGN_IN"
    INVITATION = "INVITATION"


def _dt(nullable: bool = True) -> Field:  # type: ignore[valid-type]
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


def _fk(target: str, nullable: bool = True) -> Field:  # type: ignore[valid-type]
    return Field(default=None, sa_column=Column(Integer, ForeignKey(target), nullable=nullable))


class User(SQLModel, table=True):
    """A person. Global: the same user may be a member of several workspaces."""

    __tablename__ = "users"
    __table_args__ = (Index("uq_users_email", "email_key", unique=True),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    email: str = Field(sa_column=Column(String(f.EMAIL_MAX), nullable=False))
    email_key: str = Field(sa_column=Column(String(f.EMAIL_MAX), nullable=False))
    name: str = Field(sa_column=Column(String(f.NAME_MAX), nullable=False))
    password_hash: str | None = Field(default=None, sa_column=Column(String(200)))
    email_verified_at: datetime | None = _dt()
    created_at: datetime = _dt(nullable=False)


class Membership(SQLModel, table=True):
    __tablename__ = "memberships"
    __table_args__ = (
        CheckConstraint(ROLES_CHECK, name="ck_memberships_role"),
        UniqueConstraint("workspace_id", "user_id", name="uq_memberships_ws_user"),
        Index("ix_memberships_user", "user_id"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    workspace_id: int = _fk("workspaces.id", nullable=False)
    user_id: int = _fk("users.id", nullable=False)
    role: str = Field(sa_column=Column(String(16), nullable=False))
    created_at: datetime = _dt(nullable=False)


class Session(SQLModel, table=True):
    """A signed-in user in one workspace. Only the secret's hash is stored."""

    __tablename__ = "sessions"
    __table_args__ = (
        Index("uq_sessions_token", "token_hash", unique=True),
        Index("ix_sessions_user", "user_id", "created_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    user_id: int = _fk("users.id", nullable=False)
    workspace_id: int = _fk("workspaces.id", nullable=False)
    token_hash: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime = _dt(nullable=False)
    last_used_at: datetime = _dt(nullable=False)
    expires_at: datetime = _dt(nullable=False)
    revoked_at: datetime | None = _dt()
    user_agent: str | None = Field(default=None, sa_column=Column(String(200)))
    ip: str | None = Field(default=None, sa_column=Column(String(64)))


class ApiKey(SQLModel, table=True):
    """A server's or a CRM sync's credential for one workspace, with a role of its own."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(ROLES_CHECK, name="ck_api_keys_role"),
        Index("uq_api_keys_token", "token_hash", unique=True),
        Index("ix_api_keys_ws", "workspace_id", "created_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    workspace_id: int = _fk("workspaces.id", nullable=False)
    name: str = Field(sa_column=Column(String(100), nullable=False))
    prefix: str = Field(sa_column=Column(String(16), nullable=False))
    token_hash: str = Field(sa_column=Column(String(64), nullable=False))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    created_by_user_id: int | None = _fk("users.id")
    created_at: datetime = _dt(nullable=False)
    expires_at: datetime | None = _dt()
    last_used_at: datetime | None = _dt()
    revoked_at: datetime | None = _dt()
    # The key's own leaky bucket (README, Cost and rate limits): points restored per second and
    # the most it holds; null: the server's RATE_LIMIT_RESTORE_RATE / RATE_LIMIT_MAXIMUM.
    rate_restore: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    rate_maximum: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))


class EmailCode(SQLModel, table=True):
    """A one-time code sent by email: verification, passwordless sign-in, or an invitation."""

    __tablename__ = "email_codes"
    __table_args__ = (Index("ix_email_codes_lookup", "email_key", "purpose", "created_at"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    email_key: str = Field(sa_column=Column(String(f.EMAIL_MAX), nullable=False))
    purpose: str = Field(sa_column=Column(String(16), nullable=False))
    code_hash: str = Field(sa_column=Column(String(64), nullable=False))
    salt: str = Field(sa_column=Column(String(32), nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    created_at: datetime = _dt(nullable=False)
    expires_at: datetime = _dt(nullable=False)
    used_at: datetime | None = _dt()
    # Invitations only: where to, with which role, from whom.
    workspace_id: int | None = _fk("workspaces.id")
    role: str | None = Field(default=None, sa_column=Column(String(16)))
    invited_by_user_id: int | None = _fk("users.id")


class RateLimit(SQLModel, table=True):
    """Fixed-window counters shared by every server process."""

    __tablename__ = "rate_limits"

    key: str = Field(sa_column=Column(String(300), primary_key=True))
    window_start: datetime = _dt(nullable=False)
    count: int = Field(sa_column=Column(Integer, nullable=False))


class RateBucket(SQLModel, table=True):
    """A credential's leaky bucket of query cost, shared by every server process. Processes
    take leases of points from it and give back what they did not spend (resolvers/ratelimit.py),
    so it is written once per lease, not once per request."""

    __tablename__ = "rate_buckets"

    key: str = Field(sa_column=Column(String(100), primary_key=True))
    # Points left at ``updated_at`` (seconds since the epoch); refilled on each take.
    available: float = Field(sa_column=Column(Float, nullable=False))
    updated_at: float = Field(sa_column=Column(Float, nullable=False))
