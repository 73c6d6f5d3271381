"""What the HTTP endpoints share with the GraphQL view: the caller's Context, built from the
same credential lookup, and errors in the shape of every other refusal."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from resolvers.errors import AuthError
from resolvers.principal import Principal, authenticate
from schema.context import Context

JSON_UTF8 = "application/json; charset=utf-8"


async def context_for(request: Request, principal: Principal | None = None) -> Context:
    """The request's Context, authenticated as ``LeadgraphView.get_context`` does; with
    ``principal``, as that caller instead (a web form's submitter: no credential is sent).
    The request id is the one server.py's RequestIdMiddleware put on ``request.state``."""
    state = request.app.state
    authorization, rejected = None, False
    if principal is None:
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


def refused(
    status_code: int,
    message: str,
    code: str,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, object] | None = None,
) -> Response:
    """``{"errors": [{"message", "extensions": {"code", ...}}]}`` with this status."""
    error = {"message": message, "extensions": {"code": code, **(extensions or {})}}
    return JSONResponse(
        {"errors": [error]}, status_code=status_code, headers=headers, media_type=JSON_UTF8
    )


def refused_all(status_code: int, messages: list[str], code: str) -> Response:
    """Several errors of one code (each problem of a request's input) with this status."""
    errors = [{"message": m, "extensions": {"code": code}} for m in messages]
    return JSONResponse({"errors": errors}, status_code=status_code, media_type=JSON_UTF8)


def auth_refused(error: AuthError) -> Response:
    """401 (with the Bearer challenge) for no or bad credentials, 403 for too low a role."""
    if error.code == "UNAUTHENTICATED":
        challenge = {"WWW-Authenticate": 'Bearer realm="leadgraph"'}
        return refused(401, error.message, error.code, challenge)
    return refused(403, error.message, error.code)
