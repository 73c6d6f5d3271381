"""Import jobs: the API's view of a workspace's jobs (scoped), and the runner's statements
(``ImportQueue``: the upload's chunks, claims under a lease, and each batch's writes)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Row,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)

from db import reads
from db.models import ImportChunk, ImportJob, ImportRowError, ImportStatus, Lead, LeadExternalId
from db.models.imports import FINISHED, UPLOADING
from db.repositories.base import Repository
from db.repositories.lead_tallies import TallyRepository

jobs: Any = ImportJob.__table__  # type: ignore[attr-defined]
chunks: Any = ImportChunk.__table__  # type: ignore[attr-defined]
row_errors: Any = ImportRowError.__table__  # type: ignore[attr-defined]
leads: Any = Lead.__table__  # type: ignore[attr-defined]
lead_ids: Any = LeadExternalId.__table__  # type: ignore[attr-defined]

_ACTIVE = (ImportStatus.QUEUED.value, ImportStatus.RUNNING.value)


class ImportJobRepository(Repository):
    """A workspace's import jobs as the API sees them: an upload still arriving is none."""

    table = jobs

    def visible(self, *conditions: Any) -> list[Any]:
        return self.scoped(self.c.status != UPLOADING, *conditions)

    async def get(self, id_: int, *, for_update: bool = False) -> Row[Any] | None:
        stmt = select(jobs).where(*self.visible(jobs.c.id == id_))
        return (await self.conn.execute(stmt)).first()

    async def get_many(self, ids: Iterable[int]) -> list[Row[Any]]:
        stmt = select(jobs).where(*self.visible(jobs.c.id.in_(list(ids))))
        return await reads.all_rows(self.conn, stmt)

    async def newest(self, limit: int) -> list[Row[Any]]:
        stmt = select(jobs).where(*self.visible()).order_by(jobs.c.id.desc()).limit(limit)
        return await reads.all_rows(self.conn, stmt)

    async def start_upload(self, values: dict[str, Any]) -> int:
        """A job whose body is still arriving; its id."""
        stmt = insert(jobs).returning(jobs.c.id)
        zero = dict.fromkeys(("bytes_total", "chunks", "rows_processed"), 0)
        zero |= dict.fromkeys(("created", "updated", "skipped", "failed"), 0)
        params = {**zero, **values, "workspace_id": self.workspace_id, "status": UPLOADING}
        return int((await self.conn.execute(stmt, params)).scalar_one())

    async def add_chunk(self, job_id: int, seq: int, data: bytes, until: datetime) -> None:
        """Stores a piece of the body and keeps the upload alive until ``until``."""
        await self.conn.execute(insert(chunks), {"job_id": job_id, "seq": seq, "data": data})
        await self.conn.execute(
            update(jobs).where(*self.scoped(jobs.c.id == job_id)).values(claimed_until=until)
        )

    async def queue(self, job_id: int, n_chunks: int, n_bytes: int) -> None:
        """The body is whole: the job waits for a runner."""
        await self.conn.execute(
            update(jobs)
            .where(*self.scoped(jobs.c.id == job_id, jobs.c.status == UPLOADING))
            .values(
                status=ImportStatus.QUEUED.value,
                chunks=n_chunks,
                bytes_total=n_bytes,
                claimed_until=None,
            )
        )

    async def discard(self, job_id: int) -> None:
        """An upload that failed: the job and what was stored of its body."""
        await self.conn.execute(delete(chunks).where(chunks.c.job_id == job_id))
        await self.conn.execute(delete(jobs).where(*self.scoped(jobs.c.id == job_id)))

    async def cancel(self, job_id: int, at: datetime) -> Row[Any] | None:
        """QUEUED or RUNNING → CANCELLED; None when the job is not one of those."""
        stmt = (
            update(jobs)
            .where(*self.scoped(jobs.c.id == job_id, jobs.c.status.in_(_ACTIVE)))
            .values(status=ImportStatus.CANCELLED.value, finished_at=at, claim_token=None)
            .returning(jobs)
        )
        return (await self.conn.execute(stmt)).first()

    async def errors_page(
        self, job_id: int, after: tuple[int, int] | None, limit: int
    ) -> list[Any]:
        """Up to ``limit`` row errors of the job by (row, id), past ``after``."""
        where = [row_errors.c.job_id == job_id]
        if after is not None:
            where.append(tuple_(row_errors.c.row, row_errors.c.id) > tuple_(*after))
        stmt = (
            select(row_errors)
            .where(*where)
            .order_by(row_errors.c.row, row_errors.c.id)
            .limit(limit)
        )
        return await reads.all_rows(self.conn, stmt)

    async def errors_count(self, job_id: int) -> int:
        stmt = select(func.count()).select_from(row_errors).where(row_errors.c.job_id == job_id)
        return int(await reads.scalar(self.conn, stmt))


# The claim: a queued job, or a running one whose runner's lease ran out; oldest first.
# SKIP LOCKED lets several PostgreSQL processes claim at once; SQLite's writer serialises.
def _claimable(now: datetime) -> Any:
    return (
        select(jobs.c.id)
        .where(
            or_(
                jobs.c.status == ImportStatus.QUEUED.value,
                and_(jobs.c.status == ImportStatus.RUNNING.value, jobs.c.claimed_until < now),
            )
        )
        .order_by(jobs.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


_GUARD = (
    update(jobs)
    .where(
        jobs.c.id == bindparam("job_id"),
        jobs.c.claim_token == bindparam("token"),
        jobs.c.status == ImportStatus.RUNNING.value,
    )
    .returning(jobs.c.id)
)

# A lead's columns an import writes (the rest: the database's, or none).
WRITABLE = (
    *("email", "first_name", "last_name", "phone", "company", "city", "state"),
    *("postal_code", "source", "notes", "status", "score", "meta", "external_ids"),
)
_DERIVED = (
    *("email_key", "name_key", "city_key", "state_key", "source_key"),
    *("phone_key", "company_key", "search_key"),
)
_UPDATED = (*WRITABLE, *_DERIVED, "updated_at", "updated_by_user_id", "updated_by_api_key_id")
_UPDATE_LEAD = (
    update(leads)
    .where(leads.c.id == bindparam("b_id"), leads.c.workspace_id == bindparam("b_ws"))
    .values({name: bindparam(f"b_{name}") for name in _UPDATED})
)
_DROP_ID = delete(lead_ids).where(
    lead_ids.c.lead_id == bindparam("b_lead"), lead_ids.c.system_key == bindparam("b_system")
)


# A lead's columns an INSERT of the runner sets (the rest keep their defaults: none set).
_INSERTED = tuple(
    c.key for c in leads.columns if c.key not in ("converted_at", "converted_client_id")
)
# As many rows a statement as both engines' parameter limits allow (SQLite 32,766, asyncpg
# 32,767): the full-text index flushes once per statement. 1,000 rows of 32 columns: 8,690 →
# 10,461 rows/s for a 300,000-row import (500 before); at a million, no change (bench/README).
_ROWS_PER_INSERT = 32_000 // len(_INSERTED)
_NOTHING = object()
_ID = _INSERTED.index("id")


@lru_cache(maxsize=8)
def _converters(dialect: Any) -> list[tuple[str, Any]]:
    """(column key, its type's bind processor or None) for the inserted columns."""
    return [(key, leads.c[key].type.bind_processor(dialect)) for key in _INSERTED]


def _placeholders(dialect: Any, first: int, n: int) -> list[str]:
    """``n`` parameters in the driver's style (qmark for sqlite3, $n for asyncpg)."""
    if dialect.paramstyle == "qmark":
        return ["?"] * n
    return [f"${k}" for k in range(first, first + n)]


@lru_cache(maxsize=64)
def _insert_sql(dialect: Any, n: int) -> str:
    """``INSERT INTO leads (...) VALUES (...), ...`` for ``n`` rows, in the driver's
    parameter style (qmark for sqlite3, $n for asyncpg)."""
    names = ", ".join(dialect.identifier_preparer.quote(leads.c[k].name) for k in _INSERTED)
    width = len(_INSERTED)
    marks = _placeholders(dialect, 1, width * n)
    values = ", ".join("(" + ", ".join(marks[r * width : (r + 1) * width]) + ")" for r in range(n))
    return f"INSERT INTO leads ({names}) VALUES {values}"


def lead_params(dialect: Any, rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Each lead's INSERT parameters, in ``_INSERTED`` order, as the driver
    takes them: only the columns whose type converts a value (times, JSON) go through the
    type's bind processor, and a value the same object as its column's last one, or empty
    like it (a batch's time, empty metadata), reuses its conversion."""
    converters = _converters(dialect)
    last: list[Any] = [_NOTHING] * len(converters)
    done: list[Any] = [None] * len(converters)
    out: list[list[Any]] = []
    for row in rows:
        values: list[Any] = []
        append = values.append
        for i, (key, convert) in enumerate(converters):
            value = row.get(key)
            if convert is None or value is None:
                append(value)
            elif value is last[i] or (not value and value == last[i]):
                append(done[i])
            else:
                last[i] = value
                done[i] = convert(value)
                append(done[i])
        out.append(values)
    return out


class ImportQueue:
    """The runner's statements, over every workspace: claim, renew, read, write a batch."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def abandoned_uploads(self, now: datetime) -> list[int]:
        """Uploads whose process stopped sending (died) past their lease."""
        stmt = select(jobs.c.id).where(jobs.c.status == UPLOADING, jobs.c.claimed_until < now)
        return [row.id for row in await self.conn.execute(stmt)]

    async def drop(self, job_ids: Sequence[int]) -> None:
        await self.conn.execute(delete(chunks).where(chunks.c.job_id.in_(list(job_ids))))
        await self.conn.execute(delete(jobs).where(jobs.c.id.in_(list(job_ids))))

    async def claim(self, now: datetime, until: datetime, token: str) -> Row[Any] | None:
        """Claims the next job to run until ``until`` under ``token``; the job, or None."""
        found = (await self.conn.execute(_claimable(now))).first()
        if found is None:
            return None
        stmt = (
            update(jobs)
            .where(jobs.c.id == found.id)
            .values(status=ImportStatus.RUNNING.value, claimed_until=until, claim_token=token)
            .returning(jobs)
        )
        return (await self.conn.execute(stmt)).first()  # type: ignore[no-any-return]

    async def chunk(self, job_id: int, seq: int) -> bytes:
        stmt = select(chunks.c.data).where(chunks.c.job_id == job_id, chunks.c.seq == seq)
        return bytes((await self.conn.execute(stmt)).scalar_one())

    async def holds(self, job_id: int, token: str, progress: dict[str, Any]) -> bool:
        """Moves the job's progress (and lease) if it is still RUNNING under ``token``: first
        in a batch's transaction, so a cancelled or lost job rolls the batch back."""
        params = {"job_id": job_id, "token": token, **progress}
        stmt = _GUARD.values({k: bindparam(k) for k in progress})
        return (await self.conn.execute(stmt, params)).first() is not None

    async def finish(self, job_id: int, token: str, values: dict[str, Any]) -> Row[Any] | None:
        """The job's end (its status and counters), if the claim is still ours: the job."""
        stmt = (
            update(jobs)
            .where(
                jobs.c.id == job_id,
                jobs.c.claim_token == token,
                jobs.c.status == ImportStatus.RUNNING.value,
            )
            .values(**values, claimed_until=None, claim_token=None)
            .returning(jobs)
        )
        return (await self.conn.execute(stmt)).first()  # type: ignore[no-any-return]

    async def status(self, job_id: int) -> str | None:
        stmt = select(jobs.c.status).where(jobs.c.id == job_id)
        return (await self.conn.execute(stmt)).scalar()  # type: ignore[no-any-return]

    async def add_errors(self, job_id: int, errors: Sequence[dict[str, Any]]) -> None:
        if errors:
            await self.conn.execute(insert(row_errors), [{"job_id": job_id, **e} for e in errors])

    # ------------------------------------------------------------------ leads of a batch

    async def leads_by_email(self, workspace_id: int, keys: Sequence[str]) -> list[Row[Any]]:
        """The workspace's leads with these email keys, oldest first. Their ids are looked up
        through the driver first (a batch's thousands of keys as SQLAlchemy's expanding
        parameters cost more than the lookup), then only the leads found are read whole."""
        dialect = self.conn.dialect
        marks = _placeholders(dialect, 1, len(keys) + 1)
        sql = (
            f"SELECT id FROM leads WHERE workspace_id = {marks[0]} "
            f"AND email_key IN ({', '.join(marks[1:])})"
        )
        found = await self.conn.exec_driver_sql(sql, (workspace_id, *keys))
        ids = sorted(row[0] for row in found)
        if not ids:
            return []
        return await self.leads_by_id(workspace_id, ids)

    async def owners(
        self, workspace_id: int, pairs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        """(system key, id) → the lead that holds it, for these pairs."""
        stmt = select(lead_ids).where(
            lead_ids.c.workspace_id == workspace_id,
            tuple_(lead_ids.c.system_key, lead_ids.c.external_id).in_(list(pairs)),
        )
        return {(r.system_key, r.external_id): r.lead_id for r in await self.conn.execute(stmt)}

    async def leads_by_id(self, workspace_id: int, ids: Sequence[int]) -> list[Row[Any]]:
        stmt = (
            select(leads)
            .where(leads.c.workspace_id == workspace_id, leads.c.id.in_(list(ids)))
            .order_by(leads.c.id)
        )
        return list(await self.conn.execute(stmt))

    async def new_lead_ids(self, n: int) -> list[int]:
        """``n`` ids for new leads, taken ahead of their INSERT: one executemany without
        RETURNING (a RETURNING in parameter order is one statement per row on SQLite) still
        tells which lead got which id. PostgreSQL: the sequence's next values. SQLite: past
        the largest id, which no one else can take before this transaction ends (its one
        writer holds the lock from BEGIN IMMEDIATE on)."""
        if self.conn.dialect.name == "postgresql":
            stmt = text(
                "SELECT nextval(pg_get_serial_sequence('leads', 'id')) FROM generate_series(1, :n)"
            )
            return [int(row[0]) for row in await self.conn.execute(stmt, {"n": n})]
        last = (await self.conn.execute(select(func.max(leads.c.id)))).scalar() or 0
        return list(range(last + 1, last + n + 1))

    async def insert_leads(
        self, rows: Sequence[dict[str, Any]], params: Sequence[list[Any]] | None = None
    ) -> None:
        """Inserts the leads (complete rows: their ids and derived columns too) as INSERTs of
        up to ``_ROWS_PER_INSERT`` rows each, sent to the driver as they are: on SQLite a
        statement per row made the full-text trigger flush its index once per row (4 times
        the cost), and SQLAlchemy's processing of each row's parameters cost as much as the
        rest of the row's import. ``params``: the rows' ``lead_params``, built before their
        ids were known (the ids are put in)."""
        dialect = self.conn.dialect
        if params is None:
            params = lead_params(dialect, rows)
        for row, values in zip(rows, params, strict=True):
            values[_ID] = row["id"]
        # The pipeline tallies (migration 0015): SQLite's row trigger would upsert three tally
        # cells per lead; instead the batch is tallied in one grouped statement per tally table
        # after its INSERTs, its ids being one range (they are on SQLite: new_lead_ids) that
        # holds only its leads. PostgreSQL's statement triggers group each INSERT already.
        tally = self._tallied_range(rows) if dialect.name == "sqlite" else None
        if tally is not None:
            await TallyRepository(self.conn).pause_inserts()
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            part = params[start : start + _ROWS_PER_INSERT]
            flat = tuple(value for values in part for value in values)
            await self.conn.exec_driver_sql(_insert_sql(dialect, len(part)), flat)
        if tally is not None:
            first, last = tally
            converted = any(row.get("converted_at") is not None for row in rows)
            await TallyRepository(self.conn).tally_inserted(first, last, converted)

    @staticmethod
    def _tallied_range(rows: Sequence[dict[str, Any]]) -> tuple[int, int] | None:
        """(first id, last id) when the rows' ids fill that range exactly (ids are unique:
        the range then holds these leads only)."""
        if not rows:
            return None
        ids = [row["id"] for row in rows]
        first, last = min(ids), max(ids)
        if last - first + 1 != len(rows):
            return None
        return first, last

    async def update_leads(self, workspace_id: int, rows: Sequence[dict[str, Any]]) -> None:
        """Writes each row's columns over the lead of its ``id``."""
        params = [
            {"b_id": r["id"], "b_ws": workspace_id, **{f"b_{k}": r[k] for k in _UPDATED}}
            for r in rows
        ]
        await self.conn.execute(_UPDATE_LEAD, params)

    async def set_external_ids(
        self, workspace_id: int, pairs: Sequence[tuple[int, str, str]]
    ) -> None:
        """(lead, system key, id): each lead's id in that system, replacing the one it had."""
        if not pairs:
            return
        await self.conn.execute(
            _DROP_ID, [{"b_lead": lead, "b_system": system} for lead, system, _ in pairs]
        )
        await self.conn.execute(
            insert(lead_ids),
            [
                {"lead_id": lead, "workspace_id": workspace_id, "system_key": s, "external_id": i}
                for lead, s, i in pairs
            ],
        )


__all__ = ["FINISHED", "ImportJobRepository", "ImportQueue", "lead_params"]
