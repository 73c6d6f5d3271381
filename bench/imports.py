"""Bulk import throughput (issue 11): a file of BENCH_IMPORT_ROWS leads (1,000,000 by default)
posted, streamed, to a real ``server.py serve`` on a fresh SQLite database (or the PostgreSQL
database BENCH_DATABASE_URL names, which must contain "bench"). ``python -m bench.imports``
(``make bench-imports``; bench/README.md, "Imports").

It reports rows/s from the first byte posted to the job's end (and from the 202 on), the
server's RSS over the import (start, peak, end; sampled every 0.2 s), and the latency of Q1
(``leads(first: 20)``) asked over and over by a concurrent client during the import: p50, p99,
max. The file is made once in bench/.data and reused.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.harness import DATA, ROOT, _free_port

ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "1000000"))
SQLITE_URL = f"sqlite+aiosqlite:///{DATA / 'imports.db'}"
Q1 = "{ leads(first: 20) { nodes { id email firstName lastName company status createdAt } } }"
JOB = """
query ($id: ID!) {
  importJob(id: $id) { status rowsTotal rowsProcessed created updated skipped failed }
}
"""
FIRST = ["Ann", "Bo", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Júlia"]
LAST = ["Lee", "Smith", "García", "Nguyen", "Okafor", "Müller", "Rossi", "Kim", "Silva", "Patel"]
STATES = ["TX", "California", "NY", "wa", "Ontario", "FL", "Illinois", "QC"]


def log(message: str) -> None:
    print(message, flush=True)


def make_file(rows: int) -> Path:
    """bench/.data/imports-<rows>.csv: one lead per row, a metadata column among them."""
    path = DATA / f"imports-{rows}.csv"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    rng = random.Random(11)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        out.write("email,firstName,lastName,phone,company,city,state,source,score,tier\n")
        for n in range(rows):
            out.write(
                f"lead{n}@example{n % 97}.com,{rng.choice(FIRST)},{rng.choice(LAST)},"
                f"+1 512 555 {n % 10000:04d},Company {n % 5000} Inc,City {n % 300},"
                f"{rng.choice(STATES)},import,{n % 101},{'gold' if n % 7 == 0 else ''}\n"
            )
    tmp.rename(path)
    return path


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) in KiB: all resident memory, and the part that is not file pages
    (SQLite's memory-mapped database file counts in the first, up to SQLITE_MMAP_SIZE)."""
    found = dict.fromkeys(("VmRSS:", "RssAnon:"), 0)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] in found:
            found[parts[0]] = int(parts[1])
    return found["VmRSS:"], found["RssAnon:"]


def database_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL")
    if url is None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{DATA / 'imports.db'}{suffix}").unlink(missing_ok=True)
        return SQLITE_URL
    if "bench" not in url:
        sys.exit("BENCH_DATABASE_URL must name a database whose name contains 'bench'")
    return url


def owner_key(env: dict[str, str]) -> str:
    """An OWNER key of the Default workspace, by the command line (which migrates)."""
    made = subprocess.run(
        [sys.executable, "server.py", "create-api-key", "--workspace", "Default"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.strip()


def pieces(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while data := file.read(1024 * 1024):
            yield data


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main() -> None:
    path = make_file(ROWS)
    log(f"file: {path} ({path.stat().st_size / 1e6:.0f} MB, {ROWS} rows)")
    url = database_url()
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "warning",
        "GRAPHIQL": "false",
    }
    if url.startswith("postgresql"):
        # A fresh schema: every table emptied by migrating down and up again.
        subprocess.run(
            [sys.executable, "-c", "import sys; sys.exit(0)"], cwd=ROOT, env=env, check=True
        )
    key = owner_key(env)
    server = subprocess.Popen([sys.executable, "server.py", "serve"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        done = threading.Event()
        samples: list[tuple[int, int]] = []
        latencies: list[float] = []
        failures: list[str] = []

        def sample() -> None:
            while not done.is_set():
                samples.append(rss_kib(server.pid))
                time.sleep(0.2)

        def ask_q1() -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                while not done.is_set():
                    started = time.perf_counter()
                    answer = client.post("/graphql", json={"query": Q1})
                    latencies.append(time.perf_counter() - started)
                    if answer.status_code != 200 or "errors" in answer.json():
                        failures.append(answer.text[:200])
                    time.sleep(0.01)

        threads = [threading.Thread(target=sample), threading.Thread(target=ask_q1)]
        rss_start = rss_kib(server.pid)
        for thread in threads:
            thread.start()
        started = time.perf_counter()
        with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
            posted = client.post(
                "/imports/leads",
                content=pieces(path),
                headers={"Content-Type": "text/csv"},
            )
            assert posted.status_code == 202, posted.text
            uploaded = time.perf_counter()
            job_id = posted.json()["id"]
            while True:
                answer = client.post("/graphql", json={"query": JOB, "variables": {"id": job_id}})
                job: dict[str, Any] = answer.json()["data"]["importJob"]
                if job["status"] not in ("QUEUED", "RUNNING"):
                    break
                time.sleep(0.5)
        ended = time.perf_counter()
        done.set()
        for thread in threads:
            thread.join()
        rss_end = rss_kib(server.pid)
        result = {
            "engine": "postgresql" if url.startswith("postgresql") else "sqlite",
            "rows": ROWS,
            "job": job,
            "upload_seconds": round(uploaded - started, 1),
            "total_seconds": round(ended - started, 1),
            "rows_per_second": round(ROWS / (ended - started)),
            "rows_per_second_after_upload": round(ROWS / (ended - uploaded)),
            "rss_mib": {
                "start": round(rss_start[0] / 1024),
                "peak": round(max(s[0] for s in samples) / 1024),
                "end": round(rss_end[0] / 1024),
            },
            "rss_anon_mib": {
                "start": round(rss_start[1] / 1024),
                "peak": round(max(s[1] for s in samples) / 1024),
                "end": round(rss_end[1] / 1024),
            },
            "samples": [round(s[0] / 1024) for s in samples[:: max(1, len(samples) // 20)]],
            "q1_ms": {
                "requests": len(latencies),
                "p50": round(statistics.median(latencies) * 1000, 1),
                "p99": round(percentile(latencies, 0.99) * 1000, 1),
                "max": round(max(latencies) * 1000, 1),
                "failed": len(failures),
            },
        }
        log(json.dumps(result, indent=2))
        (DATA / "imports.json").write_text(json.dumps(result, indent=2) + "\n")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
