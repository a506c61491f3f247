"""Moving in and out: import-adk / export-adk and adk_lite.adk.import_from_adk /
export_to_adk, on files ADK's own services write here."""

from __future__ import annotations

from asyncio import run
import hashlib
import importlib.util
import os
import sqlite3
import subprocess
import sys

import orjson
import pytest

pytest.importorskip("google.adk")
pytest.importorskip("aiosqlite")
pytest.importorskip("sqlalchemy")

from google.adk.events import Event, EventActions  # noqa: E402
from google.adk.sessions.database_session_service import DatabaseSessionService as AdkDatabase  # noqa: E402
from google.adk.sessions.sqlite_session_service import SqliteSessionService  # noqa: E402
from google.genai import types  # noqa: E402

from adk_lite import adk as lite  # noqa: E402
from adk_lite.cli import main  # noqa: E402

pytestmark = pytest.mark.adk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T0 = 1_700_000_000.0
BIG = 2000
# (app, user, session id, number of events)
LAYOUT = [("shop", "alice", "empty", 0), ("shop", "alice", "one", 1), ("shop", "bob", "big", BIG),
          ("shop", "bob", "zoë-日本", 7), ("notes", "alice", "n1", 3)]


def sha(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def event(i: int, author: str = "agent") -> Event:
    """Text, a function call, a function response in turn; every scope of state."""
    kind = i % 3
    if kind == 0:
        part = types.Part(text=f"message {i}: héllo wörld, こんにちは 🌍")
    elif kind == 1:
        part = types.Part(function_call=types.FunctionCall(id=f"call-{i}", name="lookup", args={"q": f"ç{i}"}))
    else:
        part = types.Part(function_response=types.FunctionResponse(id=f"call-{i - 1}", name="lookup",
                                                                   response={"result": [i, "ünï"]}))
    delta = {"count": i, "user:seen": i, "app:total": i, "temp:scratch": i} if i % 5 == 0 else {}
    return Event(invocation_id=f"inv-{i // 4}", author=author if kind else "user", timestamp=T0 + i,
                 content=types.Content(role="model" if kind else "user", parts=[part]),
                 actions=EventActions(state_delta=delta))


async def fill(svc) -> None:
    """Write LAYOUT through an ADK service, then close it."""
    for app, user, sid, n in LAYOUT:
        session = await svc.create_session(app_name=app, user_id=user, session_id=sid,
                                           state={"greeting": "olá", "user:lang": "pt-🇧🇷", "app:version": 3})
        for i in range(n):
            await svc.append_event(session, event(i))
    await svc.close()


@pytest.fixture(scope="module")
def adk_files(tmp_path_factory):
    """One file of ADK's SqliteSessionService and one of its DatabaseSessionService."""
    folder = tmp_path_factory.mktemp("adk")
    sqlite_file, database_file = str(folder / "session.db"), str(folder / "database.db")
    run(fill(SqliteSessionService(sqlite_file)))
    run(fill(AdkDatabase("sqlite+aiosqlite:///" + database_file)))
    return {"sqlite": sqlite_file, "database": database_file}


def adk_reader(kind: str, path: str):
    return SqliteSessionService(path) if kind == "sqlite" else AdkDatabase("sqlite+aiosqlite:///" + path)


def source_arg(kind: str, path: str) -> str:
    return path if kind == "sqlite" else "sqlite+aiosqlite:///" + path


async def sessions_of(svc) -> dict:
    """Every session of LAYOUT as model_dump (events and merged state) and each
    user's state, read through ``svc``."""
    out = {}
    for app, user, sid, _n in LAYOUT:
        session = await svc.get_session(app_name=app, user_id=user, session_id=sid)
        out[app, user, sid] = session.model_dump()
        out[app, user] = await svc.get_user_state(app_name=app, user_id=user)
    await svc.close()
    return out


@pytest.mark.parametrize("kind", ["sqlite", "database"])
def test_import_brings_everything_and_leaves_the_source_unchanged(adk_files, kind, tmp_path):
    source = adk_files[kind]
    before = sha(source)
    target = str(tmp_path / "lite.sqlite3")
    report = lite.import_from_adk(source_arg(kind, source), target)
    assert sha(source) == before
    assert not os.path.exists(source + "-journal") and not os.path.exists(source + "-wal")
    assert {k: report[k] for k in ("apps", "users", "sessions", "events", "skipped", "replaced")} == \
        {"apps": 2, "users": 3, "sessions": 5, "events": sum(n for *_k, n in LAYOUT), "skipped": 0, "replaced": 0}
    assert report["conflicts"] == [] and report["refused"] == [] and report["seconds"] >= 0

    theirs = run(sessions_of(adk_reader(kind, source)))
    ours = run(sessions_of(lite.DatabaseSessionService(target)))
    assert ours == theirs  # events (ids, invocation ids, authors, times, bodies), merged state, update times
    big = ours["shop", "bob", "big"]
    assert len(big["events"]) == BIG and big["state"]["count"] == BIG - 5 and "temp:scratch" not in big["state"]
    assert ours["shop", "bob", "zoë-日本"]["events"][1]["content"]["parts"][0]["function_call"]["name"] == "lookup"
    assert ours["shop", "alice"] == {"lang": "pt-🇧🇷", "seen": 0}

    # a re-run is a no-op: every session skipped, nothing written
    again = lite.import_from_adk(source_arg(kind, source), target)
    assert (again["sessions"], again["events"], again["skipped"]) == (0, 0, 5)
    assert sha(source) == before


def test_a_rerun_completes_what_is_missing_and_reports_differences(adk_files, tmp_path):
    source, target = adk_files["sqlite"], str(tmp_path / "lite.sqlite3")
    svc = lite.DatabaseSessionService(target)

    async def prepare():
        # one session already there whole, one with other content
        theirs = await SqliteSessionService(source).get_session(app_name="shop", user_id="alice", session_id="one")
        mine = await svc.create_session(app_name="notes", user_id="alice", session_id="n1")
        await svc.append_event(mine, Event(invocation_id="x", author="user", timestamp=T0))
        return theirs
    theirs = run(prepare())
    run(svc.close())
    lite.import_from_adk(source, target)  # imports the rest
    report = lite.import_from_adk(source, target)
    assert report["conflicts"] == [{"app_name": "notes", "user_id": "alice", "session_id": "n1"}]
    assert report["skipped"] == 4 and report["sessions"] == 0
    ours = run(sessions_of(lite.DatabaseSessionService(target)))
    assert ours["shop", "alice", "one"]["events"] == theirs.model_dump()["events"]
    assert len(ours["notes", "alice", "n1"]["events"]) == 1  # left alone

    replaced = lite.import_from_adk(source, target, replace=True)
    assert (replaced["replaced"], replaced["sessions"], replaced["conflicts"]) == (1, 1, [])
    assert run(sessions_of(lite.DatabaseSessionService(target))) == run(sessions_of(SqliteSessionService(source)))


def test_pickled_and_foreign_sources_are_refused_unchanged(tmp_path):
    old = str(tmp_path / "old.db")
    with sqlite3.connect(old) as conn:
        conn.executescript("CREATE TABLE sessions (app_name, user_id, id, state, create_time, update_time);"
                           "CREATE TABLE events (id, app_name, user_id, session_id, actions BLOB);"
                           "CREATE TABLE app_states (app_name, state); CREATE TABLE user_states (app_name, user_id, state);")
    conn.close()
    before = sha(old)
    with pytest.raises(ValueError, match="adk migrate session"):
        lite.import_from_adk(old, str(tmp_path / "t.sqlite3"))
    assert sha(old) == before
    foreign = str(tmp_path / "foreign.db")
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(ValueError, match="not a database of ADK"):
        lite.import_from_adk(foreign, str(tmp_path / "t.sqlite3"))
    with pytest.raises(ValueError, match="does not exist"):
        lite.import_from_adk(str(tmp_path / "missing.db"), str(tmp_path / "t.sqlite3"))
    with pytest.raises(ValueError, match="only SQLite sources"):
        lite.import_from_adk("postgresql+asyncpg://h/db", str(tmp_path / "t.sqlite3"))
    assert not os.path.exists(tmp_path / "missing.db")


@pytest.mark.parametrize("kind", ["sqlite", "database"])
def test_export_writes_what_adk_reads_back(adk_files, kind, tmp_path):
    lite_db = str(tmp_path / "lite.sqlite3")
    lite.import_from_adk(adk_files["sqlite"], lite_db)
    before = sha(lite_db)
    path = str(tmp_path / "out.db")
    target = source_arg(kind, path)
    report = lite.export_to_adk(lite_db, target)
    assert (report["sessions"], report["events"], report["apps"], report["users"]) == \
        (5, sum(n for *_k, n in LAYOUT), 2, 3)
    assert sha(lite_db) == before

    ours = run(sessions_of(lite.DatabaseSessionService(lite_db)))
    theirs = run(sessions_of(adk_reader(kind, path)))
    for key, session in ours.items():
        if len(key) == 3 and not session["events"]:
            # an event-less session: ADK's create_session stamps its own time
            session.pop("last_update_time"), theirs[key].pop("last_update_time")
    assert theirs == ours

    again = lite.export_to_adk(lite_db, target)
    assert (again["sessions"], again["events"], again["skipped"]) == (0, 0, 5)


def test_an_interrupted_export_is_completed(adk_files, tmp_path):
    lite_db, out = str(tmp_path / "lite.sqlite3"), str(tmp_path / "out.db")
    lite.import_from_adk(adk_files["sqlite"], lite_db)

    async def partial():  # what a killed export leaves: a session with a prefix of its events
        src = lite.DatabaseSessionService(lite_db)
        big = await src.get_session(app_name="shop", user_id="bob", session_id="big")
        await src.close()
        dst = SqliteSessionService(out)
        session = await dst.create_session(app_name="shop", user_id="bob", session_id="big")
        for e in big.events[:10]:
            await dst.append_event(session, e)
        await dst.close()
    run(partial())
    report = lite.export_to_adk(lite_db, out)
    assert report["sessions"] == 5 and report["events"] == sum(n for *_k, n in LAYOUT) - 10
    ours = run(sessions_of(lite.DatabaseSessionService(lite_db)))
    theirs = run(sessions_of(SqliteSessionService(out)))
    assert theirs["shop", "bob", "big"]["events"] == ours["shop", "bob", "big"]["events"]


def load_example():
    spec = importlib.util.spec_from_file_location("adk_agent_example", os.path.join(ROOT, "examples", "adk_agent.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_runner_conversation_moves_in_and_continues(tmp_path, capsys):
    example = load_example()
    adk_file, lite_db = str(tmp_path / "session.db"), str(tmp_path / "lite.sqlite3")

    async def first():
        adk = SqliteSessionService(adk_file)
        await adk.create_session(app_name=example.APP, user_id=example.USER, session_id=example.SESSION)
        await example.run_turns(adk, example.FIRST_TURNS)
    run(first())
    report = lite.import_from_adk(adk_file, lite_db)
    assert report["sessions"] == 1 and report["events"] == 8

    svc = lite.DatabaseSessionService(lite_db)
    run(example.run_turns(svc, example.SECOND_TURNS))
    session = run(svc.get_session(app_name=example.APP, user_id=example.USER, session_id=example.SESSION))
    assert len(session.events) == 16
    assert session.state == {"app:facts_stored": 3, "last_key": "food", "user:city": "Lisbon",
                             "user:colour": "blue", "user:food": "pizza"}
    last = session.events[-1].content.parts[0].text
    assert "You told me: city = Lisbon, colour = blue, food = pizza. I have seen 4 of your messages" in last
    run(svc.close())


def cli(*argv):
    return main([*argv, "--json"])


def test_cli_import_and_export(adk_files, tmp_path, capsys):
    target = str(tmp_path / "lite.sqlite3")
    assert cli("import-adk", adk_files["sqlite"], target) == 2
    assert "does not exist" in capsys.readouterr().err and not os.path.exists(target)
    assert cli("import-adk", adk_files["sqlite"], target, "--create") == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert set(summary) >= {"apps", "users", "sessions", "events", "skipped", "replaced", "seconds"}
    assert summary["sessions"] == 5
    assert cli("import-adk", str(tmp_path / "old.db"), target) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "does not exist" in err

    assert cli("export-adk", target, target) == 2
    assert "side files" in capsys.readouterr().err
    out = str(tmp_path / "out.db")
    assert cli("export-adk", target, out) == 0
    assert orjson.loads(capsys.readouterr().out)["sessions"] == 5


def test_adk_lite_and_its_cli_do_not_import_google_adk_until_a_command_needs_it(adk_files, tmp_path):
    code = "import sys, adk_lite, adk_lite.cli; assert 'google.adk' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    # a fresh process, where the CLI imports adk_lite.adk.transfer before adk_lite.adk
    target = str(tmp_path / "lite.sqlite3")
    proc = subprocess.run([sys.executable, "-m", "adk_lite", "import-adk", adk_files["sqlite"], target, "--create",
                           "--json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(proc.stdout)["events"] == sum(n for *_k, n in LAYOUT)
