"""One webhook request, as Standard Webhooks (standardwebhooks.com) has it: a JSON body
``{"type", "timestamp", "data"}``, and the headers ``webhook-id`` (the delivery's global ID:
the receiver's idempotency key, the same on every attempt), ``webhook-timestamp`` (Unix
seconds) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of id.timestamp.body>``, one per
secret in effect, space-separated). Signed by ``standardwebhooks``, the library receivers
verify with.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import certifi
import httpcore
import httpx
import orjson
from standardwebhooks.webhooks import Webhook

from db.models.fields import full_name
from db.models.webhooks import ERROR_MAX
from resolvers.events import json_value
from resolvers.ids import to_global_id
from resolvers.records import RecordType
from resolvers.webhooks.urls import PublicOnlyBackend, RefusedAddress

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
USER_AGENT = "Leadgraph-Webhooks/1.0"
# What is read of a response body (to reuse the connection); the rest is not waited for.
BODY_READ_MAX = 64 * 1024


def new_secret() -> str:
    """A signing secret as Standard Webhooks spells it: whsec_ and base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _time(value: datetime) -> str:
    """As the DateTime scalar serializes it."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def record_json(record: RecordType, row: Any) -> dict[str, Any]:
    """A lead's or client's scalar fields by GraphQL name, as the API returns them (an
    object's parts, ``address.city``, nested; references to other records left out)."""
    out: dict[str, Any] = {"id": to_global_id(record.name, row.id)}
    if hasattr(row, "first_name") and hasattr(row, "last_name"):
        out["name"] = full_name(row.first_name, row.last_name)
    for column, field in record.fields.items():
        if field.refers_to is not None:
            continue
        value = json_value(getattr(row, column), field)
        head, _, part = field.field.partition(".")
        if part:
            out.setdefault(head, {})[part] = value
        else:
            out[head] = value
    out["createdAt"] = _time(row.created_at)
    out["updatedAt"] = _time(row.updated_at)
    return out


def body(delivery: Any, record: dict[str, Any] | None) -> bytes:
    """The request body: the event as GraphQL returns it, and its record as it is now."""
    occurred = _time(delivery.occurred_at)
    data = {
        "id": to_global_id("Event", delivery.event_id),
        "type": delivery.type,
        "occurredAt": occurred,
        "recordId": to_global_id(delivery.record_type, delivery.record_id),
        "requestId": delivery.request_id,
        "changes": [
            {"field": c["field"], "from": c["from"], "to": c["to"]} for c in delivery.changes
        ],
        "record": record,
    }
    return orjson.dumps({"type": delivery.type, "timestamp": occurred, "data": data})


def signed_headers(
    message_id: str, content: bytes, secrets_: Sequence[str], now: datetime
) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt, signed with each of ``secrets_``."""
    text = content.decode()
    signatures = [Webhook(secret).sign(message_id, now, text) for secret in secrets_]
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


def secrets_in_effect(delivery: Any, now: datetime) -> list[str]:
    """The endpoint's secret, and the one before the last rotation while it still signs."""
    found = [delivery.secret]
    expires = delivery.previous_secret_expires_at
    if delivery.previous_secret and expires is not None and expires > now:
        found.append(delivery.previous_secret)
    return found


def client(allow_private: bool, timeout: float, connections: int) -> httpx.AsyncClient:
    """The sender's HTTP client: no redirects followed (a 3xx is a failed attempt, and could
    point anywhere), no proxies from the environment, and unless ``allow_private``, a
    connection only to public addresses (urls.PublicOnlyBackend)."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    if not allow_private:
        # httpx builds its connection pool without a way to pass a network backend: the
        # same pool, with ours.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl.create_default_context(cafile=certifi.where()),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PublicOnlyBackend(),
        )
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
    )


@dataclass(frozen=True)
class Answer:
    """How an attempt went: the response's status, or why there was none."""

    status: int | None
    error: str | None
    duration_ms: int


def describe(exc: BaseException, timeout: float) -> str:
    """An attempt's error, for the delivery log."""
    if isinstance(exc, RefusedAddress):
        text = f"refused: {exc.message}"
    elif isinstance(exc, TimeoutError | httpx.TimeoutException):
        text = f"timeout: no answer within {timeout:g} s"
    elif isinstance(exc, httpx.ConnectError) and (
        "SSL" in str(exc) or "certificate" in str(exc).lower()
    ):
        text = f"TLS: {exc}"
    elif isinstance(exc, httpx.ConnectError):
        text = f"connection failed: {exc or 'refused'}"
    elif isinstance(exc, httpx.HTTPError):
        text = f"{type(exc).__name__}: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:ERROR_MAX]


async def post(
    http: httpx.AsyncClient,
    url: str,
    content: bytes,
    headers: Mapping[str, str],
    scheme_allowed: bool,
) -> int:
    """POSTs the body; the response's status."""
    if not scheme_allowed:
        raise RefusedAddress("webhooks are not sent over plain HTTP (use https://).")
    async with http.stream("POST", url, content=content, headers=headers) as response:
        read = 0
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if read > BODY_READ_MAX:
                break
        return response.status_code


async def attempt(
    http: httpx.AsyncClient,
    url: str,
    content: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    allow_private: bool,
) -> Answer:
    """One request, within ``timeout`` seconds in all (DNS, connection, TLS, answer)."""
    started = time.monotonic()
    status: int | None = None
    error: str | None = None
    https = httpx.URL(url).scheme == "https"
    try:
        async with asyncio.timeout(timeout):
            status = await post(http, url, content, headers, https or allow_private)
    except Exception as exc:
        error = describe(exc, timeout)
    return Answer(status, error, int((time.monotonic() - started) * 1000))
