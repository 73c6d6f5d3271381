"""Follow-ups: a title, a due time and an assignee on a lead or client; Query.followUps, the
``followUps`` connection of Lead and Client, createFollowUp and updateFollowUp."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import Row

from db.models import DueWindow as _DueWindow
from db.models import FollowUpStatus as _FollowUpStatus
from resolvers import follow_ups as resolve
from resolvers.ids import parse_global_id, to_global_id
from schema.auth import User
from schema.context import Info
from schema.errors import UserError, user_errors
from schema.records import order_input
from schema.relay import Connection, Node, input_values

FollowUpStatus = strawberry.enum(_FollowUpStatus, name="FollowUpStatus")
DueWindow = strawberry.enum(
    _DueWindow,
    name="DueWindow",
    description="When a follow-up is due, in UTC: OVERDUE before now (and OPEN); TODAY on "
    "today's UTC date; NEXT_7_DAYS from now to now + 7 days.",
)


@strawberry.type(description="A task on a lead or client: a title, a due time, an assignee.")
class FollowUp(Node):
    id: strawberry.ID
    title: str
    notes: str | None
    due_at: datetime
    status: FollowUpStatus  # type: ignore[valid-type]
    completed_at: datetime | None = strawberry.field(
        description="When it became DONE; null while it is not."
    )
    created_at: datetime
    lead_id: strawberry.Private[int | None]
    client_id: strawberry.Private[int | None]
    assignee_user_id: strawberry.Private[int | None]

    @strawberry.field(
        description="The member it is assigned to (emailed a reminder once, at dueAt, while "
        "OPEN); null: unassigned."
    )
    async def assignee(self, info: Info) -> User | None:
        if self.assignee_user_id is None:
            return None
        row = await info.context.loaders.user_by_id.load(self.assignee_user_id)
        return User.from_row(row) if row is not None else None

    @strawberry.field(description="The lead or client it is on.")
    async def subject(self, info: Info) -> Node:
        from schema.nodes import load_subject  # schema.nodes knows FollowUp: imported when used

        return await load_subject(info, self.lead_id, self.client_id)

    @classmethod
    def from_row(cls, row: Row[Any]) -> FollowUp:
        return cls(
            id=strawberry.ID(to_global_id(resolve.FOLLOW_UP, row.id)),
            title=row.title,
            notes=row.notes,
            due_at=row.due_at,
            status=_FollowUpStatus(row.status),
            completed_at=row.completed_at,
            created_at=row.created_at,
            lead_id=row.lead_id,
            client_id=row.client_id,
            assignee_user_id=row.assignee_user_id,
        )

    @classmethod
    def maybe(cls, row: Row[Any] | None) -> FollowUp | None:
        return cls.from_row(row) if row is not None else None


FollowUpConnection = Connection[FollowUp]


@strawberry.input(description="Every condition given must hold.")
class FollowUpFilter:
    status: list[FollowUpStatus] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Any of these; left out or null: OPEN only."
    )
    assignee_id: strawberry.ID | None = strawberry.field(
        default=None, description="Assigned to this member."
    )
    mine: bool | None = strawberry.field(
        default=None,
        description="true: assigned to the caller (an API key is assigned nothing: none).",
    )
    due: DueWindow | None = None  # type: ignore[valid-type]
    subject_id: strawberry.ID | None = strawberry.field(
        default=None, description="On this lead or client."
    )


FollowUpOrder = order_input(
    "FollowUp", resolve.SORTS, "Left out or null: ASC for DUE_AT, DESC for CREATED_AT."
)


def follow_ups_field(subject_type: str) -> Any:
    """A Lead's or Client's ``followUps(first, after, filter): FollowUpConnection!``."""

    async def resolve_follow_ups(
        self: Any,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: FollowUpFilter | None = None,
    ) -> FollowUpConnection:  # type: ignore[valid-type]
        parsed = parse_global_id(self.id)
        assert parsed is not None  # the record's own ID
        page = await resolve.subject_follow_ups(
            info.context, subject_type, parsed[1], first, after, filter
        )
        return FollowUpConnection.from_page(page, FollowUp.from_row)  # type: ignore[no-any-return]

    return strawberry.field(
        resolve_follow_ups,
        description="Its follow-ups, due first (OPEN ones unless the filter says otherwise); "
        "20 a page by default, at most 100.",
    )


@strawberry.input
class CreateFollowUpInput:
    subject_id: strawberry.ID = strawberry.field(description="The lead or client.")
    title: str = strawberry.field(description="Trimmed; at most 200 characters.")
    due_at: datetime
    assignee_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="A member of the workspace; left out: nobody."
    )
    notes: str | None = strawberry.field(
        default=strawberry.UNSET, description="At most 10,000 characters."
    )


@strawberry.input(
    description="Every field optional; a field left out is unchanged. notes: null clears "
    "them, assigneeId: null unassigns; DONE sets completedAt, another status clears it."
)
class UpdateFollowUpInput:
    title: str | None = strawberry.UNSET
    due_at: datetime | None = strawberry.UNSET
    assignee_id: strawberry.ID | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET
    status: FollowUpStatus | None = strawberry.UNSET  # type: ignore[valid-type]


@strawberry.type
class FollowUpPayload:
    follow_up: FollowUp | None
    user_errors: list[UserError]


@strawberry.type
class FollowUpQuery:
    @strawberry.field(
        description="The workspace's follow-ups (OPEN ones unless the filter says otherwise), "
        "due first unless orderBy says otherwise. Page with first/after or last/before: 20 "
        "by default, at most 100."
    )
    async def follow_ups(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: FollowUpFilter | None = None,
        order_by: FollowUpOrder | None = None,  # type: ignore[valid-type]
    ) -> FollowUpConnection:  # type: ignore[valid-type]
        page = await resolve.follow_ups(info.context, first, after, last, before, filter, order_by)
        return FollowUpConnection.from_page(page, FollowUp.from_row)  # type: ignore[no-any-return]


@strawberry.type
class FollowUpMutation:
    @strawberry.mutation(description="A follow-up on a lead or client, OPEN.")
    async def create_follow_up(self, info: Info, input: CreateFollowUpInput) -> FollowUpPayload:
        out = await resolve.create(info.context, input_values(input))
        return FollowUpPayload(
            follow_up=FollowUp.maybe(out.follow_up), user_errors=user_errors(out.problems)
        )

    @strawberry.mutation(description="Edits a follow-up: its fields, assignee or status.")
    async def update_follow_up(
        self, info: Info, id: strawberry.ID, input: UpdateFollowUpInput
    ) -> FollowUpPayload:
        out = await resolve.update(info.context, id, input_values(input))
        return FollowUpPayload(
            follow_up=FollowUp.maybe(out.follow_up), user_errors=user_errors(out.problems)
        )
