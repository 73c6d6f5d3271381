"""What SQLite's planner cannot know without statistics, told in the SQL (see ARCHITECTURE.md,
"Search and query plans": the database runs without ANALYZE)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.sqltypes import NullType
from sqlalchemy.sql.visitors import InternalTraversal


class Selective(ColumnElement[bool]):
    """A condition that few rows meet, such as an exact email.

    Without statistics SQLite rates every index by the same defaults, and for a page sorted by
    another key it scans the sort index rather than sort the few rows this condition's index
    finds: 0.8-2.5 s for an email filter at 1M leads instead of well under a millisecond. On
    SQLite it compiles to ``unlikely(condition)``, which tells the planner the condition is
    rarely true (the index stays usable); elsewhere to the condition itself.
    """

    __visit_name__ = "leadgraph_selective"
    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012  (SQLAlchemy reads it from the class)
        ("condition", InternalTraversal.dp_clauseelement)
    ]
    # Typed as a truth value, SQLite would get "unlikely(...) = 1", which hides the hint.
    type = NullType()  # type: ignore[assignment]

    def __init__(self, condition: ColumnElement[bool]) -> None:
        self.condition = condition


@compiles(Selective)
def _compile_selective(element: Selective, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.condition, **kw)


@compiles(Selective, "sqlite")
def _compile_selective_sqlite(element: Selective, compiler: SQLCompiler, **kw: Any) -> str:
    return f"unlikely({compiler.process(element.condition, **kw)})"
