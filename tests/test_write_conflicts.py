"""Writes that cross each other's row locks: on PostgreSQL the database may abort one of them to
break a deadlock; the unit of work runs it again, so the caller sees an answer, never an error."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import DEFAULT_WORKSPACE_ID, Lead
from db.repositories import LeadRepository
from tests.conftest import GraphQLClient, LiveServer, Mailbox
from tests.factories import lead_values
from tests.test_auth_flows import verified_session
from tests.test_members import MEMBERS, UPDATE_ROLE, invite_and_accept, member_id


def at_once(calls: list[tuple[GraphQLClient, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    barrier = threading.Barrier(len(calls))

    def send(call: tuple[GraphQLClient, str, dict[str, Any]]) -> dict[str, Any]:
        client, query, variables = call
        barrier.wait(timeout=30)
        return client(query, variables)

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(send, calls))


def owners(client: GraphQLClient) -> list[str]:
    return sorted(
        m["user"]["email"] for m in client.data(MEMBERS)["members"] if m["role"] == "OWNER"
    )


def test_two_owners_demoting_each_other_at_once_leave_one_owner_and_no_error(
    anon: GraphQLClient, mailbox: Mailbox
) -> None:
    """Each request locks the other's membership, then every OWNER membership (to keep one):
    the two lock sets cross. Whoever commits first wins; the other sees the last OWNER."""
    ada = anon.as_(verified_session(anon, mailbox))
    bea = anon.as_(invite_and_accept(ada, anon, mailbox, "bea@example.com", "OWNER")["token"])
    ids = {"ada": member_id(ada, "ada@example.com"), "bea": member_id(ada, "bea@example.com")}
    clients = {"ada": ada, "bea": bea}

    for _ in range(10):
        bodies = at_once(
            [
                (ada, UPDATE_ROLE, {"userId": ids["bea"], "role": "ADMIN"}),
                (bea, UPDATE_ROLE, {"userId": ids["ada"], "role": "ADMIN"}),
            ]
        )

        assert [b.get("errors") for b in bodies] == [None, None]
        payloads = [b["data"]["updateMemberRole"] for b in bodies]
        codes = [p["userErrors"][0]["code"] if p["userErrors"] else "OK" for p in payloads]
        # The loser either lost the race for the last OWNER or, if it started after the winner
        # committed, is no longer an OWNER itself.
        assert sorted(codes) in (["LAST_OWNER", "OK"], ["FORBIDDEN", "OK"]), payloads
        winner, loser = ("ada", "bea") if codes[0] == "OK" else ("bea", "ada")
        assert owners(clients[winner]) == [f"{winner}@example.com"]
        # Back to two OWNERs for the next round.
        promoted = clients[winner].data(UPDATE_ROLE, {"userId": ids[loser], "role": "OWNER"})
        assert promoted["updateMemberRole"]["userErrors"] == []


class DriverError(Exception):
    """What the driver raises, with the SQLSTATE PostgreSQL sent."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_unit_of_work_aborted_for_a_conflict_runs_again_from_the_start(
    server: LiveServer, sqlstate: str
) -> None:
    attempts: list[int] = []

    async def work(session: AsyncSession) -> int:
        attempts.append(len(attempts) + 1)
        await LeadRepository(session, DEFAULT_WORKSPACE_ID).insert(
            lead_values(email=f"try{len(attempts)}@example.com")
        )
        if len(attempts) < 3:
            raise DBAPIError("UPDATE …", None, DriverError(sqlstate))
        return len(attempts)

    async def run() -> tuple[int, int]:
        done = await server.db.transaction(work)
        async with server.db.read() as conn:
            kept = (await conn.execute(select(func.count()).select_from(Lead))).scalar_one()
        return done, kept

    # The two aborted attempts left nothing behind; the third committed.
    assert server.run(run()) == (3, 1)


def test_other_failures_and_a_conflict_that_persists_are_not_hidden(server: LiveServer) -> None:
    calls = {"other": 0, "conflict": 0}

    async def other(session: AsyncSession) -> None:
        calls["other"] += 1
        raise DBAPIError("INSERT …", None, DriverError("23505"))  # unique_violation

    async def conflict(session: AsyncSession) -> None:
        calls["conflict"] += 1
        raise DBAPIError("UPDATE …", None, DriverError("40P01"))

    with pytest.raises(DBAPIError):
        server.run(server.db.transaction(other))
    with pytest.raises(DBAPIError):
        server.run(server.db.transaction(conflict, attempts=4))
    assert calls == {"other": 1, "conflict": 4}
