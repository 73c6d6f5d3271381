"""Accounts and access: the viewer, workspaces, members, sessions, API keys, and the sign-up,
sign-in and membership mutations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy import Row

from db.models import Role as _Role
from db.repositories.auth import ApiKeyRepository, UserRepository, WorkspaceRepository
from resolvers.auth import api_keys as resolve_keys
from resolvers.auth import members as resolve_members
from resolvers.auth import sessions as resolve_sessions
from resolvers.auth import sign_in as resolve_sign_in
from resolvers.auth.common import AuthOutcome
from resolvers.ids import to_global_id
from resolvers.principal import Principal
from schema.context import Info
from schema.errors import UserError, user_errors
from schema.relay import input_values
from schema.retention import RetentionPolicy

Role = strawberry.enum(_Role, name="Role", description="What a member or API key may do.")


def _id(type_name: str, pk: int) -> strawberry.ID:
    return strawberry.ID(to_global_id(type_name, pk))


@strawberry.type
class Workspace:
    id: strawberry.ID
    name: str
    created_at: datetime
    row: strawberry.Private[Row[Any]]

    @strawberry.field(description="The retention policy (set by an OWNER).")
    def retention_policy(self) -> RetentionPolicy:
        return RetentionPolicy.from_row(self.row)

    @classmethod
    def from_row(cls, row: Row[Any]) -> Workspace:
        return cls(id=_id("Workspace", row.id), name=row.name, created_at=row.created_at, row=row)


@strawberry.type(description="A person with an account.")
class User:
    id: strawberry.ID
    email: str
    name: str
    email_verified: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row[Any]) -> User:
        return cls(
            id=_id("User", row.id),
            email=row.email,
            name=row.name,
            email_verified=row.email_verified_at is not None,
            created_at=row.created_at,
        )


@strawberry.type(
    description="A leaky bucket of query cost: what each response's extensions.cost reports."
)
class RateLimit:
    maximum_available: int
    restore_rate: int


@strawberry.type(description="A credential for servers and CRM sync; its secret is shown once.")
class ApiKey:
    id: strawberry.ID
    name: str
    prefix: str = strawberry.field(description="The secret's first characters, to recognize it.")
    role: Role  # type: ignore[valid-type]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = strawberry.field(
        description="When the key was last used (to the minute)."
    )
    revoked_at: datetime | None
    rate_limit: RateLimit | None = strawberry.field(
        description="The key's own rate limit; null: the server's."
    )
    created_by_user_id: strawberry.Private[int | None]

    @strawberry.field
    async def created_by(self, info: Info) -> User | None:
        return await _user(info, self.created_by_user_id)

    @classmethod
    def from_row(cls, row: Row[Any]) -> ApiKey:
        return cls(
            id=_id("ApiKey", row.id),
            name=row.name,
            prefix=row.prefix,
            role=_Role(row.role),
            created_at=row.created_at,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
            rate_limit=RateLimit(maximum_available=row.rate_maximum, restore_rate=row.rate_restore)
            if row.rate_restore is not None
            else None,
            created_by_user_id=row.created_by_user_id,
        )


Actor = Annotated[User | ApiKey, strawberry.union("Actor", description="A member or an API key.")]


async def _user(info: Info, user_id: int | None) -> User | None:
    if user_id is None:
        return None
    row = await info.context.loaders.user_by_id.load(user_id)
    return User.from_row(row) if row is not None else None


async def actor(info: Info, user_id: int | None, api_key_id: int | None) -> Any:
    """The User or ApiKey behind created_by/updated_by columns."""
    if user_id is not None:
        return await _user(info, user_id)
    if api_key_id is not None:
        row = await info.context.loaders.api_key_by_id.load(api_key_id)
        return ApiKey.from_row(row) if row is not None else None
    return None


@strawberry.type
class Audited:
    """Who created and last changed a record (fields shared by Lead and Client)."""

    created_by_user_id: strawberry.Private[int | None]
    created_by_api_key_id: strawberry.Private[int | None]
    updated_by_user_id: strawberry.Private[int | None]
    updated_by_api_key_id: strawberry.Private[int | None]

    @strawberry.field(description="The member or API key that created it (null before accounts).")
    async def created_by(self, info: Info) -> Actor | None:
        return await actor(info, self.created_by_user_id, self.created_by_api_key_id)

    @strawberry.field(description="The member or API key that last changed it.")
    async def updated_by(self, info: Info) -> Actor | None:
        return await actor(info, self.updated_by_user_id, self.updated_by_api_key_id)


@strawberry.type(description="A user's membership of the current workspace.")
class Member:
    role: Role  # type: ignore[valid-type]
    joined_at: datetime
    user_id: strawberry.Private[int]

    @strawberry.field
    async def user(self, info: Info) -> User:
        user = await _user(info, self.user_id)
        assert user is not None  # memberships reference existing users
        return user

    @classmethod
    def from_row(cls, row: Row[Any]) -> Member:
        return cls(role=_Role(row.role), joined_at=row.created_at, user_id=row.user_id)


@strawberry.type(description="A signed-in device or browser.")
class Session:
    id: strawberry.ID
    created_at: datetime
    last_used_at: datetime = strawberry.field(
        description="When the session was last used, to within a minute (or a tenth of "
        "SESSION_IDLE_TIMEOUT_MINUTES when that is shorter than 10 minutes)."
    )
    expires_at: datetime
    revoked_at: datetime | None
    user_agent: str | None
    ip: str | None
    current: bool = strawberry.field(description="The session this request is made with.")
    workspace_id: strawberry.Private[int]

    @strawberry.field
    async def workspace(self, info: Info) -> Workspace:
        async with info.context.db.read() as conn:
            row = await WorkspaceRepository(conn).get(self.workspace_id)
        assert row is not None
        return Workspace.from_row(row)

    @classmethod
    def from_row(cls, row: Row[Any], current_id: int | None) -> Session:
        return cls(
            id=_id("Session", row.id),
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            user_agent=row.user_agent,
            ip=row.ip,
            current=row.id == current_id,
            workspace_id=row.workspace_id,
        )


@strawberry.type(description="Who is calling: a member (user) or an API key, in one workspace.")
class Viewer:
    role: Role  # type: ignore[valid-type]
    principal: strawberry.Private[Principal]

    @strawberry.field
    async def user(self, info: Info) -> User | None:
        if self.principal.user_id is None:
            return None
        async with info.context.db.read() as conn:
            row = await UserRepository(conn).get(self.principal.user_id)
        return User.from_row(row) if row is not None else None

    @strawberry.field
    async def api_key(self, info: Info) -> ApiKey | None:
        if self.principal.api_key_id is None:
            return None
        async with info.context.db.read() as conn:
            row = await ApiKeyRepository(conn, self.principal.workspace_id).get(
                self.principal.api_key_id
            )
        return ApiKey.from_row(row) if row is not None else None

    @strawberry.field
    async def workspace(self, info: Info) -> Workspace:
        async with info.context.db.read() as conn:
            row = await WorkspaceRepository(conn).get(self.principal.workspace_id)
        assert row is not None
        return Workspace.from_row(row)

    @classmethod
    def of(cls, principal: Principal) -> Viewer:
        return cls(role=principal.role, principal=principal)


# ---------------------------------------------------------------- inputs


@strawberry.input
class SignUpInput:
    email: str
    password: str = strawberry.field(description="10 to 128 characters.")
    name: str
    workspace_name: str


@strawberry.input
class VerifyEmailInput:
    email: str
    code: str
    workspace_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class SignInInput:
    email: str
    password: str
    workspace_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="Default: the first workspace you joined."
    )


@strawberry.input
class RequestSignInCodeInput:
    email: str


@strawberry.input
class SignInWithCodeInput:
    email: str
    code: str
    workspace_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class AcceptInvitationInput:
    email: str
    code: str
    name: str | None = strawberry.field(
        default=strawberry.UNSET, description="Required for a person without an account."
    )
    password: str | None = strawberry.field(
        default=strawberry.UNSET, description="Required for a person without an account."
    )


@strawberry.input(
    description="A key's own leaky bucket of query cost (README, Cost and rate limits)."
)
class RateLimitInput:
    maximum_available: int = strawberry.field(description="The most points the bucket holds.")
    restore_rate: int = strawberry.field(description="Points it regains per second.")


@strawberry.input
class CreateApiKeyInput:
    name: str
    role: Role  # type: ignore[valid-type]
    expires_at: datetime | None = strawberry.UNSET
    rate_limit: RateLimitInput | None = strawberry.field(
        default=strawberry.UNSET,
        description="The key's own rate limit; left out: the server's (RATE_LIMIT_MAXIMUM, "
        "RATE_LIMIT_RESTORE_RATE).",
    )


@strawberry.input
class InviteMemberInput:
    email: str
    role: Role  # type: ignore[valid-type]


@strawberry.input
class UpdateWorkspaceInput:
    name: str


# ---------------------------------------------------------------- payloads


@strawberry.type
class SignUpPayload:
    sent: bool = strawberry.field(
        description="True once the request is accepted: a code is on its way by email. Whether "
        "the address already had an account is not revealed (if it had, it is emailed a notice "
        "whose code signs it in through verifyEmail)."
    )
    user: User | None = strawberry.field(
        default=None,
        deprecation_reason="Always null: the answer does not tell whether the address already "
        "had an account. Read `me { user }` after verifyEmail.",
    )
    user_errors: list[UserError]


@strawberry.type(description="A new session: send `Authorization: Bearer <token>` from now on.")
class AuthPayload:
    token: str | None
    session: Session | None
    viewer: Viewer | None
    user_errors: list[UserError]

    @classmethod
    def of(cls, out: AuthOutcome) -> AuthPayload:
        if out.problems or out.principal is None or out.session is None:
            return cls(token=None, session=None, viewer=None, user_errors=user_errors(out.problems))
        return cls(
            token=out.token,
            session=Session.from_row(out.session, out.session.id),
            viewer=Viewer.of(out.principal),
            user_errors=[],
        )


@strawberry.type
class RequestSignInCodePayload:
    sent: bool = strawberry.field(
        description="True once the request is accepted; whether the email has an account is "
        "not revealed."
    )
    user_errors: list[UserError]


@strawberry.type
class SignOutPayload:
    session: Session | None
    user_errors: list[UserError]


@strawberry.type
class RevokeSessionPayload:
    session: Session | None
    user_errors: list[UserError]


@strawberry.type
class CreateApiKeyPayload:
    api_key: ApiKey | None
    secret: str | None = strawberry.field(description="Shown only here, once.")
    user_errors: list[UserError]


@strawberry.type
class RevokeApiKeyPayload:
    api_key: ApiKey | None
    user_errors: list[UserError]


@strawberry.type
class InviteMemberPayload:
    email: str | None
    role: Role | None  # type: ignore[valid-type]
    user_errors: list[UserError]


@strawberry.type
class UpdateMemberRolePayload:
    member: Member | None
    user_errors: list[UserError]


@strawberry.type
class RemoveMemberPayload:
    removed_user_id: strawberry.ID | None
    user_errors: list[UserError]


@strawberry.type
class UpdateWorkspacePayload:
    workspace: Workspace | None
    user_errors: list[UserError]


def _session(out: AuthOutcome, info: Info) -> Session | None:
    if out.session is None:
        return None
    principal = info.context.principal
    return Session.from_row(out.session, principal.session_id if principal else None)


# ---------------------------------------------------------------- fields


@strawberry.type
class AuthQuery:
    @strawberry.field(description="Who is calling, in which workspace, with which role.")
    def me(self, info: Info) -> Viewer:
        return Viewer.of(info.context.require(_Role.VIEWER))

    @strawberry.field(description="The signed-in user's sessions, newest first.")
    async def sessions(self, info: Info) -> list[Session]:
        rows = await resolve_sessions.list_sessions(info.context)
        current = info.context.principal.session_id if info.context.principal else None
        return [Session.from_row(r, current) for r in rows]

    @strawberry.field(description="The workspace's API keys (ADMIN).")
    async def api_keys(self, info: Info) -> list[ApiKey]:
        return [ApiKey.from_row(r) for r in await resolve_keys.list_api_keys(info.context)]

    @strawberry.field(description="The workspace's members.")
    async def members(self, info: Info) -> list[Member]:
        return [Member.from_row(r) for r in await resolve_members.list_members(info.context)]


@strawberry.type
class AuthMutation:
    @strawberry.mutation(
        description="Creates an unverified account and its workspace (you are its OWNER), and "
        "emails a 6-digit code for verifyEmail. The answer is the same for an address that "
        "already has an account."
    )
    async def sign_up(self, info: Info, input: SignUpInput) -> SignUpPayload:
        out = await resolve_sign_in.sign_up(info.context, input_values(input))
        return SignUpPayload(sent=not out.problems, user_errors=user_errors(out.problems))

    @strawberry.mutation(description="Verifies the email with its code and signs in.")
    async def verify_email(self, info: Info, input: VerifyEmailInput) -> AuthPayload:
        return AuthPayload.of(await resolve_sign_in.verify_email(info.context, input_values(input)))

    @strawberry.mutation
    async def sign_in(self, info: Info, input: SignInInput) -> AuthPayload:
        return AuthPayload.of(await resolve_sign_in.sign_in(info.context, input_values(input)))

    @strawberry.mutation(description="Emails a sign-in code if the address has an account.")
    async def request_sign_in_code(
        self,
        info: Info,
        input: RequestSignInCodeInput,
    ) -> RequestSignInCodePayload:
        out = await resolve_sign_in.request_sign_in_code(info.context, input_values(input))
        return RequestSignInCodePayload(
            sent=not out.problems, user_errors=user_errors(out.problems)
        )

    @strawberry.mutation
    async def sign_in_with_code(
        self,
        info: Info,
        input: SignInWithCodeInput,
    ) -> AuthPayload:
        return AuthPayload.of(
            await resolve_sign_in.sign_in_with_code(info.context, input_values(input))
        )

    @strawberry.mutation(description="Joins a workspace with the code from an invitation.")
    async def accept_invitation(
        self,
        info: Info,
        input: AcceptInvitationInput,
    ) -> AuthPayload:
        return AuthPayload.of(
            await resolve_members.accept_invitation(info.context, input_values(input))
        )

    @strawberry.mutation(description="Ends the session this request is made with.")
    async def sign_out(self, info: Info) -> SignOutPayload:
        out = await resolve_sessions.sign_out(info.context)
        return SignOutPayload(session=_session(out, info), user_errors=user_errors(out.problems))

    @strawberry.mutation(description="Ends one of your sessions.")
    async def revoke_session(self, info: Info, id: strawberry.ID) -> RevokeSessionPayload:
        out = await resolve_sessions.revoke_session(info.context, id)
        return RevokeSessionPayload(
            session=_session(out, info), user_errors=user_errors(out.problems)
        )

    @strawberry.mutation(description="A new API key (ADMIN); its secret is in the payload, once.")
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> CreateApiKeyPayload:
        out = await resolve_keys.create_api_key(info.context, input_values(input))
        return CreateApiKeyPayload(
            api_key=ApiKey.from_row(out.api_key) if out.api_key else None,
            secret=out.token,
            user_errors=user_errors(out.problems),
        )

    @strawberry.mutation(description="Stops an API key at once (ADMIN).")
    async def revoke_api_key(self, info: Info, id: strawberry.ID) -> RevokeApiKeyPayload:
        out = await resolve_keys.revoke_api_key(info.context, id)
        return RevokeApiKeyPayload(
            api_key=ApiKey.from_row(out.api_key) if out.api_key else None,
            user_errors=user_errors(out.problems),
        )

    @strawberry.mutation(description="Emails an invitation code (ADMIN; OWNER for ADMIN/OWNER).")
    async def invite_member(self, info: Info, input: InviteMemberInput) -> InviteMemberPayload:
        values = input_values(input)
        out = await resolve_members.invite_member(info.context, values)
        ok = not out.problems
        return InviteMemberPayload(
            email=values["email"].strip() if ok else None,
            role=_Role(values["role"].value) if ok else None,
            user_errors=user_errors(out.problems),
        )

    @strawberry.mutation(description="Changes a member's role (ADMIN; OWNER for ADMIN/OWNER).")
    async def update_member_role(
        self,
        info: Info,
        user_id: strawberry.ID,
        role: Role,  # type: ignore[valid-type]
    ) -> UpdateMemberRolePayload:
        out = await resolve_members.update_member_role(info.context, user_id, role)
        return UpdateMemberRolePayload(
            member=Member.from_row(out.membership) if out.membership else None,
            user_errors=user_errors(out.problems),
        )

    @strawberry.mutation(description="Removes a member (ADMIN; OWNER for ADMIN/OWNER).")
    async def remove_member(self, info: Info, user_id: strawberry.ID) -> RemoveMemberPayload:
        out = await resolve_members.remove_member(info.context, user_id)
        removed = _id("User", out.removed_user_id) if out.removed_user_id else None
        return RemoveMemberPayload(removed_user_id=removed, user_errors=user_errors(out.problems))

    @strawberry.mutation(description="Renames the workspace (OWNER).")
    async def update_workspace(
        self,
        info: Info,
        input: UpdateWorkspaceInput,
    ) -> UpdateWorkspacePayload:
        out = await resolve_members.rename_workspace(info.context, input.name)
        return UpdateWorkspacePayload(
            workspace=Workspace.from_row(out.workspace) if out.workspace else None,
            user_errors=user_errors(out.problems),
        )
