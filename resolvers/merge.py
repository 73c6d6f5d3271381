"""mergeLeads: leads folded into a survivor, in one transaction.

The survivor takes, per field, the value of the lead ``fieldSources`` names; otherwise its own
when it holds one, else the newest (last updated) merged lead's that does. Metadata and
external IDs are united: for a key (a system) held by several leads, the survivor's wins, else
the first merged lead's in ``mergedIds`` order. The merged leads are deleted; their global IDs
resolve to the survivor from then on (``lead_merges``, read by the lead loader on a miss).

One LEAD_MERGED event is logged, on the survivor: its field changes and ``mergedLeadIds`` (from
null to the merged leads' IDs). The merged leads get no LEAD_DELETED: the person was not
deleted, their IDs still find the survivor, and a consumer that deletes on LEAD_DELETED (a
synced CRM) would delete that person there; LEAD_MERGED names them instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Row

from db.models import LeadUpdate, Role
from db.models.fields import EXTERNAL_IDS_MAX, fold
from db.repositories import LeadRepository
from db.repositories.activities import ActivityRepository
from db.repositories.duplicates import MergeRepository
from db.repositories.tags import LEAD_TAGS
from resolvers import follow_ups
from resolvers.auth import actor_columns
from resolvers.errors import Problem, UserErrorCode, camel, validated
from resolvers.events import Unit, Write
from resolvers.ids import to_global_id
from resolvers.leads import LEADS
from resolvers.outcome import Abort, Outcome
from resolvers.records import changed, written
from resolvers.tags import write_tags

if TYPE_CHECKING:
    from resolvers.context import Context

MAX_MERGED = 10
# The fields a merge chooses a value of (CreateLeadInput's but externalIds and metadata,
# which are united), by GraphQL name.
MERGEABLE = {
    camel(column): column
    for column in (
        *("email", "first_name", "last_name", "phone", "company", "city", "state"),
        *("postal_code", "source", "notes", "status", "score"),
    )
}


def _invalid(message: str, *path: str) -> Problem:
    return Problem(message, UserErrorCode.INVALID, ["input", *path])


def _checked(
    values: dict[str, Any],
) -> tuple[int | None, list[int | None], dict[str, int], list[Problem]]:
    """The survivor's pk, the merged leads' pks and the chosen sources (column → lead pk), or
    the problems of the input (all of them)."""
    survivor, problems = LEADS.pk(values["survivor_id"], ["input", "survivorId"])
    ids = values["merged_ids"]
    if not 1 <= len(ids) <= MAX_MERGED:
        problems.append(_invalid(f"Merge 1 to {MAX_MERGED} leads at a time.", "mergedIds"))
    merged: list[int | None] = []
    for n, id_ in enumerate(ids):
        pk, bad = LEADS.pk(id_, ["input", "mergedIds", str(n)])
        problems += bad
        if pk is not None and pk == survivor:
            problems.append(
                _invalid("The survivor cannot be merged into itself.", "mergedIds", str(n))
            )
        elif pk is not None and pk in merged:
            problems.append(_invalid("This lead is listed twice.", "mergedIds", str(n)))
        merged.append(pk)
    sources: dict[str, int] = {}
    for n, source in enumerate(values.get("field_sources") or ()):
        at = ("fieldSources", str(n))
        column = MERGEABLE.get(source["field"])
        if column is None:
            problems.append(
                _invalid(
                    f"A merge chooses one of: {', '.join(MERGEABLE)} "
                    "(metadata and externalIds are united).",
                    *at,
                    "field",
                )
            )
        elif column in sources:
            problems.append(_invalid("This field is chosen twice.", *at, "field"))
        pk, bad = LEADS.pk(source["lead_id"], ["input", *at, "leadId"])
        problems += bad
        if pk is not None and pk != survivor and pk not in merged:
            problems.append(
                _invalid("This lead is neither the survivor nor one merged.", *at, "leadId")
            )
        if column is not None and pk is not None:
            sources[column] = pk
    return survivor, merged, sources, problems


def _values(
    survivor: Row[Any], merged: list[Row[Any]], sources: dict[str, int], rows: dict[int, Row[Any]]
) -> dict[str, Any]:
    """The survivor's fields after the merge (the rules in this module's docstring)."""
    newest_first = sorted(merged, key=lambda r: (r.updated_at, r.id), reverse=True)
    out: dict[str, Any] = {}
    for column in MERGEABLE.values():
        if column in sources:
            out[column] = getattr(rows[sources[column]], column)
            continue
        for row in (survivor, *newest_first):
            value = getattr(row, column)
            if value is not None and value != "":
                out[column] = value
                break
    meta: dict[str, Any] = {}
    for row in reversed((survivor, *merged)):  # the survivor's last: its keys win
        meta.update(row.meta)
    out["meta"] = meta
    external: list[dict[str, str]] = []
    systems: set[str] = set()
    for row in (survivor, *merged):
        for item in row.external_ids:
            if fold(item["system"]) not in systems:
                systems.add(fold(item["system"]))
                external.append(item)
    out["external_ids"] = external
    return out


async def merge_leads(ctx: Context, values: dict[str, Any]) -> Outcome:
    principal = ctx.require(Role.ADMIN)
    survivor_pk, merged_pks, sources, problems = _checked(values)
    if problems or survivor_pk is None:
        return Outcome(problems=problems)
    merged_ids = [pk for pk in merged_pks if pk is not None]
    dry_run = bool(values.get("dry_run"))

    async def step(unit: Unit) -> Outcome:
        merges = MergeRepository(unit.conn, ctx.workspace_id)
        rows = {row.id: row for row in await merges.lock([survivor_pk, *merged_ids])}
        missing = [LEADS.not_found(["input", "survivorId"])] if survivor_pk not in rows else []
        missing += [
            LEADS.not_found(["input", "mergedIds", str(n)])
            for n, pk in enumerate(merged_ids)
            if pk not in rows
        ]
        if missing:
            raise Abort(missing)
        converted = [
            Problem(
                "A converted lead cannot be merged into another lead; make it the survivor.",
                UserErrorCode.ALREADY_CONVERTED,
                ["input", "mergedIds", str(n)],
            )
            for n, pk in enumerate(merged_ids)
            if rows[pk].converted_at is not None
        ]
        if converted:
            raise Abort(converted)
        survivor = rows[survivor_pk]
        new = _values(survivor, [rows[pk] for pk in merged_ids], sources, rows)
        _, invalid = validated(LeadUpdate, {"meta": new["meta"]})
        if invalid:
            raise Abort([_invalid(f"The united metadata: {invalid[0].message}", "mergedIds")])
        if (united := len(new["external_ids"])) > EXTERNAL_IDS_MAX:
            message = (
                f"A lead holds at most {EXTERNAL_IDS_MAX} external IDs; these leads hold "
                f"{united} together."
            )
            raise Abort([_invalid(message, "mergedIds")])
        # The survivor keeps its owner; one without takes the first merged lead's that has one.
        if survivor.owner_id is None:
            owners = [rows[pk].owner_id for pk in merged_ids if rows[pk].owner_id is not None]
            new["owner_id"] = owners[0] if owners else None
        # ... and gains the merged leads' tags (their links go with them).
        merged_tags = await LEAD_TAGS.tag_ids(unit.conn, ctx.workspace_id, merged_ids)
        united_tags = sorted({tag for tags in merged_tags.values() for tag in tags})
        tagged = await write_tags(unit, LEAD_TAGS, survivor_pk, united_tags or None, add=True)
        # The merged leads' lookup rows go first; the survivor's update writes its united ones.
        await merges.drop_external_ids(merged_ids)
        changes = changed(survivor, new) | actor_columns(principal, created=False)
        after = await LeadRepository(unit.conn, ctx.workspace_id).update(survivor, changes)
        # The merged leads' activities go to the survivor's timeline, not with them.
        await ActivityRepository(unit.conn, ctx.workspace_id).move_to_lead(merged_ids, after)
        # And their follow-ups, to the survivor (issue 12).
        await follow_ups.move_to_lead(unit, merged_ids, after.id)
        await merges.fold(survivor_pk, merged_ids, after.updated_at)
        folded = [to_global_id("Lead", pk) for pk in merged_ids]
        if dry_run:  # everything done and checked, then rolled back
            abort = Abort([], lead=after)
            abort.outcome.merged_ids = folded
            raise abort
        also = [*tagged, {"field": "mergedLeadIds", "from": None, "to": folded}]
        unit.record(LEADS, Write.MERGED, survivor, after, also=also)
        return Outcome(lead=after, merged_ids=folded)

    return await written(ctx, step)
