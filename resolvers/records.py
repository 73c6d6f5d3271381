"""What the resolvers of every record type (leads, clients, ...) share. A domain declares its
``RecordType``: its name in global IDs, repository, sorts, how its filter input becomes a
repository spec, and its DataLoader; listing, lookup and the shape of a write come from here.
The domain's rules (what may change, what must be unique, conversion) stay in its module."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from strawberry.dataloader import DataLoader

from db.models import Role
from db.repositories import Repository
from resolvers import inputs
from resolvers.errors import Problem, UserErrorCode, not_found
from resolvers.events import Tracked, Unit, same
from resolvers.ids import pk_for_mutation, pk_for_query
from resolvers.loaders import Loaders
from resolvers.outcome import Abort, Outcome
from resolvers.pagination import Page, SortKey, fetch_page, page_args

if TYPE_CHECKING:
    from resolvers.context import Context


@dataclass(frozen=True)
class RecordType:
    """One record type, as its resolvers see it."""

    name: str  # the GraphQL type, as global IDs spell it: "Lead"
    kind: str  # in messages: "lead", "No lead with this ID."
    repository: Callable[[Any, int], Repository]
    sorts: Mapping[str, SortKey]  # orderBy field → column and cursor value type
    spec: Callable[[Any], Any]  # the filter input (None when left out) → the repository's spec
    loader: Callable[[Loaders], DataLoader[int, Row[Any] | None]]
    # The columns whose changes its events report (resolvers/events.py, ``tracked``).
    fields: Mapping[str, Tracked]

    async def page(
        self,
        ctx: Context,
        first: int | None,
        after: str | None,
        last: int | None,
        before: str | None,
        filter_: Any,
        order_by: Any,
        columns: frozenset[str] | None = None,
    ) -> Page:
        """One page of the list, in the order asked for (CREATED_AT DESC by default). With
        ``columns``, rows hold those (and the id and sort column the cursors need) only."""
        ctx.require(Role.VIEWER)
        field, given = inputs.order(order_by)
        sort = self.sorts[field]
        direction = sort.direction(given)
        order = f"{field}:{direction}"
        args = page_args(first, after, last, before, order, sort)
        workspace_id = ctx.workspace_id

        def repository(conn: Any) -> Repository:
            return self.repository(conn, workspace_id)

        descending = direction == "DESC"
        selected = sorted(columns | {"id", sort.column}) if columns is not None else None
        return await fetch_page(
            ctx.db, repository, self.spec(filter_), sort, descending, order, args, selected
        )

    async def get(self, ctx: Context, id_: str) -> Row[Any] | None:
        """The record with this global ID in the caller's workspace, or None."""
        ctx.require(Role.VIEWER)
        pk = pk_for_query(id_, self.name)
        return None if pk is None else await self.loader(ctx.loaders).load(pk)

    def pk(self, id_: str, field: list[str] | None = None) -> tuple[int | None, list[Problem]]:
        """A mutation's record ID: its pk, or the problem to report (INVALID, NOT_FOUND)."""
        pk, problem = pk_for_mutation(id_, self.name, field or ["id"])
        return pk, [problem] if problem else []

    def not_found(self, field: list[str] | None = None) -> Problem:
        return not_found(self.kind, field or ["id"])


def changed(current: Row[Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The ``changes`` that differ from the ``current`` row's values (as JSON: 1 is not
    true): a write of the values a record holds already changes nothing, not even updatedAt."""
    return {k: v for k, v in changes.items() if not same(getattr(current, k), v)}


def external_ids_taken() -> Problem:
    """A concurrent write took one of the external IDs first (a unique index refused it)."""
    return Problem(
        "Another record took one of these external IDs meanwhile.",
        UserErrorCode.TAKEN,
        ["input", "externalIds"],
    )


def refused_by(exc: IntegrityError, otherwise: Callable[[], Problem]) -> Problem:
    """The problem of a unique index's refusal: an external ID's, or ``otherwise``'s."""
    return external_ids_taken() if "external_ids" in str(exc.orig) else otherwise()


async def claim_external_ids(
    repo: Repository, kind: str, pairs: list[dict[str, str]] | None, except_id: int | None = None
) -> None:
    """Aborts with TAKEN, per pair, when the ``pairs`` name records other than ``except_id``."""
    given = pairs or []
    owners = await repo.external_owners(given, except_id=except_id)
    if owners:
        raise Abort(
            [
                Problem(
                    f"Another {kind} has the {given[i]['system']} id {given[i]['id']}.",
                    UserErrorCode.TAKEN,
                    ["input", "externalIds", str(i), "id"],
                )
                for i in sorted(owners)
            ]
        )


async def written(
    ctx: Context,
    step: Callable[[Unit], Awaitable[Outcome]],
    conflict: Callable[[IntegrityError], Problem] | None = None,
) -> Outcome:
    """``step`` in one unit of work: committed when it returns, rolled back when it raises
    ``Abort`` (its outcome is answered) or, with ``conflict``, an IntegrityError (a unique
    index refused a row: ``conflict(error)`` is answered). The events the step recorded are
    appended to the log last, just before the commit (``Unit.append``: from there on other
    writers of the workspace wait for this commit). DataLoaders forget what a write changed."""
    try:
        async with ctx.db.write() as conn:
            unit = Unit(ctx, conn)
            outcome = await step(unit)
            await unit.append()
    except Abort as abort:
        return abort.outcome
    except IntegrityError as exc:
        if conflict is None:
            raise
        return Outcome(problems=[conflict(exc)])
    unit.committed()
    ctx.clear_loaders()
    return outcome
