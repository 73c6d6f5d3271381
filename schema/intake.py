"""What intake shares between leads and clients: outside systems' IDs, and how an upsert
matches an existing lead."""

from __future__ import annotations

import enum
from typing import Any

import strawberry


@strawberry.type(description='An outside system\'s ID of a record: {system: "salesforce", id: …}.')
class ExternalId:
    system: str
    id: str


@strawberry.input(description="Trimmed; at most one id per system (case aside) per record.")
class ExternalIdInput:
    system: str
    id: str


@strawberry.enum
class LeadMatch(enum.Enum):
    EMAIL = strawberry.enum_value("EMAIL", description="case-insensitive, trimmed")
    EXTERNAL_ID = strawberry.enum_value("EXTERNAL_ID", description="any of input.externalIds")


def external_ids(stored: list[dict[str, Any]]) -> list[ExternalId]:
    """A record's ``external_ids`` column as GraphQL objects."""
    return [ExternalId(system=item["system"], id=item["id"]) for item in stored]


def external_id_field() -> Any:
    """``externalIds``: the record's outside-system IDs, from its ``external_ids`` column (a
    private attribute of the same name)."""

    def resolve(root: Any) -> list[ExternalId]:
        return external_ids(root.external_ids)

    return strawberry.field(
        resolver=resolve,
        name="externalIds",
        description="At most one id per system; unique per workspace.",
    )
