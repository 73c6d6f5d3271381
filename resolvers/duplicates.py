"""Possible duplicate leads: the same email, the same phone (E.164), or a similar name at a
similar company, each pair scored.

Score: ``1 - (1 - e)(1 - p)(1 - n)``, each reason's certainty taken as independent evidence:
e = 0.95 for the same email, p = 0.7 for the same phone, n = 0.6 * similarity for a similar
name and company (similarity: the mean of rapidfuzz's ``token_sort_ratio`` of the names and
of the companies, each at least 85 of 100; 1 for equal keys). So a shared email (≥ 0.95)
always outranks a pair without one (≤ 0.88), and a shared phone (≥ 0.7) a pair with only
similar names (≤ 0.6): ``possibleDuplicateLeads`` can read the reasons one after another.

Candidates come from the indexes of the matching keys (db/models/keys.py): the same
``email_key``, ``phone_key``, ``company_key`` (then the names compared) or ``name_key`` (then
the companies compared), at most ``CANDIDATES_PER_KEY`` leads per key.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rapidfuzz import fuzz

from db.models import Role
from db.repositories.duplicates import MATCH_COLUMNS, DuplicateRepository
from resolvers.errors import BadInput

if TYPE_CHECKING:
    from db.engine import Database
    from resolvers.context import Context


class DuplicateReason(enum.Enum):
    SAME_EMAIL = "SAME_EMAIL"
    SAME_PHONE = "SAME_PHONE"
    SIMILAR_NAME_AND_COMPANY = "SIMILAR_NAME_AND_COMPANY"


EMAIL_CERTAINTY = 0.95
PHONE_CERTAINTY = 0.7
NAME_AND_COMPANY_CERTAINTY = 0.6
# rapidfuzz token_sort_ratio (0..100) at or above which two names (companies) are alike.
SIMILARITY_THRESHOLD = 85.0
# Leads read per shared key: a key shared by thousands (a placeholder phone, a big company)
# costs one bounded index range, not thousands of rows.
CANDIDATES_PER_KEY = 200
MAX_FIRST = 100
# possibleDuplicateLeads: members of one group paired (the lowest ids), shared keys read per
# reason (in key order: past it, a reason's pairs are a sample), and keys per statement.
PAIRS_GROUP_MAX = 20
PAIRS_KEYS_MAX = 10_000
PAIRS_KEYS_PER_STATEMENT = 1000

# A lead's matching keys: (id, email_key, phone_key, company_key, name_key).
Keys = tuple[int, str, str, str, str]


@dataclass(frozen=True)
class Duplicate:
    """A lead (``id``) that may be the same person as another (``of``)."""

    of: int
    id: int
    reasons: tuple[DuplicateReason, ...]
    score: float


def keys_of(row: Any) -> Keys:
    return (row.id, row.email_key, row.phone_key, row.company_key, row.name_key)


def _alike(a: str, b: str) -> float | None:
    """How alike two non-empty keys are (0..100), None below the threshold."""
    if not a or not b:
        return None
    # With a cutoff rapidfuzz gives up early on a pair below it (0), ~40% faster.
    ratio = 100.0 if a == b else fuzz.token_sort_ratio(a, b, score_cutoff=SIMILARITY_THRESHOLD)
    return ratio if ratio >= SIMILARITY_THRESHOLD else None


def pair(a: Keys, b: Keys) -> Duplicate | None:
    """Whether ``b`` may be a duplicate of ``a``: its reasons and score, or None."""
    reasons: list[DuplicateReason] = []
    doubt = 1.0
    if a[1] and a[1] == b[1]:
        reasons.append(DuplicateReason.SAME_EMAIL)
        doubt *= 1 - EMAIL_CERTAINTY
    if a[2] and a[2] == b[2]:
        reasons.append(DuplicateReason.SAME_PHONE)
        doubt *= 1 - PHONE_CERTAINTY
    names = _alike(a[4], b[4])
    companies = _alike(a[3], b[3]) if names is not None else None
    if names is not None and companies is not None:
        reasons.append(DuplicateReason.SIMILAR_NAME_AND_COMPANY)
        doubt *= 1 - NAME_AND_COMPANY_CERTAINTY * (names + companies) / 200
    if not reasons:
        return None
    return Duplicate(a[0], b[0], tuple(reasons), round(1 - doubt, 4))


def _best_first(found: list[Duplicate]) -> list[Duplicate]:
    return sorted(found, key=lambda d: (-d.score, d.of, d.id))


def check_first(first: int, argument: str = "first") -> int:
    if not 0 <= first <= MAX_FIRST:
        raise BadInput(f"Argument '{argument}' must be between 0 and {MAX_FIRST}.", argument)
    return first


async def duplicates_of(
    db: Database, workspace_id: int, leads: Sequence[Keys]
) -> list[list[Duplicate]]:
    """Each lead's possible duplicates, best first (at most ``MAX_FIRST``): one statement for
    the whole batch (a UNION ALL of an index range per distinct key)."""
    wanted: dict[tuple[str, str], None] = {}
    for keys in leads:
        for column, key in zip(MATCH_COLUMNS, keys[1:], strict=True):
            if key:
                wanted[(column, key)] = None
    if not wanted:
        return [[] for _ in leads]
    async with db.read() as conn:
        rows = await DuplicateRepository(conn, workspace_id).sharing(wanted, CANDIDATES_PER_KEY)
    by_key: dict[tuple[int, str], dict[int, Keys]] = {}
    for row in rows:
        found = keys_of(row)
        for n, key in enumerate(found[1:]):
            if key:
                by_key.setdefault((n, key), {})[found[0]] = found
    out = []
    for keys in leads:
        candidates: dict[int, Keys] = {}
        for n, key in enumerate(keys[1:]):
            if key:
                candidates.update(by_key.get((n, key), {}))
        candidates.pop(keys[0], None)
        scored = [d for c in candidates.values() if (d := pair(keys, c)) is not None]
        out.append(_best_first(scored)[:MAX_FIRST])
    return out


async def possible_duplicates(ctx: Context, first: int) -> list[Duplicate]:
    """Pairs of leads across the workspace, each once (lower id first), best first, ties by
    ids. Read one reason at a time (the same email, then phone, then company or name groups),
    stopping once ``first`` pairs are found: a later reason's pairs all score lower."""
    ctx.require(Role.VIEWER)
    check_first(first)
    if first == 0:
        return []
    seen: set[tuple[int, int]] = set()
    found: list[Duplicate] = []
    tiers = (("email_key",), ("phone_key",), ("company_key", "name_key"))
    async with ctx.db.read() as conn:
        repo = DuplicateRepository(conn, ctx.workspace_id)
        for columns in tiers:
            for column in columns:
                shared = await repo.shared(column, PAIRS_KEYS_MAX)
                # Most groups are small: read whole, many keys a statement; a large one (a
                # placeholder phone, a big company) by an index range of its first leads.
                small = [row.key for row in shared if row.n <= PAIRS_GROUP_MAX]
                large = [(column, row.key) for row in shared if row.n > PAIRS_GROUP_MAX]
                rows = await repo.sharing(large, PAIRS_GROUP_MAX) if large else []
                for start in range(0, len(small), PAIRS_KEYS_PER_STATEMENT):
                    chunk = small[start : start + PAIRS_KEYS_PER_STATEMENT]
                    rows += await repo.holding(column, chunk)
                groups: dict[str, list[Keys]] = {}
                for row in rows:
                    groups.setdefault(getattr(row, column), []).append(keys_of(row))
                for group in groups.values():
                    found += _pairs(sorted(group), seen)
            if len(found) >= first:
                break
    return _best_first(found)[:first]


def _pairs(group: list[Keys], seen: set[tuple[int, int]]) -> list[Duplicate]:
    """The duplicate pairs among a group's leads (in id order) not scored before."""
    out = []
    for i, a in enumerate(group):
        for b in group[i + 1 :]:
            if (a[0], b[0]) in seen:
                continue
            seen.add((a[0], b[0]))
            if (d := pair(a, b)) is not None:
                out.append(d)
    return out
