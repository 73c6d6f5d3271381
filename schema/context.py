"""The per-request context every resolver receives."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from functools import cached_property

from starlette.requests import Request
from starlette.responses import Response
from strawberry.types import Info as _Info

from db.engine import Database
from db.models import Role
from db.settings import Settings
from resolvers.loaders import Loaders
from resolvers.mail import Mailer
from resolvers.principal import Principal, authenticate, require
from resolvers.ratelimit import Limiter
from resolvers.subscriptions import EventFeed


@dataclass
class Context:
    request: Request
    response: Response
    db: Database
    settings: Settings
    mailer: Mailer
    request_id: str
    principal: Principal | None = None
    # Credentials were sent but are invalid, expired or revoked.
    rejected: bool = False
    # A WebSocket's connection_init payload (Strawberry sets it; None over HTTP).
    connection_params: dict[str, object] | None = None
    # The Authorization value in effect, checked again for each operation of a WebSocket.
    credential: str | None = None
    # That check failed (the database, not the credential): raised where the caller is needed.
    credential_error: Exception | None = None
    # The process's live readers of the change-event log (subscriptions).
    feed: EventFeed | None = None
    # The process's rate-limit leases (None: RATE_LIMITS=false).
    limiter: Limiter | None = None
    # The request's documentId (GraphQL over HTTP's persisted documents), set by the view.
    document_id: str | None = None

    def require(self, role: Role) -> Principal:
        """The caller, if signed in with at least ``role``; UNAUTHENTICATED/FORBIDDEN otherwise."""
        if self.credential_error is not None:
            raise self.credential_error
        return require(self.principal, role, self.rejected)

    async def for_operation(self) -> Context:
        """A copy for one operation of a WebSocket connection, which shares one Context: the
        operation's own request id (the connection's, suffixed) and loaders, and its credential
        checked again, as each HTTP request's is, so that a revoked key or a removed member
        loses access without waiting for the connection to close."""
        copy = replace(self, request_id=f"{self.request_id}.{uuid.uuid4().hex[:8]}")
        if self.credential:
            try:
                copy.principal, copy.rejected = await authenticate(
                    self.db, self.settings, self.credential
                )
            except Exception as exc:
                # Answered by ErrorPolicy in the operation (TIMEOUT, or masked and logged).
                copy.principal, copy.credential_error = None, exc
        return copy

    @property
    def workspace_id(self) -> int:
        """The caller's workspace. Every repository is built with it, so no data is reachable
        without credentials, and none outside the caller's workspace."""
        return self.require(Role.VIEWER).workspace_id

    @cached_property
    def loaders(self) -> Loaders:
        return Loaders.create(self.db, self.workspace_id)

    def clear_loaders(self) -> None:
        """After a write: what the loaders cached may be stale. Loaders not built yet (most
        mutations) are left unbuilt."""
        if "loaders" in vars(self):
            self.loaders.clear()


Info = _Info[Context, None]
