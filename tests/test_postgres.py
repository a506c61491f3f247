"""PostgreSQL only: concurrency across processes, a server restart, schema creation by
ten processes at once, the password kept out of messages, NUL refused, and what is
(not) imported for SQLite. Needs ``ADK_LITE_TEST_PG`` (see tests/conftest.py)."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import time

import pytest

from adk_lite import SCHEMA_VERSION, DatabaseSessionService, Event, EventActions
from adk_lite.errors import DatabaseOpenError
from adk_lite.target import parse_postgres
from tests.conftest import pg_databases, pg_url

TIMEOUT = 120


@pytest.fixture
def url():
    return pg_databases().fresh(0)


def _hammer(url, proc, barrier, out):
    """8 processes x 4 threads: appends to a shared and a private session, update_keys on both."""
    svc = DatabaseSessionService(url)
    barrier.wait()
    errors = []

    def work(thread):
        try:
            mine = f"p{proc}t{thread}"
            for n in range(15):
                for sid in ("shared", mine):
                    session = svc.get_session("app", "u", sid)
                    while True:
                        try:
                            svc.append_event(session, Event(id=f"{mine}-{sid}-{n}", author=mine, actions=EventActions(
                                state_delta={f"{mine}": n, "app:last": mine, f"user:{mine}": n})))
                            break
                        except Exception as e:  # noqa: BLE001
                            if type(e).__name__ != "StaleSessionError":
                                raise
                            session = svc.get_session("app", "u", sid)
                svc.update_keys("app", "u", mine, {f"k{n}": n})
                svc.update_keys("app", "u", "shared", {f"{mine}-k": n})
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    svc.close()
    out.put((proc, errors))


def test_eight_processes_four_threads_lose_nothing(url):
    with DatabaseSessionService(url) as svc:
        svc.create_session("app", "u", session_id="shared")
        for p in range(8):
            for t in range(4):
                svc.create_session("app", "u", session_id=f"p{p}t{t}")
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(url, p, barrier, out)) for p in range(8)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=TIMEOUT * 2) for _ in procs)
    for p in procs:
        p.join(timeout=TIMEOUT)
    assert all(errs == [] for errs in results.values()), results
    with DatabaseSessionService(url) as svc:
        shared = svc.get_session("app", "u", "shared")
        workers = [f"p{p}t{t}" for p in range(8) for t in range(4)]
        assert len(shared.events) == 32 * 15 * 2  # every append and every update_keys event
        assert shared.revision == len(shared.events)
        for w in workers:
            assert shared.state[f"{w}-k"] == 14 and shared.state[w] == 14 and shared.state[f"user:{w}"] == 14
            own = svc.get_session("app", "u", w)
            assert len(own.events) == 30 and own.revision == 30
            assert own.state == {**{f"k{n}": n for n in range(15)}, w: 14, "app:last": own.state["app:last"],
                                 **{f"user:{x}": 14 for x in workers}}


def _open_schema(url, barrier, out):
    barrier.wait()
    try:
        DatabaseSessionService(url).close()
        out.put("ok")
    except Exception as e:  # noqa: BLE001
        out.put(repr(e))


def test_ten_processes_create_the_schema_once(url):
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(10), ctx.Queue()
    procs = [ctx.Process(target=_open_schema, args=(url, barrier, out)) for _ in range(10)]
    for p in procs:
        p.start()
    got = [out.get(timeout=TIMEOUT) for _ in procs]
    for p in procs:
        p.join(timeout=TIMEOUT)
    assert got == ["ok"] * 10
    with DatabaseSessionService(url) as svc:
        assert svc.get_stats()["schema_version"] == SCHEMA_VERSION


def test_a_newer_schema_is_refused_unchanged(url):
    DatabaseSessionService(url).close()
    with pg_databases().admin(parse_postgres(url).conninfo["dbname"]) as conn:
        conn.execute("UPDATE adk_metadata SET value = '99' WHERE key = 'schema_version'")
    from adk_lite.errors import SchemaVersionError
    with pytest.raises(SchemaVersionError, match="newer"):
        DatabaseSessionService(url)
    with pg_databases().admin(parse_postgres(url).conninfo["dbname"]) as conn:
        assert conn.execute("SELECT value FROM adk_metadata").fetchall() == [("99",)]


def test_a_current_version_missing_a_table_is_refused_at_open_unchanged(url):
    """As a SQLite file is refused: the metadata says schema_version N but a table of N is
    gone, so open names it (read-only too), instead of a missing relation at the first call."""
    with DatabaseSessionService(url) as svc:
        svc.create_session("app", "u", session_id="s")
    with pg_databases().admin(parse_postgres(url).conninfo["dbname"]) as conn:
        conn.execute("DROP TABLE adk_usage")
        before = sorted(r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))
    from adk_lite.errors import ForeignDatabaseError
    for read_only in (False, True):
        with pytest.raises(ForeignDatabaseError, match="lacks the tables adk_usage of schema_version"):
            DatabaseSessionService(url, read_only=read_only)
    with pg_databases().admin(parse_postgres(url).conninfo["dbname"]) as conn:
        after = sorted(r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))
    assert after == before and "adk_usage" not in after


def test_the_password_never_shows(url):
    info = parse_postgres(url).conninfo
    password = info.get("password") or "no-password-set"
    with DatabaseSessionService(url) as svc:
        assert password not in repr(svc) + svc.path + str(svc.get_stats())
    wrong = url.replace(f":{password}@", ":Wrong-Secret-123@") if "password" in info else url
    with pytest.raises(DatabaseOpenError) as caught:
        DatabaseSessionService(wrong)
    assert "Wrong-Secret-123" not in str(caught.value) and password not in str(caught.value)
    bad_port = f"postgresql://u:Sekrit-456@127.0.0.1:1/x"
    with pytest.raises(DatabaseOpenError) as caught:
        DatabaseSessionService(bad_port)
    assert "Sekrit-456" not in str(caught.value) and "***" in str(caught.value)
    with pytest.raises(ValueError) as caught:
        DatabaseSessionService("postgresql://u:Sekrit-789@h/db?nope=1")
    assert "Sekrit-789" not in str(caught.value)


def test_nul_is_refused_before_writing(url):
    with DatabaseSessionService(url) as svc:
        s = svc.create_session("app", "u", session_id="s")
        for delta in ({"k": "a\x00b"}, {"k\x00": 1}, {"k": {"x\x00": [1]}}):
            with pytest.raises(ValueError, match="NUL"):
                svc.update_keys("app", "u", "s", delta)
        with pytest.raises(ValueError, match="NUL"):
            svc.create_session("app", "u", state={"app:k": ["\x00"]})
        svc.update_keys("app", "u", "s", {"k": "\\u0000 is text"})  # an escaped backslash is fine
        assert svc.get_session("app", "u", "s").state == {"k": "\\u0000 is text"}
        assert svc.get_session("app", "u", "s").revision == s.revision + 1


WIDE = "\U00020000"  # one character, four bytes in UTF-8


def test_values_too_long_for_an_index_are_refused_before_writing(url):
    """PostgreSQL refuses a B-tree entry over 2704 bytes: every id and state key is held
    to 600 UTF-8 bytes there, checked before the write (a ValueError that names it,
    nothing written), on every path that writes one; 600 bytes of each is stored."""
    at_limit, over = WIDE * 150, WIDE * 151  # 600 and 604 bytes (both within 256 characters)
    with DatabaseSessionService(url) as svc:
        s = svc.create_session(at_limit, at_limit, session_id=at_limit, state={at_limit: 1, "user:" + WIDE * 148: 2})
        svc.append_event(s, Event(id=at_limit, actions=EventActions(state_delta={"app:" + WIDE * 148: 3})))
        assert svc.get_session(at_limit, at_limit, at_limit).state[at_limit] == 1
        other = svc.create_session("app", "u", session_id="s")
        before = svc.get_stats()
        attempts = {
            "app_name": lambda: svc.create_session(over, "u"),
            "user_id": lambda: svc.create_session("app", over),
            "session_id": lambda: svc.create_session("app", "u", session_id=over),
            "state key": lambda: svc.create_session("app", "u", state={"app:" + over: 1}),
            "event id": lambda: svc.append_event(other, Event(id=over)),
            "state key ": lambda: svc.update_keys("app", "u", "s", {"user:" + over: 1}),
            "session_id ": lambda: svc.fork_session("app", "u", "s", new_session_id=over),
        }
        for name, call in attempts.items():
            with pytest.raises(ValueError, match=f"{name.strip()} .* bytes in UTF-8; on PostgreSQL the limit is 600"):
                call()
        assert svc.get_stats() == before
        assert svc.get_session("app", "u", "s").revision == other.revision


def test_what_only_a_file_has_is_refused_or_a_no_op_with_reason(url, tmp_path, capsys):
    """backup and restore move SQLite files: on a server they say what to use instead
    and write nothing; checkpoint has nothing to do (the server owns its WAL)."""
    from adk_lite.cli import main
    from adk_lite.errors import DatabaseError
    from adk_lite.restore import restore
    with DatabaseSessionService(url) as svc:
        svc.create_session("app", "u", session_id="s")
        with pytest.raises(DatabaseError, match="pg_dump"):
            svc.backup(str(tmp_path / "b.db"))
        assert svc.checkpoint() == {"busy": False, "wal_bytes_before": 0, "wal_bytes_after": 0}
    assert os.listdir(tmp_path) == []
    with DatabaseSessionService(str(tmp_path / "file.db")) as local:
        local.create_session("app", "u", session_id="from-file")
        local.backup(str(tmp_path / "b.db"))
    with pytest.raises(ValueError, match="adk-lite copy BACKUP URL"):
        restore(str(tmp_path / "b.db"), url)
    assert main(["restore", str(tmp_path / "b.db"), url]) == 2
    assert "is a PostgreSQL database" in capsys.readouterr().err
    assert main(["backup", url, str(tmp_path / "c.db")]) != 0
    assert "pg_dump" in capsys.readouterr().err and not os.path.exists(tmp_path / "c.db")
    with DatabaseSessionService(url) as svc:
        assert [x.id for x in svc.list_sessions()] == ["s"]


def test_nothing_of_postgres_is_imported_for_sqlite(tmp_path):
    script = ("import sys, adk_lite\n"
              "adk_lite.DatabaseSessionService(sys.argv[1]).close()\n"
              "assert 'adk_lite.postgres' not in sys.modules\n"
              "sys.modules['psycopg'] = None\n")  # noqa: ISC003
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "x.db")], check=True, timeout=60)
    # without psycopg at all (peewee imports it itself when installed): SQLite works, a URL says what to install
    blocked = ("import sys\nsys.modules['psycopg'] = None\nimport adk_lite\n"
               "adk_lite.DatabaseSessionService(sys.argv[1]).close()\n"
               "try:\n    adk_lite.DatabaseSessionService('postgresql://u:pw@h/db')\n"
               "except adk_lite.DatabaseOpenError as e:\n    assert 'adk_lite[postgres]' in str(e) and 'pw' not in str(e)\n"
               "else:\n    raise SystemExit('opened')\n")
    subprocess.run([sys.executable, "-c", blocked, str(tmp_path / "y.db")], check=True, timeout=60)


def _cluster():
    versions = sorted(os.listdir("/usr/lib/postgresql"), key=int) if os.path.isdir("/usr/lib/postgresql") else []
    if not versions or os.geteuid() != 0 or "127.0.0.1" not in pg_url():
        pytest.skip("restarting the server needs root and the local Debian cluster (pg_ctlcluster)")
    return versions[-1]


def test_server_restart_raises_then_recovers(url):
    """A writer thread appends throughout a fast stop and start of the server: calls
    during the outage raise DatabaseOpenError (never a driver error, never the password),
    calls after it work in the same process, and every acknowledged append is stored."""
    version = _cluster()
    password = parse_postgres(url).conninfo.get("password", "\x00")
    with DatabaseSessionService(url) as svc:
        svc.create_session("app", "u", session_id="s")
        acknowledged, failures, stop = [], [], threading.Event()

        def writer():
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    s = svc.get_session("app", "u", "s")
                    svc.append_event(s, Event(id=f"e{n}", author="a"))
                    acknowledged.append(f"e{n}")
                except Exception as e:  # noqa: BLE001 - each is checked below
                    failures.append(e)
                    time.sleep(0.05)
        thread = threading.Thread(target=writer)
        thread.start()
        try:
            while len(acknowledged) < 20:
                time.sleep(0.01)
            subprocess.run(["pg_ctlcluster", version, "main", "stop", "-m", "fast"], check=True, timeout=120)
            with pytest.raises(DatabaseOpenError) as caught:
                svc.get_session("app", "u", "s")
            assert password not in str(caught.value)
        finally:
            subprocess.run(["pg_ctlcluster", version, "main", "start"], check=True, timeout=120)
        during = len(acknowledged)
        deadline = time.monotonic() + 60
        while len(acknowledged) < during + 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        thread.join()
        assert len(acknowledged) >= during + 20  # no restart of this process: broken connections were dropped
        assert failures and all(isinstance(e, DatabaseOpenError) and password not in str(e) for e in failures), \
            [repr(e) for e in failures[:3]]
        stored = [e.id for e in svc.get_session("app", "u", "s").events]
        assert set(acknowledged) <= set(stored)


def _export(db, tmp_path, name):
    out = tmp_path / name
    subprocess.run([sys.executable, "-m", "adk_lite", "export", db, "-o", str(out)], check=True, timeout=120)
    lines = out.read_bytes().splitlines()[1:]  # without the header (it holds nothing of the data)
    import orjson
    return sorted(orjson.dumps(orjson.loads(line), option=orjson.OPT_SORT_KEYS) for line in lines)


def test_copy_sqlite_to_postgres_and_back_is_equal_and_resumable(url, tmp_path):
    import json
    first = str(tmp_path / "first.db")
    with DatabaseSessionService(first) as svc:
        for i in range(5):
            s = svc.create_session("app", f"u{i % 2}", session_id=f"s{i}",
                                   state={"k": i, "app:a": [1.5, 5.016280331188281e16], "user:u": {"z": 1, "a": 2}})
            for n in range(3):
                svc.append_event(s, Event(id=f"e{n}", author="a", actions=EventActions(state_delta={"n": n})))
    run = lambda *a: subprocess.run([sys.executable, "-m", "adk_lite", "copy", *a, "--json"],  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    done = run(first, url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["created"] == 5 and json.loads(done.stdout)["analyzed"] is True
    import psycopg
    with psycopg.connect(url) as conn:  # the planner has statistics for the copied rows (-1: never analyzed)
        assert conn.execute("SELECT reltuples FROM pg_class WHERE relname = 'adk_events'").fetchone()[0] == 15
    again = run(first, url)  # a re-run completes an interrupted copy: nothing twice
    assert again.returncode == 0 and json.loads(again.stdout)["unchanged"] == 5
    assert json.loads(again.stdout)["created"] == 0 and json.loads(again.stdout)["analyzed"] is False
    back = str(tmp_path / "back.db")
    done = run(url, back)
    assert done.returncode == 0 and json.loads(done.stdout)["analyzed"] is False  # a file needs no ANALYZE
    assert _export(first, tmp_path, "a.jsonl") == _export(url, tmp_path, "b.jsonl") == _export(back, tmp_path, "c.jsonl")
    other = pg_databases().fresh(1)
    subprocess.run([sys.executable, "-m", "adk_lite", "export", first, "-o", str(tmp_path / "all.jsonl")], check=True,
                   timeout=120)
    loaded = subprocess.run([sys.executable, "-m", "adk_lite", "import", str(tmp_path / "all.jsonl"), other,
                             "--create", "--json"], capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0 and json.loads(loaded.stdout)["analyzed"] is True, loaded.stderr
    stats = subprocess.run([sys.executable, "-m", "adk_lite", "stats", url, "--json"], capture_output=True,
                           text=True, timeout=60)
    assert stats.returncode == 0 and json.loads(stats.stdout)["events"] == 15
    assert (parse_postgres(url).conninfo.get("password") or "\x00") not in stats.stdout
    for command in (["check", url], ["vacuum", url], ["sessions", url], ["show", url, "app", "u0", "s0"],
                    ["prune", url, "--older-than", "30d", "--dry-run"]):
        done = subprocess.run([sys.executable, "-m", "adk_lite", *command], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (command, done.stderr)


def test_concurrent_creates_of_one_id_give_exactly_one_session(url):
    """Two connections create the same session id at the same moment (writers run at
    once on PostgreSQL): one gets the session, the other AlreadyExistsError, never a
    raw or generic database error."""
    from adk_lite import AlreadyExistsError

    with DatabaseSessionService(url) as svc:
        for round_ in range(20):
            barrier, outcomes = threading.Barrier(4), []

            def create():
                barrier.wait()
                try:
                    svc.create_session("app", "u", session_id=f"same-{round_}")
                    outcomes.append("created")
                except AlreadyExistsError:
                    outcomes.append("exists")
                except Exception as e:  # the outcome under test
                    outcomes.append(repr(e))

            threads = [threading.Thread(target=create) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert sorted(outcomes) == ["created", "exists", "exists", "exists"], outcomes
        assert len(svc.list_sessions("app", "u")) == 20
