"""Opening a database: zero config, paths and URLs, pragmas, file mode, refused files."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from tests.conftest import assert_refused_untouched, drop_later_tables, edit_sqlite

from adk_lite import (
    CorruptDatabaseError,
    DatabaseOpenError,
    DatabaseSessionService,
    Event,
    ForeignDatabaseError,
    SchemaVersionError,
)
from adk_lite.schema import SCHEMA_VERSION
from adk_lite.target import DEFAULT_PATH, resolve

from .conftest import file_bytes


def test_zero_config_uses_default_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADK_LITE_DB", raising=False)
    with DatabaseSessionService() as svc:
        svc.create_session("app", "u", session_id="s")
        assert svc.path == DEFAULT_PATH == os.path.join(".adk", "sessions.sqlite3")
    assert (tmp_path / ".adk" / "sessions.sqlite3").is_file()


def test_env_var_wins_over_default(tmp_path, monkeypatch):
    target = tmp_path / "deep" / "er" / "env.db"
    monkeypatch.setenv("ADK_LITE_DB", str(target))
    monkeypatch.chdir(tmp_path)
    with DatabaseSessionService() as svc:
        assert svc.path == str(target)
    assert target.is_file() and not (tmp_path / ".adk").exists()


@pytest.mark.parametrize("url, expected", [
    ("sqlite:///rel.db", "rel.db"),
    ("sqlite+aiosqlite:///rel.db", "rel.db"),
    ("sqlite:////abs/x.db", "/abs/x.db"),
    ("adklite:///data/s.db", "data/s.db"),
    ("sqlite://", ":memory:"),
    ("sqlite:///:memory:", ":memory:"),
    (":memory:", ":memory:"),
    ("plain/path.db", "plain/path.db"),
])
def test_resolve_paths_and_urls(url, expected):
    assert resolve(url) == expected


def test_resolve_pathlike_and_bad_targets(tmp_path):
    assert resolve(tmp_path / "p.db") == str(tmp_path / "p.db")
    with pytest.raises(ValueError, match="postgresql"):
        resolve("postgresql://host/db")
    with pytest.raises(ValueError, match="empty"):
        resolve("")
    with pytest.raises(TypeError, match="db must be"):
        resolve(42)


def test_url_opens_the_same_file(tmp_path):
    path = tmp_path / "u.db"
    with DatabaseSessionService(str(path)) as svc:
        svc.create_session("app", "u", session_id="s")
    with DatabaseSessionService(f"sqlite+aiosqlite:///{path}") as svc:
        assert svc.get_session("app", "u", "s") is not None


def test_pragmas_and_schema(svc):
    conn = svc.store.db.peewee.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"adk_sessions", "adk_events", "adk_state", "adk_metadata"} <= tables
    assert conn.execute("SELECT value FROM adk_metadata WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)


def test_options(tmp_path):
    with DatabaseSessionService(str(tmp_path / "f.db"), synchronous="full", busy_timeout=0.5) as svc:
        conn = svc.store.db.peewee.connection()
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 500
    with pytest.raises(ValueError, match="synchronous"):
        DatabaseSessionService(str(tmp_path / "g.db"), synchronous="off")
    with pytest.raises(ValueError, match="busy_timeout"):
        DatabaseSessionService(str(tmp_path / "g.db"), busy_timeout=-1)
    assert not (tmp_path / "g.db").exists()


def test_new_file_mode_is_0600_and_existing_mode_kept(tmp_path):
    path = tmp_path / "m.db"
    with DatabaseSessionService(str(path)) as svc:
        svc.create_session("app", "u")
        for suffix in ("", "-wal", "-shm"):
            assert stat.S_IMODE(os.stat(str(path) + suffix).st_mode) == 0o600, suffix
    os.chmod(path, 0o644)
    with DatabaseSessionService(str(path)):
        pass
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_directory_is_refused(tmp_path):
    with pytest.raises(DatabaseOpenError, match="directory"):
        DatabaseSessionService(str(tmp_path))


def test_non_sqlite_file_is_refused_untouched(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello, this is not a database" * 10)
    assert_refused_untouched(str(path), CorruptDatabaseError, "not a SQLite database")


def test_foreign_sqlite_file_is_refused_untouched(tmp_path):
    path = str(tmp_path / "adk.db")
    edit_sqlite(path, "CREATE TABLE sessions (id TEXT)", "CREATE TABLE events (id TEXT)")
    assert_refused_untouched(path, ForeignDatabaseError, "google.adk")


def test_newer_schema_is_refused_untouched(db_path):
    with DatabaseSessionService(db_path) as svc:
        svc.create_session("app", "u")
    edit_sqlite(db_path, f"UPDATE adk_metadata SET value = '{SCHEMA_VERSION + 1}' WHERE key = 'schema_version'",
                "PRAGMA wal_checkpoint(TRUNCATE)")
    assert_refused_untouched(db_path, SchemaVersionError, "newer")


def test_truncated_file_is_refused(db_path):
    with DatabaseSessionService(db_path) as svc:
        s = svc.create_session("app", "u")
        svc.append_events(s, [__import__("adk_lite").Event(content={"t": "x" * 3000}) for _ in range(20)])
    size = os.path.getsize(db_path)
    with open(db_path, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(CorruptDatabaseError, match="truncated"):
        DatabaseSessionService(db_path)


def test_empty_file_is_initialized(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    with DatabaseSessionService(str(path)) as svc:
        assert svc.create_session("app", "u", session_id="s").id == "s"


def _migrate_to_v3(conn):
    conn.execute("ALTER TABLE adk_sessions ADD COLUMN note TEXT NOT NULL DEFAULT ''")


def test_older_file_is_migrated_in_one_transaction(db_path, monkeypatch):
    import adk_lite.schema as database

    with DatabaseSessionService(db_path) as svc:
        svc.create_session("app", "u", session_id="s")
    current = SCHEMA_VERSION
    monkeypatch.setattr(database, "SCHEMA_VERSION", current + 1)

    def broken(conn):
        _migrate_to_v3(conn)
        raise RuntimeError("migration step failed")

    monkeypatch.setattr(database, "MIGRATIONS", {**database.MIGRATIONS, current: broken})
    with pytest.raises(RuntimeError, match="failed"):
        DatabaseSessionService(db_path)
    conn = sqlite3.connect(db_path)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(adk_sessions)")]
    assert "note" not in columns  # rolled back whole
    assert conn.execute("SELECT value FROM adk_metadata").fetchone()[0] == str(current)
    conn.close()

    monkeypatch.setattr(database, "MIGRATIONS", {**database.MIGRATIONS, current: _migrate_to_v3})
    with DatabaseSessionService(db_path) as svc:
        assert svc.get_session("app", "u", "s") is not None
    conn = sqlite3.connect(db_path)
    assert "note" in [r[1] for r in conn.execute("PRAGMA table_info(adk_sessions)")]
    assert conn.execute("SELECT value FROM adk_metadata").fetchone()[0] == str(current + 1)
    conn.close()


def test_a_version_1_file_is_migrated_and_keeps_its_sessions(db_path):
    """A file written by the first release (schema_version 1, no incarnation column)
    opens, gets a random incarnation per session, and its sessions append."""
    with DatabaseSessionService(db_path) as svc:
        for sid in ("a", "b"):
            svc.append_event(svc.create_session("app", "u", session_id=sid), Event(author="user"))
    conn = sqlite3.connect(db_path)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")  # version 1 had no search index (version 4)
    conn.execute("DROP TABLE adk_events_fts")
    drop_later_tables(conn, 1)
    for column in ("incarnation", "initial_state", "forked_from"):  # what versions 2 and 3 added
        conn.execute(f"ALTER TABLE adk_sessions DROP COLUMN {column}")
    conn.execute("UPDATE adk_metadata SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with DatabaseSessionService(db_path) as svc:
        a, b = svc.get_session("app", "u", "a"), svc.get_session("app", "u", "b")
        assert len(a.incarnation) == 16 and a.incarnation != b.incarnation and a.revision == 1
        svc.append_event(a, Event(author="user"))
        assert svc.get_event_count("app", "u", "a") == 2
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT value FROM adk_metadata").fetchone()[0] == str(SCHEMA_VERSION)
    conn.close()


def _read_only(how, target):
    """Make ``target`` unwritable: ``chmod`` (not for root, who ignores modes) or
    ``chattr +i`` (immutable: refused even to root). Returns the undo function."""
    import subprocess

    if how == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root ignores file modes, so chmod cannot make a file read-only (the chattr case covers it)")
        mode = stat.S_IMODE(os.stat(target).st_mode)
        os.chmod(target, 0o555 if os.path.isdir(target) else 0o444)
        return lambda: os.chmod(target, mode)
    done = subprocess.run(["chattr", "+i", str(target)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not available here: {done.stderr.decode(errors='replace').strip()}")
    return lambda: subprocess.run(["chattr", "-i", str(target)], check=True)


@pytest.mark.parametrize("how", ["chmod", "chattr"])
@pytest.mark.parametrize("what", ["file", "empty file", "folder"])
def test_write_open_of_a_read_only_file_is_refused_leaving_nothing(tmp_path, how, what):
    """A read-write open of a file (or in a folder) that cannot be written raises
    DatabaseOpenError naming it, before SQLite opens it read-only behind our back and
    leaves -wal/-shm files; a read-only open of it still works."""
    folder = tmp_path / "f"
    folder.mkdir()
    path = str(folder / "s.db")
    if what == "empty file":
        open(path, "wb").close()
    else:
        with DatabaseSessionService(path) as svc:
            svc.create_session("app", "u", session_id="s")
    before, listing = file_bytes(path), sorted(os.listdir(folder))
    undo = _read_only(how, folder if what == "folder" else path)
    try:
        with pytest.raises(DatabaseOpenError, match=r"cannot write database .*s\.db: (the file|its folder .*) is read-only"):
            DatabaseSessionService(path)
        assert sorted(os.listdir(folder)) == listing
        if what == "file":
            with DatabaseSessionService(path, read_only=True) as ro:
                assert ro.get_session("app", "u", "s") is not None
    finally:
        undo()
    assert file_bytes(path) == before


def test_fifo_is_refused_without_blocking(tmp_path):
    """A FIFO (or any non-regular file) is no database: opening it would block or write into it."""
    path = str(tmp_path / "pipe.db")
    os.mkfifo(path)
    for read_only in (False, True):
        with pytest.raises(DatabaseOpenError, match=r"pipe\.db is not a regular file"):
            DatabaseSessionService(path, read_only=read_only)
    assert sorted(os.listdir(tmp_path)) == ["pipe.db"]


def test_bad_schema_version_met_inside_the_open_transaction_is_corrupt(db_path, monkeypatch):
    """_ensure_schema reads schema_version again (another process may have written it
    since the pre-check): a value int() refuses is a CorruptDatabaseError there too."""
    import adk_lite.sqlite as database

    with DatabaseSessionService(db_path) as svc:
        svc.create_session("app", "u")
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE adk_metadata SET value = '\u00b2' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    monkeypatch.setattr(database, "inspect_file", lambda path, busy_timeout=5.0: None)
    with pytest.raises(CorruptDatabaseError, match=r"no valid schema_version"):
        DatabaseSessionService(db_path)


def test_expected_columns_follow_the_models_and_migrations():
    from adk_lite.schema import ADDED_COLUMNS, expected_columns
    from adk_lite.models import make_models

    import peewee

    current = expected_columns(SCHEMA_VERSION)
    for model in make_models(peewee.SqliteDatabase(None)).all:
        assert current[model._meta.table_name] == set(model._meta.columns)
    assert current["adk_sessions"] - expected_columns(1)["adk_sessions"] == (ADDED_COLUMNS[2]["adk_sessions"]
                                                                          | ADDED_COLUMNS[3]["adk_sessions"])
    assert current["adk_sessions"] - expected_columns(2)["adk_sessions"] == {"initial_state", "forked_from"}
