"""Shared fixtures: a service on a fresh file in a temporary folder, and targets on
both backends.

``backend`` is parametrized over ``sqlite`` and ``postgres`` wherever a test uses it
(directly or through ``target`` / ``new_target`` / ``svc_any``). The PostgreSQL half
needs a server: ``ADK_LITE_TEST_PG=postgresql://user:password@host:port/dbname`` (a role
that may CREATE DATABASE). Without it those tests skip, saying so; under ``CI=true``
they fail instead.
"""

from __future__ import annotations

import itertools
import os
import time

import pytest

from adk_lite import DatabaseSessionService
from adk_lite.models import TABLES
from adk_lite.target import target_kind

PG_ENV = "ADK_LITE_TEST_PG"
PG_TABLES = ("adk_usage, adk_events, adk_state, adk_sessions, adk_metadata, adk_memories, adk_artifact_versions, "
             "adk_artifact_blobs")


@pytest.fixture
def db_path(tmp_path):
    """Path of a database file that does not exist yet."""
    return str(tmp_path / "sessions.sqlite3")


@pytest.fixture
def svc(db_path):
    """A sync service on a new file, closed after the test."""
    service = DatabaseSessionService(db_path)
    yield service
    service.close()


def pg_url() -> str:
    """The test server's URL: skip (or fail under CI=true) when none is configured."""
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but ${PG_ENV} is unset: the PostgreSQL half of the suite must run in CI")
        pytest.skip(f"PostgreSQL tests need a server: set ${PG_ENV}=postgresql://user:password@host:port/dbname")
    return url


class PgDatabases:
    """Test databases on the server, made once per run and emptied for each use."""

    def __init__(self, url: str) -> None:
        self.url, self.made = url, set()
        self.base, self.dbname = url.split("?", 1)[0].rsplit("/", 1)

    def admin(self, dbname: str | None = None):
        import psycopg
        from adk_lite.target import parse_postgres

        info = dict(parse_postgres(self.url).conninfo)
        if dbname:
            info["dbname"] = dbname
        return psycopg.connect(**info, autocommit=True)

    def fresh(self, index: int) -> str:
        """The URL of test database ``index``, with no adk_lite tables: ``<dbname>_t<index>``
        beside the configured database, so runs pointed at different databases never
        share one."""
        name = f"{self.dbname}_t{index}"
        if name not in self.made:
            with self.admin() as conn:
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                    conn.execute(f'CREATE DATABASE "{name}"')
            self.made.add(name)
        with self.admin(name) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {PG_TABLES} CASCADE")
        return f"{self.base}/{name}"

    def settle(self, url: str, limit: float = 60.0) -> None:
        """Wait until no client is connected to the database of ``url``: after a client
        process was killed, its server process has then finished what it was doing
        (a COMMIT received before the kill completes, an open transaction is rolled
        back), so what a later read sees is final. ``limit`` only keeps a hung server
        from hanging the run."""
        from adk_lite.target import parse_postgres

        dbname = parse_postgres(url).conninfo["dbname"]
        end = time.monotonic() + limit
        with self.admin() as conn:  # on the configured database: not one of the clients waited for
            while conn.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s", (dbname,)).fetchone()[0]:
                if time.monotonic() > end:
                    raise TimeoutError(f"clients of {dbname} still connected after {limit} s")
                time.sleep(0.01)


_pg: dict = {}


def pg_databases() -> PgDatabases:
    """The run's :class:`PgDatabases` (skips when no server is configured)."""
    url = pg_url()
    if "dbs" not in _pg:
        _pg["dbs"] = PgDatabases(url)
    return _pg["dbs"]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    """The backend a test runs on: ``"sqlite"`` or ``"postgres"`` (skipped without a server)."""
    if request.param == "postgres":
        pg_databases()
    return request.param


@pytest.fixture
def new_target(backend, tmp_path):
    """A factory: ``new_target(name)`` gives a target with no data yet: a file path in
    ``tmp_path`` on SQLite, the URL of an emptied test database on PostgreSQL (one per
    name within a test)."""
    names: dict[str, str] = {}
    counter = itertools.count()

    def make(name: str = "sessions") -> str:
        if name not in names:
            if backend == "sqlite":
                names[name] = str(tmp_path / f"{name}.sqlite3")
            else:
                names[name] = pg_databases().fresh(next(counter))
        return names[name]
    return make


@pytest.fixture
def target(new_target):
    """One target with no data yet, on the test's backend."""
    return new_target()


@pytest.fixture
def svc_any(request, backend, target):
    """A sync service on a new target of the test's backend, closed after the test
    (a test marked ``sqlite_only`` is skipped on PostgreSQL)."""
    if backend != "sqlite" and request.node.get_closest_marker("sqlite_only"):
        pytest.skip("about SQLite's file (sizes, descriptors, WAL): no such thing on a server")
    service = DatabaseSessionService(target)
    yield service
    service.close()


def on_postgres(target: str) -> bool:
    """True for a PostgreSQL URL (a target, or a service's masked ``path``)."""
    return target_kind(target) == "postgres"


def pooled(target: str, connections: int) -> str:
    """``target`` with a pool of at most ``connections`` on PostgreSQL (processes share the
    server's ``max_connections``); a file path as it is."""
    if not on_postgres(target):
        return target
    return f"{target}{'&' if '?' in target else '?'}max_connections={connections}"


def settle(target: str) -> None:
    """After killing a client process: wait until the server has finished with its
    connections (see :meth:`PgDatabases.settle`); nothing to wait for on a file."""
    if on_postgres(target):
        pg_databases().settle(target)


def stored_contents(svc) -> object:
    """What a 'nothing was written' check compares: on SQLite the bytes of the file and
    of its WAL; on PostgreSQL every row of adk_lite's tables (there is no file)."""
    if not on_postgres(svc.path):
        from tests.workers import file_bytes as main_and_wal

        return main_and_wal(svc.path)
    return svc.store.read(lambda conn: {
        table: sorted((tuple(row) for row in conn.execute(f"SELECT * FROM {table}").fetchall()), key=repr)
        for table in TABLES})


def file_bytes(path: str) -> bytes:
    """The main database file's bytes (for 'nothing was written' checks)."""
    with open(path, "rb") as fh:
        return fh.read()


def edit_sqlite(path: str, *statements: str) -> None:
    """Run each SQL statement (committed one by one) on the SQLite file at ``path`` with
    the standard library's ``sqlite3``, as a tool other than adk_lite would; then close."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        for sql in statements:
            conn.execute(sql)
            conn.commit()
    finally:
        conn.close()


def assert_refused_untouched(path: str, error: type, match: str) -> None:
    """Assert that opening ``path`` with :class:`DatabaseSessionService` raises ``error``
    with a message matching ``match``, and leaves the file's bytes as they were."""
    before = file_bytes(path)
    with pytest.raises(error, match=match):
        DatabaseSessionService(path)
    assert file_bytes(path) == before


def drop_later_tables(conn, version: int) -> None:
    """Make a SQLite file's tables those of schema ``version`` again: drop the tables that
    later versions added (``schema.ADDED_TABLES``) with their FTS5 indexes, and give the
    events' index the triggers versions 4 and 5 wrote, for tests that build an old file
    from a new one (call it with a ``sqlite3`` connection; on PostgreSQL only the tables go)."""
    import sqlite3

    from adk_lite import schema

    for added_in, names in schema.ADDED_TABLES.items():
        if added_in > version:
            for name in reversed(names):  # a table that refers to another goes first
                conn.execute(f"DROP TABLE IF EXISTS {name}_fts")
                conn.execute(f"DROP TABLE IF EXISTS {name}")
    if version < 6 and isinstance(conn, sqlite3.Connection):  # the counts per app came with version 6
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'adk^_counts^_%' "
                                    "ESCAPE '^'").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP TABLE IF EXISTS adk_counts")
    if version in (4, 5) and isinstance(conn, sqlite3.Connection):
        for trigger in ("insert", "delete", "update"):
            conn.execute(f"DROP TRIGGER IF EXISTS adk_events_fts_{trigger}")
        schema._search_triggers(conn, schema._NEW_TEXT_V4)


def downgrade(svc, version: int) -> None:
    """Make an open service's database (either backend) look as schema ``version`` wrote
    it: the tables later versions added dropped, and the stored version set back."""
    def run(conn):
        drop_later_tables(conn, version)
        conn.execute(f"UPDATE adk_metadata SET value = '{version}' WHERE key = 'schema_version'")
    svc.store._run(run, write=True)
