"""The benchmark run, end to end: seed, prepare, count statements, check, drive, report.

1. Seed a fresh database (bench/seed.py) and time it.
2. Create an OWNER API key of the Default workspace (the app's own CLI path) and read the
   fixtures: a cursor half-way through the leads, converted leads for lead(id), and disjoint
   pools of unconverted leads for convertLead (one per side and phase).
3. Count SQL statements per request in-process, for the server (server.create_app through
   httpx.ASGITransport) and for the floor, with a ``before_cursor_execute`` listener; check that
   the count does not grow with the page size.
4. Start the server (``server.py serve``: uvicorn, one worker) and the floor beside it, check
   that both answer every query with the same JSON, and that seeded rows are stored exactly like
   rows the API writes.
5. Drive each query on the server, then on the floor: a warm-up, then the measured run, with the
   same load tool and connections. Writes use fresh values (unique emails, distinct leads) and
   are checked against the database afterwards. Read the server's RSS after the run.
6. RSS flatness: a fresh server, its RSS after each of BENCH_RSS_REQUESTS requests of Q1
   (10k and 30k by default; the issue's target is 10k to 100k: BENCH_RSS_REQUESTS=10000,100000).
7. Print the table and write bench/results.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from bench import load, report, seed
from bench.floor import create_floor_app
from bench.queries import Fixtures, Query, leads_with_clients, mix, with_first
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
# convertLead pools are sized for this many converts a second per side (more than either does).
WRITE_RATE_CEILING = 3000
LEADS: Any = Lead.__table__  # type: ignore[attr-defined]
CLIENTS: Any = Client.__table__  # type: ignore[attr-defined]


def log(message: str) -> None:
    print(message, flush=True)


# ------------------------------------------------------------------ configuration


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class Config:
    n: int
    duration: float
    warmup: float
    connections: int
    database_url: str
    tool: str
    rss_requests: tuple[int, ...]
    only: tuple[str, ...]
    reuse_db: bool
    search: str
    results: Path
    seed: int

    @classmethod
    def from_env(cls) -> Config:
        tool = _env("BENCH_LOAD", "auto")
        if tool == "auto":
            tool = "wrk" if load.wrk_path() else "python"
        elif tool == "wrk" and not load.wrk_path():
            raise SystemExit("BENCH_LOAD=wrk but wrk is not installed (apt-get install wrk)")
        rss = _env("BENCH_RSS_REQUESTS", "10000,30000")
        only = _env("BENCH_QUERIES", "")
        return cls(
            n=int(float(_env("BENCH_N", "1000000"))),
            duration=float(_env("BENCH_DURATION", "10")),
            warmup=float(_env("BENCH_WARMUP", "2")),
            connections=int(_env("BENCH_CONNECTIONS", "16")),
            database_url=_env("BENCH_DATABASE_URL", f"sqlite+aiosqlite:///{DATA / 'bench.db'}"),
            tool=tool,
            rss_requests=tuple(
                sorted(int(x) for x in rss.split(",") if x.strip() not in ("", "0"))
            ),
            only=tuple(q.strip() for q in only.split(",") if q.strip()),
            reuse_db=_env("BENCH_REUSE_DB", "0") == "1",
            search=_env("BENCH_SEARCH", "summit analytics"),
            results=Path(_env("BENCH_RESULTS", str(ROOT / "bench" / "results.md"))),
            seed=int(_env("BENCH_SEED", "42")),
        )

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"

    def settings(self) -> Settings:
        # As the server reads them (environment and .env), on the benchmark's database.
        return Settings(database_url=self.database_url, log_level="warning", graphiql=False)


# ------------------------------------------------------------------ 1-2: seed and fixtures


def seed_database(cfg: Config) -> float | None:
    """Seeds (unless BENCH_REUSE_DB finds a matching one); the seconds it took, or None."""
    meta = DATA / "seeded.json"
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


async def prepare(cfg: Config) -> Fixtures:
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
            matches = await repo.count(repo.conditions(LeadFilterSpec(search=cfg.search)))
            measure = int(WRITE_RATE_CEILING * cfg.duration)
            warm = int(WRITE_RATE_CEILING * cfg.warmup)
            sizes = {
                "count": 4,
                "server-warm": warm,
                "server": measure,
                "floor-warm": warm,
                "floor": measure,
            }
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
    scale = min(1.0, (len(convertible) - 4) / (sum(sizes.values()) - 4))
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
        return fx.pools["count"][run * 2 + (side == "floor")]
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
                    path = "/graphql" if side == "server" else query.floor_path
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
    (DATA / "statements.json").write_text(json.dumps({"server": server, "floor": floor}, indent=1))
    return report.Statements(
        server={k: len(v) for k, v in server.items()},
        floor={k: len(v) for k, v in floor.items()},
    )


# ------------------------------------------------------------------ 4: the two processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        # /proc/<pid>/stat: utime and stime are fields 14 and 15, after "pid (comm)".
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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


@contextmanager
def service(name: str, command: list[str], cfg: Config) -> Iterator[Service]:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": cfg.database_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "warning",
        "GRAPHIQL": "false",
    }
    log_file = (DATA / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [*command, "--port", str(port)] if "floor" in name else command,
        cwd=ROOT,
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
                if httpx.get(f"{running.url}/healthz", timeout=2).status_code == 200:
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


def server_command() -> list[str]:
    return [sys.executable, "server.py", "serve"]


def floor_command() -> list[str]:
    return [sys.executable, "-m", "bench.floor"]


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


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if a.get(k, "<absent>") != b.get(k, "<absent>"):
                return _first_difference(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}.{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return f"{path or '.'}: server {json.dumps(a)[:300]} / floor {json.dumps(b)[:300]}"


Solo = dict[str, tuple[float, float]]


def check_same_json(server: Service, floor: Service, queries: list[Query], fx: Fixtures) -> Solo:
    """Both answer every query with the same JSON (writes: up to ids, emails and times).
    Returns how long one request of each query takes alone, on each side (seconds; reads: a
    second, warm request)."""
    solo: Solo = {}
    headers = {"Authorization": f"Bearer {fx.key}", "Content-Type": "application/json"}
    with httpx.Client(timeout=300, headers=headers) as http:

        def post(url: str, body: bytes) -> Any:
            response = http.post(url, content=body)
            if response.status_code != 200 or "errors" in response.json():
                raise SystemExit(f"POST {url}: {response.status_code} {response.text[:2000]}")
            return response.json()

        def timed(url: str, body: bytes) -> tuple[Any, float]:
            started = time.perf_counter()
            answer = post(url, body)
            return answer, time.perf_counter() - started

        def same(key: str, a: Any, b: Any) -> None:
            if a != b:
                (DATA / f"mismatch-{key}.json").write_text(
                    json.dumps({"server": a, "floor": b}, indent=1)
                )
                raise SystemExit(
                    f"The floor and the server answer {key} differently "
                    f"({_first_difference(a, b)}); both answers are in "
                    f"bench/.data/mismatch-{key}.json. The floor must mirror the app."
                )

        for q in queries:
            if q.mode in ("fixed", "cycle"):
                value = fx.converted_ids[0] if q.mode == "cycle" else ""
                a = post(f"{server.url}/graphql", q.body(value))
                b = post(f"{floor.url}{q.floor_path}", q.body(value))
                same(q.key, a, b)
                solo[q.key] = (
                    timed(f"{server.url}/graphql", q.body(value))[1],
                    timed(f"{floor.url}{q.floor_path}", q.body(value))[1],
                )
            elif q.mode == "unique":
                a, a_s = timed(f"{server.url}/graphql", q.body(f"{fx.run}-check-server"))
                b, b_s = timed(f"{floor.url}{q.floor_path}", q.body(f"{fx.run}-check-floor"))
                same(q.key, _masked(a), _masked(b))
                solo[q.key] = (a_s, b_s)
            else:
                # Two leads alike but for their emails, converted one on each side.
                ids = []
                for side in ("server", "floor"):
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
                    ids.append(
                        post(f"{server.url}/graphql", body.encode())["data"]["createLead"]["lead"][
                            "id"
                        ]
                    )
                a, a_s = timed(f"{server.url}/graphql", q.body(ids[0]))
                b, b_s = timed(f"{floor.url}{q.floor_path}", q.body(ids[1]))
                same(q.key, _masked(a), _masked(b))
                solo[q.key] = (a_s, b_s)
            server_s, floor_s = solo[q.key]
            log(
                f"  {q.key:<9} same JSON on both sides; one request alone: server "
                f"{server_s * 1000:.1f} ms, floor {floor_s * 1000:.1f} ms"
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


@dataclass
class Measured:
    query: Query
    server: load.LoadResult
    floor: load.LoadResult
    written: dict[str, int] = field(default_factory=dict)
    waited: float = 0.0  # for requests left over from earlier runs to finish
    solo: tuple[float, float] = (0.0, 0.0)  # one request alone, server and floor (s)


def _specs(q: Query, side: str, fx: Fixtures) -> tuple[load.LoadSpec, load.LoadSpec]:
    """(warm-up, measured) loads for one side; writes never reuse a value."""
    if q.mode == "once":
        warm = tuple(fx.pools[f"{side}-warm"])
        return q.spec(side, fx.key, values=warm), q.spec(side, fx.key, values=tuple(fx.pools[side]))
    if q.mode == "unique":
        tag = f"{fx.run}-{q.key.lower()}-{side}"
        return q.spec(side, fx.key, tag=f"{tag}-w-"), q.spec(side, fx.key, tag=f"{tag}-m-")
    return q.spec(side, fx.key), q.spec(side, fx.key)


async def _written(cfg: Config, q: Query, side: str, fx: Fixtures) -> int:
    """Rows the measured run of a write really changed."""
    db = Database(cfg.database_url, cfg.settings())
    try:
        async with db.read() as conn:
            if q.mode == "unique":
                tag = f"{fx.run}-{q.key.lower()}-{side}-m-"
                stmt = select(func.count()).where(LEADS.c.email.like(f"{tag}%"))
            else:
                pks = [int(i) for i in _pks(fx.pools[side])]
                stmt = select(func.count()).where(
                    LEADS.c.id.in_(pks), LEADS.c.converted_at.is_not(None)
                )
            return int((await conn.execute(stmt)).scalar_one())
    finally:
        await db.dispose()


def _pks(global_ids: list[str]) -> list[int]:
    import base64

    return [int(base64.b64decode(g).decode().split(":")[1]) for g in global_ids]


# A query slower than this alone gains nothing from a warm-up (the check ran it already) and
# would leave the server busy with its 16 abandoned requests for a long time.
WARMUP_UP_TO = 0.5


def drive(
    cfg: Config, q: Query, server: Service, floor: Service, fx: Fixtures, solo: Solo
) -> Measured:
    results: dict[str, load.LoadResult] = {}
    written: dict[str, int] = {}
    waited = 0.0

    for k, (side, target) in enumerate((("server", server), ("floor", floor))):
        warm, measured = _specs(q, side, fx)
        url = target.url
        if cfg.warmup > 0 and solo[q.key][k] < WARMUP_UP_TO:
            load.run(cfg.tool, url, warm, cfg.connections, cfg.warmup, DATA)
            waited += target.wait_idle()
        results[side] = load.run(cfg.tool, url, measured, cfg.connections, cfg.duration, DATA)
        waited += target.wait_idle()
        if q.write:
            written[side] = asyncio.run(_written(cfg, q, side, fx))
    return Measured(q, results["server"], results["floor"], written, waited, solo[q.key])


# The latency targets (Q3's p99, Q4 against Q1, filtered counts) are about how one user's page
# feels. At 16 connections in a closed loop, p50 is ~16 / throughput: queueing, not the request.
# So the server also answers these one request at a time, and the targets show both.
LATENCY_KEYS = ("Q1", "Q2+count", "Q3", "Q3+count", "Q4")


def latency(cfg: Config, queries: list[Query], server: Service, fx: Fixtures) -> dict[str, Any]:
    """p50/p99 of each latency-targeted query on one connection (server only)."""
    out: dict[str, load.LoadResult] = {}
    for q in queries:
        if q.key in LATENCY_KEYS:
            out[q.key] = load.run(
                cfg.tool, server.url, q.spec("server", fx.key), 1, min(cfg.duration, 5), DATA
            )
            server.wait_idle()
            log(f"  {q.key:<10} one connection: {out[q.key].rps:.0f} req/s, "
                f"p50 {out[q.key].p50_ms:.1f} ms, p99 {out[q.key].p99_ms:.1f} ms")  # fmt: skip
    return out


def rss_flatness(cfg: Config, q1: Query, fx: Fixtures) -> list[tuple[int, dict[str, int]]]:
    """(requests served, memory) of a fresh server: at start and at each checkpoint."""
    points: list[tuple[int, dict[str, int]]] = []
    with service("server-rss", server_command(), cfg) as server:
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

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    dirty = " (with uncommitted changes)" if git("status", "--porcelain") else ""
    database = f"SQLite {sqlite3.sqlite_version}" if cfg.is_sqlite else "PostgreSQL"
    return {
        "cpu": cpu,
        "nproc": str(len(os.sched_getaffinity(0))),
        "memory": f"{mem_kib / 1024 / 1024:.0f} GiB",
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "database": database,
        "load tool": load.wrk_version()
        if cfg.tool == "wrk"
        else "bundled asyncio client (bench/load.py, uvloop)",
        "commit": (git("rev-parse", "--short", "HEAD") or "unknown") + dirty,
    }


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    cfg = Config.from_env()
    DATA.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_before = _loadavg()
    log(
        f"Leadgraph benchmark: N={cfg.n:,}, {cfg.duration:g} s per query and side "
        f"(+{cfg.warmup:g} s warm-up), {cfg.connections} connections, load tool {cfg.tool}; "
        f"load average {load_before}"
    )
    seeded_in = seed_database(cfg)
    fx = asyncio.run(prepare(cfg))
    log(
        f"  {fx.leads:,} leads, {fx.clients:,} clients; search {fx.search!r} matches "
        f"{fx.search_matches:,}; convertLead pools {len(fx.pools['server']):,} per side"
    )
    queries = [q for q in mix(fx) if not cfg.only or q.key.split("+")[0] in cfg.only]

    log("Counting SQL statements per request (in-process) …")
    counts = statements(cfg, queries, fx)

    measured: list[Measured] = []
    rss: dict[str, dict[str, int]] = {}
    log("Starting the server and the floor …")
    with ExitStack() as stack:
        server = stack.enter_context(service("server", server_command(), cfg))
        floor = stack.enter_context(service("floor", floor_command(), cfg))
        log("Checking that both answer the same JSON …")
        solo = check_same_json(server, floor, queries, fx)
        for note in asyncio.run(check_rows_like_api(cfg, fx)):
            log(f"  seeded rows stored like the API's ({note})")
        rss["server before"] = server.memory_kib()
        rss["floor before"] = floor.memory_kib()
        log(f"Driving {len(queries)} queries x 2 sides …")
        log(report.progress_header())
        for q in queries:
            m = drive(cfg, q, server, floor, fx, solo)
            measured.append(m)
            line = report.progress_line(m.query.key, m.server, m.floor, counts, m.written, m.solo)
            if m.waited > 5:
                line += f" [waited {m.waited:.0f} s for leftover requests]"
            log(line)
        rss["server after"] = server.memory_kib()
        rss["floor after"] = floor.memory_kib()
        log("One request at a time (one connection, server only) …")
        alone = latency(cfg, queries, server, fx)
    log(
        f"Server memory before the run: {report.memory(rss['server before'])}; "
        f"after: {report.memory(rss['server after'])}"
    )

    flatness: list[tuple[int, dict[str, int]]] = []
    if cfg.rss_requests:
        log(f"RSS flatness: a fresh server, Q1 up to {cfg.rss_requests[-1]:,} requests …")
        q1 = next(q for q in mix(fx) if q.key == "Q1")
        flatness = rss_flatness(cfg, q1, fx)

    run = report.Run(
        n=fx.leads,
        clients=fx.clients,
        duration=cfg.duration,
        warmup=cfg.warmup,
        connections=cfg.connections,
        tool=cfg.tool,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine(cfg),
        load_before=load_before,
        load_after=_loadavg(),
        seeded_in=seeded_in,
        search=fx.search,
        search_matches=fx.search_matches,
        measured=[
            (m.query.key, m.query.title, m.query.write, m.server, m.floor, m.written, m.solo)
            for m in measured
        ],
        statements=counts,
        rss=rss,
        flatness=flatness,
        minutes=(time.perf_counter() - started) / 60,
        latency=alone,
    )
    text = report.markdown(run)
    cfg.results.write_text(text)
    log("")
    log(report.console(run))
    shown = cfg.results.relative_to(ROOT) if cfg.results.is_relative_to(ROOT) else cfg.results
    log(f"Wrote {shown} in {run.minutes:.1f} min.")
    return 0
