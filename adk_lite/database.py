"""Open a database file: path and URL resolution, the read-only pre-check,
pragmas, schema creation and versioning, and driver-error translation.

Zero configuration: with no target, the file is ``$ADK_LITE_DB`` if set, else
``.adk/sessions.sqlite3`` under the current directory; folders and the file are
created (the file with mode 0600, which SQLite gives its WAL and SHM files too).

An existing file is checked read-only before any pragma or write touches it (the
SQLite header, its size, our four tables with their columns and unique keys,
``schema_version``), so a foreign, corrupt or newer file is refused and left
byte-for-byte unchanged; so is a file that cannot be written, for a read-write open.

Names never reach SQLite as it was given them: :func:`parse_target` makes one path,
and SQLite gets a ``file:`` URI built here from its absolute path, fully quoted.
"""

from __future__ import annotations

import os
import re
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

MAX_PATH_BYTES = 504
"""The longest absolute file path (UTF-8 bytes) SQLite opens: its unix VFS takes 512,
with room for the ``-journal`` suffix."""

# Migrations: MIGRATIONS[v](conn) upgrades a file from version v to v + 1. All steps
# run in one IMMEDIATE transaction when an older file is opened.


def _add_incarnation(conn: sqlite3.Connection) -> None:
    """Version 1 to 2: give every session a random ``incarnation`` (16 hex digits)."""
    conn.execute(f"ALTER TABLE {SESSIONS} ADD COLUMN incarnation TEXT NOT NULL DEFAULT ''")
    conn.execute(f"UPDATE {SESSIONS} SET incarnation = lower(hex(randomblob(8)))")


MIGRATIONS: dict[int, Any] = {1: _add_incarnation}

ADDED_COLUMNS: dict[int, dict[str, set[str]]] = {2: {SESSIONS: {"incarnation"}}}
"""The columns each schema version added (by its migration), per table: a file at
version v has the models' columns minus those added by the versions above v."""


def _added_after(version: int) -> dict[str, set[str]]:
    """The columns (per table) that the migrations from schema ``version`` add."""
    added: dict[str, set[str]] = {}
    for added_in, tables in ADDED_COLUMNS.items():
        if added_in > version:
            for table, names in tables.items():
                added.setdefault(table, set()).update(names)
    return added


def expected_columns(version: int) -> dict[str, set[str]]:
    """The columns each of :data:`TABLES` has in a file at schema ``version``: those of
    the models in :mod:`adk_lite.models`, minus :data:`ADDED_COLUMNS` of later versions."""
    later = _added_after(version)
    return {m._meta.table_name: {f.column_name for f in m._meta.sorted_fields} - later.get(m._meta.table_name, set())
            for m in make_models(pw.SqliteDatabase(None)).all}


URL_OPTIONS = ("synchronous", "busy_timeout", "read_only")
"""The ``?query`` options a URL may carry, as in ``adklite:///s.db?synchronous=full``:
``synchronous`` (``normal``/``full``), ``busy_timeout`` (seconds, digits with an optional
decimal part: ``2``, ``0.5``) and ``read_only``
(``true``/``false``/``1``/``0``). Any other name is refused."""

OPTION_DEFAULTS = {"synchronous": "normal", "busy_timeout": 5.0, "read_only": False}


def parse_target(target: Union[str, os.PathLike, None]) -> tuple[str, dict[str, Any]]:
    """Parse a target into one file path (or ``":memory:"``) and its URL options.

    adk_lite, not SQLite, reads the name: SQLite only ever gets a ``file:`` URI that
    adk_lite builds from the absolute path, every special character quoted, so no
    part of a name can become a SQLite URI parameter (``mode=``, ``vfs=``, ...).

    A plain path is a file name, taken as is (``?``, ``#``, ``%`` and spaces are
    part of it), except ``":memory:"``. A path starting with ``file:`` (in any case)
    is refused rather than guessed at: write a plain path (``./file:x.db`` names a
    file called ``file:x.db``). A URL's path is percent-decoded once (as UTF-8).

    Args:
        target: None (zero config: ``$ADK_LITE_DB``, else :data:`DEFAULT_PATH`), a
            path (str or PathLike), ``":memory:"``, or a URL in one of
            :data:`URL_SCHEMES` (``sqlite+aiosqlite:///sessions.db`` as ADK writes it),
            optionally with a query of :data:`URL_OPTIONS`.

    Returns:
        ``(path, options)``: options holds the URL's options that were given, parsed
        (``synchronous``: str, ``busy_timeout``: float seconds, ``read_only``: bool).

    Raises:
        TypeError: not a str, PathLike or None.
        ValueError: an empty path, a NUL, text that is not UTF-8, a ``file:`` name, a
            path ending in ``/``, a URL of another database (postgresql://...), a URL
            with a host, a ``#fragment``, a path holding ``://``, or an unknown,
            repeated or bad option.
    """
    if target is None:
        target = os.environ.get(ENV_VAR) or DEFAULT_PATH
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    if isinstance(target, bytes) or not isinstance(target, str):
        raise TypeError(f"db must be a str path, a PathLike or a sqlite:/// URL, not {type(target).__name__}")
    options: dict[str, Any] = {}
    if "://" in target:
        url = target
        scheme = url.split("://", 1)[0] + "://"
        if scheme not in URL_SCHEMES:
            raise ValueError(f"db URL {url!r}: only {', '.join(URL_SCHEMES)} URLs name a SQLite file")
        rest, _, query = url[len(scheme):].partition("?")
        if "#" in url:
            raise ValueError(f"db URL {url!r}: a '#' fragment is not allowed (write %23 for a '#' in a file name)")
        options = _url_options(query, url)
        try:
            rest = urllib.parse.unquote(rest, errors="strict")
        except UnicodeDecodeError as e:
            raise ValueError(f"db URL {url!r}: its %-escapes are not UTF-8 text") from e
        if rest in ("", "/", "/" + MEMORY):
            return MEMORY, options
        if not rest.startswith("/"):
            raise ValueError(f"db URL {url!r}: expected three slashes, as in sqlite:///path/to/file.db")
        target = rest[1:]
        if "://" in target:
            raise ValueError(f"db URL {url!r}: its path {target!r} holds '://', which would read as another URL")
    if not target:
        raise ValueError("db must not be an empty path")
    if "\x00" in target:
        raise ValueError("db path contains a NUL character")
    try:
        target.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"db path {target!r} is not valid UTF-8 text (SQLite takes UTF-8 file names)") from e
    if target.endswith("/"):
        raise ValueError(f"db path {target!r} ends with '/': it names a folder, not a file")
    if target[:5].lower() == "file:":
        raise ValueError(f"db path {target!r} starts with 'file:': adk_lite does not take SQLite URIs; "
                         f"write a plain path (./{target} for a file of that name)")
    return target, options


def _url_options(query: str, url: str) -> dict[str, Any]:
    """Parse a URL's query into :data:`URL_OPTIONS` values (see :func:`parse_target`)."""
    options: dict[str, Any] = {}
    if not query:
        return options
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError as e:  # a field without '=', or %-escapes that are not UTF-8
        raise ValueError(f"db URL {url!r}: cannot read its query {query!r}: write name=value pairs "
                         f"of {', '.join(URL_OPTIONS)}") from e
    for name, value in pairs:
        if name not in URL_OPTIONS:
            raise ValueError(f"db URL {url!r}: unknown option {name!r}; the options are {', '.join(URL_OPTIONS)}")
        if name in options:
            raise ValueError(f"db URL {url!r}: option {name!r} is given more than once")
        if name == "synchronous":
            options[name] = check_synchronous(value)
        elif name == "busy_timeout":
            decimal = re.fullmatch(r"[0-9]+(\.[0-9]+)?", value)
            options[name] = check_busy_timeout(float(value) if decimal else value)
        elif value.lower() in ("true", "1", "false", "0"):
            options[name] = value.lower() in ("true", "1")
        else:
            raise ValueError(f"db URL {url!r}: read_only must be true, false, 1 or 0, got {value!r}")
    return options


def check_synchronous(value: Any) -> str:
    """Return ``value`` (``"normal"`` or ``"full"``, any case) in lower case.

    Raises:
        ValueError: anything else.
    """
    if not isinstance(value, str) or value.lower() not in SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, got {value!r}")
    return value.lower()


def check_busy_timeout(value: Any) -> float:
    """Return ``value`` (seconds, an int or float in ``[0, 1e6)``) as a float.

    Raises:
        ValueError: anything else (NaN, infinite, negative, a bool or a str).
    """
    if type(value) not in (int, float) or not 0 <= value < 1e6:
        raise ValueError(f"busy_timeout must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _merge_options(options: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The keyword values ``given`` (already checked) with the URL's ``options``: a
    keyword at its default defers to the URL; one that differs from both is refused."""
    merged = dict(given)
    for name, value in options.items():
        if given[name] != OPTION_DEFAULTS[name] and given[name] != value:
            raise ValueError(f"{name}={given[name]!r} conflicts with the URL's {name}={value}; give {name} once")
        merged[name] = value
    return merged


def resolve(target: Union[str, os.PathLike, None]) -> str:
    """Turn a target into a file path, or ``":memory:"``: :func:`parse_target`
    without the URL's options (which are checked, then dropped).

    Raises:
        TypeError, ValueError: as :func:`parse_target`.
    """
    return parse_target(target)[0]


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
        DatabaseOpenError: a directory or another non-regular file, or unreadable.
        CorruptDatabaseError: not a SQLite database, truncated, or malformed.
        ForeignDatabaseError: a SQLite database whose tables are not adk_lite's: not all
            four of :data:`TABLES`, or not their columns (those of its schema version,
            see :func:`expected_columns`) or unique keys.
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
            tables, columns, keys, row = _read_schema(path, busy_timeout, "immutable=1", info.st_size)
        except errors.DatabaseError:
            if not os.path.exists(wal):
                raise
            quiet = False
        else:
            quiet = not os.path.exists(wal)
    if not quiet:
        tables, columns, keys, row = _read_schema(path, busy_timeout, "mode=ro", None)
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
    _check_columns({METADATA: columns[METADATA]}, keys, SCHEMA_VERSION, path)  # to read the version
    version = _check_version(row, path)
    _check_columns(columns, keys, version, path)
    return version


def _model_keys() -> dict[str, set[frozenset]]:
    """The unique keys (primary key and unique indexes, as column sets) of each table,
    from the models: the statements rely on them (upserts, duplicate event ids)."""
    keys = {}
    for model in make_models(pw.SqliteDatabase(None)).all:
        pk = model._meta.primary_key
        found = {frozenset(pk.field_names if isinstance(pk, pw.CompositeKey) else [pk.column_name])}
        found.update(frozenset(names) for names, unique in model._meta.indexes if unique)
        keys[model._meta.table_name] = found
    return keys


def _check_columns(columns: dict[str, dict[str, bool]], keys: dict[str, set[frozenset]], version: int,
                   path: str) -> None:
    """Refuse a file whose tables lack a column of schema ``version`` or a unique key,
    already have a column that a migration will add, or have an extra column our
    inserts cannot fill (NOT NULL without a default).

    ``columns``: table -> column -> NOT NULL-without-default; ``keys``: table -> the
    column sets of its primary key and unique indexes (only tables in ``columns`` are checked).
    """
    problems = []
    expected, added, wanted_keys = expected_columns(version), _added_after(version), _model_keys()
    for table, have in columns.items():
        wanted = expected[table]
        missing = sorted(wanted - have.keys())
        later = sorted(have.keys() & added.get(table, set()))
        blocking = sorted(c for c, required in have.items() if required and c not in wanted)
        if missing:
            problems.append(f"{table} lacks the columns {', '.join(missing)}")
        if later:
            problems.append(f"{table} already has {', '.join(later)}, which schema_version {version} does not")
        if blocking:
            problems.append(f"{table} has unknown required columns {', '.join(blocking)}")
        for key in sorted(wanted_keys[table] - keys[table], key=sorted):
            problems.append(f"{table} has no unique key on ({', '.join(sorted(key))})")
    if problems:
        raise errors.ForeignDatabaseError(
            f"{path} has adk_lite's tables but not their columns: {'; '.join(problems)}")


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
    return "file:" + urllib.parse.quote(os.path.abspath(path), safe="/") + "?" + mode


def _read_schema(path: str, busy_timeout: float, mode: str, size: Optional[int]
                 ) -> tuple[set, dict[str, dict[str, bool]], dict[str, set[frozenset]], Optional[tuple]]:
    """Read the table names, the columns of :data:`TABLES` (name -> NOT NULL without a
    default), their unique keys (column sets) and the ``schema_version`` row through a
    read-only URI.

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
        columns, keys = {}, {}
        for table in (t for t in TABLES if t in tables):
            info = conn.execute('SELECT name, "notnull", dflt_value, pk FROM pragma_table_info(?)', (table,)).fetchall()
            columns[table] = {name: bool(notnull) and default is None for name, notnull, default, _ in info}
            keys[table] = {frozenset(name for name, _, _, pk in info if pk)}
            for (index,) in conn.execute('SELECT name FROM pragma_index_list(?) WHERE "unique"', (table,)).fetchall():
                keys[table].add(frozenset(r[0] for r in conn.execute("SELECT name FROM pragma_index_info(?)", (index,))))
        row = None
        if METADATA in tables and "key" in columns[METADATA] and "value" in columns[METADATA]:
            row = conn.execute(f"SELECT value FROM {METADATA} WHERE key = 'schema_version'").fetchone()
        return tables, columns, keys, row
    except (sqlite3.Error, UnicodeDecodeError) as e:
        if "not a database" in str(e):
            raise errors.CorruptDatabaseError(f"{path} is not a SQLite database ({e})") from e
        raise translate(e, path, busy_timeout) from e
    finally:
        conn.close()


def _check_version(row: Optional[tuple], path: str) -> int:
    """Return the ``schema_version`` held in ``row`` (a row of its text value, or None)
    if this release can open it (at once or by :data:`MIGRATIONS`).

    Raises:
        CorruptDatabaseError: no row, or not a version number: only ASCII digits
            without sign, spaces or leading zeros (``'²'``, ``' 2'``, ``'2.0'`` are refused).
        SchemaVersionError: newer than :data:`SCHEMA_VERSION`, or too old to migrate.
    """
    value = row[0] if row else None
    if not isinstance(value, str) or not re.fullmatch(r"[1-9][0-9]*", value):
        raise errors.CorruptDatabaseError(
            f"database {path} has no valid schema_version in {METADATA} (it holds {value!r:.40})")
    if len(value) > len(str(SCHEMA_VERSION)) or int(value) > SCHEMA_VERSION:
        raise errors.SchemaVersionError(
            f"database {path} has schema_version {value:.30}, newer than this adk_lite "
            f"understands ({SCHEMA_VERSION}); upgrade adk_lite to open it"
        )
    version = int(value)
    if version < SCHEMA_VERSION and any(v not in MIGRATIONS for v in range(version, SCHEMA_VERSION)):
        raise errors.SchemaVersionError(f"database {path} has schema_version {version}, which cannot be migrated")
    return version


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


class Database:
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
        chosen = _merge_options(options, given)
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
        pragmas = [("journal_mode", "wal"), ("synchronous", self.synchronous),
                   ("foreign_keys", 1), ("busy_timeout", int(self.busy_timeout * 1000))]
        # A file is opened through mode=rw: SQLite never creates it (only _prepare_file
        # does, 0600), and every thread's connection opens the path resolved here.
        self.peewee = _TrackedSqliteDatabase(
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
                    version = _check_version(conn.execute(
                        f"SELECT value FROM {METADATA} WHERE key = 'schema_version'").fetchone(), self.path)
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
                conn = sqlite3.connect(_file_uri(self._absolute, "mode=rw"),
                                       uri=True, timeout=0, isolation_level=None)
                try:
                    conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
                finally:
                    conn.close()
            except sqlite3.Error:
                pass  # unwritable file or folder, or busy: the side files stay, as SQLite leaves them


__all__ = ["Database", "resolve", "inspect_file", "translate", "file_sizes", "DEFAULT_PATH", "ENV_VAR",
           "SCHEMA_VERSION", "TABLES"]
