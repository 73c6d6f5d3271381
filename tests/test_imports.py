"""POST /imports/leads and import jobs: CSV and NDJSON, header spellings, BOM, unknown columns
into metadata, every onDuplicate and matchOn, dry runs, row errors paged, cancellation, refused
bodies (400, 413), credentials (401, 403), and the event an import appends."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from db.models import Lead, LeadExternalId
from tests.conftest import OWNER_KEY, GraphQLClient, LiveServer
from tests.factories import create_leads, lead_values

JOB_FIELDS = """
  id status dryRun onDuplicate matchOn rowsTotal rowsProcessed created updated skipped failed
  createdAt finishedAt createdBy { __typename }
"""
JOB = f"query ($id: ID!) {{ importJob(id: $id) {{ {JOB_FIELDS} }} }}"
JOBS = "query ($first: Int) { importJobs(first: $first) { id status } }"
ERRORS = """
query ($id: ID!, $first: Int, $after: String) {
  importJob(id: $id) {
    errors(first: $first, after: $after) {
      totalCount
      edges { cursor node { row field message code } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""
NODE = "query ($id: ID!) { node(id: $id) { __typename ... on ImportJob { status } } }"
CANCEL = """
mutation ($id: ID!) {
  cancelImportJob(id: $id) { job { id status } userErrors { field message code } }
}
"""
LEADS = """
{
  leads(first: 100, orderBy: {field: CREATED_AT, direction: ASC}) {
    nodes {
      email firstName lastName phone company city state postalCode source notes status score
      metadata createdAt
    }
  }
}
"""
CREATE_LEAD = """
mutation ($input: CreateLeadInput!) {
  createLead(input: $input) { lead { id } userErrors { field message code } }
}
"""
CREATE_KEY = """
mutation ($role: Role!) { createApiKey(input: {name: "k", role: $role}) { secret } }
"""
EVENTS = "{ events(first: 100) { nodes { type recordId changes { field from to } } } }"
CSV = "text/csv"
NDJSON = "application/x-ndjson"


def post(
    http: httpx.Client,
    body: bytes | str,
    content_type: str = CSV,
    token: str | None = OWNER_KEY,
    **params: str,
) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {token}" if token else ""}
    return http.post("/imports/leads", content=content, headers=headers, params=params)


def finished(gql: GraphQLClient, job_id: str, timeout: float = 20) -> dict[str, Any]:
    """The job once it is no longer QUEUED or RUNNING."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = gql.data(JOB, {"id": job_id})["importJob"]
        if job["status"] not in ("QUEUED", "RUNNING"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"import {job_id} did not finish in {timeout} s")


def run(
    http: httpx.Client, gql: GraphQLClient, body: str, content_type: str = CSV, **params: str
) -> dict[str, Any]:
    response = post(http, body, content_type, **params)
    assert response.status_code == 202, response.text
    return finished(gql, response.json()["id"])


def leads(gql: GraphQLClient) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = gql.data(LEADS)["leads"]["nodes"]
    return nodes


def counts(job: dict[str, Any]) -> dict[str, Any]:
    keys = ("status", "rowsTotal", "rowsProcessed", "created", "updated", "skipped", "failed")
    return {k: job[k] for k in keys}


def external_ids(
    server: LiveServer,
) -> dict[str, tuple[list[dict[str, str]], list[tuple[str, str]]]]:
    """Each lead's external IDs, by email: its own column (as typed) and the lookup table's
    rows (system key, id). Read from the tables: Lead.externalIds is another part's field."""

    async def read() -> Any:
        async with server.db.read() as conn:
            found = {
                row.id: (row.email, row.external_ids, [])
                for row in await conn.execute(select(Lead.__table__))  # type: ignore[attr-defined]
            }
            for row in await conn.execute(
                select(LeadExternalId.__table__).order_by("system_key")  # type: ignore[attr-defined]
            ):
                found[row.lead_id][2].append((row.system_key, row.external_id))
        return {email: (column, table) for email, column, table in found.values()}

    result: dict[str, tuple[list[dict[str, str]], list[tuple[str, str]]]] = server.run(read())
    return result


# ------------------------------------------------------------------ happy paths


def test_a_csv_file_becomes_leads(http: httpx.Client, gql: GraphQLClient) -> None:
    body = (
        "email,firstName,lastName,phone,company,city,state,postalCode,source,notes,status,score,"
        "createdAt\n"
        'ann@example.com,Ann,Lee,+1 512 555 0100,Acme,Austin,TX,78701,fair,"hello, world",'
        "QUALIFIED,40,2025-03-01T10:00:00Z\n"
    )
    job = run(http, gql, body)

    assert counts(job) == {
        "status": "SUCCEEDED",
        "rowsTotal": 1,
        "rowsProcessed": 1,
        "created": 1,
        "updated": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert job["dryRun"] is False
    assert (job["onDuplicate"], job["matchOn"]) == ("SKIP", "EMAIL")
    assert job["createdBy"] == {"__typename": "ApiKey"}
    assert job["finishedAt"] is not None
    assert leads(gql) == [
        {
            "email": "ann@example.com",
            "firstName": "Ann",
            "lastName": "Lee",
            "phone": "+1 512 555 0100",
            "company": "Acme",
            "city": "Austin",
            "state": "TX",
            "postalCode": "78701",
            "source": "fair",
            "notes": "hello, world",
            "status": "QUALIFIED",
            "score": 40,
            "metadata": {},
            "createdAt": "2025-03-01T10:00:00.000000+00:00",
        }
    ]


def test_an_ndjson_file_becomes_leads(
    http: httpx.Client, gql: GraphQLClient, server: LiveServer
) -> None:
    body = "\n".join(
        json.dumps(item)
        for item in (
            {"email": "a@example.com", "firstName": "A", "score": 5, "metadata": {"x": 1}},
            {
                "email": "b@example.com",
                "last_name": "B",
                "externalIds": [{"system": "sf", "id": "1"}],
            },
        )
    )
    job = run(http, gql, body, NDJSON)

    assert (job["status"], job["created"], job["rowsTotal"]) == ("SUCCEEDED", 2, 2)
    assert [
        (lead["email"], lead["firstName"], lead["lastName"], lead["score"], lead["metadata"])
        for lead in leads(gql)
    ] == [("a@example.com", "A", None, 5, {"x": 1}), ("b@example.com", None, "B", 0, {})]
    assert external_ids(server) == {
        "a@example.com": ([], []),
        "b@example.com": ([{"system": "sf", "id": "1"}], [("sf", "1")]),
    }


def test_application_jsonl_is_ndjson(http: httpx.Client, gql: GraphQLClient) -> None:
    job = run(http, gql, '{"email": "a@example.com"}\n', "application/jsonl")

    assert (job["status"], job["created"]) == ("SUCCEEDED", 1)


def test_header_names_match_in_any_case_and_spelling(
    http: httpx.Client, gql: GraphQLClient
) -> None:
    body = "EMAIL,first_name,LastName,Postal_Code\nx@example.com,Xa,Yb,123\n"
    run(http, gql, body)

    lead = leads(gql)[0]
    assert (lead["email"], lead["firstName"], lead["lastName"], lead["postalCode"]) == (
        "x@example.com",
        "Xa",
        "Yb",
        "123",
    )


def test_a_utf8_bom_is_dropped(http: httpx.Client, gql: GraphQLClient) -> None:
    job = run(http, gql, "\ufeffemail,firstName\nz@example.com,Zoë\n")

    assert job["created"] == 1
    assert [(lead["email"], lead["firstName"]) for lead in leads(gql)] == [("z@example.com", "Zoë")]


def test_unknown_columns_go_into_metadata_and_read_only_export_columns_are_ignored(
    http: httpx.Client, gql: GraphQLClient
) -> None:
    body = (
        "id,name,email,metadata,Favourite Colour,updatedAt,convertedAt,empty\n"
        'TGVhZDox,Ann Lee,a@example.com,"{""tier"": 2}",blue,2025-01-01T00:00:00Z,,\n'
    )
    run(http, gql, body)

    assert leads(gql)[0]["metadata"] == {"tier": 2, "Favourite Colour": "blue"}


def test_a_quoted_field_may_hold_line_breaks(http: httpx.Client, gql: GraphQLClient) -> None:
    job = run(
        http, gql, 'email,notes\r\na@example.com,"line one\r\nline two"\r\nb@example.com,\r\n'
    )

    assert (job["rowsTotal"], job["created"]) == (2, 2)
    assert [lead["notes"] for lead in leads(gql)] == ["line one\r\nline two", None]


def test_an_import_appends_one_event_not_one_per_lead(
    http: httpx.Client, gql: GraphQLClient
) -> None:
    job = run(http, gql, "email\na@example.com\nb@example.com\n")

    assert gql.data(EVENTS)["events"]["nodes"] == [
        {
            "type": "LEADS_IMPORTED",
            "recordId": job["id"],
            "changes": [
                {"field": "status", "from": None, "to": "SUCCEEDED"},
                {"field": "created", "from": None, "to": 2},
                {"field": "updated", "from": None, "to": 0},
                {"field": "skipped", "from": None, "to": 0},
                {"field": "failed", "from": None, "to": 0},
                {"field": "rowsTotal", "from": None, "to": 2},
            ],
        }
    ]


def test_a_job_is_found_by_node_and_listed_newest_first(
    http: httpx.Client, gql: GraphQLClient
) -> None:
    first = run(http, gql, "email\na@example.com\n")
    second = run(http, gql, "email\nb@example.com\n")

    assert gql.data(NODE, {"id": first["id"]})["node"] == {
        "__typename": "ImportJob",
        "status": "SUCCEEDED",
    }
    assert gql.data(JOBS, {"first": 10})["importJobs"] == [
        {"id": second["id"], "status": "SUCCEEDED"},
        {"id": first["id"], "status": "SUCCEEDED"},
    ]


# ------------------------------------------------------------------ duplicates


EXISTING = "email,firstName,city\nann@example.com,Ann,Austin\n"


@pytest.mark.parametrize(
    ("policy", "expected_counts", "expected"),
    [
        ("SKIP", (0, 0, 1), [("Ann@example.com", "Ann", "Austin")]),
        ("UPDATE", (0, 1, 0), [("ann@example.com", "Annie", "Austin")]),
        (
            "CREATE",
            (1, 0, 0),
            [("Ann@example.com", "Ann", "Austin"), ("ann@example.com", "Annie", None)],
        ),
    ],
)
def test_on_duplicate_by_email(
    http: httpx.Client,
    gql: GraphQLClient,
    policy: str,
    expected_counts: tuple[int, int, int],
    expected: list[tuple[str, str, str | None]],
) -> None:
    run(http, gql, "email,firstName,city\nAnn@Example.com,Ann,Austin\n")

    job = run(http, gql, "email,firstName\n  ann@EXAMPLE.com ,Annie\n", onDuplicate=policy)

    assert (job["created"], job["updated"], job["skipped"]) == expected_counts
    assert [(x["email"], x["firstName"], x["city"]) for x in leads(gql)] == expected


@pytest.mark.parametrize(
    ("policy", "expected_counts", "first_name"),
    [("UPDATE", (3000, 2000, 0), "Later"), ("SKIP", (3000, 0, 2000), "First")],
)
def test_a_row_matches_a_lead_an_earlier_batch_of_the_same_file_created(
    http: httpx.Client,
    gql: GraphQLClient,
    policy: str,
    expected_counts: tuple[int, int, int],
    first_name: str,
) -> None:
    # Batches of 2,000 rows: the second and third repeat the first's emails (the runner plans
    # a batch while the one before it is written, and must not miss what that one created).
    body = (
        "email,firstName\n"
        + "".join(f"lead{n}@example.com,First\n" for n in range(3000))
        + "".join(f"LEAD{n}@Example.com,Later\n" for n in range(2000))
    )

    job = run(http, gql, body, onDuplicate=policy)

    assert (job["created"], job["updated"], job["skipped"]) == expected_counts
    assert gql.data("{ leads { totalCount } }")["leads"]["totalCount"] == 3000
    found = gql.data(
        '{ leads(filter: {email: "lead1999@example.com"}) { nodes { firstName } } }'
    )["leads"]["nodes"]
    assert found == [{"firstName": first_name}]


@pytest.mark.parametrize(
    ("policy", "expected_counts", "expected"),
    [
        ("SKIP", (0, 0, 1), [("a@example.com", "A")]),
        ("UPDATE", (0, 1, 0), [("b@example.com", "B")]),
        ("CREATE", None, [("a@example.com", "A")]),
    ],
)
def test_on_duplicate_by_external_id(
    http: httpx.Client,
    gql: GraphQLClient,
    policy: str,
    expected_counts: tuple[int, int, int] | None,
    expected: list[tuple[str, str]],
) -> None:
    first = {
        "email": "a@example.com",
        "firstName": "A",
        "externalIds": [{"system": "SF", "id": "9"}],
    }
    run(http, gql, json.dumps(first), NDJSON, matchOn="EXTERNAL_ID")
    again = {
        "email": "b@example.com",
        "firstName": "B",
        "externalIds": [{"system": "sf", "id": "9"}],
    }

    job = run(http, gql, json.dumps(again), NDJSON, matchOn="EXTERNAL_ID", onDuplicate=policy)

    if expected_counts is None:
        # Another lead cannot hold the same id of the same system: the row is refused.
        assert (job["created"], job["failed"]) == (0, 1)
    else:
        assert (job["created"], job["updated"], job["skipped"]) == expected_counts
    assert [(x["email"], x["firstName"]) for x in leads(gql)] == expected


def test_a_later_row_sees_an_earlier_rows_lead(http: httpx.Client, gql: GraphQLClient) -> None:
    job = run(
        http,
        gql,
        "email,firstName,city\na@example.com,A,\nA@example.com,,Paris\n",
        onDuplicate="UPDATE",
    )

    assert (job["created"], job["updated"]) == (1, 1)
    assert [(x["email"], x["firstName"], x["city"]) for x in leads(gql)] == [
        ("A@example.com", "A", "Paris")
    ]


def test_update_sets_the_rows_systems_and_keeps_the_others(
    http: httpx.Client, gql: GraphQLClient, server: LiveServer
) -> None:
    first = {
        "email": "a@example.com",
        "externalIds": [{"system": "sf", "id": "1"}, {"system": "hs", "id": "2"}],
    }
    run(http, gql, json.dumps(first), NDJSON)
    again = {"email": "a@example.com", "externalIds": [{"system": "hs", "id": "3"}]}

    run(http, gql, json.dumps(again), NDJSON, onDuplicate="UPDATE")

    assert external_ids(server) == {
        "a@example.com": (
            [{"system": "sf", "id": "1"}, {"system": "hs", "id": "3"}],
            [("hs", "3"), ("sf", "1")],
        )
    }


# ------------------------------------------------------------------ dry runs and row errors


def test_a_dry_run_validates_and_writes_nothing(http: httpx.Client, gql: GraphQLClient) -> None:
    job = run(http, gql, "email\na@example.com\nnot-an-email\n", dryRun="true")

    assert counts(job) == {
        "status": "SUCCEEDED",
        "rowsTotal": 2,
        "rowsProcessed": 2,
        "created": 1,
        "updated": 0,
        "skipped": 0,
        "failed": 1,
    }
    assert job["dryRun"] is True
    assert leads(gql) == []
    assert gql.data(EVENTS)["events"]["nodes"] == []


def test_a_bad_row_gets_the_error_create_lead_gives_for_the_same_value(
    http: httpx.Client, gql: GraphQLClient
) -> None:
    long_name = "x" * 101
    job = run(http, gql, f"email,firstName\nnope,{long_name}\n")
    mutation = gql.data(CREATE_LEAD, {"input": {"email": "nope", "firstName": long_name}})

    errors = gql.data(ERRORS, {"id": job["id"]})["importJob"]["errors"]
    assert [edge["node"] for edge in errors["edges"]] == [
        {"row": 1, "field": e["field"][-1], "message": e["message"], "code": e["code"]}
        for e in mutation["createLead"]["userErrors"]
    ]
    assert len(errors["edges"]) == 2


def test_row_errors_are_paged_in_row_order(http: httpx.Client, gql: GraphQLClient) -> None:
    body = "email,score\n" + "".join(
        f"ok{n}@example.com,1\n" if n % 2 else f"bad{n},1\n" for n in range(1, 8)
    )
    job = run(http, gql, body)
    assert (job["created"], job["failed"]) == (4, 3)

    page = gql.data(ERRORS, {"id": job["id"], "first": 2})["importJob"]["errors"]
    rest = gql.data(ERRORS, {"id": job["id"], "first": 2, "after": page["pageInfo"]["endCursor"]})[
        "importJob"
    ]["errors"]

    assert page["totalCount"] == 3
    assert [e["node"]["row"] for e in page["edges"]] == [2, 4]
    assert page["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["row"] for e in rest["edges"]] == [6]
    assert rest["pageInfo"]["hasNextPage"] is False
    assert {e["node"]["field"] for e in page["edges"]} == {"email"}


def test_an_external_id_of_another_lead_is_a_row_error(
    http: httpx.Client, gql: GraphQLClient
) -> None:
    body = "\n".join(
        json.dumps({"email": email, "externalIds": [{"system": "sf", "id": "7"}]})
        for email in ("a@example.com", "b@example.com")
    )
    job = run(http, gql, body, NDJSON)

    assert (job["status"], job["created"], job["failed"]) == ("SUCCEEDED", 1, 1)
    errors = gql.data(ERRORS, {"id": job["id"]})["importJob"]["errors"]["edges"]
    assert [e["node"] for e in errors] == [
        {
            "row": 2,
            "field": "externalIds",
            "message": "The id 7 of sf belongs to another lead.",
            "code": "TAKEN",
        }
    ]


def test_a_line_that_is_not_json_is_a_row_error(http: httpx.Client, gql: GraphQLClient) -> None:
    job = run(http, gql, '{"email": "a@example.com"}\n{"email": oops}\n', NDJSON)

    errors = gql.data(ERRORS, {"id": job["id"]})["importJob"]["errors"]["edges"]
    assert (job["created"], job["failed"]) == (1, 1)
    assert [(e["node"]["row"], e["node"]["code"]) for e in errors] == [(2, "INVALID")]


# ------------------------------------------------------------------ cancellation


def test_cancelling_a_finished_job_is_a_user_error(http: httpx.Client, gql: GraphQLClient) -> None:
    job = run(http, gql, "email\na@example.com\n")

    payload = gql.data(CANCEL, {"id": job["id"]})["cancelImportJob"]

    assert payload == {
        "job": {"id": job["id"], "status": "SUCCEEDED"},
        "userErrors": [
            {
                "field": ["id"],
                "message": "This import job has already finished (SUCCEEDED): nothing to cancel.",
                "code": "INVALID",
            }
        ],
    }


def test_a_cancelled_job_is_not_run(
    http: httpx.Client, gql: GraphQLClient, server: LiveServer
) -> None:
    body = "email\n" + "".join(f"lead{n}@example.com\n" for n in range(20_000))

    # The runner is held off while the job is posted and cancelled.
    hold = server.app.state.importer.paused()
    server.run(hold.__aenter__())
    try:
        job_id = post(http, body).json()["id"]
        payload = gql.data(CANCEL, {"id": job_id})["cancelImportJob"]
    finally:
        server.run(hold.__aexit__(None, None, None))

    job = finished(gql, job_id)
    assert payload == {"job": {"id": job_id, "status": "CANCELLED"}, "userErrors": []}
    assert (job["status"], job["rowsTotal"]) == ("CANCELLED", None)
    assert job["finishedAt"] is not None
    time.sleep(0.3)
    assert gql.data("{ leads { totalCount } }")["leads"]["totalCount"] == job["created"] == 0


def test_cancelling_an_unknown_job_is_not_found(gql: GraphQLClient) -> None:
    from resolvers.ids import to_global_id

    payload = gql.data(CANCEL, {"id": to_global_id("ImportJob", 999)})["cancelImportJob"]

    assert payload == {
        "job": None,
        "userErrors": [
            {"field": ["id"], "message": "No import job with this ID.", "code": "NOT_FOUND"}
        ],
    }


# ------------------------------------------------------------------ refused


def refused(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["errors"] and body["errors"][0]["extensions"] == {"code": code}
    message: str = body["errors"][0]["message"]
    return message


def no_job(gql: GraphQLClient) -> None:
    assert gql.data(JOBS)["importJobs"] == []


def test_a_body_that_is_not_csv_or_ndjson_by_content_type_is_refused(
    http: httpx.Client, gql: GraphQLClient
) -> None:
    message = refused(post(http, "email\na@example.com\n", "application/pdf"), 400, "BAD_REQUEST")

    assert message == (
        "Send the file as text/csv (a header row, then one lead per row) or as "
        "application/x-ndjson (one JSON object per line); got application/pdf."
    )
    no_job(gql)


def test_a_binary_body_is_refused(http: httpx.Client, gql: GraphQLClient) -> None:
    message = refused(post(http, b"email\n\x89PNG\x00\x01\xff\xfe"), 400, "BAD_REQUEST")

    assert message == "The body holds NUL bytes: it is binary, not a CSV or NDJSON text."
    no_job(gql)


def test_a_body_that_is_not_utf8_is_refused(http: httpx.Client, gql: GraphQLClient) -> None:
    message = refused(post(http, "email\nzoë@example.com\n".encode("latin-1")), 400, "BAD_REQUEST")

    assert message.startswith("The body is not UTF-8 text")
    no_job(gql)


def test_an_ndjson_line_that_is_not_an_object_is_refused(
    http: httpx.Client, gql: GraphQLClient
) -> None:
    body = '{"email": "a@example.com"}\n["b@example.com"]\n'

    message = refused(post(http, body, NDJSON), 400, "BAD_REQUEST")

    assert message == "Line 2 is not a JSON object: NDJSON is one per line."
    no_job(gql)


def test_a_csv_without_an_email_column_is_refused(http: httpx.Client, gql: GraphQLClient) -> None:
    message = refused(post(http, "name,phone\nAnn,1\n"), 400, "BAD_REQUEST")

    assert message == "The CSV header row has no email column (the first row names the columns)."
    no_job(gql)


def test_an_unknown_parameter_value_is_refused(http: httpx.Client, gql: GraphQLClient) -> None:
    message = refused(post(http, "email\n", onDuplicate="MERGE"), 400, "BAD_USER_INPUT")

    assert message == "Query parameter 'onDuplicate' must be one of SKIP, UPDATE, CREATE."
    no_job(gql)


def test_an_empty_body_is_refused(http: httpx.Client, gql: GraphQLClient) -> None:
    refused(post(http, b""), 400, "BAD_REQUEST")
    no_job(gql)


def test_a_body_over_the_limit_is_refused_and_nothing_is_kept(
    http: httpx.Client, gql: GraphQLClient, server: LiveServer
) -> None:
    limit = server.settings.import_max_bytes
    server.settings.import_max_bytes = 2048  # read at each upload
    try:

        def chunks() -> Any:
            yield b"email\n"
            for n in range(1000):
                yield f"lead{n}@example.com\n".encode()

        response = http.post("/imports/leads", content=chunks(), headers={"Content-Type": CSV})
    finally:
        server.settings.import_max_bytes = limit

    message = refused(response, 413, "PAYLOAD_TOO_LARGE")
    assert message == "The file is larger than 2048 bytes, the most accepted."
    no_job(gql)


def test_a_declared_length_over_the_limit_is_413(server: LiveServer, gql: GraphQLClient) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    head = (
        "POST /imports/leads HTTP/1.1\r\n"
        f"Host: {host}\r\nAuthorization: Bearer {OWNER_KEY}\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {2 * 1024**3}\r\nConnection: close\r\n\r\nemail\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head.encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk

    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["errors"][0]["extensions"] == {
        "code": "PAYLOAD_TOO_LARGE"
    }
    no_job(gql)


def test_without_credentials_an_import_is_401(http: httpx.Client, gql: GraphQLClient) -> None:
    refused(post(http, "email\na@example.com\n", token=None), 401, "UNAUTHENTICATED")
    no_job(gql)


def test_a_viewer_cannot_import(http: httpx.Client, gql: GraphQLClient) -> None:
    secret = gql.data(CREATE_KEY, {"role": "VIEWER"})["createApiKey"]["secret"]

    refused(post(http, "email\na@example.com\n", token=secret), 403, "FORBIDDEN")
    no_job(gql)


def test_existing_leads_from_factories_are_matched(
    http: httpx.Client, gql: GraphQLClient, server: LiveServer
) -> None:
    create_leads(server, lead_values(email="Old@Example.com", first_name="Old"))

    job = run(http, gql, "email,firstName\nold@example.com,New\n", onDuplicate="UPDATE")

    assert job["updated"] == 1
    assert [(x["email"], x["firstName"]) for x in leads(gql)] == [("old@example.com", "New")]


def test_a_later_row_may_change_an_earlier_rows_external_id(
    http: httpx.Client, gql: GraphQLClient, server: LiveServer
) -> None:
    body = "\n".join(
        json.dumps({"email": "a@example.com", "externalIds": [{"system": "sf", "id": id_}]})
        for id_ in ("1", "2")
    )

    job = run(http, gql, body, NDJSON, onDuplicate="UPDATE")

    assert (job["created"], job["updated"], job["failed"]) == (1, 1, 0)
    assert external_ids(server) == {"a@example.com": ([{"system": "sf", "id": "2"}], [("sf", "2")])}


EXPORT_HEADER = (
    "id,email,firstName,lastName,phone,company,city,state,postalCode,source,notes,status,score,"
    "metadata,externalIds,createdAt,updatedAt,convertedAt"
)


def test_a_file_in_the_exports_columns_gives_the_same_leads(
    http: httpx.Client, gql: GraphQLClient, server: LiveServer
) -> None:
    row = (
        'TGVhZDo3,ann@example.com,Ann,Lee,+1 512 555 0100,Acme,Austin,TX,78701,fair,"a, b",'
        'WON,90,"{""tier"": ""gold""}","[{""system"": ""sf"", ""id"": ""00Q1""}]",'
        "2024-05-01T08:30:00.000000+00:00,2025-01-01T00:00:00.000000+00:00,"
        "2025-01-01T00:00:00.000000+00:00"
    )

    job = run(http, gql, f"{EXPORT_HEADER}\n{row}\n")

    assert (job["created"], job["failed"]) == (1, 0)
    assert leads(gql) == [
        {
            "email": "ann@example.com",
            "firstName": "Ann",
            "lastName": "Lee",
            "phone": "+1 512 555 0100",
            "company": "Acme",
            "city": "Austin",
            "state": "TX",
            "postalCode": "78701",
            "source": "fair",
            "notes": "a, b",
            "status": "WON",
            "score": 90,
            "metadata": {"tier": "gold"},
            "createdAt": "2024-05-01T08:30:00.000000+00:00",
        }
    ]
    assert external_ids(server) == {
        "ann@example.com": ([{"system": "sf", "id": "00Q1"}], [("sf", "00Q1")])
    }


def test_a_running_job_cancelled_stops_after_its_batch_and_keeps_the_batches_written(
    http: httpx.Client, gql: GraphQLClient
) -> None:
    rows = 40_000
    body = "email\n" + "".join(f"lead{n}@example.com\n" for n in range(rows))
    job_id = post(http, body).json()["id"]
    deadline = time.monotonic() + 30
    while gql.data(JOB, {"id": job_id})["importJob"]["rowsProcessed"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)

    payload = gql.data(CANCEL, {"id": job_id})["cancelImportJob"]
    time.sleep(1)  # a batch under way meanwhile is rolled back; none starts after

    job = gql.data(JOB, {"id": job_id})["importJob"]
    assert payload == {"job": {"id": job_id, "status": "CANCELLED"}, "userErrors": []}
    assert job["status"] == "CANCELLED"
    assert 0 < job["rowsProcessed"] < rows
    assert gql.data("{ leads { totalCount } }")["leads"]["totalCount"] == job["created"]
    assert job["created"] == job["rowsProcessed"]


def test_a_hubspot_export_imports_with_its_own_headers(
    http: httpx.Client, gql: GraphQLClient, server: LiveServer
) -> None:
    body = (
        "externalIds.hubspot,First Name,Last Name,Email,Phone Number,Company Name,State/Region,"
        "Postal Code,Lifecycle Stage\n"
        "901,Ann,Lee,ann@example.com,(512) 555-0100,Acme,Texas,78701,lead\n"
        "902,Ben,Ode,ben@example.com,,Initech,ON,,subscriber\n"
    )

    job = run(http, gql, body)

    assert (job["created"], job["failed"]) == (2, 0)
    got = [
        {k: lead[k] for k in ("email", "firstName", "phone", "company", "state", "postalCode")}
        | {"metadata": lead["metadata"]}
        for lead in leads(gql)
    ]
    assert got == [
        {
            "email": "ann@example.com",
            "firstName": "Ann",
            "phone": "(512) 555-0100",
            "company": "Acme",
            "state": "Texas",
            "postalCode": "78701",
            "metadata": {"Lifecycle Stage": "lead"},
        },
        {
            "email": "ben@example.com",
            "firstName": "Ben",
            "phone": None,
            "company": "Initech",
            "state": "ON",
            "postalCode": None,
            "metadata": {"Lifecycle Stage": "subscriber"},
        },
    ]
    assert external_ids(server) == {
        "ann@example.com": ([{"system": "hubspot", "id": "901"}], [("hubspot", "901")]),
        "ben@example.com": ([{"system": "hubspot", "id": "902"}], [("hubspot", "902")]),
    }
