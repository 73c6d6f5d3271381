"""Turns GraphQL input objects (read by attribute) into validated specs and models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from db.models import DueWindow
from db.models import fields as f
from db.models.clients import AddressIn
from db.models.follow_ups import due_range
from db.types import utcnow
from resolvers.errors import BadInput
from resolvers.ids import node_key

SEARCH_MAX = 200


def order(order_by: Any) -> tuple[str, str | None]:
    """(field, direction) of an orderBy input: CREATED_AT when it is left out, and a direction
    left out (or null) as None, for the sort key's own default."""
    if order_by is None:
        return "CREATED_AT", None
    direction = order_by.direction
    return order_by.field.value, direction.value if direction else None


def _search(value: str | None) -> str | None:
    if value is None:
        return None
    # Searchable text is stored one value per line, so a line break can never match.
    value = " ".join(value.split())
    if len(value) > SEARCH_MAX:
        raise BadInput(
            f"Argument 'filter.search' must be at most {SEARCH_MAX} characters.",
            "filter.search",
        )
    return value or None


def _record_filter(flt: Any) -> dict[str, Any]:
    """What every record filter holds (``FilterSpec``'s fields): search and createdAt."""
    spec = {"search": _search(flt.search)}
    if flt.created_at is not None:
        spec |= {"created_gte": flt.created_at.gte, "created_lt": flt.created_at.lt}
    return spec


def lead_filter(flt: Any) -> dict[str, Any]:
    spec = _record_filter(flt) | {
        "statuses": flt.status,
        "sources": flt.source,
        "city": flt.city,
        "state": flt.state,
        "email": flt.email,
        "converted": flt.converted,
        "external_id": _external_id(flt.external_id),
        "owner_id": owner_filter(flt.owner_id, "filter.ownerId"),
        "unassigned": flt.unassigned,
        **tag_filter(flt.tags, "filter.tags"),
        "follow_up_due": _due(flt.follow_up_due),
    }
    if flt.score is not None:
        spec |= {"score_gte": flt.score.gte, "score_lte": flt.score.lte}
    return spec


def client_filter(flt: Any) -> dict[str, Any]:
    return _record_filter(flt) | {
        "statuses": flt.status,
        "city": flt.city,
        "state": flt.state,
        "email": flt.email,
        "external_id": _external_id(flt.external_id),
        "owner_id": owner_filter(flt.owner_id, "filter.ownerId"),
        **tag_filter(flt.tags, "filter.tags"),
        "has_open_ticket": flt.has_open_ticket,
    }


def _due(window: Any) -> tuple[datetime, datetime] | None:
    """A ``followUpDue`` window as [gte, lt) from now, in UTC."""
    if window is None:
        return None
    return due_range(DueWindow(window.value), utcnow())


def _external_id(value: Any) -> tuple[str, str] | None:
    """The externalId filter as (system, id), trimmed."""
    return None if value is None else (value.system.strip(), value.id.strip())


def tag_filter(match: Any, argument: str) -> dict[str, Any]:
    """A ``tags: TagMatch`` filter as the spec's tags_any / tags_all / tags_none (pks, each
    once). An ID of another type or workspace matches no tag; a malformed one is BadInput.
    ``all: []`` and ``none: []`` ask for nothing; ``any: []`` matches no record."""
    if match is None:
        return {}
    out: dict[str, Any] = {}
    for name in ("any", "all", "none"):
        ids = getattr(match, name)
        if ids is None:
            continue
        pks: list[int] = []
        for i, global_id in enumerate(ids):
            key = node_key(global_id, f"{argument}.{name}[{i}]")
            # No tag has 0: an ID of another type is a tag that no record carries.
            pks.append(key[1] if key is not None and key[0] == "Tag" else 0)
        unique = sorted(set(pks))
        if name != "any" and not unique:
            continue
        out[f"tags_{name}"] = unique
    return out


def owner_filter(owner_id: Any, argument: str) -> int | None:
    """The ``ownerId`` filter's pk (0, which no user has, for another type's ID)."""
    if owner_id is None:
        return None
    key = node_key(owner_id, argument)
    if key is None or key[0] != "User":
        return 0
    return key[1]


class ConvertLead(BaseModel):
    """ConvertLeadInput beyond clientId: what the client gets instead of the lead's values."""

    model_config = ConfigDict(extra="forbid")

    first_name: f.text(f.NAME_MAX) = None  # type: ignore[valid-type]
    last_name: f.text(f.NAME_MAX) = None  # type: ignore[valid-type]
    phone: f.text(f.PHONE_MAX) = None  # type: ignore[valid-type]
    company: f.text(f.COMPANY_MAX) = None  # type: ignore[valid-type]
    address: AddressIn | None = None
    notes: f.text(f.NOTES_MAX) = None  # type: ignore[valid-type]
    meta: f.Metadata = None
