"""Follow-ups: creating and editing them (MEMBER), the workspace's list (due first unless
orderBy says otherwise), and those of a lead or client, read a page of subjects at a time.

The subject is a lead or client of the workspace, the assignee a member of it (the same check
as an owner's, resolvers/tags.py). ``completedAt`` is set when the status becomes DONE and
cleared when it leaves DONE. Each write appends its event (FOLLOW_UP_CREATED,
FOLLOW_UP_UPDATED with the fields changed) to the follow-up's own log, in its transaction.

Due windows are in UTC (``db.models.follow_ups.due_range``): OVERDUE is an OPEN follow-up due
before now (whatever the status filter says); TODAY is due on today's UTC date, midnight to
midnight; NEXT_7_DAYS is due from now (included) to now + 7 days (excluded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row

from db.models import DueWindow, EventType, FollowUpStatus, Role
from db.models.fields import ID_MAX
from db.models.follow_ups import FollowUpCreate, FollowUpUpdate, due_range, values_of
from db.repositories import ClientRepository, LeadRepository
from db.repositories.follow_ups import FollowUpFilterSpec, FollowUpRepository, Subject
from db.repositories.tags import is_member
from db.types import utcnow
from resolvers.errors import Problem, UserErrorCode, camel, not_found, validated
from resolvers.events import Tracked, Unit, field_changes
from resolvers.ids import node_key, parse_global_id, pk_for_mutation, to_global_id
from resolvers.outcome import Abort, Outcome
from resolvers.pagination import Page, SortKey, encode_cursor, fetch_page, page_args, page_of
from resolvers.records import changed, written

if TYPE_CHECKING:
    from resolvers.context import Context

FOLLOW_UP = "FollowUp"
# orderBy's fields, and the direction each takes when it is left out.
SORTS = {"DUE_AT": SortKey("due_at", "datetime"), "CREATED_AT": SortKey("created_at", "datetime")}
_DEFAULT_DIRECTION = {"DUE_AT": "ASC", "CREATED_AT": "DESC"}
# The one order of a lead's or client's follow-ups: due first.
SUBJECT_ORDER = "DUE_AT:ASC"
SUBJECTS: dict[str, Subject] = {"Lead": "lead_id", "Client": "client_id"}
# The follow-up's fields its events report.
_FIELDS = {
    "title": Tracked("title"),
    "notes": Tracked("notes"),
    "due_at": Tracked("dueAt"),
    "status": Tracked("status"),
    "assignee_user_id": Tracked("assigneeId", refers_to="User"),
    "completed_at": Tracked("completedAt"),
}
_SUBJECT = ["input", "subjectId"]
_ASSIGNEE = ["input", "assigneeId"]


@dataclass
class FollowUpOutcome:
    problems: list[Problem] = field(default_factory=list)
    follow_up: Row[Any] | None = None


def subject_of(row: Row[Any]) -> tuple[str, int]:
    """The lead or client a follow-up is on."""
    if row.lead_id is not None:
        return "Lead", row.lead_id
    return "Client", row.client_id


# ------------------------------------------------------------------ reading


def spec_of(ctx: Context, flt: Any) -> FollowUpFilterSpec:
    """A FollowUpFilter (None: left out) as the repository's spec: OPEN only unless ``status``
    says otherwise; an ID of another type or workspace matches nothing; ``mine`` for an API
    key matches nothing (a key is assigned nothing)."""
    if flt is None:
        return FollowUpFilterSpec(statuses=(FollowUpStatus.OPEN,))
    statuses = flt.status
    values: dict[str, Any] = {
        "statuses": (
            (FollowUpStatus.OPEN,)
            if statuses is None
            else tuple(sorted({FollowUpStatus(s.value) for s in statuses}, key=lambda s: s.value))
        )
    }
    if flt.assignee_id is not None:
        key = node_key(flt.assignee_id, "filter.assigneeId")
        values["assignee_id"] = key[1] if key is not None and key[0] == "User" else 0
    if flt.mine:
        principal = ctx.require(Role.VIEWER)
        values["mine_id"] = principal.user_id or 0
    if flt.due is not None:
        window = DueWindow(flt.due.value)
        values["due_gte"], values["due_lt"] = due_range(window, ctx.loaders.now)
        if window is DueWindow.OVERDUE:
            values["open_only"] = True
    if flt.subject_id is not None:
        key = node_key(flt.subject_id, "filter.subjectId")
        if key is not None and key[0] in SUBJECTS:
            values[SUBJECTS[key[0]]] = key[1]
        else:
            values["lead_id"] = 0  # no lead has 0: nothing matches
    return FollowUpFilterSpec(**values)


async def follow_ups(
    ctx: Context,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    flt: Any,
    order_by: Any,
) -> Page:
    """A page of the workspace's follow-ups, due first unless ``order_by`` says otherwise."""
    ctx.require(Role.VIEWER)
    if order_by is None:
        name, given = "DUE_AT", None
    else:
        name = order_by.field.value
        given = order_by.direction.value if order_by.direction else None
    sort = SORTS[name]
    direction = given or _DEFAULT_DIRECTION[name]
    order = f"{name}:{direction}"
    args = page_args(first, after, last, before, order, sort)
    spec = spec_of(ctx, flt)
    workspace_id = ctx.workspace_id

    def repository(conn: Any) -> FollowUpRepository:
        return FollowUpRepository(conn, workspace_id)

    return await fetch_page(ctx.db, repository, spec, sort, direction == "DESC", order, args)


async def subject_follow_ups(
    ctx: Context,
    subject_type: str,
    subject_pk: int,
    first: int | None,
    after: str | None,
    flt: Any,
) -> Page:
    """A page of a lead's or client's follow-ups, due first. The subjects of a list ask
    together: one statement per page of subjects, and one for their counts."""
    ctx.require(Role.VIEWER)
    args = page_args(first, after, None, None, SUBJECT_ORDER, SORTS["DUE_AT"])
    which = SUBJECTS[subject_type]
    spec = spec_of(ctx, flt)
    rows: list[Any] = []
    if args.limit:
        rows = await ctx.loaders.follow_up_pages.load(
            (which, subject_pk, spec, args.start, args.limit + 1)
        )
    loaders = ctx.loaders

    async def count() -> int:
        return await loaders.follow_up_count.load((which, subject_pk, spec))

    return page_of(rows, args, lambda r: encode_cursor(SUBJECT_ORDER, r.due_at, r.id), count)


async def follow_up(ctx: Context, pk: int) -> Row[Any] | None:
    ctx.require(Role.VIEWER)
    return await ctx.loaders.follow_up_by_id.load(pk)


# ------------------------------------------------------------------ writing


def _no_subject() -> Problem:
    return Problem("No lead or client with this ID.", UserErrorCode.NOT_FOUND, _SUBJECT)


def _no_member() -> Problem:
    return Problem("No member of this workspace with this ID.", UserErrorCode.NOT_FOUND, _ASSIGNEE)


def _subject_key(subject_id: str) -> tuple[tuple[str, int] | None, list[Problem]]:
    parsed = parse_global_id(subject_id)
    if parsed is None:
        return None, [Problem("This is not a valid ID.", UserErrorCode.INVALID, _SUBJECT)]
    if parsed[0] not in SUBJECTS or parsed[1] > ID_MAX:
        return None, [_no_subject()]
    return parsed, []


def _assignee(values: dict[str, Any]) -> tuple[bool, int | None, list[Problem]]:
    """Takes ``assignee_id`` out of ``values``: (given, its pk or None, problems)."""
    given = "assignee_id" in values
    global_id = values.pop("assignee_id", None)
    if global_id is None:
        return given, None, []
    pk, problem = pk_for_mutation(global_id, "User", _ASSIGNEE)
    if problem is not None:
        # Another type's ID names no member: NOT_FOUND, as an owner's (resolvers/tags.py).
        if problem.code is UserErrorCode.NOT_FOUND:
            problem = _no_member()
        return given, None, [problem]
    return given, pk, []


async def _check_assignee(unit: Unit, assignee: int | None) -> list[Problem]:
    """The assignee must be a member; checked (and locked in share mode) before the
    follow-up's own lock, in the order removeMember takes theirs."""
    if assignee is not None and not await is_member(unit.conn, unit.workspace_id, assignee):
        return [_no_member()]
    return []


async def create(ctx: Context, values: dict[str, Any]) -> FollowUpOutcome:
    """A follow-up on a lead or client of the workspace (MEMBER)."""
    principal = ctx.require(Role.MEMBER)
    key, problems = _subject_key(values.pop("subject_id"))
    _, assignee, bad_assignee = _assignee(values)
    if values.get("notes", 0) is None:
        del values["notes"]
    data, invalid = validated(FollowUpCreate, values)
    problems += bad_assignee + invalid
    if problems or key is None:
        return FollowUpOutcome(problems=problems)
    subject_type, subject_pk = key
    created: list[Row[Any]] = []

    async def step(unit: Unit) -> Outcome:
        ws = ctx.workspace_id
        found = await _check_assignee(unit, assignee)
        subject: Any
        if subject_type == "Lead":
            subject = await LeadRepository(unit.conn, ws).get(subject_pk, for_update=True)
        else:
            subject = await ClientRepository(unit.conn, ws).get(subject_pk, for_update=True)
        if subject is None:
            found.insert(0, _no_subject())
        if found:
            raise Abort(found)
        row = await FollowUpRepository(unit.conn, ws).insert(
            values_of(data, only_set=False)
            | {
                SUBJECTS[subject_type]: subject_pk,
                "status": FollowUpStatus.OPEN.value,
                "assignee_user_id": assignee,
                "created_by_user_id": principal.user_id,
                "created_by_api_key_id": principal.api_key_id,
            }
        )
        subject_id = to_global_id(subject_type, subject_pk)
        unit.event(
            EventType.FOLLOW_UP_CREATED,
            FOLLOW_UP,
            row.id,
            [
                {"field": "subjectId", "from": None, "to": subject_id},
                *field_changes(_FIELDS, None, row),
            ],
        )
        created.append(row)
        return Outcome()

    outcome = await written(ctx, step)
    return FollowUpOutcome(problems=outcome.problems, follow_up=created[0] if created else None)


def _status_changes(current: Row[Any], changes: dict[str, Any], now: datetime) -> dict[str, Any]:
    """completedAt follows the status: set when it becomes DONE, cleared when it leaves DONE.
    A new due time may be reminded of again."""
    out = dict(changes)
    status = changes.get("status")
    if status == FollowUpStatus.DONE.value and current.status != status:
        out["completed_at"] = now
    elif status is not None and status != FollowUpStatus.DONE.value:
        out["completed_at"] = None
    if "due_at" in changes:
        out["reminded_at"] = None
    return out


async def update(ctx: Context, id_: str, values: dict[str, Any]) -> FollowUpOutcome:
    """Edits a follow-up (MEMBER): a field left out is unchanged; notes: null clears them,
    assigneeId: null unassigns it; title, dueAt and status cannot be null."""
    ctx.require(Role.MEMBER)
    pk, bad_id = pk_for_mutation(id_, FOLLOW_UP, ["id"])
    problems = [bad_id] if bad_id else []
    assignee_given, assignee, bad_assignee = _assignee(values)
    problems += [
        Problem("This field cannot be null.", UserErrorCode.INVALID, ["input", camel(name)])
        for name, value in values.items()
        if value is None and name != "notes"
    ]
    given = {k: v for k, v in values.items() if v is not None or k == "notes"}
    data, invalid = validated(FollowUpUpdate, given)
    problems += bad_assignee + invalid
    if problems or pk is None:
        return FollowUpOutcome(problems=problems)
    updated: list[Row[Any]] = []

    async def step(unit: Unit) -> Outcome:
        found = await _check_assignee(unit, assignee)
        repo = FollowUpRepository(unit.conn, ctx.workspace_id)
        current = await repo.get(pk, for_update=True)
        if current is None:
            raise Abort([not_found("follow-up"), *found])
        if found:
            raise Abort(found)
        wanted = values_of(data, only_set=True)
        if assignee_given:
            wanted["assignee_user_id"] = assignee
        changes = changed(current, wanted)
        if not changes:
            updated.append(current)
            return Outcome()
        row = await repo.update(current, _status_changes(current, changes, utcnow()))
        unit.event(
            EventType.FOLLOW_UP_UPDATED, FOLLOW_UP, row.id, field_changes(_FIELDS, current, row)
        )
        updated.append(row)
        return Outcome()

    outcome = await written(ctx, step)
    return FollowUpOutcome(problems=outcome.problems, follow_up=updated[0] if updated else None)


async def unassign_member(unit: Unit, user_id: int) -> None:
    """A member leaves: their OPEN follow-ups lose their assignee, each with its
    FOLLOW_UP_UPDATED event ("assigneeId" to null), in the removal's transaction."""
    rows = await FollowUpRepository(unit.conn, unit.workspace_id).unassign(user_id)
    for row in rows:
        change = {"field": "assigneeId", "from": to_global_id("User", user_id), "to": None}
        unit.event(EventType.FOLLOW_UP_UPDATED, FOLLOW_UP, row.id, [change])


async def move_to_lead(unit: Unit, lead_ids: list[int], survivor_id: int) -> None:
    """mergeLeads: the merged leads' follow-ups go to the survivor, each with its
    FOLLOW_UP_UPDATED event ("subjectId"), instead of being deleted with those leads."""
    moved = await FollowUpRepository(unit.conn, unit.workspace_id).move_to_lead(
        lead_ids, survivor_id
    )
    survivor = to_global_id("Lead", survivor_id)
    for row in moved:
        change = {"field": "subjectId", "from": to_global_id("Lead", row.lead_id), "to": survivor}
        unit.event(EventType.FOLLOW_UP_UPDATED, FOLLOW_UP, row.id, [change])
