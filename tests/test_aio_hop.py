"""The asyncio wrapper's own worker threads (the one hop per call)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from adk_lite import AsyncDatabaseSessionService, ServiceClosedError


def test_results_and_errors_come_back_and_workers_stop(tmp_path):
    def boom():
        raise KeyError("inside the worker")

    async def main():
        svc = AsyncDatabaseSessionService(str(tmp_path / "hop.db"), max_workers=2)
        assert await svc.run(lambda a, b=0: a + b, 2, b=3) == 5
        with pytest.raises(KeyError, match="inside the worker"):
            await svc.run(boom)
        release = threading.Event()
        busy = [asyncio.ensure_future(svc.run(release.wait, 10)) for _ in range(5)]
        await asyncio.sleep(0.05)
        assert 1 <= len(svc._threads) <= 2  # grown on demand, never past max_workers
        release.set()
        assert await asyncio.gather(*busy) == [True] * 5
        threads = list(svc._threads)
        await svc.aclose()
        assert not any(t.is_alive() for t in threads)
        with pytest.raises(ServiceClosedError):
            await svc.run(int)
        await svc.aclose()  # twice is harmless

    asyncio.run(main())


def test_a_cancelled_caller_does_not_break_the_worker(tmp_path):
    async def main():
        async with AsyncDatabaseSessionService(str(tmp_path / "hop.db"), max_workers=1) as svc:
            release = threading.Event()
            waiting = asyncio.ensure_future(svc.run(release.wait, 10))
            await asyncio.sleep(0.02)
            waiting.cancel()
            release.set()
            await asyncio.sleep(0.02)
            assert await svc.run(threading.get_ident) != threading.get_ident()

    asyncio.run(main())


def test_sequential_calls_stay_on_one_thread(tmp_path):
    """The most recently idle worker takes the next call, so one caller's calls reuse
    one thread and its connection's page cache."""
    async def main():
        async with AsyncDatabaseSessionService(str(tmp_path / "hop.db"), max_workers=4) as svc:
            return {await svc.run(threading.get_ident) for _ in range(50)}

    assert len(asyncio.run(main())) == 1
