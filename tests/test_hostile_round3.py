"""A third hostile round on issue 19's promises: new spellings and new races of the same
classes (secrets, erase, trim, fork, restore). Each test here failed before its fix."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from adk_lite.target import mask_password, parse_postgres, parse_target

SECRET = "Qx7aZk9b"


def _error(parse, url: str) -> str:
    try:
        parse(url)
    except ValueError as e:
        return str(e)
    return ""


@pytest.mark.parametrize("option", ["pass%77ord", "%70assword", "%50ASSWORD", "sslpassword", "SSLPassword",
                                    "ssl%70assword"])
def test_a_password_option_in_any_spelling_is_masked(option):
    """A ``password`` option whose name is percent-encoded (parsed as ``password``) or a
    libpq ``sslpassword`` (the client key's passphrase) is a secret too."""
    url = f"postgresql://adk@127.0.0.1/db?sslmode=disable&{option}={SECRET}"
    assert SECRET not in mask_password(url)
    assert SECRET not in _error(parse_postgres, url)
    if "%" not in option:  # a libpq parameter list is not percent-decoded
        assert SECRET not in mask_password(f"host=h {option}={SECRET} dbname=x")


@pytest.mark.parametrize("url", [f"sqlite:///x.db?password={SECRET}", f"SQLITE:///x.db?pass%77ord={SECRET}",
                                 f"sqlite://u:{SECRET}@h/x.db", f"sqlite:///x.db?password={SECRET}&a",
                                 f"sqlite:///x.db?%ZZ&password={SECRET}", f"adklite:///a://u:{SECRET}@h/x"])
def test_a_sqlite_url_error_never_shows_a_password(url):
    """A SQLite URL carries no password, but one given by mistake never shows in the error."""
    message = _error(parse_target, url)
    assert message and SECRET not in message, message


def test_postgres_check_reports_row_security_on_our_tables(backend, target):
    """A row-level security policy hides rows from a DELETE of a role that is not a
    superuser (an erase would then leave them and report success): adk_lite makes none,
    so ``check`` names each, as it names a trigger or a rule."""
    if backend != "postgres":
        pytest.skip("PostgreSQL's row security")
    from adk_lite import DatabaseSessionService
    from tests.workers import schema_problems_with

    with DatabaseSessionService(target) as svc:
        svc.create_session("app", "u", session_id="s")
        problems = schema_problems_with(svc, target, [
            "ALTER TABLE adk_events ENABLE ROW LEVEL SECURITY",
            "CREATE POLICY everyone ON adk_events USING (true)",
            "CREATE POLICY keep ON adk_events AS RESTRICTIVE FOR DELETE USING (user_id <> 'u')",
        ], [
            "DROP POLICY everyone ON adk_events",
            "DROP POLICY keep ON adk_events",
            "ALTER TABLE adk_events DISABLE ROW LEVEL SECURITY",
        ])
        assert svc.store.check()["schema_problems"] == []
    assert [p.split(" (")[0] for p in problems] == ["policy everyone on adk_events is not adk_lite's",
                                                    "policy keep on adk_events is not adk_lite's",
                                                    "row security on adk_events is not adk_lite's"], problems


def test_erase_leaves_no_word_of_sessions_deleted_before_on_a_build_without_secure_delete(db_path, monkeypatch):
    """SQLite builds differ: Debian's turns ``secure_delete`` on by default, many (python.org's,
    Homebrew's) do not. There a ``delete_session`` before the erase freed the session's pages
    with their text in them, and the erase (which deletes nothing of it) left every word."""
    from adk_lite import DatabaseSessionService
    from adk_lite.sqlite import _PooledSqliteDatabase
    from tests.test_erase import APP, BOB_WORD, USER, WORDS, fill, found

    hooks = _PooledSqliteDatabase._add_conn_hooks

    def default_off(self, conn):  # as a build without SQLITE_SECURE_DELETE opens a connection
        conn.execute("PRAGMA secure_delete = 0")
        hooks(self, conn)
    monkeypatch.setattr(_PooledSqliteDatabase, "_add_conn_hooks", default_off)
    with DatabaseSessionService(db_path) as svc:
        fill(svc, sessions=3, events=3)
        for i in range(3):
            svc.delete_session(APP, USER, WORDS["session_id"] if i == 0 else f"{USER}-{i}")
        svc.delete_user(APP, USER)
        assert found(db_path) == []
    assert found(db_path) == [] and found(db_path, [BOB_WORD]) == [BOB_WORD]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc/PID/cmdline (Linux)")
@pytest.mark.parametrize("spelling", [["--token", SECRET], [f"--token={SECRET}"], ["--tok", SECRET], ["--to", SECRET],
                                      [f"--t={SECRET}"]])
def test_the_serve_token_leaves_the_process_command_line(spelling, tmp_path):
    """``adk-lite serve --token T``: the token opens every page, so it is a secret as a
    password is; ``ps`` (``/proc/PID/cmdline``) must not show it while the server runs."""
    pytest.importorskip("setproctitle")
    pytest.importorskip("uvicorn")
    from tests.test_cli import ROOT, make_db

    db = make_db(str(tmp_path / "db.sqlite3"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "adk_lite", "serve", db, "--port", str(port), *spelling],
                            env={**os.environ, "PYTHONPATH": ROOT}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert b"serving" in proc.stderr.readline()  # printed after the arguments are parsed
        line = open(f"/proc/{proc.pid}/cmdline", "rb").read()
        assert proc.poll() is None and b"serve" in line, line
        assert SECRET.encode() not in line, line
    finally:
        proc.kill()
        proc.wait(timeout=60)


@pytest.mark.parametrize("number", ["-9223372036854775809", "-9999999999999999999", "18446744073709551616"])
def test_an_integer_just_beyond_64_bits_is_refused_not_made_a_float(number, tmp_path, capsys):
    """orjson reads a 19-digit negative below -2**63 as a float without a word (a 20-digit
    number the exact reader caught): an export line holding one is refused with its line
    number, as any integer beyond 64 bits is, and nothing is created."""
    import json

    from adk_lite import codec
    from adk_lite.cli import main

    assert codec.loads_exact(f'{{"k": {number}}}') == {"k": int(number)}
    line = {"type": "session", "app_name": "a", "user_id": "u", "session_id": "s", "created_at": 1.0,
            "updated_at": 1.0, "revision": 0, "initial_state": {}, "forked_from": None, "state": {"k": 0},
            "events": []}
    text = (json.dumps({"type": "adk_lite_export", "format": 2}) + "\n"
            + json.dumps(line).replace('"k": 0', f'"k": {number}'))
    (tmp_path / "f.jsonl").write_text(text + "\n")
    out = str(tmp_path / "out.sqlite3")
    assert main(["import", str(tmp_path / "f.jsonl"), out, "--create"]) == 2
    assert "f.jsonl:2: state" in capsys.readouterr().err
    assert not os.path.exists(out)


def test_postgres_check_reports_constraints_and_unique_indexes_it_does_not_make(backend, target):
    """An extra unique index (one event id in two sessions then fails to append), a CHECK
    or another foreign key on adk_lite's tables changes what its writes do: ``check``
    names each; adk_lite's own keys and foreign key, and a unique index on one of its
    keys' columns, are not reported."""
    if backend != "postgres":
        pytest.skip("the SQLite file's whole schema is compared in test_restore_hostile")
    import psycopg

    from adk_lite import DatabaseSessionService

    extra = [("CREATE UNIQUE INDEX one_id ON adk_events (event_id)", "DROP INDEX one_id"),
             ("CREATE UNIQUE INDEX some_users ON adk_state (app_name, user_id, session_id, scope, state_key) "
              "WHERE user_id <> 'u'", "DROP INDEX some_users"),
             ("ALTER TABLE adk_events ADD CONSTRAINT no_z CHECK (user_id <> 'z')",
              "ALTER TABLE adk_events DROP CONSTRAINT no_z"),
             ("ALTER TABLE adk_state ADD CONSTRAINT uniq_key UNIQUE (state_key)",
              "ALTER TABLE adk_state DROP CONSTRAINT uniq_key")]
    with DatabaseSessionService(target) as svc:
        svc.create_session("app", "u", {"k": 1}, session_id="s")
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("CREATE UNIQUE INDEX same_key ON adk_events (app_name, user_id, session_id, event_id)")
            assert svc.store.check()["schema_problems"] == []  # one of our keys again: harmless
            for make, _drop in extra:
                conn.execute(make)
            try:
                problems = svc.store.check()["schema_problems"]
            finally:
                for _make, drop in extra:
                    conn.execute(drop)
                conn.execute("DROP INDEX same_key")
        assert svc.store.check()["schema_problems"] == []
    assert sorted(p.split(" (")[0] for p in problems) == [
        "constraint no_z on adk_events is not adk_lite's", "constraint uniq_key on adk_state is not adk_lite's",
        "unique index one_id on adk_events is not adk_lite's",
        "unique index some_users on adk_state is not adk_lite's"], problems


def test_a_callers_event_cannot_carry_the_update_keys_mark(svc_any):
    """The mark ``{"adk_lite": "update_keys"}`` tells fork's replay that a ``None`` in the
    event's delta deleted the key; the store deletes only for ``update_keys`` itself. A
    caller's event with that metadata was stored as a null and replayed as a deletion, so
    a fork cut after it lost the key the source still held. It is refused, nothing written."""
    from adk_lite import Event, EventActions

    svc = svc_any
    s = svc.create_session("a", "u", {"k": 1}, "s")
    forged = Event(invocation_id="i1", author="user", custom_metadata={"adk_lite": "update_keys"},
                   actions=EventActions(state_delta={"k": None}))
    with pytest.raises(ValueError, match="update_keys"):
        svc.append_event(s, forged)
    assert svc.get_session("a", "u", "s").events == [] and s.state == {"k": 1}
    svc.append_event(s, Event(invocation_id="i1", author="user", actions=EventActions(state_delta={"k": None})))
    svc.append_event(s, Event(invocation_id="i2", author="user", actions=EventActions(state_delta={"j": 2})))
    svc.update_keys("a", "u", "s", {"j": None})  # update_keys itself still deletes, and fork replays it
    svc.append_event(s := svc.get_session("a", "u", "s"), Event(invocation_id="i3", author="user"))
    assert svc.fork_session("a", "u", "s", new_session_id="f", before_invocation_id="i2").state == {"k": None}
    assert svc.fork_session("a", "u", "s", new_session_id="g", before_invocation_id="i3").state == {"k": None}
    assert svc.get_session("a", "u", "s").state == {"k": None}
    mine = next(e for e in svc.get_session("a", "u", "s").events if e.custom_metadata)
    assert svc.append_event(svc.get_session("a", "u", "s"), mine).id == mine.id  # a retry of update_keys' event
    with pytest.raises(ValueError, match="update_keys"):  # but not into another session
        svc.append_event(svc.get_session("a", "u", "f"), mine)


def test_an_adk_event_cannot_carry_the_update_keys_mark(target):
    """The same through the ADK adapter."""
    pytest.importorskip("google.adk")
    import asyncio

    from google.adk.events import Event as AdkEvent
    from google.adk.events.event_actions import EventActions as AdkActions

    from adk_lite.adk import DatabaseSessionService as AdkService

    async def run():
        svc = AdkService(target)
        try:
            s = await svc.create_session(app_name="a", user_id="u", session_id="s", state={"k": 1})
            with pytest.raises(ValueError, match="update_keys"):
                await svc.append_event(s, AdkEvent(invocation_id="i1", author="user",
                                                   custom_metadata={"adk_lite": "update_keys"},
                                                   actions=AdkActions(state_delta={"k": None})))
            again = await svc.get_session(app_name="a", user_id="u", session_id="s")
            assert again.events == [] and again.state == {"k": 1}
        finally:
            await svc.close()
    asyncio.run(run())


def test_a_setting_in_the_memory_index_is_refused_by_restore_and_check(tmp_path, capsys):
    """The memories' FTS5 index keeps settings as the events' does: a forged ``rank``
    function there made every memory search fail; restore refuses it and check says so."""
    import sqlite3

    from adk_lite import CorruptDatabaseError
    from adk_lite.models import MEMORIES_FTS
    from adk_lite.restore import restore
    from tests.test_restore_hostile import cli_check, make_db

    backup = make_db(str(tmp_path / "backup.sqlite3"))
    conn = sqlite3.connect(backup)
    conn.execute(f"INSERT INTO {MEMORIES_FTS} ({MEMORIES_FTS}, rank) VALUES ('rank', 'nosuchfn()')")
    conn.commit()
    conn.close()
    db = make_db(str(tmp_path / "live.sqlite3"))
    with pytest.raises(CorruptDatabaseError, match=MEMORIES_FTS):
        restore(backup, db)
    code, found = cli_check(backup, capsys)
    assert code == 1 and any(MEMORIES_FTS in p and "rank" in p for p in found["problems"]), found
