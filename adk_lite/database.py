"""The seam between the store and a database backend.

:func:`open_database` opens what a target names with the backend for its kind, and
:class:`Backend` is everything the store (:mod:`adk_lite.store`) asks of one:
connections, transactions, error translation, and the few statements that differ
between SQL dialects. Statements themselves are compiled from the Peewee models
(:mod:`adk_lite.models`) on the backend's Peewee database, so they come out in its
dialect.

Today the one backend is SQLite (:mod:`adk_lite.sqlite`), for paths and
``sqlite:///`` URLs. A second backend is a module beside it, chosen here by the
target's kind; nothing of it is imported until such a target is opened.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, Union

from . import errors


class Backend(Protocol):
    """What the store needs of an open database (see :class:`adk_lite.sqlite.SqliteBackend`).

    Attributes:
        path: what the database is, for messages (a file path, ``":memory:"``).
        read_only: True when every write must be refused.
        lock: a lock callers hold around their statements when the backend has one
            shared connection, else None.
        models: the Peewee models bound to :attr:`peewee` (:func:`adk_lite.models.make_models`).
        peewee: the Peewee database, with ``acquire()`` / ``release(conn)`` for a
            pooled DB-API connection and ``close_all()``.
        BEGIN_WRITE, BEGIN_READ: the statements that open a write or a read transaction.
        DRIVER_ERRORS: the driver's exception classes.
    """

    path: str
    read_only: bool
    lock: Any
    models: Any
    peewee: Any
    BEGIN_WRITE: str
    BEGIN_READ: str
    DRIVER_ERRORS: tuple

    def translate(self, exc: BaseException) -> errors.DatabaseError:
        """The adk_lite error for a driver error."""

    def json_array_values(self) -> str:
        """SQL for the values of a JSON array given as one parameter."""

    def match_query(self, text: str) -> str:
        """The full-text query that finds plain ``text`` (its words, all required)."""

    def match_error(self, query: str) -> Any:
        """What is wrong with a full-text query in the backend's syntax, or None."""

    def tables(self, conn: Any) -> set[str]:
        """The names of the database's tables."""

    def facts(self, conn: Any) -> dict[str, Any]:
        """What ``get_stats`` reports besides counts (sizes, versions, settings)."""

    def integrity(self, conn: Any) -> tuple[list[str], list[tuple]]:
        """The backend's own consistency checks."""

    def vacuum(self, conn: Any) -> None:
        """Reclaim space and refresh the planner's statistics."""

    def secure_delete(self, conn: Any) -> Any:
        """A context manager: deleted content is overwritten inside it (for erasure)."""

    def checkpoint(self, conn: Any) -> bool:
        """Move the write-ahead log into the main file and empty it; False if blocked."""

    def backup(self, conn: Any, dest: str, progress: Any) -> int:
        """Copy the database, from one snapshot, into the empty file ``dest``,
        calling ``progress(done, total)``; return the pages copied."""

    def file_sizes(self) -> dict[str, int]:
        """Bytes on disk: ``{"db", "wal", "shm"}``."""

    def close(self) -> None:
        """Close every connection."""


def open_database(target: Union[str, os.PathLike, None] = None, *, synchronous: str = "normal",
                  busy_timeout: float = 5.0, read_only: bool = False) -> Backend:
    """Open the database ``target`` names (see :func:`adk_lite.target.parse_target`).

    Args:
        synchronous, busy_timeout, read_only: as :class:`adk_lite.sqlite.SqliteBackend`.

    Raises:
        TypeError, ValueError: a bad target or option (a URL of a database kind
            adk_lite has no backend for is a ValueError that names it).
        DatabaseError: the file cannot be opened as an adk_lite database (see
            :class:`adk_lite.sqlite.SqliteBackend`).
    """
    from .sqlite import SqliteBackend

    return SqliteBackend(target, synchronous=synchronous, busy_timeout=busy_timeout, read_only=read_only)


__all__ = ["Backend", "open_database"]
