"""The asyncio wrapper: same methods as coroutines, one executor hop, fds closed
(the calls on both backends; the file descriptors are SQLite's)."""

from __future__ import annotations

import asyncio
from asyncio import run
import inspect
import threading

import pytest

from adk_lite import (AsyncDatabaseSessionService, DatabaseSessionService, Event, EventActions, ServiceClosedError,
                      StaleSessionError)
from tests.workers import open_fds_on


def test_every_sync_method_has_a_coroutine_twin():
    public = {n for n, v in vars(DatabaseSessionService).items() if callable(v) and not n.startswith("_")}
    for name in public - {"close"}:
        method = getattr(AsyncDatabaseSessionService, name)
        assert inspect.iscoroutinefunction(method), name
        assert inspect.signature(method) == inspect.signature(getattr(DatabaseSessionService, name))
        assert inspect.getdoc(getattr(DatabaseSessionService, name)) in method.__doc__


def test_calls_run_off_the_event_loop_thread(target):
    async def main():
        async with AsyncDatabaseSessionService(target) as svc:
            loop_thread = threading.get_ident()
            seen = await svc.run(threading.get_ident)
            s = await svc.create_session("app", "u", state={"user:x": 1}, session_id="s")
            await svc.append_event(s, Event(actions=EventActions(state_delta={"k": 1})))
            back = await svc.get_session("app", "u", "s")
            return loop_thread, seen, back, s

    loop_thread, seen, back, s = run(main())
    assert seen != loop_thread
    assert back == s and back.state == {"user:x": 1, "k": 1}


def test_fifty_tasks_on_ten_shared_sessions(target):
    async def main():
        async with AsyncDatabaseSessionService(target) as svc:
            sessions = [await svc.create_session("app", f"u{i % 3}", session_id=f"s{i}") for i in range(10)]

            async def task(n):
                s = sessions[n % 10]
                for i in range(4):
                    await svc.append_event(s, Event(author=f"t{n}", actions=EventActions(state_delta={f"t{n}": i})))

            await asyncio.gather(*(task(n) for n in range(50)))
            counts = [await svc.get_event_count(s.app_name, s.user_id, s.id) for s in sessions]
            return sessions, counts

    sessions, counts = run(main())
    assert counts == [20] * 10
    assert all(s.revision == 20 and len(s.events) == 20 for s in sessions)


def test_stale_copy_still_raises(target):
    async def main():
        async with AsyncDatabaseSessionService(target) as svc:
            s = await svc.create_session("app", "u", session_id="s")
            copy = await svc.get_session("app", "u", "s")
            await svc.append_event(s, Event())
            with pytest.raises(StaleSessionError):
                await svc.append_event(copy, Event())

    run(main())


def test_aclose_leaves_no_file_descriptor(tmp_path):
    path = str(tmp_path / "fd.db")

    async def main():
        svc = AsyncDatabaseSessionService(path, max_workers=4)
        s = await svc.create_session("app", "u", session_id="s")
        await asyncio.gather(*(svc.get_session("app", "u", "s") for _ in range(16)),
                             *(svc.append_event(s, Event()) for _ in range(8)))
        opened = open_fds_on(path)
        await svc.aclose()
        return opened

    opened = run(main())
    assert opened, "the test should have seen the database open"
    assert open_fds_on(path) == []


def test_calls_after_aclose_raise_service_closed(target):
    async def main():
        svc = AsyncDatabaseSessionService(target)
        await svc.aclose()
        with pytest.raises(ServiceClosedError, match="closed"):
            await svc.list_sessions()

    run(main())


def test_max_workers_is_checked(db_path):
    with pytest.raises(ValueError, match="max_workers"):
        AsyncDatabaseSessionService(db_path, max_workers=0)
