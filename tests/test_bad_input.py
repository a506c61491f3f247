"""Bad input and hostile files: every refusal is a clear error that names the
problem, and the database is unchanged afterwards: byte for byte on SQLite (the file
and its WAL), row for row on PostgreSQL. Bad input and hostile names run on both
backends; hostile, damaged and misplaced files are SQLite's alone."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import os
import re
import sqlite3

import pytest

from adk_lite import (
    MAX_ID_LENGTH,
    SCHEMA_VERSION,
    AdkLiteError,
    AsyncDatabaseSessionService,
    AlreadyExistsError,
    CorruptDatabaseError,
    DatabaseOpenError,
    DatabaseSessionService,
    Event,
    EventActions,
    ForeignDatabaseError,
    SchemaVersionError,
    ServiceClosedError,
    Session,
    SessionNotFoundError,
    StaleSessionError,
)
from tests.conftest import on_postgres, stored_contents
from tests.workers import file_bytes, folder_listing

LONG = "x" * (MAX_ID_LENGTH + 1)


@pytest.fixture
def world(target):
    """A database with one session ``s`` (events and state in all scopes), a stale
    copy of it, and a deleted session; on SQLite everything checkpointed into the main file."""
    svc = DatabaseSessionService(target)
    s = svc.create_session("app", "u", state={"k": 1, "user:lang": "en", "app:v": 2}, session_id="s")
    stale = svc.get_session("app", "u", "s")
    svc.append_event(s, Event(author="user", actions=EventActions(state_delta={"k": 2})))
    gone = svc.create_session("app", "u", session_id="gone")
    svc.delete_session("app", "u", "gone")
    if not on_postgres(target):
        svc.store.db.peewee.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    yield svc, s, stale, gone
    svc.close()


def ev(**kw):
    return Event(author="user", **kw)


def delta(d):
    return ev(actions=EventActions(state_delta=d))


# (id, call(svc, s, stale, gone), error type, regex the message must match)
ROWS = [
    # ids
    ("app_name empty", lambda v, s, st, g: v.create_session("", "u"), ValueError, r"app_name must not be empty"),
    ("user_id blank", lambda v, s, st, g: v.create_session("app", " \t\n"), ValueError, r"user_id must not be empty or blank"),
    ("session_id blank (get)", lambda v, s, st, g: v.get_session("app", "u", "   "), ValueError, r"session_id must not be empty"),
    ("session_id blank (update_keys)", lambda v, s, st, g: v.update_keys("app", "u", "", {"k": 1}), ValueError, r"session_id"),
    ("session_id blank (delete)", lambda v, s, st, g: v.delete_session("app", "u", " "), ValueError, r"session_id"),
    ("app_name int", lambda v, s, st, g: v.create_session(5, "u"), TypeError, r"app_name must be a str, not int"),
    ("user_id None", lambda v, s, st, g: v.get_session("app", None, "s"), TypeError, r"user_id must be a str, not NoneType"),
    ("session_id bytes", lambda v, s, st, g: v.create_session("app", "u", session_id=b"s"), TypeError, r"session_id must be a str, not bytes"),
    ("list filter int", lambda v, s, st, g: v.list_sessions(app_name=3), TypeError, r"app_name must be a str"),
    ("app_name too long", lambda v, s, st, g: v.create_session(LONG, "u"), ValueError,
     rf"app_name is {MAX_ID_LENGTH + 1} characters long; the limit is {MAX_ID_LENGTH}"),
    ("session_id too long", lambda v, s, st, g: v.create_session("app", "u", session_id=LONG), ValueError, r"session_id is \d+ characters"),
    ("event id too long", lambda v, s, st, g: v.append_event(s, ev(id=LONG)), ValueError, r"events\[0\]\.id is \d+ characters"),
    ("app_name NUL", lambda v, s, st, g: v.create_session("a\x00b", "u"), ValueError, r"app_name contains a NUL"),
    ("session_id NUL", lambda v, s, st, g: v.get_session("app", "u", "s\x00"), ValueError, r"session_id contains a NUL"),
    ("event id NUL", lambda v, s, st, g: v.append_event(s, ev(id="e\x00")), ValueError, r"events\[0\]\.id contains a NUL"),
    ("author NUL", lambda v, s, st, g: v.append_event(s, Event(author="a\x00")), ValueError, r"author contains a NUL"),
    ("event id empty", lambda v, s, st, g: v.append_event(s, ev(id="")), ValueError, r"events\[0\]\.id must not be empty"),
    # state
    ("state not a dict", lambda v, s, st, g: v.create_session("app", "u", state=[("k", 1)]), TypeError, r"state must be a dict, not list"),
    ("delta not a dict", lambda v, s, st, g: v.update_keys("app", "u", "s", "k=1"), TypeError, r"delta must be a dict, not str"),
    ("state_delta not a dict", lambda v, s, st, g: v.append_event(s, delta(["k"])), TypeError, r"state_delta must be a dict"),
    ("state key int", lambda v, s, st, g: v.create_session("app", "u", state={1: "x"}), TypeError, r"key 1 is int, state keys must be str"),
    ("delta key tuple", lambda v, s, st, g: v.update_keys("app", "u", "s", {("a",): 1}), TypeError, r"key \('a',\) is tuple"),
    ("state key NUL", lambda v, s, st, g: v.append_event(s, delta({"k\x00": 1})), ValueError, r"contains a NUL"),
    ("user: empty name", lambda v, s, st, g: v.create_session("app", "u", state={"user:": 1}), ValueError, r"prefix 'user:' with an empty name"),
    ("app: empty name", lambda v, s, st, g: v.update_keys("app", "u", "s", {"app:": None}), ValueError, r"prefix 'app:' with an empty name"),
    ("empty key", lambda v, s, st, g: v.append_event(s, delta({"": 1})), ValueError, r"an empty key"),
    ("object value", lambda v, s, st, g: v.create_session("app", "u", state={"k": object()}), TypeError, r"state\['k'\]: object is not a JSON type"),
    ("set value", lambda v, s, st, g: v.append_event(s, delta({"k": {1, 2}})), TypeError, r"\['k'\]: set is not a JSON type"),
    ("NaN value", lambda v, s, st, g: v.update_keys("app", "u", "s", {"k": float("nan")}), ValueError, r"delta\['k'\]: nan is not a finite number"),
    ("Infinity value", lambda v, s, st, g: v.append_event(s, delta({"app:k": float("inf")})), ValueError, r"\['app:k'\]: inf is not a finite"),
    ("-Infinity nested", lambda v, s, st, g: v.create_session("app", "u", state={"k": [1, {"x": float("-inf")}]}), ValueError,
     r"state\['k'\]\[1\]\['x'\]: -inf is not a finite"),
    ("int beyond 64 bits", lambda v, s, st, g: v.create_session("app", "u", state={"k": 2**63}), ValueError, r"int 9223372036854775808 is outside the signed 64-bit range"),
    ("int below 64 bits", lambda v, s, st, g: v.update_keys("app", "u", "s", {"user:k": -(2**63) - 1}), ValueError, r"outside the signed 64-bit range"),
    ("tuple value", lambda v, s, st, g: v.append_event(s, delta({"k": (1, 2)})), TypeError, r"tuple is not a JSON type"),
    ("bytes value", lambda v, s, st, g: v.update_keys("app", "u", "s", {"k": b"x"}), TypeError, r"bytes is not a JSON type"),
    ("datetime value", lambda v, s, st, g: v.create_session("app", "u", state={"k": datetime.datetime(2024, 1, 1)}), TypeError,
     r"datetime is not a JSON type"),
    ("nested non-str key", lambda v, s, st, g: v.append_event(s, delta({"k": {1: "x"}})), TypeError, r"dict key 1 is int, JSON keys must be str"),
    ("int subclass", lambda v, s, st, g: v.append_event(s, delta({"k": _Color.RED})), TypeError, r"_Color is not a JSON type"),
    ("content with a set", lambda v, s, st, g: v.append_event(s, ev(content={"parts": {1}})), TypeError, r"events\[0\].*set is not a JSON type"),
    # events
    ("event is a dict", lambda v, s, st, g: v.append_event(s, {"author": "user"}), TypeError, r"events\[0\] must be an adk_lite.Event, not dict"),
    ("session is a dict", lambda v, s, st, g: v.append_event({"id": "s"}, ev()), TypeError, r"session must be an adk_lite.Session, not dict"),
    ("events not a list", lambda v, s, st, g: v.append_events(s, ev()), TypeError, r"events must be a list of Event, not Event"),
    ("second event bad", lambda v, s, st, g: v.append_events(s, [ev(), "e2"]), TypeError, r"events\[1\] must be an adk_lite.Event, not str"),
    ("actions not EventActions", lambda v, s, st, g: v.append_event(s, ev(actions={"state_delta": {}})), TypeError, r"actions must be an adk_lite.EventActions"),
    ("timestamp str", lambda v, s, st, g: v.append_event(s, ev(timestamp="now")), TypeError, r"events\[0\]\.timestamp must be a number"),
    ("timestamp NaN", lambda v, s, st, g: v.append_event(s, ev(timestamp=float("nan"))), ValueError, r"timestamp must be finite"),
    ("same id twice in a batch", lambda v, s, st, g: v.append_events(s, [ev(id="d"), ev(id="d")]), ValueError, r"same event id appears twice"),
    ("num_recent_events negative", lambda v, s, st, g: v.get_session("app", "u", "s", num_recent_events=-1), ValueError,
     r"num_recent_events must be from 0 to .*, got -1"),
    ("num_recent_events str", lambda v, s, st, g: v.get_session("app", "u", "s", num_recent_events="3"), TypeError, r"num_recent_events must be an int"),
    ("after_timestamp str", lambda v, s, st, g: v.get_session("app", "u", "s", after_timestamp="yesterday"), TypeError,
     r"after_timestamp must be a number of epoch seconds, not str"),
    ("after_timestamp NaN", lambda v, s, st, g: v.get_session("app", "u", "s", after_timestamp=float("nan")), ValueError, r"after_timestamp must be finite"),
    ("limit zero", lambda v, s, st, g: v.list_sessions(limit=0), ValueError, r"limit must be from 1 to "),
    ("cursor garbage", lambda v, s, st, g: v.list_sessions(after="not-a-cursor"), ValueError, r"not a cursor returned by list_sessions"),
    ("event for unknown session", lambda v, s, st, g: v.append_event(Session(id="nope", app_name="app", user_id="u"), ev()),
     SessionNotFoundError, r"session 'nope' not found for app_name='app', user_id='u'"),
    ("event for deleted session", lambda v, s, st, g: v.append_event(g, ev()), SessionNotFoundError, r"session 'gone' not found"),
    ("update_keys unknown session", lambda v, s, st, g: v.update_keys("app", "u", "nope", {"k": 1}), SessionNotFoundError, r"'nope' not found"),
    ("update_keys deleted session", lambda v, s, st, g: v.update_keys("app", "u", "gone", {}), SessionNotFoundError, r"'gone' not found"),
    ("count unknown session", lambda v, s, st, g: v.get_event_count("app", "u", "nope"), SessionNotFoundError, r"'nope' not found"),
    ("session of another user", lambda v, s, st, g: v.append_event(Session(id="s", app_name="app", user_id="other"), ev()),
     SessionNotFoundError, r"user_id='other'"),
    ("stale copy", lambda v, s, st, g: v.append_event(st, ev()), StaleSessionError, r"stored revision 1, this Session object has revision 0"),
    ("create existing id", lambda v, s, st, g: v.create_session("app", "u", session_id=" s "), AlreadyExistsError, r"session 's' already exists"),
    # numbers out of range (counts up to 2**63 - 1; times within datetime's years 1 to 9999)
    ("num_recent_events 2**63", lambda v, s, st, g: v.get_session("app", "u", "s", num_recent_events=2**63), ValueError,
     r"num_recent_events must be from 0 to 9223372036854775807"),
    ("limit 10**30", lambda v, s, st, g: v.list_sessions(limit=10**30), ValueError, r"limit must be from 1 to 9223372036854775807"),
    ("after_timestamp 10**400", lambda v, s, st, g: v.get_session("app", "u", "s", after_timestamp=10**400), ValueError,
     r"after_timestamp must be finite epoch seconds from .* got an int of 1329 bits"),
    ("after_timestamp 1e300", lambda v, s, st, g: v.get_session("app", "u", "s", after_timestamp=1e300), ValueError,
     r"after_timestamp must be finite epoch seconds"),
    ("event timestamp 2**63", lambda v, s, st, g: v.append_event(s, ev(timestamp=2**63)), ValueError,
     r"events\[0\]\.timestamp must be finite epoch seconds"),
    ("event timestamp 1e19", lambda v, s, st, g: v.append_event(s, ev(timestamp=1e19)), ValueError, r"events\[0\]\.timestamp .* got 1e\+19"),
    ("event timestamp -1e300", lambda v, s, st, g: v.append_event(s, ev(timestamp=-1e300)), ValueError, r"timestamp must be finite"),
    ("event timestamp inf", lambda v, s, st, g: v.append_event(s, ev(timestamp=float("inf"))), ValueError, r"timestamp must be finite"),
    ("cursor holding 10**400", lambda v, s, st, g: v.list_sessions(after=_cursor(b"1" + b"0" * 400)), ValueError, r"not a cursor"),
    ("cursor holding 1e19", lambda v, s, st, g: v.list_sessions(after=_cursor(b"1e19")), ValueError, r"not a cursor"),
    ("cursor not ASCII", lambda v, s, st, g: v.list_sessions(after="caf\u00e9"), ValueError, r"not a cursor"),
    # nesting (at most 200 lists and dicts deep)
    ("state nested 256 deep", lambda v, s, st, g: v.create_session("app", "u", state={"k": _nested(256)}), ValueError,
     r"nested more than 200 lists and dicts deep"),
    ("delta nested 10,000 deep", lambda v, s, st, g: v.update_keys("app", "u", "s", {"k": _nested(10_000)}), ValueError,
     r"delta\['k'\].*nested more than 200"),
    ("state_delta nested 300 deep", lambda v, s, st, g: v.append_event(s, delta({"k": _nested(300)})), ValueError, r"nested more than 200"),
    ("content nested 1,000 deep", lambda v, s, st, g: v.append_event(s, ev(content={"parts": _nested(1000)})), ValueError,
     r"events\[0\].*nested more than 200"),
    # lone surrogates (UTF-8 cannot hold them)
    ("app_name lone surrogate", lambda v, s, st, g: v.create_session("a\ud800", "u"), ValueError, r"app_name holds a lone surrogate"),
    ("user_id lone surrogate", lambda v, s, st, g: v.list_sessions(user_id="\udfff"), ValueError, r"user_id holds a lone surrogate"),
    ("session_id lone surrogate", lambda v, s, st, g: v.get_session("app", "u", "s\udc00"), ValueError, r"session_id holds a lone surrogate"),
    ("event id lone surrogate", lambda v, s, st, g: v.append_event(s, ev(id="\ud83d")), ValueError, r"events\[0\]\.id holds a lone surrogate"),
    ("author lone surrogate", lambda v, s, st, g: v.append_event(s, Event(author="\ud800")), ValueError, r"author holds a lone surrogate"),
    ("state key lone surrogate", lambda v, s, st, g: v.update_keys("app", "u", "s", {"user:\ud800": 1}), ValueError, r"lone surrogate"),
    ("state value lone surrogate", lambda v, s, st, g: v.append_event(s, delta({"k": ["ok", "\udc80"]})), ValueError,
     r"\['k'\]\[1\]: the str .* lone surrogate"),
    ("content lone surrogate", lambda v, s, st, g: v.append_event(s, ev(content={"parts": [{"text": "\ud800"}]})), ValueError,
     r"events\[0\]\['content'\]\['parts'\]\[0\]\['text'\].*lone surrogate"),
    # the Session an append comes from
    ("Session app_name list", lambda v, s, st, g: v.append_event(Session(id="s", app_name=["app"], user_id="u"), ev()), TypeError,
     r"app_name must be a str, not list"),
    ("Session id int", lambda v, s, st, g: v.append_event(Session(id=5, app_name="app", user_id="u"), ev()), TypeError,
     r"session.id must be a str, not int"),
    ("Session revision None", lambda v, s, st, g: v.append_event(dataclasses.replace(s, revision=None), ev()), TypeError,
     r"session.revision must be an int"),
    ("Session revision str", lambda v, s, st, g: v.append_event(dataclasses.replace(s, revision="1"), ev()), TypeError,
     r"session.revision must be an int or None, not str"),
    ("Session revision float", lambda v, s, st, g: v.append_event(dataclasses.replace(s, revision=1.0), ev()), TypeError,
     r"session.revision must be an int"),
    ("Session not read from the store", lambda v, s, st, g: v.append_event(Session(id="s", app_name="app", user_id="u", revision=1), ev()),
     StaleSessionError, r"not read from this store"),
    ("Session of another incarnation", lambda v, s, st, g: v.append_event(dataclasses.replace(s, incarnation="0" * 16), ev()),
     StaleSessionError, r"deleted and created again"),
]


def _nested(depth):
    value = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def _cursor(first: bytes) -> str:
    return base64.urlsafe_b64encode(b"[" + first + b', "app", "u", "s"]').decode()


class _Color(int):
    RED: "_Color"


_Color.RED = _Color(1)


@pytest.mark.parametrize("call, kind, message", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_is_refused_and_writes_nothing(world, call, kind, message):
    svc, s, stale, gone = world
    before = stored_contents(svc)
    state_before, revision_before = dict(s.state), s.revision
    with pytest.raises(kind, match=message):
        call(svc, s, stale, gone)
    assert stored_contents(svc) == before
    assert (s.state, s.revision) == (state_before, revision_before)  # the Session object is untouched too
    again = svc.get_session("app", "u", "s")
    assert (again.state, again.revision, len(again.events)) == ({"k": 2, "user:lang": "en", "app:v": 2}, 1, 1)


class _ViaAsync:
    """The async wrapper seen through sync calls, so every row above runs on it too."""

    def __init__(self, aio, loop):
        self._aio, self._loop, self.path = aio, loop, aio.path

    def __getattr__(self, name):
        method = getattr(self._aio, name)
        return lambda *args, **kwargs: self._loop.run_until_complete(method(*args, **kwargs))


@pytest.mark.parametrize("call, kind, message", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_through_the_async_wrapper_is_refused_alike(world, target, call, kind, message):
    svc, s, stale, gone = world
    before = stored_contents(svc)
    loop = asyncio.new_event_loop()
    aio = AsyncDatabaseSessionService(target)
    try:
        with pytest.raises(kind, match=message):
            call(_ViaAsync(aio, loop), s, stale, gone)
    finally:
        aio.close()
        loop.close()
    assert stored_contents(svc) == before


NAMES = [
    "O'Brien \"the\" `quoted`",
    "'; DROP TABLE adk_sessions; --",
    "Robert'); DELETE FROM adk_events WHERE ('1'='1",
    "100% _like_ \\escaped\\",
    "Ünïcödé 名前 ضيف",
    "🦜🔥 agent 👩‍💻",
    "line\nbreak\ttab",
]


@pytest.mark.parametrize("name", NAMES)
def test_hostile_names_round_trip_exactly(target, name):
    path = target
    with DatabaseSessionService(path) as svc:
        s = svc.create_session(name, name, state={name: name, "user:" + name: name, "app:" + name: name}, session_id=name)
        other = svc.create_session("app", "u", session_id="s")
        svc.append_event(s, Event(id=name, invocation_id=name, author=name, branch=name,
                                  content={"parts": [{"text": name}]}, actions=EventActions(state_delta={name: [name]})))
        svc.update_keys(name, name, name, {"app:" + name: None})
    with DatabaseSessionService(path) as svc:
        got = svc.get_session(name, name, name)
        assert (got.app_name, got.user_id, got.id) == (name, name, name)
        assert got.state == {name: [name], "user:" + name: name}
        first = got.events[0]
        assert (first.id, first.invocation_id, first.author, first.branch, first.content) == (
            name, name, name, name, {"parts": [{"text": name}]})
        assert [x.id for x in svc.list_sessions(app_name=name, user_id=name)] == [name]
        assert svc.get_user_state(name, name) == {name: name}
        assert svc.get_app_state(name) == {}
        assert svc.get_session("app", "u", "s").revision == other.revision  # the other session is untouched
        stats = svc.get_stats()
        assert (stats["sessions"], stats["events"]) == (2, 2)


# -- hostile files ------------------------------------------------------------------

def _make_db(path, sessions=3, events=40):
    with DatabaseSessionService(path) as svc:
        for i in range(sessions):
            s = svc.create_session("app", f"u{i}", state={"app:a": i}, session_id="s")
            svc.append_events(s, [Event(author="a", content={"text": "x" * 300}) for _ in range(events)])
    return path


def _sqlite(path, *sql):
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in sql:
        conn.execute(statement)
    conn.close()


def _page_size(path):
    with open(path, "rb") as fh:
        fh.seek(16)
        return int.from_bytes(fh.read(2), "big")


def _root_page(path, table):
    conn = sqlite3.connect(path)
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    conn.close()
    return root


def _overwrite(path, offset, data):
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def _schema_page_corrupt(path, fill):
    """Overwrite the middle of page 1's cell area (sqlite_master rows)."""
    _make_db(path)
    with open(path, "rb") as fh:
        header = fh.read(108)
    start = int.from_bytes(header[105:107], "big")  # where the cells of page 1 begin
    middle = (start + _page_size(path)) // 2
    _overwrite(path, middle - 32, fill * 64)


def _schema_name_not_utf8(path):
    """Make a table name in sqlite_master invalid UTF-8 (one byte of its row changed;
    sqlite_master spans more than page 1 since the search index's triggers)."""
    _make_db(path)
    with open(path, "rb") as fh:
        page = fh.read()
    _overwrite(path, page.index(b"tableadk_sessionsadk_sessions") + 8, b"\xff")


def _metadata_page_corrupt(path):
    _make_db(path)
    page = _root_page(path, "adk_metadata")
    _overwrite(path, (page - 1) * _page_size(path), b"\xff" * 16)


def _truncated(path, keep):
    _make_db(path)
    size = os.path.getsize(path)
    assert size > 8 * _page_size(path)
    with open(path, "r+b") as fh:
        fh.truncate(keep(size))


def _newer_schema(path):
    _make_db(path)
    _sqlite(path, "UPDATE adk_metadata SET value = '999' WHERE key = 'schema_version'")


def _adk_like_tables(path):
    """The tables of google.adk's SqliteSessionService, written by hand (no google-adk needed)."""
    _sqlite(path,
            "CREATE TABLE app_states (app_name TEXT PRIMARY KEY, state TEXT NOT NULL, update_time REAL NOT NULL)",
            "CREATE TABLE user_states (app_name TEXT, user_id TEXT, state TEXT, update_time REAL, PRIMARY KEY (app_name, user_id))",
            "CREATE TABLE sessions (app_name TEXT, user_id TEXT, id TEXT, state TEXT, create_time REAL, update_time REAL,"
            " PRIMARY KEY (app_name, user_id, id))",
            "CREATE TABLE events (id TEXT, app_name TEXT, user_id TEXT, session_id TEXT, invocation_id TEXT, timestamp REAL,"
            " event_data TEXT, PRIMARY KEY (app_name, user_id, session_id, id))",
            "INSERT INTO sessions VALUES ('app', 'u', 's', '{}', 1.0, 1.0)")


def _adk_made(path):
    sqlite_service = pytest.importorskip("google.adk.sessions.sqlite_session_service")

    async def make():
        svc = sqlite_service.SqliteSessionService(path)
        await svc.create_session(app_name="app", user_id="u", session_id="s", state={"k": 1})
        if hasattr(svc, "close"):
            await svc.close()
    asyncio.run(make())


def _schema_version(value):
    """A good file whose schema_version holds ``value`` (text, or a blob for bytes)."""
    def make(path):
        _make_db(path)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("UPDATE adk_metadata SET value = ? WHERE key = 'schema_version'", (value,))
        conn.close()
    return make


def _our_tables_other_columns(path):
    """Our four table names, each with columns of someone else's."""
    _sqlite(path, "CREATE TABLE adk_sessions (id TEXT PRIMARY KEY, data TEXT)",
            "CREATE TABLE adk_events (id INTEGER PRIMARY KEY, payload TEXT)",
            "CREATE TABLE adk_state (k TEXT, v TEXT)",
            "CREATE TABLE adk_metadata (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "INSERT INTO adk_metadata VALUES ('schema_version', '2')")


def _rebuilt(table, create, copy):
    """A good file whose ``table`` is re-made by ``create`` and filled by ``copy`` (SQL
    reading the old rows from ``old``)."""
    def make(path):
        _make_db(path)
        _sqlite(path, "PRAGMA foreign_keys = OFF", f"ALTER TABLE {table} RENAME TO old", create, copy, "DROP TABLE old")
    return make


def _events_without_unique_event_id(path):
    _make_db(path)
    conn = sqlite3.connect(path, isolation_level=None)
    (index,) = conn.execute("SELECT name FROM pragma_index_list('adk_events') WHERE \"unique\"").fetchone()
    conn.execute(f'DROP INDEX "{index}"')
    conn.close()


def _version_1_with_incarnation(path):
    """Says schema_version 1 but already has the column its migration adds."""
    _make_db(path)
    _sqlite(path, "UPDATE adk_metadata SET value = '1' WHERE key = 'schema_version'")


FILES = [
    ("not sqlite (text)", lambda p: open(p, "w").write("hello, I am a text file\n" * 20), CorruptDatabaseError, r"not a SQLite database"),
    ("not sqlite (short)", lambda p: open(p, "wb").write(b"SQLite format 3"), CorruptDatabaseError, r"not a SQLite database"),
    ("truncated (last page)", lambda p: _truncated(p, lambda size: size - 100), CorruptDatabaseError,
     r"truncated: \d+ bytes, its header says \d+"),
    ("truncated (half)", lambda p: _truncated(p, lambda size: size // 2), CorruptDatabaseError, r"is corrupt: .*malformed"),
    ("corrupt schema page (0xff)", lambda p: _schema_page_corrupt(p, b"\xff"), CorruptDatabaseError, r"corrupt"),
    ("corrupt schema page (zeros)", lambda p: _schema_page_corrupt(p, b"\x00"), CorruptDatabaseError, r"corrupt|malformed"),
    ("corrupt schema page (text)", lambda p: _schema_page_corrupt(p, b"Z"), CorruptDatabaseError, r"corrupt|malformed"),
    ("schema name not UTF-8", _schema_name_not_utf8, CorruptDatabaseError, r"corrupt: .*not valid UTF-8"),
    ("corrupt metadata page", _metadata_page_corrupt, CorruptDatabaseError, r"corrupt|malformed"),
    ("newer schema_version", _newer_schema, SchemaVersionError, rf"schema_version 999, newer than this adk_lite understands \({SCHEMA_VERSION}\)"),
    ("bad schema_version", lambda p: (_make_db(p), _sqlite(p, "UPDATE adk_metadata SET value = 'two'")), CorruptDatabaseError,
     r"no valid schema_version"),
    ("schema_version superscript two", _schema_version("\u00b2"), CorruptDatabaseError, r"no valid schema_version .*'\u00b2'"),
    ("schema_version with a space", _schema_version(" 2"), CorruptDatabaseError, r"no valid schema_version"),
    ("schema_version negative", _schema_version("-1"), CorruptDatabaseError, r"no valid schema_version"),
    ("schema_version float text", _schema_version("2.0"), CorruptDatabaseError, r"no valid schema_version"),
    ("schema_version leading zero", _schema_version("02"), CorruptDatabaseError, r"no valid schema_version"),
    ("schema_version zero", _schema_version("0"), CorruptDatabaseError, r"no valid schema_version"),
    ("schema_version empty", _schema_version(""), CorruptDatabaseError, r"no valid schema_version"),
    ("schema_version arabic digit", _schema_version("\u0662"), CorruptDatabaseError, r"no valid schema_version"),
    ("schema_version a blob", _schema_version(b"2"), CorruptDatabaseError, r"no valid schema_version"),
    ("schema_version missing", lambda p: (_make_db(p), _sqlite(p, "DELETE FROM adk_metadata")), CorruptDatabaseError,
     r"no valid schema_version .*None"),
    ("schema_version 23 digits", _schema_version("9" * 23), SchemaVersionError, r"schema_version 9{23}, newer"),
    ("schema_version 5000 digits", _schema_version("9" * 5000), SchemaVersionError, r"schema_version 9{30}, newer"),
    ("our table names, other columns", _our_tables_other_columns, ForeignDatabaseError,
     r"has adk_lite's tables but not their columns: adk_sessions lacks the columns app_name, created_at"),
    ("only some of our tables", lambda p: (_make_db(p), _sqlite(p, "DROP TABLE adk_state", "DROP TABLE adk_events")),
     ForeignDatabaseError, r"not a whole adk_lite database: it lacks the tables adk_events, adk_state"),
    ("only adk_metadata", lambda p: _sqlite(p, "CREATE TABLE adk_metadata (key TEXT PRIMARY KEY, value TEXT)",
                                            "INSERT INTO adk_metadata VALUES ('schema_version', '2')"),
     ForeignDatabaseError, r"lacks the tables adk_sessions, adk_events, adk_state"),
    ("adk_metadata with other columns", _rebuilt("adk_metadata", "CREATE TABLE adk_metadata (k TEXT, v TEXT)",
                                                 "INSERT INTO adk_metadata SELECT key, value FROM old"),
     ForeignDatabaseError, r"adk_metadata lacks the columns key, value"),
    ("events without body", lambda p: (_make_db(p), _sqlite(p, "DROP TRIGGER adk_events_fts_insert", "DROP TRIGGER adk_events_fts_update",
                                                              "ALTER TABLE adk_events DROP COLUMN body")),
     ForeignDatabaseError, r"adk_events lacks the columns body"),
    ("version 2 without incarnation", lambda p: (_make_db(p), _sqlite(p, "ALTER TABLE adk_sessions DROP COLUMN incarnation")),
     ForeignDatabaseError, r"adk_sessions lacks the columns incarnation"),
    ("version 1 with incarnation", _version_1_with_incarnation, ForeignDatabaseError,
     r"adk_sessions already has (\w+, )*incarnation(, \w+)*, which schema_version 1 does not"),
    ("extra required column", _rebuilt("adk_metadata", "CREATE TABLE adk_metadata (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
                                       " owner TEXT NOT NULL)", "INSERT INTO adk_metadata SELECT key, value, 'me' FROM old"),
     ForeignDatabaseError, r"adk_metadata has unknown required columns owner"),
    ("state without its primary key", _rebuilt(
        "adk_state", "CREATE TABLE adk_state (app_name TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL,"
        " scope TEXT NOT NULL, state_key TEXT NOT NULL, state_value TEXT NOT NULL, updated_at REAL NOT NULL)",
        "INSERT INTO adk_state SELECT * FROM old"),
     ForeignDatabaseError, r"adk_state has no unique key on \(app_name, scope, session_id, state_key, user_id\)"),
    ("events without unique event ids", _events_without_unique_event_id, ForeignDatabaseError,
     r"adk_events has no unique key on \(app_name, event_id, session_id, user_id\)"),
    ("other sqlite tables", lambda p: _sqlite(p, "CREATE TABLE notes (body TEXT)", "INSERT INTO notes VALUES ('mine')"),
     ForeignDatabaseError, r"not an adk_lite one: it has tables notes"),
    ("ADK tables by hand", _adk_like_tables, ForeignDatabaseError, r"google\.adk's DatabaseSessionService or SqliteSessionService"),
    pytest.param("ADK SqliteSessionService file", _adk_made, ForeignDatabaseError,
                 r"google\.adk's DatabaseSessionService or SqliteSessionService", marks=pytest.mark.adk),
]


def _file_rows():
    for row in FILES:
        values, marks = (row.values, row.marks) if hasattr(row, "values") else (row, ())
        yield pytest.param(*values[1:], id=values[0], marks=marks)


@pytest.mark.parametrize("make, kind, message", list(_file_rows()))
def test_hostile_file_is_refused_at_open_and_untouched(tmp_path, make, kind, message):
    path = str(tmp_path / "hostile.db")
    make(path)
    before, listing = file_bytes(path), folder_listing(tmp_path)
    for synchronous in ("normal", "full"):
        with pytest.raises(kind, match=message) as caught:
            DatabaseSessionService(path, synchronous=synchronous)
        assert isinstance(caught.value, AdkLiteError)
        assert path in str(caught.value)
    assert file_bytes(path) == before
    assert folder_listing(tmp_path) == listing  # no -wal/-shm left behind either


@pytest.mark.parametrize("make, kind, message", list(_file_rows()))
def test_hostile_file_is_refused_by_a_read_only_open_too(tmp_path, make, kind, message):
    path = str(tmp_path / "hostile.db")
    make(path)
    before, listing = file_bytes(path), folder_listing(tmp_path)
    with pytest.raises(kind, match=message):
        DatabaseSessionService(path, read_only=True)
    assert file_bytes(path) == before
    assert folder_listing(tmp_path) == listing


def _event_page_header(path):
    page = _root_page(path, "adk_events")
    _overwrite(path, (page - 1) * _page_size(path), b"\xff" * 16)


def _event_body_not_utf8(path):
    with open(path, "rb") as fh:
        data = fh.read()
    _overwrite(path, data.index(b"x" * 64) + 4, b"\xff")


@pytest.mark.parametrize("damage", [_event_page_header, _event_body_not_utf8])
def test_corrupt_event_page_is_reported_on_read_not_raw(tmp_path, damage):
    """Corruption in a data page is not seen at open (that would mean reading the whole
    file); reading it raises CorruptDatabaseError, and the read changes nothing."""
    path = _make_db(str(tmp_path / "events.db"), sessions=1, events=200)
    damage(path)
    before = file_bytes(path)
    with DatabaseSessionService(path) as svc:
        with pytest.raises(CorruptDatabaseError, match=r"is corrupt"):
            svc.get_session("app", "u0", "s")
    assert file_bytes(path) == before


def test_directory_is_refused(tmp_path):
    (tmp_path / "inside").write_text("keep")
    listing = folder_listing(tmp_path)
    with pytest.raises(DatabaseOpenError, match=r"is a directory, not a file"):
        DatabaseSessionService(str(tmp_path))
    assert folder_listing(tmp_path) == listing


@pytest.mark.parametrize("below", ["x.db", os.path.join("sub", "x.db")])
def test_path_under_a_regular_file_is_refused(tmp_path, below):
    regular = tmp_path / "regular"
    regular.write_bytes(b"plain file")
    with pytest.raises(DatabaseOpenError, match=r"Not a directory") as caught:
        DatabaseSessionService(str(regular / below))
    assert isinstance(caught.value.__cause__, NotADirectoryError)
    assert regular.read_bytes() == b"plain file"
    assert folder_listing(tmp_path) == ["regular"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions, so chmod cannot make a read-only folder")
def test_path_in_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(DatabaseOpenError, match=r"cannot create database .*ro"):
            DatabaseSessionService(str(folder / "x.db"))
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o700)


def test_use_after_close_is_service_closed_error(target):
    """Sync and async: a call after close raises ServiceClosedError naming the
    database (the async wrapper used to leak the executor's raw RuntimeError)."""
    svc = DatabaseSessionService(target)
    svc.close()
    closed = re.escape(f"{svc.path} is closed")  # the file, or the URL with its password masked
    with pytest.raises(ServiceClosedError, match=closed):
        svc.get_session("app", "u", "s")
    svc.close()  # closing twice is harmless

    async def main():
        asvc = AsyncDatabaseSessionService(target)
        await asvc.aclose()
        for call in (lambda: asvc.get_session("app", "u", "s"), lambda: asvc.run(len, "x")):
            with pytest.raises(ServiceClosedError, match=closed):
                await call()
    asyncio.run(main())
