"""The thread executor (the one hop per call) of the asyncio wrapper and the adapter."""

from __future__ import annotations

import asyncio
import threading

import pytest

from adk_lite import AsyncDatabaseSessionService, ServiceClosedError
from adk_lite.executor import Executor


def test_results_and_errors_come_back_and_workers_stop():
    def boom():
        raise KeyError("inside the worker")

    def wait_then_say_who(release):
        release.wait(10)
        return threading.current_thread()

    async def main():
        executor = Executor(max_workers=2, name="test")
        assert await executor.run(lambda a, b=0: a + b, 2, b=3) == 5
        with pytest.raises(KeyError, match="inside the worker"):
            await executor.run(boom)
        release = threading.Event()
        busy = [asyncio.ensure_future(executor.run(wait_then_say_who, release)) for _ in range(5)]
        await asyncio.sleep(0.05)
        release.set()
        threads = set(await asyncio.gather(*busy))
        assert 1 <= len(threads) <= 2  # grown on demand, never past max_workers
        executor.close()
        assert not any(t.is_alive() for t in threads)
        with pytest.raises(ServiceClosedError, match="the service on test is closed"):
            await executor.run(int)
        executor.close()  # twice is harmless

    asyncio.run(main())


@pytest.mark.parametrize("bad", [0, -1, 1.5, "4", True])
def test_max_workers_must_be_a_positive_int(bad, tmp_path):
    with pytest.raises(ValueError, match="max_workers must be an int >= 1"):
        AsyncDatabaseSessionService(str(tmp_path / "never.db"), max_workers=bad)
    assert not (tmp_path / "never.db").exists()  # refused before the file is made


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


def test_an_idle_worker_keeps_no_result_argument_or_error_alive():
    """A worker waiting for its next call holds nothing of its last one: the result
    (for the adapter, a whole session), the arguments, or an exception and its traceback."""
    import weakref

    class Big:
        pass

    class Failure(Exception):
        pass

    def fail(arg):
        raise Failure(arg)

    async def gone(ref):  # the worker drops its references right after handing the outcome over
        for _ in range(500):
            await asyncio.sleep(0.01)  # (the loop's handle that resumed this task holds the future meanwhile)
            if ref() is None:
                return True
        return False

    async def main():
        executor = Executor(max_workers=1)
        result = await executor.run(Big)
        ref = weakref.ref(result)
        del result
        assert await gone(ref), "the idle worker keeps its last result alive"
        arg = Big()
        ref = weakref.ref(arg)
        await executor.run(id, arg)
        del arg
        assert await gone(ref), "the idle worker keeps its last argument alive"
        arg = Big()
        ref = weakref.ref(arg)
        with pytest.raises(Failure) as caught:
            await executor.run(fail, arg)
        del arg, caught
        assert await gone(ref), "the idle worker keeps its last exception alive"
        executor.close()

    asyncio.run(main())
