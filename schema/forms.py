"""Web forms (ADMIN): an HTML form on any site posts to /forms/{key} and makes a lead
(schema/http/forms.py serves the posts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import Row

from resolvers import forms as resolve
from resolvers.ids import to_global_id
from schema.context import Info
from schema.errors import UserError, user_errors
from schema.relay import Node, input_values


@strawberry.type(
    description="A web form: posts to /forms/{key} (urlencoded, multipart or JSON; fields "
    "named as in CreateLeadInput) are upserted as leads by email."
)
class LeadForm(Node):
    id: strawberry.ID
    name: str
    key: str = strawberry.field(description="Public: it goes into the form's action URL.")
    source: str | None = strawberry.field(description="Stored as each lead's source.")
    allowed_origins: list[str] = strawberry.field(
        description="Origins whose scripts may read the answer (CORS); empty: same-origin "
        "posts and plain HTML forms only."
    )
    redirect_url: str | None = strawberry.field(
        description="Where a browser's post is sent (303) after it; without it, 201 JSON."
    )
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row[Any]) -> LeadForm:
        return cls(
            id=strawberry.ID(to_global_id(resolve.FORM, row.id)),
            name=row.name,
            key=row.key,
            source=row.source,
            allowed_origins=list(row.allowed_origins),
            redirect_url=row.redirect_url,
            created_at=row.created_at,
        )

    @classmethod
    def maybe(cls, row: Row[Any] | None) -> LeadForm | None:
        return cls.from_row(row) if row is not None else None


@strawberry.input
class CreateLeadFormInput:
    name: str = strawberry.field(description="At most 100 characters.")
    source: str | None = strawberry.UNSET
    allowed_origins: list[str] | None = strawberry.field(
        default=strawberry.UNSET,
        description="Each scheme://host[:port] (http or https, no path): https://example.com",
    )
    redirect_url: str | None = strawberry.field(
        default=strawberry.UNSET, description="An absolute http(s) URL."
    )


@strawberry.type
class CreateLeadFormPayload:
    form: LeadForm | None
    user_errors: list[UserError]


@strawberry.type
class DeleteLeadFormPayload:
    deleted_form_id: strawberry.ID | None
    user_errors: list[UserError]


@strawberry.type
class FormQuery:
    @strawberry.field(description="The workspace's web forms, oldest first (ADMIN).")
    async def lead_forms(self, info: Info) -> list[LeadForm]:
        return [LeadForm.from_row(r) for r in await resolve.forms(info.context)]


@strawberry.type
class FormMutation:
    @strawberry.mutation(description="A new web form with a random key (ADMIN).")
    async def create_lead_form(
        self, info: Info, input: CreateLeadFormInput
    ) -> CreateLeadFormPayload:
        out = await resolve.create(info.context, input_values(input))
        return CreateLeadFormPayload(
            form=LeadForm.maybe(out.form), user_errors=user_errors(out.problems)
        )

    @strawberry.mutation(
        description="Deletes a web form (ADMIN): posts to its key are answered 404 from then on."
    )
    async def delete_lead_form(self, info: Info, id: strawberry.ID) -> DeleteLeadFormPayload:
        out = await resolve.delete(info.context, id)
        deleted = strawberry.ID(id) if out.deleted_id is not None else None
        return DeleteLeadFormPayload(deleted_form_id=deleted, user_errors=user_errors(out.problems))
