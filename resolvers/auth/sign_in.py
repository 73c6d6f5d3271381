"""Getting in: sign-up, email verification, sign-in with a password or an emailed code, and
the session each of them opens."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import StringConstraints
from sqlalchemy import Row

from db.models import CodePurpose, Role
from db.models import fields as f
from db.repositories.auth import (
    MembershipRepository,
    SessionRepository,
    UserRepository,
    WorkspaceRepository,
)
from db.types import utcnow
from resolvers.auth.codes import code_cooldown, consume_code, invalid_code, issue_code, send_code
from resolvers.auth.common import AuthOutcome, In, client_address, run
from resolvers.auth.limits import password_attempt, password_succeeded, rate_limited
from resolvers.context import Context
from resolvers.errors import Problem, UserErrorCode, validated
from resolvers.ids import pk_for_mutation
from resolvers.mail import account_exists_email, code_email
from resolvers.outcome import Abort
from resolvers.principal import Principal
from resolvers.security import (
    PASSWORD_MAX,
    PASSWORD_MIN,
    SESSION_PREFIX,
    hash_password,
    new_token,
    token_hash,
    verify_password,
)

Password = Annotated[str, StringConstraints(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{6}$")]


class SignUpIn(In):
    email: f.Email
    password: Password
    name: f.RequiredName
    workspace_name: f.RequiredName


class EmailIn(In):
    email: f.Email


class CodeIn(In):
    email: f.Email
    code: Code
    workspace_id: str | None = None


class SignInIn(In):
    email: f.Email
    password: Annotated[str, StringConstraints(max_length=PASSWORD_MAX)]
    workspace_id: str | None = None


# ---------------------------------------------------------------- the session a flow opens


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
        ip=client_address(ctx)[:64],
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


async def signed_in(
    ctx: Context, session: Any, user: Row[Any], membership: Row[Any]
) -> AuthOutcome:
    """Opens a session for ``user`` in the membership's workspace."""
    token, row = await _start_session(ctx, session, user.id, membership.workspace_id)
    principal = Principal(
        membership.workspace_id, Role(membership.role), user_id=user.id, session_id=row.id
    )
    return AuthOutcome(token=token, principal=principal, user=user, session=row)


# ---------------------------------------------------------------- sign-up and sign-in


async def sign_up(ctx: Context, values: dict[str, Any]) -> AuthOutcome:
    """Creates an unverified account and its workspace, and emails a code for verifyEmail. The
    answer is the same whether or not the address already has an account, so that nobody learns
    who has one: an existing account is left as it is and only emailed (a verified one gets a
    notice whose code signs it in through verifyEmail; an unverified one its code again, and
    loses its password if this sign-up chose another)."""
    data, problems = validated(SignUpIn, values)
    if problems:
        return AuthOutcome(problems=problems)
    if limited := await rate_limited(ctx, "sign-up", data.email):
        return AuthOutcome(problems=[limited])
    # Hashed and verified in every case, so the answer takes as long either way. The check
    # tells whether this sign-up agrees with the password an unverified account already has:
    # whoever signed up first with the address may not be its owner.
    password_hash = await hash_password(data.password)
    async with ctx.db.read() as conn:
        before = await UserRepository(conn).by_email(data.email)
    stored = before.password_hash if before is not None else None
    agrees = await verify_password(data.password, stored)
    cooldown = f"VERIFY_EMAIL:{f.fold(data.email)}"
    sent: dict[str, str] = {}

    async def step(session: Any) -> AuthOutcome:
        sent.clear()  # a retried attempt must not send what a rolled-back one made
        if wait := await code_cooldown(session, cooldown):
            raise Abort([wait])
        users = UserRepository(session)
        user = await users.by_email(data.email)
        now = utcnow()
        if user is None:
            user = await users.insert(
                email=data.email, name=data.name, password_hash=password_hash, created_at=now
            )
            workspace = await WorkspaceRepository(session).insert(data.workspace_name, now)
            await MembershipRepository(session, workspace.id).insert(user.id, Role.OWNER.value, now)
        elif user.email_verified_at is None and not (agrees and user.password_hash == stored):
            # Two sign-ups of one unverified address chose different passwords, and either
            # may be someone else's: neither is kept. The owner signs in by emailed code.
            user = await users.update(user.id, password_hash=None)
        # An existing account keeps its workspace: only a code is sent, so nobody can take over
        # an address they cannot read.
        sent["code"] = await issue_code(session, data.email, CodePurpose.VERIFY_EMAIL)
        sent["exists"] = "yes" if user.email_verified_at is not None else ""
        return AuthOutcome()

    outcome = await run(ctx, step)
    if "code" in sent:
        if sent["exists"]:
            email = account_exists_email(sent["code"])
        else:
            email = code_email(sent["code"], "VERIFY_EMAIL")
        await send_code(ctx, data.email, email, cooldown)
    return outcome


async def _sign_in_with_code(
    ctx: Context, values: dict[str, Any], purpose: CodePurpose, action: str
) -> AuthOutcome:
    """Consumes an emailed code and opens a session; the code also proves the address."""
    data, problems = validated(CodeIn, values)
    if problems:
        return AuthOutcome(problems=problems)
    if limited := await rate_limited(ctx, action, data.email):
        return AuthOutcome(problems=[limited])

    async def step(session: Any) -> AuthOutcome:
        await consume_code(session, data.email, purpose, data.code)
        users = UserRepository(session)
        user = await users.by_email(data.email)
        if user is None:
            raise Abort([invalid_code()])
        if user.email_verified_at is None:
            # Only signUp's own code vouches for the password (every sign-up of the address
            # agreed on it); a sign-in code may be read by the owner of an address that someone
            # else signed up with, so that password goes.
            kept = user.password_hash if purpose is CodePurpose.VERIFY_EMAIL else None
            user = await users.update(user.id, email_verified_at=utcnow(), password_hash=kept)
        membership = await _pick_workspace(session, user.id, data.workspace_id)
        return await signed_in(ctx, session, user, membership)

    return await run(ctx, step)


async def verify_email(ctx: Context, values: dict[str, Any]) -> AuthOutcome:
    return await _sign_in_with_code(ctx, values, CodePurpose.VERIFY_EMAIL, "verify")


def _bad_credentials() -> Problem:
    return Problem("The email or the password is wrong.", UserErrorCode.INVALID_CREDENTIALS)


async def sign_in(ctx: Context, values: dict[str, Any]) -> AuthOutcome:
    data, problems = validated(SignInIn, values)
    if problems:
        # A malformed email cannot belong to an account: answer as for any failure.
        return AuthOutcome(problems=[_bad_credentials()])
    if limited := await password_attempt(ctx, data.email):
        return AuthOutcome(problems=[limited])
    async with ctx.db.read() as conn:
        user = await UserRepository(conn).by_email(data.email)
    # Verified even for an unknown email, so the answer takes as long either way.
    if not await verify_password(data.password, user.password_hash if user else None):
        return AuthOutcome(problems=[_bad_credentials()])
    assert user is not None
    await password_succeeded(ctx, data.email)
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
        return await signed_in(ctx, session, user, membership)

    return await run(ctx, step)


async def request_sign_in_code(ctx: Context, values: dict[str, Any]) -> AuthOutcome:
    """Emails a code when the address has an account; the answer is the same either way."""
    data, problems = validated(EmailIn, values)
    if problems:
        return AuthOutcome(problems=problems)
    if limited := await rate_limited(ctx, "sign-in-code", data.email):
        return AuthOutcome(problems=[limited])
    cooldown = f"SIGN_IN:{f.fold(data.email)}"
    sent: dict[str, str] = {}

    async def step(session: Any) -> AuthOutcome:
        sent.clear()  # a retried attempt must not send what a rolled-back one made
        if wait := await code_cooldown(session, cooldown):
            raise Abort([wait])
        if await UserRepository(session).by_email(data.email) is not None:
            sent["code"] = await issue_code(session, data.email, CodePurpose.SIGN_IN)
        return AuthOutcome()

    outcome = await run(ctx, step)
    if "code" in sent:
        await send_code(ctx, data.email, code_email(sent["code"], "SIGN_IN"), cooldown)
    return outcome


async def sign_in_with_code(ctx: Context, values: dict[str, Any]) -> AuthOutcome:
    # Its own counters: failed passwords do not close the emailed-code path.
    return await _sign_in_with_code(ctx, values, CodePurpose.SIGN_IN, "sign-in-with-code")
