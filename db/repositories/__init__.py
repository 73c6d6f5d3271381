"""Named queries, one repository per table. Scoping to the workspace happens here, once."""

from db.repositories.base import FilterSpec, Keyset, Repository
from db.repositories.clients import ClientFilterSpec, ClientRepository
from db.repositories.events import EventFilterSpec, EventRepository
from db.repositories.leads import LeadFilterSpec, LeadRepository

__all__ = [
    "ClientFilterSpec",
    "ClientRepository",
    "EventFilterSpec",
    "EventRepository",
    "FilterSpec",
    "Keyset",
    "LeadFilterSpec",
    "LeadRepository",
    "Repository",
]
