"""Trusted documents in the request pipeline (README, Trusted documents): a request names a
registered document by ``documentId`` (GraphQL over HTTP's persisted documents; the view puts
it in the Context) or by Apollo's APQ hash (``extensions.persistedQuery``); TRUSTED_DOCUMENTS
says whether that is understood (off), allowed beside free text (allow) or the only way for
credentials below ADMIN (require). A registered document is parsed once per process and
pinned in the DocumentCache, marked valid under the request rules when it passed validation
under this schema (its ``schema_key``), so that its requests skip parsing and validation."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from db.models import Role
from resolvers.documents import SHA256_ID, Document, DocumentRegistry, is_document_id, sha256_hex
from schema.limits import DocumentCache, Rules, _utf8_length_over

if TYPE_CHECKING:
    from strawberry.types import ExecutionContext

NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
NOT_IN_LIST = "PERSISTED_QUERY_NOT_IN_LIST"
HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"
# The HTTP status of a request refused with these codes, for graphql-response+json clients
# (application/json ones get 200 with the error, as for every well-formed GraphQL response).
HTTP_STATUS = {NOT_FOUND: 404, NOT_IN_LIST: 403}


def refused(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


@dataclass
class DocumentSupport:
    """What the schema keeps for trusted documents: the registry, the document cache the
    registered documents are pinned in, the rules every request is validated under, and what
    a document is parsed with."""

    schema: Any  # the Strawberry Schema
    registry: DocumentRegistry
    cache: DocumentCache
    rules: Rules
    parse_options: Mapping[str, Any]
    max_bytes: int
    limits: tuple[Any, ...] = field(default=())

    @cached_property
    def schema_key(self) -> str:
        """Names this schema and its validation limits: a document that passed validation
        under the same key need not be validated again."""
        text = self.schema.as_str() + "\n" + repr(self.limits)
        return hashlib.sha256(text.encode()).hexdigest()

    def problems_of(self, body: str) -> list[str]:
        """Why ``body`` would be refused before it runs (too large, a syntax error, not valid
        against this schema under the request limits); [] when it would not."""
        if (size := _utf8_length_over(body, self.max_bytes)) is not None:
            return [f"The document is {size} bytes; at most {self.max_bytes} are accepted."]
        try:
            document = parse(body, **self.parse_options)
        except GraphQLError as exc:
            return [exc.message]
        return [
            error.message for error in validate_document(self.schema._schema, document, self.rules)
        ]

    async def prepared(self, db: Any, doc: Document, options: Mapping[str, Any]) -> None:
        """Pins ``doc`` parsed, marked valid if it was validated under this schema (validated
        now, and recorded, if the schema changed since). Parsed and validated once a process."""
        if self.cache.pinned(doc.body, options) is not None:
            return
        if doc.schema_key == self.schema_key:
            self.cache.pin(doc.body, options, self.rules)
            return
        try:
            entry = self.cache.pin(doc.body, options, None)
        except GraphQLError:
            return  # the request parses it again and answers the syntax error
        if not self.cache.validate(self.schema._schema, entry, self.rules):
            await self.registry.mark_valid(db, doc, self.schema_key)


_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")


def _stand_in(operation_name: str | None) -> DocumentNode:
    """A one-operation document answering to the request's operationName, if any."""
    name = operation_name if operation_name and _NAME.fullmatch(operation_name) else ""
    return parse(f"query {name} {{ __typename }}")


def _privileged(context: Any) -> bool:
    principal = context.principal
    return principal is not None and principal.role.includes(Role.ADMIN)


class TrustedDocuments(SchemaExtension):
    """Resolves a request's documentId or APQ hash into its text and enforces
    TRUSTED_DOCUMENTS, before anything is parsed."""

    def __init__(self, support: DocumentSupport) -> None:
        self.support = support

    async def on_operation(self) -> AsyncIterator[None]:
        ec = self.execution_context
        try:
            await self._resolve(ec)
        except GraphQLError as error:
            # Refused before parsing, as a result with this one error on every transport (an
            # exception here would escape a WebSocket operation): a stand-in document, already
            # failed, so that nothing is parsed, validated or run.
            ec.query = None
            ec.graphql_document = _stand_in(ec._provided_operation_name)
            ec.pre_execution_errors = [error]
        yield

    async def _resolve(self, ec: ExecutionContext) -> None:
        context = ec.context
        settings = getattr(context, "settings", None)
        if settings is None:
            return
        mode = settings.trusted_documents
        document_id: str | None = getattr(context, "document_id", None)
        persisted = (ec.operation_extensions or {}).get("persistedQuery")
        if mode == "off":
            if document_id is not None or persisted is not None:
                raise refused(
                    "Persisted documents are turned off on this server (TRUSTED_DOCUMENTS=off):"
                    " send the document's text as `query`.",
                    NOT_SUPPORTED,
                )
            return
        registry, query = self.support.registry, ec.query
        if persisted is not None:
            if document_id is not None:
                raise refused(
                    "Send either `documentId` or extensions.persistedQuery, not both.",
                    "BAD_REQUEST",
                )
            if not (
                isinstance(persisted, Mapping)
                and persisted.get("version") == 1
                and isinstance(persisted.get("sha256Hash"), str)
            ):
                raise refused(
                    'extensions.persistedQuery must be {"version": 1, "sha256Hash": "<hex>"}.',
                    "BAD_REQUEST",
                )
            document_id = f"sha256:{persisted['sha256Hash']}"
            if not SHA256_ID.fullmatch(document_id):
                raise refused(
                    "extensions.persistedQuery.sha256Hash must be 64 lowercase hex digits.",
                    "BAD_REQUEST",
                )
        elif document_id is not None and not is_document_id(document_id):
            raise refused(
                f"documentId {document_id!r} is not a document identifier: send "
                "sha256:<the SHA-256 of the document, lowercase hex>.",
                "BAD_REQUEST",
            )
        db = context.db
        doc: Document | None = None
        if document_id is None:
            if not query or mode != "require" or _privileged(context):
                return  # free text
            doc = await registry.find(db, f"sha256:{sha256_hex(query)}")
        elif query is not None:
            # The text and its id: the id must be the text's.
            match = SHA256_ID.fullmatch(document_id)
            actual = sha256_hex(query)
            if match is None or match[1] != actual:
                raise refused(
                    f"{document_id} is not the SHA-256 of the query sent (sha256:{actual}).",
                    HASH_MISMATCH,
                )
            doc = await registry.find(db, document_id)
            if doc is None and persisted is not None:
                doc = await self._register(context, query)
        else:
            doc = await registry.find(db, document_id)
            if doc is None:
                raise refused(
                    f"PersistedQueryNotFound: no document is registered as {document_id}."
                    + (" Send it again with its query." if persisted is not None else ""),
                    NOT_FOUND,
                )
            ec.query = doc.body
        if mode == "require" and not _privileged(context) and not (doc and doc.trusted):
            if doc is not None:  # another process may have trusted it since it was read
                doc = await registry.find(db, doc.document_id, fresh=True)
            if not (doc and doc.trusted):
                raise refused(
                    "This server runs only registered documents (TRUSTED_DOCUMENTS=require) "
                    "for credentials below ADMIN: send the documentId of one your client "
                    "registered (server.py documents add).",
                    NOT_IN_LIST,
                )
        if doc is not None:
            await self.support.prepared(db, doc, ec.parse_options)

    async def _register(self, context: Any, query: str) -> Document | None:
        """APQ's registration of a document sent with its hash: by a caller with credentials
        (under require, ADMIN or OWNER), of a document valid against this schema; None when
        it is not registered (it still runs as sent, or fails as it would have)."""
        privileged = _privileged(context)
        if context.principal is None:
            return None
        if context.settings.trusted_documents == "require" and not privileged:
            return None
        if self.support.problems_of(query):
            return None
        return await self.support.registry.register(
            context.db,
            query,
            privileged,
            self.support.schema_key,
            context.settings.apq_documents_max,
        )
