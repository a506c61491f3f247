"""The rows the store returns (named tuples, so callers read fields by name), and
the random incarnation id a new session gets. Imports nothing of adk_lite."""

from __future__ import annotations

import secrets
from typing import NamedTuple, Optional


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
