"""Keyset (cursor) pagination: argument checks, opaque cursors, and the page itself.

A cursor holds the order it was made under, the sort value and the id of its row. The page
query asks for rows strictly past (value, id) in the scan direction, ordered by (value, id):
ties on the sort value are broken by id, so pages never repeat or skip a row, and no OFFSET is
ever used. ``last``/``before`` scan the same index backwards and reverse the slice.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Row

from db.engine import Database
from db.models.fields import ID_MAX, INT_MAX, INT_MIN
from db.repositories import FilterSpec, Keyset, Repository
from resolvers.errors import BadInput

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_MAX_CURSOR_LENGTH = 1024


def _is_int(value: Any) -> bool:
    """An int an integer column can hold (and so every database can compare it with)."""
    return type(value) is int and INT_MIN <= value <= INT_MAX


def _is_text(value: Any) -> bool:
    """A str a text column can hold: JSON can carry lone surrogates, which UTF-8 cannot, and
    NUL, which not every database's text can hold."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


_VALUE_CHECKS = {
    "int": _is_int,
    "str": _is_text,
}


@dataclass(frozen=True)
class SortKey:
    """An orderBy field: its column and the type of value its cursors carry."""

    column: str
    kind: Literal["datetime", "int", "str"]

    def direction(self, given: str | None) -> str:
        """``given``, or when it is left out the natural one: text (names, emails) A to Z,
        dates and numbers newest and highest first."""
        return given or ("ASC" if self.kind == "str" else "DESC")


@dataclass(frozen=True)
class PageArgs:
    limit: int
    backward: bool
    start: Keyset | None


@dataclass
class Page:
    rows: list[Row[Any]]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool
    count: Callable[[], Awaitable[int]]
    # The filter the page and its count are under (a repository spec): counts over it.
    spec: FilterSpec | None = None


def _size(value: int, argument: str) -> int:
    if value < 0:
        raise BadInput(f"Argument '{argument}' must not be negative.", argument)
    if value > MAX_PAGE_SIZE:
        raise BadInput(
            f"Argument '{argument}' must be at most {MAX_PAGE_SIZE} (got {value}).", argument
        )
    return value


def encode_cursor(order: str, value: Any, id_: int) -> str:
    """base64url of the JSON ``[order, value, id]`` (``order`` is ours: ASCII, nothing to
    escape). Written out for the sort values pages use, byte for byte what json.dumps gives:
    one per row of every page, it was a tenth of a page's cost."""
    if isinstance(value, datetime):
        text = f'"{value.isoformat()}"'
    elif type(value) is int:
        text = str(value)
    else:
        text = json.dumps(value)
    raw = f'["{order}",{text},{int(id_)}]'
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, argument: str, order: str, sort: SortKey) -> Keyset:
    """The keyset a cursor points at, or BadInput naming the argument."""
    malformed = BadInput(f"Argument '{argument}' is not a valid cursor.", argument)
    if len(cursor) > _MAX_CURSOR_LENGTH:
        raise malformed
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_under, value, id_ = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise malformed from None
    if not isinstance(made_under, str) or not (_is_int(id_) and id_ <= ID_MAX):
        raise malformed
    if made_under != order:
        raise BadInput(
            f"Argument '{argument}' is a cursor made under a different orderBy "
            f"({made_under}); request the first page again with the current orderBy.",
            argument,
        )
    if sort.kind == "datetime":
        try:
            value = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise malformed from None
        if value.tzinfo is None:
            raise malformed
        try:
            # Compared in UTC; near datetime's limits, the offset can push it out of range.
            value = value.astimezone(UTC)
        except OverflowError:
            raise malformed from None
    elif not _VALUE_CHECKS[sort.kind](value):
        raise malformed
    return Keyset(value=value, id=id_)


# An event's cursor is its seq alone: the same in every list of the log (events, a record's
# history, a subscription's resume point), and a later event's sorts after an earlier one's.
_SEQ_CURSOR = "SEQ"
_SEQ_MAX = 2**63 - 1


def encode_seq_cursor(seq: int) -> str:
    """base64url of the JSON ``["SEQ", seq]``."""
    raw = f'["{_SEQ_CURSOR}",{int(seq)}]'
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_seq_cursor(cursor: str, argument: str) -> Keyset:
    """The keyset (the seq as its value) an event cursor points at, or BadInput."""
    malformed = BadInput(f"Argument '{argument}' is not a valid cursor.", argument)
    if len(cursor) > _MAX_CURSOR_LENGTH:
        raise malformed
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, seq = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise malformed from None
    if kind != _SEQ_CURSOR or type(seq) is not int or not 0 <= seq <= _SEQ_MAX:
        raise malformed
    return Keyset(value=seq, id=0)


def page_args(
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    order: str,
    sort: SortKey,
    decode: Callable[[str, str], Keyset] | None = None,
) -> PageArgs:
    """Checks the four connection arguments; first/after and last/before do not mix. A
    cursor is read by ``decode(cursor, argument)``, ``decode_cursor`` under ``order`` unless
    given."""
    if decode is None:

        def decode(cursor: str, argument: str) -> Keyset:
            return decode_cursor(cursor, argument, order, sort)

    if first is not None and last is not None:
        raise BadInput("Pass either 'first' or 'last', not both.", "last")
    if after is not None and before is not None:
        raise BadInput("Pass either 'after' or 'before', not both.", "before")
    if first is not None and before is not None:
        raise BadInput("'before' pages backwards: use it with 'last', not 'first'.", "before")
    if last is not None and after is not None:
        raise BadInput("'after' pages forwards: use it with 'first', not 'last'.", "after")
    backward = last is not None or before is not None
    if backward:
        limit = DEFAULT_PAGE_SIZE if last is None else _size(last, "last")
        start = None if before is None else decode(before, "before")
    else:
        limit = DEFAULT_PAGE_SIZE if first is None else _size(first, "first")
        start = None if after is None else decode(after, "after")
    return PageArgs(limit=limit, backward=backward, start=start)


async def fetch_page(
    db: Database,
    repository: Callable[[Any], Repository],
    spec: FilterSpec | None,
    sort: SortKey,
    descending: bool,
    order: str,
    args: PageArgs,
    columns: Sequence[str] | None = None,
    cursor: Callable[[Any], str] | None = None,
) -> Page:
    """One page of rows (only ``columns`` when given); the count runs only if the caller
    asks for it. Each row's cursor is ``cursor(row)``, ``encode_cursor`` under ``order``
    unless given."""
    rows: list[Row[Any]] = []
    if args.limit:
        async with db.read() as conn:
            rows = await repository(conn).page(
                spec,
                sort.column,
                descending != args.backward,
                args.start,
                args.limit + 1,
                columns,
            )

    async def count() -> int:
        async with db.read() as conn:
            return await repository(conn).count(spec)

    if cursor is None:

        def cursor(r: Any) -> str:
            return encode_cursor(order, getattr(r, sort.column), r.id)

    page = page_of(rows, args, cursor, count)
    page.spec = spec
    return page


def page_of(
    rows: list[Any],
    args: PageArgs,
    cursor: Callable[[Any], str],
    count: Callable[[], Awaitable[int]],
) -> Page:
    """The page ``args`` asked for, from up to ``args.limit + 1`` rows read in its direction
    (the extra one says there is more)."""
    more = len(rows) > args.limit
    rows = rows[: args.limit]
    if args.backward:
        rows.reverse()
    return Page(
        rows=rows,
        cursors=[cursor(r) for r in rows],
        has_next_page=args.start is not None if args.backward else more,
        has_previous_page=more if args.backward else args.start is not None,
        count=count,
    )
