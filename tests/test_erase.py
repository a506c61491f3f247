"""Erase means gone: ``delete_user`` / ``adk-lite erase`` leave none of the user's words in
the file (main file, WAL, the FTS5 index's shadow tables, later backups, after
``vacuum``), and erase is exact while other processes and threads write for the same
user, on both backends. What ``delete_session`` leaves is checked too (it promises rows
gone, not bytes).
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time

import pytest

from adk_lite import DatabaseSessionService, Event, EventActions, SessionNotFoundError, cli
from tests.conftest import on_postgres, pooled, pg_databases

APP, USER, OTHER = "app", "zqalice31337", "bob"  # the user id is a word of the user too
TIMEOUT = 120
# one token each (no separator), so FTS5 indexes each whole and a byte search finds it
WORDS = {
    "text": "zqcard4929137081",  # an event's text part (the search index)
    "call": "zqcallarg5512",  # a function call's argument (the search index)
    "session_state": "zqsessval77311",
    "user_state": "zquserval90021",
    "initial": "zqinitval30303",
    "state_key": "zqkeyname6612",
    "session_id": "zqsessid40404",
    "event_id": "zqeventid1919",
    "invocation": "zqinvoc55123",
    "author": "zqauthor7777",
    "branch": "zqbranch8181",
    "user_id": USER,
}
BOB_WORD = "zqbobkeeps2020"


def ev(invocation, text="", call=None, **delta):
    parts = [{"text": text}] if text else []
    if call:
        parts.append({"function_call": {"name": "tool", "args": {"q": call}}})
    return Event(invocation_id=invocation, content={"role": "user", "parts": parts} if parts else None,
                 actions=EventActions(state_delta=delta))


def fill(svc, sessions=12, events=6):
    """Alice's words in every column that holds text, interleaved with bob's rows (so
    they share pages), many transactions (so the FTS5 index has many segments)."""
    w = WORDS
    for i in range(sessions):
        for user in (USER, OTHER):
            mine = user == USER
            sid = (w["session_id"] if mine and i == 0 else f"{user}-{i}")
            state = {"k": w["session_state"] if mine else BOB_WORD, "user:card": w["user_state"] if mine else 1,
                     "init": (w["initial"] if mine else "bob") + "x" * 3000, "app:shared": 1}
            if mine:
                state[w["state_key"]] = 1
            s = svc.create_session(APP, user, state, sid)
            for j in range(events):
                e = ev(w["invocation"] if mine else f"i{j}", (w["text"] if mine else BOB_WORD) + f" say {j} " * 200,
                       w["call"] if mine else None, n=j)
                if mine and j == 0:
                    e.id, e.author, e.branch = f"{w['event_id']}{i}", w["author"], w["branch"]
                svc.append_event(s, e)


def found(path, words=WORDS.values()):
    """The words whose bytes are in the file or its WAL (``-wal``, when there): the
    word, or its last 8 characters (FTS5 stores a term after the prefix it shares
    with the term before it, so only its tail is whole in the index's pages)."""
    data = b""
    for name in (path, path + "-wal"):
        if os.path.exists(name):
            with open(name, "rb") as fh:
                data += fh.read()
    return sorted(w for w in words if w[-8:].encode() in data)


def test_erase_leaves_no_word_of_the_user_in_the_file_wal_backups_or_after_vacuum(db_path, tmp_path):
    with DatabaseSessionService(db_path) as svc:
        fill(svc)
        svc.fork_session(APP, USER, WORDS["session_id"], new_session_id="fork")  # forked_from names the source
        svc.checkpoint()
        assert found(db_path) == sorted(WORDS.values())  # the test can fail: every word is there before
        for conn_sql in ("PRAGMA secure_delete = 0",):  # off on every pooled connection, as in most builds
            svc.store.read(lambda c: c.execute(conn_sql))
        result = svc.delete_user(APP, USER)
        assert result["sessions"] == 13 and result["events"] == 78 and result["checkpointed"] is True
        assert found(db_path) == []  # right after the erase, the service still open
        assert list(svc.search_events(WORDS["text"])) == [] and len(svc.search_events(BOB_WORD)) > 0
        svc.backup(str(tmp_path / "later.sqlite3"))
        s = svc.create_session(APP, OTHER, {"k": "after"}, "after")  # later writes reuse the freed pages
        svc.append_event(s, ev("i", "after the erase"))
        assert found(db_path) == []
    assert found(db_path) == [] and not os.path.exists(db_path + "-wal")  # after close
    assert found(str(tmp_path / "later.sqlite3")) == []
    assert cli.main(["vacuum", db_path]) == 0
    assert found(db_path) == [] and found(db_path, [BOB_WORD]) == [BOB_WORD]
    conn = sqlite3.connect(db_path)  # the index is sound and still finds bob's words
    try:
        conn.execute("INSERT INTO adk_events_fts(adk_events_fts) VALUES ('integrity-check')")
        assert conn.execute("SELECT COUNT(*) FROM adk_events_fts WHERE adk_events_fts MATCH ?",
                            (BOB_WORD,)).fetchone()[0] == 12 * 6
    finally:
        conn.close()


def test_cli_erase_leaves_no_word_of_the_user_in_the_file(db_path):
    with DatabaseSessionService(db_path) as svc:
        fill(svc, sessions=4, events=3)
    assert found(db_path) == sorted(WORDS.values())
    assert cli.main(["erase", db_path, "--app", APP, "--user", USER, "--yes"]) == 0
    assert found(db_path) == [] and found(db_path, [BOB_WORD]) == [BOB_WORD]


def test_erase_purges_the_words_of_sessions_deleted_before(db_path):
    """delete_session leaves the words in the index's segments; a later erase of the
    user removes them too, though it has no row of that session left to count."""
    with DatabaseSessionService(db_path) as svc:
        fill(svc, sessions=3, events=3)
        for i in range(3):
            svc.delete_session(APP, USER, WORDS["session_id"] if i == 0 else f"{USER}-{i}")
        svc.checkpoint()
        assert WORDS["text"] in found(db_path)  # the control: a delete leaves the indexed words
        result = svc.delete_user(APP, USER)
        assert (result["sessions"], result["events"]) == (0, 0)
        assert found(db_path) == []


def test_erase_behind_a_reader_says_so_and_the_close_finishes_it(db_path):
    with DatabaseSessionService(db_path) as svc:
        fill(svc, sessions=3, events=3)
        svc.checkpoint()
        reader = sqlite3.connect(db_path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM adk_events").fetchone()  # holds its snapshot
        svc.store.read(lambda c: c.execute("PRAGMA busy_timeout = 100"))
        result = svc.delete_user(APP, USER)
        assert result["checkpointed"] is False
        assert found(db_path) != []  # the main file still has the old pages: the reader may read them
        reader.execute("COMMIT")
        reader.close()
    assert found(db_path) == []


def test_delete_session_removes_rows_not_bytes(db_path):
    """What the docs say delete_session does: the rows are gone from every read, the
    words may stay in the file (the search index's segments) until an erase of the
    user or a rebuild of the index."""
    with DatabaseSessionService(db_path) as svc:
        s = svc.create_session(APP, USER, {}, "s")
        svc.append_event(s, ev("i", WORDS["text"]))
        svc.append_event(s, ev("j", "more words"))
        svc.delete_session(APP, USER, "s")
        svc.checkpoint()
        assert list(svc.search_events(WORDS["text"])) == []
        assert found(db_path) == [WORDS["text"]]


# -- exact under concurrent writers --------------------------------------------------
def _zero(svc):
    """What :func:`_count` gives when none of the user's rows is left: 0 in every table."""
    return {name: 0 for name, _table in svc.store.user_tables()}


def _count(svc, user=USER):
    """Every row of the user in every table erase covers (all must be 0 after it)."""
    tables = svc.store.user_tables()
    return svc.store.read(lambda conn: {name: conn.execute(
        f"SELECT COUNT(*) FROM {table} WHERE app_name = {svc.store._p} AND user_id = {svc.store._p}",
        (APP, user)).fetchone()[0] for name, table in tables})


def _orphans(svc):
    """Session-scope state rows of no session (an append half erased leaves them)."""
    return svc.store.check()["stray_state_rows"]


def appender(target, sessions, create, stop, appended):
    """Child process: append (and update_keys) to the user's sessions, with session,
    ``user:`` and ``app:`` keys, until ``stop``; with ``create``, also create sessions of
    the user. A session erased meanwhile is skipped (SessionNotFoundError)."""
    from adk_lite import DatabaseLockedError

    n = 0
    with DatabaseSessionService(target) as svc:
        while not stop.is_set():
            n += 1
            sid = sessions[n % len(sessions)]
            try:
                if create and n % 3 == 0:
                    sid = f"c{os.getpid()}-{n}"
                    svc.create_session(APP, USER, {"k": n, "user:made": n}, sid)
                if n % 2:
                    svc.update_keys(APP, USER, sid, {"k": n, "user:u": n, "app:a": n})
                else:
                    s = svc.get_session(APP, USER, sid, num_recent_events=0)
                    if s is None:
                        continue
                    svc.append_event(s, ev("i", f"word {n}", k=n, **{"user:u": n}))
                with appended.get_lock():
                    appended.value += 1
            except (SessionNotFoundError, DatabaseLockedError):
                pass
            except Exception as e:  # noqa: BLE001 - StaleSessionError: another child appended
                if type(e).__name__ != "StaleSessionError":
                    raise


def _race(target, create, rounds):
    ctx = multiprocessing.get_context("spawn")
    stop, appended = ctx.Event(), ctx.Value("i", 0)
    sessions = [f"s{i}" for i in range(4)]
    path = pooled(target, 4)
    with DatabaseSessionService(path) as svc:
        for sid in sessions:
            svc.create_session(APP, USER, {"k": 0}, sid)
        procs = [ctx.Process(target=appender, args=(path, sessions, create, stop, appended)) for _ in range(3)]
        for p in procs:
            p.start()
        try:
            for _ in range(rounds):
                start, end = appended.value, time.monotonic() + TIMEOUT
                while appended.value < start + 15 and time.monotonic() < end:
                    time.sleep(0.01)
                result = svc.delete_user(APP, USER)
                assert result["sessions"] >= len(sessions) and result["dry_run"] is False
                yield svc
                for sid in sessions:  # the next round's sessions
                    svc.create_session(APP, USER, {"k": 0}, sid)
        finally:
            stop.set()
            for p in procs:
                p.join(timeout=TIMEOUT)
                if p.is_alive():
                    p.kill()
        assert [p.exitcode for p in procs] == [0, 0, 0]


def test_erase_racing_appends_of_other_processes_leaves_nothing(target):
    """Appends only (to sessions erased): once erase returns, no row of the user is
    left, and none comes back (an append that waited for the erase finds no session)."""
    for svc in _race(target, create=False, rounds=6):
        assert _count(svc) == _zero(svc)
        time.sleep(0.05)  # the appends that waited for the erase have run by now
        assert _count(svc) == _zero(svc)
        assert _orphans(svc) == 0


def test_erase_racing_creates_leaves_only_whole_new_sessions(target):
    """With creates too: what is there after the erase are sessions created after it,
    each whole (its row, its state), and no state of a session that is gone."""
    for svc in _race(target, create=True, rounds=4):
        assert _orphans(svc) == 0
        for s in svc.list_sessions(APP, USER):
            assert s.id.startswith("c") and "k" in s.state  # made after the erase, with its state


@pytest.fixture
def gate(target):
    """PostgreSQL only: a raw connection that holds the row of app key ``app:gate``
    locked, so a write of alice that sets it stops in the middle of its transaction
    (its session row written, its state not yet) until the gate opens."""
    if not on_postgres(target):
        pytest.skip("SQLite runs one write transaction at a time: no write is ever in flight beside an erase")
    with DatabaseSessionService(target) as svc:
        svc.create_session(APP, OTHER, {"app:gate": 0}, "other")
    conn = pg_databases().admin(target.rsplit("/", 1)[1])
    conn.execute("BEGIN")
    assert conn.execute("SELECT 1 FROM adk_state WHERE scope = 'app' AND state_key = 'gate' FOR UPDATE").fetchall()
    yield conn
    conn.close()


def _in_flight(target, gate, write):
    """Run ``write(svc)`` in a thread until it waits at the gate, erase alice in another,
    open the gate; return the erase's result and the rows of alice left after both."""
    with DatabaseSessionService(target) as svc:
        outcome = {}

        def run(name, fn):
            try:
                outcome[name] = fn()
            except Exception as e:  # noqa: BLE001 - reported by the asserts below
                outcome[name] = e
        writer = threading.Thread(target=run, args=("write", lambda: write(svc)))
        writer.start()
        time.sleep(0.5)  # the write holds its locks and waits for the gate
        eraser = threading.Thread(target=run, args=("erase", lambda: svc.delete_user(APP, USER)))
        eraser.start()
        time.sleep(0.5)
        gate.execute("ROLLBACK")
        writer.join(TIMEOUT)
        eraser.join(TIMEOUT)
        assert not isinstance(outcome["write"], Exception), outcome
        assert isinstance(outcome["erase"], dict), outcome
        return outcome["erase"], _count(svc), _orphans(svc)


def test_an_append_in_flight_is_erased_with_its_state(target, gate):
    with DatabaseSessionService(target) as svc:
        svc.create_session(APP, USER, {"k": 0}, "s")
    erased, left, orphans = _in_flight(target, gate, lambda svc: svc.update_keys(
        APP, USER, "s", {"app:gate": 1, "k": 1, "user:u": 1}))
    assert not any(left.values()) and set(left) == {"memories", "state_keys", "events", "sessions"} and orphans == 0
    assert (erased["sessions"], erased["events"], erased["state_keys"]) == (1, 1, 2)


def test_a_create_in_flight_is_erased(target, gate):
    erased, left, orphans = _in_flight(target, gate, lambda svc: svc.create_session(
        APP, USER, {"app:gate": 1, "k": 1, "user:u": 1}, "late"))
    assert not any(left.values()) and set(left) == {"memories", "state_keys", "events", "sessions"} and orphans == 0
    assert (erased["sessions"], erased["state_keys"]) == (1, 2)
