"""Retention at scale (issue 13): a run that deletes ~100,000 leads on SQLite while a client
keeps reading and writing. ``python -m bench.retention`` (``make bench-retention``;
bench/README.md, "Retention").

1. A fresh SQLite database (bench/.data/retention.db) of BENCH_RETENTION_N leads (111,112 by
   default: bench/seed.py, a tenth converted, so ~100,000 unconverted), each with its
   LEAD_CREATED event holding its email (a run blanks the events of what it removes).
2. ``server.py serve`` on it (no webhook sender, no import runner, no scheduled retention).
3. For BENCH_RETENTION_WARMUP_S seconds, one request at a time (a page of 20 leads, then a
   createLead, in turn): the latency without retention. Then the same while another process
   runs the policy "unconverted leads untouched for 1 day: DELETE" (resolvers/retention.py's
   ``apply_policy``, RETENTION_BATCH_SIZE rows a transaction, BENCH_RETENTION_BATCH): how long
   each of its transactions held the writer (from asking for it to its commit, so the wait for
   it is counted too), and the requests' latency meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from typing import Any

import httpx

from bench import seed
from bench.harness import DATA
from bench.webhooks import _database, admin_key, server
from db.settings import Settings
from db.types import utcnow

URL = f"sqlite+aiosqlite:///{DATA / 'retention.db'}"


def log(message: str) -> None:
    print(f"[bench.retention] {message}", flush=True)


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def add_events(path: str) -> int:
    """One LEAD_CREATED event per lead, with its email (as createLead records it)."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("BEGIN")
        rows = con.execute("SELECT id, email, created_at FROM leads ORDER BY id").fetchall()
        con.executemany(
            "INSERT INTO events (workspace_id, seq, type, record_type, record_id, occurred_at, "
            "changes) VALUES (1, ?, 'LEAD_CREATED', 'Lead', ?, ?, ?)",
            (
                (seq, lead_id, created, json.dumps([{"field": "email", "from": None, "to": email}]))
                for seq, (lead_id, email, created) in enumerate(rows, start=1)
            ),
        )
        con.execute(
            "INSERT INTO event_counters (workspace_id, last_seq) VALUES (1, ?)", (len(rows),)
        )
        con.execute("COMMIT")
        return len(rows)
    finally:
        con.close()


def run_policy(batch: int) -> dict[str, Any]:
    """In a process of its own: the policy applied once; its RunStats."""
    from resolvers.retention import Policy, apply_policy

    settings = Settings(database_url=URL, retention_batch_size=batch, _env_file=None)  # type: ignore[call-arg]

    async def go() -> dict[str, Any]:
        db = _database(URL)
        try:
            started = time.perf_counter()
            stats = await apply_policy(
                db, settings, 1, Policy(1, None, None, "DELETE"), utcnow() - timedelta(0)
            )
            return {
                "leads": stats.leads,
                "batches": stats.batches,
                "batch_ms": stats.batch_ms,
                "seconds": time.perf_counter() - started,
            }
        finally:
            await db.dispose()

    return asyncio.run(go())


def _q(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: none"
    return (
        f"{name}: n={len(values)} p50={statistics.median(values):.1f} ms "
        f"p99={_q(values, 0.99):.1f} ms max={max(values):.1f} ms"
    )


async def requests(url: str, key: str, stop: asyncio.Event, tag: str) -> dict[str, list[float]]:
    """One request at a time until ``stop``: a page of leads, then a createLead."""
    out: dict[str, list[float]] = {"read": [], "write": []}
    headers = {"Authorization": f"Bearer {key}"}
    page = {"query": "{ leads(first: 20) { nodes { id email } } }"}
    n = 0
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        while not stop.is_set():
            n += 1
            create = {
                "query": "mutation ($e: String!) { createLead(input: {email: $e}) "
                "{ lead { id } } }",
                "variables": {"e": f"{tag}{n}@example.com"},
            }
            for kind, body in (("read", page), ("write", create)):
                started = time.perf_counter()
                response = await client.post("/graphql", json=body)
                out[kind].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200 and "errors" not in response.json(), (
                    response.text
                )
    return out


async def main() -> None:
    n = int(_env("BENCH_RETENTION_N", "111112"))
    batch = int(_env("BENCH_RETENTION_BATCH", "100"))
    warmup = float(_env("BENCH_RETENTION_WARMUP_S", "5"))
    log(f"seeding {n:,} leads")
    await seed.seed_sqlite(URL, seed.plan(n))
    path = str(seed.sqlite_path(URL))
    log(f"{add_events(path):,} events")
    con = sqlite3.connect(path)
    cutoff = seed.sqlite_stamp(
        int((utcnow().replace(tzinfo=None) - timedelta(days=1) - seed.EPOCH).total_seconds() * 1e6)
    )
    (candidates,) = con.execute(
        "SELECT count(*) FROM leads WHERE converted_at IS NULL AND updated_at < ?", (cutoff,)
    ).fetchone()
    con.close()
    key = await admin_key(URL)
    extra = {
        "RETENTION_SCHEDULE": "false",
        "IMPORT_RUNNER": "false",
        "FOLLOW_UP_REMINDERS": "false",
    }
    with server(URL, sender=False, **extra) as api:
        stop = asyncio.Event()
        idle = asyncio.create_task(requests(api.url, key, stop, "idle"))
        await asyncio.sleep(warmup)
        stop.set()
        before = await idle
        log(summary("without retention, read", before["read"]))
        log(summary("without retention, write", before["write"]))

        stop = asyncio.Event()
        busy = asyncio.create_task(requests(api.url, key, stop, "busy"))
        loop = asyncio.get_running_loop()
        with ProcessPoolExecutor(1) as pool:
            stats = await loop.run_in_executor(pool, run_policy, batch)
        stop.set()
        during = await busy
    log(
        f"removed {stats['leads']:,} of {candidates:,} unconverted leads in "
        f"{stats['seconds']:.1f} s, {stats['batches']} transactions of {batch}"
    )
    log(summary("writer held per transaction", stats["batch_ms"]))
    log(summary("during retention, read", during["read"]))
    log(summary("during retention, write", during["write"]))
    log(f"machine load (1/5/15 min): {os.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
