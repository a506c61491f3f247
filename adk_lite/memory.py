"""Memories: the rows behind ADK's memory service (``adk_lite.adk.DatabaseMemoryService``),
stored in the same database as the sessions, with their full-text index.

A memory is a row of ``adk_memories`` (see :mod:`adk_lite.models`): an ``(app_name,
user_id)`` scope, a ``memory_id`` unique in it, the session and event it came from
(``''`` for a memory added explicitly), ``author``, ``timestamp`` (epoch seconds) and
``body``, JSON text ``{"content": <genai Content as JSON>, "custom_metadata": {...},
"timestamp": <the text given, explicit memories only>}``. This module knows no
``google.adk`` type: the adapter turns ADK objects into :class:`MemoryRow` and back.

What is indexed: the strings and numbers of ``body.content.parts`` under
:data:`adk_lite.schema.INDEXED_PATHS` (text, a tool call's name and arguments, a tool
response), extracted by the same SQL as the events' index (``search_text_sql`` on
SQLite, ``adk_lite_search_text`` on PostgreSQL), then passed through :func:`index_text`:
NFC, and a space around each character of a script written without spaces (Chinese,
Japanese, Thai, ...), so a word inside such text (``Python`` in ``私はPythonを使う``)
and a run of such characters are found (as ADK's in-memory service finds them). The
result is the ``text`` column; FTS5 (``unicode61 remove_diacritics 2``) or a
``tsvector`` (``adk_lite_words``: accents removed, non-alphanumerics split) index it.

How a query matches (:func:`query_words`): its words, a word being a run of letters,
digits and combining marks, so punctuation and operators (``"``, ``*``, ``NEAR(``,
``-``, ``OR``, ``col:``) only separate words and are never syntax; a memory matches
when it holds ANY of the words (as ADK's in-memory service: the ``load_memory`` tool
asks with a sentence, and all-words would find nothing for most sentences); results
are ranked by bm25 (SQLite) or ``ts_rank`` (PostgreSQL), so memories holding more of
the words, and rarer ones, come first. A word of an unspaced script is matched as
the sequence of its characters. Case and accents are ignored; NFC and NFD are equal.

Deleting a memory that came from an event leaves a marker (``body`` and ``text``
NULL, no content), so adding the same session again does not bring it back; deleting
a session (or pruning it) deletes the memories that came from it, markers included,
except those added with ``outlives_session`` set; erasing a user deletes all of them.
"""

from __future__ import annotations

import functools
import hashlib
import operator
import re
import unicodedata
from typing import Any, NamedTuple, Optional, Sequence

import peewee as pw

from . import codec, schema
from .compiled import compile_query, literal, once_per_database, param
from .models import MEMORIES, MEMORIES_FTS

MAX_RESULTS = 10
"""Default number of memories a search returns at most (ADK's in-memory service returns 10)."""
MAX_QUERY_CHARS = 4096
"""Characters of a query that are read; the rest is ignored (a query is never refused for its length)."""
MAX_QUERY_WORDS = 64
"""Distinct words of a query that are searched for; later ones are ignored."""

_UNSPACED = re.compile("[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u2e80-\u2fdf\u3005-\u3007\u3040-\u30ff"
                       "\u3100-\u312f\u31a0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
                       "\U00020000-\U0003134f]")
"""Characters of scripts written without spaces between words: Thai, Lao, Myanmar,
Khmer, CJK ideographs, Hiragana, Katakana, Bopomofo."""


class MemoryRow(NamedTuple):
    """One memory as stored: ``body`` is JSON text, or None for a deleted memory (a
    marker); ``timestamp`` and ``created_at`` are epoch seconds; ``outlives_session``
    is True when deleting its session keeps it."""

    app_name: str
    user_id: str
    memory_id: str
    session_id: str
    event_id: str
    author: Optional[str]
    timestamp: float
    body: Optional[str]
    outlives_session: bool
    created_at: float


COLUMNS = MemoryRow._fields
"""The columns of ``adk_memories`` a :class:`MemoryRow` holds, in its order."""


def index_text(text: str) -> str:
    """The text that is indexed for ``text``: NFC, with a space on each side of every
    character of a script written without spaces (:data:`_UNSPACED`)."""
    text = unicodedata.normalize("NFC", text)
    if text.isascii():
        return text
    return _UNSPACED.sub(lambda m: f" {m.group()} ", text)


def query_words(query: str) -> list[str]:
    """The words a plain ``query`` searches for, each as :func:`index_text` makes it.

    A word is a run of letters, digits and combining marks (Unicode categories L, N,
    M) holding a letter or digit; anything else separates words. Words are NFC,
    compared case-insensitively for duplicates; at most :data:`MAX_QUERY_WORDS` of the
    first :data:`MAX_QUERY_CHARS` characters. ``[]`` when the query has no word.

    Raises:
        TypeError: ``query`` is not a str.
    """
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, not {type(query).__name__}")
    text = unicodedata.normalize("NFC", query[:MAX_QUERY_CHARS].encode("utf-8", "replace").decode("utf-8"))
    words: list[str] = []
    seen: set[str] = set()
    for run in re.split(r"\s+", text):
        word = []
        for ch in run + " ":
            if unicodedata.category(ch)[0] in "LNM":
                word.append(ch)
                continue
            found = "".join(word)
            word = []
            if found and schema.WORD.search(found) and found.casefold() not in seen:
                seen.add(found.casefold())
                words.append(index_text(found).strip())
                if len(words) == MAX_QUERY_WORDS:
                    return words
    return words


def event_memory_id(session_id: str, event_id: str) -> str:
    """The id of the memory made of an event: the same for the same ``(session_id,
    event_id)`` in any process, so adding a session again adds no duplicate."""
    return "ev-" + hashlib.sha256(codec.dumps([session_id, event_id]).encode()).hexdigest()[:32]


def entry_memory_id(body: str, author: Optional[str]) -> str:
    """The id given to an explicit memory without one: a digest of its body and author,
    so adding the same entry again (in any process) stores it once."""
    return "mem-" + hashlib.sha256(codec.dumps([body, author]).encode()).hexdigest()[:32]


def _sqlite(db: Any) -> bool:
    return isinstance(db.peewee, pw.SqliteDatabase)


_MEMBERS = ", ".join(f"m.{c}" for c in COLUMNS)
# Raw SQL where Peewee cannot say it: the indexes' own query languages.
_SEARCH_FTS5 = (  # FTS5's MATCH and bm25 rank, joined to the rows by rowid
    f"SELECT {_MEMBERS} FROM {MEMORIES_FTS} JOIN {MEMORIES} AS m ON m.id = {MEMORIES_FTS}.rowid "
    f"WHERE {MEMORIES_FTS} MATCH ? AND m.app_name = ? AND m.user_id = ? AND m.body IS NOT NULL "
    f"ORDER BY {MEMORIES_FTS}.rank, m.id LIMIT ?")
_SEARCH_TSVECTOR = (  # any word: the words' phrase tsqueries OR-ed, matched against the tsvector column
    "WITH q AS (SELECT (SELECT string_agg('(' || w.q::text || ')', ' | ') FROM (SELECT "
    "phraseto_tsquery('simple'::regconfig, adk_lite_words(r)) AS q FROM jsonb_array_elements_text(%s::jsonb) "
    "AS r) AS w WHERE numnode(w.q) > 0)::tsquery AS q) "
    f"SELECT {_MEMBERS} FROM {MEMORIES} AS m CROSS JOIN q WHERE m.app_name = %s AND m.user_id = %s "
    "AND m.search @@ q.q AND m.body IS NOT NULL ORDER BY -ts_rank(m.search, q.q), m.id LIMIT %s")
_TEXT_SQLITE = f"SELECT {schema.search_text_sql('?')}"  # the events' index extraction (json_tree), on one body
_TEXT_POSTGRES = "SELECT adk_lite_search_text(%s::json)"  # the same, the SQL function the tsvector columns use


def _statements(db: Any) -> dict[str, str]:
    """The memory statements Peewee can say, compiled from ``db``'s ``Memory`` model
    (:func:`adk_lite.compiled.once_per_database` keeps them: use :func:`_sql`)."""
    M = db.models.Memory
    scope = (M.app_name == param("app")) & (M.user_id == param("user"))
    live = scope & M.body.is_null(False)
    columns = (*COLUMNS, "text")
    keep = ("session_id", "event_id", "author", "timestamp", "body", "text", "outlives_session")
    insert = M.insert_many([tuple(param(c) for c in columns)], fields=[getattr(M, c) for c in columns]).returning()
    target = [M.app_name, M.user_id, M.memory_id]
    sql = {
        "forget_sessions": compile_query(
            M.delete().where(scope & (M.session_id == param("session")) & (M.outlives_session == pw.SQL("0"))),
            "app", "user", "session"),
        "count": compile_query(M.select(pw.fn.COUNT(pw.SQL("*"))).where(M.body.is_null(False))),
        "insert": compile_query(insert.on_conflict(conflict_target=target, action="NOTHING"), *columns),
        "insert_replace": compile_query(
            insert.on_conflict(conflict_target=target, update={getattr(M, c): getattr(pw.EXCLUDED, c) for c in keep}),
            *columns),
    }
    for suffix, cond, names in (("", live, ("app", "user")),
                                ("_one", live & (M.memory_id == param("memory")), ("app", "user", "memory"))):
        # a memory of an event becomes a marker (so re-adding the event does nothing); an explicit one goes
        sql["mark_deleted" + suffix] = compile_query(
            M.update({M.body: pw.SQL("NULL"), M.text: pw.SQL("NULL"), M.author: pw.SQL("NULL")})
            .where(cond & (M.event_id != literal(""))), *names)
        sql["delete" + suffix] = compile_query(M.delete().where(cond & (M.event_id == literal(""))), *names)
    for names in ((), ("app",), ("user",), ("app", "user")):
        query = M.select(*(getattr(M, c) for c in COLUMNS)).order_by(M.app_name, M.user_id, M.id)
        if names:
            query = query.where(functools.reduce(operator.and_, (
                (M.app_name if n == "app" else M.user_id) == param(n) for n in names)))
        sql["rows_" + "_".join(names or ("all",))] = compile_query(query, *names)
    sql["text"] = _TEXT_SQLITE if _sqlite(db) else _TEXT_POSTGRES
    sql["search"] = _SEARCH_FTS5 if _sqlite(db) else _SEARCH_TSVECTOR
    return sql


def _sql(db: Any) -> dict[str, str]:
    """The memory statements of the open backend ``db``, compiled on first use."""
    return once_per_database(db, _statements)


def forget_sessions_sql(db: Any) -> str:
    """The statement, run with ``(app_name, user_id, session_id)``, that deletes the
    memories of a deleted session (markers included), except those that outlive it."""
    return _sql(db)["forget_sessions"]


def count(db: Any, conn: Any) -> int:
    """The number of memories (not the markers of deleted ones); 0 when the database
    predates them (schema version 4, opened read-only)."""
    if MEMORIES not in db.tables(conn):
        return 0
    return conn.execute(_sql(db)["count"]).fetchone()[0]


def _text(db: Any, conn: Any, body: Optional[str]) -> Optional[str]:
    """The indexed text of a body (``''`` when it has none), None for a marker."""
    if body is None:
        return None
    raw = conn.execute(_sql(db)["text"], (body,)).fetchone()[0]
    return index_text(str(raw)) if raw is not None else ""


def add(store: Any, rows: Sequence[MemoryRow], *, replace: bool = False, skip_empty: bool = False) -> int:
    """Store memories in ONE write transaction.

    Args:
        store: an open :class:`adk_lite.store.Store`.
        rows: memories; their ids must be unique within ``(app_name, user_id)``.
        replace: a row whose id is stored already replaces it (explicit memories);
            else it is left as stored (memories of events: adding a session again
            adds only what is new, and a deleted one stays deleted).
        skip_empty: leave out rows whose content has no text to index (events
            without text, such as a state change).

    Returns:
        How many rows were written (inserted, or replaced).

    Raises:
        ValueError: a JSON text PostgreSQL cannot hold (a NUL character).
        DatabaseError: see :meth:`adk_lite.backend.Backend.translate`; nothing is written.
    """
    db = store.db
    if db.check_json is not None:
        db.check_json([r.body for r in rows if r.body is not None])
    if db.check_keys is not None:
        db.check_keys([(name, value) for r in rows for name, value in (
            ("app_name", r.app_name), ("user_id", r.user_id), ("memory id", r.memory_id),
            ("session_id", r.session_id))])
    sql = _sql(db)["insert_replace" if replace else "insert"]

    def run(conn: Any) -> int:
        written = 0
        for row in rows:
            text = _text(db, conn, row.body)
            if skip_empty and not (text or "").strip():
                continue
            values = (*row[:-2], int(row.outlives_session), row.created_at, text)
            written += max(conn.execute(sql, values).rowcount, 0)
        return written
    return store.write(run)


def search(store: Any, app_name: str, user_id: str, query: str, limit: int = MAX_RESULTS) -> list[MemoryRow]:
    """The memories of one ``(app_name, user_id)`` holding any word of ``query``
    (:func:`query_words`), best first (bm25 on SQLite, ``-ts_rank`` on PostgreSQL,
    without the length normalization ``search_events`` uses, so a memory holding more
    of the words comes before a shorter one holding fewer, as ADK's in-memory service
    ranks; then the order they were stored), at most ``limit``.
    Never a memory of another app or user, and never a deleted one; ``[]`` for a
    query without a word. One read transaction.

    Raises:
        TypeError: ``query`` is not a str.
        DatabaseError: the database predates memories and was opened read-only.
    """
    words = query_words(query)
    if not words:
        return []
    db = store.db
    sql = _sql(db)["search"]
    if _sqlite(db):
        match = " OR ".join(f'"{w}"' for w in words)  # words hold letters, digits, marks and spaces only
        params: tuple = (match, app_name, user_id, limit)
    else:
        params = (codec.dumps(words), app_name, user_id, limit)
    return [_row(r) for r in store.read(lambda conn: conn.execute(sql, params).fetchall())]


def _row(r: Sequence[Any]) -> MemoryRow:
    body = r[7]
    if body is not None and not isinstance(body, str):
        body = codec.dumps(body)
    return MemoryRow(*r[:7], body, bool(r[8]), r[9])


def delete(store: Any, app_name: str, user_id: str, memory_id: Optional[str] = None) -> int:
    """Delete one memory of ``(app_name, user_id)`` by id, or all of theirs (None), in
    one write transaction. A memory of an event becomes a marker (content gone,
    re-adding the event does nothing); an explicit one is deleted. An unknown id, or
    one of another scope, deletes nothing.

    Returns:
        How many memories were deleted.
    """
    sql, suffix, params = _sql(store.db), "", (app_name, user_id)
    if memory_id is not None:
        suffix, params = "_one", (app_name, user_id, memory_id)

    def run(conn: Any) -> int:
        gone = conn.execute(sql["mark_deleted" + suffix], params).rowcount
        return gone + conn.execute(sql["delete" + suffix], params).rowcount
    return store.write(run)


def rows(store: Any, app_name: Optional[str] = None, user_id: Optional[str] = None) -> list[MemoryRow]:
    """Every stored memory (markers of deleted ones included), optionally of one app
    and/or user, ordered by app, user and the order they were stored; one read."""
    given = [(name, value) for name, value in (("app", app_name), ("user", user_id)) if value is not None]
    sql, params = _sql(store.db)["rows_" + "_".join([n for n, _ in given] or ["all"])], [v for _, v in given]

    def run(conn: Any) -> list[MemoryRow]:
        if MEMORIES not in store.db.tables(conn):
            return []
        return [_row(r) for r in conn.execute(sql, params).fetchall()]
    return store.read(run)
