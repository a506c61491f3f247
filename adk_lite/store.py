"""The SQL layer: every statement adk_lite runs, and the transactions around them.

Statements are compiled once per store from the Peewee models
(:mod:`adk_lite.statements`) and executed on a connection taken from the backend's pool; the
call gate, transactions and group commit are :class:`adk_lite.gate.Gate`'s, the
maintenance calls :class:`adk_lite.maintenance.Maintenance`'s, the row types
:mod:`adk_lite.rows`'. Driver errors are translated by
:meth:`adk_lite.backend.Backend.translate`.

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

import sqlite3
import threading
import time
import weakref
from typing import Any, Callable, Optional, Sequence

from . import artifacts, codec, errors, memory, one_trip, usage
from .backend import Backend
from .gate import Gate
from .maintenance import Maintenance
from .rows import EventRow, ListedSession, SearchRow, SessionRow, new_incarnation
from .scopes import APP, SESSION, USER
from .statements import app_user_filter, compile_all

_FIRST_KEY = (float("-inf"), "", "", "")
_LAST_KEY = (float("inf"), "", "", "")  # newest first: every stored key sorts before it


class Store(Maintenance, Gate):
    """Statements and transactions over one open database (a
    :class:`~adk_lite.backend.Backend`).

    Thread-safe: each call takes a connection from the database's pool for its
    transaction and gives it back (a ``":memory:"`` database shares one,
    serialized by the database's lock). :meth:`close` waits for the calls in
    flight, so no connection is ever closed under a running statement. The call
    gate, transactions and group commit are :class:`~adk_lite.gate.Gate`'s; the
    maintenance calls (erase, prune, stats, check, vacuum, checkpoint, backup)
    :class:`~adk_lite.maintenance.Maintenance`'s.
    """

    def __init__(self, db: Backend) -> None:
        self._locks: "weakref.WeakValueDictionary[tuple, threading.Lock]" = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()
        self._sql = compile_all(db)
        self._append_guard = one_trip.guard_sql() if db.PIPELINED else None  # PostgreSQL: see adk_lite.one_trip
        super().__init__(db)  # the call gate; registers the closer
        self._p = db.peewee.param  # the placeholder of the hand-written statements below


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
        one_round_trip, run = self._append_plan(app, user, session, expected, events, upserts, deletes, updated_at)
        if one_round_trip is not None:
            try:
                return self._grouped(one_round_trip)
            except errors.DatabaseError as e:
                if not one_trip.refused(e.__cause__):
                    raise
        return self._grouped(run)

    def append_many(self, calls: Sequence[tuple]) -> list[tuple[Any, Optional[BaseException]]]:
        """:meth:`append` calls (``calls``: their argument tuples, each to another session) in
        ONE group commit on SQLite, each in its own savepoint (one that fails is undone alone),
        one after the other on PostgreSQL. Returns per call, in order, ``(what append returns,
        None)`` or ``(None, its error)``; each returned without error is committed."""
        outcomes: list[Any] = []
        runs = []
        for call in calls:
            try:
                if not self.db.SINGLE_WRITER:  # PostgreSQL: one after the other, as append runs them
                    outcomes.append((self.append(*call), None))
                    continue
                runs.append(self._append_plan(*call)[1])
                outcomes.append(None)  # its group's outcome, below
            except Exception as e:  # this call's own failure, handed to its caller
                outcomes.append((None, e))
        grouped = iter(self._grouped_all(runs) if runs else ())
        return [next(grouped) if outcome is None else outcome for outcome in outcomes]

    def _append_plan(self, app: str, user: str, session: str, expected: Optional[tuple[int, str]],
                     events: Sequence[tuple], upserts: Sequence[tuple[str, str, str]],
                     deletes: Sequence[tuple[str, str]], updated_at: float) -> tuple[Optional[Callable], Callable]:
        """:meth:`append`'s transactions ``(one_round_trip or None, run)``, each a ``fn(conn)``
        returning what it returns (``one_round_trip``: PostgreSQL, :mod:`adk_lite.one_trip`).
        Raises ValueError from :meth:`_check_writable`."""
        self._check_writable((), events, upserts)
        used = usage.rows_of(events)  # before the transaction: parsed only when a body mentions usage

        def write(conn, touch=True):
            if events:
                conn.executemany(self._sql["event_insert"], [(app, user, session) + e for e in events])
            if used:
                conn.executemany(self._sql["usage_insert"], [(app, user, session) + u for u in used])
            self._write_state(conn, app, user, session, upserts, deletes, time.time())
            if touch:
                conn.execute(self._sql["session_touch"], (updated_at, app, user, session))

        def one_round_trip(conn):  # PostgreSQL, see adk_lite.one_trip: refused, it is checked again by run
            self.db.lock_user(conn, app, user, False)
            conn.execute(self._append_guard, (updated_at, app, user, session, *expected, [e[0] for e in events]))
            write(conn, touch=False)  # the guard bumped the session row
            return expected[0] + 1, {}

        def run(conn):
            self.db.lock_user(conn, app, user, False)
            locked = conn.execute(self._sql["session_row_lock"], (app, user, session))
            if not events:
                found = []
            elif self.db.PIPELINED or len(events) == 1:  # one lookup on the unique index per id (sent with the lock)
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
            write(conn)
            return row.revision + 1, stored
        trip = self.db.PIPELINED and events and expected is not None and expected[1] is not None
        return one_round_trip if trip else None, run

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

    def merge_scope_state(self, app: str, user: str, scope: str, wanted: dict[str, str], replace: bool,
                          now: float) -> tuple[int, list[str]]:
        """Add app (``user=""``) or user state keys ``{key: JSON}`` in ONE write
        transaction that reads what is stored and writes under the same lock, so a key
        another writer sets meanwhile is compared, never overwritten unseen: a key not
        stored is written; one stored with another value is overwritten only with
        ``replace``. Returns ``(keys written, differing keys sorted)``."""
        self._check_writable((app, user), (), [(scope, k, v) for k, v in wanted.items()])

        def run(conn):
            self.db.lock_user(conn, app, user, False)
            stored = {k: v for _s, k, v in conn.execute(self._sql["state_scope"], (app, user, "", scope)).fetchall()}
            differ = sorted(k for k in wanted if k in stored and stored[k] != wanted[k])
            put = [(scope, k, v) for k, v in wanted.items() if stored.get(k) != v and (replace or k not in stored)]
            if put:
                self._write_state(conn, app, user, "", put, (), now)
            return len(put), differ
        return self._run(run, write=True)

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
            DatabaseLockedError, DatabaseError: see :meth:`adk_lite.backend.Backend.translate`.
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
