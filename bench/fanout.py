"""The fan-out benchmark (issue 10): many live subscribers, writes at a fixed rate, the time from
a change's commit to its arrival at each subscriber, and the server's memory over the run.

    make bench-fanout                      # 1,000 subscribers, 50 writes/s, 5 minutes, SQLite
    FANOUT_SECONDS=30 FANOUT_RATE=5,10,20,50 make bench-fanout   # where p99 crosses 250 ms

For each side (FANOUT_SIDES: ``server``, the server as `server.py serve` runs it, with
FANOUT_WORKERS workers; ``floor``, bench/fanout_floor.py, bare uvicorn WebSockets with no GraphQL
and no database) on a fresh database (FANOUT_DATABASE_URL; SQLite at bench/.data/fanout.db by
default, a PostgreSQL URL names a database that is dropped and made again: its name must contain
``bench``): bench/fanout/fanout.mjs opens FANOUT_SUBSCRIBERS graphql-transport-ws connections,
each subscribed to every event of the workspace, then runs createLead FANOUT_RATE times a second
(a list: one run each, each with a fresh process)
for FANOUT_WARMUP + FANOUT_SECONDS seconds. The latency of a delivery is its arrival time minus
the event's occurredAt, which the writing transaction takes just before it commits: one clock,
this machine's. Meanwhile the harness samples the side's RSS (all its processes) every second.
The results go to the terminal and to bench/results.md, in a section of their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bench import report
from bench.harness import DATA, ROOT, Launch, Service, _tree, log, service
from db.engine import Database
from db.models import Role
from db.settings import Settings
from resolvers.auth import create_key_for_workspace

CLIENT = ROOT / "bench" / "fanout" / "fanout.mjs"


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class Config:
    database_url: str
    subscribers: int
    rates: tuple[float, ...]
    seconds: float
    warmup: float
    workers: int
    sides: tuple[str, ...]
    results: Path

    @classmethod
    def from_env(cls) -> Config:
        return cls(
            database_url=_env("FANOUT_DATABASE_URL", f"sqlite+aiosqlite:///{DATA / 'fanout.db'}"),
            subscribers=int(_env("FANOUT_SUBSCRIBERS", "1000")),
            rates=tuple(float(r) for r in _env("FANOUT_RATE", "50").split(",") if r.strip()),
            seconds=float(_env("FANOUT_SECONDS", "300")),
            warmup=float(_env("FANOUT_WARMUP", "10")),
            workers=int(_env("FANOUT_WORKERS", "1")),
            sides=tuple(s.strip() for s in _env("FANOUT_SIDES", "server,floor").split(",")),
            results=Path(_env("BENCH_RESULTS", str(ROOT / "bench" / "results.md"))),
        )

    @property
    def engine(self) -> str:
        return (
            "sqlite" if make_url(self.database_url).get_backend_name() == "sqlite" else "postgresql"
        )


def fresh_database(cfg: Config) -> str:
    """An empty, migrated database and an OWNER key of its Default workspace."""
    url = make_url(cfg.database_url)
    if cfg.engine == "sqlite":
        assert url.database
        for suffix in ("", "-wal", "-shm"):
            Path(url.database + suffix).unlink(missing_ok=True)
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    else:
        name = url.database or ""
        if "bench" not in name:
            raise SystemExit(f"FANOUT_DATABASE_URL: the database {name!r} must contain 'bench'")
        admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
        for sql in (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'):
            subprocess.run(["psql", admin, "-qc", sql], check=True)
    env = {**os.environ, "DATABASE_URL": cfg.database_url, "LOG_LEVEL": "warning"}
    subprocess.run([sys.executable, "server.py", "migrate"], cwd=ROOT, env=env, check=True)

    async def key() -> str:
        db = Database(cfg.database_url, Settings(database_url=cfg.database_url))
        try:
            secret, _, _ = await create_key_for_workspace(db, "Default", Role.OWNER, "fanout")
            return secret
        finally:
            await db.dispose()

    return asyncio.run(key())


def _rss_kib(pid: int) -> int:
    total = 0
    for member in _tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def drive(side: Service, cfg: Config, token: str, rate: float) -> dict[str, Any]:
    """Runs the client against ``side``; its JSON, the side's RSS samples (KiB, one a second)
    and CPU seconds."""
    samples: list[int] = []
    cpu: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            samples.append(_rss_kib(side.pid))
            cpu.append(side.cpu_seconds())

    spec = {
        "token": token,
        "subscribers": cfg.subscribers,
        "rate": rate,
        "seconds": cfg.seconds,
        "warmup": cfg.warmup,
    }
    ws_url = side.url.replace("http://", "ws://") + "/graphql"
    cpu_before = side.cpu_seconds()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started_at = time.monotonic()
    try:
        out = subprocess.run(
            ["node", str(CLIENT), ws_url, f"{side.url}/graphql", json.dumps(spec)],
            capture_output=True,
            text=True,
            check=True,
            timeout=cfg.warmup + cfg.seconds + 600,
        )
    finally:
        done.set()
        sampler.join()
    result: dict[str, Any] = json.loads(out.stdout)
    result["wall"] = time.monotonic() - started_at
    result["cpu"] = side.cpu_seconds() - cpu_before
    result["rss"] = samples
    result["cpu_samples"] = cpu
    return result


def _mib(kib: float) -> str:
    return f"{kib / 1024:.0f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def rss_summary(samples: list[int], cfg: Config) -> dict[str, Any]:
    """RSS when the writes start (after the warm-up), its peak and its end; the growth per
    minute of the measured part and of its second half (least squares over the samples: a
    server that only warms up its caches grows in the first half and not in the second), and
    its RSS at the end of each minute."""
    skip = int(cfg.warmup) + 2
    measured = samples[skip:] or samples

    def per_minute(part: list[int]) -> float:
        if len(part) < 2:
            return 0.0
        return statistics.linear_regression(range(len(part)), part).slope * 60

    return {
        "start": measured[0],
        "peak": max(measured),
        "end": measured[-1],
        "per_minute": per_minute(measured),
        "second_half_per_minute": per_minute(measured[len(measured) // 2 :]),
        "minutes": measured[59::60],
    }


def measured_cpu(result: dict[str, Any], cfg: Config) -> float:
    """CPU seconds per second of the side while the writes are measured (the samples of the
    measured part: after connecting and the warm-up, before the drain)."""
    cpu = result["cpu_samples"]
    start = min(len(cpu) - 1, int(result["openSeconds"]) + 2 + int(cfg.warmup))
    end = min(len(cpu) - 1, start + int(cfg.seconds) - 1)
    return (cpu[end] - cpu[start]) / max(1, end - start)


def section(cfg: Config, runs: dict[str, dict[str, Any]]) -> str:
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rates = ", ".join(f"{r:g}" for r in cfg.rates)
    lines = [
        f"## Fan-out: live subscribers, {cfg.engine}, {cfg.seconds:g} s, "
        f"{cfg.workers} worker{'s' if cfg.workers > 1 else ''} (issue 10)",
        "",
        f"{date}, `make bench-fanout`: {cfg.subscribers:,} subscribers (one "
        "graphql-transport-ws connection each, every event of the workspace, the event's "
        f"`record` included), createLead at {rates} per second for {cfg.seconds:g} s after "
        f"{cfg.warmup:g} s of warm-up, {cfg.workers} worker(s). Latency: arrival at the "
        "subscriber minus the event's occurredAt (taken just before the commit). Target: p99 "
        "< 250 ms, RSS flat. The floor: bench/fanout_floor.py (uvicorn's WebSockets sending "
        "one prepared message to every subscriber per write, no GraphQL, no database).",
        "",
        "| side | writes/s | deliveries/s | missing | p50 ms | p90 ms | p99 ms | max ms "
        "| worst 10 s p99 ms | CPU s/s (measured part) | µs CPU / delivery "
        "| RSS start → peak → end MiB | RSS MiB/min (2nd half) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    by_minute: list[str] = []
    for name, r in runs.items():
        lat = r["latency"]
        worst = max((w["p99"] or 0 for w in r["windows"]), default=None)
        rss = rss_summary(r["rss"], cfg)
        cpu = measured_cpu(r, cfg)
        per_s = r["delivered"] / cfg.seconds
        lines.append(
            f"| {name.split('@')[0]} | {r['rate']:g} | {per_s:,.0f} | {r['missing']:,} "
            f"| {_ms(lat['p50'])} | {_ms(lat['p90'])} | {_ms(lat['p99'])} | {_ms(lat['max'])} "
            f"| {_ms(worst)} | {cpu:.2f} | {cpu / per_s * 1e6 if per_s else 0:,.0f} "
            f"| {_mib(rss['start'])} → {_mib(rss['peak'])} → {_mib(rss['end'])} "
            f"| {rss['per_minute'] / 1024:+.1f} ({rss['second_half_per_minute'] / 1024:+.1f}) |"
        )
        if rss["minutes"]:
            minutes = ", ".join(_mib(kib) for kib in rss["minutes"])
            by_minute.append(f"{name.split('@')[0]} at {r['rate']:g} writes/s: {minutes}")
    if by_minute:
        lines += ["", "RSS at the end of each minute, MiB: " + "; ".join(by_minute) + "."]
    return "\n".join(lines) + "\n"


def main() -> int:
    cfg = Config.from_env()
    DATA.mkdir(parents=True, exist_ok=True)
    commands: dict[str, Callable[[int], list[str]]] = {
        "server": lambda port: [sys.executable, "server.py", "serve"],
        "floor": lambda port: [sys.executable, "-m", "bench.fanout_floor", "--port", str(port)],
    }
    runs: dict[str, dict[str, Any]] = {}
    for name in cfg.sides:
        if name not in commands:
            raise SystemExit(f"FANOUT_SIDES: unknown side {name!r} (server, floor)")
        token = fresh_database(cfg)
        for rate in cfg.rates:
            log(
                f"fan-out: {name}, {cfg.subscribers} subscribers, {rate:g} writes/s, "
                f"{cfg.seconds:g} s"
            )
            # A fresh process for each rate: its memory is the run's own.
            launch = Launch(commands[name], {"WORKERS": str(cfg.workers)})
            with service(f"fanout-{name}", launch, cfg) as side:
                runs[f"{name}@{rate:g}"] = result = drive(side, cfg, token, rate)
            (DATA / f"fanout-{name}-{rate:g}-{cfg.engine}.json").write_text(json.dumps(result))
            log(
                f"  p99 {_ms(result['latency']['p99'])} ms, missing {result['missing']}, "
                f"closes {result['closes']}, errors {result['errors'][:2]}, "
                f"CPU {measured_cpu(result, cfg):.2f} s/s"
            )
    text = section(cfg, runs)
    print(text)
    old = cfg.results.read_text() if cfg.results.exists() else "# Benchmark results\n"
    cfg.results.write_text(
        report.with_block(old, f"bench.fanout-{cfg.engine}-{cfg.seconds:g}s-w{cfg.workers}", text)
    )
    log(f"Wrote the fan-out section of {cfg.results}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
