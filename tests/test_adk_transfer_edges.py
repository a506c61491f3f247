"""import-adk / export-adk at their edges: the initial state and revision of imported
sessions, the adk_lite database itself in any spelling (never written with ADK's
tables, never read as ADK's), and forged ADK files (named errors, nothing written,
never unpickled, no integer silently made a float)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pickle
import sqlite3
import urllib.parse

import pytest

pytest.importorskip("google.adk")
pytest.importorskip("aiosqlite")
pytest.importorskip("sqlalchemy")

from google.adk.events import Event, EventActions  # noqa: E402
from google.adk.sessions.database_session_service import DatabaseSessionService as AdkDatabase  # noqa: E402
from google.adk.sessions.sqlite_session_service import SqliteSessionService  # noqa: E402
from google.genai import types  # noqa: E402

from adk_lite import DatabaseSessionService  # noqa: E402
from adk_lite import adk as lite  # noqa: E402
from adk_lite.cli import main  # noqa: E402

pytestmark = pytest.mark.adk
T0 = 1_700_000_000.0


def sha(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def text(i: int) -> types.Content:
    return types.Content(role="user", parts=[types.Part(text=f"message {i}")])


async def write_adk(svc) -> None:
    """Session "plain": create-time keys and events that set no session key (its initial
    state is known exactly); session "set": an event sets a session key (unknown)."""
    plain = await svc.create_session(app_name="app", user_id="u", session_id="plain",
                                     state={"greeting": "olá", "n": 0, "user:lang": "pt", "app:v": 1})
    for i in range(3):
        delta = {"user:seen": i, "app:total": i, "temp:x": i} if i == 1 else {}
        await svc.append_event(plain, Event(invocation_id=f"inv-{i}", author="user", timestamp=T0 + i,
                                            content=text(i), actions=EventActions(state_delta=delta)))
    changed = await svc.create_session(app_name="app", user_id="u", session_id="set", state={"n": 0, "k": "v"})
    for i in range(3):
        await svc.append_event(changed, Event(invocation_id=f"inv-{i}", author="user", timestamp=T0 + i,
                                              content=text(i), actions=EventActions(state_delta={"n": i + 1})))
    await svc.close()


@pytest.fixture
def adk_file(tmp_path):
    path = str(tmp_path / "session.db")
    asyncio.run(write_adk(SqliteSessionService(path)))
    return path


@pytest.fixture
def lite_db(adk_file, tmp_path):
    path = str(tmp_path / "lite.sqlite3")
    lite.import_from_adk(adk_file, path)
    return path


# -- initial state and revision --------------------------------------------------------

def test_import_keeps_the_initial_state_where_it_is_exact_and_counts_revisions(lite_db):
    with DatabaseSessionService(lite_db) as svc:
        plain = svc.get_session("app", "u", "plain")
        assert plain.revision == 3 and svc.get_session("app", "u", "set").revision == 3
        assert svc.store.read_whole_session("app", "u", "plain")[1] == '{"greeting":"olá","n":0}'
        fork = svc.fork_session("app", "u", "plain", new_session_id="f", before_invocation_id="inv-1")
        assert fork.state == {"greeting": "olá", "n": 0, "user:lang": "pt", "user:seen": 1, "app:v": 1,
                              "app:total": 1}
        assert svc.get_lineage("app", "u", "f")["state_exact"] is True
        # an event set "n": its value at creation is recorded nowhere, so the initial state is unknown
        assert svc.store.read_whole_session("app", "u", "set")[1] is None
        svc.fork_session("app", "u", "set", new_session_id="g", before_invocation_id="inv-1")
        assert svc.get_lineage("app", "u", "g")["state_exact"] is False


def test_initial_state_rule():
    def ev(delta):
        return Event(author="user", actions=EventActions(state_delta=delta))
    assert lite.transfer.initial_state({"a": 1, "user:b": 2}, [ev({"user:b": 2, "app:c": 1}), ev({})]) == {"a": 1}
    assert lite.transfer.initial_state({"a": 1}, [ev({"a": 1})]) is None
    assert lite.transfer.initial_state({"a": None}, []) == {"a": None}


# -- the database itself, in any spelling ----------------------------------------------

def spellings(db: str, tmp_path) -> dict[str, str]:
    link, hard = str(tmp_path / "link.db"), str(tmp_path / "hard.db")
    os.symlink(db, link)
    os.link(db, hard)
    quoted = urllib.parse.quote(db)
    return {
        "path": db, "relative": os.path.relpath(db), "dot": "./" + os.path.relpath(db),
        "file: URI": "file:" + db, "file:/// URI": "file://" + db, "file://localhost": "file://localhost" + db,
        "file: percent-encoded": "file:" + quoted.replace("lite", "%6Cite"),
        "file: URI with query": f"file:{db}?mode=rwc",
        "sqlite:////abs": "sqlite:///" + db, "sqlite:///relative": "sqlite:///" + os.path.relpath(db),
        "sqlite+aiosqlite:////abs": "sqlite+aiosqlite:///" + db,
        "sqlite+aiosqlite file: uri=true": f"sqlite+aiosqlite:///file:{db}?uri=true",
        "sqlite+aiosqlite percent-encoded": "sqlite+aiosqlite:///" + quoted.replace("lite", "%6Cite"),
        "symlink": link, "hard link": hard, "-wal": db + "-wal", "-shm": db + "-shm", "-journal": db + "-journal",
    }


def adk_tables(path: str) -> set:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    return names


def test_export_adk_never_writes_into_the_database_itself(lite_db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before, tables = sha(lite_db), adk_tables(lite_db)
    with DatabaseSessionService(lite_db, read_only=True) as svc:
        for name, target in spellings(lite_db, tmp_path).items():
            for source in (lite_db, svc):  # a path, and an open service's own file
                with pytest.raises(ValueError, match="is the adk_lite database"):
                    lite.export_to_adk(source, target)
            assert sha(lite_db) == before and adk_tables(lite_db) == tables, name
            assert not os.path.exists(lite_db + "-journal"), name
            assert main(["export-adk", lite_db, target]) == 2, name
    assert sha(lite_db) == before and adk_tables(lite_db) == tables
    assert "sessions" not in tables and not os.path.exists(tmp_path / "file:")


def test_import_adk_never_reads_the_database_itself(lite_db, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = sha(lite_db)
    with DatabaseSessionService(lite_db) as svc:
        for name, source in spellings(lite_db, tmp_path).items():
            if name in ("-wal", "-shm", "-journal", "file: URI with query"):
                continue  # not files a source names
            for target in (lite_db, svc, os.path.relpath(lite_db)):
                with pytest.raises(ValueError, match="is the adk_lite database"):
                    lite.import_from_adk(source, target)
            assert main(["import-adk", source, lite_db]) == 2, name
            assert "is the" in capsys.readouterr().err
    assert sha(lite_db) == before


def test_other_files_in_those_spellings_still_work(lite_db, tmp_path):
    out = str(tmp_path / "out.db")
    report = lite.export_to_adk(lite_db, f"sqlite+aiosqlite:///file:{out}?uri=true")
    assert report["sessions"] == 2
    again = lite.import_from_adk("file:" + out, str(tmp_path / "back.sqlite3"))
    assert again["sessions"] == 2 and again["refused"] == [] and again["conflicts"] == []


# -- forged ADK files --------------------------------------------------------------------

class Boom:
    """Unpickling this creates a file: a source's cell must never be unpickled."""

    def __reduce__(self):
        return (os.system, ('touch "$BOOM_FILE"',))


def forge(path: str, sql: str, *params) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(sql, params)
    conn.close()


BIG = "123456789012345678901234567890"
FORGED = {
    "session state truncated": ("UPDATE sessions SET state = '{\"k\":' WHERE id = 'plain'", (),
                                ["table sessions", "session_id='plain'", "column state", "not valid JSON"]),
    "session state 'nul'": ("UPDATE sessions SET state = 'nul' WHERE id = 'set'", (),
                            ["table sessions", "session_id='set'", "column state"]),
    "session state a list": ("UPDATE sessions SET state = '[1]' WHERE id = 'set'", (),
                             ["table sessions", "column state", "not an object"]),
    "session state big int": ("UPDATE sessions SET state = ? WHERE id = 'set'", ('{"k": ' + BIG + "}",),
                              ["table sessions", "session_id='set'", "column state", "64-bit"]),
    "session state a number": ("UPDATE sessions SET state = 5 WHERE id = 'set'", (), ["column state", "int"]),
    "session state pickled": ("UPDATE sessions SET state = ? WHERE id = 'set'", (pickle.dumps(Boom()),),
                              ["table sessions", "column state", "never unpickled"]),
    "event custom_metadata big int": (
        "UPDATE events SET event_data = json_set(event_data, '$.custom_metadata', json(?)) "
        "WHERE session_id = 'plain' AND invocation_id = 'inv-2'", ('{"n": ' + BIG + "}",),
        ["table events", "session_id='plain'", "column event_data", "64-bit"]),
    "event state_delta big int": (
        "UPDATE events SET event_data = json_set(event_data, '$.actions.state_delta', json(?)) "
        "WHERE session_id = 'set' AND invocation_id = 'inv-0'", ('{"n": -' + BIG + "}",),
        ["table events", "column event_data", "64-bit"]),
    "event truncated": ("UPDATE events SET event_data = substr(event_data, 1, 20) WHERE session_id = 'set'", (),
                        ["table events", "session_id='set'", "column event_data", "not valid JSON"]),
    "event wrong type": ("UPDATE events SET event_data = json_set(event_data, '$.author', 5) "
                         "WHERE session_id = 'plain'", (), ["table events", "column event_data", "not an ADK Event"]),
    "event pickled": ("UPDATE events SET event_data = ? WHERE session_id = 'plain'", (pickle.dumps(Boom()),),
                      ["table events", "column event_data", "never unpickled"]),
    "app state truncated": ("UPDATE app_states SET state = '{\"v\": [1, ' WHERE app_name = 'app'", (),
                            ["table app_states", "app_name='app'", "column state"]),
    "app state big int": ("UPDATE app_states SET state = ? WHERE app_name = 'app'", ('{"v": ' + BIG + "}",),
                          ["table app_states", "column state", "64-bit"]),
    "user state pickled": ("UPDATE user_states SET state = ? WHERE user_id = 'u'", (pickle.dumps(Boom()),),
                           ["table user_states", "user_id='u'", "column state", "never unpickled"]),
    "user state big float-looking int": ("UPDATE user_states SET state = ? WHERE user_id = 'u'",
                                         ('{"lang": 18446744073709551616}',), ["table user_states", "64-bit"]),
}


@pytest.mark.parametrize("name", list(FORGED))
def test_a_forged_adk_file_is_refused_by_table_row_and_column(name, adk_file, tmp_path, monkeypatch, capsys):
    boom = str(tmp_path / "unpickled")
    monkeypatch.setenv("BOOM_FILE", boom)
    sql, params, words = FORGED[name]
    forge(adk_file, sql, *params)
    before = sha(adk_file)
    target = str(tmp_path / "lite.sqlite3")
    with pytest.raises(ValueError) as caught:
        lite.import_from_adk(adk_file, target)
    message = str(caught.value)
    assert adk_file in message and all(w in message for w in words), message
    assert not os.path.exists(target)  # refused before the target is opened
    assert main(["import-adk", adk_file, target, "--create"]) == 2  # nor created
    err = capsys.readouterr().err
    assert not os.path.exists(target) and all(w in err for w in words), err
    with DatabaseSessionService(target) as svc:
        svc.create_session("app", "u", session_id="kept")
    assert main(["import-adk", adk_file, target]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(w in err for w in words) and "Traceback" not in err, err
    with DatabaseSessionService(target, read_only=True) as svc:
        assert [s.id for s in svc.list_sessions()] == ["kept"] and svc.get_user_state("app", "u") == {}
    assert sha(adk_file) == before and not os.path.exists(boom)


def test_a_forged_database_session_service_file_is_refused_by_name(tmp_path):
    path = str(tmp_path / "database.db")
    asyncio.run(write_adk(AdkDatabase("sqlite+aiosqlite:///" + path)))
    forge(path, "UPDATE sessions SET state = ? WHERE id = 'set'", '{"k": ' + BIG + "}")
    with pytest.raises(ValueError, match=r"table sessions, app_name='app', user_id='u', session_id='set', "
                                         r"column state.*64-bit"):
        lite.import_from_adk("sqlite+aiosqlite:///" + path, str(tmp_path / "t.sqlite3"))
    assert not os.path.exists(tmp_path / "t.sqlite3")


def test_an_error_of_adks_own_reader_names_the_session(adk_file, tmp_path, monkeypatch):
    """A cell that passes the checks but that ADK's reader still fails on: the error names
    the source and the session it was reading."""
    async def broken(self, **kwargs):
        raise RuntimeError("boom inside ADK")
    monkeypatch.setattr(SqliteSessionService, "get_session", broken)
    with pytest.raises(ValueError, match=r"session.db: reading tables sessions and events, app_name='app', "
                                         r"user_id='u', session_id='plain' failed: boom inside ADK"):
        lite.import_from_adk(adk_file, str(tmp_path / "t.sqlite3"))


def test_64_bit_integers_at_the_limits_move_exactly(tmp_path):
    """Control: the largest and smallest 64-bit ints, in state and custom metadata, come
    through import-adk and export-adk exactly (never as floats)."""
    path, out = str(tmp_path / "session.db"), str(tmp_path / "out.db")
    values = {"max": 2**63 - 1, "min": -(2**63), "big": 2**53 + 1}

    async def write():
        svc = SqliteSessionService(path)
        session = await svc.create_session(app_name="app", user_id="u", session_id="s", state=dict(values))
        await svc.append_event(session, Event(invocation_id="i", author="user", timestamp=T0,
                                              custom_metadata=dict(values)))
        await svc.close()
    asyncio.run(write())
    db = str(tmp_path / "lite.sqlite3")
    assert lite.import_from_adk(path, db)["refused"] == []
    lite.export_to_adk(db, out)

    async def read(svc):
        session = await svc.get_session(app_name="app", user_id="u", session_id="s")
        await svc.close()
        return session.state, session.events[0].custom_metadata
    for svc in (lite.DatabaseSessionService(db), SqliteSessionService(out)):
        state, metadata = asyncio.run(read(svc))
        assert state == values == metadata
        assert all(type(v) is int for v in [*state.values(), *metadata.values()])


def test_export_adk_never_writes_into_the_same_postgresql_database():
    from adk_lite.adk import sources
    from adk_lite.target import parse_postgres
    from tests.conftest import pg_databases

    dbs = pg_databases()  # skips without a server
    url, other = dbs.fresh(0), dbs.fresh(1)
    asyncpg = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    with DatabaseSessionService(url) as svc:
        svc.create_session("app", "u", session_id="s")
        for target in (asyncpg, asyncpg.replace("@127.0.0.1:", "@localhost:"),
                       url.replace("postgresql://", "postgres://", 1)):
            for source in (svc, url):
                with pytest.raises(ValueError, match="is the adk_lite database") as caught:
                    lite.export_to_adk(source, target)
                password = parse_postgres(url).conninfo.get("password")
                assert not password or password not in str(caught.value)
        tables = svc.store.read(lambda conn: {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()})
        assert "sessions" not in tables and "adk_internal_metadata" not in tables
        sources.refuse_same_server(other.replace("postgresql://", "postgresql+asyncpg://", 1), svc, "not raised")
