"""Moving in and out: copy every session between ADK's own session stores and adk_lite.

:func:`import_from_adk` reads a database written by ADK's ``SqliteSessionService``
(``adk web``'s default ``.adk/session.db``) or ``DatabaseSessionService`` (a
``sqlite+aiosqlite://`` URL) through ADK's own classes and writes it into an
adk_lite database; :func:`export_to_adk` writes an adk_lite database into either of
ADK's stores through ADK's own classes. ``adk-lite import-adk`` / ``export-adk``
call them. Re-exported by :mod:`adk_lite.adk`; like it, this module imports
``google.adk`` (``import adk_lite`` never does).

Reading a source never writes it: its main file is first copied, as one consistent
snapshot, with SQLite's backup API from a connection opened read-only
(``file:...?mode=ro``), into a private temporary folder, and ADK's services open
that copy. Both of ADK's services write when they open a file (``SqliteSessionService``
runs ``CREATE TABLE IF NOT EXISTS`` on its first call; ``DatabaseSessionService``
creates missing tables and indexes and inserts its schema version row), so they
are never pointed at the source itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import tempfile
import threading
from typing import Any, Awaitable, Callable, Iterator, Optional, Union

import orjson
from google.adk.events import Event
from google.adk.sessions import BaseSessionService

from .. import codec, errors, scopes, service
from ..load import TransferReport, load, locate
from ..rows import EventRow
from ..sqlite_check import file_uri
from ..target import mask_password, resolve, target_kind
from .convert import event_from_row, event_row
from .sources import check_source, refuse_same, refuse_same_server, source_file, sqlite_files

__all__ = ["import_from_adk", "export_to_adk", "count_adk_sessions", "count_sessions", "source_file", "sqlite_files",
           "initial_state", "MIGRATE_HINT"]

_SCOPED = (scopes.APP_PREFIX, scopes.USER_PREFIX, scopes.TEMP_PREFIX)
MIGRATE_HINT = ("upgrade it first with ADK's own command: adk migrate session --source_db_url=URL "
                "--dest_db_url=NEW_URL")
"""What a refused pickled (v0) ADK database is told to do."""

OnSession = Optional[Callable[[], None]]


def _adk_service(kind: str, where: str) -> BaseSessionService:
    """ADK's ``SqliteSessionService(where)`` (kind ``"sqlite"``) or
    ``DatabaseSessionService(where)`` (``"database"``), imported here: they need
    aiosqlite / SQLAlchemy (in the ``adk`` extra), which ``adk_lite.adk`` does not.

    Raises:
        ValueError: ADK refuses the URL, or a module it needs is missing.
    """
    try:
        if kind == "sqlite":
            from google.adk.sessions.sqlite_session_service import SqliteSessionService
            return SqliteSessionService(where)
        from google.adk.sessions.database_session_service import DatabaseSessionService
        return DatabaseSessionService(where)
    except ImportError as e:
        raise ValueError(f"ADK's session services need aiosqlite and sqlalchemy[asyncio] "
                         f"({errors.install_hint('adk')}): {e}") from e


Run = Callable[[Awaitable[Any]], Any]


async def _made(make: Callable[[], BaseSessionService]) -> BaseSessionService:
    return make()


@contextlib.contextmanager
def _adk_open(make: Callable[[], BaseSessionService]) -> Iterator[tuple[BaseSessionService, Run]]:
    """Open an ADK service with ``make`` on a private event loop in a thread of its own;
    yield it with ``run(coroutine)``, which runs one of its calls there and waits for it
    from sync code (also where an event loop already runs in this thread: a notebook),
    so a source is read one record at a time while the caller writes. The service is
    closed and the loop stopped whatever happens."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="adk_lite-adk-transfer", daemon=True)
    thread.start()

    def run(call: Awaitable[Any]) -> Any:
        future = asyncio.run_coroutine_threadsafe(call, loop)  # type: ignore[arg-type]
        try:
            return future.result()
        except BaseException:  # interrupted (^C): the call stops too
            future.cancel()
            raise

    try:
        adk = run(_made(make))
        try:
            yield adk, run
        finally:
            run(adk.close())
    finally:
        run(loop.shutdown_asyncgens())  # as asyncio.run ends
        run(loop.shutdown_default_executor())
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def _session_state(merged: dict[str, Any]) -> dict[str, Any]:
    """The session-scope keys of a merged ADK state (no ``app:``/``user:``/``temp:`` key)."""
    return {k: v for k, v in merged.items() if not k.startswith(_SCOPED)}


# -- moving in -------------------------------------------------------------------------

def _snapshot(path: str, folder: str) -> str:
    """Copy the SQLite file ``path`` (read-only, one consistent snapshot) into ``folder``.

    Raises:
        ValueError: ``path`` is missing, not a file, or not an SQLite database.
    """
    if not os.path.isfile(path):
        raise ValueError(f"ADK source {path} does not exist or is not a file")
    copy = os.path.join(folder, "source.db")
    try:
        src = sqlite3.connect(file_uri(path), uri=True)
        try:
            dst = sqlite3.connect(copy)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as e:
        raise ValueError(f"ADK source {path} cannot be read as an SQLite database: {e}") from e
    return copy


def _source_kind(copy: str, source: str) -> str:
    """``"sqlite"`` (ADK's SqliteSessionService) or ``"database"`` (its
    DatabaseSessionService, JSON schema), tried in that order.

    Raises:
        ValueError: a pickled (v0) DatabaseSessionService file (the message names
            ``adk migrate session``), or a file of neither service.
    """
    with sqlite3.connect(copy) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        columns = {r[1] for r in conn.execute("PRAGMA table_info(events)")}
        version = None
        if "adk_internal_metadata" in tables:
            row = conn.execute("SELECT value FROM adk_internal_metadata WHERE key = 'schema_version'").fetchone()
            version = row[0] if row else None
    conn.close()
    if not {"sessions", "events", "app_states", "user_states"} <= tables:
        raise ValueError(f"ADK source {source} is not a database of ADK's SqliteSessionService or "
                         "DatabaseSessionService (it lacks their tables)")
    if "event_data" not in columns:
        raise ValueError(f"ADK source {source} uses ADK's older pickled session schema: {MIGRATE_HINT}")
    if "adk_internal_metadata" not in tables:
        return "sqlite"
    if version != "1":
        raise ValueError(f"ADK source {source} has ADK schema version {version!r}, which this adk_lite does not "
                         "read (it reads version 1, ADK's JSON schema)")
    return "database"


def _read_plain(copy: str) -> tuple[list[tuple[str, str]], dict[str, dict[str, Any]]]:
    """What ADK's classes cannot list, by plain SQL on the snapshot (checked by
    :func:`adk_lite.adk.sources.check_source`): every ``(app_name, user_id)`` with sessions or user
    state, sorted, and every app's state (``BaseSessionService`` has no app-state
    reader)."""
    with contextlib.closing(sqlite3.connect(copy)) as conn:
        pairs = conn.execute("SELECT app_name, user_id FROM sessions UNION "
                             "SELECT app_name, user_id FROM user_states ORDER BY 1, 2").fetchall()
        apps = {app: codec.loads_exact(state) for app, state in conn.execute("SELECT app_name, state FROM app_states")}
    return pairs, apps


def initial_state(state: dict[str, Any], events: list[Event]) -> Optional[dict[str, Any]]:
    """The session-scope state an ADK session was created with, where it can be
    known exactly, else None (unknown, as the ``initial_state`` column allows).

    ADK stores no creation state: a session's state is what ``create_session``
    gave, then each event's ``state_delta`` applied in order (ADK's services change
    a session's state in no other way). When no event sets a session-scope key,
    the current session state is exactly the creation state. When one does, the
    value that key had before that event (or whether it existed) is recorded
    nowhere, so the whole initial state is unknown: a fork of the imported session
    at a cut then replays from ``{}`` and says ``"state_exact": false`` rather
    than guess.
    """
    for event in events:
        delta = event.actions.state_delta if event.actions else None
        if delta and any(not key.startswith(_SCOPED) for key in delta):
            return None
    return _session_state(state)


def _session_record(session: Any) -> dict[str, Any]:
    """An ADK ``Session`` (read with its events) as a record of :mod:`adk_lite.transfer`;
    event bodies as the adapter stores them (:func:`adk_lite.adk.event_row`), decoded
    exactly (:func:`adk_lite.codec.loads_exact`: an integer beyond 64 bits stays an
    int, which the record check refuses by name). ADK's classes do not give a
    session's creation time: the first event's time (or the last update's) stands
    in for it. The revision is the number of events (each was one append); the
    initial state is :func:`initial_state`'s; an ADK session is never a fork."""
    rows = [event_row(e) for e in session.events]
    events = [{"event_id": r.event_id, "invocation_id": r.invocation_id, "author": r.author, "branch": r.branch,
               "timestamp": r.timestamp, "body": codec.loads_exact(r.body)} for r in rows]
    created = min([session.last_update_time] + [e.timestamp for e in session.events[:1]])
    return {"type": "session", "app_name": session.app_name, "user_id": session.user_id,
            "session_id": session.id, "created_at": created, "updated_at": session.last_update_time,
            "revision": len(events), "initial_state": initial_state(session.state, session.events),
            "forked_from": None, "state": _session_state(session.state), "events": events}


def _open_target(target: Any) -> tuple[Any, bool]:
    """An adk_lite core service for ``target`` (opened here unless one is given; a
    callable is called to open it) and whether it is ours to close."""
    if isinstance(target, service.DatabaseSessionService):
        return target, False
    if callable(target):
        return target(), True
    return service.DatabaseSessionService(target), True


async def _read(source: str, what: str, call: Awaitable[Any]) -> Any:
    """Await one of ADK's reads; an error it raises names the source and what was read."""
    try:
        return await call
    except Exception as e:  # ADK's own ValueError, pydantic's ValidationError, SQLAlchemy's errors...
        raise ValueError(f"ADK source {source}: reading {what} failed: {' '.join(str(e).split())[:500]}") from e


def _state_item(kind: str, app: str, user: str, state: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """An app/user state of the source as a ``(where, record)`` item; an empty state
    is a placeholder (nothing to check or write)."""
    record = dict(type=kind, app_name=app, state=state, **({"user_id": user} if kind == "user_state" else {}))
    return locate(record), record if state else None


def _adk_records(adk: BaseSessionService, run: Run, copy: str, source: str,
                 on_session: OnSession) -> Iterator[tuple[dict[str, Any], Any]]:
    """Yield ``(where, record)`` for everything of an ADK source, read one at a time
    (``run`` waits for each of ADK's calls): every app's state, then per app and user
    the user state and each session (:func:`_session_record`; None: deleted meanwhile;
    ``where`` is ``{"app_name", "user_id", "session_id"}``, calling ``on_session``
    once it is written)."""
    pairs, app_states = _read_plain(copy)
    for app, state in sorted(app_states.items()):
        yield _state_item("app_state", app, "", state)
    for app, user in pairs:
        where = f"app_name={app!r}, user_id={user!r}"
        yield _state_item("user_state", app, user, run(_read(
            source, f"table user_states, {where}", adk.get_user_state(app_name=app, user_id=user))))
        heads = run(_read(source, f"table sessions, {where}", adk.list_sessions(app_name=app, user_id=user)))
        for head in heads.sessions:
            session = run(_read(source, f"tables sessions and events, {where}, session_id={head.id!r}",
                                adk.get_session(app_name=app, user_id=user, session_id=head.id)))
            yield ({"app_name": app, "user_id": user, "session_id": head.id},
                   None if session is None else _session_record(session))
            if on_session is not None:
                on_session()


def count_adk_sessions(source: str) -> int:
    """How many sessions an ADK source holds (plain read-only SQL; for a progress bar).

    Raises:
        ValueError: as :func:`import_from_adk`.
    """
    path = source_file(source)
    if path is None:
        raise ValueError(_URL_REFUSED.format(source=source))
    try:
        with contextlib.closing(sqlite3.connect(file_uri(path), uri=True)) as conn:
            return conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
    except sqlite3.Error:
        return 0


_URL_REFUSED = ("ADK source {source}: only SQLite sources are read for now (a path, or a sqlite:// or "
                "sqlite+aiosqlite:// URL)")


def import_from_adk(source: str, target: Union[str, os.PathLike, Any], *, replace: bool = False,
                    on_session: OnSession = None) -> TransferReport:
    """Copy every app, user and session of an ADK session database into adk_lite.

    Reads with ADK's own classes: ``list_sessions`` per app and user,
    ``get_session`` (every event, merged state) and ``get_user_state``; plain
    read-only SQL only enumerates apps and users and reads app state (which no
    ADK method returns). The source is never written: ADK's services read a
    snapshot copy made in a private temporary folder (deleted at the end).

    The source's records (app state, user state, sessions with their events) are
    checked and written by :func:`adk_lite.load.load`, the writer every import shares.
    Each session is written in one transaction (:meth:`adk_lite.store.Store.import_session`):
    a session already stored with the same state and events is skipped, so a
    re-run completes an interrupted import; one stored with other content is
    reported in ``conflicts`` and left alone unless ``replace``. App and user
    state keys are added; a differing stored key is a conflict unless ``replace``
    (as ``adk-lite import``). Events keep their id, invocation id, author,
    branch, timestamp and full body; afterwards :class:`adk_lite.adk.DatabaseSessionService`'s
    ``get_session`` returns the session ADK's service returns from the source.

    Args:
        source: a file of ADK's ``SqliteSessionService`` (``.adk/session.db``) or
            a ``sqlite+aiosqlite:///path`` URL of its ``DatabaseSessionService``
            (``sqlite:///path`` too). A path is read as a SqliteSessionService
            file first, then as a DatabaseSessionService one.
        target: an adk_lite database as :class:`adk_lite.DatabaseSessionService`
            takes it (created if missing), an open one (left open), or a callable
            that opens one (called only once the source passed its checks, so a
            refused source creates no database; closed at the end).
        replace: overwrite sessions and app/user keys that differ.
        on_session: called after each source session (a progress bar).

    Returns:
        The :class:`adk_lite.load.TransferReport`: ``{"apps", "users" ((app, user)
        pairs), "sessions" (written), "events" (written), "skipped" (already there,
        same content), "replaced": int, "conflicts": [{"app_name", "user_id",
        "session_id" or "type" and "keys"}], "refused": [{..., "error"}] (what
        adk_lite's rules refuse), "seconds": float}`` and the report's other keys
        (``created``, ``unchanged``, ``state_keys``, ...).

    Raises:
        ValueError: the source is missing, not an ADK session database, of ADK's
            older pickled schema (the message names ``adk migrate session``), or
            a URL of another database.
        DatabaseError, DatabaseLockedError: the target cannot be opened or written
            (the sessions written before stay, each whole).
    """
    report = TransferReport()  # its clock runs from here
    path = source_file(os.fspath(source) if isinstance(source, os.PathLike) else source)
    if path is None:
        raise ValueError(_URL_REFUSED.format(source=source))

    def refuse_itself(db_path: str) -> None:
        refuse_same([path], db_path, f"ADK source {source} is the adk_lite database {db_path} itself or one of its "
                    "side files (-wal, -shm, -journal): refusing to read it as ADK's")
    if isinstance(target, service.DatabaseSessionService):
        refuse_itself(target.path)
    elif not callable(target):
        refuse_itself(target if target_kind(target) == "postgres" else resolve(target))
    folder = tempfile.mkdtemp(prefix="adk_lite_import_")
    try:
        copy = _snapshot(path, folder)
        kind = _source_kind(copy, source)
        check_source(copy, kind, source)
        svc, owned = _open_target(target)
        try:
            refuse_itself(svc.path)
            with _adk_open(lambda: _adk_service(kind, copy if kind == "sqlite" else "sqlite+aiosqlite:///" + copy)
                           ) as (adk, run):
                return load(svc.store, _adk_records(adk, run, copy, source, on_session), replace=replace,
                            report=report)
        finally:
            if owned:
                svc.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- moving out ------------------------------------------------------------------------

def _adk_kind(target: str) -> str:
    """Which of ADK's services writes ``target``: ``"database"`` for a ``driver://``
    URL other than ``sqlite://``, else ``"sqlite"`` (as ADK's own service registry does)."""
    return "database" if "://" in target and not target.startswith("sqlite://") else "sqlite"


def _adk_target(target: str) -> BaseSessionService:
    """ADK's service for ``target`` (see :func:`_adk_kind`)."""
    return _adk_service(_adk_kind(target), target)


def _events_equal(ours: list[Event], theirs: list[Event]) -> bool:
    return [e.model_dump() for e in ours] == [e.model_dump() for e in theirs]


async def _export_session(adk: BaseSessionService, key: tuple, found: tuple, replace: bool,
                          report: TransferReport) -> None:
    """Write one session: created with its final session state, then every event
    appended in order (ADK applies each delta, as it did when the events were
    first appended). A session already in the target whose events are ours, or a
    prefix of them (an interrupted export), is completed; other content is a
    conflict unless ``replace``."""
    app, user, sid = key
    _row, state_rows, event_rows = found
    state = {k: orjson.loads(v) for scope, k, v in state_rows if scope == scopes.SESSION}
    events = [event_from_row(EventRow(*r)) for r in event_rows]
    where = {"app_name": app, "user_id": user, "session_id": sid}
    existing = await adk.get_session(app_name=app, user_id=user, session_id=sid)
    done, outcome = 0, "created"
    if existing is not None:
        done = len(existing.events)
        if not _events_equal(events[:done], existing.events):
            if not replace:
                report.session("conflict", 0, where)
                return
            await adk.delete_session(app_name=app, user_id=user, session_id=sid)
            existing, done, outcome = None, 0, "replaced"
        elif done == len(events):
            report.session("unchanged", 0, where)
            return
    session = existing or await adk.create_session(app_name=app, user_id=user, session_id=sid, state=state)
    for event in events[done:]:
        await adk.append_event(session, event)
    report.session(outcome, len(events) - done, where)


async def _export(svc: Any, adk: BaseSessionService, replace: bool, on_session: OnSession,
                  report: TransferReport) -> None:
    store = svc.store
    for key in store.session_keys(None, None):
        found = store.read_session(*key, None, None)
        if found is not None:
            await _export_session(adk, key, found, replace, report)
        if on_session is not None:
            on_session()
    # Replayed deltas leave app/user keys at the last value of the last session written;
    # set the stored values through a session created with them and deleted again
    # (ADK writes app/user state only with a session; deleting one keeps the state).
    pairs = {key[:2] for key in store.session_keys(None, None)}
    holders: dict[tuple[str, str], dict[str, Any]] = {}
    app_state: dict[str, dict[str, Any]] = {}
    for app, user, scope, k, v in store.scope_rows(None, None):
        if scope == scopes.APP:
            app_state.setdefault(app, {})[scopes.APP_PREFIX + k] = orjson.loads(v)
        else:
            holders.setdefault((app, user), {})[scopes.USER_PREFIX + k] = orjson.loads(v)
    for app, state in app_state.items():  # with one of the app's users: no user row is made for it
        user = next((u for a, u in sorted(holders) if a == app), None) or \
            next((u for a, u in sorted(pairs) if a == app), "adk_lite_export")
        holders.setdefault((app, user), {}).update(state)
    for (app, user), state in sorted(holders.items()):
        holder = await adk.create_session(app_name=app, user_id=user, state=state)
        await adk.delete_session(app_name=app, user_id=user, session_id=holder.id)
    for app, user in pairs | {(app, "") for app in app_state}:
        report.met({"app_name": app, "user_id": user})


def export_to_adk(source: Union[str, os.PathLike, Any], target: str, *, replace: bool = False,
                  on_session: OnSession = None) -> TransferReport:
    """Write every session of an adk_lite database into one of ADK's session stores,
    through ADK's own classes (``create_session``, ``append_event``).

    Each session is created with its session state and gets every event appended
    in order, so ADK stores the events as it would have; app and user state is
    then set to the stored values (through a session created with them and
    deleted). ADK commits every call on its own, so a session is not written in
    one transaction: an interrupted export leaves a session with a prefix of its
    events, which a re-run completes. A session already in the target with the
    same events is skipped; with other events it is reported in ``conflicts`` and
    left alone unless ``replace`` (then deleted and written again).

    Not carried over: a key deleted with ``update_keys`` (ADK's services store its
    ``None`` as null), and creation times (ADK sets its own).

    Args:
        source: an adk_lite database (path or URL; opened read-only), or an open
            :class:`adk_lite.DatabaseSessionService`.
        target: a ``sqlite+aiosqlite:///path`` (or other ``driver://``) URL for
            ADK's ``DatabaseSessionService``, or a path or ``sqlite:///path`` URL
            for its ``SqliteSessionService`` (created if missing).
        replace, on_session: as :func:`import_from_adk`.

    Returns:
        The :class:`adk_lite.load.TransferReport` of :func:`import_from_adk`
        (``refused`` always empty; ``created`` counts the sessions written or
        completed).

    Raises:
        ValueError: a target URL ADK refuses.
        DatabaseError: the source cannot be opened.
    """
    report = TransferReport()
    if isinstance(source, service.DatabaseSessionService):
        svc, owned = source, False
    else:
        svc, owned = service.DatabaseSessionService(source, read_only=True), True
    try:
        target = os.fspath(target)
        same = (f"export target {mask_password(target)} is the adk_lite database {svc.path} itself or one of its "
                "side files (-wal, -shm, -journal): refusing to write ADK's tables into it")
        refuse_same(sqlite_files(target, adk_sqlite=_adk_kind(target) == "sqlite"), svc.path, same)
        refuse_same_server(target, svc, same)
        with _adk_open(lambda: _adk_target(target)) as (adk, run):
            run(_export(svc, adk, replace, on_session, report))
    finally:
        if owned:
            svc.close()
    return report.finish()


def count_sessions(source: Any) -> int:
    """How many sessions an open adk_lite service holds (for a progress bar)."""
    return len(source.store.session_keys(None, None))
