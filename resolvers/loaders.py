"""Per-request DataLoaders: one query per relation per batch, results in key order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Row
from strawberry.dataloader import DataLoader

from db.engine import Database
from db.repositories import (
    ClientRepository,
    DeliveryRepository,
    EndpointRepository,
    EventRepository,
    Keyset,
    LeadRepository,
    Repository,
)
from db.repositories.activities import ActivityRepository
from db.repositories.auth import ApiKeyRepository, UserRepository
from db.repositories.duplicates import MergeRepository
from db.repositories.follow_ups import FollowUpFilterSpec, FollowUpRepository
from db.repositories.forms import FormRepository
from db.repositories.imports import ImportJobRepository
from db.repositories.tags import CLIENT_TAGS, LEAD_TAGS, TagLinks, TagRepository
from db.repositories.tickets import CommentRepository, TicketFilterSpec, TicketRepository
from db.types import utcnow
from resolvers.duplicates import Duplicate, Keys, duplicates_of

# A batch is one statement with one bind parameter per key, and a statement may bind at most
# 32,767 on one of our engines: aliases let one request ask for many list arguments' worth of
# keys (MAX_LIST_SIZE each).
MAX_BATCH = 1000
K = TypeVar("K")
V = TypeVar("V")


class InFlight:
    """The batches a request's loaders are running. When a field fails, graphql-core cancels
    its siblings, DataLoader cancels a batch that no one waits for any more, and that batch's
    read still ends its statement and closes its connection (under a shield): the request ends
    after them (``settled``) instead of answering with work left running on pooled
    connections.

    A batch cancelled inside its statement leaves nothing running on the database either: the
    read closes that connection instead of pooling it, once the statement is over on the
    server (db/reads.py), so no half-run statement keeps its locks for the connection's next
    user to end (tests/test_events.py, a load cancelled mid-fetch)."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def tracked(self, load: Callable[[Sequence[K]], Awaitable[list[V]]]) -> DataLoader[K, V]:
        """A DataLoader over ``load`` whose batches are tracked here."""

        async def tracked_load(keys: Sequence[K]) -> list[V]:
            task = asyncio.current_task()
            assert task is not None
            self.tasks.add(task)
            try:
                return await load(keys)
            finally:
                self.tasks.discard(task)

        return DataLoader(load_fn=tracked_load, max_batch_size=MAX_BATCH)

    async def settled(self) -> None:
        """Returns once no batch is running (cancelled ones included)."""
        while self.tasks:
            await asyncio.wait(set(self.tasks))


def _by_id(
    in_flight: InFlight,
    db: Database,
    workspace_id: int,
    repository: Callable[[Any, int], Repository],
) -> DataLoader[int, Row[Any] | None]:
    async def load(ids: Sequence[int]) -> list[Row[Any] | None]:
        # Each batch has its own connection: concurrent resolvers never share one.
        async with db.read() as conn:
            rows = await repository(conn, workspace_id).get_many(ids)
        found = {row.id: row for row in rows}
        return [found.get(i) for i in ids]

    return in_flight.tracked(load)


def _leads(
    in_flight: InFlight, db: Database, workspace_id: int
) -> DataLoader[int, Row[Any] | None]:
    """Leads by id; an id merged into another lead (mergeLeads) finds the survivor, looked up
    only for the ids not found, so a lookup that finds its leads costs one statement."""

    async def load(ids: Sequence[int]) -> list[Row[Any] | None]:
        async with db.read() as conn:
            found = {row.id: row for row in await LeadRepository(conn, workspace_id).get_many(ids)}
            missing = [i for i in ids if i not in found]
            if missing:
                merges = MergeRepository(conn, workspace_id)
                found |= {row.merged_id: row for row in await merges.survivors(missing)}
        return [found.get(i) for i in ids]

    return in_flight.tracked(load)


def _duplicates(
    in_flight: InFlight, db: Database, workspace_id: int
) -> DataLoader[Keys, list[Duplicate]]:
    async def load(keys: Sequence[Keys]) -> list[list[Duplicate]]:
        return await duplicates_of(db, workspace_id, keys)

    return in_flight.tracked(load)


def _converted_from(
    in_flight: InFlight, db: Database, workspace_id: int
) -> DataLoader[int, Row[Any] | None]:
    async def load(client_ids: Sequence[int]) -> list[Row[Any] | None]:
        async with db.read() as conn:
            rows = await LeadRepository(conn, workspace_id).converted_into(client_ids)
        first: dict[int, Row[Any]] = {}
        for row in rows:  # earliest conversion first
            first.setdefault(row.converted_client_id, row)
        return [first.get(i) for i in client_ids]

    return in_flight.tracked(load)


def _users(in_flight: InFlight, db: Database) -> DataLoader[int, Row[Any] | None]:
    async def load(ids: Sequence[int]) -> list[Row[Any] | None]:
        async with db.read() as conn:
            found = {r.id: r for r in await UserRepository(conn).get_many(ids)}
        return [found.get(i) for i in ids]

    return in_flight.tracked(load)


def _attempts(
    in_flight: InFlight, db: Database, workspace_id: int
) -> DataLoader[int, list[Row[Any]]]:
    async def load(delivery_ids: Sequence[int]) -> list[list[Row[Any]]]:
        async with db.read() as conn:
            rows = await DeliveryRepository(conn, workspace_id).attempts_of(delivery_ids)
        found: dict[int, list[Row[Any]]] = {}
        for row in rows:  # oldest first
            found.setdefault(row.delivery_id, []).append(row)
        return [found.get(i, []) for i in delivery_ids]

    return in_flight.tracked(load)


def _tags(
    in_flight: InFlight, db: Database, workspace_id: int, links: TagLinks
) -> DataLoader[int, list[Row[Any]]]:
    """Records' tags, by name: one statement per batch of records."""

    async def load(record_ids: Sequence[int]) -> list[list[Row[Any]]]:
        async with db.read() as conn:
            rows = await links.tags_of(conn, workspace_id, record_ids)
        found: dict[int, list[Row[Any]]] = {}
        for row in rows:
            found.setdefault(row.record_id, []).append(row)
        return [found.get(i, []) for i in record_ids]

    return in_flight.tracked(load)


# A record's history page: (record type, its pk, newest first?, past this seq, how many).
HistoryKey = tuple[str, int, bool, int | None, int]


def _histories(
    in_flight: InFlight, db: Database, workspace_id: int
) -> DataLoader[HistoryKey, list[Row[Any]]]:
    """Records' histories, one statement per batch of records asking for the same page."""

    async def load(keys: Sequence[HistoryKey]) -> list[list[Row[Any]]]:
        groups: dict[tuple[str, bool, int | None, int], list[int]] = {}
        for record_type, pk, descending, past, limit in keys:
            groups.setdefault((record_type, descending, past, limit), []).append(pk)
        found: dict[HistoryKey, list[Row[Any]]] = {}
        async with db.read() as conn:
            events = EventRepository(conn, workspace_id)
            for (record_type, descending, past, limit), pks in groups.items():
                for row in await events.histories(record_type, pks, descending, past, limit):
                    key = (record_type, row.record_id, descending, past, limit)
                    found.setdefault(key, []).append(row)
        out = []
        for key in keys:
            rows = found.get(key, [])
            rows.sort(key=lambda r: r.seq, reverse=key[2])
            out.append(rows)
        return out

    return in_flight.tracked(load)


# A page of a lead's or client's activities: (timeline, subject pk, past this keyset, how many).
TimelineKey = tuple[str, int, Keyset | None, int]


def _timelines(
    in_flight: InFlight, db: Database, workspace_id: int
) -> DataLoader[TimelineKey, list[Row[Any]]]:
    """Subjects' activities, newest first: one statement per batch of subjects asking for the
    same page (a list's records ask for their first pages together)."""

    async def load(keys: Sequence[TimelineKey]) -> list[list[Row[Any]]]:
        groups: dict[tuple[str, Keyset | None, int], list[int]] = {}
        for which, pk, start, limit in keys:
            groups.setdefault((which, start, limit), []).append(pk)
        found: dict[TimelineKey, list[Row[Any]]] = {}
        async with db.read() as conn:
            repo = ActivityRepository(conn, workspace_id)
            for (which, start, limit), pks in groups.items():
                for row in await repo.timelines(which, pks, start, limit):  # type: ignore[arg-type]
                    found.setdefault((which, getattr(row, which), start, limit), []).append(row)
        out = []
        for key in keys:
            rows = found.get(key, [])
            rows.sort(key=lambda r: (r.occurred_at, r.id), reverse=True)
            out.append(rows)
        return out

    return in_flight.tracked(load)


# A page of a ticket's comments: (ticket pk, past this comment id, how many).
CommentsKey = tuple[int, int | None, int]
# A page of a client's tickets: (client pk, filter, past this keyset, how many).
ClientTicketsKey = tuple[int, TicketFilterSpec, Keyset | None, int]


def _ticket_comments(
    in_flight: InFlight, db: Database, workspace_id: int
) -> DataLoader[CommentsKey, list[Row[Any]]]:
    """Tickets' comment pages, one statement per batch of tickets asking for the same page."""

    async def load(keys: Sequence[CommentsKey]) -> list[list[Row[Any]]]:
        groups: dict[tuple[int | None, int], list[int]] = {}
        for ticket, past, limit in keys:
            groups.setdefault((past, limit), []).append(ticket)
        found: dict[CommentsKey, list[Row[Any]]] = {}
        async with db.read() as conn:
            repo = CommentRepository(conn, workspace_id)
            for (past, limit), tickets in groups.items():
                for row in await repo.of_tickets(tickets, past, limit):
                    found.setdefault((row.ticket_id, past, limit), []).append(row)
        return [found.get(key, []) for key in keys]

    return in_flight.tracked(load)


def _timeline_counts(
    in_flight: InFlight, db: Database, workspace_id: int
) -> DataLoader[tuple[str, int], int]:
    """How many activities subjects' timelines hold: one statement per batch and timeline."""

    async def load(keys: Sequence[tuple[str, int]]) -> list[int]:
        groups: dict[str, list[int]] = {}
        for which, pk in keys:
            groups.setdefault(which, []).append(pk)
        found: dict[tuple[str, int], int] = {}
        async with db.read() as conn:
            repo = ActivityRepository(conn, workspace_id)
            for which, pks in groups.items():
                counts = await repo.counts(which, pks)  # type: ignore[arg-type]
                found |= {(which, pk): n for pk, n in counts.items()}
        return [found.get(key, 0) for key in keys]

    return in_flight.tracked(load)


def _ticket_comment_counts(
    in_flight: InFlight, db: Database, workspace_id: int
) -> DataLoader[int, int]:
    async def load(ticket_ids: Sequence[int]) -> list[int]:
        async with db.read() as conn:
            counts = await CommentRepository(conn, workspace_id).counts(ticket_ids)
        return [counts.get(i, 0) for i in ticket_ids]

    return in_flight.tracked(load)


# A page of a lead's or client's follow-ups: (subject column, subject pk, filter, past this
# keyset, how many).
FollowUpPageKey = tuple[str, int, FollowUpFilterSpec, Keyset | None, int]


def _follow_up_pages(
    in_flight: InFlight, db: Database, workspace_id: int
) -> DataLoader[FollowUpPageKey, list[Row[Any]]]:
    """Subjects' follow-ups, due first: one statement per batch of subjects asking for the
    same page with the same filter (a list's records ask for their first pages together)."""

    async def load(keys: Sequence[FollowUpPageKey]) -> list[list[Row[Any]]]:
        groups: dict[tuple[str, FollowUpFilterSpec, Keyset | None, int], list[int]] = {}
        for which, pk, spec, start, limit in keys:
            groups.setdefault((which, spec, start, limit), []).append(pk)
        found: dict[FollowUpPageKey, list[Row[Any]]] = {}
        async with db.read() as conn:
            repo = FollowUpRepository(conn, workspace_id)
            for (which, spec, start, limit), pks in groups.items():
                rows = await repo.subject_pages(which, pks, spec, start, limit)  # type: ignore[arg-type]
                for row in rows:
                    key = (which, getattr(row, which), spec, start, limit)
                    found.setdefault(key, []).append(row)
        out = []
        for key in keys:
            rows = found.get(key, [])
            rows.sort(key=lambda r: (r.due_at, r.id))
            out.append(rows)
        return out

    return in_flight.tracked(load)


def _client_tickets(
    in_flight: InFlight, db: Database, workspace_id: int
) -> DataLoader[ClientTicketsKey, list[Row[Any]]]:
    """Clients' ticket pages, one statement per batch of clients asking for the same page."""

    async def load(keys: Sequence[ClientTicketsKey]) -> list[list[Row[Any]]]:
        groups: dict[tuple[TicketFilterSpec, Keyset | None, int], list[int]] = {}
        for client, spec, start, limit in keys:
            groups.setdefault((spec, start, limit), []).append(client)
        found: dict[ClientTicketsKey, list[Row[Any]]] = {}
        async with db.read() as conn:
            repo = TicketRepository(conn, workspace_id)
            for (spec, start, limit), clients in groups.items():
                for row in await repo.for_clients(clients, spec, start, limit):
                    found.setdefault((row.client_id, spec, start, limit), []).append(row)
        return [found.get(key, []) for key in keys]

    return in_flight.tracked(load)


def _client_ticket_counts(
    in_flight: InFlight, db: Database, workspace_id: int
) -> DataLoader[tuple[int, TicketFilterSpec], int]:
    """How many tickets (matching a filter) clients have, one statement per filter."""

    async def load(keys: Sequence[tuple[int, TicketFilterSpec]]) -> list[int]:
        groups: dict[TicketFilterSpec, list[int]] = {}
        for client, spec in keys:
            groups.setdefault(spec, []).append(client)
        found: dict[tuple[int, TicketFilterSpec], int] = {}
        async with db.read() as conn:
            repo = TicketRepository(conn, workspace_id)
            for spec, clients in groups.items():
                counts = await repo.counts_for_clients(clients, spec)
                found |= {(client, spec): counts.get(client, 0) for client in clients}
        return [found[key] for key in keys]

    return in_flight.tracked(load)


def _follow_up_counts(
    in_flight: InFlight, db: Database, workspace_id: int
) -> DataLoader[tuple[str, int, FollowUpFilterSpec], int]:
    """How many follow-ups subjects have: one statement per batch, subject kind and filter."""

    async def load(keys: Sequence[tuple[str, int, FollowUpFilterSpec]]) -> list[int]:
        groups: dict[tuple[str, FollowUpFilterSpec], list[int]] = {}
        for which, pk, spec in keys:
            groups.setdefault((which, spec), []).append(pk)
        found: dict[tuple[str, int, FollowUpFilterSpec], int] = {}
        async with db.read() as conn:
            repo = FollowUpRepository(conn, workspace_id)
            for (which, spec), pks in groups.items():
                counts = await repo.subject_counts(which, pks, spec)  # type: ignore[arg-type]
                found |= {(which, pk, spec): n for pk, n in counts.items()}
        return [found.get(key, 0) for key in keys]

    return in_flight.tracked(load)


@dataclass
class Loaders:
    lead_by_id: DataLoader[int, Row[Any] | None]
    client_by_id: DataLoader[int, Row[Any] | None]
    lead_converted_into: DataLoader[int, Row[Any] | None]
    user_by_id: DataLoader[int, Row[Any] | None]
    api_key_by_id: DataLoader[int, Row[Any] | None]
    event_by_id: DataLoader[int, Row[Any] | None]
    webhook_endpoint_by_id: DataLoader[int, Row[Any] | None]
    webhook_delivery_by_id: DataLoader[int, Row[Any] | None]
    webhook_attempts: DataLoader[int, list[Row[Any]]]
    lead_form_by_id: DataLoader[int, Row[Any] | None]
    import_job_by_id: DataLoader[int, Row[Any] | None]
    history: DataLoader[HistoryKey, list[Row[Any]]]
    lead_duplicates: DataLoader[Keys, list[Duplicate]]
    tag_by_id: DataLoader[int, Row[Any] | None]
    lead_tags: DataLoader[int, list[Row[Any]]]
    client_tags: DataLoader[int, list[Row[Any]]]
    activity_by_id: DataLoader[int, Row[Any] | None]
    activity_timeline: DataLoader[TimelineKey, list[Row[Any]]]
    activity_count: DataLoader[tuple[str, int], int]
    ticket_by_id: DataLoader[int, Row[Any] | None]
    ticket_comment_by_id: DataLoader[int, Row[Any] | None]
    ticket_comments: DataLoader[CommentsKey, list[Row[Any]]]
    ticket_comment_count: DataLoader[int, int]
    client_tickets: DataLoader[ClientTicketsKey, list[Row[Any]]]
    client_ticket_count: DataLoader[tuple[int, TicketFilterSpec], int]
    follow_up_by_id: DataLoader[int, Row[Any] | None]
    follow_up_pages: DataLoader[FollowUpPageKey, list[Row[Any]]]
    follow_up_count: DataLoader[tuple[str, int, FollowUpFilterSpec], int]
    in_flight: InFlight = field(default_factory=InFlight)
    # The request's "now": every field of a request reads due windows (TODAY, OVERDUE) the
    # same, so a page of leads asks for its follow-ups with one filter, in one batch.
    now: datetime = field(default_factory=utcnow)

    @classmethod
    def create(cls, db: Database, workspace_id: int) -> Loaders:
        in_flight = InFlight()
        return cls(
            lead_by_id=_leads(in_flight, db, workspace_id),
            client_by_id=_by_id(in_flight, db, workspace_id, ClientRepository),
            lead_converted_into=_converted_from(in_flight, db, workspace_id),
            user_by_id=_users(in_flight, db),
            api_key_by_id=_by_id(in_flight, db, workspace_id, ApiKeyRepository),  # type: ignore[arg-type]
            event_by_id=_by_id(in_flight, db, workspace_id, EventRepository),
            webhook_endpoint_by_id=_by_id(in_flight, db, workspace_id, EndpointRepository),
            webhook_delivery_by_id=_by_id(in_flight, db, workspace_id, DeliveryRepository),
            webhook_attempts=_attempts(in_flight, db, workspace_id),
            lead_form_by_id=_by_id(in_flight, db, workspace_id, FormRepository),
            import_job_by_id=_by_id(in_flight, db, workspace_id, ImportJobRepository),
            history=_histories(in_flight, db, workspace_id),
            lead_duplicates=_duplicates(in_flight, db, workspace_id),
            tag_by_id=_by_id(in_flight, db, workspace_id, TagRepository),
            lead_tags=_tags(in_flight, db, workspace_id, LEAD_TAGS),
            client_tags=_tags(in_flight, db, workspace_id, CLIENT_TAGS),
            activity_by_id=_by_id(in_flight, db, workspace_id, ActivityRepository),
            activity_timeline=_timelines(in_flight, db, workspace_id),
            activity_count=_timeline_counts(in_flight, db, workspace_id),
            ticket_by_id=_by_id(in_flight, db, workspace_id, TicketRepository),
            ticket_comment_by_id=_by_id(in_flight, db, workspace_id, CommentRepository),
            ticket_comments=_ticket_comments(in_flight, db, workspace_id),
            ticket_comment_count=_ticket_comment_counts(in_flight, db, workspace_id),
            client_tickets=_client_tickets(in_flight, db, workspace_id),
            client_ticket_count=_client_ticket_counts(in_flight, db, workspace_id),
            follow_up_by_id=_by_id(in_flight, db, workspace_id, FollowUpRepository),
            follow_up_pages=_follow_up_pages(in_flight, db, workspace_id),
            follow_up_count=_follow_up_counts(in_flight, db, workspace_id),
            in_flight=in_flight,
        )

    def clear(self) -> None:
        """Forget cached rows; called after a write so later fields see the new state."""
        for loader in (
            self.lead_by_id,
            self.client_by_id,
            self.lead_converted_into,
            self.user_by_id,
            self.api_key_by_id,
            self.event_by_id,
            self.webhook_endpoint_by_id,
            self.webhook_delivery_by_id,
            self.webhook_attempts,
            self.lead_form_by_id,
            self.import_job_by_id,
            self.history,
            self.lead_duplicates,
            self.tag_by_id,
            self.lead_tags,
            self.client_tags,
            self.activity_by_id,
            self.activity_timeline,
            self.activity_count,
            self.ticket_by_id,
            self.ticket_comment_by_id,
            self.ticket_comments,
            self.ticket_comment_count,
            self.client_tickets,
            self.client_ticket_count,
            self.follow_up_by_id,
            self.follow_up_pages,
            self.follow_up_count,
        ):
            loader.clear_all()
