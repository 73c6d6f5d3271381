"""Database failures the API answers cleanly, told apart from the driver's exceptions here so
that no layer above ``db/`` needs to know which engine raised them."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy.exc import DBAPIError

# PostgreSQL's query_canceled: statement_timeout fired (or an operator cancelled the query).
_PG_QUERY_CANCELED = "57014"
# serialization_failure and deadlock_detected: PostgreSQL aborted the transaction so that another
# could go on; run again from the start, it will most likely succeed.
_PG_TRANSIENT = {"40001", "40P01"}
# What SQLite reports when our progress handler stops a statement past its deadline.
_SQLITE_INTERRUPT = "SQLITE_INTERRUPT"


class StatementTimeout(Exception):
    """A statement ran past ``DB_STATEMENT_TIMEOUT_MS`` and was cancelled; its transaction was
    rolled back and its connection went back to the pool."""

    message = "The database took too long to answer; try a narrower query."

    def __init__(self) -> None:
        super().__init__(self.message)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_statement_timeout(exc: DBAPIError) -> bool:
    """True when the driver error says the statement was cancelled for running too long."""
    for cause in _causes(exc.orig or exc):
        if getattr(cause, "sqlstate", None) == _PG_QUERY_CANCELED:
            return True
        if getattr(cause, "sqlite_errorname", None) == _SQLITE_INTERRUPT:
            return True
    return False


def is_transient_conflict(exc: DBAPIError) -> bool:
    """True when the transaction was aborted for a deadlock or a serialization conflict, so
    running it again from the start is safe and likely to succeed."""
    return any(getattr(c, "sqlstate", None) in _PG_TRANSIENT for c in _causes(exc.orig or exc))
