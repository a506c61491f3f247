"""One driver per service: the same small interface over adk_lite, ADK and the floor.

A driver's methods return either a result or an awaitable (the harness awaits
what needs it), so sync services are timed without an event-loop hop and async
ones with exactly the hop their users pay. Methods that a service lacks are None.

Interface: ``event(dict) -> native event`` (built before timing), ``create(user,
session_id, state)``, ``append(handle, event)``, ``append_batch(handle, events)``,
``get(user, session_id, limit)`` (limit None: every event), ``list_user(user)``,
``list_app()``, ``page(limit, after)`` (keyset page, ``.next_cursor``),
``update_keys(user, session_id, delta)``, ``stats()``, ``seed(handle, dicts)``
(add these events to a session made by ``create``, by the fastest path into the
same schema; never timed), ``close()`` and ``path`` (None in memory).

``path`` may also be a PostgreSQL URL (``postgresql://user:password@host/dbname``)
for the services of :data:`POSTGRES_SERVICES`: adk_lite opens it with psycopg 3,
ADK's ``DatabaseSessionService`` as ``postgresql+asyncpg://`` (:func:`adk_database_url`).
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, Optional

from . import floor
from .workload import APP

SERVICES = ("floor", "adk_lite", "adk_lite_async", "adk_lite_adk", "adk_inmemory", "adk_sqlite", "adk_database")
"""Every service, in the order they are run and shown."""

LABELS = {
    "floor": "floor: stdlib sqlite3",
    "adk_lite": "adk_lite sync",
    "adk_lite_async": "adk_lite async wrapper",
    "adk_lite_adk": "adk_lite ADK adapter",
    "adk_inmemory": "ADK InMemorySessionService",
    "adk_sqlite": "ADK SqliteSessionService",
    "adk_database": "ADK DatabaseSessionService (sqlite+aiosqlite)",
}

POSTGRES_SERVICES = ("adk_lite", "adk_lite_adk", "adk_database")
"""The services ``python -m bench --backend postgres`` measures, in order."""

POSTGRES_LABELS = dict(LABELS, adk_database="ADK DatabaseSessionService (postgresql+asyncpg)")
""":data:`LABELS` for a run on PostgreSQL."""

SEED_BATCH = 1000
"""Events per ``append_events`` call when seeding adk_lite's schema on PostgreSQL."""

LITE_FAMILY = ("floor", "adk_lite", "adk_lite_async", "adk_lite_adk")
"""Services that write adk_lite's schema (seeded by :func:`bench.floor.seed`)."""


def is_postgres(target: Optional[str]) -> bool:
    """True when ``target`` is a PostgreSQL URL (not a file path, not None)."""
    from adk_lite.target import target_kind

    return target is not None and target_kind(target) == "postgres"


def adk_database_url(target: str) -> tuple[str, dict[str, Any]]:
    """The URL and engine options of ADK's ``DatabaseSessionService`` for ``target``.

    A file path becomes ``sqlite+aiosqlite:///<absolute path>``. A PostgreSQL URL
    becomes ``postgresql+asyncpg://`` with the same user, password, host and database,
    without adk_lite's query options; its ``max_connections`` (adk_lite's pool size),
    if given, becomes SQLAlchemy's ``pool_size`` with no overflow, so both systems
    hold at most as many connections.
    """
    if not is_postgres(target):
        return "sqlite+aiosqlite:///" + os.path.abspath(target), {}
    from adk_lite.target import parse_postgres

    pool = parse_postgres(target).options.get("max_connections")
    url = "postgresql+asyncpg://" + target.split("://", 1)[1].split("?", 1)[0]
    return url, ({"pool_size": pool, "max_overflow": 0} if pool else {})


def seed_lite(target: str, user: str, sid: str, dicts: list[dict[str, Any]]) -> None:
    """Add workload dicts to a stored session in adk_lite's schema (never timed).

    On a SQLite file, the floor's ``executemany`` (:func:`bench.floor.seed`). On
    PostgreSQL, adk_lite's own batch path: ``append_events`` of :data:`SEED_BATCH`
    events, with ``vacuum()`` (``VACUUM ANALYZE``) after the first batch and the
    last. An append checks that its event ids are new with an index lookup per id,
    but on tables the server has no statistics for yet (freshly made, before
    autovacuum's first ANALYZE) the planner expects one row per session and scans
    all of the session's events for each id instead, which makes filling one
    session quadratic.
    """
    if not is_postgres(target):
        floor.seed(target, APP, user, sid, dicts)
        return
    import adk_lite

    with adk_lite.DatabaseSessionService(target) as svc:
        session = svc.get_session(APP, user, sid, num_recent_events=0)
        events = [adk_lite.Event.from_dict(d) for d in dicts]
        for i in range(0, len(events), SEED_BATCH):
            svc.append_events(session, events[i:i + SEED_BATCH])
            if i == 0:
                svc.vacuum()
            session.events.clear()  # keep the seeding process small
        svc.vacuum()


def _schema(path: str) -> None:
    """Create adk_lite's schema in ``path`` (a no-op when it is there)."""
    from adk_lite import DatabaseSessionService

    DatabaseSessionService(path).close()


class Driver:
    """Base: the optional methods are None; subclasses fill in what they have.

    Every method may return an awaitable instead of its result.
    """

    append_batch = page = update_keys = stats = list_user = list_app = None

    def __init__(self, path: Optional[str]) -> None:
        self.path = path

    def event(self, d: dict[str, Any]) -> Any:
        """Build the service's own event object from a workload dict (before timing)."""
        raise NotImplementedError

    def create(self, user: str, sid: str, state: dict[str, Any]) -> Any:
        """Create session ``sid`` of ``user`` in the workload's app; return its handle."""
        raise NotImplementedError

    def append(self, handle: Any, event: Any) -> Any:
        """Append one event (from :meth:`event`) to a session handle."""
        raise NotImplementedError

    def get(self, user: str, sid: str, limit: Optional[int] = None) -> Any:
        """Read a session with its ``limit`` most recent events (None: all)."""
        raise NotImplementedError

    def seed(self, handle: Any, dicts: list[dict[str, Any]]) -> Any:
        """Add workload dicts to a created session by the fastest path into the same storage (never timed)."""
        raise NotImplementedError

    def close(self) -> Any:
        """Close the service and its files."""
        raise NotImplementedError


class FloorDriver(Driver):
    """The stdlib-sqlite3 floor (:class:`bench.floor.Floor`); events stay dicts."""

    def __init__(self, path: str, indexed: bool = False) -> None:
        super().__init__(path)
        _schema(path)
        self.f = floor.Floor(path, indexed)
        self.append, self.append_batch, self.close = self.f.append, self.f.append_batch, self.f.close

    def event(self, d):
        return d

    def create(self, user, sid, state):
        return self.f.create(APP, user, sid, state)

    def get(self, user, sid, limit=None):
        return self.f.get(APP, user, sid, limit)

    def seed(self, handle, dicts):
        floor.seed(self.path, APP, handle[1], handle[2], dicts)
        handle[3] += 1


class LiteDriver(Driver):
    """adk_lite's sync service, or with ``aio`` its async wrapper."""

    def __init__(self, path: str, aio: bool = False) -> None:
        super().__init__(path)
        import adk_lite

        self.Event = adk_lite.Event
        self.svc = adk_lite.AsyncDatabaseSessionService(path) if aio else adk_lite.DatabaseSessionService(path)
        s = self.svc
        self.append, self.append_batch, self.stats = s.append_event, s.append_events, s.get_stats
        self.close = s.aclose if aio else s.close

    def event(self, d):
        return self.Event.from_dict(d)

    def create(self, user, sid, state):
        return self.svc.create_session(APP, user, state=state, session_id=sid)

    def get(self, user, sid, limit=None):
        return self.svc.get_session(APP, user, sid, num_recent_events=limit)

    def list_user(self, user):
        return self.svc.list_sessions(APP, user)

    def list_app(self):
        return self.svc.list_sessions(APP)

    def page(self, limit, after):
        return self.svc.list_sessions(APP, limit=limit, after=after)

    def update_keys(self, user, sid, delta):
        return self.svc.update_keys(APP, user, sid, delta)

    def seed(self, handle, dicts):
        seed_lite(self.path, handle.user_id, handle.id, dicts)


class AdkDriver(Driver):
    """A ``google.adk`` BaseSessionService: ADK's own three, or adk_lite's adapter.

    Raises:
        ImportError: google-adk (or sqlalchemy, or ``adk_lite.adk``) is not installed.
    """

    def __init__(self, name: str, path: Optional[str]) -> None:
        super().__init__(path)
        from google.adk.events import Event
        from google.adk.sessions.base_session_service import GetSessionConfig

        self.name, self.Event, self.Config = name, Event, GetSessionConfig
        if name == "adk_inmemory":
            from google.adk.sessions import InMemorySessionService

            self.path, self.svc = None, InMemorySessionService()
        elif name == "adk_sqlite":
            from google.adk.sessions.sqlite_session_service import SqliteSessionService

            self.svc = SqliteSessionService(path)
        elif name == "adk_database":
            from google.adk.sessions import DatabaseSessionService

            url, options = adk_database_url(path)
            self.svc = DatabaseSessionService(url, **options)
        else:
            from adk_lite.adk import DatabaseSessionService  # the adapter (the adk extra)

            self.svc = DatabaseSessionService(path)

    def event(self, d):
        return self.Event.model_validate(d)

    def create(self, user, sid, state):
        return self.svc.create_session(app_name=APP, user_id=user, state=state, session_id=sid)

    def append(self, session, event):
        return self.svc.append_event(session=session, event=event)

    def get(self, user, sid, limit=None):
        config = None if limit is None else self.Config(num_recent_events=limit)
        return self.svc.get_session(app_name=APP, user_id=user, session_id=sid, config=config)

    def list_user(self, user):
        return self.svc.list_sessions(app_name=APP, user_id=user)

    def list_app(self):
        return self.svc.list_sessions(app_name=APP)

    async def seed(self, session, dicts):
        user, sid = session.user_id, session.id
        if self.name == "adk_inmemory":  # its append_event scans every stored event (O(n)): fill the list
            self.svc.sessions[APP][user][sid].events.extend(self.Event.model_validate(d) for d in dicts)
        elif self.name == "adk_sqlite":  # ADK's own INSERT (sqlite_session_service.py), many rows at once
            conn = sqlite3.connect(self.path)
            with conn:
                conn.executemany(
                    "INSERT INTO events (id, app_name, user_id, session_id, invocation_id, timestamp, event_data) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(d["id"], APP, user, sid, d["invocation_id"], d["timestamp"],
                      self.Event.model_validate(d).model_dump_json(exclude_none=True)) for d in dicts])
                conn.execute("UPDATE sessions SET update_time = ? WHERE app_name = ? AND user_id = ? AND id = ?",
                             (dicts[-1]["timestamp"], APP, user, sid))
            conn.close()
        elif self.name == "adk_database":  # ADK's own StorageEvent rows, one executemany
            from sqlalchemy import insert

            table = self.svc._get_schema_classes().StorageEvent
            rows = []
            for d in dicts:
                stored = table.from_event(session, self.Event.model_validate(d))
                rows.append({c.key: getattr(stored, c.key) for c in table.__table__.columns})
            async with self.svc.db_engine.begin() as conn:
                await conn.execute(insert(table.__table__), rows)
                if is_postgres(self.path):  # fresh statistics, as adk_lite's seeding has them
                    await conn.exec_driver_sql("ANALYZE")
        else:  # the adapter writes adk_lite's schema
            seed_lite(self.path, user, sid, dicts)

    async def close(self):
        close = getattr(self.svc, "close", None)
        if close is not None:
            result = close()
            if hasattr(result, "__await__"):
                await result


def make(name: str, path: Optional[str]) -> Driver:
    """Open the driver of service ``name`` on the file ``path``.

    Raises:
        ImportError: the service's package is not installed.
    """
    if name == "floor":
        return FloorDriver(path)
    if name in ("adk_lite", "adk_lite_async"):
        return LiteDriver(path, aio=name == "adk_lite_async")
    return AdkDriver(name, path)


def count(result: Any) -> int:
    """Events (of a get) or sessions (of a list) in a service's result."""
    if isinstance(result, dict):
        return len(result["events"])
    if hasattr(result, "sessions"):
        return len(result.sessions)
    if isinstance(result, list):
        return len(result)
    return len(result.events)
