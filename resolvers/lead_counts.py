"""Pipeline counts (``LeadConnection.aggregate``): over every lead the connection's filter
matches, one statement per count asked for, each on a read connection of its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from db.models import LeadStatus, Role
from db.repositories.lead_counts import LeadCounts, ValueRow
from db.repositories.leads import LeadFilterSpec
from resolvers.errors import BadInput

if TYPE_CHECKING:
    from resolvers.context import Context

T = TypeVar("T")

MAX_GROUPS = 100  # bySource, byState, byOwner: first in 1..100
MAX_DAYS = 366  # createdPerDay, convertedPerDay: days in 1..366


def _bounded(value: int, argument: str, most: int) -> int:
    if not 1 <= value <= most:
        raise BadInput(
            f"Argument '{argument}' must be between 1 and {most} (got {value}).", argument
        )
    return value


async def _read(
    ctx: Context, spec: LeadFilterSpec | None, run: Callable[[LeadCounts], Awaitable[T]]
) -> T:
    ctx.require(Role.VIEWER)
    async with ctx.db.read() as conn:
        return await run(LeadCounts(conn, ctx.workspace_id))


async def count(ctx: Context, spec: LeadFilterSpec | None) -> int:
    """How many leads match: the connection's totalCount."""
    return await _read(ctx, spec, lambda counts: counts.count(spec))


async def average_score(ctx: Context, spec: LeadFilterSpec | None) -> float | None:
    return await _read(ctx, spec, lambda counts: counts.average_score(spec))


async def by_status(ctx: Context, spec: LeadFilterSpec | None) -> dict[LeadStatus, int]:
    return await _read(ctx, spec, lambda counts: counts.by_status(spec))


async def by_source(ctx: Context, spec: LeadFilterSpec | None, first: int) -> list[ValueRow]:
    first = _bounded(first, "first", MAX_GROUPS)
    return await _read(ctx, spec, lambda counts: counts.by_text(spec, "source_key", first))


async def by_state(ctx: Context, spec: LeadFilterSpec | None, first: int) -> list[ValueRow]:
    first = _bounded(first, "first", MAX_GROUPS)
    return await _read(ctx, spec, lambda counts: counts.by_text(spec, "state_key", first))


async def by_owner(ctx: Context, spec: LeadFilterSpec | None, first: int) -> list[tuple[Any, int]]:
    first = _bounded(first, "first", MAX_GROUPS)
    return await _read(ctx, spec, lambda counts: counts.by_owner(spec, first))


async def per_day(
    ctx: Context, spec: LeadFilterSpec | None, column: str, days: int
) -> list[tuple[str, int]]:
    """The last ``days`` UTC days ending today, oldest first, each with its count of leads
    whose ``column`` (created_at, converted_at) falls on it; zeros included."""
    days = _bounded(days, "days", MAX_DAYS)
    today = datetime.now(UTC).date()
    first_day = today - timedelta(days=days - 1)
    start = datetime.combine(first_day, time(), UTC)
    end = datetime.combine(today + timedelta(days=1), time(), UTC)
    found = await _read(ctx, spec, lambda counts: counts.per_day(spec, column, start, end))
    every = (first_day + timedelta(days=n) for n in range(days))
    return [(day.isoformat(), found.get(day, 0)) for day in every]
