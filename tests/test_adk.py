"""adk_lite.adk behaviour beyond ADK's in-memory contract: stale writers, concurrency,
persistence, key deletion, non-JSON state, constructor forms, ADK's service registry,
and the import boundary."""

from __future__ import annotations

import asyncio
from asyncio import run
import datetime
import logging
import os
import subprocess
import sys
import textwrap

import pytest

from adk_lite.errors import DatabaseOpenError

pytest.importorskip("google.adk")

import google.adk.errors as adk_errors  # noqa: E402
from google.adk.events import Event, EventActions  # noqa: E402
from google.adk.sessions import InMemorySessionService, Session  # noqa: E402
from google.adk.sessions.base_session_service import GetSessionConfig  # noqa: E402
from google.genai import types  # noqa: E402

import adk_lite  # noqa: E402
from adk_lite.adk import DatabaseSessionService, ListSessionsPage, register  # noqa: E402
from tests.workers import adk_loader  # noqa: E402

pytestmark = pytest.mark.adk

APP, USER = "app", "alice"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def event(text="x", **delta):
    return Event(author="user", invocation_id="inv", content=types.Content(role="user", parts=[types.Part(text=text)]),
                 actions=EventActions(state_delta=delta))


@pytest.fixture
def svc(tmp_path):
    """An adapter on a new file (the core's conftest ``svc`` is the sync service)."""
    service = DatabaseSessionService(str(tmp_path / "sessions.db"))
    yield service
    run(service.close())


# -- stale writers and concurrency (InMemorySessionService has no stale detection) --
def test_a_stale_copy_cannot_append(svc):
    """adk_lite differs from InMemory on purpose: InMemory accepts the append from B
    and silently interleaves; adk_lite refuses it with ADK's StaleSessionError."""
    async def scenario():
        await svc.create_session(app_name=APP, user_id=USER, session_id="s")
        a = await svc.get_session(app_name=APP, user_id=USER, session_id="s")
        b = await svc.get_session(app_name=APP, user_id=USER, session_id="s")
        await svc.append_event(a, event("from a", k="a"))
        late = event("from b", k="b", **{"temp:t": 1})
        with pytest.raises(adk_errors.StaleSessionError) as info:
            await svc.append_event(b, late)
        assert isinstance(info.value, adk_lite.StaleSessionError)
        assert b.events == [] and b.state == {} and b._storage_update_marker.startswith("0:")
        assert late.actions.state_delta == {"k": "b", "temp:t": 1}  # a failed append leaves the event as it was
        got = await svc.get_session(app_name=APP, user_id=USER, session_id="s")
        assert [e.content.parts[0].text for e in got.events] == ["from a"] and got.state == {"k": "a"}
        # the reference accepts the same sequence
        mem = InMemorySessionService()
        await mem.create_session(app_name=APP, user_id=USER, session_id="s")
        ma = await mem.get_session(app_name=APP, user_id=USER, session_id="s")
        mb = await mem.get_session(app_name=APP, user_id=USER, session_id="s")
        await mem.append_event(ma, event("from a"))
        await mem.append_event(mb, event("from b"))
    run(scenario())


def test_two_copies_appending_concurrently_exactly_one_wins(svc):
    async def scenario():
        await svc.create_session(app_name=APP, user_id=USER, session_id="race")
        for round_ in range(5):
            copies = [await svc.get_session(app_name=APP, user_id=USER, session_id="race") for _ in range(2)]
            results = await asyncio.gather(*(svc.append_event(c, event(f"{round_}-{i}")) for i, c in enumerate(copies)),
                                           return_exceptions=True)
            assert sum(isinstance(r, Event) for r in results) == 1
            assert sum(isinstance(r, adk_errors.StaleSessionError) for r in results) == 1
        assert await svc.get_event_count(app_name=APP, user_id=USER, session_id="race") == 5
    run(scenario())


def test_tasks_sharing_one_session_never_see_a_false_stale_error(svc):
    async def scenario():
        s = await svc.create_session(app_name=APP, user_id=USER, session_id="shared")
        await asyncio.gather(*(svc.append_event(s, event(str(i), **{f"k{i}": i})) for i in range(24)))
        assert s._storage_update_marker.startswith("24:")
        got = await svc.get_session(app_name=APP, user_id=USER, session_id="shared")
        assert len(got.events) == 24 and got.state == s.state == {f"k{i}": i for i in range(24)}
        # the lock may let the tasks in out of creation order; a reload sorts by timestamp
        assert sorted(got.events, key=lambda e: e.id) == sorted(s.events, key=lambda e: e.id)
    run(scenario())


def test_a_session_not_read_from_the_store_is_refused(svc):
    """A Session built by hand (or read from another service) has no marker of ours:
    it is never trusted, whatever its last_update_time; a missing session is still
    SessionNotFoundError."""
    async def scenario():
        s = await svc.create_session(app_name=APP, user_id=USER, session_id="m")
        for marker in (None, "1", "0", "²:0123456789abcdef", "0:0123456789ABCDEF", "x"):
            hand = Session(id="m", app_name=APP, user_id=USER, last_update_time=s.last_update_time + 100)
            hand._storage_update_marker = marker
            with pytest.raises(adk_errors.StaleSessionError, match="not read from this store"):
                await svc.append_event(hand, event("late"))
        assert await svc.get_event_count(app_name=APP, user_id=USER, session_id="m") == 0
        ghost = Session(id="ghost", app_name=APP, user_id=USER)
        with pytest.raises(adk_errors.session_not_found_error.SessionNotFoundError):
            await svc.append_event(ghost, event("boo"))
    run(scenario())


def test_an_old_copy_cannot_write_into_a_recreated_session(svc):
    async def scenario():
        old = await svc.create_session(app_name=APP, user_id=USER, session_id="again")
        await svc.delete_session(app_name=APP, user_id=USER, session_id="again")
        new = await svc.create_session(app_name=APP, user_id=USER, session_id="again")
        assert new._storage_update_marker != old._storage_update_marker
        with pytest.raises(adk_errors.StaleSessionError, match="deleted and created again"):
            await svc.append_event(old, event("from the old one"))
        await svc.append_event(new, event("from the new one"))
        got = await svc.get_session(app_name=APP, user_id=USER, session_id="again")
        assert [e.content.parts[0].text for e in got.events] == ["from the new one"]
    run(scenario())


def test_update_keys_deletes_and_makes_older_copies_stale(svc):
    async def scenario():
        s = await svc.create_session(app_name=APP, user_id=USER, session_id="u",
                                     state={"app:a": 1, "user:b": 2, "c": 3, "d": 4})
        await svc.update_keys(app_name=APP, user_id=USER, session_id="u",
                              delta={"app:a": None, "user:b": None, "c": None, "d": 5})
        got = await svc.get_session(app_name=APP, user_id=USER, session_id="u")
        assert got.state == {"d": 5}
        assert await svc.get_user_state(app_name=APP, user_id=USER) == {}
        assert await svc.get_app_state(app_name=APP) == {}
        assert got.events[-1].author == "system" and got.events[-1].custom_metadata == {"adk_lite": "update_keys"}
        with pytest.raises(adk_errors.StaleSessionError):
            await svc.append_event(s, event())
        await svc.append_event(got, event())
        with pytest.raises(adk_errors.session_not_found_error.SessionNotFoundError):
            await svc.update_keys(app_name=APP, user_id=USER, session_id="none", delta={"x": None})
    run(scenario())


def test_reappending_an_id_with_other_content_is_refused(svc):
    async def scenario():
        s = await svc.create_session(app_name=APP, user_id=USER)
        first = event("one")
        await svc.append_event(s, first)
        clash = event("two")
        clash.id = first.id
        with pytest.raises(adk_errors.already_exists_error.AlreadyExistsError):
            await svc.append_event(s, clash)
        assert len((await svc.get_session(app_name=APP, user_id=USER, session_id=s.id)).events) == 1
    run(scenario())


def test_out_of_order_timestamps_come_back_sorted(svc):
    """adk_lite orders by (timestamp, append order), as ADK's Sqlite and Database
    services do; InMemorySessionService keeps plain append order."""
    async def scenario():
        s = await svc.create_session(app_name=APP, user_id=USER)
        for text, ts in (("late", 30.0), ("early", 10.0), ("middle", 20.0)):
            e = event(text)
            e.timestamp = ts
            await svc.append_event(s, e)
        got = await svc.get_session(app_name=APP, user_id=USER, session_id=s.id)
        assert [e.content.parts[0].text for e in got.events] == ["early", "middle", "late"]
        assert got.last_update_time == 20.0  # the last append's timestamp, as ADK
    run(scenario())


# -- persistence --------------------------------------------------------------------
def test_a_new_service_on_the_same_file_sees_everything(tmp_path):
    db = str(tmp_path / "sessions.db")

    async def scenario():
        first = DatabaseSessionService(db)
        s = await first.create_session(app_name=APP, user_id=USER, session_id="p", state={"user:lang": "en"})
        await first.append_event(s, event("hello", **{"app:n": 1, "topic": "t"}))
        await first.close()
        second = DatabaseSessionService(f"sqlite+aiosqlite:///{db}")
        got = await second.get_session(app_name=APP, user_id=USER, session_id="p")
        assert got == s
        await second.append_event(got, event("again", topic="u"))
        assert await second.get_user_state(app_name=APP, user_id=USER) == {"lang": "en"}
        stats = await second.get_stats()
        assert stats["events"] == 2 and stats["sessions"] == 1
        assert set(await second.vacuum()) == {"bytes_before", "bytes_after"}
        await second.close()
    run(scenario())


# -- state values that are not JSON ---------------------------------------------------
def test_non_json_state_values_are_converted_as_adk_does(svc, caplog):
    """As ADK's SQL services (_session_util.make_json_safe_state): pydantic converts
    what it can (datetime -> ISO str, tuple -> list); other values are stringified
    with a warning. The live Session keeps the original objects, as in ADK."""
    async def scenario():
        when = datetime.datetime(2026, 1, 2, 3, 4, 5)
        s = await svc.create_session(app_name=APP, user_id=USER, session_id="j", state={"when": when, "pair": (1, 2)})
        assert s.state == {"when": "2026-01-02T03:04:05", "pair": [1, 2]}
        with caplog.at_level(logging.WARNING):
            await svc.append_event(s, event(fn=print, **{"user:obj": object}))
        assert "Failed to serialize" in caplog.text
        assert s.state["fn"] is print
        got = await svc.get_session(app_name=APP, user_id=USER, session_id="j")
        assert got.state["fn"] == "<built-in function print>" and isinstance(got.state["user:obj"], str)
    run(scenario())


@pytest.mark.parametrize("value, error", [(b"\xff\xfe", TypeError), (float("nan"), ValueError), (2**70, ValueError)])
def test_values_json_cannot_hold_are_refused_and_nothing_is_written(svc, value, error):
    async def scenario():
        s = await svc.create_session(app_name=APP, user_id=USER, session_id="bad")
        bad = event(v=value)
        with pytest.raises(error, match="v"):
            await svc.append_event(s, bad)
        with pytest.raises(error):
            await svc.create_session(app_name=APP, user_id=USER, session_id="bad2", state={"v": value})
        assert await svc.get_event_count(app_name=APP, user_id=USER, session_id="bad") == 0
        assert await svc.get_session(app_name=APP, user_id=USER, session_id="bad2") is None
        assert s.events == []
    run(scenario())


# -- constructor, pagination, extras -----------------------------------------------------
def test_constructor_forms(tmp_path, monkeypatch):
    async def scenario():
        for kwargs in ({"db": str(tmp_path / "a.db")}, {"db_url": f"sqlite:///{tmp_path}/b.db"},
                       {"uri": f"adklite:///{tmp_path}/c.db", "agents_dir": str(tmp_path)},
                       {"db": f"sqlite+aiosqlite:///{tmp_path}/d.db", "synchronous": "full", "busy_timeout": 1.5}):
            service = DatabaseSessionService(**kwargs)
            await service.create_session(app_name=APP, user_id=USER, session_id="s")
            await service.close()
        assert sorted(p.name for p in tmp_path.glob("*.db")) == ["a.db", "b.db", "c.db", "d.db"]
        monkeypatch.setenv("ADK_LITE_DB", str(tmp_path / "env.db"))
        service = DatabaseSessionService()
        assert service.path == str(tmp_path / "env.db")
        await service.close()
    run(scenario())
    with pytest.raises(ValueError, match="once"):
        DatabaseSessionService(str(tmp_path / "x.db"), uri=f"adklite:///{tmp_path}/x.db")
    with pytest.raises(DatabaseOpenError, match=r"postgresql://u:\*\*\*@127.0.0.1:1/db") as caught:
        DatabaseSessionService(db_url="postgresql://u:pw-secret@127.0.0.1:1/db")  # no server on port 1
    assert "pw-secret" not in str(caught.value)


def test_list_sessions_pages(svc):
    async def scenario():
        for i in range(5):
            await svc.create_session(app_name=APP, user_id=USER, session_id=f"s{i}")
        seen, cursor = [], None
        while True:
            page = await svc.list_sessions(app_name=APP, user_id=USER, limit=2, after=cursor)
            assert isinstance(page, ListSessionsPage) and len(page.sessions) <= 2
            seen += [s.id for s in page.sessions]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == [f"s{i}" for i in range(5)]
        assert (await svc.list_sessions(app_name=APP)).next_cursor is None
    run(scenario())


def test_bad_arguments_are_refused(svc):
    async def scenario():
        with pytest.raises(ValueError, match="session_id"):
            await svc.get_session(app_name=APP, user_id=USER, session_id="  ")
        with pytest.raises(TypeError, match="app_name"):
            await svc.create_session(app_name=None, user_id=USER)
        with pytest.raises(TypeError, match="config"):
            await svc.get_session(app_name=APP, user_id=USER, session_id="s", config={"num_recent_events": 1})
        s = await svc.create_session(app_name=APP, user_id=USER)
        with pytest.raises(TypeError, match="Event"):
            await svc.append_event(s, {"author": "user"})
    run(scenario())


def test_errors_are_both_adks_and_adk_lites():
    from adk_lite import adk
    for ours, theirs, core in (
            (adk.SessionNotFoundError, adk_errors.session_not_found_error.SessionNotFoundError,
             adk_lite.SessionNotFoundError),
            (adk.AlreadyExistsError, adk_errors.already_exists_error.AlreadyExistsError, adk_lite.AlreadyExistsError),
            (adk.StaleSessionError, adk_errors.StaleSessionError, adk_lite.StaleSessionError)):
        assert issubclass(ours, theirs) and issubclass(ours, core)


# -- adk web / api_server: services.yaml and services.py ---------------------------------
_CLI_LOAD = textwrap.dedent("""
    async def use(svc):
        return (await svc.create_session(app_name="a", user_id="u", session_id="s")).id
""")


def _adk_cli_session(tmp_path, how: str, scheme: str, uri: str) -> list[str]:
    """Register adk_lite for ``scheme`` in ``agents/<how>``, then open ``uri`` as ADK's
    command line does in a new process; its printed class, path and session id."""
    return adk_loader(tmp_path, how, "session", _CLI_LOAD, uri, scheme)


@pytest.mark.parametrize("how", ["services.yaml", "services.py"])
def test_adk_cli_loads_the_service(tmp_path, how):
    target = tmp_path / "data" / "sessions.db"
    printed = _adk_cli_session(tmp_path, how, "adklite", f"adklite:///{target}")
    assert printed == ["adk_lite.adk.DatabaseSessionService", str(target), "s"]
    assert target.exists()


@pytest.mark.parametrize("how", ["services.yaml", "services.py"])
@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+asyncpg"])
def test_adk_cli_loads_the_service_for_a_postgres_uri(tmp_path, how, scheme):
    """A PostgreSQL URI in ``--session_service_uri`` reaches adk_lite, not ADK's own
    DatabaseSessionService (which ADK registers for ``postgresql``), once the scheme is
    registered; the ``+asyncpg`` form of ADK's configs works unchanged."""
    from adk_lite.target import mask_password
    from tests.conftest import pg_databases
    url = pg_databases().fresh(0)
    uri = url.replace("postgresql://", scheme + "://", 1)
    assert _adk_cli_session(tmp_path, how, scheme, uri) == ["adk_lite.adk.DatabaseSessionService",
                                                            mask_password(uri), "s"]
    with adk_lite.DatabaseSessionService(url) as svc:
        assert svc.get_session("a", "u", "s") is not None


def test_register_uses_the_given_registry_and_scheme(tmp_path):
    from google.adk.cli.service_registry import ServiceRegistry

    registry = ServiceRegistry()
    register(registry, scheme="mylite", busy_timeout=2.0)
    service = registry.create_session_service(f"mylite:///{tmp_path}/r.db", agents_dir=str(tmp_path))
    assert isinstance(service, DatabaseSessionService) and service.path == f"{tmp_path}/r.db"
    run(service.close())


def test_import_adk_lite_does_not_import_google_adk():
    code = "import sys, adk_lite; print('google.adk' in sys.modules, 'google' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_public_names_have_docstrings_and_are_in_the_readme():
    import inspect
    import pathlib

    from adk_lite import adk

    readme = (pathlib.Path(ROOT) / "README.md").read_text()
    assert "## Using with ADK" in readme and "adk_lite.adk.register()" in readme
    assert "adk_lite.adk.register()" in (pathlib.Path(ROOT) / "docs" / "adk.md").read_text()
    for name in adk.__all__:
        obj = getattr(adk, name)
        assert inspect.getdoc(obj), name
        for attr, value in vars(obj).items() if inspect.isclass(obj) else ():
            if not attr.startswith("_") and callable(value):
                assert inspect.getdoc(value), f"{name}.{attr}"


def _nested(depth):
    value = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def _fc_event(args):
    return Event(author="agent", invocation_id="inv", content=types.Content(
        role="model", parts=[types.Part(function_call=types.FunctionCall(name="f", args=args))]))


def _config(**fields):
    """A GetSessionConfig holding values its own validation would refuse (set after
    construction, as a caller can)."""
    return GetSessionConfig.model_construct(**{"num_recent_events": None, "after_timestamp": None, **fields})


# (id, call(svc, session), error, regex): each refused with a named error, nothing written
ADAPTER_ROWS = [
    ("num_recent_events 2**63", lambda v, s: v.get_session(app_name=APP, user_id=USER, session_id="s",
                                                           config=_config(num_recent_events=2**63)),
     ValueError, r"config.num_recent_events must be from 0 to 9223372036854775807"),
    ("after_timestamp 10**400", lambda v, s: v.get_session(app_name=APP, user_id=USER, session_id="s",
                                                           config=_config(after_timestamp=10**400)),
     ValueError, r"config.after_timestamp must be finite epoch seconds"),
    ("limit 2**63", lambda v, s: v.list_sessions(app_name=APP, limit=2**63), ValueError, r"limit must be from 1"),
    ("event timestamp 1e19", lambda v, s: v.append_event(s, Event(author="u", timestamp=1e19)), ValueError,
     r"event.timestamp must be finite epoch seconds"),
    ("state value nested 300 deep", lambda v, s: v.append_event(s, event(k=_nested(300))), ValueError,
     r"nested more than 200"),
    ("update_keys nested 10,000 deep", lambda v, s: v.update_keys(app_name=APP, user_id=USER, session_id="s",
                                                                  delta={"k": _nested(10_000)}),
     ValueError, r"nested more than 200"),
    ("function call args nested 10,000 deep", lambda v, s: v.append_event(s, _fc_event({"a": _nested(10_000)})),
     ValueError, r"cannot be stored as JSON"),
    ("content lone surrogate", lambda v, s: v.append_event(s, event("\ud800")), ValueError, r"cannot be stored as JSON"),
    ("state key lone surrogate", lambda v, s: v.append_event(s, event(**{"\udc00": 1})), ValueError, r"lone surrogate"),
    ("app_name lone surrogate", lambda v, s: v.create_session(app_name="a\ud800", user_id=USER), ValueError,
     r"app_name holds a lone surrogate"),
    ("Session app_name list", lambda v, s: v.append_event(
        Session.model_construct(id="s", app_name=["a"], user_id=USER, state={}, events=[], last_update_time=0.0),
        event()), TypeError, r"app_name must be a str, not list"),
    ("marker '²:...'", lambda v, s: v.append_event(_with_marker(s, "²:0123456789abcdef"), event()),
     adk_errors.StaleSessionError, r"not read from this store"),
    ("marker of another incarnation", lambda v, s: v.append_event(
        _with_marker(s, "0:" + "0" * 16), event()), adk_errors.StaleSessionError, r"deleted and created again"),
]


def _with_marker(session, marker):
    copy = session.model_copy(deep=True)
    copy._storage_update_marker = marker
    return copy


@pytest.mark.parametrize("call, kind, message", [r[1:] for r in ADAPTER_ROWS], ids=[r[0] for r in ADAPTER_ROWS])
def test_adapter_bad_input_is_refused_and_writes_nothing(tmp_path, call, kind, message):
    path = str(tmp_path / "bad.db")

    async def scenario():
        async with DatabaseSessionService(path) as svc:
            s = await svc.create_session(app_name=APP, user_id=USER, session_id="s", state={"k": 1})
            before = open(path, "rb").read() + open(path + "-wal", "rb").read()
            with pytest.raises(kind, match=message):
                await call(svc, s)
            assert open(path, "rb").read() + open(path + "-wal", "rb").read() == before
            got = await svc.get_session(app_name=APP, user_id=USER, session_id="s")
            assert (got.state, got.events, got._storage_update_marker) == ({"k": 1}, [], s._storage_update_marker)
    run(scenario())
