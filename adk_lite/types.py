"""Plain dataclasses for sessions and events, with ADK's field names.

They mirror ``google.adk.sessions.Session``, ``google.adk.events.Event`` and
``EventActions`` closely enough that ``Event.from_dict(adk_event.model_dump(
mode="json"))`` works: keys these classes do not name are kept in ``extra`` and
written back unchanged by ``to_dict()``. ``from_dict`` also takes the camelCase keys
of ADK's JSON (``model_dump(by_alias=True)``, what ``adk api_server`` returns:
``invocationId``, ``stateDelta``, ...); ``to_dict`` writes snake_case.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = ["EventActions", "Event", "Session", "SessionList", "SearchHit", "SearchResults"]


@dataclass
class EventActions:
    """What an event does besides carrying content (``google.adk.events.EventActions``).

    Attributes:
        state_delta: ``{key: value}`` applied to state when the event is appended.
            Keys are scoped by prefix (``app:``, ``user:``, ``temp:``, none).
        artifact_delta: ``{filename: version}`` of artifacts the event saved.
        transfer_to_agent: name of the agent to hand over to, or None.
        escalate: True when the agent escalates to its parent, or None.
        skip_summarization: True to skip summarizing a function response, or None.
        extra: every other ADK action field, kept as given (JSON values).
    """

    state_delta: dict[str, Any] = field(default_factory=dict)
    artifact_delta: dict[str, Any] = field(default_factory=dict)
    transfer_to_agent: Optional[str] = None
    escalate: Optional[bool] = None
    skip_summarization: Optional[bool] = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return ADK's JSON shape, leaving out empty and None fields."""
        out = dict(self.extra)
        for name in _ACTION_FIELDS:
            value = getattr(self, name)
            if value is not None and value != {}:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: Optional[dict[str, Any]]) -> "EventActions":
        """Build from ADK's JSON shape, snake_case or camelCase keys (``stateDelta``,
        as ADK's pydantic aliases); unknown keys go to ``extra``.

        Raises:
            TypeError: ``data`` is neither a dict nor None.
        """
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise TypeError(f"actions must be a dict, not {type(data).__name__}")
        rest = _snake_keys(data, _ACTION_FIELDS)
        known = {name: rest.pop(name) for name in _ACTION_FIELDS if name in rest}
        for name in ("state_delta", "artifact_delta"):
            if known.get(name, 0) is None:
                del known[name]
        return cls(**known, extra=rest)


_ACTION_FIELDS = ("state_delta", "artifact_delta", "transfer_to_agent", "escalate", "skip_summarization")


def _camel(name: str) -> str:
    """``state_delta`` -> ``stateDelta``: the alias ADK's models (pydantic's ``to_camel``) give a field."""
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _snake_keys(data: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``data`` with the camelCase alias of each of ``fields`` renamed to
    the field's name; where both are given the snake_case key wins and the alias
    stays as it is (kept in ``extra``)."""
    out = dict(data)
    for name in fields:
        alias = _camel(name)
        if alias != name and alias in out and name not in out:
            out[name] = out.pop(alias)
    return out


def _new_event_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Event:
    """One entry of a session's event log (``google.adk.events.Event``).

    Attributes:
        id: unique within the session; a uuid4 string by default. Re-appending an
            id that is already stored returns the stored event and writes nothing.
        invocation_id: the invocation (one user turn) the event belongs to.
        author: ``"user"`` or the name of the agent; ``"system"`` for the events
            ``update_keys`` records.
        timestamp: epoch seconds, UTC (``time.time()``).
        content: the message as ADK's JSON shape (``{"role": ..., "parts": [...]}``)
            or None.
        actions: an :class:`EventActions`; its ``state_delta`` changes state.
        branch: the agent branch (``"root.child"``) or None.
        partial: True for a streamed fragment; partial events are never stored.
        custom_metadata: free JSON ``dict`` or None. ``{"adk_lite": "update_keys"}``
            marks the events ``update_keys`` records (there ``None`` means deleted).
        extra: every other ADK event field, kept as given (JSON values).
    """

    id: str = field(default_factory=_new_event_id)
    invocation_id: str = ""
    author: str = "user"
    timestamp: float = field(default_factory=time.time)
    content: Optional[dict[str, Any]] = None
    actions: EventActions = field(default_factory=EventActions)
    branch: Optional[str] = None
    partial: Optional[bool] = None
    custom_metadata: Optional[dict[str, Any]] = None
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """Return the fields stored in the ``body`` JSON column (all but the columns)."""
        out = dict(self.extra)
        if self.content is not None:
            out["content"] = self.content
        actions = self.actions.to_dict()
        if actions:
            out["actions"] = actions
        if self.partial is not None:
            out["partial"] = self.partial
        if self.custom_metadata is not None:
            out["custom_metadata"] = self.custom_metadata
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return ADK's JSON shape (snake_case keys), leaving out None fields."""
        out = self.body()
        out.update(id=self.id, invocation_id=self.invocation_id, author=self.author, timestamp=self.timestamp)
        if self.branch is not None:
            out["branch"] = self.branch
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Event":
        """Build from ADK's JSON shape (``Event.model_dump(mode="json")``), with
        snake_case or camelCase keys (``invocationId``, ``customMetadata``, as
        ``model_dump(by_alias=True)`` and ``adk api_server`` write them).

        Keys this class does not name go to ``extra``; ``actions`` is parsed by
        :meth:`EventActions.from_dict`; ``content`` is kept as given.

        Raises:
            TypeError: ``data`` or its ``actions`` is not a dict.
        """
        if not isinstance(data, dict):
            raise TypeError(f"event data must be a dict, not {type(data).__name__}")
        rest = _snake_keys(data, _EVENT_FIELDS)
        known = {name: rest.pop(name) for name in _EVENT_FIELDS if name in rest}
        known["actions"] = EventActions.from_dict(known.get("actions"))
        return cls(**known, extra=rest)


_EVENT_FIELDS = ("id", "invocation_id", "author", "timestamp", "content", "actions", "branch", "partial", "custom_metadata")


@dataclass
class Session:
    """A conversation: its ids, merged state and events (``google.adk.sessions.Session``).

    Attributes:
        id: the session id, unique per ``(app_name, user_id)``.
        app_name: the application the session belongs to.
        user_id: the user the session belongs to.
        state: the merged view: session keys as they are, app keys as ``app:k``,
            user keys as ``user:k`` (and ``temp:k`` keys applied in memory only).
        events: the events read or appended, oldest first.
        last_update_time: epoch seconds of the last write (the last event's
            ``timestamp`` after an append).
        revision: the stored revision this object reflects; bumped by every write
            to the session. An append from an object whose revision is behind the
            stored one raises ``StaleSessionError``.
        incarnation: the random id the store gave the session when it was created
            (16 hex digits). A session deleted and created again under the same id
            gets a new one, so an append from an object read before raises
            ``StaleSessionError``. None for an object not read from a store: its
            appends are refused.
    """

    id: str
    app_name: str
    user_id: str
    state: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    last_update_time: float = 0.0
    revision: int = 0
    incarnation: Optional[str] = None


class SessionList(list):
    """A page of ``list_sessions``: a ``list`` of :class:`Session` (no events).

    Attributes:
        next_cursor: an opaque ``str`` to pass back as ``after=`` for the next
            page, or None on the last page.
    """

    def __init__(self, sessions=(), next_cursor: Optional[str] = None):
        super().__init__(sessions)
        self.next_cursor = next_cursor

    def __repr__(self) -> str:
        return f"SessionList({list.__repr__(self)}, next_cursor={self.next_cursor!r})"


@dataclass
class SearchHit:
    """One event found by ``search_events``.

    Attributes:
        app_name, user_id, session_id: the session the event belongs to.
        event_id, invocation_id, author: the event's ids and author.
        timestamp: the event's time, epoch seconds.
        rank: lower (more negative) is a better match; hits come best first.
            FTS5's bm25 score on SQLite, ``-ts_rank`` on PostgreSQL.
        snippet: a piece of the event's indexed text with each matched term
            marked ``«term»``; on SQLite ``…`` where text was cut.
    """

    app_name: str
    user_id: str
    session_id: str
    event_id: str
    invocation_id: str
    author: str
    timestamp: float
    rank: float
    snippet: str


class SearchResults(list):
    """A page of ``search_events``: a ``list`` of :class:`SearchHit`, best first.

    Attributes:
        next_cursor: an opaque ``str`` to pass back as ``after=`` (with the same
            query and filters) for the next page, or None on the last page.
    """

    def __init__(self, hits=(), next_cursor: Optional[str] = None):
        super().__init__(hits)
        self.next_cursor = next_cursor

    def __repr__(self) -> str:
        return f"SearchResults({list.__repr__(self)}, next_cursor={self.next_cursor!r})"
