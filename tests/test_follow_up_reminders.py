"""Follow-up reminders: real ``server.py serve`` processes on one database send the assignee
of each OPEN follow-up one email at its dueAt, through a real SMTP server on loopback: never
before it is due, never twice (two processes poll at once), never for a DONE or unassigned
one, and one that came due while no server ran goes out when the next one starts; a
``server.py worker`` sends them when ``serve`` has them off."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update

from db.engine import Database
from db.models import DEFAULT_WORKSPACE_ID, FollowUp
from db.repositories.auth import MembershipRepository, UserRepository
from db.settings import Settings
from db.types import utcnow
from resolvers.ids import to_global_id
from tests.conftest import GraphQLClient, Mailbox
from tests.databases import scratch_database
from tests.processes import ServerProcess, create_owner_key, free_port

SETTINGS = {
    "REMINDER_POLL_INTERVAL_SECONDS": "0.1",
    "WEBHOOK_SENDER": "false",
    "IMPORT_RUNNER": "false",
}
CREATE_LEAD = 'mutation { createLead(input: {email: "lead@example.com"}) { lead { id } } }'
CREATE = """
mutation ($input: CreateFollowUpInput!) {
  createFollowUp(input: $input) { followUp { id } userErrors { code } }
}
"""
UPDATE = """
mutation ($id: ID!, $input: UpdateFollowUpInput!) {
  updateFollowUp(id: $id, input: $input) { followUp { status } userErrors { code } }
}
"""
ANN = "ann@example.com"


async def _with_db(url: str, work: Any) -> Any:
    db = Database(url, Settings(database_url=url, _env_file=None))  # type: ignore[call-arg]
    try:
        async with db.write() as conn:
            return await work(conn)
    finally:
        await db.dispose()


def add_member(url: str, email: str) -> str:
    """A MEMBER of the default workspace, straight into the database: their user ID."""

    async def insert(conn: Any) -> int:
        now = utcnow()
        user = await UserRepository(conn).insert(
            email=email, name="Ann", created_at=now, email_verified_at=now
        )
        await MembershipRepository(conn, DEFAULT_WORKSPACE_ID).insert(user.id, "MEMBER", now)
        return int(user.id)

    return to_global_id("User", asyncio.run(_with_db(url, insert)))


def set_due(url: str, title: str, due: datetime) -> None:
    """Moves a follow-up's due time straight in the database (no server running)."""
    table: Any = FollowUp.__table__  # type: ignore[attr-defined]

    async def move(conn: Any) -> None:
        await conn.execute(update(table).where(table.c.title == title).values(due_at=due))

    asyncio.run(_with_db(url, move))


def subjects(mailbox: Mailbox) -> list[str]:
    return sorted(str(m["Subject"]) for m in mailbox.to(ANN))


def wait_for(mailbox: Mailbox, count: int, timeout: float = 30) -> float:
    """Waits until ``count`` reminders reached Ann; the time the last one arrived."""
    deadline = time.monotonic() + timeout
    while len(mailbox.to(ANN)) < count:
        assert time.monotonic() < deadline, subjects(mailbox)
        time.sleep(0.02)
    return time.time()


def test_reminders_go_out_once_at_due_time_from_two_processes_and_after_a_restart(
    tmp_path: Path, smtp: Mailbox
) -> None:
    smtp.clear()
    mail = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "SMTP_STARTTLS": "false"}
    with scratch_database(tmp_path) as url:
        key = create_owner_key(url)
        ann = add_member(url, ANN)
        first = ServerProcess(url, tmp_path / "first.log", **SETTINGS, **mail).start()
        second = ServerProcess(url, tmp_path / "second.log", **SETTINGS, **mail).start()
        third = ServerProcess(url, tmp_path / "third.log", **SETTINGS, **mail)
        try:
            first.wait_for_readyz(200, timeout=60)
            second.wait_for_readyz(200, timeout=60)
            with httpx.Client(base_url=first.url, timeout=30) as http:
                gql = GraphQLClient(http, key)
                lead_id = gql.data(CREATE_LEAD)["createLead"]["lead"]["id"]
                now = datetime.now(UTC)

                def create(title: str, due: datetime, **extra: Any) -> str:
                    given = {"subjectId": lead_id, "title": title, "dueAt": due.isoformat()}
                    payload = gql.data(CREATE, {"input": {**given, **extra}})["createFollowUp"]
                    assert payload["userErrors"] == []
                    follow_up_id: str = payload["followUp"]["id"]
                    return follow_up_id

                create("overdue", now - timedelta(hours=1), assigneeId=ann)
                soon_due = now + timedelta(seconds=3)
                create("soon", soon_due, assigneeId=ann)
                create("later", now + timedelta(hours=1), assigneeId=ann)
                create("while down", now + timedelta(hours=2), assigneeId=ann)
                create("nobody's", now - timedelta(hours=1))
                done = create("done", now + timedelta(hours=1), assigneeId=ann)
                closed = {"status": "DONE", "dueAt": (now - timedelta(hours=1)).isoformat()}
                assert gql.data(UPDATE, {"id": done, "input": closed})["updateFollowUp"] == {
                    "followUp": {"status": "DONE"},
                    "userErrors": [],
                }

                assert subjects(smtp) in ([], ["Follow-up due: overdue"])
                wait_for(smtp, 1)
                assert subjects(smtp) == ["Follow-up due: overdue"]
                arrived = wait_for(smtp, 2)
                time.sleep(1)  # ten more rounds of each process: nothing more goes out

            assert arrived >= soon_due.timestamp()
            assert subjects(smtp) == ["Follow-up due: overdue", "Follow-up due: soon"]
            body = next(m for m in smtp.to(ANN) if m["Subject"] == "Follow-up due: soon")
            assert lead_id in body.get_content()

            first.stop()
            second.stop()
            set_due(url, "while down", datetime.now(UTC) - timedelta(minutes=5))
            third.start()
            third.wait_for_readyz(200, timeout=60)
            wait_for(smtp, 3)
            time.sleep(1)
            assert subjects(smtp) == [
                "Follow-up due: overdue",
                "Follow-up due: soon",
                "Follow-up due: while down",
            ]
        finally:
            for process in (first, second, third):
                process.stop()


def test_a_reminder_the_mail_server_refused_goes_out_later(tmp_path: Path, smtp: Mailbox) -> None:
    smtp.clear()
    nowhere = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(free_port()), "SMTP_STARTTLS": "false"}
    mail = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "SMTP_STARTTLS": "false"}
    with scratch_database(tmp_path) as url:
        key = create_owner_key(url)
        ann = add_member(url, ANN)
        first = ServerProcess(url, tmp_path / "first.log", **SETTINGS, **nowhere).start()
        second = ServerProcess(url, tmp_path / "second.log", **SETTINGS, **mail)
        try:
            first.wait_for_readyz(200, timeout=60)
            with httpx.Client(base_url=first.url, timeout=30) as http:
                gql = GraphQLClient(http, key)
                lead_id = gql.data(CREATE_LEAD)["createLead"]["lead"]["id"]
                due = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
                given = {"subjectId": lead_id, "title": "refused", "dueAt": due, "assigneeId": ann}
                payload = gql.data(CREATE, {"input": given})["createFollowUp"]
                assert payload["userErrors"] == []
                first.wait_for_log("follow-up reminders: not sent for now")
            first.stop()

            second.start()
            second.wait_for_readyz(200, timeout=60)
            wait_for(smtp, 1)
            time.sleep(0.5)
            assert subjects(smtp) == ["Follow-up due: refused"]
        finally:
            first.stop()
            second.stop()


def test_a_worker_process_sends_reminders_while_serve_has_them_off(
    tmp_path: Path, smtp: Mailbox
) -> None:
    """``server.py worker`` runs the reminders too: with FOLLOW_UP_REMINDERS=false on the
    serving process, the worker alone sends them (once); a worker with them off sends none."""
    smtp.clear()
    mail = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "SMTP_STARTTLS": "false"}
    off = {**SETTINGS, "FOLLOW_UP_REMINDERS": "false"}
    worker_settings = {**SETTINGS, **mail, "LOG_LEVEL": "info"}
    with scratch_database(tmp_path) as url:
        key = create_owner_key(url)
        ann = add_member(url, ANN)
        server = ServerProcess(url, tmp_path / "serve.log", **off, **mail).start()
        idle = ServerProcess(
            url, tmp_path / "idle.log", "worker", **worker_settings, FOLLOW_UP_REMINDERS="false"
        )
        worker = ServerProcess(url, tmp_path / "worker.log", "worker", **worker_settings)
        try:
            server.wait_for_readyz(200, timeout=60)
            idle.start().wait_for_log("follow-up reminders off", timeout=60)
            with httpx.Client(base_url=server.url, timeout=30) as http:
                gql = GraphQLClient(http, key)
                lead_id = gql.data(CREATE_LEAD)["createLead"]["lead"]["id"]
                due = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
                given = {"subjectId": lead_id, "title": "by the worker", "dueAt": due}
                payload = gql.data(CREATE, {"input": {**given, "assigneeId": ann}})
                assert payload["createFollowUp"]["userErrors"] == []

                time.sleep(1)  # ten rounds' time: neither `serve` nor the idle worker sends it
                assert subjects(smtp) == []

                worker.start().wait_for_log("follow-up reminders on", timeout=60)
                wait_for(smtp, 1)
                time.sleep(1)
                assert subjects(smtp) == ["Follow-up due: by the worker"]
                assert lead_id in smtp.to(ANN)[0].get_content()
            assert "follow-up reminders off" not in worker.log()
            assert f"reminder sent to {ANN}" in worker.log()
        finally:
            for process in (server, idle, worker):
                process.stop()
