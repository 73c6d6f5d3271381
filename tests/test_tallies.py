"""Pipeline tallies (migration 0015): the counts ``leads { aggregate }`` reads from the tallies
under no filter or a filter of status, sources, state, ownerId, unassigned are the counts of
the leads themselves, after every write path, some at once: createLead, updateLead (status,
source, state, owner, score), convertLead, deleteLead, mergeLeads, a bulk import (POST
/imports/leads, creating and updating), removeMember (unassigns its leads), and rows written
straight through the repository. Each count is compared with the same count forced through
the plain statements (``score: {gte: 0}``: every lead matches it, and it is no tally
dimension), and every tally row with a GROUP BY of the leads. Also: the migration's backfill
counts the leads written before it, and ``server.py recount`` rebuilds the tallies."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import String, cast, func, literal_column, select

from db import migrate
from db.engine import Database
from db.models import DEFAULT_WORKSPACE_ID, Lead, LeadDayTally, LeadTally, LeadTallyTotal
from db.repositories.auth import MembershipRepository, UserRepository
from db.repositories.lead_counts import utc_day
from db.repositories.leads import LeadRepository
from db.types import utcnow
from resolvers.ids import to_global_id
from tests.conftest import OWNER_KEY, GraphQLClient, LiveServer
from tests.databases import execute, scratch_database
from tests.factories import create_leads, lead_values
from tests.test_cli import run as cli
from tests.test_database import on_database
from tests.test_imports import finished, post

LEADS: Any = Lead.__table__  # type: ignore[attr-defined]
TALLIES: Any = LeadTally.__table__  # type: ignore[attr-defined]
DAY_TALLIES: Any = LeadDayTally.__table__  # type: ignore[attr-defined]
TOTALS: Any = LeadTallyTotal.__table__  # type: ignore[attr-defined]

EVERYTHING = """
count averageScore
byStatus { status count }
bySource(first: 100) { value count }
byState(first: 100) { value count }
byOwner(first: 100) { owner { id } count }
createdPerDay(days: 366) { day count }
convertedPerDay(days: 366) { day count }
"""
AGGREGATE = f"""
query ($filter: LeadFilter) {{
  leads(first: 0, filter: $filter) {{ aggregate {{ {EVERYTHING} }} }}
}}
"""
CREATE = """
mutation ($input: CreateLeadInput!) {
  createLead(input: $input) { lead { id } userErrors { field code } }
}
"""
UPDATE = """
mutation ($id: ID!, $input: UpdateLeadInput!) {
  updateLead(id: $id, input: $input) { userErrors { field code } }
}
"""
CONVERT = "mutation ($id: ID!) { convertLead(id: $id) { userErrors { field code } } }"
DELETE = "mutation ($id: ID!) { deleteLead(id: $id) { userErrors { field code } } }"
MERGE = """
mutation ($survivor: ID!, $merged: [ID!]!) {
  mergeLeads(input: {survivorId: $survivor, mergedIds: $merged}) { userErrors { field code } }
}
"""
REMOVE = "mutation ($id: ID!) { removeMember(userId: $id) { userErrors { field code } } }"

STATUSES = ["NEW", "CONTACTED", "QUALIFIED", "LOST"]
SOURCES = ["Web", "web", "Ads", "fair", None]
STATES = ["TX", "Texas", "CA", "Ohio", "ny", None]
# Not a tally dimension, matched by every lead: the same counts through the plain statements.
EVERY_LEAD = {"score": {"gte": 0}}


def member(server: LiveServer, email: str) -> int:
    async def insert() -> int:
        now = utcnow()
        async with server.db.write() as conn:
            user = await UserRepository(conn).insert(
                email=email, name=email.split("@")[0], created_at=now, email_verified_at=now
            )
            await MembershipRepository(conn, DEFAULT_WORKSPACE_ID).insert(user.id, "MEMBER", now)
        return int(user.id)

    return server.run(insert())


def days_ago(n: int) -> datetime:
    return datetime.combine(datetime.now(UTC).date() - timedelta(days=n), day_time(9), UTC)


def aggregate(gql: GraphQLClient, given: dict[str, Any] | None) -> dict[str, Any]:
    found: dict[str, Any] = gql.data(AGGREGATE, {"filter": given})["leads"]["aggregate"]
    return found


def assert_same_both_ways(gql: GraphQLClient, given: dict[str, Any] | None) -> dict[str, Any]:
    """The counts under ``given`` (the tallies) equal those under ``given`` and a condition
    every lead meets (the plain statements)."""
    tallied = aggregate(gql, given)
    plain = aggregate(gql, {**(given or {}), **EVERY_LEAD})
    if plain["averageScore"] is not None:
        assert tallied["averageScore"] == pytest.approx(plain["averageScore"], rel=1e-12)
        tallied["averageScore"] = plain["averageScore"]
    assert tallied == plain, given
    return tallied


async def cells_of(conn: Any) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """(the tally rows that count leads, the same cells grouped from the leads), for both
    tally tables."""
    dims = [LEADS.c.workspace_id, LEADS.c.status, LEADS.c.state_key, LEADS.c.source_key]
    owner = func.coalesce(LEADS.c.owner_id, 0)
    counting = (TALLIES.c.n != 0) | (TALLIES.c.score_sum != 0)
    kept = {tuple(r) for r in await conn.execute(select(TALLIES).where(counting))}
    days = select(DAY_TALLIES).where(DAY_TALLIES.c.n != 0)
    kept |= {("day", *r) for r in await conn.execute(days)}
    grouped = {
        tuple(r)
        for r in await conn.execute(
            select(*dims, owner, func.count(), func.sum(LEADS.c.score)).group_by(*dims, owner)
        )
    }
    for kind, column in (("CREATED", LEADS.c.created_at), ("CONVERTED", LEADS.c.converted_at)):
        day = utc_day(column)
        stmt = (
            select(dims[0], literal_column(f"'{kind}'"), day, *dims[1:], owner, func.count())
            .where(column.is_not(None))
            .group_by(dims[0], day, *dims[1:], owner)
        )
        grouped |= {("day", *r) for r in await conn.execute(stmt)}
    # The totals (one dimension at a time) of the same leads.
    total = select(TOTALS).where((TOTALS.c.n != 0) | (TOTALS.c.score_sum != 0))
    kept |= {("total", *r) for r in await conn.execute(total)}
    for dim, column in (
        ("status", LEADS.c.status),
        ("source", LEADS.c.source_key),
        ("state", LEADS.c.state_key),
        ("owner", cast(owner, String)),
    ):
        stmt = select(
            dims[0], literal_column(f"'{dim}'"), column, func.count(), func.sum(LEADS.c.score)
        ).group_by(dims[0], column)
        grouped |= {("total", *r) for r in await conn.execute(stmt)}
    for kind, column in (("CREATED", LEADS.c.created_at), ("CONVERTED", LEADS.c.converted_at)):
        day = utc_day(column)
        stmt = (
            select(dims[0], literal_column(f"'{kind}'"), day, func.count(), literal_column("0"))
            .where(column.is_not(None))
            .group_by(dims[0], day)
        )
        grouped |= {("total", *r) for r in await conn.execute(stmt)}
    return kept, grouped


def cells(server: LiveServer) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    async def read() -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
        async with server.db.read() as conn:
            return await cells_of(conn)

    return server.run(read())


def assert_tallies_exact(server: LiveServer, gql: GraphQLClient, owners: list[int]) -> None:
    kept, grouped = cells(server)
    assert kept == grouped
    filters: list[dict[str, Any] | None] = [
        None,
        {"status": ["NEW", "CONTACTED"]},
        {"status": ["WON"]},
        {"state": "texas"},
        {"source": ["WEB", "fair"]},
        {"status": ["NEW", "CONTACTED"], "state": "TX"},
        {"unassigned": True},
        {"unassigned": False},
        {"status": ["QUALIFIED", "WON", "NEW"], "source": ["ads"], "unassigned": False},
        *({"ownerId": to_global_id("User", o)} for o in owners),
        {"ownerId": to_global_id("User", owners[0]), "state": "CA"},
    ]
    for given in filters:
        assert_same_both_ways(gql, given)


def client(server: LiveServer) -> GraphQLClient:
    http = httpx.Client(
        base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {OWNER_KEY}"}
    )
    return GraphQLClient(http)


def test_the_tallies_answer_unless_the_filter_has_another_condition(
    server: LiveServer, gql: GraphQLClient, count_queries: Any
) -> None:
    create_leads(server, lead_values(status="NEW", state="TX", source="Web", score=10))

    with count_queries() as tallied:
        assert aggregate(gql, {"status": ["NEW"], "state": "tx"})["count"] == 1
    with count_queries() as plain:
        assert aggregate(gql, {"status": ["NEW"], **EVERY_LEAD})["count"] == 1

    # Beside the credential lookup: every count from the tallies (the spellings of bySource
    # and byState look one lead up each), none from them under a score filter.
    reads = tallied.statements[1:]
    assert len(reads) == 8
    assert all("lead_tallies" in s or "lead_day_tallies" in s for s in reads), reads
    assert not any("tallies" in s for s in plain.statements)


def test_every_write_path_keeps_the_tallies_exact_some_at_once(
    server: LiveServer, http: httpx.Client, gql: GraphQLClient
) -> None:
    rng = random.Random(12)
    ann, bob, cy = (member(server, f"{n}@example.com") for n in ("ann", "bob", "cy"))
    owners = [ann, bob, cy]

    # Written through the repository, on days before today, some converted.
    def written(n: int) -> dict[str, Any]:
        values = lead_values(
            status=rng.choice(STATUSES),
            source=rng.choice(SOURCES),
            state=rng.choice(STATES),
            score=rng.randrange(101),
            owner_id=rng.choice([*owners, None]),
            created_at=days_ago(rng.randrange(1, 40)),
        )
        if n % 7 == 0:
            values |= {"status": "WON", "converted_at": days_ago(rng.randrange(0, 3))}
        return values

    direct = create_leads(server, *(written(n) for n in range(30)))

    def create(n: int) -> str:
        values = {
            "email": f"c{n}@example.com",
            "status": rng.choice(STATUSES),
            "source": rng.choice(SOURCES),
            "state": rng.choice(STATES),
            "score": rng.randrange(101),
            "ownerId": to_global_id("User", rng.choice(owners)) if n % 3 else None,
        }
        found = gql.data(CREATE, {"input": values})["createLead"]
        assert found["userErrors"] == []
        return str(found["lead"]["id"])

    created = [create(n) for n in range(40)]
    assert_tallies_exact(server, gql, owners)

    ids = direct + created
    rng.shuffle(ids)
    to_update, to_convert, to_delete, to_merge = ids[:30], ids[30:38], ids[38:44], ids[44:53]
    csv = "email,firstName,state,source,status,score,createdAt\n" + "".join(
        f"{email},Imp,{rng.choice(['TX', 'Ohio', 'Texas', ''])},{rng.choice(['web', 'Fair', ''])},"
        f"{rng.choice(STATUSES)},{rng.randrange(101)},{days_ago(rng.randrange(0, 9)).isoformat()}\n"
        # new leads, and leads created above (updated by email)
        for email in [
            *(f"i{n}@example.com" for n in range(150)),
            *(f"c{n}@example.com" for n in range(0, 40, 4)),
        ]
    )

    def updates(c: GraphQLClient) -> None:
        rng = random.Random(7)  # this thread's; bob is being removed meanwhile
        for id_ in to_update:
            changes = rng.choice(
                [
                    {"status": rng.choice(STATUSES)},
                    {"source": rng.choice(SOURCES)},
                    {"state": rng.choice(STATES)},
                    {"score": rng.randrange(101)},
                    {"ownerId": to_global_id("User", rng.choice([ann, cy]))},
                    {"ownerId": None, "status": "LOST", "state": "ohio"},
                ]
            )
            assert c.data(UPDATE, {"id": id_, "input": changes})["updateLead"]["userErrors"] == []

    def conversions(c: GraphQLClient) -> None:
        for id_ in to_convert:
            c.data(CONVERT, {"id": id_})  # one already converted answers a userError

    def deletions(c: GraphQLClient) -> None:
        for id_ in to_delete:
            assert c.data(DELETE, {"id": id_})["deleteLead"]["userErrors"] == []

    merged_ok = []

    def merges(c: GraphQLClient) -> None:
        for k in range(0, len(to_merge), 3):
            survivor, *merged = to_merge[k : k + 3]
            # A converted lead may only survive: such a merge answers a userError.
            found = c.data(MERGE, {"survivor": survivor, "merged": merged})["mergeLeads"]
            merged_ok.append(found["userErrors"] == [])

    def imports(c: GraphQLClient) -> None:
        response = post(c.http, csv, onDuplicate="UPDATE")
        assert response.status_code == 202, response.text
        assert finished(c, response.json()["id"], timeout=60)["status"] == "SUCCEEDED"

    def removal(c: GraphQLClient) -> None:
        time.sleep(0.05)
        found = c.data(REMOVE, {"id": to_global_id("User", bob)})["removeMember"]
        assert found["userErrors"] == []

    def reads(c: GraphQLClient) -> None:
        for _ in range(10):
            aggregate(c, None)
            aggregate(c, {"status": ["NEW", "CONTACTED"], "state": "TX"})

    work: list[Callable[[GraphQLClient], None]] = [
        updates,
        conversions,
        deletions,
        merges,
        imports,
        removal,
        reads,
    ]
    clients = [client(server) for _ in work]
    try:
        with ThreadPoolExecutor(len(work)) as pool:
            for done in [pool.submit(job, c) for job, c in zip(work, clients, strict=True)]:
                done.result()
    finally:
        for c in clients:
            c.http.close()

    assert any(merged_ok)
    unfiltered = aggregate(gql, None)
    assert unfiltered["count"] > 150
    assert sum(d["count"] for d in unfiltered["convertedPerDay"]) > 0
    assert_tallies_exact(server, gql, owners)
    # bob's leads are unassigned now.
    assert aggregate(gql, {"ownerId": to_global_id("User", bob)})["count"] == 0


def test_server_recount_rebuilds_the_tallies_from_the_leads(
    server: LiveServer, gql: GraphQLClient
) -> None:
    create_leads(
        server,
        *(lead_values(status="NEW", state="TX", score=n, created_at=days_ago(n)) for n in range(5)),
    )
    texas = {"state": "TX"}  # read from lead_tallies; no filter: from lead_tally_totals
    before, before_texas = aggregate(gql, None), aggregate(gql, texas)
    url = server.settings.database_url
    # Tallies edited by hand, all three tables (SQLite's triggers carry the first two
    # statements into the totals too; PostgreSQL's totals only move with the leads).
    execute(url, "UPDATE lead_tallies SET n = n + 7, score_sum = score_sum + 70")
    execute(url, "UPDATE lead_day_tallies SET n = 0")
    execute(url, "INSERT INTO lead_tallies VALUES (1, 'LOST', 'oh', '', 0, 3, 30)")
    execute(url, "UPDATE lead_tally_totals SET n = n + 1 WHERE dim = 'status'")
    assert aggregate(gql, None)["count"] != 5
    assert aggregate(gql, texas)["count"] == 5 + 7

    result = cli("recount", DATABASE_URL=url)

    assert result.returncode == 0, result.stderr
    assert "Recounted" in result.stderr
    assert aggregate(gql, None) == before
    assert aggregate(gql, texas) == before_texas
    kept, grouped = cells(server)
    assert kept == grouped


def test_the_migration_counts_the_leads_written_before_it(tmp_path: Path) -> None:
    async def work(db: Database) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
        await migrate.upgrade(db, "0014")
        async with db.write() as conn:
            repo = LeadRepository(conn, DEFAULT_WORKSPACE_ID)
            for n in range(12):
                values = lead_values(
                    status=["NEW", "WON", "LOST"][n % 3],
                    state=["TX", "Texas", "Ohio"][n % 3],
                    source="Web" if n % 2 else None,
                    score=n * 5,
                    created_at=days_ago(n % 4),
                )
                if n % 3 == 1:
                    values["converted_at"] = days_ago(n % 2)
                await repo.insert(values)
        await migrate.upgrade(db)
        async with db.read() as conn:
            return await cells_of(conn)

    with scratch_database(tmp_path) as url:
        kept, grouped = on_database(url, work)

    assert kept == grouped
    # TX and Texas are one state key; 12 leads created on 4 days, 4 of them converted.
    assert sum(cell[5] for cell in kept if isinstance(cell[0], int)) == 12
    assert {cell[2] for cell in kept if isinstance(cell[0], int)} == {"tx", "oh"}
    assert sum(cell[8] for cell in kept if cell[:1] == ("day",) and cell[2] == "CREATED") == 12
    assert sum(cell[8] for cell in kept if cell[:1] == ("day",) and cell[2] == "CONVERTED") == 4
