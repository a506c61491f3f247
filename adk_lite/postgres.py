"""The PostgreSQL backend: open a server database by URL, create its schema once
under an advisory lock, keep a bounded pool of psycopg 3 connections, and speak
PostgreSQL where the store needs its dialect (transactions, error translation,
maintenance, facts).

Imported only when a PostgreSQL URL is opened (:func:`adk_lite.database.open_database`).
The password of the URL is never written into a message, a repr or :attr:`PostgresBackend.path`:
they hold the URL with ``***`` in its place.
"""

from __future__ import annotations

import contextlib
import re
import select
import threading
from typing import Any, Optional

import peewee as pw
import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.string import TextLoader

from . import errors, schema
from .models import METADATA, TABLES, make_models
from .target import PostgresTarget, check_busy_timeout, mask_password

MAX_CONNECTIONS = 16
"""Default pool size: at most this many connections per service (``?max_connections=``)."""
POOL_TIMEOUT = 30.0
"""Default seconds a call waits for a free connection when all are busy (``?pool_timeout=``)."""
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
"""The JSON escape of NUL, not preceded by an escaped backslash (``\\\\u0000`` is text)."""
SCHEMA_LOCK = 0x61646B6C  # 'adkl': the pg_advisory_xact_lock key held while creating the schema

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


class PgConnection:
    """A psycopg connection (autocommit) with the sqlite3-like face the store uses:
    ``execute`` (returns a cursor), ``executemany``, ``in_transaction``, ``close``."""

    __slots__ = ("raw",)

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Any = None) -> psycopg.Cursor:
        """Run one statement; ``params`` a sequence for its ``%s`` placeholders."""
        return self.raw.execute(sql, params if params else None)

    def executemany(self, sql: str, rows: Any) -> None:
        """Run one statement for each parameter sequence of ``rows``."""
        with self.raw.cursor() as cur:
            cur.executemany(sql, rows)

    @property
    def in_transaction(self) -> bool:
        """True inside a transaction (or a failed one)."""
        return self.raw.info.transaction_status != TransactionStatus.IDLE

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
        self._idle: list[PgConnection] = []
        self._idle_lock = threading.Lock()
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
                with self._idle_lock:
                    conn = self._idle.pop() if self._idle else None
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
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in [broken, *idle]:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a dead socket may fail to close cleanly
                pass

    def release(self, conn: PgConnection) -> None:
        """Give back a connection taken with :meth:`acquire`; a broken one, or one a
        failure left inside a transaction, is closed instead."""
        try:
            raw = conn.raw
            if raw.closed or raw.broken:
                self._drop_idle(conn)
            elif conn.in_transaction:
                conn.close()
            else:
                with self._idle_lock:
                    self._idle.append(conn)
        finally:
            self._slots.release()

    def close_all(self) -> None:
        """Close every pooled connection and Peewee's own. The caller makes sure no call
        is using one (see ``Store.close``)."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
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
        read_only, models, peewee: as :class:`adk_lite.database.Backend`.

    Raises:
        DatabaseOpenError: the server cannot be reached or refuses the login; with
            ``read_only``, the database has no adk_lite tables.
        ForeignDatabaseError: some of adk_lite's table names exist but not the metadata.
        SchemaVersionError: written by a newer adk_lite, or an older schema (there is no
            PostgreSQL migration yet: PostgreSQL starts at the current schema version, without the SQLite-only search index).
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
    lock = None

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
            if row is not None and schema.check_version(row or None, self.path) == schema.SCHEMA_VERSION:
                return
            if self.read_only:
                raise errors.DatabaseOpenError(f"database {self.path} has no adk_lite tables yet")
        finally:
            self.peewee.release(conn)
        with self.peewee.atomic():
            self.peewee.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            have = self.tables_of(self.peewee.execute_sql)
            if METADATA in have:
                row = self.peewee.execute_sql(f"SELECT value FROM {METADATA} WHERE key = 'schema_version'").fetchone()
                version = schema.check_version(row, self.path)
                if version != schema.SCHEMA_VERSION:  # no PostgreSQL migrations exist: v2 is the first
                    raise errors.SchemaVersionError(
                        f"database {self.path} has schema_version {version}: PostgreSQL schemas start at "
                        f"{schema.SCHEMA_VERSION}, and this one cannot be migrated")
                return
            ours = sorted(have & set(TABLES))
            if ours:
                raise errors.ForeignDatabaseError(
                    f"database {self.path} has tables named like adk_lite's ({', '.join(ours)}) but no "
                    f"{METADATA}: not an adk_lite database")
            for model in self.models.all:  # in order: the events' raw FOREIGN KEY needs adk_sessions first
                model.create_table(safe=True)
            self.peewee.execute_sql(f"INSERT INTO {METADATA} (key, value) VALUES ('schema_version', %s)",
                                    (str(schema.SCHEMA_VERSION),))
        self.peewee.close()

    # -- the dialect: what the store asks of its backend ---------------------------
    def translate(self, exc: BaseException) -> errors.DatabaseError:
        """The :class:`~adk_lite.errors.DatabaseError` for a driver error (see :func:`translate`)."""
        return translate(exc, self.path, self.busy_timeout)

    def json_array_values(self) -> str:
        """SQL for the values of a JSON array given as one parameter (a subquery)."""
        return "(SELECT jsonb_array_elements_text(%s::jsonb))"

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
            "AND c.relkind = 'r' AND c.relname = ANY(%s)", (list(TABLES),)).fetchone()[0])

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

    @staticmethod
    def vacuum(conn: PgConnection) -> None:
        """``VACUUM ANALYZE`` of adk_lite's tables (outside a transaction)."""
        conn.execute("VACUUM ANALYZE " + ", ".join(TABLES))

    @staticmethod
    def secure_delete(conn: PgConnection) -> contextlib.AbstractContextManager:
        """Nothing to turn on: PostgreSQL has no secure delete. A deleted row's bytes
        stay in its table's pages until (auto)vacuum reuses the space, and in the
        server's WAL, archives and backups, which are the server's to manage."""
        return contextlib.nullcontext()

    @staticmethod
    def checkpoint(conn: PgConnection) -> bool:
        """Nothing to do: every commit is in the database already, and the server's
        WAL and checkpoints are the server's (``CHECKPOINT`` needs a superuser).
        Always True (nothing left for adk_lite to move)."""
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


