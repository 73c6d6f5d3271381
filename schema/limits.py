"""What one request may ask of the server, checked before anything runs: the document's size,
one operation per document (or an operationName), list sizes, a parse/validation cache
bounded by the memory it holds, and the operation's cost (over MAX_QUERY_COST, or more than
the caller's rate-limit bucket holds). Depth, aliases and tokens are Strawberry's own limits,
set in ``build_schema``."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache
from graphql import (
    ASTValidationRule,
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLSchema,
    ListValueNode,
    ObjectFieldNode,
    OperationDefinitionNode,
    ValidationContext,
    ValidationRule,
    get_nullable_type,
    parse,
    type_from_ast,
)
from graphql.language import ArgumentNode, VariableDefinitionNode
from graphql.pyutils import print_path_list
from starlette.responses import Response
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.schema.schema import validate_document
from strawberry.types.graphql import OperationType

from resolvers.auth.common import client_address
from resolvers.ratelimit import API_KEY_BUCKET, Policy, Status
from schema.cost import Costs

Rules = tuple[type[ASTValidationRule], ...]

# What a parsed document holds beyond its text, per token (Token, Location and node objects;
# 360-610 bytes measured with tracemalloc on graphql-core 3.3), rounded up.
_BYTES_PER_TOKEN = 640
_ENTRY_OVERHEAD = 1024
# No single document may take more than this share of the cache: one huge document would
# otherwise push out all the ordinary ones.
_LARGEST_ENTRY_SHARE = 8
# Registered documents kept parsed (as many as the registry keeps, resolvers/documents.py).
_PINNED_DOCUMENTS = 4096


class RequestRefused(CannotGetOperationTypeError):
    """A request refused before it runs, with a message and an error code. A subclass of the
    one exception Strawberry turns into a refusal on every transport (400 over HTTP, close code
    4400 over WebSocket) wherever an extension raises it; any other exception raised from an
    extension's parsing hook escapes the error policy (HTTP) or the operation (WebSocket)."""

    def __init__(self, message: str, code: str = "BAD_REQUEST") -> None:
        super().__init__(None)
        self.message = message
        self.code = code

    def as_http_error_reason(self) -> str:
        return self.message


@dataclass(slots=True)
class _Entry:
    document: DocumentNode
    size: int
    validated: set[Rules] = field(default_factory=set)


class DocumentCache:
    """Parsed documents by text, with the rule sets each passed validation under, least
    recently used out first, bounded by an estimate of the bytes they hold. Only documents that
    parse and rule sets that pass are kept (as ``functools.lru_cache`` kept only successes):
    errors are recomputed, so they need no room here."""

    def __init__(self, max_bytes: int) -> None:
        self.max_entry_bytes = max_bytes // _LARGEST_ENTRY_SHARE
        self._entries: LRUCache[tuple[str, tuple[tuple[str, Any], ...]], _Entry] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda entry: entry.size
        )
        # Registered documents (schema/documents.py), outside the bytes bound: their number is
        # the registry's to bound, and they are never pushed out by other documents.
        self._pinned: LRUCache[tuple[str, tuple[tuple[str, Any], ...]], _Entry] = LRUCache(
            maxsize=_PINNED_DOCUMENTS
        )

    @property
    def size(self) -> int:
        """The estimated bytes held."""
        return int(self._entries.currsize)

    def __len__(self) -> int:
        return len(self._entries)

    def parse(self, query: str, options: Mapping[str, Any]) -> _Entry:
        """The parsed document (cached if it fits); raises GraphQLError if it does not parse."""
        key = (query, tuple(sorted(options.items())))
        entry = self._pinned.get(key) or self._entries.get(key)
        if entry is None:
            document = parse(query, **options)
            entry = _Entry(document, _estimated_size(query, document))
            if entry.size <= self.max_entry_bytes:
                self._entries[key] = entry
        return entry

    def pinned(self, query: str, options: Mapping[str, Any]) -> _Entry | None:
        return self._pinned.get((query, tuple(sorted(options.items()))))

    def pin(self, query: str, options: Mapping[str, Any], valid_under: Rules | None) -> _Entry:
        """A registered document, parsed once and kept apart from the others; ``valid_under``:
        the rules it is known to pass (validated when it was registered, under this schema),
        so that requests skip its validation as well. Raises GraphQLError if it does not
        parse."""
        key = (query, tuple(sorted(options.items())))
        entry = self._pinned.get(key)
        if entry is None:
            document = parse(query, **options)
            entry = _Entry(document, _estimated_size(query, document))
            self._pinned[key] = entry
        if valid_under is not None:
            entry.validated.add(valid_under)
        return entry

    @staticmethod
    def validate(schema: GraphQLSchema, entry: _Entry, rules: Rules) -> list[GraphQLError]:
        """The document's validation errors under ``rules``; a pass is remembered."""
        if rules in entry.validated:
            return []
        errors = validate_document(schema, entry.document, rules)
        if not errors:
            entry.validated.add(rules)
        return errors


def _estimated_size(query: str, document: DocumentNode) -> int:
    tokens = 0
    token = document.loc.start_token if document.loc else None
    while token is not None:
        tokens += 1
        token = token.next
    return sys.getsizeof(query) + tokens * _BYTES_PER_TOKEN + _ENTRY_OVERHEAD


def _utf8_length_over(text: str, limit: int) -> int | None:
    """The UTF-8 length of ``text`` when it is over ``limit``, else None (most documents are
    not encoded for it: a character is at most 4 bytes)."""
    if len(text) * 4 <= limit:
        return None
    size = len(text.encode("utf-8", "surrogatepass"))
    return size if size > limit else None


class DocumentLimits(SchemaExtension):
    """Per request: refuses a document over ``max_bytes`` before parsing it, parses and
    validates through the shared cache, and refuses a document with several operations when
    no operationName picks one (Strawberry would run the first; the GraphQL spec says
    refuse)."""

    def __init__(self, cache: DocumentCache, max_bytes: int) -> None:
        self.cache = cache
        self.max_bytes = max_bytes
        self._entry: _Entry | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        # None when the request was refused already (schema/documents.py, TrustedDocuments).
        query = context.query if context.pre_execution_errors is None else None
        if query and (size := _utf8_length_over(query, self.max_bytes)) is not None:
            raise RequestRefused(
                f"The document is {size} bytes; at most {self.max_bytes} are accepted.",
                "DOCUMENT_TOO_LARGE",
            )
        if query:
            try:
                self._entry = self.cache.parse(query, context.parse_options)
                context.graphql_document = self._entry.document
            except Exception:
                # Strawberry parses it again inside its own error handling, where the error
                # policy gives the syntax error its code (raised here, it would escape).
                pass
        yield
        document = context.graphql_document
        if document is not None and context._provided_operation_name is None:
            operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
            if operations > 1:
                raise RequestRefused(
                    "Must provide operation name if query contains multiple operations."
                )

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if self._entry is not None and context.graphql_document is self._entry.document:
            context.pre_execution_errors = self.cache.validate(
                context.schema._schema,
                self._entry,
                context.validation_rules,
            )
        yield


# ------------------------------------------------------------------ list sizes


def too_long(count: int, max_items: int) -> str:
    return f"must hold at most {max_items} items (it has {count})"


def list_size_rule(max_items: int) -> type[ValidationRule]:
    """A validation rule refusing list literals longer than ``max_items`` where the argument's
    type is a list (a JSON scalar's lists are the scalar's own business)."""

    class ListSizeRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.path: list[str] = []

        def enter_variable_definition(self, node: VariableDefinitionNode, *_: Any) -> None:
            self.path = ["$" + node.variable.name.value]

        def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
            self.path = [node.name.value]

        def enter_object_field(self, node: ObjectFieldNode, *_: Any) -> None:
            self.path.append(node.name.value)

        def leave_object_field(self, node: ObjectFieldNode, *_: Any) -> None:
            self.path.pop()

        def enter_list_value(self, node: ListValueNode, *_: Any) -> None:
            # TypeInfo has already stepped into the list: its type is the parent's.
            list_type = get_nullable_type(self.context.get_parent_input_type())  # type: ignore[arg-type]
            if not isinstance(list_type, GraphQLList) or len(node.values) <= max_items:
                return
            name = ".".join(self.path)
            problem = too_long(len(node.values), max_items)
            if name.startswith("$"):
                message = f"Variable '{self.path[0]}' has a default value that {problem}."
            else:
                message = f"Argument '{name}' {problem}."
            self.report_error(
                GraphQLError(
                    message,
                    node,
                    extensions={"code": "BAD_USER_INPUT", "argument": name.lstrip("$")},
                )
            )

    return ListSizeRule


def _long_list(
    value: Any, type_: GraphQLInputType, max_items: int
) -> tuple[list[str | int], int] | None:
    """(path, length) of the first list in ``value`` longer than ``max_items`` where ``type_``
    says list, or None. Walks the raw value along the type, before graphql-core coerces it."""
    nullable = get_nullable_type(type_)  # type: ignore[arg-type]
    if isinstance(nullable, GraphQLList):
        if not isinstance(value, list):
            # A single value stands for a list of one.
            return _long_list(value, nullable.of_type, max_items)
        if len(value) > max_items:
            return [], len(value)
        for index, item in enumerate(value):
            if found := _long_list(item, nullable.of_type, max_items):
                return [index, *found[0]], found[1]
    elif isinstance(nullable, GraphQLInputObjectType) and isinstance(value, dict):
        for name, input_field in nullable.fields.items():
            if name in value and (found := _long_list(value[name], input_field.type, max_items)):
                return [name, *found[0]], found[1]
    return None


def variable_list_error(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any],
    max_items: int,
) -> GraphQLError | None:
    """The error for the first variable of the operation that holds a list longer than
    ``max_items`` where its type says list, or None; run on the raw variables before
    graphql-core coerces them (literals are ``list_size_rule``'s)."""
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode) or (
            operation_name is not None
            and (definition.name is None or definition.name.value != operation_name)
        ):
            continue
        for variable in definition.variable_definitions or ():
            var_name = variable.variable.name.value
            type_ = type_from_ast(schema, variable.type)
            if var_name not in variables or type_ is None:
                continue
            if found := _long_list(variables[var_name], type_, max_items):  # type: ignore[arg-type]
                path, count = found
                # Spelled as graphql-core spells a variable's coercion errors.
                return GraphQLError(
                    f"Variable '${var_name}' has invalid value{print_path_list(path)}: "
                    f"the list {too_long(count, max_items)}.",
                    variable,
                    extensions={"code": "BAD_USER_INPUT"},
                )
        return None
    return None


# ------------------------------------------------------------------ cost and rate limits


def bucket_of(context: Any) -> tuple[str, Policy] | None:
    """The caller's bucket: its API key's (with the key's own rate, if it has one), its
    session's, or its client address's without credentials."""
    limiter = context.limiter
    if limiter is None:
        return None
    principal = context.principal
    policy = limiter.default_policy()
    if principal is None:
        return f"ip:{client_address(context)[:64]}", policy
    if principal.api_key_id is not None:
        if principal.rate is not None:
            policy = Policy(maximum=principal.rate[0], rate=principal.rate[1])
        return f"{API_KEY_BUCKET}{principal.api_key_id}", policy
    return f"session:{principal.session_id}", policy


def rate_limit_headers(status: Status) -> dict[str, str]:
    """IETF httpapi-ratelimit-headers (draft 9): the policy (its quota and the seconds the
    bucket takes to refill from empty) and what remains (and the seconds until it is full)."""
    window = max(1, -(-status.maximum // status.rate))
    return {
        "RateLimit-Policy": f'"cost";q={status.maximum};w={window}',
        "RateLimit": f'"cost";r={int(status.available)};t={status.full_in}',
    }


class CostLimits(SchemaExtension):
    """Per operation: its static cost, refused over ``max_cost`` (MAX_COST_EXCEEDED, with the
    cost) and when the caller's bucket cannot pay it (RATE_LIMITED, Retry-After, HTTP 429);
    once it ran, the actual cost is charged instead (what was reserved beyond it goes back).
    Every result carries ``extensions.cost`` (Shopify's shape), every HTTP response the
    RateLimit headers."""

    def __init__(
        self, costs: Callable[[], Costs], max_cost: int, max_list_size: int | None = None
    ) -> None:
        self.costs = costs
        self.max_cost = max_cost
        self.max_list_size = max_list_size
        self.requested: int | None = None
        self.actual: int | None = None
        self.status: Status | None = None

    def _refuse(self, message: str, extensions: dict[str, Any]) -> None:
        if self.execution_context.operation_type is OperationType.SUBSCRIPTION:
            # Strawberry's subscriptions do not take a result set here; an error raised is
            # answered as one (a single `next` with the error, then `complete`).
            raise GraphQLError(message, extensions=extensions)
        self.execution_context.result = ExecutionResult(
            data=None, errors=[GraphQLError(message, extensions=extensions)]
        )

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is None:
            yield
            return
        costs = self.costs()
        if (
            self.max_list_size is not None
            and context.variables
            and variable_list_error(
                costs.table.schema,
                document,
                context.operation_name,
                context.variables,
                self.max_list_size,
            )
        ):
            # Bad input first: execution refuses the variable's list (BAD_USER_INPUT, naming
            # it) before anything runs; the operation has no cost, as one that did not validate.
            yield
            return
        requested = costs.requested(document, context.operation_name, context.variables)
        self.requested = requested
        if self.max_cost and requested > self.max_cost:
            self._refuse(
                f"The query costs {requested}; at most {self.max_cost} is accepted. Ask for "
                "fewer items (first/last) or fewer nested lists.",
                {"code": "MAX_COST_EXCEEDED", "cost": requested, "maximumCost": self.max_cost},
            )
            yield
            return
        request_context = context.context
        bucket = bucket_of(request_context)
        reserved = 0
        if bucket is not None:
            key, policy = bucket
            limiter = request_context.limiter
            decision = await limiter.reserve(key, policy, requested)
            self.status = decision.status
            if not decision.allowed:
                retry = decision.retry_after
                response = getattr(request_context, "response", None)
                if isinstance(response, Response):  # HTTP: 429 (server.py keeps it)
                    response.status_code = 429
                    response.headers["Retry-After"] = str(retry)
                self._refuse(
                    f"Rate limited: the query costs {requested} and "
                    f"{int(decision.status.available)} of {policy.maximum} points are available "
                    f"(they come back at {policy.rate} a second); try again in {retry} seconds.",
                    {"code": "RATE_LIMITED", "cost": requested, "retryAfter": retry},
                )
                yield
                return
            reserved = requested
        yield
        result = context.result
        data = getattr(result, "data", None)
        streamed = context.operation_type is OperationType.SUBSCRIPTION
        self.actual = (
            requested if streamed else costs.actual(document, context.operation_name, data)
        )
        if bucket is not None:
            self.status = request_context.limiter.settle(bucket[0], reserved, self.actual)

    def get_results(self) -> dict[str, Any]:
        if self.requested is None:
            return {}
        context = self.execution_context.context
        if self.status is None and (bucket := bucket_of(context)) is not None:
            self.status = context.limiter.status(*bucket)
        cost: dict[str, Any] = {
            "requestedQueryCost": self.requested,
            "actualQueryCost": self.actual,
        }
        if self.status is not None:
            cost["throttleStatus"] = {
                "maximumAvailable": self.status.maximum,
                "currentlyAvailable": int(self.status.available),
                "restoreRate": self.status.rate,
            }
            response = getattr(context, "response", None)
            if isinstance(response, Response):  # not over a WebSocket
                response.headers.update(rate_limit_headers(self.status))
        return {"cost": cost}
