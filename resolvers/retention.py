"""Retention and erasure (README, Retention and erasure).

A workspace's retention policy says after how many days unconverted leads nobody updated,
clients archived, and events (with their webhook deliveries) are removed; leads and clients are
deleted or anonymised (``ANONYMIZE``: the record stays, with its status, source, state, score,
owner, tags and dates, so counts and aggregates stay right; every personal field is blanked,
its events' personal values too). A run works in batches of RETENTION_BATCH_SIZE, each its own
short transaction, so the database's writer is never held for long and requests keep flowing.

``Retention`` applies every workspace's policy on a schedule, as a task of ``server.py serve``
and ``server.py worker`` (RETENTION_SCHEDULE=false leaves it out): every
RETENTION_INTERVAL_SECONDS a workspace is due again, and a process claims a due workspace by
moving its ``retention_due_at`` forward in one committed conditional UPDATE before running it,
so one process runs it at a time, on either engine, and a restart neither skips nor repeats a
run. ``server.py retention run [--dry-run]`` runs (or previews) every policy at once.

``erase_contact`` is the right to erasure: every lead and client with the email, what hangs
on them (activities, follow-ups, tickets and comments, tags, external IDs, merge links), their
events' values, and the address wherever else it was kept (other events' values, activity and
ticket text, import row errors and uploads not yet imported, one-time codes, rate-limit
counters) are deleted or blanked in one transaction; one CONTACT_ERASED event says it happened,
with counts only.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from db.engine import Database
from db.models import EventType, Role
from db.models import fields as f
from db.models.fields import fold
from db.repositories.retention import (
    RetentionRepository,
    WorkspacePolicies,
    activities,
    clients,
    comments,
    follow_ups,
    leads,
    row_errors,
    tickets,
)
from db.settings import Settings
from db.types import utcnow
from resolvers.errors import BadInput, Problem, UserErrorCode, validated
from resolvers.events import Unit
from resolvers.outcome import Outcome
from resolvers.records import written

if TYPE_CHECKING:
    from resolvers.context import Context

logger = logging.getLogger("leadgraph.retention")

ACTIONS = ("DELETE", "ANONYMIZE")
# Days a policy may say: at least one, at most a century ("absurd" past that).
MAX_DAYS = 36_500
# Workspaces looked at per scheduler round.
DUE_BATCH = 20
MAX_BACKOFF_SECONDS = 300.0


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unconverted_leads_after_days: int | None = Field(default=None, ge=1, le=MAX_DAYS)
    archived_clients_after_days: int | None = Field(default=None, ge=1, le=MAX_DAYS)
    events_after_days: int | None = Field(default=None, ge=1, le=MAX_DAYS)
    action: str | None = None


class EmailIn(BaseModel):
    email: f.Email


@dataclass(frozen=True)
class Policy:
    leads_days: int | None
    clients_days: int | None
    events_days: int | None
    action: str

    @classmethod
    def from_row(cls, row: Any) -> Policy:
        return cls(
            row.retention_leads_days,
            row.retention_clients_days,
            row.retention_events_days,
            row.retention_action,
        )

    @property
    def anonymize(self) -> bool:
        return self.action == "ANONYMIZE"

    @property
    def empty(self) -> bool:
        return self.leads_days is None and self.clients_days is None and self.events_days is None


_COLUMNS = {
    "unconverted_leads_after_days": "retention_leads_days",
    "archived_clients_after_days": "retention_clients_days",
    "events_after_days": "retention_events_days",
    "action": "retention_action",
}


def _check(values: dict[str, Any], path: str) -> tuple[dict[str, Any], list[Problem]]:
    """The input's set fields as columns, or the problems (each with its field's path)."""
    data, problems = validated(PolicyIn, values)
    if problems:
        return {}, [
            Problem(
                f"{p.message} (days: from 1 to {MAX_DAYS}, or null to keep)",
                p.code,
                [path, *(p.field or [])[-1:]],
            )
            for p in problems
        ]
    assert data is not None
    return {_COLUMNS[k]: getattr(data, k) for k in data.model_fields_set}, []


async def current_policy(db: Database, workspace_id: int) -> Policy:
    async with db.read() as conn:
        return Policy.from_row(await WorkspacePolicies(conn).get(workspace_id))


async def update_policy(
    ctx: Context, values: dict[str, Any]
) -> tuple[Policy | None, list[Problem]]:
    """OWNER. Only the fields given change (null: keep those records); bad input changes
    nothing."""
    principal = ctx.require(Role.OWNER)
    columns, problems = _check(values, "input")
    if problems:
        return None, problems
    if "retention_action" in columns and columns["retention_action"] is None:
        return None, [Problem("action cannot be null.", UserErrorCode.INVALID, ["input", "action"])]
    async with ctx.db.write() as conn:
        row = await WorkspacePolicies(conn).set(principal.workspace_id, columns)
    return Policy.from_row(row), []


async def preview(ctx: Context, values: dict[str, Any] | None) -> dict[str, int]:
    """ADMIN. What a run of this policy (default: the workspace's) would remove now."""
    principal = ctx.require(Role.ADMIN)
    policy = await current_policy(ctx.db, principal.workspace_id)
    if values is not None:
        columns, problems = _check(values, "policy")
        if problems:
            raise BadInput(problems[0].message, "policy")
        fields = {
            "retention_leads_days": "leads_days",
            "retention_clients_days": "clients_days",
            "retention_events_days": "events_days",
            "retention_action": "action",
        }
        changes = {fields[k]: v for k, v in columns.items() if k != "retention_action" or v}
        policy = replace(policy, **changes)
    async with ctx.db.read() as conn:
        return await counts(RetentionRepository(conn, principal.workspace_id), policy, utcnow())


async def counts(repo: RetentionRepository, policy: Policy, now: datetime) -> dict[str, int]:
    out = {"leads": 0, "clients": 0, "events": 0, "deliveries": 0}
    if policy.leads_days is not None:
        cutoff = now - timedelta(days=policy.leads_days)
        out["leads"] = await repo.count_leads(cutoff, policy.anonymize)
    if policy.clients_days is not None:
        cutoff = now - timedelta(days=policy.clients_days)
        out["clients"] = await repo.count_clients(cutoff, policy.anonymize)
    if policy.events_days is not None:
        cutoff = now - timedelta(days=policy.events_days)
        out["events"] = await repo.count_events(cutoff)
        out["deliveries"] = await repo.count_deliveries(cutoff)
    return out


# ---------------------------------------------------------------------- runs


@dataclass
class RunStats:
    """What one run removed, and how long its longest transaction held the writer."""

    leads: int = 0
    clients: int = 0
    events: int = 0
    deliveries: int = 0
    batches: int = 0
    longest_batch_ms: float = 0.0
    batch_ms: list[float] = field(default_factory=list)


async def _batches(
    db: Database,
    stats: RunStats,
    find: Callable[[RetentionRepository], Awaitable[list[int]]],
    apply: Callable[[RetentionRepository, list[int]], Awaitable[None]],
    workspace_id: int,
    size: int,
    pause: float,
) -> None:
    """Until ``find`` finds fewer than ``size``: the candidates read (outside any write, so
    the scan holds no lock), then ``apply`` in a transaction of its own, which checks them
    again by primary key; between two, the writer is free for a moment (``pause`` seconds) for
    the requests that queued behind it."""
    while True:
        async with db.read() as conn:
            ids = await find(RetentionRepository(conn, workspace_id))
        if not ids:
            return
        started = time.perf_counter()
        async with db.write() as conn:
            await apply(RetentionRepository(conn, workspace_id), ids)
        held = (time.perf_counter() - started) * 1000
        stats.batches += 1
        stats.batch_ms.append(held)
        stats.longest_batch_ms = max(stats.longest_batch_ms, held)
        if len(ids) < size:
            return
        await asyncio.sleep(pause)


async def _redact_records(
    repo: RetentionRepository, lead_ids: list[int], client_ids: list[int]
) -> None:
    """Blanks the personal values in the events of these records and of what hangs on them."""
    follow = await repo.follow_up_ids(lead_ids, client_ids)
    owned = await repo.ticket_ids(client_ids) if client_ids else []
    await repo.redact_events("Lead", lead_ids)
    await repo.redact_events("Client", client_ids)
    await repo.redact_events("FollowUp", follow)
    await repo.redact_events("Ticket", owned)


async def apply_policy(
    db: Database, settings: Settings, workspace_id: int, policy: Policy, now: datetime
) -> RunStats:
    """One run of the policy, in batches."""
    stats = RunStats()
    size = settings.retention_batch_size
    pause = settings.retention_batch_pause_ms / 1000

    if policy.leads_days is not None:
        cutoff = now - timedelta(days=policy.leads_days)

        async def find_leads(repo: RetentionRepository) -> list[int]:
            return await repo.lead_batch(cutoff, policy.anonymize, size)

        async def remove_leads(repo: RetentionRepository, found: list[int]) -> None:
            ids = await repo.recheck_leads(found, cutoff, policy.anonymize)
            await _redact_records(repo, ids, [])
            if policy.anonymize:
                stats.leads += await repo.anonymize_leads(ids)
            else:
                stats.leads += await repo.delete_leads(ids)

        await _batches(db, stats, find_leads, remove_leads, workspace_id, size, pause)

    if policy.clients_days is not None:
        cutoff_c = now - timedelta(days=policy.clients_days)

        async def find_clients(repo: RetentionRepository) -> list[int]:
            return await repo.client_batch(cutoff_c, policy.anonymize, size)

        async def remove_clients(repo: RetentionRepository, found: list[int]) -> None:
            ids = await repo.recheck_clients(found, cutoff_c, policy.anonymize)
            await _redact_records(repo, [], ids)
            if policy.anonymize:
                stats.clients += await repo.anonymize_clients(ids)
            else:
                stats.clients += await repo.delete_clients(ids)

        await _batches(db, stats, find_clients, remove_clients, workspace_id, size, pause)

    if policy.events_days is not None:
        cutoff_e = now - timedelta(days=policy.events_days)

        async def find_events(repo: RetentionRepository) -> list[int]:
            return await repo.event_batch(cutoff_e, size)

        async def remove_events(repo: RetentionRepository, found: list[int]) -> None:
            ids = await repo.recheck_events(found, cutoff_e)
            n_events, n_deliveries = await repo.delete_events(ids)
            stats.events += n_events
            stats.deliveries += n_deliveries

        await _batches(db, stats, find_events, remove_events, workspace_id, size, pause)
    return stats


async def run_all(
    db: Database, settings: Settings, *, dry_run: bool = False
) -> list[tuple[int, Policy, dict[str, int]]]:
    """Every workspace's policy, now (``server.py retention run``): per workspace what was
    removed (or, with ``dry_run``, what would be)."""
    from sqlalchemy import select

    from db.repositories.retention import workspaces

    async with db.read() as conn:
        rows = (await conn.execute(select(workspaces).order_by(workspaces.c.id))).all()
    out = []
    now = utcnow()
    for row in rows:
        policy = Policy.from_row(row)
        if policy.empty:
            continue
        if dry_run:
            async with db.read() as conn:
                found = await counts(RetentionRepository(conn, row.id), policy, now)
        else:
            stats = await apply_policy(db, settings, row.id, policy, now)
            found = {
                "leads": stats.leads,
                "clients": stats.clients,
                "events": stats.events,
                "deliveries": stats.deliveries,
            }
        out.append((row.id, policy, found))
    return out


class Retention:
    """Applies every workspace's policy on schedule; ``start()`` makes it a task of the loop."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self) -> None:
        """Stops after the batch under way (the rest of that run waits for its next turn)."""
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    @asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        async with self._lock:
            yield

    async def _run(self) -> None:
        # Due workspaces are looked for at least once a minute (sooner with a short interval).
        poll = min(self.settings.retention_interval_seconds, 60.0)
        failures = 0
        while not self._stopping.is_set():
            try:
                await self.round()
                failures = 0
            except Exception as exc:
                failures += 1
                if isinstance(exc, SQLAlchemyError | OSError | TimeoutError):
                    if failures == 1 or failures % 20 == 0:
                        logger.warning("retention: not applied for now (%s)", exc)
                else:
                    logger.exception("retention: unexpected error")
            delay = poll if failures == 0 else min(poll * 2**failures, MAX_BACKOFF_SECONDS)
            with suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()

    async def round(self) -> int:
        """Claims and runs the due workspaces; how many ran."""
        ran = 0
        now = utcnow()
        async with self._lock:
            async with self.db.read() as conn:
                due = await WorkspacePolicies(conn).due(now, DUE_BATCH)
            for workspace_id in due:
                if self._stopping.is_set():
                    break
                until = now + timedelta(seconds=self.settings.retention_interval_seconds)
                async with self.db.write() as conn:
                    claimed = await WorkspacePolicies(conn).claim(workspace_id, now, until)
                if not claimed:
                    continue  # another process has it
                policy = await current_policy(self.db, workspace_id)
                stats = await apply_policy(self.db, self.settings, workspace_id, policy, now)
                ran += 1
                logger.info(
                    "retention: workspace %d: %d leads, %d clients, %d events, %d deliveries "
                    "%s (%d batches, longest %.0f ms)",
                    workspace_id,
                    stats.leads,
                    stats.clients,
                    stats.events,
                    stats.deliveries,
                    "anonymized" if policy.anonymize else "deleted",
                    stats.batches,
                    stats.longest_batch_ms,
                )
        return ran


# ---------------------------------------------------------------------- erasure


class _DryRun(Exception):
    """Rolls an erasure's transaction back after counting."""


# Text columns (beside the erased records themselves) where an address may have been typed.
_TEXT = (
    (leads, ("notes", "meta")),
    (clients, ("notes", "meta")),
    (activities, ("body",)),
    (follow_ups, ("title", "notes")),
    (tickets, ("subject", "description", "search_key")),
    (comments, ("body",)),
    (row_errors, ("message", "field")),
)


async def erase_contact(
    ctx: Context, email: str, dry_run: bool
) -> tuple[dict[str, int] | None, list[Problem]]:
    """OWNER. Everything the workspace keeps about this address, removed or blanked (with
    ``dry_run``: counted, nothing changed)."""
    ctx.require(Role.OWNER)
    data, problems = validated(EmailIn, {"email": email})
    if problems or data is None:
        return None, [Problem(p.message, p.code, ["email"]) for p in problems]
    key = fold(data.email)
    pattern = re.compile(re.escape(data.email), re.IGNORECASE)
    found: dict[str, int] = {}

    async def step(unit: Unit) -> Outcome:
        repo = RetentionRepository(unit.conn, ctx.workspace_id)
        lead_ids = await repo.leads_with_email(key)
        client_ids = await repo.clients_with_email(key)
        follow = await repo.follow_up_ids(lead_ids, client_ids)
        acts = await repo.activity_ids(lead_ids, client_ids)
        owned = await repo.ticket_ids(client_ids)
        redacted: set[int] = set()
        for record_type, ids in (
            ("Lead", lead_ids),
            ("Client", client_ids),
            ("FollowUp", follow),
            ("Ticket", owned),
        ):
            redacted |= await repo.event_ids_of(record_type, ids)
            await repo.redact_events(record_type, ids, everything=True)
        scrubbed = await repo.scrub_events(key, pattern, redacted)
        other = len(follow) + len(acts) + len(owned)
        await repo.delete_rows(follow_ups, follow)
        await repo.delete_rows(activities, acts)
        erased_leads = await repo.delete_leads(lead_ids)
        erased_clients = await repo.delete_clients(client_ids)
        for table, columns in _TEXT:
            other += await repo.scrub_text(table, columns, key, pattern, True)
        other += await repo.scrub_chunks(key, True)
        other += await repo.email_codes(key, True)
        other += await repo.rate_limits(key, True)
        found.update(
            leads=erased_leads,
            clients=erased_clients,
            events=len(redacted) + scrubbed,
            other=other,
        )
        if dry_run:
            raise _DryRun
        unit.event(
            EventType.CONTACT_ERASED,
            "Workspace",
            ctx.workspace_id,
            [{"field": k, "from": None, "to": v} for k, v in found.items()],
        )
        return Outcome()

    with suppress(_DryRun):
        await written(ctx, step)
    return found, []
