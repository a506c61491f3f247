"""JSON values: the check that they round-trip exactly, and their encoding.

adk_lite stores state values and event bodies as JSON text written by orjson.
orjson alone converts silently (NaN becomes ``null``, a tuple becomes a list, a
datetime becomes a string), so every value is checked first by
:func:`check_json` and refused if it would not come back equal.

Accepted: ``None``, ``bool``, ``int`` in the signed 64-bit range (SQLite's JSON
functions read bigger integers as floats), finite ``float``, ``str`` that is valid
Unicode text (no lone surrogate such as ``"\\ud800"``: UTF-8 cannot hold it),
``list`` and ``dict`` with such ``str`` keys, nested at most :data:`MAX_DEPTH`
lists and dicts deep. Scalars must be of exactly these types (an ``IntEnum`` or a
``numpy.float64`` is refused: it would come back as a plain int or float).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Union

import orjson

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

MAX_DEPTH = 200
"""How many lists and dicts deep a value may nest (a scalar is 0, ``[1]`` is 1).

orjson writes at most 254 levels and an event body wraps a state value in three
more (``{"actions": {"state_delta": {key: value}}}``); 200 leaves room for that and
keeps every check well inside Python's recursion limit."""

_SCALARS = (str, bool, type(None))


def check_json(value: Any, where: str) -> None:
    """Raise if ``value`` would not round-trip exactly through JSON.

    Args:
        value: any Python object.
        where: how to name the value in the message, e.g. ``"state['k']"``.

    Raises:
        TypeError: a type JSON cannot hold (tuple, set, bytes, datetime, an
            object, a non-str dict key); the message names ``where`` and the type.
        ValueError: NaN or infinity, an int outside the signed 64-bit range, a
            str with a lone surrogate, or nesting deeper than :data:`MAX_DEPTH`.
    """
    if _plain(value, MAX_DEPTH):  # the common case, checked without building a path per item
        return
    _explain(value, where, MAX_DEPTH)


def is_text(value: str) -> bool:
    """True when a str is valid Unicode text that UTF-8 can hold (no lone surrogate)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain(value: Any, room: int) -> bool:
    """True when ``value`` is made only of exact JSON types in range (dict, list,
    text, bool, None, int64, finite float), at most ``room`` containers deep.
    False means :func:`_explain` decides."""
    kind = type(value)
    if kind is dict:
        if not room:
            return False
        for key, item in value.items():
            kind = type(item)
            if (type(key) is not str or not (key.isascii() or is_text(key))
                    or not (kind is str and (item.isascii() or is_text(item)) or kind is bool or item is None
                            or _plain(item, room - 1))):
                return False
        return True
    if kind is list:
        if not room:
            return False
        for item in value:
            kind = type(item)
            if not (kind is str and (item.isascii() or is_text(item)) or kind is bool or item is None
                    or _plain(item, room - 1)):
                return False
        return True
    if kind is str:
        return is_text(value)
    if kind is bool or value is None:
        return True
    if kind is int:
        return INT64_MIN <= value <= INT64_MAX
    if kind is float:
        return math.isfinite(value)
    return False


def _explain(value: Any, where: str, room: int) -> None:
    """:func:`check_json`'s full walk: raise with the path of the first bad item."""
    kind = type(value)
    if kind is str:
        if not is_text(value):
            raise ValueError(f"{where}: the str {value!r} holds a lone surrogate, which UTF-8 cannot store")
        return
    if kind in _SCALARS:
        return
    if kind is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(
                f"{where}: int {value} is outside the signed 64-bit range "
                "SQLite's JSON functions can read exactly"
            )
        return
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not a finite number and has no JSON form")
        return
    if isinstance(value, (dict, list)) and not room:
        shown = where if len(where) <= 80 else where[:60] + "..."
        raise ValueError(f"{shown}: nested more than {MAX_DEPTH} lists and dicts deep (the limit)")
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"{where}: dict key {key!r} is {type(key).__name__}, JSON keys must be str")
            if not is_text(key):
                raise ValueError(f"{where}: the key {key!r} holds a lone surrogate, which UTF-8 cannot store")
            _explain(item, f"{where}[{key!r}]", room - 1)
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _explain(item, f"{where}[{index}]", room - 1)
        return
    raise TypeError(
        f"{where}: {kind.__name__} is not a JSON type (use None, bool, int, float, str, list or dict)"
    )


def dumps(value: Any) -> str:
    """Encode a value already passed by :func:`check_json` as compact JSON text."""
    return orjson.dumps(value).decode()


loads = orjson.loads
"""Decode JSON text (str or bytes) into Python values."""

_LONG_INT = re.compile(rb"(?<![0-9.eE+])-?[0-9]{19,}(?![0-9.eE])")
"""An integer literal of 19 digits or more: orjson reads one beyond 64 bits as a float (a
negative one below -2**63 has 19 digits; a positive one beyond 2**64 - 1 has 20)."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_exact(data: Union[str, bytes]) -> Any:
    """Decode JSON text from a file someone else wrote, never changing a value:
    as :data:`loads`, except that an integer beyond 64 bits comes back as that exact
    int (orjson silently makes it a float), so :func:`check_json` refuses it by name.

    Raises:
        orjson.JSONDecodeError (a ValueError): not JSON.
        RecursionError: nested too deep for Python's parser.
    """
    value = orjson.loads(data)
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if _LONG_INT.search(raw) is None:  # the common case: no long digit run anywhere
        return value
    return json.loads(raw, parse_constant=_no_constant)  # exact ints; orjson already accepted the syntax
