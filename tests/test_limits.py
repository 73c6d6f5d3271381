"""Documents that are too deep or too wide are refused before they run."""

from __future__ import annotations

from tests.conftest import GraphQLClient


def nested(depth: int) -> str:
    """leads > edges > node, then convertedClient/convertedFrom hops up to ``depth`` levels."""
    hops = depth - 3
    inner = "id"
    for n in range(hops):
        inner = f"{'convertedClient' if n % 2 == 0 else 'convertedFrom'} {{ {inner} }}"
    return f"{{ leads {{ edges {{ node {{ {inner} }} }} }} }}"


def test_queries_up_to_the_depth_limit_run(gql: GraphQLClient) -> None:
    assert gql.data(nested(12)) == {"leads": {"edges": []}}


def test_queries_past_the_depth_limit_are_refused(gql: GraphQLClient) -> None:
    body = gql(nested(14))
    assert "data" not in body
    assert body["errors"][0]["message"] == "'anonymous' exceeds maximum operation depth of 12"
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_too_many_aliases_are_refused(gql: GraphQLClient) -> None:
    ok = "{ " + " ".join(f"a{i}: __typename" for i in range(30)) + " }"
    too_many = "{ " + " ".join(f"a{i}: __typename" for i in range(31)) + " }"
    assert len(gql.data(ok)) == 30
    body = gql(too_many)
    assert body["errors"][0]["message"] == "31 aliases found. Allowed: 30"
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
