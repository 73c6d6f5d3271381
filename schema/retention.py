"""Retention and erasure (README, Retention and erasure): the workspace's retention policy,
what a run would remove, and the right to erasure."""

from __future__ import annotations

import enum
from typing import Any

import strawberry

from resolvers import retention as resolve
from schema.context import Info
from schema.errors import UserError, user_errors
from schema.relay import input_values


@strawberry.enum(description="What a retention run does to the leads and clients it selects.")
class RetentionAction(enum.Enum):
    DELETE = "DELETE"
    ANONYMIZE = strawberry.enum_value(
        "ANONYMIZE",
        description="Keep the record and its counts (status, source, state, score, owner, "
        "tags, dates); blank every personal field.",
    )


@strawberry.type(description="After how many days records are removed; null: kept.")
class RetentionPolicy:
    unconverted_leads_after_days: int | None = strawberry.field(
        description="Leads not converted and not updated for this long."
    )
    archived_clients_after_days: int | None = strawberry.field(
        description="Clients archived this long ago."
    )
    events_after_days: int | None = strawberry.field(
        description="Events and webhook deliveries older than this (always deleted)."
    )
    action: RetentionAction

    @classmethod
    def of(cls, policy: resolve.Policy) -> RetentionPolicy:
        return cls(
            unconverted_leads_after_days=policy.leads_days,
            archived_clients_after_days=policy.clients_days,
            events_after_days=policy.events_days,
            action=RetentionAction(policy.action),
        )

    @classmethod
    def from_row(cls, row: Any) -> RetentionPolicy:
        return cls.of(resolve.Policy.from_row(row))


@strawberry.input(description="Days from 1 to 36,500, or null to keep; fields left out stay.")
class RetentionPolicyInput:
    unconverted_leads_after_days: int | None = strawberry.UNSET
    archived_clients_after_days: int | None = strawberry.UNSET
    events_after_days: int | None = strawberry.UNSET
    action: RetentionAction | None = strawberry.UNSET


def _values(policy: RetentionPolicyInput) -> dict[str, Any]:
    values = input_values(policy)
    if isinstance(values.get("action"), RetentionAction):
        values["action"] = values["action"].value
    return values


@strawberry.type(description="What a retention run would remove now.")
class RetentionPreview:
    leads: int
    clients: int
    events: int


@strawberry.type(description="What an erasure removed or blanked.")
class ErasureCounts:
    leads: int
    clients: int
    events: int = strawberry.field(
        description="Events whose values held the contact's data, redacted."
    )
    other: int = strawberry.field(
        description="Activities, follow-ups, tickets, import errors and uploads, one-time "
        "codes, rate-limit counters..."
    )


@strawberry.type
class UpdateRetentionPolicyPayload:
    policy: RetentionPolicy | None
    user_errors: list[UserError]


@strawberry.type
class EraseContactPayload:
    erased: ErasureCounts | None
    user_errors: list[UserError]


@strawberry.type
class RetentionQuery:
    @strawberry.field(
        description="What a retention run would remove now (ADMIN); default: the current "
        "policy, or the current one with these fields changed."
    )
    async def retention_preview(
        self, info: Info, policy: RetentionPolicyInput | None = None
    ) -> RetentionPreview:
        found = await resolve.preview(info.context, _values(policy) if policy else None)
        return RetentionPreview(
            leads=found["leads"], clients=found["clients"], events=found["events"]
        )


@strawberry.type
class RetentionMutation:
    @strawberry.mutation(
        description="Sets the workspace's retention policy (OWNER); fields left out stay."
    )
    async def update_retention_policy(
        self, info: Info, input: RetentionPolicyInput
    ) -> UpdateRetentionPolicyPayload:
        policy, problems = await resolve.update_policy(info.context, _values(input))
        return UpdateRetentionPolicyPayload(
            policy=RetentionPolicy.of(policy) if policy else None,
            user_errors=user_errors(problems),
        )

    @strawberry.mutation(
        description="Right to erasure (OWNER): every lead and client with this email (any "
        "case), and the contact's data wherever else it was kept (event values, activities, "
        "tickets, follow-ups, import errors, codes), removed or blanked; one CONTACT_ERASED "
        "event records that it happened, without the data. dryRun counts, changing nothing."
    )
    async def erase_contact(
        self, info: Info, email: str, dry_run: bool | None = False
    ) -> EraseContactPayload:
        found, problems = await resolve.erase_contact(info.context, email, bool(dry_run))
        return EraseContactPayload(
            erased=ErasureCounts(**found) if found is not None else None,
            user_errors=user_errors(problems),
        )
