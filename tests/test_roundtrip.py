"""Leaving and arriving: a workspace's export, imported into an empty workspace, gives the
same leads (every field a lead is made of; ids and audit fields belong to the new workspace)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from db.models import Role
from resolvers.auth.api_keys import create_key_for_workspace
from tests.conftest import OWNER_KEY, GraphQLClient, LiveServer
from tests.test_imports import finished

LEADS = """
{
  leads(first: 100, orderBy: {field: EMAIL}) {
    totalCount
    nodes {
      email firstName lastName phone company city state postalCode source notes status score
      metadata externalIds { system id } createdAt
    }
  }
}
"""
CREATE_LEAD = """
mutation ($input: CreateLeadInput!) { createLead(input: $input) { userErrors { message } } }
"""
LEADS_GIVEN = [
    {
        "email": "Ann.Lee@Example.com",
        "firstName": "Ann",
        "lastName": "Lee",
        "phone": "+1 512 555 0100",
        "company": 'Acme, "the" Company',
        "city": "Austin",
        "state": "Texas",
        "postalCode": "78701",
        "source": "fair",
        "notes": 'line one\nline two, with a comma\r\nand "quotes"; =SUM(A1)',
        "status": "QUALIFIED",
        "score": 90,
        "metadata": {"tier": "gold", "seats": 12, "tags": ["a", "b"], "nested": {"x": None}},
        "externalIds": [{"system": "salesforce", "id": "00Q1"}, {"system": "hubspot", "id": "9"}],
    },
    {"email": "bare@example.com"},
    {
        "email": "zoë@example.com",
        "firstName": "Zoë",
        "lastName": "Ångström",
        "company": "Café Müller",
        "status": "LOST",
        "score": 0,
        "metadata": {"note": "+1 at the start", "empty": ""},
    },
]


@pytest.mark.parametrize("format_", ["csv", "ndjson"])
def test_an_export_imported_into_an_empty_workspace_gives_the_same_leads(
    server: LiveServer, gql: GraphQLClient, http: httpx.Client, format_: str
) -> None:
    for values in LEADS_GIVEN:
        assert gql.data(CREATE_LEAD, {"input": values})["createLead"]["userErrors"] == []
    secret, _, _ = server.run(create_key_for_workspace(server.db, "Arrivals", Role.OWNER, "t"))
    arrivals = gql.as_(secret)
    assert arrivals.data(LEADS)["leads"]["totalCount"] == 0

    exported = http.get(
        f"/exports/leads.{format_}", headers={"Authorization": f"Bearer {OWNER_KEY}"}
    )
    assert exported.status_code == 200
    content_type = "text/csv" if format_ == "csv" else "application/x-ndjson"
    posted = http.post(
        "/imports/leads",
        content=exported.content,
        headers={"Content-Type": content_type, "Authorization": f"Bearer {secret}"},
    )
    assert posted.status_code == 202, posted.text
    job = finished(arrivals, posted.json()["id"])

    assert (job["status"], job["created"], job["failed"]) == ("SUCCEEDED", 3, 0)
    before: dict[str, Any] = gql.data(LEADS)["leads"]
    after: dict[str, Any] = arrivals.data(LEADS)["leads"]
    assert after == before
