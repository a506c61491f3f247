"""Restore installs only what adk_lite wrote, and ``check`` says so.

Hostile backups: a search index that SQLite's ``integrity_check`` passes but FTS5's
own check fails (or that holds other text than the events), a schema with one more
trigger, view, index or table, or one of ours changed; and database paths in other
spellings (a symbolic link, a linked folder, ``./x``, a URL, a hard link).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3

import pytest

from adk_lite import (CorruptDatabaseError, DatabaseLockedError, DatabaseSessionService, Event,
                      ForeignDatabaseError)
from adk_lite import schema, schema_check
from adk_lite.cli import main
from adk_lite.restore import restore
from tests.conftest import drop_later_tables, file_bytes
from tests.test_backup import Holder, count_events
from tests.workers import schema_problems_with

WORD = "zqhostile4929"


def make_db(path: str, users: int = 3, events: int = 30) -> str:
    """A closed database with searchable events of several users."""
    with DatabaseSessionService(path) as svc:
        for u in range(users):
            s = svc.create_session("app", f"u{u}", session_id="s")
            svc.append_events(s, [Event(author="user", content={"parts": [{"text": f"{WORD} word{i} user{u} alpha"}]})
                                  for i in range(events)])
    return path


def sql(path: str, *statements: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def sqlite_ok(path: str) -> bool:
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


def cli_check(path: str, capsys) -> tuple[int, dict]:
    code = main(["--json", "check", path])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else {})


@pytest.fixture
def installed(tmp_path):
    """A database to restore over, and its bytes."""
    path = make_db(str(tmp_path / "live.sqlite3"), users=1, events=3)
    return path, file_bytes(path)


# -- 6: the search index ----------------------------------------------------------------

def _zero_leaves(path):
    sql(path, "UPDATE adk_events_fts_data SET block = zeroblob(length(block)) WHERE id > 10")


def _index_row_gone(path):
    """One entry of the index's page directory gone (merged first, so a segment has several pages)."""
    sql(path, "INSERT INTO adk_events_fts (adk_events_fts) VALUES ('optimize')",
        "DELETE FROM adk_events_fts_idx WHERE (segid, term) IN (SELECT segid, term FROM adk_events_fts_idx "
        "ORDER BY pgno LIMIT 1)")


def _content_changed(path):
    sql(path, "UPDATE adk_events_fts_content SET c0 = 'words nobody wrote' WHERE id = (SELECT max(id) FROM "
              "adk_events_fts_content)")


def _forged_text(path):
    """The index is sound in itself but holds other words for an event than its own."""
    sql(path, "UPDATE adk_events_fts SET text = 'forged secret words' WHERE rowid = (SELECT min(id) FROM adk_events)")


def _event_not_indexed(path):
    sql(path, "DELETE FROM adk_events_fts WHERE rowid = (SELECT max(id) FROM adk_events)")


def _ghost_row(path):
    sql(path, "INSERT INTO adk_events_fts (rowid, text) VALUES (987654321, 'a ghost event')")


def _sizes_changed(path):
    sql(path, "UPDATE adk_events_fts_docsize SET sz = x'00' WHERE id = (SELECT max(id) FROM adk_events_fts_docsize)")


def _other_format(path):
    sql(path, "UPDATE adk_events_fts_config SET v = 5 WHERE k = 'version'")


def _rank_setting(path):
    """A ranking function FTS5 keeps in its configuration: every search would then fail."""
    sql(path, "INSERT INTO adk_events_fts (adk_events_fts, rank) VALUES ('rank', 'nosuchfn()')")


def _page_size_setting(path):
    sql(path, "INSERT INTO adk_events_fts (adk_events_fts, rank) VALUES ('pgsz', 64)")


FTS_DAMAGE = {"a rank function set": _rank_setting, "a page size set": _page_size_setting,
              "leaf blocks zeroed": _zero_leaves, "an idx row deleted": _index_row_gone,
              "document sizes changed": _sizes_changed, "another index format": _other_format,
              "content changed": _content_changed, "other text for an event": _forged_text,
              "an event not indexed": _event_not_indexed, "an index row of no event": _ghost_row}


@pytest.mark.parametrize("damage", list(FTS_DAMAGE.values()), ids=list(FTS_DAMAGE))
def test_a_backup_with_a_bad_search_index_is_refused_and_check_says_so(tmp_path, installed, capsys, damage):
    backup = make_db(str(tmp_path / "backup.sqlite3"), events=300)
    damage(backup)
    assert sqlite_ok(backup)  # SQLite's own check does not see it: that is the attack
    db, before = installed
    listing = sorted(os.listdir(tmp_path))
    with pytest.raises(CorruptDatabaseError, match=r"adk_events_fts"):
        restore(backup, db)
    assert file_bytes(db) == before and sorted(os.listdir(tmp_path)) == listing
    code, found = cli_check(backup, capsys)
    assert code == 1 and found["ok"] is False
    assert any("adk_events_fts" in p for p in found["problems"]), found


def test_restore_installs_an_index_it_rebuilt(tmp_path, installed):
    """Damage FTS5's integrity-check does not see (the last entry of the page directory
    gone: searches miss events) does not survive a restore: the index is rebuilt."""
    backup = make_db(str(tmp_path / "backup.sqlite3"), events=300)
    sql(backup, "INSERT INTO adk_events_fts (adk_events_fts) VALUES ('optimize')",
        "DELETE FROM adk_events_fts_idx WHERE (segid, term) IN (SELECT segid, term FROM adk_events_fts_idx "
        "ORDER BY pgno DESC LIMIT 1)")
    with DatabaseSessionService(backup, read_only=True) as svc:
        assert len(svc.search_events("word299", limit=10)) < 3  # the damage shows
    db, _ = installed
    restore(backup, db, keep=False)
    assert sorted(os.listdir(tmp_path)) == ["backup.sqlite3", "live.sqlite3"]
    with DatabaseSessionService(db) as svc:
        assert len(svc.search_events("word299", limit=10)) == 3
        assert len(svc.search_events(WORD, limit=10**4)) == 900


def test_a_sound_index_passes_restore_and_check(tmp_path, installed, capsys):
    backup = make_db(str(tmp_path / "backup.sqlite3"))
    db, _ = installed
    assert restore(backup, db, keep=False)["schema_version"] == schema.SCHEMA_VERSION
    code, found = cli_check(db, capsys)
    assert code == 0 and found["ok"] is True and found["integrity_check"] == ["ok"], found
    with DatabaseSessionService(db) as svc:  # and the restored index works
        assert len(svc.search_events(WORD, limit=1000)) == 90


def test_check_of_a_live_service_reads_its_index_without_writing(tmp_path):
    path = make_db(str(tmp_path / "db.sqlite3"))
    with DatabaseSessionService(path, read_only=True) as svc:
        before = file_bytes(path)
        assert svc.store.check()["integrity_check"] == ["ok"]
        assert file_bytes(path) == before
    _forged_text(path)
    with DatabaseSessionService(path, read_only=True) as svc:
        lines = svc.store.check()["integrity_check"]
    assert lines == ["adk_events_fts: 1 events are indexed with other text than theirs"]


# -- 7: the whole schema ------------------------------------------------------------------

HOSTILE_SCHEMA = {
    "trigger deleting other users' events": (
        ["CREATE TRIGGER steal AFTER INSERT ON adk_events BEGIN DELETE FROM adk_events WHERE user_id != new.user_id; END"],
        r"trigger steal is not adk_lite's"),
    "trigger on state": (["CREATE TRIGGER spy AFTER UPDATE ON adk_state BEGIN SELECT 1; END"], r"trigger spy"),
    "view": (["CREATE VIEW everything AS SELECT * FROM adk_events"], r"view everything is not adk_lite's"),
    "index": (["CREATE INDEX by_author ON adk_events (author)"], r"index by_author is not adk_lite's"),
    "partial unique index": (["CREATE UNIQUE INDEX one_app ON adk_sessions (app_name) WHERE app_name = 'x'"],
                             r"index one_app"),
    "table": (["CREATE TABLE notes (body TEXT)"], r"table notes is not adk_lite's"),
    "our trigger changed": (
        ["DROP TRIGGER adk_events_fts_delete",
         "CREATE TRIGGER adk_events_fts_delete AFTER DELETE ON adk_events BEGIN SELECT 1; END"],
        r"trigger adk_events_fts_delete is not as adk_lite makes it"),
    "our trigger missing": (["DROP TRIGGER adk_events_fts_delete"], r"trigger adk_events_fts_delete is missing"),
    "our index missing": (["DROP INDEX adk_sessions_app_name_updated_at_user_id_session_id"],
                          r"index adk_sessions_app_name_updated_at_user_id_session_id is missing"),
    "a table with a case-blind user_id": (
        ["ALTER TABLE adk_state RENAME TO old",
         "CREATE TABLE adk_state (app_name TEXT NOT NULL, user_id TEXT NOT NULL COLLATE NOCASE, session_id TEXT NOT NULL,"
         " scope TEXT NOT NULL, state_key TEXT NOT NULL, state_value TEXT NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY"
         " (app_name, user_id, session_id, scope, state_key)) WITHOUT ROWID",
         "INSERT INTO adk_state SELECT * FROM old", "DROP TABLE old"],
        r"table adk_state is not as adk_lite makes it"),
    "search index with another tokenizer": (
        ["DROP TRIGGER adk_events_fts_insert", "DROP TRIGGER adk_events_fts_update", "DROP TRIGGER adk_events_fts_delete",
         "DROP TABLE adk_events_fts", "CREATE VIRTUAL TABLE adk_events_fts USING fts5(text, tokenize='ascii')"],
        r"table adk_events_fts is not as adk_lite makes it"),
}


@pytest.mark.parametrize("statements, message", list(HOSTILE_SCHEMA.values()), ids=list(HOSTILE_SCHEMA))
def test_a_backup_with_a_foreign_schema_object_is_refused_everywhere(tmp_path, installed, capsys, statements, message):
    backup = make_db(str(tmp_path / "backup.sqlite3"))
    sql(backup, *statements)
    assert sqlite_ok(backup)
    db, before = installed
    listing = sorted(os.listdir(tmp_path))
    with pytest.raises(ForeignDatabaseError, match=message) as caught:
        restore(backup, db)
    assert backup in str(caught.value)
    assert file_bytes(db) == before and sorted(os.listdir(tmp_path)) == listing
    backup_bytes = file_bytes(backup)
    for read_only in (False, True):  # at open, and untouched
        with pytest.raises(ForeignDatabaseError, match=message):
            DatabaseSessionService(backup, read_only=read_only)
    assert file_bytes(backup) == backup_bytes
    assert main(["check", backup]) == 2  # refused at open, as every command refuses it: one line naming it
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err) and backup in err, err


def test_check_reports_an_object_added_while_the_service_is_open(db_path):
    with DatabaseSessionService(db_path) as svc:
        svc.create_session("app", "u", session_id="s")
        assert svc.store.check()["schema_problems"] == []
        sql(db_path, "CREATE TRIGGER steal AFTER INSERT ON adk_events BEGIN DELETE FROM adk_events "
                     "WHERE user_id != new.user_id; END")
        problems = svc.store.check()["schema_problems"]
    assert len(problems) == 1 and problems[0].startswith("trigger steal is not adk_lite's"), problems


def test_sqlite_own_statistics_tables_are_allowed(tmp_path, installed, capsys):
    backup = make_db(str(tmp_path / "backup.sqlite3"))
    sql(backup, "ANALYZE", "PRAGMA optimize")
    db, _ = installed
    restore(backup, db, keep=False)
    code, found = cli_check(db, capsys)
    assert code == 0 and found["ok"], found
    with DatabaseSessionService(db) as svc:
        assert svc.vacuum()["bytes_after"] > 0
        assert svc.store.check()["schema_problems"] == []


def _older(path: str, version: int) -> None:
    """Take a file back to schema ``version`` as the tests of migrations do."""
    conn = sqlite3.connect(path, isolation_level=None)
    drop_later_tables(conn, version)
    if version < 4:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP TABLE adk_events_fts")
    for added_in, tables in schema.ADDED_COLUMNS.items():
        if added_in > version:
            for table, columns in tables.items():
                for column in sorted(columns):
                    conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    conn.execute("UPDATE adk_metadata SET value = ? WHERE key = 'schema_version'", (str(version),))
    conn.close()


@pytest.mark.parametrize("version", range(1, schema.SCHEMA_VERSION))
def test_older_files_are_judged_by_their_own_version(tmp_path, installed, version):
    good, bad = (make_db(str(tmp_path / f"{n}.sqlite3")) for n in ("good", "bad"))
    for path in (good, bad):
        _older(path, version)
    sql(bad, "CREATE TRIGGER steal AFTER INSERT ON adk_events BEGIN DELETE FROM adk_events; END")
    db, before = installed
    with pytest.raises(ForeignDatabaseError, match=rf"schema_version {version}\): trigger steal"):
        restore(bad, db)
    assert file_bytes(db) == before
    assert restore(good, db, keep=False)["schema_version"] == version
    with DatabaseSessionService(db) as svc:  # migrated at this open: then the current version's schema
        assert svc.store.check()["schema_problems"] == []
        assert len(svc.search_events(WORD, limit=1000)) == 90
    with DatabaseSessionService(db, read_only=True) as svc:
        assert svc.store.check()["integrity_check"] == ["ok"]


def test_every_migration_ends_where_a_new_file_starts():
    """A file made by the first release and migrated holds the objects a new file
    holds, by name and kind (the tables' SQL text differs where ALTER TABLE added columns)."""
    new = schema_check.expected_objects(schema.SCHEMA_VERSION)
    key = schema_check._key()
    migrated = schema_check._made_at(1, schema.SCHEMA_VERSION, key)
    assert set(migrated) == set(new[0])
    for name, (kind, table, sql_text) in migrated.items():
        assert (kind, table) == new[1][name][:2]
        if kind != "table" or not any(table in t for t in schema.ADDED_COLUMNS.values()):
            assert sql_text in new[1][name][2] and len(new[1][name][2]) == 1, name


def test_a_new_migration_is_known_without_listing_it(tmp_path, monkeypatch):
    """The next version's objects come from its migration: a file migrated to it opens,
    one with another object is refused."""
    current = schema.SCHEMA_VERSION

    def add_notes(conn):
        conn.execute("CREATE TABLE adk_notes (id INTEGER PRIMARY KEY, note TEXT)")
        conn.execute("CREATE INDEX adk_notes_note ON adk_notes (note)")

    good, bad = (make_db(str(tmp_path / f"{n}.sqlite3"), users=1, events=2) for n in ("good", "bad"))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 1)
    monkeypatch.setattr(schema, "MIGRATIONS", {**schema.MIGRATIONS, current: add_notes})
    for path in (good, bad):
        DatabaseSessionService(path).close()  # migrated to current + 1
    with DatabaseSessionService(good) as svc:
        assert svc.store.check()["schema_problems"] == []
    sql(bad, "CREATE INDEX adk_notes_other ON adk_notes (id, note)")
    with pytest.raises(ForeignDatabaseError, match=r"index adk_notes_other is not adk_lite's"):
        DatabaseSessionService(bad)


def test_postgres_check_reports_a_trigger_on_our_tables(backend, target):
    if backend != "postgres":
        pytest.skip("the SQLite file's schema is checked above")
    with DatabaseSessionService(target) as svc:
        svc.create_session("app", "u", session_id="s")
        assert svc.store.check()["schema_problems"] == []
        problems = schema_problems_with(svc, target, [
            "CREATE OR REPLACE FUNCTION adk_test_steal() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN DELETE FROM adk_events WHERE user_id <> NEW.user_id; RETURN NEW; END $$",
            "CREATE TRIGGER steal AFTER INSERT ON adk_events FOR EACH ROW EXECUTE FUNCTION adk_test_steal()",
            "CREATE RULE quiet AS ON DELETE TO adk_state DO INSTEAD NOTHING",
        ], [
            "DROP TRIGGER steal ON adk_events",
            "DROP RULE quiet ON adk_state",
            "DROP FUNCTION adk_test_steal()",
        ])
    assert [p.split(" (")[0] for p in problems] == ["trigger steal on adk_events is not adk_lite's",
                                                    "rule quiet on adk_state is not adk_lite's"], problems


# -- 8: other spellings of the database path -------------------------------------------------

@pytest.fixture
def backup_of_ten(tmp_path):
    path = str(tmp_path / "backup.sqlite3")
    make_db(path, users=1, events=10)
    return path


def _db_of_three_and(tmp_path, link, name: str) -> tuple[str, str]:
    """A database of 3 events at ``tmp_path/db.sqlite3`` and a second name ``tmp_path/name``
    for it, made by ``link`` (``os.link`` or ``os.symlink``)."""
    db = make_db(str(tmp_path / "db.sqlite3"), users=1, events=3)
    other = str(tmp_path / name)
    link(db, other)
    return db, other


def test_restore_through_a_symlink_replaces_the_file_it_points_to(tmp_path, backup_of_ten):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    real = make_db(str(real_dir / "db.sqlite3"), users=1, events=3)
    link = str(tmp_path / "link.sqlite3")
    os.symlink(real, link)
    result = restore(backup_of_ten, link)
    assert os.path.islink(link) and os.readlink(link) == real  # the link is left as it is
    assert count_events(real) == 10 and result["file"] == os.path.realpath(real)
    assert result["kept"].startswith(os.path.realpath(real) + ".before-restore-") and count_events(result["kept"]) == 3
    with DatabaseSessionService(link) as svc:
        assert svc.get_event_count("app", "u0", "s") == 10


def test_restore_through_a_linked_folder_and_relative_spellings(tmp_path, backup_of_ten, monkeypatch):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    real = make_db(str(real_dir / "db.sqlite3"), users=1, events=3)
    os.symlink(real_dir, tmp_path / "alias")
    monkeypatch.chdir(tmp_path)
    restore(backup_of_ten, os.path.join("alias", "db.sqlite3"), keep=False)
    assert count_events(real) == 10 and not os.path.islink(real)
    restore(backup_of_ten, "./real/../real/db.sqlite3", keep=False)
    restore(backup_of_ten, f"sqlite:///{real}", keep=False)
    assert count_events(real) == 10
    for same in ("./backup.sqlite3", str(tmp_path / "backup.sqlite3"), "alias/../backup.sqlite3"):
        with pytest.raises(ValueError, match="is the database"):
            restore(backup_of_ten, same)
    link_to_backup = str(tmp_path / "b-link")
    os.symlink(backup_of_ten, link_to_backup)
    with pytest.raises(ValueError, match="is the database"):
        restore(backup_of_ten, link_to_backup)
    os.symlink(tmp_path / "loop-b", tmp_path / "loop-a")
    os.symlink(tmp_path / "loop-a", tmp_path / "loop-b")
    for bad in (":memory:", "file:db.sqlite3", "loop-a"):
        with pytest.raises(ValueError):
            restore(backup_of_ten, bad)
    assert count_events(real) == 10


def test_restore_refuses_a_database_with_another_hard_link(tmp_path, backup_of_ten):
    db, other = _db_of_three_and(tmp_path, os.link, "other-name.sqlite3")
    before = file_bytes(db)
    with pytest.raises(ValueError, match=r"1 other hard link"):
        restore(backup_of_ten, db)
    assert file_bytes(db) == before and os.stat(db).st_ino == os.stat(other).st_ino
    os.unlink(other)
    restore(backup_of_ten, db)
    assert count_events(db) == 10


def test_restore_through_a_symlink_refuses_while_the_real_file_is_open(tmp_path, backup_of_ten):
    real, link = _db_of_three_and(tmp_path, os.symlink, "link.sqlite3")
    with Holder(real):
        before = sorted(os.listdir(tmp_path))
        with pytest.raises(DatabaseLockedError):
            restore(backup_of_ten, link)
        assert sorted(os.listdir(tmp_path)) == before and os.path.islink(link)
    assert count_events(real) == 3


def test_cli_restore_through_a_symlink(tmp_path, backup_of_ten, capsys):
    real = make_db(str(tmp_path / "db.sqlite3"), users=1, events=3)
    link = str(tmp_path / "link.sqlite3")
    os.symlink(real, link)
    assert main(["--json", "restore", backup_of_ten, link, "--no-keep"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["file"] == os.path.realpath(real) and os.path.islink(link) and count_events(real) == 10
