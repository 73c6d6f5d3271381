"""Leadgraph's ASGI app and command line.

python server.py serve            migrate, then serve the API and GraphiQL (default); with
                                  WORKERS > 1, in that many processes sharing the port
python server.py worker           migrate, then run only the background work: the webhook
                                  sender, the import runner and the follow-up reminders (any
                                  number of them, beside `serve` or instead of its own)
python server.py migrate          apply the Alembic migrations and exit
python server.py retention run [--dry-run]
                                  apply every workspace's retention policy now (or say what
                                  it would remove) and print the counts
python server.py export-schema    print the SDL (or write it with --output)
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any, cast

import orjson
import uvicorn
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from pydantic import ValidationError
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, process_result
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from db import migrate
from db.engine import Database
from db.errors import StatementTimeout
from db.models import Role
from db.repositories.lead_tallies import TallyRepository
from db.settings import Settings, get_settings
from resolvers.auth import authenticate, create_key_for_workspace
from resolvers.documents import ManifestError, add_manifest, list_documents
from resolvers.imports.runner import ImportRunner
from resolvers.mail import mailer_for
from resolvers.ratelimit import Limiter
from resolvers.reminders import Reminders
from resolvers.retention import Retention, run_all
from resolvers.subscriptions import EventFeed
from resolvers.webhooks.sender import Sender
from schema import build_schema
from schema.context import Context
from schema.documents import HTTP_STATUS as DOCUMENT_STATUS
from schema.execution import LiveOperation, SharedData, live_operation
from schema.extensions import INTERNAL_MESSAGE
from schema.http import exports, forms
from schema.http.imports import import_leads
from schema.text import spelled_path

logger = logging.getLogger("leadgraph")

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
WS_SUBPROTOCOL_REFUSED = (
    "This endpoint speaks the graphql-transport-ws WebSocket subprotocol (the graphql-ws "
    "library's): offer it in Sec-WebSocket-Protocol. The legacy graphql-ws subprotocol "
    "(subscriptions-transport-ws) is not supported."
)
SUBSCRIPTIONS_OVER_WEBSOCKET = (
    "Subscriptions are served over WebSocket: connect to /graphql with the "
    "graphql-transport-ws subprotocol (the graphql-ws library's)."
)
WS_INTERNAL_ERROR = "Internal server error. Quote the requestId when reporting it: {}"
GRAPHIQL_CDN = "https://unpkg.com/"
GRAPHIQL_ASSETS_PATH = "/graphql/assets/"
GRAPHIQL_FILES = (
    "react@18.2.0/umd/react.production.min.js",
    "react-dom@18.2.0/umd/react-dom.production.min.js",
    "js-cookie@3.0.5/dist/js.cookie.min.js",
    "graphiql@3.8.3/graphiql.min.css",
    "graphiql@3.8.3/graphiql.min.js",
    "@graphiql/plugin-explorer@1.0.2/dist/style.css",
    "@graphiql/plugin-explorer@1.0.2/dist/index.umd.js",
)

# How long a worker may take to answer its supervisor (serve with WORKERS > 1).
WORKER_HEALTHCHECK_SECONDS = 30

# ------------------------------------------------------------------ request ids and logging

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        # The pid tells apart the lines of WORKERS processes that share one output.
        logging.Formatter(
            "%(asctime)s %(levelname)s %(process)d [%(request_id)s] %(name)s: %(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


# The cyclic garbage collector, for a process that holds many long-lived objects (each open
# subscription keeps its connection, handler, task and generators) while requests make short-
# lived ones by the million: with CPython's default thresholds (700, 10, 10) a full collection,
# which walks every object, came every few seconds and held the event loop for a few hundred
# milliseconds (bench/fanout.py, 1,000 subscribers at 2 writes/s: p99 359 ms; with these,
# 88 ms). Young collections are rarer here and full ones much rarer; what was there at startup
# (modules, the schema) is frozen out of them altogether.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_garbage_collector() -> None:
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class RequestIdMiddleware:
    """Tags each request with an id (the caller's X-Request-ID when sane) for logs and errors."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        # For handlers outside GraphQL (schema/http/), as request.state.request_id.
        scope.setdefault("state", {})["request_id"] = request_id

        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client hung up before its request had been read: nobody to answer, and not
            # an error of ours (load tools, browsers and proxies cancel requests all the time).
            logger.info("client disconnected before its request was read")
        except Exception as exc:
            # Starlette's ServerErrorMiddleware wraps every user middleware, so its 500 would come
            # after the id is reset and without the header: answer here while both are known.
            if scope["type"] != "http" or response_started:
                raise
            response = await internal_error(Request(scope, receive), exc)
            await response(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


# ------------------------------------------------------------------ GraphQL over HTTP


def response_media_type(request: Request) -> str:
    """The one of our two JSON types the Accept header prefers; application/json when it
    names neither, as the spec allows (a 406 would break clients that send only */*)."""
    best, best_q = JSON, 0.0
    for part in request.headers.get("accept", "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        # Strictly greater: on equal q the type listed first wins.
        if media.lower() in (GRAPHQL_RESPONSE_JSON, JSON) and q > best_q:
            best, best_q = media.lower(), q
    return best


class RefusedJSON(json.JSONDecodeError):
    """JSON we will not read: not UTF-8, nested past the parser's depth, or holding a string that
    is not Unicode text. A JSONDecodeError, so that a WebSocket message of this kind is refused
    like any other bad JSON (Strawberry closes the socket with 4400)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "", 0)
        self.reason = reason


# A \uD800-\uDFFF escape (or such a character itself): the only way a JSON text decodes to a
# string with an unpaired surrogate, which no database driver can encode. Most requests hold
# none, so only those that do are walked.
_MAYBE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")


def _unpaired_surrogate(value: Any) -> tuple[list[str | int], bool, str] | None:
    """(path, in_a_key, the surrogate) of a string in ``value`` that is not Unicode text, or
    None. Iterative, so it cannot fail where json.loads did not; paths are linked (key, parent)
    pairs, spelled out only for the string at fault."""
    stack: list[tuple[Any, Any]] = [(value, None)]
    while stack:
        item, link = stack.pop()
        if isinstance(item, str):
            if bad := _surrogate_in(item):
                return _unlink(link), False, bad
        elif isinstance(item, dict):
            for key, child in item.items():
                if bad := _surrogate_in(key):
                    return _unlink((key, link)), True, bad
                stack.append((child, (key, link)))
        elif isinstance(item, list):
            stack.extend((child, (n, link)) for n, child in enumerate(item))
    return None


def _unlink(link: Any) -> list[str | int]:
    path: list[str | int] = []
    while link is not None:
        key, link = link
        path.append(key)
    return path[::-1]


def _surrogate_in(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return text[exc.start]
    return None


def decode_request_json(data: str | bytes, within: str | None = None) -> Any:
    """json.loads for request bodies, URL parameters and WebSocket messages, strict where
    Python's is lenient: UTF-8 only, and every string Unicode text. ``within`` names the URL
    parameter the JSON came from, for the error message."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")  # strict: no encoded surrogates either
        except UnicodeDecodeError as exc:
            raise RefusedJSON(
                f"The request is not valid UTF-8 (at byte {exc.start}); send JSON as UTF-8."
            ) from None
    try:
        value = json.loads(data)
    except RecursionError:
        raise RefusedJSON("The JSON is nested too deeply.") from None
    if _MAYBE_SURROGATE.search(data) and (found := _unpaired_surrogate(value)):
        path, in_a_key, char = found
        where = spelled_path([within, *path] if within else path) or "the JSON"
        raise RefusedJSON(
            f"Invalid text {'in the key ' if in_a_key else 'at '}{where}: "
            f"{json.dumps(char)} is an unpaired UTF-16 surrogate, which is not Unicode; "
            "send the character itself or both halves of its surrogate pair."
        )
    return value


def encode_json_bytes(data: object) -> bytes:
    """A response body: orjson, or json where orjson refuses (a lone surrogate in an error
    message that quotes a string, say), so that any result can be sent."""
    try:
        return orjson.dumps(data)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(data, separators=(",", ":")).encode()


def _wholly_unauthenticated(result: ExecutionResult) -> bool:
    """Every error is UNAUTHENTICATED and nothing at all was answered."""
    errors = result.errors or []
    return (
        bool(errors)
        and all((e.extensions or {}).get("code") == "UNAUTHENTICATED" for e in errors)
        and all(_empty(value) for value in (result.data or {}).values())
    )


def _empty(value: Any) -> bool:
    """Null, or a list of nulls (a list field that checks credentials per item)."""
    return value is None or (isinstance(value, list) and all(_empty(v) for v in value))


class LeadgraphWebSocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's, for a connection the server closes while operations still run on it (a
    subscription ended: its client too slow, its credential revoked): what they send after the
    close goes nowhere, as on a connection the client closed, instead of failing."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        if self.ws.application_state == WebSocketState.DISCONNECTED:
            return
        payload = message.get("payload")
        if type(payload) is dict and len(payload) == 1:
            data = payload.get("data")
            if type(data) is SharedData:
                # An event's result shared by many subscribers: encoded once, for all of them.
                if data.encoded is None:
                    data.encoded = encode_json_bytes({"data": data}).decode()
                await self.ws.send_text(
                    f'{{"id":{json.dumps(message["id"])},"type":"next","payload":{data.encoded}}}'
                )
                return
        await super().send_json(message)

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state != WebSocketState.DISCONNECTED:
            await super().close(code, reason)


class LeadgraphTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler; a subscription's events that its subscribers
    share (schema/execution.py, LiveOperation) are sent by the subscription itself, once
    encoded for all, each as this operation's next message."""

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        prefix = f'{{"id":{json.dumps(operation.id)},"type":"next","payload":'
        socket = self.websocket
        assert isinstance(socket, ASGIWebSocketAdapter)

        async def send(data: SharedData) -> None:
            if data.encoded is None:
                data.encoded = encode_json_bytes({"data": data}).decode()
            text = prefix + data.encoded + "}"
            # Once every subscriber woken by this event has done the same: their writes go out
            # one after the other. Made apart (each after its subscriber's work), each write
            # found its client's reader asleep and paid for waking it: on a 2-core machine,
            # about half of a delivery's cost. Waiting here keeps the connection's own order
            # and TCP's push-back (a send waits while the client does not read).
            await asyncio.sleep(0)
            if operation.completed or socket.ws.application_state != WebSocketState.CONNECTED:
                return
            await socket.ws.send_text(text)

        live_operation.set(LiveOperation(send))
        await super().run_operation(operation)


class LeadgraphView(GraphQL[Context, None]):
    """Strawberry's ASGI view plus the GraphQL-over-HTTP rules for graphql-response+json,
    our Context, and GraphiQL from self-hosted assets."""

    websocket_adapter_class = LeadgraphWebSocketAdapter  # type: ignore[assignment]
    graphql_transport_ws_handler_class = LeadgraphTransportWSHandler

    def __init__(self, *args: Any, graphiql_html: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._graphiql_html = graphiql_html

    async def get_context(self, request: Request, response: Response) -> Context:  # type: ignore[override]
        request.state.sub_response = response
        state = request.app.state
        authorization = request.headers.get("authorization")
        principal, rejected = await authenticate(state.db, state.settings, authorization)
        return Context(
            request=request,
            response=response,
            db=state.db,
            settings=state.settings,
            mailer=state.mailer,
            request_id=request_id_var.get(),
            principal=principal,
            rejected=rejected,
            credential=authorization,
            feed=state.feed,
            limiter=state.limiter,
        )

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET naming a persisted document (documentId, or an APQ hash in extensions) is a
        # request, as one with `query` is, whatever its Accept header.
        params = request.query_params
        return (
            params.get("documentId") is None
            and params.get("extensions") is None
            and super().should_render_graphql_ide(request)
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        from starlette.responses import HTMLResponse

        return HTMLResponse(self._graphiql_html or self.graphql_ide_html)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.handle_websocket(WebSocket(scope, receive, send))
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await self.run(request)
        except HTTPException as exc:
            # Strawberry answers request errors in plain text; clients expect a GraphQL response.
            response = self.request_error(request, exc)
        await response(scope, receive, send)

    async def handle_websocket(self, websocket: WebSocket) -> None:
        """graphql-transport-ws only. A handshake that does not offer it (the legacy graphql-ws
        subprotocol of subscriptions-transport-ws, or none) is refused before it is accepted,
        with a 400 that says why where the server can send one (uvicorn can), else a 403."""
        if GRAPHQL_TRANSPORT_WS_PROTOCOL in websocket.scope.get("subprotocols", []):
            try:
                await self.run(websocket)
            except Exception:
                # Outside any operation (the credential lookup): masked like a 500, with the
                # requestId in graphql-ws's close code for server errors.
                logger.exception("unhandled error on a WebSocket connection")
                if websocket.application_state != WebSocketState.DISCONNECTED:
                    await websocket.close(4500, WS_INTERNAL_ERROR.format(request_id_var.get()))
            return
        if "websocket.http.response" not in websocket.scope.get("extensions", {}):
            await websocket.close()
            return
        error = {"message": WS_SUBPROTOCOL_REFUSED, "extensions": {"code": "BAD_REQUEST"}}
        await websocket.send_denial_response(
            Response(self.encode_json({"errors": [error]}), 400, media_type=JSON)
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Credentials from connection_init's payload, as browsers cannot set headers on the
        upgrade: {"Authorization": "Bearer <token>"} (any case), in place of the upgrade's
        header. Credentials that are not valid close the connection with 4403 Forbidden."""
        params = context.connection_params or {}
        sent = [value for key, value in params.items() if key.lower() == "authorization"]
        if len(sent) > 1 or (sent and not isinstance(sent[0], str)):
            raise ConnectionRejectionError
        if sent:
            context.credential = cast(str, sent[0])
            context.principal, context.rejected = await authenticate(
                context.db, context.settings, context.credential
            )
        if context.rejected:
            raise ConnectionRejectionError
        return UNSET

    def request_error(self, request: Request, exc: HTTPException) -> Response:
        """A request Strawberry refused before executing it, as a GraphQL response without data."""
        status_code, headers, message = exc.status_code, {}, exc.reason
        refused = exc.__cause__
        if isinstance(refused, InvalidOperationTypeError):
            if refused.operation_type is OperationType.SUBSCRIPTION:
                status_code, message = 400, SUBSCRIPTIONS_OVER_WEBSOCKET
            else:
                # Strawberry says 400 for a mutation over GET; the spec says 405, Allow: POST.
                status_code, headers = 405, {"Allow": "POST"}
        elif status_code == 405:
            headers = {"Allow": "GET, POST"}
        code = getattr(exc.__cause__, "code", None) or error_code(status_code)
        return refusal(request, status_code, message, code, headers)

    def decode_json(self, data: str | bytes) -> object:
        return decode_request_json(data)

    async def execute_operation(  # type: ignore[override]
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: Response,
    ) -> Any:
        if isinstance(request_data, GraphQLRequestData):
            context.document_id = await self.document_id(request_adapter)
        return await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    async def document_id(self, request: AsyncHTTPRequestAdapter) -> str | None:
        """The request's documentId (persisted documents: in the query string of a GET, beside
        `query` in a JSON body), or None. Strawberry's parsing does not read it; a body is
        read again only if it names one."""
        if request.method == "GET":
            value = request.query_params.get("documentId")
        else:
            body = await request.get_body()
            if b'"documentId"' not in body:
                return None
            data = self.parse_json(body)
            value = data.get("documentId") if isinstance(data, dict) else None
        if value is not None and not isinstance(value, str):
            raise HTTPException(400, "The request's `documentId` must be a string, if provided.")
        return value or None

    def parse_json(self, data: str | bytes, within: str | None = None) -> Any:
        try:
            return decode_request_json(data, within)
        except RefusedJSON as exc:
            raise HTTPException(400, exc.reason) from exc
        except json.JSONDecodeError as exc:
            raise HTTPException(400, "Unable to parse request body as JSON") from exc

    def parse_query_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        # Strawberry's, but naming the parameter a bad JSON text came from.
        parsed = dict(params)
        for name in ("variables", "extensions"):
            if parsed.get(name):
                parsed[name] = self.parse_json(parsed[name], within=name)
        return parsed

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> Any:
        # A JSON body that is not an object (a bare string, number or null) reaches Strawberry's
        # data.get() and would surface as a 500; an array is refused later as a batch.
        content_type, _ = parse_content_type(request.content_type or "")
        if (
            request.method == "POST"
            and "application/json" in content_type
            and (await request.get_body()).lstrip()[:1] not in (b"{", b"[")
        ):
            raise HTTPException(400, "The request body must be a JSON object.")
        return await super().parse_http_body(request)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = process_result(result)
        sub_response: Response = request.state.sub_response
        media_type = response_media_type(request)
        sub_response.graphql_media_type = media_type  # type: ignore[attr-defined]
        failed_before_execution = (
            result.data is None
            and bool(result.errors)
            and all(e.path is None for e in result.errors or [])
        )
        if sub_response.status_code == 429:
            # Throttled (RATE_LIMITED, schema/limits.py set the status and Retry-After): 429
            # whatever the media type, as HTTP says.
            response.pop("data", None)
        elif failed_before_execution:
            # The request never reached execution, so the result has no data entry (GraphQL
            # spec). Only graphql-response+json clients get a 4xx: application/json ones
            # expect 200 for every well-formed GraphQL response.
            response.pop("data", None)
            if media_type == GRAPHQL_RESPONSE_JSON:
                codes = {(e.extensions or {}).get("code") for e in result.errors or []}
                statuses = {DOCUMENT_STATUS.get(code, 400) for code in codes}
                sub_response.status_code = statuses.pop() if len(statuses) == 1 else 400
        elif _wholly_unauthenticated(result):
            sub_response.status_code = 401
            sub_response.headers["WWW-Authenticate"] = 'Bearer realm="leadgraph"'
        return response

    def encode_json(self, data: object) -> str:
        # WebSocket messages and multipart parts are text.
        return encode_json_bytes(data).decode()

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        # Strawberry's, with the body encoded once to bytes and our media type.
        media_type = getattr(sub_response, "graphql_media_type", JSON)
        response = Response(
            encode_json_bytes(response_data),
            status_code=sub_response.status_code or 200,
            media_type=f"{media_type}; charset=utf-8",
        )
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        return response


# The editor's starting document: how to authenticate, then a first query. Valid against the
# schema (tests/test_graphiql.py runs it).
GRAPHIQL_DOCUMENT = """\
# Leadgraph
#
# Every request is sent with the credential in the
# Headers tab (below this editor):
#
#   {"Authorization": "Bearer <token>"}
#
# <token> is a session token from SignIn below, or an
# API key (python server.py create-api-key).
#
# 1. Put your email and password in the Variables tab
#    and run SignIn (the run button asks which one of
#    this document's operations to run).
# 2. Paste its token into the Headers tab as above.
# 3. Run Me: your role and workspace.
#
# Headers are not saved in this browser unless you
# turn on Settings (the gear, bottom left) > Persist
# headers. The editors are saved: clear the password
# from Variables once you are signed in.
#
# Ctrl-Space completes; the book icon shows the docs.

mutation SignIn($email: String!, $password: String!) {
  signIn(input: {email: $email, password: $password}) {
    token
    viewer { role workspace { name } }
    userErrors { field message code retryAfter }
  }
}

query Me {
  me {
    role
    user { email name }
    apiKey { name }
    workspace { name }
  }
}
"""
GRAPHIQL_VARIABLES = '{\n  "email": "",\n  "password": ""\n}'

# GraphiQL 3.8.3 keeps headers out of its saved tabs when shouldPersistHeaders is false, but its
# history and favorites still save each run's headers: this storage drops them there unless the
# user turned Persist headers on (GraphiQL records that choice under the key below).
_GRAPHIQL_STORAGE = """
      const PERSIST_HEADERS_KEY = "graphiql:shouldPersistHeaders";
      const HISTORY_KEYS = ["graphiql:queries", "graphiql:favorites"];

      function headersPersisted() {
        return localStorage.getItem(PERSIST_HEADERS_KEY) === "true";
      }

      function withoutHeaders(key, value) {
        if (!HISTORY_KEYS.includes(key) || !value || headersPersisted()) {
          return value;
        }
        try {
          const saved = JSON.parse(value);
          const name = key.slice("graphiql:".length);
          for (const item of saved[name] || []) {
            delete item.headers;
          }
          return JSON.stringify(saved);
        } catch (error) {
          return value;
        }
      }

      // Headers a run saved before (or while Persist headers was on) go at the next load.
      for (const key of HISTORY_KEYS) {
        const saved = localStorage.getItem(key);
        if (saved) {
          localStorage.setItem(key, withoutHeaders(key, saved));
        }
      }

      const storage = {
        getItem: (key) => localStorage.getItem(key),
        setItem: (key, value) => localStorage.setItem(key, withoutHeaders(key, value)),
        removeItem: (key) => localStorage.removeItem(key),
        get length() {
          return Object.keys(localStorage).filter((k) => k.startsWith("graphiql:")).length;
        },
        clear() {
          for (const key of Object.keys(localStorage)) {
            if (key.startsWith("graphiql:")) {
              localStorage.removeItem(key);
            }
          }
        },
      };
"""


_ICON = (
    '<link rel="icon" href="data:image/svg+xml,'
    "<svg xmlns=%22http://www.w3.org/2000/svg%22 viewBox=%220 0 100 100%22>"
    "<circle cx=%2250%22 cy=%2250%22 r=%2248%22 fill=%22%23e10098%22/>"
    "<text x=%2250%22 y=%2270%22 font-size=%2260%22 font-family=%22sans-serif%22 "
    'fill=%22white%22 text-anchor=%22middle%22>L</text></svg>" />'
)


def _script_string(value: str) -> str:
    """A JavaScript string literal that cannot end the <script> element it sits in."""
    return json.dumps(value).replace("</", "<\\/")


def _replace_once(html: str, old: str, new: str) -> str:
    if html.count(old) != 1:
        # Strawberry's page changed: fail at startup rather than serve a half-customized one.
        raise RuntimeError(f"GraphiQL page: expected {old!r} exactly once")
    return html.replace(old, new)


def leadgraph_graphiql(ide_html: str) -> str:
    """Strawberry's GraphiQL page as Leadgraph's: its title, a starting document that shows how
    to authenticate, and headers (credentials) kept out of localStorage unless the user opts in."""
    html = _replace_once(ide_html, "<title>Strawberry GraphiQL</title>", "<title>Leadgraph</title>")
    icon = html.find('<link\n      rel="icon"')
    icon_end = html.find("/>", icon)
    if icon < 0 or icon_end < 0:
        raise RuntimeError("GraphiQL page: its icon was not found")
    html = html[:icon] + _ICON + html[icon_end + 2 :]
    start = html.find("const EXAMPLE_QUERY = `")
    end = html.find("`;", start + len("const EXAMPLE_QUERY = `"))
    if start < 0 or end < 0:
        raise RuntimeError("GraphiQL page: its EXAMPLE_QUERY was not found")
    html = (
        html[:start]
        + f"const EXAMPLE_QUERY = {_script_string(GRAPHIQL_DOCUMENT)};\n"
        + f"      const EXAMPLE_VARIABLES = {_script_string(GRAPHIQL_VARIABLES)};\n"
        + _GRAPHIQL_STORAGE
        + html[end + 2 :]
    )
    # The starting variables come with the starting document only; a shared link keeps its own.
    html = _replace_once(
        html,
        "React.useState(\n          parameters.variables,\n        );",
        "React.useState(\n          parameters.variables ||"
        " (parameters.q ? undefined : EXAMPLE_VARIABLES),\n        );",
    )
    # Variables hold passwords: they stay out of the address bar and the browser's history.
    html = _replace_once(html, "          updateURL({ variables: newVariables });\n", "")
    return _replace_once(
        html,
        "shouldPersistHeaders: true,",
        "storage: storage,\n          shouldPersistHeaders: headersPersisted(),\n"
        "          showPersistHeadersSettings: true,",
    )


def graphiql_page(assets_dir: Path, ide_html: str) -> str:
    """Leadgraph's GraphiQL page pointed at our own copies of its assets, or at the CDN."""
    html = leadgraph_graphiql(ide_html)
    missing = [f for f in GRAPHIQL_FILES if not (assets_dir / f).is_file()]
    if missing:
        logger.warning(
            "GraphiQL assets not found in %s (make installs them with npm): "
            "the GraphiQL page will load them from %s",
            assets_dir,
            GRAPHIQL_CDN,
        )
        return html
    return html.replace(GRAPHIQL_CDN, GRAPHIQL_ASSETS_PATH)


# ------------------------------------------------------------------ refusals outside GraphQL


def refusal(
    request: Request,
    status_code: int,
    message: str,
    code: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A request refused outside GraphQL execution, as a GraphQL response without data: one
    error with a code, in the JSON type the client accepts."""
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status_code,
        headers=headers,
        media_type=f"{response_media_type(request)}; charset=utf-8",
    )


def error_code(status_code: int) -> str:
    """The error code of a refusal by HTTP status: the status's name (BAD_REQUEST,
    METHOD_NOT_ALLOWED, ...), spelled the same on every Python version."""
    return "PAYLOAD_TOO_LARGE" if status_code == 413 else HTTPStatus(status_code).name


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such path, a method the route does not take, a body over
    its limit) in the shape of every other refusal: a GraphQL-style error with a code."""
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{request.method} is not supported on {request.url.path}; use {allowed}."
    return refusal(request, exc.status_code, message, error_code(exc.status_code), exc.headers)


class BodyLimitMiddleware:
    """Refuses a request body over its limit with 413 before reading it: by its Content-Length
    when it has one, and by counting what arrives (a chunked body has none). The limit is
    ``default`` unless ``limits`` gives the path one of its own (an endpoint taking uploads,
    say; the longest matching prefix wins). Nothing is checked until the endpoint asks for
    the body, so routing has happened and a refusal goes through the app's error handlers."""

    def __init__(self, app: ASGIApp, default: int, limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.default = default
        self.limits = sorted((limits or {}).items(), key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int:
        return next((n for prefix, n in self.limits if path.startswith(prefix)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length", b"")
        received = 0

        def refuse() -> StarletteHTTPException:
            return StarletteHTTPException(
                413, f"The request body is larger than {limit} bytes, the most accepted here."
            )

        async def limited_receive() -> Message:
            nonlocal received
            if declared.isdigit() and int(declared) > limit:
                raise refuse()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise refuse()
            return message

        await self.app(scope, limited_receive, send)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a limit on a request's line and headers: httptools
    keeps them whole however long they grow (a 100 MiB URL took the server from 99 to 284 MiB
    RSS), and the body limit above never sees them. Past ``h11_max_incomplete_event_size``
    bytes (h11's own knob for this, which we set) the request is answered 400 and the
    connection closed, as uvicorn answers any malformed request."""

    _in_head = True
    _head_bytes = 0

    def _head_limit(self) -> int | None:
        return self.config.h11_max_incomplete_event_size

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Headers still incomplete after this read: what the parser holds is at most what it
        # was fed (the complete ones are measured exactly below).
        limit = self._head_limit()
        if (
            self._in_head
            and limit is not None
            and self._head_bytes > limit
            and not self.transport.is_closing()
        ):
            self.send_400_response(f"The request line and headers exceed {limit} bytes.")

    def on_headers_complete(self) -> None:
        self._in_head = False
        limit = self._head_limit()
        size = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
        if limit is not None and size > limit:
            # Raised inside the parser's callback, it reaches uvicorn as a parser error: a 400,
            # before the request reaches the app.
            raise ValueError(f"The request line and headers exceed {limit} bytes.")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head, self._head_bytes = True, 0
        super().on_message_complete()


# ------------------------------------------------------------------ health


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    db: Database = request.app.state.db
    try:
        async with asyncio.timeout(2):
            async with db.read() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:
        logger.warning("readiness check failed: %s", type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
    return JSONResponse({"status": "ok", "database": "ok"})


async def internal_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, StatementTimeout):
        # Outside execution (the credential lookup): the same TIMEOUT as inside, as a 503.
        logger.warning("statement timeout on %s %s", request.method, request.url.path)
        error = {
            "message": exc.message,
            "extensions": {"code": "TIMEOUT", "requestId": request_id_var.get()},
        }
        return JSONResponse({"errors": [error]}, status_code=503)
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    body = {
        "errors": [
            {
                "message": INTERNAL_MESSAGE,
                "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id_var.get()},
            }
        ]
    }
    return JSONResponse(body, status_code=500)


# ------------------------------------------------------------------ the app


def create_app(settings: Settings | None = None, *, migrate_on_start: bool = True) -> Starlette:
    """The ASGI app; the lifespan opens the database and (unless not ``migrate_on_start``)
    brings it to the latest migration."""
    settings = settings or get_settings()
    schema = build_schema(settings)
    probe = GraphQL(schema)
    graphiql_html = (
        graphiql_page(settings.graphiql_assets_dir, probe.graphql_ide_html)
        if settings.graphiql
        else None
    )
    if settings.graphiql:
        # Its starting document signs in: it runs under TRUSTED_DOCUMENTS=require too.
        schema.documents.registry.add_builtin(GRAPHIQL_DOCUMENT, schema.documents.schema_key)
    view = LeadgraphView(
        schema,
        graphql_ide="graphiql" if settings.graphiql else None,
        allow_queries_via_get=True,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        # Operations running at once on one connection: one more gets an `error` message.
        max_subscriptions_per_connection=settings.subscriptions_per_connection,
        graphiql_html=graphiql_html,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tune_garbage_collector()
        db = Database(settings.database_url, settings)
        if migrate_on_start:
            await migrate.upgrade(db)
        app.state.db = db
        app.state.settings = settings
        app.state.mailer = mailer_for(settings)
        if not settings.smtp_host:
            logger.info("SMTP_HOST is not set: emails (and their codes) go to this log")
        # Webhooks go out from every serving process unless WEBHOOK_SENDER=false (then from
        # `server.py worker` processes); any number of senders share the work.
        sender = Sender(settings) if settings.webhook_sender else None
        app.state.sender = sender
        if sender is not None:
            sender.start()
        # Import jobs likewise, unless IMPORT_RUNNER=false.
        importer = ImportRunner(settings, db) if settings.import_runner else None
        app.state.importer = importer
        if importer is not None:
            importer.start()
        # Follow-up reminders likewise, unless FOLLOW_UP_REMINDERS=false.
        reminders = (
            Reminders(settings, db, app.state.mailer) if settings.follow_up_reminders else None
        )
        app.state.reminders = reminders
        if reminders is not None:
            reminders.start()
        # Retention policies likewise, unless RETENTION_SCHEDULE=false.
        retention = Retention(settings, db) if settings.retention_schedule else None
        app.state.retention = retention
        if retention is not None:
            retention.start()
        app.state.feed = EventFeed(db, settings)  # starts with the first subscription
        # Rate limits: this process's leases of the credentials' shared buckets.
        limiter = Limiter(settings) if settings.rate_limits else None
        app.state.limiter = limiter
        if limiter is not None:
            limiter.start()
        try:
            yield
        finally:
            if limiter is not None:
                await limiter.stop()
            await app.state.feed.close()
            if retention is not None:
                await retention.stop()
            if reminders is not None:
                await reminders.stop()
            if importer is not None:
                await importer.stop()
            if sender is not None:
                await sender.stop()
            await db.dispose()

    routes: list[Any] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/imports/leads", import_leads, methods=["POST"]),
    ]
    if settings.graphiql_assets_dir.is_dir():
        routes.append(
            Mount(
                GRAPHIQL_ASSETS_PATH.rstrip("/"),
                StaticFiles(directory=settings.graphiql_assets_dir),
            )
        )
    routes += [
        Route("/graphql", view, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", view),
        Route(f"{forms.PATH}{{key}}", forms.endpoint(), methods=["POST", "OPTIONS"]),
        *exports.routes(schema),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={Exception: internal_error, StarletteHTTPException: http_error},
    )
    # Added first, so inside RequestIdMiddleware: a 413 carries the request id too.
    app.add_middleware(
        BodyLimitMiddleware,
        default=settings.max_body_bytes,
        limits={forms.PATH: settings.form_max_body_bytes, "/imports/": settings.import_max_bytes},
    )
    app.add_middleware(RequestIdMiddleware)
    return app


def worker_app() -> Starlette:
    """The app of one of WORKERS processes (uvicorn's factory, called in each worker it spawns):
    the settings read again from the environment the worker inherited, logging set up in this
    process, and no migrations: the parent ran them once before starting the workers."""
    try:
        settings = get_settings()
    except ValidationError as exc:  # .env changed since the parent read it
        report_configuration_errors(exc)
        sys.exit(STARTUP_FAILURE)
    configure_logging(settings.log_level)
    threading.Thread(target=_stop_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        return create_app(settings, migrate_on_start=False)
    except Exception:
        # uvicorn exits with STARTUP_FAILURE only for some failures of a factory; any other
        # would make its supervisor replace the worker again and again.
        logger.exception("The app failed to load in this worker.")
        sys.exit(STARTUP_FAILURE)


def _stop_with_parent(parent: int) -> None:
    """Stops this worker (gracefully, as SIGTERM does) once its parent is gone: uvicorn's workers
    keep serving the inherited socket as orphans when their parent is killed outright."""
    while os.getppid() == parent:
        time.sleep(1)
    logger.warning("The parent process %d is gone: stopping this worker.", parent)
    os.kill(os.getpid(), signal.SIGTERM)


async def _migrate(settings: Settings) -> None:
    db = Database(settings.database_url, settings)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()


def serve(settings: Settings) -> int:
    """Serves the API in this process, or in WORKERS processes sharing one listening socket;
    the exit status."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        "log_config": None,
        "proxy_headers": settings.forwarded_allow_ips is not None,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        # A WebSocket message is read whole too (uvicorn's default allows 16 MiB), and so are a
        # request's line and headers.
        "ws_max_size": settings.max_body_bytes,
        "h11_max_incomplete_event_size": settings.max_body_bytes,
    }
    if settings.workers == 1:
        app = create_app(settings)
        logger.info("GraphiQL: http://%s:%d/graphql", settings.host, settings.port)
        uvicorn.run(app, http=BoundedHttpToolsProtocol, **options)
        return 0
    # Once, here, before any worker starts: N workers would only queue on the migration lock.
    try:
        asyncio.run(_migrate(settings))
    except Exception:
        logger.exception("Migrating the database failed; no worker was started.")
        return STARTUP_FAILURE
    # uvicorn spawns each worker (a fresh interpreter that is handed this Config), so the app
    # and the protocol class are named by import string and built there.
    config = uvicorn.Config(
        "server:worker_app",
        factory=True,
        workers=settings.workers,
        http="server:BoundedHttpToolsProtocol",
        # The supervisor pings each worker every half second and replaces one that does not
        # answer in time. A worker answers only once it has imported everything afresh (spawned,
        # not forked): ~2 s on an idle 2-core machine, past uvicorn's default 5 s on a busy
        # one, where that default killed workers that were still starting.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        **options,
    )
    # uvicorn's supervisor: it replaces a worker that dies or stops answering its health
    # check, and stops every worker on SIGTERM or SIGINT (SIGHUP restarts them one by one,
    # SIGTTIN/SIGTTOU add or remove one).
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    logger.info(
        "GraphiQL: http://%s:%d/graphql (%d workers)",
        settings.host,
        settings.port,
        settings.workers,
    )
    supervisor.run()
    # A worker that failed before serving (its app would not load) stops the supervisor: the
    # others would fail alike.
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        return STARTUP_FAILURE
    return 0


def report_configuration_errors(exc: ValidationError) -> None:
    """One line per bad setting on stderr, no traceback."""
    for error in exc.errors(include_url=False):
        name = ".".join(str(p) for p in error["loc"]).upper()
        if name:
            sys.stderr.write(f"Configuration error: {name}: {error['msg']}\n")
        else:  # a rule between settings, which names them itself
            message = error["msg"].removeprefix("Value error, ")
            sys.stderr.write(f"Configuration error: {message}\n")


async def _work(settings: Settings) -> None:
    """The background work alone, until SIGTERM or SIGINT: the webhook sender, the import runner
    (unless IMPORT_RUNNER=false) and the follow-up reminders (unless FOLLOW_UP_REMINDERS=false).
    On stopping, deliveries in flight get a few seconds to finish (the others go again after
    their lease, from any sender), an import stops after its batch, the reminders after their
    round."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sender = Sender(settings)
    sender.start()
    importer = ImportRunner(settings) if settings.import_runner else None
    if importer is not None:
        importer.start()
    db: Database | None = None
    reminders: Reminders | None = None
    if settings.follow_up_reminders:
        db = Database(settings.database_url, settings)
        if not settings.smtp_host:
            logger.info("SMTP_HOST is not set: reminders go to this log")
        reminders = Reminders(settings, db, mailer_for(settings))
        reminders.start()
    retention: Retention | None = None
    if settings.retention_schedule:
        db = db or Database(settings.database_url, settings)
        retention = Retention(settings, db)
        retention.start()
    logger.info(
        "webhook sender running (pid %d); import runner %s; follow-up reminders %s; retention %s",
        os.getpid(),
        "on" if importer is not None else "off",
        "on" if reminders is not None else "off",
        "on" if retention is not None else "off",
    )
    try:
        await stop.wait()
    finally:
        if retention is not None:
            await retention.stop()
        if reminders is not None:
            await reminders.stop()
        if importer is not None:
            await importer.stop()
        await sender.stop()
        if db is not None:
            await db.dispose()
    logger.info("webhook sender stopped")


def work(settings: Settings) -> int:
    """``server.py worker``: migrate, then do the background work until stopped; the exit
    status."""
    try:
        asyncio.run(_migrate(settings))
    except Exception:
        logger.exception("Migrating the database failed; the worker did not start.")
        return STARTUP_FAILURE
    asyncio.run(_work(settings))
    return 0


async def recount(settings: Settings) -> int:
    """``server.py recount``: every pipeline tally rebuilt from the leads, in one transaction
    (writes of leads wait for it). The tallies are kept exact by the database on every write
    (migration 0015); this is for a database whose tallies were edited by hand or restored
    apart from its leads."""
    db = Database(settings.database_url, settings)
    try:
        await migrate.upgrade(db)
        async with db.write() as conn:
            rows = await TallyRepository(conn).recount()
    finally:
        await db.dispose()
    sys.stderr.write(f"Recounted the pipeline tallies from the leads: {rows} tally rows.\n")
    return 0


async def run_retention(settings: Settings, *, dry_run: bool) -> int:
    """``server.py retention run [--dry-run]``: every workspace's policy now (migrating first);
    one line per workspace with a policy."""
    db = Database(settings.database_url, settings)
    try:
        await migrate.upgrade(db)
        results = await run_all(db, settings, dry_run=dry_run)
    finally:
        await db.dispose()
    verb = "would remove" if dry_run else "removed"
    for workspace_id, policy, found in results:
        done = "anonymize" if policy.anonymize else "delete"
        sys.stdout.write(
            f"workspace {workspace_id}: {verb} {found['leads']} leads, {found['clients']} "
            f"clients ({done}), {found['events']} events, {found['deliveries']} webhook "
            "deliveries\n"
        )
    if not results:
        sys.stdout.write("no workspace has a retention policy\n")
    return 0


_OPERATION_NAME = re.compile(r"\b(query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)")


async def documents_command(settings: Settings, args: argparse.Namespace) -> int:
    """``server.py documents add <manifest>`` / ``documents list``: the exit status."""
    support = build_schema(settings).documents
    db = Database(settings.database_url, settings)
    try:
        await migrate.upgrade(db)
        if args.documents_command == "list":
            for row in await list_documents(db):
                names = ", ".join(" ".join(m) for m in _OPERATION_NAME.findall(row.body))
                sys.stdout.write(
                    "\t".join(
                        (
                            f"sha256:{row.hash}",
                            row.alias or "-",
                            "trusted" if row.trusted else "apq",
                            "valid" if row.schema_key == support.schema_key else "schema changed",
                            names or "(anonymous)",
                        )
                    )
                    + "\n"
                )
            return 0
        try:
            manifest = decode_request_json(args.manifest.read_bytes())
        except OSError as exc:
            sys.stderr.write(f"Cannot read {args.manifest}: {exc.strerror}.\n")
            return 2
        except json.JSONDecodeError as exc:
            reason = exc.reason if isinstance(exc, RefusedJSON) else str(exc)
            sys.stderr.write(f"{args.manifest} is not JSON: {reason}\n")
            return 2
        try:
            added, total = await add_manifest(db, manifest, support.problems_of, support.schema_key)
        except ManifestError as exc:
            sys.stderr.write(f"Nothing was registered from {args.manifest}:\n")
            sys.stderr.write("".join(f"  {problem}\n" for problem in exc.problems))
            return 2
        sys.stderr.write(
            f"{total} documents in {args.manifest}: {added} registered now, "
            f"{total - added} already were.\n"
        )
        return 0
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="server.py", description="Leadgraph GraphQL API")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="migrate, then serve the API (default)")
    commands.add_parser(
        "worker",
        help="migrate, then run only the background work: webhooks, imports, reminders, "
        "retention "
        "(until SIGTERM/SIGINT)",
    )
    commands.add_parser("migrate", help="apply the database migrations and exit")
    retention = commands.add_parser("retention", help="retention policies")
    retention_commands = retention.add_subparsers(dest="retention_command", required=True)
    run = retention_commands.add_parser(
        "run", help="apply every workspace's retention policy now and print what it removed"
    )
    run.add_argument(
        "--dry-run", action="store_true", help="only count what a run would remove now"
    )
    key = commands.add_parser(
        "create-api-key", help="create an API key (and the workspace, if it does not exist)"
    )
    key.add_argument("--workspace", required=True, help="the workspace's name")
    key.add_argument("--role", default="OWNER", choices=[r.value for r in Role])
    key.add_argument("--name", default="Command line", help="a label for the key")
    commands.add_parser(
        "recount",
        help="migrate, then rebuild the pipeline tallies (leads { aggregate }) from the leads",
    )

    documents = commands.add_parser(
        "documents", help="trusted documents: register a client's manifest, list them"
    )
    documents_commands = documents.add_subparsers(dest="documents_command", required=True)
    add = documents_commands.add_parser(
        "add",
        help="register every document of a manifest (graphql-codegen, Relay, Apollo), or none",
    )
    add.add_argument("manifest", type=Path, help="the manifest's JSON file")
    documents_commands.add_parser("list", help="the registered documents, oldest first")
    export = commands.add_parser("export-schema", help="print the schema SDL")
    export.add_argument("--output", type=Path, help="write the SDL to this file")
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:
        report_configuration_errors(exc)
        return 2
    configure_logging(settings.log_level)

    if args.command == "migrate":
        asyncio.run(_migrate(settings))
        return 0
    if args.command == "worker":
        return work(settings)
    if args.command == "retention":
        return asyncio.run(run_retention(settings, dry_run=args.dry_run))
    if args.command == "create-api-key":

        async def create_key() -> int:
            db = Database(settings.database_url, settings)
            try:
                await migrate.upgrade(db)
                secret, workspace, created = await create_key_for_workspace(
                    db, args.workspace, Role(args.role), args.name
                )
            except ValueError as exc:
                sys.stderr.write(f"{exc} Rename one of them first.\n")
                return 2
            finally:
                await db.dispose()
            made = "created" if created else "existing"
            sys.stderr.write(
                f"{args.role} API key for the {made} workspace {workspace.name!r}. "
                "It is shown only now; send it as 'Authorization: Bearer <key>'.\n"
            )
            sys.stdout.write(secret + "\n")
            return 0

        return asyncio.run(create_key())
    if args.command == "recount":
        return asyncio.run(recount(settings))

    if args.command == "documents":
        return asyncio.run(documents_command(settings, args))
    if args.command == "export-schema":
        sdl = build_schema().as_str() + "\n"
        if args.output:
            args.output.write_text(sdl)
        else:
            sys.stdout.write(sdl)
        return 0

    return serve(settings)


if __name__ == "__main__":
    raise SystemExit(main())
