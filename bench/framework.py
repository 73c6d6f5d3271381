"""The framework floor: vanilla Strawberry answering the bench's documents from memory.

What Strawberry + graphql-core + Starlette + uvicorn cost for the same GraphQL documents and
the same answer sizes as the server, with no database and no app code on a request's path. It
is Strawberry as its documentation writes it: ``strawberry.Schema(query=..., mutation=...,
extensions=[ParserCache, ValidationCache])``, ``strawberry.asgi.GraphQL`` routed at
``/graphql`` in a Starlette app, served by uvicorn with the server's options (httptools, the
default loop, no access log), and ``GET /healthz``.

The types declare the fields the bench's documents select (``bench/queries.py``), with the
contract's names and types (``tests/contract/schema.graphql``): enums, the ``DateTime`` scalar
(ISO 8601, UTC, microseconds: serialized per request as the server's is), ``ID``, the
``LeadFilter`` / ``LeadOrder`` / ``CreateLeadInput`` inputs. At startup it reads real rows once
(the workspace's first ``ROWS`` leads and ``ROWS`` active clients in the server's default order,
the clients' converted-from leads, a converted lead with its client, the counts) through the
app's ``Database``, then closes it. Every request answers from those objects:

- ``leads``: ``first`` edges (prebuilt, with cursors in the server's format) from the position
  after ``after`` when that cursor is one of them, else from the start; filters and order are
  accepted and not applied (the answer has the size the server's has, which is what this
  measures); ``totalCount`` is the workspace's count.
- ``lead(id)``: the converted lead with its client (whatever the id); ``clients``: as ``leads``.
- ``createLead``: a Lead built from the input (a new id, status NEW, the time now);
  ``convertLead``: a prebuilt payload. No Authorization check: the header is ignored.

    DATABASE_URL=... python -m bench.framework --port 8003

The harness drives it as the side ``framework`` for the documents in ``QUERIES`` (not Q3: a
search's answer size depends on the data) and checks that it answers them with the server's
JSON shape (keys and list lengths; its values are not the server's).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import enum
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import strawberry
import uvicorn
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig

# The bench's documents this side answers (bench/queries.py keys).
QUERIES = frozenset(
    {"Q1", "Q1+count", "Q2", "Q2+count", "Q4", "Q4+count", "Q5", "Q6", "Q6+count", "Q7", "Q8"}
)
ROWS = 100  # leads and clients held in memory (a page is at most this many)

# ------------------------------------------------------------------ scalars and enums


def _serialize(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


DateTime = strawberry.scalar(
    name="DateTime",
    description="ISO 8601 date-time; always UTC on output.",
    serialize=_serialize,
    parse_value=_parse,
)


@strawberry.enum
class LeadStatus(enum.Enum):
    NEW = "NEW"
    CONTACTED = "CONTACTED"
    QUALIFIED = "QUALIFIED"
    WON = "WON"
    LOST = "LOST"


@strawberry.enum
class ClientStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"


@strawberry.enum
class LeadSortField(enum.Enum):
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"
    SCORE = "SCORE"
    NAME = "NAME"
    EMAIL = "EMAIL"


@strawberry.enum
class SortDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.enum
class UserErrorCode(enum.Enum):
    INVALID = "INVALID"
    REQUIRED = "REQUIRED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_CONVERTED = "ALREADY_CONVERTED"
    ALREADY_ARCHIVED = "ALREADY_ARCHIVED"
    NOT_ARCHIVED = "NOT_ARCHIVED"
    TAKEN = "TAKEN"


# ------------------------------------------------------------------ types


@strawberry.type
class Address:
    city: str | None
    state: str | None
    postal_code: str | None


@strawberry.type
class Lead:
    id: strawberry.ID
    email: str
    first_name: str | None
    last_name: str | None
    name: str | None
    company: str | None
    city: str | None
    state: str | None
    source: str | None
    status: LeadStatus
    score: int
    created_at: datetime
    converted_at: datetime | None = None
    converted_client: Client | None = None


@strawberry.type
class Client:
    id: strawberry.ID
    name: str
    email: str
    company: str | None
    status: ClientStatus
    created_at: datetime
    address: Address
    converted_from: Lead | None = None


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class LeadEdge:
    cursor: str
    node: Lead


@strawberry.type
class LeadConnection:
    edges: list[LeadEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class ClientEdge:
    cursor: str
    node: Client


@strawberry.type
class ClientConnection:
    edges: list[ClientEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class UserError:
    field: list[str] | None
    message: str
    code: UserErrorCode


@strawberry.type
class CreateLeadPayload:
    lead: Lead | None
    user_errors: list[UserError]


@strawberry.type
class ConvertLeadPayload:
    lead: Lead | None
    client: Client | None
    user_errors: list[UserError]


@strawberry.input
class IntRange:
    gte: int | None = None
    lte: int | None = None


@strawberry.input
class DateTimeRange:
    gte: datetime | None = None
    lt: datetime | None = None


@strawberry.input
class LeadFilter:
    search: str | None = None
    status: list[LeadStatus] | None = None
    source: list[str] | None = None
    city: str | None = None
    state: str | None = None
    email: str | None = None
    score: IntRange | None = None
    created_at: DateTimeRange | None = None
    converted: bool | None = None


@strawberry.input
class LeadOrder:
    field: LeadSortField
    direction: SortDirection | None = None


@strawberry.input
class CreateLeadInput:
    # As the server's: optional fields without a default (left out, not null).
    email: str
    first_name: str | None = strawberry.UNSET
    last_name: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    company: str | None = strawberry.UNSET
    city: str | None = strawberry.UNSET
    state: str | None = strawberry.UNSET
    postal_code: str | None = strawberry.UNSET
    source: str | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET
    status: LeadStatus | None = strawberry.UNSET
    score: int | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET


# ------------------------------------------------------------------ the rows, read once


@dataclass
class Data:
    leads: list[LeadEdge]
    clients: list[ClientEdge]
    lead_count: int
    client_count: int
    converted: Lead  # with its client
    next_id: itertools.count[int]
    lead_at: dict[str, int]  # cursor -> index in leads
    client_at: dict[str, int]


DATA: Data | None = None
E = TypeVar("E", LeadEdge, ClientEdge)
T = TypeVar("T")


def _data() -> Data:
    assert DATA is not None, "the rows are read before the server starts"
    return DATA


def _given(value: T | None) -> T | None:
    return None if value is strawberry.UNSET else value


def _page(
    edges: list[E], at: dict[str, int], first: int | None, after: str | None
) -> tuple[list[E], PageInfo]:
    """``first`` edges after the one ``after`` names (from the start when it is not held)."""
    start = at[after] + 1 if after is not None and after in at else 0
    shown = edges[start : start + (20 if first is None else first)]
    info = PageInfo(
        has_next_page=start + len(shown) < len(edges),
        end_cursor=shown[-1].cursor if shown else None,
    )
    return shown, info


@strawberry.type
class Query:
    @strawberry.field
    def leads(
        self,
        first: int | None = None,
        after: str | None = None,
        filter: LeadFilter | None = None,
        order_by: LeadOrder | None = None,
    ) -> LeadConnection:
        data = _data()
        edges, info = _page(data.leads, data.lead_at, first, after)
        return LeadConnection(edges=edges, page_info=info, total_count=data.lead_count)

    @strawberry.field
    def lead(self, id: strawberry.ID) -> Lead | None:
        return _data().converted

    @strawberry.field
    def clients(self, first: int | None = None, after: str | None = None) -> ClientConnection:
        data = _data()
        edges, info = _page(data.clients, data.client_at, first, after)
        return ClientConnection(edges=edges, page_info=info, total_count=data.client_count)


@strawberry.type
class Mutation:
    @strawberry.mutation
    def create_lead(self, input: CreateLeadInput) -> CreateLeadPayload:
        first, last = _given(input.first_name), _given(input.last_name)
        lead = Lead(
            id=strawberry.ID(_gid("Lead", next(_data().next_id))),
            email=input.email,
            first_name=first,
            last_name=last,
            name=_name(first, last),
            company=_given(input.company),
            city=_given(input.city),
            state=_given(input.state),
            source=_given(input.source),
            status=_given(input.status) or LeadStatus.NEW,
            score=_given(input.score) or 0,
            created_at=datetime.now(UTC),
        )
        return CreateLeadPayload(lead=lead, user_errors=[])

    @strawberry.mutation
    def convert_lead(self, id: strawberry.ID) -> ConvertLeadPayload:
        lead = _data().converted
        return ConvertLeadPayload(lead=lead, client=lead.converted_client, user_errors=[])


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    config=StrawberryConfig(scalar_map={datetime: DateTime}),
    # As Strawberry's documentation now writes them: classes (a fresh extension per request;
    # the caches themselves live at module level); instances are deprecated (0.341 warns).
    extensions=[ParserCache, ValidationCache],
)


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def create_framework_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/graphql", GraphQL(schema, graphql_ide=None)),
            Route("/healthz", healthz),
        ]
    )


# ------------------------------------------------------------------ startup: real rows


def _gid(type_name: str, pk: int) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _name(first: str | None, last: str | None) -> str | None:
    return " ".join(p for p in (first, last) if p) or None


def _lead(row: Any) -> Lead:
    return Lead(
        id=strawberry.ID(_gid("Lead", row.id)),
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        name=_name(row.first_name, row.last_name),
        company=row.company,
        city=row.city,
        state=row.state,
        source=row.source,
        status=LeadStatus(row.status),
        score=row.score,
        created_at=_utc(row.created_at) or datetime.now(UTC),
        converted_at=_utc(row.converted_at),
    )


def _client(row: Any) -> Client:
    return Client(
        id=strawberry.ID(_gid("Client", row.id)),
        name=_name(row.first_name, row.last_name) or "",
        email=row.email,
        company=row.company,
        status=ClientStatus(row.status),
        created_at=_utc(row.created_at) or datetime.now(UTC),
        address=Address(city=row.city, state=row.state, postal_code=row.postal_code),
    )


async def load(database_url: str) -> Data:
    """The rows every request answers from, read once through the app's data layer."""
    from db.engine import Database
    from db.models import DEFAULT_WORKSPACE_ID
    from db.models import Client as ClientRow
    from db.models import Lead as LeadRow
    from db.settings import Settings
    from resolvers.pagination import encode_cursor

    leads: Any = LeadRow.__table__  # type: ignore[attr-defined]
    clients: Any = ClientRow.__table__  # type: ignore[attr-defined]
    in_ws = leads.c.workspace_id == DEFAULT_WORKSPACE_ID
    db = Database(database_url, Settings(database_url=database_url))
    try:
        async with db.read() as conn:
            newest = leads.c.created_at.desc(), leads.c.id.desc()
            by_time = select(leads).where(in_ws).order_by(*newest).limit(ROWS)
            lead_rows = (await conn.execute(by_time)).all()
            active = clients.c.workspace_id == DEFAULT_WORKSPACE_ID, clients.c.status == "ACTIVE"
            client_rows = (
                await conn.execute(
                    select(clients)
                    .where(*active)
                    .order_by(clients.c.created_at.desc(), clients.c.id.desc())
                    .limit(ROWS)
                )
            ).all()
            sources = (
                await conn.execute(
                    select(leads).where(
                        in_ws, leads.c.converted_client_id.in_([r.id for r in client_rows])
                    )
                )
            ).all()
            converted = (
                await conn.execute(
                    select(leads).where(in_ws, leads.c.converted_client_id.is_not(None)).limit(1)
                )
            ).one()
            its_client = (
                await conn.execute(
                    select(clients).where(clients.c.id == converted.converted_client_id)
                )
            ).one()
            lead_count = (await conn.execute(select(func.count()).where(in_ws))).scalar_one()
            client_count = (await conn.execute(select(func.count()).where(*active))).scalar_one()
    finally:
        await db.dispose()
    from_lead = {r.converted_client_id: _lead(r) for r in sources}
    lead_edges = [
        LeadEdge(cursor=encode_cursor("CREATED_AT:DESC", _utc(r.created_at), r.id), node=_lead(r))
        for r in lead_rows
    ]
    client_edges = []
    for r in client_rows:
        client = _client(r)
        client.converted_from = from_lead.get(r.id)
        cursor = encode_cursor("CREATED_AT:DESC", _utc(r.created_at), r.id)
        client_edges.append(ClientEdge(cursor=cursor, node=client))
    lead = _lead(converted)
    lead.converted_client = _client(its_client)
    biggest = max([r.id for r in lead_rows] + [converted.id])
    return Data(
        leads=lead_edges,
        clients=client_edges,
        lead_count=int(lead_count),
        client_count=int(client_count),
        converted=lead,
        next_id=itertools.count(biggest * 10),
        lead_at={e.cursor: i for i, e in enumerate(lead_edges)},
        client_at={e.cursor: i for i, e in enumerate(client_edges)},
    )


def main() -> None:
    global DATA
    from db.settings import Settings

    parser = argparse.ArgumentParser(description="The benchmark's framework floor (no database)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8003)
    args = parser.parse_args()
    settings = Settings()  # DATABASE_URL and LOG_LEVEL as the server reads them
    DATA = asyncio.run(load(settings.database_url))
    # server.py serve's uvicorn options (its protocol is uvicorn's httptools one with a limit).
    uvicorn.run(
        create_framework_app(),
        host=args.host,
        port=args.port,
        http="httptools",
        loop="auto",
        log_level=settings.log_level.lower(),
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
