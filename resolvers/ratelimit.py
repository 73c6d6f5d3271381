"""Leaky buckets of query cost, one per credential, shared by every process on one database.

The bucket itself is a row (db/ratelimit.py: points left, when). A request does not touch it:
each process holds a *lease* of points taken from the row, spends requests' costs from it in
memory, and goes back to the row only when the lease cannot pay for a request. A take asks for
the request's cost plus ``RATE_LIMIT_LEASE_SECONDS`` of the restore rate, so a credential spending
at its full rate makes about one write per lease period per process, whatever its request rate.
A lease unused for a lease period is given back (``Limiter.flush``, every lease period, all keys
in one transaction), and so is the rest of a lease at the next take.

Bounds, with N processes serving one credential:
- Overshoot: none from the leases. A point is spent only after a take removed it from the row,
  and the row refills at the restore rate up to the maximum, so what all processes spend in t
  seconds is at most ``maximum + rate * t``. The only excess is a request whose actual cost came
  out above its requested cost (a plain list longer than its assumed size): that request's
  difference, a debt paid by the next ones.
- Undershoot: a process may refuse while another holds unspent points: at most (N - 1) leases,
  each at most a request's cost + ``min(rate * lease_seconds, maximum / 10)``, for at most two
  lease periods.
A refused request does not write either: until the row could have refilled enough (the level
the last take saw, plus the rate since), a process refuses from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field

from db import ratelimit
from db.engine import Database
from db.settings import Settings

logger = logging.getLogger("leadgraph.ratelimit")

# Local state of a key idle this long is forgotten (its lease was given back long before).
_FORGET_SECONDS = 300.0
# The most of a bucket one lease takes beyond the request's cost.
_LEASE_SHARE = 0.1
# How often a process deletes the rows of full buckets (resolvers: ``Limiter.prune``).
_PRUNE_SECONDS = 600.0
# The prefix of an API key's bucket (schema/limits.py's ``bucket_of``).
API_KEY_BUCKET = "key:"


@dataclass(frozen=True, slots=True)
class Policy:
    """A bucket's size and how fast it refills (points per second)."""

    maximum: int
    rate: int


@dataclass(slots=True)
class Status:
    """What a response tells about the caller's bucket (Shopify's throttleStatus)."""

    maximum: int
    available: float
    rate: int

    @property
    def full_in(self) -> int:
        """Whole seconds until the bucket is full again."""
        return max(0, math.ceil((self.maximum - self.available) / self.rate))


@dataclass(slots=True)
class Decision:
    allowed: bool
    status: Status
    retry_after: int = 0


@dataclass(slots=True)
class _Local:
    policy: Policy
    lease: float = 0.0  # points this process took from the row and has not spent
    level: float = 0.0  # the row's level after this process's last take
    seen_at: float = 0.0  # when (time.time())
    used_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def shared(self, now: float) -> float:
        """At most what the row holds now: other processes only take from it."""
        return min(self.policy.maximum, self.level + self.policy.rate * (now - self.seen_at))

    def status(self, now: float) -> Status:
        available = min(self.policy.maximum, self.lease + self.shared(now))
        return Status(self.policy.maximum, max(0.0, available), self.policy.rate)


class Limiter:
    """The process's leases; ``start()`` runs the periodic give-back as a task of the loop."""

    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self.lease_seconds = settings.rate_limit_lease_seconds
        # Its own small pool: the takes stay out of the API's pools (and statement counts).
        self.db = db or Database(
            settings.database_url,
            settings.model_copy(update={"db_pool_size": 2, "db_max_overflow": 2}),
        )
        self._local: dict[str, _Local] = {}
        self._task: asyncio.Task[None] | None = None

    def default_policy(self) -> Policy:
        return Policy(self.settings.rate_limit_maximum, self.settings.rate_limit_restore_rate)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rate limit leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush(everything=True)
        await self.db.dispose()

    async def _run(self) -> None:
        last_prune = time.monotonic()
        while True:
            await asyncio.sleep(self.lease_seconds)
            try:
                await self.flush()
                if time.monotonic() - last_prune >= _PRUNE_SECONDS:
                    last_prune = time.monotonic()
                    await self.prune()
            except Exception:
                logger.exception("giving back rate-limit leases failed; trying again")

    async def prune(self) -> int:
        """Deletes the shared buckets of the server's policy (sessions, client addresses) that
        are full again: they are as if they had no row. API keys' buckets stay (a key may have
        a rate of its own, and there are only as many as keys)."""
        policy = self.default_policy()
        async with self.db.write() as conn:
            return await ratelimit.prune(
                conn, full_after=policy.maximum / policy.rate + 1, keep_prefix=API_KEY_BUCKET
            )

    async def flush(self, *, everything: bool = False) -> None:
        """Gives back the leases unused for a lease period (all of them with ``everything``)."""
        now = time.time()
        returns: dict[str, tuple[float, float, float]] = {}
        for key, local in list(self._local.items()):
            idle = now - local.used_at
            if local.lock.locked():
                continue
            if local.lease != 0 and (everything or idle >= self.lease_seconds):
                returns[key] = (local.lease, local.policy.maximum, local.policy.rate)
                local.level = min(local.policy.maximum, local.shared(now) + local.lease)
                local.seen_at, local.lease = now, 0.0
            elif idle > _FORGET_SECONDS:
                del self._local[key]
        if returns:
            async with self.db.write() as conn:
                await ratelimit.give_back(conn, returns)

    def forget(self) -> None:
        """Drops every lease unreturned (the test suite's wipe empties the buckets' rows)."""
        self._local.clear()

    def _get(self, key: str, policy: Policy) -> _Local:
        local = self._local.get(key)
        if local is None:
            local = self._local[key] = _Local(policy, level=policy.maximum, seen_at=time.time())
        elif local.policy != policy:
            local.policy = policy  # the key's rate changed: the new one from now on
        return local

    async def reserve(self, key: str, policy: Policy, cost: int) -> Decision:
        """Takes ``cost`` points for a request, or refuses it with the seconds to wait."""
        local = self._get(key, policy)
        now = time.time()
        local.used_at = now
        if local.lease >= cost:
            local.lease -= cost
            return Decision(True, local.status(now))
        async with local.lock:
            now = time.time()
            if local.lease < cost and local.lease + local.shared(now) >= cost:
                need = cost - local.lease
                # A lease's extra: the points of a lease period, but never more than a tenth of
                # the bucket (a bucket that refills within a lease period would otherwise go
                # whole to one process, and every other one would refuse meanwhile).
                extra = min(policy.rate * self.lease_seconds, policy.maximum * _LEASE_SHARE)
                async with self.db.write() as conn:
                    taken, level, seen = await ratelimit.take(
                        conn,
                        key,
                        ask=need + extra,
                        least=need,
                        give=0.0,
                        maximum=policy.maximum,
                        rate=policy.rate,
                    )
                local.lease += taken
                local.level, local.seen_at = level, seen
            if local.lease >= cost:
                local.lease -= cost
                return Decision(True, local.status(now))
            status = local.status(now)
            missing = cost - status.available
            return Decision(False, status, max(1, math.ceil(missing / policy.rate)))

    def settle(self, key: str, reserved: int, actual: int) -> Status | None:
        """After the request: the points reserved but not used go back to the lease (a cost
        above the reservation is a debt of the lease)."""
        local = self._local.get(key)
        if local is None:
            return None
        local.lease += reserved - actual
        return local.status(time.time())

    def status(self, key: str, policy: Policy) -> Status:
        return self._get(key, policy).status(time.time())
