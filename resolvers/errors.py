"""Expected failures: user errors returned as data, and bad arguments raised as clean errors."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError


class UserErrorCode(enum.Enum):
    INVALID = "INVALID"
    REQUIRED = "REQUIRED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_CONVERTED = "ALREADY_CONVERTED"
    ALREADY_ARCHIVED = "ALREADY_ARCHIVED"
    NOT_ARCHIVED = "NOT_ARCHIVED"
    TAKEN = "TAKEN"
    RATE_LIMITED = "RATE_LIMITED"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    INVALID_CODE = "INVALID_CODE"
    EMAIL_NOT_VERIFIED = "EMAIL_NOT_VERIFIED"
    LAST_OWNER = "LAST_OWNER"
    FORBIDDEN = "FORBIDDEN"


@dataclass(frozen=True)
class Problem:
    """One thing the caller can fix; becomes a ``UserError`` in a mutation payload."""

    message: str
    code: UserErrorCode
    field: Sequence[str] | None = None
    retry_after: int | None = None  # seconds, with RATE_LIMITED


class BadInput(Exception):
    """An argument a query cannot work with; reported as a top-level error, message intact."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, argument: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.argument = argument


class AuthError(Exception):
    """No valid credentials (UNAUTHENTICATED) or a role without the right (FORBIDDEN)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Unavailable(Exception):
    """A service we depend on failed (the mail server): not the caller's doing, and worth
    trying again later. A top-level error with its code and the request id."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# Python attribute names whose GraphQL names are not simply their camelCase.
_GRAPHQL_NAMES = {"meta": "metadata"}


def camel(name: str) -> str:
    if name in _GRAPHQL_NAMES:
        return _GRAPHQL_NAMES[name]
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def problems_from(error: ValidationError, prefix: Sequence[str] = ("input",)) -> list[Problem]:
    """Every validation failure as a Problem on its GraphQL input path."""
    problems = []
    for item in error.errors(include_url=False):
        path = [*prefix, *(camel(str(part)) for part in item["loc"])]
        code = (
            UserErrorCode.REQUIRED
            if item["type"] in ("missing", "blank")
            else UserErrorCode.INVALID
        )
        problems.append(Problem(message=item["msg"], code=code, field=path))
    return problems


def validated(model: type[BaseModel], values: dict[str, Any]) -> tuple[Any, list[Problem]]:
    """(``values`` checked by ``model``, []), or (None, every problem found)."""
    try:
        return model.model_validate(values), []
    except ValidationError as exc:
        return None, problems_from(exc)


def not_found(kind: str, field: Sequence[str] = ("id",)) -> Problem:
    return Problem(f"No {kind} with this ID.", UserErrorCode.NOT_FOUND, list(field))
