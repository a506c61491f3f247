"""The seam between the store and a database backend.

:func:`open_database` opens what a target names with the backend for its kind, and
:class:`Backend` is everything the store (:mod:`adk_lite.store`) asks of one:
connections, transactions, error translation, and the few statements that differ
between SQL dialects. Statements themselves are compiled from the Peewee models
(:mod:`adk_lite.models`) on the backend's Peewee database, so they come out in its
dialect.

Two backends: SQLite (:mod:`adk_lite.sqlite`), for paths and ``sqlite:///`` URLs,
and PostgreSQL (:mod:`adk_lite.postgres`), for ``postgresql://`` URLs, chosen here by
the target's kind (:func:`adk_lite.target.target_kind`); the PostgreSQL module (and
with it psycopg) is imported only when such a URL is opened.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Optional, Protocol, Union

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
        SINGLE_WRITER: True when the database takes one writer at a time (SQLite): the
            store then serializes this process's writes and commits waiting appends
            together; False (PostgreSQL): each write is its own transaction, run at once.
        BEGIN_WRITE, BEGIN_READ: the statements that open a write or a read transaction.
        DRIVER_ERRORS: the driver's exception classes.
        NO_LIMIT: the ``LIMIT`` parameter meaning no limit (-1 on SQLite, None on PostgreSQL).
        IS_FILE: True when the database is one file of its own (SQLite): only then
            may it be copied page by page (:meth:`backup`, and restore from such a copy)
            and has a WAL of its own to checkpoint and file bytes to report; the
            service refuses a backup of a database that is not (PostgreSQL).
        check_json: None, or a function that refuses (ValueError) JSON texts the
            database cannot store (PostgreSQL: a NUL character its JSON operators refuse).
        check_keys: None, or a function that refuses (ValueError) indexed values
            ``(name, text)`` too long for the database's indexes (PostgreSQL: a
            B-tree index row holds at most 2704 bytes).
    """

    path: str
    read_only: bool
    lock: Any
    models: Any
    peewee: Any
    SINGLE_WRITER: bool
    BEGIN_WRITE: str
    BEGIN_READ: str
    DRIVER_ERRORS: tuple
    NO_LIMIT: Optional[int]
    IS_FILE: bool
    check_json: Optional[Callable[[Iterable[str]], None]]
    check_keys: Optional[Callable[[Iterable[tuple[str, str]]], None]]
    QUERY_SYNTAX: str
    """The name of the query syntax ``search_events(raw=True)`` takes (for messages)."""
    PIPELINED: bool
    """True when statements of a transaction cost no round trip each (PostgreSQL's
    pipeline mode), so the store may send one small statement per item."""

    def translate(self, exc: BaseException) -> errors.DatabaseError:
        """The adk_lite error for a driver error."""

    def json_array_values(self) -> str:
        """SQL for the values of a JSON array given as one parameter."""

    def json_tuples(self, width: int) -> str:
        """SQL for the rows of a JSON array of ``width``-element arrays given as one
        parameter (a subquery with columns ``k0`` .. ``k<width-1>``, as text)."""

    def search(self, conn: Any, match: str, raw: bool, filters: list[tuple[str, str]], limit: int,
               after: Any) -> list[tuple]:
        """One page of full-text hits: ``(ids..., timestamp, rank, rowid, snippet)``, best first."""

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

    def schema_problems(self, conn: Any, version: Any) -> list[str]:
        """What in the database's schema adk_lite does not make at schema ``version``, one line each."""

    def vacuum(self, conn: Any) -> None:
        """Reclaim space and refresh the planner's statistics."""

    def secure_delete(self, conn: Any) -> Any:
        """A context manager: deleted content is overwritten inside it (for erasure)."""

    def lock_user(self, conn: Any, app: str, user: str, exclusive: bool) -> None:
        """Inside a write transaction: keep an erase of ``(app, user)`` and the writes
        of that user from interleaving (shared for a writer, exclusive for the erase);
        a no-op where a write transaction already excludes every other (SQLite)."""

    def purge_search(self, conn: Any) -> None:
        """Inside the write transaction that deleted events: remove what the full-text
        index still keeps of them (for erasure)."""

    def checkpoint(self, conn: Any) -> bool:
        """Move the write-ahead log into the main file and empty it; False if blocked."""

    def backup(self, conn: Any, dest: str, progress: Any) -> int:
        """Copy the database, from one snapshot, into the empty file ``dest``,
        calling ``progress(done, total)``; return the pages copied. Only when
        :attr:`IS_FILE`: a backend of another kind has no such method."""

    def file_sizes(self) -> dict[str, int]:
        """Bytes on disk: ``{"db", "wal", "shm"}`` (PostgreSQL: our tables' bytes as ``db``)."""

    def close(self) -> None:
        """Close every connection."""


def open_database(target: Union[str, os.PathLike, None] = None, *, synchronous: str = "normal",
                  busy_timeout: float = 5.0, read_only: bool = False) -> Backend:
    """Open the database ``target`` names (see :func:`adk_lite.target.parse_target`).

    Args:
        target: a path or SQLite URL (:class:`adk_lite.sqlite.SqliteBackend`), or a
            PostgreSQL URL (:class:`adk_lite.postgres.PostgresBackend`); None reads
            ``$ADK_LITE_DB``.
        synchronous, busy_timeout, read_only: as the backend's.

    Raises:
        TypeError, ValueError: a bad target or option (a URL of a database kind
            adk_lite has no backend for is a ValueError that names it).
        DatabaseError: the file cannot be opened as an adk_lite database (see
            :class:`adk_lite.sqlite.SqliteBackend`), or the server cannot be reached
            or holds no adk_lite schema it can use (:class:`adk_lite.postgres.PostgresBackend`).
        DatabaseOpenError: a PostgreSQL URL without psycopg installed (the ``postgres`` extra).
    """
    from .target import parse_postgres, resolve_env, target_kind

    target = resolve_env(target)
    if target_kind(target) == "postgres":
        parsed = parse_postgres(target)
        try:
            from .postgres import PostgresBackend
        except ImportError as e:
            raise errors.DatabaseOpenError(
                f"database {parsed.display} is a PostgreSQL URL, which needs psycopg 3: "
                f"{errors.install_hint('postgres')}") from e
        return PostgresBackend(parsed, synchronous=synchronous, busy_timeout=busy_timeout, read_only=read_only)
    from .sqlite import SqliteBackend

    return SqliteBackend(target, synchronous=synchronous, busy_timeout=busy_timeout, read_only=read_only)


__all__ = ["Backend", "open_database"]
