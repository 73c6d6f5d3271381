"""Support tickets on clients: the Ticket and TicketComment types, their lists, filters and
orders, and the Query/Mutation fields for them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import Row

from db.models import TicketPriority as _TicketPriority
from db.models import TicketStatus as _TicketStatus
from resolvers import tickets as resolve
from resolvers.ids import to_global_id
from resolvers.outcome import Outcome
from schema.auth import Actor, User, actor
from schema.context import Info
from schema.errors import UserError, user_errors
from schema.records import Record, connection_field, order_input
from schema.relay import Connection, Node, input_values

if TYPE_CHECKING:
    from schema.clients import Client

TicketStatus = strawberry.enum(_TicketStatus, name="TicketStatus")
TicketPriority = strawberry.enum(_TicketPriority, name="TicketPriority")
ClientRef = Annotated["Client", strawberry.lazy("schema.clients")]


@strawberry.type(description="A reply on a ticket, or an internal note for the team.")
class TicketComment(Node):
    id: strawberry.ID
    body: str
    internal: bool = strawberry.field(description="A note for the team, not for the client.")
    created_at: datetime
    author_user_id: strawberry.Private[int | None]
    author_api_key_id: strawberry.Private[int | None]

    @strawberry.field(description="The member or API key that wrote it.")
    async def author(self, info: Info) -> Actor | None:
        return await actor(info, self.author_user_id, self.author_api_key_id)

    @classmethod
    def from_row(cls, row: Row[Any]) -> TicketComment:
        return cls(
            id=strawberry.ID(to_global_id(resolve.COMMENT, row.id)),
            body=row.body,
            internal=bool(row.internal),
            created_at=row.created_at,
            author_user_id=row.author_user_id,
            author_api_key_id=row.author_api_key_id,
        )

    @classmethod
    def maybe(cls, row: Row[Any] | None) -> TicketComment | None:
        return cls.from_row(row) if row is not None else None


@strawberry.type(description="A client's support request, numbered 1, 2, 3 ... per workspace.")
class Ticket(Record):
    records = resolve.TICKETS

    number: int = strawberry.field(description="1, 2, 3 ... per workspace, never reused.")
    subject: str
    description: str | None
    status: TicketStatus  # type: ignore[valid-type]
    priority: TicketPriority  # type: ignore[valid-type]
    created_at: datetime
    updated_at: datetime = strawberry.field(description="Moves on every change and comment.")
    first_response_at: datetime | None = strawberry.field(
        description="When a member first wrote a comment that is not internal."
    )
    resolved_at: datetime | None = strawberry.field(
        description="Set when RESOLVED; cleared when reopened (OPEN, PENDING); CLOSED keeps it."
    )
    pk: strawberry.Private[int]
    client_pk: strawberry.Private[int]
    assignee_pk: strawberry.Private[int | None]

    @strawberry.field
    async def client(self, info: Info) -> ClientRef:
        from schema.clients import Client

        row = await info.context.loaders.client_by_id.load(self.client_pk)
        assert row is not None  # a foreign key, and clients are never deleted
        return Client.from_row(row)

    @strawberry.field(description="The member working on it; null: unassigned.")
    async def assignee(self, info: Info) -> User | None:
        found: User | None = await actor(info, self.assignee_pk, None)
        return found

    @strawberry.field(description="Oldest first. 20 by default, at most 100.")
    async def comments(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[TicketComment]:
        page = await resolve.comments(info.context, self.pk, first, after)
        return Connection[TicketComment].from_page(page, TicketComment.from_row)

    computed_columns = ("id", "status", "priority", "client_id", "assignee_user_id")
    resolver_columns = Record.resolver_columns | {
        "client": ("client_id",),
        "assignee": ("assignee_user_id",),
        "comments": ("id",),
    }

    @classmethod
    def computed(cls, row: Row[Any]) -> dict[str, Any]:
        return {
            "status": _TicketStatus(row.status),
            "priority": _TicketPriority(row.priority),
            "pk": row.id,
            "client_pk": row.client_id,
            "assignee_pk": row.assignee_user_id,
        }


@strawberry.input
class TicketFilter:
    status: list[TicketStatus] | None = None  # type: ignore[valid-type]
    priority: list[TicketPriority] | None = None  # type: ignore[valid-type]
    assignee_id: strawberry.ID | None = None
    client_id: strawberry.ID | None = None
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of the subject or description."
    )


TicketOrder = order_input(
    "Ticket",
    resolve.TICKET_SORTS,
    direction="Left out or null: DESC (newest, highest, most urgent first). "
    "PRIORITY: LOW < NORMAL < HIGH < URGENT.",
)


@strawberry.input
class CreateTicketInput:
    client_id: strawberry.ID
    subject: str = strawberry.field(description="Trimmed; at most 200 characters.")
    description: str | None = strawberry.UNSET
    priority: TicketPriority | None = strawberry.field(  # type: ignore[valid-type]
        default=strawberry.UNSET, description="Default: NORMAL."
    )
    assignee_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="A member of the workspace."
    )


@strawberry.input(description="Every field optional; a field left out is unchanged.")
class UpdateTicketInput:
    subject: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    priority: TicketPriority | None = strawberry.UNSET  # type: ignore[valid-type]
    status: TicketStatus | None = strawberry.UNSET  # type: ignore[valid-type]
    assignee_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="A member of the workspace; null unassigns."
    )


@strawberry.input
class AddTicketCommentInput:
    ticket_id: strawberry.ID
    body: str
    internal: bool | None = strawberry.field(
        default=False, description="A note for the team, not for the client."
    )


@strawberry.type
class TicketPayload:
    ticket: Ticket | None
    user_errors: list[UserError]


@strawberry.input
class UpdateTicketCommentInput:
    body: str


@strawberry.type
class TicketCommentPayload:
    comment: TicketComment | None
    ticket: Ticket | None
    user_errors: list[UserError]


def _payload(out: Outcome) -> TicketPayload:
    return TicketPayload(ticket=Ticket.maybe(out.ticket), user_errors=user_errors(out.problems))


def client_tickets_field() -> Any:
    """``Client.tickets(first, after, filter)``: the client's tickets, newest first."""

    async def resolve_tickets(
        self: Any,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: TicketFilter | None = None,
    ) -> Connection[Ticket]:
        page = await resolve.client_tickets(info.context, self.pk, first, after, filter)
        return Connection[Ticket].from_page(page, Ticket.from_row)

    return strawberry.field(
        resolve_tickets,
        description="The client's tickets, newest first. 20 by default, at most 100.",
    )


@strawberry.type
class TicketQuery:
    tickets = connection_field(
        Ticket,
        TicketFilter,
        TicketOrder,
        description="Tickets, newest first unless orderBy says otherwise. Page with first/after "
        "or last/before: 20 by default, at most 100.",
    )


@strawberry.type
class TicketMutation:
    @strawberry.mutation(description="A new OPEN ticket on a client, with the next number.")
    async def create_ticket(self, info: Info, input: CreateTicketInput) -> TicketPayload:
        return _payload(await resolve.create_ticket(info.context, input_values(input)))

    @strawberry.mutation
    async def update_ticket(
        self, info: Info, id: strawberry.ID, input: UpdateTicketInput
    ) -> TicketPayload:
        return _payload(await resolve.update_ticket(info.context, id, input_values(input)))

    @strawberry.mutation
    async def add_ticket_comment(
        self, info: Info, input: AddTicketCommentInput
    ) -> TicketCommentPayload:
        out = await resolve.add_comment(info.context, input_values(input))
        return TicketCommentPayload(
            comment=TicketComment.maybe(out.comment),
            ticket=Ticket.maybe(out.ticket),
            user_errors=user_errors(out.problems),
        )

    @strawberry.mutation(
        description="Edits a comment's body: its author within 15 minutes of writing it, an "
        "ADMIN at any time."
    )
    async def update_ticket_comment(
        self, info: Info, id: strawberry.ID, input: UpdateTicketCommentInput
    ) -> TicketCommentPayload:
        out = await resolve.update_comment(info.context, id, input_values(input))
        return TicketCommentPayload(
            comment=TicketComment.maybe(out.comment),
            ticket=Ticket.maybe(out.ticket),
            user_errors=user_errors(out.problems),
        )
