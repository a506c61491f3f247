"""The read-only check of an existing SQLite file before the backend opens it
(:func:`inspect_file`): its header and size, adk_lite's tables with their columns
and unique keys, ``schema_version``, and nothing in its schema that adk_lite does
not make at that version (:mod:`adk_lite.schema_check`); and the ``file:`` URI every
connection of the backend opens a path with (:func:`file_uri`)."""

from __future__ import annotations

import os
import sqlite3
import stat
import urllib.parse
from typing import Optional

from . import errors, schema, schema_check
from .models import METADATA, TABLES
from .sqlite_errors import translate


def file_uri(path: str, mode: str = "mode=ro") -> str:
    """A ``file:`` URI for ``path`` with query ``mode`` (``mode=ro``, ``immutable=1``)."""
    return "file:" + urllib.parse.quote(os.path.abspath(path), safe="/") + "?" + mode


def inspect_file(path: str, busy_timeout: float = 5.0) -> Optional[int]:
    """Check an existing file read-only and return its ``schema_version``.

    Nothing is written to the file, and no ``-wal``/``-shm`` is left beside it: it is
    read as ``immutable=1`` when it has no ``-wal`` (else through ``mode=ro``). A file
    other connections are writing (it has a ``-wal``) is read through the WAL and is
    not judged by its size, which a checkpoint may be growing.

    The file is read only through SQLite, never with ``open()``: closing any descriptor
    on a database drops every POSIX lock the process holds on it, those of its own
    open SQLite connections included, and another process would then take itself for
    the last user and delete the live WAL (SQLite's "How To Corrupt", 2.2).

    Returns:
        The file's schema version, or None for an empty file (0 bytes, or a SQLite
        database with no tables), which may be initialized.

    Raises:
        DatabaseOpenError: a directory or another non-regular file, or unreadable.
        CorruptDatabaseError: not a SQLite database, truncated, or malformed.
        ForeignDatabaseError: a SQLite database whose tables are not adk_lite's: not all
            four of :data:`TABLES`, or not their columns (those of its schema version,
            see :func:`adk_lite.schema.expected_columns`) or unique keys; or whose
            schema is not exactly what adk_lite makes at its version: an extra or
            changed table, index, trigger or view, or a missing one
            (:func:`adk_lite.schema_check.check_objects`).
        SchemaVersionError: written by a newer adk_lite.
    """
    wal = path + "-wal"
    quiet = not os.path.exists(wal)  # no -wal: no connection has the file open, nothing pending
    try:
        info = os.stat(path)
    except OSError as e:
        raise errors.DatabaseOpenError(f"cannot read database {path}: {e.strerror or e}") from e
    if stat.S_ISDIR(info.st_mode):
        raise errors.DatabaseOpenError(f"database path {path} is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):  # a FIFO would block SQLite's open; a device is no database
        raise errors.DatabaseOpenError(f"database path {path} is not a regular file")
    if info.st_size == 0:
        return None
    # A quiet file is read as immutable=1, so SQLite creates no -wal/-shm beside a file it
    # may refuse. If a -wal appears meanwhile (another process opened it), the read may
    # have overlapped a checkpoint: read again through the WAL, with mode=ro.
    if quiet:
        try:
            tables, columns, keys, row, objects = _read_schema(path, busy_timeout, "immutable=1", info.st_size)
        except errors.DatabaseError:
            if not os.path.exists(wal):
                raise
            quiet = False
        else:
            quiet = not os.path.exists(wal)
    if not quiet:
        tables, columns, keys, row, objects = _read_schema(path, busy_timeout, "mode=ro", None)
    if not tables:
        return None
    if not tables & set(TABLES):
        hint = ""
        if {"sessions", "events"} <= tables:
            hint = " (it looks like a file of google.adk's DatabaseSessionService or SqliteSessionService)"
        raise errors.ForeignDatabaseError(
            f"{path} is a SQLite database but not an adk_lite one: it has tables "
            f"{', '.join(sorted(tables))}{hint}"
        )
    missing = [t for t in TABLES if t not in tables]
    if missing:
        raise errors.ForeignDatabaseError(
            f"{path} is not a whole adk_lite database: it lacks the tables {', '.join(missing)}")
    schema.check_columns({METADATA: columns[METADATA]}, keys, schema.SCHEMA_VERSION, path)  # to read the version
    version = schema.check_version(row, path)
    missing = sorted(schema.tables_of(version) - tables)
    if missing:
        raise errors.ForeignDatabaseError(
            f"{path} is not a whole adk_lite database: it lacks the tables {', '.join(missing)} "
            f"of schema_version {version}")
    schema.check_columns(columns, keys, version, path)
    schema_check.check_objects(objects, version, path)
    return version


def _read_schema(path: str, busy_timeout: float, mode: str, size: Optional[int]
                 ) -> tuple[set, dict[str, dict[str, bool]], dict[str, set[frozenset]], Optional[tuple], list]:
    """Read the table names, the columns of :data:`TABLES` (name -> NOT NULL without a
    default), their unique keys (column sets), the ``schema_version`` row and the rows
    of ``sqlite_master`` (:func:`adk_lite.schema_check.read_objects`) through a
    read-only URI.

    With ``size`` (bytes; only when no -wal exists, so the header is final), a file
    shorter than the page count in its header is refused as truncated.
    """
    try:
        conn = sqlite3.connect(file_uri(path, mode), uri=True, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as e:
        raise translate(e, path, busy_timeout) from e
    try:
        if size is not None:
            expected = conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
            if size < expected:
                raise errors.CorruptDatabaseError(
                    f"database {path} is truncated: {size} bytes, its header says {expected}")
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        columns, keys = {}, {}
        added = sorted(schema.LATER_TABLES)
        for table in (t for t in (*TABLES, *added) if t in tables):
            info = conn.execute('SELECT name, "notnull", dflt_value, pk FROM pragma_table_info(?)', (table,)).fetchall()
            columns[table] = {name: bool(notnull) and default is None for name, notnull, default, _ in info}
            keys[table] = {frozenset(name for name, _, _, pk in info if pk)}
            for (index,) in conn.execute('SELECT name FROM pragma_index_list(?) WHERE "unique"', (table,)).fetchall():
                keys[table].add(frozenset(r[0] for r in conn.execute("SELECT name FROM pragma_index_info(?)", (index,))))
        row = None
        if METADATA in tables and "key" in columns[METADATA] and "value" in columns[METADATA]:
            row = conn.execute(f"SELECT value FROM {METADATA} WHERE key = 'schema_version'").fetchone()
        return tables, columns, keys, row, schema_check.read_objects(conn)
    except (sqlite3.Error, UnicodeDecodeError) as e:
        if "not a database" in str(e):
            raise errors.CorruptDatabaseError(f"{path} is not a SQLite database ({e})") from e
        raise translate(e, path, busy_timeout) from e
    finally:
        conn.close()
