"""Maintenance and inspection methods of :class:`adk_lite.service.DatabaseSessionService`
(the ``adk-lite`` command's library half): counts, checks, prune in batches, export,
import, copy between databases, memories and artifacts by their rows.

:class:`AdminMethods` is a base class of the service; each method is a few lines over
the store (``self._store``), :mod:`adk_lite.transfer`, :mod:`adk_lite.memory` and
:class:`adk_lite.artifacts.ArtifactStore`. Also two functions on a database file
that work without opening it: :func:`file_sizes` and :func:`stored_schema_version`, and
:func:`adk_lite.restore.restore` (a backup into a file), with the limits the command
shows (:data:`MAX_MEMORY_RESULTS`, :data:`USAGE_GROUPS`, :data:`USAGE_SUMS`), so the
command needs no store module.
"""

from __future__ import annotations

from typing import Any, BinaryIO, Callable, Optional, Sequence

from . import memory, transfer, validate
from .artifacts import ArtifactStore, ListedArtifact, VersionRow
from .memory import MAX_RESULTS as MAX_MEMORY_RESULTS
from .restore import restore
from .schema import SCHEMA_VERSION
from .sqlite import file_sizes as _file_sizes
from .sqlite import inspect_file
from .rows import EventRow
from .steps import event_data, trim
from .target import target_kind
from .types import Event
from .usage import GROUPS as USAGE_GROUPS
from .usage import SUMS as USAGE_SUMS

__all__ = ["AdminMethods", "MAX_MEMORY_RESULTS", "USAGE_GROUPS", "USAGE_SUMS", "event_from_row", "file_sizes",
           "restore", "stored_schema_version"]

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called after each unit of work (sessions, records)."""


def file_sizes(path: str) -> dict[str, int]:
    """Bytes of a SQLite database's files, read without opening it (opening a WAL file
    makes its ``-shm``/``-wal`` files): ``{"db_bytes", "wal_bytes", "shm_bytes"}``, 0 for
    a missing one."""
    return {f"{k}_bytes": v for k, v in _file_sizes(path).items()}


def stored_schema_version(path: str, busy_timeout: float = 5.0) -> Optional[int]:
    """The adk_lite ``schema_version`` a SQLite file holds, read without changing it;
    None for a file without adk_lite's tables.

    Raises:
        CorruptDatabaseError, ForeignDatabaseError, DatabaseLockedError: as opening it would.
    """
    return inspect_file(path, busy_timeout)


def _whole(value: Any, arg: str) -> int:
    """An int >= 0 (:func:`adk_lite.validate.count` without its None)."""
    if type(value) is not int:  # validate.count's own message would offer None
        raise TypeError(f"{arg} must be an int, not {type(value).__name__}")
    return validate.count(value, arg, 0)


def event_from_row(row: EventRow) -> Event:
    """Build an :class:`~adk_lite.types.Event` from an event row (see
    :func:`adk_lite.steps.event_data`)."""
    return Event.from_dict(event_data(row))


class AdminMethods:
    """The maintenance half of :class:`adk_lite.service.DatabaseSessionService`."""

    _store: Any
    path: str

    def _analyze_after_load(self, sessions: int) -> bool:
        """After ``sessions`` were written in bulk into a PostgreSQL database, ``VACUUM
        ANALYZE`` it: fresh rows have no statistics, and the server's plans guess until
        autovacuum comes by. True when it ran (never for a file, nor for 0 sessions)."""
        if not sessions or target_kind(self.path) != "postgres":
            return False
        self.vacuum()  # type: ignore[attr-defined]
        return True

    def event_counts(self, keys: Sequence[tuple[str, str, str]]) -> list[int]:
        """How many events each ``(app_name, user_id, session_id)`` has, in the order
        given (0 for one not stored), read in one snapshot."""
        return self._store.event_counts(list(keys))

    def read_events(self, app_name: str, user_id: str, session_id: str, *, offset: int = 0,
                    limit: int = 100) -> list[Event]:
        """A page of a session's events: the ``offset``-th to the ``offset + limit - 1``-th
        (0-based) in the order ``get_session`` returns them (oldest first; equal
        timestamps in append order), without reading the events before them.

        Args:
            offset, limit: ints >= 0.

        Returns:
            The events; ``[]`` past the end or for a session that is not stored.

        Raises:
            TypeError, ValueError: a bad name, id, ``offset`` or ``limit``.
        """
        app, user = validate.names(app_name, user_id)
        sid = validate.session_id(session_id)
        offset, limit = _whole(offset, "offset"), _whole(limit, "limit")
        return [event_from_row(r) for r in self._store.read_event_slice(app, user, sid, offset, limit)]

    def list_forks(self, app_name: str, user_id: str, session_id: str, *, scan: int = 500) -> list[str]:
        """The ids of the sessions forked from ``session_id`` (its direct forks, sorted),
        looked for among the user's ``scan`` most recently updated forks (an int >= 0:
        one statement, however many sessions the user has).

        Raises:
            TypeError, ValueError: a bad name, id or ``scan``.
        """
        app, user = validate.names(app_name, user_id)
        sid = validate.session_id(session_id)
        return sorted(fork for fork, source in self._store.forks(app, user, _whole(scan, "scan"))
                      if fork != sid and isinstance(source, dict) and source.get("session_id") == sid)

    def check(self) -> dict[str, Any]:
        """Check the database in one snapshot (read-only): integrity and foreign keys
        (SQLite: with the search index's own check), adk_lite's tables and schema at the
        stored version, session-scope state rows of no session.

        Returns:
            ``{"missing_tables": [name], "integrity_check": [line] (["ok"] when sound),
            "foreign_key_violations": [(table, rowid, parent table)], "schema_version":
            int or None (as stored), "current_schema_version": int (this release's),
            "schema_problems": [line], "stray_state_rows": int}``.
        """
        return dict(self._store.check(), current_schema_version=SCHEMA_VERSION)

    def prune(self, updated_before: float, *, app_name: Optional[str] = None, user_id: Optional[str] = None,
              dry_run: bool = False, batch: int = 500, progress: Optional[Progress] = None) -> dict[str, Any]:
        """Delete the sessions (with their events, state, usage, memories' session links and
        artifacts) last updated before ``updated_before`` (epoch seconds), ``batch``
        sessions per transaction, so a session updated meanwhile is never deleted.

        Args:
            app_name, user_id: only this app / user (None: every one).
            dry_run: only count (works read-only).
            batch: sessions per transaction (>= 1).
            progress: ``progress(done, total)`` after each batch.

        Returns:
            ``{"sessions": int, "events": int, "dry_run": bool, "updated_before": float}``.

        Raises:
            DatabaseOpenError: deleting on a read-only service.
        """
        app, user = validate.optional_name(app_name, "app_name"), validate.optional_name(user_id, "user_id")
        if type(batch) is not int or batch < 1:
            raise ValueError(f"batch={batch!r} is not an int >= 1")
        sessions, events = self._store.prune(updated_before, app, user, None, delete=False)
        result = {"sessions": sessions, "events": events, "dry_run": bool(dry_run), "updated_before": updated_before}
        if dry_run:
            return result
        total, result["sessions"], result["events"] = sessions, 0, 0
        while True:
            n, e = self._store.prune(updated_before, app, user, batch, delete=True)
            if not n:
                return result
            result["sessions"] += n
            result["events"] += e
            if progress:
                progress(result["sessions"], max(total, result["sessions"]))

    def trim_all(self, app_name: Optional[str] = None, user_id: Optional[str] = None, *,
                 dry_run: bool = False) -> dict[str, Any]:
        """:meth:`trim_compacted` over every session, or every session of an app and/or a
        user (None: any); the same result shape."""
        return trim(self._store, app_name, user_id, None, dry_run)

    def search_memory(self, app_name: str, user_id: str, query: str,
                      limit: int = memory.MAX_RESULTS) -> list[memory.MemoryRow]:
        """One user's memories holding any word of ``query``, best first, at most
        ``limit`` (:func:`adk_lite.memory.search`; read-only)."""
        return memory.search(self._store, app_name, user_id, query, limit)

    def list_artifacts(self, app_name: str, user_id: str, session_id: Optional[str] = None) -> list[ListedArtifact]:
        """One user's artifacts (``session_id`` None: every scope; else that session's and
        the ``user:`` ones), each with its version count and latest version's facts
        (:meth:`adk_lite.artifacts.ArtifactStore.listing`)."""
        return ArtifactStore(self._store).listing(app_name, user_id, session_id)

    def load_artifact(self, app_name: str, user_id: str, session_id: str, filename: str,
                      version: Optional[int] = None) -> Optional[tuple[VersionRow, Optional[bytes]]]:
        """One artifact version (None: the latest) and its bytes (None for a ``file_data``
        reference), read in one snapshot; None when not stored. ``session_id`` is ``""``
        for a ``user:`` name."""
        return ArtifactStore(self._store).load((app_name, user_id, session_id, filename), version)

    def export(self, out: BinaryIO, *, app_name: Optional[str] = None, user_id: Optional[str] = None,
               progress: Optional[Progress] = None) -> dict[str, int]:
        """Write the export file (JSON Lines, :mod:`adk_lite.transfer`) of every session, or
        of one app and/or user, to the binary file ``out``.

        Returns:
            The counts :func:`adk_lite.transfer.write_export` returns (``sessions``,
            ``events``, ``state_records``, ``memories``, ``artifact_versions``).
        """
        plan = transfer.plan_export(self._store, app_name, user_id)
        return transfer.write_export(self._store, plan, out, _ticker(progress, len(plan.keys)))

    def import_file(self, path: str, *, replace: bool = False,
                    on_record: Optional[Callable[[], None]] = None) -> dict[str, Any]:
        """Import an export file (:func:`adk_lite.transfer.import_file`; call
        :func:`adk_lite.transfer.check_file` first to refuse a bad file before anything is
        written); a PostgreSQL database that received sessions is then ``VACUUM ANALYZE``d.

        Returns:
            :func:`adk_lite.transfer.import_file`'s report (a
            :class:`adk_lite.load.TransferReport`) plus ``"analyzed": bool``.
        """
        report = transfer.import_file(self._store, path, replace=replace, on_record=on_record)
        report["analyzed"] = self._analyze_after_load(report["created"] + report["replaced"])
        return report

    def copy_to(self, other: "AdminMethods", *, progress: Optional[Progress] = None) -> dict[str, Any]:
        """Copy every session, event, app/user state, memory and artifact version into
        ``other`` (another service, any backend; resumable: what is there already is left
        alone, a difference is a conflict). A PostgreSQL ``other`` that received sessions
        is then ``VACUUM ANALYZE``d.

        Args:
            progress: ``progress(done, total)`` after each record copied (state records,
                sessions, memories, artifact versions).

        Returns:
            :func:`adk_lite.transfer.copy_records`'s report (a
            :class:`adk_lite.load.TransferReport`) plus ``"source"``, ``"destination"``
            (paths) and ``"analyzed"`` (bool).

        Raises:
            ValueError: ``other`` is this same database.
        """
        if self.path == other.path:
            raise ValueError(f"copy: SRC and DST are the same database {self.path}")
        plan = transfer.plan_export(self._store, None, None)
        report = transfer.copy_records(self._store, other._store, plan, _ticker(progress, plan.size()))
        report.update(source=self.path, destination=other.path,
                      analyzed=other._analyze_after_load(report["created"]))
        return report


def _ticker(progress: Optional[Progress], total: int) -> Optional[Callable[[], None]]:
    """A no-argument per-session callback that calls ``progress(done, total)``."""
    if progress is None:
        return None
    done = [0]

    def tick() -> None:
        done[0] += 1
        progress(done[0], total)
    return tick
