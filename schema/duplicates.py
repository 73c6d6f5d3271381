"""Duplicate leads (``Lead.duplicates``, ``possibleDuplicateLeads``) and ``mergeLeads``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import strawberry

from resolvers import duplicates as resolve
from resolvers import merge as resolve_merge
from resolvers.duplicates import DuplicateReason as _DuplicateReason
from resolvers.ids import parse_global_id
from schema.context import Info
from schema.errors import UserError, user_errors
from schema.leads import Lead

DuplicateReason = strawberry.enum(_DuplicateReason, name="DuplicateReason")


@strawberry.type(description="A lead that may be the same person as another.")
class LeadDuplicate:
    lead: Lead
    duplicate_of: Lead = strawberry.field(
        description="The lead it may duplicate: in Lead.duplicates the lead asked about; in "
        "possibleDuplicateLeads the pair's older lead (the lower ID)."
    )
    reasons: list[DuplicateReason]  # type: ignore[valid-type]
    score: float = strawberry.field(
        description="0..1, higher is surer: 1 - (1 - e)(1 - p)(1 - n), e = 0.95 for the same "
        "email, p = 0.7 for the same phone, n = 0.6 x the name and company similarity."
    )


async def _built(info: Info, found: Sequence[resolve.Duplicate]) -> list[LeadDuplicate]:
    """The duplicates with their leads, read in one batch (whole rows: a page's lead holds only
    the columns its selection needed); a lead deleted or merged meanwhile is left out."""
    ids = sorted({d.id for d in found} | {d.of for d in found})
    rows = await info.context.loaders.lead_by_id.load_many(ids)
    leads = {
        i: Lead.from_row(row)
        for i, row in zip(ids, rows, strict=True)
        if row is not None and row.id == i  # not a survivor found for a merged id
    }
    return [
        LeadDuplicate(
            lead=leads[d.id], duplicate_of=leads[d.of], reasons=list(d.reasons), score=d.score
        )
        for d in found
        if d.id in leads and d.of in leads
    ]


async def lead_duplicates(info: Info, lead: Any, first: int | None) -> list[LeadDuplicate]:
    """``Lead.duplicates``: a page of leads asks in one batch (``Loaders.lead_duplicates``)."""
    first = resolve.check_first(10 if first is None else first)
    parsed = parse_global_id(lead.id)
    assert parsed is not None  # the lead's own ID
    keys = (parsed[1], lead.email_key, lead.phone_key, lead.company_key, lead.name_key)
    found = await info.context.loaders.lead_duplicates.load(keys)
    return await _built(info, found[:first])


@strawberry.type
class DuplicateQuery:
    @strawberry.field(
        description="Pairs of possible duplicates across the workspace, each pair once (lead: "
        "the newer, duplicateOf: the older), best first, ties by IDs; at most 100."
    )
    async def possible_duplicate_leads(
        self, info: Info, first: int | None = 20
    ) -> list[LeadDuplicate]:
        found = await resolve.possible_duplicates(info.context, 20 if first is None else first)
        return await _built(info, found)


@strawberry.input(description="Take this field's value from that lead.")
class MergeFieldSource:
    field: str = strawberry.field(
        description="A field of CreateLeadInput but metadata and externalIds (united)."
    )
    lead_id: strawberry.ID = strawberry.field(description="The survivor or one merged lead.")


@strawberry.input
class MergeLeadsInput:
    survivor_id: strawberry.ID
    merged_ids: list[strawberry.ID] = strawberry.field(
        description="1..10 leads folded into the survivor, then removed; their IDs find the "
        "survivor afterwards (node, lead). A converted lead can only be the survivor."
    )
    field_sources: list[MergeFieldSource] | None = strawberry.field(
        default=None,
        description="Default: the survivor's value, else the newest non-empty one.",
    )
    dry_run: bool | None = strawberry.field(
        default=False, description="Answer with the lead as it would be; write nothing."
    )


@strawberry.type
class MergeLeadsPayload:
    lead: Lead | None
    merged_lead_ids: list[strawberry.ID] | None
    user_errors: list[UserError]


@strawberry.type
class MergeMutation:
    @strawberry.mutation(
        description="ADMIN. Folds leads into a survivor in one transaction. Metadata and "
        "externalIds are united: for a key or system held by several, the survivor's wins, "
        "else the first merged lead's in mergedIds order. Logs one LEAD_MERGED event on the "
        "survivor (its changes and mergedLeadIds); the merged leads log no LEAD_DELETED."
    )
    async def merge_leads(self, info: Info, input: MergeLeadsInput) -> MergeLeadsPayload:
        values = {
            "survivor_id": input.survivor_id,
            "merged_ids": list(input.merged_ids),
            "field_sources": [
                {"field": s.field, "lead_id": s.lead_id} for s in input.field_sources or ()
            ],
            "dry_run": bool(input.dry_run),
        }
        out = await resolve_merge.merge_leads(info.context, values)
        merged = [strawberry.ID(i) for i in out.merged_ids] if out.merged_ids else None
        return MergeLeadsPayload(
            lead=Lead.maybe(out.lead),
            merged_lead_ids=merged,
            user_errors=user_errors(out.problems),
        )
