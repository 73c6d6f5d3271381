"""Import jobs as the API sees them: the upload that makes one, the queries, cancellation."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row

from db.models import DuplicatePolicy, ImportStatus, LeadMatch, Role
from db.models.imports import ImportFormat
from db.repositories.imports import ImportJobRepository
from db.types import utcnow
from resolvers.errors import BadInput, Problem, UserErrorCode
from resolvers.ids import pk_for_query, to_global_id
from resolvers.imports.rows import Header, Refused, Splitter, TooLarge, blank, csv_fields
from resolvers.pagination import MAX_PAGE_SIZE, Page

if TYPE_CHECKING:
    from resolvers.context import Context

CHUNK_BYTES = 1024 * 1024
MAX_JOBS = 100
_MEDIA_TYPES = {
    "text/csv": ImportFormat.CSV,
    "application/x-ndjson": ImportFormat.NDJSON,
    "application/ndjson": ImportFormat.NDJSON,
    "application/jsonl": ImportFormat.NDJSON,
    "application/x-jsonlines": ImportFormat.NDJSON,
}
# How long an upload may go without a chunk before a runner deletes it as abandoned.
UPLOAD_LEASE = timedelta(minutes=10)


def options(params: Mapping[str, str]) -> dict[str, Any]:
    """The query parameters onDuplicate, matchOn, dryRun, checked; BadInput names a bad one."""

    def choice(name: str, enum: Any, default: Any) -> str:
        value = params.get(name, default.value)
        if value not in enum.__members__:
            allowed = ", ".join(enum.__members__)
            raise BadInput(f"Query parameter '{name}' must be one of {allowed}.", name)
        return str(value)

    dry_run = params.get("dryRun", "false").lower()
    if dry_run not in ("true", "false"):
        raise BadInput("Query parameter 'dryRun' must be true or false.", "dryRun")
    return {
        "on_duplicate": choice("onDuplicate", DuplicatePolicy, DuplicatePolicy.SKIP),
        "match_on": choice("matchOn", LeadMatch, LeadMatch.EMAIL),
        "dry_run": dry_run == "true",
    }


def body_format(content_type: str | None) -> ImportFormat:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in _MEDIA_TYPES:
        raise Refused(
            "Send the file as text/csv (a header row, then one lead per row) or as "
            f"application/x-ndjson (one JSON object per line); got {media or 'no Content-Type'}."
        )
    return _MEDIA_TYPES[media]


class _Checker:
    """What can be told of a body as it arrives, so that a file that is not what it claims is
    refused before a job exists: UTF-8 text without NUL, a CSV header naming an email column,
    NDJSON lines that are JSON objects."""

    def __init__(self, fmt: ImportFormat) -> None:
        self.format = fmt
        self.splitter = Splitter(fmt)
        self.header_seen = False
        self.line = 0

    def check(self, data: bytes, final: bool = False) -> None:
        if b"\x00" in data:
            raise Refused("The body holds NUL bytes: it is binary, not a CSV or NDJSON text.")
        try:
            records = self.splitter.feed(data, final)
        except UnicodeDecodeError:
            raise Refused(
                "The body is not UTF-8 text (binary, or another encoding): send CSV or NDJSON "
                "encoded as UTF-8."
            ) from None
        for record in records:
            self.line += 1
            if blank(record):
                continue
            if self.format is ImportFormat.NDJSON:
                text = record.strip()
                if text[:1] != "{" or text[-1:] != "}":
                    raise Refused(f"Line {self.line} is not a JSON object: NDJSON is one per line.")
            elif not self.header_seen:
                self.header_seen = True
                try:
                    names = csv_fields(record)
                except Exception:
                    raise Refused("The CSV header row is not valid CSV.") from None
                if not Header.parse(names).has_email:
                    raise Refused(
                        "The CSV header row has no email column (the first row names the columns)."
                    )


async def receive(
    ctx: Context, body: AsyncIterator[bytes], content_type: str | None, params: Mapping[str, str]
) -> str:
    """Stores an uploaded file as a QUEUED job (its global ID); Refused or BadInput (400) for
    a body or parameter that will not do, and then nothing is kept."""
    principal = ctx.require(Role.MEMBER)
    opts = options(params)
    fmt = body_format(content_type)
    checker = _Checker(fmt)
    limit = ctx.settings.import_max_bytes
    db, workspace_id = ctx.db, ctx.workspace_id
    async with db.write() as conn:
        job_id = await ImportJobRepository(conn, workspace_id).start_upload(
            {
                "format": fmt.value,
                "options": opts,
                "created_at": utcnow(),
                "created_by_user_id": principal.user_id,
                "created_by_api_key_id": principal.api_key_id,
                "claimed_until": utcnow() + UPLOAD_LEASE,
            }
        )
    seq = size = 0
    buffer = bytearray()

    async def store(data: bytes) -> None:
        nonlocal seq
        async with db.write() as conn:
            await ImportJobRepository(conn, workspace_id).add_chunk(
                job_id, seq, data, utcnow() + UPLOAD_LEASE
            )
        seq += 1

    try:
        async for piece in body:
            if not piece:
                continue
            size += len(piece)
            if size > limit:
                raise TooLarge(f"The file is larger than {limit} bytes, the most accepted.")
            checker.check(piece)
            buffer += piece
            if len(buffer) >= CHUNK_BYTES:
                await store(bytes(buffer))
                buffer.clear()
        checker.check(b"", final=True)
        if size == 0:
            raise Refused("The body is empty: send a CSV or NDJSON file.")
        if buffer:
            await store(bytes(buffer))
        async with db.write() as conn:
            await ImportJobRepository(conn, workspace_id).queue(job_id, seq, size)
    except BaseException:
        # Refused, over the limit, the client gone: no job, nothing of the body kept.
        async with db.write() as conn:
            await ImportJobRepository(conn, workspace_id).discard(job_id)
        raise
    return to_global_id("ImportJob", job_id)


# ------------------------------------------------------------------ the API's fields


async def import_job(ctx: Context, id_: str) -> Row[Any] | None:
    ctx.require(Role.VIEWER)
    pk = pk_for_query(id_, "ImportJob")
    if pk is None:
        return None
    async with ctx.db.read() as conn:
        return await ImportJobRepository(conn, ctx.workspace_id).get(pk)


async def import_jobs(ctx: Context, first: int | None) -> list[Row[Any]]:
    """The workspace's newest jobs (20 when ``first`` is null)."""
    ctx.require(Role.VIEWER)
    first = 20 if first is None else first
    if not 0 <= first <= MAX_JOBS:
        raise BadInput(f"Argument 'first' must be between 0 and {MAX_JOBS}.", "first")
    async with ctx.db.read() as conn:
        return await ImportJobRepository(conn, ctx.workspace_id).newest(first)


async def cancel_import_job(ctx: Context, id_: str) -> tuple[Row[Any] | None, list[Problem]]:
    """QUEUED or RUNNING → CANCELLED: the runner stops before its next batch (the batches
    written stay); a finished job is a userError."""
    ctx.require(Role.MEMBER)
    pk = pk_for_query(id_, "ImportJob")
    not_found = Problem("No import job with this ID.", UserErrorCode.NOT_FOUND, ["id"])
    if pk is None:
        return None, [not_found]
    async with ctx.db.write() as conn:
        repo = ImportJobRepository(conn, ctx.workspace_id)
        cancelled = await repo.cancel(pk, utcnow())
        current = cancelled or await repo.get(pk)
    if current is None:
        return None, [not_found]
    if cancelled is None:
        message = f"This import job has already finished ({current.status}): nothing to cancel."
        return current, [Problem(message, UserErrorCode.INVALID, ["id"])]
    return cancelled, []


def _cursor(row: Any) -> str:
    raw = json.dumps(["ROW", row.row, row.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[int, int]:
    malformed = BadInput("Argument 'after' is not a valid cursor.", "after")
    if len(cursor) > 100:
        raise malformed
    try:
        kind, row, id_ = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError):
        raise malformed from None
    if kind != "ROW" or type(row) is not int or type(id_) is not int:
        raise malformed
    return row, id_


async def row_errors(ctx: Context, job_id: int, first: int | None, after: str | None) -> Page:
    """A page of a job's row errors, in row order."""
    ctx.require(Role.VIEWER)
    limit = MAX_PAGE_SIZE if first is None else first
    if not 0 <= limit <= MAX_PAGE_SIZE:
        raise BadInput(f"Argument 'first' must be between 0 and {MAX_PAGE_SIZE}.", "first")
    start = _decode(after) if after is not None else None
    db, workspace_id = ctx.db, ctx.workspace_id
    rows: list[Any] = []
    if limit:
        async with db.read() as conn:
            rows = await ImportJobRepository(conn, workspace_id).errors_page(
                job_id, start, limit + 1
            )

    async def count() -> int:
        async with db.read() as conn:
            return await ImportJobRepository(conn, workspace_id).errors_count(job_id)

    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        rows=rows,
        cursors=[_cursor(r) for r in rows],
        has_next_page=more,
        has_previous_page=start is not None,
        count=count,
    )


def status_of(row: Any) -> ImportStatus:
    return ImportStatus(row.status)
