"""What the GraphQL types of every record type (leads, clients, ...) share: the ``Record`` base
(global ID, audit fields, built from a row, a federation entity), the list field over a keyset
connection, and the filter and order input pieces. A domain declares its fields, its filter and
order inputs, its payloads and how a row's computed fields are made; see schema/leads.py."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from datetime import datetime
from operator import itemgetter
from typing import Any, ClassVar, TypeVar

import strawberry
from sqlalchemy import Row

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
# Python attribute names whose column is named otherwise (SQLModel reserves ``metadata``).
_COLUMNS = {"metadata": "meta"}


@strawberry.type
class Record(Node, Audited):
    """A stored record: its global ID, and who created and last changed it.

    ``from_row`` copies each column its fields are named after (``metadata`` from ``meta``);
    a domain returns the others (computed or converted) from ``computed``. ``records`` is the
    domain's resolvers (lookup for federation's ``_entities``)."""

    records: ClassVar[RecordType]

    @classmethod
    def computed(cls, row: Row[Any]) -> dict[str, Any]:
        """The fields that are not a column of the same name."""
        return {}

    @classmethod
    def from_row(cls: type[R], row: Row[Any]) -> R:
        values = cls.computed(row)
        columns = row._fields
        plan = _COPIED.get((cls, columns))
        if plan is None:
            skip = {"id", *values}
            names = tuple(
                f.name
                for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                if f.init and f.name not in skip
            )
            # By position: a Row's attribute access is a Python-level lookup per name, ~30
            # times slower than indexing the tuple it is.
            where = [
                columns.index(name if name in columns else _COLUMNS.get(name, name))
                for name in names
            ]
            getter = itemgetter(*where) if len(where) > 1 else lambda r: (r[where[0]],)
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


def record_field(node: type[Record]) -> Any:
    """The lookup field of a record type: ``lead(id: ID!): Lead``, null when not found."""

    async def resolve(self: Any, info: Info, id: strawberry.ID) -> Any:
        return node.maybe(await node.records.get(info.context, id))

    resolve.__annotations__.update(info=Info, id=strawberry.ID, **{"return": node | None})
    return strawberry.field(resolve)


def connection_field(
    node: type[Record], filter_type: type, order_type: type, description: str
) -> Any:
    """The list field of a record type: ``leads(first, after, last, before, filter,
    orderBy): LeadConnection!``, paged by its resolvers (``RecordType.page``)."""
    connection = Connection[node]  # type: ignore[valid-type]

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
        page = await node.records.page(info.context, first, after, last, before, filter, order_by)
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
