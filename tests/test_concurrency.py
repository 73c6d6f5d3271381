"""Concurrent requests on SQLite queue for the write lock instead of failing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.conftest import OWNER_KEY, GraphQLClient, LiveServer

AUTH = {"Authorization": f"Bearer {OWNER_KEY}"}

CREATE_LEAD = """
mutation ($email: String!) {
  createLead(input: {email: $email}) { lead { id } userErrors { code } }
}
"""
CREATE_CLIENT = """
mutation ($email: String!) {
  createClient(input: {email: $email, firstName: "A", lastName: "B"}) {
    client { id } userErrors { code }
  }
}
"""


def post_all(server: LiveServer, query: str, variables: list[dict[str, Any]]) -> list[Any]:
    def post(v: dict[str, Any]) -> Any:
        with httpx.Client(base_url=server.url, timeout=60, headers=AUTH) as client:
            response = client.post("/graphql", json={"query": query, "variables": v})
            assert response.status_code == 200, response.text
            body = response.json()
            assert "errors" not in body, body
            return body["data"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(post, variables))


def test_concurrent_writes_and_reads_never_fail_with_database_locked(
    server: LiveServer, gql: GraphQLClient
) -> None:
    writes = [{"email": f"c{n}@example.com"} for n in range(40)]
    results = post_all(server, CREATE_LEAD, writes)
    assert all(r["createLead"]["userErrors"] == [] for r in results)
    assert gql.data("{ leads { totalCount } }") == {"leads": {"totalCount": 40}}


def test_concurrent_clients_with_one_email_create_one(
    server: LiveServer, gql: GraphQLClient
) -> None:
    results = post_all(server, CREATE_CLIENT, [{"email": "Same@Example.com"}] * 12)
    codes = sorted(
        (r["createClient"]["userErrors"] or [{"code": "OK"}])[0]["code"] for r in results
    )
    assert codes == ["OK"] + ["TAKEN"] * 11
    assert gql.data("{ clients { totalCount } }") == {"clients": {"totalCount": 1}}
