"""The tasks one piece of work (a request) creates, told apart from the loop's others: the
server's background work (webhook sender, import runner) shares the loop in the suite, and
its tasks (a connection's shielded close) may be pending when a response goes out."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# Set while the watched work runs; a task inherits its creator's context, so the factory sees
# whose task it makes.
_owner: ContextVar[object | None] = ContextVar("leadgraph_tests_task_owner", default=None)


class CreatedTasks:
    def __init__(self) -> None:
        self.created: list[asyncio.Task[Any]] = []

    @contextmanager
    def watching(self) -> Iterator[CreatedTasks]:
        """Records the tasks created from here (and from tasks created here, and so on) until
        the block ends."""
        loop = asyncio.get_running_loop()
        previous = loop.get_task_factory()
        me = object()
        token = _owner.set(me)

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            if previous is not None:
                task = previous(loop, coro, **kwargs)
            else:
                task = asyncio.Task(coro, loop=loop, **kwargs)
            if _owner.get() is me:
                self.created.append(task)
            return task

        loop.set_task_factory(factory)  # type: ignore[arg-type]
        try:
            yield self
        finally:
            loop.set_task_factory(previous)
            _owner.reset(token)

    def running(self) -> list[str]:
        """The recorded tasks not done yet."""
        return [repr(task) for task in self.created if not task.done()]
