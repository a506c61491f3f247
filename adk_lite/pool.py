"""The idle connections of a backend's pool: one stack both backends keep
(:class:`adk_lite.sqlite.SqliteBackend`, :class:`adk_lite.postgres.PostgresBackend`).

Each backend's Peewee database decides when a connection may be reused (SQLite: not
inside a transaction; PostgreSQL: also not broken, and within ``max_connections``);
this stack only holds the ones given back, most recently released on top (its page
cache, or the server's plan cache, is the freshest), under one lock.
"""

from __future__ import annotations

import threading
from typing import Any, Optional


class IdleConnections:
    """A thread-safe stack of idle DB-API connections (anything with ``close()``)."""

    def __init__(self) -> None:
        self._idle: list = []
        self._lock = threading.Lock()

    def take(self) -> Optional[Any]:
        """The most recently given back connection, or None when none is idle."""
        with self._lock:
            return self._idle.pop() if self._idle else None

    def give(self, conn: Any) -> None:
        """Keep ``conn`` for the next :meth:`take`."""
        with self._lock:
            self._idle.append(conn)

    def close_all(self, *also: Any) -> None:
        """Close every idle connection, and ``also`` (connections not in the stack);
        errors of a connection that was already dead are ignored."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in (*also, *idle):
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a dead socket may fail to close cleanly
                pass
