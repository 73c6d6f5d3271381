"""Export throughput (issue 11): a full CSV and NDJSON export of every lead through HTTP, its
time, rows/s, and the server's memory while it streams. ``python -m bench.exports``
(bench/README.md, "Exports").

1. A database of BENCH_EXPORTS_N leads (1,000,000 by default; and N/10 clients) seeded by
   bench/seed.py: SQLite at bench/.data/exports.db, or the PostgreSQL database that
   BENCH_DATABASE_URL names (it must contain "bench"). Kept between runs when it already holds
   that many leads (BENCH_EXPORTS_RESEED=true seeds it again); a VIEWER API key is made.
2. For each format, a fresh ``server.py serve`` (one worker, its webhook sender off): the
   harness downloads ``/exports/leads.<format>`` as fast as it reads, counting rows and bytes,
   while a thread samples the server's RSS (and its heap, RssAnon) every 50 ms. Then once
   more with ``filter={"status":["NEW"]}&orderBy={"field":"SCORE","direction":"DESC"}``,
   a filtered export in another order.
3. The time to the first byte and to the last, rows/s, MB/s, the server's RSS before, its
   peak during the export and the kernel's high-water mark (VmHWM), and the server's CPU
   seconds. The results go to bench/results.md ("Exports", its own block).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench import seed
from bench.harness import DATA, ROOT, Launch, _git, _loadavg, _safe, log, service
from db.engine import Database
from db.models import Lead, Role
from db.settings import Settings
from resolvers.auth import create_key_for_workspace

SQLITE_URL = f"sqlite+aiosqlite:///{DATA / 'exports.db'}"
RESULTS = ROOT / "bench" / "results.md"
LEADS: Any = Lead.__table__  # type: ignore[attr-defined]
FILTERED = {
    "filter": {"status": ["NEW"]},
    "orderBy": {"field": "SCORE", "direction": "DESC"},
}


@dataclass(frozen=True)
class Config:
    database_url: str
    engine: str


@dataclass
class Run:
    name: str
    rows: int
    bytes: int
    first_byte_s: float
    seconds: float
    rss_before_kib: int
    rss_peak_kib: int
    anon_before_kib: int
    anon_peak_kib: int
    hwm_kib: int
    cpu_s: float
    heap_quarters_kib: list[int]  # RssAnon at 25, 50, 75 and 100 % of the rows expected

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _database(url: str) -> Database:
    return Database(url, Settings(database_url=url, _env_file=None))  # type: ignore[call-arg]


async def lead_count(url: str, status: str | None = None) -> int:
    db = _database(url)
    counted = select(func.count()).select_from(LEADS)
    if status is not None:
        counted = counted.where(LEADS.c.status == status)
    try:
        async with db.read() as conn:
            return int((await conn.execute(counted)).scalar_one())
    except Exception:
        return -1  # no database, or not migrated
    finally:
        await db.dispose()


async def viewer_key(url: str) -> str:
    db = _database(url)
    try:
        secret, _, _ = await create_key_for_workspace(db, "Default", Role.VIEWER, "bench-export")
    finally:
        await db.dispose()
    return secret


async def prepare(url: str, n: int, reseed: bool) -> None:
    if not reseed and await lead_count(url) == n:
        log(f"{_safe(url)} already holds {n:,} leads: kept (BENCH_EXPORTS_RESEED=true seeds)")
        return
    if make_url(url).get_backend_name() != "sqlite":
        name = make_url(url).database or ""
        if "bench" not in name:
            raise SystemExit(f"BENCH_DATABASE_URL names {name!r}: it must contain 'bench'")
    started = time.monotonic()
    await seed.seed(url, seed.plan(n))
    log(f"seeded {n:,} leads in {time.monotonic() - started:.1f} s")


def _memory(pid: int) -> dict[str, int]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "RssAnon", "VmHWM"):
            found[name] = int(rest.split()[0])
    return found


def export_once(cfg: Config, key: str, name: str, path: str, expected: int) -> Run:
    """One export through a fresh server: everything it sends, read and counted; the heap
    sampled as it passes each quarter of the ``expected`` rows."""
    launch = Launch(
        lambda port: [sys.executable, "server.py", "serve"],
        {"WORKERS": "1", "WEBHOOK_SENDER": "false"},
    )
    slug = "".join(c if c.isalnum() else "-" for c in name)
    with service(f"exports-{slug}", launch, cfg) as svc:
        before = _memory(svc.pid)
        peak = dict(before)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                for field, value in _memory(svc.pid).items():
                    peak[field] = max(peak[field], value)
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        cpu_before = svc.cpu_seconds()
        sampler.start()
        rows = size = 0
        quarters: list[int] = []
        first_byte = 0.0
        started = time.monotonic()
        headers = {"Authorization": f"Bearer {key}"}
        with (
            httpx.Client(timeout=120) as client,
            client.stream("GET", svc.url + path, headers=headers) as response,
        ):
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code} {response.read()!r}")
            for chunk in response.iter_raw():
                if not first_byte:
                    first_byte = time.monotonic() - started
                size += len(chunk)
                rows += chunk.count(b"\n")
                while len(quarters) < 3 and rows >= expected * (len(quarters) + 1) // 4:
                    quarters.append(_memory(svc.pid)["RssAnon"])
        seconds = time.monotonic() - started
        done.set()
        sampler.join()
        cpu = svc.cpu_seconds() - cpu_before
        after = _memory(svc.pid)
        quarters.append(after["RssAnon"])
    if path.split("?")[0].endswith(".csv"):
        rows -= 1  # the header line (the seed's text holds no line breaks)
    return Run(
        name=name,
        rows=rows,
        bytes=size,
        first_byte_s=first_byte,
        seconds=seconds,
        rss_before_kib=before["VmRSS"],
        rss_peak_kib=peak["VmRSS"],
        anon_before_kib=before["RssAnon"],
        anon_peak_kib=peak["RssAnon"],
        hwm_kib=after["VmHWM"],
        cpu_s=cpu,
        heap_quarters_kib=quarters,
    )


def table(cfg: Config, n: int, runs: list[Run]) -> str:
    lines = [
        f"{cfg.engine}, {n:,} leads; commit {_git('rev-parse', '--short', 'HEAD')}, "
        f"{os.cpu_count()} cores, load average {_loadavg()}",
        "",
        "| export | rows | MB | first byte | total | rows/s | MB/s | server CPU s "
        "| RSS before → peak (MiB) | heap before → peak (MiB) | heap at each quarter (MiB) "
        "| VmHWM (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.name} | {r.rows:,} | {r.bytes / 1e6:.0f} | {r.first_byte_s * 1000:.0f} ms "
            f"| {r.seconds:.1f} s | {r.rows_per_s:,.0f} | {r.bytes / 1e6 / r.seconds:.1f} "
            f"| {r.cpu_s:.1f} | {r.rss_before_kib / 1024:.0f} → {r.rss_peak_kib / 1024:.0f} "
            f"| {r.anon_before_kib / 1024:.0f} → {r.anon_peak_kib / 1024:.0f} "
            f"| {', '.join(f'{q / 1024:.0f}' for q in r.heap_quarters_kib)} "
            f"| {r.hwm_kib / 1024:.0f} |"
        )
    return "\n".join(lines)


def write_results(engine: str, block: str) -> None:
    """The engine's block of the "Exports" section: replaced, or added."""
    begin, end = f"<!-- begin bench.exports {engine} -->", f"<!-- end bench.exports {engine} -->"
    text = RESULTS.read_text() if RESULTS.exists() else ""
    section = f"{begin}\n{block}\n{end}"
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + section + tail
    elif "\n## Exports\n" in text:
        head, _, tail = text.partition("\n## Exports\n")
        text = f"{head}\n## Exports\n\n{section}\n{tail}"
    else:
        text = text.rstrip("\n") + f"\n\n## Exports\n\n{section}\n"
    RESULTS.write_text(text)


def main() -> int:
    url = _env("BENCH_DATABASE_URL", SQLITE_URL)
    n = int(_env("BENCH_EXPORTS_N", "1000000"))
    reseed = _env("BENCH_EXPORTS_RESEED", "false").lower() == "true"
    engine = make_url(url).get_backend_name()
    cfg = Config(database_url=url, engine="sqlite" if engine == "sqlite" else "postgresql")
    DATA.mkdir(parents=True, exist_ok=True)
    log(f"Exports of {n:,} leads on {_safe(url)}, load average {_loadavg()}")
    asyncio.run(prepare(url, n, reseed))
    key = asyncio.run(viewer_key(url))
    filtered = urlencode({k: json.dumps(v) for k, v in FILTERED.items()})
    runs = []
    new = asyncio.run(lead_count(url, status="NEW"))
    for name, path, expected in [
        ("leads.csv", "/exports/leads.csv", n),
        ("leads.ndjson", "/exports/leads.ndjson", n),
        ("leads.csv, status NEW by score", f"/exports/leads.csv?{filtered}", new),
    ]:
        run = export_once(cfg, key, name, path, expected)
        log(
            f"{name}: {run.rows:,} rows, {run.bytes / 1e6:.0f} MB in {run.seconds:.1f} s "
            f"({run.rows_per_s:,.0f} rows/s), RSS {run.rss_before_kib // 1024} → "
            f"{run.rss_peak_kib // 1024} MiB, heap {run.anon_before_kib // 1024} → "
            f"{run.anon_peak_kib // 1024} MiB"
        )
        runs.append(run)
    if [r.rows for r in runs] != [n, n, new]:
        raise SystemExit(f"expected {n:,}, {n:,} and {new:,} rows: {[r.rows for r in runs]}")
    block = table(cfg, n, runs)
    print(block)
    write_results(cfg.engine, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
