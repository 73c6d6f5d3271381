"""schema.execution reads plain leaf fields, and executes the selections of plain object fields,
directly: it must answer exactly as graphql-core does, errors included. Each case runs on a
small schema twice, with and without it."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import pytest
import strawberry
from graphql import parse
from strawberry.extensions import SchemaExtension

from schema.execution import ExecutionContext


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.interface
class Named:
    label: str


@strawberry.type
class Part(Named):
    """Implements an interface: Strawberry gives it an is_type_of check."""

    size: int

    @strawberry.field
    async def later_size(self) -> int:
        return self.size


@strawberry.type
class Box:
    """No interface: no is_type_of."""

    label: str | None
    weight: int


@strawberry.type
class Item:
    name: str
    nickname: str | None
    colour: Colour
    when: datetime
    count: int
    tags: list[str]
    part: Part
    box: Box | None

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()


def _item(**overrides: Any) -> Item:
    values: dict[str, Any] = {
        "name": "a",
        "nickname": None,
        "colour": Colour.RED,
        "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "count": 3,
        "tags": ["x"],
        "part": Part(label="p", size=1),
        "box": Box(label="b", weight=2),
    }
    values.update(overrides)
    return Item(**values)


ITEMS: dict[str, list[Item]] = {
    "plain": [_item(), _item(name="b", nickname="bee", colour=Colour.BLUE, count=-1)],
    # Wrong values from a resolver: graphql-core's errors, with their paths, must come out.
    "null_in_non_null": [_item(), _item(name=None)],
    "bad_int": [_item(count="many")],
    "int_out_of_range": [_item(count=2**40)],
    "bad_enum": [_item(colour="green")],
    "exception_value": [_item(name=ValueError("boom"))],
    # Object fields: null, errors inside their selection, the wrong class, an exception.
    "object_null": [_item(box=None)],
    "object_null_inside": [_item(box=Box(label="b", weight=None))],  # type: ignore[arg-type]
    "object_non_null_inside": [_item(), _item(part=Part(label=None, size=1))],  # type: ignore[arg-type]
    "object_wrong_class": [_item(part=Box(label="x", weight=1))],  # type: ignore[arg-type]
    "object_exception": [_item(part=ValueError("no part"))],  # type: ignore[arg-type]
    "object_async_inside": [_item(part=Part(label="q", size="big"))],  # type: ignore[arg-type]
}


@strawberry.type
class Query:
    @strawberry.field
    def items(self, case: str) -> list[Item]:
        return ITEMS[case]

    @strawberry.field
    async def later(self, case: str) -> list[Item | None]:
        return ITEMS[case]  # type: ignore[return-value]


DOCUMENT = """
query($case: String!) {
  items(case: $case) {
    name nickname colour when count tags shout alias: name __typename
    part { label size laterSize __typename } box { label weight }
  }
  later(case: $case) { name count colour part { label laterSize } box { weight } }
}
"""


class Wrap(SchemaExtension):
    """An extension with a ``resolve`` hook: every field must then go through it."""

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        result = _next(root, info, *args, **kwargs)
        return result + "!" if info.field_name == "name" and isinstance(result, str) else result


def _run(case: str, fast: bool, extensions: list[Any] | None = None) -> Any:
    schema = strawberry.Schema(
        query=Query,
        execution_context_class=ExecutionContext if fast else None,
        extensions=extensions or [],
    )
    result = asyncio.run(schema.execute(DOCUMENT, variable_values={"case": case}))
    errors = sorted(
        ((e.message, tuple(e.path or ())) for e in result.errors or []), key=lambda e: e[1]
    )
    return result.data, errors


@pytest.mark.parametrize("case", sorted(ITEMS))
def test_leaf_fields_answer_as_graphql_core_does(case: str) -> None:
    assert _run(case, fast=True) == _run(case, fast=False)


def test_the_plain_case_reads_every_leaf() -> None:
    data, errors = _run("plain", fast=True)
    assert errors == []
    assert data["items"][1] == {
        "name": "b",
        "nickname": "bee",
        "colour": "BLUE",
        "when": "2026-01-02T03:04:05+00:00",
        "count": -1,
        "tags": ["x"],
        "shout": "B",
        "alias": "b",
        "__typename": "Item",
        "part": {"label": "p", "size": 1, "laterSize": 1, "__typename": "Part"},
        "box": {"label": "b", "weight": 2},
    }


def test_wrong_values_are_errors_at_their_path() -> None:
    data, errors = _run("null_in_non_null", fast=True)
    assert data is None  # items is non-null all the way up
    message = "Cannot return null for non-nullable field Item.name."
    assert errors == [(message, ("items", 1, "name"))]


def test_a_resolve_extension_still_sees_every_field() -> None:
    fast = _run("plain", fast=True, extensions=[Wrap])
    assert fast == _run("plain", fast=False, extensions=[Wrap])
    assert fast[0]["items"][0]["name"] == "a!"


@strawberry.type
class Feed:
    @strawberry.subscription
    async def items(self) -> AsyncGenerator[Item, None]:  # only its executor is used here
        yield _item()


def test_a_subscriptions_executor_keeps_nothing_of_its_events() -> None:
    """graphql-core executes each event of a subscription with a copy of the subscription's
    executor: the copy must not add to the subscription's caches, or a long subscription
    grows with every event."""
    schema = strawberry.Schema(
        query=Query, subscription=Feed, execution_context_class=ExecutionContext
    )
    document = parse("subscription { items { name part { label size } box { weight } } }")
    executor = ExecutionContext.build(schema._schema, document)
    assert isinstance(executor, ExecutionContext)

    async def events() -> list[Any]:
        results = []
        for n in range(5):
            result = executor.build_per_event_executor(_item(name=str(n))).execute_operation(False)
            results.append(await result if asyncio.iscoroutine(result) else result)
        return results

    results = asyncio.run(events())
    assert [r.data["items"]["name"] for r in results] == ["0", "1", "2", "3", "4"]
    assert executor._relevant_sub_fields == {}
    assert executor._selections == {}
