"""The synchronous API: :class:`DatabaseSessionService`, one transaction per call.

It checks arguments, converts between :mod:`adk_lite.types` and rows, applies
ADK's in-memory session semantics, and leaves SQL to :mod:`adk_lite.store`.

The steps that do not depend on the session and event types (``create``,
``read``, ``list_heads``, ``append_rows``, ...) are functions on a
:class:`~adk_lite.store.Store` in :mod:`adk_lite.steps`, shared with the ADK adapter
(:mod:`adk_lite.adk`), which only maps them to ``google.adk`` types and errors; they
stay importable from here.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

from . import codec, errors, outfile, usage, validate
from . import scopes
from .admin import AdminMethods, event_from_row
from .backend import open_database
from .lifecycle import UPDATE_KEYS_MARK
from .steps import (ORDERS, SessionHead, append_rows, create, event_data, fork, list_heads, read,  # noqa: F401
                    search_rows, trim)
from .rows import EventRow
from .store import Store
from .target import MEMORY
from .types import Event, EventActions, SearchHit, SearchResults, Session, SessionList


def _session(head: SessionHead, events: Optional[list[Event]] = None) -> Session:
    return Session(id=head.session_id, app_name=head.app_name, user_id=head.user_id, state=head.state,
                   events=events or [], last_update_time=head.last_update_time, revision=head.revision,
                   incarnation=head.incarnation)


class DatabaseSessionService(AdminMethods):
    """Sessions, an append-only event log and scoped state in one SQLite file.

    Args:
        db: where the database is. None (zero config): ``$ADK_LITE_DB`` if set,
            else ``.adk/sessions.sqlite3`` under the current directory (folders
            and file created, mode 0600). Also a path (str or PathLike),
            ``":memory:"`` (one database shared by this service's threads), or a
            ``sqlite:///path`` / ``sqlite+aiosqlite:///path`` URL as ADK takes.
        synchronous: ``"normal"`` (default: a process crash loses nothing
            acknowledged) or ``"full"`` (also power loss or an OS crash; slower).
        busy_timeout: seconds to wait for another connection's write lock before
            raising ``DatabaseLockedError`` (default 5).
        read_only: open an existing file read-only (for inspection: the main
            file's bytes and mtime never change, and nothing is created); every
            method that writes raises ``DatabaseOpenError``. See
            :class:`adk_lite.sqlite.SqliteBackend`.

    Raises:
        TypeError, ValueError: a bad argument, named in the message.
        DatabaseOpenError: a directory, or a path that cannot be created.
        CorruptDatabaseError: not a SQLite file, truncated or malformed.
        ForeignDatabaseError: a SQLite file that is not adk_lite's (e.g. ADK's own).
        SchemaVersionError: a file written by a newer adk_lite. In each case the
            file is left unchanged.
        DatabaseOpenError: with ``read_only``, a missing or empty file;
            ValueError for ``":memory:"``.

    Methods take ``app_name, user_id, session_id`` by keyword or in that order.
    The service is safe to share across threads; use it as a context manager or
    call :meth:`close`. The maintenance methods (``check``, ``prune``, ``export``,
    ``import_file``, ``copy_to``, ...) come from :class:`adk_lite.admin.AdminMethods`.
    """

    def __init__(self, db: Union[str, os.PathLike, None] = None, *, synchronous: str = "normal",
                 busy_timeout: float = 5.0, read_only: bool = False) -> None:
        self._store = Store(open_database(db, synchronous=synchronous, busy_timeout=busy_timeout, read_only=read_only))

    @property
    def path(self) -> str:
        """The database file's path (``":memory:"`` in memory)."""
        return self._store.db.path

    @property
    def store(self) -> Store:
        """The SQL layer, for adapters that bring their own types (see :mod:`adk_lite.store`)."""
        return self._store

    # -- sessions -----------------------------------------------------------
    def create_session(self, app_name: str, user_id: str, state: Optional[dict[str, Any]] = None,
                       session_id: Optional[str] = None) -> Session:
        """Create a session, as ADK's ``BaseSessionService.create_session``.

        Args:
            app_name, user_id: non-blank str, at most 256 characters.
            state: initial state; ``app:``/``user:`` keys go to their scopes (and
                replace what those scopes held), ``temp:`` keys are dropped.
            session_id: None or blank for a new uuid4; surrounding whitespace is
                stripped.

        Returns:
            The new :class:`Session` (revision 0) with the merged state.

        Raises:
            AlreadyExistsError: the session id is already stored for this app and user.
            TypeError, ValueError: a bad id or state (nothing is written).
        """
        return _session(create(self._store, app_name, user_id, scopes.check_delta(state, "state"), session_id,
                               time.time()))

    def get_session(self, app_name: str, user_id: str, session_id: str, *,
                    num_recent_events: Optional[int] = None,
                    after_timestamp: Optional[float] = None) -> Optional[Session]:
        """Read a session with its merged state and events, oldest first.

        As ADK's ``get_session`` with a ``GetSessionConfig``; events with equal
        timestamps come back in append order.

        Args:
            num_recent_events: at most this many most recent events; 0 returns no
                events (as ADK 2.x); None returns all.
            after_timestamp: only events with ``timestamp >= after_timestamp``
                (epoch seconds, inclusive).

        Returns:
            The :class:`Session`, or None when it is not stored.

        Raises:
            TypeError, ValueError: a bad id, a negative ``num_recent_events`` or a
                non-number ``after_timestamp``.
        """
        limit = validate.count(num_recent_events, "num_recent_events", 0)
        after = validate.timestamp(after_timestamp, "after_timestamp")
        found = read(self._store, app_name, user_id, session_id, limit, after)
        if found is None:
            return None
        head, rows = found
        return _session(head, [event_from_row(r) for r in rows])

    def list_sessions(self, app_name: Optional[str] = None, user_id: Optional[str] = None, *,
                      limit: Optional[int] = None, after: Optional[str] = None,
                      order: str = "oldest") -> SessionList:
        """List sessions without events, with merged state, oldest update first (as
        ADK), or newest first.

        Args:
            app_name, user_id: filters; None lists every app / user.
            limit: page size (>= 1), or None for every session.
            after: the ``next_cursor`` of the previous page, or None.
            order: ``"oldest"`` (default, as ADK) or ``"newest"``: by last update.

        Returns:
            A :class:`SessionList`; its ``next_cursor`` is None on the last page.
            Pages are keyset-paginated on ``(last_update_time, app_name, user_id,
            session_id)``: stable under concurrent inserts and as fast deep in the
            list as at its start. A cursor remembers its order.

        Raises:
            TypeError, ValueError: a bad filter, limit, order or cursor, or a
                cursor made for the other order.
        """
        heads, next_cursor = list_heads(self._store, app_name, user_id, limit, after, order)
        return SessionList(map(_session, heads), next_cursor)

    def search_events(self, query: str, *, app_name: Optional[str] = None, user_id: Optional[str] = None,
                      session_id: Optional[str] = None, author: Optional[str] = None, limit: int = 20,
                      after: Optional[str] = None, raw: bool = False) -> SearchResults:
        """Find events by their text, best match first (bm25 on SQLite, ``ts_rank`` on PostgreSQL).

        Indexed: each ``content.parts[]`` element's ``text``, a ``function_call``'s
        name and argument values, a ``function_response``'s name and response values
        (strings and numbers; see :data:`adk_lite.schema.INDEXED_PATHS`). Never
        indexed: binary parts, ``state_delta`` (so never ``temp:`` values), other
        fields. Matching ignores case and accents (``cafe`` finds ``Café``).

        Args:
            query: plain text (default): every word must appear in the event, in
                any order; a run with spaces inside quotes is not a phrase, and no
                character is syntax (``"``, ``-``, ``*``, ``:``, ``(`` are only
                separators), so any string is a valid query. With ``raw=True``, FTS5's
                query syntax: ``"a phrase"``, ``refund*`` (prefix), ``AND``, ``OR``,
                ``NOT``, ``NEAR(a b, 5)``, parentheses; on PostgreSQL, ``to_tsquery``
                syntax instead (``order <-> 7``, ``refund:*``, ``&``, ``|``, ``!``).
                At most 4096 characters.
            app_name, user_id, session_id, author: only events of this app, user,
                session or author (None: any).
            limit: hits per page (>= 1; default 20).
            after: the ``next_cursor`` of the previous page of the same search.
            raw: take ``query`` in the backend's syntax (FTS5, or ``to_tsquery``).

        Returns:
            :class:`SearchResults` of :class:`SearchHit` (ids, author, timestamp,
            ``rank``, ``snippet`` with terms marked ``«...»``); ``next_cursor`` is
            None on the last page. Pages are keyset-paginated on ``(rank, event row)``;
            ranks depend on the whole index, so a write between pages may move a
            hit across the page boundary.

        Raises:
            TypeError, ValueError: a bad argument or cursor (a cursor of another
                query or filters is refused), or with ``raw`` a query the backend
                refuses (the message gives its reason).
            DatabaseError: a database with no search index yet, opened read-only (a
                SQLite file older than schema_version 4, or a PostgreSQL database made
                before search existed).
        """
        rows, next_cursor = search_rows(self._store, query, raw, app_name, user_id, session_id, author, limit, after)
        return SearchResults([SearchHit(*r.hit) for r in rows], next_cursor)

    def delete_session(self, app_name: str, user_id: str, session_id: str) -> None:
        """Delete a session with its events and session-scope state.

        App and user state stay. Deleting an unknown session is a no-op (as ADK).

        Raises:
            TypeError, ValueError: a bad id.
        """
        app, user = validate.names(app_name, user_id)
        self._store.delete_session(app, user, validate.session_id(session_id))

    def fork_session(self, app_name: str, user_id: str, session_id: str, *, new_session_id: Optional[str] = None,
                     before_invocation_id: Optional[str] = None) -> Session:
        """Copy a session into a new one of the same app and user, in one transaction;
        the source is not changed (unlike ADK's ``Runner.rewind_async``).

        The fork holds copies of the source's events (same ids and contents): all of
        them, or with ``before_invocation_id`` those before the first event of that
        invocation (the cut ADK's rewind makes). Its session-scope state is the
        source's state at that cut, exactly: the initial state ``create_session``
        gave, then every event's delta up to the cut (a stored null stays a null;
        ``update_keys`` deletions are deletions). ``app:`` and ``user:`` state are
        shared and untouched. The lineage is stored: see :meth:`get_lineage`.

        Args:
            new_session_id: the fork's id; None or blank for a new uuid4.
            before_invocation_id: cut before this invocation, or None to copy all.

        Returns:
            The fork as :meth:`get_session` reads it (revision 0).

        Raises:
            SessionNotFoundError: the source session is not stored.
            InvocationNotFoundError: no event of ``before_invocation_id`` in it.
            AlreadyExistsError: ``new_session_id`` is already stored.
            TypeError, ValueError: a bad id (nothing is written).
        """
        key = fork(self._store, app_name, user_id, session_id, new_session_id, before_invocation_id, time.time())
        return self.get_session(*key)

    def get_lineage(self, app_name: str, user_id: str, session_id: str) -> Optional[dict[str, Any]]:
        """Where a session was forked from, or None when it is not a fork.

        Returns:
            ``{"session_id": source id, "before_invocation_id": the cut or None,
            "events": events copied, "forked_at": epoch seconds, "state_exact":
            bool}``. ``state_exact`` is False only for a cut in a source whose
            initial state is unknown (created before schema version 3, or imported):
            its deltas were replayed from an empty state, as ADK's rewind does.

        Raises:
            SessionNotFoundError: the session is not stored.
            TypeError, ValueError: a bad id.
        """
        app, user = validate.names(app_name, user_id)
        return self._store.lineage(app, user, validate.session_id(session_id))

    def delete_user(self, app_name: str, user_id: str, *, dry_run: bool = False) -> dict[str, Any]:
        """Erase one user's data in one app: every session of theirs with its events
        and session state, their ``user:`` state and their memories (ADK's memory
        service, :mod:`adk_lite.memory`), in one transaction. App state stays.

        Erased from the file too: SQLite's ``secure_delete`` is on for that
        transaction (deleted content is overwritten with zeros), the search index is
        merged without the deleted words (FTS5 ``optimize``: it rewrites the whole
        index, see docs/lifecycle.md for its cost), and the WAL is checkpointed
        (TRUNCATE) after it, so the text is in neither the database file nor its WAL.
        Exact under concurrent writers: a write of this user in flight when the erase
        starts is erased with the rest; one that starts later waits for it, then an
        append or ``update_keys`` raises ``SessionNotFoundError`` (a new session or
        ``user:`` key is a new write, and stays). On PostgreSQL the rows go, not the
        bytes (the server keeps dead rows until ``VACUUM``, and its WAL). Export the
        user's data first if they asked for it (``adk-lite export --app A --user U``).

        Args:
            dry_run: only count; nothing is written (works on a read-only service).

        Returns:
            ``{"sessions", "events", "state_keys", "memories", "dry_run", "checkpointed"}``:
            rows deleted (or that would be); ``checkpointed`` is False when another
            connection's reader kept the WAL from being emptied (call again, or
            ``vacuum``, once it is gone), None for a dry run.

        Raises:
            TypeError, ValueError: a bad id or a ``dry_run`` that is not a bool.
            DatabaseLockedError: the user's lock or rows not had within the busy
                timeout (or a deadlock with another writer); nothing was deleted.
        """
        app, user = validate.names(app_name, user_id)
        if type(dry_run) is not bool:
            raise TypeError(f"dry_run must be a bool, not {type(dry_run).__name__}")
        return self._store.delete_user(app, user, dry_run)

    def trim_compacted(self, app_name: str, user_id: str, session_id: Optional[str] = None, *,
                       dry_run: bool = False) -> dict[str, Any]:
        """Delete the raw events that ADK's compaction has summarised, which ADK no
        longer sends to the model; one transaction per session.

        ADK records a compaction (``EventsCompactionConfig``) as an event whose
        ``actions.compaction`` holds ``start_timestamp``, ``end_timestamp`` and the
        summary. Deleted: events whose timestamp lies inside such a range, when the
        summary hides them from every agent, branch and isolation scope that sees
        them, by the rules of :func:`adk_lite.lifecycle.compacted` (which keep the LLM
        request ADK builds for every view the same; compaction and rewind events and
        every event of a rewound invocation stay). State is unchanged. What is lost: the raw events
        themselves, so rewinding to an invocation inside a trimmed range is no
        longer possible, and a fork can only cut at events that are left.

        Args:
            session_id: one session, or None for every session of the user.
            dry_run: only count; nothing is written.

        Returns:
            ``{"sessions" (with something to trim), "events", "bytes" (the stored
            text of those events, UTF-8; the file shrinks after :meth:`vacuum`),
            "dry_run"}``.

        Raises:
            SessionNotFoundError: ``session_id`` is given and not stored.
            TypeError, ValueError: a bad id or ``dry_run``.
        """
        validate.names(app_name, user_id)
        return trim(self._store, app_name, user_id, session_id, dry_run)

    # -- events -------------------------------------------------------------
    def append_event(self, session: Session, event: Event) -> Event:
        """Append one event and apply its state delta, as ADK's
        ``BaseSessionService.append_event``.

        A partial event is returned unstored. ``temp:`` keys are applied to
        ``session.state`` only and removed from ``event.actions.state_delta``;
        other keys are stored (``None`` as null, a value replaces, no deep merge).
        ``session`` gets the event, the state, ``last_update_time =
        event.timestamp`` and the new revision.

        Re-appending an event id already stored in the session writes nothing and
        returns the stored event, whatever the session's revision (safe retries).

        Returns:
            The event (or the stored one, for a re-append).

        Raises:
            SessionNotFoundError: the session is not stored (or was deleted).
            StaleSessionError: ``session`` was read at an older revision than the
                stored one (another writer changed it); nothing is written.
            TypeError, ValueError: not an Event, or a field or state value that
                would not round-trip through JSON (the message names it).
        """
        return self.append_events(session, [event])[0]

    def append_events(self, session: Session, events: Sequence[Event]) -> list[Event]:
        """Append several events in one transaction (all or nothing).

        Same rules as :meth:`append_event` for each event, with one stale check
        and one revision bump for the batch.

        Returns:
            The events, in order. When every event's id is already stored, the
            stored copies (a retry of a batch that was committed).

        Raises:
            As :meth:`append_event`; also ValueError for an id given twice, and
            AlreadyExistsError when some ids of the batch are stored and others not.
        """
        app, user, sid = _session_key(session)
        if isinstance(events, (str, bytes, dict)) or not isinstance(events, Sequence):
            raise TypeError(f"events must be a list of Event, not {type(events).__name__}")
        kept = [p for p in (_prepare(e, i) for i, e in enumerate(events)) if p is not None]
        if len({p.row.event_id for p in kept}) != len(kept):
            raise ValueError("events: the same event id appears twice in one batch")
        if not kept:
            return list(events)
        written: dict[str, Any] = {}  # the batch's stored deltas, later keys winning
        for p in kept:
            written.update(p.stored_delta)
        updated_at = kept[-1].event.timestamp

        def commit(revision: int) -> None:
            for p in kept:
                session.state.update(p.delta)
                p.event.actions.state_delta = p.stored_delta
                session.events.append(p.event)
            session.revision = revision
            session.last_update_time = updated_at

        stored = append_rows(self._store, (app, user, sid), lambda: _read_at(session), [p.row for p in kept],
                             scopes.stored_rows(written), updated_at, commit)
        if stored is not None:  # every event was already stored: a retry
            again = iter([event_from_row(stored[p.row.event_id]) for p in kept])
            return [e if e.partial else next(again) for e in events]
        return list(events)

    def update_keys(self, app_name: str, user_id: str, session_id: str, delta: dict[str, Any]) -> None:
        """Change state keys, where a ``None`` value **deletes** the key in its scope.

        Keys are scoped like a state delta (``app:``, ``user:``, none); ``temp:``
        keys are ignored. The change is recorded as a state-only event (author
        ``system``, the delta in ``actions.state_delta``, ``custom_metadata``
        :data:`UPDATE_KEYS_MARK`, which no other append may carry) so the log stays a full audit trail; it bumps
        the session's revision, so Session objects read before must be reloaded
        before they append.

        Raises:
            SessionNotFoundError: the session is not stored.
            TypeError, ValueError: a bad id, key or value (nothing is written).
        """
        app, user = validate.names(app_name, user_id)
        sid = validate.session_id(session_id)
        delta = scopes.without_temp(scopes.check_delta(delta, "delta"))
        if not delta:
            self._store.count_events(app, user, sid)  # raises SessionNotFoundError
            return
        now = time.time()
        event = Event(author="system", timestamp=now, actions=EventActions(state_delta=dict(delta)),
                      custom_metadata=dict(UPDATE_KEYS_MARK))
        upserts, deletes = [], []
        for scope, k, v in scopes.split(delta).persisted():
            if v is None:
                deletes.append((scope, k))
            else:
                upserts.append((scope, k, codec.dumps(v)))
        self._store.append(app, user, sid, None, [_event_row(event)], upserts, deletes, now)

    # -- reads of one scope, counts, maintenance -----------------------------
    def get_user_state(self, app_name: str, user_id: str) -> dict[str, Any]:
        """Return one user's state in one app, raw keys (no ``user:`` prefix); ``{}`` if none.

        As ADK's ``BaseSessionService.get_user_state``.
        """
        app, user = validate.names(app_name, user_id)
        return scopes.unscoped(self._store.scope_state(app, user, scopes.USER))

    def get_app_state(self, app_name: str) -> dict[str, Any]:
        """Return one app's state, raw keys (no ``app:`` prefix); ``{}`` if none."""
        return scopes.unscoped(self._store.scope_state(validate.name(app_name, "app_name"), "", scopes.APP))

    def get_event_count(self, app_name: str, user_id: str, session_id: str) -> int:
        """Return how many events a session has stored.

        Raises:
            SessionNotFoundError: the session is not stored.
        """
        app, user = validate.names(app_name, user_id)
        return self._store.count_events(app, user, validate.session_id(session_id))

    def get_stats(self, top: int = 0) -> dict[str, Any]:
        """Return counts and facts about the database; ``top``: how many of the largest
        sessions to list as ``largest_sessions`` (``[{"app_name", "user_id",
        "session_id", "events"}]``, by event count; 0: none).

        Keys: ``sessions``, ``events``, ``state_keys`` (rows of ``adk_state``),
        ``apps``, ``users`` (distinct ``(app_name, user_id)``), ``db_bytes``
        (the main file), ``wal_bytes``, ``shm_bytes``, ``total_bytes`` (main file +
        WAL: what the data takes on disk), ``total_mib`` (the same in MiB),
        ``free_pages``, ``page_size`` (bytes), ``schema_version``,
        ``sqlite_version``, ``journal_mode``, ``synchronous``, ``path``, and
        ``per_app`` (``[{"app_name", "sessions", "users", "events"}]``). All read
        in one snapshot.

        Raises:
            ServiceClosedError: after :meth:`close`.
            DatabaseError: the file failed (corrupt, unreadable).
        """
        return self._store.stats(top)

    def get_usage(self, app_name: Optional[str] = None, user_id: Optional[str] = None,
                  session_id: Optional[str] = None, *, since: Optional[float] = None, until: Optional[float] = None,
                  group_by: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Token usage totals of the stored LLM calls (events that carried
        ``usage_metadata``, as ADK's ``LlmResponse`` writes it), read in one snapshot.

        Kept in rows of its own, written with each event (see :mod:`adk_lite.usage`):
        ``trim_compacted`` keeps them, a fork's copied events count 0 (only the fork's
        new events count to it), ``delete_session``, ``prune`` and ``delete_user``
        remove those of what they delete, a retried append and ``update_keys`` count
        nothing; export/import, ``copy`` and ``backup`` carry them.

        Args:
            app_name, user_id, session_id: only this app / user / session (None: any).
            since, until: epoch seconds (int or float) on the event's ``timestamp``;
                ``since`` inclusive, ``until`` exclusive; None: unbounded.
            group_by: names among ``"app"``, ``"user"``, ``"session"``,
                ``"invocation"``, ``"model"`` (the event's ``model_version``) and
                ``"day"`` (the UTC date ``YYYY-MM-DD``, whatever the time zone); a
                repeated name counts once.

        Returns:
            A list of dicts, one per group, ordered by the group keys in ``group_by``
            order (None first): the keys ``app_name``, ``user_id``, ``session_id``,
            ``invocation_id``, ``model``, ``day`` that were grouped by, then the int
            sums ``prompt_tokens``, ``output_tokens`` (candidates), ``cached_tokens``,
            ``thoughts_tokens``, ``tool_use_prompt_tokens``, ``total_tokens`` and
            ``llm_calls`` (events that carried usage). With no ``group_by``, one dict
            (all zeros when nothing matched).

        Raises:
            ValueError: an unknown ``group_by`` name (the message names
                ``group_by``), ``since > until``, a bound that is not a finite int or
                float (a str too), a blank or too long id.
            TypeError: an id that is not a str.
            DatabaseError: a database of an older schema opened read-only (open it
                read-write once to build the usage table).
        """
        return usage.get_usage(self._store, app_name, user_id, session_id, since=since, until=until,
                               group_by=group_by)

    def vacuum(self) -> dict[str, int]:
        """Reclaim space: checkpoint the WAL (TRUNCATE), VACUUM, ``PRAGMA optimize``.

        VACUUM rewrites the whole file and holds the write lock meanwhile. On SQLite it
        first counts the counts per app again from the rows (``adk_counts``: the repair
        when another tool's ``REPLACE`` skewed them and ``check`` names them).

        Returns:
            ``{"bytes_before": int, "bytes_after": int}``, main file + WAL.
        """
        return self._store.vacuum()

    def checkpoint(self) -> dict[str, Any]:
        """Copy everything the ``-wal`` file holds into the main file and truncate
        the WAL (``PRAGMA wal_checkpoint(TRUNCATE)``), so the main file alone holds
        every acknowledged write. :meth:`close` (and interpreter exit, for a
        service still open) does this too.

        Returns:
            ``{"busy": bool, "wal_bytes_before": int, "wal_bytes_after": int}``
            (sizes of the ``-wal`` file): ``busy`` is True when another connection (a reader on an old snapshot,
            a writer) kept it from finishing within ``busy_timeout``.

        Raises:
            DatabaseOpenError: a read-only service (a checkpoint writes the main file).
            ServiceClosedError: after :meth:`close`.
        """
        return self._store.checkpoint()

    def backup(self, dest: Union[str, os.PathLike], *, force: bool = False,
               progress: Optional[Callable[[int, int], None]] = None) -> dict[str, Any]:
        """Copy the database into the file ``dest`` while other threads and
        processes keep reading and writing it (an online backup).

        The copy is taken from one read snapshot with SQLite's backup API: it holds
        every write acknowledged before the backup started, and nothing half
        written. It is one self-contained file (a WAL-mode database with no
        ``-wal`` beside it) that passes ``PRAGMA integrity_check`` and opens with
        :class:`DatabaseSessionService`. It is written to a 0600 temporary file in
        ``dest``'s folder, fsynced, then renamed over ``dest``: a crash or an error
        never leaves a partial file under ``dest``. Allowed on a read-only service.

        Args:
            dest: the backup file (str or PathLike).
            force: replace ``dest`` if it exists (never the database itself).
            progress: called as ``progress(pages_done, pages_total)`` after each
                step of :data:`adk_lite.sqlite.BACKUP_STEP_PAGES` pages (on the
                calling thread).

        Returns:
            ``{"path": str (dest), "bytes": int (the copy's size), "pages": int,
            "seconds": float}``.

        Raises:
            TypeError: ``dest`` is not a str or PathLike.
            ValueError: ``dest`` is empty, a directory, the database or one of its
                ``-wal``/``-shm``/``-journal`` files (by name, symlink or hard link),
                or exists and ``force`` is False. Nothing is written.
            OSError: ``dest``'s folder is missing or not writable, the disk is full.
            DatabaseError: the database is not a file (PostgreSQL: use ``pg_dump``
                or ``adk-lite copy``); nothing is written.
            ServiceClosedError: after :meth:`close`.
        """
        if not isinstance(dest, (str, os.PathLike)):
            raise TypeError(f"dest must be a str or PathLike, not {type(dest).__name__}")
        if not isinstance(force, bool):
            raise TypeError(f"force must be a bool, not {type(force).__name__}")
        if progress is not None and not callable(progress):
            raise TypeError(f"progress must be callable, not {type(progress).__name__}")
        dest = os.fspath(dest)
        if not self._store.db.IS_FILE:
            raise errors.DatabaseError(
                f"backup copies a SQLite file page by page, and {self.path} is a PostgreSQL database: use pg_dump, "
                "or 'adk-lite copy URL FILE.sqlite3' (copy_to) for a SQLite copy of it")
        protect = [] if self.path == MEMORY else [self.path]
        started = time.perf_counter()
        with outfile.temporary(dest, protect, force=force) as temp:
            pages = self._store.backup(temp, progress or _no_progress)
        return {"path": dest, "bytes": os.path.getsize(dest), "pages": pages,
                "seconds": round(time.perf_counter() - started, 3)}

    def close(self) -> None:
        """Close every connection the service opened, in every thread.

        No file descriptor on the database outlives it; later calls raise
        ``ServiceClosedError``. Closing twice is harmless.
        """
        self._store.close()

    def __enter__(self) -> "DatabaseSessionService":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DatabaseSessionService({self.path!r})"


def _no_progress(done: int, total: int) -> None:
    """The default ``progress`` of :meth:`DatabaseSessionService.backup`."""


def _session_key(session: Any) -> tuple[str, str, str]:
    """Check the ``Session`` an append comes from; return its ids.

    Raises:
        TypeError: not an adk_lite Session, or an id that is not a str.
        ValueError: a blank or too long id.
    """
    if not isinstance(session, Session):
        raise TypeError(f"session must be an adk_lite.Session, not {type(session).__name__}")
    app, user = validate.names(session.app_name, session.user_id)
    return app, user, validate.session_id(session.id, arg="session.id")


def _read_at(session: Session) -> tuple[int, Optional[str]]:
    """The ``(revision, incarnation)`` a Session object was read at, for the stale
    check (read under the session's lock: threads sharing the object bump it).

    Raises:
        TypeError: a revision that is not an int, or an incarnation that is
            neither a str nor None (None is refused by the store's stale check).
        ValueError: a negative revision.
    """
    revision = validate.count(session.revision, "session.revision", 0)
    if revision is None:
        raise TypeError("session.revision must be an int read from the store, not None")
    if session.incarnation is not None and type(session.incarnation) is not str:
        raise TypeError(f"session.incarnation must be a str or None, not {type(session.incarnation).__name__}")
    return revision, session.incarnation


def _event_row(event: Event, body: Optional[dict] = None) -> EventRow:
    return EventRow(event.id, event.invocation_id, event.author, event.branch, event.timestamp,
                    codec.dumps(event.body() if body is None else body))


class _Prepared(NamedTuple):
    """An event checked for appending: the row to store, its whole state delta
    (applied to the session object) and the stored part (no ``temp:`` keys)."""

    event: Event
    row: EventRow
    delta: dict[str, Any]
    stored_delta: dict[str, Any]


def _prepare(event: Any, index: int) -> Optional[_Prepared]:
    """Check ``events[index]``; return it prepared, or None for a partial event.

    The row holds the event as it will be stored (``temp:`` keys trimmed from the
    stored delta); the event object itself is not changed until the append succeeds.
    """
    if not isinstance(event, Event):
        raise TypeError(f"events[{index}] must be an adk_lite.Event, not {type(event).__name__}")
    if event.partial:
        return None
    is_text = validate.is_id_text
    if not (is_text(event.id) and event.id and is_text(event.invocation_id) and is_text(event.author)
            and (event.branch is None or is_text(event.branch)) and type(event.timestamp) in (int, float)
            and validate.MIN_TIMESTAMP <= event.timestamp <= validate.MAX_TIMESTAMP
            and isinstance(event.actions, EventActions)):
        _explain(event, f"events[{index}]")
    delta = scopes.check_delta(event.actions.state_delta, f"events[{index}].actions.state_delta")
    stored_delta = scopes.without_temp(delta)
    body = event.body()
    actions = body.get("actions")
    if actions and "state_delta" in actions:  # checked above; the rest of the body here
        rest = {k: v for k, v in actions.items() if k != "state_delta"}
        if rest:
            body["actions"] = rest
        else:
            del body["actions"]
    codec.check_json(body, f"events[{index}]")
    if stored_delta:
        body.setdefault("actions", {})["state_delta"] = stored_delta
    return _Prepared(event, _event_row(event, body), delta, stored_delta)


def _explain(event: Event, where: str) -> None:
    """Raise the error that names what is wrong with an event's columns or actions."""
    validate.event_columns(event, where)
    raise TypeError(f"{where}.actions must be an adk_lite.EventActions, not {type(event.actions).__name__}")
