"""Peewee models: the one definition of adk_lite's schema.

Models are made per database by :func:`make_models`, so two services on two files
in one process never share a binding. The hot paths do not build queries from
these models per call: :mod:`adk_lite.store` compiles each statement once with
``query.sql()``.

Tables (``''``, never NULL, stands for an id that does not apply, because SQLite
treats NULLs in a key as distinct):

- ``adk_sessions``: one row per session, PK ``(app_name, user_id, session_id)``;
  ``created_at`` / ``updated_at`` are epoch seconds (REAL: a double; ``DoubleField``, since
  Peewee's ``FloatField`` is a 4-byte ``REAL`` on PostgreSQL); ``revision`` counts writes;
  ``incarnation`` is a random id given at creation (16 hex digits), so a session deleted
  and created again under the same id is told apart from the old one (schema version 2);
  ``initial_state`` is the session-scope state ``create_session`` gave, as a JSON object
  (NULL: unknown, for sessions made before schema version 3 or imported), and
  ``forked_from`` the lineage of a session made by ``fork_session`` as a JSON object
  (NULL: not a fork) (schema version 3).
- ``adk_events``: one row per event; the integer ``id`` (rowid) is append order;
  ``body`` is the event's JSON minus the columns. UNIQUE ``(app_name, user_id,
  session_id, event_id)``; index ``(app_name, user_id, session_id, timestamp, id)``.
- ``adk_state``: one row per state key; ``scope`` is ``app``, ``user`` or
  ``session``; ``state_value`` is JSON text.
- ``adk_metadata``: ``key``/``value`` pairs, at least ``schema_version``.
- ``adk_usage``: one row per stored event that carried ``usage_metadata`` (schema
  version 5): the event's ids, ``model`` (its ``model_version``, NULL when it had
  none), ``timestamp``, ``day`` (the UTC date ``YYYY-MM-DD`` of ``timestamp``) and six
  token counts; PK ``(app_name, user_id, timestamp, session_id, event_id)`` (``WITHOUT
  ROWID`` on SQLite: one user's rows in a time range are one sequential read), UNIQUE
  ``(app_name, user_id, session_id, event_id)``, index ``(user_id, timestamp)``; deleted with its
  session (the foreign key's ``ON DELETE CASCADE``), kept when its event is trimmed.
  Written by :mod:`adk_lite.usage`'s rules in the appending transaction.
- ``adk_artifact_versions`` (schema version 5): one row per saved version of an ADK
  artifact, PK ``(app_name, user_id, session_id, filename, version)``; ``session_id``
  is ``''`` for a user-scoped (``user:``) artifact; ``kind`` is ``text``, ``inline``
  (``inline_data``) or ``file`` (``file_data``, no bytes); ``part`` is the rest of the
  ``Part`` as JSON (its fields but the bytes or text); ``sha256`` names the bytes in
  ``adk_artifact_blobs`` (NULL for ``file``), ``size`` their length; ``create_time``
  epoch seconds; ``custom_metadata`` a JSON object.
- ``adk_artifact_blobs`` (schema version 5): the bytes of artifacts, content-addressed:
  PK ``sha256`` (64 hex digits), ``size``, ``data`` (BLOB; ``bytea`` on PostgreSQL).
  Identical bytes are stored once, however many versions refer to them.
- ``adk_events_fts``: the full-text index of events (schema version 4), an FTS5 table
  (``playhouse.sqlite_ext.FTS5Model``) with one column ``text``, ``rowid`` = the
  event's ``id``; kept in step by triggers on ``adk_events`` (see
  :mod:`adk_lite.schema`). It stores its own copy of the indexed text.
- ``adk_memories``: one row per memory (ADK's memory service, schema version 5): the
  integer ``id`` (rowid of the index), ``app_name``, ``user_id``, ``memory_id`` (UNIQUE
  with them), ``session_id`` and ``event_id`` it came from (``''`` for an explicit
  memory), ``author`` (NULL: none), ``timestamp`` (epoch seconds), ``body`` (JSON: the
  ``content``, ``custom_metadata`` and a given ``timestamp`` text; NULL once the memory
  was deleted, a marker that keeps a later re-add of its event out), ``text`` (the
  words indexed, see :mod:`adk_lite.memory`; NULL when deleted), ``outlives_session``
  (1: kept when its session is deleted) and ``created_at``.
- ``adk_counts`` (schema version 6, SQLite only): per app, how many sessions, users
  (distinct ``user_id`` with a session), events and state keys it has, kept by triggers
  in each writer's transaction (see :mod:`adk_lite.schema`), so ``get_stats`` reads them
  instead of counting every row. A row is never deleted (an app with nothing left has zeros).
- ``adk_memories_fts``: its full-text index on SQLite, an FTS5 table with external
  content (``text`` of ``adk_memories``), kept in step by triggers; on PostgreSQL a
  generated ``tsvector`` column ``search`` with a GIN index instead.
"""

from __future__ import annotations

from types import SimpleNamespace

import peewee as pw
from playhouse.sqlite_ext import FTS5Model, SearchField

SESSIONS, EVENTS, STATE, METADATA = "adk_sessions", "adk_events", "adk_state", "adk_metadata"
TABLES = (SESSIONS, EVENTS, STATE, METADATA)
USAGE = "adk_usage"
"""Token usage per event (schema version 5; not in :data:`TABLES`, which every version has)."""
EVENTS_FTS = "adk_events_fts"
"""The full-text index of events (not in :data:`TABLES`: a file of schema version 2 lacks it)."""
MEMORIES = "adk_memories"
"""Memories (schema version 5): ADK's ``BaseMemoryService`` on the same database."""
MEMORIES_FTS = "adk_memories_fts"
"""The full-text index of memories on SQLite (FTS5, external content: ``adk_memories.text``)."""
ARTIFACT_VERSIONS, ARTIFACT_BLOBS = "adk_artifact_versions", "adk_artifact_blobs"
ARTIFACT_TABLES = (ARTIFACT_BLOBS, ARTIFACT_VERSIONS)
"""The artifact tables (schema version 5), in creation order: the versions' foreign key
needs the blobs first."""
COUNTS = "adk_counts"
"""The counts per app (schema version 6, SQLite only: on PostgreSQL, where writers run at
once, a counter row would make every append of an app wait for the one before)."""
TOKENIZER = "unicode61 remove_diacritics 2"
"""FTS5's tokenizer for the index: Unicode case folding, accents removed (``café`` =
``cafe``); a run of CJK characters without spaces is one token."""


class JsonTextField(pw.TextField):
    """JSON written by orjson as text: ``TEXT`` on SQLite (its JSON functions read it),
    ``json`` on PostgreSQL (see :mod:`adk_lite.postgres`: its JSON operators read it)."""

    field_type = "JSON"


def make_models(db: pw.Database) -> SimpleNamespace:
    """Create model classes bound to ``db``.

    Returns:
        A namespace with ``Session``, ``Event``, ``State``, ``Metadata``, ``Memory``,
        ``Usage``, ``ArtifactBlob`` and ``ArtifactVersion`` models, and ``all``, the list of them
        in creation order; and ``EventText``, the
        FTS5 index of events (created by :func:`adk_lite.schema.create_search`
        with its triggers, not by ``all``), and ``AppCounts``, the counts per app
        (SQLite only: created by :func:`adk_lite.schema.create_counts` with its triggers).
    """

    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Scoped(Base):
        """The two names every table of a user's data starts with."""

        app_name = pw.TextField()
        user_id = pw.TextField()

    class Keyed(Scoped):
        """The three ids a session's tables are keyed by."""

        session_id = pw.TextField()

    class Session(Keyed):
        created_at = pw.DoubleField()
        updated_at = pw.DoubleField()
        revision = pw.IntegerField(default=0)
        incarnation = pw.TextField()
        initial_state = pw.TextField(null=True)
        forked_from = pw.TextField(null=True)

        class Meta:
            table_name = SESSIONS
            primary_key = pw.CompositeKey("app_name", "user_id", "session_id")
            indexes = (
                (("app_name", "user_id", "updated_at", "session_id"), False),
                (("app_name", "updated_at", "user_id", "session_id"), False),
            )

    class Event(Keyed):
        id = pw.BigAutoField()
        event_id = pw.TextField()
        invocation_id = pw.TextField()
        author = pw.TextField()
        branch = pw.TextField(null=True)
        timestamp = pw.DoubleField()
        body = JsonTextField()

        class Meta:
            table_name = EVENTS
            indexes = (
                (("app_name", "user_id", "session_id", "event_id"), True),
                (("app_name", "user_id", "session_id", "timestamp", "id"), False),
            )
            constraints = [
                pw.SQL(
                    f"FOREIGN KEY (app_name, user_id, session_id) REFERENCES {SESSIONS} "
                    "(app_name, user_id, session_id) ON DELETE CASCADE"
                )
            ]

    class State(Keyed):
        scope = pw.TextField()
        state_key = pw.TextField()
        state_value = JsonTextField()
        updated_at = pw.DoubleField()

        class Meta:
            table_name = STATE
            primary_key = pw.CompositeKey("app_name", "user_id", "session_id", "scope", "state_key")
            without_rowid = isinstance(db, pw.SqliteDatabase)  # a SQLite table option only

    class Usage(Keyed):
        """One row per stored event that carried ``usage_metadata`` (see :mod:`adk_lite.usage`)."""

        event_id = pw.TextField()
        invocation_id = pw.TextField()
        model = pw.TextField(null=True)
        timestamp = pw.DoubleField()
        day = pw.TextField()
        prompt_tokens = pw.BigIntegerField()
        output_tokens = pw.BigIntegerField()
        cached_tokens = pw.BigIntegerField()
        thoughts_tokens = pw.BigIntegerField()
        tool_use_prompt_tokens = pw.BigIntegerField()
        total_tokens = pw.BigIntegerField()

        class Meta:
            table_name = USAGE
            # rows of one user lie together in time order: a user's range is one sequential read
            primary_key = pw.CompositeKey("app_name", "user_id", "timestamp", "session_id", "event_id")
            without_rowid = isinstance(db, pw.SqliteDatabase)  # a SQLite table option only
            indexes = (
                (("app_name", "user_id", "session_id", "event_id"), True),
                (("user_id", "timestamp"), False),
            )
            constraints = [
                pw.SQL(
                    f"FOREIGN KEY (app_name, user_id, session_id) REFERENCES {SESSIONS} "
                    "(app_name, user_id, session_id) ON DELETE CASCADE"
                )
            ]

    class EventText(FTS5Model):
        """One row per event with text to search (``rowid`` = ``adk_events.id``)."""

        text = SearchField()

        class Meta:
            database = db
            table_name = EVENTS_FTS
            options = {"tokenize": TOKENIZER}

    class AppCounts(Base):
        """Per app: sessions, users, events and state keys (SQLite only, kept by triggers)."""

        app_name = pw.TextField(primary_key=True)
        sessions = pw.BigIntegerField(default=0)
        users = pw.BigIntegerField(default=0)
        events = pw.BigIntegerField(default=0)
        state_keys = pw.BigIntegerField(default=0)

        class Meta:
            table_name = COUNTS
            without_rowid = True

    class Memory(Scoped):
        id = pw.BigAutoField()
        memory_id = pw.TextField()
        # the session and event it came from: '' for a memory added explicitly
        session_id = pw.TextField()
        event_id = pw.TextField()
        author = pw.TextField(null=True)
        timestamp = pw.DoubleField()
        body = JsonTextField(null=True)
        text = pw.TextField(null=True)
        outlives_session = pw.IntegerField()
        created_at = pw.DoubleField()

        class Meta:
            table_name = MEMORIES
            indexes = (
                (("app_name", "user_id", "memory_id"), True),
                (("app_name", "user_id", "session_id"), False),
            )

    class Metadata(Base):
        key = pw.TextField(primary_key=True)
        value = pw.TextField()

        class Meta:
            table_name = METADATA

    class ArtifactBlob(Base):
        """The bytes of artifacts, once per distinct content (``data`` last: a scan of
        the keys reads no overflow pages)."""

        sha256 = pw.TextField(primary_key=True)
        size = pw.BigIntegerField()
        data = pw.BlobField()

        class Meta:
            table_name = ARTIFACT_BLOBS

    class ArtifactVersion(Keyed):
        """One saved version of an artifact; ``session_id`` ``''``: user-scoped."""

        filename = pw.TextField()
        version = pw.IntegerField()
        kind = pw.TextField()
        mime_type = pw.TextField(null=True)
        part = JsonTextField()
        custom_metadata = JsonTextField()
        sha256 = pw.TextField(null=True)
        size = pw.BigIntegerField()
        create_time = pw.DoubleField()

        class Meta:
            table_name = ARTIFACT_VERSIONS
            primary_key = pw.CompositeKey("app_name", "user_id", "session_id", "filename", "version")
            indexes = ((("sha256",), False),)
            constraints = [pw.SQL(f"FOREIGN KEY (sha256) REFERENCES {ARTIFACT_BLOBS} (sha256)")]

    return SimpleNamespace(Session=Session, Event=Event, State=State, Metadata=Metadata, EventText=EventText,
                           AppCounts=AppCounts, Memory=Memory, Usage=Usage, ArtifactBlob=ArtifactBlob,
                           ArtifactVersion=ArtifactVersion,
                           all=[Session, Event, State, Metadata, Memory, Usage, ArtifactBlob, ArtifactVersion])
