"""change events on PostgreSQL: numbered at commit, by the database

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

Issue 10, the log's write cost. Until now a write took its seqs (the upsert of its workspace's
``event_counters`` row) as its last statement and then sent COMMIT: the counter's row stayed
locked from that statement's answer until the commit's, across a turn of the server's event
loop, and every other writer of the workspace queued behind it (createLead at 0.6-0.8 x the
same server without the log, 16 connections).

On PostgreSQL a write now inserts its events, as one JSON array, into ``event_appends`` (an
UNLOGGED table: a row lives only inside its own transaction), and a deferred constraint
trigger runs at COMMIT, inside the database: it takes the seqs, inserts the events with
the database's clock, deletes the row and sends the NOTIFY the log's listeners wait for. The
counter's row is locked from there to the end of the commit, with no round trip in between;
seq order is still commit order. SQLite, one writer at a time, keeps numbering in the write.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# db/changes.py CHANNEL and its payload, "<workspace id>:<last seq>".
_FUNCTION = """
CREATE FUNCTION leadgraph_append_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n bigint := jsonb_array_length(NEW.events);
    last bigint;
BEGIN
    INSERT INTO event_counters (workspace_id, last_seq) VALUES (NEW.workspace_id, n)
        ON CONFLICT (workspace_id)
        DO UPDATE SET last_seq = event_counters.last_seq + excluded.last_seq
        RETURNING last_seq INTO last;
    -- The clock once the counter's row is locked: a later seq never gets an earlier time.
    INSERT INTO events (workspace_id, seq, occurred_at, type, record_type, record_id,
                        actor_user_id, actor_api_key_id, request_id, changes)
        SELECT NEW.workspace_id, last - n + e.ord, clock_timestamp(),
               e.value ->> 'type', e.value ->> 'record_type', (e.value ->> 'record_id')::int,
               (e.value ->> 'actor_user_id')::int, (e.value ->> 'actor_api_key_id')::int,
               e.value ->> 'request_id', e.value -> 'changes'
        FROM jsonb_array_elements(NEW.events) WITH ORDINALITY AS e(value, ord)
        ORDER BY e.ord;
    DELETE FROM event_appends WHERE id = NEW.id;
    PERFORM pg_notify('leadgraph_events', NEW.workspace_id::text || ':' || last::text);
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE UNLOGGED TABLE event_appends ("
        "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "workspace_id integer NOT NULL, "
        "events jsonb NOT NULL)"
    )
    op.execute(_FUNCTION)
    op.execute(
        "CREATE CONSTRAINT TRIGGER event_appends_at_commit AFTER INSERT ON event_appends "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION leadgraph_append_events()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(sa.text("DROP TABLE event_appends"))
    op.execute(sa.text("DROP FUNCTION leadgraph_append_events()"))
