"""Database names never reach SQLite as URIs: a path or URL is parsed by adk_lite
into exactly one file path (or ``:memory:``), and SQLite opens exactly that file.

Each hostile name below used to be (or could be) reinterpreted by SQLite, which is
built with ``SQLITE_USE_URI``: the data went to memory, to another file, or a
foreign file was switched to WAL.
"""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from adk_lite import DatabaseOpenError, DatabaseSessionService, Event
from adk_lite.backend import open_database as Database
from adk_lite.target import parse_target, resolve

from .conftest import file_bytes

# Names SQLite would read as URI parameters or special names if it were handed them.
HOSTILE_NAMES = [
    "a?mode=memory",
    "a?mode=ro",
    "a?vfs=unix-none&nolock=1",
    "a?immutable=1",
    "a?cache=shared",
    "a#x",
    "a%3Fmode=memory",
    "a%00b",
    "with space.db",
    "ünï cödé €.db",
    ":memory:x",
    "./file:a.db",
    "./file::memory:",
]


def _files(folder):
    return sorted(os.listdir(folder))


def _refused_creating_nothing(folder, target: str, error: type, match: str, **options) -> None:
    """Assert that ``DatabaseSessionService(target, **options)`` raises ``error`` with a
    message matching ``match`` and leaves ``folder`` (the current directory) empty."""
    with pytest.raises(error, match=match):
        DatabaseSessionService(target, **options)
    assert _files(folder) == []


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_file_name_is_one_file_with_that_name(tmp_path, monkeypatch, name):
    """A plain path is a file name: it is created 0600 under that exact name, the
    data survives a reopen, and nothing else appears in the folder."""
    monkeypatch.chdir(tmp_path)
    with DatabaseSessionService(name) as svc:
        svc.append_event(svc.create_session("app", "u", session_id="s"), Event(author="user"))
    expected = os.path.normpath(name)
    assert expected in _files(tmp_path)
    assert all(f.startswith(expected) for f in _files(tmp_path)), _files(tmp_path)
    assert stat.S_IMODE(os.stat(expected).st_mode) == 0o600
    with DatabaseSessionService(str(tmp_path / expected)) as svc:
        assert svc.get_event_count("app", "u", "s") == 1
    with DatabaseSessionService(str(tmp_path / expected), read_only=True) as ro:
        assert ro.get_event_count("app", "u", "s") == 1


@pytest.mark.parametrize("name", ["a?mode=memory", "a#x", "a%b", "a b", "é€", "x?y#z%41"])
def test_url_percent_decoding_is_done_once(tmp_path, name):
    """``%`` escapes in a URL are decoded once into the file name; the decoded name
    is never decoded again nor read as URI parameters."""
    from urllib.parse import quote

    url = "adklite:///" + quote(str(tmp_path / name), safe="/")
    assert resolve(url) == str(tmp_path / name)
    with DatabaseSessionService(url) as svc:
        svc.create_session("app", "u", session_id="s")
    assert name in _files(tmp_path)
    with DatabaseSessionService(str(tmp_path / name)) as svc:
        assert svc.get_session("app", "u", "s") is not None


def test_reported_url_writes_to_the_file_not_memory(tmp_path, monkeypatch):
    """The issue's example: the %3F is part of the file name, not a query. A
    relative ``file:`` name is refused (below); the absolute one is a plain file."""
    monkeypatch.chdir(tmp_path)
    url = f"adklite:///{tmp_path}/real.db%3Fmode=memory"
    with DatabaseSessionService(url) as svc:
        svc.create_session("app", "u", session_id="s")
    with DatabaseSessionService(str(tmp_path / "real.db?mode=memory")) as svc:
        assert svc.get_session("app", "u", "s") is not None
    with pytest.raises(ValueError, match=r"file:"):
        DatabaseSessionService(f"adklite:///file:{tmp_path}/real.db%3Fmode=memory")


@pytest.mark.parametrize("target", [
    "file:a.db", "file:new.db", "file::memory:", "FILE:a.db", "file:a.db?mode=memory",
    "adklite:///file:a.db", "sqlite:///file%3Aa.db", "sqlite:///file::memory:",
])
def test_file_uri_names_are_refused_and_create_nothing(tmp_path, monkeypatch, target):
    monkeypatch.chdir(tmp_path)
    _refused_creating_nothing(tmp_path, target, ValueError, r"file:.*plain path")


def test_file_uri_name_does_not_touch_a_foreign_file(tmp_path, monkeypatch):
    """``file:other.db`` used to open other.db itself (switching it to WAL)."""
    monkeypatch.chdir(tmp_path)
    conn = sqlite3.connect("other.db")
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    before = file_bytes("other.db")
    with pytest.raises(ValueError):
        DatabaseSessionService("file:other.db")
    assert file_bytes("other.db") == before and _files(tmp_path) == ["other.db"]


@pytest.mark.parametrize("target, message", [
    ("adklite:///s.db?mode=memory", r"unknown option 'mode'"),
    ("adklite:///s.db?nolock=1", r"unknown option 'nolock'"),
    ("adklite:///s.db?immutable=1", r"unknown option 'immutable'"),
    ("adklite:///s.db?vfs=memdb", r"unknown option 'vfs'"),
    ("adklite:///s.db?cache=shared", r"unknown option 'cache'"),
    ("sqlite:///s.db?uri=true", r"unknown option 'uri'"),
    ("sqlite:///s.db?synchronous=off", r"synchronous must be one of"),
    ("sqlite:///s.db?synchronous=", r"synchronous must be one of"),
    ("sqlite:///s.db?busy_timeout=soon", r"busy_timeout must be a number of seconds"),
    ("sqlite:///s.db?busy_timeout=-1", r"busy_timeout must be a number of seconds"),
    ("sqlite:///s.db?busy_timeout=nan", r"busy_timeout must be a number of seconds"),
    ("sqlite:///s.db?busy_timeout=1e999", r"busy_timeout must be a number of seconds"),
    ("sqlite:///s.db?read_only=yes", r"read_only must be true, false, 1 or 0"),
    ("sqlite:///s.db?synchronous=full&synchronous=normal", r"synchronous.*more than once"),
    ("sqlite:///s.db?synchronous", r"query"),
    ("sqlite:///s.db#frag", r"'#'"),
    ("sqlite:///s.db?synchronous=full#frag", r"'#'"),
    ("sqlite:///s%FF.db", r"UTF-8"),
    ("sqlite:///s%00.db", r"NUL"),
    ("sqlite:///s.db?busy_timeout=1_0", r"busy_timeout must be a number of seconds"),
    ("sqlite:///s.db?busy_timeout=%205", r"busy_timeout must be a number of seconds"),
    ("sqlite:///s.db?busy_timeout=1e3", r"busy_timeout must be a number of seconds"),
    ("sqlite:///s.db?&", r"cannot read its query"),
    ("sqlite://host/s.db", r"three slashes"),
    ("sqlite:///sub/", r"ends with '/'"),
    ("sqlite:///sqlite:///other.db", r"://"),
    ("sqlite:///:memory:?read_only=true", r"memory"),
])
def test_bad_url_is_refused_naming_the_problem(tmp_path, monkeypatch, target, message):
    monkeypatch.chdir(tmp_path)
    _refused_creating_nothing(tmp_path, target, ValueError, message)


def test_url_options_are_applied(tmp_path):
    path = tmp_path / "s.db"
    with DatabaseSessionService(f"adklite:///{path}?synchronous=full&busy_timeout=0.25") as svc:
        conn = svc.store.db.peewee.connection()
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 250
        svc.create_session("app", "u", session_id="s")
    for value in ("true", "1", "TRUE"):
        with DatabaseSessionService(f"sqlite:///{path}?read_only={value}") as ro:
            assert ro.get_session("app", "u", "s") is not None
            with pytest.raises(DatabaseOpenError, match="read-only"):
                ro.create_session("app", "u")
    for value in ("false", "0"):
        with DatabaseSessionService(f"sqlite:///{path}?read_only={value}") as svc:
            svc.create_session("app", "u")
    assert parse_target(f"sqlite:///{path}?busy_timeout=3&read_only=0") == (
        str(path), {"busy_timeout": 3.0, "read_only": False})
    assert parse_target("sqlite://?synchronous=FULL") == (":memory:", {"synchronous": "full"})


def test_url_option_and_keyword(tmp_path):
    """A keyword left at its default defers to the URL; a keyword that differs from
    both its default and the URL's value is a conflict, refused naming both."""
    url = f"sqlite:///{tmp_path / 's.db'}?synchronous=full&busy_timeout=2"
    db = Database(url, synchronous="full", busy_timeout=5.0)
    assert (db.synchronous, db.busy_timeout) == ("full", 2.0)
    db.peewee.close_all()
    with pytest.raises(ValueError, match=r"synchronous='full' conflicts with the URL's synchronous=normal") as caught:
        Database(f"sqlite:///{tmp_path / 't.db'}?synchronous=normal", synchronous="full")
    assert "URL" in str(caught.value)
    with pytest.raises(ValueError, match=r"busy_timeout"):
        Database(url, busy_timeout=1)
    with pytest.raises(ValueError, match=r"read_only"):
        Database(f"sqlite:///{tmp_path / 's.db'}?read_only=false", read_only=True)
    assert sorted(os.listdir(tmp_path)) == ["s.db"]


def test_read_only_keyword_must_be_a_bool(tmp_path):
    with pytest.raises(TypeError, match=r"read_only must be a bool"):
        Database(str(tmp_path / "s.db"), read_only="false")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["bad\udc80.db", "bad\ud800.db"])
def test_path_that_is_not_utf8_is_a_value_error(tmp_path, name):
    with pytest.raises(ValueError, match=r"db path .*UTF-8"):
        DatabaseSessionService(str(tmp_path / name))
    assert os.listdir(tmp_path) == []


def test_resolve_is_idempotent_on_what_it_returns(tmp_path):
    """The CLI resolves a target, then opens the result: the second parse must name
    the same file."""
    for target in ("adklite:///a%3Fb.db", "adklite:///a%2525.db", "sqlite:////abs/x%20y.db", "plain?x.db",
                   "sqlite:///:memory:", "./file:x.db", "a%3Fb"):
        once = resolve(target)
        assert resolve(once) == once, target


def test_every_connection_opens_the_resolved_file_even_after_chdir(tmp_path, monkeypatch):
    """Connections are made per thread, lazily: a relative path is resolved once at
    open, so a later ``chdir`` cannot send a thread's writes to another file, and
    SQLite never creates the main file itself (it would not be 0600)."""
    import threading

    monkeypatch.chdir(tmp_path)
    with DatabaseSessionService("rel.db") as svc:
        (tmp_path / "elsewhere").mkdir()
        monkeypatch.chdir(tmp_path / "elsewhere")
        thread = threading.Thread(target=lambda: svc.create_session("app", "u", session_id="t"))
        thread.start()
        thread.join()
        assert os.listdir(tmp_path / "elsewhere") == []
    with DatabaseSessionService(str(tmp_path / "rel.db")) as svc:
        assert svc.get_session("app", "u", "t") is not None


@pytest.mark.parametrize("name", ["sub/", "a/b/c/"])
def test_path_naming_a_folder_is_refused_and_creates_nothing(tmp_path, monkeypatch, name):
    """``x.db/`` used to make a folder x.db, then fail to create the file."""
    monkeypatch.chdir(tmp_path)
    _refused_creating_nothing(tmp_path, name, ValueError, r"ends with '/'")


def test_folders_made_for_a_file_that_cannot_be_made_are_removed(tmp_path, monkeypatch):
    """The folders are made, then the file name is too long for the file system: the
    open is refused and the folders it made are gone."""
    monkeypatch.chdir(tmp_path)
    _refused_creating_nothing(tmp_path, "a/b/" + "x" * 300, DatabaseOpenError,
                              r"cannot create database .*File name too long")


@pytest.mark.parametrize("read_only", [False, True])
def test_path_too_long_for_sqlite_is_refused_before_anything_is_made(tmp_path, monkeypatch, read_only):
    """SQLite cannot open an absolute path over 504 bytes: it used to fail after the
    folders and the file were made (or, 1500 folders deep, raise RecursionError)."""
    monkeypatch.chdir(tmp_path)
    for name in (("d" * 99 + "/") * 6 + "x.db", "d/" * 1500 + "x.db"):
        _refused_creating_nothing(tmp_path, name, ValueError,
                                  r"too long: SQLite opens absolute paths of at most 504 bytes", read_only=read_only)
    folder = str(tmp_path / ("e" * 200) / ("f" * 200))[:480]
    fits = os.path.join(folder, "x" * (504 - len(folder) - 1))  # exactly 504 bytes
    assert len(fits.encode()) == 504
    if read_only:
        with pytest.raises(DatabaseOpenError, match="does not exist"):
            DatabaseSessionService(fits, read_only=True)
    else:
        with DatabaseSessionService(fits) as svc:
            svc.create_session("app", "u")
