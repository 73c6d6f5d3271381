"""pipeline tallies: lead_tallies, lead_day_tallies, kept by triggers

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04

Issue 12. ``leads { aggregate }`` at 1M leads took 850 ms unfiltered (every count reads an index
of the whole workspace) and 759 ms filtered (every count of another column reads each matching
row). The tallies (db/models/tallies.py) hold the counts per combination of status, state, source
and owner, and per UTC day created or converted, so that a filter of those dimensions (or none)
is answered from them (db/repositories/lead_counts.py).

Kept exact by the database, in the writing transaction, whatever writes ``leads``:

- SQLite (one writer at a time): row triggers, minus the old row's cells and plus the new
  row's, as upserts. The INSERT trigger skips the rows of an import batch, which tallies them
  itself in one grouped statement per batch (``lead_tally_paused`` holds a row meanwhile,
  inside the batch's transaction only: db/repositories/imports.py).
- PostgreSQL: statement triggers (transition tables) put each statement's net change, grouped,
  into ``lead_tally_deltas`` (UNLOGGED: a row lives inside its transaction only), and the first
  one of a transaction queues a deferred constraint trigger that, at COMMIT, folds the
  transaction's changes into the tallies in key order: concurrent writers of one cell wait for
  each other's commit on its row lock, always in the same order (no deadlock), and no tally
  cell is locked before the commit (as the change log's counter, migration 0007).

The backfill tallies the existing leads (``server.py recount`` does the same at any time).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DIMS = "status, state_key, source_key, owner_key"
_TALLY_KEY = f"workspace_id, {_DIMS}"
_DAY_KEY = f"workspace_id, kind, day, {_DIMS}"


def _tables() -> None:
    def key() -> list[sa.Column[object]]:
        return [
            sa.Column("status", sa.String(16), primary_key=True, nullable=False),
            sa.Column("state_key", sa.String(100), primary_key=True, nullable=False),
            sa.Column("source_key", sa.String(100), primary_key=True, nullable=False),
            sa.Column("owner_key", sa.Integer(), primary_key=True, autoincrement=False),
        ]

    op.create_table(
        "lead_tallies",
        sa.Column("workspace_id", sa.Integer(), primary_key=True, autoincrement=False),
        *key(),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("score_sum", sa.BigInteger(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "lead_day_tallies",
        sa.Column("workspace_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(9), primary_key=True, nullable=False),
        sa.Column("day", sa.String(10), primary_key=True, nullable=False),
        *key(),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sqlite_with_rowid=False,
    )
    # A filter on state (and status) reads its days' cells by seek, not the window's all
    # (covering: n too).
    op.create_index(
        "ix_lead_day_tallies_state",
        "lead_day_tallies",
        ["workspace_id", "kind", "state_key", "status", "day", "n"],
    )
    op.create_table(
        "lead_tally_totals",
        sa.Column("workspace_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("dim", sa.String(9), primary_key=True, nullable=False),
        sa.Column("key", sa.String(100), primary_key=True, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("score_sum", sa.BigInteger(), nullable=False),
        sqlite_with_rowid=False,
    )


# ------------------------------------------------------------------ SQLite


def _sqlite_cells(row: str, sign: str) -> list[str]:
    """The upserts that add ``sign`` 1 (and score) to the cells of ``row`` (NEW or OLD)."""
    dims = f"{row}.status, {row}.state_key, {row}.source_key, coalesce({row}.owner_id, 0)"
    return [
        f"INSERT INTO lead_tallies ({_TALLY_KEY}, n, score_sum) "
        f"VALUES ({row}.workspace_id, {dims}, {sign}1, {sign}{row}.score) "
        f"ON CONFLICT ({_TALLY_KEY}) DO UPDATE SET n = n + excluded.n, "
        "score_sum = score_sum + excluded.score_sum;",
    ]


def _sqlite_days(row: str, sign: str) -> list[str]:
    dims = f"{row}.status, {row}.state_key, {row}.source_key, coalesce({row}.owner_id, 0)"
    upsert = f"ON CONFLICT ({_DAY_KEY}) DO UPDATE SET n = n + excluded.n;"
    return [
        f"INSERT INTO lead_day_tallies ({_DAY_KEY}, n) "
        f"VALUES ({row}.workspace_id, 'CREATED', substr({row}.created_at, 1, 10), {dims}, "
        f"{sign}1) {upsert}",
        f"INSERT INTO lead_day_tallies ({_DAY_KEY}, n) "
        f"SELECT {row}.workspace_id, 'CONVERTED', substr({row}.converted_at, 1, 10), {dims}, "
        f"{sign}1 WHERE {row}.converted_at IS NOT NULL {upsert}",
    ]


def _changed(*columns: str) -> str:
    return " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)


_MOVES = ("workspace_id", "status", "state_key", "source_key", "owner_id")


# lead_tally_totals: per workspace, one dimension at a time (dim status, source, state, owner,
# CREATED, CONVERTED), the same counts summed over the others: what no filter reads.
_TOTAL_KEY = "workspace_id, dim, key"
_TOTALS_OF_CELLS = (
    ("status", "status"),
    ("source", "source_key"),
    ("state", "state_key"),
    ("owner", "CAST(owner_key AS VARCHAR(100))"),
)


def _sqlite_totals(row: str, sign: str, *, days: bool) -> list[str]:
    upsert = (
        f"ON CONFLICT ({_TOTAL_KEY}) DO UPDATE SET n = n + excluded.n, "
        "score_sum = score_sum + excluded.score_sum;"
    )
    if days:
        return [
            f"INSERT INTO lead_tally_totals ({_TOTAL_KEY}, n, score_sum) VALUES "
            f"({row}.workspace_id, {row}.kind, {row}.day, {sign}{row}.n, 0) {upsert}"
        ]
    out = []
    for dim, column in _TOTALS_OF_CELLS:
        key = (
            column.replace("owner_key", f"{row}.owner_key") if dim == "owner" else f"{row}.{column}"
        )
        out.append(
            f"INSERT INTO lead_tally_totals ({_TOTAL_KEY}, n, score_sum) VALUES "
            f"({row}.workspace_id, '{dim}', {key}, {sign}{row}.n, {sign}{row}.score_sum) {upsert}"
        )
    return out


def _sqlite_triggers() -> list[str]:
    def trigger(name: str, when: str, body: list[str]) -> str:
        return f"CREATE TRIGGER {name} AFTER {when} BEGIN {' '.join(body)} END"

    totals = []
    for table, days in (("lead_tallies", False), ("lead_day_tallies", True)):
        totals += [
            trigger(
                f"{table}_total_insert", f"INSERT ON {table}", _sqlite_totals("NEW", "+", days=days)
            ),
            trigger(
                f"{table}_total_delete", f"DELETE ON {table}", _sqlite_totals("OLD", "-", days=days)
            ),
            trigger(
                f"{table}_total_update",
                f"UPDATE ON {table}",
                _sqlite_totals("OLD", "-", days=days) + _sqlite_totals("NEW", "+", days=days),
            ),
        ]
    return [
        *totals,
        "CREATE TABLE lead_tally_paused (id INTEGER PRIMARY KEY)",
        trigger(
            "lead_tallies_insert",
            "INSERT ON leads WHEN NOT EXISTS (SELECT 1 FROM lead_tally_paused)",
            _sqlite_cells("NEW", "+") + _sqlite_days("NEW", "+"),
        ),
        trigger(
            "lead_tallies_delete",
            "DELETE ON leads",
            _sqlite_cells("OLD", "-") + _sqlite_days("OLD", "-"),
        ),
        trigger(
            "lead_tallies_update",
            f"UPDATE OF {', '.join(_MOVES)}, score ON leads WHEN {_changed(*_MOVES, 'score')}",
            _sqlite_cells("OLD", "-") + _sqlite_cells("NEW", "+"),
        ),
        trigger(
            "lead_day_tallies_update",
            f"UPDATE OF {', '.join(_MOVES)}, created_at, converted_at ON leads "
            f"WHEN {_changed(*_MOVES, 'created_at', 'converted_at')}",
            _sqlite_days("OLD", "-") + _sqlite_days("NEW", "+"),
        ),
    ]


_SQLITE_DAY = "substr({}, 1, 10)"

# ------------------------------------------------------------------ PostgreSQL

_PG_DAY = "to_char(({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


def _pg_rows(table: str, sign: str) -> str:
    """A transition table's rows as (dimensions, days, n, score) with ``sign``."""
    return (
        f"SELECT workspace_id, status, state_key, source_key, coalesce(owner_id, 0) AS owner_key, "
        f"{_PG_DAY.format('created_at')} AS created_day, "
        f"{_PG_DAY.format('converted_at')} AS converted_day, "
        f"{sign}1 AS n, {sign}score::bigint AS score FROM {table}"
    )


def _pg_note(rows: str) -> str:
    """The statement's net change per cell, into lead_tally_deltas (this transaction's)."""
    return f"""
        WITH changed AS ({rows})
        INSERT INTO lead_tally_deltas (txid, workspace_id, kind, day, {_DIMS}, n, score_sum)
        SELECT txid_current(), workspace_id, kind, day, {_DIMS}, sum(n), sum(score)
        FROM (
            SELECT workspace_id, '' AS kind, '' AS day, {_DIMS}, n, score FROM changed
            UNION ALL
            SELECT workspace_id, 'CREATED', created_day, {_DIMS}, n, 0 FROM changed
            UNION ALL
            SELECT workspace_id, 'CONVERTED', converted_day, {_DIMS}, n, 0 FROM changed
            WHERE converted_day IS NOT NULL
        ) AS cells
        GROUP BY workspace_id, kind, day, {_DIMS}
        HAVING sum(n) <> 0 OR sum(score) <> 0"""


_PG_TOTALS = " UNION ALL ".join(
    [
        f"SELECT workspace_id, '{dim}' AS dim, {column} AS key, n, score_sum "
        "FROM lead_tally_deltas WHERE txid = NEW.txid AND kind = ''"
        for dim, column in _TOTALS_OF_CELLS
    ]
    + [
        "SELECT workspace_id, kind, day, n, 0 FROM lead_tally_deltas "
        "WHERE txid = NEW.txid AND kind <> ''"
    ]
)

_PG_FUNCTIONS = [
    f"""
CREATE FUNCTION leadgraph_tally_leads() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    noted bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_pg_note(_pg_rows("new_leads", "+"))};
    ELSIF TG_OP = 'DELETE' THEN
        {_pg_note(_pg_rows("old_leads", "-"))};
    ELSE
        {_pg_note(_pg_rows("new_leads", "+") + " UNION ALL " + _pg_rows("old_leads", "-"))};
    END IF;
    GET DIAGNOSTICS noted = ROW_COUNT;
    IF noted > 0 THEN
        -- The first change of the transaction queues the fold at COMMIT.
        INSERT INTO lead_tally_pending (txid) VALUES (txid_current()) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$
""",
    f"""
CREATE FUNCTION leadgraph_fold_tallies() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Cells in key order, in every transaction: writers of the same cells take their row
    -- locks in the same order, so they wait for each other and never deadlock.
    INSERT INTO lead_tallies ({_TALLY_KEY}, n, score_sum)
        SELECT {_TALLY_KEY}, sum(n), sum(score_sum) FROM lead_tally_deltas
        WHERE txid = NEW.txid AND kind = ''
        GROUP BY {_TALLY_KEY}
        HAVING sum(n) <> 0 OR sum(score_sum) <> 0
        ORDER BY {_TALLY_KEY}
    ON CONFLICT ({_TALLY_KEY}) DO UPDATE
        SET n = lead_tallies.n + excluded.n,
            score_sum = lead_tallies.score_sum + excluded.score_sum;
    INSERT INTO lead_day_tallies ({_DAY_KEY}, n)
        SELECT {_DAY_KEY}, sum(n) FROM lead_tally_deltas
        WHERE txid = NEW.txid AND kind <> ''
        GROUP BY {_DAY_KEY}
        HAVING sum(n) <> 0
        ORDER BY {_DAY_KEY}
    ON CONFLICT ({_DAY_KEY}) DO UPDATE SET n = lead_day_tallies.n + excluded.n;
    INSERT INTO lead_tally_totals ({_TOTAL_KEY}, n, score_sum)
        SELECT workspace_id, dim, key, sum(n), sum(score_sum) FROM (
            {_PG_TOTALS}
        ) AS totals
        GROUP BY workspace_id, dim, key
        HAVING sum(n) <> 0 OR sum(score_sum) <> 0
        ORDER BY workspace_id, dim, key
    ON CONFLICT ({_TOTAL_KEY}) DO UPDATE
        SET n = lead_tally_totals.n + excluded.n,
            score_sum = lead_tally_totals.score_sum + excluded.score_sum;
    DELETE FROM lead_tally_deltas WHERE txid = NEW.txid;
    DELETE FROM lead_tally_pending WHERE txid = NEW.txid;
    RETURN NULL;
END
$$
""",
]


def _pg_triggers() -> list[str]:
    out = [
        "CREATE UNLOGGED TABLE lead_tally_deltas ("
        "txid bigint NOT NULL, workspace_id integer NOT NULL, kind varchar(9) NOT NULL, "
        "day varchar(10) NOT NULL, status varchar(16) NOT NULL, "
        "state_key varchar(100) NOT NULL, source_key varchar(100) NOT NULL, "
        "owner_key integer NOT NULL, n bigint NOT NULL, score_sum bigint NOT NULL)",
        "CREATE INDEX ix_lead_tally_deltas_txid ON lead_tally_deltas (txid)",
        "CREATE UNLOGGED TABLE lead_tally_pending (txid bigint PRIMARY KEY)",
        *_PG_FUNCTIONS,
        "CREATE CONSTRAINT TRIGGER lead_tallies_at_commit AFTER INSERT ON lead_tally_pending "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION leadgraph_fold_tallies()",
    ]
    for op_, tables in (
        ("INSERT", "NEW TABLE AS new_leads"),
        ("DELETE", "OLD TABLE AS old_leads"),
        ("UPDATE", "OLD TABLE AS old_leads NEW TABLE AS new_leads"),
    ):
        out.append(
            f"CREATE TRIGGER lead_tallies_{op_.lower()} AFTER {op_} ON leads "
            f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION leadgraph_tally_leads()"
        )
    return out


# ------------------------------------------------------------------ backfill


def backfill_statements(dialect: str) -> list[str]:
    """Tally every lead (into empty tallies): the backfill, and ``server.py recount``'s."""
    day = _SQLITE_DAY if dialect == "sqlite" else _PG_DAY
    dims = "status, state_key, source_key, coalesce(owner_id, 0)"
    return [
        f"INSERT INTO lead_tallies ({_TALLY_KEY}, n, score_sum) "
        f"SELECT workspace_id, {dims}, count(*), sum(score) FROM leads "
        f"GROUP BY workspace_id, {dims}",
        *(
            f"INSERT INTO lead_day_tallies ({_DAY_KEY}, n) "
            f"SELECT workspace_id, '{kind}', {day.format(column)}, {dims}, count(*) FROM leads "
            f"WHERE {column} IS NOT NULL "
            f"GROUP BY workspace_id, {day.format(column)}, {dims}"
            for kind, column in (("CREATED", "created_at"), ("CONVERTED", "converted_at"))
        ),
    ]


def totals_statement() -> str:
    """lead_tally_totals from the tallies (PostgreSQL's backfill; SQLite's triggers on the
    tallies keep them)."""
    parts = [
        f"SELECT workspace_id, '{dim}', {column}, sum(n), sum(score_sum) FROM lead_tallies "
        f"GROUP BY workspace_id, {column}"
        for dim, column in _TOTALS_OF_CELLS
    ] + ["SELECT workspace_id, kind, day, sum(n), 0 FROM lead_day_tallies GROUP BY 1, 2, 3"]
    return f"INSERT INTO lead_tally_totals ({_TOTAL_KEY}, n, score_sum) " + " UNION ALL ".join(
        parts
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _tables()
    for statement in _sqlite_triggers() if dialect == "sqlite" else _pg_triggers():
        op.execute(sa.text(statement))
    for statement in backfill_statements(dialect):
        op.execute(sa.text(statement))
    if dialect != "sqlite":
        op.execute(sa.text(totals_statement()))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(sa.text(f"DROP TRIGGER lead_tallies_{name}"))
        op.execute(sa.text("DROP TRIGGER lead_day_tallies_update"))
        for table in ("lead_tallies", "lead_day_tallies"):
            for name in ("insert", "delete", "update"):
                op.execute(sa.text(f"DROP TRIGGER {table}_total_{name}"))
        op.execute(sa.text("DROP TABLE lead_tally_paused"))
    else:
        for name in ("insert", "delete", "update"):
            op.execute(sa.text(f"DROP TRIGGER lead_tallies_{name} ON leads"))
        op.execute(sa.text("DROP TABLE lead_tally_pending"))
        op.execute(sa.text("DROP TABLE lead_tally_deltas"))
        op.execute(sa.text("DROP FUNCTION leadgraph_fold_tallies()"))
        op.execute(sa.text("DROP FUNCTION leadgraph_tally_leads()"))
    op.drop_table("lead_tally_totals")
    op.drop_index("ix_lead_day_tallies_state", table_name="lead_day_tallies")
    op.drop_table("lead_day_tallies")
    op.drop_table("lead_tallies")
