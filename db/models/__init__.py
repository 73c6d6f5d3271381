"""SQLModel tables and the validated Create/Update models that feed them."""

from db.models.activities import Activity, ActivityKind
from db.models.auth import (
    ApiKey,
    CodePurpose,
    EmailCode,
    Membership,
    RateBucket,
    RateLimit,
    Role,
    Session,
    User,
)
from db.models.clients import Client, ClientCreate, ClientStatus, ClientUpdate
from db.models.documents import TrustedDocument
from db.models.events import Event, EventCounter, EventType
from db.models.follow_ups import DueWindow, FollowUp, FollowUpStatus
from db.models.imports import (
    DuplicatePolicy,
    ImportChunk,
    ImportJob,
    ImportRowError,
    ImportStatus,
    LeadMatch,
)
from db.models.intake import (
    ClientExternalId,
    LeadExternalId,
    LeadForm,
    LeadMerge,
)
from db.models.leads import Lead, LeadCreate, LeadStatus, LeadUpdate
from db.models.tags import ClientTag, LeadTag, Tag, TagCreate, TagUpdate
from db.models.tallies import LeadDayTally, LeadTally, LeadTallyTotal
from db.models.tickets import (
    Ticket,
    TicketComment,
    TicketCounter,
    TicketPriority,
    TicketStatus,
)
from db.models.webhooks import (
    DeliveryStatus,
    EndpointCreate,
    EndpointStatus,
    EndpointUpdate,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from db.models.workspaces import DEFAULT_WORKSPACE_ID, Workspace

__all__ = [
    "DEFAULT_WORKSPACE_ID",
    "Activity",
    "ActivityKind",
    "ApiKey",
    "Client",
    "ClientCreate",
    "ClientExternalId",
    "ClientStatus",
    "ClientTag",
    "ClientUpdate",
    "CodePurpose",
    "DeliveryStatus",
    "DueWindow",
    "DuplicatePolicy",
    "EmailCode",
    "EndpointCreate",
    "EndpointStatus",
    "EndpointUpdate",
    "Event",
    "EventCounter",
    "EventType",
    "FollowUp",
    "FollowUpStatus",
    "ImportChunk",
    "ImportJob",
    "ImportRowError",
    "ImportStatus",
    "Lead",
    "LeadCreate",
    "LeadDayTally",
    "LeadExternalId",
    "LeadForm",
    "LeadMatch",
    "LeadMerge",
    "LeadStatus",
    "LeadTag",
    "LeadTally",
    "LeadTallyTotal",
    "LeadUpdate",
    "Membership",
    "RateBucket",
    "RateLimit",
    "Role",
    "Session",
    "Tag",
    "TagCreate",
    "TagUpdate",
    "Ticket",
    "TicketComment",
    "TicketCounter",
    "TicketPriority",
    "TicketStatus",
    "TrustedDocument",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "Workspace",
]
