"""Follow-up reminders: the assignee of an OPEN follow-up gets one email at its dueAt.

A task of ``server.py serve`` and of ``server.py worker`` (started and stopped with the
process, as the webhook sender and the import runner are; FOLLOW_UP_REMINDERS=false leaves it
out) looks every REMINDER_POLL_INTERVAL_SECONDS for reminders come due, in every workspace.
Each one is claimed in its own committed transaction before its email goes out
(``ReminderQueue.claim``: a conditional UPDATE of ``reminded_at``), so it is sent once even
with several processes on one database; one come due while none ran goes out when the next
one starts. An email the mail server refused is released and tried again on a later round (so
a reminder may be lost only if the process dies between the claim and the send). Changing the
due time makes the follow-up due for a reminder again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from db.engine import Database
from db.repositories.follow_ups import ReminderQueue
from db.settings import Settings
from db.types import utcnow
from resolvers.ids import to_global_id
from resolvers.mail import Mailer, MailNotSent

logger = logging.getLogger("leadgraph.reminders")

# Reminders claimed (and sent) per round.
BATCH = 50
# The longest wait between rounds after failures (the database or mail server unavailable).
MAX_BACKOFF_SECONDS = 60.0


def reminder_email(row: Any) -> tuple[str, str]:
    """Subject and body of a follow-up's reminder."""
    if row.lead_id is not None:
        subject = to_global_id("Lead", row.lead_id)
        kind = "lead"
    else:
        subject = to_global_id("Client", row.client_id)
        kind = "client"
    due = row.due_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = f"Your follow-up is due now ({due}):\n\n    {row.title}\n\n"
    if row.notes:
        body += f"{row.notes}\n\n"
    body += f"It is on the {kind} {subject}. Mark it DONE when it is done.\n"
    return f"Follow-up due: {row.title}", body


class Reminders:
    """Sends the reminders of every workspace; ``start()`` makes it a task of the loop."""

    def __init__(self, settings: Settings, db: Database, mailer: Mailer) -> None:
        self.settings = settings
        self.db = db
        self.mailer = mailer
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()  # held while a round touches the database

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="follow-up reminders")

    async def stop(self) -> None:
        """Stops after the round under way."""
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    @asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """No round runs inside the block."""
        async with self._lock:
            yield

    async def _run(self) -> None:
        poll = self.settings.reminder_poll_interval_seconds
        failures = 0
        while not self._stopping.is_set():
            busy = False
            try:
                busy = await self.round()
                failures = 0
            except Exception as exc:
                failures += 1
                if isinstance(exc, SQLAlchemyError | OSError | TimeoutError | MailNotSent):
                    if failures == 1 or failures % 60 == 0:
                        logger.warning("follow-up reminders: not sent for now (%s)", exc)
                else:
                    logger.exception("follow-up reminders: unexpected error")
            if busy:
                continue
            delay = poll if failures == 0 else min(poll * 2**failures, MAX_BACKOFF_SECONDS)
            with suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()

    async def round(self) -> bool:
        """Claims the reminders come due (committed), then sends them; True when it claimed
        a full batch (more may be waiting). MailNotSent when one could not be sent (it and
        those after it are released for a later round)."""
        now = utcnow()
        async with self._lock, self.db.write() as conn:
            claimed = await ReminderQueue(conn).claim(now, BATCH)
        for n, (row, email) in enumerate(claimed):
            if email is None:
                continue
            subject, body = reminder_email(row)
            try:
                await self.mailer.send(email, subject, body)
            except MailNotSent:
                async with self.db.write() as conn:
                    queue = ReminderQueue(conn)
                    for later, _ in claimed[n:]:
                        await queue.release(later.id, now)
                raise
            logger.info("follow-up %d: reminder sent to %s", row.id, email)
        return len(claimed) == BATCH
