"""Trusted documents: GraphQL documents registered by their SHA-256 (the GraphQL-over-HTTP
persisted-documents proposal's ``sha256:<hex>`` documentId, Apollo's APQ hash), read from a
client's manifest or registered by APQ, stored in ``trusted_documents`` (shared by every
process) and kept in each process once read. What a document means to the schema (parsing,
validation, the schema's key) is the schema layer's: it is passed in here as functions."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cachetools import LRUCache

from db.engine import Database
from db.repositories import documents as repository
from db.repositories.documents import NewDocument

logger = logging.getLogger("leadgraph.documents")

SHA256_ID = re.compile(r"sha256:([0-9a-f]{64})")
_HEX = re.compile(r"[0-9a-fA-F]+")
# The proposal's custom document identifier (no colon), or an x- prefixed one.
_CUSTOM_ID = re.compile(r"(x-[A-Za-z0-9._~-]+:)?[A-Za-z0-9._~-]{1,200}")
# A hex id of these lengths is taken for that digest of the text and checked: the Relay
# compiler's MD5 (its default), graphql-codegen's SHA-1 (its default), SHA-256.
_DIGESTS = {32: "md5", 40: "sha1", 64: "sha256"}
APOLLO_MANIFEST = "apollo-persisted-query-manifest"
# Registered documents kept in a process (their parsed form is the schema layer's to keep).
_CACHED_DOCUMENTS = 4096


class ManifestError(ValueError):
    """A manifest that registers nothing: each problem found, one a line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Document:
    hash: str  # hex SHA-256 of body
    body: str
    trusted: bool
    schema_key: str

    @property
    def document_id(self) -> str:
        return f"sha256:{self.hash}"


def sha256_hex(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def is_document_id(value: str) -> bool:
    return bool(SHA256_ID.fullmatch(value) or _CUSTOM_ID.fullmatch(value))


def manifest_entries(manifest: Any) -> list[tuple[str, str]]:
    """(id, text) of each document in a manifest: Apollo's persisted query manifest
    ({"format": "apollo-persisted-query-manifest", "operations": [{id, body, name, type}]}),
    or an object of id → text (graphql-codegen's client preset persisted documents, the Relay
    compiler's persisted queries)."""
    if isinstance(manifest, Mapping) and manifest.get("format") == APOLLO_MANIFEST:
        operations = manifest.get("operations")
        if not isinstance(operations, list):
            raise ManifestError([f"{APOLLO_MANIFEST}: 'operations' must be a list."])
        entries, problems = [], []
        for n, operation in enumerate(operations):
            if not (
                isinstance(operation, Mapping)
                and isinstance(operation.get("id"), str)
                and isinstance(operation.get("body"), str)
            ):
                problems.append(f"operations[{n}]: needs a string 'id' and a string 'body'.")
                continue
            entries.append((operation["id"], operation["body"]))
        if problems:
            raise ManifestError(problems)
        return entries
    if isinstance(manifest, Mapping) and "format" not in manifest:
        problems = [
            f"{key!r}: the document must be a string."
            for key, v in manifest.items()
            if not isinstance(v, str)
        ]
        if problems:
            raise ManifestError(problems)
        return list(manifest.items())
    raise ManifestError(
        [
            "Not a manifest this server reads: a JSON object of id → document (graphql-codegen,"
            f' Relay) or Apollo\'s {{"format": "{APOLLO_MANIFEST}", "operations": [...]}}.'
        ]
    )


def _new_document(document_id: str, body: str, source: str, trusted: bool) -> NewDocument:
    """The document to store under ``document_id``; ValueError if the id is a digest that is
    not the text's, or not an identifier at all."""
    digest = sha256_hex(body)
    if match := SHA256_ID.fullmatch(document_id):
        claimed, algorithm, alias = match[1], "sha256", None
    elif _HEX.fullmatch(document_id) and len(document_id) in _DIGESTS:
        algorithm = _DIGESTS[len(document_id)]
        claimed = document_id.lower()
        alias = None if algorithm == "sha256" else document_id
    elif _CUSTOM_ID.fullmatch(document_id):
        return NewDocument(digest, body, document_id, source, trusted)
    else:
        raise ValueError("is not a document identifier (sha256:<hex>, or letters, digits, -._~)")
    actual = hashlib.new(algorithm, body.encode("utf-8")).hexdigest()
    if claimed != actual:
        raise ValueError(f"is not the {algorithm.upper()} of its document ({actual})")
    return NewDocument(digest, body, alias, source, trusted)


class DocumentRegistry:
    """The registered documents: the table, and those read from it kept in this process."""

    def __init__(self) -> None:
        self._by_id: LRUCache[str, Document] = LRUCache(maxsize=_CACHED_DOCUMENTS)
        self._builtin: dict[str, Document] = {}

    def add_builtin(self, body: str, schema_key: str) -> None:
        """A document the server itself ships (GraphiQL's starting document), trusted in this
        process without being stored."""
        doc = Document(sha256_hex(body), body, True, schema_key)
        self._builtin[doc.document_id] = doc

    async def find(self, db: Database, document_id: str, fresh: bool = False) -> Document | None:
        """The document registered under ``document_id`` (``sha256:<hex>`` or a client's own
        id), or None; read from the table unless this process has it (``fresh``: read it
        again, another process may have trusted it since)."""
        if (doc := self._builtin.get(document_id)) is not None:
            return doc
        if not fresh and (doc := self._by_id.get(document_id)) is not None:
            return doc
        match = SHA256_ID.fullmatch(document_id)
        async with db.read() as conn:
            row = await (
                repository.find(conn, hash=match[1])
                if match
                else repository.find(conn, alias=document_id)
            )
        if row is None:
            return None
        doc = Document(row.hash, row.body, row.trusted, row.schema_key)
        self._by_id[document_id] = doc
        return doc

    async def register(
        self, db: Database, body: str, trusted: bool, schema_key: str, untrusted_max: int
    ) -> Document | None:
        """Stores a document sent with its hash (APQ), already checked to be valid; None when
        it is untrusted and ``untrusted_max`` untrusted documents are stored already."""
        new = NewDocument(sha256_hex(body), body, None, "apq", trusted)
        async with db.write() as conn:
            full = not trusted and await repository.untrusted_count(conn) >= untrusted_max
            if full and not await repository.find(conn, hash=new.hash):
                logger.warning(
                    "APQ_DOCUMENTS_MAX (%d) documents are stored: a document sent with its "
                    "hash ran without being stored",
                    untrusted_max,
                )
                return None
            await repository.register(conn, [new], schema_key, datetime.now(UTC))
        return await self.find(db, f"sha256:{new.hash}", fresh=True) or Document(
            new.hash, body, trusted, schema_key
        )

    async def mark_valid(self, db: Database, doc: Document, schema_key: str) -> Document:
        """Records that ``doc`` passed validation under ``schema_key`` (the schema changed
        since it was registered)."""
        async with db.write() as conn:
            await repository.mark_valid(conn, doc.hash, schema_key)
        updated = Document(doc.hash, doc.body, doc.trusted, schema_key)
        for key, cached in list(self._by_id.items()):
            if cached.hash == doc.hash:
                self._by_id[key] = updated
        return updated


async def add_manifest(
    db: Database,
    manifest: Any,
    problems_of: Callable[[str], list[str]],
    schema_key: str,
) -> tuple[int, int]:
    """Registers every document of ``manifest`` as trusted, or none: each id that is a digest
    must be its text's, each text must be a valid document of the current schema
    (``problems_of`` says why not), and an alias may not name another document. (documents
    newly stored, documents in the manifest)."""
    problems: list[str] = []
    new: list[NewDocument] = []
    for document_id, body in manifest_entries(manifest):
        try:
            doc = _new_document(document_id, body, "manifest", True)
        except ValueError as exc:
            problems.append(f"{document_id!r} {exc}.")
            continue
        if found := problems_of(body):
            problems.extend(f"{document_id!r}: {problem}" for problem in found)
            continue
        new.append(doc)
    if not new and not problems:
        problems.append("The manifest holds no documents.")
    if problems:
        raise ManifestError(problems)
    async with db.write() as conn:
        clashes = await repository.clashes(conn, new)
        if clashes:
            raise ManifestError(
                [
                    f"{row.alias!r} already names another document (sha256:{row.hash})."
                    for row in clashes
                ]
            )
        added = await repository.register(conn, new, schema_key, datetime.now(UTC))
    return added, len(new)


async def list_documents(db: Database) -> list[Any]:
    async with db.read() as conn:
        return await repository.all_documents(conn)
