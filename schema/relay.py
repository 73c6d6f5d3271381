"""Relay plumbing: the Node interface, PageInfo, and generic connections over keyset pages."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import strawberry

from resolvers.pagination import Page

T = TypeVar("T")


@strawberry.enum
class SortDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.interface(description="An object with an opaque global ID.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    nodes: list[T]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="All records matching the filter, not just this page.")
    async def total_count(self) -> int:
        # Only runs when the field is selected.
        return await self.count()

    @classmethod
    def from_page(cls, page: Page, build: Callable[[Any], T]) -> Connection[T]:
        nodes: Sequence[T] = [build(row) for row in page.rows]
        return cls(
            edges=[Edge(cursor=c, node=n) for c, n in zip(page.cursors, nodes, strict=True)],
            nodes=list(nodes),
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=page.has_previous_page,
                start_cursor=page.cursors[0] if page.cursors else None,
                end_cursor=page.cursors[-1] if page.cursors else None,
            ),
            count=page.count,
        )


def input_values(value: Any) -> dict[str, Any]:
    """The fields a GraphQL input object was given, snake_case, nested inputs as dicts.

    Fields left out are absent; fields given as null are present with None. ``metadata`` is
    renamed ``meta``: SQLModel reserves the attribute name.
    """
    out: dict[str, Any] = {}
    for name, item in vars(value).items():
        if item is strawberry.UNSET:
            continue
        if dataclasses.is_dataclass(item):  # a nested input object (enums are not dataclasses)
            item = input_values(item)
        elif isinstance(item, list) and item and dataclasses.is_dataclass(item[0]):
            item = [input_values(element) for element in item]
        out["meta" if name == "metadata" else name] = item
    return out
