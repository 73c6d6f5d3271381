"""Several server processes on one database (the suite's engine): they migrate it together on
start, and concurrent writes through both stay correct — a lead converts once, an email makes
one client — without any request failing on a lock, a deadlock or a serialization error."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory

from db import migrate
from tests.databases import query, scratch_database
from tests.processes import ServerProcess, create_owner_key

CREATE_LEAD = """
mutation ($input: CreateLeadInput!) {
  createLead(input: $input) { lead { id } userErrors { code } }
}
"""
CREATE_CLIENT = """
mutation ($email: String!) {
  createClient(input: {email: $email, firstName: "Ann", lastName: "Lee"}) {
    client { id } userErrors { code }
  }
}
"""
CONVERT = """
mutation ($id: ID!, $clientId: ID) {
  convertLead(id: $id, input: {clientId: $clientId}) {
    lead { status convertedClient { id } } client { id } userErrors { code }
  }
}
"""
UPDATE_LEAD = """
mutation ($id: ID!, $score: Int!) {
  updateLead(id: $id, input: {score: $score}) { lead { id } userErrors { code } }
}
"""
UPDATE_CLIENT = """
mutation ($id: ID!, $notes: String!) {
  updateClient(id: $id, input: {notes: $notes}) { client { id } userErrors { code } }
}
"""
LEAD = "query ($id: ID!) { lead(id: $id) { status score convertedClient { id } } }"
CLIENTS_WITH_EMAIL = "query ($email: String!) { clients(filter: {email: $email}) { totalCount } }"


@dataclass
class Instances:
    database_url: str
    servers: list[ServerProcess]
    clients: list[httpx.Client]  # one per server, shared by the threads of a test
    key: str

    def post(self, server: int, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """One request to one instance; it must succeed without a top-level error."""
        response = self.clients[server].post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.key}"},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    def all_at_once(self, jobs: list[tuple[int, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Sends every (instance, query, variables) at the same moment, one thread each."""
        barrier = threading.Barrier(len(jobs))

        def send(job: tuple[int, str, dict[str, Any]]) -> dict[str, Any]:
            barrier.wait(timeout=30)
            return self.post(*job)

        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            return list(pool.map(send, jobs))


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instances]:
    directory = tmp_path_factory.mktemp("instances")
    with scratch_database(directory) as url:
        servers = [ServerProcess(url, directory / f"instance{n}.log") for n in (1, 2)]
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        try:
            # Started together on an empty database: both run the migrations on start.
            for server in servers:
                server.start()
            for server in servers:
                server.wait_for_readyz(200, timeout=60)
            with (
                httpx.Client(base_url=servers[0].url, timeout=60, limits=limits) as first,
                httpx.Client(base_url=servers[1].url, timeout=60, limits=limits) as second,
            ):
                yield Instances(url, servers, [first, second], create_owner_key(url))
        finally:
            for server in servers:
                server.stop()


@pytest.fixture(autouse=True)
def no_errors_logged(instances: Instances) -> Iterator[None]:
    """Whatever a test did, neither instance logged an error (a masked one included)."""
    before = [len(s.log()) for s in instances.servers]
    yield
    for server, start in zip(instances.servers, before, strict=True):
        added = server.log()[start:]
        assert "ERROR" not in added and "Traceback" not in added, added


def unique_email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}@example.com"


def create_leads(instances: Instances, count: int) -> list[str]:
    ids = []
    for n in range(count):
        lead_input = {"email": unique_email(f"lead{n}"), "firstName": "Lee", "lastName": f"N{n}"}
        payload = instances.post(0, CREATE_LEAD, {"input": lead_input})["createLead"]
        assert payload["userErrors"] == []
        ids.append(payload["lead"]["id"])
    return ids


def code(payload: dict[str, Any]) -> str:
    return str(payload["userErrors"][0]["code"]) if payload["userErrors"] else "OK"


def test_both_instances_migrated_the_empty_database_once(instances: Instances) -> None:
    head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()

    assert query(instances.database_url, "SELECT version_num FROM alembic_version") == [(head,)]
    assert query(instances.database_url, "SELECT id, name FROM workspaces") == [(1, "Default")]
    assert [s.readyz() for s in instances.servers] == [200, 200]


def test_concurrent_converts_of_one_lead_on_two_instances_convert_it_once(
    instances: Instances,
) -> None:
    leads = create_leads(instances, 12)

    jobs = [(server, CONVERT, {"id": lead}) for lead in leads for server in (0, 1)]
    results = [r["convertLead"] for r in instances.all_at_once(jobs)]

    for n, lead in enumerate(leads):
        pair = results[2 * n : 2 * n + 2]
        assert sorted(code(p) for p in pair) == ["ALREADY_CONVERTED", "OK"], pair
        [won] = [p for p in pair if code(p) == "OK"]
        state = instances.post(1, LEAD, {"id": lead})["lead"]
        assert state == {
            "status": "WON",
            "score": 0,
            "convertedClient": {"id": won["client"]["id"]},
        }
    emails = query(instances.database_url, "SELECT email FROM clients")
    assert len(emails) == len({e for (e,) in emails})  # one client per converted lead


def test_concurrent_creates_of_one_email_on_two_instances_create_one_client(
    instances: Instances,
) -> None:
    emails = [unique_email(f"client{n}") for n in range(6)]
    # Two requests per instance per email, in differing case: the email is unique ignoring case.
    spellings = [str.lower, str.upper, str.title, str.lower]

    jobs = [
        (n % 2, CREATE_CLIENT, {"email": spell(email)})
        for email in emails
        for n, spell in enumerate(spellings)
    ]
    results = [r["createClient"] for r in instances.all_at_once(jobs)]

    for n, email in enumerate(emails):
        group = results[4 * n : 4 * n + 4]
        assert sorted(code(p) for p in group) == ["OK", "TAKEN", "TAKEN", "TAKEN"], group
        counted = instances.post(n % 2, CLIENTS_WITH_EMAIL, {"email": email})
        assert counted == {"clients": {"totalCount": 1}}


def test_crossing_writes_on_two_instances_all_succeed(instances: Instances) -> None:
    """Conversions into shared clients, while the same leads and clients are edited through
    the other instance: row locks queue these; none may fail on a deadlock or a serialization
    error."""
    clients = [
        instances.post(0, CREATE_CLIENT, {"email": unique_email(f"shared{n}")})["createClient"][
            "client"
        ]["id"]
        for n in range(3)
    ]
    leads = create_leads(instances, 12)

    jobs: list[tuple[int, str, dict[str, Any]]] = []
    for n, lead in enumerate(leads):
        client = clients[n % 3]
        jobs.append((n % 2, CONVERT, {"id": lead, "clientId": client}))
        jobs.append(((n + 1) % 2, UPDATE_LEAD, {"id": lead, "score": 50 + n}))
        jobs.append(((n + 1) % 2, UPDATE_CLIENT, {"id": client, "notes": f"edit {n}"}))
    results = instances.all_at_once(jobs)

    assert [p["userErrors"] for r in results for p in r.values()] == [[]] * len(jobs)
    for n, lead in enumerate(leads):
        assert instances.post(n % 2, LEAD, {"id": lead})["lead"] == {
            "status": "WON",
            "score": 50 + n,
            "convertedClient": {"id": clients[n % 3]},
        }
