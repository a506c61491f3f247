"""Statements compiled once from the Peewee models: named placeholders, the check of
their order, and the one home per database of each module's compiled set.

Peewee's query builder costs tens of microseconds per statement, more than SQLite's
own work, so a module that runs statements builds them once per database with
:func:`compile_query` (parameters written :func:`param`, checked against the order
they are executed with) and finds them again with :func:`once_per_database`, keyed
by the open backend (so they live as long as it, and come out in its dialect).

Peewee only: no adk_lite module, so every layer may use it.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable

import peewee as pw

SENTINEL = "\x00adk_lite:"
"""What a named placeholder's value starts with while a statement is compiled."""


def param(name: str) -> pw.Value:
    """A named parameter placeholder for compiling a statement."""
    return pw.Value(SENTINEL + name, converter=False)


def literal(text: str) -> pw.SQL:
    """A constant string written into the SQL text (only for our own constants)."""
    return pw.SQL("'" + text.replace("'", "''") + "'")


def compile_query(query: Any, *names: str) -> str:
    """Return the SQL of ``query`` after checking its parameters come in ``names`` order.

    Raises:
        RuntimeError: the statement takes other parameters, or in another order (a bug).
    """
    sql, params = query.sql()
    if params != [SENTINEL + n for n in names]:
        raise RuntimeError(f"compiled statement takes {params}, expected {names}: {sql}")
    return sql


_SETS: "weakref.WeakKeyDictionary[Any, dict[Callable, dict[str, str]]]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def once_per_database(db: Any, build: Callable[[Any], dict[str, str]]) -> dict[str, str]:
    """The statements ``build(db)`` compiles (``{name: SQL}``) for the open backend
    ``db`` (:class:`adk_lite.backend.Backend`: its models on its Peewee database),
    built on the first call for that backend and kept while it is referenced. A
    ``build`` may return an empty dict its module fills, one statement per key on
    first use, where the variants are too many to compile ahead (``get_usage``'s).

    Raises:
        RuntimeError: from ``build`` (a statement's parameters out of order: a bug).
    """
    found = _SETS.get(db)
    if found is not None and build in found:
        return found[build]
    with _LOCK:
        sets = _SETS.setdefault(db, {})
        if build not in sets:
            sets[build] = build(db)
        return sets[build]
