"""JSON values: the check that they round-trip exactly, and their encoding.

adk_lite stores state values and event bodies as JSON text written by orjson.
orjson alone converts silently (NaN becomes ``null``, a tuple becomes a list, a
datetime becomes a string), so every value is checked first by
:func:`check_json` and refused if it would not come back equal.

Accepted: ``None``, ``bool``, ``int`` in the signed 64-bit range (SQLite's JSON
functions read bigger integers as floats), finite ``float``, ``str``, ``list``
and ``dict`` with ``str`` keys, nested freely. Scalars must be of exactly these
types (an ``IntEnum`` or a ``numpy.float64`` is refused: it would come back as a
plain int or float).
"""

from __future__ import annotations

import math
from typing import Any

import orjson

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_SCALARS = (str, bool, type(None))


def check_json(value: Any, where: str) -> None:
    """Raise if ``value`` would not round-trip exactly through JSON.

    Args:
        value: any Python object.
        where: how to name the value in the message, e.g. ``"state['k']"``.

    Raises:
        TypeError: a type JSON cannot hold (tuple, set, bytes, datetime, an
            object, a non-str dict key); the message names ``where`` and the type.
        ValueError: NaN or infinity, or an int outside the signed 64-bit range.
    """
    if _plain(value):  # the common case, checked without building a path per item
        return
    _explain(value, where)


def _plain(value: Any) -> bool:
    """True when ``value`` is made only of exact JSON types in range (dict, list,
    str, bool, None, int64, finite float). False means :func:`_explain` decides."""
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not (type(item) in _SCALARS or _plain(item)):
                return False
        return True
    if kind is list:
        for item in value:
            if not (type(item) in _SCALARS or _plain(item)):
                return False
        return True
    if kind in _SCALARS:
        return True
    if kind is int:
        return INT64_MIN <= value <= INT64_MAX
    if kind is float:
        return math.isfinite(value)
    return False


def _explain(value: Any, where: str) -> None:
    """:func:`check_json`'s full walk: raise with the path of the first bad item."""
    kind = type(value)
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
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"{where}: dict key {key!r} is {type(key).__name__}, JSON keys must be str")
            _explain(item, f"{where}[{key!r}]")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _explain(item, f"{where}[{index}]")
        return
    raise TypeError(
        f"{where}: {kind.__name__} is not a JSON type (use None, bool, int, float, str, list or dict)"
    )


def dumps(value: Any) -> str:
    """Encode a value already passed by :func:`check_json` as compact JSON text."""
    return orjson.dumps(value).decode()


loads = orjson.loads
"""Decode JSON text (str or bytes) into Python values."""
