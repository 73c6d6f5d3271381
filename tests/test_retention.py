"""Retention (issue 13): the workspace's policy through the API (OWNER sets it, ADMIN previews,
bad values change nothing), what a run removes or anonymises (``server.py retention run
[--dry-run]`` against the suite's database), that anonymised records keep the counts, and the
schedule inside ``server.py serve`` processes: one run per interval across processes, none
repeated by a restart."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from db.engine import Database
from db.models import DEFAULT_WORKSPACE_ID, Client, Event, Lead, Workspace
from db.settings import Settings
from db.types import utcnow
from resolvers.ids import parse_global_id
from tests.conftest import GraphQLClient, LiveServer
from tests.databases import scratch_database
from tests.processes import ServerProcess, create_owner_key


def from_global_id(global_id: str) -> tuple[str, int]:
    parsed = parse_global_id(global_id)
    assert parsed is not None
    return parsed


ROOT = Path(__file__).resolve().parent.parent

POLICY_FIELDS = "unconvertedLeadsAfterDays archivedClientsAfterDays eventsAfterDays action"
POLICY = f"{{ me {{ workspace {{ retentionPolicy {{ {POLICY_FIELDS} }} }} }} }}"
UPDATE = f"""
mutation ($input: RetentionPolicyInput!) {{
  updateRetentionPolicy(input: $input) {{
    policy {{ {POLICY_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}
"""
PREVIEW = """
query ($policy: RetentionPolicyInput) {
  retentionPreview(policy: $policy) { leads clients events }
}
"""
CREATE_LEAD = """
mutation ($input: CreateLeadInput!) {
  createLead(input: $input) { lead { id } userErrors { code } }
}
"""
CREATE_CLIENT = """
mutation ($input: CreateClientInput!) {
  createClient(input: $input) { client { id } userErrors { code } }
}
"""
ARCHIVE = "mutation ($id: ID!) { archiveClient(id: $id) { client { id } userErrors { code } } }"
CONVERT = "mutation ($id: ID!) { convertLead(id: $id) { lead { id } userErrors { code } } }"
LEADS = """
{
  leads(first: 100) {
    nodes { id email firstName lastName phone company city state source notes status score
            metadata }
    aggregate { count averageScore byStatus { status count } bySource { value count } }
  }
}
"""
EVENTS = "{ events(first: 100) { nodes { type recordId changes { field from to } } } }"
KEEP = {"unconvertedLeadsAfterDays": None, "archivedClientsAfterDays": None}


def policy(gql: GraphQLClient) -> dict[str, Any]:
    result: dict[str, Any] = gql.data(POLICY)["me"]["workspace"]["retentionPolicy"]
    return result


def age(server: LiveServer, model: Any, global_id: str, days: int, *columns: str) -> None:
    """Moves a record's timestamps ``days`` into the past, straight in the database."""
    table: Any = model.__table__
    pk = int(from_global_id(global_id)[1])
    when = utcnow() - timedelta(days=days)

    async def move() -> None:
        async with server.db.write() as conn:
            await conn.execute(
                update(table).where(table.c.id == pk).values(dict.fromkeys(columns, when))
            )

    server.run(move())


def age_events(server: LiveServer, days: int) -> None:
    table: Any = Event.__table__  # type: ignore[attr-defined]

    async def move() -> None:
        async with server.db.write() as conn:
            await conn.execute(update(table).values(occurred_at=utcnow() - timedelta(days=days)))

    server.run(move())


def lead(gql: GraphQLClient, email: str, **values: Any) -> str:
    out = gql.data(CREATE_LEAD, {"input": {"email": email, **values}})["createLead"]
    assert out["userErrors"] == []
    return str(out["lead"]["id"])


def retention_cli(server: LiveServer, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "server.py", "retention", "run", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": server.settings.database_url, "LOG_LEVEL": "warning"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_policy_starts_empty_and_an_owner_sets_it(gql: GraphQLClient) -> None:
    assert policy(gql) == {**KEEP, "eventsAfterDays": None, "action": "DELETE"}
    out = gql.data(UPDATE, {"input": {"unconvertedLeadsAfterDays": 30, "action": "ANONYMIZE"}})
    expected = {**KEEP, "unconvertedLeadsAfterDays": 30, "eventsAfterDays": None}
    assert out["updateRetentionPolicy"] == {
        "policy": {**expected, "action": "ANONYMIZE"},
        "userErrors": [],
    }
    # Fields left out stay; null keeps those records again.
    out = gql.data(UPDATE, {"input": {"eventsAfterDays": 90}})
    assert out["updateRetentionPolicy"]["policy"]["unconvertedLeadsAfterDays"] == 30
    out = gql.data(UPDATE, {"input": {"unconvertedLeadsAfterDays": None}})
    assert policy(gql) == {**KEEP, "eventsAfterDays": 90, "action": "ANONYMIZE"}


def test_bad_values_are_refused_and_change_nothing(gql: GraphQLClient) -> None:
    gql.data(UPDATE, {"input": {"eventsAfterDays": 90}})
    before = policy(gql)
    for field, value in (
        ("unconvertedLeadsAfterDays", 0),
        ("archivedClientsAfterDays", -5),
        ("eventsAfterDays", 1_000_000),
    ):
        out = gql.data(UPDATE, {"input": {"unconvertedLeadsAfterDays": 10, field: value}})
        payload = out["updateRetentionPolicy"]
        assert payload["policy"] is None
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
            (["input", field], "INVALID")
        ], payload
        assert "36500" in payload["userErrors"][0]["message"]
        assert policy(gql) == before
    out = gql.data(UPDATE, {"input": {"action": None}})["updateRetentionPolicy"]
    assert [e["field"] for e in out["userErrors"]] == [["input", "action"]]
    assert policy(gql) == before
    # A preview of a bad policy is a top-level BAD_USER_INPUT error.
    body = gql(PREVIEW, {"policy": {"eventsAfterDays": 0}})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def _plant(gql: GraphQLClient, server: LiveServer) -> dict[str, str]:
    """An old unconverted lead, an old converted one, a recent one; a client archived long
    ago, one archived lately, an active one; all events 200 days old but the last ones."""
    ids = {
        "old": lead(gql, "old@example.com", firstName="Olga", status="CONTACTED", score=40),
        "converted": lead(gql, "won@example.com", firstName="Walt", lastName="W"),
        "recent": lead(gql, "new@example.com"),
    }
    assert gql.data(CONVERT, {"id": ids["converted"]})["convertLead"]["userErrors"] == []
    for name in ("gone", "lately", "active"):
        out = gql.data(
            CREATE_CLIENT,
            {"input": {"email": f"{name}@example.org", "firstName": name, "lastName": "C"}},
        )["createClient"]
        ids[name] = out["client"]["id"]
    for name in ("gone", "lately"):
        assert gql.data(ARCHIVE, {"id": ids[name]})["archiveClient"]["userErrors"] == []
    age_events(server, 200)
    age(server, Lead, ids["old"], 100, "created_at", "updated_at")
    age(server, Lead, ids["converted"], 100, "created_at", "updated_at", "converted_at")
    age(server, Client, ids["gone"], 100, "archived_at")
    age(server, Client, ids["lately"], 5, "archived_at")
    return ids


def test_the_preview_counts_what_a_run_would_remove(gql: GraphQLClient, server: LiveServer) -> None:
    _plant(gql, server)
    # No policy: nothing would go.
    assert gql.data(PREVIEW)["retentionPreview"] == {"leads": 0, "clients": 0, "events": 0}
    everything = {
        "unconvertedLeadsAfterDays": 30,
        "archivedClientsAfterDays": 30,
        "eventsAfterDays": 30,
    }
    preview = gql.data(PREVIEW, {"policy": everything})["retentionPreview"]
    events = gql.data(EVENTS)["events"]["nodes"]
    assert preview == {"leads": 1, "clients": 1, "events": len(events)}
    gql.data(UPDATE, {"input": {"unconvertedLeadsAfterDays": 200}})
    assert gql.data(PREVIEW)["retentionPreview"]["leads"] == 0  # the current policy
    assert gql.data(PREVIEW, {"policy": {"unconvertedLeadsAfterDays": 99}})["retentionPreview"] == {
        "leads": 1,
        "clients": 0,
        "events": 0,
    }


def test_a_run_deletes_and_a_dry_run_only_counts(gql: GraphQLClient, server: LiveServer) -> None:
    ids = _plant(gql, server)
    gql.data(UPDATE, {"input": {"unconvertedLeadsAfterDays": 30, "archivedClientsAfterDays": 30}})
    before = gql.data(LEADS)["leads"]["aggregate"]["count"]
    assert retention_cli(server, "--dry-run") == (
        "workspace 1: would remove 1 leads, 1 clients (delete), 0 events, 0 webhook deliveries\n"
    )
    assert gql.data(LEADS)["leads"]["aggregate"]["count"] == before
    assert retention_cli(server) == (
        "workspace 1: removed 1 leads, 1 clients (delete), 0 events, 0 webhook deliveries\n"
    )
    emails = {n["email"] for n in gql.data(LEADS)["leads"]["nodes"]}
    assert emails == {"won@example.com", "new@example.com"}
    found = gql.data(
        "query ($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        {"ids": [ids["gone"], ids["lately"], ids["active"]]},
    )["nodes"]
    assert found == [None, {"id": ids["lately"]}, {"id": ids["active"]}]
    # The deleted lead's events keep their shape, not its data.
    changes = [
        c
        for e in gql.data(EVENTS)["events"]["nodes"]
        if e["recordId"] == ids["old"]
        for c in e["changes"]
    ]
    assert changes and all(
        c["from"] is None and c["to"] is None
        for c in changes
        if c["field"] not in ("status", "score")
    )
    assert "old@example.com" not in str(gql.data(EVENTS))
    # Nothing is left to remove.
    assert retention_cli(server).startswith("workspace 1: removed 0 leads, 0 clients")

    gql.data(UPDATE, {"input": {"eventsAfterDays": 100}})
    assert gql.data(PREVIEW)["retentionPreview"]["events"] > 0
    out = retention_cli(server)
    assert gql.data(PREVIEW)["retentionPreview"]["events"] == 0
    assert gql.data(EVENTS)["events"]["nodes"] == []
    assert "removed 0 leads, 0 clients (delete), " in out


def test_anonymizing_keeps_the_record_and_the_counts(
    gql: GraphQLClient, server: LiveServer
) -> None:
    ids = _plant(gql, server)
    gql.data(
        'mutation ($id: ID!) { updateLead(id: $id, input: {lastName: "Old", phone: '
        '"+1 415 555 0100", company: "Acme", city: "Austin", state: "TX", source: "ads", '
        'notes: "met at the fair", metadata: {likes: "tea"}}) { userErrors { code } } }',
        {"id": ids["old"]},
    )
    age(server, Lead, ids["old"], 100, "updated_at")
    before = gql.data(LEADS)["leads"]
    gql.data(
        UPDATE,
        {
            "input": {
                "unconvertedLeadsAfterDays": 30,
                "archivedClientsAfterDays": 30,
                "action": "ANONYMIZE",
            }
        },
    )
    assert gql.data(PREVIEW)["retentionPreview"] == {"leads": 1, "clients": 1, "events": 0}
    assert retention_cli(server).startswith("workspace 1: removed 1 leads, 1 clients (anonymize)")
    after = gql.data(LEADS)["leads"]
    assert after["aggregate"] == before["aggregate"]
    old = next(n for n in after["nodes"] if n["id"] == ids["old"])
    pk = from_global_id(ids["old"])[1]
    assert old == {
        "id": ids["old"],
        "email": f"anonymized-{pk}@anonymized.invalid",
        "firstName": None,
        "lastName": None,
        "phone": None,
        "company": None,
        "city": None,
        "state": "TX",
        "source": "ads",
        "notes": None,
        "status": "CONTACTED",
        "score": 40,
        "metadata": {},
    }
    # Search no longer finds the person; the events of the lead keep no personal value.
    found = gql.data('{ leads(filter: {search: "olga"}) { totalCount } }')
    assert found["leads"]["totalCount"] == 0
    log = str(gql.data(EVENTS))
    for personal in (
        "old@example.com",
        "Olga",
        "Acme",
        "tea",
        "fair",
        "Austin",
        "gone@example.org",
    ):
        assert personal not in log
    assert "CONTACTED" in log  # status values stay
    client = gql.data(
        "query ($id: ID!) { client(id: $id) { email firstName status archivedAt } }",
        {"id": ids["gone"]},
    )["client"]
    assert client["email"].endswith("@anonymized.invalid") and client["firstName"] == ""
    assert client["status"] == "ARCHIVED" and client["archivedAt"] is not None
    # Already anonymised records are not counted again.
    assert gql.data(PREVIEW)["retentionPreview"] == {"leads": 0, "clients": 0, "events": 0}


# ------------------------------------------------------------------ the schedule


async def _prepare(url: str, days_ago: int) -> None:
    """An old unconverted lead and a policy, straight into a fresh database."""
    db = Database(url, Settings(database_url=url, _env_file=None))  # type: ignore[call-arg]
    leads: Any = Lead.__table__  # type: ignore[attr-defined]
    workspaces: Any = Workspace.__table__  # type: ignore[attr-defined]
    try:
        async with db.write() as conn:
            when = utcnow() - timedelta(days=days_ago)
            keys = dict.fromkeys(("name_key", "city_key", "state_key", "source_key"), "")
            await conn.execute(
                leads.insert().values(
                    workspace_id=DEFAULT_WORKSPACE_ID,
                    email="stale@example.com",
                    email_key="stale@example.com",
                    status="NEW",
                    score=0,
                    meta={},
                    external_ids=[],
                    created_at=when,
                    updated_at=when,
                    phone_key="",
                    company_key="",
                    search_key="stale@example.com",
                    **keys,
                )
            )
            await conn.execute(
                update(workspaces)
                .where(workspaces.c.id == DEFAULT_WORKSPACE_ID)
                .values(retention_leads_days=30)
            )
    finally:
        await db.dispose()


async def _due_at(url: str) -> Any:
    db = Database(url, Settings(database_url=url, _env_file=None))  # type: ignore[call-arg]
    workspaces: Any = Workspace.__table__  # type: ignore[attr-defined]
    try:
        async with db.read() as conn:
            stmt = select(workspaces.c.retention_due_at).where(
                workspaces.c.id == DEFAULT_WORKSPACE_ID
            )
            return (await conn.execute(stmt)).scalar_one()
    finally:
        await db.dispose()


def _runs(log: str) -> int:
    return log.count("retention: workspace 1:")


def test_serve_applies_the_policy_once_per_interval_across_processes(tmp_path: Path) -> None:
    settings = {
        "WEBHOOK_SENDER": "false",
        "IMPORT_RUNNER": "false",
        "FOLLOW_UP_REMINDERS": "false",
        "LOG_LEVEL": "info",
    }
    with scratch_database(tmp_path) as url:
        create_owner_key(url)  # migrates
        asyncio.run(_prepare(url, 100))
        first = ServerProcess(url, tmp_path / "a.log", **settings)
        second = ServerProcess(url, tmp_path / "b.log", "worker", **settings)
        first.start()
        second.start()
        try:
            first.wait_for_readyz(200, timeout=90)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _runs(first.log() + second.log()) == 0:
                time.sleep(0.1)
            time.sleep(1)  # the other process's round has looked by now, too
            logs = first.log() + second.log()
            assert _runs(logs) == 1, logs
            assert "1 leads, 0 clients, 0 events, 0 deliveries deleted" in logs
            due = asyncio.run(_due_at(url))
            assert due > utcnow() + timedelta(minutes=59)
            # Restarted, a process waits for the next run instead of repeating this one.
            first.stop()
            first = ServerProcess(url, tmp_path / "c.log", **settings).start()
            first.wait_for_readyz(200, timeout=90)
            time.sleep(1)
            assert _runs(first.log()) == 0
        finally:
            first.stop()
            second.stop()
