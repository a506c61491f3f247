"""``adk-lite`` at its edges: missing/empty files, out-of-range numbers, forged cursors,
broken pipes, values that cannot be shown, JSON errors, wording. Never a traceback."""

import base64
import importlib.util
import os
import re
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
    return [["stats", path], ["usage", path], ["sessions", path], ["search", path, "refund"],
            ["show", path, "app", "alice", "chat-0"], ["memory", path, "app", "alice", "words"],
            ["artifacts", path, "app", "alice"], ["artifact", path, "app", "alice", "user:x", "-o", path + ".out"],
            ["export", path],
            ["check", path], ["prune", path, "--older-than", "1d", "--dry-run"], ["prune", path, "--older-than", "1d"],
            ["vacuum", path], ["import", export, path], ["import", export, path, "--replace"],
            ["import-adk", export, path], ["export-adk", path, export + ".adk.db"],
            ["backup", path, path + ".backup"],
            ["restore", path, os.path.join(os.path.dirname(path), "restored.db")],  # the BACKUP is refused
            ["fork", path, "app", "alice", "chat-0"], ["erase", path, "--app", "app", "--user", "alice", "--yes"],
            ["erase", path, "--app", "app", "--user", "alice", "--dry-run"], ["trim", path], ["trim", path, "--dry-run"],
            ["copy", path, path + ".copy"],  # SRC is checked before DST is made
            ["serve", path, "--port", "0"]]


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
    assert {argv[0] for argv in _commands(path, export)} == set(COMMANDS)  # every command is tried
    for argv in every_command(path, export):
        code, out, err = run(capsys, *argv)
        one_line_error(code, out, err)
        expected = "does not exist" if kind == "missing" else "empty" if kind == "empty" else "adk_lite tables"
        # import-adk checks its SOURCE (here not an ADK file) before it opens a DB that exists
        source_refused = argv[0] == "import-adk" and "cannot be read as an SQLite database" in err
        assert expected in err or source_refused, (argv, err)
        assert (sorted(os.listdir(tmp_path)), os.path.exists(path) and open(path, "rb").read()) == before, argv
    assert main(["import", export, path, "--create"]) == 0  # only --create makes a database
    capsys.readouterr()
    with DatabaseSessionService(path, read_only=True) as svc:
        assert svc.list_sessions() == []


def test_create_is_documented_in_import_help(capsys):
    code, out, _ = run(capsys, "import", "--help")
    assert code == 0 and "--create" in out


_OUT_OF_RANGE = {  # (the command and its arguments before the flag, the flag): the values refused
    (("sessions",), "--limit"): ["99999999999999999999", "9223372036854775808", "²", "-5"],
    (("stats",), "--top"): ["99999999999999999999", "0"],
    (("show", "app", "alice", "chat-0"), "--events"): ["-1", "99999999999999999999"],
    (("prune",), "--older-than"): ["99999999999999999999w", "36501d", "1e9d", "٣d"],
    (("stats",), "--busy-timeout"): ["nan", "1e400"],
}


@pytest.mark.parametrize("words, flag, value", [
    (words, flag, value) for (words, flag), values in _OUT_OF_RANGE.items() for value in values])
def test_out_of_range_numbers_name_the_flag(capsys, db, words, flag, value):
    argv = [words[0], db, *words[1:], flag, value]
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
    for argv in (["show"], ["show", "app", "alice"], ["show", db]):
        code, out, err = run(capsys, *argv)
        one_line_error(code, out, err)
        assert "show needs [DB] APP USER SESSION" in err, err


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


# -- confirmations, default database, show -----------------------------------------------

class _Terminal:
    """A stdin that is a terminal and answers ``answer`` (or a pipe when ``tty`` is False)."""

    def __init__(self, answer: str, tty: bool = True) -> None:
        self.answer, self.tty, self.asked = answer, tty, 0

    def isatty(self) -> bool:
        return self.tty

    def readline(self) -> str:
        self.asked += 1
        return self.answer


def _compacted_db(path):
    """One session of 4 raw events (t=1..4) and a compaction event (t=5) summarising them."""
    from adk_lite import EventActions
    with DatabaseSessionService(path) as svc:
        s = svc.create_session("app", "u", session_id="s")
        svc.append_events(s, [Event(invocation_id=f"i{t}", author="user", timestamp=float(t),
                                    content={"parts": [{"text": f"raw {t}"}]}) for t in range(1, 5)] + [
            Event(invocation_id="c", author="user", timestamp=5.0, actions=EventActions(extra={"compaction": {
                "start_timestamp": 1.0, "end_timestamp": 4.0,
                "compacted_content": {"role": "model", "parts": [{"text": "the user said raw things"}]}}}))])
    return path


def _events(path, session="s", app="app", user="u"):
    """The session's event count (0 when it is gone)."""
    from adk_lite import SessionNotFoundError
    with DatabaseSessionService(path, read_only=True) as svc:
        try:
            return svc.get_event_count(app, user, session)
        except SessionNotFoundError:
            return 0


def test_prune_and_trim_ask_on_a_terminal_and_no_exits_1(capsys, tmp_path, monkeypatch):
    db = make_db(str(tmp_path / "s.db"))
    trimmed = _compacted_db(str(tmp_path / "t.db"))
    for argv, left in ((["prune", db, "--older-than", "30d"], lambda: _events(db, "old-0", user="old")),
                       (["trim", trimmed], lambda: _events(trimmed))):
        before = left()
        for answer in ("n\n", "\n", "whatever\n"):
            terminal = _Terminal(answer)
            monkeypatch.setattr(sys, "stdin", terminal)
            code, out, err = run(capsys, *argv)
            assert code == 1 and terminal.asked == 1, (argv, err)
            assert err.startswith("delete ") and "[y/N]" in err and "not confirmed: nothing deleted" in err
            assert left() == before  # nothing went
        monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
        code, out, err = run(capsys, *argv)
        assert code == 0 and out.startswith("deleted ") and left() < before, (argv, err)


def test_prune_and_trim_do_not_ask_with_yes_or_without_a_terminal(capsys, tmp_path, monkeypatch):
    for argv_of, stdin in ((lambda d: [d, "--yes"], _Terminal("n\n")), (lambda d: [d], _Terminal("n\n", tty=False))):
        db = make_db(str(tmp_path / f"p{id(stdin)}.db"))
        trimmed = _compacted_db(str(tmp_path / f"t{id(stdin)}.db"))
        monkeypatch.setattr(sys, "stdin", stdin)
        code, out, err = run(capsys, "prune", *argv_of(db), "--older-than", "30d")
        assert code == 0 and out.startswith("deleted 2 sessions") and err == "", err
        code, out, err = run(capsys, "trim", *argv_of(trimmed))
        assert code == 0 and out.startswith("deleted 4 compacted events") and err == "", err
        assert stdin.asked == 0


def test_erase_answered_no_exits_1_not_2(capsys, db, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Terminal("no\n"))
    code, out, err = run(capsys, "erase", db, "--app", "app", "--user", "alice")
    assert code == 1 and out == "" and "not confirmed: nothing erased" in err
    assert _events(db, "chat-0", user="alice") == 4
    monkeypatch.setattr(sys, "stdin", _Terminal("", tty=False))  # no terminal, no --yes: refused as before
    code, out, err = run(capsys, "erase", db, "--app", "app", "--user", "alice")
    assert code == 2 and "without --yes" in err


@pytest.mark.parametrize("how", ["env", "default"])
def test_every_command_defaults_to_the_same_database(capsys, tmp_path, monkeypatch, how):
    """search, show, fork, backup, restore (and export-adk) take no DB argument, as the
    other commands: $ADK_LITE_DB, else .adk/sessions.sqlite3."""
    monkeypatch.chdir(tmp_path)
    if how == "env":
        db = make_db(str(tmp_path / "env.sqlite3"))
        monkeypatch.setenv("ADK_LITE_DB", db)
    else:
        os.mkdir(tmp_path / ".adk")
        db = make_db(str(tmp_path / ".adk" / "sessions.sqlite3"))
        monkeypatch.delenv("ADK_LITE_DB", raising=False)
    code, out, err = run(capsys, "search", "Paris", "--json")
    assert code == 0 and orjson.loads(out)["hits"], err
    code, out, err = run(capsys, "show", "app", "alice", "chat-1")
    assert code == 0 and "chat-1" in out, err
    code, out, err = run(capsys, "fork", "app", "alice", "chat-1", "--new-id", "chat-1b")
    assert code == 0 and _events(db, "chat-1b", user="alice") == _events(db, "chat-1", user="alice"), err
    code, out, err = run(capsys, "backup", tmp_path / "b.sqlite3")
    assert code == 0 and (tmp_path / "b.sqlite3").exists(), err
    code, out, err = run(capsys, "restore", tmp_path / "b.sqlite3", "--no-keep")
    assert code == 0 and os.path.realpath(db) in os.path.realpath(out.split()[1]), (out, err)
    if HAVE_ADK:
        code, out, err = run(capsys, "export-adk", tmp_path / "adk.db")
        assert code == 0, err
    for name in ("search", "show", "fork", "export-adk"):
        code, out, _ = run(capsys, name, "--help")
        assert "[db]" in out and "file or a postgresql:// URL" in " ".join(out.split()), (name, out)


def test_show_events_0_prints_no_event_header(capsys, db):
    code, out, _ = run(capsys, "show", db, "app", "alice", "chat-1", "--events", "0")
    assert code == 0 and "state:" in out
    assert "time" not in out and "author" not in out and "events" not in out.split("state:")[1], out
    code, out, _ = run(capsys, "show", db, "app", "alice", "chat-1", "--events", "2")
    assert "last 2 events:" in out and re.search(r"^time\s+author\s+event$", out, re.M)


def test_a_compaction_event_shows_as_its_summary(capsys, tmp_path):
    path = _compacted_db(str(tmp_path / "c.db"))
    code, out, _ = run(capsys, "show", path, "app", "u", "s", "--events", "1")
    line = out.strip().splitlines()[-1]
    assert code == 0 and "compaction summary of 1970-01-01T00:00:01Z .. 1970-01-01T00:00:04Z: the user said raw " \
        "things" in line, out
    with DatabaseSessionService(path) as svc:  # camelCase keys, as ADK may dump them
        from adk_lite import EventActions
        svc.append_event(svc.get_session("app", "u", "s"), Event(author="user", timestamp=6.0, actions=EventActions(
            extra={"compaction": {"startTimestamp": 1.0, "endTimestamp": 2.0,
                                  "compactedContent": {"parts": [{"text": "camel"}]}}})))
    code, out, _ = run(capsys, "show", path, "app", "u", "s", "--events", "1")
    assert "compaction summary of 1970-01-01T00:00:01Z .. 1970-01-01T00:00:02Z: camel" in out


def test_without_google_adk_the_error_names_the_extra(tmp_path):
    """``import adk_lite.adk`` and ``adk-lite import-adk`` without google-adk: one line
    naming the adk extra and how to install it, not a bare ModuleNotFoundError."""
    block = "import sys; sys.modules['google'] = None; "
    done = subprocess.run([sys.executable, "-c", block + "import adk_lite.adk"], env=ENV, capture_output=True,
                          text=True, timeout=60)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and last.startswith("ImportError: adk_lite.adk needs google-adk"), done.stderr
    assert 'pip install -e ".[adk]"' in last and "adk_lite[adk]" in last
    assert "ModuleNotFoundError" not in done.stderr and "During handling" not in done.stderr
    done = subprocess.run([sys.executable, "-c", block + "from adk_lite.cli import main; sys.exit(main(["
                           f"'import-adk', {str(tmp_path / 'a.db')!r}, {str(tmp_path / 'b.db')!r}, '--create']))"],
                          env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and 'pip install -e ".[adk]"' in done.stderr, \
        done.stderr


def test_install_hints_name_the_clone_form():
    """Every install hint in code and docs gives the form that works from a clone."""
    found = []
    for folder in ("adk_lite", "adk_lite/adk", "docs", "."):
        for name in os.listdir(os.path.join(ROOT, folder)):
            if name.endswith((".py", ".md")):
                with open(os.path.join(ROOT, folder, name), encoding="utf-8") as fh:
                    text = fh.read()
                found += [(name, m) for m in re.findall(r"pip install '?adk_lite\[\w+\]'?", text)]
    assert found == []
