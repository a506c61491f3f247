"""The asyncio wrapper: :class:`AsyncDatabaseSessionService`.

Every method is a coroutine twin of :class:`~adk_lite.service.DatabaseSessionService`'s
method of the same name and arguments. It runs the whole sync call on a thread
executor (one hop per call, not per query), so the event loop never blocks on
SQLite.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional, TypeVar, Union

from .errors import ServiceClosedError
from .service import DatabaseSessionService

T = TypeVar("T")

_TWINS = ("create_session", "get_session", "list_sessions", "delete_session", "append_event", "append_events",
          "update_keys", "get_user_state", "get_app_state", "get_event_count", "get_stats", "vacuum")


class AsyncDatabaseSessionService:
    """Async twin of :class:`DatabaseSessionService`: same methods, as coroutines.

    Args:
        db, synchronous, busy_timeout: as :class:`DatabaseSessionService`.
        max_workers: threads of the executor (default 4). Writes to one file are
            serialized by SQLite anyway; more threads help concurrent reads.

    Attributes:
        sync: the underlying :class:`DatabaseSessionService`.

    Use ``async with`` or call :meth:`aclose`: it stops the executor and closes
    every connection its threads opened.
    """

    def __init__(self, db: Union[str, os.PathLike, None] = None, *, synchronous: str = "normal",
                 busy_timeout: float = 5.0, max_workers: Optional[int] = None) -> None:
        if max_workers is not None and (type(max_workers) is not int or max_workers < 1):
            raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}")
        self.sync = DatabaseSessionService(db, synchronous=synchronous, busy_timeout=busy_timeout)
        self._executor = ThreadPoolExecutor(max_workers=max_workers or 4, thread_name_prefix="adk_lite")
        self._closed = False

    @property
    def path(self) -> str:
        """The database file's path (``":memory:"`` in memory)."""
        return self.sync.path

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on this service's executor and await its result.

        For callers (such as the ADK adapter) that do several sync steps per call
        and want them in one executor hop.

        Raises:
            ServiceClosedError: after :meth:`aclose` / :meth:`close`.
        """
        if self._closed:
            raise ServiceClosedError(f"the service on {self.path} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def aclose(self) -> None:
        """Stop the executor (waiting for running calls) and close every connection.

        After it, no file descriptor on the database stays open.
        """
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)
        self.sync.close()

    def close(self) -> None:
        """Synchronous :meth:`aclose`, for code outside an event loop."""
        self._closed = True
        self._executor.shutdown(wait=True)
        self.sync.close()

    async def __aenter__(self) -> "AsyncDatabaseSessionService":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncDatabaseSessionService({self.path!r})"


def _twin(name: str) -> Callable:
    sync_method = getattr(DatabaseSessionService, name)

    async def method(self: AsyncDatabaseSessionService, *args: Any, **kwargs: Any) -> Any:
        return await self.run(getattr(self.sync, name), *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__signature__ = inspect.signature(sync_method)  # type: ignore[attr-defined]
    method.__doc__ = (f"Coroutine twin of :meth:`DatabaseSessionService.{name}`, run on the executor.\n\n"
                      + inspect.getdoc(sync_method))
    return method


for _name in _TWINS:
    setattr(AsyncDatabaseSessionService, _name, _twin(_name))
del _name
