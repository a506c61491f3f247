"""Appends of many asyncio tasks to one adapter, carried to the worker in batches.

One executor hop per append costs more CPU than the append's own SQL once many tasks
append at once (a queue hand-over, a wake-up of a worker thread, the result's trip
back through the loop's self-pipe, and the threads taking the GIL from each other):
on a CPU-bound machine the tasks then append slower than one thread does. So while a
batch is on the worker, the appends that arrive wait on the loop; the next hop carries
all of them, and the worker commits them in one group commit
(:func:`adk_lite.steps.append_rows_many`), each checked and undone alone. An append
that finds no batch running goes at once, as one hop of its own.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Optional

from ..executor import Executor


class AppendBatches:
    """Run ``run_batch(calls)`` on ``executor`` for the calls of many tasks, one batch
    at a time.

    Args:
        executor: the service's :class:`~adk_lite.executor.Executor`.
        run_batch: ``run_batch([args, ...])`` runs on a worker thread and returns
            ``[(result, None) or (None, error), ...]``, one per call, in order; a call
            it returns without error is committed.
        convert: maps a call's error to the one its caller gets (ADK's classes).
    """

    def __init__(self, executor: Executor, run_batch: Callable[[list], list],
                 convert: Callable[[BaseException], BaseException]) -> None:
        self._executor, self._run_batch, self._convert = executor, run_batch, convert
        self._busy = False  # a batch is on the worker (or about to be)
        self._waiting: list[tuple[tuple, asyncio.Future]] = []  # calls for the next batch
        self._drainer: Optional[asyncio.Task] = None

    async def run(self, *args: Any) -> Any:
        """Run one call (``args``) in the next batch and return its result.

        Raises:
            The call's own error (converted); ``ServiceClosedError`` after the executor
            is closed. A task cancelled while its call waits for a batch writes nothing;
            one cancelled while its batch runs may still be committed (as any hop).
        """
        if self._busy:
            future = asyncio.get_running_loop().create_future()
            self._waiting.append((args, future))
            return await future
        self._busy = True
        try:
            [(result, error)] = await self._executor.run(self._run_batch, [args])
        finally:
            self._next()
        if error is not None:
            raise self._convert(error)
        return result

    def _next(self) -> None:
        """After a batch: hand the calls that wait to a drain task, or go idle."""
        if self._waiting:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        else:
            self._busy = False

    async def _drain(self) -> None:
        """Run the waiting calls batch after batch until none waits. After each batch,
        one turn of the loop first lets the tasks it woke queue their next calls."""
        batch: list[tuple[tuple, asyncio.Future]] = []
        try:
            while self._waiting:
                batch = [call for call in self._waiting if not call[1].cancelled()]
                self._waiting = []
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
            for _, future in batch + self._waiting:
                if not future.done():
                    if isinstance(e, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(e)
            self._waiting = []
            if not isinstance(e, Exception):
                raise
        finally:
            self._busy = False
            self._drainer = None
