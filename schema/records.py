"""What the GraphQL types of every record type (leads, clients, ...) share: the ``Record`` base
(global ID, audit fields, built from a row, a federation entity), the list field over a keyset
connection, and the filter and order input pieces. A domain declares its fields, its filter and
order inputs, its payloads and how a row's computed fields are made; see schema/leads.py."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from operator import itemgetter
from typing import Any, ClassVar, TypeVar

import strawberry
from cachetools import LRUCache
from sqlalchemy import Row
from strawberry.types.nodes import SelectedField

from resolvers.ids import to_global_id
from resolvers.pagination import SortKey
from resolvers.records import RecordType
from schema.auth import Audited
from schema.context import Info
from schema.relay import Connection, Node, SortDirection

R = TypeVar("R", bound="Record")

# Per Record class and row shape (its column names): the fields that from_row copies as they
# are, and a getter of their columns.
_COPIED: dict[tuple[type, tuple[str, ...]], tuple[tuple[str, ...], Callable[[Any], Any]]] = {}
# Python attribute names whose column is named otherwise (SQLModel reserves ``metadata``): the
# table's column key (a row names it ``metadata`` or ``meta``, depending on how it was read).
_COLUMNS = {"metadata": "meta"}


@strawberry.type
class Record(Node, Audited):
    """A stored record: its global ID, and who created and last changed it.

    ``from_row`` copies each column its fields are named after (``metadata`` from ``meta``);
    a domain returns the others (computed or converted) from ``computed``. ``records`` is the
    domain's resolvers (lookup for federation's ``_entities``)."""

    records: ClassVar[RecordType]
    # The columns computed() reads: fetched whatever the selection.
    computed_columns: ClassVar[tuple[str, ...]] = ()
    # Fields with a resolver (by Python name), and the columns it reads from the record.
    # A selected resolver field that is not listed here makes a page fetch every column.
    resolver_columns: ClassVar[dict[str, tuple[str, ...]]] = {
        "created_by": ("created_by_user_id", "created_by_api_key_id"),
        "updated_by": ("updated_by_user_id", "updated_by_api_key_id"),
        "history": (),  # its own global ID is enough
    }

    @classmethod
    def computed(cls, row: Row[Any]) -> dict[str, Any]:
        """The fields that are not a column of the same name."""
        return {}

    @classmethod
    def columns_for(cls, info: Info) -> frozenset[str] | None:
        """The columns a list field's selection reads from its records (``edges.node`` and
        ``nodes``, through fragments), or None for all of them. Directives are not looked at:
        a field under @skip/@include counts as selected, which fetches a column too many at
        worst. Cached per field node of the (cached) document."""
        node = info._raw_info.field_nodes[0]
        cached = _SELECTIONS.get(id(node))
        if cached is not None and cached[0] is node:
            return cached[1]
        fields = _field_columns(cls, info)
        wanted: set[str] | None = set(cls.computed_columns)
        for selection in _node_selections(info.selected_fields[0].selections):
            columns = fields.get(selection.name, _UNKNOWN) if selection.name != "__typename" else ()
            if columns is _UNKNOWN or columns is None:
                wanted = None
                break
            wanted.update(columns)  # type: ignore[union-attr]
        answer = frozenset(wanted) if wanted is not None else None
        _SELECTIONS[id(node)] = (node, answer)
        return answer

    @classmethod
    def from_row(cls: type[R], row: Row[Any]) -> R:
        values = cls.computed(row)
        columns = row._fields
        plan = _COPIED.get((cls, columns))
        if plan is None:
            skip = {"id", *values}
            found: list[tuple[str, int]] = []
            for f in dataclasses.fields(cls):  # type: ignore[arg-type]
                column = f.name if f.name in columns else _COLUMNS.get(f.name, f.name)
                # A page reads only the columns its selection needs (columns_for): the fields
                # of the others are left unset, and nothing reads them.
                if f.init and f.name not in skip and column in columns:
                    found.append((f.name, columns.index(column)))
            # By position: a Row's attribute access is a Python-level lookup per name, ~30
            # times slower than indexing the tuple it is.
            names = tuple(name for name, _ in found)
            where = [position for _, position in found]
            if len(where) > 1:
                getter: Callable[[Any], Any] = itemgetter(*where)
            else:
                getter = (lambda r: (r[where[0]],)) if where else (lambda r: ())
            plan = _COPIED[(cls, columns)] = (names, getter)
        names, getter = plan
        # Every init field is set here, so the dataclass's __init__ (keyword arguments checked
        # one by one, ~30 per row) is skipped: the instance's attributes are filled in one go.
        record = cls.__new__(cls)
        attributes = record.__dict__
        attributes.update(zip(names, getter(row), strict=True))
        attributes.update(values)
        attributes["id"] = to_global_id(cls.records.name, row.id)
        return record

    @classmethod
    def maybe(cls: type[R], row: Row[Any] | None) -> R | None:
        return cls.from_row(row) if row is not None else None

    @classmethod
    async def resolve_reference(cls: type[R], info: Info, id: strawberry.ID) -> R | None:
        return cls.maybe(await cls.records.get(info.context, id))


# Per list field node (of a cached document): the node itself, and the columns its selection reads.
_SELECTIONS: LRUCache[int, tuple[Any, frozenset[str] | None]] = LRUCache(maxsize=4096)
# Per Record class: each GraphQL field name and the columns it reads (None: not known).
_FIELD_COLUMNS: dict[type, dict[str, tuple[str, ...] | None]] = {}
_UNKNOWN: Any = object()


def _field_columns(cls: type[Record], info: Info) -> dict[str, tuple[str, ...] | None]:
    known = _FIELD_COLUMNS.get(cls)
    if known is not None:
        return known
    table = cls.records.repository.table  # type: ignore[attr-defined]
    converter = info.schema.config.name_converter
    known = {}
    for field in cls.__strawberry_definition__.fields:  # type: ignore[attr-defined]
        name = converter.get_graphql_name(field)
        python = field.python_name
        if field.base_resolver is not None:
            known[name] = cls.resolver_columns.get(python)
        elif python == "id":
            known[name] = ("id",)
        else:
            key = _COLUMNS.get(python, python)
            # Not a column: computed in from_row from computed_columns, fetched anyway.
            known[name] = (key,) if key in table.c else ()
    _FIELD_COLUMNS[cls] = known
    return known


def _node_selections(selections: list[Any]) -> Iterator[Any]:
    """The fields selected on the records of a connection: under ``edges { node }`` and
    ``nodes``, fragments opened."""
    for selection in _opened(selections):
        if selection.name == "edges":
            for edge_field in _opened(selection.selections):
                if edge_field.name == "node":
                    yield from _opened(edge_field.selections)
        elif selection.name == "nodes":
            yield from _opened(selection.selections)


def _opened(selections: list[Any]) -> Iterator[Any]:
    """The fields among ``selections``, those of fragments (spread or inline) included."""
    for selection in selections:
        if isinstance(selection, SelectedField):
            yield selection
        else:
            yield from _opened(selection.selections)


def record_field(node: type[Record]) -> Any:
    """The lookup field of a record type: ``lead(id: ID!): Lead``, null when not found."""

    async def resolve(self: Any, info: Info, id: strawberry.ID) -> Any:
        return node.maybe(await node.records.get(info.context, id))

    resolve.__annotations__.update(info=Info, id=strawberry.ID, **{"return": node | None})
    return strawberry.field(resolve)


def connection_field(
    node: type[Record],
    filter_type: type,
    order_type: type,
    description: str,
    connection: Any = None,
) -> Any:
    """The list field of a record type: ``leads(first, after, last, before, filter,
    orderBy): LeadConnection!``, paged by its resolvers (``RecordType.page``). ``connection``:
    a subclass of ``Connection[node]`` with fields of its own (``LeadConnection.aggregate``)."""
    connection = connection or Connection[node]  # type: ignore[valid-type]

    async def resolve(
        self: Any,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: Any = None,
        order_by: Any = None,
    ) -> Any:
        columns = node.columns_for(info)
        page = await node.records.page(
            info.context, first, after, last, before, filter, order_by, columns
        )
        return connection.from_page(page, node.from_row)

    # Annotated here rather than in the signature: the types are this call's arguments.
    resolve.__annotations__.update(
        info=Info,
        first=int | None,
        after=str | None,
        last=int | None,
        before=str | None,
        filter=filter_type | None,
        order_by=order_type | None,
        **{"return": connection},
    )
    return strawberry.field(resolve, description=description)


def order_input(type_name: str, sorts: Mapping[str, SortKey], direction: str) -> Any:
    """``<type>Order { field: <type>SortField!, direction: SortDirection }``, its field enum
    one value per sort key the resolvers declare; ``direction`` describes its default."""
    members: Any = enum.Enum(f"{type_name}SortField", {key: key for key in sorts})  # type: ignore[misc]
    namespace = {
        "__module__": __name__,
        "__annotations__": {
            "field": strawberry.enum(members, name=f"{type_name}SortField"),
            "direction": SortDirection | None,
        },
        "direction": strawberry.field(default=strawberry.UNSET, description=direction),
    }
    return strawberry.input(type(f"{type_name}Order", (), namespace))


def search_filter() -> Any:
    """A filter's ``search`` field."""
    return strawberry.field(
        default=None, description="Case-insensitive substring of the name, email or company."
    )


@strawberry.input
class IntRange:
    gte: int | None = None
    lte: int | None = None


@strawberry.input
class DateTimeRange:
    gte: datetime | None = None
    lt: datetime | None = None


__all__ = [
    "DateTimeRange",
    "IntRange",
    "Record",
    "SortDirection",
    "connection_field",
    "order_input",
    "record_field",
    "search_filter",
]
