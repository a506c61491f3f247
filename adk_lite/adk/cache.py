"""A bounded cache of validated ``google.adk`` Events for the ADK adapter.

Validating a stored event's JSON into ADK's pydantic ``Event`` is most of the
cost of a read. A stored event never changes: events are append-only, no call
rewrites an event's body, and a session deleted and created again (also by
``adk-lite import --replace``) gets a new random ``incarnation``. So an event is
identified exactly, in every process, by ``(app_name, user_id, session_id,
incarnation, event_id)``, and the adapter keeps what it validated under that key.

Callers may mutate what they get, so each read hands out a fresh deep copy. The
cache does not keep the ``Event`` itself but a *recipe* of it (:func:`recipe`):
every model, dict and list of the event as a shallow dict of its immutable values
plus recipes of its mutable children. Building a copy from it (:func:`build`) is
a few dict copies per node: about half the cost of ``model_copy(deep=True)`` or
``copy.deepcopy`` (which take every field through Python's generic copy
protocol), and a third of ``Event.model_validate``.
"""

from __future__ import annotations

import collections
import copy
import enum
import threading
from typing import Any, Callable, Optional

from pydantic import BaseModel

__all__ = ["EventCache", "DEFAULT_SIZE", "recipe", "build"]

DEFAULT_SIZE = 10_000
"""Events kept by default: about 50 MB for agent events of ~450 bytes of JSON (about 5 KB each in memory)."""

_ATOMIC = frozenset({str, int, float, bool, type(None), bytes})
"""Types whose values are immutable, so copies share them (and every ``enum.Enum``)."""

_new = object.__new__
_slot = BaseModel.__dict__
_set_dict = _slot["__dict__"].__set__
_set_fields = _slot["__pydantic_fields_set__"].__set__
_set_extra = _slot["__pydantic_extra__"].__set__
_set_private = _slot["__pydantic_private__"].__set__

_MODEL, _DICT, _LIST, _SET, _FROZENSET, _OTHER = range(6)
"""Recipe kinds: ``(_MODEL, class number, base, kids, leaves, fields_set, extra, private)``,
``(_DICT, base, kids, leaves)``, ``(_LIST, items, kids, leaves)``, ``(_SET | _FROZENSET,
items)``, ``(_OTHER, value)``. ``base`` holds every field, item or key with its
immutable value (None in the places of the others); ``kids`` are ``(key or index,
recipe)`` pairs; ``leaves`` are ``(key or index, dict or tuple of immutable values)``
pairs, built with one ``.copy()`` or ``list()`` and no call of :func:`build` (the empty
dicts of ``EventActions``, a function call's ``args``); ``extra`` and ``private`` are
recipes or None.

Plain tuples, never closures, classes, lists or sets: a cache of closures holds ten
times the objects for Python's garbage collector to walk, and a tuple stays tracked by
the collector while it holds a class, a list or a set (which are always tracked) or a
dict. Models are therefore named by a number in :data:`_CLASSES`, lists and sets kept as
tuples: about 23 tracked objects per cached event instead of 30 (the tuples that hold a
``base`` dict stay tracked, since ``dict.copy()`` is the cheapest copy there is).
Every full collection walks them: 230,000 for a full cache of 10,000 events."""

_CLASSES: list = []
"""The model classes recipes were made of, by number (only ever appended to)."""
_NUMBERS: dict = {}
_register = threading.Lock()


def _number(cls: type) -> int:
    number = _NUMBERS.get(cls)
    if number is None:
        with _register:
            number = _NUMBERS.get(cls)
            if number is None:
                _CLASSES.append(cls)
                number = _NUMBERS[cls] = len(_CLASSES) - 1
    return number


def _immutable(value: Any) -> bool:
    return type(value) in _ATOMIC or isinstance(value, enum.Enum)


def recipe(value: Any) -> Optional[tuple]:
    """A snapshot of ``value`` from which :func:`build` makes fresh deep copies,
    or None when ``value`` is immutable (copies share it).

    Pydantic models, dicts, lists and sets are rebuilt node by node; any other
    mutable value is copied with ``copy.deepcopy`` at each build. Changing
    ``value`` later does not change what the recipe builds.
    """
    kind = type(value)
    if kind in _ATOMIC or isinstance(value, enum.Enum):
        return None
    model = isinstance(value, BaseModel)
    if kind is dict or kind is list or model:
        fields = value.__dict__ if model else value if kind is dict else dict(enumerate(value))
        base, kids, leaves = {}, [], []
        for key, item in fields.items():
            if type(item) in _ATOMIC:
                base[key] = item
                continue
            made = recipe(item)
            base[key] = None if made else item
            if made is None:
                continue
            if made[0] in (_DICT, _LIST) and not made[2] and not made[3]:
                leaves.append((key, made[1]))  # a dict or list of immutable values: one copy
            else:
                kids.append((key, made))
        if kind is dict:
            return _DICT, base, tuple(kids), tuple(leaves)
        if kind is list:
            return _LIST, tuple(base.values()), tuple(kids), tuple(leaves)
        extra, private = value.__pydantic_extra__, value.__pydantic_private__
        return (_MODEL, _number(kind), base, tuple(kids), tuple(leaves), tuple(value.__pydantic_fields_set__),
                None if extra is None else recipe(extra), None if private is None else recipe(private))
    if (kind is set or kind is frozenset) and all(_immutable(x) for x in value):
        return (_SET if kind is set else _FROZENSET), tuple(value)
    return _OTHER, copy.deepcopy(value)


def build(made: tuple) -> Any:
    """A fresh deep copy of the value a :func:`recipe` was made from."""
    kind = made[0]
    if kind == _MODEL:
        _, number, base, kids, leaves, fields_set, extra, private = made
        own = base.copy()
        for key, kid in kids:
            own[key] = build(kid)
        for key, leaf in leaves:
            own[key] = list(leaf) if leaf.__class__ is tuple else leaf.copy()
        out = _new(_CLASSES[number])
        _set_dict(out, own)
        _set_fields(out, set(fields_set))
        _set_extra(out, None if extra is None else build(extra))
        _set_private(out, None if private is None else build(private))
        return out
    if kind == _DICT or kind == _LIST:
        _, base, kids, leaves = made
        out = base.copy() if kind == _DICT else list(base)
        for key, kid in kids:
            out[key] = build(kid)
        for key, leaf in leaves:
            out[key] = list(leaf) if leaf.__class__ is tuple else leaf.copy()
        return out
    if kind == _SET:
        return set(made[1])
    if kind == _FROZENSET:
        return frozenset(made[1])
    return copy.deepcopy(made[1])


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
        self._entries: collections.OrderedDict[tuple, tuple] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._hits = self._misses = 0

    def events(self, session_key: tuple, rows: list, validate: Callable[[Any], Any]) -> list:
        """The events of ``rows``, fresh objects each call: copies built from the
        cache where ``session_key + (event_id,)`` is kept, else ``validate(row)``
        (whose result is then kept, most recent first out).

        Args:
            session_key: ``(app_name, user_id, session_id, incarnation)``.
            rows: the stored event rows (:class:`adk_lite.rows.EventRow`).
            validate: builds an Event from one row.
        """
        if not self.size:
            return [validate(row) for row in rows]
        keys = [session_key + (row.event_id,) for row in rows]
        entries = self._entries
        with self._lock:
            found = [entries.get(key) for key in keys]
            for key, made in zip(keys, found):
                if made is not None:
                    entries.move_to_end(key)
        out, new = [], []
        for key, made, row in zip(keys, found, rows):
            if made is None:
                event = validate(row)
                new.append((key, recipe(event)))
                out.append(event)
            else:
                out.append(build(made))
        with self._lock:
            self._hits += len(keys) - len(new)
            self._misses += len(new)
            for key, made in new[-self.size:]:
                entries[key] = made
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
