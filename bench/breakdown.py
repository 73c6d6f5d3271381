"""Where the CPU of one first page (Q1) goes, stage by stage, in one process.

Each stage runs ``--requests`` times, one at a time, after a warm-up; the table gives its CPU
time per call (``time.process_time``: this process, all threads, so SQLite's driver thread is
counted) and its share of the live server's CPU per request. Stages nest: the ASGI request holds
the credential lookup and the execution, the execution holds the page, and so on; "rest" rows
are what a stage costs beyond the stages listed inside it.

    python -m bench.breakdown                      # the benchmark's database (BENCH_DATABASE_URL)
    python -m bench.breakdown --requests 2000 --live

``--live`` also starts ``server.py serve`` and drives it over HTTP (keep-alive, one connection)
to read the server process's CPU per request from /proc: what uvicorn's HTTP handling adds on
top of the in-process ASGI request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from bench.harness import DATA, Config, _free_port, seed_database
from bench.queries import LEAD_FIELDS
from db.models import Role
from db.repositories import LeadRepository
from db.settings import Settings
from resolvers.auth import authenticate, create_key_for_workspace
from resolvers.leads import LEADS
from schema.leads import Lead

ROOT = Path(__file__).resolve().parent.parent
# The columns Q1's selection reads (schema.records.Record.columns_for), as the server asks.
Q1_COLUMNS = frozenset(
    [
        "id",
        "email",
        "first_name",
        "last_name",
        "company",
        "city",
        "state",
        "source",
        "status",
        "score",
        "created_at",
    ]
)
Q1 = (
    "query Q1($n: Int) { leads(first: $n) { edges { cursor node { "
    + LEAD_FIELDS
    + " } } pageInfo { hasNextPage endCursor } } }"
)


async def per_call(n: int, call: Callable[[], Awaitable[Any]]) -> float:
    """CPU milliseconds per call of ``call``, after a warm-up of n // 10 calls."""
    for _ in range(max(n // 10, 10)):
        await call()
    start = time.process_time()
    for _ in range(n):
        await call()
    return (time.process_time() - start) * 1000 / n


class Asgi:
    """One HTTP request through the app's ASGI callable, without a server or a socket."""

    def __init__(self, app: Any, body: bytes, key: str) -> None:
        self.app = app
        self.body = body
        self.headers = [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Bearer {key}".encode()),
        ]
        self.last: bytes = b""

    async def __call__(self) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "query_string": b"",
            "root_path": "",
            "headers": self.headers,
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
            "state": {},
            "app": self.app,
        }
        sent = False
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        self.last = b"".join(chunks)


def live_cpu_per_request(cfg: Config, key: str, n: int) -> float:
    """The CPU milliseconds ``server.py serve`` spends per Q1, one keep-alive connection."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": cfg.database_url,
        "PORT": str(port),
        "LOG_LEVEL": "warning",
        "GRAPHIQL": "false",
    }
    proc = subprocess.Popen([sys.executable, "server.py", "serve"], cwd=ROOT, env=env)
    try:
        body = json.dumps({"query": Q1, "variables": {"n": 20}}).encode()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for _ in range(200):
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            for _ in range(max(n // 10, 10)):
                http.post("/graphql", content=body, headers=headers)

            def cpu() -> float:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

            before = cpu()
            for _ in range(n):
                http.post("/graphql", content=body, headers=headers)
            return (cpu() - before) * 1000 / n
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def breakdown(cfg: Config, n: int, live: bool) -> list[tuple[str, float]]:
    from server import create_app, encode_json_bytes

    settings = Settings(database_url=cfg.database_url, log_level="warning", graphiql=False)
    app = create_app(settings)
    rows: list[tuple[str, float]] = []
    async with app.router.lifespan_context(app):
        db = app.state.db
        key, _, _ = await create_key_for_workspace(db, "Default", Role.OWNER, "breakdown")
        header = f"Bearer {key}"
        body = json.dumps({"query": Q1, "variables": {"n": 20}}).encode()
        asgi = Asgi(app, body, key)
        await asgi()
        assert b'"edges"' in asgi.last, asgi.last[:500]

        schema = app.routes[-2].endpoint.schema  # the view's Schema
        view = app.routes[-2].endpoint

        async def context() -> Any:
            from schema.context import Context

            principal, rejected = await authenticate(db, settings, header)
            return Context(
                request=None,  # type: ignore[arg-type]
                response=None,  # type: ignore[arg-type]
                db=db,
                settings=settings,
                mailer=app.state.mailer,
                request_id="breakdown",
                principal=principal,
                rejected=rejected,
                credential=header,
            )

        ctx = await context()

        async def execute() -> Any:
            ctx.__dict__.pop("loaders", None)
            result = await schema.execute(Q1, variable_values={"n": 20}, context_value=ctx)
            assert not result.errors, result.errors
            return result

        async def page() -> Any:
            return await LEADS.page(ctx, 20, None, None, None, None, None, Q1_COLUMNS)

        result = await execute()
        fetched = await page()
        payload = {"data": result.data}

        def build() -> Any:
            repo = LeadRepository(None, ctx.workspace_id)  # type: ignore[arg-type]
            c = repo.c
            stmt = (
                select(*(c[key] for key in sorted(Q1_COLUMNS)))
                .where(repo.scope)
                .order_by(c.created_at.desc(), c.id.desc())
                .limit(21)
            )
            stmt._generate_cache_key()
            return stmt

        async def sql_build() -> Any:
            return build()

        async def convert() -> Any:
            return [Lead.from_row(r) for r in fetched.rows]

        async def encode() -> Any:
            return encode_json_bytes(payload)

        async def encode_stdlib() -> Any:
            return json.dumps(payload, separators=(",", ":")).encode()

        measured = {
            "ASGI request (app, in process)": await per_call(n, asgi),
            "credential lookup (authenticate)": await per_call(
                n, lambda: authenticate(db, settings, header)
            ),
            "GraphQL execute (parse/validate cache hit, execution, page)": await per_call(
                n, execute
            ),
            "page: RecordType.page (SQL build, driver, rows)": await per_call(n, page),
            "SQL build (select + cache key)": await per_call(n, sql_build),
            "rows → Lead objects (21 from_row)": await per_call(n, convert),
            "JSON encode (orjson)": await per_call(n, encode),
            "JSON encode (json.dumps)": await per_call(n, encode_stdlib),
        }
        if db.dialect == "postgresql":
            stmt = build()
            compiled = stmt.compile(dialect=postgresql.asyncpg.dialect())
            sql = str(compiled)
            params = [compiled.params[name] for name in compiled.positiontup]
            url = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
            raw = await asyncpg.connect(url)
            try:
                prepared = await raw.prepare(sql)
                measured["driver alone (asyncpg, prepared, same SELECT)"] = await per_call(
                    n, lambda: prepared.fetch(*params)
                )
            finally:
                await raw.close()
        rows.extend(measured.items())
        _ = view
    if live:
        rows.insert(
            0, ("live server, one keep-alive connection", live_cpu_per_request(cfg, key, n))
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--live", action="store_true", help="also measure server.py serve")
    args = parser.parse_args()
    cfg = Config.from_env()
    if not (DATA / "seeded.json").exists():
        seed_database(cfg)
    rows = asyncio.run(breakdown(cfg, args.requests, args.live))
    total = rows[0][1]
    print(f"{'stage':<66} {'CPU ms':>8} {'share':>6}")
    for name, ms in rows:
        print(f"{name:<66} {ms:8.3f} {100 * ms / total:5.0f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
