"""Bulk imports: jobs made by ``POST /imports/leads`` (schema/http/imports.py), their progress
and row errors, and cancellation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import Row

from db.models import DuplicatePolicy as _DuplicatePolicy
from db.models import ImportStatus as _ImportStatus
from db.models import LeadMatch as _LeadMatch
from resolvers.errors import UserErrorCode as _UserErrorCode
from resolvers.ids import to_global_id
from resolvers.imports import jobs as resolve
from schema.auth import Actor, actor
from schema.context import Info
from schema.errors import UserError, UserErrorCode, user_errors
from schema.intake import LeadMatch
from schema.relay import Connection, Node

ImportStatus = strawberry.enum(_ImportStatus, name="ImportStatus")
DuplicatePolicy = strawberry.enum(
    _DuplicatePolicy,
    name="DuplicatePolicy",
    description="What a row that matches an existing lead does. SKIP: keep the lead as it is; "
    "UPDATE: fill it with the row's values; CREATE: add another lead anyway.",
)


@strawberry.type(description="One problem of one row of an import.")
class ImportRowError:
    row: int = strawberry.field(description="1-based data row (the header is row 0).")
    field: str | None = strawberry.field(description="The column, as its input field name.")
    message: str
    code: UserErrorCode  # type: ignore[valid-type]

    @classmethod
    def from_row(cls, row: Row[Any]) -> ImportRowError:
        return cls(row=row.row, field=row.field, message=row.message, code=_UserErrorCode(row.code))


ImportRowErrorConnection = Connection[ImportRowError]


@strawberry.type(description="A file posted to /imports/leads, worked through in the background.")
class ImportJob(Node):
    id: strawberry.ID
    status: ImportStatus  # type: ignore[valid-type]
    dry_run: bool
    on_duplicate: DuplicatePolicy  # type: ignore[valid-type]
    match_on: LeadMatch  # type: ignore[valid-type]
    rows_total: int | None = strawberry.field(description="Null until the whole file is read.")
    rows_processed: int
    created: int
    updated: int
    skipped: int
    failed: int
    created_at: datetime
    finished_at: datetime | None
    error: str | None = strawberry.field(
        description="Why the job FAILED as a whole (the rows before rowsProcessed were written)."
    )
    pk: strawberry.Private[int]
    created_by_user_id: strawberry.Private[int | None]
    created_by_api_key_id: strawberry.Private[int | None]

    @strawberry.field(description="The rows refused, in row order.")
    async def errors(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> ImportRowErrorConnection:  # type: ignore[valid-type]
        page = await resolve.row_errors(info.context, self.pk, first, after)
        return ImportRowErrorConnection.from_page(page, ImportRowError.from_row)  # type: ignore[no-any-return]

    @strawberry.field(description="The member or API key that posted the file.")
    async def created_by(self, info: Info) -> Actor | None:
        return await actor(info, self.created_by_user_id, self.created_by_api_key_id)  # type: ignore[no-any-return]

    @classmethod
    def from_row(cls, row: Row[Any]) -> ImportJob:
        options = row.options
        return cls(
            id=strawberry.ID(to_global_id("ImportJob", row.id)),
            status=_ImportStatus(row.status),
            dry_run=bool(options["dry_run"]),
            on_duplicate=_DuplicatePolicy(options["on_duplicate"]),
            match_on=_LeadMatch(options["match_on"]),
            rows_total=row.rows_total,
            rows_processed=row.rows_processed,
            created=row.created,
            updated=row.updated,
            skipped=row.skipped,
            failed=row.failed,
            created_at=row.created_at,
            finished_at=row.finished_at,
            error=row.error,
            pk=row.id,
            created_by_user_id=row.created_by_user_id,
            created_by_api_key_id=row.created_by_api_key_id,
        )

    @classmethod
    def maybe(cls, row: Row[Any] | None) -> ImportJob | None:
        return cls.from_row(row) if row is not None else None


@strawberry.type
class CancelImportJobPayload:
    job: ImportJob | None
    user_errors: list[UserError]


@strawberry.type
class ImportQuery:
    @strawberry.field(description="An import job by ID, or null.")
    async def import_job(self, info: Info, id: strawberry.ID) -> ImportJob | None:
        return ImportJob.maybe(await resolve.import_job(info.context, id))

    @strawberry.field(description="The workspace's import jobs, newest first.")
    async def import_jobs(self, info: Info, first: int | None = 20) -> list[ImportJob]:
        return [ImportJob.from_row(r) for r in await resolve.import_jobs(info.context, first)]


@strawberry.type
class ImportMutation:
    @strawberry.mutation(
        description="Stops a QUEUED or RUNNING import (MEMBER); the rows written stay."
    )
    async def cancel_import_job(self, info: Info, id: strawberry.ID) -> CancelImportJobPayload:
        job, problems = await resolve.cancel_import_job(info.context, id)
        return CancelImportJobPayload(job=ImportJob.maybe(job), user_errors=user_errors(problems))
