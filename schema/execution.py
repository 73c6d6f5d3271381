"""A leaner execution of leaf fields.

graphql-core executes every field the same way: it builds a ``GraphQLResolveInfo``, calls the
resolver, then walks ``complete_value`` down to the scalar's serializer. For a page of 20 leads
that is ~270 fields, nearly all of them plain attributes (``email``, ``score``, ``cursor``...),
and that machinery was the largest single cost of a list request (see bench/README.md).

Here a field that Strawberry marks as basic (no resolver, no extensions, no arguments) and whose
type is a scalar or an enum, possibly non-null, is read and serialized directly. Anything unusual
(an exception, a null where the type forbids it, a serializer that refuses the value) goes
through graphql-core's ordinary path again, which produces exactly the error it always did:
reading an attribute has no side effects, so doing it twice is safe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from graphql import (
    DocumentNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    Undefined,
    specified_scalar_types,
)
from graphql.pyutils import Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter

from schema import limits, text

# Per field definition: (python attribute, leaf type, nullable), or None if not eligible.
_Plan = tuple[str, Callable[[Any], Any], bool] | None
_plans: dict[int, tuple[GraphQLField, _Plan]] = {}


def _plan(field_def: GraphQLField) -> _Plan:
    if field_def.args or field_def.subscribe is not None:
        return None
    resolve = field_def.resolve
    if resolve is None or not getattr(resolve, "_is_default", False):
        return None
    definition = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    python_name = getattr(definition, "python_name", None)
    default_resolver = getattr(definition, "default_resolver", None)
    if not python_name or default_resolver is not getattr:
        return None
    type_ = field_def.type
    nullable = not isinstance(type_, GraphQLNonNull)
    named = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if not isinstance(named, (GraphQLScalarType, GraphQLEnumType)):
        return None
    return python_name, _serializer(named), nullable


def _serializer(leaf_type: GraphQLLeafType) -> Callable[[Any], Any]:
    """``leaf_type.coerce_output_value``, with the common case answered first: a str for a
    String or an ID, an int in range for an Int, a bool, an enum member. Values of any other
    type take graphql-core's serializer, as before (it converts or refuses them)."""
    coerce = leaf_type.coerce_output_value
    if isinstance(leaf_type, GraphQLEnumType):
        names = {}
        for name, value in leaf_type.values.items():
            try:
                names[value.value] = name
            except TypeError:  # an unhashable value: only graphql-core knows it
                return coerce
        get = names.get

        def enum(value: Any) -> Any:
            try:
                name = get(value)  # a member of a str enum is found by its value
            except TypeError:
                name = None
            return coerce(value) if name is None else name

        return enum
    builtin_type = specified_scalar_types.get(leaf_type.name)  # graphql-core 3.3: a mapping
    exact = _EXACT.get(leaf_type.name) if builtin_type is leaf_type else None
    if exact is None:
        return coerce
    kind, check = exact

    def builtin(value: Any) -> Any:
        if type(value) is kind and check(value):
            return value
        return coerce(value)

    return builtin


# The specified scalars: the Python type they serialize as they are, and its range check.
_EXACT: dict[str, tuple[type, Callable[[Any], bool]]] = {
    "String": (str, lambda _: True),
    "ID": (str, lambda _: True),
    "Boolean": (bool, lambda _: True),
    "Int": (int, lambda v: -(2**31) <= v < 2**31),
}


def _plan_for(field_def: GraphQLField) -> _Plan:
    entry = _plans.get(id(field_def))
    if entry is None or entry[0] is not field_def:
        entry = (field_def, _plan(field_def))
        _plans[id(field_def)] = entry
    return entry[1]


_MISS = object()


def _read_leaf(plan: tuple[str, Callable[[Any], Any], bool], source: Any) -> Any:
    """The serialized value of a planned leaf field, or _MISS to take the ordinary path."""
    python_name, serialize, nullable = plan
    try:
        value = getattr(source, python_name)
        if value is None:
            return None if nullable else _MISS
        if isinstance(value, Exception):
            return _MISS
        coerced = serialize(value)
    except Exception:
        return _MISS
    return _MISS if coerced is None or coerced is Undefined else coerced


class ExecutionContext(StrawberryGraphQLCoreExecutionContext):
    # The most items a list variable may hold (schema/limits.py); None: no limit.
    max_list_size: ClassVar[int | None] = None

    @classmethod
    def limited(cls, max_list_size: int) -> type[ExecutionContext]:
        """This class with a schema's limit on list variables."""
        return type(cls.__name__, (cls,), {"max_list_size": max_list_size})

    @classmethod
    def build(  # type: ignore[override]
        cls,
        schema: GraphQLSchema,
        document: DocumentNode,
        root_value: Any = None,
        context_value: Any = None,
        raw_variable_values: dict[str, Any] | None = None,
        operation_name: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """graphql-core's build, after the request's input is checked where variables are
        coerced, before any resolver runs, on every path (queries, mutations, subscriptions):
        its text (schema/text.py) and the size of its list variables (schema/limits.py)."""
        if errors := text.nul_errors(document, raw_variable_values):
            return errors
        if (
            cls.max_list_size is not None
            and raw_variable_values
            and (
                error := limits.variable_list_error(
                    schema, document, operation_name, raw_variable_values, cls.max_list_size
                )
            )
        ):
            return [error]
        return super().build(
            schema,
            document,
            root_value,
            context_value,
            raw_variable_values,
            operation_name,
            *args,
            **kwargs,
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Strawberry always passes a MiddlewareManager; it wraps resolvers only when a schema
        # extension implements ``resolve``, and then every field must go through it.
        manager = self.middleware_manager
        self.leaves_direct = getattr(manager, "_middleware_resolvers", None) is None
        # Per selection set (graphql-core reuses one per type within a request): its fields with
        # their plans. The set itself is kept alongside, so that its id is not reused.
        self._selections: dict[tuple[int, str], tuple[Any, list[tuple[str, Any, _Plan]]]] = {}

    def _planned(
        self, parent_type: GraphQLObjectType, grouped_field_set: Any
    ) -> list[tuple[str, Any, _Plan]]:
        key = (id(grouped_field_set), parent_type.name)
        entry = self._selections.get(key)
        if entry is None or entry[0] is not grouped_field_set:
            planned = []
            for response_name, field_details_list in grouped_field_set.items():
                node = field_details_list[0].node
                field_def = self.schema.get_field(parent_type, node.name.value)
                plan = None
                if field_def is not None and not node.arguments:
                    plan = _plan_for(field_def)
                planned.append((response_name, field_details_list, plan))
            entry = (grouped_field_set, planned)
            self._selections[key] = entry
        return entry[1]

    def execute_fields(  # type: ignore[override]
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        """graphql-core's execute_fields, with planned leaves read in place."""
        if not self.leaves_direct:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list, plan in self._planned(
                parent_type, grouped_field_set
            ):
                if plan is not None:
                    value = _read_leaf(plan, source_value)
                    if value is not _MISS:
                        results[response_name] = value
                        continue
                result = self.execute_field(
                    parent_type,
                    source_value,
                    field_details_list,
                    Path(path, response_name, parent_type.name),
                    position_context,
                )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                awaited = await gather_with_cancel(*(results[f] for f in awaitable_fields))
                results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()
