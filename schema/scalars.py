"""DateTime (ISO 8601, always UTC with offset and microseconds on output) and JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

__all__ = ["JSON", "DateTime", "JSONValue"]


def _serialize(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO 8601 string.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an ISO 8601 date-time, e.g. 2026-11-22T10:15:30+00:00."
        ) from None
    # A value without an offset is taken to be UTC, as every value we return is.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# Registered for ``datetime`` through StrawberryConfig.scalar_map (see schema/__init__.py).
DateTime = strawberry.scalar(
    name="DateTime",
    description='ISO 8601 date-time; always UTC on output: "2026-11-22T10:15:30.123456+00:00". '
    "Input without an offset is read as UTC.",
    serialize=_serialize,
    parse_value=_parse,
)


def _parse_json(value: Any) -> Any:
    # Python's json reads NaN and Infinity in request bodies, and a literal like 1e400 is inf:
    # none of them is JSON, and stored they would come back out as invalid JSON.
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ValueError("JSON numbers must be finite (no NaN or Infinity).") from None
    return value


# Strawberry's JSON scalar with an input check; registered for ``JSON`` through
# StrawberryConfig.scalar_map (see schema/__init__.py).
JSONValue = strawberry.scalar(
    name="JSON",
    description="The `JSON` scalar type represents JSON values as specified by "
    "[ECMA-404](https://ecma-international.org/wp-content/uploads/ECMA-404_2nd_edition_december_2017.pdf).",
    specified_by_url="https://ecma-international.org/wp-content/uploads/ECMA-404_2nd_edition_december_2017.pdf",
    serialize=lambda value: value,
    parse_value=_parse_json,
)
