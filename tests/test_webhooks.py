"""Webhooks (issue 10, part 2), through the API and a real receiver on 127.0.0.1 (every URL
here is on 127.0.0.1: nothing may be sent elsewhere): endpoints
are managed by ADMINs; every event an endpoint takes is POSTed to it as Standard Webhooks
says, signed (verified here with ``standardwebhooks``, the receivers' library), at least once,
in order per record, retried with growing delays for the retry window (2 s in the suite, a
day by default), 410 Gone disables the endpoint. The suite's server runs the sender in its
own process, as ``server.py serve`` does, with WEBHOOK_ALLOW_PRIVATE_URLS=true."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from standardwebhooks.webhooks import WebhookVerificationError

from db.models import WebhookEndpoint
from db.types import utcnow
from resolvers.ids import to_global_id
from tests.conftest import WEBHOOK_RETRY_WINDOW_SECONDS, GraphQLClient, LiveServer
from tests.receivers import Received, Receiver, wait_until

USER_ERRORS = "userErrors { field message code }"
ENDPOINT = "id url description eventTypes status createdAt"
CREATE_ENDPOINT = f"""
mutation ($input: CreateWebhookEndpointInput!) {{
  createWebhookEndpoint(input: $input) {{ endpoint {{ {ENDPOINT} }} secret {USER_ERRORS} }}
}}
"""
UPDATE_ENDPOINT = f"""
mutation ($id: ID!, $input: UpdateWebhookEndpointInput!) {{
  updateWebhookEndpoint(id: $id, input: $input) {{ endpoint {{ {ENDPOINT} }} {USER_ERRORS} }}
}}
"""
DELETE_ENDPOINT = f"""
mutation ($id: ID!) {{ deleteWebhookEndpoint(id: $id) {{ deletedEndpointId {USER_ERRORS} }} }}
"""
ROTATE_SECRET = f"""
mutation ($id: ID!) {{
  rotateWebhookSecret(id: $id) {{ endpoint {{ id }} secret {USER_ERRORS} }}
}}
"""
RETRY_DELIVERY = f"""
mutation ($id: ID!) {{
  retryWebhookDelivery(id: $id) {{ delivery {{ id status nextAttemptAt }} {USER_ERRORS} }}
}}
"""
REPLAY = f"""
mutation ($endpointId: ID!, $after: String!) {{
  replayWebhookEvents(endpointId: $endpointId, after: $after) {{ queued {USER_ERRORS} }}
}}
"""
ENDPOINTS = f"{{ webhookEndpoints {{ {ENDPOINT} }} }}"
ONE_ENDPOINT = f"query ($id: ID!) {{ webhookEndpoint(id: $id) {{ {ENDPOINT} }} }}"
DELIVERY = """
  id status nextAttemptAt
  event { id type recordId }
  attempts { at responseStatus durationMs error }
"""
DELIVERIES = f"""
query ($id: ID!, $first: Int, $after: String, $filter: WebhookDeliveryFilter) {{
  webhookEndpoint(id: $id) {{
    status
    deliveries(first: $first, after: $after, filter: $filter) {{
      totalCount
      pageInfo {{ hasNextPage endCursor }}
      edges {{ cursor node {{ {DELIVERY} }} }}
    }}
  }}
}}
"""
NODE = "query ($id: ID!) { node(id: $id) { __typename id } }"
EVENTS = """
query ($after: String) {
  events(first: 100, after: $after) {
    edges { cursor node { id type occurredAt recordId requestId changes { field from to } } }
  }
}
"""
CREATE_LEAD = f"""
mutation ($input: CreateLeadInput!) {{
  createLead(input: $input) {{ lead {{ id }} {USER_ERRORS} }}
}}
"""
UPDATE_LEAD = f"""
mutation ($id: ID!, $input: UpdateLeadInput!) {{
  updateLead(id: $id, input: $input) {{ lead {{ id }} {USER_ERRORS} }}
}}
"""
DELETE_LEAD = f"mutation ($id: ID!) {{ deleteLead(id: $id) {{ deletedLeadId {USER_ERRORS} }} }}"
LEAD = """
query ($id: ID!) {
  lead(id: $id) {
    id email firstName lastName name phone company city state postalCode source notes
    status score metadata externalIds { system id } createdAt updatedAt convertedAt
  }
}
"""
CREATE_API_KEY = """
mutation ($role: Role!) { createApiKey(input: {name: "webhooks", role: $role}) { secret } }
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def mutate(gql: GraphQLClient, document: str, variables: dict[str, Any]) -> Any:
    """The payload of a mutation that must succeed without userErrors."""
    [payload] = gql.data(document, variables).values()
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload


def new_endpoint(gql: GraphQLClient, url: str, **values: Any) -> tuple[str, str]:
    """A new endpoint: (its ID, its secret)."""
    payload = mutate(gql, CREATE_ENDPOINT, {"input": {"url": url, **values}})
    return payload["endpoint"]["id"], payload["secret"]


def new_lead(gql: GraphQLClient, **values: Any) -> str:
    values.setdefault("email", f"lead{random.randrange(10**9)}@example.com")
    return str(mutate(gql, CREATE_LEAD, {"input": values})["lead"]["id"])


def update_lead(gql: GraphQLClient, lead_id: str, **values: Any) -> None:
    mutate(gql, UPDATE_LEAD, {"id": lead_id, "input": values})


def deliveries(gql: GraphQLClient, endpoint_id: str, **variables: Any) -> dict[str, Any]:
    found: dict[str, Any] = gql.data(DELIVERIES, {"id": endpoint_id, "first": 100, **variables})
    return found["webhookEndpoint"]


def delivery_nodes(gql: GraphQLClient, endpoint_id: str) -> list[dict[str, Any]]:
    """The endpoint's deliveries, oldest first."""
    edges = deliveries(gql, endpoint_id)["deliveries"]["edges"]
    return [edge["node"] for edge in reversed(edges)]


def settled(gql: GraphQLClient, endpoint_id: str, count: int) -> list[dict[str, Any]]:
    """The endpoint's deliveries, oldest first, once there are ``count`` and none is
    pending."""

    def check() -> list[dict[str, Any]] | None:
        nodes = delivery_nodes(gql, endpoint_id)
        done = len(nodes) == count and all(n["status"] != "PENDING" for n in nodes)
        return nodes if done else None

    result: list[dict[str, Any]] = wait_until(check, timeout=20)
    return result


def event_edges(gql: GraphQLClient) -> list[dict[str, Any]]:
    edges: list[dict[str, Any]] = gql.data(EVENTS)["events"]["edges"]
    return edges


def statuses_then(codes: list[int], then: int = 200) -> Any:
    """A receiver's answers: ``codes`` in turn, then ``then`` for good."""
    lock = threading.Lock()
    left = list(codes)

    def respond(_: Received) -> int:
        with lock:
            return left.pop(0) if left else then

    return respond


# ---------------------------------------------------------------- endpoints


def test_creating_an_endpoint_shows_its_secret_once(gql: GraphQLClient) -> None:
    payload = mutate(
        gql,
        CREATE_ENDPOINT,
        {
            "input": {
                "url": "http://127.0.0.1:9/leadgraph",
                "description": "  CRM sync  ",
                "eventTypes": ["LEAD_CREATED", "LEAD_UPDATED", "LEAD_CREATED"],
            }
        },
    )

    endpoint = payload["endpoint"]
    assert payload["secret"].startswith("whsec_") and len(payload["secret"]) > 40
    assert endpoint == {
        "id": endpoint["id"],
        "url": "http://127.0.0.1:9/leadgraph",
        "description": "CRM sync",
        "eventTypes": ["LEAD_CREATED", "LEAD_UPDATED"],
        "status": "ACTIVE",
        "createdAt": endpoint["createdAt"],
    }
    assert gql.data(ENDPOINTS) == {"webhookEndpoints": [endpoint]}
    assert gql.data(ONE_ENDPOINT, {"id": endpoint["id"]}) == {"webhookEndpoint": endpoint}
    assert gql.data(NODE, {"id": endpoint["id"]}) == {
        "node": {"__typename": "WebhookEndpoint", "id": endpoint["id"]}
    }
    # The secret is shown nowhere else: no field of the endpoint holds it.
    assert payload["secret"] not in str(gql.data(ENDPOINTS))


def test_an_endpoint_is_updated_paused_and_deleted(gql: GraphQLClient) -> None:
    endpoint_id, _ = new_endpoint(gql, "http://127.0.0.1:9/a", description="first")

    updated = mutate(
        gql,
        UPDATE_ENDPOINT,
        {
            "id": endpoint_id,
            "input": {
                "url": "http://127.0.0.1:9/b",
                "description": None,
                "eventTypes": ["CLIENT_CREATED"],
                "status": "PAUSED",
            },
        },
    )["endpoint"]
    assert updated | {"createdAt": None} == {
        "id": endpoint_id,
        "url": "http://127.0.0.1:9/b",
        "description": None,
        "eventTypes": ["CLIENT_CREATED"],
        "status": "PAUSED",
        "createdAt": None,
    }
    # Left out: unchanged; eventTypes null: every type again.
    again = mutate(gql, UPDATE_ENDPOINT, {"id": endpoint_id, "input": {"eventTypes": None}})
    assert again["endpoint"] == updated | {"eventTypes": []}

    deleted = mutate(gql, DELETE_ENDPOINT, {"id": endpoint_id})
    assert deleted == {"deletedEndpointId": endpoint_id, "userErrors": []}
    assert gql.data(ENDPOINTS) == {"webhookEndpoints": []}
    assert gql.data(ONE_ENDPOINT, {"id": endpoint_id}) == {"webhookEndpoint": None}


def test_what_an_endpoint_cannot_be_is_a_user_error(gql: GraphQLClient) -> None:
    endpoint_id, _ = new_endpoint(gql, "http://127.0.0.1:9/a")
    missing = to_global_id("WebhookEndpoint", 999)

    def errors(document: str, variables: dict[str, Any]) -> Any:
        [payload] = gql.data(document, variables).values()
        return payload["userErrors"]

    invalid = {
        "field": ["input", "url"],
        "message": "This is not a valid URL: use https://host/path.",
        "code": "INVALID",
    }
    assert errors(CREATE_ENDPOINT, {"input": {"url": "not a url"}}) == [invalid]
    assert errors(CREATE_ENDPOINT, {"input": {"url": "ftp://127.0.0.1/x"}}) == [invalid]
    assert errors(CREATE_ENDPOINT, {"input": {"url": "https://"}}) == [invalid]
    assert errors(CREATE_ENDPOINT, {"input": {"url": "http://127.0.0.1:9/" + "x" * 2048}}) == [
        {
            "field": ["input", "url"],
            "message": "String should have at most 2048 characters",
            "code": "INVALID",
        }
    ]
    assert errors(UPDATE_ENDPOINT, {"id": endpoint_id, "input": {"status": "DISABLED"}}) == [
        {
            "field": ["input", "status"],
            "message": "Set ACTIVE or PAUSED: only the server disables an endpoint.",
            "code": "INVALID",
        }
    ]
    assert errors(UPDATE_ENDPOINT, {"id": endpoint_id, "input": {"url": None}}) == [
        {"field": ["input", "url"], "message": "This field cannot be cleared.", "code": "REQUIRED"}
    ]
    not_found = {
        "field": ["id"],
        "message": "No webhook endpoint with this ID.",
        "code": "NOT_FOUND",
    }
    assert errors(UPDATE_ENDPOINT, {"id": missing, "input": {}}) == [not_found]
    assert errors(DELETE_ENDPOINT, {"id": missing}) == [not_found]
    assert errors(ROTATE_SECRET, {"id": missing}) == [not_found]
    assert errors(RETRY_DELIVERY, {"id": to_global_id("WebhookDelivery", 999)}) == [
        {"field": ["id"], "message": "No webhook delivery with this ID.", "code": "NOT_FOUND"}
    ]
    assert errors(REPLAY, {"endpointId": endpoint_id, "after": "nonsense"}) == [
        {
            "field": ["after"],
            "message": "This is not an event cursor (take one from events or history).",
            "code": "INVALID",
        }
    ]
    assert errors(DELETE_ENDPOINT, {"id": "bogus"}) == [
        {"field": ["id"], "message": "This is not a valid ID.", "code": "INVALID"}
    ]
    assert gql.data(ONE_ENDPOINT, {"id": endpoint_id})["webhookEndpoint"]["status"] == "ACTIVE"


@pytest.mark.parametrize("role", ["MEMBER", "VIEWER"])
def test_only_admins_see_or_manage_webhooks(gql: GraphQLClient, role: str) -> None:
    endpoint_id, _ = new_endpoint(gql, "http://127.0.0.1:9/a")
    caller = gql.as_(gql.data(CREATE_API_KEY, {"role": role})["createApiKey"]["secret"])
    message = f"This needs the ADMIN role in this workspace (you have {role})."

    for document, variables, field in [
        (ENDPOINTS, {}, "webhookEndpoints"),
        (CREATE_ENDPOINT, {"input": {"url": "http://127.0.0.1:9/b"}}, "createWebhookEndpoint"),
        (UPDATE_ENDPOINT, {"id": endpoint_id, "input": {}}, "updateWebhookEndpoint"),
        (DELETE_ENDPOINT, {"id": endpoint_id}, "deleteWebhookEndpoint"),
        (ROTATE_SECRET, {"id": endpoint_id}, "rotateWebhookSecret"),
        (REPLAY, {"endpointId": endpoint_id, "after": "x"}, "replayWebhookEvents"),
    ]:
        body = caller(document, variables)
        assert body["data"] is None
        assert [(e["path"], e["message"], e["extensions"]) for e in body["errors"]] == [
            ([field], message, {"code": "FORBIDDEN"})
        ]
    body = caller(ONE_ENDPOINT, {"id": endpoint_id})
    assert body["data"] == {"webhookEndpoint": None}
    assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    # node finds nothing for them; the endpoint is as it was.
    assert caller.data(NODE, {"id": endpoint_id}) == {"node": None}
    assert [e["url"] for e in gql.data(ENDPOINTS)["webhookEndpoints"]] == ["http://127.0.0.1:9/a"]


# ---------------------------------------------------------------- sending


def test_an_event_is_posted_signed_as_standard_webhooks_says(
    gql: GraphQLClient, receiver: Receiver
) -> None:
    endpoint_id, secret = new_endpoint(gql, receiver.url)

    lead_id = new_lead(gql, email="ada@example.com", firstName="Ada", score=7)

    [request] = receiver.wait_for(1)
    payload = request.verified(secret)  # standardwebhooks checks the signature and the time
    [edge] = event_edges(gql)
    lead = gql.data(LEAD, {"id": lead_id})["lead"]
    assert payload == {
        "type": "LEAD_CREATED",
        "timestamp": edge["node"]["occurredAt"],
        "data": {**edge["node"], "record": lead},
    }
    assert request.headers["content-type"] == "application/json"
    assert request.path == "/hook"
    [delivery] = settled(gql, endpoint_id, 1)
    assert request.webhook_id == delivery["id"]  # the receiver's idempotency key
    assert delivery["status"] == "SUCCEEDED" and delivery["nextAttemptAt"] is None
    event = {"id": edge["node"]["id"], "type": "LEAD_CREATED", "recordId": lead_id}
    assert delivery["event"] == event
    [attempt] = delivery["attempts"]
    assert (attempt["responseStatus"], attempt["error"]) == (200, None)
    assert attempt["durationMs"] >= 0
    assert gql.data(NODE, {"id": delivery["id"]}) == {
        "node": {"__typename": "WebhookDelivery", "id": delivery["id"]}
    }
    # Another secret does not verify it.
    with pytest.raises(WebhookVerificationError):
        request.verified("whsec_" + "QUJD" * 8)


def test_an_endpoint_gets_only_its_event_types_and_a_deleted_record_as_null(
    gql: GraphQLClient, receiver: Receiver
) -> None:
    _, secret = new_endpoint(gql, receiver.url, eventTypes=["LEAD_UPDATED", "LEAD_DELETED"])
    lead_id = new_lead(gql, email="gone@example.com")

    update_lead(gql, lead_id, score=50)
    mutate(gql, DELETE_LEAD, {"id": lead_id})

    requests = receiver.wait_for(2)
    assert [r.verified(secret)["type"] for r in requests] == ["LEAD_UPDATED", "LEAD_DELETED"]
    assert [r.payload["data"]["changes"][:1] for r in requests] == [
        [{"field": "score", "from": 0, "to": 50}],
        [{"field": "email", "from": "gone@example.com", "to": None}],
    ]
    # Sent with the record as it is when sent: once deleted, none.
    assert requests[1].payload["data"]["record"] is None


def test_a_failing_receiver_is_retried_with_growing_delays_until_it_succeeds(
    gql: GraphQLClient, receiver: Receiver
) -> None:
    receiver.respond = statuses_then([500, 503, 429])
    endpoint_id, secret = new_endpoint(gql, receiver.url)

    new_lead(gql)

    requests = receiver.wait_for(4)
    assert [r.status for r in requests] == [500, 503, 429, 200]
    assert len({r.webhook_id for r in requests}) == 1  # one delivery, four attempts
    for request in requests:
        request.verified(secret)  # each attempt signed afresh
    [delivery] = settled(gql, endpoint_id, 1)
    assert delivery["status"] == "SUCCEEDED"
    assert [a["responseStatus"] for a in delivery["attempts"]] == [500, 503, 429, 200]
    assert [a["at"] for a in delivery["attempts"]] == sorted(a["at"] for a in delivery["attempts"])
    # Jittered, but each delay about twice the one before (base 0.05 s, +-25 %).
    gaps = [b.at - a.at for a, b in itertools.pairwise(requests)]
    assert gaps[0] >= 0.03 and gaps[1] >= 0.07 and gaps[2] >= 0.14, gaps


def test_an_endpoint_that_answers_410_is_disabled_at_once(
    gql: GraphQLClient, receiver: Receiver
) -> None:
    receiver.respond = lambda _: 410
    endpoint_id, _ = new_endpoint(gql, receiver.url)

    new_lead(gql)

    [delivery] = settled(gql, endpoint_id, 1)
    assert delivery["status"] == "FAILED"
    assert [a["responseStatus"] for a in delivery["attempts"]] == [410]
    assert gql.data(ONE_ENDPOINT, {"id": endpoint_id})["webhookEndpoint"]["status"] == "DISABLED"
    # Later events are not sent to it.
    new_lead(gql)
    with pytest.raises(AssertionError):
        receiver.wait_for(2, timeout=0.5)
    assert len(delivery_nodes(gql, endpoint_id)) == 1


def test_an_endpoint_failing_for_the_whole_retry_window_is_disabled(
    gql: GraphQLClient, receiver: Receiver
) -> None:
    receiver.respond = lambda _: 500
    endpoint_id, _ = new_endpoint(gql, receiver.url)

    new_lead(gql)

    [delivery] = settled(gql, endpoint_id, 1)
    assert delivery["status"] == "FAILED" and delivery["nextAttemptAt"] is None
    codes = [a["responseStatus"] for a in delivery["attempts"]]
    assert len(codes) >= 4 and set(codes) == {500}, codes
    # The last retry was due within the window (and went out a poll or so after).
    span = receiver.requests[-1].at - receiver.requests[0].at
    assert span <= WEBHOOK_RETRY_WINDOW_SECONDS + 0.5
    assert gql.data(ONE_ENDPOINT, {"id": endpoint_id})["webhookEndpoint"]["status"] == "DISABLED"


def test_a_receiver_that_does_not_answer_is_an_attempt_with_an_error(
    gql: GraphQLClient, receiver: Receiver
) -> None:
    receiver.close()  # nothing listens on its port any more
    receiver.respond = lambda _: 200
    endpoint_id, _ = new_endpoint(gql, receiver.url)

    new_lead(gql)

    def attempted() -> Any:
        nodes = delivery_nodes(gql, endpoint_id)
        return nodes and nodes[0]["attempts"]

    attempt = wait_until(attempted)[0]
    assert attempt["responseStatus"] is None
    assert attempt["error"].startswith("connection failed:"), attempt["error"]


def test_a_records_events_go_in_order_while_another_records_go_on(
    gql: GraphQLClient, receiver: Receiver
) -> None:
    first_lead: list[str] = []
    failures = [500, 500]
    lock = threading.Lock()

    def respond(request: Received) -> int:
        # The first event of the first lead fails twice; every other request succeeds.
        with lock:
            if request.record_id == first_lead[0] and request.event_type == "LEAD_CREATED":
                return failures.pop(0) if failures else 200
        return 200

    receiver.respond = respond
    endpoint_id, _ = new_endpoint(gql, receiver.url)
    mutate(gql, UPDATE_ENDPOINT, {"id": endpoint_id, "input": {"status": "PAUSED"}})
    first_lead.append(new_lead(gql))
    update_lead(gql, first_lead[0], score=1)
    update_lead(gql, first_lead[0], score=2)
    other = new_lead(gql)

    # Resumed with all four events waiting: the other lead need not wait for the first.
    mutate(gql, UPDATE_ENDPOINT, {"id": endpoint_id, "input": {"status": "ACTIVE"}})

    requests = receiver.wait_for(6)
    mine = [r for r in requests if r.record_id == first_lead[0]]
    assert [(r.event_type, r.status) for r in mine] == [
        ("LEAD_CREATED", 500),
        ("LEAD_CREATED", 500),
        ("LEAD_CREATED", 200),
        ("LEAD_UPDATED", 200),
        ("LEAD_UPDATED", 200),
    ]
    assert [r.payload["data"]["changes"] for r in mine[3:]] == [
        [{"field": "score", "from": 0, "to": 1}],
        [{"field": "score", "from": 1, "to": 2}],
    ]
    [theirs] = [r for r in requests if r.record_id == other]
    assert theirs.at < mine[2].at  # not held back by the first lead's retries
    assert [d["status"] for d in settled(gql, endpoint_id, 4)] == ["SUCCEEDED"] * 4


def test_a_paused_endpoint_keeps_its_deliveries_and_sends_them_on_resume(
    gql: GraphQLClient, receiver: Receiver
) -> None:
    endpoint_id, _ = new_endpoint(gql, receiver.url)
    mutate(gql, UPDATE_ENDPOINT, {"id": endpoint_id, "input": {"status": "PAUSED"}})

    new_lead(gql)
    new_lead(gql)

    pending = wait_until(lambda: len(delivery_nodes(gql, endpoint_id)) == 2 or None)
    assert pending
    assert [d["status"] for d in delivery_nodes(gql, endpoint_id)] == ["PENDING", "PENDING"]
    with pytest.raises(AssertionError):
        receiver.wait_for(1, timeout=0.3)

    mutate(gql, UPDATE_ENDPOINT, {"id": endpoint_id, "input": {"status": "ACTIVE"}})

    assert len(receiver.wait_for(2)) == 2
    assert [d["status"] for d in settled(gql, endpoint_id, 2)] == ["SUCCEEDED"] * 2


def test_after_a_rotation_both_secrets_sign_for_24_hours(
    server: LiveServer, gql: GraphQLClient, receiver: Receiver
) -> None:
    endpoint_id, old = new_endpoint(gql, receiver.url)

    rotated = mutate(gql, ROTATE_SECRET, {"id": endpoint_id})
    new = rotated["secret"]
    new_lead(gql)

    assert rotated["endpoint"] == {"id": endpoint_id}
    assert new.startswith("whsec_") and new != old
    [request] = receiver.wait_for(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert request.verified(new) == request.verified(old)  # a receiver on either secret

    # 24 hours later (the rotation moved back in time): only the new secret signs.
    async def a_day_later() -> None:
        async with server.db.write() as conn:
            await conn.execute(
                update(WebhookEndpoint.__table__).values(  # type: ignore[attr-defined]
                    previous_secret_expires_at=utcnow() - timedelta(seconds=1)
                )
            )

    server.run(a_day_later())
    new_lead(gql)

    later = receiver.wait_for(2)[1]
    assert len(later.headers["webhook-signature"].split(" ")) == 1
    later.verified(new)
    with pytest.raises(WebhookVerificationError):
        later.verified(old)


def test_replay_sends_every_event_after_a_cursor_again(
    gql: GraphQLClient, receiver: Receiver
) -> None:
    endpoint_id, secret = new_endpoint(gql, receiver.url, eventTypes=["LEAD_CREATED"])
    leads = [new_lead(gql) for _ in range(3)]
    update_lead(gql, leads[2], score=3)  # an event the endpoint does not take
    first = receiver.wait_for(3)
    settled(gql, endpoint_id, 3)
    edges = event_edges(gql)

    replayed = mutate(gql, REPLAY, {"endpointId": endpoint_id, "after": edges[0]["cursor"]})

    assert replayed == {"queued": 2, "userErrors": []}
    again = receiver.wait_for(5)[3:]
    # In order per record; two records' deliveries may go out in either order.
    sent = {r.verified(secret)["data"]["recordId"]: r.payload["data"]["id"] for r in again}
    assert sent == {lead: e["node"]["id"] for lead, e in zip(leads[1:], edges[1:3], strict=True)}
    # New deliveries: new webhook-ids.
    assert not {r.webhook_id for r in again} & {r.webhook_id for r in first}
    assert len(settled(gql, endpoint_id, 5)) == 5
    # After the last event: nothing to replay.
    last = mutate(gql, REPLAY, {"endpointId": endpoint_id, "after": edges[-1]["cursor"]})
    assert last["queued"] == 0


def test_retry_makes_one_more_attempt_at_a_failed_delivery(
    gql: GraphQLClient, receiver: Receiver
) -> None:
    receiver.respond = lambda _: 500
    endpoint_id, _ = new_endpoint(gql, receiver.url)
    new_lead(gql)
    [failed] = settled(gql, endpoint_id, 1)
    tries = len(failed["attempts"])
    assert failed["status"] == "FAILED"
    # Failing for the whole window disabled the endpoint: fixed, it is turned on again.
    receiver.respond = lambda _: 200
    mutate(gql, UPDATE_ENDPOINT, {"id": endpoint_id, "input": {"status": "ACTIVE"}})

    retried = mutate(gql, RETRY_DELIVERY, {"id": failed["id"]})

    assert retried["delivery"]["id"] == failed["id"]
    assert retried["delivery"]["status"] == "PENDING"
    [request] = receiver.wait_for(1, where=lambda r: r.status == 200)
    assert request.webhook_id == failed["id"]
    [delivery] = settled(gql, endpoint_id, 1)
    assert delivery["status"] == "SUCCEEDED"
    assert [a["responseStatus"] for a in delivery["attempts"]] == [500] * tries + [200]


def test_a_failed_manual_retry_fails_the_delivery_again(
    gql: GraphQLClient, receiver: Receiver
) -> None:
    receiver.respond = statuses_then([410], then=500)
    endpoint_id, _ = new_endpoint(gql, receiver.url)
    new_lead(gql)
    [failed] = settled(gql, endpoint_id, 1)
    mutate(gql, UPDATE_ENDPOINT, {"id": endpoint_id, "input": {"status": "ACTIVE"}})

    mutate(gql, RETRY_DELIVERY, {"id": failed["id"]})

    receiver.wait_for(2)
    [delivery] = settled(gql, endpoint_id, 1)
    assert delivery["status"] == "FAILED"
    assert [a["responseStatus"] for a in delivery["attempts"]] == [410, 500]
    assert len(receiver.requests) == 2  # one more attempt, not another retry window


def test_deliveries_are_listed_newest_first_and_filtered_by_status(
    gql: GraphQLClient, receiver: Receiver
) -> None:
    receiver.respond = lambda r: 410 if r.payload["data"]["record"]["email"] == "no@x.io" else 200
    endpoint_id, _ = new_endpoint(gql, receiver.url)
    ok = [new_lead(gql) for _ in range(3)]
    settled(gql, endpoint_id, 3)

    first = deliveries(gql, endpoint_id, first=2)["deliveries"]
    rest = deliveries(gql, endpoint_id, first=2, after=first["pageInfo"]["endCursor"])

    assert first["totalCount"] == 3
    assert [e["node"]["event"]["recordId"] for e in first["edges"]] == [ok[2], ok[1]]
    assert first["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["event"]["recordId"] for e in rest["deliveries"]["edges"]] == [ok[0]]
    assert rest["deliveries"]["pageInfo"]["hasNextPage"] is False

    failing = [new_lead(gql, email="no@x.io")]
    settled(gql, endpoint_id, 4)
    failed = deliveries(gql, endpoint_id, filter={"status": ["FAILED"]})["deliveries"]
    both = deliveries(gql, endpoint_id, filter={"status": ["FAILED", "SUCCEEDED"]})
    assert [e["node"]["event"]["recordId"] for e in failed["edges"]] == failing
    assert failed["totalCount"] == 1
    assert both["deliveries"]["totalCount"] == 4
    assert deliveries(gql, endpoint_id, filter={"status": ["PENDING"]})["deliveries"] == {
        "totalCount": 0,
        "pageInfo": {"hasNextPage": False, "endCursor": None},
        "edges": [],
    }


def test_deleting_an_endpoint_deletes_its_deliveries(
    gql: GraphQLClient, receiver: Receiver
) -> None:
    endpoint_id, _ = new_endpoint(gql, receiver.url)
    new_lead(gql)
    [delivery] = settled(gql, endpoint_id, 1)

    mutate(gql, DELETE_ENDPOINT, {"id": endpoint_id})

    assert gql.data(NODE, {"id": delivery["id"]}) == {"node": None}
    assert gql.data(NODE, {"id": endpoint_id}) == {"node": None}
    new_lead(gql)
    with pytest.raises(AssertionError):
        receiver.wait_for(2, timeout=0.3)


def test_an_endpoint_gets_the_events_after_its_creation_only(
    gql: GraphQLClient, receiver: Receiver
) -> None:
    new_lead(gql, email="before@example.com")
    _, secret = new_endpoint(gql, receiver.url)

    new_lead(gql, email="after@example.com")

    [request] = receiver.wait_for(1)
    with pytest.raises(AssertionError):
        receiver.wait_for(2, timeout=0.3)
    assert request.verified(secret)["data"]["record"]["email"] == "after@example.com"
