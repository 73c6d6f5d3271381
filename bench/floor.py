"""The floor: what the benchmark's queries cost without GraphQL.

A plain Starlette app with one route per query of the mix. Each route runs the same SQL
statements as the server for that query, through the app's own data layer (``Database``, the
repositories, ``resolvers.auth.authenticate`` for the bearer credential, ``resolvers.pagination``
for pages and cursors, the pydantic Create models for writes), on the same number of
connections, and builds the same JSON by hand. No GraphQL anywhere: no parsing, validation or
execution, no Strawberry types. The harness checks that both answer the same JSON and run as
many statements.

Requests carry the same body as the server's (``{"query": ..., "variables": ...}``); the floor
reads only the variables, and only the arguments the mix uses.

    python -m bench.floor --port 8001     # DATABASE_URL etc. from the environment, as server.py
"""

from __future__ import annotations

import argparse
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import uvicorn
from sqlalchemy import Row
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from db.engine import Database
from db.models import ClientCreate, LeadCreate, LeadStatus, Role
from db.models.clients import AddressIn
from db.models.fields import full_name
from db.repositories import ClientFilterSpec, ClientRepository, LeadFilterSpec, LeadRepository
from db.repositories.base import FilterSpec, Repository
from db.settings import Settings
from db.types import utcnow
from resolvers.auth import Principal, actor_columns, authenticate, require
from resolvers.clients import CLIENT_SORTS
from resolvers.errors import AuthError
from resolvers.ids import pk_for_mutation, pk_for_query, to_global_id
from resolvers.leads import LEAD_SORTS
from resolvers.pagination import Page, SortKey, fetch_page, page_args

Json = dict[str, Any]


# ------------------------------------------------------------------ JSON, as the schema shapes it


def iso(value: datetime | None) -> str | None:
    """The DateTime scalar's form: UTC, with an offset and microseconds."""
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def lead_node(row: Row[Any]) -> Json:
    """LEAD_FIELDS in bench/queries.py."""
    return {
        "id": to_global_id("Lead", row.id),
        "email": row.email,
        "firstName": row.first_name,
        "lastName": row.last_name,
        "name": full_name(row.first_name, row.last_name),
        "company": row.company,
        "city": row.city,
        "state": row.state,
        "source": row.source,
        "status": row.status,
        "score": row.score,
        "createdAt": iso(row.created_at),
    }


def client_node(row: Row[Any]) -> Json:
    """CLIENT_FIELDS in bench/queries.py."""
    return {
        "id": to_global_id("Client", row.id),
        "name": full_name(row.first_name, row.last_name) or "",
        "email": row.email,
        "company": row.company,
        "status": row.status,
        "createdAt": iso(row.created_at),
        "address": {"city": row.city, "state": row.state, "postalCode": row.postal_code},
    }


def page_json(page: Page, node: Callable[[Row[Any]], Json]) -> Json:
    return {
        "edges": [
            {"cursor": cursor, "node": node(row)}
            for cursor, row in zip(page.cursors, page.rows, strict=True)
        ],
        "pageInfo": {
            "hasNextPage": page.has_next_page,
            "endCursor": page.cursors[-1] if page.cursors else None,
        },
    }


def data(payload: Json) -> Response:
    return JSONResponse({"data": payload})


# ------------------------------------------------------------------ request plumbing


class Floor:
    """The floor's state: the app's Database and Settings, as server.py's lifespan builds them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url, settings)

    async def principal(self, request: Request, role: Role) -> Principal:
        principal, rejected = await authenticate(
            self.db, self.settings, request.headers.get("authorization")
        )
        return require(principal, role, rejected)


def floor_of(request: Request) -> Floor:
    floor: Floor = request.app.state.floor
    return floor


async def variables_of(request: Request) -> Json:
    body = await request.json()
    variables: Json = body.get("variables") or {}
    return variables


def _only(variables: Json | None, allowed: Sequence[str], what: str) -> Json:
    """The floor implements what the mix uses; anything else is a bug in the harness."""
    variables = variables or {}
    unknown = set(variables) - set(allowed)
    if unknown:
        raise ValueError(f"the floor does not implement {what} {sorted(unknown)}")
    return variables


def _order(order_by: Json | None, sorts: dict[str, SortKey]) -> tuple[str, str, SortKey]:
    order_by = _only(order_by, ("field", "direction"), "orderBy")
    field = order_by.get("field", "CREATED_AT")
    direction = order_by.get("direction", "DESC")
    return field, direction, sorts[field]


async def _page(
    floor: Floor,
    variables: Json,
    sorts: dict[str, SortKey],
    repository: Callable[[Any], Repository],
    spec: FilterSpec,
) -> Page:
    field, direction, sort = _order(variables.get("orderBy"), sorts)
    order = f"{field}:{direction}"
    args = page_args(variables.get("first"), variables.get("after"), None, None, order, sort)
    return await fetch_page(floor.db, repository, spec, sort, direction == "DESC", order, args)


# ------------------------------------------------------------------ reads


async def leads(request: Request, *, count: bool) -> Response:
    """Q1-Q4: leads(first, after, filter: {status, state, search}, orderBy)."""
    floor = floor_of(request)
    variables = _only(
        await variables_of(request), ("first", "after", "filter", "orderBy"), "variables"
    )
    principal = await floor.principal(request, Role.VIEWER)
    flt = _only(variables.get("filter"), ("status", "state", "search"), "filter")
    # Whitespace runs fold to one space, as resolvers.inputs does for the search.
    search = " ".join(flt.get("search", "").split()) or None
    statuses = [LeadStatus(s) for s in flt["status"]] if "status" in flt else None
    spec = LeadFilterSpec(search=search, statuses=statuses, state=flt.get("state"))

    def repository(conn: Any) -> LeadRepository:
        return LeadRepository(conn, principal.workspace_id)

    page = await _page(floor, variables, LEAD_SORTS, repository, spec)
    connection = page_json(page, lead_node)
    if count:
        connection["totalCount"] = await page.count()
    return data({"leads": connection})


async def lead(request: Request) -> Response:
    """Q5: lead(id) with convertedClient; one statement per relation, as the DataLoaders do."""
    floor = floor_of(request)
    variables = _only(await variables_of(request), ("id",), "variables")
    principal = await floor.principal(request, Role.VIEWER)
    ws = principal.workspace_id
    pk = pk_for_query(variables["id"], "Lead")
    row = None
    if pk is not None:
        async with floor.db.read() as conn:
            found = await LeadRepository(conn, ws).get_many([pk])
        row = found[0] if found else None
    if row is None:
        return data({"lead": None})
    node = lead_node(row) | {"convertedAt": iso(row.converted_at), "convertedClient": None}
    if row.converted_client_id is not None:
        async with floor.db.read() as conn:
            clients = await ClientRepository(conn, ws).get_many([row.converted_client_id])
        if clients:
            node["convertedClient"] = client_node(clients[0])
    return data({"lead": node})


async def clients(request: Request, *, count: bool) -> Response:
    """Q6: clients(first) with convertedFrom: the page, then one statement for its leads."""
    floor = floor_of(request)
    variables = _only(await variables_of(request), ("first", "after"), "variables")
    principal = await floor.principal(request, Role.VIEWER)
    ws = principal.workspace_id

    def repository(conn: Any) -> ClientRepository:
        return ClientRepository(conn, ws)

    page = await _page(floor, variables, CLIENT_SORTS, repository, ClientFilterSpec())
    converted_from: dict[int, Row[Any]] = {}
    if page.rows:
        async with floor.db.read() as conn:
            found = await LeadRepository(conn, ws).converted_into([r.id for r in page.rows])
        for row in found:  # earliest conversion first, as the DataLoader keeps it
            converted_from.setdefault(row.converted_client_id, row)

    def node(row: Row[Any]) -> Json:
        source = converted_from.get(row.id)
        return client_node(row) | {
            "convertedFrom": None
            if source is None
            else {
                "id": to_global_id("Lead", source.id),
                "name": full_name(source.first_name, source.last_name),
                "status": source.status,
                "convertedAt": iso(source.converted_at),
            }
        }

    connection = page_json(page, node)
    if count:
        connection["totalCount"] = await page.count()
    return data({"clients": connection})


# ------------------------------------------------------------------ writes


def _snake(name: str) -> str:
    return "meta" if name == "metadata" else re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


async def create_lead(request: Request) -> Response:
    """Q7: createLead(input): validate with LeadCreate, one INSERT ... RETURNING."""
    floor = floor_of(request)
    variables = _only(await variables_of(request), ("input",), "variables")
    principal = await floor.principal(request, Role.MEMBER)
    # The mix sends only valid input: a validation error here is a harness bug (a 500).
    created = LeadCreate.model_validate({_snake(k): v for k, v in variables["input"].items()})
    values = created.model_dump()
    values["status"] = values["status"].value
    values["meta"] = values["meta"] or {}
    async with floor.db.write() as session:
        row = await LeadRepository(session, principal.workspace_id).insert(
            values | actor_columns(principal, created=True)
        )
    return data({"createLead": {"lead": lead_node(row), "userErrors": []}})


async def convert_lead(request: Request) -> Response:
    """Q8: convertLead(id): the lead (locked), the client INSERT (its unique index checks the
    email) and the lead UPDATE in one transaction, as resolvers.leads.convert_lead does without
    input."""
    floor = floor_of(request)
    variables = _only(await variables_of(request), ("id",), "variables")
    principal = await floor.principal(request, Role.MEMBER)
    ws = principal.workspace_id
    pk, problem = pk_for_mutation(variables["id"], "Lead", ["id"])
    if pk is None:
        raise ValueError(f"bad lead id {variables['id']!r}: {problem}")
    async with floor.db.write() as session:
        leads_ = LeadRepository(session, ws)
        clients_ = ClientRepository(session, ws)
        row = await leads_.get(pk, for_update=True)
        if row is None or row.converted_at is not None:
            # Each request names a lead not converted yet: anything else is a harness bug.
            raise ValueError(f"lead {pk} is missing or converted already")
        address = {"city": row.city, "state": row.state, "postal_code": row.postal_code}
        new = ClientCreate.model_validate(
            {
                "email": row.email,
                "first_name": row.first_name,
                "last_name": row.last_name,
                "phone": row.phone,
                "company": row.company,
                "notes": row.notes,
                "meta": dict(row.meta),
                "address": AddressIn.model_validate(address).model_dump(),
            }
        )
        # As the server: no email SELECT, the unique index checks it in the INSERT (a taken
        # email would be a harness bug here, answered 500).
        values = new.model_dump(exclude={"address"})
        values.update(new.address.model_dump() if new.address else {})
        client = await clients_.insert(
            {**values, "meta": values["meta"] or {}, "status": "ACTIVE"}
            | actor_columns(principal, created=True)
        )
        converted = await leads_.mark_converted(
            row, client.id, utcnow(), actor_columns(principal, created=False)
        )
    assert converted is not None
    return data(
        {
            "convertLead": {
                "lead": {
                    "id": to_global_id("Lead", converted.id),
                    "status": converted.status,
                    "convertedAt": iso(converted.converted_at),
                },
                "client": client_node(client),
                "userErrors": [],
            }
        }
    )


# ------------------------------------------------------------------ the app


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    return JSONResponse({"errors": [{"message": str(exc)}]}, status_code=401)


Endpoint = Callable[[Request], Awaitable[Response]]

# path -> handler; the harness's queries name these paths (bench/queries.py).
ROUTES: dict[str, Endpoint] = {
    "/leads": partial(leads, count=False),
    "/leads/count": partial(leads, count=True),
    "/lead": lead,
    "/clients": partial(clients, count=False),
    "/clients/count": partial(clients, count=True),
    "/create-lead": create_lead,
    "/convert-lead": convert_lead,
}


def create_floor_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        floor = Floor(settings)
        app.state.floor = floor
        app.state.db = floor.db  # where the harness counts statements
        try:
            yield
        finally:
            await floor.db.dispose()

    routes = [Route("/healthz", healthz, methods=["GET"])]
    routes += [Route(path, endpoint, methods=["POST"]) for path, endpoint in ROUTES.items()]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={AuthError: auth_error})


def main() -> None:
    parser = argparse.ArgumentParser(description="The benchmark's floor (no GraphQL)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    settings = Settings()
    # The same server stack as server.py: uvicorn, one process, its default loop and parser.
    uvicorn.run(
        create_floor_app(settings),
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        log_config=None,
    )


if __name__ == "__main__":
    main()
