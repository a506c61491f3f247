"""The counts per app that ``get_stats`` reads on SQLite (``adk_counts``, schema version 6):
kept by triggers in every writer's transaction, they must equal a count of the rows after
every write path (the API, raw SQL of another tool, a SIGKILL mid-write, a migration from
version 5), be checked by ``check`` and refused by ``restore`` when forged."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from adk_lite import CorruptDatabaseError, DatabaseSessionService, Event, EventActions, SCHEMA_VERSION, schema
from adk_lite.restore import restore
from adk_lite.schema_check import count_problems
from tests.conftest import drop_later_tables
from tests.workers import child_env


def counted(path: str) -> dict:
    """``{app: (sessions, users, events, state_keys)}`` counted from the rows."""
    conn = sqlite3.connect(path)
    try:
        return {r[0]: tuple(r[1:]) for r in conn.execute(schema.COUNTS_SQL)}
    finally:
        conn.close()


def agree(svc: DatabaseSessionService) -> dict:
    """Assert ``adk_counts`` and ``get_stats`` agree with the rows; return the counts."""
    rows = counted(svc.path)
    conn = sqlite3.connect(svc.path)
    try:
        assert count_problems(conn) == []
    finally:
        conn.close()
    stats = svc.get_stats()
    with_sessions = {a: c for a, c in rows.items() if c[0]}
    assert stats["per_app"] == [{"app_name": a, "sessions": c[0], "users": c[1], "events": c[2]}
                                for a, c in sorted(with_sessions.items())]
    assert stats["state_keys"] == sum(c[3] for c in rows.values())
    assert (stats["sessions"], stats["users"], stats["events"], stats["apps"]) == (
        sum(c[0] for c in rows.values()), sum(c[1] for c in rows.values()), sum(c[2] for c in rows.values()),
        len(with_sessions))
    return rows


def say(svc, session, *texts, delta=None):
    svc.append_events(session, [Event(author="user", content={"parts": [{"text": t}]},
                                      actions=EventActions(state_delta=delta or {})) for t in texts])


def test_every_write_path_keeps_the_counts(tmp_path):
    path = str(tmp_path / "c.sqlite3")
    with DatabaseSessionService(path) as svc:
        svc.create_session("shop", "eve", {"app:banner": "sale"}, session_id="x")
        svc.delete_session("shop", "eve", "x")  # the app's state outlives its sessions
        assert agree(svc) == {"shop": (0, 0, 0, 1)}
        a = svc.create_session("shop", "ann", {"user:tier": "gold", "cart": 1}, session_id="a")
        b = svc.create_session("shop", "ann", session_id="b")
        c = svc.create_session("shop", "bob", {"temp:x": 1}, session_id="c")
        svc.create_session("bank", "ann", session_id="z")
        assert agree(svc) == {"shop": (3, 2, 0, 3), "bank": (1, 1, 0, 0)}
        say(svc, a, "one", "two", delta={"cart": 2, "user:seen": True, "temp:t": 0})
        say(svc, b, "three")
        svc.update_keys("shop", "ann", "a", {"cart": None, "new": 1})  # a None deletes a key
        agree(svc)
        fork = svc.fork_session("shop", "ann", "a", new_session_id="a-fork")
        say(svc, fork, "after the fork")
        agree(svc)
        svc.trim_all("shop")
        agree(svc)
        svc.delete_session("shop", "ann", "b")
        assert agree(svc)["shop"][:2] == (3, 2)
        svc.delete_user("shop", "ann")
        assert agree(svc)["shop"][:2] == (1, 1)
        svc.prune(time.time() + 10, app_name="shop")
        assert agree(svc)["shop"][:3] == (0, 0, 0)
        svc.delete_session("bank", "ann", "z")
        agree(svc)
        assert svc.get_stats()["per_app"] == [] and c.id == "c"


def test_raw_sql_of_another_tool_keeps_the_counts(tmp_path):
    """The triggers are in the file: a tool that is not adk_lite keeps the counts too,
    a change of a row's app or user included."""
    path = str(tmp_path / "raw.sqlite3")
    with DatabaseSessionService(path) as svc:
        for user in ("u1", "u2"):
            s = svc.create_session("app", user, {"k": 1}, session_id="s")
            say(svc, s, "a", "b")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("DELETE FROM adk_events WHERE rowid = (SELECT min(rowid) FROM adk_events)")
    conn.execute("UPDATE adk_state SET app_name = 'other' WHERE user_id = 'u1'")
    conn.execute("INSERT INTO adk_sessions (app_name, user_id, session_id, created_at, updated_at, revision, "
                 "incarnation) VALUES ('app', 'u3', 's3', 0, 0, 0, 'x')")
    conn.execute("UPDATE adk_sessions SET user_id = 'u1' WHERE user_id = 'u3'")
    conn.execute("DELETE FROM adk_sessions WHERE user_id = 'u2'")
    conn.close()
    with DatabaseSessionService(path) as svc:
        assert agree(svc) == {"app": (2, 1, 1, 1), "other": (0, 0, 0, 1)}  # u2's state row has no session


def test_a_sigkill_mid_write_leaves_the_counts_in_step(tmp_path):
    path = str(tmp_path / "kill.sqlite3")
    DatabaseSessionService(path).close()
    code = ("import sys, adk_lite\n"
            "svc = adk_lite.DatabaseSessionService(sys.argv[1])\n"
            "n = 0\n"
            "while True:\n"
            "    s = svc.create_session('app', f'u{n % 7}', {'k': n})\n"
            "    svc.append_events(s, [adk_lite.Event(author='user', content={'parts': [{'text': 'w'}]}) for _ in range(5)])\n"
            "    if n % 3 == 0:\n"
            "        svc.delete_session('app', s.user_id, s.id)\n"
            "    n += 1\n"
            "    if n == 20:\n"
            "        print('going', flush=True)\n")
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-c", code, path], stdout=subprocess.PIPE, env=child_env())
        assert child.stdout.readline().strip() == b"going"
        time.sleep(0.05 * (1 + _))
        child.send_signal(signal.SIGKILL)
        child.wait()
        with DatabaseSessionService(path) as svc:
            assert agree(svc)["app"][2] > 0


def _make_version_5(path: str) -> None:
    with DatabaseSessionService(path) as svc:
        s = svc.create_session("app", "u", {"app:a": 1, "user:b": 2, "c": 3}, session_id="s")
        say(svc, s, "one", "two")
        svc.create_session("app", "v", session_id="t")
        svc.create_session("other", "u", session_id="s")
    conn = sqlite3.connect(path, isolation_level=None)
    with conn:
        drop_later_tables(conn, 5)
        conn.execute("UPDATE adk_metadata SET value = '5' WHERE key = 'schema_version'")
    conn.close()


def test_a_version_5_file_is_counted_once_at_its_migration(tmp_path):
    path = str(tmp_path / "v5.sqlite3")
    _make_version_5(path)
    with DatabaseSessionService(path, read_only=True) as ro:  # read-only: no migration; stats counted from rows
        stats = ro.get_stats()
        assert stats["schema_version"] == 5 and stats["events"] == 2 and stats["users"] == 3
        assert ro.store.check()["integrity_check"] == ["ok"]
    with DatabaseSessionService(path) as svc:
        assert svc.get_stats()["schema_version"] == SCHEMA_VERSION == 6
        assert agree(svc) == {"app": (2, 2, 2, 3), "other": (1, 1, 0, 0)}
        say(svc, svc.get_session("app", "v", "t"), "three")
        assert agree(svc)["app"] == (2, 2, 3, 3)


def test_forged_counts_are_named_by_check_and_refused_by_restore(tmp_path, capsys):
    path, backup = str(tmp_path / "db.sqlite3"), str(tmp_path / "forged.sqlite3")
    with DatabaseSessionService(path) as svc:
        say(svc, svc.create_session("app", "u", session_id="s"), "kept")
        svc.backup(backup)
    conn = sqlite3.connect(backup, isolation_level=None)
    conn.execute("UPDATE adk_counts SET events = 1000 WHERE app_name = 'app'")
    conn.close()
    with DatabaseSessionService(backup, read_only=True) as ro:
        lines = ro.store.check()["integrity_check"]
    assert lines == ["adk_counts: app 'app' holds sessions 1, users 1, events 1000, state_keys 0; "
                     "its rows count 1, 1, 1, 0 (vacuum counts them again)"]
    before = open(path, "rb").read()
    with pytest.raises(CorruptDatabaseError, match="adk_counts: app 'app' holds"):
        restore(backup, path)
    assert open(path, "rb").read() == before


def test_an_export_carries_no_counts_and_the_import_counts_its_own(tmp_path):
    source, target, dump = (str(tmp_path / n) for n in ("src.sqlite3", "dst.sqlite3", "dump.jsonl"))
    with DatabaseSessionService(source) as svc:
        for user in ("u1", "u2"):
            say(svc, svc.create_session("app", user, {"user:k": 1}, session_id="s"), "a", "b")
        with open(dump, "wb") as out:
            svc.export(out)
    with DatabaseSessionService(target) as svc:
        svc.create_session("app", "u9", session_id="mine")
        svc.import_file(dump)
        assert agree(svc) == {"app": (3, 3, 4, 2)}
    assert os.path.getsize(target) > 0


def _two_users(path: str) -> None:
    with DatabaseSessionService(path) as svc:
        for user in ("u1", "u2"):
            say(svc, svc.create_session("app", user, {"k": 1, "user:x": 2}, session_id="s"), "a", "b")
        svc.create_session("app", "u1", session_id="s2")


@pytest.mark.parametrize("sql", ["UPDATE adk_sessions SET user_id = user_id",
                                 "UPDATE adk_sessions SET app_name = app_name, user_id = user_id WHERE user_id = 'u2'",
                                 "UPDATE adk_sessions SET user_id = CASE user_id WHEN 'u1' THEN 'u3' ELSE user_id END"])
def test_an_update_that_keeps_a_sessions_app_and_user_keeps_the_users_count(tmp_path, sql):
    """Another tool's UPDATE naming app_name or user_id but leaving them as they were
    (an ORM saving every column) fires the update trigger: the user still has the session."""
    path = str(tmp_path / "noop.sqlite3")
    _two_users(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute(sql)
    conn.close()
    with DatabaseSessionService(path) as svc:
        assert sum(agree(svc)["app"][:2]) == 5


REPLACES = ["INSERT OR REPLACE INTO adk_sessions (app_name, user_id, session_id, created_at, updated_at, revision, "
            "incarnation) VALUES ('app', 'u1', 's2', 0, 0, 0, 'x')",
            "REPLACE INTO adk_state SELECT * FROM adk_state",
            "INSERT OR REPLACE INTO adk_events SELECT * FROM adk_events WHERE user_id = 'u2'",
            "UPDATE OR REPLACE adk_state SET user_id = 'u1' WHERE user_id = 'u2'"]


@pytest.mark.parametrize("sql", REPLACES)
def test_a_replace_of_another_tool_is_named_by_check_and_vacuum_counts_again(tmp_path, sql):
    """SQLite's REPLACE deletes the row in the way without firing delete triggers (unless
    the tool's connection has ``recursive_triggers`` on), and no trigger can tell a REPLACE
    from an INSERT OR IGNORE or an UPSERT, which adk_lite itself runs: the counts then
    differ from the rows. ``check`` names them, and ``vacuum`` counts them again."""
    path = str(tmp_path / "replace.sqlite3")
    _two_users(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(sql)
    assert count_problems(conn)  # the drift this test is about (fails if SQLite ever fires them)
    conn.close()
    with DatabaseSessionService(path) as svc:
        lines = svc.store.check()["integrity_check"]
        assert lines[0].startswith("adk_counts: app 'app' holds") and lines[0].endswith("(vacuum counts them again)")
        svc.vacuum()
        agree(svc)
        assert svc.store.check()["integrity_check"] == ["ok"]


def test_replace_with_recursive_triggers_keeps_the_counts(tmp_path):
    path = str(tmp_path / "rt.sqlite3")
    _two_users(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA recursive_triggers = ON")
    for sql in REPLACES:
        conn.execute(sql)
    conn.close()
    with DatabaseSessionService(path) as svc:
        agree(svc)


@pytest.mark.parametrize("forgery", ["events = 'many'", "sessions = x'01'", "users = -5", "events = 1.5",
                                     "users = sessions + 1", "users = 0"])
def test_get_stats_counts_the_rows_when_the_counts_are_no_counts(tmp_path, forgery):
    """A row of ``adk_counts`` no trigger could have kept (text, a blob, a fraction, a
    negative number, more users than sessions) is not read: get_stats counts the rows,
    raising nothing, and check names the row."""
    path = str(tmp_path / "forged.sqlite3")
    _two_users(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"UPDATE adk_counts SET {forgery}")
    conn.close()
    with DatabaseSessionService(path, read_only=True) as ro:
        stats = ro.get_stats()
        assert (stats["sessions"], stats["users"], stats["events"], stats["state_keys"]) == (3, 2, 4, 4)
        assert stats["per_app"] == [{"app_name": "app", "sessions": 3, "users": 2, "events": 4}]
        assert ro.store.check()["integrity_check"][0].startswith("adk_counts: app 'app' holds")
