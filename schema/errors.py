"""UserError: problems the caller can fix, returned inside mutation payloads."""

from __future__ import annotations

import strawberry

from resolvers.errors import Problem
from resolvers.errors import UserErrorCode as _UserErrorCode

UserErrorCode = strawberry.enum(_UserErrorCode, name="UserErrorCode")


@strawberry.type
class UserError:
    field: list[str] | None = strawberry.field(
        description='The input path of the value at fault, e.g. ["input", "email"].'
    )
    message: str
    code: UserErrorCode  # type: ignore[valid-type]
    retry_after: int | None = strawberry.field(
        default=None, description="With RATE_LIMITED: seconds until another attempt is allowed."
    )

    @classmethod
    def from_problem(cls, problem: Problem) -> UserError:
        field = list(problem.field) if problem.field is not None else None
        return cls(
            field=field, message=problem.message, code=problem.code, retry_after=problem.retry_after
        )


def user_errors(problems: list[Problem]) -> list[UserError]:
    return [UserError.from_problem(p) for p in problems]
