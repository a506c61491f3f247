"""What a SQLite file of each schema version holds, exactly, and the search index's
own check: a file that carries an object adk_lite does not make (a trigger, a view,
an index, a table), or one of ours changed, is refused; a search index that SQLite's
``integrity_check`` passes but FTS5's own ``integrity-check`` fails, or that does not
hold the text of the events, is reported.

The expected objects are never listed by hand. They are read from ``sqlite_master`` of
databases built in memory by the code that makes files (:func:`adk_lite.schema.create_all`)
and migrates them (:data:`adk_lite.schema.MIGRATIONS`): a file made at version ``s``
(the models minus the columns later versions add, :data:`adk_lite.schema.ADDED_COLUMNS`,
minus the objects later migrations make) and migrated to version ``v``, for every
``s <= v``; a new model or migration is known here as soon as it is in that code.
Each version's expectation is built once per process (a few milliseconds), so the
check at every open is one read of ``sqlite_master``. SQLite's own tables
(``sqlite_stat1``/``sqlite_stat4`` of ``ANALYZE``/``PRAGMA optimize``,
``sqlite_sequence``) are allowed, with the SQL SQLite gives them.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import tempfile
from typing import Any, Iterable, Optional

import peewee as pw

from . import errors, schema
from .models import COUNTS, EVENTS, EVENTS_FTS, make_models

Objects = dict[str, tuple[str, str, Optional[str]]]
"""name -> (type, tbl_name, sql) of a database's ``sqlite_master``."""

_DROP_ORDER = {"trigger": 0, "view": 1, "index": 2, "table": 3}


def read_objects(conn: sqlite3.Connection) -> list[tuple[str, str, str, Optional[str]]]:
    """The rows ``(type, name, tbl_name, sql)`` of ``sqlite_master`` of ``conn``'s main database."""
    return [tuple(r) for r in conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")]


def _objects(conn: sqlite3.Connection) -> Objects:
    return {name: (kind, table, sql) for kind, name, table, sql in read_objects(conn)}


@functools.lru_cache(maxsize=8)
def _new_file(key: Any) -> tuple[tuple[str, str, str, Optional[str]], ...]:
    """``sqlite_master`` of a new file of today's code (:func:`adk_lite.schema.create_all`
    on an empty database in memory), in creation order."""
    db = pw.SqliteDatabase(":memory:")
    conn = db.connection()
    try:
        schema.create_all(db, make_models(db), conn)
        return tuple(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid").fetchall())
    finally:
        db.close()


def _made_at(start: int, version: int, key: Any) -> Objects:
    """The objects of a file made by the release of schema version ``start`` and
    migrated to ``version``: a new file of today's code (its statements replayed in
    memory), with what later versions added taken away, then
    :data:`adk_lite.schema.MIGRATIONS` from ``start``."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for _kind, name, _table, sql in _new_file(key):
            if sql is not None and not conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone():
                conn.execute(sql)  # (a virtual table's shadow tables exist once it is made)
        if start < schema.SCHEMA_VERSION:
            names = _names_at(start, key)
            rows = sorted(read_objects(conn), key=lambda r: (_DROP_ORDER[r[0]], not (r[3] or "").startswith("CREATE VIRTUAL")))
            for kind, name, _table, _sql in rows:
                gone = not conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone()
                if name in names or name.startswith("sqlite_autoindex_") or gone:  # a shadow table goes with its virtual table
                    continue
                conn.execute(f'DROP {kind.upper()} "{name}"')
            for table, columns in schema._added_after(start).items():
                for column in sorted(columns):
                    conn.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
        for step in range(start, version):
            schema.MIGRATIONS[step](conn)
        return _objects(conn)
    finally:
        conn.close()


@functools.lru_cache(maxsize=64)
def _names_at(start: int, key: Any) -> frozenset:
    """The names of the objects a file of schema version ``start`` holds: the first
    release's tables and their indexes, and what the migrations up to ``start`` made."""
    if start == 1:
        return frozenset(name for kind, name, table, _sql in _new_file(key)
                         if kind in ("table", "index") and table in schema.VERSION_1_TABLES)
    return frozenset(_made_at(1, start, key))


def _key() -> Any:
    """What the expectations depend on besides the code of the models: the current
    version, the migrations and the added columns (tests replace them)."""
    added = tuple(sorted((v, t, tuple(sorted(c))) for v, tables in schema.ADDED_COLUMNS.items()
                         for t, c in tables.items()))
    return schema.SCHEMA_VERSION, tuple(sorted(schema.MIGRATIONS.items(), key=lambda kv: kv[0])), added


@functools.lru_cache(maxsize=64)
def _expected(version: int, key: Any) -> tuple[frozenset, dict[str, tuple[str, str, frozenset]]]:
    forms = [_made_at(start, version, key) for start in range(1, version + 1)]
    allowed: dict[str, tuple[str, str, set]] = {}
    for form in forms:
        for name, (kind, table, sql) in form.items():
            allowed.setdefault(name, (kind, table, set()))[2].add(sql)
    return frozenset(forms[-1]), {n: (k, t, frozenset(s)) for n, (k, t, s) in allowed.items()}


def expected_objects(version: int) -> tuple[frozenset, dict[str, tuple[str, str, frozenset]]]:
    """What a file of schema ``version`` holds: ``(required names, {name: (type,
    tbl_name, the SQL texts it may have)})``; a table's text depends on the version
    the file was made at (``ALTER TABLE ... ADD COLUMN`` writes its own text)."""
    return _expected(version, _key())


@functools.lru_cache(maxsize=1)
def _sqlite_own() -> dict[str, str]:
    """SQLite's own tables (``ANALYZE``'s statistics, ``AUTOINCREMENT``'s counters)
    and the SQL this SQLite gives them; ``sqlite_stat4`` as builds with STAT4 make it."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, x)")
        conn.execute("CREATE INDEX tx ON t (x)")
        conn.execute("INSERT INTO t (x) VALUES (1)")
        conn.execute("ANALYZE")
        own = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name LIKE 'sqlite^_%' "
                                "ESCAPE '^'").fetchall())
    finally:
        conn.close()
    own.setdefault("sqlite_stat4", "CREATE TABLE sqlite_stat4(tbl,idx,neq,nlt,ndlt,sample)")
    return own


def _short(sql: Optional[str]) -> str:
    text = " ".join((sql or "").split())
    return text if len(text) <= 90 else text[:89] + "…"


def object_problems(rows: Iterable[tuple[str, str, str, Optional[str]]], version: int) -> list[str]:
    """What differs between a file's ``sqlite_master`` ``rows`` (``(type, name,
    tbl_name, sql)``) and what adk_lite makes at schema ``version``: one line per
    object that is not adk_lite's, not as adk_lite makes it, or missing."""
    rows = list(rows)
    key = _key()
    if version == schema.SCHEMA_VERSION and {tuple(r) for r in rows} == set(_new_file(key)):
        return []  # as a new file is made: the usual case, known without the older versions' forms
    required, allowed = _expected(version, key)
    own = _sqlite_own()
    problems, seen = [], set()
    for kind, name, table, sql in rows:
        seen.add(name)
        if kind == "table" and own.get(name) == sql:
            continue
        want = allowed.get(name)
        if want is None:
            problems.append(f"{kind} {name} is not adk_lite's ({_short(sql)})")
        elif (kind, table) != want[:2] or sql not in want[2]:
            problems.append(f"{kind} {name} is not as adk_lite makes it ({_short(sql)})")
    problems += [f"{allowed[name][0]} {name} is missing" for name in sorted(required - seen)]
    return problems


def check_objects(rows: Iterable[tuple[str, str, str, Optional[str]]], version: int, path: str) -> None:
    """Refuse a file whose schema is not exactly adk_lite's at ``version`` (see
    :func:`object_problems`).

    Raises:
        ForeignDatabaseError: naming the file and the first objects that differ.
    """
    problems = object_problems(rows, version)
    if problems:
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise errors.ForeignDatabaseError(
            f"{path} does not hold adk_lite's schema (schema_version {version}): {'; '.join(problems[:3])}{more}")


@functools.lru_cache(maxsize=1)
def _fresh_config() -> frozenset:
    """The ``_config`` rows of a new FTS5 table of this SQLite (its format version)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        return frozenset(conn.execute("SELECT k, v FROM t_config").fetchall())
    finally:
        conn.close()


def config_problems(conn: sqlite3.Connection, objects: Iterable[tuple[str, str, str, Optional[str]]]) -> list[str]:
    """One line per FTS5 index (of ``objects``, rows of ``sqlite_master``) whose ``_config``
    table holds a setting adk_lite never writes: a ``rank`` function (then every search
    of that index fails), a page size, merge rules. adk_lite leaves each index as FTS5
    makes it."""
    problems = []
    for kind, name, _table, sql in objects:
        if kind == "table" and (sql or "").upper().startswith("CREATE VIRTUAL TABLE") and "FTS5" in sql.upper():
            try:
                rows = conn.execute(f'SELECT k, v FROM "{name}_config"').fetchall()
            except sqlite3.Error:
                continue  # a missing shadow table is reported by the schema and FTS5 checks
            extra = sorted(set(rows) - _fresh_config(), key=repr)
            if extra:
                problems.append(f"{name}: its configuration holds settings adk_lite does not make: "
                                f"{', '.join(f'{k}={v!r}' for k, v in extra)[:200]}")
    return problems


def count_problems(conn: sqlite3.Connection) -> list[str]:
    """Check ``adk_counts`` (schema version 6 on) against the rows it counts
    (:data:`adk_lite.schema.COUNTS_SQL`): one line per app whose counts differ; ``[]``
    when they agree or when the file has no such table. An app's row of zeros stands
    for an app with nothing stored. ``vacuum`` counts them again
    (:func:`adk_lite.schema.recount`)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (COUNTS,)).fetchone():
        return []
    kept = {r[0]: r[1:] for r in conn.execute(f"SELECT app_name, {', '.join(schema.COUNTED)} FROM {COUNTS}")}
    counted = {r[0]: r[1:] for r in conn.execute(schema.COUNTS_SQL)}
    zeros = (0,) * len(schema.COUNTED)

    def holds(app: Any) -> str:
        return ", ".join(f"{c} {n}" for c, n in zip(schema.COUNTED, kept.get(app, zeros)))
    return [f"{COUNTS}: app {app!r} holds {holds(app)}; "
            f"its rows count {', '.join(map(str, counted.get(app, zeros)))} (vacuum counts them again)"
            for app in sorted(set(kept) | set(counted), key=str) if kept.get(app, zeros) != counted.get(app, zeros)]


def search_index_problems(conn: sqlite3.Connection) -> list[str]:
    """Check the search index ``adk_events_fts`` of ``conn``'s database (a read-only
    connection will do): FTS5's own ``integrity-check`` (which SQLite's
    ``integrity_check`` does not run), and that the index holds exactly each event's
    text (:func:`adk_lite.schema.search_text_sql`) and no row of no event.

    FTS5 runs its check only on a writable database, so the index's shadow tables
    are copied (in ``conn``'s snapshot) into a file in a private temporary folder
    (removed at the end) and checked there; the database is only read.
    Costs a read of the whole index and of every event (like ``integrity_check``).

    Returns:
        One line per problem; ``[]`` when sound or when the file has no index
        (schema_version 3 and older).
    """
    objects = read_objects(conn)
    names = {row[1] for row in objects}
    settings = config_problems(conn, objects)
    if settings or EVENTS_FTS not in names:
        return settings
    with tempfile.TemporaryDirectory(prefix="adk_lite-check-") as folder:
        copy = os.path.join(folder, "index.sqlite3")
        scratch = sqlite3.connect(copy, isolation_level=None)
        try:
            scratch.execute(schema.search_table_sql())
            shadows = [r[0] for r in scratch.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name "
                                                     "LIKE ? ESCAPE '^'", (EVENTS_FTS + "^_%",)).fetchall()]
            missing = [name for name in shadows if name not in names]
            if missing:
                return [f"{EVENTS_FTS}: its tables {', '.join(missing)} are missing"]
            scratch.execute("BEGIN")
            for name in shadows:
                width = len(scratch.execute(f'PRAGMA table_info("{name}")').fetchall())
                scratch.execute(f'DELETE FROM "{name}"')
                scratch.executemany(f'INSERT INTO "{name}" VALUES ({", ".join("?" * width)})',
                                    conn.execute(f'SELECT * FROM "{name}"'))
            scratch.execute("COMMIT")
            scratch.close()  # a new connection reads the copied configuration, not the one made above
            scratch = sqlite3.connect(copy, isolation_level=None)
            scratch.execute(f"INSERT INTO {EVENTS_FTS} ({EVENTS_FTS}, rank) VALUES ('integrity-check', 1)")
        except sqlite3.Error as e:
            return [f"{EVENTS_FTS}: FTS5's integrity-check fails: {e}"]
        finally:
            scratch.close()
    problems = []
    try:
        differ = conn.execute(f"SELECT count(*) FROM {EVENTS} AS e LEFT JOIN {EVENTS_FTS} AS f ON f.rowid = e.id "
                              f"WHERE f.text IS NOT {schema.search_text_sql('e.body')}").fetchone()[0]
        orphans = conn.execute(f"SELECT count(*) FROM {EVENTS_FTS} AS f WHERE NOT EXISTS "
                               f"(SELECT 1 FROM {EVENTS} AS e WHERE e.id = f.rowid)").fetchone()[0]
    except sqlite3.Error as e:
        return [f"{EVENTS_FTS}: cannot be read: {e}"]
    if differ:
        problems.append(f"{EVENTS_FTS}: {differ} events are indexed with other text than theirs")
    if orphans:
        problems.append(f"{EVENTS_FTS}: {orphans} index rows belong to no event")
    return problems


def rebuild_search_index(conn: sqlite3.Connection) -> None:
    """Rebuild the search index of ``conn``'s database from the text it stores (FTS5's
    ``rebuild``), in one transaction; nothing when the file has none. So the index is
    one this SQLite wrote, whatever its pages held before: FTS5's ``integrity-check``
    (SQLite 3.40) misses some damage, e.g. the last entry of a segment's page
    directory (``adk_events_fts_idx``) gone, which makes searches miss events."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (EVENTS_FTS,)).fetchone():
        conn.execute(f"INSERT INTO {EVENTS_FTS} ({EVENTS_FTS}) VALUES ('rebuild')")


__all__ = ["expected_objects", "object_problems", "check_objects", "read_objects", "search_index_problems",
           "config_problems", "rebuild_search_index"]
