"""The SQLite backend: open a database file, check it first, set its pragmas,
keep a pool of connections, and speak SQLite where the store needs its dialect
(transactions, error translation, maintenance, file facts).

Zero configuration: with no target, the file is ``$ADK_LITE_DB`` if set, else
``.adk/sessions.sqlite3`` under the current directory; folders and the file are
created (the file with mode 0600, which SQLite gives its WAL and SHM files too).

An existing file is checked read-only before any pragma or write touches it (the
SQLite header, its size, our four tables with their columns and unique keys,
``schema_version``, and nothing in its schema that adk_lite does not make at that
version: :mod:`adk_lite.schema_check`), so a foreign, corrupt or newer file is refused and left
byte-for-byte unchanged; so is a file that cannot be written, for a read-write open.

Names never reach SQLite as they were given: :func:`adk_lite.target.parse_target`
makes one path, and SQLite gets a ``file:`` URI built here from its absolute path,
fully quoted.

The pre-open check is :mod:`adk_lite.sqlite_check`'s, error translation
:mod:`adk_lite.sqlite_errors`', full-text search :mod:`adk_lite.sqlite_search`'s.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from typing import Any, Callable, Iterator, Optional, Union

import peewee as pw

from . import errors, schema, schema_check, sqlite_search
from .models import EVENTS_FTS, MEMORIES_FTS, METADATA, make_models
from .pool import IdleConnections
from .sqlite_check import file_uri as _file_uri, inspect_file
from .sqlite_errors import error_class as _error_class, translate
from .target import MEMORY, merge_options, check_busy_timeout, check_synchronous, parse_target

BACKUP_STEP_PAGES = 4096
"""Pages copied per step of a backup (16 MiB at 4 KiB pages): how often progress is reported."""

CLOSE_CHECKPOINT_TIMEOUT = 1.0
"""The longest ``close()`` waits (seconds) for other connections before its checkpoint gives up."""

MAX_PATH_BYTES = 504
"""The longest absolute file path (UTF-8 bytes) SQLite opens: its unix VFS takes 512,
with room for the ``-journal`` suffix."""





def _size(path: str) -> Optional[int]:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def file_sizes(path: str) -> dict[str, int]:
    """Return the sizes in bytes of a database file ``path`` (``"db"``), its ``-wal``
    (``"wal"``) and ``-shm`` (``"shm"``) files; 0 for a missing one. Opens nothing."""
    return {key: _size(path + suffix) or 0 for suffix, key in (("", "db"), ("-wal", "wal"), ("-shm", "shm"))}


def verify_copy(path: str, busy_timeout: float = 5.0) -> int:
    """Check a backup file read-only before it replaces a database: adk_lite's
    tables at a schema version this release reads, and nothing else in its schema
    (:func:`inspect_file`), then SQLite's ``integrity_check`` and ``foreign_key_check``,
    and FTS5's ``integrity-check`` of the search index with its agreement with the
    events (:func:`adk_lite.schema_check.search_index_problems`).

    Returns:
        The backup's schema version.

    Raises:
        DatabaseOpenError: missing, not a regular file, unreadable, or empty.
        CorruptDatabaseError: not SQLite, truncated, or a check found a problem.
        ForeignDatabaseError, SchemaVersionError: as :func:`inspect_file`.
    """
    version = inspect_file(path, busy_timeout)
    if version is None:
        raise errors.DatabaseOpenError(f"{path} is empty: it holds no adk_lite tables")
    mode = "immutable=1" if not os.path.exists(path + "-wal") else "mode=ro"
    try:
        conn = sqlite3.connect(_file_uri(path, mode), uri=True, timeout=busy_timeout, isolation_level=None)
        try:
            integrity, foreign = SqliteBackend.integrity(conn)
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise translate(e, path, busy_timeout) from e
    if integrity != ["ok"] or foreign:
        raise errors.CorruptDatabaseError(
            f"{path} fails SQLite's checks: {'; '.join(integrity[:3])}"
            + (f"; {len(foreign)} rows without a parent (foreign_key_check)" if foreign else ""))
    return version


def copy_database(src: str, dest: str, busy_timeout: float = 5.0) -> int:
    """Copy the quiet database file ``src`` (no other connection on it) into the
    empty file ``dest`` through SQLite (never ``open()`` on ``src``: see
    :func:`inspect_file`); returns the pages copied."""
    mode = "immutable=1" if not os.path.exists(src + "-wal") else "mode=ro"
    try:
        conn = sqlite3.connect(_file_uri(src, mode), uri=True, timeout=busy_timeout, isolation_level=None)
        try:
            return SqliteBackend.backup(conn, dest, lambda done, total: None)
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise translate(e, src, busy_timeout) from e


def rebuild_search(path: str, busy_timeout: float = 5.0) -> None:
    """Rebuild the search index of the database file ``path`` from its stored text
    (:func:`adk_lite.schema_check.rebuild_search_index`): for a file no other
    connection uses (a restore's temporary copy, already checked by :func:`verify_copy`).
    SQLite removes the ``-wal`` it makes when this connection closes."""
    try:
        conn = sqlite3.connect(_file_uri(path, "mode=rw"), uri=True, timeout=busy_timeout, isolation_level=None)
        try:
            schema_check.rebuild_search_index(conn)
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise translate(e, path, busy_timeout) from e


@contextlib.contextmanager
def exclusive(path: str) -> Iterator[None]:
    """Hold SQLite's EXCLUSIVE lock on the database file ``path`` for the body of
    the ``with``: proof that no connection, in this process or another, has it
    open, and that none opens it meanwhile.

    How it tells: every connection to a WAL database keeps a SHARED lock on the
    file from its first read until it closes, so a connection in
    ``locking_mode=EXCLUSIVE`` gets ``BEGIN EXCLUSIVE`` only when no other
    connection is open (SQLite's own locks, so the process's POSIX locks are never
    dropped by an ``open()``/``close()`` of ours). Once held, the file is switched
    to ``journal_mode=DELETE``: what its WAL holds is checkpointed into it and the
    ``-wal`` removed, so the file alone is complete. A file SQLite cannot read
    (corrupt) cannot be locked: it is let through only when it has no ``-wal``
    and no ``-shm`` (no WAL connection can be using it).

    Raises:
        DatabaseLockedError: another connection has the file open.
        DatabaseOpenError: the file cannot be opened for writing, or is unreadable
            with ``-wal``/``-shm`` files beside it.
    """
    conn = None
    try:
        conn = sqlite3.connect(_file_uri(path, "mode=rw"), uri=True, timeout=0, isolation_level=None)
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=DELETE").fetchall()
    except sqlite3.Error as e:
        if conn is not None:
            conn.close()
            conn = None
        kind = _error_class(e)
        if kind is errors.DatabaseLockedError:
            raise errors.DatabaseLockedError(
                f"database {path} is open in another process (or another connection of this one): stop it "
                "first (SQLite's EXCLUSIVE lock was refused)") from e
        if kind is not errors.CorruptDatabaseError or any(os.path.lexists(path + s) for s in ("-wal", "-shm")):
            raise translate(e, path, 0) from e
    try:
        yield
    finally:
        if conn is not None:
            conn.close()




class _PooledSqliteDatabase(pw.SqliteDatabase):
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
        self._idle = IdleConnections()

    def acquire(self) -> sqlite3.Connection:
        """Take an idle connection, or open one with this database's pragmas."""
        if not self.thread_safe:  # ":memory:": the one connection that holds the data
            return self.connection()
        return self._idle.take() or self._connect()

    def release(self, conn: sqlite3.Connection) -> None:
        """Give back a connection taken with :meth:`acquire` (closed instead if a
        failure left it inside a transaction)."""
        if not self.thread_safe:
            return
        if conn.in_transaction:
            conn.close()
            return
        self._idle.give(conn)

    def close_all(self) -> None:
        """Close every pooled connection and this thread's Peewee connection. The
        caller makes sure no call is using one (see ``Store.close``)."""
        self._idle.close_all()
        if not self.is_closed():
            self._close(self._state.conn)
            self._state.reset()


def _check_writable(path: str) -> None:
    """Refuse, before SQLite opens it, an existing file that cannot be written (SQLite
    would open it read-only, and make ``-wal``/``-shm`` files that stay), or that sits
    in a read-only folder where its ``-wal`` does not exist yet.

    Raises:
        DatabaseOpenError: naming the file or folder.
    """
    if not os.access(path, os.W_OK):
        raise errors.DatabaseOpenError(
            f"cannot write database {path}: the file is read-only (open it with read_only=True to read it)")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(path + "-wal") and not os.access(folder, os.W_OK | os.X_OK):
        raise errors.DatabaseOpenError(
            f"cannot write database {path}: its folder {folder} is read-only, and SQLite must create "
            f"{os.path.basename(path)}-wal there (open it with read_only=True to read it)")


class SqliteBackend:
    """One open database: the Peewee handle, its models, and the file's facts.

    Args:
        target: see :func:`parse_target`. A URL's options (``?synchronous=full``)
            apply as these keywords would. A keyword left at its default defers to
            the URL; a keyword set to another value than the URL's is refused
            (ValueError naming both), so the two never silently disagree.
        synchronous: ``"normal"`` (default; survives a process crash) or ``"full"``
            (also survives power loss or an OS crash), SQLite's ``synchronous`` pragma.
        busy_timeout: seconds to wait for another connection's write lock before
            raising :class:`DatabaseLockedError`; default 5.
        read_only: a bool. True: open an existing file through ``mode=ro`` connections: no
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
        TypeError, ValueError: a bad ``target``, ``synchronous``, ``busy_timeout``
            or ``read_only``, a keyword in conflict with the URL's option, or an
            absolute path longer than :data:`MAX_PATH_BYTES`.
        DatabaseError: the subclasses :func:`inspect_file` raises, and
            :class:`DatabaseOpenError` when the file or its folder cannot be made,
            when (not ``read_only``) the file or its folder is read-only, or, with
            ``read_only``, when the file is missing or empty.
    """

    def __init__(self, target: Union[str, os.PathLike, None] = None, *, synchronous: str = "normal",
                 busy_timeout: float = 5.0, read_only: bool = False) -> None:
        if not isinstance(read_only, bool):
            raise TypeError(f"read_only must be a bool, not {type(read_only).__name__}")
        given = {"synchronous": check_synchronous(synchronous), "busy_timeout": check_busy_timeout(busy_timeout),
                 "read_only": read_only}
        self.path, options = parse_target(target)
        chosen = merge_options(options, given)
        self.busy_timeout = chosen["busy_timeout"]
        self.synchronous = chosen["synchronous"]
        self.is_memory = self.path == MEMORY
        self.read_only = chosen["read_only"]
        self._absolute = self.path if self.is_memory else os.path.abspath(self.path)  # fixed at open, whatever chdir
        if not self.is_memory and len(self._absolute.encode()) > MAX_PATH_BYTES:
            raise ValueError(f"db path {self.path!r} is too long: SQLite opens absolute paths of at most "
                             f"{MAX_PATH_BYTES} bytes")
        if self.read_only:
            self._open_read_only()
            return
        if not self.is_memory:
            self._prepare_file()
        # secure_delete: every delete (delete_session, trim, prune, a state value replaced)
        # overwrites what it frees with zeros, whatever the build's default (Debian's is on,
        # python.org's is off), so a later erase finds no copy of a user's words in free space
        pragmas = [("journal_mode", "wal"), ("synchronous", self.synchronous),
                   ("foreign_keys", 1), ("busy_timeout", int(self.busy_timeout * 1000)), ("secure_delete", 1)]
        # A file is opened through mode=rw: SQLite never creates it (only _prepare_file
        # does, 0600), and every pooled connection opens the path resolved here.
        self.peewee = _PooledSqliteDatabase(
            self.path if self.is_memory else _file_uri(self.path, "mode=rw"), uri=not self.is_memory,
            pragmas=pragmas, timeout=self.busy_timeout, check_same_thread=False, thread_safe=not self.is_memory,
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
        self.peewee = _PooledSqliteDatabase(
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
            _check_writable(path)
            return
        created = []  # the folders to make, deepest first: removed again if the file cannot be made
        parent = os.path.dirname(path)
        while parent and not os.path.lexists(parent):
            created.append(parent)
            parent = os.path.dirname(parent)
        try:
            if created:
                os.makedirs(created[0], exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
        except FileExistsError:
            inspect_file(path, self.busy_timeout)
            _check_writable(path)
        except OSError as e:
            for folder in created:
                try:
                    os.rmdir(folder)
                except FileNotFoundError:
                    continue
                except OSError:
                    break  # not empty: someone else's now
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
                    version = schema.check_version(conn.execute(
                        f"SELECT value FROM {METADATA} WHERE key = 'schema_version'").fetchone(), self.path)
                    for step in range(version, schema.SCHEMA_VERSION):
                        schema.MIGRATIONS[step](conn)
                elif tables:
                    raise errors.ForeignDatabaseError(f"{self.path} is a SQLite database but not an adk_lite one")
                else:
                    version = 0
                    schema.create_all(self.peewee, self.models, conn)
                if version != schema.SCHEMA_VERSION:
                    conn.execute(f"INSERT OR REPLACE INTO {METADATA} (key, value) VALUES ('schema_version', ?)",
                                 (str(schema.SCHEMA_VERSION),))
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
        return row is not None and row[0] == str(schema.SCHEMA_VERSION)

    # -- the dialect: what the store asks of its backend ---------------------------
    SINGLE_WRITER = True
    """SQLite lets one connection write at a time, so the store may gather the appends
    waiting for it into one transaction (group commit: no lock-order deadlock is possible)."""
    PIPELINED = False
    """Statements run in-process: one ``IN (json_each(?))`` lookup of a batch's ids."""
    QUERY_SYNTAX = "FTS5 query"
    """What ``search_events(raw=True)`` takes: FTS5's query syntax."""
    BEGIN_WRITE = "BEGIN IMMEDIATE"
    """Every write takes the write lock at once: a deferred transaction that reads then
    writes fails at once under a second writer, whatever the busy timeout."""
    BEGIN_READ = "BEGIN"
    """Reads that need one snapshot: a deferred transaction."""
    DRIVER_ERRORS = (sqlite3.Error, pw.PeeweeException)
    """What the driver raises; the store turns it into adk_lite's errors with :meth:`translate`."""
    NO_LIMIT = -1
    """The ``LIMIT`` value meaning no limit (a negative one, on SQLite)."""
    IS_FILE = True
    """One file (or ``:memory:``): backup copies its pages."""
    check_json = None
    """SQLite stores any JSON text: no extra check before writing."""
    check_keys = None
    """SQLite's index entries have no size limit: no extra check before writing."""

    def translate(self, exc: BaseException) -> errors.DatabaseError:
        """The :class:`~adk_lite.errors.DatabaseError` for a driver error (see :func:`translate`)."""
        return translate(exc, self.path, self.busy_timeout)

    def json_array_values(self) -> str:
        """SQL for the values of a JSON array given as one parameter (a subquery)."""
        return f"(SELECT value FROM json_each({self.peewee.param}))"

    def json_tuples(self, width: int) -> str:
        """SQL for the rows of a JSON array of ``width``-element arrays given as one
        parameter (a subquery with columns ``k0`` .. ``k<width-1>``)."""
        columns = ", ".join(f"json_extract(value, '$[{i}]') AS k{i}" for i in range(width))
        return f"(SELECT {columns} FROM json_each({self.peewee.param}))"

    def search(self, conn: sqlite3.Connection, match: str, raw: bool, filters: list[tuple[str, str]],
               limit: int, after: Optional[tuple[float, int]]) -> list[tuple]:
        """One page of full-text hits from the FTS5 index, ranked by bm25 (lower is
        better): :func:`adk_lite.sqlite_search.search` (``raw`` unused: both forms are
        FTS5 syntax).

        Raises:
            DatabaseError: the file has no index yet (schema_version 3 opened read-only).
        """
        return sqlite_search.search(self, conn, match, filters, limit, after)

    @staticmethod
    def match_query(text: str) -> str:
        """The FTS5 query for plain ``text``: :func:`adk_lite.sqlite_search.match_query`."""
        return sqlite_search.match_query(text)

    @staticmethod
    def match_error(query: str) -> Optional[str]:
        """SQLite's message for an FTS5 query it refuses, or None when it is valid:
        :func:`adk_lite.sqlite_search.match_error`."""
        return sqlite_search.match_error(query)

    @staticmethod
    def tables(conn: sqlite3.Connection) -> set[str]:
        """The names of the file's tables."""
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def facts(self, conn: sqlite3.Connection) -> dict[str, Any]:
        """What ``get_stats`` reports of the file besides counts: ``free_pages``,
        ``page_size`` (bytes), ``journal_mode``, ``sqlite_version``, ``synchronous``,
        ``path`` and the sizes in bytes of the main file, its WAL and SHM
        (``db_bytes``, ``wal_bytes``, ``shm_bytes``), with ``total_bytes`` (main file +
        WAL) and ``total_mib``."""
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        sizes = self.file_sizes()
        total = sizes["db"] + sizes["wal"]
        return {"free_pages": one("PRAGMA freelist_count"), "page_size": one("PRAGMA page_size"),
                "journal_mode": one("PRAGMA journal_mode"), "sqlite_version": sqlite3.sqlite_version,
                "synchronous": self.synchronous, "path": self.path, "db_bytes": sizes["db"],
                "wal_bytes": sizes["wal"], "shm_bytes": sizes["shm"], "total_bytes": total,
                "total_mib": round(total / 2**20, 3)}

    @staticmethod
    def integrity(conn: sqlite3.Connection) -> tuple[list[str], list[tuple]]:
        """SQLite's own checks: ``(integrity_check lines (["ok"] when sound),
        foreign_key_check rows (table, rowid, parent table))``. When
        ``integrity_check`` passes, the lines are those of the search index's own
        check instead (FTS5's ``integrity-check``, which ``integrity_check`` does not
        run, and the index's agreement with the events:
        :func:`adk_lite.schema_check.search_index_problems`) and of the counts per app
        (:func:`adk_lite.schema_check.count_problems`), if they find any."""
        lines = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        if lines == ["ok"]:
            lines = schema_check.search_index_problems(conn) + schema_check.count_problems(conn) or lines
        return lines, [tuple(r[:3]) for r in conn.execute("PRAGMA foreign_key_check")]

    @staticmethod
    def schema_problems(conn: sqlite3.Connection, version: Optional[int]) -> list[str]:
        """What in the file's schema adk_lite does not make at schema ``version`` (an
        extra or changed table, index, trigger or view, or a missing one), one line
        each (:func:`adk_lite.schema_check.object_problems`); ``[]`` without a version."""
        if version is None or version > schema.SCHEMA_VERSION:
            return []
        return schema_check.object_problems(schema_check.read_objects(conn), version)

    @staticmethod
    def vacuum(conn: sqlite3.Connection) -> None:
        """Count ``adk_counts`` again from the rows (:func:`adk_lite.schema.recount`, one
        IMMEDIATE transaction: the repair for counts another tool's ``REPLACE`` skewed),
        then checkpoint the WAL (TRUNCATE), VACUUM, checkpoint again, optimize (outside
        a transaction; VACUUM holds the write lock while it rewrites the file)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            schema.recount(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        conn.execute("PRAGMA optimize")

    @staticmethod
    @contextlib.contextmanager
    def secure_delete(conn: sqlite3.Connection) -> Iterator[None]:
        """Turn ``PRAGMA secure_delete`` on for the statements run inside (SQLite then
        overwrites deleted content with zeros), and back to what it was after: the
        setting belongs to the connection, which goes back to the pool."""
        before = conn.execute("PRAGMA secure_delete").fetchone()[0]
        conn.execute("PRAGMA secure_delete = 1")
        try:
            yield
        finally:
            conn.execute(f"PRAGMA secure_delete = {int(before)}")

    @staticmethod
    def lock_user(conn: sqlite3.Connection, app: str, user: str, exclusive: bool) -> None:
        """Nothing to take: every write is one ``BEGIN IMMEDIATE`` transaction holding
        the file's only write lock, so no write of a user can run beside an erase."""

    @staticmethod
    def purge_search(conn: sqlite3.Connection) -> None:
        """Drop what the FTS5 index still holds of deleted events, inside the caller's
        write transaction: a delete only adds a tombstone to a new segment, and the
        deleted rows' tokens stay in the older segments (``adk_events_fts_data``) until
        they are merged. ``optimize`` merges every segment into one, without them (the
        old segments' rows are deleted, so under ``secure_delete`` zeroed). It rewrites
        the whole index: its cost grows with the index, not with what was deleted
        (SQLite 3.40 has no FTS5 ``secure-delete`` option, which would cost less). Every
        full-text index is merged: events' and memories'."""
        for index in (EVENTS_FTS, MEMORIES_FTS):
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (index,)).fetchone():
                conn.execute(f"INSERT INTO {index} ({index}) VALUES ('optimize')")

    @staticmethod
    def checkpoint(conn: sqlite3.Connection) -> bool:
        """Copy the WAL into the main file and truncate it to 0 bytes
        (``wal_checkpoint(TRUNCATE)``, outside a transaction).

        Returns:
            True when it completed; False when a reader of another connection kept it
            from finishing within the busy timeout (the WAL then still holds frames).
        """
        busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return busy == 0

    @staticmethod
    def backup(conn: sqlite3.Connection, dest: str, progress: Callable[[int, int], None],
               step_pages: int = BACKUP_STEP_PAGES) -> int:
        """Copy the database of ``conn`` into the empty file ``dest`` with SQLite's
        backup API, ``step_pages`` pages per step, all from ONE read snapshot.

        A read transaction is opened on ``conn`` first and held to the end: the
        backup steps read through it, so writers of other connections (WAL) go on
        meanwhile and never make the backup restart, and the copy holds exactly what
        was committed when it began. The copy is written with no journal (it is a
        temporary file until complete) and keeps the source's WAL mode in its
        header, so it opens as a WAL database with no ``-wal`` beside it.

        Args:
            progress: called after each step with ``(pages done, pages in all)``.

        Returns:
            The number of pages copied.
        """
        copy = sqlite3.connect(dest, isolation_level=None)
        try:
            copy.execute("PRAGMA journal_mode=OFF")
            copy.execute("PRAGMA synchronous=OFF")  # the caller fsyncs the file once it is whole
            conn.execute("BEGIN")
            try:
                total = conn.execute("PRAGMA page_count").fetchone()[0]
                conn.backup(copy, pages=step_pages, progress=lambda _s, left, n: progress(n - left, n))
            finally:
                conn.execute("COMMIT")
        finally:
            copy.close()
        return total

    # -- files ------------------------------------------------------------------
    def file_sizes(self) -> dict[str, int]:
        """Return the sizes in bytes of the main file, its ``-wal`` and ``-shm``
        (0 for a missing one, and all 0 in memory)."""
        return {"db": 0, "wal": 0, "shm": 0} if self.is_memory else file_sizes(self.path)

    def _checkpoint_at_close(self) -> None:
        """Checkpoint (TRUNCATE) on one pooled connection, waiting at most
        :data:`CLOSE_CHECKPOINT_TIMEOUT` for other connections; never raises (a
        file that fails here keeps its WAL, which SQLite reads at the next open)."""
        try:
            conn = self.peewee.acquire()
        except (sqlite3.Error, pw.PeeweeException):
            return
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(min(self.busy_timeout, CLOSE_CHECKPOINT_TIMEOUT) * 1000)}")
            self.checkpoint(conn)
        except sqlite3.Error:
            pass
        finally:
            self.peewee.release(conn)

    def close(self) -> None:
        """Close every connection this database opened, in every thread.

        A read-write file is checkpointed first (``wal_checkpoint(TRUNCATE)``), so
        the main file alone holds every committed write once the service is
        closed, even while other processes keep the file open (when they hold
        no old snapshot: a busy checkpoint is left at that).

        With ``read_only``, also remove the ``-wal``/``-shm`` files reading made
        when none was there at open: a read-write connection that reads and
        closes lets SQLite delete them if it is the last one on the file (it
        checks with its own locks, so another process's files are never removed).
        """
        if not self.read_only and not self.is_memory:
            self._checkpoint_at_close()
        self.peewee.close_all()
        if self.read_only and not self._had_side_files and os.path.lexists(self.path + "-wal"):
            try:
                conn = sqlite3.connect(_file_uri(self._absolute, "mode=rw"),
                                       uri=True, timeout=0, isolation_level=None)
                try:
                    conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
                finally:
                    conn.close()
            except sqlite3.Error:
                pass  # unwritable file or folder, or busy: the side files stay, as SQLite leaves them
