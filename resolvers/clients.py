"""Clients: listing, lookup, create/update, archive and restore (never hard-deleted)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from db.models import ClientCreate, ClientStatus, ClientUpdate, Role
from db.models.fields import with_external_ids as with_ids
from db.repositories import ClientFilterSpec, ClientRepository
from db.repositories.tags import CLIENT_TAGS
from db.types import utcnow
from resolvers import inputs
from resolvers.auth import actor_columns
from resolvers.errors import Problem, UserErrorCode, validated
from resolvers.events import Tracked, Unit, Write, tracked
from resolvers.outcome import Abort, Outcome
from resolvers.pagination import SortKey
from resolvers.records import (
    RecordType,
    changed,
    claim_external_ids,
    refused_by,
    written,
)
from resolvers.tags import assignment, check, checked, owner_values, write_tags

if TYPE_CHECKING:
    from resolvers.context import Context

CLIENT_SORTS = {
    "CREATED_AT": SortKey("created_at", "datetime"),
    "UPDATED_AT": SortKey("updated_at", "datetime"),
    "NAME": SortKey("name_key", "str"),
    "EMAIL": SortKey("email_key", "str"),
}
CLIENTS = RecordType(
    name="Client",
    kind="client",
    repository=ClientRepository,
    sorts=CLIENT_SORTS,
    spec=lambda filter_: ClientFilterSpec(**inputs.client_filter(filter_) if filter_ else {}),
    loader=lambda loaders: loaders.client_by_id,
    # In the order of Client's fields: address parts where the address is.
    fields=tracked("email", "first_name", "last_name", "phone", "company")
    | tracked(
        street="address.street",
        city="address.city",
        state="address.state",
        postal_code="address.postalCode",
        country="address.country",
    )
    | tracked("status", "archived_at", "notes", "meta", "external_ids")
    | tracked(owner_id=Tracked("ownerId", refers_to="User")),
)
_ADDRESS_PARTS = ("street", "city", "state", "postal_code", "country")


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
    if "external_ids" in values and values["external_ids"] is None:
        values["external_ids"] = []
    return values


async def create_client(ctx: Context, values: dict[str, Any]) -> Outcome:
    principal = ctx.require(Role.MEMBER)
    assigned, bad_ids = assignment(values)
    data, problems = validated(ClientCreate, values)
    if problems or bad_ids:
        return Outcome(problems=problems + bad_ids)

    async def step(unit: Unit) -> Outcome:
        repo = ClientRepository(unit.conn, ctx.workspace_id)
        if await repo.email_taken(data.email):
            raise Abort([_email_taken()])
        await checked(unit, assigned)
        await claim_external_ids(repo, "client", data.external_ids)
        row = await repo.insert(
            _flatten({**data.model_dump(), "status": ClientStatus.ACTIVE.value})
            | owner_values(assigned)
            | actor_columns(principal, created=True)
        )
        tagged = await write_tags(unit, CLIENT_TAGS, row.id, assigned.tag_ids)
        unit.record(CLIENTS, Write.CREATED, None, row, also=tagged)
        return Outcome(client=row)

    # An IntegrityError: a concurrent request took the email first.
    return await written(ctx, step, conflict=lambda exc: refused_by(exc, _email_taken))


async def update_client(ctx: Context, id_: str, values: dict[str, Any]) -> Outcome:
    principal = ctx.require(Role.MEMBER)
    pk, problems = CLIENTS.pk(id_)
    assigned, bad_ids = assignment(values)
    data, invalid = validated(ClientUpdate, values)
    if problems or invalid or bad_ids or pk is None:
        return Outcome(problems=problems + invalid + bad_ids)
    # exclude_unset reaches into the address too, so it merges part by part.
    changes = _flatten(data.model_dump(exclude_unset=True))

    async def step(unit: Unit) -> Outcome:
        repo = ClientRepository(unit.conn, ctx.workspace_id)
        wrong = await check(unit, assigned)
        current = await repo.get(pk, for_update=True)
        if current is None or wrong:
            raise Abort([CLIENTS.not_found()] * (current is None) + wrong)
        if "email" in changes and await repo.email_taken(changes["email"], except_id=pk):
            raise Abort([_email_taken()])
        given = changes.get("external_ids")
        await claim_external_ids(repo, "client", given, except_id=pk)
        merged = {} if given is None else {"external_ids": with_ids(current.external_ids, given)}
        different = changed(current, changes | merged | owner_values(assigned))
        tagged = await write_tags(unit, CLIENT_TAGS, pk, assigned.tag_ids)
        if not different and not tagged:
            return Outcome(client=current)
        row = await repo.update(current, different | actor_columns(principal, created=False))
        unit.record(CLIENTS, Write.UPDATED, current, row, also=tagged)
        return Outcome(client=row)

    return await written(ctx, step, conflict=lambda exc: refused_by(exc, _email_taken))


async def set_archived(ctx: Context, id_: str, archived: bool) -> Outcome:
    """archiveClient (``archived``) and restoreClient: a soft delete and its undo."""
    principal = ctx.require(Role.ADMIN)
    pk, problems = CLIENTS.pk(id_)
    if pk is None:
        return Outcome(problems=problems)

    async def step(unit: Unit) -> Outcome:
        repo = ClientRepository(unit.conn, ctx.workspace_id)
        current = await repo.get(pk, for_update=True)
        if current is None:
            raise Abort([CLIENTS.not_found()])
        is_archived = current.status == ClientStatus.ARCHIVED.value
        if archived and is_archived:
            raise Abort(
                [
                    Problem(
                        "This client is already archived.", UserErrorCode.ALREADY_ARCHIVED, ["id"]
                    )
                ]
            )
        if not archived and not is_archived:
            raise Abort(
                [Problem("This client is not archived.", UserErrorCode.NOT_ARCHIVED, ["id"])]
            )
        now = utcnow()
        status = ClientStatus.ARCHIVED if archived else ClientStatus.ACTIVE
        changes = {"status": status.value, "archived_at": now if archived else None}
        row = await repo.update(
            current, changes | {"updated_at": now} | actor_columns(principal, created=False)
        )
        unit.record(CLIENTS, Write.ARCHIVED if archived else Write.RESTORED, current, row)
        return Outcome(client=row)

    return await written(ctx, step)
