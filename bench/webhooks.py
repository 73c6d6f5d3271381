"""Webhook throughput (issue 10): how fast the sender drains a backlog to a local receiver, and
whether its memory stays flat. ``python -m bench.webhooks`` (bench/README.md, "Webhooks").

1. A fresh database (SQLite at bench/.data/webhooks.db, or the PostgreSQL database that
   BENCH_DATABASE_URL names, which must contain "bench"), migrated by the app; an ADMIN API key
   of the Default workspace (the app's CLI path).
2. A receiver in its own process (``python -m bench.webhooks receiver``): a bare asyncio
   HTTP/1.1 server answering 204, keep-alive. It counts deliveries and distinct
   ``webhook-id``s, checks that each record's events arrive in log order, verifies one
   signature in BENCH_HOOKS_VERIFY_EVERY with ``standardwebhooks``, and measures the delay from
   each event's ``occurredAt`` to its arrival.
3. An endpoint to it, made through the GraphQL API (createWebhookEndpoint).
4. For each backlog size (BENCH_HOOKS_SIZES): the server with its sender off
   (WEBHOOK_SENDER=false) takes the writes through the API, createLead then updateLead of the
   same lead (so that records have two events, whose order the sender must keep): the events
   are written by the app itself. Then a fresh ``server.py serve`` with the sender on drains the
   backlog (fan-out, claims, sends, records) while the harness samples the receiver's count and
   the server's RSS and CPU; done when every event's delivery arrived and none is pending.
5. Steady state (BENCH_HOOKS_STEADY_RATE writes a second for BENCH_HOOKS_STEADY_SECONDS): the
   server with its sender on takes the writes at that rate; the delay from write to delivery,
   and the RSS.

The results go to the "Webhooks" section of bench/results.md (its own block, which ``make
bench`` keeps).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench import seed
from bench.harness import DATA, ROOT, Service, _free_port, _git, _loadavg, _safe
from db.engine import Database
from db.models import Event, Role, WebhookDelivery
from db.settings import Settings
from resolvers.auth import create_key_for_workspace

SQLITE_URL = f"sqlite+aiosqlite:///{DATA / 'webhooks.db'}"
RESULTS = ROOT / "bench" / "results.md"
BEGIN = "<!-- begin bench.webhooks -->"
END = "<!-- end bench.webhooks -->"
EVENTS: Any = Event.__table__  # type: ignore[attr-defined]
DELIVERIES: Any = WebhookDelivery.__table__  # type: ignore[attr-defined]

CREATE_ENDPOINT = """
mutation ($url: String!) {
  createWebhookEndpoint(input: {url: $url}) { endpoint { id } secret userErrors { message } }
}
"""
CREATE_LEAD = (
    "mutation ($email: String!) { createLead(input: {email: $email}) "
    "{ lead { id } userErrors { message } } }"
)
UPDATE_LEAD = (
    "mutation ($id: ID!) { updateLead(id: $id, input: {status: CONTACTED, score: 50}) "
    "{ lead { id } userErrors { message } } }"
)


def log(message: str) -> None:
    print(message, flush=True)


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


# ------------------------------------------------------------------ the receiver (own process)


class Tally:
    """What the receiver saw."""

    def __init__(self, secret: str, verify_every: int) -> None:
        from standardwebhooks.webhooks import Webhook

        self.webhook = Webhook(secret)
        self.verify_every = verify_every
        self.received = 0
        self.ids: set[str] = set()
        self.verified = 0
        self.bad_signatures = 0
        self.out_of_order = 0
        self.last_event: dict[str, int] = {}
        self.arrivals: list[float] = []
        self.lags: list[float] = []

    def post(self, headers: dict[str, str], body: bytes) -> None:
        import base64

        import orjson

        now = time.time()
        self.received += 1
        self.arrivals.append(now)
        webhook_id = headers.get("webhook-id", "")
        duplicate = webhook_id in self.ids
        self.ids.add(webhook_id)
        if self.received % self.verify_every == 1 or self.verify_every == 1:
            try:
                self.webhook.verify(body, headers)
                self.verified += 1
            except Exception:
                self.bad_signatures += 1
        data = orjson.loads(body)["data"]
        occurred = datetime.fromisoformat(data["occurredAt"]).timestamp()
        self.lags.append(now - occurred)
        event = int(base64.b64decode(data["id"]).decode().partition(":")[2])
        record = data["recordId"]
        if not duplicate:
            if event < self.last_event.get(record, 0):
                self.out_of_order += 1
            self.last_event[record] = max(event, self.last_event.get(record, 0))

    def stats(self, since: int) -> dict[str, Any]:
        lags = sorted(self.lags[since:])

        def pct(p: float) -> float | None:
            return lags[min(len(lags) - 1, int(p * len(lags)))] if lags else None

        return {
            "received": self.received,
            "distinct": len(self.ids),
            "verified": self.verified,
            "bad_signatures": self.bad_signatures,
            "out_of_order": self.out_of_order,
            # When the delivery number ``since`` (from 0) arrived, and the last one.
            "since_at": self.arrivals[since] if since < len(self.arrivals) else None,
            "last_at": self.arrivals[-1] if self.arrivals else None,
            "lag_p50": pct(0.5),
            "lag_p99": pct(0.99),
            "lag_max": lags[-1] if lags else None,
        }


class Hook(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, just enough for the sender's POSTs and the harness's GETs."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            method, target = head[0].split(" ")[:2]
            assert self.transport is not None
            if method == "POST":
                self.tally.post(headers, body)
                self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            else:
                since = int(target.partition("since=")[2] or 0)
                answer = json.dumps(self.tally.stats(since)).encode()
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                    + str(len(answer)).encode()
                    + b"\r\n\r\n"
                    + answer
                )


async def receive(port: int, secret: str, verify_every: int) -> None:
    tally = Tally(secret, verify_every)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Hook(tally), "127.0.0.1", port, backlog=512)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


# ------------------------------------------------------------------ processes


@contextmanager
def process(name: str, command: list[str], env: dict[str, str], ready: str) -> Iterator[Service]:
    """A process we start, ready once ``ready`` answers below 500; stopped by its own pid."""
    port = int(env.get("PORT", "0"))
    log_file = (DATA / f"hooks-{name}.log").open("ab")
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "LOG_LEVEL": "warning", "GRAPHIQL": "false", **env},
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    running = Service(name, proc, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode}: see {log_file.name}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{running.url}{ready}", timeout=2).status_code < 500:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not become ready in 120 s")
            time.sleep(0.1)
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()


def server(database_url: str, sender: bool, **extra: str) -> Any:
    port = _free_port()
    env = {
        "DATABASE_URL": database_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "1",
        "WEBHOOK_SENDER": "true" if sender else "false",
        "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
        **extra,
    }
    return process(
        "server" if sender else "writer",
        [sys.executable, "server.py", "serve"],
        env,
        "/healthz",
    )


# ------------------------------------------------------------------ database


async def fresh_database(url: str) -> None:
    if make_url(url).get_backend_name() == "sqlite":
        path = seed.sqlite_path(url)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        import asyncpg

        target = make_url(url)
        name = target.database or ""
        if "bench" not in name:
            raise SystemExit(f"BENCH_DATABASE_URL names {name!r}: it must contain 'bench'")
        dsn = target.set(drivername="postgresql", database="postgres")
        admin = await asyncpg.connect(dsn.render_as_string(hide_password=False))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
    await seed.migrate_fresh(url)


def _database(url: str) -> Database:
    return Database(url, Settings(database_url=url, _env_file=None))  # type: ignore[call-arg]


async def admin_key(url: str) -> str:
    db = _database(url)
    try:
        secret, _, _ = await create_key_for_workspace(db, "Default", Role.ADMIN, "bench-hooks")
    finally:
        await db.dispose()
    return secret


async def queue_counts(url: str) -> dict[str, int]:
    """Events in the log, and deliveries by status."""
    db = _database(url)
    try:
        async with db.read() as conn:
            n_events = (await conn.execute(select(func.count()).select_from(EVENTS))).scalar_one()
            by_status = (
                await conn.execute(
                    select(DELIVERIES.c.status, func.count()).group_by(DELIVERIES.c.status)
                )
            ).all()
    finally:
        await db.dispose()
    return {"events": n_events, **{str(s): int(n) for s, n in by_status}}


# ------------------------------------------------------------------ writes through the API


@dataclass
class Writer:
    """createLead then updateLead of the same lead, through the API, by ``connections``
    concurrent clients; at ``rate`` writes a second, or as fast as it goes."""

    url: str
    key: str
    connections: int
    tag: str
    written: int = 0
    errors: list[str] = field(default_factory=list)

    async def run(self, writes: int, rate: float | None = None) -> float:
        pairs = writes // 2
        started = time.monotonic()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(pairs):
            queue.put_nowait(i)
        limits = httpx.Limits(max_connections=self.connections)
        headers = {"Authorization": f"Bearer {self.key}"}
        async with httpx.AsyncClient(
            base_url=self.url, limits=limits, headers=headers, timeout=60
        ) as http:

            async def post(query: str, variables: dict[str, Any]) -> Any:
                response = await http.post(
                    "/graphql", json={"query": query, "variables": variables}
                )
                body = response.json()
                if response.status_code != 200 or "errors" in body:
                    raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
                payload = next(iter(body["data"].values()))
                if payload["userErrors"]:
                    raise RuntimeError(str(payload["userErrors"]))
                self.written += 1
                return payload

            async def worker() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    if rate is not None:
                        due = started + i * 2 / rate
                        if (wait := due - time.monotonic()) > 0:
                            await asyncio.sleep(wait)
                    try:
                        created = await post(CREATE_LEAD, {"email": f"{self.tag}-{i}@example.com"})
                        await post(UPDATE_LEAD, {"id": created["lead"]["id"]})
                    except Exception as exc:
                        self.errors.append(str(exc))

            await asyncio.gather(*(worker() for _ in range(self.connections)))
        if self.errors:
            raise SystemExit(f"{len(self.errors)} writes failed, first: {self.errors[0]}")
        return time.monotonic() - started


def graphql(url: str, key: str, query: str, variables: dict[str, Any]) -> Any:
    response = httpx.post(
        f"{url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, response.text
    return body["data"]


# ------------------------------------------------------------------ measuring


def receiver_stats(url: str, since: int = 0) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/stats?since={since}", timeout=10).json())


@dataclass
class Sample:
    at: float  # seconds since the server was ready
    received: int
    rss_kib: int
    anon_kib: int
    cpu_s: float


@dataclass
class Drain:
    backlog: int
    produce_s: float
    produce_rate: float
    ready_to_first_s: float
    seconds: float  # first delivery to last
    rate: float
    cpu_ms_per_delivery: float
    samples: list[Sample]
    counts: dict[str, int]
    stats: dict[str, Any]

    def anon_at(self, fractions: tuple[float, ...]) -> list[int]:
        """RssAnon (KiB) at the first sample with each fraction of the backlog delivered."""
        base = self.samples[0].received
        return [
            next(
                (s.anon_kib for s in self.samples if s.received - base >= f * self.backlog),
                self.samples[-1].anon_kib,
            )
            for f in fractions
        ]

    def rss(self) -> tuple[int, int, int]:
        """Start (when ready), peak and end VmRSS, KiB."""
        values = [s.rss_kib for s in self.samples]
        return values[0], max(values), values[-1]


def sample(svc: Service, receiver: str, ready_at: float) -> Sample:
    memory = svc.memory_kib()
    stats = receiver_stats(receiver, since=1 << 62)
    return Sample(
        time.monotonic() - ready_at,
        int(stats["received"]),
        memory["VmRSS"],
        memory.get("RssAnon", 0),
        svc.cpu_seconds(),
    )


@contextmanager
def profiled(pid: int) -> Iterator[None]:
    """py-spy on ``pid`` for the block, when BENCH_HOOKS_PYSPY names its output (raw format:
    one line per stack and its count)."""
    out = os.environ.get("BENCH_HOOKS_PYSPY")
    if not out:
        yield
        return
    spy = Path(sys.executable).parent / "py-spy"
    command = [str(spy), "record", "-p", str(pid), "-r", "200", "-f", "raw", "-o", out]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def drain(
    url: str, receiver: str, expected: int, extra: dict[str, str], limit: float
) -> tuple[list[Sample], dict[str, Any], float, float]:
    """Starts the sender on the backlog; samples until ``expected`` deliveries arrived in
    all. (samples, receiver's stats, seconds from ready to the first delivery, CPU seconds
    between the first and the last)."""
    before = receiver_stats(receiver)
    samples: list[Sample] = []
    with server(url, sender=True, **extra) as svc, profiled(svc.pid):
        ready_at = time.monotonic()
        first_cpu: float | None = None
        first_at: float | None = None
        progress_at = 0.0
        while True:
            s = sample(svc, receiver, ready_at)
            samples.append(s)
            if first_cpu is None and s.received > before["received"]:
                first_cpu, first_at = s.cpu_s, s.at
            if s.received - before["received"] >= expected:
                break
            if len(samples) < 2 or s.received > samples[-2].received:
                progress_at = s.at
            elif s.at - progress_at > 60:
                raise SystemExit(f"drain: no delivery for 60 s; see {DATA}/hooks-server.log")
            if s.at > limit:
                raise SystemExit(
                    f"drain: {s.received - before['received']} of {expected} in {limit:g} s"
                )
            time.sleep(0.25)
        stats = receiver_stats(receiver)
        # Let the last results be recorded before the server stops.
        time.sleep(1.5)
        samples.append(sample(svc, receiver, ready_at))
    cpu = samples[-2].cpu_s - (first_cpu or 0.0)
    return samples, stats, first_at or 0.0, cpu


def measure_backlog(
    url: str, key: str, receiver: str, size: int, connections: int, extra: dict[str, str]
) -> Drain:
    with server(url, sender=False) as writer_svc:
        writer = Writer(writer_svc.url, key, connections, f"b{size}-{time.time_ns()}")
        log(f"  writing {size:,} events through the API (sender off) …")
        produce_s = asyncio.run(writer.run(size))
    log(f"  {writer.written:,} writes in {produce_s:.1f} s ({writer.written / produce_s:.0f}/s)")
    before = receiver_stats(receiver)
    log("  draining with server.py serve (sender on) …")
    samples, stats, to_first, cpu = drain(url, receiver, writer.written, extra, limit=1800)
    counts = asyncio.run(queue_counts(url))
    got = stats["received"] - before["received"]
    seconds = stats["last_at"] - receiver_stats(receiver, before["received"])["since_at"]
    rate = (got - 1) / seconds if seconds > 0 else float("nan")
    result = Drain(
        backlog=writer.written,
        produce_s=produce_s,
        produce_rate=writer.written / produce_s,
        ready_to_first_s=to_first,
        seconds=seconds,
        rate=rate,
        cpu_ms_per_delivery=cpu * 1000 / got,
        samples=samples,
        counts=counts,
        stats=stats,
    )
    start, peak, end = result.rss()
    log(
        f"  {got:,} deliveries in {seconds:.1f} s: {rate:,.0f}/s, "
        f"{result.cpu_ms_per_delivery:.2f} ms CPU each; RSS start {start / 1024:.0f} MiB, "
        f"peak {peak / 1024:.0f}, end {end / 1024:.0f}; queue {counts}"
    )
    return result


@dataclass
class Steady:
    rate: float
    seconds: float
    delivered: int
    lag_p50: float
    lag_p99: float
    lag_max: float
    rss_start: int
    rss_peak: int
    rss_end: int
    cpu_ms_per_delivery: float


def steady(
    url: str,
    key: str,
    receiver: str,
    rate: float,
    seconds: float,
    connections: int,
    extra: dict[str, str],
) -> Steady:
    before = receiver_stats(receiver)
    with server(url, sender=True, **extra) as svc:
        ready_at = time.monotonic()
        writer = Writer(svc.url, key, connections, f"s{time.time_ns()}")
        samples: list[Sample] = [sample(svc, receiver, ready_at)]
        stop = False

        def sampler() -> None:
            while not stop:
                time.sleep(0.5)
                samples.append(sample(svc, receiver, ready_at))

        import threading

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        writes = int(rate * seconds)
        log(f"  {writes:,} writes at {rate:g}/s …")
        took = asyncio.run(writer.run(writes, rate))
        deadline = time.monotonic() + 60
        while receiver_stats(receiver)["received"] - before["received"] < writer.written:
            if time.monotonic() > deadline:
                raise SystemExit("steady: deliveries still missing 60 s after the writes")
            time.sleep(0.2)
        stop = True
        thread.join()
        stats = receiver_stats(receiver, since=before["received"])
    rss = [s.rss_kib for s in samples]
    delivered = stats["received"] - before["received"]
    result = Steady(
        rate=writer.written / took,
        seconds=took,
        delivered=delivered,
        lag_p50=stats["lag_p50"],
        lag_p99=stats["lag_p99"],
        lag_max=stats["lag_max"],
        rss_start=rss[0],
        rss_peak=max(rss),
        rss_end=rss[-1],
        cpu_ms_per_delivery=(samples[-1].cpu_s - samples[0].cpu_s) * 1000 / max(1, delivered),
    )
    log(
        f"  {delivered:,} deliveries at {result.rate:.0f} writes/s: delay p50 "
        f"{result.lag_p50 * 1000:.0f} ms, p99 {result.lag_p99 * 1000:.0f} ms, max "
        f"{result.lag_max * 1000:.0f} ms; RSS {result.rss_start / 1024:.0f} → peak "
        f"{result.rss_peak / 1024:.0f} → {result.rss_end / 1024:.0f} MiB"
    )
    return result


# ------------------------------------------------------------------ report


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f}"


def markdown(
    url: str,
    drains: list[Drain],
    steady_run: Steady | None,
    final: dict[str, Any],
    settings: dict[str, str],
    load: tuple[str, str],
) -> str:
    engine = "SQLite" if make_url(url).get_backend_name() == "sqlite" else "PostgreSQL"
    lines = [
        f"### {engine}",
        "",
        f"`python -m bench.webhooks` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, code "
        f"{_git('rev-parse', '--short', 'HEAD')}; {os.cpu_count()} CPUs; load average before "
        f"{load[0]}, after {load[1]}; sender settings: "
        + (", ".join(f"{k}={v}" for k, v in settings.items()) or "the defaults")
        + ".",
        "",
        "| backlog (events) | writing it (API, sender off) | drain: deliveries/s | drain time "
        "| CPU ms per delivery | RSS start / peak / end (MiB) | anon start / peak / end "
        "| anon at 25 / 50 / 75 / 100 % delivered |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for d in drains:
        start, peak, end = d.rss()
        anon = [s.anon_kib for s in d.samples]
        lines.append(
            f"| {d.backlog:,} | {d.produce_s:.0f} s ({d.produce_rate:.0f}/s) | **{d.rate:,.0f}** "
            f"| {d.seconds:.1f} s | {d.cpu_ms_per_delivery:.2f} | {_mib(start)} / {_mib(peak)} / "
            f"{_mib(end)} | {_mib(anon[0])} / {_mib(max(anon))} / {_mib(anon[-1])} "
            f"| {' / '.join(_mib(a) for a in d.anon_at((0.25, 0.5, 0.75, 1.0)))} |"
        )
    if steady_run is not None:
        s = steady_run
        lines += [
            "",
            f"Steady state: {s.delivered:,} deliveries while writes arrived at {s.rate:.0f}/s "
            f"for {s.seconds:.0f} s; write-to-arrival delay p50 {s.lag_p50 * 1000:.0f} ms, "
            f"p99 {s.lag_p99 * 1000:.0f} ms, max {s.lag_max * 1000:.0f} ms; CPU "
            f"{s.cpu_ms_per_delivery:.2f} ms per delivery (the API's writes included); RSS "
            f"{_mib(s.rss_start)} → peak {_mib(s.rss_peak)} → {_mib(s.rss_end)} MiB.",
        ]
    lines += [
        "",
        f"The receiver: {final['received']:,} requests, {final['distinct']:,} distinct "
        f"webhook-ids, {final['verified']:,} signatures verified with standardwebhooks "
        f"({final['bad_signatures']} bad), {final['out_of_order']} events out of their "
        f"record's order.",
        "",
    ]
    return "\n".join(lines)


def write_results(engine_section: str, engine: str) -> None:
    """Replaces this engine's part of the Webhooks block of bench/results.md (the rest of the
    file, and the other engine's part, stay as they are)."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    parts: dict[str, str] = {}
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        block, _, tail = rest.partition(END)
        for chunk in block.split("\n### ")[1:]:
            name = chunk.split("\n", 1)[0].strip()
            parts[name] = "### " + chunk.rstrip() + "\n"
        text = head.rstrip() + "\n" + tail.lstrip("\n")
    parts[engine] = engine_section.rstrip() + "\n"
    block = "\n".join(
        [
            BEGIN,
            "## Webhooks (issue 10)",
            "",
            "Throughput of the webhook sender to a receiver on 127.0.0.1 (`python -m "
            "bench.webhooks`, bench/README.md): a backlog of createLead + updateLead events "
            "written through the API with the sender off, then drained by a fresh `server.py "
            "serve`; deliveries/s from the first delivery to the last; RSS of that process "
            "(VmRSS, and RssAnon: its heap). Target: ≥ 500 deliveries/s on SQLite, flat memory.",
            "",
            *(parts[name] for name in sorted(parts, key=lambda n: n != "SQLite")),
            END,
        ]
    )
    RESULTS.write_text(text.rstrip() + "\n\n" + block + "\n")


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks")
    sub = parser.add_subparsers(dest="command")
    rec = sub.add_parser("receiver")
    rec.add_argument("--port", type=int, required=True)
    rec.add_argument("--secret", required=True)
    rec.add_argument("--verify-every", type=int, default=50)
    args = parser.parse_args(argv)
    if args.command == "receiver":
        asyncio.run(receive(args.port, args.secret, args.verify_every))
        return 0

    url = _env("BENCH_DATABASE_URL", SQLITE_URL)
    sizes = [int(x) for x in _env("BENCH_HOOKS_SIZES", "5000,20000").split(",") if x.strip()]
    rate = float(_env("BENCH_HOOKS_STEADY_RATE", "100"))
    steady_seconds = float(_env("BENCH_HOOKS_STEADY_SECONDS", "30"))
    connections = int(_env("BENCH_HOOKS_CONNECTIONS", "8"))
    verify_every = int(_env("BENCH_HOOKS_VERIFY_EVERY", "50"))
    # The sender's settings, passed on to the server when set (WEBHOOK_BATCH_SIZE, ...).
    extra = {
        k: v
        for k, v in os.environ.items()
        if k.startswith("WEBHOOK_") and k not in ("WEBHOOK_SENDER", "WEBHOOK_ALLOW_PRIVATE_URLS")
    }
    DATA.mkdir(parents=True, exist_ok=True)
    load_before = _loadavg()
    log(f"Webhook throughput on {_safe(url)}: backlogs {sizes}, load average {load_before}")
    asyncio.run(fresh_database(url))
    key = asyncio.run(admin_key(url))
    port = _free_port()
    hook_url = f"http://127.0.0.1:{port}/hook"
    with server(url, sender=False) as writer_svc:
        created = graphql(writer_svc.url, key, CREATE_ENDPOINT, {"url": hook_url})
    created = created["createWebhookEndpoint"]
    assert not created["userErrors"], created
    drains: list[Drain] = []
    steady_run: Steady | None = None
    command = [
        sys.executable,
        "-m",
        "bench.webhooks",
        "receiver",
        "--port",
        str(port),
        "--secret",
        created["secret"],
        "--verify-every",
        str(verify_every),
    ]
    with process("receiver", command, {"PORT": str(port)}, "/stats") as receiver:
        for size in sizes:
            log(f"Backlog of {size:,} events:")
            drains.append(measure_backlog(url, key, receiver.url, size, connections, extra))
        if rate > 0 and steady_seconds > 0:
            log(f"Steady state, {rate:g} writes/s for {steady_seconds:g} s:")
            steady_run = steady(url, key, receiver.url, rate, steady_seconds, connections, extra)
        final = receiver_stats(receiver.url)
    counts = asyncio.run(queue_counts(url))
    log(f"Receiver: {final}; queue: {counts}")
    problems = []
    if final["bad_signatures"]:
        problems.append(f"{final['bad_signatures']} bad signatures")
    if final["out_of_order"]:
        problems.append(f"{final['out_of_order']} events out of order")
    if final["distinct"] < counts["events"]:
        problems.append(f"{counts['events'] - final['distinct']} events never delivered")
    if counts.get("PENDING") or counts.get("FAILED"):
        problems.append(f"deliveries left: {counts}")
    section = markdown(url, drains, steady_run, final, extra, (load_before, _loadavg()))
    engine = "SQLite" if make_url(url).get_backend_name() == "sqlite" else "PostgreSQL"
    if _env("BENCH_HOOKS_WRITE_RESULTS", "1") == "1":
        write_results(section, engine)
        log(f"Wrote the {engine} part of the Webhooks section of {RESULTS.relative_to(ROOT)}.")
    print(section)
    if problems:
        log("PROBLEMS: " + "; ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
