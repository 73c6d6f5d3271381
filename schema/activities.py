"""Activities: notes, calls, emails and meetings logged on a lead or client; the
``activities`` connection of Lead and Client (newest first), addActivity and updateActivity."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import Row

from db.models import ActivityKind as _ActivityKind
from resolvers import activities as resolve
from resolvers.ids import parse_global_id, to_global_id
from schema.auth import Actor, actor
from schema.context import Info
from schema.errors import UserError, user_errors
from schema.relay import Connection, Node, input_values

ActivityKind = strawberry.enum(_ActivityKind, name="ActivityKind")


@strawberry.type(description="A note, call, email or meeting logged on a lead or client.")
class Activity(Node):
    id: strawberry.ID
    kind: ActivityKind  # type: ignore[valid-type]
    body: str
    occurred_at: datetime = strawberry.field(
        description="When the call or meeting happened; by default, when it was logged."
    )
    created_at: datetime
    updated_at: datetime = strawberry.field(description="When it was last edited.")
    lead_id: strawberry.Private[int | None]
    client_id: strawberry.Private[int | None]
    author_user_id: strawberry.Private[int | None]
    author_api_key_id: strawberry.Private[int | None]

    @strawberry.field(description="The member or API key that logged it.")
    async def author(self, info: Info) -> Actor | None:
        return await actor(info, self.author_user_id, self.author_api_key_id)  # type: ignore[no-any-return]

    @strawberry.field(
        description="The lead or client it was logged on (a converted lead's activities show "
        "on its client's timeline too; their subject stays the lead)."
    )
    async def subject(self, info: Info) -> Node:
        from schema.nodes import load_subject  # schema.nodes knows Activity: imported when used

        return await load_subject(info, self.lead_id, self.client_id)

    @classmethod
    def from_row(cls, row: Row[Any]) -> Activity:
        return cls(
            id=strawberry.ID(to_global_id(resolve.ACTIVITY, row.id)),
            kind=_ActivityKind(row.kind),
            body=row.body,
            occurred_at=row.occurred_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            lead_id=row.lead_id,
            client_id=row.client_id,
            author_user_id=row.author_user_id,
            author_api_key_id=row.author_api_key_id,
        )

    @classmethod
    def maybe(cls, row: Row[Any] | None) -> Activity | None:
        return cls.from_row(row) if row is not None else None


ActivityConnection = Connection[Activity]


def activities_field(subject_type: str) -> Any:
    """A Lead's or Client's ``activities(first, after): ActivityConnection!``, newest first."""

    async def resolve_activities(
        self: Any, info: Info, first: int | None = None, after: str | None = None
    ) -> ActivityConnection:  # type: ignore[valid-type]
        parsed = parse_global_id(self.id)
        assert parsed is not None  # the record's own ID
        page = await resolve.timeline(info.context, subject_type, parsed[1], first, after)
        return ActivityConnection.from_page(page, Activity.from_row)  # type: ignore[no-any-return]

    description = "Its activities, newest first (by occurredAt); 20 a page by default, at most 100."
    if subject_type == "Client":
        description += " Those of the leads converted into it too."
    return strawberry.field(resolve_activities, description=description)


@strawberry.input
class AddActivityInput:
    subject_id: strawberry.ID = strawberry.field(description="The lead or client.")
    kind: ActivityKind  # type: ignore[valid-type]
    body: str = strawberry.field(description="Trimmed; at most 10,000 characters.")
    occurred_at: datetime | None = strawberry.field(
        default=strawberry.UNSET,
        description="Left out or null: now. In the past, or at most a day ahead.",
    )


@strawberry.input(description="Every field optional; a field left out is unchanged.")
class UpdateActivityInput:
    kind: ActivityKind | None = strawberry.UNSET  # type: ignore[valid-type]
    body: str | None = strawberry.UNSET
    occurred_at: datetime | None = strawberry.UNSET


@strawberry.type
class ActivityPayload:
    activity: Activity | None
    user_errors: list[UserError]


@strawberry.type
class ActivityMutation:
    @strawberry.mutation(description="Logs a note, call, email or meeting on a lead or client.")
    async def add_activity(self, info: Info, input: AddActivityInput) -> ActivityPayload:
        out = await resolve.add(info.context, input_values(input))
        return ActivityPayload(
            activity=Activity.maybe(out.activity), user_errors=user_errors(out.problems)
        )

    @strawberry.mutation(
        description="Edits an activity: its author may within 15 minutes of logging it, an "
        "ADMIN at any time; anyone else gets FORBIDDEN."
    )
    async def update_activity(
        self, info: Info, id: strawberry.ID, input: UpdateActivityInput
    ) -> ActivityPayload:
        out = await resolve.update(info.context, id, input_values(input))
        return ActivityPayload(
            activity=Activity.maybe(out.activity), user_errors=user_errors(out.problems)
        )
