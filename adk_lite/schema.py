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
from .models import METADATA, SESSIONS, make_models

SCHEMA_VERSION = 3
"""The schema this release writes. Files with a higher version are refused.

History: 1, the first release; 2, ``adk_sessions.incarnation``; 3,
``adk_sessions.initial_state`` and ``adk_sessions.forked_from``."""

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
    state and says so in the fork's lineage (``initial_state_known: false``)."""
    conn.execute(f"ALTER TABLE {SESSIONS} ADD COLUMN initial_state TEXT")
    conn.execute(f"ALTER TABLE {SESSIONS} ADD COLUMN forked_from TEXT")


MIGRATIONS: dict[int, Any] = {1: _add_incarnation, 2: _add_lineage}

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
    """The columns each of :data:`TABLES` has in a file at schema ``version``: those of
    the models in :mod:`adk_lite.models`, minus :data:`ADDED_COLUMNS` of later versions."""
    later = _added_after(version)
    return {m._meta.table_name: {f.column_name for f in m._meta.sorted_fields} - later.get(m._meta.table_name, set())
            for m in make_models(pw.SqliteDatabase(None)).all}


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
