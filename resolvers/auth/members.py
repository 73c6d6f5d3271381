"""A workspace's people: members, invitations (sent and accepted), roles, and its name."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from db.models import CodePurpose, Role
from db.models import fields as f
from db.repositories.auth import MembershipRepository, UserRepository, WorkspaceRepository
from db.types import utcnow
from resolvers.auth.codes import code_cooldown, consume_code, issue_code, send_code
from resolvers.auth.common import AuthOutcome, In, forbidden_role, may_manage, run
from resolvers.auth.limits import rate_limited
from resolvers.auth.sign_in import Code, Password, signed_in
from resolvers.context import Context
from resolvers.errors import Problem, UserErrorCode, not_found, validated
from resolvers.events import Unit
from resolvers.ids import pk_for_mutation
from resolvers.mail import code_email
from resolvers.outcome import Abort
from resolvers.security import hash_password
from resolvers.tickets import unassign_member as unassign_tickets


class InviteIn(In):
    email: f.Email
    role: Role


class AcceptInvitationIn(In):
    email: f.Email
    code: Code
    name: f.text(f.NAME_MAX) = None  # type: ignore[valid-type]
    password: Password | None = None


class WorkspaceIn(In):
    name: f.RequiredName


async def list_members(ctx: Context) -> list[Row[Any]]:
    principal = ctx.require(Role.VIEWER)
    async with ctx.db.read() as conn:
        return await MembershipRepository(conn, principal.workspace_id).all()


async def invite_member(ctx: Context, values: dict[str, Any]) -> AuthOutcome:
    principal = ctx.require(Role.ADMIN)
    data, problems = validated(InviteIn, values)
    if data is not None and not may_manage(principal.role, None, data.role):
        problems.append(forbidden_role(["input", "role"]))
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
        if wait := await code_cooldown(session, cooldown):
            raise Abort([wait])
        workspace = await WorkspaceRepository(session).get(principal.workspace_id)
        sent["workspace"] = workspace.name if workspace else ""
        sent["code"] = await issue_code(
            session,
            data.email,
            CodePurpose.INVITATION,
            workspace_id=principal.workspace_id,
            role=data.role.value,
            invited_by_user_id=principal.user_id,
        )
        return AuthOutcome()

    outcome = await run(ctx, step)
    if "code" in sent:
        email = code_email(sent["code"], "INVITATION", sent["workspace"])
        await send_code(ctx, data.email, email, cooldown)
    return outcome


async def accept_invitation(ctx: Context, values: dict[str, Any]) -> AuthOutcome:
    """Joins the inviting workspace; a new person also sets their name and password here."""
    data, problems = validated(AcceptInvitationIn, values)
    if problems:
        return AuthOutcome(problems=problems)
    if limited := await rate_limited(ctx, "invitation", data.email):
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
        invitation = await consume_code(session, data.email, CodePurpose.INVITATION, data.code)
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
            # Whoever signed up first with this address may have set its password: reading the
            # invitation proves the address, and the password given here (or none) replaces it.
            user = await users.update(user.id, email_verified_at=now, password_hash=password_hash)
        members = MembershipRepository(session, invitation.workspace_id)
        membership = await members.get(user.id) or await members.insert(
            user.id, invitation.role, now
        )
        return await signed_in(ctx, session, user, membership)

    return await run(ctx, step)


async def _locked_member(members: MembershipRepository, pk: int) -> Row[Any]:
    """The member about to change, locked; Abort(NOT_FOUND) if there is none. The OWNER rows
    are locked first, in id order, then the target: concurrent role changes take their locks
    in one order and cannot deadlock."""
    await members.owners(for_update=True)
    current = await members.get(pk, for_update=True)
    if current is None:
        raise Abort([not_found("member", ["userId"])])
    return current


async def update_member_role(ctx: Context, user_id: str, role: Any) -> AuthOutcome:
    principal = ctx.require(Role.ADMIN)
    new = Role(role.value)
    pk, problem = pk_for_mutation(user_id, "User", ["userId"])
    if pk is None:
        return AuthOutcome(problems=[problem] if problem else [])

    async def step(session: Any) -> AuthOutcome:
        members = MembershipRepository(session, principal.workspace_id)
        current = await _locked_member(members, pk)
        if not may_manage(principal.role, Role(current.role), new):
            raise Abort([forbidden_role(["role"])])
        if current.role == Role.OWNER.value and new is not Role.OWNER:
            await _keep_an_owner(members, pk, ["role"])
        return AuthOutcome(membership=await members.set_role(pk, new.value))

    return await run(ctx, step)


async def remove_member(ctx: Context, user_id: str) -> AuthOutcome:
    principal = ctx.require(Role.ADMIN)
    pk, problem = pk_for_mutation(user_id, "User", ["userId"])
    if pk is None:
        return AuthOutcome(problems=[problem] if problem else [])

    # The unit of work's events (the records unassigned), of the attempt that committed.
    units: list[Unit] = []

    async def step(session: Any) -> AuthOutcome:
        from resolvers.tags import unassign_member

        members = MembershipRepository(session, principal.workspace_id)
        current = await _locked_member(members, pk)
        if not may_manage(principal.role, Role(current.role), None):
            raise Abort([forbidden_role(["userId"])])
        if current.role == Role.OWNER.value:
            await _keep_an_owner(members, pk, ["userId"])
        await members.delete(pk)
        # Their leads and clients (and their open tickets below; follow-ups with that part)
        # are unassigned in this same transaction, with an event per record.
        unit = Unit(ctx, session)
        await unassign_member(unit, pk)
        await unit.append()
        units[:] = [unit]
        await unassign_tickets(ctx, session, pk)  # their open tickets, each with its event
        return AuthOutcome(removed_user_id=pk)

    outcome = await run(ctx, step)
    if outcome.removed_user_id is not None and units:
        units[0].committed()
    return outcome


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
    data, problems = validated(WorkspaceIn, {"name": name})
    if problems:
        return AuthOutcome(
            problems=[Problem(p.message, p.code, ["input", "name"]) for p in problems]
        )

    async def step(session: Any) -> AuthOutcome:
        row = await WorkspaceRepository(session).rename(principal.workspace_id, data.name)
        return AuthOutcome(workspace=row)

    return await run(ctx, step)
