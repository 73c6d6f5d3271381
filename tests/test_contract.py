"""The served schema holds every name and shape of the public contract, and the committed SDL
is current."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    GraphQLSchema,
    build_client_schema,
    build_schema,
    get_introspection_query,
    is_enum_type,
    is_input_object_type,
    is_interface_type,
    is_object_type,
)

from schema import build_schema as build_leadgraph_schema
from tests.conftest import GraphQLClient

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT.parent / "shared" / "contract" / "schema.graphql"


def contract_gaps(want: GraphQLSchema, have: GraphQLSchema) -> list[str]:
    """Every contract name missing from ``have``, or present with another type or nullability."""
    gaps: list[str] = []
    for name, wanted in want.type_map.items():
        if name.startswith("__"):
            continue
        found = have.type_map.get(name)
        if found is None:
            gaps.append(f"type {name}")
            continue
        if type(found) is not type(wanted):
            gaps.append(f"{name} is a {type(found).__name__}")
            continue
        if is_enum_type(wanted):
            gaps += [f"{name}.{v}" for v in wanted.values if v not in found.values]
        if is_object_type(wanted) or is_interface_type(wanted):
            gaps += [
                f"{name} implements {i.name}"
                for i in wanted.interfaces
                if i.name not in {j.name for j in found.interfaces}
            ]
        if is_object_type(wanted) or is_input_object_type(wanted) or is_interface_type(wanted):
            for field_name, field in wanted.fields.items():
                other = found.fields.get(field_name)
                if other is None:
                    gaps.append(f"{name}.{field_name}")
                    continue
                if str(other.type) != str(field.type):
                    gaps.append(f"{name}.{field_name}: {other.type}, contract {field.type}")
                for arg_name, arg in getattr(field, "args", {}).items():
                    other_arg = other.args.get(arg_name)
                    if other_arg is None or str(other_arg.type) != str(arg.type):
                        gaps.append(f"{name}.{field_name}({arg_name}: {arg.type})")
                extra_required = [
                    a
                    for a, v in getattr(other, "args", {}).items()
                    if a not in getattr(field, "args", {}) and "!" in str(v.type)
                ]
                gaps += [f"{name}.{field_name} requires extra argument {a}" for a in extra_required]
    return gaps


def test_introspection_holds_every_contract_name(gql: GraphQLClient) -> None:
    served = build_client_schema(gql.data(get_introspection_query()))
    assert contract_gaps(build_schema(CONTRACT.read_text()), served) == []


def test_the_contract_check_notices_a_missing_field() -> None:
    want = build_schema("type Query { a: Int!  b: String }")
    have = build_schema("type Query { a: Int }")
    assert contract_gaps(want, have) == ["Query.a: Int, contract Int!", "Query.b"]


def test_committed_sdl_is_current() -> None:
    committed = (ROOT / "schema" / "schema.graphql").read_text()
    assert committed == build_leadgraph_schema().as_str() + "\n", (
        "schema/schema.graphql is stale: run `make schema` and commit it"
    )


@pytest.mark.parametrize("type_name", ["Lead", "Client"])
def test_subgraph_sdl_declares_the_entity_key(gql: GraphQLClient, type_name: str) -> None:
    sdl = gql.data("{ _service { sdl } }")["_service"]["sdl"]
    assert '@link(url: "https://specs.apollo.dev/federation/v2.11"' in sdl
    assert f'type {type_name} implements Node @key(fields: "id")' in sdl
