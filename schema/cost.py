"""Query cost: the weights, published in the SDL with Apollo's demand-control directives
(``@cost``, ``@listSize``: a gateway reads them), a document's static cost computed from the
same directives before it runs, and its actual cost from the result.

The rules (Apollo's and Shopify's): an object (or interface, union) field costs 1, a scalar or
enum 0; a mutation's root field 10 (``@cost(weight: 10)``); a list multiplies what each item
costs by its size: a connection's ``edges``/``nodes`` by ``first``/``last`` (``@listSize``,
``slicingArguments``/``sizedFields``), or by the default page size without them; a plain list by
its ``assumedSize`` (the default page size), or by the length of its list argument
(``nodes(ids)``, ``_entities(representations)``). Nested lists multiply.

Both costs are computed in one pass: the static one over the document (each fragment once per
list-size context, so linear in the document), the actual one over the result, where each list
counts the items it really holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)
from strawberry.federation.schema_directives import Cost, Link, ListSize

from resolvers.pagination import DEFAULT_PAGE_SIZE

MUTATION_WEIGHT = 10
_SIZED = ["edges", "nodes"]
_SLICING = ("first", "last")


def _is_connection(type_: GraphQLNamedType) -> bool:
    return isinstance(type_, GraphQLObjectType) and {"edges", "nodes", "pageInfo"} <= set(
        type_.fields
    )


def _list_of(type_: Any) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def _add(strawberry_field: Any, directive: object) -> bool:
    """Adds ``directive`` unless the field has one of its kind (fields are shared by every
    Schema built; a new list, as a generic type's copies may share one): whether it did."""
    if any(type(d) is type(directive) for d in strawberry_field.directives):
        return False
    strawberry_field.directives = [*strawberry_field.directives, directive]
    return True


def connection_list_size(arguments: list[str]) -> ListSize:
    """A connection field's ``@listSize``: its edges and nodes number first (or last), else the
    default page size."""
    return ListSize(
        assumed_size=DEFAULT_PAGE_SIZE,
        slicing_arguments=arguments,
        sized_fields=list(_SIZED),
        require_one_slicing_argument=False,
    )


def weigh_mutations(mutation: type) -> None:
    """``@cost(weight: 10)`` on every root mutation field (before the Schema is built, so that
    federation's ``@link`` imports it)."""
    for field_ in mutation.__strawberry_definition__.fields:  # type: ignore[attr-defined]
        _add(field_, Cost(weight=MUTATION_WEIGHT))


def publish(schema: GraphQLSchema) -> bool:
    """``@listSize`` on every connection field and plain list field of the built schema (the
    printer reads the fields' directives when the SDL is printed): whether a field had none
    yet (then the schema's ``@link`` does not import it: build it again)."""
    added = False
    for type_ in schema.type_map.values():
        if type_.name.startswith("__") or not isinstance(
            type_, (GraphQLObjectType, GraphQLInterfaceType)
        ):
            continue
        if _is_connection(type_):
            continue  # edges and nodes are sized by the field that returns the connection
        for field_ in type_.fields.values():
            definition = (field_.extensions or {}).get("strawberry-definition")
            if definition is None:
                continue
            if _is_connection(get_named_type(field_.type)) and "first" in field_.args:
                size = connection_list_size([a for a in _SLICING if a in field_.args])
                added = _add(definition, size) or added
            elif _list_of(field_.type) and not any(_list_of(a.type) for a in field_.args.values()):
                # The other arguments are left UNSET (not printed); mypy sees them as required.
                size = ListSize(  # type: ignore[call-arg]
                    assumed_size=DEFAULT_PAGE_SIZE, require_one_slicing_argument=False
                )
                added = _add(definition, size) or added
    return added


def import_list_size(schema: Any) -> None:
    """Adds ``@listSize`` to the imports of the federation ``@link`` of ``schema`` (a Strawberry
    federation Schema built before ``publish`` put the directive on its fields)."""
    for directive in schema.schema_directives:
        if isinstance(directive, Link) and str(directive.url or "").startswith(
            "https://specs.apollo.dev/federation/"
        ):
            imports = {str(name) for name in directive.import_ or ()}
            directive.import_ = sorted(imports | {"@listSize"})  # type: ignore[assignment]


_Sets = tuple[tuple[SelectionSetNode, Any], ...]
_Shape = list[tuple[str, int, Any]]  # (response key, weight, a _Shape or None)


@dataclass(frozen=True, slots=True)
class _FieldCost:
    weight: int
    is_list: bool
    slicing: tuple[str, ...]  # arguments whose value is the list's size
    sized: tuple[str, ...]  # child fields that are lists of that size
    assumed: int
    list_argument: str | None  # nodes(ids): the size is the argument's length


class CostTable:
    """Each field's weight and list sizing, read once from the schema's directives."""

    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema
        self.fields: dict[tuple[str, str], _FieldCost] = {}
        mutation = schema.mutation_type
        for type_ in schema.type_map.values():
            if not isinstance(type_, (GraphQLObjectType, GraphQLInterfaceType)):
                continue
            for name, field_ in type_.fields.items():
                named = get_named_type(field_.type)
                composite = isinstance(
                    named, (GraphQLObjectType, GraphQLInterfaceType, GraphQLUnionType)
                )
                definition = (field_.extensions or {}).get("strawberry-definition")
                directives = getattr(definition, "directives", ()) or ()
                weight = 1 if composite else 0
                if type_ is mutation:
                    weight = MUTATION_WEIGHT
                slicing: tuple[str, ...] = ()
                sized: tuple[str, ...] = ()
                assumed = DEFAULT_PAGE_SIZE
                for directive in directives:
                    if isinstance(directive, Cost):
                        weight = directive.weight
                    elif isinstance(directive, ListSize):
                        slicing = tuple(directive.slicing_arguments or ())
                        sized = tuple(directive.sized_fields or ())
                        if directive.assumed_size is not None:
                            assumed = directive.assumed_size
                list_argument = next(
                    (a for a, arg in field_.args.items() if _list_of(arg.type)), None
                )
                self.fields[type_.name, name] = _FieldCost(
                    weight, _list_of(field_.type), slicing, sized, assumed, list_argument
                )


def _argument(node: FieldNode, name: str, variables: Mapping[str, Any]) -> Any:
    for argument in node.arguments or ():
        if argument.name.value == name:
            value = argument.value
            if isinstance(value, VariableNode):
                return variables.get(value.name.value)
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, ListValueNode):
                return value.values
            return None
    return None


class _Walk:
    """One document's static cost, fragments memoized per list-size context."""

    def __init__(
        self,
        table: CostTable,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.table = table
        self.fragments = fragments
        self.variables = variables
        self.memo: dict[tuple[str, tuple[tuple[str, int], ...]], int] = {}

    def _size(self, info: _FieldCost, node: FieldNode, given: int | None) -> int:
        if given is not None:
            return given
        for name in info.slicing:
            value = _argument(node, name, self.variables)
            if isinstance(value, int) and not isinstance(value, bool):
                return max(0, value)
        if info.list_argument is not None:
            value = _argument(node, info.list_argument, self.variables)
            if isinstance(value, (list, tuple)):
                return len(value)
            return 1 if value is not None else 0
        return info.assumed

    def selection(
        self, selection_set: SelectionSetNode | None, type_: Any, sized: Mapping[str, int]
    ) -> int:
        if selection_set is None:
            return 0
        total = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                total += self.field(node, type_, sized)
            elif isinstance(node, InlineFragmentNode):
                inner = (
                    self.table.schema.get_type(node.type_condition.name.value)
                    if node.type_condition
                    else type_
                )
                total += self.selection(node.selection_set, inner, sized)
            elif isinstance(node, FragmentSpreadNode):
                fragment = self.fragments.get(node.name.value)
                if fragment is None:
                    continue
                key = (node.name.value, tuple(sorted(sized.items())))
                if key not in self.memo:
                    self.memo[key] = 0  # a cycle (refused by validation anyway) costs nothing
                    inner = self.table.schema.get_type(fragment.type_condition.name.value)
                    self.memo[key] = self.selection(fragment.selection_set, inner, sized)
                total += self.memo[key]
        return total

    def field(self, node: FieldNode, parent: Any, sized: Mapping[str, int]) -> int:
        info = self.table.fields.get((getattr(parent, "name", ""), node.name.value))
        if info is None:  # __typename, or a field of an abstract type's member
            return 0
        field_type = parent.fields[node.name.value].type
        named = get_named_type(field_type)
        child_sized: dict[str, int] = {}
        if info.sized:
            size = self._size(info, node, None)
            child_sized = dict.fromkeys(info.sized, size)
        each = info.weight + self.selection(node.selection_set, named, child_sized)
        if info.is_list:
            return self._size(info, node, sized.get(node.name.value)) * each
        return each


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            name is None or (definition.name is not None and definition.name.value == name)
        ):
            return definition
    return None


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def _root(schema: GraphQLSchema, operation: OperationDefinitionNode) -> Any:
    if operation.operation is OperationType.MUTATION:
        return schema.mutation_type
    if operation.operation is OperationType.SUBSCRIPTION:
        return schema.subscription_type
    return schema.query_type


class _Recorded(dict[str, Any]):
    """The variables, noting which ones a walk read (those that size a list)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


def _size_key(value: Any) -> Any:
    """What of a variable's value the static cost depends on: an integer, or a list's length."""
    if isinstance(value, (list, tuple)):
        return ("list", len(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return value is not None


class _Plan:
    """One operation of one document: which variables size its lists, its static cost for each
    of their values seen (a few), and the shapes its results are costed by. Holding the
    document keeps it alive, so the id it is found by stays its own."""

    __slots__ = ("actual", "document", "operation", "sizing", "static")

    _MAX_STATIC = 32

    def __init__(self, table: CostTable, document: DocumentNode, name: str | None) -> None:
        self.document = document
        self.operation = _operation(document, name)
        self.sizing: tuple[str, ...] | None = None  # known after the first walk
        self.static: dict[tuple[Any, ...], int] = {}
        self.actual = _Actual(table, _fragments(document))

    def requested(self, table: CostTable, variables: Mapping[str, Any] | None) -> int:
        operation = self.operation
        if operation is None:
            return 0
        given = variables or {}
        if self.sizing is not None:
            key = tuple(_size_key(given.get(n, _DEFAULTS)) for n in self.sizing)
            cost = self.static.get(key)
            if cost is not None:
                return cost
        defaults = {
            v.variable.name.value: int(v.default_value.value)
            for v in operation.variable_definitions or ()
            if isinstance(v.default_value, IntValueNode)
        }
        recorded = _Recorded({**defaults, **given})
        walk = _Walk(table, self.actual.fragments, recorded)
        cost = walk.selection(operation.selection_set, _root(table.schema, operation), {})
        if self.sizing is None:
            self.sizing = tuple(sorted(recorded.read))
        key = tuple(_size_key(given.get(n, _DEFAULTS)) for n in self.sizing)
        if len(self.static) >= self._MAX_STATIC:
            self.static.clear()
        self.static[key] = cost
        return cost


# A variable not sent (its default, if any, applies): told apart from one sent as null.
_DEFAULTS = object()


class Costs:
    """A schema's cost table and the plans of the documents it costed lately (an LRU: a
    document's static cost is walked once per sizing of its lists, not once per request)."""

    def __init__(self, schema: GraphQLSchema, plans: int = 512) -> None:
        self.table = CostTable(schema)
        self._plans: LRUCache[tuple[int, str | None], _Plan] = LRUCache(maxsize=plans)

    def plan(self, document: DocumentNode, operation_name: str | None) -> _Plan:
        key = (id(document), operation_name)
        plan = self._plans.get(key)
        if plan is None or plan.document is not document:
            plan = self._plans[key] = _Plan(self.table, document, operation_name)
        return plan

    def requested(
        self,
        document: DocumentNode,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
    ) -> int:
        """The operation's static cost (a validated document; variables as sent)."""
        return self.plan(document, operation_name).requested(self.table, variables)

    def actual(self, document: DocumentNode, operation_name: str | None, data: Any) -> int:
        """What the result ``data`` cost: the static weights, each list by its actual length."""
        plan = self.plan(document, operation_name)
        if plan.operation is None or not isinstance(data, dict):
            return 0
        root = _root(self.table.schema, plan.operation)
        shape = plan.actual.shape(((plan.operation.selection_set, root),))
        return plan.actual.object(shape, data)


class _Actual:
    """The cost of what a result holds: the same weights, each list by its items. Each
    selection set's shape (the fields that cost something, and what their items select) is
    worked out once per document and reused for every object and every request."""

    def __init__(self, table: CostTable, fragments: Mapping[str, FragmentDefinitionNode]) -> None:
        self.table = table
        self.fragments = fragments
        self.shapes: dict[tuple[int, ...], _Shape] = {}

    def _collect(
        self,
        selection_sets: _Sets,
        into: dict[str, list[tuple[FieldNode, Any]]],
        seen: set[str],
    ) -> None:
        for selection_set, type_ in selection_sets:
            for node in selection_set.selections:
                if isinstance(node, FieldNode):
                    key = node.alias.value if node.alias else node.name.value
                    into.setdefault(key, []).append((node, type_))
                elif isinstance(node, InlineFragmentNode):
                    inner = (
                        self.table.schema.get_type(node.type_condition.name.value)
                        if node.type_condition
                        else type_
                    )
                    self._collect(((node.selection_set, inner),), into, seen)
                elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
                    fragment = self.fragments.get(node.name.value)
                    if fragment is not None:
                        inner = self.table.schema.get_type(fragment.type_condition.name.value)
                        self._collect(
                            ((fragment.selection_set, inner),), into, {*seen, node.name.value}
                        )

    def shape(self, selection_sets: _Sets) -> _Shape:
        """The fields of these selection sets that cost something: (response key, weight, the
        shape of its value, None when nothing under it costs)."""
        key = tuple(id(s) for s, _ in selection_sets)
        found = self.shapes.get(key)
        if found is not None:
            return found
        # Registered before it is filled: a fragment cycle (refused by validation anyway) ends.
        shape: _Shape = []
        self.shapes[key] = shape
        groups: dict[str, list[tuple[FieldNode, Any]]] = {}
        self._collect(selection_sets, groups, set())
        for response_key, nodes in groups.items():
            node, parent = nodes[0]
            info = self.table.fields.get((getattr(parent, "name", ""), node.name.value))
            if info is None:
                # A field of a concrete type selected through an abstract one: find its owner.
                owner = next(
                    (
                        p
                        for _, p in nodes
                        if (getattr(p, "name", ""), node.name.value) in self.table.fields
                    ),
                    None,
                )
                if owner is None:
                    continue
                parent = owner
                info = self.table.fields[parent.name, node.name.value]
            named = get_named_type(parent.fields[node.name.value].type)
            children = tuple((n.selection_set, named) for n, _ in nodes if n.selection_set)
            child = self.shape(children) if children else None
            if child is not None and not child:
                child = None
            if info.weight == 0 and child is None:
                continue
            shape.append((response_key, info.weight, child))
        return shape

    def object(self, shape: _Shape, data: Any) -> int:
        if not isinstance(data, dict):
            return 0
        total = 0
        for response_key, weight, child in shape:
            value = data.get(response_key)
            if value is not None:
                total += self.value(weight, child, value)
        return total

    def value(self, weight: int, child: _Shape | None, value: Any) -> int:
        if isinstance(value, list):
            if child is None and not any(isinstance(item, list) for item in value):
                return weight * (len(value) - value.count(None))
            total = 0
            for item in value:
                if item is None:
                    continue
                if isinstance(item, list):
                    total += self.value(weight, child, item)
                else:
                    total += weight if child is None else weight + self.object(child, item)
            return total
        if child is None:
            return weight
        return weight + self.object(child, value)
