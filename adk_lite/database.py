"""Open a database file: path and URL resolution, the read-only pre-check,
pragmas, schema creation and versioning, and driver-error translation.

Zero configuration: with no target, the file is ``$ADK_LITE_DB`` if set, else
``.adk/sessions.sqlite3`` under the current directory; folders and the file are
created (the file with mode 0600, which SQLite gives its WAL and SHM files too).

An existing file is checked read-only before any pragma or write touches it (the
SQLite header, its size, our tables, ``schema_version``), so a foreign, corrupt
or newer file is refused and left byte-for-byte unchanged.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import urllib.parse
from typing import Any, Optional, Union

import peewee as pw

from . import errors
from .models import METADATA, SESSIONS, TABLES, make_models

DEFAULT_PATH = os.path.join(".adk", "sessions.sqlite3")
"""Where ``DatabaseSessionService()`` keeps its file when ``$ADK_LITE_DB`` is unset."""
ENV_VAR = "ADK_LITE_DB"
MEMORY = ":memory:"
SCHEMA_VERSION = 2
"""The schema this release writes. Files with a higher version are refused.

History: 1, the first release; 2, ``adk_sessions.incarnation``."""

URL_SCHEMES = ("sqlite://", "sqlite+aiosqlite://", "sqlite+pysqlite://", "adklite://")
"""URL forms accepted as targets, as SQLAlchemy spells them: ``sqlite:///rel.db``,
``sqlite:////abs/path.db``, ``sqlite://`` or ``sqlite:///:memory:`` for memory."""

SYNCHRONOUS = ("normal", "full")

# Migrations: MIGRATIONS[v](conn) upgrades a file from version v to v + 1. All steps
# run in one IMMEDIATE transaction when an older file is opened.


def _add_incarnation(conn: sqlite3.Connection) -> None:
    """Version 1 to 2: give every session a random ``incarnation`` (16 hex digits)."""
    conn.execute(f"ALTER TABLE {SESSIONS} ADD COLUMN incarnation TEXT NOT NULL DEFAULT ''")
    conn.execute(f"UPDATE {SESSIONS} SET incarnation = lower(hex(randomblob(8)))")


MIGRATIONS: dict[int, Any] = {1: _add_incarnation}


def resolve(target: Union[str, os.PathLike, None]) -> str:
    """Turn a target into a file path, or ``":memory:"``.

    Args:
        target: None (zero config: ``$ADK_LITE_DB``, else :data:`DEFAULT_PATH`), a
            path (str or PathLike), ``":memory:"``, or a URL in one of
            :data:`URL_SCHEMES` (so ADK's ``sqlite+aiosqlite:///sessions.db`` works).

    Raises:
        TypeError: not a str, PathLike or None.
        ValueError: an empty path, or a URL of another database (postgresql://...).
    """
    if target is None:
        target = os.environ.get(ENV_VAR) or DEFAULT_PATH
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    if isinstance(target, bytes) or not isinstance(target, str):
        raise TypeError(f"db must be a str path, a PathLike or a sqlite:/// URL, not {type(target).__name__}")
    if "://" in target:
        scheme = target.split("://", 1)[0] + "://"
        if scheme not in URL_SCHEMES:
            raise ValueError(f"db URL {target!r}: only {', '.join(URL_SCHEMES)} URLs name a SQLite file")
        rest = urllib.parse.unquote(target[len(scheme):].split("?", 1)[0])
        if rest in ("", "/", "/" + MEMORY):
            return MEMORY
        if not rest.startswith("/"):
            raise ValueError(f"db URL {target!r}: expected three slashes, as in sqlite:///path/to/file.db")
        target = rest[1:]
    if not target:
        raise ValueError("db must not be an empty path")
    if "\x00" in target:
        raise ValueError("db path contains a NUL character")
    return target


def translate(exc: BaseException, path: str, busy_timeout: float) -> errors.DatabaseError:
    """Map a ``sqlite3`` or ``peewee`` error to the matching :class:`DatabaseError`.

    The message names the file; a lock error also names the busy timeout (seconds).
    """
    if isinstance(exc, UnicodeDecodeError):  # text in the file that is not UTF-8
        return errors.CorruptDatabaseError(f"database {path} is corrupt: it holds text that is not valid UTF-8 ({exc})")
    message = str(exc)
    lowered = message.lower()
    if "locked" in lowered or "busy" in lowered:
        return errors.DatabaseLockedError(
            f"database {path} is locked: another connection held the write lock "
            f"for more than busy_timeout={busy_timeout:g} s ({message})"
        )
    if any(word in lowered for word in ("malformed", "not a database", "disk image", "encrypted", "corrupt",
                                          "could not decode")):
        return errors.CorruptDatabaseError(f"database {path} is corrupt: {message}")
    if any(word in lowered for word in ("unable to open", "readonly", "read-only", "permission")):
        return errors.DatabaseOpenError(f"cannot open or write database {path}: {message}")
    return errors.DatabaseError(f"database {path}: {message}")


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
        DatabaseOpenError: a directory, or unreadable.
        CorruptDatabaseError: not a SQLite database, truncated, or malformed.
        ForeignDatabaseError: a SQLite database whose tables are not adk_lite's.
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
    if info.st_size == 0:
        return None
    # A quiet file is read as immutable=1, so SQLite creates no -wal/-shm beside a file it
    # may refuse. If a -wal appears meanwhile (another process opened it), the read may
    # have overlapped a checkpoint: read again through the WAL, with mode=ro.
    if quiet:
        try:
            tables, row = _read_schema(path, busy_timeout, "immutable=1", info.st_size)
        except errors.DatabaseError:
            if not os.path.exists(wal):
                raise
            quiet = False
        else:
            quiet = not os.path.exists(wal)
    if not quiet:
        tables, row = _read_schema(path, busy_timeout, "mode=ro", None)
    if not tables:
        return None
    if METADATA not in tables or SESSIONS not in tables:
        hint = ""
        if {"sessions", "events"} <= tables:
            hint = " (it looks like a file of google.adk's DatabaseSessionService or SqliteSessionService)"
        raise errors.ForeignDatabaseError(
            f"{path} is a SQLite database but not an adk_lite one: it has tables "
            f"{', '.join(sorted(tables))}{hint}"
        )
    if row is None or not str(row[0]).isdigit():
        raise errors.CorruptDatabaseError(f"database {path} has no valid schema_version in {METADATA}")
    version = int(row[0])
    _check_version(version, path)
    return version


def _size(path: str) -> Optional[int]:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def file_sizes(path: str) -> dict[str, int]:
    """Return the sizes in bytes of a database file ``path`` (``"db"``), its ``-wal``
    (``"wal"``) and ``-shm`` (``"shm"``) files; 0 for a missing one. Opens nothing."""
    return {key: _size(path + suffix) or 0 for suffix, key in (("", "db"), ("-wal", "wal"), ("-shm", "shm"))}


def _file_uri(path: str, mode: str = "mode=ro") -> str:
    """A ``file:`` URI for ``path`` with query ``mode`` (``mode=ro``, ``immutable=1``)."""
    return "file:" + urllib.parse.quote(os.path.abspath(path)) + "?" + mode


def _read_schema(path: str, busy_timeout: float, mode: str, size: Optional[int]) -> tuple[set, Optional[tuple]]:
    """Read the table names and the ``schema_version`` row through a read-only URI.

    With ``size`` (bytes; only when no -wal exists, so the header is final), a file
    shorter than the page count in its header is refused as truncated.
    """
    try:
        conn = sqlite3.connect(_file_uri(path, mode), uri=True, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as e:
        raise translate(e, path, busy_timeout) from e
    try:
        if size is not None:
            expected = conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
            if size < expected:
                raise errors.CorruptDatabaseError(
                    f"database {path} is truncated: {size} bytes, its header says {expected}")
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        row = None
        if METADATA in tables:
            row = conn.execute(f"SELECT value FROM {METADATA} WHERE key = 'schema_version'").fetchone()
        return tables, row
    except (sqlite3.Error, UnicodeDecodeError) as e:
        if "not a database" in str(e):
            raise errors.CorruptDatabaseError(f"{path} is not a SQLite database ({e})") from e
        raise translate(e, path, busy_timeout) from e
    finally:
        conn.close()


def _check_version(version: int, path: str) -> None:
    if version > SCHEMA_VERSION:
        raise errors.SchemaVersionError(
            f"database {path} has schema_version {version}, newer than this adk_lite "
            f"understands ({SCHEMA_VERSION}); upgrade adk_lite to open it"
        )
    if version < SCHEMA_VERSION and any(v not in MIGRATIONS for v in range(version, SCHEMA_VERSION)):
        raise errors.SchemaVersionError(f"database {path} has schema_version {version}, which cannot be migrated")


class _TrackedSqliteDatabase(pw.SqliteDatabase):
    """A Peewee SqliteDatabase with a pool of connections for the store.

    Peewee's own connection (one per thread) is used only at open, to create or
    migrate the schema. Calls take a connection with :meth:`acquire` and give it
    back with :meth:`release`; the most recently released one is taken next (its
    page cache is the freshest). The pool holds as many connections as calls ever
    ran at once, whatever the number of threads that made them, so a process that
    makes many short-lived threads keeps a bounded number of descriptors. A
    ``":memory:"`` database has one connection, shared (callers serialize on
    ``Database.lock``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle: list = []
        self._idle_lock = threading.Lock()

    def acquire(self) -> sqlite3.Connection:
        """Take an idle connection, or open one with this database's pragmas."""
        if not self.thread_safe:  # ":memory:": the one connection that holds the data
            return self.connection()
        with self._idle_lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def release(self, conn: sqlite3.Connection) -> None:
        """Give back a connection taken with :meth:`acquire` (closed instead if a
        failure left it inside a transaction)."""
        if not self.thread_safe:
            return
        if conn.in_transaction:
            conn.close()
            return
        with self._idle_lock:
            self._idle.append(conn)

    def close_all(self) -> None:
        """Close every pooled connection and this thread's Peewee connection. The
        caller makes sure no call is using one (see ``Store.close``)."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        if not self.is_closed():
            self._close(self._state.conn)
            self._state.reset()


class Database:
    """One open database: the Peewee handle, its models, and the file's facts.

    Args:
        target: see :func:`resolve`.
        synchronous: ``"normal"`` (default; survives a process crash) or ``"full"``
            (also survives power loss or an OS crash), SQLite's ``synchronous`` pragma.
        busy_timeout: seconds to wait for another connection's write lock before
            raising :class:`DatabaseLockedError`; default 5.
        read_only: open an existing file through ``mode=ro`` connections: no
            file or folder is created, no schema is created or migrated, no pragma
            that writes is set (``journal_mode`` is left as it is), and the main
            file's bytes and mtime stay unchanged. SQLite still makes ``-wal`` and
            ``-shm`` files to read a WAL database; :meth:`close` removes them when
            they were not there before (through SQLite's own last-close cleanup,
            which writes nothing to the main file when the WAL is empty).

    Attributes:
        path: the file path, or ``":memory:"``.
        is_memory: True for an in-memory database (one connection shared by all
            threads, guarded by :attr:`lock`).
        lock: a lock every caller must hold around its statements when
            ``is_memory``; None for a file (each thread has its own connection).
        models: the namespace from :func:`adk_lite.models.make_models`.
        peewee: the Peewee database.

    Raises:
        TypeError, ValueError: a bad ``target``, ``synchronous`` or ``busy_timeout``.
        DatabaseError: the subclasses :func:`inspect_file` raises, and
            :class:`DatabaseOpenError` when the file or its folder cannot be made,
            or, with ``read_only``, when the file is missing or empty.
    """

    def __init__(self, target: Union[str, os.PathLike, None] = None, *, synchronous: str = "normal",
                 busy_timeout: float = 5.0, read_only: bool = False) -> None:
        if not isinstance(synchronous, str) or synchronous.lower() not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, got {synchronous!r}")
        if type(busy_timeout) not in (int, float) or not 0 <= busy_timeout < 1e6:
            raise ValueError(f"busy_timeout must be a number of seconds >= 0, got {busy_timeout!r}")
        self.path = resolve(target)
        self.busy_timeout = float(busy_timeout)
        self.synchronous = synchronous.lower()
        self.is_memory = self.path == MEMORY
        self.read_only = bool(read_only)
        if self.read_only:
            self._open_read_only()
            return
        if not self.is_memory:
            self._prepare_file()
        pragmas = [("journal_mode", "wal"), ("synchronous", self.synchronous),
                   ("foreign_keys", 1), ("busy_timeout", int(self.busy_timeout * 1000))]
        self.peewee = _TrackedSqliteDatabase(
            self.path, pragmas=pragmas, timeout=self.busy_timeout, check_same_thread=False,
            thread_safe=not self.is_memory,
        )
        self.lock = threading.RLock() if self.is_memory else None
        self.models = make_models(self.peewee)
        try:
            self._ensure_schema()
        except BaseException:
            self.peewee.close_all()
            raise

    def _open_read_only(self) -> None:
        path = self.path
        if self.is_memory:
            raise ValueError("read_only needs a database file, not ':memory:'")
        if not os.path.lexists(path):
            raise errors.DatabaseOpenError(f"database {path} does not exist")
        self._had_side_files = any(os.path.lexists(path + s) for s in ("-wal", "-shm"))
        if inspect_file(path, self.busy_timeout) is None:
            raise errors.DatabaseOpenError(f"database {path} is empty: it has no adk_lite tables yet")
        pragmas = [("query_only", 1), ("busy_timeout", int(self.busy_timeout * 1000))]
        self.peewee = _TrackedSqliteDatabase(
            _file_uri(path), uri=True, pragmas=pragmas, timeout=self.busy_timeout,
            check_same_thread=False)
        self.lock = None
        self.models = make_models(self.peewee)

    def _prepare_file(self) -> None:
        path = self.path
        if os.path.isdir(path):
            raise errors.DatabaseOpenError(f"database path {path} is a directory, not a file")
        if os.path.exists(path):
            inspect_file(path, self.busy_timeout)
            return
        try:
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
        except FileExistsError:
            inspect_file(path, self.busy_timeout)
        except OSError as e:
            raise errors.DatabaseOpenError(f"cannot create database {path}: {e.strerror or e}") from e

    def _ensure_schema(self) -> None:
        """Create the tables, or check and migrate them, in one IMMEDIATE transaction.

        A file already at :data:`SCHEMA_VERSION` is only read: opening it does not
        wait for (or fail on) another connection's write lock.
        """
        try:
            conn = self.peewee.connection()
            if self._current(conn):
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if METADATA in tables:
                    version = int(conn.execute(
                        f"SELECT value FROM {METADATA} WHERE key = 'schema_version'").fetchone()[0])
                    _check_version(version, self.path)
                    for step in range(version, SCHEMA_VERSION):
                        MIGRATIONS[step](conn)
                elif tables:
                    raise errors.ForeignDatabaseError(f"{self.path} is a SQLite database but not an adk_lite one")
                else:
                    version = 0
                    self.peewee.create_tables(self.models.all, safe=True)
                if version != SCHEMA_VERSION:
                    conn.execute(f"INSERT OR REPLACE INTO {METADATA} (key, value) VALUES ('schema_version', ?)",
                                 (str(SCHEMA_VERSION),))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, pw.PeeweeException) as e:
            raise translate(e, self.path, self.busy_timeout) from e
        finally:
            if not self.is_memory:  # calls use the pool; this connection was for the schema only
                self.peewee.close()

    @staticmethod
    def _current(conn: sqlite3.Connection) -> bool:
        """True when the file already holds adk_lite's tables at :data:`SCHEMA_VERSION` (a read)."""
        if not conn.execute(f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{METADATA}'").fetchone():
            return False
        row = conn.execute(f"SELECT value FROM {METADATA} WHERE key = 'schema_version'").fetchone()
        return row is not None and row[0] == str(SCHEMA_VERSION)

    def file_sizes(self) -> dict[str, int]:
        """Return the sizes in bytes of the main file, its ``-wal`` and ``-shm``
        (0 for a missing one, and all 0 in memory)."""
        return {"db": 0, "wal": 0, "shm": 0} if self.is_memory else file_sizes(self.path)

    def close(self) -> None:
        """Close every connection this database opened, in every thread.

        With ``read_only``, also remove the ``-wal``/``-shm`` files reading made
        when none was there at open: a read-write connection that reads and
        closes lets SQLite delete them if it is the last one on the file (it
        checks with its own locks, so another process's files are never removed).
        """
        self.peewee.close_all()
        if self.read_only and not self._had_side_files and os.path.lexists(self.path + "-wal"):
            try:
                conn = sqlite3.connect(_file_uri(self.path, "mode=rw"),
                                       uri=True, timeout=0, isolation_level=None)
                try:
                    conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
                finally:
                    conn.close()
            except sqlite3.Error:
                pass  # unwritable file or folder, or busy: the side files stay, as SQLite leaves them


__all__ = ["Database", "resolve", "inspect_file", "translate", "file_sizes", "DEFAULT_PATH", "ENV_VAR",
           "SCHEMA_VERSION", "TABLES"]
