"""Pipeline counts at scale (issue 12): ``leads { aggregate { ... } }`` over HTTP against a
seeded database. ``python -m bench.aggregates`` (``make bench-aggregates``; bench/README.md,
"Pipeline counts").

1. A database of BENCH_N leads (1,000,000 by default; bench/seed.py: five statuses, ten
   sources, US states, created over two years, a tenth converted), with OWNERS members (20)
   owning four leads in five (by id), the rest unassigned: SQLite at bench/.data/aggregates.db,
   or the PostgreSQL database BENCH_DATABASE_URL names (it must contain "bench"). A database
   that already holds BENCH_N leads with owners is reused (BENCH_RESEED=1 seeds anew).
2. ``server.py serve`` (one worker, no webhook sender) and an ADMIN API key.
3. One request at a time, after BENCH_WARMUP of each: the whole aggregate (every count, their
   default arguments) unfiltered and filtered (status in [NEW, CONTACTED] and state TX),
   BENCH_SAMPLES times each; then each count alone, both ways: the client's time per request,
   p50/p99/max.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from bench import seed
from bench.harness import DATA, _safe
from bench.webhooks import _database, admin_key, fresh_database, server
from db.models import DEFAULT_WORKSPACE_ID, Lead
from db.repositories.auth import MembershipRepository, UserRepository
from db.types import utcnow

SQLITE_URL = f"sqlite+aiosqlite:///{DATA / 'aggregates.db'}"
LEADS: Any = Lead.__table__  # type: ignore[attr-defined]
OWNED_OF = 5  # leads whose id % OWNED_OF is not 0 have an owner
OWNER_CHUNK = 50_000  # leads given owners per transaction

COUNTS = {
    "count": "count",
    "averageScore": "averageScore",
    "byStatus": "byStatus { status count }",
    "bySource": "bySource { value count }",
    "byState": "byState { value count }",
    "byOwner": "byOwner { owner { id email } count }",
    "createdPerDay": "createdPerDay { day count }",
    "convertedPerDay": "convertedPerDay { day count }",
}
FILTERS: dict[str, dict[str, Any] | None] = {
    "unfiltered": None,
    "filtered": {"status": ["NEW", "CONTACTED"], "state": "TX"},
}


def document(*fields: str) -> str:
    selected = " ".join(COUNTS[f] for f in fields)
    return (
        "query ($filter: LeadFilter) "
        f"{{ leads(first: 0, filter: $filter) {{ aggregate {{ {selected} }} }} }}"
    )


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def log(message: str) -> None:
    print(f"[bench.aggregates] {message}", flush=True)


async def _state(url: str) -> tuple[int, int]:
    """(leads, leads with an owner), or (-1, -1) when there is no seeded database."""
    db = _database(url)
    try:
        async with db.read() as conn:
            n = (await conn.execute(select(func.count()).select_from(LEADS))).scalar_one()
            owned = select(func.count()).select_from(LEADS).where(LEADS.c.owner_id.is_not(None))
            return int(n), int((await conn.execute(owned)).scalar_one())
    except Exception:  # no database, or not migrated: seed it
        return -1, -1
    finally:
        await db.dispose()


async def assign_owners(url: str, owners: int) -> None:
    """``owners`` members of the default workspace, owning the leads whose id % OWNED_OF is
    not 0, in turn (by id // OWNED_OF)."""
    db = _database(url)
    try:
        now = utcnow()
        async with db.write() as conn:
            ids = []
            for k in range(owners):
                user = await UserRepository(conn).insert(
                    email=f"owner{k}@bench.example",
                    name=f"Owner {k}",
                    created_at=now,
                    email_verified_at=now,
                )
                await MembershipRepository(conn, DEFAULT_WORKSPACE_ID).insert(
                    user.id, "MEMBER", now
                )
                ids.append(user.id)
            assert ids == list(range(ids[0], ids[0] + owners)), ids
            last = (await conn.execute(select(func.max(LEADS.c.id)))).scalar() or 0
        # In ranges of ids, a transaction each: every lead moved is two tally cells moved by
        # the triggers (migration 0015), and one UPDATE of 800,000 leads outlasted the
        # statement timeout.
        owner = ids[0] + (LEADS.c.id // OWNED_OF) % owners
        for start in range(0, last + 1, OWNER_CHUNK):
            async with db.write() as conn:
                stmt = (
                    update(LEADS)
                    .where(
                        LEADS.c.id >= start,
                        LEADS.c.id < start + OWNER_CHUNK,
                        LEADS.c.id % OWNED_OF != 0,
                    )
                    .values(owner_id=owner)
                )
                await conn.execute(stmt)
    finally:
        await db.dispose()


def timed(
    client: httpx.Client, key: str, query: str, variables: dict[str, Any], n: int
) -> list[float]:
    """Milliseconds per request."""
    times = []
    headers = {"Authorization": f"Bearer {key}"}
    body = {"query": query, "variables": variables}
    for _ in range(n):
        start = time.perf_counter()
        response = client.post("/graphql", json=body, headers=headers)
        times.append((time.perf_counter() - start) * 1000)
        answer = response.json()
        assert "errors" not in answer, answer
    return times


def row(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"| {name} | {len(times)} | {statistics.median(ordered):.1f} | {p99:.1f} | "
        f"{ordered[-1]:.1f} |"
    )


def main() -> int:
    url = _env("BENCH_DATABASE_URL", SQLITE_URL)
    n = int(_env("BENCH_N", "1000000"))
    owners = int(_env("OWNERS", "20"))
    samples = int(_env("BENCH_SAMPLES", "30"))
    warmup = int(_env("BENCH_WARMUP", "3"))
    DATA.mkdir(parents=True, exist_ok=True)
    leads, owned = asyncio.run(_state(url))
    if _env("BENCH_RESEED", "0") != "1" and leads == n and owned > 0:
        log(f"Reusing {_safe(url)} ({n:,} leads, {owned:,} with an owner).")
    elif _env("BENCH_RESEED", "0") != "1" and leads == n:
        log(f"Giving owners to the {n:,} leads of {_safe(url)} ...")
        asyncio.run(assign_owners(url, owners))
        asyncio.run(seed.recount(url))
    else:
        log(f"Seeding {n:,} leads into {_safe(url)} ...")
        started = time.monotonic()
        asyncio.run(fresh_database(url))
        asyncio.run(seed.seed(url, seed.plan(n)))
        asyncio.run(assign_owners(url, owners))
        log(f"Seeded in {time.monotonic() - started:.0f} s.")
    key = asyncio.run(admin_key(url))
    whole = document(*COUNTS)
    rows = []
    with server(url, sender=False) as svc, httpx.Client(base_url=svc.url, timeout=300) as client:
        for how, given in FILTERS.items():
            variables = {"filter": given}
            timed(client, key, whole, variables, warmup)
            rows.append(
                row(f"whole aggregate, {how}", timed(client, key, whole, variables, samples))
            )
        for how, given in FILTERS.items():
            variables = {"filter": given}
            for name in COUNTS:
                alone = document(name)
                timed(client, key, alone, variables, 1)
                times = timed(client, key, alone, variables, max(5, samples // 3))
                rows.append(row(f"{name} alone, {how}", times))
    engine = "SQLite" if make_url(url).get_backend_name() == "sqlite" else "PostgreSQL"
    print(f"\n{engine}, {n:,} leads ({owners} owners), one request at a time:\n")
    print("| request | n | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
