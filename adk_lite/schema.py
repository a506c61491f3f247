"""The schema's versions: what each version of the file holds, the migrations
between them, and the checks that a file's tables are ours.

The tables themselves are defined once, by the Peewee models in
:mod:`adk_lite.models`; this module knows how they changed over time.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any, Optional

import peewee as pw

from . import errors
from . import usage
from .models import (ARTIFACT_TABLES, COUNTS, EVENTS, EVENTS_FTS, MEMORIES, MEMORIES_FTS, METADATA, SESSIONS, STATE,
                     TABLES, TOKENIZER, USAGE, make_models)

SCHEMA_VERSION = 6
"""The schema this release writes. Files with a higher version are refused.

History: 1, the first release; 2, ``adk_sessions.incarnation``; 3,
``adk_sessions.initial_state`` and ``adk_sessions.forked_from``; 4, the full-text
index ``adk_events_fts`` and its triggers; 5, memories (``adk_memories`` and its
index ``adk_memories_fts``), ``adk_usage`` (token usage per event) and the artifact
tables ``adk_artifact_blobs`` and ``adk_artifact_versions``; 6, the events' index
triggers compute the same text once, with one JSON parse per part (versions 4 and 5
computed it twice, with nine parses per part), and ``adk_counts``, the counts per app
that ``get_stats`` reads, kept by triggers (SQLite only)."""

# Migrations: MIGRATIONS[v](conn) upgrades a file from version v to v + 1. All steps
# run in one IMMEDIATE transaction when an older file is opened.


def _add_incarnation(conn: sqlite3.Connection) -> None:
    """Version 1 to 2: give every session a random ``incarnation`` (16 hex digits)."""
    conn.execute(f"ALTER TABLE {SESSIONS} ADD COLUMN incarnation TEXT NOT NULL DEFAULT ''")
    conn.execute(f"UPDATE {SESSIONS} SET incarnation = lower(hex(randomblob(8)))")


def _add_lineage(conn: sqlite3.Connection) -> None:
    """Version 2 to 3: ``initial_state`` and ``forked_from``, NULL for every existing
    session. A stored session's initial state cannot be derived (its current state
    minus the replayed deltas misses keys that were overwritten or deleted since), so
    NULL means "unknown": ``fork_session`` then replays the deltas from an empty
    state and says so in the fork's lineage (``state_exact: false``)."""
    conn.execute(f"ALTER TABLE {SESSIONS} ADD COLUMN initial_state TEXT")
    conn.execute(f"ALTER TABLE {SESSIONS} ADD COLUMN forked_from TEXT")


INDEXED_PATHS = ("$.text", "$.function_call.name", "$.function_call.args", "$.function_response.name",
                 "$.function_response.response", "$.functionCall.name", "$.functionCall.args",
                 "$.functionResponse.name", "$.functionResponse.response")
"""What the search index holds of each element of an event's ``content.parts``: every
string and number under these paths (a text, a tool call's name and argument values,
a tool response's name and values), in this order. Binary parts (``inline_data``,
``file_data``), ``state_delta`` (so ``temp:`` values too) and other fields never."""


WORD = re.compile(r"[^\W_]")
"""A letter or digit: a run of plain query text without one is no word to search for."""
SNIPPET = ("«", "»", "…", 16)
"""Snippets of search hits: the marks around a matched term, the mark of cut text, and
the most words a snippet holds (FTS5's ``snippet()``, PostgreSQL's ``ts_headline``)."""


def search_where(match: str, key: str, param: str, match_value: str, filters: list[tuple[str, str]],
                 after: Optional[tuple[float, int]]) -> tuple[list[str], list[Any]]:
    """The WHERE terms and parameters of a search page, in either dialect.

    Args:
        match: the match term (``adk_events_fts MATCH ?``, ``e.search @@ q.q``).
        key: the SQL of the page's keyset ``(rank, row)``; param: the placeholder.
        match_value: the match term's parameter; filters: ``(column, value)``
            equalities on the event row ``e``; after: the keyset to start after, or None.
    """
    where, params = [match], [match_value]
    for column, value in filters:
        where.append(f"e.{column} = {param}")
        params.append(value)
    if after is not None:
        where.append(f"{key} > ({param}, {param})")
        params.extend(after)
    return where, params


def _text_rows(body: str) -> str:
    """The FROM and WHERE clauses whose rows ``t`` are the indexed values of the body
    ``body`` (an SQL expression), in index order: each part is parsed once, by
    ``json_extract`` with every indexed path, which gives one JSON array of their values
    (null where a path is absent) in path order, and ``json_tree`` walks it."""
    paths = ", ".join(f"'{p}'" for p in INDEXED_PATHS)
    return (f"FROM json_each({body}, '$.content.parts') AS p, "
            f"json_tree(json_extract(CASE WHEN p.type = 'object' THEN p.value ELSE '{{}}' END, {paths})) AS t "
            "WHERE t.type IN ('text', 'integer', 'real')")


def search_text_sql(body: str) -> str:
    """SQL for the text the index holds of an event whose body (JSON text) is the SQL
    expression ``body``: the strings and numbers under :data:`INDEXED_PATHS` of each
    part, joined by spaces, or NULL. Any JSON shape is taken (a part that is not an
    object gives nothing); it never raises on a valid JSON body. The text is the same,
    value for value, as the nine walks of :func:`_search_text_sql_v4` (the triggers of
    schema versions 4 and 5) give."""
    return f"(SELECT group_concat(t.value, ' ') {_text_rows(body)})"


def _search_text_sql_v4(body: str) -> str:
    """:func:`search_text_sql` as schema versions 4 and 5 wrote it in their triggers
    (one ``json_tree`` per indexed path of each part): files of those versions hold it."""
    paths = "'" + "[" + ",".join(f'"{p}"' for p in INDEXED_PATHS) + "]'"
    return (f"(SELECT group_concat(t.value, ' ') FROM json_each({body}, '$.content.parts') AS p, "
            f"json_each({paths}) AS k, json_tree(CASE WHEN p.type = 'object' THEN p.value ELSE '{{}}' END, k.value) "
            "AS t WHERE t.type IN ('text', 'integer', 'real'))")


def search_table_sql() -> str:
    """The ``CREATE VIRTUAL TABLE`` statement of the search index (the ``EventText``
    model of :mod:`adk_lite.models`)."""
    return make_models(pw.SqliteDatabase(None)).EventText._schema._create_table(safe=False).query()[0]


_NEW_TEXT = f"SELECT new.id, group_concat(t.value, ' ') AS x {_text_rows('new.body')} HAVING x IS NOT NULL"
"""The row ``(rowid, text)`` the index gets of a new event, none when it has no text:
one aggregate, so the text is computed once (a subquery's column used twice is
computed twice)."""
_NEW_TEXT_V4 = f"SELECT new.id, x FROM (SELECT {_search_text_sql_v4('new.body')} AS x) WHERE x IS NOT NULL"
""":data:`_NEW_TEXT` as schema versions 4 and 5 wrote it in their triggers."""


def create_search(conn: sqlite3.Connection, new_text: str = _NEW_TEXT) -> None:
    """Create the empty search index ``adk_events_fts`` (the ``EventText`` model of
    :mod:`adk_lite.models`) and the triggers that keep it in step with ``adk_events``
    (:func:`_search_triggers`; ``new_text``: the row they index)."""
    conn.execute(search_table_sql())
    _search_triggers(conn, new_text)


def _search_triggers(conn: sqlite3.Connection, new_text: str) -> None:
    """Create the triggers of the events' index: every insert adds the event's text
    (the statement ``new_text``), every delete (the foreign key's cascade included, and
    statements written by any future code) removes it, an update of ``body`` does
    both, all in the writer's transaction."""
    conn.execute(f"CREATE TRIGGER {EVENTS_FTS}_insert AFTER INSERT ON {EVENTS} BEGIN "
                 f"INSERT INTO {EVENTS_FTS} (rowid, text) {new_text}; END")
    conn.execute(f"CREATE TRIGGER {EVENTS_FTS}_delete AFTER DELETE ON {EVENTS} BEGIN "
                 f"DELETE FROM {EVENTS_FTS} WHERE rowid = old.id; END")
    conn.execute(f"CREATE TRIGGER {EVENTS_FTS}_update AFTER UPDATE OF id, body ON {EVENTS} BEGIN "
                 f"DELETE FROM {EVENTS_FTS} WHERE rowid = old.id; INSERT INTO {EVENTS_FTS} (rowid, text) {new_text}; END")


def _add_search(conn: sqlite3.Connection) -> None:
    """Version 3 to 4: create the search index and its triggers (as version 4 made
    them), and index every stored event, in the opening transaction (a crash leaves
    version 3, untouched)."""
    create_search(conn, _NEW_TEXT_V4)
    conn.execute(f"INSERT INTO {EVENTS_FTS} (rowid, text) SELECT id, x FROM "
                 f"(SELECT id, {search_text_sql('body')} AS x FROM {EVENTS}) WHERE x IS NOT NULL")


def create_memory_tables(conn: sqlite3.Connection) -> None:
    """Create ``adk_memories`` (the ``Memory`` model of :mod:`adk_lite.models`; kept if
    it exists, as a new file's ``create_tables`` made it), its full-text index
    ``adk_memories_fts`` (FTS5 with external content: the index reads the text from
    ``adk_memories.text``, stored once) and the triggers that keep the index in step
    with every insert, delete and update of ``text`` or ``id``, in the writer's
    transaction. A row whose ``text`` is NULL (a deleted memory) is not indexed."""
    model = make_models(pw.SqliteDatabase(None)).Memory
    conn.execute(model._schema._create_table(safe=True).query()[0])
    for index in model._schema._create_indexes(safe=True):
        conn.execute(index.query()[0])
    conn.execute(f"CREATE VIRTUAL TABLE {MEMORIES_FTS} USING fts5(text, content='{MEMORIES}', content_rowid='id', "
                 f"tokenize='{TOKENIZER}')")
    add = f"INSERT INTO {MEMORIES_FTS} (rowid, text) SELECT new.id, new.text WHERE new.text IS NOT NULL;"
    remove = (f"INSERT INTO {MEMORIES_FTS} ({MEMORIES_FTS}, rowid, text) SELECT 'delete', old.id, old.text "
              "WHERE old.text IS NOT NULL;")
    conn.execute(f"CREATE TRIGGER {MEMORIES_FTS}_insert AFTER INSERT ON {MEMORIES} BEGIN {add} END")
    conn.execute(f"CREATE TRIGGER {MEMORIES_FTS}_delete AFTER DELETE ON {MEMORIES} BEGIN {remove} END")
    conn.execute(f"CREATE TRIGGER {MEMORIES_FTS}_update AFTER UPDATE OF id, text ON {MEMORIES} BEGIN "
                 f"{remove} {add} END")


def create_usage_tables(conn: sqlite3.Connection) -> None:
    """Create ``adk_usage`` (the ``Usage`` model, with its indexes) and fill it from
    the stored events (:func:`adk_lite.usage.backfill`), in the caller's transaction."""
    model = make_models(pw.SqliteDatabase(None)).Usage
    conn.execute(model._schema._create_table(safe=False).query()[0])
    for index in model._schema._create_indexes(safe=False):
        conn.execute(index.query()[0])
    usage.backfill(conn.execute, "?", "body LIKE '%usage%metadata%'")


def _to_v5(conn: sqlite3.Connection) -> None:
    """Version 4 to 5: the tables of this version's features: memories, token usage
    (filled from the stored events) and artifacts."""
    create_memory_tables(conn)
    create_usage_tables(conn)
    create_artifact_tables(conn)


COUNTED = ("sessions", "users", "events", "state_keys")
"""The columns of ``adk_counts`` after ``app_name``, in order."""


def _count(row: str, **deltas: str) -> str:
    """The statement that adds ``deltas`` (``column=SQL``) to the counts of the app of
    ``row.app_name`` (``row``: ``new`` or ``old``), making the app's row if it is missing."""
    values = ", ".join(deltas.get(c, "0") for c in COUNTED)
    sets = ", ".join(f"{c} = {c} + excluded.{c}" for c in deltas)
    return (f"INSERT INTO {COUNTS} (app_name, {', '.join(COUNTED)}) VALUES ({row}.app_name, {values}) "
            f"ON CONFLICT (app_name) DO UPDATE SET {sets};")


def create_counts(conn: sqlite3.Connection) -> None:
    """Create ``adk_counts`` (the ``AppCounts`` model of :mod:`adk_lite.models`), the
    triggers that keep it in step with every insert and delete of a session, an event or a
    state row (and a change of their app or user, which adk_lite never makes), in the
    writer's transaction, and fill it from the stored rows (SQLite; inside the caller's
    transaction). A user counts while one of their sessions is stored in the app."""
    conn.execute(make_models(pw.SqliteDatabase(None)).AppCounts._schema._create_table(safe=False).query()[0])
    session_in = _count("new", sessions="1", users=(
        f"NOT EXISTS (SELECT 1 FROM {SESSIONS} WHERE app_name = new.app_name AND user_id = new.user_id "
        "AND session_id <> new.session_id)"))
    session_out = _count("old", sessions="-1", users=(
        f"-NOT EXISTS (SELECT 1 FROM {SESSIONS} WHERE app_name = old.app_name AND user_id = old.user_id)"))
    triggers = {
        "session_insert": f"AFTER INSERT ON {SESSIONS} BEGIN {session_in} END",
        "session_delete": f"AFTER DELETE ON {SESSIONS} BEGIN {session_out} END",
        # only a real move: an UPDATE that leaves both as they were (an ORM saving every
        # column) would count the user out while the row is still theirs, then in again
        "session_update": f"AFTER UPDATE OF app_name, user_id ON {SESSIONS} "
                          "WHEN old.app_name IS NOT new.app_name OR old.user_id IS NOT new.user_id "
                          f"BEGIN {session_out} {session_in} END",
    }
    for table, name, column in ((EVENTS, "event", "events"), (STATE, "state", "state_keys")):
        add, remove = _count("new", **{column: "1"}), _count("old", **{column: "-1"})
        triggers[f"{name}_insert"] = f"AFTER INSERT ON {table} BEGIN {add} END"
        triggers[f"{name}_delete"] = f"AFTER DELETE ON {table} BEGIN {remove} END"
        triggers[f"{name}_update"] = f"AFTER UPDATE OF app_name ON {table} BEGIN {remove} {add} END"
    for name, body in triggers.items():
        conn.execute(f"CREATE TRIGGER {COUNTS}_{name} {body}")
    recount(conn)


COUNTS_SQL = (f"SELECT app_name, sum(sessions), sum(users), sum(events), sum(state_keys) FROM ("
              f"SELECT app_name, count(*) AS sessions, count(DISTINCT user_id) AS users, 0 AS events, 0 AS state_keys "
              f"FROM {SESSIONS} GROUP BY app_name UNION ALL "
              f"SELECT app_name, 0, 0, count(*), 0 FROM {EVENTS} GROUP BY app_name UNION ALL "
              f"SELECT app_name, 0, 0, 0, count(*) FROM {STATE} GROUP BY app_name) GROUP BY app_name")
"""The counts per app ``(app_name, sessions, users, events, state_keys)`` counted from the
rows themselves (what ``adk_counts`` must hold, zero rows aside; ``check`` compares them)."""


def recount(conn: sqlite3.Connection) -> None:
    """Count ``adk_counts`` again from the rows (:data:`COUNTS_SQL`), inside the caller's
    transaction; nothing when the file has no such table. The repair for counts another
    tool's ``REPLACE`` skewed: SQLite deletes the row in the way without firing delete
    triggers (unless that connection has ``recursive_triggers`` on), and no trigger can
    tell such an insert from an ``INSERT OR IGNORE`` or an upsert, which adk_lite runs."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (COUNTS,)).fetchone():
        conn.execute(f"DELETE FROM {COUNTS}")
        conn.execute(f"INSERT INTO {COUNTS} (app_name, {', '.join(COUNTED)}) {COUNTS_SQL}")


def _to_v6(conn: sqlite3.Connection) -> None:
    """Version 5 to 6: the events' index triggers made again, computing the text once
    with one parse per part (:data:`_NEW_TEXT`; the index itself is kept: its text is
    the same), and the counts per app (:func:`create_counts`), counted once from the rows."""
    for trigger in ("insert", "delete", "update"):
        conn.execute(f"DROP TRIGGER {EVENTS_FTS}_{trigger}")
    _search_triggers(conn, _NEW_TEXT)
    create_counts(conn)


MIGRATIONS: dict[int, Any] = {1: _add_incarnation, 2: _add_lineage, 3: _add_search, 4: _to_v5, 5: _to_v6}

ADDED_TABLES: dict[int, tuple[str, ...]] = {5: (MEMORIES, USAGE, *ARTIFACT_TABLES)}
"""The tables each schema version added (by its migration): a file at version v has
none of those of later versions, and all of those up to v."""


def tables_of(version: int) -> set[str]:
    """The tables of :data:`ADDED_TABLES` a file at schema ``version`` must have."""
    return {t for added_in, names in ADDED_TABLES.items() if added_in <= version for t in names}


LATER_TABLES = frozenset().union(*ADDED_TABLES.values())
"""Every table a migration added (not in :data:`adk_lite.models.TABLES`)."""


def tables_at(version: int) -> tuple[str, ...]:
    """The tables a file at schema ``version`` must have (the search indexes aside), in
    creation order."""
    return TABLES + tuple(t for added_in, names in sorted(ADDED_TABLES.items()) if added_in <= version for t in names)


ALL_TABLES: tuple[str, ...] = tables_at(SCHEMA_VERSION)
"""Every table of the current schema (the search indexes aside)."""


def table_version(table: str) -> int:
    """The schema version that added ``table`` (1 for the first release's tables)."""
    return next((v for v, names in ADDED_TABLES.items() if table in names), 1)


def create_all(peewee: pw.SqliteDatabase, models: Any, conn: sqlite3.Connection) -> None:
    """Create every table, index, trigger and virtual table of :data:`SCHEMA_VERSION`
    in the empty SQLite database ``peewee`` (``conn``: its connection), inside the
    caller's transaction: the one way a new file is made (also in memory, to know
    what a file must hold: :mod:`adk_lite.schema_check`)."""
    peewee.create_tables(models.all, safe=True)
    create_search(conn)
    create_memory_tables(conn)
    create_counts(conn)


def create_tables_sql(names: tuple[str, ...]) -> list[str]:
    """The SQLite statements that create the tables ``names`` (with their indexes) as
    the models define them, in model order."""
    statements = []
    for model in make_models(pw.SqliteDatabase(None)).all:
        if model._meta.table_name in names:
            statements.append(model._schema._create_table(safe=True).query()[0])
            statements.extend(q.query()[0] for q in model._schema._create_indexes(safe=True))
    return statements


def create_artifact_tables(conn: sqlite3.Connection) -> None:
    """Part of version 4 to 5: create the empty artifact tables (:data:`ARTIFACT_TABLES`)."""
    for statement in create_tables_sql(ARTIFACT_TABLES):
        conn.execute(statement)

VERSION_1_TABLES = (SESSIONS, EVENTS, STATE, METADATA)
"""The tables of the first release (schema version 1), with their indexes: every later
object was made by a migration, so what a file of any version holds is derived from
them and :data:`MIGRATIONS` (see :mod:`adk_lite.schema_check`)."""

ADDED_COLUMNS: dict[int, dict[str, set[str]]] = {2: {SESSIONS: {"incarnation"}},
                                                 3: {SESSIONS: {"initial_state", "forked_from"}}}
"""The columns each schema version added (by its migration), per table: a file at
version v has the models' columns minus those added by the versions above v."""


def _added_after(version: int) -> dict[str, set[str]]:
    """The columns (per table) that the migrations from schema ``version`` add."""
    added: dict[str, set[str]] = {}
    for added_in, tables in ADDED_COLUMNS.items():
        if added_in > version:
            for table, names in tables.items():
                added.setdefault(table, set()).update(names)
    return added


def expected_columns(version: int) -> dict[str, set[str]]:
    """The columns each table of a file at schema ``version`` (:func:`tables_at`) has:
    those of the models in :mod:`adk_lite.models`, minus :data:`ADDED_COLUMNS` of later versions."""
    later, present = _added_after(version), set(tables_at(version))
    return {m._meta.table_name: {f.column_name for f in m._meta.sorted_fields} - later.get(m._meta.table_name, set())
            for m in make_models(pw.SqliteDatabase(None)).all if m._meta.table_name in present}


def _model_keys() -> dict[str, set[frozenset]]:
    """The unique keys (primary key and unique indexes, as column sets) of each table,
    from the models: the statements rely on them (upserts, duplicate event ids)."""
    keys = {}
    for model in make_models(pw.SqliteDatabase(None)).all:
        pk = model._meta.primary_key
        found = {frozenset(pk.field_names if isinstance(pk, pw.CompositeKey) else [pk.column_name])}
        found.update(frozenset(names) for names, unique in model._meta.indexes if unique)
        keys[model._meta.table_name] = found
    return keys


def check_columns(columns: dict[str, dict[str, bool]], keys: dict[str, set[frozenset]], version: int,
                   path: str) -> None:
    """Refuse a file whose tables lack a column of schema ``version`` or a unique key,
    already have a column that a migration will add, or have an extra column our
    inserts cannot fill (NOT NULL without a default).

    ``columns``: table -> column -> NOT NULL-without-default; ``keys``: table -> the
    column sets of its primary key and unique indexes (only tables in ``columns`` are checked).
    """
    problems = []
    expected, added, wanted_keys = expected_columns(version), _added_after(version), _model_keys()
    for table, have in columns.items():
        newer = [v for v, names in ADDED_TABLES.items() if table in names and v > version]
        if newer:
            problems.append(f"it has the table {table}, which schema_version {version} does not")
            continue
        wanted = expected[table]
        missing = sorted(wanted - have.keys())
        later = sorted(have.keys() & added.get(table, set()))
        blocking = sorted(c for c, required in have.items() if required and c not in wanted)
        if missing:
            problems.append(f"{table} lacks the columns {', '.join(missing)}")
        if later:
            problems.append(f"{table} already has {', '.join(later)}, which schema_version {version} does not")
        if blocking:
            problems.append(f"{table} has unknown required columns {', '.join(blocking)}")
        for key in sorted(wanted_keys[table] - keys[table], key=sorted):
            problems.append(f"{table} has no unique key on ({', '.join(sorted(key))})")
    if problems:
        raise errors.ForeignDatabaseError(
            f"{path} has adk_lite's tables but not their columns: {'; '.join(problems)}")


def check_version(row: Optional[tuple], path: str) -> int:
    """Return the ``schema_version`` held in ``row`` (a row of its text value, or None)
    if this release can open it (at once or by :data:`MIGRATIONS`).

    Raises:
        CorruptDatabaseError: no row, or not a version number: only ASCII digits
            without sign, spaces or leading zeros (``'²'``, ``' 2'``, ``'2.0'`` are refused).
        SchemaVersionError: newer than :data:`SCHEMA_VERSION`, or too old to migrate.
    """
    value = row[0] if row else None
    if not isinstance(value, str) or not re.fullmatch(r"[1-9][0-9]*", value):
        raise errors.CorruptDatabaseError(
            f"database {path} has no valid schema_version in {METADATA} (it holds {value!r:.40})")
    if len(value) > len(str(SCHEMA_VERSION)) or int(value) > SCHEMA_VERSION:
        raise errors.SchemaVersionError(
            f"database {path} has schema_version {value:.30}, newer than this adk_lite "
            f"understands ({SCHEMA_VERSION}); upgrade adk_lite to open it"
        )
    version = int(value)
    if version < SCHEMA_VERSION and any(v not in MIGRATIONS for v in range(version, SCHEMA_VERSION)):
        raise errors.SchemaVersionError(f"database {path} has schema_version {version}, which cannot be migrated")
    return version
