"""Text input that not every database can store: the NUL character (U+0000).

One engine's text and JSON columns refuse NUL while the other stores it (ARCHITECTURE.md), so
it is refused for both, once, where a request's values enter execution
(``ExecutionContext.build``): every string in the variables, and every string literal in the
document. Every argument of every field, filter and mutation is covered, on every transport,
before any resolver runs; the error names where the NUL is, like the refusal of unpaired
surrogates where the request is decoded (server.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

from graphql import (
    ArgumentNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    GraphQLError,
    ObjectFieldNode,
    StringValueNode,
    VariableDefinitionNode,
    Visitor,
    visit,
)

NUL = "\x00"
# A GraphQL string holds NUL as the character itself or through an escape, "\u0000" or
# "\u{0}": documents without any of them are not walked.
_MAYBE_NUL = re.compile(r"\x00|\\u(?:0000|\{0+\})")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CODE = "BAD_USER_INPUT"


def _message(where: str, in_a_key: bool = False) -> str:
    return (
        f"Invalid text {'in the key ' if in_a_key else 'at '}{where}: "
        f"{json.dumps(NUL)} (NUL) cannot be stored; leave it out."
    )


def spelled_path(path: list[str | int]) -> str:
    """variables.input.tags[2], or variables.input.metadata["odd key"]."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _NAME.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _in_value(value: Any) -> tuple[list[str | int], bool] | None:
    """(path, in_a_key) of the first string in ``value`` holding NUL, or None. Iterative, as
    deep JSON may be."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return path, False
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and NUL in key:
                    return [*path, key], True
                stack.append((child, [*path, key]))
        elif isinstance(item, list):
            stack.extend((child, [*path, n]) for n, child in enumerate(item))
    return None


class _Literals(Visitor):
    """Finds string literals holding NUL, with where each one is: ``leads(filter.source[1])``,
    ``createLead(input.metadata.tags[0])``, ``$s (default value)``."""

    def __init__(self, document: DocumentNode) -> None:
        super().__init__()
        self.document = document
        self.errors: list[GraphQLError] = []

    def enter_string_value(
        self, node: StringValueNode, _key: Any, _parent: Any, path: Any, _ancestors: Any
    ) -> None:
        if NUL not in node.value:
            return
        owner, inside = "the document", ""
        step: Any = self.document
        previous: Any = None
        for key in path:
            step = step[key] if isinstance(key, int) else getattr(step, key)
            if isinstance(step, FieldNode):
                owner, inside = step.name.value, ""
            elif isinstance(step, DirectiveNode):
                owner, inside = f"@{step.name.value}", ""
            elif isinstance(step, VariableDefinitionNode):
                owner, inside = f"${step.variable.name.value} (default value)", ""
            elif isinstance(step, ArgumentNode):
                inside = step.name.value
            elif isinstance(step, ObjectFieldNode):
                inside += f".{step.name.value}"
            elif isinstance(key, int) and previous == "values":  # an item of a list literal
                inside += f"[{key}]"
            previous = key
        where = f"{owner}({inside})" if inside else owner
        self.errors.append(GraphQLError(_message(where), node, extensions={"code": CODE}))


def nul_errors(document: DocumentNode, variables: dict[str, Any] | None) -> list[GraphQLError]:
    """An error for each place in the request's input that holds NUL (none, usually)."""
    errors: list[GraphQLError] = []
    if variables and (found := _in_value(variables)):
        path, in_a_key = found
        where = spelled_path(["variables", *path])
        errors.append(GraphQLError(_message(where, in_a_key), extensions={"code": CODE}))
    source = document.loc.source.body if document.loc else None
    if source is None or _MAYBE_NUL.search(source):
        literals = _Literals(document)
        visit(document, literals)
        errors += literals.errors
    return errors
