"""Apollo federated tracing (ftv1): a request with ``apollo-federation-include-trace: ftv1`` gets
its resolvers' timings and errors in ``extensions.ftv1``, the base64 of a protobuf ``Trace``
(Apollo's reports.proto), which a gateway or router folds into its own trace of the query plan.

Tracing is decided per request: without the header the extension does not wrap any resolver, so
execution keeps its fast path (schema/execution.py) and nothing is recorded.

Strawberry's own ApolloFederationTracingExtension is not used: it wraps every resolver of every
request (traced or not), records only fields that have a resolver, and writes each exception's
own message into the trace, past our error masking.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from inspect import isawaitable
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from graphql import GraphQLError, GraphQLResolveInfo
from strawberry.extensions import SchemaExtension

HEADER = "apollo-federation-include-trace"
HEADER_VALUE = "ftv1"
_HEADER_KEY, _HEADER_VALUE = HEADER.encode(), HEADER_VALUE.encode()

# The part of Apollo's reports.proto (package mdg.engine.proto) that a subgraph fills in: field
# names and numbers exactly as there, so that any reader of that file decodes our bytes.
_TRACE_PROTO = """
name: "leadgraph/ftv1.proto"
package: "mdg.engine.proto"
dependency: "google/protobuf/timestamp.proto"
syntax: "proto3"
message_type {
  name: "Trace"
  field { name: "start_time" number: 4 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".google.protobuf.Timestamp" }
  field { name: "end_time" number: 3 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".google.protobuf.Timestamp" }
  field { name: "duration_ns" number: 11 label: LABEL_OPTIONAL type: TYPE_UINT64 }
  field { name: "root" number: 14 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".mdg.engine.proto.Trace.Node" }
  nested_type {
    name: "Location"
    field { name: "line" number: 1 label: LABEL_OPTIONAL type: TYPE_UINT32 }
    field { name: "column" number: 2 label: LABEL_OPTIONAL type: TYPE_UINT32 }
  }
  nested_type {
    name: "Error"
    field { name: "message" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "location" number: 2 label: LABEL_REPEATED type: TYPE_MESSAGE
            type_name: ".mdg.engine.proto.Trace.Location" }
    field { name: "time_ns" number: 3 label: LABEL_OPTIONAL type: TYPE_UINT64 }
    field { name: "json" number: 4 label: LABEL_OPTIONAL type: TYPE_STRING }
  }
  nested_type {
    name: "Node"
    oneof_decl { name: "id" }
    field { name: "response_name" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING
            oneof_index: 0 }
    field { name: "index" number: 2 label: LABEL_OPTIONAL type: TYPE_UINT32 oneof_index: 0 }
    field { name: "original_field_name" number: 14 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "type" number: 3 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "parent_type" number: 13 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "start_time" number: 8 label: LABEL_OPTIONAL type: TYPE_UINT64 }
    field { name: "end_time" number: 9 label: LABEL_OPTIONAL type: TYPE_UINT64 }
    field { name: "error" number: 11 label: LABEL_REPEATED type: TYPE_MESSAGE
            type_name: ".mdg.engine.proto.Trace.Error" }
    field { name: "child" number: 12 label: LABEL_REPEATED type: TYPE_MESSAGE
            type_name: ".mdg.engine.proto.Trace.Node" }
  }
}
"""


def _trace_class() -> Any:
    # A pool of our own: the process's default pool may hold another mdg.engine.proto.Trace.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(_timestamp_pb2.DESCRIPTOR.serialized_pb))
    pool.Add(text_format.Parse(_TRACE_PROTO, descriptor_pb2.FileDescriptorProto()))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("mdg.engine.proto.Trace"))


# Built at run time from the descriptor above, so mypy knows none of its fields.
Trace: Any = _trace_class()
"""The protobuf message class of an ftv1 trace (``Trace.FromString`` decodes one)."""

_Key = tuple[str | int, ...]


class _Tree:
    """The trace's nodes by response path: a field's node, and an index node per list item."""

    def __init__(self, root: Any) -> None:
        self.nodes: dict[_Key, Any] = {(): root}

    def node(self, path: _Key) -> Any:
        node = self.nodes.get(path)
        if node is None:
            node = self.node(path[:-1]).child.add()
            key = path[-1]
            if isinstance(key, int):
                node.index = key
            else:
                node.response_name = key
            self.nodes[path] = node
        return node


def _path(info: GraphQLResolveInfo) -> _Key:
    return tuple(info.path.as_list())


class FederatedTracing(SchemaExtension):
    """Answers ``apollo-federation-include-trace: ftv1`` with ``extensions.ftv1``.

    Each field's node holds its resolver's start and end (ns since the trace started; an async
    resolver ends when its value is ready). Errors are those of the response, masked as there,
    on the node of their path (or the root's)."""

    def _implements_resolve(self) -> bool:  # type: ignore[override]
        # Strawberry asks each request's extensions whether to wrap resolvers (a classmethod
        # there); answering per request keeps untraced requests on the unwrapped fast path.
        return self.requested

    @property
    def requested(self) -> bool:
        cached: bool | None = getattr(self, "_requested", None)
        if cached is None:
            request = getattr(self.execution_context.context, "request", None)
            scope = getattr(request, "scope", None) or {}
            # The raw ASGI headers (names are lower-case there): Starlette's Headers mapping
            # answers a missing header through a KeyError, on every request.
            cached = scope.get("type") == "http" and any(
                name == _HEADER_KEY and value.strip().lower() == _HEADER_VALUE
                for name, value in scope.get("headers", ())
            )
            self._requested = cached
        return cached

    def on_operation(self) -> Iterator[None]:
        if self.requested:
            self._started = time.perf_counter_ns()
            self._trace: Any = Trace()
            self._trace.start_time.GetCurrentTime()
            self._tree = _Tree(self._trace.root)
        yield

    def _since_start(self) -> int:
        return time.perf_counter_ns() - self._started

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        node = self._tree.node(_path(info))
        if info.field_name != info.path.key:
            node.original_field_name = info.field_name
        node.type = str(info.return_type)
        node.parent_type = info.parent_type.name
        node.start_time = self._since_start()
        try:
            result = _next(root, info, *args, **kwargs)
        except Exception:
            node.end_time = self._since_start()
            raise
        if isawaitable(result):
            return self._finish_async(node, result)
        node.end_time = self._since_start()
        return result

    async def _finish_async(self, node: Any, result: Any) -> Any:
        try:
            return await result
        finally:
            node.end_time = self._since_start()

    def get_results(self) -> dict[str, Any]:
        if not self.requested or not hasattr(self, "_trace"):
            return {}
        trace = self._trace
        # Strawberry puts the response's errors here just before asking for results: after
        # ErrorPolicy gave them codes and masked the unexpected ones.
        for error in self.execution_context.pre_execution_errors or []:
            node = self._tree.node(tuple(error.path)) if error.path else trace.root
            _add_error(node, error)
        trace.duration_ns = self._since_start()
        trace.end_time.GetCurrentTime()
        return {"ftv1": base64.b64encode(trace.SerializeToString()).decode("ascii")}


def _add_error(node: Any, error: GraphQLError) -> None:
    entry = node.error.add()
    entry.message = error.message
    for location in error.locations or []:
        entry.location.add(line=location.line, column=location.column)
    entry.json = json.dumps(error.formatted, separators=(",", ":"))
