"""Intake and cleanup: outside systems' IDs of leads and clients, web forms, merged leads.

An external ID is ``{system, id}`` ("salesforce", "00Q5e000001AbCd"). A record holds at most
one per system, and an id of a system names one record of a kind per workspace: both are
unique indexes here. The record's own ``external_ids`` JSON column holds the same pairs as
typed, for reading without a join; the repository writes both in one transaction.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints
from pydantic import Field as Size
from pydantic_core import PydanticCustomError
from sqlalchemy import Column, ForeignKey, Index, Integer, PrimaryKeyConstraint, String
from sqlmodel import Field, SQLModel

from db.models import fields as f
from db.models import records as col
from db.models.fields import EXTERNAL_ID_MAX, SYSTEM_MAX
from db.types import JSONType, UTCDateTime

FORM_NAME_MAX = 100
FORM_KEY_MAX = 64
ORIGIN_MAX = 255
REDIRECT_URL_MAX = 2048


class LeadExternalId(SQLModel, table=True):
    """One lead's id in one outside system. ``system_key``: the system's name folded."""

    __tablename__ = "lead_external_ids"
    __table_args__ = (
        PrimaryKeyConstraint("lead_id", "system_key", name="pk_lead_external_ids"),
        Index("uq_lead_external_ids_ws", "workspace_id", "system_key", "external_id", unique=True),
    )

    lead_id: int = Field(
        sa_column=Column(Integer, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False)
    )
    workspace_id: int = Field(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), nullable=False)
    )
    system_key: str = Field(sa_column=Column(String(SYSTEM_MAX), nullable=False))
    external_id: str = Field(sa_column=Column(String(EXTERNAL_ID_MAX), nullable=False))


class ClientExternalId(SQLModel, table=True):
    """One client's id in one outside system."""

    __tablename__ = "client_external_ids"
    __table_args__ = (
        PrimaryKeyConstraint("client_id", "system_key", name="pk_client_external_ids"),
        Index(
            "uq_client_external_ids_ws", "workspace_id", "system_key", "external_id", unique=True
        ),
    )

    client_id: int = Field(
        sa_column=Column(Integer, ForeignKey("clients.id", ondelete="CASCADE"), nullable=False)
    )
    workspace_id: int = Field(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), nullable=False)
    )
    system_key: str = Field(sa_column=Column(String(SYSTEM_MAX), nullable=False))
    external_id: str = Field(sa_column=Column(String(EXTERNAL_ID_MAX), nullable=False))


class LeadMerge(SQLModel, table=True):
    """A lead folded into another by mergeLeads: its global ID resolves to the survivor."""

    __tablename__ = "lead_merges"
    __table_args__ = (Index("ix_lead_merges_survivor", "survivor_id"),)

    merged_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    workspace_id: int = Field(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), nullable=False)
    )
    survivor_id: int = Field(
        sa_column=Column(Integer, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False)
    )
    merged_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class LeadForm(SQLModel, table=True):
    """A web form: posts to /forms/{key} become leads of the form's workspace."""

    __tablename__ = "lead_forms"
    __table_args__ = (
        Index("uq_lead_forms_key", "key", unique=True),
        Index("ix_lead_forms_ws", "workspace_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspaces.id")
    name: str = col.text(FORM_NAME_MAX, nullable=False)
    key: str = col.text(FORM_KEY_MAX, nullable=False)
    source: str | None = col.text(100)
    allowed_origins: list[str] = Field(
        default_factory=list, sa_column=Column(JSONType, nullable=False)
    )
    redirect_url: str | None = col.text(REDIRECT_URL_MAX)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_user_id: int | None = Field(default=None, foreign_key="users.id")
    created_by_api_key_id: int | None = Field(default=None, foreign_key="api_keys.id")


def external_ids_column() -> Any:
    """A record's external IDs as typed: a JSON list of {"system", "id"}."""
    return Field(default_factory=list, sa_column=Column(JSONType, nullable=False))


# ------------------------------------------------------------------ what the API accepts

FORM_ORIGINS_MAX = 50  # per form


# scheme://host[:port]: a DNS name or IPv4 address, or an IPv6 address in brackets.
_ORIGIN = re.compile(r"(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(value: str) -> str:
    """An origin as browsers send it in the Origin header: scheme://host[:port], http(s) only,
    no path; lower-cased, without the scheme's default port, so that it compares as sent."""
    match = _ORIGIN.fullmatch(value)
    port = int(match.group(3)) if match and match.group(3) else None
    if match is None or (port is not None and not 0 < port < 65536):
        raise PydanticCustomError(
            "origin",
            "An origin is scheme://host[:port], http or https, with no path (not even a "
            "trailing /), e.g. https://www.example.com",
        )
    scheme, host = match.group(1).lower(), match.group(2).lower()
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, _DEFAULT_PORTS[scheme]) else "")


def normal_origin(value: str) -> str | None:
    """An Origin header's value as allowed origins are stored, or None when it is not one."""
    try:
        return _origin(value)
    except PydanticCustomError:
        return None


def _absolute_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError(
            "url", "The redirect URL must be an absolute http(s) URL: https://example.com/thanks"
        )
    return value


def _form_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise PydanticCustomError("blank", "This field is required and cannot be blank.")
    if len(value) > FORM_NAME_MAX:
        raise PydanticCustomError(
            "too_long", "Name must be at most {max} characters.", {"max": FORM_NAME_MAX}
        )
    return value


FormName = Annotated[str, AfterValidator(_form_name)]
Origin = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=ORIGIN_MAX), AfterValidator(_origin)
]
RedirectUrl = Annotated[
    Annotated[str, StringConstraints(max_length=REDIRECT_URL_MAX), AfterValidator(_absolute_url)]
    | None,
    BeforeValidator(lambda v: (v.strip() or None) if isinstance(v, str) else v),
]


class LeadFormCreate(BaseModel):
    """What createLeadForm accepts."""

    model_config = ConfigDict(extra="forbid")

    name: FormName
    source: f.text(f.SOURCE_MAX) = None  # type: ignore[valid-type]
    allowed_origins: Annotated[list[Origin] | None, Size(max_length=FORM_ORIGINS_MAX)] = None
    redirect_url: RedirectUrl = None
