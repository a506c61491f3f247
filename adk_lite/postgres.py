"""The PostgreSQL backend: open a server database by URL, create its schema once
under an advisory lock, keep a bounded pool of psycopg 3 connections, and speak
PostgreSQL where the store needs its dialect (transactions, error translation,
maintenance, facts).

Imported only when a PostgreSQL URL is opened (:func:`adk_lite.backend.open_database`).
The password of the URL is never written into a message, a repr or :attr:`PostgresBackend.path`:
they hold the URL with ``***`` in its place. Full-text search is
:mod:`adk_lite.postgres_search`'s.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import select
import threading
from typing import Any, Iterator, Optional

import peewee as pw
import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.string import TextLoader

from . import errors, postgres_check, postgres_search, schema, usage
from .models import ARTIFACT_TABLES, EVENTS, MEMORIES, METADATA, TABLES, make_models
from .pool import IdleConnections
from .postgres_search import (QUERY_ERRORS, SEARCH_CHARS, SEARCH_COLUMN,  # noqa: F401 (re-exported)
                              memory_ddl as _memory_ddl, search_ddl as _search_ddl)
from .target import PostgresTarget, check_busy_timeout, mask_password

MAX_CONNECTIONS = 16
"""Default pool size: at most this many connections per service (``?max_connections=``)."""
POOL_TIMEOUT = 30.0
"""Default seconds a call waits for a free connection when all are busy (``?pool_timeout=``)."""
MAX_KEY_BYTES = 600
"""The longest app_name, user_id, session_id, event id or state key on PostgreSQL, in
UTF-8 bytes: four of them make one entry of the events' or the state's B-tree index,
and PostgreSQL refuses an index entry over 2704 bytes (a third of a page). 600 bytes is
every id of 150 characters, or of 256 (adk_lite's limit) in ASCII or Latin text."""
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
"""The JSON escape of NUL, not preceded by an escaped backslash (``\\\\u0000`` is text)."""
FIRST_VERSION = 4
"""The schema version of the first PostgreSQL databases; later ones are migrated by
:data:`PG_MIGRATIONS` (``MIGRATIONS`` of :mod:`adk_lite.schema` are SQLite SQL)."""
PG_MIGRATIONS: dict[int, Any] = {4: lambda backend: backend._to_v5(), 5: lambda backend: None}
"""``PG_MIGRATIONS[v](backend)`` upgrades a PostgreSQL database from version v to v + 1,
inside the schema transaction holding :data:`SCHEMA_LOCK`. Version 6 changed only
SQLite objects (the index triggers, ``adk_counts``): a PostgreSQL database at 5 just records 6."""
SCHEMA_LOCK = 0x61646B6C  # 'adkl': the pg_advisory_xact_lock key held while creating the schema


def user_lock_key(app: str, user: str) -> int:
    """The advisory lock key of one ``(app_name, user_id)``: a signed 64-bit hash of
    both (two users sharing a key only wait for each other's erase; never
    :data:`SCHEMA_LOCK`)."""
    digest = hashlib.blake2b(f"{app}\x00{user}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    return key + 1 if key == SCHEMA_LOCK else key



_LOCKED = ("55P03", "40001", "40P01", "57014")  # lock_not_available, serialization, deadlock, canceled
_GONE = ("57P01", "57P02", "57P03", "3D000")  # admin/crash shutdown, cannot connect now, no such database


def _error_class(exc: BaseException) -> type:
    """The :class:`DatabaseError` subclass for a psycopg (or Peewee-wrapped) error, by SQLSTATE."""
    cause = exc if isinstance(exc, psycopg.Error) else (exc.__cause__ or exc.__context__ or exc)
    state = getattr(cause, "sqlstate", None) or ""
    if state in _LOCKED:
        return errors.DatabaseLockedError
    if state in _GONE or state[:2] in ("08", "28") or state == "25006":
        return errors.DatabaseOpenError
    if state[:2] == "XX":
        return errors.CorruptDatabaseError
    if not state and isinstance(cause, (psycopg.OperationalError, psycopg.InterfaceError)):
        return errors.DatabaseOpenError  # no SQLSTATE: the connection failed or was lost
    return errors.DatabaseError




def translate(exc: BaseException, path: str, busy_timeout: float) -> errors.DatabaseError:
    """Map a psycopg or Peewee error to the matching :class:`DatabaseError`, keyed on
    its SQLSTATE: lock timeouts, serialization failures and deadlocks are
    :class:`DatabaseLockedError`; lost or refused connections, authentication and a
    read-only transaction are :class:`DatabaseOpenError`; ``XX`` (internal, data
    corrupted) is :class:`CorruptDatabaseError`. The message names the URL without
    its password, and is masked again in case the server's text held one."""
    message = mask_password(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    return errors.driver_error(_error_class(exc), path, message, f"a row or table lock was held for more than "
                        f"busy_timeout={busy_timeout:g} s, or the transaction lost a race")


ROWS_PER_INSERT = 500
"""Rows per multi-row INSERT (:meth:`PgConnection.executemany`): 500 x 9 columns stays far
under PostgreSQL's 65,535 parameters of one statement."""
_PLAIN_INSERT = re.compile(r"(INSERT INTO .* VALUES )(\((?:%s, )*%s\))$", re.S)
"""An INSERT of one row of parameters and nothing after it (no ON CONFLICT, no RETURNING)."""


class _PipedCursor:
    """A cursor of a statement sent in pipeline mode: rows are read as psycopg reads
    them (a fetch waits for the server), and ``rowcount`` waits for it too."""

    __slots__ = ("_cursor", "_pipeline")

    def __init__(self, cursor: psycopg.Cursor, pipeline: Any) -> None:
        self._cursor, self._pipeline = cursor, pipeline

    @property
    def rowcount(self) -> int:
        """Rows the statement changed (after a round trip that collects its result)."""
        self._pipeline.sync()
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        """The next row, or None."""
        return self._cursor.fetchone()

    def fetchall(self) -> list:
        """Every remaining row."""
        return self._cursor.fetchall()

    def __iter__(self) -> Any:
        return iter(self._cursor)


class PgConnection:
    """A psycopg connection (autocommit) with the sqlite3-like face the store uses:
    ``execute`` (returns a cursor), ``executemany``, ``in_transaction``, ``close``.

    A transaction runs in psycopg's pipeline mode, from ``BEGIN`` to ``COMMIT`` or
    ``ROLLBACK``: statements are sent without waiting for their results, and the
    client waits only where it reads one (a fetch, ``rowcount``) and at the end. An
    append (BEGIN, the session row lock and the event-id check, then the inserts, the
    state, the session row and COMMIT) takes two round trips instead of seven. An error
    comes out where the client next waits, with the statements after it skipped by the
    server, and the transaction is rolled back, as before.
    """

    __slots__ = ("raw", "_pipeline", "_entered", "spoiled")

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw
        self._pipeline: Any = None  # the pipeline, while a transaction runs
        self._entered: Any = None  # its context manager, to leave it
        self.spoiled = False
        """True once a statement failed inside a pipeline: psycopg may then believe a
        statement prepared that the server skipped ("prepared statement ... does not
        exist" later), so the pool closes the connection instead of reusing it."""

    def execute(self, sql: str, params: Any = None) -> Any:
        """Run one statement; ``params`` a sequence for its ``%s`` placeholders.
        ``BEGIN ...`` enters pipeline mode; ``COMMIT`` and ``ROLLBACK`` leave it."""
        if self._pipeline is None:
            if not sql.startswith("BEGIN"):
                return self.raw.execute(sql, params if params else None)
            self._entered = self.raw.pipeline()
            self._pipeline = self._entered.__enter__()
        elif sql in ("COMMIT", "ROLLBACK"):
            return self._end(sql)
        return _PipedCursor(self.raw.execute(sql, params if params else None), self._pipeline)

    def _end(self, sql: str) -> None:
        """Leave pipeline mode with ``COMMIT`` (raising the transaction's first error,
        if any) or ``ROLLBACK`` (an error being handled already is not raised again)."""
        entered, self._pipeline, self._entered = self._entered, None, None
        if sql == "COMMIT":
            try:
                self.raw.execute(sql)  # may raise a failed statement's error, read while sending
            except psycopg.Error:
                self._leave(entered)  # its PipelineAborted would hide the statement's own error
                raise
            try:
                entered.__exit__(None, None, None)
            except psycopg.Error:
                self.spoiled = True
                raise
            return
        self._leave(entered)  # a failed statement's error: the one the caller is rolling back for
        if not (self.raw.closed or self.raw.broken) and self.raw.info.transaction_status != TransactionStatus.IDLE:
            self.raw.execute(sql)

    def _leave(self, entered: Any) -> None:
        """Leave pipeline mode after an error (not raised again); mark the connection
        :attr:`spoiled` when a statement failed on the server."""
        try:
            entered.__exit__(None, None, None)
        except psycopg.Error:
            self.spoiled = True
        if self.raw.info.transaction_status == TransactionStatus.INERROR:
            self.spoiled = True

    def executemany(self, sql: str, rows: Any) -> None:
        """Run one statement for each parameter sequence of ``rows``. In a transaction
        they are queued in the pipeline (psycopg's ``executemany`` would wait for the
        server at its end), and a plain ``INSERT ... VALUES (...)`` of several rows is
        sent as multi-row INSERTs of up to :data:`ROWS_PER_INSERT` rows (a statement
        costs the client about 0.1 ms whatever its size)."""
        if self._pipeline is None:
            with self.raw.cursor() as cur:
                cur.executemany(sql, rows)
            return
        rows = list(rows)
        values = _PLAIN_INSERT.match(sql) if len(rows) > 1 else None
        with self.raw.cursor() as cur:
            if values is None:
                for row in rows:
                    cur.execute(sql, row)
                return
            for start in range(0, len(rows), ROWS_PER_INSERT):  # one multi-row INSERT per chunk
                chunk = rows[start:start + ROWS_PER_INSERT]
                cur.execute(values.group(1) + ", ".join([values.group(2)] * len(chunk)),
                            [value for row in chunk for value in row])

    @property
    def in_transaction(self) -> bool:
        """True inside a transaction (or a failed one), or with statements of one
        still unsent."""
        return self._pipeline is not None or self.raw.info.transaction_status != TransactionStatus.IDLE

    def usable(self) -> bool:
        """The health check before reuse, without a round trip: open, not broken, idle,
        and nothing unread on its socket (a server that shut down or restarted sends an
        error and closes it, which makes the idle socket readable)."""
        raw = self.raw
        if raw.closed or raw.broken or raw.info.transaction_status != TransactionStatus.IDLE:
            return False
        try:
            return not select.select([raw.fileno()], [], [], 0)[0]
        except (OSError, ValueError, psycopg.Error):
            return False

    def close(self) -> None:
        """Close the connection."""
        self.raw.close()


class _PooledPostgresDatabase(pw.PostgresqlDatabase):
    """A Peewee PostgresqlDatabase with a bounded pool of psycopg connections for the store.

    Peewee's own connection is used only at open, to create the schema. Calls take a
    connection with :meth:`acquire` and give it back with :meth:`release`. At most
    ``max_connections`` are out at once; a call waits up to ``pool_timeout`` seconds
    for one. An idle connection is checked before reuse (:meth:`PgConnection.usable`);
    a broken one is dropped with every idle one (they were opened before the same
    server restart), and new ones are opened.
    """

    field_types = {**pw.PostgresqlDatabase.field_types, "JSON": "JSON"}
    """JSON columns are ``json``, not ``jsonb``: ``json`` keeps the text exactly as written,
    while ``jsonb`` turns a float such as 5.016280331188281e16 into the integer
    50162803311882810 (another value) and reorders object keys. PostgreSQL's JSON
    operators work on both (``body->'actions'->'state_delta'``; cast to jsonb to index)."""

    def __init__(self, conninfo: dict, *, setup: list[str], max_connections: int, pool_timeout: float,
                 path: str, busy_timeout: float) -> None:
        params = {k: v for k, v in conninfo.items() if k != "dbname"}
        super().__init__(conninfo["dbname"], prefer_psycopg3=True, autoconnect=True, **params)
        self._conninfo, self._setup = conninfo, setup
        self._path, self._busy_timeout = path, busy_timeout
        self.max_connections, self.pool_timeout = max_connections, pool_timeout
        self._idle = IdleConnections()
        self._slots = threading.BoundedSemaphore(max_connections)

    def connect_raw(self) -> PgConnection:
        """Open a new connection: autocommit, json/jsonb read as text, the session settings."""
        raw = psycopg.connect(**self._conninfo, autocommit=True)
        for name in ("json", "jsonb"):
            raw.adapters.register_loader(name, TextLoader)
        for statement in self._setup:
            raw.execute(statement)
        return PgConnection(raw)

    def acquire(self) -> PgConnection:
        """Take a healthy idle connection, or open one (waiting for a free slot).

        Raises:
            DatabaseLockedError: every connection stayed busy for ``pool_timeout`` seconds.
            psycopg.Error: a new connection could not be opened (the store translates it).
        """
        if not self._slots.acquire(timeout=self.pool_timeout):
            raise errors.DatabaseLockedError(
                f"database {self._path}: all {self.max_connections} pooled connections stayed busy for "
                f"pool_timeout={self.pool_timeout:g} s (raise ?max_connections= or lower the load)")
        try:
            while True:
                conn = self._idle.take()
                if conn is None:
                    return self.connect_raw()
                if conn.usable():
                    return conn
                self._drop_idle(conn)
        except BaseException:
            self._slots.release()
            raise

    def _drop_idle(self, broken: PgConnection) -> None:
        """Close ``broken`` and every idle connection (a server restart broke them all)."""
        self._idle.close_all(broken)

    def release(self, conn: PgConnection) -> None:
        """Give back a connection taken with :meth:`acquire`; a broken one, one a
        failure left inside a transaction, or one a statement failed on inside a
        pipeline (:attr:`PgConnection.spoiled`), is closed instead."""
        try:
            raw = conn.raw
            if raw.closed or raw.broken:
                self._drop_idle(conn)
            elif conn.in_transaction or conn.spoiled:
                conn.close()
            else:
                self._idle.give(conn)
        finally:
            self._slots.release()

    def close_all(self) -> None:
        """Close every pooled connection and Peewee's own. The caller makes sure no call
        is using one (see ``Store.close``)."""
        self._idle.close_all()
        if not self.is_closed():
            self.close()


class PostgresBackend:
    """One open PostgreSQL database: the pool, its models, the dialect.

    Args:
        target: a parsed URL (:func:`adk_lite.target.parse_postgres`). Its options:
            ``max_connections`` (pool size, default :data:`MAX_CONNECTIONS`),
            ``pool_timeout`` (default :data:`POOL_TIMEOUT` s), ``busy_timeout``.
        busy_timeout: seconds a statement waits for a lock before
            :class:`DatabaseLockedError` (PostgreSQL's ``lock_timeout``); default 5.
            A keyword left at its default defers to the URL's option.
        read_only: True: every transaction is READ ONLY and no schema is created.
        synchronous: accepted for the shared signature and ignored (durability is
            the server's ``synchronous_commit``).

    Attributes:
        path: the URL with its password masked (for messages).
        read_only, models, peewee: as :class:`adk_lite.backend.Backend`.

    Raises:
        DatabaseOpenError: the server cannot be reached or refuses the login; with
            ``read_only``, the database has no adk_lite tables.
        ForeignDatabaseError: some of adk_lite's table names exist but not the metadata,
            or the metadata names a schema_version whose tables are not all there.
        SchemaVersionError: written by a newer adk_lite, or by one older than the first
            PostgreSQL schema this release migrates.
    """

    SINGLE_WRITER = False
    """Many connections write at once (row locks): each append is its own transaction,
    since a group of appends to several sessions could deadlock with another group."""
    BEGIN_WRITE = "BEGIN"
    """Writes run at READ COMMITTED; the session row is read ``FOR UPDATE`` (see the store),
    so two appends to one session serialize on its row lock."""
    BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    """Reads that need one snapshot."""
    DRIVER_ERRORS = (psycopg.Error, pw.PeeweeException)
    NO_LIMIT = None
    """``LIMIT NULL`` is no limit on PostgreSQL."""
    IS_FILE = False
    """Tables on a server: no page copy (``backup``), nor a WAL of its own."""
    PIPELINED = True
    """Statements of a transaction are sent without waiting (:class:`PgConnection`): a
    lookup per event id costs no round trip, and its plan never depends on statistics
    (``event_id IN (...)`` could scan a long session while the table was unanalyzed)."""
    QUERY_SYNTAX = "PostgreSQL tsquery"
    """What ``search_events(raw=True)`` takes: ``to_tsquery`` syntax."""
    lock = None
    searchable = False
    """True when ``adk_events`` has the search column (a database opened read-only may
    predate it)."""

    def __init__(self, target: PostgresTarget, *, synchronous: str = "normal", busy_timeout: float = 5.0,
                 read_only: bool = False) -> None:
        if not isinstance(read_only, bool):
            raise TypeError(f"read_only must be a bool, not {type(read_only).__name__}")
        busy_timeout = check_busy_timeout(busy_timeout)
        options = target.options
        self.path = target.display
        self.read_only = read_only
        self.busy_timeout = options.get("busy_timeout", busy_timeout) if busy_timeout == 5.0 else busy_timeout
        if "busy_timeout" in options and busy_timeout not in (5.0, options["busy_timeout"]):
            raise ValueError(f"busy_timeout={busy_timeout!r} conflicts with the URL's "
                             f"busy_timeout={options['busy_timeout']}; give busy_timeout once")
        setup = [f"SET lock_timeout = {int(self.busy_timeout * 1000)}"]
        if read_only:
            setup.append("SET default_transaction_read_only = on")
        self.peewee = _PooledPostgresDatabase(
            target.conninfo, setup=setup, max_connections=options.get("max_connections", MAX_CONNECTIONS),
            pool_timeout=options.get("pool_timeout", POOL_TIMEOUT), path=self.path, busy_timeout=self.busy_timeout)
        self.models = make_models(self.peewee)
        try:
            self._ensure_schema()
        except self.DRIVER_ERRORS as e:
            self.peewee.close_all()
            raise self.translate(e) from None
        except BaseException:
            self.peewee.close_all()
            raise

    def check_json(self, texts: Any) -> None:
        """Refuse JSON texts (an iterable of str) holding a NUL character: the columns
        are ``json``, which keeps it, but ``jsonb`` and PostgreSQL's JSON operators that
        give text refuse it. One substring scan per text, the exact pattern only on a hit.

        Raises:
            ValueError: naming the rule.
        """
        for text in texts:
            if "\\u0000" in text and _NUL_ESCAPE.search(text):
                raise ValueError("a JSON string (a state value or key, or a field of an event) contains a NUL "
                                 "character (\\x00), which PostgreSQL's JSON operators cannot handle")

    @staticmethod
    def check_keys(named: Any) -> None:
        """Refuse an indexed value longer than :data:`MAX_KEY_BYTES` in UTF-8.

        Args:
            named: ``(name, text)`` pairs (``"app_name"``, ``"event id"``, ...).

        Raises:
            ValueError: naming the value, its size and the limit.
        """
        for name, text in named:
            if len(text) > MAX_KEY_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
                raise ValueError(f"{name} {text[:40]!r}... is {len(text.encode('utf-8', 'surrogatepass'))} bytes "
                                 f"in UTF-8; on PostgreSQL the limit is {MAX_KEY_BYTES} (a B-tree index entry "
                                 "holds at most 2704 bytes, and four such values make one)")

    def __repr__(self) -> str:
        return f"PostgresBackend({self.path!r})"

    def _version(self, conn: PgConnection) -> Optional[tuple]:
        """The stored schema_version row, or None when the metadata table is missing."""
        if conn.execute("SELECT to_regclass(%s)", (METADATA,)).fetchone()[0] is None:
            return None
        return conn.execute(f"SELECT value FROM {METADATA} WHERE key = 'schema_version'").fetchone() or ()

    def _ensure_schema(self) -> None:
        """Check the schema; create it (Peewee ``create_tables``) in one transaction holding
        ``pg_advisory_xact_lock``, so processes starting together create it once.

        A database already at :data:`SCHEMA_VERSION` is only read (no lock taken).
        """
        conn = self.peewee.acquire()
        try:
            row = self._version(conn)
            if row is not None:
                version = schema.check_version(row or None, self.path)
                missing = sorted(schema.tables_of(version) - self.tables_of(conn.execute))
                if missing:  # as sqlite_check refuses a file: never a missing relation at the first call
                    raise errors.ForeignDatabaseError(f"database {self.path} is not a whole adk_lite database: "
                                                      f"it lacks the tables {', '.join(missing)} of schema_version {version}")
                self.searchable = self._has_search(conn.execute)
                if (self.searchable and version == schema.SCHEMA_VERSION) or self.read_only:
                    return  # read-only: an older schema is read as it is (migrated at a read-write open)
            elif self.read_only:
                raise errors.DatabaseOpenError(f"database {self.path} has no adk_lite tables yet")
        finally:
            self.peewee.release(conn)
        with self.peewee.atomic():
            self.peewee.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            have = self.tables_of(self.peewee.execute_sql)
            if METADATA in have:
                row = self.peewee.execute_sql(f"SELECT value FROM {METADATA} WHERE key = 'schema_version'").fetchone()
                version = schema.check_version(row, self.path)
                if version not in PG_MIGRATIONS and version != schema.SCHEMA_VERSION:
                    raise errors.SchemaVersionError(
                        f"database {self.path} has schema_version {version}: PostgreSQL schemas start at "
                        f"{FIRST_VERSION}, and this one cannot be migrated")
                if not self._has_search(self.peewee.execute_sql):  # made by adk_lite 0.2.0 before search
                    self._create_search()
                for step in range(version, schema.SCHEMA_VERSION):
                    PG_MIGRATIONS[step](self)
                if version != schema.SCHEMA_VERSION:
                    self.peewee.execute_sql(f"UPDATE {METADATA} SET value = %s WHERE key = 'schema_version'",
                                            (str(schema.SCHEMA_VERSION),))
                self.searchable = True
                return
            ours = sorted(have & {*TABLES, *schema.LATER_TABLES})
            if ours:
                raise errors.ForeignDatabaseError(
                    f"database {self.path} has tables named like adk_lite's ({', '.join(ours)}) but no "
                    f"{METADATA}: not an adk_lite database")
            for model in self.models.all:  # in order: the events' raw FOREIGN KEY needs adk_sessions first
                model.create_table(safe=True)
            self._create_search()
            self._to_v5()
            self.searchable = True
            self.peewee.execute_sql(f"INSERT INTO {METADATA} (key, value) VALUES ('schema_version', %s)",
                                    (str(schema.SCHEMA_VERSION),))
        self.peewee.close()

    def _create_usage_tables(self) -> None:
        """Create ``adk_usage`` (with its indexes) and fill it from the stored events
        (:func:`adk_lite.usage.backfill`), inside the schema transaction."""
        self.models.Usage.create_table(safe=True)  # a new database's create_table made it: nothing to fill
        usage.backfill(self.peewee.execute_sql, "%s", "body::text ILIKE '%%usage%%metadata%%'", "body::text")

    @staticmethod
    def _has_search(execute: Any) -> bool:
        """True when ``adk_events`` has the search column (through a connection's or Peewee's ``execute``)."""
        return bool(execute(f"SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('{EVENTS}') "
                            f"AND attname = '{SEARCH_COLUMN}' AND NOT attisdropped").fetchone())

    def _create_search(self) -> None:
        """Add full-text search (:func:`_search_ddl`) inside the schema transaction."""
        encoding = self.peewee.execute_sql("SELECT current_setting('server_encoding')").fetchone()[0]
        for statement in _search_ddl(encoding == "UTF8"):
            self.peewee.execute_sql(statement)

    def _to_v5(self) -> None:
        """Schema version 4 to 5, inside the schema transaction (under the advisory lock):
        the tables of this version's features: memories, and token usage (filled from
        the stored events). A new database runs it too, after ``create_table``."""
        self.create_memory_tables()
        self._create_usage_tables()
        for model in self.models.all:  # the artifact tables (blobs first: the versions refer to them)
            if model._meta.table_name in ARTIFACT_TABLES:
                model.create_table(safe=True)

    def create_memory_tables(self) -> None:
        """Create ``adk_memories`` (kept if a new database's ``create_table`` made it) and
        its search column and index (:func:`_memory_ddl`), inside the schema transaction."""
        self.models.Memory.create_table(safe=True)
        if not self.peewee.execute_sql(f"SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('{MEMORIES}') "
                                       f"AND attname = '{SEARCH_COLUMN}' AND NOT attisdropped").fetchone():
            for statement in _memory_ddl():
                self.peewee.execute_sql(statement)

    # -- the dialect: what the store asks of its backend ---------------------------
    def translate(self, exc: BaseException) -> errors.DatabaseError:
        """The :class:`~adk_lite.errors.DatabaseError` for a driver error (see :func:`translate`)."""
        return translate(exc, self.path, self.busy_timeout)

    def json_array_values(self) -> str:
        """SQL for the values of a JSON array given as one parameter (a subquery)."""
        return "(SELECT jsonb_array_elements_text(%s::jsonb))"

    @staticmethod
    def json_tuples(width: int) -> str:
        """SQL for the rows of a JSON array of ``width``-element arrays given as one
        parameter (a subquery with text columns ``k0`` .. ``k<width-1>``)."""
        columns = ", ".join(f"k->>{i} AS k{i}" for i in range(width))
        return f"(SELECT {columns} FROM jsonb_array_elements(%s::jsonb) AS k)"

    @staticmethod
    def match_query(text: str) -> str:
        """The query for plain ``text``: :func:`adk_lite.postgres_search.match_query`."""
        return postgres_search.match_query(text)

    def match_error(self, query: str) -> Optional[str]:
        """PostgreSQL's message for a ``to_tsquery`` query it refuses, or None when it is
        valid: :func:`adk_lite.postgres_search.match_error`.

        Raises:
            DatabaseError: the server could not be asked.
        """
        return postgres_search.match_error(self, query)

    def search(self, conn: PgConnection, match: str, raw: bool, filters: list[tuple[str, str]],
               limit: int, after: Optional[tuple[float, int]]) -> list[tuple]:
        """One page of full-text hits through the GIN index on :data:`SEARCH_COLUMN`:
        :func:`adk_lite.postgres_search.search` (arguments, rows and errors there).

        Raises:
            ValueError: (``raw``) the server refused the query when it ran.
            DatabaseError: the database predates search and was opened read-only.
        """
        return postgres_search.search(self, conn, match, raw, filters, limit, after)

    @staticmethod
    def tables_of(execute: Any) -> set[str]:
        """The table names of the current schema, through ``execute(sql)`` (a connection's or Peewee's)."""
        return {r[0] for r in execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}

    def tables(self, conn: PgConnection) -> set[str]:
        """The names of the tables in the current schema."""
        return self.tables_of(conn.execute)

    def facts(self, conn: PgConnection) -> dict[str, Any]:
        """What ``get_stats`` reports besides counts on PostgreSQL: ``server_version``,
        ``database_bytes`` (the whole database, ``pg_database_size``), ``table_bytes``
        (adk_lite's tables with their indexes and TOAST), ``max_connections`` (the pool
        size), ``path`` (the URL, password masked), ``total_bytes`` (= ``table_bytes``)
        and ``total_mib``."""
        version, db_bytes = conn.execute("SELECT current_setting('server_version'), "
                                         "pg_database_size(current_database())").fetchone()
        tables = self._table_bytes(conn)
        return {"server_version": version, "database_bytes": db_bytes, "table_bytes": tables,
                "max_connections": self.peewee.max_connections, "path": self.path,
                "total_bytes": tables, "total_mib": round(tables / 2**20, 3)}

    @staticmethod
    def _table_bytes(conn: PgConnection) -> int:
        return int(conn.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
            "AND c.relkind = 'r' AND c.relname = ANY(%s)", ([*TABLES, *schema.LATER_TABLES],)).fetchone()[0])

    @staticmethod
    def integrity(conn: PgConnection) -> tuple[list[str], list[tuple]]:
        """PostgreSQL keeps its own pages consistent (there is no integrity_check): the
        lines are ``["ok"]``; the foreign-key rows are events of no session
        ``("adk_events", id, "adk_sessions")`` (the FK forbids them; checked anyway)."""
        rows = conn.execute(
            "SELECT 'adk_events', e.id, 'adk_sessions' FROM adk_events e WHERE NOT EXISTS "
            "(SELECT 1 FROM adk_sessions s WHERE s.app_name = e.app_name AND s.user_id = e.user_id "
            "AND s.session_id = e.session_id) LIMIT 100").fetchall()
        return ["ok"], [tuple(r) for r in rows]

    def schema_problems(self, conn: PgConnection, version: Optional[int]) -> list[str]:
        """What is on adk_lite's tables that adk_lite does not make (see
        :func:`adk_lite.postgres_check.schema_problems`)."""
        return postgres_check.schema_problems(conn, self.models)

    @staticmethod
    def vacuum(conn: PgConnection) -> None:
        """``VACUUM ANALYZE`` of adk_lite's tables (outside a transaction)."""
        have = PostgresBackend.tables_of(conn.execute)
        conn.execute("VACUUM ANALYZE " + ", ".join(t for t in (*TABLES, *schema.LATER_TABLES) if t in have))

    @staticmethod
    @contextlib.contextmanager
    def secure_delete(conn: PgConnection) -> Iterator[None]:
        """Nothing to turn on: PostgreSQL has no ``secure_delete``. Deleted rows stay in
        the tables' pages until ``VACUUM`` lets later writes reuse the space (``VACUUM
        FULL`` rewrites the tables without them), and in the server's WAL and backups."""
        yield

    @staticmethod
    def lock_user(conn: PgConnection, app: str, user: str, exclusive: bool) -> None:
        """Take the transaction-level advisory lock of one ``(app, user)``
        (:func:`user_lock_key`): shared for a write that adds or changes rows of that
        user (append, create, fork, import, state), exclusive for an erase. Writers of
        one user run at once; an erase waits for those in flight and holds off new
        ones until it commits, so none of their rows slips past it. Sent without
        waiting (pipeline): a wait beyond ``lock_timeout`` fails the transaction at
        its next read as :class:`~adk_lite.errors.DatabaseLockedError`."""
        conn.execute(f"SELECT pg_advisory_xact_lock{'' if exclusive else '_shared'}(%s)", (user_lock_key(app, user),))

    @staticmethod
    def purge_search(conn: PgConnection) -> None:
        """Nothing to purge: the search column is part of the event's row, deleted with it."""

    @staticmethod
    def checkpoint(conn: PgConnection) -> bool:
        """Nothing to do: the server checkpoints its own WAL (shared by every database
        on it). Returns True."""
        return True

    def file_sizes(self) -> dict[str, int]:
        """Bytes of adk_lite's tables as ``{"db", "wal", "shm"}`` (``wal``/``shm`` are 0:
        a server's WAL is shared by every database on it)."""
        conn = self.peewee.acquire()
        try:
            return {"db": self._table_bytes(conn), "wal": 0, "shm": 0}
        finally:
            self.peewee.release(conn)

    def close(self) -> None:
        """Close every connection."""
        self.peewee.close_all()


