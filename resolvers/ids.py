"""Relay global IDs: base64 of "Type:pk". Opaque to clients, checked strictly here."""

from __future__ import annotations

import base64
import binascii

from db.models.fields import ID_MAX
from resolvers.errors import BadInput, Problem, UserErrorCode

NODE_TYPES = (
    *("Lead", "Client", "Event", "User", "ApiKey", "Session", "Workspace"),
    *("WebhookEndpoint", "WebhookDelivery", "ImportJob"),
    "LeadForm",
    "Tag",
    "Activity",
    *("Ticket", "TicketComment"),
    "FollowUp",
)
_MAX_PK = 2**63 - 1


def to_global_id(type_name: str, pk: int) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def parse_global_id(global_id: str) -> tuple[str, int] | None:
    """(type, pk) for a well-formed ID of a known type, else None."""
    if not isinstance(global_id, str) or not 0 < len(global_id) <= 64:
        return None
    try:
        raw = base64.b64decode(global_id.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    type_name, sep, pk = raw.partition(":")
    if not sep or type_name not in NODE_TYPES or not pk.isascii() or not pk.isdigit():
        return None
    value = int(pk)
    if not 0 < value <= _MAX_PK or pk != str(value):
        return None
    # base64 decoding forgives extra padding and stray bits in the last character, so several
    # strings decode to one record; clients compare and cache IDs as strings, so only the one
    # we hand out names it.
    if global_id != to_global_id(type_name, value):
        return None
    return type_name, value


def node_key(global_id: str, argument: str = "id") -> tuple[str, int] | None:
    """(type, pk) to look up; None for an ID that no row can have (well-formed, but past any
    id column); BadInput when malformed. Every lookup by global ID starts here, so a pk the
    database cannot bind never reaches it."""
    parsed = parse_global_id(global_id)
    if parsed is None:
        raise BadInput(f"Argument '{argument}' is not a valid ID.", argument)
    return parsed if parsed[1] <= ID_MAX else None


def pk_for_query(global_id: str, type_name: str, argument: str = "id") -> int | None:
    """The pk of a ``type_name`` ID; None for another type's ID or one no row can have;
    BadInput when malformed."""
    key = node_key(global_id, argument)
    return key[1] if key is not None and key[0] == type_name else None


def pk_for_mutation(
    global_id: str, type_name: str, field: list[str]
) -> tuple[int | None, Problem | None]:
    """The pk of a ``type_name`` ID, or the Problem to report (INVALID or NOT_FOUND)."""
    parsed = parse_global_id(global_id)
    if parsed is None:
        return None, Problem("This is not a valid ID.", UserErrorCode.INVALID, field)
    if parsed[0] != type_name or parsed[1] > ID_MAX:
        return None, Problem(
            f"No {type_name.lower()} with this ID.", UserErrorCode.NOT_FOUND, field
        )
    return parsed[1], None
