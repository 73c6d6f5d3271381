"""A leaner execution of leaf fields.

graphql-core executes every field the same way: it builds a ``GraphQLResolveInfo``, calls the
resolver, then walks ``complete_value`` down to the scalar's serializer. For a page of 20 leads
that is ~270 fields, nearly all of them plain attributes (``email``, ``score``, ``cursor``...),
and that machinery was the largest single cost of a list request (see bench/README.md).

Here a field that Strawberry marks as basic (no resolver, no extensions, no arguments) and whose
type is a scalar or an enum, possibly non-null, is read and serialized directly; one whose type
is an object (``edge.node``) has its sub-selection executed on the attribute's value at once,
without a resolver call, a ``GraphQLResolveInfo`` or ``complete_value`` (Strawberry's
``is_type_of`` is the class check it stands for), and one whose type is a list of objects
(``edges``, ``nodes``) has each item's sub-selection executed the same way. Anything unusual
(an exception, a null where the type forbids it, a serializer that refuses the value) goes
through graphql-core's ordinary path again, which produces exactly the error it always did:
reading an attribute has no side effects, so doing it twice is safe.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, ClassVar, NamedTuple

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    Undefined,
    VariableNode,
    Visitor,
    specified_scalar_types,
    visit,
)
from graphql.pyutils import Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.cast import get_strawberry_type_cast

from schema import limits, text


class _Object(NamedTuple):
    """A plain attribute holding an object (``edge.node``): its sub-selection is executed on
    the attribute's value directly, without a resolver call or a GraphQLResolveInfo."""

    python_name: str
    object_type: GraphQLObjectType
    # The class whose exact instances the type's is_type_of accepts (Strawberry's check for
    # types with interfaces); None when the type has no is_type_of.
    origin: type | None
    return_type: GraphQLOutputType


class _List(NamedTuple):
    """A plain attribute holding a list of objects (``edges``, ``nodes``): each item's
    sub-selection is executed directly, as for an _Object."""

    python_name: str
    item: _Object  # how an item is executed (its object type, the class is_type_of wants)
    item_type: GraphQLOutputType  # the list's item type (non-null or not)
    return_type: GraphQLOutputType


class _Leaf(NamedTuple):
    python_name: str
    serialize: Callable[[Any], Any]
    nullable: bool
    # The Python type a value of this leaf is served as it is (str for String and ID, int in
    # range for Int, bool for Boolean), checked inline; None: always through ``serialize``.
    exact: type | None


# Per field definition: a _Leaf, an _Object, a _List, or None if not eligible.
_Plan = _Leaf | _Object | _List | None
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
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
    if isinstance(named, GraphQLObjectType):
        return _object_plan(python_name, named, type_)
    if isinstance(named, GraphQLList):
        item_type = named.of_type
        item_named = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if not isinstance(item_named, GraphQLObjectType):
            return None
        item = _object_plan(python_name, item_named, item_type)
        return None if item is None else _List(python_name, item, item_type, type_)
    if not isinstance(named, (GraphQLScalarType, GraphQLEnumType)):
        return None
    exact = None
    if isinstance(named, GraphQLScalarType) and specified_scalar_types.get(named.name) is named:
        exact = _EXACT.get(named.name, (None,))[0]
    return _Leaf(python_name, _serializer(named), nullable, exact)


def _object_plan(
    python_name: str, object_type: GraphQLObjectType, return_type: GraphQLOutputType
) -> _Object | None:
    if object_type.is_type_of is None:
        return _Object(python_name, object_type, None, return_type)
    definition = (object_type.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    origin = getattr(definition, "origin", None)
    if origin is None or getattr(definition, "is_type_of", None) is not None:
        return None  # an is_type_of of the type's own: only graphql-core's path calls it
    return _Object(python_name, object_type, origin, return_type)


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
        # Strawberry's enums hold the values of a Python enum, whose members are what fields
        # return: a member is served by its value's name, as Strawberry's serializer does.
        for member in getattr(leaf_type, "wrapped_cls", None) or ():
            if member.value in names:
                names.setdefault(member, names[member.value])
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


def _read_leaf(plan: _Leaf, source: Any) -> Any:
    """The serialized value of a planned leaf field, or _MISS to take the ordinary path."""
    try:
        value = getattr(source, plan.python_name)
    except Exception:
        return _MISS
    kind = type(value)
    if kind is plan.exact and (kind is not int or _INT_MIN <= value <= _INT_MAX):
        return value  # a str, an int in range, a bool: served as it is
    if value is None:
        return None if plan.nullable else _MISS
    if isinstance(value, Exception):
        return _MISS
    try:
        coerced = plan.serialize(value)
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
        executor = super().build(
            schema,
            document,
            root_value,
            context_value,
            raw_variable_values,
            operation_name,
            *args,
            **kwargs,
        )
        if isinstance(executor, ExecutionContext) and executor.operation.operation == (
            OperationType.SUBSCRIPTION
        ):
            if (operation := live_operation.get()) is not None:
                operation.executor = executor
            executor.live = _live_group(
                document, operation_name, context_value, raw_variable_values
            )
        return executor

    # A subscription's group of subscribers that share each event's result (LiveResults).
    live: LiveResults | None = None

    def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        """graphql-core's, but an event of a subscription is executed once for its group."""
        live = self.live
        if live is None:
            return super().execute_operation(*args, **kwargs)
        key = _event_key(self.root_value)
        if key is None:
            return super().execute_operation(*args, **kwargs)
        return live.execute(
            key, lambda: super(ExecutionContext, self).execute_operation(*args, **kwargs)
        )

    def build_per_event_executor(self, payload: Any) -> Any:
        """graphql-core's, with caches of its own: the copy it makes for each event shared the
        subscription's memo of sub-selections (graphql-core's, and ``_selections``), keyed by
        lists each event makes anew, so a subscription's executor grew with every event it
        executed (~17 entries an event, found by the fan-out benchmark's RSS)."""
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, ExecutionContext)
        executor._relevant_sub_fields = {}
        executor._selections = {}
        return executor

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

    def _complete_object(
        self,
        plan: _Object,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        """What execute_field answers for a planned object field, or _MISS for anything
        unusual (null, an exception or awaitable in the attribute, another class): those take
        the ordinary path. Errors are handled exactly as execute_field handles them."""
        try:
            value = getattr(source, plan.python_name)
        except Exception:
            return _MISS
        if value is None or isinstance(value, Exception) or self.is_awaitable(value):
            return _MISS
        if plan.origin is not None and (
            type(value) is not plan.origin or get_strawberry_type_cast(value) is not None
        ):
            return _MISS
        try:
            completed = self.collect_and_execute_subfields(
                plan.object_type, field_details_list, path, value, position_context
            )
        except Exception as raw_error:
            self.handle_field_error(raw_error, plan.return_type, field_details_list, path)
            return None
        if not self.is_awaitable(completed):
            return completed

        async def await_completed() -> Any:
            try:
                return await completed
            except Exception as raw_error:
                self.handle_field_error(raw_error, plan.return_type, field_details_list, path)
                return None

        return await_completed()

    def _complete_list(
        self,
        plan: _List,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        """What execute_field answers for a planned list of objects, or _MISS for anything
        unusual (a value that is not a list, an item that is null, awaitable or of another
        class, a directive on the field): those take the ordinary path, before anything ran.
        Each item is completed as graphql-core's complete_list_item_value completes it, and
        errors are handled as there and as execute_field handles them."""
        try:
            items = getattr(source, plan.python_name)
        except Exception:
            return _MISS
        if type(items) is not list or any(d.node.directives for d in field_details_list):
            return _MISS
        origin = plan.item.origin
        is_awaitable = self.is_awaitable
        for item in items:
            if (
                item is None
                or isinstance(item, Exception)
                or is_awaitable(item)
                or (
                    origin is not None
                    and (type(item) is not origin or get_strawberry_type_cast(item) is not None)
                )
            ):
                return _MISS
        object_type, item_type = plan.item.object_type, plan.item_type
        completed: list[Any] = []
        pending: list[int] = []
        try:
            for index, item in enumerate(items):
                item_path = path.add_key(index, None)
                try:
                    done = self.collect_and_execute_subfields(
                        object_type, field_details_list, item_path, item, position_context
                    )
                except Exception as raw_error:
                    # Raises again when the item type is non-null: the list fails as a whole.
                    self.handle_field_error(raw_error, item_type, field_details_list, item_path)
                    done = None
                if is_awaitable(done):
                    done = self._awaited_item(done, item_type, field_details_list, item_path)
                    pending.append(index)
                completed.append(done)
        except Exception as raw_error:
            if pending:
                self.settle_in_background([completed[i] for i in pending])
            self.handle_field_error(raw_error, plan.return_type, field_details_list, path)
            return None
        if not pending:
            return completed

        async def await_completed() -> Any:
            try:
                awaited = await gather_with_cancel(*(completed[i] for i in pending))
            except Exception as raw_error:
                self.handle_field_error(raw_error, plan.return_type, field_details_list, path)
                return None
            for i, value in zip(pending, awaited, strict=True):
                completed[i] = value
            return completed

        return await_completed()

    async def _awaited_item(
        self, awaitable: Any, item_type: GraphQLOutputType, field_details_list: Any, path: Path
    ) -> Any:
        try:
            return await awaitable
        except Exception as raw_error:
            self.handle_field_error(raw_error, item_type, field_details_list, path)
            return None

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
                kind = type(plan)
                if kind is _Leaf:
                    # The common case inline: a str, an int in range, a bool, a null.
                    try:
                        value = getattr(source_value, plan[0])  # type: ignore[index]
                    except Exception:
                        value = _MISS
                    vtype = type(value)
                    if vtype is plan[3] and (  # type: ignore[index]
                        vtype is not int or _INT_MIN <= value <= _INT_MAX
                    ):
                        results[response_name] = value
                        continue
                    if value is None and plan[2]:  # type: ignore[index]
                        results[response_name] = None
                        continue
                    value = _read_leaf(plan, source_value)  # type: ignore[arg-type]
                    if value is not _MISS:
                        results[response_name] = value
                        continue
                elif kind is _Object or kind is _List:
                    complete = self._complete_object if kind is _Object else self._complete_list
                    completed = complete(
                        plan,  # type: ignore[arg-type]
                        source_value,
                        field_details_list,
                        Path(path, response_name, parent_type.name),
                        position_context,
                    )
                    if completed is not _MISS:
                        results[response_name] = completed
                        if is_awaitable(completed):
                            awaitable_fields.append(response_name)
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


def _event_key(edge: Any) -> tuple[str, Any] | None:
    """An event, as the subscription's root value (an edge) stands for it: its cursor and its
    time (a cursor alone could come again from a database wiped and written anew)."""
    cursor = getattr(edge, "cursor", None)
    occurred_at = getattr(getattr(edge, "node", None), "occurred_at", None)
    if type(cursor) is not str or occurred_at is None:
        return None
    return cursor, occurred_at


class SharedData(dict[str, Any]):
    """An event's ``data``, shared by every subscriber whose execution it stands for (see
    ``LiveResults``): its JSON is encoded once, by the first connection to send it."""

    __slots__ = ("encoded",)

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.encoded: str | None = None


class _Result:
    """An event's shared result, once its first subscriber has executed it (None: not shared).
    Waited for through an Event: cheaper for a thousand waiters than a shielded future each,
    and a waiter cancelled (its client gone) leaves the others be."""

    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.value: Any = None

    def done(self) -> bool:
        return self.event.is_set()

    def result(self) -> Any:
        return self.value

    def set(self, value: Any) -> None:
        self.value = value
        self.event.set()

    async def wait(self) -> Any:
        await self.event.wait()
        return self.value


class LiveResults:
    """The results of one subscription's selection for the latest events, shared by the
    subscribers that would compute the same ones: the same document, operation and variables,
    in the same workspace with the same role (all that a field's value may depend on; an
    event's ``record`` and ``actor`` are read as they are now, once for all of them instead of
    once each). A result with errors is not shared: each subscriber executes the event itself,
    its errors its own. The group lives as long as one of its subscriptions does."""

    KEEP = 64  # the latest events' results kept: subscribers a little behind still share

    __slots__ = ("__weakref__", "document", "results")

    def __init__(self, document: DocumentNode) -> None:
        self.document = document  # held: the key has its id
        self.results: dict[tuple[str, Any], _Result] = {}

    def execute(self, cursor: tuple[str, Any], run: Callable[[], Any]) -> Any:
        """The result for the event at ``cursor``: the shared one, or from ``run``
        (graphql-core's execution of the event: a result or an awaitable), shared if it can be."""
        found = self.results.get(cursor)
        if found is not None:
            return self._shared(found, run)
        future = self.results[cursor] = _Result()
        if len(self.results) > self.KEEP:
            del self.results[next(iter(self.results))]
        try:
            result = run()
        except BaseException:
            self._unshared(future, cursor)
            raise
        if isinstance(result, Awaitable):
            return self._finish(future, cursor, result)
        return self._settle(future, cursor, result)

    def _settle(self, future: _Result, cursor: tuple[str, Any], result: Any) -> Any:
        if result.errors or not isinstance(result.data, dict):
            self._unshared(future, cursor)
        else:
            result.data = SharedData(result.data)
            future.set(result)
        return result

    def _unshared(self, future: _Result, cursor: tuple[str, Any]) -> None:
        if not future.done():
            future.set(None)
        if self.results.get(cursor) is future:
            del self.results[cursor]

    async def _finish(self, future: _Result, cursor: tuple[str, Any], result: Any) -> Any:
        try:
            done = await result
        except BaseException:
            self._unshared(future, cursor)
            raise
        return self._settle(future, cursor, done)

    @staticmethod
    async def _shared(found: _Result, run: Callable[[], Any]) -> Any:
        # An Event: one subscriber cancelled while waiting does not cancel the others.
        result = await found.wait()
        if result is None:  # not shared: this subscriber's own
            result = run()
            if isinstance(result, Awaitable):
                result = await result
        return result


class LiveOperation:
    """A subscription as its WebSocket connection runs it: ``send`` sends a shared result as
    the operation's next message at once, past the per-message machinery (Strawberry's result
    stream and its extension hooks, graphql-core's mapping of the event stream), which cost
    several times what sending does and, for an event shared by a thousand subscribers, would
    be paid a thousand times. ``executor``: the operation's, once built."""

    __slots__ = ("executor", "send")

    def __init__(self, send: Callable[[SharedData], Awaitable[None]]) -> None:
        self.send = send
        self.executor: ExecutionContext | None = None

    def ready(self, root: Any) -> SharedData | None:
        """The shared result for the event ``root`` if it is there already (the common case:
        another subscriber executed it), else None."""
        executor = self.executor
        live = executor.live if executor is not None else None
        if live is None:
            return None
        key = _event_key(root)
        found = live.results.get(key) if key is not None else None
        if found is None or not found.done():
            return None
        result = found.result()
        return result.data if result is not None else None  # type: ignore[no-any-return]

    async def sent(self, root: Any) -> bool:
        """Executes the event ``root`` (shared) and sends it; False when it could not be
        shared (errors, a field that reads the caller): then it goes the ordinary way."""
        executor = self.executor
        if executor is None or executor.live is None:
            return False
        key = _event_key(root)
        found = executor.live.results.get(key) if key is not None else None
        if found is not None:  # another subscriber is executing it: its result, when done
            shared = await found.wait()
            if shared is None:
                return False
            await self.send(shared.data)
            return True
        result: Any = executor.build_per_event_executor(root).execute_operation(False)
        if isinstance(result, Awaitable):
            result = await result
        data = getattr(result, "data", None)
        if type(data) is not SharedData or result.errors:
            return False
        await self.send(data)
        return True


# The subscription the current task runs (set by the connection's handler, server.py).
live_operation: ContextVar[LiveOperation | None] = ContextVar("live_operation", default=None)


_live_groups: weakref.WeakValueDictionary[tuple[Any, ...], LiveResults] = (
    weakref.WeakValueDictionary()
)


def _live_group(
    document: DocumentNode, operation_name: str | None, context: Any, variables: Any
) -> LiveResults | None:
    """The group of subscriptions that share results with this one, or None (no caller)."""
    principal = getattr(context, "principal", None)
    if principal is None:
        return None
    # Only the variables an event's execution reads: not those of the root field's arguments
    # alone (``after``, ``filter``), which choose the events, not what is made of each.
    used = _event_variables(document, operation_name)
    try:
        variables_key = json.dumps(
            {k: v for k, v in (variables or {}).items() if k in used}, sort_keys=True
        )
    except (TypeError, ValueError):
        return None
    full = (id(document), operation_name, principal.workspace_id, principal.role, variables_key)
    group = _live_groups.get(full)
    if group is None or group.document is not document:
        group = _live_groups[full] = LiveResults(document)
    return group


class _VariableNames(Visitor):
    """Collects the names of the variables a visited node uses."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.names.add(node.name.value)


def _event_variables(document: DocumentNode, operation_name: str | None) -> frozenset[str]:
    """The variables a subscription's document uses anywhere but in its root fields'
    arguments."""
    used = _VariableNames()
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            visit(definition, used)
        elif isinstance(definition, OperationDefinitionNode) and (
            operation_name is None or (definition.name and definition.name.value == operation_name)
        ):
            for selection in definition.selection_set.selections:
                if isinstance(selection, FieldNode):
                    for directive in selection.directives or ():
                        visit(directive, used)
                    if selection.selection_set is not None:
                        visit(selection.selection_set, used)
                else:
                    visit(selection, used)
    return frozenset(used.names)
