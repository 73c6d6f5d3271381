"""Tickets on clients: listing, lookup, create/update, comments, and unassigning a removed
member's open tickets.

Choices the issue left open: an archived client takes no new ticket (ALREADY_ARCHIVED at
input.clientId), its tickets stay and may still change; ``firstResponseAt`` is set by the
first non-internal comment of a member (a user signed in to the workspace): an API key's
comment is an integration's (an email sync posting the client's own message, say), not a
member's response.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import Role, TicketStatus
from db.models.activities import editable
from db.models.tickets import (
    OPEN_STATUSES,
    CommentCreate,
    CommentUpdate,
    TicketCreate,
    TicketUpdate,
)
from db.repositories import (
    ClientRepository,
    CommentRepository,
    TicketFilterSpec,
    TicketRepository,
)
from db.types import utcnow
from resolvers import inputs
from resolvers.auth import Principal, actor_columns
from resolvers.clients import CLIENTS
from resolvers.errors import Problem, UserErrorCode, validated
from resolvers.events import Tracked, Unit, Write, tracked
from resolvers.ids import pk_for_mutation, pk_for_query, to_global_id
from resolvers.outcome import Abort, Outcome
from resolvers.pagination import (
    Page,
    SortKey,
    encode_cursor,
    page_args,
    page_of,
)
from resolvers.records import RecordType, changed, written

if TYPE_CHECKING:
    from resolvers.context import Context

TICKET_SORTS = {
    "CREATED_AT": SortKey("created_at", "datetime"),
    "UPDATED_AT": SortKey("updated_at", "datetime"),
    "PRIORITY": SortKey("priority_rank", "int"),  # LOW < NORMAL < HIGH < URGENT
    "NUMBER": SortKey("number", "int"),
}


def ticket_filter(flt: Any) -> TicketFilterSpec:
    """A TicketFilter input as the repository's spec (None: every ticket). An assignee or
    client ID of another type (or no row) matches nothing; a malformed one is BAD_USER_INPUT."""
    if flt is None:
        return TicketFilterSpec()
    assignee = client = None
    if flt.assignee_id is not None:
        assignee = pk_for_query(flt.assignee_id, "User", "filter.assigneeId") or 0
    if flt.client_id is not None:
        client = pk_for_query(flt.client_id, "Client", "filter.clientId") or 0
    return TicketFilterSpec(
        search=inputs._search(flt.search),
        statuses=tuple(flt.status) if flt.status is not None else None,
        priorities=tuple(flt.priority) if flt.priority is not None else None,
        assignee_id=assignee,
        client_id=client,
    )


TICKETS = RecordType(
    name="Ticket",
    kind="ticket",
    repository=TicketRepository,
    sorts=TICKET_SORTS,
    spec=ticket_filter,
    loader=lambda loaders: loaders.ticket_by_id,
    fields=tracked(
        "number",
        "subject",
        "description",
        "status",
        "priority",
        "first_response_at",
        "resolved_at",
        client_id=Tracked("client", refers_to="Client"),
        assignee_user_id=Tracked("assignee", refers_to="User"),
    ),
)
COMMENT = "TicketComment"


def _member_problem() -> Problem:
    return Problem(
        "No member of this workspace with this ID.",
        UserErrorCode.NOT_FOUND,
        ["input", "assigneeId"],
    )


def _assignee(values: dict[str, Any]) -> tuple[int | None, list[Problem]]:
    """input.assigneeId (popped from ``values``) as a user's pk; None when null or left out."""
    given = values.pop("assignee_id", None)
    if given is None:
        return None, []
    pk, problem = pk_for_mutation(given, "User", ["input", "assigneeId"])
    return pk, [problem] if problem else []


async def _check_member(repo: TicketRepository, user_id: int | None) -> None:
    if user_id is not None and not await repo.is_member(user_id):
        raise Abort([_member_problem()])


def _enum_values(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.value if hasattr(v, "value") else v) for k, v in values.items()}


async def create_ticket(ctx: Context, values: dict[str, Any]) -> Outcome:
    principal = ctx.require(Role.MEMBER)
    values = dict(values)
    client_pk, problems = CLIENTS.pk(values.pop("client_id"), ["input", "clientId"])
    assignee, bad_assignee = _assignee(values)
    if values.get("priority", 0) is None:
        values.pop("priority")  # null: the default, as when left out
    data, invalid = validated(TicketCreate, values)
    problems += bad_assignee + invalid
    if problems or client_pk is None:
        return Outcome(problems=problems)

    async def step(unit: Unit) -> Outcome:
        repo = TicketRepository(unit.conn, ctx.workspace_id)
        client = await ClientRepository(unit.conn, ctx.workspace_id).get(client_pk)
        if client is None:
            raise Abort([CLIENTS.not_found(["input", "clientId"])])
        if client.status == "ARCHIVED":
            raise Abort(
                [
                    Problem(
                        "This client is archived; restore it before opening a ticket.",
                        UserErrorCode.ALREADY_ARCHIVED,
                        ["input", "clientId"],
                    )
                ]
            )
        await _check_member(repo, assignee)
        # Last before the INSERT: the counter's row stays locked until the commit.
        number = await repo.next_number()
        row = await repo.insert(
            _enum_values(data.model_dump())
            | {
                "number": number,
                "client_id": client_pk,
                "status": TicketStatus.OPEN.value,
                "assignee_user_id": assignee,
            }
            | actor_columns(principal, created=True)
        )
        unit.record(TICKETS, Write.CREATED, None, row)
        return Outcome(ticket=row)

    return await written(ctx, step)


def _status_changes(current: Row[Any], status: str | None) -> dict[str, Any]:
    """resolvedAt: set when the ticket becomes RESOLVED, cleared when it reopens (OPEN or
    PENDING); CLOSED keeps it."""
    if status is None or status == current.status:
        return {}
    if status == TicketStatus.RESOLVED.value:
        return {"resolved_at": utcnow()}
    if status in OPEN_STATUSES:
        return {"resolved_at": None}
    return {}


async def update_ticket(ctx: Context, id_: str, values: dict[str, Any]) -> Outcome:
    principal = ctx.require(Role.MEMBER)
    values = dict(values)
    pk, problems = TICKETS.pk(id_)
    sets_assignee = "assignee_id" in values
    assignee, bad_assignee = _assignee(values)
    data, invalid = validated(TicketUpdate, values)
    problems += bad_assignee + invalid
    if problems or pk is None:
        return Outcome(problems=problems)
    given = _enum_values(data.model_dump(exclude_unset=True))
    if sets_assignee:
        given["assignee_user_id"] = assignee

    async def step(unit: Unit) -> Outcome:
        repo = TicketRepository(unit.conn, ctx.workspace_id)
        current = await repo.get(pk, for_update=True)
        if current is None:
            raise Abort([TICKETS.not_found()])
        if assignee != current.assignee_user_id:
            await _check_member(repo, assignee)
        different = changed(current, given)
        if not different:
            return Outcome(ticket=current)
        different |= _status_changes(current, different.get("status"))
        row = await repo.update(current, different | actor_columns(principal, created=False))
        unit.record(TICKETS, Write.UPDATED, current, row)
        return Outcome(ticket=row)

    return await written(ctx, step)


async def add_comment(ctx: Context, values: dict[str, Any]) -> Outcome:
    principal = ctx.require(Role.MEMBER)
    values = dict(values)
    pk, problems = TICKETS.pk(values.pop("ticket_id"), ["input", "ticketId"])
    if values.get("internal", False) is None:
        values.pop("internal")
    data, invalid = validated(CommentCreate, values)
    problems += invalid
    if problems or pk is None:
        return Outcome(problems=problems)

    async def step(unit: Unit) -> Outcome:
        repo = TicketRepository(unit.conn, ctx.workspace_id)
        current = await repo.get(pk, for_update=True)
        if current is None:
            raise Abort([TICKETS.not_found(["input", "ticketId"])])
        comment = await CommentRepository(unit.conn, ctx.workspace_id).insert(
            {
                "ticket_id": pk,
                "body": data.body,
                "internal": data.internal,
                "author_user_id": principal.user_id,
                "author_api_key_id": principal.api_key_id,
            }
        )
        changes: dict[str, Any] = {"updated_at": comment.created_at}
        if _is_response(principal, data.internal) and current.first_response_at is None:
            changes["first_response_at"] = comment.created_at
        row = await repo.update(current, changes | actor_columns(principal, created=False))
        also = [{"field": "comment", "from": None, "to": to_global_id(COMMENT, comment.id)}]
        unit.record(TICKETS, Write.COMMENTED, current, row, also=also)
        return Outcome(ticket=row, comment=comment)

    return await written(ctx, step)


async def update_comment(ctx: Context, id_: str, values: dict[str, Any]) -> Outcome:
    """Edits a comment's body: its author within 15 minutes of writing it (as an activity's),
    an ADMIN at any time. A TICKET_UPDATED event names the comment, without its text."""
    principal = ctx.require(Role.MEMBER)
    pk, bad_id = pk_for_mutation(id_, COMMENT, ["id"])
    data, invalid = validated(CommentUpdate, values)
    problems = ([bad_id] if bad_id else []) + invalid
    if problems or pk is None:
        return Outcome(problems=problems)

    async def step(unit: Unit) -> Outcome:
        comments_ = CommentRepository(unit.conn, ctx.workspace_id)
        current = await comments_.get(pk, for_update=True)
        if current is None:
            raise Abort(
                [Problem("No ticket comment with this ID.", UserErrorCode.NOT_FOUND, ["id"])]
            )
        author = principal.wrote(current)
        admin = principal.role.includes(Role.ADMIN)
        if not editable(current.created_at, utcnow(), author=author, admin=admin):
            raise Abort(
                [
                    Problem(
                        "Only its author may edit a comment, within 15 minutes of writing it "
                        "(an ADMIN at any time).",
                        UserErrorCode.FORBIDDEN,
                        ["id"],
                    )
                ]
            )
        tickets_ = TicketRepository(unit.conn, ctx.workspace_id)
        ticket = await tickets_.get(current.ticket_id, for_update=True)
        assert ticket is not None  # a comment goes with its ticket (ON DELETE CASCADE)
        if data.body == current.body:
            return Outcome(ticket=ticket, comment=current)
        comment = await comments_.set_body(pk, data.body)
        row = await tickets_.update(ticket, actor_columns(principal, created=False))
        gid = to_global_id(COMMENT, comment.id)
        unit.record(
            TICKETS, Write.UPDATED, ticket, row, also=[{"field": "comment", "from": gid, "to": gid}]
        )
        return Outcome(ticket=row, comment=comment)

    return await written(ctx, step)


def _is_response(principal: Principal, internal: bool) -> bool:
    """A reply the client sees, by a member (not an API key)."""
    return not internal and principal.user_id is not None


async def unassign_member(ctx: Context, conn: AsyncConnection, user_id: int) -> None:
    """Unassigns a removed member's open tickets, in the removal's transaction (``conn``),
    with a TICKET_UPDATED event each. For the member-removal path: call it after the
    membership is gone, as the transaction's last statements."""
    unit = Unit(ctx, conn)
    for before, after in await TicketRepository(conn, ctx.workspace_id).unassign(user_id):
        unit.record(TICKETS, Write.UPDATED, before, after)
    await unit.append()


# ------------------------------------------------------------------ lists under a record

_COMMENT_ORDER = "ID:ASC"
_COMMENT_SORT = SortKey("id", "int")
_CLIENT_TICKETS_ORDER = "CREATED_AT:DESC"  # the tickets list's default: its cursors fit both


async def comments(ctx: Context, ticket_pk: int, first: int | None, after: str | None) -> Page:
    """A ticket's comments, oldest first; the tickets of a page ask together (one statement
    per page of tickets, ``Loaders.ticket_comments``)."""
    ctx.require(Role.VIEWER)
    args = page_args(first, after, None, None, _COMMENT_ORDER, _COMMENT_SORT)
    rows: list[Any] = []
    if args.limit:
        past = args.start.id if args.start is not None else None
        rows = await ctx.loaders.ticket_comments.load((ticket_pk, past, args.limit + 1))

    async def count() -> int:
        return int(await ctx.loaders.ticket_comment_count.load(ticket_pk))

    return page_of(rows, args, lambda r: encode_cursor(_COMMENT_ORDER, r.id, r.id), count)


async def client_tickets(
    ctx: Context, client_pk: int, first: int | None, after: str | None, filter_: Any
) -> Page:
    """A client's tickets, newest first; the clients of a page ask together (one statement
    per page of clients and filter, ``Loaders.client_tickets``; their counts likewise)."""
    ctx.require(Role.VIEWER)
    sort = TICKET_SORTS["CREATED_AT"]
    args = page_args(first, after, None, None, _CLIENT_TICKETS_ORDER, sort)
    spec = ticket_filter(filter_)
    spec = replace(spec, client_id=None)
    rows: list[Any] = []
    if args.limit:
        rows = await ctx.loaders.client_tickets.load((client_pk, spec, args.start, args.limit + 1))

    async def count() -> int:
        return int(await ctx.loaders.client_ticket_count.load((client_pk, spec)))

    def cursor(r: Any) -> str:
        return encode_cursor(_CLIENT_TICKETS_ORDER, r.created_at, r.id)

    return page_of(rows, args, cursor, count)
