"""SQLModel tables and the validated Create/Update models that feed them."""

from db.models.auth import (
    ApiKey,
    CodePurpose,
    EmailCode,
    Membership,
    RateLimit,
    Role,
    Session,
    User,
)
from db.models.clients import Client, ClientCreate, ClientStatus, ClientUpdate
from db.models.events import Event, EventCounter, EventType
from db.models.leads import Lead, LeadCreate, LeadStatus, LeadUpdate
from db.models.workspaces import DEFAULT_WORKSPACE_ID, Workspace

__all__ = [
    "DEFAULT_WORKSPACE_ID",
    "ApiKey",
    "Client",
    "ClientCreate",
    "ClientStatus",
    "ClientUpdate",
    "CodePurpose",
    "EmailCode",
    "Event",
    "EventCounter",
    "EventType",
    "Lead",
    "LeadCreate",
    "LeadStatus",
    "LeadUpdate",
    "Membership",
    "RateLimit",
    "Role",
    "Session",
    "User",
    "Workspace",
]
