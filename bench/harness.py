"""The benchmark run, end to end, once per database engine: seed, prepare, count statements,
check, drive in interleaved rounds, report.

For each engine (PostgreSQL and SQLite by default, or the one BENCH_DATABASE_URL names):

1. Seed a fresh database (bench/seed.py) and time it.
2. Create an OWNER API key of the Default workspace (the app's own CLI path) and read the
   fixtures: a cursor half-way through the leads, converted leads for lead(id), and disjoint
   pools of unconverted leads for convertLead (one per side, round and phase).
3. Count SQL statements per request in-process, for the server (server.create_app through
   httpx.ASGITransport) and for the app floor, with a ``before_cursor_execute`` listener; check
   that the count does not grow with the page size.
4. Start every side: the server (``server.py serve``) with 1 worker and with 2 (``WORKERS``), the
   app floor (bench/floor.py), the raw floor (bench/raw.py), the framework floor
   (bench/framework.py: vanilla Strawberry answering from memory), the write floor
   (bench/write_floor.py: vanilla Strawberry whose createLead/convertLead do the raw floor's
   work; Q7 and Q8 only), the server with EVENT_LOG=false (``nolog``: the writes without the
   change-event log; Q7 and Q8 only) and, on PostgreSQL, the PostGraphile peer (bench/peer.py);
   check that
   every side answers every query it has with the same JSON (the peer: the same rows; the
   framework floor: the same shape), and that seeded rows are stored exactly like rows the API
   writes.
5. BENCH_ROUNDS rounds; in each, every query drives every side back to back (a warm-up, then the
   measured run, same load tool and connections; the sides' order rotates from round to round),
   reading each side's CPU time (its whole process tree) over the measured window. Writes use
   fresh values (unique emails, distinct leads) and are checked against the database afterwards.
   Medians over the rounds are reported.
6. One request at a time on one connection (server, raw floor, peer, framework floor), then the
   server's RSS flatness (a fresh server, its RSS after each of BENCH_RSS_REQUESTS requests of
   Q1).

Then one bench/results.md: a section per engine, SQLite against PostgreSQL, and issue 9's targets.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import httpx
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from bench import load, report, seed
from bench.floor import create_floor_app
from bench.framework import QUERIES as FRAMEWORK_QUERIES
from bench.queries import (
    NOLOG,
    NOLOG_QUERIES,
    Fixtures,
    Query,
    leads_with_clients,
    mix,
    with_first,
)
from bench.write_floor import QUERIES as WRITE_QUERIES
from db.engine import Database
from db.models import DEFAULT_WORKSPACE_ID, Client, Lead, Role
from db.repositories import LeadFilterSpec, LeadRepository
from db.repositories.clients import ClientRepository
from db.settings import Settings
from resolvers.auth import create_key_for_workspace
from resolvers.ids import to_global_id
from resolvers.pagination import encode_cursor

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / ".data"
# convertLead pools are sized for this many converts a second per side (more than any does).
WRITE_RATE_CEILING = 3000
LEADS: Any = Lead.__table__  # type: ignore[attr-defined]
CLIENTS: Any = Client.__table__  # type: ignore[attr-defined]
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/leadgraph_bench"
SQLITE_URL = f"sqlite+aiosqlite:///{DATA / 'bench.db'}"
# What `make bench` measures unless BENCH_QUERIES says otherwise: every query but the counts of
# whole tables (Q1+count, Q4+count, Q6+count: the count's SQL, the same on every side).
DEFAULT_QUERIES = ("Q1", "Q2", "Q2+count", "Q3", "Q3+count", "Q4", "Q5", "Q6", "Q7", "Q8")


def log(message: str) -> None:
    print(message, flush=True)


# ------------------------------------------------------------------ configuration


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _engine_urls() -> tuple[str, ...]:
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        return (url,)
    urls = []
    for name in _env("BENCH_ENGINES", "postgresql,sqlite").split(","):
        name = name.strip().lower()
        if name in ("postgresql", "postgres", "pg"):
            urls.append(_env("BENCH_POSTGRES_URL", POSTGRES_URL))
        elif name == "sqlite":
            urls.append(SQLITE_URL)
        elif name:
            raise SystemExit(f"BENCH_ENGINES: unknown engine {name!r} (postgresql, sqlite)")
    if not urls:
        raise SystemExit("BENCH_ENGINES names no engine")
    return tuple(urls)


@dataclass(frozen=True)
class Config:
    n: int
    duration: float
    warmup: float
    connections: int
    database_url: str  # the engine being measured (one of database_urls)
    database_urls: tuple[str, ...]
    tool: str
    rss_requests: tuple[int, ...]
    only: tuple[str, ...]
    reuse_db: bool
    search: str
    results: Path
    seed: int
    rounds: int
    workers: tuple[int, ...]
    peer: str  # auto, off

    @classmethod
    def from_env(cls) -> Config:
        tool = _env("BENCH_LOAD", "auto")
        if tool == "auto":
            tool = "wrk" if load.wrk_path() else "python"
        elif tool == "wrk" and not load.wrk_path():
            raise SystemExit("BENCH_LOAD=wrk but wrk is not installed (apt-get install wrk)")
        rss = _env("BENCH_RSS_REQUESTS", "5000,15000")
        only = _env("BENCH_QUERIES", ",".join(DEFAULT_QUERIES))
        urls = _engine_urls()
        workers = tuple(int(w) for w in _env("BENCH_WORKERS", "1,2").split(",") if w.strip())
        if 1 not in workers:
            raise SystemExit("BENCH_WORKERS must include 1 (the ratios are the one worker's)")
        peer = _env("BENCH_PEER", "auto")
        if peer not in ("auto", "off"):
            raise SystemExit("BENCH_PEER: auto or off")
        return cls(
            n=int(float(_env("BENCH_N", "1000000"))),
            duration=float(_env("BENCH_DURATION", "3")),
            warmup=float(_env("BENCH_WARMUP", "1")),
            connections=int(_env("BENCH_CONNECTIONS", "16")),
            database_url=urls[0],
            database_urls=urls,
            tool=tool,
            rss_requests=tuple(
                sorted(int(x) for x in rss.split(",") if x.strip() not in ("", "0"))
            ),
            only=()
            if only.strip().lower() == "all"
            else tuple(q.strip() for q in only.split(",") if q.strip()),
            reuse_db=_env("BENCH_REUSE_DB", "0") == "1",
            search=_env("BENCH_SEARCH", "summit analytics"),
            results=Path(_env("BENCH_RESULTS", str(ROOT / "bench" / "results.md"))),
            seed=int(_env("BENCH_SEED", "42")),
            rounds=max(1, int(_env("BENCH_ROUNDS", "3"))),
            workers=tuple(sorted(set(workers))),
            peer=peer,
        )

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"

    @property
    def engine(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    def settings(self, *, event_log: bool = True) -> Settings:
        # As the server reads them (environment and .env), on the benchmark's database.
        return Settings(
            database_url=self.database_url,
            log_level="warning",
            graphiql=False,
            event_log=event_log,
        )


def server_side(workers: int) -> str:
    """The side's name: "server" (one worker), "server2" (two), ..."""
    return "server" if workers == 1 else f"server{workers}"


# ------------------------------------------------------------------ the peer (bench/peer.py)


def load_peer(cfg: Config) -> tuple[ModuleType | None, str]:
    """bench.peer on PostgreSQL, when present and installed; else None and why not."""
    if cfg.is_sqlite:
        return None, "PostGraphile runs on PostgreSQL only"
    if cfg.peer == "off":
        return None, "BENCH_PEER=off"
    try:
        peer = importlib.import_module("bench.peer")
    except ImportError as exc:
        return None, f"bench/peer.py is not there ({exc})"
    why: str | None = peer.peer_unavailable(cfg.database_url)
    return (None, why) if why else (peer, "")


# ------------------------------------------------------------------ 1-2: seed and fixtures


def seed_database(cfg: Config) -> float | None:
    """Seeds (unless BENCH_REUSE_DB finds a matching one); the seconds it took, or None."""
    meta = DATA / f"seeded-{cfg.engine}.json"
    wanted = {"n": cfg.n, "url": cfg.database_url, "seed": cfg.seed}
    if cfg.reuse_db and meta.exists() and json.loads(meta.read_text()) == wanted:
        log("Reusing the seeded database (BENCH_REUSE_DB=1).")
        return None
    meta.unlink(missing_ok=True)
    log(f"Seeding {cfg.n:,} leads and {cfg.n // 10:,} clients into {_safe(cfg.database_url)} …")
    started = time.perf_counter()
    plan = seed.plan(cfg.n, seed=cfg.seed)
    seed.check_stamps(plan)
    planned = time.perf_counter()
    asyncio.run(seed.seed(cfg.database_url, plan))
    seconds = time.perf_counter() - started
    log(f"  seeded in {seconds:.1f} s (planning {planned - started:.1f} s)")
    DATA.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps(wanted))
    return seconds


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# The sides whose statements are counted in-process (two requests of each query apiece).
COUNTED = ("server", "floor", NOLOG)


def pool_names(cfg: Config, sides: Sequence[str]) -> dict[str, int]:
    """convertLead pools: two leads per counted side for the statement count, then per side
    and round a warm-up pool and a measured one, sized for WRITE_RATE_CEILING converts a
    second."""
    measure = int(WRITE_RATE_CEILING * cfg.duration)
    warm = int(WRITE_RATE_CEILING * cfg.warmup)
    sizes = {"count": 2 * len(COUNTED)}
    for r in range(cfg.rounds):
        for side in sides:
            sizes[f"{side}-{r}-warm"] = warm
            sizes[f"{side}-{r}"] = measure
    return sizes


async def prepare(cfg: Config, sides: Sequence[str] = ("server", "floor")) -> Fixtures:
    db = Database(cfg.database_url, cfg.settings())
    try:
        secret, workspace, _ = await create_key_for_workspace(db, "Default", Role.OWNER, "bench")
        assert workspace.id == DEFAULT_WORKSPACE_ID, workspace
        ws = LEADS.c.workspace_id == DEFAULT_WORKSPACE_ID
        async with db.read() as conn:
            n_leads = (await conn.execute(select(func.count()).where(ws))).scalar_one()
            n_clients = (await conn.execute(select(func.count()).select_from(CLIENTS))).scalar_one()
            half = (
                await conn.execute(
                    select(LEADS.c.id, LEADS.c.created_at)
                    .where(ws)
                    .order_by(LEADS.c.created_at.desc(), LEADS.c.id.desc())
                    .offset(n_leads // 2)
                    .limit(1)
                )
            ).one()
            converted = (
                (
                    await conn.execute(
                        select(LEADS.c.id)
                        .where(ws, LEADS.c.converted_client_id.is_not(None))
                        .order_by(func.random())
                        .limit(1000)
                    )
                )
                .scalars()
                .all()
            )
            repo = LeadRepository(conn, DEFAULT_WORKSPACE_ID)
            matches = await repo.count(LeadFilterSpec(search=cfg.search))
            sizes = pool_names(cfg, sides)
            # Distinct unconverted leads with both names (a client needs them).
            convertible = (
                (
                    await conn.execute(
                        select(LEADS.c.id)
                        .where(
                            ws,
                            LEADS.c.converted_at.is_(None),
                            LEADS.c.first_name.is_not(None),
                            LEADS.c.last_name.is_not(None),
                        )
                        .order_by(func.random())
                        .limit(sum(sizes.values()))
                    )
                )
                .scalars()
                .all()
            )
    finally:
        await db.dispose()
    if not converted or matches == 0:
        raise SystemExit(f"the seeded data lacks converted leads or matches for {cfg.search!r}")
    counted = sizes["count"]
    scale = min(1.0, (len(convertible) - counted) / (sum(sizes.values()) - counted))
    pools: dict[str, list[str]] = {}
    at = 0
    for name, size in sizes.items():
        take = size if name == "count" else int(size * scale)
        pools[name] = [to_global_id("Lead", pk) for pk in convertible[at : at + take]]
        at += take
    return Fixtures(
        key=secret,
        # Tags what this run writes (emails), so that a reused database never confuses runs.
        run=datetime.now(UTC).strftime("r%H%M%S"),
        leads=n_leads,
        clients=n_clients,
        half_cursor=encode_cursor("CREATED_AT:DESC", half.created_at, half.id),
        converted_ids=[to_global_id("Lead", pk) for pk in converted],
        search=cfg.search,
        search_matches=matches,
        pools=pools,
    )


# ------------------------------------------------------------------ 3: statements per request


def _value_for(query: Query, fx: Fixtures, side: str, run: int) -> str:
    if query.mode == "cycle":
        return fx.converted_ids[0]
    if query.mode == "unique":
        return f"{fx.run}-count-{side}-{run}"
    if query.mode == "once":
        return fx.pools["count"][run * len(COUNTED) + COUNTED.index(side)]
    return ""


async def count_statements(
    app: Starlette, side: str, queries: list[Query], fx: Fixtures
) -> dict[str, list[str]]:
    """The SQL statements one request of each query runs (the fewer of two runs, so that the
    once-a-minute write of the key's last use does not count)."""
    found: dict[str, list[str]] = {}
    recorded: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # As the suite's count_queries fixture: transaction control is not a statement.
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA")):
            recorded.append(" ".join(statement.split()))

    async with app.router.lifespan_context(app):
        db: Database = app.state.db
        engines = [e.sync_engine for e in db.engines]
        for engine in engines:
            event.listen(engine, "before_cursor_execute", record)
        headers = {"Authorization": f"Bearer {fx.key}", "Content-Type": "application/json"}
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
                for query in queries:
                    path = "/graphql" if side in ("server", NOLOG) else query.floor_path
                    for run in range(2):
                        recorded.clear()
                        body = query.body(_value_for(query, fx, side, run))
                        response = await http.post(path, content=body, headers=headers)
                        answer = response.json()
                        if response.status_code != 200 or "errors" in answer:
                            raise SystemExit(f"{side} {query.key}: {response.text[:2000]}")
                        if query.key not in found or len(recorded) < len(found[query.key]):
                            found[query.key] = list(recorded)
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", record)
    return found


def statements(cfg: Config, queries: list[Query], fx: Fixtures) -> report.Statements:
    from server import create_app

    settings = cfg.settings()
    by_page = [
        with_first(q, n) for q in queries if q.key in ("Q1", "Q6") for n in (20, 50, 100)
    ] + [with_first(leads_with_clients(), n) for n in (20, 50, 100)]
    server = asyncio.run(count_statements(create_app(settings), "server", queries + by_page, fx))
    floor = asyncio.run(count_statements(create_floor_app(settings), "floor", queries, fx))
    writes = [q for q in queries if q.key in NOLOG_QUERIES]
    nolog = (
        asyncio.run(count_statements(create_app(cfg.settings(event_log=False)), NOLOG, writes, fx))
        if writes
        else {}
    )
    (DATA / f"statements-{cfg.engine}.json").write_text(
        json.dumps({"server": server, "floor": floor, NOLOG: nolog}, indent=1)
    )
    return report.Statements(
        server={k: len(v) for k, v in server.items()},
        floor={k: len(v) for k, v in floor.items()},
        nolog={k: len(v) for k, v in nolog.items()},
    )


# ------------------------------------------------------------------ 4: the processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """The process and its descendants (uvicorn's workers, a node behind a wrapper)."""
    found = [pid]
    at = 0
    while at < len(found):
        current = found[at]
        at += 1
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            with suppress(FileNotFoundError, ProcessLookupError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _cpu_of(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # utime and stime are fields 14 and 15, after "pid (comm)".
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Service:
    """A server process we started (and only ever stop by its own pid)."""

    name: str
    process: subprocess.Popen[bytes]
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and its parts: RssAnon (the heap) and RssFile (file pages: SQLite's mmap of
        the database counts here, and grows with the part of the file that was read)."""
        found = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                found[name] = int(rest.split()[0])
        return found

    def rss_kib(self) -> int:
        return self.memory_kib()["VmRSS"]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the process and its live descendants: with WORKERS=2,
        the supervisor and both workers."""
        return sum(_cpu_of(pid) for pid in _tree(self.pid))

    def wait_idle(self, limit: float = 300) -> float:
        """Waits until the process is done with requests left from a finished run (a client
        that hangs up does not cancel what the server is doing for it): at most one clock tick
        of CPU in each of three tenths of a second. Returns the seconds waited."""
        started = time.monotonic()
        last, quiet = self.cpu_seconds(), 0
        while quiet < 3 and time.monotonic() - started < limit:
            time.sleep(0.1)
            now = self.cpu_seconds()
            quiet = quiet + 1 if now - last < 0.015 else 0  # at most one 10 ms tick
            last = now
        return time.monotonic() - started


@dataclass(frozen=True)
class Launch:
    """How to start one side: its command (given the port), extra environment, directory, and
    the GET path that answers < 500 once it is ready."""

    command: Callable[[int], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = ROOT
    ready: str = "/healthz"


class Target(Protocol):
    """What ``service`` needs of a run's configuration (Config, bench/fanout.py's Config)."""

    @property
    def database_url(self) -> str: ...

    @property
    def engine(self) -> str: ...


@contextmanager
def service(name: str, launch: Launch | list[str], cfg: Target) -> Iterator[Service]:
    """A side, started and ready; ``launch`` may be a plain command (it gets PORT)."""
    if isinstance(launch, list):
        command = launch
        launch = Launch(lambda port: command)
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": cfg.database_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "warning",
        "GRAPHIQL": "false",
        **launch.env,
    }
    log_file = (DATA / f"{name}-{cfg.engine}.log").open("wb")
    process = subprocess.Popen(
        launch.command(port),
        cwd=launch.cwd,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    running = Service(name, process, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with {process.returncode}: see {log_file.name}")
            try:
                if httpx.get(f"{running.url}{launch.ready}", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not become ready in 120 s: see {log_file.name}")
            time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


def server_launch(workers: int = 1) -> Launch:
    # WORKERS reaches server.py serve through its settings (the environment).
    return Launch(lambda port: [sys.executable, "server.py", "serve"], {"WORKERS": str(workers)})


def nolog_launch() -> Launch:
    """The server (1 worker) with EVENT_LOG=false: its writes append no change events."""
    return Launch(
        lambda port: [sys.executable, "server.py", "serve"], {"WORKERS": "1", "EVENT_LOG": "false"}
    )


def server_command() -> list[str]:
    """The server with the environment's WORKERS (a plain command, for ``service``)."""
    return [sys.executable, "server.py", "serve"]


def floor_launch() -> Launch:
    return Launch(lambda port: [sys.executable, "-m", "bench.floor", "--port", str(port)])


def raw_launch() -> Launch:
    return Launch(lambda port: [sys.executable, "-m", "bench.raw", "--port", str(port)])


def framework_launch() -> Launch:
    return Launch(lambda port: [sys.executable, "-m", "bench.framework", "--port", str(port)])


def write_floor_launch() -> Launch:
    return Launch(lambda port: [sys.executable, "-m", "bench.write_floor", "--port", str(port)])


def peer_launch(peer: ModuleType, cfg: Config) -> Launch:
    # It answers GET /healthz once its schema is built, as the server does.
    return Launch(peer.peer_command, peer.peer_env(cfg.database_url), Path(peer.PEER_DIR))


# ------------------------------------------------------------------ 4b: same answers, same rows

VARYING = {"id", "email", "createdAt", "updatedAt", "convertedAt"}
CHECK_LEAD = (
    "mutation C($input: CreateLeadInput!) { createLead(input: $input) { lead { id } "
    "userErrors { code } } }"
)


def _masked(value: Any) -> Any:
    """Values that differ between two writes by construction (ids, emails, times) masked."""
    if isinstance(value, dict):
        return {
            k: "<varies>" if k in VARYING and v is not None else _masked(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _first_difference(a: Any, b: Any, side: str, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if a.get(k, "<absent>") != b.get(k, "<absent>"):
                return _first_difference(
                    a.get(k, "<absent>"), b.get(k, "<absent>"), side, f"{path}.{k}"
                )
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, side, f"{path}[{i}]")
    return f"{path or '.'}: server {json.dumps(a)[:300]} / {side} {json.dumps(b)[:300]}"


# Sides that answer from memory: their answers have the server's shape, not its values, and
# their writes write nothing.
NO_DATABASE = frozenset({"framework"})


def _shape(value: Any) -> Any:
    """What the framework floor must share with the server: keys and list lengths."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return "leaf"


# query key -> side -> seconds one request took alone (reads: a second, warm request)
Solo = dict[str, dict[str, float]]
# side -> query key -> its load (None: the side does not have the query)
Specs = Callable[[str, Query, tuple[str, ...], str], load.LoadSpec | None]


def check_same_json(
    sides: dict[str, Service],
    spec_for: Specs,
    queries: list[Query],
    fx: Fixtures,
    peer: ModuleType | None,
) -> Solo:
    """Every side answers every query it has with the server's JSON (writes: up to ids, emails
    and times; the peer: the same rows, as ``bench.peer.same_rows`` compares them). Returns how
    long one request of each query takes alone on each side."""
    solo: Solo = {}
    headers = {"Content-Type": "application/json"}
    with httpx.Client(timeout=300, headers=headers) as http:

        def post(side: str, spec: load.LoadSpec, value: str) -> tuple[Any, float]:
            url = f"{sides[side].url}{spec.path}"
            started = time.perf_counter()
            response = http.post(url, content=spec.body(value).encode(), headers=spec.headers)
            seconds = time.perf_counter() - started
            if response.status_code != 200 or "errors" in response.json():
                raise SystemExit(
                    f"{side}: POST {url}: {response.status_code} {response.text[:2000]}"
                )
            return response.json(), seconds

        def same(key: str, side: str, a: Any, b: Any) -> None:
            if side == "peer":
                assert peer is not None
                difference = peer.same_rows(key, a, b)
            elif side in NO_DATABASE:
                shape_a, shape_b = _shape(a), _shape(b)
                difference = (
                    None
                    if shape_a == shape_b
                    else "not the same shape: " + _first_difference(shape_a, shape_b, side)
                )
            else:
                difference = None if a == b else _first_difference(a, b, side)
            if difference:
                (DATA / f"mismatch-{key}-{side}.json").write_text(
                    json.dumps({"server": a, side: b}, indent=1)
                )
                raise SystemExit(
                    f"{side} and the server answer {key} differently ({difference}); both "
                    f"answers are in bench/.data/mismatch-{key}-{side}.json. The floors and the "
                    "peer must mirror the app (the framework floor: its answers' shape)."
                )

        def convertible(side: str) -> str:
            """A fresh lead, alike for every side but for its email (made by the server)."""
            lead = {
                "email": f"{fx.run}-convert-check-{side}@bench.example.com",
                "firstName": "Grace",
                "lastName": "Hopper",
                "company": "Granite Harbor Labs",
                "phone": "+1 212-555-0199",
                "city": "New York",
                "state": "NY",
                "postalCode": "10001",
                "score": 64,
                "metadata": {"utm_campaign": "check"},
            }
            body = json.dumps({"query": CHECK_LEAD, "variables": {"input": lead}})
            spec = load.LoadSpec("/graphql", {"Authorization": f"Bearer {fx.key}"}, body)
            answer, _ = post("server", spec, "")
            return str(answer["data"]["createLead"]["lead"]["id"])

        for q in queries:
            solo[q.key] = {}
            answers: dict[str, Any] = {}
            unmasked: dict[str, Any] = {}
            for side in sides:
                spec = spec_for(side, q, (), "")
                if spec is None:
                    continue
                if q.mode in ("fixed", "cycle"):
                    # cycle: the first of the side's own values (the peer has its own ids).
                    value = spec.values[0] if q.mode == "cycle" else ""
                    answers[side], _ = post(side, spec, value)
                    unmasked[side] = answers[side]
                    _, solo[q.key][side] = post(side, spec, value)
                elif side in NO_DATABASE:
                    value = f"{fx.run}-check-{side}" if q.mode == "unique" else spec.values[0]
                    unmasked[side], solo[q.key][side] = post(side, spec, value)
                    answers[side] = unmasked[side]
                else:
                    value = f"{fx.run}-check-{side}" if q.mode == "unique" else convertible(side)
                    unmasked[side], solo[q.key][side] = post(side, spec, value)
                    answers[side] = _masked(unmasked[side])
                if side == "peer":
                    # bench.peer.same_rows leaves out what differs by construction itself.
                    same(q.key, side, unmasked["server"], unmasked[side])
                elif side in NO_DATABASE:
                    same(q.key, side, unmasked["server"], unmasked[side])
                elif side != "server":
                    same(q.key, side, answers["server"], answers[side])
            log(
                f"  {q.key:<9} same answers on "
                + ", ".join(f"{s} (shape)" if s in NO_DATABASE else s for s in answers)
                + "; one request alone: "
                + ", ".join(f"{s} {t * 1000:.1f} ms" for s, t in solo[q.key].items())
            )
    return solo


async def _storage_forms(conn: Any, table: Any, ids: list[int]) -> dict[int, dict[str, Any]]:
    """SQLite's storage class of every column (and the text length of times), per row."""
    columns = ", ".join(
        f"typeof({c.name}) || ':' || "
        + (f"coalesce(length({c.name}), '')" if c.name.endswith("_at") else "''")
        for c in table.columns
    )
    marks = ", ".join("?" * len(ids))
    raw = await conn.exec_driver_sql(
        f"SELECT id, {columns} FROM {table.name} WHERE id IN ({marks})", tuple(ids)
    )
    return {row[0]: dict(zip(table.columns.keys(), row[1:], strict=True)) for row in raw}


async def check_rows_like_api(cfg: Config, fx: Fixtures) -> list[str]:
    """Seeded rows are stored like rows the API wrote: their derived keys are what the app's
    repositories compute and, on SQLite, every column has the storage class (and every time the
    text form) it has in the rows written by requests so far (createLead, convertLead)."""
    db = Database(cfg.database_url, cfg.settings())
    notes: list[str] = []
    try:
        async with db.read() as conn:
            # Seeded rows have ids up to the counts read before any request wrote a row.
            for table, repository, seeded in (
                (LEADS, LeadRepository, fx.leads),
                (CLIENTS, ClientRepository, fx.clients),
            ):
                repo = repository(conn, DEFAULT_WORKSPACE_ID)
                sample = (
                    await conn.execute(
                        select(table).where(table.c.id <= seeded).order_by(func.random()).limit(500)
                    )
                ).all()
                for row in sample:
                    values = row._asdict()
                    for column, value in repo.derived(values).items():
                        if values[column] != value:
                            raise SystemExit(
                                f"seeded {table.name} {row.id}: {column} is "
                                f"{values[column]!r}, the app computes {value!r}"
                            )
                api_ids = (
                    (await conn.execute(select(table.c.id).where(table.c.id > seeded)))
                    .scalars()
                    .all()
                )
                compared = 0
                if cfg.is_sqlite and api_ids:
                    api = await _storage_forms(conn, table, list(api_ids))
                    ours = await _storage_forms(conn, table, [r.id for r in sample])
                    for column in table.columns.keys():  # noqa: SIM118 (a ColumnCollection)
                        api_forms = {f[column] for f in api.values()} - {"null:"}
                        our_forms = {f[column] for f in ours.values()} - {"null:"}
                        if api_forms and our_forms and api_forms != our_forms:
                            raise SystemExit(
                                f"{table.name}.{column}: rows the API wrote store {api_forms}, "
                                f"seeded rows {our_forms}"
                            )
                        compared += bool(api_forms and our_forms)
                notes.append(
                    f"{table.name}: derived keys of {len(sample)} seeded rows"
                    + (f", storage of {compared} columns" if compared else "")
                )
    finally:
        await db.dispose()
    return notes


# ------------------------------------------------------------------ 5: drive


def _pool(side: str, r: int, phase: str) -> str:
    return f"{side}-{r}" + ("-warm" if phase == "warm" else "")


def _tag(fx: Fixtures, q: Query, side: str, r: int, phase: str) -> str:
    return f"{fx.run}-{q.key.lower()}-{side}-{r}-{'w' if phase == 'warm' else 'm'}-"


def _phase_spec(
    spec_for: Specs, side: str, q: Query, fx: Fixtures, r: int, phase: str
) -> load.LoadSpec | None:
    """The load of one phase ("warm" or "measure") of round ``r``; writes never reuse a value."""
    if q.mode == "once":
        # The sides without a database have no pool (spec_for gives them their values).
        return spec_for(side, q, tuple(fx.pools.get(_pool(side, r, phase), ())), "")
    if q.mode == "unique":
        return spec_for(side, q, (), _tag(fx, q, side, r, phase))
    return spec_for(side, q, (), "")


async def _written(cfg: Config, q: Query, side: str, r: int, fx: Fixtures) -> int:
    """Rows the measured run of a write really changed."""
    db = Database(cfg.database_url, cfg.settings())
    try:
        async with db.read() as conn:
            if q.mode == "unique":
                tag = _tag(fx, q, side, r, "measure")
                stmt = select(func.count()).where(LEADS.c.email.like(f"{tag}%"))
            else:
                pks = _pks(fx.pools[_pool(side, r, "measure")])
                stmt = select(func.count()).where(
                    LEADS.c.id.in_(pks), LEADS.c.converted_at.is_not(None)
                )
            return int((await conn.execute(stmt)).scalar_one())
    finally:
        await db.dispose()


def _pks(global_ids: list[str]) -> list[int]:
    import base64

    return [int(base64.b64decode(g).decode().split(":")[1]) for g in global_ids]


async def settle(cfg: Config) -> int:
    """PostgreSQL: flushes the pending lists of the GIN indexes (the trigram search indexes),
    which the writes of the previous round filled: every search scans its whole pending list
    until it reaches gin_pending_list_limit or autovacuum flushes it (at 20,000 leads a round's
    writes made Q3 several times slower on every side). Each round's reads then start from the
    settled indexes the seed leaves. Returns the pending pages flushed."""
    if cfg.is_sqlite:
        return 0
    db = Database(cfg.database_url, cfg.settings())
    try:
        async with db.write() as conn:
            names = (
                await conn.exec_driver_sql(
                    "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_am a ON a.oid = c.relam "
                    "WHERE a.amname = 'gin' AND c.relkind = 'i'"
                )
            ).scalars()
            flushed = 0
            for name in list(names):
                result = await conn.exec_driver_sql(
                    "SELECT gin_clean_pending_list($1::regclass)", (name,)
                )
                flushed += int(result.scalar_one())
        return flushed
    finally:
        await db.dispose()


# A query slower than this alone gains nothing from a warm-up (the check ran it already) and
# would leave the server busy with its abandoned requests for a long time.
WARMUP_UP_TO = 0.5


def drive_round(
    cfg: Config,
    q: Query,
    r: int,
    sides: dict[str, Service],
    spec_for: Specs,
    fx: Fixtures,
    solo: Solo,
    cells: dict[str, report.Cell],
) -> float:
    """Round ``r`` of one query: every side back to back, in an order that rotates with the
    round. Adds to ``cells``; returns the seconds spent waiting for leftover requests."""
    names = [s for s in sides if _phase_spec(spec_for, s, q, fx, r, "measure") is not None]
    shift = r % len(names) if names else 0
    waited = 0.0
    for side in names[shift:] + names[:shift]:
        target = sides[side]
        warm = _phase_spec(spec_for, side, q, fx, r, "warm")
        measured = _phase_spec(spec_for, side, q, fx, r, "measure")
        assert warm is not None and measured is not None
        # Warm-up in the first round only: later rounds find the side's caches and pools warm.
        if r == 0 and cfg.warmup > 0 and solo[q.key].get(side, 0) < WARMUP_UP_TO:
            load.run(cfg.tool, target.url, warm, cfg.connections, cfg.warmup, DATA)
            waited += target.wait_idle()
        cpu_before = target.cpu_seconds()
        result = load.run(cfg.tool, target.url, measured, cfg.connections, cfg.duration, DATA)
        cpu = target.cpu_seconds() - cpu_before
        waited += target.wait_idle()
        cell = cells.setdefault(side, report.Cell())
        cell.add(result, cpu)
        if q.write and side not in NO_DATABASE:
            cell.written.append(asyncio.run(_written(cfg, q, side, r, fx)))
    return waited


# The latency targets (Q1's p50, Q3's p99, Q4 against Q1, filtered counts) are about how one
# user's page feels. At 16 connections in a closed loop, p50 is ~16 / throughput: queueing, not
# the request. So these also run one request at a time, on the server, the raw floor, the peer
# and the framework floor (what Strawberry on uvicorn takes for the document, with no database).
LATENCY_KEYS = ("Q1", "Q2+count", "Q3", "Q3+count", "Q4")
LATENCY_SIDES = ("server", "raw", "peer", "framework")


def latency(
    cfg: Config, queries: list[Query], sides: dict[str, Service], spec_for: Specs
) -> dict[str, dict[str, load.LoadResult]]:
    """side -> query -> p50/p99 on one connection."""
    out: dict[str, dict[str, load.LoadResult]] = {}
    for q in queries:
        if q.key not in LATENCY_KEYS:
            continue
        for side in LATENCY_SIDES:
            spec = spec_for(side, q, (), "") if side in sides else None
            if spec is None:
                continue
            result = load.run(cfg.tool, sides[side].url, spec, 1, min(cfg.duration, 5), DATA)
            sides[side].wait_idle()
            out.setdefault(side, {})[q.key] = result
            log(f"  {q.key:<10} {side:<9} one connection: {result.rps:.0f} req/s, "
                f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms")  # fmt: skip
    return out


def rss_flatness(cfg: Config, q1: Query, fx: Fixtures) -> list[tuple[int, dict[str, int]]]:
    """(requests served, memory) of a fresh server: at start and at each checkpoint."""
    points: list[tuple[int, dict[str, int]]] = []
    with service("server-rss", server_launch(1), cfg) as server:
        points.append((0, server.memory_kib()))
        done = 0
        for target in cfg.rss_requests:
            result = load.run(
                "python",
                server.url,
                q1.spec("server", fx.key),
                cfg.connections,
                None,
                DATA,
                max_requests=target - done,
            )
            done += result.requests
            if result.errors:
                log(f"  RSS run: {result.errors} errors")
            server.wait_idle()
            points.append((done, server.memory_kib()))
            log(f"  after {done:,} requests of Q1: {report.memory(points[-1][1])} "
                f"({result.rps:.0f} req/s)")  # fmt: skip
    return points


# ------------------------------------------------------------------ the run


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return out.stdout.strip()


def machine(cfg: Config) -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    dirty = " (with uncommitted changes)" if _git("status", "--porcelain") else ""
    return {
        "cpu": cpu,
        "nproc": str(len(os.sched_getaffinity(0))),
        "memory": f"{mem_kib / 1024 / 1024:.0f} GiB",
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "load tool": load.wrk_version()
        if cfg.tool == "wrk"
        else "bundled asyncio client (bench/load.py, uvloop)",
        "commit": (_git("rev-parse", "--short", "HEAD") or "unknown") + dirty,
    }


async def _database_version(cfg: Config) -> str:
    if cfg.is_sqlite:
        return f"SQLite {sqlite3.sqlite_version}"
    db = Database(cfg.database_url, cfg.settings())
    try:
        async with db.read() as conn:
            version = (await conn.exec_driver_sql("SHOW server_version")).scalar_one()
        return f"PostgreSQL {str(version).split()[0]}"
    finally:
        await db.dispose()


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _wanted(cfg: Config, fx: Fixtures) -> list[Query]:
    queries = mix(fx)
    if cfg.only:
        unknown = set(cfg.only) - {q.key for q in queries}
        if unknown:
            raise SystemExit(f"BENCH_QUERIES: unknown {sorted(unknown)} (or 'all')")
        queries = [q for q in queries if q.key in cfg.only]
    return queries


def run_engine(cfg: Config) -> report.EngineRun:
    """Everything for one database engine."""
    log("")
    log(f"=== {cfg.engine}: {_safe(cfg.database_url)} ===")
    peer, peer_note = load_peer(cfg)
    # The sides with a database (each its own convertLead pools; the framework floor has none).
    side_names = [server_side(w) for w in cfg.workers] + [NOLOG, "floor", "raw", "write"]
    if peer is not None:
        side_names.append("peer")
    seeded_in = seed_database(cfg)
    fx = asyncio.run(prepare(cfg, side_names))
    log(
        f"  {fx.leads:,} leads, {fx.clients:,} clients; search {fx.search!r} matches "
        f"{fx.search_matches:,}; convertLead pools {len(fx.pools['server-0']):,} per side "
        "and round"
    )
    queries = _wanted(cfg, fx)
    # The peer's documents point at PostGraphile's own cursors and ids: read from the running
    # peer (bench.peer.peer_fixtures), once it is up.
    peer_queries: dict[str, Any] = {}

    def spec_for(side: str, q: Query, values: tuple[str, ...], tag: str) -> load.LoadSpec | None:
        if side == "peer":
            pq = peer_queries.get(q.key)
            return None if pq is None else pq.spec(fx.key, values=values, tag=tag)
        if side == "write" and q.key not in WRITE_QUERIES:
            return None
        if side == NOLOG and q.key not in NOLOG_QUERIES:
            return None
        if side == "framework":
            if q.key not in FRAMEWORK_QUERIES:
                return None
            if q.mode == "once":
                # It writes nothing: any lead ids will do, round robin.
                spec = q.spec(side, fx.key, values=tuple(fx.converted_ids), tag=tag)
                return replace(spec, mode="cycle")
        return q.spec(side, fx.key, values=values, tag=tag)

    log("Counting SQL statements per request (in-process) …")
    counts = statements(cfg, queries, fx)

    results: dict[str, dict[str, report.Cell]] = {q.key: {} for q in queries}
    rss: dict[str, dict[str, int]] = {}
    launches: dict[str, Launch] = {"server": server_launch(1)}
    if any(q.key in NOLOG_QUERIES for q in queries):
        # Beside the server in the order the rounds rotate, so that the two mostly run back to
        # back (log ÷ nolog is the ratio of two runs under the same load of the machine).
        launches[NOLOG] = nolog_launch()
    launches |= {server_side(w): server_launch(w) for w in cfg.workers if w != 1}
    launches |= {"floor": floor_launch(), "raw": raw_launch(), "framework": framework_launch()}
    if any(q.key in WRITE_QUERIES for q in queries):
        launches["write"] = write_floor_launch()
    if peer is not None:
        launches["peer"] = peer_launch(peer, cfg)
    log(f"Starting {', '.join(launches)} …")
    with ExitStack() as stack:
        sides = {
            name: stack.enter_context(service(name, launch, cfg))
            for name, launch in launches.items()
        }
        if peer is not None:
            peer_queries.update(peer.peer_queries(fx, peer.peer_fixtures(sides["peer"].url, fx)))
            missing = [q.key for q in queries if q.key not in peer_queries]
            if missing:
                log(f"  the peer is not asked {', '.join(missing)} (see bench/peer.py)")
        log("Checking that every side answers the same …")
        solo = check_same_json(sides, spec_for, queries, fx, peer)
        for note in asyncio.run(check_rows_like_api(cfg, fx)):
            log(f"  seeded rows stored like the API's ({note})")
        rss["server before"] = sides["server"].memory_kib()
        log(
            f"Driving {len(queries)} queries x {len(sides)} sides x {cfg.rounds} rounds "
            f"({cfg.duration:g} s each after {cfg.warmup:g} s of warm-up) …"
        )
        for r in range(cfg.rounds):
            flushed = asyncio.run(settle(cfg))
            if flushed:
                log(f"  round {r + 1}: {flushed} pending pages of GIN indexes flushed")
            for q in queries:
                began = time.perf_counter()
                waited = drive_round(cfg, q, r, sides, spec_for, fx, solo, results[q.key])
                line = report.progress_line(r, q.key, results[q.key])
                line += f" [{time.perf_counter() - began:.0f} s"
                line += f", {waited:.0f} s waiting for idle sides]" if waited > 5 else "]"
                log(line)
        rss["server after"] = sides["server"].memory_kib()
        log("One request at a time (one connection) …")
        asyncio.run(settle(cfg))
        alone = latency(cfg, queries, sides, spec_for)
    log(
        f"Server memory before the run: {report.memory(rss['server before'])}; "
        f"after: {report.memory(rss['server after'])}"
    )
    flatness: list[tuple[int, dict[str, int]]] = []
    if cfg.rss_requests:
        log(f"RSS flatness: a fresh server, Q1 up to {cfg.rss_requests[-1]:,} requests …")
        q1 = next(q for q in mix(fx) if q.key == "Q1")
        flatness = rss_flatness(cfg, q1, fx)
    return report.EngineRun(
        engine=cfg.engine,
        database=asyncio.run(_database_version(cfg)),
        url=_safe(cfg.database_url),
        n=fx.leads,
        clients=fx.clients,
        seeded_in=seeded_in,
        search=fx.search,
        search_matches=fx.search_matches,
        queries=[
            report.QueryRun(q.key, q.title, q.write, results[q.key], solo[q.key]) for q in queries
        ],
        statements=counts,
        rss=rss,
        flatness=flatness,
        latency=alone,
        peer_note=peer_note,
    )


def main() -> int:
    base = Config.from_env()
    DATA.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_before = _loadavg()
    log(
        f"Leadgraph benchmark: N={base.n:,} on {', '.join(_safe(u) for u in base.database_urls)}; "
        f"{base.rounds} rounds of {base.duration:g} s per query and side (+{base.warmup:g} s "
        f"warm-up), {base.connections} connections, load tool {base.tool}; load average "
        f"{load_before}"
    )
    engines = [run_engine(replace(base, database_url=url)) for url in base.database_urls]
    run = report.Run(
        duration=base.duration,
        warmup=base.warmup,
        connections=base.connections,
        rounds=base.rounds,
        tool=base.tool,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine(base),
        load_before=load_before,
        load_after=_loadavg(),
        engines=engines,
        minutes=(time.perf_counter() - started) / 60,
    )
    text = report.with_blocks(report.markdown(run), base.results)
    base.results.write_text(text)
    log("")
    log(report.console(run))
    shown = base.results.relative_to(ROOT) if base.results.is_relative_to(ROOT) else base.results
    log(f"Wrote {shown} in {run.minutes:.1f} min.")
    return 0
