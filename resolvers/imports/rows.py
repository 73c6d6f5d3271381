"""What an import reads: a file's records (CSV or NDJSON, in pieces), their columns as lead
fields, and each row validated with createLead's rules into the columns of a lead."""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from pydantic import ValidationError

from db.models import LeadCreate
from db.models.fields import EMAIL_MAX, EXTERNAL_ID_MAX, EXTERNAL_IDS_MAX, SYSTEM_MAX
from db.models.imports import ImportFormat
from db.models.keys import set_phone_region
from db.repositories import LeadRepository
from resolvers.errors import UserErrorCode, problems_from


def _key(name: str) -> str:
    """A column's name as it is matched: case and separators do not count."""
    return "".join(ch for ch in name.casefold() if ch not in "_- ")


# Column (any case, camelCase or snake_case) → lead field; everything CreateLeadInput takes.
COLUMNS = {
    _key(name): column
    for name, column in {
        "email": "email",
        "firstName": "first_name",
        "lastName": "last_name",
        "phone": "phone",
        "company": "company",
        "city": "city",
        "state": "state",
        "postalCode": "postal_code",
        "source": "source",
        "notes": "notes",
        "status": "status",
        "score": "score",
        "metadata": "meta",
        "externalIds": "external_ids",
        "createdAt": "created_at",
        # Other CRMs' export headers (HubSpot's, Salesforce's), for the same fields.
        "emailAddress": "email",
        "phoneNumber": "phone",
        "companyName": "company",
        "state/region": "state",
        "stateOrProvince": "state",
        "province": "state",
        "zip": "postal_code",
        "zipCode": "postal_code",
        "postcode": "postal_code",
        "leadSource": "source",
        "description": "notes",
    }.items()
}
# A column named "externalIds.<system>" (or "externalId.<system>") holds that system's id:
# "externalIds.hubspot" for HubSpot's Record ID.
_EXTERNAL_ID_COLUMN = ("externalids.", "externalid.")
# The export's read-only columns: neither fields nor metadata.
IGNORED = frozenset(_key(n) for n in ("id", "name", "updatedAt", "convertedAt"))
# A lead field's name in errors: the camelCase input name.
FIELD_NAMES = {column: name for name, column in (
    ("email", "email"), ("firstName", "first_name"), ("lastName", "last_name"),
    ("phone", "phone"), ("company", "company"), ("city", "city"), ("state", "state"),
    ("postalCode", "postal_code"), ("source", "source"), ("notes", "notes"),
    ("status", "status"), ("score", "score"), ("metadata", "meta"),
    ("externalIds", "external_ids"), ("createdAt", "created_at"),
)}  # fmt: skip


class Refused(Exception):
    """A body that is not what its Content-Type says: answered 400, no job."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TooLarge(Refused):
    """A body over IMPORT_MAX_BYTES: answered 413, no job."""


# ------------------------------------------------------------------ records


class Splitter:
    """Cuts a body that arrives in pieces into whole records (a CSV record's quoted field may
    hold line breaks: a line ends a record only when the record's quotes are balanced), with
    an incremental UTF-8 decoder that drops a leading BOM."""

    def __init__(self, fmt: ImportFormat) -> None:
        self.csv = fmt is ImportFormat.CSV
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
        self.carry = ""  # a line not ended yet
        self.pending: list[str] = []  # a CSV record's lines so far
        self.quotes = 0

    def feed(self, data: bytes, final: bool = False) -> list[str]:
        """The records completed by ``data`` (the last piece when ``final``); raises
        UnicodeDecodeError for bytes that are not UTF-8."""
        text = self.carry + self.decoder.decode(data, final)
        lines = text.split("\n")
        self.carry = "" if final else lines.pop()
        if final and lines and lines[-1] == "":
            lines.pop()
        if not self.csv:
            return lines
        out = []
        pending, quotes = self.pending, self.quotes
        for line in lines:
            pending.append(line)
            quotes += line.count('"')
            if not quotes % 2:
                out.append("\n".join(pending) if len(pending) > 1 else line)
                pending, quotes = [], 0
        if final and pending:  # an unterminated quoted field: the csv module says so
            out.append("\n".join(pending))
            pending, quotes = [], 0
        self.pending, self.quotes = pending, quotes
        return out


def blank(record: str) -> bool:
    return not record.strip()


def csv_fields(record: str) -> list[str]:
    """One CSV record's fields; csv.Error when it is malformed."""
    return next(csv.reader([record]), [])


@dataclass(frozen=True)
class Header:
    """Where each column of a CSV file goes: a lead field, a metadata key, or nowhere."""

    fields: tuple[tuple[int, str], ...]
    extras: tuple[tuple[int, str], ...]
    systems: tuple[tuple[int, str], ...] = ()  # externalIds.<system> columns: (n, system)

    @classmethod
    def parse(cls, names: Sequence[str]) -> Header:
        fields, extras, systems = [], [], []
        for n, name in enumerate(names):
            key = _key(name.strip())
            prefix = next((p for p in _EXTERNAL_ID_COLUMN if key.startswith(p)), None)
            if key in COLUMNS:
                fields.append((n, COLUMNS[key]))
            elif prefix is not None and len(key) > len(prefix):
                systems.append((n, name.strip()[name.strip().index(".") + 1 :].strip()))
            elif key and key not in IGNORED:
                extras.append((n, name.strip()))
        return cls(tuple(fields), tuple(extras), tuple(systems))

    @property
    def has_email(self) -> bool:
        return any(column == "email" for _, column in self.fields)


# ------------------------------------------------------------------ worker processes


def worker_started(phone_region: str, parent: int) -> None:
    """A validating worker process's start: the parent's phone region, and an exit as soon as
    the parent is gone (one killed outright leaves its pool's workers waiting for work)."""
    set_phone_region(phone_region)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


# ------------------------------------------------------------------ rows


@dataclass
class Prepared:
    """A valid row: the lead's columns (derived ones too) and what the row gave."""

    row: int
    values: dict[str, Any]
    given: frozenset[str]
    external_ids: list[dict[str, str]]
    pairs: list[tuple[str, str]]  # (system key, id)
    created_at: datetime | None


@dataclass
class Batch:
    """Rows read in file order: those valid, and each invalid one's errors."""

    rows: list[Prepared] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    failed: int = 0
    last_row: int = 0

    def fail(self, row: int, problems: list[dict[str, Any]]) -> None:
        self.failed += 1
        self.errors.extend({"row": row, **p} for p in problems)


def _problem(
    field_: str | None, message: str, code: UserErrorCode = UserErrorCode.INVALID
) -> dict[str, Any]:
    return {"field": field_, "message": message, "code": code.value}


def _metadata(value: Any, extras: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """The row's metadata (JSON text in CSV) merged with its unknown columns."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None, [_problem("metadata", "Metadata must be a JSON object.")]
    if value is not None and not isinstance(value, dict):
        # LeadCreate says it with its own message.
        return value, []
    return ({**(value or {}), **extras} or None), []


def _external_ids(value: Any) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """[{system, id}] from a JSON array (text in CSV); at most one id per system."""
    where = "externalIds"
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = ...
    if not isinstance(value, list) or not all(
        isinstance(item, dict)
        and set(item) == {"system", "id"}
        and isinstance(item["system"], str)
        and isinstance(item["id"], str)
        for item in value
    ):
        message = 'External IDs must be a JSON array of {"system", "id"} objects.'
        return [], [_problem(where, message)]
    if len(value) > EXTERNAL_IDS_MAX:
        return [], [_problem(where, f"At most {EXTERNAL_IDS_MAX} external IDs per lead.")]
    out, problems, systems = [], [], set()
    for item in value:
        system, id_ = item["system"].strip(), item["id"].strip()
        if not system or not id_:
            problems.append(
                _problem(where, "An external ID needs a system and an id.", UserErrorCode.REQUIRED)
            )
        elif len(system) > SYSTEM_MAX or len(id_) > EXTERNAL_ID_MAX:
            problems.append(
                _problem(
                    where,
                    f"A system is at most {SYSTEM_MAX} characters, an id at most "
                    f"{EXTERNAL_ID_MAX}.",
                )
            )
        elif system.casefold() in systems:
            problems.append(_problem(where, f"Two ids of the system {system}: give one."))
        else:
            systems.add(system.casefold())
            out.append({"system": system, "id": id_})
    return out, problems


def _created_at(value: Any) -> tuple[datetime | None, list[dict[str, Any]]]:
    if value is None:
        return None, []
    try:
        if not isinstance(value, str):
            raise ValueError
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        return None, [_problem("createdAt", "createdAt must be an ISO 8601 date and time.")]
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)), []


# createLead's email check (email_validator) costs about half of a row's validation. An
# address in this plain ASCII shape (atoms of common characters, a domain of LDH labels
# without "--", an alphabetic top-level domain that is not a special-use name) is one it
# accepts as it is but for the domain's case; any other address, and any row that fails, goes
# through LeadCreate itself, so its errors are createLead's own.
_PLAIN_EMAIL = re.compile(
    r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
)
_SPECIAL_USE = frozenset(SPECIAL_USE_DOMAIN_NAMES)


def plain_email(value: Any) -> str | None:
    """The address as createLead would store it, when it is plainly valid; else None."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    match = _PLAIN_EMAIL.fullmatch(value)
    if match is None or len(value) > EMAIL_MAX or value.index("@") > 64:
        return None
    domain = match.group(1).lower()
    local = value[: value.index("@")]
    if "--" in domain or domain.rsplit(".", 1)[1] in _SPECIAL_USE:
        return None
    if local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:  # postmaster, abuse...: lowercased
        return None
    return f"{local}@{domain}"


class _PlainEmailLead(LeadCreate):
    """LeadCreate for a row whose email ``plain_email`` has checked already."""

    email: str  # type: ignore[assignment]


# A LeadRepository only for its derived columns (pure functions of the values): no connection.
_KEYS = LeadRepository(None, 0)  # type: ignore[arg-type]


def derived(values: dict[str, Any]) -> dict[str, Any]:
    """A lead's derived columns (its *_key columns and search text) for these values."""
    return _KEYS.derived(values)


def prepare(row: int, given: dict[str, Any], extras: dict[str, Any], batch: Batch) -> None:
    """Validates one row (lead fields → values, None for an empty cell; unknown columns →
    ``extras``) into ``batch``: createLead's rules, messages and codes, field names camelCase."""
    problems: list[dict[str, Any]] = []
    values = {k: v for k, v in given.items() if v is not None}
    meta, bad = _metadata(values.pop("meta", None), extras)
    problems += bad
    if meta is not None:
        values["meta"] = meta
    external_ids: list[dict[str, str]] = []
    if "external_ids" in values:
        external_ids, bad = _external_ids(values.pop("external_ids"))
        problems += bad
    created_at, bad = _created_at(values.pop("created_at", None))
    problems += bad
    data: LeadCreate | None = None
    email = plain_email(values.get("email"))
    if email is not None:
        try:
            data = _PlainEmailLead.model_validate(values | {"email": email})
        except ValidationError:
            data = None  # LeadCreate says why, below
    try:
        if data is None:
            data = LeadCreate.model_validate(values)
    except ValidationError as exc:
        problems[:0] = [
            _problem(".".join(p.field or ()) or None, p.message, p.code)
            for p in problems_from(exc, prefix=())
        ]
        data = None
    if problems or data is None:
        batch.fail(row, problems)
        return
    lead = data.model_dump()
    lead["status"] = lead["status"].value
    lead["meta"] = lead["meta"] or {}
    lead["external_ids"] = external_ids
    lead |= derived(lead)
    batch.rows.append(
        Prepared(
            row=row,
            values=lead,
            given=frozenset(values) | ({"external_ids"} if external_ids else set()),
            external_ids=external_ids,
            pairs=[(e["system"].casefold(), e["id"]) for e in external_ids],
            created_at=created_at,
        )
    )


def prepare_csv(header: Header, records: Sequence[tuple[int, str]]) -> Batch:
    """A batch of CSV records (row number, text) validated."""
    batch = Batch()
    for row, record in records:
        batch.last_row = row
        try:
            cells = csv_fields(record)
        except csv.Error as exc:
            batch.fail(row, [_problem(None, f"This row is not valid CSV: {exc}.")])
            continue
        width = len(cells)
        given = {f: (cells[n] if n < width and cells[n] != "" else None) for n, f in header.fields}
        extras = {name: cells[n] for n, name in header.extras if n < width and cells[n] != ""}
        if header.systems:
            _add_system_columns(given, header, cells)
        prepare(row, given, extras, batch)
    return batch


def _add_system_columns(given: dict[str, Any], header: Header, cells: list[str]) -> None:
    """The ids of the externalIds.<system> columns, after those of an externalIds column."""
    ids = [
        {"system": system, "id": cells[n]}
        for n, system in header.systems
        if n < len(cells) and cells[n].strip()
    ]
    if not ids:
        return
    listed = given.get("external_ids")
    if listed is None:
        given["external_ids"] = ids
        return
    try:
        earlier = json.loads(listed)
    except ValueError:
        return  # the externalIds cell's own error is told
    given["external_ids"] = earlier + ids if isinstance(earlier, list) else listed


def prepare_ndjson(records: Sequence[tuple[int, str]]) -> Batch:
    """A batch of NDJSON lines (row number, text) validated."""
    batch = Batch()
    for row, record in records:
        batch.last_row = row
        try:
            item = json.loads(record)
        except ValueError as exc:
            batch.fail(row, [_problem(None, f"This line is not valid JSON: {exc}.")])
            continue
        if not isinstance(item, dict):
            batch.fail(row, [_problem(None, "This line is not a JSON object.")])
            continue
        given: dict[str, Any] = {}
        extras: dict[str, Any] = {}
        for name, value in item.items():
            key = _key(name)
            if key in COLUMNS:
                given[COLUMNS[key]] = value
            elif key not in IGNORED and value is not None:
                extras[name] = value
        prepare(row, given, extras, batch)
    return batch
