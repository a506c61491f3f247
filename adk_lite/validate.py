"""Argument checks shared by the sync service, the async wrapper and the ADK adapter.

Each check raises ``TypeError`` for a wrong type and ``ValueError`` for a wrong
value, with a message that names the argument. Checks run before any transaction,
so a refused call writes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any, Iterator, Optional

from .codec import INT64_MAX, is_text

MAX_ID_LENGTH = 256
"""Longest ``app_name``, ``user_id``, ``session_id`` or event id, in characters."""

MIN_TIMESTAMP = -62135596800.0
"""Earliest accepted time, epoch seconds: 0001-01-01T00:00:00Z, ``datetime.min``."""
MAX_TIMESTAMP = 253402300799.0
"""Latest accepted time, epoch seconds: 9999-12-31T23:59:59Z, ``datetime.max``.
Every accepted time can be shown as a date."""

MAX_COUNT = INT64_MAX
"""Largest accepted count or limit (2**63 - 1, SQLite's largest integer)."""


def is_id_text(value: Any) -> bool:
    """True for a str that passes the id checks: at most :data:`MAX_ID_LENGTH`
    characters, no NUL, no lone surrogate (the fast path of the checks below)."""
    return type(value) is str and len(value) <= MAX_ID_LENGTH and "\x00" not in value and is_text(value)


def _check_text(value: str, arg: str, limit: int = MAX_ID_LENGTH) -> None:
    if len(value) > limit:
        raise ValueError(f"{arg} is {len(value)} characters long; the limit is {limit}")
    if "\x00" in value:
        raise ValueError(f"{arg} contains a NUL character")
    if not is_text(value):
        raise ValueError(f"{arg} holds a lone surrogate ({value!r:.80}), which UTF-8 cannot store")


def name(value: Any, arg: str) -> str:
    """Check an ``app_name`` or ``user_id``: a non-blank str of at most 256 characters.

    Returns the value unchanged (names are not stripped; session ids are).

    Raises:
        TypeError: not a str.
        ValueError: empty or whitespace only, too long, or contains NUL.
    """
    if not isinstance(value, str):
        raise TypeError(f"{arg} must be a str, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{arg} must not be empty or blank")
    _check_text(value, arg)
    return value


def names(app_name: Any, user_id: Any) -> tuple[str, str]:
    """Check an ``(app_name, user_id)`` pair with :func:`name`; return it."""
    return name(app_name, "app_name"), name(user_id, "user_id")


def session_id(value: Any, *, generate: bool = False, arg: str = "session_id") -> str:
    """Check a ``session_id`` and strip surrounding whitespace (as ADK does).

    Args:
        value: a str, or None.
        generate: when True, None or a blank id gives a new uuid4 string
            (``create_session``); when False they are refused.

    Raises:
        TypeError: neither a str nor None.
        ValueError: blank (when ``generate`` is False), too long, or contains NUL.
    """
    if value is None and generate:
        return str(uuid.uuid4())
    if not isinstance(value, str):
        raise TypeError(f"{arg} must be a str, not {type(value).__name__}")
    value = value.strip()
    if not value:
        if generate:
            return str(uuid.uuid4())
        raise ValueError(f"{arg} must not be empty or blank")
    _check_text(value, arg)
    return value


def optional_name(value: Any, arg: str) -> Optional[str]:
    """Like :func:`name`, but None passes (a filter that is not applied)."""
    return None if value is None else name(value, arg)


def event_text(value: Any, arg: str, *, optional: bool = False) -> Optional[str]:
    """Check an event's ``id``, ``invocation_id``, ``author`` or ``branch``.

    Raises:
        TypeError: not a str (None passes when ``optional``).
        ValueError: too long, or contains NUL.
    """
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{arg} must be a str, not {type(value).__name__}")
    _check_text(value, arg)
    return value


def count(value: Any, arg: str, minimum: int) -> Optional[int]:
    """Check an optional count: None (no limit) or an int >= ``minimum``.

    Used for ``num_recent_events`` (minimum 0, as ADK's ``GetSessionConfig``) and
    ``list_sessions``' ``limit`` (minimum 1).

    Raises:
        TypeError: not an int (bool is refused).
        ValueError: less than ``minimum`` or more than :data:`MAX_COUNT`.
    """
    if value is None:
        return None
    if type(value) is not int:
        raise TypeError(f"{arg} must be an int or None, not {type(value).__name__}")
    if not minimum <= value <= MAX_COUNT:
        raise ValueError(f"{arg} must be from {minimum} to {MAX_COUNT} (2**63 - 1), got {value}")
    return value


def timestamp(value: Any, arg: str, *, optional: bool = True) -> Optional[float]:
    """Check a time in epoch seconds: an int or float from :data:`MIN_TIMESTAMP`
    to :data:`MAX_TIMESTAMP` (years 1 to 9999, what ``datetime`` can show); None
    passes when ``optional``.

    Raises:
        TypeError: not a number (bool is refused).
        ValueError: NaN, infinite, or outside the range.
    """
    if value is None and optional:
        return None
    if type(value) not in (int, float):
        raise TypeError(f"{arg} must be a number of epoch seconds, not {type(value).__name__}")
    if not MIN_TIMESTAMP <= value <= MAX_TIMESTAMP:  # False for NaN too
        shown = value if type(value) is float or abs(value) < 10**30 else f"an int of {value.bit_length()} bits"
        raise ValueError(f"{arg} must be finite epoch seconds from {MIN_TIMESTAMP:.0f} to {MAX_TIMESTAMP:.0f} "
                         f"(years 1 to 9999), got {shown}")
    return float(value)


def event_columns(event: Any, where: str) -> None:
    """Check the fields of an event kept in their own columns: ``id`` (non-empty),
    ``invocation_id``, ``author``, ``branch`` (optional) and ``timestamp``.

    Args:
        event: an adk_lite or ``google.adk`` Event (any object with those fields).
        where: how to name the event in messages, e.g. ``"events[0]"``.

    Raises:
        TypeError: a field of the wrong type.
        ValueError: an empty id, a field too long or with NUL, a non-finite time.
    """
    event_text(event.id, f"{where}.id")
    if not event.id:
        raise ValueError(f"{where}.id must not be empty")
    event_text(event.invocation_id, f"{where}.invocation_id")
    event_text(event.author, f"{where}.author")
    event_text(event.branch, f"{where}.branch", optional=True)
    timestamp(event.timestamp, f"{where}.timestamp", optional=False)


MAX_QUERY_LENGTH = 4096
"""The longest search query, in characters."""


def query(value: Any, arg: str = "query") -> str:
    """Check a search query: a str of at most :data:`MAX_QUERY_LENGTH` characters,
    valid Unicode, no NUL.

    Raises:
        TypeError: not a str.
        ValueError: too long, a NUL, or a lone surrogate.
    """
    if not isinstance(value, str):
        raise TypeError(f"{arg} must be a str, not {type(value).__name__}")
    _check_text(value, arg, MAX_QUERY_LENGTH)
    return value


def keyed_objects(value: Any, where: str) -> Iterator[tuple[str, dict, str]]:
    """Walk a list of objects each keyed by a distinct, non-empty ``event_id`` (a
    session's events, its usage rows, in an import file): yield ``(where[i], object,
    event_id)`` for each, after checking that much.

    Raises:
        TypeError: not a list, an element not an object, an ``event_id`` not a str.
        ValueError: an empty or repeated ``event_id``; messages name ``where[i].event_id``.
    """
    if not isinstance(value, list):
        raise TypeError(f"{where} must be a list, not {type(value).__name__}")
    seen = set()
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise TypeError(f"{at} must be an object, not {type(item).__name__}")
        event_id = event_text(item.get("event_id"), f"{at}.event_id")
        if not event_id:
            raise ValueError(f"{at}.event_id must not be empty")
        if event_id in seen:
            raise ValueError(f"{at}.event_id {event_id!r} is repeated in this session")
        seen.add(event_id)
        yield at, item, event_id
