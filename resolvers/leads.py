"""Leads: listing, lookup, create/update/delete and conversion into a client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import Row

from db.models import LeadCreate, LeadUpdate, Role
from db.models.clients import AddressIn, ClientCreate
from db.models.fields import fold, with_external_ids
from db.repositories import ClientRepository, LeadFilterSpec, LeadRepository
from db.repositories.activities import ActivityRepository
from db.repositories.tags import CLIENT_TAGS, LEAD_TAGS
from db.types import utcnow
from resolvers import inputs
from resolvers.auth import Principal, actor_columns
from resolvers.clients import CLIENTS
from resolvers.errors import Problem, UserErrorCode, camel, problems_from, validated
from resolvers.events import Tracked, Unit, Write, tracked
from resolvers.ids import to_global_id
from resolvers.outcome import Abort, Outcome
from resolvers.pagination import SortKey
from resolvers.records import (
    RecordType,
    changed,
    claim_external_ids,
    external_ids_taken,
    refused_by,
    written,
)
from resolvers.tags import (
    Assignment,
    assignment,
    check,
    checked,
    owner_values,
    tags_change,
    write_tags,
)

if TYPE_CHECKING:
    from resolvers.context import Context

LEAD_SORTS = {
    "CREATED_AT": SortKey("created_at", "datetime"),
    "UPDATED_AT": SortKey("updated_at", "datetime"),
    "SCORE": SortKey("score", "int"),
    "NAME": SortKey("name_key", "str"),
    "EMAIL": SortKey("email_key", "str"),
}
LEADS = RecordType(
    name="Lead",
    kind="lead",
    repository=LeadRepository,
    sorts=LEAD_SORTS,
    spec=lambda filter_: LeadFilterSpec(**inputs.lead_filter(filter_) if filter_ else {}),
    loader=lambda loaders: loaders.lead_by_id,
    fields=tracked(
        *("email", "first_name", "last_name", "phone", "company", "city", "state"),
        *("postal_code", "source", "notes", "status", "score", "meta", "external_ids"),
        "converted_at",
        converted_client_id=Tracked("convertedClient", refers_to="Client"),
        owner_id=Tracked("ownerId", refers_to="User"),
    ),
)


def _row_values(data: LeadCreate | LeadUpdate, *, only_set: bool) -> dict[str, Any]:
    values = data.model_dump(exclude_unset=only_set)
    if values.get("status") is not None:
        values["status"] = values["status"].value
    if "meta" in values and values["meta"] is None:
        values["meta"] = {}
    if "external_ids" in values and values["external_ids"] is None:
        values["external_ids"] = []
    return values


async def create_lead(ctx: Context, values: dict[str, Any]) -> Outcome:
    principal = ctx.require(Role.MEMBER)
    assigned, bad_ids = assignment(values)
    data, problems = validated(LeadCreate, values)
    if problems or bad_ids:
        return Outcome(problems=problems + bad_ids)

    async def step(unit: Unit) -> Outcome:
        repo = LeadRepository(unit.conn, ctx.workspace_id)
        await checked(unit, assigned)
        await claim_external_ids(repo, "lead", data.external_ids)
        return Outcome(lead=await _insert(unit, repo, data, principal, assigned))

    return await written(ctx, step, conflict=lambda exc: refused_by(exc, external_ids_taken))


async def _insert(
    unit: Unit,
    repo: LeadRepository,
    data: LeadCreate,
    principal: Principal,
    assigned: Assignment | None = None,
) -> Row[Any]:
    assigned = assigned or Assignment()
    row = await repo.insert(
        _row_values(data, only_set=False)
        | owner_values(assigned)
        | actor_columns(principal, created=True)
    )
    tagged = await write_tags(unit, LEAD_TAGS, row.id, assigned.tag_ids)
    unit.record(LEADS, Write.CREATED, None, row, also=tagged)
    return row


async def _update(
    unit: Unit,
    repo: LeadRepository,
    current: Row[Any],
    given: dict[str, Any],
    principal: Principal,
    assigned: Assignment | None = None,
) -> Row[Any]:
    """Writes the ``given`` values (external IDs: their systems' only), and the owner and
    tags ``assigned`` (tags: the set replaced), over the lead."""
    assigned = assigned or Assignment()
    if given.get("external_ids") is not None:
        await claim_external_ids(repo, "lead", given["external_ids"], except_id=current.id)
        given = given | {
            "external_ids": with_external_ids(current.external_ids, given["external_ids"])
        }
    changes = changed(current, given | owner_values(assigned))
    tagged = await write_tags(unit, LEAD_TAGS, current.id, assigned.tag_ids)
    if not changes and not tagged:
        return current
    row = await repo.update(current, changes | actor_columns(principal, created=False))
    unit.record(LEADS, Write.UPDATED, current, row, also=tagged)
    return row


async def update_lead(ctx: Context, id_: str, values: dict[str, Any]) -> Outcome:
    principal = ctx.require(Role.MEMBER)
    pk, problems = LEADS.pk(id_)
    assigned, bad_ids = assignment(values)
    data, invalid = validated(LeadUpdate, values)
    if problems or invalid or bad_ids or pk is None:
        return Outcome(problems=problems + invalid + bad_ids)

    async def step(unit: Unit) -> Outcome:
        repo = LeadRepository(unit.conn, ctx.workspace_id)
        wrong = await check(unit, assigned)
        current = await repo.get(pk, for_update=True)
        if current is None or wrong:
            raise Abort([LEADS.not_found()] * (current is None) + wrong)
        given = _row_values(data, only_set=True)
        return Outcome(lead=await _update(unit, repo, current, given, principal, assigned))

    return await written(ctx, step, conflict=lambda exc: refused_by(exc, external_ids_taken))


async def upsert_lead(
    ctx: Context, values: dict[str, Any], match_on: str, *, add_metadata: bool = False
) -> Outcome:
    """The lead that ``match_on`` finds (EMAIL: the same email, case aside, the oldest if
    several; EXTERNAL_ID: the one holding any of input.externalIds) with the given fields
    written over it, or a new lead. Concurrent upserts of one key wait for each other (the
    key's lock), so they end with one lead. ``add_metadata``: the metadata given is added to
    the lead's (its keys win) instead of replacing it."""
    principal = ctx.require(Role.MEMBER)
    assigned, bad_ids = assignment(values)
    data, problems = validated(LeadCreate, values)
    problems += bad_ids
    if not problems and match_on == "EXTERNAL_ID" and not data.external_ids:
        problems = [
            Problem(
                "matchOn EXTERNAL_ID needs input.externalIds.",
                UserErrorCode.REQUIRED,
                ["input", "externalIds"],
            )
        ]
    if problems:
        return Outcome(problems=problems)
    given = _row_values(data, only_set=True)
    if match_on == "EMAIL":
        given.pop("email")  # the same email: its spelling as first typed stays

    async def step(unit: Unit) -> Outcome:
        repo = LeadRepository(unit.conn, ctx.workspace_id)
        await checked(unit, assigned)
        if match_on == "EMAIL":
            await repo.lock_keys([f"email:{fold(data.email)}"])
            current = await repo.oldest_by_email(data.email)
        else:
            pairs = data.external_ids or []
            await repo.lock_keys([f"{p['system'].casefold()}:{p['id']}" for p in pairs])
            current = await _by_external_id(repo, pairs)
        if current is None:
            await claim_external_ids(repo, "lead", data.external_ids)
            lead = await _insert(unit, repo, data, principal, assigned)
            return Outcome(lead=lead, created=True)
        changes = given
        if add_metadata and "meta" in given:
            changes = given | {"meta": {**current.meta, **given["meta"]}}
        lead = await _update(unit, repo, current, changes, principal, assigned)
        return Outcome(lead=lead, created=False)

    return await written(ctx, step, conflict=lambda exc: refused_by(exc, external_ids_taken))


async def _by_external_id(repo: LeadRepository, pairs: list[dict[str, str]]) -> Row[Any] | None:
    owners = await repo.external_owners(pairs)
    found = sorted(set(owners.values()))
    if len(found) > 1:
        raise Abort(
            [
                Problem(
                    "These external IDs belong to different leads; give the ids of one.",
                    UserErrorCode.INVALID,
                    ["input", "externalIds"],
                )
            ]
        )
    return await repo.get(found[0], for_update=True) if found else None


async def delete_lead(ctx: Context, id_: str) -> Outcome:
    ctx.require(Role.ADMIN)
    pk, problems = LEADS.pk(id_)
    if pk is None:
        return Outcome(problems=problems)

    async def step(unit: Unit) -> Outcome:
        deleted = await LeadRepository(unit.conn, ctx.workspace_id).delete(pk)
        if deleted is None:
            raise Abort([LEADS.not_found()])
        unit.record(LEADS, Write.DELETED, deleted, None)
        return Outcome(deleted_id=to_global_id("Lead", pk))

    return await written(ctx, step)


async def convert_lead(ctx: Context, id_: str, values: dict[str, Any]) -> Outcome:
    """Creates (or links) the client and marks the lead WON, all in one transaction."""
    principal = ctx.require(Role.MEMBER)
    pk, problems = LEADS.pk(id_)
    client_pk: int | None = None
    if (client_id := values.pop("client_id", None)) is not None:
        client_pk, bad_client = CLIENTS.pk(client_id, ["input", "clientId"])
        problems += bad_client
    data, invalid = validated(inputs.ConvertLead, values)
    if problems or invalid or pk is None:
        return Outcome(problems=problems + invalid)

    email = ""

    async def step(unit: Unit) -> Outcome:
        nonlocal email
        leads = LeadRepository(unit.conn, ctx.workspace_id)
        clients = ClientRepository(unit.conn, ctx.workspace_id)
        lead = await leads.get(pk, for_update=True)
        if lead is None:
            raise Abort([LEADS.not_found()])
        if lead.converted_at is not None:
            raise await _already_converted(lead, clients)
        email = lead.email
        if client_pk is not None:
            client = await _link_client(unit, clients, client_pk, lead, data, principal)
        else:
            client = await _new_client(clients, lead, data, principal)
            # The new client takes the lead's tags (and owner, in _new_client).
            copied = await CLIENT_TAGS.copy(unit.conn, LEAD_TAGS, lead.id, client.id)
            unit.record(CLIENTS, Write.CREATED, None, client, also=tags_change([], copied))
        converted = await leads.mark_converted(
            lead, client.id, utcnow(), actor_columns(principal, created=False)
        )
        if converted is None:  # converted by a concurrent request since we read it
            raise await _already_converted(await leads.get(pk), clients)
        unit.record(LEADS, Write.CONVERTED, lead, converted)
        # One timeline: the lead's activities show on the client's too.
        await ActivityRepository(unit.conn, ctx.workspace_id).join_client(lead.id, client.id)
        return Outcome(lead=converted, client=client)

    # An IntegrityError: the client's email is taken (uq_clients_ws_email), by a client made
    # earlier or by a concurrent request.
    return await written(
        ctx, step, conflict=lambda exc: refused_by(exc, lambda: _email_taken(email))
    )


async def _already_converted(lead: Row[Any] | None, clients: ClientRepository) -> Abort:
    """ALREADY_CONVERTED, with the lead and the client it went to: a client retrying after a
    lost response learns the result of its first attempt."""
    client_pk = lead.converted_client_id if lead is not None else None
    client = await clients.get(client_pk) if client_pk is not None else None
    problem = Problem(
        "This lead has already been converted.", UserErrorCode.ALREADY_CONVERTED, ["id"]
    )
    return Abort([problem], lead=lead, client=client)


def _email_taken(email: str) -> Problem:
    return Problem(
        f"A client with the email {email} already exists; pass input.clientId to convert "
        "the lead into that client.",
        UserErrorCode.TAKEN,
        ["id"],
    )


def _lead_address(lead: Row[Any], data: inputs.ConvertLead) -> dict[str, Any]:
    address = {"city": lead.city, "state": lead.state, "postal_code": lead.postal_code}
    if data.address is not None:
        address.update(data.address.model_dump(exclude_unset=True))
    return address


async def _external_ids_free(
    clients: ClientRepository, pairs: list[dict[str, str]], client_id: int | None = None
) -> None:
    """Aborts when another client holds one of the lead's external IDs."""
    owners = await clients.external_owners(pairs, except_id=client_id)
    if owners:
        taken = ", ".join(f"{pairs[i]['system']} id {pairs[i]['id']}" for i in sorted(owners))
        raise Abort(
            [
                Problem(
                    f"Another client has this lead's {taken}.",
                    UserErrorCode.TAKEN,
                    ["id"],
                )
            ]
        )


async def _new_client(
    clients: ClientRepository, lead: Row[Any], data: inputs.ConvertLead, principal: Principal
) -> Row[Any]:
    given = data.model_dump(exclude_unset=True, exclude={"address"})
    values = {
        "email": lead.email,
        "first_name": given.get("first_name") or lead.first_name,
        "last_name": given.get("last_name") or lead.last_name,
        "phone": given.get("phone", lead.phone),
        "company": given.get("company", lead.company),
        "notes": given.get("notes", lead.notes),
        "meta": {**lead.meta, **(given.get("meta") or {})},
        "address": AddressIn.model_validate(_lead_address(lead, data)).model_dump(),
    }
    await _external_ids_free(clients, lead.external_ids)
    try:
        create = ClientCreate.model_validate(values)
    except ValidationError as exc:
        # Only the names can be missing here: everything else was validated already.
        raise Abort(problems_from(exc)) from None
    # No SELECT for the email first: the unique index answers it in the INSERT itself, and the
    # IntegrityError becomes TAKEN (convert_lead), one statement fewer per conversion.
    row = create.model_dump(exclude={"address"})
    row.update(create.address.model_dump() if create.address else {})
    return await clients.insert(
        {**row, "meta": row["meta"] or {}, "status": "ACTIVE", "external_ids": lead.external_ids}
        | {"owner_id": lead.owner_id}
        | actor_columns(principal, created=True)
    )


async def _link_client(
    unit: Unit,
    clients: ClientRepository,
    client_pk: int,
    lead: Row[Any],
    data: inputs.ConvertLead,
    principal: Principal,
) -> Row[Any]:
    """The existing client: given values win, the lead fills what the client lacks (a
    CLIENT_UPDATED event when that changed it)."""
    client = await clients.get(client_pk, for_update=True)
    if client is None:
        raise Abort([CLIENTS.not_found(["input", "clientId"])])
    if client.status == "ARCHIVED":
        raise Abort(
            [
                Problem(
                    "This client is archived; restore it before converting into it.",
                    UserErrorCode.ALREADY_ARCHIVED,
                    ["input", "clientId"],
                )
            ]
        )
    given = data.model_dump(exclude_unset=True, exclude={"address"})
    changes: dict[str, Any] = {}
    for name in ("first_name", "last_name", "phone", "company", "notes"):
        if name in given:
            changes[name] = given[name]
        elif getattr(client, name) is None and getattr(lead, name) is not None:
            changes[name] = getattr(lead, name)
    given_parts = data.address.model_dump(exclude_unset=True) if data.address else {}
    for name, value in {**_lead_address(lead, data), **given_parts}.items():
        given_here = name in given_parts
        if given_here or (getattr(client, name) is None and value is not None):
            changes[name] = value
    meta = {**lead.meta, **client.meta, **(given.get("meta") or {})}
    if meta != client.meta:
        changes["meta"] = meta
    # The lead's external IDs go along, for the systems the client has none of.
    external_ids = with_external_ids(lead.external_ids, client.external_ids)
    await _external_ids_free(clients, external_ids, client.id)
    changes["external_ids"] = external_ids
    # The client keeps its owner; one without gets the lead's. It gains the lead's tags.
    if client.owner_id is None and lead.owner_id is not None:
        changes["owner_id"] = lead.owner_id
    lead_tags = await LEAD_TAGS.tag_ids(unit.conn, clients.workspace_id, [lead.id])
    tagged = await write_tags(unit, CLIENT_TAGS, client.id, lead_tags.get(lead.id), add=True)
    for name in ("first_name", "last_name"):
        if name in changes and changes[name] is None:
            raise Abort(
                [
                    Problem(
                        "A client's name cannot be cleared.",
                        UserErrorCode.REQUIRED,
                        ["input", camel(name)],
                    )
                ]
            )
    changes = changed(client, changes)
    if not changes and not tagged:
        return client
    row = await clients.update(client, changes | actor_columns(principal, created=False))
    unit.record(CLIENTS, Write.UPDATED, client, row, also=tagged)
    return row
