"""Scope rules for state: split a delta by key prefix, merge scopes into one view.

As ADK's ``State``: ``app:k`` is shared by every user of the app, ``user:k`` by
one user's sessions in the app, ``k`` belongs to one session, and ``temp:k`` is
never persisted. The merged view a ``Session`` carries holds session keys as they
are, app keys as ``app:k`` and user keys as ``user:k``.
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple

from . import codec

APP_PREFIX = "app:"
USER_PREFIX = "user:"
TEMP_PREFIX = "temp:"

APP, USER, SESSION = "app", "user", "session"
"""Values of the ``scope`` column of ``adk_state``."""

_PREFIX = {APP: APP_PREFIX, USER: USER_PREFIX, SESSION: ""}
_BARE = frozenset((APP_PREFIX, USER_PREFIX, TEMP_PREFIX, ""))


class ScopedDelta(NamedTuple):
    """A state delta split by scope; keys are stored names (prefix removed)."""

    app: dict[str, Any]
    user: dict[str, Any]
    session: dict[str, Any]
    temp: dict[str, Any]

    def persisted(self) -> Iterable[tuple[str, str, Any]]:
        """Yield ``(scope, key, value)`` for every key that is stored."""
        for scope, part in ((APP, self.app), (USER, self.user), (SESSION, self.session)):
            for key, value in part.items():
                yield scope, key, value


def check_delta(delta: Any, arg: str) -> dict[str, Any]:
    """Check a state dict or delta before anything is written.

    Args:
        delta: ``{key: value}``; keys are str, values JSON (see :mod:`adk_lite.codec`).
        arg: the argument's name for messages, e.g. ``"state"``.

    Returns:
        The same dict (None becomes ``{}``).

    Raises:
        TypeError: not a dict, a non-str key, or a value JSON cannot hold.
        ValueError: an empty key, a prefix with an empty name (``"user:"``), a NUL
            or a lone surrogate in a key, or a value :func:`adk_lite.codec.check_json`
            refuses (NaN/infinity, an int beyond 64 bits, nested too deep, ...).
    """
    if delta is None:
        return {}
    if not isinstance(delta, dict):
        raise TypeError(f"{arg} must be a dict, not {type(delta).__name__}")
    for key, value in delta.items():
        if type(key) is not str:
            raise TypeError(f"{arg}: key {key!r} is {type(key).__name__}, state keys must be str")
        if "\x00" in key:
            raise ValueError(f"{arg}: key {key!r} contains a NUL character")
        if not codec.is_text(key):
            raise ValueError(f"{arg}: key {key!r} holds a lone surrogate, which UTF-8 cannot store")
        if key in _BARE:
            what = f"the prefix {key!r} with an empty name" if key else "an empty key"
            raise ValueError(f"{arg}: {what} is not a state key")
        if not key.startswith(TEMP_PREFIX):
            codec.check_json(value, f"{arg}[{key!r}]")
    return delta


def split(delta: dict[str, Any]) -> ScopedDelta:
    """Split a checked delta by prefix (as ADK's ``extract_state_delta``, plus temp)."""
    out = ScopedDelta({}, {}, {}, {})
    for key, value in delta.items():
        if key.startswith(APP_PREFIX):
            out.app[key[4:]] = value
        elif key.startswith(USER_PREFIX):
            out.user[key[5:]] = value
        elif key.startswith(TEMP_PREFIX):
            out.temp[key] = value
        else:
            out.session[key] = value
    return out


def stored_rows(delta: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The ``(scope, state_key, state_value JSON)`` rows a checked delta writes
    (``temp:`` keys left out), for the ``adk_state`` table."""
    return [(scope, key, codec.dumps(value)) for scope, key, value in split(delta).persisted()]


def without_temp(delta: dict[str, Any]) -> dict[str, Any]:
    """Return the delta minus its ``temp:`` keys (what is stored in an event)."""
    return {k: v for k, v in delta.items() if not k.startswith(TEMP_PREFIX)}


def merge(rows: Iterable[tuple[str, str, str]]) -> dict[str, Any]:
    """Build the merged view from ``(scope, state_key, state_value JSON)`` rows."""
    return {_PREFIX[scope] + key: codec.loads(value) for scope, key, value in rows}


def unscoped(rows: Iterable[tuple[str, str, str]]) -> dict[str, Any]:
    """Build a raw ``{key: value}`` dict (no prefix) from rows of one scope."""
    return {key: codec.loads(value) for _scope, key, value in rows}
