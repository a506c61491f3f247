"""The store's inspection and maintenance calls: erasing a user, pruning old
sessions, stats, the integrity check, vacuum, checkpoint and backup.

:class:`Maintenance` is a mixin of :class:`~adk_lite.store.Store`: its methods run
through the store's call gate (``_run``, ``_use``, ``_transact`` of
:class:`~adk_lite.gate.Gate`) and use the store's ``_event_counts`` and
``_delete_keys``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from . import artifacts, memory, schema
from .models import COUNTS
from .scopes import SESSION
from .statements import app_user_filter


def _plausible(sessions: Any, users: Any, events: Any, state_keys: Any) -> bool:
    """True when a row of ``adk_counts`` could be one the triggers kept: integers, none
    negative, and users only with sessions, at most one a session (a forged row fails
    this; one that passes but differs from the rows is named by ``check``)."""
    return (all(type(n) is int and n >= 0 for n in (sessions, users, events, state_keys))
            and users <= sessions and (users == 0) == (sessions == 0))


class Maintenance:
    """Inspection and maintenance of one store's database (a mixin of
    :class:`~adk_lite.store.Store`, see the module)."""

    def user_tables(self) -> list[tuple[str, str]]:
        """Every table that holds rows of one ``(app_name, user_id)``, as ``(the name
        :meth:`delete_user` reports its count under, table)``, in the order an erase
        deletes them (rows that refer to others first). A table added for a user's data
        belongs here: the erase, its dry run and its counts then cover it."""
        m = self.db.models
        return [("memories", m.Memory._meta.table_name), ("state_keys", m.State._meta.table_name),
                ("events", m.Event._meta.table_name), ("sessions", m.Session._meta.table_name)]

    def delete_user(self, app: str, user: str, dry_run: bool) -> dict[str, Any]:
        """Erase one user of one app: the user's rows of every table of
        :meth:`user_tables` (sessions with their events and session state, the
        ``user:`` state, memories) and the user's artifacts with the bytes only they
        referred to (:func:`adk_lite.artifacts.delete_user`), in one write transaction with
        the backend's secure delete on (deleted content overwritten) that also purges the
        full-text indexes (:meth:`~adk_lite.backend.Backend.purge_search`), then a WAL
        checkpoint (TRUNCATE) so no copy stays in the write-ahead log. App state stays.

        Exact under concurrent writers: the transaction holds the user's exclusive lock
        (:meth:`~adk_lite.backend.Backend.lock_user`), which every write that adds rows
        of that user takes shared, and (PostgreSQL) locks the user's session rows before
        deleting. A write of that user in flight when the erase starts commits first and
        is erased; one that starts later waits until the erase has committed, and then
        finds no session (an append or ``update_keys`` raises ``SessionNotFoundError``
        and writes nothing) or makes new rows (a new session, a new ``user:`` key).

        Args:
            dry_run: only count (a read transaction; works on a read-only service).

        Returns:
            ``{"sessions", "events", "state_keys" (session and user rows), "memories"
            (deleted ones' markers included), ...one count per table of
            :meth:`user_tables`, "dry_run", "checkpointed"}``: the rows
            this erase deleted (a dry run: counted); ``checkpointed`` is False when another
            connection's reader kept the checkpoint from finishing (the WAL may then
            still hold erased pages until the next checkpoint), None for a dry run.

        Raises:
            DatabaseLockedError: the lock or a row was not had within the busy timeout
                (or, PostgreSQL, a deadlock with another writer); nothing was deleted.
        """
        tables = self.user_tables()
        where = f" WHERE app_name = {self._p} AND user_id = {self._p}"
        sessions = self.db.models.Session._meta.table_name
        if dry_run:
            def count(conn):  # a read-only file of an older schema lacks the later tables
                present = self.db.tables(conn)
                return {**{name: conn.execute(f"SELECT COUNT(*) FROM {table}{where}", (app, user)).fetchone()[0]
                           if table in present else 0 for name, table in reversed(tables)},
                        "dry_run": True, "checkpointed": None}
            return self._run(count)

        def erase(conn):
            self.db.lock_user(conn, app, user, True)
            if self.db.peewee.for_update:  # a writer holding one of them (without the user lock) commits first
                conn.execute(f"SELECT session_id FROM {sessions}{where} FOR UPDATE", (app, user)).fetchall()
            counts = {name: conn.execute(f"DELETE FROM {table}{where}", (app, user)).rowcount
                      for name, table in tables}
            # always: the index may still hold words of this user's sessions deleted before
            self.db.purge_search(conn)
            artifacts.delete_user(conn, self.db, app, user)  # every scope, with the bytes only they referred to
            return {**{name: counts[name] for name, _table in reversed(tables)}, "dry_run": False}

        def run(conn):
            with self.db.secure_delete(conn):
                counts = self._transact(conn, erase, (), True)
            counts["checkpointed"] = self.db.checkpoint(conn)
            return counts
        return self._use(run, (), True, False)

    def prune(self, updated_before: float, app: Optional[str], user: Optional[str], limit: Optional[int],
              delete: bool) -> tuple[int, int]:
        """Count, and when ``delete`` also delete, sessions not updated since a time.

        The sessions are picked, counted and deleted in one transaction
        (IMMEDIATE when ``delete``), so a session updated meanwhile is never
        deleted. Call again until it returns ``(0, 0)`` to prune in batches.

        Args:
            updated_before: epoch seconds; sessions with ``updated_at`` before it go.
            app, user: only this ``app_name`` / ``user_id``, or None for every one.
            limit: at most this many sessions (a batch), or None for all.
            delete: False only counts (a dry run; works on a read-only service).

        Returns:
            ``(sessions, events)`` counted (and deleted).
        """
        where, params = app_user_filter(app, user, f"updated_at < {self._p}", [updated_before], self._p)
        table = self.db.models.Session._meta.table_name
        pick = f"SELECT app_name, user_id, session_id FROM {table}{where} LIMIT {self._p}"

        def run(conn):
            keys = conn.execute(pick, (*params, self.db.NO_LIMIT if limit is None else limit)).fetchall()
            events = sum(self._event_counts(conn, keys))
            if delete:
                self._delete_keys(conn, keys)
            return len(keys), events
        return self._run(run, write=delete)

    # -- inspection and maintenance ------------------------------------------
    def stats(self, top: int = 0) -> dict[str, Any]:
        """Read the counts and facts of the database in ONE snapshot.

        Args:
            top: how many of the largest sessions (by event count) to list (0: none).

        Returns:
            ``{"sessions", "events", "state_keys", "apps", "users", "memories" (not
            deleted ones), "schema_version" (as stored), "artifacts", "artifact_versions",
            "artifact_blobs", "artifact_bytes" (see :func:`adk_lite.artifacts.counts`),
            "per_app": [{"app_name", "sessions", "users", "events"}],
            "largest_sessions": [{"app_name", "user_id", "session_id", "events"}] (only
            when ``top``)}`` plus the backend's facts (for SQLite: ``free_pages``, ``page_size``,
            ``journal_mode``, ``sqlite_version``, ``synchronous``, ``path`` and the
            file sizes, see :meth:`adk_lite.sqlite.SqliteBackend.facts`); ``users``
            counts distinct ``(app_name, user_id)`` pairs.
        """
        m = self.db.models
        sessions, events, state = (m.Session._meta.table_name, m.Event._meta.table_name,
                                   m.State._meta.table_name)

        def run(conn):
            version = self._stored_version(conn)
            kept = (conn.execute(f"SELECT app_name, sessions, users, events, state_keys FROM {COUNTS} "
                                 "ORDER BY app_name").fetchall() if self._keeps_counts(version) else None)
            if kept is not None and all(_plausible(*row[1:]) for row in kept):  # kept by triggers: one row per app
                apps = [(a, n, u) for a, n, u, _e, _k in kept if n > 0]
                per_app_events = {a: e for a, _n, _u, e, _k in kept if e > 0}
                state_keys = sum(k for *_rest, k in kept)
            else:  # no counts, or forged ones (text, negative: check names them): count the rows
                apps = conn.execute(f"SELECT app_name, COUNT(*), COUNT(DISTINCT user_id) FROM {sessions} "
                                    "GROUP BY app_name ORDER BY app_name").fetchall()
                per_app_events = dict(conn.execute(f"SELECT app_name, COUNT(*) FROM {events} GROUP BY app_name"))
                state_keys = conn.execute(f"SELECT COUNT(*) FROM {state}").fetchone()[0]
            largest = []
            if top:
                largest = conn.execute(
                    f"SELECT app_name, user_id, session_id, COUNT(*) AS n FROM {events} "
                    f"GROUP BY app_name, user_id, session_id ORDER BY n DESC, app_name, user_id, session_id LIMIT {self._p}",
                    (top,)).fetchall()
            figures = {
                "sessions": sum(n for _a, n, _u in apps), "events": sum(per_app_events.values()),
                "state_keys": state_keys, "apps": len(apps), "memories": memory.count(self.db, conn),
                "users": sum(u for _a, _n, u in apps), "schema_version": version,
                **artifacts.counts(conn if self.has_artifacts(conn) else None),
                **self.db.facts(conn),
                "per_app": [{"app_name": a, "sessions": n, "users": u, "events": per_app_events.get(a, 0)}
                            for a, n, u in apps],
            }
            if top:
                figures["largest_sessions"] = [{"app_name": a, "user_id": u, "session_id": s, "events": n}
                                               for a, u, s, n in largest]
            return figures
        return self._run(run)

    def _keeps_counts(self, version: Optional[int]) -> bool:
        """True when the database keeps ``adk_counts`` (a SQLite file of schema version 6
        on; see :func:`adk_lite.schema.create_counts`): one writer at a time, so a counter
        row per app costs no writer a wait."""
        return self.db.SINGLE_WRITER and (version or 0) >= 6

    def has_artifacts(self, conn: Any) -> bool:
        """True when the database has the artifact tables (schema version 5 on): a file
        of an older version opened read-only is never migrated."""
        return (self._stored_version(conn) or 0) >= 5

    def _stored_version(self, conn: Any) -> Optional[int]:
        """The ``schema_version`` the file holds (checked digits at open), or None."""
        row = conn.execute(f"SELECT value FROM {self.db.models.Metadata._meta.table_name} "
                           "WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row and str(row[0]).isascii() and str(row[0]).isdigit() else None

    def check(self) -> dict[str, Any]:
        """Check the database in one snapshot: the backend's integrity and
        foreign-key checks (SQLite: with the search index's own check), our tables,
        the schema against what adk_lite makes at the stored ``schema_version``
        (``schema_problems`` of the backend), and session-scope state rows of no session.

        Returns:
            ``{"missing_tables": [name], "integrity_check": [line] (["ok"] when
            sound), "foreign_key_violations": [(table, rowid, parent table)],
            "schema_version": int or None, "schema_problems": [line],
            "stray_state_rows": int}``.
        """
        m = self.db.models
        sessions, state = m.Session._meta.table_name, m.State._meta.table_name

        def run(conn):
            tables = self.db.tables(conn)
            stray = 0
            if state in tables:
                stray = conn.execute(
                    f"SELECT COUNT(*) FROM {state} t WHERE scope = {self._p} AND NOT EXISTS (SELECT 1 FROM {sessions} s "
                    "WHERE s.app_name = t.app_name AND s.user_id = t.user_id AND s.session_id = t.session_id)",
                    (SESSION,)).fetchone()[0]
            integrity, foreign = self.db.integrity(conn)
            version = self._stored_version(conn)
            later = set() if version is None else set().union(
                *(names for added_in, names in schema.ADDED_TABLES.items() if added_in > version))
            return {  # a file of an older version (opened read-only, not migrated) lacks the later tables
                "missing_tables": [t._meta.table_name for t in m.all
                                   if t._meta.table_name not in tables and t._meta.table_name not in later],
                "integrity_check": integrity, "foreign_key_violations": foreign,
                "schema_version": version, "schema_problems": self.db.schema_problems(conn, version),
                "stray_state_rows": stray,
            }
        return self._run(run)

    def vacuum(self) -> dict[str, int]:
        """Checkpoint the WAL (TRUNCATE), VACUUM and optimize.

        Returns:
            ``{"bytes_before": int, "bytes_after": int}``: main file + WAL, bytes.
        """
        before = self.db.file_sizes()
        self._use(self.db.vacuum, (), True, False)
        after = self.db.file_sizes()
        return {"bytes_before": before["db"] + before["wal"], "bytes_after": after["db"] + after["wal"]}

    def checkpoint(self) -> dict[str, Any]:
        """Checkpoint the WAL into the main file and truncate it (a write: refused
        on a read-only database).

        Returns:
            ``{"busy": bool, "wal_bytes_before": int, "wal_bytes_after": int}``.
        """
        before = self.db.file_sizes()["wal"]
        done = self._use(self.db.checkpoint, (), True, False)
        return {"busy": not done, "wal_bytes_before": before, "wal_bytes_after": self.db.file_sizes()["wal"]}

    def backup(self, dest: str, progress: Callable[[int, int], None]) -> int:
        """Copy the database, from one read snapshot, into the existing empty file
        ``dest`` (writers go on meanwhile); ``progress(pages done, pages in all)``
        after each step. Returns the pages copied. A read: allowed read-only."""
        return self._use(self.db.backup, (dest, progress), False, False)
