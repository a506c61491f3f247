"""The ``adk-lite`` command, run through its entry points on real database files; the
commands' results (stats, sessions, show, prune, export, import conflicts, a database
that is missing or has no adk_lite tables) on PostgreSQL too."""

import configparser
import hashlib
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time

import orjson
import pytest

from adk_lite import SCHEMA_VERSION, __version__, DatabaseSessionService, Event, EventActions
from adk_lite.cli import COMMANDS, main
from tests.conftest import on_postgres, pg_databases

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAY = 86400.0
READ_ONLY_COMMANDS = (["stats"], ["sessions"], ["show", None, "app", "alice", "chat-0"], ["export"], ["check"],
                      ["prune", "--older-than", "30d", "--dry-run"])


def fingerprint(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest(), os.stat(path).st_mtime_ns


def tables(target):
    """Every row of every adk_lite table, for comparing two databases' contents."""
    def read(conn):
        return {t: sorted(map(tuple, conn.execute(f"SELECT * FROM {t}").fetchall()), key=repr)
                for t in ("adk_sessions", "adk_state", "adk_metadata")} | {
            "adk_events": list(map(tuple, conn.execute(
                "SELECT app_name, user_id, session_id, event_id, invocation_id, author, branch, timestamp, body "
                "FROM adk_events ORDER BY app_name, user_id, session_id, id").fetchall()))}
    with DatabaseSessionService(target, read_only=True) as svc:
        return svc.store.read(read)


def make_db(path):
    """Two apps, three users, 6 sessions (2 of them last updated 40 days ago), tool calls, all scopes."""
    now = time.time()
    with DatabaseSessionService(path) as svc:
        for i, (app, user) in enumerate([("app", "alice"), ("app", "alice"), ("app", "bob"), ("other", "carol")]):
            s = svc.create_session(app, user, state={"k": i, "user:lang": "en", "app:version": 2},
                                   session_id=f"chat-{i}")
            svc.append_events(s, [
                Event(author="user", invocation_id=f"inv-{i}", timestamp=now - 60 + i,
                      content={"role": "user", "parts": [{"text": f"Hello\nnumber {i}"}]}),
                Event(author="agent", invocation_id=f"inv-{i}", timestamp=now - 50 + i, branch="root.agent",
                      content={"role": "model", "parts": [{"function_call": {"name": "get_weather",
                                                                              "args": {"city": "Paris"}}}]}),
                Event(author="agent", invocation_id=f"inv-{i}", timestamp=now - 40 + i,
                      content={"role": "user", "parts": [{"function_response": {"name": "get_weather",
                                                                                  "response": {"t": 21.5}}}]},
                      actions=EventActions(state_delta={"city": "Paris", "temp:x": 1})),
            ] + [Event(author="user", invocation_id="more", timestamp=now - 30 + j) for j in range(i)])
        for i in range(2):
            s = svc.create_session("app", "old", state={"gone": True}, session_id=f"old-{i}")
            svc.append_events(s, [Event(author="user", timestamp=now - 40 * DAY + j,
                                        content={"parts": [{"text": "ancient"}]}) for j in range(3)])
        svc.update_keys("app", "alice", "chat-0", {"k": None})
    return path


@pytest.fixture
def db(tmp_path):
    """A database file made by make_db."""
    return make_db(str(tmp_path / "sessions.sqlite3"))


@pytest.fixture
def db_any(target):
    """The same data on the test's backend (a file, or a PostgreSQL URL)."""
    return make_db(target)


def run(capsys, *argv):
    """Call main(argv) in-process; return (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse: --help, usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return orjson.loads(out)


def with_db(argv, db):
    argv = list(argv)
    if None in argv:
        argv[argv.index(None)] = db
    else:
        argv.insert(1, db)
    return argv


# -- entry points, help --------------------------------------------------------------

def test_python_dash_m_entry_point(db):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "adk_lite", "stats", db, "--json"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(proc.stdout)["sessions"] == 6
    proc = subprocess.run([sys.executable, "-m", "adk_lite", "--help"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0
    for name in COMMANDS:
        assert f"adk-lite {name} " in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "adk_lite", "stats", db + ".missing"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"{db}.missing does not exist" in proc.stderr


def test_console_script_is_declared():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    assert cfg["options.entry_points"]["console_scripts"].split() == ["adk-lite", "=", "adk_lite.cli:main"]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_help_shows_an_example(capsys, name):
    code, out, _ = run(capsys, name, "--help")
    assert code == 0
    assert "example:" in out and f"adk-lite {name} " in out.split("example:")[1]


def test_usage_errors_are_one_line_exit_2(capsys, db):
    for argv in (["nosuchcommand"], ["prune", db], ["prune", db, "--older-than", "soon"],
                 ["sessions", db, "--limit", "0"], ["sessions", db, "--after", "garbage"],
                 ["show", db, "app", "alice", "nope"], ["show", db, "app", "alice", "chat-0", "--events", "-1"]):
        code, out, err = run(capsys, *argv)
        assert code == 2, argv
        assert err.count("\n") == 1 and "Traceback" not in err and err.startswith("adk-lite"), (argv, err)


# -- stats, sessions, show -----------------------------------------------------------

def test_stats(capsys, db_any):
    db = db_any
    stats = run_json(capsys, "stats", db, "--top", "2")
    assert (stats["sessions"], stats["events"], stats["apps"], stats["users"]) == (6, 3 * 4 + 6 + 6 + 1, 2, 4)
    if not on_postgres(db):  # a server has no file: its facts are in tests/test_postgres.py
        assert stats["db_bytes"] == os.path.getsize(db) and stats["wal_bytes"] == 0 and stats["shm_bytes"] == 0
    assert stats["per_app"] == [{"app_name": "app", "sessions": 5, "users": 3, "events": 3 + 5 + 4 + 6 + 1},
                                {"app_name": "other", "sessions": 1, "users": 1, "events": 6}]
    assert [(s["session_id"], s["events"]) for s in stats["largest_sessions"]] == [("chat-3", 6), ("chat-2", 5)]
    code, out, _ = run(capsys, "stats", db)
    assert code == 0
    assert re.search(r"sessions\s+6 in 2 apps, 4 users", out)
    assert re.search(r"^other\s+1\s+1\s+6$", out, re.M)
    assert re.search(r"^other\s+carol\s+chat-3\s+6$", out, re.M)


def test_sessions_pages_with_the_cursor(capsys, db_any):
    db = db_any
    seen, after = [], []
    while True:
        page = run_json(capsys, "sessions", db, "--limit", "4", *after)
        assert 0 < len(page["sessions"]) <= 4
        seen += page["sessions"]
        if not page["next_cursor"]:
            break
        after = ["--after", page["next_cursor"]]
    assert len(seen) == 6 and len({(s["app_name"], s["user_id"], s["session_id"]) for s in seen}) == 6
    assert [s["updated_at"] for s in seen] == sorted(s["updated_at"] for s in seen)
    by_id = {s["session_id"]: s for s in seen}
    assert by_id["chat-0"]["events"] == 4 and by_id["old-1"]["events"] == 3
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", by_id["chat-3"]["last_update"])
    alice = run_json(capsys, "sessions", db, "--app", "app", "--user", "alice")
    assert [s["session_id"] for s in alice["sessions"]] == ["chat-1", "chat-0"] and alice["next_cursor"] is None
    code, out, err = run(capsys, "sessions", db, "--limit", "1")
    assert code == 0 and re.search(r"^app\s+old\s+old-0\s+3\s+\S+Z$", out, re.M)
    assert "next page: --after " in err and "next page" not in out  # a pipe gets the rows only


def test_show(capsys, db_any):
    db = db_any
    code, out, _ = run(capsys, "show", db, "app", "alice", "chat-1", "--events", "3")
    assert code == 0
    assert "chat-1: 4 events" in out
    assert "app:version = 2" in out and 'user:lang = "en"' in out and 'city = "Paris"' in out
    lines = out.splitlines()
    assert re.search(r"Z\s+agent\s+call get_weather\(\{\"city\":\"Paris\"\}\)$", lines[-3])
    assert re.search(r"Z\s+agent\s+response get_weather$", lines[-2])
    assert re.search(r"Z\s+user\s+-$", lines[-1])
    doc = run_json(capsys, "show", db, "app", "alice", "chat-1", "--events", "2")
    assert doc["event_count"] == 4 and len(doc["events"]) == 2
    assert doc["state"] == {"app:version": 2, "user:lang": "en", "k": 1, "city": "Paris"}
    code, out, _ = run(capsys, "show", db, "app", "alice", "chat-1", "--events", "10")
    assert "Hello number 1" in out  # a multi-line text on one line


# -- read-only guarantee, missing and bad files ----------------------------------------

def test_read_only_commands_never_change_the_file(capsys, db, tmp_path):
    before = fingerprint(db)
    time.sleep(0.02)
    for argv in READ_ONLY_COMMANDS:
        code, _, err = run(capsys, *with_db(argv, db))
        assert code == 0, (argv, err)
        assert fingerprint(db) == before, argv
        assert sorted(os.listdir(tmp_path)) == ["sessions.sqlite3"], argv  # no -wal/-shm left behind


def test_read_only_commands_keep_a_writers_side_files(capsys, db):
    with DatabaseSessionService(db) as svc:
        svc.create_session("app", "live", session_id="live")
        assert run_json(capsys, "stats", db)["sessions"] == 7
        assert os.path.exists(db + "-wal")
        svc.create_session("app", "live", session_id="live-2")  # the writer is unharmed
    assert run_json(capsys, "stats", db)["sessions"] == 8


def adk_tables(url):
    """The adk_lite tables in a PostgreSQL database."""
    with pg_databases().admin(url.rsplit("/", 1)[1]) as conn:
        return conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE %s", ("adk%",)).fetchall()


@pytest.mark.parametrize("argv", READ_ONLY_COMMANDS + (["vacuum"], ["prune", "--older-than", "1d"],
                                                       ["erase", "--app", "app", "--user", "u", "--yes"], ["trim"]))
def test_missing_database_is_an_error_and_not_created(capsys, backend, new_target, tmp_path, argv):
    """A missing file, or a server database without adk_lite's tables: one line, exit 2,
    and no file, folder or table made."""
    if backend == "sqlite":
        path, says = str(tmp_path / "sub" / "missing.sqlite3"), "does not exist"
    else:
        path, says = new_target(), "has no adk_lite tables"
    code, out, err = run(capsys, *with_db(argv, path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and says in err, err
    if backend == "sqlite":
        assert not (tmp_path / "sub").exists()
    else:
        assert adk_tables(path) == []


def test_default_path_is_the_library_zero_config_one(capsys, db, tmp_path, monkeypatch):
    monkeypatch.setenv("ADK_LITE_DB", db)
    assert run_json(capsys, "stats")["path"] == db
    monkeypatch.delenv("ADK_LITE_DB")
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "stats")
    assert code == 2 and os.path.join(".adk", "sessions.sqlite3") + " does not exist" in err
    assert not (tmp_path / ".adk").exists()


def bad_files(tmp_path, db):
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not SQLite\n" * 300)
    truncated = tmp_path / "truncated.sqlite3"
    truncated.write_bytes(open(db, "rb").read()[:5000])
    adk = str(tmp_path / "adk.sqlite3")
    conn = sqlite3.connect(adk)
    conn.executescript("CREATE TABLE sessions (id TEXT); CREATE TABLE events (id TEXT);")
    conn.close()
    newer = str(tmp_path / "newer.sqlite3")
    make_db(newer)
    conn = sqlite3.connect(newer)
    conn.execute("UPDATE adk_metadata SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    return {"not a SQLite": str(junk), "truncated": str(truncated), "not an adk_lite": adk, "newer": newer}


def test_bad_files_are_refused_with_one_line_and_left_alone(capsys, db, tmp_path):
    export = tmp_path / "export.jsonl"
    assert run(capsys, "export", db, "-o", export)[0] == 0
    for words, path in bad_files(tmp_path, db).items():
        before = fingerprint(path)
        for argv in READ_ONLY_COMMANDS + (["vacuum"], ["prune", "--older-than", "1d"], ["import", export, None]):
            code, out, err = run(capsys, *with_db(argv, path))
            assert code == 2, (words, argv)
            assert err.count("\n") == 1 and words in err and path in err and "Traceback" not in err, (argv, err)
            assert fingerprint(path) == before, (words, argv)


def test_a_locked_database_is_reported_and_untouched(capsys, db, tmp_path):
    # an export of sessions the locked file does not hold yet, so importing it must write
    export = tmp_path / "export.jsonl"
    other = str(tmp_path / "other.sqlite3")
    with DatabaseSessionService(other) as svc:
        svc.create_session("app", "dave", session_id="new-chat", state={"k": 1})
    assert run(capsys, "export", other, "-o", export)[0] == 0
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        before = fingerprint(db)
        for argv in (["vacuum"], ["prune", "--older-than", "1d"], ["import", export, None]):
            started = time.monotonic()
            code, _, err = run(capsys, *with_db(argv, db), "--busy-timeout", "0.2")
            assert code == 2, argv
            assert "locked" in err and "busy_timeout=0.2" in err and err.count("\n") == 1, err
            assert time.monotonic() - started < 30
        assert run_json(capsys, "stats", db)["sessions"] == 6  # WAL readers are not blocked by the writer
        assert fingerprint(db) == before
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_writer_that_lets_go_in_time_is_waited_for(capsys, db):
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: holder.execute("ROLLBACK"))
    release.start()
    try:
        code, out, err = run(capsys, "prune", db, "--older-than", "30d", "--busy-timeout", "20")
        assert code == 0, err
        assert out.startswith("deleted 2 sessions and 6 events")
    finally:
        release.join()
        holder.close()


# -- prune and vacuum ---------------------------------------------------------------------

def test_prune_dry_run_counts_and_real_run_deletes(capsys, db_any):
    db = db_any
    dry = run_json(capsys, "prune", db, "--older-than", "30d", "--dry-run")
    assert (dry["dry_run"], dry["sessions"], dry["events"], dry["vacuum"]) == (True, 2, 6, None)
    assert run_json(capsys, "stats", db)["sessions"] == 6
    assert run_json(capsys, "prune", db, "--older-than", "30d", "--app", "other")["sessions"] == 0
    assert run_json(capsys, "prune", db, "--older-than", "50d")["sessions"] == 0
    real = run_json(capsys, "prune", db, "--older-than", "30d", "--vacuum")
    assert (real["dry_run"], real["sessions"], real["events"]) == (False, 2, 6)
    if not on_postgres(db):  # PostgreSQL's VACUUM (not FULL) keeps freed space in the table for reuse
        assert real["vacuum"]["bytes_after"] <= real["vacuum"]["bytes_before"]
    listed = run_json(capsys, "sessions", db)["sessions"]
    assert {s["session_id"] for s in listed} == {"chat-0", "chat-1", "chat-2", "chat-3"}
    with DatabaseSessionService(db) as svc:
        assert svc.store.read(lambda c: c.execute("SELECT COUNT(*) FROM adk_events WHERE user_id = 'old'")
                              .fetchone()[0]) == 0
    code, out, _ = run(capsys, "prune", db, "--older-than", "10s", "--user", "carol")
    assert code == 0 and out.startswith("deleted 1 session and 6 events not updated since ")


def test_vacuum_reports_bytes(capsys, db):
    with DatabaseSessionService(db) as svc:
        s = svc.create_session("app", "big", session_id="big")
        svc.append_events(s, [Event(author="user", content={"parts": [{"text": "x" * 2000}]}) for _ in range(100)])
        svc.delete_session("app", "big", "big")
    result = run_json(capsys, "vacuum", db)
    assert result["bytes_after"] < result["bytes_before"]
    assert result["bytes_after"] == os.path.getsize(db)
    code, out, _ = run(capsys, "vacuum", db)
    assert code == 0 and re.match(r"\d+ -> \d+ bytes \(main file \+ WAL\), nothing reclaimed", out)


# -- check -----------------------------------------------------------------------------------

def test_check_healthy_and_with_problems(capsys, db):
    doc = run_json(capsys, "check", db)
    assert doc["ok"] is True and doc["schema_version"] == SCHEMA_VERSION and doc["problems"] == []
    assert doc["integrity_check"] == ["ok"]
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA foreign_keys = 0")
    conn.execute("INSERT INTO adk_events (app_name, user_id, session_id, event_id, invocation_id, author, timestamp,"
                 " body) VALUES ('app', 'ghost', 'none', 'e1', '', 'user', 0, '{}')")
    conn.execute("INSERT INTO adk_state VALUES ('app', 'ghost', 'none', 'session', 'k', '1', 0)")
    conn.commit()
    conn.close()
    code, out, _ = run(capsys, "check", db)
    assert code == 1
    assert "problem: foreign_key_check: adk_events row" in out
    assert "problem: 1 session-scope state row belongs to no session" in out
    code, out, _ = run(capsys, "check", db, "--json")
    assert code == 1 and orjson.loads(out)["foreign_key_violations"] == 1


# -- export and import -------------------------------------------------------------------------

def test_export_import_round_trip_into_an_empty_file(capsys, db, tmp_path):
    export = str(tmp_path / "all.jsonl")
    summary = run_json(capsys, "export", db, "-o", export)
    assert summary == {"sessions": 6, "events": 25, "state_records": 5, "memories": 0, "artifact_versions": 0,
                       "output": export}
    code, streamed, _ = run(capsys, "export", db)
    assert code == 0 and streamed.encode() == open(export, "rb").read()
    records = [orjson.loads(line) for line in streamed.splitlines()]
    assert records[0] == {"type": "adk_lite_export", "format": 2, "adk_lite": __version__}
    assert [r["type"] for r in records[1:]] == ["app_state", "user_state", "user_state", "app_state", "user_state"] + [
        "session"] * 6
    target = str(tmp_path / "new" / "restored.sqlite3")
    os.makedirs(os.path.dirname(target))
    code, _, err = run(capsys, "import", export, target)
    assert code == 2 and "does not exist (import --create makes a new one)" in err
    assert not os.path.exists(target)
    report = run_json(capsys, "import", export, target, "--create")
    assert (report["created"], report["events"], report["conflicts"]) == (6, 25, [])
    original, restored = tables(db), tables(target)
    assert restored["adk_events"] == original["adk_events"]  # bodies byte for byte, each session in append order
    strip = lambda rows, n: [r[:n] for r in rows]  # noqa: E731 (revision and updated_at of state rows differ)
    assert strip(restored["adk_sessions"], 5) == strip(original["adk_sessions"], 5)
    assert strip(restored["adk_state"], 6) == strip(original["adk_state"], 6)
    with DatabaseSessionService(db, read_only=True) as a, DatabaseSessionService(target, read_only=True) as b:
        for s in a.list_sessions():
            left, right = a.get_session(s.app_name, s.user_id, s.id), b.get_session(s.app_name, s.user_id, s.id)
            assert (left.state, left.events, left.last_update_time) == (right.state, right.events,
                                                                          right.last_update_time)
    again = run_json(capsys, "import", export, target)
    assert (again["created"], again["unchanged"], again["state_keys"], again["conflicts"]) == (0, 6, 0, [])
    assert tables(target) == restored  # importing twice changes nothing


def test_export_filters(capsys, db_any):
    db = db_any
    code, out, _ = run(capsys, "export", db, "--app", "app", "--user", "bob")
    records = [orjson.loads(line) for line in out.splitlines()][1:]
    assert [(r["type"], r.get("user_id"), r.get("session_id")) for r in records] == [
        ("app_state", None, None), ("user_state", "bob", None), ("session", "bob", "chat-2")]
    assert records[2]["state"] == {"k": 2, "city": "Paris"}  # session scope only
    assert len(records[2]["events"]) == 5 and records[2]["events"][1]["branch"] == "root.agent"


def test_import_reports_conflicts_unless_replace(capsys, db_any, tmp_path):
    db = db_any
    export = tmp_path / "all.jsonl"
    run(capsys, "export", db, "-o", export)
    lines = export.read_bytes().splitlines()
    records = [orjson.loads(line) for line in lines]
    for r in records:
        if r.get("session_id") == "chat-2":
            r["events"][0]["body"]["content"]["parts"][0]["text"] = "edited"
        if r["type"] == "app_state" and r["app_name"] == "app":
            r["state"]["version"] = 3
    changed = tmp_path / "changed.jsonl"
    changed.write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    before = tables(db)
    code, out, _ = run(capsys, "import", changed, db)
    assert code == 1
    assert "conflict line 9: session app/bob chat-2 differs" in out
    assert "conflict line 2: app_state app/- version differs" in out
    assert tables(db) == before
    code, out, _ = run(capsys, "import", changed, db, "--replace", "--json")
    report = orjson.loads(out)
    assert code == 0 and (report["replaced"], report["unchanged"], report["state_keys"]) == (1, 5, 1)
    with DatabaseSessionService(db, read_only=True) as svc:
        assert svc.get_session("app", "bob", "chat-2").events[0].content["parts"][0]["text"] == "edited"
        assert svc.get_app_state("app") == {"version": 3}


def test_import_checks_every_line_before_writing(capsys, db, tmp_path):
    export = tmp_path / "all.jsonl"
    run(capsys, "export", db, "-o", export)
    good = export.read_bytes().splitlines()
    target = tmp_path / "t.sqlite3"
    for bad, words in ((b"{not json", "bad.jsonl:3:"), (b'{"type": "session", "app_name": "a"}', "user_id"),
                       (b'{"type": "x", "app_name": "a", "user_id": "u", "state": {}}', "type 'x'"),
                       (good[-1].replace(b'"timestamp":', b'"timestamp":"soon","x":'), "timestamp")):
        path = tmp_path / "bad.jsonl"
        path.write_bytes(b"\n".join(good[:2] + [bad] + good[2:]))
        code, _, err = run(capsys, "import", path, target, "--create")
        assert code == 2 and words in err and err.count("\n") == 1, err
        assert not target.exists()
    code, _, err = run(capsys, "import", tmp_path / "none.jsonl", target)
    assert code == 2 and "none.jsonl does not exist" in err


def test_progress_bar_only_when_stderr_is_a_terminal(capsys, db, tmp_path, monkeypatch):
    pytest.importorskip("tqdm")
    run(capsys, "export", db, "-o", tmp_path / "a.jsonl")
    assert capsys.readouterr().err == ""

    class Terminal:
        def __init__(self):
            self.text = []

        def isatty(self):
            return True

        def write(self, s):
            self.text.append(s)

        def flush(self):
            pass

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["export", db, "-o", str(tmp_path / "b.jsonl")]) == 0
    assert "export" in "".join(terminal.text) and "session" in "".join(terminal.text)
    terminal.text.clear()
    monkeypatch.setitem(sys.modules, "tqdm", None)  # tqdm not installed: no bar, no error
    assert main(["export", db, "-o", str(tmp_path / "c.jsonl")]) == 0
    assert terminal.text == []
    assert (tmp_path / "c.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()


# -- documentation -------------------------------------------------------------------------------

def test_docs_document_every_command_with_an_example():
    with open(os.path.join(ROOT, "docs", "cli.md")) as fh:
        page = fh.read()
    section = page.split("## Command line", 1)[1].split("\n## ", 1)[0]
    blocks = "\n".join(re.findall(r"```(?:bash|console)?\n(.*?)```", section, re.S))
    for name in COMMANDS:
        assert re.search(rf"^\s*(\$ )?adk-lite {name}\b", blocks, re.M), name
        assert f"`{name}`" in section, name
    assert "exit code" in section.lower()
