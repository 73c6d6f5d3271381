"""Error policy: expected errors stay readable, unexpected ones are logged and masked."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    NoSchemaIntrospectionCustomRule,
    ValidationRule,
    get_named_type,
)
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import StreamExecutionResult

from db.errors import StatementTimeout
from resolvers.errors import AuthError, BadInput, Unavailable

logger = logging.getLogger("leadgraph.errors")

INTERNAL_MESSAGE = "Internal server error. Quote the requestId when reporting it."


def _code_for(error: GraphQLError) -> str:
    original = error.original_error
    if isinstance(original, BadInput):
        return BadInput.code
    if isinstance(original, StatementTimeout):
        return "TIMEOUT"
    if isinstance(original, (AuthError, Unavailable)):
        return original.code
    if error.path is None:
        # Raised before execution: parsing, validation or variable coercion.
        if error.message.startswith("Syntax Error"):
            return "GRAPHQL_PARSE_FAILED"
        if error.message.startswith("Variable"):
            return "BAD_USER_INPUT"
        return "GRAPHQL_VALIDATION_FAILED"
    return "INTERNAL_SERVER_ERROR"


def _is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return (
        error.path is not None
        and original is not None
        and not isinstance(
            original, (BadInput, AuthError, GraphQLError, StatementTimeout, Unavailable)
        )
    )


def shape_errors(errors: list[GraphQLError], request_id: str | None) -> list[GraphQLError]:
    """The error policy, for every transport: each error gets an ``extensions.code``;
    unexpected exceptions are logged and replaced by a generic message and the requestId."""
    processed = []
    for error in errors:
        if _is_unexpected(error):
            logger.error(
                "unexpected error in %s (request %s)",
                ".".join(map(str, error.path or [])),
                request_id,
                exc_info=error.original_error,
            )
            error = GraphQLError(
                INTERNAL_MESSAGE,
                nodes=error.nodes,
                path=error.path,
                extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
            )
        else:
            extensions = dict(error.extensions or {})
            extensions.setdefault("code", _code_for(error))
            if isinstance(error.original_error, StatementTimeout):
                # Expected under load, so no traceback; the id ties the answer to the log.
                logger.warning(
                    "statement timeout in %s (request %s)",
                    ".".join(map(str, error.path or [])),
                    request_id,
                )
                extensions.setdefault("requestId", request_id)
            if isinstance(error.original_error, Unavailable):
                extensions.setdefault("requestId", request_id)  # its cause is in the log
            if isinstance(error.original_error, BadInput) and error.original_error.argument:
                extensions.setdefault("argument", error.original_error.argument)
            error = GraphQLError(
                error.message,
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                original_error=error.original_error,
                extensions=extensions,
            )
        processed.append(error)
    return processed


class ErrorPolicy(SchemaExtension):
    """Applies ``shape_errors`` to every result: once the operation is over for a response
    (HTTP), and to each result before it is sent for a stream (WebSocket), where the operation
    only ends after its results have gone out (the way Strawberry's MaskErrors does both)."""

    _streamed = False  # per operation: Strawberry makes an instance for each

    def _shape(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            request_id = getattr(self.execution_context.context, "request_id", None)
            result.errors = shape_errors(errors, request_id)  # type: ignore[attr-defined]

    def on_operation(self) -> Iterator[None]:
        yield
        if not self._streamed:  # a stream's results were shaped as they went out
            self._shape(self.execution_context.result)

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        self._streamed = True
        self._shape(result)
        yield


class SettledLoads(SchemaExtension):
    """Execution ends once the DataLoader batches it started have ended, those cancelled with
    a failed field's siblings included (resolvers/loaders.py, ``InFlight``): no read runs on
    past the response."""

    async def on_execute(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context.context
        loaders = vars(context).get("loaders")  # built only when a field used one
        if loaders is not None and loaders.in_flight.tasks:
            await loaders.in_flight.settled()


class NoServiceSDLRule(ValidationRule):
    """Refuses federation's ``_service { sdl }``: the whole schema as text, so introspection by
    another name (a gateway sends credentials when it composes)."""

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        type_ = get_named_type(self.context.get_type())
        if type_ is not None and type_.name == "_Service":
            self.report_error(
                GraphQLError(
                    "GraphQL introspection has been disabled, but the requested query"
                    f" contained the field '{node.name.value}'.",
                    node,
                )
            )


class AnonymousIntrospection(SchemaExtension):
    """Refuses introspection (and ``_service``) to callers without credentials when the setting
    says so."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context.context
        if context.principal is None and not context.settings.anonymous_introspection:
            self.execution_context.validation_rules = (
                *self.execution_context.validation_rules,
                NoSchemaIntrospectionCustomRule,
                NoServiceSDLRule,
            )
        yield
