"""Named queries, one repository per table. Scoping to the workspace happens here, once."""

from db.repositories.base import FilterSpec, Keyset, Repository
from db.repositories.clients import ClientFilterSpec, ClientRepository
from db.repositories.events import EventFilterSpec, EventRepository
from db.repositories.leads import LeadFilterSpec, LeadRepository
from db.repositories.tickets import CommentRepository, TicketFilterSpec, TicketRepository
from db.repositories.webhooks import (
    AttemptResult,
    DeliveryFilterSpec,
    DeliveryQueue,
    DeliveryRepository,
    EndpointRepository,
)

__all__ = [
    "AttemptResult",
    "ClientFilterSpec",
    "ClientRepository",
    "CommentRepository",
    "DeliveryFilterSpec",
    "DeliveryQueue",
    "DeliveryRepository",
    "EndpointRepository",
    "EventFilterSpec",
    "EventRepository",
    "FilterSpec",
    "Keyset",
    "LeadFilterSpec",
    "LeadRepository",
    "Repository",
    "TicketFilterSpec",
    "TicketRepository",
]
