"""Concurrent writers on one database: processes, threads sharing one service, tasks
on the async wrapper, a reader that must never see half an append, and stale copies
of one session, on both backends; and, SQLite's alone, a writer that holds the file's
lock past the busy timeout, opens while others checkpoint, and a second open of the
file in one process."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor

import pytest

from adk_lite import (
    AsyncDatabaseSessionService,
    DatabaseLockedError,
    DatabaseSessionService,
    Event,
    EventActions,
    StaleSessionError,
)
from adk_lite.schema import SCHEMA_VERSION
from adk_lite.sqlite import inspect_file
from tests.conftest import pooled
from tests.workers import UPDATE_EVERY, Lines, check_consistent, racer, start

WRITERS, APPENDS = 4, 500
TIMEOUT = 120  # seconds any child may take before the test fails


def _finish(proc, timeout=TIMEOUT):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(), err.decode()


def test_four_processes_and_a_reader(target, tmp_path):
    path = pooled(target, 2)  # each child calls from one thread
    stop = tmp_path / "stop"
    DatabaseSessionService(path).close()
    reader = start("reader", path, stop, APPENDS)
    writers = [start("writer", path, i, APPENDS) for i in range(WRITERS)]
    try:
        finished = [_finish(w) for w in writers]
    finally:
        stop.touch()
        reader_rc, reader_out, reader_err = _finish(reader)
    for index, (rc, out, err) in enumerate(finished):
        assert (rc, err) == (0, ""), f"writer {index}: {err[-2000:]}"
        assert "locked" not in out + err
    updates = APPENDS // UPDATE_EVERY
    with DatabaseSessionService(path) as svc:
        stats = svc.get_stats()
        assert (stats["sessions"], stats["events"]) == (WRITERS, WRITERS * (APPENDS + updates))
        app_state = svc.get_app_state("app")
        for i in range(WRITERS):
            session = svc.get_session("app", f"user{i % 2}", f"w{i}")
            assert check_consistent(session, session.events) is None
            assert (session.state["count"], session.state["updates"]) == (APPENDS, updates)
            texts = [e.content["parts"][0]["text"] for e in session.events if e.author != "system"]
            assert texts == [f"w{i}-{n}" for n in range(1, APPENDS + 1)]  # all 500, in order
            assert (app_state[f"count_w{i}"], app_state[f"updates_w{i}"]) == (APPENDS, updates)
        for user in (0, 1):  # the last writer of the shared user: key finished its 500
            assert svc.get_user_state("app", f"user{user}")["shared"] in {f"w{user}-{APPENDS}", f"w{user + 2}-{APPENDS}"}
    assert (reader_rc, reader_err) == (0, ""), reader_err[-2000:]
    summary = json.loads(reader_out)
    assert summary["errors"] == [] and summary["problems"] == [], summary
    assert summary["midway"] > 0  # it did read while the writers ran


def test_eight_threads_share_one_service(target):
    """Four threads on their own sessions (with update_keys), four appending to one
    shared Session object: no error, no StaleSessionError, nothing lost."""
    per_thread = 60
    with DatabaseSessionService(target) as svc:
        shared = svc.create_session("app", "u", session_id="shared")
        start_line = threading.Barrier(8)

        def own(i):
            session = svc.create_session("app", "u", state={"count": 0, "updates": 0}, session_id=f"t{i}")
            start_line.wait(timeout=30)
            for n in range(1, per_thread + 1):
                svc.append_event(session, Event(author="agent", actions=EventActions(
                    state_delta={"count": n, "user:last": i, f"app:t{i}": n})))
                if n % 20 == 0:
                    svc.update_keys("app", "u", f"t{i}", {"updates": n // 20})
                    session = svc.get_session("app", "u", f"t{i}", num_recent_events=0)

        def together(i):
            start_line.wait(timeout=30)
            for n in range(per_thread):
                svc.append_event(shared, Event(id=f"{i}-{n}", author=f"t{i}"))

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(own, i) for i in range(4)] + [pool.submit(together, i) for i in range(4, 8)]
            for f in futures:
                f.result(timeout=TIMEOUT)
        for i in range(4):
            session = svc.get_session("app", "u", f"t{i}")
            assert check_consistent(session, session.events) is None
            assert session.state["count"] == per_thread
        stored = svc.get_session("app", "u", "shared")
        assert sorted(e.id for e in stored.events) == sorted(f"{i}-{n}" for i in range(4, 8) for n in range(per_thread))
        assert stored.revision == shared.revision == 4 * per_thread
        for i in range(4, 8):  # each thread's events in its own order
            assert [e.id for e in stored.events if e.author == f"t{i}"] == [f"{i}-{n}" for n in range(per_thread)]
        assert svc.get_app_state("app") == {f"t{i}": per_thread for i in range(4)}


def test_fifty_tasks_on_the_async_wrapper(target):
    async def main():
        async with AsyncDatabaseSessionService(target) as svc:
            shared = await svc.create_session("app", "u", session_id="shared")

            async def task(i):
                if i < 40:
                    session = await svc.create_session("app", f"u{i % 5}", session_id=f"s{i}")
                    for n in range(5):
                        await svc.append_event(session, Event(author="agent", actions=EventActions(
                            state_delta={"n": n, f"user:last{i}": n, f"app:t{i}": n})))
                    await svc.update_keys("app", f"u{i % 5}", f"s{i}", {"n": None})
                else:
                    for n in range(5):
                        await svc.append_event(shared, Event(id=f"{i}-{n}", author="agent"))
                return i

            done = await asyncio.wait_for(asyncio.gather(*(task(i) for i in range(50))), TIMEOUT)
            assert done == list(range(50))
            stats = await svc.get_stats()
            assert (stats["sessions"], stats["events"]) == (41, 40 * 6 + 10 * 5)
            stored = await svc.get_session("app", "u", "shared")
            assert sorted(e.id for e in stored.events) == sorted(f"{i}-{n}" for i in range(40, 50) for n in range(5))
            for i in range(40):
                session = await svc.get_session("app", f"u{i % 5}", f"s{i}")
                assert session.state == {f"user:last{j}": 4 for j in range(i % 5, 40, 5)} | {
                    f"app:t{j}": 4 for j in range(40)}
                assert session.revision == 6
    asyncio.run(main())


def test_two_processes_one_append_wins_per_revision(target):
    path = pooled(target, 2)
    rounds = 15
    with DatabaseSessionService(path) as svc:
        svc.create_session("app", "u", session_id="race")
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=racer, args=(path, name, rounds, barrier, results)) for name in ("a", "b")]
    for p in procs:
        p.start()
    try:
        outcomes = dict(results.get(timeout=TIMEOUT) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=TIMEOUT)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0, 0]
    for r in range(rounds):  # per round: one won straight away, the other was stale, then won on retry
        assert sorted(outcomes[name][r][1] for name in "ab") == ["stale-then-won", "won"]
    with DatabaseSessionService(path) as svc:
        session = svc.get_session("app", "u", "race")
    read_at = [e.actions.state_delta["read_at"] for e in session.events]
    assert read_at == list(range(2 * rounds))  # exactly one append per revision
    assert session.revision == 2 * rounds


def test_two_tasks_one_append_wins_per_revision(target):
    async def main():
        async with AsyncDatabaseSessionService(target) as svc:
            await svc.create_session("app", "u", session_id="race")
            for r in range(10):
                copies = [await svc.get_session("app", "u", "race") for _ in range(2)]
                results = await asyncio.gather(
                    *(svc.append_event(c, Event(id=f"{r}-{i}", author="agent")) for i, c in enumerate(copies)),
                    return_exceptions=True)
                stale = [x for x in results if isinstance(x, StaleSessionError)]
                won = [x for x in results if isinstance(x, Event)]
                assert (len(won), len(stale)) == (1, 1), results
                assert "reload it with get_session and retry" in str(stale[0])
                loser = copies[results.index(stale[0])]
                assert loser.revision == 2 * r  # the losing copy was left as it was
                fresh = await svc.get_session("app", "u", "race")
                await svc.append_event(fresh, Event(id=f"{r}-retry", author="agent"))
            session = await svc.get_session("app", "u", "race")
            assert session.revision == len(session.events) == 20
    asyncio.run(main())


def test_lock_held_past_busy_timeout(tmp_path):
    path = str(tmp_path / "locked.db")
    svc = DatabaseSessionService(path, busy_timeout=0.25)
    session = svc.create_session("app", "u", state={"k": 1}, session_id="s")
    svc.append_event(session, Event(author="user"))
    holder = start("holdlock", path, 60)
    lines = Lines(holder)
    try:
        assert lines.next(30) == "LOCKED"
        calls = [
            lambda: svc.append_event(session, Event(author="user", actions=EventActions(state_delta={"k": 2}))),
            lambda: svc.append_events(session, [Event(author="user") for _ in range(5)]),
            lambda: svc.update_keys("app", "u", "s", {"k": None}),
            lambda: svc.create_session("app", "u", session_id="new"),
            lambda: svc.delete_session("app", "u", "s"),
        ]
        for call in calls:
            with pytest.raises(DatabaseLockedError) as caught:
                call()
            message = str(caught.value)
            assert path in message and "busy_timeout=0.25 s" in message
            assert isinstance(caught.value, TimeoutError)
            # Readers are not blocked, and see neither our refused call nor the holder's.
            seen = svc.get_session("app", "u", "s")
            assert (seen.state, seen.revision, len(seen.events)) == ({"k": 1}, 1, 1)
        # Opening the file to read is not blocked by the writer either.
        with DatabaseSessionService(path, busy_timeout=0.25) as other:
            assert other.get_session("app", "u", "s").revision == 1
            assert other.get_stats()["events"] == 1
        holder.stdin.write(b"release\n")
        assert lines.next(30) == "RELEASED"
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdin.close()
        holder.stdout.close()
        holder.stderr.close()
    assert session.revision == 1 and session.state == {"k": 1}  # the object was not changed either
    svc.append_event(session, Event(author="user"))  # not stale: nothing was written meanwhile
    assert svc.get_session("app", "u", "s").revision == 2
    assert svc.list_sessions("app")[0].id == "s"
    svc.close()


def test_open_while_others_write_and_checkpoint(tmp_path):
    """Opening a file checks it read-only first; that check must not mistake a file
    that other processes are writing and checkpointing (so its main file grows
    page by page) for a truncated or corrupt one."""
    path = str(tmp_path / "busy.db")
    DatabaseSessionService(path).close()
    writers = [start("writer", path, i, 300) for i in range(2)]
    stop = threading.Event()

    def checkpoint_often():
        import sqlite3
        conn = sqlite3.connect(path, isolation_level=None)
        while not stop.is_set():
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        conn.close()

    checkpointer = threading.Thread(target=checkpoint_often)
    checkpointer.start()
    opened, refused = 0, []
    try:
        while any(w.poll() is None for w in writers) and opened < 20000:
            try:
                assert inspect_file(path) == SCHEMA_VERSION  # the read-only check every open starts with
                if opened % 100 == 0:
                    with DatabaseSessionService(path) as svc:
                        svc.get_stats()
                opened += 1
            except Exception:  # noqa: BLE001 - every refusal is a failure, reported below
                refused.append(traceback.format_exc())
    finally:
        stop.set()
        checkpointer.join(timeout=TIMEOUT)
        finished = [_finish(w) for w in writers]
    assert [rc for rc, _, _ in finished] == [0, 0], [err[-2000:] for _, _, err in finished]
    assert refused == [], "\n".join(refused[:3])
    assert opened > 0, opened


def test_a_second_open_in_one_process_keeps_the_first_ones_locks(tmp_path):
    """Opening the same file again in a process that has it open must not drop that
    process's POSIX locks (closing any descriptor on a file drops them all): else the
    next process to close takes itself for the last user, deletes the live WAL, and
    writes acknowledged meanwhile are lost."""
    path = str(tmp_path / "twice.db")
    first = DatabaseSessionService(path)
    session = first.create_session("app", "u", session_id="first")
    first.append_event(session, Event(author="user"))
    DatabaseSessionService(path).close()  # a second service on the same file, same process
    assert inspect_file(path) == SCHEMA_VERSION  # and the read-only check alone
    for count in (0, 5):  # one after the other: each closes as the last user it believes it is
        assert _finish(start("append", path, "other", count))[::2] == (0, "")
        assert os.path.exists(path + "-wal")  # still ours: the other process did not delete it
    for _ in range(5):
        first.append_event(session, Event(author="user"))
    first.close()
    with DatabaseSessionService(path) as svc:
        assert svc.get_event_count("app", "u", "first") == 6
        assert svc.get_event_count("app", "u", "other") == 5
