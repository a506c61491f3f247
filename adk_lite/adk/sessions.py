"""ADK's ``BaseSessionService`` on adk_lite's store: :class:`DatabaseSessionService`,
ADK's error classes that are also adk_lite's, and :func:`register` for ADK's
service registry. See the package's docstring (:mod:`adk_lite.adk`)."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import MutableMapping, MutableSequence
from typing import Any, Callable, Optional, Union

from google.adk.errors import StaleSessionError as _AdkStaleSessionError
from google.adk.errors import InvocationNotFoundError as _AdkInvocationNotFoundError
from google.adk.errors.already_exists_error import AlreadyExistsError as _AdkAlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError as _AdkSessionNotFoundError
from google.adk.events import Event
from google.adk.platform import time as platform_time
from google.adk.sessions import BaseSessionService, Session
from google.adk.sessions._session_util import make_json_safe_state
from google.adk.sessions.base_session_service import GetSessionConfig, ListSessionsResponse

from .. import errors, scopes, steps, validate
from ..steps import SessionHead
from ..target import target_kind, url_scheme
from ..types import SearchResults
from .artifacts import make_factory as make_artifact_factory
from .batches import AppendBatches
from .cache import DEFAULT_SIZE, EventCache
from .opened import OnDatabase
from .convert import event_from_row, event_row

__all__ = ["DatabaseSessionService", "ListSessionsPage", "register",
           "SessionNotFoundError", "AlreadyExistsError", "StaleSessionError", "InvocationNotFoundError"]




class SessionNotFoundError(_AdkSessionNotFoundError, errors.SessionNotFoundError):
    """No such session: both ADK's ``SessionNotFoundError`` and adk_lite's."""


class AlreadyExistsError(_AdkAlreadyExistsError, errors.AlreadyExistsError):
    """The session (or an event id, with other content) is already stored: both
    ADK's ``AlreadyExistsError`` and adk_lite's."""


class StaleSessionError(_AdkStaleSessionError, errors.StaleSessionError):
    """The ``Session`` was read at an older revision than the stored one: both ADK's
    ``StaleSessionError`` and adk_lite's. Reload with ``get_session`` and retry."""


class InvocationNotFoundError(_AdkInvocationNotFoundError, errors.InvocationNotFoundError):
    """``fork_session``: no event of that invocation: both ADK's
    ``InvocationNotFoundError`` (which its rewind raises) and adk_lite's."""


_ERRORS = ((errors.SessionNotFoundError, SessionNotFoundError),
           (errors.AlreadyExistsError, AlreadyExistsError),
           (errors.StaleSessionError, StaleSessionError),
           (errors.InvocationNotFoundError, InvocationNotFoundError))


def _adk_error(e: BaseException) -> BaseException:
    """The error a caller gets for core error ``e``: of the class above that is both
    ADK's and adk_lite's (chained to ``e``), or ``e`` itself."""
    for core, adk in _ERRORS:
        if isinstance(e, core) and not isinstance(e, adk):
            converted = adk(str(e))
            converted.__cause__ = e
            return converted
    return e


class ListSessionsPage(ListSessionsResponse):
    """ADK's ``ListSessionsResponse`` plus ``next_cursor``: an opaque str to pass as
    ``after=`` for the next page, or None on the last page (and without ``limit``)."""

    next_cursor: Optional[str] = None


def _json_state(delta: Any, arg: str) -> dict[str, Any]:
    """Check a state dict and return what is stored of it (JSON values).

    JSON values pass unchanged (``temp:`` keys included). Other values are handled
    as ADK's SQL services do (``_session_util.make_json_safe_state``): converted
    with pydantic (a datetime becomes an ISO string, a tuple a list), and where that
    fails stringified with a logged warning; ``temp:`` keys are dropped then.

    Raises:
        TypeError: not a dict, or a value that cannot be stored even as a string
            (non-UTF-8 bytes).
        ValueError: a bad key, NaN/infinity, or an int beyond 64 bits.
    """
    try:
        return scopes.check_delta(delta, arg)
    except TypeError:
        if not isinstance(delta, dict):
            raise
    try:
        safe = make_json_safe_state(scopes.without_temp(delta))
    except Exception as e:  # what ADK's services raise here varies (UnicodeDecodeError, ...)
        raise TypeError(f"{arg}: a value cannot be stored as JSON, even as a string: {e}") from e
    return scopes.check_delta(safe, arg)


_MARKER = re.compile(r"([0-9]{1,19}):([0-9a-f]{16})")
"""``Session._storage_update_marker`` as this adapter writes it: ``"<revision>:<incarnation>"``."""


def _marker(revision: int, incarnation: str) -> str:
    return f"{revision}:{incarnation}"


def _session(head: SessionHead, events: Optional[list[Event]] = None) -> Session:
    session = Session(id=head.session_id, app_name=head.app_name, user_id=head.user_id, state=head.state,
                      events=events or [], last_update_time=head.last_update_time)
    session._storage_update_marker = _marker(head.revision, head.incarnation)
    return session


def _session_key(session: Session) -> tuple[str, str, str]:
    """The stored session ``(app_name, user_id, session_id)`` of a Session object.

    Raises:
        TypeError, ValueError: a bad id (:mod:`adk_lite.validate`).
    """
    return (*validate.names(session.app_name, session.user_id), validate.session_id(session.id, arg="session.id"))


def _key_of(session: Any) -> Optional[tuple[str, str, str]]:
    """:func:`_session_key`, or None for what is no Session or has a bad id (its append
    is refused before it changes anything)."""
    try:
        return _session_key(session) if isinstance(session, Session) else None
    except (TypeError, ValueError):
        return None


def _check_event(event: Any) -> None:
    if not isinstance(event, Event):
        raise TypeError(f"event must be a google.adk.events.Event, not {type(event).__name__}")
    validate.event_columns(event, "event")


class DatabaseSessionService(OnDatabase, BaseSessionService):
    """ADK's ``BaseSessionService`` on an adk_lite database: a SQLite file, or a
    PostgreSQL server.

    Args:
        db: the database, as :class:`adk_lite.DatabaseSessionService` takes it: a
            path, ``":memory:"``, a ``sqlite:///path``, ``sqlite+aiosqlite:///path``
            or ``adklite:///path`` URL (three slashes then a relative path, four for
            an absolute one), a PostgreSQL URL (``postgresql://``, ``postgres://``,
            ``postgresql+asyncpg://``, ``postgresql+psycopg://``; the ``postgres``
            extra), or None for the zero-config default (``$ADK_LITE_DB``, else
            ``.adk/sessions.sqlite3``).
        db_url, uri: the same, by the keyword ADK's ``DatabaseSessionService`` and
            ADK's ``services.yaml`` loader use. Give at most one of db/db_url/uri.
        synchronous: ``"normal"`` (default) or ``"full"`` (survives power loss).
        busy_timeout: seconds to wait for another writer's lock (default 5).
        max_workers: threads of the executor (default 4).
        event_cache_size: the most validated events kept in memory for later
            reads (default 10,000: about 5 KB each, 50 MB, for events of ~450 bytes of JSON);
            0 turns the cache off. Reads hand out copies, so callers may change
            what they get. See :meth:`cache_info`.
        **kwargs: what ADK's service registry passes besides the URI
            (``agents_dir``) is accepted and ignored; other unknown keywords are
            ignored with a logged warning, as ADK's ``sqlite`` factory does.

    Raises:
        ValueError: more than one of db/db_url/uri, a URL of another database, or
            an ``event_cache_size`` that is not an int >= 0.
        DatabaseError: as :class:`adk_lite.DatabaseSessionService` (a foreign,
            corrupt or newer file is refused and left unchanged).

    Differences from ADK's own services (see the README): stale writers are caught
    by an exact integer revision kept in ``Session._storage_update_marker`` (as a
    str); events with equal timestamps come back in append order; blank ids and
    bad arguments raise ``ValueError``/``TypeError``; and the extras
    :meth:`update_keys`, :meth:`get_stats`, :meth:`vacuum`, :meth:`get_event_count`,
    :meth:`get_app_state`, :meth:`fork_session`, :meth:`get_lineage`, :meth:`delete_user`,
    :meth:`trim_compacted`, :meth:`search_events`, :meth:`get_usage`, and pagination and ``order`` in :meth:`list_sessions`.
    """

    def __init__(self, db: Union[str, os.PathLike, None] = None, *, db_url: Optional[str] = None,
                 uri: Optional[str] = None, synchronous: str = "normal", busy_timeout: float = 5.0,
                 max_workers: Optional[int] = None, event_cache_size: int = DEFAULT_SIZE, **kwargs: Any) -> None:
        self._events = EventCache(event_cache_size)
        self._open(db, db_url, uri, synchronous, busy_timeout, max_workers, kwargs)
        self._store = self._core.store
        # SQLite: appends of many tasks go to the worker in batches, one group commit each
        # (see adk_lite.adk.batches); PostgreSQL's writers run at once, one hop each.
        self._batches = AppendBatches(self._executor, self._append, self._append_batch, _adk_error) \
            if self._store.db.SINGLE_WRITER else None

    @property
    def path(self) -> str:
        """The database file's path (``":memory:"`` in memory)."""
        return self._core.path

    async def _run(self, fn: Callable, *args: Any) -> Any:
        """Run ``fn(*args)`` on the executor (one hop); core errors become the
        classes above, which ADK's ``except`` clauses catch."""
        try:
            return await self._executor.run(fn, *args)
        except (errors.SessionNotFoundError, errors.AlreadyExistsError, errors.StaleSessionError,
                errors.InvocationNotFoundError) as e:
            adk = _adk_error(e)
            if adk is e:
                raise
            raise adk from e

    # -- ADK's BaseSessionService --------------------------------------------
    async def create_session(self, *, app_name: str, user_id: str, state: Optional[dict[str, Any]] = None,
                             session_id: Optional[str] = None) -> Session:
        """Create a session, as ADK's ``BaseSessionService.create_session``.

        Args:
            app_name, user_id: non-blank str, at most 256 characters.
            state: initial state; ``app:``/``user:`` keys go to (and replace keys
                of) their scopes, ``temp:`` keys are dropped. Non-JSON values are
                converted as ADK's SQL services do (see the README).
            session_id: None or blank for a new uuid4; surrounding whitespace is
                stripped (as ADK's in-memory and SQLite services).

        Returns:
            The ``Session`` with the merged state, no events, ``last_update_time``
            the creation time (epoch seconds) and marker ``"0"``.

        Raises:
            AlreadyExistsError: the id is stored for this app and user.
            TypeError, ValueError: a bad id or state; nothing is written.
        """
        return await self._run(self._create, app_name, user_id, state, session_id)

    def _create(self, app_name: Any, user_id: Any, state: Any, session_id: Any) -> Session:
        return _session(steps.create(self._store, app_name, user_id, _json_state(state, "state"), session_id,
                                       platform_time.get_time()))

    async def get_session(self, *, app_name: str, user_id: str, session_id: str,
                          config: Optional[GetSessionConfig] = None) -> Optional[Session]:
        """Read a session with its merged state and events, as ADK's ``get_session``.

        Args:
            config: ``GetSessionConfig(num_recent_events=N, after_timestamp=t)``:
                at most the N most recent events (0: none) with ``timestamp >= t``
                (epoch seconds, inclusive); None for every event.

        Returns:
            The ``Session`` (events oldest first, equal timestamps in append order,
            marker = the stored revision), or None when it is not stored.

        Raises:
            TypeError, ValueError: a bad or blank id, or a config that is not a
                ``GetSessionConfig``.
        """
        return await self._run(self._get, app_name, user_id, session_id, config)

    def _get(self, app_name: Any, user_id: Any, session_id: Any, config: Any) -> Optional[Session]:
        limit = after = None
        if config is not None:
            if not isinstance(config, GetSessionConfig):
                raise TypeError(f"config must be a GetSessionConfig or None, not {type(config).__name__}")
            limit = validate.count(config.num_recent_events, "config.num_recent_events", 0)
            after = validate.timestamp(config.after_timestamp, "config.after_timestamp")
        found = steps.read(self._store, app_name, user_id, session_id, limit, after)
        if found is None:
            return None
        head, rows = found
        key = (head.app_name, head.user_id, head.session_id, head.incarnation)
        return _session(head, self._events.events(key, rows, event_from_row))

    async def list_sessions(self, *, app_name: str, user_id: Optional[str] = None, limit: Optional[int] = None,
                            after: Optional[str] = None, order: str = "oldest") -> ListSessionsPage:
        """List sessions without events, with merged state, oldest update first (as ADK).

        Args:
            app_name: the app (required, as ADK).
            user_id: one user's sessions, or None for every user of the app.
            limit: adk_lite extra: page size (>= 1), or None for every session.
            after: adk_lite extra: the ``next_cursor`` of the previous page.
            order: adk_lite extra: ``"oldest"`` (default, ADK's order) or ``"newest"``.

        Returns:
            A :class:`ListSessionsPage` (an ADK ``ListSessionsResponse``) whose
            ``next_cursor`` is None on the last page.

        Raises:
            TypeError, ValueError: a bad name, limit, order or cursor.
        """
        return await self._run(self._list, app_name, user_id, limit, after, order)

    def _list(self, app_name: Any, user_id: Any, limit: Any, after: Any, order: Any) -> ListSessionsPage:
        heads, next_cursor = steps.list_heads(self._store, validate.name(app_name, "app_name"), user_id, limit,
                                                after, order)
        return ListSessionsPage(sessions=[_session(h) for h in heads], next_cursor=next_cursor)

    async def search_events(self, query: str, *, app_name: Optional[str] = None, user_id: Optional[str] = None,
                            session_id: Optional[str] = None, author: Optional[str] = None, limit: int = 20,
                            after: Optional[str] = None, raw: bool = False) -> SearchResults:
        """adk_lite extra: find events by their text, best match first; see
        :meth:`adk_lite.DatabaseSessionService.search_events` (the same arguments,
        plain-text or ``raw`` queries (FTS5, or ``to_tsquery`` on PostgreSQL), and result: adk_lite's
        :class:`~adk_lite.SearchResults` of :class:`~adk_lite.SearchHit`).

        Raises:
            TypeError, ValueError: a bad argument, cursor or raw query.
        """
        return await self._run(functools.partial(
            self._core.search_events, query, app_name=app_name, user_id=user_id, session_id=session_id,
            author=author, limit=limit, after=after, raw=raw))

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Delete a session with its events and session-scope state; app and user
        state stay. An unknown session is a no-op (as ADK).

        Raises:
            TypeError, ValueError: a bad id.
        """
        await self._run(self._core.delete_session, app_name, user_id, session_id)

    async def fork_session(self, *, app_name: str, user_id: str, session_id: str,
                           new_session_id: Optional[str] = None,
                           before_invocation_id: Optional[str] = None) -> Session:
        """adk_lite extra: copy a session into a new one, leaving the source as it was
        (ADK's ``Runner.rewind_async`` rewrites the source instead). With
        ``before_invocation_id``, the copy stops before that invocation's first event
        (rewind's cut) and its state is the source's state there, exactly; see
        :meth:`adk_lite.DatabaseSessionService.fork_session`. Lineage:
        :meth:`get_lineage`.

        Returns:
            The fork as :meth:`get_session` reads it.

        Raises:
            SessionNotFoundError: the source is not stored.
            InvocationNotFoundError: no event of that invocation (ADK's
                ``InvocationNotFoundError`` and adk_lite's).
            AlreadyExistsError: ``new_session_id`` is already stored.
            TypeError, ValueError: a bad id.
        """
        return await self._run(self._fork, app_name, user_id, session_id, new_session_id, before_invocation_id)

    def _fork(self, app_name: Any, user_id: Any, session_id: Any, new_session_id: Any, before: Any) -> Session:
        key = steps.fork(self._store, app_name, user_id, session_id, new_session_id, before,
                           platform_time.get_time())
        return self._get(*key, None)

    async def get_lineage(self, *, app_name: str, user_id: str, session_id: str) -> Optional[dict[str, Any]]:
        """adk_lite extra: where a session was forked from (``{"session_id",
        "before_invocation_id", "events", "forked_at", "state_exact"}``), or None
        when it is not a fork; see :meth:`adk_lite.DatabaseSessionService.get_lineage`.

        Raises:
            SessionNotFoundError: the session is not stored.
        """
        return await self._run(self._core.get_lineage, app_name, user_id, session_id)

    async def delete_user(self, *, app_name: str, user_id: str, dry_run: bool = False) -> dict[str, Any]:
        """adk_lite extra: erase one user's sessions, events, session and ``user:``
        state and memories in one app (secure delete and a search index merge, then a WAL
        checkpoint; exact under concurrent writers); returns the counts
        ``{"sessions", "events", "state_keys", "memories", "dry_run", "checkpointed"}``. See
        :meth:`adk_lite.DatabaseSessionService.delete_user`.

        Raises:
            TypeError, ValueError: a bad id or ``dry_run``.
        """
        return await self._run(functools.partial(self._core.delete_user, dry_run=dry_run), app_name, user_id)

    async def trim_compacted(self, *, app_name: str, user_id: str, session_id: Optional[str] = None,
                             dry_run: bool = False) -> dict[str, Any]:
        """adk_lite extra: delete raw events that an ``EventsCompactionConfig``
        compaction has summarised (the LLM request a ``Runner`` builds stays the
        same); returns ``{"sessions", "events", "bytes", "dry_run"}``. See
        :meth:`adk_lite.DatabaseSessionService.trim_compacted`.

        Raises:
            SessionNotFoundError: ``session_id`` is given and not stored.
            TypeError, ValueError: a bad id or ``dry_run``.
        """
        return await self._run(functools.partial(self._core.trim_compacted, dry_run=dry_run), app_name, user_id,
                               session_id)

    async def append_event(self, session: Session, event: Event) -> Event:
        """Append an event and apply its state delta, as ADK's
        ``BaseSessionService.append_event``.

        A partial event is returned unstored and unchecked. ``temp:`` keys are
        applied to ``session.state`` and removed from ``event.actions.state_delta``
        (so neither the event object nor the stored event keeps them); other keys
        are stored with ``dict.update`` semantics (a value replaces, ``None`` is
        stored as null). On success ``session`` gets the event and the state,
        ``last_update_time = event.timestamp`` and the new revision as its marker.
        Appends to one session are serialized within the process, so tasks sharing
        one ``Session`` never trip the stale check on each other.

        Re-appending an event whose id is stored in the session writes nothing and
        returns the event when it equals the stored one (a retry, as ADK's
        in-memory service); with other content it raises ``AlreadyExistsError``.

        Returns:
            ``event``.

        Raises:
            SessionNotFoundError: the session is not stored.
            StaleSessionError: the session changed in storage since ``session`` was
                read (its marker is an older revision; for a session without
                marker, the stored update time is later than ``last_update_time``,
                as ADK's ``SqliteSessionService``). Nothing is written.
            AlreadyExistsError: the event id is stored with other content.
            TypeError, ValueError: not a Session/Event (or a Session whose ``state``
                or ``events`` is no dict/list), a bad id, timestamp or state value;
                nothing is written.
        """
        if isinstance(event, Event) and event.partial:
            return event
        if self._batches is not None:
            return await self._batches.run(session, event)
        return await self._run(self._append, session, event)

    def _append(self, session: Any, event: Any) -> Event:
        call, delta = self._plan_append(session, event)
        try:
            return self._appended(call[0], event, steps.append_rows(self._store, *call))
        except BaseException:
            if delta:
                event.actions.state_delta = delta
            raise

    def _append_batch(self, batch: list[tuple[Any, Any]]) -> list[tuple[Any, Optional[BaseException]]]:
        """:meth:`_append` for the ``(session, event)`` calls of many tasks, on the
        worker: one group commit for each round of calls, a round holding each session
        and each Event object at most once (a later call of either goes in a later
        round, planned after the earlier ones' outcomes, so it sees their revisions and
        their events as calls one after the other do; so do the calls after it that
        share one with it).

        Returns:
            ``(event, None)`` or ``(None, error)`` per call, in order.
        """
        outcomes: list[Any] = [None] * len(batch)
        todo = list(range(len(batch)))
        while todo:
            planned: list[tuple[int, tuple, dict]] = []
            later: list[int] = []
            taken: set = set()
            for i in todo:
                session, event = batch[i]
                marks = {("event", id(event)), ("session", _key_of(session))}
                if marks & taken:
                    later.append(i)
                else:
                    try:
                        call, delta = self._plan_append(session, event)
                        planned.append((i, call, delta))
                    except Exception as e:  # refused before the transaction: nothing of it changed
                        outcomes[i] = (None, e)
                taken |= marks
            done = steps.append_rows_many(self._store, [call for _, call, _ in planned]) if planned else []
            for (i, call, delta), (stored, error) in zip(planned, done):
                event = batch[i][1]
                try:
                    if error is not None:
                        raise error
                    outcomes[i] = (self._appended(call[0], event, stored), None)
                except Exception as e:  # this call's own failure
                    if delta:
                        event.actions.state_delta = delta
                    outcomes[i] = (None, e)
            todo = later
        return outcomes

    def _appended(self, key: tuple[str, str, str], event: Event, stored: Optional[dict]) -> Event:
        """``event`` once appended; ``stored``: the stored rows when its id was stored already.

        Raises:
            AlreadyExistsError: the stored event of that id has other content.
        """
        if stored is not None and event_from_row(stored[event.id]) != event:
            raise AlreadyExistsError(
                f"event id {event.id!r} is already stored in session {key[2]!r} with other content")
        return event

    def _plan_append(self, session: Any, event: Any) -> tuple[tuple, dict]:
        """Check an append and trim ``temp:`` keys from the event's delta (as ADK's
        ``_trim_temp_delta_state``; the caller puts the returned delta back on failure).

        Returns:
            ``(the arguments of steps.append_rows, the delta as given)``.

        Raises:
            TypeError, ValueError: a bad session, event or state value; nothing changed.
        """
        if not isinstance(session, Session):
            raise TypeError(f"session must be a google.adk.sessions.Session, not {type(session).__name__}")
        for attr, kind in (("state", MutableMapping), ("events", MutableSequence)):  # the commit updates both
            if not isinstance(getattr(session, attr), kind):
                raise TypeError(f"session.{attr} must be a {'dict' if attr == 'state' else 'list'}, "
                                f"not {type(getattr(session, attr)).__name__}")
        _check_event(event)
        key = _session_key(session)
        delta = event.actions.state_delta if event.actions else {}
        upserts = scopes.stored_rows(_json_state(delta, "event.actions.state_delta"))
        if delta:
            event.actions.state_delta = scopes.without_temp(delta)  # as ADK's _trim_temp_delta_state; undone on failure
        try:
            rows = [event_row(event)]
        except BaseException:
            if delta:
                event.actions.state_delta = delta
            raise
        read_at: list[tuple[int, str]] = []

        def expected() -> tuple[int, str]:
            read_at.append(self._expected_revision(session, *key))
            return read_at[-1]

        def commit(revision: int) -> None:
            for name, value in delta.items():  # as ADK's _apply_temp_state
                if name.startswith(scopes.TEMP_PREFIX):
                    session.state[name] = value
            self._commit_event_to_session(session, event)
            session.last_update_time = event.timestamp
            session._storage_update_marker = _marker(revision, read_at[-1][1])

        return (key, expected, rows, upserts, event.timestamp, commit), delta

    def _expected_revision(self, session: Session, app: str, user: str, sid: str) -> tuple[int, str]:
        """The ``(revision, incarnation)`` ``session`` was read at, from its marker.

        Raises:
            SessionNotFoundError: the session is not stored.
            StaleSessionError: the marker is missing (a Session built by hand or read
                from another service: it is never trusted) or is not one this adapter
                wrote.
        """
        marker = session._storage_update_marker
        match = _MARKER.fullmatch(marker) if isinstance(marker, str) else None
        if match:
            return int(match.group(1)), match.group(2)
        if self._store.read_session(app, user, sid, 0, None) is None:
            raise SessionNotFoundError(f"Session {sid} not found.")
        raise StaleSessionError(
            f"session {sid!r} (app_name={app!r}, user_id={user!r}): this Session object was not read from this "
            f"store (its _storage_update_marker is {marker!r}); read it with get_session and append to that")

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """Return one user's state in one app, raw keys (no ``user:`` prefix), ``{}``
        if none; as ADK's ``BaseSessionService.get_user_state``."""
        return await self._run(self._core.get_user_state, app_name, user_id)

    async def flush(self) -> None:
        """Checkpoint the WAL into the main file (every append is committed before
        it returns already), so a copy of the main file alone holds every event.
        ``Runner.close()`` calls it. Never raises for a busy file or a closed service."""
        try:
            await self._run(self._core.checkpoint)
        except errors.DatabaseError:
            pass

    async def close(self) -> None:
        """Stop the executor, checkpoint the WAL and close every connection (as
        ADK's SQL services' ``close``). ADK's web server never calls it; nothing is
        lost without it, and at interpreter exit a service still open is
        checkpointed and closed all the same."""
        await self._close()
        self._events.clear()

    # -- adk_lite extras -------------------------------------------------------
    async def update_keys(self, *, app_name: str, user_id: str, session_id: str, delta: dict[str, Any]) -> None:
        """Change state keys where ``None`` **deletes** the key in its scope (which
        ADK's services cannot do). See :meth:`adk_lite.DatabaseSessionService.update_keys`:
        logged as an event (author ``system``), and it bumps the revision, so
        ``Session`` objects read before must be reloaded before they append.

        Raises:
            SessionNotFoundError: the session is not stored.
            TypeError, ValueError: a bad id, key or value (only JSON values).
        """
        await self._run(self._core.update_keys, app_name, user_id, session_id, delta)

    async def get_app_state(self, *, app_name: str) -> dict[str, Any]:
        """Return one app's state, raw keys (no ``app:`` prefix); ``{}`` if none."""
        return await self._run(self._core.get_app_state, app_name)

    async def get_event_count(self, *, app_name: str, user_id: str, session_id: str) -> int:
        """Count a session's stored events.

        Raises:
            SessionNotFoundError: the session is not stored.
        """
        return await self._run(self._core.get_event_count, app_name, user_id, session_id)

    async def get_stats(self) -> dict[str, Any]:
        """Counts and file facts; see :meth:`adk_lite.DatabaseSessionService.get_stats`."""
        return await self._run(self._core.get_stats)

    async def get_usage(self, app_name: Optional[str] = None, user_id: Optional[str] = None,
                        session_id: Optional[str] = None, *, since: Optional[float] = None,
                        until: Optional[float] = None, group_by: Any = ()) -> list[dict[str, Any]]:
        """adk_lite extra: token usage totals of the stored LLM calls (the events a
        Runner stored with ``usage_metadata`` and ``model_version``), grouped by any of
        ``"app"``, ``"user"``, ``"session"``, ``"invocation"``, ``"model"``, ``"day"``;
        ``since``/``until`` are epoch seconds (``until`` exclusive). See
        :meth:`adk_lite.DatabaseSessionService.get_usage` for the dicts returned.

        Raises:
            ValueError: an unknown group, ``since > until``, a bound that is not a number.
        """
        return await self._run(functools.partial(self._core.get_usage, since=since, until=until, group_by=group_by),
                               app_name, user_id, session_id)

    async def vacuum(self) -> dict[str, int]:
        """Checkpoint, VACUUM and optimize the file; returns ``{"bytes_before",
        "bytes_after"}`` (main file + WAL, bytes)."""
        return await self._run(self._core.vacuum)

    async def backup(self, dest: Union[str, os.PathLike], *, force: bool = False) -> dict[str, Any]:
        """Copy the database into ``dest`` while it stays in use (an online backup
        from one snapshot, a self-contained 0600 file); see
        :meth:`adk_lite.DatabaseSessionService.backup`. Returns ``{"path", "bytes",
        "pages", "seconds"}``.

        Raises:
            TypeError, ValueError: a bad ``dest``, the database itself, or an
                existing file without ``force``; nothing is written.
        """
        return await self._run(lambda: self._core.backup(dest, force=force))

    def cache_info(self) -> dict[str, int]:
        """The event cache's figures: ``{"size", "entries", "hits", "misses"}`` (the
        bound, the events kept now, and the events read from the cache and
        validated since the service was opened)."""
        return self._events.info()



def register(registry: Any = None, scheme: str = "adklite", **options: Any) -> Callable[..., DatabaseSessionService]:
    """Register :class:`DatabaseSessionService` for ``<scheme>:///path/to/sessions.db``
    URIs in ADK's service registry, for ``adk web --session_service_uri=...``, and
    :class:`adk_lite.adk.DatabaseMemoryService` for the same URIs in
    ``--memory_service_uri=...`` (its options: ``synchronous``, ``busy_timeout``,
    ``max_workers``); with a
    PostgreSQL scheme (``"postgresql"``, which takes over ADK's own, or
    ``"postgresql+asyncpg"``), for ``<scheme>://user:password@host/dbname`` URIs.

    The same scheme is registered for ``--artifact_service_uri`` too
    (:class:`adk_lite.adk.DatabaseArtifactService`, on the same database).

    Call it from ``<agents_dir>/services.py``, which ``adk web`` and
    ``adk api_server`` import at start (``adk run`` imports it from the agent's
    folder).

    Args:
        registry: a ``google.adk.cli.service_registry.ServiceRegistry``; None for
            ADK's singleton (``get_service_registry()``).
        scheme: the URI scheme to claim (default ``"adklite"``). Registering
            ``"sqlite"`` replaces ADK's own ``SqliteSessionService`` for
            ``sqlite:///`` URIs.
        **options: default keywords for the services (``synchronous``,
            ``busy_timeout``, ``max_workers``; ``event_cache_size`` for sessions,
            ``max_artifact_bytes`` for artifacts).

    Returns:
        The factory, called by ADK as ``factory(uri, **kwargs)``.
    """
    if registry is None:
        from google.adk.cli.service_registry import get_service_registry
        registry = get_service_registry()
    prefix = scheme + "://"

    def factory(uri: str, **kwargs: Any) -> DatabaseSessionService:
        if url_scheme(uri) == prefix.lower() and target_kind(uri) != "postgres":
            uri = "sqlite://" + uri[len(prefix):]
        return DatabaseSessionService(uri=uri, **{**options, **kwargs})

    registry.register_session_service(scheme, factory)
    from .memory import DatabaseMemoryService  # for --memory_service_uri (a module that imports this one)

    def memory_factory(uri: str, **kwargs: Any) -> DatabaseMemoryService:
        if uri.startswith(prefix) and target_kind(uri) != "postgres":
            uri = "sqlite://" + uri[len(prefix):]
        known = {k: v for k, v in options.items() if k in ("synchronous", "busy_timeout", "max_workers")}
        return DatabaseMemoryService(uri=uri, **{**known, **kwargs})

    registry.register_memory_service(scheme, memory_factory)
    registry.register_artifact_service(scheme, make_artifact_factory(scheme, options))  # --artifact_service_uri
    return factory
