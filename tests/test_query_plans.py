"""SQLite's query plans for the statements issue 5 measured at 1M leads. The database has no
statistics (ANALYZE is never run), so the planner sees the same defaults at any size: the plans
chosen here, on a few rows, are the plans chosen at a million (ARCHITECTURE.md, "Search and
query plans")."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.dialects import sqlite

from db.models import DEFAULT_WORKSPACE_ID, LeadStatus
from db.repositories import (
    EventFilterSpec,
    EventRepository,
    Keyset,
    LeadFilterSpec,
    LeadRepository,
    search,
)
from tests.conftest import LiveServer

pytestmark = pytest.mark.sqlite  # PostgreSQL plans with its own statistics

LEADS = LeadRepository(None, DEFAULT_WORKSPACE_ID)  # type: ignore[arg-type]
BY_CREATED = (LEADS.c.created_at.desc(), LEADS.c.id.desc())


@pytest.fixture
def plan_of(server: LiveServer) -> Any:
    assert server.db.is_sqlite

    def explain(stmt: Any) -> list[str]:
        sql = str(
            stmt.compile(
                dialect=sqlite.dialect(),
                compile_kwargs={"literal_binds": True, "render_postcompile": True},
            )
        )

        async def run() -> list[str]:
            async with server.db.read() as conn:
                rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)
                return [r[3] for r in rows]

        return server.run(run())

    return explain


def conditions(**spec: Any) -> tuple[list[Any], dict[str, Any]]:
    """The filter's conditions and their values (bind parameters)."""
    return LEADS.conditions(LeadFilterSpec(**spec))


def page(where: list[Any], order: Any = BY_CREATED) -> Any:
    return select(LEADS.table).where(LEADS.scope, *where).order_by(*order).limit(21)


def test_no_statistics_after_the_migrations(server: LiveServer, plan_of: Any) -> None:
    async def stat_tables() -> list[str]:
        async with server.db.read() as conn:
            rows = await conn.execute(
                text("SELECT name FROM sqlite_master WHERE name LIKE 'sqlite_stat%'")
            )
            return [r[0] for r in rows]

    assert server.run(stat_tables()) == []


def test_a_count_by_state_and_status_reads_one_index_alone(plan_of: Any) -> None:
    where, values = conditions(statuses=[LeadStatus.NEW, LeadStatus.CONTACTED], state="TX")
    stmt = select(func.count()).select_from(LEADS.table).where(LEADS.scope, *where)
    assert plan_of(stmt.params(values)) == [
        "SEARCH leads USING COVERING INDEX ix_leads_ws_state "
        "(workspace_id=? AND state_key=? AND status=?)"
    ]


def test_a_broad_filter_scans_the_sort_index_and_stops_after_a_page(plan_of: Any) -> None:
    where, values = conditions(statuses=[LeadStatus.NEW, LeadStatus.CONTACTED], state="TX")
    order = (LEADS.c.score.desc(), LEADS.c.id.desc())
    assert plan_of(page(where, order).params(values)) == [
        "SEARCH leads USING INDEX ix_leads_ws_score (workspace_id=?)"
    ]


def test_an_email_filter_uses_the_email_index_whatever_the_sort(plan_of: Any) -> None:
    for column in ("created_at", "score", "name_key"):
        order = (LEADS.c[column].desc(), LEADS.c.id.desc())
        where, values = conditions(email="a@example.com")
        assert plan_of(page(where, order).params(values)) == [
            "SEARCH leads USING INDEX ix_leads_ws_email (workspace_id=? AND email_key=?)",
            "USE TEMP B-TREE FOR ORDER BY",
        ]


def test_owner_filters_use_the_owner_index_in_the_default_order(plan_of: Any) -> None:
    for spec in ({"owner_id": 3}, {"unassigned": True}):
        where, values = conditions(**spec)
        assert plan_of(page(where).params(values)) == [
            "SEARCH leads USING INDEX ix_leads_ws_owner (workspace_id=? AND owner_id=?)"
        ]


def test_tag_filters_look_up_the_link_table_by_its_indexes(plan_of: Any) -> None:
    by_tag = "SEARCH lead_tags USING COVERING INDEX ix_lead_tags_tag (tag_id=?)"
    walk = "SEARCH leads USING INDEX ix_leads_ws_created (workspace_id=?)"
    where, values = conditions(tags_any=[1, 2])
    assert plan_of(page(where).params(values)) == [walk, "LIST SUBQUERY 1", by_tag]
    where, values = conditions(tags_all=[1, 2])
    assert plan_of(page(where).params(values)) == [
        *(walk, "LIST SUBQUERY 1", by_tag),
        "USE TEMP B-TREE FOR GROUP BY",
    ]
    where, values = conditions(tags_none=[1])
    assert plan_of(page(where).params(values)) == [
        *(walk, "CORRELATED SCALAR SUBQUERY 1"),
        "SEARCH lead_tags USING INDEX sqlite_autoindex_lead_tags_1 (lead_id=? AND tag_id=?)",
    ]


def test_converted_from_looks_up_each_client_in_one_index(plan_of: Any) -> None:
    stmt = (
        select(LEADS.table)
        .where(*LEADS.scoped(LEADS.c.converted_client_id.in_([1, 2, 3])))
        .order_by(LEADS.c.converted_at, LEADS.c.id)
    )
    assert plan_of(stmt) == [
        "SEARCH leads USING INDEX ix_leads_ws_converted (workspace_id=? AND converted_client_id=?)",
        "USE TEMP B-TREE FOR ORDER BY",
    ]


def test_a_search_page_holds_both_plans(plan_of: Any) -> None:
    found, where = search.split(conditions(search="summit analytics")[0])
    assert found is not None
    plan = plan_of(search.page_statement(found, LEADS.scope, where, BY_CREATED, 21))
    # FTS5 once, for the candidates; few: fetched by rowid; many: the sort index in order.
    assert plan.count("SCAN leads_fts VIRTUAL TABLE INDEX 0:M1") == 1
    assert plan.count("SEARCH leads USING INTEGER PRIMARY KEY (rowid=?)") == 2
    assert "SEARCH leads USING INDEX ix_leads_ws_created (workspace_id=?)" in plan
    assert not any(step == "SCAN leads" or "COVERING" in step for step in plan)


def test_a_search_count_drives_from_the_index_of_trigrams(plan_of: Any) -> None:
    found, where = search.split(conditions(search="summit analytics")[0])
    assert found is not None
    plan = plan_of(search.count_statement(found, LEADS.scope, where))
    assert plan.count("SEARCH leads USING INTEGER PRIMARY KEY (rowid=?)") == 2
    assert not any(step.startswith(("SCAN leads ", "SEARCH leads USING INDEX")) for step in plan)


EVENTS = EventRepository(None, DEFAULT_WORKSPACE_ID)  # type: ignore[arg-type]


def test_the_log_and_a_records_history_are_read_in_seq_order_from_their_indexes(
    plan_of: Any,
) -> None:
    after = Keyset(value=5, id=0)
    record = EVENTS.event_conditions(EventFilterSpec(record=("Lead", 1)))

    assert plan_of(EVENTS.page_statement([], False, after, 21)) == [
        "SEARCH events USING INDEX uq_events_ws_seq (workspace_id=? AND seq>?)"
    ]
    assert plan_of(EVENTS.page_statement(record, False, after, 21)) == [
        "SEARCH events USING INDEX ix_events_ws_record "
        "(workspace_id=? AND record_type=? AND record_id=? AND seq>?)"
    ]
    assert plan_of(EVENTS.page_statement(record, True, None, 21)) == [
        "SEARCH events USING INDEX ix_events_ws_record "
        "(workspace_id=? AND record_type=? AND record_id=?)"
    ]
