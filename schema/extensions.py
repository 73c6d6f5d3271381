"""Error policy: expected errors stay readable, unexpected ones are logged and masked."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError, NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension

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


class ErrorPolicy(SchemaExtension):
    """Gives every error an ``extensions.code``; masks and logs unexpected exceptions."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if not result or not result.errors:
            return
        request_id = getattr(self.execution_context.context, "request_id", None)
        processed = []
        for error in result.errors:
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
        result.errors = processed


class AnonymousIntrospection(SchemaExtension):
    """Refuses introspection to callers without credentials when the setting says so."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context.context
        if context.principal is None and not context.settings.anonymous_introspection:
            self.execution_context.validation_rules = (
                *self.execution_context.validation_rules,
                NoSchemaIntrospectionCustomRule,
            )
        yield
