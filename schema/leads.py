"""Lead types, inputs and payloads, and the Query/Mutation fields for leads."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import Row

from db.models import LeadMatch as _LeadMatch
from db.models import LeadStatus as _LeadStatus
from db.models.fields import full_name
from resolvers import leads as resolve
from schema.activities import activities_field
from schema.context import Info
from schema.errors import UserError, user_errors
from schema.events import history_field
from schema.follow_ups import DueWindow, follow_ups_field
from schema.intake import ExternalId, ExternalIdInput, LeadMatch, external_id_field
from schema.lead_counts import LeadAggregate
from schema.records import (
    DateTimeRange,
    IntRange,
    Record,
    connection_field,
    order_input,
    record_field,
    search_filter,
)
from schema.relay import Connection, input_values
from schema.scalars import JSON
from schema.tags import TagMatch, owner_field, tags_field

if TYPE_CHECKING:
    from schema.clients import AddressInput, Client
    from schema.duplicates import LeadDuplicate

LeadStatus = strawberry.enum(_LeadStatus, name="LeadStatus")
ClientRef = Annotated["Client", strawberry.lazy("schema.clients")]
LeadDuplicateRef = Annotated["LeadDuplicate", strawberry.lazy("schema.duplicates")]


@strawberry.federation.type(keys=["id"], description="A prospect; only the email is required.")
class Lead(Record):
    records = resolve.LEADS

    email: str
    first_name: str | None
    last_name: str | None
    phone: str | None
    company: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    source: str | None
    notes: str | None
    status: LeadStatus  # type: ignore[valid-type]
    score: int
    metadata: JSON
    created_at: datetime
    updated_at: datetime
    converted_at: datetime | None
    converted_client_id: strawberry.Private[int | None]
    external_ids: strawberry.Private[list[dict[str, str]]]
    external_id_list: list[ExternalId] = external_id_field()
    # The matching keys Lead.duplicates looks for (db/models/keys.py).
    email_key: strawberry.Private[str]
    phone_key: strawberry.Private[str]
    company_key: strawberry.Private[str]
    name_key: strawberry.Private[str]
    owner_id: strawberry.Private[int | None]
    pk: strawberry.Private[int]

    # Computed once per row in from_row: a plain field is cheaper to execute than a resolver.
    name: str | None = strawberry.field(
        description='"firstName lastName"; null when both are null.'
    )

    @strawberry.field(description="The client created by (or linked in) convertLead.")
    async def converted_client(self, info: Info) -> ClientRef | None:
        if self.converted_client_id is None:
            return None
        from schema.clients import Client

        return Client.maybe(await info.context.loaders.client_by_id.load(self.converted_client_id))

    @strawberry.field(
        description="Leads that may be the same person: the same email, the same phone "
        "(E.164), or a similar name at a similar company; best first, at most 100."
    )
    async def duplicates(self, info: Info, first: int | None = 10) -> list[LeadDuplicateRef]:
        from schema.duplicates import lead_duplicates

        return await lead_duplicates(info, self, first)

    history = history_field()
    owner = owner_field()
    tags = tags_field("lead")
    activities = activities_field("Lead")
    follow_ups = follow_ups_field("Lead")

    computed_columns = ("first_name", "last_name", "status")
    resolver_columns = Record.resolver_columns | {
        "activities": (),  # its own global ID is enough
        "follow_ups": (),
        "converted_client": ("converted_client_id",),
        "external_id_list": ("external_ids",),
        "duplicates": ("email_key", "phone_key", "company_key", "name_key"),
        "owner": ("owner_id",),
        "tags": ("id",),
    }

    @classmethod
    def computed(cls, row: Row[Any]) -> dict[str, Any]:
        return {
            "name": full_name(row.first_name, row.last_name),
            "status": _LeadStatus(row.status),
            "pk": row.id,
        }


@strawberry.input
class LeadFilter:
    search: str | None = search_filter()
    status: list[LeadStatus] | None = None  # type: ignore[valid-type]
    source: list[str] | None = strawberry.field(
        default=None, description="Any of these sources (exact, case-insensitive)."
    )
    city: str | None = None
    state: str | None = None
    email: str | None = None
    score: IntRange | None = None
    created_at: DateTimeRange | None = None
    converted: bool | None = None
    external_id: ExternalIdInput | None = strawberry.field(
        default=None, description="The lead with this id of this system (the system's case aside)."
    )
    owner_id: strawberry.ID | None = strawberry.field(
        default=None, description="Owned by this member."
    )
    unassigned: bool | None = strawberry.field(
        default=None, description="true: no owner; false: an owner."
    )
    tags: TagMatch | None = None
    follow_up_due: DueWindow | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Has an OPEN follow-up due in this window."
    )


@strawberry.type(name="LeadConnection")
class LeadConnection(Connection[Lead]):  # type: ignore[misc]
    spec: strawberry.Private[Any] = None  # the page's filter, for its aggregate

    @strawberry.field(description="Counts over every lead the filter matches, not just this page.")
    def aggregate(self) -> LeadAggregate:
        return LeadAggregate(spec=self.spec)

    @classmethod
    def from_page(cls, page: Any, build: Any) -> Any:
        connection: Any = super().from_page(page, build)
        connection.spec = page.spec
        return connection


LeadOrder = order_input(
    "Lead",
    resolve.LEAD_SORTS,
    "Left out or null: ASC for NAME and EMAIL, DESC for dates and score.",
)


@strawberry.input(
    description="Every field optional. A field left out is unchanged; a nullable field set to "
    "null is cleared; email, status, score and metadata cannot be cleared."
)
class UpdateLeadInput:
    email: str | None = strawberry.UNSET
    first_name: str | None = strawberry.UNSET
    last_name: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    company: str | None = strawberry.UNSET
    city: str | None = strawberry.UNSET
    state: str | None = strawberry.UNSET
    postal_code: str | None = strawberry.UNSET
    source: str | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET
    status: LeadStatus | None = strawberry.UNSET  # type: ignore[valid-type]
    score: int | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
    external_ids: list[ExternalIdInput] | None = strawberry.field(
        default=strawberry.UNSET,
        description="Sets these systems' ids; the lead's ids of other systems stay.",
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
class CreateLeadInput(UpdateLeadInput):
    """UpdateLeadInput's fields, and the email required."""

    email: str


@strawberry.input(
    description="What convertLead needs beyond what the lead holds. Values given here win; "
    "the address defaults to the lead's city/state/postalCode."
)
class ConvertLeadInput:
    client_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="Convert into this existing client instead of creating one.",
    )
    first_name: str | None = strawberry.UNSET
    last_name: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    company: str | None = strawberry.UNSET
    address: Annotated[AddressInput, strawberry.lazy("schema.clients")] | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET


@strawberry.type
class CreateLeadPayload:
    lead: Lead | None
    user_errors: list[UserError]


@strawberry.type
class UpdateLeadPayload:
    lead: Lead | None
    user_errors: list[UserError]


@strawberry.type
class DeleteLeadPayload:
    deleted_lead_id: strawberry.ID | None
    user_errors: list[UserError]


@strawberry.type
class ConvertLeadPayload:
    lead: Lead | None
    client: ClientRef | None
    user_errors: list[UserError]


@strawberry.type
class UpsertLeadPayload:
    lead: Lead | None
    created: bool | None = strawberry.field(
        description="true: a new lead; false: an existing one was updated."
    )
    user_errors: list[UserError]


@strawberry.type
class LeadQuery:
    lead = record_field(Lead)
    leads = connection_field(
        Lead,
        LeadFilter,
        LeadOrder,
        description="Leads, newest first unless orderBy says otherwise. Page with first/after "
        "or last/before: 20 by default, at most 100.",
        connection=LeadConnection,
    )


@strawberry.type
class LeadMutation:
    @strawberry.mutation
    async def create_lead(self, info: Info, input: CreateLeadInput) -> CreateLeadPayload:
        out = await resolve.create_lead(info.context, input_values(input))
        return CreateLeadPayload(lead=Lead.maybe(out.lead), user_errors=user_errors(out.problems))

    @strawberry.mutation(
        description="Finds the lead by matchOn and updates the fields given, or creates it. "
        "Concurrent upserts of one key end with one lead."
    )
    async def upsert_lead(
        self,
        info: Info,
        input: CreateLeadInput,
        match_on: LeadMatch = _LeadMatch.EMAIL,  # type: ignore[valid-type]
    ) -> UpsertLeadPayload:
        how = _LeadMatch(match_on).value
        out = await resolve.upsert_lead(info.context, input_values(input), how)
        return UpsertLeadPayload(
            lead=Lead.maybe(out.lead), created=out.created, user_errors=user_errors(out.problems)
        )

    @strawberry.mutation
    async def update_lead(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateLeadInput,
    ) -> UpdateLeadPayload:
        out = await resolve.update_lead(info.context, id, input_values(input))
        return UpdateLeadPayload(lead=Lead.maybe(out.lead), user_errors=user_errors(out.problems))

    @strawberry.mutation
    async def delete_lead(self, info: Info, id: strawberry.ID) -> DeleteLeadPayload:
        out = await resolve.delete_lead(info.context, id)
        deleted = strawberry.ID(out.deleted_id) if out.deleted_id else None
        return DeleteLeadPayload(deleted_lead_id=deleted, user_errors=user_errors(out.problems))

    @strawberry.mutation(
        description="Creates a client from the lead in one transaction, sets the lead's status "
        "to WON, convertedAt and convertedClient. A lead converts at most once: again, it "
        "answers ALREADY_CONVERTED with the lead and the client it went to."
    )
    async def convert_lead(
        self,
        info: Info,
        id: strawberry.ID,
        input: ConvertLeadInput | None = None,
    ) -> ConvertLeadPayload:
        from schema.clients import Client

        values = input_values(input) if input is not None else {}
        out = await resolve.convert_lead(info.context, id, values)
        return ConvertLeadPayload(
            lead=Lead.maybe(out.lead),
            client=Client.maybe(out.client),
            user_errors=user_errors(out.problems),
        )
