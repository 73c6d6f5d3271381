"""Queries on clients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select

from db.models import Client, ClientExternalId, ClientStatus
from db.models.fields import fold, person_keys
from db.models.keys import region_key
from db.repositories.base import Bound, FilterSpec, Repository, external_id_bound, values_of
from db.repositories.tags import CLIENT_TAGS, owner_bounds
from db.repositories.tickets import open_ticket_exists


@dataclass(frozen=True, kw_only=True)
class ClientFilterSpec(FilterSpec):
    """A validated ClientFilter; ``statuses`` None means ACTIVE only."""

    statuses: Sequence[ClientStatus] | None = None
    city: str | None = None
    state: str | None = None
    email: str | None = None
    external_id: tuple[str, str] | None = None  # (system, id)
    owner_id: int | None = None
    unassigned: bool | None = None
    tags_any: Sequence[int] | None = None
    tags_all: Sequence[int] | None = None
    tags_none: Sequence[int] | None = None
    has_open_ticket: bool | None = None


_EXTERNAL = ClientExternalId.__table__  # type: ignore[attr-defined]


class ClientRepository(Repository):
    table = Client.__table__  # type: ignore[attr-defined]
    external = (_EXTERNAL, "client_id")

    def derived(self, values: dict[str, Any]) -> dict[str, Any]:
        return person_keys(values)

    bound = (
        *Repository.bound,
        Bound(
            "statuses",
            lambda c, v: c.status.in_(v),
            values_of,
            expanding=True,
            default=(ClientStatus.ACTIVE,),
        ),
        Bound("city", lambda c, v: c.city_key == v, fold),
        Bound("state", lambda c, v: c.state_key == v, region_key),
        Bound("email", lambda c, v: c.email_key == v, fold),
        external_id_bound(_EXTERNAL, "client_id"),
        *owner_bounds(CLIENT_TAGS),
        Bound(
            "has_open_ticket",
            lambda c, yes: open_ticket_exists(c) if yes else ~open_ticket_exists(c),
            constant=True,
        ),
    )

    async def email_taken(self, email: str, *, except_id: int | None = None) -> bool:
        cond = [self.c.email_key == fold(email)]
        if except_id is not None:
            cond.append(self.c.id != except_id)
        stmt = select(exists().where(*self.scoped(*cond)))
        return bool((await self.conn.execute(stmt)).scalar())
