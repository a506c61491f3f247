"""The sync API: sessions, events, scoped state, stale writers, stats, vacuum."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time

import pytest

from adk_lite import (
    SCHEMA_VERSION,
    AlreadyExistsError,
    DatabaseSessionService,
    Event,
    EventActions,
    ServiceClosedError,
    Session,
    SessionNotFoundError,
    StaleSessionError,
)
from tests.workers import open_fds_on, run_threads


@pytest.fixture
def svc(svc_any):
    """The contract runs on both backends (see tests/conftest.py)."""
    return svc_any


def ev(text="hi", author="user", ts=None, **delta):
    return Event(author=author, invocation_id="inv", timestamp=time.time() if ts is None else ts,
                 content={"role": "user", "parts": [{"text": text}]}, actions=EventActions(state_delta=delta))


def stored_rows(svc, table):
    conn = svc.store.db.peewee.connection()
    return conn.execute(f"SELECT * FROM {table}").fetchall()


# -- create_session ---------------------------------------------------------
def test_create_session_scopes_initial_state(svc):
    s = svc.create_session("app", "alice", state={"k": 1, "user:u": 2, "app:a": 3, "temp:t": 4}, session_id="s1")
    assert s.state == {"k": 1, "user:u": 2, "app:a": 3}
    assert (s.id, s.app_name, s.user_id, s.revision, s.events) == ("s1", "app", "alice", 0, [])
    assert svc.get_user_state("app", "alice") == {"u": 2}
    assert svc.get_app_state("app") == {"a": 3}
    scopes = sorted((r[3], r[4]) for r in stored_rows(svc, "adk_state"))
    assert scopes == [("app", "a"), ("session", "k"), ("user", "u")]
    app_row = next(r for r in stored_rows(svc, "adk_state") if r[3] == "app")
    assert app_row[1:3] == ("", "")  # '' not NULL for ids that do not apply


def test_create_session_generates_and_strips_ids(svc):
    generated = svc.create_session("app", "u")
    blank = svc.create_session("app", "u", session_id="   ")
    padded = svc.create_session("app", "u", session_id="  abc \n")
    assert len(generated.id) == 36 and len(blank.id) == 36 and generated.id != blank.id
    assert padded.id == "abc"
    assert svc.get_session("app", "u", " abc ").id == "abc"


def test_create_session_existing_id_raises_and_keeps_state(svc):
    svc.create_session("app", "u", state={"k": 1}, session_id="s")
    with pytest.raises(AlreadyExistsError, match="'s' already exists"):
        svc.create_session("app", "u", state={"k": 2, "app:x": 1}, session_id="s")
    assert svc.get_session("app", "u", "s").state == {"k": 1}
    assert svc.get_app_state("app") == {}


@pytest.mark.parametrize("app, user, exc", [("", "u", ValueError), ("  ", "u", ValueError), ("a", "", ValueError),
                                            (None, "u", TypeError), ("a", 5, TypeError)])
def test_create_session_bad_names(svc, app, user, exc):
    with pytest.raises(exc, match="app_name|user_id"):
        svc.create_session(app, user)
    assert stored_rows(svc, "adk_sessions") == []


def test_merged_state_shared_across_sessions_and_users(svc):
    a1 = svc.create_session("app", "alice", session_id="1")
    svc.create_session("app", "alice", session_id="2")
    svc.create_session("app", "bob", session_id="3")
    svc.append_event(a1, ev(**{"user:lang": "pt", "app:v": 7, "own": True}))
    assert svc.get_session("app", "alice", "2").state == {"user:lang": "pt", "app:v": 7}
    assert svc.get_session("app", "bob", "3").state == {"app:v": 7}
    assert svc.get_session("other", "alice", "1") is None


# -- append_event -------------------------------------------------------------
def test_append_event_updates_session_and_round_trips(svc):
    s = svc.create_session("app", "u", session_id="s")
    e = ev("hello", ts=1700000000.25, k="v", n=None)
    e.branch, e.custom_metadata, e.extra = "root.child", {"x": [1, 2]}, {"turn_complete": True, "usage": {"t": 3}}
    e.actions.transfer_to_agent, e.actions.extra = "other", {"requested_auth_configs": {}}
    assert svc.append_event(s, e) is e
    assert s.events == [e] and s.last_update_time == 1700000000.25 and s.revision == 1
    assert s.state == {"k": "v", "n": None}
    back = svc.get_session("app", "u", "s")
    assert back.events == [e]
    assert back == s  # same ids, state, events, last_update_time and revision
    assert Event.from_dict(e.to_dict()) == e


def test_partial_event_is_not_stored(svc):
    s = svc.create_session("app", "u", session_id="s")
    e = ev(k=1)
    e.partial = True
    assert svc.append_event(s, e) is e
    assert s.events == [] and s.state == {} and s.revision == 0
    assert svc.get_event_count("app", "u", "s") == 0


def test_temp_keys_in_memory_only_and_trimmed_from_event(svc):
    s = svc.create_session("app", "u", session_id="s")
    e = ev(**{"temp:scratch": {"big": 1}, "k": 1})
    svc.append_event(s, e)
    assert s.state == {"temp:scratch": {"big": 1}, "k": 1}
    assert e.actions.state_delta == {"k": 1}
    back = svc.get_session("app", "u", "s")
    assert back.state == {"k": 1} and back.events[0].actions.state_delta == {"k": 1}


def test_temp_values_need_not_be_json(svc):
    s = svc.create_session("app", "u", session_id="s")
    marker = object()
    svc.append_event(s, ev(**{"temp:obj": marker}))
    assert s.state["temp:obj"] is marker


def test_none_is_stored_as_null_and_values_replace(svc):
    s = svc.create_session("app", "u", state={"d": {"a": 1, "b": 2}, "gone": 1}, session_id="s")
    svc.append_event(s, ev(d={"c": 3}, gone=None))
    assert svc.get_session("app", "u", "s").state == {"d": {"c": 3}, "gone": None}


def test_equal_timestamps_keep_append_order_and_filters(svc):
    s = svc.create_session("app", "u", session_id="s")
    events = [ev(str(i), ts=100.0 + (i // 3)) for i in range(9)]  # three events per timestamp
    for e in events:
        svc.append_event(s, e)
    ids = [e.id for e in events]
    got = lambda **kw: [e.id for e in svc.get_session("app", "u", "s", **kw).events]  # noqa: E731
    assert got() == ids
    assert got(num_recent_events=4) == ids[-4:]
    assert got(num_recent_events=0) == []
    assert got(num_recent_events=100) == ids
    assert got(after_timestamp=101.0) == ids[3:]  # inclusive
    assert got(after_timestamp=101, num_recent_events=2) == ids[-2:]
    assert got(after_timestamp=102.5) == []


def test_get_session_bad_config(svc):
    svc.create_session("app", "u", session_id="s")
    with pytest.raises(ValueError, match="num_recent_events"):
        svc.get_session("app", "u", "s", num_recent_events=-1)
    with pytest.raises(TypeError, match="after_timestamp"):
        svc.get_session("app", "u", "s", after_timestamp="yesterday")


def test_append_to_unknown_or_deleted_session(svc):
    ghost = Session(id="nope", app_name="app", user_id="u")
    with pytest.raises(SessionNotFoundError, match="nope"):
        svc.append_event(ghost, ev())
    s = svc.create_session("app", "u", session_id="s")
    svc.delete_session("app", "u", "s")
    with pytest.raises(SessionNotFoundError):
        svc.append_event(s, ev())
    assert stored_rows(svc, "adk_events") == []


def test_stale_copy_raises_and_writes_nothing(svc):
    s = svc.create_session("app", "u", session_id="s")
    copy = svc.get_session("app", "u", "s")
    svc.append_event(s, ev("first", k=1))
    with pytest.raises(StaleSessionError, match="revision 1.*revision 0"):
        svc.append_event(copy, ev("second", k=2))
    back = svc.get_session("app", "u", "s")
    assert [e.content["parts"][0]["text"] for e in back.events] == ["first"] and back.state == {"k": 1}
    assert copy.events == [] and copy.revision == 0
    svc.append_event(back, ev("retry"))  # a reloaded copy appends fine
    assert svc.get_event_count("app", "u", "s") == 2


def test_reappending_a_stored_event_is_a_no_op(svc):
    s = svc.create_session("app", "u", session_id="s")
    e = ev(k=1)
    svc.append_event(s, e)
    stale_copy = Session(id="s", app_name="app", user_id="u")  # revision 0, behind
    again = svc.append_event(stale_copy, dataclasses.replace(e))  # the same event, retried
    assert again == e
    assert svc.get_event_count("app", "u", "s") == 1
    assert svc.get_session("app", "u", "s").state == {"k": 1} and stale_copy.events == []


def test_append_events_batch_is_one_transaction(svc):
    s = svc.create_session("app", "u", session_id="s")
    batch = [ev(str(i), n=i) for i in range(5)]
    assert svc.append_events(s, batch) == batch
    assert s.revision == 1 and s.state == {"n": 4}
    assert [e.id for e in svc.get_session("app", "u", "s").events] == [e.id for e in batch]
    bad = [ev("ok"), ev("bad", v={1, 2})]
    with pytest.raises(TypeError, match=r"events\[1\].*'v'.*set"):
        svc.append_events(s, bad)
    assert svc.get_event_count("app", "u", "s") == 5 and s.revision == 1
    assert svc.append_events(s, batch) == batch  # a retried batch: stored copies, nothing written
    assert svc.get_event_count("app", "u", "s") == 5
    with pytest.raises(ValueError, match="twice"):
        svc.append_events(s, [batch[0], batch[0]])
    with pytest.raises(AlreadyExistsError, match="already stored"):
        svc.append_events(s, [batch[0], ev("new")])
    assert svc.get_event_count("app", "u", "s") == 5


def test_threads_sharing_one_session_object_never_go_stale(svc):
    s = svc.create_session("app", "u", session_id="s")

    def worker(n):
        for i in range(25):
            svc.append_event(s, ev(f"{n}-{i}", **{f"k{n}": i}))

    assert run_threads(worker, 4) == []
    assert svc.get_event_count("app", "u", "s") == 100 and s.revision == 100
    assert svc.get_session("app", "u", "s").state == {f"k{n}": 24 for n in range(4)}


# -- update_keys ----------------------------------------------------------------
def test_update_keys_none_deletes_in_its_scope_and_logs(svc):
    s = svc.create_session("app", "u", state={"k": 1, "keep": 2, "user:u": 3, "app:a": 4}, session_id="s")
    svc.update_keys("app", "u", "s", {"k": None, "user:u": None, "app:a": None, "new": [1], "temp:t": 1})
    back = svc.get_session("app", "u", "s")
    assert back.state == {"keep": 2, "new": [1]}
    assert svc.get_user_state("app", "u") == {} and svc.get_app_state("app") == {}
    logged = back.events[-1]
    assert logged.author == "system" and logged.custom_metadata == {"adk_lite": "update_keys"}
    assert logged.actions.state_delta == {"k": None, "user:u": None, "app:a": None, "new": [1]}
    assert back.revision == 1
    with pytest.raises(StaleSessionError):
        svc.append_event(s, ev())  # s was read before update_keys


def test_update_keys_unknown_session_and_bad_delta(svc):
    with pytest.raises(SessionNotFoundError):
        svc.update_keys("app", "u", "missing", {"k": 1})
    with pytest.raises(SessionNotFoundError):
        svc.update_keys("app", "u", "missing", {"temp:only": 1})
    svc.create_session("app", "u", session_id="s")
    with pytest.raises(ValueError, match="NaN|finite"):
        svc.update_keys("app", "u", "s", {"k": float("nan")})
    with pytest.raises(TypeError, match="delta must be a dict"):
        svc.update_keys("app", "u", "s", [("k", 1)])
    assert svc.get_event_count("app", "u", "s") == 0


# -- list / delete / counts ---------------------------------------------------
def test_list_sessions_filters_order_and_no_events(svc):
    for i, (app, user) in enumerate([("a", "x"), ("a", "y"), ("b", "x"), ("a", "x")]):
        s = svc.create_session(app, user, session_id=f"s{i}", state={"i": i})
        svc.append_event(s, ev(ts=1000.0 - i))  # later sessions get older update times
    assert [s.id for s in svc.list_sessions("a")] == ["s3", "s1", "s0"]
    assert [s.id for s in svc.list_sessions("a", "x")] == ["s3", "s0"]
    assert [s.id for s in svc.list_sessions(user_id="x")] == ["s3", "s2", "s0"]
    listed = svc.list_sessions()
    assert [s.id for s in listed] == ["s3", "s2", "s1", "s0"] and listed.next_cursor is None
    assert all(s.events == [] for s in listed) and listed[0].state == {"i": 3}
    assert svc.list_sessions("zzz") == []


def test_list_sessions_keyset_pages_are_stable(svc):
    for i in range(25):
        svc.create_session("app", f"u{i % 3}", session_id=f"s{i:02d}")
    seen, cursor = [], None
    while True:
        page = svc.list_sessions("app", limit=7, after=cursor)
        seen += [s.id for s in page]
        svc.create_session("app", "late", session_id=f"late{len(seen)}")  # inserts while paging
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    originals = [i for i in seen if i.startswith("s")]
    assert sorted(originals) == [f"s{i:02d}" for i in range(25)] and len(set(seen)) == len(seen)
    with pytest.raises(ValueError, match="cursor"):
        svc.list_sessions("app", after="garbage")
    with pytest.raises(ValueError, match="limit"):
        svc.list_sessions("app", limit=0)


def test_delete_session_keeps_app_and_user_state(svc):
    s = svc.create_session("app", "u", state={"k": 1, "user:u": 2, "app:a": 3}, session_id="s")
    svc.append_event(s, ev())
    svc.delete_session("app", "u", "s")
    assert svc.get_session("app", "u", "s") is None
    assert stored_rows(svc, "adk_events") == []
    assert sorted(r[3] for r in stored_rows(svc, "adk_state")) == ["app", "user"]
    svc.delete_session("app", "u", "s")  # unknown: a no-op
    assert svc.create_session("app", "u", session_id="s").state == {"user:u": 2, "app:a": 3}


@pytest.mark.sqlite_only
def test_event_count_and_stats(svc):
    s = svc.create_session("app", "u", session_id="s", state={"user:x": 1})
    svc.append_events(s, [ev() for _ in range(3)])
    svc.create_session("app2", "v")
    assert svc.get_event_count("app", "u", "s") == 3
    with pytest.raises(SessionNotFoundError):
        svc.get_event_count("app", "u", "missing")
    stats = svc.get_stats()
    assert (stats["sessions"], stats["events"], stats["state_keys"], stats["apps"], stats["users"]) == (2, 3, 1, 2, 2)
    assert stats["journal_mode"] == "wal" and stats["schema_version"] == SCHEMA_VERSION and stats["path"] == svc.path
    size = os.path.getsize(svc.path) + os.path.getsize(svc.path + "-wal")
    assert stats["total_bytes"] == size == stats["db_bytes"] + stats["wal_bytes"]
    assert stats["total_mib"] == round(size / 2**20, 3) and "db_size_mb" not in stats


@pytest.mark.sqlite_only
def test_vacuum_reclaims_space(svc):
    s = svc.create_session("app", "u", session_id="s")
    svc.append_events(s, [ev("x" * 2000) for _ in range(200)])
    svc.delete_session("app", "u", "s")
    result = svc.vacuum()
    assert result["bytes_after"] < result["bytes_before"]
    assert result["bytes_after"] == os.path.getsize(svc.path) + os.path.getsize(svc.path + "-wal")
    assert svc.get_stats()["free_pages"] == 0


# -- lifecycle ------------------------------------------------------------------
def test_close_closes_every_connection_of_every_thread(db_path):
    svc = DatabaseSessionService(db_path)
    svc.create_session("app", "u", session_id="s")
    threads = [threading.Thread(target=svc.get_session, args=("app", "u", "s")) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert open_fds_on(os.path.realpath(db_path))
    svc.close()
    assert open_fds_on(os.path.realpath(db_path)) == []
    with pytest.raises(ServiceClosedError):
        svc.get_session("app", "u", "s")
    svc.close()


def test_short_lived_threads_hold_a_bounded_number_of_descriptors(db_path):
    """A web server or a recycling pool makes threads without end: the service keeps
    connections for the calls that run at once, not for every thread it has seen."""
    with DatabaseSessionService(db_path) as svc:
        s = svc.create_session("app", "u", session_id="s")

        def one_call():
            svc.get_session("app", "u", "s")

        def run_threads(n):
            for _ in range(n):
                t = threading.Thread(target=one_call)
                t.start()
                t.join()
        run_threads(1)
        after_one = len(open_fds_on(os.path.realpath(db_path)))
        run_threads(300)
        assert len(open_fds_on(os.path.realpath(db_path))) == after_one
        svc.append_event(s, Event(author="user"))  # still works


def test_close_under_load_finishes_or_refuses_every_call(db_path):
    """close() while other threads are inside calls: each call either completes or
    raises ServiceClosedError (never a crash or a raw sqlite3 error), and every
    acknowledged append is in the file."""
    svc = DatabaseSessionService(db_path)
    acked, failures = {}, []
    started = threading.Barrier(9)

    def writer(n):
        s = svc.create_session("app", "u", session_id=f"s{n}")
        acked[n] = 0
        started.wait()
        while True:
            try:
                svc.append_event(s, Event(author="user"))
                acked[n] += 1
                svc.get_session("app", "u", s.id, num_recent_events=3)
                svc.list_sessions("app", limit=2)
            except ServiceClosedError:
                return
            except BaseException as e:  # anything else is the bug this test is for
                failures.append(e)
                return

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.2)
    svc.close()
    for t in threads:
        t.join(10)
    assert failures == [] and not any(t.is_alive() for t in threads)
    assert open_fds_on(os.path.realpath(db_path)) == []
    with DatabaseSessionService(db_path) as again:
        assert all(again.get_event_count("app", "u", f"s{n}") == acked[n] for n in range(8))
        assert sum(acked.values()) > 0


def test_two_services_on_two_files_never_share_data(tmp_path):
    one, two = DatabaseSessionService(str(tmp_path / "1.db")), DatabaseSessionService(str(tmp_path / "2.db"))
    errors = []

    def worker(svc, tag):
        try:
            for i in range(20):
                s = svc.create_session("app", "u", session_id=f"{tag}{i}", state={"app:owner": tag})
                svc.append_event(s, ev(tag))
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(svc, tag)) for svc, tag in
               [(one, "a"), (two, "b"), (one, "c"), (two, "d")]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {s.id[0] for s in one.list_sessions()} == {"a", "c"}
    assert {s.id[0] for s in two.list_sessions()} == {"b", "d"}
    one.close(), two.close()


def test_memory_database_is_shared_by_threads():
    with DatabaseSessionService(":memory:") as svc:
        s = svc.create_session("app", "u", session_id="s")
        t = threading.Thread(target=svc.append_event, args=(s, ev("from a thread")))
        t.start()
        t.join()
        assert svc.get_event_count("app", "u", "s") == 1
    with DatabaseSessionService("sqlite://") as fresh:
        assert fresh.list_sessions() == []


def test_sessions_survive_a_process_restart(db_path):
    script = (
        "import sys; from adk_lite import DatabaseSessionService, Event, EventActions\n"
        "svc = DatabaseSessionService(sys.argv[1])\n"
        "s = svc.create_session('app', 'u', state={'user:n': 1}, session_id='s')\n"
        "svc.append_event(s, Event(author='user', content={'parts': [{'text': 'hi'}]},"
        " actions=EventActions(state_delta={'k': 'v', 'app:c': 2})))\n"
    )
    subprocess.run([sys.executable, "-c", script, db_path], check=True, timeout=60)
    with DatabaseSessionService(db_path) as svc:
        s = svc.get_session("app", "u", "s")
        assert s.state == {"user:n": 1, "k": "v", "app:c": 2}
        assert s.events[0].content == {"parts": [{"text": "hi"}]} and s.revision == 1


def test_an_old_copy_cannot_write_into_a_session_created_again(svc):
    """Delete a session and create it again under the same id: a Session read before
    the delete is stale, even at the same revision (the incarnation differs)."""
    old = svc.create_session("app", "u", session_id="again")
    svc.delete_session("app", "u", "again")
    new = svc.create_session("app", "u", session_id="again")
    assert (old.revision, new.revision) == (0, 0) and old.incarnation != new.incarnation
    with pytest.raises(StaleSessionError, match="deleted and created again"):
        svc.append_event(old, ev("from the old copy"))
    svc.append_event(new, ev("from the new one"))
    got = svc.get_session("app", "u", "again")
    assert [e.content["parts"][0]["text"] for e in got.events] == ["from the new one"]
    assert [s.incarnation for s in svc.list_sessions("app", "u")] == [new.incarnation]
