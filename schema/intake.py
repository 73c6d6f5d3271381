"""What intake shares between leads and clients: outside systems' IDs, and how an upsert
matches an existing lead."""

from __future__ import annotations

from typing import Any

import strawberry

from db.models import LeadMatch as _LeadMatch


@strawberry.type(description='An outside system\'s ID of a record: {system: "salesforce", id: …}.')
class ExternalId:
    system: str
    id: str


@strawberry.input(description="Trimmed; at most one id per system (case aside) per record.")
class ExternalIdInput:
    system: str
    id: str


LeadMatch = strawberry.enum(
    _LeadMatch,
    name="LeadMatch",
    description="How an upsert or an import finds an existing lead. EMAIL: the same email, "
    "case-insensitive and trimmed; EXTERNAL_ID: any of the externalIds given.",
)


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
