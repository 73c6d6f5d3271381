"""Pipeline counts: ``LeadConnection.aggregate``, over every lead the connection's filter
matches. Each field runs its statement only when selected."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from resolvers import lead_counts as resolve
from schema.auth import User
from schema.context import Info

if TYPE_CHECKING:
    from db.models import LeadStatus  # schema.leads serves it as the GraphQL enum

LeadStatusRef = Annotated["LeadStatus", strawberry.lazy("schema.leads")]
GROUPS = "The largest groups first; at most `first` of them (1 to 100)."
DAYS = "The last `days` UTC days ending today (1 to 366), oldest first, zeros included."


@strawberry.type
class StatusCount:
    status: LeadStatusRef
    count: int


@strawberry.type
class ValueCount:
    value: str | None = strawberry.field(
        description="null: not set. Values that differ only in case (states: also name and "
        "code, 'Texas' and 'TX') are one group, spelled as the first stored (lowest id) of the "
        "leads it counts spells it."
    )
    count: int


@strawberry.type
class OwnerCount:
    owner: User | None = strawberry.field(description="null: unassigned.")
    count: int


@strawberry.type
class DayCount:
    day: str = strawberry.field(description='"YYYY-MM-DD", UTC.')
    count: int


@strawberry.type(description="Counts over every lead that matches the connection's filter.")
class LeadAggregate:
    spec: strawberry.Private[Any]

    @strawberry.field
    async def count(self, info: Info) -> int:
        return await resolve.count(info.context, self.spec)

    @strawberry.field(description="null when no lead matches.")
    async def average_score(self, info: Info) -> float | None:
        return await resolve.average_score(info.context, self.spec)

    @strawberry.field(description="Every status, in order, zeros included.")
    async def by_status(self, info: Info) -> list[StatusCount]:
        counts = await resolve.by_status(info.context, self.spec)
        return [StatusCount(status=s, count=n) for s, n in counts.items()]  # type: ignore[arg-type]

    @strawberry.field(description=GROUPS + " Ties by value, not set last.")
    async def by_source(self, info: Info, first: int | None = 10) -> list[ValueCount]:
        rows = await resolve.by_source(info.context, self.spec, 10 if first is None else first)
        return [ValueCount(value=r.value, count=r.count) for r in rows]

    @strawberry.field(description=GROUPS + " Ties by value, not set last.")
    async def by_state(self, info: Info, first: int | None = 10) -> list[ValueCount]:
        rows = await resolve.by_state(info.context, self.spec, 10 if first is None else first)
        return [ValueCount(value=r.value, count=r.count) for r in rows]

    @strawberry.field(description=GROUPS + " Ties by owner, unassigned last.")
    async def by_owner(self, info: Info, first: int | None = 10) -> list[OwnerCount]:
        rows = await resolve.by_owner(info.context, self.spec, 10 if first is None else first)
        return [OwnerCount(owner=User.from_row(u) if u else None, count=n) for u, n in rows]

    @strawberry.field(description=DAYS)
    async def created_per_day(self, info: Info, days: int | None = 30) -> list[DayCount]:
        counts = await resolve.per_day(
            info.context, self.spec, "created_at", 30 if days is None else days
        )
        return [DayCount(day=d, count=n) for d, n in counts]

    @strawberry.field(description=DAYS + " Leads by the day they were converted.")
    async def converted_per_day(self, info: Info, days: int | None = 30) -> list[DayCount]:
        counts = await resolve.per_day(
            info.context, self.spec, "converted_at", 30 if days is None else days
        )
        return [DayCount(day=d, count=n) for d, n in counts]


__all__ = ["DayCount", "LeadAggregate", "OwnerCount", "StatusCount", "ValueCount"]
