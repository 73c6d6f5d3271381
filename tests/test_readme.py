"""The README's tour runs as written, in order, on a fresh database (with a credential); its
"A day in the life" runs as the sales rep it follows (a MEMBER who joined by invitation), with
each operation's variables, and every ID those pass was answered by an earlier step."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import GraphQLClient, Mailbox

README = Path(__file__).resolve().parent.parent / "README.md"
# A GraphQL example, and the variables that go with it (a ```json variables block next).
EXAMPLE = re.compile(r"```graphql\n(.*?)```(?:\s*```json variables\n(.*?)```)?", re.S)
OPERATION_NAME = re.compile(r"^(?:query|mutation) (\w+)")

INVITE = """
mutation ($email: String!) {
  inviteMember(input: {email: $email, role: MEMBER}) { userErrors { code } }
}
"""
ACCEPT = """
mutation ($input: AcceptInvitationInput!) {
  acceptInvitation(input: $input) { token userErrors { code } }
}
"""


def examples(text: str) -> list[tuple[str, dict[str, Any] | None]]:
    found = [(q, json.loads(v) if v else None) for q, v in EXAMPLE.findall(text)]
    for query, variables in found:
        # An operation that declares variables is shown with them, and only such a one.
        assert ("$" in query) == (variables is not None), query
    return found


def sam_joins(gql: GraphQLClient, mailbox: Mailbox) -> GraphQLClient:
    """Sam, invited as a MEMBER and signed in with the session acceptInvitation returns."""
    email = "sam@example.com"
    assert gql.data(INVITE, {"email": email})["inviteMember"]["userErrors"] == []
    given = {"email": email, "code": mailbox.code_for(email), "name": "Sam", "password": "x" * 12}
    accepted = gql.as_(None).data(ACCEPT, {"input": given})["acceptInvitation"]
    assert accepted["userErrors"] == []
    return gql.as_(accepted["token"])


def ids_passed(variables: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(name, ID) of each ID in an operation's variables: the values of `id`, `…Id`, `…Ids`."""
    if isinstance(variables, dict):
        for name, value in variables.items():
            yield from ids_passed(value, name)
    elif isinstance(variables, list):
        for value in variables:
            yield from ids_passed(value, key)
    elif isinstance(variables, str) and (key == "id" or key.endswith(("Id", "Ids"))):
        yield key, variables


def ids_answered(result: Any) -> Iterator[str]:
    """Every `id` in a result."""
    if isinstance(result, dict):
        for name, value in result.items():
            if name == "id" and isinstance(value, str):
                yield value
            else:
                yield from ids_answered(value)
    elif isinstance(result, list):
        for value in result:
            yield from ids_answered(value)


def test_every_readme_example_runs_as_written(gql: GraphQLClient, mailbox: Mailbox) -> None:
    text = README.read_text()
    start = text.index("## A tour of the schema")
    day_start = text.index("### A day in the life", start)
    day_end = text.index("\n## ", day_start)
    end = text.index("## PostgreSQL", day_end)
    sam = sam_joins(gql, mailbox)  # the first account: user 1, as the day's IDs say

    tour = examples(text[start:day_start])
    day = examples(text[day_start:day_end])
    after = examples(text[day_end:end])
    assert len(tour) >= 6 and len(day) >= 9

    results = [gql.data(query, variables) for query, variables in tour]
    answered: set[str] = {i for result in results for i in ids_answered(result)}
    by_name: dict[str, dict[str, Any]] = {}
    for query, variables in day:
        for name, value in ids_passed(variables):
            assert value in answered, f"{name} {value} was not answered before:\n{query}"
        result = sam.data(query, variables)
        answered.update(ids_answered(result))
        match = OPERATION_NAME.match(query)
        assert match, query
        by_name[match.group(1)] = result
        results.append(result)
    results += [gql.data(query, variables) for query, variables in after]

    assert results[0]["createLead"]["lead"]["id"] == "TGVhZDox"  # the ID later examples use
    for result in results[:-1]:
        for payload in result.values():
            if isinstance(payload, dict):
                assert payload.get("userErrors", []) == [], payload
    assert results[3]["convertLead"]["lead"]["status"] == "WON"
    assert [e["code"] for e in results[-1]["createLead"]["userErrors"]] == ["INVALID", "INVALID"]
    # The merge folds the duplicate the example before it created (not another lead).
    leads = [r["createLead"]["lead"] for r in results if "createLead" in r]
    [duplicate] = [lead for lead in leads if lead and lead.get("duplicates")]
    [merged] = [r["mergeLeads"] for r in results if "mergeLeads" in r]
    assert merged["mergedLeadIds"] == [duplicate["id"]]

    # The day, step by step.
    morning = by_name["Morning"]
    assert morning["me"]["role"] == "MEMBER"
    sam_id = morning["me"]["user"]["id"]
    assert sam_id == "VXNlcjox"
    [lead] = morning["leads"]["nodes"]
    taken = by_name["Take"]["updateLead"]["lead"]
    tag = by_name["NewTag"]["createTag"]["tag"]
    assert (taken["id"], taken["owner"]["id"], taken["tags"]) == (
        lead["id"],
        sam_id,
        [{"id": tag["id"], "name": "Hot"}],
    )
    call = by_name["LogCall"]["addActivity"]["activity"]
    assert call["author"] == {"name": "Sam"}
    follow_up = by_name["Schedule"]["createFollowUp"]["followUp"]
    assert (follow_up["status"], follow_up["assignee"], follow_up["subject"]) == (
        "OPEN",
        {"name": "Sam"},
        {"id": lead["id"]},
    )
    assert [f["id"] for f in by_name["MyFollowUps"]["followUps"]["nodes"]] == [follow_up["id"]]
    assert by_name["Done"]["updateFollowUp"]["followUp"]["status"] == "DONE"
    converted = by_name["Convert"]["convertLead"]
    assert converted["lead"]["status"] == "WON"
    client = converted["client"]
    assert (client["name"], client["owner"], client["tags"]) == (
        "Ben Okafor",
        {"name": "Sam"},
        [{"name": "Hot"}],
    )
    assert client["activities"]["nodes"] == [{"kind": "CALL", "body": call["body"]}]
    ticket = by_name["OpenTicket"]["createTicket"]["ticket"]
    assert (ticket["number"], ticket["status"], ticket["client"]["id"]) == (1, "OPEN", client["id"])
    pipeline = by_name["Pipeline"]
    mine = pipeline["mine"]["aggregate"]
    assert mine["count"] == 1
    assert [s for s in mine["byStatus"] if s["count"]] == [{"status": "WON", "count": 1}]
    assert {"owner": {"name": "Sam"}, "count": 1} in pipeline["all"]["aggregate"]["byOwner"]
