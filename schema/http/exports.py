"""GET /exports/leads.csv|.ndjson and /exports/clients.csv|.ndjson: every record the list
field would return for the same ``filter`` and ``orderBy`` (JSON query parameters, read against
the served schema's input types exactly as GraphQL variables are), streamed a page at a time.

CSV: one header line of camelCase names, then one line per record (RFC 4180 quoting, CRLF);
null is an empty cell, metadata and externalIds compact JSON, dates as the DateTime scalar
writes them. Cells are written as stored: one that starts with = + - @ is not altered (see
README, "Exporting"), so that an export imports back unchanged. NDJSON: one JSON object per
line with the same keys, JSON values as values."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import strawberry
from graphql import GraphQLError, GraphQLInputType, Undefined
from graphql.pyutils import print_path_list
from graphql.utilities import coerce_input_value, validate_input_value
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from strawberry.types.arguments import convert_arguments

from resolvers import exports
from resolvers.clients import CLIENTS
from resolvers.errors import AuthError, BadInput, camel
from resolvers.ids import to_global_id
from resolvers.leads import LEADS
from resolvers.records import RecordType
from schema.http.common import auth_refused, context_for, refused, refused_all
from schema.limits import _long_list, too_long
from schema.text import spelled_path

Kind = Literal["text", "id", "json", "datetime"]
PARAMETERS = ("filter", "orderBy")
_BAD = "BAD_USER_INPUT"


@dataclass(frozen=True)
class Target:
    """What one record type exports: its resolvers, its list field and its columns (key in
    the table, how it is written), in the order of the file's header."""

    records: RecordType
    field: str  # the Query field whose filter and orderBy arguments the parameters are
    columns: tuple[tuple[str, Kind], ...]

    @property
    def header(self) -> list[str]:
        return [camel(key) for key, _ in self.columns]


def _columns(*keys: str) -> tuple[tuple[str, Kind], ...]:
    kinds: dict[str, Kind] = {
        "id": "id",
        "meta": "json",
        "external_ids": "json",
        "created_at": "datetime",
        "updated_at": "datetime",
        "converted_at": "datetime",
        "archived_at": "datetime",
    }
    return tuple((key, kinds.get(key, "text")) for key in keys)


LEAD_EXPORT = Target(
    records=LEADS,
    field="leads",
    columns=_columns(
        *("id", "email", "first_name", "last_name", "phone", "company", "city", "state"),
        *("postal_code", "source", "notes", "status", "score", "meta", "external_ids"),
        *("created_at", "updated_at", "converted_at"),
    ),
)
CLIENT_EXPORT = Target(
    records=CLIENTS,
    field="clients",
    columns=_columns(
        *("id", "email", "first_name", "last_name", "phone", "company", "street", "city"),
        *("state", "postal_code", "country", "status", "notes", "meta", "external_ids"),
        *("created_at", "updated_at", "archived_at"),
    ),
)


class ParameterError(Exception):
    """A query parameter we cannot read: each message is one error of the 400's body."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__(messages[0])
        self.messages = messages


class Arguments:
    """Reads the query parameters as the list field's ``filter`` and ``orderBy`` arguments:
    checked and coerced by graphql-core against the served schema's input types, then
    converted by Strawberry into the input objects the resolvers take, as for a request to
    /graphql. Errors are spelled as graphql-core spells a variable's."""

    def __init__(self, schema: strawberry.Schema, field: str) -> None:
        query = schema._schema.query_type
        strawberry_field = schema.get_field_for_type(field, "Query")
        assert query is not None and strawberry_field is not None
        self.types: dict[str, GraphQLInputType] = {
            name: query.fields[field].args[name].type for name in PARAMETERS
        }
        self.arguments = [
            argument
            for argument in strawberry_field.arguments
            if argument.python_name in ("filter", "order_by")
        ]
        self.scalars = schema.schema_converter.scalar_registry
        self.config = schema.config

    def read(self, params: Iterable[tuple[str, str]], max_list_size: int) -> dict[str, Any]:
        """``{"filter": ..., "order_by": ...}`` (the input objects, None when left out)."""
        given: dict[str, str] = {}
        for name, text in params:
            if name not in self.types:
                raise ParameterError(
                    [f"Unknown query parameter '{name}': use {' and '.join(PARAMETERS)}."]
                )
            if name in given:
                raise ParameterError([f"Query parameter '{name}' is given more than once."])
            given[name] = text
        coerced: dict[str, Any] = {}
        errors: list[str] = []
        for name, text in given.items():
            try:
                coerced[name] = self._coerced(name, text, max_list_size)
            except ParameterError as exc:
                errors += exc.messages
        if errors:
            raise ParameterError(errors)
        values = convert_arguments(coerced, self.arguments, self.scalars, self.config)
        return {"filter": values.get("filter"), "order_by": values.get("order_by")}

    def _coerced(self, name: str, text: str, max_list_size: int) -> Any:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParameterError(
                [f"Query parameter '{name}' is not valid JSON: {exc.msg} (at character {exc.pos})."]
            ) from None
        except RecursionError:
            raise ParameterError([f"Query parameter '{name}' is nested too deeply."]) from None
        except ValueError as exc:  # an integer past Python's digit limit
            raise ParameterError([f"Query parameter '{name}' is not valid JSON: {exc}."]) from None
        if found := _bad_text(value):
            path, problem = found
            raise ParameterError(
                [f"Invalid text at {spelled_path([name, *path])}: {problem}; leave it out."]
            )
        type_ = self.types[name]
        if found_list := _long_list(value, type_, max_list_size):
            path, count = found_list
            raise ParameterError(
                [
                    f"Query parameter '{name}' has invalid value{print_path_list(path)}: "
                    f"the list {too_long(count, max_list_size)}."
                ]
            )
        try:
            result = coerce_input_value(value, type_)
        except RecursionError:
            raise ParameterError([f"Query parameter '{name}' is nested too deeply."]) from None
        if result is not Undefined:
            return result
        messages: list[str] = []

        def on_error(error: GraphQLError, path: list[str | int]) -> None:
            messages.append(
                f"Query parameter '{name}' has invalid value{print_path_list(path)}: "
                f"{error.message}"
            )

        validate_input_value(value, type_, on_error)
        raise ParameterError(messages or [f"Query parameter '{name}' has an invalid value."])


def _bad_text(value: Any) -> tuple[list[str | int], str] | None:
    """(path, what is wrong) of the first string in ``value`` no database can store as text
    (NUL, an unpaired UTF-16 surrogate), or None."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        texts: list[tuple[str, list[str | int]]] = []
        if isinstance(item, str):
            texts = [(item, path)]
        elif isinstance(item, dict):
            texts = [(key, [*path, key]) for key in item]
            stack.extend((child, [*path, key]) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, [*path, n]) for n, child in enumerate(item))
        for text, where in texts:
            if "\x00" in text:
                return where, '"\\u0000" (NUL) cannot be stored'
            try:
                text.encode()
            except UnicodeEncodeError:
                return where, "an unpaired UTF-16 surrogate is not Unicode text"
    return None


# ------------------------------------------------------------------ encoding


def _datetime(value: datetime) -> str:
    # As the DateTime scalar writes it (schema/scalars.py): UTC, with microseconds. Columns
    # are read in UTC already (db/types.py), which spares most values the conversion.
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


class Encoder:
    """Turns pages of rows (tuples of the target's columns, first) into the file's bytes."""

    def __init__(self, target: Target) -> None:
        self.type_name = target.records.name
        self.width = len(target.columns)
        self.header = target.header
        kinds = [kind for _, kind in target.columns]
        self.ids = [n for n, kind in enumerate(kinds) if kind == "id"]
        self.jsons = [n for n, kind in enumerate(kinds) if kind == "json"]
        self.datetimes = [n for n, kind in enumerate(kinds) if kind == "datetime"]

    def values(self, row: Any, json_text: Callable[[Any], Any]) -> list[Any]:
        """The row's cells: IDs global, dates ISO 8601, JSON columns through ``json_text``."""
        cells = list(row[: self.width])
        for n in self.ids:
            cells[n] = to_global_id(self.type_name, cells[n])
        for n in self.jsons:
            if cells[n] is not None:
                cells[n] = json_text(cells[n])
        for n in self.datetimes:
            if cells[n] is not None:
                cells[n] = _datetime(cells[n])
        return cells


class CsvEncoder(Encoder):
    media_type = "text/csv; charset=utf-8"

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.buffer = io.StringIO()
        # None is written as an empty cell; every other value as str() of it.
        self.writer = csv.writer(self.buffer)

    def start(self) -> bytes:
        return self._written([self.header])

    def page(self, rows: list[Any]) -> bytes:
        return self._written(self.values(row, _json_text) for row in rows)

    def _written(self, lines: Iterable[list[Any]]) -> bytes:
        self.writer.writerows(lines)
        out = self.buffer.getvalue().encode()
        self.buffer.seek(0)
        self.buffer.truncate()
        return out


# A run of digits orjson may not read exactly: it reads integers past 64 bits as floats.
_LONG_NUMBER = re.compile(r"\d{19}")
_EMPTY = frozenset({"{}", "[]"})


def _json_text(value: Any) -> str:
    """Compact JSON text of a JSON column's value, or of its stored text (a str: neither
    metadata, an object, nor externalIds, a list, can be a bare string)."""
    if isinstance(value, str):
        if value in _EMPTY:  # most records' metadata and external IDs
            return value
        if _LONG_NUMBER.search(value):
            return json.dumps(json.loads(value), separators=(",", ":"), ensure_ascii=False)
        value = orjson.loads(value)
    return _dumps(value).decode()


def _dumps(value: Any) -> bytes:
    """orjson's compact JSON, or json's where orjson refuses (integers past 64 bits)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _json_value(value: Any) -> Any:
    """A JSON column's value for orjson: its stored text embedded as it is."""
    return orjson.Fragment(value) if isinstance(value, str) else value


class NdjsonEncoder(Encoder):
    media_type = "application/x-ndjson"

    def start(self) -> bytes:
        return b""

    def page(self, rows: list[Any]) -> bytes:
        header = self.header
        return b"".join(
            _dumps(dict(zip(header, self.values(row, _json_value), strict=True))) + b"\n"
            for row in rows
        )


ENCODERS: dict[str, Callable[[Target], CsvEncoder | NdjsonEncoder]] = {
    "csv": CsvEncoder,
    "ndjson": NdjsonEncoder,
}


# ------------------------------------------------------------------ the endpoint


def endpoint(
    schema: strawberry.Schema, target: Target, file_format: str
) -> Callable[[Request], Any]:
    """The handler of ``/exports/<records>.<format>``."""
    arguments = Arguments(schema, target.field)
    columns = [key for key, _ in target.columns]
    make_encoder = ENCODERS[file_format]

    async def handle(request: Request) -> Response:
        ctx = await context_for(request)
        try:
            exports.authorize(ctx)
            values = arguments.read(request.query_params.multi_items(), ctx.settings.max_list_size)
            export = exports.export(
                ctx, target.records, values["filter"], values["order_by"], columns
            )
        except AuthError as exc:
            return auth_refused(exc)
        except ParameterError as exc:
            return refused_all(400, exc.messages, _BAD)
        except BadInput as exc:
            extensions = {"argument": exc.argument} if exc.argument else None
            return refused(400, exc.message, _BAD, extensions=extensions)
        encoder = make_encoder(target)
        name = f"{target.field}-{datetime.now(UTC):%Y-%m-%d}.{file_format}"
        headers = {
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
        if request.method == "HEAD":
            # Starlette streams a body for HEAD too (the server drops it): the whole export
            # would be read for nothing.
            return Response(media_type=encoder.media_type, headers=headers)
        return StreamingResponse(
            _body(export, encoder), media_type=encoder.media_type, headers=headers
        )

    return handle


async def _body(
    export: exports.Export, encoder: CsvEncoder | NdjsonEncoder
) -> AsyncIterator[bytes]:
    if first := encoder.start():
        yield first
    async for rows in export.pages():
        yield encoder.page(rows)


def routes(schema: strawberry.Schema) -> list[Route]:
    """The export routes (GET), for the app's route list."""
    return [
        Route(
            f"/exports/{target.field}.{file_format}",
            endpoint(schema, target, file_format),
            methods=["GET"],
        )
        for target in (LEAD_EXPORT, CLIENT_EXPORT)
        for file_format in ENCODERS
    ]
