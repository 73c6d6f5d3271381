"""HTTP endpoints beside /graphql (plain Starlette handlers), one module per concern. They
authenticate as the GraphQL view does and answer errors in its shape."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from resolvers.principal import authenticate
from schema.context import Context


async def context_for(request: Request) -> Context:
    """The request's Context, built as the GraphQL view builds it (its credential looked up)."""
    state = request.app.state
    authorization = request.headers.get("authorization")
    principal, rejected = await authenticate(state.db, state.settings, authorization)
    return Context(
        request=request,
        response=Response(),
        db=state.db,
        settings=state.settings,
        mailer=state.mailer,
        request_id=getattr(request.state, "request_id", "-"),
        principal=principal,
        rejected=rejected,
        credential=authorization,
        feed=state.feed,
    )


def error(status_code: int, message: str, code: str) -> Response:
    """``{"errors": [{"message", "extensions": {"code"}}]}``, as /graphql refuses a request."""
    headers = {"WWW-Authenticate": 'Bearer realm="leadgraph"'} if status_code == 401 else None
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status_code=status_code, headers=headers)
