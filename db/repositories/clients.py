"""Queries on clients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, select

from db.models import Client, ClientStatus
from db.models.fields import fold, full_name, search_key
from db.repositories.base import Repository
from db.repositories.search import TextSearch


@dataclass(frozen=True)
class ClientFilterSpec:
    """A validated ClientFilter; ``statuses`` None means ACTIVE only."""

    search: str | None = None
    statuses: Sequence[ClientStatus] | None = None
    city: str | None = None
    state: str | None = None
    email: str | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None


class ClientRepository(Repository):
    table = Client.__table__  # type: ignore[attr-defined]

    def derived(self, values: dict[str, Any]) -> dict[str, Any]:
        name = full_name(values["first_name"], values["last_name"])
        return {
            "email_key": fold(values["email"]),
            "name_key": fold(name),
            "city_key": fold(values.get("city")),
            "state_key": fold(values.get("state")),
            "search_key": search_key(name, values["email"], values.get("company")),
        }

    def conditions(self, spec: ClientFilterSpec) -> list[ColumnElement[bool]]:
        c = self.c
        statuses = spec.statuses if spec.statuses is not None else [ClientStatus.ACTIVE]
        out: list[ColumnElement[bool]] = [c.status.in_([s.value for s in statuses])]
        if spec.search:
            out.append(TextSearch(self.table, fold(spec.search)))
        if spec.city is not None:
            out.append(c.city_key == fold(spec.city))
        if spec.state is not None:
            out.append(c.state_key == fold(spec.state))
        if spec.email is not None:
            out.append(c.email_key == fold(spec.email))
        if spec.created_gte is not None:
            out.append(c.created_at >= spec.created_gte)
        if spec.created_lt is not None:
            out.append(c.created_at < spec.created_lt)
        return out

    async def email_taken(self, email: str, *, except_id: int | None = None) -> bool:
        cond = [self.c.email_key == fold(email)]
        if except_id is not None:
            cond.append(self.c.id != except_id)
        stmt = select(exists().where(*self.scoped(*cond)))
        return bool((await self.conn.execute(stmt)).scalar())
