"""The README's tour runs as written, in order, on a fresh database (with a credential)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import GraphQLClient

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_readme_example_runs_as_written(gql: GraphQLClient) -> None:
    text = README.read_text()
    tour = text[text.index("## A tour of the schema") : text.index("## PostgreSQL")]
    examples = re.findall(r"```graphql\n(.*?)```", tour, re.S)
    assert len(examples) >= 6
    results = [gql.data(example) for example in examples]

    assert results[0]["createLead"]["lead"]["id"] == "TGVhZDox"  # the ID later examples use
    for result in results[:-1]:
        for payload in result.values():
            assert payload.get("userErrors", []) == [], payload
    assert results[3]["convertLead"]["lead"]["status"] == "WON"
    assert [e["code"] for e in results[-1]["createLead"]["userErrors"]] == ["INVALID", "INVALID"]
