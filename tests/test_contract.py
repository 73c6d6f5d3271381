"""The served schema holds every name and shape of the public contract, and the committed SDL
is current.

The contract is ``tests/contract/*.graphql``, a verbatim copy of the shared contract: several
files read as one document, ``schema.graphql`` first. Each file belongs to a capability; the
files whose capability has landed are listed in ``IMPLEMENTED`` and every name they declare must
be served. A capability's issue adds its file there; one that lands in parts names, for each
part, the types and members of its file that have landed (``PARTS``)."""

from __future__ import annotations

import subprocess
import sys
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
    parse,
)

from schema import build_schema as build_leadgraph_schema
from tests.conftest import GraphQLClient

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_DIR = ROOT / "tests" / "contract"
# The contract files whose capability has landed: every name they declare is checked.
IMPLEMENTED = (
    *("schema.graphql", "access.graphql", "events.graphql", "intake.graphql"),
    *("pipeline.graphql", "privacy.graphql"),
)
# Files whose capability lands in parts: the names (a type with all it declares, or one
# "Type.member") of the parts that have landed; only those are checked.
PARTS: dict[str, frozenset[str]] = {}


def contract_files() -> list[Path]:
    """The contract's files in reading order: ``schema.graphql`` first, then by name."""
    return sorted(
        CONTRACT_DIR.glob("*.graphql"), key=lambda p: (p.name != "schema.graphql", p.name)
    )


def contract_document() -> str:
    return "\n".join(p.read_text() for p in contract_files())


def _landed(parts: frozenset[str] | None, type_name: str, member: str | None) -> bool:
    """Whether a name is in the landed ``parts`` of its file (None: the whole file landed)."""
    return parts is None or type_name in parts or f"{type_name}.{member}" in parts


def declared_in(
    file_names: tuple[str, ...], parts: dict[str, frozenset[str]] | None = None
) -> set[tuple[str, str | None]]:
    """``(type, None)`` for each type a file defines and ``(type, member)`` for each field or
    enum value a file declares, extensions included, over the named files; of a file in
    ``parts``, only the names its landed parts list."""
    names: set[tuple[str, str | None]] = set()
    parts = parts or {}
    for path in contract_files():
        if path.name not in file_names and path.name not in parts:
            continue
        landed = parts.get(path.name)
        for definition in parse(path.read_text()).definitions:
            type_name = definition.name.value  # type: ignore[attr-defined]
            if not getattr(definition, "kind", "").endswith("extension") and _landed(
                landed, type_name, None
            ):
                names.add((type_name, None))
            for member in [
                *(getattr(definition, "fields", None) or ()),
                *(getattr(definition, "values", None) or ()),
                *(getattr(definition, "types", None) or ()),
            ]:
                if _landed(landed, type_name, member.name.value):
                    names.add((type_name, member.name.value))
    return names


def contract_gaps(
    want: GraphQLSchema,
    have: GraphQLSchema,
    only: set[tuple[str, str | None]] | None = None,
) -> list[str]:
    """Every contract name missing from ``have``, or present with another type or nullability;
    with ``only``, just the types and members named there."""

    def wanted_member(type_name: str, member: str) -> bool:
        return only is None or (type_name, member) in only

    gaps: list[str] = []
    for name, wanted in want.type_map.items():
        if name.startswith("__"):
            continue
        if only is not None and not any(t == name for t, _ in only):
            continue
        found = have.type_map.get(name)
        if found is None:
            gaps.append(f"type {name}")
            continue
        if type(found) is not type(wanted):
            gaps.append(f"{name} is a {type(found).__name__}")
            continue
        if is_enum_type(wanted):
            gaps += [
                f"{name}.{v}"
                for v in wanted.values
                if v not in found.values and wanted_member(name, v)
            ]
        if is_object_type(wanted) or is_interface_type(wanted):
            gaps += [
                f"{name} implements {i.name}"
                for i in wanted.interfaces
                if i.name not in {j.name for j in found.interfaces}
            ]
        if is_object_type(wanted) or is_input_object_type(wanted) or is_interface_type(wanted):
            for field_name, field in wanted.fields.items():
                if not wanted_member(name, field_name):
                    continue
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
    want = build_schema(contract_document())
    assert contract_gaps(want, served, only=declared_in(IMPLEMENTED, PARTS)) == []


def test_the_contract_files_read_as_one_document() -> None:
    names = [p.name for p in contract_files()]
    assert names[0] == "schema.graphql"
    assert set(IMPLEMENTED) <= set(names)
    assert set(PARTS) <= set(names) and not set(PARTS) & set(IMPLEMENTED)
    build_schema(contract_document())  # raises if the files do not fit together


def test_the_contract_check_covers_only_landed_files() -> None:
    want = build_schema(
        "type Query { a: Int!  b: String }  extend type Query { c: Int }  enum E { X Y }"
    )
    have = build_schema("type Query { a: Int! }  enum E { X }")
    only = {("Query", None), ("Query", "a"), ("Query", "b"), ("E", None), ("E", "Y")}
    assert contract_gaps(want, have, only=only) == ["Query.b", "E.Y"]


def test_a_part_of_a_file_is_checked_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "schema.graphql").write_text("type Query { a: Int }")
    (tmp_path / "later.graphql").write_text(
        "type Log { seq: Int }  type Hook { url: String }\n"
        "extend type Query { log: Log  hooks: [Hook] }"
    )
    monkeypatch.setattr(f"{__name__}.CONTRACT_DIR", tmp_path)

    landed = declared_in(("schema.graphql",), {"later.graphql": frozenset({"Log", "Query.log"})})

    assert landed == {
        ("Query", None),
        ("Query", "a"),
        ("Log", None),
        ("Log", "seq"),
        ("Query", "log"),
    }


def test_every_landed_part_names_what_its_file_declares() -> None:
    for file_name, landed in PARTS.items():
        declared = declared_in((file_name,))
        names = {t for t, _ in declared} | {f"{t}.{m}" for t, m in declared if m is not None}
        assert landed <= names, (file_name, landed - names)


def test_the_contract_check_notices_a_missing_field() -> None:
    want = build_schema("type Query { a: Int!  b: String }")
    have = build_schema("type Query { a: Int }")
    assert contract_gaps(want, have) == ["Query.a: Int, contract Int!", "Query.b"]


def test_committed_sdl_is_current() -> None:
    committed = (ROOT / "schema" / "schema.graphql").read_text()
    assert committed == build_leadgraph_schema().as_str() + "\n", (
        "schema/schema.graphql is stale: run `make schema` and commit it"
    )


def test_a_fresh_process_prints_the_committed_sdl_with_the_cost_directives_imported() -> None:
    # The first Schema built in a process (schema.schema, at import) is the one whose fields
    # get @listSize only after the build: its @link must import the directive all the same.
    printed = subprocess.run(
        [sys.executable, "-c", "import sys, schema; sys.stdout.write(schema.schema.as_str())"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    first_line = printed.splitlines()[0]
    assert 'import: ["@cost", "@key", "@listSize"]' in first_line, first_line
    assert printed + "\n" == (ROOT / "schema" / "schema.graphql").read_text()
    assert "leads(" in printed
    assert '@listSize(assumedSize: 20, slicingArguments: ["first", "last"]' in printed
    assert "@cost(weight: 10)" in printed


@pytest.mark.parametrize("type_name", ["Lead", "Client"])
def test_subgraph_sdl_declares_the_entity_key(gql: GraphQLClient, type_name: str) -> None:
    sdl = gql.data("{ _service { sdl } }")["_service"]["sdl"]
    assert '@link(url: "https://specs.apollo.dev/federation/v2.11"' in sdl
    assert f'type {type_name} implements Node @key(fields: "id")' in sdl
