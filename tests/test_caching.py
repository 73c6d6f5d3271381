"""Parsed and validated documents are cached: a repeated document is neither parsed nor
validated again."""

from __future__ import annotations

from strawberry.extensions.parser_cache import _get_parse_cache
from strawberry.extensions.validation_cache import _get_validate_cache

from tests.conftest import GraphQLClient

QUERY = "query CacheProbe { leads(first: 1) { totalCount } }"


def test_a_repeated_document_hits_the_parse_and_validation_caches(gql: GraphQLClient) -> None:
    parse, validate = _get_parse_cache(1024), _get_validate_cache(1024)
    gql.data(QUERY)
    parsed, validated = parse.cache_info(), validate.cache_info()

    for _ in range(3):
        gql.data(QUERY)

    assert parse.cache_info().hits == parsed.hits + 3
    assert parse.cache_info().misses == parsed.misses
    assert validate.cache_info().hits == validated.hits + 3
    assert validate.cache_info().misses == validated.misses
