"""The webhook sender: background work in the database (a delivery is a job row), run inside
``server.py serve`` and by ``server.py worker``, in any number of processes at once.

Each round, in its own short transactions:
1. Fan-out. For each endpoint whose workspace's log has events past the endpoint's cursor
   (``fanned_out_seq``), the deliveries of the next events (those of its types) are inserted
   and the cursor moved past them, in one transaction with the endpoint's row locked (another
   process skips it). The log is in commit order (a reader that sees seq n+1 sees n), so the
   cursor never passes an event it did not see: nothing is lost, nothing made twice, and the
   write path of leads and clients does not change.
2. Claim. Due deliveries to active endpoints, none of whose record's earlier deliveries to the
   same endpoint is still pending, are claimed under a lease (``claimed_until`` and a random
   token; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, SQLite's single writer elsewhere).
3. Send, concurrently, up to WEBHOOK_BATCH_SIZE at a time; each result is recorded (the
   attempt, and the delivery's next state if the claim is still ours) as soon as the round
   loop comes by, in one transaction for all that finished.

A process killed mid-send leaves its claims to run out: another process (or itself, started
again) sends those deliveries again after the lease. Delivery is at least once, so receivers
deduplicate by ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.exc import SQLAlchemyError

from db.engine import Database
from db.models import DeliveryStatus
from db.repositories import AttemptResult, DeliveryQueue
from db.settings import Settings
from db.types import utcnow
from resolvers.clients import CLIENTS
from resolvers.ids import to_global_id
from resolvers.leads import LEADS
from resolvers.records import RecordType
from resolvers.webhooks import sending

logger = logging.getLogger("leadgraph.webhooks")

# The record types whose events are sent, by the name events give them.
RECORD_TYPES: Mapping[str, RecordType] = {r.name: r for r in (LEADS, CLIENTS)}
# Events one fan-out transaction reads for one endpoint.
FAN_OUT_BATCH = 500
# How long stop() lets the requests in flight finish; the others go again after their lease.
STOP_GRACE_SECONDS = 5.0
# The sender's own connections (it runs beside the API's pools, or alone in a worker).
POOL_SIZE = 2
# A finished send waits this long for others (or for a quarter of the batch) before the round
# that records them and claims more: a round is a few transactions, and one per send cost more
# than the sends themselves (bench/README.md, "Webhooks").
GATHER_SECONDS = 0.02


def next_state(
    delivery: Any, answer: sending.Answer, at: Any, settings: Settings
) -> tuple[DeliveryStatus, Any, Any, Any, str | None]:
    """After an attempt: (status, next attempt, first attempt, retry until, why to disable
    the endpoint). 2xx succeeds; 410 fails for good and disables the endpoint; anything else
    is retried after a growing, jittered delay while that falls within the retry window
    from the first attempt (a manual retry's window ends at once)."""
    first = delivery.first_attempt_at or at
    window = timedelta(seconds=settings.webhook_retry_window_seconds)
    until = delivery.retry_until or first + window
    status = answer.status
    if status is not None and 200 <= status < 300:
        return DeliveryStatus.SUCCEEDED, None, first, until, None
    if status == 410:
        return DeliveryStatus.FAILED, None, first, until, "gone"
    attempts = delivery.attempt_count + 1
    base = settings.webhook_retry_base_seconds * 2 ** min(attempts - 1, 40)
    delay = min(base, settings.webhook_retry_max_delay_seconds) * random.uniform(0.75, 1.25)
    retry_at = at + timedelta(seconds=delay)
    if retry_at <= until:
        return DeliveryStatus.PENDING, retry_at, first, until, None
    # Out of retries. A whole window of them, with no success since the first: the endpoint
    # has been failing for too long (the check against its last success is the queue's).
    failing = "failing" if until >= first + window else None
    return DeliveryStatus.FAILED, None, first, until, failing


class Sender:
    """Delivers the webhooks of every workspace; ``start()`` runs it as a task of the loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(
            settings.database_url,
            settings.model_copy(update={"db_pool_size": POOL_SIZE, "db_max_overflow": POOL_SIZE}),
        )
        self.http: httpx.AsyncBaseTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        # Held while a round touches the database, and by paused().
        self._lock = asyncio.Lock()
        self._in_flight: set[asyncio.Task[AttemptResult]] = set()
        self._done: list[AttemptResult] = []
        self._gather = max(1, settings.webhook_batch_size // 4)
        self._gathering: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.http = sending.transport(
            self.settings.webhook_allow_private_urls, self.settings.webhook_batch_size
        )
        self._task = asyncio.create_task(self._run(), name="webhook sender")

    async def stop(self) -> None:
        """Stops claiming; lets requests in flight finish for a few seconds and records them."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=STOP_GRACE_SECONDS)
            for task in self._in_flight:
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        try:
            await self._flush()
        except Exception as exc:
            logger.warning("webhook attempts not recorded on stop (%s)", _brief(exc))
        if self.http is not None:
            await self.http.aclose()
        await self.db.dispose()

    @asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """No round runs and no request is in flight inside the block (what was in flight
        finished and is recorded first)."""
        async with self._lock:
            if self._in_flight:
                await asyncio.wait(set(self._in_flight))
            await self._flush()
            yield

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        poll = self.settings.webhook_poll_interval_seconds
        failures = 0
        while not self._stopping.is_set():
            # Cleared before the round: a send that finishes during it wakes the next one.
            self._wake.clear()
            if self._gathering is not None:
                self._gathering.cancel()
                self._gathering = None
            busy = False
            try:
                async with self._lock:
                    busy = await self.round()
                failures = 0
            except Exception as exc:
                failures += 1
                if isinstance(exc, SQLAlchemyError | OSError | TimeoutError):
                    # The database is away (a restart, a failover): said now and then, without
                    # a traceback, as /readyz reports it.
                    if failures == 1 or failures % 60 == 0:
                        logger.warning("webhook sender: database unavailable (%s)", _brief(exc))
                else:
                    logger.exception("webhook sender: unexpected error")
            if busy:
                continue
            delay = poll if failures == 0 else min(poll * 2**failures, 30.0)
            # asyncio.timeout, not wait_for: no task made per wait (the loop runs all day).
            with suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def round(self) -> bool:
        """One pass: record what finished, fan out, claim and start sending; True when there
        is more to do at once (events left to fan out). When every slot is taken, the next
        round waits for sends to finish."""
        await self._flush()
        fanned = await self.fan_out()
        free = self.settings.webhook_batch_size - len(self._in_flight)
        if free > 0 and not self._stopping.is_set():
            await self._claim_and_send(free)
        return fanned

    async def fan_out(self) -> bool:
        """Makes the deliveries of new events; True when an endpoint has more waiting."""
        async with self.db.read() as conn:
            behind = await DeliveryQueue(conn).behind()
        more = False
        for endpoint_id in behind:

            async def step(conn: Any, endpoint_id: int = endpoint_id) -> int:
                return await DeliveryQueue(conn).fan_out(endpoint_id, FAN_OUT_BATCH, utcnow())

            more |= await self.db.transaction(step) == FAN_OUT_BATCH
        return more

    async def _claim_and_send(self, limit: int) -> int:
        now = utcnow()
        async with self.db.read() as conn:
            if not await DeliveryQueue(conn).any_due(now):
                return 0
        token = secrets.token_hex(16)
        until = now + timedelta(seconds=self.settings.webhook_lease_seconds)

        async def claim(conn: Any) -> list[int]:
            return await DeliveryQueue(conn).claim(now, until, token, limit)

        ids = await self.db.transaction(claim)
        if not ids:
            return 0
        async with self.db.read() as conn:
            rows = await DeliveryQueue(conn).to_send(ids)
        records = await self._records(rows)
        for row in rows:
            record = records.get((row.workspace_id, row.record_type, row.record_id))
            task = asyncio.create_task(self._send(row, record, token))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)
        return len(ids)

    async def _records(self, rows: list[Any]) -> dict[tuple[int, str, int], dict[str, Any]]:
        """The records of these deliveries' events as they are now, as JSON (deleted ones
        are missing)."""
        wanted: dict[tuple[int, str], set[int]] = {}
        for row in rows:
            if row.record_type in RECORD_TYPES:
                wanted.setdefault((row.workspace_id, row.record_type), set()).add(row.record_id)
        found: dict[tuple[int, str, int], dict[str, Any]] = {}
        if not wanted:
            return found
        async with self.db.read() as conn:
            for (workspace_id, name), ids in wanted.items():
                record = RECORD_TYPES[name]
                for item in await record.repository(conn, workspace_id).get_many(sorted(ids)):
                    found[(workspace_id, name, item.id)] = sending.record_json(record, item)
        return found

    async def _send(self, row: Any, record: dict[str, Any] | None, token: str) -> AttemptResult:
        settings = self.settings
        at = utcnow()
        content = sending.body(row, record)
        message_id = to_global_id("WebhookDelivery", row.id)
        headers = sending.signed_headers(
            message_id, content, sending.secrets_in_effect(row, at), at
        )
        assert self.http is not None
        answer = await sending.attempt(
            self.http,
            row.url,
            content,
            headers,
            timeout=settings.webhook_timeout_seconds,
            allow_private=settings.webhook_allow_private_urls,
        )
        status, retry_at, first, until, disable = next_state(row, answer, at, settings)
        if disable == "gone":
            logger.info("webhook endpoint %d answered 410 Gone: disabled", row.endpoint_id)
        return AttemptResult(
            delivery_id=row.id,
            endpoint_id=row.endpoint_id,
            claim_token=token,
            at=at,
            duration_ms=answer.duration_ms,
            response_status=answer.status,
            error=answer.error,
            status=status,
            next_attempt_at=retry_at,
            first_attempt_at=first,
            retry_until=until,
            disable=disable,
        )

    def _finished(self, task: asyncio.Task[AttemptResult]) -> None:
        self._in_flight.discard(task)
        if task.cancelled():
            return
        if (exc := task.exception()) is not None:
            logger.error("webhook sender: a send failed", exc_info=exc)
            return
        self._done.append(task.result())
        if len(self._done) >= self._gather or not self._in_flight:
            self._wake.set()
        elif self._gathering is None:
            loop = asyncio.get_running_loop()
            self._gathering = loop.call_later(GATHER_SECONDS, self._wake.set)

    async def _flush(self) -> int:
        """Records the attempts that finished; how many."""
        done, self._done = self._done, []
        if not done:
            return 0

        async def record(conn: Any) -> None:
            await DeliveryQueue(conn).record(done)

        try:
            await self.db.transaction(record)
        except BaseException:
            self._done = done + self._done  # recorded on the next round
            raise
        return len(done)


def _brief(exc: BaseException) -> str:
    """An exception's type and the first line of its message."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
