"""Tags (Query.tags, createTag, updateTag, deleteTag) and the owner and tags of leads and
clients (``owner``, ``tags``; their ``ownerId`` / ``tagIds`` inputs and filters live with
the leads' and clients' inputs)."""

from __future__ import annotations

from typing import Any

import strawberry
from sqlalchemy import Row

from resolvers import tags as resolve
from resolvers.ids import to_global_id
from schema.auth import User
from schema.context import Info
from schema.errors import UserError, user_errors
from schema.relay import Node, input_values


@strawberry.type(description="A workspace's label for leads and clients.")
class Tag(Node):
    id: strawberry.ID
    name: str = strawberry.field(description="Unique in the workspace, case aside.")
    color: str | None = strawberry.field(description='"#rrggbb", lowercase; or null.')

    @classmethod
    def from_row(cls, row: Row[Any]) -> Tag:
        return cls(
            id=strawberry.ID(to_global_id(resolve.TAG, row.id)), name=row.name, color=row.color
        )

    @classmethod
    def maybe(cls, row: Row[Any] | None) -> Tag | None:
        return cls.from_row(row) if row is not None else None


@strawberry.input(description="Tags to match; every list given must hold.")
class TagMatch:
    any: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Has at least one of these."
    )
    all: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Has every one of these."
    )
    none: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Has none of these."
    )


@strawberry.input
class CreateTagInput:
    name: str = strawberry.field(description="Trimmed; at most 50 characters.")
    color: str | None = strawberry.field(default=strawberry.UNSET, description='"#rrggbb"')


@strawberry.input(description="A field left out is unchanged; color: null clears it.")
class UpdateTagInput:
    name: str | None = strawberry.UNSET
    color: str | None = strawberry.UNSET


@strawberry.type
class TagPayload:
    tag: Tag | None
    user_errors: list[UserError]


@strawberry.type
class DeleteTagPayload:
    deleted_tag_id: strawberry.ID | None
    user_errors: list[UserError]


def owner_field() -> Any:
    """A record's ``owner: User``, from its ``owner_id`` (a private attribute), batched."""

    async def resolve_owner(self: Any, info: Info) -> User | None:
        if self.owner_id is None:
            return None
        row = await info.context.loaders.user_by_id.load(self.owner_id)
        return User.from_row(row) if row is not None else None

    return strawberry.field(resolve_owner, description="The member responsible; null: unassigned.")


def tags_field(kind: str) -> Any:
    """A record's ``tags: [Tag!]!``, by name, batched per page (``kind``: its loader)."""

    async def resolve_tags(self: Any, info: Info) -> list[Tag]:
        loader = getattr(info.context.loaders, f"{kind}_tags")
        return [Tag.from_row(row) for row in await loader.load(self.pk)]

    return strawberry.field(resolve_tags, description="Its tags, by name.")


@strawberry.type
class TagQuery:
    @strawberry.field(description="The workspace's tags, by name.")
    async def tags(self, info: Info) -> list[Tag]:
        return [Tag.from_row(row) for row in await resolve.tags(info.context)]


@strawberry.type
class TagMutation:
    @strawberry.mutation(description="A new tag; its name unique in the workspace, case aside.")
    async def create_tag(self, info: Info, input: CreateTagInput) -> TagPayload:
        out = await resolve.create_tag(info.context, input_values(input))
        return TagPayload(tag=Tag.maybe(out.tag), user_errors=user_errors(out.problems))

    @strawberry.mutation(description="Renames or recolors a tag.")
    async def update_tag(self, info: Info, id: strawberry.ID, input: UpdateTagInput) -> TagPayload:
        out = await resolve.update_tag(info.context, id, input_values(input))
        return TagPayload(tag=Tag.maybe(out.tag), user_errors=user_errors(out.problems))

    @strawberry.mutation(
        description="Deletes a tag and takes it off every lead and client (ADMIN)."
    )
    async def delete_tag(self, info: Info, id: strawberry.ID) -> DeleteTagPayload:
        out = await resolve.delete_tag(info.context, id)
        deleted = strawberry.ID(out.deleted_id) if out.deleted_id else None
        return DeleteTagPayload(deleted_tag_id=deleted, user_errors=user_errors(out.problems))
