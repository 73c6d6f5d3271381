"""Web forms: ADMINs create, list and delete them; ``submit`` turns a post to /forms/{key}
(anonymous: the key is the credential) into a lead of the form's workspace.

A post's fields are named as CreateLeadInput's (camelCase or snake_case); the form's source
is the lead's, and every other field (utm_source, a question the page adds...) goes into the
lead's metadata. Empty fields count as left out: a page's unfilled inputs are posted empty.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row

from db import ratelimit
from db.engine import Database
from db.models import Role
from db.models.intake import LeadFormCreate, normal_origin
from db.repositories.forms import FormRepository, form_by_key
from db.types import utcnow
from resolvers import leads
from resolvers.auth.common import client_address
from resolvers.errors import Problem, UserErrorCode, camel, not_found, validated
from resolvers.ids import pk_for_mutation
from resolvers.outcome import Abort, Outcome
from resolvers.principal import Principal

if TYPE_CHECKING:
    from resolvers.context import Context

FORM = "LeadForm"
# Filled in by bots only: the embedding snippet hides it from people (README).
HONEYPOT = "_gotcha"
RATE_WINDOW = timedelta(minutes=1)
# The lead fields a post may set, by their snake_case names (LeadCreate's). Not status and
# score: they are the team's judgement, not the visitor's (posted, they are kept as metadata).
LEAD_FIELDS = frozenset(
    {
        *("email", "first_name", "last_name", "phone", "company", "city", "state"),
        *("postal_code", "source", "notes"),
    }
)
# Both spellings of each: "firstName" and "first_name" name one field.
_FIELD_NAMES = {camel(name): name for name in LEAD_FIELDS} | {name: name for name in LEAD_FIELDS}
_METADATA = "metadata"


@dataclass
class FormOutcome:
    problems: list[Problem] = field(default_factory=list)
    form: Row[Any] | None = None
    deleted_id: int | None = None


# ------------------------------------------------------------------ the API (ADMIN)


async def forms(ctx: Context) -> list[Any]:
    """The workspace's forms, oldest first."""
    principal = ctx.require(Role.ADMIN)
    async with ctx.db.read() as conn:
        return await FormRepository(conn, principal.workspace_id).all()


async def create(ctx: Context, values: dict[str, Any]) -> FormOutcome:
    """A new form with a random key, unguessable: it is all a post needs."""
    principal = ctx.require(Role.ADMIN)
    data, problems = validated(LeadFormCreate, values)
    if problems:
        return FormOutcome(problems=problems)
    row = {
        "name": data.name,
        "key": secrets.token_urlsafe(24),  # 192 bits, 32 characters
        "source": data.source,
        # Each once, in the order given.
        "allowed_origins": list(dict.fromkeys(data.allowed_origins or ())),
        "redirect_url": data.redirect_url,
        "created_by_user_id": principal.user_id,
        "created_by_api_key_id": principal.api_key_id,
    }
    async with ctx.db.write() as conn:
        form = await FormRepository(conn, principal.workspace_id).insert(row)
    ctx.clear_loaders()
    return FormOutcome(form=form)


async def delete(ctx: Context, id_: str) -> FormOutcome:
    """Deletes the form: posts to its key are answered 404 from now on."""
    principal = ctx.require(Role.ADMIN)
    pk, problem = pk_for_mutation(id_, FORM, ["id"])
    if pk is None:
        return FormOutcome(problems=[problem] if problem else [])
    try:
        async with ctx.db.write() as conn:
            if not await FormRepository(conn, principal.workspace_id).remove(pk):
                raise Abort([not_found("lead form")])
    except Abort as abort:
        return FormOutcome(problems=abort.problems)
    ctx.clear_loaders()
    return FormOutcome(deleted_id=pk)


# ------------------------------------------------------------------ posts to /forms/{key}


async def form_for_key(db: Database, key: str) -> Row[Any] | None:
    """The form a post names, or None (no such key, or the form was deleted)."""
    async with db.read() as conn:
        return await form_by_key(conn, key)


def submitter(form: Row[Any]) -> Principal:
    """Who writes a post's lead: a MEMBER of the form's workspace that is no user or key, so
    the lead's createdBy stays null."""
    return Principal(workspace_id=form.workspace_id, role=Role.MEMBER)


def allowed_origin(form: Row[Any], origin: str | None) -> str | None:
    """The request's Origin when the form allows it (CORS), else None."""
    if not origin:
        return None
    return origin if normal_origin(origin) in form.allowed_origins else None


@dataclass
class Submission:
    """What became of a post: the lead written, or why not."""

    problems: list[Problem] = field(default_factory=list)
    lead: Row[Any] | None = None
    # Answered as written, yet nothing was: the honeypot was filled.
    ignored: bool = False
    # Seconds until this address may post again, when it posted too often.
    retry_after: int | None = None


async def submit(ctx: Context, form: Row[Any], fields: Mapping[str, Any]) -> Submission:
    """A post's ``fields`` (a field posted several times: a list) as a lead of the form's
    workspace, upserted by email. Problems name the fields as posted; nothing is written then.
    ``ctx``'s principal is ``submitter(form)``."""
    if retry := await _rate_limited(ctx):
        return Submission(retry_after=retry)
    if _filled(fields.get(HONEYPOT)):
        return Submission(ignored=True)
    if bad := _bad_text(fields):
        return Submission(problems=[bad])
    values, posted, problems = _lead_values(form, fields)
    if problems:
        return Submission(problems=problems)
    outcome = await _write_lead(ctx, values)
    if outcome.problems:
        return Submission(problems=[_as_posted(p, posted) for p in outcome.problems])
    return Submission(lead=outcome.lead)


async def _write_lead(ctx: Context, values: dict[str, Any]) -> Outcome:
    # The same email posted again updates its lead with the fields posted; the metadata posted
    # is added to the lead's (a first touch's utm_* stay unless posted again).
    return await leads.upsert_lead(ctx, values, match_on="EMAIL", add_metadata=True)


async def _rate_limited(ctx: Context) -> int | None:
    """Counts a post from the client's address, over every form; the seconds to wait when
    past FORM_RATE_LIMIT_PER_MINUTE."""
    # Bounded like the session's ip column: a trusted proxy's X-Forwarded-For could be long.
    key = f"form:ip:{client_address(ctx)[:64]}"
    limit = ctx.settings.form_rate_limit_per_minute
    async with ctx.db.write() as conn:
        return await ratelimit.hit(conn, key, limit, RATE_WINDOW, utcnow())


def _filled(value: Any) -> bool:
    return value not in (None, "", [])


def _lead_values(
    form: Row[Any], fields: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str], list[Problem]]:
    """(CreateLeadInput's values, each one's field name as posted, problems)."""
    values: dict[str, Any] = {}
    posted: dict[str, str] = {}
    meta: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, value in fields.items():
        if name == HONEYPOT or not _filled(value):
            continue
        target = _FIELD_NAMES.get(name)
        if target is None:
            if name == _METADATA and isinstance(value, dict):
                meta = {**value, **meta}  # the post's own fields win
            else:
                meta[name] = value
        elif target in posted:
            problems.append(
                Problem(
                    f"{posted[target]} and {name} name the same field: send one of them.",
                    UserErrorCode.INVALID,
                    [name],
                )
            )
        else:
            values[target], posted[target] = value, name
    if form.source is not None:
        if "source" in values:  # kept, but the form says where its leads come from
            meta[posted["source"]] = values["source"]
        values["source"] = form.source
    if meta:
        values["meta"] = meta
    return values, posted, problems


def _as_posted(problem: Problem, posted: dict[str, str]) -> Problem:
    """A problem of CreateLeadInput's path (["input", "firstName"]) under the posted name."""
    path = list(problem.field or ())[1:]
    if not path:
        return Problem(problem.message, problem.code, None, problem.retry_after)
    name = path[0]
    snake = _FIELD_NAMES.get(name, name)
    head = posted.get(snake, _METADATA if name == _METADATA else name)
    return Problem(problem.message, problem.code, [head, *path[1:]], problem.retry_after)


def _bad_text(fields: Mapping[str, Any]) -> Problem | None:
    """A field whose name or text holds NUL or an unpaired surrogate (JSON's \\u escapes make
    both): one engine can store neither, and a silently changed value is worse than an error."""
    stack: list[tuple[str, Any]] = [(name, (name, value)) for name, value in fields.items()]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or not _encodable(item):
                return Problem(
                    "The text holds a NUL character or an unpaired UTF-16 surrogate, which "
                    "cannot be stored.",
                    UserErrorCode.INVALID,
                    [where],
                )
        elif isinstance(item, dict):
            stack.extend((where, part) for pair in item.items() for part in pair)
        elif isinstance(item, list | tuple):
            stack.extend((where, part) for part in item)
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
