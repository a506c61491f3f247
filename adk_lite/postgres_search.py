"""Full-text search on PostgreSQL: the generated ``tsvector`` columns and their GIN
indexes (:func:`search_ddl`, :func:`memory_ddl`), one page of ranked hits with their
snippets, the query for plain text, and the check of a raw ``to_tsquery`` text. The
methods of :class:`~adk_lite.postgres.PostgresBackend` of the same names call these.

Imported only with :mod:`adk_lite.postgres` (psycopg must be installed).
"""

from __future__ import annotations

from typing import Any, Optional

import psycopg

from . import codec, errors, schema
from .models import EVENTS, MEMORIES

SEARCH_COLUMN = "search"
"""The ``tsvector`` column of ``adk_events`` that full-text search reads: generated from
the event's text (stored, so it is written in the appending transaction) with a GIN index."""
SEARCH_CHARS = 100_000
"""Characters of an event's text that go into its ``tsvector`` (PostgreSQL refuses a
``tsvector`` over 1 MiB; this many characters always fit)."""
_CONFIG = "'simple'::regconfig"
"""The text search configuration: words lowercased, no stemming, no stop words (as FTS5's unicode61)."""


def search_ddl(utf8: bool) -> list[str]:
    """The statements that add full-text search to ``adk_events``: three IMMUTABLE
    functions (a generated column needs them so), the generated column
    :data:`SEARCH_COLUMN` and its GIN index.

    - ``adk_lite_search_text(json)``: the strings and numbers of an event's
      :data:`adk_lite.schema.INDEXED_PATHS`, joined by spaces (SQLite's
      :func:`adk_lite.schema.search_text_sql`; object members come in ``jsonb``'s key order).
      PL/pgSQL, so its query is planned once per connection: as an SQL function (not
      inlinable: it has a FROM) it was planned again for every inserted row, which
      cost an append about 0.3 ms;
    - ``adk_lite_unaccent(text)``: accents removed (NFD, then combining marks dropped;
      only on a UTF8 database), as FTS5's ``remove_diacritics``;
    - ``adk_lite_words(text)``: that, with every run of characters that are not letters
      or digits made one space, so words split where FTS5's unicode61 splits them
      (``order-7`` is ``order 7``) on the indexed text and the plain query alike.
    """
    paths = ", ".join(f"'strict {p}.** ? (@.type() == \"string\" || @.type() == \"number\")'"
                      for p in schema.INDEXED_PATHS)
    unaccent = r"regexp_replace(normalize(t, NFD), '[\u0300-\u036f]+', '', 'g')" if utf8 else "t"
    function = "CREATE OR REPLACE FUNCTION {} RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$ SELECT {} $f$"
    planned_once = ("CREATE OR REPLACE FUNCTION {} RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE "
                    "AS $f$ BEGIN RETURN (SELECT {}); END $f$")
    return [
        planned_once.format("adk_lite_search_text(body json)",
                            "string_agg(v.value #>> '{}', ' ' ORDER BY p.n, k.n, v.n) "
                            "FROM (SELECT body::jsonb #> '{content,parts}' AS parts) AS b "
                            "CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(b.parts) = 'array' "
                            "THEN b.parts ELSE '[]'::jsonb END) WITH ORDINALITY AS p(part, n) "
                            f"CROSS JOIN LATERAL unnest(ARRAY[{paths}]::jsonpath[]) WITH ORDINALITY AS k(path, n) "
                            "CROSS JOIN LATERAL jsonb_path_query(p.part, k.path, '{}', true) WITH ORDINALITY AS v(value, n)"),
        function.format("adk_lite_unaccent(t text)", unaccent),
        function.format("adk_lite_words(t text)", "regexp_replace(adk_lite_unaccent(t), '[^[:alnum:]]+', ' ', 'g')"),
        f"ALTER TABLE {EVENTS} ADD COLUMN {SEARCH_COLUMN} tsvector GENERATED ALWAYS AS (to_tsvector({_CONFIG}, "
        f"adk_lite_words(left(adk_lite_search_text(body), {SEARCH_CHARS})))) STORED",
        f"CREATE INDEX {EVENTS}_search ON {EVENTS} USING gin ({SEARCH_COLUMN})",
    ]


def memory_ddl() -> list[str]:
    """The statements that add full-text search to ``adk_memories``: the generated
    ``tsvector`` column :data:`SEARCH_COLUMN` over its ``text`` (words split and accents
    removed by ``adk_lite_words`` of :func:`search_ddl`, which must exist first; at most
    :data:`SEARCH_CHARS` characters) and its GIN index. A deleted memory (``text`` NULL)
    has an empty vector."""
    return [
        f"ALTER TABLE {MEMORIES} ADD COLUMN {SEARCH_COLUMN} tsvector GENERATED ALWAYS AS (to_tsvector({_CONFIG}, "
        f"adk_lite_words(left(coalesce(text, ''), {SEARCH_CHARS})))) STORED",
        f"CREATE INDEX {MEMORIES}_search ON {MEMORIES} USING gin ({SEARCH_COLUMN})",
    ]


QUERY_ERRORS = ("42601", "22023", "54000", "54001")
"""SQLSTATEs of a ``to_tsquery`` text the server refuses, the caller's query on the search
statement: syntax (``a &``), a phrase distance outside 0..16384 (``a <100000> b``), too large
or deep. On :meth:`PostgresBackend.match_error`'s statement, which reads nothing stored, any
class ``22``, ``42``, ``54`` or ``XX`` is too (``!!!...!a``: XX000 "tsquery stack too small")."""


def query_problem(exc: BaseException, checking: bool = False) -> Optional[str]:
    """The server's message when ``exc`` refused a tsquery (see :data:`QUERY_ERRORS`), else None."""
    state = getattr(exc, "sqlstate", None) or ""
    if state in QUERY_ERRORS or (checking and state[:2] in ("22", "42", "54", "XX")):
        return exc.diag.message_primary or str(exc)  # type: ignore[attr-defined]
    return None


def match_query(text: str) -> str:
    """The query for plain ``text``: a JSON array of its runs between spaces that
    hold a letter or digit (``""`` when none does). :func:`search` makes each run a
    phrase (``phraseto_tsquery``) and requires all of them."""
    runs = [run for run in text.split() if schema.WORD.search(run)]
    return codec.dumps(runs) if runs else ""


def match_error(backend: Any, query: str) -> Optional[str]:
    """PostgreSQL's message for a ``to_tsquery`` query it refuses, or None when it is valid.

    Args:
        backend: the :class:`~adk_lite.postgres.PostgresBackend` asked (its pool and ``translate``).

    Raises:
        DatabaseError: the server could not be asked.
    """
    conn = backend.peewee.acquire()
    try:
        conn.execute(f"SELECT to_tsquery({_CONFIG}, %s)", (query,))
    except psycopg.Error as e:
        problem = query_problem(e, checking=True)
        if problem is None:
            raise backend.translate(e) from None
        return problem
    except backend.DRIVER_ERRORS as e:
        raise backend.translate(e) from None
    finally:
        backend.peewee.release(conn)
    return None


def search(backend: Any, conn: Any, match: str, raw: bool, filters: list[tuple[str, str]],
           limit: int, after: Optional[tuple[float, int]]) -> list[tuple]:
    """One page of full-text hits through the GIN index on :data:`SEARCH_COLUMN`,
    ranked by ``-ts_rank`` with length normalization 1 (lower is better, as bm25
    on SQLite: a word more often, in a shorter text, ranks first).

    Args:
        backend: the :class:`~adk_lite.postgres.PostgresBackend` (its ``searchable``, ``path``,
            ``QUERY_SYNTAX``).
        match: :func:`match_query` of plain text, or (``raw``) ``to_tsquery`` syntax;
            accents are removed from it as from the indexed text; plain runs are
            split into words as the indexed text is (:func:`search_ddl`).
        filters: ``(column, value)`` equalities on the event row.
        limit: page size; after: the keyset ``(rank, rowid)`` to start after, or None.

    Returns:
        ``(app_name, user_id, session_id, event_id, invocation_id, author,
        timestamp, rank, rowid, snippet)`` tuples ordered by ``(rank, rowid)``; the
        snippet is ``ts_headline`` of the text without accents.

    Raises:
        ValueError: (``raw``) the server refused the query when it ran (a class of
            :data:`QUERY_ERRORS` the check of :func:`match_error` let through).
        DatabaseError: the database predates search and was opened read-only.
    """
    if not backend.searchable:
        raise errors.DatabaseError(f"database {backend.path} has no search index yet: open it once without "
                                   "read_only to build it")
    if raw:
        query = f"to_tsquery({_CONFIG}, adk_lite_unaccent(%s))"
    else:
        query = (f"(SELECT string_agg('(' || w.q::text || ')', ' & ') FROM (SELECT phraseto_tsquery({_CONFIG}, "
                 "adk_lite_words(r)) AS q FROM jsonb_array_elements_text(%s::jsonb) AS r) AS w "
                 "WHERE numnode(w.q) > 0)::tsquery")
    rank = f"(-ts_rank(e.{SEARCH_COLUMN}, q.q, 1))::float8"
    where, params = schema.search_where(f"e.{SEARCH_COLUMN} @@ q.q", f"({rank}, e.id)", "%s", match, filters, after)
    mark, unmark, _cut, words = schema.SNIPPET  # ts_headline marks no cut
    options = f"StartSel={mark}, StopSel={unmark}, MaxWords={words}, MinWords={words // 2}, ShortWord=0"
    try:
        return [tuple(r) for r in conn.execute(
            f"WITH q AS (SELECT {query} AS q), page AS (SELECT e.id, {rank} AS rank "
            f"FROM {EVENTS} AS e CROSS JOIN q WHERE {' AND '.join(where)} ORDER BY 2, 1 LIMIT %s) "
            "SELECT e.app_name, e.user_id, e.session_id, e.event_id, e.invocation_id, e.author, e.timestamp, "
            f"page.rank, e.id, ts_headline({_CONFIG}, adk_lite_unaccent(left(adk_lite_search_text(e.body), "
            f"{SEARCH_CHARS})), q.q, %s) FROM page JOIN {EVENTS} AS e ON e.id = page.id CROSS JOIN q "
            "ORDER BY page.rank, page.id", (*params, limit, options)).fetchall()]
    except psycopg.Error as e:
        if not raw or query_problem(e) is None:
            raise
        raise ValueError(f"query {match!r:.200} is not a valid {backend.QUERY_SYNTAX}: {query_problem(e)}") from None
