"""The SQL layer: named rows, one transaction per call, a call gate around close()
(on both backends), and group commit (SQLite's alone: one writer at a time)."""

from __future__ import annotations

import threading

import pytest

from adk_lite import AlreadyExistsError, DatabaseSessionService, ServiceClosedError, StaleSessionError
from adk_lite.rows import EventRow, ListedSession, SessionRow


@pytest.fixture
def store(svc_any):
    return svc_any.store


def _row(event_id, ts=1.0):
    return EventRow(event_id, "inv", "user", None, ts, "{}")


def test_rows_have_names(store):
    incarnation, state = store.create_session("app", "u", "s", [("session", "k", "1")], 10.0)
    assert state == [("session", "k", "1")]
    revision, stored = store.append("app", "u", "s", (0, incarnation), [_row("e1")], [], [], 11.0)
    assert (revision, stored) == (1, {})
    row, _state, events = store.read_session("app", "u", "s", None, None)
    assert isinstance(row, SessionRow) and (row.created_at, row.updated_at, row.revision) == (10.0, 11.0, 1)
    assert row.incarnation == incarnation and events == [_row("e1")] and isinstance(events[0], EventRow)
    listed, _states = store.list_sessions("app", None, None, None)
    assert isinstance(listed[0], ListedSession) and listed[0].session_id == "s"


def test_a_retry_returns_the_stored_rows_and_writes_nothing(store):
    incarnation, _ = store.create_session("app", "u", "s", [], 1.0)
    store.append("app", "u", "s", (0, incarnation), [_row("e1"), _row("e2")], [], [], 2.0)
    revision, stored = store.append("app", "u", "s", (0, incarnation), [_row("e1"), _row("e2")], [], [], 3.0)
    assert revision is None and sorted(stored) == ["e1", "e2"]
    assert store.read_session("app", "u", "s", 0, None)[0].revision == 1
    with pytest.raises(AlreadyExistsError, match=r"\['e2'\] are already stored"):
        store.append("app", "u", "s", (1, incarnation), [_row("e3"), _row("e2")], [], [], 4.0)
    with pytest.raises(StaleSessionError, match="deleted and created again"):
        store.append("app", "u", "s", (1, "0" * 16), [_row("e4")], [], [], 4.0)


def test_close_waits_for_the_call_in_flight_then_refuses(target):
    svc = DatabaseSessionService(target)
    store = svc.store
    store.create_session("app", "u", "s", [], 1.0)
    inside, release, results = threading.Event(), threading.Event(), []

    def slow(conn):
        inside.set()
        release.wait(10)
        return conn.execute("SELECT COUNT(*) FROM adk_sessions").fetchone()[0]

    worker = threading.Thread(target=lambda: results.append(store.read(slow)))
    worker.start()
    inside.wait(10)
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # waiting for the call in flight
    with pytest.raises(ServiceClosedError):
        store.read(lambda conn: 1)  # new calls are refused meanwhile
    release.set()
    worker.join(10)
    closer.join(10)
    assert results == [1] and not closer.is_alive()


def test_a_group_commit_commits_together_and_a_bad_append_fails_alone(db_path):
    """Appends that wait while another write holds the writer are committed in one
    transaction; a stale one and one for a missing session fail alone, with their own
    errors, and write nothing."""
    from adk_lite import Event, SessionNotFoundError

    with DatabaseSessionService(db_path) as svc:
        store = svc.store
        good = [svc.create_session("app", f"u{i}", session_id="s") for i in range(3)]
        stale = svc.create_session("app", "u3", session_id="s")
        svc.append_event(svc.get_session("app", "u3", "s"), Event(author="user"))  # stale is now behind
        ghost = svc.get_session("app", "u1", "s")
        ghost.id = "ghost"
        before = store.write_transactions
        outcomes = {}

        def append(name, session):
            try:
                svc.append_event(session, Event(author="user", id=f"e-{name}"))
                outcomes[name] = "ok"
            except Exception as e:  # the outcome under test
                outcomes[name] = type(e)

        calls = [("g0", good[0]), ("g1", good[1]), ("stale", stale), ("g2", good[2]), ("ghost", ghost)]
        with store._writer:  # another write holds the writer: every append below waits in the queue
            threads = [threading.Thread(target=append, args=call) for call in calls]
            for t in threads:
                t.start()
            for _ in range(500):
                if len(store._queue) == len(calls):
                    break
                threading.Event().wait(0.01)
            assert len(store._queue) == len(calls)
        for t in threads:
            t.join(10)
        assert outcomes == {"g0": "ok", "g1": "ok", "g2": "ok", "stale": StaleSessionError,
                            "ghost": SessionNotFoundError}
        assert store.write_transactions == before + 1  # one commit for the whole group
        assert [svc.get_event_count("app", f"u{i}", "s") for i in range(4)] == [1, 1, 1, 1]
        assert [e.id for e in svc.get_session("app", "u0", "s").events] == ["e-g0"]
        assert good[1].revision == 1 and stale.revision == 0
