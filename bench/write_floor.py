"""The write floor: the least any server on this stack can spend on a write.

Vanilla Strawberry (``bench/framework.py``'s schema, as its documentation writes it) whose
``createLead`` and ``convertLead`` resolvers do the raw floor's work (``bench/raw.py``: the app's
validation, the credential, the statements on the bare driver in one transaction), in one
process: no SQLAlchemy, no middleware, no app code. A write target this cannot reach is one the
stack rules out.

``make bench`` drives it as the side ``write`` for the documents in ``QUERIES`` (Q7 createLead,
Q8 convertLead; it answers no read), on the server's database and settings, after checking that
it answers them with the server's JSON (up to ids, emails and times, as the raw floor) and its
own pool of leads to convert per round. Alone:

    DATABASE_URL=… .venv/bin/python -m bench.write_floor --port 8020

(the raw floor's settings: its database URL and pool as the server reads them; POST the
benchmark's Q7/Q8 documents to /graphql with an API key; ``GET /healthz`` once it is up).
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import strawberry
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig

from bench import framework as fw
from bench.raw import RawFloor, create_raw_app
from db.settings import Settings

# The bench's documents this side answers (bench/queries.py keys).
QUERIES = frozenset({"Q7", "Q8"})
RAW: RawFloor | None = None


def _raw() -> RawFloor:
    assert RAW is not None, "the raw floor starts with the app"
    return RAW


def _variables(value: Any) -> dict[str, Any]:
    """An input object as the raw floor reads its JSON: camelCase names, enums by value."""
    out = {}
    for name, item in vars(value).items():
        if item is strawberry.UNSET:
            continue
        head, *rest = name.split("_")
        out[head + "".join(p.title() for p in rest)] = getattr(item, "value", item)
    return out


def _authorization(info: strawberry.Info) -> bytes:
    return str(info.context["request"].headers.get("authorization", "")).encode()


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_lead(
        self, info: strawberry.Info, input: fw.CreateLeadInput
    ) -> fw.CreateLeadPayload:
        answer = await _raw().create_lead({"input": _variables(input)}, _authorization(info))
        out = answer["createLead"]["lead"]
        lead = fw.Lead(
            id=strawberry.ID(out["id"]),
            email=out["email"],
            first_name=out["firstName"],
            last_name=out["lastName"],
            name=out["name"],
            company=out["company"],
            city=out["city"],
            state=out["state"],
            source=out["source"],
            status=fw.LeadStatus(out["status"]),
            score=out["score"],
            created_at=datetime.fromisoformat(out["createdAt"]),
        )
        return fw.CreateLeadPayload(lead=lead, user_errors=[])

    @strawberry.mutation
    async def convert_lead(self, info: strawberry.Info, id: strawberry.ID) -> fw.ConvertLeadPayload:
        answer = (await _raw().convert_lead({"id": id}, _authorization(info)))["convertLead"]
        if answer["userErrors"] or answer["lead"] is None:
            raise ValueError(f"convertLead refused: {answer['userErrors']}")
        out, client = answer["lead"], answer["client"]
        converted_at = out.get("convertedAt")
        lead = fw.Lead(  # only id, status and convertedAt are selected by Q8
            id=strawberry.ID(out["id"]),
            email="",
            first_name=None,
            last_name=None,
            name=None,
            company=None,
            city=None,
            state=None,
            source=None,
            status=fw.LeadStatus(out["status"]),
            score=0,
            created_at=datetime.now(UTC),
            converted_at=datetime.fromisoformat(converted_at) if converted_at else None,
        )
        address = client["address"]
        made = fw.Client(
            id=strawberry.ID(client["id"]),
            name=client["name"],
            email=client["email"],
            company=client["company"],
            status=fw.ClientStatus(client["status"]),
            created_at=datetime.fromisoformat(client["createdAt"]),
            address=fw.Address(
                city=address["city"], state=address["state"], postal_code=address["postalCode"]
            ),
        )
        return fw.ConvertLeadPayload(lead=lead, client=made, user_errors=[])


schema = strawberry.Schema(
    query=fw.Query,
    mutation=Mutation,
    config=StrawberryConfig(scalar_map={datetime: fw.DateTime}),
    extensions=[ParserCache, ValidationCache],
)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    raw = _raw()
    await raw.engine.start()
    try:
        yield
    finally:
        await raw.engine.stop()


def main() -> None:
    global RAW
    parser = argparse.ArgumentParser(description="The write floor (Strawberry + bare driver)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8020)
    args = parser.parse_args()
    settings = Settings()
    RAW = create_raw_app(settings)
    app = Starlette(
        routes=[
            Route("/graphql", GraphQL(schema, graphql_ide=None)),
            Route("/healthz", fw.healthz),
        ],
        lifespan=lifespan,
    )
    # The framework floor's uvicorn options (server.py serve's).
    uvicorn.run(
        app,
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
