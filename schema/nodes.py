"""node(id) and nodes(ids): any Lead, Client or Event by its global ID, and for ADMINs a
webhook endpoint or delivery, or a web form."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import strawberry
from sqlalchemy import Row
from strawberry.dataloader import DataLoader

from db.models import Role
from resolvers.errors import BadInput
from resolvers.ids import node_key, parse_global_id
from resolvers.loaders import Loaders
from schema.activities import Activity
from schema.clients import Client
from schema.context import Info
from schema.events import Event
from schema.follow_ups import FollowUp
from schema.forms import LeadForm
from schema.imports import ImportJob
from schema.leads import Lead
from schema.relay import Node
from schema.tags import Tag
from schema.tickets import Ticket, TicketComment
from schema.webhooks import WebhookDelivery, WebhookEndpoint

MAX_NODES = 100


@dataclass(frozen=True)
class Findable:
    """A type node(id) finds: its per-request loader by pk, and how a row becomes the type."""

    loader: Callable[[Loaders], DataLoader[int, Row[Any] | None]]
    build: Callable[[Row[Any]], Node]
    role: Role = Role.VIEWER  # below it, the node is not found


# The types node(id) finds, by the type name their global IDs carry.
NODES: dict[str, Findable] = {
    **{node.records.name: Findable(node.records.loader, node.from_row) for node in (Lead, Client)},
    "Event": Findable(lambda loaders: loaders.event_by_id, Event.from_row),
    "Activity": Findable(lambda loaders: loaders.activity_by_id, Activity.from_row),
    "FollowUp": Findable(lambda loaders: loaders.follow_up_by_id, FollowUp.from_row),
    "ImportJob": Findable(lambda loaders: loaders.import_job_by_id, ImportJob.from_row),
    "WebhookEndpoint": Findable(
        lambda loaders: loaders.webhook_endpoint_by_id, WebhookEndpoint.from_row, Role.ADMIN
    ),
    "WebhookDelivery": Findable(
        lambda loaders: loaders.webhook_delivery_by_id, WebhookDelivery.from_row, Role.ADMIN
    ),
    "Tag": Findable(lambda loaders: loaders.tag_by_id, Tag.from_row),
    "LeadForm": Findable(lambda loaders: loaders.lead_form_by_id, LeadForm.from_row, Role.ADMIN),
    "Ticket": Findable(lambda loaders: loaders.ticket_by_id, Ticket.from_row),
    "TicketComment": Findable(lambda loaders: loaders.ticket_comment_by_id, TicketComment.from_row),
}


async def load_node(info: Info, type_name: str, pk: int) -> Node | None:
    """The node of this type and pk in the caller's workspace, or None."""
    found = NODES.get(type_name)
    if found is None or not info.context.require(Role.VIEWER).role.includes(found.role):
        return None
    row = await found.loader(info.context.loaders).load(pk)
    return found.build(row) if row is not None else None


async def load_subject(info: Info, lead_id: int | None, client_id: int | None) -> Node:
    """The lead or client a record is on (an activity, a follow-up): one of the two is set,
    and the subject's deletion deletes the record."""
    if lead_id is not None:
        node = await load_node(info, "Lead", lead_id)
    else:
        assert client_id is not None
        node = await load_node(info, "Client", client_id)
    assert node is not None
    return node


async def _node(info: Info, id_: str, argument: str) -> Node | None:
    info.context.require(Role.VIEWER)
    key = node_key(id_, argument)
    if key is None:  # no row can have it
        return None
    return await load_node(info, *key)


@strawberry.type
class NodeQuery:
    @strawberry.field(description="The Lead, Client or Event with this ID, or null.")
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
        return list(await asyncio.gather(*(_node(info, i, f"ids[{n}]") for n, i in enumerate(ids))))
