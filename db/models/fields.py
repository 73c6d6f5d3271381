"""Field types shared by the Create/Update models: trimming, limits and value checks.

Errors carry a pydantic error type that the resolvers map to a UserErrorCode: ``blank`` (and
pydantic's own ``missing``) become REQUIRED, everything else INVALID.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import pycountry
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from db.models.keys import region_key

# Integer columns are 32-bit on PostgreSQL (SQLite's are 64-bit, and its ids count up from 1
# as well), so no row on either engine holds a value outside this range, nor an id above it.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
ID_MAX = INT_MAX

# Column sizes, shared by the tables and the validation models.
EMAIL_MAX = 254
NAME_MAX = 100
PHONE_MAX = 50
COMPANY_MAX = 200
PLACE_MAX = 100
POSTAL_CODE_MAX = 20
SOURCE_MAX = 100
STREET_MAX = 200
NOTES_MAX = 10_000
METADATA_MAX_BYTES = 16 * 1024


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _blank_to_none(value: Any) -> Any:
    value = _strip(value)
    return None if value == "" else value


def required(value: Any) -> Any:
    """Trimmed text that may not be null or blank (a BeforeValidator)."""
    value = _strip(value)
    if value is None or value == "":
        raise PydanticCustomError("blank", "This field is required and cannot be blank.")
    return value


def _email(value: str) -> str:
    if len(value) > EMAIL_MAX:
        raise PydanticCustomError(
            "too_long", "Email must be at most {max} characters.", {"max": EMAIL_MAX}
        )
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise PydanticCustomError("email", "{reason}", {"reason": str(exc)}) from None


def _metadata(value: Any) -> Any:
    if value is None:
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError("not_object", "Metadata must be a JSON object.")
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > METADATA_MAX_BYTES:
        raise PydanticCustomError(
            "too_large",
            "Metadata must be at most {max} bytes of JSON (got {size}).",
            {"max": METADATA_MAX_BYTES, "size": size},
        )
    return value


def _country(value: str | None) -> str | None:
    if value is None:
        return None
    code = value.upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise PydanticCustomError(
            "country", "Country must be an ISO 3166-1 alpha-2 code, such as US or DE."
        )
    return code


Email = Annotated[str, BeforeValidator(required), AfterValidator(_email)]
RequiredName = Annotated[str, BeforeValidator(required), Field(max_length=NAME_MAX)]


def text(max_length: int) -> Any:
    """Optional text: trimmed, blank becomes null, at most ``max_length`` characters."""
    return Annotated[
        Annotated[str, StringConstraints(max_length=max_length)] | None,
        BeforeValidator(_blank_to_none),
    ]


def _not_null(cls: Any, value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("blank", "This field cannot be cleared.")
    return value


def cannot_clear(*names: str) -> Any:
    """An Update model's validator: these fields may be left out, but not set to null."""
    return field_validator(*names, mode="before")(_not_null)


Metadata = Annotated[dict[str, Any] | None, BeforeValidator(_metadata)]

# Outside systems' IDs: {system, id}, at most one per system (the system's case aside).
SYSTEM_MAX = 50
EXTERNAL_ID_MAX = 200
EXTERNAL_IDS_MAX = 20


class ExternalIdIn(TypedDict):
    """Validated as a dict (pydantic checks a TypedDict's fields and returns the dict)."""

    system: Annotated[str, BeforeValidator(required), Field(max_length=SYSTEM_MAX)]
    id: Annotated[str, BeforeValidator(required), Field(max_length=EXTERNAL_ID_MAX)]


def _one_per_system(value: list[ExternalIdIn] | None) -> list[ExternalIdIn] | None:
    seen: set[str] = set()
    for item in value or ():
        key = item["system"].casefold()
        if key in seen:
            raise PydanticCustomError(
                "duplicate_system",
                "At most one id per system: {system} is given twice.",
                {"system": item["system"]},
            )
        seen.add(key)
    return value


ExternalIds = Annotated[
    list[ExternalIdIn] | None,
    Field(max_length=EXTERNAL_IDS_MAX),
    AfterValidator(_one_per_system),
]


def with_external_ids(
    current: list[dict[str, str]], given: list[dict[str, str]]
) -> list[dict[str, str]]:
    """``current`` with the systems of ``given`` set to its ids; the other systems stay."""
    given_keys = {item["system"].casefold() for item in given}
    kept = [item for item in current if item["system"].casefold() not in given_keys]
    return kept + given


Country = Annotated[str | None, BeforeValidator(_blank_to_none), AfterValidator(_country)]
Score = Annotated[int, Field(ge=0, le=100)]


def fold(value: str | None) -> str:
    """The key a value is matched and sorted by: Unicode case-folded, '' for null."""
    return value.casefold() if value else ""


def full_name(first: str | None, last: str | None) -> str | None:
    """'first last', either part alone, or None when both are missing."""
    return " ".join(part for part in (first, last) if part) or None


def search_key(*values: str | None) -> str:
    """The text that `search` matches substrings in, one line per searchable value."""
    return "\n".join(fold(v) for v in values if v)


def person_keys(values: dict[str, Any]) -> dict[str, str]:
    """The derived columns of a row about a person (a lead, a client): case-folded email,
    name, city and state, and the text ``search`` matches."""
    name = full_name(values.get("first_name"), values.get("last_name"))
    return {
        "email_key": fold(values["email"]),
        "name_key": fold(name),
        "city_key": fold(values.get("city")),
        "state_key": region_key(values.get("state")),
        "search_key": search_key(name, values["email"], values.get("company")),
    }
