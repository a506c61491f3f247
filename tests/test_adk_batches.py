"""The adapter's appends of many tasks at once (adk_lite.adk.batches): on SQLite the
appends that wait while a batch is on the worker go in one hop and one group commit,
and each is still checked, refused and undone alone, acknowledged only once committed,
and in the order the calls one after the other would give. On PostgreSQL each append
is its own hop; the outcomes are the same."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

pytest.importorskip("google.adk")

import google.adk.errors as adk_errors  # noqa: E402
from google.adk.errors.session_not_found_error import SessionNotFoundError as AdkSessionNotFoundError  # noqa: E402
from google.adk.events import Event, EventActions  # noqa: E402
from google.genai import types  # noqa: E402

import adk_lite  # noqa: E402
from adk_lite import steps  # noqa: E402
from adk_lite.adk import DatabaseSessionService  # noqa: E402

pytestmark = pytest.mark.adk

APP = "app"


def event(text: str, **delta) -> Event:
    return Event(author="user", invocation_id="inv", content=types.Content(role="user", parts=[types.Part(text=text)]),
                 actions=EventActions(state_delta=delta))


async def _queued(svc: DatabaseSessionService, calls: list) -> list:
    """Run ``calls`` (coroutine factories) at once while the writer is held, so that on
    SQLite the first goes to the worker and waits there and every other one waits for the
    next batch; then let them run. Returns their outcomes (results or errors)."""
    batches, store = svc._batches, svc._store
    with store._writer if batches is not None else contextlib.nullcontext():
        tasks = [asyncio.ensure_future(call()) for call in calls]
        if batches is not None:
            for _ in range(500):
                await asyncio.sleep(0.01)
                if len(batches.on(asyncio.get_running_loop()).waiting) == len(calls) - 1:
                    break
            assert len(batches.on(asyncio.get_running_loop()).waiting) == len(calls) - 1 and batches.on(asyncio.get_running_loop()).busy
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_a_batch_commits_once_and_each_append_fails_alone_as_one_after_the_other_would(target):
    """Good appends, a stale copy, a missing session, a bad event, one Session object
    appended twice and a second copy of an appended session, all waiting at once: the
    good ones are committed (two group commits on SQLite: a session's second call goes
    in a second round, after the first's revision), each bad one gets its own ADK error
    and leaves its event as it was, and a new service reads exactly what was acknowledged."""
    svc = DatabaseSessionService(target)

    async def scenario():
        good = [await svc.create_session(app_name=APP, user_id=f"u{i}", session_id="s") for i in range(3)]
        copy0 = await svc.get_session(app_name=APP, user_id="u0", session_id="s")
        stale = await svc.create_session(app_name=APP, user_id="u3", session_id="s")
        await svc.append_event(await svc.get_session(app_name=APP, user_id="u3", session_id="s"), event("ahead"))
        ghost = await svc.get_session(app_name=APP, user_id="u1", session_id="s")
        ghost.id = "ghost"
        shared = await svc.create_session(app_name=APP, user_id="u4", session_id="s")
        stale_event, bad_event = event("late", k="late", **{"temp:t": 1}), event("bad", **{"temp:t": 2})
        bad_event.timestamp = float("nan")
        before = svc._store.write_transactions
        calls = [lambda: svc.append_event(good[0], event("g0", k="g0", **{"temp:t": 0})),
                 lambda: svc.append_event(good[1], event("g1", k="g1")),
                 lambda: svc.append_event(stale, stale_event),
                 lambda: svc.append_event(shared, event("first", a=1)),
                 lambda: svc.append_event(ghost, event("ghost")),
                 lambda: svc.append_event(good[2], bad_event),
                 lambda: svc.append_event(shared, event("second", b=2)),
                 lambda: svc.append_event(copy0, event("copy"))]
        out = await _queued(svc, calls)
        assert [type(r).__name__ for r in out] == ["Event", "Event", "StaleSessionError", "Event",
                                                   "SessionNotFoundError", "ValueError", "Event", "StaleSessionError"]
        assert isinstance(out[2], adk_errors.StaleSessionError) and isinstance(out[2], adk_lite.StaleSessionError)
        assert isinstance(out[4], AdkSessionNotFoundError) and isinstance(out[7], adk_errors.StaleSessionError)
        if svc._batches is not None:  # the direct call, then the batch's two rounds
            assert svc._store.write_transactions == before + 3
        assert stale_event.actions.state_delta == {"k": "late", "temp:t": 1}  # failed: left as it was
        assert bad_event.actions.state_delta == {"temp:t": 2}
        assert good[0].state == {"k": "g0", "temp:t": 0} and good[0]._storage_update_marker.startswith("1:")
        assert [e.content.parts[0].text for e in shared.events] == ["first", "second"]
        assert shared.state == {"a": 1, "b": 2} and shared._storage_update_marker.startswith("2:")
        assert stale.events == [] and copy0.events == [] and good[2].events == []
    try:
        asyncio.run(scenario())
    finally:
        asyncio.run(svc.close())
    again = DatabaseSessionService(target)
    try:
        async def read(user):
            got = await again.get_session(app_name=APP, user_id=user, session_id="s")
            return [e.content.parts[0].text for e in got.events], got.state
        assert asyncio.run(read("u0")) == (["g0"], {"k": "g0"})
        assert asyncio.run(read("u1")) == (["g1"], {"k": "g1"})
        assert asyncio.run(read("u2")) == ([], {})
        assert asyncio.run(read("u3")) == (["ahead"], {})
        assert asyncio.run(read("u4")) == (["first", "second"], {"a": 1, "b": 2})
    finally:
        asyncio.run(again.close())


def test_an_append_cancelled_while_it_waits_for_a_batch_writes_nothing(target):
    """A task cancelled before its append left the loop writes nothing; the appends
    around it are committed and the service keeps serving."""
    svc = DatabaseSessionService(target)

    async def scenario():
        sessions = [await svc.create_session(app_name=APP, user_id=f"u{i}", session_id="s") for i in range(3)]
        batches = svc._batches
        if batches is None:
            pytest.skip("PostgreSQL: every append is a hop of its own; nothing waits on the loop")
        with svc._store._writer:
            tasks = [asyncio.ensure_future(svc.append_event(s, event(f"e{i}"))) for i, s in enumerate(sessions)]
            while len(batches.on(asyncio.get_running_loop()).waiting) < 2:
                await asyncio.sleep(0.01)
            tasks[1].cancel()
        out = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(out[0], Event) and isinstance(out[1], asyncio.CancelledError) and isinstance(out[2], Event)
        counts = [await svc.get_event_count(app_name=APP, user_id=f"u{i}", session_id="s") for i in range(3)]
        assert counts == [1, 0, 1] and sessions[1].events == []
        await svc.append_event(sessions[1], event("later"))
        assert await svc.get_event_count(app_name=APP, user_id="u1", session_id="s") == 1
        on = batches.on(asyncio.get_running_loop())
        assert not on.busy and not on.waiting
    try:
        asyncio.run(scenario())
    finally:
        asyncio.run(svc.close())


def test_append_rows_many_refuses_two_calls_of_one_session(svc_any):
    """Two calls of one session in one group would check the second against the
    session before the first's commit: refused, nothing written."""
    svc_any.create_session(APP, "u", session_id="s")
    key = (APP, "u", "s")
    call = (key, lambda: (0, None), [], [], 1.0, lambda revision: None)
    with pytest.raises(ValueError, match="one call per session"):
        steps.append_rows_many(svc_any.store, [call, call])
    assert svc_any.get_session(APP, "u", "s").revision == 0


def test_loops_in_two_threads_appending_through_one_service_each_get_their_own_results(target):
    """Each event loop has batches of its own: tasks of two loops (two threads) appending
    at once through one service all get their own results, and every event is stored."""
    import threading

    svc = DatabaseSessionService(target)
    errors: list[BaseException] = []

    def loop_thread(name: str) -> None:
        async def main():
            sessions = [await svc.create_session(app_name=APP, user_id=f"{name}{i}", session_id="s") for i in range(8)]

            async def task(session, i):
                for k in range(10):
                    got = await svc.append_event(session, event(f"{name}{i}-{k}", **{f"k{k}": k}))
                    assert got.content.parts[0].text == f"{name}{i}-{k}"
            await asyncio.gather(*(task(s, i) for i, s in enumerate(sessions)))
            for s in sessions:
                assert s._storage_update_marker.startswith("10:") and len(s.events) == 10
        try:
            asyncio.run(main())
        except BaseException as e:  # reported by the test below
            errors.append(e)

    threads = [threading.Thread(target=loop_thread, args=(name,)) for name in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []

        async def counts():
            return [await svc.get_event_count(app_name=APP, user_id=f"{n}{i}", session_id="s")
                    for n in "ab" for i in range(8)]
        assert asyncio.run(counts()) == [10] * 16
    finally:
        asyncio.run(svc.close())


def test_one_event_object_in_two_calls_of_a_batch_is_appended_as_one_after_the_other_would(target):
    """One Event object in two waiting calls (to two sessions, or twice to one Session
    object): the second call is planned after the first's outcome, as calls one after
    the other are, so a failed call gives its event back as it was (``temp:`` keys
    included) and a committed one trims it and applies the ``temp:`` keys to its own
    session. Planned up front, the second call captured the first's trimmed delta:
    a stale first call put the ``temp:`` keys back on an event the second had stored
    without them, and a second failing call took them off for good."""
    svc = DatabaseSessionService(target)

    async def scenario():
        if svc._batches is None:
            pytest.skip("PostgreSQL: every append is a hop of its own, run at once on worker threads")
        stale = await svc.create_session(app_name=APP, user_id="a", session_id="s")
        await svc.append_event(await svc.get_session(app_name=APP, user_id="a", session_id="s"), event("ahead"))
        fresh = await svc.create_session(app_name=APP, user_id="b", session_id="s")
        lead = await svc.create_session(app_name=APP, user_id="lead", session_id="s")
        shared = event("shared", k=1, **{"temp:t": 1})
        out = await _queued(svc, [lambda: svc.append_event(lead, event("lead")),
                                  lambda: svc.append_event(stale, shared),
                                  lambda: svc.append_event(fresh, shared)])
        assert [type(r).__name__ for r in out] == ["Event", "StaleSessionError", "Event"]
        assert shared.actions.state_delta == {"k": 1}  # stored without temp: keys, as returned
        assert fresh.state == {"k": 1, "temp:t": 1} and fresh.events == [shared]
        stored = await svc.get_session(app_name=APP, user_id="b", session_id="s")
        assert stored.events == [shared] and stored.state == {"k": 1}

        twice = event("twice", k=2, **{"temp:t": 2})
        out = await _queued(svc, [lambda: svc.append_event(lead, event("lead again")),
                                  lambda: svc.append_event(stale, twice),
                                  lambda: svc.append_event(stale, twice)])
        assert [type(r).__name__ for r in out] == ["Event", "StaleSessionError", "StaleSessionError"]
        assert twice.actions.state_delta == {"k": 2, "temp:t": 2}  # both failed: as it was given
        assert stale.events == [] and stale.state == {}
    try:
        asyncio.run(scenario())
    finally:
        asyncio.run(svc.close())


def test_a_session_object_whose_state_or_events_are_not_a_dict_and_list_is_refused_before_writing(target):
    """A Session object whose ``state`` or ``events`` was replaced by something that is
    no dict/list (None, a tuple, a str) is refused with a TypeError naming it, alone
    and in a batch, and nothing is written: the append used to commit the event, then
    fail updating the object (a bare AttributeError or TypeError), leaving the caller an
    error for a write that happened and a Session object stale from then on."""
    svc = DatabaseSessionService(target)

    async def scenario():
        lead = await svc.create_session(app_name=APP, user_id="lead", session_id="s")
        broken = []
        for n, (attr, value) in enumerate([("state", None), ("events", None), ("state", ()), ("events", ()),
                                           ("state", "text")]):
            session = await svc.create_session(app_name=APP, user_id=f"u{n}", session_id="s")
            setattr(session, attr, value)
            broken.append((session, event(f"e{n}", k=n, **{"temp:t": n})))
        alone = await asyncio.gather(*(svc.append_event(s, e) for s, e in broken[:1]), return_exceptions=True)
        together = await _queued(svc, [lambda: svc.append_event(lead, event("lead"))]
                                 + [lambda s=s, e=e: svc.append_event(s, e) for s, e in broken[1:]])
        out = alone + together[1:]
        assert all(isinstance(r, TypeError) and "session." in str(r) for r in out), out
        for n, (session, e) in enumerate(broken):
            assert e.actions.state_delta == {"k": n, "temp:t": n}
            assert await svc.get_event_count(app_name=APP, user_id=f"u{n}", session_id="s") == 0
    try:
        asyncio.run(scenario())
    finally:
        asyncio.run(svc.close())
