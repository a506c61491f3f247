"""ADK's ``BaseMemoryService`` on adk_lite's database: :class:`DatabaseMemoryService`.

Memories live in the same file (or PostgreSQL database) as the sessions, in
``adk_memories`` with a full-text index (see :mod:`adk_lite.memory` for what is
indexed and how a query matches). ADK's ``load_memory`` and ``preload_memory`` tools
call :meth:`DatabaseMemoryService.search_memory`; an agent's callback (or the app)
calls :meth:`DatabaseMemoryService.add_session_to_memory` after a session."""

from __future__ import annotations

import datetime
import os
import time
from typing import Any, Mapping, Optional, Sequence, Union

from google.adk.events import Event
from google.adk.memory import BaseMemoryService
from google.adk.memory.base_memory_service import SearchMemoryResponse
from google.adk.memory.memory_entry import MemoryEntry
from google.adk.sessions import Session
from google.genai import types

from .. import codec, memory, validate
from .opened import OnDatabase

__all__ = ["DatabaseMemoryService"]


MAX_MAX_RESULTS = 1000
"""The largest ``max_results`` accepted."""


def format_timestamp(timestamp: float) -> str:
    """An event's time (epoch seconds) as a memory shows it: ISO 8601 in local time,
    as ADK's memory services format it (``google.adk.memory._utils.format_timestamp``)."""
    return datetime.datetime.fromtimestamp(timestamp).isoformat()


def _metadata(value: Any, arg: str) -> dict[str, Any]:
    """Check custom metadata: None or a mapping with str keys and JSON values."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{arg} must be a mapping or None, not {type(value).__name__}")
    value = dict(value)
    codec.check_json(value, arg)
    return value


def _body_json(body: dict[str, Any], arg: str) -> str:
    """A memory's body as stored, checked whole as an import or copy checks it
    (:mod:`adk_lite.records`: 64-bit ints, at most :data:`adk_lite.codec.MAX_DEPTH`
    deep counted from the body), so what is stored also moves.

    Raises:
        TypeError, ValueError: the message names ``arg`` and the field.
    """
    codec.check_json(body, arg)
    return codec.dumps(body)


def _content_json(content: Any, arg: str) -> Any:
    if not isinstance(content, types.Content):
        raise TypeError(f"{arg} must be a google.genai.types.Content, not {type(content).__name__}")
    return content.model_dump(mode="json", exclude_none=True)


class DatabaseMemoryService(OnDatabase, BaseMemoryService):
    """ADK's ``BaseMemoryService`` on an adk_lite database (a SQLite file, or PostgreSQL),
    the same one :class:`adk_lite.adk.DatabaseSessionService` keeps sessions in.

    Args:
        db, db_url, uri: the database, as :class:`adk_lite.adk.DatabaseSessionService`
            takes it (a path, ``":memory:"``, ``sqlite:///`` / ``adklite:///`` URLs with
            three slashes and a relative path or four and an absolute one, a PostgreSQL
            URL, or None for ``$ADK_LITE_DB``, else ``.adk/sessions.sqlite3``). Give at
            most one. The same file may be open in a session service (and in other
            processes) at the same time; a new file is made a whole adk_lite database.
        max_results: the most memories a search returns (default
            :data:`adk_lite.memory.MAX_RESULTS`, 10, as ADK's in-memory service; at most 1000).
        keep_on_session_delete: False (default): deleting a session (or ``prune``)
            deletes the memories this service made of its events. True: memories this
            service adds outlive their session (erasing the user still deletes them).
        synchronous, busy_timeout, max_workers: as the session service.
        **kwargs: ``agents_dir`` (what ADK's registry passes) is accepted and ignored;
            other unknown keywords are ignored with a logged warning.

    Raises:
        TypeError, ValueError: bad options, more than one of db/db_url/uri.
        DatabaseError: as the session service (a foreign, corrupt or newer file is
            refused and left unchanged).

    Where ADK's services differ or are silent: adding the same events again adds
    nothing (ids derive from session and event id); a deleted memory of an event
    stays deleted when its session is added again (as ADK's in-memory service);
    ``delete_memory(memory_id=None)`` deletes all of the user's memories in the app.
    """

    def __init__(self, db: Union[str, os.PathLike, None] = None, *, db_url: Optional[str] = None,
                 uri: Optional[str] = None, max_results: int = memory.MAX_RESULTS,
                 keep_on_session_delete: bool = False, synchronous: str = "normal", busy_timeout: float = 5.0,
                 max_workers: Optional[int] = None, **kwargs: Any) -> None:
        if type(max_results) is not int:
            raise TypeError(f"max_results must be an int, not {type(max_results).__name__}")
        if not 1 <= max_results <= MAX_MAX_RESULTS:
            raise ValueError(f"max_results must be from 1 to {MAX_MAX_RESULTS}, got {max_results}")
        if not isinstance(keep_on_session_delete, bool):
            raise TypeError(f"keep_on_session_delete must be a bool, not {type(keep_on_session_delete).__name__}")
        self.max_results = max_results
        self.keep_on_session_delete = keep_on_session_delete
        self._open(db, db_url, uri, synchronous, busy_timeout, max_workers, kwargs)
        self._store = self._core.store

    @property
    def path(self) -> str:
        """The database file's path (``":memory:"`` in memory; a PostgreSQL URL without its password)."""
        return self._core.path

    # -- ADK's BaseMemoryService ----------------------------------------------
    async def add_session_to_memory(self, session: Session) -> None:
        """Make memories of a session's events, as ADK's ``add_session_to_memory``:
        each event with text (text parts, tool calls' names and arguments, tool
        responses) becomes one memory of ``(session.app_name, session.user_id)``
        whose ``custom_metadata`` holds ``session_id`` and ``event_id``. A session may
        be added any number of times: only events not added before are stored.

        Raises:
            TypeError, ValueError: not a ``Session``, or bad ids.
        """
        if not isinstance(session, Session):
            raise TypeError(f"session must be a google.adk.sessions.Session, not {type(session).__name__}")
        await self.add_events_to_memory(app_name=session.app_name, user_id=session.user_id,
                                        events=session.events, session_id=session.id)

    async def add_events_to_memory(self, *, app_name: str, user_id: str, events: Sequence[Event],
                                   session_id: Optional[str] = None,
                                   custom_metadata: Optional[Mapping[str, object]] = None) -> None:
        """Make memories of some events (a delta), as ADK's ``add_events_to_memory``;
        the same rules as :meth:`add_session_to_memory`. ``session_id`` None: the
        memories belong to no session (no session delete removes them).
        ``custom_metadata`` (JSON values) is stored in each memory's metadata.

        Raises:
            TypeError, ValueError: bad ids, events that are not ``Event``, metadata
                that is not JSON; nothing is written.
        """
        app_name, user_id = validate.names(app_name, user_id)
        session_id = "" if session_id is None else validate.session_id(session_id)
        extra = _metadata(custom_metadata, "custom_metadata")
        if isinstance(events, (str, bytes)) or not isinstance(events, Sequence):
            raise TypeError(f"events must be a sequence of Event, not {type(events).__name__}")
        now = time.time()
        rows = []
        for i, event in enumerate(events):
            if not isinstance(event, Event):
                raise TypeError(f"events[{i}] must be a google.adk.events.Event, not {type(event).__name__}")
            if event.content is None or not event.content.parts or event.partial:
                continue
            validate.event_columns(event, f"events[{i}]")
            body = _body_json({"content": _content_json(event.content, f"events[{i}].content"),
                               "custom_metadata": extra}, f"events[{i}]")
            rows.append(memory.MemoryRow(app_name, user_id, memory.event_memory_id(session_id, event.id), session_id,
                                         event.id, event.author, float(event.timestamp), body,
                                         self.keep_on_session_delete, now))
        if rows:
            await self._run(lambda: memory.add(self._store, rows, skip_empty=True))

    async def add_memory(self, *, app_name: str, user_id: str, memories: Sequence[MemoryEntry],
                         custom_metadata: Optional[Mapping[str, object]] = None) -> None:
        """Store explicit memories, as ADK's ``add_memory``. Each entry's ``content``,
        ``author``, ``timestamp`` (any text, returned as given) and ``custom_metadata``
        (over the call's ``custom_metadata``) come back from searches. An entry without
        ``id`` gets one derived from its content, author, timestamp and metadata (the
        same in any process: adding the same entry again stores it once); an entry
        whose ``id`` is stored already replaces that memory.

        Raises:
            TypeError, ValueError: bad ids, entries that are not ``MemoryEntry``,
                metadata that is not JSON; nothing is written.
        """
        app_name, user_id = validate.names(app_name, user_id)
        extra = _metadata(custom_metadata, "custom_metadata")
        if isinstance(memories, (str, bytes)) or not isinstance(memories, Sequence):
            raise TypeError(f"memories must be a sequence of MemoryEntry, not {type(memories).__name__}")
        now = time.time()
        rows, seen = [], {}
        for i, entry in enumerate(memories):
            where = f"memories[{i}]"
            if not isinstance(entry, MemoryEntry):
                raise TypeError(f"{where} must be a google.adk.memory.MemoryEntry, not {type(entry).__name__}")
            validate.event_text(entry.author, f"{where}.author", optional=True)
            if entry.timestamp is not None and not isinstance(entry.timestamp, str):
                raise TypeError(f"{where}.timestamp must be a str or None, not {type(entry.timestamp).__name__}")
            body: dict[str, Any] = {"content": _content_json(entry.content, f"{where}.content"),
                                    "custom_metadata": {**extra, **_metadata(entry.custom_metadata,
                                                                             f"{where}.custom_metadata")}}
            if entry.timestamp is not None:
                validate.event_text(entry.timestamp, f"{where}.timestamp")
                body["timestamp"] = entry.timestamp
            text = _body_json(body, where)
            memory_id = entry.id
            if memory_id is None:
                memory_id = memory.entry_memory_id(text, entry.author)
            else:
                validate.event_text(memory_id, f"{where}.id")
                if not memory_id.strip():
                    raise ValueError(f"{where}.id must not be blank")
            seen[memory_id] = memory.MemoryRow(app_name, user_id, memory_id, "", "", entry.author,
                                               _epoch(entry.timestamp, now), text, True, now)
        rows = list(seen.values())  # the last entry of an id wins, as a later add would
        if rows:
            await self._run(lambda: memory.add(self._store, rows, replace=True))

    async def search_memory(self, *, app_name: str, user_id: str, query: str) -> SearchMemoryResponse:
        """Search one user's memories in one app, as ADK's ``search_memory``: the
        memories holding any word of ``query``, best first, at most ``max_results``
        (see :mod:`adk_lite.memory`: words only, no query syntax; case, accents and
        NFC/NFD ignored). Each ``MemoryEntry`` has ``id``, ``content``, ``author``,
        ``timestamp`` (ADK's ISO format for an event's; an explicit memory's as
        given) and ``custom_metadata`` (with ``session_id`` and ``event_id`` for a
        memory of an event). A query without letters or digits finds nothing.

        Raises:
            TypeError, ValueError: bad ids, a query that is not a str.
        """
        app_name, user_id = validate.names(app_name, user_id)
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, not {type(query).__name__}")
        found = await self._run(memory.search, self._store, app_name, user_id, query, self.max_results)
        return SearchMemoryResponse(memories=[_entry(row) for row in found])

    async def delete_memory(self, *, app_name: str, user_id: str, memory_id: Optional[str] = None) -> None:
        """Delete one memory (by the ``id`` a search returned), or with ``memory_id``
        None all of this user's memories in this app, as ADK's ``delete_memory``. An
        unknown id, or one of another user or app, deletes nothing. A deleted memory
        of an event is not brought back by adding its session again.

        Raises:
            TypeError, ValueError: bad ids.
        """
        app_name, user_id = validate.names(app_name, user_id)
        if memory_id is not None:
            validate.event_text(memory_id, "memory_id")
        await self._run(memory.delete, self._store, app_name, user_id, memory_id)

    # -- lifecycle ----------------------------------------------------------------
    async def close(self) -> None:
        """Stop the executor and close every connection (a file is checkpointed), as
        the session service's ``close``. Later calls raise ``ServiceClosedError``."""
        await self._close()

    async def get_stats(self) -> dict[str, Any]:
        """Counts (``memories`` among them) and file facts; see
        :meth:`adk_lite.DatabaseSessionService.get_stats`."""
        return await self._run(self._core.get_stats)



def _epoch(text: Optional[str], default: float) -> float:
    """An explicit memory's time for ordering: its ISO 8601 ``timestamp`` text (naive
    is local time), else ``default``."""
    if text:
        try:
            return datetime.datetime.fromisoformat(text).timestamp()
        except (ValueError, OverflowError, OSError):
            pass
    return default


def _entry(row: memory.MemoryRow) -> MemoryEntry:
    body = codec.loads(row.body)
    metadata = dict(body.get("custom_metadata") or {})
    if row.event_id:
        metadata.update(session_id=row.session_id, event_id=row.event_id)
        timestamp: Optional[str] = format_timestamp(row.timestamp)
    else:
        timestamp = body.get("timestamp")
    return MemoryEntry(id=row.memory_id, content=types.Content.model_validate(body["content"]),
                       author=row.author, timestamp=timestamp, custom_metadata=metadata)
