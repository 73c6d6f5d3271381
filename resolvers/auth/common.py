"""What the account flows share: their outcome, their input models' base, the unit of work
they run in, the caller's address, and the rule on who may hand out which role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Row

from db.models import Role
from resolvers.context import Context
from resolvers.errors import Problem, UserErrorCode
from resolvers.outcome import Abort
from resolvers.principal import Principal


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


class In(BaseModel):
    """Base of the flows' input models: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


class KeepAndReport(Exception):
    """Like Abort, but what the transaction wrote so far is committed."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("report")
        self.problems = problems


Step = Callable[[Any], Awaitable[AuthOutcome]]


async def run(ctx: Context, step: Step) -> AuthOutcome:
    """Runs ``step(session)`` in one unit of work; Abort rolls back, KeepAndReport commits.
    The step runs again if the database aborts it to break a deadlock (two OWNERs demoting
    each other lock the same memberships in opposite orders)."""

    async def attempt(session: Any) -> AuthOutcome:
        try:
            outcome: AuthOutcome = await step(session)
        except KeepAndReport as report:
            return AuthOutcome(problems=report.problems)
        return outcome

    try:
        outcome = await ctx.db.transaction(attempt)
    except Abort as abort:
        return AuthOutcome(problems=abort.problems)
    ctx.clear_loaders()
    return outcome


def client_address(ctx: Context) -> str:
    client = ctx.request.client
    return client.host if client else "unknown"


def may_manage(actor: Role, target: Role | None, new: Role | None) -> bool:
    """Admins manage members and viewers; only owners touch admins and owners."""
    needed = max(
        (r for r in (target, new) if r is not None), key=lambda r: r.rank, default=Role.VIEWER
    )
    return actor is Role.OWNER or not needed.includes(Role.ADMIN)


def forbidden_role(field: list[str]) -> Problem:
    return Problem(
        "Only an OWNER can grant, change or remove the ADMIN and OWNER roles.",
        UserErrorCode.FORBIDDEN,
        field,
    )
