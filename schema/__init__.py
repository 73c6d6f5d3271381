"""The Schema: per-domain Query and Mutation classes merged into one federation subgraph."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import strawberry
from graphql import ASTValidationRule, GraphQLError, specified_rules
from strawberry.extensions import AddValidationRules, MaxTokensLimiter
from strawberry.extensions.max_aliases import create_validator as alias_limit
from strawberry.extensions.query_depth_limiter import create_validator as depth_limit
from strawberry.federation.schema import FederationAny
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StreamResult
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult, Info
from strawberry.types.graphql import OperationType
from strawberry.utils.inspect import get_func_args

from db.models import Role
from db.settings import Settings
from resolvers.documents import DocumentRegistry
from resolvers.errors import BadInput
from schema import cost, execution
from schema.activities import ActivityMutation
from schema.auth import AuthMutation, AuthQuery
from schema.clients import ClientMutation, ClientQuery
from schema.context import Context
from schema.documents import DocumentSupport, TrustedDocuments
from schema.duplicates import DuplicateQuery, MergeMutation
from schema.events import EventQuery
from schema.extensions import AnonymousIntrospection, ErrorPolicy, SettledLoads
from schema.follow_ups import FollowUpMutation, FollowUpQuery
from schema.forms import FormMutation, FormQuery
from schema.imports import ImportMutation, ImportQuery
from schema.leads import LeadMutation, LeadQuery
from schema.limits import CostLimits, DocumentCache, DocumentLimits, list_size_rule
from schema.nodes import NodeQuery
from schema.retention import RetentionMutation, RetentionQuery
from schema.scalars import JSON, DateTime, JSONValue
from schema.subscriptions import EventSubscription
from schema.tags import TagMutation, TagQuery
from schema.tickets import TicketMutation, TicketQuery
from schema.tracing import FederatedTracing
from schema.webhooks import WebhookMutation, WebhookQuery


class Schema(strawberry.federation.Schema):
    """The federation schema, without Strawberry's logging of every error at ERROR level:
    client mistakes are not server errors, and ErrorPolicy logs the unexpected ones."""

    documents: DocumentSupport  # trusted documents (schema/documents.py)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        return None

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Strawberry's, for one result (GraphQL over HTTP): never a subscription, whose
        results are a stream (``stream``, over WebSocket). One refused here is
        InvalidOperationTypeError, which the view answers with where to subscribe."""
        allowed = set(allowed_operation_types or OperationType) - {OperationType.SUBSCRIPTION}
        return await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed,
            operation_extensions,
        )

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> StreamResult:
        """Strawberry's, with a Context per operation: a WebSocket connection passes its one
        Context to every operation it runs, and loaders must not cache across them."""
        if isinstance(context_value, Context):
            context_value = await context_value.for_operation()
        return await super().stream(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            operation_extensions,
            allowed_operation_types,
        )

    def entities_resolver(
        self, info: Info, representations: list[FederationAny]
    ) -> list[FederationAny]:
        """Strawberry's _entities, for the representations it can resolve; the others (not an
        object, an unknown __typename, keys other than the entity's) become BAD_USER_INPUT
        errors in their place instead of a TypeError, KeyError or AttributeError. Credentials
        are checked once, first: without them nothing is looked at."""
        info.context.require(Role.VIEWER)
        results: list[Any] = [
            None
            if self._is_reference(representation)
            else BadInput(
                f"Argument 'representations[{index}]' is not a valid entity representation.",
                "representations",
            )
            for index, representation in enumerate(representations)
        ]
        valid = [i for i, result in enumerate(results) if result is None]
        resolved = super().entities_resolver(info, [representations[i] for i in valid])
        for index, result in zip(valid, resolved, strict=True):
            results[index] = result
        return results

    def _is_reference(self, representation: Any) -> bool:
        """An object naming an entity type with a resolve_reference, and exactly its keys."""
        typename = representation.get("__typename") if isinstance(representation, dict) else None
        if not isinstance(typename, str):
            return False
        type_ = self.schema_converter.type_map.get(typename)
        origin = getattr(getattr(type_, "definition", None), "origin", None)
        resolve_reference = getattr(origin, "resolve_reference", None)
        if resolve_reference is None:
            return False
        keys = set(get_func_args(resolve_reference)) - {"info"}
        return set(representation) - {"__typename"} == keys


def build_schema(settings: Settings | None = None) -> Schema:
    """A fresh Schema with the request limits of ``settings`` (the defaults without)."""
    # model_construct: the defaults as declared, without reading the environment.
    settings = settings or Settings.model_construct()
    # The limit rules are built once: QueryDepthLimiter and MaxAliasesLimiter make a new rule
    # class per request, which would change the validation cache's key so that it never hits.
    limits: list[type[ASTValidationRule]] = [
        depth_limit(settings.max_query_depth, None, None),
        alias_limit(settings.max_aliases),
        list_size_rule(settings.max_list_size),
    ]
    documents = DocumentCache(settings.document_cache_bytes)
    support = DocumentSupport(
        schema=None,
        registry=DocumentRegistry(),
        cache=documents,
        # What every request is validated under: Strawberry's rules, then AddValidationRules'.
        rules=(*specified_rules, *limits),
        parse_options={"max_tokens": settings.max_query_tokens},
        max_bytes=settings.max_document_bytes,
        limits=(
            settings.max_query_depth,
            settings.max_aliases,
            settings.max_list_size,
            settings.max_query_tokens,
            settings.max_document_bytes,
        ),
    )
    query = merge_types(
        "Query",
        (
            *(NodeQuery, LeadQuery, ClientQuery, EventQuery, WebhookQuery, FormQuery),
            *(DuplicateQuery, ImportQuery, AuthQuery, TagQuery, TicketQuery, FollowUpQuery),
            RetentionQuery,
        ),
    )
    mutation = merge_types(
        "Mutation",
        (
            *(LeadMutation, ClientMutation, WebhookMutation, FormMutation, MergeMutation),
            *(ImportMutation, AuthMutation, TagMutation, ActivityMutation),
            *(TicketMutation, FollowUpMutation, RetentionMutation),
        ),
    )
    cost.weigh_mutations(mutation)
    costs: list[cost.Costs] = []  # the schema's, once it is built
    limits_on = settings.rate_limits or settings.max_query_cost > 0
    built = Schema(
        query=query,
        mutation=mutation,
        subscription=merge_types("Subscription", (EventSubscription,)),
        federation_version="2.11",
        execution_context_class=execution.ExecutionContext.limited(settings.max_list_size),
        config=StrawberryConfig(scalar_map={datetime: DateTime, JSON: JSONValue}),
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
            lambda: AddValidationRules(limits),
            lambda: TrustedDocuments(support),
            AnonymousIntrospection,
            lambda: DocumentLimits(documents, settings.max_document_bytes),
            ErrorPolicy,
            SettledLoads,
            FederatedTracing,  # only when a gateway asks for it (see schema/tracing.py)
            *(
                [
                    lambda: CostLimits(
                        lambda: costs[0], settings.max_query_cost, settings.max_list_size
                    )
                ]
                if limits_on
                else []
            ),
        ],
    )
    if cost.publish(built._schema):
        # The first build in a process: @listSize went onto the (shared) fields only now, after
        # federation wrote the schema's @link imports (printed from schema_directives).
        cost.import_list_size(built)
    costs.append(cost.Costs(built._schema))
    support.schema = built
    built.documents = support
    return built


schema = build_schema()
