"""The per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from starlette.requests import Request
from starlette.responses import Response
from strawberry.types import Info as _Info

from db.engine import Database
from db.models import Role
from db.settings import Settings
from resolvers.loaders import Loaders
from resolvers.mail import Mailer
from resolvers.principal import Principal, require


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

    def require(self, role: Role) -> Principal:
        """The caller, if signed in with at least ``role``; UNAUTHENTICATED/FORBIDDEN otherwise."""
        return require(self.principal, role, self.rejected)

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
