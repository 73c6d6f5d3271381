"""node(id) and nodes(ids): any Lead or Client by its global ID."""

from __future__ import annotations

import strawberry

from db.models import Role
from resolvers.errors import BadInput
from resolvers.ids import node_key, parse_global_id
from schema.clients import Client
from schema.context import Info
from schema.leads import Lead
from schema.records import Record
from schema.relay import Node

MAX_NODES = 100


# The record types node(id) finds, by the type name their global IDs carry.
NODES: dict[str, type[Record]] = {node.records.name: node for node in (Lead, Client)}


async def _node(info: Info, id_: str, argument: str) -> Node | None:
    info.context.require(Role.VIEWER)
    key = node_key(id_, argument)
    node = NODES.get(key[0]) if key is not None else None
    if key is None or node is None:  # no row can have it, or its type is not a Node
        return None
    return node.maybe(await node.records.loader(info.context.loaders).load(key[1]))


@strawberry.type
class NodeQuery:
    @strawberry.field(description="The Lead or Client with this ID, or null.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return await _node(info, id, "id")

    @strawberry.field(
        description=f"Several nodes by ID, in order, null where missing; at most {MAX_NODES}."
    )
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise BadInput(f"Argument 'ids' takes at most {MAX_NODES} IDs (got {len(ids)}).", "ids")
        info.context.require(Role.VIEWER)
        # Every ID is checked before any is loaded: a malformed one fails the field before a
        # query starts, not while the others' loads run on past the response.
        for n, id_ in enumerate(ids):
            if parse_global_id(id_) is None:
                raise BadInput(f"Argument 'ids[{n}]' is not a valid ID.", f"ids[{n}]")
        # Loads are batched by the DataLoaders: one query per type for the whole list.
        import asyncio

        return list(await asyncio.gather(*(_node(info, i, f"ids[{n}]") for n, i in enumerate(ids))))
