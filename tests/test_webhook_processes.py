"""Webhook senders as real processes on one database (the suite's engine): ``server.py
worker`` runs the sender alone; a sender killed with SIGKILL in the middle of a request loses
nothing (another one sends the delivery again once the lease has run out); two senders share
the work and send each delivery once; and with the default settings, URLs that are not https
or that reach a private address are refused, when an endpoint is saved and again when a
request is about to be sent."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import pytest

from db.engine import Database
from db.models import DEFAULT_WORKSPACE_ID
from db.repositories import EndpointRepository
from db.settings import Settings
from resolvers.webhooks.sending import new_secret
from tests.conftest import GraphQLClient
from tests.databases import scratch_database
from tests.processes import ServerProcess, create_owner_key
from tests.receivers import Received, Receiver, wait_until

# Quick retries and polls; the lease outlasts the timeout, as the settings require.
FAST = {
    "WEBHOOK_POLL_INTERVAL_SECONDS": "0.05",
    "WEBHOOK_RETRY_BASE_SECONDS": "0.05",
    "WEBHOOK_RETRY_MAX_DELAY_SECONDS": "0.2",
    "WEBHOOK_TIMEOUT_SECONDS": "3",
    "WEBHOOK_LEASE_SECONDS": "4",
}
PRIVATE = {**FAST, "WEBHOOK_ALLOW_PRIVATE_URLS": "true"}

CREATE_ENDPOINT = """
mutation ($url: String!) {
  createWebhookEndpoint(input: {url: $url}) {
    endpoint { id } secret userErrors { field message code }
  }
}
"""
DELETE_ENDPOINT = "mutation ($id: ID!) { deleteWebhookEndpoint(id: $id) { deletedEndpointId } }"
DELIVERIES = """
query ($id: ID!) {
  webhookEndpoint(id: $id) {
    deliveries(first: 100) { nodes { id status attempts { responseStatus error } } }
  }
}
"""
CREATE_LEAD = """
mutation ($email: String!) { createLead(input: {email: $email}) { lead { id } } }
"""


@dataclass
class Api:
    """A server process's GraphQL API, with an OWNER key."""

    server: ServerProcess
    key: str
    database_url: str
    directory: Path

    @cached_property
    def gql(self) -> GraphQLClient:
        return GraphQLClient(httpx.Client(base_url=self.server.url, timeout=30), self.key)

    def post(self, query: str, variables: dict[str, Any]) -> Any:
        return self.gql.data(query, variables)

    def endpoint(self, url: str) -> tuple[str, str]:
        created = self.post(CREATE_ENDPOINT, {"url": url})["createWebhookEndpoint"]
        assert created["userErrors"] == [], created["userErrors"]
        return created["endpoint"]["id"], created["secret"]

    def leads(self, count: int, label: str) -> None:
        for n in range(count):
            self.post(CREATE_LEAD, {"email": f"{label}{n}@example.com"})

    def deliveries(self, endpoint_id: str) -> list[dict[str, Any]]:
        found = self.post(DELIVERIES, {"id": endpoint_id})["webhookEndpoint"]
        return list(found["deliveries"]["nodes"])

    def worker(self, name: str, *, private: bool = True) -> ServerProcess:
        """A ``server.py worker`` on the same database, started and running; ``private``:
        with WEBHOOK_ALLOW_PRIVATE_URLS=true."""
        worker = ServerProcess(
            self.database_url,
            self.directory / f"{name}.log",
            "worker",
            **{**(PRIVATE if private else FAST), "LOG_LEVEL": "info"},
        ).start()
        worker.wait_for_log("webhook sender running")
        return worker


def serving(directory: Path, **settings: str) -> Iterator[Api]:
    """A ``serve`` process on a scratch database of the suite's engine."""
    with scratch_database(directory) as url:
        key = create_owner_key(url)
        server = ServerProcess(url, directory / "serve.log", **settings).start()
        try:
            server.wait_for_readyz(200, timeout=60)
            api = Api(server, key, url, directory)
            yield api
            api.gql.http.close()
        finally:
            server.stop()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API, sending nothing itself (WEBHOOK_SENDER=false): the workers send."""
    yield from serving(tmp_path_factory.mktemp("senders"), WEBHOOK_SENDER="false", **PRIVATE)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def test_a_sender_killed_mid_request_loses_nothing(api: Api, receiver: Receiver) -> None:
    arrived, release = threading.Event(), threading.Event()

    def respond(request: Received) -> int:
        if not arrived.is_set():  # the first request: held open until the sender is killed
            arrived.set()
            release.wait(30)
        return 200

    receiver.respond = respond
    endpoint_id, secret = api.endpoint(receiver.url)
    doomed = api.worker("doomed")
    api.leads(1, "killed")
    assert arrived.wait(15), doomed.log()

    doomed.kill()  # SIGKILL, while its request waits for an answer
    doomed.stop()  # (closes its log)
    release.set()
    [delivery] = api.deliveries(endpoint_id)
    assert (delivery["status"], delivery["attempts"]) == ("PENDING", [])  # nothing recorded
    survivor = api.worker("survivor")
    try:
        first, second = receiver.wait_for(2, timeout=20)

        assert second.webhook_id == first.webhook_id == delivery["id"]
        assert second.verified(secret) == first.verified(secret)
        assert second.at - first.at >= 3  # not before the killed sender's 4 s lease ran out
        [after] = wait_until(
            lambda: [d for d in api.deliveries(endpoint_id) if d["status"] != "PENDING"]
        )
        assert after["status"] == "SUCCEEDED"
        assert after["attempts"] == [{"responseStatus": 200, "error": None}]
    finally:
        survivor.stop()
    assert survivor.process is not None and survivor.process.returncode == 0
    assert "webhook sender stopped" in survivor.log()
    assert "Traceback" not in survivor.log() + doomed.log()
    api.post(DELETE_ENDPOINT, {"id": endpoint_id})


def worker_logs(workers: list[ServerProcess]) -> str:
    return "\n".join(worker.log()[-3000:] for worker in workers)


def test_two_senders_share_the_deliveries_and_send_each_once(api: Api, receiver: Receiver) -> None:
    endpoint_id, secret = api.endpoint(receiver.url)
    workers = [api.worker(f"sender{n}") for n in (1, 2)]
    try:
        api.leads(40, "shared")

        requests = receiver.wait_for(40, timeout=30)
        time.sleep(0.5)  # a duplicate would have come by now

        assert len(receiver.requests) == 40
        assert len({r.webhook_id for r in requests}) == 40
        for request in requests:
            request.verified(secret)
        done = wait_until(
            lambda: all(d["status"] == "SUCCEEDED" for d in api.deliveries(endpoint_id))
        )
        assert done
        again = [d for d in api.deliveries(endpoint_id) if len(d["attempts"]) != 1]
        assert not again, (again, worker_logs(workers))
    finally:
        for worker in workers:
            worker.stop()
    for worker in workers:
        assert "Traceback" not in worker.log(), worker.log()
    api.post(DELETE_ENDPOINT, {"id": endpoint_id})


# ---------------------------------------------------------------- SSRF, with the defaults


@pytest.fixture(scope="module")
def public_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API with the default URL rules. It sends nothing itself: no request may leave for
    the public address one test saves; the test that sends starts a worker of its own."""
    yield from serving(tmp_path_factory.mktemp("public-only"), WEBHOOK_SENDER="false", **FAST)


def refusal(message: str) -> list[dict[str, Any]]:
    return [{"field": ["input", "url"], "message": message, "code": "INVALID"}]


HINT = "WEBHOOK_ALLOW_PRIVATE_URLS=true allows it on a private network."
PUBLIC_ONLY = "webhooks go to public addresses only. " + HINT


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://example.com/hook",
            f"Use an https:// URL: webhooks are not sent over plain HTTP. {HINT}",
        ),
        ("https://127.0.0.1/hook", f"127.0.0.1 is a loopback address: {PUBLIC_ONLY}"),
        (
            "https://localhost:8443/hook",
            f"localhost resolves to 127.0.0.1, which is a loopback address: {PUBLIC_ONLY}",
        ),
        ("https://[::1]/hook", f"::1 is a loopback address: {PUBLIC_ONLY}"),
        ("https://[::ffff:10.0.0.1]/", f"::ffff:10.0.0.1 is a private address: {PUBLIC_ONLY}"),
        ("https://10.1.2.3/hook", f"10.1.2.3 is a private address: {PUBLIC_ONLY}"),
        ("https://192.168.1.10/hook", f"192.168.1.10 is a private address: {PUBLIC_ONLY}"),
        ("https://172.16.0.1/hook", f"172.16.0.1 is a private address: {PUBLIC_ONLY}"),
        (
            "https://169.254.169.254/latest/meta-data",
            f"169.254.169.254 is a cloud metadata address: {PUBLIC_ONLY}",
        ),
        ("https://169.254.1.1/", f"169.254.1.1 is a link-local address: {PUBLIC_ONLY}"),
        (
            "https://100.64.0.1/",
            f"100.64.0.1 is a shared (carrier-grade NAT) address: {PUBLIC_ONLY}",
        ),
        ("https://0.0.0.0/", f"0.0.0.0 is an unspecified address: {PUBLIC_ONLY}"),
        ("https://[2002:7f00:1::]/", f"2002:7f00:1:: is a loopback address: {PUBLIC_ONLY}"),
        ("https://224.0.0.1/", f"224.0.0.1 is a multicast address: {PUBLIC_ONLY}"),
    ],
)
def test_urls_that_are_not_https_or_not_public_are_refused_by_default(
    public_only: Api, url: str, message: str
) -> None:
    created = public_only.post(CREATE_ENDPOINT, {"url": url})["createWebhookEndpoint"]

    assert created == {"endpoint": None, "secret": None, "userErrors": refusal(message)}


def test_a_public_https_url_is_accepted_by_default(public_only: Api) -> None:
    # Saved, and deleted at once: no event is written meanwhile, so nothing is sent to it.
    endpoint_id, _ = public_only.endpoint("https://93.184.216.34/hook")
    public_only.post(DELETE_ENDPOINT, {"id": endpoint_id})


def test_a_url_is_checked_again_before_each_request(public_only: Api, receiver: Receiver) -> None:
    """The host of a saved endpoint may resolve elsewhere by the time an event is sent (DNS
    changes; here the endpoints are written straight into the database, as if the check
    had passed): the sender refuses it then, and the receiver hears nothing."""
    urls = [f"https://localhost:{receiver.port}/hook", receiver.url]
    ids = asyncio.run(_insert_endpoints(public_only.database_url, urls))
    sender = public_only.worker("checker", private=False)

    def failed() -> list[dict[str, Any]] | None:
        found = [public_only.deliveries(i) for i in ids]
        return found if all(d and d[0]["attempts"] for d in found) else None

    try:
        public_only.leads(1, "checked")
        resolved, plain = (d[0]["attempts"][0] for d in wait_until(failed))
    finally:
        sender.stop()
    assert resolved == {
        "responseStatus": None,
        "error": "refused: localhost resolves to 127.0.0.1, which is a loopback address: "
        + PUBLIC_ONLY,
    }
    assert plain == {
        "responseStatus": None,
        "error": "refused: webhooks are not sent over plain HTTP (use https://).",
    }
    assert receiver.requests == []
    for endpoint_id in ids:
        public_only.post(DELETE_ENDPOINT, {"id": endpoint_id})


async def _insert_endpoints(database_url: str, urls: list[str]) -> list[str]:
    from resolvers.ids import to_global_id

    db = Database(database_url, Settings(_env_file=None))  # type: ignore[call-arg]
    try:
        async with db.write() as conn:
            repo = EndpointRepository(conn, DEFAULT_WORKSPACE_ID)
            rows = [
                await repo.insert(
                    {
                        "url": url,
                        "event_types": [],
                        "status": "ACTIVE",
                        "secret": new_secret(),
                        "fanned_out_seq": 0,
                    }
                )
                for url in urls
            ]
    finally:
        await db.dispose()
    return [to_global_id("WebhookEndpoint", row.id) for row in rows]
