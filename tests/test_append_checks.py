"""What an append refuses, however it reaches the database: on PostgreSQL an append
whose Session object names its revision is sent in one round trip, a guard failing
the transaction on the server when the checked append would refuse it
(:mod:`adk_lite.one_trip`); the checked append then runs again for the precise answer.
Every refusal leaves nothing written and the connection fit for the next call."""

from __future__ import annotations

import pytest

from adk_lite import (AlreadyExistsError, DatabaseSessionService, Event, EventActions, SessionNotFoundError,
                      StaleSessionError)
from tests.conftest import on_postgres
from tests.workers import run_threads


def _event(i, **kw):
    return Event(id=f"e{i}", author="user", content={"role": "user", "parts": [{"text": f"word{i}"}]},
                 actions=EventActions(state_delta={"k": i, "user:u": i}), **kw)


def _one_connection(target):
    """A service whose calls all share one pooled connection on PostgreSQL (a statement
    prepared on it and a refusal on it meet)."""
    return DatabaseSessionService(target + "?max_connections=1" if on_postgres(target) else target)


def test_every_refusal_is_precise_writes_nothing_and_the_next_append_works(target):
    with _one_connection(target) as svc:
        s = svc.create_session("app", "u", session_id="s")
        for i in range(8):  # past psycopg's prepare threshold: the statements are prepared
            svc.append_event(s, _event(i))
        for round_no in range(3):
            stale = svc.get_session("app", "u", "s")
            svc.append_event(s, _event(100 + round_no))
            with pytest.raises(StaleSessionError, match="another writer"):
                svc.append_event(stale, _event(200 + round_no))
            with pytest.raises(AlreadyExistsError):  # one stored id, one new, in one batch
                svc.append_events(svc.get_session("app", "u", "s"), [_event(0), _event(300 + round_no)])
            fresh = svc.get_session("app", "u", "s")
            assert svc.append_event(fresh, _event(100 + round_no)).id == f"e{100 + round_no}"  # a retry: a no-op
            assert svc.get_session("app", "u", "s").last_update_time == fresh.last_update_time
        svc.delete_session("app", "u", "s")
        with pytest.raises((SessionNotFoundError, StaleSessionError)):
            svc.append_event(s, _event(400))
        svc.create_session("app", "u", session_id="s")  # the same id again: another incarnation
        with pytest.raises(StaleSessionError, match="deleted and created again"):
            svc.append_event(s, _event(401))
        again = svc.get_session("app", "u", "s")
        assert again.events == [] and again.state == {"user:u": 102}
        svc.append_event(again, _event(500))
        got = svc.get_session("app", "u", "s")
        assert [e.id for e in got.events] == ["e500"] and got.state == {"k": 500, "user:u": 500}
        assert [h.event_id for h in svc.search_events("word200")] == []  # nothing refused was indexed
        assert [h.event_id for h in svc.search_events("word500")] == ["e500"]


def test_racing_appends_to_one_session_lose_nothing(target):
    with DatabaseSessionService(target) as svc:
        svc.create_session("app", "u", session_id="s")

        def work(t):
            for n in range(25):
                session = svc.get_session("app", "u", "s")
                while True:
                    try:
                        svc.append_event(session, Event(id=f"t{t}-{n}", author="x", actions=EventActions(
                            state_delta={f"k{t}": n, "app:last": t})))
                        break
                    except StaleSessionError:
                        session = svc.get_session("app", "u", "s")
        assert run_threads(work, 4) == []
        got = svc.get_session("app", "u", "s")
        assert sorted(e.id for e in got.events) == sorted(f"t{t}-{n}" for t in range(4) for n in range(25))
        assert {k: v for k, v in got.state.items() if k.startswith("k")} == {f"k{t}": 24 for t in range(4)}
