"""Turns GraphQL input objects (read by attribute) into validated specs and models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from db.models import fields as f
from db.models.clients import AddressIn
from resolvers.errors import BadInput

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
        "has_open_ticket": flt.has_open_ticket,
    }


def _external_id(value: Any) -> tuple[str, str] | None:
    """The externalId filter as (system, id), trimmed."""
    return None if value is None else (value.system.strip(), value.id.strip())


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
