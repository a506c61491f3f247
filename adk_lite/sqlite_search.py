"""Full-text search on SQLite's FTS5 index: one page of ranked hits with their
snippets, the FTS5 query for plain text, and the check of a raw query. The
methods of :class:`~adk_lite.sqlite.SqliteBackend` of the same names call these."""

from __future__ import annotations

import sqlite3
from typing import Any, Optional

from . import codec, errors, schema
from .models import EVENTS, EVENTS_FTS, TOKENIZER


def search(backend: Any, conn: sqlite3.Connection, match: str, filters: list[tuple[str, str]],
           limit: int, after: Optional[tuple[float, int]]) -> list[tuple]:
    """One page of full-text hits from the FTS5 index, ranked by bm25 (lower is better).

    Args:
        backend: the :class:`~adk_lite.sqlite.SqliteBackend` (its ``path``, ``tables``,
            ``json_array_values``).
        match: an FTS5 query (:func:`match_query`, or checked raw text).
        filters: ``(column, value)`` equalities on the event row.
        limit: page size; after: the keyset ``(rank, rowid)`` to start after, or None.

    Returns:
        ``(app_name, user_id, session_id, event_id, invocation_id, author,
        timestamp, rank, rowid, snippet)`` tuples ordered by ``(rank, rowid)``.

    Raises:
        DatabaseError: the file has no index yet (schema_version 3 opened read-only).
    """
    if EVENTS_FTS not in backend.tables(conn):
        raise errors.DatabaseError(f"database {backend.path} has no search index yet (schema_version 3): "
                                   "open it once without read_only to build it")
    where, params = schema.search_where(f"{EVENTS_FTS} MATCH ?", f"({EVENTS_FTS}.rank, {EVENTS_FTS}.rowid)", "?",
                                        match, filters, after)
    columns = "e.app_name, e.user_id, e.session_id, e.event_id, e.invocation_id, e.author, e.timestamp"
    if not filters:  # sort (rank, rowid) alone inside the index, then join only the page's rows
        page = (f"SELECT {columns}, f.rank, f.rowid FROM (SELECT rank, rowid FROM {EVENTS_FTS} "
                f"WHERE {' AND '.join(where)} ORDER BY rank, rowid LIMIT ?) AS f "
                f"JOIN {EVENTS} AS e ON e.id = f.rowid ORDER BY f.rank, f.rowid")
    elif (span := _user_span(conn, match, filters)) is not None:
        page, params = _one_user_page(columns, match, filters, after, span)
    else:
        page = (f"SELECT {columns}, {EVENTS_FTS}.rank, {EVENTS_FTS}.rowid FROM {EVENTS_FTS} "
                f"JOIN {EVENTS} AS e ON e.id = {EVENTS_FTS}.rowid "
                f"WHERE {' AND '.join(where)} ORDER BY {EVENTS_FTS}.rank, {EVENTS_FTS}.rowid LIMIT ?")
    rows = conn.execute(page, (*params, limit)).fetchall()
    # Snippets only for the page's rows (a second statement, same snapshot).
    marked = dict(conn.execute(
        f"SELECT rowid, snippet({EVENTS_FTS}, 0, ?, ?, ?, ?) FROM {EVENTS_FTS} WHERE {EVENTS_FTS} MATCH ? "
        f"AND rowid IN {backend.json_array_values()}", (*schema.SNIPPET, match, codec.dumps([r[-1] for r in rows]))))
    return [(*r, marked.get(r[-1], "")) for r in rows]


USER_SET_CAP = 100_000
"""The most events of one user a search reads as a set first (:func:`_one_user_page`);
a user with more is searched by ranking every match, as any other filter is."""
MATCHES_PER_USER_ROW = 1
"""The set is read first when the query matches at least this many rows of the whole
index per event of the user's (0: always, up to :data:`USER_SET_CAP`)."""


def _user_span(conn: sqlite3.Connection, match: str, filters: list[tuple[str, str]]) -> Optional[tuple[int, int]]:
    """The lowest and highest row id of the events ``filters`` leave, when a search
    filtered to one user (``app_name`` and ``user_id`` among ``filters``) should read
    the user's rows first; else None. First when they are fewer than
    :data:`USER_SET_CAP` and no more than the query's matches in the whole index
    (:data:`MATCHES_PER_USER_ROW`; with fewer matches, ranking them all costs less
    than reading the user's ids). Both
    counts stop at the bound they are compared with, so the choice costs at most the
    smaller of the two walks; either plan gives the same page."""
    if not {"app_name", "user_id"} <= {column for column, _ in filters}:
        return None
    owned = " AND ".join(f"{column} = ?" for column, _ in filters)
    mine, low, high = conn.execute(f"SELECT count(*), min(id), max(id) FROM (SELECT id FROM {EVENTS} WHERE {owned} "
                                   "LIMIT ?)", (*(value for _, value in filters), USER_SET_CAP)).fetchone()
    if mine >= USER_SET_CAP:
        return None
    enough = mine * MATCHES_PER_USER_ROW
    matches = conn.execute(f"SELECT count(*) FROM (SELECT rowid FROM {EVENTS_FTS} WHERE {EVENTS_FTS} MATCH ? "
                           "LIMIT ?)", (match, enough)).fetchone()[0]
    if matches < enough:
        return None
    return (low, high) if mine else (1, 0)


def _one_user_page(columns: str, match: str, filters: list[tuple[str, str]],
                   after: Optional[tuple[float, int]], span: tuple[int, int]) -> tuple[str, list]:
    """The page query of a search filtered to one user (``app_name`` and ``user_id``
    among ``filters``) whose events' row ids lie in ``span`` (lowest, highest), and
    its parameters but the limit.

    The rows the filters leave are read first from the events' index, as a set of ids
    (``+rowid IN (...)``: the unary ``+`` keeps SQLite from handing each id to FTS5
    as a lookup of its own, which would count the query's matches in the whole index
    once per id). FTS5 then walks the query's matches between the span's ends (a user
    active for a week of a year's file: that week) in rowid order and computes the
    rank of those in the set only: the same bm25 of the same index (its IDF counts the
    matches of the whole index, as before), the same ``(rank, rowid)`` order, so the
    same page; without the set, every match of the file was ranked and joined to its
    event before the user's were kept (43 ms for one user's common word on 1M events,
    about 6 ms this way). The page's rows are joined to their events last."""
    where, params = schema.search_where(f"{EVENTS_FTS} MATCH ?", "(rank, rowid)", "?", match, [], after)
    owned = " AND ".join(f"e.{column} = ?" for column, _ in filters)
    where += ["rowid >= ?", "rowid <= ?", f"+rowid IN (SELECT e.id FROM {EVENTS} AS e WHERE {owned})"]
    params += [*span, *(value for _, value in filters)]
    return (f"SELECT {columns}, f.rank, f.rowid FROM (SELECT rank, rowid FROM {EVENTS_FTS} "
            f"WHERE {' AND '.join(where)} ORDER BY rank, rowid LIMIT ?) AS f "
            f"JOIN {EVENTS} AS e ON e.id = f.rowid ORDER BY f.rank, f.rowid"), params


def match_query(text: str) -> str:
    """The FTS5 query for plain ``text``: each run of characters between spaces
    becomes one quoted string (``"`` doubled inside), and all of them must match.
    FTS5 tokenizes inside the quotes, so punctuation only separates words there
    (``order-7`` is the phrase ``order 7``) and no character is syntax. Runs with
    no letter or digit are left out; the result is ``""`` when nothing is left."""
    return " ".join('"' + run.replace('"', '""') + '"' for run in text.split() if schema.WORD.search(run))


def match_error(query: str) -> Optional[str]:
    """SQLite's message for an FTS5 query it refuses (syntax, an unknown column, a
    bad ``NEAR``), or None when the query is valid. Checked on an empty FTS5 table
    in memory, so the message is about the query and never about the file."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(f"CREATE VIRTUAL TABLE q USING fts5(text, tokenize='{TOKENIZER}')")
        conn.execute("SELECT rowid FROM q WHERE q MATCH ?", (query,)).fetchall()
    except sqlite3.Error as e:
        return str(e)
    finally:
        conn.close()
    return None
