"""Trusted documents (issue 13): Q1 sent as its text (`query`) and as a registered document
(`documentId`), A/B against one server. ``python -m bench.documents`` (bench/README.md,
"Trusted documents").

1. A database of BENCH_N leads (20,000 by default: Q1 reads the first page, so the size does not
   matter) at bench/.data/documents.db, or the PostgreSQL database BENCH_DATABASE_URL names
   (it must contain "bench"); reused when it already holds BENCH_N leads.
2. Q1's document registered by ``server.py documents add`` (a codegen-style manifest), then
   ``server.py serve`` (one worker, no webhook sender) and an ADMIN key.
3. Both bodies checked to answer the same; then BENCH_ROUNDS rounds, each a wrk run of
   BENCH_DURATION seconds with BENCH_CONNECTIONS connections for each side, the side that goes
   first alternating: req/s and the server's CPU per request (user + system, from /proc) of each
   run, and their medians.
4. In-process, what the server skips for a registered document (and for a text the document
   cache already holds): parsing and validating Q1, per request, uncached.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from graphql import parse
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from strawberry.schema.schema import validate_document

from bench import load, seed
from bench.harness import DATA, ROOT, _safe
from bench.queries import LEAD_FIELDS, _connection
from bench.webhooks import _database, admin_key, fresh_database, server
from db.models import Lead
from schema import build_schema

SQLITE_URL = f"sqlite+aiosqlite:///{DATA / 'documents.db'}"
Q1 = f"query Q1($first: Int!) {{ {_connection('leads', 'first: $first', LEAD_FIELDS, False)} }}"
VARIABLES = {"first": 20}


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def log(message: str) -> None:
    print(f"[bench.documents] {message}", flush=True)


async def _leads(url: str) -> int:
    db = _database(url)
    try:
        async with db.read() as conn:
            table: Any = Lead.__table__  # type: ignore[attr-defined]
            return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
    except Exception:  # no database, or not migrated
        return -1
    finally:
        await db.dispose()


def register(url: str, text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "manifest.json"
        manifest.write_text(json.dumps({hashlib.sha256(text.encode()).hexdigest(): text}))
        subprocess.run(
            [sys.executable, "server.py", "documents", "add", str(manifest)],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": url},
            check=True,
        )


@dataclass(frozen=True)
class ABSettings:
    """An A/B bench's settings, from the environment (bench/README.md)."""

    url: str
    n: int
    rounds: int
    duration: float
    connections: int


def ab_settings() -> ABSettings:
    return ABSettings(
        url=_env("BENCH_DATABASE_URL", SQLITE_URL),
        n=int(_env("BENCH_N", "20000")),
        rounds=int(_env("BENCH_ROUNDS", "6")),
        duration=float(_env("BENCH_DURATION", "5")),
        connections=int(_env("BENCH_CONNECTIONS", "10")),
    )


def seeded(url: str, n: int, log: Callable[[str], None]) -> None:
    """The database at ``url`` holding ``n`` leads: reused if it does, made afresh if not."""
    DATA.mkdir(parents=True, exist_ok=True)
    if asyncio.run(_leads(url)) != n:
        log(f"Seeding {n:,} leads into {_safe(url)} ...")
        asyncio.run(fresh_database(url))
        asyncio.run(seed.seed(url, seed.plan(n)))


def ab_rounds(
    sides: dict[str, tuple[Any, load.LoadSpec]],
    rounds: int,
    duration: float,
    connections: int,
    log: Callable[[str], None],
) -> dict[str, list[tuple[float, float]]]:
    """A warm-up, then ``rounds`` wrk runs of each side (a server and what to send it), the side
    that goes first alternating: (req/s, the server's CPU µs per request) per side and round."""
    results: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as tmp:
        for svc, spec in sides.values():
            load.run("wrk", svc.url, spec, connections, 2, Path(tmp))
        for round_ in range(rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for side in order:
                svc, spec = sides[side]
                svc.wait_idle()
                cpu = svc.cpu_seconds()
                result = load.run("wrk", svc.url, spec, connections, duration, Path(tmp))
                cpu = svc.cpu_seconds() - cpu
                assert result.errors == 0, result
                results[side].append((result.rps, cpu * 1e6 / result.requests))
                log(
                    f"round {round_ + 1} {side}: {result.rps:.0f} req/s, "
                    f"{cpu * 1e6 / result.requests:.0f} µs CPU/request"
                )
    return results


def table(results: dict[str, list[tuple[float, float]]], first_column: str) -> None:
    """Each side's medians, and its req/s in every round, as a Markdown table."""
    print(f"| {first_column} | req/s (median) | CPU µs/request (median) | req/s each round |")
    print("|---|---|---|---|")
    for side, runs in results.items():
        rps = [r for r, _ in runs]
        cpu = [c for _, c in runs]
        each = " ".join(f"{r:.0f}" for r in rps)
        print(f"| {side} | {statistics.median(rps):.0f} | {statistics.median(cpu):.0f} | {each} |")


def parse_and_validate_ms(n: int = 300) -> tuple[float, float]:
    """Q1's parse and its validation (the rules every request runs), ms each, uncached."""
    schema = build_schema()
    rules = schema.documents.rules
    started = time.perf_counter()
    for _ in range(n):
        document = parse(Q1)
    parsed = time.perf_counter()
    for _ in range(n):
        assert not validate_document(schema._schema, document, rules)
    validated = time.perf_counter()
    return (parsed - started) * 1000 / n, (validated - parsed) * 1000 / n


def main() -> int:
    ab = ab_settings()
    url, rounds, duration, connections = ab.url, ab.rounds, ab.duration, ab.connections
    seeded(url, ab.n, log)
    register(url, Q1)
    key = asyncio.run(admin_key(url))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    document_id = f"sha256:{hashlib.sha256(Q1.encode()).hexdigest()}"
    bodies = {
        "query": json.dumps({"query": Q1, "variables": VARIABLES}),
        "documentId": json.dumps({"documentId": document_id, "variables": VARIABLES}),
    }
    with server(url, sender=False) as svc:
        with httpx.Client(base_url=svc.url, timeout=60) as client:
            answers = [
                client.post("/graphql", content=body, headers=headers).json()
                for body in bodies.values()
            ]
        # Alike but for the rate-limit bucket's level in extensions.cost.
        assert "errors" not in answers[0] and answers[0]["data"] == answers[1]["data"], answers
        sides = {side: (svc, load.LoadSpec("/graphql", headers, b)) for side, b in bodies.items()}
        results = ab_rounds(sides, rounds, duration, connections, log)
    parse_ms, validate_ms = parse_and_validate_ms()
    engine = "SQLite" if make_url(url).get_backend_name() == "sqlite" else "PostgreSQL"
    print(
        f"\n{engine}, Q1 (leads(first: 20)), {rounds} rounds of {duration:.0f} s, "
        f"{connections} connections, load {os.getloadavg()[0]:.1f}:\n"
    )
    table(results, "sent as")
    print(f"\nQ1 uncached, in-process: parse {parse_ms:.3f} ms, validate {validate_ms:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
