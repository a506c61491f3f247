"""The thread executor behind the asyncio wrapper and the ADK adapter.

Each call is one hop: a coroutine hands ``fn(*args)`` to a worker thread and
awaits its result. The pool is small and its own rather than
``loop.run_in_executor``: a call goes to the most recently idle worker's
``queue.SimpleQueue`` and its result comes back with ``loop.call_soon_threadsafe``.
That skips ``concurrent.futures``' locks, work items and future chaining, and keeps
sequential calls on one thread, whose SQLite connection then keeps its page cache.
Together about a third of an adapter ``append_event``'s wall time (see
``python -m bench``).
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
from typing import Any, Callable, Optional, TypeVar

from .errors import ServiceClosedError

T = TypeVar("T")


class Executor:
    """Worker threads, started as calls need them, that run sync calls for coroutines.

    Args:
        max_workers: the most threads (default 4). Writes to one file are
            serialized by SQLite anyway; more threads help concurrent reads.
        name: what the service is on (a path), for messages; the attribute
            ``name`` may be set later.

    Raises:
        ValueError: ``max_workers`` is not an int >= 1.
    """

    def __init__(self, max_workers: Optional[int] = None, name: str = "") -> None:
        if max_workers is not None and (type(max_workers) is not int or max_workers < 1):
            raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}")
        self.name = name
        self._max_workers = max_workers or 4
        self._threads: list[threading.Thread] = []
        self._idle: list[queue.SimpleQueue] = []  # inboxes of idle workers, most recent last
        self._backlog: collections.deque = collections.deque()  # calls no worker could take yet
        self._lock = threading.Lock()
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on a worker thread and await its result; an
        exception ``fn`` raises is raised here.

        Raises:
            ServiceClosedError: after :meth:`close`.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._submit((loop, future, fn, args, kwargs))
        try:
            return await future
        finally:  # an error's traceback holds this frame: without this, a cycle keeps the future alive
            del future

    def _submit(self, call: tuple) -> None:
        """Hand ``call`` to the most recently idle worker (sequential calls stay on
        one warm thread), else to a new worker, else to the backlog."""
        with self._lock:
            if self._closed:
                raise ServiceClosedError(f"the service on {self.name} is closed")
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
            # Drop this call's references before waiting for the next one: an idle
            # worker must not keep the last result (a whole session), its arguments
            # or its exception alive.
            loop = future = fn = args = kwargs = outcome = None
            if call is None:
                call = inbox.get()

    def close(self) -> None:
        """Refuse new calls, wait for running and queued ones, then end every worker.
        Closing twice is harmless."""
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


def _settle(future: asyncio.Future, result: Any, error: Optional[BaseException]) -> None:
    """Complete ``future`` on its loop's thread (unless its awaiter was cancelled)."""
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
