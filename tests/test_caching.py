"""Parsed and validated documents are cached: a repeated document is neither parsed nor
validated again. The cache is bounded by the estimated bytes it holds, not by a count: one
distinct large document after another cannot grow the process."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest

import schema.limits
from schema.limits import DocumentCache
from tests.conftest import GraphQLClient


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often the server parses and validates a document (it runs in this process)."""
    counted: Counter[str] = Counter()
    for name in ("parse", "validate_document"):
        original = getattr(schema.limits, name)

        def counting(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            counted[_name] += 1
            return _original(*args, **kw)

        monkeypatch.setattr(schema.limits, name, counting)
    return counted


def test_a_repeated_document_is_parsed_and_validated_once(
    gql: GraphQLClient, calls: Counter[str]
) -> None:
    query = f"query CacheProbe {{ leads(first: 1) {{ totalCount }} }} # {uuid.uuid4()}"
    for _ in range(4):
        gql.data(query)
    assert calls == {"parse": 1, "validate_document": 1}


def test_a_document_that_fails_validation_is_validated_every_time(
    gql: GraphQLClient, calls: Counter[str]
) -> None:
    query = f"{{ leads {{ noSuchField }} }} # {uuid.uuid4()}"
    for _ in range(2):
        assert gql(query)["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert calls == {"parse": 1, "validate_document": 2}


def padded(n: int, size: int) -> str:
    head = f"{{ __typename }} # {n} "
    return head + "x" * (size - len(head))


def test_the_cache_holds_at_most_its_bytes_and_keeps_the_recent_documents() -> None:
    cache = DocumentCache(max_bytes=1_000_000)
    documents = [padded(n, 10_000) for n in range(300)]  # 3 MB of text
    parsed = [cache.parse(document, {}) for document in documents]

    assert cache.size <= 1_000_000
    assert 50 < len(cache) < 100
    assert cache.parse(documents[-1], {}) is parsed[-1]  # the latest: still the same parse
    assert cache.parse(documents[0], {}) is not parsed[0]  # the oldest: parsed again


def test_a_document_over_an_eighth_of_the_cache_is_not_kept() -> None:
    cache = DocumentCache(max_bytes=1_000_000)
    small = "{ " + "__typename " * 100 + "}"  # ~65 KB estimated
    large = "{ " + "__typename " * 300 + "}"  # ~190 KB estimated: over 125,000
    assert cache.parse(small, {}) is cache.parse(small, {})
    assert cache.parse(large, {}) is not cache.parse(large, {})
    assert len(cache) == 1
