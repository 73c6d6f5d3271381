"""Bulk reads for exports: the list pages' statements, in pages of thousands of rows."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Table, Text, cast

from db import reads
from db.repositories.base import (
    KEYSET_ID,
    KEYSET_VALUE,
    PAGE_LIMIT,
    SCOPE_PARAM,
    Bound,
    FilterSpec,
    Keyset,
    Repository,
    Shape,
    _page,
)


@lru_cache(maxsize=128)
def _bulk_page(
    table: Table,
    bound: tuple[Bound, ...],
    shape: Shape,
    columns: tuple[str, ...],
    sort_column: str,
    descending: bool,
    keyset: bool,
) -> reads.Reusable:
    """A list page's statement (same SQL, same parameters) with its JSON columns read as their
    JSON text, cast in SQL (decoding them, which asyncpg does itself for jsonb, was two
    fifths of an export's CPU, only to be encoded again), never
    tried on SQLite's event-loop thread: a page of thousands of rows always outlasts the inline
    budget, so each try would be a run thrown away."""
    page = _page(table, bound, shape, columns, sort_column, descending, keyset)
    selected = [
        cast(table.c[key], Text).label(key) if isinstance(table.c[key].type, JSON) else table.c[key]
        for key in columns
    ]
    return reads.Reusable(page.stmt.with_only_columns(*selected))  # type: ignore[attr-defined]


async def bulk_page(
    repository: Repository,
    spec: FilterSpec | None,
    sort_column: str,
    descending: bool,
    start: Keyset | None,
    limit: int,
    columns: Sequence[str],
) -> list[Any]:
    """Up to ``limit`` rows (``columns`` only) matching ``spec`` in (sort_column, id) order,
    strictly past ``start``: ``Repository.page``, for large pages. JSON columns hold their
    JSON text (a str) unless the spec searches, which reads them decoded."""
    if spec is not None and spec.search:
        # A search's statement is built per term and never runs inline anyway.
        return await repository.page(spec, sort_column, descending, start, limit, columns)
    shape, params = repository.filter_shape(spec)
    page = _bulk_page(
        repository.table,
        repository.bound,
        shape,
        tuple(columns),
        sort_column,
        descending,
        start is not None,
    )
    params |= {SCOPE_PARAM: repository.workspace_id, PAGE_LIMIT: limit}
    if start is not None:
        params |= {KEYSET_VALUE: start.value, KEYSET_ID: start.id}
    return await reads.all_rows(repository.conn, page, params)
