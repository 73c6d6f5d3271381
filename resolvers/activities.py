"""Activities: logging a note, call, email or meeting on a lead or client, editing it, and the
timelines (newest first) of leads and clients.

A client's timeline holds its own activities and those of every lead converted into it (one
timeline): convertLead gives the lead's activities the client's id (``join_client``), and an
activity logged on a converted lead gets both ids. Each write appends its event to the log of
the subject (the lead or client), not of the activity: a lead's history tells what was logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row

from db.models import EventType, Role
from db.models.activities import ActivityCreate, ActivityUpdate, editable, values_of
from db.models.fields import ID_MAX
from db.repositories import ClientRepository, LeadRepository
from db.repositories.activities import ActivityRepository, Timeline
from db.types import utcnow
from resolvers.errors import Problem, UserErrorCode, camel, not_found, validated
from resolvers.events import Tracked, Unit, field_changes
from resolvers.ids import parse_global_id, pk_for_mutation, to_global_id
from resolvers.outcome import Abort, Outcome
from resolvers.pagination import Page, SortKey, encode_cursor, page_args, page_of
from resolvers.principal import Principal
from resolvers.records import changed, written

if TYPE_CHECKING:
    from resolvers.context import Context

ACTIVITY = "Activity"
# The one order of a timeline; cursors carry it, (occurred_at, id) and the index agree.
ORDER = "OCCURRED_AT:DESC"
_SORT = SortKey("occurred_at", "datetime")
# The subject types an activity is logged on, and the timeline each one reads.
TIMELINES: dict[str, Timeline] = {"Lead": "lead_id", "Client": "client_id"}
# The activity's fields an event reports, named under the subject's "activity".
_FIELDS = {
    "kind": Tracked("activity.kind"),
    "body": Tracked("activity.body"),
    "occurred_at": Tracked("activity.occurredAt"),
}
_SUBJECT = ["input", "subjectId"]


@dataclass
class ActivityOutcome:
    problems: list[Problem] = field(default_factory=list)
    activity: Row[Any] | None = None


def subject_of(row: Row[Any]) -> tuple[str, int]:
    """The record an activity was logged on: its lead when it has one, else its client."""
    if row.lead_id is not None:
        return "Lead", row.lead_id
    return "Client", row.client_id


async def timeline(
    ctx: Context, subject_type: str, subject_pk: int, first: int | None, after: str | None
) -> Page:
    """A page of a lead's or client's activities, newest first. The subjects of a list ask
    together: one statement per page of subjects (``Loaders.activity_timeline``), and one for
    their counts."""
    ctx.require(Role.VIEWER)
    args = page_args(first, after, None, None, ORDER, _SORT)
    which = TIMELINES[subject_type]
    rows: list[Any] = []
    if args.limit:
        rows = await ctx.loaders.activity_timeline.load(
            (which, subject_pk, args.start, args.limit + 1)
        )
    loaders = ctx.loaders

    async def count() -> int:
        return await loaders.activity_count.load((which, subject_pk))

    return page_of(rows, args, lambda r: encode_cursor(ORDER, r.occurred_at, r.id), count)


async def activity(ctx: Context, pk: int) -> Row[Any] | None:
    ctx.require(Role.VIEWER)
    return await ctx.loaders.activity_by_id.load(pk)


def _subject_key(subject_id: str) -> tuple[tuple[str, int] | None, list[Problem]]:
    parsed = parse_global_id(subject_id)
    if parsed is None:
        return None, [Problem("This is not a valid ID.", UserErrorCode.INVALID, _SUBJECT)]
    if parsed[0] not in TIMELINES or parsed[1] > ID_MAX:
        return None, [_no_subject()]
    return parsed, []


def _no_subject() -> Problem:
    return Problem("No lead or client with this ID.", UserErrorCode.NOT_FOUND, _SUBJECT)


def _author(principal: Principal) -> dict[str, int | None]:
    return {"author_user_id": principal.user_id, "author_api_key_id": principal.api_key_id}


async def add(ctx: Context, values: dict[str, Any]) -> ActivityOutcome:
    """Logs an activity on a lead or client of the workspace (MEMBER)."""
    principal = ctx.require(Role.MEMBER)
    key, problems = _subject_key(values.pop("subject_id"))
    if values.get("occurred_at", 0) is None:
        del values["occurred_at"]  # null: now, as when left out
    data, invalid = validated(ActivityCreate, values)
    if problems or invalid or key is None:
        return ActivityOutcome(problems=problems + invalid)
    subject_type, subject_pk = key
    added: list[Row[Any]] = []

    async def step(unit: Unit) -> Outcome:
        ws = ctx.workspace_id
        if subject_type == "Lead":
            # Locked: a conversion running meanwhile gives this activity its client too
            # (join_client runs after we commit) or has done so (converted_client_id).
            lead = await LeadRepository(unit.conn, ws).get(subject_pk, for_update=True)
            if lead is None:
                raise Abort([_no_subject()])
            ids = {"lead_id": lead.id, "client_id": lead.converted_client_id}
        else:
            client = await ClientRepository(unit.conn, ws).get(subject_pk)
            if client is None:
                raise Abort([_no_subject()])
            ids = {"lead_id": None, "client_id": client.id}
        row = await ActivityRepository(unit.conn, ws).insert(
            values_of(data, only_set=True) | ids | _author(principal)
        )
        gid = to_global_id(ACTIVITY, row.id)
        unit.event(
            EventType.ACTIVITY_ADDED,
            subject_type,
            subject_pk,
            [{"field": "activity", "from": None, "to": gid}, *field_changes(_FIELDS, None, row)],
        )
        added.append(row)
        return Outcome()

    outcome = await written(ctx, step)
    return ActivityOutcome(problems=outcome.problems, activity=added[0] if added else None)


def _not_editable() -> Problem:
    return Problem(
        "Only its author may edit an activity, within 15 minutes of logging it (an ADMIN at "
        "any time).",
        UserErrorCode.FORBIDDEN,
        ["id"],
    )


async def update(ctx: Context, id_: str, values: dict[str, Any]) -> ActivityOutcome:
    """Edits an activity: its author within 15 minutes of logging it, an ADMIN at any time."""
    principal = ctx.require(Role.MEMBER)
    pk, bad_id = pk_for_mutation(id_, ACTIVITY, ["id"])
    problems = [bad_id] if bad_id else []
    problems += [
        Problem("This field cannot be null.", UserErrorCode.INVALID, ["input", camel(name)])
        for name, value in values.items()
        if value is None
    ]
    data, invalid = validated(ActivityUpdate, {k: v for k, v in values.items() if v is not None})
    if problems or invalid or pk is None:
        return ActivityOutcome(problems=problems + invalid)
    updated: list[Row[Any]] = []

    async def step(unit: Unit) -> Outcome:
        repo = ActivityRepository(unit.conn, ctx.workspace_id)
        current = await repo.get(pk, for_update=True)
        if current is None:
            raise Abort([not_found("activity")])
        author = principal.wrote(current)
        admin = principal.role.includes(Role.ADMIN)
        if not editable(current.created_at, utcnow(), author=author, admin=admin):
            raise Abort([_not_editable()])
        changes = changed(current, values_of(data, only_set=True))
        if not changes:
            updated.append(current)
            return Outcome()
        row = await repo.update(current, changes)
        gid = to_global_id(ACTIVITY, row.id)
        unit.event(
            EventType.ACTIVITY_UPDATED,
            *subject_of(row),
            [{"field": "activity", "from": gid, "to": gid}, *field_changes(_FIELDS, current, row)],
        )
        updated.append(row)
        return Outcome()

    outcome = await written(ctx, step)
    return ActivityOutcome(problems=outcome.problems, activity=updated[0] if updated else None)
