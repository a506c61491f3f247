"""A bounded cache of validated ``google.adk`` Events for the ADK adapter.

Validating a stored event's JSON into ADK's pydantic ``Event`` is most of the
cost of a read. A stored event never changes: events are append-only, no call
rewrites an event's body, and a session deleted and created again (also by
``adk-lite import --replace``) gets a new random ``incarnation``. So an event is
identified exactly, in every process, by ``(app_name, user_id, session_id,
incarnation, event_id)``, and the adapter keeps what it validated under that key.

Callers may mutate what they get, so each read hands out a fresh deep copy. The
cache does not keep the ``Event`` itself but a *recipe* of it: every model, dict
and list of the event as a shallow dict of its immutable values plus recipes of
its mutable children. Building a copy from a recipe is a few dict copies per
node, about half the cost of ``model_copy(deep=True)`` or ``copy.deepcopy``
(which walk every field through Python's generic copy protocol), and a third of
``Event.model_validate``.
"""

from __future__ import annotations

import collections
import copy
import enum
import threading
from typing import Any, Callable, Optional

from pydantic import BaseModel

__all__ = ["EventCache", "DEFAULT_SIZE"]

DEFAULT_SIZE = 10_000
"""Events kept by default (about 8 KB of memory each for a typical agent event)."""

_ATOMIC = frozenset({str, int, float, bool, type(None), bytes})
"""Types whose values are immutable, so copies share them (and every ``enum.Enum``)."""

_new = object.__new__
_set_attr = object.__setattr__
_slot = BaseModel.__dict__
_set_fields = _slot["__pydantic_fields_set__"].__set__
_set_extra = _slot["__pydantic_extra__"].__set__
_set_private = _slot["__pydantic_private__"].__set__


def _immutable(value: Any) -> bool:
    return type(value) in _ATOMIC or isinstance(value, enum.Enum)


def recipe(value: Any) -> Optional[Callable[[], Any]]:
    """A function that returns a fresh deep copy of ``value`` at each call, or None
    when ``value`` is immutable (shared as it is).

    Pydantic models, dicts, lists and sets are rebuilt node by node; anything else
    mutable is copied with ``copy.deepcopy`` at each call. The recipe snapshots
    ``value``: changing ``value`` later does not change what the recipe builds.
    """
    if _immutable(value):
        return None
    kind = type(value)
    if kind is set or kind is frozenset:
        items = frozenset(value)
        if all(_immutable(x) for x in items):
            return (lambda: set(items)) if kind is set else (lambda: items)
    elif kind is dict or kind is list or isinstance(value, BaseModel):
        fields = value.__dict__ if isinstance(value, BaseModel) else value if kind is dict else dict(enumerate(value))
        base, kids = {}, []
        for key, item in fields.items():
            make = None if _immutable(item) else recipe(item)
            base[key] = None if make else item
            if make:
                kids.append((key, make))
        return _node(kind, base, tuple(kids), value)
    return lambda: copy.deepcopy(value)


def _node(kind: type, base: dict, kids: tuple, value: Any) -> Callable[[], Any]:
    if kind is list:
        items = list(base.values())
        if not kids:
            return items.copy

        def make_list() -> list:
            out = items.copy()
            for i, make in kids:
                out[i] = make()
            return out
        return make_list
    if kind is dict:
        if not kids:
            return base.copy

        def make_dict() -> dict:
            out = base.copy()
            for key, make in kids:
                out[key] = make()
            return out
        return make_dict
    fields_set = frozenset(value.__pydantic_fields_set__)
    extra = value.__pydantic_extra__
    make_extra = None if extra is None else recipe(extra)
    private = value.__pydantic_private__
    make_private = None if private is None else recipe(private)

    def make_model() -> Any:
        out = _new(kind)
        own = out.__dict__
        own.update(base)
        for key, make in kids:
            own[key] = make()
        _set_fields(out, set(fields_set))
        _set_extra(out, None if make_extra is None else make_extra())
        _set_private(out, None if make_private is None else make_private())
        return out
    return make_model


class EventCache:
    """A thread-safe LRU of event recipes keyed by ``(app_name, user_id,
    session_id, incarnation, event_id)``.

    Args:
        size: the most events kept (int >= 0); 0 turns the cache off (every read
            validates, nothing is kept).

    Raises:
        ValueError: ``size`` is not an int >= 0.
    """

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if type(size) is not int or size < 0:
            raise ValueError(f"event_cache_size must be an int >= 0, got {size!r}")
        self.size = size
        self._entries: collections.OrderedDict[tuple, Callable[[], Any]] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._hits = self._misses = 0

    def events(self, session_key: tuple, rows: list, validate: Callable[[Any], Any]) -> list:
        """The events of ``rows``, fresh objects each call: copies built from the
        cache where ``session_key + (event_id,)`` is kept, else ``validate(row)``
        (whose result is then kept, most recent first out).

        Args:
            session_key: ``(app_name, user_id, session_id, incarnation)``.
            rows: the stored event rows (:class:`adk_lite.store.EventRow`).
            validate: builds an Event from one row.
        """
        if not self.size:
            return [validate(row) for row in rows]
        keys = [session_key + (row.event_id,) for row in rows]
        entries = self._entries
        with self._lock:
            found = [entries.get(key) for key in keys]
            for key, make in zip(keys, found):
                if make is not None:
                    entries.move_to_end(key)
        out, new = [], []
        for key, make, row in zip(keys, found, rows):
            if make is None:
                event = validate(row)
                new.append((key, recipe(event)))
                out.append(event)
            else:
                out.append(make())
        with self._lock:
            self._hits += len(keys) - len(new)
            self._misses += len(new)
            for key, make in new[-self.size:]:
                entries[key] = make
            while len(entries) > self.size:
                entries.popitem(last=False)
        return out

    def clear(self) -> None:
        """Drop every kept event."""
        with self._lock:
            self._entries.clear()

    def info(self) -> dict[str, int]:
        """``{"size", "entries", "hits", "misses"}``: the bound, the events kept now,
        and the events served from the cache and validated since it was made."""
        with self._lock:
            return {"size": self.size, "entries": len(self._entries), "hits": self._hits, "misses": self._misses}
