"""Accounts and access: who is calling, sign-up/sign-in flows, sessions, API keys, members."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from sqlalchemy import Row

from db import ratelimit
from db.engine import Database
from db.models import CodePurpose, Role
from db.models import fields as f
from db.repositories.auth import (
    ApiKeyRepository,
    EmailCodeRepository,
    MembershipRepository,
    SessionRepository,
    UserRepository,
    WorkspaceRepository,
)
from db.settings import Settings
from db.types import utcnow
from resolvers.errors import (
    AuthError,
    Problem,
    Unavailable,
    UserErrorCode,
    not_found,
    problems_from,
)
from resolvers.ids import pk_for_mutation
from resolvers.mail import MailNotSent, code_email
from resolvers.outcome import Abort
from resolvers.security import (
    API_KEY_PREFIX,
    CODE_COOLDOWN_SECONDS,
    CODE_MAX_ATTEMPTS,
    CODE_TTL_MINUTES,
    PASSWORD_MAX,
    PASSWORD_MIN,
    SESSION_PREFIX,
    code_hash,
    code_matches,
    hash_password,
    new_code,
    new_token,
    token_hash,
    verify_password,
)

if TYPE_CHECKING:
    from schema.context import Context

# How stale last_used_at may get before a request writes it again: bounds the writes that
# reads cause, at the price of that precision in lastUsedAt and in the idle timeout.
TOUCH_EVERY = timedelta(seconds=60)
RATE_WINDOW = timedelta(minutes=1)
EMAIL_NOT_SENT = "The email with the code could not be sent; try again in a few minutes."


@dataclass(frozen=True)
class Principal:
    """Who is calling: a member through a session, or an API key; always in one workspace."""

    workspace_id: int
    role: Role
    user_id: int | None = None
    api_key_id: int | None = None
    session_id: int | None = None


@dataclass
class AuthOutcome:
    problems: list[Problem] = field(default_factory=list)
    token: str | None = None
    principal: Principal | None = None
    user: Row[Any] | None = None
    session: Row[Any] | None = None
    api_key: Row[Any] | None = None
    membership: Row[Any] | None = None
    workspace: Row[Any] | None = None
    removed_user_id: int | None = None


# ---------------------------------------------------------------- who is calling


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
                or row.last_used_at + idle <= now
            ):
                return None, True
            principal = Principal(
                row.workspace_id, Role(row.role), user_id=row.user_id, session_id=row.id
            )
            if now - row.last_used_at > TOUCH_EVERY:
                touch = (SessionRepository.touch, row.id)
        elif token.startswith(API_KEY_PREFIX):
            key = await ApiKeyRepository.by_token_hash(conn, digest)
            if (
                key is None
                or key.revoked_at is not None
                or (key.expires_at is not None and key.expires_at <= now)
            ):
                return None, True
            principal = Principal(key.workspace_id, Role(key.role), api_key_id=key.id)
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


# ---------------------------------------------------------------- input models

Password = Annotated[str, StringConstraints(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]
WorkspaceName = f.RequiredName
Code = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{6}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignUpIn(_In):
    email: f.Email
    password: Password
    name: f.RequiredName
    workspace_name: WorkspaceName


class EmailIn(_In):
    email: f.Email


class CodeIn(_In):
    email: f.Email
    code: Code
    workspace_id: str | None = None


class SignInIn(_In):
    email: f.Email
    password: Annotated[str, StringConstraints(max_length=PASSWORD_MAX)]
    workspace_id: str | None = None


class AcceptInvitationIn(_In):
    email: f.Email
    code: Code
    name: f.text(f.NAME_MAX) = None  # type: ignore[valid-type]
    password: Password | None = None


class ApiKeyIn(_In):
    name: f.RequiredName
    role: Role
    expires_at: datetime | None = None


class InviteIn(_In):
    email: f.Email
    role: Role


def _validate(model: type[BaseModel], values: dict[str, Any]) -> tuple[Any, list[Problem]]:
    try:
        return model.model_validate(values), []
    except ValidationError as exc:
        return None, problems_from(exc)


# ---------------------------------------------------------------- shared steps


def _client_address(ctx: Context) -> str:
    client = ctx.request.client
    return client.host if client else "unknown"


async def _rate_limited(ctx: Context, action: str, email: str | None) -> Problem | None:
    """Counts an attempt per email and per client address; RATE_LIMITED past the limit."""
    keys = [f"{action}:ip:{_client_address(ctx)}"]
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
    return Problem(
        f"Too many attempts; try again in {retry} seconds.",
        UserErrorCode.RATE_LIMITED,
        None,
        retry_after=retry,
    )


async def _code_cooldown(ctx: Context, session: Any, key: str) -> Problem | None:
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


async def _send_code(ctx: Context, to: str, email: tuple[str, str], cooldown: str) -> None:
    """Emails a code that was just issued. When the mail server fails (the mailer logs why),
    the cooldown the code started is taken back, so that asking again at once works, and the
    caller is told to try again: EMAIL_NOT_SENT. The code stays valid, in case it arrives."""
    try:
        await ctx.mailer.send(to, *email)
    except MailNotSent as exc:
        async with ctx.db.write() as session:
            await ratelimit.undo(session, _cooldown_key(cooldown))
        raise Unavailable(EMAIL_NOT_SENT, "EMAIL_NOT_SENT") from exc


async def _issue_code(session: Any, email: str, purpose: CodePurpose, **extra: Any) -> str:
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


def _invalid_code() -> Problem:
    return Problem(
        "The code is wrong, used or expired; ask for a new one.",
        UserErrorCode.INVALID_CODE,
        ["input", "code"],
    )


async def _consume_code(session: Any, email: str, purpose: CodePurpose, code: str) -> Row[Any]:
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
        # Returned, not raised: the attempts must be committed.
        raise _KeepAndReport([_invalid_code()])
    if not await codes.use(match.id, now):
        raise Abort([_invalid_code()])
    return match


class _KeepAndReport(Exception):
    """Like Abort, but what the transaction wrote so far is committed."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("report")
        self.problems = problems


async def _start_session(
    ctx: Context, session: Any, user_id: int, workspace_id: int
) -> tuple[str, Row[Any]]:
    now = utcnow()
    token = new_token(SESSION_PREFIX)
    user_agent = (ctx.request.headers.get("user-agent") or "")[:200] or None
    row = await SessionRepository(session).insert(
        user_id=user_id,
        workspace_id=workspace_id,
        token_hash=token_hash(token),
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(minutes=ctx.settings.session_max_age_minutes),
        user_agent=user_agent,
        ip=_client_address(ctx)[:64],
    )
    return token, row


async def _pick_workspace(session: Any, user_id: int, workspace_id: str | None) -> Row[Any]:
    """The membership a sign-in lands in: the one asked for, or the oldest."""
    if workspace_id is not None:
        pk, problem = pk_for_mutation(workspace_id, "Workspace", ["input", "workspaceId"])
        membership = None if pk is None else await MembershipRepository(session, pk).get(user_id)
        if membership is None:
            raise Abort(
                [
                    problem
                    or Problem(
                        "You are not a member of this workspace.",
                        UserErrorCode.NOT_FOUND,
                        ["input", "workspaceId"],
                    )
                ]
            )
        return membership
    membership = await MembershipRepository.first_for_user(session, user_id)
    if membership is None:
        raise Abort([Problem("You are not a member of any workspace.", UserErrorCode.NOT_FOUND)])
    return membership


async def _signed_in(
    ctx: Context, session: Any, user: Row[Any], membership: Row[Any]
) -> AuthOutcome:
    token, row = await _start_session(ctx, session, user.id, membership.workspace_id)
    principal = Principal(
        membership.workspace_id, Role(membership.role), user_id=user.id, session_id=row.id
    )
    return AuthOutcome(token=token, principal=principal, user=user, session=row)


async def _run(ctx: Context, step: Any) -> AuthOutcome:
    """Runs ``step(session)`` in one unit of work; Abort rolls back, _KeepAndReport commits.
    The step runs again if the database aborts it to break a deadlock (two OWNERs demoting
    each other lock the same memberships in opposite orders)."""

    async def attempt(session: Any) -> AuthOutcome:
        try:
            outcome: AuthOutcome = await step(session)
        except _KeepAndReport as report:
            return AuthOutcome(problems=report.problems)
        return outcome

    try:
        outcome = await ctx.db.transaction(attempt)
    except Abort as abort:
        return AuthOutcome(problems=abort.problems)
    ctx.clear_loaders()
    return outcome


# ---------------------------------------------------------------- sign-up and sign-in


async def sign_up(ctx: Context, values: dict[str, Any]) -> AuthOutcome:
    data, problems = _validate(SignUpIn, values)
    if problems:
        return AuthOutcome(problems=problems)
    if limited := await _rate_limited(ctx, "sign-up", data.email):
        return AuthOutcome(problems=[limited])
    password_hash = await hash_password(data.password)
    cooldown = f"VERIFY_EMAIL:{f.fold(data.email)}"
    sent: dict[str, str] = {}

    async def step(session: Any) -> AuthOutcome:
        sent.clear()  # a retried attempt must not send what a rolled-back one made
        users = UserRepository(session)
        user = await users.by_email(data.email)
        if user is not None and user.email_verified_at is not None:
            raise Abort(
                [
                    Problem(
                        "An account with this email already exists; sign in instead.",
                        UserErrorCode.TAKEN,
                        ["input", "email"],
                    )
                ]
            )
        if wait := await _code_cooldown(ctx, session, cooldown):
            raise Abort([wait])
        now = utcnow()
        if user is None:
            user = await users.insert(
                email=data.email, name=data.name, password_hash=password_hash, created_at=now
            )
            workspace = await WorkspaceRepository(session).insert(data.workspace_name, now)
            await MembershipRepository(session, workspace.id).insert(user.id, Role.OWNER.value, now)
        # An unverified account keeps its first password and workspace: only the code is sent
        # again, so nobody can take over an address they cannot read.
        sent["code"] = await _issue_code(session, data.email, CodePurpose.VERIFY_EMAIL)
        return AuthOutcome(user=user)

    outcome = await _run(ctx, step)
    if "code" in sent:
        await _send_code(ctx, data.email, code_email(sent["code"], "VERIFY_EMAIL"), cooldown)
    return outcome


async def _sign_in_with_code(
    ctx: Context, values: dict[str, Any], purpose: CodePurpose, action: str
) -> AuthOutcome:
    """Consumes an emailed code and opens a session; the code also proves the address."""
    data, problems = _validate(CodeIn, values)
    if problems:
        return AuthOutcome(problems=problems)
    if limited := await _rate_limited(ctx, action, data.email):
        return AuthOutcome(problems=[limited])

    async def step(session: Any) -> AuthOutcome:
        await _consume_code(session, data.email, purpose, data.code)
        users = UserRepository(session)
        user = await users.by_email(data.email)
        if user is None:
            raise Abort([_invalid_code()])
        if user.email_verified_at is None:
            user = await users.update(user.id, email_verified_at=utcnow())
        membership = await _pick_workspace(session, user.id, data.workspace_id)
        return await _signed_in(ctx, session, user, membership)

    return await _run(ctx, step)


async def verify_email(ctx: Context, values: dict[str, Any]) -> AuthOutcome:
    return await _sign_in_with_code(ctx, values, CodePurpose.VERIFY_EMAIL, "verify")


def _bad_credentials() -> Problem:
    return Problem("The email or the password is wrong.", UserErrorCode.INVALID_CREDENTIALS)


async def sign_in(ctx: Context, values: dict[str, Any]) -> AuthOutcome:
    data, problems = _validate(SignInIn, values)
    if problems:
        # A malformed email cannot belong to an account: answer as for any failure.
        return AuthOutcome(problems=[_bad_credentials()])
    if limited := await _rate_limited(ctx, "sign-in", data.email):
        return AuthOutcome(problems=[limited])
    async with ctx.db.read() as conn:
        user = await UserRepository(conn).by_email(data.email)
    # Verified even for an unknown email, so the answer takes as long either way.
    if not await verify_password(data.password, user.password_hash if user else None):
        return AuthOutcome(problems=[_bad_credentials()])
    assert user is not None
    if user.email_verified_at is None:
        return AuthOutcome(
            problems=[
                Problem(
                    "Verify your email address first: use the code we sent (signUp resends it).",
                    UserErrorCode.EMAIL_NOT_VERIFIED,
                    ["input", "email"],
                )
            ]
        )

    async def step(session: Any) -> AuthOutcome:
        membership = await _pick_workspace(session, user.id, data.workspace_id)
        return await _signed_in(ctx, session, user, membership)

    return await _run(ctx, step)


async def request_sign_in_code(ctx: Context, values: dict[str, Any]) -> AuthOutcome:
    """Emails a code when the address has an account; the answer is the same either way."""
    data, problems = _validate(EmailIn, values)
    if problems:
        return AuthOutcome(problems=problems)
    if limited := await _rate_limited(ctx, "sign-in-code", data.email):
        return AuthOutcome(problems=[limited])
    cooldown = f"SIGN_IN:{f.fold(data.email)}"
    sent: dict[str, str] = {}

    async def step(session: Any) -> AuthOutcome:
        sent.clear()  # a retried attempt must not send what a rolled-back one made
        if wait := await _code_cooldown(ctx, session, cooldown):
            raise Abort([wait])
        if await UserRepository(session).by_email(data.email) is not None:
            sent["code"] = await _issue_code(session, data.email, CodePurpose.SIGN_IN)
        return AuthOutcome()

    outcome = await _run(ctx, step)
    if "code" in sent:
        await _send_code(ctx, data.email, code_email(sent["code"], "SIGN_IN"), cooldown)
    return outcome


async def sign_in_with_code(ctx: Context, values: dict[str, Any]) -> AuthOutcome:
    return await _sign_in_with_code(ctx, values, CodePurpose.SIGN_IN, "sign-in")


# ---------------------------------------------------------------- sessions


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

    return await _run(ctx, step)


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

    return await _run(ctx, step)


# ---------------------------------------------------------------- API keys


async def create_api_key(ctx: Context, values: dict[str, Any]) -> AuthOutcome:
    principal = ctx.require(Role.ADMIN)
    data, problems = _validate(ApiKeyIn, values)
    if data is not None and not _may_manage(principal.role, None, data.role):
        # Keys follow the member rule: only an OWNER hands out ADMIN or OWNER rights.
        problems.append(_forbidden_role(["input", "role"]))
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
        )
        return AuthOutcome(api_key=row, token=secret)

    return await _run(ctx, step)


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
        if not _may_manage(principal.role, Role(row.role), None):
            raise Abort([_forbidden_role(["id"])])
        if row.revoked_at is None:
            row = await keys.revoke(pk, utcnow())
        return AuthOutcome(api_key=row)

    return await _run(ctx, step)


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


# ---------------------------------------------------------------- members


def _may_manage(actor: Role, target: Role | None, new: Role | None) -> bool:
    """Admins manage members and viewers; only owners touch admins and owners."""
    needed = max(
        (r for r in (target, new) if r is not None), key=lambda r: r.rank, default=Role.VIEWER
    )
    return actor is Role.OWNER or not needed.includes(Role.ADMIN)


def _forbidden_role(field: list[str]) -> Problem:
    return Problem(
        "Only an OWNER can grant, change or remove the ADMIN and OWNER roles.",
        UserErrorCode.FORBIDDEN,
        field,
    )


async def list_members(ctx: Context) -> list[Row[Any]]:
    principal = ctx.require(Role.VIEWER)
    async with ctx.db.read() as conn:
        return await MembershipRepository(conn, principal.workspace_id).all()


async def invite_member(ctx: Context, values: dict[str, Any]) -> AuthOutcome:
    principal = ctx.require(Role.ADMIN)
    data, problems = _validate(InviteIn, values)
    if data is not None and not _may_manage(principal.role, None, data.role):
        problems.append(_forbidden_role(["input", "role"]))
    if problems:
        return AuthOutcome(problems=problems)
    cooldown = f"INVITATION:{principal.workspace_id}:{f.fold(data.email)}"
    sent: dict[str, str] = {}

    async def step(session: Any) -> AuthOutcome:
        sent.clear()  # a retried attempt must not send what a rolled-back one made
        user = await UserRepository(session).by_email(data.email)
        members = MembershipRepository(session, principal.workspace_id)
        if user is not None and await members.get(user.id) is not None:
            raise Abort(
                [
                    Problem(
                        "This person is already a member.", UserErrorCode.TAKEN, ["input", "email"]
                    )
                ]
            )
        if wait := await _code_cooldown(ctx, session, cooldown):
            raise Abort([wait])
        workspace = await WorkspaceRepository(session).get(principal.workspace_id)
        sent["workspace"] = workspace.name if workspace else ""
        sent["code"] = await _issue_code(
            session,
            data.email,
            CodePurpose.INVITATION,
            workspace_id=principal.workspace_id,
            role=data.role.value,
            invited_by_user_id=principal.user_id,
        )
        return AuthOutcome()

    outcome = await _run(ctx, step)
    if "code" in sent:
        email = code_email(sent["code"], "INVITATION", sent["workspace"])
        await _send_code(ctx, data.email, email, cooldown)
    return outcome


async def accept_invitation(ctx: Context, values: dict[str, Any]) -> AuthOutcome:
    """Joins the inviting workspace; a new person also sets their name and password here."""
    data, problems = _validate(AcceptInvitationIn, values)
    if problems:
        return AuthOutcome(problems=problems)
    if limited := await _rate_limited(ctx, "invitation", data.email):
        return AuthOutcome(problems=[limited])
    password_hash = await hash_password(data.password) if data.password else None

    async def step(session: Any) -> AuthOutcome:
        users = UserRepository(session)
        user = await users.by_email(data.email)
        if user is None:
            missing = []
            if not data.name:
                missing.append(
                    Problem("A new member needs a name.", UserErrorCode.REQUIRED, ["input", "name"])
                )
            if not password_hash:
                missing.append(
                    Problem(
                        "A new member needs a password.",
                        UserErrorCode.REQUIRED,
                        ["input", "password"],
                    )
                )
            if missing:
                raise Abort(missing)
        invitation = await _consume_code(session, data.email, CodePurpose.INVITATION, data.code)
        now = utcnow()
        if user is None:
            user = await users.insert(
                email=data.email,
                name=data.name,
                password_hash=password_hash,
                created_at=now,
                email_verified_at=now,
            )
        elif user.email_verified_at is None:
            user = await users.update(user.id, email_verified_at=now)
        members = MembershipRepository(session, invitation.workspace_id)
        membership = await members.get(user.id) or await members.insert(
            user.id, invitation.role, now
        )
        return await _signed_in(ctx, session, user, membership)

    return await _run(ctx, step)


async def update_member_role(ctx: Context, user_id: str, role: Any) -> AuthOutcome:
    principal = ctx.require(Role.ADMIN)
    new = Role(role.value)
    pk, problem = pk_for_mutation(user_id, "User", ["userId"])
    if pk is None:
        return AuthOutcome(problems=[problem] if problem else [])

    async def step(session: Any) -> AuthOutcome:
        members = MembershipRepository(session, principal.workspace_id)
        # The OWNER rows first, in id order, then the target: concurrent role changes take
        # their locks in one order and cannot deadlock.
        await members.owners(for_update=True)
        current = await members.get(pk, for_update=True)
        if current is None:
            raise Abort([not_found("member", ["userId"])])
        if not _may_manage(principal.role, Role(current.role), new):
            raise Abort([_forbidden_role(["role"])])
        if current.role == Role.OWNER.value and new is not Role.OWNER:
            await _keep_an_owner(members, pk, ["role"])
        return AuthOutcome(membership=await members.set_role(pk, new.value))

    return await _run(ctx, step)


async def remove_member(ctx: Context, user_id: str) -> AuthOutcome:
    principal = ctx.require(Role.ADMIN)
    pk, problem = pk_for_mutation(user_id, "User", ["userId"])
    if pk is None:
        return AuthOutcome(problems=[problem] if problem else [])

    async def step(session: Any) -> AuthOutcome:
        members = MembershipRepository(session, principal.workspace_id)
        # The OWNER rows first, in id order, then the target: concurrent role changes take
        # their locks in one order and cannot deadlock.
        await members.owners(for_update=True)
        current = await members.get(pk, for_update=True)
        if current is None:
            raise Abort([not_found("member", ["userId"])])
        if not _may_manage(principal.role, Role(current.role), None):
            raise Abort([_forbidden_role(["userId"])])
        if current.role == Role.OWNER.value:
            await _keep_an_owner(members, pk, ["userId"])
        await members.delete(pk)
        return AuthOutcome(removed_user_id=pk)

    return await _run(ctx, step)


async def _keep_an_owner(members: MembershipRepository, leaving: int, field: list[str]) -> None:
    owners = await members.owners(for_update=True)
    if all(o.user_id == leaving for o in owners):
        raise Abort(
            [
                Problem(
                    "The workspace must keep at least one OWNER: make someone else an OWNER first.",
                    UserErrorCode.LAST_OWNER,
                    field,
                )
            ]
        )


async def rename_workspace(ctx: Context, name: str) -> AuthOutcome:
    principal = ctx.require(Role.OWNER)

    class _Name(_In):
        name: WorkspaceName

    data, problems = _validate(_Name, {"name": name})
    if problems:
        return AuthOutcome(
            problems=[Problem(p.message, p.code, ["input", "name"]) for p in problems]
        )

    async def step(session: Any) -> AuthOutcome:
        row = await WorkspaceRepository(session).rename(principal.workspace_id, data.name)
        return AuthOutcome(workspace=row)

    return await _run(ctx, step)
