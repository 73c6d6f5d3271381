"""`search`: a case-insensitive substring match on ``search_key``, fast at a million rows.

The condition is always ``search_key LIKE '%term%'`` (wildcards escaped), on folded text, so it
means the same on every engine. What differs is how the candidates are found:

- PostgreSQL: the GIN trigram index on ``search_key`` (``pg_trgm``, migration 0004) serves the
  LIKE directly; the planner weighs it against the other indexes with its own statistics.
- SQLite: an FTS5 ``trigram`` table per searchable table (``leads_fts``, ``clients_fts``, kept in
  step by triggers) finds the rows holding every trigram of the term; the LIKE then rechecks
  each candidate, so the answer is exactly the substring match (the trigram query alone can
  over-match, never under-match). Terms under three characters have no trigram: LIKE alone.

SQLite's planner cannot tell a rare term from a common one (FTS5 reports a fixed cost), and
each needs another plan: rowids from FTS5 for a rare term (a few lookups and a small sort),
the sort index scanned in order for a common one (a page fills within a few rows; driving
from FTS5 would fetch and sort 100,000 rows). So one statement holds both, and the number of
FTS5 candidates, counted up to ``CANDIDATES``, picks which of them runs: the other's LIMIT is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    case,
    column,
    func,
    literal,
    select,
    table,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.sqltypes import NullType

from db.models.search import FTS_TABLES

# Up to this many FTS5 candidates, the rows are fetched by rowid and sorted; from this many on,
# the sort index is scanned instead. About sqrt(page x table size) at a million rows, where
# both plans cost a few milliseconds.
CANDIDATES = 2000
# The trigram tokenizer's token length: shorter terms cannot use the index.
TRIGRAM = 3


class TextSearch(ColumnElement[bool]):
    """``search_key`` of ``table`` contains ``term`` (already case-folded).

    Compiles to the LIKE alone; ``Repository.page``/``count`` recognise it and, on SQLite,
    build the statements that use FTS5 around it.
    """

    inherit_cache = False
    # Typed as a truth value, it would compile to "... = 1" on SQLite.
    type = NullType()  # type: ignore[assignment]

    def __init__(self, searched: Table, term: str) -> None:
        self.table = searched
        self.term = term
        self.substring: ColumnElement[bool] = searched.c.search_key.contains(term, autoescape=True)

    @property
    def fts_query(self) -> str | None:
        """The FTS5 query for this term, or None when the index cannot help."""
        return fts_query(self.term)


@compiles(TextSearch)
def _compile_text_search(element: TextSearch, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.substring, **kw)


def fts_query(term: str) -> str | None:
    """An FTS5 query matching every row whose text contains ``term``: its trigrams, every
    third one plus the last (together they cover the term), each a quoted string, ANDed.

    Disjoint trigrams are enough for a candidate set the LIKE then rechecks, and an AND of
    single tokens needs no positions (the index is ``detail=none``): 3-5 x cheaper than the
    phrase of all the term's overlapping trigrams. None for terms shorter than a trigram, and
    for terms holding NUL, which SQLite's text functions and the tokenizer both stop at.
    """
    if len(term) < TRIGRAM or "\x00" in term:
        return None
    starts = list(range(0, len(term) - TRIGRAM + 1, TRIGRAM))
    if starts[-1] != len(term) - TRIGRAM:
        starts.append(len(term) - TRIGRAM)
    grams = dict.fromkeys(term[s : s + TRIGRAM] for s in starts)
    return " AND ".join('"' + g.replace('"', '""') + '"' for g in grams)


def split(
    conditions: Sequence[ColumnElement[bool]],
) -> tuple[TextSearch | None, list[ColumnElement[bool]]]:
    """The search among ``conditions`` (if any), and the others with the search as its LIKE."""
    search: TextSearch | None = None
    plain: list[ColumnElement[bool]] = []
    for condition in conditions:
        if isinstance(condition, TextSearch):
            search = condition
            plain.append(condition.substring)
        else:
            plain.append(condition)
    return search, plain


def _fts(searched: Table) -> Any:
    name = FTS_TABLES[searched.name]
    return table(name, column("rowid"), column(name))


def _candidates(searched: Table, query: str) -> Any:
    """Up to CANDIDATES rowids from FTS5, materialised once per statement."""
    fts = _fts(searched)
    hits = select(fts.c.rowid).where(fts.c[fts.name].match(query)).limit(CANDIDATES)
    return hits.cte("fts_hits").prefix_with("MATERIALIZED")


def _plan_parts(search: TextSearch) -> tuple[Table, str, Any, ColumnElement[bool]]:
    """What both plans start from: the table, its FTS5 query, the (capped) candidates, and
    whether they are few."""
    query = search.fts_query
    assert query is not None, "only terms the index can serve take these plans"
    hits = _candidates(search.table, query)
    few = select(func.count()).select_from(hits).scalar_subquery() < CANDIDATES
    return search.table, query, hits, few


def _only_if(condition: ColumnElement[bool], limit: int) -> Any:
    """A LIMIT that is ``limit`` when ``condition`` holds and 0 otherwise: SQLite evaluates
    it once, before the loop, and skips the loop entirely at 0."""
    return case((condition, limit), else_=0)


def _unindexed(scope: ColumnElement[bool]) -> ColumnElement[bool]:
    """``+col = value`` for ``col = value``: the same test, but no index can serve it. Every
    index of a searchable table starts with workspace_id, so the rowid is the only way in
    left (SQLite's idiom; SQLAlchemy's hints do not render NOT INDEXED on SQLite)."""
    left, right = scope.left, scope.right  # type: ignore[attr-defined]
    plus = UnaryExpression(left, operator=operators.custom_op("+"), type_=left.type)
    return plus == right


def page_statement(
    search: TextSearch,
    scope: ColumnElement[bool],
    where: Sequence[ColumnElement[bool]],
    order: Sequence[Any],
    limit: int,
    columns: Sequence[str] | None = None,
) -> Select[Any]:
    """SQLite: the page of rows in ``scope`` (``workspace_id = :ws``) satisfying ``where``
    (which holds the search's LIKE), from the FTS5 candidates when they are few, from the
    sort index when they are many."""
    searched, _, hits, few = _plan_parts(search)
    ids = searched.c.id
    by_rowid = (
        select(ids)
        .where(_unindexed(scope), *where, ids.in_(select(hits.c.rowid)))
        .order_by(*order)
        .limit(_only_if(few, limit))
    )
    in_order = select(ids).where(scope, *where).order_by(*order).limit(_only_if(~few, limit))
    chosen = union_all(select(by_rowid.subquery().c.id), select(in_order.subquery().c.id))
    # The (at most ``limit``) chosen rows, fetched by rowid and put in order once more.
    selected = [searched.c[key] for key in columns] if columns else [searched]
    return (
        select(*selected)
        .where(_unindexed(scope), *where, ids.in_(chosen))
        .order_by(*order)
        .limit(limit)
    )


def count_statement(
    search: TextSearch, scope: ColumnElement[bool], where: Sequence[ColumnElement[bool]]
) -> Select[Any]:
    """SQLite: how many rows in ``scope`` satisfy ``where`` (which holds the search's LIKE).

    Few FTS5 candidates: fetched by rowid. Many, and the search alone: still every FTS5 rowid
    fetched (2-3 x cheaper than scanning an index of the whole workspace, at 10-15 % of the
    rows). Many, with other conditions: the planner's choice of index for those, with the
    FTS5 rowid set as a filter, which spares most rows the lookup and the LIKE.
    """
    searched, query, hits, few = _plan_parts(search)
    ids = searched.c.id
    fts = _fts(searched)
    every_hit = select(fts.c.rowid).where(fts.c[fts.name].match(query))
    alone = all(condition is search.substring for condition in where)
    by_rowid = (
        select(literal(1))
        .select_from(searched)
        .where(_unindexed(scope), *where, ids.in_(select(hits.c.rowid)))
        .limit(_only_if(few, -1))
    )
    filtered = (
        select(literal(1))
        .select_from(searched)
        .where(_unindexed(scope) if alone else scope, *where, ids.in_(every_hit))
        .limit(_only_if(~few, -1))
    )
    return select(
        select(func.count()).select_from(by_rowid.subquery()).scalar_subquery()
        + select(func.count()).select_from(filtered.subquery()).scalar_subquery()
    )
