"""Client types, inputs and payloads, and the Query/Mutation fields for clients."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import strawberry
from sqlalchemy import Row

from db.models import ClientStatus as _ClientStatus
from db.models.fields import full_name
from resolvers import clients as resolve
from resolvers.outcome import Outcome
from schema.activities import activities_field
from schema.context import Info
from schema.errors import UserError, user_errors
from schema.events import history_field
from schema.follow_ups import follow_ups_field
from schema.intake import ExternalId, ExternalIdInput, external_id_field
from schema.records import (
    DateTimeRange,
    Record,
    connection_field,
    order_input,
    record_field,
    search_filter,
)
from schema.relay import input_values
from schema.scalars import JSON
from schema.tags import TagMatch, owner_field, tags_field
from schema.tickets import client_tickets_field

if TYPE_CHECKING:
    from schema.leads import Lead

ClientStatus = strawberry.enum(_ClientStatus, name="ClientStatus")
LeadRef = Annotated["Lead", strawberry.lazy("schema.leads")]


@strawberry.type
class Address:
    street: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None = strawberry.field(description="ISO 3166-1 alpha-2 when given.")


@strawberry.federation.type(keys=["id"], description="A fully onboarded customer.")
class Client(Record):
    records = resolve.CLIENTS

    email: str
    first_name: str
    last_name: str
    phone: str | None
    company: str | None
    address: Address
    status: ClientStatus  # type: ignore[valid-type]
    archived_at: datetime | None
    notes: str | None
    metadata: JSON
    created_at: datetime
    updated_at: datetime
    pk: strawberry.Private[int]
    external_ids: strawberry.Private[list[dict[str, str]]]
    external_id_list: list[ExternalId] = external_id_field()
    owner_id: strawberry.Private[int | None]

    name: str  # "firstName lastName", computed in from_row

    @strawberry.field(description="The lead this client was converted from, if any.")
    async def converted_from(self, info: Info) -> LeadRef | None:
        from schema.leads import Lead

        return Lead.maybe(await info.context.loaders.lead_converted_into.load(self.pk))

    history = history_field()
    owner = owner_field()
    tags = tags_field("client")
    activities = activities_field("Client")
    tickets = client_tickets_field()
    follow_ups = follow_ups_field("Client")

    computed_columns = (
        *("id", "first_name", "last_name", "status"),
        *("street", "city", "state", "postal_code", "country"),
    )
    resolver_columns = Record.resolver_columns | {
        "activities": (),  # its own global ID is enough
        "follow_ups": (),
        "converted_from": ("id",),
        "external_id_list": ("external_ids",),
        "owner": ("owner_id",),
        "tags": ("id",),
        "tickets": ("id",),
    }

    @classmethod
    def computed(cls, row: Row[Any]) -> dict[str, Any]:
        return {
            "name": full_name(row.first_name, row.last_name) or "",
            "address": Address(
                street=row.street,
                city=row.city,
                state=row.state,
                postal_code=row.postal_code,
                country=row.country,
            ),
            "status": _ClientStatus(row.status),
            "pk": row.id,
        }


@strawberry.input
class ClientFilter:
    search: str | None = search_filter()
    status: list[ClientStatus] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Default: ACTIVE only when the filter leaves it out."
    )
    city: str | None = None
    state: str | None = None
    email: str | None = None
    created_at: DateTimeRange | None = None
    external_id: ExternalIdInput | None = strawberry.field(
        default=None,
        description="The client with this id of this system (the system's case aside).",
    )
    owner_id: strawberry.ID | None = strawberry.field(
        default=None, description="Owned by this member."
    )
    tags: TagMatch | None = None
    has_open_ticket: bool | None = strawberry.field(
        default=None, description="Has (true) or has no (false) OPEN or PENDING ticket."
    )


ClientOrder = order_input(
    "Client",
    resolve.CLIENT_SORTS,
    direction="Left out or null: ASC for NAME and EMAIL, DESC for dates.",
)


@strawberry.input
class AddressInput:
    street: str | None = strawberry.UNSET
    city: str | None = strawberry.UNSET
    state: str | None = strawberry.UNSET
    postal_code: str | None = strawberry.UNSET
    country: str | None = strawberry.UNSET


@strawberry.input(
    description="Every field optional; a field left out is unchanged. address merges part by "
    "part; address: null clears it."
)
class UpdateClientInput:
    email: str | None = strawberry.UNSET
    first_name: str | None = strawberry.UNSET
    last_name: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    company: str | None = strawberry.UNSET
    address: AddressInput | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
    external_ids: list[ExternalIdInput] | None = strawberry.field(
        default=strawberry.UNSET,
        description="Sets these systems' ids; the client's ids of other systems stay.",
    )
    owner_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="A member of the workspace; null: unassigned.",
    )
    tag_ids: list[strawberry.ID] | None = strawberry.field(
        default=strawberry.UNSET,
        description="Tags of the workspace; on update, replaces the set.",
    )


@strawberry.input
class CreateClientInput(UpdateClientInput):
    """UpdateClientInput's fields, with the email and names required."""

    email: str
    first_name: str
    last_name: str


@strawberry.type
class CreateClientPayload:
    client: Client | None
    user_errors: list[UserError]


@strawberry.type
class UpdateClientPayload:
    client: Client | None
    user_errors: list[UserError]


@strawberry.type
class ArchiveClientPayload:
    client: Client | None
    user_errors: list[UserError]


@strawberry.type
class RestoreClientPayload:
    client: Client | None
    user_errors: list[UserError]


@strawberry.type
class ClientQuery:
    client = record_field(Client)
    clients = connection_field(
        Client,
        ClientFilter,
        ClientOrder,
        description="Clients (ACTIVE unless filter.status says otherwise), newest first unless "
        "orderBy says otherwise. Page with first/after or last/before: 20 by default, at most 100.",
    )


P = TypeVar("P")


def _payload(payload: type[P], out: Outcome) -> P:
    """Every client mutation answers the client (or null) and its problems."""
    return payload(client=Client.maybe(out.client), user_errors=user_errors(out.problems))  # type: ignore[call-arg]


@strawberry.type
class ClientMutation:
    @strawberry.mutation
    async def create_client(self, info: Info, input: CreateClientInput) -> CreateClientPayload:
        out = await resolve.create_client(info.context, input_values(input))
        return _payload(CreateClientPayload, out)

    @strawberry.mutation
    async def update_client(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateClientInput,
    ) -> UpdateClientPayload:
        out = await resolve.update_client(info.context, id, input_values(input))
        return _payload(UpdateClientPayload, out)

    @strawberry.mutation(description="Soft delete: status ARCHIVED, archivedAt set.")
    async def archive_client(self, info: Info, id: strawberry.ID) -> ArchiveClientPayload:
        out = await resolve.set_archived(info.context, id, archived=True)
        return _payload(ArchiveClientPayload, out)

    @strawberry.mutation
    async def restore_client(self, info: Info, id: strawberry.ID) -> RestoreClientPayload:
        out = await resolve.set_archived(info.context, id, archived=False)
        return _payload(RestoreClientPayload, out)
