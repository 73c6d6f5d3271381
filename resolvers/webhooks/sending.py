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
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import anyio
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


@lru_cache(maxsize=256)
def _signer(secret: str) -> Webhook:
    """A secret's signer (decoding the secret once, not for every request)."""
    return Webhook(secret)


def signed_headers(
    message_id: str, content: bytes, secrets_: Sequence[str], now: datetime
) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt, signed with each of ``secrets_``."""
    text = content.decode()
    signatures = [_signer(secret).sign(message_id, now, text) for secret in secrets_]
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


class Pool(httpcore.AsyncConnectionPool):
    """httpcore's connection pool at a constant cost per request. httpcore's own goes over
    every connection each time a request starts or ends (a poll of each socket, and for each
    idle one a count of all the idle ones): with the sender's WEBHOOK_BATCH_SIZE connections,
    over half of its CPU (bench/README.md, "Webhooks"). Here idle connections wait on a stack
    per origin, and only the one taken is checked (expired, or closed by the server: its
    socket is readable). At most ``max_connections`` requests at once, each on a connection of
    its own (HTTP/1.1); the sender never has more in flight, so none waits."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        max_connections: int,
        keepalive_expiry: float | None,
        network_backend: httpcore.AsyncNetworkBackend | None,
    ) -> None:
        super().__init__(
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
            network_backend=network_backend,
        )
        self._slots = asyncio.Semaphore(max_connections)
        # By origin, as (scheme, host, port): httpcore's Origin is not hashable.
        self._idle: dict[tuple[bytes, bytes, int], list[httpcore.AsyncConnectionInterface]] = {}
        self._open: set[httpcore.AsyncConnectionInterface] = set()

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        origin = request.url.origin
        if origin.scheme not in (b"http", b"https"):
            raise httpcore.UnsupportedProtocol(f"unsupported scheme {origin.scheme!r}")
        await self._slots.acquire()
        try:
            while True:
                connection = await self._take(origin)
                try:
                    response = await connection.handle_async_request(request)
                    break
                except httpcore.ConnectionNotAvailable:
                    await self._close(connection)  # not usable after all: another one
                except BaseException:
                    await self._close(connection)
                    raise
        except BaseException:
            self._slots.release()
            raise
        assert isinstance(response.stream, AsyncIterable)
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=_Returning(response.stream, self, origin, connection),
            extensions=response.extensions,
        )

    async def _take(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        """An idle connection to ``origin`` still usable, or a new one."""
        idle = self._idle.get(_key(origin))
        while idle:
            connection = idle.pop()
            if connection.is_idle() and not connection.has_expired():
                return connection
            await self._close(connection)
        connection = self.create_connection(origin)
        self._open.add(connection)
        return connection

    async def _give_back(
        self, origin: httpcore.Origin, connection: httpcore.AsyncConnectionInterface
    ) -> None:
        self._slots.release()
        if not connection.is_idle():
            await self._close(connection)
            return
        idle = self._idle.setdefault(_key(origin), [])
        idle.append(connection)
        # The oldest idle connection, at the bottom: closed once it has expired (one check
        # per request, so that unused connections do not stay open).
        if len(idle) > 1 and idle[0].has_expired():
            await self._close(idle.pop(0))

    async def _close(self, connection: httpcore.AsyncConnectionInterface) -> None:
        self._open.discard(connection)
        with anyio.CancelScope(shield=True):
            await connection.aclose()

    async def aclose(self) -> None:
        self._idle.clear()
        for connection in list(self._open):
            await self._close(connection)


def _key(origin: httpcore.Origin) -> tuple[bytes, bytes, int]:
    return origin.scheme, origin.host, origin.port


class _Returning:
    """A response's body; once closed, its connection goes back to the pool."""

    def __init__(
        self,
        stream: AsyncIterable[bytes],
        pool: Pool,
        origin: httpcore.Origin,
        connection: httpcore.AsyncConnectionInterface,
    ) -> None:
        self._stream = stream
        self._pool = pool
        self._origin = origin
        self._connection = connection
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            close = getattr(self._stream, "aclose", None)
            if close is not None:
                await close()
            await self._pool._give_back(self._origin, self._connection)


def transport(allow_private: bool, connections: int) -> httpx.AsyncHTTPTransport:
    """The sender's HTTP transport: no proxies from the environment, and unless
    ``allow_private``, a connection only to public addresses (urls.PublicOnlyBackend).
    Requests go to it directly, not through an ``httpx.AsyncClient``: the client's layers
    (cookies, auth, redirects, default headers) have nothing to do here, since no redirect is
    ever followed (a 3xx is a failed attempt, and could point anywhere), and cost a tenth of
    the sender's CPU."""
    sent = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx builds its connection pool without a way to pass a network backend or a pool of
    # one's own: the same transport, with ours.
    sent._pool = Pool(
        ssl_context=ssl.create_default_context(cafile=certifi.where()),
        max_connections=connections,
        keepalive_expiry=httpx.Limits().keepalive_expiry,
        network_backend=None if allow_private else PublicOnlyBackend(),
    )
    return sent


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


@lru_cache(maxsize=1024)
def _url(url: str) -> httpx.URL:
    return httpx.URL(url)


async def post(
    http: httpx.AsyncBaseTransport,
    url: str,
    content: bytes,
    headers: Mapping[str, str],
    timeout: float,
    scheme_allowed: bool,
) -> int:
    """POSTs the body; the response's status."""
    if not scheme_allowed:
        raise RefusedAddress("webhooks are not sent over plain HTTP (use https://).")
    limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    request = httpx.Request(
        "POST", _url(url), content=content, headers=headers, extensions={"timeout": limits}
    )
    response = await http.handle_async_request(request)
    try:
        read = 0
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if read > BODY_READ_MAX:
                break
        return response.status_code
    finally:
        await response.aclose()


async def attempt(
    http: httpx.AsyncBaseTransport,
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
    https = _url(url).scheme == "https"
    try:
        async with asyncio.timeout(timeout):
            status = await post(http, url, content, headers, timeout, https or allow_private)
    except Exception as exc:
        error = describe(exc, timeout)
    return Answer(status, error, int((time.monotonic() - started) * 1000))
