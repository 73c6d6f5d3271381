"""POST /forms/{key}: a web form's post, from a plain HTML form (urlencoded or multipart) or a
script (JSON, or either form encoding), made into a lead (resolvers/forms.py says how).

Answers: 201 ``{"ok": true}``, or a 303 to the form's redirectUrl for a browser's post (a
form encoding, and an Accept header that does not ask for JSON). A bad field: 400 with one
error per problem, ``{"errors": [{"message", "extensions": {"code", "field"}}]}`` (code: a
UserErrorCode, field: the name as posted), or for a browser's post a 303 to redirectUrl with
``error=<field>&message=<text>`` added to its query. 429 with Retry-After past the address's
rate limit; 404 for a key no form has. CORS: only the form's allowedOrigins get
Access-Control-Allow-Origin (preflight included)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from db.models.intake import FORM_KEY_MAX
from resolvers import forms as resolve
from resolvers.errors import Problem
from schema.http.common import context_for

PATH = "/forms/"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
JSON_TYPE = "application/json"
# Fields a post may hold (a form with more is not one of ours).
MAX_FIELDS = 200
PREFLIGHT_MAX_AGE = 600  # seconds a browser may cache a preflight's answer
_ALLOWED_HEADERS = "Content-Type, X-Requested-With, X-Request-ID"
_EXPOSED_HEADERS = "Retry-After, X-Request-ID"

Endpoint = Callable[[Request], Awaitable[Response]]


class Refused(Exception):
    """A post answered with an error before it reaches the resolver."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def endpoint() -> Endpoint:
    """The handler of /forms/{key}."""

    async def form_post(request: Request) -> Response:
        key = request.path_params["key"]
        state = request.app.state
        form = await resolve.form_for_key(state.db, key) if len(key) <= FORM_KEY_MAX else None
        if form is None:
            return _error(404, "No web form has this key.", "NOT_FOUND")
        origin = resolve.allowed_origin(form, request.headers.get("origin"))
        if request.method == "OPTIONS":
            return _preflight(request, origin)
        try:
            fields = await _fields(request)
        except Refused as refused:
            return _cors(_error(refused.status, refused.message, refused.code), origin)
        ctx = await context_for(request, resolve.submitter(form))
        out = await resolve.submit(ctx, form, fields)
        redirect = form.redirect_url if _from_browser(request) else None
        if out.retry_after is not None:
            response = _error(
                429,
                f"Too many posts from this address; try again in {out.retry_after} seconds.",
                "RATE_LIMITED",
                {"Retry-After": str(out.retry_after)},
            )
        elif out.problems:
            response = (
                _redirect(redirect, _error_query(out.problems[0]))
                if redirect
                else _problems(out.problems)
            )
        else:
            response = _redirect(redirect, {}) if redirect else JSONResponse({"ok": True}, 201)
        return _cors(response, origin)

    return form_post


async def _fields(request: Request) -> Mapping[str, Any]:
    """The post's fields by name: a form's (a name posted several times: a list of its
    values) or a JSON object's."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media in FORM_TYPES:
        # No files: a lead has nowhere to keep one (Starlette refuses one with a 400).
        form = await request.form(max_files=0, max_fields=MAX_FIELDS)
        return {
            name: values[0] if len(values) == 1 else values
            for name in form
            if (values := [str(v) for v in form.getlist(name)])
        }
    if media == JSON_TYPE:
        try:
            value = json.loads((await request.body()).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise Refused(400, "The body is not valid JSON (UTF-8).", "BAD_REQUEST") from None
        if not isinstance(value, dict):
            raise Refused(400, "The body must be a JSON object of fields.", "BAD_REQUEST")
        return value
    raise Refused(
        415,
        "Post the form as application/x-www-form-urlencoded, multipart/form-data or "
        "application/json.",
        "UNSUPPORTED_MEDIA_TYPE",
    )


def _from_browser(request: Request) -> bool:
    """A browser's own form post (answered with a redirect), not a script asking for JSON."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    return media in FORM_TYPES and JSON_TYPE not in request.headers.get("accept", "")


def _preflight(request: Request, origin: str | None) -> Response:
    if origin is None:
        return _error(
            403,
            "This origin is not among the form's allowedOrigins: its scripts may not post "
            "to it (a plain HTML form may).",
            "FORBIDDEN",
        )
    headers = {
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": _ALLOWED_HEADERS,
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
    }
    return _cors(Response(status_code=204, headers=headers), origin)


def _cors(response: Response, origin: str | None) -> Response:
    """The answer, readable by scripts of ``origin`` (an allowed one) only."""
    response.headers["Vary"] = "Origin"
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = _EXPOSED_HEADERS
    return response


def _error(
    status: int, message: str, code: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status, headers=headers)


def _problems(problems: list[Problem]) -> Response:
    errors = [
        {
            "message": p.message,
            "extensions": {"code": p.code.value, "field": p.field[0] if p.field else None},
        }
        for p in problems
    ]
    return JSONResponse({"errors": errors}, 400)


def _error_query(problem: Problem) -> dict[str, str]:
    field = str(problem.field[0]) if problem.field else problem.code.value.lower()
    return {"error": field, "message": problem.message}


def _redirect(url: str, params: dict[str, str]) -> Response:
    """303 to ``url`` (so the browser GETs it), ``params`` added to its query."""
    if params:
        parts = urlsplit(url)
        query = "&".join(q for q in (parts.query, urlencode(params)) if q)
        url = urlunsplit(parts._replace(query=query))
    return RedirectResponse(url, status_code=303)
