"""Online backups, restores, and a complete main file after every clean stop.

The child processes here are small scripts run with ``python -c``. A "holder" child
keeps the database open (idle) where a test must show that OUR checkpoint made the
main file complete: without another connection, SQLite's own last-close would
checkpoint anyway.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from adk_lite import (AsyncDatabaseSessionService, CorruptDatabaseError, DatabaseLockedError, DatabaseOpenError,
                      DatabaseSessionService, Event, ForeignDatabaseError, SchemaVersionError)
from adk_lite.cli import main
from adk_lite.restore import restore
from tests.test_cli import bad_files
from tests.workers import child_env

TIMEOUT = 120


def child(code: str, *args: str) -> subprocess.Popen:
    """Start ``python -c code args...`` with this checkout importable; pipes for stdin/stdout."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())


HOLD = """
    import sys
    from adk_lite import DatabaseSessionService
    svc = DatabaseSessionService(sys.argv[1])
    svc.list_sessions()
    print("open", flush=True)
    sys.stdin.readline()
"""


class Holder:
    """A child process that keeps the database open (read-write, idle) until stopped."""

    def __init__(self, path: str) -> None:
        self.proc = child(HOLD, path)
        assert self.proc.stdout.readline().strip() == "open", self.proc.stderr.read()

    def stop(self) -> None:
        self.proc.communicate("\n", timeout=TIMEOUT)

    def __enter__(self) -> "Holder":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.stop()


def main_file_only(path: str, folder) -> str:
    """Copy the main file alone (no -wal, no -shm) into ``folder``; return the copy's path."""
    copy = os.path.join(str(folder), "main-only.sqlite3")
    shutil.copyfile(path, copy)
    return copy


def count_events(path: str) -> int:
    """Events in a database file, read through SQLite without its -wal (immutable)."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return conn.execute("SELECT COUNT(*) FROM adk_events").fetchone()[0]
    finally:
        conn.close()


def fill(svc: DatabaseSessionService, n: int, session_id: str = "s") -> None:
    session = svc.create_session("app", "u", session_id=session_id)
    svc.append_events(session, [Event(author="user", content={"parts": [{"text": f"hi {i}"}]}) for i in range(n)])


# -- backup ---------------------------------------------------------------------------

WRITER = """
    import itertools, sys
    from adk_lite import DatabaseSessionService, Event
    svc = DatabaseSessionService(sys.argv[1])
    session = svc.create_session("app", "writer", session_id="w")
    for i in itertools.count():
        svc.append_event(session, Event(author="user", content={"parts": [{"text": "x" * 500}]}))
        print(i + 1, flush=True)
"""


def test_backup_while_another_process_appends_holds_every_acknowledged_event(db_path, tmp_path):
    with DatabaseSessionService(db_path) as svc:
        fill(svc, 3000)
    writer = child(WRITER, db_path)
    try:
        for _ in range(50):  # the writer is appending
            acknowledged = int(writer.stdout.readline())
        dest = str(tmp_path / "backup.sqlite3")
        with DatabaseSessionService(db_path) as svc:
            result = svc.backup(dest)
        more = int(writer.stdout.readline())  # it kept appending after the backup
    finally:
        writer.kill()
        writer.wait()
    assert more > acknowledged
    assert result["path"] == dest and result["bytes"] == os.path.getsize(dest) and result["pages"] > 0
    assert os.stat(dest).st_mode & 0o777 == 0o600
    assert sorted(os.listdir(tmp_path)) == ["backup.sqlite3", "sessions.sqlite3", "sessions.sqlite3-shm",
                                            "sessions.sqlite3-wal"]  # no temporary file, no -wal beside the copy
    conn = sqlite3.connect(f"file:{dest}?immutable=1", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        writer_events = conn.execute("SELECT COUNT(*) FROM adk_events WHERE session_id = 'w'").fetchone()[0]
    finally:
        conn.close()
    assert writer_events >= acknowledged  # every event acknowledged before the backup began
    with open(dest, "rb") as fh:
        assert fh.read(20)[18:20] == b"\x02\x02"  # WAL mode in its header: it opens as WAL, complete without a -wal
    with DatabaseSessionService(dest, read_only=True) as copy:
        assert copy.get_event_count("app", "u", "s") == 3000
        assert copy.get_event_count("app", "writer", "w") == writer_events


def test_backup_refuses_the_database_and_its_side_files(svc, db_path, tmp_path):
    fill(svc, 3)
    os.link(db_path, tmp_path / "hard.sqlite3")
    os.symlink(db_path + "-wal", tmp_path / "sym")
    before = sorted(os.listdir(tmp_path))
    for dest in (db_path, db_path + "-wal", db_path + "-shm", db_path + "-journal", str(tmp_path / "hard.sqlite3"),
                 str(tmp_path / "sym")):
        with pytest.raises(ValueError, match="database"):
            svc.backup(dest, force=True)
    assert sorted(os.listdir(tmp_path)) == before


def test_backup_refuses_an_existing_file_unless_force(svc, tmp_path):
    fill(svc, 3)
    dest = tmp_path / "b.sqlite3"
    dest.write_bytes(b"keep me")
    with pytest.raises(ValueError, match="already exists"):
        svc.backup(dest)
    assert dest.read_bytes() == b"keep me"
    assert svc.backup(dest, force=True)["bytes"] > 7
    with DatabaseSessionService(str(dest), read_only=True) as copy:
        assert copy.get_event_count("app", "u", "s") == 3


def test_a_failed_backup_leaves_nothing_under_dest(svc, tmp_path, monkeypatch):
    fill(svc, 3)

    def fail(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        svc.backup(tmp_path / "b.sqlite3", progress=fail)
    assert sorted(os.listdir(tmp_path)) == ["sessions.sqlite3", "sessions.sqlite3-shm", "sessions.sqlite3-wal"]
    with pytest.raises(OSError):
        svc.backup(tmp_path / "no" / "such" / "folder.sqlite3")


@pytest.mark.parametrize("bad, kind", [(None, TypeError), (3, TypeError), ("", ValueError)])
def test_backup_refuses_bad_arguments(svc, bad, kind):
    with pytest.raises(kind):
        svc.backup(bad)


def test_backup_from_read_only_and_in_memory_services(svc, db_path, tmp_path):
    fill(svc, 5)
    with DatabaseSessionService(db_path, read_only=True) as ro:
        ro.backup(tmp_path / "ro.sqlite3")
        with pytest.raises(DatabaseOpenError):
            ro.checkpoint()
    with DatabaseSessionService(":memory:") as memory:
        fill(memory, 7)
        memory.backup(tmp_path / "mem.sqlite3")
    with DatabaseSessionService(str(tmp_path / "ro.sqlite3")) as a, \
            DatabaseSessionService(str(tmp_path / "mem.sqlite3")) as b:
        assert a.get_event_count("app", "u", "s") == 5 and b.get_event_count("app", "u", "s") == 7


def test_backup_reports_progress_per_step(svc, tmp_path, monkeypatch):
    from adk_lite import sqlite
    fill(svc, 500)
    monkeypatch.setattr(sqlite.SqliteBackend.backup, "__defaults__", (4,))
    calls = []
    result = svc.backup(tmp_path / "b.sqlite3", progress=lambda done, total: calls.append((done, total)))
    assert len(calls) > 2 and calls[-1] == (result["pages"], result["pages"])
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_async_and_adk_backups(db_path, tmp_path):
    async def go():
        async with AsyncDatabaseSessionService(db_path) as svc:
            fill(svc.sync, 4)
            return await svc.backup(tmp_path / "async.sqlite3"), await svc.checkpoint()
    result, checkpoint = asyncio.run(go())
    assert result["pages"] > 0 and checkpoint["busy"] is False and checkpoint["wal_bytes_after"] == 0
    pytest.importorskip("google.adk")  # adk_lite.adk says which extra is missing: an ImportError, not a skip
    from adk_lite import adk

    async def go_adk():
        async with adk.DatabaseSessionService(db_path) as svc:
            return await svc.backup(str(tmp_path / "adk.sqlite3"))
    assert asyncio.run(go_adk())["bytes"] > 0
    assert count_events(str(tmp_path / "adk.sqlite3")) == 4


# -- restore ----------------------------------------------------------------------------

@pytest.fixture
def backup_file(svc, tmp_path):
    fill(svc, 10, "before")
    path = str(tmp_path / "backup.sqlite3")
    svc.backup(path)
    fill(svc, 5, "after")
    svc.close()
    return path


def test_restore_replaces_the_database_and_keeps_the_old_one(backup_file, db_path, tmp_path):
    open(db_path + "-shm", "ab").close()  # a stale -shm of the old file
    result = restore(backup_file, db_path)
    assert result["kept"] and result["kept"].startswith(db_path + ".before-restore-")
    assert result["schema_version"] > 0 and result["bytes"] == os.path.getsize(db_path)
    assert not os.path.exists(db_path + "-wal") and not os.path.exists(db_path + "-shm")
    assert os.stat(db_path).st_mode & 0o777 == 0o600
    with DatabaseSessionService(db_path) as svc:
        assert [s.id for s in svc.list_sessions()] == ["before"]
    with DatabaseSessionService(result["kept"], read_only=True) as old:  # complete: its WAL was checkpointed in
        assert sorted(s.id for s in old.list_sessions()) == ["after", "before"]
    assert restore(backup_file, db_path, keep=False)["kept"] is None
    assert len([n for n in os.listdir(tmp_path) if ".before-restore-" in n]) == 1


def test_restore_into_a_missing_database(backup_file, tmp_path):
    target = str(tmp_path / "new.sqlite3")
    assert restore(backup_file, target)["kept"] is None
    assert count_events(target) == 10


def test_restore_refuses_while_another_process_has_the_database_open(backup_file, db_path, tmp_path):
    with Holder(db_path):
        before = sorted(os.listdir(tmp_path))
        with pytest.raises(DatabaseLockedError, match="open in another process"):
            restore(backup_file, db_path)
        assert sorted(os.listdir(tmp_path)) == before
    with DatabaseSessionService(db_path) as svc:  # this process too, once the service has a connection
        assert len(svc.list_sessions()) == 2
        with pytest.raises(DatabaseLockedError):
            restore(backup_file, db_path)
        assert len(svc.list_sessions()) == 2  # its connections still work
    assert len(restore(backup_file, db_path)["kept"]) > 0


def test_restore_refuses_a_bad_backup(backup_file, db_path, tmp_path):
    original = open(db_path, "rb").read()
    bad = bad_files(tmp_path, backup_file)
    empty = tmp_path / "empty.sqlite3"
    empty.write_bytes(b"")
    for path, kind in ((bad["not a SQLite"], CorruptDatabaseError), (bad["truncated"], CorruptDatabaseError),
                       (bad["not an adk_lite"], ForeignDatabaseError), (bad["newer"], SchemaVersionError),
                       (str(empty), DatabaseOpenError), (db_path, ValueError)):
        with pytest.raises(kind):
            restore(path, db_path)
    open(backup_file + "-wal", "wb").close()
    with pytest.raises(ValueError, match="-wal"):
        restore(backup_file, db_path)
    assert open(db_path, "rb").read() == original
    assert not [n for n in os.listdir(tmp_path) if ".before-restore-" in n or n.endswith(".tmp")]


def test_restore_over_a_corrupt_database(backup_file, db_path):
    with open(db_path, "wb") as fh:
        fh.write(b"not a database at all" * 100)
    result = restore(backup_file, db_path)
    assert count_events(db_path) == 10 and open(result["kept"], "rb").read().startswith(b"not a database")


# -- the command line --------------------------------------------------------------------

def test_cli_backup_and_restore(capsys, backup_file, db_path, tmp_path):
    dest = str(tmp_path / "cli.sqlite3")
    assert main(["backup", db_path, dest]) == 0
    assert "backed up" in capsys.readouterr().out
    assert main(["backup", db_path, dest]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["backup", db_path, db_path + "-wal", "--force"]) == 2
    assert main(["--json", "backup", db_path, dest, "--force"]) == 0
    assert '"pages"' in capsys.readouterr().out
    assert main(["restore", str(tmp_path / "missing.sqlite3"), db_path]) == 2
    with Holder(db_path):
        assert main(["restore", backup_file, db_path]) == 2
        assert "open in another process" in capsys.readouterr().err
    assert main(["restore", backup_file, db_path, "--no-keep", "--json"]) == 0
    assert '"kept": null' in capsys.readouterr().out
    assert count_events(db_path) == 10


# -- a complete main file after every clean stop -------------------------------------------

APPEND_SYNC = """
    import sys
    from adk_lite import DatabaseSessionService, Event
    svc = DatabaseSessionService(sys.argv[1])
    session = svc.create_session("app", "u", session_id="child")
    for i in range(300):
        svc.append_event(session, Event(author="user", content={{"parts": [{{"text": f"m{{i}}"}}]}}))
    {end}
"""

APPEND_ADK = """
    import asyncio, sys
    from google.adk.events import Event
    from google.genai import types
    from adk_lite.adk import DatabaseSessionService
    svc = DatabaseSessionService(sys.argv[1])
    async def go():
        session = await svc.create_session(app_name="app", user_id="u", session_id="child")
        for i in range(300):
            await svc.append_event(session, Event(author="user", content=types.Content(
                role="user", parts=[types.Part(text=f"m{{i}}")])))
        {end_async}
    asyncio.run(go())
    {end}
"""

ENDS = {"normal exit": "", "sys.exit": "sys.exit(3)", "unhandled exception": "raise RuntimeError('boom')"}


def run_child(code: str, path: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), path], capture_output=True, text=True,
                          env=child_env(), timeout=TIMEOUT)


@pytest.mark.parametrize("end", list(ENDS))
@pytest.mark.parametrize("api", ["sync", "adk"])
def test_a_child_that_never_closes_leaves_a_complete_main_file(db_path, tmp_path, api, end):
    if api == "adk":
        pytest.importorskip("google.adk")
        code = APPEND_ADK.format(end=ENDS[end], end_async="")
    else:
        code = APPEND_SYNC.format(end=ENDS[end])
    with Holder(db_path):  # another process keeps the file open: SQLite's own last-close checkpoint cannot run
        out = run_child(code, db_path)
        assert out.returncode == {"normal exit": 0, "sys.exit": 3, "unhandled exception": 1}[end], out.stderr
        assert count_events(main_file_only(db_path, tmp_path)) == 300


@pytest.mark.parametrize("how", ["close", "flush"])
def test_adk_close_and_flush_checkpoint(db_path, tmp_path, how):
    pytest.importorskip("google.adk")
    end = "await svc.close()" if how == "close" else "await svc.flush(); import os; os._exit(0)"
    with Holder(db_path):
        out = run_child(APPEND_ADK.format(end="", end_async=end), db_path)
        assert out.returncode == 0, out.stderr
        assert count_events(main_file_only(db_path, tmp_path)) == 300


def test_sync_close_checkpoints_while_another_process_has_the_file_open(db_path, tmp_path):
    with DatabaseSessionService(db_path) as svc:
        fill(svc, 1)  # the file exists for the holder
    with Holder(db_path):
        svc = DatabaseSessionService(db_path)
        fill(svc, 200, "more")
        assert os.path.getsize(db_path + "-wal") > 0
        svc.close()
        assert os.path.getsize(db_path + "-wal") == 0  # truncated
        assert count_events(main_file_only(db_path, tmp_path)) == 201


def test_checkpoint_on_demand_and_read_only_close_writes_nothing(db_path, tmp_path):
    with DatabaseSessionService(db_path) as svc, Holder(db_path):
        fill(svc, 50)
        result = svc.checkpoint()
        assert result["busy"] is False and result["wal_bytes_before"] > 0 and result["wal_bytes_after"] == 0
        assert count_events(main_file_only(db_path, tmp_path)) == 50
    before = open(db_path, "rb").read(), os.stat(db_path).st_mtime_ns
    DatabaseSessionService(db_path, read_only=True).close()
    assert (open(db_path, "rb").read(), os.stat(db_path).st_mtime_ns) == before


def test_a_garbage_collected_service_is_closed(db_path, tmp_path):
    import gc
    with Holder(db_path):
        svc = DatabaseSessionService(db_path)
        fill(svc, 20)
        del svc
        gc.collect()
        assert count_events(main_file_only(db_path, tmp_path)) == 20
