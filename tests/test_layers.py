"""The import graph of the application: data flows down (server → schema → resolvers → db),
even in imports made only for type checking; and no module imports, when it loads, a module
that imports it back (the types of two schema modules may still name each other lazily)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["server", "schema", "resolvers", "db"]  # each may import only those after it


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    files = [ROOT / "server.py"]
    for package in LAYERS[1:]:
        files += [p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    return {_module_name(p): p for p in files}


def _at_load(statements: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run when the module loads: not in functions or TYPE_CHECKING."""
    for node in statements:
        if isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                yield from _at_load(node.body)
            yield from _at_load(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _at_load(block)
            for handler in node.handlers:
                yield from _at_load(handler.body)
        else:
            yield node


def _imports(name: str, path: Path, modules: dict[str, Path], *, at_load: bool) -> set[str]:
    """The application modules ``name`` imports: ``from a.b import c`` counts as a.b.c when
    that is a module, else as a.b."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    nodes = _at_load(tree.body) if at_load else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def _graph(*, at_load: bool) -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules, at_load=at_load) for name, path in modules.items()}


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_every_layer_imports_only_the_layers_below_it() -> None:
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in _graph(at_load=False).items()
        for target in targets
        if _layer(target) < _layer(module)
    )
    assert upward == []


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = _graph(at_load=True)
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' → '.join(exc.args[1])}") from None
    # The graph is the real one: the account flows reach the principal through the context.
    assert "resolvers.principal" in graph["resolvers.context"]
    assert "resolvers.context" in graph["resolvers.auth.sign_in"]
