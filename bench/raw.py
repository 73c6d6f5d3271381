"""The raw floor: the benchmark's queries on the bare driver, behind the smallest ASGI app.

Where ``bench/floor.py`` runs the app's own data layer without GraphQL, this is what the
machine can do for the same requests: a plain ASGI callable (no Starlette, no middleware) on
the same uvicorn stack, one route per query (the floor's paths), and for each request

- the bearer API key checked by one indexed SELECT on its hash (``api_keys.token_hash``), as
  ``resolvers.principal.authenticate`` does, including its once-a-minute ``last_used_at`` write;
- the page: the same WHERE / ORDER BY / LIMIT as the app's statements (keyset cursors, the
  folded ``state_key``, the escaped ``search_key`` LIKE, and on SQLite the same FTS5 plan as
  ``db/repositories/search.py``), selecting only the columns the answer shows;
- the same JSON as the server (global ids, cursors in ``resolvers.pagination``'s format), built
  from tuples and encoded once with orjson.

PostgreSQL: an asyncpg pool (autocommit reads, statements prepared and cached by asyncpg, one
connection checkout per request). SQLite: the ``sqlite3`` module, called directly on the event
loop (one reader and one writer connection, the app's pragmas; a request's statements are
microseconds to milliseconds, less than a hand-off to a thread would cost), or with
``RAW_SQLITE_THREADS=n`` from n reader threads.

Writes: createLead validates its input with ``LeadCreate`` (the app's rules: trimmed fields,
normalised email) and runs one INSERT; convertLead locks the lead, INSERTs the client and
UPDATEs the lead in one transaction; both write the same columns as the app, the derived keys by
``db/models/fields.py``. Only API keys authenticate here (the benchmark uses one).

    DATABASE_URL=... python -m bench.raw --port 8002
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
import uvicorn
from sqlalchemy.engine import make_url

from db.engine import _sqlite_pragmas
from db.models import LeadCreate, Role
from db.models.fields import fold, full_name, person_keys
from db.repositories.search import CANDIDATES, fts_query
from db.settings import Settings
from resolvers.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from resolvers.principal import TOUCH_EVERY
from resolvers.security import API_KEY_PREFIX

Json = dict[str, Any]
Args = list[Any]
RowT = Sequence[Any]

LEAD_COLUMNS = "id, email, first_name, last_name, company, city, state, source, status, score"
CLIENT_COLUMNS = "id, email, first_name, last_name, company, status, city, state, postal_code"
# SQLAlchemy's SQLite DateTime text (naive UTC), which the app's rows hold.
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


class Unauthorized(Exception):
    pass


class BadRequest(Exception):
    pass


# ------------------------------------------------------------------ values as the schema shows them


def global_id(type_name: str, pk: int) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def pk_of(gid: str, type_name: str) -> int | None:
    try:
        kind, _, pk = base64.b64decode(gid.encode(), validate=True).decode().partition(":")
    except ValueError:
        raise BadRequest(f"not a valid ID: {gid!r}") from None
    if not pk.isdigit():
        raise BadRequest(f"not a valid ID: {gid!r}")
    return int(pk) if kind == type_name else None


def cursor(order: str, value: Any, pk: int) -> str:
    """resolvers.pagination.encode_cursor: url-safe base64 of ``[order,value,id]``, unpadded;
    the value of a time is ``datetime.isoformat()`` (no fraction when it is zero)."""
    raw = orjson.dumps([order, value, pk])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, order: str) -> tuple[Any, int]:
    try:
        made, value, pk = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except ValueError:
        raise BadRequest("not a valid cursor") from None
    if made != order:
        raise BadRequest(f"a cursor made under {made}, not {order}")
    return value, pk


class Times:
    """How one engine hands times over: aware datetimes (asyncpg) or SQLAlchemy's text
    (SQLite). ``iso``: the DateTime scalar's form; ``cursor``: ``datetime.isoformat()``."""

    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite

    def iso(self, value: Any) -> str | None:
        if value is None:
            return None
        if self.sqlite:
            return f"{value[:10]}T{value[11:]}+00:00"
        iso: str = value.astimezone(UTC).isoformat(timespec="microseconds")
        return iso

    def cursor_value(self, value: Any) -> str:
        iso = self.iso(value)
        assert iso is not None
        return iso.replace(".000000+", "+")

    def bind(self, iso: str) -> Any:
        """A cursor's time as the engine compares it."""
        try:
            value = datetime.fromisoformat(iso).astimezone(UTC)
        except (TypeError, ValueError):
            raise BadRequest("not a valid cursor") from None
        return value.strftime(SQLITE_TIME) if self.sqlite else value

    def store(self, value: datetime) -> Any:
        """An aware time as the engine stores it."""
        return value.strftime(SQLITE_TIME) if self.sqlite else value

    def now(self) -> tuple[Any, str]:
        """(the value to store, its DateTime form) for the current time."""
        now = datetime.now(UTC)
        return self.store(now), now.isoformat(timespec="microseconds")


# ------------------------------------------------------------------ the engines


class Tx:
    """Statements inside one write transaction."""

    async def one(self, sql: str, args: Args) -> RowT | None:
        raise NotImplementedError


class Engine:
    sqlite: bool

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def run(self, work: Callable[[Reader], Awaitable[Any]]) -> Any:
        """``work`` with a reader: the statements of one request, on one connection."""
        raise NotImplementedError

    async def write(self, work: Callable[[Tx], Awaitable[Any]]) -> Any:
        raise NotImplementedError


class Reader:
    async def rows(self, sql: str, args: Args) -> list[RowT]:
        raise NotImplementedError

    async def row(self, sql: str, args: Args) -> RowT | None:
        found = await self.rows(sql, args)
        return found[0] if found else None


class PgReader(Reader, Tx):
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def rows(self, sql: str, args: Args) -> list[RowT]:
        # asyncpg prepares each statement once per connection and caches it.
        found: list[RowT] = await self.conn.fetch(sql, *args)
        return found

    async def one(self, sql: str, args: Args) -> RowT | None:
        found: RowT | None = await self.conn.fetchrow(sql, *args)
        return found


class Postgres(Engine):
    sqlite = False

    def __init__(self, url: str, settings: Settings) -> None:
        parsed = make_url(url).set(drivername="postgresql")
        self.dsn = parsed.render_as_string(hide_password=False)
        self.settings = settings
        self.pool: Any = None

    async def start(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        timeout = int(self.settings.db_statement_timeout_ms)
        self.pool = await asyncpg.create_pool(
            self.dsn,
            min_size=self.settings.db_pool_size,
            max_size=self.settings.db_pool_size + self.settings.db_max_overflow,
            server_settings={
                "application_name": "leadgraph-raw-floor",
                "statement_timeout": str(timeout),
            },
        )

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def run(self, work: Callable[[Reader], Awaitable[Any]]) -> Any:
        async with self.pool.acquire() as conn:
            return await work(PgReader(conn))

    async def write(self, work: Callable[[Tx], Awaitable[Any]]) -> Any:
        async with self.pool.acquire() as conn, conn.transaction():
            return await work(PgReader(conn))


class SqliteReader(Reader, Tx):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def rows(self, sql: str, args: Args) -> list[RowT]:
        # sqlite3 keeps prepared statements in a per-connection cache keyed by the SQL text.
        return self.conn.execute(sql, args).fetchall()

    async def one(self, sql: str, args: Args) -> RowT | None:
        row: RowT | None = self.conn.execute(sql, args).fetchone()
        return row


class _ThreadReader(Reader):
    """A reader whose statements run on a reader thread's own connection."""

    def __init__(self, engine: Sqlite) -> None:
        self.engine = engine

    async def rows(self, sql: str, args: Args) -> list[RowT]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.engine.pool, self.engine.thread_rows, sql, args)


class Sqlite(Engine):
    sqlite = True

    def __init__(self, url: str, settings: Settings, threads: int) -> None:
        self.path = make_url(url).database or ""
        self.pragmas = _sqlite_pragmas(settings)
        self.threads = threads
        self.local = threading.local()
        self.pool: ThreadPoolExecutor | None = None
        self.lock = asyncio.Lock()

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in self.pragmas:
            conn.execute(pragma)
        return conn

    def thread_rows(self, sql: str, args: Args) -> list[RowT]:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = self.connect()
        return conn.execute(sql, args).fetchall()

    async def start(self) -> None:
        self.reader = SqliteReader(self.connect())
        self.writer = SqliteReader(self.connect())
        if self.threads:
            self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="raw-sqlite")
            self.thread_reader = _ThreadReader(self)

    async def stop(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    async def run(self, work: Callable[[Reader], Awaitable[Any]]) -> Any:
        return await work(self.thread_reader if self.threads else self.reader)

    async def write(self, work: Callable[[Tx], Awaitable[Any]]) -> Any:
        # One writer connection, as the app's; with statements run on the loop, a transaction
        # never yields before it ends unless it waits for the lock.
        async with self.lock:
            conn = self.writer.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = await work(self.writer)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result


def sql_for(engine: Engine, sql: str) -> str:
    """Statements are written with $n placeholders; SQLite takes them as ?n."""
    return sql.replace("$", "?") if engine.sqlite else sql


# ------------------------------------------------------------------ statements


@dataclass(frozen=True)
class LeadShape:
    """What decides a leads statement's text (its values are parameters)."""

    sort: str  # column
    descending: bool
    statuses: int  # how many (0: no status filter)
    state: bool
    search: str  # "", "like" (PostgreSQL, or SQLite without FTS5), "fts" (SQLite)
    after: bool


SORTS = {"CREATED_AT": ("created_at", "time"), "SCORE": ("score", "int")}


class Statements:
    """The SQL texts, built once per shape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.cache: dict[tuple[str, LeadShape], str] = {}
        s = engine.sqlite
        self.auth = sql_for(
            engine,
            "SELECT id, workspace_id, role, expires_at, last_used_at, revoked_at "
            "FROM api_keys WHERE token_hash = $1",
        )
        self.touch = sql_for(engine, "UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
        self.lead = sql_for(
            engine,
            f"SELECT {LEAD_COLUMNS}, created_at, converted_at, converted_client_id "
            "FROM leads WHERE workspace_id = $1 AND id = $2",
        )
        self.client = sql_for(
            engine,
            f"SELECT {CLIENT_COLUMNS}, created_at FROM clients WHERE workspace_id = $1 AND id = $2",
        )
        self.clients_page = sql_for(
            engine,
            f"SELECT {CLIENT_COLUMNS}, created_at FROM clients WHERE workspace_id = $1 AND "
            "status IN ('ACTIVE') ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        self.clients_after = sql_for(
            engine,
            f"SELECT {CLIENT_COLUMNS}, created_at FROM clients WHERE workspace_id = $1 AND "
            "status IN ('ACTIVE') AND (created_at, id) < ($3, $4) "
            "ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        self.clients_count = sql_for(
            engine,
            "SELECT count(*) FROM clients WHERE workspace_id = $1 AND status IN ('ACTIVE')",
        )
        converted_from = (
            "SELECT id, first_name, last_name, status, converted_at, converted_client_id "
            "FROM leads WHERE workspace_id = $1 AND converted_client_id "
        )
        order = " ORDER BY converted_at, id"
        # PostgreSQL: one prepared statement for any number of clients; SQLite: IN (...).
        self.converted_from = converted_from + "= ANY($2::int[])" + order
        self.converted_from_sqlite = converted_from.replace("$1", "?") + "IN ({})" + order
        self.insert_lead = sql_for(
            engine,
            "INSERT INTO leads (workspace_id, created_at, updated_at, created_by_user_id, "
            "created_by_api_key_id, updated_by_user_id, updated_by_api_key_id, email, "
            "first_name, last_name, phone, company, city, state, postal_code, source, notes, "
            "status, score, metadata, email_key, name_key, city_key, state_key, source_key, "
            "search_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
            "$15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26) RETURNING id",
        )
        self.lock_lead = sql_for(
            engine,
            "SELECT email, first_name, last_name, phone, company, city, state, postal_code, "
            "notes, metadata, converted_at FROM leads WHERE workspace_id = $1 AND id = $2"
            + ("" if s else " FOR UPDATE"),
        )
        self.insert_client = sql_for(
            engine,
            "INSERT INTO clients (workspace_id, created_at, updated_at, created_by_user_id, "
            "created_by_api_key_id, updated_by_user_id, updated_by_api_key_id, email, "
            "first_name, last_name, phone, company, street, city, state, postal_code, country, "
            "status, notes, metadata, email_key, name_key, city_key, state_key, search_key) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, "
            "$18, $19, $20, $21, $22, $23, $24, $25) RETURNING id",
        )
        self.mark_converted = sql_for(
            engine,
            "UPDATE leads SET updated_at = $1, updated_by_user_id = $2, "
            "updated_by_api_key_id = $3, status = 'WON', converted_at = $4, "
            "converted_client_id = $5 WHERE workspace_id = $6 AND id = $7 AND "
            "converted_at IS NULL RETURNING id",
        )

    def leads(self, what: str, shape: LeadShape) -> str:
        """``what``: "page" (LIMIT is the last parameter) or "count"."""
        key = (what, shape)
        found = self.cache.get(key)
        if found is None:
            found = self.cache[key] = sql_for(self.engine, self._leads(what, shape))
        return found

    def _leads(self, what: str, shape: LeadShape) -> str:
        """Parameters, in order: workspace, statuses..., state, search, after value, after id,
        limit (page only); the FTS5 query first when the search uses it."""
        n = 1
        where: list[str] = []

        def param() -> str:
            nonlocal n
            n += 1
            return f"${n}"

        fts = ""
        if shape.search == "fts":
            fts = param()  # $2
        if shape.state:
            where.append(f"state_key = {param()}")
        if shape.statuses:
            where.append(f"status IN ({', '.join(param() for _ in range(shape.statuses))})")
        if shape.search:
            where.append(f"(search_key LIKE '%' || {param()} || '%' ESCAPE '/')")
        col = shape.sort
        if shape.after:
            op = "<" if shape.descending else ">"
            where.append(f"({col}, id) {op} ({param()}, {param()})")
        direction = "DESC" if shape.descending else "ASC"
        order = f"ORDER BY {col} {direction}, id {direction}"
        conds = "".join(f" AND {w}" for w in where)
        # The workspace is $1 (first in the app's statements too).
        if what == "count":
            if shape.search != "fts":
                return f"SELECT count(*) FROM leads WHERE workspace_id = $1{conds}"
            # db/repositories/search.count_statement.
            alone = not shape.state and not shape.statuses and not shape.after
            scope = "+workspace_id = $1" if alone else "workspace_id = $1"
            return (
                f"WITH fts_hits AS MATERIALIZED (SELECT rowid FROM leads_fts WHERE leads_fts "
                f"MATCH {fts} LIMIT {CANDIDATES}) SELECT "
                f"(SELECT count(*) FROM (SELECT 1 FROM leads WHERE +workspace_id = $1{conds} "
                f"AND id IN (SELECT rowid FROM fts_hits) LIMIT CASE WHEN "
                f"(SELECT count(*) FROM fts_hits) < {CANDIDATES} THEN -1 ELSE 0 END)) + "
                f"(SELECT count(*) FROM (SELECT 1 FROM leads WHERE {scope}{conds} AND id IN "
                f"(SELECT rowid FROM leads_fts WHERE leads_fts MATCH {fts}) LIMIT CASE WHEN "
                f"(SELECT count(*) FROM fts_hits) >= {CANDIDATES} THEN -1 ELSE 0 END))"
            )
        limit = param()
        columns = f"{LEAD_COLUMNS}, created_at"
        if shape.search != "fts":
            scoped = f"workspace_id = $1{conds}"
            return f"SELECT {columns} FROM leads WHERE {scoped} {order} LIMIT {limit}"
        # db/repositories/search.page_statement: FTS5 candidates when few, the sort index when
        # many, the chosen ids fetched and ordered once more.
        return (
            f"WITH fts_hits AS MATERIALIZED (SELECT rowid FROM leads_fts WHERE leads_fts "
            f"MATCH {fts} LIMIT {CANDIDATES}) SELECT {columns} FROM leads WHERE "
            f"+workspace_id = $1{conds} AND id IN ("
            f"SELECT id FROM (SELECT id FROM leads WHERE +workspace_id = $1{conds} AND id IN "
            f"(SELECT rowid FROM fts_hits) {order} LIMIT CASE WHEN (SELECT count(*) FROM "
            f"fts_hits) < {CANDIDATES} THEN {limit} ELSE 0 END) "
            f"UNION ALL SELECT id FROM (SELECT id FROM leads WHERE workspace_id = $1{conds} "
            f"{order} LIMIT CASE WHEN (SELECT count(*) FROM fts_hits) >= {CANDIDATES} "
            f"THEN {limit} ELSE 0 END)) {order} LIMIT {limit}"
        )


# ------------------------------------------------------------------ the floor


@dataclass(frozen=True)
class Caller:
    workspace_id: int
    api_key_id: int


def _escape_like(term: str) -> str:
    """SQLAlchemy's ``contains(autoescape=True)`` with '/' as the escape character."""
    return term.replace("/", "//").replace("%", "/%").replace("_", "/_")


class RawFloor:
    """The ASGI app."""

    def __init__(self, settings: Settings, *, sqlite_threads: int = 0) -> None:
        self.settings = settings
        url = settings.database_url
        if make_url(url).get_backend_name() == "sqlite":
            self.engine: Engine = Sqlite(url, settings, sqlite_threads)
        else:
            self.engine = Postgres(url, settings)
        self.sql = Statements(self.engine)
        self.times = Times(self.engine.sqlite)
        self.routes: dict[str, Callable[[Json, bytes | None], Awaitable[Json]]] = {
            "/leads": self.leads,
            "/leads/count": self.leads_count,
            "/lead": self.lead,
            "/clients": self.clients,
            "/clients/count": self.clients_count,
            "/create-lead": self.create_lead,
            "/convert-lead": self.convert_lead,
        }

    # -------------------------------------------------------------- ASGI

    async def __call__(self, scope: Json, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        path = scope["path"]
        if path == "/healthz":
            await self._send(send, 200, b'{"status":"ok"}')
            return
        handler = self.routes.get(path)
        if handler is None or scope["method"] != "POST":
            await self._send(send, 404, b'{"errors":[{"message":"not found"}]}')
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
                break
        try:
            variables = orjson.loads(body).get("variables") or {}
            answer = await handler(variables, authorization)
            await self._send(send, 200, orjson.dumps({"data": answer}))
        except Unauthorized as exc:
            await self._send(send, 401, orjson.dumps({"errors": [{"message": str(exc)}]}))
        except (BadRequest, ValueError, KeyError) as exc:
            await self._send(send, 400, orjson.dumps({"errors": [{"message": repr(exc)}]}))

    @staticmethod
    async def _send(send: Any, status: int, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.engine.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.engine.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -------------------------------------------------------------- the credential

    async def caller(self, db: Reader, authorization: bytes | None, role: Role) -> Caller:
        """resolvers.principal.authenticate for an API key, and ``require(role)``."""
        if authorization is None:
            raise Unauthorized("Sign in first")
        scheme, _, token = authorization.decode().strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith(API_KEY_PREFIX):
            raise Unauthorized("The access token is invalid, expired or revoked")
        key = await db.row(self.sql.auth, [hashlib.sha256(token.encode()).hexdigest()])
        now = datetime.now(UTC)
        stored_now = self.times.store(now)
        if key is None:
            raise Unauthorized("The access token is invalid, expired or revoked")
        id_, workspace_id, key_role, expires_at, last_used_at, revoked_at = key
        if revoked_at is not None or (expires_at is not None and expires_at <= stored_now):
            raise Unauthorized("The access token is invalid, expired or revoked")
        if not Role(key_role).includes(role):
            raise Unauthorized(f"This needs the {role.value} role")
        # Text compares as time on SQLite (one fixed-width format).
        if last_used_at is None or last_used_at < self.times.store(now - TOUCH_EVERY):
            await self.engine.write(lambda tx: tx.one(self.sql.touch, [stored_now, id_]))
        return Caller(workspace_id, id_)

    # -------------------------------------------------------------- reads

    def lead_node(self, row: RowT, created_at: Any) -> Json:
        """LEAD_FIELDS of bench/queries.py from ``LEAD_COLUMNS``."""
        id_, email, first, last, company, city, state, source, status, score = row[:10]
        return {
            "id": global_id("Lead", id_),
            "email": email,
            "firstName": first,
            "lastName": last,
            "name": full_name(first, last),
            "company": company,
            "city": city,
            "state": state,
            "source": source,
            "status": status,
            "score": score,
            "createdAt": self.times.iso(created_at),
        }

    def client_node(self, row: RowT) -> Json:
        """CLIENT_FIELDS from ``CLIENT_COLUMNS, created_at``."""
        id_, email, first, last, company, status, city, state, postal, created_at = row[:10]
        return {
            "id": global_id("Client", id_),
            "name": full_name(first, last) or "",
            "email": email,
            "company": company,
            "status": status,
            "createdAt": self.times.iso(created_at),
            "address": {"city": city, "state": state, "postalCode": postal},
        }

    def _page(
        self, rows: list[RowT], limit: int, order: str, sort_index: int, kind: str, after: bool,
        node: Callable[[RowT], Json],
    ) -> Json:  # fmt: skip
        more = len(rows) > limit
        rows = rows[:limit]
        cursors = []
        for row in rows:
            value = row[sort_index]
            cursors.append(
                cursor(order, self.times.cursor_value(value) if kind == "time" else value, row[0])
            )
        return {
            "edges": [{"cursor": c, "node": node(r)} for c, r in zip(cursors, rows, strict=True)],
            "pageInfo": {"hasNextPage": more, "endCursor": cursors[-1] if cursors else None},
        }

    async def leads(self, variables: Json, authorization: bytes | None) -> Json:
        return await self._leads(variables, authorization, count=False)

    async def leads_count(self, variables: Json, authorization: bytes | None) -> Json:
        return await self._leads(variables, authorization, count=True)

    async def _leads(self, variables: Json, authorization: bytes | None, *, count: bool) -> Json:
        """Q1-Q4: leads(first, after, filter: {status, state, search}, orderBy)."""
        order_by = variables.get("orderBy") or {}
        field = order_by.get("field", "CREATED_AT")
        direction = order_by.get("direction", "DESC")
        if field not in SORTS:
            raise BadRequest(f"the raw floor does not sort by {field}")
        column, kind = SORTS[field]
        order = f"{field}:{direction}"
        first = variables.get("first")
        limit = DEFAULT_PAGE_SIZE if first is None else int(first)
        if not 0 <= limit <= MAX_PAGE_SIZE:
            raise BadRequest("first out of range")
        flt = variables.get("filter") or {}
        statuses = flt.get("status") or []
        state = flt.get("state")
        term = fold(" ".join(flt.get("search", "").split()))
        fts = fts_query(term) if term and self.engine.sqlite else None
        after = variables.get("after")
        shape = LeadShape(
            sort=column,
            descending=direction == "DESC",
            statuses=len(statuses),
            state=state is not None,
            search="fts" if fts else ("like" if term else ""),
            after=after is not None,
        )
        args: Args = []
        if fts:
            args.append(fts)
        if state is not None:
            args.append(fold(state))
        args += statuses
        if term:
            args.append(_escape_like(term))
        if after is not None:
            value, pk = decode_cursor(after, order)
            args += [self.times.bind(value) if kind == "time" else value, pk]
        page_sql = self.sql.leads("page", shape)
        # totalCount counts the filter's rows, not only those past the cursor.
        count_sql = self.sql.leads("count", replace(shape, after=False)) if count else ""
        count_args = args[:-2] if after is not None else args

        async def work(db: Reader) -> Json:
            caller = await self.caller(db, authorization, Role.VIEWER)
            ws = caller.workspace_id
            rows = await db.rows(page_sql, [ws, *args, limit + 1]) if limit else []
            sort_index = 10 if kind == "time" else 9

            def node(row: RowT) -> Json:
                return self.lead_node(row, row[10])

            connection = self._page(rows, limit, order, sort_index, kind, after is not None, node)
            if count:
                total = await db.row(count_sql, [ws, *count_args])
                assert total is not None
                connection["totalCount"] = total[0]
            return {"leads": connection}

        result: Json = await self.engine.run(work)
        return result

    async def lead(self, variables: Json, authorization: bytes | None) -> Json:
        """Q5: lead(id) { convertedClient }: the lead, then its client."""
        pk = pk_of(variables["id"], "Lead")

        async def work(db: Reader) -> Json:
            caller = await self.caller(db, authorization, Role.VIEWER)
            row = None if pk is None else await db.row(self.sql.lead, [caller.workspace_id, pk])
            if row is None:
                return {"lead": None}
            node = self.lead_node(row, row[10])
            node["convertedAt"] = self.times.iso(row[11])
            node["convertedClient"] = None
            if row[12] is not None:
                client = await db.row(self.sql.client, [caller.workspace_id, row[12]])
                if client is not None:
                    node["convertedClient"] = self.client_node(client)
            return {"lead": node}

        result: Json = await self.engine.run(work)
        return result

    async def clients(self, variables: Json, authorization: bytes | None) -> Json:
        return await self._clients(variables, authorization, count=False)

    async def clients_count(self, variables: Json, authorization: bytes | None) -> Json:
        return await self._clients(variables, authorization, count=True)

    async def _clients(self, variables: Json, authorization: bytes | None, *, count: bool) -> Json:
        """Q6: clients(first) { convertedFrom }: the page, then its leads in one statement."""
        first = variables.get("first")
        limit = DEFAULT_PAGE_SIZE if first is None else int(first)
        if not 0 <= limit <= MAX_PAGE_SIZE:
            raise BadRequest("first out of range")
        order = "CREATED_AT:DESC"
        after = variables.get("after")
        extra: Args = []
        if after is not None:
            value, pk = decode_cursor(after, order)
            extra = [self.times.bind(value), pk]

        async def work(db: Reader) -> Json:
            caller = await self.caller(db, authorization, Role.VIEWER)
            ws = caller.workspace_id
            sql = self.sql.clients_after if extra else self.sql.clients_page
            rows = await db.rows(sql, [ws, limit + 1, *extra]) if limit else []
            shown = rows[:limit]
            converted_from: dict[int, RowT] = {}
            if shown:
                ids = [r[0] for r in shown]
                if self.engine.sqlite:
                    text = self.sql.converted_from_sqlite.format(", ".join("?" * len(ids)))
                    found = await db.rows(text, [ws, *ids])
                else:
                    found = await db.rows(self.sql.converted_from, [ws, ids])
                for lead in found:  # earliest conversion first, as the DataLoader keeps it
                    converted_from.setdefault(lead[5], lead)

            def node(row: RowT) -> Json:
                out = self.client_node(row)
                source = converted_from.get(row[0])
                out["convertedFrom"] = (
                    None
                    if source is None
                    else {
                        "id": global_id("Lead", source[0]),
                        "name": full_name(source[1], source[2]),
                        "status": source[3],
                        "convertedAt": self.times.iso(source[4]),
                    }
                )
                return out

            connection = self._page(rows, limit, order, 9, "time", after is not None, node)
            if count:
                total = await db.row(self.sql.clients_count, [ws])
                assert total is not None
                connection["totalCount"] = total[0]
            return {"clients": connection}

        result: Json = await self.engine.run(work)
        return result

    # -------------------------------------------------------------- writes

    async def create_lead(self, variables: Json, authorization: bytes | None) -> Json:
        """Q7: createLead(input): the app's validation (LeadCreate), one INSERT."""
        given = variables["input"]
        created = LeadCreate.model_validate({_snake(k): v for k, v in given.items()})
        v = created.model_dump()
        caller = await self.engine.run(lambda db: self.caller(db, authorization, Role.MEMBER))
        now, now_iso = self.times.now()
        keys = person_keys(v)
        meta = orjson.dumps(v["meta"] or {}).decode()
        status = v["status"].value
        args = [
            caller.workspace_id, now, now, None, caller.api_key_id, None, caller.api_key_id,
            v["email"], v["first_name"], v["last_name"], v["phone"], v["company"], v["city"],
            v["state"], v["postal_code"], v["source"], v["notes"], status, v["score"], meta,
            keys["email_key"], keys["name_key"], keys["city_key"], keys["state_key"],
            fold(v["source"]), keys["search_key"],
        ]  # fmt: skip
        row = await self.engine.write(lambda tx: tx.one(self.sql.insert_lead, args))
        assert row is not None
        node = {
            "id": global_id("Lead", row[0]),
            "email": v["email"],
            "firstName": v["first_name"],
            "lastName": v["last_name"],
            "name": full_name(v["first_name"], v["last_name"]),
            "company": v["company"],
            "city": v["city"],
            "state": v["state"],
            "source": v["source"],
            "status": status,
            "score": v["score"],
            "createdAt": now_iso,
        }
        return {"createLead": {"lead": node, "userErrors": []}}

    async def convert_lead(self, variables: Json, authorization: bytes | None) -> Json:
        """Q8: convertLead(id): the lead locked, the client INSERT, the lead UPDATE; one
        transaction."""
        pk = pk_of(variables["id"], "Lead")
        if pk is None:
            raise BadRequest("not a lead's id")
        caller = await self.engine.run(lambda db: self.caller(db, authorization, Role.MEMBER))
        ws, key_id = caller.workspace_id, caller.api_key_id
        now, now_iso = self.times.now()
        sql = self.sql

        async def work(tx: Tx) -> Json:
            lead = await tx.one(sql.lock_lead, [ws, pk])
            if lead is None or lead[10] is not None:
                raise BadRequest(f"lead {pk} is missing or converted already")
            email, first, last, phone, company, city, state, postal, notes, meta = lead[:10]
            values = {"email": email, "first_name": first, "last_name": last}
            values |= {"company": company, "city": city, "state": state}
            keys = person_keys(values)
            client = await tx.one(
                sql.insert_client,
                [
                    ws, now, now, None, key_id, None, key_id, email, first, last, phone,
                    company, None, city, state, postal, None, "ACTIVE", notes, meta,
                    keys["email_key"], keys["name_key"], keys["city_key"], keys["state_key"],
                    keys["search_key"],
                ],
            )  # fmt: skip
            assert client is not None
            done = await tx.one(sql.mark_converted, [now, None, key_id, now, client[0], ws, pk])
            if done is None:
                raise BadRequest(f"lead {pk} was converted meanwhile")
            return {
                "convertLead": {
                    "lead": {"id": global_id("Lead", pk), "status": "WON", "convertedAt": now_iso},
                    "client": {
                        "id": global_id("Client", client[0]),
                        "name": full_name(first, last) or "",
                        "email": email,
                        "company": company,
                        "status": "ACTIVE",
                        "createdAt": now_iso,
                        "address": {"city": city, "state": state, "postalCode": postal},
                    },
                    "userErrors": [],
                }
            }

        result: Json = await self.engine.write(work)
        return result


def _snake(name: str) -> str:
    return {
        "firstName": "first_name",
        "lastName": "last_name",
        "postalCode": "postal_code",
        "metadata": "meta",
    }.get(name, name)


def create_raw_app(settings: Settings | None = None, *, sqlite_threads: int = 0) -> RawFloor:
    return RawFloor(settings or Settings(), sqlite_threads=sqlite_threads)


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description="The benchmark's raw floor (bare driver)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args()
    settings = Settings()
    threads = int(os.environ.get("RAW_SQLITE_THREADS", "0"))
    # The same server stack as server.py and floor.py: uvicorn, one process.
    uvicorn.run(
        create_raw_app(settings, sqlite_threads=threads),
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        log_config=None,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
