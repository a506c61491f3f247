"""The SQL layer: every statement adk_lite runs, compiled once, and the
transactions around them.

Statements are built from the Peewee models once per store (``query.sql()``) and
executed on the thread's own sqlite3 connection: Peewee's query builder costs
tens of microseconds per statement, more than SQLite's own work. Every write is
one ``BEGIN IMMEDIATE`` transaction (a deferred one that reads then writes fails
at once under a second writer); reads that need one snapshot run in a deferred
transaction and are fetched fully. Driver errors are translated by
:func:`adk_lite.database.translate`.

The store takes values already checked by the service layer and returns rows;
it knows nothing of ``Session``/``Event`` objects, so the ADK adapter uses it
directly with its own types.

Rows (named tuples, so callers read fields by name):
    :class:`SessionRow` ``(created_at, updated_at, revision, incarnation)``;
    :class:`EventRow` ``(event_id, invocation_id, author, branch, timestamp, body)``;
    :class:`ListedSession` ``(app_name, user_id, session_id, created_at, updated_at,
    revision, incarnation)``; state rows ``(scope, state_key, state_value JSON)``.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
import threading
import time
import weakref
from typing import Any, Callable, NamedTuple, Optional, Sequence

import peewee as pw

from . import artifacts, codec, errors, memory, schema, usage
from .database import Backend
from .scopes import APP, SESSION, USER

class SessionRow(NamedTuple):
    """A session's own row: times in epoch seconds, the write count, and the random
    id given at creation (a session deleted and created again gets a new one)."""

    created_at: float
    updated_at: float
    revision: int
    incarnation: str


class EventRow(NamedTuple):
    """One stored event: the columns, and ``body``, the rest of the event as JSON text."""

    event_id: str
    invocation_id: str
    author: str
    branch: Optional[str]
    timestamp: float
    body: str


class ListedSession(NamedTuple):
    """A session's row as ``list_sessions`` reads it (with its three ids)."""

    app_name: str
    user_id: str
    session_id: str
    created_at: float
    updated_at: float
    revision: int
    incarnation: str


class SearchRow(NamedTuple):
    """One search hit: its keyset ``(rank, rowid)`` (bm25, lower is a better match; the
    event's ``id``) and ``hit``, the values of :class:`adk_lite.types.SearchHit` in its
    field order ``(app_name, user_id, session_id, event_id, invocation_id, author,
    timestamp, rank, snippet)``."""

    rank: float
    rowid: int
    hit: tuple


def new_incarnation() -> str:
    """A random incarnation id for a new session: 16 hex digits."""
    return secrets.token_hex(8)


_SENTINEL = "\x00adk_lite:"
_FIRST_KEY = (float("-inf"), "", "", "")
_LAST_KEY = (float("inf"), "", "", "")  # newest first: every stored key sorts before it


def _p(name: str) -> pw.Value:
    """A named parameter placeholder for compiling a statement."""
    return pw.Value(_SENTINEL + name, converter=False)


def _literal(text: str) -> pw.SQL:
    """A constant string written into the SQL text (only for our own constants)."""
    return pw.SQL("'" + text.replace("'", "''") + "'")


def _compile(query: Any, *names: str) -> str:
    """Return the SQL of ``query`` after checking its parameters come in ``names`` order."""
    sql, params = query.sql()
    if params != [_SENTINEL + n for n in names]:
        raise RuntimeError(f"compiled statement takes {params}, expected {names}: {sql}")
    return sql


def app_user_filter(app: Optional[str], user: Optional[str], first: str = "",
                    params: Optional[list] = None, mark: str = "?") -> tuple[str, list]:
    """A ``WHERE`` clause on ``app_name`` / ``user_id`` (None: not filtered),
    after an optional ``first`` condition with its ``params``; ``mark`` is the
    dialect's parameter placeholder (the Peewee database's ``param``).

    Returns:
        ``(" WHERE ..." or "", params)`` for a statement on any adk_lite table.
    """
    clauses, params = ([first] if first else []), list(params or [])
    for column, value in (("app_name", app), ("user_id", user)):
        if value is not None:
            clauses.append(f"{column} = {mark}")
            params.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _copy_error(exc: BaseException) -> BaseException:
    """The error a group commit's failure gives each other caller of the group."""
    if isinstance(exc, errors.AdkLiteError):
        return type(exc)(*exc.args)
    return errors.DatabaseError(f"the group commit this call was part of failed ({type(exc).__name__}: {exc}); "
                                "nothing of it was written")


class _Pending:
    """A write waiting for a group commit, and then its outcome."""

    __slots__ = ("fn", "args", "result", "error", "done")

    def __init__(self, fn: Callable, args: tuple) -> None:
        self.fn, self.args = fn, args
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.done = False


class Store:
    """Statements and transactions over one open database (a
    :class:`~adk_lite.database.Backend`).

    Thread-safe: each call takes a connection from the database's pool for its
    transaction and gives it back (a ``":memory:"`` database shares one,
    serialized by the database's lock). :meth:`close` waits for the calls in
    flight, so no connection is ever closed under a running statement.
    """

    def __init__(self, db: Backend) -> None:
        self.db = db
        self._guard = db.lock or contextlib.nullcontext()
        self._closed = False
        self._active = 0  # calls between _enter and _leave
        self._calls = threading.Condition(threading.Lock())
        self._writer = threading.RLock()  # one write transaction at a time in this process
        self._serial = db.SINGLE_WRITER  # else writes run at once, each in its own transaction
        self._no_lock = contextlib.nullcontext()
        self._queue: list[_Pending] = []  # appends waiting for the next group commit
        self._queue_lock = threading.Lock()
        self.write_transactions = 0
        """How many write transactions this store has committed (a group commit counts once)."""
        self._locks: "weakref.WeakValueDictionary[tuple, threading.Lock]" = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()
        self._sql = self._compile_all()
        # closes the database once: at close(), at interpreter exit, or when the store is collected
        self._closer = weakref.finalize(self, _shut, weakref.ref(self), db, self._guard)
        self._p = db.peewee.param  # the placeholder of the hand-written statements below

    # -- compiled statements ------------------------------------------------
    def _compile_all(self) -> dict[str, str]:
        m = self.db.models
        S, E, T, U = m.Session, m.Event, m.State, m.Usage
        key = ("app", "user", "session")
        usage_names = ("event_id", "invocation_id", "model", "timestamp", "day", *usage.SUMS)

        def where_key(model):
            return (model.app_name == _p("app")) & (model.user_id == _p("user")) & (model.session_id == _p("session"))

        ev_cols = (E.event_id, E.invocation_id, E.author, E.branch, E.timestamp, E.body)
        ev_names = ("event_id", "invocation_id", "author", "branch", "timestamp", "body")
        st_cols = (T.app_name, T.user_id, T.session_id, T.scope, T.state_key)

        def scope_is(scope, app, user, session):
            return ((T.app_name == app) & (T.user_id == user) & (T.session_id == session)
                    & (T.scope == _literal(scope)))

        row_query = S.select(S.created_at, S.updated_at, S.revision, S.incarnation).where(where_key(S))
        sql = {
            "session_row": _compile(row_query, *key),
            # the row append reads and bumps: locked where the database has row locks, so
            # two appends to one session serialize (SQLite's write lock already does)
            "session_row_lock": _compile(row_query.for_update() if self.db.peewee.for_update else row_query, *key),
            "session_insert": _compile(
                S.insert_many([tuple(_p(n) for n in key + ("created_at", "updated_at", "revision", "incarnation",
                                                             "initial_state", "forked_from"))],
                              fields=[S.app_name, S.user_id, S.session_id, S.created_at, S.updated_at, S.revision,
                                      S.incarnation, S.initial_state, S.forked_from]).on_conflict_ignore().returning(),
                *key, "created_at", "updated_at", "revision", "incarnation", "initial_state", "forked_from"),
            "session_lineage": _compile(S.select(S.initial_state, S.forked_from).where(where_key(S)), *key),
            "session_forks": _compile(
                S.select(S.session_id, S.forked_from)
                .where((S.app_name == _p("app")) & (S.user_id == _p("user")) & S.forked_from.is_null(False))
                .order_by(S.updated_at.desc(), S.session_id).limit(_p("limit")), "app", "user", "limit"),
            # the row fork reads first: shared-locked where the database has row locks, so no
            # append (which locks it FOR UPDATE) commits between fork's reads of events and state
            "session_lineage_lock": _compile(
                S.select(S.initial_state, S.forked_from).where(where_key(S)).for_update("FOR SHARE")
                if self.db.peewee.for_update else S.select(S.initial_state, S.forked_from).where(where_key(S)), *key),
            "session_touch": _compile(
                S.update({S.revision: S.revision + pw.SQL("1"), S.updated_at: _p("updated_at")}).where(where_key(S)),
                "updated_at", *key),
            "session_delete": _compile(S.delete().where(where_key(S)), *key),
            "events_existing": _compile(
                E.select(*ev_cols).where(where_key(E) & E.event_id.in_(
                    pw.SQL(self.db.json_array_values(), [_SENTINEL + "ids"]))), *key, "ids"),
            "event_existing": _compile(E.select(*ev_cols).where(where_key(E) & (E.event_id == _p("id"))),
                                       *key, "id"),
            "event_insert": _compile(
                E.insert_many([tuple(_p(n) for n in key + ev_names)],
                              fields=[E.app_name, E.user_id, E.session_id, *ev_cols]).returning(), *key, *ev_names),
            "events_recent": _compile(
                E.select(*ev_cols).where(where_key(E) & (E.timestamp >= _p("after")))
                .order_by(E.timestamp.desc(), E.id.desc()).limit(_p("limit")), *key, "after", "limit"),
            "events_slice": _compile(
                E.select(*ev_cols).where(where_key(E)).order_by(E.timestamp, E.id)
                .limit(_p("limit")).offset(_p("offset")), *key, "limit", "offset"),
            "event_count": _compile(E.select(pw.fn.COUNT(E.id)).where(where_key(E)), *key),
            "usage_insert": _compile(
                U.insert_many([tuple(_p(n) for n in key + usage_names)],
                              fields=[U.app_name, U.user_id, U.session_id, *(getattr(U, n) for n in usage_names)])
                .returning(),
                *key, *usage_names),
            "usage_of_session": _compile(
                U.select(*(getattr(U, n) for n in usage_names)).where(where_key(U)).order_by(U.timestamp, U.event_id),
                *key),
            "state_upsert": _compile(
                T.insert_many([tuple(_p(n) for n in key + ("scope", "state_key", "state_value", "updated_at"))],
                              fields=[*st_cols, T.state_value, T.updated_at])
                .on_conflict(conflict_target=list(st_cols),
                             update={T.state_value: pw.EXCLUDED.state_value, T.updated_at: pw.EXCLUDED.updated_at}),
                *key, "scope", "state_key", "state_value", "updated_at"),
            "state_delete": _compile(
                T.delete().where((T.app_name == _p("app")) & (T.user_id == _p("user")) & (T.session_id == _p("session"))
                                 & (T.scope == _p("scope")) & (T.state_key == _p("state_key"))),
                *key, "scope", "state_key"),
            "state_delete_session": _compile(T.delete().where(scope_is(SESSION, _p("app"), _p("user"), _p("session"))),
                                             *key),
            "state_merged": _compile(
                T.select(T.scope, T.state_key, T.state_value).where(
                    scope_is(APP, _p("app"), _literal(""), _literal("")) | scope_is(USER, _p("app"), _p("user"), _literal(""))
                    | scope_is(SESSION, _p("app"), _p("user"), _p("session"))),
                "app", "app", "user", "app", "user", "session"),
            "state_scope": _compile(
                T.select(T.scope, T.state_key, T.state_value).where(
                    (T.app_name == _p("app")) & (T.user_id == _p("user")) & (T.session_id == _p("session"))
                    & (T.scope == _p("scope"))), *key, "scope"),
        }
        state_table = T._meta.table_name
        sql["state_of_keys"] = (
            f"SELECT t.app_name, t.user_id, t.session_id, t.scope, t.state_key, t.state_value "
            f"FROM {self.db.json_tuples(4)} AS k JOIN {state_table} AS t ON t.app_name = k.k0 "
            "AND t.user_id = k.k1 AND t.session_id = k.k2 AND t.scope = k.k3")
        # list_sessions: one statement per filter, keyset columns aligned with an index.
        listed = (S.app_name, S.user_id, S.session_id, S.created_at, S.updated_at, S.revision, S.incarnation)
        # Newest first: the same statements ordered and compared the other way (SQLite
        # reads the same index backwards).
        for variant, fixed, order in (
            ("list_app_user", ("app", "user"), (S.updated_at, S.session_id)),
            ("list_app", ("app",), (S.updated_at, S.user_id, S.session_id)),
            ("list_user", ("user",), (S.updated_at, S.app_name, S.session_id)),
            ("list_all", (), (S.updated_at, S.app_name, S.user_id, S.session_id)),
        ):
            for suffix, newest in (("", False), ("_newest", True)):
                keys, params = pw.Tuple(*order), pw.Tuple(*(_p(f.name) for f in order))
                cond = keys < params if newest else keys > params
                for name in reversed(fixed):
                    cond = ((S.app_name if name == "app" else S.user_id) == _p(name)) & cond
                query = (S.select(*listed).where(cond).order_by(*(f.desc() if newest else f for f in order))
                         .limit(_p("limit")))
                sql[variant + suffix] = _compile(query, *fixed, *(f.name for f in order), "limit")
        return sql

    # -- plumbing -----------------------------------------------------------
    def _enter(self, write: bool) -> None:
        """Count a call in, or refuse it.

        Raises:
            ServiceClosedError: after :meth:`close`.
            DatabaseOpenError: a write on a read-only service.
        """
        if write and self.db.read_only:
            raise errors.DatabaseOpenError(f"database {self.db.path} is open read-only (read_only=True): "
                                           "this call would write")
        with self._calls:
            if self._closed:
                raise errors.ServiceClosedError(f"the service on {self.db.path} is closed")
            self._active += 1

    def _leave(self) -> None:
        with self._calls:
            self._active -= 1
            if self._closed and not self._active:  # close() is waiting
                self._calls.notify_all()

    def _run(self, fn: Callable, *args: Any, write: bool = False) -> Any:
        """Run ``fn(conn, *args)`` in one transaction (IMMEDIATE when ``write``)
        on a pooled connection; driver errors are translated."""
        return self._use(fn, args, write, True)

    def _use(self, fn: Callable, args: tuple, write: bool, transaction: bool) -> Any:
        """Run ``fn(conn, *args)`` on a pooled connection, inside the call gate, in a
        transaction when ``transaction``; driver errors are translated.

        Writes of this process take turns on a lock of their own first, so threads
        queue on it (woken at once) rather than in SQLite's busy handler (which sleeps).
        """
        self._enter(write)
        try:
            with self._writer if write and self._serial else self._no_lock, self._guard:
                conn = self.db.peewee.acquire()
                try:
                    if not transaction:
                        return fn(conn, *args)
                    return self._transact(conn, fn, args, write)
                finally:
                    self.db.peewee.release(conn)
        except self.db.DRIVER_ERRORS as e:
            raise self.db.translate(e) from e
        finally:
            self._leave()

    def _grouped(self, fn: Callable, *args: Any) -> Any:
        """Run the write ``fn(conn, *args)`` in a group commit: every write waiting
        when the previous transaction ends is committed with it in one IMMEDIATE
        transaction, each in its own savepoint, so one that fails (stale, not
        found, bad input) is rolled back alone. The thread that takes the writer
        lock commits the group (its own write included); each caller returns, or
        raises its own error, only after the group's commit.

        Raises:
            What ``fn`` raises for this call; a driver error of the whole
            transaction (translated) for every call of the group.
        """
        if not self._serial:
            return self._use(fn, args, True, True)
        if not self._queue and self._writer.acquire(blocking=False):
            try:  # nobody is waiting: no group to gather (callers arriving now queue for the next)
                return self._use(fn, args, True, True)
            finally:
                self._writer.release()
        pending = _Pending(fn, args)
        with self._queue_lock:
            self._queue.append(pending)
        with self._writer:
            if not pending.done:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                try:
                    self._use(self._commit_group, (group,), True, True)
                except BaseException as e:
                    for other in group:
                        other.error = e if other is pending else _copy_error(e)
                finally:
                    for other in group:
                        other.done = True
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _commit_group(self, conn: Any, group: list[_Pending]) -> None:
        if len(group) == 1:  # nothing to isolate: its error rolls the transaction back
            group[0].result = group[0].fn(conn, *group[0].args)
            return
        for pending in group:
            conn.execute("SAVEPOINT adk_lite_append")
            try:
                pending.result = pending.fn(conn, *pending.args)
            except Exception as e:  # this call's own failure: undo it alone
                conn.execute("ROLLBACK TO adk_lite_append")
                pending.error = self.db.translate(e) if isinstance(e, self.db.DRIVER_ERRORS) else e
            conn.execute("RELEASE adk_lite_append")

    def _transact(self, conn: sqlite3.Connection, fn: Callable, args: tuple, write: bool) -> Any:
        """Run ``fn(conn, *args)`` in one transaction on ``conn`` (IMMEDIATE when
        ``write``): committed when it returns, rolled back when it raises."""
        conn.execute(self.db.BEGIN_WRITE if write else self.db.BEGIN_READ)
        try:
            result = fn(conn, *args)
            conn.execute("COMMIT")
            if write:
                self.write_transactions += 1
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def _check_writable(self, ids: Sequence[str], events: Sequence[tuple], rows: Sequence[tuple]) -> None:
        """Before a write: let the backend refuse what it cannot store: JSON texts (the
        bodies of ``events``, :class:`EventRow` shaped; the values of state ``rows``
        ``(scope, key, JSON)``; state keys are JSON strings too), and indexed values too
        long for its indexes (``ids``: the app, user and session ids written, or fewer;
        the events' ids; the state keys). A no-op on SQLite.

        Raises:
            ValueError: from the backend's ``check_json`` (PostgreSQL: a NUL
                character) or ``check_keys`` (PostgreSQL: a value over 600 bytes).
        """
        check = self.db.check_json
        if check is not None:
            check(e[5] for e in events)
            check(r[2] for r in rows)
            check(codec.dumps(r[1]) for r in rows if "\x00" in r[1])
        check = self.db.check_keys
        if check is not None:
            check(zip(("app_name", "user_id", "session_id"), ids))
            check(("event id", e[0]) for e in events)
            check(("state key", r[1]) for r in rows)

    def session_lock(self, app: str, user: str, session: str) -> threading.Lock:
        """Return the in-process lock that serializes appends to one session.

        The caller must keep a reference while it holds the lock (locks of
        sessions nobody holds are dropped).
        """
        key = (app, user, session)
        with self._locks_guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock

    # -- sessions -----------------------------------------------------------
    def create_session(self, app: str, user: str, session: str, state: Sequence[tuple[str, str, str]],
                       now: float, initial: Optional[str] = None) -> tuple[str, list[tuple[str, str, str]]]:
        """Insert a session with its initial state rows ``(scope, key, JSON)``;
        ``initial`` is the session-scope part as one JSON object, kept so that
        :meth:`fork_session` can replay the state (None: unknown).

        Returns:
            ``(incarnation, merged state rows after the insert)``.

        Raises:
            AlreadyExistsError: the session is already stored.
        """
        self._check_writable((app, user, session), (), state)

        def run(conn):
            self.db.lock_user(conn, app, user, False)
            incarnation = self._insert_session(conn, app, user, session, state, now, now, initial)
            return incarnation, conn.execute(self._sql["state_merged"], (app, app, user, app, user, session)).fetchall()
        return self._run(run, write=True)

    def _insert_session(self, conn: sqlite3.Connection, app: str, user: str, session: str,
                        state: Sequence[tuple[str, str, str]], created_at: float, updated_at: float,
                        initial: Optional[str] = None, forked_from: Optional[str] = None,
                        revision: int = 0) -> str:
        """Insert a session row (``revision``, 0 for a new session; a new incarnation;
        the ``initial_state`` and ``forked_from`` JSON texts or None) and its state
        rows ``(scope, key, JSON)`` inside the caller's write transaction.

        Returns:
            The new session's incarnation.

        Raises:
            AlreadyExistsError: the session is already stored.
        """
        incarnation = new_incarnation()
        inserted = conn.execute(self._sql["session_insert"], (app, user, session, created_at, updated_at, revision,
                                                              incarnation, initial, forked_from)).rowcount
        if inserted != 1:  # the key is taken (where writers run at once, possibly by one that just committed)
            raise errors.AlreadyExistsError(
                f"session {session!r} already exists for app_name={app!r}, user_id={user!r}")
        self._write_state(conn, app, user, session, state, (), created_at)
        return incarnation

    def read_session(self, app: str, user: str, session: str, limit: Optional[int],
                     after: Optional[float]) -> Optional[tuple[SessionRow, list, list[EventRow]]]:
        """Read one session in one snapshot.

        Args:
            limit: at most this many most recent events (None: all; 0: none).
            after: only events with ``timestamp >= after`` (epoch seconds), or None.

        Returns:
            ``(session row, state rows, event rows oldest first)``, or None when
            the session is not stored.
        """
        return self._run(self._read_session, app, user, session, limit, after)

    def _read_session(self, conn: Any, app: str, user: str, session: str, limit: Optional[int],
                      after: Optional[float]) -> Optional[tuple[SessionRow, list, list[EventRow]]]:
        """:meth:`read_session` inside the caller's transaction."""
        row = conn.execute(self._sql["session_row"], (app, user, session)).fetchone()
        if row is None:
            return None
        row = SessionRow(*row)
        state = conn.execute(self._sql["state_merged"], (app, app, user, app, user, session)).fetchall()
        events = []
        if limit != 0:
            events = list(map(EventRow._make, conn.execute(self._sql["events_recent"], (
                app, user, session, float("-inf") if after is None else after,
                self.db.NO_LIMIT if limit is None else limit))))
            events.reverse()
        return row, state, events

    def read_whole_session(self, app: str, user: str, session: str) -> Optional[tuple]:
        """Read everything an export or a copy carries of one session, in one snapshot.

        Returns:
            ``(session row, initial_state JSON text or None, forked_from JSON text or
            None, state rows, every event row oldest first, usage rows)`` (usage rows
            ``(event_id, invocation_id, model, timestamp, day, *counts)`` ordered by
            time; those of trimmed events included), or None when it is not stored.
        """
        def run(conn):
            found = self._read_session(conn, app, user, session, None, None)
            if found is None:
                return None
            initial, forked_from = conn.execute(self._sql["session_lineage"], (app, user, session)).fetchone()
            return (found[0], initial, forked_from, found[1], found[2],
                    conn.execute(self._sql["usage_of_session"], (app, user, session)).fetchall())
        return self._run(run)

    def usage_rows(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        """Run ``get_usage``'s query (:func:`adk_lite.usage.query`) in one read transaction.

        Raises:
            DatabaseError: the database has no ``adk_usage`` table (schema version 4 or
                older, opened read-only: read-only opens never migrate).
        """
        table = self.db.models.Usage._meta.table_name

        def run(conn):
            if table not in self.db.tables(conn):
                raise errors.DatabaseError(
                    f"database {self.db.path} has no usage table yet (schema_version {self._stored_version(conn)}): "
                    "open it read-write once (any write, e.g. DatabaseSessionService(path)) to build it")
            return conn.execute(sql, params).fetchall()
        return self._run(run)

    def read_event_slice(self, app: str, user: str, session: str, offset: int, limit: int) -> list[EventRow]:
        """Read the session's events ``offset`` to ``offset + limit - 1`` in the order
        ``get_session`` returns them (oldest first; equal timestamps in append order),
        without reading the events before them (a page of a huge session).

        Args:
            offset, limit: ints >= 0 (checked by the caller).

        Returns:
            The event rows, oldest first; ``[]`` past the end or for a session not stored.
        """
        return self._run(lambda conn: list(map(EventRow._make, conn.execute(
            self._sql["events_slice"], (app, user, session, limit, offset)))))

    def delete_session(self, app: str, user: str, session: str) -> None:
        """Delete a session, its events and its session-scope state (a no-op if absent)."""
        self.delete_sessions([(app, user, session)])

    def delete_sessions(self, keys: Sequence[tuple[str, str, str]]) -> None:
        """Delete sessions ``(app, user, session)`` with their events and
        session-scope state, in one IMMEDIATE transaction (absent ones are skipped)."""
        self._run(self._delete_keys, keys, write=True)

    def _delete_keys(self, conn: sqlite3.Connection, keys: Sequence[tuple[str, str, str]]) -> None:
        conn.executemany(memory.forget_sessions_sql(self.db), keys)  # the memories that came from them
        conn.executemany(self._sql["state_delete_session"], keys)
        conn.executemany(self._sql["session_delete"], keys)  # events go by the FK's ON DELETE CASCADE
        artifacts.delete_sessions(conn, self.db, keys)  # session-scoped artifacts; user: ones stay

    def _all_events(self, conn: sqlite3.Connection, key: tuple[str, str, str]) -> list[EventRow]:
        """Every event row of a session, oldest first (the order of ``read_session``)."""
        rows = list(map(EventRow._make, conn.execute(self._sql["events_recent"],
                                                     (*key, float("-inf"), self.db.NO_LIMIT))))
        rows.reverse()
        return rows

    def fork_session(self, app: str, user: str, source: str, new: str, before: Optional[str], now: float,
                     replay: Callable[[Optional[str], list[EventRow]], list[tuple[str, str, str]]]) -> dict[str, Any]:
        """Create session ``new`` as a copy of ``source`` (same app and user) in one
        IMMEDIATE transaction: its events (all, or those before the first event of
        invocation ``before``, the cut ADK's rewind makes) with their ids, and its
        session-scope state at that cut; the source is not changed. Events and state
        are read at one moment: SQLite's write lock excludes every other writer, and on
        PostgreSQL the source's row is locked ``FOR SHARE`` first, so no append to it
        (which locks it ``FOR UPDATE``) commits between the two reads.

        Args:
            before: an invocation id, or None for every event and the current state.
            now: the fork's ``created_at`` / ``updated_at``, epoch seconds.
            replay: ``replay(initial_state JSON or None, event rows before the cut)``
                returns the session-scope state rows ``(scope, key, JSON)`` at the cut.

        Returns:
            The lineage stored in the fork's ``forked_from``: ``{"session_id"
            (the source), "before_invocation_id", "events" (copied), "forked_at"
            (epoch seconds), "state_exact" (False only for a cut in a session whose
            initial state is unknown: created before schema version 3, or imported)}``.

        Raises:
            SessionNotFoundError: ``source`` is not stored.
            InvocationNotFoundError: no event of ``before`` in ``source``.
            AlreadyExistsError: ``new`` is already stored.
            ValueError: ``new`` is longer than the backend's indexes allow.
        """
        self._check_writable((app, user, new), (), ())

        def run(conn):
            self.db.lock_user(conn, app, user, False)
            # the source's row locked FOR SHARE (PostgreSQL): appends wait, so its events and
            # its state below are read at one moment, each statement at READ COMMITTED
            found = conn.execute(self._sql["session_lineage_lock"], (app, user, source)).fetchone()
            if found is None:
                raise errors.SessionNotFoundError(
                    f"session {source!r} not found for app_name={app!r}, user_id={user!r}")
            initial = found[0]
            rows = self._all_events(conn, (app, user, source))
            if before is None:
                cut = len(rows)
                state = conn.execute(self._sql["state_scope"], (app, user, source, SESSION)).fetchall()
            else:
                cut = next((i for i, r in enumerate(rows) if r.invocation_id == before), None)
                if cut is None:
                    raise errors.InvocationNotFoundError(
                        f"invocation {before!r} has no event in session {source!r} (app_name={app!r}, "
                        f"user_id={user!r})")
                state = replay(initial, rows[:cut])
            lineage = {"session_id": source, "before_invocation_id": before, "events": cut, "forked_at": now,
                       "state_exact": before is None or initial is not None}
            self._insert_session(conn, app, user, new, state, now, now, initial, codec.dumps(lineage))
            conn.executemany(self._sql["event_insert"], [(app, user, new) + tuple(r) for r in rows[:cut]])
            return lineage
        return self._run(run, write=True)

    def lineage(self, app: str, user: str, session: str) -> Optional[dict[str, Any]]:
        """The ``forked_from`` lineage of a session (see :meth:`fork_session`), or
        None when it is not a fork.

        Raises:
            SessionNotFoundError: the session is not stored.
        """
        found = self._run(lambda conn: conn.execute(self._sql["session_lineage"], (app, user, session)).fetchone())
        if found is None:
            raise errors.SessionNotFoundError(f"session {session!r} not found for app_name={app!r}, user_id={user!r}")
        return None if found[1] is None else codec.loads(found[1])

    def forks(self, app: str, user: str, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """The user's forks, most recently updated first, at most ``limit`` (an int >= 0),
        in one statement: ``[(session_id, lineage as lineage() returns it)]``."""
        rows = self._run(lambda conn: conn.execute(self._sql["session_forks"], (app, user, limit)).fetchall())
        return [(session, codec.loads(lineage)) for session, lineage in rows]

    def user_tables(self) -> list[tuple[str, str]]:
        """Every table that holds rows of one ``(app_name, user_id)``, as ``(the name
        :meth:`delete_user` reports its count under, table)``, in the order an erase
        deletes them (rows that refer to others first). A table added for a user's data
        belongs here: the erase, its dry run and its counts then cover it."""
        m = self.db.models
        return [("memories", m.Memory._meta.table_name), ("state_keys", m.State._meta.table_name),
                ("events", m.Event._meta.table_name), ("sessions", m.Session._meta.table_name)]

    def delete_user(self, app: str, user: str, dry_run: bool) -> dict[str, Any]:
        """Erase one user of one app: the user's rows of every table of
        :meth:`user_tables` (sessions with their events and session state, the
        ``user:`` state, memories) and the user's artifacts with the bytes only they
        referred to (:func:`adk_lite.artifacts.delete_user`), in one write transaction with
        the backend's secure delete on (deleted content overwritten) that also purges the
        full-text indexes (:meth:`~adk_lite.database.Backend.purge_search`), then a WAL
        checkpoint (TRUNCATE) so no copy stays in the write-ahead log. App state stays.

        Exact under concurrent writers: the transaction holds the user's exclusive lock
        (:meth:`~adk_lite.database.Backend.lock_user`), which every write that adds rows
        of that user takes shared, and (PostgreSQL) locks the user's session rows before
        deleting. A write of that user in flight when the erase starts commits first and
        is erased; one that starts later waits until the erase has committed, and then
        finds no session (an append or ``update_keys`` raises ``SessionNotFoundError``
        and writes nothing) or makes new rows (a new session, a new ``user:`` key).

        Args:
            dry_run: only count (a read transaction; works on a read-only service).

        Returns:
            ``{"sessions", "events", "state_keys" (session and user rows), "memories"
            (deleted ones' markers included), ...one count per table of
            :meth:`user_tables`, "dry_run", "checkpointed"}``: the rows
            this erase deleted (a dry run: counted); ``checkpointed`` is False when another
            connection's reader kept the checkpoint from finishing (the WAL may then
            still hold erased pages until the next checkpoint), None for a dry run.

        Raises:
            DatabaseLockedError: the lock or a row was not had within the busy timeout
                (or, PostgreSQL, a deadlock with another writer); nothing was deleted.
        """
        tables = self.user_tables()
        where = f" WHERE app_name = {self._p} AND user_id = {self._p}"
        sessions = self.db.models.Session._meta.table_name
        if dry_run:
            def count(conn):  # a read-only file of an older schema lacks the later tables
                present = self.db.tables(conn)
                return {**{name: conn.execute(f"SELECT COUNT(*) FROM {table}{where}", (app, user)).fetchone()[0]
                           if table in present else 0 for name, table in reversed(tables)},
                        "dry_run": True, "checkpointed": None}
            return self._run(count)

        def erase(conn):
            self.db.lock_user(conn, app, user, True)
            if self.db.peewee.for_update:  # a writer holding one of them (without the user lock) commits first
                conn.execute(f"SELECT session_id FROM {sessions}{where} FOR UPDATE", (app, user)).fetchall()
            counts = {name: conn.execute(f"DELETE FROM {table}{where}", (app, user)).rowcount
                      for name, table in tables}
            # always: the index may still hold words of this user's sessions deleted before
            self.db.purge_search(conn)
            artifacts.delete_user(conn, self.db, app, user)  # every scope, with the bytes only they referred to
            return {**{name: counts[name] for name, _table in reversed(tables)}, "dry_run": False}

        def run(conn):
            with self.db.secure_delete(conn):
                counts = self._transact(conn, erase, (), True)
            counts["checkpointed"] = self.db.checkpoint(conn)
            return counts
        return self._use(run, (), True, False)

    def trim_session(self, key: tuple[str, str, str], pick: Callable[[list[EventRow]], list[str]],
                     delete: bool) -> tuple[int, int]:
        """Delete the events ``pick(rows)`` names (event ids) from one session, in one
        transaction (IMMEDIATE when ``delete``, with the session row locked as appends
        lock it, so ``pick`` sees every event committed before the delete); state and
        the session row stay.

        Args:
            pick: given the session's event rows oldest first, returns the ids to delete.
            delete: False only counts (a dry run).

        Returns:
            ``(events, bytes)``: how many events, and the UTF-8 bytes of their stored
            text (ids, author, body); 0, 0 for a session that is not stored.
        """
        table = self.db.models.Event._meta.table_name
        p = self._p
        sql = f"DELETE FROM {table} WHERE app_name = {p} AND user_id = {p} AND session_id = {p} AND event_id = {p}"

        def run(conn):
            if delete:  # as an append does: a writer of this session waits, and trim reads what it committed
                conn.execute(self._sql["session_row_lock"], key).fetchall()
            rows = self._all_events(conn, key)
            ids = set(pick(rows))
            gone = [r for r in rows if r.event_id in ids]
            if delete and gone:
                conn.executemany(sql, [(*key, r.event_id) for r in gone])
            return len(gone), sum(len(f"{r.event_id}{r.invocation_id}{r.author}{r.branch or ''}{r.body}".encode())
                                  for r in gone)
        return self._run(run, write=delete)

    def prune(self, updated_before: float, app: Optional[str], user: Optional[str], limit: Optional[int],
              delete: bool) -> tuple[int, int]:
        """Count, and when ``delete`` also delete, sessions not updated since a time.

        The sessions are picked, counted and deleted in one transaction
        (IMMEDIATE when ``delete``), so a session updated meanwhile is never
        deleted. Call again until it returns ``(0, 0)`` to prune in batches.

        Args:
            updated_before: epoch seconds; sessions with ``updated_at`` before it go.
            app, user: only this ``app_name`` / ``user_id``, or None for every one.
            limit: at most this many sessions (a batch), or None for all.
            delete: False only counts (a dry run; works on a read-only service).

        Returns:
            ``(sessions, events)`` counted (and deleted).
        """
        where, params = app_user_filter(app, user, f"updated_at < {self._p}", [updated_before], self._p)
        table = self.db.models.Session._meta.table_name
        pick = f"SELECT app_name, user_id, session_id FROM {table}{where} LIMIT {self._p}"

        def run(conn):
            keys = conn.execute(pick, (*params, self.db.NO_LIMIT if limit is None else limit)).fetchall()
            events = sum(self._event_counts(conn, keys))
            if delete:
                self._delete_keys(conn, keys)
            return len(keys), events
        return self._run(run, write=delete)

    def list_sessions(self, app: Optional[str], user: Optional[str], limit: Optional[int],
                      after: Optional[tuple], newest: bool = False) -> tuple[list[ListedSession], dict]:
        """Read one page of sessions, oldest update first (``newest``: newest first),
        with their state.

        Args:
            limit: page size, or None for all.
            after: the key ``(updated_at, app_name, user_id, session_id)`` of the
                last session of the previous page, or None for the first page.
            newest: order by ``(updated_at, ...)`` descending instead of ascending.

        Returns:
            ``(rows, states)``: :class:`ListedSession` rows, and ``states``, which
            maps ``(app, user, session)`` to that session's merged state rows.
        """
        k_updated, k_app, k_user, k_session = after or (_LAST_KEY if newest else _FIRST_KEY)
        if app is not None and user is not None:
            variant, params = "list_app_user", (app, user, k_updated, k_session)
        elif app is not None:
            variant, params = "list_app", (app, k_updated, k_user, k_session)
        elif user is not None:
            variant, params = "list_user", (user, k_updated, k_app, k_session)
        else:
            variant, params = "list_all", (k_updated, k_app, k_user, k_session)

        variant += "_newest" if newest else ""

        def run(conn):
            rows = list(map(ListedSession._make, conn.execute(self._sql[variant],
                                                              params + (self.db.NO_LIMIT if limit is None else limit,))))
            # every state row of the page in one statement: a round trip per session
            # and user costs a page of 100 its milliseconds on a server
            scopes = {r[:3]: ((r[0], "", "", APP), (r[0], r[1], "", USER), (*r[:3], SESSION)) for r in rows}
            wanted = list(dict.fromkeys(k for keys in scopes.values() for k in keys))
            found: dict[tuple, list] = {k: [] for k in wanted}
            if wanted:
                for *where, scope, k, v in conn.execute(self._sql["state_of_keys"], (codec.dumps(wanted),)):
                    found[(*where, scope)].append((scope, k, v))
            return rows, {key: [s for k in keys for s in found[k]] for key, keys in scopes.items()}
        return self._run(run)

    def search_events(self, match: str, raw: bool, app: Optional[str], user: Optional[str],
                      session: Optional[str], author: Optional[str], limit: int,
                      after: Optional[tuple[float, int]]) -> list[SearchRow]:
        """Read one page of full-text hits, best match first, in one snapshot.

        Args:
            match: the backend's query (:meth:`Backend.match_query` of plain text, or
                with ``raw`` the caller's text, already checked by :meth:`match_error`).
            raw: True when ``match`` is in the backend's own query syntax.
            app, user, session, author: filters on the event's columns (None: any).
            limit: page size (>= 1).
            after: ``(rank, rowid)`` of the last hit of the previous page, or None.

        Returns:
            :class:`SearchRow` rows ordered by ``(rank, rowid)``, each with a snippet
            where matched terms are marked ``«...»`` (:data:`adk_lite.schema.SNIPPET`).

        Raises:
            DatabaseError: the database has no search index yet (one written by an
                older adk_lite, opened read-only: open it once read-write to build it).
        """
        filters = [(c, v) for c, v in (("app_name", app), ("user_id", user), ("session_id", session),
                                       ("author", author)) if v is not None]

        def run(conn):
            rows = self.db.search(conn, match, raw, filters, limit, after)
            return [SearchRow(r[-3], r[-2], (*r[:-3], r[-3], r[-1])) for r in rows]
        return self._run(run)

    def match_error(self, match: str) -> Optional[str]:
        """What is wrong with the FTS5 query ``match`` (SQLite's message), or None when
        it is valid; checked on an empty index in memory, not on the file."""
        return self.db.match_error(match)

    # -- events and state ---------------------------------------------------
    def append(self, app: str, user: str, session: str, expected: Optional[tuple[int, str]],
               events: Sequence[tuple], upserts: Sequence[tuple[str, str, str]],
               deletes: Sequence[tuple[str, str]], updated_at: float) -> tuple[Optional[int], dict[str, tuple]]:
        """Append events and apply their state in one IMMEDIATE transaction.

        Args:
            expected: ``(revision, incarnation)`` the caller's Session object
                holds; None skips the stale check (``update_keys``, import).
            events: ``(event_id, invocation_id, author, branch, timestamp, body)``.
            upserts: state rows ``(scope, key, JSON)`` to write.
            deletes: state keys ``(scope, key)`` to delete.
            updated_at: the session's new ``updated_at`` (epoch seconds).

        Appends of several threads that wait at once are committed together (see
        :meth:`_grouped`), each checked and undone alone.

        Returns:
            ``(new revision, {})``; or, when every event is already stored,
            ``(None, {event_id: stored EventRow})`` and nothing is written (a safe retry).

        Raises:
            SessionNotFoundError: the session is not stored.
            StaleSessionError: the stored revision or incarnation differs from
                ``expected`` (another writer, or the session was deleted and
                created again since the object was read).
            AlreadyExistsError: some of the events are stored and others not.
        """
        self._check_writable((), events, upserts)
        used = usage.rows_of(events)  # before the transaction: parsed only when a body mentions usage

        def run(conn):
            self.db.lock_user(conn, app, user, False)
            locked = conn.execute(self._sql["session_row_lock"], (app, user, session))
            if not events:
                found = []
            elif self.db.PIPELINED:  # one lookup on the unique index per id, sent with the lock
                found = [conn.execute(self._sql["event_existing"], (app, user, session, e[0])) for e in events]
            else:
                found = [conn.execute(self._sql["events_existing"], (app, user, session,
                                                                     codec.dumps([e[0] for e in events])))]
            row = locked.fetchone()
            if row is None:
                raise errors.SessionNotFoundError(
                    f"session {session!r} not found for app_name={app!r}, user_id={user!r}")
            stored = {r[0]: EventRow._make(r) for cursor in found for r in cursor.fetchall()}
            if events:
                if len(stored) == len(events):
                    return None, stored
                if stored:
                    raise errors.AlreadyExistsError(
                        f"event ids {sorted(stored)} are already stored in session {session!r}; a batch must be "
                        "all new events or a retry of one that was stored")
            row = SessionRow._make(row)
            if expected is not None and (row.revision, row.incarnation) != expected:
                if expected[1] is None:
                    what = "is not known to this Session object: it was not read from this store"
                elif row.incarnation != expected[1]:
                    what = "was deleted and created again since this Session object was read"
                else:
                    what = (f"was changed by another writer: stored revision {row.revision}, "
                            f"this Session object has revision {expected[0]}")
                raise errors.StaleSessionError(
                    f"session {session!r} (app_name={app!r}, user_id={user!r}) {what}; "
                    "reload it with get_session and retry")
            if events:
                conn.executemany(self._sql["event_insert"], [(app, user, session) + e for e in events])
            if used:
                conn.executemany(self._sql["usage_insert"], [(app, user, session) + u for u in used])
            self._write_state(conn, app, user, session, upserts, deletes, time.time())
            conn.execute(self._sql["session_touch"], (updated_at, app, user, session))
            return row.revision + 1, stored
        return self._grouped(run)

    def _write_state(self, conn, app, user, session, upserts, deletes, now) -> None:
        """Upsert and delete state rows, in one order of keys for every writer: where
        writers run at once (PostgreSQL), rows locked in one order cannot deadlock."""
        if upserts:
            conn.executemany(self._sql["state_upsert"], [
                (app, "" if scope == APP else user, session if scope == SESSION else "", scope, k, v, now)
                for scope, k, v in sorted(upserts)])
        if deletes:
            conn.executemany(self._sql["state_delete"], [
                (app, "" if scope == APP else user, session if scope == SESSION else "", scope, k)
                for scope, k in sorted(deletes)])

    def put_state(self, app: str, user: str, session: str, upserts: Sequence[tuple[str, str, str]],
                  deletes: Sequence[tuple[str, str]], now: float) -> None:
        """Write state rows ``(scope, key, JSON)`` and delete keys ``(scope, key)`` in
        one IMMEDIATE transaction, without touching any session row or event (so
        app and user state can be restored with no session). ``user``/``session``
        are ignored for the scopes they do not apply to; ``now`` is epoch seconds."""
        self._check_writable((app, user, session), (), upserts)

        def run(conn):
            self.db.lock_user(conn, app, user, False)
            self._write_state(conn, app, user, session, upserts, deletes, now)
        self._run(run, write=True)

    def write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn(conn)`` in one write transaction (IMMEDIATE on SQLite) and return its
        result: all of it commits, or nothing when it raises. For modules above the
        store with statements of their own (:mod:`adk_lite.memory`).

        Raises:
            DatabaseOpenError: the service is read-only. ServiceClosedError: closed.
        """
        return self._run(fn, write=True)

    def read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn(conn)`` in one read transaction (one snapshot) and return its result.

        For inspection queries of tools such as :mod:`adk_lite.cli`; ``fn`` must
        fetch its rows fully. Driver errors are translated as for every call.
        """
        return self._run(fn)

    def scope_state(self, app: str, user: str, scope: str) -> list[tuple[str, str, str]]:
        """Read the state rows of one app (``scope="app"``, ``user=""``) or one user."""
        return self._run(lambda conn: conn.execute(self._sql["state_scope"], (app, user, "", scope)).fetchall())

    def event_counts(self, keys: Sequence[tuple[str, str, str]]) -> list[int]:
        """Count the events of each session ``(app, user, session)`` in one snapshot
        (0 for a session that is not stored)."""
        return self._run(self._event_counts, keys)

    def _event_counts(self, conn: sqlite3.Connection, keys: Sequence[tuple[str, str, str]]) -> list[int]:
        return [conn.execute(self._sql["event_count"], k).fetchone()[0] for k in keys]

    def count_events(self, app: str, user: str, session: str) -> int:
        """Count a session's events.

        Raises:
            SessionNotFoundError: the session is not stored.
        """
        def run(conn):
            if conn.execute(self._sql["session_row"], (app, user, session)).fetchone() is None:
                raise errors.SessionNotFoundError(
                    f"session {session!r} not found for app_name={app!r}, user_id={user!r}")
            return conn.execute(self._sql["event_count"], (app, user, session)).fetchone()[0]
        return self._run(run)

    # -- transfer (import/export) ---------------------------------------------
    def import_session(self, app: str, user: str, session: str, created_at: float, updated_at: float,
                       state_rows: Sequence[tuple[str, str, str]], event_rows: Sequence[tuple],
                       replace: bool, initial: Optional[str] = None, forked_from: Optional[str] = None,
                       revision: int = 0, usage_rows: Optional[Sequence[tuple]] = None) -> str:
        """Write a whole session (its row, session state and every event) in ONE
        IMMEDIATE transaction: after a crash at any point it is all there or absent.

        Args:
            created_at, updated_at: the session's times, epoch seconds.
            state_rows: ``(scope, key, JSON)`` rows, session scope.
            event_rows: ``(event_id, invocation_id, author, branch, timestamp, body)``
                in append order.
            replace: delete a stored session of that key first (same transaction).
            initial, forked_from: the ``initial_state`` and ``forked_from`` JSON texts
                (None: unknown / not a fork), already checked by the caller.
            revision: the session's write count (an int >= 0, checked by the caller).
            usage_rows: the session's usage rows ``(event_id, invocation_id, model,
                timestamp, day, *counts)`` as exported (those of trimmed events too; an
                empty list for a fork whose events are all copies), or None to make
                them from ``event_rows`` (:func:`adk_lite.usage.rows_of`: a file of
                format 1, an ADK store).

        Returns:
            The new session's incarnation (an imported session is a new creation).

        Raises:
            AlreadyExistsError: the session is stored and ``replace`` is False.
            DatabaseLockedError, DatabaseError: see :func:`adk_lite.database.translate`.
        """
        key = (app, user, session)
        self._check_writable(key, event_rows, state_rows)
        if usage_rows is None:
            usage_rows = usage.rows_of(event_rows)
        if self.db.check_keys is not None:
            self.db.check_keys(("event id", u[0]) for u in usage_rows)

        def run(conn):
            self.db.lock_user(conn, app, user, False)
            if replace:
                self._delete_keys(conn, [key])
            incarnation = self._insert_session(conn, app, user, session, state_rows, created_at, updated_at,
                                               initial, forked_from, revision)
            conn.executemany(self._sql["event_insert"], [key + tuple(e) for e in event_rows])
            if usage_rows:
                conn.executemany(self._sql["usage_insert"], [key + tuple(u) for u in usage_rows])
            return incarnation
        return self._run(run, write=True)

    def session_keys(self, app: Optional[str], user: Optional[str]) -> list[tuple[str, str, str]]:
        """The keys ``(app_name, user_id, session_id)`` of the stored sessions, sorted,
        optionally only of one app and/or user (None: every one)."""
        where, params = app_user_filter(app, user, mark=self._p)
        table = self.db.models.Session._meta.table_name
        sql = f"SELECT app_name, user_id, session_id FROM {table}{where} ORDER BY app_name, user_id, session_id"
        return self._run(lambda conn: conn.execute(sql, params).fetchall())

    def scope_rows(self, app: Optional[str], user: Optional[str]) -> list[tuple[str, str, str, str, str]]:
        """App and user state rows ``(app_name, user_id, scope, key, JSON)`` sorted by
        app, scope, user and key; with ``user``, that user's rows and the app rows.
        ``user_id`` is ``""`` for app rows."""
        p = self._p
        where, params = app_user_filter(app, None, f"scope IN ({p}, {p})", [APP, USER], p)
        if user is not None:
            where += f" AND (scope = {p} OR user_id = {p})"
            params += [APP, user]
        table = self.db.models.State._meta.table_name
        sql = (f"SELECT app_name, user_id, scope, state_key, state_value FROM {table}{where} "
               "ORDER BY app_name, scope, user_id, state_key")
        return self._run(lambda conn: conn.execute(sql, params).fetchall())

    # -- inspection and maintenance ------------------------------------------
    def stats(self, top: int = 0) -> dict[str, Any]:
        """Read the counts and facts of the database in ONE snapshot.

        Args:
            top: how many of the largest sessions (by event count) to list (0: none).

        Returns:
            ``{"sessions", "events", "state_keys", "apps", "users", "memories" (not
            deleted ones), "schema_version" (as stored), "artifacts", "artifact_versions",
            "artifact_blobs", "artifact_bytes" (see :func:`adk_lite.artifacts.counts`),
            "per_app": [{"app_name", "sessions", "users", "events"}],
            "largest_sessions": [{"app_name", "user_id", "session_id", "events"}] (only
            when ``top``)}`` plus the backend's facts (for SQLite: ``free_pages``, ``page_size``,
            ``journal_mode``, ``sqlite_version``, ``synchronous``, ``path`` and the
            file sizes, see :meth:`adk_lite.sqlite.SqliteBackend.facts`); ``users``
            counts distinct ``(app_name, user_id)`` pairs.
        """
        m = self.db.models
        sessions, events, state = (m.Session._meta.table_name, m.Event._meta.table_name,
                                   m.State._meta.table_name)

        def run(conn):
            apps = conn.execute(f"SELECT app_name, COUNT(*), COUNT(DISTINCT user_id) FROM {sessions} "
                                "GROUP BY app_name ORDER BY app_name").fetchall()
            per_app_events = dict(conn.execute(f"SELECT app_name, COUNT(*) FROM {events} GROUP BY app_name"))
            largest = []
            if top:
                largest = conn.execute(
                    f"SELECT app_name, user_id, session_id, COUNT(*) AS n FROM {events} "
                    f"GROUP BY app_name, user_id, session_id ORDER BY n DESC, app_name, user_id, session_id LIMIT {self._p}",
                    (top,)).fetchall()
            figures = {
                "sessions": sum(n for _a, n, _u in apps), "events": sum(per_app_events.values()),
                "state_keys": conn.execute(f"SELECT COUNT(*) FROM {state}").fetchone()[0], "apps": len(apps),
                "memories": memory.count(self.db, conn),
                "users": sum(u for _a, _n, u in apps), "schema_version": self._stored_version(conn),
                **artifacts.counts(conn if self.has_artifacts(conn) else None),
                **self.db.facts(conn),
                "per_app": [{"app_name": a, "sessions": n, "users": u, "events": per_app_events.get(a, 0)}
                            for a, n, u in apps],
            }
            if top:
                figures["largest_sessions"] = [{"app_name": a, "user_id": u, "session_id": s, "events": n}
                                               for a, u, s, n in largest]
            return figures
        return self._run(run)

    def has_artifacts(self, conn: Any) -> bool:
        """True when the database has the artifact tables (schema version 5 on): a file
        of an older version opened read-only is never migrated."""
        return (self._stored_version(conn) or 0) >= 5

    def _stored_version(self, conn: Any) -> Optional[int]:
        """The ``schema_version`` the file holds (checked digits at open), or None."""
        row = conn.execute(f"SELECT value FROM {self.db.models.Metadata._meta.table_name} "
                           "WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row and str(row[0]).isascii() and str(row[0]).isdigit() else None

    def check(self) -> dict[str, Any]:
        """Check the database in one snapshot: the backend's integrity and
        foreign-key checks (SQLite: with the search index's own check), our tables,
        the schema against what adk_lite makes at the stored ``schema_version``
        (``schema_problems`` of the backend), and session-scope state rows of no session.

        Returns:
            ``{"missing_tables": [name], "integrity_check": [line] (["ok"] when
            sound), "foreign_key_violations": [(table, rowid, parent table)],
            "schema_version": int or None, "schema_problems": [line],
            "stray_state_rows": int}``.
        """
        m = self.db.models
        sessions, state = m.Session._meta.table_name, m.State._meta.table_name

        def run(conn):
            tables = self.db.tables(conn)
            stray = 0
            if state in tables:
                stray = conn.execute(
                    f"SELECT COUNT(*) FROM {state} t WHERE scope = {self._p} AND NOT EXISTS (SELECT 1 FROM {sessions} s "
                    "WHERE s.app_name = t.app_name AND s.user_id = t.user_id AND s.session_id = t.session_id)",
                    (SESSION,)).fetchone()[0]
            integrity, foreign = self.db.integrity(conn)
            version = self._stored_version(conn)
            later = set() if version is None else set().union(
                *(names for added_in, names in schema.ADDED_TABLES.items() if added_in > version))
            return {  # a file of an older version (opened read-only, not migrated) lacks the later tables
                "missing_tables": [t._meta.table_name for t in m.all
                                   if t._meta.table_name not in tables and t._meta.table_name not in later],
                "integrity_check": integrity, "foreign_key_violations": foreign,
                "schema_version": version, "schema_problems": self.db.schema_problems(conn, version),
                "stray_state_rows": stray,
            }
        return self._run(run)

    def vacuum(self) -> dict[str, int]:
        """Checkpoint the WAL (TRUNCATE), VACUUM and optimize.

        Returns:
            ``{"bytes_before": int, "bytes_after": int}``: main file + WAL, bytes.
        """
        before = self.db.file_sizes()
        self._use(self.db.vacuum, (), True, False)
        after = self.db.file_sizes()
        return {"bytes_before": before["db"] + before["wal"], "bytes_after": after["db"] + after["wal"]}

    def checkpoint(self) -> dict[str, Any]:
        """Checkpoint the WAL into the main file and truncate it (a write: refused
        on a read-only database).

        Returns:
            ``{"busy": bool, "wal_bytes_before": int, "wal_bytes_after": int}``.
        """
        before = self.db.file_sizes()["wal"]
        done = self._use(self.db.checkpoint, (), True, False)
        return {"busy": not done, "wal_bytes_before": before, "wal_bytes_after": self.db.file_sizes()["wal"]}

    def backup(self, dest: str, progress: Callable[[int, int], None]) -> int:
        """Copy the database, from one read snapshot, into the existing empty file
        ``dest`` (writers go on meanwhile); ``progress(pages done, pages in all)``
        after each step. Returns the pages copied. A read: allowed read-only."""
        return self._use(self.db.backup, (dest, progress), False, False)

    def close(self) -> None:
        """Refuse new calls, wait for the calls in flight to finish, then close
        every connection. Later calls raise :class:`ServiceClosedError`; closing
        twice is harmless."""
        self._refuse()
        self._closer()

    def _refuse(self) -> None:
        """Refuse new calls and wait until the calls in flight have left."""
        with self._calls:
            self._closed = True
            while self._active:
                self._calls.wait()


def _shut(ref: "weakref.ref[Store]", db: Backend, guard: Any) -> None:
    """Close a store's database once: from :meth:`Store.close`, at interpreter exit
    for a store still open (after its calls in flight), or when the store is
    garbage-collected. Closing checkpoints the file (see the backend's ``close``).
    Never raises: at exit there is no caller left to tell."""
    store = ref()
    if store is not None:
        store._refuse()
    try:
        with guard:
            db.close()
    except (errors.AdkLiteError, OSError, *db.DRIVER_ERRORS):
        pass


