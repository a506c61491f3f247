"""Full-text search (``search_events``) and newest-first listing.

The index must agree with the event log after every write path (append, batch,
update_keys, delete, prune, import, a raw DELETE, a SIGKILL at a random point), a
user must never see another user's hits, and no query string may raise anything
but ValueError/TypeError."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import time

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adk_lite import (AsyncDatabaseSessionService, DatabaseError, DatabaseSessionService, Event, EventActions,
                      ForeignDatabaseError, SearchHit, SearchResults)
from adk_lite.schema import SCHEMA_VERSION, search_text_sql
from adk_lite.schema_check import count_problems
from tests.conftest import drop_later_tables
from tests.workers import Lines, child_env

HERE = os.path.dirname(os.path.abspath(__file__))


def index_agrees(where) -> int:
    """Assert the search index holds exactly each event's text; return the number of
    indexed events. ``where``: a file path, or a service on either backend. On SQLite
    FTS5's own check must pass too; on PostgreSQL each event's ``search`` column must
    equal the tsvector of its text now."""
    if isinstance(where, DatabaseSessionService) and where.path.startswith("postgresql://"):
        from adk_lite.postgres import SEARCH_CHARS, SEARCH_COLUMN  # needs psycopg: imported on PostgreSQL only
        in_step = (f"SELECT count(*) FILTER (WHERE {SEARCH_COLUMN} IS NOT NULL), count(*) FILTER (WHERE "
                   f"{SEARCH_COLUMN} IS DISTINCT FROM to_tsvector('simple', adk_lite_words(left("
                   f"adk_lite_search_text(body), {SEARCH_CHARS})))) FROM adk_events")
        indexed, differ = where.store.read(lambda conn: conn.execute(in_step).fetchone())
        assert differ == 0
        return indexed
    conn = sqlite3.connect(where if isinstance(where, str) else where.path)
    try:
        assert count_problems(conn) == []  # the counts per app, kept by triggers too, agree with the rows
        conn.execute("INSERT INTO adk_events_fts (adk_events_fts) VALUES ('integrity-check')")
        expected = {i: t for i, t in conn.execute(f"SELECT id, {search_text_sql('body')} FROM adk_events")
                    if t is not None}
        actual = dict(conn.execute("SELECT rowid, text FROM adk_events_fts"))
    finally:
        conn.close()
    assert actual == expected
    return len(actual)


@pytest.fixture
def svc(svc_any):
    """Search runs on both backends: FTS5 on SQLite, a tsvector column on PostgreSQL."""
    return svc_any


def on_postgres(svc) -> bool:
    return svc.path.startswith("postgresql://")


def say(svc, session, *texts, author="user"):
    events = [Event(author=author, content={"role": "user", "parts": [{"text": t}]}) for t in texts]
    svc.append_events(session, events)
    return [e.id for e in events]


def ids(hits):
    return [h.event_id for h in hits]


# -- what is indexed, and ranking ----------------------------------------------------

RAW_SQLITE = {"phrase": '"order 7"', "not": "refund NOT order", "near": "NEAR(weather refund, 10)",
              "far": "NEAR(weather refund, 3)", "prefix_or": "weath* OR relevant", "prefix": "東京*"}
RAW_POSTGRES = {"phrase": "order <-> 7", "not": "refund & !order", "near": "weather <10> refund",
                "far": "weather <3> refund", "prefix_or": "weath:* | relevant", "prefix": "東京:*"}


def test_ranking_order_on_a_fixed_corpus(svc):
    s = svc.create_session("app", "u", session_id="s")
    e1, e2, e3, _ = say(svc, s, "refund refund refund", "I want a refund for order 7",
                        "the weather is nice today and by the way maybe a refund later who knows what happens next",
                        "nothing relevant here")
    hits = svc.search_events("refund")
    assert ids(hits) == [e1, e2, e3]
    assert [h.rank for h in hits] == sorted(h.rank for h in hits)
    assert isinstance(hits, SearchResults) and isinstance(hits[0], SearchHit) and hits.next_cursor is None
    assert hits[1].snippet == "I want a «refund» for order 7"
    assert (hits[0].app_name, hits[0].user_id, hits[0].session_id, hits[0].author) == ("app", "u", "s", "user")
    raw = RAW_POSTGRES if on_postgres(svc) else RAW_SQLITE  # each backend's own syntax
    assert ids(svc.search_events(raw["phrase"], raw=True)) == [e2]
    assert ids(svc.search_events(raw["not"], raw=True)) == [e1, e3]
    assert ids(svc.search_events(raw["near"], raw=True)) == [e3]
    assert ids(svc.search_events(raw["far"], raw=True)) == []
    assert set(ids(svc.search_events(raw["prefix_or"], raw=True))) == {e3, _}


def test_what_is_indexed(svc):
    s = svc.create_session("app", "u", session_id="s")
    call = Event(author="agent", content={"role": "model", "parts": [
        {"function_call": {"name": "issue_refund", "args": {"order": 7734, "reason": "broken teapot"}}}]})
    response = Event(author="user", content={"role": "user", "parts": [
        {"function_response": {"name": "issue_refund", "response": {"status": "approved"}}},
        {"inline_data": {"mime_type": "image/png", "data": "c2VjcmV0YmluYXJ5"}}]})
    state = Event(author="agent", content={"parts": [{"text": "Café CRÈME"}]},
                  actions=EventActions(state_delta={"note": "statesecret", "temp:t": "tempsecret"}))
    svc.append_events(s, [call, response, state])
    assert ids(svc.search_events("teapot")) == [call.id]
    assert ids(svc.search_events("7734")) == [call.id]
    assert set(ids(svc.search_events("issue_refund"))) == {call.id, response.id}
    assert ids(svc.search_events("approved")) == [response.id]
    assert ids(svc.search_events("cafe creme")) == [state.id]  # case and accents
    for hidden in ("c2VjcmV0YmluYXJ5", "statesecret", "tempsecret", "image"):
        assert ids(svc.search_events(hidden)) == [], hidden
    index_agrees(svc)


def test_cjk_runs_are_one_token(svc):
    s = svc.create_session("app", "u")
    (e,) = say(svc, s, "東京で会いましょう tokyo")
    assert ids(svc.search_events("東京で会いましょう")) == [e]
    assert ids(svc.search_events("東京")) == []  # the documented limit: no word breaks inside a CJK run
    prefix = (RAW_POSTGRES if on_postgres(svc) else RAW_SQLITE)["prefix"]
    assert ids(svc.search_events(prefix, raw=True)) == [e]  # a prefix query finds it


# -- filters and pages ---------------------------------------------------------------

def test_filters_never_leak_other_users_hits(svc):
    made = {}
    for app in ("a1", "a2"):
        for user in ("alice", "bob"):
            for sid in ("s1", "s2"):
                s = svc.create_session(app, user, session_id=sid)
                made[app, user, sid] = say(svc, s, f"secret plan of {user}") + say(svc, s, "secret reply",
                                                                                   author="agent")
    assert len(svc.search_events("secret", limit=100)) == 16
    for app in ("a1", "a2"):
        for user in ("alice", "bob"):
            hits = svc.search_events("secret", app_name=app, user_id=user, limit=100)
            assert {(h.app_name, h.user_id) for h in hits} == {(app, user)}
            assert len(hits) == 4
            one = svc.search_events("secret", app_name=app, user_id=user, session_id="s2", author="agent")
            assert ids(one) == [made[app, user, "s2"][1]]
    assert {h.user_id for h in svc.search_events("secret", user_id="alice", limit=100)} == {"alice"}
    assert svc.search_events("bob", user_id="alice") == []
    assert svc.search_events("secret", user_id="carol") == []


def test_pages_cover_every_hit_once(svc):
    s = svc.create_session("app", "u")
    made = say(svc, s, *(["same text refund"] * 5 + [f"refund {'x ' * i}" for i in range(7)]))
    everything = ids(svc.search_events("refund", limit=100))
    assert sorted(everything) == sorted(made)
    pages, after = [], None
    while True:
        page = svc.search_events("refund", limit=3, after=after)
        pages += ids(page)
        after = page.next_cursor
        if after is None:
            break
    assert pages == everything  # ties on rank (five equal texts) are ordered by row


def test_bad_cursors_and_arguments(svc):
    s = svc.create_session("app", "u")
    say(svc, s, "refund one", "refund two", "refund three")
    cursor = svc.search_events("refund", limit=1).next_cursor
    with pytest.raises(ValueError, match="another search"):
        svc.search_events("refund", limit=1, after=cursor, user_id="u")
    with pytest.raises(ValueError, match="another search"):
        svc.search_events("one", after=cursor)
    svc.create_session("app", "u2")
    list_cursor = svc.list_sessions(limit=1).next_cursor
    for forged in ("", "zzz", "W10=", list_cursor, "WyJ4IiwxLjAsMl0=", "WyJ4IiwiYSIsMl0=", cursor[:-3] + "AAA"):
        with pytest.raises(ValueError):
            svc.search_events("refund", after=forged)
    with pytest.raises(TypeError):
        svc.search_events("refund", after=3)
    with pytest.raises(ValueError):
        svc.list_sessions(after=cursor)
    for bad, kind in ((dict(limit=0), ValueError), (dict(limit=None), TypeError), (dict(limit="3"), TypeError),
                      (dict(raw=1), TypeError), (dict(user_id=""), ValueError), (dict(app_name=3), TypeError),
                      (dict(session_id=" "), ValueError), (dict(author="a\x00"), ValueError)):
        with pytest.raises(kind):
            svc.search_events("refund", **bad)


HOSTILE = ['"', '""', "'", "-", "-refund", "refund-", "*", "refund*", "^refund", "NOT", "AND", "OR", "NEAR",
           "NEAR(", "(", ")", "((((((((((refund", "text:refund", "x:y", "{text}: a", "a + b", "a\"b\"c",
           "it's", "100%", "C++", "e-mail", "\\", "\t\n", "", " ", "\u200b", "🙂", "ß", "İ", "; DROP TABLE adk_events;--",
           "refund " * 500, '"' * 4000]


@pytest.mark.parametrize("query", HOSTILE)
def test_plain_queries_never_error(svc, query):
    s = svc.create_session("app", "u")
    say(svc, s, "refund for it's e-mail C++ 100% text")
    hits = svc.search_events(query)
    assert isinstance(hits, SearchResults)
    assert all(isinstance(h.snippet, str) for h in hits)


def test_plain_words_are_all_required_and_punctuation_separates(svc):
    s = svc.create_session("app", "u")
    a, b = say(svc, s, "refund for order 7", "order e-mail")
    assert ids(svc.search_events("order-7")) == [a]  # a phrase: "order 7"
    assert ids(svc.search_events('refund "order')) == [a]
    assert ids(svc.search_events("e-mail")) == [b]
    assert ids(svc.search_events("refund OR mail")) == []  # OR is a word in plain text


MALFORMED = {"sqlite": ['"', "refund OR", "NEAR(", "x:y", "(a", "a AND", "", "NEAR(a b, -1)", "*a",
                        "((" * 300 + "a" + "))" * 300],
             "postgres": ["(a", "a &", "&", "a & (b", "!", "a <->", "a | | b", "a <-1> b", "refund refund", "((" * 300 + "a"]}


@pytest.mark.parametrize("index", range(10))
def test_malformed_raw_queries_are_value_errors(svc, backend, index):
    s = svc.create_session("app", "u")
    say(svc, s, "refund")
    syntax = "PostgreSQL tsquery" if backend == "postgres" else "FTS5 query"
    with pytest.raises(ValueError, match=f"not a valid {syntax}") as info:
        svc.search_events(MALFORMED[backend][index], raw=True)
    assert type(info.value) is ValueError


def test_query_limits(svc):
    with pytest.raises(ValueError, match="limit is 4096"):
        svc.search_events("a" * 4097)
    with pytest.raises(ValueError, match="NUL"):
        svc.search_events("a\x00b")
    with pytest.raises(ValueError, match="surrogate"):
        svc.search_events("a\ud800")
    with pytest.raises(TypeError):
        svc.search_events(b"refund")


# -- every write path keeps the index in step ----------------------------------------

def test_every_write_path_keeps_the_index(svc, target):
    sessions = []
    for i in range(6):
        s = svc.create_session("app", f"u{i % 2}", session_id=f"s{i}")
        say(svc, s, f"alpha{i} first")
        say(svc, s, f"alpha{i} batch one", f"alpha{i} batch two")
        sessions.append(s)
    svc.update_keys("app", "u0", "s0", {"k": 1, "user:x": None})
    assert index_agrees(svc) == 18
    assert len(svc.search_events("alpha0")) == 3
    svc.delete_session("app", "u1", "s1")
    assert svc.search_events("alpha1") == [] and index_agrees(svc) == 15
    svc.store.delete_sessions([("app", "u0", "s2"), ("app", "u1", "s3")])
    assert svc.search_events("alpha2") == [] and index_agrees(svc) == 9
    assert svc.store.prune(time.time() + 1, "app", "u0", 1, delete=True) == (1, 3)
    assert index_agrees(svc) == 6
    row = ("e1", "inv", "user", None, 1.0, '{"content": {"parts": [{"text": "imported words"}]}}')
    svc.store.import_session("app", "u9", "imp", 1.0, 1.0, [], [row], replace=False)
    assert ids(svc.search_events("imported")) == ["e1"]
    row2 = ("e2", "inv", "user", None, 1.0, '{"content": {"parts": [{"text": "replaced words"}]}}')
    svc.store.import_session("app", "u9", "imp", 1.0, 1.0, [], [row2], replace=True)
    assert svc.search_events("imported") == [] and ids(svc.search_events("replaced")) == ["e2"]
    index_agrees(svc)
    # statements no adk_lite method runs (a user's own SQL): the index still follows
    rewrite = ("UPDATE adk_events SET body = '{\"content\": {\"parts\": [{\"text\": \"rewritten\"}]}}' "
               "WHERE event_id = 'e2'", "DELETE FROM adk_sessions WHERE session_id = 's4'")
    if on_postgres(svc):
        import psycopg
        with psycopg.connect(target) as conn:  # one transaction, committed on exit
            for sql in rewrite:
                conn.execute(sql)
    else:
        conn = sqlite3.connect(target)
        conn.execute("PRAGMA foreign_keys=1")
        with conn:
            for sql in rewrite:
                conn.execute(sql)
        conn.close()
    assert ids(svc.search_events("rewritten")) == ["e2"] and svc.search_events("alpha4") == []
    index_agrees(svc)


def test_a_failed_write_leaves_the_index_alone(svc):
    s = svc.create_session("app", "u")
    say(svc, s, "kept words")
    stale = svc.get_session("app", "u", s.id)
    say(svc, s, "more words")
    with pytest.raises(Exception):
        svc.append_event(stale, Event(content={"parts": [{"text": "never stored"}]}))
    assert svc.search_events("never") == []
    index_agrees(svc)


CHILD = r'''
import random, sys
from adk_lite import DatabaseSessionService, Event
path, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
svc = DatabaseSessionService(path)
print("READY", flush=True)
n = 0
while True:
    n += 1
    user, sid = f"u{rng.randrange(3)}", f"s{rng.randrange(6)}"
    s = svc.get_session("app", user, sid)
    op = rng.random()
    if s is None:
        svc.create_session("app", user, session_id=sid)
    elif op < 0.6:
        svc.append_events(s, [Event(content={"parts": [{"text": f"word{n} batch {i} " + "z " * rng.randrange(200)}]})
                              for i in range(rng.randrange(1, 80))])
    elif op < 0.75:
        svc.delete_session("app", user, sid)
    elif op < 0.85:
        svc.store.prune(1e12, "app", user, 1, delete=True)
    else:
        rows = [(f"i{n}-{i}", "inv", "user", None, 1.0, '{"content": {"parts": [{"text": "imported %d"}]}}' % n)
                for i in range(rng.randrange(1, 50))]
        svc.store.import_session("app", user, sid, 1.0, 1.0, [], rows, replace=True)
'''


def test_sigkill_at_random_points_leaves_search_and_log_in_step(tmp_path):
    path = str(tmp_path / "crash.sqlite3")
    DatabaseSessionService(path).close()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    rng = random.Random(int(os.environ.get("ADK_LITE_CRASH_SEED", "20261121")))
    import subprocess
    import sys
    for kill in range(12):
        proc = subprocess.Popen([sys.executable, str(script), path, str(rng.randrange(10**9))], env=child_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        try:
            assert Lines(proc).next(30.0) == "READY"
            time.sleep(rng.uniform(0.02, 0.4))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        index_agrees(path)
        with DatabaseSessionService(path) as svc:
            events = svc.get_stats()["events"]
            hits = svc.search_events("batch OR imported", raw=True, limit=10**6)
            assert len(hits) == events, kill


# -- migration and read-only ---------------------------------------------------------

def make_version_3(path: str) -> None:
    """A file as adk_lite wrote it before the search index: schema_version 3, no
    adk_events_fts, no triggers (events inserted with none)."""
    with DatabaseSessionService(path) as svc:
        s = svc.create_session("app", "u", session_id="old")
        say(svc, s, "written before the index existed", "another old refund")
    conn = sqlite3.connect(path)
    with conn:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP TABLE adk_events_fts")
        drop_later_tables(conn, 3)
        conn.execute("INSERT INTO adk_events (app_name, user_id, session_id, event_id, invocation_id, author, "
                     "timestamp, body) VALUES ('app', 'u', 'old', 'raw', '', 'user', 1.0, "
                     "'{\"content\": {\"parts\": [{\"text\": \"inserted without triggers refund\"}]}}')")
        conn.execute("UPDATE adk_metadata SET value = '3' WHERE key = 'schema_version'")
    conn.close()


def test_migration_of_a_version_3_file(tmp_path):
    path = str(tmp_path / "v3.sqlite3")
    make_version_3(path)
    before = open(path, "rb").read()
    with DatabaseSessionService(path, read_only=True) as ro:
        with pytest.raises(DatabaseError, match="no search index yet"):
            ro.search_events("refund")
        assert ro.list_sessions()[0].id == "old"
    assert open(path, "rb").read() == before
    with DatabaseSessionService(path) as svc:
        assert svc.get_stats()["schema_version"] == SCHEMA_VERSION
        assert len(svc.search_events("refund")) == 2
        assert ids(svc.search_events("existed")) and index_agrees(path) == 3
        s = svc.get_session("app", "u", "old")
        say(svc, s, "after the migration")
        assert len(svc.search_events("migration")) == 1
    index_agrees(path)


def test_migration_is_atomic(tmp_path, monkeypatch):
    """A failure inside the migration (here: after the index is built) leaves the
    file at version 3 with no index, as before."""
    from adk_lite import schema
    path = str(tmp_path / "v3.sqlite3")
    make_version_3(path)

    def broken(conn):
        schema._add_search(conn)
        raise sqlite3.OperationalError("disk I/O error")
    monkeypatch.setitem(schema.MIGRATIONS, 3, broken)
    with pytest.raises(DatabaseError):
        DatabaseSessionService(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM adk_metadata WHERE key = 'schema_version'").fetchone() == ("3",)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'adk_events_fts%'").fetchall() == []
    conn.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["text", "name", "args", "response", "x", "a.b", "c[0]", "function_call", "functionCall",
                         "function_response", "functionResponse"]), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(parts=json_values | st.lists(json_values, max_size=4))
def test_the_one_parse_extraction_is_the_nine_walks_text(parts):
    """Schema 6's trigger extraction gives, for any body, the very text versions 4 and
    5 indexed, so a migrated file keeps its index and ``check`` compares either."""
    from adk_lite import schema
    body = orjson.dumps({"content": {"parts": parts}, "author": "user"}).decode()
    conn = sqlite3.connect(":memory:")
    try:
        new, old = conn.execute(f"SELECT {search_text_sql('?1')}, {schema._search_text_sql_v4('?1')}", (body,)).fetchone()
    finally:
        conn.close()
    assert new == old


def _make_version_5(path: str) -> dict[int, str]:
    """A file as schema version 5 wrote it (the nine-walk triggers, version 5), holding
    events of every indexed shape; returns its index text by rowid."""
    from tests.conftest import drop_later_tables
    with DatabaseSessionService(path) as svc:
        s = svc.create_session("app", "u", session_id="old")
        say(svc, s, "refund before the migration", "order 7")
        svc.append_event(s, Event(author="agent", content={"role": "model", "parts": [
            {"function_call": {"name": "lookup_refund", "args": {"order": 7, "why": ["late", {"deep": 1.5}]}}},
            {"text": "checking"}]}))
        svc.append_event(s, Event(author="agent", content={"role": "user", "parts": [
            {"function_response": {"name": "lookup_refund", "response": {"status": "approved"}}}]}))
    conn = sqlite3.connect(path, isolation_level=None)
    with conn:
        drop_later_tables(conn, 5)
        conn.execute("UPDATE adk_metadata SET value = '5' WHERE key = 'schema_version'")
    text = dict(conn.execute("SELECT rowid, text FROM adk_events_fts"))
    conn.close()
    return text


def _triggers(path: str) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'adk_events'"))
    finally:
        conn.close()


def test_migration_of_a_version_5_file_keeps_its_index(tmp_path):
    from adk_lite import schema
    path, fresh = str(tmp_path / "v5.sqlite3"), str(tmp_path / "new.sqlite3")
    indexed = _make_version_5(path)
    DatabaseSessionService(fresh).close()
    assert _triggers(path) != _triggers(fresh) and "json_each('[" in _triggers(path)["adk_events_fts_insert"]
    before = open(path, "rb").read()
    with DatabaseSessionService(path, read_only=True) as ro:  # read-only: no migration, and the file is whole
        found = ro.store.check()
        assert found["schema_version"] == 5 and found["schema_problems"] == [] and found["integrity_check"] == ["ok"]
        assert ids(ro.search_events("lookup_refund"))
    assert open(path, "rb").read() == before
    with DatabaseSessionService(path) as svc:
        assert svc.get_stats()["schema_version"] == SCHEMA_VERSION == 6
        assert svc.store.check()["schema_problems"] == []
        s = svc.get_session("app", "u", "old")
        say(svc, s, "after the migration")
        svc.append_event(s, Event(author="agent", content={"role": "model", "parts": [
            {"functionCall": {"name": "camel", "args": {"n": 3}}}]}))
        assert len(svc.search_events("migration")) == 2 and ids(svc.search_events("camel"))
    assert _triggers(path) == _triggers(fresh)
    conn = sqlite3.connect(path)
    kept = dict(conn.execute("SELECT rowid, text FROM adk_events_fts WHERE rowid <= ?", (max(indexed),)))
    conn.close()
    assert kept == indexed  # the index was not rebuilt: the same text, row for row
    assert index_agrees(path) == len(indexed) + 2
    assert schema._search_text_sql_v4("body") != search_text_sql("body")


def test_a_version_6_file_with_the_old_triggers_is_not_whole(tmp_path):
    """A trigger is part of the schema: a version 6 file holding the nine-walk one is
    refused at open, naming it (it is not what version 6 makes), though it indexes the
    same text."""
    from adk_lite import schema
    path = str(tmp_path / "mixed.sqlite3")
    DatabaseSessionService(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER adk_events_fts_insert")
    conn.execute("CREATE TRIGGER adk_events_fts_insert AFTER INSERT ON adk_events BEGIN INSERT INTO adk_events_fts "
                 f"(rowid, text) SELECT new.id, x FROM (SELECT {schema._search_text_sql_v4('new.body')} AS x) "
                 "WHERE x IS NOT NULL; END")
    conn.close()
    for read_only in (True, False):
        with pytest.raises(ForeignDatabaseError, match="trigger adk_events_fts_insert is not as adk_lite makes it"):
            DatabaseSessionService(path, read_only=read_only)


# -- listing newest first ------------------------------------------------------------

def test_both_listing_orders_with_cursors(svc):
    for i in range(7):
        s = svc.create_session("app", f"u{i % 2}", session_id=f"s{i}")
        svc.append_event(s, Event(timestamp=1000.0 + (i * 3) % 7))  # updated_at out of creation order
    for filters in ({}, {"app_name": "app"}, {"user_id": "u1"}, {"app_name": "app", "user_id": "u0"}):
        oldest = [s.id for s in svc.list_sessions(**filters)]
        newest = [s.id for s in svc.list_sessions(**filters, order="newest")]
        assert newest == oldest[::-1] and len(oldest) > 1
        for order, want in (("oldest", oldest), ("newest", newest)):
            got, after = [], None
            while True:
                page = svc.list_sessions(**filters, limit=2, after=after, order=order)
                got += [s.id for s in page]
                after = page.next_cursor
                if after is None:
                    break
            assert got == want
    newest_cursor = svc.list_sessions(limit=2, order="newest").next_cursor
    oldest_cursor = svc.list_sessions(limit=2).next_cursor
    with pytest.raises(ValueError, match="order='newest'"):
        svc.list_sessions(limit=2, after=newest_cursor)
    with pytest.raises(ValueError, match="order='oldest'"):
        svc.list_sessions(limit=2, after=oldest_cursor, order="newest")
    for bad in ("Newest", "", None, 1):
        with pytest.raises(ValueError):
            svc.list_sessions(order=bad)


# -- the async twin, the ADK adapter, the command line ---------------------------------

def test_async_twin_and_adk_adapter(target):
    db_path = target
    async def main():
        async with AsyncDatabaseSessionService(db_path) as aio:
            s = await aio.create_session("app", "u")
            await aio.append_event(s, Event(content={"parts": [{"text": "async refund"}]}))
            hits = await aio.search_events("refund", user_id="u")
            assert [h.snippet for h in hits] == ["async «refund»"]
            assert [x.id for x in await aio.list_sessions(order="newest")] == [s.id]
        pytest.importorskip("google.adk")  # adk_lite.adk says which extra is missing: an ImportError, not a skip
        from adk_lite import adk
        service = adk.DatabaseSessionService(db_path)
        try:
            hits = await service.search_events("refund", app_name="app")
            assert len(hits) == 1 and hits[0].user_id == "u"
            page = await service.list_sessions(app_name="app", order="newest")
            assert len(page.sessions) == 1
        finally:
            await service.close()
    asyncio.run(main())


def test_cli_search_is_read_only(db_path, capsys):
    from adk_lite.cli import main
    svc = DatabaseSessionService(db_path)
    s = svc.create_session("app", "alice", session_id="chat")
    say(svc, s, "refund for order 7", "other refund")
    svc.close()
    before, mtime = open(db_path, "rb").read(), os.stat(db_path).st_mtime_ns
    assert main(["search", db_path, "refund", "--user", "alice", "--limit", "1"]) == 0
    out, err = capsys.readouterr()
    assert "«refund»" in out and "next page: --after" in err and "next page" not in out
    assert main(["search", db_path, "order 7", "--json"]) == 0
    import json
    data = json.loads(capsys.readouterr().out)
    assert [h["session_id"] for h in data["hits"]] == ["chat"] and data["next_cursor"] is None
    assert main(["search", db_path, "refund OR", "--raw"]) == 2
    assert "not a valid FTS5 query" in capsys.readouterr().err
    assert main(["search", db_path, '"-', "--author", "user"]) == 0
    assert "no match" in capsys.readouterr().out
    assert main(["sessions", db_path, "--newest", "--json"]) == 0
    assert [r["session_id"] for r in json.loads(capsys.readouterr().out)["sessions"]] == ["chat"]
    assert open(db_path, "rb").read() == before and os.stat(db_path).st_mtime_ns == mtime
    assert not os.path.exists(db_path + "-wal")


# -- PostgreSQL: a database made before search, long texts, the command line -----------

def test_postgres_database_made_before_search_gets_it_at_open(capsys):
    """A PostgreSQL database adk_lite 0.2.0 made before search existed (schema_version 4,
    no search column): a read-only open says so on search, the first read-write open
    builds the column and its index from the stored events, under the schema lock."""
    from tests.conftest import pg_databases
    url = pg_databases().fresh(0)  # skips (or fails under CI=true) without a server, before psycopg is needed
    import psycopg
    from adk_lite.cli import main
    with DatabaseSessionService(url) as svc:
        s = svc.create_session("app", "u", session_id="old")
        say(svc, s, "written before search existed", "an old refund")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP INDEX adk_events_search")
        conn.execute("ALTER TABLE adk_events DROP COLUMN search")
    with DatabaseSessionService(url, read_only=True) as ro:
        with pytest.raises(DatabaseError, match="no search index yet"):
            ro.search_events("refund")
        assert ro.list_sessions()[0].id == "old"
    with DatabaseSessionService(url) as svc:
        assert ids(svc.search_events("refund")) and index_agrees(svc) == 2
    assert main(["search", url, "existed", "--json"]) == 0
    import json
    assert [h["session_id"] for h in json.loads(capsys.readouterr().out)["hits"]] == ["old"]
    assert main(["search", url, "a & (", "--raw"]) == 2
    assert "not a valid PostgreSQL tsquery" in capsys.readouterr().err


def test_a_long_text_is_stored_and_its_start_found(svc):
    """PostgreSQL refuses a tsvector over 1 MiB: only the text's first 100,000
    characters are indexed there, and the event is stored whole on both backends."""
    s = svc.create_session("app", "u")
    words = " ".join(f"w{i}x" for i in range(400_000))  # 2.8 MB of distinct words
    (e,) = say(svc, s, "opening " + words)
    assert ids(svc.search_events("opening")) == [e]
    assert svc.get_session("app", "u", s.id).events[0].content["parts"][0]["text"].endswith("w399999x")


OUT_OF_RANGE = {"sqlite": ["a " * 2000 + "NOT", "NEAR(a b, -5)"],
                "postgres": ["a <1000000> b", "a <16385> b", "a <99999999999999999999> b", "!" * 4000 + "a",
                             "a <-1> b"]}


@pytest.mark.parametrize("index", range(5))
def test_raw_queries_the_server_refuses_at_run_time_are_value_errors(svc, backend, index):
    """A raw query that passes a syntax check but that the database refuses when it runs
    (a phrase distance beyond PostgreSQL's 16384, a query too deep for its stack) is the
    caller's ValueError naming the reason, never a DatabaseError, on every path to the
    search statement (also one that skips the check)."""
    queries = OUT_OF_RANGE[backend]
    if index >= len(queries):
        pytest.skip("fewer cases on this backend")
    s = svc.create_session("app", "u")
    say(svc, s, "a b refund")
    with pytest.raises(ValueError, match="not a valid") as info:
        svc.search_events(queries[index], raw=True)
    assert not isinstance(info.value, DatabaseError)
    if backend == "postgres" and not queries[index].startswith("!"):  # the search statement, without the check
        with pytest.raises(ValueError, match="not a valid PostgreSQL tsquery") as info:
            svc.store.search_events(queries[index], True, None, None, None, None, 10, None)
        assert not isinstance(info.value, DatabaseError)
    assert svc.get_session("app", "u", s.id) is not None  # the service still works


@pytest.mark.parametrize("plan", ["chosen", "user_set", "rank_all"])
def test_one_users_search_is_the_whole_search_filtered(svc, backend, plan, monkeypatch):
    """A search for one user (SQLite: ranked only among the user's events, by the
    same bm25 of the whole index, or every match ranked; ``plan`` forces either) gives
    exactly the hits, ranks and order of the unfiltered search with the other users'
    hits left out, page by page."""
    from adk_lite import sqlite_search
    if plan != "chosen":
        if backend != "sqlite":
            pytest.skip("a plan of SQLite's")
        monkeypatch.setattr(sqlite_search, "USER_SET_CAP", 10**9 if plan == "user_set" else 0)
        monkeypatch.setattr(sqlite_search, "MATCHES_PER_USER_ROW", 0)
    rng = random.Random(5)
    words = "refund order parcel late café the a to sku123 order-7".split()
    sessions = [svc.create_session(app, user, session_id=f"s{k}") for app in ("a1", "a2")
                for user in ("alice", "bob", "carol") for k in range(2)]
    for _ in range(12):  # interleaved, so one user's rows are scattered through the index
        for s in sessions:
            say(svc, s, " ".join(rng.choice(words) for _ in range(rng.randrange(1, 9))), author=rng.choice(["u", "m"]))
    queries = [("order", False), ("refund late", False), ("the", False), ("cafe order-7", False)]
    if backend == "sqlite":
        queries += [('"order 7"', True), ("ref*", True), ("refund OR parcel", True), ("NEAR(order late, 3)", True),
                    ("order NOT refund", True)]

    def every_page(query, raw, size, **where):
        hits, after = [], None
        while True:
            page = svc.search_events(query, raw=raw, limit=size, after=after, **where)
            hits += [(h.app_name, h.user_id, h.session_id, h.event_id, h.rank) for h in page]
            if page.next_cursor is None:
                return hits
            after = page.next_cursor

    for query, raw in queries:
        everything = every_page(query, raw, 1000)
        assert everything
        for app in ("a1", "a2"):
            for user in ("alice", "bob", "carol"):
                mine = [h for h in everything if h[:2] == (app, user)]
                assert every_page(query, raw, 4, app_name=app, user_id=user) == mine, (query, app, user)
                assert every_page(query, raw, 3, app_name=app, user_id=user, session_id="s1") == [
                    h for h in mine if h[2] == "s1"]
