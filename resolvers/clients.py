"""Clients: listing, lookup, create/update, archive and restore (never hard-deleted)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError

from db.models import ClientCreate, ClientStatus, ClientUpdate, Role
from db.repositories import ClientFilterSpec, ClientRepository
from db.types import utcnow
from resolvers import inputs
from resolvers.auth import actor_columns
from resolvers.errors import Problem, UserErrorCode, not_found, problems_from
from resolvers.ids import pk_for_mutation, pk_for_query
from resolvers.outcome import Abort, Outcome
from resolvers.pagination import Page, SortKey, fetch_page, page_args

if TYPE_CHECKING:
    from schema.context import Context

CLIENT_SORTS = {
    "CREATED_AT": SortKey("created_at", "datetime"),
    "UPDATED_AT": SortKey("updated_at", "datetime"),
    "NAME": SortKey("name_key", "str"),
    "EMAIL": SortKey("email_key", "str"),
}
_ADDRESS_PARTS = ("street", "city", "state", "postal_code", "country")


async def list_clients(
    ctx: Context,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    filter_: Any,
    order_by: Any,
) -> Page:
    ctx.require(Role.VIEWER)
    field, given = inputs.order(order_by)
    sort = CLIENT_SORTS[field]
    direction = sort.direction(given)
    order = f"{field}:{direction}"
    args = page_args(first, after, last, before, order, sort)
    spec = ClientFilterSpec(**inputs.client_filter(filter_)) if filter_ else ClientFilterSpec()

    def repository(conn: Any) -> ClientRepository:
        return ClientRepository(conn, ctx.workspace_id)

    conditions = repository(None).conditions(spec)
    return await fetch_page(ctx.db, repository, conditions, sort, direction == "DESC", order, args)


async def get_client(ctx: Context, id_: str) -> Row[Any] | None:
    ctx.require(Role.VIEWER)
    pk = pk_for_query(id_, "Client")
    return None if pk is None else await ctx.loaders.client_by_id.load(pk)


def _email_taken() -> Problem:
    return Problem(
        "A client with this email already exists.", UserErrorCode.TAKEN, ["input", "email"]
    )


def _flatten(values: dict[str, Any]) -> dict[str, Any]:
    """Address parts become columns; an address set to null clears every part."""
    if "address" in values:
        address = values.pop("address")
        if address is None:
            values.update(dict.fromkeys(_ADDRESS_PARTS))
        else:
            values.update(address)
    if "meta" in values and values["meta"] is None:
        values["meta"] = {}
    return values


async def create_client(ctx: Context, values: dict[str, Any]) -> Outcome:
    principal = ctx.require(Role.MEMBER)
    try:
        data = ClientCreate.model_validate(values)
    except ValidationError as exc:
        return Outcome(problems=problems_from(exc))
    try:
        async with ctx.db.write() as session:
            repo = ClientRepository(session, ctx.workspace_id)
            if await repo.email_taken(data.email):
                raise Abort([_email_taken()])
            row = await repo.insert(
                _flatten({**data.model_dump(), "status": ClientStatus.ACTIVE.value})
                | actor_columns(principal, created=True)
            )
    except Abort as abort:
        return Outcome(problems=abort.problems)
    except IntegrityError:  # lost a race for the email to a concurrent request
        return Outcome(problems=[_email_taken()])
    ctx.clear_loaders()
    return Outcome(client=row)


async def update_client(ctx: Context, id_: str, values: dict[str, Any]) -> Outcome:
    principal = ctx.require(Role.MEMBER)
    pk, problem = pk_for_mutation(id_, "Client", ["id"])
    problems = [problem] if problem else []
    try:
        data = ClientUpdate.model_validate(values)
    except ValidationError as exc:
        problems += problems_from(exc)
    if problems or pk is None:
        return Outcome(problems=problems)
    # exclude_unset reaches into the address too, so it merges part by part.
    changes = _flatten(data.model_dump(exclude_unset=True))
    try:
        async with ctx.db.write() as session:
            repo = ClientRepository(session, ctx.workspace_id)
            current = await repo.get(pk, for_update=True)
            if current is None:
                raise Abort([not_found("client")])
            if "email" in changes and await repo.email_taken(changes["email"], except_id=pk):
                raise Abort([_email_taken()])
            if changes:
                changes |= actor_columns(principal, created=False)
            row = await repo.update(current, changes) if changes else current
    except Abort as abort:
        return Outcome(problems=abort.problems)
    except IntegrityError:
        return Outcome(problems=[_email_taken()])
    ctx.clear_loaders()
    return Outcome(client=row)


async def set_archived(ctx: Context, id_: str, archived: bool) -> Outcome:
    """archiveClient (``archived``) and restoreClient: a soft delete and its undo."""
    principal = ctx.require(Role.ADMIN)
    pk, problem = pk_for_mutation(id_, "Client", ["id"])
    if pk is None:
        return Outcome(problems=[problem] if problem else [])
    try:
        async with ctx.db.write() as session:
            repo = ClientRepository(session, ctx.workspace_id)
            current = await repo.get(pk, for_update=True)
            if current is None:
                raise Abort([not_found("client")])
            is_archived = current.status == ClientStatus.ARCHIVED.value
            if archived and is_archived:
                raise Abort(
                    [
                        Problem(
                            "This client is already archived.",
                            UserErrorCode.ALREADY_ARCHIVED,
                            ["id"],
                        )
                    ]
                )
            if not archived and not is_archived:
                raise Abort(
                    [Problem("This client is not archived.", UserErrorCode.NOT_ARCHIVED, ["id"])]
                )
            now = utcnow()
            status = ClientStatus.ARCHIVED if archived else ClientStatus.ACTIVE
            row = await repo.update(
                current,
                {
                    "status": status.value,
                    "archived_at": now if archived else None,
                    "updated_at": now,
                }
                | actor_columns(principal, created=False),
            )
    except Abort as abort:
        return Outcome(problems=abort.problems)
    ctx.clear_loaders()
    return Outcome(client=row)
