"""The import runner: background work in the database (a job is a row), inside ``server.py
serve`` and ``server.py worker``, in any number of processes.

It claims a QUEUED job (or a RUNNING one whose lease ran out: its process died) under a
lease, reads the stored body again from its first chunk through an incremental UTF-8
decoder, skips the rows already processed, and applies the rest in batches. Each batch's
transaction first moves the job's progress (guarded by the claim token and RUNNING status,
which also renews the lease), then writes the batch's leads, external IDs and row errors: a
process killed between batches loses nothing and repeats nothing, and a job cancelled or
taken over meanwhile rolls the batch back. Parsing and validation run in a thread, off the
event loop that answers the API.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext, suppress
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from db.engine import Database
from db.errors import is_transient_conflict
from db.models import DuplicatePolicy, EventType, ImportStatus, LeadMatch
from db.models.imports import ImportFormat
from db.repositories import EventRepository
from db.repositories.imports import ImportQueue, lead_params
from db.settings import Settings
from db.types import utcnow
from resolvers.imports.rows import (
    Batch,
    Header,
    Prepared,
    Splitter,
    blank,
    csv_fields,
    derived,
    prepare_csv,
    prepare_ndjson,
    worker_started,
)

logger = logging.getLogger("leadgraph.imports")

POOL_SIZE = 2
# SQLite: the WAL the import's writer lets grow (pages of 4 KiB) before a COMMIT copies it into
# the database file. A batch touches pages all over the leads' indexes; copied after every
# batch (SQLite's 1,000 pages), the same pages are written again and again (bench/README).
CHECKPOINT_PAGES = 25_000
# A batch read and validated, its guessed plan, the rows done with it, and (the last one) the
# file's rows.
_Ready = tuple[Batch, "_Plan | None", int, int | None]
# Rows the runner's own Python handles at a time before it lets the event loop answer requests.
_YIELD_EVERY = 500
# Between two batches of a runner outside the serving process, on SQLite (see _batch).
SQLITE_YIELD_SECONDS = 0.1
COUNTERS = ("created", "updated", "skipped", "failed")


# ImportJob.error of a job an error stopped (the log has the error itself).
FAILED = (
    "The import stopped: a batch of rows could not be written. The rows before rowsProcessed "
    "were imported; the server's log has the cause. Post the rest of the file again."
)


class Lost(Exception):
    """The job is no longer this runner's: cancelled, or claimed by another after the lease."""


def _taken(system: str, id_: str) -> dict[str, Any]:
    return {
        "field": "externalIds",
        "message": f"The id {id_} of {system} belongs to another lead.",
        "code": "TAKEN",
    }


class _Plan:
    """What one batch writes: matched in file order, a later row seeing an earlier row's lead
    (an existing lead is a dict with its id; a new one is a dict without, until inserted)."""

    def __init__(self, job: Any, now: Any) -> None:
        opts = job.options
        self.policy = DuplicatePolicy(opts["on_duplicate"])
        self.match_on = LeadMatch(opts["match_on"])
        self.job = job
        self.now = now
        self.by_email: dict[str, dict[str, Any]] = {}
        self.owner: dict[tuple[str, str], Any] = {}  # pair → lead dict, or a lead id
        self.new: list[dict[str, Any]] = []
        self.changed: dict[int, dict[str, Any]] = {}
        self.ids_of: dict[int, list[tuple[str, str]]] = {}  # id(lead dict) → pairs to write
        self.refilled: set[int] = set()  # new leads a later row updated: keys derived again
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.errors: list[dict[str, Any]] = []
        # The new leads' INSERT parameters, when built ahead (a speculation's).
        self.params: list[list[Any]] | None = None

    def target(self, row: Prepared) -> dict[str, Any] | None:
        if self.match_on is LeadMatch.EMAIL:
            return self.by_email.get(row.values["email_key"])
        for pair in row.pairs:
            found = self.owner.get(pair)
            if isinstance(found, dict):
                return found
        return None

    def _same(self, owner: Any, lead: dict[str, Any] | None) -> bool:
        if lead is None:
            return False
        return owner is lead if isinstance(owner, dict) else owner == lead.get("id")

    def apply(self, row: Prepared) -> None:
        if self.match_on is LeadMatch.EXTERNAL_ID and not row.pairs:
            self.counts["failed"] += 1
            self.errors.append(
                {
                    "row": row.row,
                    "field": "externalIds",
                    "message": "matchOn EXTERNAL_ID needs the row's externalIds.",
                    "code": "REQUIRED",
                }
            )
            return
        target = self.target(row)
        if target is not None and self.policy is DuplicatePolicy.SKIP:
            self.counts["skipped"] += 1
            return
        creating = target is None or self.policy is DuplicatePolicy.CREATE
        lead = None if creating else target
        taken = [
            _taken(e["system"], e["id"])
            for e, pair in zip(row.external_ids, row.pairs, strict=True)
            if pair in self.owner and not self._same(self.owner[pair], lead)
        ]
        if taken:
            self.counts["failed"] += 1
            self.errors.extend({"row": row.row, **t} for t in taken)
            return
        job = self.job
        if lead is None:
            lead = {
                **row.values,
                "workspace_id": job.workspace_id,
                "created_at": row.created_at or self.now,
                "updated_at": self.now,
                "created_by_user_id": job.created_by_user_id,
                "created_by_api_key_id": job.created_by_api_key_id,
                "updated_by_user_id": job.created_by_user_id,
                "updated_by_api_key_id": job.created_by_api_key_id,
            }
            self.new.append(lead)
            self.counts["created"] += 1
        else:
            self._fill(lead, row)
            self.counts["updated"] += 1
        if self.match_on is LeadMatch.EMAIL or creating:
            self.by_email.setdefault(lead["email_key"], lead)
        for pair in row.pairs:
            self.owner[pair] = lead
        if row.pairs:
            self.ids_of.setdefault(id(lead), []).extend(row.pairs)

    def _fill(self, lead: dict[str, Any], row: Prepared) -> None:
        """UPDATE: the row's values over the lead's; metadata merged, external IDs set per
        system (others stay)."""
        for name in row.given:
            if name == "meta":
                lead["meta"] = {**lead["meta"], **row.values["meta"]}
            elif name == "external_ids":
                systems = {e["system"].casefold() for e in row.external_ids}
                old = [e for e in lead["external_ids"] if e["system"].casefold() not in systems]
                for e in lead["external_ids"]:
                    if e["system"].casefold() in systems:
                        self.owner.pop((e["system"].casefold(), e["id"]), None)
                lead["external_ids"] = old + row.external_ids
            else:
                lead[name] = row.values[name]
        if row.created_at is not None:
            lead["created_at"] = row.created_at
        lead["updated_at"] = self.now
        lead["updated_by_user_id"] = self.job.created_by_user_id
        lead["updated_by_api_key_id"] = self.job.created_by_api_key_id
        if "id" in lead:
            self.changed[lead["id"]] = lead
        else:
            self.refilled.add(id(lead))


class ImportRunner:
    """Runs the import jobs of every workspace; ``start()`` makes it a task of the loop."""

    def __init__(self, settings: Settings, serving: Database | None = None) -> None:
        """``serving``: the Database of the API this process serves, whose writes each batch
        waits its turn with (``Database.writer_turn``)."""
        self.settings = settings
        self.serving = serving
        self.db = Database(
            settings.database_url,
            # Its statements are the import's own, each bounded by a batch: no statement timeout,
            # whose progress handler on SQLite takes the GIL back from the event loop every
            # 10,000 steps of an INSERT run on the connection's thread (300,000 rows: 10,959 →
            # 12,332 rows/s without it).
            settings.model_copy(
                update={
                    "db_pool_size": POOL_SIZE,
                    "db_max_overflow": POOL_SIZE,
                    "db_statement_timeout_ms": 0,
                }
            ),
            inline_writes=False,
            checkpoint_pages=CHECKPOINT_PAGES,
        )
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # held while a batch or a claim touches the database
        self._pool: ProcessPoolExecutor | None = None  # started with the first job

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="import runner")

    def wake(self) -> None:
        """A job was queued in this process: look at once."""
        self._wake.set()

    async def stop(self) -> None:
        """Stops after the batch under way (the job resumes after the lease, anywhere)."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pool is not None:
            # At most a batch under way: waited for, so the worker exits cleanly.
            await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
        await self.db.dispose()

    @asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """No batch runs inside the block."""
        async with self._lock:
            yield

    async def _run(self) -> None:
        poll = self.settings.import_poll_interval_seconds
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()
            busy = False
            try:
                busy = await self.round()
                failures = 0
            except Exception as exc:
                failures += 1
                if isinstance(exc, SQLAlchemyError | OSError | TimeoutError):
                    if failures == 1 or failures % 60 == 0:
                        logger.warning("import runner: database unavailable (%s)", exc)
                else:
                    logger.exception("import runner: unexpected error")
            if busy:
                continue
            delay = poll if failures == 0 else min(poll * 2**failures, 30.0)
            with suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def round(self) -> bool:
        """Claims a job and runs it to its end (or until it is lost); True if one ran."""
        now = utcnow()
        token = secrets.token_hex(16)
        until = now + timedelta(seconds=self.settings.import_lease_seconds)

        async def claim(conn: Any) -> Any:
            queue = ImportQueue(conn)
            if abandoned := await queue.abandoned_uploads(now):
                await queue.drop(abandoned)
            return await queue.claim(now, until, token)

        async with self._lock:
            job = await self.db.transaction(claim)
        if job is None:
            return False
        logger.info("import job %d: running from row %d", job.id, job.rows_processed)
        try:
            await self.run(job, token)
        except Lost:
            logger.info("import job %d: cancelled or taken over; stopped", job.id)
        except Exception as exc:
            if _passing(exc):
                raise  # the database is unavailable for now: the job runs again later
            # Running the job again would meet the same error, and hold every job behind it.
            logger.exception("import job %d: stopped by an error", job.id)
            await self._fail(job, token)
        return True

    async def _fail(self, job: Any, token: str) -> None:
        """Ends the job FAILED, with the rows written so far kept and said (one event)."""

        async def fail(conn: Any) -> None:
            values = {"status": ImportStatus.FAILED.value, "error": FAILED, "finished_at": utcnow()}
            ended = await ImportQueue(conn).finish(job.id, token, values)
            if ended is not None and not job.options.get("dry_run"):
                totals = {k: getattr(ended, k) for k in COUNTERS}
                await self._announce(conn, job, ImportStatus.FAILED, totals, ended.rows_total)

        async with self._lock:
            await self.db.transaction(fail)

    async def _records(self, job: Any) -> AsyncIterator[str]:
        """The body's records, in order, read a chunk at a time."""
        splitter = Splitter(ImportFormat(job.format))
        for seq in range(job.chunks):
            async with self.db.read() as conn:
                data = await ImportQueue(conn).chunk(job.id, seq)
            records = await asyncio.to_thread(splitter.feed, data, seq == job.chunks - 1)
            for record in records:
                yield record
            await asyncio.sleep(0)

    async def run(self, job: Any, token: str) -> None:
        """Applies the job's batches one after another while the next one is read and
        validated (in a thread): the database's work and Python's overlap."""
        ready: asyncio.Queue[_Ready | BaseException] = asyncio.Queue(1)
        producer = asyncio.create_task(self._produce(job, ready))
        counts = {name: getattr(job, name) for name in COUNTERS}
        try:
            while True:
                item = await ready.get()
                if isinstance(item, BaseException):
                    raise item
                batch, guess, processed, total = item
                await self._batch(job, token, batch, guess, processed, counts, total)
                if total is not None or self._stopping.is_set():
                    return
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)

    async def _produce(self, job: Any, ready: asyncio.Queue[_Ready | BaseException]) -> None:
        """Reads the file past the rows done, into validated batches, each with its guessed
        plan; the last one carries the file's row count."""
        try:
            fmt = ImportFormat(job.format)
            size = self.settings.import_batch_rows
            header: Header | None = None
            row = 0
            pending: list[tuple[int, str]] = []
            async for record in self._records(job):
                if blank(record):
                    continue
                if fmt is ImportFormat.CSV and header is None:
                    header = Header.parse(csv_fields(record))
                    continue
                row += 1
                if row <= job.rows_processed:
                    continue
                pending.append((row, record))
                if len(pending) >= size:
                    batch = await self._prepare(header, pending)
                    await ready.put((batch, await self._guess(job, batch), row, None))
                    pending = []
            # The last batch ends the file, which may end with rows that were done already.
            batch = await self._prepare(header, pending)
            await ready.put((batch, await self._guess(job, batch), row, row))
        except Exception as exc:
            await ready.put(exc)

    async def _prepare(self, header: Header | None, records: list[tuple[int, str]]) -> Batch:
        """The records validated in a worker process (IMPORT_WORKERS; 0: a thread of this
        one): validation is most of a row's Python, and in this process it would hold the
        GIL against the event loop that answers the API and writes the batches."""
        loop = asyncio.get_running_loop()
        pool = self._workers()
        if header is not None:
            return await loop.run_in_executor(pool, prepare_csv, header, records)
        return await loop.run_in_executor(pool, prepare_ndjson, records)

    async def _guess(self, job: Any, batch: Batch) -> _Plan | None:
        """The batch's plan if none of its rows matches a lead already stored (the usual
        case: a file of new leads), made while the batch before it is written, so that this
        process's Python and the database's work overlap. ``_plan`` uses it only when the
        lookups, in the batch's own transaction, find no such lead: it is then exactly the
        plan that would be made there."""
        if not batch.rows:
            return None
        plan = _Plan(job, utcnow())
        await self._apply(plan, batch)
        if plan.new:
            plan.params = []
            rows = [_derive(lead) if id(lead) in plan.refilled else lead for lead in plan.new]
            for start in range(0, len(rows), _YIELD_EVERY):
                await asyncio.sleep(0)
                plan.params += lead_params(
                    self.db.writer.dialect, rows[start : start + _YIELD_EVERY]
                )
        return plan

    async def _apply(self, plan: _Plan, batch: Batch) -> None:
        """The batch's rows matched in file order, the event loop let through between."""
        plan.counts["failed"] = batch.failed
        plan.errors = list(batch.errors)
        for n, row in enumerate(batch.rows, 1):
            plan.apply(row)
            if n % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # the API's requests between, not after, a batch
        # Errors are kept in row order with the rows that failed validation.
        plan.errors.sort(key=lambda e: e["row"])

    def _workers(self) -> Executor | None:
        if self.settings.import_workers and self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.settings.import_workers,
                # Not forked from a process with threads and an event loop.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=worker_started,
                initargs=(self.settings.default_phone_region, os.getpid()),
            )
        return self._pool

    async def _batch(
        self,
        job: Any,
        token: str,
        batch: Batch,
        guess: _Plan | None,
        processed: int,
        counts: dict[str, int],
        total: int | None,
    ) -> None:
        """Applies one batch (the rows up to ``processed``); with ``total`` (the file's
        rows), the last one, which ends the job."""
        dry_run = bool(job.options.get("dry_run"))

        async def step(conn: Any) -> dict[str, int]:
            nonlocal guess
            now = utcnow()
            # A guess serves one attempt: a retried transaction plans again.
            plan = await self._plan(conn, job, batch, now, guess)
            guess = None
            totals = {k: counts[k] + plan.counts[k] for k in COUNTERS}
            progress: dict[str, Any] = {
                "rows_processed": processed,
                "claimed_until": now + timedelta(seconds=self.settings.import_lease_seconds),
                **totals,
            }
            queue = ImportQueue(conn)
            if not await queue.holds(job.id, token, progress):
                raise Lost
            if not dry_run:
                await self._write(queue, job.workspace_id, plan)
            await queue.add_errors(job.id, plan.errors)
            if total is not None:
                await self._finish(conn, job, token, totals, total, now, dry_run)
            return totals

        async with self._lock, self._turn():
            counts.update(await self.db.transaction(step))
        if self.serving is None and self.db.is_sqlite:
            # No writer of this process to take turns with, but other processes' (the API's)
            # wait for SQLite's lock in its busy handler, which looks again every 50-100 ms
            # once it has waited a while: a batch begun right after the last would keep it.
            await asyncio.sleep(SQLITE_YIELD_SECONDS)

    def _turn(self) -> AbstractAsyncContextManager[None]:
        return self.serving.writer_turn() if self.serving is not None else nullcontext()

    async def _plan(
        self, conn: Any, job: Any, batch: Batch, now: Any, guess: _Plan | None = None
    ) -> _Plan:
        """The batch matched against the workspace's leads, in file order; ``guess`` (made
        with none stored) if the lookups find none of its rows' leads."""
        plan = _Plan(job, now)
        if not batch.rows:
            await self._apply(plan, batch)
            return plan
        queue = ImportQueue(conn)
        ws = job.workspace_id
        pairs = sorted({p for r in batch.rows for p in r.pairs})
        owners = await queue.owners(ws, pairs) if pairs else {}
        wanted: set[int] = set()
        if plan.match_on is LeadMatch.EXTERNAL_ID:
            wanted = set(owners.values())
        else:
            keys = sorted({r.values["email_key"] for r in batch.rows})
            for lead in await queue.leads_by_email(ws, keys):
                plan.by_email.setdefault(lead.email_key, _as_dict(lead))
        if guess is not None and not owners and not plan.by_email:
            return guess
        found = {lead["id"]: lead for lead in plan.by_email.values()}
        missing = sorted(wanted - set(found))
        if missing:
            for lead in await queue.leads_by_id(ws, missing):
                found[lead.id] = _as_dict(lead)
        plan.owner = {pair: found.get(lead_id, lead_id) for pair, lead_id in owners.items()}
        await self._apply(plan, batch)
        return plan

    async def _write(self, queue: ImportQueue, ws: int, plan: _Plan) -> None:
        derive = _derive
        external: list[tuple[int, str, str]] = []
        if plan.new:
            ids = await queue.new_lead_ids(len(plan.new))
            for lead, id_ in zip(plan.new, ids, strict=True):
                lead["id"] = id_
            await queue.insert_leads(
                [derive(lead) if id(lead) in plan.refilled else lead for lead in plan.new],
                plan.params,
            )
        for lead in [*plan.new, *plan.changed.values()]:
            # A system's last id in the batch is the one the lead keeps.
            latest = dict(plan.ids_of.get(id(lead), ()))
            external += [(lead["id"], system, ext) for system, ext in latest.items()]
        if plan.changed:
            await queue.update_leads(ws, [derive(lead) for lead in plan.changed.values()])
        await queue.set_external_ids(ws, external)

    async def _finish(
        self,
        conn: Any,
        job: Any,
        token: str,
        totals: dict[str, int],
        total: int,
        now: Any,
        dry_run: bool,
    ) -> None:
        values = {"status": ImportStatus.SUCCEEDED.value, "rows_total": total, "finished_at": now}
        if not await ImportQueue(conn).finish(job.id, token, values):
            raise Lost
        if not dry_run:
            await self._announce(conn, job, ImportStatus.SUCCEEDED, totals, total)
        logger.info("import job %d: finished, %s", job.id, totals)

    async def _announce(
        self,
        conn: Any,
        job: Any,
        status: ImportStatus,
        totals: dict[str, int],
        total: int | None,
    ) -> None:
        """One event for the whole import, not one per lead (README, Imports), if it wrote."""
        if not (totals["created"] or totals["updated"]):
            return
        changes: list[dict[str, Any]] = [{"field": "status", "from": None, "to": status.value}]
        changes += [{"field": k, "from": None, "to": totals[k]} for k in COUNTERS]
        changes.append({"field": "rowsTotal", "from": None, "to": total})
        if self.settings.event_log:
            await EventRepository(conn, job.workspace_id).append(
                [
                    {
                        "type": EventType.LEADS_IMPORTED.value,
                        "record_type": "ImportJob",
                        "record_id": job.id,
                        "actor_user_id": job.created_by_user_id,
                        "actor_api_key_id": job.created_by_api_key_id,
                        "request_id": None,
                        "changes": changes,
                    }
                ]
            )


def _passing(exc: BaseException) -> bool:
    """True for a failure that says nothing about the job: the database unreachable, busy
    or locked, or a transaction aborted for a deadlock."""
    if isinstance(exc, OSError | TimeoutError | OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or is_transient_conflict(exc)
    )


def _derive(lead: dict[str, Any]) -> dict[str, Any]:
    return lead | derived(lead)


def _as_dict(row: Any) -> dict[str, Any]:
    """A lead row as the dict of its columns by key (``metadata`` is ``meta``)."""
    values: dict[str, Any] = row._asdict()
    if "metadata" in values:
        values["meta"] = values.pop("metadata")
    return values
