"""``adk-lite`` at its edges: missing/empty files, out-of-range numbers, forged cursors,
broken pipes, values that cannot be shown, JSON errors, wording. Never a traceback."""

import base64
import importlib.util
import os
import sqlite3
import subprocess
import sys

import orjson
import pytest

from adk_lite import DatabaseSessionService, Event, transfer
from adk_lite.cli import COMMANDS, iso, main

from .test_cli import ROOT, db, make_db, run  # noqa: F401 (db is a fixture)

ENV = dict(os.environ, PYTHONPATH=ROOT)


HAVE_ADK = importlib.util.find_spec("google") is not None and importlib.util.find_spec("google.adk") is not None


def every_command(path, export):
    """One call of each command (the two that need google-adk only where it is installed)."""
    return [argv for argv in _commands(path, export) if HAVE_ADK or not argv[0].endswith("-adk")]


def _commands(path, export):
    return [["stats", path], ["sessions", path], ["search", path, "refund"], ["show", path, "app", "alice", "chat-0"],
            ["artifacts", path, "app", "alice"], ["artifact", path, "app", "alice", "user:x", "-o", path + ".out"],
            ["export", path],
            ["check", path], ["prune", path, "--older-than", "1d", "--dry-run"], ["prune", path, "--older-than", "1d"],
            ["vacuum", path], ["import", export, path], ["import", export, path, "--replace"],
            ["import-adk", export, path], ["export-adk", path, export + ".adk.db"],
            ["backup", path, path + ".backup"],
            ["restore", path, os.path.join(os.path.dirname(path), "restored.db")],  # the BACKUP is refused
            ["fork", path, "app", "alice", "chat-0"], ["erase", path, "--app", "app", "--user", "alice", "--yes"],
            ["erase", path, "--app", "app", "--user", "alice", "--dry-run"], ["trim", path], ["trim", path, "--dry-run"],
            ["copy", path, path + ".copy"]]  # SRC is checked before DST is made


def run_json_ok(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return orjson.loads(out)


def one_line_error(code, out, err, expected_code=2):
    assert code == expected_code and out == "", (code, out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("kind", ["missing", "empty", "no tables"])
def test_every_command_refuses_a_missing_or_empty_database_and_creates_nothing(capsys, tmp_path, kind):
    path = str(tmp_path / "x.db")
    export = str(tmp_path / "e.jsonl")
    open(export, "wb").write(orjson.dumps(transfer.header()) + b"\n")
    if kind == "empty":
        open(path, "wb").close()
    elif kind == "no tables":
        sqlite3.connect(path).execute("PRAGMA user_version = 1").connection.close()
    before = sorted(os.listdir(tmp_path)), os.path.exists(path) and open(path, "rb").read()
    assert len(COMMANDS) == 20
    for argv in every_command(path, export):
        code, out, err = run(capsys, *argv)
        one_line_error(code, out, err)
        assert ("does not exist" if kind == "missing" else "empty" if kind == "empty" else "adk_lite tables") in err, (
            argv, err)
        assert (sorted(os.listdir(tmp_path)), os.path.exists(path) and open(path, "rb").read()) == before, argv
    assert main(["import", export, path, "--create"]) == 0  # only --create makes a database
    capsys.readouterr()
    with DatabaseSessionService(path, read_only=True) as svc:
        assert svc.list_sessions() == []


def test_create_is_documented_in_import_help(capsys):
    code, out, _ = run(capsys, "import", "--help")
    assert code == 0 and "--create" in out


@pytest.mark.parametrize("argv, flag", [
    (["sessions", None, "--limit", "99999999999999999999"], "--limit"),
    (["sessions", None, "--limit", "9223372036854775808"], "--limit"),
    (["sessions", None, "--limit", "²"], "--limit"),
    (["sessions", None, "--limit", "-5"], "--limit"),
    (["stats", None, "--top", "99999999999999999999"], "--top"),
    (["stats", None, "--top", "0"], "--top"),
    (["show", None, "app", "alice", "chat-0", "--events", "-1"], "--events"),
    (["show", None, "app", "alice", "chat-0", "--events", "99999999999999999999"], "--events"),
    (["prune", None, "--older-than", "99999999999999999999w"], "--older-than"),
    (["prune", None, "--older-than", "36501d"], "--older-than"),
    (["prune", None, "--older-than", "1e9d"], "--older-than"),
    (["prune", None, "--older-than", "٣d"], "--older-than"),
    (["stats", None, "--busy-timeout", "nan"], "--busy-timeout"),
    (["stats", None, "--busy-timeout", "1e400"], "--busy-timeout"),
])
def test_out_of_range_numbers_name_the_flag(capsys, db, argv, flag):
    argv = [db if a is None else a for a in argv]
    for extra in ([], ["--json"]):
        code, out, err = run(capsys, *argv, *extra)
        one_line_error(code, out, err)
        assert flag in err and "num_recent_events" not in err, err
        if extra:
            assert "error" in orjson.loads(err)


def test_largest_counts_and_durations_are_accepted(capsys, db):
    assert run(capsys, "stats", db, "--top", str(2**63 - 1))[0] == 0
    assert len(run_json_ok(capsys, "sessions", db, "--limit", str(2**63 - 1))["sessions"]) == 6
    assert run(capsys, "show", db, "app", "alice", "chat-0", "--events", str(2**63 - 1))[0] == 0
    code, out, err = run(capsys, "prune", db, "--older-than", "36500d", "--dry-run")
    assert code == 0 and out.startswith("would delete 0 sessions and 0 events not updated since 1"), (out, err)


@pytest.mark.parametrize("cursor", [
    "garbage", "", "====", base64.urlsafe_b64encode(b"[99999999999999999999,\"a\",\"b\",\"c\"]").decode(),
    base64.urlsafe_b64encode(b"[18446744073709551615,\"a\",\"b\",\"c\"]").decode(),
    base64.urlsafe_b64encode(b"[1e400,\"a\",\"b\",\"c\"]").decode(),
    base64.urlsafe_b64encode(b"[1,2,3,4]").decode(), base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    base64.urlsafe_b64encode(b"[" * 5000).decode()])
def test_forged_cursors_are_refused_naming_after(capsys, db, cursor):
    code, out, err = run(capsys, "sessions", db, "--after", cursor)
    if code == 0:  # a well-formed key that happens to decode: a page, never a crash
        assert cursor and "Traceback" not in err
        return
    one_line_error(code, out, err)
    assert "--after" in err


def test_json_before_or_after_the_command(capsys, db):
    for argv in (["--json", "stats", db], ["stats", db, "--json"], ["--json", "--busy-timeout", "1", "stats", db]):
        code, out, err = run(capsys, *argv)
        assert code == 0 and orjson.loads(out)["sessions"] == 6, (argv, err)
    code, out, err = run(capsys, "--json", "stats", db + ".missing")
    one_line_error(code, out, err)
    assert orjson.loads(err)["error"].endswith("does not exist")
    code, out, err = run(capsys, "--json", "sessions", db, "--limit", "x")
    one_line_error(code, out, err)
    assert "--limit" in orjson.loads(err)["error"]


def test_show_with_too_few_arguments_says_what_it_needs(capsys, db):
    for argv in (["show"], ["show", "app", "alice", "chat-0"], ["show", db]):
        code, out, err = run(capsys, *argv)
        one_line_error(code, out, err)
        assert "show needs DB APP USER SESSION" in err, err


def test_wording_is_singular_when_one(capsys, tmp_path):
    path = str(tmp_path / "one.db")
    with DatabaseSessionService(path) as svc:
        s = svc.create_session("app", "u", session_id="s")
        svc.append_event(s, Event(author="user", timestamp=1.0))
    code, out, _ = run(capsys, "stats", path)
    assert "sessions    1 in 1 app, 1 user" in out
    code, out, _ = run(capsys, "export", path, "-o", tmp_path / "e.jsonl")
    assert out.startswith("exported 1 session (1 event), 0 app/user state records and 0 artifact versions")
    code, out, _ = run(capsys, "prune", path, "--older-than", "1d")
    assert out.startswith("deleted 1 session and 1 event not updated")


def test_stored_values_that_cannot_be_shown_do_not_crash(capsys, tmp_path):
    assert iso(1e19) == "1e+19" and iso(-1e19) == "-1e+19" and iso(2.0**63) and iso(None) == ""
    path = str(tmp_path / "odd.db")
    with DatabaseSessionService(path) as svc:
        s = svc.create_session("app", "u", session_id="s")
        svc.append_event(s, Event(author="user", timestamp=1.0, content={"parts": "not a list"}))
        svc.append_event(s, Event(author="user", timestamp=2.0, content="text"))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE adk_sessions SET updated_at = 1e19")
    conn.execute("UPDATE adk_events SET timestamp = -1e300 WHERE timestamp = 1.0")
    conn.execute("INSERT INTO adk_events (app_name, user_id, session_id, event_id, invocation_id, author, timestamp,"
                 " body) VALUES ('app', 'u', 's', 'odd', '', 'user', 3, '{\"content\": {\"parts\": [1, null,"
                 " {\"function_call\": 5}]}, \"actions\": {\"state_delta\": []}}')")
    conn.commit()
    conn.close()
    for argv in (["sessions", path], ["show", path, "app", "u", "s"], ["stats", path], ["export", path],
                 ["prune", path, "--older-than", "1s", "--dry-run"]):
        for extra in ([], ["--json"]):
            code, out, err = run(capsys, *argv, *extra)
            assert code == 0 and err == "", (argv, err)
    code, out, _ = run(capsys, "show", path, "app", "u", "s")
    assert "1e+19" in out and "-1e+300" in out


def test_a_closed_pipe_exits_0_quietly(tmp_path):
    path = str(tmp_path / "many.db")
    with DatabaseSessionService(path) as svc:
        for i in range(3000):
            svc.create_session("app", f"user-{i}", session_id=f"session-{i}", state={"k": "x" * 50})
    for argv in (["sessions", path, "--limit", "3000"], ["export", path], ["sessions", path, "--json"]):
        shell = f"{sys.executable} -m adk_lite {' '.join(argv)} | head -2 > /dev/null; echo ${{PIPESTATUS[0]}}"
        proc = subprocess.run(["bash", "-c", shell], env=ENV, capture_output=True, text=True, timeout=120)
        assert proc.stdout.strip() == "0" and proc.stderr == "", (argv, proc.stdout, proc.stderr)


def test_stdout_that_is_the_database_is_refused(tmp_path):
    path = make_db(str(tmp_path / "s.db"))
    size = os.path.getsize(path)
    proc = subprocess.run(["bash", "-c", f"{sys.executable} -m adk_lite export {path} >> {path}"], env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "standard output is the database" in proc.stderr
    assert os.path.getsize(path) == size


def test_import_file_that_is_the_database_is_refused(capsys, db):
    code, out, err = run(capsys, "import", db, db)
    one_line_error(code, out, err)
    assert "is the database" in err
