"""Rows written straight through the repositories, for tests that need exact values
(timestamps, statuses) that the API sets itself."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from db.models import DEFAULT_WORKSPACE_ID
from db.repositories import ClientRepository, LeadRepository
from resolvers.ids import to_global_id

_seq = itertools.count(1)
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def lead_values(**overrides: Any) -> dict[str, Any]:
    n = next(_seq)
    values: dict[str, Any] = {
        "email": f"lead{n}@example.com",
        "first_name": None,
        "last_name": None,
        "status": "NEW",
        "score": 0,
        "meta": {},
        "created_at": BASE_TIME + timedelta(minutes=n),
    }
    values.update(overrides)
    values.setdefault("updated_at", values["created_at"])
    return values


def client_values(**overrides: Any) -> dict[str, Any]:
    n = next(_seq)
    values: dict[str, Any] = {
        "email": f"client{n}@example.com",
        "first_name": "Client",
        "last_name": f"Number{n}",
        "status": "ACTIVE",
        "meta": {},
        "created_at": BASE_TIME + timedelta(minutes=n),
    }
    values.update(overrides)
    values.setdefault("updated_at", values["created_at"])
    return values


def create_leads(server: Any, *rows: dict[str, Any]) -> list[str]:
    """Inserts leads (from ``lead_values``) and returns their global IDs, in order."""

    async def insert() -> list[str]:
        async with server.db.write() as session:
            repo = LeadRepository(session, DEFAULT_WORKSPACE_ID)
            return [to_global_id("Lead", (await repo.insert(r)).id) for r in rows]

    return server.run(insert())


def create_clients(server: Any, *rows: dict[str, Any]) -> list[str]:
    async def insert() -> list[str]:
        async with server.db.write() as session:
            repo = ClientRepository(session, DEFAULT_WORKSPACE_ID)
            return [to_global_id("Client", (await repo.insert(r)).id) for r in rows]

    return server.run(insert())
