"""The data layer on the suite's engine: every migration up and down, no drift from the models,
indexes, connection settings, UTC timestamps."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from db import migrate
from db.engine import Database
from db.models.search import managed_elsewhere
from db.settings import Settings
from db.types import UTCDateTime
from tests.conftest import GraphQLClient, LiveServer
from tests.databases import scratch_database

T = TypeVar("T")


@pytest.fixture
def scratch_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of the suite's engine, for migrations to build."""
    with scratch_database(tmp_path) as url:
        yield url


def on_database(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    """Runs ``work`` with a Database on ``url``, disposed afterwards on the same event loop."""

    async def run() -> T:
        db = Database(url, Settings(database_url=url, _env_file=None))  # type: ignore[call-arg]
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


async def inspected(db: Database, look: Callable[[Connection], T]) -> T:
    async with db.writer.connect() as conn:
        return await conn.run_sync(look)


def revisions() -> list[str]:
    """Every revision, oldest first."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions("base", "heads")))]


def schema_of(conn: Connection) -> dict[str, Any]:
    """What a migration can change: tables, columns, keys, indexes, constraints, row counts."""
    insp = inspect(conn)
    tables = {}
    for name in sorted(set(insp.get_table_names()) - {"alembic_version"}):
        tables[name] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(name)],
            "primary_key": insp.get_pk_constraint(name)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(name)
            ),
            "foreign_keys": sorted(
                (
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                )
                for fk in insp.get_foreign_keys(name)
            ),
            "unique": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(name)),
            "checks": sorted(c["name"] or "" for c in insp.get_check_constraints(name)),
            "rows": conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar(),
        }
    return {"version": MigrationContext.configure(conn).get_current_revision(), "tables": tables}


def test_every_migration_goes_up_and_down_and_up_again(scratch_url: str) -> None:
    steps = revisions()

    async def walk(db: Database) -> tuple[dict[str, Any], dict[str | None, Any], Any]:
        up: dict[str, Any] = {}
        for revision in steps:
            await migrate.upgrade(db, revision)
            up[revision] = await inspected(db, schema_of)
        down: dict[str | None, Any] = {}
        for previous in reversed([None, *steps[:-1]]):
            await migrate.downgrade(db, previous or "base")
            down[previous] = await inspected(db, schema_of)
        await migrate.upgrade(db)
        return up, down, await inspected(db, schema_of)

    up, down, again = on_database(scratch_url, walk)

    assert [up[r]["version"] for r in steps] == steps
    assert {"workspaces", "leads", "clients"} <= set(up[steps[0]]["tables"])
    assert up[steps[0]]["tables"]["workspaces"]["rows"] == 1  # the default workspace
    for revision in steps[:-1]:
        assert down[revision] == up[revision], f"downgrading to {revision}"
    assert down[None] == {"version": None, "tables": {}}
    assert again == up[steps[-1]]


def test_migrations_match_the_models(scratch_url: str) -> None:
    def compare(conn: Connection) -> list[object]:
        # As env.py compares: without the FTS5 tables (SQLite) or the other engine's indexes.
        include_name, include_object = managed_elsewhere(conn.dialect.name)
        opts = {"include_name": include_name, "include_object": include_object}
        return compare_metadata(MigrationContext.configure(conn, opts=opts), SQLModel.metadata)

    async def drift(db: Database) -> list[object]:
        await migrate.upgrade(db)
        return await inspected(db, compare)

    assert on_database(scratch_url, drift) == []


def test_every_sort_key_and_filter_has_an_index(scratch_url: str) -> None:
    async def run(db: Database) -> dict[str, list[list[str]]]:
        await migrate.upgrade(db)
        return await inspected(
            db,
            lambda c: {
                t: [i["column_names"] for i in inspect(c).get_indexes(t)]
                for t in ("leads", "clients")
            },
        )

    indexes = on_database(scratch_url, run)
    leads = {tuple(i) for i in indexes["leads"]}
    clients = {tuple(i) for i in indexes["clients"]}
    for key in ("created_at", "updated_at", "score", "name_key", "email_key"):
        assert ("workspace_id", key, "id") in leads
    for key in ("created_at", "updated_at", "name_key"):
        assert ("workspace_id", key, "id") in clients
    for key in ("city_key", "source_key"):
        assert ("workspace_id", key) in leads
    # Counts by state and status, and the convertedFrom loader, are answered by one index each.
    assert ("workspace_id", "state_key", "status") in leads
    assert ("workspace_id", "converted_client_id") in leads
    assert ("workspace_id", "email_key") in clients
    # ownerId and unassigned (issue 12), in the default order.
    assert ("workspace_id", "owner_id", "created_at", "id") in leads
    assert ("workspace_id", "owner_id", "created_at", "id") in clients


def test_connections_are_configured_for_the_engine(server: LiveServer) -> None:
    settings = server.settings

    async def configured() -> dict[str, object]:
        async with server.db.read() as conn:
            if server.db.is_sqlite:
                names = ("journal_mode", "foreign_keys", "busy_timeout", "cache_size")
                return {n: (await conn.execute(text(f"PRAGMA {n}"))).scalar() for n in names}
            names = ("statement_timeout", "transaction_isolation", "application_name")
            return {n: (await conn.execute(text(f"SHOW {n}"))).scalar() for n in names}

    if server.db.is_sqlite:
        expected: dict[str, object] = {
            "journal_mode": "wal",
            "foreign_keys": 1,
            "busy_timeout": 5000,
            "cache_size": -65536,
        }
    else:
        # Read committed is what convertLead's row locks and the email index rely on.
        expected = {
            "statement_timeout": "30s",
            "transaction_isolation": "read committed",
            "application_name": "leadgraph",
        }
    assert server.run(configured()) == expected
    # DB_POOL_SIZE sizes the pool readers use (on SQLite the writer is always one connection).
    assert server.db.engine.pool.size() == settings.db_pool_size == 20  # type: ignore[attr-defined]
    writer_size = 1 if server.db.is_sqlite else settings.db_pool_size
    assert server.db.writer.pool.size() == writer_size  # type: ignore[attr-defined]


def test_timestamps_are_stored_and_returned_in_utc(server: LiveServer, gql: GraphQLClient) -> None:
    before = datetime.now(UTC)
    lead = gql.data(
        'mutation { createLead(input: {email: "t@example.com"}) { lead { createdAt } } }'
    )
    created = datetime.fromisoformat(lead["createLead"]["lead"]["createdAt"])
    utc_columns = [
        (table.name, column.name)
        for table in SQLModel.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, UTCDateTime)
    ]

    async def stored() -> tuple[str, set[str]]:
        async with server.db.read() as conn:
            if server.db.is_sqlite:
                # Naive UTC text, which sorts in time order.
                row = (
                    await conn.execute(
                        text("SELECT created_at, typeof(created_at), typeof(updated_at) FROM leads")
                    )
                ).one()
                return str(row[0]), {row[1], row[2]}
            # timestamptz, shown here in UTC whatever the session's time zone.
            await conn.execute(text("SET LOCAL TIME ZONE 'America/Chicago'"))
            value = (
                await conn.execute(
                    text(
                        "SELECT to_char(created_at AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD HH24:MI:SS.US') FROM leads"
                    )
                )
            ).scalar_one()
            types = set()
            for table, column in utc_columns:
                types.add(
                    (
                        await conn.execute(
                            text(
                                "SELECT data_type FROM information_schema.columns"
                                " WHERE table_schema = current_schema()"
                                " AND table_name = :t AND column_name = :c"
                            ),
                            {"t": table, "c": column},
                        )
                    ).scalar_one()
                )
            return value, types

    value, types = server.run(stored())
    assert created.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert before <= created <= datetime.now(UTC)
    assert value == created.strftime("%Y-%m-%d %H:%M:%S.%f")
    assert len(utc_columns) > 10
    assert types == ({"text"} if server.db.is_sqlite else {"timestamp with time zone"})


def test_every_lead_and_client_row_carries_the_workspace(
    server: LiveServer, gql: GraphQLClient
) -> None:
    gql.data('mutation { createLead(input: {email: "w@example.com"}) { lead { id } } }')
    gql.data(
        'mutation { createClient(input: {email: "w@example.com", firstName: "W", lastName: "S"})'
        " { client { id } } }"
    )

    async def workspaces() -> set[int]:
        async with server.db.read() as conn:
            rows = await conn.execute(
                text("SELECT workspace_id FROM leads UNION SELECT workspace_id FROM clients")
            )
            return {r[0] for r in rows}

    assert server.run(workspaces()) == {1}


def test_search_is_indexed_and_the_index_goes_with_its_migration(scratch_url: str) -> None:
    def search_objects(conn: Connection) -> set[tuple[str, str]]:
        if conn.dialect.name == "sqlite":
            rows = conn.execute(
                text(
                    "SELECT type, name FROM sqlite_master WHERE name LIKE '%fts%'"
                    " AND type IN ('table', 'trigger')"
                )
            )
        else:
            rows = conn.execute(
                text(
                    "SELECT 'index', indexname FROM pg_indexes WHERE indexdef LIKE"
                    " '%USING gin (search_key gin_trgm_ops)' AND schemaname = current_schema()"
                )
            )
        return {(r[0], r[1]) for r in rows}

    async def walk(db: Database) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        await migrate.upgrade(db, "0004")
        up = await inspected(db, search_objects)
        await migrate.downgrade(db, "0003")
        return up, await inspected(db, search_objects)

    up, down = on_database(scratch_url, walk)
    if "sqlite" in scratch_url:
        fts = {
            ("table", f"{t}_fts{shadow}")
            for t in ("leads", "clients")
            for shadow in ("", "_data", "_idx", "_config")
        }
        triggers = {
            ("trigger", f"{t}_fts_{event}")
            for t in ("leads", "clients")
            for event in ("insert", "update", "delete")
        }
        assert up == fts | triggers
    else:
        assert up == {("index", "ix_leads_search_trgm"), ("index", "ix_clients_search_trgm")}
    assert down == set()


def test_every_index_of_a_searchable_table_starts_with_the_workspace(scratch_url: str) -> None:
    # The search plan that fetches FTS5 candidates by rowid relies on it: `+workspace_id = ?`
    # leaves the rowid as the only way in (db/repositories/search.py). The one exception is the
    # foreign key's index on converted_client_id (migration 0020), partial: only a condition on
    # that column can use it, and no search has one.
    async def run(db: Database) -> dict[str, list[list[str]]]:
        await migrate.upgrade(db)
        return await inspected(
            db,
            lambda c: {
                t: [
                    i["column_names"]
                    for i in inspect(c).get_indexes(t)
                    if not i["name"].endswith("_search_trgm")
                    and i["name"] != "ix_leads_converted_client"
                ]
                for t in ("leads", "clients")
            },
        )

    async def foreign_key_index(db: Database) -> list[Any]:
        return await inspected(
            db,
            lambda c: [
                (i["column_names"], bool(i.get("dialect_options")))
                for i in inspect(c).get_indexes("leads")
                if i["name"] == "ix_leads_converted_client"
            ],
        )

    for table, indexes in on_database(scratch_url, run).items():
        assert indexes, table
        assert all(columns[0] == "workspace_id" for columns in indexes), (table, indexes)
    # Partial (its WHERE is a dialect option of the index), on the one column.
    assert on_database(scratch_url, foreign_key_index) == [(["converted_client_id"], True)]
