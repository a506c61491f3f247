"""The asyncio wrapper: :class:`AsyncDatabaseSessionService`.

Every method is a coroutine twin of :class:`~adk_lite.service.DatabaseSessionService`'s
method of the same name and arguments. It runs the whole sync call on a thread
executor (one hop per call, not per query), so the event loop never blocks on
SQLite.

The hop is a small thread pool of its own rather than ``loop.run_in_executor``: a
call goes to the most recently idle worker's ``queue.SimpleQueue`` and its result
comes back with ``loop.call_soon_threadsafe``. That skips ``concurrent.futures``'
locks, work items and future chaining, and keeps sequential calls on one thread,
whose SQLite connection then keeps its page cache (with any idle thread taking
the call, each write made the next thread's connection re-read the pages it
changed). Together about a third of an ``append_event``'s wall time (see
``python -m bench``).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import os
import queue
import threading
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
        max_workers: worker threads, started as calls need them (default 4).
            Writes to one file are serialized by SQLite anyway; more threads
            help concurrent reads.

    Attributes:
        sync: the underlying :class:`DatabaseSessionService`.

    Use ``async with`` or call :meth:`aclose`: it stops the worker threads and
    closes every connection they opened.
    """

    def __init__(self, db: Union[str, os.PathLike, None] = None, *, synchronous: str = "normal",
                 busy_timeout: float = 5.0, max_workers: Optional[int] = None) -> None:
        if max_workers is not None and (type(max_workers) is not int or max_workers < 1):
            raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}")
        self.sync = DatabaseSessionService(db, synchronous=synchronous, busy_timeout=busy_timeout)
        self._max_workers = max_workers or 4
        self._threads: list[threading.Thread] = []
        self._idle: list[queue.SimpleQueue] = []  # inboxes of idle workers, most recent last
        self._backlog: collections.deque = collections.deque()  # calls no worker could take yet
        self._lock = threading.Lock()
        self._closed = False

    @property
    def path(self) -> str:
        """The database file's path (``":memory:"`` in memory)."""
        return self.sync.path

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on this service's executor and await its result.

        For callers (such as the ADK adapter) that do several sync steps per call
        and want them in one executor hop. An exception ``fn`` raises is raised
        here.

        Raises:
            ServiceClosedError: after :meth:`aclose` / :meth:`close`.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._submit((loop, future, fn, args, kwargs))
        return await future

    def _submit(self, call: tuple) -> None:
        """Hand ``call`` to the most recently idle worker (its thread's connection
        has the freshest page cache), else to a new worker, else to the backlog."""
        with self._lock:
            if self._closed:
                raise ServiceClosedError(f"the service on {self.path} is closed")
            if self._idle:
                inbox = self._idle.pop()
            elif len(self._threads) < self._max_workers:
                inbox = queue.SimpleQueue()
                # daemon: ADK's web server never closes its session service, and an
                # idle worker must not keep the interpreter from exiting.
                thread = threading.Thread(target=self._work, args=(inbox,), daemon=True,
                                          name=f"adk_lite-{len(self._threads)}")
                self._threads.append(thread)
                thread.start()
            else:
                self._backlog.append(call)
                return
        inbox.put(call)

    def _work(self, inbox: queue.SimpleQueue) -> None:
        call = inbox.get()
        while call is not None:
            loop, future, fn, args, kwargs = call
            try:
                outcome = (fn(*args, **kwargs), None)
            except BaseException as e:  # handed to the awaiting coroutine
                outcome = (None, e)
            with self._lock:  # idle again before the caller hears back, so its next call comes here
                call = self._backlog.popleft() if self._backlog else None
                if call is None:
                    self._idle.append(inbox)
            try:
                loop.call_soon_threadsafe(_settle, future, *outcome)
            except RuntimeError:  # the loop was closed meanwhile: nobody awaits
                pass
            if call is None:
                call = inbox.get()

    def _stop_workers(self) -> None:
        """Wait for running and queued calls, then end every worker."""
        with self._lock:
            self._closed = True
            threads = self._threads
        for thread in threads:
            while thread.is_alive():
                with self._lock:
                    idle, self._idle = self._idle, []
                for inbox in idle:
                    inbox.put(None)
                thread.join(0.01)
        with self._lock:
            self._threads = []

    async def aclose(self) -> None:
        """Stop the workers (waiting for running calls) and close every connection.

        After it, no file descriptor on the database stays open; later calls raise
        ``ServiceClosedError``. Closing twice is harmless.
        """
        await asyncio.get_running_loop().run_in_executor(None, self._stop_workers)
        self.sync.close()

    def close(self) -> None:
        """Synchronous :meth:`aclose`, for code outside an event loop."""
        self._stop_workers()
        self.sync.close()

    async def __aenter__(self) -> "AsyncDatabaseSessionService":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncDatabaseSessionService({self.path!r})"


def _settle(future: asyncio.Future, result: Any, error: Optional[BaseException]) -> None:
    """Complete ``future`` on its loop's thread (unless its awaiter was cancelled)."""
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


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
