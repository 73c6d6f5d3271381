"""Client types, inputs and payloads, and the Query/Mutation fields for clients."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import Row

from db.models import ClientStatus as _ClientStatus
from db.models.fields import full_name
from resolvers import clients as resolve
from resolvers.ids import to_global_id
from schema.auth import Audited, audit_fields
from schema.context import Info
from schema.errors import UserError, user_errors
from schema.leads import DateTimeRange
from schema.relay import Connection, Node, SortDirection, input_values
from schema.scalars import JSON

if TYPE_CHECKING:
    from schema.leads import Lead

ClientStatus = strawberry.enum(_ClientStatus, name="ClientStatus")
LeadRef = Annotated["Lead", strawberry.lazy("schema.leads")]


@strawberry.enum
class ClientSortField(enum.Enum):
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"
    NAME = "NAME"
    EMAIL = "EMAIL"


@strawberry.type
class Address:
    street: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None = strawberry.field(description="ISO 3166-1 alpha-2 when given.")


@strawberry.federation.type(keys=["id"], description="A fully onboarded customer.")
class Client(Node, Audited):
    id: strawberry.ID
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

    name: str  # "firstName lastName", computed in from_row

    @strawberry.field(description="The lead this client was converted from, if any.")
    async def converted_from(self, info: Info) -> LeadRef | None:
        from schema.leads import Lead

        row = await info.context.loaders.lead_converted_into.load(self.pk)
        return Lead.from_row(row) if row is not None else None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Client:
        return cls(
            id=strawberry.ID(to_global_id("Client", row.id)),
            email=row.email,
            first_name=row.first_name,
            last_name=row.last_name,
            name=full_name(row.first_name, row.last_name) or "",
            phone=row.phone,
            company=row.company,
            address=Address(
                street=row.street,
                city=row.city,
                state=row.state,
                postal_code=row.postal_code,
                country=row.country,
            ),
            status=_ClientStatus(row.status),
            archived_at=row.archived_at,
            notes=row.notes,
            metadata=row.meta,
            created_at=row.created_at,
            updated_at=row.updated_at,
            pk=row.id,
            **audit_fields(row),
        )

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> Client | None:
        row = await resolve.get_client(info.context, id)
        return cls.from_row(row) if row is not None else None


ClientConnection = Connection[Client]


@strawberry.input
class ClientFilter:
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of the name, email or company."
    )
    status: list[ClientStatus] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Default: ACTIVE only when the filter leaves it out."
    )
    city: str | None = None
    state: str | None = None
    email: str | None = None
    created_at: DateTimeRange | None = None


@strawberry.input
class ClientOrder:
    field: ClientSortField
    direction: SortDirection | None = strawberry.field(
        default=strawberry.UNSET,
        description="Left out or null: ASC for NAME and EMAIL, DESC for dates.",
    )


@strawberry.input
class AddressInput:
    street: str | None = strawberry.UNSET
    city: str | None = strawberry.UNSET
    state: str | None = strawberry.UNSET
    postal_code: str | None = strawberry.UNSET
    country: str | None = strawberry.UNSET


@strawberry.input
class CreateClientInput:
    email: str
    first_name: str
    last_name: str
    phone: str | None = strawberry.UNSET
    company: str | None = strawberry.UNSET
    address: AddressInput | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET


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


def _client(row: Row[Any] | None) -> Client | None:
    return Client.from_row(row) if row is not None else None


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
    @strawberry.field
    async def client(self, info: Info, id: strawberry.ID) -> Client | None:
        return _client(await resolve.get_client(info.context, id))

    @strawberry.field(
        description="Clients (ACTIVE unless filter.status says otherwise), newest first unless "
        "orderBy says otherwise. Page with first/after or last/before: 20 by default, at most 100."
    )
    async def clients(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: ClientFilter | None = None,
        order_by: ClientOrder | None = None,
    ) -> ClientConnection:
        page = await resolve.list_clients(
            info.context, first, after, last, before, filter, order_by
        )
        return ClientConnection.from_page(page, Client.from_row)


@strawberry.type
class ClientMutation:
    @strawberry.mutation
    async def create_client(self, info: Info, input: CreateClientInput) -> CreateClientPayload:
        out = await resolve.create_client(info.context, input_values(input))
        return CreateClientPayload(
            client=_client(out.client), user_errors=user_errors(out.problems)
        )

    @strawberry.mutation
    async def update_client(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateClientInput,
    ) -> UpdateClientPayload:
        out = await resolve.update_client(info.context, id, input_values(input))
        return UpdateClientPayload(
            client=_client(out.client), user_errors=user_errors(out.problems)
        )

    @strawberry.mutation(description="Soft delete: status ARCHIVED, archivedAt set.")
    async def archive_client(self, info: Info, id: strawberry.ID) -> ArchiveClientPayload:
        out = await resolve.set_archived(info.context, id, archived=True)
        return ArchiveClientPayload(
            client=_client(out.client), user_errors=user_errors(out.problems)
        )

    @strawberry.mutation
    async def restore_client(self, info: Info, id: strawberry.ID) -> RestoreClientPayload:
        out = await resolve.set_archived(info.context, id, archived=False)
        return RestoreClientPayload(
            client=_client(out.client), user_errors=user_errors(out.problems)
        )
