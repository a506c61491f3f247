"""Passwords stay secret: no spelling of a PostgreSQL URL (scheme in any case, a raw
space, ``@``, ``/`` or ``?`` in the password, percent-escapes, a ``password=`` option)
shows its password in a repr, ``svc.path``, an error (wrong password, unknown host or
database, a server gone mid-way), the CLI's text or ``--json`` output, a log record, a
progress bar or the process's command line (``/proc/PID/cmdline``). A URL without a
password works with ``PGPASSWORD``.

Every password below is two halves (``Qx7a`` and ``Zk9b``) around a character that
could end a URL's password for a naive matcher; neither half may show anywhere.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import socket
import subprocess
import sys
import threading

import orjson
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from adk_lite import DatabaseOpenError, DatabaseSessionService, Event
from adk_lite.cli import main
from adk_lite.target import mask_password, parse_postgres, parse_target, target_kind

from .conftest import pg_databases
from .test_cli import ROOT, make_db

HALVES = ("Qx7a", "Zk9b")
SEPARATORS = ["-", " ", "@", "/", "?", ":", "#", "%20", "%40", "&", "'", '"', "\\", "\n", "\t", "://", " x://", "é"]
SCHEMES = ["postgresql", "POSTGRESQL", "Postgres", "PostgreSQL+Psycopg", "POSTGRESQL+ASYNCPG", "postgres"]


def shows_secret(text: str) -> bool:
    return any(half in text for half in HALVES)


def _outcome(url: str) -> str:
    """What a caller gets from parsing ``url``: its display, or the error's message."""
    try:
        return parse_postgres(url).display
    except ValueError as e:
        return str(e)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("sep", SEPARATORS)
def test_mask_hides_a_userinfo_password_of_any_spelling(scheme, sep):
    password = sep.join(HALVES)
    for url in (f"{scheme}://adk:{password}@db.internal:5432/agents",
                f"{scheme}://adk:{password}@db.internal/agents?sslmode=disable&application_name=a@b",
                f"{scheme}://:{password}@/agents"):
        assert target_kind(url) == "postgres", url
        for text in (url, f"db URL {url!r}: refused", f"copy {url} {url}\nnext line {url}"):
            assert not shows_secret(mask_password(text)), (text, mask_password(text))
        assert not shows_secret(_outcome(url)), (url, _outcome(url))
    assert "***" in mask_password(f"{scheme}://adk:{password}@h/db")


@pytest.mark.parametrize("sep", SEPARATORS)
def test_mask_hides_a_password_option_and_a_libpq_parameter(sep):
    password = sep.join(HALVES)
    for url in (f"postgresql://adk@h/db?password={password}",
                f"POSTGRES://adk@h/db?sslmode=disable&PassWord={password}",
                f"postgresql://adk@h/db?password={password}&application_name=x"):
        assert not shows_secret(mask_password(url)), mask_password(url)
        with pytest.raises(ValueError) as caught:  # refused (unknown option), and the value is not echoed
            parse_postgres(url)
        assert not shows_secret(str(caught.value)), str(caught.value)
        assert "PGPASSWORD" in str(caught.value) or sep in ("#", "&", "%20%", "%40"), str(caught.value)
    for text in (f"host=h password={password} dbname=x", f"password='{password}' host=h"):
        if sep.strip() == sep and sep not in ("'", '"', "\\", " x://"):  # libpq quotes those: password='a b'
            assert not shows_secret(mask_password(text)), mask_password(text)
    assert not shows_secret(mask_password("host=h password='Qx7a Zk9b' dbname=x"))


def test_mask_keeps_what_is_no_secret():
    for text in ("postgresql://adk@db.internal:5432/agents?sslmode=require", "sqlite:///sessions.db",
                 "/tmp/a:b@c.db", "database .adk/sessions.sqlite3 does not exist"):
        assert mask_password(text) == text
    assert mask_password("POSTGRESQL://adk:x@h:5432/db") == "POSTGRESQL://adk:***@h:5432/db"
    assert mask_password(mask_password("postgresql://u:p w@h/db?password=a b")) == \
        "postgresql://u:***@h/db?password=***"


@pytest.mark.parametrize("scheme", ["SQLITE", "Sqlite+Aiosqlite", "ADKLITE", "sqlite+PYSQLITE"])
def test_sqlite_url_schemes_are_read_in_any_case(scheme, tmp_path):
    assert target_kind(f"{scheme}:///x.db") == "sqlite"
    assert parse_target(f"{scheme}:///x.db?synchronous=full") == ("x.db", {"synchronous": "full"})
    path = tmp_path / "s.db"
    with DatabaseSessionService(f"{scheme}:///{path}") as svc:
        svc.create_session("app", "u", session_id="s")
    assert path.exists() and not (tmp_path / f"{scheme}:").exists()


def test_a_postgres_url_in_any_case_is_never_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for scheme in SCHEMES:
        with pytest.raises(DatabaseOpenError) as caught:  # nothing listens on port 1
            DatabaseSessionService(f"{scheme}://adk:Qx7a Zk9b@127.0.0.1:1/x?connect_timeout=5")
        assert not shows_secret(str(caught.value)) and "***" in str(caught.value)
    assert os.listdir(tmp_path) == []  # no file named after a URL


# -- a real server ----------------------------------------------------------------------

def _spelled(url: str, scheme: str = "POSTGRESQL", password: str | None = None) -> str:
    """``url`` with another scheme spelling and, when given, another password."""
    rest = url.split("://", 1)[1]
    if password is not None:
        info = parse_postgres(url).conninfo
        rest = f"{info.get('user', '')}:{password}@{rest.rsplit('@', 1)[-1]}"
    return f"{scheme}://{rest}"


@pytest.fixture
def pg():
    """``(url, password)`` of an emptied test database (skipped without a server)."""
    url = pg_databases().fresh(0)
    password = parse_postgres(url).conninfo.get("password")
    if not password:
        pytest.skip("the test server's URL holds no password")
    return url, password


def test_every_service_surface_hides_the_password(pg, caplog):
    url, password = pg
    caplog.set_level(logging.DEBUG)
    for scheme in ("POSTGRESQL", "Postgres", "postgresql+PSYCOPG"):
        svc = DatabaseSessionService(_spelled(url, scheme))
        s = svc.create_session("app", "u", session_id=scheme)
        svc.append_event(s, Event(author="user", content={"parts": [{"text": "hello"}]}))
        shown = [repr(svc), str(svc), svc.path, str(svc.get_stats()), repr(svc.store.db.path)]
        svc.close()
        with pytest.raises(Exception) as closed:
            svc.get_session("app", "u", scheme)
        shown.append(str(closed.value))
        assert all(password not in text for text in shown), shown
        assert svc.path.startswith(f"{scheme}://") and "***" in svc.path
    loud = _spelled(url, "POSTGRESQL")
    shown = [repr(parse_postgres(loud)), str(parse_postgres(loud))]
    from adk_lite import AsyncDatabaseSessionService
    aio = AsyncDatabaseSessionService(loud)
    shown += [repr(aio), str(aio)]
    asyncio.run(aio.close()) if asyncio.iscoroutinefunction(aio.close) else aio.close()
    if importlib.util.find_spec("google") and importlib.util.find_spec("google.adk"):
        from adk_lite.adk import DatabaseSessionService as AdkService
        adk = AdkService(loud)
        shown += [repr(adk), str(adk), adk.path, repr(vars(adk))]
    assert all(password not in text for text in shown), shown
    failures = {
        "wrong password": _spelled(url, "POSTGRES", "Qx7a Zk9b"),
        "wrong password, raw @": _spelled(url, "PostgreSQL", "Qx7a@Zk9b"),
        "unknown database": _spelled(url, "POSTGRESQL").rsplit("/", 1)[0] + "/no_such_db_h5",
        "unknown host": "POSTGRESQL://adk:Qx7a%20Zk9b@no-such-host.invalid:5432/x?connect_timeout=5",
        "closed port": "Postgres://adk:Qx7a%2FZk9b@127.0.0.1:1/x",
        "a raw / (no URL: refused)": "Postgres://adk:Qx7a/Zk9b@127.0.0.1:1/x",
    }
    for what, bad in failures.items():
        with pytest.raises(ValueError if "refused" in what else DatabaseOpenError) as caught:
            DatabaseSessionService(bad)
        message = str(caught.value)
        assert password not in message and not shows_secret(message), (what, message)
    assert password not in caplog.text and not shows_secret(caplog.text)


class _Proxy:
    """A TCP proxy to the server that can be cut: a server outage as the client sees it."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (a close alone keeps it listening)
        except OSError:
            pass
        self.listener.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


def test_an_outage_raises_database_open_error_without_the_password(pg, caplog):
    url, password = pg
    caplog.set_level(logging.DEBUG)
    info = parse_postgres(url).conninfo
    proxy = _Proxy(info.get("host", "127.0.0.1"), info.get("port", 5432))
    via = f"POSTGRESQL://{info['user']}:{password}@127.0.0.1:{proxy.port}/{info['dbname']}?connect_timeout=5"
    svc = DatabaseSessionService(via)
    try:
        svc.create_session("app", "u", session_id="s")
        proxy.cut()
        for _ in range(3):  # the pooled connection is gone, then no new one can be made
            with pytest.raises(DatabaseOpenError) as caught:
                svc.get_session("app", "u", "s")
            assert password not in str(caught.value) and "***" in str(caught.value), str(caught.value)
    finally:
        svc.close()
    assert password not in caplog.text


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_output_and_json_never_show_the_password(pg, capsys, tmp_path, monkeypatch):
    url, password = pg
    loud = _spelled(url, "POSTGRESQL")
    src = make_db(str(tmp_path / "src.sqlite3"))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # progress bars on (tqdm writes to stderr)
    commands = [["copy", src, loud], ["copy", loud, tmp_path / "back.sqlite3"], ["stats", loud], ["check", loud],
                ["sessions", loud, "--limit", "1"], ["show", loud, "app", "alice", "chat-1"],
                ["search", loud, "Paris"], ["export", loud, "-o", tmp_path / "e.jsonl", "--force"],
                ["import", tmp_path / "e.jsonl", loud], ["vacuum", loud],
                ["prune", loud, "--older-than", "30d", "--dry-run"],
                ["erase", loud, "--app", "app", "--user", "bob", "--dry-run"], ["trim", loud, "--dry-run"]]
    for command in commands:
        for extra in ([], ["--json"]):
            code, out, err = _run(capsys, *command, *extra)
            assert code in (0, 1), (command, err)
            assert password not in out + err, (command, out, err)
    _, out, _ = _run(capsys, "copy", src, loud, "--json")
    assert orjson.loads(out)["destination"].startswith("POSTGRESQL://") and "***" in orjson.loads(out)["destination"]
    wrong = _spelled(url, "Postgres", "Qx7a Zk9b")
    for argv in (["stats", wrong], ["copy", src, wrong], ["sessions", url, wrong],  # argparse echoes the extra one
                 ["stats", f"{url}?password=Qx7a&sslmode=disable"],
                 ["backup", loud, tmp_path / "b.sqlite3"], ["restore", src, loud],  # refused: files only
                 ["backup", wrong, tmp_path / "b.sqlite3"], ["restore", src, wrong]):
        for extra in ([], ["--json"]):
            code, out, err = _run(capsys, *argv, *extra)
            assert code == 2 and not shows_secret(out + err) and password not in out + err, (argv, err)


def _without_password(url: str) -> str:
    info = parse_postgres(url).conninfo
    return f"postgresql://{info['user']}@{info.get('host', '')}:{info.get('port', 5432)}/{info['dbname']}"


def test_a_url_without_password_works_with_pgpassword(pg, tmp_path, monkeypatch):
    url, password = pg
    bare = _without_password(url)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))  # no ~/.pgpass of the machine helps
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with pytest.raises(DatabaseOpenError):
        DatabaseSessionService(bare)
    monkeypatch.setenv("PGPASSWORD", password)
    with DatabaseSessionService(bare) as svc:
        svc.create_session("app", "u", session_id="s")
    src = make_db(str(tmp_path / "src.sqlite3"))
    env = {**os.environ, "PYTHONPATH": ROOT, "PGPASSWORD": password}
    done = subprocess.run([sys.executable, "-m", "adk_lite", "copy", src, bare, "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and orjson.loads(done.stdout)["created"] == 6, done.stderr
    env[ "ADK_LITE_DB"] = bare  # and as $ADK_LITE_DB, with no DB argument at all
    for command in (["stats"], ["sessions"], ["search", "Paris"], ["show", "app", "alice", "chat-1"], ["check"]):
        done = subprocess.run([sys.executable, "-m", "adk_lite", *command, "--json"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (command, done.stderr)
    (tmp_path / "pgpass").write_text(f"*:*:*:*:{password}\n")
    os.chmod(tmp_path / "pgpass", 0o600)
    env = {**env, "PGPASSFILE": str(tmp_path / "pgpass")}
    del env["PGPASSWORD"]
    done = subprocess.run([sys.executable, "-m", "adk_lite", "stats", "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# -- the process's command line --------------------------------------------------------

def _cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc/PID/cmdline (Linux)")
@pytest.mark.parametrize("scheme", ["postgresql", "POSTGRESQL"])
def test_the_password_leaves_the_process_command_line(scheme, tmp_path):
    """``adk-lite copy SRC postgresql://user:PASSWORD@...`` runs against a server that
    accepts the connection and never answers: while it waits, ``/proc/PID/cmdline`` (what
    ``ps`` shows every user) holds the masked URL, not the password."""
    pytest.importorskip("setproctitle")
    pytest.importorskip("psycopg")  # without it (no postgres extra) copy stops before it connects
    src = make_db(str(tmp_path / "src.sqlite3"))
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    dst = f"{scheme}://adk:Qx7a Zk9b@127.0.0.1:{port}/agents?connect_timeout=60"
    proc = subprocess.Popen([sys.executable, "-m", "adk_lite", "copy", src, dst],
                            env={**os.environ, "PYTHONPATH": ROOT}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        silent.settimeout(120)
        conn, _ = silent.accept()  # the command has parsed its arguments and is connecting
        try:
            line = _cmdline(proc.pid)
            assert b"Qx7a" not in line and b"Zk9b" not in line, line
            assert b"adk:***@127.0.0.1" in line and b"copy" in line, line
            assert proc.poll() is None  # read while it runs
        finally:
            conn.close()
    finally:
        proc.kill()
        proc.wait(timeout=60)
        silent.close()


def test_hiding_is_skipped_without_setproctitle(monkeypatch, capsys):
    """Without the package the command still runs (and says nothing about it)."""
    import builtins

    real = builtins.__import__

    def no_setproctitle(name, *args, **kwargs):
        if name == "setproctitle":
            raise ImportError("No module named 'setproctitle'")
        return real(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_setproctitle)
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "adk_lite", "stats", "postgresql://u:Qx7a@h/db"])
    from adk_lite.cli import _hide_passwords
    _hide_passwords()  # no error
    assert capsys.readouterr() == ("", "")


def test_adk_source_and_register_read_schemes_in_any_case():
    """The ADK side decides a URL's kind as the core does: ``SQLITE+AIOSQLITE:///x.db`` is
    the file ``x.db`` (so a move into or out of the same file is seen as such)."""
    pytest.importorskip("google.adk")
    from adk_lite.adk.transfer import source_file
    upper, lower = source_file("SQLITE+AIOSQLITE:///x.db?mode=ro"), source_file("sqlite+aiosqlite:///x.db")
    assert upper == lower and os.path.abspath(upper) == os.path.abspath("x.db")
    assert source_file("Sqlite:////abs/x.db") == "/abs/x.db" and source_file("POSTGRESQL://h/db") is None


@settings(max_examples=500, deadline=None)
@given(password=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=4,
                        max_size=40),
       scheme=st.sampled_from(SCHEMES), where=st.sampled_from(["userinfo", "option", "message"]))
@example(password="@/00", scheme="postgresql", where="userinfo")  # an "@" then a "/" in the userinfo
@example(password="@000", scheme="postgresql", where="option")  # an "@" in a password= option
@example(password="sslm", scheme="postgresql", where="option")  # text the URL holds anyway: not looked for
def test_no_password_text_survives_the_mask(password, scheme, where):
    """Any text as a password (raw spaces, ``@``, ``/``, ``?``, ``#``, ``://``, newlines,
    quotes, any script), in the userinfo, a ``password=`` option or a message around the
    URL: the password never comes out of :func:`mask_password` whole."""
    def url_with(secret: str) -> str:
        if where == "option":
            return f"{scheme}://adk@db.internal:5432/agents?sslmode=disable&password={secret}"
        return f"{scheme}://adk:{secret}@db.internal:5432/agents?sslmode=disable"

    def text_with(secret: str) -> str:
        return f"db URL {url_with(secret)!r}: refused" if where == "message" else url_with(secret)
    # a password the rest of the text holds anyway ("sslm" of "sslmode") cannot be looked for
    assume(password not in mask_password(text_with("***")) and password != "***")
    url = url_with(password)
    assert password not in mask_password(text_with(password))
    assert password not in _outcome(url)
