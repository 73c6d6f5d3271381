"""Trusted documents (README, Trusted documents): documentId (GraphQL over HTTP's persisted
documents) by POST and GET, Apollo's APQ round trip, TRUSTED_DOCUMENTS=off/require, and
``server.py documents add`` with each manifest format. Through HTTP on the suite's server.

Each test uses documents of its own (a comment naming it): a server process keeps the
documents it has read, and the database is emptied between tests, which never happens to a
real registry (documents are never removed)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from db.models import TrustedDocument
from tests.conftest import OWNER_KEY, GraphQLClient, LiveServer, without_cost
from tests.test_websocket import results, talk

ROOT = Path(__file__).resolve().parent.parent
GRAPHQL_RESPONSE = "application/graphql-response+json"
CREATE_KEY = (
    'mutation ($role: Role!) { createApiKey(input: {name: "docs", role: $role}) { secret } }'
)


def document(
    tag: str, selection: str = "leads(first: 2) { totalCount nodes { firstName email } }"
) -> str:
    return f"# {tag}\nquery Leads {{ {selection} }}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def cli(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "server.py", "documents", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": server.settings.database_url},
        capture_output=True,
        text=True,
        # Generous: it starts Python, builds the schema and checks the migrations, on a
        # machine the suite shares (one call took over 60 s at load 10 on 2 cores).
        timeout=240,
    )


def register(server: LiveServer, tmp_path: Path, manifest: Any) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    return cli(server, "add", str(path))


def post(
    http: httpx.Client, body: dict[str, Any], token: str | None = None, accept: str | None = None
) -> httpx.Response:
    headers = {"Accept": accept} if accept else {}
    if token is not None:  # "" sends none (the shared client's default is the OWNER key)
        headers["Authorization"] = f"Bearer {token}" if token else ""
    return http.post("/graphql", json=body, headers=headers)


def code_of(response: httpx.Response) -> str:
    body = response.json()
    assert "data" not in body, body
    [error] = body["errors"]
    return str(error["extensions"]["code"])


@pytest.fixture
def mode(server: LiveServer) -> Iterator[Any]:
    """Sets TRUSTED_DOCUMENTS on the running server for one test."""
    before = server.settings.trusted_documents

    def set_mode(value: str) -> None:
        server.settings.trusted_documents = value  # type: ignore[assignment]

    yield set_mode
    server.settings.trusted_documents = before


def test_a_registered_document_runs_by_document_id_over_post_and_get(
    server: LiveServer, http: httpx.Client, gql: GraphQLClient, tmp_path: Path
) -> None:
    gql.data(
        'mutation { createLead(input: {firstName: "Ada", email: "ada@example.com"}) '
        "{ lead { id } } }"
    )
    text = document("post and get")
    result = register(server, tmp_path, {sha256(text): text})
    assert result.returncode == 0, result.stderr
    assert "1 registered now" in result.stderr
    expected = gql.data(text)
    document_id = f"sha256:{sha256(text)}"

    by_post = post(http, {"documentId": document_id})
    assert by_post.status_code == 200, by_post.text
    assert without_cost(by_post.json()) == {"data": expected}

    by_get = http.get("/graphql", params={"documentId": document_id, "operationName": "Leads"})
    assert by_get.status_code == 200, by_get.text
    assert without_cost(by_get.json()) == {"data": expected}

    # A mutation by GET is refused as with free text: 405.
    mutation = '# get mutation\nmutation { createTag(input: {name: "x"}) { tag { id } } }'
    assert register(server, tmp_path, {sha256(mutation): mutation}).returncode == 0
    refused = http.get("/graphql", params={"documentId": f"sha256:{sha256(mutation)}"})
    assert refused.status_code == 405


def test_an_unknown_document_id_is_one_error_404_for_graphql_response_json(
    http: httpx.Client,
) -> None:
    unknown = f"sha256:{sha256('# never registered')}"
    as_json = post(http, {"documentId": unknown})
    assert as_json.status_code == 200
    assert code_of(as_json) == "PERSISTED_QUERY_NOT_FOUND"
    as_graphql = post(http, {"documentId": unknown}, accept=GRAPHQL_RESPONSE)
    assert as_graphql.status_code == 404
    assert code_of(as_graphql) == "PERSISTED_QUERY_NOT_FOUND"
    bad_id = post(http, {"documentId": "sha256:NOT-HEX"}, accept=GRAPHQL_RESPONSE)
    assert bad_id.status_code == 400
    assert code_of(bad_id) == "BAD_REQUEST"
    not_string = post(http, {"documentId": 7})
    assert not_string.status_code == 400


def test_apq_round_trip(server: LiveServer, http: httpx.Client, gql: GraphQLClient) -> None:
    text = document("apq round trip")
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha256(text)}}
    # The hash alone, unknown: the client is told to send the query.
    first = post(http, {"extensions": extensions})
    assert code_of(first) == "PERSISTED_QUERY_NOT_FOUND"
    # The query with its hash: it runs, and is registered.
    second = post(http, {"query": text, "extensions": extensions})
    assert second.status_code == 200
    assert without_cost(second.json()) == {"data": gql.data(text)}
    # The hash alone now works, by POST and by GET.
    third = post(http, {"extensions": extensions})
    assert without_cost(third.json()) == without_cost(second.json())
    by_get = http.get("/graphql", params={"extensions": json.dumps(extensions)})
    assert without_cost(by_get.json()) == without_cost(second.json())
    listed = cli(server, "list")
    assert listed.returncode == 0, listed.stderr
    assert f"sha256:{sha256(text)}\t-\ttrusted\tvalid\tquery Leads" in listed.stdout


def test_a_hash_that_is_not_the_querys_is_refused_and_registers_nothing(
    http: httpx.Client,
) -> None:
    text = document("wrong hash")
    other = sha256("something else")
    apq = post(
        http, {"query": text, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": other}}}
    )
    assert apq.status_code == 200
    assert code_of(apq) == "PERSISTED_QUERY_HASH_MISMATCH"
    by_id = post(http, {"query": text, "documentId": f"sha256:{other}"}, accept=GRAPHQL_RESPONSE)
    assert by_id.status_code == 400
    assert code_of(by_id) == "PERSISTED_QUERY_HASH_MISMATCH"
    # Neither registered the text under either hash.
    for hash_ in (other, sha256(text)):
        assert code_of(post(http, {"documentId": f"sha256:{hash_}"})) == "PERSISTED_QUERY_NOT_FOUND"


def test_apq_does_not_register_for_callers_without_credentials(
    http: httpx.Client, gql: GraphQLClient
) -> None:
    text = "# anonymous apq\nquery { __typename }"
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha256(text)}}
    ran = post(http, {"query": text, "extensions": extensions}, token="")
    assert without_cost(ran.json()) == {"data": {"__typename": "Query"}}
    assert code_of(post(http, {"extensions": extensions})) == "PERSISTED_QUERY_NOT_FOUND"


def test_require_refuses_free_text_below_admin_but_not_for_an_owner(
    server: LiveServer, http: httpx.Client, gql: GraphQLClient, tmp_path: Path, mode: Any
) -> None:
    member = gql.data(CREATE_KEY, {"role": "MEMBER"})["createApiKey"]["secret"]
    trusted = document("require: trusted")
    assert register(server, tmp_path, {f"sha256:{sha256(trusted)}": trusted}).returncode == 0
    free = document("require: free text")
    mode("require")

    refused = post(http, {"query": free}, token=member, accept=GRAPHQL_RESPONSE)
    assert refused.status_code == 403
    assert code_of(refused) == "PERSISTED_QUERY_NOT_IN_LIST"
    assert "TRUSTED_DOCUMENTS=require" in refused.json()["errors"][0]["message"]
    anonymous = post(http, {"query": "{ __typename }"}, token="")
    assert code_of(anonymous) == "PERSISTED_QUERY_NOT_IN_LIST"
    # APQ does not let a MEMBER register a document either.
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha256(free)}}
    assert code_of(post(http, {"query": free, "extensions": extensions}, token=member)) == (
        "PERSISTED_QUERY_NOT_IN_LIST"
    )

    # The registered document runs for the MEMBER, by id and as its exact text.
    by_id = post(http, {"documentId": f"sha256:{sha256(trusted)}"}, token=member)
    assert by_id.status_code == 200 and "errors" not in by_id.json(), by_id.text
    by_text = post(http, {"query": trusted}, token=member)
    assert without_cost(by_text.json()) == without_cost(by_id.json())

    # The OWNER sends free text.
    owner = post(http, {"query": free})
    assert owner.status_code == 200 and "errors" not in owner.json(), owner.text


def test_off_refuses_document_ids_and_apq(http: httpx.Client, mode: Any) -> None:
    mode("off")
    text = document("off")
    by_id = post(http, {"documentId": f"sha256:{sha256(text)}"})
    assert code_of(by_id) == "PERSISTED_QUERY_NOT_SUPPORTED"
    apq = post(
        http,
        {
            "query": text,
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256(text)}},
        },
    )
    assert code_of(apq) == "PERSISTED_QUERY_NOT_SUPPORTED"
    assert "errors" not in post(http, {"query": text}).json()


def test_the_cli_registers_codegen_relay_and_apollo_manifests(
    server: LiveServer, http: httpx.Client, tmp_path: Path
) -> None:
    codegen = document("codegen (sha256 keys)")
    codegen_sha1 = document("codegen (its default sha1 keys)")
    relay = document("relay (md5 ids)")
    apollo = document("apollo manifest")
    manifests = [
        {sha256(codegen): codegen, hashlib.sha1(codegen_sha1.encode()).hexdigest(): codegen_sha1},
        {hashlib.md5(relay.encode()).hexdigest(): relay},
        {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": sha256(apollo), "body": apollo, "name": "Leads", "type": "query"}
            ],
        },
    ]
    for manifest in manifests:
        result = register(server, tmp_path, manifest)
        assert result.returncode == 0, result.stderr
    for text in (codegen, codegen_sha1, relay, apollo):
        response = post(http, {"documentId": f"sha256:{sha256(text)}"})
        assert "errors" not in response.json(), response.text
    # A client's own (non-SHA-256) id is a custom document identifier.
    by_md5 = post(http, {"documentId": hashlib.md5(relay.encode()).hexdigest()})
    assert "errors" not in by_md5.json(), by_md5.text
    # Registering again changes nothing.
    again = register(server, tmp_path, manifests[0])
    assert again.returncode == 0 and "0 registered now, 2 already were" in again.stderr


def test_the_cli_refuses_a_wrong_hash_or_an_invalid_document_and_registers_nothing(
    server: LiveServer, http: httpx.Client, tmp_path: Path
) -> None:
    good = document("cli refusal: good")
    invalid = document("cli refusal: invalid", "leads { noSuchField }")
    wrong = document("cli refusal: wrong hash")
    result = register(
        server, tmp_path, {sha256(good): good, sha256(invalid): invalid, sha256("other"): wrong}
    )
    assert result.returncode == 2
    assert "Nothing was registered" in result.stderr
    assert "noSuchField" in result.stderr
    assert f"is not the SHA256 of its document ({sha256(wrong)})" in result.stderr
    assert cli(server, "list").stdout == ""
    assert (
        code_of(post(http, {"documentId": f"sha256:{sha256(good)}"})) == "PERSISTED_QUERY_NOT_FOUND"
    )
    not_a_manifest = register(server, tmp_path, ["query { __typename }"])
    assert not_a_manifest.returncode == 2 and "Not a manifest" in not_a_manifest.stderr


def test_require_applies_over_websocket_by_the_documents_text(
    server: LiveServer, gql: GraphQLClient, tmp_path: Path, mode: Any
) -> None:
    """graphql-transport-ws sends `query` (Strawberry's handler reads no documentId or
    extensions): under require, a MEMBER's operation runs if its text is a registered
    document's, and is refused with the same code otherwise; the connection stays open."""
    member = gql.data(CREATE_KEY, {"role": "MEMBER"})["createApiKey"]["secret"]
    trusted = document("websocket: trusted")
    assert register(server, tmp_path, {sha256(trusted): trusted}).returncode == 0
    mode("require")
    answers = results(
        talk(
            server,
            [{"query": document("websocket: free text")}, {"query": trusted}],
            payload={"Authorization": f"Bearer {member}"},
        )
    )
    assert answers[0][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"
    assert without_cost(answers[1]) == {"data": gql.data(trusted)}


def test_apollo_clients_persisted_query_link_registers_then_sends_the_hash_alone(
    server: LiveServer, gql: GraphQLClient
) -> None:
    query = "query ApolloApq { leads(first: 1) { totalCount } }"
    spec = json.dumps({"token": OWNER_KEY, "query": query})
    out = subprocess.run(
        ["node", str(ROOT / "tests" / "apollo_client" / "apq.mjs"), f"{server.url}/graphql", spec],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert (
        got["first"]
        == got["second"]
        == {"leads": {"__typename": "LeadConnection", "totalCount": 0}}
    )
    # Hash alone (not found), hash and query (registered), then the hash alone.
    assert [("query" in body, "persistedQuery" in body["extensions"]) for body in got["sent"]] == [
        (False, True),
        (True, True),
        (False, True),
    ]
    sent_hash = got["sent"][0]["extensions"]["persistedQuery"]["sha256Hash"]
    body = gql.http.post("/graphql", json={"documentId": f"sha256:{sent_hash}"}).json()
    # What Apollo hashed is its printed document, with the __typename it adds.
    assert without_cost(body) == {"data": got["first"]}, body


def test_a_document_registered_under_another_schema_is_validated_again_once(
    server: LiveServer, http: httpx.Client, gql: GraphQLClient
) -> None:
    """A row whose schema_key is not the running schema's (the schema changed since it was
    registered) is validated when first used and marked valid under the current key; one no
    longer valid answers its validation errors."""
    valid = document("schema changed: still valid")
    stale = document("schema changed: no longer valid", "leads { removedField }")
    now = datetime.now(UTC)
    table: Any = TrustedDocument.__table__  # type: ignore[attr-defined]

    async def plant() -> None:
        async with server.db.write() as conn:
            for text in (valid, stale):
                values = {"hash": sha256(text), "body": text, "source": "manifest"}
                await conn.execute(
                    insert(table).values(
                        **values, trusted=True, schema_key="0" * 64, created_at=now
                    )
                )

    async def keys() -> dict[str, str]:
        async with server.db.read() as conn:
            rows = await conn.execute(select(table.c.hash, table.c.schema_key))
            return {row.hash: row.schema_key for row in rows}

    server.run(plant())
    ran = post(http, {"documentId": f"sha256:{sha256(valid)}"})
    assert without_cost(ran.json()) == {"data": gql.data(valid)}
    failed = post(http, {"documentId": f"sha256:{sha256(stale)}"})
    assert failed.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    stored = server.run(keys())
    assert stored[sha256(stale)] == "0" * 64
    listed = cli(server, "list").stdout
    assert f"sha256:{sha256(valid)}\t-\ttrusted\tvalid\t" in listed
    assert f"sha256:{sha256(stale)}\t-\ttrusted\tschema changed\t" in listed


def test_apq_stores_at_most_apq_documents_max_for_callers_below_admin(
    server: LiveServer, http: httpx.Client, gql: GraphQLClient
) -> None:
    """Past APQ_DOCUMENTS_MAX untrusted documents, a document sent with its hash still runs but
    is not stored (no key grows the table without bound); one stored already is found as
    before, and ADMIN/OWNER registrations (trusted) are not counted."""
    member = gql.data(CREATE_KEY, {"role": "MEMBER"})["createApiKey"]["secret"]
    before = server.settings.apq_documents_max
    server.settings.apq_documents_max = 1
    try:

        def apq(text: str, token: str, with_query: bool = True) -> httpx.Response:
            extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha256(text)}}
            body = (
                {"query": text, "extensions": extensions}
                if with_query
                else {"extensions": extensions}
            )
            return post(http, body, token=token)

        first, second, owners = (document(f"apq cap {n}") for n in (1, 2, 3))
        assert "errors" not in apq(first, member).json()  # stored: the one allowed
        ran = apq(second, member)  # runs, not stored
        assert without_cost(ran.json()) == {"data": gql.data(second)}
        assert code_of(apq(second, member, with_query=False)) == "PERSISTED_QUERY_NOT_FOUND"
        assert "errors" not in apq(first, member, with_query=False).json()
        assert "errors" not in apq(first, member).json()  # sent again: still stored, once
        # The OWNER's registration is trusted: not counted, stored.
        assert "errors" not in apq(owners, OWNER_KEY).json()
        assert "errors" not in apq(owners, member, with_query=False).json()
    finally:
        server.settings.apq_documents_max = before
    listed = cli(server, "list").stdout
    assert sha256(first) in listed and sha256(owners) in listed and sha256(second) not in listed
