"""DatabaseSessionService(read_only=True): reads an existing file without changing it."""

import os
import sqlite3
import time

import pytest

from adk_lite import (CorruptDatabaseError, DatabaseOpenError, DatabaseSessionService, Event, EventActions,
                      ForeignDatabaseError, SchemaVersionError)
from tests.workers import fingerprint


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / "s.db")
    with DatabaseSessionService(path) as svc:
        s = svc.create_session("app", "alice", state={"k": 1, "user:u": 2, "app:a": 3}, session_id="s1")
        svc.append_event(s, Event(author="user", invocation_id="i1", content={"parts": [{"text": "hi"}]},
                                  actions=EventActions(state_delta={"k": 5})))
    return path


def test_reads_match_a_read_write_service_and_file_is_unchanged(db):
    before = fingerprint(db, pin=True)
    with DatabaseSessionService(db) as rw:
        expected = rw.get_session("app", "alice", "s1")
    after_rw = fingerprint(db, pin=True)
    with DatabaseSessionService(db, read_only=True) as ro:
        got = ro.get_session("app", "alice", "s1")
        assert got == expected
        assert [s.id for s in ro.list_sessions("app")] == ["s1"]
        assert ro.get_user_state("app", "alice") == {"u": 2}
        assert ro.get_stats()["events"] == 1
    assert fingerprint(db) == after_rw
    assert before[0] == after_rw[0]
    assert sorted(os.listdir(os.path.dirname(db))) == ["s.db"]  # side files cleaned


def test_writes_are_refused_and_write_nothing(db):
    before = fingerprint(db, pin=True)
    with DatabaseSessionService(db, read_only=True) as ro:
        s = ro.get_session("app", "alice", "s1")
        for call in (lambda: ro.create_session("app", "bob"), lambda: ro.append_event(s, Event(author="x")),
                     lambda: ro.update_keys("app", "alice", "s1", {"k": None}),
                     lambda: ro.delete_session("app", "alice", "s1"), ro.vacuum):
            with pytest.raises(DatabaseOpenError, match="read-only"):
                call()
    assert fingerprint(db) == before


def test_missing_file_is_refused_and_not_created(tmp_path):
    path = tmp_path / "sub" / "none.db"
    with pytest.raises(DatabaseOpenError, match="does not exist"):
        DatabaseSessionService(path, read_only=True)
    assert not (tmp_path / "sub").exists()


def test_empty_file_and_memory_are_refused(tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(DatabaseOpenError, match="empty"):
        DatabaseSessionService(empty, read_only=True)
    assert empty.read_bytes() == b""
    with pytest.raises(ValueError, match="memory"):
        DatabaseSessionService(":memory:", read_only=True)


def test_bad_files_are_refused_unchanged(tmp_path, db):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 10)
    with pytest.raises(CorruptDatabaseError):
        DatabaseSessionService(junk, read_only=True)
    foreign = str(tmp_path / "adk.db")
    conn = sqlite3.connect(foreign)
    conn.executescript("CREATE TABLE sessions (id TEXT); CREATE TABLE events (id TEXT);")
    conn.close()
    with pytest.raises(ForeignDatabaseError):
        DatabaseSessionService(foreign, read_only=True)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE adk_metadata SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    before = fingerprint(db, pin=True)
    with pytest.raises(SchemaVersionError):
        DatabaseSessionService(db, read_only=True)
    assert fingerprint(db) == before


def test_side_files_of_an_open_writer_are_kept(db):
    with DatabaseSessionService(db) as rw:
        rw.create_session("app", "bob", session_id="s2")
        with DatabaseSessionService(db, read_only=True) as ro:
            assert len(ro.list_sessions("app")) == 2
        assert os.path.exists(db + "-wal") and os.path.exists(db + "-shm")
        rw.create_session("app", "bob", session_id="s3")  # the writer still works
    with DatabaseSessionService(db, read_only=True) as ro:
        assert len(ro.list_sessions("app")) == 3


def test_store_read_put_state_and_delete_sessions(db):
    with DatabaseSessionService(db) as svc:
        svc.create_session("app", "bob", state={"x": 1}, session_id="s2")
        store = svc.store
        assert store.read(lambda c: c.execute("SELECT COUNT(*) FROM adk_sessions").fetchone()[0]) == 2
        store.put_state("app", "", "", [("app", "a", "4"), ("app", "b", '"new"')], [], time.time())
        store.put_state("app", "carol", "", [("user", "c", "[1]")], [("user", "nope")], time.time())
        assert svc.get_app_state("app") == {"a": 4, "b": "new"}
        assert svc.get_user_state("app", "carol") == {"c": [1]}
        store.delete_sessions([("app", "alice", "s1"), ("app", "bob", "s2"), ("app", "zed", "none")])
        assert svc.list_sessions() == []
        assert store.read(lambda c: c.execute("SELECT COUNT(*) FROM adk_events").fetchone()[0]) == 0
        assert store.read(lambda c: c.execute(
            "SELECT COUNT(*) FROM adk_state WHERE scope = 'session'").fetchone()[0]) == 0
        assert svc.get_user_state("app", "alice") == {"u": 2}  # user state stays


def test_store_prune_counts_then_deletes_in_batches(db):
    with DatabaseSessionService(db) as svc:
        for i in range(5):
            s = svc.create_session("app", "bob", state={"n": i}, session_id=f"old{i}")
            svc.append_events(s, [Event(author="user", timestamp=1000.0 + i + j) for j in range(2)])
        cutoff = 2000.0  # the old sessions' updated_at is their last event's timestamp; s1 is newer
        with DatabaseSessionService(db, read_only=True) as ro:
            assert ro.store.prune(cutoff, None, None, None, delete=False) == (5, 10)
            with pytest.raises(DatabaseOpenError):
                ro.store.prune(cutoff, None, None, None, delete=True)
        assert svc.store.prune(cutoff, "other", None, None, delete=True) == (0, 0)
        assert svc.store.prune(cutoff, "app", "bob", 3, delete=True) == (3, 6)
        assert svc.store.prune(cutoff, "app", None, 3, delete=True) == (2, 4)
        assert svc.store.prune(cutoff, None, None, 3, delete=True) == (0, 0)
        assert [s.id for s in svc.list_sessions()] == ["s1"]
        assert svc.get_user_state("app", "bob") == {}  # no user state was set; session state went
        assert svc.store.read(lambda c: c.execute("SELECT COUNT(*) FROM adk_state WHERE session_id LIKE 'old%'")
                              .fetchone()[0]) == 0
