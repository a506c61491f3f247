"""The SQLite backend's own rules: driver errors translated by SQLite's result code."""

from __future__ import annotations

import sqlite3

import pytest

from adk_lite import CorruptDatabaseError, DatabaseError, DatabaseLockedError, DatabaseOpenError
from adk_lite.sqlite import translate


def _error(name, message="boom"):
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorname = name
    return exc


@pytest.mark.parametrize("name, kind", [
    ("SQLITE_BUSY", DatabaseLockedError), ("SQLITE_BUSY_SNAPSHOT", DatabaseLockedError),
    ("SQLITE_LOCKED_SHAREDCACHE", DatabaseLockedError), ("SQLITE_CORRUPT", CorruptDatabaseError),
    ("SQLITE_NOTADB", CorruptDatabaseError), ("SQLITE_CANTOPEN", DatabaseOpenError),
    ("SQLITE_READONLY_DBMOVED", DatabaseOpenError), ("SQLITE_PERM", DatabaseOpenError),
    ("SQLITE_ERROR", DatabaseError), ("SQLITE_IOERR_SHORT_READ", DatabaseError),
])
def test_errors_are_translated_by_result_code_not_words(name, kind):
    """The result code decides, even when the message's words would say otherwise."""
    out = translate(_error(name, "a message that says locked and malformed"), "x.db", 2.0)
    assert type(out) is kind and "x.db" in str(out)


@pytest.mark.parametrize("message, kind", [
    ("database is locked", DatabaseLockedError), ("database disk image is malformed", CorruptDatabaseError),
    ("unable to open database file", DatabaseOpenError), ("no such table: t", DatabaseError),
])
def test_without_a_result_code_the_message_decides(message, kind):
    """Python 3.10's sqlite3 gives no sqlite_errorname."""
    assert type(translate(sqlite3.OperationalError(message), "x.db", 2.0)) is kind


def test_a_real_lock_names_the_busy_timeout(tmp_path):
    path = str(tmp_path / "l.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError) as info:
            other.execute("BEGIN IMMEDIATE")
        out = translate(info.value, path, 0.25)
        assert isinstance(out, DatabaseLockedError) and "busy_timeout=0.25 s" in str(out)
    finally:
        other.close()
        holder.execute("ROLLBACK")
        holder.close()


def test_text_that_is_not_utf8_is_corruption():
    out = translate(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "x.db", 5.0)
    assert isinstance(out, CorruptDatabaseError) and "not valid UTF-8" in str(out)
