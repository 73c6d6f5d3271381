"""What a mutation resolver hands back to the schema layer, and how it aborts a transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row

from resolvers.errors import Problem


@dataclass
class Outcome:
    """Either rows that were written, or the problems that stopped anything from changing."""

    problems: list[Problem] = field(default_factory=list)
    lead: Row[Any] | None = None
    client: Row[Any] | None = None
    deleted_id: str | None = None
    created: bool | None = None  # upsertLead: a new record (True) or an existing one (False)
    merged_ids: list[str] | None = None  # mergeLeads: the global IDs folded into ``lead``
    ticket: Row[Any] | None = None
    comment: Row[Any] | None = None  # addTicketComment


class Abort(Exception):
    """Raised inside a unit of work to roll it back and report problems instead, with any rows
    the caller should still see (read in the transaction, nothing written)."""

    def __init__(
        self,
        problems: Iterable[Problem],
        lead: Row[Any] | None = None,
        client: Row[Any] | None = None,
    ) -> None:
        super().__init__("mutation aborted")
        self.problems = list(problems)
        self.outcome = Outcome(problems=self.problems, lead=lead, client=client)
