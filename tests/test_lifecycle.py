"""fork_session, get_lineage, delete_user and trim_compacted on the sync API, the async
twin and the CLI (adk_lite.lifecycle's rules), on both backends; the erasure from the
file and its WAL, and a fork of a schema-2 file, are SQLite's. The Runner-based checks
are in tests/test_adk_lifecycle.py."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from adk_lite import (SCHEMA_VERSION, AlreadyExistsError, AsyncDatabaseSessionService, DatabaseSessionService, Event,
                      EventActions, InvocationNotFoundError, SessionNotFoundError)
from adk_lite import cli, lifecycle
from tests.conftest import drop_later_tables, stored_contents

APP, USER = "app", "alice"


@pytest.fixture
def svc(svc_any):
    """On both backends (see tests/conftest.py)."""
    return svc_any


def ev(invocation, text="", **delta):
    return Event(invocation_id=invocation, content={"role": "user", "parts": [{"text": text}]} if text else None,
                 actions=EventActions(state_delta=delta))


def source_snapshot(svc, sid="s"):
    """Everything stored of a session, as the store reads it (rows, not objects)."""
    return svc.store.read_session(APP, USER, sid, None, None)


@pytest.fixture
def talk(svc):
    """A session with initial state, a stored null, an update_keys deletion, temp:,
    app: and user: keys, over four invocations."""
    s = svc.create_session(APP, USER, {"init": "created", "gone": 1, "app:a": 0, "temp:t": 1}, "s")
    svc.append_event(s, ev("i1", "one", x=1, mood=None, **{"user:u": 1, "temp:t": 2}))
    svc.update_keys(APP, USER, "s", {"gone": None, "x": 10})
    s = svc.get_session(APP, USER, "s")
    svc.append_event(s, ev("i2", "two", x=2, y="y2"))
    svc.append_event(s, ev("i3", "three", x=3, z=3, init="changed"))
    svc.append_event(s, ev("i4", "four", y=None))
    return s


def test_fork_before_an_invocation_has_the_state_at_the_cut(svc, talk):
    before = source_snapshot(svc)
    fork = svc.fork_session(APP, USER, "s", new_session_id="f", before_invocation_id="i3")
    assert [e.invocation_id for e in fork.events] == ["i1", "", "i2"]  # update_keys' event has no invocation
    assert [e.id for e in fork.events] == [e.id for e in talk.events[:3]]
    # initial state + deltas up to the cut: init kept, gone deleted, mood a stored null; never temp:
    assert fork.state == {"init": "created", "mood": None, "x": 2, "y": "y2", "app:a": 0, "user:u": 1}
    assert fork.revision == 0 and fork.incarnation != talk.incarnation
    assert source_snapshot(svc) == before  # the source is byte-for-byte as it was
    assert svc.get_lineage(APP, USER, "f") == {"session_id": "s", "before_invocation_id": "i3", "events": 3,
                                               "forked_at": fork.last_update_time, "state_exact": True}
    assert svc.get_lineage(APP, USER, "s") is None


def test_a_whole_fork_copies_every_event_and_the_state(svc, talk):
    fork = svc.fork_session(APP, USER, "s")
    source = svc.get_session(APP, USER, "s")
    assert [e.to_dict() for e in fork.events] == [e.to_dict() for e in source.events]
    assert fork.state == source.state and fork.id != "s"
    # the fork keeps the source's initial state: a fork of the fork is exact too
    again = svc.fork_session(APP, USER, fork.id, before_invocation_id="i2")
    assert again.state == svc.fork_session(APP, USER, "s", before_invocation_id="i2").state
    assert svc.fork_session(APP, USER, "s").state == source.state


def test_replay_of_every_event_is_the_stored_state(svc, talk):
    _row, _state, rows = source_snapshot(svc)
    initial = svc.store.read(lambda c: c.execute("SELECT initial_state FROM adk_sessions").fetchone()[0])
    stored = svc.store.read(lambda c: c.execute(
        "SELECT scope, state_key, state_value FROM adk_state WHERE scope = 'session'").fetchall())
    assert sorted(lifecycle.replay(initial, rows)) == sorted(stored)


def test_fork_errors_write_nothing(svc, talk):
    before = svc.get_stats()["sessions"]
    with pytest.raises(SessionNotFoundError):
        svc.fork_session(APP, USER, "nope")
    with pytest.raises(InvocationNotFoundError, match="'i9'"):
        svc.fork_session(APP, USER, "s", before_invocation_id="i9")
    with pytest.raises(LookupError):
        svc.fork_session(APP, USER, "s", before_invocation_id="i9")
    svc.create_session(APP, USER, session_id="taken")
    with pytest.raises(AlreadyExistsError):
        svc.fork_session(APP, USER, "s", new_session_id="taken")
    with pytest.raises(AlreadyExistsError):
        svc.fork_session(APP, USER, "s", new_session_id=" s ")
    with pytest.raises(TypeError, match="before_invocation_id"):
        svc.fork_session(APP, USER, "s", before_invocation_id=3)
    with pytest.raises(SessionNotFoundError):
        svc.get_lineage(APP, USER, "nope")
    assert svc.get_stats()["sessions"] == before + 1


def test_a_session_from_schema_2_forks_with_its_initial_state_unknown(db_path):
    with DatabaseSessionService(db_path) as svc:
        s = svc.create_session(APP, USER, {"init": 1}, "old")
        svc.append_event(s, ev("i1", k=1))
        svc.append_event(s, ev("i2", k=2))
    conn = sqlite3.connect(db_path)  # back to schema 2: no lineage columns (3), no search index (4)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    drop_later_tables(conn, 2)
    conn.executescript("DROP TABLE adk_events_fts; "
                       "ALTER TABLE adk_sessions DROP COLUMN initial_state; "
                       "ALTER TABLE adk_sessions DROP COLUMN forked_from; "
                       "UPDATE adk_metadata SET value = '2' WHERE key = 'schema_version';")
    conn.close()
    with DatabaseSessionService(db_path) as svc:
        assert svc.get_stats()["schema_version"] == SCHEMA_VERSION
        cut = svc.fork_session(APP, USER, "old", before_invocation_id="i2")
        assert cut.state == {"k": 1}  # replayed from {}: the initial "init" is not known
        assert svc.get_lineage(APP, USER, cut.id)["state_exact"] is False
        whole = svc.fork_session(APP, USER, "old")
        assert whole.state == {"init": 1, "k": 2} and svc.get_lineage(APP, USER, whole.id)["state_exact"] is True


# -- erase ---------------------------------------------------------------------------
SECRET = "zq-secret-7f3a91c"


def test_delete_user_erases_from_the_file_and_the_wal(db_path):
    with DatabaseSessionService(db_path) as svc:
        for sid in ("a", "b"):
            s = svc.create_session(APP, USER, {"note": SECRET + sid, "user:card": SECRET}, sid)
            svc.append_event(s, ev("i1", SECRET * 20, k=SECRET))
        other = svc.create_session(APP, "bob", {"app:shared": 1, "mine": "bob's"}, "c")
        svc.append_event(other, ev("i1", "hello", k=1))
        with open(db_path + "-wal", "rb") as fh:  # the WAL (never the main file while open)
            assert SECRET.encode() in fh.read()  # the test can fail: the text is there before
        assert svc.delete_user(APP, USER, dry_run=True) == {"sessions": 2, "events": 2, "state_keys": 5,
                                                            "memories": 0, "dry_run": True, "checkpointed": None}
        assert svc.get_session(APP, USER, "a") is not None
        svc.store.read(lambda c: c.execute("PRAGMA secure_delete = 0"))  # off, as in most SQLite builds
        result = svc.delete_user(APP, USER)
        assert result == {"sessions": 2, "events": 2, "state_keys": 5, "memories": 0, "dry_run": False, "checkpointed": True}
        with open(db_path + "-wal", "rb") as fh:
            assert SECRET.encode() not in fh.read()
        assert svc.get_user_state(APP, USER) == {} and svc.list_sessions(APP, USER) == []
        kept = svc.get_session(APP, "bob", "c")
        assert kept.state == {"app:shared": 1, "mine": "bob's", "k": 1} and len(kept.events) == 1
        assert svc.store.read(lambda c: c.execute("PRAGMA secure_delete").fetchone()[0]) == 0  # reset
    with open(db_path, "rb") as fh:
        assert SECRET.encode() not in fh.read()


def test_a_plain_delete_leaves_the_text_in_the_file(db_path):
    """The control: with secure_delete off, deleted text stays in the file's free
    space, where the byte search above would find it."""
    with DatabaseSessionService(db_path) as svc:
        s = svc.create_session(APP, USER, {"note": SECRET}, "a")
        svc.append_event(s, ev("i1", SECRET * 20))
    conn = sqlite3.connect(db_path, isolation_level=None)  # the service is closed
    conn.execute("PRAGMA secure_delete = 0")
    conn.execute("DELETE FROM adk_events")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(db_path, "rb") as fh:
        assert SECRET.encode() in fh.read()


def test_delete_user_checks_its_arguments(svc):
    with pytest.raises(TypeError, match="dry_run"):
        svc.delete_user(APP, USER, dry_run="yes")
    with pytest.raises(ValueError, match="user_id"):
        svc.delete_user(APP, " ")


# -- trim ------------------------------------------------------------------------------
def compaction(start, end, ts, invocation="c"):
    return Event(invocation_id=invocation, author="user", timestamp=ts, actions=EventActions(extra={"compaction": {
        "start_timestamp": start, "end_timestamp": end,
        "compacted_content": {"role": "model", "parts": [{"text": f"summary {start}-{end}"}]}}}))


def call(ts, call_id, response=False):
    key = "function_response" if response else "function_call"
    return Event(invocation_id="t", author="agent", timestamp=ts,
                 content={"role": "user" if response else "model",
                          "parts": [{key: {"id": call_id, "name": "f", **({"response": {}} if response else {})}}]})


def test_trim_deletes_what_a_compaction_covers(svc):
    s = svc.create_session(APP, USER, {"k": 0}, "s")
    raw = [Event(invocation_id=f"i{t}", timestamp=float(t), actions=EventActions(state_delta={"k": t}))
           for t in range(1, 7)]
    svc.append_events(s, raw[:4] + [call(4.5, "long"), compaction(1.0, 4.5, 5.0)] + raw[4:]
                      + [call(6.5, "long", response=True), Event(invocation_id="o", timestamp=7.0, branch="x.y")])
    state = svc.get_session(APP, USER, "s").state
    assert svc.trim_compacted(APP, USER, "s", dry_run=True) == {"sessions": 1, "events": 4, "bytes": pytest.approx(
        svc.trim_compacted(APP, USER, dry_run=True)["bytes"]), "dry_run": True}
    assert svc.get_event_count(APP, USER, "s") == 10
    result = svc.trim_compacted(APP, USER)
    assert result["events"] == 4 and result["bytes"] > 100 and result["sessions"] == 1
    left = svc.get_session(APP, USER, "s")
    # raw 1-4 went; the call whose response survives stays, as do the compaction and later events
    assert [e.timestamp for e in left.events] == [4.5, 5.0, 5.0, 6.0, 6.5, 7.0]
    assert left.state == state
    assert svc.trim_compacted(APP, USER)["events"] == 0


def test_trim_keeps_events_an_agent_would_see_without_the_summary(svc):
    s = svc.create_session(APP, USER, session_id="s")
    branched = compaction(1.0, 3.0, 4.0)
    branched.branch = "root.a"
    svc.append_events(s, [Event(invocation_id="i", timestamp=1.0, branch="root.a.b"),
                          Event(invocation_id="i", timestamp=2.0, branch="root"),
                          Event(invocation_id="i", timestamp=3.0), branched])
    assert svc.trim_compacted(APP, USER, "s")["events"] == 1  # only the one under root.a
    rewound = svc.create_session(APP, USER, session_id="r")
    svc.append_events(rewound, [Event(invocation_id="i", timestamp=1.0), compaction(1.0, 1.0, 2.0),
                                Event(invocation_id="r", timestamp=3.0,
                                      actions=EventActions(extra={"rewind_before_invocation_id": "i"}))])
    assert svc.trim_compacted(APP, USER, "r")["events"] == 0  # a rewind may annul the compaction


def test_trim_arguments(svc):
    with pytest.raises(SessionNotFoundError):
        svc.trim_compacted(APP, USER, "nope")
    with pytest.raises(TypeError, match="dry_run"):
        svc.trim_compacted(APP, USER, dry_run=1)


# -- the async twin --------------------------------------------------------------------
def test_async_twins(target):
    async def scenario():
        async with AsyncDatabaseSessionService(target) as svc:
            s = await svc.create_session(APP, USER, {"a": 1}, "s")
            await svc.append_event(s, ev("i1", a=2))
            fork = await svc.fork_session(APP, USER, "s", new_session_id="f", before_invocation_id="i1")
            lineage = await svc.get_lineage(APP, USER, "f")
            trimmed = await svc.trim_compacted(APP, USER, dry_run=True)
            erased = await svc.delete_user(APP, USER)
            return fork.state, lineage["events"], trimmed["events"], erased["sessions"]
    assert asyncio.run(scenario()) == ({"a": 1}, 0, 0, 2)


# -- the command line ---------------------------------------------------------------------
def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def contents(target):
    """What is stored, read by a read-only service (see conftest.stored_contents)."""
    with DatabaseSessionService(target, read_only=True) as svc:
        return stored_contents(svc)


def test_cli_fork_show_erase_trim(target, capsys, monkeypatch):
    db_path = target
    with DatabaseSessionService(db_path) as svc:
        s = svc.create_session(APP, USER, {"k": 0, "user:u": SECRET}, "s")
        svc.append_event(s, ev("i1", SECRET, k=1))
        svc.append_event(s, ev("i2", k=2))
        svc.create_session(APP, "bob", {"b": 1}, "b")
    code, out, _ = run_cli(capsys, "fork", db_path, APP, USER, "s", "--before-invocation", "i2", "--new-id", "f",
                           "--json")
    assert code == 0 and json.loads(out)["state"] == {"k": 1, "user:u": SECRET}
    code, out, _ = run_cli(capsys, "show", db_path, APP, USER, "f")
    assert code == 0 and "forked from s before invocation i2 (1 event copied)" in out
    code, out, _ = run_cli(capsys, "show", db_path, APP, USER, "f", "--json")
    assert json.loads(out)["forked_from"]["session_id"] == "s"
    code, _, err = run_cli(capsys, "fork", db_path, APP, USER, "s", "--before-invocation", "nope")
    assert code == 2 and "'nope'" in err
    # export gives the user's data first
    code, out, _ = run_cli(capsys, "export", db_path, "--app", APP, "--user", USER)
    assert code == 0 and SECRET in out and '"b"' not in out and out.count('"session_id"') >= 2
    before = contents(db_path)
    monkeypatch.setattr("sys.stdin", open("/dev/null"))
    code, _, err = run_cli(capsys, "erase", db_path, "--app", APP, "--user", USER)
    assert code == 2 and "--yes" in err
    code, out, _ = run_cli(capsys, "erase", db_path, "--app", APP, "--user", USER, "--dry-run", "--json")
    assert json.loads(out)["sessions"] == 2
    assert contents(db_path) == before  # the dry run and the refusal wrote nothing
    code, out, _ = run_cli(capsys, "erase", db_path, "--app", APP, "--user", USER, "--yes")
    assert code == 0 and "erased 2 sessions, 3 events and 3 state keys of user 'alice'" in out
    code, out, _ = run_cli(capsys, "trim", db_path, "--dry-run", "--json")
    assert code == 0 and json.loads(out) == {"sessions": 0, "events": 0, "bytes": 0, "dry_run": True}
    with DatabaseSessionService(db_path, read_only=True) as svc:
        assert [x.id for x in svc.list_sessions()] == ["b"]
