"""GET /exports/leads|clients.csv|ndjson: every column, the list field's filter and order,
parameter errors as GraphQL spells them, access, paging, CSV quoting, and a client that hangs
up mid-stream."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from db.models import Role
from resolvers import exports
from resolvers.auth import create_key_for_workspace
from tests.conftest import GraphQLClient, LiveServer
from tests.factories import client_values, create_clients, create_leads, lead_values

LEAD_HEADER = [
    *("id", "email", "firstName", "lastName", "phone", "company", "city", "state"),
    *("postalCode", "source", "notes", "status", "score", "metadata", "externalIds"),
    *("createdAt", "updatedAt", "convertedAt"),
]
CLIENT_HEADER = [
    *("id", "email", "firstName", "lastName", "phone", "company", "street", "city", "state"),
    *("postalCode", "country", "status", "notes", "metadata", "externalIds"),
    *("createdAt", "updatedAt", "archivedAt"),
]
LEAD_IDS = """
query ($filter: LeadFilter, $orderBy: LeadOrder) {
  leads(first: 100, filter: $filter, orderBy: $orderBy) { nodes { id } }
}
"""
CLIENT_IDS = """
query ($filter: ClientFilter, $orderBy: ClientOrder) {
  clients(first: 100, filter: $filter, orderBy: $orderBy) { nodes { id } }
}
"""
CREATE_LEAD = "mutation ($email: String!) { createLead(input: {email: $email}) { lead { id } } }"
LEAD_COUNT = "query ($filter: LeadFilter) { leads(filter: $filter) { totalCount } }"
WHEN = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def get(http: httpx.Client, path: str, token: str | None = "", **params: Any) -> httpx.Response:
    """GET an export; ``params`` are sent as JSON text. token "" keeps the suite's key."""
    query = {name: json.dumps(value) for name, value in params.items()}
    headers = {} if token == "" else {"Authorization": f"Bearer {token}" if token else ""}
    url = f"{path}?{urlencode(query)}" if query else path
    return http.get(url, headers=headers)


def csv_rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text, newline="")))


def json_cells(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row with its JSON cells read (PostgreSQL's JSONB stores keys in its own order)."""
    return row | {k: json.loads(row[k]) for k in ("metadata", "externalIds")}


def ndjson_rows(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def full_lead(**overrides: Any) -> dict[str, Any]:
    return lead_values(
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        phone="+1 512 555 0100",
        company="Analytical Engines",
        city="Austin",
        state="Texas",
        postal_code="78701",
        source="web",
        notes="Met at the fair",
        status="QUALIFIED",
        score=42,
        meta={"tier": "gold", "tags": ["a", "b"]},
        external_ids=[{"system": "salesforce", "id": "00Q5e000001AbCd"}],
        created_at=WHEN,
        updated_at=WHEN + timedelta(hours=1),
        converted_at=WHEN + timedelta(days=1),
        **overrides,
    )


def full_client(**overrides: Any) -> dict[str, Any]:
    return client_values(
        email="grace@example.com",
        first_name="Grace",
        last_name="Hopper",
        phone="+1 212 555 0199",
        company="Navy",
        street="1 Main St",
        city="Arlington",
        state="VA",
        postal_code="22201",
        country="US",
        notes="Compilers",
        meta={"since": 1952},
        external_ids=[{"system": "hubspot", "id": "77"}],
        created_at=WHEN,
        updated_at=WHEN + timedelta(hours=2),
        **overrides,
    )


def lead_ids(gql: GraphQLClient, **variables: Any) -> list[str]:
    return [n["id"] for n in gql.data(LEAD_IDS, variables)["leads"]["nodes"]]


def error_body(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body: dict[str, Any] = response.json()
    return body


# ---------------------------------------------------------------- every column


def test_a_csv_export_of_leads_writes_every_column(server: LiveServer, http: httpx.Client) -> None:
    [lead_id] = create_leads(server, full_lead())

    response = get(http, "/exports/leads.csv")

    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.text.splitlines()[0] == ",".join(LEAD_HEADER)
    [row] = csv_rows(response)
    assert row["metadata"] == json.dumps(json.loads(row["metadata"]), separators=(",", ":"))
    assert [json_cells(row)] == [
        {
            "id": lead_id,
            "email": "ada@example.com",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "phone": "+1 512 555 0100",
            "company": "Analytical Engines",
            "city": "Austin",
            "state": "Texas",
            "postalCode": "78701",
            "source": "web",
            "notes": "Met at the fair",
            "status": "QUALIFIED",
            "score": "42",
            "metadata": {"tier": "gold", "tags": ["a", "b"]},
            "externalIds": [{"system": "salesforce", "id": "00Q5e000001AbCd"}],
            "createdAt": "2026-03-04T05:06:07.123456+00:00",
            "updatedAt": "2026-03-04T06:06:07.123456+00:00",
            "convertedAt": "2026-03-05T05:06:07.123456+00:00",
        }
    ]


def test_a_csv_export_writes_null_as_an_empty_cell(server: LiveServer, http: httpx.Client) -> None:
    [lead_id] = create_leads(server, lead_values(email="bare@example.com", created_at=WHEN))

    [row] = csv_rows(get(http, "/exports/leads.csv"))

    assert row == {
        **dict.fromkeys(LEAD_HEADER, ""),
        "id": lead_id,
        "email": "bare@example.com",
        "status": "NEW",
        "score": "0",
        "metadata": "{}",
        "externalIds": "[]",
        "createdAt": "2026-03-04T05:06:07.123456+00:00",
        "updatedAt": "2026-03-04T05:06:07.123456+00:00",
    }


def test_an_ndjson_export_of_leads_writes_every_field_as_json(
    server: LiveServer, http: httpx.Client
) -> None:
    [lead_id] = create_leads(server, full_lead())
    [bare_id] = create_leads(server, lead_values(email="bare@example.com", created_at=WHEN))

    response = get(http, "/exports/leads.ndjson", orderBy={"field": "EMAIL"})

    assert response.headers["content-type"] == "application/x-ndjson"
    assert ndjson_rows(response) == [
        {
            "id": lead_id,
            "email": "ada@example.com",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "phone": "+1 512 555 0100",
            "company": "Analytical Engines",
            "city": "Austin",
            "state": "Texas",
            "postalCode": "78701",
            "source": "web",
            "notes": "Met at the fair",
            "status": "QUALIFIED",
            "score": 42,
            "metadata": {"tier": "gold", "tags": ["a", "b"]},
            "externalIds": [{"system": "salesforce", "id": "00Q5e000001AbCd"}],
            "createdAt": "2026-03-04T05:06:07.123456+00:00",
            "updatedAt": "2026-03-04T06:06:07.123456+00:00",
            "convertedAt": "2026-03-05T05:06:07.123456+00:00",
        },
        {
            **dict.fromkeys(LEAD_HEADER),
            "id": bare_id,
            "email": "bare@example.com",
            "status": "NEW",
            "score": 0,
            "metadata": {},
            "externalIds": [],
            "createdAt": "2026-03-04T05:06:07.123456+00:00",
            "updatedAt": "2026-03-04T05:06:07.123456+00:00",
        },
    ]


def test_the_exported_values_are_those_the_api_returns(
    server: LiveServer, http: httpx.Client, gql: GraphQLClient
) -> None:
    [lead_id] = create_leads(server, full_lead())
    fields = " ".join(f for f in LEAD_HEADER if f != "externalIds")

    lead = gql.data(f'{{ lead(id: "{lead_id}") {{ {fields} }} }}')["lead"]

    [row] = ndjson_rows(get(http, "/exports/leads.ndjson"))
    assert {k: v for k, v in row.items() if k != "externalIds"} == lead


def test_a_csv_export_of_clients_writes_every_column(
    server: LiveServer, http: httpx.Client
) -> None:
    [client_id] = create_clients(server, full_client())

    response = get(http, "/exports/clients.csv")

    assert response.text.splitlines()[0] == ",".join(CLIENT_HEADER)
    assert [json_cells(row) for row in csv_rows(response)] == [
        {
            "id": client_id,
            "email": "grace@example.com",
            "firstName": "Grace",
            "lastName": "Hopper",
            "phone": "+1 212 555 0199",
            "company": "Navy",
            "street": "1 Main St",
            "city": "Arlington",
            "state": "VA",
            "postalCode": "22201",
            "country": "US",
            "status": "ACTIVE",
            "notes": "Compilers",
            "metadata": {"since": 1952},
            "externalIds": [{"system": "hubspot", "id": "77"}],
            "createdAt": "2026-03-04T05:06:07.123456+00:00",
            "updatedAt": "2026-03-04T07:06:07.123456+00:00",
            "archivedAt": "",
        }
    ]


def test_an_ndjson_export_of_clients_writes_every_field_as_json(
    server: LiveServer, http: httpx.Client
) -> None:
    archived = WHEN + timedelta(days=3)
    [client_id] = create_clients(server, full_client(status="ARCHIVED", archived_at=archived))

    response = get(http, "/exports/clients.ndjson", filter={"status": ["ARCHIVED"]})

    assert ndjson_rows(response) == [
        {
            "id": client_id,
            "email": "grace@example.com",
            "firstName": "Grace",
            "lastName": "Hopper",
            "phone": "+1 212 555 0199",
            "company": "Navy",
            "street": "1 Main St",
            "city": "Arlington",
            "state": "VA",
            "postalCode": "22201",
            "country": "US",
            "status": "ARCHIVED",
            "notes": "Compilers",
            "metadata": {"since": 1952},
            "externalIds": [{"system": "hubspot", "id": "77"}],
            "createdAt": "2026-03-04T05:06:07.123456+00:00",
            "updatedAt": "2026-03-04T07:06:07.123456+00:00",
            "archivedAt": "2026-03-07T05:06:07.123456+00:00",
        }
    ]


def test_an_export_is_an_attachment_named_after_its_records_and_date(
    http: httpx.Client,
) -> None:
    response = get(http, "/exports/clients.ndjson")

    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="clients-{today}.ndjson"'
    )
    assert response.headers["cache-control"] == "no-store"


def test_head_answers_the_headers_without_reading_a_row(
    server: LiveServer, http: httpx.Client, count_queries: Callable[[], Any]
) -> None:
    create_leads(server, lead_values())

    with count_queries() as counted:
        response = http.head("/exports/leads.csv")

    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert [s for s in counted.statements if "FROM leads" in s] == []


# ---------------------------------------------------------------- filter and order


@pytest.fixture
def crowd(server: LiveServer) -> None:
    rows = [
        lead_values(status=status, score=score, city=city)
        for status, score, city in [
            ("NEW", 10, "Austin"),
            ("NEW", 30, "Boston"),
            ("CONTACTED", 30, "austin"),
            ("QUALIFIED", 5, "Austin"),
            ("NEW", 30, "Denver"),
            ("LOST", 99, "Austin"),
            ("NEW", 0, "Austin"),
        ]
    ]
    create_leads(server, *rows)


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"filter": {"status": ["NEW"]}, "orderBy": {"field": "SCORE", "direction": "DESC"}},
        {"filter": {"city": "AUSTIN", "score": {"gte": 5}}, "orderBy": {"field": "SCORE"}},
        {"filter": {"status": "NEW"}, "orderBy": {"field": "EMAIL", "direction": "DESC"}},
        {"orderBy": {"field": "NAME", "direction": None}},
        {"filter": {"search": "lead", "converted": False}, "orderBy": {"field": "UPDATED_AT"}},
    ],
)
def test_an_export_holds_the_records_of_the_list_field_in_its_order(
    http: httpx.Client, gql: GraphQLClient, crowd: None, variables: dict[str, Any]
) -> None:
    rows = csv_rows(get(http, "/exports/leads.csv", **variables))

    assert [r["id"] for r in rows] == lead_ids(gql, **variables)


def test_a_client_export_leaves_archived_clients_out_as_the_list_field_does(
    server: LiveServer, http: httpx.Client, gql: GraphQLClient
) -> None:
    create_clients(server, client_values(), client_values(status="ARCHIVED"), client_values())

    rows = ndjson_rows(get(http, "/exports/clients.ndjson", orderBy={"field": "EMAIL"}))

    listed = gql.data(CLIENT_IDS, {"orderBy": {"field": "EMAIL"}})["clients"]["nodes"]
    assert [r["id"] for r in rows] == [n["id"] for n in listed]
    assert [r["status"] for r in rows] == ["ACTIVE", "ACTIVE"]


def test_an_export_spanning_many_pages_has_every_row_once_in_order(
    server: LiveServer,
    http: httpx.Client,
    gql: GraphQLClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ties on the sort value across page boundaries: the id breaks them.
    create_leads(server, *(lead_values(score=n % 3) for n in range(23)))
    monkeypatch.setattr(exports, "PAGE_SIZE", 4)

    rows = ndjson_rows(get(http, "/exports/leads.ndjson", orderBy={"field": "SCORE"}))

    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == 23
    assert [r["score"] for r in rows] == sorted((n % 3 for n in range(23)), reverse=True)
    assert ids == lead_ids(gql, orderBy={"field": "SCORE"})


def test_an_export_of_a_page_size_exactly_ends_after_the_last_row(
    server: LiveServer, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_leads(server, *(lead_values() for _ in range(8)))
    monkeypatch.setattr(exports, "PAGE_SIZE", 4)

    assert len(csv_rows(get(http, "/exports/leads.csv"))) == 8


def test_an_empty_csv_export_is_its_header_line(http: httpx.Client) -> None:
    response = get(http, "/exports/leads.csv", filter={"status": ["WON"]})

    assert response.status_code == 200
    assert response.text == ",".join(LEAD_HEADER) + "\r\n"


def test_an_empty_ndjson_export_is_empty(http: httpx.Client) -> None:
    response = get(http, "/exports/clients.ndjson")

    assert response.status_code == 200
    assert response.content == b""


def test_an_export_holds_only_the_callers_workspace(
    server: LiveServer, http: httpx.Client, gql: GraphQLClient
) -> None:
    create_leads(server, lead_values(email="mine@example.com"))
    secret, _, _ = server.run(create_key_for_workspace(server.db, "Other Co", Role.OWNER, "k"))
    gql.as_(secret).data(CREATE_LEAD, {"email": "theirs@example.com"})

    rows = ndjson_rows(get(http, "/exports/leads.ndjson", token=secret))

    assert [r["email"] for r in rows] == ["theirs@example.com"]


# ---------------------------------------------------------------- CSV text


def test_csv_quotes_commas_quotes_and_line_breaks_and_reads_back_the_same(
    server: LiveServer, http: httpx.Client
) -> None:
    notes = 'Said "hello, world"\nthen left;\r\nback at 5, maybe'
    create_leads(
        server,
        lead_values(notes=notes, company="Smith, Jones & Co", meta={"quote": 'a "b", c'}),
    )

    response = get(http, "/exports/leads.csv")

    [row] = csv_rows(response)
    assert (row["notes"], row["company"]) == (notes, "Smith, Jones & Co")
    assert json.loads(row["metadata"]) == {"quote": 'a "b", c'}
    assert '"Smith, Jones & Co"' in response.text


def test_csv_writes_cells_that_look_like_formulas_as_stored(
    server: LiveServer, http: httpx.Client
) -> None:
    # Left intact on purpose: an export imports back unchanged (README, "Exporting").
    values = {"first_name": '=HYPERLINK("x")', "last_name": "@SUM(A1)", "company": "-2+3"}
    create_leads(server, lead_values(phone="+1 555 0100", **values))

    [row] = csv_rows(get(http, "/exports/leads.csv"))

    assert (row["firstName"], row["lastName"], row["company"], row["phone"]) == (
        '=HYPERLINK("x")',
        "@SUM(A1)",
        "-2+3",
        "+1 555 0100",
    )


def test_json_values_are_exported_exactly(server: LiveServer, http: httpx.Client) -> None:
    meta = {"big": 123456789012345678901234567890, "small": -9223372036854775809, "pi": 3.25}
    create_leads(server, lead_values(meta=meta | {"name": "Zoë"}))

    # A search reads its rows by another statement, its JSON decoded by the driver.
    for flt in ({}, {"search": "example"}):
        [row] = csv_rows(get(http, "/exports/leads.csv", filter=flt))
        [line] = ndjson_rows(get(http, "/exports/leads.ndjson", filter=flt))

        assert json.loads(row["metadata"]) == line["metadata"] == meta | {"name": "Zoë"}
        assert " " not in row["metadata"]


def test_non_ascii_text_is_exported_as_utf8(server: LiveServer, http: httpx.Client) -> None:
    create_leads(server, lead_values(first_name="Zoë", last_name="Ōtsuka", city="Köln 🏙"))

    response = get(http, "/exports/leads.csv")

    [row] = csv_rows(response)
    assert (row["firstName"], row["lastName"], row["city"]) == ("Zoë", "Ōtsuka", "Köln 🏙")
    assert "Zoë".encode() in response.content


# ---------------------------------------------------------------- parameter errors


def test_a_filter_that_is_not_json_is_refused(http: httpx.Client) -> None:
    response = http.get("/exports/leads.csv", params={"filter": "{status: NEW}"})

    assert error_body(response) == {
        "errors": [
            {
                "message": "Query parameter 'filter' is not valid JSON: Expecting property name "
                "enclosed in double quotes (at character 1).",
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ]
    }


def test_a_number_too_long_to_read_is_refused(http: httpx.Client) -> None:
    huge = "1" + "0" * 5000
    response = http.get("/exports/leads.csv", params={"filter": f'{{"score": {{"gte": {huge}}}}}'})

    [error] = error_body(response)["errors"]
    assert error["message"].startswith("Query parameter 'filter' is not valid JSON: Exceeds")
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}


def test_an_unknown_filter_field_is_refused_as_graphql_refuses_it(
    http: httpx.Client, gql: GraphQLClient
) -> None:
    response = get(http, "/exports/leads.csv", filter={"colour": "red"})

    graphql_message = gql(LEAD_COUNT, {"filter": {"colour": "red"}})["errors"][0]["message"]
    assert error_body(response) == {
        "errors": [
            {
                "message": "Query parameter 'filter' has invalid value: Expected value of type "
                "'LeadFilter' not to include unknown field 'colour', found: {'colour': 'red'}.",
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ]
    }
    assert (
        graphql_message.replace("Variable '$filter'", "Query parameter 'filter'")
        == (response.json()["errors"][0]["message"])
    )


def test_a_wrong_enum_value_is_refused(http: httpx.Client) -> None:
    response = get(http, "/exports/leads.ndjson", filter={"status": ["NEW", "MAYBE"]})

    assert error_body(response) == {
        "errors": [
            {
                "message": "Query parameter 'filter' has invalid value at .status[1]: "
                "Value 'MAYBE' does not exist in 'LeadStatus' enum.",
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ]
    }


def test_an_order_the_record_type_has_not_is_refused(http: httpx.Client) -> None:
    response = get(http, "/exports/clients.csv", orderBy={"field": "SCORE"})

    assert error_body(response) == {
        "errors": [
            {
                "message": "Query parameter 'orderBy' has invalid value at .field: "
                "Value 'SCORE' does not exist in 'ClientSortField' enum.",
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ]
    }


def test_every_bad_parameter_is_reported_at_once(http: httpx.Client) -> None:
    response = get(
        http,
        "/exports/leads.csv",
        filter={"score": {"gte": "high"}},
        orderBy={"direction": "UP", "field": "SCORE"},
    )

    assert [e["message"] for e in error_body(response)["errors"]] == [
        "Query parameter 'filter' has invalid value at .score.gte: "
        "Int cannot represent non-integer value: 'high'",
        "Query parameter 'orderBy' has invalid value at .direction: "
        "Value 'UP' does not exist in 'SortDirection' enum.",
    ]


def test_a_filter_the_resolvers_refuse_is_refused_with_its_argument(http: httpx.Client) -> None:
    response = get(http, "/exports/leads.csv", filter={"search": "x" * 201})

    assert error_body(response) == {
        "errors": [
            {
                "message": "Argument 'filter.search' must be at most 200 characters.",
                "extensions": {"code": "BAD_USER_INPUT", "argument": "filter.search"},
            }
        ]
    }


def test_a_bad_datetime_in_a_filter_is_refused(http: httpx.Client) -> None:
    response = get(http, "/exports/leads.csv", filter={"createdAt": {"gte": "last tuesday"}})

    [error] = error_body(response)["errors"]
    assert error["message"].startswith(
        "Query parameter 'filter' has invalid value at .createdAt.gte: "
    )
    assert "is not an ISO 8601 date-time" in error["message"]


def test_text_no_database_can_store_is_refused(http: httpx.Client) -> None:
    response = http.get("/exports/leads.csv", params={"filter": '{"city": "a\\u0000b"}'})

    assert error_body(response)["errors"] == [
        {
            "message": 'Invalid text at filter.city: "\\u0000" (NUL) cannot be stored; '
            "leave it out.",
            "extensions": {"code": "BAD_USER_INPUT"},
        }
    ]


def test_an_unpaired_surrogate_is_refused(http: httpx.Client) -> None:
    response = http.get("/exports/leads.csv", params={"filter": '{"source": ["\\ud800"]}'})

    assert error_body(response)["errors"] == [
        {
            "message": "Invalid text at filter.source[0]: an unpaired UTF-16 surrogate is not "
            "Unicode text; leave it out.",
            "extensions": {"code": "BAD_USER_INPUT"},
        }
    ]


def test_a_list_over_the_size_limit_is_refused(server: LiveServer, http: httpx.Client) -> None:
    limit = server.settings.max_list_size
    response = get(http, "/exports/leads.csv", filter={"source": ["web"] * (limit + 1)})

    assert error_body(response)["errors"] == [
        {
            "message": f"Query parameter 'filter' has invalid value at .source: the list must hold "
            f"at most {limit} items (it has {limit + 1}).",
            "extensions": {"code": "BAD_USER_INPUT"},
        }
    ]


def test_an_unknown_query_parameter_is_refused(http: httpx.Client) -> None:
    response = http.get("/exports/leads.csv", params={"filtr": "{}"})

    assert error_body(response)["errors"] == [
        {
            "message": "Unknown query parameter 'filtr': use filter and orderBy.",
            "extensions": {"code": "BAD_USER_INPUT"},
        }
    ]


def test_a_repeated_query_parameter_is_refused(http: httpx.Client) -> None:
    response = http.get("/exports/leads.csv", params=[("filter", "{}"), ("filter", "{}")])

    assert error_body(response)["errors"] == [
        {
            "message": "Query parameter 'filter' is given more than once.",
            "extensions": {"code": "BAD_USER_INPUT"},
        }
    ]


def test_an_unknown_export_is_not_found(http: httpx.Client) -> None:
    response = http.get("/exports/leads.xlsx")

    assert error_body(response, 404)["errors"][0]["extensions"] == {"code": "NOT_FOUND"}


# ---------------------------------------------------------------- access


def test_an_export_without_credentials_is_401(http: httpx.Client) -> None:
    response = get(http, "/exports/leads.csv", token=None, filter={"status": ["NOPE"]})

    assert error_body(response, 401) == {
        "errors": [
            {
                "message": "Sign in first: send 'Authorization: Bearer <session token or "
                "API key>'.",
                "extensions": {"code": "UNAUTHENTICATED"},
            }
        ]
    }
    assert response.headers["www-authenticate"] == 'Bearer realm="leadgraph"'


def test_an_export_with_a_bad_credential_is_401(http: httpx.Client) -> None:
    response = get(http, "/exports/clients.ndjson", token="lgk_no-such-key")

    assert error_body(response, 401)["errors"] == [
        {
            "message": "The access token is invalid, expired or revoked; sign in again.",
            "extensions": {"code": "UNAUTHENTICATED"},
        }
    ]


def test_a_viewer_may_export(server: LiveServer, http: httpx.Client) -> None:
    # VIEWER is the lowest role: every member and key of the workspace may export.
    create_leads(server, lead_values(email="seen@example.com"))
    secret, _, _ = server.run(create_key_for_workspace(server.db, "Default", Role.VIEWER, "v"))

    rows = csv_rows(get(http, "/exports/leads.csv", token=secret))

    assert [r["email"] for r in rows] == ["seen@example.com"]


# ---------------------------------------------------------------- hanging up


def test_a_client_hanging_up_mid_export_stops_it_with_no_connection_out_and_no_error(
    server: LiveServer,
    http: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    count_queries: Callable[[], Any],
) -> None:
    # 100 pages of 100 KB: far more than the socket buffers between us hold.
    create_leads(server, *(lead_values(notes="x" * 10_000) for _ in range(1000)))
    monkeypatch.setattr(exports, "PAGE_SIZE", 10)
    caplog.set_level(logging.INFO)
    pool = server.db.engine.sync_engine.pool

    async def settled() -> int:
        # The server notices the hang-up at its next write; give it a moment.
        for _ in range(100):
            if pool.checkedout() == 0:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        return int(pool.checkedout())  # type: ignore[attr-defined]

    with count_queries() as counted:
        with http.stream("GET", "/exports/leads.ndjson") as response:
            first = next(response.iter_bytes())
        assert server.run(settled()) == 0

    assert first.startswith(b'{"id":')
    pages = [s for s in counted.statements if "FROM leads" in s]
    assert 1 <= len(pages) < 50  # of 100
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_failure_mid_export_breaks_the_stream_rather_than_ending_it(
    server: LiveServer,
    http: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A client must not take a cut-short export for a whole one: the chunked body is left
    # without its last chunk (the failure is logged as the server's).
    create_leads(server, *(lead_values() for _ in range(10)))
    monkeypatch.setattr(exports, "PAGE_SIZE", 4)
    pages = exports.bulk_page

    async def failing(*args: Any) -> list[Any]:
        if args[4] is not None:  # past the first page
            raise RuntimeError("the database went away")
        return await pages(*args)

    monkeypatch.setattr(exports, "bulk_page", failing)

    with pytest.raises(httpx.RemoteProtocolError):
        get(http, "/exports/leads.ndjson")
    assert any("the database went away" in str(r.exc_info) for r in caplog.records if r.exc_info)
