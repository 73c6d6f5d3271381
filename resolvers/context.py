"""What a resolver may use of the request it serves.

A Protocol, so that resolvers depend on nothing above them: ``schema.context.Context`` (built
per request by the GraphQL view) provides it, and resolvers never import the schema layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from starlette.requests import HTTPConnection

from db.engine import Database
from db.models import Role
from db.settings import Settings
from resolvers.loaders import Loaders
from resolvers.mail import Mailer
from resolvers.principal import Principal

if TYPE_CHECKING:
    from resolvers.subscriptions import EventFeed


class Context(Protocol):
    @property
    def request(self) -> HTTPConnection: ...

    @property
    def db(self) -> Database: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def mailer(self) -> Mailer: ...

    @property
    def principal(self) -> Principal | None: ...

    @property
    def credential(self) -> str | None:
        """The Authorization value the principal comes from (a subscription checks it again)."""
        ...

    @property
    def feed(self) -> EventFeed | None:
        """The process's live readers of the change-event log (subscriptions)."""
        ...

    @property
    def request_id(self) -> str:
        """The request's X-Request-ID (ours when it sent none), which events record."""
        ...

    @property
    def workspace_id(self) -> int:
        """The caller's workspace; UNAUTHENTICATED without credentials."""
        ...

    @property
    def loaders(self) -> Loaders: ...

    def require(self, role: Role) -> Principal:
        """The caller, if signed in with at least ``role``; UNAUTHENTICATED/FORBIDDEN otherwise."""
        ...

    def clear_loaders(self) -> None:
        """After a write: what the loaders cached may be stale."""
        ...
