"""Tags and owners: the workspace's tags (list, create, rename/recolor, delete), and the
``ownerId`` / ``tagIds`` of lead and client inputs, checked and written in the record's own
unit of work (its LEAD_UPDATED / CLIENT_UPDATED event reports them as "ownerId", "tagIds")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row

from db.models import Role, TagCreate, TagUpdate
from db.repositories.tags import (
    CLIENT_TAGS,
    LEAD_TAGS,
    TagLinks,
    TagRepository,
    is_member,
    unassign,
)
from resolvers.errors import Problem, UserErrorCode, not_found, validated
from resolvers.events import Unit, Write
from resolvers.ids import pk_for_mutation, to_global_id
from resolvers.loaders import MAX_BATCH
from resolvers.outcome import Abort
from resolvers.records import changed, written

if TYPE_CHECKING:
    from resolvers.context import Context
    from resolvers.records import RecordType

TAG = "Tag"
OWNER_FIELD, TAGS_FIELD = "ownerId", "tagIds"


@dataclass
class TagOutcome:
    problems: list[Problem] = field(default_factory=list)
    tag: Row[Any] | None = None
    deleted_id: str | None = None


def _taken() -> Problem:
    return Problem("A tag with this name already exists.", UserErrorCode.TAKEN, ["input", "name"])


async def tags(ctx: Context) -> list[Any]:
    """The workspace's tags, by name."""
    ctx.require(Role.VIEWER)
    async with ctx.db.read() as conn:
        return await TagRepository(conn, ctx.workspace_id).all()


async def _tag_written(ctx: Context, step: Any) -> TagOutcome:
    """``step`` in one unit of work; a unique-index refusal (a concurrent tag took the name
    past the check) is TAKEN, like the check's own answer."""
    out = await written(ctx, step, conflict=lambda exc: _taken())
    # An Abort or a conflict answers the plain Outcome: only its problems.
    return out if isinstance(out, TagOutcome) else TagOutcome(problems=out.problems)


async def create_tag(ctx: Context, values: dict[str, Any]) -> TagOutcome:
    ctx.require(Role.MEMBER)
    data, problems = validated(TagCreate, values)
    if problems:
        return TagOutcome(problems=problems)

    async def step(unit: Unit) -> TagOutcome:
        repo = TagRepository(unit.conn, ctx.workspace_id)
        if await repo.name_taken(data.name):
            raise Abort([_taken()])
        return TagOutcome(tag=await repo.insert(data.model_dump()))

    return await _tag_written(ctx, step)


async def update_tag(ctx: Context, id_: str, values: dict[str, Any]) -> TagOutcome:
    ctx.require(Role.MEMBER)
    pk, problem = pk_for_mutation(id_, TAG, ["id"])
    data, problems = validated(TagUpdate, values)
    if problem is not None or problems or pk is None:
        return TagOutcome(problems=([problem] if problem else []) + problems)
    given = data.model_dump(exclude_unset=True)

    async def step(unit: Unit) -> TagOutcome:
        repo = TagRepository(unit.conn, ctx.workspace_id)
        current = await repo.get(pk, for_update=True)
        if current is None:
            raise Abort([not_found("tag")])
        if "name" in given and await repo.name_taken(given["name"], except_id=pk):
            raise Abort([_taken()])
        changes = changed(current, given)
        if not changes:
            return TagOutcome(tag=current)
        return TagOutcome(tag=await repo.update(current, changes))

    return await _tag_written(ctx, step)


async def delete_tag(ctx: Context, id_: str) -> TagOutcome:
    """Deletes the tag and takes it off every lead and client, each of which gets its
    LEAD_UPDATED / CLIENT_UPDATED event ("tagIds")."""
    ctx.require(Role.ADMIN)
    pk, problem = pk_for_mutation(id_, TAG, ["id"])
    if pk is None:
        return TagOutcome(problems=[problem] if problem else [])

    async def step(unit: Unit) -> TagOutcome:
        from resolvers.clients import CLIENTS
        from resolvers.leads import LEADS

        repo = TagRepository(unit.conn, ctx.workspace_id)
        if await repo.get(pk, for_update=True) is None:
            raise Abort([not_found("tag")])
        for record, links in ((LEADS, LEAD_TAGS), (CLIENTS, CLIENT_TAGS)):
            tagged = await links.untag(unit.conn, pk)
            records = record.repository(unit.conn, ctx.workspace_id)
            # In batches: a statement binds a bounded number of parameters.
            for start in range(0, len(tagged), MAX_BATCH):
                batch = tagged[start : start + MAX_BATCH]
                left = await links.tag_ids(unit.conn, ctx.workspace_id, batch)
                for row in await records.get_many(batch):
                    after = left.get(row.id, [])
                    change = tags_change(sorted([*after, pk]), after)
                    unit.record(record, Write.UPDATED, row, row, also=change)
        await repo.delete(pk)
        return TagOutcome(deleted_id=to_global_id(TAG, pk))

    return await _tag_written(ctx, step)


# ------------------------------------------------------------ owners and tags of records


@dataclass(frozen=True)
class Assignment:
    """A record input's ``ownerId`` and ``tagIds``, as pks: UNSET (left out) when not given."""

    owner_given: bool = False
    owner_id: int | None = None
    tag_ids: list[int] | None = None  # None: left out (or null: no change)

    @property
    def empty(self) -> bool:
        return not self.owner_given and self.tag_ids is None


def assignment(values: dict[str, Any]) -> tuple[Assignment, list[Problem]]:
    """Takes ``owner_id`` and ``tag_ids`` out of an input's ``values``: their pks, or the
    problems of malformed IDs (INVALID) and IDs of other types (NOT_FOUND)."""
    problems: list[Problem] = []
    owner_given = "owner_id" in values
    owner_global = values.pop("owner_id", None)
    owner_id: int | None = None
    if owner_global is not None:
        owner_id, problem = pk_for_mutation(owner_global, "User", ["input", OWNER_FIELD])
        problems += [problem] if problem else []
    given_tags = values.pop("tag_ids", None)
    tag_ids: list[int] | None = None
    if given_tags is not None:
        tag_ids = []
        for i, global_id in enumerate(given_tags):
            pk, problem = pk_for_mutation(global_id, TAG, ["input", TAGS_FIELD, str(i)])
            if problem is not None:
                problems.append(problem)
            elif pk is not None:
                tag_ids.append(pk)
    return Assignment(owner_given, owner_id, tag_ids), problems


async def check(unit: Unit, given: Assignment) -> list[Problem]:
    """The problems of the owner (not a member of the workspace) and of the tags (not the
    workspace's). Both stay as checked until the write commits (locked in share mode): a step
    checks them before it locks its record, in the order removeMember and deleteTag take
    theirs, so none of them deadlocks."""
    problems: list[Problem] = []
    owner = given.owner_id
    if owner is not None and not await is_member(unit.conn, unit.workspace_id, owner):
        problems.append(
            Problem(
                "No member of this workspace with this ID.",
                UserErrorCode.NOT_FOUND,
                ["input", OWNER_FIELD],
            )
        )
    if given.tag_ids:
        found = await TagRepository(unit.conn, unit.workspace_id).existing(given.tag_ids)
        # The ids line up with the input's: a step runs only when every ID parsed.
        problems += [
            not_found("tag", ["input", TAGS_FIELD, str(i)])
            for i, pk in enumerate(given.tag_ids)
            if pk not in found
        ]
    return problems


async def checked(unit: Unit, given: Assignment) -> None:
    """Aborts with ``check``'s problems, if any."""
    problems = await check(unit, given)
    if problems:
        raise Abort(problems)


def owner_values(given: Assignment) -> dict[str, Any]:
    """The owner_id column to write, when ownerId was given."""
    return {"owner_id": given.owner_id} if given.owner_given else {}


def tags_change(before: list[int], after: list[int]) -> list[dict[str, Any]]:
    """The "tagIds" field change of an event (tags as global IDs, ascending by pk; none as
    null, as for other list fields), or none when the set is the same."""
    if sorted(before) == sorted(after):
        return []

    def ids(pks: list[int]) -> list[str] | None:
        return [to_global_id(TAG, pk) for pk in sorted(pks)] or None

    return [{"field": TAGS_FIELD, "from": ids(before), "to": ids(after)}]


async def write_tags(
    unit: Unit, links: TagLinks, record_id: int, tag_ids: list[int] | None, *, add: bool = False
) -> list[dict[str, Any]]:
    """Sets (or with ``add``, adds to) a record's tags: the event's "tagIds" change."""
    if tag_ids is None:
        return []
    if add:
        current = await links.tag_ids(unit.conn, unit.workspace_id, [record_id])
        tag_ids = [*current.get(record_id, []), *tag_ids]
    before, after = await links.replace(unit.conn, unit.workspace_id, record_id, tag_ids)
    return tags_change(before, after)


def links_of(record: RecordType) -> TagLinks:
    return LEAD_TAGS if record.name == "Lead" else CLIENT_TAGS


async def unassign_member(unit: Unit, user_id: int) -> None:
    """A member leaves the workspace: their leads and clients become unassigned, each with its
    LEAD_UPDATED / CLIENT_UPDATED event ("ownerId" to null), in the removal's transaction."""
    from resolvers.clients import CLIENTS
    from resolvers.leads import LEADS

    for record in (LEADS, CLIENTS):
        table = record.repository.table  # type: ignore[attr-defined]
        for row in await unassign(unit.conn, table, unit.workspace_id, user_id):
            change = {"field": OWNER_FIELD, "from": to_global_id("User", user_id), "to": None}
            unit.record(record, Write.UPDATED, row, row, also=[change])
    # Issue 12's other parts unassign here too, in this same transaction: the member's OPEN
    # follow-ups (assignee) and their tickets (assignee).
    from resolvers.follow_ups import unassign_member as unassign_follow_ups

    await unassign_follow_ups(unit, user_id)
