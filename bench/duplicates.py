"""Duplicates at scale (issue 11): ``lead(id) { duplicates }`` and ``possibleDuplicateLeads``
over HTTP against a seeded database. ``python -m bench.duplicates`` (``make bench-duplicates``;
bench/README.md, "Duplicates").

1. A database of BENCH_N leads (1,000,000 by default; bench/seed.py, whose leads include 3%
   entered again: the same email in another case, the same phone written otherwise, or a
   misspelt name at the company spelt otherwise): SQLite at bench/.data/duplicates.db, or the
   PostgreSQL database BENCH_DATABASE_URL names (it must contain "bench"). BENCH_REUSE=1 keeps
   one already seeded with BENCH_N leads.
2. ``server.py serve`` (one worker, no webhook sender) and an ADMIN API key.
3. After BENCH_WARMUP requests, one request at a time: ``lead(id) { duplicates }`` for
   BENCH_SAMPLES random leads, the same leads again (the first touch of a page not in memory
   is most of a slow request), then for as many leads entered again (they have duplicates), a
   page of 20 leads with their duplicates, and ``possibleDuplicateLeads(first: 20)``: the
   client's time per request, p50/p99/max.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench import seed
from bench.harness import DATA, _safe
from bench.webhooks import _database, admin_key, fresh_database, server
from db.models import Lead
from resolvers.ids import to_global_id

SQLITE_URL = f"sqlite+aiosqlite:///{DATA / 'duplicates.db'}"
LEAD = """
query ($id: ID!) {
  lead(id: $id) { id duplicates { lead { id email } reasons score } }
}
"""
PAGE = """
{ leads(first: 20) { nodes { id duplicates { lead { id email } reasons score } } } }
"""
PAIRS = """
{ possibleDuplicateLeads(first: 20) { lead { id } duplicateOf { id } reasons score } }
"""


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def log(message: str) -> None:
    print(f"[bench.duplicates] {message}", flush=True)


async def _count(url: str) -> int:
    db = _database(url)
    try:
        async with db.read() as conn:
            table: Any = Lead.__table__  # type: ignore[attr-defined]
            return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
    except Exception:  # no database, or not migrated: seed it
        return -1
    finally:
        await db.dispose()


def _entered_again(p: seed.Plan) -> list[int]:
    """The ids of the leads that bench/seed.py made copies of earlier ones."""
    return [
        i + 1
        for i in range(seed.DUPLICATE_AFTER, p.n)
        if (p.noise[i] >> 3) % 1000 < seed.DUPLICATE_SHARE * 1000 and i not in p.client_of
    ]


def timed(
    client: httpx.Client, key: str, query: str, variables: Callable[[int], dict[str, Any]], n: int
) -> tuple[list[float], int]:
    """Milliseconds per request, and how many answers held at least one duplicate."""
    times, found = [], 0
    headers = {"Authorization": f"Bearer {key}"}
    for k in range(n):
        body = {"query": query, "variables": variables(k)}
        start = time.perf_counter()
        response = client.post("/graphql", json=body, headers=headers)
        times.append((time.perf_counter() - start) * 1000)
        answer = response.json()
        assert "errors" not in answer, answer
        if "duplicates" in response.text and '"reasons":["' in response.text:
            found += 1
    return times, found


def summary(name: str, times: list[float], found: int | None = None) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    with_dups = f" | {found}/{len(times)}" if found is not None else " | -"
    return (
        f"| {name} | {len(times)} | {statistics.median(ordered):.1f} | {p99:.1f} | "
        f"{ordered[-1]:.1f}{with_dups} |"
    )


def main() -> int:
    url = _env("BENCH_DATABASE_URL", SQLITE_URL)
    n = int(_env("BENCH_N", "1000000"))
    samples = int(_env("BENCH_SAMPLES", "200"))
    warmup = int(_env("BENCH_WARMUP", "50"))
    DATA.mkdir(parents=True, exist_ok=True)
    plan = seed.plan(n)
    if _env("BENCH_REUSE", "0") == "1" and asyncio.run(_count(url)) == n:
        log(f"Reusing {_safe(url)} ({n:,} leads).")
    else:
        log(f"Seeding {n:,} leads into {_safe(url)} ...")
        started = time.monotonic()
        asyncio.run(fresh_database(url))
        asyncio.run(seed.seed(url, plan))
        log(f"Seeded in {time.monotonic() - started:.0f} s.")
    key = asyncio.run(admin_key(url))
    rng = random.Random(7)
    randoms = [rng.randint(1, n) for _ in range(samples + warmup)]
    again = _entered_again(plan)
    doubles = rng.sample(again, min(len(again), samples))

    def lead_of(ids: list[int]) -> Callable[[int], dict[str, Any]]:
        return lambda k: {"id": to_global_id("Lead", ids[k])}

    rows = []
    with server(url, sender=False) as svc, httpx.Client(base_url=svc.url, timeout=120) as client:
        timed(client, key, LEAD, lead_of(randoms[samples:]), warmup)
        times, found = timed(client, key, LEAD, lead_of(randoms), samples)
        rows.append(summary("lead(id) { duplicates }, random leads", times, found))
        times, found = timed(client, key, LEAD, lead_of(randoms), samples)
        rows.append(summary("the same leads again (their pages cached)", times, found))
        times, found = timed(client, key, LEAD, lead_of(doubles), len(doubles))
        rows.append(summary("lead(id) { duplicates }, leads entered again", times, found))
        times, _ = timed(client, key, PAGE, lambda k: {}, 50)
        rows.append(summary("leads(first: 20) { duplicates }", times))
        times, _ = timed(client, key, PAIRS, lambda k: {}, 5)
        rows.append(summary("possibleDuplicateLeads(first: 20)", times))
    engine = "SQLite" if make_url(url).get_backend_name() == "sqlite" else "PostgreSQL"
    print(f"\n{engine}, {n:,} leads ({len(again):,} entered again), one request at a time:\n")
    print("| request | n | p50 ms | p99 ms | max ms | with duplicates |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
