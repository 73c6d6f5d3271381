"""EVENT_LOG, the change-event log's measurement knob: a server started with EVENT_LOG=false
appends no event for its writes (the bench's ``nolog`` side); with it on, as by default, every
write does. Two server processes on one database, the knob the only difference."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GraphQLClient
from tests.databases import scratch_database
from tests.processes import ServerProcess, create_owner_key

CREATE_LEAD = """
mutation ($input: CreateLeadInput!) {
  createLead(input: $input) { lead { id } userErrors { field code } }
}
"""
LOGGED = """
query ($id: ID!) {
  lead(id: $id) { history { totalCount nodes { type recordId } } }
  events(filter: {recordId: $id}) { totalCount }
}
"""


@dataclass
class Servers:
    on: ServerProcess
    off: ServerProcess
    key: str

    def data(self, server: ServerProcess, query: str, variables: dict[str, Any]) -> Any:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            return GraphQLClient(http, self.key).data(query, variables)

    def create_lead(self, server: ServerProcess, email: str) -> str:
        payload = self.data(server, CREATE_LEAD, {"input": {"email": email}})["createLead"]
        assert payload["userErrors"] == []
        return str(payload["lead"]["id"])


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    directory: Path = tmp_path_factory.mktemp("event_log")
    with scratch_database(directory) as url:
        key = create_owner_key(url)  # migrates the database first
        on = ServerProcess(url, directory / "on.log", EVENT_LOG="true", WEBHOOK_SENDER="false")
        off = ServerProcess(url, directory / "off.log", EVENT_LOG="false", WEBHOOK_SENDER="false")
        try:
            for server in (on, off):
                server.start()
            for server in (on, off):
                server.wait_for_readyz(200, timeout=60)
            yield Servers(on, off, key)
        finally:
            for server in (on, off):
                server.stop()


def test_with_the_event_log_off_a_create_lead_appends_no_event(servers: Servers) -> None:
    # Given a server with EVENT_LOG=false
    # When it creates a lead
    lead_id = servers.create_lead(servers.off, "off@example.com")

    # Then the log holds nothing for it, read by either server
    for reader in (servers.off, servers.on):
        assert servers.data(reader, LOGGED, {"id": lead_id}) == {
            "lead": {"history": {"totalCount": 0, "nodes": []}},
            "events": {"totalCount": 0},
        }


def test_with_the_event_log_on_a_create_lead_appends_its_event(servers: Servers) -> None:
    # Given a server with EVENT_LOG=true, on the same database
    # When it creates a lead
    lead_id = servers.create_lead(servers.on, "on@example.com")

    # Then the log holds its one event, read by either server
    for reader in (servers.on, servers.off):
        assert servers.data(reader, LOGGED, {"id": lead_id}) == {
            "lead": {
                "history": {
                    "totalCount": 1,
                    "nodes": [{"type": "LEAD_CREATED", "recordId": lead_id}],
                }
            },
            "events": {"totalCount": 1},
        }
