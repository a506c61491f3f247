"""The type-free steps both APIs share: functions on a :class:`~adk_lite.store.Store`
that check arguments and call the store, with no session or event type. The sync API
(:mod:`adk_lite.service`) builds :mod:`adk_lite.types` objects from what they return,
the ADK adapter (:mod:`adk_lite.adk`) ``google.adk`` ones: :class:`SessionHead`,
:func:`create`, :func:`read`, :func:`list_heads`, :func:`search_rows`,
:func:`append_rows`, :func:`fork`, :func:`trim`, :func:`event_data` and the cursors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any, Callable, NamedTuple, Optional, Sequence

from . import codec, lifecycle, scopes, validate
from .rows import EventRow, ListedSession, SearchRow
from .store import Store


ORDERS = ("oldest", "newest")
"""``list_sessions``' orders: by last update, oldest first (ADK's) or newest first."""


def event_data(row: EventRow) -> dict[str, Any]:
    """Turn a stored event row into ADK's JSON shape of the event (the body with
    the columns put back): the one row-to-event step, which the sync API turns into
    an :class:`Event` and the ADK adapter validates into a ``google.adk`` Event."""
    data = codec.loads(row.body)
    data.update(id=row.event_id, invocation_id=row.invocation_id, author=row.author, timestamp=row.timestamp)
    if row.branch is not None:
        data["branch"] = row.branch
    return data


class SessionHead(NamedTuple):
    """A session without its events, as both APIs build their session objects:
    ids, the merged state, ``last_update_time`` (epoch seconds), and the
    ``revision`` and ``incarnation`` the stale check compares."""

    app_name: str
    user_id: str
    session_id: str
    state: dict[str, Any]
    last_update_time: float
    revision: int
    incarnation: str


def create(store: Store, app_name: Any, user_id: Any, state: dict[str, Any], session_id: Any,
           now: float) -> SessionHead:
    """Check the ids and create a session with a checked initial ``state`` at ``now``
    (epoch seconds); see :meth:`DatabaseSessionService.create_session`.

    Raises:
        AlreadyExistsError: the id is stored for this app and user.
        TypeError, ValueError: a bad id.
    """
    app, user = validate.names(app_name, user_id)
    sid = validate.session_id(session_id, generate=True)
    initial = codec.dumps(scopes.split(state).session)
    incarnation, merged = store.create_session(app, user, sid, scopes.stored_rows(state), now, initial)
    return SessionHead(app, user, sid, scopes.merge(merged), now, 0, incarnation)


def fork(store: Store, app_name: Any, user_id: Any, session_id: Any, new_session_id: Any,
         before_invocation_id: Any, now: float) -> tuple[str, str, str]:
    """Check the ids and fork a session at ``now`` (epoch seconds); see
    :meth:`DatabaseSessionService.fork_session`.

    Returns:
        The fork's key ``(app_name, user_id, new session_id)``.

    Raises:
        SessionNotFoundError, InvocationNotFoundError, AlreadyExistsError: as
            :meth:`adk_lite.store.Store.fork_session`.
        TypeError, ValueError: a bad id.
    """
    app, user = validate.names(app_name, user_id)
    source = validate.session_id(session_id)
    new = validate.session_id(new_session_id, generate=True, arg="new_session_id")
    before = validate.event_text(before_invocation_id, "before_invocation_id", optional=True)
    store.fork_session(app, user, source, new, before, now, lifecycle.replay)
    return app, user, new


def trim(store: Store, app_name: Any, user_id: Any, session_id: Any, dry_run: Any) -> dict[str, Any]:
    """Check the arguments and trim compacted events; see
    :meth:`DatabaseSessionService.trim_compacted` (None for ``app_name`` / ``user_id``
    here: every app / user, as ``adk-lite trim``).

    Raises:
        SessionNotFoundError: ``session_id`` is given and not stored.
        TypeError, ValueError: a bad id or a ``dry_run`` that is not a bool.
    """
    app = validate.optional_name(app_name, "app_name")
    user = validate.optional_name(user_id, "user_id")
    if type(dry_run) is not bool:
        raise TypeError(f"dry_run must be a bool, not {type(dry_run).__name__}")
    if session_id is None:
        keys = store.session_keys(app, user)
    else:
        if app is None or user is None:
            raise ValueError("session_id needs an app_name and a user_id")
        keys = [(app, user, validate.session_id(session_id))]
        store.count_events(*keys[0])  # raises SessionNotFoundError
    result = {"sessions": 0, "events": 0, "bytes": 0, "dry_run": dry_run}
    for key in keys:
        events, size = store.trim_session(key, lifecycle.compacted, not dry_run)
        result["sessions"] += bool(events)
        result["events"] += events
        result["bytes"] += size
    return result


def read(store: Store, app_name: Any, user_id: Any, session_id: Any, limit: Optional[int],
         after: Optional[float]) -> Optional[tuple[SessionHead, list[EventRow]]]:
    """Check the ids and read a session with at most ``limit`` of its most recent
    events with ``timestamp >= after`` (both checked by the caller; None: no bound).

    Returns:
        ``(head, event rows oldest first)``, or None when the session is not stored.

    Raises:
        TypeError, ValueError: a bad id.
    """
    app, user = validate.names(app_name, user_id)
    sid = validate.session_id(session_id)
    found = store.read_session(app, user, sid, limit, after)
    if found is None:
        return None
    row, state, events = found
    return SessionHead(app, user, sid, scopes.merge(state), row.updated_at, row.revision, row.incarnation), events


def list_heads(store: Store, app_name: Any, user_id: Any, limit: Any,
               after: Any, order: Any = "oldest") -> tuple[list[SessionHead], Optional[str]]:
    """Check the filters and read one page of sessions; see
    :meth:`DatabaseSessionService.list_sessions`.

    Returns:
        ``(heads, next_cursor)``; ``next_cursor`` is None on the last page.

    Raises:
        TypeError, ValueError: a bad filter, limit, order or cursor (or a cursor
            of the other order).
    """
    app = validate.optional_name(app_name, "app_name")
    user = validate.optional_name(user_id, "user_id")
    page = validate.count(limit, "limit", 1)
    if order not in ORDERS or not isinstance(order, str):
        raise ValueError(f"order must be 'oldest' or 'newest', not {order!r}")
    newest = order == "newest"
    key = _decode_cursor(after, newest)
    fetch = None if page is None or page >= validate.MAX_COUNT else page + 1  # one more: is there a next page?
    rows, states = store.list_sessions(app, user, fetch, key, newest)
    more = page is not None and len(rows) > page
    rows = rows[:page] if more else rows
    heads = [SessionHead(r.app_name, r.user_id, r.session_id, scopes.merge(states[r.app_name, r.user_id, r.session_id]),
                         r.updated_at, r.revision, r.incarnation) for r in rows]
    return heads, _encode_cursor(rows[-1], newest) if more else None


def search_rows(store: Store, query: Any, raw: Any, app_name: Any, user_id: Any, session_id: Any, author: Any,
                limit: Any, after: Any) -> tuple[list[SearchRow], Optional[str]]:
    """Check the arguments and read one page of search hits; see
    :meth:`DatabaseSessionService.search_events`.

    Returns:
        ``(rows best first, next_cursor)``; ``next_cursor`` is None on the last page.

    Raises:
        TypeError, ValueError: a bad argument or cursor, or (``raw``) a query
            SQLite refuses, with its reason.
    """
    text = validate.query(query)
    if type(raw) is not bool:
        raise TypeError(f"raw must be a bool, not {type(raw).__name__}")
    app = validate.optional_name(app_name, "app_name")
    user = validate.optional_name(user_id, "user_id")
    sid = None if session_id is None else validate.session_id(session_id)
    who = validate.event_text(author, "author", optional=True)
    page = validate.count(limit, "limit", 1)
    if page is None:
        raise TypeError("limit must be an int, not None")
    page = min(page, validate.MAX_COUNT - 1)
    match = text if raw else store.db.match_query(text)
    if raw:
        problem = store.match_error(text)
        if problem is not None:
            raise ValueError(f"query {text!r:.200} is not a valid {store.db.QUERY_SYNTAX}: {problem}")
    scope = hashlib.blake2b(codec.dumps([match, app, user, sid, who]).encode(), digest_size=8).hexdigest()
    key = _decode_search_cursor(after, scope)
    if not match:  # plain text with no word in it
        return [], None
    rows = store.search_events(match, raw, app, user, sid, who, page + 1, key)
    if len(rows) <= page:
        return rows, None
    last = rows[page - 1]
    return rows[:page], _b64([scope, last.rank, last.rowid])


_MARK_TEXT = codec.dumps(lifecycle.UPDATE_KEYS_MARK["adk_lite"])
"""The mark's value as JSON text: a body without it needs no parse."""


def append_rows(store: Store, key: tuple[str, str, str], read_at: Callable[[], tuple[int, Optional[str]]],
                events: Sequence[tuple], upserts: Sequence[tuple[str, str, str]], updated_at: float,
                commit: Callable[[int], None]) -> Optional[dict[str, EventRow]]:
    """Append checked event rows and state rows to the session ``key`` under its
    in-process lock, so threads or tasks sharing one session object take turns.

    Args:
        read_at: called under the lock; returns the ``(revision, incarnation)`` the
            caller's session object was read at (the stale check).
        commit: called under the lock with the new revision after the commit, to
            update the caller's session object.

    Returns:
        None; or, when every event id was already stored (a retry), the stored
        rows by event id, and nothing was written.

    Raises:
        SessionNotFoundError, StaleSessionError, AlreadyExistsError: as
            :meth:`adk_lite.store.Store.append`.
        ValueError: an event carries ``custom_metadata`` :data:`~adk_lite.lifecycle.UPDATE_KEYS_MARK`,
            which only ``update_keys`` writes (fork's replay reads a ``None`` in such an
            event as a deletion; an append stores it as a null).
    """
    _refuse_marked(store, key, events)
    lock = store.session_lock(*key)
    with lock:
        revision, stored = store.append(*key, read_at(), events, upserts, (), updated_at)
        if revision is None:
            return stored
        commit(revision)
        return None


def append_rows_many(store: Store, calls: Sequence[tuple]) -> list[tuple[Any, Optional[BaseException]]]:
    """:func:`append_rows` for several sessions at once, committed in one group commit
    (:meth:`adk_lite.store.Store.append_many`), each checked and undone alone: the
    locks of every session of the batch are held (taken in key order) from the stale
    checks until each caller's ``commit`` has run.

    Args:
        calls: ``(key, read_at, events, upserts, updated_at, commit)`` tuples, the
            arguments of :func:`append_rows`; no two of one key.

    Returns:
        Per call, in order, ``(what append_rows returns, None)`` or ``(None, the
        error it would raise)``; ``commit`` ran for each write returned without error.

    Raises:
        ValueError: two calls of one key (the second's stale check would see the
            first's session object before its commit).
    """
    keys = [call[0] for call in calls]
    if len(set(keys)) != len(keys):
        raise ValueError("append_rows_many: one call per session in a batch")
    outcomes: list[Any] = [None] * len(calls)
    planned, args = [], []
    locks = [store.session_lock(*key) for key in sorted(keys)]
    for lock in locks:
        lock.acquire()
    try:
        for i, (key, read_at, events, upserts, updated_at, _commit) in enumerate(calls):
            try:
                _refuse_marked(store, key, events)
                args.append((*key, read_at(), events, upserts, (), updated_at))
                planned.append(i)
            except Exception as e:  # this call's own refusal
                outcomes[i] = (None, e)
        for i, (result, error) in zip(planned, store.append_many(args)):
            if error is not None:
                outcomes[i] = (None, error)
            elif result[0] is None:
                outcomes[i] = (result[1], None)
            else:
                try:
                    calls[i][5](result[0])
                    outcomes[i] = (None, None)
                except Exception as e:  # committed: the caller's own update of its object failed
                    outcomes[i] = (None, e)
    finally:
        for lock in locks:
            lock.release()
    return outcomes


def _refuse_marked(store: Store, key: tuple[str, str, str], events: Sequence[tuple]) -> None:
    """Refuse new event rows that carry ``custom_metadata`` :data:`~adk_lite.lifecycle.UPDATE_KEYS_MARK`.

    Raises:
        ValueError: such an event is not stored yet (a retry of stored ones passes).
    """
    mark = lifecycle.UPDATE_KEYS_MARK
    marked = [row[0] for row in events if _MARK_TEXT in row[5] and codec.loads(row[5]).get("custom_metadata") == mark]
    if marked:  # (a retry of events all stored, update_keys' own among them, still returns them)
        stored_ids = {r.event_id for r in store.read(lambda conn: store._all_events(conn, key))}
        if not all(row[0] in stored_ids for row in events):
            raise ValueError(f"event {marked[0]!r}: custom_metadata {mark!r} is reserved for the events "
                             "update_keys records (a None there deletes the key); nothing was written")


def _b64(value: list) -> str:
    return base64.urlsafe_b64encode(codec.dumps(value).encode()).decode()


def _unb64(cursor: Any, what: str) -> Any:
    """The JSON value in a cursor, or None when it is not base64 of JSON.

    Raises:
        TypeError: not a str.
    """
    if not isinstance(cursor, str):
        raise TypeError(f"after must be a str cursor from {what}, not {type(cursor).__name__}")
    try:
        return codec.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, TypeError, binascii.Error):
        return None


def _encode_cursor(row: ListedSession, newest: bool) -> str:
    """A list cursor: the last row's key; newest-first cursors start with ``"newest"``."""
    return _b64((["newest"] if newest else []) + [row.updated_at, row.app_name, row.user_id, row.session_id])


def _decode_cursor(cursor: Any, newest: bool) -> Optional[tuple]:
    if cursor is None:
        return None
    key = _unb64(cursor, "SessionList.next_cursor")
    made_newest = isinstance(key, list) and len(key) == 5 and key[0] == "newest"
    if made_newest:
        key = key[1:]
    try:
        if not (isinstance(key, list) and len(key) == 4):
            raise ValueError
        validate.timestamp(key[0], "cursor", optional=False)
        for text in key[1:]:
            validate.event_text(text, "cursor")
    except (ValueError, TypeError):
        raise ValueError(f"after={cursor!r} is not a cursor returned by list_sessions (SessionList.next_cursor)") \
            from None
    if made_newest != newest:
        raise ValueError(f"after={cursor!r} is a cursor of order={ORDERS[made_newest]!r}; pass the same "
                         f"order as the page it came from, not {ORDERS[newest]!r}")
    return tuple(key)


def _decode_search_cursor(cursor: Any, scope: str) -> Optional[tuple[float, int]]:
    """The ``(rank, rowid)`` a search cursor holds, for the search ``scope`` (a hash of
    the query and filters) it was made for."""
    if cursor is None:
        return None
    key = _unb64(cursor, "SearchResults.next_cursor")
    if (isinstance(key, list) and len(key) == 3 and isinstance(key[0], str) and type(key[1]) is float
            and type(key[2]) is int and 0 < key[2] <= validate.MAX_COUNT and abs(key[1]) != float("inf")):
        if key[0] != scope:
            raise ValueError(f"after={cursor!r} is a cursor of another search: pass the same query and filters "
                             "as the page it came from")
        return key[1], key[2]
    raise ValueError(f"after={cursor!r} is not a cursor returned by search_events (SearchResults.next_cursor)")
