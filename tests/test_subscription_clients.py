"""Subscriptions with the clients apps use: the graphql-ws npm client, and Apollo Client's
GraphQLWsLink on top of it. Each replays the log from a cursor, follows live events while the
test writes, and resumes on new connections from the last cursor it got: together its
connections see every event once, in order."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OWNER_KEY, ROOT, GraphQLClient, LiveServer
from tests.subscribers import ws_url
from tests.test_subscriptions import (  # noqa: F401 (a fixture)
    CREATE_KEY,
    REVOKE_KEY,
    following,
    log,
    new_lead,
    no_subscribers_left,
)

CLIENTS = {
    "graphql-ws": ROOT / "tests" / "ws_client",
    "apollo-client": ROOT / "tests" / "apollo_client",
}


def start(server: LiveServer, client: str, spec: dict[str, Any]) -> subprocess.Popen[str]:
    directory: Path = CLIENTS[client]
    node = shutil.which("node")
    assert node, "node is not on PATH: install Node.js (>= 20) to run the npm clients"
    assert (directory / "node_modules").is_dir(), (
        f"{client} is not installed: run `npm ci` in {directory} (or `make test`)"
    )
    return subprocess.Popen(
        [node, str(directory / "subscribe.mjs"), ws_url(server.url), json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"the client did not finish in 60 s:\n{err}") from None
    assert process.returncode == 0, f"the client exited {process.returncode}:\n{err}"
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.mark.parametrize("client", list(CLIENTS))
def test_an_npm_client_replays_follows_and_resumes_with_its_last_cursor(
    server: LiveServer, gql: GraphQLClient, client: str
) -> None:
    for n in range(5):
        new_lead(gql, f"before{n}@example.com")
    after = log(gql)[1]["cursor"]
    live = 25

    process = start(
        server, client, {"token": OWNER_KEY, "after": after, "count": 3 + live, "resumeEvery": 4}
    )
    # Written while the client replays, follows and reconnects.
    for n in range(live):
        new_lead(gql, f"live{n}@example.com")
        time.sleep(0.02)
    result = finish(process)

    assert result["error"] is None
    assert result["connections"] == 7  # 28 events, 4 a connection
    expected = [
        {"cursor": e["cursor"], "node": {k: e["node"][k] for k in ("id", "type", "recordId")}}
        for e in log(gql, after=after)
    ]
    assert result["edges"] == expected


def test_the_graphql_ws_client_hears_why_a_revoked_keys_subscription_ends(
    server: LiveServer, gql: GraphQLClient
) -> None:
    created = gql.data(CREATE_KEY, {"input": {"name": "live", "role": "VIEWER"}})["createApiKey"]
    new_lead(gql, "first@example.com")
    process = start(server, "graphql-ws", {"token": created["secret"], "count": 2})

    def revoke_once_following() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not following(server):
            time.sleep(0.02)
        new_lead(gql, "second@example.com")
        gql.data(REVOKE_KEY, {"id": created["apiKey"]["id"]})

    revoking = threading.Thread(target=revoke_once_following)
    revoking.start()
    result = finish(process)
    revoking.join()

    assert [e["node"]["type"] for e in result["edges"]] == ["LEAD_CREATED"]
    assert result["error"] == {
        "close": {
            "code": 4403,
            "reason": "Forbidden: the credential was revoked or expired; sign in again",
        }
    }
