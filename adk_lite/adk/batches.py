"""Appends of many asyncio tasks to one adapter, carried to the worker in batches.

One executor hop per append costs more CPU than the append's own SQL once many tasks
append at once (a queue hand-over, a wake-up of a worker thread, the result's trip
back through the loop's self-pipe, and the threads taking the GIL from each other):
on a CPU-bound machine the tasks then append slower than one thread does. So while a
batch is on the worker, the appends that arrive wait on the loop; the next hop carries
all of them, and the worker commits them in one group commit
(:func:`adk_lite.steps.append_rows_many`), each checked and undone alone. An append
that finds no batch running goes at once, as one hop of its own. Each event loop has
batches of its own (a service may be used from several loops, one after the other as
``asyncio.run`` does, or at once in several threads).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any, Callable, Optional

from ..executor import Executor


class _OnLoop:
    """One event loop's batches: whether one is on the worker, and the calls waiting."""

    __slots__ = ("busy", "waiting", "drainer")

    def __init__(self) -> None:
        self.busy = False  # a batch is on the worker (or about to be)
        self.waiting: list[tuple[tuple, asyncio.Future]] = []  # calls for the next batch
        self.drainer: Optional[asyncio.Task] = None


class AppendBatches:
    """Run the calls of many tasks on ``executor``, one batch at a time.

    Args:
        executor: the service's :class:`~adk_lite.executor.Executor`.
        run_one: ``run_one(*args)`` runs one call that found no batch running, on a
            worker thread, and returns its result or raises its error.
        run_batch: ``run_batch([args, ...])`` runs on a worker thread and returns
            ``[(result, None) or (None, error), ...]``, one per call, in order; a call
            it returns without error is committed.
        convert: maps a call's error to the one its caller gets (ADK's classes).
    """

    def __init__(self, executor: Executor, run_one: Callable[..., Any], run_batch: Callable[[list], list],
                 convert: Callable[[BaseException], BaseException]) -> None:
        self._executor, self._run_one, self._run_batch, self._convert = executor, run_one, run_batch, convert
        self._loops: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _OnLoop]" = weakref.WeakKeyDictionary()
        self._loops_guard = threading.Lock()

    def on(self, loop: asyncio.AbstractEventLoop) -> _OnLoop:
        """The batches of ``loop`` (made at its first call)."""
        on = self._loops.get(loop)
        if on is None:
            with self._loops_guard:
                on = self._loops.setdefault(loop, _OnLoop())
        return on

    async def run(self, *args: Any) -> Any:
        """Run one call (``args``) in the next batch and return its result.

        Raises:
            The call's own error (converted); ``ServiceClosedError`` after the executor
            is closed. A task cancelled while its call waits for a batch writes nothing;
            one cancelled while its batch runs may still be committed (as any hop).
        """
        loop = asyncio.get_running_loop()
        on = self.on(loop)
        if on.busy:
            future = loop.create_future()
            on.waiting.append((args, future))
            return await future
        on.busy = True
        try:
            return await self._executor.run(self._run_one, *args)
        except Exception as e:
            converted = self._convert(e)
            if converted is e:
                raise
            raise converted from e
        finally:
            if on.waiting:  # they came while this call was on the worker
                on.drainer = loop.create_task(self._drain(on))
            else:
                on.busy = False

    async def _drain(self, on: _OnLoop) -> None:
        """Run the waiting calls batch after batch until none waits. After each batch,
        one turn of the loop first lets the tasks it woke queue their next calls."""
        batch: list[tuple[tuple, asyncio.Future]] = []
        try:
            while on.waiting:
                batch = [call for call in on.waiting if not call[1].cancelled()]
                on.waiting = []
                if batch:
                    outcomes = await self._executor.run(self._run_batch, [args for args, _ in batch])
                    for (_, future), (result, error) in zip(batch, outcomes):
                        if not future.cancelled():
                            if error is None:
                                future.set_result(result)
                            else:
                                future.set_exception(self._convert(error))
                    batch = []
                await asyncio.sleep(0)
        except BaseException as e:  # the executor is closed, or the loop cancels this task at shutdown
            for _, future in batch + on.waiting:
                if not future.done():
                    if isinstance(e, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(e)
            on.waiting = []
            if not isinstance(e, Exception):
                raise
        finally:
            on.busy = False
            on.drainer = None
