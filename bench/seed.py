"""A fresh benchmark database: N leads and N/10 clients with realistic spreads.

The schema comes from the app's own Alembic migrations; the rows are then bulk-loaded (stdlib
sqlite3 ``executemany`` on SQLite, asyncpg ``COPY`` on PostgreSQL) with every column the app
writes, the derived ``*_key``/``search_key`` columns computed by the app's helpers
(``db.models.fields``), and timestamps stored exactly as SQLAlchemy stores them. Secondary indexes
are dropped during the load and recreated from their own definitions afterwards (sorting once is
far cheaper than a million random index inserts); on SQLite so are the triggers that keep the
search index (FTS5) in step, which is rebuilt in one pass after the load.

Shape of the data: statuses NEW/CONTACTED/QUALIFIED/LOST with a tenth of the leads converted
(WON, ``converted_at``, one client each), ten sources, weighted US cities, names (a few with
accents), companies from 1,200 name stems, scores 0..100, ``created_at`` uniform over two years
with ids in creation order (as the API hands them out), ``updated_at`` at or after it; 3% of
the leads not converted are an earlier lead entered again (``person``: the duplicate finder's
work).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import sqlite3
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, make_url

from db import migrate
from db.engine import Database
from db.models import DEFAULT_WORKSPACE_ID
from db.models.fields import fold, full_name, search_key
from db.models.keys import company_key, phone_key
from db.models.search import FTS_TABLES
from db.settings import Settings
from db.types import UTCDateTime

CHUNK = 50_000
# Leads entered twice (person()): 3% of those past the first thousand, each a copy of one of
# the DUPLICATE_REACH leads before it.
DUPLICATE_SHARE = 0.03
DUPLICATE_AFTER = 1000
DUPLICATE_REACH = 50_000
TWO_YEARS_US = 730 * 24 * 3600 * 1_000_000
DAY_US = 24 * 3600 * 1_000_000
EPOCH = datetime(1970, 1, 1)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy "
    "Matthew Betty Anthony Sandra Mark Margaret Donald Ashley Steven Kimberly Andrew Emily Paul "
    "Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa George Deborah Timothy "
    "Stephanie Ronald Rebecca Jason Laura Edward Sharon Jeffrey Cynthia Ryan Kathleen Jacob Amy "
    "Gary Angela Nicholas Shirley Eric Anna Jonathan Brenda Stephen Pamela Larry Emma Justin "
    "Nicole Scott Helen Brandon Samantha Benjamin Katherine Samuel Christine Gregory Debra "
    "Alexander Rachel Frank Carolyn Patrick Janet Raymond Maria Jack Olivia Dennis Heather "
    "Jerry Diana Tyler Julie Aaron Joyce José Zoë Renée Chloé Björn Søren Ana Wei Priya Mohammed"
)
LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen "
    "Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez "
    "Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy "
    "Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox "
    "Ward Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price "
    "Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell "
    "Sullivan Bell Coleman Butler Henderson Barnes Müller O'Brien García Núñez Østergaard Chen"
)
COMPANY_HEADS = _words(
    "Acme Granite Summit Northwind Pioneer Harbor Evergreen Bluewater Redwood Silverline "
    "Ironclad Brightpath Cedar Falcon Horizon Keystone Lakeside Maple Meridian Oakridge "
    "Pinnacle Quantum Riverstone Sierra Sterling Sunrise Trident Vanguard Westfield Zenith "
    "Atlas Beacon Cobalt Delta Ember Frontier Golden Highland Juniper Liberty"
)
COMPANY_TAILS = _words(
    "Logistics Labs Analytics Foods Health Software Energy Capital Media Builders Dental "
    "Robotics Outdoor Insurance Realty Motors Apparel Consulting Systems Security Solar "
    "Fitness Brewing Pharma Learning Travel Design Marine Networks Supply"
)
COMPANY_SUFFIXES = ("Inc", "LLC", "Co", "Group", "Corp", "")
# (city, state, first three digits of its ZIP codes, telephone area code, weight)
CITIES = (
    ("New York", "NY", "100", "212", 84),
    ("Los Angeles", "CA", "900", "213", 39),
    ("Chicago", "IL", "606", "312", 27),
    ("Houston", "TX", "770", "713", 23),
    ("Phoenix", "AZ", "850", "602", 16),
    ("Philadelphia", "PA", "191", "215", 16),
    ("San Antonio", "TX", "782", "210", 15),
    ("San Diego", "CA", "921", "619", 14),
    ("Dallas", "TX", "752", "214", 13),
    ("Austin", "TX", "787", "512", 10),
    ("San Jose", "CA", "951", "408", 10),
    ("Jacksonville", "FL", "322", "904", 9),
    ("Fort Worth", "TX", "761", "817", 9),
    ("Columbus", "OH", "432", "614", 9),
    ("Charlotte", "NC", "282", "704", 9),
    ("Indianapolis", "IN", "462", "317", 9),
    ("San Francisco", "CA", "941", "415", 8),
    ("Seattle", "WA", "981", "206", 7),
    ("Denver", "CO", "802", "303", 7),
    ("Washington", "DC", "200", "202", 7),
    ("Nashville", "TN", "372", "615", 7),
    ("Oklahoma City", "OK", "731", "405", 7),
    ("Boston", "MA", "021", "617", 7),
    ("El Paso", "TX", "799", "915", 7),
    ("Portland", "OR", "972", "503", 6),
    ("Las Vegas", "NV", "891", "702", 6),
    ("Detroit", "MI", "482", "313", 6),
    ("Memphis", "TN", "381", "901", 6),
    ("Louisville", "KY", "402", "502", 6),
    ("Baltimore", "MD", "212", "410", 6),
    ("Milwaukee", "WI", "532", "414", 6),
    ("Albuquerque", "NM", "871", "505", 6),
    ("Tucson", "AZ", "857", "520", 5),
    ("Fresno", "CA", "937", "559", 5),
    ("Sacramento", "CA", "958", "916", 5),
    ("Kansas City", "MO", "641", "816", 5),
    ("Atlanta", "GA", "303", "404", 5),
    ("Miami", "FL", "331", "305", 4),
    ("Raleigh", "NC", "276", "919", 5),
    ("Omaha", "NE", "681", "402", 5),
    ("Minneapolis", "MN", "554", "612", 4),
    ("Tulsa", "OK", "741", "918", 4),
    ("Cleveland", "OH", "441", "216", 4),
    ("Tampa", "FL", "336", "813", 4),
    ("New Orleans", "LA", "701", "504", 4),
    ("Pittsburgh", "PA", "152", "412", 3),
    ("Cincinnati", "OH", "452", "513", 3),
    ("St. Louis", "MO", "631", "314", 3),
    ("Salt Lake City", "UT", "841", "801", 2),
    ("Boise", "ID", "837", "208", 2),
    ("Anchorage", "AK", "995", "907", 3),
    ("Honolulu", "HI", "968", "808", 3),
    ("Burlington", "VT", "054", "802", 1),
    ("Portland", "ME", "041", "207", 1),
)
SOURCES = (
    ("website", 30),
    ("referral", 15),
    ("linkedin", 12),
    ("google_ads", 12),
    ("trade_show", 6),
    ("cold_call", 5),
    ("webinar", 6),
    ("partner", 5),
    ("newsletter", 5),
    ("facebook", 4),
)
OPEN_STATUSES = (("NEW", 35), ("CONTACTED", 30), ("QUALIFIED", 15), ("LOST", 20))
NOTES = (
    "Asked for a call back next week.",
    "Interested in the annual plan; budget approval pending.",
    "Met at the trade show; wants a demo for the whole team.",
    "Not the decision maker — follow up with their CFO.",
    "Requested pricing for 50 seats.",
    "Prefers email. Do not call before 10am.",
)
CAMPAIGNS = ("spring-launch", "summer-sale", "q4-webinar", "partner-push", "retargeting")
STREETS = ("Main St", "Oak Ave", "Maple Dr", "Congress Ave", "Market St", "2nd St", "Elm St")
FREE_MAIL = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me")

LEAD_COLUMNS = _words(
    "id workspace_id email first_name last_name phone company city state postal_code source "
    "notes status score metadata created_at updated_at converted_at converted_client_id "
    "created_by_user_id created_by_api_key_id updated_by_user_id updated_by_api_key_id "
    "email_key name_key city_key state_key source_key search_key external_ids phone_key "
    "company_key owner_id"
)
CLIENT_COLUMNS = _words(
    "id workspace_id email first_name last_name phone company street city state postal_code "
    "country status archived_at notes metadata created_at updated_at created_by_user_id "
    "created_by_api_key_id updated_by_user_id updated_by_api_key_id "
    "email_key name_key city_key state_key search_key external_ids owner_id"
)


def _ascii_slug(value: str) -> str:
    """A name as it appears in an email address: ASCII letters only, lower case."""
    plain = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


COMPANIES = tuple(
    " ".join(part for part in (head, tail, suffix) if part)
    for head in COMPANY_HEADS
    for tail in COMPANY_TAILS
    for suffix in COMPANY_SUFFIXES
)
COMPANY_DOMAINS = tuple(
    _ascii_slug(head + tail) + ".com"
    for head in COMPANY_HEADS
    for tail in COMPANY_TAILS
    for _suffix in COMPANY_SUFFIXES
)
FIRST_SLUGS = tuple(_ascii_slug(n) for n in FIRST_NAMES)
LAST_SLUGS = tuple(_ascii_slug(n) for n in LAST_NAMES)


@dataclass
class Plan:
    """What every row will hold, decided up front (so a client can copy its lead) in compact
    per-lead columns; rows are built from it chunk by chunk."""

    n: int
    now_us: int
    first: list[int]  # index into FIRST_NAMES, -1 for null
    last: list[int]
    company: list[int]  # index into COMPANIES, -1 for null
    city: list[int]  # index into CITIES, -1 for null
    source: list[int]  # index into SOURCES, -1 for null
    status: list[str]
    score: list[int]
    noise: list[int]  # one random 32-bit number per lead for the small details
    created: list[int]  # microseconds since the epoch, ascending
    updated: list[int]
    client_of: dict[int, int]  # lead index -> client id (the converted leads)
    converted_at: dict[int, int]
    clients: list[int]  # lead index of client id i+1, in conversion order

    @property
    def n_clients(self) -> int:
        return len(self.clients)


def _weighted(
    rng: random.Random, weights: Sequence[int] | int, n: int, null_share: float
) -> list[int]:
    """n indexes drawn by weight (an int: that many, uniformly); null_share of them -1."""
    if isinstance(weights, int):
        picks = rng.choices(range(weights), k=n)
    else:
        picks = rng.choices(range(len(weights)), weights=weights, k=n)
    if null_share:
        for i in rng.sample(range(n), int(n * null_share)):
            picks[i] = -1
    return picks


def plan(n: int, *, seed: int = 42, now: datetime | None = None) -> Plan:
    """Decides every lead's and client's values; deterministic for a seed and ``now``."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    now_us = int((now.replace(tzinfo=None) - EPOCH) / timedelta(microseconds=1))
    # Names: 4% anonymous (only an email), 2% a first name only.
    first = rng.choices(range(len(FIRST_NAMES)), k=n)
    last = rng.choices(range(len(LAST_NAMES)), k=n)
    for i in rng.sample(range(n), int(n * 0.06)):
        last[i] = -1
        if rng.random() < 4 / 6:
            first[i] = -1
    company = _weighted(rng, len(COMPANIES), n, 0.12)
    city = _weighted(rng, [c[4] for c in CITIES], n, 0.05)
    source = _weighted(rng, [s[1] for s in SOURCES], n, 0.10)
    status = rng.choices([s[0] for s in OPEN_STATUSES], [s[1] for s in OPEN_STATUSES], k=n)
    # Scores cluster in the middle, as scoring models' do.
    score = [min(100, max(0, round(rng.gauss(50, 22)))) for _ in range(n)]
    noise = [rng.getrandbits(32) for _ in range(n)]
    rand = rng.random
    created = sorted(now_us - 1 - int(rand() * TWO_YEARS_US) for _ in range(n))
    updated = [
        c if rand() < 0.4 else min(now_us - 1, c + int(rand() * 30 * DAY_US)) for c in created
    ]
    # A tenth converted, each into a client of its own; only named leads convert (a client
    # needs a first and a last name).
    named = [i for i in range(n) if first[i] >= 0 and last[i] >= 0]
    converted = rng.sample(named, min(len(named), n // 10))
    converted_at = {
        i: min(now_us - 1, created[i] + rng.randrange(1, 60 * DAY_US)) for i in converted
    }
    clients = sorted(converted, key=lambda i: (converted_at[i], i))
    client_of = {i: k + 1 for k, i in enumerate(clients)}
    for i in converted:
        status[i] = "WON"
        updated[i] = converted_at[i]
    return Plan(
        n=n,
        now_us=now_us,
        first=first,
        last=last,
        company=company,
        city=city,
        source=source,
        status=status,
        score=score,
        noise=noise,
        created=created,
        updated=updated,
        client_of=client_of,
        converted_at=converted_at,
        clients=clients,
    )


class Person(NamedTuple):
    """The values a lead (and the client converted from it) has in common."""

    email: str
    first_name: str | None
    last_name: str | None
    name: str | None
    name_key: str
    phone: str | None
    company: str | None
    city: str | None
    state: str | None
    city_key: str
    state_key: str
    postal_code: str | None
    notes: str | None
    meta: str  # encoded JSON


# Memoized per vocabulary entry, but computed by the app's own helpers.
_NAMES: dict[tuple[int, int], tuple[str | None, str]] = {}
_CITY_KEYS = tuple((fold(c[0]), fold(c[1])) for c in CITIES)


def _name(f: int, la: int) -> tuple[str | None, str]:
    found = _NAMES.get((f, la))
    if found is None:
        first_name = FIRST_NAMES[f] if f >= 0 else None
        last_name = LAST_NAMES[la] if la >= 0 else None
        name = full_name(first_name, last_name)
        found = _NAMES[(f, la)] = (name, fold(name))
    return found


def _metas(encode_json: Callable[[Any], Any]) -> list[Any]:
    return [encode_json({})] + [encode_json({"utm_campaign": c}) for c in CAMPAIGNS]


_COMPANY_KEYS: dict[str | None, str] = {}


def _company_key(company: str | None) -> str:
    found = _COMPANY_KEYS.get(company)
    if found is None:
        found = _COMPANY_KEYS[company] = company_key(company)
    return found


def person(p: Plan, i: int, metas: Sequence[Any]) -> Person:
    """Lead i's values; DUPLICATE_SHARE of the leads not converted are another (earlier) lead
    entered again (``_again``)."""
    bits = p.noise[i]
    again = i >= DUPLICATE_AFTER and (bits >> 3) % 1000 < DUPLICATE_SHARE * 1000
    if again and i not in p.client_of:
        return _again(p, i, metas)
    return _person(p, i, metas)


def _again(p: Plan, i: int, metas: Sequence[Any]) -> Person:
    """An earlier lead entered again, as people do: a third with the same email in another
    case, a third with the same phone written another way (and their own email), a third with
    the first name misspelt at the company spelt otherwise (and their own email and phone)."""
    bits = p.noise[i]
    other = _person(p, i - 1 - bits % min(i, DUPLICATE_REACH), metas)
    own = _person(p, i, metas)
    kind = (bits >> 13) % 3
    if kind == 0:
        local, _, domain = other.email.partition("@")
        return other._replace(email=f"{local.capitalize()}@{domain}")
    if kind == 1 and other.phone:
        digits = "".join(ch for ch in other.phone if ch.isdigit())[1:]
        phone = f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
        return other._replace(email=own.email, phone=phone)
    if other.first_name is None or len(other.first_name) < 4:
        return own
    first_name = other.first_name[:-1]
    name = full_name(first_name, other.last_name)
    company = other.company.upper() if other.company else None
    return other._replace(
        email=own.email,
        phone=own.phone,
        first_name=first_name,
        name=name,
        name_key=fold(name),
        company=company,
    )


def _person(p: Plan, i: int, metas: Sequence[Any]) -> Person:
    f, la, co, ci, bits = p.first[i], p.last[i], p.company[i], p.city[i], p.noise[i]
    name, name_key = _name(f, la)
    if f >= 0 and la >= 0:
        local = f"{FIRST_SLUGS[f]}.{LAST_SLUGS[la]}"
    elif f >= 0:
        local = FIRST_SLUGS[f]
    else:
        local = "contact"
    domain = COMPANY_DOMAINS[co] if co >= 0 else FREE_MAIL[bits % len(FREE_MAIL)]
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    city_key = state_key = ""
    area = "800"
    if ci >= 0:
        city, state, zip3, area, _ = CITIES[ci]
        city_key, state_key = _CITY_KEYS[ci]
        postal_code = f"{zip3}{(bits >> 16) % 100:02d}"
    return Person(
        # The index makes every email unique. Seeded emails are already in the normal form
        # email-validator gives (lower-case ASCII), so they are stored as the API would.
        email=f"{local}{i + 1}@{domain}",
        first_name=FIRST_NAMES[f] if f >= 0 else None,
        last_name=LAST_NAMES[la] if la >= 0 else None,
        name=name,
        name_key=name_key,
        # 70% give a phone number, 15% have notes, 30% came from a campaign.
        phone=(
            f"+1 {area}-{200 + (bits >> 8) % 800}-{(bits >> 18) % 10000:04d}"
            if bits % 10 >= 3
            else None
        ),
        company=COMPANIES[co] if co >= 0 else None,
        city=city,
        state=state,
        city_key=city_key,
        state_key=state_key,
        postal_code=postal_code,
        notes=NOTES[(bits >> 4) % len(NOTES)] if (bits >> 12) % 100 < 15 else None,
        meta=metas[0] if (bits >> 20) % 10 >= 3 else metas[1 + (bits >> 24) % len(CAMPAIGNS)],
    )


Stamp = Callable[[int], Any]
_DAYS: dict[int, str] = {}
_CLOCK = [f"{h:02d}:{m:02d}:{sec:02d}" for h in range(24) for m in range(60) for sec in range(60)]


def sqlite_stamp(us: int) -> str:
    """A timestamp as SQLAlchemy stores a UTCDateTime on SQLite: naive UTC text with
    microseconds (checked against the app's own column type in ``check_stamps``)."""
    seconds, micro = divmod(us, 1_000_000)
    day, second = divmod(seconds, 86_400)
    date = _DAYS.get(day)
    if date is None:
        date = _DAYS[day] = (EPOCH + timedelta(days=day)).date().isoformat()
    return f"{date} {_CLOCK[second]}.{micro:06d}"


def postgres_stamp(us: int) -> datetime:
    return (EPOCH + timedelta(microseconds=us)).replace(tzinfo=UTC)


def check_stamps(p: Plan) -> None:
    """Our fast formatter must agree with the app's UTCDateTime on SQLite, to the character."""
    dialect = sqlite.dialect()
    bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None
    for us in (0, 1, DAY_US - 1, p.now_us, *p.created[:: max(1, p.n // 1000)]):
        if bind(postgres_stamp(us)) != sqlite_stamp(us):
            raise AssertionError(f"{bind(postgres_stamp(us))!r} != {sqlite_stamp(us)!r}")


def lead_rows(
    p: Plan,
    stamp: Stamp,
    encode_json: Callable[[Any], Any],
    first: int = 0,
    stop: int | None = None,
) -> Iterator[list[tuple]]:
    """Leads first..stop-1 in LEAD_COLUMNS order, CHUNK at a time; id i+1 for lead i."""
    metas = _metas(encode_json)
    no_ids = encode_json([])  # external IDs: none (the seed has no outside systems)
    sources = [(s[0], fold(s[0])) for s in SOURCES]
    status, score, source_of, created, updated = p.status, p.score, p.source, p.created, p.updated
    converted_at, client_of = p.converted_at, p.client_of
    ws = DEFAULT_WORKSPACE_ID
    no_ids = encode_json([])
    stop = p.n if stop is None else stop
    for start in range(first, stop, CHUNK):
        chunk = []
        for i in range(start, min(stop, start + CHUNK)):
            (email, first_name, last_name, name, name_key, phone, company, city, state,
             city_key, state_key, postal_code, notes, meta) = person(p, i, metas)  # fmt: skip
            s = source_of[i]
            source, source_key = sources[s] if s >= 0 else (None, "")
            made = stamp(created[i])
            changed = made if updated[i] == created[i] else stamp(updated[i])
            conv = converted_at.get(i)
            chunk.append(
                (
                    i + 1, ws, email, first_name, last_name, phone, company, city, state,
                    postal_code, source, notes, status[i], score[i], meta, made, changed,
                    stamp(conv) if conv is not None else None, client_of.get(i),
                    None, None, None, None,  # created_by_*, updated_by_*: before accounts
                    fold(email), name_key, city_key, state_key, source_key,
                    search_key(name, email, company), no_ids, phone_key(phone),
                    _company_key(company),
                    None,  # owner_id: unassigned (bench/aggregates.py assigns owners)
                )
            )  # fmt: skip
        yield chunk


def client_rows(p: Plan, stamp: Stamp, encode_json: Callable[[Any], Any]) -> list[tuple]:
    """Clients in CLIENT_COLUMNS order: each made from its lead as convertLead makes it."""
    metas = _metas(encode_json)
    rows = []
    for k, i in enumerate(p.clients):
        who = person(p, i, metas)
        at = p.converted_at[i]
        bits = p.noise[i]
        archived = (bits >> 28) % 20 == 0  # 5% archived since
        archived_at = min(p.now_us - 1, at + DAY_US * (1 + (bits >> 8) % 90)) if archived else None
        street = f"{100 + (bits >> 4) % 9900} {STREETS[(bits >> 2) % len(STREETS)]}"
        rows.append(
            (
                k + 1,
                DEFAULT_WORKSPACE_ID,
                who.email,
                who.first_name,
                who.last_name,
                who.phone,
                who.company,
                street if (bits >> 6) % 2 else None,
                who.city,
                who.state,
                who.postal_code,
                "US",
                "ARCHIVED" if archived else "ACTIVE",
                stamp(archived_at) if archived_at is not None else None,
                who.notes,
                who.meta,
                stamp(at),
                stamp(archived_at if archived_at is not None else at),
                None,
                None,
                None,
                None,
                fold(who.email),
                who.name_key,
                who.city_key,
                who.state_key,
                search_key(who.name, who.email, who.company),
                encode_json([]),
                None,  # owner_id: unassigned
            )
        )
    return rows


# ------------------------------------------------------------------ loading


def _check_columns(table: str, have: Sequence[str], ours: Sequence[str]) -> None:
    if sorted(have) != sorted(ours):
        raise SystemExit(
            f"bench/seed.py is out of date: the migrated {table} table has columns "
            f"{sorted(set(have) - set(ours))} that the seeder does not fill and lacks "
            f"{sorted(set(ours) - set(have))}. Update LEAD_COLUMNS/CLIENT_COLUMNS."
        )


async def migrate_fresh(url: str) -> None:
    """The app's own migrations, on the app's own engine."""
    db = Database(url, Settings(database_url=url, _env_file=None))  # type: ignore[call-arg]
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise SystemExit(f"BENCH_DATABASE_URL {url!r}: the benchmark needs an SQLite file")
    return Path(database)


def _log(message: str) -> None:
    print(f"  {message}", flush=True)


def _parts(n: int) -> list[tuple[int, int]]:
    """Lead ranges, one per CPU (at most four): rows are built in that many processes."""
    workers = max(1, min(4, len(os.sched_getaffinity(0))))
    size = max(1, -(-n // workers))
    return [(start, min(n, start + size)) for start in range(0, n, size)]


def _start(target: Callable[..., None], jobs: list[tuple[Any, ...]]) -> list[BaseProcess]:
    """target(*job) for each job, each in a forked process: the plan is shared, not copied."""
    context = multiprocessing.get_context("fork")
    processes: list[BaseProcess] = [
        context.Process(target=target, args=job, daemon=True) for job in jobs
    ]
    for process in processes:
        process.start()
    return processes


def _join(processes: list[BaseProcess]) -> None:
    for process in processes:
        process.join()
    failed = [process.exitcode for process in processes if process.exitcode != 0]
    if failed:
        raise SystemExit(f"a seeding process failed (exit codes {failed}); see above")


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _bulk_pragmas(con: sqlite3.Connection) -> None:
    # A new, disposable file: no journal and no syncs while it is filled.
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-1048576",
                   "temp_store=MEMORY"):  # fmt: skip
        con.execute(f"PRAGMA {pragma}")


def _drop_all(con: sqlite3.Connection, kind: str) -> list[tuple[str, str]]:
    """Drops every index or trigger of leads and clients (not the automatic indexes, which have
    no SQL); their (name, sql), to create them again after the load."""
    found = con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = ? "
        "AND tbl_name IN ('leads', 'clients') AND sql IS NOT NULL",
        (kind,),
    ).fetchall()
    for name, _ in found:
        con.execute(f'DROP {kind.upper()} "{name}"')
    return found


def _fill_shard(path: str, create_table: str, p: Plan, first: int, stop: int) -> None:
    """One process's share of the leads, into a file of its own (the leads table alone)."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        _bulk_pragmas(con)
        con.execute(create_table)
        con.execute("BEGIN")
        # SQLAlchemy's JSON type on SQLite stores json.dumps() of the value.
        for chunk in lead_rows(p, sqlite_stamp, json.dumps, first, stop):
            con.executemany(_insert_sql("leads", LEAD_COLUMNS), chunk)
        con.execute("COMMIT")
    finally:
        con.close()


async def seed_sqlite(url: str, p: Plan) -> None:
    """Migrations, then a bulk load: the leads are built in one process per CPU, each into a
    shard file, and copied into the database in id order; then the indexes are built. The
    database is switched to WAL, as the app keeps it, at the end."""
    path = sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    await migrate_fresh(url)
    con = sqlite3.connect(path, isolation_level=None)
    shards: list[Path] = []
    try:
        _bulk_pragmas(con)
        for table, ours in (("leads", LEAD_COLUMNS), ("clients", CLIENT_COLUMNS)):
            have = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
            _check_columns(table, have, ours)
        (create_leads,) = con.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'leads'"
        ).fetchone()
        indexes = _drop_all(con, "index")
        # The triggers that keep the search index (FTS5) in step would index row by row; the
        # index is rebuilt in one pass after the load instead, and the triggers put back.
        triggers = _drop_all(con, "trigger")

        started = time.perf_counter()
        jobs: list[tuple[Any, ...]] = []
        for k, (first, stop) in enumerate(_parts(p.n)):
            shard = path.with_name(f"{path.name}.part{k}")
            shard.unlink(missing_ok=True)
            shards.append(shard)
            jobs.append((str(shard), create_leads, p, first, stop))
        workers = _start(_fill_shard, jobs)
        con.execute("BEGIN")
        con.executemany(
            _insert_sql("clients", CLIENT_COLUMNS), client_rows(p, sqlite_stamp, json.dumps)
        )
        con.execute("COMMIT")
        _join(workers)
        built = time.perf_counter()
        columns = ", ".join(LEAD_COLUMNS)
        for shard in shards:
            con.execute("ATTACH DATABASE ? AS part", (str(shard),))
            con.execute(f"INSERT INTO leads ({columns}) SELECT {columns} FROM part.leads")
            con.execute("DETACH DATABASE part")
        copied = time.perf_counter()
        for _, sql in indexes:
            con.execute(sql)
        indexed = time.perf_counter()
        for fts in FTS_TABLES.values():
            # As migration 0004 does: rebuilt, then merged into one segment.
            con.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")
            con.execute(f"INSERT INTO {fts}({fts}) VALUES ('optimize')")
        for _, sql in triggers:
            con.execute(sql)
        # No ANALYZE: the app never runs it, and without stat4 SQLite's averages mislead its
        # planner on these skewed columns (see ARCHITECTURE.md, "Search and query plans").
        con.execute("PRAGMA journal_mode=WAL")
        _log(
            f"rows {built - started:.1f} s ({len(shards)} processes), copy "
            f"{copied - built:.1f} s, indexes {indexed - copied:.1f} s, search index "
            f"{time.perf_counter() - indexed:.1f} s"
        )
    finally:
        con.close()
        for shard in shards:
            shard.unlink(missing_ok=True)


def _asyncpg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _copy_leads(dsn: str, p: Plan, first: int, stop: int) -> None:
    import asyncpg

    con = await asyncpg.connect(dsn)
    try:
        async with con.transaction():
            # Rows are consistent by construction: skip the per-row foreign-key triggers.
            await con.execute("SET LOCAL session_replication_role = replica")
            for chunk in lead_rows(p, postgres_stamp, json.dumps, first, stop):
                await con.copy_records_to_table("leads", records=chunk, columns=LEAD_COLUMNS)
    finally:
        await con.close()


def _copy_part(dsn: str, p: Plan, first: int, stop: int) -> None:
    """One process's share of the leads, COPYed over a connection of its own."""
    asyncio.run(_copy_leads(dsn, p, first, stop))


async def seed_postgres(url: str, p: Plan) -> None:
    """A new database (its name must say 'bench'), the migrations, then COPY from one process
    per CPU, the indexes, and the statistics a settled database would have."""
    import asyncpg  # the app's PostgreSQL driver

    target = make_url(url)
    name = target.database or ""
    # The database is dropped and made anew: refuse anything not obviously the benchmark's.
    if "bench" not in name:
        raise SystemExit(
            f"BENCH_DATABASE_URL names the database {name!r}; the benchmark drops and recreates "
            "it, so its name must contain 'bench' (e.g. .../leadgraph_bench)."
        )
    admin = await asyncpg.connect(_asyncpg_dsn(target.set(database="postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await migrate_fresh(url)
    dsn = _asyncpg_dsn(target)
    con = await asyncpg.connect(dsn)
    try:
        for table, ours in (("leads", LEAD_COLUMNS), ("clients", CLIENT_COLUMNS)):
            have = await con.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table
            )
            _check_columns(table, [r[0] for r in have], ours)
        # Secondary indexes only: those behind a constraint (primary keys) stay.
        indexes = await con.fetch(
            "SELECT indexname, indexdef FROM pg_indexes i WHERE tablename IN ('leads', 'clients')"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
        )
        for row in indexes:
            await con.execute(f'DROP INDEX "{row["indexname"]}"')
        started = time.perf_counter()
        workers = _start(_copy_part, [(dsn, p, first, stop) for first, stop in _parts(p.n)])
        async with con.transaction():
            await con.execute("SET LOCAL session_replication_role = replica")
            await con.copy_records_to_table(
                "clients",
                records=client_rows(p, postgres_stamp, json.dumps),
                columns=CLIENT_COLUMNS,
            )
        _join(workers)
        copied = time.perf_counter()
        for row in indexes:
            await con.execute(row["indexdef"])
        for table in ("leads", "clients"):
            await con.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(max(id), 0) + 1 FROM {table}), false)"
            )
        # A settled database has been autovacuumed and analysed: give the planner its stats.
        await con.execute("VACUUM ANALYZE leads")
        await con.execute("VACUUM ANALYZE clients")
        done = time.perf_counter()
        _log(f"rows {copied - started:.1f} s, indexes and statistics {done - copied:.1f} s")
    finally:
        await con.close()


async def seed(url: str, p: Plan) -> None:
    """A fresh database at ``url`` holding the plan's rows."""
    if make_url(url).get_backend_name() == "sqlite":
        await seed_sqlite(url, p)
    else:
        await seed_postgres(url, p)
    # The load went past the triggers that keep the pipeline tallies (dropped on SQLite,
    # replica mode on PostgreSQL): counted once from the rows, as migration 0015's backfill.
    await recount(url)


async def recount(url: str) -> None:
    """``server.py recount``: the pipeline tallies rebuilt from the leads."""
    from db.engine import Database
    from db.repositories.lead_tallies import TallyRepository
    from db.settings import Settings

    started = time.perf_counter()
    db = Database(url, Settings(database_url=url, db_statement_timeout_ms=0, _env_file=None))  # type: ignore[call-arg]
    try:
        async with db.write() as conn:
            rows = await TallyRepository(conn).recount()
    finally:
        await db.dispose()
    _log(f"tallies {time.perf_counter() - started:.1f} s ({rows:,} tally rows)")
