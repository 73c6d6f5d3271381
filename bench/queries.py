"""The query mix of issue 5, as GraphQL documents for the server and paths on the floor.

Every read runs twice: as is, and with ``totalCount``. The selections here and the JSON that
bench/floor.py builds must agree; the harness checks that they do before it measures anything.
Documents use variables, as real clients do (so the server's parse and validation caches hit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from bench.load import LoadSpec, Mode

LEAD_FIELDS = "id email firstName lastName name company city state source status score createdAt"
CLIENT_FIELDS = "id name email company status createdAt address { city state postalCode }"
PAGE_INFO = "pageInfo { hasNextPage endCursor }"
USER_ERRORS = "userErrors { field message code }"
# Stands for the per-request value inside variables (an id, or an email's local part).
VALUE = "@@VALUE@@"
# The floors that are GraphQL servers (POST /graphql with the server's documents): the
# framework floor (bench/framework.py) and the write floor (bench/write_floor.py).
GRAPHQL_FLOORS = frozenset({"framework", "write"})
# The server with EVENT_LOG=false (the writes only): what the change-event log costs a write.
NOLOG = "nolog"
NOLOG_QUERIES = frozenset({"Q7", "Q8"})


@dataclass(frozen=True)
class Query:
    key: str  # "Q1", "Q1+count"
    title: str
    document: str
    variables: dict[str, Any]
    floor_path: str
    mode: Mode = "fixed"
    write: bool = False
    values: tuple[str, ...] = ()  # for mode "cycle"
    count: bool = False

    def body(self, value: str = "") -> bytes:
        return json.dumps(self.payload()).replace(VALUE, value).encode()

    def payload(self) -> dict[str, Any]:
        return {"query": self.document, "variables": self.variables}

    def spec(self, side: str, key: str, *, values: tuple[str, ...] = (), tag: str = "") -> LoadSpec:
        """The load for one side: the server's (any number of workers, or without the event
        log) or a floor's (the framework and write floors take the server's GraphQL
        documents)."""
        prefix, _, suffix = json.dumps(self.payload()).partition(VALUE)
        graphql = side.startswith("server") or side in GRAPHQL_FLOORS or side == NOLOG
        return LoadSpec(
            path="/graphql" if graphql else self.floor_path,
            headers={"Authorization": f"Bearer {key}"},
            prefix=prefix,
            suffix=suffix,
            mode=self.mode,
            values=values or self.values,
            tag=tag,
        )


@dataclass
class Fixtures:
    """What the queries point at, read from the seeded database."""

    key: str
    run: str
    leads: int
    clients: int
    half_cursor: str
    converted_ids: list[str]  # converted leads (global IDs), for lead(id) with a client
    search: str
    search_matches: int
    pools: dict[str, list[str]] = field(default_factory=dict)  # convertLead: distinct leads


def _connection(field_name: str, args: str, node: str, count: bool) -> str:
    total = " totalCount" if count else ""
    return f"{field_name}({args}) {{ edges {{ cursor node {{ {node} }} }} {PAGE_INFO}{total} }}"


def _leads(name: str, params: str, args: str, count: bool) -> str:
    return f"query {name}({params}) {{ {_connection('leads', args, LEAD_FIELDS, count)} }}"


def reads(fx: Fixtures) -> list[Query]:
    """Q1-Q6, without and with totalCount."""
    out: list[Query] = []
    for count in (False, True):
        suffix, floor = ("+count", "/count") if count else ("", "")
        out += [
            Query(
                "Q1" + suffix,
                "leads(first: 20)",
                _leads("Q1", "$first: Int!", "first: $first", count),
                {"first": 20},
                "/leads" + floor,
                count=count,
            ),
            Query(
                "Q2" + suffix,
                "leads: 2 statuses + a state, by SCORE",
                _leads(
                    "Q2",
                    "$first: Int!, $filter: LeadFilter!, $orderBy: LeadOrder!",
                    "first: $first, filter: $filter, orderBy: $orderBy",
                    count,
                ),
                {
                    "first": 20,
                    "filter": {"status": ["NEW", "CONTACTED"], "state": "TX"},
                    "orderBy": {"field": "SCORE", "direction": "DESC"},
                },
                "/leads" + floor,
                count=count,
            ),
            Query(
                "Q3" + suffix,
                f'leads(filter: {{search: "{fx.search}"}})',
                _leads(
                    "Q3",
                    "$first: Int!, $filter: LeadFilter!",
                    "first: $first, filter: $filter",
                    count,
                ),
                {"first": 20, "filter": {"search": fx.search}},
                "/leads" + floor,
                count=count,
            ),
            Query(
                "Q4" + suffix,
                "leads(first: 20, after: <half-way>)",
                _leads(
                    "Q4", "$first: Int!, $after: String!", "first: $first, after: $after", count
                ),
                {"first": 20, "after": fx.half_cursor},
                "/leads" + floor,
                count=count,
            ),
        ]
        if not count:
            out.append(
                Query(
                    "Q5",
                    "lead(id) { convertedClient }",
                    f"query Q5($id: ID!) {{ lead(id: $id) {{ {LEAD_FIELDS} convertedAt "
                    f"convertedClient {{ {CLIENT_FIELDS} }} }} }}",
                    {"id": VALUE},
                    "/lead",
                    mode="cycle",
                    values=tuple(fx.converted_ids),
                )
            )
        client_node = f"{CLIENT_FIELDS} convertedFrom {{ id name status convertedAt }}"
        out.append(
            Query(
                "Q6" + suffix,
                "clients(first: 50) { convertedFrom }",
                f"query Q6($first: Int!) {{ "
                f"{_connection('clients', 'first: $first', client_node, count)} }}",
                {"first": 50},
                "/clients" + floor,
                count=count,
            )
        )
    order = [
        "Q1",
        "Q1+count",
        "Q2",
        "Q2+count",
        "Q3",
        "Q3+count",
        "Q4",
        "Q4+count",
        "Q5",
        "Q6",
        "Q6+count",
    ]
    out = [replace(q, title=f"{q.title} + totalCount") if q.count else q for q in out]
    return sorted(out, key=lambda q: order.index(q.key))


CREATE_INPUT = {
    "email": f"{VALUE}@bench.example.com",
    "firstName": "Ada",
    "lastName": "Benchmark",
    "company": "Granite Harbor Labs",
    "city": "Austin",
    "state": "TX",
    "source": "website",
    "score": 72,
}


def writes() -> list[Query]:
    return [
        Query(
            "Q7",
            "createLead",
            f"mutation Q7($input: CreateLeadInput!) {{ createLead(input: $input) {{ "
            f"lead {{ {LEAD_FIELDS} }} {USER_ERRORS} }} }}",
            {"input": CREATE_INPUT},
            "/create-lead",
            mode="unique",
            write=True,
        ),
        Query(
            "Q8",
            "convertLead",
            f"mutation Q8($id: ID!) {{ convertLead(id: $id) {{ lead {{ id status convertedAt }} "
            f"client {{ {CLIENT_FIELDS} }} {USER_ERRORS} }} }}",
            {"id": VALUE},
            "/convert-lead",
            mode="once",
            write=True,
        ),
    ]


def mix(fx: Fixtures) -> list[Query]:
    return reads(fx) + writes()


def with_first(query: Query, first: int) -> Query:
    """The same query with another page size (for the statements-per-page-size check)."""
    return replace(
        query, key=f"{query.key} first={first}", variables={**query.variables, "first": first}
    )


def leads_with_clients() -> Query:
    """Converted leads with their clients: every row on the page follows convertedClient, so
    the page size is the only thing that changes (server only: the statements must not grow)."""
    node = f"{LEAD_FIELDS} convertedClient {{ id name }}"
    args = "first: $first, filter: {converted: true}"
    return Query(
        "converted leads + convertedClient",
        "leads(filter: {converted: true}) { convertedClient }",
        f"query L($first: Int!) {{ {_connection('leads', args, node, False)} }}",
        {"first": 20},
        "",
    )
